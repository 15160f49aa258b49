/*
 * Unit tests for the verification's pure parts above the SQL: the row diff
 * (missing, extra, differing columns with both values, NULL versus '', copy
 * counts of tables without a key), the rules of the verify section (every
 * kind, implicit foreign keys, spot-check keys, and the errors), and the
 * text and Markdown rendering of a report.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/error.h"
#include "core/xmalloc.h"
#include "migration/verify_int.h"

#include <stdlib.h>
#include <string.h>

static const char *const COLS[] = {"id", "name", "note"};
static const int KEY[] = {0};

static void add(VRowSet *s, const char *key, const char *a, const char *b, const char *c,
                long long count)
{
    char **v = xcalloc(3, sizeof(char *));

    v[0] = a ? xstrdup(a) : NULL;
    v[1] = b ? xstrdup(b) : NULL;
    v[2] = c ? xstrdup(c) : NULL;
    vrowset_add(s, xstrdup(key), v, count);
}

static void test_diff_keyed(void **state)
{
    VShape sh = {COLS, 3, KEY, 1};
    VRowSet a, b;
    json_t *d = json_array(), *x;

    (void)state;
    vrowset_init(&a, 3);
    vrowset_init(&b, 3);
    add(&a, "3", "3", "c", "", 1);
    add(&a, "1", "1", "a", "x", 1);
    add(&a, "2", "2", "b", "y", 1);
    add(&b, "3", "3", "c", NULL, 1); /* '' became NULL */
    add(&b, "4", "4", "d", "z", 1);  /* extra */
    add(&b, "2", "2", "b", "y", 1);  /* equal */
    assert_int_equal(verify_diff_rows(&sh, &a, &b, d), 3);
    x = json_array_get(d, 0);
    assert_string_equal(json_string_value(json_object_get(x, "kind")), "missing");
    assert_string_equal(json_string_value(json_object_get(json_object_get(x, "key"), "id")), "1");
    assert_string_equal(json_string_value(json_object_get(json_object_get(x, "row"), "name")), "a");
    x = json_array_get(d, 1);
    assert_string_equal(json_string_value(json_object_get(x, "kind")), "differs");
    x = json_array_get(json_object_get(x, "columns"), 0);
    assert_string_equal(json_string_value(json_object_get(x, "column")), "note");
    assert_string_equal(json_string_value(json_object_get(x, "source")), "");
    assert_true(json_is_null(json_object_get(x, "target")));
    x = json_array_get(d, 2);
    assert_string_equal(json_string_value(json_object_get(x, "kind")), "extra");
    assert_null(json_object_get(x, "count"));
    json_decref(d);
    vrowset_release(&a);
    vrowset_release(&b);
}

static void test_diff_multiset(void **state)
{
    VShape sh = {COLS, 3, NULL, 0};
    VRowSet a, b;
    json_t *d = json_array(), *x;

    (void)state;
    vrowset_init(&a, 3);
    vrowset_init(&b, 3);
    add(&a, "(1,a,x)", "1", "a", "x", 2);
    add(&a, "(2,b,y)", "2", "b", "y", 1);
    add(&b, "(1,a,x)", "1", "a", "x", 3); /* one copy too many */
    add(&b, "(2,b,y)", "2", "b", "y", 1);
    assert_int_equal(verify_diff_rows(&sh, &a, &b, d), 1);
    x = json_array_get(d, 0);
    assert_string_equal(json_string_value(json_object_get(x, "kind")), "extra");
    assert_int_equal(json_integer_value(json_object_get(x, "count")), 1);
    /* without a key, the key is the whole row */
    assert_int_equal(json_object_size(json_object_get(x, "key")), 3);
    json_decref(d);
    vrowset_release(&a);
    vrowset_release(&b);
}

static json_t *parse_json(const char *s)
{
    json_t *j = json_loads(s, 0, NULL);

    assert_non_null(j);
    return j;
}

static void test_rules_parse(void **state)
{
    json_t *v = parse_json(
        "{\"rules\": {\"orders\": {\"not_null\": [\"a\", \"b\"], \"unique\": [[\"c\"], [\"d\","
        " \"e\"]], \"range\": {\"amount\": [0, null]}, \"regex\": {\"email\": \"^.+@.+$\"},"
        " \"allowed\": {\"status\": [\"new\", 5, true]}}},"
        " \"foreign_keys\": [{\"table\": \"s.orders\", \"columns\": \"cust\", \"references\":"
        " \"customers\"}],"
        " \"spot_checks\": {\"orders\": [1, \"2\", [3, \"x\"]]}, \"jobs\": 4}");
    VRuleSet rs;

    (void)state;
    assert_int_equal(verify_rules_parse(v, &rs), 0);
    assert_int_equal(rs.nrules, 7);
    assert_int_equal(rs.rules[0].kind, VR_NOT_NULL);
    assert_string_equal(rs.rules[1].cols[0], "b");
    assert_string_equal(rs.rules[0].table.schema, "public");
    assert_int_equal(rs.rules[3].kind, VR_UNIQUE);
    assert_int_equal(rs.rules[3].ncols, 2);
    assert_int_equal(rs.rules[4].kind, VR_RANGE);
    assert_string_equal(rs.rules[4].min, "0");
    assert_null(rs.rules[4].max);
    assert_string_equal(rs.rules[5].pattern, "^.+@.+$");
    assert_int_equal(rs.rules[6].nvalues, 3);
    assert_string_equal(rs.rules[6].values[1], "5");
    assert_string_equal(rs.rules[6].values[2], "true");
    assert_int_equal(rs.nfks, 1);
    assert_string_equal(rs.fks[0].table.schema, "s");
    assert_string_equal(rs.fks[0].ref_cols[0], "id"); /* the default parent column */
    assert_int_equal(rs.nspots, 1);
    assert_int_equal(rs.spots[0].nkeys, 3);
    assert_int_equal(rs.jobs, 4);
    assert_int_equal(rs.recheck_rounds, 3);
    verify_rules_release(&rs);
    json_decref(v);
}

static void expect_rules_error(const char *js, const char *msg)
{
    json_t *v = parse_json(js);
    VRuleSet rs;

    assert_int_equal(verify_rules_parse(v, &rs), -EINVAL);
    if (!strstr(tm_error(), msg))
        fail_msg("\"%s\" does not contain \"%s\"", tm_error(), msg);
    verify_rules_release(&rs);
    json_decref(v);
}

static void test_rules_errors(void **state)
{
    (void)state;
    expect_rules_error("{\"rules\": {\"t\": {\"not_nul\": [\"a\"]}}}", "unknown rule");
    expect_rules_error("{\"rules\": {\"t\": {\"range\": {\"a\": [1]}}}}", "[min, max]");
    expect_rules_error("{\"rules\": {\"t\": {\"range\": {\"a\": [null, null]}}}}", "both open");
    expect_rules_error("{\"foreign_keys\": [{\"table\": \"t\"}]}", "references");
    expect_rules_error("{\"foreign_keys\": [{\"table\": \"t\", \"columns\": [\"a\", \"b\"],"
                       " \"references\": \"p\", \"ref_columns\": [\"x\"]}]}",
                       "differ in length");
    expect_rules_error("{\"spot_checks\": {\"t\": [{\"a\": 1}]}}", "a key is a value");
}

static const char *REPORT =
    "{\"pipeline\": \"p\", \"run_id\": \"r1\", \"ok\": false, \"duration_seconds\": 1.5,"
    " \"snapshot\": {\"source_lsn\": \"0/10\", \"target_lsn\": \"0/12\", \"rounds\": 2,"
    " \"waited_for_watermark\": true},"
    " \"summary\": {\"tables\": 2, \"tables_ok\": 1, \"missing\": 1, \"extra\": 0,"
    " \"differing\": 1, \"integrity_failures\": 1},"
    " \"tables\": [{\"display\": \"public.a\", \"ok\": true, \"source_rows\": 10,"
    " \"target_rows\": 10, \"differences\": [], \"differences_total\": 0},"
    " {\"display\": \"public.b\", \"ok\": false, \"source_rows\": 5, \"target_rows\": 4,"
    " \"missing\": 1, \"extra\": 0, \"differing\": 1, \"differences_total\": 2,"
    " \"integrity_failures\": 0, \"differences\": ["
    " {\"kind\": \"missing\", \"key\": {\"id\": \"3\"}},"
    " {\"kind\": \"differs\", \"key\": {\"id\": \"4\"}, \"columns\": [{\"column\": \"n\","
    " \"source\": \"\", \"target\": null}]}]}],"
    " \"checks\": [{\"check\": \"foreign_key\", \"name\": \"b_fk\", \"table\": \"public.b\","
    " \"references\": \"public.a\", \"ok\": false, \"failures\": 1, \"examples\": [{\"aid\": "
    "9}]}]}";

static void test_render(void **state)
{
    json_t *rep = parse_json(REPORT);
    char *text = verify_render(rep, VERIFY_FMT_TEXT);
    char *md = verify_render(rep, VERIFY_FMT_MARKDOWN);
    Buf b = BUF_INIT;

    (void)state;
    assert_non_null(strstr(text, "\u2713 public.a"));
    assert_non_null(strstr(text, "\u2717 public.b"));
    assert_non_null(strstr(text, "1 missing, 0 extra, 1 differing"));
    assert_non_null(strstr(text, "missing {id: \"3\"}"));
    assert_non_null(strstr(text, "differs {id: \"4\"}: n: source \"\" target NULL"));
    assert_non_null(strstr(text, "foreign key b_fk on public.b -> public.a: 1 failures"));
    assert_non_null(strstr(text, "e.g. {aid: 9}"));
    assert_non_null(strstr(text, "MISMATCH: 1 of 2 tables match"));
    assert_non_null(strstr(md, "| \u2717 | `public.b` | 5 | 4 |"));
    assert_non_null(strstr(md, "| differs | {id: \"4\"} | n: \"\" \u2192 NULL |"));
    verify_describe_diff(
        json_array_get(
            json_object_get(json_array_get(json_object_get(rep, "tables"), 1), "differences"), 0),
        &b);
    assert_string_equal(buf_cstr(&b), "missing {id: \"3\"}");
    buf_release(&b);
    free(text);
    free(md);
    json_decref(rep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diff_keyed),  cmocka_unit_test(test_diff_multiset),
        cmocka_unit_test(test_rules_parse), cmocka_unit_test(test_rules_errors),
        cmocka_unit_test(test_render),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
