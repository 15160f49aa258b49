/*
 * Replication connection (see repl.h). Replication commands take the slot
 * and publication names as identifiers and string literals of the walsender
 * grammar, which has no escape syntax of its own: names are validated by the
 * config (slot) or have their quotes doubled here (publication).
 */
#include "connectors/pg/repl.h"
#include "connectors/pg/pgconn.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

struct ReplConn {
    const Config *cfg;
    PGconn *conn;
    char *copybuf; /* last PQgetCopyData buffer, freed on the next read */
    Buf out;
};

ReplConn *repl_new(const Config *cfg)
{
    ReplConn *rc = xcalloc(1, sizeof(*rc));

    rc->cfg = cfg;
    return rc;
}

void repl_disconnect(ReplConn *rc)
{
    if (rc->copybuf) {
        PQfreemem(rc->copybuf);
        rc->copybuf = NULL;
    }
    if (rc->conn) {
        PQfinish(rc->conn);
        rc->conn = NULL;
    }
}

void repl_free(ReplConn *rc)
{
    if (!rc)
        return;
    repl_disconnect(rc);
    buf_release(&rc->out);
    free(rc);
}

int repl_connect(ReplConn *rc)
{
    repl_disconnect(rc);
    return pgconn_open(&rc->cfg->source.conn, PGCONN_REPLICATION, "source (replication)",
                       &rc->conn);
}

PGconn *repl_pgconn(ReplConn *rc)
{
    return rc->conn;
}

int repl_socket(ReplConn *rc)
{
    return rc->conn ? PQsocket(rc->conn) : -1;
}

int repl_slot_lookup(PGconn *sql, const char *slot, bool *exists, bool *active, Lsn *confirmed)
{
    const char *params[1] = {slot};
    PGresult *res;
    int err = pgconn_query(
        sql,
        "SELECT coalesce(plugin, '(physical)'), active, confirmed_flush_lsn, database ="
        " current_database(), coalesce(database, '-') FROM"
        " pg_replication_slots WHERE slot_name = $1",
        1, params, &res);

    if (err < 0)
        return tm_fail_ctx(err, "looking up slot %s", slot);
    *exists = PQntuples(res) == 1;
    *active = false;
    *confirmed = LSN_INVALID;
    if (*exists) {
        if (strcmp(PQgetvalue(res, 0, 0), "pgoutput") != 0 || PQgetvalue(res, 0, 3)[0] != 't') {
            err = tm_fail(-EEXIST,
                          "replication slot %s exists but is not a pgoutput slot of this"
                          " database (plugin %s, database %s); it is left alone: choose another"
                          " source.slot",
                          slot, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 4));
        } else {
            *active = PQgetvalue(res, 0, 1)[0] == 't';
            if (!PQgetisnull(res, 0, 2))
                err = lsn_parse(PQgetvalue(res, 0, 2), confirmed);
        }
    }
    PQclear(res);
    return err;
}

int repl_drop_slot(PGconn *sql, const char *slot)
{
    const char *params[1] = {slot};
    int err = pgconn_query(sql, "SELECT pg_drop_replication_slot($1)", 1, params, NULL);

    if (err < 0)
        return tm_fail_ctx(err, "dropping slot %s", slot);
    return 0;
}

int repl_create_slot(ReplConn *rc, const char *name, bool temporary, Lsn *consistent,
                     char **snapshot)
{
    return repl_create_slot_wait(rc, name, temporary, consistent, snapshot, NULL);
}

/* Waits for the command's result, asking w what to do meanwhile. */
static int await_result(ReplConn *rc, const char *name, const ReplWait *w)
{
    double start = clock_mono_secs(), next_say = start + (w ? w->waiting_every : 0);

    while (PQisBusy(rc->conn)) {
        struct pollfd pfd = {.fd = PQsocket(rc->conn), .events = POLLIN};
        int n = poll(&pfd, 1, w ? 1000 : -1);

        if (n < 0 && errno != EINTR)
            return tm_fail(-errno, "creating replication slot %s: poll: %s", name, strerror(errno));
        if (n > 0 && !PQconsumeInput(rc->conn))
            return 0; /* the error is in the result */
        if (!w || !PQisBusy(rc->conn))
            continue;
        if (w->stop && w->stop(w->arg)) {
            PGcancel *c = PQgetCancel(rc->conn);
            char buf[256];

            if (c) {
                PQcancel(c, buf, sizeof(buf));
                PQfreeCancel(c);
            }
            PGresult *res;

            while ((res = PQgetResult(rc->conn)) != NULL)
                PQclear(res);
            return tm_fail(-ECANCELED, "creating replication slot %s: stopped while it waited",
                           name);
        }
        if (w->waiting && clock_mono_secs() >= next_say) {
            next_say = clock_mono_secs() + w->waiting_every;
            w->waiting(w->arg, clock_mono_secs() - start);
        }
    }
    return 0;
}

int repl_create_slot_wait(ReplConn *rc, const char *name, bool temporary, Lsn *consistent,
                          char **snapshot, const ReplWait *w)
{
    char *sql = xasprintf("CREATE_REPLICATION_SLOT \"%s\"%s LOGICAL pgoutput (SNAPSHOT '%s')", name,
                          temporary ? " TEMPORARY" : "", snapshot ? "export" : "nothing");
    PGresult *res = NULL, *extra;
    int err = 0;

    if (!PQsendQuery(rc->conn, sql)) {
        err =
            tm_fail(-EIO, "creating replication slot %s: %s", name, pgconn_errmsg(rc->conn, NULL));
        free(sql);
        return err;
    }
    free(sql);
    err = await_result(rc, name, w);
    if (err < 0)
        return err;
    res = PQgetResult(rc->conn);
    while ((extra = PQgetResult(rc->conn)) != NULL)
        PQclear(extra);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) < 3) {
        err = tm_fail(-EIO, "creating replication slot %s: %s", name, pgconn_errmsg(rc->conn, res));
        goto out;
    }
    err = lsn_parse(PQgetvalue(res, 0, 1), consistent);
    if (err < 0)
        goto out;
    if (snapshot)
        *snapshot = xstrdup(PQgetvalue(res, 0, 2));
out:
    PQclear(res);
    return err;
}

void repl_log_open_transactions(PGconn *sql, const char *slot, double seconds)
{
    PGresult *res;
    Buf b = BUF_INIT;
    int n;

    /* A new slot waits for the transactions that hold an xid (any database)
     * and for prepared ones. */
    if (pgconn_query(sql,
                     "SELECT format('pid %s (database %s, open for %s s, %s: %s)', pid, datname,"
                     " round(extract(epoch FROM now() - xact_start)), state,"
                     " left(regexp_replace(query, '\\s+', ' ', 'g'), 80)) FROM pg_stat_activity"
                     " WHERE backend_xid IS NOT NULL AND backend_type = 'client backend' AND"
                     " pid <> pg_backend_pid() UNION ALL SELECT format('prepared transaction %L"
                     " (database %s, prepared %s)', gid, database, prepared) FROM"
                     " pg_prepared_xacts ORDER BY 1",
                     0, NULL, &res) < 0) {
        log_info("creating slot %s has waited %.0f s for transactions open on the source to end"
                 " (cannot list them: %s)",
                 slot, seconds, tm_error());
        return;
    }
    n = PQntuples(res);
    for (int i = 0; i < n && i < 5; i++)
        buf_printf(&b, "%s%s", i ? "; " : "", PQgetvalue(res, i, 0));
    if (n > 5)
        buf_printf(&b, "; and %d more", n - 5);
    log_info("creating slot %s waits for %d transaction%s open on the source to end (%.0f s so"
             " far): %s. It starts from a point no open transaction spans: commit or end %s",
             slot, n, n == 1 ? "" : "s", seconds, n ? buf_cstr(&b) : "none left",
             n == 1 ? "it" : "them");
    PQclear(res);
    buf_release(&b);
}

static void append_literal_ident(Buf *b, const char *name)
{
    /* '"name"' with " doubled for the identifier list and ' doubled for the literal. */
    buf_puts(b, "'\"");
    for (const char *p = name; *p; p++) {
        if (*p == '"')
            buf_putc(b, '"');
        if (*p == '\'')
            buf_putc(b, '\'');
        buf_putc(b, *p);
    }
    buf_puts(b, "\"'");
}

/*
 * START_REPLICATION from a position before the slot's confirmed one does
 * not fail: the walsender silently starts at the confirmed position. Every
 * (re)start checks first, so changes the target lost (a crash after the
 * slot was told they were flushed) can never be skipped unnoticed.
 */
static int check_not_confirmed_past(ReplConn *rc, Lsn start)
{
    Buf sql = BUF_INIT;
    PGresult *res;
    Lsn confirmed = LSN_INVALID;
    int err = 0;

    /* The walsender's SQL takes no parameters; slot names are [a-z0-9_]. */
    buf_printf(&sql, "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '%s'",
               rc->cfg->source.slot);
    res = PQexec(rc->conn, buf_cstr(&sql));
    buf_release(&sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        err = tm_fail(-EIO, "looking up slot %s: %s", rc->cfg->source.slot,
                      pgconn_errmsg(rc->conn, res));
    else if (PQntuples(res) == 0)
        err = tm_fail(-ENOENT, "slot %s does not exist on the source", rc->cfg->source.slot);
    else if (!PQgetisnull(res, 0, 0))
        err = lsn_parse(PQgetvalue(res, 0, 0), &confirmed);
    PQclear(res);
    if (err == 0 && confirmed > start)
        err = tm_fail(TM_EDIVERGED,
                      "slot %s has confirmed " LSN_FMT
                      " but the target's durable position is " LSN_FMT
                      ": the target lost transactions it had reported as flushed (a"
                      " crash with synchronous_commit off, or a restore), and the source no"
                      " longer keeps them. Refusing to skip them: copy the pipeline's tables"
                      " again (see docs/OPERATIONS.md, \"Divergence\")",
                      rc->cfg->source.slot, LSN_ARGS(confirmed), LSN_ARGS(start));
    return err;
}

int repl_start(ReplConn *rc, Lsn start)
{
    Buf sql = BUF_INIT;
    PGresult *res;
    int err = start != LSN_INVALID ? check_not_confirmed_past(rc, start) : 0;

    if (err < 0)
        return err;
    buf_printf(&sql,
               "START_REPLICATION SLOT \"%s\" LOGICAL " LSN_FMT
               " (proto_version '1', messages 'true', publication_names ",
               rc->cfg->source.slot, LSN_ARGS(start));
    append_literal_ident(&sql, rc->cfg->source.publication);
    buf_puts(&sql, ")");
    res = PQexec(rc->conn, buf_cstr(&sql));
    if (PQresultStatus(res) != PGRES_COPY_BOTH)
        err = tm_fail(-EIO, "starting replication from slot %s: %s", rc->cfg->source.slot,
                      pgconn_errmsg(rc->conn, res));
    PQclear(res);
    buf_release(&sql);
    if (err == 0 && PQsetnonblocking(rc->conn, 1) != 0)
        err = tm_fail(-EIO, "source: cannot switch to non-blocking mode");
    return err;
}

int repl_consume(ReplConn *rc)
{
    if (!PQconsumeInput(rc->conn))
        return tm_fail(-EPIPE, "source replication connection: %s", pgconn_errmsg(rc->conn, NULL));
    return 0;
}

int repl_read(ReplConn *rc, WalFrame *frame)
{
    int n;

    if (rc->copybuf) {
        PQfreemem(rc->copybuf);
        rc->copybuf = NULL;
    }
    for (;;) {
        n = PQgetCopyData(rc->conn, &rc->copybuf, 1);
        if (n == 0)
            return 0;
        if (n == -1) {
            PGresult *res = PQgetResult(rc->conn);
            int err = tm_fail(-EPIPE, "source ended the replication stream: %s",
                              pgconn_errmsg(rc->conn, res));

            PQclear(res);
            return err;
        }
        if (n < 0)
            return tm_fail(-EPIPE, "source replication connection: %s",
                           pgconn_errmsg(rc->conn, NULL));
        int err = walproto_parse((const uint8_t *)rc->copybuf, (size_t)n, frame);
        if (err < 0)
            return err;
        return 1;
    }
}

int repl_send_status(ReplConn *rc, Lsn write, Lsn flush, bool reply)
{
    buf_clear(&rc->out);
    walproto_status(&rc->out, write, flush, flush, walproto_now(), reply);
    if (PQputCopyData(rc->conn, rc->out.data, (int)rc->out.len) != 1)
        return tm_fail(-EPIPE, "sending status update to the source: %s",
                       pgconn_errmsg(rc->conn, NULL));
    return repl_flush(rc);
}

int repl_flush(ReplConn *rc)
{
    int r = PQflush(rc->conn);

    if (r < 0)
        return tm_fail(-EPIPE, "source replication connection: %s", pgconn_errmsg(rc->conn, NULL));
    return r;
}
