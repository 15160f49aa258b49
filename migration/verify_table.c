/*
 * One table's shape for verification, read from both catalogs: which key
 * splits it (primary key, else the replica identity index, else none), the
 * key's type, the target's columns (every source column must exist there,
 * compared by name so column order may differ), and the SQL fragments every
 * comparison query is built from. Also the session settings that make ::text
 * render identically on both sides, the two-sided query runner and the
 * throttle.
 */
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/xmalloc.h"
#include "migration/verify_int.h"
#include "core/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void verify_throttle(VThrottle *th, long long rows)
{
    double wait;

    if (!th || th->rate <= 0 || rows <= 0)
        return;
    pthread_mutex_lock(&th->mu);
    th->rows += (double)rows;
    wait = th->rows / (double)th->rate - (clock_mono_secs() - th->t0);
    pthread_mutex_unlock(&th->mu);
    if (wait > 0) {
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};

        nanosleep(&ts, NULL);
    }
}

int verify_session_setup(PGconn *c)
{
    if (PQsetClientEncoding(c, "UTF8") != 0)
        return tm_fail(-EIO, "cannot set the client encoding: %s", pgconn_errmsg(c, NULL));
    /* Every ::text the comparison hashes depends on these; both sides use the same. */
    return pgconn_exec(c, "SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC';"
                          " SET extra_float_digits = 3; SET IntervalStyle = 'postgres';"
                          " SET bytea_output = 'hex'; SET statement_timeout = 0;"
                          " SET idle_in_transaction_session_timeout = 0");
}

int verify_query2(PGconn *src, const char *sql_src, PGconn *dst, const char *sql_dst, int np,
                  const char *const *params, PGresult **rs, PGresult **rd)
{
    PGconn *c[2] = {src, dst};
    const char *q[2] = {sql_src, sql_dst};
    PGresult *out[2] = {NULL, NULL};
    const char *side[2] = {"source", "target"};
    int rc = 0;
    bool sent[2] = {false, false};

    /* Both statements run at once, each on its own server. */
    for (int i = 0; i < 2; i++) {
        if (!PQsendQueryParams(c[i], q[i], np, NULL, params, NULL, NULL, 0)) {
            rc = tm_fail(-EIO, "%s: %s", side[i], pgconn_errmsg(c[i], NULL));
            break;
        }
        sent[i] = true;
    }
    for (int i = 0; i < 2; i++) {
        PGresult *r;

        if (!sent[i])
            continue;
        while ((r = PQgetResult(c[i])) != NULL) {
            ExecStatusType st = PQresultStatus(r);

            if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK && rc == 0)
                rc = tm_fail(-EIO, "%s: %s", side[i], pgconn_errmsg(c[i], r));
            if (!out[i] && st == PGRES_TUPLES_OK)
                out[i] = r;
            else
                PQclear(r);
        }
    }
    if (rc == 0 && (!out[0] || !out[1]))
        rc = tm_fail(-EPROTO, "a comparison query returned no rows");
    if (rc < 0) {
        PQclear(out[0]);
        PQclear(out[1]);
        return rc;
    }
    *rs = out[0];
    *rd = out[1];
    return 0;
}

/* ---- shape ------------------------------------------------------------------ */

static const char *const KEY_SQL =
    /* the primary key, else the replica identity index: both unique and NOT NULL */
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid IN (20, 21, 23),"
    " t.typcollation <> 0, i.indexrelid"
    " FROM pg_index i JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) ON true"
    " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n"
    " JOIN pg_type t ON t.oid = a.atttypid"
    " WHERE i.indrelid = $1::oid AND (i.indisprimary OR i.indisreplident)"
    " ORDER BY i.indisprimary DESC, i.indexrelid, k.o";

static int load_key(PGconn *src, VTable *t)
{
    char oid[16];
    const char *p[1] = {oid};
    PGresult *res;
    int rc;

    snprintf(oid, sizeof(oid), "%u", t->def->oid);
    if ((rc = pgconn_query(src, KEY_SQL, 1, p, &res)) < 0)
        return tm_fail_ctx(rc, "reading the key of %s", t->def->display);
    t->keyidx = xcalloc(t->ncols + 1, sizeof(int));
    /* the columns of the first index only (the primary key when there is one) */
    for (int r = 0; r < PQntuples(res); r++) {
        if (strcmp(PQgetvalue(res, r, 4), PQgetvalue(res, 0, 4)) != 0)
            break;
        for (size_t c = 0; c < t->ncols; c++)
            if (strcmp(t->cols[c].name, PQgetvalue(res, r, 0)) == 0)
                t->keyidx[t->nkey++] = (int)c;
    }
    if (t->nkey == 1) {
        t->key_type = xstrdup(PQgetvalue(res, 0, 1));
        t->key_int = PQgetvalue(res, 0, 2)[0] == 't';
        t->key_collate = PQgetvalue(res, 0, 3)[0] == 't';
    }
    PQclear(res);
    if (t->nkey == 1)
        t->strategy = VS_RANGE;
    else if (t->nkey > 1)
        t->strategy = VS_HASH_KEY;
    else
        t->strategy = VS_HASH_ROW;
    return 0;
}

static int check_target(PGconn *dst, VTable *t)
{
    const char *p[2] = {t->def->schema, t->def->name};
    PGresult *res;
    int rc = pgconn_query(dst,
                          /* one row (NULL) for a table without columns */
                          "SELECT a.attname FROM pg_class c JOIN pg_namespace n ON n.oid ="
                          " c.relnamespace LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND"
                          " a.attnum > 0 AND NOT a.attisdropped"
                          " WHERE n.nspname = $1 AND c.relname = $2",
                          2, p, &res);

    if (rc < 0)
        return tm_fail_ctx(rc, "target: reading the columns of %s", t->def->display);
    if (PQntuples(res) == 0) {
        t->t_problem = xasprintf("table %s does not exist on the target", t->def->display);
    } else {
        for (size_t c = 0; c < t->ncols && !t->t_problem; c++) {
            bool found = false;

            for (int r = 0; r < PQntuples(res) && !found; r++)
                found = strcmp(PQgetvalue(res, r, 0), t->cols[c].name) == 0;
            if (!found)
                t->t_problem = xasprintf("column %s of %s does not exist on the target",
                                         t->cols[c].name, t->def->display);
        }
    }
    PQclear(res);
    t->t_found = t->t_problem == NULL;
    return 0;
}

/* "ROW(e1, e2, ...)::text" from each column's expression on one side. */
static char *row_text(const VTable *t, bool src, const int *only, size_t nonly)
{
    Buf b = BUF_INIT;
    size_t n = only ? nonly : t->ncols;

    buf_puts(&b, "ROW(");
    for (size_t i = 0; i < n; i++) {
        const VCol *c = &t->cols[only ? (size_t)only[i] : i];

        buf_printf(&b, "%s%s", i ? ", " : "", src ? c->src_expr : c->dst_expr);
    }
    buf_puts(&b, ")::text");
    buf_cstr(&b);
    return b.data;
}

static char *col_list(const VTable *t, bool src)
{
    Buf b = BUF_INIT;

    for (size_t i = 0; i < t->ncols; i++)
        buf_printf(&b, "%s%s", i ? ", " : "", src ? t->cols[i].src_expr : t->cols[i].dst_expr);
    buf_cstr(&b);
    return b.data;
}

/* The table's columns as [[name, type], ...] in attnum order, dropped ones left out. */
static int physical_columns(PGconn *c, const char *schema, const char *name, char **out)
{
    const char *p[2] = {schema, name};
    PGresult *res;
    int rc = pgconn_query(c,
                          "SELECT json_agg(json_build_array(a.attname,"
                          " format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum)::text"
                          " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
                          " JOIN pg_namespace n ON n.oid = c.relnamespace"
                          " WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0"
                          " AND NOT a.attisdropped",
                          2, p, &res);

    if (rc < 0)
        return rc;
    *out = xstrdup(PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

/*
 * The whole-row text (t::text) costs a third less than ROW(c1::text, ...)
 * but renders each value with its type's output function, which differs
 * from a ::text cast for a few types (bool, char(n), inet). It is used only
 * when both sides have exactly the compared columns, in the same order, with
 * the same types, and no column is called t; then both sides render alike.
 */
static int whole_row_ok(PGconn *src, PGconn *dst, const VTable *t, bool *ok)
{
    char *a = NULL, *b = NULL;
    json_t *cols;
    int rc;

    *ok = false;
    for (size_t i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i].name, "t") == 0)
            return 0;
    if ((rc = physical_columns(src, t->def->schema, t->def->name, &a)) == 0 &&
        (rc = physical_columns(dst, t->def->schema, t->def->name, &b)) == 0 && strcmp(a, b) == 0) {
        cols = json_loads(a, 0, NULL);
        *ok = json_array_size(cols) == t->ncols;
        for (size_t i = 0; *ok && i < t->ncols; i++)
            *ok = strcmp(json_string_value(json_array_get(json_array_get(cols, i), 0)),
                         t->cols[i].name) == 0;
        json_decref(cols);
    }
    free(a);
    free(b);
    return rc;
}

static void build_sql(PGconn *conn, VTable *t, bool whole_row)
{
    t->rowtext_src = whole_row ? xstrdup("t::text") : row_text(t, true, NULL, 0);
    t->rowtext_dst = whole_row ? xstrdup("t::text") : row_text(t, false, NULL, 0);
    t->hash_src = xasprintf("hashtextextended(%s, 0)", t->rowtext_src);
    t->hash_dst = xasprintf("hashtextextended(%s, 0)", t->rowtext_dst);
    t->cols_src = col_list(t, true);
    t->cols_dst = col_list(t, false);
    if (t->strategy == VS_RANGE) {
        char *q = pgconn_ident(conn, t->cols[t->keyidx[0]].name);

        t->keytext = xasprintf("t.%s::text", q);
        t->keycol = xasprintf("t.%s%s", q, t->key_collate ? " COLLATE \"C\"" : "");
        t->keyq = q;
    } else if (t->strategy == VS_HASH_KEY) {
        /* key columns are never transformed: one expression serves both sides */
        t->keytext = row_text(t, false, t->keyidx, t->nkey);
    }
    if (t->strategy != VS_RANGE) {
        /* the bucket hash: of the key, or of the whole row; masked to be non-negative */
        t->bhash_src = xasprintf("(hashtextextended(%s, 1) & 9223372036854775807)",
                                 t->strategy == VS_HASH_KEY ? t->keytext : t->rowtext_src);
        t->bhash_dst = xasprintf("(hashtextextended(%s, 1) & 9223372036854775807)",
                                 t->strategy == VS_HASH_KEY ? t->keytext : t->rowtext_dst);
    }
}

int verify_table_prepare(PGconn *src, PGconn *dst, VTable *t)
{
    char oid[16];
    const char *p[1] = {oid};
    PGresult *res;
    bool whole = false;
    int rc;

    t->ncols = t->def->ncols;
    t->cols = xcalloc(t->ncols + 1, sizeof(VCol));
    t->colnames = xcalloc(t->ncols + 1, sizeof(char *));
    for (size_t i = 0; i < t->ncols; i++) {
        char *q = pgconn_ident(src, t->def->cols[i].name);

        t->cols[i].name = xstrdup(t->def->cols[i].name);
        t->colnames[i] = t->cols[i].name;
        /* the transform hook (issue 4): today both sides compare the plain text */
        t->cols[i].src_expr = xasprintf("t.%s::text", q);
        t->cols[i].dst_expr = xasprintf("t.%s::text", q);
        free(q);
    }
    t->qsrc = pgconn_qualified(src, t->def->schema, t->def->name);
    t->qdst = pgconn_qualified(dst, t->def->schema, t->def->name);
    t->diffs = json_array();
    t->checks = json_array();
    if ((rc = load_key(src, t)) < 0)
        return rc;
    snprintf(oid, sizeof(oid), "%u", t->def->oid);
    if ((rc = pgconn_query(src, "SELECT reltuples FROM pg_class WHERE oid = $1::oid", 1, p, &res)) <
        0)
        return rc;
    t->est_rows = PQntuples(res) ? strtod(PQgetvalue(res, 0, 0), NULL) : 0;
    PQclear(res);
    if (t->map) {
        /* a mapped table is compared through its mapping (verify_map.c) */
        if ((rc = verify_map_prepare(src, dst, t)) < 0)
            return rc;
    } else if ((rc = check_target(dst, t)) < 0) {
        return rc;
    }
    if (!t->map && t->t_found && (rc = whole_row_ok(src, dst, t, &whole)) < 0)
        return rc;
    build_sql(src, t, whole);
    return 0;
}

void verify_table_release(VTable *t)
{
    verify_map_release(t);
    for (size_t i = 0; t->cols && i < t->ncols; i++) {
        free(t->cols[i].name);
        free(t->cols[i].src_expr);
        free(t->cols[i].dst_expr);
    }
    free(t->cols);
    free(t->colnames);
    free(t->keyidx);
    free(t->key_type);
    free(t->qsrc);
    free(t->qdst);
    free(t->t_problem);
    free(t->rowtext_src);
    free(t->rowtext_dst);
    free(t->hash_src);
    free(t->hash_dst);
    free(t->bhash_src);
    free(t->bhash_dst);
    free(t->keytext);
    free(t->keycol);
    free(t->keyq);
    free(t->cols_src);
    free(t->cols_dst);
    json_decref(t->diffs);
    json_decref(t->checks);
    free(t->error);
    memset(t, 0, sizeof(*t));
}
