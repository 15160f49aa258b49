/*
 * The streaming loop. Startup (blocking, before the loop): resolve tables,
 * publication, slot, initial copy on first start. Then one libev loop reads
 * replication frames, feeds decoded changes to the sink, reads the sink's
 * results, and reports to the source only the LSN the sink made durable.
 * Backpressure: when too much is in flight on the target, the replication
 * socket is simply not read; the source keeps the WAL. Nothing here waits on
 * the network once the loop runs: connects, START_REPLICATION and the
 * post-data restore are jobs of the source and target workers (offload.h).
 */
#include "daemon/pipeline.h"
#include "daemon/pipeline_int.h"
#include "connectors/pg/idmap.h"
#include "connectors/pg/pgconn.h"
#include "connectors/pg/schemacopy.h"
#include "daemon/notify.h"
#include "daemon/offload.h"
#include "connectors/pg/catalog.h"
#include "connectors/pg/pgoutput.h"
#include "connectors/pg/repl.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/log.h"
#include "core/relcache.h"
#include "core/transform/mapping.h"
#include "core/xmalloc.h"
#include "sinks/pg/pgstate.h"
#include "sinks/sink.h"

#include <ev.h>

#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_INFLIGHT       20000
#define MAX_INFLIGHT_BYTES (16u * 1024 * 1024)
#define BACKOFF_MIN_S      0.5
#define BACKOFF_MAX_S      30.0

static void sink_lost(Pipeline *p);

OffloadJob *pipeline_job_new(Pipeline *p, OffloadFn run, OffloadFn done)
{
    PipelineJob *j = xcalloc(1, sizeof(*j));

    j->base.run = run;
    j->base.done = done;
    j->p = p;
    return &j->base;
}

void pipeline_job_free(OffloadJob *j)
{
    free(j);
}

Lsn pipeline_durable(const Pipeline *p)
{
    return p->sink_down ? p->durable_at_loss : p->sink->ops->durable(p->sink);
}

void pipeline_fail(Pipeline *p, int rc)
{
    /* A lost target connection is an outage, not a failure: reconnect. */
    if (rc == -ENOTCONN && p->rc == 0) {
        sink_lost(p);
        return;
    }
    if (p->rc == 0)
        p->rc = rc;
    ev_break(p->loop, EVBREAK_ALL);
}

static int send_status(Pipeline *p, bool reply)
{
    Lsn flush = pipeline_durable(p);
    Lsn write = p->received > flush ? p->received : flush;
    int rc;

    if (!p->streaming)
        return 0;
    rc = repl_send_status(p->repl, write, flush, reply);
    if (rc < 0)
        return rc;
    if (rc == 1)
        ev_io_start(p->loop, &p->repl_w);
    p->reported = flush;
    return 0;
}

static void update_sink_watchers(Pipeline *p)
{
    int r = p->sink->ops->flush(p->sink);

    if (r < 0) {
        pipeline_fail(p, r);
        return;
    }
    if (r == 1)
        ev_io_start(p->loop, &p->sink_w);
    else
        ev_io_stop(p->loop, &p->sink_w);
}

static bool sink_gated(const Pipeline *p)
{
    return p->sink->ops->gated && p->sink->ops->gated(p->sink);
}

/*
 * Whether to stop reading the replication socket: too much in flight on the
 * target. (While a closed batch is being checked the stream reads on: the
 * sink gathers what it can for the next batch and says -EBUSY when it would
 * have to send, see after_frame.)
 */
static bool over_limit(const Pipeline *p)
{
    return p->sink->ops->inflight(p->sink) >= MAX_INFLIGHT ||
           p->sink->ops->inflight_bytes(p->sink) >= MAX_INFLIGHT_BYTES;
}

static bool below_resume_mark(const Pipeline *p)
{
    return p->sink->ops->inflight(p->sink) < MAX_INFLIGHT / 2 &&
           p->sink->ops->inflight_bytes(p->sink) < MAX_INFLIGHT_BYTES / 2;
}

static void pause_source(Pipeline *p)
{
    p->paused = true;
    ev_io_stop(p->loop, &p->repl_r);
}

/*
 * A change of a table that is not (or no longer) in source.tables: it was
 * published when the change was made, before the table was removed from the
 * configuration. Removing a table means "stop applying it": say so once.
 */
static int skip_foreign(Pipeline *p, RelEntry *rel)
{
    if (!rel->foreign_warned) {
        log_write(LOG_LVL_WARNING, rel->display, p->txn.final_lsn,
                  "not applying changes of a table that is not in source.tables");
        rel->foreign_warned = true;
    }
    return FILTER_SKIP;
}

/*
 * A table's mapping on the stream: compiled for each Relation message's
 * shape, with the target shape the sink sees in place of the source's.
 */
typedef struct StreamMap {
    MappingPlan *plan;
    RelEntry target; /* info borrowed from the plan; display and sink state owned */
} StreamMap;

static void streammap_free(void *state)
{
    StreamMap *m = state;

    if (!m)
        return;
    if (m->target.sink_state && m->target.sink_state_free)
        m->target.sink_state_free(m->target.sink_state);
    free(m->target.display);
    mapping_free(m->plan);
    free(m);
}

/* Relation message: (re)compile the table's mapping for this shape, if it has one. */
static int compile_mapping(Pipeline *p, RelEntry *e)
{
    const json_t *cfg = mapping_find(p->cfg->tree, e->info.schema, e->info.name);
    StreamMap *m;
    int rc;

    if (!cfg)
        return 0;
    m = xcalloc(1, sizeof(*m));
    rc = mapping_compile(cfg, &e->info, &m->plan);
    if (rc == 0) {
        mapping_default_on_error(m->plan, p->cfg->apply.on_error_dead_letter
                                              ? MAPPING_ON_ERROR_DEAD_LETTER
                                              : MAPPING_ON_ERROR_STOP);
        rc = mapping_check_identity(m->plan, e->info.replident);
    }
    if (rc == 0 && mapping_uses_id_lookup(m->plan))
        rc = pipeline_idmap_attach(p, m->plan);
    if (rc == 0 && mapping_on_error(m->plan) == MAPPING_ON_ERROR_DEAD_LETTER &&
        !p->sink->ops->dead_letter)
        rc = tm_fail(-ENOTSUP, "the %s target cannot store dead letters", p->sink->ops->name);
    if (rc < 0) {
        streammap_free(m);
        return tm_fail_ctx(rc, "mapping of %s", e->display);
    }
    m->target.info = *mapping_target_rel(m->plan);
    m->target.display =
        relcache_display_name(mapping_target_schema(m->plan), mapping_target_table(m->plan));
    m->target.table_idx = e->table_idx;
    e->mapped = &m->target;
    e->map_state = m;
    e->map_state_free = streammap_free;
    return 0;
}

static int send_row(Pipeline *p, RelEntry *rel, RelEntry *to, const Change *c)
{
    int rc = p->sink->ops->apply(p->sink, to, c, &p->txn);

    /* Counted once taken: -EBUSY hands the same change over again later. */
    if (rc == 0) {
        p->n_changes++;
        p->tstate[rel->table_idx].applied[c->kind == CHG_INSERT   ? 0
                                          : c->kind == CHG_UPDATE ? 1
                                                                  : 2]++;
    }
    return rc;
}

/*
 * A row the mapping could not transform: stop (the engine's message), or
 * dead-letter it — only for the row's own data. An environment failure (the
 * id_map connection lost: -ENOTCONN) goes back up as it is: pipeline_fail()
 * treats it as a target outage and replays from the durable position. So
 * does -EAGAIN, an id_map answer still on its way: the frame waits for it.
 */
static int mapping_failed(Pipeline *p, RelEntry *rel, const MappingPlan *plan, const Change *c,
                          int rc)
{
    if (mapping_on_error(plan) != MAPPING_ON_ERROR_DEAD_LETTER || !mapping_error_is_data(rc))
        return rc;
    char *err = xstrdup(tm_error());

    rc = p->sink->ops->dead_letter(p->sink, rel, c, &p->txn, err);
    if (rc == 0) { /* (-EBUSY: the same change comes again) */
        log_write(LOG_LVL_WARNING, rel->display, p->txn.final_lsn, "dead letter: %s", err);
        p->tstate[rel->table_idx].dead_letters++;
        pipeline_check_early_errors(p);
    }
    free(err);
    return rc;
}

/*
 * A row change through the table's mapping. With a filter (which requires
 * REPLICA IDENTITY FULL, so the old row is complete) an UPDATE that moves a
 * row into the filter's range becomes an INSERT, one that moves it out a
 * DELETE, and a DELETE of a row the filter kept out is skipped: the target
 * never had it, so it must not count as divergence.
 */
static int apply_mapped(Pipeline *p, RelEntry *rel, const Change *c)
{
    const MappingPlan *plan = ((const StreamMap *)rel->map_state)->plan;
    TableState *ts = &p->tstate[rel->table_idx];
    Tuple nt = {0}, ot = {0};
    bool nf = false, of = false;
    Change mc = {.kind = c->kind};
    int rc = 0;

    switch (c->kind) {
    case CHG_INSERT:
        rc = mapping_apply(plan, &c->insert.newtup, p->arena, &nt, &nf);
        if (rc < 0)
            return mapping_failed(p, rel, plan, c, rc);
        if (nf) {
            ts->filtered++;
            return 0;
        }
        mc.insert.relid = c->insert.relid;
        mc.insert.newtup = nt;
        return send_row(p, rel, rel->mapped, &mc);
    case CHG_UPDATE: {
        Tuple in = c->update.newtup;
        char ok = c->update.old_kind;

        if (ok == 'O') {
            /* Unchanged TOAST values a transform needs come from the full old row. */
            ColValue *cols = arena_calloc(p->arena, in.ncols ? in.ncols : 1, sizeof(*cols));

            for (uint16_t i = 0; i < in.ncols; i++)
                cols[i] = in.cols[i].state == COL_UNCHANGED && i < c->update.oldtup.ncols
                              ? c->update.oldtup.cols[i]
                              : in.cols[i];
            in.cols = cols;
        }
        rc = mapping_apply(plan, &in, p->arena, &nt, &nf);
        if (rc == 0 && ok == 'O')
            rc = mapping_apply(plan, &c->update.oldtup, p->arena, &ot, &of);
        else if (rc == 0 && ok == 'K')
            rc = mapping_apply_key(plan, &c->update.oldtup, p->arena, &ot);
        if (rc < 0)
            return mapping_failed(p, rel, plan, c, rc);
        if (nf && of) {
            ts->filtered++;
            return 0;
        }
        if (of) { /* into the filter's range: the target does not have it yet */
            mc.kind = CHG_INSERT;
            mc.insert.relid = c->update.relid;
            mc.insert.newtup = nt;
        } else if (nf) { /* out of it: the target's row goes */
            mc.kind = CHG_DELETE;
            mc.del.relid = c->update.relid;
            mc.del.old_kind = 'O';
            mc.del.oldtup = ot;
        } else {
            mc.update.relid = c->update.relid;
            mc.update.old_kind = ok;
            mc.update.oldtup = ot;
            mc.update.newtup = nt;
        }
        return send_row(p, rel, rel->mapped, &mc);
    }
    case CHG_DELETE:
        if (c->del.old_kind == 'O')
            rc = mapping_apply(plan, &c->del.oldtup, p->arena, &ot, &of);
        else
            rc = mapping_apply_key(plan, &c->del.oldtup, p->arena, &ot);
        if (rc < 0)
            return mapping_failed(p, rel, plan, c, rc);
        if (of) {
            ts->filtered++;
            return 0;
        }
        mc.del.relid = c->del.relid;
        mc.del.old_kind = c->del.old_kind;
        mc.del.oldtup = ot;
        return send_row(p, rel, rel->mapped, &mc);
    default:
        return tm_fail(-EINVAL, "not a row change");
    }
}

static int handle_row(Pipeline *p, const Change *c)
{
    uint32_t relid = c->kind == CHG_INSERT   ? c->insert.relid
                     : c->kind == CHG_UPDATE ? c->update.relid
                                             : c->del.relid;
    RelEntry *rel = relcache_get(p->rels, relid);
    const Change *as;
    Change scratch;
    int rc;

    if (!p->in_txn)
        return tm_fail(-EPROTO, "%s outside a transaction", pgoutput_kind_name(c->kind));
    if (p->skip_txn)
        return 0;
    if (!rel)
        return tm_fail(-EPROTO, "%s for relation %u before its Relation message",
                       pgoutput_kind_name(c->kind), relid);
    if (rel->table_idx < 0)
        return skip_foreign(p, rel) == FILTER_SKIP ? 0 : -EPROTO;
    rc = pipeline_filter_row(p, rel->table_idx, rel, c, &as, &scratch);
    if (rc == FILTER_SKIP) {
        p->n_skipped_copy++; /* committed before its copy's snapshot: in the copy */
        p->tstate[rel->table_idx].skipped_copy++;
        return 0;
    }
    if (rc != FILTER_APPLY)
        return rc;
    if (rel->mapped)
        return apply_mapped(p, rel, as);
    return send_row(p, rel, rel, as);
}

static int handle_truncate(Pipeline *p, const Change *c)
{
    RelEntry **rels;
    int rc;

    if (!p->in_txn)
        return tm_fail(-EPROTO, "Truncate outside a transaction");
    if (p->skip_txn)
        return 0;
    uint32_t n = 0;

    rels = arena_calloc(p->arena, c->truncate.nrels ? c->truncate.nrels : 1, sizeof(*rels));
    for (uint32_t i = 0; i < c->truncate.nrels; i++) {
        RelEntry *rel = relcache_get(p->rels, c->truncate.relids[i]);

        if (!rel)
            return tm_fail(-EPROTO, "Truncate of relation %u before its Relation message",
                           c->truncate.relids[i]);
        if (rel->table_idx < 0) {
            skip_foreign(p, rel);
            continue;
        }
        rc = pipeline_filter_table(p, rel->table_idx);
        if (rc < 0 || rc == FILTER_HOLD)
            return rc;
        if (rc == FILTER_APPLY && rel->mapped) {
            const MappingPlan *plan = ((const StreamMap *)rel->map_state)->plan;

            for (size_t k = 0; k < mapping_target_ncols(plan); k++) {
                const char *v;
                size_t len;

                /* A constant column tags this source's rows in a shared (fan-in)
                 * target: TRUNCATE would remove the other sources' rows too. */
                if (mapping_target_const(plan, k, &v, &len))
                    return tm_fail(-ENOTSUP,
                                   "TRUNCATE of %s: its target %s may hold other sources' rows"
                                   " (the mapping tags rows with constant columns); refusing to"
                                   " truncate it. Delete this source's rows on the target by"
                                   " hand, then restart",
                                   rel->display, rel->mapped->display);
            }
            rels[n++] = rel->mapped;
            p->tstate[rel->table_idx].applied[3]++;
        } else if (rc == FILTER_APPLY) {
            rels[n++] = rel;
            p->tstate[rel->table_idx].applied[3]++;
        }
    }
    rc = p->sink->ops->truncate(p->sink, rels, n, c->truncate.flags, &p->txn);
    p->n_changes++;
    return rc;
}

static void ptxn_push(Pipeline *p, Lsn end, PgTime t)
{
    if (p->ptxn_count == p->ptxn_cap) {
        size_t cap = p->ptxn_cap ? 2 * p->ptxn_cap : 256;
        PendingTxn *n = xcalloc(cap, sizeof(*n));

        for (size_t i = 0; i < p->ptxn_count; i++)
            n[i] = p->ptxn[(p->ptxn_head + i) % p->ptxn_cap];
        free(p->ptxn);
        p->ptxn = n;
        p->ptxn_head = 0;
        p->ptxn_cap = cap;
    }
    p->ptxn[(p->ptxn_head + p->ptxn_count++) % p->ptxn_cap] = (PendingTxn){end, t};
}

/* Drops transactions the sink made durable; remembers the last one's time. */
static void ptxn_settle(Pipeline *p)
{
    Lsn durable = p->sink->ops->durable(p->sink);

    while (p->ptxn_count && p->ptxn[p->ptxn_head].end_lsn <= durable) {
        p->last_applied_commit_time = p->ptxn[p->ptxn_head].commit_time;
        p->ptxn_head = (p->ptxn_head + 1) % p->ptxn_cap;
        p->ptxn_count--;
    }
}

double pipeline_lag_seconds(const Pipeline *p)
{
    PgTime now = walproto_now();

    if (p->ptxn_count == 0 && !p->in_txn)
        return 0;
    PgTime oldest = p->ptxn_count ? p->ptxn[p->ptxn_head].commit_time : p->txn.commit_time;
    return now > oldest ? (double)(now - oldest) / 1e6 : 0;
}

long long pipeline_lag_bytes(const Pipeline *p)
{
    Lsn durable = pipeline_durable(p);

    return p->server_wal_end > durable ? (long long)(p->server_wal_end - durable) : 0;
}

static int handle_change(Pipeline *p, const Change *c)
{
    switch (c->kind) {
    case CHG_BEGIN:
        if (p->in_txn)
            return tm_fail(-EPROTO, "Begin inside an open transaction");
        p->in_txn = true;
        p->txn.xid = c->begin.xid;
        p->txn.final_lsn = c->begin.final_lsn;
        p->txn.commit_time = c->begin.commit_time;
        p->txn.end_lsn = LSN_INVALID;
        /* The slot may resend what the watermark already covers (invariant 2). */
        p->skip_txn = c->begin.final_lsn < p->skip_before;
        if (p->skip_txn) {
            log_write(LOG_LVL_DEBUG, NULL, c->begin.final_lsn,
                      "skipping transaction %u: already applied", c->begin.xid);
            return 0;
        }
        return p->sink->ops->txn_begin(p->sink, &p->txn);
    case CHG_COMMIT:
        if (!p->in_txn)
            return tm_fail(-EPROTO, "Commit without Begin");
        if (c->commit.commit_lsn != p->txn.final_lsn)
            return tm_fail(-EPROTO, "Commit at " LSN_FMT " does not match Begin's " LSN_FMT,
                           LSN_ARGS(c->commit.commit_lsn), LSN_ARGS(p->txn.final_lsn));
        p->in_txn = false;
        p->txn.end_lsn = c->commit.end_lsn;
        p->txn.commit_time = c->commit.commit_time;
        if (p->skip_txn)
            return 0;
        p->n_txns++;
        ptxn_push(p, p->txn.end_lsn, p->txn.commit_time);
        int rc = p->sink->ops->txn_commit(p->sink, &p->txn);
        /* While a copy runs, the stream may have to wait for it (a hold):
         * one source transaction per batch, so a hold rolls back no more
         * than the transaction it interrupts. */
        if (rc == 0 &&
            ((long)p->sink->ops->batch_changes(p->sink) >= p->cfg->apply.batch_max_changes ||
             !p->copy_done_logged))
            rc = p->sink->ops->close_batch(p->sink);
        return rc;
    case CHG_RELATION: {
        /* Changes gathered under the old shape go out before it is dropped. */
        int brc = p->sink->ops->barrier ? p->sink->ops->barrier(p->sink) : 0;

        if (brc < 0)
            return brc;
        RelEntry *e = relcache_put(p->rels, &c->relation);

        e->table_idx = tableset_find(&p->tabs, e->info.schema, e->info.name);
        return e->table_idx >= 0 ? compile_mapping(p, e) : 0;
    }
    case CHG_INSERT:
    case CHG_UPDATE:
    case CHG_DELETE:
        return handle_row(p, c);
    case CHG_TRUNCATE:
        return handle_truncate(p, c);
    case CHG_TYPE:
    case CHG_ORIGIN:
    case CHG_MESSAGE:
        return 0;
    }
    return tm_fail(-EPROTO, "unhandled change kind '%c'", c->kind);
}

/* A WAL data frame's change: decode it and hand it on (again after -EAGAIN). */
static int handle_xlog(Pipeline *p, const WalFrame *f)
{
    Change c;
    int rc = pgoutput_decode(f->xlog.data, f->xlog.len, p->arena, &c);

    p->txn.change_lsn = f->xlog.start; /* what sinks report as the change's own position */
    if (rc == 0)
        rc = handle_change(p, &c);
    arena_reset(p->arena);
    if (rc < 0 && rc != -EAGAIN)
        return tm_fail_ctx(rc, "at source LSN " LSN_FMT, LSN_ARGS(f->xlog.start));
    /* 0, FILTER_HOLD (a table this change needs is still copying) or
     * -EAGAIN (an id_map answer is on its way: nothing was sent yet). */
    return rc;
}

static int handle_frame(Pipeline *p, const WalFrame *f)
{
    int rc;

    if (f->kind == 'k') {
        if (f->keepalive.wal_end > p->server_wal_end)
            p->server_wal_end = f->keepalive.wal_end;
        if (f->keepalive.wal_end > p->received && !p->in_txn)
            p->received = f->keepalive.wal_end;
        /* Nothing received is in flight outside closed batches: the keepalive's
         * position may be made durable as the watermark (invariant 1). */
        if (!p->in_txn) {
            rc = p->sink->ops->close_batch(p->sink);
            if (rc == 0)
                rc = p->sink->ops->idle_position(p->sink, f->keepalive.wal_end);
            if (rc < 0)
                return rc;
        }
        return f->keepalive.reply_requested ? send_status(p, false) : 0;
    }
    if (f->xlog.start > p->received)
        p->received = f->xlog.start;
    if (f->xlog.end > p->server_wal_end)
        p->server_wal_end = f->xlog.end;
    p->received_bytes += f->xlog.len;
    pipeline_idmap_new_frame(p);
    return handle_xlog(p, f);
}

static void source_lost(Pipeline *p, int err);

/* Whether the stream may read the next frame now. */
static bool may_read(const Pipeline *p)
{
    return p->streaming && !p->paused && !p->held && !p->lookup_wait && !p->sink_busy;
}

/*
 * What follows handling frame f with result rc: 1 read on, 0 stop reading
 * for now (a hold, an id_map answer to wait for, backpressure), -1 the
 * pipeline failed or lost a peer (nothing more to do here).
 */
static int after_frame(Pipeline *p, const WalFrame *f, int rc)
{
    if (rc == -EBUSY) {
        /* The sink would have to send while its previous batch is still
         * being checked: keep the frame, handle it again once that batch
         * committed (nothing of it was taken). */
        p->sink_busy = true;
        p->lookup_frame = *f;
        ev_io_stop(p->loop, &p->repl_r);
        return 0;
    }
    if (rc == -EAGAIN) {
        /* Stop reading and keep the frame (its buffer lives until the next
         * read): it is handled again from the start when the answer is in.
         * Transforming has no side effect before the row is sent. */
        p->lookup_wait = true;
        p->lookup_frame = *f;
        ev_io_stop(p->loop, &p->repl_r);
        return 0;
    }
    if (rc < 0) {
        pipeline_fail(p, rc);
        return -1;
    }
    if (rc == FILTER_HOLD) {
        /* Stop reading: the source keeps the WAL until the copy commits. */
        p->held = true;
        ev_io_stop(p->loop, &p->repl_r);
        if (p->sink->ops->transactional) {
            /* Wait at a transaction boundary, not inside an idle target
             * transaction: while copies run a batch closes at every source
             * commit, so this rolls back only the partial transaction; the
             * stream restarts from the durable position after the copy. */
            p->in_txn = false;
            rc = p->sink->ops->abort_batch(p->sink);
            if (rc < 0) {
                pipeline_fail(p, rc);
                return -1;
            }
        } else {
            /* No target transaction to keep open: keep the frame (its
             * buffer lives until the next read) and apply it on release. */
            p->held_frame = *f;
        }
        /* Not yet planned: the workers are still reading the copy state. */
        log_write(p->tstate[p->held_table].planned ? LOG_LVL_INFO : LOG_LVL_DEBUG,
                  p->tabs.t[p->held_table].display, p->txn.final_lsn,
                  "stream waits for the initial copy of this table");
        return 0;
    }
    if (over_limit(p)) {
        pause_source(p);
        log_debug("backpressure: %zu commands in flight on the target",
                  p->sink->ops->inflight(p->sink));
    }
    return 1;
}

/* Reads and applies every complete frame; more while the socket has data. */
static bool pump_source(Pipeline *p)
{
    WalFrame f;
    bool refilled = false; /* the last read attempt found the buffer empty */
    bool drained = false;
    int rc;

    while (may_read(p)) {
        rc = repl_read(p->repl, &f);
        if (rc < 0) {
            source_lost(p, rc);
            return false;
        }
        if (rc == 0) {
            /* Buffer empty: keep filling the batch while the socket has more. One
             * non-blocking read says so (nothing read: EAGAIN) at the cost a poll()
             * would have, and saves the poll() when there is more. */
            if ((long)p->sink->ops->batch_changes(p->sink) < p->cfg->apply.batch_max_changes &&
                !refilled) {
                rc = repl_consume(p->repl);
                if (rc < 0) {
                    source_lost(p, rc);
                    return false;
                }
                refilled = true;
                continue;
            }
            drained = refilled;
            break;
        }
        refilled = false;
        rc = after_frame(p, &f, handle_frame(p, &f));
        if (rc < 0)
            return false;
        if (rc == 0)
            break;
    }
    if (p->streaming && !p->in_txn) {
        rc = p->sink->ops->close_batch(p->sink);
        if (rc < 0) {
            pipeline_fail(p, rc);
            return false;
        }
    }
    update_sink_watchers(p);
    return drained;
}

void pipeline_lookup_answered(Pipeline *p)
{
    int rc;

    if (!p->lookup_wait || p->rc)
        return; /* the frame went with a lost connection: answer kept for later */
    rc = handle_xlog(p, &p->lookup_frame);
    if (rc == -EAGAIN)
        return; /* another id of the same change: asked in turn */
    p->lookup_wait = false;
    rc = after_frame(p, &p->lookup_frame, rc);
    if (rc < 0)
        return;
    if (rc == 1 && may_read(p))
        ev_io_start(p->loop, &p->repl_r);
    pump_source(p); /* frames may already sit in libpq's buffer */
}

/* ---- starting the stream: a source worker job owns repl meanwhile --------- */

typedef struct StartJob {
    OffloadJob base;
    Pipeline *p;
    Lsn start;
} StartJob;

/* Blocking: connect and START_REPLICATION. */
static int stream_open(ReplConn *repl, Lsn start)
{
    int rc = repl_connect(repl);

    return rc == 0 ? repl_start(repl, start) : rc;
}

/* On the loop: the replication connection streams from start. */
static void stream_started(Pipeline *p, Lsn start)
{
    p->skip_before = start;
    p->received = start;
    p->in_txn = false;
    p->streaming = true;
    p->backoff = BACKOFF_MIN_S;
    p->paused = over_limit(p);
    ev_io_set(&p->repl_r, repl_socket(p->repl), EV_READ);
    ev_io_set(&p->repl_w, repl_socket(p->repl), EV_WRITE);
    if (!p->paused)
        ev_io_start(p->loop, &p->repl_r);
    log_write(LOG_LVL_INFO, NULL, start, "streaming from slot %s", p->cfg->source.slot);
}

static void start_run(OffloadJob *j)
{
    StartJob *s = (StartJob *)j;
    int rc = stream_open(s->p->repl, s->start);

    if (rc == -ENOENT) /* the slot is gone: switched over, or lost */
        rc = pipeline_slot_gone(s->p->cfg);
    offload_result(j, rc);
}

static void start_stream(Pipeline *p);

static void start_done(OffloadJob *j)
{
    StartJob *s = (StartJob *)j;
    Pipeline *p = s->p;
    Lsn start = s->start;
    bool cancelled = j->cancelled;
    int rc = offload_rethrow(j);

    free(s);
    if (cancelled)
        return;
    p->stream_starting = false;
    if (rc == -ESHUTDOWN) { /* a cutover or rollback switched the pipeline over */
        log_notice("%s", tm_error());
        notify_stopping();
        ev_break(p->loop, EVBREAK_ALL);
        return;
    }
    /* the slot is past the target, or gone: retrying cannot help */
    if (rc == TM_EDIVERGED || rc == -ENOENT) {
        pipeline_fail(p, rc);
        return;
    }
    if (rc < 0) {
        if (p->sink_down)
            return;         /* the target's reconnect restarts the stream */
        p->errors_source++; /* each failed attempt counts: a long outage keeps the alert firing */
        p->backoff = p->backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : p->backoff * 2;
        log_warn("source still unavailable (%s); retrying in %.1f s", tm_error(), p->backoff);
        repl_disconnect(p->repl);
        ev_timer_set(&p->reconnect_timer, p->backoff, 0);
        ev_timer_start(p->loop, &p->reconnect_timer);
        return;
    }
    /* The target may have gone (and come back at another position) meanwhile.
     * Nothing else moves the durable position while the stream is down. */
    if (p->sink_down || start != pipeline_durable(p)) {
        repl_disconnect(p->repl);
        if (!p->sink_down)
            start_stream(p);
        return;
    }
    stream_started(p, start);
    pipeline_service_ready(p);
}

/*
 * Starts the stream from the durable position, off the loop; nothing may be
 * in flight on the sink (the start position would be stale). A start already
 * on its way does it.
 */
static void start_stream(Pipeline *p)
{
    StartJob *s;

    if (p->stream_starting || p->streaming)
        return;
    s = xcalloc(1, sizeof(*s));
    s->base.run = start_run;
    s->base.done = start_done;
    s->p = p;
    s->start = pipeline_durable(p);
    p->stream_starting = true;
    offload_submit(p->src_jobs, &s->base);
}

/* ---- schema: copy — post-data restore, a target worker job ---------------- */

typedef struct PostDataJob {
    OffloadJob base;
    Pipeline *p;
    atomic_int pid;     /* pg_restore, once running */
    atomic_bool cancel; /* the pipeline stops: end pg_restore (it rolls back) */
} PostDataJob;

static void post_data_run(OffloadJob *j)
{
    PostDataJob *pd = (PostDataJob *)j;
    const Config *cfg = pd->p->cfg;
    SchemaJob *sj = NULL;
    PGconn *dst = NULL;
    int status, rc = pgconn_open(&cfg->target.conn, PGCONN_NORMAL, "target", &dst);

    /* Indexes, constraints and triggers once the rows are in, before any
     * stream change: the apply needs the keys' indexes, and no batch may hold
     * locks the restore waits for. */
    if (rc == 0)
        rc = schemacopy_start(cfg, dst, &pd->p->tabs, "post-data", &sj);
    if (dst)
        PQfinish(dst);
    dst = NULL;
    if (rc == 0) {
        atomic_store(&pd->pid, (int)schemacopy_pid(sj));
        if (atomic_load(&pd->cancel))
            kill(schemacopy_pid(sj), SIGTERM);
        /* The loop is not libev's default loop: no child watcher reaps it first. */
        while (waitpid(schemacopy_pid(sj), &status, 0) < 0 && errno == EINTR)
            ;
        rc = schemacopy_finish(sj, status);
    }
    if (rc == 0)
        rc = pgconn_open(&cfg->target.conn, PGCONN_NORMAL, "target", &dst);
    if (rc == 0)
        rc = schemacopy_mark(dst, cfg->pipeline, "post-data");
    if (dst)
        PQfinish(dst);
    offload_result(j, rc);
}

static void post_data_done(OffloadJob *j)
{
    PostDataJob *pd = (PostDataJob *)j;
    Pipeline *p = pd->p;
    bool cancelled = j->cancelled;
    int rc = offload_rethrow(j);

    free(pd);
    if (cancelled)
        return;
    p->post_data = NULL;
    /* Foreign keys NOT VALID before any stream change (a one-time blocking
     * step at the end of schema: copy); validated once caught up. */
    if (rc == 0)
        rc = pipeline_fk_prepare(p);
    if (rc < 0) {
        pipeline_fail(p, rc);
        return;
    }
    p->defer_stream = false;
    if (!p->sink_down)
        start_stream(p);
    pipeline_service_reload_pending(p);
}

void pipeline_copies_complete(Pipeline *p)
{
    PostDataJob *pd;

    if (!p->defer_stream || p->post_data)
        return;
    pd = xcalloc(1, sizeof(*pd));
    pd->base.run = post_data_run;
    pd->base.done = post_data_done;
    pd->p = p;
    p->post_data = pd;
    offload_submit(p->dst_jobs, &pd->base);
}

/* Stop: a running pg_restore is ended; its job then finishes at once. */
static void post_data_cancel(Pipeline *p)
{
    int pid;

    if (!p->post_data)
        return;
    atomic_store(&p->post_data->cancel, true);
    pid = atomic_load(&p->post_data->pid);
    if (pid > 0)
        kill(pid, SIGTERM);
}

/* After a hold that rolled back a partial transaction, or a lost source:
 * reconnect from the durable position once everything sent to the sink has
 * settled (results still in flight would move it). */
static void rewind_when_settled(Pipeline *p)
{
    if (!p->rewind || p->sink_down || p->sink->ops->inflight(p->sink) > 0)
        return;
    p->rewind = false;
    start_stream(p);
}

void pipeline_release_hold(Pipeline *p)
{
    int rc;

    if (!p->held)
        return;
    p->held = false;
    if (p->sink->ops->transactional) {
        log_debug("initial copy committed: the stream restarts from the durable position");
        ev_io_stop(p->loop, &p->repl_r);
        ev_io_stop(p->loop, &p->repl_w);
        p->streaming = false;
        repl_disconnect(p->repl);
        p->rewind = true;
        rewind_when_settled(p);
        return;
    }
    rc = after_frame(p, &p->held_frame, handle_xlog(p, &p->held_frame));
    if (rc < 0)
        return;
    log_debug("initial copy committed: stream continues");
    if (rc == 1 && may_read(p)) {
        ev_io_start(p->loop, &p->repl_r);
        pump_source(p);
    }
}

/*
 * Caught up with the walsender (the socket is empty after a batch): rather
 * than waking for every message it sends next, stop listening for a moment
 * and take what arrived meanwhile in one go. Each wake-up (a context switch,
 * costly on virtual machines) then carries a batch instead of a message or
 * two; the price is at most COALESCE_S more latency. When the source is
 * faster than we are, the socket never drains and this never triggers.
 */
#define COALESCE_S 0.001

static void coalesce_reads(Pipeline *p)
{
    if (!may_read(p) || !ev_is_active(&p->repl_r))
        return;
    ev_io_stop(p->loop, &p->repl_r);
    ev_timer_set(&p->coalesce_timer, COALESCE_S, 0);
    ev_timer_start(p->loop, &p->coalesce_timer);
}

static void read_and_pump(Pipeline *p)
{
    int rc = repl_consume(p->repl);
    Lsn before = p->received;

    if (rc < 0) {
        source_lost(p, rc);
        return;
    }
    if (pump_source(p) && p->received != before)
        coalesce_reads(p);
}

static void on_repl_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    read_and_pump(w->data);
}

static void on_coalesce(struct ev_loop *loop, ev_timer *w, int revents)
{
    Pipeline *p = w->data;

    /* Someone else (a resume, a reconnect) may have started listening meanwhile. */
    if (!may_read(p) || ev_is_active(&p->repl_r))
        return;
    ev_io_start(loop, &p->repl_r);
    read_and_pump(p);
}

static void on_repl_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    Pipeline *p = w->data;
    int rc = repl_flush(p->repl);

    if (rc < 0)
        source_lost(p, rc);
    else if (rc == 0)
        ev_io_stop(loop, w);
}

static void on_sink_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    Pipeline *p = w->data;
    Lsn before = p->sink->ops->durable(p->sink);
    int rc = p->sink->ops->process(p->sink);

    if (rc < 0) {
        pipeline_fail(p, rc);
        return;
    }
    if (p->sink->ops->durable(p->sink) > before) {
        ptxn_settle(p);
        rc = send_status(p, false);
        if (rc < 0) {
            source_lost(p, rc);
            return;
        }
    }
    if (p->sink_busy && !sink_gated(p) && p->streaming) {
        /* The batch before committed: the waiting change can go now. */
        p->sink_busy = false;
        rc = handle_xlog(p, &p->lookup_frame);
        if (after_frame(p, &p->lookup_frame, rc) < 0)
            return;
        if (may_read(p)) {
            ev_io_start(loop, &p->repl_r);
            pump_source(p);
        }
    } else if (!sink_gated(p) && p->streaming && !p->in_txn && !p->sink_busy) {
        /* A batch gathered while the one before was checked, complete. */
        rc = p->sink->ops->close_batch(p->sink);
        if (rc < 0) {
            pipeline_fail(p, rc);
            return;
        }
    }
    if (p->paused && below_resume_mark(p)) {
        p->paused = false;
        if (may_read(p)) {
            ev_io_start(loop, &p->repl_r);
            pump_source(p); /* frames may already sit in libpq's buffer */
        }
    }
    update_sink_watchers(p); /* process() may have queued a COMMIT */
    rewind_when_settled(p);
}

static void on_sink_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    update_sink_watchers(w->data);
}

static void on_status_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    Pipeline *p = w->data;
    int rc = send_status(p, false);

    if (rc < 0)
        source_lost(p, rc);
}

static void on_reconnect(struct ev_loop *loop, ev_timer *w, int revents)
{
    Pipeline *p = w->data;

    if (p->sink_down)
        return; /* the target's reconnect restarts the stream */
    p->rewind = true;
    rewind_when_settled(p);
}

/* The source went away: drop what is half received, keep what is durable, retry. */
static void source_lost(Pipeline *p, int err)
{
    int rc;

    if (err == TM_EDIVERGED) { /* not an outage: retrying cannot help */
        pipeline_fail(p, err);
        return;
    }
    log_warn("lost the source replication stream: %s", tm_error());
    p->errors_source++;
    ev_io_stop(p->loop, &p->repl_r);
    ev_timer_stop(p->loop, &p->coalesce_timer);
    ev_io_stop(p->loop, &p->repl_w);
    p->streaming = false;
    p->in_txn = false;
    p->held = false; /* the held frame's buffer goes with the connection */
    p->lookup_wait = false;
    p->sink_busy = false;
    repl_disconnect(p->repl);
    /* The open batch may hold a partial transaction: roll it back; the slot
     * resends everything after the durable LSN. The restart waits until the
     * sink's results are in (rewind_when_settled), without blocking. */
    rc = p->sink->ops->abort_batch(p->sink);
    if (rc < 0) {
        pipeline_fail(p, rc);
        return;
    }
    update_sink_watchers(p);
    ev_timer_set(&p->reconnect_timer, p->backoff, 0);
    ev_timer_start(p->loop, &p->reconnect_timer);
}

/* ---- the target's reconnect: a target worker job owns the sink meanwhile -- */

typedef struct SinkJob {
    OffloadJob base;
    Pipeline *p;
    Lsn wm;
} SinkJob;

static void sink_reconnect_run(OffloadJob *j)
{
    SinkJob *s = (SinkJob *)j;
    Sink *sink = s->p->sink;
    bool found;
    int rc = sink->ops->connect(sink, s->p->encoding);

    if (rc == 0)
        rc = sink->ops->read_position(sink, &found, &s->wm);
    if (rc == 0 && !found)
        rc = tm_fail(-EIO, "target: the pipeline's position vanished while it was away");
    if (rc == 0)
        rc = sink->ops->start(sink, s->wm);
    offload_result(j, rc);
}

static void sink_reconnect_done(OffloadJob *j)
{
    SinkJob *s = (SinkJob *)j;
    Pipeline *p = s->p;
    Lsn wm = s->wm;
    bool cancelled = j->cancelled;
    int rc = offload_rethrow(j);

    free(s);
    if (cancelled)
        return;
    p->sink_job = false;
    if (rc < 0) {
        p->errors_target++;
        p->backoff = p->backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : p->backoff * 2;
        log_warn("target still unavailable (%s); retrying in %.1f s", tm_error(), p->backoff);
        ev_timer_set(&p->sink_timer, p->backoff, 0);
        ev_timer_start(p->loop, &p->sink_timer);
        return;
    }
    log_write(LOG_LVL_NOTICE, NULL, wm, "target reconnected");
    p->sink_down = false;
    p->backoff = BACKOFF_MIN_S;
    ev_io_set(&p->sink_r, p->sink->ops->socket(p->sink), EV_READ);
    ev_io_set(&p->sink_w, p->sink->ops->socket(p->sink), EV_WRITE);
    ev_io_start(p->loop, &p->sink_r);
    update_sink_watchers(p);
    if (!p->defer_stream)
        start_stream(p);
}

static void on_sink_reconnect(struct ev_loop *loop, ev_timer *w, int revents)
{
    Pipeline *p = w->data;
    SinkJob *s;

    if (p->sink_job)
        return;
    s = xcalloc(1, sizeof(*s));
    s->base.run = sink_reconnect_run;
    s->base.done = sink_reconnect_done;
    s->p = p;
    p->sink_job = true;
    offload_submit(p->dst_jobs, &s->base);
}

/*
 * The target went away: everything not durable is dropped on this side too
 * (the target rolled it back), the stream stops, and both come back from the
 * target's watermark once it answers again. Until then the sink belongs to
 * its reconnect job: the loop does not touch it.
 */
static void sink_lost(Pipeline *p)
{
    if (p->sink_down)
        return;
    log_warn("lost the target: %s; reconnecting", tm_error());
    p->durable_at_loss = p->sink->ops->durable(p->sink);
    p->sink_down = true;
    p->errors_target++;
    ev_io_stop(p->loop, &p->repl_r);
    ev_timer_stop(p->loop, &p->coalesce_timer);
    ev_io_stop(p->loop, &p->repl_w);
    ev_io_stop(p->loop, &p->sink_r);
    ev_io_stop(p->loop, &p->sink_w);
    ev_timer_stop(p->loop, &p->reconnect_timer);
    if (!p->stream_starting) /* else its job owns repl; it sees sink_down */
        repl_disconnect(p->repl);
    p->streaming = false;
    p->in_txn = false;
    p->held = false;
    p->lookup_wait = false;
    p->sink_busy = false;
    p->rewind = false; /* the target's reconnect restarts the stream */
    p->paused = false;
    p->ptxn_count = 0;
    /* Prepared statements died with the session. */
    relcache_reset_sink_state(p->rels);
    ev_timer_set(&p->sink_timer, p->backoff, 0);
    ev_timer_start(p->loop, &p->sink_timer);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    ((Pipeline *)w->data)->stopping = true; /* setup's waits look at it */
    log_info("received %s: stopping after a clean drain", strsignal(w->signum));
    notify_stopping();
    ev_break(loop, EVBREAK_ALL);
}

/* Clean stop: commit complete transactions, abandon a partial one, report. */
static int shutdown_drain(Pipeline *p)
{
    int rc;

    if (p->sink_down) {
        log_write(LOG_LVL_INFO, NULL, p->durable_at_loss,
                  "stopped while the target was unavailable: %llu changes in %llu transactions"
                  " applied this run",
                  p->n_changes, p->n_txns);
        return 0;
    }
    rc = p->in_txn ? p->sink->ops->abort_batch(p->sink) : p->sink->ops->close_batch(p->sink);

    if (rc == 0)
        rc = p->sink->ops->drain(p->sink);
    if (rc == 0 && p->streaming) {
        rc = send_status(p, false);
        if (rc == 0)
            while (repl_flush(p->repl) == 1)
                ;
    }
    log_write(LOG_LVL_INFO, NULL, p->sink->ops->durable(p->sink),
              "stopped: %llu changes in %llu transactions applied this run", p->n_changes,
              p->n_txns);
    return rc;
}

/*
 * Best effort: `tidemark status` shows the reason the daemon stopped. A
 * divergence also halts the pipeline: later starts refuse until `tidemark
 * resume` (if this write fails, the restart meets the same divergence again,
 * since the watermark stayed before it).
 */
static void record_last_error(Pipeline *p, int rc)
{
    char msg[1024];
    PGconn *dst = NULL;

    snprintf(msg, sizeof(msg), "%s", tm_error());
    if (strcmp(p->cfg->target.type, "postgres") != 0)
        return;
    if (pgconn_open(&p->cfg->target.conn, PGCONN_NORMAL, "target", &dst) == 0) {
        pgstate_ensure(dst, "CREATE TABLE IF NOT EXISTS tidemark.pipeline_state ("
                            " pipeline text NOT NULL, key text NOT NULL, value text,"
                            " updated_at timestamptz NOT NULL DEFAULT now(),"
                            " PRIMARY KEY (pipeline, key))");
        pgstate_record_error(dst, p->cfg->pipeline, msg, rc == TM_EDIVERGED);
        PQfinish(dst);
    }
    tm_fail(rc, "%s", msg); /* the caller prints it */
}

int pipeline_run(Config *cfg)
{
    Pipeline p = {0};
    int rc;

    p.cfg = cfg;
    /* Not the default loop: that one reaps every child through SIGCHLD, and
     * the post-data job waits for its pg_restore itself. */
    p.loop = ev_loop_new(EVFLAG_AUTO);
    if (!p.loop)
        return tm_fail(-ENOMEM, "cannot create the event loop");
    p.repl = repl_new(cfg);
    rc = sink_new(cfg, &p.sink);
    if (rc < 0) {
        repl_free(p.repl);
        ev_loop_destroy(p.loop);
        return rc;
    }
    p.rels = relcache_new();
    p.arena = arena_new(64 * 1024);
    p.backoff = BACKOFF_MIN_S;

    ev_signal_init(&p.sig_term, on_signal, SIGTERM);
    ev_signal_init(&p.sig_int, on_signal, SIGINT);
    p.sig_term.data = p.sig_int.data = &p;
    ev_signal_start(p.loop, &p.sig_term);
    ev_signal_start(p.loop, &p.sig_int);
    signal(SIGPIPE, SIG_IGN);

    Lsn start;
    rc = offload_new(p.loop, "source", &p.src_jobs);
    if (rc == 0)
        rc = offload_new(p.loop, "target", &p.dst_jobs);
    if (rc == 0)
        rc = pipeline_service_bind(&p);
    if (rc == 0)
        rc = pipeline_setup(&p, &start);
    if (rc == 0)
        rc = p.sink->ops->start(p.sink, start);
    if (rc < 0 && p.stopping) {
        log_info("stopped during startup (%s)", tm_error());
        rc = 0;
    }
    if (rc < 0 || p.stopping)
        goto out;

    ev_io_init(&p.repl_r, on_repl_readable, -1, EV_READ);
    ev_io_init(&p.repl_w, on_repl_writable, -1, EV_WRITE);
    ev_io_init(&p.sink_r, on_sink_readable, p.sink->ops->socket(p.sink), EV_READ);
    ev_io_init(&p.sink_w, on_sink_writable, p.sink->ops->socket(p.sink), EV_WRITE);
    ev_timer_init(&p.status_timer, on_status_timer, cfg->apply.status_interval_ms / 1000.0,
                  cfg->apply.status_interval_ms / 1000.0);
    ev_timer_init(&p.reconnect_timer, on_reconnect, 0, 0);
    ev_timer_init(&p.sink_timer, on_sink_reconnect, 0, 0);
    ev_timer_init(&p.coalesce_timer, on_coalesce, 0, 0);
    p.sink_timer.data = p.coalesce_timer.data = &p;
    p.repl_r.data = p.repl_w.data = p.sink_r.data = p.sink_w.data = &p;
    p.status_timer.data = p.reconnect_timer.data = &p;
    ev_io_start(p.loop, &p.sink_r);
    ev_timer_start(p.loop, &p.status_timer);

    rc = pipeline_service_start(&p);
    if (rc == 0)
        rc = pipeline_schema_pending(&p, &p.defer_stream);
    if (rc == 0 && !p.defer_stream) {
        /* The loop does not run yet: the first start may block. */
        rc = stream_open(p.repl, start);
        if (rc == 0) {
            stream_started(&p, start);
            pipeline_service_ready(&p);
        }
    } else if (rc == 0)
        log_info("schema copy: streaming starts once the tables are copied and indexed");
    if (rc == 0)
        rc = pipeline_copy_start(&p);
    if (rc < 0)
        goto out;
    update_sink_watchers(&p);
    ev_run(p.loop, 0);
    /* Copies first: their uncommitted parts roll back and stay pending. */
    pipeline_copy_stop(&p);
    post_data_cancel(&p);
    /* Then the workers: what they own comes back to this thread. */
    offload_free(p.src_jobs);
    offload_free(p.dst_jobs);
    p.src_jobs = p.dst_jobs = NULL;
    p.post_data = NULL;
    p.stream_starting = p.sink_job = false;
    rc = p.rc;
    if (rc == 0)
        rc = shutdown_drain(&p);
out:
    offload_free(p.src_jobs);
    offload_free(p.dst_jobs);
    pipeline_service_stop(&p);
    if (rc < 0)
        record_last_error(&p, rc);
    pipeline_copy_free(&p);
    ev_signal_stop(p.loop, &p.sig_term);
    ev_signal_stop(p.loop, &p.sig_int);
    repl_free(p.repl);
    relcache_free(p.rels); /* its sink state points into the sink */
    sink_free(p.sink);
    tableset_release(&p.tabs);
    pipeline_idmap_free(&p);
    free(p.ptxn);
    arena_free(p.arena);
    free(p.encoding);
    ev_loop_destroy(p.loop);
    return rc;
}
