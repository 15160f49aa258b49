/*
 * Currency conversion with a fixed configured rate: amount × rate computed
 * exactly (decimal.c), then rounded once to the target scale with the mode
 * the config names. Floating point would turn 0.1 × 3 into 0.30000000000000004
 * and make a reconciliation against the source impossible.
 */
#include "core/transform/xf.h"

#include <errno.h>

int xf_currency(const XfCurrency *c, XfStr in, Arena *a, XfStr *out)
{
    XfDec amount, r;
    char buf[XF_DEC_TEXT_MAX];
    int rc;

    if (!in.s) {
        *out = in;
        return 0;
    }
    rc = xf_dec_parse(in.s, in.len, &amount);
    if (rc < 0)
        return xf_fail(rc, "currency", in,
                       rc == -ERANGE ? "too many digits" : "not a decimal amount");
    if (xf_dec_mul(&amount, &c->rate, &r) < 0 || xf_dec_round(&r, c->scale, c->mode) < 0)
        return xf_fail(-ERANGE, "currency", in, "the converted amount has too many digits");
    size_t n = xf_dec_format(&r, buf);
    *out = xf_dup(a, buf, n);
    return 0;
}
