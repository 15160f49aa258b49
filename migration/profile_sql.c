/*
 * The small amount of SQL plumbing the profiler adds on top of pgconn: a
 * growing list of text parameters (every value travels as one, invariant 7),
 * the FROM clause with the optional TABLESAMPLE, and running a query whose
 * single jsonb result becomes a jansson tree. The profiler asks PostgreSQL to
 * assemble its statistics as JSON so each pass is one statement of any shape;
 * a SQL_ASCII database can hand back bytes that are not UTF-8, which are
 * escaped before jansson (which insists on UTF-8) reads them.
 */
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/xmalloc.h"
#include "migration/profile_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sqlp_add(SqlParams *p, const char *value)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->v = xrealloc(p->v, (size_t)p->cap * sizeof(char *));
    }
    p->v[p->n++] = value ? xstrdup(value) : NULL;
    return p->n;
}

void sqlp_release(SqlParams *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->v[i]);
    free(p->v);
    memset(p, 0, sizeof(*p));
}

void profile_sql_from(PGconn *conn, const ProfCtx *ctx, const char *schema, const char *name,
                      Buf *sql, SqlParams *p)
{
    char *q = pgconn_qualified(conn, schema, name);

    buf_printf(sql, " FROM %s AS t", q);
    free(q);
    if (ctx->sample_pct > 0) {
        char pct[32];

        snprintf(pct, sizeof(pct), "%.6g", ctx->sample_pct);
        /* REPEATABLE: every pass over the table sees the same sampled blocks. */
        buf_printf(sql, " TABLESAMPLE SYSTEM ($%d::float8) REPEATABLE ($%d::float8)",
                   sqlp_add(p, pct), sqlp_add(p, "42"));
    }
}

int profile_query_json(PGconn *conn, const char *sql, const SqlParams *p, json_t **out)
{
    PGresult *res;
    json_error_t jerr;
    char *clean;
    int rc = pgconn_query(conn, sql, p ? p->n : 0, p ? (const char *const *)p->v : NULL, &res);

    *out = NULL;
    if (rc < 0)
        return rc;
    if (PQntuples(res) != 1 || PQnfields(res) != 1) {
        PQclear(res);
        return tm_fail(-EPROTO, "expected one JSON value, got %d rows", PQntuples(res));
    }
    if (PQgetisnull(res, 0, 0)) {
        PQclear(res);
        *out = json_null();
        return 0;
    }
    clean = profile_json_sanitize(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
    PQclear(res);
    *out = json_loads(clean, JSON_DECODE_ANY, &jerr);
    free(clean);
    if (!*out)
        return tm_fail(-EPROTO, "cannot parse the server's JSON: %s", jerr.text);
    return 0;
}
