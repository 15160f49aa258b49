/*
 * Debezium keys and envelopes (see debezium.h). Everything that is the same
 * for every event of a table or pipeline (column names as JSON, the source
 * block's constant fields, the Connect schemas under schemas.enable) is
 * rendered once, so an event costs one pass over its values. Field order
 * follows Debezium's schemas: the envelope's before, after, source, op,
 * ts_ms, ts_us, ts_ns, transaction; the source block's version, connector,
 * name, ts_ms, snapshot, db, sequence, ts_us, ts_ns, schema, table, txId,
 * lsn, xmin.
 */
#include "sinks/kafka/debezium.h"
#include "sinks/kafka/dbz_int.h"
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

/* The source block's schema: Debezium's PostgreSQL Source struct. */
static const char SOURCE_SCHEMA[] =
    "{\"type\":\"struct\",\"fields\":["
    "{\"type\":\"string\",\"optional\":false,\"field\":\"version\"},"
    "{\"type\":\"string\",\"optional\":false,\"field\":\"connector\"},"
    "{\"type\":\"string\",\"optional\":false,\"field\":\"name\"},"
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"ts_ms\"},"
    "{\"type\":\"string\",\"optional\":true,\"name\":\"io.debezium.data.Enum\",\"version\":1,"
    "\"parameters\":{\"allowed\":\"true,first,first_in_data_collection,last_in_data_collection,"
    "last,false,incremental\"},\"default\":\"false\",\"field\":\"snapshot\"},"
    "{\"type\":\"string\",\"optional\":false,\"field\":\"db\"},"
    "{\"type\":\"string\",\"optional\":true,\"field\":\"sequence\"},"
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_us\"},"
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ns\"},"
    "{\"type\":\"string\",\"optional\":false,\"field\":\"schema\"},"
    "{\"type\":\"string\",\"optional\":false,\"field\":\"table\"},"
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"txId\"},"
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"lsn\"},"
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"xmin\"}],"
    "\"optional\":false,\"name\":\"io.debezium.connector.postgresql.Source\",\"field\":\"source\"}";

static const char ENVELOPE_TAIL_SCHEMA[] =
    "{\"type\":\"string\",\"optional\":false,\"field\":\"op\"},"
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ms\"},"
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_us\"},"
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ns\"},"
    "{\"type\":\"struct\",\"fields\":["
    "{\"type\":\"string\",\"optional\":false,\"field\":\"id\"},"
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"total_order\"},"
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"data_collection_order\"}],"
    "\"optional\":true,\"name\":\"event.block\",\"version\":1,\"field\":\"transaction\"}";

/* {"type":"struct","fields":[...],"optional":...,"name":"<base>.<suffix>"[,"field":...]} */
static void struct_schema(Buf *out, const DbzTable *t, const bool *not_null, bool keys_only,
                          bool optional, const char *base, const char *suffix, const char *field)
{
    bool first = true;

    buf_puts(out, "{\"type\":\"struct\",\"fields\":[");
    for (uint16_t i = 0; i < t->ncols; i++) {
        if (debezium_col_skipped(t->cols[i]) || (keys_only && !t->is_key[i]))
            continue;
        if (!first)
            buf_putc(out, ',');
        first = false;
        debezium_col_schema(out, t->cols[i], t->names[i], !not_null[i]);
    }
    buf_printf(out, "],\"optional\":%s,\"name\":", optional ? "true" : "false");
    Buf name = BUF_INIT;

    buf_printf(&name, "%s.%s", base, suffix);
    debezium_json_string(out, name.data, name.len);
    buf_release(&name);
    if (field)
        buf_printf(out, ",\"field\":\"%s\"", field);
    buf_putc(out, '}');
}

static void build_schemas(DbzTable *t, const bool *not_null, const char *prefix, const char *schema,
                          const char *table)
{
    Buf base = BUF_INIT, b = BUF_INIT;

    buf_printf(&base, "%s.%s.%s", prefix, schema, table);
    buf_puts(&b, "{\"schema\":");
    struct_schema(&b, t, not_null, true, false, base.data, "Key", NULL);
    buf_puts(&b, ",\"payload\":");
    t->key_head = b.data;
    b = (Buf)BUF_INIT;
    buf_puts(&b, "{\"schema\":{\"type\":\"struct\",\"fields\":[");
    struct_schema(&b, t, not_null, false, true, base.data, "Value", "before");
    buf_putc(&b, ',');
    struct_schema(&b, t, not_null, false, true, base.data, "Value", "after");
    buf_putc(&b, ',');
    buf_puts(&b, SOURCE_SCHEMA);
    buf_putc(&b, ',');
    buf_puts(&b, ENVELOPE_TAIL_SCHEMA);
    buf_puts(&b, "],\"optional\":false,\"name\":");
    buf_puts(&base, ".Envelope");
    debezium_json_string(&b, base.data, base.len);
    buf_puts(&b, ",\"version\":2},\"payload\":");
    t->value_head = b.data;
    buf_release(&base);
}

DbzTable *debezium_table_new(const char *name_prefix, const char *schema, const char *table,
                             uint16_t ncols, const DbzColumnSpec *cols, const DbzOptions *opts)
{
    DbzTable *t = xcalloc(1, sizeof(*t));
    bool *not_null = xcalloc(ncols + 1u, sizeof(*not_null));
    Buf b = BUF_INIT;

    t->ncols = ncols;
    t->cols = xcalloc(ncols + 1u, sizeof(*t->cols));
    t->is_key = xcalloc(ncols + 1u, sizeof(*t->is_key));
    t->names = xcalloc(ncols + 1u, sizeof(*t->names));
    t->jnames = xcalloc(ncols + 1u, sizeof(*t->jnames));
    for (uint16_t i = 0; i < ncols; i++) {
        t->cols[i] = debezium_col_new(&cols[i].type, opts);
        t->names[i] = xstrdup(cols[i].name);
        t->jnames[i] = json_str_dup(cols[i].name, ":");
        t->is_key[i] = cols[i].key;
        not_null[i] = cols[i].not_null || cols[i].key;
        t->nkeys += cols[i].key && !debezium_col_skipped(t->cols[i]);
    }
    buf_puts(&b, "\"schema\":");
    debezium_json_string(&b, schema, strlen(schema));
    buf_puts(&b, ",\"table\":");
    debezium_json_string(&b, table, strlen(table));
    t->jtable = b.data;
    t->display = xasprintf("%s.%s", schema, table);
    if (opts->schemas)
        build_schemas(t, not_null, name_prefix ? name_prefix : "", schema, table);
    free(not_null);
    return t;
}

void debezium_table_free(DbzTable *t)
{
    if (!t)
        return;
    for (uint16_t i = 0; i < t->ncols; i++) {
        debezium_col_free(t->cols[i]);
        free(t->names[i]);
        free(t->jnames[i]);
    }
    free(t->cols);
    free(t->names);
    free(t->jnames);
    free(t->is_key);
    free(t->jtable);
    free(t->display);
    free(t->key_head);
    free(t->value_head);
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
    int rc;

    buf_puts(out, t->jnames[i]);
    switch (v->state) {
    case COL_NULL:
        buf_append(out, "null", 4);
        return 0;
    case COL_UNCHANGED:
        debezium_unavailable(out, t->cols[i]);
        return 0;
    case COL_TEXT:
        rc = debezium_value(out, t->cols[i], v->data, v->len);
        if (rc < 0)
            return tm_fail_ctx(rc, "column %s", t->names[i]);
        return 0;
    case COL_BINARY:
        break;
    }
    return tm_fail(-EPROTO, "column %s: binary values are not supported", t->names[i]);
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
    bool first = true;

    buf_putc(out, '{');
    for (uint16_t i = 0; i < t->ncols && rc == 0; i++) {
        if (debezium_col_skipped(t->cols[i]))
            continue;
        if (!first)
            buf_putc(out, ',');
        first = false;
        rc = put_column(out, t, i, &row->cols[i]);
    }
    buf_putc(out, '}');
    if (rc < 0)
        return tm_fail_ctx(rc, "rendering %s", t->display);
    return 0;
}

static int render_key(Buf *out, const DbzTable *t, const Tuple *row, bool with_schema)
{
    bool first = true;
    int rc = check_width(t, row);

    if (rc < 0)
        return rc;
    if (t->nkeys == 0)
        return 1;
    with_schema = with_schema && t->key_head;
    if (with_schema)
        buf_puts(out, t->key_head);
    buf_putc(out, '{');
    for (uint16_t i = 0; i < t->ncols && rc == 0; i++) {
        if (!t->is_key[i] || debezium_col_skipped(t->cols[i]))
            continue;
        if (!first)
            buf_putc(out, ',');
        first = false;
        rc = put_column(out, t, i, &row->cols[i]);
    }
    buf_putc(out, '}');
    if (with_schema)
        buf_putc(out, '}');
    if (rc < 0)
        return tm_fail_ctx(rc, "rendering the key of %s", t->display);
    return 0;
}

int debezium_key(Buf *out, const DbzTable *t, const Tuple *row)
{
    return render_key(out, t, row, true);
}

int debezium_key_payload(Buf *out, const DbzTable *t, const Tuple *row)
{
    return render_key(out, t, row, false);
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

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

int debezium_envelope(Buf *out, const DbzTable *t, const DbzSource *src, const DbzEvent *ev)
{
    int rc;

    if (t->value_head)
        buf_puts(out, t->value_head);
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
    dbz_put_i64(out, floor_div(ev->source_ts_us, 1000));
    buf_puts(out, ",\"snapshot\":\"");
    buf_puts(out, ev->snapshot ? ev->snapshot : "false");
    buf_puts(out, "\",\"db\":");
    buf_puts(out, src->db);
    /* sequence: a JSON array of two LSNs as strings, itself in a string */
    buf_puts(out, "\"sequence\":\"[");
    if (ev->last_commit) {
        buf_puts(out, "\\\"");
        dbz_put_i64(out, (int64_t)ev->last_commit);
        buf_puts(out, "\\\"");
    } else {
        buf_puts(out, "null");
    }
    buf_puts(out, ",\\\"");
    dbz_put_i64(out, (int64_t)ev->lsn);
    buf_puts(out, "\\\"]\",\"ts_us\":");
    dbz_put_i64(out, ev->source_ts_us);
    buf_puts(out, ",\"ts_ns\":");
    dbz_put_i64(out, ev->source_ts_us * 1000);
    buf_putc(out, ',');
    buf_puts(out, t->jtable);
    buf_puts(out, ",\"txId\":");
    if (ev->has_xid)
        dbz_put_i64(out, ev->xid);
    else
        buf_append(out, "null", 4);
    buf_puts(out, ",\"lsn\":");
    dbz_put_i64(out, (int64_t)ev->lsn);
    buf_puts(out, ",\"xmin\":null},\"op\":\"");
    buf_putc(out, ev->op);
    buf_puts(out, "\",\"ts_ms\":");
    dbz_put_i64(out, floor_div(ev->ts_ns, 1000000));
    buf_puts(out, ",\"ts_us\":");
    dbz_put_i64(out, floor_div(ev->ts_ns, 1000));
    buf_puts(out, ",\"ts_ns\":");
    dbz_put_i64(out, ev->ts_ns);
    buf_puts(out, ",\"transaction\":null}");
    if (t->value_head)
        buf_putc(out, '}');
    return 0;
}
