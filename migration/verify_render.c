/*
 * The verification report as a person reads it: a summary table (per table
 * the counts on both sides, ✓ or ✗ and what differs), the differences one
 * line each (missing / extra / column: source -> target), the integrity
 * checks, and the verdict. Text for the terminal, Markdown for a file to
 * attach to a change ticket; both work on the JSON report alone.
 */
#include "core/xmalloc.h"
#include "migration/verify_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));

    return s ? s : "";
}

static long long jint(const json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

/* A value as it would be typed: NULL, or a quoted string cut at 60 characters. */
static void put_value(Buf *b, const json_t *v)
{
    const char *s;
    size_t n;

    if (!v || json_is_null(v)) {
        buf_puts(b, "NULL");
        return;
    }
    s = json_string_value(v);
    if (!s) {
        char *d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

        buf_puts(b, d ? d : "?");
        free(d);
        return;
    }
    n = strlen(s);
    buf_putc(b, '"');
    for (size_t i = 0; i < n && i < 60; i++) {
        if (s[i] == '"' || s[i] == '\\')
            buf_putc(b, '\\');
        if (s[i] == '\n')
            buf_puts(b, "\\n");
        else
            buf_putc(b, s[i]);
    }
    buf_putc(b, '"');
    if (n > 60)
        buf_printf(b, "...(%zu bytes)", n);
}

static void put_object(Buf *b, const json_t *o)
{
    const char *k;
    const json_t *v;
    bool first = true;

    buf_putc(b, '{');
    json_object_foreach((json_t *)o, k, v)
    {
        buf_printf(b, "%s%s: ", first ? "" : ", ", k);
        put_value(b, v);
        first = false;
    }
    buf_putc(b, '}');
}

void verify_describe_diff(const json_t *d, Buf *b)
{
    const char *kind = jstr(d, "kind");

    buf_printf(b, "%s ", kind);
    put_object(b, json_object_get(d, "key"));
    if (json_object_get(d, "count"))
        buf_printf(b, " x%lld", jint(d, "count"));
    if (strcmp(kind, "differs") == 0) {
        size_t i;
        const json_t *c;

        buf_puts(b, ":");
        json_array_foreach(json_object_get(d, "columns"), i, c)
        {
            buf_printf(b, "%s %s: source ", i ? ";" : "", jstr(c, "column"));
            put_value(b, json_object_get(c, "source"));
            buf_puts(b, " target ");
            put_value(b, json_object_get(c, "target"));
        }
    }
    if (json_object_get(d, "check"))
        buf_puts(b, " (spot check)");
}

static void table_summary(const json_t *t, Buf *b)
{
    if (json_string_value(json_object_get(t, "error"))) {
        buf_printf(b, "error: %s", jstr(t, "error"));
        return;
    }
    if (jint(t, "differences_total") == 0 && jint(t, "integrity_failures") == 0)
        return;
    buf_printf(b, "%lld missing, %lld extra, %lld differing", jint(t, "missing"), jint(t, "extra"),
               jint(t, "differing"));
    if (jint(t, "integrity_failures"))
        buf_printf(b, ", %lld integrity", jint(t, "integrity_failures"));
}

static void check_line(const json_t *c, Buf *b)
{
    const char *kind = jstr(c, "check");

    if (strcmp(kind, "foreign_key") == 0)
        buf_printf(b, "foreign key %s on %s -> %s", jstr(c, "name"), jstr(c, "table"),
                   jstr(c, "references"));
    else if (strcmp(kind, "rule") == 0) {
        size_t i;
        const json_t *col;

        buf_printf(b, "rule %s on %s (", jstr(c, "rule"), jstr(c, "table"));
        json_array_foreach(json_object_get(c, "columns"), i, col)
            buf_printf(b, "%s%s", i ? ", " : "", json_string_value(col));
        buf_puts(b, ")");
    } else
        buf_printf(b, "spot check of %lld keys on %s", jint(c, "keys"), jstr(c, "table"));
    if (json_string_value(json_object_get(c, "error")))
        buf_printf(b, ": error: %s", jstr(c, "error"));
    else if (!json_is_true(json_object_get(c, "ok")))
        buf_printf(b, ": %lld failures", jint(c, "failures"));
}

static void examples(const json_t *c, Buf *b, const char *indent)
{
    size_t i;
    const json_t *e;

    json_array_foreach(json_object_get(c, "examples"), i, e)
    {
        buf_puts(b, indent);
        put_object(b, e);
        buf_putc(b, '\n');
    }
}

void verify_render_text(const json_t *rep, Buf *b)
{
    const json_t *snap = json_object_get(rep, "snapshot"), *sum = json_object_get(rep, "summary");
    size_t i;
    const json_t *t, *c;
    int w = 5;

    buf_printf(b, "tidemark verify: pipeline %s, run %s\n", jstr(rep, "pipeline"),
               jstr(rep, "run_id"));
    buf_printf(
        b, "snapshot: source %s, target watermark %s%s, %lld round(s), %.1f s\n\n",
        jstr(snap, "source_lsn"),
        json_string_value(json_object_get(snap, "target_lsn")) ? jstr(snap, "target_lsn") : "-",
        json_is_true(json_object_get(snap, "waited_for_watermark")) ? "" : " (not waited for)",
        jint(snap, "rounds"), json_real_value(json_object_get(rep, "duration_seconds")));
    json_array_foreach(json_object_get(rep, "tables"), i, t)
    {
        int n = (int)strlen(jstr(t, "display"));

        w = n > w ? n : w;
    }
    buf_printf(b, "  %-*s %12s %12s    %s\n", w, "table", "source", "target", "differences");
    json_array_foreach(json_object_get(rep, "tables"), i, t)
    {
        buf_printf(b, "%s %-*s %12lld %12lld    ",
                   json_is_true(json_object_get(t, "ok")) ? "\u2713" : "\u2717", w,
                   jstr(t, "display"), jint(t, "source_rows"), jint(t, "target_rows"));
        table_summary(t, b);
        buf_putc(b, '\n');
    }
    json_array_foreach(json_object_get(rep, "tables"), i, t)
    {
        size_t k;
        const json_t *d;

        if (json_array_size(json_object_get(t, "differences")) == 0)
            continue;
        buf_printf(b, "\n%s:\n", jstr(t, "display"));
        json_array_foreach(json_object_get(t, "differences"), k, d)
        {
            buf_puts(b, "  ");
            verify_describe_diff(d, b);
            buf_putc(b, '\n');
        }
        if (json_is_true(json_object_get(t, "truncated")))
            buf_printf(b, "  ... %lld differences in all\n", jint(t, "differences_total"));
    }
    if (json_array_size(json_object_get(rep, "checks")))
        buf_puts(b, "\nintegrity:\n");
    json_array_foreach(json_object_get(rep, "checks"), i, c)
    {
        buf_printf(b, "%s ", json_is_true(json_object_get(c, "ok")) ? "\u2713" : "\u2717");
        check_line(c, b);
        buf_putc(b, '\n');
        examples(c, b, "    e.g. ");
    }
    buf_printf(b,
               "\n%s: %lld of %lld tables match; %lld missing, %lld extra, %lld differing rows;"
               " %lld integrity failures\n",
               json_is_true(json_object_get(rep, "ok")) ? "OK" : "MISMATCH", jint(sum, "tables_ok"),
               jint(sum, "tables"), jint(sum, "missing"), jint(sum, "extra"),
               jint(sum, "differing"), jint(sum, "integrity_failures"));
}

/* Markdown table cells: | and newlines would break the row. */
static void md_cell(Buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            buf_puts(b, "\\|");
        else if (*s == '\n')
            buf_puts(b, " ");
        else
            buf_putc(b, *s);
    }
}

void verify_render_markdown(const json_t *rep, Buf *b)
{
    const json_t *snap = json_object_get(rep, "snapshot"), *sum = json_object_get(rep, "summary");
    size_t i;
    const json_t *t, *c;

    buf_printf(b, "# Verification of pipeline `%s`\n\n", jstr(rep, "pipeline"));
    buf_printf(b,
               "**%s** — %lld of %lld tables match; %lld missing, %lld extra, %lld differing"
               " rows; %lld integrity failures.\n\n",
               json_is_true(json_object_get(rep, "ok")) ? "OK" : "MISMATCH", jint(sum, "tables_ok"),
               jint(sum, "tables"), jint(sum, "missing"), jint(sum, "extra"),
               jint(sum, "differing"), jint(sum, "integrity_failures"));
    buf_printf(b, "- run: `%s`, started %s, %.1f s\n", jstr(rep, "run_id"), jstr(rep, "started_at"),
               json_real_value(json_object_get(rep, "duration_seconds")));
    buf_printf(b, "- source snapshot LSN `%s`, target watermark `%s`, %lld round(s)\n\n",
               jstr(snap, "source_lsn"), jstr(snap, "target_lsn"), jint(snap, "rounds"));
    buf_puts(b, "| | table | source rows | target rows | differences |\n|---|---|---:|---:|---|\n");
    json_array_foreach(json_object_get(rep, "tables"), i, t)
    {
        Buf s = BUF_INIT;

        table_summary(t, &s);
        buf_printf(b, "| %s | `%s` | %lld | %lld | ",
                   json_is_true(json_object_get(t, "ok")) ? "\u2713" : "\u2717", jstr(t, "display"),
                   jint(t, "source_rows"), jint(t, "target_rows"));
        md_cell(b, s.len ? buf_cstr(&s) : "");
        buf_puts(b, " |\n");
        buf_release(&s);
    }
    json_array_foreach(json_object_get(rep, "tables"), i, t)
    {
        size_t k;
        const json_t *d;

        if (json_array_size(json_object_get(t, "differences")) == 0)
            continue;
        buf_printf(b, "\n## `%s`\n\n| kind | key | details |\n|---|---|---|\n", jstr(t, "display"));
        json_array_foreach(json_object_get(t, "differences"), k, d)
        {
            Buf key = BUF_INIT, det = BUF_INIT;
            size_t j;
            const json_t *col;

            put_object(&key, json_object_get(d, "key"));
            json_array_foreach(json_object_get(d, "columns"), j, col)
            {
                buf_printf(&det, "%s%s: ", j ? "; " : "", jstr(col, "column"));
                put_value(&det, json_object_get(col, "source"));
                buf_puts(&det, " → ");
                put_value(&det, json_object_get(col, "target"));
            }
            if (json_object_get(d, "count"))
                buf_printf(&det, "%lld copies", jint(d, "count"));
            buf_printf(b, "| %s | ", jstr(d, "kind"));
            md_cell(b, buf_cstr(&key));
            buf_puts(b, " | ");
            md_cell(b, det.len ? buf_cstr(&det) : "");
            buf_puts(b, " |\n");
            buf_release(&key);
            buf_release(&det);
        }
    }
    if (json_array_size(json_object_get(rep, "checks")))
        buf_puts(b, "\n## Integrity\n\n| | check | examples |\n|---|---|---|\n");
    json_array_foreach(json_object_get(rep, "checks"), i, c)
    {
        Buf l = BUF_INIT, e = BUF_INIT;
        size_t k;
        const json_t *x;

        check_line(c, &l);
        json_array_foreach(json_object_get(c, "examples"), k, x)
        {
            if (k)
                buf_puts(&e, "; ");
            put_object(&e, x);
        }
        buf_printf(b, "| %s | ", json_is_true(json_object_get(c, "ok")) ? "\u2713" : "\u2717");
        md_cell(b, buf_cstr(&l));
        buf_puts(b, " | ");
        md_cell(b, e.len ? buf_cstr(&e) : "");
        buf_puts(b, " |\n");
        buf_release(&l);
        buf_release(&e);
    }
}
