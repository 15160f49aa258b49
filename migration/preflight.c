/*
 * The preflight run (see preflight.h): connects to both sides read-only,
 * works out the tables (as configured, or schema public on the source, with
 * a mapping's target names), runs every check and collects the findings. A
 * side that cannot be reached is an error finding and its checks are
 * skipped; the others still run, so one run shows everything.
 */
#include "migration/preflight_int.h"
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/relcache.h"
#include "core/sqlname.h"
#include "core/xmalloc.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const char *const sev_names[] = {"ok", "info", "warning", "error"};

void pf_add(Pf *pf, PreflightSeverity sev, const char *side, const char *check, const char *subject,
            const char *fix, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_array_append_new(pf->findings, json_pack("{s:s, s:s, s:s, s:s?, s:s, s:s?}", "severity",
                                                  sev_names[sev], "side", side, "check", check,
                                                  "subject", subject, "message", msg, "fix", fix));
}

char *pf_value(PGconn *conn, const char *sql, int n, const char *const *params)
{
    PGresult *res;
    char *out = NULL;

    if (!conn || pgconn_query(conn, sql, n, params, &res) < 0)
        return NULL;
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        out = xstrdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return out;
}

static void add_table(Pf *pf, const char *schema, const char *name)
{
    PfTable *t;
    json_t *map;
    const char *target = NULL;

    pf->tabs = xrealloc(pf->tabs, (pf->ntabs + 1) * sizeof(PfTable));
    t = &pf->tabs[pf->ntabs++];
    memset(t, 0, sizeof(*t));
    t->schema = xstrdup(schema);
    t->name = xstrdup(name);
    t->display = relcache_display_name(schema, name);
    map = json_object_get(json_object_get(pf->cfg->tree, "mapping"), t->display);
    if (!map && strcmp(schema, "public") == 0)
        map = json_object_get(json_object_get(pf->cfg->tree, "mapping"), name);
    target = json_string_value(json_object_get(map, "target"));
    if (!target || sqlname_parse(target, &t->tschema, &t->tname) < 0) {
        t->tschema = xstrdup(schema);
        t->tname = xstrdup(name);
    }
}

static void resolve_tables(Pf *pf)
{
    PGresult *res;

    for (size_t i = 0; i < pf->cfg->source.ntables; i++)
        add_table(pf, pf->cfg->source.tables[i].schema, pf->cfg->source.tables[i].name);
    if (pf->cfg->source.ntables || !pf->s)
        return;
    if (pgconn_query(pf->s,
                     "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid ="
                     " c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND"
                     " NOT c.relispartition ORDER BY 2",
                     0, NULL, &res) < 0)
        return;
    for (int i = 0; i < PQntuples(res); i++)
        add_table(pf, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
    PQclear(res);
    if (pf->ntabs == 0)
        pf_add(pf, PF_ERROR, "source", "tables", NULL, "list the tables in source.tables",
               "schema public on the source has no tables and source.tables is empty");
}

/* ---- checks on this host ------------------------------------------------- */

static void check_listen(Pf *pf)
{
    const char *listen = pf->cfg->service.listen;
    char host[256];
    const char *colon;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    int fd = -1, one = 1, err;

    if (!listen || !*listen) {
        pf_add(pf, PF_OK, "host", "listen", NULL, NULL, "no metrics endpoint configured");
        return;
    }
    colon = strrchr(listen, ':');
    if (!colon) {
        pf_add(pf, PF_ERROR, "host", "listen", listen, "use host:port", "%s is not host:port",
               listen);
        return;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    err = getaddrinfo(host, colon + 1, &hints, &ai);
    if (err == 0) {
        fd = socket(ai->ai_family, SOCK_STREAM, 0);
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        err = fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ? errno : 0;
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        if (err)
            pf_add(pf, PF_ERROR, "host", "listen", listen,
                   "stop what uses it, or set another service.listen",
                   "cannot listen on %s: %s (the daemon would not start)", listen, strerror(err));
        else
            pf_add(pf, PF_OK, "host", "listen", listen, NULL, "%s is free", listen);
    } else
        pf_add(pf, PF_ERROR, "host", "listen", listen, "fix service.listen",
               "cannot resolve %s: %s", listen, gai_strerror(err));
}

static void check_clock(Pf *pf, PGconn *conn, const char *side)
{
    struct timeval a, b;
    char *v;
    double offset = getenv("TIDEMARK_PREFLIGHT_CLOCK_OFFSET_S")
                        ? strtod(getenv("TIDEMARK_PREFLIGHT_CLOCK_OFFSET_S"), NULL)
                        : 0; /* tests: pretend this host's clock is off */
    double here, skew;

    if (!conn)
        return;
    gettimeofday(&a, NULL);
    v = pf_value(conn, "SELECT extract(epoch FROM clock_timestamp())::text", 0, NULL);
    gettimeofday(&b, NULL);
    if (!v)
        return;
    here = (a.tv_sec + b.tv_sec) / 2.0 + (a.tv_usec + b.tv_usec) / 2e6 + offset;
    skew = strtod(v, NULL) - here;
    free(v);
    if (skew > 1.0 || skew < -1.0)
        pf_add(pf, skew > 60 || skew < -60 ? PF_ERROR : PF_WARNING, side, "clock", NULL,
               "synchronize the clocks (NTP/chrony) of this host and the database servers",
               "the %s server's clock is %+.1f s off this host's: lag in seconds and commit"
               " times in logs and metrics will be off by as much",
               side, skew);
    else
        pf_add(pf, PF_OK, side, "clock", NULL, NULL, "clock within %.2f s of this host's",
               skew < 0 ? -skew : skew);
}

/* ---- the run ----------------------------------------------------------------- */

static PGconn *connect_side(Pf *pf, const ConfigEndpoint *ep, const char *side)
{
    PGconn *conn = NULL;

    if (pgconn_open(ep, PGCONN_NORMAL, side, &conn) < 0) {
        pf_add(pf, PF_ERROR, side, "connect", NULL,
               "check the conninfo, the password file, pg_hba.conf and the network", "%s",
               tm_error());
        return NULL;
    }
    /* Nothing here writes: make sure of it. */
    pgconn_exec(conn, "SET default_transaction_read_only = on");
    pf_add(pf, PF_OK, side, "connect", NULL, NULL, "connected to database %s as %s", PQdb(conn),
           PQuser(conn));
    return conn;
}

int preflight_run(const Config *cfg, json_t **report)
{
    Pf pf = {.cfg = cfg, .findings = json_array()};
    bool pg = strcmp(cfg->target.type, "postgres") == 0;
    json_t *f;
    size_t i;
    int n[4] = {0};

    pf.s = connect_side(&pf, &cfg->source.conn, "source");
    if (pg)
        pf.t = connect_side(&pf, &cfg->target.conn, "target");
    resolve_tables(&pf);
    if (pf.t) /* first: whether the pipeline has started decides what else applies */
        pf_check_target(&pf);
    if (pf.s)
        pf_check_source(&pf);
    if (pf.s && pf.t)
        pf_check_both(&pf);
    check_listen(&pf);
    check_clock(&pf, pf.s, "source");
    check_clock(&pf, pf.t, "target");
    json_array_foreach(pf.findings, i, f)
    {
        const char *sev = json_string_value(json_object_get(f, "severity"));

        for (int k = 0; k < 4; k++)
            n[k] += strcmp(sev, sev_names[k]) == 0;
    }
    *report = json_pack("{s:s, s:s, s:o, s:{s:i, s:i, s:i, s:i, s:s}}", "pipeline", cfg->pipeline,
                        "config", cfg->path ? cfg->path : "", "findings", pf.findings, "summary",
                        "errors", n[PF_ERROR], "warnings", n[PF_WARNING], "info", n[PF_INFO], "ok",
                        n[PF_OK], "worst",
                        sev_names[n[PF_ERROR]     ? PF_ERROR
                                  : n[PF_WARNING] ? PF_WARNING
                                  : n[PF_INFO]    ? PF_INFO
                                                  : PF_OK]);
    for (i = 0; i < pf.ntabs; i++) {
        free(pf.tabs[i].schema);
        free(pf.tabs[i].name);
        free(pf.tabs[i].display);
        free(pf.tabs[i].tschema);
        free(pf.tabs[i].tname);
    }
    free(pf.tabs);
    if (pf.s)
        PQfinish(pf.s);
    if (pf.t)
        PQfinish(pf.t);
    return 0;
}

PreflightSeverity preflight_worst(const json_t *report)
{
    const char *w = json_string_value(json_object_get(json_object_get(report, "summary"), "worst"));

    for (int k = PF_ERROR; k > PF_OK; k--)
        if (w && strcmp(w, sev_names[k]) == 0)
            return (PreflightSeverity)k;
    return PF_OK;
}
