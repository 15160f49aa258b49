/*
 * PII protection for migrations into less trusted targets (analytics,
 * staging): salted SHA-256 keeps a column joinable without revealing it,
 * keep-last-N masking keeps the tail a support agent needs, and email
 * masking keeps the domain for aggregate questions. All are deterministic,
 * so the bulk load and the stream agree.
 */
#include "core/transform/xf.h"

#include "core/transform/sha256.h"

#include <errno.h>
#include <string.h>

int xf_hash_sha256(XfStr salt, XfStr in, Arena *a, XfStr *out)
{
    static const char digits[] = "0123456789abcdef";
    uint8_t d[32];
    Sha256 c;
    char *o;

    if (!in.s) {
        *out = in;
        return 0;
    }
    sha256_init(&c);
    if (salt.s)
        sha256_update(&c, salt.s, salt.len);
    sha256_update(&c, in.s, in.len);
    sha256_final(&c, d);
    o = arena_alloc(a, 65);
    for (int i = 0; i < 32; i++) {
        o[2 * i] = digits[d[i] >> 4];
        o[2 * i + 1] = digits[d[i] & 15];
    }
    o[64] = '\0';
    *out = (XfStr){o, 64};
    return 0;
}

static size_t count_chars(XfStr v)
{
    size_t n = 0;

    for (size_t i = 0; i < v.len; i++)
        n += ((unsigned char)v.s[i] & 0xc0) != 0x80;
    return n;
}

int xf_mask_keep_last(size_t keep, uint32_t mask_char, XfStr in, Arena *a, XfStr *out)
{
    char mc[4];
    size_t mlen = xf_utf8_encode(mask_char, mc);
    size_t total, masked, i = 0, k = 0;
    char *o;

    if (!in.s) {
        *out = in;
        return 0;
    }
    total = count_chars(in);
    /* A value no longer than what would be kept is masked entirely: it is all secret. */
    masked = total > keep ? total - keep : total;
    o = arena_alloc(a, masked * mlen + in.len + 1);
    for (size_t c = 0; c < masked; c++) {
        memcpy(o + k, mc, mlen);
        k += mlen;
        i++;
        while (i < in.len && ((unsigned char)in.s[i] & 0xc0) == 0x80)
            i++;
    }
    memcpy(o + k, in.s + i, in.len - i);
    k += in.len - i;
    o[k] = '\0';
    *out = (XfStr){o, k};
    return 0;
}

int xf_mask_email(XfStr in, Arena *a, XfStr *out)
{
    const char *at;
    size_t first = 1, dlen;
    char *o;

    if (!in.s) {
        *out = in;
        return 0;
    }
    at = in.len ? memrchr(in.s, '@', in.len) : NULL;
    if (!at || at == in.s || at == in.s + in.len - 1)
        return xf_fail(-EINVAL, "mask_email", in, "not an email address");
    while (first < (size_t)(at - in.s) && ((unsigned char)in.s[first] & 0xc0) == 0x80)
        first++;
    dlen = (size_t)(in.s + in.len - at);
    o = arena_alloc(a, first + 3 + dlen + 1);
    memcpy(o, in.s, first);
    memcpy(o + first, "***", 3);
    memcpy(o + first + 3, at, dlen);
    o[first + 3 + dlen] = '\0';
    *out = (XfStr){o, first + 3 + dlen};
    return 0;
}
