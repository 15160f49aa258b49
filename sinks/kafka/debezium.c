/*
 * Debezium keys and envelopes (see debezium.h). Everything that is the same
 * for every event of a table or pipeline (column names as JSON, the source
 * block's constant fields) is rendered once, so an event costs one pass over
 * its values.
 */
#include "sinks/kafka/debezium.h"
#include "core/error.h"
#include "core/xmalloc.h"

#include <string.h>

static char *json_str_dup(const char *s, const char *suffix)
{
    Buf b = BUF_INIT;

    debezium_json_string(&b, s, strlen(s));
    buf_puts(&b, suffix);
    return b.data;
}

DbzTable *debezium_table_new(const char *schema, const char *table, uint16_t ncols,
                             const char *const *names, const uint32_t *types, const bool *is_key,
                             bool full)
{
    DbzTable *t = xcalloc(1, sizeof(*t));
    Buf b = BUF_INIT;

    t->ncols = ncols;
    t->types = xcalloc(ncols + 1u, sizeof(*t->types));
    t->is_key = xcalloc(ncols + 1u, sizeof(*t->is_key));
    t->jnames = xcalloc(ncols + 1u, sizeof(*t->jnames));
    for (uint16_t i = 0; i < ncols; i++) {
        t->types[i] = types[i];
        t->is_key[i] = full || (is_key && is_key[i]);
        t->nkeys += t->is_key[i];
        t->jnames[i] = json_str_dup(names[i], ":");
    }
    buf_puts(&b, "\"schema\":");
    debezium_json_string(&b, schema, strlen(schema));
    buf_puts(&b, ",\"table\":");
    debezium_json_string(&b, table, strlen(table));
    t->jtable = b.data;
    return t;
}

DbzTable *debezium_table_from_rel(const RelInfo *rel)
{
    const char **names = xcalloc(rel->ncols + 1u, sizeof(*names));
    uint32_t *types = xcalloc(rel->ncols + 1u, sizeof(*types));
    bool *keys = xcalloc(rel->ncols + 1u, sizeof(*keys));
    DbzTable *t;

    for (uint16_t i = 0; i < rel->ncols; i++) {
        names[i] = rel->cols[i].name;
        types[i] = rel->cols[i].type_oid;
        keys[i] = rel->cols[i].is_key;
    }
    t = debezium_table_new(rel->schema, rel->name, rel->ncols, names, types, keys,
                           rel->replident == 'f');
    free(names);
    free(types);
    free(keys);
    return t;
}

DbzTable *debezium_table_from_def(const TableDef *def)
{
    uint16_t n = (uint16_t)def->ncols;
    const char **names = xcalloc(n + 1u, sizeof(*names));
    uint32_t *types = xcalloc(n + 1u, sizeof(*types));
    bool *keys = xcalloc(n + 1u, sizeof(*keys));
    DbzTable *t;

    for (uint16_t i = 0; i < n; i++) {
        names[i] = def->cols[i].name;
        types[i] = def->cols[i].type_oid;
        keys[i] = def->cols[i].is_key;
    }
    /* The catalog flags no columns under identity FULL; pgoutput flags all. */
    t = debezium_table_new(def->schema, def->name, n, names, types, keys, def->replident == 'f');
    free(names);
    free(types);
    free(keys);
    return t;
}

void debezium_table_free(DbzTable *t)
{
    if (!t)
        return;
    for (uint16_t i = 0; i < t->ncols; i++)
        free(t->jnames[i]);
    free(t->jnames);
    free(t->types);
    free(t->is_key);
    free(t->jtable);
    free(t);
}

void debezium_source_init(DbzSource *src, const char *version, const char *pipeline, const char *db)
{
    Buf b = BUF_INIT;

    buf_puts(&b, "{\"version\":");
    debezium_json_string(&b, version, strlen(version));
    buf_puts(&b, ",\"connector\":\"tidemark\",\"name\":");
    debezium_json_string(&b, pipeline, strlen(pipeline));
    buf_putc(&b, ',');
    src->head = b.data;
    src->db = json_str_dup(db, ",");
}

void debezium_source_release(DbzSource *src)
{
    free(src->head);
    free(src->db);
    src->head = src->db = NULL;
}

static int put_column(Buf *out, const DbzTable *t, uint16_t i, const ColValue *v)
{
    buf_puts(out, t->jnames[i]);
    switch (v->state) {
    case COL_NULL:
        buf_append(out, "null", 4);
        return 0;
    case COL_UNCHANGED:
        buf_puts(out, "\"" DEBEZIUM_UNAVAILABLE "\"");
        return 0;
    case COL_TEXT:
        return debezium_value(out, t->types[i], v->data, v->len);
    case COL_BINARY:
        break;
    }
    return tm_fail(-EPROTO, "column %s: binary values are not supported", t->jnames[i]);
}

static int check_width(const DbzTable *t, const Tuple *row)
{
    if (row->ncols != t->ncols)
        return tm_fail(-EPROTO, "a row of %u columns for a table of %u (stale Relation?)",
                       row->ncols, t->ncols);
    return 0;
}

int debezium_row(Buf *out, const DbzTable *t, const Tuple *row)
{
    int rc = check_width(t, row);

    buf_putc(out, '{');
    for (uint16_t i = 0; i < t->ncols && rc == 0; i++) {
        if (i)
            buf_putc(out, ',');
        rc = put_column(out, t, i, &row->cols[i]);
    }
    buf_putc(out, '}');
    if (rc < 0)
        return tm_fail_ctx(rc, "rendering %s", t->jtable);
    return 0;
}

int debezium_key(Buf *out, const DbzTable *t, const Tuple *row)
{
    bool first = true;
    int rc = check_width(t, row);

    if (rc < 0)
        return rc;
    if (t->nkeys == 0)
        return 1;
    buf_putc(out, '{');
    for (uint16_t i = 0; i < t->ncols && rc == 0; i++) {
        if (!t->is_key[i])
            continue;
        if (!first)
            buf_putc(out, ',');
        first = false;
        rc = put_column(out, t, i, &row->cols[i]);
    }
    buf_putc(out, '}');
    if (rc < 0)
        return tm_fail_ctx(rc, "rendering the key of %s", t->jtable);
    return 0;
}

bool debezium_key_changed(const DbzTable *t, const Tuple *old, const Tuple *new_row)
{
    if (old->ncols != t->ncols || new_row->ncols != t->ncols)
        return false;
    for (uint16_t i = 0; i < t->ncols; i++) {
        const ColValue *a = &old->cols[i], *b = &new_row->cols[i];

        if (!t->is_key[i] || a->state == COL_UNCHANGED || b->state == COL_UNCHANGED)
            continue;
        if (a->state != b->state)
            return true;
        if (a->state == COL_TEXT && (a->len != b->len || memcmp(a->data, b->data, a->len) != 0))
            return true;
    }
    return false;
}

static int put_tuple(Buf *out, const DbzTable *t, const Tuple *row)
{
    if (!row) {
        buf_append(out, "null", 4);
        return 0;
    }
    return debezium_row(out, t, row);
}

static void put_u64(Buf *out, uint64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof(tmp);

    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    buf_append(out, p, (size_t)(tmp + sizeof(tmp) - p));
}

static void put_i64(Buf *out, int64_t v)
{
    if (v < 0) {
        buf_putc(out, '-');
        put_u64(out, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(out, (uint64_t)v);
    }
}

int debezium_envelope(Buf *out, const DbzTable *t, const DbzSource *src, const DbzEvent *ev)
{
    int rc;

    buf_puts(out, "{\"before\":");
    rc = put_tuple(out, t, ev->before);
    if (rc < 0)
        return rc;
    buf_puts(out, ",\"after\":");
    rc = put_tuple(out, t, ev->after);
    if (rc < 0)
        return rc;
    buf_puts(out, ",\"source\":");
    buf_puts(out, src->head);
    buf_puts(out, "\"ts_ms\":");
    put_i64(out, ev->source_ts_ms);
    buf_puts(out,
             ev->snapshot ? ",\"snapshot\":\"true\",\"db\":" : ",\"snapshot\":\"false\",\"db\":");
    buf_puts(out, src->db);
    buf_puts(out, t->jtable);
    buf_puts(out, ",\"txId\":");
    if (ev->has_xid)
        put_u64(out, ev->xid);
    else
        buf_append(out, "null", 4);
    buf_puts(out, ",\"lsn\":");
    put_u64(out, ev->lsn);
    buf_puts(out, ",\"xmin\":null},");
    buf_puts(out, "\"op\":\"");
    buf_putc(out, ev->op);
    buf_putc(out, '"');
    buf_puts(out, ",\"ts_ms\":");
    put_i64(out, ev->ts_ms);
    buf_puts(out, ",\"transaction\":null}");
    return 0;
}
