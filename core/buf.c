/*
 * Buf implementation (see buf.h). Growth doubles so appending n bytes costs
 * amortised O(n).
 */
#include "core/buf.h"
#include "core/error.h"
#include "core/xmalloc.h"

#include <stdarg.h>

/* gcc 12 with -fsanitize reports a false "null format string" on the
 * size-probing vsnprintf below. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
#include <stdio.h>
#include <errno.h>
#include <string.h>

void buf_reserve(Buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;

    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void buf_append(Buf *b, const void *data, size_t len)
{
    buf_reserve(b, len);
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void buf_puts(Buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_putc(Buf *b, char c)
{
    buf_append(b, &c, 1);
}

void buf_put_array_elem(Buf *b, const char *s)
{
    if (b->len && b->data[b->len - 1] != '{')
        buf_putc(b, ',');
    buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            buf_putc(b, '\\');
        buf_putc(b, *s);
    }
    buf_putc(b, '"');
}

void buf_printf(Buf *b, const char *fmt, ...)
{
    va_list ap;
    char probe[1];
    int n;

    va_start(ap, fmt);
    n = vsnprintf(probe, sizeof(probe), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void buf_put_u8(Buf *b, uint8_t v)
{
    buf_append(b, &v, 1);
}

void buf_put_be32(Buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

    buf_append(b, x, 4);
}

void buf_put_be64(Buf *b, uint64_t v)
{
    buf_put_be32(b, (uint32_t)(v >> 32));
    buf_put_be32(b, (uint32_t)v);
}

const char *buf_cstr(Buf *b)
{
    buf_reserve(b, 0);
    b->data[b->len] = '\0'; /* a buffer never written to has no terminator yet */
    return b->data;
}

void buf_clear(Buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void buf_release(Buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int buf_read_file(Buf *b, const char *path)
{
    FILE *f = fopen(path, "rb");

    if (!f)
        return tm_fail(-errno, "cannot open: %s", strerror(errno));
    for (;;) {
        buf_reserve(b, 8192);
        size_t got = fread(b->data + b->len, 1, b->cap - b->len - 1, f);

        b->len += got;
        if (got == 0)
            break;
    }
    b->data[b->len] = '\0';
    if (ferror(f)) {
        int err = errno ? errno : EIO;

        fclose(f);
        return tm_fail(-err, "cannot read: %s", strerror(err));
    }
    fclose(f);
    return 0;
}
