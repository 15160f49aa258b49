/*
 * PostgreSQL sink: connection and session setup, the tidemark state tables
 * (watermark, per-table sync state), initial-copy sessions, and the ops
 * table. The stream apply itself is in pgapply.c.
 */
#include "sinks/pg/pgsink_int.h"
#include "sinks/pg/pgidentity.h"
#include "sinks/pg/pgstate.h"
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/log.h"
#include "core/transform/mapping.h"
#include "core/xmalloc.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Dead letters of one copy session wait in memory until COPY ends. */
#define COPY_DEAD_LETTERS_MAX       10000
#define COPY_DEAD_LETTERS_MAX_BYTES (64u * 1024 * 1024)

typedef struct PgCopy {
    PgSink *sink;
    const TableDef *t;   /* the source table: the copy state is keyed by it */
    const TableDef *tgt; /* where the rows go (t unless a mapping reshapes them) */
    int part;
    PGconn *conn;
    Lsn sync_lsn;
    long long rows;
    bool in_copy;
    char **dl_rows, **dl_errors;
    size_t ndl, dl_cap, dl_bytes;
} PgCopy;

/* Run through pgstate_ensure, which creates schema tidemark first. */
static const char *const STATE_SQL =
    "CREATE TABLE IF NOT EXISTS tidemark.watermark ("
    " pipeline text PRIMARY KEY,"
    " lsn pg_lsn NOT NULL,"
    " commit_time timestamptz,"
    " updated_at timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE IF NOT EXISTS tidemark.sync_state ("
    " pipeline text NOT NULL,"
    " schema_name text NOT NULL,"
    " table_name text NOT NULL,"
    " part int NOT NULL DEFAULT 0,"
    " state text NOT NULL CHECK (state IN ('pending', 'copying', 'synced', 'ready')),"
    " part_kind text CHECK (part_kind IN ('whole', 'key', 'ctid', 'leaf')),"
    " lo bigint,"
    " hi bigint,"
    " leaf_schema text,"
    " leaf_name text,"
    " sync_lsn pg_lsn,"
    " rows bigint,"
    " updated_at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (pipeline, schema_name, table_name, part));"
    "CREATE TABLE IF NOT EXISTS tidemark.pipeline_state ("
    " pipeline text NOT NULL, key text NOT NULL, value text,"
    " updated_at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (pipeline, key));"
    /* Rows a mapping could not transform (on_error: dead_letter), written in
     * the transaction of the batch or copy they came with. lsn: the source
     * transaction's commit LSN (stream) or the copy's snapshot LSN (copy).
     * id: a surrogate key for `dead-letter replay`, deliberately not from a
     * sequence (sequences in the target belong to the migrated schemas and
     * `sync-sequences`). A table from before the rename is renamed. */
    "DO $tm$ BEGIN"
    " IF to_regclass('tidemark.dead_letters') IS NOT NULL"
    " AND to_regclass('tidemark.dead_letter') IS NULL THEN"
    " ALTER TABLE tidemark.dead_letters RENAME TO dead_letter;"
    " END IF; END $tm$;"
    /* The id_map transform's old → new ids, per namespace; filled by the
     * operator (connectors/pg/idmap.c reads it). */
    "CREATE TABLE IF NOT EXISTS tidemark.id_map ("
    " namespace text NOT NULL,"
    " old_id text NOT NULL,"
    " new_id text NOT NULL,"
    " PRIMARY KEY (namespace, old_id));"
    "CREATE TABLE IF NOT EXISTS tidemark.dead_letter ("
    " id uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,"
    " pipeline text NOT NULL,"
    " table_name text NOT NULL,"
    " lsn pg_lsn,"
    " xid bigint,"
    " op text NOT NULL,"
    " row jsonb,"
    " error text NOT NULL,"
    /* clock_timestamp(): the dead letters of one transaction keep their order */
    " at timestamptz NOT NULL DEFAULT clock_timestamp());"
    "DO $tm$ BEGIN"
    " IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'tidemark.dead_letter'::regclass"
    " AND attname = 'id' AND NOT attisdropped) THEN"
    " ALTER TABLE tidemark.dead_letter ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid();"
    " END IF; END $tm$";

static void pgsink_disconnect(PgSink *s)
{
    if (s->conn)
        PQfinish(s->conn);
    s->conn = NULL;
    s->pipelined = false;
    s->pend_head = s->pend_count = 0;
    s->inflight_bytes = 0;
    s->batch_open = s->txn_open = false;
    s->batch_changes = s->batch_txns = 0;
    s->gated = false;
    s->begin_pending = false;
    s->idle_pending = LSN_INVALID;
    s->unflushed_bytes = 0;
    pgapply_reset_session(s);
}

static void pgsink_free(Sink *base)
{
    PgSink *s = pgsink_of(base);

    pgsink_disconnect(s);
    pgsink_sessions_close(s);
    pthread_mutex_destroy(&s->pool_mu);
    free(s->dealloc);
    free(s->pend);
    free(s->encoding);
    buf_release(&s->scratch);
    free(s->params);
    free(s->param_off);
    free(s);
}

static int pgsink_connect(Sink *base, const char *client_encoding)
{
    PgSink *s = pgsink_of(base);
    int rc;

    pgsink_disconnect(s);
    /* A new stream session follows a lost one, or the target's restart:
     * pooled sessions may be as stale. */
    pgsink_sessions_close(s);
    /* Set once, never replaced: copy workers read it to open their sessions
     * while the stream's session reconnects (the source's encoding does not
     * change while the daemon runs). */
    if (!s->encoding)
        s->encoding = xstrdup(client_encoding);
    else if (strcmp(s->encoding, client_encoding) != 0)
        return tm_fail(-EINVAL, "target: client encoding changed from %s to %s", s->encoding,
                       client_encoding);
    rc = pgsink_open_session(s, &s->conn);
    if (rc < 0)
        return rc;
    rc = pgstate_ensure(s->conn, STATE_SQL);
    if (rc < 0)
        return tm_fail_ctx(rc, "target: creating the tidemark state schema");
    return 0;
}

/*
 * A pipeline halted by a divergence stays halted until `tidemark resume`. One
 * that a cutover or rollback switched away from is over (the other direction
 * runs now), and one being created by a switch may not start before it ends.
 */
static int check_not_halted(PgSink *s)
{
    const char *params[1] = {s->cfg->pipeline};
    PGresult *res;
    int rc = pgconn_query(s->conn,
                          "SELECT key, value, to_char(updated_at, 'YYYY-MM-DD HH24:MI:SSOF')"
                          " FROM tidemark.pipeline_state WHERE pipeline = $1 AND key IN"
                          " ('halted', 'switched', 'switching') ORDER BY key",
                          1, params, &res);

    if (rc < 0)
        return tm_fail_ctx(rc, "target: reading the pipeline's state");
    if (PQntuples(res) >= 1 && strcmp(PQgetvalue(res, 0, 0), "halted") == 0)
        rc = tm_fail(TM_EDIVERGED,
                     "pipeline %s is halted since %s: %s -- repair the target (see"
                     " docs/OPERATIONS.md, \"Divergence\"), then run `tidemark resume --config"
                     " FILE` to retry from the watermark",
                     s->cfg->pipeline, PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 1));
    else if (PQntuples(res) >= 1 && strcmp(PQgetvalue(res, 0, 0), "switched") == 0)
        rc = tm_fail(-ESHUTDOWN,
                     "pipeline %s was switched over on %s (%s): the other direction runs now"
                     " (docs/CUTOVER.md); `tidemark rollback` or `cutover` re-creates this one",
                     s->cfg->pipeline, PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 1));
    else if (PQntuples(res) >= 1)
        rc = tm_fail(-EBUSY,
                     "pipeline %s is being created by a cutover or rollback since %s and may"
                     " not start before it ends; if that run was killed, run it again or with"
                     " --abort",
                     s->cfg->pipeline, PQgetvalue(res, 0, 2));
    PQclear(res);
    return rc;
}

static int pgsink_read_position(Sink *base, bool *found, Lsn *lsn)
{
    PgSink *s = pgsink_of(base);
    const char *params[1] = {s->cfg->pipeline};
    PGresult *res;
    int rc = check_not_halted(s);

    if (rc < 0)
        return rc;
    rc = pgconn_query(s->conn,
                      "SELECT lsn::text, (extract(epoch from commit_time - '2000-01-01"
                      " 00:00:00+00') * 1000000)::bigint FROM tidemark.watermark"
                      " WHERE pipeline = $1",
                      1, params, &res);

    if (rc < 0)
        return tm_fail_ctx(rc, "target: reading the watermark");
    *found = PQntuples(res) == 1;
    *lsn = LSN_INVALID;
    if (*found) {
        rc = lsn_parse(PQgetvalue(res, 0, 0), lsn);
        if (!PQgetisnull(res, 0, 1))
            s->durable_commit_time = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    }
    PQclear(res);
    return rc;
}

static int pgsink_init_position(Sink *base, Lsn lsn, const TableSet *tabs)
{
    PgSink *s = pgsink_of(base);
    char lsnbuf[24];
    const char *wparams[2] = {s->cfg->pipeline, lsn_format(lsn, lsnbuf, sizeof(lsnbuf))};
    int rc = pgconn_exec(s->conn, "BEGIN");

    if (rc == 0)
        rc = pgconn_query(s->conn,
                          "INSERT INTO tidemark.watermark (pipeline, lsn, updated_at)"
                          " VALUES ($1, $2::pg_lsn, now())",
                          2, wparams, NULL);
    if (rc == 0)
        rc = pgconn_query(s->conn, "DELETE FROM tidemark.sync_state WHERE pipeline = $1", 1,
                          wparams, NULL);
    for (size_t i = 0; rc == 0 && i < tabs->n; i++) {
        const char *params[3] = {s->cfg->pipeline, tabs->t[i].schema, tabs->t[i].name};

        rc = pgconn_query(s->conn,
                          "INSERT INTO tidemark.sync_state (pipeline, schema_name, table_name,"
                          " state) VALUES ($1, $2, $3, 'pending')",
                          3, params, NULL);
    }
    if (rc == 0)
        return pgconn_exec(s->conn, "COMMIT");
    PQclear(PQexec(s->conn, "ROLLBACK"));
    return tm_fail_ctx(rc, "target: recording the pipeline's start position");
}

static int table_state_on(PgSink *s, PGconn *conn, const TableDef *t, bool *synced, Lsn *sync_lsn)
{
    const char *params[3] = {s->cfg->pipeline, t->schema, t->name};
    PGresult *res;
    int rc = pgconn_query(conn,
                          "SELECT bool_and(state IN ('synced', 'ready')), max(sync_lsn)::text"
                          " FROM tidemark.sync_state WHERE pipeline = $1 AND schema_name = $2"
                          " AND table_name = $3",
                          3, params, &res);

    if (rc < 0)
        return tm_fail_ctx(rc, "target: reading the sync state of %s", t->display);
    *synced = !PQgetisnull(res, 0, 0) && PQgetvalue(res, 0, 0)[0] == 't';
    *sync_lsn = LSN_INVALID;
    if (*synced && !PQgetisnull(res, 0, 1))
        rc = lsn_parse(PQgetvalue(res, 0, 1), sync_lsn);
    PQclear(res);
    return rc;
}

static int pgsink_table_state(Sink *base, const TableDef *t, bool *synced, Lsn *sync_lsn)
{
    PgSink *s = pgsink_of(base);
    PGconn *conn = NULL;
    int rc = pgsink_session_get(s, &conn);

    if (rc == 0)
        rc = table_state_on(s, conn, t, synced, sync_lsn);
    pgsink_session_put(s, conn);
    return rc;
}

/*
 * The table t's rows go to: t itself, or the target of its mapping (*plan
 * set, *tgt filled; release both). Compiling also rejects a mapping that
 * does not fit the source table, before any row moves.
 */
static int mapped_target(PgSink *s, const TableDef *t, MappingPlan **plan, TableDef *tgt)
{
    int rc = mapping_compile_for_table(s->cfg->tree, t, plan);

    if (rc < 0)
        return tm_fail_ctx(rc, "mapping of %s", t->display);
    if (*plan)
        mapping_target_tabledef(*plan, tgt);
    return 0;
}

/*
 * " WHERE tag = $1 AND ..." over the mapping's constant columns: in a
 * fan-in target they mark this pipeline's rows, so "empty" and "start over"
 * mean "none of this source's rows", not "no rows at all". Empty when the
 * mapping has no constant column. Values travel as parameters.
 */
static bool scope_where(PGconn *conn, const MappingPlan *plan, const TableDef *tgt, Buf *sql,
                        const char **params, char **owned, int *np)
{
    bool any = false;

    *np = 0;
    for (size_t i = 0; plan && i < tgt->ncols; i++) {
        const char *v;
        size_t len;

        if (!mapping_target_const(plan, i, &v, &len))
            continue;
        char *col = pgconn_ident(conn, tgt->cols[i].name);

        buf_puts(sql, any ? " AND " : " WHERE ");
        any = true;
        if (v) {
            owned[*np] = xmalloc(len + 1);
            memcpy(owned[*np], v, len);
            owned[*np][len] = '\0';
            params[*np] = owned[*np];
            (*np)++;
            buf_printf(sql, "%s::text = $%d", col, *np);
        } else {
            buf_printf(sql, "%s IS NULL", col);
        }
        free(col);
        if (*np >= 8)
            break;
    }
    return any;
}

/* The target relation's relkind, or '\0' when qname does not exist. */
static int target_relkind(PGconn *conn, const char *qname, char *kind)
{
    const char *params[1] = {qname};
    PGresult *res;
    int rc = pgconn_query(conn, "SELECT relkind FROM pg_class WHERE oid = to_regclass($1)", 1,
                          params, &res);

    if (rc < 0)
        return rc;
    *kind = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0)[0] : '\0';
    PQclear(res);
    return 0;
}

static int check_table_on(PgSink *s, PGconn *conn, const TableDef *src, bool require_empty)
{
    MappingPlan *plan = NULL;
    TableDef tgt = {0};
    const TableDef *t = src;
    char *q = NULL;
    PGresult *res;
    int rc = mapped_target(s, src, &plan, &tgt);

    if (rc < 0)
        return rc;
    if (plan)
        t = &tgt;
    q = pgconn_qualified(conn, t->schema, t->name);
    char kind;

    rc = target_relkind(conn, q, &kind);
    if (rc < 0)
        goto out;
    if (!kind) {
        rc = tm_fail(-ENOENT,
                     "table %s does not exist on the target; create the target schema"
                     " first",
                     t->display);
        goto out;
    }
    rc = pgidentity_relax(conn, s->cfg->pipeline, t->schema, t->name);
    if (rc < 0)
        goto out;
    if (require_empty) {
        Buf sql = BUF_INIT;
        const char *vals[8];
        char *owned[8];
        int np;

        /* ONLY: an inheritance parent's children are tables of their own
         * (and may already be copied); a partitioned table's rows are its
         * partitions'. */
        buf_printf(&sql, "SELECT EXISTS (SELECT 1 FROM %s%s", kind == 'p' ? "" : "ONLY ", q);
        bool scoped = scope_where(conn, plan, t, &sql, vals, owned, &np);
        buf_puts(&sql, ")");
        rc = pgconn_query(conn, buf_cstr(&sql), np, vals, &res);
        buf_release(&sql);
        for (int i = 0; i < np; i++)
            free(owned[i]);
        if (rc < 0)
            goto out;
        bool nonempty = PQgetvalue(res, 0, 0)[0] == 't';
        PQclear(res);
        if (nonempty)
            rc = tm_fail(-EEXIST,
                         "target table %s %s but the initial copy of %s has not been done;"
                         " the copy would duplicate rows. Empty it (TRUNCATE) or point the"
                         " pipeline at an empty target",
                         t->display,
                         scoped ? "holds rows with this mapping's constant (source tag) values"
                                : "is not empty",
                         src->display);
    }
out:
    free(q);
    mapping_free(plan);
    tabledef_release(&tgt);
    return rc;
}

static int pgsink_check_table(Sink *base, const TableDef *t, bool require_empty)
{
    PgSink *s = pgsink_of(base);
    PGconn *conn = NULL;
    int rc = pgsink_session_get(s, &conn);

    if (rc == 0)
        rc = check_table_on(s, conn, t, require_empty);
    pgsink_session_put(s, conn);
    return rc;
}

/* Every table on one session: a start or reload checks them all at once. */
static int pgsink_check_tables(Sink *base, const TableSet *tabs, bool require_empty)
{
    PgSink *s = pgsink_of(base);
    PGconn *conn = NULL;
    int rc = pgsink_session_get(s, &conn);

    for (size_t i = 0; rc == 0 && i < tabs->n; i++)
        rc = check_table_on(s, conn, &tabs->t[i], require_empty);
    pgsink_session_put(s, conn);
    return rc;
}

static const char *const part_kinds[] = {"whole", "key", "ctid", "leaf"};

static PartKind part_kind_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, part_kinds[i]) == 0)
            return (PartKind)i;
    return PART_WHOLE;
}

static int parts_load_on(PgSink *s, PGconn *conn, const TableDef *t, CopyPart **parts, int *n)
{
    const char *params[3] = {s->cfg->pipeline, t->schema, t->name};
    PGresult *res;
    int rc = pgconn_query(conn,
                          "SELECT part, part_kind, lo, hi, leaf_schema, leaf_name,"
                          " state IN ('synced', 'ready'), sync_lsn::text, rows"
                          " FROM tidemark.sync_state WHERE pipeline = $1 AND schema_name = $2"
                          " AND table_name = $3 AND part_kind IS NOT NULL ORDER BY part",
                          3, params, &res);

    *parts = NULL;
    *n = 0;
    if (rc < 0)
        return tm_fail_ctx(rc, "target: reading the copy plan of %s", t->display);
    *n = PQntuples(res);
    *parts = xcalloc((size_t)*n + 1, sizeof(CopyPart));
    for (int i = 0; i < *n && rc == 0; i++) {
        CopyPart *p = &(*parts)[i];

        p->index = atoi(PQgetvalue(res, i, 0));
        p->kind = part_kind_parse(PQgetvalue(res, i, 1));
        p->lo = PQgetisnull(res, i, 2) ? INT64_MIN : strtoll(PQgetvalue(res, i, 2), NULL, 10);
        p->hi = PQgetisnull(res, i, 3) ? INT64_MAX : strtoll(PQgetvalue(res, i, 3), NULL, 10);
        if (!PQgetisnull(res, i, 4))
            p->leaf_schema = xstrdup(PQgetvalue(res, i, 4));
        if (!PQgetisnull(res, i, 5))
            p->leaf_name = xstrdup(PQgetvalue(res, i, 5));
        p->synced = PQgetvalue(res, i, 6)[0] == 't';
        if (p->synced && !PQgetisnull(res, i, 7))
            rc = lsn_parse(PQgetvalue(res, i, 7), &p->sync_lsn);
        p->rows = PQgetisnull(res, i, 8) ? 0 : strtoll(PQgetvalue(res, i, 8), NULL, 10);
        if (p->index != i)
            rc = tm_fail(-EINVAL, "target: tidemark.sync_state for %s has a gap at part %d",
                         t->display, i);
    }
    PQclear(res);
    if (rc < 0) {
        copyparts_free(*parts, *n);
        *parts = NULL;
        *n = 0;
    }
    return rc;
}

static int pgsink_parts_load(Sink *base, const TableDef *t, CopyPart **parts, int *n)
{
    PgSink *s = pgsink_of(base);
    PGconn *conn = NULL;
    int rc = pgsink_session_get(s, &conn);

    if (rc == 0)
        rc = parts_load_on(s, conn, t, parts, n);
    pgsink_session_put(s, conn);
    return rc;
}

static int parts_plan_on(PgSink *s, PGconn *conn, const TableDef *t, const CopyPart *parts, int n,
                         bool reset)
{
    const char *params[3] = {s->cfg->pipeline, t->schema, t->name};
    int rc = pgconn_exec(conn, "BEGIN");

    if (rc == 0)
        rc = pgconn_query(conn,
                          "DELETE FROM tidemark.sync_state WHERE pipeline = $1 AND"
                          " schema_name = $2 AND table_name = $3",
                          3, params, NULL);
    for (int i = 0; i < n && rc == 0; i++) {
        char idx[16], lo[24], hi[24];
        const CopyPart *p = &parts[i];
        const char *pp[9] = {s->cfg->pipeline,
                             t->schema,
                             t->name,
                             idx,
                             part_kinds[p->kind],
                             p->lo == INT64_MIN ? NULL : lo,
                             p->hi == INT64_MAX ? NULL : hi,
                             p->leaf_schema,
                             p->leaf_name};

        snprintf(idx, sizeof(idx), "%d", i);
        snprintf(lo, sizeof(lo), "%lld", (long long)p->lo);
        snprintf(hi, sizeof(hi), "%lld", (long long)p->hi);
        rc = pgconn_query(conn,
                          "INSERT INTO tidemark.sync_state (pipeline, schema_name, table_name,"
                          " part, part_kind, lo, hi, leaf_schema, leaf_name, state)"
                          " VALUES ($1, $2, $3, $4::int, $5, $6::bigint, $7::bigint, $8, $9,"
                          " 'pending')",
                          9, pp, NULL);
    }
    if (rc == 0 && reset) {
        /* Parts sharing one snapshot start over together: drop what the
         * finished ones loaded. */
        MappingPlan *plan = NULL;
        TableDef tgt = {0};

        rc = mapped_target(s, t, &plan, &tgt);
        if (rc == 0) {
            const TableDef *dt = plan ? &tgt : t;
            char *q = pgconn_qualified(conn, dt->schema, dt->name);
            Buf sql = BUF_INIT;
            const char *vals[8];
            char *owned[8];
            int np;

            char kind = 'r';
            const char *only;

            rc = target_relkind(conn, q, &kind);
            /* ONLY: an inheritance child's rows belong to its own copy. */
            only = kind == 'p' ? "" : "ONLY ";
            /* A fan-in target keeps the other sources' rows. */
            buf_printf(&sql, "DELETE FROM %s%s", only, q);
            if (!scope_where(conn, plan, dt, &sql, vals, owned, &np)) {
                buf_clear(&sql);
                buf_printf(&sql, "TRUNCATE %s%s", only, q);
            }
            if (rc == 0)
                rc = pgconn_query(conn, buf_cstr(&sql), np, vals, NULL);
            for (int i = 0; i < np; i++)
                free(owned[i]);
            buf_release(&sql);
            free(q);
        }
        mapping_free(plan);
        tabledef_release(&tgt);
    }
    if (rc == 0)
        return pgconn_exec(conn, "COMMIT");
    PQclear(PQexec(conn, "ROLLBACK"));
    return tm_fail_ctx(rc, "target: recording the copy plan of %s", t->display);
}

static int pgsink_parts_plan(Sink *base, const TableDef *t, const CopyPart *parts, int n,
                             bool reset)
{
    PgSink *s = pgsink_of(base);
    PGconn *conn = NULL;
    int rc = pgsink_session_get(s, &conn);

    if (rc == 0)
        rc = parts_plan_on(s, conn, t, parts, n, reset);
    pgsink_session_put(s, conn);
    return rc;
}

static int copy_exec(PGconn *conn, const char *sql, ExecStatusType want, const char *what)
{
    PGresult *res = PQexec(conn, sql);
    int rc = 0;

    if (PQresultStatus(res) != want)
        rc = tm_fail(-EIO, "target: %s: %s", what, pgconn_errmsg(conn, res));
    PQclear(res);
    return rc;
}

static int pgsink_copy_open_part(Sink *base, const TableDef *t, const TableDef *target,
                                 const CopyPart *part, Lsn sync_lsn, SinkCopy **out)
{
    PgSink *s = pgsink_of(base);
    PgCopy *c = xcalloc(1, sizeof(*c));
    const TableDef *dt = target ? target : t;
    Buf sql = BUF_INIT;
    int rc;

    c->sink = s;
    c->t = t;
    c->tgt = dt;
    c->part = part ? part->index : 0;
    c->sync_lsn = sync_lsn;
    rc = pgsink_session_get(s, &c->conn);
    if (rc < 0)
        goto fail;
    char *q = pgconn_qualified(c->conn, dt->schema, dt->name);
    buf_printf(&sql, "COPY %s", q);
    free(q);
    /* No list for a table without columns to copy (only generated ones, or
     * none): COPY then takes every column but the generated ones, i.e. none,
     * and each (empty) line is a row. */
    for (size_t i = 0; i < dt->ncols; i++) {
        char *col = pgconn_ident(c->conn, dt->cols[i].name);

        buf_printf(&sql, "%s%s", i ? ", " : " (", col);
        free(col);
    }
    buf_puts(&sql, dt->ncols ? ") FROM STDIN" : " FROM STDIN");
    rc = copy_exec(c->conn, "BEGIN", PGRES_COMMAND_OK, "BEGIN");
    if (rc == 0)
        rc = copy_exec(c->conn, buf_cstr(&sql), PGRES_COPY_IN, "COPY FROM STDIN");
    buf_release(&sql);
    if (rc < 0)
        goto fail;
    c->in_copy = true;
    *out = (SinkCopy *)c;
    return 0;
fail:
    if (c->conn)
        PQfinish(c->conn);
    free(c);
    return tm_fail_ctx(rc, "initial copy of %s", t->display);
}

static int pgsink_copy_key_indexed(Sink *base, const TableDef *t, const char *key, bool *indexed)
{
    PgSink *s = pgsink_of(base);
    MappingPlan *plan = NULL;
    TableDef tgt = {0};
    PGconn *conn = NULL;
    PGresult *res = NULL;
    int rc = mapped_target(s, t, &plan, &tgt);

    *indexed = false;
    if (rc == 0)
        rc = pgsink_session_get(s, &conn);
    if (rc == 0) {
        const TableDef *dt = plan ? &tgt : t;
        const char *col = key;
        int nkeys = 0;

        for (size_t i = 0; plan && i < tgt.ncols; i++)
            if (tgt.cols[i].is_key && nkeys++ == 0)
                col = tgt.cols[i].name;
        if (plan && nkeys != 1)
            col = key;
        char *q = pgconn_qualified(conn, dt->schema, dt->name);
        const char *params[2] = {q, col};

        rc = pgconn_query(conn,
                          "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a"
                          " ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
                          " WHERE i.indrelid = to_regclass($1) AND a.attname = $2)",
                          2, params, &res);
        free(q);
        if (rc == 0)
            *indexed = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
    }
    pgsink_session_put(s, conn);
    mapping_free(plan);
    tabledef_release(&tgt);
    return rc < 0 ? tm_fail_ctx(rc, "target: the indexes of %s", t->display) : 0;
}

static int pgsink_copy_open(Sink *base, const TableDef *t, Lsn sync_lsn, SinkCopy **out)
{
    return pgsink_copy_open_part(base, t, NULL, NULL, sync_lsn, out);
}

static int pgsink_copy_dead_letter(SinkCopy *sc, const char *row_json, const char *error)
{
    PgCopy *c = (PgCopy *)sc;
    size_t bytes = strlen(row_json) + strlen(error);

    /* Bounded memory (invariant 6): a table whose rows mostly fail is a
     * mapping to fix, not a dead-letter table to fill. */
    if (c->ndl >= COPY_DEAD_LETTERS_MAX || c->dl_bytes + bytes > COPY_DEAD_LETTERS_MAX_BYTES)
        return tm_fail(-E2BIG,
                       "initial copy of %s: more than %d rows (or 64 MB) in one part could not"
                       " be transformed; fix the mapping. Last error: %s",
                       c->t->display, COPY_DEAD_LETTERS_MAX, error);
    if (c->ndl == c->dl_cap) {
        c->dl_cap = c->dl_cap ? 2 * c->dl_cap : 16;
        c->dl_rows = xrealloc(c->dl_rows, c->dl_cap * sizeof(char *));
        c->dl_errors = xrealloc(c->dl_errors, c->dl_cap * sizeof(char *));
    }
    c->dl_rows[c->ndl] = xstrdup(row_json);
    c->dl_errors[c->ndl] = xstrdup(error);
    c->ndl++;
    c->dl_bytes += bytes;
    return 0;
}

/* After COPY ends, before COMMIT: the copy's dead letters in its transaction. */
static int write_copy_dead_letters(PgCopy *c)
{
    char lsnbuf[24];
    int rc = 0;

    lsn_format(c->sync_lsn, lsnbuf, sizeof(lsnbuf));
    for (size_t i = 0; i < c->ndl && rc == 0; i++) {
        const char *params[5] = {c->sink->cfg->pipeline, c->t->display, lsnbuf, c->dl_rows[i],
                                 c->dl_errors[i]};

        rc = pgconn_query(c->conn,
                          "INSERT INTO tidemark.dead_letter (pipeline, table_name, lsn, xid, op,"
                          " row, error) VALUES ($1, $2, $3::pg_lsn, NULL, 'copy', $4::jsonb, $5)",
                          5, params, NULL);
    }
    return rc;
}

static int pgsink_copy_rows(SinkCopy *sc, const char *data, size_t len)
{
    PgCopy *c = (PgCopy *)sc;

    if (PQputCopyData(c->conn, data, (int)len) != 1)
        return tm_fail(-EIO, "target: initial copy of %s: %s", c->t->display,
                       pgconn_errmsg(c->conn, NULL));
    for (const char *p = data, *end = data + len; (p = memchr(p, '\n', (size_t)(end - p))); p++)
        c->rows++;
    return 0;
}

static int finish_copy_in(PgCopy *c, bool commit)
{
    PGresult *res;
    int rc = 0;

    c->in_copy = false;
    if (PQputCopyEnd(c->conn, commit ? NULL : "initial copy abandoned") != 1)
        return tm_fail(-EIO, "target: %s", pgconn_errmsg(c->conn, NULL));
    while ((res = PQgetResult(c->conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0 && commit)
            rc = tm_fail(-EIO, "target: COPY FROM STDIN into %s: %s", c->tgt->display,
                         pgconn_errmsg(c->conn, res));
        PQclear(res);
    }
    return rc;
}

static int pgsink_copy_finish(SinkCopy *sc, bool commit)
{
    PgCopy *c = (PgCopy *)sc;
    char lsnbuf[24], rowsbuf[24], partbuf[16];
    PGresult *res = NULL;
    const char *params[6] = {c->sink->cfg->pipeline,
                             c->t->schema,
                             c->t->name,
                             lsn_format(c->sync_lsn, lsnbuf, sizeof(lsnbuf)),
                             rowsbuf,
                             partbuf};
    int rc = 0;

    snprintf(rowsbuf, sizeof(rowsbuf), "%lld", c->rows);
    snprintf(partbuf, sizeof(partbuf), "%d", c->part);
    if (c->in_copy)
        rc = finish_copy_in(c, commit);
    if (rc == 0 && commit)
        rc = write_copy_dead_letters(c);
    /* The rows commit only with their part's move from pending to synced,
     * checked before COMMIT: a part another process copied meanwhile, or
     * whose plan was reset, must not get a second set of rows. */
    if (rc == 0 && commit)
        rc = pgconn_query(c->conn,
                          "UPDATE tidemark.sync_state SET state = 'synced',"
                          " sync_lsn = $4::pg_lsn, rows = $5::bigint, updated_at = now()"
                          " WHERE pipeline = $1 AND schema_name = $2 AND table_name = $3"
                          " AND part = $6::int AND state IN ('pending', 'copying')",
                          6, params, &res);
    if (rc == 0 && commit) {
        if (strcmp(PQcmdTuples(res), "1") != 0)
            rc = tm_fail(-EEXIST,
                         "part %d of %s is no longer pending in tidemark.sync_state (another"
                         " process copied it, or its plan was reset): its %lld copied rows are"
                         " rolled back",
                         c->part, c->t->display, c->rows);
        PQclear(res);
    }
    if (rc == 0 && commit)
        rc = pgconn_exec(c->conn, "COMMIT");
    if (rc < 0 || !commit)
        PQclear(PQexec(c->conn, "ROLLBACK"));
    if (rc < 0)
        return tm_fail_ctx(rc, "initial copy of %s", c->t->display);
    return 0;
}

static void pgsink_copy_free(SinkCopy *sc)
{
    PgCopy *c = (PgCopy *)sc;

    if (!c)
        return;
    /* A copy that did not end (no COMMIT or ROLLBACK) is not reusable: closed. */
    pgsink_session_put(c->sink, c->conn);
    for (size_t i = 0; i < c->ndl; i++) {
        free(c->dl_rows[i]);
        free(c->dl_errors[i]);
    }
    free(c->dl_rows);
    free(c->dl_errors);
    free(c);
}

static void pgsink_copy_idle(Sink *base)
{
    pgsink_sessions_close(pgsink_of(base));
}

static int pgsink_socket(const Sink *base)
{
    const PgSink *s = (const PgSink *)base;

    return s->conn ? PQsocket(s->conn) : -1;
}

static Lsn pgsink_durable(const Sink *base)
{
    return ((const PgSink *)base)->durable;
}

static size_t pgsink_inflight(const Sink *base)
{
    return ((const PgSink *)base)->pend_count;
}

static size_t pgsink_inflight_bytes(const Sink *base)
{
    return ((const PgSink *)base)->inflight_bytes;
}

static bool pgsink_gated(const Sink *base)
{
    return ((const PgSink *)base)->gated;
}

static size_t pgsink_batch_changes(const Sink *base)
{
    return ((const PgSink *)base)->batch_changes;
}

static int pgsink_forget_tables(Sink *base, const TableSet *keep)
{
    PgSink *s = pgsink_of(base);
    const char *params[1] = {s->cfg->pipeline};
    PGresult *res;
    int rc = pgconn_query(s->conn,
                          "SELECT DISTINCT schema_name, table_name FROM tidemark.sync_state"
                          " WHERE pipeline = $1",
                          1, params, &res);

    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        const char *del[3] = {s->cfg->pipeline, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1)};

        if (tableset_find(keep, del[1], del[2]) >= 0)
            continue;
        log_write(LOG_LVL_INFO, NULL, LSN_INVALID,
                  "table %s.%s left source.tables: no longer applied; its copy state is"
                  " dropped (adding it back copies it again)",
                  del[1], del[2]);
        rc = pgconn_query(s->conn,
                          "DELETE FROM tidemark.sync_state WHERE pipeline = $1 AND"
                          " schema_name = $2 AND table_name = $3",
                          3, del, NULL);
    }
    if (rc == 0)
        PQclear(res);
    return rc;
}

static const SinkOps pgsink_ops = {
    .name = "postgres",
    .transactional = true,
    .free = pgsink_free,
    .connect = pgsink_connect,
    .read_position = pgsink_read_position,
    .init_position = pgsink_init_position,
    .table_state = pgsink_table_state,
    .check_table = pgsink_check_table,
    .check_tables = pgsink_check_tables,
    .start = pgapply_start,
    .txn_begin = pgapply_txn_begin,
    .apply = pgapply_apply,
    .truncate = pgapply_truncate,
    .txn_commit = pgapply_txn_commit,
    .barrier = pgapply_barrier,
    .close_batch = pgapply_close_batch,
    .abort_batch = pgapply_abort_batch,
    .idle_position = pgapply_idle_position,
    .process = pgapply_process,
    .flush = pgapply_flush,
    .drain = pgapply_drain,
    .socket = pgsink_socket,
    .durable = pgsink_durable,
    .inflight = pgsink_inflight,
    .inflight_bytes = pgsink_inflight_bytes,
    .batch_changes = pgsink_batch_changes,
    .gated = pgsink_gated,
    .copy_open = pgsink_copy_open,
    .copy_rows = pgsink_copy_rows,
    .copy_finish = pgsink_copy_finish,
    .copy_free = pgsink_copy_free,
    .parts_load = pgsink_parts_load,
    .parts_plan = pgsink_parts_plan,
    .copy_open_part = pgsink_copy_open_part,
    .copy_key_indexed = pgsink_copy_key_indexed,
    .copy_idle = pgsink_copy_idle,
    .copy_dead_letter = pgsink_copy_dead_letter,
    .dead_letter = pgapply_dead_letter,
    .forget_tables = pgsink_forget_tables,
    .record_slot = pgslot_record,
    .recorded_slot = pgslot_recorded,
};

Sink *pgsink_new(const Config *cfg)
{
    PgSink *s = xcalloc(1, sizeof(*s));

    s->base.ops = &pgsink_ops;
    s->base.cfg = cfg;
    s->cfg = cfg;
    s->pend_cap = 1024;
    s->pend = xcalloc(s->pend_cap, sizeof(Pending));
    pthread_mutex_init(&s->pool_mu, NULL);
    return &s->base;
}
