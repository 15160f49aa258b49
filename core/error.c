/*
 * Thread-local storage for the last error message (see error.h). Messages are
 * truncated to a fixed size: an error path must never allocate.
 */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define TM_ERRMSG_MAX 1024

static _Thread_local char errmsg[TM_ERRMSG_MAX];

int tm_fail(int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
    va_end(ap);
    return code;
}

int tm_fail_ctx(int code, const char *fmt, ...)
{
    char prefix[TM_ERRMSG_MAX];
    char old[TM_ERRMSG_MAX];
    va_list ap;

    memcpy(old, errmsg, sizeof(old));
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    size_t n = strnlen(prefix, sizeof(prefix) - 1);

    /* Built by hand: snprintf("%s: %s") of two full buffers trips -Wformat-truncation. */
    memcpy(errmsg, prefix, n);
    if (n + 2 < sizeof(errmsg)) {
        memcpy(errmsg + n, ": ", 2);
        n += 2;
    }
    size_t rest = sizeof(errmsg) - 1 - n;
    size_t olen = strnlen(old, rest);
    memcpy(errmsg + n, old, olen);
    errmsg[n + olen] = '\0';
    return code;
}

const char *tm_error(void)
{
    return errmsg;
}

void tm_error_clear(void)
{
    errmsg[0] = '\0';
}
