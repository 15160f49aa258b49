/*
 * Extensions the dumped schemas need (see schemaext.h). An object depends
 * on an extension when a chain of ordinary, automatic or internal
 * dependencies in pg_depend leads from it to a member of the extension; the
 * chain starts at the objects of the schemas that are not themselves part
 * of another object (an extension's own members, array types, TOAST
 * tables), so an extension merely installed in the schema does not count.
 */
#include "connectors/pg/schemaext.h"
#include "connectors/pg/pgconn.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <stdlib.h>
#include <string.h>

static const char *const NEEDED_SQL =
    "WITH RECURSIVE ns AS (SELECT oid FROM pg_namespace WHERE nspname = ANY ($1::text[])),"
    " roots(classid, objid) AS ("
    "  SELECT 'pg_class'::regclass::oid, c.oid FROM pg_class c WHERE c.relnamespace IN"
    "   (SELECT oid FROM ns)"
    "  UNION ALL SELECT 'pg_type'::regclass::oid, t.oid FROM pg_type t WHERE t.typnamespace IN"
    "   (SELECT oid FROM ns)"
    "  UNION ALL SELECT 'pg_proc'::regclass::oid, p.oid FROM pg_proc p WHERE p.pronamespace IN"
    "   (SELECT oid FROM ns)"
    "  UNION ALL SELECT 'pg_attrdef'::regclass::oid, a.oid FROM pg_attrdef a JOIN pg_class c"
    "   ON c.oid = a.adrelid WHERE c.relnamespace IN (SELECT oid FROM ns)"
    "  UNION ALL SELECT 'pg_constraint'::regclass::oid, k.oid FROM pg_constraint k WHERE"
    "   k.connamespace IN (SELECT oid FROM ns)"
    "  UNION ALL SELECT 'pg_trigger'::regclass::oid, g.oid FROM pg_trigger g JOIN pg_class c"
    "   ON c.oid = g.tgrelid WHERE c.relnamespace IN (SELECT oid FROM ns)"
    "  UNION ALL SELECT 'pg_rewrite'::regclass::oid, w.oid FROM pg_rewrite w JOIN pg_class c"
    "   ON c.oid = w.ev_class WHERE c.relnamespace IN (SELECT oid FROM ns)),"
    " own AS (SELECT r.* FROM roots r WHERE NOT EXISTS (SELECT 1 FROM pg_depend x WHERE"
    "  x.classid = r.classid AND x.objid = r.objid AND x.deptype IN ('e', 'i'))),"
    " refs(classid, objid, depth) AS ("
    "  SELECT d.refclassid, d.refobjid, 1 FROM pg_depend d JOIN own o ON d.classid = o.classid"
    "   AND d.objid = o.objid WHERE d.deptype IN ('n', 'a', 'i')"
    "  UNION SELECT d.refclassid, d.refobjid, r.depth + 1 FROM refs r JOIN pg_depend d ON"
    "   d.classid = r.classid AND d.objid = r.objid WHERE r.depth < 4 AND"
    "   d.deptype IN ('n', 'a', 'i'))"
    " SELECT e.extname, n.nspname, e.extversion FROM pg_extension e JOIN pg_namespace n ON"
    " n.oid = e.extnamespace WHERE e.oid IN (SELECT m.refobjid FROM refs JOIN pg_depend m ON"
    " m.classid = refs.classid AND m.objid = refs.objid AND m.deptype = 'e' AND"
    " m.refclassid = 'pg_extension'::regclass) ORDER BY 1";

char *schemaext_schema_array(const TableSet *tabs)
{
    Buf b = BUF_INIT;
    size_t n = 0;

    buf_putc(&b, '{');
    for (size_t i = 0; i < tabs->n; i++) {
        bool seen = false;

        for (size_t j = 0; j < i; j++)
            seen |= strcmp(tabs->t[j].schema, tabs->t[i].schema) == 0;
        if (seen)
            continue;
        buf_puts(&b, n++ ? ",\"" : "\"");
        for (const char *c = tabs->t[i].schema; *c; c++) {
            if (*c == '"' || *c == '\\')
                buf_putc(&b, '\\');
            buf_putc(&b, *c);
        }
        buf_putc(&b, '"');
    }
    buf_putc(&b, '}');
    return b.data;
}

/* 't': installed on the target, 'a': available to install, 'n': neither. */
static int target_state(PGconn *dst, const char *ext, char *state)
{
    const char *params[1] = {ext};
    PGresult *res;
    int rc = pgconn_query(dst,
                          "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_extension WHERE extname = $1)"
                          " THEN 't' WHEN EXISTS (SELECT 1 FROM pg_available_extensions WHERE"
                          " name = $1) THEN 'a' ELSE 'n' END",
                          1, params, &res);

    if (rc < 0)
        return tm_fail_ctx(rc, "target: looking up extension %s", ext);
    *state = PQgetvalue(res, 0, 0)[0];
    PQclear(res);
    return 0;
}

static int create_one(PGconn *dst, const char *ext, const char *schema)
{
    char *qe = pgconn_ident(dst, ext);
    char *qs = pgconn_ident(dst, schema);
    char *sql = xasprintf("CREATE SCHEMA IF NOT EXISTS %s; CREATE EXTENSION IF NOT EXISTS %s"
                          " WITH SCHEMA %s",
                          qs, qe, qs);
    int rc = pgconn_exec(dst, sql);

    if (rc < 0)
        rc = tm_fail_ctx(rc, "schema copy: creating extension %s (schema %s) on the target", ext,
                         schema);
    else
        log_info("schema copy: created extension %s in schema %s on the target", ext, schema);
    free(sql);
    free(qe);
    free(qs);
    return rc;
}

int schemaext_ensure(PGconn *src, PGconn *dst, const TableSet *tabs)
{
    char *schemas = schemaext_schema_array(tabs);
    const char *params[1] = {schemas};
    PGresult *res = NULL;
    Buf missing = BUF_INIT;
    int nmissing = 0;
    char *state = NULL;
    int rc = pgconn_query(src, NEEDED_SQL, 1, params, &res);

    if (rc < 0) {
        rc = tm_fail_ctx(rc, "source: finding the extensions the tables depend on");
        goto out;
    }
    state = xcalloc((size_t)PQntuples(res) + 1, 1);
    /* Every one is checked before any is created: a refused start changes nothing. */
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        rc = target_state(dst, PQgetvalue(res, i, 0), &state[i]);
        if (rc == 0 && state[i] == 'n')
            buf_printf(&missing, "%s%s (version %s on the source)", nmissing++ ? ", " : "",
                       PQgetvalue(res, i, 0), PQgetvalue(res, i, 2));
    }
    if (rc == 0 && nmissing)
        rc = tm_fail(-ENOENT,
                     "schema copy: the tables depend on extension%s %s, which the target server"
                     " cannot install (not in its pg_available_extensions). Install %s on the"
                     " target server (or create %s in the target database), then start again;"
                     " nothing was created on the source or the target",
                     nmissing == 1 ? "" : "s", buf_cstr(&missing),
                     nmissing == 1 ? "its package" : "their packages",
                     nmissing == 1 ? "it" : "them");
    for (int i = 0; rc == 0 && i < PQntuples(res); i++)
        if (state[i] == 'a')
            rc = create_one(dst, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
out:
    PQclear(res);
    free(state);
    free(schemas);
    buf_release(&missing);
    return rc;
}
