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
#include "core/transform/mapping.h"
#include "core/xmalloc.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

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
        r->dbz = kafkasink_dbz_rel(s, &rel->info);
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

/* A message's extra header (Debezium's key-change headers); name NULL: none. */
typedef struct KHeader {
    const char *name;
    const Buf *value;
} KHeader;

/* Produces s->key (NULL: no key) and s->val (NULL: tombstone) for the open transaction. */
static int send_msg(KafkaSink *s, KRel *r, bool with_key, bool with_value, KHeader h)
{
    uint64_t seq = s->tail_seq - 1; /* only this thread moves tail */
    size_t bytes = (with_key ? s->key.len : 0) + (with_value ? s->val.len : 0);
    int rc;

    /* Counted first: the report may be served on another thread before produce returns. */
    count_msg(s, seq, 1, bytes);
    rc = kafkasink_produce(s, r->rkt, with_key ? &s->key : NULL, with_value ? &s->val : NULL,
                           s->txn_lsn, s->txn_xid, h.name, h.value, kafka_opaque(OPQ_STREAM, seq));
    if (rc < 0)
        count_msg(s, seq, -1, bytes);
    return rc;
}

/* One event: key from keyrow (NULL: null key), envelope, then an optional tombstone. */
static int emit(KafkaSink *s, KRel *r, const TxnInfo *txn, char op, const Tuple *before,
                const Tuple *after, const Tuple *keyrow, bool tombstone, KHeader h)
{
    DbzEvent ev = {
        .op = op,
        .before = before,
        .after = after,
        .has_xid = true,
        .xid = txn->xid,
        .lsn = txn->change_lsn ? txn->change_lsn : txn->final_lsn,
        .last_commit = s->last_commit,
        .source_ts_us = debezium_us(txn->commit_time),
        .ts_ns = s->txn_ts_ns,
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
        rc = send_msg(s, r, k == 0, true, h);
    /* Log compaction drops every earlier message of a key followed by a tombstone. */
    if (rc == 0 && tombstone && k == 0)
        rc = send_msg(s, r, true, false, h);
    return rc;
}

static const KHeader NO_HEADER = {NULL, NULL};

int kafkaapply_txn_begin(Sink *base, const TxnInfo *txn)
{
    KafkaSink *s = kafkasink_of(base);
    struct timespec ts;

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
    clock_gettime(CLOCK_REALTIME, &ts);
    s->txn_ts_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    lsn_format(txn->final_lsn, s->txn_lsn, sizeof(s->txn_lsn));
    snprintf(s->txn_xid, sizeof(s->txn_xid), "%u", txn->xid);
    return 0;
}

/*
 * An update: one "u" event keyed by the new row, its before image the old
 * row pgoutput sent (identity FULL: all of it; an identity key change: the
 * key columns), else null. When the message key changes, Debezium's pair
 * instead: a delete (+ tombstone) of the old key carrying the new key in
 * header __debezium.newkey, then a create of the new key carrying
 * __debezium.oldkey.
 */
static int apply_update(KafkaSink *s, KRel *r, const Change *chg, const TxnInfo *txn)
{
    const Tuple *nt = &chg->update.newtup, *ot = &chg->update.oldtup;
    bool tomb = s->cfg->target.kafka.tombstones;
    int rc;

    if (chg->update.old_kind && debezium_key_changed(r->dbz, ot, nt)) {
        buf_clear(&s->key2);
        rc = debezium_key_payload(&s->key2, r->dbz, nt);
        if (rc == 0)
            rc = emit(s, r, txn, 'd', ot, NULL, ot, tomb, (KHeader){"__debezium.newkey", &s->key2});
        if (rc == 0) {
            buf_clear(&s->key2);
            rc = debezium_key_payload(&s->key2, r->dbz, ot);
        }
        if (rc == 0)
            rc =
                emit(s, r, txn, 'c', NULL, nt, nt, false, (KHeader){"__debezium.oldkey", &s->key2});
        return rc < 0 ? rc : 0;
    }
    return emit(s, r, txn, 'u', chg->update.old_kind ? ot : NULL, nt, nt, false, NO_HEADER);
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
        if (s->skip & SKIP_CREATE)
            return 0;
        rc = emit(s, r, txn, 'c', NULL, &chg->insert.newtup, &chg->insert.newtup, false, NO_HEADER);
        break;
    case CHG_UPDATE:
        if (s->skip & SKIP_UPDATE)
            return 0;
        rc = apply_update(s, r, chg, txn);
        break;
    case CHG_DELETE:
        if (s->skip & SKIP_DELETE)
            return 0;
        rc = emit(s, r, txn, 'd', &chg->del.oldtup, NULL, &chg->del.oldtup,
                  s->cfg->target.kafka.tombstones, NO_HEADER);
        break;
    default:
        return tm_fail(-EINVAL, "kafka: change kind '%c' is not a row change", chg->kind);
    }
    if (rc < 0) {
        char lsn[24];

        lsn_format(txn->change_lsn ? txn->change_lsn : txn->final_lsn, lsn, sizeof(lsn));
        return tm_fail_ctx(rc, "%s (source LSN %s, transaction %u)", rel->display, lsn, txn->xid);
    }
    return 0;
}

int kafkaapply_truncate(Sink *base, RelEntry **rels, uint32_t nrels, uint8_t flags,
                        const TxnInfo *txn)
{
    KafkaSink *s = kafkasink_of(base);

    if (!s->txn_open)
        return tm_fail(-EPROTO, "kafka: a truncate outside a transaction");
    if (s->skip & SKIP_TRUNCATE)
        return 0; /* skipped.operations: Debezium's default leaves truncates out */
    for (uint32_t i = 0; i < nrels; i++) {
        KRel *r;
        /* Debezium's truncate event: no key, no row images. */
        int rc = krel_get(s, rels[i], &r);

        if (rc == 0)
            rc = emit(s, r, txn, 't', NULL, NULL, NULL, false, NO_HEADER);
        if (rc < 0)
            return tm_fail_ctx(rc, "%s", rels[i]->display);
        s->batch_changes++;
    }
    return 0;
}

/*
 * A row the table's mapping could not transform (on_error: dead_letter):
 * its full source row goes to the dead-letter file, and the stream goes on.
 */
int kafkaapply_dead_letter(Sink *base, const RelEntry *src_rel, const Change *chg,
                           const TxnInfo *txn, const char *error)
{
    KafkaSink *s = kafkasink_of(base);
    const Tuple *row = chg->kind == CHG_INSERT   ? &chg->insert.newtup
                       : chg->kind == CHG_UPDATE ? &chg->update.newtup
                                                 : &chg->del.oldtup;
    Buf f = BUF_INIT;
    int rc;

    buf_printf(&f, "\"op\":\"%c\",\"row\":",
               chg->kind == CHG_INSERT   ? 'c'
               : chg->kind == CHG_UPDATE ? 'u'
                                         : 'd');
    mapping_row_json(&src_rel->info, row, &f);
    rc = kafkasink_dead_letter(s, "mapping", src_rel->display,
                               txn->change_lsn ? txn->change_lsn : txn->final_lsn, txn->xid, error,
                               buf_cstr(&f));
    buf_release(&f);
    return rc;
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
    s->last_commit = txn->end_lsn;
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
