/*
 * `tidemark dead-letter list|replay`: the rows a mapping could not transform
 * (on_error: dead_letter) sit in tidemark.dead_letter on the target with their
 * full source row as JSON. `list` shows them; `replay` runs each source row
 * through the table's CURRENT mapping (recompiled from the config against the
 * source catalog, so a fixed mapping applies) and writes it to the target in
 * one transaction together with the deletion of its dead letter, so a row is
 * either replayed and gone from the table, or still there with its new error.
 *
 * Writes are idempotent: an INSERT, copied row or UPDATE becomes an upsert on
 * the target table's primary key, a DELETE deletes by the mapped key (no row
 * left is success). Identifiers are quoted by libpq, values are parameters.
 */
#include "config/config.h"
#include "connectors/pg/catalog.h"
#include "connectors/pg/idmap.h"
#include "connectors/pg/pgconn.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/log.h"
#include "core/relcache.h"
#include "core/sqlname.h"
#include "core/transform/mapping.h"
#include "core/xmalloc.h"
#include "daemon/commands.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fputs("Usage: tidemark dead-letter list --config FILE [--table T] [--json]\n"
          "       tidemark dead-letter replay --config FILE [--table T] [--dry-run]\n"
          "\n"
          "Rows a mapping could not transform (on_error: dead_letter) are kept in\n"
          "tidemark.dead_letter on the target with their full source row.\n"
          "\n"
          "  list     shows this pipeline's dead letters: id, when, table, operation, LSN,\n"
          "           error and the source row\n"
          "  replay   runs each source row through the table's current mapping (fix the\n"
          "           mapping in the config first) and applies it on the target in one\n"
          "           transaction with the deletion of its dead letter: INSERT, copy and\n"
          "           UPDATE as an upsert on the target's primary key, DELETE by the mapped\n"
          "           key. A row that still fails stays, with its new error.\n"
          "\n"
          "Options:\n"
          "  -c, --config FILE   pipeline configuration (YAML)\n"
          "  -t, --table T       only the dead letters of source table T ([schema.]name)\n"
          "  -j, --json          list: one JSON array instead of text\n"
          "  -n, --dry-run       replay: apply each row and roll it back; change nothing\n"
          "  -h, --help          show this help\n"
          "\n"
          "Exit status: list 0; replay 0 when every row was replayed (or there were\n"
          "none), 1 when some row still fails or on errors.\n",
          out);
}

/* The table_name a dead letter carries for source table spec, malloc'd. */
static char *table_display(const char *spec)
{
    char *schema, *name, *d;

    if (sqlname_parse(spec, &schema, &name) < 0)
        return NULL;
    d = relcache_display_name(schema, name);
    free(schema);
    free(name);
    return d;
}

static int open_target(const Config *cfg, bool replica, PGconn **out)
{
    int rc = pgconn_open(&cfg->target.conn, PGCONN_NORMAL, "target", out);

    if (rc < 0)
        return rc;
    if (PQsetClientEncoding(*out, "UTF8") != 0)
        rc = tm_fail(-EINVAL, "target: cannot set client_encoding UTF8: %s",
                     pgconn_errmsg(*out, NULL));
    /* As the apply session: the target's triggers and FK checks must not fire
     * for what the source already validated (and a child row's parent may be
     * a dead letter replayed after it). */
    if (rc == 0 && replica)
        rc = pgconn_exec(*out, "SET session_replication_role = replica; SET DateStyle = ISO;"
                               " SET IntervalStyle = postgres");
    if (rc < 0) {
        PQfinish(*out);
        *out = NULL;
    }
    return rc;
}

/* This pipeline's dead letters (of one table), oldest first. */
static int fetch(PGconn *dst, const Config *cfg, const char *table, PGresult **res)
{
    const char *params[2] = {cfg->pipeline, table};
    PGresult *r;
    int rc =
        pgconn_query(dst, "SELECT to_regclass('tidemark.dead_letter') IS NOT NULL", 0, NULL, &r);

    *res = NULL;
    if (rc < 0)
        return rc;
    bool exists = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!exists)
        return 0;
    return pgconn_query(dst,
                        "SELECT id::text, at::text, table_name, op, lsn::text, xid::text, error,"
                        " row::text FROM tidemark.dead_letter"
                        " WHERE pipeline = $1 AND ($2::text IS NULL OR table_name = $2)"
                        " ORDER BY lsn NULLS FIRST, at, id",
                        2, params, res);
}

enum { F_ID, F_AT, F_TABLE, F_OP, F_LSN, F_XID, F_ERROR, F_ROW };

static const char *field(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static int do_list(const Config *cfg, PGconn *dst, const char *table, bool as_json)
{
    PGresult *res;
    int rc = fetch(dst, cfg, table, &res);
    int n = res ? PQntuples(res) : 0;

    if (rc < 0)
        return rc;
    if (as_json) {
        json_t *arr = json_array();

        for (int i = 0; i < n; i++) {
            json_t *row = json_loads(PQgetvalue(res, i, F_ROW), 0, NULL);
            const char *lsn = field(res, i, F_LSN), *xid = field(res, i, F_XID);

            json_array_append_new(
                arr, json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:o}", "id",
                               PQgetvalue(res, i, F_ID), "at", PQgetvalue(res, i, F_AT), "table",
                               PQgetvalue(res, i, F_TABLE), "op", PQgetvalue(res, i, F_OP), "lsn",
                               lsn ? json_string(lsn) : json_null(), "xid",
                               xid ? json_integer(strtoll(xid, NULL, 10)) : json_null(), "error",
                               PQgetvalue(res, i, F_ERROR), "row", row ? row : json_null()));
        }
        char *s = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

        puts(s);
        free(s);
        json_decref(arr);
    } else {
        printf("dead letters of pipeline %s%s%s: %d\n", cfg->pipeline, table ? " table " : "",
               table ? table : "", n);
        for (int i = 0; i < n; i++) {
            const char *lsn = field(res, i, F_LSN);

            printf("%s  %s  %s  %s  lsn %s\n  error: %s\n  row: %s\n", PQgetvalue(res, i, F_ID),
                   PQgetvalue(res, i, F_AT), PQgetvalue(res, i, F_TABLE), PQgetvalue(res, i, F_OP),
                   lsn ? lsn : "-", PQgetvalue(res, i, F_ERROR), PQgetvalue(res, i, F_ROW));
        }
    }
    PQclear(res);
    return 0;
}

/* ---- replay ---------------------------------------------------------- */

/* One source table's compiled mapping and target statement shape. */
typedef struct ReplayTable {
    const TableDef *src;
    MappingPlan *plan; /* NULL: compile failed (err says why) */
    char *err;
    char *qualified; /* target table, quoted */
    bool *pk;        /* per output column: part of the conflict/delete key */
    IdMapLookup *idmap;
} ReplayTable;

static void replaytable_free(ReplayTable *rt)
{
    mapping_free(rt->plan);
    idmap_lookup_free(rt->idmap);
    free(rt->err);
    free(rt->qualified);
    free(rt->pk);
}

/* The target table's primary key among the mapped columns, else the mapped key columns. */
static int target_key(PGconn *dst, ReplayTable *rt)
{
    const MappingPlan *plan = rt->plan;
    size_t n = mapping_target_ncols(plan);
    const char *const *names = mapping_target_columns(plan);
    const RelInfo *rel = mapping_target_rel(plan);
    const char *params[1] = {rt->qualified};
    PGresult *res;
    size_t found = 0;
    int rc = pgconn_query(dst,
                          "SELECT a.attname FROM pg_index i JOIN pg_attribute a"
                          " ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)"
                          " WHERE i.indrelid = to_regclass($1) AND i.indisprimary",
                          1, params, &res);

    if (rc < 0)
        return rc;
    rt->pk = xcalloc(n ? n : 1, sizeof(bool));
    int npk = PQntuples(res);
    for (int r = 0; r < npk; r++)
        for (size_t c = 0; c < n; c++)
            if (strcmp(names[c], PQgetvalue(res, r, 0)) == 0) {
                rt->pk[c] = true;
                found++;
            }
    PQclear(res);
    if (npk > 0 && found == (size_t)npk)
        return 0;
    memset(rt->pk, 0, (n ? n : 1) * sizeof(bool));
    found = 0;
    for (size_t c = 0; c < n && c < rel->ncols; c++)
        if (rel->cols[c].is_key) {
            rt->pk[c] = true;
            found++;
        }
    if (found == 0)
        return tm_fail(-EINVAL,
                       "target table %s has no primary key among the mapped columns: replay"
                       " needs one to write rows idempotently",
                       rt->qualified);
    return 0;
}

static ReplayTable *replay_table(PGconn *dst, const Config *cfg, const TableSet *tabs,
                                 ReplayTable *cache, const char *table_name)
{
    for (size_t i = 0; i < tabs->n; i++) {
        ReplayTable *rt = &cache[i];

        if (strcmp(tabs->t[i].display, table_name) != 0)
            continue;
        if (rt->src)
            return rt;
        rt->src = &tabs->t[i];
        int rc = mapping_compile_for_table(cfg->tree, rt->src, &rt->plan);
        if (rc == 0 && !rt->plan) {
            /* No mapping any more: the row goes to the target as it is. */
            RelInfo rel = {0};

            rel.oid = rt->src->oid;
            rel.schema = rt->src->schema;
            rel.name = rt->src->name;
            rel.replident = rt->src->replident;
            rel.ncols = (uint16_t)rt->src->ncols;
            rel.cols = xcalloc(rt->src->ncols ? rt->src->ncols : 1, sizeof(RelColumn));
            for (size_t c = 0; c < rt->src->ncols; c++) {
                rel.cols[c].name = rt->src->cols[c].name;
                rel.cols[c].type_oid = rt->src->cols[c].type_oid;
                rel.cols[c].typmod = -1;
                rel.cols[c].is_key = rt->src->cols[c].is_key;
            }
            rc = mapping_compile(NULL, &rel, &rt->plan);
            free(rel.cols);
        }
        if (rc == 0 && mapping_uses_id_lookup(rt->plan)) {
            rc = idmap_lookup_new(&cfg->target.conn, &rt->idmap);
            if (rc == 0)
                mapping_set_id_lookup(rt->plan, idmap_lookup_fn, rt->idmap);
        }
        if (rc == 0)
            rt->qualified = pgconn_qualified(dst, mapping_target_schema(rt->plan),
                                             mapping_target_table(rt->plan));
        if (rc == 0)
            rc = target_key(dst, rt);
        if (rc < 0) {
            rt->err = xstrdup(tm_error());
            mapping_free(rt->plan);
            rt->plan = NULL;
        }
        return rt;
    }
    return NULL;
}

/* The dead letter's source row as a tuple of the source table's columns. */
static int row_tuple(const TableDef *t, const char *row_text, Arena *a, Tuple *out)
{
    json_error_t jerr;
    json_t *row = json_loads(row_text, 0, &jerr);

    if (!json_is_object(row)) {
        json_decref(row);
        return tm_fail(-EINVAL, "the dead letter's row is not a JSON object");
    }
    out->ncols = (uint16_t)t->ncols;
    out->cols = arena_calloc(a, t->ncols ? t->ncols : 1, sizeof(ColValue));
    for (size_t i = 0; i < t->ncols; i++) {
        json_t *v = json_object_get(row, t->cols[i].name);

        if (!v) {
            out->cols[i].state = COL_UNCHANGED; /* not sent by the source: leave it */
        } else if (json_is_null(v)) {
            out->cols[i].state = COL_NULL;
        } else if (json_is_string(v)) {
            out->cols[i].state = COL_TEXT;
            out->cols[i].len = (uint32_t)json_string_length(v);
            out->cols[i].data = arena_strndup(a, json_string_value(v), json_string_length(v));
        } else {
            json_decref(row);
            return tm_fail(-EINVAL, "the dead letter's row has a non-text value for column %s",
                           t->cols[i].name);
        }
    }
    json_decref(row);
    return 0;
}

/* Appends a column value as a text parameter (NULL for SQL NULL). */
static void add_param(const ColValue *v, const char **vals, int *n)
{
    vals[(*n)++] = v->state == COL_TEXT ? v->data : NULL;
}

/* The statement that writes the mapped row: upsert, or delete by key. */
static int write_row(PGconn *dst, ReplayTable *rt, const char *op, const Tuple *out, Arena *a)
{
    const char *const *names = mapping_target_columns(rt->plan);
    size_t n = mapping_target_ncols(rt->plan);
    const char **vals = arena_calloc(a, n ? n : 1, sizeof(char *));
    Buf sql = BUF_INIT, set = BUF_INIT, key = BUF_INIT;
    int np = 0, rc;

    for (size_t c = 0; c < n; c++) {
        /* text values from the arena are NUL-terminated copies */
        if (out->cols[c].state == COL_TEXT)
            out->cols[c].data = arena_strndup(a, out->cols[c].data, out->cols[c].len);
    }
    if (strcmp(op, "DELETE") == 0) {
        buf_printf(&sql, "DELETE FROM %s WHERE ", rt->qualified);
        for (size_t c = 0; c < n; c++) {
            if (!rt->pk[c])
                continue;
            if (out->cols[c].state != COL_TEXT) {
                buf_release(&sql);
                return tm_fail(-EINVAL, "the mapped key column %s is NULL or unknown", names[c]);
            }
            char *id = pgconn_ident(dst, names[c]);

            add_param(&out->cols[c], vals, &np);
            buf_printf(&sql, "%s%s = $%d", np > 1 ? " AND " : "", id, np);
            free(id);
        }
    } else {
        Buf cols = BUF_INIT, ph = BUF_INIT;

        for (size_t c = 0; c < n; c++) {
            if (out->cols[c].state == COL_UNCHANGED)
                continue;
            char *id = pgconn_ident(dst, names[c]);

            add_param(&out->cols[c], vals, &np);
            buf_printf(&cols, "%s%s", np > 1 ? ", " : "", id);
            buf_printf(&ph, "%s$%d", np > 1 ? ", " : "", np);
            if (rt->pk[c])
                buf_printf(&key, "%s%s", key.len ? ", " : "", id);
            else
                buf_printf(&set, "%s%s = EXCLUDED.%s", set.len ? ", " : "", id, id);
            free(id);
        }
        buf_printf(&sql, "INSERT INTO %s (%s) VALUES (%s) ON CONFLICT (%s) DO ", rt->qualified,
                   buf_cstr(&cols), buf_cstr(&ph), buf_cstr(&key));
        if (set.len)
            buf_printf(&sql, "UPDATE SET %s", buf_cstr(&set));
        else
            buf_puts(&sql, "NOTHING");
        buf_release(&cols);
        buf_release(&ph);
    }
    rc = pgconn_query(dst, buf_cstr(&sql), np, vals, NULL);
    buf_release(&sql);
    buf_release(&set);
    buf_release(&key);
    return rc;
}

/* Maps one dead letter and writes it; the caller's transaction is open. */
static int replay_one(PGconn *dst, ReplayTable *rt, const char *op, const char *row_text, Arena *a)
{
    Tuple in, out;
    bool filtered = false;
    int rc;

    if (!rt->plan)
        return tm_fail(-EINVAL, "%s", rt->err);
    rc = row_tuple(rt->src, row_text, a, &in);
    if (rc < 0)
        return rc;
    if (strcmp(op, "DELETE") == 0)
        return (rc = mapping_apply_key(rt->plan, &in, a, &out)) < 0
                   ? rc
                   : write_row(dst, rt, "DELETE", &out, a);
    rc = mapping_apply(rt->plan, &in, a, &out, &filtered);
    if (rc < 0)
        return rc;
    if (filtered) {
        /* The row does not belong in the target (any more): make sure no
         * version of it is there. */
        rc = mapping_apply_key(rt->plan, &in, a, &out);
        return rc < 0 ? rc : write_row(dst, rt, "DELETE", &out, a);
    }
    return write_row(dst, rt, op, &out, a);
}

static int do_replay(const Config *cfg, PGconn *dst, const char *table, bool dry_run)
{
    PGconn *src = NULL;
    TableSet tabs = {0};
    ReplayTable *cache = NULL;
    PGresult *res = NULL;
    Arena *a = arena_new(64 * 1024);
    int rc, n, ok = 0, failed = 0;

    rc = pgconn_open(&cfg->source.conn, PGCONN_NORMAL, "source", &src);
    if (rc == 0)
        rc = catalog_resolve(src, cfg, &tabs);
    if (src)
        PQfinish(src);
    if (rc == 0)
        rc = fetch(dst, cfg, table, &res);
    if (rc < 0)
        goto out;
    cache = xcalloc(tabs.n ? tabs.n : 1, sizeof(ReplayTable));
    n = res ? PQntuples(res) : 0;
    for (int i = 0; i < n; i++) {
        const char *id = PQgetvalue(res, i, F_ID), *tname = PQgetvalue(res, i, F_TABLE);
        const char *op = PQgetvalue(res, i, F_OP);
        ReplayTable *rt = replay_table(dst, cfg, &tabs, cache, tname);
        const char *p1[1] = {id};
        int r;

        arena_reset(a);
        tm_error_clear();
        r = pgconn_exec(dst, "BEGIN");
        if (r < 0)
            break; /* the connection is gone */
        r = rt ? replay_one(dst, rt, op, PQgetvalue(res, i, F_ROW), a)
               : tm_fail(-ENOENT, "%s is not a table of this pipeline", tname);
        if (r == 0 && !dry_run)
            r = pgconn_query(dst, "DELETE FROM tidemark.dead_letter WHERE id = $1::uuid", 1, p1,
                             NULL);
        if (r == 0 && !dry_run)
            r = pgconn_exec(dst, "COMMIT");
        if (r == 0) {
            if (dry_run)
                pgconn_exec(dst, "ROLLBACK");
            printf("%s %s  %s  %s\n", dry_run ? "would replay" : "replayed", id, tname, op);
            ok++;
            continue;
        }
        char *err = xstrdup(tm_error());

        PQclear(PQexec(dst, "ROLLBACK"));
        printf("FAILED %s  %s  %s: %s\n", id, tname, op, err);
        failed++;
        if (!dry_run) {
            const char *p2[2] = {id, err};

            r = pgconn_query(dst, "UPDATE tidemark.dead_letter SET error = $2 WHERE id = $1::uuid",
                             2, p2, NULL);
        }
        free(err);
        if (r < 0 && !dry_run) {
            rc = r;
            break;
        }
    }
    if (rc == 0)
        printf("%d dead letter(s) %s, %d still failing\n", ok, dry_run ? "replayable" : "replayed",
               failed);
    if (rc == 0 && failed)
        rc = 1;
out:
    for (size_t i = 0; cache && i < tabs.n; i++)
        replaytable_free(&cache[i]);
    free(cache);
    PQclear(res);
    tableset_release(&tabs);
    arena_free(a);
    return rc;
}

int cmd_dead_letter(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"table", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},         {"dry-run", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *path = NULL, *table_arg = NULL, *sub;
    bool as_json = false, dry_run = false, list;
    char *table = NULL;
    Config *cfg = NULL;
    PGconn *dst = NULL;
    int c, rc;

    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc < 2 || (strcmp(argv[1], "list") != 0 && strcmp(argv[1], "replay") != 0)) {
        fprintf(stderr, "tidemark dead-letter: expected list or replay\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    sub = argv[1];
    list = strcmp(sub, "list") == 0;
    argc--;
    argv++;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:t:jnh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 't':
            table_arg = optarg;
            break;
        case 'j':
            as_json = true;
            break;
        case 'n':
            dry_run = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (!path || optind < argc || (list && dry_run) || (!list && as_json)) {
        fprintf(stderr, "tidemark dead-letter %s: %s\n", sub,
                !path           ? "--config FILE is required"
                : optind < argc ? "unexpected argument"
                : list          ? "--dry-run is for replay"
                                : "--json is for list");
        return EXIT_USAGE;
    }
    if (table_arg && !(table = table_display(table_arg)))
        return cmd_die("--table");
    if (config_load(path, &cfg) < 0) {
        free(table);
        return cmd_die(NULL);
    }
    log_init(LOG_FMT_TEXT, LOG_LVL_WARNING);
    if (strcmp(cfg->target.type, "postgres") != 0) {
        fprintf(stderr, "tidemark: dead letters live in a postgres target\n");
        config_free(cfg);
        free(table);
        return 1;
    }
    rc = open_target(cfg, !list, &dst);
    if (rc == 0)
        rc = list ? do_list(cfg, dst, table, as_json) : do_replay(cfg, dst, table, dry_run);
    if (dst)
        PQfinish(dst);
    config_free(cfg);
    free(table);
    if (rc < 0)
        return cmd_die(NULL);
    return rc;
}
