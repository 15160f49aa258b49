/*
 * Internals shared by the Kafka sink's files: kafkasink.c (producer, loop
 * integration, delivery tracking, state, the ops table), kafkaapply.c (the
 * stream: source transactions to events) and kafkacopy.c (initial-copy
 * sessions). Not for use outside sinks/kafka.
 */
#ifndef TM_KAFKASINK_INT_H
#define TM_KAFKASINK_INT_H

#include "core/buf.h"
#include "core/error.h"
#include "sinks/kafka/debezium.h"
#include "sinks/kafka/kafkasink.h"
#include "sinks/kafka/kstate.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>

/*
 * A message's opaque says whom its delivery report is for: the low two bits
 * are the kind, the rest a stream transaction's sequence number or a copy
 * session's id.
 */
enum { OPQ_STREAM = 1, OPQ_COPY = 2 };

static inline void *kafka_opaque(unsigned kind, uint64_t n)
{
    return (void *)(uintptr_t)((n << 2) | kind);
}

/*
 * One source transaction (or an idle position from a keepalive) in the
 * delivery FIFO. It may become durable once closed with nothing outstanding
 * and everything before it durable; a failed delivery keeps it (and so
 * everything after it) from ever becoming durable.
 */
typedef struct TxnSlot {
    Lsn end_lsn;   /* LSN_INVALID: abandoned partial transaction */
    Lsn final_lsn; /* the commit LSN, for messages (LSN_INVALID: an idle position) */
    uint32_t xid;
    size_t outstanding;
    bool closed;
    bool failed; /* a message's delivery report was an error */
} TxnSlot;

typedef struct KTopic {
    char *name;
    char *table; /* the first table routed here, "schema.table", for messages */
    rd_kafka_topic_t *rkt;
} KTopic;

/* Per-relation state (RelEntry.sink_state): the rendered shape and topic. */
typedef struct KRel {
    DbzTable *dbz;
    rd_kafka_topic_t *rkt; /* borrowed from KafkaSink.topics */
} KRel;

typedef struct KCopy KCopy;

/* skipped.operations */
enum { SKIP_CREATE = 1, SKIP_UPDATE = 2, SKIP_DELETE = 4, SKIP_TRUNCATE = 8 };

typedef struct KafkaSink {
    Sink base;
    const Config *cfg;
    rd_kafka_t *rk;
    int pipefd[2]; /* librdkafka's main queue signals the read end */
    KState state;
    DbzSource src;
    DbzOptions dbz;
    unsigned skip; /* SKIP_* */
    KTopic *topics;
    size_t ntopics;
    /* The source catalog's view of each table (check_table), for types and keys (under mu). */
    TableDef *known;
    size_t nknown;

    /* the stream, driven by the loop thread */
    bool txn_open;
    char txn_lsn[24]; /* the open transaction's commit LSN as X/X, for headers */
    char txn_xid[12];
    int64_t txn_ts_ns; /* when the transaction was rendered */
    Lsn last_commit;   /* the previous transaction's end (source.sequence); 0: unknown */
    size_t batch_changes;
    Buf key, val, key2;

    /*
     * Delivery reports are served by whichever thread polls: the loop, or a
     * table-sync worker waiting for its copy (the loop may be joining it).
     * So everything they touch is under mu: the delivery FIFO (indexed by
     * sequence number modulo fifo_cap, a power of two; [head, tail) pending),
     * the copy registry, the topic registry and the state file. The counters
     * the pipeline reads are atomics written under mu.
     */
    pthread_mutex_t mu;
    TxnSlot *fifo;
    size_t fifo_cap;
    uint64_t head_seq, tail_seq;
    _Atomic Lsn durable;
    atomic_size_t outstanding; /* stream messages without a delivery report */
    atomic_size_t outstanding_bytes;
    KCopy **copies;
    size_t ncopies;
    uint64_t next_copy_id;
    bool closing;      /* being destroyed: ignore reports of purged messages */
    atomic_int failed; /* the first failed delivery stops the pipeline */
    char failmsg[512];
    bool snapshot_started;      /* a copy session took the "first" snapshot marker */
    atomic_ullong dead_letters; /* written to state_dir/dead_letters.jsonl */
} KafkaSink;

static inline KafkaSink *kafkasink_of(Sink *s)
{
    return (KafkaSink *)s;
}

/* The topic handle for schema.table (created on first use, kept until free). */
int kafkasink_topic(KafkaSink *s, const char *schema, const char *table, rd_kafka_topic_t **out);

/*
 * Produces one message (key/value may be NULL) with the lsn and txid
 * headers, and hname: hval when hname is set (Debezium's key-change
 * headers); on a full queue it serves delivery reports and retries.
 */
int kafkasink_produce(KafkaSink *s, rd_kafka_topic_t *rkt, const Buf *key, const Buf *val,
                      const char *lsn_text, const char *txid_text, const char *hname,
                      const Buf *hval, void *opaque);

/*
 * The Debezium shape of a table: its columns (from a Relation message, or
 * the copy's TableDef) with the source catalog's types and message key when
 * check_table registered the table, else with pgoutput's OIDs and identity.
 */
DbzTable *kafkasink_dbz_rel(KafkaSink *s, const RelInfo *rel);
/* Records t's catalog description (any thread). */
void kafkasink_register_table(KafkaSink *s, const TableDef *t);
DbzTable *kafkasink_dbz_def(KafkaSink *s, const TableDef *def);

/*
 * Appends one dead letter (a JSON line: kind, table, LSN, xid, error, and
 * the row or the undeliverable message) to state_dir/dead_letters.jsonl and
 * fsyncs it. Any thread; takes no lock of the sink's.
 */
int kafkasink_dead_letter(KafkaSink *s, const char *kind, const char *table, Lsn lsn, uint32_t xid,
                          const char *error, const char *fields_json);

/* Serves librdkafka's events (any thread) for up to timeout_ms; returns any failure. */
int kafkasink_poll(KafkaSink *s, int timeout_ms);

/* Records the first failure (any thread); later ones are dropped. */
void kafkasink_set_failure(KafkaSink *s, const char *fmt, ...) TM_PRINTF(2, 3);

/* 0, or the recorded failure (with tm_error() set to its message). */
int kafkasink_failure(KafkaSink *s);

/* Called from the delivery report callback for OPQ_COPY messages. */
void kafkacopy_delivered(KafkaSink *s, uint64_t id, rd_kafka_resp_err_t err);

int kafkaapply_start(Sink *s, Lsn lsn);
int kafkaapply_txn_begin(Sink *s, const TxnInfo *txn);
int kafkaapply_apply(Sink *s, RelEntry *rel, const Change *chg, const TxnInfo *txn);
int kafkaapply_truncate(Sink *s, RelEntry **rels, uint32_t nrels, uint8_t flags,
                        const TxnInfo *txn);
int kafkaapply_txn_commit(Sink *s, const TxnInfo *txn);
int kafkaapply_close_batch(Sink *s);
int kafkaapply_abort_batch(Sink *s);
int kafkaapply_idle_position(Sink *s, Lsn lsn);
/*
 * A stream message's delivery report arrived: err is its final result
 * (librdkafka retries what can be retried; message.timeout.ms is infinite),
 * topic its topic's name. An error stops the pipeline and pins the durable
 * position before the message's transaction.
 */
void kafkaapply_delivered(KafkaSink *s, uint64_t seq, size_t bytes, rd_kafka_resp_err_t err,
                          const rd_kafka_topic_t *rkt);

int kafkaapply_dead_letter(Sink *s, const RelEntry *src_rel, const Change *chg, const TxnInfo *txn,
                           const char *error);

int kafkacopy_open(Sink *s, const TableDef *t, Lsn sync_lsn, SinkCopy **out);
int kafkacopy_open_part(Sink *s, const TableDef *t, const TableDef *target, const CopyPart *part,
                        Lsn sync_lsn, SinkCopy **out);
int kafkacopy_dead_letter(SinkCopy *c, const char *row_json, const char *error);
int kafkacopy_rows(SinkCopy *c, const char *data, size_t len);
int kafkacopy_finish(SinkCopy *c, bool commit);
void kafkacopy_free(SinkCopy *c);

#endif
