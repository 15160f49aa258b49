/*
 * Target sessions of the PostgreSQL sink: opening one with the settings every
 * apply and copy session needs, and a small pool of idle ones for the copy
 * workers. A table's initial copy needs several short target round trips
 * (its plan, the emptiness check, recording the plan, the COPY itself); a new
 * connection for each cost ~25 ms apiece, a fixed cost per table that dwarfed
 * the copy of small tables (issue 17). The pool holds only sessions that are
 * connected and outside any transaction, and is emptied whenever the copy
 * workers go idle, so no session lingers once the copy is done.
 */
#include "sinks/pg/pgsink_int.h"
#include "connectors/pg/pgconn.h"
#include "core/error.h"

int pgsink_open_session(PgSink *s, PGconn **out)
{
    PGconn *conn;
    int rc = pgconn_open(&s->cfg->target.conn, PGCONN_NORMAL, "target", &conn);

    if (rc < 0)
        return rc;
    if (PQsetClientEncoding(conn, s->encoding) != 0) {
        rc = tm_fail(-EINVAL, "target: cannot set client_encoding %s: %s", s->encoding,
                     pgconn_errmsg(conn, NULL));
        goto fail;
    }
    /* replica: the target's triggers and FK checks must not fire twice for
     * what the source already validated and cascaded. read-write: a database
     * frozen by cutover or rollback (docs/CUTOVER.md) still takes the stream. */
    rc = pgconn_exec(conn, "SET session_replication_role = replica; SET DateStyle = ISO;"
                           " SET default_transaction_read_only = off;"
                           " SET IntervalStyle = postgres; SET extra_float_digits = 3;"
                           " SET statement_timeout = 0; SET lock_timeout = 0;"
                           " SET idle_in_transaction_session_timeout = 0;"
                           /* A COMMIT tidemark reports to the source as flushed must
                            * survive a crash of the target: with synchronous_commit
                            * off the slot would confirm commits an immediate
                            * shutdown then loses. Stronger settings are kept. */
                           " SELECT set_config('synchronous_commit', 'on', false)"
                           " WHERE current_setting('synchronous_commit') = 'off'");
    if (rc < 0) {
        rc = tm_fail_ctx(rc, "target: setting up the apply session (the target user needs the"
                             " right to set session_replication_role)");
        goto fail;
    }
    *out = conn;
    return 0;
fail:
    PQfinish(conn);
    return rc;
}

/* Usable as it is: connected, no transaction, no result or COPY pending. */
static bool session_reusable(PGconn *conn)
{
    return pgconn_alive(conn) && PQtransactionStatus(conn) == PQTRANS_IDLE && !PQisBusy(conn);
}

int pgsink_session_get(PgSink *s, PGconn **out)
{
    PGconn *conn = NULL;

    for (;;) {
        pthread_mutex_lock(&s->pool_mu);
        conn = s->npool > 0 ? s->pool[--s->npool] : NULL;
        pthread_mutex_unlock(&s->pool_mu);
        if (!conn)
            return pgsink_open_session(s, out);
        if (session_reusable(conn)) {
            *out = conn;
            return 0;
        }
        PQfinish(conn);
    }
}

void pgsink_session_put(PgSink *s, PGconn *conn)
{
    if (!conn)
        return;
    if (session_reusable(conn)) {
        pthread_mutex_lock(&s->pool_mu);
        if (s->npool < PGSINK_POOL_MAX) {
            s->pool[s->npool++] = conn;
            conn = NULL;
        }
        pthread_mutex_unlock(&s->pool_mu);
    }
    if (conn)
        PQfinish(conn);
}

void pgsink_sessions_close(PgSink *s)
{
    PGconn *drop[PGSINK_POOL_MAX];
    int n;

    pthread_mutex_lock(&s->pool_mu);
    n = s->npool;
    for (int i = 0; i < n; i++)
        drop[i] = s->pool[i];
    s->npool = 0;
    pthread_mutex_unlock(&s->pool_mu);
    for (int i = 0; i < n; i++)
        PQfinish(drop[i]);
}
