/*
 * Unit tests for the profile rules: each anomaly fires on the statistics
 * that describe it, with the right count and evidence, and stays quiet on
 * ordinary data; findings sort by severity; the config accepts a profile:
 * section with defaults.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "config/config.h"
#include "core/error.h"
#include "migration/profile_int.h"

#include <stdlib.h>
#include <string.h>

/* A text column of 100 rows and no anomaly; tests change what they need. */
static json_t *text_col(const char *name)
{
    return json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:i, s:i, s:i, s:i, s:i, s:[],"
                     " s:{s:i, s:i, s:i, s:[], s:i, s:i, s:i, s:i, s:{s:s, s:i, s:i}, s:{}, s:[],"
                     " s:{s:i, s:i, s:[]}}}",
                     "name", name, "type", "text", "category", "text", "not_null", 0, "unique", 0,
                     "in_foreign_key", 0, "rows", 100, "nulls", 0, "distinct", 30, "dup_values", 0,
                     "dup_rows", 0, "top_values", "text", "empty", 0, "blank", 0, "placeholders", 0,
                     "placeholder_values", "padded", 0, "date_like", 0, "number_like", 0,
                     "leading_zero", 0, "value_set", "set", "US states", "codes", 0, "names", 0,
                     "encoding", "masks", "case_variants", "groups", 0, "rows", 0, "examples");
}

static json_t *table_with(json_t *col)
{
    return json_pack("{s:s, s:s, s:s, s:[s], s:s, s:b, s:s, s:[o]}", "display", "public.t", "name",
                     "t", "schema", "public", "primary_key", "id", "replica_identity", "default",
                     "rows_unique", 1, "encoding", "UTF8", "columns", col);
}

static json_t *run_rules(json_t *table)
{
    json_t *names = json_pack("[s, s]", "t", "customers");
    json_t *f = json_array();

    profile_rules_table(table, names, f);
    json_decref(names);
    json_decref(table);
    return f;
}

static json_t *only(json_t *findings, const char *code)
{
    size_t i;
    json_t *f, *hit = NULL;

    json_array_foreach(findings, i, f)
    {
        if (strcmp(profile_jstr(f, "code"), code) == 0) {
            if (hit)
                fail_msg("%s found twice", code);
            hit = f;
        }
    }
    if (!hit)
        fail_msg("%s not found in %s", code, json_dumps(findings, JSON_COMPACT));
    return hit;
}

static void expect_none(json_t *findings)
{
    if (json_array_size(findings)) {
        char *s = json_dumps(findings, JSON_COMPACT);

        fail_msg("expected no findings, got %s", s);
    }
}

static json_t *tx(json_t *col)
{
    return json_object_get(col, "text");
}

static void test_clean_column_is_quiet(void **state)
{
    (void)state;
    json_t *f = run_rules(table_with(text_col("city")));

    expect_none(f);
    json_decref(f);
}

static void test_placeholders(void **state)
{
    json_t *c = text_col("phone"), *f, *hit;

    (void)state;
    json_object_set_new(tx(c), "placeholders", json_integer(7));
    json_array_append_new(json_object_get(tx(c), "placeholder_values"),
                          json_pack("{s:s, s:i}", "value", "N/A", "count", 5));
    json_array_append_new(json_object_get(tx(c), "placeholder_values"),
                          json_pack("{s:s, s:i}", "value", "-", "count", 2));
    f = run_rules(table_with(c));
    hit = only(f, "placeholder_values");
    assert_int_equal(profile_jint(hit, "count"), 7);
    assert_string_equal(profile_jstr(hit, "severity"), "warning");
    assert_string_equal(profile_jstr(hit, "column"), "phone");
    assert_int_equal(json_array_size(json_object_get(hit, "examples")), 2);
    assert_non_null(strstr(profile_jstr(hit, "message"), "'N/A' x5"));
    json_decref(f);
}

static void add_mask(json_t *c, const char *mask, int count, const char *ex)
{
    json_array_append_new(
        json_object_get(tx(c), "masks"),
        json_pack("{s:s, s:i, s:s}", "mask", mask, "count", count, "example", ex));
}

static void test_competing_date_formats(void **state)
{
    json_t *c = text_col("signup"), *f, *hit, *ev;

    (void)state;
    json_object_set_new(tx(c), "date_like", json_integer(100));
    add_mask(c, "9999-99-99", 40, "2024-01-05");
    add_mask(c, "99/99/9999", 30, "01/05/2024");
    add_mask(c, "9/99/9999", 5, "1/05/2024"); /* same layout as the one above */
    add_mask(c, "99.99.9999", 15, "05.01.2024");
    add_mask(c, "Aaa 9, 9999", 10, "Jan 5, 2024");
    f = run_rules(table_with(c));
    hit = only(f, "competing_formats");
    ev = json_object_get(json_object_get(hit, "evidence"), "formats");
    assert_int_equal(json_array_size(ev), 4);
    assert_string_equal(profile_jstr(json_array_get(ev, 0), "format"), "YYYY-MM-DD");
    assert_int_equal(profile_jint(json_array_get(ev, 0), "count"), 40);
    assert_string_equal(profile_jstr(json_array_get(ev, 1), "format"), "NN/NN/YYYY");
    assert_int_equal(profile_jint(json_array_get(ev, 1), "count"), 35);
    assert_int_equal(profile_jint(hit, "count"), 60); /* values outside the dominant format */
    only(f, "dates_in_text");
    json_decref(f);
}

static void test_one_format_or_free_text_is_quiet(void **state)
{
    json_t *c = text_col("name"), *f;

    (void)state;
    add_mask(c, "Aaaa", 40, "John");
    add_mask(c, "Aaaaa", 30, "Maria");
    add_mask(c, "Aaa Aaaa", 30, "Ann Lee");
    f = run_rules(table_with(c));
    expect_none(f);
    json_decref(f);

    c = text_col("sku");
    add_mask(c, "AA-9999", 97, "AB-1234");
    add_mask(c, "AA-999", 3, "AB-123"); /* collapses to the same family */
    f = run_rules(table_with(c));
    expect_none(f);
    json_decref(f);
}

static void test_numbers_in_text(void **state)
{
    json_t *c = text_col("amount"), *f, *hit;

    (void)state;
    json_object_set_new(tx(c), "number_like", json_integer(95));
    json_object_set_new(tx(c), "number_example", json_string("12.50"));
    f = run_rules(table_with(c));
    hit = only(f, "numbers_in_text");
    assert_int_equal(profile_jint(hit, "count"), 95);
    json_decref(f);

    /* leading zeros: codes, not numbers */
    c = text_col("zip");
    json_object_set_new(tx(c), "number_like", json_integer(100));
    json_object_set_new(tx(c), "leading_zero", json_integer(12));
    f = run_rules(table_with(c));
    expect_none(f);
    json_decref(f);
}

static void test_abbreviation_mix(void **state)
{
    json_t *c = text_col("state"), *f, *hit, *vs;

    (void)state;
    vs = json_object_get(tx(c), "value_set");
    json_object_set_new(vs, "codes", json_integer(60));
    json_object_set_new(vs, "names", json_integer(38));
    json_object_set_new(vs, "code_example", json_string("MA"));
    json_object_set_new(vs, "name_example", json_string("Massachusetts"));
    f = run_rules(table_with(c));
    hit = only(f, "abbreviation_mix");
    assert_int_equal(profile_jint(hit, "count"), 38);
    assert_int_equal(profile_jint(json_object_get(hit, "evidence"), "codes"), 60);
    json_decref(f);

    /* only codes: a clean column */
    c = text_col("state");
    json_object_set_new(json_object_get(tx(c), "value_set"), "codes", json_integer(100));
    f = run_rules(table_with(c));
    expect_none(f);
    json_decref(f);
}

static void test_whitespace_case_encoding(void **state)
{
    json_t *c = text_col("city"), *f, *hit, *enc;

    (void)state;
    json_object_set_new(tx(c), "padded", json_integer(3));
    json_object_set_new(tx(c), "padded_example", json_string(" Boston"));
    json_object_set_new(tx(c), "case_variants",
                        json_pack("{s:i, s:i, s:[[{s:s, s:i}, {s:s, s:i}]]}", "groups", 2, "rows",
                                  9, "examples", "value", "Boston", "count", 5, "value", "BOSTON",
                                  "count", 2));
    enc = json_object_get(tx(c), "encoding");
    json_object_set_new(enc, "mojibake", json_integer(4));
    json_object_set_new(enc, "mojibake_example", json_string("caf\xc3\x83\xc2\xa9"));
    json_object_set_new(enc, "invalid_utf8", json_integer(2));
    json_object_set_new(enc, "non_ascii", json_integer(5));
    json_object_set_new(enc, "c1_controls", json_integer(1));
    f = run_rules(table_with(c));
    hit = only(f, "whitespace");
    assert_int_equal(profile_jint(hit, "count"), 3);
    hit = only(f, "case_variants");
    assert_int_equal(profile_jint(hit, "count"), 9);
    assert_int_equal(json_array_size(json_object_get(hit, "examples")), 2);
    assert_int_equal(profile_jint(only(f, "mojibake"), "count"), 4);
    hit = only(f, "invalid_encoding");
    assert_int_equal(profile_jint(hit, "count"), 2);
    assert_string_equal(profile_jstr(hit, "severity"), "error");
    assert_int_equal(profile_jint(only(f, "non_ascii_bytes"), "count"), 3);
    assert_int_equal(profile_jint(only(f, "c1_control_chars"), "count"), 1);
    json_decref(f);
}

static json_t *date_col(const char *name, int future, int old, int new_)
{
    return json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:{s:i, s:s}, s:{s:i, s:i, s:s, s:s}}", "name",
                     name, "type", "date", "category", "temporal", "rows", 100, "nulls", 0,
                     "distinct", 90, "future", "count", future, "max", "2031-01-01", "implausible",
                     "too_old", old, "too_new", new_, "min", "0001-01-01", "max", "9999-12-31");
}

static void test_dates(void **state)
{
    json_t *f;

    (void)state;
    f = run_rules(table_with(date_col("created_at", 3, 1, 2)));
    assert_int_equal(profile_jint(only(f, "future_dates"), "count"), 3);
    assert_int_equal(profile_jint(only(f, "implausible_dates"), "count"), 3);
    json_decref(f);
    f = run_rules(table_with(date_col("expires_at", 3, 0, 0)));
    expect_none(f);
    json_decref(f);
}

static json_t *key_col(const char *name, int distinct, int dups, bool fk)
{
    json_t *c = text_col(name);

    json_object_set_new(c, "distinct", json_integer(distinct));
    json_object_set_new(c, "dup_values", json_integer(dups));
    json_object_set_new(c, "dup_rows", json_integer(dups));
    json_object_set_new(c, "in_foreign_key", json_boolean(fk));
    json_array_append_new(json_object_get(c, "top_values"),
                          json_pack("{s:s, s:i}", "value", "a@x.org", "count", 2));
    return c;
}

static void test_duplicate_keys(void **state)
{
    json_t *f, *hit;

    (void)state;
    f = run_rules(table_with(key_col("email", 97, 3, false)));
    hit = only(f, "duplicate_key_values");
    assert_int_equal(profile_jint(hit, "count"), 3);
    assert_string_equal(json_string_value(json_array_get(json_object_get(hit, "examples"), 0)),
                        "a@x.org");
    json_decref(f);
    /* a reference to another table repeats by design */
    f = run_rules(table_with(key_col("customer_id", 40, 30, false)));
    expect_none(f);
    json_decref(f);
    /* a key-named category (few distinct values) is not a key */
    f = run_rules(table_with(key_col("country_code", 12, 12, false)));
    expect_none(f);
    json_decref(f);
    /* unique-ish without a key name */
    f = run_rules(table_with(key_col("handle", 99, 1, false)));
    only(f, "duplicate_key_values");
    json_decref(f);
}

static void test_table_rules(void **state)
{
    json_t *t = table_with(text_col("a")), *f, *hit;

    (void)state;
    json_object_set_new(t, "primary_key", json_null());
    json_object_set_new(t, "duplicate_rows",
                        json_pack("{s:i, s:i, s:[{s:s, s:i}]}", "groups", 2, "extra_rows", 3,
                                  "examples", "row", "(1,x)", "count", 3));
    f = run_rules(t);
    hit = only(f, "duplicate_rows");
    assert_int_equal(profile_jint(hit, "count"), 3);
    assert_string_equal(profile_jstr(only(f, "no_replica_identity"), "severity"), "error");
    json_decref(f);
}

static void test_target_rules(void **state)
{
    json_t *c = text_col("status"), *t, *f, *hit;

    (void)state;
    json_object_set_new(c, "nulls", json_integer(15));
    json_object_set_new(c, "target",
                        json_pack("{s:s, s:b, s:i, s:[s, s], s:i, s:s, s:i, s:s}", "type",
                                  "character varying(5)", "not_null", 1, "max_length", 5, "allowed",
                                  "new", "paid", "too_long", 4, "too_long_example", "cancelled",
                                  "outside", 6, "outside_example", "void"));
    t = table_with(c);
    json_object_set_new(t, "target_found", json_true());
    json_array_append_new(json_object_get(t, "columns"), text_col("legacy"));
    f = run_rules(t);
    hit = only(f, "null_in_not_null_target");
    assert_int_equal(profile_jint(hit, "count"), 15);
    assert_non_null(strstr(profile_jstr(hit, "message"), "15.0%"));
    assert_int_equal(profile_jint(only(f, "too_long_for_target"), "count"), 4);
    assert_int_equal(profile_jint(only(f, "outside_target_values"), "count"), 6);
    assert_string_equal(profile_jstr(only(f, "target_column_missing"), "column"), "legacy");
    json_decref(f);
}

static void test_relationship_rules(void **state)
{
    json_t *rel = json_pack(
        "{s:[{s:s, s:s, s:[s], s:s, s:[s], s:i, s:i, s:[s]}],"
        " s:[{s:s, s:s, s:s, s:s, s:f, s:i, s:i, s:[s]},"
        " {s:s, s:s, s:s, s:s, s:f, s:i, s:i}]}",
        "foreign_keys", "name", "orders_customer_fk", "table", "public.orders", "columns",
        "customer_id", "parent", "public.customers", "parent_columns", "id", "orphans", 2,
        "checked", 50, "examples", "999", "candidates", "table", "public.orders", "column",
        "customer_email", "parent", "public.customers", "parent_column", "email", "containment_pct",
        96.0, "checked", 50, "missing", 2, "missing_examples", "nobody@x.org", "table",
        "public.orders", "column", "note", "parent", "public.notes", "parent_column", "note",
        "containment_pct", 55.0, "checked", 50, "missing", 22);
    json_t *f = json_array(), *hit;

    (void)state;
    profile_rules_relationships(rel, f);
    assert_int_equal(json_array_size(f), 2);
    hit = only(f, "fk_orphans");
    assert_int_equal(profile_jint(hit, "count"), 2);
    assert_string_equal(profile_jstr(hit, "table"), "public.orders");
    hit = only(f, "implicit_reference");
    assert_string_equal(profile_jstr(hit, "severity"), "info");
    json_decref(f);
    json_decref(rel);
}

static void test_sort(void **state)
{
    json_t *f =
        json_pack("[{s:s, s:s, s:i, s:s, s:s}, {s:s, s:s, s:i, s:s, s:s},"
                  " {s:s, s:s, s:i, s:s, s:s}, {s:s, s:s, s:i, s:s, s:s}]",
                  "severity", "info", "code", "a", "count", 100, "table", "t", "column", "c",
                  "severity", "warning", "code", "b", "count", 1, "table", "t", "column", "c",
                  "severity", "error", "code", "c", "count", 1, "table", "t", "column", "c",
                  "severity", "warning", "code", "d", "count", 5, "table", "t", "column", "c");
    json_t *n;

    (void)state;
    profile_findings_sort(f);
    assert_string_equal(profile_jstr(json_array_get(f, 0), "code"), "c");
    assert_string_equal(profile_jstr(json_array_get(f, 1), "code"), "d");
    assert_string_equal(profile_jstr(json_array_get(f, 2), "code"), "b");
    assert_string_equal(profile_jstr(json_array_get(f, 3), "code"), "a");
    n = profile_findings_count(f);
    assert_int_equal(profile_jint(n, "error"), 1);
    assert_int_equal(profile_jint(n, "warning"), 2);
    assert_int_equal(profile_jint(n, "info"), 1);
    json_decref(n);
    json_decref(f);
}

#define BASE                                                                                       \
    "pipeline: p\n"                                                                                \
    "source:\n"                                                                                    \
    "  conninfo: host=src\n"                                                                       \
    "target:\n"                                                                                    \
    "  conninfo: host=dst\n"

static void test_config_section(void **state)
{
    Config *cfg = NULL;
    const json_t *p;

    (void)state;
    assert_int_equal(config_load_string("t.yaml", BASE, &cfg), 0);
    p = json_object_get(cfg->tree, "profile");
    assert_int_equal(profile_jint(p, "jobs"), 2);
    assert_int_equal(profile_jint(p, "top_values"), 10);
    assert_string_equal(json_string_value(json_array_get(json_object_get(p, "placeholders"), 0)),
                        "N/A");
    config_free(cfg);
    assert_int_equal(config_load_string(
                         "t.yaml", BASE "profile:\n  jobs: 4\n  placeholders: [x, 'n/d']\n", &cfg),
                     0);
    p = json_object_get(cfg->tree, "profile");
    assert_int_equal(profile_jint(p, "jobs"), 4);
    assert_int_equal(json_array_size(json_object_get(p, "placeholders")), 2);
    config_free(cfg);
    assert_int_equal(config_load_string("t.yaml", BASE "profile:\n  jobz: 4\n", &cfg), -EINVAL);
    assert_non_null(strstr(tm_error(), "t.yaml:7:3: profile.jobz: unknown key"));
    assert_int_equal(config_load_string("t.yaml", BASE "profile:\n  jobs: 0\n", &cfg), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_column_is_quiet),
        cmocka_unit_test(test_placeholders),
        cmocka_unit_test(test_competing_date_formats),
        cmocka_unit_test(test_one_format_or_free_text_is_quiet),
        cmocka_unit_test(test_numbers_in_text),
        cmocka_unit_test(test_abbreviation_mix),
        cmocka_unit_test(test_whitespace_case_encoding),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_table_rules),
        cmocka_unit_test(test_target_rules),
        cmocka_unit_test(test_relationship_rules),
        cmocka_unit_test(test_sort),
        cmocka_unit_test(test_config_section),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
