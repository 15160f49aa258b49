/*
 * Prometheus text format writers: family headers, sample lines with and
 * without labels, number spelling (integers whole, NaN/+Inf/-Inf, fractions
 * that round-trip) and escaping of label values and help text, so a table
 * named with a quote or a newline cannot break the scrape.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/buf.h"
#include "daemon/prom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_family(void **state)
{
    Buf b = BUF_INIT;

    (void)state;
    prom_family(&b, "tidemark_transactions_total", "counter", "Source transactions applied.");
    assert_string_equal(buf_cstr(&b), "# HELP tidemark_transactions_total Source transactions"
                                      " applied.\n# TYPE tidemark_transactions_total counter\n");
    buf_clear(&b);
    prom_family(&b, "x", "gauge", "a \\ b\nc");
    assert_string_equal(buf_cstr(&b), "# HELP x a \\\\ b\\nc\n# TYPE x gauge\n");
    buf_clear(&b);
    prom_family(&b, "y", "untyped", NULL);
    assert_string_equal(buf_cstr(&b), "# HELP y \n# TYPE y untyped\n");
    buf_release(&b);
}

static void test_sample_values(void **state)
{
    Buf b = BUF_INIT;

    (void)state;
    prom_sample(&b, "up", NULL, 1);
    prom_sample(&b, "up", "", 0);
    prom_sample(&b, "n", NULL, -42);
    prom_sample(&b, "big", NULL, 123456789012345.0);
    prom_sample(&b, "lsn", NULL, 9007199254740991.0); /* 2^53 - 1: still exact */
    prom_sample(&b, "frac", NULL, 0.1);
    prom_sample(&b, "third", NULL, 1.0 / 3.0);
    prom_sample(&b, "nan", NULL, NAN);
    prom_sample(&b, "pinf", NULL, INFINITY);
    prom_sample(&b, "ninf", NULL, -INFINITY);
    prom_sample(&b, "huge", NULL, 1e300);
    assert_string_equal(buf_cstr(&b), "up 1\n"
                                      "up 0\n"
                                      "n -42\n"
                                      "big 123456789012345\n"
                                      "lsn 9007199254740991\n"
                                      "frac 0.1\n"
                                      "third 0.33333333333333331\n"
                                      "nan NaN\n"
                                      "pinf +Inf\n"
                                      "ninf -Inf\n"
                                      "huge 1e+300\n");
    /* Whatever digits are chosen, the text reads back as the same double. */
    assert_true(strtod("0.33333333333333331", NULL) == 1.0 / 3.0);
    buf_release(&b);
}

static void test_labels(void **state)
{
    Buf b = BUF_INIT, l = BUF_INIT;

    (void)state;
    prom_label(&l, "table", "public.t");
    prom_label(&l, "op", "insert");
    prom_sample(&b, "tidemark_changes_applied_total", buf_cstr(&l), 7);
    assert_string_equal(buf_cstr(&b),
                        "tidemark_changes_applied_total{table=\"public.t\",op=\"insert\"} 7\n");
    buf_clear(&l);
    prom_label(&l, "table", "\"Odd\" \\ name\nx");
    assert_string_equal(buf_cstr(&l), "table=\"\\\"Odd\\\" \\\\ name\\nx\"");
    buf_release(&l);
    buf_release(&b);
}

static void test_label_escape(void **state)
{
    Buf b = BUF_INIT;

    (void)state;
    prom_label_escape(&b, "plain");
    assert_string_equal(buf_cstr(&b), "plain");
    buf_clear(&b);
    prom_label_escape(&b, "a\"b\\c\nd");
    assert_string_equal(buf_cstr(&b), "a\\\"b\\\\c\\nd");
    buf_clear(&b);
    prom_label_escape(&b, "");
    assert_int_equal(b.len, 0);
    prom_label_escape(&b, "\xc3\xa9t\xc3\xa9"); /* UTF-8 passes through */
    assert_string_equal(buf_cstr(&b), "\xc3\xa9t\xc3\xa9");
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_family),
        cmocka_unit_test(test_sample_values),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_label_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
