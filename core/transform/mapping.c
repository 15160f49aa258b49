/*
 * Compiling a table's mapping section (docs/TRANSFORMS.md) into a
 * MappingPlan: resolve source columns by name, compile every transform
 * chain once, fix the target column order (source order, then added
 * columns), and refuse shapes that would lose rows or their identity
 * (unknown columns, colliding target names, a dropped key column). The same
 * walk without a source shape is mapping_check(), which config.c runs at
 * load time so that a bad mapping is reported with file:line:col.
 */
#include "core/transform/mapping_int.h"

#include "core/error.h"
#include "core/sqlname.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Build {
    XfSpecCtx sc;
    XfWhere where;
    const RelInfo *src; /* NULL: check only */
    MappingPlan *plan;
} Build;

#define FAIL(b, cont, key, idx, ...) xf_spec_fail(&(b)->sc, (cont), (key), (idx), __VA_ARGS__)

static const char *const table_keys[] = {"target",  "on_error", "unlisted", "filter",
                                         "columns", "add",      NULL};

static int known_keys(Build *b, const json_t *obj, const char *const *known, const char *what)
{
    const char *key;
    const json_t *v;

    json_object_foreach((json_t *)obj, key, v)
    {
        const char *const *k = known;
        char list[256];
        size_t len = 0;

        while (*k && strcmp(*k, key) != 0)
            k++;
        if (*k)
            continue;
        list[0] = '\0';
        for (k = known; *k && len < sizeof(list); k++)
            len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", k == known ? "" : ", ",
                                    *k);
        int rc = FAIL(b, obj, key, -1, "unknown key in %s (known: %s)", what, list);

        b->where.at_key = true;
        return rc;
    }
    return 0;
}

static int find_col(const RelInfo *src, const char *name)
{
    for (int i = 0; i < src->ncols; i++)
        if (strcmp(src->cols[i].name, name) == 0)
            return i;
    return -1;
}

static int no_such_column(Build *b, const json_t *cont, const char *key, long idx, const char *name)
{
    char list[384];
    size_t len = 0;

    list[0] = '\0';
    for (int i = 0; i < b->src->ncols && len < sizeof(list); i++)
        len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "",
                                b->src->cols[i].name);
    return FAIL(b, cont, key, idx, "column \"%s\" is not in source table %s (its columns: %s)",
                name, b->plan->src_display, list);
}

static void producer_release(Producer *p)
{
    for (size_t i = 0; i < p->nsteps; i++)
        xf_step_release(&p->steps[i]);
    free(p->steps);
    for (size_t i = 0; i < p->nparts; i++)
        free((char *)p->parts[i].lit.s);
    free(p->parts);
    free((char *)p->constval.s);
    free((char *)p->sep.s);
    free(p->what);
    memset(p, 0, sizeof(*p));
}

/* The transform list at holder[key] (absent: no steps); the last step yields nout values. */
static int compile_chain(Build *b, const json_t *holder, const char *key, unsigned nout,
                         Producer *p)
{
    const json_t *list = json_object_get(holder, key);
    size_t n;

    if (!list || json_is_null(list)) {
        if (nout > 1)
            return FAIL(b, holder, "to", -1,
                        "feeds %u columns but has no transform that yields several values "
                        "(parse_name)",
                        nout);
        return 0;
    }
    if (!json_is_array(list))
        return FAIL(b, holder, key, -1, "expected a list of transforms");
    n = json_array_size(list);
    if (n == 0 && nout > 1)
        return FAIL(b, holder, key, -1, "empty, but the column feeds %u columns", nout);
    p->steps = xcalloc(n ? n : 1, sizeof(XfStep));
    for (size_t i = 0; i < n; i++) {
        int rc = xf_step_compile(&b->sc, list, i, i + 1 == n ? nout : 1, &p->steps[i]);

        if (rc < 0)
            return rc;
        p->nsteps = i + 1;
    }
    return 0;
}

static void add_name(MappingPlan *plan, const char *name)
{
    plan->names = xrealloc(plan->names, (plan->nout + 1) * sizeof(char *));
    plan->names[plan->nout++] = xstrdup(name);
}

static void add_producer(MappingPlan *plan, Producer *p)
{
    plan->prods = xrealloc(plan->prods, (plan->nprods + 1) * sizeof(Producer));
    plan->prods[plan->nprods++] = *p;
    memset(p, 0, sizeof(*p));
}

/* ---- columns ----------------------------------------------------------- */

/* One entry of columns: "drop", "keep" or {to, transform}. src_idx < 0 in check mode. */
static int column_entry(Build *b, const json_t *cols, const char *name, int src_idx)
{
    const json_t *e = json_object_get(cols, name);
    static const char *const keys[] = {"to", "transform", NULL};
    const json_t *to;
    Producer p = {.kind = P_COLUMN, .src = src_idx};
    unsigned nout = 1;
    int rc;

    if (json_is_string(e)) {
        const char *s = json_string_value(e);

        if (strcmp(s, "drop") == 0)
            return 0;
        if (strcmp(s, "keep") != 0)
            return FAIL(b, cols, name, -1,
                        "expected drop, keep or a mapping {to: ..., transform: [...]}, got "
                        "\"%s\"",
                        s);
        e = NULL;
    } else if (!json_is_object(e)) {
        return FAIL(b, cols, name, -1,
                    "expected drop, keep or a mapping {to: ..., transform: [...]}");
    }
    if (e && (rc = known_keys(b, e, keys, "a column mapping")) < 0)
        return rc;
    to = e ? json_object_get(e, "to") : NULL;
    if (to && json_is_array(to)) {
        nout = (unsigned)json_array_size(to);
        if (nout == 0 || nout > XF_MAX_OUTPUTS)
            return FAIL(b, e, "to", -1, "expected 1 to %d column names", XF_MAX_OUTPUTS);
        for (size_t i = 0; i < nout; i++)
            if (!json_is_string(json_array_get(to, i)) ||
                !*json_string_value(json_array_get(to, i)))
                return FAIL(b, to, NULL, (long)i, "expected a column name");
    } else if (to && !json_is_null(to) && (!json_is_string(to) || !*json_string_value(to))) {
        return FAIL(b, e, "to", -1, "expected a column name or a list of them");
    }
    if (e && (rc = compile_chain(b, e, "transform", nout, &p)) < 0) {
        producer_release(&p);
        return rc;
    }
    if (!b->src) {
        producer_release(&p);
        return 0;
    }
    p.nout = (uint16_t)nout;
    p.first_out = (uint16_t)b->plan->nout;
    p.identity = p.nsteps == 0;
    if (to && json_is_array(to)) {
        for (size_t i = 0; i < nout; i++)
            add_name(b->plan, json_string_value(json_array_get(to, i)));
        p.what = xasprintf("column %s -> [%s%s]", name, json_string_value(json_array_get(to, 0)),
                           nout > 1 ? ", ..." : "");
    } else {
        const char *tn = to && json_is_string(to) ? json_string_value(to) : name;

        add_name(b->plan, tn);
        p.what = strcmp(tn, name) ? xasprintf("column %s -> %s", name, tn)
                                  : xasprintf("column %s", name);
    }
    add_producer(b->plan, &p);
    return 0;
}

static int columns_section(Build *b, const json_t *tcfg)
{
    static const char *const policies[] = {"keep", "drop", "error", NULL};
    const json_t *cols = json_object_get(tcfg, "columns");
    const json_t *un = json_object_get(tcfg, "unlisted");
    const char *key;
    const json_t *v;
    int unlisted = 0, rc;

    if (un && !json_is_null(un)) {
        const char *s = json_string_value(un);

        unlisted = -1;
        for (int i = 0; s && policies[i]; i++)
            if (strcmp(s, policies[i]) == 0)
                unlisted = i;
        if (unlisted < 0)
            return FAIL(b, tcfg, "unlisted", -1, "expected keep, drop or error");
    }
    if (cols && json_is_null(cols))
        cols = NULL;
    if (cols && !json_is_object(cols))
        return FAIL(b, tcfg, "columns", -1, "expected a mapping of source column names");
    if (!b->src) {
        json_object_foreach((json_t *)cols, key, v)
        {
            if ((rc = column_entry(b, cols, key, -1)) < 0)
                return rc;
        }
        return 0;
    }
    /* Every named column must exist; then outputs follow the source's column order. */
    json_object_foreach((json_t *)cols, key, v)
    {
        if (find_col(b->src, key) < 0)
            return no_such_column(b, cols, key, -1, key);
    }
    for (int i = 0; i < b->src->ncols; i++) {
        const char *name = b->src->cols[i].name;

        if (cols && json_object_get(cols, name)) {
            if ((rc = column_entry(b, cols, name, i)) < 0)
                return rc;
            continue;
        }
        if (unlisted == 1)
            continue;
        if (unlisted == 2)
            return FAIL(b, tcfg, "unlisted", -1,
                        "source column \"%s\" of %s is not listed under columns (unlisted: "
                        "error)",
                        name, b->plan->src_display);
        Producer p = {.kind = P_COLUMN, .src = i, .nout = 1, .identity = true};

        p.first_out = (uint16_t)b->plan->nout;
        p.what = xasprintf("column %s", name);
        add_name(b->plan, name);
        add_producer(b->plan, &p);
    }
    return 0;
}

/* ---- added columns ----------------------------------------------------- */

static bool identifier_like(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '$'))
            return false;
    return true;
}

/* concat: [parts...] or {parts: [...], separator: text}. */
static int concat_parts(Build *b, const json_t *spec, Producer *p)
{
    const json_t *list = spec;
    size_t n;

    if (json_is_object(spec)) {
        static const char *const keys[] = {"parts", "separator", NULL};
        const json_t *sep = json_object_get(spec, "separator");
        char *s;
        int rc;

        if ((rc = known_keys(b, spec, keys, "concat")) < 0)
            return rc;
        list = json_object_get(spec, "parts");
        if (!json_is_array(list))
            return FAIL(b, spec, list ? "parts" : NULL, -1, "concat: expected parts: [...]");
        s = sep ? xf_scalar_text(sep) : NULL;
        if (!s)
            return FAIL(b, spec, sep ? "separator" : NULL, -1, "concat: expected separator: text");
        p->sep = (XfStr){s, strlen(s)};
    }
    n = json_array_size(list);
    if (!json_is_array(list) || n == 0)
        return FAIL(b, spec, NULL, -1, "concat: expected a non-empty list");
    if (n > 64)
        return FAIL(b, spec, NULL, -1, "concat: at most 64 parts");
    p->parts = xcalloc(n, sizeof(ConcatPart));
    for (size_t i = 0; i < n; i++) {
        const json_t *el = json_array_get(list, i);
        ConcatPart *cp = &p->parts[i];
        const char *col = NULL;

        p->nparts = i + 1;
        cp->src = -1;
        if (json_is_object(el) && json_object_size(el) == 1 && json_object_get(el, "column")) {
            col = json_string_value(json_object_get(el, "column"));
            if (!col)
                return FAIL(b, el, "column", -1, "expected a column name");
        } else if (json_is_object(el) && json_object_size(el) == 1 && json_object_get(el, "lit")) {
            char *s = xf_scalar_text(json_object_get(el, "lit"));

            if (!s)
                return FAIL(b, el, "lit", -1, "expected a text value");
            cp->lit = (XfStr){s, strlen(s)};
            continue;
        } else if (json_is_string(el) && identifier_like(json_string_value(el))) {
            col = json_string_value(el); /* a bare word is a column; {lit: word} is text */
        } else {
            char *s = xf_scalar_text(el);

            if (!s)
                return FAIL(b, list, NULL, (long)i,
                            "expected a column name, a literal, {column: name} or {lit: text}");
            cp->lit = (XfStr){s, strlen(s)};
            continue;
        }
        if (b->src && (cp->src = find_col(b->src, col)) < 0)
            return no_such_column(b, list, NULL, (long)i, col);
    }
    return 0;
}

static int add_entry(Build *b, const json_t *adds, const char *name)
{
    static const char *const keys[] = {"const", "concat", "from", "transform", NULL};
    const json_t *e = json_object_get(adds, name);
    Producer p = {.src = -1, .nout = 1};
    int forms = 0, rc;

    if (!json_is_object(e))
        return FAIL(b, adds, name, -1,
                    "expected a mapping with one of const, concat or from (and transform)");
    if ((rc = known_keys(b, e, keys, "an added column")) < 0)
        return rc;
    forms = !!json_object_get(e, "const") + !!json_object_get(e, "concat") +
            !!json_object_get(e, "from");
    if (forms != 1)
        return FAIL(b, adds, name, -1, "give exactly one of const, concat or from");
    if (json_object_get(e, "const")) {
        const json_t *c = json_object_get(e, "const");
        char *s = json_is_null(c) ? NULL : xf_scalar_text(c);

        if (!json_is_null(c) && !s)
            return FAIL(b, e, "const", -1, "expected a text value or null");
        p.kind = P_CONST;
        p.constval = s ? (XfStr){s, strlen(s)} : XF_NULL;
    } else if (json_object_get(e, "concat")) {
        p.kind = P_CONCAT;
        rc = concat_parts(b, json_object_get(e, "concat"), &p);
        if (rc < 0) {
            producer_release(&p);
            return rc;
        }
    } else {
        const char *from = json_string_value(json_object_get(e, "from"));

        if (!from) {
            producer_release(&p);
            return FAIL(b, e, "from", -1, "expected a source column name");
        }
        p.kind = P_COLUMN;
        if (b->src && (p.src = find_col(b->src, from)) < 0)
            return no_such_column(b, e, "from", -1, from);
    }
    if ((rc = compile_chain(b, e, "transform", 1, &p)) < 0) {
        producer_release(&p);
        return rc;
    }
    if (!b->src) {
        producer_release(&p);
        return 0;
    }
    p.first_out = (uint16_t)b->plan->nout;
    p.what = xasprintf("added column %s", name);
    add_name(b->plan, name);
    add_producer(b->plan, &p);
    return 0;
}

static int add_section(Build *b, const json_t *tcfg)
{
    const json_t *adds = json_object_get(tcfg, "add");
    const char *key;
    const json_t *v;
    int rc;

    if (!adds || json_is_null(adds))
        return 0;
    if (!json_is_object(adds))
        return FAIL(b, tcfg, "add", -1, "expected a mapping of new column names");
    json_object_foreach((json_t *)adds, key, v)
    {
        if ((rc = add_entry(b, adds, key)) < 0)
            return rc;
    }
    return 0;
}

/* ---- filter ------------------------------------------------------------ */

static int filter_one(Build *b, const json_t *f)
{
    static const char *const keys[] = {"column",           "in", "not_in", "is_null",
                                       "case_insensitive", NULL};
    const char *col;
    const json_t *list = NULL;
    Filter flt = {.src = -1};
    int ops, rc;

    if (!json_is_object(f))
        return FAIL(b, f, NULL, -1, "filter: expected {column: ..., in|not_in|is_null: ...}");
    if ((rc = known_keys(b, f, keys, "a filter")) < 0)
        return rc;
    col = json_string_value(json_object_get(f, "column"));
    if (!col)
        return FAIL(b, f, json_object_get(f, "column") ? "column" : NULL, -1,
                    "filter: \"column\" (a source column name) is required");
    ops = !!json_object_get(f, "in") + !!json_object_get(f, "not_in") +
          !!json_object_get(f, "is_null");
    if (ops != 1)
        return FAIL(b, f, NULL, -1, "filter: give exactly one of in, not_in or is_null");
    if (json_object_get(f, "is_null")) {
        const json_t *v = json_object_get(f, "is_null");

        if (!json_is_boolean(v))
            return FAIL(b, f, "is_null", -1, "expected true or false");
        flt.op = json_is_true(v) ? F_IS_NULL : F_NOT_NULL;
    } else {
        const char *k = json_object_get(f, "in") ? "in" : "not_in";
        const json_t *ci = json_object_get(f, "case_insensitive");

        if (ci && !json_is_boolean(ci))
            return FAIL(b, f, "case_insensitive", -1, "expected true or false");
        list = json_object_get(f, k);
        if (!json_is_array(list))
            return FAIL(b, f, k, -1, "expected a list of values");
        flt.op = k[0] == 'i' ? F_IN : F_NOT_IN;
        flt.values = xf_dict_new(json_is_true(ci));
        for (size_t i = 0; i < json_array_size(list); i++) {
            char *s = xf_scalar_text(json_array_get(list, i));

            if (!s) {
                xf_dict_free(flt.values);
                return FAIL(b, list, NULL, (long)i, "expected a text value");
            }
            xf_dict_put(flt.values, s, strlen(s), XF_STR(""));
            free(s);
        }
    }
    if (b->src && (flt.src = find_col(b->src, col)) < 0) {
        xf_dict_free(flt.values);
        return no_such_column(b, f, "column", -1, col);
    }
    if (!b->src) {
        xf_dict_free(flt.values);
        return 0;
    }
    flt.col = xstrdup(col);
    b->plan->filters = xrealloc(b->plan->filters, (b->plan->nfilters + 1) * sizeof(Filter));
    b->plan->filters[b->plan->nfilters++] = flt;
    return 0;
}

static int filter_section(Build *b, const json_t *tcfg)
{
    const json_t *f = json_object_get(tcfg, "filter");
    int rc;

    if (!f || json_is_null(f))
        return 0;
    if (json_is_array(f)) {
        for (size_t i = 0; i < json_array_size(f); i++)
            if ((rc = filter_one(b, json_array_get(f, i))) < 0)
                return rc;
        return 0;
    }
    if (!json_is_object(f))
        return FAIL(b, tcfg, "filter", -1, "expected a filter mapping or a list of them");
    return filter_one(b, f);
}

/* ---- the table --------------------------------------------------------- */

static int table_section(Build *b, const json_t *tcfg)
{
    const json_t *v;
    int rc;

    if (!json_is_object(tcfg))
        return FAIL(b, tcfg, NULL, -1, "a table mapping must be a mapping");
    if ((rc = known_keys(b, tcfg, table_keys, "a table mapping")) < 0)
        return rc;
    v = json_object_get(tcfg, "target");
    if (v && !json_is_null(v)) {
        char *schema, *name;

        if (!json_is_string(v))
            return FAIL(b, tcfg, "target", -1, "expected schema.table");
        if (sqlname_parse(json_string_value(v), &schema, &name) < 0)
            return FAIL(b, tcfg, "target", -1, "%s", tm_error());
        free(b->plan->tschema);
        free(b->plan->tname);
        b->plan->tschema = schema;
        b->plan->tname = name;
    }
    v = json_object_get(tcfg, "on_error");
    if (v && !json_is_null(v)) {
        const char *s = json_string_value(v);

        b->plan->on_error_set = true;
        if (s && strcmp(s, "stop") == 0)
            b->plan->on_error = MAPPING_ON_ERROR_STOP;
        else if (s && strcmp(s, "dead_letter") == 0)
            b->plan->on_error = MAPPING_ON_ERROR_DEAD_LETTER;
        else
            return FAIL(b, tcfg, "on_error", -1, "expected stop or dead_letter");
    }
    if ((rc = filter_section(b, tcfg)) < 0 || (rc = columns_section(b, tcfg)) < 0 ||
        (rc = add_section(b, tcfg)) < 0)
        return rc;
    return 0;
}

/* Rewrites relative lookup files in one transform list as absolute paths. */
static void absolutize(json_t *list, const char *base_dir)
{
    size_t i;
    json_t *el;

    if (!base_dir || !json_is_array(list))
        return;
    json_array_foreach(list, i, el)
    {
        json_t *params = json_object_get(el, "lookup");
        const char *file = json_string_value(json_object_get(params, "file"));

        if (file && *file && file[0] != '/') {
            char *abs = xasprintf("%s/%s", base_dir, file);

            json_object_set_new(params, "file", json_string(abs));
            free(abs);
        }
    }
}

int mapping_check(json_t *table_cfg, const char *base_dir, XfWhere *where)
{
    MappingPlan plan = {0};
    Build b = {.plan = &plan};
    const char *key;
    json_t *v;
    int rc;

    b.sc.where = &b.where;
    b.sc.id_lookup = &plan.id_lookup;
    plan.src_display = "";
    if (json_is_object(table_cfg)) {
        json_object_foreach(json_object_get(table_cfg, "columns"), key, v)
            absolutize(json_object_get(v, "transform"), base_dir);
        json_object_foreach(json_object_get(table_cfg, "add"), key, v)
            absolutize(json_object_get(v, "transform"), base_dir);
    }
    rc = table_section(&b, table_cfg);
    free(plan.tschema);
    free(plan.tname);
    if (rc < 0 && where)
        *where = b.where;
    return rc;
}

/* ---- compile ----------------------------------------------------------- */

static int finish(Build *b)
{
    MappingPlan *plan = b->plan;
    const RelInfo *src = b->src;

    for (size_t i = 0; i < plan->nout; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(plan->names[i], plan->names[j]) == 0)
                return tm_fail(-EINVAL,
                               "mapping of %s: target column \"%s\" is produced twice (rename "
                               "one with to:)",
                               plan->src_display, plan->names[i]);
    if (plan->nout == 0)
        return tm_fail(-EINVAL, "mapping of %s: no target columns left", plan->src_display);
    /* A key column must reach the target as itself, or UPDATE/DELETE cannot find the row. */
    plan->key_src = xcalloc(src->ncols ? src->ncols : 1, sizeof(int));
    plan->key_names = xcalloc(src->ncols ? src->ncols : 1, sizeof(char *));
    for (int i = 0; i < src->ncols; i++) {
        bool mapped = false;

        if (!src->cols[i].is_key)
            continue;
        plan->key_names[plan->nkeys] = xstrdup(src->cols[i].name);
        plan->key_src[plan->nkeys++] = i;
        for (size_t k = 0; k < plan->nprods; k++)
            mapped |= plan->prods[k].kind == P_COLUMN && plan->prods[k].src == i &&
                      plan->prods[k].nout == 1;
        if (!mapped && src->replident != 'f')
            return tm_fail(-EINVAL,
                           "mapping of %s: key column \"%s\" must map to one target column "
                           "(UPDATE and DELETE locate target rows by it)",
                           plan->src_display, src->cols[i].name);
    }
    plan->target.oid = src->oid;
    plan->target.schema = plan->tschema;
    plan->target.name = plan->tname;
    plan->target.replident = src->replident;
    plan->target.ncols = (uint16_t)plan->nout;
    plan->target.cols = xcalloc(plan->nout, sizeof(RelColumn));
    for (size_t k = 0; k < plan->nprods; k++) {
        const Producer *p = &plan->prods[k];

        for (unsigned j = 0; j < p->nout; j++) {
            RelColumn *c = &plan->target.cols[p->first_out + j];

            c->name = plan->names[p->first_out + j];
            c->typmod = -1;
            if (p->kind == P_COLUMN && p->nout == 1) {
                c->is_key = src->cols[p->src].is_key;
                if (p->identity) {
                    c->type_oid = src->cols[p->src].type_oid;
                    c->typmod = src->cols[p->src].typmod;
                }
            }
        }
    }
    plan->identity = plan->nfilters == 0 && plan->nout == src->ncols &&
                     strcmp(plan->tschema, src->schema) == 0 && strcmp(plan->tname, src->name) == 0;
    for (size_t k = 0; plan->identity && k < plan->nprods; k++)
        plan->identity = plan->prods[k].kind == P_COLUMN && plan->prods[k].identity &&
                         plan->prods[k].src == (int)k &&
                         strcmp(plan->names[k], src->cols[k].name) == 0;
    return 0;
}

int mapping_compile(const json_t *table_cfg, const RelInfo *src, MappingPlan **out)
{
    MappingPlan *plan = xcalloc(1, sizeof(*plan));
    Build b = {.plan = plan, .src = src};
    int rc;

    *out = NULL;
    b.sc.where = &b.where;
    b.sc.id_lookup = &plan->id_lookup;
    plan->src_display = xasprintf("%s.%s", src->schema, src->name);
    plan->src_ncols = src->ncols;
    plan->tschema = xstrdup(src->schema);
    plan->tname = xstrdup(src->name);
    rc = table_cfg ? table_section(&b, table_cfg) : columns_section(&b, NULL);
    if (rc == 0)
        rc = finish(&b);
    if (rc < 0) {
        rc = tm_fail_ctx(rc, "mapping of %s", plan->src_display);
        mapping_free(plan);
        return rc;
    }
    plan->uses_id_lookup = b.sc.uses_id_lookup;
    *out = plan;
    return 0;
}

void mapping_free(MappingPlan *plan)
{
    if (!plan)
        return;
    for (size_t i = 0; i < plan->nprods; i++)
        producer_release(&plan->prods[i]);
    free(plan->prods);
    for (size_t i = 0; i < plan->nout; i++)
        free(plan->names[i]);
    free(plan->names);
    for (size_t i = 0; i < plan->nfilters; i++) {
        xf_dict_free(plan->filters[i].values);
        free(plan->filters[i].col);
    }
    free(plan->filters);
    free(plan->target.cols);
    free(plan->key_src);
    for (size_t i = 0; plan->key_names && i < plan->nkeys; i++)
        free(plan->key_names[i]);
    free(plan->key_names);
    free(plan->src_display);
    free(plan->tschema);
    free(plan->tname);
    free(plan);
}

/* ---- accessors --------------------------------------------------------- */

const json_t *mapping_find(const json_t *config_tree, const char *schema, const char *name)
{
    const json_t *section = json_object_get(config_tree, "mapping");
    const char *key;
    const json_t *v;

    json_object_foreach((json_t *)section, key, v)
    {
        char *s, *n;
        bool hit;

        if (sqlname_parse(key, &s, &n) < 0)
            continue; /* config load rejected it already */
        hit = strcmp(s, schema) == 0 && strcmp(n, name) == 0;
        free(s);
        free(n);
        if (hit)
            return v;
    }
    return NULL;
}

void mapping_set_id_lookup(MappingPlan *plan, IdLookupFn fn, void *ctx)
{
    plan->id_lookup.fn = fn;
    plan->id_lookup.ctx = ctx;
}

bool mapping_error_is_data(int rc)
{
    return rc == -EINVAL || rc == -ERANGE || rc == -EDOM || rc == -EILSEQ || rc == -ENOENT;
}

bool mapping_uses_id_lookup(const MappingPlan *plan)
{
    return plan->uses_id_lookup;
}

const char *mapping_target_schema(const MappingPlan *plan)
{
    return plan->tschema;
}

const char *mapping_target_table(const MappingPlan *plan)
{
    return plan->tname;
}

size_t mapping_target_ncols(const MappingPlan *plan)
{
    return plan->nout;
}

const char *const *mapping_target_columns(const MappingPlan *plan)
{
    return (const char *const *)plan->names;
}

const RelInfo *mapping_target_rel(const MappingPlan *plan)
{
    return &plan->target;
}

MappingOnError mapping_on_error(const MappingPlan *plan)
{
    return plan->on_error;
}

void mapping_default_on_error(MappingPlan *plan, MappingOnError def)
{
    if (!plan->on_error_set)
        plan->on_error = def;
}

MappingOnError mapping_tree_on_error(const json_t *config_tree)
{
    const char *s =
        json_string_value(json_object_get(json_object_get(config_tree, "apply"), "on_error"));

    return s && strcmp(s, "dead_letter") == 0 ? MAPPING_ON_ERROR_DEAD_LETTER
                                              : MAPPING_ON_ERROR_STOP;
}

bool mapping_is_identity(const MappingPlan *plan)
{
    return plan->identity;
}

bool mapping_has_filter(const MappingPlan *plan)
{
    return plan->nfilters > 0;
}
