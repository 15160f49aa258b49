/*
 * Integrity on the target, in the target snapshot of the run: every declared
 * foreign key of a verified table (pg_constraint contype 'f', which the sink
 * does not enforce while it applies with session_replication_role = replica)
 * and every implicit one from the config must have no orphans; the business
 * rules must hold. Each check is one counting statement plus a few examples,
 * identified by the row's key; names are quoted by libpq and values travel
 * as parameters (an untyped parameter takes the column's type, so a range
 * rule compares numbers as numbers and dates as dates).
 */
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/xmalloc.h"
#include "migration/profile_int.h"
#include "migration/verify_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char **json_names(const char *text, size_t *n)
{
    json_t *a = json_loads(text, 0, NULL);
    char **out = xcalloc(json_array_size(a) + 1, sizeof(char *));
    size_t i;
    json_t *v;

    *n = 0;
    json_array_foreach(a, i, v) out[(*n)++] = xstrdup(json_string_value(v));
    json_decref(a);
    return out;
}

int verify_declared_fks(PGconn *dst, VTable *tabs, size_t n, VFk **out, size_t *nout)
{
    const char **sch = xcalloc(n + 1, sizeof(char *)), **nam = xcalloc(n + 1, sizeof(char *));
    char *as, *an;
    const char *p[2];
    PGresult *res;
    int rc;

    for (size_t i = 0; i < n; i++) {
        sch[i] = tabs[i].def->schema;
        nam[i] = tabs[i].def->name;
    }
    as = profile_sql_text_array(sch, n);
    an = profile_sql_text_array(nam, n);
    p[0] = as;
    p[1] = an;
    rc = pgconn_query(
        dst,
        "SELECT con.conname, cn.nspname, c.relname, rn.nspname, r.relname,"
        " to_json(ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o)"
        "  JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o)),"
        " to_json(ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, o)"
        "  JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o))"
        " FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid"
        " JOIN pg_namespace cn ON cn.oid = c.relnamespace"
        " JOIN pg_class r ON r.oid = con.confrelid JOIN pg_namespace rn ON rn.oid = r.relnamespace"
        " WHERE con.contype = 'f' AND (cn.nspname, c.relname) IN"
        "  (SELECT * FROM unnest($1::text[], $2::text[]))"
        " ORDER BY cn.nspname, c.relname, con.conname",
        2, p, &res);
    free(as);
    free(an);
    free(sch);
    free(nam);
    if (rc < 0)
        return tm_fail_ctx(rc, "target: reading foreign keys");
    *nout = (size_t)PQntuples(res);
    *out = xcalloc(*nout + 1, sizeof(VFk));
    for (int r = 0; r < PQntuples(res); r++) {
        VFk *fk = &(*out)[r];
        size_t nref;

        fk->name = xstrdup(PQgetvalue(res, r, 0));
        fk->table.schema = xstrdup(PQgetvalue(res, r, 1));
        fk->table.name = xstrdup(PQgetvalue(res, r, 2));
        fk->ref.schema = xstrdup(PQgetvalue(res, r, 3));
        fk->ref.name = xstrdup(PQgetvalue(res, r, 4));
        fk->cols = json_names(PQgetvalue(res, r, 5), &fk->ncols);
        fk->ref_cols = json_names(PQgetvalue(res, r, 6), &nref);
        fk->declared = true;
    }
    PQclear(res);
    return 0;
}

/* "jsonb_build_object('c1', t.c1, ...)" of cols, names as literals quoted by libpq. */
static void json_of(PGconn *c, Buf *b, const char *alias, char *const *cols, size_t n)
{
    buf_puts(b, "jsonb_build_object(");
    for (size_t i = 0; i < n; i++) {
        char *lit = PQescapeLiteral(c, cols[i], strlen(cols[i]));
        char *q = pgconn_ident(c, cols[i]);

        if (!lit)
            xalloc_die();
        buf_printf(b, "%s%s, %s.%s", i ? ", " : "", lit, alias, q);
        PQfreemem(lit);
        free(q);
    }
    buf_puts(b, ")");
}

/* Runs "SELECT count(*), examples FROM <from> WHERE <cond>" and fills the check object. */
static int count_examples(PGconn *dst, const char *from, const char *cond, const char *example,
                          const SqlParams *p, json_t *check)
{
    char *sql = xasprintf("SELECT count(*), (SELECT json_agg(e) FROM (SELECT %s AS e FROM %s"
                          " WHERE %s LIMIT %d) s)::text FROM %s WHERE %s",
                          example, from, cond, VERIFY_EXAMPLES, from, cond);
    PGresult *res;
    int rc = pgconn_query(dst, sql, p ? p->n : 0, p ? (const char *const *)p->v : NULL, &res);
    long long n;

    free(sql);
    if (rc < 0)
        return rc;
    n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    json_object_set_new(check, "failures", json_integer(n));
    json_object_set_new(check, "examples",
                        PQgetisnull(res, 0, 1) ? json_array()
                                               : json_loads(PQgetvalue(res, 0, 1), 0, NULL));
    json_object_set_new(check, "ok", json_boolean(n == 0));
    PQclear(res);
    return 0;
}

int verify_check_fk(PGconn *dst, const VFk *fk, json_t **out)
{
    char *child = pgconn_qualified(dst, fk->table.schema, fk->table.name);
    char *parent = pgconn_qualified(dst, fk->ref.schema, fk->ref.name);
    char *from = xasprintf("%s AS t", child);
    Buf cond = BUF_INIT, ex = BUF_INIT;
    char *tdisp = config_table_display(&fk->table), *rdisp = config_table_display(&fk->ref);
    json_t *cols = json_array(), *rcols = json_array();
    int rc;

    /* MATCH SIMPLE, as PostgreSQL enforces it: a NULL in the key means no reference */
    buf_puts(&cond, "true");
    for (size_t i = 0; i < fk->ncols; i++) {
        char *q = pgconn_ident(dst, fk->cols[i]);

        buf_printf(&cond, " AND t.%s IS NOT NULL", q);
        free(q);
        json_array_append_new(cols, json_string(fk->cols[i]));
        json_array_append_new(rcols, json_string(fk->ref_cols[i]));
    }
    buf_printf(&cond, " AND NOT EXISTS (SELECT 1 FROM %s AS r WHERE true", parent);
    for (size_t i = 0; i < fk->ncols; i++) {
        char *q = pgconn_ident(dst, fk->cols[i]), *rq = pgconn_ident(dst, fk->ref_cols[i]);

        buf_printf(&cond, " AND r.%s = t.%s", rq, q);
        free(q);
        free(rq);
    }
    buf_puts(&cond, ")");
    json_of(dst, &ex, "t", fk->cols, fk->ncols);
    *out = json_pack("{s:s, s:s, s:s, s:o, s:s, s:o, s:b}", "check", "foreign_key", "name",
                     fk->name, "table", tdisp, "columns", cols, "references", rdisp, "ref_columns",
                     rcols, "declared", fk->declared);
    rc = count_examples(dst, from, buf_cstr(&cond), buf_cstr(&ex), NULL, *out);
    if (rc < 0)
        rc = tm_fail_ctx(rc, "target: checking foreign key %s on %s", fk->name, tdisp);
    free(child);
    free(parent);
    free(from);
    free(tdisp);
    free(rdisp);
    buf_release(&cond);
    buf_release(&ex);
    return rc;
}

/* The example of a failing row: its key columns (or every column without a key) and cols. */
static void rule_example(PGconn *dst, const VTable *t, const VRule *r, Buf *b)
{
    char **names = xcalloc(t->nkey + r->ncols + 1, sizeof(char *));
    size_t n = 0;

    for (size_t k = 0; k < t->nkey; k++)
        names[n++] = t->cols[t->keyidx[k]].name;
    for (size_t c = 0; c < r->ncols; c++) {
        bool dup = false;

        for (size_t k = 0; k < n; k++)
            dup |= strcmp(names[k], r->cols[c]) == 0;
        if (!dup)
            names[n++] = r->cols[c];
    }
    json_of(dst, b, "t", names, n);
    free(names);
}

int verify_check_rule(PGconn *dst, const VTable *t, const VRule *r, json_t **out)
{
    Buf cond = BUF_INIT, ex = BUF_INIT, from = BUF_INIT;
    SqlParams p = {0};
    json_t *cols = json_array();
    char *q = pgconn_ident(dst, r->cols[0]);
    int rc;

    for (size_t c = 0; c < r->ncols; c++)
        json_array_append_new(cols, json_string(r->cols[c]));
    *out = json_pack("{s:s, s:s, s:s, s:o}", "check", "rule", "rule",
                     verify_rule_kind_name(r->kind), "table", t->def->display, "columns", cols);
    buf_printf(&from, "%s AS t", t->qdst);
    switch (r->kind) {
    case VR_NOT_NULL:
        buf_printf(&cond, "t.%s IS NULL", q);
        break;
    case VR_RANGE:
        buf_puts(&cond, "(false");
        if (r->min)
            buf_printf(&cond, " OR t.%s < $%d", q, sqlp_add(&p, r->min));
        if (r->max)
            buf_printf(&cond, " OR t.%s > $%d", q, sqlp_add(&p, r->max));
        buf_puts(&cond, ")");
        json_object_set_new(*out, "min", r->min ? json_string(r->min) : json_null());
        json_object_set_new(*out, "max", r->max ? json_string(r->max) : json_null());
        break;
    case VR_REGEX:
        buf_printf(&cond, "t.%s::text !~ $%d", q, sqlp_add(&p, r->pattern));
        json_object_set_new(*out, "pattern", json_string(r->pattern));
        break;
    case VR_ALLOWED: {
        char *arr = profile_sql_text_array((const char *const *)r->values, r->nvalues);
        json_t *vals = json_array();

        buf_printf(&cond, "t.%s::text <> ALL ($%d::text[])", q, sqlp_add(&p, arr));
        for (size_t i = 0; i < r->nvalues; i++)
            json_array_append_new(vals, json_string(r->values[i]));
        json_object_set_new(*out, "values", vals);
        free(arr);
        break;
    }
    case VR_UNIQUE: {
        /* one failure per duplicated value; rows with a NULL in the columns never collide */
        Buf g = BUF_INIT;

        buf_puts(&g, "true");
        for (size_t c = 0; c < r->ncols; c++) {
            char *cq = pgconn_ident(dst, r->cols[c]);

            buf_printf(&g, " AND t.%s IS NOT NULL", cq);
            free(cq);
        }
        buf_clear(&from);
        buf_puts(&from, "(SELECT ");
        json_of(dst, &from, "t", r->cols, r->ncols);
        buf_printf(&from,
                   " AS v, count(*) AS n FROM %s AS t WHERE %s GROUP BY 1 HAVING"
                   " count(*) > 1) AS d",
                   t->qdst, buf_cstr(&g));
        buf_release(&g);
        buf_puts(&cond, "true");
        buf_puts(&ex, "d.v || jsonb_build_object('rows', d.n)");
        break;
    }
    }
    if (r->kind != VR_UNIQUE)
        rule_example(dst, t, r, &ex);
    rc = count_examples(dst, buf_cstr(&from), buf_cstr(&cond), buf_cstr(&ex), &p, *out);
    if (rc < 0)
        rc = tm_fail_ctx(rc, "target: checking rule %s on %s.%s", verify_rule_kind_name(r->kind),
                         t->def->display, r->cols[0]);
    free(q);
    buf_release(&cond);
    buf_release(&ex);
    buf_release(&from);
    sqlp_release(&p);
    return rc;
}
