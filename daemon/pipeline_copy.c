/*
 * The initial copy as the stream sees it. Table-sync workers copy tables in
 * snapshots with exact LSNs and report every committed part; this file keeps
 * that state per table, decides per stream change whether the copy already
 * contains it (invariant 3), holds the stream while a table it needs is still
 * copying (backpressure, nothing dropped), and reports progress.
 */
#include "daemon/pipeline_int.h"
#include "core/error.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "core/clock.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void recompute(TableState *ts)
{
    ts->synced = ts->planned;
    ts->uniform = true;
    for (int i = 0; i < ts->nparts; i++) {
        if (!ts->parts[i].synced)
            ts->synced = false;
        else if (ts->parts[i].sync_lsn != ts->parts[0].sync_lsn)
            ts->uniform = false;
    }
    ts->lsn = ts->nparts ? ts->parts[0].sync_lsn : LSN_INVALID;
}

static int key_column(const TableDef *t)
{
    int key = -1;

    for (size_t i = 0; i < t->ncols; i++) {
        if (!t->cols[i].is_key)
            continue;
        if (key >= 0)
            return -1;
        key = (int)i;
    }
    return key;
}

/* ---- the stream filter ------------------------------------------------- */

static int tuple_key(const RelEntry *rel, const TableDef *t, int key_col, const Tuple *tup,
                     int64_t *out)
{
    const char *name = t->cols[key_col].name;
    char buf[32];

    for (uint16_t i = 0; i < rel->info.ncols && i < tup->ncols; i++) {
        if (strcmp(rel->info.cols[i].name, name) != 0)
            continue;
        const ColValue *v = &tup->cols[i];
        if (v->state != COL_TEXT || v->len == 0 || v->len >= sizeof(buf))
            break;
        memcpy(buf, v->data, v->len);
        buf[v->len] = '\0';
        char *end;
        errno = 0;
        *out = strtoll(buf, &end, 10);
        if (errno || *end)
            break;
        return 0;
    }
    return tm_fail(-EPROTO, "%s: cannot read key column %s of a change", rel->display, name);
}

static const CopyPart *part_for(const TableState *ts, int64_t key)
{
    for (int i = 0; i < ts->nparts; i++)
        if (key >= ts->parts[i].lo && (key < ts->parts[i].hi || ts->parts[i].hi == INT64_MAX))
            return &ts->parts[i];
    return &ts->parts[ts->nparts - 1];
}

int pipeline_filter_table(Pipeline *p, int idx)
{
    TableState *ts = &p->tstate[idx];

    if (!ts->synced) {
        p->held_table = idx;
        return FILTER_HOLD;
    }
    int before = 0;

    for (int i = 0; i < ts->nparts; i++)
        before += p->txn.final_lsn < ts->parts[i].sync_lsn;
    if (before == 0)
        return FILTER_APPLY;
    if (before == ts->nparts)
        return FILTER_SKIP; /* every part's copy already saw it */
    return tm_fail(-EPROTO,
                   "TRUNCATE of %s falls between the snapshots of its copy parts; re-copy the"
                   " table (delete its rows from tidemark.sync_state and empty it)",
                   p->tabs.t[idx].display);
}

int pipeline_filter_row(Pipeline *p, int idx, const RelEntry *rel, const Change *c,
                        const Change **as, Change *scratch)
{
    TableState *ts = &p->tstate[idx];
    const TableDef *t = &p->tabs.t[idx];
    Lsn at = p->txn.final_lsn;
    int64_t k_old, k_new;
    int rc;

    *as = c;
    if (!ts->synced) {
        p->held_table = idx;
        return FILTER_HOLD;
    }
    if (ts->uniform)
        return at < ts->lsn ? FILTER_SKIP : FILTER_APPLY;

    /* Key parts copied at different points: the change's part decides. */
    if (ts->key_col < 0)
        return tm_fail(-EPROTO, "%s: parts copied at different points without a key", t->display);
    switch (c->kind) {
    case CHG_INSERT:
        rc = tuple_key(rel, t, ts->key_col, &c->insert.newtup, &k_new);
        if (rc < 0)
            return rc;
        return at < part_for(ts, k_new)->sync_lsn ? FILTER_SKIP : FILTER_APPLY;
    case CHG_DELETE:
        rc = tuple_key(rel, t, ts->key_col, &c->del.oldtup, &k_old);
        if (rc < 0)
            return rc;
        return at < part_for(ts, k_old)->sync_lsn ? FILTER_SKIP : FILTER_APPLY;
    case CHG_UPDATE:
        break;
    default:
        return FILTER_APPLY;
    }
    rc = tuple_key(rel, t, ts->key_col, &c->update.newtup, &k_new);
    if (rc == 0)
        rc = c->update.old_kind ? tuple_key(rel, t, ts->key_col, &c->update.oldtup, &k_old)
                                : (k_old = k_new, 0);
    if (rc < 0)
        return rc;
    bool in_old = at >= part_for(ts, k_old)->sync_lsn; /* old part's copy lacks it */
    bool in_new = at >= part_for(ts, k_new)->sync_lsn;
    if (in_old && in_new)
        return FILTER_APPLY;
    if (!in_old && !in_new)
        return FILTER_SKIP;
    if (in_old) {
        /* The new part's copy already holds the new row: remove the old one. */
        memset(scratch, 0, sizeof(*scratch));
        scratch->kind = CHG_DELETE;
        scratch->del.relid = c->update.relid;
        scratch->del.old_kind = c->update.old_kind;
        scratch->del.oldtup = c->update.oldtup;
        *as = scratch;
        return FILTER_APPLY;
    }
    /* The old part's copy no longer had the row, the new part's not yet. */
    for (uint16_t i = 0; i < c->update.newtup.ncols; i++)
        if (c->update.newtup.cols[i].state == COL_UNCHANGED)
            return tm_fail(-EPROTO,
                           "%s: a key update moved a row between copy parts with an unchanged"
                           " TOASTed column; its value is not in the stream. Re-copy the table"
                           " (delete its rows from tidemark.sync_state and empty it)",
                           t->display);
    memset(scratch, 0, sizeof(*scratch));
    scratch->kind = CHG_INSERT;
    scratch->insert.relid = c->update.relid;
    scratch->insert.newtup = c->update.newtup;
    *as = scratch;
    return FILTER_APPLY;
}

/* ---- events from the workers ---------------------------------------------- */

static void log_table_done(Pipeline *p, int idx)
{
    TableState *ts = &p->tstate[idx];
    TableSyncProgress pr;
    long long rows = 0;

    if (ts->summary_logged)
        return;
    ts->summary_logged = true;
    tablesync_progress(p->tsync, idx, &pr);
    for (int i = 0; i < ts->nparts; i++)
        rows += ts->parts[i].rows;
    /* Wall time from the worker's start to the last part's commit (the
     * worker updates its counters just after reporting the part). */
    double secs = pr.started > 0 ? clock_mono_secs() - pr.started : 0;

    log_write(LOG_LVL_INFO, p->tabs.t[idx].display, ts->lsn,
              "initial copy complete: %lld rows in target (%d part%s), %lld copied this"
              " run in %.1f s",
              rows, ts->nparts, ts->nparts == 1 ? "" : "s", pr.rows, secs);
}

static void on_event(Pipeline *p, TableSyncEvent *ev)
{
    TableState *ts;

    if (ev->kind == TSE_ERROR) {
        pipeline_fail(p, tm_fail(ev->err, "%s", ev->msg));
        return;
    }
    ts = &p->tstate[ev->table_idx];
    if (ev->kind == TSE_PLANNED) {
        copyparts_free(ts->parts, ts->nparts);
        ts->parts = ev->parts;
        ts->nparts = ev->nparts;
        ts->planned = true;
    } else if (ev->part.index >= 0 && ev->part.index < ts->nparts) {
        CopyPart *cp = &ts->parts[ev->part.index];

        cp->synced = true;
        cp->sync_lsn = ev->part.sync_lsn;
        cp->rows = ev->part.rows;
    }
    recompute(ts);
    pipeline_check_early_errors(p);
    if (p->rc)
        return;
    if (ts->synced) {
        log_table_done(p, ev->table_idx);
        bool all = true;
        for (size_t i = 0; i < p->tabs.n && all; i++)
            all = p->tstate[i].synced;
        if (all && !p->copy_done_logged) {
            if (isatty(STDERR_FILENO))
                fputs("\r\033[K", stderr);
            p->copy_done_logged = true;
            log_info("initial copy complete for all %zu table(s) in %.1f s", p->tabs.n,
                     clock_mono_secs() - p->copy_started);
            ev_timer_stop(p->loop, &p->progress_timer);
            pipeline_copies_complete(p);
        }
    }
    if (p->held && p->held_table == ev->table_idx && ts->synced)
        pipeline_release_hold(p);
}

static void on_copy_async(struct ev_loop *loop, ev_async *w, int revents)
{
    Pipeline *p = w->data;
    TableSyncEvent ev;

    while (p->rc == 0 && tablesync_poll(p->tsync, &ev) == 1)
        on_event(p, &ev);
    pipeline_check_early_errors(p); /* also woken by a copy's dead letters */
}

static void copy_notify(void *arg)
{
    Pipeline *p = arg;

    ev_async_send(p->loop, &p->copy_async);
}

/* ---- progress ---------------------------------------------------------------- */

static void fmt_count(char *buf, size_t len, double v)
{
    if (v >= 1e9)
        snprintf(buf, len, "%.2fG", v / 1e9);
    else if (v >= 1e6)
        snprintf(buf, len, "%.2fM", v / 1e6);
    else if (v >= 1e4)
        snprintf(buf, len, "%.1fk", v / 1e3);
    else
        snprintf(buf, len, "%.0f", v);
}

/* One table's progress: "1.20M rows, 45.1 MB, 120.0k rows/s, part 3/8 done, 45%, ETA 12 s". */
static void describe(const TableSyncProgress *pr, double now, char *out, size_t len)
{
    char rows[16], rate[16], eta[48] = "";
    double secs = now - pr->started;
    double rps = secs > 0 ? pr->rows / secs : 0;

    fmt_count(rows, sizeof(rows), (double)pr->rows);
    fmt_count(rate, sizeof(rate), rps);
    if (pr->est_rows > pr->rows && rps > 0)
        snprintf(eta, sizeof(eta), ", %.0f%%, ETA %.0f s", 100.0 * pr->rows / pr->est_rows,
                 (pr->est_rows - pr->rows) / rps);
    snprintf(out, len, "%s rows, %.1f MB, %s rows/s, part %d/%d done%s", rows, pr->bytes / 1e6,
             rate, pr->parts_done, pr->parts_total, eta);
}

/*
 * On a terminal: one line redrawn in place; otherwise (journald, files): a
 * log line per table every 10 s.
 */
static void on_progress(struct ev_loop *loop, ev_timer *w, int revents)
{
    Pipeline *p = w->data;

    pipeline_check_early_errors(p);
    bool tty = isatty(STDERR_FILENO);
    double now = clock_mono_secs();
    size_t ndone = 0, shown = 0;
    Buf line = BUF_INIT;

    for (size_t i = 0; i < p->tabs.n; i++) {
        TableSyncProgress pr;
        char desc[160];

        if (p->tstate[i].synced) {
            ndone++;
            continue;
        }
        tablesync_progress(p->tsync, (int)i, &pr);
        if (pr.started == 0)
            continue;
        describe(&pr, now, desc, sizeof(desc));
        if (!tty)
            log_write(LOG_LVL_INFO, p->tabs.t[i].display, LSN_INVALID, "copying: %s", desc);
        else if (shown++ < 2)
            buf_printf(&line, " | %s %s", p->tabs.t[i].display, desc);
    }
    if (tty && !p->copy_done_logged) {
        fprintf(stderr, "\r\033[K[copy %zu/%zu tables done, %.0f s]%s", ndone, p->tabs.n,
                now - p->copy_started, line.data ? line.data : "");
        fflush(stderr);
    }
    buf_release(&line);
}

/* Whether t's copy is complete, from the sink's stored state (blocking). */
static int load_done(Sink *sink, const TableDef *t, TableState *ts)
{
    CopyPart *parts = NULL;
    int n = 0, rc;

    if (sink->ops->parts_load) {
        rc = sink->ops->parts_load(sink, t, &parts, &n);
    } else {
        bool synced;
        Lsn lsn;

        rc = sink->ops->table_state(sink, t, &synced, &lsn);
        if (rc == 0 && synced) {
            parts = xcalloc(1, sizeof(CopyPart));
            parts[0].kind = PART_WHOLE;
            parts[0].synced = true;
            parts[0].sync_lsn = lsn;
            n = 1;
        }
    }
    if (rc < 0)
        return rc;
    bool all = n > 0;
    for (int k = 0; k < n; k++)
        all = all && parts[k].synced;
    if (!all) {
        copyparts_free(parts, n);
        return 0;
    }
    ts->parts = parts;
    ts->nparts = n;
    ts->planned = true;
    recompute(ts);
    return 0;
}

/*
 * "If something unexpected happens in the first 10% of the migration, stop
 * and evaluate": dead letters (stream and copy) are counted while less than a
 * tenth of the initial load's rows (by the planner's estimate; by parts when
 * there is none) is copied.
 */
void pipeline_check_early_errors(Pipeline *p)
{
    long limit = p->cfg->copy.max_errors_early;
    long long copied = 0, est = 0, errors = 0;
    int parts_done = 0, parts_total = 0;

    if (limit < 0 || p->copy_done_logged || !p->tsync || p->rc)
        return;
    for (size_t i = 0; i < p->tabs.n; i++) {
        TableSyncProgress pr;

        tablesync_progress(p->tsync, (int)i, &pr);
        errors += pr.dead_letters + (long long)p->tstate[i].dead_letters;
        copied += pr.rows;
        est += pr.est_rows > pr.rows ? pr.est_rows : pr.rows;
        parts_done += p->tstate[i].synced ? p->tstate[i].nparts : pr.parts_done;
        parts_total += p->tstate[i].synced ? p->tstate[i].nparts : pr.parts_total;
    }
    double done = est > 0 ? (double)copied / (double)est
                          : (parts_total > 0 ? (double)parts_done / parts_total : 0);
    if (done >= 0.10 || errors <= limit)
        return;
    pipeline_fail(p, tm_fail(-ECANCELED,
                             "%lld rows failed in the first %.0f%% of the initial load"
                             " (copy.max_errors_early is %ld): stopping so the mapping and the"
                             " data can be checked; the rows are in tidemark.dead_letter",
                             errors, done * 100, limit));
}

void copystate_free(TableState *ts, size_t n)
{
    if (!ts)
        return;
    for (size_t i = 0; i < n; i++)
        copyparts_free(ts[i].parts, ts[i].nparts);
    free(ts);
}

int pipeline_copy_load(Sink *sink, const TableSet *tabs, TableState **out)
{
    TableState *ts = xcalloc(tabs->n + 1, sizeof(TableState));
    int rc = 0;

    for (size_t i = 0; i < tabs->n && rc == 0; i++) {
        ts[i].key_col = key_column(&tabs->t[i]);
        rc = load_done(sink, &tabs->t[i], &ts[i]);
    }
    if (rc < 0) {
        copystate_free(ts, tabs->n);
        return rc;
    }
    *out = ts;
    return 0;
}

int pipeline_copy_begin(Pipeline *p, TableState *tstate)
{
    p->tstate = tstate;
    p->tsync = tablesync_new(p->cfg, p->sink, &p->tabs, copy_notify, p);
    p->copy_started = clock_mono_secs();
    ev_async_init(&p->copy_async, on_copy_async);
    p->copy_async.data = p;
    ev_async_start(p->loop, &p->copy_async);
    ev_timer_init(&p->progress_timer, on_progress, 1.0, isatty(STDERR_FILENO) ? 2.0 : 10.0);
    p->progress_timer.data = p;
    ev_timer_start(p->loop, &p->progress_timer);
    /* Tables whose copy is complete are known here and now, so their stream
     * changes never wait for a busy worker; only the others are queued. */
    for (size_t i = 0; i < p->tabs.n; i++) {
        if (p->tstate[i].synced) {
            log_table_done(p, (int)i); /* "0 copied this run" */
            continue;
        }
        int rc = tablesync_submit(p->tsync, (int)i);

        if (rc < 0)
            return rc;
    }
    bool all = true;
    for (size_t i = 0; i < p->tabs.n && all; i++)
        all = p->tstate[i].synced;
    if (all) {
        p->copy_done_logged = true;
        ev_timer_stop(p->loop, &p->progress_timer);
        pipeline_copies_complete(p);
    }
    return 0;
}

int pipeline_copy_start(Pipeline *p)
{
    TableState *ts;
    int rc = pipeline_copy_load(p->sink, &p->tabs, &ts);

    return rc < 0 ? rc : pipeline_copy_begin(p, ts);
}

void pipeline_copy_stop(Pipeline *p)
{
    if (!p->tsync)
        return;
    tablesync_stop(p->tsync);
    ev_async_stop(p->loop, &p->copy_async);
    ev_timer_stop(p->loop, &p->progress_timer);
}

void pipeline_copy_free(Pipeline *p)
{
    pipeline_copy_stop(p);
    tablesync_free(p->tsync);
    p->tsync = NULL;
    copystate_free(p->tstate, p->tabs.n);
    p->tstate = NULL;
}
