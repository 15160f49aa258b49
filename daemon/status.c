/*
 * Gathers the state `tidemark status` shows (see status.h). Every query is
 * read-only and runs on its own short-lived connection with a statement
 * timeout, so a status call can neither disturb the daemon nor hang on a
 * stuck server. Timestamps are rendered by the server in UTC ISO 8601, so the
 * JSON does not depend on the target's TimeZone setting.
 */
#include "daemon/status.h"
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/xmalloc.h"
#include "daemon/http.h"
#include "sinks/kafka/kstate.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ISO 8601 in UTC (the sessions run with TimeZone = UTC). */
#define ISO_FMT "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'"

static json_t *json_text_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null() : json_string(PQgetvalue(res, row, col));
}

static json_t *json_int_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null()
                                      : json_integer(strtoll(PQgetvalue(res, row, col), NULL, 10));
}

/* Connects with bounded waits: status must answer even when a server does not. */
static int open_conn(const ConfigEndpoint *ep, const char *what, PGconn **out)
{
    int rc = pgconn_open(ep, PGCONN_NORMAL, what, out);

    if (rc == 0)
        rc = pgconn_exec(*out, "SET statement_timeout = '10s'; SET TimeZone = 'UTC';"
                               " SET default_transaction_read_only = on");
    if (rc < 0 && *out) {
        PQfinish(*out);
        *out = NULL;
    }
    return rc;
}

/* ------------------------------------------------------------------ target */

static int target_watermark(PGconn *conn, const char *pipeline, json_t *st, double *commit_epoch)
{
    const char *params[1] = {pipeline};
    PGresult *res;
    int rc = pgconn_query(conn,
                          "SELECT lsn::text, to_char(commit_time, " ISO_FMT "),"
                          " to_char(updated_at, " ISO_FMT "),"
                          " extract(epoch FROM commit_time)::float8"
                          " FROM tidemark.watermark WHERE pipeline = $1",
                          1, params, &res);

    if (rc < 0)
        return tm_fail_ctx(rc, "reading tidemark.watermark");
    if (PQntuples(res) == 1) {
        json_object_set_new(st, "watermark",
                            json_pack("{s:o,s:o,s:o}", "lsn", json_text_or_null(res, 0, 0),
                                      "commit_time", json_text_or_null(res, 0, 1), "updated_at",
                                      json_text_or_null(res, 0, 2)));
        if (!PQgetisnull(res, 0, 3))
            *commit_epoch = strtod(PQgetvalue(res, 0, 3), NULL);
    }
    PQclear(res);
    return 0;
}

static json_t *table_entry(const char *schema, const char *name)
{
    TableName tn = {(char *)schema, (char *)name};
    char *disp = config_table_display(&tn);
    json_t *t = json_pack("{s:s,s:s,s:s}", "table", disp, "schema", schema, "name", name);

    free(disp);
    return t;
}

static int target_tables(PGconn *conn, const Config *cfg, json_t *tables)
{
    const char *params[1] = {cfg->pipeline};
    PGresult *res;
    int rc = pgconn_query(conn,
                          "SELECT schema_name, table_name, count(*),"
                          " count(*) FILTER (WHERE state IN ('synced', 'ready')),"
                          " coalesce(sum(rows), 0), max(sync_lsn)::text"
                          " FROM tidemark.sync_state WHERE pipeline = $1"
                          " GROUP BY 1, 2 ORDER BY 1, 2",
                          1, params, &res);

    if (rc < 0)
        return tm_fail_ctx(rc, "reading tidemark.sync_state");
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *t = table_entry(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));

        json_object_set_new(t, "parts", json_int_or_null(res, i, 2));
        json_object_set_new(t, "parts_synced", json_int_or_null(res, i, 3));
        json_object_set_new(t, "rows", json_int_or_null(res, i, 4));
        json_object_set_new(t, "sync_lsn", json_text_or_null(res, i, 5));
        json_array_append_new(tables, t);
    }
    PQclear(res);
    return 0;
}

/* last_error, and halted: a divergence stopped it until `tidemark resume`. */
static int target_last_error(PGconn *conn, const char *pipeline, json_t *st)
{
    const char *params[1] = {pipeline};
    PGresult *res;
    int rc = pgconn_query(conn,
                          "SELECT key, value, to_char(updated_at, " ISO_FMT ")"
                          " FROM tidemark.pipeline_state"
                          " WHERE pipeline = $1 AND key IN ('last_error', 'halted')",
                          1, params, &res);

    if (rc < 0)
        return tm_fail_ctx(rc, "reading tidemark.pipeline_state");
    for (int i = 0; i < PQntuples(res); i++) {
        if (PQgetisnull(res, i, 1) || !PQgetvalue(res, i, 1)[0])
            continue;
        json_object_set_new(st, PQgetvalue(res, i, 0),
                            json_pack("{s:o,s:o}", "message", json_text_or_null(res, i, 1), "at",
                                      json_text_or_null(res, i, 2)));
    }
    PQclear(res);
    return 0;
}

static int collect_pg_target(const Config *cfg, json_t *st, json_t *target, json_t *tables,
                             double *commit_epoch)
{
    PGconn *conn = NULL;
    PGresult *res = NULL;
    int rc = open_conn(&cfg->target.conn, "target", &conn);
    bool has_wm, has_sync, has_state;

    if (rc == 0)
        rc = pgconn_query(conn,
                          "SELECT to_regclass('tidemark.watermark') IS NOT NULL,"
                          " to_regclass('tidemark.sync_state') IS NOT NULL,"
                          " to_regclass('tidemark.pipeline_state') IS NOT NULL",
                          0, NULL, &res);
    if (rc == 0) {
        has_wm = PQgetvalue(res, 0, 0)[0] == 't';
        has_sync = PQgetvalue(res, 0, 1)[0] == 't';
        has_state = PQgetvalue(res, 0, 2)[0] == 't';
        PQclear(res);
        if (has_wm)
            rc = target_watermark(conn, cfg->pipeline, st, commit_epoch);
        if (rc == 0 && has_sync)
            rc = target_tables(conn, cfg, tables);
        if (rc == 0 && has_state)
            rc = target_last_error(conn, cfg->pipeline, st);
    }
    if (conn)
        PQfinish(conn);
    json_object_set_new(target, "reachable", json_boolean(conn != NULL));
    if (rc < 0)
        json_object_set_new(target, "error", json_string(tm_error()));
    return rc;
}

/* Kafka keeps its table state in a file (the slot is its watermark). */
static void collect_kafka_target(const Config *cfg, json_t *target, json_t *tables)
{
    const char *dir = cfg->target.kafka.state_dir;
    char *path = xasprintf("%s/state.json", dir ? dir : ".");
    KState ks;

    json_object_set_new(target, "reachable", json_null()); /* status does not contact Kafka */
    json_object_set_new(target, "state_file", json_string(path));
    if (access(path, R_OK) != 0) {
        json_object_set_new(target, "error",
                            json_sprintf("cannot read %s: %s", path, strerror(errno)));
        free(path);
        return;
    }
    free(path);
    if (kstate_load(&ks, dir, cfg->pipeline) < 0) {
        json_object_set_new(target, "error", json_string(tm_error()));
        return;
    }
    for (size_t i = 0; i < ks.n; i++) {
        json_t *t = table_entry(ks.t[i].schema, ks.t[i].name);
        char lsn[24];

        json_object_set_new(t, "parts", json_integer(1));
        json_object_set_new(t, "parts_synced", json_integer(ks.t[i].synced ? 1 : 0));
        json_object_set_new(t, "rows", json_null());
        json_object_set_new(t, "sync_lsn",
                            ks.t[i].synced
                                ? json_string(lsn_format(ks.t[i].sync_lsn, lsn, sizeof(lsn)))
                                : json_null());
        json_array_append_new(tables, t);
    }
    kstate_release(&ks);
}

/* ------------------------------------------------------------------ source */

static int collect_source(const Config *cfg, json_t *source, double *now_epoch)
{
    const char *params[1] = {cfg->source.slot};
    PGconn *conn = NULL;
    PGresult *res = NULL;
    json_t *slot = json_pack("{s:s,s:b}", "name", cfg->source.slot, "exists", 0);
    int rc;

    json_object_set_new(source, "reachable", json_false());
    json_object_set_new(source, "slot", slot);
    rc = open_conn(&cfg->source.conn, "source", &conn);
    if (rc == 0)
        rc = pgconn_query(conn, "SELECT pg_current_wal_lsn()::text, extract(epoch FROM now())", 0,
                          NULL, &res);
    if (rc == 0) {
        json_object_set_new(source, "current_wal_lsn", json_string(PQgetvalue(res, 0, 0)));
        *now_epoch = strtod(PQgetvalue(res, 0, 1), NULL);
        PQclear(res);
        rc = pgconn_query(conn,
                          "SELECT active, confirmed_flush_lsn::text, restart_lsn::text,"
                          " wal_status,"
                          " pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint,"
                          " pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint"
                          " FROM pg_replication_slots WHERE slot_name = $1",
                          1, params, &res);
        if (rc < 0)
            tm_fail_ctx(rc, "reading pg_replication_slots");
    }
    if (rc == 0 && PQntuples(res) == 1) {
        json_object_set_new(slot, "exists", json_true());
        json_object_set_new(slot, "active", json_boolean(PQgetvalue(res, 0, 0)[0] == 't'));
        json_object_set_new(slot, "confirmed_flush_lsn", json_text_or_null(res, 0, 1));
        json_object_set_new(slot, "restart_lsn", json_text_or_null(res, 0, 2));
        json_object_set_new(slot, "wal_status", json_text_or_null(res, 0, 3));
        json_object_set_new(slot, "retained_wal_bytes", json_int_or_null(res, 0, 4));
        json_object_set_new(slot, "lag_bytes", json_int_or_null(res, 0, 5));
    }
    if (rc == 0)
        PQclear(res);
    if (conn)
        PQfinish(conn);
    json_object_set_new(source, "reachable", json_boolean(conn != NULL));
    if (rc < 0)
        json_object_set_new(source, "error", json_string(tm_error()));
    return rc;
}

/* ------------------------------------------------------------------ daemon */

static int connect_timeout(int fd, const struct sockaddr *sa, socklen_t len, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t elen = sizeof(err);

    if (connect(fd, sa, len) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return -errno;
    if (poll(&pfd, 1, timeout_ms) == 0)
        return -ETIMEDOUT;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
        return -errno;
    return -err;
}

int status_http_get(const char *listen, const char *path, int timeout_ms, char *body,
                    size_t body_cap)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char req[256], resp[4096];
    size_t got = 0;
    int fd, rc, status = 0;
    const char *sep;

    rc = http_resolve(listen, &ss, &len);
    if (rc < 0)
        return rc;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return tm_fail(-errno, "socket: %s", strerror(errno));
    rc = connect_timeout(fd, (struct sockaddr *)&ss, len, timeout_ms);
    if (rc < 0) {
        close(fd);
        return tm_fail(rc, "%s: %s", listen, strerror(-rc));
    }
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path,
             listen);
    /* A few hundred bytes fit any socket buffer: one send, then read to EOF. */
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
        close(fd);
        return tm_fail(-EIO, "%s: cannot send the request", listen);
    }
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ssize_t n;

        if (poll(&pfd, 1, timeout_ms) <= 0) {
            close(fd);
            return tm_fail(-ETIMEDOUT, "%s: no answer within %d ms", listen, timeout_ms);
        }
        n = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0 || (got += (size_t)n) == sizeof(resp) - 1)
            break;
    }
    close(fd);
    resp[got] = '\0';
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
        return tm_fail(-EPROTO, "%s: not an HTTP answer", listen);
    if (body && body_cap) {
        sep = strstr(resp, "\r\n\r\n");
        snprintf(body, body_cap, "%s", sep ? sep + 4 : "");
        body[strcspn(body, "\r\n")] = '\0';
    }
    return status;
}

static void collect_daemon(const Config *cfg, json_t *st)
{
    char body[256] = "";
    int code;
    json_t *d;

    if (!cfg->service.listen || !*cfg->service.listen)
        return;
    code = status_http_get(cfg->service.listen, "/healthz", 1000, body, sizeof(body));
    d = json_pack("{s:s}", "listen", cfg->service.listen);
    if (code > 0) {
        json_object_set_new(d, "healthz", json_integer(code));
        json_object_set_new(d, "answer", json_string(body));
    } else {
        json_object_set_new(d, "healthz", json_null());
        json_object_set_new(d, "error", json_string(tm_error()));
    }
    json_object_set_new(st, "daemon", d);
}

/* ------------------------------------------------------------------ summary */

static bool slot_active(json_t *st)
{
    return json_is_true(
        json_object_get(json_object_get(json_object_get(st, "source"), "slot"), "active"));
}

/* Adds configured tables the target does not know yet, then each table's state. */
static void table_states(const Config *cfg, json_t *tables, bool running, bool *copying)
{
    size_t i;
    json_t *t;

    for (size_t k = 0; k < cfg->source.ntables; k++) {
        bool found = false;

        json_array_foreach(tables, i, t)
        {
            if (strcmp(json_string_value(json_object_get(t, "schema")),
                       cfg->source.tables[k].schema) == 0 &&
                strcmp(json_string_value(json_object_get(t, "name")), cfg->source.tables[k].name) ==
                    0)
                found = true;
        }
        if (!found) {
            t = table_entry(cfg->source.tables[k].schema, cfg->source.tables[k].name);
            json_object_set_new(t, "parts", json_integer(0));
            json_object_set_new(t, "parts_synced", json_integer(0));
            json_object_set_new(t, "rows", json_null());
            json_object_set_new(t, "sync_lsn", json_null());
            json_array_append_new(tables, t);
        }
    }
    *copying = false;
    json_array_foreach(tables, i, t)
    {
        json_int_t parts = json_integer_value(json_object_get(t, "parts"));
        json_int_t done = json_integer_value(json_object_get(t, "parts_synced"));
        const char *state;

        if (parts == 0) {
            state = "pending";
            *copying = true;
        } else if (done < parts) {
            state = "copying";
            *copying = true;
        } else {
            state = running ? "streaming" : "synced";
        }
        json_object_set_new(t, "state", json_string(state));
        json_object_set_new(t, "percent", json_integer(parts ? done * 100 / parts : 0));
    }
}

int status_collect(const Config *cfg, json_t **out)
{
    json_t *st = json_object();
    json_t *target = json_pack("{s:s,s:b}", "type", cfg->target.type, "reachable", 0);
    json_t *source = json_object();
    json_t *tables = json_array();
    double commit_epoch = -1, now_epoch = -1;
    const char *phase;
    bool running, copying, kafka = strcmp(cfg->target.type, "kafka") == 0;
    int rc_src, rc_dst = 0;

    /* Keys in reading order (the JSON keeps insertion order); filled below. */
    json_object_set_new(st, "pipeline", json_string(cfg->pipeline));
    json_object_set_new(st, "phase", json_null());
    json_object_set_new(st, "running", json_null());
    json_object_set_new(st, "watermark", json_null());
    json_object_set_new(st, "lag_seconds", json_null());
    json_object_set_new(st, "source", json_null());
    json_object_set_new(st, "target", json_null());
    json_object_set_new(st, "tables", json_null());
    json_object_set_new(st, "last_error", json_null());
    json_object_set_new(st, "halted", json_null());
    /* Neither side may wait long for a server that does not answer. */
    setenv("PGCONNECT_TIMEOUT", "5", 0);
    rc_src = collect_source(cfg, source, &now_epoch);
    if (kafka)
        collect_kafka_target(cfg, target, tables);
    else
        rc_dst = collect_pg_target(cfg, st, target, tables, &commit_epoch);
    json_object_set_new(st, "source", source);
    json_object_set_new(st, "target", target);

    running = slot_active(st);
    table_states(cfg, tables, running, &copying);
    if (kafka) {
        /* The Kafka sink's watermark is what the slot has confirmed. */
        json_t *lsn = json_object_get(json_object_get(source, "slot"), "confirmed_flush_lsn");

        if (json_is_string(lsn))
            json_object_set_new(st, "watermark", json_pack("{s:O}", "lsn", lsn));
    }
    if (now_epoch < 0)
        now_epoch = (double)time(NULL);
    json_object_set_new(st, "lag_seconds",
                        commit_epoch >= 0 ? json_real(now_epoch - commit_epoch) : json_null());
    json_object_set_new(st, "tables", tables);
    collect_daemon(cfg, st);

    if (rc_src < 0 && rc_dst < 0)
        phase = "unknown";
    else if (!kafka && rc_dst == 0 && json_is_null(json_object_get(st, "watermark")))
        phase = "not started";
    else if (!running && json_is_object(json_object_get(st, "halted")))
        phase = "halted";
    else if (copying)
        phase = running ? "copying" : "stopped";
    else
        phase = running ? "streaming" : "stopped";
    json_object_set_new(st, "phase", json_string(phase));
    json_object_set_new(st, "running", json_boolean(running));
    *out = st;
    if (rc_src < 0 || rc_dst < 0)
        return tm_fail(-ECONNREFUSED, "%s",
                       rc_dst < 0 ? "target unreachable" : "source unreachable");
    return 0;
}
