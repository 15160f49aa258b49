/*
 * Debezium-compatible JSON for Kafka: message keys and change-event envelopes
 * exactly as Debezium's PostgreSQL connector writes them through Kafka
 * Connect's JsonConverter (schemas disabled by default, or {"schema",
 * "payload"} with schemas.enable), so a consumer written for Debezium reads
 * tidemark's topics unchanged. Values arrive as PostgreSQL text output (from
 * pgoutput, or unescaped from COPY rows); each column's rendering is chosen
 * once per table from its type and Debezium's converter settings
 * (decimal.handling.mode, time.precision.mode, ...). docs/KAFKA.md has the
 * compatibility table. Pure functions over buffers: nothing here knows
 * librdkafka, so unit tests cover every type and mode without a broker.
 */
#ifndef TM_DEBEZIUM_H
#define TM_DEBEZIUM_H

#include "config/config.h"
#include "core/buf.h"
#include "core/change.h"
#include "core/table.h"

#include <stdbool.h>
#include <stdint.h>

/* Debezium's stand-in for a value the source did not send (unchanged TOAST). */
#define DEBEZIUM_UNAVAILABLE "__debezium_unavailable_value"

typedef enum DbzDecimalMode { DBZ_DEC_PRECISE, DBZ_DEC_DOUBLE, DBZ_DEC_STRING } DbzDecimalMode;
typedef enum DbzTimeMode { DBZ_TIME_ADAPTIVE, DBZ_TIME_ADAPTIVE_US, DBZ_TIME_CONNECT } DbzTimeMode;
typedef enum DbzBinaryMode {
    DBZ_BIN_BYTES, /* JsonConverter writes bytes as base64 */
    DBZ_BIN_BASE64,
    DBZ_BIN_BASE64_URL,
    DBZ_BIN_HEX,
} DbzBinaryMode;

/* Debezium's converter settings (target.* in the config; the defaults are Debezium's). */
typedef struct DbzOptions {
    DbzDecimalMode decimal;
    DbzTimeMode time;
    DbzBinaryMode binary;
    bool interval_string; /* interval.handling.mode=string */
    bool hstore_map;      /* hstore.handling.mode=map */
    bool include_unknown; /* include.unknown.datatypes */
    bool schemas;         /* JsonConverter schemas.enable */
    int money_digits;     /* money.fraction.digits */
} DbzOptions;

#define DBZ_OPTIONS_DEFAULT                                                                        \
    (DbzOptions)                                                                                   \
    {                                                                                              \
        .decimal = DBZ_DEC_PRECISE, .time = DBZ_TIME_ADAPTIVE, .money_digits = 2                   \
    }

/* The options a validated config asks for. */
DbzOptions debezium_options(const Config *cfg);

/*
 * The same from one section of a validated config tree holding Debezium's
 * setting names (target of a Kafka sink, source of `tidemark apply`).
 */
DbzOptions debezium_options_tree(const json_t *section);

/*
 * A column's type as the source catalog describes it (core/table.h's
 * TableColumn). From pgoutput alone only oid and typmod are known: domains,
 * enums and extension types then count as types without a converter.
 */
typedef struct DbzTypeInfo {
    uint32_t oid; /* a domain's base type, not the domain */
    int32_t typmod;
    char typtype;        /* 'b', 'e' enum, 'r' range, 'c' composite, ... (0: unknown) */
    const char *typname; /* extension types: hstore, citext, ltree, isbn, geometry, ... */
    uint32_t elem_oid;   /* arrays: the element type (0: not an array, or unknown) */
    char elem_typtype;   /* of the element */
    const char *elem_typname;
    const char *enum_labels; /* "a,b,c" for an enum or an array of one */
} DbzTypeInfo;

/* How one column renders, chosen once (dbztype.c). */
typedef struct DbzCol DbzCol;

DbzCol *debezium_col_new(const DbzTypeInfo *type, const DbzOptions *opts);
void debezium_col_free(DbzCol *c);
/* A type without a converter (and include.unknown.datatypes off): left out of events. */
bool debezium_col_skipped(const DbzCol *c);

/*
 * Appends the JSON of one text value; -EINVAL (tm_error() set) when the
 * value cannot be rendered. name is the column's, for messages.
 */
int debezium_value(Buf *out, const DbzCol *c, const char *text, size_t len);

/* Appends the unchanged-TOAST placeholder in this column's type. */
void debezium_unavailable(Buf *out, const DbzCol *c);

/* Appends the Connect schema of the column (schemas.enable), "field" included. */
void debezium_col_schema(Buf *out, const DbzCol *c, const char *field, bool optional);

/* Appends s as a JSON string (escaping quotes, backslashes and controls). */
void debezium_json_string(Buf *out, const char *s, size_t len);

/* One column of a table. */
typedef struct DbzColumnSpec {
    const char *name;
    DbzTypeInfo type;
    bool key;      /* part of the message key */
    bool not_null; /* for schemas: not optional */
} DbzColumnSpec;

/* A table's shape, pre-rendered for the hot path. Same for stream and copy. */
typedef struct DbzTable {
    uint16_t ncols;
    uint16_t nkeys; /* key columns that are not skipped */
    DbzCol **cols;
    bool *is_key;
    char **names;     /* the column names, for messages */
    char **jnames;    /* each column name as a JSON string plus ':' */
    char *jtable;     /* "schema":"...","table":"..." */
    char *display;    /* schema.table, for messages */
    char *key_head;   /* schemas: {"schema":<key schema>,"payload": */
    char *value_head; /* schemas: {"schema":<envelope schema>,"payload": */
} DbzTable;

/*
 * name_prefix names the Connect schemas (<prefix>.<schema>.<table>.Key,
 * .Value, .Envelope): the topic prefix, as Debezium uses topic.prefix.
 */
DbzTable *debezium_table_new(const char *name_prefix, const char *schema, const char *table,
                             uint16_t ncols, const DbzColumnSpec *cols, const DbzOptions *opts);
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
    char op;              /* 'c', 'u', 'd', 'r', 't' */
    const Tuple *before;  /* NULL: "before":null */
    const Tuple *after;   /* NULL: "after":null */
    const char *snapshot; /* source.snapshot: NULL is "false"; "true", "first", "last", ... */
    bool has_xid;         /* txId is null for snapshot rows */
    uint32_t xid;
    Lsn lsn;              /* source.lsn: the change's own WAL position */
    Lsn last_commit;      /* source.sequence[0]: the previous commit's end (0: null) */
    int64_t source_ts_us; /* commit time (snapshot: when the table's copy started) */
    int64_t ts_ns;        /* when tidemark rendered the event */
} DbzEvent;

/* Appends {"col":value,...} for every rendered column of row. */
int debezium_row(Buf *out, const DbzTable *t, const Tuple *row);

/*
 * Appends the message key from row's key columns (with its schema under
 * schemas.enable). Returns 1 (and appends nothing) when the table has no key
 * columns: the message key is then null.
 */
int debezium_key(Buf *out, const DbzTable *t, const Tuple *row);

/* The key's fields alone, without a schema: Debezium's key-change header values. */
int debezium_key_payload(Buf *out, const DbzTable *t, const Tuple *row);

/* Whether old and new differ in a key column (an update that moves the row's key). */
bool debezium_key_changed(const DbzTable *t, const Tuple *old, const Tuple *new_row);

/* Appends the whole value: the envelope (with its schema under schemas.enable). */
int debezium_envelope(Buf *out, const DbzTable *t, const DbzSource *src, const DbzEvent *ev);

/* Microseconds since the Unix epoch of a PostgreSQL timestamp. */
static inline int64_t debezium_us(PgTime t)
{
    return t + PG_EPOCH_OFFSET_SECS * 1000000;
}

#endif
