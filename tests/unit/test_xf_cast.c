/*
 * Unit tests for casts and the exact decimal: canonical output, range
 * limits, every boolean spelling, uuid forms, numeric rounding modes and
 * digit limits, ISO dates and timestamps.
 */
#include "xf_test.h"

#include "core/transform/decimal.h"

static void test_int(void **state)
{
    Arena *a = xt_a();

    (void)state;
    XT_OK("42", xf_cast(XF_T_INT, S(" +0042 "), a, &out));
    XT_OK("-7", xf_cast(XF_T_INT, S("-7"), a, &out));
    XT_OK("0", xf_cast(XF_T_INT, S("-0"), a, &out));
    XT_OK("2147483647", xf_cast(XF_T_INT, S("2147483647"), a, &out));
    XT_OK("-2147483648", xf_cast(XF_T_INT, S("-2147483648"), a, &out));
    XT_ERR("out of range for int", xf_cast(XF_T_INT, S("2147483648"), a, &out));
    XT_ERR("not an integer", xf_cast(XF_T_INT, S("12a"), a, &out));
    XT_ERR("'1.5'", xf_cast(XF_T_INT, S("1.5"), a, &out));
    XT_ERR("not an integer", xf_cast(XF_T_INT, S(""), a, &out));
    XT_ERR("not an integer", xf_cast(XF_T_INT, S("-"), a, &out));
    XT_OK("9223372036854775807", xf_cast(XF_T_BIGINT, S("9223372036854775807"), a, &out));
    XT_OK("-9223372036854775808", xf_cast(XF_T_BIGINT, S("-9223372036854775808"), a, &out));
    XT_ERR("out of range", xf_cast(XF_T_BIGINT, S("9223372036854775808"), a, &out));
    XT_ERR("out of range", xf_cast(XF_T_BIGINT, S("99999999999999999999999"), a, &out));
    XT_OK(NULL, xf_cast(XF_T_INT, XF_NULL, a, &out));
}

static void test_boolean(void **state)
{
    const char *yes[] = {"t", "TRUE", "Yes", "y", "on", "1", " true "};
    const char *no[] = {"f", "False", "NO", "n", "off", "0"};
    Arena *a = xt_a();

    (void)state;
    for (size_t i = 0; i < sizeof(yes) / sizeof(*yes); i++)
        XT_OK("true", xf_cast(XF_T_BOOLEAN, XF_CSTR(yes[i]), a, &out));
    for (size_t i = 0; i < sizeof(no) / sizeof(*no); i++)
        XT_OK("false", xf_cast(XF_T_BOOLEAN, XF_CSTR(no[i]), a, &out));
    XT_ERR("not a boolean", xf_cast(XF_T_BOOLEAN, S("2"), a, &out));
    XT_ERR("not a boolean", xf_cast(XF_T_BOOLEAN, S("yess"), a, &out));
}

static void test_uuid(void **state)
{
    Arena *a = xt_a();

    (void)state;
    XT_OK("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
          xf_cast(XF_T_UUID, S("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), a, &out));
    XT_OK("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
          xf_cast(XF_T_UUID, S("{a0eebc999c0b4ef8bb6d6bb9bd380a11}"), a, &out));
    XT_ERR("not a uuid", xf_cast(XF_T_UUID, S("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1"), a, &out));
    XT_ERR("not a uuid", xf_cast(XF_T_UUID, S("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g"), a, &out));
    XT_ERR("not a uuid", xf_cast(XF_T_UUID, S("a0e-ebc99-9c0b-4ef8-bb6d6bb9bd380a11"), a, &out));
}

static void test_numeric(void **state)
{
    Arena *a = xt_a();

    (void)state;
    XT_OK("1.50", xf_cast(XF_T_NUMERIC, S("001.50"), a, &out));
    XT_OK("-0.05", xf_cast(XF_T_NUMERIC, S("-.05"), a, &out));
    XT_OK("1500", xf_cast(XF_T_NUMERIC, S("1.5e3"), a, &out));
    XT_OK("0.0015", xf_cast(XF_T_NUMERIC, S("1.5E-3"), a, &out));
    XT_OK("0", xf_cast(XF_T_NUMERIC, S("-0"), a, &out));
    XT_OK("NaN", xf_cast(XF_T_NUMERIC, S("nan"), a, &out));
    XT_ERR("not a number", xf_cast(XF_T_NUMERIC, S("1.2.3"), a, &out));
    XT_ERR("not a number", xf_cast(XF_T_NUMERIC, S("1e"), a, &out));
    XT_ERR("not a number", xf_cast(XF_T_NUMERIC, S("."), a, &out));
    /* 38 digits fit exactly; 77 do not. */
    XT_OK("12345678901234567890123456789012345678",
          xf_cast(XF_T_NUMERIC, S("12345678901234567890123456789012345678"), a, &out));
    XT_ERR(
        "significant digits",
        xf_cast(XF_T_NUMERIC,
                S("12345678901234567890123456789012345678901234567890123456789012345678901234567"),
                a, &out));
    /* numeric(p, s) with each rounding mode */
    XT_OK("2.35", xf_cast_numeric(S("2.345"), 0, 2, XF_ROUND_HALF_UP, a, &out));
    XT_OK("2.34", xf_cast_numeric(S("2.345"), 0, 2, XF_ROUND_HALF_EVEN, a, &out));
    XT_OK("2.36", xf_cast_numeric(S("2.355"), 0, 2, XF_ROUND_HALF_EVEN, a, &out));
    XT_OK("2.35", xf_cast_numeric(S("2.3451"), 0, 2, XF_ROUND_HALF_EVEN, a, &out));
    XT_OK("2.34", xf_cast_numeric(S("2.349"), 0, 2, XF_ROUND_DOWN, a, &out));
    XT_OK("2.35", xf_cast_numeric(S("2.341"), 0, 2, XF_ROUND_UP, a, &out));
    XT_OK("-2.35", xf_cast_numeric(S("-2.345"), 0, 2, XF_ROUND_HALF_UP, a, &out));
    XT_OK("-2.35", xf_cast_numeric(S("-2.341"), 0, 2, XF_ROUND_UP, a, &out));
    XT_OK("1000.00", xf_cast_numeric(S("999.999"), 0, 2, XF_ROUND_HALF_UP, a, &out));
    XT_OK("0.00", xf_cast_numeric(S("0.004"), 0, 2, XF_ROUND_HALF_UP, a, &out));
    XT_OK("0.01", xf_cast_numeric(S("0.001"), 0, 2, XF_ROUND_UP, a, &out));
    XT_OK("0.00", xf_cast_numeric(S("-0.001"), 0, 2, XF_ROUND_HALF_UP, a, &out)); /* no -0.00 */
    XT_OK("3", xf_cast_numeric(S("2.5"), 0, 0, XF_ROUND_HALF_UP, a, &out));
    XT_OK("2", xf_cast_numeric(S("2.5"), 0, 0, XF_ROUND_HALF_EVEN, a, &out));
    XT_OK("5.000", xf_cast_numeric(S("5"), 0, 3, XF_ROUND_HALF_UP, a, &out));
    XT_OK("123.45", xf_cast_numeric(S("123.45"), 5, 2, XF_ROUND_HALF_UP, a, &out));
    XT_ERR("does not fit numeric(5,2)",
           xf_cast_numeric(S("1234.5"), 5, 2, XF_ROUND_HALF_UP, a, &out));
}

static void test_decimal_mul(void **state)
{
    XfDec x, y, r;
    char buf[XF_DEC_TEXT_MAX];

    (void)state;
    assert_int_equal(xf_dec_parse("0.1", 3, &x), 0);
    assert_int_equal(xf_dec_parse("3", 1, &y), 0);
    assert_int_equal(xf_dec_mul(&x, &y, &r), 0);
    xf_dec_format(&r, buf);
    assert_string_equal(buf, "0.3"); /* not 0.30000000000000004 */
    /* 38 digits × 38 digits is exact. */
    assert_int_equal(xf_dec_parse("99999999999999999999999999999999999999", 38, &x), 0);
    assert_int_equal(xf_dec_mul(&x, &x, &r), 0);
    xf_dec_format(&r, buf);
    assert_string_equal(
        buf, "9999999999999999999999999999999999999800000000000000000000000000000000000001");
    assert_int_equal(xf_dec_parse("-1.5", 4, &x), 0);
    assert_int_equal(xf_dec_parse("-2", 2, &y), 0);
    assert_int_equal(xf_dec_mul(&x, &y, &r), 0);
    xf_dec_format(&r, buf);
    assert_string_equal(buf, "3.0");
    assert_int_equal(xf_round_from_name("half_even"), XF_ROUND_HALF_EVEN);
    assert_int_equal(xf_round_from_name("bankers"), -1);
}

static void test_date_casts(void **state)
{
    Arena *a = xt_a();

    (void)state;
    XT_OK("2020-02-29", xf_cast(XF_T_DATE, S("2020-02-29"), a, &out));
    XT_ERR("not a valid date", xf_cast(XF_T_DATE, S("2019-02-29"), a, &out));
    XT_ERR("not a valid date", xf_cast(XF_T_DATE, S("2020-13-01"), a, &out));
    XT_ERR("not a valid date", xf_cast(XF_T_DATE, S("03/04/2020"), a, &out));
    XT_OK("2020-03-04 05:06:07", xf_cast(XF_T_TIMESTAMP, S("2020-03-04T05:06:07"), a, &out));
    XT_OK("2020-03-04 05:06:00", xf_cast(XF_T_TIMESTAMP, S("2020-03-04 05:06"), a, &out));
    XT_OK("2020-03-04 00:00:00", xf_cast(XF_T_TIMESTAMP, S("2020-03-04"), a, &out));
    XT_OK("2020-03-04 05:06:07.25", xf_cast(XF_T_TIMESTAMP, S("2020-03-04 05:06:07.250"), a, &out));
    /* A zoned value for a zoneless column becomes UTC wall time. */
    XT_OK("2020-03-04 03:06:07", xf_cast(XF_T_TIMESTAMP, S("2020-03-04 05:06:07+02:00"), a, &out));
    XT_OK("2020-03-04 05:06:07+02",
          xf_cast(XF_T_TIMESTAMPTZ, S("2020-03-04 05:06:07+02"), a, &out));
    XT_OK("2020-03-04 05:06:07+00", xf_cast(XF_T_TIMESTAMPTZ, S("2020-03-04T05:06:07Z"), a, &out));
    XT_OK("2020-03-04 05:06:07-05:30",
          xf_cast(XF_T_TIMESTAMPTZ, S("2020-03-04 05:06:07-0530"), a, &out));
    XT_ERR("not a valid date", xf_cast(XF_T_TIMESTAMP, S("2020-03-04 24:00:00"), a, &out));
    assert_int_equal(xf_type_from_name("int4"), XF_T_INT);
    assert_int_equal(xf_type_from_name("varchar"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int),         cmocka_unit_test(test_boolean),
        cmocka_unit_test(test_uuid),        cmocka_unit_test(test_numeric),
        cmocka_unit_test(test_decimal_mul), cmocka_unit_test(test_date_casts),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    arena_free(xt_arena);
    return rc;
}
