/*
 * PostgreSQL COPY text-format rows, parsed into the change vocabulary: a
 * row of tab-separated fields, \N for NULL, backslash escapes (\b \f \n \r \t
 * \v \\, \ooo octal, \xhh hex, any other escaped character stands for
 * itself). The initial copy hands sinks rows in this form; a sink that does
 * not write COPY back (Kafka) needs each value as a Tuple column, exactly as
 * the stream delivers them, so one renderer serves both paths.
 */
#ifndef TM_COPYTEXT_H
#define TM_COPYTEXT_H

#include "core/buf.h"
#include "core/change.h"

#include <stddef.h>
#include <stdint.h>

/* Reusable parser state: the last row's unescaped values and columns. */
typedef struct CopyText {
    Buf data;
    ColValue *cols;
    size_t *offs;
    size_t cap;
} CopyText;

#define COPYTEXT_INIT                                                                              \
    {                                                                                              \
        BUF_INIT, NULL, NULL, 0                                                                    \
    }

/*
 * Parses one row (one trailing '\n' is allowed) into *out: COL_TEXT or
 * COL_NULL columns pointing into ct, valid until the next call. Returns 0, or
 * -EPROTO with tm_error() set when the row does not have ncols fields or ends
 * in a lone backslash.
 */
int copytext_parse(CopyText *ct, const char *row, size_t len, uint16_t ncols, Tuple *out);

void copytext_release(CopyText *ct);

#endif
