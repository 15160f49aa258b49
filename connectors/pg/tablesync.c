/*
 * Table-sync workers (see tablesync.h). A worker that takes a table plans
 * its parts (or loads the stored plan), takes an exact snapshot (a temporary
 * slot's, or the one it took for its previous table while that is recent),
 * queues the table's other parts for idle workers and copies one part
 * itself. The slot's connection stays idle, holding the snapshot, until no
 * part and no worker needs it; then the temporary slot vanishes with it.
 * Work queues are protected by one mutex; events go to the main loop.
 */
#include "connectors/pg/tablesync.h"
#include "connectors/pg/idmap.h"
#include "connectors/pg/pgconn.h"
#include "connectors/pg/repl.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/arena.h"
#include "core/copytext.h"
#include "core/log.h"
#include "core/transform/mapping.h"
#include "core/xmalloc.h"
#include "core/clock.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_PARTS 1024
/* With one copy job, tables up to this many parts are copied whole. */
#define ONE_JOB_WHOLE_PARTS 8

/* A temporary slot's exported snapshot, shared by the tables copied in it. */
typedef struct Snap {
    ReplConn *holder; /* idle replication session keeping the snapshot */
    char *snapshot;
    Lsn lsn;
    double taken; /* monotonic seconds */
    int refs;     /* tables using it, plus the worker keeping it; under mu */
} Snap;

typedef struct SnapCtx {
    int table_idx;
    Snap *snap;
    int remaining;
    CopyPart *parts; /* the table's plan */
    int nparts;
} SnapCtx;

typedef struct PartJob {
    SnapCtx *ctx;
    int part; /* index into ctx->parts */
} PartJob;

typedef struct Worker {
    TableSync *ts;
    pthread_t thread;
    int id;
    PGconn *src;
    Snap *keep;  /* its last snapshot, for its next table */
    bool rested; /* released what it keeps since its last job */
} Worker;

struct TableSync {
    const Config *cfg;
    Sink *sink;
    const TableSet *tabs;
    void (*notify)(void *arg);
    void *notify_arg;
    int jobs;
    Worker *workers;
    bool started;

    pthread_mutex_t mu;
    pthread_cond_t cond;
    int *tables; /* FIFO of table indexes */
    size_t ntables, tables_cap;
    PartJob *parts; /* FIFO of part jobs */
    size_t nparts, parts_cap;
    TableSyncEvent *events;
    size_t nevents, events_cap;
    int busy; /* workers inside a job */
    bool stopping;
    atomic_bool cancel;
    atomic_uint slot_seq;
    TableSyncProgress *progress;
};

/* Call with mu held. */
static void push_event(TableSync *ts, const TableSyncEvent *ev)
{
    if (ts->nevents == ts->events_cap) {
        ts->events_cap = ts->events_cap ? 2 * ts->events_cap : 16;
        ts->events = xrealloc(ts->events, ts->events_cap * sizeof(*ts->events));
    }
    ts->events[ts->nevents++] = *ev;
}

static void emit(TableSync *ts, const TableSyncEvent *ev)
{
    pthread_mutex_lock(&ts->mu);
    push_event(ts, ev);
    pthread_mutex_unlock(&ts->mu);
    if (ts->notify)
        ts->notify(ts->notify_arg);
}

static int ensure_source(Worker *w)
{
    int rc;

    if (w->src && PQstatus(w->src) == CONNECTION_OK)
        return 0;
    if (w->src)
        PQfinish(w->src);
    w->src = NULL;
    rc = pgconn_open(&w->ts->cfg->source.conn, PGCONN_NORMAL, "source", &w->src);
    if (rc < 0)
        return rc;
    if (PQsetClientEncoding(w->src, PQparameterStatus(w->src, "server_encoding")) != 0)
        return tm_fail(-EIO, "source: cannot set client_encoding");
    return 0;
}

/* ---- planning ------------------------------------------------------------ */

static int single_int_key(const TableDef *t)
{
    int key = -1;

    if (!(t->has_pk && t->replident == 'd') && t->replident != 'i')
        return -1;
    for (size_t i = 0; i < t->ncols; i++) {
        if (!t->cols[i].is_key)
            continue;
        if (key >= 0)
            return -1; /* composite */
        key = (int)i;
    }
    if (key < 0)
        return -1;
    uint32_t oid = t->cols[key].type_oid;
    return oid == 20 || oid == 21 || oid == 23 ? key : -1; /* int8, int2, int4 */
}

static int plan_leaves(PGconn *src, const TableDef *t, CopyPart **out, int *n)
{
    char oidbuf[16];
    const char *params[1] = {oidbuf};
    PGresult *res;
    int rc;

    snprintf(oidbuf, sizeof(oidbuf), "%u", t->oid);
    rc = pgconn_query(src,
                      "SELECT n.nspname, c.relname FROM pg_partition_tree($1::oid::regclass) p"
                      " JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n"
                      " ON n.oid = c.relnamespace WHERE p.isleaf ORDER BY 1, 2",
                      1, params, &res);
    if (rc < 0)
        return rc;
    *n = PQntuples(res);
    if (*n > MAX_PARTS) {
        PQclear(res);
        return tm_fail(-E2BIG, "%s has more than %d partitions", t->display, MAX_PARTS);
    }
    *out = xcalloc((size_t)*n + 1, sizeof(CopyPart));
    for (int i = 0; i < *n; i++) {
        (*out)[i].index = i;
        (*out)[i].kind = PART_LEAF;
        (*out)[i].leaf_schema = xstrdup(PQgetvalue(res, i, 0));
        (*out)[i].leaf_name = xstrdup(PQgetvalue(res, i, 1));
    }
    PQclear(res);
    if (*n == 0) { /* no partitions yet: one empty part reading the root */
        free(*out);
        *out = xcalloc(1, sizeof(CopyPart));
        (*out)[0].kind = PART_WHOLE;
        *n = 1;
    }
    return 0;
}

static void split_range(CopyPart *parts, int n, PartKind kind, int64_t lo, int64_t hi)
{
    /* [lo, hi] inclusive of the observed values; ends open so later rows fit. */
    __int128 span = (__int128)hi - lo + 1;

    for (int i = 0; i < n; i++) {
        parts[i].index = i;
        parts[i].kind = kind;
        parts[i].lo = i == 0 ? INT64_MIN : (int64_t)(lo + span * i / n);
        parts[i].hi = i == n - 1 ? INT64_MAX : (int64_t)(lo + span * (i + 1) / n);
    }
}

static int plan_parts(PGconn *src, Sink *sink, const Config *cfg, int jobs, const TableDef *t,
                      CopyPart **out, int *n, long long *est_rows)
{
    char oidbuf[16];
    const char *params[1] = {oidbuf};
    PGresult *res;
    long long size, blocks;
    int rc, key;

    snprintf(oidbuf, sizeof(oidbuf), "%u", t->oid);
    rc = pgconn_query(src,
                      "SELECT pg_table_size(c.oid), greatest(c.reltuples, 0)::bigint,"
                      " pg_relation_size(c.oid) / current_setting('block_size')::int"
                      " FROM pg_class c WHERE c.oid = $1::oid",
                      1, params, &res);
    if (rc < 0)
        return rc;
    size = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    *est_rows = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    blocks = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    PQclear(res);

    if (t->relkind == 'p')
        return plan_leaves(src, t, out, n);

    long long part_bytes = cfg->copy.part_size_mb * 1024LL * 1024LL;
    int want = (int)((size + part_bytes - 1) / part_bytes);
    /* A multiple of the jobs, so no part is left to run alone at the end. */
    if (want > 1 && jobs > 1)
        want = (want + jobs - 1) / jobs * jobs;
    if (want > MAX_PARTS)
        want = MAX_PARTS;
    key = single_int_key(t);
    /* One job copies parts one after the other: they buy no speed, only a
     * smaller redo after a crash (key parts; CTID parts are redone together,
     * so not even that), and cost 20-40% more source CPU than one scan
     * (range scans; docs/BENCHMARKS.md, issue 17). Up to this many parts'
     * worth of redo is accepted for that. */
    if (jobs == 1 && (key < 0 || want <= ONE_JOB_WHOLE_PARTS))
        want = 1;
    if (want <= 1) {
        *out = xcalloc(1, sizeof(CopyPart));
        (*out)[0].kind = PART_WHOLE;
        *n = 1;
        return 0;
    }
    if (key >= 0 && sink->ops->copy_key_indexed) {
        bool indexed = false;

        rc = sink->ops->copy_key_indexed(sink, t, t->cols[key].name, &indexed);
        if (rc < 0)
            return rc;
        if (indexed) {
            /* One COPY fills the index in key order at its right edge;
             * parallel key ranges would split its pages in the middle, and
             * a ctid split of a table loaded in key order does the same. */
            log_write(LOG_LVL_INFO, t->display, LSN_INVALID,
                      "initial copy in one part: the target indexes the key %s, which %d"
                      " parallel parts would fill at %d places at once",
                      t->cols[key].name, want, want);
            *out = xcalloc(1, sizeof(CopyPart));
            (*out)[0].kind = PART_WHOLE;
            *n = 1;
            return 0;
        }
    }
    if (key >= 0) {
        char *q = pgconn_qualified(src, t->schema, t->name);
        char *k = pgconn_ident(src, t->cols[key].name);
        char *sql = xasprintf("SELECT min(%s)::text, max(%s)::text FROM ONLY %s", k, k, q);

        rc = pgconn_query(src, sql, 0, NULL, &res);
        free(q);
        free(k);
        free(sql);
        if (rc < 0)
            return rc;
        if (!PQgetisnull(res, 0, 0)) {
            int64_t lo = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
            int64_t hi = strtoll(PQgetvalue(res, 0, 1), NULL, 10);

            PQclear(res);
            *out = xcalloc((size_t)want, sizeof(CopyPart));
            split_range(*out, want, PART_KEY, lo, hi);
            *n = want;
            return 0;
        }
        PQclear(res);
    }
    *out = xcalloc((size_t)want, sizeof(CopyPart));
    split_range(*out, want, PART_CTID, 0, blocks > 0 ? blocks - 1 : 0);
    (*out)[0].lo = 0;
    *n = want;
    return 0;
}

/* ---- copying one part ---------------------------------------------------- */

static char *part_sql(PGconn *conn, const TableDef *t, const CopyPart *p)
{
    Buf b = BUF_INIT;
    char *q;

    buf_puts(&b, "COPY (SELECT ");
    for (size_t i = 0; i < t->ncols; i++) {
        char *col = pgconn_ident(conn, t->cols[i].name);

        buf_printf(&b, "%s%s", i ? ", " : "", col);
        free(col);
    }
    /* COPY takes no parameters: only bounds tidemark computed itself (integers)
     * and quoted identifiers are put in this text. */
    if (p->kind == PART_LEAF) {
        q = pgconn_qualified(conn, p->leaf_schema, p->leaf_name);
        buf_printf(&b, " FROM ONLY %s", q);
    } else {
        q = pgconn_qualified(conn, t->schema, t->name);
        /* ONLY: inheritance children are tables of their own; a partitioned
         * table's rows are read through its root. */
        buf_printf(&b, " FROM %s%s", t->relkind == 'p' ? "" : "ONLY ", q);
    }
    free(q);
    if (p->kind == PART_KEY) {
        int key = single_int_key(t);
        char *k = pgconn_ident(conn, t->cols[key].name);
        const char *sep = " WHERE ";

        if (p->lo != INT64_MIN) {
            buf_printf(&b, "%s%s >= %lld", sep, k, (long long)p->lo);
            sep = " AND ";
        }
        if (p->hi != INT64_MAX)
            buf_printf(&b, "%s%s < %lld", sep, k, (long long)p->hi);
        free(k);
    } else if (p->kind == PART_CTID) {
        buf_printf(&b, " WHERE ctid >= '(%lld,0)'::tid", (long long)p->lo);
        if (p->hi != INT64_MAX)
            buf_printf(&b, " AND ctid < '(%lld,0)'::tid", (long long)p->hi);
    }
    buf_puts(&b, ") TO STDOUT");
    return b.data;
}

static void add_progress(TableSync *ts, int idx, long long rows, long long bytes, long long dead)
{
    pthread_mutex_lock(&ts->mu);
    ts->progress[idx].rows += rows;
    ts->progress[idx].bytes += bytes;
    /* Counted as seen (the part commits them later): the early-error guard
     * must not wait for the end of a large part. */
    ts->progress[idx].dead_letters += dead;
    pthread_mutex_unlock(&ts->mu);
    /* The loop checks copy.max_errors_early on events: a table copied in one
     * part has none until it ends, past the first tenth of the load. */
    if (dead > 0 && ts->notify)
        ts->notify(ts->notify_arg);
}

/*
 * A table's mapping on the copy path: the plan compiled for the source
 * table's catalog shape (the stream compiles the same config for the
 * Relation message's shape), the target the rows go to, and this worker's
 * parser state and output buffer.
 */
typedef struct CopyMap {
    MappingPlan *plan;
    TableDef target;
    RelInfo src; /* names only, for dead letters' JSON */
    CopyText ct;
    Arena *arena;
    Buf out;
    long long filtered, dead;
    IdMapLookup *idmap; /* id_map steps: this worker's own target lookups */
} CopyMap;

static void copymap_release(CopyMap *m)
{
    mapping_free(m->plan);
    idmap_lookup_free(m->idmap);
    tabledef_release(&m->target);
    free(m->src.cols);
    copytext_release(&m->ct);
    arena_free(m->arena);
    buf_release(&m->out);
}

static int copymap_init(CopyMap *m, const Config *cfg, const TableDef *t)
{
    int rc;

    memset(m, 0, sizeof(*m));
    rc = mapping_compile_for_table(cfg->tree, t, &m->plan);
    if (rc < 0)
        return tm_fail_ctx(rc, "mapping of %s", t->display);
    if (!m->plan)
        return 0;
    if (mapping_uses_id_lookup(m->plan)) {
        idmap_lookup_new(&cfg->target.conn, &m->idmap);
        mapping_set_id_lookup(m->plan, idmap_lookup_fn, m->idmap);
    }
    mapping_target_tabledef(m->plan, &m->target);
    m->src.schema = t->schema;
    m->src.name = t->name;
    m->src.ncols = (uint16_t)t->ncols;
    m->src.cols = xcalloc(t->ncols ? t->ncols : 1, sizeof(RelColumn));
    for (size_t i = 0; i < t->ncols; i++)
        m->src.cols[i].name = t->cols[i].name;
    m->arena = arena_new(64 * 1024);
    m->ct = (CopyText)COPYTEXT_INIT;
    return 0;
}

/* Sends the mapped rows gathered so far. */
static int copymap_flush(CopyMap *m, Sink *sink, SinkCopy *sc)
{
    int rc = 0;

    if (m->out.len)
        rc = sink->ops->copy_rows(sc, m->out.data, m->out.len);
    buf_clear(&m->out);
    return rc;
}

/*
 * One source COPY row through the mapping: appended to the output, counted
 * as filtered, or (on_error: dead_letter, and only for the row's own data
 * errors) handed to the sink with its source row. on_error: stop, and any
 * environment failure (the id_map lookup's connection, a target error),
 * fail the part: it rolls back and is copied again on the next start.
 */
static int copymap_row(CopyMap *m, Sink *sink, SinkCopy *sc, const char *row, size_t len)
{
    bool filtered = false;
    int rc;

    arena_reset(m->arena);
    rc = mapping_apply_copy_row(m->plan, &m->ct, row, len, m->arena, &m->out, &filtered);
    if (rc == 0) {
        m->filtered += filtered;
        return m->out.len >= 256 * 1024 ? copymap_flush(m, sink, sc) : 0;
    }
    if (!mapping_error_is_data(rc))
        /* Not -ENOTCONN: on the loop that means "reconnect the stream", and this part would
         * never be copied again; the stop is what retries it (on the next start). */
        return tm_fail_ctx(rc == -ENOTCONN ? -EIO : rc,
                           "the initial copy stops (the row is not dead-lettered: the target"
                           " failed, not the row; restart to copy the part again)");
    if (mapping_on_error(m->plan) != MAPPING_ON_ERROR_DEAD_LETTER)
        return rc;
    if (!sink->ops->copy_dead_letter)
        return tm_fail_ctx(rc, "the %s target cannot store dead letters", sink->ops->name);

    char *err = xstrdup(tm_error());
    Buf json = BUF_INIT;
    Tuple t;

    if (copytext_parse(&m->ct, row, len, m->src.ncols, &t) == 0)
        mapping_row_json(&m->src, &t, &json);
    else
        buf_puts(&json, "null");
    rc = sink->ops->copy_dead_letter(sc, buf_cstr(&json), err);
    buf_release(&json);
    free(err);
    m->dead++;
    return rc;
}

static void cancel_copy(PGconn *src)
{
    PGcancel *c = PQgetCancel(src);
    char errbuf[256];
    char *row;
    PGresult *res;

    if (c) {
        PQcancel(c, errbuf, sizeof(errbuf));
        PQfreeCancel(c);
    }
    while (PQgetCopyData(src, &row, 0) > 0)
        PQfreemem(row);
    while ((res = PQgetResult(src)) != NULL)
        PQclear(res);
}

static int copy_part(Worker *w, SnapCtx *ctx, const CopyPart *part)
{
    TableSync *ts = w->ts;
    const TableDef *t = &ts->tabs->t[ctx->table_idx];
    Sink *sink = ts->sink;
    SinkCopy *sc = NULL;
    CopyMap map = {0};
    char *sql, *lit, *row = NULL;
    long long rows = 0, bytes = 0, prows = 0, pbytes = 0, pdead = 0;
    PGresult *res;
    int n, rc;

    rc = ensure_source(w);
    if (rc < 0)
        return rc;
    lit = PQescapeLiteral(w->src, ctx->snap->snapshot, strlen(ctx->snap->snapshot));
    sql = xasprintf("SET TRANSACTION SNAPSHOT %s", lit ? lit : "''");
    PQfreemem(lit);
    rc = pgconn_exec(w->src, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (rc == 0)
        rc = pgconn_exec(w->src, sql);
    free(sql);
    if (rc < 0) {
        PQclear(PQexec(w->src, "ROLLBACK"));
        return tm_fail_ctx(rc, "source: importing the copy snapshot of %s", t->display);
    }
    sql = part_sql(w->src, t, part);
    res = PQexec(w->src, sql);
    free(sql);
    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        rc = tm_fail(-EIO, "source: COPY TO STDOUT of %s: %s", t->display,
                     pgconn_errmsg(w->src, res));
        PQclear(res);
        goto out;
    }
    PQclear(res);
    rc = copymap_init(&map, ts->cfg, t);
    if (rc == 0 && map.plan && !sink->ops->copy_open_part)
        rc = tm_fail(-ENOTSUP, "%s: the %s target does not support mappings", t->display,
                     sink->ops->name);
    if (rc == 0)
        rc = sink->ops->copy_open_part
                 ? sink->ops->copy_open_part(sink, t, map.plan ? &map.target : NULL, part,
                                             ctx->snap->lsn, &sc)
                 : sink->ops->copy_open(sink, t, ctx->snap->lsn, &sc);
    if (rc < 0) {
        cancel_copy(w->src);
        goto out;
    }
    while ((n = PQgetCopyData(w->src, &row, 0)) > 0) {
        rc = map.plan ? copymap_row(&map, sink, sc, row, (size_t)n)
                      : sink->ops->copy_rows(sc, row, (size_t)n);
        PQfreemem(row);
        if (rc == 0 && atomic_load(&ts->cancel))
            rc = tm_fail(-ECANCELED, "initial copy of %s cancelled", t->display);
        if (rc < 0) {
            cancel_copy(w->src);
            goto out;
        }
        rows++;
        bytes += n;
        if (rows - prows >= 4096) {
            add_progress(ts, ctx->table_idx, rows - prows, bytes - pbytes, map.dead - pdead);
            prows = rows;
            pbytes = bytes;
            pdead = map.dead;
        }
    }
    if (n == -2) {
        rc = tm_fail(-EIO, "source: COPY of %s: %s", t->display, pgconn_errmsg(w->src, NULL));
        goto out;
    }
    while ((res = PQgetResult(w->src)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0)
            rc = tm_fail(-EIO, "source: COPY of %s: %s", t->display, pgconn_errmsg(w->src, res));
        PQclear(res);
    }
    if (rc == 0 && map.plan)
        rc = copymap_flush(&map, sink, sc);
    if (rc == 0)
        rc = sink->ops->copy_finish(sc, true);
out:
    add_progress(ts, ctx->table_idx, rows - prows, bytes - pbytes, map.dead - pdead);
    if (rc == 0 && (map.filtered || map.dead)) {
        pthread_mutex_lock(&ts->mu);
        ts->progress[ctx->table_idx].filtered += map.filtered;
        pthread_mutex_unlock(&ts->mu);
        if (map.dead)
            log_write(LOG_LVL_WARNING, t->display, ctx->snap->lsn,
                      "%lld copied rows could not be transformed: see tidemark.dead_letter",
                      map.dead);
    }
    copymap_release(&map);
    if (sc) {
        if (rc < 0)
            sink->ops->copy_finish(sc, false);
        sink->ops->copy_free(sc);
    }
    PQclear(PQexec(w->src, rc == 0 ? "COMMIT" : "ROLLBACK"));
    if (rc == 0) {
        TableSyncEvent ev = {.kind = TSE_PART, .table_idx = ctx->table_idx};

        ev.part = *part;
        ev.part.leaf_schema = ev.part.leaf_name = NULL;
        ev.part.synced = true;
        ev.part.sync_lsn = ctx->snap->lsn;
        ev.part.rows = rows;
        emit(ts, &ev);
    }
    return rc;
}

/* Drops the snapshot and, closing its holder, the temporary slot. */
static void snap_free(Snap *snap)
{
    repl_free(snap->holder);
    free(snap->snapshot);
    free(snap);
}

/* The last user of a snapshot drops it. */
static void snap_unref(TableSync *ts, Snap *snap)
{
    bool last;

    if (!snap)
        return;
    pthread_mutex_lock(&ts->mu);
    last = --snap->refs == 0;
    pthread_mutex_unlock(&ts->mu);
    if (last)
        snap_free(snap);
}

/* The table's last part releases its snapshot. */
static void part_done(TableSync *ts, SnapCtx *ctx)
{
    bool last;

    pthread_mutex_lock(&ts->mu);
    last = --ctx->remaining == 0;
    if (last)
        ts->progress[ctx->table_idx].finished = clock_mono_secs();
    ts->progress[ctx->table_idx].parts_done++;
    pthread_cond_broadcast(&ts->cond);
    pthread_mutex_unlock(&ts->mu);
    if (!last)
        return;
    snap_unref(ts, ctx->snap);
    copyparts_free(ctx->parts, ctx->nparts);
    free(ctx);
}

/* ---- taking a table ------------------------------------------------------ */

static int load_plan(Worker *w, int idx, CopyPart **parts, int *n, long long *est)
{
    TableSync *ts = w->ts;
    Sink *sink = ts->sink;
    const TableDef *t = &ts->tabs->t[idx];
    bool reset = false;
    int rc;

    *parts = NULL;
    *n = 0;
    *est = 0;
    if (!sink->ops->parts_load) {
        bool synced;
        Lsn lsn;

        rc = sink->ops->table_state(sink, t, &synced, &lsn);
        if (rc == 0 && !synced)
            rc = sink->ops->check_table(sink, t, true);
        if (rc < 0)
            return rc;
        *parts = xcalloc(1, sizeof(CopyPart));
        (*parts)[0].kind = PART_WHOLE;
        (*parts)[0].synced = synced;
        (*parts)[0].sync_lsn = lsn;
        *n = 1;
        return 0;
    }
    rc = sink->ops->parts_load(sink, t, parts, n);
    if (rc < 0)
        return rc;
    if (*n == 0) {
        free(*parts);
        *parts = NULL;
        /* Never planned: the table must not hold rows a copy would duplicate. */
        rc = sink->ops->check_table(sink, t, true);
        if (rc == 0)
            rc = plan_parts(w->src, sink, ts->cfg, ts->jobs, t, parts, n, est);
        if (rc == 0)
            rc = sink->ops->parts_plan(sink, t, *parts, *n, false);
        return rc;
    }
    /* Parts that share a snapshot restart together; key parts one by one. */
    for (int i = 0; i < *n; i++)
        if (!(*parts)[i].synced && (*parts)[i].kind != PART_KEY)
            reset = true;
    if (reset) {
        log_write(LOG_LVL_INFO, t->display, LSN_INVALID,
                  "initial copy was interrupted; copying the whole table again");
        for (int i = 0; i < *n; i++)
            (*parts)[i].synced = false;
        rc = sink->ops->parts_plan(sink, t, *parts, *n, true);
    }
    return rc;
}

/* A copy slot waits for the transactions open on the source: say which, and
 * give up when the pipeline stops. */
typedef struct CopyWait {
    TableSync *ts;
    PGconn *src;
    const char *slot;
} CopyWait;

static bool copy_stop(void *arg)
{
    return atomic_load(&((CopyWait *)arg)->ts->cancel);
}

static void copy_waiting(void *arg, double seconds)
{
    const CopyWait *cw = arg;

    repl_log_open_transactions(cw->src, cw->slot, seconds);
}

/* The worker no longer keeps its snapshot for a next table. */
static void worker_drop_keep(Worker *w)
{
    snap_unref(w->ts, w->keep);
    w->keep = NULL;
}

/*
 * The snapshot for the worker's next table: the one it kept from its
 * previous table while that is recent, else a new temporary slot's (which
 * it then keeps). Either is exact at its LSN, and either is at or after the
 * point where the stream began holding this TableSync's tables.
 */
static int worker_snapshot(Worker *w, const TableDef *t, Snap **out, bool *reused)
{
    TableSync *ts = w->ts;
    Snap *snap = w->keep;
    char name[64];
    int rc;

    /* Creating a temporary slot costs 50-130 ms, a fixed cost per table that
     * made a load of many small tables slow (issue 17); one snapshot serves
     * any table of this TableSync (see tablesync_submit). Bounded by
     * copy.snapshot_reuse_s: a held snapshot holds back the source's vacuum
     * horizon and WAL for as long as it is kept. A holder whose session
     * ended (the source restarted) holds no snapshot: importing it would
     * fail the table instead of taking a new one. Only the keeping worker
     * touches the holder's connection. */
    *reused = snap && clock_mono_secs() - snap->taken < (double)ts->cfg->copy.snapshot_reuse_s &&
              pgconn_alive(repl_pgconn(snap->holder));
    if (*reused) {
        pthread_mutex_lock(&ts->mu);
        snap->refs++;
        pthread_mutex_unlock(&ts->mu);
        *out = snap;
        return 0;
    }
    worker_drop_keep(w);
    snap = xcalloc(1, sizeof(*snap));
    snap->holder = repl_new(ts->cfg);
    /* Unique per snapshot: a worker may take a new one while its previous
     * one is still held for parts other workers copy. */
    snprintf(name, sizeof(name), "tm_sync_%d_%u_%.40s", (int)getpid(),
             atomic_fetch_add(&ts->slot_seq, 1u), ts->cfg->pipeline);
    CopyWait cw = {ts, w->src, name};
    ReplWait wait = {copy_stop, copy_waiting, 5.0, &cw};

    rc = repl_connect(snap->holder);
    if (rc == 0)
        rc = repl_create_slot_wait(snap->holder, name, true, &snap->lsn, &snap->snapshot, &wait);
    if (rc < 0) {
        snap_free(snap);
        return tm_fail_ctx(rc, "creating the copy snapshot of %s", t->display);
    }
    snap->taken = clock_mono_secs();
    snap->refs = 2; /* the table's, and the worker's keep */
    w->keep = snap;
    *out = snap;
    return 0;
}

/* Nothing is queued: what the worker keeps for a next table goes. */
static void worker_rest(Worker *w)
{
    Sink *sink = w->ts->sink;

    worker_drop_keep(w);
    if (sink->ops->copy_idle)
        sink->ops->copy_idle(sink);
}

static int run_table(Worker *w, int idx)
{
    TableSync *ts = w->ts;
    const TableDef *t = &ts->tabs->t[idx];
    CopyPart *parts = NULL;
    SnapCtx *ctx;
    TableSyncEvent ev = {.kind = TSE_PLANNED, .table_idx = idx};
    bool reused;
    int n = 0, npending = 0, first = -1, rc;
    long long est = 0;

    rc = ensure_source(w);
    if (rc == 0)
        rc = load_plan(w, idx, &parts, &n, &est);
    if (rc < 0) {
        copyparts_free(parts, n);
        return tm_fail_ctx(rc, "planning the initial copy of %s", t->display);
    }
    for (int i = 0; i < n; i++)
        if (!parts[i].synced)
            npending++;
    /* The main loop gets its own copy of the plan. */
    ev.nparts = n;
    ev.parts = xcalloc((size_t)n, sizeof(CopyPart));
    for (int i = 0; i < n; i++) {
        ev.parts[i] = parts[i];
        ev.parts[i].leaf_schema = parts[i].leaf_schema ? xstrdup(parts[i].leaf_schema) : NULL;
        ev.parts[i].leaf_name = parts[i].leaf_name ? xstrdup(parts[i].leaf_name) : NULL;
    }
    pthread_mutex_lock(&ts->mu);
    ts->progress[idx].parts_total = n;
    ts->progress[idx].parts_done = n - npending;
    ts->progress[idx].est_rows = est;
    ts->progress[idx].started = clock_mono_secs();
    if (npending == 0)
        ts->progress[idx].finished = ts->progress[idx].started;
    pthread_mutex_unlock(&ts->mu);
    emit(ts, &ev);
    if (npending == 0) {
        copyparts_free(parts, n);
        return 0;
    }

    ctx = xcalloc(1, sizeof(*ctx));
    ctx->table_idx = idx;
    ctx->parts = parts;
    ctx->nparts = n;
    ctx->remaining = npending;
    rc = worker_snapshot(w, t, &ctx->snap, &reused);
    if (rc < 0) {
        copyparts_free(parts, n);
        free(ctx);
        return rc;
    }
    log_write(LOG_LVL_INFO, t->display, ctx->snap->lsn, "initial copy: %d of %d part(s) to copy%s",
              npending, n, reused ? " (in the snapshot of the worker's previous table)" : "");

    pthread_mutex_lock(&ts->mu);
    for (int i = 0; i < n; i++) {
        if (parts[i].synced)
            continue;
        if (first < 0) {
            first = i;
            continue;
        }
        if (ts->nparts == ts->parts_cap) {
            ts->parts_cap = ts->parts_cap ? 2 * ts->parts_cap : 16;
            ts->parts = xrealloc(ts->parts, ts->parts_cap * sizeof(*ts->parts));
        }
        ts->parts[ts->nparts++] = (PartJob){.ctx = ctx, .part = i};
    }
    pthread_cond_broadcast(&ts->cond);
    pthread_mutex_unlock(&ts->mu);

    rc = copy_part(w, ctx, &parts[first]);
    part_done(ts, ctx);
    return rc;
}

static void *worker_main(void *arg)
{
    Worker *w = arg;
    TableSync *ts = w->ts;

    pthread_mutex_lock(&ts->mu);
    for (;;) {
        while (!ts->stopping && ts->nparts == 0 && ts->ntables == 0) {
            if (!w->rested) {
                w->rested = true;
                pthread_mutex_unlock(&ts->mu);
                worker_rest(w);
                pthread_mutex_lock(&ts->mu);
                continue;
            }
            pthread_cond_wait(&ts->cond, &ts->mu);
        }
        if (ts->stopping)
            break;
        int rc;
        w->rested = false;
        ts->busy++;
        if (ts->nparts > 0) {
            /* Parts first: they finish tables whose snapshot is being held. */
            PartJob job = ts->parts[0];

            memmove(ts->parts, ts->parts + 1, --ts->nparts * sizeof(*ts->parts));
            pthread_mutex_unlock(&ts->mu);
            /* At most one snapshot per worker at a time (preflight counts
             * one temporary slot per copy job): a part in another snapshot
             * ends the keep. */
            if (w->keep != job.ctx->snap)
                worker_drop_keep(w);
            rc = copy_part(w, job.ctx, &job.ctx->parts[job.part]);
            part_done(ts, job.ctx);
        } else {
            int idx = ts->tables[0];

            memmove(ts->tables, ts->tables + 1, --ts->ntables * sizeof(*ts->tables));
            pthread_mutex_unlock(&ts->mu);
            rc = run_table(w, idx);
        }
        if (rc < 0 && !atomic_load(&ts->cancel)) {
            TableSyncEvent ev = {.kind = TSE_ERROR, .err = rc};

            snprintf(ev.msg, sizeof(ev.msg), "%s", tm_error());
            emit(ts, &ev);
        }
        pthread_mutex_lock(&ts->mu);
        ts->busy--;
        pthread_cond_broadcast(&ts->cond);
    }
    pthread_mutex_unlock(&ts->mu);
    worker_rest(w);
    if (w->src)
        PQfinish(w->src);
    w->src = NULL;
    return NULL;
}

/* ---- public --------------------------------------------------------------- */

TableSync *tablesync_new(const Config *cfg, Sink *sink, const TableSet *tabs,
                         void (*notify)(void *arg), void *arg)
{
    TableSync *ts = xcalloc(1, sizeof(*ts));
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    ts->cfg = cfg;
    ts->sink = sink;
    ts->tabs = tabs;
    ts->notify = notify;
    ts->notify_arg = arg;
    ts->jobs = cfg->copy.jobs > 0 ? (int)cfg->copy.jobs : (cores > 0 ? (int)cores : 2);
    ts->progress = xcalloc(tabs->n + 1, sizeof(*ts->progress));
    pthread_mutex_init(&ts->mu, NULL);
    pthread_cond_init(&ts->cond, NULL);
    atomic_init(&ts->cancel, false);
    atomic_init(&ts->slot_seq, 0u);
    return ts;
}

int tablesync_jobs(const TableSync *ts)
{
    return ts->jobs;
}

static int start_workers(TableSync *ts)
{
    ts->workers = xcalloc((size_t)ts->jobs, sizeof(Worker));
    for (int i = 0; i < ts->jobs; i++) {
        ts->workers[i].ts = ts;
        ts->workers[i].id = i;
        int err = pthread_create(&ts->workers[i].thread, NULL, worker_main, &ts->workers[i]);
        if (err) {
            ts->jobs = i;
            return tm_fail(-err, "cannot start copy worker: %s", strerror(err));
        }
    }
    ts->started = true;
    return 0;
}

int tablesync_submit(TableSync *ts, int table_idx)
{
    if (!ts->started) {
        int rc = start_workers(ts);

        if (rc < 0)
            return rc;
    }
    pthread_mutex_lock(&ts->mu);
    if (ts->ntables == ts->tables_cap) {
        ts->tables_cap = ts->tables_cap ? 2 * ts->tables_cap : 16;
        ts->tables = xrealloc(ts->tables, ts->tables_cap * sizeof(*ts->tables));
    }
    ts->tables[ts->ntables++] = table_idx;
    ts->progress[table_idx] = (TableSyncProgress){0};
    pthread_cond_broadcast(&ts->cond);
    pthread_mutex_unlock(&ts->mu);
    return 0;
}

int tablesync_poll(TableSync *ts, TableSyncEvent *ev)
{
    int got = 0;

    pthread_mutex_lock(&ts->mu);
    if (ts->nevents > 0) {
        *ev = ts->events[0];
        memmove(ts->events, ts->events + 1, --ts->nevents * sizeof(*ts->events));
        got = 1;
    }
    pthread_mutex_unlock(&ts->mu);
    return got;
}

void tablesync_progress(TableSync *ts, int table_idx, TableSyncProgress *out)
{
    pthread_mutex_lock(&ts->mu);
    *out = ts->progress[table_idx];
    pthread_mutex_unlock(&ts->mu);
}

void tablesync_stop(TableSync *ts)
{
    if (!ts || !ts->started)
        return;
    atomic_store(&ts->cancel, true);
    pthread_mutex_lock(&ts->mu);
    ts->stopping = true;
    pthread_cond_broadcast(&ts->cond);
    pthread_mutex_unlock(&ts->mu);
    for (int i = 0; i < ts->jobs; i++)
        pthread_join(ts->workers[i].thread, NULL);
    ts->started = false;
    /* Parts queued but never started still hold their table's snapshot. */
    while (ts->nparts > 0)
        part_done(ts, ts->parts[--ts->nparts].ctx);
}

void tablesync_free(TableSync *ts)
{
    if (!ts)
        return;
    tablesync_stop(ts);
    for (size_t i = 0; i < ts->nevents; i++)
        copyparts_free(ts->events[i].parts, ts->events[i].nparts);
    free(ts->events);
    free(ts->tables);
    free(ts->parts);
    free(ts->workers);
    free(ts->progress);
    pthread_mutex_destroy(&ts->mu);
    pthread_cond_destroy(&ts->cond);
    free(ts);
}
