/*
 * Casts: validate a text value as int, bigint, numeric, boolean, date,
 * timestamp or uuid and emit PostgreSQL's canonical text for it. Checking
 * here, not at the target, lets the error policy name the column and the
 * value before a target statement fails, and makes the bulk path and the
 * stream produce byte-identical rows.
 */
#include "core/transform/xf.h"

#include "core/error.h"
#include "core/hex.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    XfType type;
} type_names[] = {
    {"int", XF_T_INT},         {"integer", XF_T_INT},         {"int4", XF_T_INT},
    {"bigint", XF_T_BIGINT},   {"int8", XF_T_BIGINT},         {"numeric", XF_T_NUMERIC},
    {"decimal", XF_T_NUMERIC}, {"boolean", XF_T_BOOLEAN},     {"bool", XF_T_BOOLEAN},
    {"date", XF_T_DATE},       {"timestamp", XF_T_TIMESTAMP}, {"timestamptz", XF_T_TIMESTAMPTZ},
    {"uuid", XF_T_UUID},       {"text", XF_T_TEXT},
};

int xf_type_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
        if (strcmp(name, type_names[i].name) == 0)
            return (int)type_names[i].type;
    return -1;
}

const char *xf_type_name(XfType t)
{
    for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
        if (type_names[i].type == t)
            return type_names[i].name;
    return "?";
}

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static XfStr strip(XfStr v)
{
    while (v.len && blank(v.s[0]))
        v.s++, v.len--;
    while (v.len && blank(v.s[v.len - 1]))
        v.len--;
    return v;
}

static int cast_integer(XfType t, XfStr in, Arena *a, XfStr *out)
{
    const char *fn = t == XF_T_INT ? "cast int" : "cast bigint";
    XfStr v = strip(in);
    bool neg = false;
    uint64_t mag = 0, limit;
    size_t i = 0;
    char buf[24];

    limit = t == XF_T_INT ? (uint64_t)INT32_MAX : (uint64_t)INT64_MAX;
    if (i < v.len && (v.s[i] == '+' || v.s[i] == '-'))
        neg = v.s[i++] == '-';
    if (i == v.len)
        return xf_fail(-EINVAL, fn, in, "not an integer");
    for (; i < v.len; i++) {
        if (v.s[i] < '0' || v.s[i] > '9')
            return xf_fail(-EINVAL, fn, in, "not an integer");
        if (mag > (limit + 1) / 10 + 1)
            return xf_fail(-ERANGE, fn, in, "out of range for %s", xf_type_name(t));
        mag = mag * 10 + (uint64_t)(v.s[i] - '0');
    }
    if (mag > limit + (neg ? 1 : 0))
        return xf_fail(-ERANGE, fn, in, "out of range for %s", xf_type_name(t));
    int n = neg && mag ? snprintf(buf, sizeof(buf), "-%" PRIu64, mag)
                       : snprintf(buf, sizeof(buf), "%" PRIu64, mag);
    *out = xf_dup(a, buf, (size_t)n);
    return 0;
}

static bool word_is(XfStr v, const char *w)
{
    size_t n = strlen(w);

    if (v.len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = v.s[i];

        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (c != w[i])
            return false;
    }
    return true;
}

static int cast_boolean(XfStr in, Arena *a, XfStr *out)
{
    static const char *const yes[] = {"t", "true", "y", "yes", "on", "1", NULL};
    static const char *const no[] = {"f", "false", "n", "no", "off", "0", NULL};
    XfStr v = strip(in);

    (void)a;
    for (int i = 0; yes[i]; i++)
        if (word_is(v, yes[i])) {
            *out = XF_STR("true");
            return 0;
        }
    for (int i = 0; no[i]; i++)
        if (word_is(v, no[i])) {
            *out = XF_STR("false");
            return 0;
        }
    return xf_fail(-EINVAL, "cast boolean", in,
                   "not a boolean (use true/false, t/f, yes/no, y/n, on/off, 1/0)");
}

static int cast_uuid(XfStr in, Arena *a, XfStr *out)
{
    static const char hex[] = "0123456789abcdef";
    XfStr v = strip(in);
    char digits[32];
    size_t nd = 0;
    char *o;

    if (v.len >= 2 && v.s[0] == '{' && v.s[v.len - 1] == '}')
        v.s++, v.len -= 2;
    for (size_t i = 0; i < v.len; i++) {
        /* Hyphens only where the canonical form has them, or none at all. */
        if (v.s[i] == '-' && (nd == 8 || nd == 12 || nd == 16 || nd == 20) && i + 1 < v.len &&
            v.s[i + 1] != '-')
            continue;
        if (hex_value(v.s[i]) < 0 || nd == 32)
            return xf_fail(-EINVAL, "cast uuid", in, "not a uuid");
        digits[nd++] = v.s[i];
    }
    if (nd != 32)
        return xf_fail(-EINVAL, "cast uuid", in, "not a uuid (%zu hex digits, need 32)", nd);
    o = arena_alloc(a, 37);
    for (size_t i = 0, k = 0; i < 32; i++) {
        if (i == 8 || i == 12 || i == 16 || i == 20)
            o[k++] = '-';
        o[k++] = hex[hex_value(digits[i])];
    }
    o[36] = '\0';
    *out = (XfStr){o, 36};
    return 0;
}

int xf_cast_numeric(XfStr in, int precision, int scale, XfRound mode, Arena *a, XfStr *out)
{
    XfDec d;
    char buf[XF_DEC_TEXT_MAX];
    int rc;

    if (!in.s) {
        *out = in;
        return 0;
    }
    if (word_is(strip(in), "nan")) {
        *out = XF_STR("NaN");
        return 0;
    }
    rc = xf_dec_parse(in.s, in.len, &d);
    if (rc == -ERANGE)
        return xf_fail(rc, "cast numeric", in, "more than %d significant digits", XF_DEC_DIGITS);
    if (rc < 0)
        return xf_fail(rc, "cast numeric", in, "not a number");
    if (scale >= 0 && xf_dec_round(&d, scale, mode) < 0)
        return xf_fail(-ERANGE, "cast numeric", in, "out of range at scale %d", scale);
    if (precision > 0 && xf_dec_int_digits(&d) > precision - (scale > 0 ? scale : 0))
        return xf_fail(-ERANGE, "cast numeric", in, "does not fit numeric(%d,%d)", precision,
                       scale > 0 ? scale : 0);
    size_t n = xf_dec_format(&d, buf);
    *out = xf_dup(a, buf, n);
    return 0;
}

int xf_cast(XfType t, XfStr in, Arena *a, XfStr *out)
{
    if (!in.s) {
        *out = in;
        return 0;
    }
    switch (t) {
    case XF_T_INT:
    case XF_T_BIGINT:
        return cast_integer(t, in, a, out);
    case XF_T_NUMERIC:
        return xf_cast_numeric(in, 0, -1, XF_ROUND_HALF_UP, a, out);
    case XF_T_BOOLEAN:
        return cast_boolean(in, a, out);
    case XF_T_UUID:
        return cast_uuid(in, a, out);
    case XF_T_DATE:
    case XF_T_TIMESTAMP:
    case XF_T_TIMESTAMPTZ:
        return xf_parse_iso(t, in, a, out);
    case XF_T_TEXT:
        *out = in;
        return 0;
    }
    return tm_fail(-EINVAL, "cast: unknown type %d", (int)t);
}
