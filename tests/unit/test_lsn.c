/*
 * LSN text conversion tests: the server's "X/X" form round-trips, and the
 * strict parser rejects every malformed shape rather than yielding 0/0.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/error.h"
#include "core/lsn.h"

#include <string.h>

static void test_format(void **state)
{
    char buf[32];

    (void)state;
    assert_string_equal(lsn_format(0x00000016B374D848ull, buf, sizeof(buf)), "16/B374D848");
    assert_string_equal(lsn_format(0, buf, sizeof(buf)), "0/0");
    assert_string_equal(lsn_format(UINT64_MAX, buf, sizeof(buf)), "FFFFFFFF/FFFFFFFF");
    assert_string_equal(lsn_format(0x100000000ull, buf, sizeof(buf)), "1/0");
    /* 20 bytes is the documented minimum and fits the longest LSN. */
    char small[20];
    assert_string_equal(lsn_format(UINT64_MAX, small, sizeof(small)), "FFFFFFFF/FFFFFFFF");
}

static void test_parse(void **state)
{
    Lsn l = 1;

    (void)state;
    assert_int_equal(lsn_parse("16/B374D848", &l), 0);
    assert_true(l == 0x00000016B374D848ull);
    assert_int_equal(lsn_parse("16/b374d848", &l), 0);
    assert_true(l == 0x00000016B374D848ull);
    assert_int_equal(lsn_parse("0/0", &l), 0);
    assert_true(l == 0);
    assert_int_equal(lsn_parse("FFFFFFFF/FFFFFFFF", &l), 0);
    assert_true(l == UINT64_MAX);
    assert_int_equal(lsn_parse("00000001/00000002", &l), 0);
    assert_true(l == 0x100000002ull);
}

static void test_round_trip(void **state)
{
    static const Lsn values[] = {
        0,
        1,
        0xFFFFFFFFull,
        0x100000000ull,
        0x00000016B374D848ull,
        0x123456789ABCDEF0ull,
        UINT64_MAX,
        0x80000000ull,
    };

    (void)state;
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char buf[32];
        Lsn back = 0;

        lsn_format(values[i], buf, sizeof(buf));
        assert_int_equal(lsn_parse(buf, &back), 0);
        assert_true(back == values[i]);
    }
}

static void test_rejects(void **state)
{
    static const char *bad[] = {
        "",     "1",     "1/",   "/1",   "G/1",  "123456789/1", "1/2x", "1/123456789",
        "1//2", "1/2/3", " 1/2", "1/2 ", "-1/2", "0x1/2",       "1/+2",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        Lsn l = 0x4242;

        tm_error_clear();
        if (lsn_parse(bad[i], &l) != -EINVAL)
            fail_msg("\"%s\" was accepted", bad[i]);
        assert_true(strlen(tm_error()) > 0);
        /* A rejected parse must not clobber the caller's value. */
        assert_true(l == 0x4242);
    }
    tm_error_clear();
    assert_int_equal(lsn_parse(NULL, &(Lsn){0}), -EINVAL);
    assert_true(strlen(tm_error()) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
