/*
 * The slot a pipeline's first start created, kept on the target in
 * tidemark.pipeline_state under key 'slot' as JSON ({"name": ..., "lsn":
 * ...}: lsn null while the slot is being created). It is written before
 * CREATE_REPLICATION_SLOT, so a first start that dies at any point after it
 * leaves a record of the slot it may have made; only such a slot is ever
 * dropped by a later first start (daemon/pipeline_setup.c).
 */
#include "sinks/pg/pgsink_int.h"
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/xmalloc.h"

#include <stdlib.h>

int pgslot_record(Sink *base, const char *slot, Lsn created_at)
{
    PgSink *s = pgsink_of(base);
    char lsnbuf[24];
    const char *params[3] = {
        s->cfg->pipeline, slot,
        created_at == LSN_INVALID ? NULL : lsn_format(created_at, lsnbuf, sizeof(lsnbuf))};
    int rc = pgconn_query(s->conn,
                          "INSERT INTO tidemark.pipeline_state (pipeline, key, value) VALUES"
                          " ($1, 'slot', jsonb_build_object('name', $2::text, 'lsn',"
                          " $3::pg_lsn::text)::text) ON CONFLICT (pipeline, key) DO UPDATE SET"
                          " value = excluded.value, updated_at = now()",
                          3, params, NULL);

    if (rc < 0)
        return tm_fail_ctx(rc, "target: recording slot %s in tidemark.pipeline_state", slot);
    return 0;
}

int pgslot_recorded(Sink *base, char **slot, Lsn *created_at)
{
    PgSink *s = pgsink_of(base);
    const char *params[1] = {s->cfg->pipeline};
    PGresult *res;
    int rc = pgconn_query(s->conn,
                          "SELECT value::jsonb->>'name', value::jsonb->>'lsn' FROM"
                          " tidemark.pipeline_state WHERE pipeline = $1 AND key = 'slot'",
                          1, params, &res);

    *slot = NULL;
    *created_at = LSN_INVALID;
    if (rc < 0)
        return tm_fail_ctx(rc, "target: reading the recorded slot of pipeline %s",
                           s->cfg->pipeline);
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        *slot = xstrdup(PQgetvalue(res, 0, 0));
        if (!PQgetisnull(res, 0, 1))
            rc = lsn_parse(PQgetvalue(res, 0, 1), created_at);
    }
    PQclear(res);
    return rc;
}
