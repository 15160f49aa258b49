/*
 * schema: copy — the foreign keys' last step (see connectors/pg/schemafk.h):
 * created NOT VALID before the stream starts, validated on the loop once
 * every table has caught up. A one-second timer waits for that point (every
 * copy committed and the durable position past the last copy's snapshot);
 * then the statements run one at a time on a connection of their own,
 * without blocking the loop (its socket is one more ev_io). A key that
 * cannot be validated is named in the log and stays NOT VALID; the stream
 * goes on, and the next start tries again. tidemark.pipeline_state
 * 'schema foreign-keys' says 'pending', 'validated' or what failed.
 */
#include "daemon/pipeline_int.h"
#include "connectors/pg/pgconn.h"
#include "connectors/pg/schemafk.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <stdlib.h>
#include <string.h>

struct FkJob {
    Pipeline *p;
    SchemaFks fks;
    ev_timer timer;
    ev_io io;
    PGconn *conn;
    size_t next;     /* fks entry whose statement runs (or runs next) */
    bool running;    /* a statement is in flight */
    bool retry;      /* a lock timeout: try again on a later tick */
    int ok, nfailed; /* of this pass */
    Buf failed;
    char *err; /* of the statement in flight */
};

static const char *const KEY = "schema foreign-keys";

static int set_state(PGconn *dst, const char *pipeline, const char *value)
{
    const char *params[3] = {pipeline, KEY, value};

    return pgconn_query(dst,
                        "INSERT INTO tidemark.pipeline_state (pipeline, key, value) VALUES ($1,"
                        " $2, $3) ON CONFLICT (pipeline, key) DO UPDATE SET value = excluded.value,"
                        " updated_at = now()",
                        3, params, NULL);
}

static void job_close(FkJob *j)
{
    ev_io_stop(j->p->loop, &j->io);
    if (j->conn)
        PQfinish(j->conn);
    j->conn = NULL;
    j->running = false;
    free(j->err);
    j->err = NULL;
}

static void job_free(Pipeline *p)
{
    FkJob *j = p->fk;

    if (!j)
        return;
    ev_timer_stop(p->loop, &j->timer);
    job_close(j);
    schemafk_release(&j->fks);
    buf_release(&j->failed);
    free(j);
    p->fk = NULL;
}

/* Every copy committed and the durable position past the last copy's snapshot. */
static bool caught_up(const Pipeline *p)
{
    Lsn last = LSN_INVALID;

    if (!p->streaming || p->sink_down || !p->tstate)
        return false;
    for (size_t i = 0; i < p->tabs.n; i++) {
        const TableState *ts = &p->tstate[i];

        if (!ts->synced)
            return false;
        for (int k = 0; k < ts->nparts; k++)
            if (ts->parts[k].sync_lsn > last)
                last = ts->parts[k].sync_lsn;
    }
    return p->sink->ops->durable(p->sink) >= last;
}

static void finish_pass(FkJob *j)
{
    Pipeline *p = j->p;
    char *state = NULL;

    job_close(j);
    if (j->retry)
        return; /* the timer tries again */
    if (j->nfailed == 0) {
        log_info("schema copy: foreign keys validated (%d checked); the target's constraints are"
                 " complete",
                 j->ok);
        state = xstrdup("validated");
    } else {
        log_warn("schema copy: %d foreign key(s) stay NOT VALID (named above); the stream goes"
                 " on. Repair the rows (or add the referenced table to source.tables) and"
                 " restart tidemark to validate them",
                 j->nfailed);
        state = xasprintf("not valid: %s", buf_cstr(&j->failed));
    }
    PGconn *dst = NULL;

    if (pgconn_open(&p->cfg->target.conn, PGCONN_NORMAL, "target", &dst) == 0 &&
        set_state(dst, p->cfg->pipeline, state) < 0)
        log_warn("schema copy: recording the foreign keys' state: %s", tm_error());
    if (dst)
        PQfinish(dst);
    free(state);
    job_free(p);
}

static void run_next(FkJob *j);

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    FkJob *j = w->data;
    const SchemaFk *fk = &j->fks.fk[j->next];
    PGresult *res;

    if (!PQconsumeInput(j->conn)) {
        log_warn("schema copy: lost the connection validating foreign keys: %s; trying again",
                 pgconn_errmsg(j->conn, NULL));
        j->retry = true;
        finish_pass(j);
        return;
    }
    while (!PQisBusy(j->conn) && (res = PQgetResult(j->conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && !j->err) {
            const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);

            j->err = xstrdup(pgconn_errmsg(j->conn, res));
            /* lock_not_available: a lock the stream holds; not a verdict on the rows */
            if (code && strcmp(code, "55P03") == 0)
                j->retry = true;
        }
        PQclear(res);
    }
    if (PQisBusy(j->conn))
        return;
    ev_io_stop(loop, w);
    j->running = false;
    if (j->retry && j->err) {
        log_info("schema copy: foreign key %s waits for a lock (%s); trying again", fk->name,
                 j->err);
        finish_pass(j);
        return;
    }
    if (j->err) {
        log_error("schema copy: a foreign key could not be validated: %s on %s.%s: %s", fk->name,
                  fk->schema, fk->table, j->err);
        buf_printf(&j->failed, "%s%s", j->nfailed++ ? ", " : "", fk->name);
        free(j->err);
        j->err = NULL;
    } else {
        j->ok++;
    }
    j->next++;
    run_next(j);
}

/* Sends the next statement, or ends the pass. */
static void run_next(FkJob *j)
{
    char *sql = NULL;

    for (; j->next < j->fks.n; j->next++) {
        if (schemafk_next_step(j->conn, &j->fks.fk[j->next], &sql) < 0) {
            log_warn("schema copy: %s; trying again", tm_error());
            j->retry = true;
            finish_pass(j);
            return;
        }
        if (sql)
            break;
    }
    if (!sql) {
        finish_pass(j);
        return;
    }
    log_info("schema copy: validating foreign key %s on %s.%s", j->fks.fk[j->next].name,
             j->fks.fk[j->next].schema, j->fks.fk[j->next].table);
    if (!PQsendQuery(j->conn, sql)) {
        log_warn("schema copy: %s; trying again", pgconn_errmsg(j->conn, NULL));
        j->retry = true;
        free(sql);
        finish_pass(j);
        return;
    }
    free(sql);
    j->running = true;
    ev_io_set(&j->io, PQsocket(j->conn), EV_READ);
    ev_io_start(j->p->loop, &j->io);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    FkJob *j = w->data;
    Pipeline *p = j->p;

    if (j->running || !caught_up(p))
        return;
    j->retry = false;
    j->next = 0;
    j->ok = j->nfailed = 0;
    buf_clear(&j->failed);
    /* The stream holds row locks only; a key added on a partitioned table
     * needs a table lock: never queue behind (or ahead of) the apply. */
    if (pgconn_open(&p->cfg->target.conn, PGCONN_NORMAL, "target", &j->conn) < 0 ||
        pgconn_exec(j->conn, "SET lock_timeout = '2s'") < 0) {
        log_warn("schema copy: cannot validate the foreign keys yet: %s", tm_error());
        job_close(j);
        return;
    }
    run_next(j);
}

int pipeline_fk_prepare(Pipeline *p)
{
    PGconn *src = NULL, *dst = NULL;
    const char *params[2] = {p->cfg->pipeline, KEY};
    PGresult *res;
    FkJob *j;
    int rc;

    if (!p->cfg->schema_copy || p->fk)
        return 0;
    rc = pgconn_open(&p->cfg->target.conn, PGCONN_NORMAL, "target", &dst);
    if (rc == 0)
        rc = pgconn_query(dst,
                          "SELECT value FROM tidemark.pipeline_state WHERE pipeline = $1 AND"
                          " key = $2",
                          2, params, &res);
    if (rc < 0)
        goto out;
    bool done = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "validated") == 0;
    PQclear(res);
    if (done)
        goto out;
    j = xcalloc(1, sizeof(*j));
    j->p = p;
    rc = pgconn_open(&p->cfg->source.conn, PGCONN_NORMAL, "source", &src);
    if (rc == 0)
        rc = schemafk_load(src, &p->tabs, &j->fks);
    if (rc == 0)
        rc = schemafk_create_not_valid(dst, &j->fks);
    if (rc == 0)
        rc = set_state(dst, p->cfg->pipeline, "pending");
    if (rc < 0) {
        schemafk_release(&j->fks);
        free(j);
        goto out;
    }
    p->fk = j;
    ev_timer_init(&j->timer, on_timer, 1.0, 1.0);
    ev_init(&j->io, on_io);
    j->timer.data = j->io.data = j;
    ev_timer_start(p->loop, &j->timer);
out:
    if (src)
        PQfinish(src);
    if (dst)
        PQfinish(dst);
    return rc;
}

void pipeline_fk_stop(Pipeline *p)
{
    if (p->fk && p->fk->running && p->fk->conn) {
        PGcancel *c = PQgetCancel(p->fk->conn);
        char buf[256];

        if (c) {
            PQcancel(c, buf, sizeof(buf));
            PQfreeCancel(c);
        }
    }
    job_free(p);
}
