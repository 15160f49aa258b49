/*
 * Unit tests for value maps, NULL handling, US state codes and CSV lookup
 * tables: unmapped policies, case-insensitive keys, mapping to NULL,
 * placeholders, quoting and header handling in CSV files, and duplicates.
 */
#include "xf_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void test_value_map(void **state)
{
    XfValueMap m = {.dict = xf_dict_new(false), .fname = "map"};
    XfValueMap ci = {.dict = xf_dict_new(true), .fname = "map"};
    Arena *a = xt_a();

    (void)state;
    assert_true(xf_dict_put(m.dict, "A", 1, S("active")));
    assert_true(xf_dict_put(m.dict, "I", 1, S("inactive")));
    assert_true(xf_dict_put(m.dict, "X", 1, XF_NULL));
    assert_false(xf_dict_put(m.dict, "A", 1, S("other")));
    XT_OK("active", xf_value_map(&m, S("A"), a, &out));
    XT_OK(NULL, xf_value_map(&m, S("X"), a, &out));
    XT_OK(NULL, xf_value_map(&m, XF_NULL, a, &out));
    XT_ERR("not in the map", xf_value_map(&m, S("a"), a, &out));
    XT_ERR("'Q'", xf_value_map(&m, S("Q"), a, &out));
    m.unmapped = XF_UNMAPPED_KEEP;
    XT_OK("Q", xf_value_map(&m, S("Q"), a, &out));
    m.unmapped = XF_UNMAPPED_NULL;
    XT_OK(NULL, xf_value_map(&m, S("Q"), a, &out));
    m.unmapped = XF_UNMAPPED_DEFAULT;
    m.def = S("unknown");
    XT_OK("unknown", xf_value_map(&m, S("Q"), a, &out));
    /* Case-insensitive, including Latin-1 letters. */
    assert_true(xf_dict_put(ci.dict, "Élan", 5, S("e")));
    assert_false(xf_dict_put(ci.dict, "éLAN", 5, S("x")));
    XT_OK("e", xf_value_map(&ci, S("ÉLAN"), a, &out));
    /* Many keys: the table grows and every key is still found. */
    for (int i = 0; i < 5000; i++) {
        char k[16];
        int n = snprintf(k, sizeof(k), "k%d", i);

        assert_true(xf_dict_put(ci.dict, k, (size_t)n, XF_CSTR(k)));
    }
    XT_OK("k4999", xf_value_map(&ci, S("K4999"), a, &out));
    assert_int_equal(xf_dict_size(ci.dict), 5001);
    xf_dict_free(m.dict);
    xf_dict_free(ci.dict);
}

static void test_nulls(void **state)
{
    XfNullIf n = {.values = xf_dict_new(true), .trim = true};
    Arena *a = xt_a();

    (void)state;
    xf_dict_put(n.values, "", 0, S(""));
    xf_dict_put(n.values, "N/A", 3, S(""));
    xf_dict_put(n.values, "none", 4, S(""));
    XT_OK(NULL, xf_null_if(&n, S(""), a, &out));
    XT_OK(NULL, xf_null_if(&n, S("  n/a "), a, &out));
    XT_OK(NULL, xf_null_if(&n, S("NONE"), a, &out));
    XT_OK(NULL, xf_null_if(&n, S("   "), a, &out)); /* trims to '' */
    XT_OK("N/A2", xf_null_if(&n, S("N/A2"), a, &out));
    XT_OK(" x ", xf_null_if(&n, S(" x "), a, &out)); /* kept as is, not trimmed */
    XT_OK(NULL, xf_null_if(&n, XF_NULL, a, &out));
    n.trim = false;
    XT_OK(" n/a", xf_null_if(&n, S(" n/a"), a, &out));
    XT_OK("dflt", xf_if_null(S("dflt"), XF_NULL, a, &out));
    XT_OK("v", xf_if_null(S("dflt"), S("v"), a, &out));
    XT_OK("", xf_if_null(S("dflt"), S(""), a, &out)); /* '' is a value, not NULL */
    XT_ERR("required", xf_require(XF_NULL, a, &out));
    XT_OK("v", xf_require(S("v"), a, &out));
    xf_dict_free(n.values);
}

static void test_states(void **state)
{
    Arena *a = xt_a();

    (void)state;
    XT_OK("CA", xf_state_code(S("California"), XF_UNMAPPED_ERROR, a, &out));
    XT_OK("CA", xf_state_code(S(" california "), XF_UNMAPPED_ERROR, a, &out));
    XT_OK("CA", xf_state_code(S("ca"), XF_UNMAPPED_ERROR, a, &out));
    XT_OK("NY", xf_state_code(S("NEW  YORK"), XF_UNMAPPED_ERROR, a, &out));
    XT_OK("DC", xf_state_code(S("Washington, D.C."), XF_UNMAPPED_ERROR, a, &out));
    XT_OK("DC", xf_state_code(S("D.C."), XF_UNMAPPED_ERROR, a, &out));
    XT_OK("DC", xf_state_code(S("District of Columbia"), XF_UNMAPPED_ERROR, a, &out));
    XT_OK("WA", xf_state_code(S("Washington"), XF_UNMAPPED_ERROR, a, &out));
    XT_OK("PR", xf_state_code(S("Puerto Rico"), XF_UNMAPPED_ERROR, a, &out));
    XT_OK("VI", xf_state_code(S("US Virgin Islands"), XF_UNMAPPED_ERROR, a, &out));
    XT_OK("VI", xf_state_code(S("U.S. Virgin Islands"), XF_UNMAPPED_ERROR, a, &out));
    XT_OK("GU", xf_state_code(S("Guam"), XF_UNMAPPED_ERROR, a, &out));
    XT_OK("MP", xf_state_code(S("Northern Mariana Islands"), XF_UNMAPPED_ERROR, a, &out));
    XT_OK("AS", xf_state_code(S("American Samoa"), XF_UNMAPPED_ERROR, a, &out));
    XT_OK("WV", xf_state_code(S("West Virginia"), XF_UNMAPPED_ERROR, a, &out));
    XT_ERR("not a US state", xf_state_code(S("Ontario"), XF_UNMAPPED_ERROR, a, &out));
    XT_ERR("not a US state", xf_state_code(S("C4"), XF_UNMAPPED_ERROR, a, &out));
    XT_OK("Ontario", xf_state_code(S("Ontario"), XF_UNMAPPED_KEEP, a, &out));
    XT_OK(NULL, xf_state_code(S("Ontario"), XF_UNMAPPED_NULL, a, &out));
    XT_OK(NULL, xf_state_code(XF_NULL, XF_UNMAPPED_ERROR, a, &out));
    XT_OK("California", xf_state_name(S("ca"), XF_UNMAPPED_ERROR, a, &out));
    XT_OK("District of Columbia", xf_state_name(S("DC"), XF_UNMAPPED_ERROR, a, &out));
    XT_OK("New Hampshire", xf_state_name(S("new hampshire"), XF_UNMAPPED_ERROR, a, &out));
}

static void test_all_states_round_trip(void **state)
{
    static const char *const codes[] = {
        "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA",
        "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ",
        "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT",
        "VA", "WA", "WV", "WI", "WY", "DC", "AS", "GU", "MP", "PR", "VI", "UM"};
    Arena *a = xt_a();

    (void)state;
    for (size_t i = 0; i < sizeof(codes) / sizeof(*codes); i++) {
        XfStr name, code;

        assert_int_equal(xf_state_name(XF_CSTR(codes[i]), XF_UNMAPPED_ERROR, a, &name), 0);
        assert_int_equal(xf_state_code(name, XF_UNMAPPED_ERROR, a, &code), 0);
        xt_eq(code, codes[i], codes[i]);
    }
}

static char *write_tmp(const char *text)
{
    char *path = strdup("/tmp/tm_xf_csv_XXXXXX");
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_csv_lookup(void **state)
{
    char *good = write_tmp("\xef\xbb\xbfold,new\r\nNYC,New York\r\n\"St. Louis, MO\",\"Saint "
                           "Louis\"\r\n\n\"say \"\"hi\"\"\",quoted\nempty,\n");
    char *dup = write_tmp("a,1\nb,2\nA,3\n");
    char *three = write_tmp("a,1\nb,2,3\n");
    char *quote = write_tmp("a,1\n\"b,2\n");
    XfValueMap m = {.fname = "lookup"};
    Arena *a = xt_a();

    (void)state;
    assert_int_equal(xf_lookup_load_csv(&m, good, true, false), 0);
    assert_int_equal(xf_dict_size(m.dict), 4); /* header skipped, blank line ignored */
    XT_OK("New York", xf_value_map(&m, S("NYC"), a, &out));
    XT_OK("Saint Louis", xf_value_map(&m, S("St. Louis, MO"), a, &out));
    XT_OK("quoted", xf_value_map(&m, S("say \"hi\""), a, &out));
    XT_OK("", xf_value_map(&m, S("empty"), a, &out));
    XT_ERR("not in the map", xf_value_map(&m, S("old"), a, &out));
    xf_dict_free(m.dict);
    m.dict = NULL;
    /* Without header the first line is data. */
    assert_int_equal(xf_lookup_load_csv(&m, good, false, false), 0);
    XT_OK("new", xf_value_map(&m, S("old"), a, &out));
    xf_dict_free(m.dict);
    m.dict = NULL;
    assert_int_equal(xf_lookup_load_csv(&m, dup, false, false), 0); /* case-sensitive: A != a */
    xf_dict_free(m.dict);
    m.dict = NULL;
    assert_int_equal(xf_lookup_load_csv(&m, dup, false, true), -EINVAL);
    assert_non_null(strstr(tm_error(), ":3: \"A\" is listed twice"));
    xf_dict_free(m.dict);
    m.dict = NULL;
    assert_int_equal(xf_lookup_load_csv(&m, three, false, false), -EINVAL);
    assert_non_null(strstr(tm_error(), ":2: expected 2 columns"));
    xf_dict_free(m.dict);
    m.dict = NULL;
    assert_int_equal(xf_lookup_load_csv(&m, quote, false, false), -EINVAL);
    assert_non_null(strstr(tm_error(), ":2: broken quoting"));
    xf_dict_free(m.dict);
    m.dict = NULL;
    assert_int_equal(xf_lookup_load_csv(&m, "/nonexistent/x.csv", false, false), -ENOENT);
    xf_dict_free(m.dict);
    unlink(good);
    unlink(dup);
    unlink(three);
    unlink(quote);
    free(good);
    free(dup);
    free(three);
    free(quote);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_map),  cmocka_unit_test(test_nulls),
        cmocka_unit_test(test_states),     cmocka_unit_test(test_all_states_round_trip),
        cmocka_unit_test(test_csv_lookup),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    arena_free(xt_arena);
    return rc;
}
