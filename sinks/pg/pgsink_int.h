/*
 * Internals shared by the PostgreSQL sink's files: pgsink.c (connection,
 * state tables, copy sessions, the ops table) and pgapply.c (the pipelined
 * stream apply). Not for use outside sinks/pg.
 */
#ifndef TM_PGSINK_INT_H
#define TM_PGSINK_INT_H

#include "core/buf.h"
#include "sinks/pg/pgsink.h"
#include "sinks/pg/pgtarget.h"

#include <libpq-fe.h>
#include <pthread.h>

typedef enum PendKind {
    PEND_BEGIN,
    PEND_PREPARE,
    PEND_STMT,
    PEND_WATERMARK,
    PEND_COMMIT,
    PEND_ROLLBACK,
    PEND_SYNC,
    PEND_DEALLOCATE,
    PEND_POSITION, /* a caller's own position statement (pgsink_batch_position) */
} PendKind;

typedef struct Pending {
    PendKind kind;
    char op;     /* 'I', 'U', 'D', 'T' for PEND_STMT */
    long expect; /* the row count the command must have (-1: any) */
    bool gate;   /* PEND_SYNC: the batch's checks are in; COMMIT may follow */
    bool got_result;
    Lsn lsn; /* PEND_STMT: source commit LSN; PEND_SYNC: batch end LSN (0: none) */
    PgTime commit_time;
    size_t bytes; /* parameter bytes queued with it */
    char table[96];
    char key[80]; /* checked statements: the row(s) they locate, for the error */
} Pending;

/*
 * UPDATE statements prepared per relation: one per set of columns the new
 * row carries (unchanged TOAST is left out), so a wide table could make
 * thousands. The least recently used beyond this many is deallocated.
 */
#define PGSINK_MAX_UPDATE_SHAPES 16

/* Idle copy-side sessions kept at most (one per copy worker, typically). */
#define PGSINK_POOL_MAX 16

typedef struct PgSink PgSink;

typedef struct UpdStmt {
    struct UpdStmt *next;
    char *shape; /* per column: 'S' set / '-', then '|', then 'W' where / '-' */
    char name[24];
} UpdStmt;

typedef struct SinkRel {
    PgSink *sink;
    unsigned long session; /* the target session its statements live in */
    char *qname;
    char **qcols;
    uint16_t ncols;
    bool full; /* replica identity full: locate one row by all old values */
    bool only; /* not partitioned: UPDATE/DELETE/TRUNCATE ONLY (inheritance children are theirs) */
    char ins_name[24];
    char del_name[24];
    char *del_shape;
    UpdStmt *upds; /* most recently used first */
    int nupds;
    /* Set statements (pgrun.c): NULL when the relation cannot have them. */
    signed char set_ok;       /* 0 not decided yet, 1 yes, -1 no */
    char **qtypes;            /* per column: the target type to cast text to */
    bool *unique_checked;     /* per column: pgtarget_column_checked (UPDATEs go row by row) */
    struct Run *run;          /* changes gathered for one statement */
    struct SinkRel *run_next; /* PgSink.runs */
    const RelEntry *run_rel;  /* the relation r belongs to (names for errors) */
    struct RunStmts *stmts;   /* prepared set statements */
} SinkRel;

struct PgSink {
    Sink base;
    const Config *cfg;
    char *encoding; /* set by the first connect, then read-only: copy workers read it */
    PGconn *conn;
    bool pipelined;
    /* FIFO ring of pending results */
    Pending *pend;
    size_t pend_cap, pend_head, pend_count;
    /* batch */
    bool batch_open;
    bool txn_open;
    size_t batch_changes;
    size_t batch_txns;
    Lsn batch_end;
    PgTime batch_commit_time;
    /*
     * A closed batch whose statement results are not all in: its COMMIT is
     * sent only once every row count checked out (invariant 5), and no new
     * batch may begin before that COMMIT.
     */
    bool gated;
    /* A batch opened while the previous one is gated: gathered in memory
     * (set statements), its BEGIN sent once the previous COMMIT is. */
    bool begin_pending;
    Lsn gate_lsn;
    PgTime gate_commit_time;
    size_t inflight_bytes;
    size_t unflushed_bytes; /* sent since the last Sync or flush request */
    Lsn idle_pending;       /* a keepalive's position to write once nothing is open */
    Lsn queued_lsn;         /* highest LSN a queued batch will make durable */
    Lsn durable;
    PgTime durable_commit_time;
    unsigned long stmt_seq;
    bool dl_prepared;  /* tm_dl (dead-letter INSERT) prepared in this session */
    bool own_position; /* the caller writes its position per batch: no watermark */
    /* per-call scratch for parameter values */
    Buf scratch;
    const char **params;
    size_t *param_off;
    size_t params_cap;
    /* Server-side statements are per session: names to DEALLOCATE once the
     * batch using them is through, and the session they belong to. */
    unsigned long session;
    char **dealloc;
    size_t ndealloc, dealloc_cap;
    /* The target's tables and column types, read when the session starts. */
    TargetCatalog tcat;
    /* Relations with a set statement being gathered (SinkRel.run_next). */
    struct SinkRel *runs;
    size_t run_bytes; /* buffered in them */
    bool run_lost;    /* a run was freed unsent: the open batch must not commit */
    /* Idle copy-side sessions (pgsession.c), shared by the copy workers. */
    pthread_mutex_t pool_mu;
    PGconn *pool[PGSINK_POOL_MAX];
    int npool;
};

static inline PgSink *pgsink_of(Sink *s)
{
    return (PgSink *)s;
}

/* Forgets the session's statements, catalog and gathered runs (new connection). */
void pgapply_reset_session(PgSink *s);

/* pgapply.c: the pipelined command stream; every command gets a Pending. */
/* Before sending into the open batch: sends its pending BEGIN, or -EBUSY
 * while the previous batch is gated (the caller has changed nothing yet). */
int pgapply_ready(PgSink *s);
bool pgapply_can_send(const PgSink *s);
Pending *pgapply_pend_push(PgSink *s, PendKind kind);
int pgapply_send_failed(PgSink *s, const char *what);
int pgapply_send_prepare(PgSink *s, const char *name, const char *sql, const char *table);
void pgapply_stmt_name(PgSink *s, char *out, size_t len);
/* A statement name to DEALLOCATE once what is queued before it is through. */
void pgapply_dealloc_later(PgSink *s, unsigned long session, const char *name);
/* Parameters of the next statement: reset, then set 0..n-1 (copied). */
void pgapply_params_reset(PgSink *s, size_t n);
int pgapply_param_set(PgSink *s, size_t i, const ColValue *v, const char *table, const char *col);
void pgapply_param_text(PgSink *s, size_t i, const char *data, size_t len);
/* Sends prepared statement name; expect >= 0 is the row count it must report. */
int pgapply_send_stmt(PgSink *s, const char *name, size_t nparams, char op, long expect,
                      const char *table, Lsn lsn, const char *key, size_t nchanges);

/* pgrow.c: one statement per row change, prepared per relation shape. */
SinkRel *pgrow_rel(PgSink *s, RelEntry *rel);
int pgrow_apply(PgSink *s, RelEntry *rel, SinkRel *r, const Change *chg, const TxnInfo *txn);
/* Fills a divergence description ("id=42") of the W columns of t. */
void pgrow_describe(const RelEntry *rel, const char *wshape, const Tuple *t, char *out, size_t len);

/* pgrun.c: consecutive changes of one relation gathered into one set statement. */
/* Takes chg into r's run when it can (*taken), flushing the run first when
 * chg does not fit it; otherwise flushes r's run so chg may go row by row. */
int pgrun_add(PgSink *s, RelEntry *rel, SinkRel *r, const Change *chg, const TxnInfo *txn,
              bool *taken);
int pgrun_flush_all(PgSink *s);
void pgrun_discard_all(PgSink *s);
/* r is freed: its run goes (unsent) and its statements are deallocated later. */
void pgrun_release(PgSink *s, SinkRel *r);

/* pgsession.c: opens and sets up an apply session (the stream's, and copy
 * sessions). The copy side takes its sessions with session_get and gives
 * them back with session_put (kept when reusable, else closed);
 * sessions_close closes the pooled ones. Thread-safe. */
int pgsink_open_session(PgSink *s, PGconn **out);
int pgsink_session_get(PgSink *s, PGconn **out);
void pgsink_session_put(PgSink *s, PGconn *conn);
void pgsink_sessions_close(PgSink *s);

int pgapply_start(Sink *s, Lsn lsn);
int pgapply_txn_begin(Sink *s, const TxnInfo *txn);
int pgapply_apply(Sink *s, RelEntry *rel, const Change *chg, const TxnInfo *txn);
int pgapply_truncate(Sink *s, RelEntry **rels, uint32_t nrels, uint8_t flags, const TxnInfo *txn);
int pgapply_txn_commit(Sink *s, const TxnInfo *txn);
int pgapply_dead_letter(Sink *s, const RelEntry *src_rel, const Change *chg, const TxnInfo *txn,
                        const char *error);
int pgapply_barrier(Sink *s);
int pgapply_close_batch(Sink *s);
int pgapply_abort_batch(Sink *s);
int pgapply_idle_position(Sink *s, Lsn lsn);
int pgapply_process(Sink *s);
int pgapply_flush(Sink *s);
int pgapply_drain(Sink *s);

/* pgslot.c: the slot a first start created, in tidemark.pipeline_state. */
int pgslot_record(Sink *s, const char *slot, Lsn created_at);
int pgslot_recorded(Sink *s, char **slot, Lsn *created_at);

#endif
