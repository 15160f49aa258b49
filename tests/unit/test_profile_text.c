/*
 * Unit tests for the profiler's pure text helpers: format masks (and that
 * the SQL translate() tables spell the same mapping), collapsed masks and
 * the date layouts they name, bytes made safe for a UTF-8 report, text[]
 * literals, CHECK ... IN parsing, the name heuristics and the state table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "migration/profile_int.h"

#include <stdlib.h>
#include <string.h>

static void expect_mask(const char *in, const char *mask)
{
    char *m = profile_mask(in);

    assert_string_equal(m, mask);
    free(m);
}

static void test_mask(void **state)
{
    (void)state;
    expect_mask("2024-01-05", "9999-99-99");
    expect_mask("Jan 5, 2024", "Aaa 9, 9999");
    expect_mask("john.doe@example.com", "aaaa.aaa@aaaaaaa.aaa");
    expect_mask("(617) 555-0100", "(999) 999-9999");
    expect_mask("AB-12x", "AA-99a");
    expect_mask("", "");
    /* non-ASCII bytes are kept as they are */
    expect_mask("Caf\xc3\xa9 1", "Aaa\xc3\xa9 9");
}

/* translate(v, FROM, TO) applied by hand must agree with profile_mask(). */
static void test_mask_sql_tables_agree(void **state)
{
    const char *samples[] = {"2024-01-05", "Hello World 42", "x_Y-z 0/9", "~!@#"};

    (void)state;
    assert_int_equal(strlen(PROFILE_MASK_FROM), strlen(PROFILE_MASK_TO));
    for (size_t s = 0; s < sizeof(samples) / sizeof(samples[0]); s++) {
        char out[64];
        char *m = profile_mask(samples[s]);
        size_t i;

        for (i = 0; samples[s][i]; i++) {
            const char *hit = strchr(PROFILE_MASK_FROM, samples[s][i]);

            out[i] = hit ? PROFILE_MASK_TO[hit - PROFILE_MASK_FROM] : samples[s][i];
        }
        out[i] = '\0';
        assert_string_equal(out, m);
        free(m);
    }
}

static void expect_collapse(const char *mask, const char *want)
{
    char *c = profile_mask_collapse(mask);

    assert_string_equal(c, want);
    free(c);
}

static void test_collapse(void **state)
{
    (void)state;
    expect_collapse("9999-99-99", "9-9-9");
    expect_collapse("Aaaa Aaa", "Aa Aa");
    expect_collapse("(999) 999-9999", "(9) 9-9");
    expect_collapse("--", "--"); /* punctuation runs are kept */
}

static void expect_family(const char *value, const char *want)
{
    char *m = profile_mask(value);
    char name[64];
    const char *got = profile_date_family(m, name, sizeof(name));

    if (!want) {
        if (got)
            fail_msg("%s: expected no date layout, got %s", value, got);
    } else {
        if (!got)
            fail_msg("%s: expected %s, got none", value, want);
        assert_string_equal(got, want);
    }
    free(m);
}

static void test_date_family(void **state)
{
    (void)state;
    expect_family("2024-01-05", "YYYY-MM-DD");
    expect_family("2024-1-5", "YYYY-MM-DD");
    expect_family("2024/01/05", "YYYY/MM/DD");
    expect_family("01/05/2024", "NN/NN/YYYY");
    expect_family("5.1.2024", "NN.NN.YYYY");
    expect_family("05-01-24", "NN-NN-YY");
    expect_family("5 Jan 2024", "DD Mon YYYY");
    expect_family("05-Jan-2024", "DD-Mon-YYYY");
    expect_family("January 5, 2024", "Mon D, YYYY");
    expect_family("Jan 5th, 2024", "Mon D, YYYY");
    expect_family("2024-01-05 10:30", "YYYY-MM-DD hh:mm");
    expect_family("2024-01-05T10:30:00Z", "YYYY-MM-DDThh:mm:ss");
    expect_family("2024-01-05 10:30:00.123+02:00", "YYYY-MM-DD hh:mm:ss");
    expect_family("12345", NULL);
    expect_family("2024-01", NULL);
    expect_family("Main Street 5", NULL);
    expect_family("2024-01/05", NULL); /* mixed separators */
    expect_family("1.5", NULL);
}

static void expect_format(const char *value, const char *want)
{
    char *m = profile_mask(value);
    char *f = profile_format_family(m);

    if (!want)
        assert_null(f);
    else
        assert_string_equal(f, want);
    free(f);
    free(m);
}

static void test_format_family(void **state)
{
    (void)state;
    expect_format("2024-01-05", "YYYY-MM-DD");
    expect_format("617-555-0100", "9-9-9");
    expect_format("(617) 555-0100", "(9) 9-9");
    expect_format("12.50", "9.9");
    expect_format("1234.5", "9.9"); /* same family whatever the digit count */
    expect_format("John", NULL);    /* free text has no format family */
    expect_format("12 Main Street", NULL);
}

static void expect_sanitized(const char *in, size_t len, const char *want, bool json)
{
    char *s = json ? profile_json_sanitize(in, len) : profile_text_sanitize(in, len);

    assert_string_equal(s, want);
    free(s);
}

static void test_sanitize(void **state)
{
    (void)state;
    expect_sanitized("plain", 5, "plain", false);
    expect_sanitized("caf\xc3\xa9", 5, "caf\xc3\xa9", false);      /* valid UTF-8 stays */
    expect_sanitized("caf\xe9", 4, "caf\\xe9", false);             /* LATIN1 byte */
    expect_sanitized("\xc3\x28", 2, "\\xc3(", false);              /* broken sequence */
    expect_sanitized("\xed\xa0\x80", 3, "\\xed\\xa0\\x80", false); /* surrogate */
    expect_sanitized("\xc0\xaf", 2, "\\xc0\\xaf", false);          /* overlong */
    expect_sanitized("\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80", false);
    expect_sanitized("\xe2\x82", 2, "\\xe2\\x82", false); /* truncated at the end */
    /* inside JSON the backslash itself is escaped, so the text reads \xe9 */
    expect_sanitized("[\"caf\xe9\"]", 8, "[\"caf\\\\xe9\"]", true);
    {
        char *s = profile_json_sanitize("[\"caf\xe9\"]", 8);
        json_t *v = json_loads(s, 0, NULL);

        assert_non_null(v);
        assert_string_equal(json_string_value(json_array_get(v, 0)), "caf\\xe9");
        json_decref(v);
        free(s);
    }
}

static void test_sql_array(void **state)
{
    const char *v[] = {"N/A", "a\"b", "c\\d", "x,y", ""};
    char *s;

    (void)state;
    s = profile_sql_text_array(v, 5);
    assert_string_equal(s, "{\"N/A\",\"a\\\"b\",\"c\\\\d\",\"x,y\",\"\"}");
    free(s);
    s = profile_sql_text_array(NULL, 0);
    assert_string_equal(s, "{}");
    free(s);
}

static void expect_check_in(const char *def, const char *want_json)
{
    json_t *v = profile_parse_check_in(def);

    if (!want_json) {
        if (v)
            fail_msg("%s: expected no list", def ? def : "(null)");
        return;
    }
    if (!v)
        fail_msg("%s: not parsed", def ? def : "(null)");
    {
        char *got = json_dumps(v, JSON_COMPACT);

        assert_string_equal(got, want_json);
        free(got);
    }
    json_decref(v);
}

static void test_check_in(void **state)
{
    (void)state;
    expect_check_in("CHECK ((status = ANY (ARRAY['new'::text, 'paid'::text, 'it''s'::text])))",
                    "[\"new\",\"paid\",\"it's\"]");
    expect_check_in("CHECK (((status)::text = ANY ((ARRAY['a'::character varying, "
                    "'b, c'::character varying])::text[])))",
                    "[\"a\",\"b, c\"]");
    expect_check_in("CHECK ((level = ANY (ARRAY[1, 2, 3])))", "[\"1\",\"2\",\"3\"]");
    expect_check_in("CHECK ((kind = 'x'::text))", "[\"x\"]");
    expect_check_in("CHECK ((price > (0)::numeric))", NULL);
    expect_check_in("CHECK (((a = ANY (ARRAY['x'::text])) AND (b > 0)))", NULL);
    expect_check_in("CHECK ((NOT (s = ANY (ARRAY['x'::text]))))", NULL);
    expect_check_in("CHECK ((a = 'x'::text) OR (a = 'y'::text))", NULL);
    expect_check_in(NULL, NULL);
}

static void test_key_like(void **state)
{
    json_t *tables = json_pack("[s, s, s]", "customers", "orders", "categories");

    (void)state;
    assert_true(profile_name_key_like("id", "orders", tables));
    assert_true(profile_name_key_like("email", "customers", tables));
    assert_true(profile_name_key_like("order_id", "orders", tables));
    assert_true(profile_name_key_like("customer_code", "customers", tables));
    assert_true(profile_name_key_like("external_uuid", "orders", tables));
    assert_true(profile_name_key_like("orderId", "orders", tables));
    /* a reference to another profiled table repeats by design */
    assert_false(profile_name_key_like("customer_id", "orders", tables));
    assert_false(profile_name_key_like("customer_email", "orders", tables));
    assert_false(profile_name_key_like("category_id", "orders", tables));
    assert_false(profile_name_key_like("name", "orders", tables));
    assert_false(profile_name_key_like("zipcode", "orders", tables));
    json_decref(tables);
}

static void test_future_ok(void **state)
{
    (void)state;
    assert_true(profile_name_future_ok("expires_at"));
    assert_true(profile_name_future_ok("due_date"));
    assert_true(profile_name_future_ok("valid_until"));
    assert_true(profile_name_future_ok("scheduled_for"));
    assert_true(profile_name_future_ok("end_date"));
    assert_false(profile_name_future_ok("created_at"));
    assert_false(profile_name_future_ok("birth_date"));
    assert_false(profile_name_future_ok("vendor_date")); /* "end" only as a whole word */
    assert_false(profile_name_future_ok("updated"));
}

static void test_singular(void **state)
{
    const char *cases[][2] = {{"customers", "customer"}, {"categories", "category"},
                              {"addresses", "address"},  {"boxes", "box"},
                              {"status", "status"},      {"class", "class"},
                              {"Orders", "order"}};

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *s = profile_singular(cases[i][0]);

        assert_string_equal(s, cases[i][1]);
        free(s);
    }
}

static void test_states(void **state)
{
    const ProfileValueSet *s = profile_valueset_states();
    char *codes, *names;

    (void)state;
    assert_int_equal(s->n, 51); /* 50 states and DC */
    assert_int_equal(profile_valueset_classify(s, "MA"), 1);
    assert_int_equal(profile_valueset_classify(s, " ma "), 1);
    assert_int_equal(profile_valueset_classify(s, "Massachusetts"), 2);
    assert_int_equal(profile_valueset_classify(s, "NEW YORK"), 2);
    assert_int_equal(profile_valueset_classify(s, "District of Columbia"), 2);
    assert_int_equal(profile_valueset_classify(s, "Mass."), 0);
    assert_int_equal(profile_valueset_classify(s, "XX"), 0);
    for (size_t i = 0; i < s->n; i++) {
        assert_int_equal(strlen(s->pairs[i].code), 2);
        for (size_t j = i + 1; j < s->n; j++)
            assert_string_not_equal(s->pairs[i].code, s->pairs[j].code);
    }
    codes = profile_valueset_codes_array(s);
    names = profile_valueset_names_array(s);
    assert_non_null(strstr(codes, "\"MA\""));
    assert_non_null(strstr(names, "\"new hampshire\""));
    assert_null(strstr(names, "New"));
    free(codes);
    free(names);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask),          cmocka_unit_test(test_mask_sql_tables_agree),
        cmocka_unit_test(test_collapse),      cmocka_unit_test(test_date_family),
        cmocka_unit_test(test_format_family), cmocka_unit_test(test_sanitize),
        cmocka_unit_test(test_sql_array),     cmocka_unit_test(test_check_in),
        cmocka_unit_test(test_key_like),      cmocka_unit_test(test_future_ok),
        cmocka_unit_test(test_singular),      cmocka_unit_test(test_states),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
