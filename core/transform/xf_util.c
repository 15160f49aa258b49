/*
 * Helpers every transform family shares: arena copies, the quoted value in
 * error messages, UTF-8 decoding and Latin case mapping, the read-only
 * dictionary behind value maps and lookup tables, and config scalars as
 * text. Kept apart so that each family file holds only its own logic.
 */
#include "core/transform/xf.h"

#include "core/error.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

XfStr xf_dup(Arena *a, const char *s, size_t len)
{
    char *p = arena_alloc(a, len + 1);

    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    return (XfStr){p, len};
}

const char *xf_show(XfStr v, char *buf, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    const size_t limit = 60;
    size_t o = 0, i = 0;

    if (!v.s) {
        snprintf(buf, size, "NULL");
        return buf;
    }
    buf[o++] = '\'';
    while (i < v.len && i < limit && o + 8 < size) {
        unsigned char c = (unsigned char)v.s[i];
        uint32_t cp;
        size_t n;

        if (c >= 0x20 && c < 0x7f) {
            buf[o++] = (char)c;
            i++;
        } else if (c >= 0x80 && (n = xf_utf8_decode(v.s + i, v.len - i, &cp)) > 0 &&
                   o + n + 8 < size) {
            memcpy(buf + o, v.s + i, n);
            o += n;
            i += n;
        } else {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
            i++;
        }
    }
    if (i < v.len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '\'';
    buf[o] = '\0';
    return buf;
}

int xf_fail(int code, const char *fn, XfStr v, const char *fmt, ...)
{
    char shown[XF_SHOW_MAX * 2], msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return tm_fail(code, "%s: %s: %s", fn, xf_show(v, shown, sizeof(shown)), msg);
}

size_t xf_utf8_decode(const char *s, size_t len, uint32_t *cp)
{
    const unsigned char *p = (const unsigned char *)s;
    uint32_t c = p[0], min;
    size_t n;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, c &= 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, c &= 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, c &= 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

bool xf_utf8_valid(const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n;

        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        n = xf_utf8_decode(s + i, len - i, &cp);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

size_t xf_utf8_encode(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;

    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Latin Extended-A pairs: within these ranges the upper case letter has the even (or odd) code. */
static bool exta_even_upper(uint32_t cp)
{
    return (cp >= 0x100 && cp <= 0x12f) || (cp >= 0x132 && cp <= 0x137) ||
           (cp >= 0x14a && cp <= 0x177);
}

static bool exta_odd_upper(uint32_t cp)
{
    return (cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17e);
}

uint32_t xf_cp_lower(uint32_t cp)
{
    if (cp >= 'A' && cp <= 'Z')
        return cp + 32;
    if (cp < 0xc0)
        return cp;
    if (cp <= 0xde)
        return cp == 0xd7 ? cp : cp + 32;
    if (cp < 0x100)
        return cp;
    if (exta_even_upper(cp))
        return cp | 1;
    if (exta_odd_upper(cp))
        return (cp & 1) ? cp + 1 : cp;
    if (cp == 0x130)
        return 'i';
    if (cp == 0x178)
        return 0xff;
    return cp;
}

uint32_t xf_cp_upper(uint32_t cp)
{
    if (cp >= 'a' && cp <= 'z')
        return cp - 32;
    if (cp < 0xe0)
        return cp; /* ß (0xdf) has no single-letter upper case */
    if (cp <= 0xfe)
        return cp == 0xf7 ? cp : cp - 32;
    if (cp == 0xff)
        return 0x178;
    if (exta_even_upper(cp))
        return cp & ~1u;
    if (exta_odd_upper(cp))
        return (cp & 1) ? cp : cp - 1;
    if (cp == 0x131)
        return 'I';
    if (cp == 0x17f)
        return 'S';
    return cp;
}

bool xf_cp_is_letter(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    if (cp < 0xc0)
        return cp == 0xaa || cp == 0xb5 || cp == 0xba;
    if (cp < 0x100)
        return cp != 0xd7 && cp != 0xf7;
    /* Beyond Latin-1 everything counts as part of a word: scripts without
     * case mapping here must not be split into "words" by title casing. */
    return !(cp >= 0x2000 && cp <= 0x206f) && cp != 0x3000;
}

/* Lower-cases into out (room for len bytes: lower case never needs more bytes here). */
static size_t fold_into(const char *s, size_t len, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp;
        size_t n;

        if (c < 0x80) {
            out[o++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            i++;
            continue;
        }
        n = xf_utf8_decode(s + i, len - i, &cp);
        if (n == 0) {
            out[o++] = (char)c;
            i++;
            continue;
        }
        o += xf_utf8_encode(xf_cp_lower(cp), out + o);
        i += n;
    }
    return o;
}

XfStr xf_fold(Arena *a, XfStr v)
{
    char *p;

    if (!v.s)
        return v;
    p = arena_alloc(a, v.len + 1);
    size_t n = fold_into(v.s, v.len, p);
    p[n] = '\0';
    return (XfStr){p, n};
}

/* ---- dictionary -------------------------------------------------------- */

typedef struct DictEntry {
    char *key; /* NULL: empty slot */
    size_t klen;
    char *val; /* NULL: the value is SQL NULL */
    size_t vlen;
} DictEntry;

struct XfDict {
    DictEntry *slots;
    size_t cap, n;
    bool fold;
};

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

XfDict *xf_dict_new(bool fold)
{
    XfDict *d = xcalloc(1, sizeof(*d));

    d->cap = 16;
    d->slots = xcalloc(d->cap, sizeof(DictEntry));
    d->fold = fold;
    return d;
}

void xf_dict_free(XfDict *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->cap; i++) {
        free(d->slots[i].key);
        free(d->slots[i].val);
    }
    free(d->slots);
    free(d);
}

size_t xf_dict_size(const XfDict *d)
{
    return d->n;
}

static DictEntry *find_slot(DictEntry *slots, size_t cap, const char *key, size_t klen)
{
    size_t i = (size_t)hash_bytes(key, klen) & (cap - 1);

    while (slots[i].key && !(slots[i].klen == klen && memcmp(slots[i].key, key, klen) == 0))
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

bool xf_dict_put(XfDict *d, const char *key, size_t klen, XfStr value)
{
    char *k = xmalloc(klen + 1);
    DictEntry *e;

    klen = d->fold ? fold_into(key, klen, k) : (memcpy(k, key, klen), klen);
    k[klen] = '\0';
    if ((d->n + 1) * 2 > d->cap) {
        size_t ncap = d->cap * 2;
        DictEntry *ns = xcalloc(ncap, sizeof(DictEntry));

        for (size_t i = 0; i < d->cap; i++)
            if (d->slots[i].key)
                *find_slot(ns, ncap, d->slots[i].key, d->slots[i].klen) = d->slots[i];
        free(d->slots);
        d->slots = ns;
        d->cap = ncap;
    }
    e = find_slot(d->slots, d->cap, k, klen);
    if (e->key) {
        free(k);
        return false;
    }
    e->key = k;
    e->klen = klen;
    e->val = value.s ? xstrndup(value.s, value.len) : NULL;
    e->vlen = value.len;
    d->n++;
    return true;
}

bool xf_dict_get(const XfDict *d, XfStr key, Arena *a, XfStr *value)
{
    char stack[256];
    char *buf = stack;
    const char *k = key.s;
    size_t klen = key.len;
    const DictEntry *e;

    if (!key.s)
        return false;
    if (d->fold) {
        if (key.len > sizeof(stack))
            buf = a ? arena_alloc(a, key.len) : xmalloc(key.len);
        klen = fold_into(key.s, key.len, buf);
        k = buf;
    }
    e = find_slot(d->slots, d->cap, k, klen);
    if (buf != stack && !a)
        free(buf);
    if (!e->key)
        return false;
    *value = (XfStr){e->val, e->vlen};
    return true;
}

/* ---- config scalars ---------------------------------------------------- */

char *xf_scalar_text(const json_t *v)
{
    if (json_is_string(v))
        return xstrdup(json_string_value(v));
    if (json_is_integer(v))
        return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    if (json_is_boolean(v))
        return xstrdup(json_is_true(v) ? "true" : "false");
    return NULL;
}
