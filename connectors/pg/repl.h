/*
 * The logical replication connection to the source: slot management, the
 * START_REPLICATION stream in CopyBoth mode, non-blocking frame reads for the
 * event loop, and standby status updates. It knows nothing of sinks: the
 * caller decides which flush LSN is safe to report (invariant 1).
 */
#ifndef TM_REPL_H
#define TM_REPL_H

#include "config/config.h"
#include "connectors/pg/walproto.h"

#include <libpq-fe.h>
#include <stdbool.h>

typedef struct ReplConn ReplConn;

ReplConn *repl_new(const Config *cfg);
void repl_free(ReplConn *rc);

int repl_connect(ReplConn *rc);
void repl_disconnect(ReplConn *rc);
PGconn *repl_pgconn(ReplConn *rc);

/*
 * Slot lookup and removal over a normal SQL connection (walsender sessions
 * only speak the simple query protocol). *active: a walsender streams it now.
 */
int repl_slot_lookup(PGconn *sql, const char *slot, bool *exists, bool *active, Lsn *confirmed);
int repl_drop_slot(PGconn *sql, const char *slot);

/*
 * Creates a pgoutput slot and exports a snapshot whose visible data is
 * exactly the state at *consistent: a transaction is in the snapshot iff its
 * commit LSN is below it. The snapshot stays valid until the next command on
 * this connection; *snapshot is malloc'd. A temporary slot vanishes with the
 * connection (used only for its snapshot). With snapshot NULL nothing is
 * exported.
 */
int repl_create_slot(ReplConn *rc, const char *name, bool temporary, Lsn *consistent,
                     char **snapshot);

/*
 * While CREATE_REPLICATION_SLOT waits (for every transaction open on the
 * source to end): every second stop(arg) is asked whether to give up (the
 * command is then cancelled, -ECANCELED), and every waiting_every seconds
 * waiting(arg, seconds so far) may say what it waits for.
 */
typedef struct ReplWait {
    bool (*stop)(void *arg);
    void (*waiting)(void *arg, double seconds);
    double waiting_every;
    void *arg;
} ReplWait;

int repl_create_slot_wait(ReplConn *rc, const char *name, bool temporary, Lsn *consistent,
                          char **snapshot, const ReplWait *w);

/*
 * Logs the transactions open on the source that a slot being created waits
 * for (pid, database, age, state, query; prepared ones too), using sql.
 */
void repl_log_open_transactions(PGconn *sql, const char *slot, double seconds);

/* -ENOENT: the slot does not exist (dropped, e.g. by a cutover). */
int repl_start(ReplConn *rc, Lsn start);

/*
 * Reads one frame without blocking. Returns 1 with *frame (valid until the
 * next call), 0 when no complete frame is buffered, or a negative code when
 * the stream ended or failed.
 */
int repl_read(ReplConn *rc, WalFrame *frame);

/* Reads what the socket has into libpq's buffer. */
int repl_consume(ReplConn *rc);

int repl_send_status(ReplConn *rc, Lsn write, Lsn flush, bool reply);

/* Flushes queued output; 1 if more remains (wait for writability). */
int repl_flush(ReplConn *rc);

int repl_socket(ReplConn *rc);

#endif
