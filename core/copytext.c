/*
 * COPY text-format row parser (see copytext.h). Follows the rules of
 * PostgreSQL's CopyReadAttributesText: the NULL marker is recognised on the
 * raw field before unescaping, so an escaped "\\N" is the two-character
 * string, and a backslash before any other character yields that character.
 */
#include "core/copytext.h"
#include "core/error.h"
#include "core/xmalloc.h"
#include "core/hex.h"

#include <string.h>

static void ensure_cols(CopyText *ct, size_t n)
{
    if (n <= ct->cap)
        return;
    ct->cap = n + 8;
    ct->cols = xrealloc(ct->cols, ct->cap * sizeof(*ct->cols));
    ct->offs = xrealloc(ct->offs, ct->cap * sizeof(*ct->offs));
}

/* Unescapes field [p, end) onto ct->data; -EPROTO on a trailing lone backslash. */
static int unescape(CopyText *ct, const char *p, const char *end)
{
    while (p < end) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));

        if (!bs) {
            buf_append(&ct->data, p, (size_t)(end - p));
            return 0;
        }
        buf_append(&ct->data, p, (size_t)(bs - p));
        p = bs + 1;
        if (p == end)
            return tm_fail(-EPROTO, "COPY row: a field ends in a lone backslash");
        char c = *p++;

        switch (c) {
        case 'b':
            buf_putc(&ct->data, '\b');
            break;
        case 'f':
            buf_putc(&ct->data, '\f');
            break;
        case 'n':
            buf_putc(&ct->data, '\n');
            break;
        case 'r':
            buf_putc(&ct->data, '\r');
            break;
        case 't':
            buf_putc(&ct->data, '\t');
            break;
        case 'v':
            buf_putc(&ct->data, '\v');
            break;
        case 'x':
            if (p < end && hex_value(*p) >= 0) {
                int v = hex_value(*p++);

                if (p < end && hex_value(*p) >= 0)
                    v = v * 16 + hex_value(*p++);
                buf_putc(&ct->data, (char)v);
            } else {
                buf_putc(&ct->data, 'x');
            }
            break;
        default:
            if (c >= '0' && c <= '7') {
                int v = c - '0';

                for (int i = 0; i < 2 && p < end && *p >= '0' && *p <= '7'; i++)
                    v = v * 8 + (*p++ - '0');
                buf_putc(&ct->data, (char)(v & 0377));
            } else {
                buf_putc(&ct->data, c);
            }
            break;
        }
    }
    return 0;
}

int copytext_parse(CopyText *ct, const char *row, size_t len, uint16_t ncols, Tuple *out)
{
    const char *p = row, *end = row + len;
    size_t n = 0;

    if (len > 0 && row[len - 1] == '\n')
        end--;
    buf_clear(&ct->data);
    ensure_cols(ct, (size_t)ncols + 1);
    if (ncols == 0 && p == end) {
        out->ncols = 0;
        out->cols = ct->cols;
        return 0;
    }
    for (;;) {
        const char *tab = memchr(p, '\t', (size_t)(end - p));
        const char *fend = tab ? tab : end;

        if (n == ncols)
            return tm_fail(-EPROTO, "COPY row has more than the %u expected fields", ncols);
        if (fend - p == 2 && p[0] == '\\' && p[1] == 'N') {
            ct->cols[n] = (ColValue){.state = COL_NULL};
        } else {
            int rc;

            ct->offs[n] = ct->data.len;
            rc = unescape(ct, p, fend);
            if (rc < 0)
                return rc;
            ct->cols[n] =
                (ColValue){.state = COL_TEXT, .len = (uint32_t)(ct->data.len - ct->offs[n])};
        }
        n++;
        if (!tab)
            break;
        p = tab + 1;
    }
    if (n != ncols)
        return tm_fail(-EPROTO, "COPY row has %zu fields, expected %u", n, ncols);
    /* Pointers only now: ct->data may have moved while it grew. */
    buf_cstr(&ct->data);
    for (size_t i = 0; i < n; i++)
        if (ct->cols[i].state == COL_TEXT)
            ct->cols[i].data = ct->data.data + ct->offs[i];
    out->ncols = ncols;
    out->cols = ct->cols;
    return 0;
}

void copytext_release(CopyText *ct)
{
    buf_release(&ct->data);
    free(ct->cols);
    free(ct->offs);
    ct->cols = NULL;
    ct->offs = NULL;
    ct->cap = 0;
}
