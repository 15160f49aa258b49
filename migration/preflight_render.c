/*
 * The preflight report as text (one line per finding, problems first), JSON
 * (the report as it is) or Markdown (a table for a change ticket).
 */
#include "migration/preflight_int.h"
#include "core/buf.h"
#include "core/xmalloc.h"

#include <stdlib.h>
#include <string.h>

static const char *const order[] = {"error", "warning", "info", "ok"};

static const char *str(json_t *f, const char *key)
{
    const char *s = json_string_value(json_object_get(f, key));

    return s ? s : "";
}

static void md_cell(Buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            buf_putc(b, '\\');
        buf_putc(b, *s == '\n' ? ' ' : *s);
    }
}

char *preflight_render(const json_t *report, const char *format)
{
    json_t *findings = json_object_get(report, "findings");
    json_t *sum = json_object_get(report, "summary");
    Buf b = BUF_INIT;
    char *out;
    json_t *f;
    size_t i;
    bool md = strcmp(format, "markdown") == 0 || strcmp(format, "md") == 0;

    if (strcmp(format, "json") == 0) {
        out = json_dumps(report, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        buf_puts(&b, out);
        buf_putc(&b, '\n');
        free(out);
        goto done;
    }
    if (md)
        buf_printf(&b,
                   "# Preflight of pipeline `%s`\n\n| severity | side | check | subject | finding"
                   " | fix |\n|---|---|---|---|---|---|\n",
                   str((json_t *)report, "pipeline"));
    else
        buf_printf(&b, "preflight of pipeline %s\n", str((json_t *)report, "pipeline"));
    for (size_t k = 0; k < 4; k++)
        json_array_foreach(findings, i, f)
        {
            if (strcmp(str(f, "severity"), order[k]) != 0)
                continue;
            if (md) {
                const char *cells[] = {order[k],          str(f, "side"),    str(f, "check"),
                                       str(f, "subject"), str(f, "message"), str(f, "fix")};

                buf_putc(&b, '|');
                for (size_t c = 0; c < 6; c++) {
                    buf_putc(&b, ' ');
                    md_cell(&b, cells[c]);
                    buf_puts(&b, " |");
                }
                buf_putc(&b, '\n');
                continue;
            }
            buf_printf(&b, "%-8s %-7s %-10s %s%s%s", order[k], str(f, "side"), str(f, "check"),
                       str(f, "subject"), *str(f, "subject") ? ": " : "", str(f, "message"));
            if (*str(f, "fix") && k < 3)
                buf_printf(&b, "\n%28sfix: %s", "", str(f, "fix"));
            buf_putc(&b, '\n');
        }
    buf_printf(&b, "%s%lld error(s), %lld warning(s), %lld note(s), %lld check(s) passed\n",
               md ? "\n" : "", (long long)json_integer_value(json_object_get(sum, "errors")),
               (long long)json_integer_value(json_object_get(sum, "warnings")),
               (long long)json_integer_value(json_object_get(sum, "info")),
               (long long)json_integer_value(json_object_get(sum, "ok")));
done:
    out = xstrdup(buf_cstr(&b));
    buf_release(&b);
    return out;
}
