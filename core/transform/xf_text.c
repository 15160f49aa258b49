/*
 * Text clean-up transforms: trim, collapse whitespace, upper/lower/title
 * case and regex replace. Legacy data pads with non-breaking spaces and
 * writes names in capitals, so whitespace includes the common Unicode
 * blanks and case mapping covers Latin-1 and Latin Extended-A letters, not
 * just ASCII. Functions return a slice of the input when nothing changes,
 * which keeps the common "already clean" row free of copies.
 */
#include "core/transform/xf.h"

#include "core/error.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Byte length of the blank at p (ASCII or a Unicode space), 0 when p is not one. */
static size_t blank_len(const char *p, const char *end)
{
    unsigned char c = (unsigned char)*p;
    uint32_t cp;
    size_t n;

    if (c == ' ' || (c >= '\t' && c <= '\r'))
        return 1;
    if (c < 0x80)
        return 0;
    n = xf_utf8_decode(p, (size_t)(end - p), &cp);
    if (n == 0)
        return 0;
    if (cp == 0xa0 || (cp >= 0x2000 && cp <= 0x200b) || cp == 0x202f || cp == 0x205f ||
        cp == 0x3000 || cp == 0xfeff)
        return n;
    return 0;
}

/* Length of the blank that ends just before end, 0 when none. */
static size_t blank_len_back(const char *start, const char *end)
{
    for (size_t k = 1; k <= 3 && (size_t)(end - start) >= k; k++) {
        const char *p = end - k;

        if (k > 1 && ((unsigned char)*p & 0xc0) == 0x80)
            continue;
        if (blank_len(p, end) == k)
            return k;
        if (((unsigned char)*p & 0xc0) != 0x80)
            return 0;
    }
    return 0;
}

int xf_trim(XfStr in, Arena *a, XfStr *out)
{
    const char *p = in.s, *end = in.s + in.len;
    size_t n;

    (void)a;
    if (!in.s) {
        *out = in;
        return 0;
    }
    while (p < end && (n = blank_len(p, end)) > 0)
        p += n;
    while (end > p && (n = blank_len_back(p, end)) > 0)
        end -= n;
    *out = (XfStr){p, (size_t)(end - p)};
    return 0;
}

int xf_collapse_ws(XfStr in, Arena *a, XfStr *out)
{
    XfStr t;
    char *o;
    size_t k = 0;
    bool changed = false;

    xf_trim(in, a, &t);
    if (!t.s) {
        *out = t;
        return 0;
    }
    for (size_t i = 0; i < t.len;) {
        size_t n = blank_len(t.s + i, t.s + t.len);

        if (n && (n > 1 || t.s[i] != ' ' || blank_len(t.s + i + 1, t.s + t.len))) {
            changed = true;
            break;
        }
        i += n ? n : 1;
    }
    if (!changed) {
        *out = t;
        return 0;
    }
    o = arena_alloc(a, t.len + 1);
    for (size_t i = 0; i < t.len;) {
        size_t n = blank_len(t.s + i, t.s + t.len);

        if (!n) {
            o[k++] = t.s[i++];
            continue;
        }
        while (i < t.len && (n = blank_len(t.s + i, t.s + t.len)) > 0)
            i += n;
        o[k++] = ' ';
    }
    o[k] = '\0';
    *out = (XfStr){o, k};
    return 0;
}

typedef enum CaseMode { CASE_UPPER, CASE_LOWER, CASE_TITLE } CaseMode;

static int change_case(CaseMode mode, XfStr in, Arena *a, XfStr *out)
{
    char *o;
    size_t k = 0;
    bool in_word = false;
    size_t word_letters = 0; /* letters of the current word segment, for O'Brien */
    bool after_apos = false;

    if (!in.s) {
        *out = in;
        return 0;
    }
    /* Case mapping here never makes a character longer in UTF-8. */
    o = arena_alloc(a, in.len + 1);
    for (size_t i = 0; i < in.len;) {
        uint32_t cp;
        size_t n = xf_utf8_decode(in.s + i, in.len - i, &cp);

        if (n == 0) {
            o[k++] = in.s[i++]; /* not UTF-8: copy the byte, let encoding repair deal with it */
            in_word = false;
            continue;
        }
        i += n;
        if (mode == CASE_UPPER) {
            cp = xf_cp_upper(cp);
        } else if (mode == CASE_LOWER) {
            cp = xf_cp_lower(cp);
        } else if (xf_cp_is_letter(cp) || (cp >= '0' && cp <= '9')) {
            bool start = !in_word || (after_apos && word_letters == 1);

            cp = start && xf_cp_is_letter(cp) ? xf_cp_upper(cp) : xf_cp_lower(cp);
            word_letters = start ? 1 : word_letters + 1;
            in_word = true;
            after_apos = false;
        } else if ((cp == '\'' || cp == 0x2019) && in_word) {
            after_apos = true; /* stays in the word: "don't", but O'Brien restarts */
        } else {
            in_word = false;
            after_apos = false;
        }
        k += xf_utf8_encode(cp, o + k);
    }
    o[k] = '\0';
    *out = (XfStr){o, k};
    return 0;
}

int xf_upper(XfStr in, Arena *a, XfStr *out)
{
    return change_case(CASE_UPPER, in, a, out);
}

int xf_lower(XfStr in, Arena *a, XfStr *out)
{
    return change_case(CASE_LOWER, in, a, out);
}

int xf_title(XfStr in, Arena *a, XfStr *out)
{
    return change_case(CASE_TITLE, in, a, out);
}

/* ---- regex replace ------------------------------------------------------ */

int xf_regex_init(XfRegex *r, const char *pattern, const char *replace, bool global, bool icase)
{
    char msg[256];
    int rc;

    memset(r, 0, sizeof(*r));
    rc = regcomp(&r->re, pattern, REG_EXTENDED | (icase ? REG_ICASE : 0));
    if (rc != 0) {
        regerror(rc, &r->re, msg, sizeof(msg));
        return tm_fail(-EINVAL, "regex \"%s\": %s", pattern, msg);
    }
    r->compiled = true;
    for (const char *p = replace; *p; p++) {
        if (*p != '\\')
            continue;
        p++;
        if (*p >= '0' && *p <= '9') {
            if ((size_t)(*p - '0') > r->re.re_nsub)
                return tm_fail(-EINVAL,
                               "regex replacement \"%s\": \\%c but the pattern has %zu "
                               "group(s)",
                               replace, *p, r->re.re_nsub);
        } else if (*p != '\\') {
            return tm_fail(-EINVAL,
                           "regex replacement \"%s\": a backslash must be followed by a digit "
                           "or another backslash",
                           replace);
        }
    }
    r->replace = xstrdup(replace);
    r->global = global;
    return 0;
}

void xf_regex_release(XfRegex *r)
{
    if (r->compiled)
        regfree(&r->re);
    free(r->replace);
    memset(r, 0, sizeof(*r));
}

static void put(char **o, size_t *len, size_t *cap, Arena *a, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t ncap = (*len + n + 1) * 2;
        char *no = arena_alloc(a, ncap);

        memcpy(no, *o, *len);
        *o = no;
        *cap = ncap;
    }
    memcpy(*o + *len, s, n);
    *len += n;
}

int xf_regex_replace(const XfRegex *r, XfStr in, Arena *a, XfStr *out)
{
    regmatch_t m[10];
    XfStr z;
    char *o;
    size_t len = 0, cap, pos = 0;
    int flags = 0;

    if (!in.s) {
        *out = in;
        return 0;
    }
    if (memchr(in.s, '\0', in.len))
        return xf_fail(-EINVAL, "regex_replace", in, "contains a NUL byte");
    z = xf_dup(a, in.s, in.len); /* regexec needs a terminated string */
    cap = in.len + 16;
    o = arena_alloc(a, cap);
    while (pos <= in.len) {
        int rc = regexec(&r->re, z.s + pos, 10, m, flags);

        if (rc == REG_NOMATCH)
            break;
        if (rc != 0)
            return xf_fail(-EINVAL, "regex_replace", in, "regexec failed (%d)", rc);
        put(&o, &len, &cap, a, z.s + pos, (size_t)m[0].rm_so);
        for (const char *p = r->replace; *p; p++) {
            if (*p == '\\' && p[1] >= '0' && p[1] <= '9') {
                int g = *++p - '0';

                if (m[g].rm_so >= 0)
                    put(&o, &len, &cap, a, z.s + pos + m[g].rm_so,
                        (size_t)(m[g].rm_eo - m[g].rm_so));
            } else {
                if (*p == '\\')
                    p++;
                put(&o, &len, &cap, a, p, 1);
            }
        }
        if (m[0].rm_eo == m[0].rm_so) {
            /* An empty match: copy one character so the scan moves on. */
            if (pos + (size_t)m[0].rm_eo >= in.len) {
                pos = in.len + 1;
                break;
            }
            uint32_t cp;
            size_t n =
                xf_utf8_decode(z.s + pos + m[0].rm_eo, in.len - pos - (size_t)m[0].rm_eo, &cp);

            n = n ? n : 1;
            put(&o, &len, &cap, a, z.s + pos + m[0].rm_eo, n);
            pos += (size_t)m[0].rm_eo + n;
        } else {
            pos += (size_t)m[0].rm_eo;
        }
        flags = REG_NOTBOL;
        if (!r->global)
            break;
    }
    if (pos < in.len)
        put(&o, &len, &cap, a, z.s + pos, in.len - pos);
    o[len] = '\0';
    *out = (XfStr){o, len};
    return 0;
}
