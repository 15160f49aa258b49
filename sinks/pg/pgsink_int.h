/*
 * Internals shared by the PostgreSQL sink's files: pgsink.c (connection,
 * state tables, copy sessions, the ops table) and pgapply.c (the pipelined
 * stream apply). Not for use outside sinks/pg.
 */
#ifndef TM_PGSINK_INT_H
#define TM_PGSINK_INT_H

#include "core/buf.h"
#include "sinks/pg/pgsink.h"

#include <libpq-fe.h>

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
    char op;        /* 'I', 'U', 'D', 'T' for PEND_STMT */
    bool check_one; /* the command must affect exactly one row */
    bool gate;      /* PEND_SYNC: the batch's checks are in; COMMIT may follow */
    bool got_result;
    Lsn lsn; /* PEND_STMT: source commit LSN; PEND_SYNC: batch end LSN (0: none) */
    PgTime commit_time;
    size_t bytes; /* parameter bytes queued with it */
    char table[96];
    char key[80]; /* check_one statements: the row they locate, for the error */
} Pending;

/*
 * UPDATE statements prepared per relation: one per set of columns the new
 * row carries (unchanged TOAST is left out), so a wide table could make
 * thousands. The least recently used beyond this many is deallocated.
 */
#define PGSINK_MAX_UPDATE_SHAPES 16

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
    Lsn gate_lsn;
    PgTime gate_commit_time;
    size_t inflight_bytes;
    Lsn queued_lsn; /* highest LSN a queued batch will make durable */
    Lsn durable;
    PgTime durable_commit_time;
    unsigned long stmt_seq;
    bool dl_prepared; /* tm_dl (dead-letter INSERT) prepared in this session */
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
    /* Partitioned tables of the target, "schema.name" sorted (no ONLY for them). */
    char **partitioned;
    size_t npartitioned;
};

static inline PgSink *pgsink_of(Sink *s)
{
    return (PgSink *)s;
}

/* Forgets the session's statements and partitioned-table list (new connection). */
void pgapply_reset_session(PgSink *s);

/* Opens and sets up an apply session (used for the stream and copy sessions). */
int pgsink_open_session(PgSink *s, PGconn **out);

int pgapply_start(Sink *s, Lsn lsn);
int pgapply_txn_begin(Sink *s, const TxnInfo *txn);
int pgapply_apply(Sink *s, RelEntry *rel, const Change *chg, const TxnInfo *txn);
int pgapply_truncate(Sink *s, RelEntry **rels, uint32_t nrels, uint8_t flags, const TxnInfo *txn);
int pgapply_txn_commit(Sink *s, const TxnInfo *txn);
int pgapply_dead_letter(Sink *s, const RelEntry *src_rel, const Change *chg, const TxnInfo *txn,
                        const char *error);
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
