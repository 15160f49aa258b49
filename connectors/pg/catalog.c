/*
 * Catalog queries against the source (and the target's table existence).
 * Tables are looked up by name with parameters, never by splicing, and the
 * publication is always an explicit table list with publish_via_partition_root
 * so a partitioned source table arrives under its own name.
 */
#include "connectors/pg/catalog.h"
#include "connectors/pg/pgconn.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/log.h"
#include "core/relcache.h"
#include "core/xmalloc.h"

#include <stdlib.h>
#include <string.h>

static const char *const TABLE_SQL =
    "SELECT c.oid, n.nspname, c.relname, c.relreplident, c.relkind,"
    " EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),"
    " EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident),"
    /* A partition's own replica identity decides whether the source accepts
     * UPDATE/DELETE on it: the root's setting does not reach its leaves. */
    " CASE WHEN c.relkind = 'p' THEN (SELECT string_agg(format('%I.%I', ln.nspname, l.relname),"
    " ', ' ORDER BY ln.nspname, l.relname) FROM pg_partition_tree(c.oid) pt"
    " JOIN pg_class l ON l.oid = pt.relid JOIN pg_namespace ln ON ln.oid = l.relnamespace"
    " WHERE pt.isleaf AND NOT (l.relreplident = 'f' OR (l.relreplident IN ('d', 'i') AND"
    " EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = l.oid AND"
    " CASE l.relreplident WHEN 'd' THEN i.indisprimary ELSE i.indisreplident END)))) END"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace ";

/*
 * One row per replicated column: name, type, replica-identity key flag, then
 * what a sink rendering by type needs (core/table.h): typmod, NOT NULL, the
 * message key (primary key, or the first unique index by name without one,
 * as Debezium picks it), the type after resolving domains (with the typmod
 * of the chain), arrays' element type, enum labels.
 */
static const char *const COLUMNS_SQL =
    "SELECT a.attname, a.atttypid, EXISTS (SELECT 1 FROM pg_index i"
    " WHERE i.indrelid = a.attrelid AND a.attnum = ANY (i.indkey::int2[])"
    " AND (i.indisreplident OR (i.indisprimary AND c.relreplident = 'd'))),"
    " a.atttypmod, a.attnotnull,"
    " coalesce(a.attnum = ANY (coalesce((SELECT i.indkey::int2[] FROM pg_index i"
    "   WHERE i.indrelid = a.attrelid AND i.indisprimary),"
    "  (SELECT i.indkey::int2[] FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
    "   WHERE i.indrelid = a.attrelid AND i.indisunique AND i.indexprs IS NULL"
    "   ORDER BY ic.relname LIMIT 1))), false),"
    " b.boid, b.btypmod, b.btyptype, b.bname, b.belem, b.etyptype, b.ename,"
    " (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e"
    "   WHERE e.enumtypid = CASE WHEN b.btyptype = 'e' THEN b.boid ELSE b.belem END)"
    " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
    " CROSS JOIN LATERAL ("
    "  WITH RECURSIVE d(oid, typmod, depth) AS ("
    "   SELECT a.atttypid, a.atttypmod, 0"
    "   UNION ALL"
    "   SELECT t.typbasetype, CASE WHEN d.typmod = -1 THEN t.typtypmod ELSE d.typmod END,"
    "    d.depth + 1 FROM d JOIN pg_type t ON t.oid = d.oid WHERE t.typtype = 'd')"
    "  SELECT d.oid AS boid, d.typmod AS btypmod, t.typtype AS btyptype, t.typname AS bname,"
    "   CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE 0 END AS belem,"
    "   e.typtype AS etyptype, e.typname AS ename"
    "  FROM d JOIN pg_type t ON t.oid = d.oid"
    "  LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'"
    "  ORDER BY d.depth DESC LIMIT 1) b"
    " WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped"
    " AND a.attgenerated = '' ORDER BY a.attnum";

static char *opt_text(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : xstrdup(PQgetvalue(res, row, col));
}

static int load_columns(PGconn *src, TableDef *t)
{
    char oidbuf[16];
    const char *params[1] = {oidbuf};
    PGresult *res;
    int rc;

    snprintf(oidbuf, sizeof(oidbuf), "%u", t->oid);
    rc = pgconn_query(src, COLUMNS_SQL, 1, params, &res);
    if (rc < 0)
        return tm_fail_ctx(rc, "reading columns of %s", t->display);
    t->ncols = (size_t)PQntuples(res);
    t->cols = xcalloc(t->ncols ? t->ncols : 1, sizeof(TableColumn));
    for (size_t i = 0; i < t->ncols; i++) {
        TableColumn *c = &t->cols[i];
        int r = (int)i;

        c->name = xstrdup(PQgetvalue(res, r, 0));
        c->type_oid = (uint32_t)strtoul(PQgetvalue(res, r, 1), NULL, 10);
        c->is_key = PQgetvalue(res, r, 2)[0] == 't';
        c->typmod = (int32_t)strtol(PQgetvalue(res, r, 3), NULL, 10);
        c->not_null = PQgetvalue(res, r, 4)[0] == 't';
        c->is_pk = PQgetvalue(res, r, 5)[0] == 't';
        c->base_oid = (uint32_t)strtoul(PQgetvalue(res, r, 6), NULL, 10);
        c->base_typmod = (int32_t)strtol(PQgetvalue(res, r, 7), NULL, 10);
        c->base_typtype = PQgetvalue(res, r, 8)[0];
        c->base_typname = opt_text(res, r, 9);
        c->elem_oid = (uint32_t)strtoul(PQgetvalue(res, r, 10), NULL, 10);
        c->elem_typtype = PQgetisnull(res, r, 11) ? 0 : PQgetvalue(res, r, 11)[0];
        c->elem_typname = opt_text(res, r, 12);
        c->enum_labels = opt_text(res, r, 13);
    }
    PQclear(res);
    return 0;
}

static void fill_table(TableDef *t, PGresult *res, int row)
{
    t->oid = (uint32_t)strtoul(PQgetvalue(res, row, 0), NULL, 10);
    t->schema = xstrdup(PQgetvalue(res, row, 1));
    t->name = xstrdup(PQgetvalue(res, row, 2));
    t->display = relcache_display_name(t->schema, t->name);
    t->replident = PQgetvalue(res, row, 3)[0];
    t->relkind = PQgetvalue(res, row, 4)[0];
    t->has_pk = PQgetvalue(res, row, 5)[0] == 't';
    t->has_ident_index = PQgetvalue(res, row, 6)[0] == 't';
    if (!PQgetisnull(res, row, 7))
        t->leaves_without_identity = xstrdup(PQgetvalue(res, row, 7));
}

static int resolve_listed(PGconn *src, const Config *cfg, TableSet *out)
{
    char *sql = xasprintf("%s WHERE n.nspname = $1 AND c.relname = $2", TABLE_SQL);
    int rc = 0;

    out->t = xcalloc(cfg->source.ntables, sizeof(TableDef));
    for (size_t i = 0; i < cfg->source.ntables; i++) {
        const TableName *tn = &cfg->source.tables[i];
        const char *params[2] = {tn->schema, tn->name};
        PGresult *res;
        char *disp = relcache_display_name(tn->schema, tn->name);

        rc = pgconn_query(src, sql, 2, params, &res);
        if (rc < 0) {
            free(disp);
            goto out;
        }
        if (PQntuples(res) != 1) {
            PQclear(res);
            rc = tm_fail(-ENOENT, "table %s (source.tables) does not exist on the source", disp);
            free(disp);
            goto out;
        }
        char kind = PQgetvalue(res, 0, 4)[0];
        if (kind != 'r' && kind != 'p') {
            PQclear(res);
            rc = tm_fail(-EINVAL, "%s (source.tables) is not a table (relkind '%c')", disp, kind);
            free(disp);
            goto out;
        }
        free(disp);
        fill_table(&out->t[out->n++], res, 0);
        PQclear(res);
    }
out:
    free(sql);
    return rc;
}

static int resolve_public(PGconn *src, TableSet *out)
{
    char *sql = xasprintf("%s WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
                          " AND NOT c.relispartition ORDER BY c.relname",
                          TABLE_SQL);
    PGresult *res;
    int rc = pgconn_query(src, sql, 0, NULL, &res);

    free(sql);
    if (rc < 0)
        return rc;
    out->t = xcalloc((size_t)PQntuples(res) + 1, sizeof(TableDef));
    for (int i = 0; i < PQntuples(res); i++)
        fill_table(&out->t[out->n++], res, i);
    PQclear(res);
    return 0;
}

int catalog_resolve(PGconn *src, const Config *cfg, TableSet *out)
{
    int rc;

    memset(out, 0, sizeof(*out));
    rc = cfg->source.ntables ? resolve_listed(src, cfg, out) : resolve_public(src, out);
    if (rc < 0)
        goto fail;
    if (out->n == 0) {
        rc = tm_fail(-ENOENT, "no tables to replicate: schema public on the source has no tables"
                              " and source.tables is empty");
        goto fail;
    }
    for (size_t i = 0; i < out->n; i++) {
        rc = load_columns(src, &out->t[i]);
        if (rc < 0)
            goto fail;
    }
    return 0;
fail:
    tableset_release(out);
    return rc;
}

int catalog_check_identity(const TableSet *tabs)
{
    Buf bad = BUF_INIT;
    int nbad = 0;
    int rc = 0;

    for (size_t i = 0; i < tabs->n; i++) {
        const TableDef *t = &tabs->t[i];
        bool ok = t->replident == 'f' || (t->replident == 'i' && t->has_ident_index) ||
                  (t->replident == 'd' && t->has_pk);

        if (!ok) {
            buf_printf(&bad, "%s%s", nbad++ ? ", " : "", t->display);
        } else if (t->leaves_without_identity) {
            buf_printf(&bad, "%s%s (partitions %s)", nbad++ ? ", " : "", t->display,
                       t->leaves_without_identity);
        }
    }
    if (nbad) {
        rc = tm_fail(-EINVAL,
                     "%s %s no primary key and no replica identity; once published, the source"
                     " would reject UPDATE and DELETE on %s. Fix on the source with ALTER TABLE"
                     " ... REPLICA IDENTITY FULL, or REPLICA IDENTITY USING INDEX on a unique"
                     " index over NOT NULL columns (on each partition named: a partitioned"
                     " table's setting does not reach its partitions)",
                     buf_cstr(&bad), nbad == 1 ? "has" : "have", nbad == 1 ? "it" : "them");
    }
    buf_release(&bad);
    return rc;
}

static void append_table_list(PGconn *src, Buf *sql, const TableSet *tabs)
{
    for (size_t i = 0; i < tabs->n; i++) {
        char *q = pgconn_qualified(src, tabs->t[i].schema, tabs->t[i].name);

        buf_printf(sql, "%s%s", i ? ", " : "", q);
        free(q);
    }
}

static bool publication_matches(PGresult *res, const TableSet *tabs)
{
    if ((size_t)PQntuples(res) != tabs->n)
        return false;
    for (size_t i = 0; i < tabs->n; i++) {
        bool found = false;

        for (int r = 0; r < PQntuples(res) && !found; r++)
            found = strcmp(PQgetvalue(res, r, 0), tabs->t[i].schema) == 0 &&
                    strcmp(PQgetvalue(res, r, 1), tabs->t[i].name) == 0;
        if (!found)
            return false;
    }
    return true;
}

int catalog_sync_publication(PGconn *src, const char *pubname, const TableSet *tabs, bool *created)
{
    const char *params[1] = {pubname};
    PGresult *res;
    Buf sql = BUF_INIT;
    char *qpub = pgconn_ident(src, pubname);
    int rc;

    if (created)
        *created = false;
    /* A publication made by hand may lack what exactness needs: every kind
     * of change, the partitioned root's name (else changes arrive under the
     * partitions' names, which the pipeline does not know), and no row
     * filter or column list (rows or columns left out silently). */
    rc = pgconn_query(src,
                      "SELECT p.pubinsert AND p.pubupdate AND p.pubdelete AND p.pubtruncate"
                      " AND p.pubviaroot, EXISTS (SELECT 1 FROM pg_publication_rel r"
                      " WHERE r.prpubid = p.oid AND (r.prqual IS NOT NULL OR"
                      " r.prattrs IS NOT NULL)) FROM pg_publication p WHERE p.pubname = $1",
                      1, params, &res);
    if (rc < 0)
        goto out;
    bool exists = PQntuples(res) == 1;
    bool options_ok = exists && PQgetvalue(res, 0, 0)[0] == 't';
    bool filtered = exists && PQgetvalue(res, 0, 1)[0] == 't';
    PQclear(res);

    if (!exists) {
        buf_printf(&sql, "CREATE PUBLICATION %s FOR TABLE ", qpub);
        append_table_list(src, &sql, tabs);
        buf_puts(&sql, " WITH (publish_via_partition_root = true)");
        rc = pgconn_exec(src, buf_cstr(&sql));
        if (rc < 0)
            rc = tm_fail_ctx(rc, "creating publication %s on the source", pubname);
        else if (created)
            *created = true;
        goto out;
    }
    if (!options_ok) {
        buf_printf(&sql,
                   "ALTER PUBLICATION %s SET (publish = 'insert, update, delete, truncate',"
                   " publish_via_partition_root = true)",
                   qpub);
        rc = pgconn_exec(src, buf_cstr(&sql));
        if (rc < 0) {
            rc = tm_fail_ctx(rc, "setting the options of publication %s on the source", pubname);
            goto out;
        }
        log_warn("publication %s did not publish every change under the partitioned tables'"
                 " own names: set publish = 'insert, update, delete, truncate',"
                 " publish_via_partition_root = true",
                 pubname);
        buf_clear(&sql);
    }
    rc = pgconn_query(src,
                      "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1",
                      1, params, &res);
    if (rc < 0)
        goto out;
    bool same = !filtered && publication_matches(res, tabs);
    PQclear(res);
    if (same)
        goto out;
    buf_printf(&sql, "ALTER PUBLICATION %s SET TABLE ", qpub);
    append_table_list(src, &sql, tabs);
    rc = pgconn_exec(src, buf_cstr(&sql));
    if (rc < 0)
        rc = tm_fail_ctx(rc, "updating publication %s on the source", pubname);
out:
    free(qpub);
    buf_release(&sql);
    return rc;
}

int catalog_drop_publication(PGconn *src, const char *pubname)
{
    char *qpub = pgconn_ident(src, pubname);
    char *sql = xasprintf("DROP PUBLICATION IF EXISTS %s", qpub);
    int rc = pgconn_exec(src, sql);

    free(qpub);
    free(sql);
    return rc < 0 ? tm_fail_ctx(rc, "dropping publication %s on the source", pubname) : 0;
}

int catalog_matviews(PGconn *src, const TableSet *tabs, CatalogMatview **out, size_t *n)
{
    Buf oids = BUF_INIT;
    PGresult *res;
    const char *params[1];
    int rc;

    *out = NULL;
    *n = 0;
    buf_putc(&oids, '{');
    for (size_t i = 0; i < tabs->n; i++)
        buf_printf(&oids, "%s%u", i ? "," : "", tabs->t[i].oid);
    buf_putc(&oids, '}');
    params[0] = buf_cstr(&oids);
    /* A view's or materialized view's query is its rewrite rule, which
     * depends on the relations it reads. */
    rc = pgconn_query(src,
                      "WITH RECURSIVE feeds(rel, src) AS ("
                      " SELECT w.ev_class, d.refobjid FROM pg_depend d JOIN pg_rewrite w ON"
                      " w.oid = d.objid WHERE d.classid = 'pg_rewrite'::regclass AND"
                      " d.refclassid = 'pg_class'::regclass AND d.refobjid = ANY ($1::oid[])"
                      " AND w.ev_class <> d.refobjid"
                      " UNION SELECT w.ev_class, f.src FROM feeds f JOIN pg_depend d ON"
                      " d.refclassid = 'pg_class'::regclass AND d.refobjid = f.rel AND"
                      " d.classid = 'pg_rewrite'::regclass JOIN pg_rewrite w ON w.oid = d.objid"
                      " WHERE w.ev_class <> f.rel)"
                      " SELECT mn.nspname || '.' || m.relname, string_agg(DISTINCT sn.nspname ||"
                      " '.' || s.relname, ', '), m.relispopulated FROM feeds f JOIN pg_class m ON"
                      " m.oid = f.rel AND m.relkind = 'm' JOIN pg_namespace mn ON mn.oid ="
                      " m.relnamespace JOIN pg_class s ON s.oid = f.src JOIN pg_namespace sn ON"
                      " sn.oid = s.relnamespace GROUP BY 1, 3 ORDER BY 1",
                      1, params, &res);
    buf_release(&oids);
    if (rc < 0)
        return tm_fail_ctx(rc, "source: finding the materialized views the tables feed");
    *n = (size_t)PQntuples(res);
    *out = xcalloc(*n + 1, sizeof(CatalogMatview));
    for (size_t i = 0; i < *n; i++) {
        (*out)[i].display = xstrdup(PQgetvalue(res, (int)i, 0));
        (*out)[i].fed_by = xstrdup(PQgetvalue(res, (int)i, 1));
        (*out)[i].populated = PQgetvalue(res, (int)i, 2)[0] == 't';
    }
    PQclear(res);
    return 0;
}

void catalog_matviews_free(CatalogMatview *m, size_t n)
{
    for (size_t i = 0; m && i < n; i++) {
        free(m[i].display);
        free(m[i].fed_by);
    }
    free(m);
}

int catalog_schema_matviews(PGconn *conn, const TableSet *tabs, TableName **out, size_t *n)
{
    Buf schemas = BUF_INIT;
    const char *params[1];
    PGresult *res;
    int rc;

    *out = NULL;
    *n = 0;
    /* A text array literal of the schema names, each element quoted. */
    buf_putc(&schemas, '{');
    for (size_t i = 0; i < tabs->n; i++)
        buf_put_array_elem(&schemas, tabs->t[i].schema);
    buf_putc(&schemas, '}');
    params[0] = buf_cstr(&schemas);
    rc = pgconn_query(conn,
                      "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n"
                      " ON n.oid = c.relnamespace WHERE c.relkind = 'm'"
                      " AND n.nspname = ANY ($1::text[]) ORDER BY c.oid",
                      1, params, &res);
    buf_release(&schemas);
    if (rc < 0)
        return tm_fail_ctx(rc, "listing materialized views");
    *out = xcalloc((size_t)PQntuples(res) + 1, sizeof(TableName));
    for (int i = 0; i < PQntuples(res); i++) {
        (*out)[i].schema = xstrdup(PQgetvalue(res, i, 0));
        (*out)[i].name = xstrdup(PQgetvalue(res, i, 1));
    }
    *n = (size_t)PQntuples(res);
    PQclear(res);
    return 0;
}
