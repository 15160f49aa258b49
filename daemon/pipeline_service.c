/*
 * The pipeline as a service: systemd notifications (READY once the slot and
 * the sink are connected, STATUS, WATCHDOG from a loop timer so a stuck loop
 * stops petting it, RELOADING around SIGHUP), the HTTP endpoint's metrics and
 * health, heartbeats that keep an idle slot moving, the retained-WAL guard,
 * and configuration reload.
 */
#include "daemon/pipeline_int.h"
#include "connectors/pg/catalog.h"
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "daemon/http.h"
#include "daemon/notify.h"
#include "daemon/offload.h"
#include "daemon/prom.h"
#include "migration/verify.h"
#include "core/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLOT_CHECK_S 15.0

static const char *const op_names[4] = {"insert", "update", "delete", "truncate"};

static const char *phase(const Pipeline *p)
{
    if (p->sink_down)
        return "target unavailable";
    if (p->post_data)
        return "restoring indexes and constraints";
    if (!p->streaming)
        return p->defer_stream ? "copying" : "reconnecting to the source";
    return p->copy_done_logged ? "streaming" : "copying and streaming";
}

/* ---- /metrics ------------------------------------------------------------ */

static void gauge(Buf *b, const char *name, const char *help, double v)
{
    prom_family(b, name, "gauge", help);
    prom_sample(b, name, NULL, v);
}

static void counter(Buf *b, const char *name, const char *help, double v)
{
    prom_family(b, name, "counter", help);
    prom_sample(b, name, NULL, v);
}

static void table_label(Buf *l, const Pipeline *p, size_t i)
{
    buf_clear(l);
    prom_label(l, "table", p->tabs.t[i].display);
}

static void render_tables(const Pipeline *p, Buf *b)
{
    Buf l = BUF_INIT;

    prom_family(b, "tidemark_changes_applied_total", "counter",
                "Row changes sent to the target, by table and operation.");
    for (size_t i = 0; i < p->tabs.n; i++) {
        for (int op = 0; op < 4; op++) {
            table_label(&l, p, i);
            prom_label(&l, "op", op_names[op]);
            prom_sample(b, "tidemark_changes_applied_total", buf_cstr(&l),
                        (double)p->tstate[i].applied[op]);
        }
    }
    prom_family(b, "tidemark_changes_skipped_total", "counter",
                "Row changes not applied, by table and reason (in_copy: the initial copy"
                " already holds them; filtered: the table's mapping filter keeps them out of"
                " the target, stream and copy).");
    for (size_t i = 0; i < p->tabs.n; i++) {
        table_label(&l, p, i);
        prom_label(&l, "reason", "in_copy");
        prom_sample(b, "tidemark_changes_skipped_total", buf_cstr(&l),
                    (double)p->tstate[i].skipped_copy);
    }
    for (size_t i = 0; i < p->tabs.n; i++) {
        TableSyncProgress pr = {0};

        if (p->tsync)
            tablesync_progress(p->tsync, (int)i, &pr);
        table_label(&l, p, i);
        prom_label(&l, "reason", "filtered");
        prom_sample(b, "tidemark_changes_skipped_total", buf_cstr(&l),
                    (double)(p->tstate[i].filtered + (unsigned long long)pr.filtered));
    }
    prom_family(b, "tidemark_table_synced", "gauge",
                "1 when the table's initial copy has committed.");
    for (size_t i = 0; i < p->tabs.n; i++) {
        table_label(&l, p, i);
        prom_sample(b, "tidemark_table_synced", buf_cstr(&l), p->tstate[i].synced);
    }
    if (p->tsync) {
        prom_family(b, "tidemark_copy_rows_total", "counter", "Rows copied by the initial load.");
        for (size_t i = 0; i < p->tabs.n; i++) {
            TableSyncProgress pr;

            tablesync_progress(p->tsync, (int)i, &pr);
            table_label(&l, p, i);
            prom_sample(b, "tidemark_copy_rows_total", buf_cstr(&l), (double)pr.rows);
        }
        prom_family(b, "tidemark_copy_bytes_total", "counter",
                    "Bytes (COPY text) copied by the initial load.");
        for (size_t i = 0; i < p->tabs.n; i++) {
            TableSyncProgress pr;

            tablesync_progress(p->tsync, (int)i, &pr);
            table_label(&l, p, i);
            prom_sample(b, "tidemark_copy_bytes_total", buf_cstr(&l), (double)pr.bytes);
        }
        prom_family(b, "tidemark_copy_parts", "gauge", "Initial-copy parts by state.");
        for (size_t i = 0; i < p->tabs.n; i++) {
            int done = 0;

            for (int k = 0; k < p->tstate[i].nparts; k++)
                done += p->tstate[i].parts[k].synced;
            table_label(&l, p, i);
            prom_label(&l, "state", "synced");
            prom_sample(b, "tidemark_copy_parts", buf_cstr(&l), done);
            table_label(&l, p, i);
            prom_label(&l, "state", "pending");
            prom_sample(b, "tidemark_copy_parts", buf_cstr(&l), p->tstate[i].nparts - done);
        }
    }
    buf_release(&l);
}

static void render_verify(Pipeline *p, Buf *b);

static void render_metrics(void *arg, Buf *b)
{
    Pipeline *p = arg;
    Lsn wm = pipeline_durable(p);

    gauge(b, "tidemark_up", "1 while the daemon runs.", 1);
    gauge(b, "tidemark_streaming", "1 while changes stream from the source to the target.",
          p->streaming && !p->sink_down);
    counter(b, "tidemark_transactions_total", "Source transactions applied.", (double)p->n_txns);
    counter(b, "tidemark_received_bytes_total", "pgoutput bytes received from the source.",
            (double)p->received_bytes);
    gauge(b, "tidemark_replication_lag_bytes",
          "Source WAL end minus the position durable on the target.",
          (double)pipeline_lag_bytes(p));
    gauge(b, "tidemark_replication_lag_seconds",
          "Age of the oldest committed source transaction not yet durable on the target.",
          pipeline_lag_seconds(p));
    gauge(b, "tidemark_slot_retained_wal_bytes",
          "WAL the source keeps for the slot (current LSN minus restart_lsn); -1 unknown.",
          (double)p->slot_retained_bytes);
    gauge(b, "tidemark_watermark_lsn", "The durable position (watermark) as a number.", (double)wm);
    gauge(b, "tidemark_last_commit_timestamp_seconds",
          "Source commit time of the last transaction durable on the target (Unix time).",
          p->last_applied_commit_time
              ? (double)p->last_applied_commit_time / 1e6 + PG_EPOCH_OFFSET_SECS
              : 0);
    if (!p->tstate)
        return; /* starting: no table state yet */
    render_tables(p, b);
    prom_family(b, "tidemark_dead_letters_total", "counter",
                "Rows a mapping could not transform, written to tidemark.dead_letter"
                " (on_error: dead_letter), by table; stream and copy.");
    for (size_t i = 0; i < p->tabs.n; i++) {
        TableSyncProgress pr = {0};
        Buf l = BUF_INIT;

        if (p->tsync)
            tablesync_progress(p->tsync, (int)i, &pr);
        table_label(&l, p, i);
        prom_sample(b, "tidemark_dead_letters_total", buf_cstr(&l),
                    (double)(p->tstate[i].dead_letters + (unsigned long long)pr.dead_letters));
        buf_release(&l);
    }
    prom_family(b, "tidemark_errors_total", "counter", "Errors by kind.");
    prom_sample(b, "tidemark_errors_total", "kind=\"source_connection\"", (double)p->errors_source);
    prom_sample(b, "tidemark_errors_total", "kind=\"target_connection\"", (double)p->errors_target);
    render_verify(p, b);
}

static void render_verify(Pipeline *p, Buf *b)
{
    static const char *const kinds[] = {"missing", "extra", "differing", "integrity"};
    VerifyResult *res;
    size_t n;
    Buf l = BUF_INIT;

    if (!p->verify)
        return;
    res = xcalloc(p->tabs.n + 1, sizeof(*res));
    n = verify_loop_results(p->verify, res, p->tabs.n);
    prom_family(b, "tidemark_verify_ok", "gauge",
                "1 when the table's last continuous verification matched the source.");
    for (size_t i = 0; i < n; i++) {
        buf_clear(&l);
        prom_label(&l, "table", res[i].table);
        prom_sample(b, "tidemark_verify_ok", buf_cstr(&l), res[i].ok && !res[i].failed);
    }
    prom_family(b, "tidemark_verify_differences", "gauge",
                "Rows found different by the last verification, by kind.");
    for (size_t i = 0; i < n; i++) {
        long long v[4] = {res[i].missing, res[i].extra, res[i].differing, res[i].integrity};

        for (int k = 0; k < 4; k++) {
            buf_clear(&l);
            prom_label(&l, "table", res[i].table);
            prom_label(&l, "kind", kinds[k]);
            prom_sample(b, "tidemark_verify_differences", buf_cstr(&l), (double)v[k]);
        }
    }
    prom_family(b, "tidemark_verify_last_run_timestamp_seconds", "gauge",
                "When the table was last verified (Unix time).");
    for (size_t i = 0; i < n; i++) {
        buf_clear(&l);
        prom_label(&l, "table", res[i].table);
        prom_sample(b, "tidemark_verify_last_run_timestamp_seconds", buf_cstr(&l),
                    (double)res[i].finished_at);
    }
    prom_family(b, "tidemark_verify_duration_seconds", "gauge",
                "How long the table's last verification took.");
    for (size_t i = 0; i < n; i++) {
        buf_clear(&l);
        prom_label(&l, "table", res[i].table);
        prom_sample(b, "tidemark_verify_duration_seconds", buf_cstr(&l), res[i].seconds);
    }
    buf_release(&l);
    free(res);
}

static int render_health(void *arg, Buf *b)
{
    Pipeline *p = arg;
    double lag = pipeline_lag_seconds(p);

    if (!p->tstate) {
        buf_puts(b, "starting: setting up the publication and slot\n");
        return 503;
    }
    if (p->sink_down) {
        buf_puts(b, "unhealthy: the target is unavailable\n");
        return 503;
    }
    if (!p->streaming && !p->defer_stream) {
        buf_puts(b, "unhealthy: not streaming from the source\n");
        return 503;
    }
    if (lag > (double)p->cfg->service.max_lag_seconds) {
        buf_printf(b, "unhealthy: lag %.0f s exceeds %ld s\n", lag,
                   p->cfg->service.max_lag_seconds);
        return 503;
    }
    buf_printf(b, "ok: %s, lag %.1f s\n", phase(p), lag);
    return 200;
}

static int render_ready(void *arg, Buf *b)
{
    Pipeline *p = arg;

    if (!p->ready_sent || p->sink_down) {
        buf_puts(b, "not ready\n");
        return 503;
    }
    buf_printf(b, "ready: %s\n", phase(p));
    return 200;
}

/* ---- systemd ---------------------------------------------------------------- */

/* A previous run's failure no longer describes the pipeline once it runs
 * again (a target worker job: fire and forget). */
static void clear_error_run(OffloadJob *j)
{
    Pipeline *p = ((PipelineJob *)j)->p;
    const char *params[1] = {p->cfg->pipeline};
    PGconn *dst = NULL;

    if (pgconn_open(&p->cfg->target.conn, PGCONN_NORMAL, "target", &dst) == 0 &&
        pgconn_query(dst,
                     "DELETE FROM tidemark.pipeline_state WHERE pipeline = $1 AND"
                     " key = 'last_error'",
                     1, params, NULL) < 0)
        log_debug("clearing last_error: %s", tm_error());
    if (dst)
        PQfinish(dst);
}

static void clear_last_error(Pipeline *p)
{
    if (strcmp(p->cfg->target.type, "postgres") != 0)
        return;
    offload_submit(p->dst_jobs, pipeline_job_new(p, clear_error_run, pipeline_job_free));
}

void pipeline_service_ready(Pipeline *p)
{
    char status[256];

    snprintf(status, sizeof(status), "%s; watermark " LSN_FMT, phase(p),
             LSN_ARGS(pipeline_durable(p)));
    if (!p->ready_sent) {
        notify_ready(status);
        clear_last_error(p);
    }
    p->ready_sent = true;
}

static void on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
    Pipeline *p = w->data;

    /* Fires only while the loop runs: a wedged loop stops the pets. */
    notify_watchdog();
    if (p->ready_sent)
        notify_status("%s; lag %lld bytes, %.1f s; watermark " LSN_FMT, phase(p),
                      pipeline_lag_bytes(p), pipeline_lag_seconds(p),
                      LSN_ARGS(pipeline_durable(p)));
}

/* ---- heartbeats and the slot guard ---------------------------------------- */

/*
 * p->monitor belongs to the source worker: only its jobs (monitor, reload)
 * use it, one at a time, so a source that stops answering delays them and
 * never the loop.
 */
static int monitor_conn(Pipeline *p)
{
    if (p->monitor && PQstatus(p->monitor) == CONNECTION_OK)
        return 0;
    if (p->monitor)
        PQfinish(p->monitor);
    p->monitor = NULL;
    return pgconn_open(&p->cfg->source.conn, PGCONN_NORMAL, "source", &p->monitor);
}

typedef struct MonitorJob {
    PipelineJob base;
    bool heartbeat, check;
    long long retained; /* -1: unknown */
} MonitorJob;

static void monitor_run(OffloadJob *j)
{
    MonitorJob *m = (MonitorJob *)j;
    Pipeline *p = m->base.p;
    PGresult *res;

    m->retained = -1;
    if (monitor_conn(p) < 0) {
        log_debug("monitor: %s", tm_error());
        return;
    }
    /* A logical message makes the walsender send something even when every
     * published table is idle, so the confirmed position (and the WAL the
     * slot holds) keeps moving. */
    if (m->heartbeat) {
        const char *params[1] = {p->cfg->pipeline};

        if (pgconn_query(p->monitor, "SELECT pg_logical_emit_message(false, 'tidemark', $1)", 1,
                         params, NULL) < 0)
            log_debug("heartbeat: %s", tm_error());
    }
    if (m->check) {
        const char *params[1] = {p->cfg->source.slot};

        if (pgconn_query(p->monitor,
                         "SELECT (pg_current_wal_lsn() - restart_lsn)::bigint FROM"
                         " pg_replication_slots WHERE slot_name = $1",
                         1, params, &res) < 0)
            return;
        if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
            m->retained = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
    }
}

static void monitor_done(OffloadJob *j)
{
    MonitorJob *m = (MonitorJob *)j;
    Pipeline *p = m->base.p;
    bool cancelled = j->cancelled, check = m->check;
    long long retained = m->retained;

    free(m);
    if (cancelled)
        return;
    p->monitor_busy = false;
    if (!check)
        return;
    p->slot_retained_bytes = retained;
    long long limit = p->cfg->service.warn_retained_wal_mb * 1024LL * 1024LL;
    double now = clock_mono_secs();
    if (p->slot_retained_bytes > limit && now - p->last_retained_warning > 600) {
        p->last_retained_warning = now;
        log_warn("slot %s retains %.0f MB of WAL on the source (warning threshold %ld MB):"
                 " the pipeline is behind or stopped; the source's disk fills until it"
                 " catches up",
                 p->cfg->source.slot, p->slot_retained_bytes / 1048576.0,
                 p->cfg->service.warn_retained_wal_mb);
    }
}

static void on_monitor(struct ev_loop *loop, ev_timer *w, int revents)
{
    Pipeline *p = w->data;
    static double last_heartbeat, last_check;
    double now = clock_mono_secs();
    long hb = p->cfg->service.heartbeat_interval_s;
    MonitorJob *m;

    if (p->monitor_busy)
        return; /* the last one still waits for the source */
    m = xcalloc(1, sizeof(*m));
    if (hb > 0 && now - last_heartbeat >= (double)hb && p->streaming) {
        last_heartbeat = now;
        m->heartbeat = true;
    }
    if (now - last_check >= SLOT_CHECK_S) {
        last_check = now;
        m->check = true;
    }
    m->base.p = p;
    m->base.base.run = monitor_run;
    m->base.base.done = monitor_done;
    p->monitor_busy = true;
    offload_submit(p->src_jobs, &m->base.base);
}

/* ---- reload ----------------------------------------------------------------- */

static bool same_tables(const TableSet *a, const TableSet *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (tableset_find(b, a->t[i].schema, a->t[i].name) < 0)
            return false;
    return true;
}

static void remap(RelEntry *e, void *arg)
{
    Pipeline *p = arg;

    e->table_idx = tableset_find(&p->tabs, e->info.schema, e->info.name);
    e->foreign_warned = false;
}

/*
 * A reload in two halves: the source worker resolves the new table set on
 * the source, checks it on the target, corrects the publication and reads
 * the tables' copy state (all blocking); the loop then swaps the result in.
 * p->tabs changes only in that swap and only one reload runs at a time, so
 * the worker may read it.
 */
typedef struct ReloadJob {
    PipelineJob base;
    Config *n;
    LogLevel level;
    bool same;          /* the table set did not change */
    TableSet tabs;      /* the new one, when it did */
    TableState *tstate; /* its copy state */
} ReloadJob;

static void reload_run(OffloadJob *j)
{
    ReloadJob *r = (ReloadJob *)j;
    Pipeline *p = r->base.p;
    int rc = monitor_conn(p);

    if (rc == 0)
        rc = catalog_resolve(p->monitor, r->n, &r->tabs);
    if (rc == 0)
        rc = catalog_check_identity(&r->tabs);
    if (rc == 0)
        r->same = same_tables(&r->tabs, &p->tabs);
    if (rc == 0 && !r->same && p->sink->ops->check_tables)
        rc = p->sink->ops->check_tables(p->sink, &r->tabs, false);
    for (size_t i = 0; rc == 0 && !r->same && !p->sink->ops->check_tables && i < r->tabs.n; i++)
        rc = p->sink->ops->check_table(p->sink, &r->tabs.t[i], false);
    if (rc == 0 && !r->same)
        rc = catalog_sync_publication(p->monitor, p->cfg->source.publication, &r->tabs, NULL);
    if (rc == 0 && !r->same)
        rc = pipeline_copy_load(p->sink, &r->tabs, &r->tstate);
    offload_result(j, rc);
}

/* On the loop: the new table set replaces the old one; counters of tables that stay are kept. */
static int reload_swap(Pipeline *p, ReloadJob *r)
{
    TableState *old = p->tstate;
    TableSet oldtabs = p->tabs;
    int rc;

    verify_loop_stop(p->verify); /* it reads the table set being replaced */
    p->verify = NULL;
    p->tstate = NULL;
    pipeline_copy_stop(p);
    tablesync_free(p->tsync);
    p->tsync = NULL;
    p->tabs = r->tabs;
    memset(&r->tabs, 0, sizeof(r->tabs));
    p->copy_done_logged = false;
    relcache_foreach(p->rels, remap, p);
    rc = pipeline_copy_begin(p, r->tstate);
    r->tstate = NULL;
    for (size_t i = 0; i < oldtabs.n; i++) {
        int j = tableset_find(&p->tabs, oldtabs.t[i].schema, oldtabs.t[i].name);

        if (j >= 0 && p->tstate) {
            memcpy(p->tstate[j].applied, old[i].applied, sizeof(old[i].applied));
            p->tstate[j].skipped_copy = old[i].skipped_copy;
            p->tstate[j].filtered = old[i].filtered;
            p->tstate[j].dead_letters = old[i].dead_letters;
        }
    }
    copystate_free(old, oldtabs.n);
    tableset_release(&oldtabs);
    log_info("reload: now replicating %zu table(s)", p->tabs.n);
    p->verify = verify_loop_start(p->cfg, &p->tabs);
    if (rc == 0 && p->held)
        pipeline_release_hold(p);
    return rc;
}

static void reload_start(Pipeline *p);

static void reload_done(OffloadJob *j)
{
    ReloadJob *r = (ReloadJob *)j;
    Pipeline *p = r->base.p;
    bool cancelled = j->cancelled;
    int rc = offload_rethrow(j);

    if (!cancelled) {
        if (rc == 0 && !r->same)
            rc = reload_swap(p, r);
        if (rc < 0) {
            log_error("reload rejected, the running configuration stays: %s", tm_error());
        } else {
            log_set_level(r->level);
            if (strcmp(r->n->source.conn.conninfo, p->cfg->source.conn.conninfo) != 0 ||
                strcmp(r->n->target.conn.conninfo ? r->n->target.conn.conninfo : "",
                       p->cfg->target.conn.conninfo ? p->cfg->target.conn.conninfo : "") != 0)
                log_notice("reload: connection settings changed; they take effect at restart");
            log_info("configuration reloaded from %s", p->cfg->path);
        }
        p->reload_busy = false;
        p->ready_sent = false;
        pipeline_service_ready(p);
    }
    copystate_free(r->tstate, r->tabs.n);
    tableset_release(&r->tabs);
    config_free(r->n);
    free(r);
    if (!cancelled)
        pipeline_service_reload_pending(p);
}

static void reload_start(Pipeline *p)
{
    Config *n = NULL;
    LogLevel level;
    int rc;

    notify_reloading();
    /* One at a time; and not while the post-data restore reads the table set. */
    if (p->reload_busy || p->post_data) {
        log_info("reload: queued behind the %s",
                 p->reload_busy ? "running reload" : "schema restore");
        p->reload_again = true;
        return;
    }
    rc = config_load(p->cfg->path, &n);
    if (rc == 0 && strcmp(n->pipeline, p->cfg->pipeline) != 0)
        rc = tm_fail(-EINVAL, "pipeline name changed from %s to %s", p->cfg->pipeline, n->pipeline);
    if (rc == 0)
        rc = log_level_parse(n->log.level, &level);
    if (rc < 0) {
        log_error("reload rejected, the running configuration stays: %s", tm_error());
        config_free(n);
        p->ready_sent = false;
        pipeline_service_ready(p);
        return;
    }
    ReloadJob *r = xcalloc(1, sizeof(*r));

    r->base.p = p;
    r->base.base.run = reload_run;
    r->base.base.done = reload_done;
    r->n = n;
    r->level = level;
    p->reload_busy = true;
    offload_submit(p->src_jobs, &r->base.base);
}

void pipeline_service_reload_pending(Pipeline *p)
{
    if (p->reload_again && !p->reload_busy) {
        p->reload_again = false;
        reload_start(p);
    }
}

static void on_sighup(struct ev_loop *loop, ev_signal *w, int revents)
{
    reload_start(w->data);
}

/* ---- lifecycle ----------------------------------------------------------------- */

int pipeline_service_bind(Pipeline *p)
{
    HttpHandlers h = {
        .metrics = render_metrics, .health = render_health, .ready = render_ready, .arg = p};

    p->slot_retained_bytes = -1;
    return http_start(p->loop, p->cfg->service.listen, &h, &p->http);
}

int pipeline_service_start(Pipeline *p)
{
    uint64_t wd = notify_watchdog_interval_usec();

    ev_timer_init(&p->watchdog_timer, on_watchdog, 0.2, wd ? (double)wd / 2e6 : 5.0);
    p->watchdog_timer.data = p;
    ev_timer_start(p->loop, &p->watchdog_timer);
    ev_timer_init(&p->monitor_timer, on_monitor, 1.0, 1.0);
    p->monitor_timer.data = p;
    ev_timer_start(p->loop, &p->monitor_timer);
    /* Verifies tables on verify.interval_s in its own thread (NULL when 0). */
    p->verify = verify_loop_start(p->cfg, &p->tabs);
    ev_signal_init(&p->sig_hup, on_sighup, SIGHUP);
    p->sig_hup.data = p;
    ev_signal_start(p->loop, &p->sig_hup);
    return 0;
}

void pipeline_service_stop(Pipeline *p)
{
    notify_stopping();
    pipeline_fk_stop(p);
    ev_timer_stop(p->loop, &p->watchdog_timer);
    ev_timer_stop(p->loop, &p->monitor_timer);
    ev_signal_stop(p->loop, &p->sig_hup);
    verify_loop_stop(p->verify);
    p->verify = NULL;
    http_stop(p->http);
    p->http = NULL;
    if (p->monitor)
        PQfinish(p->monitor);
    p->monitor = NULL;
}
