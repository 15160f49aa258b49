/*
 * The streaming loop. Startup (blocking, before the loop): resolve tables,
 * publication, slot, initial copy on first start. Then one libev loop reads
 * replication frames, feeds decoded changes to the sink, reads the sink's
 * results, and reports to the source only the LSN the sink made durable.
 * Backpressure: when too much is in flight on the target, the replication
 * socket is simply not read; the source keeps the WAL.
 */
#include "daemon/pipeline.h"
#include "connectors/pg/catalog.h"
#include "connectors/pg/initsync.h"
#include "connectors/pg/pgconn.h"
#include "connectors/pg/pgoutput.h"
#include "connectors/pg/repl.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/log.h"
#include "core/relcache.h"
#include "core/xmalloc.h"
#include "sinks/sink.h"

#include <ev.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#define MAX_INFLIGHT       20000
#define MAX_INFLIGHT_BYTES (64u * 1024 * 1024)
#define BACKOFF_MIN_S      0.5
#define BACKOFF_MAX_S      30.0

typedef struct Pipeline {
    Config *cfg;
    struct ev_loop *loop;
    ReplConn *repl;
    Sink *sink;
    TableSet tabs;
    Lsn *sync_lsn; /* per table: stream changes committed before it are in the copy */
    RelCache *rels;
    Arena *arena;
    char *encoding;

    ev_io repl_r, repl_w, sink_r, sink_w;
    ev_timer status_timer, reconnect_timer;
    ev_signal sig_term, sig_int;

    bool streaming; /* replication connection is in CopyBoth */
    bool paused;    /* backpressure: not reading the replication socket */
    bool in_txn;
    bool skip_txn;
    TxnInfo txn;
    Lsn skip_before; /* transactions committed before this were applied already */
    Lsn received;
    Lsn reported;
    double backoff;
    int rc; /* result of pipeline_run */
    unsigned long long n_changes, n_txns;
} Pipeline;

static void fail(Pipeline *p, int rc)
{
    if (p->rc == 0)
        p->rc = rc;
    ev_break(p->loop, EVBREAK_ALL);
}

static int send_status(Pipeline *p, bool reply)
{
    Lsn flush = p->sink->ops->durable(p->sink);
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
        fail(p, r);
        return;
    }
    if (r == 1)
        ev_io_start(p->loop, &p->sink_w);
    else
        ev_io_stop(p->loop, &p->sink_w);
}

static bool over_limit(const Pipeline *p)
{
    return p->sink->ops->inflight(p->sink) >= MAX_INFLIGHT ||
           p->sink->ops->inflight_bytes(p->sink) >= MAX_INFLIGHT_BYTES;
}

static int handle_row(Pipeline *p, const Change *c)
{
    uint32_t relid = c->kind == CHG_INSERT   ? c->insert.relid
                     : c->kind == CHG_UPDATE ? c->update.relid
                                             : c->del.relid;
    RelEntry *rel = relcache_get(p->rels, relid);

    if (!p->in_txn)
        return tm_fail(-EPROTO, "%s outside a transaction", pgoutput_kind_name(c->kind));
    if (p->skip_txn)
        return 0;
    if (!rel)
        return tm_fail(-EPROTO, "%s for relation %u before its Relation message",
                       pgoutput_kind_name(c->kind), relid);
    if (rel->table_idx < 0)
        return tm_fail(-EPROTO, "%s for %s, which is not a table of this pipeline",
                       pgoutput_kind_name(c->kind), rel->display);
    if (p->txn.final_lsn < p->sync_lsn[rel->table_idx])
        return 0; /* committed before the table's copy snapshot: in the copy */
    p->n_changes++;
    return p->sink->ops->apply(p->sink, rel, c, &p->txn);
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
        if (rel->table_idx < 0)
            return tm_fail(-EPROTO, "Truncate of %s, which is not a table of this pipeline",
                           rel->display);
        if (p->txn.final_lsn >= p->sync_lsn[rel->table_idx])
            rels[n++] = rel;
    }
    rc = p->sink->ops->truncate(p->sink, rels, n, c->truncate.flags, &p->txn);
    p->n_changes++;
    return rc;
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
        int rc = p->sink->ops->txn_commit(p->sink, &p->txn);
        if (rc == 0 &&
            (long)p->sink->ops->batch_changes(p->sink) >= p->cfg->apply.batch_max_changes)
            rc = p->sink->ops->close_batch(p->sink);
        return rc;
    case CHG_RELATION: {
        RelEntry *e = relcache_put(p->rels, &c->relation);

        e->table_idx = tableset_find(&p->tabs, e->info.schema, e->info.name);
        return 0;
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

static int handle_frame(Pipeline *p, const WalFrame *f)
{
    Change c;
    int rc;

    if (f->kind == 'k') {
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
    rc = pgoutput_decode(f->xlog.data, f->xlog.len, p->arena, &c);
    if (rc == 0)
        rc = handle_change(p, &c);
    arena_reset(p->arena);
    if (rc < 0)
        return tm_fail_ctx(rc, "at source LSN " LSN_FMT, LSN_ARGS(f->xlog.start));
    return 0;
}

static void source_lost(Pipeline *p, int err);

static bool socket_readable(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};

    return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

/* Reads and applies every complete frame; more while the socket has data. */
static void pump_source(Pipeline *p)
{
    WalFrame f;
    int rc;

    while (p->streaming && !p->paused) {
        rc = repl_read(p->repl, &f);
        if (rc < 0) {
            source_lost(p, rc);
            return;
        }
        if (rc == 0) {
            /* Buffer empty: keep filling the batch while the socket has more. */
            if ((long)p->sink->ops->batch_changes(p->sink) < p->cfg->apply.batch_max_changes &&
                socket_readable(repl_socket(p->repl))) {
                rc = repl_consume(p->repl);
                if (rc < 0) {
                    source_lost(p, rc);
                    return;
                }
                continue;
            }
            break;
        }
        rc = handle_frame(p, &f);
        if (rc < 0) {
            fail(p, rc);
            return;
        }
        if (over_limit(p)) {
            p->paused = true;
            ev_io_stop(p->loop, &p->repl_r);
            log_debug("backpressure: %zu commands in flight on the target",
                      p->sink->ops->inflight(p->sink));
        }
    }
    if (p->streaming && !p->in_txn) {
        rc = p->sink->ops->close_batch(p->sink);
        if (rc < 0) {
            fail(p, rc);
            return;
        }
    }
    update_sink_watchers(p);
}

static void on_repl_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    Pipeline *p = w->data;
    int rc = repl_consume(p->repl);

    if (rc < 0) {
        source_lost(p, rc);
        return;
    }
    pump_source(p);
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
        fail(p, rc);
        return;
    }
    if (p->sink->ops->durable(p->sink) > before) {
        rc = send_status(p, false);
        if (rc < 0) {
            source_lost(p, rc);
            return;
        }
    }
    if (p->paused && p->sink->ops->inflight(p->sink) < MAX_INFLIGHT / 2 &&
        p->sink->ops->inflight_bytes(p->sink) < MAX_INFLIGHT_BYTES / 2) {
        p->paused = false;
        if (p->streaming) {
            ev_io_start(loop, &p->repl_r);
            pump_source(p); /* frames may already sit in libpq's buffer */
        }
    }
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

static int start_stream(Pipeline *p)
{
    Lsn start = p->sink->ops->durable(p->sink);
    int rc = repl_connect(p->repl);

    if (rc == 0)
        rc = repl_start(p->repl, start);
    if (rc < 0)
        return rc;
    p->skip_before = start;
    p->received = start;
    p->in_txn = false;
    p->streaming = true;
    p->paused = over_limit(p);
    ev_io_set(&p->repl_r, repl_socket(p->repl), EV_READ);
    ev_io_set(&p->repl_w, repl_socket(p->repl), EV_WRITE);
    if (!p->paused)
        ev_io_start(p->loop, &p->repl_r);
    log_write(LOG_LVL_INFO, NULL, start, "streaming from slot %s", p->cfg->source.slot);
    return 0;
}

static void on_reconnect(struct ev_loop *loop, ev_timer *w, int revents)
{
    Pipeline *p = w->data;
    int rc = start_stream(p);

    if (rc < 0) {
        p->backoff = p->backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : p->backoff * 2;
        log_warn("source still unavailable (%s); retrying in %.1f s", tm_error(), p->backoff);
        repl_disconnect(p->repl);
        ev_timer_set(w, p->backoff, 0);
        ev_timer_start(loop, w);
        return;
    }
    p->backoff = BACKOFF_MIN_S;
}

/* The source went away: drop what is half received, keep what is durable, retry. */
static void source_lost(Pipeline *p, int err)
{
    int rc;

    log_warn("lost the source replication stream: %s", tm_error());
    ev_io_stop(p->loop, &p->repl_r);
    ev_io_stop(p->loop, &p->repl_w);
    p->streaming = false;
    p->in_txn = false;
    repl_disconnect(p->repl);
    /* The open batch may hold a partial transaction: roll it back; the slot
     * resends everything after the durable LSN. */
    rc = p->sink->ops->abort_batch(p->sink);
    if (rc == 0)
        rc = p->sink->ops->drain(p->sink);
    if (rc < 0) {
        fail(p, rc);
        return;
    }
    ev_timer_set(&p->reconnect_timer, p->backoff, 0);
    ev_timer_start(p->loop, &p->reconnect_timer);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    log_info("received %s: stopping after a clean drain", strsignal(w->signum));
    ev_break(loop, EVBREAK_ALL);
}

/* Clean stop: commit complete transactions, abandon a partial one, report. */
static int shutdown_drain(Pipeline *p)
{
    int rc = p->in_txn ? p->sink->ops->abort_batch(p->sink) : p->sink->ops->close_batch(p->sink);

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
 * A slot stays "active" for a moment after its previous consumer died (the
 * walsender notices the closed socket on its next read), e.g. right after a
 * kill -9 and restart: wait for it with a deadline rather than fail.
 */
static int lookup_idle_slot(Pipeline *p, PGconn *src, bool *exists, Lsn *confirmed)
{
    bool active = false;
    int rc;

    for (int tries = 0; tries < 150; tries++) {
        rc = repl_slot_lookup(src, p->cfg->source.slot, exists, &active, confirmed);
        if (rc < 0 || !*exists || !active)
            return rc;
        if (tries == 0)
            log_info("slot %s is still held by a previous session; waiting up to 30 s",
                     p->cfg->source.slot);
        poll(NULL, 0, 200);
    }
    return tm_fail(-EBUSY, "slot %s is in use by another process", p->cfg->source.slot);
}

static int check_tables(Pipeline *p, bool require_empty)
{
    for (size_t i = 0; i < p->tabs.n; i++) {
        int rc = p->sink->ops->check_table(p->sink, &p->tabs.t[i], require_empty);

        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Copies tables[0..n) in a snapshot of their own (a temporary slot's). */
static int copy_pending(Pipeline *p, PGconn *src, TableDef **tables, size_t n)
{
    ReplConn *tmp = repl_new(p->cfg);
    char name[64];
    char *snapshot = NULL;
    Lsn lsn;
    int rc;

    snprintf(name, sizeof(name), "tm_sync_%d_%.40s", (int)getpid(), p->cfg->pipeline);
    rc = repl_connect(tmp);
    if (rc == 0)
        rc = repl_create_slot(tmp, name, true, &lsn, &snapshot);
    if (rc == 0) {
        log_write(LOG_LVL_INFO, NULL, lsn, "copying %zu table(s) whose initial copy is not done",
                  n);
        rc = initsync_copy(src, p->sink, tables, n, snapshot, lsn);
    }
    free(snapshot);
    repl_free(tmp); /* drops the temporary slot */
    return rc;
}

/* First start: publication, fresh slot, initial copy in its snapshot. */
static int first_start(Pipeline *p, PGconn *src, Lsn *start)
{
    bool exists;
    Lsn confirmed, consistent;
    char *snapshot = NULL;
    TableDef **all = NULL;
    int rc;

    rc = check_tables(p, true);
    if (rc == 0)
        rc = catalog_sync_publication(src, p->cfg->source.publication, &p->tabs, true);
    if (rc == 0)
        rc = lookup_idle_slot(p, src, &exists, &confirmed);
    if (rc < 0)
        return rc;
    if (exists) {
        /* Left by a first start that never recorded its position. */
        log_warn("slot %s exists but the target has no watermark for pipeline %s: dropping it"
                 " and starting the initial load again",
                 p->cfg->source.slot, p->cfg->pipeline);
        rc = repl_drop_slot(src, p->cfg->source.slot);
        if (rc < 0)
            return rc;
    }
    rc = repl_connect(p->repl);
    if (rc == 0)
        rc = repl_create_slot(p->repl, p->cfg->source.slot, false, &consistent, &snapshot);
    if (rc == 0)
        rc = p->sink->ops->init_position(p->sink, consistent, &p->tabs);
    if (rc == 0) {
        log_write(LOG_LVL_INFO, NULL, consistent, "created slot %s; copying %zu table(s)",
                  p->cfg->source.slot, p->tabs.n);
        all = xcalloc(p->tabs.n, sizeof(*all));
        for (size_t i = 0; i < p->tabs.n; i++)
            all[i] = &p->tabs.t[i];
        rc = initsync_copy(src, p->sink, all, p->tabs.n, snapshot, consistent);
        free(all);
    }
    free(snapshot);
    repl_disconnect(p->repl); /* releases the exported snapshot */
    *start = consistent;
    return rc;
}

static int resume_start(Pipeline *p, PGconn *src, Lsn *wm)
{
    bool exists;
    Lsn confirmed;
    int rc = check_tables(p, false);

    if (rc == 0)
        rc = catalog_sync_publication(src, p->cfg->source.publication, &p->tabs, false);
    if (rc == 0)
        rc = lookup_idle_slot(p, src, &exists, &confirmed);
    if (rc < 0)
        return rc;
    if (!exists)
        return tm_fail(-ENOENT,
                       "slot %s is missing on the source but the pipeline has already started"
                       " (watermark " LSN_FMT "): changes since then cannot be streamed"
                       " without loss. Start the pipeline over (empty the target tables and"
                       " delete its rows from tidemark.watermark and tidemark.sync_state)",
                       p->cfg->source.slot, LSN_ARGS(*wm));
    if (*wm == LSN_INVALID)
        *wm = confirmed; /* the sink keeps no position of its own: the slot is it */
    else if (confirmed > *wm)
        return tm_fail(-EINVAL,
                       "slot %s has confirmed " LSN_FMT " beyond the target's watermark " LSN_FMT
                       ": the changes between them are lost to this target",
                       p->cfg->source.slot, LSN_ARGS(confirmed), LSN_ARGS(*wm));
    log_write(LOG_LVL_INFO, NULL, *wm, "resuming pipeline %s", p->cfg->pipeline);
    return 0;
}

/* Tables whose copy is not committed are copied again, in a new snapshot. */
static int finish_copies(Pipeline *p, PGconn *src)
{
    TableDef **pending = xcalloc(p->tabs.n + 1, sizeof(*pending));
    size_t npending = 0;
    int rc = 0;

    for (size_t i = 0; i < p->tabs.n && rc == 0; i++) {
        bool synced;

        rc = p->sink->ops->table_state(p->sink, &p->tabs.t[i], &synced, &p->sync_lsn[i]);
        if (rc == 0 && !synced) {
            rc = p->sink->ops->check_table(p->sink, &p->tabs.t[i], true);
            pending[npending++] = &p->tabs.t[i];
        }
    }
    if (rc == 0 && npending)
        rc = copy_pending(p, src, pending, npending);
    for (size_t i = 0; i < npending && rc == 0; i++) {
        bool synced;
        size_t idx = (size_t)(pending[i] - p->tabs.t);

        rc = p->sink->ops->table_state(p->sink, pending[i], &synced, &p->sync_lsn[idx]);
        if (rc == 0 && !synced)
            rc = tm_fail(-EIO, "initial copy of %s did not record its sync state",
                         pending[i]->display);
    }
    free(pending);
    return rc;
}

static int setup(Pipeline *p)
{
    PGconn *src = NULL;
    bool found;
    Lsn wm;
    int rc;

    rc = pgconn_open(&p->cfg->source.conn, PGCONN_NORMAL, "source", &src);
    if (rc < 0)
        return rc;
    p->encoding = xstrdup(PQparameterStatus(src, "server_encoding"));
    rc = PQsetClientEncoding(src, p->encoding) == 0 ? 0 : tm_fail(-EIO, "source: encoding");
    if (rc == 0)
        rc = p->sink->ops->connect(p->sink, p->encoding);
    if (rc == 0)
        rc = p->sink->ops->read_position(p->sink, &found, &wm);
    if (rc == 0)
        rc = catalog_resolve(src, p->cfg, &p->tabs);
    if (rc == 0)
        rc = catalog_check_identity(&p->tabs);
    if (rc == 0) {
        p->sync_lsn = xcalloc(p->tabs.n, sizeof(Lsn));
        rc = found ? resume_start(p, src, &wm) : first_start(p, src, &wm);
    }
    if (rc == 0)
        rc = finish_copies(p, src);
    if (rc == 0)
        rc = p->sink->ops->start(p->sink, wm);
    PQfinish(src);
    return rc;
}

int pipeline_run(Config *cfg)
{
    Pipeline p = {0};
    int rc;

    p.cfg = cfg;
    p.loop = ev_default_loop(EVFLAG_AUTO);
    p.repl = repl_new(cfg);
    rc = sink_new(cfg, &p.sink);
    if (rc < 0)
        return rc;
    p.rels = relcache_new();
    p.arena = arena_new(64 * 1024);
    p.backoff = BACKOFF_MIN_S;

    ev_signal_init(&p.sig_term, on_signal, SIGTERM);
    ev_signal_init(&p.sig_int, on_signal, SIGINT);
    p.sig_term.data = p.sig_int.data = &p;
    ev_signal_start(p.loop, &p.sig_term);
    ev_signal_start(p.loop, &p.sig_int);
    signal(SIGPIPE, SIG_IGN);

    rc = setup(&p);
    if (rc < 0)
        goto out;

    ev_io_init(&p.repl_r, on_repl_readable, -1, EV_READ);
    ev_io_init(&p.repl_w, on_repl_writable, -1, EV_WRITE);
    ev_io_init(&p.sink_r, on_sink_readable, p.sink->ops->socket(p.sink), EV_READ);
    ev_io_init(&p.sink_w, on_sink_writable, p.sink->ops->socket(p.sink), EV_WRITE);
    ev_timer_init(&p.status_timer, on_status_timer, cfg->apply.status_interval_ms / 1000.0,
                  cfg->apply.status_interval_ms / 1000.0);
    ev_timer_init(&p.reconnect_timer, on_reconnect, 0, 0);
    p.repl_r.data = p.repl_w.data = p.sink_r.data = p.sink_w.data = &p;
    p.status_timer.data = p.reconnect_timer.data = &p;
    ev_io_start(p.loop, &p.sink_r);
    ev_timer_start(p.loop, &p.status_timer);

    rc = start_stream(&p);
    if (rc < 0)
        goto out;
    update_sink_watchers(&p);
    ev_run(p.loop, 0);
    rc = p.rc;
    if (rc == 0)
        rc = shutdown_drain(&p);
out:
    ev_signal_stop(p.loop, &p.sig_term);
    ev_signal_stop(p.loop, &p.sig_int);
    repl_free(p.repl);
    sink_free(p.sink);
    tableset_release(&p.tabs);
    free(p.sync_lsn);
    relcache_free(p.rels);
    arena_free(p.arena);
    free(p.encoding);
    return rc;
}
