/*
 * Pipeline startup, before the loop: connect, resolve and check the tables,
 * make the publication match them, and find or create the slot. On a first
 * start the slot is created first and its position recorded on the target
 * before any row is copied; the copies themselves run later, in the loop's
 * table-sync workers.
 */
#include "daemon/pipeline_int.h"
#include "connectors/pg/catalog.h"
#include "connectors/pg/pgconn.h"
#include "connectors/pg/schemacopy.h"
#include "core/error.h"
#include "core/log.h"
#include "core/transform/mapping.h"
#include "core/xmalloc.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Setup blocks before the loop runs; its waits still let the loop see a
 * signal (and answer /healthz) once a second: a stop request ends them.
 */
static bool setup_stop(void *arg)
{
    Pipeline *p = arg;

    ev_run(p->loop, EVRUN_NOWAIT);
    return p->stopping;
}

/* Creating the slot waits for the transactions open on the source: say which. */
typedef struct SlotWait {
    Pipeline *p;
    PGconn *src;
} SlotWait;

static bool slot_stop(void *arg)
{
    return setup_stop(((SlotWait *)arg)->p);
}

static void slot_waiting(void *arg, double seconds)
{
    const SlotWait *w = arg;

    repl_log_open_transactions(w->src, w->p->cfg->source.slot, seconds);
}

/*
 * A slot stays "active" for a moment after its previous consumer died (the
 * walsender notices the closed socket on its next read), e.g. right after a
 * kill -9 and restart: wait for it with a deadline rather than fail.
 */
static int lookup_idle_slot(Pipeline *p, PGconn *src, bool *exists, Lsn *confirmed)
{
    bool active = false;
    int rc;

    for (int tries = 0; tries < 150; tries++) {
        rc = repl_slot_lookup(src, p->cfg->source.slot, exists, &active, confirmed);
        if (rc < 0 || !*exists || !active)
            return rc;
        if (tries == 0)
            log_info("slot %s is still held by a previous session; waiting up to 30 s",
                     p->cfg->source.slot);
        poll(NULL, 0, 200);
        if (setup_stop(p))
            return tm_fail(-ECANCELED, "stopped while waiting for slot %s", p->cfg->source.slot);
    }
    return tm_fail(-EBUSY, "slot %s is in use by another process", p->cfg->source.slot);
}

static int check_tables(Pipeline *p, bool require_empty)
{
    if (p->sink->ops->check_tables)
        return p->sink->ops->check_tables(p->sink, &p->tabs, require_empty);
    for (size_t i = 0; i < p->tabs.n; i++) {
        const TableDef *t = &p->tabs.t[i];

        int rc = p->sink->ops->check_table(p->sink, t, require_empty);

        if (rc < 0)
            return rc;
    }
    return 0;
}

/* schema: copy — types, sequences and bare tables before anything else. */
static int schema_pre_data(Pipeline *p)
{
    PGconn *dst = NULL;
    bool done = false;
    int rc;

    if (strcmp(p->cfg->target.type, "postgres") != 0)
        return tm_fail(-EINVAL, "schema: copy needs a postgres target");
    rc = pgconn_open(&p->cfg->target.conn, PGCONN_NORMAL, "target", &dst);
    if (rc == 0)
        rc = schemacopy_done(dst, p->cfg->pipeline, "pre-data", &done);
    if (rc == 0 && !done)
        rc = schemacopy_run(p->cfg, dst, &p->tabs, "pre-data");
    if (rc == 0 && !done)
        rc = schemacopy_mark(dst, p->cfg->pipeline, "pre-data");
    if (dst)
        PQfinish(dst);
    return rc;
}

int pipeline_schema_pending(Pipeline *p, bool *pending)
{
    PGconn *dst = NULL;
    bool done = true;
    int rc = 0;

    if (p->cfg->schema_copy) {
        rc = pgconn_open(&p->cfg->target.conn, PGCONN_NORMAL, "target", &dst);
        if (rc == 0)
            rc = schemacopy_done(dst, p->cfg->pipeline, "post-data", &done);
        if (dst)
            PQfinish(dst);
    }
    *pending = !done;
    /* Restored: the foreign keys it leaves out exist (NOT VALID) before streaming. */
    if (rc == 0 && p->cfg->schema_copy && done)
        rc = pipeline_fk_prepare(p);
    return rc;
}

/*
 * A first start found a slot of the configured name. It is dropped only when
 * the sink records that this pipeline created it (a first start that
 * stopped before recording its position) and it has not moved since; anyone
 * else's slot is left alone and the start refused, naming the way out.
 */
static int reclaim_slot(Pipeline *p, PGconn *src, Lsn confirmed)
{
    const char *slot = p->cfg->source.slot;
    char *rec = NULL, why[256];
    Lsn created = LSN_INVALID;
    int rc = 0;

    if (p->sink->ops->recorded_slot)
        rc = p->sink->ops->recorded_slot(p->sink, &rec, &created);
    if (rc < 0)
        return rc;
    if (!rec || strcmp(rec, slot) != 0)
        snprintf(why, sizeof(why), "the target records no slot created by pipeline %s",
                 p->cfg->pipeline);
    else if (created != LSN_INVALID && created != confirmed)
        snprintf(why, sizeof(why),
                 "pipeline %s created a slot of that name at " LSN_FMT
                 ", but this one has been consumed since",
                 p->cfg->pipeline, LSN_ARGS(created));
    else
        why[0] = '\0';
    free(rec);
    if (why[0])
        return tm_fail(-EEXIST,
                       "replication slot %s (plugin pgoutput, confirmed up to " LSN_FMT
                       ") already exists on the source and this is the first start of pipeline"
                       " %s, but %s: refusing to use or drop a slot this pipeline did not"
                       " create. If nothing needs it, drop it on the source with SELECT"
                       " pg_drop_replication_slot('%s'); otherwise set another source.slot",
                       slot, LSN_ARGS(confirmed), p->cfg->pipeline, why, slot);
    if (created == LSN_INVALID)
        log_warn("dropping slot %s: this pipeline was creating it when an earlier first start"
                 " stopped; creating it again",
                 slot);
    else
        log_warn("dropping slot %s: this pipeline created it at " LSN_FMT
                 " on an earlier first start that stopped before recording its position;"
                 " creating it again",
                 slot, LSN_ARGS(created));
    return repl_drop_slot(src, slot);
}

/* First start: publication, the slot, and its position recorded on the sink. */
static int first_start(Pipeline *p, PGconn *src, Lsn *start)
{
    bool exists, made_pub = false;
    Lsn confirmed, consistent;
    SlotWait sw = {p, src};
    ReplWait wait = {slot_stop, slot_waiting, 5.0, &sw};
    int rc = 0;

    if (p->cfg->schema_copy)
        rc = schema_pre_data(p);
    if (rc == 0)
        rc = check_tables(p, true);
    if (rc == 0)
        rc = catalog_sync_publication(src, p->cfg->source.publication, &p->tabs, &made_pub);
    if (rc == 0)
        rc = lookup_idle_slot(p, src, &exists, &confirmed);
    if (rc == 0 && exists)
        rc = reclaim_slot(p, src, confirmed);
    /* Recorded before the slot exists: a start that dies after creating it
     * leaves the record that lets the next one drop it. */
    if (rc == 0 && p->sink->ops->record_slot)
        rc = p->sink->ops->record_slot(p->sink, p->cfg->source.slot, LSN_INVALID);
    if (rc == 0)
        rc = repl_connect(p->repl);
    if (rc == 0)
        rc = repl_create_slot_wait(p->repl, p->cfg->source.slot, false, &consistent, NULL, &wait);
    repl_disconnect(p->repl);
    if (rc < 0 && made_pub) {
        /* No slot: a failed first start leaves nothing on the source. */
        int err = rc;
        char *msg = xstrdup(tm_error());

        if (catalog_drop_publication(src, p->cfg->source.publication) < 0)
            log_warn("%s", tm_error());
        rc = tm_fail(err, "%s", msg);
        free(msg);
        return rc;
    }
    if (rc == 0 && p->sink->ops->record_slot)
        rc = p->sink->ops->record_slot(p->sink, p->cfg->source.slot, consistent);
    if (rc == 0)
        rc = p->sink->ops->init_position(p->sink, consistent, &p->tabs);
    if (rc < 0)
        return rc;
    log_write(LOG_LVL_INFO, NULL, consistent, "created slot %s for %zu table(s)",
              p->cfg->source.slot, p->tabs.n);
    *start = consistent;
    return 0;
}

static int resume_start(Pipeline *p, PGconn *src, Lsn *wm)
{
    bool exists;
    Lsn confirmed;
    int rc = check_tables(p, false);

    /* Tables added to source.tables are published now and copied by the
     * workers; removed ones leave the publication and are no longer applied. */
    if (rc == 0)
        rc = catalog_sync_publication(src, p->cfg->source.publication, &p->tabs, NULL);
    if (rc == 0 && p->sink->ops->forget_tables)
        rc = p->sink->ops->forget_tables(p->sink, &p->tabs);
    if (rc == 0)
        rc = lookup_idle_slot(p, src, &exists, &confirmed);
    if (rc < 0)
        return rc;
    if (!exists)
        return tm_fail(-ENOENT,
                       "slot %s is missing on the source but the pipeline has already started"
                       " (watermark " LSN_FMT "): changes since then cannot be streamed"
                       " without loss. Start the pipeline over (empty the target tables and"
                       " delete its rows from tidemark.watermark and tidemark.sync_state)",
                       p->cfg->source.slot, LSN_ARGS(*wm));
    if (*wm == LSN_INVALID)
        *wm = confirmed; /* the sink keeps no position of its own: the slot is it */
    else if (confirmed > *wm)
        return tm_fail(-EINVAL,
                       "slot %s has confirmed " LSN_FMT " beyond the target's watermark " LSN_FMT
                       ": the changes between them are lost to this target",
                       p->cfg->source.slot, LSN_ARGS(confirmed), LSN_ARGS(*wm));
    log_write(LOG_LVL_INFO, NULL, *wm, "resuming pipeline %s", p->cfg->pipeline);
    return 0;
}

/* Before anything is created: a slot cannot exist without it. */
static int check_wal_level(PGconn *src)
{
    PGresult *res;
    int rc = pgconn_query(src, "SELECT current_setting('wal_level')", 0, NULL, &res);

    if (rc < 0)
        return tm_fail_ctx(rc, "source: reading wal_level");
    if (strcmp(PQgetvalue(res, 0, 0), "logical") != 0)
        rc = tm_fail(-EINVAL,
                     "the source's wal_level is %s; logical replication needs wal_level ="
                     " logical (ALTER SYSTEM SET wal_level = logical, then restart the source"
                     " server). Nothing was created",
                     PQgetvalue(res, 0, 0));
    PQclear(res);
    return rc;
}

int pipeline_setup(Pipeline *p, Lsn *start)
{
    PGconn *src = NULL;
    bool found;
    int rc;

    rc = pgconn_open(&p->cfg->source.conn, PGCONN_NORMAL, "source", &src);
    if (rc < 0)
        return rc;
    rc = check_wal_level(src);
    if (rc < 0) {
        PQfinish(src);
        return rc;
    }
    p->encoding = xstrdup(PQparameterStatus(src, "server_encoding"));
    rc = PQsetClientEncoding(src, p->encoding) == 0 ? 0 : tm_fail(-EIO, "source: encoding");
    if (rc == 0)
        rc = p->sink->ops->connect(p->sink, p->encoding);
    if (rc == 0)
        rc = p->sink->ops->read_position(p->sink, &found, start);
    if (rc == 0)
        rc = catalog_resolve(src, p->cfg, &p->tabs);
    if (rc == 0)
        rc = catalog_check_identity(&p->tabs);
    if (rc == 0)
        rc = found ? resume_start(p, src, start) : first_start(p, src, start);
    PQfinish(src);
    return rc;
}

int pipeline_slot_gone(const Config *cfg)
{
    const char *params[1] = {cfg->pipeline};
    PGconn *dst = NULL;
    PGresult *res = NULL;
    bool switched = false;

    if (strcmp(cfg->target.type, "postgres") == 0 &&
        pgconn_open(&cfg->target.conn, PGCONN_NORMAL, "target", &dst) == 0 &&
        pgconn_query(dst,
                     "SELECT value FROM tidemark.pipeline_state WHERE pipeline = $1 AND"
                     " key = 'switched'",
                     1, params, &res) == 0)
        switched = PQntuples(res) == 1;
    if (switched)
        tm_fail(-ESHUTDOWN,
                "pipeline %s was switched over (%s) and its slot %s dropped: stopping (the"
                " other direction runs now, docs/CUTOVER.md)",
                cfg->pipeline, PQgetvalue(res, 0, 0), cfg->source.slot);
    PQclear(res);
    if (dst)
        PQfinish(dst);
    if (switched)
        return -ESHUTDOWN;
    return tm_fail(-ENOENT,
                   "slot %s no longer exists on the source: the changes after the target's"
                   " watermark cannot be streamed without loss. Start the pipeline over (empty"
                   " the target tables, `tidemark teardown`, start it)",
                   cfg->source.slot);
}
