/*
 * The applier's loop (applier.h): one libev loop watches the consumer queue's
 * pipe, the target connection and timers (invariant 8); blocking work (the
 * target's reconnects, reading positions and catalogs) runs on one target
 * worker (daemon/offload.h). A message becomes one change event (per
 * partition, in offset order) given to the PostgreSQL sink as a transaction
 * of its own; a batch of them closes when the consumer queue is empty or
 * apply.batch_max_changes is reached, with the partitions' offsets written in
 * it (applier_pos.c), and commits only after the gate checked every row
 * count and offset. A failed batch, a lost target or a rebalance all end the
 * same way: roll back, read the positions from the target, seek there.
 */
#include "connectors/pg/pgconn.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "daemon/applier.h"
#include "daemon/applier_int.h"
#include "daemon/notify.h"
#include "sinks/pg/pgsink.h"
#include "sinks/pg/pgstate.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INFLIGHT       20000
#define MAX_INFLIGHT_BYTES (64u * 1024 * 1024)
#define BACKOFF_MAX_S      30.0
#define HELD               1 /* handle(): the message waits for its table */

APart *applier_part(Applier *a, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < a->nparts; i++)
        if (a->parts[i].partition == partition && strcmp(a->parts[i].topic, topic) == 0)
            return &a->parts[i];
    return NULL;
}

void applier_fail(Applier *a, int rc)
{
    if (a->rc == 0)
        a->rc = rc;
    ev_break(a->loop, EVBREAK_ALL);
}

static bool over_limit(const Applier *a)
{
    const Sink *s = a->sink;

    return s->ops->inflight(s) >= MAX_INFLIGHT || s->ops->inflight_bytes(s) >= MAX_INFLIGHT_BYTES ||
           s->ops->gated(s);
}

static bool below_resume_mark(const Applier *a)
{
    const Sink *s = a->sink;

    return s->ops->inflight(s) < MAX_INFLIGHT / 2 &&
           s->ops->inflight_bytes(s) < MAX_INFLIGHT_BYTES / 2 && !s->ops->gated(s);
}

/*
 * Whether to poll the consumer. While the target is away every partition is
 * paused, and polling only serves the group's events (so the membership
 * lasts); what a poll brings then is dropped and fetched again later.
 */
static bool may_take(const Applier *a)
{
    return !a->stopping && !a->rc && (a->sink_down || !over_limit(a)) && !(a->held && a->table_job);
}

static void update_sink_watchers(Applier *a)
{
    int r;

    if (a->sink_down)
        return;
    r = a->sink->ops->flush(a->sink);
    if (r < 0) {
        applier_recover(a, r);
        return;
    }
    if (r == 1)
        ev_io_start(a->loop, &a->sink_w);
    else
        ev_io_stop(a->loop, &a->sink_w);
}

/* Writes the partitions' offsets into the open batch and closes it (its gate follows). */
static int close_batch(Applier *a)
{
    ABatch b = {0};
    int rc;

    if (!a->batch_msgs || a->sink_down)
        return 0;
    rc = applier_pos_write(a, &b);
    if (rc == 0)
        rc = a->sink->ops->close_batch(a->sink);
    b.end = a->seq;
    if (a->nbatches == a->batches_cap) {
        a->batches_cap = a->batches_cap ? 2 * a->batches_cap : 16;
        a->batches = xrealloc(a->batches, a->batches_cap * sizeof(ABatch));
    }
    a->batches[a->nbatches++] = b;
    a->batch_msgs = 0;
    update_sink_watchers(a);
    return rc;
}

/* ---- one message ------------------------------------------------------------- */

static void read_headers(const rd_kafka_message_t *m, KHeaders *h)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *v;
    size_t n;

    memset(h, 0, sizeof(*h));
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    if (rd_kafka_header_get_last(hdrs, "lsn", &v, &n) == 0) {
        h->lsn = v;
        h->lsn_len = n;
    }
    if (rd_kafka_header_get_last(hdrs, "txid", &v, &n) == 0) {
        h->txid = v;
        h->txid_len = n;
    }
    h->oldkey = rd_kafka_header_get_last(hdrs, "__debezium.oldkey", &v, &n) == 0;
}

static int pos_cmp(const KPos *x, const KPos *y)
{
    if (x->commit != y->commit)
        return x->commit < y->commit ? -1 : 1;
    if (x->change != y->change)
        return x->change < y->change ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * Whether the event is a producer's resend of what this partition already
 * applied: 1 yes, 0 no, < 0 a second initial load of the table (fatal).
 */
static int is_resend(const APart *p, const KPos *np, const KEvent *ev, const rd_kafka_message_t *m)
{
    char l1[24], l2[24];

    if (!p->pos.kind)
        return 0;
    /* A transaction whose commit record begins right at the snapshot's LSN is not in
     * it: after initial-load rows, only an earlier commit is a resend. */
    if (np->kind == 's')
        return p->pos.kind == 'r' ? np->commit < p->pos.commit : pos_cmp(np, &p->pos) <= 0;
    /* initial-load rows share their snapshot's position */
    if (np->commit < p->pos.commit || (p->pos.kind == 's' && np->commit == p->pos.commit))
        return 1;
    if (np->commit == p->pos.commit)
        return 0;
    return tm_fail(-EPROTO,
                   "%s [%d] offset %lld: an initial load of %s.%s at %s after changes up to %s:"
                   " the producing pipeline copied the table again (its copy was interrupted,"
                   " or the table left and rejoined source.tables). Rows deleted in between"
                   " would stay on the target: empty the target table, delete this group's"
                   " rows of the topic from tidemark.kafka_offsets, and restart the appliers",
                   rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset, ev->schema,
                   ev->table, lsn_format(np->commit, l1, sizeof(l1)),
                   lsn_format(p->pos.commit, l2, sizeof(l2)));
}

/* On: dead letters, else the failure stands. raw: the change to record. */
static int dead_letter(Applier *a, ATable *t, const Change *raw, const TxnInfo *txn, int rc,
                       bool dead_letter_policy)
{
    char *err;

    if (!dead_letter_policy || (rc != -EINVAL && !mapping_error_is_data(rc)))
        return rc;
    err = xstrdup(tm_error());
    log_write(LOG_LVL_WARNING, t->display, txn->final_lsn, "dead letter: %s", err);
    rc = a->sink->ops->dead_letter(a->sink, t->src, raw, txn, err);
    free(err);
    if (rc == 0) {
        t->dead_letters++;
        a->n_dead++;
    }
    return rc;
}

static int apply_row(Applier *a, ATable *t, const KEvent *ev, const TxnInfo *txn)
{
    Change chg, raw, mc;
    bool filtered;
    bool policy = t->plan ? mapping_on_error(t->plan) == MAPPING_ON_ERROR_DEAD_LETTER
                          : a->cfg->apply.on_error_dead_letter;
    int rc = applier_decode(a, t, ev, &chg, &raw);

    if (rc < 0)
        return dead_letter(a, t, &raw, txn, tm_fail_ctx(rc, "%s", t->display), policy);
    if (!t->plan) {
        t->applied++;
        return a->sink->ops->apply(a->sink, t->src, &chg, txn);
    }
    rc = mapping_apply_change(t->plan, &chg, a->arena, &mc, &filtered);
    if (rc < 0)
        return dead_letter(a, t, &chg, txn, rc, policy);
    if (filtered) {
        t->filtered++;
        return 0;
    }
    t->applied++;
    return a->sink->ops->apply(a->sink, &t->mapped, &mc, txn);
}

/*
 * A truncate is one message on one partition: against rows other partitions
 * carry it has no order, so only a topic of one partition may apply it.
 */
static int apply_truncate(Applier *a, ATable *t, const rd_kafka_message_t *m, const TxnInfo *txn)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    int n = kconsumer_partition_count(a->kc, topic);
    RelEntry *rel = t->plan ? &t->mapped : t->src;

    if (n != 1)
        return tm_fail(-ENOTSUP,
                       "%s [%d] offset %lld: a TRUNCATE of %s on a topic of %d partitions: it has"
                       " no order against the other partitions' changes. Truncate the target"
                       " table by hand when the producer is past it, then skip the message by"
                       " setting next_offset of this row of tidemark.kafka_offsets to %lld",
                       topic, (int)m->partition, (long long)m->offset, t->display, n,
                       (long long)m->offset + 1);
    for (size_t k = 0; t->plan && k < mapping_target_ncols(t->plan); k++) {
        const char *v;
        size_t len;

        if (mapping_target_const(t->plan, k, &v, &len))
            return tm_fail(-ENOTSUP,
                           "TRUNCATE of %s: its target %s may hold other sources'"
                           " rows (the mapping tags rows with constant columns)",
                           t->display, rel->display);
    }
    return a->sink->ops->truncate(a->sink, &rel, 1, 0, txn);
}

static int handle(Applier *a, rd_kafka_message_t *m)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    APart *p = applier_part(a, topic, m->partition);
    KHeaders h;
    KEvent ev;
    KPos np;
    ATable *t = NULL;
    TxnInfo txn;
    int rc;

    /* Not ours (any more), not positioned yet, or before where the target says we are. */
    if (!p || !p->ready || a->sink_down || m->offset < p->next)
        return 0;
    /* This group never applied the partition: it starts at its beginning, which must
     * be the topic's first message, or what retention deleted is missing on the target. */
    if (p->next < 0 && m->offset > 0)
        return tm_fail(-EIO,
                       "%s [%d] begins at offset %lld: the messages before it were deleted"
                       " (retention) before group %s applied any of them, so the target would"
                       " miss them. Load the target from the source instead, or, if it already"
                       " holds everything up to there, insert the row (%s, %s, %d, %lld) into"
                       " tidemark.kafka_offsets (consumer_group, topic, partition, next_offset)",
                       topic, (int)m->partition, (long long)m->offset, a->cfg->source.kafka.group,
                       a->cfg->source.kafka.group, topic, (int)m->partition, (long long)m->offset);
    if (p->next >= 0 && m->offset > p->next)
        log_write(LOG_LVL_WARNING, NULL, LSN_INVALID,
                  "%s [%d]: offsets %lld to %lld are not in Kafka (a compacted topic?): going on"
                  " from %lld",
                  topic, (int)m->partition, (long long)p->next, (long long)m->offset - 1,
                  (long long)m->offset);
    read_headers(m, &h);
    rc = kevent_parse(m->payload, m->len, &h, &ev);
    if (rc < 0)
        return tm_fail_ctx(rc, "%s [%d] offset %lld", topic, (int)m->partition,
                           (long long)m->offset);
    np = (KPos){ev.commit_lsn, ev.change_lsn, ev.seq, ev.op == 'r' ? 'r' : 's'};
    if (ev.op && ev.producer && p->producer && strcmp(ev.producer, p->producer) != 0) {
        rc = tm_fail(-EPROTO,
                     "%s [%d] offset %lld: events of pipeline %s after events of pipeline %s:"
                     " a topic must be written by one pipeline (its resends are told apart by"
                     " their LSNs, which only compare within one source)",
                     topic, (int)m->partition, (long long)m->offset, ev.producer, p->producer);
        goto out;
    }
    if (ev.op) {
        rc = is_resend(p, &np, &ev, m);
        if (rc < 0)
            goto out;
        if (rc == 1) {
            a->n_dups++;
            ev.op = 0; /* consumed, not applied */
        }
        rc = 0;
    } else {
        a->n_tombstones++;
    }
    if (ev.op) {
        t = applier_table_find(a, ev.schema, ev.table);
        if (!t) {
            if (!a->table_job)
                applier_table_request(a, &ev, m);
            a->held = m;
            rc = HELD;
            goto out;
        }
    }
    /* every message is a transaction of the batch, applied or not: its offset moves */
    txn = (TxnInfo){.xid = ev.xid,
                    .final_lsn = ev.commit_lsn,
                    .end_lsn = ++a->seq,
                    .change_lsn = ev.change_lsn};
    rc = a->sink->ops->txn_begin(a->sink, &txn);
    if (rc == 0 && t && !t->skip)
        rc = ev.op == 't' ? apply_truncate(a, t, m, &txn) : apply_row(a, t, &ev, &txn);
    if (rc == 0)
        rc = a->sink->ops->txn_commit(a->sink, &txn);
    if (rc < 0)
        goto out;
    if (ev.op && ev.producer && !p->producer)
        p->producer = xstrdup(ev.producer);
    if (ev.op)
        p->pos = np;
    p->next = m->offset + 1;
    p->touched = true;
    a->batch_msgs++;
    a->n_msgs++;
out:
    kevent_release(&ev);
    arena_reset(a->arena);
    return rc;
}

void applier_pump(Applier *a)
{
    static bool pumping; /* rebalance callbacks run inside kconsumer_poll */
    bool drained = false;

    if (pumping)
        return;
    pumping = true;
    while (may_take(a)) {
        rd_kafka_message_t *m = a->held;
        int rc;

        if (m) {
            a->held = NULL;
        } else {
            rc = kconsumer_poll(a->kc, &m);
            if (rc < 0) {
                applier_fail(a, rc);
                break;
            }
            if (rc == 0) {
                drained = true;
                break;
            }
        }
        rc = handle(a, m);
        if (rc == HELD)
            break;
        rd_kafka_message_destroy(m);
        if (rc == -ENOTCONN) {
            applier_recover(a, rc);
            break;
        }
        if (rc < 0) {
            applier_fail(a, rc);
            break;
        }
        if (a->batch_msgs >= (size_t)a->cfg->apply.batch_max_changes) {
            rc = close_batch(a);
            if (rc < 0)
                applier_recover(a, rc);
        }
    }
    /* Caught up with the brokers: what is open goes now, not when the batch is full. */
    if (drained && !a->sink_down && close_batch(a) < 0)
        applier_recover(a, -ENOTCONN);
    if (!a->sink_down)
        update_sink_watchers(a);
    if (may_take(a))
        ev_io_start(a->loop, &a->kafka_r);
    else
        ev_io_stop(a->loop, &a->kafka_r);
    pumping = false;
}

/* ---- rebalances ------------------------------------------------------------------ */

static void on_rebalance(void *arg, bool assigned, const rd_kafka_topic_partition_list_t *parts,
                         bool lost)
{
    Applier *a = arg;

    a->assign_gen++;
    if (assigned) {
        for (int i = 0; i < parts->cnt; i++) {
            if (applier_part(a, parts->elems[i].topic, parts->elems[i].partition))
                continue;
            if (a->nparts == a->parts_cap) {
                a->parts_cap = a->parts_cap ? 2 * a->parts_cap : 64;
                a->parts = xrealloc(a->parts, a->parts_cap * sizeof(APart));
            }
            a->parts[a->nparts++] = (APart){.topic = xstrdup(parts->elems[i].topic),
                                            .partition = parts->elems[i].partition,
                                            .next = -1,
                                            .stored = -1,
                                            .gen = a->assign_gen};
        }
        log_info("kafka: %d partition(s) assigned (%s) (%zu in all); reading their offsets from"
                 " the target",
                 parts->cnt, kconsumer_eager(a->kc) ? "eager" : "cooperative", a->nparts);
        a->positions_after = a->nbatches ? a->batches[a->nbatches - 1].end : 0;
        a->want_positions = true;
        applier_pos_request(a);
        return;
    }
    /* Revoked: what the open batch holds of them commits now (or fails its offset check
     * if the group moved on and a new owner committed first). */
    bool touched = false;

    for (int i = 0; i < parts->cnt; i++) {
        APart *p = applier_part(a, parts->elems[i].topic, parts->elems[i].partition);

        touched |= p && p->touched;
    }
    if (touched && !a->stopping && close_batch(a) < 0)
        applier_recover(a, -ENOTCONN);
    for (int i = 0; i < parts->cnt; i++) {
        APart *p = applier_part(a, parts->elems[i].topic, parts->elems[i].partition);

        if (!p || p->touched)
            continue; /* touched: only when the batch could not close; recovery drops it */
        free(p->topic);
        free(p->producer);
        *p = a->parts[--a->nparts];
    }
    log_info("kafka: %d partition(s) %s (%zu left)", parts->cnt, lost ? "lost" : "revoked",
             a->nparts);
}

/* ---- the target: failures and reconnects ------------------------------------- */

typedef struct SinkJob {
    OffloadJob base;
    Applier *a;
} SinkJob;

static void reconnect_run(OffloadJob *base)
{
    Applier *a = ((SinkJob *)base)->a;
    bool found;
    Lsn lsn;
    int rc = a->sink->ops->connect(a->sink, "UTF8");

    if (rc == 0)
        rc = a->sink->ops->read_position(a->sink, &found, &lsn); /* refuses a halted pipeline */
    if (rc == 0)
        rc = a->sink->ops->start(a->sink, LSN_INVALID);
    offload_result(base, rc);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents);

static void reconnect_done(OffloadJob *base)
{
    Applier *a = ((SinkJob *)base)->a;
    int rc = offload_rethrow(base);
    bool cancelled = base->cancelled;

    free(base);
    if (cancelled)
        return;
    a->sink_job = false;
    if (rc == TM_EDIVERGED) {
        applier_fail(a, rc);
        return;
    }
    if (rc < 0) {
        a->backoff = a->backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : a->backoff * 2;
        log_warn("target still unavailable (%s); retrying in %.1f s", tm_error(), a->backoff);
        ev_timer_set(&a->retry_timer, a->backoff, 0);
        ev_timer_start(a->loop, &a->retry_timer);
        return;
    }
    log_notice("target connected; reading the partitions' offsets");
    a->sink_down = false;
    ev_io_set(&a->sink_r, a->sink->ops->socket(a->sink), EV_READ);
    ev_io_set(&a->sink_w, a->sink->ops->socket(a->sink), EV_WRITE);
    ev_io_start(a->loop, &a->sink_r);
    update_sink_watchers(a);
    applier_pos_request(a);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    Applier *a = w->data;
    SinkJob *j;

    if (a->sink_job || a->rc)
        return;
    j = xcalloc(1, sizeof(*j));
    j->base.run = reconnect_run;
    j->base.done = reconnect_done;
    j->a = a;
    a->sink_job = true;
    offload_submit(a->jobs, &j->base);
}

void applier_recover(Applier *a, int rc)
{
    rd_kafka_topic_partition_list_t *l;

    if (a->sink_down || a->rc)
        return;
    if (rc != -ENOTCONN && rc != -ESTALE && rc != -EIO && rc != TM_EDIVERGED && rc != -EPROTO) {
        applier_fail(a, rc);
        return;
    }
    log_warn("%s; rolling back to the offsets the target holds", tm_error());
    if (!a->failed_rc || rc != -ENOTCONN) {
        /* what the failed batch expected, to tell a race from an error that repeats */
        applier_batch_release(&a->failed);
        if (a->nbatches) {
            a->failed = a->batches[0];
            a->batches[0] = (ABatch){0};
        } else {
            a->failed.parts = xcalloc(a->nparts + 1, sizeof(*a->failed.parts));
            for (size_t i = 0; i < a->nparts; i++)
                if (a->parts[i].touched)
                    a->failed.parts[a->failed.n++] =
                        (struct ABatchPart){xstrdup(a->parts[i].topic), a->parts[i].partition,
                                            a->parts[i].stored, a->parts[i].next};
        }
        a->failed_rc = rc;
        snprintf(a->failed_msg, sizeof(a->failed_msg), "%s", tm_error());
    }
    for (size_t i = 0; i < a->nbatches; i++)
        applier_batch_release(&a->batches[i]);
    a->nbatches = 0;
    a->seq = 0;
    a->batch_msgs = 0;
    a->sink_down = true;
    ev_io_stop(a->loop, &a->sink_r);
    ev_io_stop(a->loop, &a->sink_w);
    applier_tables_reset(a);
    /* Everything not durable is gone on the target: every partition starts again where
     * the target says, once it answers. */
    a->assign_gen++;
    l = rd_kafka_topic_partition_list_new((int)a->nparts + 1);
    for (size_t i = 0; i < a->nparts; i++) {
        a->parts[i].ready = false;
        a->parts[i].touched = false;
        a->parts[i].gen = a->assign_gen;
        rd_kafka_topic_partition_list_add(l, a->parts[i].topic, a->parts[i].partition);
    }
    kconsumer_pause(a->kc, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (a->held) {
        rd_kafka_message_destroy(a->held);
        a->held = NULL;
    }
    a->want_positions = true;
    a->positions_after = 0;
    ev_timer_set(&a->retry_timer, rc == -ENOTCONN ? a->backoff : 0.1, 0);
    ev_timer_start(a->loop, &a->retry_timer);
}

/* ---- watchers ---------------------------------------------------------------------- */

static void on_kafka(struct ev_loop *loop, ev_io *w, int revents)
{
    applier_pump(w->data);
}

static void on_sink_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    Applier *a = w->data;
    int rc = a->sink->ops->process(a->sink);

    if (rc < 0) {
        applier_recover(a, rc);
        return;
    }
    applier_pos_settle(a);
    update_sink_watchers(a);
    if (a->stopping && a->sink->ops->inflight(a->sink) == 0) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    applier_pos_request(a);
    if (below_resume_mark(a))
        applier_pump(a);
}

static void on_sink_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    update_sink_watchers(w->data);
}

static void on_progress(struct ev_loop *loop, ev_timer *w, int revents)
{
    Applier *a = w->data;
    size_t ready = 0;

    for (size_t i = 0; i < a->nparts; i++)
        ready += a->parts[i].ready;
    if (a->n_msgs != a->last_msgs)
        log_info("applied %llu messages (%.0f/s), %llu batches; skipped %llu resends, %llu"
                 " tombstones; %llu dead letters; %zu of %zu partitions ready",
                 a->n_msgs, (double)(a->n_msgs - a->last_msgs) / w->repeat, a->n_batches, a->n_dups,
                 a->n_tombstones, a->n_dead, ready, a->nparts);
    a->last_msgs = a->n_msgs;
}

static void on_pos_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    applier_pos_request(w->data);
}

static void on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
    notify_watchdog();
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    Applier *a = w->data;

    log_info("received %s: committing what is applied, then leaving the group",
             strsignal(w->signum));
    notify_stopping();
    a->stopping = true;
    ev_io_stop(loop, &a->kafka_r);
    if (a->sink_down || close_batch(a) < 0 || a->sink->ops->inflight(a->sink) == 0)
        ev_break(loop, EVBREAK_ALL);
}

/* ---- run ------------------------------------------------------------------------- */

/* Best effort, like the pipeline's: the reason shows in `tidemark status`; a divergence halts. */
static void record_stop(Applier *a, int rc)
{
    char msg[1024];
    PGconn *dst = NULL;

    snprintf(msg, sizeof(msg), "%s", tm_error());
    if (pgconn_open(&a->cfg->target.conn, PGCONN_NORMAL, "target", &dst) == 0) {
        pgstate_record_error(dst, a->cfg->pipeline, msg, rc == TM_EDIVERGED);
        PQfinish(dst);
    }
    tm_fail(rc, "%s", msg);
}

static int setup(Applier *a)
{
    PGconn *conn = NULL;
    bool found;
    Lsn lsn;
    int rc = pgconn_open(&a->cfg->target.conn, PGCONN_NORMAL, "target", &conn);

    if (rc == 0)
        rc = applier_pos_ensure(conn);
    if (conn)
        PQfinish(conn);
    a->sink = pgsink_new(a->cfg);
    pgsink_own_position(a->sink);
    if (rc == 0)
        rc = a->sink->ops->connect(a->sink, "UTF8");
    if (rc == 0)
        rc = a->sink->ops->read_position(a->sink, &found, &lsn); /* refuses a halted pipeline */
    if (rc == 0)
        rc = a->sink->ops->start(a->sink, LSN_INVALID);
    if (rc == 0)
        rc = offload_new(a->loop, "target", &a->jobs);
    if (rc == 0)
        rc = kconsumer_new(a->cfg, on_rebalance, a, &a->kc);
    return rc;
}

static void drain(Applier *a)
{
    if (!a->sink_down && !a->rc) {
        close_batch(a);
        if (a->sink->ops->drain(a->sink) == 0)
            applier_pos_settle(a);
        else
            log_warn("the last batch did not commit: %s (the next start applies it again)",
                     tm_error());
    }
}

int applier_run(Config *cfg)
{
    Applier a = {.cfg = cfg, .backoff = 0.5};
    uint64_t wd;
    int rc;

    if (strcmp(cfg->source.type, "kafka") != 0 || strcmp(cfg->target.type, "postgres") != 0)
        return tm_fail(-EINVAL,
                       "%s: `tidemark apply` reads a Kafka source (source.type: kafka)"
                       " into a PostgreSQL target",
                       cfg->path);
    a.loop = ev_loop_new(EVFLAG_AUTO);
    if (!a.loop)
        return tm_fail(-ENOMEM, "cannot create the event loop");
    a.dbz = debezium_options_tree(json_object_get(cfg->tree, "source"));
    a.rels = relcache_new();
    a.arena = arena_new(64 * 1024);
    rc = setup(&a);
    if (rc == 0) {
        ev_io_init(&a.kafka_r, on_kafka, kconsumer_fd(a.kc), EV_READ);
        ev_io_init(&a.sink_r, on_sink_readable, a.sink->ops->socket(a.sink), EV_READ);
        ev_io_init(&a.sink_w, on_sink_writable, a.sink->ops->socket(a.sink), EV_WRITE);
        ev_timer_init(&a.retry_timer, on_retry, 0, 0);
        ev_timer_init(&a.pos_timer, on_pos_timer, 0, 0);
        ev_timer_init(&a.progress_timer, on_progress, 10, 10);
        ev_signal_init(&a.sig_term, on_signal, SIGTERM);
        ev_signal_init(&a.sig_int, on_signal, SIGINT);
        a.kafka_r.data = a.sink_r.data = a.sink_w.data = a.retry_timer.data = &a;
        a.progress_timer.data = a.sig_term.data = a.sig_int.data = a.pos_timer.data = &a;
        ev_io_start(a.loop, &a.kafka_r);
        ev_io_start(a.loop, &a.sink_r);
        ev_timer_start(a.loop, &a.progress_timer);
        ev_signal_start(a.loop, &a.sig_term);
        ev_signal_start(a.loop, &a.sig_int);
        wd = notify_watchdog_interval_usec();
        if (wd) {
            ev_timer_init(&a.watchdog_timer, on_watchdog, 0, (double)wd / 2e6);
            a.watchdog_timer.data = &a;
            ev_timer_start(a.loop, &a.watchdog_timer);
        }
        notify_ready("applying");
        applier_pump(&a);
        ev_run(a.loop, 0);
        rc = a.rc;
        if (rc == 0)
            drain(&a);
    }
    if (rc < 0) {
        char *msg = xstrdup(tm_error());

        log_error("%s", msg);
        tm_fail(rc, "%s", msg);
        free(msg);
        if (a.sink)
            record_stop(&a, rc);
    }
    char *keep = xstrdup(tm_error());

    if (a.held)
        rd_kafka_message_destroy(a.held);
    kconsumer_free(a.kc); /* leaves the group: the others take the partitions over */
    offload_free(a.jobs);
    if (a.ctl)
        PQfinish(a.ctl);
    for (size_t i = 0; i < a.nparts; i++) {
        free(a.parts[i].topic);
        free(a.parts[i].producer);
    }
    free(a.parts);
    for (size_t i = 0; i < a.nbatches; i++)
        applier_batch_release(&a.batches[i]);
    free(a.batches);
    applier_batch_release(&a.failed);
    for (size_t i = 0; i < a.ntables; i++)
        applier_table_free(a.tables[i]);
    free(a.tables);
    relcache_free(a.rels);
    sink_free(a.sink);
    arena_free(a.arena);
    ev_loop_destroy(a.loop);
    log_info("stopped: %llu messages applied in %llu batches this run (%llu resends skipped, %llu"
             " dead letters)",
             a.n_msgs, a.n_batches, a.n_dups, a.n_dead);
    if (rc < 0)
        tm_fail(rc, "%s", keep);
    free(keep);
    return rc;
}
