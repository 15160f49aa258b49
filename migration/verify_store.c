/*
 * Keeps what a verification found where operators look: on the target,
 * tidemark.verify_runs gets one row per table per run (both row counts at the
 * snapshot, the snapshot's LSNs, the verdict and when: the counts baseline),
 * and tidemark.verify_failures one row per difference or failing integrity
 * example (run id, table, key as JSON, kind, details as JSON, when). Both are
 * written in one transaction, values as parameters. The profile's baseline
 * counts (tidemark.baseline_counts) are read back for the report.
 */
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/xmalloc.h"
#include "sinks/pg/pgstate.h"
#include "migration/verify_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Run through pgstate_ensure, which creates schema tidemark first. */
static const char *const DDL =
    "CREATE TABLE IF NOT EXISTS tidemark.verify_runs ("
    " run_id text NOT NULL, pipeline text NOT NULL, schema_name text NOT NULL,"
    " table_name text NOT NULL, source_rows bigint, target_rows bigint,"
    " source_lsn pg_lsn, target_lsn pg_lsn, ok boolean NOT NULL,"
    " missing bigint NOT NULL DEFAULT 0, extra bigint NOT NULL DEFAULT 0,"
    " differing bigint NOT NULL DEFAULT 0, integrity_failures bigint NOT NULL DEFAULT 0,"
    " error text, started_at timestamptz NOT NULL, finished_at timestamptz NOT NULL,"
    " PRIMARY KEY (run_id, schema_name, table_name));"
    "CREATE TABLE IF NOT EXISTS tidemark.verify_failures ("
    " id bigserial PRIMARY KEY, run_id text NOT NULL, pipeline text NOT NULL,"
    " schema_name text, table_name text, key jsonb, kind text NOT NULL,"
    " details jsonb NOT NULL, at timestamptz NOT NULL DEFAULT now())";

static const char *js(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));

    return s ? s : "";
}

static char *num(const json_t *o, const char *k)
{
    return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(o, k)));
}

static int insert_failure(PGconn *dst, const char *run, const char *pipeline, const char *schema,
                          const char *table, const json_t *key, const char *kind,
                          const json_t *details)
{
    char *k = key ? json_dumps(key, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    char *d = json_dumps(details, JSON_COMPACT);
    const char *p[7] = {run, pipeline, schema, table, k, kind, d};
    int rc = pgconn_query(dst,
                          "INSERT INTO tidemark.verify_failures (run_id, pipeline, schema_name,"
                          " table_name, key, kind, details) VALUES ($1, $2, $3, $4, $5::jsonb,"
                          " $6, $7::jsonb)",
                          7, p, NULL);

    free(k);
    free(d);
    return rc;
}

static int store_table(PGconn *dst, const char *pipeline, const json_t *rep, const json_t *t)
{
    const char *run = js(rep, "run_id");
    const json_t *snap = json_object_get(rep, "snapshot");
    char *src_rows = num(t, "source_rows"), *dst_rows = num(t, "target_rows");
    char *miss = num(t, "missing"), *extra = num(t, "extra"), *diff = num(t, "differing");
    char *integ = num(t, "integrity_failures");
    const char *err = json_string_value(json_object_get(t, "error"));
    const char *slsn = json_string_value(json_object_get(snap, "source_lsn"));
    const char *tlsn = json_string_value(json_object_get(snap, "target_lsn"));
    const char *p[15] = {
        run,           pipeline, js(t, "schema"),
        js(t, "name"), src_rows, dst_rows,
        slsn,          tlsn,     json_is_true(json_object_get(t, "ok")) ? "t" : "f",
        miss,          extra,    diff,
        integ,         err,      js(rep, "started_at")};
    size_t i;
    const json_t *d;
    int rc = pgconn_query(
        dst,
        "INSERT INTO tidemark.verify_runs (run_id, pipeline, schema_name, table_name,"
        " source_rows, target_rows, source_lsn, target_lsn, ok, missing, extra, differing,"
        " integrity_failures, error, started_at, finished_at) VALUES ($1, $2, $3, $4,"
        " $5::bigint, $6::bigint, $7::pg_lsn, $8::pg_lsn, $9::boolean, $10::bigint, $11::bigint,"
        " $12::bigint, $13::bigint, $14, $15::timestamptz, now())",
        15, p, NULL);

    free(src_rows);
    free(dst_rows);
    free(miss);
    free(extra);
    free(diff);
    free(integ);
    if (err && rc == 0) {
        json_t *details = json_pack("{s:s}", "error", err);

        rc = insert_failure(dst, run, pipeline, js(t, "schema"), js(t, "name"), NULL, "error",
                            details);
        json_decref(details);
    }
    json_array_foreach(json_object_get(t, "differences"), i, d)
    {
        json_t *details = json_deep_copy(d);

        if (rc < 0)
            break;
        json_object_del(details, "key");
        json_object_del(details, "kind");
        json_object_del(details, "key_text");
        rc = insert_failure(dst, run, pipeline, js(t, "schema"), js(t, "name"),
                            json_object_get(d, "key"), js(d, "kind"), details);
        json_decref(details);
    }
    return rc;
}

static int store_check(PGconn *dst, const char *pipeline, const json_t *rep, const json_t *c)
{
    const char *run = js(rep, "run_id");
    const char *kind = strcmp(js(c, "check"), "foreign_key") == 0 ? "orphan" : js(c, "rule");
    json_t *details = json_deep_copy(c);
    char *schema = NULL, *name = NULL;
    size_t i;
    const json_t *ex;
    int rc = 0;

    json_object_del(details, "examples");
    /* the table display is schema.name; split it back for the columns */
    {
        const char *disp = js(c, "table");
        const char *dot = strchr(disp, '.');

        schema = dot ? xstrndup(disp, (size_t)(dot - disp)) : xstrdup("");
        name = xstrdup(dot ? dot + 1 : disp);
    }
    json_array_foreach(json_object_get(c, "examples"), i, ex)
    {
        if ((rc = insert_failure(dst, run, pipeline, schema, name, ex, kind, details)) < 0)
            break;
    }
    json_decref(details);
    free(schema);
    free(name);
    return rc;
}

static int store(PGconn *dst, const char *pipeline, json_t *report)
{
    size_t i;
    const json_t *t;
    int rc = 0;

    json_array_foreach(json_object_get(report, "tables"), i, t)
    {
        if ((rc = store_table(dst, pipeline, report, t)) < 0)
            return rc;
    }
    json_array_foreach(json_object_get(report, "checks"), i, t)
    {
        if (json_is_true(json_object_get(t, "ok")))
            continue;
        if ((rc = store_check(dst, pipeline, report, t)) < 0)
            return rc;
    }
    return 0;
}

int verify_store(PGconn *dst, const char *pipeline, json_t *report)
{
    int rc = pgstate_ensure(dst, DDL);

    if (rc < 0)
        return tm_fail_ctx(rc, "target: creating the verify tables");
    if ((rc = pgconn_exec(dst, "BEGIN")) < 0)
        return rc;
    rc = store(dst, pipeline, report);
    if (rc < 0) {
        char msg[1024];

        snprintf(msg, sizeof(msg), "%s", tm_error());
        pgconn_exec(dst, "ROLLBACK");
        return tm_fail(rc, "target: storing the verification: %s", msg);
    }
    return pgconn_exec(dst, "COMMIT");
}

void verify_read_baseline(PGconn *dst, const char *pipeline, json_t *tables)
{
    PGresult *res;
    const char *p[1] = {pipeline};
    size_t i;
    json_t *t;

    if (pgconn_query(dst, "SELECT to_regclass('tidemark.baseline_counts') IS NOT NULL", 0, NULL,
                     &res) < 0)
        return;
    if (PQgetvalue(res, 0, 0)[0] != 't') {
        PQclear(res);
        return;
    }
    PQclear(res);
    /* the latest profile's count per table */
    if (pgconn_query(dst,
                     "SELECT DISTINCT ON (schema_name, table_name) schema_name, table_name,"
                     " row_count, taken_at::text FROM tidemark.baseline_counts WHERE pipeline = $1"
                     " ORDER BY schema_name, table_name, taken_at DESC",
                     1, p, &res) < 0)
        return;
    json_array_foreach(tables, i, t)
    {
        for (int r = 0; r < PQntuples(res); r++) {
            if (strcmp(PQgetvalue(res, r, 0), js(t, "schema")) != 0 ||
                strcmp(PQgetvalue(res, r, 1), js(t, "name")) != 0)
                continue;
            json_object_set_new(t, "baseline",
                                json_pack("{s:I, s:s}", "rows",
                                          (json_int_t)strtoll(PQgetvalue(res, r, 2), NULL, 10),
                                          "taken_at", PQgetvalue(res, r, 3)));
        }
    }
    PQclear(res);
}
