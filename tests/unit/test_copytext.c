/*
 * Unit tests for the COPY text-format row parser: separators, the NULL
 * marker versus escaped look-alikes, every escape, and malformed rows.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/copytext.h"
#include "core/error.h"

#include <string.h>

static CopyText ct = COPYTEXT_INIT;

static Tuple parse_ok(const char *row, uint16_t ncols)
{
    Tuple t;

    if (copytext_parse(&ct, row, strlen(row), ncols, &t) != 0)
        fail_msg("rejected \"%s\": %s", row, tm_error());
    assert_int_equal(t.ncols, ncols);
    return t;
}

static void assert_text(const ColValue *v, const char *want, size_t len)
{
    assert_int_equal(v->state, COL_TEXT);
    assert_int_equal(v->len, len);
    assert_memory_equal(v->data, want, len);
}

static void test_plain_fields(void **state)
{
    Tuple t = parse_ok("1\thello\t\t3.5\n", 4);

    (void)state;
    assert_text(&t.cols[0], "1", 1);
    assert_text(&t.cols[1], "hello", 5);
    assert_text(&t.cols[2], "", 0); /* empty string, not NULL */
    assert_text(&t.cols[3], "3.5", 3);
    /* No trailing newline is fine too. */
    t = parse_ok("a\tb", 2);
    assert_text(&t.cols[1], "b", 1);
}

static void test_null_marker(void **state)
{
    Tuple t = parse_ok("\\N\t\\\\N\tN\t\\N\n", 4);

    (void)state;
    assert_int_equal(t.cols[0].state, COL_NULL);
    assert_null(t.cols[0].data);
    assert_text(&t.cols[1], "\\N", 2); /* an escaped backslash then N: the string \N */
    assert_text(&t.cols[2], "N", 1);
    assert_int_equal(t.cols[3].state, COL_NULL);
    /* \N with more in the field is not NULL: \N unescapes to N. */
    t = parse_ok("\\Nx\n", 1);
    assert_text(&t.cols[0], "Nx", 2);
}

static void test_escapes(void **state)
{
    Tuple t = parse_ok("\\b\\f\\n\\r\\t\\v\\\\|\\101\\7\\0101|\\x41\\x4\\x4g\\xg|\\.\\q\n", 1);
    const char want[] = "\b\f\n\r\t\v\\|A\a\0101|A\x04\x04gxg|.q";

    (void)state;
    assert_text(&t.cols[0], want, sizeof(want) - 1);
    /* Octal wraps at a byte like PostgreSQL's (\777 is 0xff). */
    t = parse_ok("\\777\n", 1);
    assert_text(&t.cols[0], "\xff", 1);
    /* A tab or newline inside a value only ever arrives escaped. */
    t = parse_ok("a\\tb\ta\\nb\n", 2);
    assert_text(&t.cols[0], "a\tb", 3);
    assert_text(&t.cols[1], "a\nb", 3);
}

static void test_utf8_passthrough(void **state)
{
    Tuple t = parse_ok("h\xc3\xa9llo\t\xe2\x82\xac\n", 2);

    (void)state;
    assert_text(&t.cols[0], "h\xc3\xa9llo", 6);
    assert_text(&t.cols[1], "\xe2\x82\xac", 3);
}

static void test_wrong_field_count(void **state)
{
    Tuple t;

    (void)state;
    assert_int_equal(copytext_parse(&ct, "1\t2\n", 4, 3, &t), -EPROTO);
    assert_non_null(strstr(tm_error(), "2 fields, expected 3"));
    assert_int_equal(copytext_parse(&ct, "1\t2\t3\n", 6, 2, &t), -EPROTO);
    assert_non_null(strstr(tm_error(), "more than the 2"));
    assert_int_equal(copytext_parse(&ct, "abc\\\n", 5, 1, &t), -EPROTO);
    assert_non_null(strstr(tm_error(), "lone backslash"));
}

static void test_zero_columns(void **state)
{
    Tuple t = parse_ok("\n", 0);

    (void)state;
    assert_int_equal(t.ncols, 0);
    /* One empty column is a different row shape from none. */
    t = parse_ok("\n", 1);
    assert_text(&t.cols[0], "", 0);
}

static void test_reuse_and_growth(void **state)
{
    char big[70000];
    Tuple t;

    (void)state;
    /* Many fields and a long value make the buffers grow between fields; the
     * columns must still point at the right bytes. */
    memset(big, 'x', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    for (int i = 0; i < 200; i += 2)
        big[1000 + i * 100] = '\t';
    int tabs = 0;
    for (size_t i = 0; i < sizeof(big) - 1; i++)
        tabs += big[i] == '\t';
    t = parse_ok(big, (uint16_t)(tabs + 1));
    assert_int_equal(t.cols[0].len, 1000);
    assert_int_equal(t.cols[1].len, 199);
    assert_true(t.cols[tabs].len > 40000);
    assert_int_equal(t.cols[tabs].data[t.cols[tabs].len - 1], 'x');
    /* The next row replaces it. */
    t = parse_ok("\\N\tz", 2);
    assert_int_equal(t.cols[0].state, COL_NULL);
    assert_text(&t.cols[1], "z", 1);
}

static int teardown(void **state)
{
    (void)state;
    copytext_release(&ct);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_fields),      cmocka_unit_test(test_null_marker),
        cmocka_unit_test(test_escapes),           cmocka_unit_test(test_utf8_passthrough),
        cmocka_unit_test(test_wrong_field_count), cmocka_unit_test(test_zero_columns),
        cmocka_unit_test(test_reuse_and_growth),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
