/*
 * The preflight checks on each side (see preflight.h). Each problem is a
 * finding with what to do about it; what is fine is one "ok" finding per
 * check, so the report also shows what was looked at. Privileges are
 * checked for everything tidemark will do later: streaming, the copy, the
 * cutover's freeze and the fallback pipeline that writes to the source.
 */
#include "migration/preflight_int.h"
#include "connectors/pg/pgconn.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/xmalloc.h"
#include "migration/reverse.h"

#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define MB (1024.0 * 1024.0)
/* A conservative copy speed for the WAL estimate (docs/BENCHMARKS.md measures more). */
#define COPY_BYTES_PER_S (50 * MB)

static bool is_true(const char *v)
{
    return v && v[0] == 't';
}

static char *schemas_literal(const Pf *pf)
{
    Buf b = BUF_INIT;
    char *out;

    buf_putc(&b, '{');
    for (size_t i = 0; i < pf->ntabs; i++)
        buf_put_array_elem(&b, pf->tabs[i].schema);
    buf_putc(&b, '}');
    out = xstrdup(buf_cstr(&b));
    buf_release(&b);
    return out;
}

/* Free replication slots and WAL senders against what the run needs. */
static void check_capacity(Pf *pf, PGconn *c, const char *side, int need, const char *what,
                           PreflightSeverity sev)
{
    PGresult *res;

    if (pgconn_query(c,
                     "SELECT current_setting('max_replication_slots')::int - (SELECT count(*) FROM"
                     " pg_replication_slots), current_setting('max_wal_senders')::int - (SELECT"
                     " count(*) FROM pg_stat_replication)",
                     0, NULL, &res) < 0)
        return;
    int slots = atoi(PQgetvalue(res, 0, 0)), senders = atoi(PQgetvalue(res, 0, 1));

    PQclear(res);
    if (slots < need)
        pf_add(pf, sev, side, "slots", NULL,
               "raise max_replication_slots (restart), or drop unused slots",
               "%d free replication slot(s), %s needs %d", slots < 0 ? 0 : slots, what, need);
    else
        pf_add(pf, PF_OK, side, "slots", NULL, NULL, "%d free replication slot(s), %d needed",
               slots, need);
    if (senders < need)
        pf_add(pf, sev, side, "senders", NULL, "raise max_wal_senders (restart)",
               "%d free WAL sender(s), %s needs %d", senders < 0 ? 0 : senders, what, need);
    else
        pf_add(pf, PF_OK, side, "senders", NULL, NULL, "%d free WAL sender(s), %d needed", senders,
               need);
}

static bool is_local(PGconn *c)
{
    const char *h = PQhost(c);

    return !h || h[0] == '/' || strcmp(h, "localhost") == 0 || strcmp(h, "127.0.0.1") == 0 ||
           strcmp(h, "::1") == 0;
}

/* How much WAL the slot may hold back: the copy's duration (at least an hour
 * of outage) at the source's average WAL rate. */
static void check_wal_headroom(Pf *pf, double table_bytes)
{
    char *rate_s = pf_value(pf->s,
                            "SELECT (wal_bytes / greatest(extract(epoch FROM now() -"
                            " coalesce(stats_reset, pg_postmaster_start_time())), 1))::float8::text"
                            " FROM pg_stat_wal",
                            0, NULL);
    char *keep_s = pf_value(pf->s,
                            "SELECT setting FROM pg_settings WHERE name ="
                            " 'max_slot_wal_keep_size'",
                            0, NULL);
    char *dir =
        pf_value(pf->s, "SELECT setting FROM pg_settings WHERE name = 'data_directory'", 0, NULL);
    double rate = rate_s ? strtod(rate_s, NULL) : 0, copy_s = table_bytes / COPY_BYTES_PER_S;
    double retain = rate * (copy_s > 3600 ? copy_s : 3600);
    double keep = keep_s ? strtod(keep_s, NULL) * MB : -1;
    struct statvfs sv;
    char path[4096];

    if (retain < 16 * MB)
        retain = 16 * MB;
    if (keep >= 0 && keep < retain)
        pf_add(pf, PF_ERROR, "source", "wal", "max_slot_wal_keep_size",
               "raise max_slot_wal_keep_size (or set -1) for the migration",
               "max_slot_wal_keep_size is %.0f MB but the slot may retain about %.0f MB (%.0f kB/s"
               " of WAL during a %.0f s copy or a one-hour outage): the server would invalidate"
               " the slot and the migration would have to start over",
               keep / MB, retain / MB, rate / 1024, copy_s);
    snprintf(path, sizeof(path), "%s/pg_wal", dir ? dir : "");
    if (dir && is_local(pf->s) && statvfs(path, &sv) == 0) {
        double avail = (double)sv.f_bavail * (double)sv.f_frsize;

        if (avail < 2 * retain)
            pf_add(pf, avail < retain ? PF_ERROR : PF_WARNING, "source", "wal", path,
                   "free disk space for pg_wal, or keep outages short and watch"
                   " tidemark_slot_retained_wal_bytes",
                   "%.0f MB free for %s; the slot may retain about %.0f MB of WAL", avail / MB,
                   path, retain / MB);
        else
            pf_add(pf, PF_OK, "source", "wal", path, NULL,
                   "%.0f MB free for %s, the slot may retain about %.0f MB", avail / MB, path,
                   retain / MB);
    } else
        pf_add(pf, PF_INFO, "source", "wal", NULL,
               "make sure pg_wal has that much room on the source server",
               "the slot may retain about %.0f MB of WAL (%.0f kB/s during a %.0f s copy or a"
               " one-hour outage); free disk space on the source server cannot be seen from here",
               retain / MB, rate / 1024, copy_s);
    free(rate_s);
    free(keep_s);
    free(dir);
}

static const char *const SRC_TABLE_SQL =
    "SELECT c.relkind, c.relreplident,"
    " EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),"
    " EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident),"
    " has_table_privilege(c.oid, 'SELECT'), pg_has_role(c.relowner, 'USAGE'),"
    " has_table_privilege(c.oid, 'UPDATE') OR has_table_privilege(c.oid, 'DELETE') OR"
    " has_table_privilege(c.oid, 'TRUNCATE'),"
    " has_table_privilege(c.oid, 'INSERT') AND has_table_privilege(c.oid, 'UPDATE') AND"
    " has_table_privilege(c.oid, 'DELETE'), pg_total_relation_size(c.oid)"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = $1 AND c.relname = $2";

static double check_source_tables(Pf *pf, bool pub_exists, bool fallback)
{
    double bytes = 0;
    int good = 0;

    for (size_t i = 0; i < pf->ntabs; i++) {
        PfTable *t = &pf->tabs[i];
        const char *p[2] = {t->schema, t->name};
        PGresult *res;

        if (pgconn_query(pf->s, SRC_TABLE_SQL, 2, p, &res) < 0)
            continue;
        if (PQntuples(res) == 0) {
            pf_add(pf, PF_ERROR, "source", "table", t->display,
                   "create it, or remove it from source.tables", "%s does not exist on the source",
                   t->display);
            PQclear(res);
            continue;
        }
        t->on_source = true;
        char kind = PQgetvalue(res, 0, 0)[0], ident = PQgetvalue(res, 0, 1)[0];
        bool pk = is_true(PQgetvalue(res, 0, 2)), idx = is_true(PQgetvalue(res, 0, 3));
        bool ok = true;

        bytes += strtod(PQgetvalue(res, 0, 8), NULL);
        if (kind != 'r' && kind != 'p')
            pf_add(pf, PF_ERROR, "source", "table", t->display, "list only tables",
                   "%s is not a table (relkind '%c')", t->display, kind),
                ok = false;
        if (!(ident == 'f' || (ident == 'i' && idx) || (ident == 'd' && pk)))
            pf_add(pf, PF_ERROR, "source", "identity", t->display,
                   "add a primary key, or ALTER TABLE ... REPLICA IDENTITY FULL (or USING INDEX)",
                   "%s has no primary key and no replica identity: once published, the source"
                   " would reject its UPDATE and DELETE",
                   t->display),
                ok = false;
        else if (ident == 'f')
            pf_add(pf, PF_INFO, "source", "identity", t->display, NULL,
                   "%s has REPLICA IDENTITY FULL: each UPDATE and DELETE is located by all its"
                   " columns on the target (add an index on the target for speed)",
                   t->display);
        if (!is_true(PQgetvalue(res, 0, 4)))
            pf_add(pf, PF_ERROR, "source", "privilege", t->display, "GRANT SELECT on it",
                   "the source role cannot read %s (copy and verification need SELECT)",
                   t->display),
                ok = false;
        if (!pub_exists && !pf->s_super && !is_true(PQgetvalue(res, 0, 5)))
            pf_add(pf, PF_ERROR, "source", "privilege", t->display,
                   "let the table's owner create the publication first (CREATE PUBLICATION ..."
                   " WITH (publish_via_partition_root = true)), or connect as the owner",
                   "the source role does not own %s, so it cannot add it to the publication",
                   t->display),
                ok = false;
        if (!is_true(PQgetvalue(res, 0, 6)))
            pf_add(pf, PF_WARNING, "source", "privilege", t->display,
                   "GRANT UPDATE (or DELETE, TRUNCATE) on it to the role cutover runs as",
                   "the source role cannot lock %s IN EXCLUSIVE MODE: cutover could not freeze"
                   " it",
                   t->display),
                ok = false;
        if (fallback && !is_true(PQgetvalue(res, 0, 7)))
            pf_add(pf, PF_WARNING, "source", "privilege", t->display,
                   "GRANT INSERT, UPDATE, DELETE on it to the role of source.conninfo",
                   "the source role cannot write %s: the fallback pipeline (which writes to the"
                   " source after a cutover) could not apply to it",
                   t->display),
                ok = false;
        good += ok;
        PQclear(res);
    }
    if (good && good == (int)pf->ntabs)
        pf_add(pf, PF_OK, "source", "tables", NULL, NULL,
               "%d table(s) exist, have a key or replica identity, and can be read and locked",
               good);
    return bytes;
}

void pf_check_source(Pf *pf)
{
    const char *pp[1] = {pf->cfg->source.publication};
    const char *sp[1] = {pf->cfg->source.slot};
    PGresult *rr = NULL;
    bool role_ok = pgconn_query(pf->s,
                                "SELECT rolsuper, rolreplication, rolsuper OR"
                                " pg_has_role('pg_signal_backend', 'MEMBER'), (SELECT"
                                " pg_has_role(datdba, 'USAGE') FROM pg_database WHERE datname ="
                                " current_database()) FROM pg_roles WHERE rolname = current_user",
                                0, NULL, &rr) == 0 &&
                   PQntuples(rr) == 1;
    bool super = role_ok && is_true(PQgetvalue(rr, 0, 0));
    bool replication = role_ok && is_true(PQgetvalue(rr, 0, 1));
    bool signal = role_ok && is_true(PQgetvalue(rr, 0, 2));
    bool dbowner = role_ok && is_true(PQgetvalue(rr, 0, 3));
    char *wal = pf_value(pf->s, "SELECT current_setting('wal_level')", 0, NULL);
    char *pub = pf_value(pf->s, "SELECT 1 FROM pg_publication WHERE pubname = $1", 1, pp);
    char *slot = pf_value(pf->s, "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", 1, sp);
    char *prep = pf_value(pf->s,
                          "SELECT count(*) FROM pg_prepared_xacts WHERE database ="
                          " current_database()",
                          0, NULL);
    char *why = reverse_refusal(pf->cfg);
    long jobs = pf->cfg->copy.jobs > 0 ? pf->cfg->copy.jobs : sysconf(_SC_NPROCESSORS_ONLN);
    int copies = pf->started ? 0 : (int)((size_t)jobs < pf->ntabs ? (size_t)jobs : pf->ntabs);
    double bytes;

    PQclear(rr);
    pf->s_super = super;
    if (wal && strcmp(wal, "logical") != 0)
        pf_add(pf, PF_ERROR, "source", "wal_level", NULL,
               "ALTER SYSTEM SET wal_level = logical; then restart the source server",
               "wal_level is %s: logical decoding needs logical", wal);
    else if (wal)
        pf_add(pf, PF_OK, "source", "wal_level", NULL, NULL, "wal_level is logical");
    check_capacity(pf, pf->s, "source", (slot ? 0 : 1) + copies + 1,
                   "the pipeline (its slot, one temporary slot per copy job, one for verify)",
                   PF_ERROR);
    if (role_ok && !super && !replication)
        pf_add(pf, PF_ERROR, "source", "role", PQuser(pf->s),
               "ALTER ROLE ... REPLICATION (as a superuser)",
               "role %s has neither REPLICATION nor superuser: it cannot create or stream from"
               " a replication slot",
               PQuser(pf->s));
    else if (role_ok)
        pf_add(pf, PF_OK, "source", "role", PQuser(pf->s), NULL,
               "role %s may use replication slots", PQuser(pf->s));
    if (role_ok && !signal)
        pf_add(pf, PF_WARNING, "source", "role", PQuser(pf->s),
               "GRANT pg_signal_backend TO the role (or run cutover as a superuser)",
               "role %s cannot end other sessions: cutover could not make the source read-only"
               " for sessions already connected",
               PQuser(pf->s));
    if (role_ok && !super && !dbowner)
        pf_add(pf, PF_WARNING, "source", "role", PQuser(pf->s),
               "run cutover as the database owner or a superuser",
               "role %s does not own database %s: cutover could not ALTER DATABASE ... SET"
               " default_transaction_read_only",
               PQuser(pf->s), PQdb(pf->s));
    if (prep && strcmp(prep, "0") != 0)
        pf_add(pf, PF_WARNING, "source", "prepared", NULL,
               "COMMIT PREPARED or ROLLBACK PREPARED them (pg_prepared_xacts)",
               "%s prepared transaction(s) on the source: they hold locks and WAL, and would"
               " make cutover's freeze wait",
               prep);
    bytes = check_source_tables(pf, pub != NULL, why == NULL);
    check_wal_headroom(pf, bytes);
    free(wal);
    free(pub);
    free(slot);
    free(prep);
    free(why);
}

static void check_target_tables(Pf *pf)
{
    int good = 0;

    for (size_t i = 0; i < pf->ntabs; i++) {
        PfTable *t = &pf->tabs[i];
        const char *p[2] = {t->tschema, t->tname};
        char *disp = xasprintf("%s.%s", t->tschema, t->tname);
        char *v = pf_value(pf->t,
                           "SELECT (has_table_privilege(c.oid, 'INSERT') AND"
                           " has_table_privilege(c.oid, 'UPDATE') AND has_table_privilege(c.oid,"
                           " 'DELETE') AND has_table_privilege(c.oid, 'TRUNCATE'))::text"
                           " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                           " WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
                           2, p);
        bool ok = v != NULL;

        if (!v)
            pf_add(pf, PF_ERROR, "target", "table", disp,
                   "create it on the target (or use schema: copy)",
                   "%s does not exist on the target", disp);
        else if (!is_true(v))
            pf_add(pf, PF_ERROR, "target", "privilege", disp,
                   "GRANT INSERT, UPDATE, DELETE, TRUNCATE on it to the target role",
                   "the target role cannot write %s", disp),
                ok = false;
        if (v && !pf->started) {
            char *q = pgconn_qualified(pf->t, t->tschema, t->tname);
            char *sql = xasprintf("SELECT 1 FROM %s LIMIT 1", q);
            PGresult *res = NULL;
            bool readable = pgconn_query(pf->t, sql, 0, NULL, &res) == 0;
            char *rows = readable && PQntuples(res) > 0 ? xstrdup("1") : NULL;

            PQclear(res);
            if (!readable)
                pf_add(pf, PF_ERROR, "target", "empty", disp,
                       "GRANT SELECT on it to the target role",
                       "cannot tell whether %s on the target is empty: %s", disp, tm_error()),
                    ok = false;
            if (rows)
                pf_add(pf, PF_ERROR, "target", "empty", disp,
                       "empty it (TRUNCATE) or point the pipeline at an empty database",
                       "%s on the target already has rows: the initial copy needs empty tables",
                       disp),
                    ok = false;
            free(rows);
            free(sql);
            free(q);
        }
        t->on_target = v != NULL;
        good += ok;
        free(v);
        free(disp);
    }
    if (good && good == (int)pf->ntabs)
        pf_add(pf, PF_OK, "target", "tables", NULL, NULL, "%d table(s) exist%s and are writable",
               good, pf->started ? "" : ", are empty");
}

static void check_fallback(Pf *pf)
{
    char *why = reverse_refusal(pf->cfg);
    char *wal = pf_value(pf->t, "SELECT current_setting('wal_level')", 0, NULL);
    char *repl = pf_value(pf->t,
                          "SELECT (rolsuper OR rolreplication)::text FROM pg_roles WHERE rolname ="
                          " current_user",
                          0, NULL);

    if (why) {
        pf_add(pf, PF_WARNING, "target", "fallback", NULL,
               "cut over with --no-fallback if that is acceptable", "no fallback pipeline: %s",
               why);
        free(why);
    } else {
        if (wal && strcmp(wal, "logical") != 0)
            pf_add(pf, PF_WARNING, "target", "fallback", "wal_level",
                   "ALTER SYSTEM SET wal_level = logical on the target; restart it",
                   "the target's wal_level is %s: after the cutover its changes could not be"
                   " streamed back to the source (no fallback, no rollback)",
                   wal);
        if (repl && !is_true(repl))
            pf_add(pf, PF_WARNING, "target", "fallback", PQuser(pf->t),
                   "ALTER ROLE ... REPLICATION for the target role",
                   "role %s on the target has no REPLICATION: the fallback pipeline could not"
                   " use a slot there",
                   PQuser(pf->t));
        check_capacity(pf, pf->t, "target", 2, "the fallback pipeline (its slot, one for verify)",
                       PF_WARNING);
        if ((!wal || strcmp(wal, "logical") == 0) && (!repl || is_true(repl)))
            pf_add(pf, PF_OK, "target", "fallback", NULL, NULL,
                   "a fallback pipeline %s%s can stream the target's changes back after cutover",
                   pf->cfg->pipeline, REVERSE_SUFFIX);
    }
    free(wal);
    free(repl);
}

void pf_check_target(Pf *pf)
{
    const char *p[1] = {pf->cfg->pipeline};
    char *has =
        pf_value(pf->t, "SELECT 1 WHERE to_regclass('tidemark.watermark') IS NOT NULL", 0, NULL);
    char *wm =
        has ? pf_value(pf->t, "SELECT lsn::text FROM tidemark.watermark WHERE pipeline = $1", 1, p)
            : NULL;
    char *role = pf_value(pf->t,
                          "SELECT (rolsuper OR has_parameter_privilege('session_replication_role',"
                          " 'SET'))::text || ',' || (CASE WHEN to_regnamespace('tidemark') IS NULL"
                          " THEN has_database_privilege(current_database(), 'CREATE') ELSE"
                          " has_schema_privilege('tidemark', 'CREATE') END)::text FROM pg_roles"
                          " WHERE rolname = current_user",
                          0, NULL);

    pf->started = wm != NULL;
    if (wm)
        pf_add(pf, PF_INFO, "target", "state", NULL, NULL,
               "pipeline %s has started before (watermark %s): it resumes; the target tables"
               " are not required to be empty",
               pf->cfg->pipeline, wm);
    if (role && strncmp(role, "true", 4) != 0)
        pf_add(pf, PF_ERROR, "target", "role", PQuser(pf->t),
               "GRANT SET ON PARAMETER session_replication_role TO the role (PostgreSQL 15), or"
               " use a superuser",
               "role %s cannot set session_replication_role: the apply session needs replica"
               " so target triggers and foreign keys do not fire twice",
               PQuser(pf->t));
    if (role && strstr(role, ",false"))
        pf_add(pf, PF_ERROR, "target", "role", PQuser(pf->t),
               "GRANT CREATE ON DATABASE (or create schema tidemark for the role)",
               "role %s cannot create schema tidemark (or tables in it) for the pipeline's state",
               PQuser(pf->t));
    if (role && strcmp(role, "true,true") == 0)
        pf_add(pf, PF_OK, "target", "role", PQuser(pf->t), NULL,
               "role %s can set session_replication_role and keep state in schema tidemark",
               PQuser(pf->t));
    check_target_tables(pf);
    check_fallback(pf);
    free(has);
    free(wm);
    free(role);
}

/* Names in list on the source that the target lacks: one finding each. */
static void missing_on_target(Pf *pf, const char *sql, const char *check, PreflightSeverity sev,
                              const char *fix, const char *what)
{
    char *schemas = schemas_literal(pf);
    const char *p[1] = {schemas};
    PGresult *sres = NULL;
    int missing = 0, n = 0;

    if (pgconn_query(pf->s, sql, 1, p, &sres) == 0) {
        n = PQntuples(sres);
        for (int i = 0; i < n; i++) {
            const char *name = PQgetvalue(sres, i, 0);
            const char *q[2] = {schemas, name};
            char *tsql = xasprintf("SELECT 1 FROM (%s) x WHERE x.name = $2", sql);
            char *there = pf_value(pf->t, tsql, 2, q);

            if (!there) {
                pf_add(pf, sev, "target", check, name, fix,
                       "%s %s exists on the source but not"
                       " on the target",
                       what, name);
                missing++;
            }
            free(there);
            free(tsql);
        }
    }
    PQclear(sres);
    if (!missing)
        pf_add(pf, PF_OK, "target", check, NULL, NULL, "%d %s(s) of the source exist on the target",
               n, what);
    free(schemas);
}

void pf_check_both(Pf *pf)
{
    const char *se = PQparameterStatus(pf->s, "server_encoding");
    const char *te = PQparameterStatus(pf->t, "server_encoding");

    if (se && te && strcmp(se, te) != 0)
        pf_add(pf, strcmp(te, "UTF8") == 0 ? PF_WARNING : PF_ERROR, "target", "encoding", NULL,
               "create the target database with the source's encoding (or UTF8)",
               "the source database is %s, the target %s: %s", se, te,
               strcmp(te, "UTF8") == 0
                   ? "values are converted to UTF8 (verify compares them after conversion)"
                   : "characters the target encoding cannot hold would stop the pipeline");
    else if (se && strcmp(se, "SQL_ASCII") == 0)
        pf_add(pf, PF_WARNING, "source", "encoding", NULL,
               "profile the data (tidemark profile) for invalid bytes",
               "the source database is SQL_ASCII: its bytes are not checked and may not be valid"
               " in any encoding");
    else if (se && te)
        pf_add(pf, PF_OK, "target", "encoding", NULL, NULL, "both databases are %s", se);
    missing_on_target(pf,
                      "SELECT extname AS name FROM pg_extension WHERE extname <> 'plpgsql'"
                      " AND $1::text IS NOT NULL",
                      "extension", PF_WARNING,
                      "CREATE EXTENSION on the target (types and functions the tables use)",
                      "extension");
    missing_on_target(pf,
                      "SELECT format('%I.%I', schemaname, sequencename) AS name FROM pg_sequences"
                      " WHERE schemaname = ANY ($1::text[])",
                      "sequence", PF_ERROR,
                      "create it on the target: cutover sets every sequence from the source",
                      "sequence");
    missing_on_target(pf,
                      "SELECT format('%I.%I', schemaname, matviewname) AS name FROM pg_matviews"
                      " WHERE schemaname = ANY ($1::text[])",
                      "matview", PF_WARNING,
                      "create it on the target: cutover refreshes the materialized views there",
                      "materialized view");
}
