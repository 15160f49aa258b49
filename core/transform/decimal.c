/*
 * Exact decimal arithmetic for the transforms (see decimal.h): parse, exact
 * multiply, round once with an explicit mode, format. One digit per byte is
 * slower than binary limbs but trivially right, and a money column's value
 * has a few dozen digits at most.
 */
#include "core/transform/decimal.h"

#include <errno.h>
#include <string.h>

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Drops leading zero digits; zero becomes ndig 0 and never negative. */
static void normalize(XfDec *v)
{
    size_t lead = 0;

    while (lead < v->ndig && v->d[lead] == 0)
        lead++;
    if (lead) {
        memmove(v->d, v->d + lead, v->ndig - lead);
        v->ndig = (uint8_t)(v->ndig - lead);
    }
    if (v->ndig == 0)
        v->neg = false;
}

/* Appends n zero digits (value * 10^n, scale unchanged by the caller's choice). */
static int append_zeros(XfDec *v, int n)
{
    if (v->ndig == 0)
        return 0;
    if (v->ndig + n > XF_DEC_DIGITS)
        return -ERANGE;
    memset(v->d + v->ndig, 0, (size_t)n);
    v->ndig = (uint8_t)(v->ndig + n);
    return 0;
}

int xf_dec_parse(const char *s, size_t len, XfDec *out)
{
    const char *p = s, *end = s + len;
    long exp = 0;
    int scale = 0;
    bool any = false, point = false;

    memset(out, 0, offsetof(XfDec, d));
    while (p < end && is_blank(*p))
        p++;
    while (end > p && is_blank(end[-1]))
        end--;
    if (p < end && (*p == '+' || *p == '-'))
        out->neg = *p++ == '-';
    for (; p < end; p++) {
        if (*p >= '0' && *p <= '9') {
            any = true;
            if (point)
                scale++;
            if (out->ndig == 0 && *p == '0')
                continue; /* leading zeros carry no digits */
            if (out->ndig == XF_DEC_DIGITS)
                return -ERANGE;
            out->d[out->ndig++] = (uint8_t)(*p - '0');
        } else if (*p == '.' && !point) {
            point = true;
        } else {
            break;
        }
    }
    if (!any)
        return -EINVAL;
    if (p < end && (*p == 'e' || *p == 'E')) {
        bool eneg = false, edig = false;

        p++;
        if (p < end && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            edig = true;
            if (exp < 100000)
                exp = exp * 10 + (*p - '0');
        }
        if (!edig)
            return -EINVAL;
        if (eneg)
            exp = -exp;
    }
    if (p != end)
        return -EINVAL;
    /* value = d * 10^(exp - scale) */
    long sc = (long)scale - exp;
    if (sc < 0) {
        if (append_zeros(out, (int)(sc < -XF_DEC_DIGITS ? -XF_DEC_DIGITS - 1 : -sc)) < 0)
            return -ERANGE;
        sc = 0;
    }
    if (sc > XF_DEC_MAX_SCALE)
        return -ERANGE;
    out->scale = (int16_t)sc;
    normalize(out);
    return 0;
}

int xf_round_from_name(const char *name)
{
    static const char *const names[] = {"half_up", "half_even", "down", "up"};

    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

int xf_dec_mul(const XfDec *a, const XfDec *b, XfDec *out)
{
    unsigned acc[2 * XF_DEC_DIGITS] = {0};
    size_t n = (size_t)a->ndig + b->ndig;
    XfDec r;

    memset(&r, 0, offsetof(XfDec, d));
    r.neg = a->neg != b->neg;
    if (a->scale + b->scale > XF_DEC_MAX_SCALE)
        return -ERANGE;
    r.scale = (int16_t)(a->scale + b->scale);
    if (a->ndig == 0 || b->ndig == 0) {
        *out = r;
        return 0;
    }
    /* acc[i + j + 1] gets a->d[i] * b->d[j]: index 0 is the most significant slot. */
    for (size_t i = 0; i < a->ndig; i++)
        for (size_t j = 0; j < b->ndig; j++)
            acc[i + j + 1] += (unsigned)a->d[i] * b->d[j];
    for (size_t k = n; k-- > 1;) {
        acc[k - 1] += acc[k] / 10;
        acc[k] %= 10;
    }
    size_t lead = 0;
    while (lead < n && acc[lead] == 0)
        lead++;
    if (n - lead > XF_DEC_DIGITS)
        return -ERANGE;
    for (size_t k = lead; k < n; k++)
        r.d[r.ndig++] = (uint8_t)acc[k];
    normalize(&r);
    *out = r;
    return 0;
}

int xf_dec_round(XfDec *v, int scale, XfRound mode)
{
    if (scale < 0 || scale > XF_DEC_MAX_SCALE)
        return -ERANGE;
    if (v->scale <= scale) {
        if (append_zeros(v, scale - v->scale) < 0)
            return -ERANGE;
        v->scale = (int16_t)scale;
        return 0;
    }
    int k = v->scale - scale; /* digits to drop */
    int keep = v->ndig - k;   /* may be <= 0: everything is dropped */
    int first = keep >= 0 && keep < v->ndig ? v->d[keep] : 0;
    bool sticky = false;

    for (int i = keep + 1; i < v->ndig; i++)
        if (i >= 0 && v->d[i]) {
            sticky = true;
            break;
        }
    if (keep < 0) {
        /* Every digit, and implicit zeros before them, is dropped: first is a zero. */
        first = 0;
        sticky = v->ndig > 0;
        keep = 0;
    }
    bool last_odd = keep > 0 && (v->d[keep - 1] & 1);
    bool inc = false;

    switch (mode) {
    case XF_ROUND_HALF_UP:
        inc = first >= 5;
        break;
    case XF_ROUND_HALF_EVEN:
        inc = first > 5 || (first == 5 && (sticky || last_odd));
        break;
    case XF_ROUND_DOWN:
        inc = false;
        break;
    case XF_ROUND_UP:
        inc = first > 0 || sticky;
        break;
    }
    v->ndig = (uint8_t)keep;
    v->scale = (int16_t)scale;
    if (inc) {
        int i = v->ndig - 1;

        for (; i >= 0; i--) {
            if (v->d[i] < 9) {
                v->d[i]++;
                break;
            }
            v->d[i] = 0;
        }
        if (i < 0) {
            /* Carry out of the top digit: 999 → 1000. */
            if (v->ndig == XF_DEC_DIGITS)
                return -ERANGE;
            memmove(v->d + 1, v->d, v->ndig);
            v->d[0] = 1;
            v->ndig++;
        }
    }
    normalize(v);
    return 0;
}

int xf_dec_int_digits(const XfDec *v)
{
    return v->ndig > v->scale ? v->ndig - v->scale : 0;
}

size_t xf_dec_format(const XfDec *v, char *buf)
{
    char *o = buf;
    int intd = xf_dec_int_digits(v);

    if (v->neg)
        *o++ = '-';
    if (intd == 0) {
        *o++ = '0';
    } else {
        for (int i = 0; i < intd; i++)
            *o++ = (char)('0' + v->d[i]);
    }
    if (v->scale > 0) {
        *o++ = '.';
        /* Fraction digits: scale of them, the last ndig - intd are stored digits. */
        int stored = v->ndig - intd;
        for (int i = 0; i < v->scale - stored; i++)
            *o++ = '0';
        for (int i = intd; i < v->ndig; i++)
            *o++ = (char)('0' + v->d[i]);
    }
    *o = '\0';
    return (size_t)(o - buf);
}
