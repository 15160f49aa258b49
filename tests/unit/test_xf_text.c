/*
 * Unit tests for the text transforms: trim and collapse with Unicode
 * blanks, case mapping across Latin-1 and Latin Extended-A, title case
 * rules (O'Brien, don't, Mary-Jane), and regex replace with groups, global
 * and empty matches.
 */
#include "xf_test.h"

static void test_trim_collapse(void **state)
{
    Arena *a = xt_a();
    XfStr in = S("  hello \t"), got;

    (void)state;
    XT_OK("hello", xf_trim(S("  hello \t\n"), a, &out));
    XT_OK("hello", xf_trim(S("\xc2\xa0hello\xc2\xa0"), a, &out)); /* NBSP */
    XT_OK("a\xe3\x80\x80"
          "b",
          xf_trim(S("\xe3\x80\x80"
                    "a\xe3\x80\x80"
                    "b\xe2\x80\x83"),
                  a, &out));
    XT_OK("", xf_trim(S("   "), a, &out));
    XT_OK("", xf_trim(S(""), a, &out));
    XT_OK(NULL, xf_trim(XF_NULL, a, &out));
    /* Nothing to do: a slice of the input, no copy. */
    xf_trim(in, a, &got);
    assert_ptr_equal(got.s, in.s + 2);
    XT_OK("a b c", xf_collapse_ws(S("  a \t b\xc2\xa0\xc2\xa0"
                                    "c  "),
                                  a, &out));
    XT_OK("a b", xf_collapse_ws(S("a b"), a, &out));
    XT_OK("a b", xf_collapse_ws(S("a\nb"), a, &out));
    XT_OK("", xf_collapse_ws(S(" \t "), a, &out));
    /* A lone high byte (not UTF-8) is not a blank and survives. */
    XT_OK("caf\xe9", xf_trim(S(" caf\xe9 "), a, &out));
}

static void test_case(void **state)
{
    Arena *a = xt_a();

    (void)state;
    XT_OK("ÉCOLE ÅNGSTRÖM ÇA ŸVES ŁÓDŹ", xf_upper(S("école ångström ça ÿves łódź"), a, &out));
    XT_OK("école ångström ça ÿves łódź", xf_lower(S("ÉCOLE ÅNGSTRÖM ÇA ŸVES ŁÓDŹ"), a, &out));
    XT_OK("STRAßE", xf_upper(S("straße"), a, &out)); /* ß has no one-letter capital */
    XT_OK("× ÷ 123", xf_upper(S("× ÷ 123"), a, &out));
    XT_OK("I", xf_upper(S("ı"), a, &out));
    XT_OK(NULL, xf_upper(XF_NULL, a, &out));
}

static void test_title(void **state)
{
    Arena *a = xt_a();

    (void)state;
    XT_OK("John Smith", xf_title(S("JOHN SMITH"), a, &out));
    XT_OK("O'Brien", xf_title(S("o'brien"), a, &out));
    XT_OK("D'Angelo-Smith", xf_title(S("D'ANGELO-SMITH"), a, &out));
    XT_OK("Don't Stop", xf_title(S("don't stop"), a, &out));
    XT_OK("Mary-Jane Élise", xf_title(S("mary-jane élise"), a, &out));
    XT_OK("3rd Street", xf_title(S("3RD STREET"), a, &out));
    XT_OK("Łukasz Żółć", xf_title(S("ŁUKASZ ŻÓŁĆ"), a, &out));
}

static void test_regex(void **state)
{
    XfRegex r, once, empty, ic;
    Arena *a = xt_a();

    (void)state;
    assert_int_equal(xf_regex_init(&r, "([0-9]{3})[-. ]?([0-9]{4})", "\\1-\\2", true, false), 0);
    XT_OK("call 555-1234 or 555-9876",
          xf_regex_replace(&r, S("call 555.1234 or 5559876"), a, &out));
    XT_OK("no digits", xf_regex_replace(&r, S("no digits"), a, &out));
    XT_OK(NULL, xf_regex_replace(&r, XF_NULL, a, &out));
    xf_regex_release(&r);
    assert_int_equal(xf_regex_init(&once, "a", "b", false, false), 0);
    XT_OK("baa", xf_regex_replace(&once, S("aaa"), a, &out));
    xf_regex_release(&once);
    assert_int_equal(xf_regex_init(&empty, "x*", "-", true, false), 0);
    XT_OK("-a-b-", xf_regex_replace(&empty, S("ab"), a, &out));
    xf_regex_release(&empty);
    assert_int_equal(xf_regex_init(&ic, "^mr\\.? +", "", true, true), 0);
    XT_OK("Smith", xf_regex_replace(&ic, S("MR. Smith"), a, &out));
    xf_regex_release(&ic);
    assert_int_equal(xf_regex_init(&r, "([a-z]", "", true, false), -EINVAL);
    assert_non_null(strstr(tm_error(), "regex"));
    xf_regex_release(&r);
    assert_int_equal(xf_regex_init(&r, "(a)", "\\2", true, false), -EINVAL);
    assert_non_null(strstr(tm_error(), "1 group"));
    xf_regex_release(&r);
    assert_int_equal(xf_regex_init(&r, "a", "\\q", true, false), -EINVAL);
    xf_regex_release(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trim_collapse),
        cmocka_unit_test(test_case),
        cmocka_unit_test(test_title),
        cmocka_unit_test(test_regex),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    arena_free(xt_arena);
    return rc;
}
