/*
 * The cutover/rollback steps that change the other direction and the
 * databases' freeze (see switch_int.h): creating the direction that takes
 * over at the point where both sides are equal, the switch, what follows it,
 * and undoing all of it before the switch.
 *
 * The direction that takes over ("to", Y -> X) needs a slot on Y that exists
 * before anyone may write to Y, and its state on X saying every table is
 * synced at that slot's consistent point: the tables are equal there (X is
 * frozen, the stream drained, the verification passed), so no copy runs.
 * While it is being built, to's state carries a 'switching' record that
 * refuses its daemon's start and keeps what to's state was before, so an
 * abort (here, or `--abort` after a kill) restores it exactly.
 */
#include "migration/switch_int.h"
#include "connectors/pg/catalog.h"
#include "connectors/pg/pgconn.h"
#include "connectors/pg/repl.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/xmalloc.h"
#include "sinks/pg/pgstate.h"
#include "sinks/sink.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

static const char *const PIPELINE_STATE_DDL =
    "CREATE TABLE IF NOT EXISTS tidemark.pipeline_state ("
    " pipeline text NOT NULL, key text NOT NULL, value text,"
    " updated_at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (pipeline, key))";

static int has_table(PGconn *conn, const char *table, bool *yes)
{
    const char *p[1] = {table};
    char *v = NULL;
    int rc = sw_value(conn, "SELECT to_regclass($1) IS NOT NULL", 1, p, &v);

    *yes = rc == 0 && v && v[0] == 't';
    free(v);
    return rc;
}

int sw_switched(SwitchCtx *c, const Config *dir, PGconn *on, char **when)
{
    const char *p[1] = {dir->pipeline};
    bool yes;
    int rc = has_table(on, "tidemark.pipeline_state", &yes);

    (void)c;
    *when = NULL;
    if (rc < 0 || !yes)
        return rc;
    return sw_value(on,
                    "SELECT format('at %s to %s (run %s)', value::jsonb->>'at',"
                    " coalesce(value::jsonb->>'to', 'no fallback'), value::jsonb->>'run')"
                    " FROM tidemark.pipeline_state WHERE pipeline = $1 AND key = 'switched'",
                    1, p, when);
}

/* ---- slots and publications ------------------------------------------------ */

/* Ends the walsender streaming slot (if any) and drops it, with a deadline. */
static int drop_slot(PGconn *conn, const char *slot, const char *where)
{
    const char *p[1] = {slot};
    double deadline = clock_mono_secs() + 30;
    char *v = NULL;
    int rc;

    for (;;) {
        rc = sw_value(conn,
                      "SELECT CASE WHEN active_pid IS NULL THEN 'idle' ELSE"
                      " pg_terminate_backend(active_pid)::text END FROM pg_replication_slots"
                      " WHERE slot_name = $1",
                      1, p, &v);
        if (rc < 0 || !v)
            break; /* gone */
        if (strcmp(v, "idle") == 0) {
            rc = pgconn_query(conn, "SELECT pg_drop_replication_slot($1)", 1, p, NULL);
            if (rc == 0)
                break;
        }
        free(v);
        v = NULL;
        if (clock_mono_secs() > deadline) {
            rc = tm_fail(-EBUSY,
                         "slot %s on %s stays in use: drop it with SELECT"
                         " pg_drop_replication_slot('%s')",
                         slot, where, slot);
            break;
        }
        poll(NULL, 0, 50);
    }
    free(v);
    return rc;
}

static int drop_publication(PGconn *conn, const char *pub)
{
    char *q = pgconn_ident(conn, pub);
    char *sql = xasprintf("DROP PUBLICATION IF EXISTS %s", q);
    int rc = pgconn_exec(conn, sql);

    free(sql);
    free(q);
    return rc;
}

/* ---- to's state on X --------------------------------------------------------- */

/*
 * 'switching' keeps to's rows as they were (only the first such record
 * counts: a leftover is restored before a new run starts).
 */
static int save_to_state(SwitchCtx *c)
{
    const char *p[3] = {c->to->pipeline, c->run_id, c->kind};

    return pgconn_query(
        c->x,
        "INSERT INTO tidemark.pipeline_state (pipeline, key, value) SELECT $1, 'switching',"
        " jsonb_build_object('run', $2::text, 'kind', $3::text, 'saved', jsonb_build_object("
        " 'watermark', (SELECT coalesce(jsonb_agg(to_jsonb(r)), '[]') FROM tidemark.watermark r"
        "  WHERE pipeline = $1),"
        " 'sync_state', (SELECT coalesce(jsonb_agg(to_jsonb(r)), '[]') FROM tidemark.sync_state r"
        "  WHERE pipeline = $1),"
        " 'pipeline_state', (SELECT coalesce(jsonb_agg(to_jsonb(r)), '[]') FROM"
        "  tidemark.pipeline_state r WHERE pipeline = $1)))::text"
        " ON CONFLICT (pipeline, key) DO NOTHING",
        3, p, NULL);
}

static int restore_to_state(PGconn *x, const char *to, bool *found)
{
    static const char *const tables[] = {"watermark", "sync_state", "pipeline_state"};
    const char *p[1] = {to};
    char *v = NULL;
    int rc = sw_value(x,
                      "SELECT 1 FROM tidemark.pipeline_state WHERE pipeline = $1 AND"
                      " key = 'switching'",
                      1, p, &v);

    *found = v != NULL;
    free(v);
    if (rc < 0 || !*found)
        return rc;
    rc = pgconn_exec(x, "BEGIN");
    for (size_t i = 0; rc == 0 && i < 3; i++) {
        const char *keep = i == 2 ? " AND key <> 'switching'" : "";
        char *del = xasprintf("DELETE FROM tidemark.%s WHERE pipeline = $1%s", tables[i], keep);
        char *ins =
            xasprintf("INSERT INTO tidemark.%s SELECT r.* FROM (SELECT"
                      " value::jsonb->'saved'->'%s' AS j FROM tidemark.pipeline_state"
                      " WHERE pipeline = $1 AND key = 'switching') s,"
                      " jsonb_populate_recordset(NULL::tidemark.%s, s.j) r%s",
                      tables[i], tables[i], tables[i], i == 2 ? " WHERE r.key <> 'switching'" : "");

        rc = pgconn_query(x, del, 1, p, NULL);
        if (rc == 0)
            rc = pgconn_query(x, ins, 1, p, NULL);
        free(del);
        free(ins);
    }
    if (rc == 0)
        rc = pgconn_query(x,
                          "DELETE FROM tidemark.pipeline_state WHERE pipeline = $1 AND"
                          " key = 'switching'",
                          1, p, NULL);
    if (rc == 0)
        return pgconn_exec(x, "COMMIT");
    PQclear(PQexec(x, "ROLLBACK"));
    return rc;
}

/* to starts at lsn with every table synced there: they are equal at that point. */
static int write_to_state(SwitchCtx *c, const TableSet *ytabs, Lsn lsn)
{
    char lsnbuf[24];
    const char *p[2] = {c->to->pipeline, lsn_format(lsn, lsnbuf, sizeof(lsnbuf))};
    int rc = pgconn_exec(c->x, "BEGIN");

    if (rc == 0)
        rc = pgconn_query(c->x,
                          "INSERT INTO tidemark.watermark (pipeline, lsn, commit_time, updated_at)"
                          " VALUES ($1, $2::pg_lsn, NULL, now()) ON CONFLICT (pipeline) DO UPDATE"
                          " SET lsn = excluded.lsn, commit_time = NULL, updated_at = now()",
                          2, p, NULL);
    if (rc == 0)
        rc = pgconn_query(c->x, "DELETE FROM tidemark.sync_state WHERE pipeline = $1", 1, p, NULL);
    for (size_t i = 0; rc == 0 && i < ytabs->n; i++) {
        const char *tp[4] = {c->to->pipeline, ytabs->t[i].schema, ytabs->t[i].name, p[1]};

        rc = pgconn_query(c->x,
                          "INSERT INTO tidemark.sync_state (pipeline, schema_name, table_name,"
                          " part, state, part_kind, sync_lsn) VALUES ($1, $2, $3, 0, 'synced',"
                          " 'whole', $4::pg_lsn)",
                          4, tp, NULL);
    }
    if (rc == 0)
        rc = pgconn_query(c->x,
                          "DELETE FROM tidemark.pipeline_state WHERE pipeline = $1 AND key IN"
                          " ('switched', 'halted', 'last_error', 'slot')",
                          1, p, NULL);
    if (rc == 0) {
        const char *sp[3] = {c->to->pipeline, c->to->source.slot, p[1]};

        rc = pgconn_query(c->x,
                          "INSERT INTO tidemark.pipeline_state (pipeline, key, value) VALUES"
                          " ($1, 'slot', jsonb_build_object('name', $2::text, 'lsn',"
                          " $3::text)::text)",
                          3, sp, NULL);
    }
    if (rc == 0)
        return pgconn_exec(c->x, "COMMIT");
    PQclear(PQexec(c->x, "ROLLBACK"));
    return tm_fail_ctx(rc, "writing the state of pipeline %s on %s", c->to->pipeline, c->xdb);
}

/* The sink creates the state tables on X as the daemon will use them. */
static int ensure_state_tables(SwitchCtx *c)
{
    Sink *sink = NULL;
    int rc = sink_new(c->to, &sink);

    if (rc == 0)
        rc = sink->ops->connect(sink, PQparameterStatus(c->x, "server_encoding"));
    sink_free(sink);
    return rc;
}

static int write_reverse_file(SwitchCtx *c)
{
    const char *path = c->rev->path;
    FILE *f = fopen(path, "w");

    if (!f)
        return tm_fail(-errno, "%s: cannot write the fallback configuration: %s", path,
                       strerror(errno));
    if (fputs(c->rev_yaml, f) < 0 || fclose(f) != 0)
        return tm_fail(-EIO, "%s: cannot write the fallback configuration", path);
    return 0;
}

int sw_step_prepare(SwitchCtx *c)
{
    TableSet ytabs = {0};
    ReplConn *repl = NULL;
    const char *pp[1] = {c->to->source.slot};
    char *v = NULL, lsnbuf[24];
    Lsn at = LSN_INVALID;
    int rc = catalog_resolve(c->y, c->to, &ytabs);

    /* Publishing a table without a key would make Y reject its UPDATEs. */
    if (rc == 0)
        rc = catalog_check_identity(&ytabs);
    if (rc == 0)
        rc = ensure_state_tables(c);
    if (rc == 0)
        rc = save_to_state(c);
    if (rc == 0)
        c->to_saved = true;
    if (rc == 0) {
        c->pub_made = true;
        rc = catalog_sync_publication(c->y, c->to->source.publication, &ytabs, NULL);
    }
    if (rc == 0)
        rc = sw_value(c->y, "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", 1, pp, &v);
    if (rc == 0 && v)
        rc = drop_slot(c->y, c->to->source.slot, c->ydb); /* an interrupted run's */
    free(v);
    if (rc == 0) {
        repl = repl_new(c->to);
        rc = repl_connect(repl);
    }
    if (rc == 0) {
        c->slot_made = true;
        rc = repl_create_slot(repl, c->to->source.slot, false, &at, NULL);
    }
    repl_free(repl);
    if (rc == 0)
        rc = write_to_state(c, &ytabs, at);
    if (rc == 0 && c->opt->kind == SWITCH_CUTOVER)
        rc = write_reverse_file(c);
    tableset_release(&ytabs);
    if (rc < 0)
        return rc;
    c->switch_lsn = at;
    snprintf(c->detail, sizeof(c->detail), "slot %s on %s at %s%s%s", c->to->source.slot, c->ydb,
             lsn_format(at, lsnbuf, sizeof(lsnbuf)),
             c->opt->kind == SWITCH_CUTOVER ? ", fallback configuration " : "",
             c->opt->kind == SWITCH_CUTOVER ? c->rev->path : "");
    return 0;
}

/* ---- freezing a database ------------------------------------------------------ */

static int alter_db(PGconn *conn, const char *db, const char *value)
{
    char *q = pgconn_ident(conn, db);
    char *sql =
        value ? xasprintf("ALTER DATABASE %s SET default_transaction_read_only = %s", q, value)
              : xasprintf("ALTER DATABASE %s RESET default_transaction_read_only", q);
    int rc = pgconn_exec(conn, sql);

    free(sql);
    free(q);
    return rc;
}

/* The database's own setting ("on"/"off"), or NULL when it has none. */
static int db_setting(PGconn *conn, char **out)
{
    return sw_value(conn,
                    "SELECT split_part(s, '=', 2) FROM pg_db_role_setting d, unnest(d.setconfig) s"
                    " WHERE d.setdatabase = (SELECT oid FROM pg_database WHERE datname ="
                    " current_database()) AND d.setrole = 0"
                    " AND s LIKE 'default\\_transaction\\_read\\_only=%'",
                    0, NULL, out);
}

/* Ends every other client session of the database and waits until they are gone. */
static int end_sessions(SwitchCtx *c, int *ended)
{
    char lockpid[16];
    const char *p[1] = {lockpid};
    PGresult *res = NULL;
    char *pids = NULL, *left = NULL;
    double deadline = clock_mono_secs() + 10;
    int rc;

    snprintf(lockpid, sizeof(lockpid), "%d", c->xlock ? PQbackendPID(c->xlock) : 0);
    rc = pgconn_query(c->x,
                      "SELECT count(*), coalesce(array_agg(pid), '{}')::text FROM (SELECT pid,"
                      " pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname ="
                      " current_database() AND backend_type = 'client backend' AND pid <>"
                      " pg_backend_pid() AND pid <> $1::int AND coalesce(application_name, '')"
                      " <> 'tidemark') s",
                      1, p, &res);
    *ended = 0;
    if (rc == 0) {
        *ended = atoi(PQgetvalue(res, 0, 0));
        pids = xstrdup(PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    while (rc == 0 && *ended > 0) {
        const char *wp[1] = {pids};

        free(left);
        rc = sw_value(c->x, "SELECT 1 FROM pg_stat_activity WHERE pid = ANY ($1::int[])", 1, wp,
                      &left);
        if (rc < 0 || !left)
            break;
        if (clock_mono_secs() > deadline) {
            rc = tm_fail(-EBUSY, "sessions %s on %s did not end within 10 s", pids, c->xdb);
            break;
        }
        poll(NULL, 0, 20);
    }
    free(left);
    free(pids);
    return rc;
}

int sw_step_switch(SwitchCtx *c)
{
    const char *fp[4] = {c->opt->fwd->pipeline, c->xdb, NULL, c->run_id};
    int ended = 0;
    int rc = pgstate_ensure(c->x, PIPELINE_STATE_DDL);

    if (rc == 0)
        rc = db_setting(c->x, &c->x_previous);
    fp[2] = c->x_previous;
    if (rc == 0)
        rc = pgconn_query(c->x,
                          "INSERT INTO tidemark.pipeline_state (pipeline, key, value) VALUES ($1,"
                          " 'frozen', jsonb_build_object('database', $2::text, 'previous',"
                          " $3::text, 'run', $4::text, 'at', now())::text) ON CONFLICT"
                          " (pipeline, key) DO UPDATE SET value = excluded.value,"
                          " updated_at = now()",
                          4, fp, NULL);
    if (rc == 0) {
        c->x_frozen = true;
        rc = alter_db(c->x, c->xdb, "on");
    }
    /* Committed first: a session that starts from now on is read-only. Those
     * that started before are ended (their open transactions roll back; a
     * writer waiting for the locks never got to commit). */
    if (rc == 0)
        rc = end_sessions(c, &ended);
    if (rc == 0)
        rc = sw_fault(c, "frozen");
    if (rc == 0)
        rc = sw_record_switch(c);
    if (rc < 0)
        return rc;
    c->switched = true;
    snprintf(c->detail, sizeof(c->detail),
             "%s read-only (%d session(s) ended); switch signed off by %s on %s", c->xdb, ended,
             sw_operator(), c->ydb);
    sw_fault(c, "switched"); /* kill only: past the switch nothing fails */
    return 0;
}

/* ---- after the switch ------------------------------------------------------------ */

static int unfreeze(PGconn *conn, const char *pipeline, const char *db, bool *was)
{
    const char *p[1] = {pipeline};
    char *v = NULL;
    bool yes;
    int rc = has_table(conn, "tidemark.pipeline_state", &yes);

    *was = false;
    if (rc < 0 || !yes)
        return rc;
    rc = sw_value(conn,
                  "SELECT coalesce(value::jsonb->>'previous', '-') FROM tidemark.pipeline_state"
                  " WHERE pipeline = $1 AND key = 'frozen'",
                  1, p, &v);
    if (rc == 0 && v) {
        *was = true;
        rc = alter_db(conn, db, strcmp(v, "-") == 0 ? NULL : v);
        if (rc == 0)
            rc = pgconn_query(conn,
                              "DELETE FROM tidemark.pipeline_state WHERE pipeline = $1 AND"
                              " key = 'frozen'",
                              1, p, NULL);
    }
    free(v);
    return rc;
}

int sw_step_finish(SwitchCtx *c)
{
    const char *tp[1] = {c->to ? c->to->pipeline : ""};
    bool was = false;
    int guarded = 0;
    int rc = drop_slot(c->x, c->from->source.slot, c->xdb);

    if (rc == 0)
        rc = drop_publication(c->x, c->from->source.publication);
    if (rc == 0)
        rc = unfreeze(c->y, c->opt->fwd->pipeline, c->ydb, &was);
    if (rc == 0 && c->to) {
        bool yes;

        rc = has_table(c->x, "tidemark.pipeline_state", &yes);
        if (rc == 0 && yes)
            rc = pgconn_query(c->x,
                              "DELETE FROM tidemark.pipeline_state WHERE pipeline = $1 AND"
                              " key = 'switching'",
                              1, tp, NULL);
    }
    guarded = sw_guard_stop(c);
    if (c->xlock) {
        PQfinish(c->xlock); /* releases the table locks */
        c->xlock = NULL;
    }
    if (rc < 0)
        return tm_fail_ctx(rc,
                           "the switch is done and stays, but finishing it failed (run"
                           " `tidemark %s` again to finish)",
                           c->kind);
    snprintf(c->detail, sizeof(c->detail), "slot %s dropped on %s%s%s, locks released%s",
             c->from->source.slot, c->xdb, was ? ", writes allowed again on " : "",
             was ? c->ydb : "",
             guarded ? "; writers that waited inside a transaction were ended" : "");
    return 0;
}

/* ---- undo ---------------------------------------------------------------------- */

static void undo_line(SwitchCtx *c, const char *what, int rc)
{
    fprintf(c->opt->out, "  undo: %s%s%s\n", what, rc < 0 ? ": FAILED: " : "",
            rc < 0 ? tm_error() : "");
}

/* A connection that died during the run is opened again for the undo. */
static void reopen(PGconn **conn, const ConfigEndpoint *ep, const char *what)
{
    if (*conn && PQstatus(*conn) == CONNECTION_OK)
        return;
    if (*conn)
        PQfinish(*conn);
    *conn = NULL;
    sw_open(ep, what, conn);
}

void sw_undo(SwitchCtx *c)
{
    int rc;

    reopen(&c->x, &c->from->source.conn, "source");
    reopen(&c->y, &c->from->target.conn, "target");
    if (c->to_saved && c->x) {
        bool found;

        rc = restore_to_state(c->x, c->to->pipeline, &found);
        undo_line(c, "state of the fallback direction restored", rc);
    }
    if (c->slot_made && c->y) {
        rc = drop_slot(c->y, c->to->source.slot, c->ydb);
        undo_line(c, "its slot dropped", rc);
    }
    if (c->pub_made && c->y) {
        rc = drop_publication(c->y, c->to->source.publication);
        undo_line(c, "its publication dropped", rc);
    }
    if (c->seq_before && c->y) {
        const char *p[1] = {c->seq_before};

        rc = pgconn_query(c->y,
                          "SELECT setval(format('%I.%I', e->>'s', e->>'n')::regclass,"
                          " coalesce((e->>'v')::bigint, (e->>'start')::bigint), e->>'v' IS NOT"
                          " NULL) FROM jsonb_array_elements($1::jsonb) e WHERE"
                          " to_regclass(format('%I.%I', e->>'s', e->>'n')) IS NOT NULL",
                          1, p, NULL);
        undo_line(c, "sequences on the target put back", rc);
    }
    if (c->x_frozen && c->x) {
        bool was;

        rc = unfreeze(c->x, c->opt->fwd->pipeline, c->xdb, &was);
        undo_line(c, "default_transaction_read_only of the source database put back", rc);
    }
    sw_guard_stop(c);
    if (c->xlock) {
        PQfinish(c->xlock);
        c->xlock = NULL;
        undo_line(c, "table locks released", 0);
    }
}

int sw_cleanup_leftovers(SwitchCtx *c, bool *found)
{
    bool was = false, restored = false;
    char *v = NULL;
    int rc = unfreeze(c->x, c->opt->fwd->pipeline, c->xdb, &was);

    *found = false;
    if (rc == 0 && was) {
        fprintf(c->opt->out, "  %s was left frozen by an interrupted run: writable again\n",
                c->xdb);
        *found = true;
    }
    if (rc < 0 || !c->to)
        return rc;
    bool yes;
    rc = has_table(c->x, "tidemark.pipeline_state", &yes);
    if (rc == 0 && yes)
        rc = restore_to_state(c->x, c->to->pipeline, &restored);
    if (rc == 0 && restored) {
        const char *pp[1] = {c->to->source.slot};

        fprintf(c->opt->out,
                "  pipeline %s was left half-created by an interrupted run:"
                " removed\n",
                c->to->pipeline);
        *found = true;
        rc = sw_value(c->y, "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", 1, pp, &v);
        if (rc == 0 && v)
            rc = drop_slot(c->y, c->to->source.slot, c->ydb);
        if (rc == 0)
            rc = drop_publication(c->y, c->to->source.publication);
    }
    free(v);
    if (rc == 0)
        sw_record_update(c, NULL, NULL); /* marks runs left 'running' as aborted */
    return rc;
}
