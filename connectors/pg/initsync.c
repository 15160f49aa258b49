/*
 * Initial copy (see initsync.h). Rows pass one CopyData message at a time, so
 * memory stays flat whatever the table size (invariant 6). Each table commits
 * on its own with its sync state: a crash redoes only the tables that had not
 * committed, in a new snapshot with a new sync LSN.
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

static char *select_sql(PGconn *conn, const TableDef *t)
{
    Buf b = BUF_INIT;
    char *q = pgconn_qualified(conn, t->schema, t->name);

    buf_puts(&b, "COPY (SELECT ");
    for (size_t i = 0; i < t->ncols; i++) {
        char *col = pgconn_ident(conn, t->cols[i].name);

        buf_printf(&b, "%s%s", i ? ", " : "", col);
        free(col);
    }
    /* ONLY: inheritance children are tables of their own; a partitioned
     * table's rows live in its partitions, published under its name. */
    buf_printf(&b, " FROM %s%s) TO STDOUT", t->relkind == 'p' ? "" : "ONLY ", q);
    free(q);
    return b.data;
}

static int copy_one(PGconn *src, Sink *sink, const TableDef *t, Lsn sync_lsn)
{
    char *sql = select_sql(src, t);
    SinkCopy *sc = NULL;
    PGresult *res;
    long long rows = 0, bytes = 0;
    double start = now_secs(), last = start;
    char *row = NULL;
    int n, rc;

    res = PQexec(src, sql);
    free(sql);
    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        rc = tm_fail(-EIO, "source: COPY TO STDOUT: %s", pgconn_errmsg(src, res));
        PQclear(res);
        goto out;
    }
    PQclear(res);
    rc = sink->ops->copy_open(sink, t, sync_lsn, &sc);
    if (rc < 0)
        goto drain;
    while ((n = PQgetCopyData(src, &row, 0)) > 0) {
        rc = sink->ops->copy_rows(sc, row, (size_t)n);
        PQfreemem(row);
        row = NULL;
        if (rc < 0)
            goto drain;
        rows++;
        bytes += n;
        if ((rows & 8191) == 0 && now_secs() - last > 5.0) {
            last = now_secs();
            log_write(LOG_LVL_INFO, t->display, LSN_INVALID,
                      "initial copy: %lld rows, %.1f MB so far", rows, bytes / 1e6);
        }
    }
    if (n == -2) {
        rc = tm_fail(-EIO, "source: %s", pgconn_errmsg(src, NULL));
        goto out;
    }
    while ((res = PQgetResult(src)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0)
            rc = tm_fail(-EIO, "source: COPY TO STDOUT: %s", pgconn_errmsg(src, res));
        PQclear(res);
    }
    if (rc == 0)
        rc = sink->ops->copy_finish(sc, true);
    if (rc == 0)
        log_write(LOG_LVL_INFO, t->display, sync_lsn,
                  "initial copy done: %lld rows, %.1f MB in %.1f s", rows, bytes / 1e6,
                  now_secs() - start);
    goto out;
drain:
    /* Leave the source connection usable: cancel, then read the rest away. */
    {
        PGcancel *cancel = PQgetCancel(src);
        char errbuf[256];

        if (cancel) {
            PQcancel(cancel, errbuf, sizeof(errbuf));
            PQfreeCancel(cancel);
        }
    }
    while ((n = PQgetCopyData(src, &row, 0)) > 0) {
        PQfreemem(row);
        row = NULL;
    }
    while ((res = PQgetResult(src)) != NULL)
        PQclear(res);
out:
    if (sc) {
        if (rc < 0)
            sink->ops->copy_finish(sc, false);
        sink->ops->copy_free(sc);
    }
    if (rc < 0)
        rc = tm_fail_ctx(rc, "initial copy of %s", t->display);
    return rc;
}

int initsync_copy(PGconn *src, Sink *sink, TableDef *const *tables, size_t n, const char *snapshot,
                  Lsn sync_lsn)
{
    char *lit = PQescapeLiteral(src, snapshot, strlen(snapshot));
    char *sql;
    int rc;

    if (!lit)
        return tm_fail(-ENOMEM, "out of memory");
    sql = xasprintf("SET TRANSACTION SNAPSHOT %s", lit);
    PQfreemem(lit);
    rc = pgconn_exec(src, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (rc == 0)
        rc = pgconn_exec(src, sql);
    free(sql);
    if (rc < 0)
        return tm_fail_ctx(rc, "source: entering the exported snapshot");
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = copy_one(src, sink, tables[i], sync_lsn);
    PQclear(PQexec(src, rc == 0 ? "COMMIT" : "ROLLBACK"));
    return rc;
}
