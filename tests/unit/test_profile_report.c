/*
 * Unit tests for the report renderers: findings come first and by severity
 * in Markdown and text, the HTML page is self-contained (no scripts, no
 * external resources) with histograms as inline SVG, values are escaped for
 * each format, and JSON round-trips.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/error.h"
#include "migration/profile_int.h"

#include <stdlib.h>
#include <string.h>

static json_t *sample_report(void)
{
    json_t *hist = json_array();
    json_t *r;

    for (int i = 0; i < 20; i++)
        json_array_append_new(hist, json_pack("{s:s, s:s, s:i}", "lo", "2024-01-01", "hi",
                                              "2024-02-01", "count", i == 3 ? 50 : i));
    r = json_pack(
        "{s:i, s:s, s:s, s:{s:s, s:s}, s:n, s:{s:n}, s:f,"
        " s:{s:i, s:i, s:i, s:{s:i, s:i, s:i}},"
        " s:[{s:s, s:s, s:s, s:s, s:i, s:s, s:[s]}, {s:s, s:s, s:s, s:s, s:i, s:s, s:[s]}],"
        " s:[{s:s, s:s, s:s, s:i, s:i, s:[s], s:s, s:s,"
        "     s:[{s:s, s:s, s:s, s:i, s:i, s:f, s:i, s:s, s:s, s:{s:o}, s:[{s:s, s:i}]}]}],"
        " s:{s:[], s:[]}}",
        "tidemark_profile", 1, "pipeline", "crm", "taken_at", "2024-05-01 10:00:00+00", "source",
        "database", "app", "encoding", "UTF8", "target", "options", "sample_pct",
        "duration_seconds", 1.5, "summary", "tables", 1, "columns", 1, "rows", 100, "findings",
        "error", 1, "warning", 1, "info", 0, "findings", "severity", "error", "code",
        "null_in_not_null_target", "table", "public.orders", "column", "placed_at", "count", 15,
        "message", "15 rows are NULL", "examples", "<script>alert(1)</script>", "severity",
        "warning", "code", "whitespace", "table", "public.orders", "column", "note|x", "count", 2,
        "message", "2 values have | pipes", "examples", " a ", "tables", "schema", "public", "name",
        "orders", "display", "public.orders", "row_count", 100, "total_size_bytes", 81920,
        "primary_key", "id", "replica_identity", "default", "sampled", "false", "columns", "name",
        "placed_at", "type", "date", "category", "temporal", "rows", 100, "nulls", 15, "nulls_pct",
        15.0, "distinct", 80, "min", "2024-01-01", "max", "2024-02-01", "histogram", "buckets",
        hist, "top_values", "value", "2024-01-03", "count", 4, "relationships", "foreign_keys",
        "candidates");
    return r;
}

static char *render(ProfileFormat fmt)
{
    json_t *r = sample_report();
    char *s;

    assert_non_null(r);
    s = profile_render(r, fmt);
    json_decref(r);
    return s;
}

static void test_markdown(void **state)
{
    char *md = render(PROFILE_FMT_MARKDOWN);
    const char *findings = strstr(md, "## Findings");
    const char *tables = strstr(md, "## Tables");

    (void)state;
    assert_non_null(findings);
    assert_non_null(tables);
    assert_true(findings < tables); /* findings first */
    assert_true(strstr(md, "null_in_not_null_target") < strstr(md, "`whitespace`"));
    assert_non_null(strstr(md, "note\\|x")); /* pipes escaped in cells */
    assert_non_null(strstr(md, "have \\| pipes"));
    assert_non_null(strstr(md, "### public.orders"));
    assert_non_null(strstr(md, "100 rows (baseline)"));
    assert_non_null(strstr(md, "15 (15.0%)"));
    free(md);
}

static void test_text(void **state)
{
    char *t = render(PROFILE_FMT_TEXT);

    (void)state;
    assert_non_null(strstr(t, "findings: 1 errors, 1 warnings, 0 info"));
    assert_true(strstr(t, "FINDINGS") < strstr(t, "TABLE public.orders"));
    assert_true(strstr(t, "error") < strstr(t, "warning "));
    assert_non_null(strstr(t, "80.0 kB"));
    free(t);
}

static void test_html(void **state)
{
    char *h = render(PROFILE_FMT_HTML);

    (void)state;
    assert_non_null(strstr(h, "<!DOCTYPE html>"));
    assert_non_null(strstr(h, "<svg"));
    assert_non_null(strstr(h, "<rect"));
    assert_non_null(strstr(h, "<title>2024-01-01 - 2024-02-01: 50</title>"));
    assert_null(strstr(h, "<script>")); /* escaped */
    assert_non_null(strstr(h, "&lt;script&gt;"));
    assert_null(strstr(h, "src=")); /* nothing loaded from elsewhere */
    assert_null(strstr(h, "<link"));
    assert_true(strstr(h, "Findings") < strstr(h, "<h2>Tables"));
    free(h);
}

static void test_json_roundtrip(void **state)
{
    char *j = render(PROFILE_FMT_JSON);
    json_t *back = json_loads(j, 0, NULL);
    json_t *orig = sample_report();

    (void)state;
    assert_non_null(back);
    assert_true(json_equal(back, orig));
    json_decref(back);
    json_decref(orig);
    free(j);
}

static void test_format_parse(void **state)
{
    ProfileFormat f;

    (void)state;
    assert_int_equal(profile_format_parse("md", &f), 0);
    assert_int_equal(f, PROFILE_FMT_MARKDOWN);
    assert_int_equal(profile_format_parse("html", &f), 0);
    assert_int_equal(f, PROFILE_FMT_HTML);
    assert_int_equal(profile_format_parse("pdf", &f), -EINVAL);
}

static void test_fmt_value(void **state)
{
    char buf[128];
    json_t *v = json_string("line1\nline2");

    (void)state;
    profile_fmt_value(v, buf, sizeof(buf));
    assert_string_equal(buf, "line1 line2");
    json_decref(v);
    v = json_string("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
                    "\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
                    "\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
                    "\xa9\xc3\xa9\xc3\xa9");
    profile_fmt_value(v, buf, sizeof(buf));
    /* cut on a character boundary, marked */
    assert_int_equal(strlen(buf), 48 * 2 + 3);
    assert_string_equal(buf + 96, "...");
    json_decref(v);
    v = json_string("dash\xc2\x96here");
    profile_fmt_value(v, buf, sizeof(buf));
    assert_string_equal(buf, "dash\\u0096here"); /* C1 controls made visible */
    json_decref(v);
    profile_fmt_bytes(1536, buf, sizeof(buf));
    assert_string_equal(buf, "1.5 kB");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_markdown),     cmocka_unit_test(test_text),
        cmocka_unit_test(test_html),         cmocka_unit_test(test_json_roundtrip),
        cmocka_unit_test(test_format_parse), cmocka_unit_test(test_fmt_value),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
