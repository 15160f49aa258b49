/*
 * The cutover/rollback run (see switch.h): its steps up to the freeze-time
 * verification, the order they run in, their timings, and the abort path.
 * Creating the other direction, the switch itself and what follows it are
 * in switch_side.c; the run record in switch_record.c.
 *
 * Until the switch commits, the source (X) is frozen only by EXCLUSIVE locks
 * that a session of this process holds on the migrated tables: writers wait,
 * readers go on, and if this process dies in any way the locks go with its
 * connection, so the source is writable again without anyone's help. The
 * persistent freeze (default_transaction_read_only on X's database) is set
 * only inside the switch step, immediately before the switch commits.
 */
#include "migration/switch_int.h"
#include "connectors/pg/catalog.h"
#include "connectors/pg/pgconn.h"
#include "connectors/pg/sequences.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "migration/reverse.h"
#include "migration/verify.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sw_open(const ConfigEndpoint *ep, const char *what, PGconn **out)
{
    int rc = pgconn_open(ep, PGCONN_NORMAL, what, out);

    /* A database tidemark froze defaults to read-only; its own sessions are not. */
    if (rc == 0 && (rc = pgconn_exec(*out, "SET default_transaction_read_only = off")) < 0) {
        PQfinish(*out);
        *out = NULL;
    }
    return rc;
}

char *sw_schema_array(const TableSet *tabs)
{
    Buf b = BUF_INIT;
    char *out;

    buf_putc(&b, '{');
    for (size_t i = 0; i < tabs->n; i++)
        buf_put_array_elem(&b, tabs->t[i].schema);
    buf_putc(&b, '}');
    out = xstrdup(buf_cstr(&b));
    buf_release(&b);
    return out;
}

int sw_value(PGconn *conn, const char *sql, int n, const char *const *params, char **out)
{
    PGresult *res;
    int rc = pgconn_query(conn, sql, n, params, &res);

    *out = NULL;
    if (rc < 0)
        return rc;
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        *out = xstrdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

static bool interrupted(const SwitchCtx *c)
{
    return c->opt->interrupted && *c->opt->interrupted;
}

int sw_fault(SwitchCtx *c, const char *point)
{
    const char *spec = getenv("TIDEMARK_FAULT");
    size_t n = strlen(point);

    if (!spec || strncmp(spec, point, n) != 0 || (spec[n] != '\0' && spec[n] != ':'))
        return 0;
    if (strcmp(spec + n, ":kill") == 0) {
        fprintf(c->opt->out, "fault injected at %s: killing this process\n", point);
        fflush(c->opt->out);
        raise(SIGKILL);
    }
    if (strcmp(spec + n, ":wait") == 0) {
        fprintf(c->opt->out, "fault injected at %s: waiting for a signal\n", point);
        fflush(c->opt->out);
        while (!interrupted(c))
            poll(NULL, 0, 20);
        return tm_fail(-EINTR, "interrupted by a signal at %s", point);
    }
    return tm_fail(-EIO, "fault injected at %s (TIDEMARK_FAULT)", point);
}

/* ---- check -------------------------------------------------------------- */

static int check_from(SwitchCtx *c)
{
    const Config *f = c->from;
    const char *p1[1] = {f->pipeline};
    const char *ps[1] = {f->source.slot};
    char *v = NULL;
    int rc;

    rc =
        sw_value(c->y, "SELECT 1 WHERE to_regclass('tidemark.watermark') IS NOT NULL", 0, NULL, &v);
    if (rc == 0 && v) {
        free(v);
        rc = sw_value(c->y, "SELECT lsn::text FROM tidemark.watermark WHERE pipeline = $1", 1, p1,
                      &v);
    }
    if (rc == 0 && !v && c->opt->kind == SWITCH_ROLLBACK)
        rc = tm_fail(-ENOENT, "pipeline %s has never run on %s: a rollback follows a cutover",
                     f->pipeline, c->ydb);
    else if (rc == 0 && !v)
        rc = tm_fail(-ENOENT, "pipeline %s has no watermark on its target: it has never run",
                     f->pipeline);
    free(v);
    if (rc == 0)
        rc = sw_value(c->y,
                      "SELECT value FROM tidemark.pipeline_state WHERE pipeline = $1 AND"
                      " key = 'halted'",
                      1, p1, &v);
    if (rc == 0 && v)
        rc = tm_fail(-EINVAL, "pipeline %s is halted (%s): resolve that first", f->pipeline, v);
    free(v);
    if (rc == 0)
        rc = sw_value(c->y,
                      "SELECT string_agg(DISTINCT schema_name || '.' || table_name, ', ')"
                      " FROM tidemark.sync_state WHERE pipeline = $1"
                      " AND state NOT IN ('synced', 'ready')",
                      1, p1, &v);
    if (rc == 0 && v)
        rc = tm_fail(-EBUSY, "pipeline %s is still copying %s: wait for the initial copy",
                     f->pipeline, v);
    free(v);
    if (rc == 0)
        rc = sw_value(c->x,
                      "SELECT CASE WHEN active THEN 'active' ELSE 'idle' END FROM"
                      " pg_replication_slots WHERE slot_name = $1",
                      1, ps, &v);
    if (rc == 0 && !v)
        rc = tm_fail(-ENOENT, "slot %s of pipeline %s does not exist on its source", f->source.slot,
                     f->pipeline);
    else if (rc == 0 && strcmp(v, "active") != 0)
        rc = tm_fail(-ENOTCONN,
                     "pipeline %s is not running (slot %s is idle): start it (tidemark run"
                     " --config %s); the %s drains through it",
                     f->pipeline, f->source.slot, f->path ? f->path : "FILE", c->kind);
    free(v);
    return rc;
}

static int step_check(SwitchCtx *c)
{
    char *v = NULL;
    bool cleaned = false;
    int rc = catalog_resolve(c->x, c->from, &c->tabs);

    if (rc == 0)
        rc = sw_cleanup_leftovers(c, &cleaned);
    if (rc == 0)
        rc = check_from(c);
    if (rc == 0 && c->to) {
        rc = sw_value(c->y, "SELECT current_setting('wal_level')", 0, NULL, &v);
        if (rc == 0 && strcmp(v, "logical") != 0)
            rc = tm_fail(-EINVAL,
                         "the %s side (%s) has wal_level = %s: the fallback pipeline needs"
                         " logical (set it and restart that server, or use --no-fallback)",
                         c->opt->kind == SWITCH_CUTOVER ? "new" : "old", c->ydb, v);
        free(v);
    }
    if (rc == 0)
        snprintf(c->detail, sizeof(c->detail), "%s streaming, %zu table(s) copied%s%s",
                 c->from->pipeline, c->tabs.n, c->to ? ", fallback to " : ", no fallback",
                 c->to ? c->to->pipeline : "");
    if (rc == 0 && cleaned)
        strncat(c->detail, "; cleaned up after an interrupted run",
                sizeof(c->detail) - strlen(c->detail) - 1);
    return rc;
}

/* ---- freeze -------------------------------------------------------------- */

static int step_freeze(SwitchCtx *c)
{
    Buf sql = BUF_INIT;
    char *lsn = NULL;
    int rc = sw_open(&c->from->source.conn, "source", &c->xlock);

    if (rc < 0)
        return rc;
    buf_printf(&sql, "SET lock_timeout = %ld", c->opt->lock_timeout_ms);
    rc = pgconn_exec(c->xlock, buf_cstr(&sql));
    if (rc == 0)
        rc = pgconn_exec(c->xlock, "BEGIN");
    buf_clear(&sql);
    buf_puts(&sql, "LOCK TABLE ");
    for (size_t i = 0; i < c->tabs.n; i++) {
        char *q = pgconn_qualified(c->xlock, c->tabs.t[i].schema, c->tabs.t[i].name);

        buf_printf(&sql, "%s%s", i ? ", " : "", q);
        free(q);
    }
    buf_puts(&sql, " IN EXCLUSIVE MODE");
    if (rc == 0 && (rc = pgconn_exec(c->xlock, buf_cstr(&sql))) < 0)
        rc = tm_fail_ctx(rc,
                         "locking the tables on %s within %ld ms (a long write transaction"
                         " holds one of them; see pg_locks, or raise --lock-timeout)",
                         c->xdb, c->opt->lock_timeout_ms);
    buf_release(&sql);
    /* Every write to these tables has committed or waits behind the locks, so
     * a marker written now comes after all of them in the WAL. It is sent as
     * a transaction of its own (messages are transactional here), which the
     * daemon applies at once: the drain waits for the watermark to pass it.
     * Committed synchronously: the walsender sends only flushed WAL. */
    if (rc == 0)
        rc = pgconn_exec(c->x, "SET synchronous_commit = on");
    if (rc == 0)
        rc = sw_value(c->x,
                      "SELECT pg_logical_emit_message(true, 'tidemark', 'switch frozen')::text", 0,
                      NULL, &lsn);
    if (rc == 0)
        rc = lsn_parse(lsn, &c->frozen_lsn);
    if (rc == 0)
        rc = sw_guard_start(c);
    if (rc == 0)
        snprintf(c->detail, sizeof(c->detail),
                 "%zu table(s) locked on %s (writers wait, readers go on), its WAL at %s",
                 c->tabs.n, c->xdb, lsn);
    free(lsn);
    return rc;
}

/* ---- the guard: see switch_int.h --------------------------------------------- */

typedef struct SwGuard {
    pthread_t thread;
    PGconn *conn;
    char lockpid[16];
    atomic_int stop;
    atomic_int ended;
} SwGuard;

static void *guard_main(void *arg)
{
    SwGuard *g = arg;
    const char *p[1] = {g->lockpid};

    while (!atomic_load(&g->stop)) {
        PGresult *res = PQexecParams(
            g->conn,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname ="
            " current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid() AND"
            " $1::int = ANY (pg_blocking_pids(pid))",
            1, NULL, p, NULL, NULL, 0);

        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
            atomic_fetch_add(&g->ended, atoi(PQgetvalue(res, 0, 0)));
        PQclear(res);
        for (int i = 0; i < 10 && !atomic_load(&g->stop); i++)
            poll(NULL, 0, 20);
    }
    return NULL;
}

int sw_guard_start(SwitchCtx *c)
{
    SwGuard *g = xcalloc(1, sizeof(*g));
    int rc = sw_open(&c->from->source.conn, "source", &g->conn);

    snprintf(g->lockpid, sizeof(g->lockpid), "%d", PQbackendPID(c->xlock));
    if (rc == 0 && pthread_create(&g->thread, NULL, guard_main, g) != 0)
        rc = tm_fail(-EAGAIN, "cannot start a thread");
    if (rc < 0) {
        if (g->conn)
            PQfinish(g->conn);
        free(g);
        return rc;
    }
    c->guard = g;
    return 0;
}

int sw_guard_stop(SwitchCtx *c)
{
    SwGuard *g = c->guard;
    int ended;

    if (!g)
        return 0;
    atomic_store(&g->stop, 1);
    pthread_join(g->thread, NULL);
    PQfinish(g->conn);
    ended = atomic_load(&g->ended);
    free(g);
    c->guard = NULL;
    return ended;
}

/* ---- drain --------------------------------------------------------------- */

static int step_drain(SwitchCtx *c)
{
    char want[32];
    const char *p[2] = {c->from->pipeline, want};
    const char *ps[1] = {c->from->source.slot};
    double deadline = clock_mono_secs() + (double)c->opt->drain_timeout_s, next_slot_check = 0;
    char *v = NULL;
    int rc;

    snprintf(want, sizeof(want), LSN_FMT, LSN_ARGS(c->frozen_lsn));
    for (;;) {
        rc = sw_value(c->y,
                      "SELECT CASE WHEN lsn >= $2::pg_lsn THEN 'ok' ELSE lsn::text END"
                      " FROM tidemark.watermark WHERE pipeline = $1",
                      2, p, &v);
        if (rc < 0 || (v && strcmp(v, "ok") == 0))
            break;
        if (interrupted(c)) {
            rc = tm_fail(-EINTR, "interrupted by a signal while draining");
            break;
        }
        if (clock_mono_secs() > deadline) {
            rc = tm_fail(-ETIMEDOUT,
                         "pipeline %s did not reach the frozen source's position %s within %ld"
                         " s (its watermark is %s): is the daemon keeping up? (--drain-timeout)",
                         c->from->pipeline, want, c->opt->drain_timeout_s, v ? v : "missing");
            break;
        }
        if (clock_mono_secs() > next_slot_check) {
            char *active = NULL;

            rc = sw_value(c->x,
                          "SELECT active::text FROM pg_replication_slots WHERE"
                          " slot_name = $1",
                          1, ps, &active);
            if (rc == 0 && (!active || strcmp(active, "true") != 0))
                rc = tm_fail(-ENOTCONN,
                             "the daemon of pipeline %s stopped while draining (slot %s not"
                             " active): nothing is left to drain to the target",
                             c->from->pipeline, c->from->source.slot);
            free(active);
            if (rc < 0)
                break;
            next_slot_check = clock_mono_secs() + 1.0;
        }
        free(v);
        v = NULL;
        poll(NULL, 0, 50);
    }
    free(v);
    if (rc == 0)
        snprintf(c->detail, sizeof(c->detail), "watermark of %s at or past %s: zero lag",
                 c->from->pipeline, want);
    return rc;
}

/* ---- sequences ----------------------------------------------------------- */

static int step_sequences(SwitchCtx *c)
{
    char *schemas = sw_schema_array(&c->tabs);
    const char *p[1] = {schemas};
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    SeqSyncResult res = {0};
    int rc;

    /* What the target had, so an abort can put it back. */
    rc = sw_value(c->y,
                  "SELECT coalesce(jsonb_agg(jsonb_build_object('s', schemaname, 'n',"
                  " sequencename, 'v', last_value, 'start', start_value)), '[]')::text"
                  " FROM pg_sequences WHERE schemaname = ANY ($1::text[])",
                  1, p, &c->seq_before);
    if (rc == 0)
        rc = sequences_sync(c->from, &c->tabs, false, mem, &res);
    fclose(mem);
    free(schemas);
    c->notes = text;
    if (rc == 0 && res.missing)
        rc = tm_fail(-ENOENT,
                     "%d sequence(s) of the source are missing on %s (listed above): create"
                     " them there",
                     res.missing, c->ydb);
    if (rc == 0)
        snprintf(c->detail, sizeof(c->detail), "%d sequence(s) set on %s from %s", res.synced,
                 c->ydb, c->xdb);
    return rc;
}

/* ---- materialized views --------------------------------------------------- */

static int step_matviews(SwitchCtx *c)
{
    TableName *mv = NULL;
    size_t n = 0;
    int rc = catalog_schema_matviews(c->y, &c->tabs, &mv, &n);

    for (size_t i = 0; rc == 0 && i < n; i++) {
        char *q = pgconn_qualified(c->y, mv[i].schema, mv[i].name);
        char *sql = xasprintf("REFRESH MATERIALIZED VIEW %s", q);

        rc = pgconn_exec(c->y, sql);
        if (rc < 0)
            rc = tm_fail_ctx(rc, "refreshing %s on %s", q, c->ydb);
        free(sql);
        free(q);
    }
    for (size_t i = 0; i < n; i++) {
        free(mv[i].schema);
        free(mv[i].name);
    }
    free(mv);
    if (rc == 0)
        snprintf(c->detail, sizeof(c->detail), "%zu materialized view(s) refreshed on %s", n,
                 c->ydb);
    return rc;
}

/* ---- verify -------------------------------------------------------------- */

static int step_verify(SwitchCtx *c)
{
    VerifyOptions vo = {.store = true, .integrity = true, .cancel = c->opt->interrupted};
    json_t *report = NULL, *t, *sum;
    size_t i;
    int rc = verify_run(c->from, &vo, &report);

    if (rc < 0) {
        json_decref(report);
        return tm_fail_ctx(rc, "final verification");
    }
    c->verify = json_array();
    c->src_rows = c->dst_rows = 0;
    json_array_foreach(json_object_get(report, "tables"), i, t)
    {
        c->src_rows += json_integer_value(json_object_get(t, "source_rows"));
        c->dst_rows += json_integer_value(json_object_get(t, "target_rows"));
        json_array_append_new(c->verify, json_pack("{s:O, s:O, s:O, s:O}", "table",
                                                   json_object_get(t, "display"), "source_rows",
                                                   json_object_get(t, "source_rows"), "target_rows",
                                                   json_object_get(t, "target_rows"), "ok",
                                                   json_object_get(t, "ok")));
    }
    c->verify_ok = verify_report_ok(report);
    sum = json_object_get(report, "summary");
    if (!c->verify_ok)
        rc = tm_fail(-EINVAL,
                     "final verification failed: %lld row(s) missing, %lld extra, %lld"
                     " differing, %lld integrity failure(s) on %s (run `tidemark verify --config"
                     " %s` for the rows)",
                     (long long)json_integer_value(json_object_get(sum, "missing")),
                     (long long)json_integer_value(json_object_get(sum, "extra")),
                     (long long)json_integer_value(json_object_get(sum, "differing")),
                     (long long)json_integer_value(json_object_get(sum, "integrity_failures")),
                     c->ydb, c->from->path ? c->from->path : "FILE");
    else
        snprintf(c->detail, sizeof(c->detail), "%zu table(s) equal, %lld row(s) on each side",
                 json_array_size(c->verify), c->src_rows);
    json_decref(report);
    return rc;
}

/* ---- the run ------------------------------------------------------------- */

typedef struct Step {
    const char *name;
    int (*fn)(SwitchCtx *c);
} Step;

static const Step steps[] = {
    {"check", step_check},         {"freeze", step_freeze},     {"drain", step_drain},
    {"sequences", step_sequences}, {"matviews", step_matviews}, {"verify", step_verify},
    {"prepare", sw_step_prepare},  {"switch", sw_step_switch},
};

static void step_done(SwitchCtx *c, const char *name, double t0, int rc)
{
    double secs = clock_mono_secs() - t0;

    json_array_append_new(
        c->steps, json_pack("{s:s, s:f, s:b}", "step", name, "seconds", secs, "ok", rc == 0));
    if (rc == 0)
        fprintf(c->opt->out, "  %-10s %8.2f s  %s\n", name, secs, c->detail);
    else
        fprintf(c->opt->out, "  %-10s %8.2f s  FAILED: %s\n", name, secs, tm_error());
    if (c->notes && *c->notes) {
        char *line = c->notes, *nl;

        for (; *line; line = nl ? nl + 1 : line + strlen(line)) {
            nl = strchr(line, '\n');
            fprintf(c->opt->out, "      %.*s\n", nl ? (int)(nl - line) : (int)strlen(line), line);
            if (!nl)
                break;
        }
    }
    free(c->notes);
    c->notes = NULL;
    c->detail[0] = '\0';
    fflush(c->opt->out);
}

static int setup(SwitchCtx *c, const SwitchOptions *opt)
{
    PGconn *src = NULL;
    TableSet fwdtabs = {0};
    const char *path;
    char *dflt = NULL;
    int rc;

    c->opt = opt;
    c->kind = opt->kind == SWITCH_CUTOVER ? "cutover" : "rollback";
    c->verify_ok = -1;
    c->steps = json_array();
    c->t0 = clock_mono_secs();
    if (opt->kind == SWITCH_CUTOVER && opt->no_fallback) {
        c->from = opt->fwd;
        return 0;
    }
    /* The fallback's tables are the forward ones, as resolved on the source. */
    rc = sw_open(&opt->fwd->source.conn, "source", &src);
    if (rc == 0)
        rc = catalog_resolve(src, opt->fwd, &fwdtabs);
    if (src)
        PQfinish(src);
    path = opt->reverse_path ? opt->reverse_path : (dflt = reverse_default_path(opt->fwd));
    if (rc == 0)
        rc = reverse_build(opt->fwd, &fwdtabs, path, &c->rev_yaml, &c->rev);
    tableset_release(&fwdtabs);
    free(dflt);
    if (rc < 0)
        return rc;
    c->from = opt->kind == SWITCH_CUTOVER ? opt->fwd : c->rev;
    c->to = opt->kind == SWITCH_CUTOVER ? c->rev : opt->fwd;
    return 0;
}

static int connect_sides(SwitchCtx *c)
{
    int rc =
        sw_open(&c->from->source.conn, c->opt->kind == SWITCH_CUTOVER ? "source" : "target", &c->x);

    if (rc == 0)
        rc = sw_open(&c->from->target.conn, c->opt->kind == SWITCH_CUTOVER ? "target" : "source",
                     &c->y);
    if (rc == 0)
        rc = sw_value(c->x, "SELECT current_database()", 0, NULL, &c->xdb);
    if (rc == 0)
        rc = sw_value(c->y, "SELECT current_database()", 0, NULL, &c->ydb);
    return rc;
}

static void ctx_free(SwitchCtx *c)
{
    sw_guard_stop(c);
    if (c->xlock)
        PQfinish(c->xlock);
    if (c->x)
        PQfinish(c->x);
    if (c->y)
        PQfinish(c->y);
    tableset_release(&c->tabs);
    config_free(c->rev);
    free(c->rev_yaml);
    free(c->xdb);
    free(c->ydb);
    free(c->run_id);
    free(c->notes);
    free(c->seq_before);
    free(c->x_previous);
    json_decref(c->steps);
    json_decref(c->verify);
}

static int already_switched(SwitchCtx *c, const char *when)
{
    double t0 = clock_mono_secs();
    int rc = sw_step_finish(c);

    step_done(c, "finish", t0, rc);
    if (rc == 0)
        fprintf(c->opt->out, "pipeline %s was already switched over %s; nothing left to do\n",
                c->from->pipeline, when);
    return rc;
}

int switch_run(const SwitchOptions *opt)
{
    SwitchCtx c = {0};
    char *when = NULL;
    char *err = NULL;
    int rc = setup(&c, opt);

    if (rc == 0)
        rc = connect_sides(&c);
    if (rc == 0)
        rc = sw_switched(&c, c.from, c.y, &when);
    if (rc == 0 && when) {
        rc = already_switched(&c, when);
        goto out;
    }
    if (rc == 0)
        rc = sw_record_begin(&c);
    if (rc < 0)
        goto out;
    fprintf(opt->out, "tidemark %s: %s (%s -> %s)%s%s, run %s\n", c.kind, c.from->pipeline, c.xdb,
            c.ydb, c.to ? ", then " : "", c.to ? c.to->pipeline : "", c.run_id);
    for (size_t i = 0; rc == 0 && i < sizeof(steps) / sizeof(steps[0]); i++) {
        double t0 = clock_mono_secs();

        if (interrupted(&c))
            rc = tm_fail(-EINTR, "interrupted by a signal before %s", steps[i].name);
        if (rc == 0)
            rc = sw_fault(&c, steps[i].name);
        if (rc == 0 && (c.to || strcmp(steps[i].name, "prepare") != 0))
            rc = steps[i].fn(&c);
        else if (rc == 0)
            snprintf(c.detail, sizeof(c.detail), "no fallback pipeline (--no-fallback)");
        step_done(&c, steps[i].name, t0, rc);
        if (rc == 0 && i + 1 < sizeof(steps) / sizeof(steps[0]))
            sw_record_update(&c, "running", NULL); /* progress; best effort */
    }
    if (rc < 0 && !c.switched) {
        err = xstrdup(tm_error());
        fprintf(opt->out, "aborting the %s: %s\n", c.kind, err);
        sw_undo(&c);
        sw_record_update(&c, "aborted", err);
        fprintf(opt->out,
                "%s aborted after %.2f s: %s is writable again and pipeline %s goes"
                " on streaming\n",
                c.kind, clock_mono_secs() - c.t0, c.xdb, c.from->pipeline);
        tm_fail(rc, "%s aborted: %s", c.kind, err);
        goto out;
    }
    if (rc == 0) {
        double t0 = clock_mono_secs();

        /* Past the switch: signals no longer abort, the rest is short. */
        rc = sw_step_finish(&c);
        step_done(&c, "finish", t0, rc);
        sw_record_update(&c, "done", rc < 0 ? tm_error() : NULL);
    }
    if (rc == 0)
        fprintf(opt->out, "%s done in %.2f s: %s is the system of record%s%s%s\n", c.kind,
                clock_mono_secs() - c.t0, c.ydb, c.to ? "; start " : "", c.to ? c.to->pipeline : "",
                c.to ? " (tidemark run --config FILE)" : "");
out:
    free(err);
    free(when);
    ctx_free(&c);
    return rc;
}

int switch_abort(const SwitchOptions *opt)
{
    SwitchCtx c = {0};
    char *when = NULL;
    bool found = false;
    int rc = setup(&c, opt);

    if (rc == 0)
        rc = connect_sides(&c);
    if (rc == 0)
        rc = sw_switched(&c, c.from, c.y, &when);
    if (rc == 0 && when) {
        rc = already_switched(&c, when);
        goto out;
    }
    if (rc == 0)
        rc = sw_cleanup_leftovers(&c, &found);
    if (rc == 0)
        fprintf(opt->out, "%s\n",
                found ? "cleaned up after the interrupted run"
                      : "nothing to clean up: no interrupted run left anything behind");
out:
    free(when);
    ctx_free(&c);
    return rc;
}
