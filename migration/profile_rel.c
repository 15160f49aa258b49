/*
 * Relationships between the profiled tables. Declared foreign keys are
 * checked for orphans (rows whose key finds no parent: possible when the
 * constraint is NOT VALID or triggers were disabled during a load, and fatal
 * when the target validates it). Implicit candidates are columns whose name
 * and type match a unique column of another table (customer_email ->
 * customers.email, sku -> products.sku) and are reported with the share of
 * their values found there, so an undeclared reference is documented before
 * the migration relies on it.
 */
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/xmalloc.h"
#include "migration/profile_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_CANDIDATES 100

static char *display(const char *schema, const char *name)
{
    TableName tn = {(char *)schema, (char *)name};

    return config_table_display(&tn);
}

static bool generic_name(const char *c)
{
    static const char *const g[] = {"id",   "uuid",       "guid",       "key", "code",
                                    "name", "created_at", "updated_at", NULL};

    for (size_t i = 0; g[i]; i++)
        if (strcmp(c, g[i]) == 0)
            return true;
    return false;
}

static bool integer_base(const char *b)
{
    return strcmp(b, "int2") == 0 || strcmp(b, "int4") == 0 || strcmp(b, "int8") == 0;
}

static bool types_match(const ProfCol *a, const ProfCol *b)
{
    if (a->cat == PROF_CAT_TEXT && b->cat == PROF_CAT_TEXT)
        return true;
    if (integer_base(a->base) && integer_base(b->base))
        return true;
    return strcmp(a->base, b->base) == 0;
}

/* Unique by an index, or observed unique by the profile of its table. */
static const char *unique_how(const ProfTable *t, size_t i)
{
    json_t *c = json_array_get(json_object_get(t->out, "columns"), i);
    long long nonnull = profile_jint(c, "rows") - profile_jint(c, "nulls");

    if (t->cols[i].unique)
        return "index";
    if (c && nonnull > 0 && profile_jint(c, "distinct") == nonnull &&
        !json_is_true(json_object_get(t->out, "sampled")))
        return "observed";
    return NULL;
}

/* child column c names parent column k of table p: k itself, or <p>_k / <singular p>_k. */
static bool names_match(const char *c, const char *p, const char *k)
{
    char *sg = profile_singular(p);
    char *a = xasprintf("%s_%s", sg, k);
    char *b = xasprintf("%s_%s", p, k);
    bool r = (strcmp(c, k) == 0 && !generic_name(k)) || strcmp(c, a) == 0 || strcmp(c, b) == 0;

    free(sg);
    free(a);
    free(b);
    return r;
}

static json_t *fk_items(const json_t *fks)
{
    json_t *out = json_array();
    size_t i;
    json_t *f;

    json_array_foreach(fks, i, f)
    {
        char *td = display(profile_jstr(f, "schema"), profile_jstr(f, "table"));
        char *pd = display(profile_jstr(f, "parent_schema"), profile_jstr(f, "parent_table"));

        json_array_append_new(out, json_pack("{s:s, s:s, s:O, s:s, s:O, s:O, s:s, s:s, s:s, s:s}",
                                             "name", profile_jstr(f, "name"), "table", td,
                                             "columns", json_object_get(f, "columns"), "parent", pd,
                                             "parent_columns", json_object_get(f, "parent_columns"),
                                             "validated", json_object_get(f, "validated"),
                                             "schema_name", profile_jstr(f, "schema"), "table_name",
                                             profile_jstr(f, "table"), "parent_schema_name",
                                             profile_jstr(f, "parent_schema"), "parent_table_name",
                                             profile_jstr(f, "parent_table")));
        free(td);
        free(pd);
    }
    return out;
}

json_t *profile_rel_plan(const ProfTable *tabs, size_t n, const json_t *fks)
{
    json_t *cands = json_array();

    for (size_t a = 0; a < n; a++) {
        const ProfTable *t = &tabs[a];

        if (t->error)
            continue;
        for (size_t i = 0; i < t->def->ncols; i++) {
            const ProfCol *c = &t->cols[i];

            if (c->in_fk)
                continue;
            for (size_t b = 0; b < n; b++) {
                const ProfTable *p = &tabs[b];

                if (b == a || p->error)
                    continue;
                for (size_t k = 0; k < p->def->ncols; k++) {
                    const ProfCol *pk = &p->cols[k];
                    const char *how;

                    if (!names_match(c->name, p->def->name, pk->name) || !types_match(c, pk) ||
                        !(how = unique_how(p, k)) || json_array_size(cands) >= MAX_CANDIDATES)
                        continue;
                    json_array_append_new(
                        cands,
                        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "table",
                                  t->def->display, "column", c->name, "parent", p->def->display,
                                  "parent_column", pk->name, "parent_unique", how, "schema_name",
                                  t->def->schema, "table_name", t->def->name, "parent_schema_name",
                                  p->def->schema, "parent_table_name", p->def->name));
                }
            }
        }
    }
    return json_pack("{s:o, s:o}", "foreign_keys", fk_items(fks), "candidates", cands);
}

/* "p.a = t.x AND p.b = t.y" and "t.x IS NOT NULL AND ..." and the example expression. */
static void join_terms(PGconn *conn, const json_t *cols, const json_t *pcols, Buf *eq, Buf *nn,
                       Buf *ex)
{
    size_t n = json_array_size(cols);

    if (n > 1)
        buf_puts(ex, "ROW(");
    for (size_t i = 0; i < n; i++) {
        char *c = pgconn_ident(conn, json_string_value(json_array_get(cols, i)));
        char *k = pgconn_ident(conn, json_string_value(json_array_get(pcols, i)));

        buf_printf(eq, "%sp.%s = t.%s", i ? " AND " : "", k, c);
        buf_printf(nn, "%st.%s IS NOT NULL", i ? " AND " : "", c);
        buf_printf(ex, "%st.%s", i ? ", " : "", c);
        free(c);
        free(k);
    }
    buf_puts(ex, n > 1 ? ")::text" : "::text");
}

static int check(PGconn *conn, const ProfCtx *ctx, json_t *item, const json_t *cols,
                 const json_t *pcols, json_t **res)
{
    Buf sql = BUF_INIT, eq = BUF_INIT, nn = BUF_INIT, ex = BUF_INIT;
    SqlParams p = {0};
    char *parent = pgconn_qualified(conn, profile_jstr(item, "parent_schema_name"),
                                    profile_jstr(item, "parent_table_name"));
    int rc;

    join_terms(conn, cols, pcols, &eq, &nn, &ex);
    buf_printf(&sql,
               "SELECT jsonb_build_object('checked', count(*), 'missing', count(*) FILTER (WHERE"
               " NOT EXISTS (SELECT 1 FROM %s AS p WHERE %s)), 'examples', jsonb_build_array("
               "min(%s COLLATE \"C\") FILTER (WHERE NOT EXISTS (SELECT 1 FROM %s AS p WHERE %s)),"
               " max(%s COLLATE \"C\") FILTER (WHERE NOT EXISTS (SELECT 1 FROM %s AS p"
               " WHERE %s))))::text",
               parent, buf_cstr(&eq), buf_cstr(&ex), parent, buf_cstr(&eq), buf_cstr(&ex), parent,
               buf_cstr(&eq));
    profile_sql_from(conn, ctx, profile_jstr(item, "schema_name"), profile_jstr(item, "table_name"),
                     &sql, &p);
    buf_printf(&sql, " WHERE %s", buf_cstr(&nn));
    rc = profile_query_json(conn, buf_cstr(&sql), &p, res);
    free(parent);
    buf_release(&sql);
    buf_release(&eq);
    buf_release(&nn);
    buf_release(&ex);
    sqlp_release(&p);
    return rc;
}

/* The two examples (min and max of the missing values) without nulls or repeats. */
static json_t *examples(const json_t *res)
{
    json_t *out = json_array();
    json_t *ex = json_object_get(res, "examples");
    json_t *a = json_array_get(ex, 0), *b = json_array_get(ex, 1);

    if (json_is_string(a))
        json_array_append(out, a);
    if (json_is_string(b) && !json_equal(a, b))
        json_array_append(out, b);
    return out;
}

static int savepoint_wrap(PGconn *conn, int rc)
{
    if (rc < 0) {
        char msg[1024];

        snprintf(msg, sizeof(msg), "%s", tm_error());
        if (pgconn_exec(conn, "ROLLBACK TO SAVEPOINT tidemark_profile_rel") < 0)
            return rc;
        tm_fail(rc, "%s", msg);
        return rc;
    }
    return pgconn_exec(conn, "RELEASE SAVEPOINT tidemark_profile_rel");
}

int profile_rel_check_fk(PGconn *conn, const ProfCtx *ctx, json_t *fk)
{
    json_t *res = NULL;
    int rc = pgconn_exec(conn, "SAVEPOINT tidemark_profile_rel");

    if (rc == 0)
        rc = check(conn, ctx, fk, json_object_get(fk, "columns"),
                   json_object_get(fk, "parent_columns"), &res);
    rc = savepoint_wrap(conn, rc);
    if (rc < 0) {
        json_object_set_new(fk, "error", json_string(tm_error()));
        json_decref(res);
        return rc;
    }
    json_object_set_new(fk, "checked", json_integer(profile_jint(res, "checked")));
    json_object_set_new(fk, "orphans", json_integer(profile_jint(res, "missing")));
    json_object_set_new(fk, "examples", examples(res));
    json_decref(res);
    return 0;
}

int profile_rel_check_candidate(PGconn *conn, const ProfCtx *ctx, json_t *cand)
{
    json_t *res = NULL, *cols, *pcols;
    long long checked, missing;
    int rc = pgconn_exec(conn, "SAVEPOINT tidemark_profile_rel");

    cols = json_pack("[O]", json_object_get(cand, "column"));
    pcols = json_pack("[O]", json_object_get(cand, "parent_column"));
    if (rc == 0)
        rc = check(conn, ctx, cand, cols, pcols, &res);
    json_decref(cols);
    json_decref(pcols);
    rc = savepoint_wrap(conn, rc);
    if (rc < 0) {
        json_object_set_new(cand, "error", json_string(tm_error()));
        json_decref(res);
        return rc;
    }
    checked = profile_jint(res, "checked");
    missing = profile_jint(res, "missing");
    json_object_set_new(cand, "checked", json_integer(checked));
    json_object_set_new(cand, "missing", json_integer(missing));
    json_object_set_new(
        cand, "containment_pct",
        json_real(checked ? floor(10000.0 * (double)(checked - missing) / (double)checked) / 100.0
                          : 0.0));
    json_object_set_new(cand, "missing_examples", examples(res));
    json_decref(res);
    return 0;
}
