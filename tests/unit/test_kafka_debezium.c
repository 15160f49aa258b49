/*
 * Unit tests for the Debezium rendering of the Kafka sink: every type
 * mapping docs/KAFKA.md promises (from PostgreSQL's text output), keys,
 * envelopes for each op, unchanged-TOAST placeholders, key-change detection
 * and topic names. No broker needed: the renderer is pure.
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

/* Renders text as type oid; fails the test if rendering fails. */
static void expect(uint32_t oid, const char *text, const char *json)
{
    Buf b = BUF_INIT;

    if (debezium_value(&b, oid, text, strlen(text)) != 0)
        fail_msg("oid %u \"%s\" rejected: %s", oid, text, tm_error());
    if (strcmp(buf_cstr(&b), json) != 0)
        fail_msg("oid %u \"%s\": want %s, got %s", oid, text, json, buf_cstr(&b));
    /* Whatever we render must be valid JSON. */
    json_t *v = json_loads(b.data, JSON_DECODE_ANY, NULL);
    if (!v)
        fail_msg("oid %u \"%s\": %s is not JSON", oid, text, b.data);
    json_decref(v);
    buf_release(&b);
}

static void expect_bad(uint32_t oid, const char *text, const char *msg_part)
{
    Buf b = BUF_INIT;

    if (debezium_value(&b, oid, text, strlen(text)) != -EINVAL)
        fail_msg("oid %u \"%s\" accepted as %s", oid, text, buf_cstr(&b));
    if (!strstr(tm_error(), msg_part))
        fail_msg("expected \"%s\" in \"%s\"", msg_part, tm_error());
    buf_release(&b);
}

static void test_integers_and_bool(void **state)
{
    (void)state;
    expect(21, "-32768", "-32768");
    expect(23, "2147483647", "2147483647");
    expect(20, "-9223372036854775808", "-9223372036854775808");
    expect(26, "4294967295", "4294967295"); /* oid */
    expect(16, "t", "true");
    expect(16, "f", "false");
    expect_bad(23, "12a", "an integer");
    expect_bad(23, "", "an integer");
    expect_bad(16, "yes", "a boolean");
}

static void test_floats(void **state)
{
    (void)state;
    expect(701, "3.141592653589793", "3.141592653589793");
    expect(701, "-0", "-0");
    expect(701, "1e+300", "1e+300");
    expect(700, "1.5e-07", "1.5e-07");
    expect(700, "NaN", "\"NaN\"");
    expect(701, "Infinity", "\"Infinity\"");
    expect(701, "-Infinity", "\"-Infinity\"");
    expect_bad(701, "1.", "a float");
}

static void test_numeric_and_money_are_strings(void **state)
{
    (void)state;
    /* Never a float: 0.1 + 0.2 must stay exact, and 40 digits must survive. */
    expect(1700, "0.30000000000000000000", "\"0.30000000000000000000\"");
    expect(1700, "1234567890123456789012345678901234567890.5",
           "\"1234567890123456789012345678901234567890.5\"");
    expect(1700, "NaN", "\"NaN\"");
    expect(1700, "-Infinity", "\"-Infinity\"");
    expect(790, "$1,000.50", "\"$1,000.50\"");
}

static void test_strings(void **state)
{
    (void)state;
    expect(25, "plain", "\"plain\"");
    expect(1043, "quote \" backslash \\ tab \t nl \n cr \r",
           "\"quote \\\" backslash \\\\ tab \\t nl \\n"
           " cr \\r\"");
    expect(25, "\x01\x1f\b\f", "\"\\u0001\\u001f\\b\\f\"");
    expect(25, "h\xc3\xa9llo \xe2\x82\xac", "\"h\xc3\xa9llo \xe2\x82\xac\""); /* UTF-8 as is */
    expect(1042, "ab  ", "\"ab  \"");                                         /* bpchar */
    expect(2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
           "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"");
    expect(114, "{\"a\": [1, 2]}", "\"{\\\"a\\\": [1, 2]}\"");
    expect(3802, "{\"a\": 1}", "\"{\\\"a\\\": 1}\"");
    expect(869, "192.168.0.1/24", "\"192.168.0.1/24\""); /* inet */
    expect(16384, "happy", "\"happy\"");                 /* an enum: unknown OID */
    expect(1560, "101", "\"101\"");                      /* bit */
}

static void test_bytea(void **state)
{
    (void)state;
    expect(17, "\\x", "\"\"");
    expect(17, "\\x00ff10", "\"AP8Q\"");
    expect(17, "\\x6869", "\"aGk=\"");
    expect(17, "\\x686921", "\"aGkh\"");
    expect(17, "\\x68", "\"aA==\"");
    /* bytea_output = escape */
    expect(17, "hi\\\\\\000", "\"aGlcAA==\"");
    expect_bad(17, "\\x0", "a bytea");
    expect_bad(17, "\\xzz", "a bytea");
}

static void test_date(void **state)
{
    (void)state;
    expect(1082, "1970-01-01", "0");
    expect(1082, "1970-01-02", "1");
    expect(1082, "1969-12-31", "-1");
    expect(1082, "2000-02-29", "11016");
    expect(1082, "2024-03-01", "19783");
    expect(1082, "0001-01-01", "-719162");
    expect(1082, "0001-12-31 BC", "-719163"); /* 1 BC is year 0 */
    expect(1082, "10000-01-01", "2932897");
    expect(1082, "infinity", "2147483647");
    expect(1082, "-infinity", "-2147483648");
    expect_bad(1082, "01/02/2024", "DateStyle must be ISO");
    expect_bad(1082, "2024-13-01", "a date");
}

static void test_timestamp(void **state)
{
    (void)state;
    /* MicroTimestamp: microseconds since the epoch, no zone. */
    expect(1114, "1970-01-01 00:00:00", "0");
    expect(1114, "1970-01-01 00:00:01.5", "1500000");
    expect(1114, "2024-01-15 10:20:30.123456", "1705314030123456");
    expect(1114, "1969-12-31 23:59:59.999999", "-1");
    expect(1114, "0001-01-01 00:00:00 BC", "-62167219200000000");
    expect(1114, "infinity", "9223372036854775807");
    expect(1114, "-infinity", "-9223372036854775808");
    expect_bad(1114, "2024-01-15T10:20:30", "DateStyle must be ISO");
    expect_bad(1114, "Mon Jan 15 10:20:30 2024", "DateStyle must be ISO");
}

static void test_timestamptz(void **state)
{
    (void)state;
    /* ZonedTimestamp: ISO-8601 at UTC, fraction trimmed like java.time. */
    expect(1184, "2024-01-15 10:20:30+00", "\"2024-01-15T10:20:30Z\"");
    expect(1184, "2024-01-15 10:20:30.5+00", "\"2024-01-15T10:20:30.5Z\"");
    expect(1184, "2024-01-15 10:20:30.123456+05:30", "\"2024-01-15T04:50:30.123456Z\"");
    expect(1184, "2024-01-01 01:00:00-02", "\"2024-01-01T03:00:00Z\"");
    expect(1184, "2024-01-01 00:30:00+13:45", "\"2023-12-31T10:45:00Z\"");    /* Chatham */
    expect(1184, "1900-01-01 00:00:00+00:09:21", "\"1899-12-31T23:50:39Z\""); /* LMT seconds */
    expect(1184, "0044-03-15 12:00:00+00 BC", "\"-0043-03-15T12:00:00Z\"");
    expect(1184, "infinity", "\"infinity\"");
    expect(1184, "-infinity", "\"-infinity\"");
    expect_bad(1184, "2024-01-15 10:20:30", "a timestamp");
}

static void test_time_and_interval(void **state)
{
    (void)state;
    expect(1083, "00:00:00", "0");
    expect(1083, "10:20:30.25", "37230250000");
    expect(1083, "24:00:00", "86400000000");
    /* ZonedTime at UTC */
    expect(1266, "10:20:30+02", "\"08:20:30Z\"");
    expect(1266, "01:00:00.001-03:30", "\"04:30:00.001Z\"");
    expect(1266, "23:00:00-02", "\"01:00:00Z\"");
    expect_bad(1083, "10:20", "a time");
    /* MicroDuration: a month is 365.25 / 12 days, like Debezium. */
    expect(1186, "00:00:00", "0");
    expect(1186, "1 day", "86400000000");
    expect(1186, "1 mon", "2629800000000");
    expect(1186, "1 year 2 mons 3 days 04:05:06.789",
           "37091106789000"); /* 14 * 2629800 + 3 * 86400 + 14706.789 s */
    expect(1186, "-1 days +02:03:00", "-79020000000");
    expect(1186, "-00:00:01.5", "-1500000");
    expect(1186, "100:00:00", "360000000000");
    expect(1186, "-2 years", "-63115200000000");
    expect_bad(1186, "P1Y2M", "IntervalStyle must be postgres");
    expect_bad(1186, "@ 1 day", "IntervalStyle must be postgres");
}

static void test_arrays(void **state)
{
    (void)state;
    expect(1007, "{1,2,NULL,-4}", "[1,2,null,-4]");
    expect(1007, "{}", "[]");
    expect(1009, "{a,\"b,c\",\"NULL\",NULL,\"q\\\"uote\",\"back\\\\slash\"}",
           "[\"a\",\"b,c\",\"NULL\",null,\"q\\\"uote\",\"back\\\\slash\"]");
    expect(1000, "{t,f}", "[true,false]");
    expect(1022, "{1.5,NaN}", "[1.5,\"NaN\"]");
    expect(1231, "{1.10,2}", "[\"1.10\",\"2\"]");
    expect(1182, "{1970-01-02}", "[1]");
    expect(2951, "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
           "[\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"]");
    /* Not simple: multi-dimensional or with bounds, kept as the literal. */
    expect(1007, "{{1,2},{3,4}}", "\"{{1,2},{3,4}}\"");
    expect(1007, "[0:1]={1,2}", "\"[0:1]={1,2}\"");
    /* An element that does not parse is an error, not a guess. */
    expect_bad(1007, "{1,x}", "an integer");
    /* Arrays of types without a mapping stay strings. */
    expect(1017, "{\"(1,2)\"}", "\"{\\\"(1,2)\\\"}\""); /* point[] */
}

/* ---- rows, keys, envelopes --------------------------------------------- */

static const char *const NAMES[] = {"id", "name", "body", "amount"};
static const uint32_t TYPES[] = {23, 25, 25, 1700};
static const bool KEYS[] = {true, false, false, false};

static ColValue txt(const char *s)
{
    return (ColValue){.state = COL_TEXT, .len = (uint32_t)strlen(s), .data = s};
}

static void test_row_and_key(void **state)
{
    DbzTable *t = debezium_table_new("public", "orders", 4, NAMES, TYPES, KEYS, false);
    ColValue cols[4] = {txt("7"), txt("x"), {.state = COL_UNCHANGED}, {.state = COL_NULL}};
    Tuple row = {4, cols};
    Buf b = BUF_INIT;

    (void)state;
    assert_int_equal(t->nkeys, 1);
    assert_int_equal(debezium_row(&b, t, &row), 0);
    assert_string_equal(buf_cstr(&b), "{\"id\":7,\"name\":\"x\",\"body\":\"" DEBEZIUM_UNAVAILABLE
                                      "\",\"amount\":null}");
    buf_clear(&b);
    assert_int_equal(debezium_key(&b, t, &row), 0);
    assert_string_equal(buf_cstr(&b), "{\"id\":7}");
    /* A row of the wrong width (stale shape) is refused. */
    row.ncols = 3;
    buf_clear(&b);
    assert_int_equal(debezium_key(&b, t, &row), -EPROTO);
    debezium_table_free(t);

    /* Identity FULL: every column is key; without any key the key is null (1). */
    t = debezium_table_new("s", "t\"q", 2, NAMES, TYPES, NULL, true);
    row.ncols = 2;
    buf_clear(&b);
    assert_int_equal(debezium_key(&b, t, &row), 0);
    assert_string_equal(buf_cstr(&b), "{\"id\":7,\"name\":\"x\"}");
    assert_string_equal(t->jtable, "\"schema\":\"s\",\"table\":\"t\\\"q\"");
    debezium_table_free(t);
    t = debezium_table_new("s", "t", 2, NAMES, TYPES, NULL, false);
    buf_clear(&b);
    assert_int_equal(debezium_key(&b, t, &row), 1);
    assert_int_equal(b.len, 0);
    debezium_table_free(t);
    buf_release(&b);
}

static void test_key_changed(void **state)
{
    DbzTable *t = debezium_table_new("public", "orders", 4, NAMES, TYPES, KEYS, false);
    ColValue a[4] = {txt("1"), txt("x"), txt("b"), {.state = COL_NULL}};
    ColValue b[4] = {txt("1"), txt("y"), {.state = COL_UNCHANGED}, txt("2")};
    ColValue c[4] = {txt("10"), txt("x"), txt("b"), {.state = COL_NULL}};
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
    DbzTable *t = debezium_table_new("public", "orders", 4, NAMES, TYPES, KEYS, false);
    ColValue before[4] = {txt("7"), {.state = COL_NULL}, {.state = COL_NULL}, {.state = COL_NULL}};
    ColValue after[4] = {txt("8"), txt("n"), txt("b"), txt("1.50")};
    Tuple tb = {4, before}, ta = {4, after};
    DbzSource src;
    DbzEvent ev = {.op = 'u',
                   .before = &tb,
                   .after = &ta,
                   .has_xid = true,
                   .xid = 4242,
                   .lsn = 0x16B3748,
                   .source_ts_ms = 1700000000123,
                   .ts_ms = 1700000000999};
    Buf b = BUF_INIT;

    (void)state;
    debezium_source_init(&src, "0.1.0", "orders_pipe", "app");
    assert_int_equal(debezium_envelope(&b, t, &src, &ev), 0);
    assert_string_equal(
        buf_cstr(&b),
        "{\"before\":{\"id\":7,\"name\":null,\"body\":null,\"amount\":null},"
        "\"after\":{\"id\":8,\"name\":\"n\",\"body\":\"b\",\"amount\":\"1.50\"},"
        "\"source\":{\"version\":\"0.1.0\",\"connector\":\"tidemark\",\"name\":\"orders_pipe\","
        "\"ts_ms\":1700000000123,\"snapshot\":\"false\",\"db\":\"app\",\"schema\":\"public\","
        "\"table\":\"orders\",\"txId\":4242,\"lsn\":23803720,\"xmin\":null},\"op\":\"u\","
        "\"ts_ms\":1700000000999,\"transaction\":null}");

    /* A snapshot read: no before, no txId, snapshot "true". */
    buf_clear(&b);
    ev = (DbzEvent){.op = 'r', .after = &ta, .snapshot = true, .lsn = 1, .ts_ms = 5};
    assert_int_equal(debezium_envelope(&b, t, &src, &ev), 0);
    json_t *v = parse_json(&b);
    assert_true(json_is_null(json_object_get(v, "before")));
    assert_string_equal(json_string_value(json_object_get(v, "op")), "r");
    json_t *s = json_object_get(v, "source");
    assert_string_equal(json_string_value(json_object_get(s, "snapshot")), "true");
    assert_true(json_is_null(json_object_get(s, "txId")));
    assert_int_equal(json_integer_value(json_object_get(s, "lsn")), 1);
    json_decref(v);

    /* A truncate: neither image. */
    buf_clear(&b);
    ev = (DbzEvent){.op = 't', .has_xid = true, .xid = 1};
    assert_int_equal(debezium_envelope(&b, t, &src, &ev), 0);
    v = parse_json(&b);
    assert_true(json_is_null(json_object_get(v, "before")));
    assert_true(json_is_null(json_object_get(v, "after")));
    assert_string_equal(json_string_value(json_object_get(v, "op")), "t");
    json_decref(v);

    /* A value that cannot be rendered fails the event and names the table. */
    buf_clear(&b);
    after[0] = txt("eight");
    ev = (DbzEvent){.op = 'c', .after = &ta};
    assert_int_equal(debezium_envelope(&b, t, &src, &ev), -EINVAL);
    assert_non_null(strstr(tm_error(), "\"table\":\"orders\""));
    assert_non_null(strstr(tm_error(), "\"eight\""));

    debezium_source_release(&src);
    debezium_table_free(t);
    buf_release(&b);
}

static void test_ms(void **state)
{
    (void)state;
    assert_int_equal(debezium_ms(0), 946684800000LL);
    assert_int_equal(debezium_ms(1999), 946684800001LL);
    assert_int_equal(debezium_ms(-1), 946684799999LL); /* floor, not truncation */
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
    n = kafkasink_topic_name("all", "p", "s", "t");
    assert_string_equal(n, "all");
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
        cmocka_unit_test(test_integers_and_bool),
        cmocka_unit_test(test_floats),
        cmocka_unit_test(test_numeric_and_money_are_strings),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_bytea),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_timestamp),
        cmocka_unit_test(test_timestamptz),
        cmocka_unit_test(test_time_and_interval),
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_row_and_key),
        cmocka_unit_test(test_key_changed),
        cmocka_unit_test(test_envelope),
        cmocka_unit_test(test_ms),
        cmocka_unit_test(test_topic_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
