/*
 * Helpers shared by the transform unit tests: one arena per test binary and
 * assertions that compare an XfStr result with expected text (or NULL) and
 * print the value and tm_error() when a call fails.
 */
#ifndef TM_XF_TEST_H
#define TM_XF_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/error.h"
#include "core/transform/xf.h"

#include <string.h>

static Arena *xt_arena;

static inline Arena *xt_a(void)
{
    if (!xt_arena)
        xt_arena = arena_new(0);
    return xt_arena;
}

static inline void xt_eq(XfStr got, const char *want, const char *ctx)
{
    if (!want) {
        if (got.s)
            fail_msg("%s: expected NULL, got '%.*s'", ctx ? ctx : "", (int)got.len,
                     got.s ? got.s : "");
        return;
    }
    if (!got.s)
        fail_msg("%s: expected '%s', got NULL", ctx, want);
    if (got.len != strlen(want) || memcmp(got.s, want, got.len) != 0)
        fail_msg("%s: expected '%s', got '%.*s'", ctx, want, (int)got.len, got.s);
}

/* Runs call (which writes &out), asserts success and the result. */
#define XT_OK(want, call)                                                                          \
    do {                                                                                           \
        XfStr out = {(const char *)1, 0};                                                          \
        int rc_ = (call);                                                                          \
        if (rc_ != 0)                                                                              \
            fail_msg("%s failed (%d): %s", #call, rc_, tm_error());                                \
        xt_eq(out, (want), #call);                                                                 \
    } while (0)

/* Asserts the call fails and tm_error() contains needle. */
#define XT_ERR(needle, call)                                                                       \
    do {                                                                                           \
        XfStr out = {NULL, 0};                                                                     \
        tm_error_clear();                                                                          \
        int rc_ = (call);                                                                          \
        if (rc_ >= 0)                                                                              \
            fail_msg("%s succeeded ('%.*s'), expected an error", #call, (int)out.len,              \
                     out.s ? out.s : "NULL");                                                      \
        if (!strstr(tm_error(), (needle)))                                                         \
            fail_msg("%s: error \"%s\" lacks \"%s\"", #call, tm_error(), (needle));                \
    } while (0)

#define S(lit) XF_STR(lit)

#endif
