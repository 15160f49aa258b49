/*
 * A small exact decimal for money and numeric casts: up to XF_DEC_DIGITS
 * significant decimal digits (76, so the product of two 38-digit values is
 * still exact) with a scale, stored as one digit per byte. Nothing here uses
 * floating point: a converted amount is the exact product, then rounded once
 * with the configured mode, which is what an auditor can reproduce.
 */
#ifndef TM_DECIMAL_H
#define TM_DECIMAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XF_DEC_DIGITS 76

typedef enum XfRound {
    XF_ROUND_HALF_UP,   /* away from zero on a tie (PostgreSQL's numeric round) */
    XF_ROUND_HALF_EVEN, /* banker's rounding */
    XF_ROUND_DOWN,      /* toward zero (truncate) */
    XF_ROUND_UP,        /* away from zero */
} XfRound;

typedef struct XfDec {
    bool neg;
    uint8_t ndig;  /* digits in d, most significant first; 0 means zero */
    int16_t scale; /* digits after the decimal point; the value is d * 10^-scale */
    uint8_t d[XF_DEC_DIGITS];
} XfDec;

/*
 * Parses [blanks][+-]digits[.digits][e[+-]exp][blanks]. Returns 0, -EINVAL
 * for a malformed number, -ERANGE when it has more than XF_DEC_DIGITS
 * significant digits; tm_error() is left to the caller.
 */
int xf_dec_parse(const char *s, size_t len, XfDec *out);

/* "half_up", "half_even", "down", "up" → mode; -1 when unknown. */
int xf_round_from_name(const char *name);

/* Exact product; -ERANGE when it needs more than XF_DEC_DIGITS digits. */
int xf_dec_mul(const XfDec *a, const XfDec *b, XfDec *out);

/* Rounds (or zero-extends) to exactly scale digits after the point. -ERANGE on overflow. */
int xf_dec_round(XfDec *v, int scale, XfRound mode);

/* Digits before the decimal point (0 for |v| < 1). */
int xf_dec_int_digits(const XfDec *v);

/* Scales are kept in 0..XF_DEC_MAX_SCALE (an exponent is applied at parse time). */
#define XF_DEC_MAX_SCALE (2 * XF_DEC_DIGITS)

/* Writes the plain text form ("-12.50", "0.001"), NUL-terminated; returns its length. */
size_t xf_dec_format(const XfDec *v, char *buf);
#define XF_DEC_TEXT_MAX (XF_DEC_DIGITS + XF_DEC_MAX_SCALE + 4)

#endif
