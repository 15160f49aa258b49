/*
 * The Kafka sink's stream path: each source transaction becomes a slot in
 * a FIFO that counts its messages still waiting for a delivery report; the
 * durable LSN moves to a transaction's end only when it and everything
 * before it are fully delivered (invariant 1). Kafka cannot take messages
 * back, so "abort" only forgets a partial transaction: its messages may
 * reach consumers, and the slot resends the whole transaction (at-least-once).
 * A delivery report that is an error is final (librdkafka retried what it
 * could): the transaction never becomes durable, nothing after it either,
 * and the pipeline stops; the state file remembers its commit LSN so a
 * restart can check that the slot still resends it.
 * The FIFO is shared with whichever thread serves delivery reports: every
 * touch holds KafkaSink.mu, never across a produce (which may serve reports).
 */
#include "sinks/kafka/kafkasink_int.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static TxnSlot *slot_at(KafkaSink *s, uint64_t seq)
{
    return &s->fifo[seq & (s->fifo_cap - 1)];
}

static TxnSlot *fifo_push(KafkaSink *s)
{
    if (s->tail_seq - s->head_seq == s->fifo_cap) {
        size_t cap = s->fifo_cap * 2;
        TxnSlot *n = xcalloc(cap, sizeof(*n));

        for (uint64_t q = s->head_seq; q < s->tail_seq; q++)
            n[q & (cap - 1)] = *slot_at(s, q);
        free(s->fifo);
        s->fifo = n;
        s->fifo_cap = cap;
    }
    TxnSlot *t = slot_at(s, s->tail_seq++);

    memset(t, 0, sizeof(*t));
    return t;
}

/*
 * Pops every leading transaction that is complete and fully delivered (under
 * mu). After any failure nothing moves: what follows a lost message may not
 * be confirmed either, or a restart would resume past it.
 */
static void advance(KafkaSink *s)
{
    Lsn durable = atomic_load(&s->durable);

    if (atomic_load(&s->failed))
        return;
    while (s->head_seq < s->tail_seq) {
        TxnSlot *t = slot_at(s, s->head_seq);

        if (!t->closed || t->outstanding > 0 || t->failed)
            break;
        if (t->end_lsn > durable)
            durable = t->end_lsn;
        s->head_seq++;
    }
    atomic_store(&s->durable, durable);
}

/* The first table routed to rkt, for messages (under mu). */
static const char *topic_table(const KafkaSink *s, const rd_kafka_topic_t *rkt)
{
    for (size_t i = 0; i < s->ntopics; i++)
        if (s->topics[i].rkt == rkt)
            return s->topics[i].table;
    return "?";
}

/* A stream message was lost (under mu): pin the transaction, say which one (into msg). */
static void lost(KafkaSink *s, TxnSlot *t, rd_kafka_resp_err_t err, const rd_kafka_topic_t *rkt,
                 char *msg, size_t size)
{
    char lsn[24], durable[24];
    int rc;

    t->failed = true;
    lsn_format(t->final_lsn, lsn, sizeof(lsn));
    lsn_format(atomic_load(&s->durable), durable, sizeof(durable));
    snprintf(msg, size,
             "Kafka: delivery of a change of %s (source transaction %u, commit LSN %s) to topic"
             " %s failed: %s. Nothing from this transaction on is confirmed to the source"
             " (confirmed: %s), so a restart sends it again; fix the cause (for a size limit:"
             " the topic's max.message.bytes and target.properties message.max.bytes) and"
             " restart",
             topic_table(s, rkt), t->xid, lsn, rd_kafka_topic_name(rkt), rd_kafka_err2str(err),
             durable);
    rc = kstate_set_lost(&s->state, t->final_lsn);
    if (rc < 0)
        log_error("kafka: %s", tm_error()); /* the slot still holds the transaction */
}

void kafkaapply_delivered(KafkaSink *s, uint64_t seq, size_t bytes, rd_kafka_resp_err_t err,
                          const rd_kafka_topic_t *rkt)
{
    char msg[sizeof(s->failmsg)] = "";

    pthread_mutex_lock(&s->mu);
    /* Outside [head, tail) cannot happen: a slot is popped only when fully reported. */
    if (seq >= s->head_seq && seq < s->tail_seq) {
        TxnSlot *t = slot_at(s, seq);
        size_t ob = atomic_load(&s->outstanding_bytes);

        if (err)
            lost(s, t, err, rkt, msg, sizeof(msg));
        t->outstanding--;
        atomic_fetch_sub(&s->outstanding, 1);
        atomic_store(&s->outstanding_bytes, bytes < ob ? ob - bytes : 0);
        advance(s);
    }
    pthread_mutex_unlock(&s->mu);
    if (msg[0])
        kafkasink_set_failure(s, "%s", msg);
}

int kafkaapply_start(Sink *base, Lsn lsn)
{
    KafkaSink *s = kafkasink_of(base);
    Lsn lost_lsn;
    int rc = 0;

    pthread_mutex_lock(&s->mu);
    lost_lsn = s->state.lost_lsn;
    /* The slot resends transactions committed at or after where it resumes. */
    if (lost_lsn != LSN_INVALID && lsn > lost_lsn)
        rc = tm_fail(-EIO,
                     "Kafka: the delivery of source transaction at commit LSN " LSN_FMT
                     " failed, but slot %s resumes at " LSN_FMT ", after it: its changes would"
                     " never reach Kafka. Something advanced the slot past a failed delivery;"
                     " re-copy the affected tables (drop the slot and remove %s to start over)",
                     LSN_ARGS(lost_lsn), s->cfg->source.slot, LSN_ARGS(lsn), s->state.path);
    else if (lost_lsn != LSN_INVALID)
        rc = kstate_set_lost(&s->state, LSN_INVALID); /* resent from here on */
    pthread_mutex_unlock(&s->mu);
    if (rc == 0)
        atomic_store(&s->durable, lsn);
    return rc;
}

static void krel_free(void *state)
{
    KRel *r = state;

    if (!r)
        return;
    debezium_table_free(r->dbz);
    free(r);
}

static int krel_get(KafkaSink *s, RelEntry *rel, KRel **out)
{
    KRel *r = rel->sink_state;
    int rc;

    if (!r) {
        r = xcalloc(1, sizeof(*r));
        rc = kafkasink_topic(s, rel->info.schema, rel->info.name, &r->rkt);
        if (rc < 0) {
            free(r);
            return rc;
        }
        r->dbz = debezium_table_from_rel(&rel->info);
        rel->sink_state = r;
        rel->sink_state_free = krel_free;
    }
    *out = r;
    return 0;
}

/* Counts (delta 1) or uncounts (-1) a message of the open transaction. */
static void count_msg(KafkaSink *s, uint64_t seq, int delta, size_t bytes)
{
    pthread_mutex_lock(&s->mu);
    if (delta > 0) {
        slot_at(s, seq)->outstanding++;
        atomic_fetch_add(&s->outstanding, 1);
        atomic_fetch_add(&s->outstanding_bytes, bytes);
    } else {
        slot_at(s, seq)->outstanding--;
        atomic_fetch_sub(&s->outstanding, 1);
        atomic_fetch_sub(&s->outstanding_bytes, bytes);
    }
    pthread_mutex_unlock(&s->mu);
}

/* Produces s->key (NULL: no key) and s->val (NULL: tombstone) for the open transaction. */
static int send_msg(KafkaSink *s, KRel *r, bool with_key, bool with_value)
{
    uint64_t seq = s->tail_seq - 1; /* only this thread moves tail */
    size_t bytes = (with_key ? s->key.len : 0) + (with_value ? s->val.len : 0);
    int rc;

    /* Counted first: the report may be served on another thread before produce returns. */
    count_msg(s, seq, 1, bytes);
    rc = kafkasink_produce(s, r->rkt, with_key ? &s->key : NULL, with_value ? &s->val : NULL,
                           s->txn_lsn, s->txn_xid, kafka_opaque(OPQ_STREAM, seq));
    if (rc < 0)
        count_msg(s, seq, -1, bytes);
    return rc;
}

/* One event: key from keyrow (NULL: null key), envelope, then an optional tombstone. */
static int emit(KafkaSink *s, KRel *r, const TxnInfo *txn, char op, const Tuple *before,
                const Tuple *after, const Tuple *keyrow, bool tombstone)
{
    DbzEvent ev = {
        .op = op,
        .before = before,
        .after = after,
        .has_xid = true,
        .xid = txn->xid,
        .lsn = txn->final_lsn,
        .source_ts_ms = debezium_ms(txn->commit_time),
        .ts_ms = s->txn_ts_ms,
    };
    int k = 1, rc;

    buf_clear(&s->key);
    buf_clear(&s->val);
    if (keyrow) {
        k = debezium_key(&s->key, r->dbz, keyrow);
        if (k < 0)
            return k;
    }
    rc = debezium_envelope(&s->val, r->dbz, &s->src, &ev);
    if (rc == 0)
        rc = send_msg(s, r, k == 0, true);
    /* Log compaction drops every earlier message of a key followed by a tombstone. */
    if (rc == 0 && tombstone && k == 0)
        rc = send_msg(s, r, true, false);
    return rc;
}

int kafkaapply_txn_begin(Sink *base, const TxnInfo *txn)
{
    KafkaSink *s = kafkasink_of(base);

    if (atomic_load(&s->failed))
        return kafkasink_failure(s);
    if (s->txn_open)
        return tm_fail(-EPROTO, "kafka: a transaction began inside an open one");
    pthread_mutex_lock(&s->mu);
    TxnSlot *t = fifo_push(s);

    t->final_lsn = txn->final_lsn;
    t->xid = txn->xid;
    pthread_mutex_unlock(&s->mu);
    s->txn_open = true;
    s->txn_ts_ms = wall_ms();
    lsn_format(txn->final_lsn, s->txn_lsn, sizeof(s->txn_lsn));
    snprintf(s->txn_xid, sizeof(s->txn_xid), "%u", txn->xid);
    return 0;
}

static int apply_update(KafkaSink *s, KRel *r, const Change *chg, const TxnInfo *txn)
{
    const Tuple *nt = &chg->update.newtup, *ot = &chg->update.oldtup;
    bool tomb = s->cfg->target.kafka.tombstones;
    int rc;

    /* The key moved: Debezium's delete (+ tombstone) of the old key, create of the new. */
    if (chg->update.old_kind && debezium_key_changed(r->dbz, ot, nt)) {
        rc = emit(s, r, txn, 'd', ot, NULL, ot, tomb);
        if (rc == 0)
            rc = emit(s, r, txn, 'c', NULL, nt, nt, false);
        return rc;
    }
    /* A full old row (identity FULL) is the before image, and its key has no 'u'. */
    if (chg->update.old_kind == 'O')
        return emit(s, r, txn, 'u', ot, nt, ot, false);
    return emit(s, r, txn, 'u', NULL, nt, nt, false);
}

int kafkaapply_apply(Sink *base, RelEntry *rel, const Change *chg, const TxnInfo *txn)
{
    KafkaSink *s = kafkasink_of(base);
    KRel *r;
    int rc;

    if (atomic_load(&s->failed))
        return kafkasink_failure(s);
    if (!s->txn_open)
        return tm_fail(-EPROTO, "kafka: a row change outside a transaction");
    rc = krel_get(s, rel, &r);
    if (rc < 0)
        return rc;
    s->batch_changes++;
    switch (chg->kind) {
    case CHG_INSERT:
        rc = emit(s, r, txn, 'c', NULL, &chg->insert.newtup, &chg->insert.newtup, false);
        break;
    case CHG_UPDATE:
        rc = apply_update(s, r, chg, txn);
        break;
    case CHG_DELETE:
        rc = emit(s, r, txn, 'd', &chg->del.oldtup, NULL, &chg->del.oldtup,
                  s->cfg->target.kafka.tombstones);
        break;
    default:
        return tm_fail(-EINVAL, "kafka: change kind '%c' is not a row change", chg->kind);
    }
    if (rc < 0)
        return tm_fail_ctx(rc, "%s", rel->display);
    return 0;
}

int kafkaapply_truncate(Sink *base, RelEntry **rels, uint32_t nrels, uint8_t flags,
                        const TxnInfo *txn)
{
    KafkaSink *s = kafkasink_of(base);

    if (!s->txn_open)
        return tm_fail(-EPROTO, "kafka: a truncate outside a transaction");
    for (uint32_t i = 0; i < nrels; i++) {
        KRel *r;
        /* Debezium's truncate event: no key, no row images. */
        int rc = krel_get(s, rels[i], &r);

        if (rc == 0)
            rc = emit(s, r, txn, 't', NULL, NULL, NULL, false);
        if (rc < 0)
            return tm_fail_ctx(rc, "%s", rels[i]->display);
        s->batch_changes++;
    }
    return 0;
}

int kafkaapply_txn_commit(Sink *base, const TxnInfo *txn)
{
    KafkaSink *s = kafkasink_of(base);
    TxnSlot *t;

    if (!s->txn_open)
        return tm_fail(-EPROTO, "kafka: a commit without a transaction");
    pthread_mutex_lock(&s->mu);
    t = slot_at(s, s->tail_seq - 1);
    t->end_lsn = txn->end_lsn;
    t->closed = true;
    advance(s);
    pthread_mutex_unlock(&s->mu);
    s->txn_open = false;
    return 0;
}

int kafkaapply_close_batch(Sink *base)
{
    kafkasink_of(base)->batch_changes = 0; /* nothing to commit: librdkafka batches itself */
    return 0;
}

int kafkaapply_abort_batch(Sink *base)
{
    KafkaSink *s = kafkasink_of(base);

    if (s->txn_open) {
        /* Sent messages cannot be recalled; this partial transaction never becomes durable. */
        pthread_mutex_lock(&s->mu);
        TxnSlot *t = slot_at(s, s->tail_seq - 1);

        t->end_lsn = LSN_INVALID;
        t->closed = true;
        advance(s);
        pthread_mutex_unlock(&s->mu);
        s->txn_open = false;
    }
    s->batch_changes = 0;
    return 0;
}

int kafkaapply_idle_position(Sink *base, Lsn lsn)
{
    KafkaSink *s = kafkasink_of(base);
    TxnSlot *last;

    if (s->txn_open || atomic_load(&s->failed))
        return 0; /* after a failure nothing more becomes durable */
    pthread_mutex_lock(&s->mu);
    if (s->head_seq == s->tail_seq) {
        if (lsn > atomic_load(&s->durable))
            atomic_store(&s->durable, lsn);
    } else {
        /* Behind transactions still in flight: durable once they are. */
        last = slot_at(s, s->tail_seq - 1);
        if (!(last->closed && last->outstanding == 0)) {
            last = fifo_push(s);
            last->closed = true;
        }
        if (lsn > last->end_lsn)
            last->end_lsn = lsn;
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}
