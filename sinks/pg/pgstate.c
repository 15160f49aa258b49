/*
 * pgstate_ensure (see pgstate.h). The lock is session-level and the DDL runs
 * in a transaction of its own that begins once the lock is granted. A
 * transaction-level lock (pg_advisory_xact_lock) taken inside the DDL's
 * transaction is not enough: a session takes in other sessions' catalog
 * changes at transaction start, so a session that had looked for schema
 * tidemark earlier (verify, profile) would still believe it missing after
 * the previous holder created it, and fail on the same unique index.
 * pgstate_record_error: the error a pipeline or applier stops with.
 */
#include "sinks/pg/pgstate.h"
#include "connectors/pg/pgconn.h"
#include "core/buf.h"
#include "core/error.h"

int pgstate_ensure(PGconn *conn, const char *ddl)
{
    Buf sql = BUF_INIT;
    int rc;

    /* Inside a caller's transaction the DDL would commit after the unlock. */
    if (PQtransactionStatus(conn) != PQTRANS_IDLE)
        return tm_fail(-EINVAL, "target: schema tidemark is created outside a transaction block");
    rc = pgconn_exec(conn, "SELECT pg_advisory_lock(" PGSTATE_LOCK_KEY ")");
    if (rc < 0)
        return tm_fail_ctx(rc, "target: taking the lock on schema tidemark");
    /* Several statements in one Query message run as one transaction. */
    buf_puts(&sql, "CREATE SCHEMA IF NOT EXISTS tidemark");
    if (ddl) {
        buf_puts(&sql, ";");
        buf_puts(&sql, ddl);
    }
    rc = pgconn_exec(conn, buf_cstr(&sql));
    buf_release(&sql);
    /* Not pgconn_exec: the DDL's error, if any, is the message to keep. The
     * server releases the lock anyway if the session is gone. */
    PQclear(PQexec(conn, "SELECT pg_advisory_unlock(" PGSTATE_LOCK_KEY ")"));
    return rc;
}

void pgstate_record_error(PGconn *conn, const char *pipeline, const char *msg, bool halted)
{
    const char *params[2] = {pipeline, msg};

    pgconn_query(conn,
                 "INSERT INTO tidemark.pipeline_state (pipeline, key, value) VALUES"
                 " ($1, 'last_error', $2) ON CONFLICT (pipeline, key) DO UPDATE SET"
                 " value = excluded.value, updated_at = now()",
                 2, params, NULL);
    if (halted)
        pgconn_query(conn,
                     "INSERT INTO tidemark.pipeline_state (pipeline, key, value) VALUES"
                     " ($1, 'halted', $2) ON CONFLICT (pipeline, key) DO NOTHING",
                     2, params, NULL);
}
