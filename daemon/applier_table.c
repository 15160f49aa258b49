/*
 * The applier's event tables: what the events of one table (source.schema,
 * source.table) carry and how to read them. Types come from the target's
 * catalog (connectors/pg/catalog.c, the query the Kafka sink runs on the
 * source), and each column's encoding is chosen from them exactly as the
 * producer chose it (debezium_col_new with the producer's converter
 * settings), so a value decodes back to the text it was. Without a mapping
 * the event table is the target table; with one (docs/TRANSFORMS.md, keyed
 * by the event table's name) the events' own fields are the source row, typed
 * by the target column of the same name where there is one. The catalog is
 * read on the target worker: the message that needs it waits.
 */
#include "connectors/kafka/dbzdecode.h"
#include "connectors/pg/catalog.h"
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "daemon/applier_int.h"

#include <string.h>

ATable *applier_table_find(Applier *a, const char *schema, const char *name)
{
    for (size_t i = 0; i < a->ntables; i++)
        if (strcmp(a->tables[i]->schema, schema) == 0 && strcmp(a->tables[i]->name, name) == 0)
            return a->tables[i];
    return NULL;
}

void applier_table_free(ATable *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->ncols; i++) {
        free(t->cols[i].name);
        debezium_col_free(t->cols[i].dbz);
    }
    free(t->cols);
    if (t->mapped.sink_state && t->mapped.sink_state_free)
        t->mapped.sink_state_free(t->mapped.sink_state);
    free(t->mapped.display);
    mapping_free(t->plan);
    free(t->schema);
    free(t->name);
    free(t->display);
    free(t);
}

void applier_tables_reset(Applier *a)
{
    relcache_reset_sink_state(a->rels);
    for (size_t i = 0; i < a->ntables; i++) {
        RelEntry *m = &a->tables[i]->mapped;

        if (m->sink_state && m->sink_state_free)
            m->sink_state_free(m->sink_state);
        m->sink_state = NULL;
    }
}

/* ---- resolving a table on the target worker -------------------------------- */

typedef struct TableJob {
    OffloadJob base;
    Applier *a;
    char *schema, *name;
    json_t *fields; /* mapped tables: the event's field names */
    json_t *keys;   /* the message key's field names (NULL: no key) */
    bool in_tables; /* listed in source.tables (or no list) */
    ATable *t;      /* the result */
} TableJob;

/* The catalog of schema.name on conn into *def; *found false when there is no such table. */
static int load_def(PGconn *conn, const char *schema, const char *name, TableDef *def, bool *found)
{
    TableName tn = {(char *)schema, (char *)name};
    Config one = {0};
    TableSet set = {0};
    char *q = pgconn_qualified(conn, schema, name);
    const char *params[1] = {q};
    PGresult *res;
    int rc = pgconn_query(conn, "SELECT to_regclass($1) IS NOT NULL", 1, params, &res);

    free(q);
    *found = false;
    if (rc < 0)
        return rc;
    *found = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (!*found)
        return 0;
    one.source.ntables = 1;
    one.source.tables = &tn;
    rc = catalog_resolve(conn, &one, &set);
    if (rc < 0)
        return rc;
    *def = set.t[0];
    free(set.t);
    return 0;
}

static const TableColumn *def_col(const TableDef *d, const char *name)
{
    for (size_t i = 0; d && i < d->ncols; i++)
        if (strcmp(d->cols[i].name, name) == 0)
            return &d->cols[i];
    return NULL;
}

static DbzCol *col_dbz(const TableColumn *tc, const DbzOptions *o)
{
    DbzTypeInfo ti = {
        .oid = tc->base_oid ? tc->base_oid : tc->type_oid,
        .typmod = tc->base_oid ? tc->base_typmod : tc->typmod,
        .typtype = tc->base_typtype,
        .typname = tc->base_typname,
        .elem_oid = tc->elem_oid,
        .elem_typtype = tc->elem_typtype,
        .elem_typname = tc->elem_typname,
        .enum_labels = tc->enum_labels,
    };

    return debezium_col_new(&ti, o);
}

static bool json_has(const json_t *arr, const char *s)
{
    size_t i;
    json_t *v;

    json_array_foreach(arr, i, v) if (strcmp(json_string_value(v), s) == 0) return true;
    return false;
}

/* An unmapped table: the target table itself, every column its events carry. */
static int build_plain(TableJob *j, const TableDef *def)
{
    ATable *t = j->t;
    bool any_key = false;

    t->cols = xcalloc(def->ncols + 1, sizeof(ACol));
    for (size_t i = 0; i < def->ncols; i++) {
        DbzCol *c = col_dbz(&def->cols[i], &j->a->dbz);

        if (dbzdecode_skipped(c)) {
            debezium_col_free(c);
            log_write(LOG_LVL_WARNING, t->display, LSN_INVALID,
                      "column %s (type oid %u) has no Debezium converter: the producer leaves it"
                      " out, so the applier never writes it (include.unknown.datatypes: true on"
                      " both sides sends its text)",
                      def->cols[i].name, def->cols[i].type_oid);
            continue;
        }
        t->cols[t->ncols++] =
            (ACol){xstrdup(def->cols[i].name), c,
                   def->cols[i].base_oid ? def->cols[i].base_typmod : def->cols[i].typmod};
        any_key |= def->cols[i].is_pk;
    }
    t->full = !any_key;
    return 0;
}

/* A mapped table: the event's fields, typed by a same-named column of either table. */
static void build_mapped_cols(TableJob *j, const TableDef *edef, const TableDef *tdef)
{
    ATable *t = j->t;
    size_t i;
    json_t *f;

    t->cols = xcalloc(json_array_size(j->fields) + 1, sizeof(ACol));
    json_array_foreach(j->fields, i, f)
    {
        const char *name = json_string_value(f);
        const TableColumn *tc = def_col(edef, name);
        ACol *c = &t->cols[t->ncols++];

        if (!tc)
            tc = def_col(tdef, name);
        c->name = xstrdup(name);
        c->typmod = tc ? (tc->base_oid ? tc->base_typmod : tc->typmod) : -1;
        c->dbz = tc ? col_dbz(tc, &j->a->dbz) : NULL;
        if (c->dbz && dbzdecode_skipped(c->dbz)) {
            debezium_col_free(c->dbz);
            c->dbz = NULL;
        }
    }
    t->full = !j->keys || json_array_size(j->keys) == 0;
}

static RelInfo shape_of(const ATable *t, const json_t *keys, uint32_t oid)
{
    RelInfo r = {.oid = oid,
                 .schema = t->schema,
                 .name = t->name,
                 .replident = t->full ? 'f' : 'd',
                 .ncols = (uint16_t)t->ncols};

    r.cols = xcalloc(t->ncols + 1, sizeof(RelColumn));
    for (size_t i = 0; i < t->ncols; i++) {
        r.cols[i].name = t->cols[i].name;
        r.cols[i].type_oid = t->cols[i].dbz ? 0 : 25;
        r.cols[i].typmod = t->cols[i].typmod;
        r.cols[i].is_key = !t->full && keys && json_has(keys, t->cols[i].name);
    }
    return r;
}

static void table_run(OffloadJob *base)
{
    TableJob *j = (TableJob *)base;
    Applier *a = j->a;
    TableDef edef = {0}, tdef = {0};
    bool efound = false, tfound = false;
    const json_t *mcfg = mapping_find(a->cfg->tree, j->schema, j->name);
    int rc = 0;

    j->t = xcalloc(1, sizeof(ATable));
    j->t->schema = xstrdup(j->schema);
    j->t->name = xstrdup(j->name);
    j->t->display = relcache_display_name(j->schema, j->name);
    j->t->skip = !j->in_tables;
    if (j->t->skip)
        goto out;
    if (!a->ctl)
        rc = pgconn_open(&a->cfg->target.conn, PGCONN_NORMAL, "target", &a->ctl);
    if (rc == 0)
        rc = load_def(a->ctl, j->schema, j->name, &edef, &efound);
    if (rc == 0 && !mcfg && !efound)
        rc = tm_fail(-ENOENT,
                     "table %s (source.table of the events) does not exist on the target: create"
                     " it, or map it to a table that does (mapping:)",
                     j->t->display);
    if (rc == 0 && !mcfg) {
        rc = build_plain(j, &edef);
        if (rc == 0) {
            /* the key of an unmapped table is the target's own (primary key or first unique) */
            json_decref(j->keys);
            j->keys = json_array();
            for (size_t i = 0; i < edef.ncols; i++)
                if (edef.cols[i].is_pk)
                    json_array_append_new(j->keys, json_string(edef.cols[i].name));
        }
    }
    if (rc == 0 && mcfg) {
        RelInfo shape;

        build_mapped_cols(j, efound ? &edef : NULL, NULL);
        shape = shape_of(j->t, j->keys, 0);
        rc = mapping_compile(mcfg, &shape, &j->t->plan);
        free(shape.cols);
        if (rc == 0 && mapping_uses_id_lookup(j->t->plan))
            rc = tm_fail(-ENOTSUP, "the id_map transform is not supported by `tidemark apply`"
                                   " yet: map ids in the producing pipeline");
        if (rc == 0) {
            mapping_default_on_error(j->t->plan, a->cfg->apply.on_error_dead_letter
                                                     ? MAPPING_ON_ERROR_DEAD_LETTER
                                                     : MAPPING_ON_ERROR_STOP);
            rc = load_def(a->ctl, mapping_target_schema(j->t->plan),
                          mapping_target_table(j->t->plan), &tdef, &tfound);
        }
        if (rc == 0 && !tfound)
            rc = tm_fail(-ENOENT, "the mapping's target %s.%s does not exist on the target",
                         mapping_target_schema(j->t->plan), mapping_target_table(j->t->plan));
        if (rc == 0 && !efound) {
            /* type the fields by the target's columns of the same name */
            for (size_t i = 0; i < j->t->ncols; i++) {
                const TableColumn *tc = def_col(&tdef, j->t->cols[i].name);

                if (tc && !j->t->cols[i].dbz) {
                    j->t->cols[i].dbz = col_dbz(tc, &a->dbz);
                    j->t->cols[i].typmod = tc->base_oid ? tc->base_typmod : tc->typmod;
                    if (dbzdecode_skipped(j->t->cols[i].dbz)) {
                        debezium_col_free(j->t->cols[i].dbz);
                        j->t->cols[i].dbz = NULL;
                    }
                }
            }
        }
    }
    if (rc < 0 && a->ctl && PQstatus(a->ctl) == CONNECTION_BAD) {
        PQfinish(a->ctl);
        a->ctl = NULL;
        rc = tm_fail_ctx(-ENOTCONN, "target");
    }
out:
    tabledef_release(&edef);
    tabledef_release(&tdef);
    offload_result(base, rc < 0 ? tm_fail_ctx(rc, "events of %s", j->t->display) : 0);
}

static void table_done(OffloadJob *base)
{
    TableJob *j = (TableJob *)base;
    Applier *a = j->a;
    ATable *t = j->t;
    int rc = offload_rethrow(base);

    if (base->cancelled)
        goto out;
    a->table_job = false;
    if (rc < 0) {
        applier_table_free(t);
        t = NULL;
        if (rc == -ENOTCONN)
            applier_recover(a, rc);
        else
            applier_fail(a, rc);
        goto out;
    }
    if (!t->skip) {
        RelInfo shape = shape_of(t, j->keys, ++a->next_oid);

        t->src = relcache_put(a->rels, &shape);
        free(shape.cols);
        t->src->table_idx = 0;
        if (t->plan) {
            t->mapped.info = *mapping_target_rel(t->plan);
            t->mapped.display = relcache_display_name(mapping_target_schema(t->plan),
                                                      mapping_target_table(t->plan));
            t->mapped.table_idx = 0;
        }
        for (size_t i = 0; i < t->ncols; i++) {
            const char *why = t->cols[i].dbz ? dbzdecode_lossy(t->cols[i].dbz, t->cols[i].typmod)
                                             : "no type known: the field's JSON text is applied";

            if (why)
                log_write(LOG_LVL_WARNING, t->display, LSN_INVALID, "column %s: %s",
                          t->cols[i].name, why);
        }
        log_info("applying the events of %s to %s%s", t->display,
                 t->plan ? t->mapped.display : t->display,
                 t->full ? " (no key: rows are located by their whole old row)" : "");
    } else {
        log_write(LOG_LVL_WARNING, t->display, LSN_INVALID,
                  "not in source.tables: its events are skipped");
    }
    a->tables = xrealloc(a->tables, (a->ntables + 1) * sizeof(*a->tables));
    a->tables[a->ntables++] = t;
    t = NULL;
    applier_pump(a); /* the held message first */
out:
    if (base->cancelled)
        applier_table_free(t);
    json_decref(j->fields);
    json_decref(j->keys);
    free(j->schema);
    free(j->name);
    free(j);
}

static bool listed(const Config *cfg, const char *schema, const char *name)
{
    if (!cfg->source.ntables)
        return true;
    for (size_t i = 0; i < cfg->source.ntables; i++)
        if (strcmp(cfg->source.tables[i].schema, schema) == 0 &&
            strcmp(cfg->source.tables[i].name, name) == 0)
            return true;
    return false;
}

void applier_table_request(Applier *a, const KEvent *ev, const rd_kafka_message_t *m)
{
    TableJob *j = xcalloc(1, sizeof(*j));
    const json_t *row = ev->after ? ev->after : ev->before;
    const char *k;
    json_t *v;

    j->base.run = table_run;
    j->base.done = table_done;
    j->a = a;
    j->schema = xstrdup(ev->schema);
    j->name = xstrdup(ev->table);
    j->in_tables = listed(a->cfg, ev->schema, ev->table);
    j->fields = json_array();
    if (row)
        json_object_foreach((json_t *)row, k, v) json_array_append_new(j->fields, json_string(k));
    j->keys = kevent_key_fields(m->key, m->key_len);
    a->table_job = true;
    offload_submit(a->jobs, &j->base);
}

/* ---- rows ---------------------------------------------------------------------- */

static int field_json(Applier *a, const json_t *v, ColValue *out)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

    if (!s)
        return tm_fail(-ENOMEM, "out of memory");
    out->state = COL_TEXT;
    out->len = (uint32_t)strlen(s);
    out->data = arena_strndup(a->arena, s, out->len);
    free(s);
    return 0;
}

/* A JSON scalar of an untyped field as text. */
static int raw_text(const json_t *v, Buf *b)
{
    if (json_is_string(v))
        buf_append(b, json_string_value(v), json_string_length(v));
    else if (json_is_true(v) || json_is_false(v))
        buf_puts(b, json_is_true(v) ? "t" : "f");
    else {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

        buf_puts(b, s ? s : "");
        free(s);
    }
    return 0;
}

/*
 * One row: every column of t from row (JSON), into arena values. unchanged:
 * the placeholder means unchanged TOAST. raw gets each field's JSON text.
 */
static int decode_row(Applier *a, ATable *t, const json_t *row, bool unchanged, Tuple *out,
                      Tuple *raw, const char *which)
{
    Buf b = BUF_INIT;
    int rc = 0;

    out->ncols = raw->ncols = (uint16_t)t->ncols;
    out->cols = arena_calloc(a->arena, t->ncols + 1, sizeof(ColValue));
    raw->cols = arena_calloc(a->arena, t->ncols + 1, sizeof(ColValue));
    if (json_object_size(row) != t->ncols) {
        const char *k;
        json_t *v;

        json_object_foreach((json_t *)row, k, v)
        {
            bool known = false;

            for (size_t i = 0; i < t->ncols && !known; i++)
                known = strcmp(t->cols[i].name, k) == 0;
            if (!known)
                return tm_fail(-EPROTO,
                               "the %s row of an event of %s has a field \"%s\" the target table"
                               " does not have (the tables differ: add the column on the target,"
                               " or map it)",
                               which, t->display, k);
        }
    }
    for (size_t i = 0; i < t->ncols; i++) {
        const json_t *v = json_object_get(row, t->cols[i].name);

        if (v && !json_is_null(v))
            field_json(a, v, &raw->cols[i]);
        else
            raw->cols[i] = (ColValue){.state = COL_NULL};
        out->cols[i] = (ColValue){.state = COL_NULL};
    }
    for (size_t i = 0; i < t->ncols; i++) {
        const ACol *c = &t->cols[i];
        const json_t *v = json_object_get(row, c->name);
        ColValue *cv = &out->cols[i];

        if (!v) {
            rc = tm_fail(-EPROTO,
                         "the %s row of an event of %s has no field \"%s\" (the producer's table"
                         " lacks a column the target has: drop it or give it a default and map"
                         " the table)",
                         which, t->display, c->name);
            break;
        }
        if (json_is_null(v))
            continue;
        if (unchanged && c->dbz && dbzdecode_unavailable(c->dbz, v)) {
            *cv = (ColValue){.state = COL_UNCHANGED};
            continue;
        }
        buf_clear(&b);
        rc = c->dbz ? dbzdecode_value(c->dbz, v, &b) : raw_text(v, &b);
        if (rc < 0) {
            rc = tm_fail_ctx(rc, "column %s", c->name);
            break;
        }
        cv->state = COL_TEXT;
        cv->len = (uint32_t)b.len;
        cv->data = arena_strndup(a->arena, b.data ? b.data : "", b.len);
    }
    buf_release(&b);
    return rc;
}

int applier_decode(Applier *a, ATable *t, const KEvent *ev, Change *out, Change *raw)
{
    uint32_t relid = t->src->info.oid;
    bool want_old = t->full || (t->plan && mapping_has_filter(t->plan));
    int rc = 0;

    memset(out, 0, sizeof(*out));
    memset(raw, 0, sizeof(*raw));
    switch (ev->op) {
    case 'c':
    case 'r':
        out->kind = raw->kind = CHG_INSERT;
        out->insert.relid = raw->insert.relid = relid;
        return decode_row(a, t, ev->after, false, &out->insert.newtup, &raw->insert.newtup,
                          "after");
    case 'u':
        out->kind = raw->kind = CHG_UPDATE;
        out->update.relid = raw->update.relid = relid;
        rc = decode_row(a, t, ev->after, true, &out->update.newtup, &raw->update.newtup, "after");
        if (rc == 0 && want_old && !ev->before)
            return tm_fail(-EPROTO,
                           "an update of %s without its old row: %s needs the source table's"
                           " REPLICA IDENTITY FULL",
                           t->display, t->full ? "a table without a key" : "a mapping's filter");
        if (rc == 0 && want_old) {
            out->update.old_kind = raw->update.old_kind = 'O';
            rc = decode_row(a, t, ev->before, false, &out->update.oldtup, &raw->update.oldtup,
                            "before");
        }
        return rc;
    case 'd':
        out->kind = raw->kind = CHG_DELETE;
        out->del.relid = raw->del.relid = relid;
        out->del.old_kind = raw->del.old_kind = t->full ? 'O' : 'K';
        return decode_row(a, t, ev->before, false, &out->del.oldtup, &raw->del.oldtup, "before");
    default:
        return tm_fail(-EINVAL, "op '%c' is not a row change", ev->op);
    }
}
