/*
 * The profile run (see profile.h): connects to the source, opens a
 * read-only repeatable-read transaction and exports its snapshot so that
 * every worker connection reads the same instant (the baseline counts of
 * all tables belong together), reads the catalogs of both sides, profiles
 * the tables on --jobs connections in parallel (largest first), then checks
 * the relationships the same way, applies the rules, and stores the report
 * on the target. Worker threads only touch their own connection and their
 * own table's JSON; the shared counters sit behind one mutex.
 */
#include "connectors/pg/catalog.h"
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/xmalloc.h"
#include "migration/profile_int.h"
#include "core/clock.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WORK_MEM "64MB" /* enough for the grouping pass to hash in memory on most tables */

typedef struct Run {
    const Config *cfg;
    const ProfileOptions *opt;
    ProfCtx ctx;
    PGconn *src, *dst;
    PGconn **workers;
    int nworkers;
    char *snapshot, *taken_at, *src_db, *src_version, *dst_db, *dst_encoding;
    TableSet set;
    ProfTable *tabs;
    size_t ntabs;
    json_t *fks, *rel, *placeholders;
    json_t *matviews; /* materialized views the tables feed */
    size_t *order;    /* table indexes, largest first, so the last to finish is a small one */
    double t0;
} Run;

/* ---- connections ---------------------------------------------------------- */

static int query_value(PGconn *c, const char *sql, char **out)
{
    PGresult *res;
    int rc = pgconn_query(c, sql, 0, NULL, &res);

    if (rc < 0)
        return rc;
    *out = xstrdup(PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return 0;
}

/* Same client encoding, time zone and date style on every connection. */
static int session_setup(PGconn *c, const ProfCtx *ctx)
{
    if (PQsetClientEncoding(c, ctx->sql_ascii ? "SQL_ASCII" : "UTF8") != 0)
        return tm_fail(-EIO, "cannot set the client encoding: %s", pgconn_errmsg(c, NULL));
    return pgconn_exec(c, "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD';"
                          " SET IntervalStyle = 'iso_8601'");
}

static int open_worker(Run *r, PGconn **out)
{
    char *lit = PQescapeLiteral(r->src, r->snapshot, strlen(r->snapshot));
    char *sql;
    int rc;

    if (!lit)
        xalloc_die();
    sql = xasprintf("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
                    " SET TRANSACTION SNAPSHOT %s; SET LOCAL work_mem = '" WORK_MEM "'",
                    lit);
    PQfreemem(lit);
    rc = pgconn_open(&r->cfg->source.conn, PGCONN_NORMAL, "source", out);
    if (rc == 0 && (rc = session_setup(*out, &r->ctx)) == 0)
        rc = pgconn_exec(*out, sql);
    free(sql);
    if (rc < 0 && *out) {
        PQfinish(*out);
        *out = NULL;
    }
    return rc < 0 ? tm_fail_ctx(rc, "source: opening a profile connection") : 0;
}

static int open_source(Run *r)
{
    char *enc = NULL;
    PGresult *res;
    int rc = pgconn_open(&r->cfg->source.conn, PGCONN_NORMAL, "source", &r->src);

    if (rc < 0)
        return rc;
    if ((rc = query_value(r->src, "SHOW server_encoding", &enc)) < 0)
        return rc;
    r->ctx.encoding = enc;
    r->ctx.sql_ascii = strcmp(enc, "SQL_ASCII") == 0;
    if ((rc = session_setup(r->src, &r->ctx)) < 0)
        return rc;
    rc = pgconn_exec(r->src, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (rc == 0)
        rc = pgconn_query(r->src,
                          "SELECT pg_export_snapshot(), now()::text, current_database(),"
                          " current_setting('server_version')",
                          0, NULL, &res);
    if (rc < 0)
        return tm_fail_ctx(rc, "source: taking the snapshot");
    r->snapshot = xstrdup(PQgetvalue(res, 0, 0));
    r->taken_at = xstrdup(PQgetvalue(res, 0, 1));
    r->src_db = profile_text_sanitize(PQgetvalue(res, 0, 2), (size_t)PQgetlength(res, 0, 2));
    r->src_version = xstrdup(PQgetvalue(res, 0, 3));
    PQclear(res);
    return 0;
}

static int open_target(Run *r)
{
    PGresult *res;
    int rc;

    if (!r->cfg->target.type || strcmp(r->cfg->target.type, "postgres") != 0 ||
        !r->cfg->target.conn.conninfo)
        return 0;
    rc = pgconn_open(&r->cfg->target.conn, PGCONN_NORMAL, "target", &r->dst);
    if (rc < 0)
        return rc;
    if (PQsetClientEncoding(r->dst, "UTF8") != 0)
        return tm_fail(-EIO, "target: cannot set the client encoding");
    rc = pgconn_query(r->dst, "SELECT current_database(), current_setting('server_encoding')", 0,
                      NULL, &res);
    if (rc < 0)
        return tm_fail_ctx(rc, "target");
    r->dst_db = xstrdup(PQgetvalue(res, 0, 0));
    r->dst_encoding = xstrdup(PQgetvalue(res, 0, 1));
    PQclear(res);
    r->ctx.has_target = true;
    return 0;
}

/* ---- settings ----------------------------------------------------------- */

static void read_settings(Run *r)
{
    const json_t *prof = json_object_get(r->cfg->tree, "profile");
    const json_t *ph = json_object_get(prof, "placeholders");
    size_t n = json_array_size(ph);
    const char **vals = xcalloc(n + 1, sizeof(char *));
    char **owned = xcalloc(n + 1, sizeof(char *));
    const ProfileValueSet *states = profile_valueset_states();

    r->placeholders = json_array();
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(ph, i));
        size_t len;

        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
            s++;
        owned[i] = profile_lower(s);
        len = strlen(owned[i]);
        while (len && strchr(" \t\r\n", owned[i][len - 1]))
            owned[i][--len] = '\0';
        vals[i] = owned[i];
        json_array_append_new(r->placeholders,
                              json_string(json_string_value(json_array_get(ph, i))));
    }
    r->ctx.placeholders = profile_sql_text_array(vals, n);
    for (size_t i = 0; i < n; i++)
        free(owned[i]);
    free(owned);
    free(vals);
    r->ctx.state_codes = profile_valueset_codes_array(states);
    r->ctx.state_names = profile_valueset_names_array(states);
    r->ctx.top_values = (long)json_integer_value(json_object_get(prof, "top_values"));
    if (r->ctx.top_values <= 0)
        r->ctx.top_values = 10;
    r->ctx.sample_pct = r->opt->sample_pct;
    r->nworkers =
        r->opt->jobs > 0 ? r->opt->jobs : (int)json_integer_value(json_object_get(prof, "jobs"));
    if (r->nworkers <= 0)
        r->nworkers = 2;
}

/* ---- the worker pool ------------------------------------------------------- */

typedef struct Pool {
    Run *run;
    pthread_mutex_t mu;
    size_t next, done, n;
    const char *what;
    int (*fn)(Run *r, PGconn *c, size_t i, char *line, size_t linesz);
} Pool;

typedef struct Worker {
    Pool *pool;
    PGconn *conn;
    pthread_t thread;
} Worker;

static void *worker_main(void *arg)
{
    Worker *w = arg;
    Pool *p = w->pool;

    for (;;) {
        size_t i;
        char line[512] = "";
        double t;

        pthread_mutex_lock(&p->mu);
        i = p->next++;
        pthread_mutex_unlock(&p->mu);
        if (i >= p->n)
            break;
        t = clock_mono_secs();
        p->fn(p->run, w->conn, i, line, sizeof(line));
        pthread_mutex_lock(&p->mu);
        p->done++;
        if (p->run->opt->progress)
            fprintf(stderr, "tidemark profile: %s [%zu/%zu] %s, %.1f s (elapsed %.1f s)\n", p->what,
                    p->done, p->n, line, clock_mono_secs() - t, clock_mono_secs() - p->run->t0);
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

static void run_pool(Run *r, const char *what, size_t n,
                     int (*fn)(Run *, PGconn *, size_t, char *, size_t))
{
    Pool p = {.run = r, .n = n, .what = what, .fn = fn};
    int nw = r->nworkers < (int)n ? r->nworkers : (int)n;
    Worker *w = xcalloc((size_t)nw + 1, sizeof(Worker));

    pthread_mutex_init(&p.mu, NULL);
    for (int i = 0; i < nw; i++) {
        w[i].pool = &p;
        w[i].conn = r->workers[i];
        if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0) {
            /* no thread: do its share on this one */
            worker_main(&w[i]);
            w[i].conn = NULL;
        }
    }
    for (int i = 0; i < nw; i++)
        if (w[i].conn)
            pthread_join(w[i].thread, NULL);
    pthread_mutex_destroy(&p.mu);
    free(w);
}

static int cmp_size(const void *a, const void *b, void *arg)
{
    const ProfTable *t = arg;
    long long x = t[*(const size_t *)a].total_size, y = t[*(const size_t *)b].total_size;

    return x < y ? 1 : x > y ? -1 : 0;
}

static int do_table(Run *r, PGconn *c, size_t i, char *line, size_t linesz)
{
    ProfTable *t = &r->tabs[r->order[i]];
    int rc = profile_scan_table(c, &r->ctx, t);

    if (rc < 0)
        snprintf(line, linesz, "%s: FAILED: %s", t->def->display, t->error ? t->error : tm_error());
    else
        snprintf(line, linesz, "%s: %lld rows", t->def->display, profile_jint(t->out, "row_count"));
    return rc;
}

static int do_relationship(Run *r, PGconn *c, size_t i, char *line, size_t linesz)
{
    size_t nfk = json_array_size(json_object_get(r->rel, "foreign_keys"));
    json_t *item;
    int rc;

    if (i < nfk) {
        item = json_array_get(json_object_get(r->rel, "foreign_keys"), i);
        rc = profile_rel_check_fk(c, &r->ctx, item);
        snprintf(line, linesz, "foreign key %s on %s: %lld orphans", profile_jstr(item, "name"),
                 profile_jstr(item, "table"), profile_jint(item, "orphans"));
    } else {
        item = json_array_get(json_object_get(r->rel, "candidates"), i - nfk);
        rc = profile_rel_check_candidate(c, &r->ctx, item);
        snprintf(line, linesz, "%s.%s -> %s.%s", profile_jstr(item, "table"),
                 profile_jstr(item, "column"), profile_jstr(item, "parent"),
                 profile_jstr(item, "parent_column"));
    }
    return rc;
}

/* ---- report ------------------------------------------------------------- */

static json_t *build_report(Run *r, int *failed)
{
    json_t *tables = json_array(), *names = json_array(), *findings = json_array();
    json_t *cands = json_array(), *c, *rep;
    long long rows = 0, ncols = 0;
    size_t i;

    for (i = 0; i < r->ntabs; i++)
        json_array_append_new(names, json_string(r->tabs[i].def->name));
    for (i = 0; i < r->ntabs; i++) {
        ProfTable *t = &r->tabs[i];

        if (t->error)
            (*failed)++;
        profile_rules_table(t->out, names, findings);
        rows += profile_jint(t->out, "row_count");
        ncols += (long long)t->def->ncols;
        json_array_append(tables, t->out);
    }
    /* keep the candidates worth reading: most of their values are found */
    json_array_foreach(json_object_get(r->rel, "candidates"), i, c)
    {
        if (json_number_value(json_object_get(c, "containment_pct")) >= 50.0)
            json_array_append(cands, c);
    }
    json_object_set_new(r->rel, "candidates", cands);
    profile_rules_relationships(r->rel, findings);
    json_array_foreach(r->matviews, i, c)
    {
        /* not replicated: the cutover must refresh it on the target */
        char *msg = xasprintf("fed by %s; logical replication does not carry it: refresh it on"
                              " the target at cutover (REFRESH MATERIALIZED VIEW)",
                              json_string_value(json_object_get(c, "fed_by")));

        json_array_append_new(findings,
                              json_pack("{s:s, s:s, s:s, s:I, s:s, s:[], s:n}", "severity", "info",
                                        "code", "materialized_view", "table",
                                        json_string_value(json_object_get(c, "name")), "count",
                                        (json_int_t)0, "message", msg, "examples", "column"));
        free(msg);
    }
    profile_findings_sort(findings);
    rep = json_pack(
        "{s:i, s:s, s:s, s:{s:s, s:s, s:s}, s:o, s:{s:o, s:i, s:I, s:O},"
        " s:f, s:{s:i, s:I, s:I, s:o}, s:o, s:o, s:O}",
        "tidemark_profile", 1, "pipeline", r->cfg->pipeline, "taken_at", r->taken_at, "source",
        "database", r->src_db, "encoding", r->ctx.encoding, "server_version", r->src_version,
        "target",
        r->dst ? json_pack("{s:s, s:s}", "database", r->dst_db, "encoding", r->dst_encoding)
               : json_null(),
        "options", "sample_pct", r->ctx.sample_pct > 0 ? json_real(r->ctx.sample_pct) : json_null(),
        "jobs", r->nworkers, "top_values", (json_int_t)r->ctx.top_values, "placeholders",
        r->placeholders, "duration_seconds", clock_mono_secs() - r->t0, "summary", "tables",
        (int)r->ntabs, "columns", (json_int_t)ncols, "rows", (json_int_t)rows, "findings",
        profile_findings_count(findings), "findings", findings, "tables", tables, "relationships",
        r->rel);
    json_object_set(rep, "materialized_views", r->matviews);
    json_decref(names);
    return rep;
}

/* ---- run ------------------------------------------------------------------ */

static int resolve(Run *r)
{
    Config view = *r->cfg; /* shallow: only the table list differs */
    int rc;

    if (r->opt->ntables) {
        view.source.ntables = r->opt->ntables;
        view.source.tables = r->opt->tables;
    }
    rc = catalog_resolve(r->src, &view, &r->set);
    if (rc < 0)
        return rc;
    r->ntabs = r->set.n;
    r->tabs = xcalloc(r->ntabs, sizeof(ProfTable));
    for (size_t i = 0; i < r->ntabs; i++)
        r->tabs[i].def = &r->set.t[i];
    rc = profile_catalog_source(r->src, r->tabs, r->ntabs, &r->fks);
    if (rc == 0) {
        CatalogMatview *mv;
        size_t nmv;

        rc = catalog_matviews(r->src, &r->set, &mv, &nmv);
        r->matviews = json_array();
        for (size_t i = 0; rc == 0 && i < nmv; i++)
            json_array_append_new(r->matviews,
                                  json_pack("{s:s, s:s, s:b}", "name", mv[i].display, "fed_by",
                                            mv[i].fed_by, "populated", mv[i].populated));
        if (rc == 0)
            catalog_matviews_free(mv, nmv);
    }
    return rc;
}

static void cleanup(Run *r)
{
    for (int i = 0; r->workers && i < r->nworkers; i++)
        if (r->workers[i])
            PQfinish(r->workers[i]);
    free(r->workers);
    if (r->src)
        PQfinish(r->src);
    if (r->dst)
        PQfinish(r->dst);
    for (size_t i = 0; i < r->ntabs; i++) {
        ProfTable *t = &r->tabs[i];

        for (size_t c = 0; t->cols && c < t->def->ncols; c++) {
            free(t->cols[c].type);
            free(t->cols[c].base);
            free(t->cols[c].t_type);
            json_decref(t->cols[c].t_allowed);
        }
        free(t->cols);
        json_decref(t->pk);
        json_decref(t->out);
        free(t->error);
    }
    free(r->tabs);
    tableset_release(&r->set);
    json_decref(r->fks);
    json_decref(r->rel);
    json_decref(r->matviews);
    json_decref(r->placeholders);
    free((char *)r->ctx.encoding);
    free(r->ctx.placeholders);
    free(r->ctx.state_codes);
    free(r->ctx.state_names);
    free(r->snapshot);
    free(r->taken_at);
    free(r->src_db);
    free(r->src_version);
    free(r->dst_db);
    free(r->dst_encoding);
    free(r->order);
}

static int run(Run *r, json_t **report)
{
    int rc, failed = 0;
    size_t nrel;

    read_settings(r);
    if ((rc = open_source(r)) < 0 || (rc = resolve(r)) < 0 || (rc = open_target(r)) < 0)
        return rc;
    if (r->dst && (rc = profile_catalog_target(r->dst, r->tabs, r->ntabs)) < 0)
        return rc;
    if (r->nworkers > (int)r->ntabs)
        r->nworkers = (int)r->ntabs;
    r->workers = xcalloc((size_t)r->nworkers, sizeof(PGconn *));
    for (int i = 0; i < r->nworkers; i++)
        if ((rc = open_worker(r, &r->workers[i])) < 0)
            return rc;
    if (r->opt->progress)
        fprintf(stderr, "tidemark profile: %zu tables, %d jobs%s\n", r->ntabs, r->nworkers,
                r->ctx.sample_pct > 0 ? ", sampling" : "");
    r->order = xcalloc(r->ntabs + 1, sizeof(size_t));
    for (size_t i = 0; i < r->ntabs; i++)
        r->order[i] = i;
    qsort_r(r->order, r->ntabs, sizeof(size_t), cmp_size, r->tabs);
    run_pool(r, "table", r->ntabs, do_table);

    r->rel = profile_rel_plan(r->tabs, r->ntabs, r->fks);
    nrel = json_array_size(json_object_get(r->rel, "foreign_keys")) +
           json_array_size(json_object_get(r->rel, "candidates"));
    if (nrel)
        run_pool(r, "relationship", nrel, do_relationship);

    *report = build_report(r, &failed);
    if (r->dst && r->opt->store) {
        rc = profile_store(r->dst, r->cfg->pipeline, *report);
        if (rc < 0)
            return rc;
    }
    if (failed)
        return tm_fail(-EIO, "%d of %zu tables could not be profiled (see the report)", failed,
                       r->ntabs);
    return 0;
}

int profile_run(const Config *cfg, const ProfileOptions *opt, json_t **report)
{
    Run r;
    int rc;

    memset(&r, 0, sizeof(r));
    r.cfg = cfg;
    r.opt = opt;
    r.t0 = clock_mono_secs();
    *report = NULL;
    rc = run(&r, report);
    cleanup(&r);
    return rc;
}

int profile_format_parse(const char *s, ProfileFormat *out)
{
    if (strcmp(s, "text") == 0)
        *out = PROFILE_FMT_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = PROFILE_FMT_JSON;
    else if (strcmp(s, "markdown") == 0 || strcmp(s, "md") == 0)
        *out = PROFILE_FMT_MARKDOWN;
    else if (strcmp(s, "html") == 0)
        *out = PROFILE_FMT_HTML;
    else
        return tm_fail(-EINVAL, "unknown format \"%s\" (text, json, markdown, html)", s);
    return 0;
}

char *profile_render(const json_t *report, ProfileFormat fmt)
{
    Buf b = BUF_INIT;

    switch (fmt) {
    case PROFILE_FMT_JSON: {
        char *s = json_dumps(report, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

        if (!s)
            xalloc_die();
        buf_puts(&b, s);
        buf_putc(&b, '\n');
        free(s);
        break;
    }
    case PROFILE_FMT_MARKDOWN:
        profile_render_markdown(report, &b);
        break;
    case PROFILE_FMT_HTML:
        profile_render_html(report, &b);
        break;
    case PROFILE_FMT_TEXT:
        profile_render_text(report, &b);
        break;
    }
    buf_cstr(&b);
    return b.data;
}
