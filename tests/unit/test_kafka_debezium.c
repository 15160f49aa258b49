/*
 * Unit tests for the Debezium rendering of the Kafka sink, per type and per
 * converter mode. The expected values are Debezium's own: the inputs and
 * expectations of its PostgreSQL connector tests (debezium/debezium,
 * AbstractRecordsProducerTest.java at a1ae7404: schemasAndValuesForNumericType,
 * ...ForBigDecimalEncodedNumericTypes, ...ForStringEncodedNumericTypes,
 * ...ForDoubleEncodedNumericTypes, schemaAndValuesForDateTimeTypes,
 * ...AdaptiveTimeMicroseconds, ...ForBinTypes, ...ForMoneyTypes,
 * schemaAndValueForByteaBytes/Hex/Base64, schemaAndValueForUnknownColumn*,
 * ...ForJsonEncodedHStoreType*), written as the JSON Kafka Connect's
 * JsonConverter makes of them (bytes as base64, Java doubles). The input
 * text is what PostgreSQL prints for Debezium's INSERT statements. Also:
 * keys, envelopes, Connect schemas, key changes, topic names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/error.h"
#include "sinks/kafka/debezium.h"
#include "sinks/kafka/kafkasink.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------- */

static DbzOptions opts(void)
{
    return DBZ_OPTIONS_DEFAULT;
}

static DbzTypeInfo T(uint32_t oid, int32_t typmod)
{
    return (DbzTypeInfo){.oid = oid, .typmod = typmod};
}

/* numeric(p,s)'s typmod */
static int32_t NUM(int p, int s)
{
    return ((p << 16) | (s & 0x7ff)) + 4;
}

static void expect_with(DbzOptions o, DbzTypeInfo ti, const char *text, const char *json)
{
    DbzCol *c = debezium_col_new(&ti, &o);
    Buf b = BUF_INIT;

    if (debezium_col_skipped(c))
        fail_msg("oid %u: no rendering (skipped)", ti.oid);
    if (debezium_value(&b, c, text, strlen(text)) != 0)
        fail_msg("oid %u \"%s\" rejected: %s", ti.oid, text, tm_error());
    if (strcmp(buf_cstr(&b), json) != 0)
        fail_msg("oid %u \"%s\": want %s, got %s", ti.oid, text, json, buf_cstr(&b));
    json_t *v = json_loads(b.data, JSON_DECODE_ANY, NULL);
    if (!v)
        fail_msg("oid %u \"%s\": %s is not JSON", ti.oid, text, b.data);
    json_decref(v);
    debezium_col_free(c);
    buf_release(&b);
}

static void expect(DbzTypeInfo ti, const char *text, const char *json)
{
    expect_with(opts(), ti, text, json);
}

static void expect_bad_with(DbzOptions o, DbzTypeInfo ti, const char *text, const char *msg_part)
{
    DbzCol *c = debezium_col_new(&ti, &o);
    Buf b = BUF_INIT;

    if (debezium_value(&b, c, text, strlen(text)) != -EINVAL)
        fail_msg("oid %u \"%s\" accepted as %s", ti.oid, text, buf_cstr(&b));
    if (!strstr(tm_error(), msg_part))
        fail_msg("expected \"%s\" in \"%s\"", msg_part, tm_error());
    debezium_col_free(c);
    buf_release(&b);
}

static void expect_bad(DbzTypeInfo ti, const char *text, const char *msg_part)
{
    expect_bad_with(opts(), ti, text, msg_part);
}

static bool skipped_with(DbzOptions o, DbzTypeInfo ti)
{
    DbzCol *c = debezium_col_new(&ti, &o);
    bool s = debezium_col_skipped(c);

    debezium_col_free(c);
    return s;
}

static void expect_schema(DbzOptions o, DbzTypeInfo ti, bool optional, const char *want)
{
    DbzCol *c = debezium_col_new(&ti, &o);
    Buf b = BUF_INIT;

    debezium_col_schema(&b, c, "f", optional);
    if (strcmp(buf_cstr(&b), want) != 0)
        fail_msg("schema of oid %u: want %s, got %s", ti.oid, want, buf_cstr(&b));
    debezium_col_free(c);
    buf_release(&b);
}

/* ---- numbers (schemasAndValuesForNumericType) -------------------------- */

static void test_numeric_types(void **state)
{
    (void)state;
    expect(T(21, -1), "1", "1");                         /* si */
    expect(T(23, -1), "123456", "123456");               /* i */
    expect(T(20, -1), "1234567890123", "1234567890123"); /* bi */
    expect(T(700, -1), "3.3", "3.3");                    /* r: 3.3f */
    expect(T(701, -1), "4.44", "4.44");                  /* db */
    expect(T(700, -1), "3", "3");                        /* r_int: 3.0f, the same JSON number */
    expect(T(701, -1), "4", "4");                        /* db_int */
    expect(T(16, -1), "t", "true");                      /* b */
    expect(T(26, -1), "4000000000", "4000000000");       /* o: oid is int64 */
    expect(T(700, -1), "NaN", "\"NaN\"");                /* r_nan: Jackson quotes NaN */
    expect(T(701, -1), "Infinity", "\"Infinity\"");      /* db_pinf */
    expect(T(701, -1), "-Infinity", "\"-Infinity\"");    /* db_ninf */
    expect(T(701, -1), "1e+300", "1e+300");
    expect_bad(T(23, -1), "12a", "an integer");
    expect_bad(T(16, -1), "yes", "a boolean");
    expect_bad(T(701, -1), "1.", "a float");
}

/* numeric_decimal_table (d numeric(3,2), dzs (4,0), dvs numeric, d_nn (3,2), n (6,4), nzs (4,0),
 * nvs numeric) */
static void test_decimal_precise(void **state)
{
    (void)state;
    /* schemasAndValuesForBigDecimalEncodedNumericTypes: Decimal bytes at the column scale */
    expect(T(1700, NUM(3, 2)), "1.10", "\"bg==\"");    /* d 1.10 = unscaled 110 */
    expect(T(1700, NUM(4, 0)), "10", "\"Cg==\"");      /* dzs 10 */
    expect(T(1700, NUM(3, 2)), "3.30", "\"AUo=\"");    /* d_nn 3.30 */
    expect(T(1700, NUM(6, 4)), "22.2200", "\"A2P4\""); /* n 22.2200 */
    expect(T(1700, NUM(4, 0)), "22", "\"Fg==\"");      /* nzs 22 (22.2 rounded by PostgreSQL) */
    expect(T(1700, NUM(3, 2)), "1.00", "\"ZA==\"");    /* d_int */
    expect(T(1700, NUM(6, 4)), "22.0000", "\"A1tg\""); /* n_int */
    /* VariableScaleDecimal for numeric without a typmod: {scale, value} */
    expect(T(1700, -1), "10.1111", "{\"scale\":4,\"value\":\"AYr3\"}"); /* dvs */
    expect(T(1700, -1), "22.2222", "{\"scale\":4,\"value\":\"A2QO\"}"); /* nvs */
    expect(T(1700, -1), "10", "{\"scale\":0,\"value\":\"Cg==\"}");      /* dvs_int */
    expect(T(1700, -1), "22", "{\"scale\":0,\"value\":\"Fg==\"}");      /* nvs_int */
    /* trailing zeros stripped, a negative scale back to 0; two's complement */
    expect(T(1700, -1), "10.10", "{\"scale\":1,\"value\":\"ZQ==\"}");
    expect(T(1700, -1), "100", "{\"scale\":0,\"value\":\"ZA==\"}");
    expect(T(1700, -1), "0.000", "{\"scale\":0,\"value\":\"AA==\"}");
    expect(T(1700, -1), "-1.28", "{\"scale\":2,\"value\":\"gA==\"}");
    expect(T(1700, NUM(4, 1)), "-12.9", "\"/38=\"");
    /* numeric(2,-3) (PostgreSQL 15): the scale is negative */
    expect(T(1700, NUM(2, -3)), "12000", "\"DA==\"");
    /* Debezium stops on NaN/Infinity in precise mode; so do we, saying what to do */
    expect_bad(T(1700, NUM(3, 2)), "NaN", "decimal.handling.mode");
    expect_bad(T(1700, -1), "Infinity", "decimal.handling.mode");
}

static void test_decimal_string(void **state)
{
    DbzOptions o = opts();

    (void)state;
    o.decimal = DBZ_DEC_STRING; /* schemasAndValuesForStringEncodedNumericTypes */
    expect_with(o, T(1700, NUM(3, 2)), "1.10", "\"1.10\"");
    expect_with(o, T(1700, NUM(4, 0)), "10", "\"10\"");
    expect_with(o, T(1700, -1), "10.1111", "\"10.1111\"");
    expect_with(o, T(1700, NUM(6, 4)), "22.2200", "\"22.2200\"");
    expect_with(o, T(1700, NUM(4, 0)), "22", "\"22\"");
    expect_with(o, T(1700, -1), "22.2222", "\"22.2222\"");
    expect_with(o, T(1700, NUM(3, 2)), "1.00", "\"1.00\"");
    expect_with(o, T(1700, NUM(6, 4)), "22.0000", "\"22.0000\"");
    expect_with(o, T(1700, NUM(3, 2)), "NaN", "\"NAN\"");
    /* ...WithInfinity: SpecialValueDecimal's names */
    expect_with(o, T(1700, -1), "Infinity", "\"POSITIVE_INFINITY\"");
    expect_with(o, T(1700, -1), "-Infinity", "\"NEGATIVE_INFINITY\"");
    /* BigDecimal.toString(): exponent notation below 1e-6, and for negative scales */
    expect_with(o, T(1700, -1), "0.0000001", "\"1E-7\"");
    expect_with(o, T(1700, NUM(20, 10)), "0.0000000000", "\"0E-10\"");
    expect_with(o, T(1700, NUM(20, 8)), "-0.00000012", "\"-1.2E-7\"");
    expect_with(o, T(1700, -1), "0.000001", "\"0.000001\"");
    expect_with(o, T(1700, NUM(2, -3)), "12000", "\"1.2E+4\"");
    expect_with(o, T(1700, -1), "1234567890123456789012345678901234567890.5",
                "\"1234567890123456789012345678901234567890.5\"");
}

static void test_decimal_double(void **state)
{
    DbzOptions o = opts();

    (void)state;
    o.decimal = DBZ_DEC_DOUBLE; /* schemasAndValuesForDoubleEncodedNumericTypes */
    expect_with(o, T(1700, NUM(3, 2)), "1.10", "1.1");
    expect_with(o, T(1700, NUM(4, 0)), "10", "10.0");
    expect_with(o, T(1700, -1), "10.1111", "10.1111");
    expect_with(o, T(1700, NUM(6, 4)), "22.2200", "22.22");
    expect_with(o, T(1700, NUM(4, 0)), "22", "22.0");
    expect_with(o, T(1700, -1), "22.2222", "22.2222");
    expect_with(o, T(1700, -1), "NaN", "\"NaN\"");
    expect_with(o, T(1700, -1), "-Infinity", "\"-Infinity\"");
    /* Java's Double.toString */
    expect_with(o, T(1700, -1), "12345678.9", "1.23456789E7");
    expect_with(o, T(1700, -1), "0.0001", "1.0E-4");
    expect_with(o, T(1700, -1), "0.001", "0.001");
    expect_with(o, T(1700, -1), "-0", "0.0");
}

/* cash_table (csh money): '$1234.11', '($1234.11)', printed by PostgreSQL as below */
static void test_money(void **state)
{
    DbzOptions o = opts();

    (void)state;
    expect(T(790, -1), "$1,234.11", "\"AeIT\"");  /* Decimal(2) 1234.11 */
    expect(T(790, -1), "-$1,234.11", "\"/h3t\""); /* -1234.11 */
    expect(T(790, -1), "$0.00", "\"AA==\"");
    o.money_digits = 3;
    expect_with(o, T(790, -1), "$1.50", "\"Bdw=\""); /* 1.500 */
    o = opts();
    o.decimal = DBZ_DEC_STRING; /* String.valueOf(double) */
    expect_with(o, T(790, -1), "$1,234.11", "\"1234.11\"");
    expect_with(o, T(790, -1), "$1,000.00", "\"1000.0\"");
    expect_with(o, T(790, -1), "$12,345,678.90", "\"1.23456789E7\"");
    o.decimal = DBZ_DEC_DOUBLE;
    expect_with(o, T(790, -1), "-$1,234.11", "-1234.11");
    expect_bad(T(790, -1), "1.234,11 EUR", "a money");
}

/* ---- strings and bytes ------------------------------------------------- */

static void test_strings(void **state)
{
    (void)state;
    /* schemasAndValuesForStringTypes / TextTypes / network address types */
    expect(T(1043, 6), "\xc5\xbe\xc5\xa1", "\"\xc5\xbe\xc5\xa1\""); /* vc: UTF-8 as is */
    expect(T(1042, 8), "cdef", "\"cdef\"");
    expect(T(25, -1), "some text", "\"some text\"");
    expect(T(114, -1), "{\"bar\": \"baz\"}", "\"{\\\"bar\\\": \\\"baz\\\"}\"");  /* j */
    expect(T(3802, -1), "{\"bar\": \"baz\"}", "\"{\\\"bar\\\": \\\"baz\\\"}\""); /* jb */
    expect(T(142, -1), "<foo>bar</foo><foo>bar</foo>", "\"<foo>bar</foo><foo>bar</foo>\"");
    expect(T(2950, -1), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
           "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"");
    expect(T(869, -1), "192.168.2.0/12", "\"192.168.2.0/12\"");
    expect(T(650, -1), "192.168.100.128/25", "\"192.168.100.128/25\"");
    expect(T(829, -1), "08:00:2b:01:02:03", "\"08:00:2b:01:02:03\"");
    expect(T(774, -1), "08:00:2b:01:02:03:04:05", "\"08:00:2b:01:02:03:04:05\"");
    expect(T(3908, -1), "[\"2019-03-31 15:30:00\",infinity)",
           "\"[\\\"2019-03-31 15:30:00\\\",infinity)\""); /* unbounded_exclusive_tsrange */
    expect(T(3912, -1), "[2019-03-31,2019-04-30)", "\"[2019-03-31,2019-04-30)\"");
    expect(T(3904, -1), "[1000,6000)", "\"[1000,6000)\"");
    expect(T(3906, -1), "[5.3,6.3)", "\"[5.3,6.3)\"");
    expect(T(3614, -1), "'a' 'b'", "\"'a' 'b'\""); /* tsvector */
    expect(T(19, -1), "pg_class", "\"pg_class\""); /* name */
    expect(T(18, -1), "a", "\"a\"");               /* "char" */
    expect(T(3926, -1), "[1000000,6000000)", "\"[1000000,6000000)\"");
    expect(T(3910, -1), "[\"2017-06-05 11:29:12.549426+00\",)",
           "\"[\\\"2017-06-05 11:29:12.549426+00\\\",)\"");
    expect(T(25, -1), "quote \" backslash \\ tab \t nl \n \x01",
           "\"quote \\\" backslash \\\\ tab \\t nl \\n \\u0001\"");
    /* an enum, and extension types by name */
    expect((DbzTypeInfo){.oid = 16500, .typmod = -1, .typtype = 'e', .enum_labels = "sad,happy"},
           "happy", "\"happy\"");
    expect((DbzTypeInfo){.oid = 16501, .typmod = -1, .typtype = 'b', .typname = "citext"},
           "Hello World", "\"Hello World\"");
    expect((DbzTypeInfo){.oid = 16502, .typmod = -1, .typtype = 'b', .typname = "ltree"},
           "Top.Collections.Pictures", "\"Top.Collections.Pictures\"");
}

static void test_bytea_modes(void **state)
{
    DbzOptions o = opts();

    (void)state;
    /* schemaAndValueForByteaBytes / Hex / Base64 / Base64UrlSafe: '\001\002\003' */
    expect(T(17, -1), "\\x010203", "\"AQID\"");
    expect(T(1001, -1), "{\"\\\\x000102\",\"\\\\x030405\"}", "[\"AAEC\",\"AwQF\"]");
    expect(T(17, -1), "\\x", "\"\"");
    expect(T(17, -1), "hi\\\\\\000", "\"aGlcAA==\""); /* bytea_output = escape */
    o.binary = DBZ_BIN_HEX;
    expect_with(o, T(17, -1), "\\x010203", "\"010203\"");
    expect_with(o, T(1001, -1), "{\"\\\\x000102\",\"\\\\x030405\"}", "[\"000102\",\"030405\"]");
    o.binary = DBZ_BIN_BASE64;
    expect_with(o, T(17, -1), "\\x010203", "\"AQID\"");
    o.binary = DBZ_BIN_BASE64_URL;
    expect_with(o, T(17, -1), "\\xfbff", "\"-_8=\"");
    expect_bad(T(17, -1), "\\x0", "a bytea");
    expect_bad(T(17, -1), "\\xzz", "a bytea");
}

/* bitbin_table: bol bit(1), bs bit(2), bs7 bit(7), bv bit(2), bv2 bit(24), bvl bit(64), varbits */
static void test_bits(void **state)
{
    (void)state;
    expect(T(1560, 1), "0", "false");
    expect(T(1560, 1), "1", "true");
    expect(T(1562, 1), "1", "true");                             /* varbit(1) is a boolean too */
    expect(T(1560, 2), "11", "\"Aw==\"");                        /* [3] */
    expect(T(1560, 7), "1000000", "\"QA==\"");                   /* '1'::bit(7) = [64] */
    expect(T(1560, 2), "00", "\"\"");                            /* [] */
    expect(T(1560, 24), "000000110000001000000001", "\"AQID\""); /* [1,2,3] */
    expect(T(1560, 64), "1000000000000000000000000000000000000000000000000000000000000000",
           "\"AAAAAAAAAIA=\"");             /* [0,0,0,0,0,0,0,-128] */
    expect(T(1562, -1), "101", "\"BQ==\""); /* bvunlimited1 [5] */
    expect(T(1562, -1), "111011010001000110000001000000001", "\"AQIj2gE=\""); /* [1,2,35,-38,1] */
}

/* ---- dates and times (schemaAndValuesForDateTimeTypes) ----------------- */

static void test_time_adaptive(void **state)
{
    (void)state;
    expect(T(1114, -1), "2016-11-04 13:51:30.123456", "1478267490123456"); /* ts MicroTimestamp */
    expect(T(1114, -1), "1936-10-25 22:10:12.608", "-1047174587392000");   /* tsneg */
    expect(T(1114, 3), "2016-11-04 13:51:30.123", "1478267490123");        /* ts_ms Timestamp */
    expect(T(1114, 6), "2016-11-04 13:51:30.123456", "1478267490123456");  /* ts_us */
    expect(T(1114, 0), "2016-11-04 13:51:30", "1478267490000");            /* (0) is millis */
    expect(T(1184, -1), "2016-11-04 11:51:30.123456+00", "\"2016-11-04T11:51:30.123456Z\"");
    expect(T(1082, -1), "2016-11-04", "17109");     /* date */
    expect(T(1083, -1), "13:51:30", "49890000000"); /* ti MicroTime */
    expect(T(1083, 3), "13:51:30.123", "49890123"); /* tip Time */
    expect(T(1083, 0), "13:51:30", "49890000");
    expect(T(1083, -1), "24:00:00", "86400000000");                            /* ttf */
    expect(T(1266, -1), "13:51:30.123789+02", "\"11:51:30.123789Z\"");         /* ttz */
    expect(T(1266, 3), "13:51:30.123+02", "\"11:51:30.123Z\"");                /* tptz */
    expect(T(1186, -1), "1 year 2 mons 3 days 04:05:06.78", "37091106780000"); /* it */
    expect(T(1114, -1), "21016-11-04 13:51:30.123456", "601060312290123456");  /* ts_large */
    expect(T(1114, 3), "21016-11-04 13:51:30.124", "601060312290124");         /* ts_large_ms */
    expect(T(1184, -1), "21016-11-04 06:51:30.123456+00", "\"+21016-11-04T06:51:30.123456Z\"");
    expect(T(1114, -1), "294247-01-01 23:59:59.999999", "9223371331199999999"); /* ts_max */
    expect(T(1184, -1), "294247-01-01 23:59:59.999999+00", "\"+294247-01-01T23:59:59.999999Z\"");
    expect(T(1184, -1), "4714-12-31 23:59:59.999999+00 BC", "\"-4713-12-31T23:59:59.999999Z\"");
    expect(T(1114, -1), "infinity", "9223372036825200000");   /* ts_pinf */
    expect(T(1114, -1), "-infinity", "-9223372036832400000"); /* ts_ninf */
    expect(T(1114, 3), "infinity", "9223372036825200");
    expect(T(1184, -1), "infinity", "\"infinity\""); /* tz_pinf */
    expect(T(1184, -1), "-infinity", "\"-infinity\"");
    expect(T(1184, -1), "21016-11-04 06:51:30+00",
           "\"+21016-11-04T06:51:30.000000Z\""); /* tz_zero */
    /* fraction width: the column's precision (timestamptz(3)), trimmed for (0) */
    expect(T(1184, 3), "2016-11-04 11:51:30.1+00", "\"2016-11-04T11:51:30.100Z\"");
    expect(T(1184, 0), "2016-11-04 11:51:30+00", "\"2016-11-04T11:51:30Z\"");
    expect(T(1184, -1), "2024-01-01 00:30:00+13:45", "\"2023-12-31T10:45:00.000000Z\"");
    expect(T(1184, -1), "1900-01-01 00:00:00+00:09:21", "\"1899-12-31T23:50:39.000000Z\"");
    /* dates: days; the infinities as the epoch days of Debezium's LocalDates for them */
    expect(T(1082, -1), "0001-12-31 BC", "-719163");
    expect(T(1082, -1), "infinity", "-2147472693");
    expect(T(1082, -1), "-infinity", "-2147472692");
    expect_bad(T(1082, -1), "01/02/2024", "DateStyle must be ISO");
    expect_bad(T(1114, -1), "2024-01-15T10:20:30", "DateStyle must be ISO");
    expect_bad(T(1184, -1), "2024-01-15 10:20:30", "a timestamptz");
}

static void test_time_modes(void **state)
{
    DbzOptions o = opts();

    (void)state;
    /* schemaAndValuesForDateTimeTypesAdaptiveTimeMicroseconds: every time in micros */
    o.time = DBZ_TIME_ADAPTIVE_US;
    expect_with(o, T(1083, 3), "13:51:30.123", "49890123000");
    expect_with(o, T(1083, -1), "13:51:30", "49890000000");
    expect_with(o, T(1114, 3), "2016-11-04 13:51:30.123", "1478267490123"); /* still millis */
    expect_with(o, T(1114, -1), "2016-11-04 13:51:30.123456", "1478267490123456");
    /* connect: Kafka Connect's Date (days), Time and Timestamp (milliseconds) */
    o.time = DBZ_TIME_CONNECT;
    expect_with(o, T(1082, -1), "2016-11-04", "17109");
    expect_with(o, T(1083, -1), "13:51:30.123456", "49890123");
    expect_with(o, T(1114, -1), "2016-11-04 13:51:30.123456", "1478267490123");
    expect_with(o, T(1114, -1), "1969-12-31 23:59:59.9995", "-1");
    expect_with(o, T(1184, -1), "2016-11-04 11:51:30.123456+00", "\"2016-11-04T11:51:30.123456Z\"");
}

static void test_interval_modes(void **state)
{
    DbzOptions o = opts();

    (void)state;
    /* MicroDuration: a month is 365.25 / 12 days, in Java's double arithmetic */
    expect(T(1186, -1), "00:00:00", "0");
    expect(T(1186, -1), "1 day", "86400000000");
    expect(T(1186, -1), "1 mon", "2629800000000");
    expect(T(1186, -1), "-1 days +02:03:00", "-79020000000");
    expect(T(1186, -1), "-00:00:01.5", "-1500000");
    expect(T(1186, -1), "100:00:00", "360000000000");
    expect_bad(T(1186, -1), "P1Y2M", "IntervalStyle must be postgres");
    /* schemaAndValuesForIntervalAsString */
    o.interval_string = true;
    expect_with(o, T(1186, -1), "1 year 2 mons 3 days 04:05:06.78", "\"P1Y2M3DT4H5M6.78S\"");
    expect_with(o, T(1186, -1), "1 day", "\"P0Y0M1DT0H0M0S\"");
    expect_with(o, T(1186, -1), "-1 days +02:03:00", "\"P0Y0M-1DT2H3M0S\"");
    expect_with(o, T(1186, -1), "-00:00:01.5", "\"P0Y0M0DT0H0M-1.5S\"");
    expect_with(o, T(1186, -1), "00:00:00.0005", "\"P0Y0M0DT0H0M0.0005S\"");
}

/* ---- geometry, hstore, unknown types ------------------------------------ */

static void test_point_and_postgis(void **state)
{
    (void)state;
    /* schemaAndValuesForGeomTypes: '(1,1)'::point */
    expect(T(600, -1), "(1,1)",
           "{\"x\":1.0,\"y\":1.0,\"wkb\":\"AQEAAAAAAAAAAADwPwAAAAAAAPA/\",\"srid\":null}");
    /* schemaAndValuesForPostgisTypes: 'SRID=3187;POINT(174.9479 -36.7208)'::geometry */
    expect((DbzTypeInfo){.oid = 17000, .typmod = -1, .typtype = 'b', .typname = "geometry"},
           "0101000020730C00001C7C613255DE6540787AA52C435C42C0",
           "{\"wkb\":\"AQEAACBzDAAAHHxhMlXeZUB4eqUsQ1xCwA==\",\"srid\":3187}");
}

static void test_hstore(void **state)
{
    DbzOptions o = opts();
    DbzTypeInfo hs = {.oid = 16390, .typmod = -1, .typtype = 'b', .typname = "hstore"};

    (void)state;
    /* schemaAndValueFieldForJsonEncodedHStoreType* */
    expect(hs, "\"key\"=>\"val\"", "\"{\\\"key\\\":\\\"val\\\"}\"");
    expect(hs, "\"key1\"=>\"val1\", \"key2\"=>\"val2\", \"key3\"=>\"val3\"",
           "\"{\\\"key1\\\":\\\"val1\\\",\\\"key2\\\":\\\"val2\\\",\\\"key3\\\":\\\"val3\\\"}\"");
    expect(hs, "\"key1\"=>\"val1\", \"key2\"=>NULL",
           "\"{\\\"key1\\\":\\\"val1\\\",\\\"key2\\\":null}\"");
    /* HashMap order: key5 before key4, as Debezium's expectation says */
    expect(hs, "\"key4\"=>\"val4\", \"key5\"=>NULL",
           "\"{\\\"key5\\\":null,\\\"key4\\\":\\\"val4\\\"}\"");
    expect(hs, "\"key 2\"=>\" ##123 78\", \"key_#1\"=>\"val 1\"",
           "\"{\\\"key_#1\\\":\\\"val 1\\\",\\\"key 2\\\":\\\" ##123 78\\\"}\"");
    /* an hstore[] */
    expect((DbzTypeInfo){.oid = 16395,
                         .typmod = -1,
                         .typtype = 'b',
                         .typname = "_hstore",
                         .elem_oid = 16390,
                         .elem_typtype = 'b',
                         .elem_typname = "hstore"},
           "{\"\\\"key4\\\"=>\\\"val4\\\", \\\"key5\\\"=>NULL\",\"\\\"key6\\\"=>\\\"val6\\\"\"}",
           "[\"{\\\"key5\\\":null,\\\"key4\\\":\\\"val4\\\"}\",\"{\\\"key6\\\":\\\"val6\\\"}\"]");
    /* schemaAndValueFieldForMapEncodedHStoreType: a JSON object */
    o.hstore_map = true;
    expect_with(o, hs, "\"key\"=>\"val\"", "{\"key\":\"val\"}");
}

static void test_unknown_types(void **state)
{
    DbzOptions o = opts();

    (void)state;
    /* No converter: left out of events by default (include.unknown.datatypes=false) */
    assert_true(skipped_with(o, T(718, -1)));  /* circle */
    assert_true(skipped_with(o, T(3220, -1))); /* pg_lsn */
    assert_true(skipped_with(o, T(1017, -1))); /* point[]: no converter even with the flag */
    assert_true(skipped_with(o, (DbzTypeInfo){.oid = 16600, .typmod = -1, .typtype = 'c'}));
    assert_false(skipped_with(o, T(600, -1)));
    /* include.unknown.datatypes: schemaAndValueForUnknownColumnBytes/Base64/Base64UrlSafe/Hex */
    o.include_unknown = true;
    expect_with(o, T(718, -1), "<(10,20),10>", "\"PCgxMC4wLDIwLjApLDEwLjA+\"");
    o.binary = DBZ_BIN_BASE64_URL;
    expect_with(o, T(718, -1), "<(10,20),10>", "\"PCgxMC4wLDIwLjApLDEwLjA-\"");
    o.binary = DBZ_BIN_HEX;
    expect_with(o, T(718, -1), "<(10,20),10>", "\"3c2831302e302c32302e30292c31302e303e\"");
    o.binary = DBZ_BIN_BYTES;
    expect_with(o, T(3220, -1), "0/16B3748", "\"MC8xNkIzNzQ4\"");
    assert_true(skipped_with(o, T(1017, -1)));
}

/* ---- arrays (schemasAndValuesForArrayTypes) ------------------------------ */

static void test_arrays(void **state)
{
    (void)state;
    expect(T(1007, -1), "{1,2,3}", "[1,2,3]");
    expect(T(1016, -1), "{1550166368505037572}", "[1550166368505037572]");
    expect(T(1009, -1), "{one,two,three}", "[\"one\",\"two\",\"three\"]");
    expect(T(1014, 14), "{\"cone      \",\"ctwo      \",\"cthree    \"}",
           "[\"cone      \",\"ctwo      \",\"cthree    \"]");
    expect(T(1182, -1), "{2016-11-04,2016-11-05,2016-11-06}", "[17109,17110,17111]");
    expect(T(1231, NUM(10, 2)), "{1.20,3.40,5.60}", "[\"eA==\",\"AVQ=\",\"AjA=\"]");
    expect(T(1231, -1), "{1.1,2.22,3.333}",
           "[{\"scale\":1,\"value\":\"Cw==\"},{\"scale\":2,\"value\":\"AN4=\"},"
           "{\"scale\":3,\"value\":\"DQU=\"}]");
    expect(T(1041, -1), "{192.168.2.0/12,192.168.1.1,192.168.0.2/1}",
           "[\"192.168.2.0/12\",\"192.168.1.1\",\"192.168.0.2/1\"]");
    expect(T(3909, -1), "{\"[\\\"2019-03-31 15:30:00\\\",infinity)\"}",
           "[\"[\\\"2019-03-31 15:30:00\\\",infinity)\"]"); /* range arrays */
    expect(T(3905, -1), "{\"[1,6)\",\"[1,4)\"}", "[\"[1,6)\",\"[1,4)\"]");
    expect(T(2951, -1), "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
           "[\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"]");
    expect(T(199, -1), "{\"{\\\"bar\\\": \\\"baz\\\"}\"}", "[\"{\\\"bar\\\": \\\"baz\\\"}\"]");
    expect(T(1028, -1), "{3,4000000000}", "[3,4000000000]");
    expect(T(1007, -1), "{1,NULL,3}", "[1,null,3]");
    expect(T(1009, -1), "{\"NULL\",NULL}", "[\"NULL\",null]");
    expect(T(1007, -1), "{}", "[]");
    /* schemaAndValuesForTimeArrayTypes */
    expect(T(1183, -1), "{00:01:02,01:02:03}", "[62000000,3723000000]");
    expect(T(1270, -1), "{13:51:02+02,14:51:03+02}", "[\"11:51:02Z\",\"12:51:03Z\"]");
    expect(T(1115, -1), "{\"2020-04-01 00:01:02\",\"2020-04-01 01:02:03\"}",
           "[1585699262000000,1585702923000000]");
    expect(T(1185, -1), "{\"2020-04-01 11:51:02+00\",\"2020-04-01 12:51:03+00\"}",
           "[\"2020-04-01T11:51:02.000000Z\",\"2020-04-01T12:51:03.000000Z\"]");
    /* citext[] and ltree[] (extension types, by name) */
    expect((DbzTypeInfo){.oid = 16503,
                         .typmod = -1,
                         .typtype = 'b',
                         .elem_oid = 16501,
                         .elem_typtype = 'b',
                         .elem_typname = "citext"},
           "{four,five}", "[\"four\",\"five\"]");
    expect((DbzTypeInfo){.oid = 16504,
                         .typmod = -1,
                         .typtype = 'b',
                         .elem_oid = 16502,
                         .elem_typtype = 'b',
                         .elem_typname = "ltree"},
           "{Ship.Frigate,Ship.Destroyer}", "[\"Ship.Frigate\",\"Ship.Destroyer\"]");
    /* an enum[] */
    expect((DbzTypeInfo){.oid = 16501,
                         .typmod = -1,
                         .typtype = 'b',
                         .elem_oid = 16500,
                         .elem_typtype = 'e',
                         .enum_labels = "sad,happy"},
           "{sad,happy}", "[\"sad\",\"happy\"]");
    /* nested or with bounds: no JSON array to make, the literal */
    expect(T(1007, -1), "{{1,2},{3,4}}", "\"{{1,2},{3,4}}\"");
    expect(T(1007, -1), "[0:1]={1,2}", "\"[0:1]={1,2}\"");
    expect_bad(T(1007, -1), "{1,x}", "an integer");
}

/* ---- Connect schemas ------------------------------------------------------ */

static void test_schemas(void **state)
{
    DbzOptions o = opts();

    (void)state;
    expect_schema(o, T(23, -1), false, "{\"type\":\"int32\",\"optional\":false,\"field\":\"f\"}");
    expect_schema(o, T(21, -1), true, "{\"type\":\"int16\",\"optional\":true,\"field\":\"f\"}");
    expect_schema(o, T(1700, NUM(3, 2)), true,
                  "{\"type\":\"bytes\",\"optional\":true,\"name\":"
                  "\"org.apache.kafka.connect.data.Decimal\",\"version\":1,\"parameters\":"
                  "{\"scale\":\"2\",\"connect.decimal.precision\":\"3\"},\"field\":\"f\"}");
    expect_schema(
        o, T(1700, -1), true,
        "{\"type\":\"struct\",\"fields\":[{\"type\":\"int32\",\"optional\":false,"
        "\"field\":\"scale\"},{\"type\":\"bytes\",\"optional\":false,\"field\":"
        "\"value\"}],\"optional\":true,\"name\":\"io.debezium.data.VariableScaleDecimal\","
        "\"version\":1,\"doc\":\"Variable scaled decimal\",\"field\":\"f\"}");
    expect_schema(o, T(1083, 3), true,
                  "{\"type\":\"int32\",\"optional\":true,\"name\":\"io.debezium.time.Time\","
                  "\"version\":1,\"field\":\"f\"}");
    expect_schema(o, T(1114, -1), true,
                  "{\"type\":\"int64\",\"optional\":true,\"name\":"
                  "\"io.debezium.time.MicroTimestamp\",\"version\":1,\"field\":\"f\"}");
    expect_schema(o, T(1560, 3), true,
                  "{\"type\":\"bytes\",\"optional\":true,\"name\":\"io.debezium.data.Bits\","
                  "\"version\":1,\"parameters\":{\"length\":\"3\"},\"field\":\"f\"}");
    expect_schema(
        o, (DbzTypeInfo){.oid = 16500, .typmod = -1, .typtype = 'e', .enum_labels = "a,b"}, true,
        "{\"type\":\"string\",\"optional\":true,\"name\":\"io.debezium.data.Enum\","
        "\"version\":1,\"parameters\":{\"allowed\":\"a,b\"},\"field\":\"f\"}");
    expect_schema(o, T(1007, -1), true,
                  "{\"type\":\"array\",\"items\":{\"type\":\"int32\",\"optional\":true},"
                  "\"optional\":true,\"field\":\"f\"}");
    o.time = DBZ_TIME_CONNECT;
    expect_schema(o, T(1082, -1), false,
                  "{\"type\":\"int32\",\"optional\":false,\"name\":"
                  "\"org.apache.kafka.connect.data.Date\",\"version\":1,\"field\":\"f\"}");
    o.binary = DBZ_BIN_HEX;
    expect_schema(o, T(17, -1), true, "{\"type\":\"string\",\"optional\":true,\"field\":\"f\"}");
}

/* ---- rows, keys, envelopes --------------------------------------------- */

static ColValue txt(const char *s)
{
    return (ColValue){.state = COL_TEXT, .len = (uint32_t)strlen(s), .data = s};
}

static DbzTable *orders(DbzOptions o, bool with_key)
{
    DbzColumnSpec cols[4] = {
        {"id", T(23, -1), with_key, true},
        {"name", T(25, -1), false, false},
        {"body", T(17, -1), false, false},
        {"amount", T(1700, NUM(10, 2)), false, false},
    };

    return debezium_table_new("pipe", "public", "orders", 4, cols, &o);
}

static void test_row_key_and_placeholders(void **state)
{
    DbzTable *t = orders(opts(), true);
    ColValue cols[4] = {txt("7"), txt("x"), {.state = COL_UNCHANGED}, {.state = COL_NULL}};
    Tuple row = {4, cols};
    Buf b = BUF_INIT;

    (void)state;
    assert_int_equal(t->nkeys, 1);
    assert_int_equal(debezium_row(&b, t, &row), 0);
    /* unchanged TOAST: the placeholder, as bytes for a bytea column */
    assert_string_equal(buf_cstr(&b), "{\"id\":7,\"name\":\"x\",\"body\":"
                                      "\"X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==\","
                                      "\"amount\":null}");
    buf_clear(&b);
    cols[1].state = COL_UNCHANGED;
    cols[2] = txt("\\x00");
    assert_int_equal(debezium_row(&b, t, &row), 0);
    assert_string_equal(buf_cstr(&b), "{\"id\":7,\"name\":\"" DEBEZIUM_UNAVAILABLE
                                      "\",\"body\":\"AA==\",\"amount\":null}");
    buf_clear(&b);
    assert_int_equal(debezium_key(&b, t, &row), 0);
    assert_string_equal(buf_cstr(&b), "{\"id\":7}");
    /* A row of the wrong width (stale shape) is refused. */
    row.ncols = 3;
    buf_clear(&b);
    assert_int_equal(debezium_key(&b, t, &row), -EPROTO);
    debezium_table_free(t);
    /* No key columns: the message key is null (1). */
    t = orders(opts(), false);
    row.ncols = 4;
    buf_clear(&b);
    assert_int_equal(debezium_key(&b, t, &row), 1);
    assert_int_equal(b.len, 0);
    debezium_table_free(t);
    /* A skipped (unknown) column is left out of rows. */
    DbzColumnSpec two[2] = {{"id", T(23, -1), true, true}, {"c", T(718, -1), false, false}};
    DbzOptions o = opts();
    t = debezium_table_new("pipe", "s", "t", 2, two, &o);
    row.ncols = 2;
    cols[1] = txt("<(1,2),3>");
    buf_clear(&b);
    assert_int_equal(debezium_row(&b, t, &row), 0);
    assert_string_equal(buf_cstr(&b), "{\"id\":7}");
    debezium_table_free(t);
    /* A value that cannot be rendered names the column and the table. */
    t = orders(opts(), true);
    row.ncols = 4;
    cols[0] = txt("seven");
    buf_clear(&b);
    assert_int_equal(debezium_row(&b, t, &row), -EINVAL);
    assert_non_null(strstr(tm_error(), "public.orders"));
    assert_non_null(strstr(tm_error(), "column id"));
    debezium_table_free(t);
    buf_release(&b);
}

static void test_key_changed(void **state)
{
    DbzTable *t = orders(opts(), true);
    ColValue a[4] = {txt("1"), txt("x"), txt("\\x00"), {.state = COL_NULL}};
    ColValue b[4] = {txt("1"), txt("y"), {.state = COL_UNCHANGED}, txt("2")};
    ColValue c[4] = {txt("10"), txt("x"), txt("\\x00"), {.state = COL_NULL}};
    Tuple ta = {4, a}, tb = {4, b}, tc = {4, c};

    (void)state;
    assert_false(debezium_key_changed(t, &ta, &tb)); /* only non-key columns differ */
    assert_true(debezium_key_changed(t, &ta, &tc));
    c[0] = (ColValue){.state = COL_NULL};
    assert_true(debezium_key_changed(t, &ta, &tc));
    debezium_table_free(t);
}

static json_t *parse_json(const Buf *b)
{
    json_error_t err;
    json_t *v = json_loadb(b->data, b->len, 0, &err);

    if (!v)
        fail_msg("not JSON (%s): %.*s", err.text, (int)b->len, b->data);
    return v;
}

static void test_envelope(void **state)
{
    DbzTable *t = orders(opts(), true);
    ColValue before[4] = {txt("7"), {.state = COL_NULL}, {.state = COL_NULL}, {.state = COL_NULL}};
    ColValue after[4] = {txt("8"), txt("n"), txt("\\x62"), txt("1.50")};
    Tuple tb = {4, before}, ta = {4, after};
    DbzSource src;
    DbzEvent ev = {.op = 'u',
                   .before = &tb,
                   .after = &ta,
                   .has_xid = true,
                   .xid = 4242,
                   .lsn = 0x16B3750,
                   .last_commit = 0x16B3700,
                   .source_ts_us = 1700000000123456,
                   .ts_ns = 1700000000999888777};
    Buf b = BUF_INIT;

    (void)state;
    debezium_source_init(&src, "0.1.0", "orders_pipe", "app");
    assert_int_equal(debezium_envelope(&b, t, &src, &ev), 0);
    assert_string_equal(
        buf_cstr(&b),
        "{\"before\":{\"id\":7,\"name\":null,\"body\":null,\"amount\":null},"
        "\"after\":{\"id\":8,\"name\":\"n\",\"body\":\"Yg==\",\"amount\":\"AJY=\"},"
        "\"source\":{\"version\":\"0.1.0\",\"connector\":\"tidemark\",\"name\":\"orders_pipe\","
        "\"ts_ms\":1700000000123,\"snapshot\":\"false\",\"db\":\"app\","
        "\"sequence\":\"[\\\"23803648\\\",\\\"23803728\\\"]\",\"ts_us\":1700000000123456,"
        "\"ts_ns\":1700000000123456000,\"schema\":\"public\",\"table\":\"orders\","
        "\"txId\":4242,\"lsn\":23803728,\"xmin\":null},\"op\":\"u\",\"ts_ms\":1700000000999,"
        "\"ts_us\":1700000000999888,\"ts_ns\":1700000000999888777,\"transaction\":null}");

    /* A snapshot read: no before, no txId, the marker, a null last commit. */
    buf_clear(&b);
    ev = (DbzEvent){.op = 'r', .after = &ta, .snapshot = "first", .lsn = 1, .ts_ns = 5000000};
    assert_int_equal(debezium_envelope(&b, t, &src, &ev), 0);
    json_t *v = parse_json(&b);
    assert_true(json_is_null(json_object_get(v, "before")));
    assert_string_equal(json_string_value(json_object_get(v, "op")), "r");
    json_t *s = json_object_get(v, "source");
    assert_string_equal(json_string_value(json_object_get(s, "snapshot")), "first");
    assert_string_equal(json_string_value(json_object_get(s, "sequence")), "[null,\"1\"]");
    assert_true(json_is_null(json_object_get(s, "txId")));
    assert_int_equal(json_integer_value(json_object_get(v, "ts_ms")), 5);
    json_decref(v);
    debezium_source_release(&src);
    debezium_table_free(t);
    buf_release(&b);
}

static void test_schemas_enabled(void **state)
{
    DbzOptions o = opts();
    DbzTable *t;
    ColValue cols[4] = {txt("7"), txt("x"), {.state = COL_NULL}, txt("1.50")};
    Tuple row = {4, cols};
    DbzSource src;
    DbzEvent ev = {.op = 'c', .after = &row, .has_xid = true, .xid = 1, .lsn = 2};
    Buf b = BUF_INIT;

    (void)state;
    o.schemas = true;
    t = orders(o, true);
    debezium_source_init(&src, "0.1.0", "p", "app");
    assert_int_equal(debezium_key(&b, t, &row), 0);
    assert_string_equal(buf_cstr(&b),
                        "{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":\"int32\","
                        "\"optional\":false,\"field\":\"id\"}],\"optional\":false,"
                        "\"name\":\"pipe.public.orders.Key\"},\"payload\":{\"id\":7}}");
    buf_clear(&b);
    assert_int_equal(debezium_key_payload(&b, t, &row), 0);
    assert_string_equal(buf_cstr(&b), "{\"id\":7}");
    buf_clear(&b);
    assert_int_equal(debezium_envelope(&b, t, &src, &ev), 0);
    json_t *v = parse_json(&b);
    json_t *schema = json_object_get(v, "schema"), *payload = json_object_get(v, "payload");
    assert_string_equal(json_string_value(json_object_get(schema, "name")),
                        "pipe.public.orders.Envelope");
    json_t *fields = json_object_get(schema, "fields");
    const char *names[] = {"before", "after", "source", "op",
                           "ts_ms",  "ts_us", "ts_ns",  "transaction"};
    assert_int_equal(json_array_size(fields), 8);
    for (size_t i = 0; i < 8; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(fields, i), "field")),
                            names[i]);
    json_t *after = json_array_get(fields, 1);
    assert_string_equal(json_string_value(json_object_get(after, "name")),
                        "pipe.public.orders.Value");
    json_t *amount = json_array_get(json_object_get(after, "fields"), 3);
    assert_string_equal(json_string_value(json_object_get(amount, "name")),
                        "org.apache.kafka.connect.data.Decimal");
    assert_true(json_is_true(json_object_get(amount, "optional")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(fields, 2), "name")),
                        "io.debezium.connector.postgresql.Source");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(payload, "after"), "amount")), "AJY=");
    json_decref(v);
    debezium_source_release(&src);
    debezium_table_free(t);
    buf_release(&b);
}

static void test_topic_names(void **state)
{
    char *n;

    (void)state;
    n = kafkasink_topic_name(NULL, "cdc", "public", "orders");
    assert_string_equal(n, "cdc.public.orders");
    free(n);
    n = kafkasink_topic_name("{prefix}-{table}", "p", "s", "Ordre Lignes$é");
    assert_string_equal(n, "p-Ordre_Lignes___"); /* é is two bytes */
    free(n);
    char long_name[300];
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    assert_null(kafkasink_topic_name(NULL, "p", "s", long_name));
    assert_non_null(strstr(tm_error(), "is not valid"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numeric_types),
        cmocka_unit_test(test_decimal_precise),
        cmocka_unit_test(test_decimal_string),
        cmocka_unit_test(test_decimal_double),
        cmocka_unit_test(test_money),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_bytea_modes),
        cmocka_unit_test(test_bits),
        cmocka_unit_test(test_time_adaptive),
        cmocka_unit_test(test_time_modes),
        cmocka_unit_test(test_interval_modes),
        cmocka_unit_test(test_point_and_postgis),
        cmocka_unit_test(test_hstore),
        cmocka_unit_test(test_unknown_types),
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_schemas),
        cmocka_unit_test(test_row_key_and_placeholders),
        cmocka_unit_test(test_key_changed),
        cmocka_unit_test(test_envelope),
        cmocka_unit_test(test_schemas_enabled),
        cmocka_unit_test(test_topic_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
