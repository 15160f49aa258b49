/*
 * Prometheus text exposition writers (see prom.h). Number formatting is the
 * part worth care: counters are doubles in the format but operators read
 * them as integers, so exact integers print as such, everything else with
 * enough digits to round-trip.
 */
#include "daemon/prom.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_help(Buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            buf_puts(b, "\\\\");
        else if (*s == '\n')
            buf_puts(b, "\\n");
        else
            buf_putc(b, *s);
    }
}

static void put_value(Buf *b, double v)
{
    if (isnan(v))
        buf_puts(b, "NaN");
    else if (isinf(v))
        buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    /* Below 2^53 every integer is exact in a double: print it whole. */
    else if (v == floor(v) && fabs(v) < 9007199254740992.0)
        buf_printf(b, "%.0f", v);
    else {
        /* The shortest of 15 or 17 digits that reads back as the same double. */
        char tmp[40];

        snprintf(tmp, sizeof(tmp), "%.15g", v);
        if (strtod(tmp, NULL) != v)
            snprintf(tmp, sizeof(tmp), "%.17g", v);
        buf_puts(b, tmp);
    }
}

void prom_family(Buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s ", name);
    put_help(b, help ? help : "");
    buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

void prom_sample(Buf *b, const char *name, const char *labels, double value)
{
    buf_puts(b, name);
    if (labels && *labels)
        buf_printf(b, "{%s}", labels);
    buf_putc(b, ' ');
    put_value(b, value);
    buf_putc(b, '\n');
}

void prom_label_escape(Buf *b, const char *value)
{
    for (const char *s = value ? value : ""; *s; s++) {
        if (*s == '\\')
            buf_puts(b, "\\\\");
        else if (*s == '"')
            buf_puts(b, "\\\"");
        else if (*s == '\n')
            buf_puts(b, "\\n");
        else
            buf_putc(b, *s);
    }
}

void prom_label(Buf *labels, const char *key, const char *value)
{
    if (labels->len)
        buf_putc(labels, ',');
    buf_printf(labels, "%s=\"", key);
    prom_label_escape(labels, value);
    buf_putc(labels, '"');
}
