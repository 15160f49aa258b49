/*
 * Foreign keys of `schema: copy` (see schemafk.h). The definitions come from
 * the source catalog with an empty search_path, so every name in them is
 * schema-qualified; table and constraint names are quoted by libpq.
 */
#include "connectors/pg/schemafk.h"
#include "connectors/pg/pgconn.h"
#include "connectors/pg/schemaext.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <stdlib.h>
#include <string.h>

bool schemafk_is_list_entry(const char *line)
{
    return strstr(line, " FK CONSTRAINT ") != NULL;
}

void schemafk_release(SchemaFks *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->fk[i].schema);
        free(l->fk[i].table);
        free(l->fk[i].name);
        free(l->fk[i].def);
    }
    free(l->fk);
    l->fk = NULL;
    l->n = 0;
}

int schemafk_load(PGconn *src, const TableSet *tabs, SchemaFks *out)
{
    char *schemas = schemaext_schema_array(tabs);
    const char *params[1] = {schemas};
    PGresult *res = NULL;
    int rc = pgconn_exec(src, "BEGIN; SET LOCAL search_path = ''");

    memset(out, 0, sizeof(*out));
    /* Partitions' copies of a parent's key (conparentid) come with the parent's. */
    if (rc == 0)
        rc = pgconn_query(src,
                          "SELECT n.nspname, r.relname, c.conname, pg_get_constraintdef(c.oid),"
                          " r.relkind = 'p', c.convalidated FROM pg_constraint c JOIN pg_class r"
                          " ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace"
                          " WHERE c.contype = 'f' AND c.conparentid = 0 AND"
                          " n.nspname = ANY ($1::text[]) ORDER BY 1, 2, 3",
                          1, params, &res);
    PQclear(PQexec(src, rc == 0 ? "COMMIT" : "ROLLBACK"));
    free(schemas);
    if (rc < 0)
        return tm_fail_ctx(rc, "source: reading the foreign keys");
    out->n = (size_t)PQntuples(res);
    out->fk = xcalloc(out->n + 1, sizeof(SchemaFk));
    for (size_t i = 0; i < out->n; i++) {
        SchemaFk *f = &out->fk[i];

        f->schema = xstrdup(PQgetvalue(res, (int)i, 0));
        f->table = xstrdup(PQgetvalue(res, (int)i, 1));
        f->name = xstrdup(PQgetvalue(res, (int)i, 2));
        f->def = xstrdup(PQgetvalue(res, (int)i, 3));
        f->partitioned = PQgetvalue(res, (int)i, 4)[0] == 't';
        f->validated = PQgetvalue(res, (int)i, 5)[0] == 't';
    }
    PQclear(res);
    return 0;
}

/* 'v' validated, 'n' NOT VALID, '\0' missing on the target. */
static int target_state(PGconn *dst, const SchemaFk *fk, char *state)
{
    const char *params[3] = {fk->schema, fk->table, fk->name};
    PGresult *res;
    int rc = pgconn_query(dst,
                          "SELECT CASE WHEN c.convalidated THEN 'v' ELSE 'n' END FROM pg_constraint"
                          " c JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid ="
                          " r.relnamespace WHERE n.nspname = $1 AND r.relname = $2 AND"
                          " c.conname = $3 AND c.contype = 'f'",
                          3, params, &res);

    if (rc < 0)
        return tm_fail_ctx(rc, "target: looking up foreign key %s", fk->name);
    *state = PQntuples(res) ? PQgetvalue(res, 0, 0)[0] : '\0';
    PQclear(res);
    return 0;
}

static char *add_sql(PGconn *dst, const SchemaFk *fk, bool not_valid)
{
    char *qt = pgconn_qualified(dst, fk->schema, fk->table);
    char *qn = pgconn_ident(dst, fk->name);
    /* ONLY on a plain table: an inheritance child has keys of its own. */
    char *sql = xasprintf("ALTER TABLE %s%s ADD CONSTRAINT %s %s%s", fk->partitioned ? "" : "ONLY ",
                          qt, qn, fk->def, not_valid && fk->validated ? " NOT VALID" : "");

    free(qt);
    free(qn);
    return sql;
}

int schemafk_create_not_valid(PGconn *dst, const SchemaFks *l)
{
    int rc = pgconn_exec(dst, "BEGIN");
    int made = 0;

    for (size_t i = 0; rc == 0 && i < l->n; i++) {
        const SchemaFk *fk = &l->fk[i];
        char state;

        if (fk->partitioned)
            continue;
        rc = target_state(dst, fk, &state);
        if (rc < 0 || state)
            continue;
        char *sql = add_sql(dst, fk, true);

        rc = pgconn_exec(dst, sql);
        free(sql);
        if (rc < 0)
            rc = tm_fail_ctx(rc, "schema copy: creating foreign key %s on %s.%s (NOT VALID)",
                             fk->name, fk->schema, fk->table);
        else
            made++;
    }
    if (rc == 0)
        rc = pgconn_exec(dst, "COMMIT");
    else
        PQclear(PQexec(dst, "ROLLBACK"));
    if (rc == 0 && made)
        log_info("schema copy: %d foreign key(s) created NOT VALID; they are validated once every"
                 " table has caught up with the source",
                 made);
    return rc;
}

int schemafk_next_step(PGconn *dst, const SchemaFk *fk, char **sql)
{
    char state;
    int rc;

    *sql = NULL;
    if (!fk->validated && !fk->partitioned)
        return 0; /* NOT VALID on the source: created so, nothing to check */
    rc = target_state(dst, fk, &state);
    if (rc < 0 || state == 'v')
        return rc;
    if (!state) {
        *sql = add_sql(dst, fk, false);
        return 0;
    }
    char *qt = pgconn_qualified(dst, fk->schema, fk->table);
    char *qn = pgconn_ident(dst, fk->name);

    *sql = xasprintf("ALTER TABLE %s%s VALIDATE CONSTRAINT %s", fk->partitioned ? "" : "ONLY ", qt,
                     qn);
    free(qt);
    free(qn);
    return 0;
}
