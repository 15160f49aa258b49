/*
 * Unit tests for sqlname_parse: PostgreSQL's folding and quoting rules, and
 * the strictness that turns a config typo into an error naming the input;
 * and for the array literals of names sent as one text[] parameter.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/sqlname.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect_name(const char *input, const char *schema, const char *name)
{
    char *s = NULL, *n = NULL;

    if (sqlname_parse(input, &s, &n) != 0)
        fail_msg("sqlname_parse(%s) failed: %s", input, tm_error());
    assert_string_equal(s, schema);
    assert_string_equal(n, name);
    free(s);
    free(n);
}

/* The message must name the input and say what is wrong. */
static void expect_error(const char *input, const char *what)
{
    char *s = NULL, *n = NULL;
    char head[512];

    tm_error_clear();
    assert_int_equal(sqlname_parse(input, &s, &n), -EINVAL);
    assert_null(s);
    assert_null(n);
    snprintf(head, sizeof(head), "invalid table name \"%s\": ", input);
    if (strncmp(tm_error(), head, strlen(head)) != 0 || !strstr(tm_error(), what))
        fail_msg("input %s: unexpected message: %s", input, tm_error());
}

static void test_unqualified_is_public(void **state)
{
    (void)state;
    expect_name("customers", "public", "customers");
    expect_name("_t1$x", "public", "_t1$x");
}

static void test_qualified(void **state)
{
    (void)state;
    expect_name("sales.orders", "sales", "orders");
    expect_name("public.customers", "public", "customers");
}

static void test_unquoted_folds(void **state)
{
    (void)state;
    expect_name("Public.Customers", "public", "customers");
    expect_name("ORDERS", "public", "orders");
    /* Only ASCII folds, as in PostgreSQL with a UTF-8 database. */
    expect_name("Caf\xc3\xa9", "public", "caf\xc3\xa9");
}

static void test_quoted_keeps_case_and_spaces(void **state)
{
    (void)state;
    expect_name("\"Sales Dept\".\"Order Lines\"", "Sales Dept", "Order Lines");
    expect_name("\"Orders\"", "public", "Orders");
    expect_name("Sales.\"Order.Lines\"", "sales", "Order.Lines");
    expect_name("\"a.b\".c", "a.b", "c");
}

static void test_doubled_quote(void **state)
{
    (void)state;
    expect_name("\"a\"\"b\"", "public", "a\"b");
    expect_name("\"\"\"\"", "public", "\"");
}

static void test_length_limit(void **state)
{
    char ok[64], bad[65], quoted[70];

    (void)state;
    memset(ok, 'a', 63);
    ok[63] = '\0';
    expect_name(ok, "public", ok);

    memset(bad, 'a', 64);
    bad[64] = '\0';
    expect_error(bad, "longer than 63 bytes");

    snprintf(quoted, sizeof(quoted), "\"%s\"", bad);
    expect_error(quoted, "longer than 63 bytes");
}

static void test_whitespace_rejected(void **state)
{
    (void)state;
    expect_error("public. orders", "whitespace");
    expect_error("public .orders", "whitespace");
    expect_error(" orders", "whitespace");
    expect_error("orders ", "whitespace");
    expect_error("order lines", "whitespace");
}

static void test_empty_parts(void **state)
{
    (void)state;
    expect_error(".orders", "empty name part");
    expect_error("public.", "empty name part");
    expect_error("a..b", "empty name part");
    expect_error("\"\"", "empty quoted name");
    expect_error("\"\".orders", "empty quoted name");

    char *s = NULL, *n = NULL;

    assert_int_equal(sqlname_parse("", &s, &n), -EINVAL);
    assert_non_null(strstr(tm_error(), "empty"));
}

static void test_unterminated_quote(void **state)
{
    (void)state;
    expect_error("\"orders", "unterminated");
    expect_error("public.\"Order", "unterminated");
    expect_error("\"a\"\"", "unterminated");
}

static void test_too_many_parts(void **state)
{
    (void)state;
    expect_error("db.public.orders", "too many dots");
    expect_error("a.b.", "too many dots");
}

static void test_stray_characters(void **state)
{
    (void)state;
    expect_error("order-lines", "unexpected character '-'");
    expect_error("orders;", "unexpected character ';'");
    expect_error("\"a\"b", "unexpected character 'b'");
    expect_error("a\"b\"", "unexpected character '\"'");
    expect_error("1orders", "cannot start with a digit");
    expect_error("public.1orders", "cannot start with a digit");
}

/* Schema names travel to the server as one text[] literal: quotes,
 * backslashes, commas and braces in a name must come back as written. */
static void test_array_literal_of_names(void **state)
{
    Buf b = BUF_INIT;

    (void)state;
    buf_putc(&b, '{');
    buf_put_array_elem(&b, "public");
    buf_put_array_elem(&b, "Sales \"Dept\"");
    buf_put_array_elem(&b, "a\\b,{c}");
    buf_put_array_elem(&b, "");
    buf_putc(&b, '}');
    assert_string_equal(buf_cstr(&b), "{\"public\",\"Sales \\\"Dept\\\"\",\"a\\\\b,{c}\",\"\"}");
    buf_clear(&b);
    buf_putc(&b, '{');
    buf_putc(&b, '}');
    assert_string_equal(buf_cstr(&b), "{}");
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unqualified_is_public),
        cmocka_unit_test(test_qualified),
        cmocka_unit_test(test_unquoted_folds),
        cmocka_unit_test(test_quoted_keeps_case_and_spaces),
        cmocka_unit_test(test_doubled_quote),
        cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_whitespace_rejected),
        cmocka_unit_test(test_empty_parts),
        cmocka_unit_test(test_unterminated_quote),
        cmocka_unit_test(test_too_many_parts),
        cmocka_unit_test(test_stray_characters),
        cmocka_unit_test(test_array_literal_of_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
