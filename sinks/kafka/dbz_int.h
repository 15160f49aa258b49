/*
 * Internals of the Debezium renderer (debezium.h), shared by dbztype.c (a
 * column's type to a rendering op and its Connect schema), dbzvalue.c (the
 * dispatch, strings, bytes, arrays, bits, geometry, hstore), dbznum.c
 * (numeric, money, Java's number formatting) and dbztime.c (dates, times,
 * intervals), and by connectors/kafka/dbzdecode*.c, which reads the same
 * encodings back (its inverse). Not for use elsewhere.
 */
#ifndef TM_DBZ_INT_H
#define TM_DBZ_INT_H

#include "sinks/kafka/debezium.h"

/* The rendering of one column, chosen from its type and the options. */
typedef enum DbzOp {
    OP_SKIP = 0,   /* no converter: the column is left out */
    OP_BOOL,       /* bool, and bit(1) / varbit(1) */
    OP_INT,        /* int2, int4, int8, oid: the text as is */
    OP_FLOAT,      /* float4, float8: a number, NaN and infinities as strings */
    OP_DEC_BYTES,  /* numeric(p,s), precise: Decimal bytes at the column's scale */
    OP_DEC_VAR,    /* numeric, precise: VariableScaleDecimal {scale, value} */
    OP_DEC_DOUBLE, /* numeric, double */
    OP_DEC_STRING, /* numeric, string: BigDecimal.toString() */
    OP_MONEY_BYTES,
    OP_MONEY_DOUBLE,
    OP_MONEY_STRING,
    OP_STRING,   /* text types, json, uuid, xml, enums, inet, ranges, ...: the text */
    OP_BYTEA,    /* bytea in the binary mode */
    OP_UNKNOWN,  /* include.unknown.datatypes: the text's bytes in the binary mode */
    OP_GEO_TEXT, /* same for box, circle, ...: as PGobject prints them (Java doubles) */
    OP_DATE,     /* days since the epoch */
    OP_TIME_MS,  /* milliseconds past midnight */
    OP_TIME_US,  /* microseconds past midnight */
    OP_TIMETZ,   /* ZonedTime */
    OP_TS_MS,    /* milliseconds since the epoch */
    OP_TS_US,    /* microseconds since the epoch */
    OP_TSTZ,     /* ZonedTimestamp, fraction of width digits (0: trimmed) */
    OP_INTERVAL_US,
    OP_INTERVAL_ISO,
    OP_BITS, /* bit(n), varbit: io.debezium.data.Bits bytes */
    OP_POINT,
    OP_HSTORE_JSON,
    OP_HSTORE_MAP,
    OP_POSTGIS, /* geometry, geography: {"wkb", "srid"} */
    OP_ARRAY,
} DbzOp;

/* What a string column's Connect schema is named (schemas.enable). */
typedef enum DbzSemantic {
    SEM_NONE = 0,
    SEM_JSON,
    SEM_XML,
    SEM_UUID,
    SEM_ENUM,
    SEM_TSVECTOR,
    SEM_LTREE,
    SEM_GEOMETRY,
    SEM_GEOGRAPHY,
} DbzSemantic;

/* The Connect type and name of a time value. */
typedef enum DbzTimeSchema {
    TS_NONE = 0,
    TS_DATE,       /* io.debezium.time.Date */
    TS_TIME,       /* io.debezium.time.Time */
    TS_MICRO_TIME, /* io.debezium.time.MicroTime */
    TS_TIMESTAMP,  /* io.debezium.time.Timestamp */
    TS_MICRO_TS,   /* io.debezium.time.MicroTimestamp */
    TS_KDATE,      /* org.apache.kafka.connect.data.Date */
    TS_KTIME,      /* org.apache.kafka.connect.data.Time */
    TS_KTIMESTAMP, /* org.apache.kafka.connect.data.Timestamp */
} DbzTimeSchema;

struct DbzCol {
    DbzOp op;
    DbzBinaryMode binary; /* OP_BYTEA, OP_UNKNOWN, OP_GEO_TEXT */
    DbzSemantic sem;
    DbzTimeSchema tschema;
    int32_t scale;     /* numeric scale, money digits, timestamptz fraction width */
    int32_t precision; /* numeric precision (schema parameter) */
    int32_t bits;      /* bit length (INT32_MAX: unbounded varbit) */
    uint32_t oid;      /* the type, for messages */
    char geo; /* OP_GEO_TEXT: 'b' box, 'c' circle, 'l' line, 's' lseg, 'p' path, 'g' polygon */
    char *enum_labels;
    DbzCol *elem; /* OP_ARRAY */
};

/* Value renderers (dbznum.c, dbztime.c); each appends JSON or fails with tm_fail. */
int dbz_numeric(Buf *out, const DbzCol *c, const char *text, size_t len);
int dbz_money(Buf *out, const DbzCol *c, const char *text, size_t len);
int dbz_float(Buf *out, const DbzCol *c, const char *text, size_t len);
int dbz_date(Buf *out, const DbzCol *c, const char *text, size_t len);
int dbz_time(Buf *out, const DbzCol *c, const char *text, size_t len);
int dbz_timetz(Buf *out, const DbzCol *c, const char *text, size_t len);
int dbz_timestamp(Buf *out, const DbzCol *c, const char *text, size_t len);
int dbz_timestamptz(Buf *out, const DbzCol *c, const char *text, size_t len);
int dbz_interval(Buf *out, const DbzCol *c, const char *text, size_t len);

/* Java's Double.toString(d) (what Jackson writes for a double), appended. */
void dbz_java_double(Buf *out, double d);
/* A double as JsonConverter writes it: a number, or "NaN" / "Infinity" / "-Infinity". */
void dbz_json_double(Buf *out, double d);
/* Parses a float's text (PostgreSQL or Java form); false if it is not one. */
bool dbz_parse_double(const char *text, size_t len, double *out);

/* Binary values in the binary mode: a JSON string (base64, base64-url-safe or hex). */
void dbz_bytes(Buf *out, DbzBinaryMode mode, const unsigned char *p, size_t n);

/* Appends v in decimal. */
void dbz_put_i64(Buf *out, int64_t v);

/* Fails with "cannot render <what> value "<text>" (type oid N)". */
int dbz_bad_value(const DbzCol *c, const char *what, const char *text, size_t len);

#endif
