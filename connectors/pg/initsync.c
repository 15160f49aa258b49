/*
 * Single-connection initial copy (see initsync.h). Rows stream through one
 * CopyData message at a time, so memory stays flat whatever the table size
 * (invariant 6). Everything lands in one target transaction with the
 * watermark: a crash before its commit leaves the target as it was, and the
 * next start redoes the copy from a fresh slot.
 */
#include "connectors/pg/initsync.h"
#include "connectors/pg/pgconn.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <string.h>
#include <time.h>

static double now_secs(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *column_list(PGconn *conn, const SourceTable *t)
{
    Buf b = BUF_INIT;

    for (size_t i = 0; i < t->ncols; i++) {
        char *q = pgconn_ident(conn, t->cols[i]);

        buf_printf(&b, "%s%s", i ? ", " : "", q);
        free(q);
    }
    return b.data ? b.data : xstrdup("");
}

static int expect_copy(PGconn *conn, const char *sql, ExecStatusType want, const char *what)
{
    PGresult *res = PQexec(conn, sql);
    int rc = 0;

    if (PQresultStatus(res) != want)
        rc = tm_fail(-EIO, "%s: %s", what, pgconn_errmsg(conn, res));
    PQclear(res);
    return rc;
}

static int finish_copy(PGconn *conn, const char *what)
{
    PGresult *res;
    int rc = 0;

    while ((res = PQgetResult(conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0)
            rc = tm_fail(-EIO, "%s: %s", what, pgconn_errmsg(conn, res));
        PQclear(res);
    }
    return rc;
}

static int copy_table(PGconn *src, PGconn *dst, const SourceTable *t)
{
    char *scols = column_list(src, t);
    char *dcols = column_list(dst, t);
    char *sq = pgconn_qualified(src, t->schema, t->name);
    char *dq = pgconn_qualified(dst, t->schema, t->name);
    char *ssql = xasprintf("COPY (SELECT %s FROM %s%s) TO STDOUT", scols,
                           t->relkind == 'p' ? "" : "ONLY ", sq);
    char *dsql = xasprintf("COPY %s (%s) FROM STDIN", dq, dcols);
    long long rows = 0, bytes = 0;
    double start = now_secs(), last = start;
    char *row = NULL;
    int n, rc;

    rc = expect_copy(src, ssql, PGRES_COPY_OUT, "source: COPY TO STDOUT");
    if (rc < 0)
        goto out;
    rc = expect_copy(dst, dsql, PGRES_COPY_IN, "target: COPY FROM STDIN");
    if (rc < 0)
        goto out;
    while ((n = PQgetCopyData(src, &row, 0)) > 0) {
        if (PQputCopyData(dst, row, n) != 1) {
            rc = tm_fail(-EIO, "target: %s", pgconn_errmsg(dst, NULL));
            goto out;
        }
        PQfreemem(row);
        row = NULL;
        rows++;
        bytes += n;
        if ((rows & 4095) == 0 && now_secs() - last > 5.0) {
            last = now_secs();
            log_write(LOG_LVL_INFO, t->display, LSN_INVALID,
                      "initial copy: %lld rows, %.1f MB so far", rows, bytes / 1e6);
        }
    }
    if (n == -2) {
        rc = tm_fail(-EIO, "source: %s", pgconn_errmsg(src, NULL));
        goto out;
    }
    rc = finish_copy(src, "source: COPY TO STDOUT");
    if (rc < 0)
        goto out;
    if (PQputCopyEnd(dst, NULL) != 1) {
        rc = tm_fail(-EIO, "target: %s", pgconn_errmsg(dst, NULL));
        goto out;
    }
    rc = finish_copy(dst, "target: COPY FROM STDIN");
    if (rc < 0)
        goto out;
    log_write(LOG_LVL_INFO, t->display, LSN_INVALID,
              "initial copy done: %lld rows, %.1f MB in %.1f s", rows, bytes / 1e6,
              now_secs() - start);
out:
    if (row)
        PQfreemem(row);
    if (rc < 0)
        rc = tm_fail_ctx(rc, "initial copy of %s", t->display);
    free(scols);
    free(dcols);
    free(sq);
    free(dq);
    free(ssql);
    free(dsql);
    return rc;
}

int initsync_run(PGconn *src, PGconn *dst, const SourceTables *tabs, const char *snapshot,
                 Lsn consistent, const char *pipeline)
{
    char *lit = PQescapeLiteral(src, snapshot, strlen(snapshot));
    char *sql = lit ? xasprintf("SET TRANSACTION SNAPSHOT %s", lit) : NULL;
    char lsnbuf[24];
    const char *params[2] = {pipeline, lsn_format(consistent, lsnbuf, sizeof(lsnbuf))};
    int rc;

    if (lit)
        PQfreemem(lit);
    if (!sql)
        return tm_fail(-ENOMEM, "out of memory");
    rc = pgconn_exec(src, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (rc == 0)
        rc = pgconn_exec(src, sql);
    free(sql);
    if (rc < 0)
        return tm_fail_ctx(rc, "source: entering the exported snapshot");
    rc = pgconn_exec(dst, "BEGIN");
    for (size_t i = 0; rc == 0 && i < tabs->n; i++)
        rc = copy_table(src, dst, &tabs->t[i]);
    if (rc == 0)
        rc = pgconn_query(dst,
                          "INSERT INTO tidemark.watermark (pipeline, lsn, commit_time,"
                          " updated_at) VALUES ($1, $2::pg_lsn, NULL, now())"
                          " ON CONFLICT (pipeline) DO UPDATE SET lsn = excluded.lsn,"
                          " updated_at = excluded.updated_at",
                          2, params, NULL);
    if (rc == 0)
        rc = pgconn_exec(dst, "COMMIT");
    if (rc < 0) {
        PQclear(PQexec(dst, "ROLLBACK"));
        PQclear(PQexec(src, "ROLLBACK"));
        return rc;
    }
    return pgconn_exec(src, "COMMIT");
}
