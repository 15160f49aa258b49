/*
 * Allocation wrappers that abort on exhaustion. A daemon that cannot allocate
 * a few bytes cannot make progress safely; dying loudly lets systemd restart
 * it from the durable watermark, which loses nothing.
 */
#ifndef TM_XMALLOC_H
#define TM_XMALLOC_H

#include <stddef.h>
#include <stdlib.h>

_Noreturn void xalloc_die(void);
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
