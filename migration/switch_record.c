/*
 * The record of every cutover and rollback run, kept on the database the run
 * switches to (its target) in tidemark.cutover_runs: who ran it, where from,
 * when, how it ended, the frozen source position, the row counts and verdict
 * of the final verification, and each step's duration. A finished run is
 * the signed-off record of the switch; the runbook reads the step durations
 * of the last runs as the expected times. A run killed outright stays
 * 'running' until the next run (or --abort) marks it aborted.
 */
#include "migration/switch_int.h"
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/xmalloc.h"
#include "sinks/pg/pgstate.h"

#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const RUNS_DDL =
    "CREATE TABLE IF NOT EXISTS tidemark.cutover_runs ("
    " id uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,"
    " pipeline text NOT NULL," /* the forward pipeline: names the pair */
    " kind text NOT NULL CHECK (kind IN ('cutover', 'rollback')),"
    " direction text NOT NULL," /* the pipeline that was frozen and drained */
    " status text NOT NULL CHECK (status IN ('running', 'done', 'aborted')),"
    " operator text NOT NULL,"
    " host text,"
    " note text,"
    " source_database text,"
    " target_database text,"
    " started_at timestamptz NOT NULL DEFAULT now(),"
    " finished_at timestamptz,"
    " frozen_lsn pg_lsn," /* the frozen source's WAL position, drained to */
    " switch_lsn pg_lsn," /* where the other direction starts */
    " tables int,"
    " source_rows bigint,"
    " target_rows bigint,"
    " verify_ok boolean,"
    " verify jsonb," /* per table: rows on each side, verdict */
    " steps jsonb NOT NULL DEFAULT '[]',"
    " error text);"
    "CREATE INDEX IF NOT EXISTS cutover_runs_pipeline ON tidemark.cutover_runs"
    " (pipeline, kind, started_at)";

const char *sw_operator(void)
{
    static char name[128];
    const char *who = getenv("SUDO_USER");
    struct passwd *pw;

    if (!name[0]) {
        if (!who || !*who)
            who = (pw = getpwuid(geteuid())) ? pw->pw_name : "unknown";
        snprintf(name, sizeof(name), "%s", who);
    }
    return name;
}

int sw_record_begin(SwitchCtx *c)
{
    char host[256] = "";
    const char *p[8] = {c->opt->fwd->pipeline,
                        c->kind,
                        c->from->pipeline,
                        sw_operator(),
                        host,
                        c->opt->note,
                        c->xdb,
                        c->ydb};
    int rc = pgstate_ensure(c->y, RUNS_DDL);

    gethostname(host, sizeof(host) - 1);
    if (rc == 0)
        rc = sw_value(c->y,
                      "INSERT INTO tidemark.cutover_runs (pipeline, kind, direction, status,"
                      " operator, host, note, source_database, target_database) VALUES ($1, $2,"
                      " $3, 'running', $4, $5, $6, $7, $8) RETURNING id::text",
                      8, p, &c->run_id);
    if (rc < 0)
        return tm_fail_ctx(rc, "recording the %s run on %s", c->kind, c->ydb ? c->ydb : "target");
    return 0;
}

/* status NULL: mark runs of this kind left 'running' by a killed process as aborted. */
int sw_record_update(SwitchCtx *c, const char *status, const char *error)
{
    char fl[24], sl[24], ntab[16], src[24], dst[24];
    char *steps, *verify;
    int rc;

    if (!c->y)
        return 0;
    if (!status) {
        const char *p[3] = {c->opt->fwd->pipeline, c->kind, c->run_id};

        return pgconn_query(c->y,
                            "UPDATE tidemark.cutover_runs SET status = 'aborted', finished_at ="
                            " clock_timestamp(), error = 'interrupted (the process ended);"
                            " cleaned up by a later run' WHERE pipeline = $1 AND kind = $2"
                            " AND status = 'running' AND id::text <> coalesce($3, '')",
                            3, p, NULL);
    }
    if (!c->run_id)
        return 0;
    steps = json_dumps(c->steps, JSON_COMPACT);
    verify = c->verify ? json_dumps(c->verify, JSON_COMPACT) : NULL;
    snprintf(ntab, sizeof(ntab), "%zu", c->tabs.n);
    snprintf(src, sizeof(src), "%lld", c->src_rows);
    snprintf(dst, sizeof(dst), "%lld", c->dst_rows);
    const char *p[11] = {
        c->run_id,
        status,
        steps,
        error,
        c->frozen_lsn ? lsn_format(c->frozen_lsn, fl, sizeof(fl)) : NULL,
        c->switch_lsn ? lsn_format(c->switch_lsn, sl, sizeof(sl)) : NULL,
        c->tabs.n ? ntab : NULL,
        c->verify ? src : NULL,
        c->verify ? dst : NULL,
        c->verify_ok < 0 ? NULL
        : c->verify_ok   ? "true"
                         : "false",
        verify,
    };
    rc = pgconn_query(c->y,
                      "UPDATE tidemark.cutover_runs SET status = $2, steps = $3::jsonb, error = $4,"
                      " frozen_lsn = $5::pg_lsn, switch_lsn = $6::pg_lsn, tables = $7::int,"
                      " source_rows = $8::bigint, target_rows = $9::bigint, verify_ok ="
                      " $10::boolean, verify = $11::jsonb, finished_at = CASE WHEN $2 <>"
                      " 'running' THEN clock_timestamp() END WHERE id = $1::uuid",
                      11, p, NULL);
    free(steps);
    free(verify);
    return rc;
}

int sw_record_switch(SwitchCtx *c)
{
    char fl[24];
    const char *p[5] = {c->from->pipeline, c->to ? c->to->pipeline : NULL, c->run_id,
                        lsn_format(c->frozen_lsn, fl, sizeof(fl)), sw_operator()};
    int rc = pgconn_exec(c->y, "BEGIN");

    if (rc == 0)
        rc = sw_record_update(c, "done", NULL);
    if (rc == 0)
        rc = pgconn_query(c->y,
                          "INSERT INTO tidemark.pipeline_state (pipeline, key, value) VALUES ($1,"
                          " 'switched', jsonb_build_object('to', $2::text, 'run', $3::text,"
                          " 'lsn', $4::text, 'by', $5::text, 'at', now())::text) ON CONFLICT"
                          " (pipeline, key) DO UPDATE SET value = excluded.value,"
                          " updated_at = now()",
                          5, p, NULL);
    if (rc == 0)
        rc = pgconn_exec(c->y, "COMMIT");
    if (rc < 0) {
        PQclear(PQexec(c->y, "ROLLBACK"));
        return tm_fail_ctx(rc, "recording the switch on %s", c->ydb);
    }
    return 0;
}
