/*
 * Encoding repair. A SQL_ASCII source database stores whatever bytes the
 * application sent, typically LATIN1 or WIN1252; those bytes must become
 * UTF-8 before a UTF8 target accepts them. The opposite accident, UTF-8
 * decoded as WIN1252 and encoded again ("Ã©" for "é"), is detected by
 * reversing it: only when every character maps back to one byte and the
 * bytes form valid UTF-8 is the repair unambiguous, so clean text and text
 * with genuine Latin characters are left alone.
 */
#include "core/transform/xf.h"

#include <errno.h>
#include <stdlib.h>

/* WIN1252 0x80..0x9F; 0 marks the five undefined bytes. */
static const uint16_t win1252[32] = {
    0x20ac, 0,      0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017d, 0,      0,      0x2018, 0x2019, 0x201c, 0x201d, 0x2022,
    0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0,      0x017e, 0x0178,
};

int xf_decode(XfCharset cs, bool always, XfStr in, Arena *a, XfStr *out)
{
    const char *fn = cs == XF_LATIN1 ? "decode latin1" : "decode win1252";
    char *o;
    size_t k = 0;

    if (!in.s) {
        *out = in;
        return 0;
    }
    if (!always && xf_utf8_valid(in.s, in.len)) {
        *out = in;
        return 0;
    }
    o = arena_alloc(a, in.len * 3 + 1);
    for (size_t i = 0; i < in.len; i++) {
        unsigned char c = (unsigned char)in.s[i];
        uint32_t cp = c;

        if (c == 0)
            return xf_fail(-EINVAL, fn, in, "contains a NUL byte");
        if (cs == XF_WIN1252 && c >= 0x80 && c <= 0x9f) {
            cp = win1252[c - 0x80];
            if (!cp)
                return xf_fail(-EINVAL, fn, in,
                               "byte 0x%02X at offset %zu is not defined in "
                               "WIN1252",
                               c, i);
        }
        k += xf_utf8_encode(cp, o + k);
    }
    o[k] = '\0';
    *out = (XfStr){o, k};
    return 0;
}

/* The byte WIN1252 (or LATIN1, for C1 controls) encodes cp as; -1 when none. */
static int byte_of(uint32_t cp)
{
    if (cp < 0x100)
        return (int)cp;
    for (int i = 0; i < 32; i++)
        if (win1252[i] == cp)
            return 0x80 + i;
    return -1;
}

/* The reversed bytes into o (in.len bytes room); false when some character has no byte. */
static bool reverse(XfStr in, char *o, size_t *len)
{
    size_t k = 0;
    bool high = false;

    for (size_t i = 0; i < in.len;) {
        uint32_t cp;
        size_t n = xf_utf8_decode(in.s + i, in.len - i, &cp);
        int b;

        if (n == 0 || (b = byte_of(cp)) < 0)
            return false;
        high |= b >= 0x80;
        o[k++] = (char)b;
        i += n;
    }
    *len = k;
    return high && xf_utf8_valid(o, k);
}

bool xf_is_mojibake(XfStr v)
{
    char stack[256];
    char *buf = stack;
    size_t len;
    bool yes;

    if (!v.s || xf_utf8_valid(v.s, v.len) == false)
        return false;
    if (v.len > sizeof(stack)) {
        buf = malloc(v.len);
        if (!buf)
            return false;
    }
    yes = reverse(v, buf, &len);
    if (buf != stack)
        free(buf);
    return yes;
}

int xf_fix_mojibake(bool error_instead, XfStr in, Arena *a, XfStr *out)
{
    char *o;
    size_t len;

    if (!in.s || !xf_utf8_valid(in.s, in.len)) {
        *out = in;
        return 0;
    }
    o = arena_alloc(a, in.len + 1);
    if (!reverse(in, o, &len)) {
        *out = in; /* clean, or not reversible: leave it */
        return 0;
    }
    if (error_instead)
        return xf_fail(-EINVAL, "fix_mojibake", in, "looks like double-encoded UTF-8");
    o[len] = '\0';
    *out = (XfStr){o, len};
    return 0;
}
