/*
 * A column's type to its Debezium rendering (dbz_int.h): which converter
 * Debezium's PostgreSQL connector applies to the type (PostgresValueConverter
 * and the JDBC defaults beneath it), in which encoding the configured modes
 * ask for, and the Kafka Connect schema that describes the field when
 * schemas.enable is on. Types Debezium has no converter for are left out of
 * events, or sent as the bytes of their text with include.unknown.datatypes,
 * as Debezium does. Decided once per table shape, never per value.
 */
#include "sinks/kafka/dbz_int.h"
#include "core/xmalloc.h"

#include <stdio.h>
#include <string.h>

enum {
    OID_BOOL = 16,
    OID_BYTEA = 17,
    OID_CHAR = 18,
    OID_NAME = 19,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_TEXT = 25,
    OID_OID = 26,
    OID_JSON = 114,
    OID_XML = 142,
    OID_POINT = 600,
    OID_LSEG = 601,
    OID_PATH = 602,
    OID_BOX = 603,
    OID_POLYGON = 604,
    OID_LINE = 628,
    OID_CIDR = 650,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_CIRCLE = 718,
    OID_MACADDR8 = 774,
    OID_MONEY = 790,
    OID_MACADDR = 829,
    OID_INET = 869,
    OID_BPCHAR = 1042,
    OID_VARCHAR = 1043,
    OID_DATE = 1082,
    OID_TIME = 1083,
    OID_TIMESTAMP = 1114,
    OID_TIMESTAMPTZ = 1184,
    OID_INTERVAL = 1186,
    OID_TIMETZ = 1266,
    OID_BIT = 1560,
    OID_VARBIT = 1562,
    OID_NUMERIC = 1700,
    OID_UUID = 2950,
    OID_TSVECTOR = 3614,
    OID_JSONB = 3802,
    OID_INT4RANGE = 3904,
    OID_NUMRANGE = 3906,
    OID_TSRANGE = 3908,
    OID_TSTZRANGE = 3910,
    OID_DATERANGE = 3912,
    OID_INT8RANGE = 3926,
};

/* Built-in array types Debezium converts, and their elements; others have no converter. */
static const uint32_t ARRAYS[][2] = {
    {1000, OID_BOOL},    {1001, OID_BYTEA},     {1002, OID_CHAR},      {1005, OID_INT2},
    {1007, OID_INT4},    {1009, OID_TEXT},      {1014, OID_BPCHAR},    {1015, OID_VARCHAR},
    {1016, OID_INT8},    {1021, OID_FLOAT4},    {1022, OID_FLOAT8},    {1028, OID_OID},
    {1040, OID_MACADDR}, {1041, OID_INET},      {651, OID_CIDR},       {775, OID_MACADDR8},
    {1182, OID_DATE},    {1183, OID_TIME},      {1115, OID_TIMESTAMP}, {1185, OID_TIMESTAMPTZ},
    {1270, OID_TIMETZ},  {1231, OID_NUMERIC},   {2951, OID_UUID},      {199, OID_JSON},
    {3807, OID_JSONB},   {3643, OID_TSVECTOR},  {3905, OID_INT4RANGE}, {3907, OID_NUMRANGE},
    {3909, OID_TSRANGE}, {3911, OID_TSTZRANGE}, {3913, OID_DATERANGE}, {3927, OID_INT8RANGE},
};

/*
 * Other built-in array types: Debezium has no converter for them (money[],
 * name[], interval[], varbit[], xml[], point[], geometric and bit arrays,
 * ...), so they are left out even with include.unknown.datatypes.
 */
static const uint32_t OTHER_ARRAYS[] = {
    791,  1003, 1187, 1563, 143,  1017, 2201, 1561, 1018, 1019, 1020, 1027, 629,  719,  3221,
    1006, 1010, 1011, 1012, 1013, 1008, 1023, 1024, 1025, 2211, 3644, 3645, 4073, 2949, 1263,
};

static bool other_array(uint32_t oid)
{
    for (size_t i = 0; i < sizeof(OTHER_ARRAYS) / sizeof(OTHER_ARRAYS[0]); i++)
        if (OTHER_ARRAYS[i] == oid)
            return true;
    return false;
}

static uint32_t array_element(uint32_t oid)
{
    for (size_t i = 0; i < sizeof(ARRAYS) / sizeof(ARRAYS[0]); i++)
        if (ARRAYS[i][0] == oid)
            return ARRAYS[i][1];
    return 0;
}

static bool name_is(const char *name, const char *want)
{
    return name && strcmp(name, want) == 0;
}

/* Fractional-second digits of a time type's typmod (none: 6). */
static int32_t time_precision(int32_t typmod)
{
    return typmod < 0 ? 6 : typmod;
}

static void numeric_typmod(DbzCol *c, int32_t typmod)
{
    if (typmod < 4) {
        c->precision = 0;
        c->scale = INT32_MIN; /* no typmod: each value has its own scale */
        return;
    }
    c->precision = ((typmod - 4) >> 16) & 0xffff;
    c->scale = (((typmod - 4) & 0x7ff) ^ 1024) - 1024; /* 11-bit signed since PostgreSQL 15 */
}

/* The rendering of a scalar of a known built-in type; OP_SKIP if Debezium has none. */
static void classify_builtin(DbzCol *c, uint32_t oid, int32_t typmod, const DbzOptions *o)
{
    int32_t p;

    switch (oid) {
    case OID_BOOL:
        c->op = OP_BOOL;
        return;
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
        c->op = OP_INT;
        return;
    case OID_FLOAT4:
    case OID_FLOAT8:
        c->op = OP_FLOAT;
        return;
    case OID_NUMERIC:
        numeric_typmod(c, typmod);
        c->op = o->decimal == DBZ_DEC_DOUBLE   ? OP_DEC_DOUBLE
                : o->decimal == DBZ_DEC_STRING ? OP_DEC_STRING
                : c->scale == INT32_MIN        ? OP_DEC_VAR
                                               : OP_DEC_BYTES;
        return;
    case OID_MONEY:
        c->scale = o->money_digits;
        c->op = o->decimal == DBZ_DEC_DOUBLE   ? OP_MONEY_DOUBLE
                : o->decimal == DBZ_DEC_STRING ? OP_MONEY_STRING
                                               : OP_MONEY_BYTES;
        return;
    case OID_JSON:
    case OID_JSONB:
        c->sem = SEM_JSON;
        c->op = OP_STRING;
        return;
    case OID_XML:
        c->sem = SEM_XML;
        c->op = OP_STRING;
        return;
    case OID_UUID:
        c->sem = SEM_UUID;
        c->op = OP_STRING;
        return;
    case OID_TSVECTOR:
        c->sem = SEM_TSVECTOR;
        c->op = OP_STRING;
        return;
    case OID_CHAR:
    case OID_NAME:
    case OID_TEXT:
    case OID_BPCHAR:
    case OID_VARCHAR:
    case OID_INET:
    case OID_CIDR:
    case OID_MACADDR:
    case OID_MACADDR8:
    case OID_INT4RANGE:
    case OID_NUMRANGE:
    case OID_TSRANGE:
    case OID_TSTZRANGE:
    case OID_DATERANGE:
    case OID_INT8RANGE:
        c->op = OP_STRING;
        return;
    case OID_BYTEA:
        c->op = OP_BYTEA;
        return;
    case OID_DATE:
        c->op = OP_DATE;
        c->tschema = o->time == DBZ_TIME_CONNECT ? TS_KDATE : TS_DATE;
        return;
    case OID_TIME:
        p = time_precision(typmod);
        if (o->time == DBZ_TIME_CONNECT) {
            c->op = OP_TIME_MS;
            c->tschema = TS_KTIME;
        } else if (o->time == DBZ_TIME_ADAPTIVE && p <= 3) {
            c->op = OP_TIME_MS;
            c->tschema = TS_TIME;
        } else {
            c->op = OP_TIME_US;
            c->tschema = TS_MICRO_TIME;
        }
        return;
    case OID_TIMESTAMP:
        p = time_precision(typmod);
        if (o->time == DBZ_TIME_CONNECT) {
            c->op = OP_TS_MS;
            c->tschema = TS_KTIMESTAMP;
        } else if (p <= 3) {
            c->op = OP_TS_MS;
            c->tschema = TS_TIMESTAMP;
        } else {
            c->op = OP_TS_US;
            c->tschema = TS_MICRO_TS;
        }
        return;
    case OID_TIMETZ:
        c->op = OP_TIMETZ;
        return;
    case OID_TIMESTAMPTZ:
        c->op = OP_TSTZ;
        c->scale = time_precision(typmod);
        return;
    case OID_INTERVAL:
        c->op = o->interval_string ? OP_INTERVAL_ISO : OP_INTERVAL_US;
        return;
    case OID_BIT:
    case OID_VARBIT:
        c->bits = typmod < 0 ? INT32_MAX : typmod;
        c->op = c->bits == 1 ? OP_BOOL : OP_BITS;
        return;
    case OID_POINT:
        c->op = OP_POINT;
        return;
    case OID_LSEG:
    case OID_PATH:
    case OID_BOX:
    case OID_POLYGON:
    case OID_LINE:
    case OID_CIRCLE:
        /* No converter in Debezium: with include.unknown.datatypes, PGobject's text. */
        c->geo = oid == OID_LSEG      ? 's'
                 : oid == OID_PATH    ? 'p'
                 : oid == OID_BOX     ? 'b'
                 : oid == OID_POLYGON ? 'g'
                 : oid == OID_LINE    ? 'l'
                                      : 'c';
        c->op = o->include_unknown ? OP_GEO_TEXT : OP_SKIP;
        return;
    default:
        c->op = OP_SKIP;
        return;
    }
}

/* Extension types Debezium knows by name (their OIDs differ per database). */
static bool classify_named(DbzCol *c, const char *name, const DbzOptions *o)
{
    if (name_is(name, "citext") || name_is(name, "isbn")) {
        c->op = OP_STRING;
    } else if (name_is(name, "ltree")) {
        c->op = OP_STRING;
        c->sem = SEM_LTREE;
    } else if (name_is(name, "hstore")) {
        c->op = o->hstore_map ? OP_HSTORE_MAP : OP_HSTORE_JSON;
    } else if (name_is(name, "geometry") || name_is(name, "geography")) {
        c->op = OP_POSTGIS;
        c->sem = name_is(name, "geometry") ? SEM_GEOMETRY : SEM_GEOGRAPHY;
    } else {
        return false;
    }
    return true;
}

static DbzCol *col_alloc(uint32_t oid, const DbzOptions *o)
{
    DbzCol *c = xcalloc(1, sizeof(*c));

    c->oid = oid;
    c->binary = o->binary;
    return c;
}

/* A scalar (or array element) type. */
static void classify_scalar(DbzCol *c, uint32_t oid, int32_t typmod, char typtype,
                            const char *typname, const char *labels, const DbzOptions *o)
{
    if (typtype == 'e') {
        c->op = OP_STRING;
        c->sem = SEM_ENUM;
        c->enum_labels = labels ? xstrdup(labels) : xstrdup("");
        return;
    }
    if (oid == 0) {
        c->op = OP_STRING; /* a mapping's computed column: its text */
        return;
    }
    if (oid >= 16384 && classify_named(c, typname, o))
        return;
    if (oid < 16384)
        classify_builtin(c, oid, typmod, o);
    if (c->op == OP_SKIP && o->include_unknown)
        c->op = OP_UNKNOWN; /* no converter: the bytes of its text */
}

DbzCol *debezium_col_new(const DbzTypeInfo *t, const DbzOptions *o)
{
    DbzCol *c = col_alloc(t->oid, o);
    uint32_t elem = t->elem_oid ? t->elem_oid : array_element(t->oid);

    if (!elem) {
        if (!other_array(t->oid))
            classify_scalar(c, t->oid, t->typmod, t->typtype, t->typname, t->enum_labels, o);
        return c;
    }
    /* An array: Debezium converts the built-in ones above, and those of enums and of
     * citext, hstore, ltree and PostGIS types; the rest have no converter at all. */
    bool known = array_element(t->oid) != 0 || t->elem_typtype == 'e' ||
                 (elem >= 16384 &&
                  (name_is(t->elem_typname, "citext") || name_is(t->elem_typname, "hstore") ||
                   name_is(t->elem_typname, "ltree") || name_is(t->elem_typname, "geometry") ||
                   name_is(t->elem_typname, "geography")));

    if (!known)
        return c; /* OP_SKIP, whatever include.unknown.datatypes says, like Debezium */
    c->elem = col_alloc(elem, o);
    classify_scalar(c->elem, elem, t->typmod, t->elem_typtype, t->elem_typname, t->enum_labels, o);
    c->op = c->elem->op == OP_SKIP || c->elem->op == OP_UNKNOWN ? OP_SKIP : OP_ARRAY;
    return c;
}

void debezium_col_free(DbzCol *c)
{
    if (!c)
        return;
    debezium_col_free(c->elem);
    free(c->enum_labels);
    free(c);
}

bool debezium_col_skipped(const DbzCol *c)
{
    return c->op == OP_SKIP;
}

/* ---- Kafka Connect schemas (JsonConverter's asJsonSchema) ------------------ */

/* Appends a schema object's tail: optional, name, version, doc, parameters, field. */
static void schema_tail(Buf *out, bool optional, const char *name, int version, const char *doc,
                        const char *params, const char *field)
{
    buf_printf(out, ",\"optional\":%s", optional ? "true" : "false");
    if (name)
        buf_printf(out, ",\"name\":\"%s\"", name);
    if (version)
        buf_printf(out, ",\"version\":%d", version);
    if (doc)
        buf_printf(out, ",\"doc\":\"%s\"", doc);
    if (params)
        buf_printf(out, ",\"parameters\":{%s}", params);
    if (field) {
        buf_puts(out, ",\"field\":");
        debezium_json_string(out, field, strlen(field));
    }
    buf_putc(out, '}');
}

static void simple(Buf *out, const char *type, bool optional, const char *name, int version,
                   const char *params, const char *field)
{
    buf_printf(out, "{\"type\":\"%s\"", type);
    schema_tail(out, optional, name, version, NULL, params, field);
}

static const char *const TIME_NAMES[] = {
    [TS_DATE] = "io.debezium.time.Date",
    [TS_TIME] = "io.debezium.time.Time",
    [TS_MICRO_TIME] = "io.debezium.time.MicroTime",
    [TS_TIMESTAMP] = "io.debezium.time.Timestamp",
    [TS_MICRO_TS] = "io.debezium.time.MicroTimestamp",
    [TS_KDATE] = "org.apache.kafka.connect.data.Date",
    [TS_KTIME] = "org.apache.kafka.connect.data.Time",
    [TS_KTIMESTAMP] = "org.apache.kafka.connect.data.Timestamp",
};

static const char *const SEM_NAMES[] = {
    [SEM_JSON] = "io.debezium.data.Json",         [SEM_XML] = "io.debezium.data.Xml",
    [SEM_UUID] = "io.debezium.data.Uuid",         [SEM_ENUM] = "io.debezium.data.Enum",
    [SEM_TSVECTOR] = "io.debezium.data.TsVector", [SEM_LTREE] = "io.debezium.data.Ltree",
};

void debezium_col_schema(Buf *out, const DbzCol *c, const char *field, bool opt)
{
    Buf params = BUF_INIT;
    const char *bytes_or_string = c->binary == DBZ_BIN_BYTES ? "bytes" : "string";

    switch (c->op) {
    case OP_SKIP:
        break;
    case OP_BOOL:
        simple(out, "boolean", opt, NULL, 0, NULL, field);
        break;
    case OP_INT:
        simple(out,
               c->oid == OID_INT2   ? "int16"
               : c->oid == OID_INT4 ? "int32"
                                    : "int64",
               opt, NULL, 0, NULL, field);
        break;
    case OP_FLOAT:
        simple(out, c->oid == OID_FLOAT4 ? "float" : "double", opt, NULL, 0, NULL, field);
        break;
    case OP_DEC_BYTES:
    case OP_MONEY_BYTES:
        buf_printf(&params, "\"scale\":\"%d\"", (int)c->scale);
        if (c->op == OP_DEC_BYTES)
            buf_printf(&params, ",\"connect.decimal.precision\":\"%d\"", (int)c->precision);
        simple(out, "bytes", opt, "org.apache.kafka.connect.data.Decimal", 1, buf_cstr(&params),
               field);
        break;
    case OP_DEC_VAR:
        buf_puts(out, "{\"type\":\"struct\",\"fields\":[{\"type\":\"int32\",\"optional\":false,"
                      "\"field\":\"scale\"},{\"type\":\"bytes\",\"optional\":false,"
                      "\"field\":\"value\"}]");
        schema_tail(out, opt, "io.debezium.data.VariableScaleDecimal", 1, "Variable scaled decimal",
                    NULL, field);
        break;
    case OP_DEC_DOUBLE:
    case OP_MONEY_DOUBLE:
        simple(out, "double", opt, NULL, 0, NULL, field);
        break;
    case OP_DEC_STRING:
    case OP_MONEY_STRING:
    case OP_TIMETZ:
    case OP_TSTZ:
    case OP_INTERVAL_ISO:
        simple(out, "string", opt,
               c->op == OP_TIMETZ         ? "io.debezium.time.ZonedTime"
               : c->op == OP_TSTZ         ? "io.debezium.time.ZonedTimestamp"
               : c->op == OP_INTERVAL_ISO ? "io.debezium.time.Interval"
                                          : NULL,
               c->op == OP_TIMETZ || c->op == OP_TSTZ || c->op == OP_INTERVAL_ISO, NULL, field);
        break;
    case OP_STRING:
        if (c->sem == SEM_ENUM) {
            buf_puts(&params, "\"allowed\":");
            debezium_json_string(&params, c->enum_labels, strlen(c->enum_labels));
        }
        simple(out, "string", opt, c->sem ? SEM_NAMES[c->sem] : NULL, c->sem ? 1 : 0,
               params.len ? buf_cstr(&params) : NULL, field);
        break;
    case OP_BYTEA:
    case OP_UNKNOWN:
    case OP_GEO_TEXT:
        simple(out, bytes_or_string, opt, NULL, 0, NULL, field);
        break;
    case OP_DATE:
    case OP_TIME_MS:
        simple(out, "int32", opt, TIME_NAMES[c->tschema], 1, NULL, field);
        break;
    case OP_TIME_US:
    case OP_TS_MS:
    case OP_TS_US:
        simple(out, "int64", opt, TIME_NAMES[c->tschema], 1, NULL, field);
        break;
    case OP_INTERVAL_US:
        simple(out, "int64", opt, "io.debezium.time.MicroDuration", 1, NULL, field);
        break;
    case OP_BITS:
        buf_printf(&params, "\"length\":\"%d\"", (int)c->bits);
        simple(out, "bytes", opt, "io.debezium.data.Bits", 1, buf_cstr(&params), field);
        break;
    case OP_POINT:
        buf_puts(out, "{\"type\":\"struct\",\"fields\":["
                      "{\"type\":\"double\",\"optional\":false,\"field\":\"x\"},"
                      "{\"type\":\"double\",\"optional\":false,\"field\":\"y\"},"
                      "{\"type\":\"bytes\",\"optional\":true,\"field\":\"wkb\"},"
                      "{\"type\":\"int32\",\"optional\":true,\"field\":\"srid\"}]");
        schema_tail(out, opt, "io.debezium.data.geometry.Point", 1, "Geometry (POINT)", NULL,
                    field);
        break;
    case OP_POSTGIS:
        buf_puts(out, "{\"type\":\"struct\",\"fields\":["
                      "{\"type\":\"bytes\",\"optional\":false,\"field\":\"wkb\"},"
                      "{\"type\":\"int32\",\"optional\":true,\"field\":\"srid\"}]");
        schema_tail(out, opt,
                    c->sem == SEM_GEOMETRY ? "io.debezium.data.geometry.Geometry"
                                           : "io.debezium.data.geometry.Geography",
                    1, c->sem == SEM_GEOMETRY ? "Geometry" : "Geography", NULL, field);
        break;
    case OP_HSTORE_JSON:
        simple(out, "string", opt, "io.debezium.data.Json", 1, NULL, field);
        break;
    case OP_HSTORE_MAP:
        buf_puts(out, "{\"type\":\"map\",\"keys\":{\"type\":\"string\",\"optional\":false},"
                      "\"values\":{\"type\":\"string\",\"optional\":true}");
        schema_tail(out, opt, NULL, 0, NULL, NULL, field);
        break;
    case OP_ARRAY:
        buf_puts(out, "{\"type\":\"array\",\"items\":");
        debezium_col_schema(out, c->elem, NULL, true);
        schema_tail(out, opt, NULL, 0, NULL, NULL, field);
        break;
    }
    buf_release(&params);
}

DbzOptions debezium_options(const Config *cfg)
{
    DbzOptions o = DBZ_OPTIONS_DEFAULT;
    const char *d = cfg->target.kafka.decimal_mode, *t = cfg->target.kafka.time_mode;
    const char *b = cfg->target.kafka.binary_mode;

    if (d)
        o.decimal = strcmp(d, "double") == 0   ? DBZ_DEC_DOUBLE
                    : strcmp(d, "string") == 0 ? DBZ_DEC_STRING
                                               : DBZ_DEC_PRECISE;
    if (t)
        o.time = strcmp(t, "connect") == 0                      ? DBZ_TIME_CONNECT
                 : strcmp(t, "adaptive_time_microseconds") == 0 ? DBZ_TIME_ADAPTIVE_US
                                                                : DBZ_TIME_ADAPTIVE;
    if (b)
        o.binary = strcmp(b, "base64") == 0            ? DBZ_BIN_BASE64
                   : strcmp(b, "base64-url-safe") == 0 ? DBZ_BIN_BASE64_URL
                   : strcmp(b, "hex") == 0             ? DBZ_BIN_HEX
                                                       : DBZ_BIN_BYTES;
    o.interval_string =
        cfg->target.kafka.interval_mode && strcmp(cfg->target.kafka.interval_mode, "string") == 0;
    o.hstore_map =
        cfg->target.kafka.hstore_mode && strcmp(cfg->target.kafka.hstore_mode, "map") == 0;
    o.include_unknown = cfg->target.kafka.include_unknown;
    o.schemas = cfg->target.kafka.schemas;
    if (cfg->target.kafka.decimal_mode)
        o.money_digits = cfg->target.kafka.money_digits;
    return o;
}

DbzOptions debezium_options_tree(const json_t *section)
{
    DbzOptions o = DBZ_OPTIONS_DEFAULT;
    const char *d = json_string_value(json_object_get(section, "decimal.handling.mode"));
    const char *t = json_string_value(json_object_get(section, "time.precision.mode"));
    const char *b = json_string_value(json_object_get(section, "binary.handling.mode"));
    const char *iv = json_string_value(json_object_get(section, "interval.handling.mode"));
    const char *hs = json_string_value(json_object_get(section, "hstore.handling.mode"));
    const json_t *digits = json_object_get(section, "money.fraction.digits");

    if (d)
        o.decimal = strcmp(d, "double") == 0   ? DBZ_DEC_DOUBLE
                    : strcmp(d, "string") == 0 ? DBZ_DEC_STRING
                                               : DBZ_DEC_PRECISE;
    if (t)
        o.time = strcmp(t, "connect") == 0                      ? DBZ_TIME_CONNECT
                 : strcmp(t, "adaptive_time_microseconds") == 0 ? DBZ_TIME_ADAPTIVE_US
                                                                : DBZ_TIME_ADAPTIVE;
    if (b)
        o.binary = strcmp(b, "base64") == 0            ? DBZ_BIN_BASE64
                   : strcmp(b, "base64-url-safe") == 0 ? DBZ_BIN_BASE64_URL
                   : strcmp(b, "hex") == 0             ? DBZ_BIN_HEX
                                                       : DBZ_BIN_BYTES;
    o.interval_string = iv && strcmp(iv, "string") == 0;
    o.hstore_map = hs && strcmp(hs, "map") == 0;
    o.include_unknown = json_is_true(json_object_get(section, "include.unknown.datatypes"));
    o.schemas = json_is_true(json_object_get(section, "schemas.enable"));
    if (json_is_integer(digits))
        o.money_digits = (int)json_integer_value(digits);
    return o;
}
