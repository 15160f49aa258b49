/*
 * The HTML rendering of a profile report: one self-contained page (inline
 * CSS, no scripts, no external resources, so it can be mailed or archived)
 * with the findings first, then a card per table whose numeric and date
 * columns carry their histogram as an inline SVG bar chart.
 */
#include "core/buf.h"
#include "migration/profile_int.h"

#include <stdio.h>
#include <string.h>

#define CHART_W 300
#define CHART_H 80

static void esc(Buf *o, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            buf_puts(o, "&amp;");
            break;
        case '<':
            buf_puts(o, "&lt;");
            break;
        case '>':
            buf_puts(o, "&gt;");
            break;
        case '"':
            buf_puts(o, "&quot;");
            break;
        case '\'':
            buf_puts(o, "&#39;");
            break;
        default:
            buf_putc(o, *s);
        }
    }
}

static void esc_value(Buf *o, const json_t *v)
{
    char tmp[256];

    profile_fmt_value(v, tmp, sizeof(tmp));
    esc(o, tmp);
}

static const char CSS[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}"
    "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top;text-align:left}"
    "th{background:#f3f3f3}code{background:#f6f6f6;padding:0 2px}"
    ".error{color:#fff;background:#c0392b}.warning{background:#f5c542}.info{background:#d6eaf8}"
    ".sev{font-weight:bold;padding:1px 6px;border-radius:3px}"
    ".num{text-align:right}svg rect{fill:#3c78b5}svg text{font-size:10px;fill:#555}"
    "section{margin-bottom:2em}";

/* An inline SVG bar chart of a histogram, each bar titled with its range and count. */
static void chart(const json_t *hist, Buf *o)
{
    const json_t *b = json_object_get(hist, "buckets");
    size_t n = json_array_size(b), i;
    long long max = 1;
    json_t *k;
    double w;

    if (!n)
        return;
    json_array_foreach(b, i, k)
    {
        if (profile_jint(k, "count") > max)
            max = profile_jint(k, "count");
    }
    w = (double)CHART_W / (double)n;
    buf_printf(o,
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" role=\"img\">",
               CHART_W, CHART_H + 14, CHART_W, CHART_H + 14);
    json_array_foreach(b, i, k)
    {
        double h = (double)CHART_H * (double)profile_jint(k, "count") / (double)max;

        buf_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"><title>",
                   (double)i * w, (double)CHART_H - h, w > 2 ? w - 1 : w, h);
        esc(o, profile_jstr(k, "lo"));
        buf_puts(o, " - ");
        esc(o, profile_jstr(k, "hi"));
        buf_printf(o, ": %lld</title></rect>", profile_jint(k, "count"));
    }
    buf_printf(o, "<text x=\"0\" y=\"%d\">", CHART_H + 12);
    esc(o, profile_jstr(json_array_get(b, 0), "lo"));
    buf_printf(o, "</text><text x=\"%d\" y=\"%d\" text-anchor=\"end\">", CHART_W, CHART_H + 12);
    esc(o, profile_jstr(json_array_get(b, n - 1), "hi"));
    buf_puts(o, "</text></svg>");
}

static void findings(const json_t *r, Buf *o)
{
    size_t i, j;
    json_t *f, *e;

    buf_puts(o, "<section><h2>Findings</h2>");
    if (!json_array_size(json_object_get(r, "findings"))) {
        buf_puts(o, "<p>No findings.</p></section>");
        return;
    }
    buf_puts(o, "<table><tr><th>Severity</th><th>Where</th><th>Finding</th><th>Count</th>"
                "<th>Details</th><th>Examples</th></tr>");
    json_array_foreach(json_object_get(r, "findings"), i, f)
    {
        const char *sev = profile_jstr(f, "severity");

        buf_printf(o, "<tr><td><span class=\"sev %s\">%s</span></td><td>",
                   strcmp(sev, "error") == 0     ? "error"
                   : strcmp(sev, "warning") == 0 ? "warning"
                                                 : "info",
                   strcmp(sev, "error") == 0     ? "error"
                   : strcmp(sev, "warning") == 0 ? "warning"
                                                 : "info");
        esc(o, profile_jstr(f, "table"));
        if (*profile_jstr(f, "column")) {
            buf_putc(o, '.');
            esc(o, profile_jstr(f, "column"));
        }
        buf_puts(o, "</td><td><code>");
        esc(o, profile_jstr(f, "code"));
        buf_printf(o, "</code></td><td class=\"num\">%lld</td><td>", profile_jint(f, "count"));
        esc(o, profile_jstr(f, "message"));
        buf_puts(o, "</td><td>");
        json_array_foreach(json_object_get(f, "examples"), j, e)
        {
            buf_puts(o, "<code>");
            esc_value(o, e);
            buf_puts(o, "</code> ");
        }
        buf_puts(o, "</td></tr>");
    }
    buf_puts(o, "</table></section>");
}

static void list(Buf *o, const json_t *arr, const char *vk, size_t max)
{
    size_t i;
    json_t *v;

    json_array_foreach(arr, i, v)
    {
        if (i >= max)
            break;
        buf_puts(o, "<code>");
        esc_value(o, json_object_get(v, vk));
        buf_printf(o, "</code>&nbsp;%lld<br>", profile_jint(v, "count"));
    }
}

static void table(const json_t *t, Buf *o)
{
    char sz[32];
    size_t j;
    json_t *c;

    profile_fmt_bytes(profile_jint(t, "total_size_bytes"), sz, sizeof(sz));
    buf_puts(o, "<section><h3>");
    esc(o, profile_jstr(t, "display"));
    buf_printf(o, "</h3><p>%lld rows (baseline), %s, primary key: ", profile_jint(t, "row_count"),
               sz);
    if (json_is_array(json_object_get(t, "primary_key"))) {
        size_t i;
        json_t *k;

        json_array_foreach(json_object_get(t, "primary_key"), i, k)
        {
            if (i)
                buf_puts(o, ", ");
            esc(o, json_string_value(k));
        }
    } else {
        buf_puts(o, "<b>none</b>");
    }
    buf_printf(o, ", replica identity %s</p>", profile_jstr(t, "replica_identity"));
    if (json_object_get(t, "error")) {
        buf_puts(o, "<p class=\"error\">");
        esc(o, profile_jstr(t, "error"));
        buf_puts(o, "</p></section>");
        return;
    }
    buf_puts(o, "<table><tr><th>Column</th><th>Type</th><th>Nulls</th><th>Distinct</th>"
                "<th>Min</th><th>Max</th><th>Top values</th><th>Top masks</th>"
                "<th>Distribution</th></tr>");
    json_array_foreach(json_object_get(t, "columns"), j, c)
    {
        const json_t *tx = json_object_get(c, "text");

        buf_puts(o, "<tr><td>");
        esc(o, profile_jstr(c, "name"));
        buf_puts(o, "</td><td>");
        esc(o, profile_jstr(c, "type"));
        buf_printf(o, "</td><td class=\"num\">%lld (%.1f%%)</td><td class=\"num\">%lld</td><td>",
                   profile_jint(c, "nulls"), json_number_value(json_object_get(c, "nulls_pct")),
                   profile_jint(c, "distinct"));
        if (json_object_get(c, "min"))
            esc_value(o, json_object_get(c, "min"));
        buf_puts(o, "</td><td>");
        if (json_object_get(c, "max"))
            esc_value(o, json_object_get(c, "max"));
        buf_puts(o, "</td><td>");
        list(o, json_object_get(c, "top_values"), "value", 5);
        buf_puts(o, "</td><td>");
        list(o, json_object_get(tx, "masks"), "mask", 3);
        buf_puts(o, "</td><td>");
        if (json_object_get(c, "histogram"))
            chart(json_object_get(c, "histogram"), o);
        buf_puts(o, "</td></tr>");
    }
    buf_puts(o, "</table></section>");
}

void profile_render_html(const json_t *r, Buf *o)
{
    const json_t *s = json_object_get(r, "summary");
    const json_t *rel = json_object_get(r, "relationships");
    size_t i;
    json_t *t, *f;

    buf_puts(o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
                "tidemark profile: ");
    esc(o, profile_jstr(r, "pipeline"));
    buf_printf(o, "</title><style>%s</style></head><body><h1>Data profile: ", CSS);
    esc(o, profile_jstr(r, "pipeline"));
    buf_puts(o, "</h1><p>Taken ");
    esc(o, profile_jstr(r, "taken_at"));
    buf_puts(o, " from <code>");
    esc(o, profile_jstr(json_object_get(r, "source"), "database"));
    buf_printf(o, "</code> (%s): %lld tables, %lld columns, %lld rows, in %.1f s.</p>",
               profile_jstr(json_object_get(r, "source"), "encoding"), profile_jint(s, "tables"),
               profile_jint(s, "columns"), profile_jint(s, "rows"),
               json_number_value(json_object_get(r, "duration_seconds")));
    findings(r, o);
    buf_puts(o, "<h2>Tables</h2>");
    json_array_foreach(json_object_get(r, "tables"), i, t)
    {
        table(t, o);
    }
    buf_puts(o, "<section><h2>Relationships</h2><ul>");
    json_array_foreach(json_object_get(rel, "foreign_keys"), i, f)
    {
        buf_puts(o, "<li>foreign key <code>");
        esc(o, profile_jstr(f, "name"));
        buf_puts(o, "</code>: ");
        esc(o, profile_jstr(f, "table"));
        buf_puts(o, " &rarr; ");
        esc(o, profile_jstr(f, "parent"));
        buf_printf(o, ", %lld orphans in %lld rows</li>", profile_jint(f, "orphans"),
                   profile_jint(f, "checked"));
    }
    json_array_foreach(json_object_get(rel, "candidates"), i, f)
    {
        buf_puts(o, "<li>candidate ");
        esc(o, profile_jstr(f, "table"));
        buf_putc(o, '.');
        esc(o, profile_jstr(f, "column"));
        buf_puts(o, " &rarr; ");
        esc(o, profile_jstr(f, "parent"));
        buf_putc(o, '.');
        esc(o, profile_jstr(f, "parent_column"));
        buf_printf(o, ": %.2f%% of %lld values found</li>",
                   json_number_value(json_object_get(f, "containment_pct")),
                   profile_jint(f, "checked"));
    }
    buf_puts(o, "</ul></section></body></html>\n");
}
