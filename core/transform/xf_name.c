/*
 * Personal name parsing: one "full name" column into title, first, middle,
 * last and suffix. Handles "Last, First Middle", honorifics (Dr., Mrs.),
 * generational and academic suffixes (Jr., III, PhD) and surname particles
 * (van der, de la, von) that belong to the last name. It is a heuristic by
 * nature, so it never invents: parts that are absent come out NULL, and
 * inputs it cannot read (more than one comma-separated name) are errors.
 */
#include "core/transform/xf.h"

#include <errno.h>
#include <string.h>

#define MAX_TOKENS 32

typedef struct Span {
    const char *s;
    size_t len;
} Span;

static const char *const particles[] = {
    "van", "von", "der", "den",   "de",  "del", "della", "delle", "dello", "di",  "da",
    "das", "dos", "do",  "du",    "la",  "le",  "les",   "lo",    "los",   "las", "ter",
    "ten", "te",  "bin", "binti", "ibn", "al",  "el",    "st",    "saint", "y",   NULL,
};

static const char *const suffixes[] = {"jr",  "sr", "phd", "md", "dds", "dmd", "esq", "cpa",
                                       "mba", "rn", "dvm", "jd", "ret", "obe", "mbe", NULL};
static const char *const romans[] = {"ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x", NULL};
static const char *const titles[] = {"mr",   "mrs", "ms",  "miss", "mx",  "dr",
                                     "prof", "rev", "sir", "dame", "hon", "fr",
                                     "capt", "col", "gen", "lt",   "sgt", NULL};

/* Lower-cased token without dots and trailing commas into buf; false when too long. */
static bool norm(Span t, char *buf, size_t size)
{
    size_t k = 0;

    for (size_t i = 0; i < t.len; i++) {
        char c = t.s[i];

        if (c == '.' || c == ',')
            continue;
        if (k + 1 >= size)
            return false;
        buf[k++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    buf[k] = '\0';
    return k > 0;
}

static bool in_list(Span t, const char *const *list)
{
    char buf[16];

    if (!norm(t, buf, sizeof(buf)))
        return false;
    for (; *list; list++)
        if (strcmp(buf, *list) == 0)
            return true;
    return false;
}

static bool is_particle(Span t)
{
    /* "d'" and "l'" (d'Artagnan) stay glued to the name; only whole words count. */
    return in_list(t, particles);
}

static size_t split_words(Span seg, Span *out, size_t max)
{
    size_t n = 0;
    const char *p = seg.s, *end = seg.s + seg.len;

    while (p < end && n < max) {
        const char *w;

        while (p < end && *p == ' ')
            p++;
        if (p == end)
            break;
        w = p;
        while (p < end && *p != ' ')
            p++;
        out[n++] = (Span){w, (size_t)(p - w)};
    }
    return n;
}

static Span trim_span(Span s)
{
    while (s.len && (s.s[0] == ' ' || s.s[0] == ','))
        s.s++, s.len--;
    while (s.len && (s.s[s.len - 1] == ' ' || s.s[s.len - 1] == ','))
        s.len--;
    return s;
}

/* Tokens [i, j) of one segment as one slice (single spaces between them). */
static XfStr range(const Span *t, size_t i, size_t j)
{
    if (i >= j)
        return XF_NULL;
    return (XfStr){t[i].s, (size_t)(t[j - 1].s + t[j - 1].len - t[i].s)};
}

/* A roman numeral is a suffix only after two name words ("John V" ends in an initial). */
static bool is_suffix(Span t, size_t words_before)
{
    return in_list(t, suffixes) || (words_before >= 2 && in_list(t, romans));
}

int xf_parse_name(XfStr in, bool single_is_last, Arena *a, XfName *out)
{
    Span segs[4], tok[MAX_TOKENS];
    XfStr clean, last = XF_NULL, suffix = XF_NULL;
    size_t nseg = 0, n, first_tok = 0, end_tok, lstart;

    memset(out, 0, sizeof(*out));
    if (!in.s)
        return 0;
    xf_collapse_ws(in, a, &clean);
    if (clean.len == 0)
        return 0;
    for (const char *p = clean.s, *end = clean.s + clean.len; p <= end && nseg < 4;) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        const char *e = c ? c : end;
        Span s = trim_span((Span){p, (size_t)(e - p)});

        if (s.len)
            segs[nseg++] = s;
        if (!c)
            break;
        p = c + 1;
    }
    /* Trailing segments made only of suffixes: "Smith, John, Jr." / "John Smith, PhD". */
    while (nseg > 1) {
        Span w[8];
        size_t nw = split_words(segs[nseg - 1], w, 8);
        bool all = nw > 0;

        for (size_t i = 0; i < nw && all; i++)
            all = in_list(w[i], suffixes) || in_list(w[i], romans);
        if (!all)
            break;
        suffix = suffix.s
                     ? (XfStr){segs[nseg - 1].s, (size_t)(suffix.s + suffix.len - segs[nseg - 1].s)}
                     : (XfStr){segs[nseg - 1].s, segs[nseg - 1].len};
        nseg--;
    }
    if (nseg == 0)
        return xf_fail(-EINVAL, "parse_name", in, "no name, only a suffix");
    if (nseg > 2)
        return xf_fail(-EINVAL, "parse_name", in,
                       "more than one comma: not \"First Last\" nor \"Last, First\"");
    if (nseg == 2) {
        last = (XfStr){segs[0].s, segs[0].len};
        n = split_words(segs[1], tok, MAX_TOKENS);
    } else {
        n = split_words(segs[0], tok, MAX_TOKENS);
    }
    if (n == MAX_TOKENS)
        return xf_fail(-EINVAL, "parse_name", in, "more than %d words", MAX_TOKENS - 1);
    /* Honorifics in front, when a name follows them. */
    while (first_tok + 1 < n && in_list(tok[first_tok], titles))
        first_tok++;
    if (first_tok)
        out->title = range(tok, 0, first_tok);
    end_tok = n;
    while (end_tok > first_tok + 1 && is_suffix(tok[end_tok - 1], end_tok - 1 - first_tok))
        end_tok--;
    if (end_tok < n) {
        XfStr s = range(tok, end_tok, n);

        /* With a suffix segment too ("Smith Jr., PhD") both are one slice of the input. */
        suffix = suffix.s ? (XfStr){s.s, (size_t)(suffix.s + suffix.len - s.s)} : s;
    }
    if (nseg == 2) {
        out->first = end_tok > first_tok ? range(tok, first_tok, first_tok + 1) : XF_NULL;
        out->middle = range(tok, first_tok + 1, end_tok);
        out->last = last;
        out->suffix = suffix;
        return 0;
    }
    if (end_tok - first_tok == 1) {
        if (single_is_last)
            out->last = range(tok, first_tok, end_tok);
        else
            out->first = range(tok, first_tok, end_tok);
        out->suffix = suffix;
        return 0;
    }
    lstart = end_tok - 1;
    while (lstart > first_tok + 1 && is_particle(tok[lstart - 1]))
        lstart--;
    out->first = range(tok, first_tok, first_tok + 1);
    out->middle = range(tok, first_tok + 1, lstart);
    out->last = range(tok, lstart, end_tok);
    out->suffix = suffix;
    return 0;
}

static XfStr join(Arena *a, XfStr x, XfStr y)
{
    char *p;

    if (!x.s)
        return y;
    if (!y.s)
        return x;
    p = arena_alloc(a, x.len + y.len + 2);
    memcpy(p, x.s, x.len);
    p[x.len] = ' ';
    memcpy(p + x.len + 1, y.s, y.len);
    p[x.len + 1 + y.len] = '\0';
    return (XfStr){p, x.len + 1 + y.len};
}

XfStr xf_name_part(const XfName *n, XfNamePart part, Arena *a)
{
    switch (part) {
    case XF_NAME_TITLE:
        return n->title;
    case XF_NAME_FIRST:
        return n->first;
    case XF_NAME_MIDDLE:
        return n->middle;
    case XF_NAME_GIVEN:
        return join(a, n->first, n->middle);
    case XF_NAME_LAST:
        return n->last;
    case XF_NAME_SUFFIX:
        return n->suffix;
    }
    return XF_NULL;
}

int xf_name_part_from_name(const char *s)
{
    static const char *const names[] = {"title", "first", "middle", "given", "last", "suffix"};

    for (int i = 0; i < 6; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}
