/*
 * The text and Markdown renderings of a profile report, and the small
 * formatting helpers every renderer shares. Both read only the JSON report,
 * so what a reader sees is exactly what was stored. Findings come first,
 * ordered by severity; then one section per table; then relationships.
 */
#include "core/buf.h"
#include "core/xmalloc.h"
#include "migration/profile_int.h"

#include <stdio.h>
#include <string.h>

#define CELL_MAX 48 /* characters of a value shown in a table cell */

const char *profile_jstr(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));

    return s ? s : "";
}

long long profile_jint(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);

    if (json_is_integer(v))
        return (long long)json_integer_value(v);
    if (json_is_real(v))
        return (long long)json_real_value(v);
    return 0;
}

/* Copies at most max characters of s (whole UTF-8 sequences), controls as spaces, "..." if cut. */
static void clip(const char *s, char *buf, size_t bufsz, size_t max)
{
    size_t o = 0, chars = 0;

    for (; *s && chars < max; chars++) {
        size_t k = 1;

        while ((s[k] & 0xc0) == 0x80)
            k++;
        if (o + k + 4 >= bufsz)
            break;
        if ((unsigned char)*s < 0x20) {
            buf[o++] = ' ';
        } else if (k == 2 && (unsigned char)s[0] == 0xc2 && (unsigned char)s[1] < 0xa0) {
            /* C1 controls print as nothing: show them as the evidence they are */
            if (o + 10 >= bufsz)
                break;
            o += (size_t)snprintf(buf + o, bufsz - o, "\\u%04x", (unsigned char)s[1]);
        } else {
            memcpy(buf + o, s, k);
            o += k;
        }
        s += k;
    }
    if (*s && o + 4 < bufsz) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
}

void profile_fmt_value(const json_t *v, char *buf, size_t bufsz)
{
    if (json_is_string(v))
        clip(json_string_value(v), buf, bufsz, CELL_MAX);
    else if (json_is_integer(v))
        snprintf(buf, bufsz, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, bufsz, "%.4g", json_real_value(v));
    else if (json_is_true(v))
        snprintf(buf, bufsz, "true");
    else if (json_is_false(v))
        snprintf(buf, bufsz, "false");
    else
        snprintf(buf, bufsz, "NULL");
}

void profile_fmt_bytes(long long n, char *buf, size_t bufsz)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)n;
    int u = 0;

    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, bufsz, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void pk_text(const json_t *t, char *buf, size_t n)
{
    const json_t *pk = json_object_get(t, "primary_key");
    size_t i, o = 0;
    json_t *c;

    if (!json_is_array(pk)) {
        snprintf(buf, n, "none");
        return;
    }
    buf[0] = '\0';
    json_array_foreach(pk, i, c)
    {
        o += (size_t)snprintf(buf + o, o < n ? n - o : 0, "%s%s", i ? ", " : "",
                              json_string_value(c));
        if (o >= n)
            break;
    }
}

static void range_text(const json_t *c, char *buf, size_t n)
{
    char a[64], b[64];
    const json_t *lo = json_object_get(c, "min"), *hi = json_object_get(c, "max");

    if (!lo || json_is_null(lo)) {
        snprintf(buf, n, "-");
        return;
    }
    profile_fmt_value(lo, a, sizeof(a));
    profile_fmt_value(hi, b, sizeof(b));
    snprintf(buf, n, "%s .. %s", a, b);
}

/* ---- text ------------------------------------------------------------------ */

static void text_header(const json_t *r, Buf *o)
{
    const json_t *s = json_object_get(r, "summary");
    const json_t *fc = json_object_get(s, "findings");
    const json_t *tg = json_object_get(r, "target");
    const json_t *opt = json_object_get(r, "options");

    buf_printf(o, "tidemark profile of pipeline %s, taken %s\n", profile_jstr(r, "pipeline"),
               profile_jstr(r, "taken_at"));
    buf_printf(o, "source: %s (%s)", profile_jstr(json_object_get(r, "source"), "database"),
               profile_jstr(json_object_get(r, "source"), "encoding"));
    if (json_is_object(tg))
        buf_printf(o, "   target: %s (%s)", profile_jstr(tg, "database"),
                   profile_jstr(tg, "encoding"));
    buf_printf(o, "\n%lld tables, %lld columns, %lld rows, %.1f s", profile_jint(s, "tables"),
               profile_jint(s, "columns"), profile_jint(s, "rows"),
               json_number_value(json_object_get(r, "duration_seconds")));
    if (json_is_number(json_object_get(opt, "sample_pct")))
        buf_printf(o, ", statistics from a %.4g%% sample (row counts exact)",
                   json_number_value(json_object_get(opt, "sample_pct")));
    buf_printf(o, "\nfindings: %lld errors, %lld warnings, %lld info\n\n",
               profile_jint(fc, "error"), profile_jint(fc, "warning"), profile_jint(fc, "info"));
}

static void where(const json_t *f, char *buf, size_t n)
{
    const char *col = profile_jstr(f, "column");

    snprintf(buf, n, "%s%s%s", profile_jstr(f, "table"), *col ? "." : "", col);
}

void profile_render_text(const json_t *r, Buf *o)
{
    size_t i, j;
    json_t *f, *t, *c;
    char a[256], b[160];

    text_header(r, o);
    if (json_array_size(json_object_get(r, "findings"))) {
        buf_puts(o, "FINDINGS\n");
        json_array_foreach(json_object_get(r, "findings"), i, f)
        {
            where(f, a, sizeof(a));
            buf_printf(o, "  %-7s %-24s %s: %s\n", profile_jstr(f, "severity"),
                       profile_jstr(f, "code"), a, profile_jstr(f, "message"));
        }
        buf_putc(o, '\n');
    }
    json_array_foreach(json_object_get(r, "tables"), i, t)
    {
        pk_text(t, a, sizeof(a));
        profile_fmt_bytes(profile_jint(t, "total_size_bytes"), b, sizeof(b));
        buf_printf(o, "TABLE %s: %lld rows, %s, primary key: %s, replica identity %s\n",
                   profile_jstr(t, "display"), profile_jint(t, "row_count"), b, a,
                   profile_jstr(t, "replica_identity"));
        if (json_object_get(t, "error")) {
            buf_printf(o, "  FAILED: %s\n\n", profile_jstr(t, "error"));
            continue;
        }
        buf_printf(o, "  %-20s %-18s %14s %10s  %s\n", "column", "type", "nulls", "distinct",
                   "min .. max");
        json_array_foreach(json_object_get(t, "columns"), j, c)
        {
            char nulls[48];

            snprintf(nulls, sizeof(nulls), "%lld (%.1f%%)", profile_jint(c, "nulls"),
                     json_number_value(json_object_get(c, "nulls_pct")));
            range_text(c, a, sizeof(a));
            buf_printf(o, "  %-20s %-18s %14s %10lld  %s\n", profile_jstr(c, "name"),
                       profile_jstr(c, "type"), nulls, profile_jint(c, "distinct"), a);
        }
        buf_putc(o, '\n');
    }
    {
        const json_t *rel = json_object_get(r, "relationships");

        if (json_array_size(json_object_get(rel, "foreign_keys")) +
            json_array_size(json_object_get(rel, "candidates")))
            buf_puts(o, "RELATIONSHIPS\n");
        json_array_foreach(json_object_get(rel, "foreign_keys"), i, f)
        {
            buf_printf(o, "  foreign key %s: %s -> %s: %lld orphans in %lld rows\n",
                       profile_jstr(f, "name"), profile_jstr(f, "table"), profile_jstr(f, "parent"),
                       profile_jint(f, "orphans"), profile_jint(f, "checked"));
        }
        json_array_foreach(json_object_get(rel, "candidates"), i, f)
        {
            buf_printf(o, "  candidate %s.%s -> %s.%s: %.2f%% of %lld values found\n",
                       profile_jstr(f, "table"), profile_jstr(f, "column"),
                       profile_jstr(f, "parent"), profile_jstr(f, "parent_column"),
                       json_number_value(json_object_get(f, "containment_pct")),
                       profile_jint(f, "checked"));
        }
    }
}

/* ---- markdown --------------------------------------------------------------- */

/* A table cell: pipes escaped, line breaks gone. */
static void md_cell(Buf *o, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            buf_puts(o, "\\|");
        else if (*s == '\n' || *s == '\r')
            buf_putc(o, ' ');
        else
            buf_putc(o, *s);
    }
}

static void md_value(Buf *o, const json_t *v)
{
    char tmp[256];

    profile_fmt_value(v, tmp, sizeof(tmp));
    buf_puts(o, "`");
    for (char *p = tmp; *p; p++)
        if (*p == '`')
            *p = '\'';
    md_cell(o, tmp);
    buf_puts(o, "`");
}

static void md_findings(const json_t *r, Buf *o)
{
    size_t i, j;
    json_t *f, *e;

    buf_puts(o, "## Findings\n\n");
    if (!json_array_size(json_object_get(r, "findings"))) {
        buf_puts(o, "No findings.\n\n");
        return;
    }
    buf_puts(o, "| Severity | Where | Finding | Count | Details | Examples |\n"
                "|---|---|---|---:|---|---|\n");
    json_array_foreach(json_object_get(r, "findings"), i, f)
    {
        char w[256];

        where(f, w, sizeof(w));
        buf_printf(o, "| **%s** | ", profile_jstr(f, "severity"));
        md_cell(o, w);
        buf_printf(o, " | `%s` | %lld | ", profile_jstr(f, "code"), profile_jint(f, "count"));
        md_cell(o, profile_jstr(f, "message"));
        buf_puts(o, " | ");
        json_array_foreach(json_object_get(f, "examples"), j, e)
        {
            if (j)
                buf_puts(o, ", ");
            md_value(o, e);
        }
        buf_puts(o, " |\n");
    }
    buf_putc(o, '\n');
}

static void md_list(Buf *o, const json_t *arr, const char *vk, const char *ck, size_t max)
{
    size_t i;
    json_t *v;

    json_array_foreach(arr, i, v)
    {
        if (i >= max)
            break;
        if (i)
            buf_puts(o, ", ");
        md_value(o, json_object_get(v, vk));
        buf_printf(o, " %lld", profile_jint(v, ck));
    }
}

static void md_table(const json_t *t, Buf *o)
{
    char pk[256], sz[32], rng[160];
    size_t j;
    json_t *c;

    pk_text(t, pk, sizeof(pk));
    profile_fmt_bytes(profile_jint(t, "total_size_bytes"), sz, sizeof(sz));
    buf_puts(o, "### ");
    md_cell(o, profile_jstr(t, "display"));
    buf_printf(o, "\n\n%lld rows (baseline), %s, primary key: %s, replica identity %s",
               profile_jint(t, "row_count"), sz, pk, profile_jstr(t, "replica_identity"));
    if (json_is_true(json_object_get(t, "sampled")))
        buf_printf(o, ", statistics from %lld sampled rows", profile_jint(t, "profiled_rows"));
    buf_puts(o, ".\n\n");
    if (json_object_get(t, "error")) {
        buf_puts(o, "Could not be profiled: ");
        md_cell(o, profile_jstr(t, "error"));
        buf_puts(o, "\n\n");
        return;
    }
    buf_puts(o,
             "| Column | Type | Nulls | Empty/blank | Distinct | Min .. max | Length | Top values "
             "| Top masks |\n|---|---|---:|---:|---:|---|---|---|---|\n");
    json_array_foreach(json_object_get(t, "columns"), j, c)
    {
        const json_t *tx = json_object_get(c, "text");
        const json_t *len = json_object_get(tx, "length");

        buf_puts(o, "| ");
        md_cell(o, profile_jstr(c, "name"));
        buf_puts(o, " | ");
        md_cell(o, profile_jstr(c, "type"));
        buf_printf(o, " | %lld (%.1f%%) | ", profile_jint(c, "nulls"),
                   json_number_value(json_object_get(c, "nulls_pct")));
        if (tx)
            buf_printf(o, "%lld", profile_jint(tx, "empty") + profile_jint(tx, "blank"));
        buf_printf(o, " | %lld | ", profile_jint(c, "distinct"));
        range_text(c, rng, sizeof(rng));
        md_cell(o, rng);
        buf_puts(o, " | ");
        if (len && json_is_number(json_object_get(len, "min")))
            buf_printf(o, "%lld-%lld, avg %.1f", profile_jint(len, "min"), profile_jint(len, "max"),
                       json_number_value(json_object_get(len, "avg")));
        buf_puts(o, " | ");
        md_list(o, json_object_get(c, "top_values"), "value", "count", 5);
        buf_puts(o, " | ");
        md_list(o, json_object_get(tx, "masks"), "mask", "count", 3);
        buf_puts(o, " |\n");
    }
    buf_putc(o, '\n');
}

void profile_render_markdown(const json_t *r, Buf *o)
{
    const json_t *s = json_object_get(r, "summary");
    const json_t *rel = json_object_get(r, "relationships");
    const json_t *tg = json_object_get(r, "target");
    size_t i;
    json_t *t, *f;

    buf_puts(o, "# Data profile: pipeline `");
    md_cell(o, profile_jstr(r, "pipeline"));
    buf_printf(o, "`\n\nTaken %s from database `%s` (%s)", profile_jstr(r, "taken_at"),
               profile_jstr(json_object_get(r, "source"), "database"),
               profile_jstr(json_object_get(r, "source"), "encoding"));
    if (json_is_object(tg))
        buf_printf(o, ", checked against target `%s` (%s)", profile_jstr(tg, "database"),
                   profile_jstr(tg, "encoding"));
    buf_printf(o, ": %lld tables, %lld columns, %lld rows, in %.1f s.\n\n",
               profile_jint(s, "tables"), profile_jint(s, "columns"), profile_jint(s, "rows"),
               json_number_value(json_object_get(r, "duration_seconds")));
    md_findings(r, o);
    buf_puts(o, "## Tables\n\n");
    json_array_foreach(json_object_get(r, "tables"), i, t)
    {
        md_table(t, o);
    }
    buf_puts(o, "## Relationships\n\n");
    if (!json_array_size(json_object_get(rel, "foreign_keys")) &&
        !json_array_size(json_object_get(rel, "candidates")))
        buf_puts(o, "None declared or found.\n");
    json_array_foreach(json_object_get(rel, "foreign_keys"), i, f)
    {
        buf_printf(o, "- foreign key `%s`: %s -> %s, %lld orphans in %lld rows\n",
                   profile_jstr(f, "name"), profile_jstr(f, "table"), profile_jstr(f, "parent"),
                   profile_jint(f, "orphans"), profile_jint(f, "checked"));
    }
    json_array_foreach(json_object_get(rel, "candidates"), i, f)
    {
        buf_printf(o, "- candidate %s.%s -> %s.%s: %.2f%% of %lld values found\n",
                   profile_jstr(f, "table"), profile_jstr(f, "column"), profile_jstr(f, "parent"),
                   profile_jstr(f, "parent_column"),
                   json_number_value(json_object_get(f, "containment_pct")),
                   profile_jint(f, "checked"));
    }
}
