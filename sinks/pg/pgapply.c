/*
 * The PostgreSQL sink's stream path (see pgsink.h). Every command sent in pipeline mode gets a
 * Pending record in a FIFO; results are matched to it in order, so an error
 * names the table, operation and source LSN it came from. Statements are
 * prepared once per relation shape (the set of columns an UPDATE sets
 * depends on which values were unchanged TOAST, invariant 4) and values
 * always travel as parameters (invariant 7).
 */
#include "sinks/pg/pgsink_int.h"
#include "connectors/pg/pgconn.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/log.h"
#include "core/transform/mapping.h"
#include "core/xmalloc.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>

Pending *pgapply_pend_push(PgSink *s, PendKind kind)
{
    if (s->pend_count == s->pend_cap) {
        Pending *n = xcalloc(s->pend_cap * 2, sizeof(Pending));

        for (size_t i = 0; i < s->pend_count; i++)
            n[i] = s->pend[(s->pend_head + i) % s->pend_cap];
        free(s->pend);
        s->pend = n;
        s->pend_head = 0;
        s->pend_cap *= 2;
    }
    Pending *p = &s->pend[(s->pend_head + s->pend_count) % s->pend_cap];
    memset(p, 0, sizeof(*p));
    p->kind = kind;
    s->pend_count++;
    return p;
}

/* A lost connection is -ENOTCONN (the pipeline reconnects); anything else is -EIO. */
static int conn_code(PgSink *s, int rc)
{
    return PQstatus(s->conn) == CONNECTION_BAD ? -ENOTCONN : rc;
}

int pgapply_send_failed(PgSink *s, const char *what)
{
    return tm_fail(conn_code(s, -EIO), "target: sending %s: %s", what,
                   pgconn_errmsg(s->conn, NULL));
}

static int send_simple(PgSink *s, PendKind kind, const char *sql)
{
    if (!PQsendQueryParams(s->conn, sql, 0, NULL, NULL, NULL, NULL, 0))
        return pgapply_send_failed(s, sql);
    pgapply_pend_push(s, kind);
    return 0;
}

int pgapply_send_prepare(PgSink *s, const char *name, const char *sql, const char *table)
{
    if (!PQsendPrepare(s->conn, name, sql, 0, NULL))
        return pgapply_send_failed(s, "a prepared statement");
    Pending *p = pgapply_pend_push(s, PEND_PREPARE);
    snprintf(p->table, sizeof(p->table), "%s", table);
    return 0;
}

/*
 * The watermark moves only from the position the previous batch left ($4):
 * batches are pipelined, so when one fails the server still runs the ones
 * queued behind it; their watermark update then matches no row and they roll
 * back too, so no later batch can commit past a failed one (invariant 2).
 */
static int send_sync(PgSink *s, Lsn lsn, PgTime commit_time);

static const char *const WM_SQL =
    "UPDATE tidemark.watermark SET lsn = $2::pg_lsn, commit_time = coalesce("
    "'2000-01-01 00:00:00+00'::timestamptz + $3::bigint * interval '1 microsecond',"
    " commit_time), updated_at = now() WHERE pipeline = $1 AND lsn = $4::pg_lsn";

void pgapply_reset_session(PgSink *s)
{
    /* The open batch died with the session (the stream replays it), so runs
     * the pipeline released meanwhile were lost with it, not dropped from a
     * batch that could still commit. */
    s->run_lost = false;
    s->session++;
    for (size_t i = 0; i < s->ndealloc; i++)
        free(s->dealloc[i]);
    s->ndealloc = 0;
    pgrun_discard_all(s);
    pgtarget_release(&s->tcat);
}

int pgapply_start(Sink *base, Lsn durable)
{
    PgSink *s = pgsink_of(base);
    /* Read before pipeline mode: the stream never waits on the catalog. */
    int lrc = pgtarget_load(s->conn, &s->tcat);

    if (lrc < 0)
        return lrc;
    if (PQenterPipelineMode(s->conn) != 1)
        return tm_fail(-EIO, "target: cannot enter pipeline mode: %s",
                       pgconn_errmsg(s->conn, NULL));
    if (PQsetnonblocking(s->conn, 1) != 0)
        return tm_fail(-EIO, "target: cannot switch to non-blocking mode");
    s->pipelined = true;
    s->dl_prepared = false;
    s->durable = s->queued_lsn = durable;
    int rc = pgapply_send_prepare(s, "tm_wm", WM_SQL, "tidemark.watermark");

    return rc == 0 ? send_sync(s, LSN_INVALID, 0) : rc;
}

/* Grows the parameter arrays and resets the scratch buffer for one command. */
void pgapply_params_reset(PgSink *s, size_t n)
{
    if (n > s->params_cap) {
        s->params_cap = n + 16;
        s->params = xrealloc(s->params, s->params_cap * sizeof(*s->params));
        s->param_off = xrealloc(s->param_off, s->params_cap * sizeof(*s->param_off));
    }
    buf_clear(&s->scratch);
}

/* Copies a value NUL-terminated into scratch (libpq's text parameters need it). */
int pgapply_param_set(PgSink *s, size_t i, const ColValue *v, const char *table, const char *col)
{
    if (v->state == COL_NULL) {
        s->param_off[i] = SIZE_MAX;
        return 0;
    }
    if (v->state != COL_TEXT)
        return tm_fail(-EPROTO, "%s.%s: unexpected %s value in the stream", table, col,
                       v->state == COL_BINARY ? "binary" : "unchanged-TOAST");
    if (memchr(v->data, '\0', v->len))
        return tm_fail(-EINVAL, "%s.%s: value contains a NUL byte", table, col);
    s->param_off[i] = s->scratch.len;
    buf_append(&s->scratch, v->data, v->len);
    buf_putc(&s->scratch, '\0');
    return 0;
}

/* A text parameter as is (a set statement's array literal). */
void pgapply_param_text(PgSink *s, size_t i, const char *data, size_t len)
{
    s->param_off[i] = s->scratch.len;
    buf_append(&s->scratch, data, len);
    buf_putc(&s->scratch, '\0');
}

/* Resolves offsets to pointers once scratch has stopped growing. */
static void params_finish(PgSink *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        s->params[i] = s->param_off[i] == SIZE_MAX ? NULL : s->scratch.data + s->param_off[i];
}

/* A statement name to DEALLOCATE once what is queued before it is through. */
void pgapply_dealloc_later(PgSink *s, unsigned long session, const char *name)
{
    if (!name[0] || session != s->session)
        return; /* that session is gone, and its statements with it */
    if (s->ndealloc == s->dealloc_cap) {
        s->dealloc_cap = s->dealloc_cap ? 2 * s->dealloc_cap : 16;
        s->dealloc = xrealloc(s->dealloc, s->dealloc_cap * sizeof(char *));
    }
    s->dealloc[s->ndealloc++] = xstrdup(name);
}

void pgapply_stmt_name(PgSink *s, char *out, size_t len)
{
    snprintf(out, len, "tm_s%lu", ++s->stmt_seq);
}

#define FLUSH_REQUEST_BYTES (1024u * 1024)

int pgapply_send_stmt(PgSink *s, const char *name, size_t nparams, char op, long expect,
                      const char *table, Lsn lsn, const char *key, size_t nchanges)
{
    params_finish(s, nparams);
    if (!PQsendQueryPrepared(s->conn, name, (int)nparams, s->params, NULL, NULL, 0))
        return pgapply_send_failed(s, "a statement");
    Pending *p = pgapply_pend_push(s, PEND_STMT);
    p->op = op;
    p->expect = expect;
    if (key)
        snprintf(p->key, sizeof(p->key), "%s", key);
    p->lsn = lsn;
    p->bytes = s->scratch.len;
    s->inflight_bytes += p->bytes;
    snprintf(p->table, sizeof(p->table), "%s", table);
    s->batch_changes += nchanges;
    /* The server holds its results until a Sync or a full output buffer:
     * inside one huge transaction (no Sync for a long while) results of a
     * few large statements would never come back, and the backpressure
     * that waits for them would wait forever. Ask for them now and then. */
    s->unflushed_bytes += p->bytes + 64;
    if (s->unflushed_bytes >= FLUSH_REQUEST_BYTES) {
        if (!PQsendFlushRequest(s->conn))
            return pgapply_send_failed(s, "a flush request");
        s->unflushed_bytes = 0;
    }
    return 0;
}

bool pgapply_can_send(const PgSink *s)
{
    return !(s->begin_pending && s->gated);
}

int pgapply_ready(PgSink *s)
{
    if (!s->begin_pending)
        return 0;
    if (s->gated)
        return -EBUSY;
    s->begin_pending = false;
    return send_simple(s, PEND_BEGIN, "BEGIN");
}

int pgapply_txn_begin(Sink *base, const TxnInfo *txn)
{
    PgSink *s = pgsink_of(base);

    s->txn_open = true;
    if (s->batch_open)
        return 0;
    s->batch_open = true;
    s->batch_changes = 0;
    s->batch_txns = 0;
    /* The previous batch's COMMIT waits for its checks: this one gathers
     * meanwhile and begins on the target after it. */
    if (s->gated) {
        s->begin_pending = true;
        return 0;
    }
    return send_simple(s, PEND_BEGIN, "BEGIN");
}

int pgapply_apply(Sink *base, RelEntry *rel, const Change *chg, const TxnInfo *txn)
{
    PgSink *s = pgsink_of(base);
    SinkRel *r = pgrow_rel(s, rel);
    bool taken = false;
    int rc = pgrun_add(s, rel, r, chg, txn, &taken);

    if (rc < 0 || taken)
        return rc;
    return pgrow_apply(s, rel, r, chg, txn);
}

/* Everything gathered goes out before a Relation message replaces shapes. */
int pgapply_barrier(Sink *base)
{
    PgSink *s = pgsink_of(base);

    return s->batch_open ? pgrun_flush_all(s) : 0;
}

static const char *const DL_SQL =
    "INSERT INTO tidemark.dead_letter (pipeline, table_name, lsn, xid, op, row, error)"
    " VALUES ($1, $2, $3::pg_lsn, $4::bigint, $5, $6::jsonb, $7)";

/*
 * A change the mapping could not transform: its full source row, the error
 * and where it came from, queued in the open batch like any statement so it
 * commits (or rolls back) with the rows around it (invariant 5).
 */
int pgapply_dead_letter(Sink *base, const RelEntry *rel, const Change *chg, const TxnInfo *txn,
                        const char *error)
{
    PgSink *s = pgsink_of(base);
    const Tuple *row = chg->kind == CHG_INSERT   ? &chg->insert.newtup
                       : chg->kind == CHG_UPDATE ? &chg->update.newtup
                                                 : &chg->del.oldtup;
    const char *op = chg->kind == CHG_INSERT   ? "INSERT"
                     : chg->kind == CHG_UPDATE ? "UPDATE"
                                               : "DELETE";
    char lsnbuf[24], xidbuf[16];
    Buf json = BUF_INIT;
    int rc;

    if (!s->batch_open)
        return tm_fail(-EPROTO, "pgsink: dead letter outside a transaction");
    rc = pgapply_ready(s);
    if (rc < 0)
        return rc;
    if (!s->dl_prepared) {
        rc = pgapply_send_prepare(s, "tm_dl", DL_SQL, "tidemark.dead_letter");
        if (rc < 0)
            return rc;
        s->dl_prepared = true;
    }
    /* An UPDATE's new tuple may lack unchanged TOAST columns: the full old
     * row (REPLICA IDENTITY FULL) supplies them. */
    if (chg->kind == CHG_UPDATE && chg->update.old_kind == 'O') {
        Buf merged = BUF_INIT;
        Tuple t = *row;
        ColValue *cols = xcalloc(t.ncols ? t.ncols : 1, sizeof(ColValue));

        for (uint16_t i = 0; i < t.ncols; i++)
            cols[i] = t.cols[i].state == COL_UNCHANGED && i < chg->update.oldtup.ncols
                          ? chg->update.oldtup.cols[i]
                          : t.cols[i];
        t.cols = cols;
        mapping_row_json(&rel->info, &t, &merged);
        free(cols);
        buf_release(&json);
        json = merged;
    } else {
        mapping_row_json(&rel->info, row, &json);
    }
    snprintf(xidbuf, sizeof(xidbuf), "%u", txn->xid);
    lsn_format(txn->final_lsn, lsnbuf, sizeof(lsnbuf));
    pgapply_params_reset(s, 7);
    const char *vals[7] = {s->cfg->pipeline, rel->display, lsnbuf, xidbuf, op,
                           buf_cstr(&json),  error};
    for (size_t i = 0; i < 7; i++) {
        ColValue v = {COL_TEXT, (uint32_t)strlen(vals[i]), vals[i]};

        pgapply_param_set(s, i, &v, "tidemark.dead_letter", "value");
    }
    buf_release(&json);
    rc = pgapply_send_stmt(s, "tm_dl", 7, 'L', -1, rel->display, txn->final_lsn, NULL, 1);
    return rc;
}

int pgapply_truncate(Sink *base, RelEntry **rels, uint32_t nrels, uint8_t flags, const TxnInfo *txn)
{
    PgSink *s = pgsink_of(base);

    Buf sql = BUF_INIT;
    int rc;

    if (nrels == 0)
        return 0;
    rc = pgapply_ready(s);
    if (rc == 0)
        rc = pgrun_flush_all(s); /* what came before the TRUNCATE goes first */
    if (rc < 0)
        return rc;
    /* ONLY per relation: a partitioned table refuses it (its rows are in
     * its partitions); a plain one keeps its inheritance children's rows. */
    buf_puts(&sql, "TRUNCATE ");
    for (uint32_t i = 0; i < nrels; i++) {
        SinkRel *r = pgrow_rel(s, rels[i]);

        buf_printf(&sql, "%s%s%s", i ? ", " : "", r->only ? "ONLY " : "", r->qname);
    }
    if (flags & TRUNCATE_RESTART_IDENTITY)
        buf_puts(&sql, " RESTART IDENTITY");
    if (flags & TRUNCATE_CASCADE)
        buf_puts(&sql, " CASCADE");
    rc = send_simple(s, PEND_STMT, buf_cstr(&sql));
    if (rc == 0) {
        Pending *p = &s->pend[(s->pend_head + s->pend_count - 1) % s->pend_cap];
        p->op = 'T';
        p->lsn = txn ? txn->final_lsn : LSN_INVALID;
        snprintf(p->table, sizeof(p->table), "%s", rels[0]->display);
        s->batch_changes++;
    }
    buf_release(&sql);
    return rc;
}

int pgapply_txn_commit(Sink *base, const TxnInfo *txn)
{
    PgSink *s = pgsink_of(base);

    s->txn_open = false;
    s->batch_txns++;
    s->batch_end = txn->end_lsn;
    s->batch_commit_time = txn->commit_time;
    return 0;
}

static int send_watermark(PgSink *s, Lsn lsn, PgTime commit_time, bool have_time)
{
    char lsnbuf[24], prevbuf[24];
    char timebuf[24];
    const char *params[4] = {s->cfg->pipeline, lsn_format(lsn, lsnbuf, sizeof(lsnbuf)), NULL,
                             lsn_format(s->queued_lsn, prevbuf, sizeof(prevbuf))};

    if (have_time) {
        snprintf(timebuf, sizeof(timebuf), "%lld", (long long)commit_time);
        params[2] = timebuf;
    }
    if (!PQsendQueryPrepared(s->conn, "tm_wm", 4, params, NULL, NULL, 0))
        return pgapply_send_failed(s, "the watermark");
    Pending *p = pgapply_pend_push(s, PEND_WATERMARK);
    p->expect = 1;
    p->lsn = lsn;
    return 0;
}

static int send_sync(PgSink *s, Lsn lsn, PgTime commit_time)
{
    if (!PQpipelineSync(s->conn))
        return pgapply_send_failed(s, "a pipeline sync");
    s->unflushed_bytes = 0;
    Pending *p = pgapply_pend_push(s, PEND_SYNC);
    p->lsn = lsn;
    p->commit_time = commit_time;
    if (lsn > s->queued_lsn)
        s->queued_lsn = lsn;
    return 0;
}

int pgapply_close_batch(Sink *base)
{
    PgSink *s = pgsink_of(base);

    int rc;

    if (!s->batch_open || s->txn_open)
        return 0;
    if (s->batch_txns == 0)
        return pgapply_abort_batch(base);
    if (!pgapply_can_send(s))
        return 0; /* still gathering: closed once the previous batch committed */
    rc = pgapply_ready(s);
    if (rc < 0)
        return rc;
    /* The COMMIT waits for this Sync's result: a Sync inside BEGIN does
     * not commit, it only makes the server answer every statement so far. */
    rc = pgrun_flush_all(s);
    if (rc == 0 && s->run_lost)
        rc = tm_fail(-EPROTO, "pgsink: changes gathered for a set statement were dropped"
                              " unsent; refusing to commit the batch");
    if (rc == 0 && !s->own_position)
        rc = send_watermark(s, s->batch_end, s->batch_commit_time, true);
    if (rc == 0 && !PQpipelineSync(s->conn))
        rc = pgapply_send_failed(s, "a pipeline sync");
    if (rc == 0) {
        pgapply_pend_push(s, PEND_SYNC)->gate = true;
        s->gated = true;
        s->gate_lsn = s->batch_end;
        s->gate_commit_time = s->batch_commit_time;
    }
    s->batch_open = false;
    return rc;
}

void pgsink_own_position(Sink *base)
{
    pgsink_of(base)->own_position = true;
}

int pgsink_batch_position(Sink *base, const char *sql, int nparams, const char *const *params,
                          const char *what)
{
    PgSink *s = pgsink_of(base);
    int rc;

    if (!s->batch_open)
        return tm_fail(-EPROTO, "pgsink: a position outside a batch");
    rc = pgapply_ready(s); /* -EBUSY while the previous batch is gated: try again after */
    if (rc < 0)
        return rc;
    if (!PQsendQueryParams(s->conn, sql, nparams, NULL, params, NULL, NULL, 0))
        return pgapply_send_failed(s, what);
    Pending *p = pgapply_pend_push(s, PEND_POSITION);
    p->expect = 1;
    snprintf(p->table, sizeof(p->table), "%s", what);
    return 0;
}

int pgapply_abort_batch(Sink *base)
{
    PgSink *s = pgsink_of(base);

    int rc;

    if (!s->batch_open)
        return 0;
    s->batch_open = false;
    s->txn_open = false;
    pgrun_discard_all(s);
    s->run_lost = false;
    if (s->begin_pending) { /* nothing of it reached the target */
        s->begin_pending = false;
        return 0;
    }
    rc = send_simple(s, PEND_ROLLBACK, "ROLLBACK");
    if (rc == 0)
        rc = send_sync(s, LSN_INVALID, 0);
    return rc;
}

int pgapply_idle_position(Sink *base, Lsn lsn)
{
    PgSink *s = pgsink_of(base);

    int rc;

    if (s->own_position || lsn <= s->queued_lsn)
        return 0;
    if (s->batch_open || s->gated) {
        /* Written once what was received before it is queued (gate_passed):
         * the source will not say it again (we reported it as received). */
        if (lsn > s->idle_pending)
            s->idle_pending = lsn;
        return 0;
    }
    rc = send_watermark(s, lsn, 0, false);
    if (rc == 0)
        rc = send_sync(s, lsn, s->durable_commit_time);
    return rc;
}

static const char *op_name(char op)
{
    switch (op) {
    case 'I':
        return "INSERT";
    case 'U':
        return "UPDATE";
    case 'D':
        return "DELETE";
    case 'T':
        return "TRUNCATE";
    case 'L':
        return "INSERT of a dead letter";
    default:
        return "statement";
    }
}

/*
 * The server said it is going away (shutdown, crash of another backend,
 * connection failure): an outage to reconnect from, not a failed statement.
 */
static bool sqlstate_is_disconnect(const PGresult *res)
{
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    return st && (strncmp(st, "08", 2) == 0 || strcmp(st, "57P01") == 0 ||
                  strcmp(st, "57P02") == 0 || strcmp(st, "57P03") == 0);
}

static int result_error(PgSink *s, const Pending *p, PGresult *res)
{
    char lsnbuf[24];

    if (sqlstate_is_disconnect(res))
        return tm_fail(-ENOTCONN, "target: %s", pgconn_errmsg(s->conn, res));
    switch (p->kind) {
    case PEND_STMT:
        return tm_fail(-EIO, "target: %s on %s (source transaction committed at %s) failed: %s",
                       op_name(p->op), p->table, lsn_format(p->lsn, lsnbuf, sizeof(lsnbuf)),
                       pgconn_errmsg(s->conn, res));
    case PEND_PREPARE:
        return tm_fail(-EIO, "target: preparing a statement for %s failed: %s", p->table,
                       pgconn_errmsg(s->conn, res));
    case PEND_WATERMARK:
        return tm_fail(-EIO, "target: writing the watermark failed: %s",
                       pgconn_errmsg(s->conn, res));
    case PEND_POSITION:
        return tm_fail(-EIO, "target: writing %s failed: %s", p->table,
                       pgconn_errmsg(s->conn, res));
    default:
        return tm_fail(-EIO, "target: %s", pgconn_errmsg(s->conn, res));
    }
}

static int check_result(PgSink *s, Pending *p, PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    char lsnbuf[24];

    if (p->kind == PEND_SYNC) {
        if (st != PGRES_PIPELINE_SYNC)
            return tm_fail(-EPROTO, "target: expected a pipeline sync, got %s", PQresStatus(st));
        return 0;
    }
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        return result_error(s, p, res);
    if (p->expect >= 0 && strtol(PQcmdTuples(res), NULL, 10) != p->expect) {
        if (p->kind == PEND_POSITION)
            return tm_fail(-ESTALE,
                           "target: %s moved since this process read it (another process"
                           " committed there): the batch is rolled back",
                           p->table);
        if (p->kind == PEND_WATERMARK)
            return tm_fail(-EIO,
                           "target: the watermark of pipeline %s was not where the batch ending"
                           " at %s expected it: an earlier batch failed, or another process"
                           " applies this pipeline",
                           s->cfg->pipeline, lsn_format(p->lsn, lsnbuf, sizeof(lsnbuf)));
        return tm_fail(TM_EDIVERGED,
                       "target: %s on %s of %s %s (source transaction committed at %s)"
                       " matched %s rows instead of %ld: the target has diverged from the"
                       " source. The batch was rolled back; the pipeline is halted until the"
                       " target is repaired and `tidemark resume` is run",
                       op_name(p->op), p->table, p->expect == 1 ? "the row" : "the rows",
                       p->key[0] ? p->key : "(no key)", lsn_format(p->lsn, lsnbuf, sizeof(lsnbuf)),
                       PQcmdTuples(res), p->expect);
    }
    return 0;
}

/* Statements of dropped relation shapes, after the batch that used them. */
static int send_deallocs(PgSink *s)
{
    int rc = 0;

    for (size_t i = 0; i < s->ndealloc; i++) {
        char sql[48];

        if (rc == 0) {
            snprintf(sql, sizeof(sql), "DEALLOCATE %s", s->dealloc[i]);
            rc = send_simple(s, PEND_DEALLOCATE, sql);
        }
        free(s->dealloc[i]);
    }
    s->ndealloc = 0;
    return rc == 0 ? send_sync(s, LSN_INVALID, 0) : rc;
}

/*
 * Every statement of the gated batch succeeded and matched the rows it had
 * to: only now may it commit, and a new batch begin behind it.
 */
static int gate_passed(PgSink *s)
{
    int rc = send_simple(s, PEND_COMMIT, "COMMIT");

    if (rc == 0)
        rc = send_sync(s, s->gate_lsn, s->gate_commit_time);
    s->gated = false;
    if (rc == 0 && s->ndealloc > 0)
        rc = send_deallocs(s);
    if (rc == 0 && !s->batch_open && s->idle_pending > s->queued_lsn)
        rc = pgapply_idle_position(&s->base, s->idle_pending);
    return rc;
}

int pgapply_process(Sink *base)
{
    PgSink *s = pgsink_of(base);

    if (!PQconsumeInput(s->conn))
        return tm_fail(-ENOTCONN, "target connection: %s", pgconn_errmsg(s->conn, NULL));
    while (s->pend_count > 0 && !PQisBusy(s->conn)) {
        Pending *p = &s->pend[s->pend_head];
        PGresult *res = PQgetResult(s->conn);
        int rc;

        if (!res) {
            /* End of one command's results. */
            if (p->kind == PEND_SYNC || !p->got_result)
                return tm_fail(-EPROTO, "target: result stream out of step");
            s->inflight_bytes -= p->bytes;
            s->pend_head = (s->pend_head + 1) % s->pend_cap;
            s->pend_count--;
            continue;
        }
        rc = check_result(s, p, res);
        PQclear(res);
        if (rc < 0)
            return rc == TM_EDIVERGED || rc == -ENOTCONN ? rc : conn_code(s, rc);
        if (p->kind != PEND_SYNC) {
            p->got_result = true;
            continue;
        }
        bool gate = p->gate;

        if (p->lsn > s->durable) {
            s->durable = p->lsn;
            s->durable_commit_time = p->commit_time;
        }
        s->pend_head = (s->pend_head + 1) % s->pend_cap;
        s->pend_count--;
        if (gate) {
            rc = gate_passed(s);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int pgapply_flush(Sink *base)
{
    PgSink *s = pgsink_of(base);

    int r = PQflush(s->conn);

    if (r < 0)
        return tm_fail(-ENOTCONN, "target connection: %s", pgconn_errmsg(s->conn, NULL));
    return r;
}

int pgapply_drain(Sink *base)
{
    PgSink *s = pgsink_of(base);
    int rc;

    /* The server holds results back until a Sync: without one at the tail
     * (a lone PREPARE, say) waiting for them would never end. */
    if (s->pend_count > 0 &&
        s->pend[(s->pend_head + s->pend_count - 1) % s->pend_cap].kind != PEND_SYNC) {
        rc = send_sync(s, LSN_INVALID, 0);
        if (rc < 0)
            return rc;
    }
    while (s->pend_count > 0) {
        struct pollfd pfd = {.fd = PQsocket(s->conn), .events = POLLIN};

        rc = pgapply_flush(base);
        if (rc < 0)
            return rc;
        if (rc == 1)
            pfd.events |= POLLOUT;
        if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
            return tm_fail(-errno, "target: poll: %s", strerror(errno));
        rc = pgapply_process(base);
        if (rc < 0)
            return rc;
    }
    return pgapply_flush(base) < 0 ? -ENOTCONN : 0;
}
