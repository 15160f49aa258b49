/*
 * Unit tests for the verification's bisection bookkeeping: integer split
 * points (even parts, narrow ranges, the int64 extremes) and the comparison
 * of two sides' bucket aggregates (a differing count or sum, a bucket on one
 * side only, empty buckets, unsorted input).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "migration/verify_int.h"

#include <stdlib.h>
#include <string.h>

static void test_int_bounds_even(void **state)
{
    int64_t b[8];
    int n;

    (void)state;
    n = verify_int_bounds(0, 100, 4, b);
    assert_int_equal(n, 3);
    assert_int_equal(b[0], 25);
    assert_int_equal(b[1], 50);
    assert_int_equal(b[2], 75);
    n = verify_int_bounds(1, 5000001, 8, b);
    assert_int_equal(n, 7);
    for (int i = 1; i < n; i++)
        assert_true(b[i] > b[i - 1]);
    assert_true(b[0] > 1 && b[6] < 5000001);
}

static void test_int_bounds_narrow(void **state)
{
    int64_t b[64];

    (void)state;
    /* a range of one key cannot be split */
    assert_int_equal(verify_int_bounds(7, 8, 64, b), 0);
    /* three keys into 64 parts: only the two interior points exist */
    assert_int_equal(verify_int_bounds(7, 10, 64, b), 2);
    assert_int_equal(b[0], 8);
    assert_int_equal(b[1], 9);
    assert_int_equal(verify_int_bounds(5, 5, 4, b), 0);
    assert_int_equal(verify_int_bounds(0, 100, 1, b), 0);
}

static void test_int_bounds_extremes(void **state)
{
    int64_t b[4];
    int n;

    (void)state;
    n = verify_int_bounds(INT64_MIN, INT64_MAX, 4, b);
    assert_int_equal(n, 3);
    assert_true(b[0] < b[1] && b[1] < b[2]);
    assert_true(b[1] > -2 && b[1] < 2); /* the middle of the whole range is about 0 */
}

static void test_int_width(void **state)
{
    (void)state;
    /* pgbench_accounts at scale 50: aid 1 .. 5,000,000 into 64 buckets of 78,125 */
    assert_int_equal(verify_int_width(1, 5000001, 64), 78125);
    /* the width rounds up, so the last key still falls in bucket n - 1 */
    assert_int_equal(verify_int_width(0, 100, 64), 2);
    assert_true((99 - 0) / verify_int_width(0, 100, 64) < 64);
    assert_int_equal(verify_int_width(7, 10, 64), 1);
    /* one key, or n < 2: nothing to cut */
    assert_int_equal(verify_int_width(7, 8, 64), 0);
    assert_int_equal(verify_int_width(0, 100, 1), 0);
    /* key - lo must fit in an int64 */
    assert_int_equal(verify_int_width(INT64_MIN, INT64_MAX, 64), 0);
    assert_int_equal(verify_int_width(-1, INT64_MAX, 64), 0);
    assert_true(verify_int_width(0, INT64_MAX, 64) > 0);
    assert_true((INT64_MAX - 1) / verify_int_width(0, INT64_MAX, 64) < 64);
}

static void test_buckets_diff(void **state)
{
    VBucket a[] = {{3, 10, "777"}, {0, 5, "11"}, {1, 7, "22"}, {4, 0, NULL}};
    VBucket b[] = {{0, 5, "11"}, {1, 7, "23"}, {2, 300, "5"}, {3, 9, "770"}};
    long long *ids, *rows;
    size_t n = verify_buckets_diff(a, 4, b, 4, &ids, &rows);

    (void)state;
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 1); /* same count, different sum */
    assert_int_equal(rows[0], 7);
    assert_int_equal(ids[1], 2); /* only on the target */
    assert_int_equal(rows[1], 300);
    assert_int_equal(ids[2], 3); /* the larger of the two counts decides the split */
    assert_int_equal(rows[2], 10);
    free(ids);
    free(rows);
}

static void test_buckets_equal(void **state)
{
    VBucket a[] = {{0, 5, "11"}, {1, 7, "-22"}};
    VBucket b[] = {{1, 7, "-22"}, {0, 5, "11"}};
    long long *ids, *rows;

    (void)state;
    assert_int_equal(verify_buckets_diff(a, 2, b, 2, &ids, &rows), 0);
    assert_null(ids);
    assert_int_equal(verify_buckets_diff(NULL, 0, NULL, 0, &ids, &rows), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int_bounds_even),     cmocka_unit_test(test_int_bounds_narrow),
        cmocka_unit_test(test_int_bounds_extremes), cmocka_unit_test(test_int_width),
        cmocka_unit_test(test_buckets_diff),        cmocka_unit_test(test_buckets_equal),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
