/*
 * What the profiler needs from the catalogs beyond core/table.h: per column
 * the declared type, its base type (through a domain) and so the statistics
 * that apply, NOT NULL, one-column uniqueness and foreign-key membership; per
 * table the primary key, whether rows are unique by constraint (then
 * duplicate rows are impossible and are not searched for), and the size; the
 * declared foreign keys; and on the target, per column, NOT NULL, the length
 * limit and the allowed values of an enum or a simple CHECK ... IN list.
 */
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/xmalloc.h"
#include "migration/profile_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const COLUMNS_SQL =
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod), bt.typname, bt.typcategory,"
    " a.attnotnull,"
    " EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique"
    "  AND i.indnatts = 1 AND i.indkey[0] = a.attnum AND i.indpred IS NULL"
    "  AND i.indexprs IS NULL),"
    " EXISTS (SELECT 1 FROM pg_constraint f WHERE f.conrelid = a.attrelid AND f.contype = 'f'"
    "  AND a.attnum = ANY (f.conkey))"
    " FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid"
    " JOIN pg_type bt ON bt.oid = CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE ty.oid END"
    " WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''"
    " ORDER BY a.attnum";

static const char *const TABLE_SQL =
    "SELECT (SELECT json_agg(a.attname ORDER BY array_position(i.indkey::int2[], a.attnum))"
    "  FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
    "  AND a.attnum = ANY (i.indkey::int2[]) WHERE i.indrelid = c.oid AND i.indisprimary)::text,"
    " EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique"
    "  AND i.indpred IS NULL AND i.indexprs IS NULL AND NOT EXISTS (SELECT 1 FROM pg_attribute a"
    "  WHERE a.attrelid = c.oid AND a.attnum = ANY (i.indkey::int2[]) AND NOT a.attnotnull)),"
    " CASE WHEN c.relkind = 'p' THEN (SELECT coalesce(sum(pg_table_size(r.relid)), 0)"
    "  FROM pg_partition_tree(c.oid) r) ELSE pg_table_size(c.oid) END,"
    " CASE WHEN c.relkind = 'p' THEN (SELECT coalesce(sum(pg_total_relation_size(r.relid)), 0)"
    "  FROM pg_partition_tree(c.oid) r) ELSE pg_total_relation_size(c.oid) END"
    " FROM pg_class c WHERE c.oid = $1::oid";

/* Declared foreign keys of the profiled tables (partition clones left out). */
static const char *const FK_SQL =
    "SELECT coalesce(json_agg(json_build_object('name', f.conname,"
    " 'schema', cn.nspname, 'table', c.relname,"
    " 'columns', (SELECT json_agg(a.attname ORDER BY k.i) FROM unnest(f.conkey) WITH ORDINALITY"
    "  k(n, i) JOIN pg_attribute a ON a.attrelid = f.conrelid AND a.attnum = k.n),"
    " 'parent_schema', pn.nspname, 'parent_table', p.relname,"
    " 'parent_columns', (SELECT json_agg(a.attname ORDER BY k.i) FROM unnest(f.confkey) WITH"
    "  ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = f.confrelid AND a.attnum = k.n),"
    " 'validated', f.convalidated) ORDER BY cn.nspname, c.relname, f.conname), '[]')::text"
    " FROM pg_constraint f JOIN pg_class c ON c.oid = f.conrelid"
    " JOIN pg_namespace cn ON cn.oid = c.relnamespace JOIN pg_class p ON p.oid = f.confrelid"
    " JOIN pg_namespace pn ON pn.oid = p.relnamespace"
    " WHERE f.contype = 'f' AND f.conparentid = 0 AND f.conrelid = ANY ($1::oid[])";

static const char *const TARGET_SQL =
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
    " CASE WHEN bt.typname IN ('varchar', 'bpchar') THEN"
    "  greatest(CASE WHEN ty.typtype = 'd' THEN ty.typtypmod ELSE a.atttypmod END - 4, 0)"
    "  ELSE 0 END,"
    " (SELECT json_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e"
    "  WHERE e.enumtypid = bt.oid)::text,"
    " (SELECT json_agg(pg_get_constraintdef(k.oid) ORDER BY k.conname) FROM pg_constraint k"
    "  WHERE k.conrelid = a.attrelid AND k.contype = 'c' AND k.conkey = ARRAY[a.attnum])::text"
    " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type ty ON ty.oid = a.atttypid"
    " JOIN pg_type bt ON bt.oid = CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE ty.oid END"
    " WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped";

static ProfCat category(const char *base, char typcat)
{
    static const char *const numbers[] = {"int2",   "int4",   "int8", "numeric",
                                          "float4", "float8", NULL};
    static const char *const temporal[] = {"date", "timestamp", "timestamptz", NULL};

    for (size_t i = 0; numbers[i]; i++)
        if (strcmp(base, numbers[i]) == 0)
            return PROF_CAT_NUMBER;
    for (size_t i = 0; temporal[i]; i++)
        if (strcmp(base, temporal[i]) == 0)
            return PROF_CAT_TEMPORAL;
    return typcat == 'S' ? PROF_CAT_TEXT : PROF_CAT_OTHER;
}

static int load_columns(PGconn *src, ProfTable *t)
{
    char oid[16];
    const char *params[1] = {oid};
    PGresult *res;
    int rc;

    snprintf(oid, sizeof(oid), "%u", t->def->oid);
    rc = pgconn_query(src, COLUMNS_SQL, 1, params, &res);
    if (rc < 0)
        return tm_fail_ctx(rc, "reading the columns of %s", t->def->display);
    if ((size_t)PQntuples(res) != t->def->ncols) {
        PQclear(res);
        return tm_fail(-EAGAIN, "the columns of %s changed while reading them", t->def->display);
    }
    t->cols = xcalloc(t->def->ncols ? t->def->ncols : 1, sizeof(ProfCol));
    for (size_t i = 0; i < t->def->ncols; i++) {
        ProfCol *c = &t->cols[i];
        int r = (int)i;

        c->name = t->def->cols[i].name;
        c->type = xstrdup(PQgetvalue(res, r, 1));
        c->base = xstrdup(PQgetvalue(res, r, 2));
        c->cat = category(c->base, PQgetvalue(res, r, 3)[0]);
        c->not_null = PQgetvalue(res, r, 4)[0] == 't';
        c->unique = PQgetvalue(res, r, 5)[0] == 't';
        c->in_fk = PQgetvalue(res, r, 6)[0] == 't';
    }
    PQclear(res);
    return 0;
}

static int load_table(PGconn *src, ProfTable *t)
{
    char oid[16];
    const char *params[1] = {oid};
    PGresult *res;
    int rc;

    snprintf(oid, sizeof(oid), "%u", t->def->oid);
    rc = pgconn_query(src, TABLE_SQL, 1, params, &res);
    if (rc < 0)
        return tm_fail_ctx(rc, "reading the keys and size of %s", t->def->display);
    if (PQntuples(res) != 1) {
        PQclear(res);
        return tm_fail(-ENOENT, "table %s disappeared", t->def->display);
    }
    t->pk = PQgetisnull(res, 0, 0) ? json_null() : json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    if (!t->pk)
        t->pk = json_null();
    t->rows_unique = PQgetvalue(res, 0, 1)[0] == 't';
    t->size = atoll(PQgetvalue(res, 0, 2));
    t->total_size = atoll(PQgetvalue(res, 0, 3));
    PQclear(res);
    return load_columns(src, t);
}

int profile_catalog_source(PGconn *src, ProfTable *tabs, size_t n, json_t **fks)
{
    Buf oids = BUF_INIT;
    const char *params[1];
    int rc = 0;

    *fks = NULL;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = load_table(src, &tabs[i]);
    if (rc < 0)
        return rc;
    buf_putc(&oids, '{');
    for (size_t i = 0; i < n; i++)
        buf_printf(&oids, "%s%u", i ? "," : "", tabs[i].def->oid);
    buf_putc(&oids, '}');
    params[0] = buf_cstr(&oids);
    {
        PGresult *res;

        rc = pgconn_query(src, FK_SQL, 1, params, &res);
        if (rc == 0) {
            char *clean =
                profile_json_sanitize(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));

            *fks = json_loads(clean, 0, NULL);
            free(clean);
            PQclear(res);
            if (!*fks)
                rc = tm_fail(-EPROTO, "cannot parse the foreign keys");
        } else {
            rc = tm_fail_ctx(rc, "reading the foreign keys");
        }
    }
    buf_release(&oids);
    return rc;
}

/* The allowed values: enum labels, or the first simple CHECK ... IN list. */
static json_t *allowed_values(PGresult *res, int r)
{
    json_t *v = NULL;

    if (!PQgetisnull(res, r, 4))
        return json_loads(PQgetvalue(res, r, 4), 0, NULL);
    if (!PQgetisnull(res, r, 5)) {
        json_t *defs = json_loads(PQgetvalue(res, r, 5), 0, NULL);
        size_t i;
        json_t *d;

        json_array_foreach(defs, i, d)
        {
            if (!v && json_is_string(d))
                v = profile_parse_check_in(json_string_value(d));
        }
        json_decref(defs);
    }
    return v;
}

int profile_catalog_target(PGconn *dst, ProfTable *tabs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ProfTable *t = &tabs[i];
        const char *params[2] = {t->def->schema, t->def->name};
        PGresult *res;
        int rc = pgconn_query(dst, TARGET_SQL, 2, params, &res);

        if (rc < 0)
            return tm_fail_ctx(rc, "target: reading the columns of %s", t->def->display);
        t->t_found = PQntuples(res) > 0;
        for (int r = 0; r < PQntuples(res); r++) {
            for (size_t c = 0; c < t->def->ncols; c++) {
                ProfCol *col = &t->cols[c];

                if (strcmp(col->name, PQgetvalue(res, r, 0)) != 0)
                    continue;
                col->t_found = true;
                col->t_type = xstrdup(PQgetvalue(res, r, 1));
                col->t_not_null = PQgetvalue(res, r, 2)[0] == 't';
                col->t_maxlen = atoi(PQgetvalue(res, r, 3));
                col->t_allowed = allowed_values(res, r);
            }
        }
        PQclear(res);
    }
    return 0;
}
