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
#include "sinks/pg/pgsink.h"

#include <ev.h>
#include <poll.h>
#include <signal.h>
#include <string.h>

#define MAX_INFLIGHT       20000
#define MAX_INFLIGHT_BYTES (64u * 1024 * 1024)
#define BACKOFF_MIN_S      0.5
#define BACKOFF_MAX_S      30.0

typedef struct Pipeline {
    Config *cfg;
    struct ev_loop *loop;
    ReplConn *repl;
    PgSink *sink;
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
    Lsn flush = pgsink_durable(p->sink);
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
    int r = pgsink_flush(p->sink);

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
    return pgsink_inflight(p->sink) >= MAX_INFLIGHT ||
           pgsink_inflight_bytes(p->sink) >= MAX_INFLIGHT_BYTES;
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
    p->n_changes++;
    return pgsink_apply(p->sink, rel, c, &p->txn);
}

static int handle_truncate(Pipeline *p, const Change *c)
{
    RelEntry **rels;
    int rc;

    if (!p->in_txn)
        return tm_fail(-EPROTO, "Truncate outside a transaction");
    if (p->skip_txn)
        return 0;
    rels = arena_calloc(p->arena, c->truncate.nrels ? c->truncate.nrels : 1, sizeof(*rels));
    for (uint32_t i = 0; i < c->truncate.nrels; i++) {
        rels[i] = relcache_get(p->rels, c->truncate.relids[i]);
        if (!rels[i])
            return tm_fail(-EPROTO, "Truncate of relation %u before its Relation message",
                           c->truncate.relids[i]);
    }
    rc = pgsink_truncate(p->sink, rels, c->truncate.nrels, c->truncate.flags);
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
        return pgsink_txn_begin(p->sink, &p->txn);
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
        int rc = pgsink_txn_commit(p->sink, &p->txn);
        if (rc == 0 && (long)pgsink_batch_changes(p->sink) >= p->cfg->apply.batch_max_changes)
            rc = pgsink_close_batch(p->sink);
        return rc;
    case CHG_RELATION:
        relcache_put(p->rels, &c->relation);
        return 0;
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
            rc = pgsink_close_batch(p->sink);
            if (rc == 0)
                rc = pgsink_idle_watermark(p->sink, f->keepalive.wal_end);
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
            if ((long)pgsink_batch_changes(p->sink) < p->cfg->apply.batch_max_changes &&
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
                      pgsink_inflight(p->sink));
        }
    }
    if (p->streaming && !p->in_txn) {
        rc = pgsink_close_batch(p->sink);
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
    Lsn before = pgsink_durable(p->sink);
    int rc = pgsink_process(p->sink);

    if (rc < 0) {
        fail(p, rc);
        return;
    }
    if (pgsink_durable(p->sink) > before) {
        rc = send_status(p, false);
        if (rc < 0) {
            source_lost(p, rc);
            return;
        }
    }
    if (p->paused && pgsink_inflight(p->sink) < MAX_INFLIGHT / 2 &&
        pgsink_inflight_bytes(p->sink) < MAX_INFLIGHT_BYTES / 2) {
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
    Lsn start = pgsink_durable(p->sink);
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
    rc = pgsink_abort_batch(p->sink);
    if (rc == 0)
        rc = pgsink_drain(p->sink);
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
    int rc = p->in_txn ? pgsink_abort_batch(p->sink) : pgsink_close_batch(p->sink);

    if (rc == 0)
        rc = pgsink_drain(p->sink);
    if (rc == 0 && p->streaming) {
        rc = send_status(p, false);
        if (rc == 0)
            while (repl_flush(p->repl) == 1)
                ;
    }
    log_write(LOG_LVL_INFO, NULL, pgsink_durable(p->sink),
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

/* First start: publication, fresh slot, initial copy in its snapshot. */
static int first_start(Pipeline *p, PGconn *src, const SourceTables *tabs)
{
    bool exists;
    Lsn confirmed, consistent;
    char *snapshot = NULL;
    int rc;

    rc = catalog_check_target(pgsink_conn(p->sink), tabs, true);
    if (rc == 0)
        rc = catalog_sync_publication(src, p->cfg->source.publication, tabs, true);
    if (rc == 0)
        rc = lookup_idle_slot(p, src, &exists, &confirmed);
    if (rc < 0)
        return rc;
    if (exists) {
        /* Left by an initial load that never committed: its snapshot is gone. */
        log_warn("slot %s exists but the target has no watermark for pipeline %s: dropping it"
                 " and starting the initial load again",
                 p->cfg->source.slot, p->cfg->pipeline);
        rc = repl_drop_slot(src, p->cfg->source.slot);
        if (rc < 0)
            return rc;
    }
    rc = repl_connect(p->repl);
    if (rc == 0)
        rc = repl_create_slot(p->repl, &consistent, &snapshot);
    if (rc < 0)
        return rc;
    log_write(LOG_LVL_INFO, NULL, consistent, "created slot %s; copying %zu tables",
              p->cfg->source.slot, tabs->n);
    rc = initsync_run(src, pgsink_conn(p->sink), tabs, snapshot, consistent, p->cfg->pipeline);
    free(snapshot);
    repl_disconnect(p->repl); /* releases the exported snapshot */
    return rc;
}

static int resume_start(Pipeline *p, PGconn *src, const SourceTables *tabs, Lsn wm)
{
    bool exists;
    Lsn confirmed;
    int rc = catalog_check_target(pgsink_conn(p->sink), tabs, false);

    if (rc == 0)
        rc = catalog_sync_publication(src, p->cfg->source.publication, tabs, false);
    if (rc == 0)
        rc = lookup_idle_slot(p, src, &exists, &confirmed);
    if (rc < 0)
        return rc;
    if (!exists)
        return tm_fail(-ENOENT,
                       "slot %s is missing on the source but the target's watermark is at " LSN_FMT
                       ": changes since then cannot be streamed without loss. Start the"
                       " pipeline over (empty the target tables and delete its row from"
                       " tidemark.watermark)",
                       p->cfg->source.slot, LSN_ARGS(wm));
    if (confirmed > wm)
        return tm_fail(-EINVAL,
                       "slot %s has confirmed " LSN_FMT " beyond the target's watermark " LSN_FMT
                       ": the changes between them are lost to this target",
                       p->cfg->source.slot, LSN_ARGS(confirmed), LSN_ARGS(wm));
    log_write(LOG_LVL_INFO, NULL, wm, "resuming pipeline %s from the target's watermark",
              p->cfg->pipeline);
    return 0;
}

static int setup(Pipeline *p)
{
    PGconn *src = NULL;
    SourceTables tabs = {0};
    bool found;
    Lsn wm;
    int rc;

    rc = pgconn_open(&p->cfg->source.conn, PGCONN_NORMAL, "source", &src);
    if (rc < 0)
        return rc;
    p->encoding = xstrdup(PQparameterStatus(src, "server_encoding"));
    rc = PQsetClientEncoding(src, p->encoding) == 0 ? 0 : tm_fail(-EIO, "source: encoding");
    if (rc == 0)
        rc = pgsink_connect(p->sink, p->encoding);
    if (rc == 0)
        rc = pgsink_read_watermark(p->sink, &found, &wm);
    if (rc == 0)
        rc = catalog_resolve(src, p->cfg, &tabs);
    if (rc == 0)
        rc = catalog_check_identity(&tabs);
    if (rc == 0) {
        if (found)
            rc = resume_start(p, src, &tabs, wm);
        else
            rc = first_start(p, src, &tabs);
    }
    if (rc == 0 && !found)
        rc = pgsink_read_watermark(p->sink, &found, &wm);
    if (rc == 0)
        rc = pgsink_start_pipeline(p->sink, wm);
    catalog_tables_release(&tabs);
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
    p.sink = pgsink_new(cfg);
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
    ev_io_init(&p.sink_r, on_sink_readable, pgsink_socket(p.sink), EV_READ);
    ev_io_init(&p.sink_w, on_sink_writable, pgsink_socket(p.sink), EV_WRITE);
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
    pgsink_free(p.sink);
    relcache_free(p.rels);
    arena_free(p.arena);
    free(p.encoding);
    return rc;
}
