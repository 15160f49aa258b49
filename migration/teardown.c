/*
 * `tidemark teardown`: removes what a pipeline and its fallback left in both
 * databases once the migration is over (or abandoned): the replication slots
 * (which otherwise keep WAL forever), the publications, and their rows in
 * schema tidemark on either side. It refuses while a daemon streams from one
 * of the slots, and running it again finds nothing to do. The run records
 * (tidemark.cutover_runs) are the migration's signed-off history and stay
 * unless asked; a database a cutover or rollback left read-only stays so.
 */
#include "migration/teardown.h"
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/xmalloc.h"
#include "migration/reverse.h"
#include "migration/switch_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct Side {
    const char *what; /* "source", "target" */
    const ConfigEndpoint *ep;
    PGconn *conn;
    char *db;
    const char *slot, *publication; /* of the pipeline that reads this side */
    const char *reader;             /* that pipeline */
} Side;

static int refuse_if_running(Side *s)
{
    const char *p[1] = {s->slot};
    char *pid = NULL;
    int rc = sw_value(s->conn,
                      "SELECT active_pid::text FROM pg_replication_slots WHERE slot_name = $1"
                      " AND active",
                      1, p, &pid);

    if (rc == 0 && pid)
        rc = tm_fail(-EBUSY,
                     "pipeline %s is running: slot %s on the %s is in use by process %s; stop its"
                     " daemon first",
                     s->reader, s->slot, s->what, pid);
    free(pid);
    return rc;
}

static int drop_objects(Side *s, FILE *out, int *n)
{
    const char *p[1] = {s->slot};
    const char *pp[1] = {s->publication};
    char *v = NULL;
    int rc = sw_value(s->conn,
                      "SELECT pg_drop_replication_slot(slot_name)::text FROM pg_replication_slots"
                      " WHERE slot_name = $1",
                      1, p, &v);

    if (rc == 0 && v) {
        fprintf(out, "  dropped slot %s on the %s (%s)\n", s->slot, s->what, s->db);
        (*n)++;
    }
    free(v);
    v = NULL;
    if (rc == 0)
        rc = sw_value(s->conn, "SELECT 1 FROM pg_publication WHERE pubname = $1", 1, pp, &v);
    if (rc == 0 && v) {
        char *q = pgconn_ident(s->conn, s->publication);
        char *sql = xasprintf("DROP PUBLICATION %s", q);

        rc = pgconn_exec(s->conn, sql);
        if (rc == 0) {
            fprintf(out, "  dropped publication %s on the %s (%s)\n", s->publication, s->what,
                    s->db);
            (*n)++;
        }
        free(sql);
        free(q);
    }
    free(v);
    return rc;
}

/* Every tidemark.* table with a pipeline column, but the run history unless purged. */
static int delete_rows(Side *s, const char *p1, const char *p2, bool purge, FILE *out, int *n)
{
    const char *params[2] = {p1, p2};
    PGresult *res = NULL;
    char *frozen = NULL;
    int rc = pgconn_query(s->conn,
                          "SELECT table_name FROM information_schema.columns WHERE table_schema ="
                          " 'tidemark' AND column_name = 'pipeline' ORDER BY 1",
                          0, NULL, &res);

    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        const char *t = PQgetvalue(res, i, 0);
        char *sql;
        PGresult *del = NULL;

        if (!purge && strcmp(t, "cutover_runs") == 0)
            continue;
        if (strcmp(t, "pipeline_state") == 0)
            sw_value(s->conn,
                     "SELECT value::jsonb->>'database' FROM tidemark.pipeline_state WHERE"
                     " pipeline IN ($1, $2) AND key = 'frozen'",
                     2, params, &frozen);
        sql = xasprintf("DELETE FROM tidemark.%s WHERE pipeline IN ($1, $2)", t);
        rc = pgconn_query(s->conn, sql, 2, params, &del);
        if (rc == 0 && atoi(PQcmdTuples(del)) > 0) {
            fprintf(out, "  deleted %s row(s) from tidemark.%s on the %s (%s)\n", PQcmdTuples(del),
                    t, s->what, s->db);
            (*n)++;
        }
        PQclear(del);
        free(sql);
    }
    PQclear(res);
    if (rc == 0 && frozen)
        fprintf(out,
                "  note: database %s stays read-only (a cutover or rollback froze it); to write"
                " to it again: ALTER DATABASE %s RESET default_transaction_read_only\n",
                frozen, frozen);
    free(frozen);
    return rc;
}

int teardown_run(const Config *fwd, bool purge_history, FILE *out)
{
    char *rev = xasprintf("%s%s", fwd->pipeline, REVERSE_SUFFIX);
    char *rev_slot = xasprintf("tidemark_%s", rev);
    Side sides[2] = {
        {"source", &fwd->source.conn, NULL, NULL, fwd->source.slot, fwd->source.publication,
         fwd->pipeline},
        {"target", &fwd->target.conn, NULL, NULL, rev_slot, rev_slot, rev},
    };
    size_t nsides = strcmp(fwd->target.type, "postgres") == 0 ? 2 : 1;
    int n = 0, rc = 0;

    for (size_t i = 0; rc == 0 && i < nsides; i++) {
        rc = sw_open(sides[i].ep, sides[i].what, &sides[i].conn);
        if (rc == 0)
            rc = sw_value(sides[i].conn, "SELECT current_database()", 0, NULL, &sides[i].db);
        if (rc == 0)
            rc = refuse_if_running(&sides[i]);
    }
    if (rc == 0)
        fprintf(out, "teardown of pipeline %s and its fallback %s:\n", fwd->pipeline, rev);
    for (size_t i = 0; rc == 0 && i < nsides; i++) {
        bool has;
        char *v = NULL;

        rc = drop_objects(&sides[i], out, &n);
        if (rc == 0)
            rc = sw_value(sides[i].conn, "SELECT 1 WHERE to_regnamespace('tidemark') IS NOT NULL",
                          0, NULL, &v);
        has = v != NULL;
        free(v);
        if (rc == 0 && has)
            rc = delete_rows(&sides[i], fwd->pipeline, rev, purge_history, out, &n);
    }
    if (rc == 0 && n == 0)
        fprintf(out, "  nothing to tear down\n");
    else if (rc == 0 && !purge_history)
        fprintf(out, "  kept: the run history in tidemark.cutover_runs (--purge-history removes"
                     " it)\n");
    for (size_t i = 0; i < nsides; i++) {
        if (sides[i].conn)
            PQfinish(sides[i].conn);
        free(sides[i].db);
    }
    free(rev);
    free(rev_slot);
    return rc;
}
