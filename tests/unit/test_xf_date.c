/*
 * Unit tests for parse_date: every format family, ambiguity between
 * month-first and day-first formats with and without prefer, impossible
 * dates, two-digit years and pivots, epochs, times and AM/PM, and the
 * compile-time errors for bad formats.
 */
#include "xf_test.h"

static XfDateOpts opts(const char *const *fmts, size_t n, XfPrefer prefer, int pivot, int out)
{
    XfDateOpts o;

    if (xf_date_opts_init(&o, fmts, n, prefer, pivot, out) != 0)
        fail_msg("opts: %s", tm_error());
    return o;
}

static void test_formats(void **state)
{
    static const char *const f[] = {"MM/DD/YYYY",  "DD.MM.YYYY", "YYYY-MM-DD",
                                    "Mon D, YYYY", "D Mon YYYY", "YYYYMMDD"};
    XfDateOpts o = opts(f, 6, XF_PREFER_NONE, -1, -1);
    Arena *a = xt_a();

    (void)state;
    assert_int_equal(o.out, XF_T_DATE);
    XT_OK("2020-03-04", xf_parse_date(&o, S("03/04/2020"), a, &out));
    XT_OK("2020-03-04", xf_parse_date(&o, S("3/4/2020"), a, &out));
    XT_OK("2020-04-03", xf_parse_date(&o, S("03.04.2020"), a, &out));
    XT_OK("2020-03-04", xf_parse_date(&o, S("2020-03-04"), a, &out));
    XT_OK("2020-03-04", xf_parse_date(&o, S("Mar 4, 2020"), a, &out));
    XT_OK("2020-03-04", xf_parse_date(&o, S("march 4, 2020"), a, &out));
    XT_OK("2020-09-04", xf_parse_date(&o, S("Sept. 4, 2020"), a, &out));
    XT_OK("2020-03-04", xf_parse_date(&o, S("4 Mar 2020"), a, &out));
    XT_OK("2020-03-04", xf_parse_date(&o, S("  4   MAR 2020 "), a, &out));
    XT_OK("2020-03-04", xf_parse_date(&o, S("20200304"), a, &out));
    XT_OK(NULL, xf_parse_date(&o, XF_NULL, a, &out));
    /* Impossible dates never match. */
    XT_ERR("not a valid date", xf_parse_date(&o, S("02/30/2020"), a, &out));
    XT_ERR("not a valid date", xf_parse_date(&o, S("02/29/2019"), a, &out));
    XT_OK("2000-02-29", xf_parse_date(&o, S("02/29/2000"), a, &out));
    XT_ERR("not a valid date", xf_parse_date(&o, S("02/29/1900"), a, &out));
    XT_ERR("not a valid date", xf_parse_date(&o, S("31.04.2020"), a, &out));
    XT_ERR("not a valid date", xf_parse_date(&o, S("Foo 4, 2020"), a, &out));
    /* YYYYMMDD needs exactly two digits each: 2020034 is not a date. */
    XT_ERR("not a valid date", xf_parse_date(&o, S("2020034"), a, &out));
    /* Two-digit years without a pivot do not match YYYY. */
    XT_ERR("not a valid date", xf_parse_date(&o, S("03/04/20"), a, &out));
    XT_ERR("'03/04/20'", xf_parse_date(&o, S("03/04/20"), a, &out));
    XT_ERR("not a valid date", xf_parse_date(&o, S(""), a, &out));
    xf_date_opts_release(&o);
}

static void test_ambiguity(void **state)
{
    static const char *const f[] = {"MM/DD/YYYY", "DD/MM/YYYY"};
    XfDateOpts none = opts(f, 2, XF_PREFER_NONE, -1, -1);
    XfDateOpts mdy = opts(f, 2, XF_PREFER_MDY, -1, -1);
    XfDateOpts dmy = opts(f, 2, XF_PREFER_DMY, -1, -1);
    Arena *a = xt_a();

    (void)state;
    XT_ERR("ambiguous", xf_parse_date(&none, S("03/04/2020"), a, &out));
    XT_OK("2020-03-04", xf_parse_date(&mdy, S("03/04/2020"), a, &out));
    XT_OK("2020-04-03", xf_parse_date(&dmy, S("03/04/2020"), a, &out));
    /* Only one reading is a valid date: no ambiguity. */
    XT_OK("2020-04-13", xf_parse_date(&none, S("13/04/2020"), a, &out));
    XT_OK("2020-04-13", xf_parse_date(&mdy, S("13/04/2020"), a, &out));
    XT_OK("2020-12-13", xf_parse_date(&none, S("12/13/2020"), a, &out));
    /* Both readings agree. */
    XT_OK("2020-05-05", xf_parse_date(&none, S("05/05/2020"), a, &out));
    xf_date_opts_release(&none);
    xf_date_opts_release(&mdy);
    xf_date_opts_release(&dmy);
}

static void test_epoch_not_resolved_by_prefer(void **state)
{
    static const char *const f[] = {"YYYYMMDD", "epoch"};
    XfDateOpts o = opts(f, 2, XF_PREFER_MDY, -1, XF_T_TIMESTAMP);
    Arena *a = xt_a();

    (void)state;
    /* 20200304 reads as a date and as seconds since 1970: prefer: mdy does not decide that. */
    XT_ERR("ambiguous", xf_parse_date(&o, S("20200304"), a, &out));
    XT_OK("2020-03-04 00:00:00", xf_parse_date(&o, S("1583280000"), a, &out));
    xf_date_opts_release(&o);
}

static void test_two_digit_years(void **state)
{
    static const char *const f[] = {"MM/DD/YY"};
    XfDateOpts o = opts(f, 1, XF_PREFER_NONE, 50, -1);
    XfDateOpts bad;
    Arena *a = xt_a();

    (void)state;
    XT_OK("2020-03-04", xf_parse_date(&o, S("03/04/20"), a, &out));
    XT_OK("2049-03-04", xf_parse_date(&o, S("03/04/49"), a, &out));
    XT_OK("1950-03-04", xf_parse_date(&o, S("03/04/50"), a, &out));
    XT_OK("1999-03-04", xf_parse_date(&o, S("03/04/99"), a, &out));
    XT_ERR("not a valid date", xf_parse_date(&o, S("03/04/2020"), a, &out));
    xf_date_opts_release(&o);
    assert_int_equal(xf_date_opts_init(&bad, f, 1, XF_PREFER_NONE, -1, -1), -EINVAL);
    assert_non_null(strstr(tm_error(), "pivot"));
    xf_date_opts_release(&bad);
}

static void test_epoch(void **state)
{
    static const char *const f[] = {"epoch"};
    static const char *const fms[] = {"epoch_ms"};
    XfDateOpts o = opts(f, 1, XF_PREFER_NONE, -1, -1);
    XfDateOpts tz = opts(f, 1, XF_PREFER_NONE, -1, XF_T_TIMESTAMPTZ);
    XfDateOpts ms = opts(fms, 1, XF_PREFER_NONE, -1, -1);
    XfDateOpts d = opts(f, 1, XF_PREFER_NONE, -1, XF_T_DATE);
    Arena *a = xt_a();

    (void)state;
    assert_int_equal(o.out, XF_T_TIMESTAMP);
    XT_OK("1970-01-01 00:00:00", xf_parse_date(&o, S("0"), a, &out));
    XT_OK("2001-09-09 01:46:40", xf_parse_date(&o, S("1000000000"), a, &out));
    XT_OK("1969-12-31 23:59:59", xf_parse_date(&o, S("-1"), a, &out));
    XT_OK("1969-12-31 23:59:58.5", xf_parse_date(&o, S("-1.5"), a, &out));
    XT_OK("2001-09-09 01:46:40.123", xf_parse_date(&o, S("1000000000.123"), a, &out));
    XT_OK("2001-09-09 01:46:40+00", xf_parse_date(&tz, S("1000000000"), a, &out));
    XT_OK("2001-09-09 01:46:40.5", xf_parse_date(&ms, S("1000000000500"), a, &out));
    XT_OK("2001-09-09", xf_parse_date(&d, S("999993600"), a, &out));
    XT_ERR("time of day", xf_parse_date(&d, S("1000000000"), a, &out));
    XT_ERR("not a valid date", xf_parse_date(&o, S("12abc"), a, &out));
    XT_ERR("not a valid date", xf_parse_date(&o, S("999999999999999"), a, &out));
    xf_date_opts_release(&o);
    xf_date_opts_release(&tz);
    xf_date_opts_release(&ms);
    xf_date_opts_release(&d);
}

static void test_times(void **state)
{
    static const char *const f[] = {"MM/DD/YYYY HH12:MI AM", "YYYY-MM-DD\"T\"HH:MI:SS.FFTZ",
                                    "DD.MM.YYYY HH:MI:SS", "MM/DD/YYYY"};
    XfDateOpts o = opts(f, 4, XF_PREFER_NONE, -1, -1);
    Arena *a = xt_a();

    (void)state;
    assert_int_equal(o.out, XF_T_TIMESTAMP);
    XT_OK("2020-03-04 13:05:00", xf_parse_date(&o, S("03/04/2020 1:05 PM"), a, &out));
    XT_OK("2020-03-04 00:05:00", xf_parse_date(&o, S("03/04/2020 12:05 am"), a, &out));
    XT_OK("2020-03-04 12:05:00", xf_parse_date(&o, S("03/04/2020 12:05 p.m."), a, &out));
    XT_ERR("not a valid date", xf_parse_date(&o, S("03/04/2020 13:05 PM"), a, &out));
    XT_OK("2020-03-04 03:06:07.123456",
          xf_parse_date(&o, S("2020-03-04T05:06:07.123456+02:00"), a, &out));
    XT_OK("2020-03-04 05:06:07", xf_parse_date(&o, S("04.03.2020 05:06:07"), a, &out));
    XT_ERR("not a valid date", xf_parse_date(&o, S("04.03.2020 05:06:60"), a, &out));
    XT_OK("2020-03-04 00:00:00", xf_parse_date(&o, S("03/04/2020"), a, &out));
    xf_date_opts_release(&o);
}

static void test_bad_formats(void **state)
{
    static const char *const unknown[] = {"YYYY-MM-DD Q"};
    static const char *const noday[] = {"YYYY-MM"};
    static const char *const ampm[] = {"HH12:MI MM/DD/YYYY"};
    XfDateOpts o;

    (void)state;
    assert_int_equal(xf_date_opts_init(&o, unknown, 1, XF_PREFER_NONE, -1, -1), -EINVAL);
    assert_non_null(strstr(tm_error(), "unknown field"));
    xf_date_opts_release(&o);
    assert_int_equal(xf_date_opts_init(&o, noday, 1, XF_PREFER_NONE, -1, -1), -EINVAL);
    assert_non_null(strstr(tm_error(), "month and a day"));
    xf_date_opts_release(&o);
    assert_int_equal(xf_date_opts_init(&o, ampm, 1, XF_PREFER_NONE, -1, -1), -EINVAL);
    assert_non_null(strstr(tm_error(), "HH12 and AM"));
    xf_date_opts_release(&o);
    assert_int_equal(xf_date_opts_init(&o, NULL, 0, XF_PREFER_NONE, -1, -1), -EINVAL);
    xf_date_opts_release(&o);
}

static void test_civil(void **state)
{
    int y, m, d;

    (void)state;
    xf_civil_from_days(0, &y, &m, &d);
    assert_true(y == 1970 && m == 1 && d == 1);
    xf_civil_from_days(-719162, &y, &m, &d);
    assert_true(y == 1 && m == 1 && d == 1);
    xf_civil_from_days(2932896, &y, &m, &d);
    assert_true(y == 9999 && m == 12 && d == 31);
    assert_true(xf_date_valid(2024, 2, 29));
    assert_false(xf_date_valid(2023, 2, 29));
    assert_false(xf_date_valid(0, 1, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_ambiguity),
        cmocka_unit_test(test_epoch_not_resolved_by_prefer),
        cmocka_unit_test(test_two_digit_years),
        cmocka_unit_test(test_epoch),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_bad_formats),
        cmocka_unit_test(test_civil),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    arena_free(xt_arena);
    return rc;
}
