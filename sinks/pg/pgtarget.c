/*
 * The target's tables and column types, read in one catalog query per target
 * session (see pgtarget.h). Tables created later are simply unknown: the sink
 * then falls back to what needs no catalog (one statement per row, ONLY).
 */
#include "sinks/pg/pgtarget.h"
#include "connectors/pg/pgconn.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/xmalloc.h"

#include <stdlib.h>
#include <string.h>

static int cmp_table(const void *a, const void *b)
{
    const TargetTable *x = a, *y = b;
    int c = strcmp(x->schema, y->schema);

    return c ? c : strcmp(x->name, y->name);
}

/* Unique and exclusion indexes that are checked as each row changes. */
static int load_indexes(PGconn *conn, TargetCatalog *out)
{
    PGresult *res;
    int rc = pgconn_query(
        conn,
        "SELECT n.nspname, c.relname, i.indexrelid, i.indexprs IS NOT NULL OR i.indpred IS NOT"
        " NULL, (SELECT array_agg(a.attname ORDER BY a.attnum) FROM pg_attribute a WHERE"
        " a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey))::text[]"
        " FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid"
        " WHERE (i.indisunique OR i.indisexclusion) AND NOT coalesce(k.condeferrable, false)"
        " AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
        0, NULL, &res);

    if (rc < 0)
        return tm_fail_ctx(rc, "target: reading the unique indexes of its tables");
    for (int i = 0; i < PQntuples(res); i++) {
        TargetTable *t =
            (TargetTable *)pgtarget_find(out, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
        TargetIndex *x;
        const char *arr = PQgetvalue(res, i, 4);

        if (!t)
            continue;
        t->idx = xrealloc(t->idx, (t->nidx + 1) * sizeof(TargetIndex));
        x = &t->idx[t->nidx++];
        memset(x, 0, sizeof(*x));
        x->whole = PQgetvalue(res, i, 3)[0] == 't';
        /* {a,b,"c d"}: names as array_out writes them */
        if (!PQgetisnull(res, i, 4) && arr[0] == '{') {
            const char *p = arr + 1;

            while (*p && *p != '}') {
                Buf name = BUF_INIT;

                if (*p == '"') {
                    for (p++; *p && *p != '"'; p++) {
                        if (*p == '\\' && p[1])
                            p++;
                        buf_putc(&name, *p);
                    }
                    if (*p == '"')
                        p++;
                } else {
                    while (*p && *p != ',' && *p != '}')
                        buf_putc(&name, *p++);
                }
                x->cols = xrealloc(x->cols, (x->ncols + 1) * sizeof(char *));
                x->cols[x->ncols++] = xstrdup(buf_cstr(&name));
                buf_release(&name);
                if (*p == ',')
                    p++;
            }
        }
    }
    PQclear(res);
    return 0;
}

static bool index_has(const TargetIndex *x, const char *col)
{
    for (size_t i = 0; i < x->ncols; i++)
        if (strcmp(x->cols[i], col) == 0)
            return true;
    return false;
}

bool pgtarget_column_checked(const TargetTable *t, const char *col, const char *const *keys,
                             size_t nkeys)
{
    for (size_t i = 0; t && i < t->nidx; i++) {
        const TargetIndex *x = &t->idx[i];
        bool all_keys = !x->whole && nkeys > 0;

        for (size_t k = 0; k < nkeys && all_keys; k++)
            all_keys = index_has(x, keys[k]);
        if (all_keys)
            continue; /* rows with different keys never collide in it */
        if (x->whole || index_has(x, col))
            return true;
    }
    return false;
}

int pgtarget_load(PGconn *conn, TargetCatalog *out)
{
    PGresult *res;
    int rc = pgconn_query(conn,
                          "SELECT n.nspname, c.relname, c.relkind::text, a.attname,"
                          " format_type(a.atttypid, a.atttypmod)"
                          " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                          " LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0"
                          " AND NOT a.attisdropped"
                          " WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog',"
                          " 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'"
                          " ORDER BY c.oid, a.attnum",
                          0, NULL, &res);
    int nrows;

    memset(out, 0, sizeof(*out));
    if (rc < 0)
        return tm_fail_ctx(rc, "target: reading the catalog of its tables");
    nrows = PQntuples(res);
    out->tables = xcalloc(nrows ? (size_t)nrows : 1, sizeof(TargetTable));
    for (int i = 0; i < nrows;) {
        TargetTable *t = &out->tables[out->n++];
        int j = i;

        while (j < nrows && strcmp(PQgetvalue(res, j, 0), PQgetvalue(res, i, 0)) == 0 &&
               strcmp(PQgetvalue(res, j, 1), PQgetvalue(res, i, 1)) == 0)
            j++;
        t->schema = xstrdup(PQgetvalue(res, i, 0));
        t->name = xstrdup(PQgetvalue(res, i, 1));
        t->relkind = PQgetvalue(res, i, 2)[0];
        t->cols = xcalloc((size_t)(j - i), sizeof(TargetColumn));
        for (int k = i; k < j; k++) {
            if (PQgetisnull(res, k, 3))
                continue; /* a table without columns */
            t->cols[t->ncols].name = xstrdup(PQgetvalue(res, k, 3));
            t->cols[t->ncols].type = xstrdup(PQgetvalue(res, k, 4));
            t->ncols++;
        }
        i = j;
    }
    PQclear(res);
    qsort(out->tables, out->n, sizeof(TargetTable), cmp_table);
    return load_indexes(conn, out);
}

void pgtarget_release(TargetCatalog *c)
{
    for (size_t i = 0; i < c->n; i++) {
        TargetTable *t = &c->tables[i];

        for (size_t k = 0; k < t->ncols; k++) {
            free(t->cols[k].name);
            free(t->cols[k].type);
        }
        free(t->cols);
        for (size_t k = 0; k < t->nidx; k++) {
            for (size_t m = 0; m < t->idx[k].ncols; m++)
                free(t->idx[k].cols[m]);
            free(t->idx[k].cols);
        }
        free(t->idx);
        free(t->schema);
        free(t->name);
    }
    free(c->tables);
    memset(c, 0, sizeof(*c));
}

const TargetTable *pgtarget_find(const TargetCatalog *c, const char *schema, const char *name)
{
    TargetTable key = {.schema = (char *)schema, .name = (char *)name};

    if (!c->n)
        return NULL;
    return bsearch(&key, c->tables, c->n, sizeof(TargetTable), cmp_table);
}

const char *pgtarget_column_type(const TargetTable *t, const char *col)
{
    for (size_t i = 0; t && i < t->ncols; i++)
        if (strcmp(t->cols[i].name, col) == 0)
            return t->cols[i].type;
    return NULL;
}
