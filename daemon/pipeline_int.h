/*
 * Internals of one pipeline, shared by its files: pipeline.c (the loop and
 * the stream), pipeline_setup.c (startup: tables, publication, slots) and
 * pipeline_copy.c (initial-copy state per table and the stream filter that
 * keeps the copy and the stream exact, invariant 3).
 */
#ifndef TM_PIPELINE_INT_H
#define TM_PIPELINE_INT_H

#include "config/config.h"
#include "connectors/pg/repl.h"
#include "connectors/pg/tablesync.h"
#include "core/arena.h"
#include "core/relcache.h"
#include "core/table.h"
#include "core/transform/mapping.h"
#include "daemon/offload.h"
#include "sinks/sink.h"

#include <ev.h>
#include <libpq-fe.h>
#include <stdbool.h>

/* What the stream knows of a table's initial copy. */
typedef struct TableState {
    bool planned; /* parts known */
    bool synced;  /* every part committed */
    bool uniform; /* every part has the same sync LSN (then: lsn) */
    Lsn lsn;
    int nparts;
    CopyPart *parts;
    int key_col; /* column of TableDef for PART_KEY mapping, -1 otherwise */
    bool summary_logged;
    /* counters for /metrics */
    unsigned long long applied[4]; /* insert, update, delete, truncate */
    unsigned long long skipped_copy;
    unsigned long long filtered;     /* stream changes the mapping's filter kept out */
    unsigned long long dead_letters; /* stream changes dead-lettered */
} TableState;

/* A committed source transaction not yet durable on the sink (for lag). */
typedef struct PendingTxn {
    Lsn end_lsn;
    PgTime commit_time;
} PendingTxn;

typedef struct Pipeline {
    Config *cfg;
    struct ev_loop *loop;
    ReplConn *repl;
    Sink *sink;
    TableSet tabs;
    TableState *tstate;
    TableSync *tsync;
    RelCache *rels;
    Arena *arena;
    char *encoding;

    ev_io repl_r, repl_w, sink_r, sink_w;
    ev_timer status_timer, reconnect_timer, sink_timer, progress_timer;
    ev_timer coalesce_timer; /* caught up with the source: listen again shortly */
    ev_signal sig_term, sig_int;
    ev_async copy_async;
    struct PostDataJob *post_data; /* schema: copy's post-data restore running */
    bool defer_stream;             /* schema: copy waits for post-data */

    /* Blocking work runs off the loop (daemon/offload.h), one worker per peer. */
    struct Offload *src_jobs, *dst_jobs;
    bool stream_starting; /* a job owns repl: connecting, START_REPLICATION */
    bool sink_job;        /* a job owns sink: reconnecting (sink_down) */
    Lsn durable_at_loss;  /* durable() while the sink belongs to its reconnect job */
    bool lookup_wait;     /* lookup_frame waits for an id_map answer */
    bool sink_busy;       /* lookup_frame waits for the sink's checked batch to commit */
    WalFrame lookup_frame;
    struct StreamIdMap *idmap; /* the stream's id_map lookups (pipeline_idmap.c) */
    struct FkJob *fk;          /* schema: copy foreign keys to validate */

    bool stopping;  /* SIGTERM/SIGINT received */
    bool streaming; /* replication connection is in CopyBoth */
    bool paused;    /* backpressure: not reading the replication socket */
    bool held;      /* waiting for table held_table's copy */
    int held_table;
    WalFrame held_frame; /* non-transactional sinks: the change to apply on release */
    bool rewind;         /* transactional sinks: restart from durable once settled */
    bool in_txn;
    bool skip_txn;
    TxnInfo txn;
    Lsn skip_before; /* transactions committed before this were applied already */
    Lsn received;
    Lsn reported;
    double backoff;
    double copy_started;
    bool copy_done_logged;
    int rc; /* result of pipeline_run */
    unsigned long long n_changes, n_txns, n_skipped_copy;

    /* service: health, lag, metrics, reload */
    bool sink_down;     /* target lost: reconnecting */
    bool ready_sent;    /* READY=1 went to systemd */
    Lsn server_wal_end; /* the source's WAL end as last reported by it */
    PgTime last_applied_commit_time;
    PendingTxn *ptxn; /* FIFO of committed, not yet durable transactions */
    size_t ptxn_head, ptxn_count, ptxn_cap;
    unsigned long long received_bytes, errors_source, errors_target;
    long long slot_retained_bytes; /* -1: unknown */
    PGconn *monitor; /* source SQL session: the source worker's (heartbeats, slot, reload) */
    bool monitor_busy, reload_busy, reload_again, clear_error_pending;
    ev_timer monitor_timer, watchdog_timer;
    ev_signal sig_hup;
    struct HttpServer *http;
    struct VerifyLoop *verify; /* continuous verification (verify.interval_s) */
    double last_retained_warning;
} Pipeline;

/* A job of the source or target worker for one pipeline (daemon/offload.h). */
typedef struct PipelineJob {
    OffloadJob base;
    Pipeline *p;
} PipelineJob;

/* pipeline.c */
OffloadJob *pipeline_job_new(Pipeline *p, OffloadFn run, OffloadFn done);
void pipeline_job_free(OffloadJob *j); /* a done() that only frees */
void pipeline_fail(Pipeline *p, int rc);
/* The sink's durable position; the last known one while the target is down. */
Lsn pipeline_durable(const Pipeline *p);
/* An id_map answer arrived: handle the frame that waited for it. */
void pipeline_lookup_answered(Pipeline *p);
void pipeline_release_hold(Pipeline *p);
/* Every table's initial copy has committed. */
void pipeline_copies_complete(Pipeline *p);

/* Lag: seconds since the oldest committed source transaction not yet durable. */
double pipeline_lag_seconds(const Pipeline *p);
long long pipeline_lag_bytes(const Pipeline *p);

/* pipeline_idmap.c: id_map lookups of the stream, answered by the target worker. */
int pipeline_idmap_attach(Pipeline *p, MappingPlan *plan);
void pipeline_idmap_new_frame(Pipeline *p); /* answers kept for a frame are dropped */
void pipeline_idmap_free(Pipeline *p);

/* pipeline_service.c: systemd notify, /metrics, health, heartbeats, reload. */
int pipeline_service_bind(Pipeline *p); /* the HTTP port, before setup creates anything */
int pipeline_service_start(Pipeline *p);
void pipeline_service_stop(Pipeline *p);
void pipeline_service_ready(Pipeline *p); /* the stream is up (again) */
/* A SIGHUP that waited (for a reload or the schema restore) runs now. */
void pipeline_service_reload_pending(Pipeline *p);

/* pipeline_setup.c: everything before the loop; *start is where streaming begins. */
int pipeline_setup(Pipeline *p, Lsn *start);
/* schema: copy — whether post-data is still to restore after the copies. */
int pipeline_schema_pending(Pipeline *p, bool *pending);

/*
 * The slot vanished (err -ENOENT from the stream start): -ESHUTDOWN when a
 * cutover or rollback switched this pipeline over (the daemon stops cleanly),
 * else -ENOENT saying the changes after the watermark cannot be streamed.
 * Blocking: a worker's job.
 */
int pipeline_slot_gone(const Config *cfg);

/* pipeline_fk.c: schema: copy — foreign keys created NOT VALID now (once
 * post-data is restored), validated once every table has caught up. */
typedef struct FkJob FkJob;
int pipeline_fk_prepare(Pipeline *p);
void pipeline_fk_stop(Pipeline *p);

/* pipeline_copy.c */
enum { FILTER_APPLY = 0, FILTER_SKIP = 1, FILTER_HOLD = 2 };

/*
 * Decides what the stream does with a row change of table idx given the
 * table's copy: apply it, skip it (the copy has it), or hold the stream until
 * the copy commits. *as may point to a rewritten change (a key update
 * between two parts copied at different points becomes a delete or insert).
 */
int pipeline_filter_row(Pipeline *p, int idx, const RelEntry *rel, const Change *c,
                        const Change **as, Change *scratch);
/* For TRUNCATE: whether table idx takes it (held: the caller waits). */
int pipeline_filter_table(Pipeline *p, int idx);

/* Stops the pipeline when too many rows failed early in the initial load. */
void pipeline_check_early_errors(Pipeline *p);

/*
 * The copy state of every table of tabs as the sink stored it (blocking, any
 * thread: the sink reads it through a session of its own); *out is for
 * pipeline_copy_begin, or copystate_free.
 */
int pipeline_copy_load(Sink *sink, const TableSet *tabs, TableState **out);
void copystate_free(TableState *ts, size_t n);
/* On the loop: takes tstate (of p->tabs) and starts workers for the tables not yet copied. */
int pipeline_copy_begin(Pipeline *p, TableState *tstate);
/* Both, for startup (before the loop runs). */
int pipeline_copy_start(Pipeline *p);
void pipeline_copy_stop(Pipeline *p);
void pipeline_copy_free(Pipeline *p);

#endif
