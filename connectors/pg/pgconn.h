/*
 * Small libpq helpers shared by the source connector and the PostgreSQL
 * sink: connecting from a config endpoint, running a command and turning a
 * failure into the tidemark error contract, and quoting identifiers through
 * libpq (invariant 7: nothing is spliced into SQL by hand).
 */
#ifndef TM_PGCONN_H
#define TM_PGCONN_H

#include "config/config.h"

#include <libpq-fe.h>
#include <stdbool.h>

typedef enum PgConnKind {
    PGCONN_NORMAL,
    PGCONN_REPLICATION, /* replication=database: walsender with SQL access */
} PgConnKind;

/*
 * Seconds a connection attempt may take unless the conninfo's connect_timeout
 * or PGCONNECT_TIMEOUT says otherwise (docs/OPERATIONS.md).
 */
#define PGCONN_CONNECT_TIMEOUT_S "10"

/*
 * what names the peer in messages ("source", "target"). Adds the defaults
 * above and TCP keepalives; blocks up to the connect timeout: never call it
 * on the daemon's loop (daemon/offload.h).
 */
int pgconn_open(const ConfigEndpoint *ep, PgConnKind kind, const char *what, PGconn **out);

/* Runs sql (no parameters); accepts COMMAND_OK or TUPLES_OK. */
int pgconn_exec(PGconn *conn, const char *sql);

/*
 * Runs sql with text parameters; on success *out holds the result (caller
 * PQclear()s it). Accepts COMMAND_OK or TUPLES_OK.
 */
int pgconn_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                 PGresult **out);

/* The first line of the server's error for a result or connection. */
const char *pgconn_errmsg(PGconn *conn, const PGresult *res);

/* Connected, and still so once the input waiting on it is read: a session
 * the server closed while it sat idle shows it only then. Does not block. */
bool pgconn_alive(PGconn *conn);

/* Quoted identifier / schema-qualified name, malloc'd. */
char *pgconn_ident(PGconn *conn, const char *name);
char *pgconn_qualified(PGconn *conn, const char *schema, const char *name);

#endif
