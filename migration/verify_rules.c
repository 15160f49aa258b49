/*
 * The verify section of the config as structs, free of SQL: business rules
 * per table (not_null, unique, range, regex, allowed), implicit foreign keys
 * and spot-check keys, plus the run settings. The config loader has already
 * checked the shape with file:line:column positions; this pass turns scalars
 * into the text SQL receives as parameters (YAML 5 and "5" both become "5")
 * and still reports anything it cannot use, so tests can feed it JSON
 * directly.
 */
#include "core/error.h"
#include "core/sqlname.h"
#include "core/xmalloc.h"
#include "migration/verify_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *verify_rule_kind_name(VRuleKind k)
{
    switch (k) {
    case VR_NOT_NULL:
        return "not_null";
    case VR_UNIQUE:
        return "unique";
    case VR_RANGE:
        return "range";
    case VR_REGEX:
        return "regex";
    case VR_ALLOWED:
        return "allowed";
    }
    return "?";
}

/* A scalar as text: strings as they are, integers and booleans spelled out. NULL otherwise. */
static char *scalar_text(const json_t *v)
{
    if (json_is_string(v))
        return xstrdup(json_string_value(v));
    if (json_is_integer(v))
        return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    if (json_is_boolean(v))
        return xstrdup(json_is_true(v) ? "true" : "false");
    if (json_is_real(v))
        return xasprintf("%.17g", json_real_value(v));
    return NULL;
}

static int parse_table(const char *s, TableName *out, const char *where)
{
    if (sqlname_parse(s, &out->schema, &out->name) < 0)
        return tm_fail(-EINVAL, "verify.%s: %s", where, tm_error());
    return 0;
}

/* A list of column names (or one name) into cols. */
static int parse_cols(const json_t *v, char ***cols, size_t *n, const char *where)
{
    size_t i;
    const json_t *el;

    if (json_is_string(v)) {
        *cols = xcalloc(1, sizeof(char *));
        (*cols)[0] = xstrdup(json_string_value(v));
        *n = 1;
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) == 0)
        return tm_fail(-EINVAL, "verify.%s: expected a column name or a list of them", where);
    *cols = xcalloc(json_array_size(v), sizeof(char *));
    *n = 0;
    json_array_foreach(v, i, el)
    {
        if (!json_is_string(el))
            return tm_fail(-EINVAL, "verify.%s[%zu]: expected a column name", where, i);
        (*cols)[(*n)++] = xstrdup(json_string_value(el));
    }
    return 0;
}

static void free_strs(char **s, size_t n);

static VRule *add_rule(VRuleSet *rs, VRuleKind kind, const TableName *t)
{
    VRule *r;

    rs->rules = xrealloc(rs->rules, (rs->nrules + 1) * sizeof(VRule));
    r = &rs->rules[rs->nrules++];
    memset(r, 0, sizeof(*r));
    r->kind = kind;
    r->table.schema = xstrdup(t->schema);
    r->table.name = xstrdup(t->name);
    return r;
}

static void one_col(VRule *r, const char *col)
{
    r->cols = xcalloc(1, sizeof(char *));
    r->cols[0] = xstrdup(col);
    r->ncols = 1;
}

static int parse_table_rules(VRuleSet *rs, const char *tname, const json_t *rules)
{
    TableName t = {0};
    const char *kind;
    const json_t *v;
    char where[384];
    int rc;

    snprintf(where, sizeof(where), "rules.%s", tname);
    if ((rc = parse_table(tname, &t, where)) < 0)
        return rc;
    if (!json_is_object(rules)) {
        rc = tm_fail(-EINVAL, "verify.%s: expected a mapping of rules", where);
        goto out;
    }
    json_object_foreach((json_t *)rules, kind, v)
    {
        char w[512];

        snprintf(w, sizeof(w), "%s.%s", where, kind);
        if (strcmp(kind, "not_null") == 0) {
            char **cols = NULL;
            size_t n = 0;

            if ((rc = parse_cols(v, &cols, &n, w)) == 0)
                for (size_t i = 0; i < n; i++)
                    one_col(add_rule(rs, VR_NOT_NULL, &t), cols[i]);
            for (size_t i = 0; i < n; i++)
                free(cols[i]);
            free(cols);
        } else if (strcmp(kind, "unique") == 0) {
            size_t i;
            const json_t *el;

            if (!json_is_array(v)) {
                rc = tm_fail(-EINVAL, "verify.%s: expected a list of column lists", w);
                goto out;
            }
            json_array_foreach(v, i, el)
            {
                VRule *r = add_rule(rs, VR_UNIQUE, &t);

                if ((rc = parse_cols(el, &r->cols, &r->ncols, w)) < 0)
                    goto out;
            }
        } else if (strcmp(kind, "range") == 0 || strcmp(kind, "regex") == 0 ||
                   strcmp(kind, "allowed") == 0) {
            const char *col;
            const json_t *spec;

            if (!json_is_object(v)) {
                rc = tm_fail(-EINVAL, "verify.%s: expected a mapping of columns", w);
                goto out;
            }
            json_object_foreach((json_t *)v, col, spec)
            {
                VRule *r;

                if (kind[1] == 'a') { /* range */
                    if (!json_is_array(spec) || json_array_size(spec) != 2) {
                        rc = tm_fail(-EINVAL, "verify.%s.%s: expected [min, max] (null for open)",
                                     w, col);
                        goto out;
                    }
                    r = add_rule(rs, VR_RANGE, &t);
                    r->min = scalar_text(json_array_get(spec, 0));
                    r->max = scalar_text(json_array_get(spec, 1));
                    if (!r->min && !r->max) {
                        one_col(r, col);
                        rc = tm_fail(-EINVAL, "verify.%s.%s: min and max are both open", w, col);
                        goto out;
                    }
                } else if (kind[1] == 'e') { /* regex */
                    if (!json_is_string(spec)) {
                        rc = tm_fail(-EINVAL, "verify.%s.%s: expected a pattern", w, col);
                        goto out;
                    }
                    r = add_rule(rs, VR_REGEX, &t);
                    r->pattern = xstrdup(json_string_value(spec));
                } else { /* allowed */
                    size_t i;
                    const json_t *el;

                    if (!json_is_array(spec) || json_array_size(spec) == 0) {
                        rc = tm_fail(-EINVAL, "verify.%s.%s: expected a list of values", w, col);
                        goto out;
                    }
                    r = add_rule(rs, VR_ALLOWED, &t);
                    r->values = xcalloc(json_array_size(spec), sizeof(char *));
                    json_array_foreach(spec, i, el)
                    {
                        char *s = scalar_text(el);

                        if (!s) {
                            one_col(r, col);
                            rc = tm_fail(-EINVAL, "verify.%s.%s[%zu]: expected a value", w, col, i);
                            goto out;
                        }
                        r->values[r->nvalues++] = s;
                    }
                }
                one_col(r, col);
            }
        } else {
            rc = tm_fail(-EINVAL,
                         "verify.%s: unknown rule (not_null, unique, range, regex, allowed)", w);
            goto out;
        }
        if (rc < 0)
            goto out;
    }
out:
    free(t.schema);
    free(t.name);
    return rc;
}

static int parse_fk(VRuleSet *rs, size_t i, const json_t *v)
{
    char where[64];
    const char *tab = json_string_value(json_object_get(v, "table"));
    const char *ref = json_string_value(json_object_get(v, "references"));
    VFk *fk;
    size_t nref = 0;
    int rc;

    snprintf(where, sizeof(where), "foreign_keys[%zu]", i);
    if (!json_is_object(v) || !tab || !ref)
        return tm_fail(-EINVAL, "verify.%s: expected {table, columns, references, ref_columns}",
                       where);
    rs->fks = xrealloc(rs->fks, (rs->nfks + 1) * sizeof(VFk));
    fk = &rs->fks[rs->nfks++];
    memset(fk, 0, sizeof(*fk));
    fk->name = xasprintf("config.%s", where);
    if ((rc = parse_table(tab, &fk->table, where)) < 0 ||
        (rc = parse_table(ref, &fk->ref, where)) < 0 ||
        (rc = parse_cols(json_object_get(v, "columns"), &fk->cols, &fk->ncols, where)) < 0)
        return rc;
    if (json_object_get(v, "ref_columns")) {
        if ((rc = parse_cols(json_object_get(v, "ref_columns"), &fk->ref_cols, &nref, where)) < 0)
            return rc;
    } else if (fk->ncols == 1) {
        /* the usual case: the parent's key is called id */
        fk->ref_cols = xcalloc(1, sizeof(char *));
        fk->ref_cols[0] = xstrdup("id");
        nref = 1;
    }
    if (nref != fk->ncols) {
        /* released later with ncols entries: drop the mismatched list now */
        free_strs(fk->ref_cols, nref);
        fk->ref_cols = NULL;
        return tm_fail(-EINVAL, "verify.%s: columns and ref_columns differ in length", where);
    }
    return 0;
}

static int parse_spots(VRuleSet *rs, const json_t *spots)
{
    const char *tname;
    const json_t *keys;

    if (!json_is_object(spots))
        return tm_fail(-EINVAL, "verify.spot_checks: expected a mapping of tables to key lists");
    json_object_foreach((json_t *)spots, tname, keys)
    {
        VSpot *sp;
        char where[384];
        size_t i;
        const json_t *k;
        int rc;

        snprintf(where, sizeof(where), "spot_checks.%s", tname);
        if (!json_is_array(keys))
            return tm_fail(-EINVAL, "verify.%s: expected a list of keys", where);
        rs->spots = xrealloc(rs->spots, (rs->nspots + 1) * sizeof(VSpot));
        sp = &rs->spots[rs->nspots++];
        memset(sp, 0, sizeof(*sp));
        if ((rc = parse_table(tname, &sp->table, where)) < 0)
            return rc;
        sp->keys = xcalloc(json_array_size(keys) + 1, sizeof(json_t *));
        json_array_foreach(keys, i, k)
        {
            if (json_is_object(k) || json_is_null(k))
                return tm_fail(-EINVAL,
                               "verify.%s[%zu]: a key is a value, or a list of values for a"
                               " composite key",
                               where, i);
            sp->keys[sp->nkeys++] = json_incref((json_t *)k);
        }
    }
    return 0;
}

static long int_or(const json_t *obj, const char *key, long def)
{
    const json_t *v = json_object_get(obj, key);

    return json_is_integer(v) ? (long)json_integer_value(v) : def;
}

int verify_rules_parse(const json_t *verify, VRuleSet *out)
{
    const char *tname;
    const json_t *v;
    size_t i;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    out->jobs = 2;
    out->recheck_rounds = 3;
    out->catchup_timeout_s = 120;
    if (!verify || json_is_null(verify))
        return 0;
    if (!json_is_object(verify))
        return tm_fail(-EINVAL, "verify: expected a mapping");
    out->interval_s = int_or(verify, "interval_s", 0);
    out->max_rows_per_s = int_or(verify, "max_rows_per_second", 0);
    out->jobs = int_or(verify, "jobs", 2);
    out->recheck_rounds = int_or(verify, "recheck_rounds", 3);
    out->catchup_timeout_s = int_or(verify, "catchup_timeout_s", 120);
    v = json_object_get(verify, "rules");
    if (v && !json_is_null(v)) {
        if (!json_is_object(v))
            return tm_fail(-EINVAL, "verify.rules: expected a mapping of tables");
        const json_t *tr;

        json_object_foreach((json_t *)v, tname, tr)
        {
            if ((rc = parse_table_rules(out, tname, tr)) < 0)
                return rc;
        }
    }
    v = json_object_get(verify, "foreign_keys");
    if (v && !json_is_null(v)) {
        const json_t *el;

        if (!json_is_array(v))
            return tm_fail(-EINVAL, "verify.foreign_keys: expected a list");
        json_array_foreach(v, i, el)
        {
            if ((rc = parse_fk(out, i, el)) < 0)
                return rc;
        }
    }
    v = json_object_get(verify, "spot_checks");
    if (v && !json_is_null(v) && (rc = parse_spots(out, v)) < 0)
        return rc;
    return 0;
}

static void free_strs(char **s, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        free(s[i]);
    free(s);
}

void verify_fk_release(VFk *fk)
{
    free(fk->name);
    free(fk->table.schema);
    free(fk->table.name);
    free(fk->ref.schema);
    free(fk->ref.name);
    free_strs(fk->cols, fk->ncols);
    free_strs(fk->ref_cols, fk->ncols);
}

void verify_rules_release(VRuleSet *rs)
{
    for (size_t i = 0; i < rs->nrules; i++) {
        VRule *r = &rs->rules[i];

        free(r->table.schema);
        free(r->table.name);
        free_strs(r->cols, r->ncols);
        free(r->min);
        free(r->max);
        free(r->pattern);
        free_strs(r->values, r->nvalues);
    }
    free(rs->rules);
    for (size_t i = 0; i < rs->nfks; i++)
        verify_fk_release(&rs->fks[i]);
    free(rs->fks);
    for (size_t i = 0; i < rs->nspots; i++) {
        free(rs->spots[i].table.schema);
        free(rs->spots[i].table.name);
        for (size_t k = 0; k < rs->spots[i].nkeys; k++)
            json_decref(rs->spots[i].keys[k]);
        free(rs->spots[i].keys);
    }
    free(rs->spots);
    memset(rs, 0, sizeof(*rs));
}
