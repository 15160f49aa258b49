/*
 * Date and time parsing from a configured list of input formats into ISO
 * dates and timestamps. Legacy columns mix "03/04/2020", "4 Mar 2020" and
 * epoch seconds; every format in the list is tried and all that match must
 * agree, so an input that two formats read differently (03/04 as March 4th
 * or April 3rd) is reported as ambiguous instead of silently taking the
 * first reading, unless the config says which order to prefer. Impossible
 * dates never match, and two-digit years need an explicit pivot.
 */
#include "core/transform/xf.h"

#include "core/error.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum Tok {
    T_YEAR4,
    T_YEAR2,
    T_MONTH,
    T_DAY,
    T_MONNAME,
    T_HOUR,
    T_HOUR12,
    T_MIN,
    T_SEC,
    T_FRAC,
    T_AMPM,
    T_TZ,
    T_LIT,
    T_SPACE,
    T_EPOCH,
    T_EPOCH_MS,
} Tok;

typedef struct Item {
    Tok tok;
    char lit;   /* T_LIT */
    bool exact; /* numeric field next to another numeric field: exactly 2 digits */
} Item;

struct XfDateFormat {
    char *text;
    Item *items;
    size_t n;
    bool has_time, has_date;
    int order; /* 1: month before day, 2: day before month, 0: neither */
};

typedef struct Parsed {
    int y, m, d, hh, mi, ss, usec;
    bool tz;
    int tz_min; /* offset east of UTC in minutes */
    bool has_time;
} Parsed;

static const char *const month_names[12] = {"january",   "february", "march",    "april",
                                            "may",       "june",     "july",     "august",
                                            "september", "october",  "november", "december"};

static const struct {
    const char *word;
    Tok tok;
} words[] = {
    {"YYYY", T_YEAR4},  {"YY", T_YEAR2}, {"Month", T_MONNAME}, {"Mon", T_MONNAME}, {"MM", T_MONTH},
    {"MI", T_MIN},      {"M", T_MONTH},  {"DD", T_DAY},        {"D", T_DAY},       {"HH24", T_HOUR},
    {"HH12", T_HOUR12}, {"HH", T_HOUR},  {"SS", T_SEC},        {"FF", T_FRAC},     {"AM", T_AMPM},
    {"PM", T_AMPM},     {"TZ", T_TZ},
};

static bool numeric_tok(Tok t)
{
    return t == T_YEAR4 || t == T_YEAR2 || t == T_MONTH || t == T_DAY || t == T_HOUR ||
           t == T_HOUR12 || t == T_MIN || t == T_SEC;
}

static int compile_format(const char *text, int pivot, XfDateFormat *f)
{
    size_t cap = strlen(text) + 1;
    int month_at = -1, day_at = -1;
    bool h12 = false, ampm = false;

    memset(f, 0, sizeof(*f));
    f->text = xstrdup(text);
    f->items = xcalloc(cap, sizeof(Item));
    if (strcmp(text, "epoch") == 0 || strcmp(text, "epoch_ms") == 0) {
        f->items[f->n++].tok = text[5] ? T_EPOCH_MS : T_EPOCH;
        f->has_time = f->has_date = true;
        return 0;
    }
    for (const char *p = text; *p;) {
        size_t i, wl = 0;

        if (*p == '"') {
            const char *close = strchr(p + 1, '"');

            if (!close)
                return tm_fail(-EINVAL, "date format \"%s\": unterminated quoted literal", text);
            for (const char *q = p + 1; q < close; q++)
                f->items[f->n++] = (Item){.tok = T_LIT, .lit = *q};
            p = close + 1;
            continue;
        }
        if (*p == ' ') {
            while (*p == ' ')
                p++;
            f->items[f->n++].tok = T_SPACE;
            continue;
        }
        for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
            wl = strlen(words[i].word);
            if (strncmp(p, words[i].word, wl) == 0)
                break;
        }
        if (i == sizeof(words) / sizeof(words[0])) {
            if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
                return tm_fail(-EINVAL,
                               "date format \"%s\": unknown field at \"%s\" (fields: YYYY YY MM M "
                               "DD D Mon Month HH HH12 MI SS FF AM TZ; quote literal letters "
                               "with \")",
                               text, p);
            f->items[f->n++] = (Item){.tok = T_LIT, .lit = *p++};
            continue;
        }
        Tok t = words[i].tok;

        if (t == T_YEAR2 && pivot < 0)
            return tm_fail(-EINVAL,
                           "date format \"%s\": two-digit years (YY) need a pivot (e.g. pivot: "
                           "50 reads 00..49 as 20xx and 50..99 as 19xx)",
                           text);
        if (t == T_MONTH || t == T_MONNAME)
            month_at = (int)f->n;
        if (t == T_DAY)
            day_at = (int)f->n;
        if (t == T_HOUR12)
            h12 = true;
        if (t == T_AMPM)
            ampm = true;
        if (t == T_HOUR || t == T_HOUR12 || t == T_MIN || t == T_SEC)
            f->has_time = true;
        if (t == T_YEAR4 || t == T_YEAR2 || t == T_MONTH || t == T_DAY || t == T_MONNAME)
            f->has_date = true;
        f->items[f->n++].tok = t;
        p += wl;
    }
    if (h12 != ampm)
        return tm_fail(-EINVAL, "date format \"%s\": HH12 and AM go together", text);
    if (!f->has_date)
        return tm_fail(-EINVAL, "date format \"%s\": has no date fields", text);
    if (month_at < 0 || day_at < 0)
        return tm_fail(-EINVAL, "date format \"%s\": needs a month and a day", text);
    f->order = month_at < day_at ? 1 : 2;
    for (size_t k = 0; k < f->n; k++) {
        bool prev = k > 0 && numeric_tok(f->items[k - 1].tok);
        bool next = k + 1 < f->n && numeric_tok(f->items[k + 1].tok);

        f->items[k].exact = numeric_tok(f->items[k].tok) && (prev || next);
    }
    return 0;
}

int xf_date_opts_init(XfDateOpts *o, const char *const *formats, size_t n, XfPrefer prefer,
                      int pivot, int out)
{
    bool any_time = false;

    memset(o, 0, sizeof(*o));
    if (n == 0)
        return tm_fail(-EINVAL, "parse_date needs at least one format");
    o->formats = xcalloc(n, sizeof(XfDateFormat));
    o->prefer = prefer;
    o->pivot = pivot;
    for (size_t i = 0; i < n; i++) {
        int rc = compile_format(formats[i], pivot, &o->formats[i]);

        o->nformats = i + 1;
        if (rc < 0)
            return rc;
        any_time |= o->formats[i].has_time;
    }
    o->out = out >= 0 ? (XfType)out : any_time ? XF_T_TIMESTAMP : XF_T_DATE;
    if (o->out != XF_T_DATE && o->out != XF_T_TIMESTAMP && o->out != XF_T_TIMESTAMPTZ)
        return tm_fail(-EINVAL, "parse_date output must be date, timestamp or timestamptz");
    return 0;
}

void xf_date_opts_release(XfDateOpts *o)
{
    for (size_t i = 0; i < o->nformats; i++) {
        free(o->formats[i].text);
        free(o->formats[i].items);
    }
    free(o->formats);
    memset(o, 0, sizeof(*o));
}

/* ---- calendar ---------------------------------------------------------- */

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

bool xf_date_valid(int y, int m, int d)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (y < 1 || y > 9999 || m < 1 || m > 12 || d < 1)
        return false;
    return d <= mdays[m - 1] + (m == 2 && leap(y));
}

/* Howard Hinnant's days_from_civil / civil_from_days (public domain algorithms). */
static int64_t days_from_civil(int y, int m, int d)
{
    int64_t yy = y - (m <= 2);
    int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
    int64_t yoe = yy - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}

void xf_civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;

    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

/* ---- matching ---------------------------------------------------------- */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/* Reads 1..max digits (exactly max when exact); returns digits read, 0 on none. */
static size_t digits(const char *p, const char *end, size_t min, size_t max, int *val)
{
    size_t n = 0;
    int v = 0;

    while (p + n < end && n < max && p[n] >= '0' && p[n] <= '9')
        v = v * 10 + (p[n++] - '0');
    if (n < min)
        return 0;
    *val = v;
    return n;
}

/* A month name or abbreviation ("Sep", "Sept", "September", optional '.'); returns length. */
static size_t month_name(const char *p, const char *end, int *month)
{
    size_t n = 0;

    while (p + n < end && ((lower(p[n]) >= 'a' && lower(p[n]) <= 'z')))
        n++;
    if (n < 3)
        return 0;
    for (int i = 0; i < 12; i++) {
        size_t full = strlen(month_names[i]);
        bool ok = n <= full;

        for (size_t k = 0; ok && k < n; k++)
            ok = lower(p[k]) == month_names[i][k];
        /* Whole name, three-letter abbreviation, or "Sept". */
        if (ok && (n == full || n == 3 || (i == 8 && n == 4))) {
            *month = i + 1;
            if (n < full && p + n < end && p[n] == '.')
                n++;
            return n;
        }
    }
    return 0;
}

static int match_epoch(bool ms, const char *p, const char *end, Parsed *r)
{
    bool neg = false;
    int64_t secs = 0;
    int usec = 0, fd = 0;
    const char *q = p;

    if (q < end && (*q == '-' || *q == '+'))
        neg = *q++ == '-';
    if (q == end)
        return -1;
    for (; q < end && *q >= '0' && *q <= '9'; q++) {
        if (secs > 1000000000000000LL)
            return -1;
        secs = secs * 10 + (*q - '0');
    }
    if (!ms && q < end && *q == '.') {
        for (q++; q < end && *q >= '0' && *q <= '9'; q++, fd++)
            if (fd < 6)
                usec = usec * 10 + (*q - '0');
        if (fd == 0 || fd > 6)
            return -1;
        while (fd++ < 6)
            usec *= 10;
    }
    if (q != end)
        return -1;
    if (ms) {
        usec = (int)(secs % 1000) * 1000;
        secs /= 1000;
    }
    if (neg) {
        secs = -secs;
        if (usec) {
            secs -= 1;
            usec = 1000000 - usec;
        }
    }
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t rem = secs - days * 86400;

    if (days < -719162 || days > 2932896) /* years 1..9999 */
        return -1;
    xf_civil_from_days(days, &r->y, &r->m, &r->d);
    r->hh = (int)(rem / 3600);
    r->mi = (int)(rem / 60 % 60);
    r->ss = (int)(rem % 60);
    r->usec = usec;
    r->tz = true;
    r->tz_min = 0;
    r->has_time = true;
    return 0;
}

/* Returns 0 and *r when in matches f completely, -1 otherwise. */
static int match(const XfDateFormat *f, int pivot, const char *p, const char *end, Parsed *r)
{
    int pm = -1; /* -1: no AM/PM, 0: AM, 1: PM */
    bool h12 = false;

    memset(r, 0, sizeof(*r));
    if (f->items[0].tok == T_EPOCH || f->items[0].tok == T_EPOCH_MS)
        return match_epoch(f->items[0].tok == T_EPOCH_MS, p, end, r);
    r->has_time = f->has_time;
    for (size_t k = 0; k < f->n; k++) {
        const Item *it = &f->items[k];
        size_t n = 0;
        int v = 0;

        switch (it->tok) {
        case T_YEAR4:
            n = digits(p, end, 4, 4, &r->y);
            break;
        case T_YEAR2:
            n = digits(p, end, 2, 2, &v);
            r->y = v < pivot ? 2000 + v : 1900 + v;
            break;
        case T_MONTH:
            n = digits(p, end, it->exact ? 2 : 1, 2, &r->m);
            break;
        case T_DAY:
            n = digits(p, end, it->exact ? 2 : 1, 2, &r->d);
            break;
        case T_MONNAME:
            n = month_name(p, end, &r->m);
            break;
        case T_HOUR:
        case T_HOUR12:
            n = digits(p, end, it->exact ? 2 : 1, 2, &r->hh);
            h12 |= it->tok == T_HOUR12;
            break;
        case T_MIN:
            n = digits(p, end, 2, 2, &r->mi);
            break;
        case T_SEC:
            n = digits(p, end, 2, 2, &r->ss);
            break;
        case T_FRAC: {
            int fd = 0;

            while (p + n < end && p[n] >= '0' && p[n] <= '9' && fd < 7)
                v = v * 10 + (p[n++] - '0'), fd++;
            if (fd == 0 || fd > 6)
                return -1;
            while (fd++ < 6)
                v *= 10;
            r->usec = v;
            break;
        }
        case T_AMPM:
            if (end - p >= 4 && (lower(p[0]) == 'a' || lower(p[0]) == 'p') && p[1] == '.' &&
                lower(p[2]) == 'm' && p[3] == '.')
                n = 4;
            else if (end - p >= 2 && (lower(p[0]) == 'a' || lower(p[0]) == 'p') &&
                     lower(p[1]) == 'm')
                n = 2;
            if (n)
                pm = lower(p[0]) == 'p';
            break;
        case T_TZ:
            if (p < end && (*p == 'Z' || *p == 'z')) {
                n = 1;
            } else if (end - p >= 3 && strncmp(p, "UTC", 3) == 0) {
                n = 3;
            } else if (p < end && (*p == '+' || *p == '-')) {
                int hh = 0, mm = 0;
                size_t h = digits(p + 1, end, 2, 2, &hh);

                if (!h || hh > 15)
                    return -1;
                n = 1 + h;
                if (p + n < end && p[n] == ':')
                    n++;
                size_t m = digits(p + n, end, 2, 2, &mm);
                if (m == 0 && p[n - 1] == ':')
                    return -1;
                if (mm > 59)
                    return -1;
                n += m;
                r->tz_min = (hh * 60 + mm) * (*p == '-' ? -1 : 1);
            }
            r->tz = n > 0;
            break;
        case T_LIT:
            if (p < end && lower(*p) == lower(it->lit))
                n = 1;
            break;
        case T_SPACE:
            while (p + n < end && is_blank(p[n]))
                n++;
            break;
        case T_EPOCH:
        case T_EPOCH_MS:
            return -1;
        }
        if (n == 0)
            return -1;
        p += n;
    }
    if (p != end)
        return -1;
    if (h12) {
        if (r->hh < 1 || r->hh > 12)
            return -1;
        r->hh = r->hh % 12 + (pm == 1 ? 12 : 0);
    }
    if (!xf_date_valid(r->y, r->m, r->d) || r->hh > 23 || r->mi > 59 || r->ss > 59)
        return -1;
    return 0;
}

/* Canonical text in out's type; returns length or -1 when the value does not fit it. */
static int render(const Parsed *in, XfType type, char *buf, size_t size)
{
    Parsed r = *in;
    int n;

    if (type == XF_T_DATE) {
        if (r.hh || r.mi || r.ss || r.usec)
            return -1;
        return snprintf(buf, size, "%04d-%02d-%02d", r.y, r.m, r.d);
    }
    if (r.tz && r.tz_min && type == XF_T_TIMESTAMP) {
        /* A zoned input for a zoneless column: the UTC wall time. */
        int64_t days = days_from_civil(r.y, r.m, r.d);
        int64_t mins = days * 1440 + r.hh * 60 + r.mi - r.tz_min;
        int64_t d2 = mins >= 0 ? mins / 1440 : -((-mins + 1439) / 1440);
        int64_t rem = mins - d2 * 1440;

        xf_civil_from_days(d2, &r.y, &r.m, &r.d);
        if (r.y < 1 || r.y > 9999)
            return -1;
        r.hh = (int)(rem / 60);
        r.mi = (int)(rem % 60);
        r.tz_min = 0;
    }
    n = snprintf(buf, size, "%04d-%02d-%02d %02d:%02d:%02d", r.y, r.m, r.d, r.hh, r.mi, r.ss);
    if (r.usec) {
        int u = r.usec, w = 6;

        while (u % 10 == 0)
            u /= 10, w--;
        n += snprintf(buf + n, size - (size_t)n, ".%0*d", w, u);
    }
    if (type == XF_T_TIMESTAMPTZ) {
        int off = r.tz ? r.tz_min : 0;
        int a = off < 0 ? -off : off;

        if (a % 60)
            n += snprintf(buf + n, size - (size_t)n, "%c%02d:%02d", off < 0 ? '-' : '+', a / 60,
                          a % 60);
        else
            n += snprintf(buf + n, size - (size_t)n, "%c%02d", off < 0 ? '-' : '+', a / 60);
    }
    return n;
}

static XfStr trim(XfStr v)
{
    while (v.len && (is_blank(v.s[0]) || v.s[0] == '\n' || v.s[0] == '\r'))
        v.s++, v.len--;
    while (v.len && (is_blank(v.s[v.len - 1]) || v.s[v.len - 1] == '\n' || v.s[v.len - 1] == '\r'))
        v.len--;
    return v;
}

static int parse_with(const XfDateOpts *o, const char *fn, XfStr in, Arena *a, XfStr *out)
{
    XfStr v;
    char best[64] = "", cand[64];
    int best_order = -1, nmatch = 0;
    bool ambiguous = false, unfit = false;
    const char *fa = NULL, *fb = NULL;

    if (!in.s) {
        *out = in;
        return 0;
    }
    v = trim(in);
    for (size_t i = 0; i < o->nformats; i++) {
        const XfDateFormat *f = &o->formats[i];
        Parsed r;

        if (match(f, o->pivot, v.s, v.s + v.len, &r) < 0)
            continue;
        if (render(&r, o->out, cand, sizeof(cand)) < 0) {
            unfit = true;
            continue;
        }
        nmatch++;
        if (nmatch == 1) {
            memcpy(best, cand, sizeof(cand));
            best_order = f->order;
            fa = f->text;
            continue;
        }
        if (strcmp(cand, best) == 0)
            continue;
        /* Two readings disagree: only a stated preference for the month/day order decides. */
        int want = o->prefer == XF_PREFER_MDY ? 1 : o->prefer == XF_PREFER_DMY ? 2 : 0;

        if (want && f->order && best_order > 0 && f->order != best_order &&
            (f->order == want || best_order == want)) {
            if (f->order == want) {
                memcpy(best, cand, sizeof(cand));
                best_order = f->order;
                fa = f->text;
            }
            continue;
        }
        ambiguous = true;
        fb = f->text;
    }
    if (ambiguous)
        return xf_fail(-EINVAL, fn, in,
                       "ambiguous: formats \"%s\" and \"%s\" read it as different dates (set "
                       "prefer: mdy or dmy, or narrow the formats)",
                       fa, fb);
    if (nmatch == 0) {
        if (unfit)
            return xf_fail(-EINVAL, fn, in, "has a time of day, which a date output would drop");
        char list[256];
        size_t len = 0;

        list[0] = '\0';
        for (size_t i = 0; i < o->nformats && len < sizeof(list); i++)
            len += (size_t)snprintf(list + len, sizeof(list) - len, "%s\"%s\"", i ? ", " : "",
                                    o->formats[i].text);
        return xf_fail(-EINVAL, fn, in, "not a valid date in any accepted format (%s)", list);
    }
    *out = xf_dup(a, best, strlen(best));
    return 0;
}

int xf_parse_date(const XfDateOpts *o, XfStr in, Arena *a, XfStr *out)
{
    return parse_with(o, "parse_date", in, a, out);
}

/* ---- ISO casts --------------------------------------------------------- */

static pthread_once_t iso_once = PTHREAD_ONCE_INIT;
static XfDateOpts iso_date, iso_ts, iso_tstz;

static void iso_init(void)
{
    static const char *const date_fmts[] = {"YYYY-MM-DD"};
    static const char *const ts_fmts[] = {
        "YYYY-MM-DD",
        "YYYY-MM-DD HH:MI",
        "YYYY-MM-DD HH:MI:SS",
        "YYYY-MM-DD HH:MI:SS.FF",
        "YYYY-MM-DD\"T\"HH:MI",
        "YYYY-MM-DD\"T\"HH:MI:SS",
        "YYYY-MM-DD\"T\"HH:MI:SS.FF",
        "YYYY-MM-DD HH:MITZ",
        "YYYY-MM-DD HH:MI:SSTZ",
        "YYYY-MM-DD HH:MI:SS.FFTZ",
        "YYYY-MM-DD\"T\"HH:MITZ",
        "YYYY-MM-DD\"T\"HH:MI:SSTZ",
        "YYYY-MM-DD\"T\"HH:MI:SS.FFTZ",
        "YYYY-MM-DD HH:MI:SS TZ",
        "YYYY-MM-DD HH:MI:SS.FF TZ",
    };
    size_t nts = sizeof(ts_fmts) / sizeof(ts_fmts[0]);

    if (xf_date_opts_init(&iso_date, date_fmts, 1, XF_PREFER_NONE, -1, XF_T_DATE) < 0 ||
        xf_date_opts_init(&iso_ts, ts_fmts, nts, XF_PREFER_NONE, -1, XF_T_TIMESTAMP) < 0 ||
        xf_date_opts_init(&iso_tstz, ts_fmts, nts, XF_PREFER_NONE, -1, XF_T_TIMESTAMPTZ) < 0)
        abort(); /* the fixed formats above are valid */
}

int xf_parse_iso(XfType t, XfStr in, Arena *a, XfStr *out)
{
    pthread_once(&iso_once, iso_init);
    switch (t) {
    case XF_T_DATE:
        return parse_with(&iso_date, "cast date", in, a, out);
    case XF_T_TIMESTAMP:
        return parse_with(&iso_ts, "cast timestamp", in, a, out);
    case XF_T_TIMESTAMPTZ:
        return parse_with(&iso_tstz, "cast timestamptz", in, a, out);
    default:
        return tm_fail(-EINVAL, "xf_parse_iso: not a date/time type");
    }
}
