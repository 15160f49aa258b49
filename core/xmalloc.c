/*
 * See xmalloc.h. These are the only places that call the libc allocator
 * directly, so an out-of-memory always produces the same message.
 */
#include "core/xmalloc.h"

#include <stdarg.h>

/* gcc 12 with -fsanitize reports a false "null format string" on the
 * size-probing vsnprintf below. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
#include <stdio.h>
#include <string.h>

_Noreturn void xalloc_die(void)
{
    fputs("tidemark: out of memory\n", stderr);
    abort();
}

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);

    if (!p)
        xalloc_die();
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (!p)
        xalloc_die();
    return p;
}

void *xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);

    if (!q)
        xalloc_die();
    return q;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char probe[1];
    int n;
    char *p;

    va_start(ap, fmt);
    n = vsnprintf(probe, sizeof(probe), fmt, ap);
    va_end(ap);
    if (n < 0)
        xalloc_die();
    p = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}
