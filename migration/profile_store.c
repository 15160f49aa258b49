/*
 * Keeps a profile where `verify` can find it later: on a postgres target,
 * schema tidemark gets profile_runs (the whole JSON report per run) and
 * baseline_counts (the exact row count of each table at the snapshot the
 * profile read), both written in one transaction, values as parameters.
 */
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/xmalloc.h"
#include "sinks/pg/pgstate.h"
#include "migration/profile_int.h"

#include <stdio.h>
#include <stdlib.h>

/* Run through pgstate_ensure, which creates schema tidemark first. */
static const char *const DDL =
    "CREATE TABLE IF NOT EXISTS tidemark.profile_runs ("
    " pipeline text NOT NULL, taken_at timestamptz NOT NULL, report jsonb NOT NULL,"
    " PRIMARY KEY (pipeline, taken_at));"
    "CREATE TABLE IF NOT EXISTS tidemark.baseline_counts ("
    " pipeline text NOT NULL, schema_name text NOT NULL, table_name text NOT NULL,"
    " row_count bigint NOT NULL, taken_at timestamptz NOT NULL,"
    " PRIMARY KEY (pipeline, schema_name, table_name, taken_at))";

static int store(PGconn *dst, const char *pipeline, const json_t *report)
{
    const char *taken = profile_jstr(report, "taken_at");
    char *text = json_dumps(report, JSON_COMPACT);
    const char *p[3] = {pipeline, taken, text};
    size_t i;
    json_t *t;
    int rc;

    if (!text)
        xalloc_die();
    rc = pgconn_query(dst,
                      "INSERT INTO tidemark.profile_runs (pipeline, taken_at, report)"
                      " VALUES ($1, $2::timestamptz, $3::jsonb)",
                      3, p, NULL);
    free(text);
    json_array_foreach(json_object_get(report, "tables"), i, t)
    {
        char count[32];
        const char *q[5] = {pipeline, profile_jstr(t, "schema"), profile_jstr(t, "name"), count,
                            taken};

        if (rc < 0 || json_object_get(t, "error"))
            continue;
        snprintf(count, sizeof(count), "%lld", profile_jint(t, "row_count"));
        rc = pgconn_query(dst,
                          "INSERT INTO tidemark.baseline_counts"
                          " (pipeline, schema_name, table_name, row_count, taken_at)"
                          " VALUES ($1, $2, $3, $4::bigint, $5::timestamptz)",
                          5, q, NULL);
    }
    return rc;
}

int profile_store(PGconn *dst, const char *pipeline, const json_t *report)
{
    int rc = pgstate_ensure(dst, DDL);

    if (rc < 0)
        return tm_fail_ctx(rc, "target: creating the profile tables");
    if ((rc = pgconn_exec(dst, "BEGIN")) < 0)
        return rc;
    rc = store(dst, pipeline, report);
    if (rc < 0) {
        char msg[1024];

        snprintf(msg, sizeof(msg), "%s", tm_error());
        pgconn_exec(dst, "ROLLBACK");
        return tm_fail(rc, "target: storing the profile: %s", msg);
    }
    return pgconn_exec(dst, "COMMIT");
}
