/*
 * Internals of `tidemark apply` (applier.h), shared by its files: applier.c
 * (the loop, messages, batches, recovery), applier_pos.c (the offsets and
 * positions kept in the target: tidemark.kafka_offsets) and applier_table.c
 * (event tables: the target's catalog, decoding rows into change events,
 * mappings).
 */
#ifndef TM_APPLIER_INT_H
#define TM_APPLIER_INT_H

#include "config/config.h"
#include "connectors/kafka/kconsumer.h"
#include "connectors/kafka/kevent.h"
#include "core/arena.h"
#include "core/relcache.h"
#include "core/table.h"
#include "core/transform/mapping.h"
#include "daemon/offload.h"
#include "sinks/kafka/debezium.h"
#include "sinks/sink.h"

#include <ev.h>
#include <libpq-fe.h>

/*
 * Where a partition's applied messages end, in source order: the commit
 * LSN, the change's own LSN, and seq (the create of a key-change pair after
 * its delete). A message at or before it is a producer's resend (it replays
 * from its slot after a crash) and is skipped. kind: 0 nothing yet, 'r'
 * initial-load rows (they share one position: never compared among
 * themselves), 's' stream changes.
 */
typedef struct KPos {
    Lsn commit;
    Lsn change;
    int seq;
    char kind;
} KPos;

/* A partition assigned to this applier. */
typedef struct APart {
    char *topic;
    int32_t partition;
    bool ready;        /* its position is read from the target and the consumer moved there */
    bool assigned;     /* assigned to the consumer (else: waits for its position to be) */
    int64_t next;      /* the next offset to apply; -1: from the partition's beginning */
    int64_t stored;    /* next_offset the target holds or a queued batch writes (-1: no row) */
    KPos pos;          /* the last message applied (in the open batch or before) */
    char *producer;    /* source.name of its events (the pipeline writing it) */
    bool touched;      /* the open batch applied messages of it */
    unsigned long gen; /* Applier.assign_gen when it was assigned */
} APart;

/* One column of an event table. */
typedef struct ACol {
    char *name;
    DbzCol *dbz; /* how the producer encoded it; NULL: raw (a JSON scalar's text) */
    int32_t typmod;
} ACol;

/* An event table (source.schema, source.table of the events), resolved once. */
typedef struct ATable {
    char *schema, *name, *display;
    size_t ncols;
    ACol *cols;        /* the columns its events carry, in the target's order */
    RelEntry *src;     /* the event table's shape (in Applier.rels) */
    MappingPlan *plan; /* NULL: applied as it is */
    RelEntry mapped;   /* with a plan: the target's shape (info owned by the plan) */
    bool full;         /* no key: rows are located by their whole old row */
    bool skip;         /* not in source.tables */
    unsigned long long applied, dead_letters, filtered;
} ATable;

/* A closed batch not yet durable: what it moves, for the advisory commit and retries. */
typedef struct ABatch {
    Lsn end; /* its sequence number (TxnInfo.end_lsn of its last message) */
    size_t n;
    struct ABatchPart {
        char *topic;
        int32_t partition;
        int64_t expected, next;
    } * parts;
} ABatch;

typedef struct Applier {
    Config *cfg;
    struct ev_loop *loop;
    Sink *sink;
    KConsumer *kc;
    Offload *jobs; /* the target worker: reconnects, positions, catalog */
    PGconn *ctl;   /* the worker's own connection (touched only in job run()) */
    DbzOptions dbz;
    RelCache *rels;
    uint32_t next_oid;
    Arena *arena;

    APart *parts;
    size_t nparts, parts_cap;
    ATable **tables;
    size_t ntables;

    ABatch *batches; /* closed, not durable; oldest first */
    size_t nbatches, batches_cap;
    Lsn seq; /* TxnInfo.end_lsn of the last message given to the sink */
    size_t batch_msgs;

    ev_io kafka_r, sink_r, sink_w;
    ev_timer retry_timer, pos_timer, progress_timer, watchdog_timer;
    ev_signal sig_term, sig_int;

    rd_kafka_message_t *held; /* waiting for its table's catalog */
    bool table_job;           /* a catalog job is out */
    bool positions_job;       /* a positions job is out */
    bool want_positions;      /* partitions wait for their positions */
    unsigned long assign_gen; /* bumps on every assignment change */
    Lsn positions_after;      /* positions are read once batches up to here are durable */
    bool sink_down;           /* the sink belongs to a reconnect job, or waits for one */
    bool sink_job;
    bool stopping;
    double backoff;

    /* the last failure of a batch, to tell a race with another applier from a real error */
    int failed_rc;
    char failed_msg[1024];
    ABatch failed;
    int attempts;

    int rc; /* the reason to stop */
    unsigned long long n_msgs, n_changes, n_dups, n_tombstones, n_dead, n_batches;
    unsigned long long last_msgs;
} Applier;

/* applier.c */
void applier_fail(Applier *a, int rc);
void applier_pump(Applier *a);
/* A batch failed or the target went away: roll back, reposition from the target. */
void applier_recover(Applier *a, int rc);
APart *applier_part(Applier *a, const char *topic, int32_t partition);

/* applier_pos.c */
/* Creates tidemark.kafka_offsets (blocking; startup). */
int applier_pos_ensure(PGconn *conn);
/* Asks the target worker for the positions of every partition not ready. */
void applier_pos_request(Applier *a);
/* Queues the batch's position statements (one per touched partition) into the open batch. */
int applier_pos_write(Applier *a, ABatch *b);
/* The durable batches: their offsets go to Kafka too (advisory). */
void applier_pos_settle(Applier *a);
void applier_batch_release(ABatch *b);

/* applier_table.c */
ATable *applier_table_find(Applier *a, const char *schema, const char *name);
/* Resolves the event's table on the target worker; the held message waits for it. */
void applier_table_request(Applier *a, const KEvent *ev, const rd_kafka_message_t *m);
void applier_table_free(ATable *t);
/* Drops every table's prepared statements (a new target session). */
void applier_tables_reset(Applier *a);
/*
 * Decodes ev's rows into a change event of t's event shape (*out, tuples in
 * a->arena). A value that cannot be decoded is the row's own data: -EINVAL,
 * and *raw is the row with each field's JSON text (for a dead letter).
 */
int applier_decode(Applier *a, ATable *t, const KEvent *ev, Change *out, Change *raw);

#endif
