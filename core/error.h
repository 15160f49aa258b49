/*
 * The one error contract of tidemark. Every fallible function returns 0 on
 * success or a negative errno-style code, and leaves a human sentence
 * describing the failure in a thread-local slot, so a caller several frames
 * up can print one clear line without each layer inventing its own error
 * type. tm_fail() sets the message and returns the code in one expression.
 */
#ifndef TM_ERROR_H
#define TM_ERROR_H

#include <errno.h>
#include <stddef.h>

#if defined(__GNUC__)
#define TM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TM_PRINTF(a, b)
#endif

/* Sets the thread's last error message and returns code (which must be < 0). */
int tm_fail(int code, const char *fmt, ...) TM_PRINTF(2, 3);

/* Prefixes the current message with more context ("while X: <old>"), returns code. */
int tm_fail_ctx(int code, const char *fmt, ...) TM_PRINTF(2, 3);

/* The last message set on this thread ("" when none). */
const char *tm_error(void);

void tm_error_clear(void);

/*
 * The target no longer holds what the source says it should (an UPDATE or
 * DELETE matched no row, or more than one). Not retried: the pipeline halts
 * and stays halted across restarts until an operator runs `tidemark resume`.
 */
#define TM_EDIVERGED (-ENOTRECOVERABLE)

#endif
