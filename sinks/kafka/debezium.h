/*
 * Debezium-compatible JSON for Kafka: the message key (the replica-identity
 * columns) and the change-event envelope (before, after, source, op, ts_ms)
 * as Debezium's JSON converter writes them with schemas disabled, so an
 * existing Debezium consumer reads tidemark's topics unchanged. Values arrive
 * as PostgreSQL text output (from pgoutput, or unescaped from COPY rows) and
 * are rendered per type OID; docs/KAFKA.md lists every mapping. Pure
 * functions over buffers: nothing here knows about librdkafka, so the unit
 * tests cover every type without a broker.
 */
#ifndef TM_DEBEZIUM_H
#define TM_DEBEZIUM_H

#include "core/buf.h"
#include "core/change.h"
#include "core/table.h"

#include <stdbool.h>
#include <stdint.h>

/* Debezium's stand-in for a value the source did not send (unchanged TOAST). */
#define DEBEZIUM_UNAVAILABLE "__debezium_unavailable_value"

/* A table's shape, pre-rendered for the hot path. Same for stream and copy. */
typedef struct DbzTable {
    uint16_t ncols;
    uint16_t nkeys;
    uint32_t *types;
    bool *is_key;
    char **jnames; /* each column name as a JSON string plus ':' */
    char *jtable;  /* "schema":"...","table":"..." */
} DbzTable;

/*
 * is_key may be NULL (no key columns). full: replica identity FULL, where
 * every column identifies the row and is part of the key.
 */
DbzTable *debezium_table_new(const char *schema, const char *table, uint16_t ncols,
                             const char *const *names, const uint32_t *types, const bool *is_key,
                             bool full);
DbzTable *debezium_table_from_rel(const RelInfo *rel);
DbzTable *debezium_table_from_def(const TableDef *t);
void debezium_table_free(DbzTable *t);

/* What is the same for every event of a pipeline. */
typedef struct DbzSource {
    char *head; /* {"version":...,"connector":"tidemark","name":"<pipeline>", */
    char *db;   /* "<database>", */
} DbzSource;

void debezium_source_init(DbzSource *src, const char *version, const char *pipeline,
                          const char *db);
void debezium_source_release(DbzSource *src);

typedef struct DbzEvent {
    char op;             /* 'c', 'u', 'd', 'r', 't' */
    const Tuple *before; /* NULL: "before":null */
    const Tuple *after;  /* NULL: "after":null */
    bool snapshot;       /* an initial-load row */
    bool has_xid;        /* txId is null for snapshot rows */
    uint32_t xid;
    Lsn lsn;              /* source.lsn (numeric, like Debezium) */
    int64_t source_ts_ms; /* commit time (snapshot: when the row was read) */
    int64_t ts_ms;        /* when tidemark rendered the event */
} DbzEvent;

/* Appends one text value of type type_oid as JSON; -EINVAL on a malformed value. */
int debezium_value(Buf *out, uint32_t type_oid, const char *text, size_t len);

/* Appends s as a JSON string (escaping quotes, backslashes and controls). */
void debezium_json_string(Buf *out, const char *s, size_t len);

/* Appends {"col":value,...} for every column of row. */
int debezium_row(Buf *out, const DbzTable *t, const Tuple *row);

/*
 * Appends {"keycol":value,...} from row's key columns. Returns 1 (and appends
 * nothing) when the table has no key columns: the message key is then null.
 */
int debezium_key(Buf *out, const DbzTable *t, const Tuple *row);

/* Whether old and new differ in a key column (an update that moves the row's key). */
bool debezium_key_changed(const DbzTable *t, const Tuple *old, const Tuple *new_row);

/* Appends the whole envelope. */
int debezium_envelope(Buf *out, const DbzTable *t, const DbzSource *src, const DbzEvent *ev);

/* Milliseconds since the Unix epoch of a PostgreSQL timestamp. */
static inline int64_t debezium_ms(PgTime t)
{
    int64_t ms = t / 1000 - (t % 1000 < 0);

    return ms + PG_EPOCH_OFFSET_SECS * 1000;
}

#endif
