/*
 * libpq helpers (see pgconn.h). Errors keep the server's primary message and
 * SQLSTATE, which is what an operator searches for.
 */
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <stdlib.h>
#include <string.h>

/* Server notices ("relation already exists, skipping") are routine: debug level. */
static void notice_to_log(void *arg, const char *message)
{
    char msg[512];

    snprintf(msg, sizeof(msg), "%s", message);
    msg[strcspn(msg, "\n")] = '\0';
    log_debug("%s: %s", (const char *)arg, msg);
}

/*
 * Defaults for every connection tidemark opens, placed before the user's
 * conninfo so a value it (or PGCONNECT_TIMEOUT) sets wins: a host that drops
 * packets fails the connect after connect_timeout instead of hanging, and
 * TCP keepalives plus tcp_user_timeout end an established connection whose
 * peer vanished (an idle one after about keepalives_idle + interval * count
 * seconds, one with unacknowledged data after tcp_user_timeout ms). libpq
 * ignores the TCP settings on Unix-domain sockets.
 */
static int connect_defaults(const char **keys, const char **vals)
{
    static const char *const dk[] = {"keepalives", "keepalives_idle", "keepalives_interval",
                                     "keepalives_count", "tcp_user_timeout"};
    static const char *const dv[] = {"1", "10", "5", "3", "30000"};
    int n = 0;

    if (!getenv("PGCONNECT_TIMEOUT")) {
        keys[n] = "connect_timeout";
        vals[n++] = PGCONN_CONNECT_TIMEOUT_S;
    }
    for (size_t i = 0; i < sizeof(dk) / sizeof(dk[0]); i++) {
        keys[n] = dk[i];
        vals[n++] = dv[i];
    }
    return n;
}

int pgconn_open(const ConfigEndpoint *ep, PgConnKind kind, const char *what, PGconn **out)
{
    const char *keys[16];
    const char *vals[16];
    int n = connect_defaults(keys, vals);
    int m = config_connect_params(ep, keys + n, vals + n, 5);
    PGconn *conn;

    if (m < 0)
        return m;
    n += m;
    keys[n] = "application_name";
    vals[n++] = "tidemark";
    if (kind == PGCONN_REPLICATION) {
        keys[n] = "replication";
        vals[n++] = "database";
    }
    keys[n] = NULL;
    vals[n] = NULL;
    conn = PQconnectdbParams(keys, vals, 1);
    if (!conn)
        return tm_fail(-ENOMEM, "cannot connect to %s: out of memory", what);
    if (PQstatus(conn) != CONNECTION_OK) {
        char msg[512];

        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
        msg[strcspn(msg, "\n")] = '\0';
        PQfinish(conn);
        return tm_fail(-ECONNREFUSED, "cannot connect to %s: %s", what, msg);
    }
    PQsetNoticeProcessor(conn, notice_to_log, (void *)what);
    *out = conn;
    return 0;
}

bool pgconn_alive(PGconn *conn)
{
    return conn && PQstatus(conn) == CONNECTION_OK && PQconsumeInput(conn) &&
           PQstatus(conn) == CONNECTION_OK;
}

const char *pgconn_errmsg(PGconn *conn, const PGresult *res)
{
    static _Thread_local char msg[1024];
    const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (m) {
        snprintf(msg, sizeof(msg), "%s (SQLSTATE %s)", m, code ? code : "?");
    } else {
        snprintf(msg, sizeof(msg), "%s",
                 res && PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res)
                                                     : PQerrorMessage(conn));
        msg[strcspn(msg, "\n")] = '\0';
    }
    return msg;
}

int pgconn_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                 PGresult **out)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        int rc = tm_fail(-EIO, "%s", pgconn_errmsg(conn, res));

        PQclear(res);
        return rc;
    }
    if (out)
        *out = res;
    else
        PQclear(res);
    return 0;
}

int pgconn_exec(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = tm_fail(-EIO, "%s", pgconn_errmsg(conn, res));
    PQclear(res);
    return rc;
}

char *pgconn_ident(PGconn *conn, const char *name)
{
    char *q = PQescapeIdentifier(conn, name, strlen(name));
    char *r;

    if (!q)
        xalloc_die();
    r = xstrdup(q);
    PQfreemem(q);
    return r;
}

char *pgconn_qualified(PGconn *conn, const char *schema, const char *name)
{
    char *s = pgconn_ident(conn, schema);
    char *n = pgconn_ident(conn, name);
    char *r = xasprintf("%s.%s", s, n);

    free(s);
    free(n);
    return r;
}
