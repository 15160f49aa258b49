/*
 * Sequence synchronisation (see sequences.h). Values are read from
 * pg_sequences on the source and applied with setval() on the target by
 * parameter; a sequence the source never used is reset to its start value
 * with is_called = false, exactly as the source would hand it out.
 */
#include "connectors/pg/sequences.h"
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/relcache.h"
#include "core/xmalloc.h"

#include <string.h>

static int sync_one(PGconn *dst, const char *schema, const char *name, const char *last,
                    const char *start, bool dry_run, FILE *out, SeqSyncResult *r)
{
    char *q = pgconn_qualified(dst, schema, name);
    char *disp = relcache_display_name(schema, name);
    const char *p1[1] = {q};
    PGresult *res;
    int rc = pgconn_query(dst,
                          "SELECT c.oid IS NOT NULL, CASE WHEN c.oid IS NOT NULL THEN"
                          " (SELECT last_value::text FROM pg_sequences s WHERE"
                          " format('%I.%I', s.schemaname, s.sequencename)::regclass = c.oid)"
                          " END, (SELECT relkind FROM pg_class WHERE oid = c.oid)"
                          " FROM (SELECT to_regclass($1)::oid AS oid) c",
                          1, p1, &res);

    if (rc < 0) {
        if (PQstatus(dst) == CONNECTION_OK) {
            fprintf(out, "  %-40s source %-20s target: NOT SET: %s\n", disp,
                    last ? last : "(unused)", tm_error());
            r->failed++;
            rc = 0;
        }
        goto out;
    }
    bool exists = PQgetvalue(res, 0, 0)[0] == 't';
    bool is_seq = !PQgetisnull(res, 0, 2) && PQgetvalue(res, 0, 2)[0] == 'S';
    char *before = xstrdup(PQgetisnull(res, 0, 1) ? "(unused)" : PQgetvalue(res, 0, 1));
    PQclear(res);
    if (exists && !is_seq) {
        fprintf(out, "  %-40s source %-20s target: NOT SET: not a sequence on the target\n", disp,
                last ? last : "(unused)");
        r->failed++;
        free(before);
        goto out;
    }
    if (!exists) {
        fprintf(out, "  %-40s source %-20s target MISSING\n", disp, last ? last : "(unused)");
        r->missing++;
        free(before);
        goto out;
    }
    if (!dry_run) {
        const char *p3[3] = {q, last ? last : start, last ? "true" : "false"};

        rc = pgconn_query(dst, "SELECT setval($1::regclass, $2::bigint, $3::bool)", 3, p3, NULL);
    }
    if (rc < 0 && PQstatus(dst) == CONNECTION_OK) {
        /* This sequence only (not a sequence on the target, no privilege,
         * out of its range): say so and go on with the others. */
        fprintf(out, "  %-40s source %-20s target %s: NOT SET: %s\n", disp,
                last ? last : "(unused)", before, tm_error());
        r->failed++;
        rc = 0;
    } else if (rc == 0) {
        fprintf(out, "  %-40s source %-20s target %s -> %s%s\n", disp, last ? last : "(unused)",
                before, last ? last : "(unused)", dry_run ? " (dry run)" : "");
        r->synced++;
    }
    free(before);
out:
    free(q);
    free(disp);
    return rc;
}

int sequences_sync(const Config *cfg, const TableSet *tabs, bool dry_run, FILE *out,
                   SeqSyncResult *r)
{
    PGconn *src = NULL, *dst = NULL;
    int rc;

    memset(r, 0, sizeof(*r));
    rc = pgconn_open(&cfg->source.conn, PGCONN_NORMAL, "source", &src);
    if (rc == 0)
        rc = pgconn_open(&cfg->target.conn, PGCONN_NORMAL, "target", &dst);
    for (size_t i = 0; rc == 0 && i < tabs->n; i++) {
        bool seen = false;

        for (size_t j = 0; j < i; j++)
            seen |= strcmp(tabs->t[j].schema, tabs->t[i].schema) == 0;
        if (seen)
            continue;
        const char *params[1] = {tabs->t[i].schema};
        PGresult *res = NULL;

        rc = pgconn_query(src,
                          "SELECT sequencename, last_value::text, start_value::text"
                          " FROM pg_sequences WHERE schemaname = $1 ORDER BY sequencename",
                          1, params, &res);
        for (int row = 0; rc == 0 && row < PQntuples(res); row++)
            rc = sync_one(dst, tabs->t[i].schema, PQgetvalue(res, row, 0),
                          PQgetisnull(res, row, 1) ? NULL : PQgetvalue(res, row, 1),
                          PQgetvalue(res, row, 2), dry_run, out, r);
        PQclear(res);
    }
    if (src)
        PQfinish(src);
    if (dst)
        PQfinish(dst);
    return rc;
}
