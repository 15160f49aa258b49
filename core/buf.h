/*
 * A growable byte buffer, used to build SQL text, COPY rows and protocol
 * messages. Appends never fail (they abort on out-of-memory like xmalloc),
 * which keeps the callers' error paths about real errors only.
 */
#ifndef TM_BUF_H
#define TM_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct Buf {
    char *data;
    size_t len;
    size_t cap;
} Buf;

#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void buf_reserve(Buf *b, size_t extra);
void buf_append(Buf *b, const void *data, size_t len);
void buf_puts(Buf *b, const char *s);
void buf_putc(Buf *b, char c);
/* One element of a PostgreSQL array literal the caller opened with '{':
 * double-quoted, '"' and '\\' escaped, a comma before all but the first. */
void buf_put_array_elem(Buf *b, const char *s);
void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_put_u8(Buf *b, uint8_t v);
void buf_put_be32(Buf *b, uint32_t v);
void buf_put_be64(Buf *b, uint64_t v);
/* Returns a NUL-terminated view of the contents (the NUL is not counted in len). */
const char *buf_cstr(Buf *b);
void buf_clear(Buf *b);
/* Appends the whole file; returns 0 or -errno with tm_error() "cannot open/read: why". */
int buf_read_file(Buf *b, const char *path);
void buf_release(Buf *b);

#endif
