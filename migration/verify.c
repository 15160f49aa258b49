/*
 * The verify run (see verify.h). Each round opens a consistent pair of
 * snapshots: on the source, a temporary logical slot's exported snapshot
 * (its LSN is exact: a transaction is visible iff it committed before it),
 * imported by every source worker; then, once the target's watermark for
 * this pipeline has passed that LSN (and no table copy is pending), a target
 * snapshot exported from one connection and imported by every target worker,
 * whose own watermark row says exactly which source position it holds.
 * Round one compares every table and runs the integrity checks on --jobs
 * connection pairs; the target may be ahead of the source snapshot by what
 * was applied meanwhile, so each later round rereads only the differing rows
 * at fresh snapshots, and only differences that persist through every round
 * are reported. Worker threads touch only their own connections and their
 * own task's table or check; the task counter sits behind one mutex.
 */
#include "connectors/pg/catalog.h"
#include "connectors/pg/pgconn.h"
#include "connectors/pg/repl.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "migration/verify_int.h"
#include "core/clock.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef enum TaskKind { TASK_COMPARE, TASK_RECHECK, TASK_FREEZE, TASK_FK, TASK_RULE } TaskKind;

typedef struct Task {
    TaskKind kind;
    size_t idx;
} Task;

typedef struct Run {
    const Config *cfg;
    const VerifyOptions *opt;
    VRuleSet rs;
    PGconn *src, *dst; /* control connections */
    PGconn **ws, **wd; /* worker pairs */
    int nworkers;
    TableSet set;
    VTable *tabs;
    size_t ntabs;
    VFk *fks; /* declared, then implicit (copies) */
    size_t nfks;
    json_t **check_out; /* nfks + nrules results */
    VThrottle th;
    char *run_id, *started_at;
    Lsn src_lsn, dst_lsn;
    int rounds;
    bool waited;
    double t0;
} Run;

/* ---- snapshots --------------------------------------------------------------- */

static int begin_snapshot(PGconn *c, const char *snap)
{
    char *lit = PQescapeLiteral(c, snap, strlen(snap));
    char *sql;
    int rc;

    if (!lit)
        xalloc_die();
    sql = xasprintf("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT %s",
                    lit);
    PQfreemem(lit);
    rc = pgconn_exec(c, sql);
    free(sql);
    return rc;
}

static int query_text(PGconn *c, const char *sql, int np, const char *const *p, char **out)
{
    PGresult *res;
    int rc = pgconn_query(c, sql, np, p, &res);

    if (rc < 0)
        return rc;
    *out = PQntuples(res) && !PQgetisnull(res, 0, 0) ? xstrdup(PQgetvalue(res, 0, 0)) : NULL;
    PQclear(res);
    return 0;
}

/*
 * While the target's watermark is behind lsn: is the pipeline running at all?
 * A stopped one (the normal case right after cutover) never reaches a
 * snapshot taken after it stopped; its idle slot says whether anything in
 * between concerns the verified tables (verify_slot.c). Returns 1 when
 * nothing does (the target already is the snapshot's state), 0 to go on
 * waiting; *why says what the wait is for.
 */
static int stopped_pipeline(Run *r, Lsn wm, Lsn lsn, char **why)
{
    int verdict;
    char *detail = NULL;

    free(*why);
    *why = NULL;
    if (verify_slot_peek(r->cfg, r->tabs, r->ntabs, wm, lsn, &verdict, &detail) < 0) {
        *why = xasprintf("the pipeline's slot could not be read (%s)", tm_error());
        return 0;
    }
    switch (verdict) {
    case VSLOT_CLEAN:
        log_info("pipeline %s is not running (slot %s idle) and its watermark " LSN_FMT
                 " is behind the snapshot " LSN_FMT ", but its slot holds no change to the"
                 " verified tables in between: the target holds the snapshot's state",
                 r->cfg->pipeline, r->cfg->source.slot, LSN_ARGS(wm), LSN_ARGS(lsn));
        return 1;
    case VSLOT_PENDING:
        *why = xasprintf("pipeline %s is not running (slot %s idle) and has not applied %s;"
                         " start `tidemark run` to apply them",
                         r->cfg->pipeline, r->cfg->source.slot, detail);
        break;
    case VSLOT_ACTIVE:
        *why = xasprintf("pipeline %s runs and applies the changes up to the snapshot",
                         r->cfg->pipeline);
        break;
    default:
        *why = xasprintf("pipeline %s's slot %s is missing or not readable yet", r->cfg->pipeline,
                         r->cfg->source.slot);
        break;
    }
    free(detail);
    return 0;
}

/*
 * Waits until the target's watermark for this pipeline is at least lsn and
 * no table copy is pending, polling every 50 ms up to the deadline, and
 * saying every few seconds what it waits for.
 */
static int wait_watermark(Run *r, PGconn *dst, Lsn lsn)
{
    char want[32], *wm = NULL, *pending = NULL, *has_sync = NULL, *why = NULL;
    const char *p[2] = {want, r->cfg->pipeline};
    double start = clock_mono_secs(), deadline = start + (double)r->rs.catchup_timeout_s;
    double next_look = start + 0.5, next_log = start + 5.0;
    bool reached = false;
    int rc;

    if (r->opt->wait_target)
        return r->opt->wait_target(r->cfg, dst, lsn, r->rs.catchup_timeout_s, r->opt->cancel);
    snprintf(want, sizeof(want), LSN_FMT, LSN_ARGS(lsn));
    rc = query_text(dst, "SELECT to_regclass('tidemark.sync_state') IS NOT NULL", 0, NULL,
                    &has_sync);
    for (; rc == 0;) {
        free(wm);
        free(pending);
        wm = pending = NULL;
        rc = query_text(dst,
                        "SELECT CASE WHEN lsn >= $1::pg_lsn THEN 'ok' ELSE lsn::text END"
                        " FROM tidemark.watermark WHERE pipeline = $2",
                        2, p, &wm);
        if (rc < 0)
            break;
        if (!wm) {
            rc = tm_fail(-ENOENT,
                         "pipeline %s has no watermark on the target: it has never run there"
                         " (start `tidemark run`, or compare static data with --no-wait)",
                         r->cfg->pipeline);
            break;
        }
        reached = strcmp(wm, "ok") == 0;
        if (has_sync && has_sync[0] == 't') {
            rc = query_text(dst,
                            "SELECT string_agg(DISTINCT schema_name || '.' || table_name, ', ')"
                            " FROM tidemark.sync_state WHERE pipeline = $1"
                            " AND state NOT IN ('synced', 'ready')",
                            1, p + 1, &pending);
            if (rc < 0)
                break;
        }
        if (reached && !pending)
            break;
        /* The daemon's own verification (cancel set) never peeks its slot. */
        if (!reached && !pending && !r->opt->cancel && clock_mono_secs() >= next_look) {
            Lsn at = LSN_INVALID;

            next_look = clock_mono_secs() + 2.0;
            if (lsn_parse(wm, &at) == 0 && stopped_pipeline(r, at, lsn, &why) == 1)
                break;
        }
        if (r->opt->cancel && __atomic_load_n(r->opt->cancel, __ATOMIC_ACQUIRE)) {
            rc = tm_fail(-ECANCELED, "verification cancelled: the daemon is stopping");
            break;
        }
        if (clock_mono_secs() > deadline) {
            rc = tm_fail(-ETIMEDOUT,
                         "pipeline %s did not catch up with the verification snapshot within"
                         " %ld s: source snapshot at %s, target %s%s%s%s (see"
                         " verify.catchup_timeout_s)",
                         r->cfg->pipeline, r->rs.catchup_timeout_s, want,
                         pending ? "still copying " : "watermark at ", pending ? pending : wm,
                         why ? ": " : "", why ? why : " (is `tidemark run` running?)");
            break;
        }
        if (clock_mono_secs() >= next_log) {
            next_log = clock_mono_secs() + 5.0;
            log_info("verify: waiting for the target to reach the snapshot " LSN_FMT
                     " (%.0f s of %ld): %s%s%s%s",
                     LSN_ARGS(lsn), clock_mono_secs() - start, r->rs.catchup_timeout_s,
                     pending ? "tables still copying: " : "watermark at ", pending ? pending : wm,
                     why ? "; " : "", why ? why : "");
        }
        usleep(50 * 1000);
    }
    free(wm);
    free(pending);
    free(has_sync);
    free(why);
    return rc;
}

/* Opens the round's source and target snapshots on every worker. */
static int open_round(Run *r)
{
    ReplConn *repl = repl_new(r->cfg);
    char *slot = xasprintf("tmv_%s_%d", r->cfg->pipeline, (int)getpid());
    char *snap = NULL, *tsnap = NULL;
    PGresult *res;
    const char *p[1] = {r->cfg->pipeline};
    int rc;

    for (int i = 0; i < r->nworkers; i++) {
        /* no open transaction of ours may hold up the slot's consistent point */
        pgconn_exec(r->ws[i], "ROLLBACK");
        pgconn_exec(r->wd[i], "ROLLBACK");
    }
    rc = repl_connect(repl);
    if (rc == 0)
        rc = repl_create_slot(repl, slot, true, &r->src_lsn, &snap);
    for (int i = 0; rc == 0 && i < r->nworkers; i++)
        rc = begin_snapshot(r->ws[i], snap);
    /* every source worker holds the snapshot now; the temporary slot goes with its connection */
    repl_free(repl);
    free(slot);
    free(snap);
    if (rc < 0)
        return tm_fail_ctx(rc, "source: opening the verification snapshot");
    if (!r->opt->no_wait && (rc = wait_watermark(r, r->dst, r->src_lsn)) < 0)
        return rc;
    r->waited = !r->opt->no_wait;
    rc = pgconn_exec(r->dst, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (rc == 0)
        rc = pgconn_query(r->dst,
                          "SELECT pg_export_snapshot(), (SELECT lsn::text FROM"
                          " tidemark.watermark WHERE pipeline = $1)",
                          1, p, &res);
    if (rc < 0 && r->opt->no_wait) {
        /* a target no pipeline ever wrote to has no tidemark.watermark */
        pgconn_exec(r->dst, "ROLLBACK");
        rc = pgconn_exec(r->dst, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        if (rc == 0)
            rc = pgconn_query(r->dst, "SELECT pg_export_snapshot(), NULL", 0, NULL, &res);
    }
    if (rc < 0)
        return tm_fail_ctx(rc, "target: opening the verification snapshot");
    tsnap = xstrdup(PQgetvalue(res, 0, 0));
    r->dst_lsn = LSN_INVALID;
    if (!PQgetisnull(res, 0, 1))
        lsn_parse(PQgetvalue(res, 0, 1), &r->dst_lsn);
    PQclear(res);
    for (int i = 0; rc == 0 && i < r->nworkers; i++)
        rc = begin_snapshot(r->wd[i], tsnap);
    free(tsnap);
    pgconn_exec(r->dst, "COMMIT");
    r->rounds++;
    return rc < 0 ? tm_fail_ctx(rc, "target: importing the verification snapshot") : 0;
}

/* ---- tasks ------------------------------------------------------------------- */

static VTable *find_table(Run *r, const TableName *n)
{
    for (size_t i = 0; i < r->ntabs; i++)
        if (strcmp(r->tabs[i].def->schema, n->schema) == 0 &&
            strcmp(r->tabs[i].def->name, n->name) == 0)
            return &r->tabs[i];
    return NULL;
}

static void table_error(VTable *t)
{
    if (!t->error)
        t->error = xstrdup(tm_error());
}

static int do_compare(Run *r, PGconn *s, PGconn *d, VTable *t)
{
    int rc;

    if (!t->t_found) {
        t->error = xstrdup(t->t_problem);
        return -ENOENT;
    }
    rc = t->map ? verify_map_compare(s, d, t, &r->th) : verify_compare_table(s, d, t, &r->th);
    /* spot checks look rows up by source key on both sides: not for mapped tables */
    for (size_t i = 0; rc == 0 && !t->map && i < r->rs.nspots; i++) {
        const VSpot *sp = &r->rs.spots[i];
        json_t *found = json_array();
        size_t j;
        json_t *f;

        if (find_table(r, &sp->table) != t) {
            json_decref(found);
            continue;
        }
        rc = verify_spot_check(s, d, t, sp, found);
        /* a row the checksums already caught is listed once */
        json_array_foreach(found, j, f)
        {
            bool seen = false;
            size_t k;
            json_t *e;

            json_array_foreach(t->diffs, k, e)
            {
                if (strcmp(json_string_value(json_object_get(e, "key_text")),
                           json_string_value(json_object_get(f, "key_text"))) == 0) {
                    json_object_set_new(e, "check", json_string("spot"));
                    seen = true;
                }
            }
            if (!seen) {
                json_array_append(t->diffs, f);
                t->ndiffs_total++;
            }
        }
        json_t *chk =
            json_pack("{s:s, s:s, s:I, s:I, s:b}", "check", "spot", "table", t->def->display,
                      "keys", (json_int_t)sp->nkeys, "failures", (json_int_t)json_array_size(found),
                      "ok", json_array_size(found) == 0);
        json_array_append_new(t->checks, chk);
        json_decref(found);
    }
    if (rc < 0)
        table_error(t);
    return rc;
}

static int do_recheck(PGconn *s, PGconn *d, VTable *t)
{
    json_t *still = NULL;
    size_t before = json_array_size(t->diffs), i, k;
    json_t *n, *o;
    int rc = verify_recheck(s, d, t, t->diffs, &still);

    if (rc < 0) {
        json_decref(still);
        table_error(t);
        return rc;
    }
    /* carry the spot-check tag over to the rows that still differ */
    json_array_foreach(still, i, n)
    {
        json_array_foreach(t->diffs, k, o)
        {
            if (json_object_get(o, "check") &&
                strcmp(json_string_value(json_object_get(o, "key_text")),
                       json_string_value(json_object_get(n, "key_text"))) == 0)
                json_object_set(n, "check", json_object_get(o, "check"));
        }
    }
    t->ndiffs_total -= before - json_array_size(still);
    json_decref(t->diffs);
    t->diffs = still;
    return 0;
}

/*
 * The last word on rows that kept differing through every recheck (a row
 * the source rewrites all the time differs at any pair of snapshots, since
 * the target trails the source): the source table is locked in SHARE mode
 * for a moment (writers wait, readers do not; lock_timeout 2 s), so its
 * rows cannot change; once the target's watermark has passed the source's
 * WAL position taken under the lock, the target's copy of the table is the
 * same state, and the two are compared exactly. Without the lock (timeout,
 * privileges), the rows are reported as they are, marked unstable.
 */
static int do_freeze(Run *r, PGconn *s, PGconn *d, VTable *t)
{
    char *sql = xasprintf("BEGIN ISOLATION LEVEL REPEATABLE READ; SET LOCAL lock_timeout = '2s';"
                          " LOCK TABLE %s IN SHARE MODE",
                          t->qsrc);
    char *pos = NULL;
    Lsn lsn = LSN_INVALID;
    int rc;

    pgconn_exec(s, "ROLLBACK");
    pgconn_exec(d, "ROLLBACK");
    rc = pgconn_exec(s, sql);
    free(sql);
    /* the snapshot is taken by this first query, after the lock: it sees every write */
    if (rc == 0)
        rc = query_text(s, "SELECT pg_current_wal_insert_lsn()::text", 0, NULL, &pos);
    if (rc == 0)
        rc = lsn_parse(pos, &lsn);
    free(pos);
    if (rc == 0)
        rc = wait_watermark(r, d, lsn);
    if (rc == 0)
        rc = pgconn_exec(d, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (rc == 0)
        rc = do_recheck(s, d, t);
    pgconn_exec(s, "ROLLBACK"); /* releases the lock */
    pgconn_exec(d, "ROLLBACK");
    if (rc < 0) {
        size_t i;
        json_t *x;

        log_warn("%s: cannot freeze the table to recheck %zu rows: %s", t->def->display,
                 json_array_size(t->diffs), tm_error());
        json_array_foreach(t->diffs, i, x) json_object_set_new(x, "unstable", json_true());
        free(t->error);
        t->error = NULL;
    }
    return 0;
}

static void run_task(Run *r, PGconn *s, PGconn *d, const Task *task, char *line, size_t linesz)
{
    double t0 = clock_mono_secs();
    int rc = 0;

    /* a failed statement must not poison the transaction for the next task */
    pgconn_exec(s, "SAVEPOINT verify_task");
    pgconn_exec(d, "SAVEPOINT verify_task");
    switch (task->kind) {
    case TASK_COMPARE: {
        VTable *t = &r->tabs[task->idx];

        rc = do_compare(r, s, d, t);
        t->seconds += clock_mono_secs() - t0;
        snprintf(line, linesz, "%s: %lld / %lld rows, %zu differences%s%s", t->def->display,
                 t->src_rows, t->dst_rows, t->ndiffs_total, rc < 0 ? ": FAILED: " : "",
                 rc < 0 ? t->error : "");
        break;
    }
    case TASK_RECHECK:
    case TASK_FREEZE: {
        VTable *t = &r->tabs[task->idx];
        size_t before = t->ndiffs_total;

        rc = task->kind == TASK_FREEZE ? do_freeze(r, s, d, t) : do_recheck(s, d, t);
        t->seconds += clock_mono_secs() - t0;
        snprintf(line, linesz, "%s: %s %zu -> %zu differences", t->def->display,
                 task->kind == TASK_FREEZE ? "recheck with the table locked" : "recheck", before,
                 t->ndiffs_total);
        break;
    }
    case TASK_FK:
    case TASK_RULE: {
        json_t *out = NULL;

        if (task->kind == TASK_FK) {
            rc = verify_check_fk(d, &r->fks[task->idx], &out);
        } else {
            const VRule *rule = &r->rs.rules[task->idx];
            VTable *t = find_table(r, &rule->table);

            rc = verify_check_rule(d, t, rule, &out);
        }
        if (rc < 0) {
            json_object_set_new(out, "error", json_string(tm_error()));
            json_object_set_new(out, "ok", json_false());
        }
        r->check_out[task->kind == TASK_FK ? task->idx : r->nfks + task->idx] = out;
        snprintf(line, linesz, "%s %s on %s: %lld failures",
                 json_string_value(json_object_get(out, "check")),
                 task->kind == TASK_FK ? json_string_value(json_object_get(out, "name"))
                                       : json_string_value(json_object_get(out, "rule")),
                 json_string_value(json_object_get(out, "table")),
                 (long long)json_integer_value(json_object_get(out, "failures")));
        break;
    }
    }
    if (rc < 0) {
        pgconn_exec(s, "ROLLBACK TO SAVEPOINT verify_task");
        pgconn_exec(d, "ROLLBACK TO SAVEPOINT verify_task");
    }
}

typedef struct Pool {
    Run *run;
    pthread_mutex_t mu;
    Task *tasks;
    size_t n, next, done;
} Pool;

typedef struct Worker {
    Pool *pool;
    int i;
    pthread_t thread;
    bool started;
} Worker;

static void *worker_main(void *arg)
{
    Worker *w = arg;
    Pool *p = w->pool;

    for (;;) {
        size_t i;
        char line[768] = "";

        pthread_mutex_lock(&p->mu);
        i = p->next++;
        pthread_mutex_unlock(&p->mu);
        if (i >= p->n)
            break;
        run_task(p->run, p->run->ws[w->i], p->run->wd[w->i], &p->tasks[i], line, sizeof(line));
        pthread_mutex_lock(&p->mu);
        p->done++;
        if (p->run->opt->progress)
            fprintf(stderr, "tidemark verify: [%zu/%zu] %s (elapsed %.1f s)\n", p->done, p->n, line,
                    clock_mono_secs() - p->run->t0);
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

static void run_pool(Run *r, Task *tasks, size_t n)
{
    Pool p = {.run = r, .tasks = tasks, .n = n};
    Worker *w = xcalloc((size_t)r->nworkers + 1, sizeof(Worker));

    pthread_mutex_init(&p.mu, NULL);
    for (int i = 0; i < r->nworkers; i++) {
        w[i].pool = &p;
        w[i].i = i;
        w[i].started = pthread_create(&w[i].thread, NULL, worker_main, &w[i]) == 0;
        if (!w[i].started)
            worker_main(&w[i]);
    }
    for (int i = 0; i < r->nworkers; i++)
        if (w[i].started)
            pthread_join(w[i].thread, NULL);
    pthread_mutex_destroy(&p.mu);
    free(w);
}

static int cmp_est(const void *a, const void *b, void *arg)
{
    const VTable *t = arg;
    double x = t[((const Task *)a)->idx].est_rows, y = t[((const Task *)b)->idx].est_rows;

    return x < y ? 1 : x > y ? -1 : 0;
}

/* ---- setup ------------------------------------------------------------------- */

static int open_conns(Run *r)
{
    PGresult *res;
    int rc;

    if (!r->cfg->target.type || strcmp(r->cfg->target.type, "postgres") != 0)
        return tm_fail(-ENOTSUP, "verify needs a postgres target (target.type is %s)",
                       r->cfg->target.type ? r->cfg->target.type : "unset");
    if ((rc = pgconn_open(&r->cfg->source.conn, PGCONN_NORMAL, "source", &r->src)) < 0 ||
        (rc = pgconn_open(&r->cfg->target.conn, PGCONN_NORMAL, "target", &r->dst)) < 0)
        return rc;
    if ((rc = verify_session_setup(r->src)) < 0 || (rc = verify_session_setup(r->dst)) < 0)
        return rc;
    rc = pgconn_query(r->dst, "SELECT gen_random_uuid()::text, now()::text", 0, NULL, &res);
    if (rc < 0)
        return tm_fail_ctx(rc, "target");
    r->run_id = xstrdup(PQgetvalue(res, 0, 0));
    r->started_at = xstrdup(PQgetvalue(res, 0, 1));
    PQclear(res);
    return 0;
}

static int open_workers(Run *r)
{
    int rc = 0;

    r->ws = xcalloc((size_t)r->nworkers, sizeof(PGconn *));
    r->wd = xcalloc((size_t)r->nworkers, sizeof(PGconn *));
    for (int i = 0; i < r->nworkers && rc == 0; i++) {
        if ((rc = pgconn_open(&r->cfg->source.conn, PGCONN_NORMAL, "source", &r->ws[i])) == 0 &&
            (rc = pgconn_open(&r->cfg->target.conn, PGCONN_NORMAL, "target", &r->wd[i])) == 0 &&
            (rc = verify_session_setup(r->ws[i])) == 0)
            rc = verify_session_setup(r->wd[i]);
    }
    return rc;
}

static int resolve(Run *r)
{
    Config view = *r->cfg; /* shallow: only the table list differs */
    VFk *declared = NULL;
    size_t ndecl = 0;
    int rc;

    if (r->opt->ntables) {
        view.source.ntables = r->opt->ntables;
        view.source.tables = r->opt->tables;
    }
    if ((rc = catalog_resolve(r->src, &view, &r->set)) < 0)
        return rc;
    r->ntabs = r->set.n;
    r->tabs = xcalloc(r->ntabs + 1, sizeof(VTable));
    for (size_t i = 0; i < r->ntabs; i++) {
        r->tabs[i].def = &r->set.t[i];
        if ((rc = verify_map_attach(r->cfg->tree, &r->tabs[i])) < 0)
            return rc;
        if ((rc = verify_table_prepare(r->src, r->dst, &r->tabs[i])) < 0)
            return rc;
    }
    if (!r->opt->integrity)
        return 0;
    if ((rc = verify_declared_fks(r->dst, r->tabs, r->ntabs, &declared, &ndecl)) < 0)
        return rc;
    /* declared first, then the implicit ones of the config whose child is verified */
    r->fks = xcalloc(ndecl + r->rs.nfks + 1, sizeof(VFk));
    memcpy(r->fks, declared, ndecl * sizeof(VFk));
    r->nfks = ndecl;
    free(declared);
    for (size_t i = 0; i < r->rs.nfks; i++) {
        const VFk *f = &r->rs.fks[i];
        VFk *c;

        if (!find_table(r, &f->table))
            continue;
        c = &r->fks[r->nfks++];
        c->name = xstrdup(f->name);
        c->table.schema = xstrdup(f->table.schema);
        c->table.name = xstrdup(f->table.name);
        c->ref.schema = xstrdup(f->ref.schema);
        c->ref.name = xstrdup(f->ref.name);
        c->ncols = f->ncols;
        c->cols = xcalloc(f->ncols, sizeof(char *));
        c->ref_cols = xcalloc(f->ncols, sizeof(char *));
        for (size_t k = 0; k < f->ncols; k++) {
            c->cols[k] = xstrdup(f->cols[k]);
            c->ref_cols[k] = xstrdup(f->ref_cols[k]);
        }
    }
    return 0;
}

/* ---- report ------------------------------------------------------------------ */

static const char *strategy_name(VStrategy s)
{
    return s == VS_RANGE      ? "key_ranges"
           : s == VS_HASH_KEY ? "key_hash_buckets"
                              : "row_hash_buckets";
}

static json_t *table_report(const Run *r, VTable *t, json_t *checks)
{
    long long missing = 0, extra = 0, differing = 0, integ = 0;
    size_t i;
    json_t *d, *c;
    bool ok;

    json_array_foreach(t->diffs, i, d)
    {
        const char *k = json_string_value(json_object_get(d, "kind"));
        long long n =
            json_object_get(d, "count") ? json_integer_value(json_object_get(d, "count")) : 1;

        if (strcmp(k, "missing") == 0)
            missing += n;
        else if (strcmp(k, "extra") == 0)
            extra += n;
        else
            differing += n;
    }
    json_array_foreach(checks, i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "table")), t->def->display) == 0)
            integ += json_integer_value(json_object_get(c, "failures"));
    }
    ok = !t->error && t->ndiffs_total == 0 && integ == 0;
    (void)r;
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:I, s:I, s:b, s:I, s:I, s:I, s:I, s:I, s:b, s:O,"
        " s:o, s:I, s:I, s:f}",
        "schema", t->def->schema, "name", t->def->name, "display", t->def->display, "strategy",
        strategy_name(t->strategy), "source_rows", (json_int_t)t->src_rows, "target_rows",
        (json_int_t)t->dst_rows, "ok", ok, "missing", (json_int_t)missing, "extra",
        (json_int_t)extra, "differing", (json_int_t)differing, "differences_total",
        (json_int_t)t->ndiffs_total, "integrity_failures", (json_int_t)integ, "truncated",
        t->ndiffs_total > json_array_size(t->diffs), "differences", t->diffs, "error",
        t->error ? json_string(t->error) : json_null(), "queries", (json_int_t)t->queries,
        "rows_fetched", (json_int_t)t->rows_fetched, "seconds", t->seconds);
}

static json_t *build_report(Run *r)
{
    json_t *tables = json_array(), *checks = json_array();
    long long miss = 0, extra = 0, diff = 0, integ = 0, tok = 0;
    bool ok = true;
    size_t i;
    json_t *t, *c;
    char slsn[32], dlsn[32];

    for (size_t k = 0; k < r->ntabs; k++)
        json_array_extend(checks, r->tabs[k].checks);
    for (size_t k = 0; k < r->nfks + r->rs.nrules; k++)
        if (r->check_out && r->check_out[k])
            json_array_append(checks, r->check_out[k]);
    for (size_t k = 0; k < r->ntabs; k++) {
        json_t *tr = table_report(r, &r->tabs[k], checks);

        if (r->tabs[k].map) {
            json_object_set_new(tr, "strategy", json_string("transformed_merge"));
            json_object_set_new(tr, "target", json_string(verify_map_target(&r->tabs[k])));
        }
        json_array_append_new(tables, tr);
    }
    json_array_foreach(tables, i, t)
    {
        miss += json_integer_value(json_object_get(t, "missing"));
        extra += json_integer_value(json_object_get(t, "extra"));
        diff += json_integer_value(json_object_get(t, "differing"));
        tok += json_is_true(json_object_get(t, "ok"));
        ok &= json_is_true(json_object_get(t, "ok"));
    }
    json_array_foreach(checks, i, c)
    {
        integ += json_integer_value(json_object_get(c, "failures"));
        ok &= json_is_true(json_object_get(c, "ok"));
    }
    snprintf(slsn, sizeof(slsn), LSN_FMT, LSN_ARGS(r->src_lsn));
    snprintf(dlsn, sizeof(dlsn), LSN_FMT, LSN_ARGS(r->dst_lsn));
    return json_pack("{s:i, s:s, s:s, s:s, s:{s:s, s:o, s:b, s:i}, s:f, s:b,"
                     " s:{s:I, s:I, s:I, s:I, s:I, s:I}, s:o, s:o}",
                     "tidemark_verify", 1, "pipeline", r->cfg->pipeline, "run_id", r->run_id,
                     "started_at", r->started_at, "snapshot", "source_lsn", slsn, "target_lsn",
                     r->dst_lsn ? json_string(dlsn) : json_null(), "waited_for_watermark",
                     r->waited, "rounds", r->rounds, "duration_seconds", clock_mono_secs() - r->t0,
                     "ok", ok, "summary", "tables", (json_int_t)r->ntabs, "tables_ok",
                     (json_int_t)tok, "missing", (json_int_t)miss, "extra", (json_int_t)extra,
                     "differing", (json_int_t)diff, "integrity_failures", (json_int_t)integ,
                     "tables", tables, "checks", checks);
}

/* ---- run --------------------------------------------------------------------- */

static int run(Run *r, json_t **report)
{
    Task *tasks;
    size_t nt = 0;
    int rc;

    if ((rc = verify_rules_parse(json_object_get(r->cfg->tree, "verify"), &r->rs)) < 0)
        return rc;
    r->th.rate = r->opt->max_rows_per_s > 0 ? r->opt->max_rows_per_s : r->rs.max_rows_per_s;
    r->th.t0 = clock_mono_secs();
    if ((rc = open_conns(r)) < 0 || (rc = resolve(r)) < 0)
        return rc;
    log_debug("verify: connected, %zu tables resolved (%.3f s)", r->ntabs,
              clock_mono_secs() - r->t0);
    r->nworkers = r->opt->jobs > 0 ? r->opt->jobs : (int)r->rs.jobs;
    if (r->nworkers < 1)
        r->nworkers = 1;
    if ((size_t)r->nworkers > r->ntabs + r->nfks + r->rs.nrules)
        r->nworkers = (int)(r->ntabs + r->nfks + r->rs.nrules);
    if ((rc = open_workers(r)) < 0)
        return rc;
    log_debug("verify: %d worker pairs connected (%.3f s)", r->nworkers, clock_mono_secs() - r->t0);
    if ((rc = open_round(r)) < 0)
        return rc;
    log_debug("verify: snapshots open (%.3f s)", clock_mono_secs() - r->t0);
    if (r->opt->progress)
        fprintf(stderr,
                "tidemark verify: %zu tables, %d jobs, source snapshot at " LSN_FMT
                ", target at " LSN_FMT "\n",
                r->ntabs, r->nworkers, LSN_ARGS(r->src_lsn), LSN_ARGS(r->dst_lsn));

    tasks = xcalloc(r->ntabs + r->nfks + r->rs.nrules + 1, sizeof(Task));
    r->check_out = xcalloc(r->nfks + r->rs.nrules + 1, sizeof(json_t *));
    for (size_t i = 0; i < r->ntabs; i++)
        tasks[nt++] = (Task){TASK_COMPARE, i};
    qsort_r(tasks, nt, sizeof(Task), cmp_est, r->tabs); /* largest first */
    for (size_t i = 0; r->opt->integrity && i < r->nfks; i++)
        tasks[nt++] = (Task){TASK_FK, i};
    for (size_t i = 0; r->opt->integrity && i < r->rs.nrules; i++)
        if (find_table(r, &r->rs.rules[i].table))
            tasks[nt++] = (Task){TASK_RULE, i};
    run_pool(r, tasks, nt);
    log_debug("verify: tables compared, checks run (%.3f s)", clock_mono_secs() - r->t0);

    /* rows that differ may have changed after the snapshot: reread them at fresh ones */
    for (long round = 0; round < r->rs.recheck_rounds; round++) {
        nt = 0;
        for (size_t i = 0; i < r->ntabs; i++)
            if (!r->tabs[i].error && json_array_size(r->tabs[i].diffs))
                tasks[nt++] = (Task){TASK_RECHECK, i};
        if (!nt)
            break;
        if ((rc = open_round(r)) < 0)
            break;
        if (r->opt->progress)
            fprintf(stderr, "tidemark verify: recheck round %d at source " LSN_FMT "\n", r->rounds,
                    LSN_ARGS(r->src_lsn));
        run_pool(r, tasks, nt);
        log_debug("verify: recheck round %d done (%.3f s)", r->rounds, clock_mono_secs() - r->t0);
    }
    if (rc == 0 && !r->opt->no_wait) {
        nt = 0;
        for (size_t i = 0; i < r->ntabs; i++)
            if (!r->tabs[i].error && json_array_size(r->tabs[i].diffs))
                tasks[nt++] = (Task){TASK_FREEZE, i};
        if (nt)
            run_pool(r, tasks, nt);
    }
    free(tasks);
    if (rc < 0)
        return rc;
    for (int i = 0; i < r->nworkers; i++) {
        pgconn_exec(r->ws[i], "ROLLBACK");
        pgconn_exec(r->wd[i], "ROLLBACK");
    }
    *report = build_report(r);
    verify_read_baseline(r->dst, r->cfg->pipeline, json_object_get(*report, "tables"));
    if (r->opt->store && (rc = verify_store(r->dst, r->cfg->pipeline, *report)) < 0)
        return rc;
    log_debug("verify: report built%s (%.3f s)", r->opt->store ? " and stored" : "",
              clock_mono_secs() - r->t0);
    return 0;
}

static void cleanup(Run *r)
{
    for (int i = 0; i < r->nworkers; i++) {
        if (r->ws && r->ws[i])
            PQfinish(r->ws[i]);
        if (r->wd && r->wd[i])
            PQfinish(r->wd[i]);
    }
    free(r->ws);
    free(r->wd);
    if (r->src)
        PQfinish(r->src);
    if (r->dst)
        PQfinish(r->dst);
    for (size_t i = 0; i < r->ntabs; i++)
        verify_table_release(&r->tabs[i]);
    free(r->tabs);
    tableset_release(&r->set);
    for (size_t i = 0; i < r->nfks; i++)
        verify_fk_release(&r->fks[i]);
    free(r->fks);
    for (size_t i = 0; r->check_out && i < r->nfks + r->rs.nrules; i++)
        json_decref(r->check_out[i]);
    free(r->check_out);
    verify_rules_release(&r->rs);
    pthread_mutex_destroy(&r->th.mu);
    free(r->run_id);
    free(r->started_at);
}

int verify_run(const Config *cfg, const VerifyOptions *opt, json_t **report)
{
    Run r;
    int rc;

    memset(&r, 0, sizeof(r));
    r.cfg = cfg;
    r.opt = opt;
    r.t0 = clock_mono_secs();
    pthread_mutex_init(&r.th.mu, NULL);
    *report = NULL;
    rc = run(&r, report);
    cleanup(&r);
    return rc;
}

bool verify_report_ok(const json_t *report)
{
    return json_is_true(json_object_get(report, "ok"));
}

int verify_format_parse(const char *s, VerifyFormat *out)
{
    if (strcmp(s, "text") == 0)
        *out = VERIFY_FMT_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = VERIFY_FMT_JSON;
    else if (strcmp(s, "markdown") == 0 || strcmp(s, "md") == 0)
        *out = VERIFY_FMT_MARKDOWN;
    else
        return tm_fail(-EINVAL, "unknown format \"%s\" (text, json, markdown)", s);
    return 0;
}

char *verify_render(const json_t *report, VerifyFormat fmt)
{
    Buf b = BUF_INIT;

    if (fmt == VERIFY_FMT_JSON) {
        char *s = json_dumps(report, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

        if (!s)
            xalloc_die();
        buf_puts(&b, s);
        buf_putc(&b, '\n');
        free(s);
    } else if (fmt == VERIFY_FMT_MARKDOWN) {
        verify_render_markdown(report, &b);
    } else {
        verify_render_text(report, &b);
    }
    buf_cstr(&b);
    return b.data;
}
