/*
 * Debezium value rendering (see debezium.h): one PostgreSQL text-output value
 * of a given type OID to the JSON Debezium's converter would write with its
 * default settings, except numeric (a string, never a lossy float; Debezium's
 * decimal.handling.mode=string). Dates and times follow DateStyle ISO and
 * intervals IntervalStyle postgres, PostgreSQL's defaults; a value in another
 * style is an error rather than a silently different rendering. Unknown
 * types (enums, domains, geometric, ranges, ...) are strings.
 */
#include "sinks/kafka/debezium.h"
#include "core/error.h"
#include "core/hex.h"

#include <stdio.h>
#include <string.h>

enum {
    OID_BOOL = 16,
    OID_BYTEA = 17,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_OID = 26,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_DATE = 1082,
    OID_TIME = 1083,
    OID_TIMESTAMP = 1114,
    OID_TIMESTAMPTZ = 1184,
    OID_INTERVAL = 1186,
    OID_TIMETZ = 1266,
};

#define USECS_PER_SEC  1000000LL
#define USECS_PER_DAY  86400000000LL
#define SECS_PER_MONTH 2629800LL /* Debezium's 365.25 / 12 days, exactly */

/* The element type of the one-dimensional arrays rendered as JSON arrays. */
static uint32_t array_element(uint32_t oid)
{
    switch (oid) {
    case 1000: /* bool[] */
        return OID_BOOL;
    case 1001:
        return OID_BYTEA;
    case 1005:
        return OID_INT2;
    case 1007:
        return OID_INT4;
    case 1016:
        return OID_INT8;
    case 1028:
        return OID_OID;
    case 1021:
        return OID_FLOAT4;
    case 1022:
        return OID_FLOAT8;
    case 1182:
        return OID_DATE;
    case 1183:
        return OID_TIME;
    case 1115:
        return OID_TIMESTAMP;
    case 1185:
        return OID_TIMESTAMPTZ;
    case 1187:
        return OID_INTERVAL;
    case 1270:
        return OID_TIMETZ;
    case 1231:     /* numeric[] */
    case 1009:     /* text[] */
    case 1015:     /* varchar[] */
    case 1014:     /* bpchar[] */
    case 1002:     /* char[] */
    case 1003:     /* name[] */
    case 2951:     /* uuid[] */
    case 199:      /* json[] */
    case 3807:     /* jsonb[] */
    case 1041:     /* inet[] */
    case 651:      /* cidr[] */
    case 1040:     /* macaddr[] */
        return 25; /* rendered as strings */
    default:
        return 0;
    }
}

/* ---- JSON strings ------------------------------------------------------ */

void debezium_json_string(Buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const char *run = s, *end = s + len;

    buf_reserve(out, len + 2);
    buf_putc(out, '"');
    for (const char *p = s; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        char esc[7];
        size_t n = 2;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        buf_append(out, run, (size_t)(p - run));
        run = p + 1;
        esc[0] = '\\';
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
            break;
        }
        buf_append(out, esc, n);
    }
    buf_append(out, run, (size_t)(end - run));
    buf_putc(out, '"');
}

/* ---- numbers ----------------------------------------------------------- */

static void put_i64(Buf *out, int64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof(tmp);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    buf_append(out, p, (size_t)(tmp + sizeof(tmp) - p));
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* JSON's number grammar: -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)? */
static bool json_number(const char *s, size_t len)
{
    const char *p = s, *end = s + len;

    if (p < end && *p == '-')
        p++;
    if (p == end || !is_digit(*p))
        return false;
    if (*p == '0')
        p++;
    else
        while (p < end && is_digit(*p))
            p++;
    if (p < end && *p == '.') {
        if (++p == end || !is_digit(*p))
            return false;
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p == end || !is_digit(*p))
            return false;
        while (p < end && is_digit(*p))
            p++;
    }
    return p == end;
}

static int bad_value(uint32_t oid, const char *what, const char *text, size_t len)
{
    return tm_fail(-EINVAL, "cannot render %s value \"%.*s\" (type oid %u)", what,
                   len > 60 ? 60 : (int)len, text, oid);
}

static int render_integer(Buf *out, uint32_t oid, const char *text, size_t len)
{
    size_t i = len > 0 && text[0] == '-' ? 1 : 0;

    if (i == len)
        return bad_value(oid, "an integer", text, len);
    for (; i < len; i++)
        if (!is_digit(text[i]))
            return bad_value(oid, "an integer", text, len);
    buf_append(out, text, len);
    return 0;
}

/* NaN and the infinities have no JSON number: Debezium writes them as strings. */
static int render_float(Buf *out, uint32_t oid, const char *text, size_t len)
{
    if (json_number(text, len)) {
        buf_append(out, text, len);
        return 0;
    }
    if ((len == 3 && memcmp(text, "NaN", 3) == 0) ||
        (len == 8 && memcmp(text, "Infinity", 8) == 0) ||
        (len == 9 && memcmp(text, "-Infinity", 9) == 0)) {
        debezium_json_string(out, text, len);
        return 0;
    }
    return bad_value(oid, "a float", text, len);
}

/* ---- bytea ------------------------------------------------------------- */

/* Decodes bytea text output (hex "\x..." or the old escape format) onto out. */
static int bytea_decode(Buf *bytes, const char *text, size_t len)
{
    if (len >= 2 && text[0] == '\\' && text[1] == 'x') {
        if ((len - 2) % 2)
            return -EINVAL;
        buf_reserve(bytes, (len - 2) / 2);
        for (size_t i = 2; i < len; i += 2) {
            int hi = hex_value(text[i]), lo = hex_value(text[i + 1]);

            if (hi < 0 || lo < 0)
                return -EINVAL;
            buf_putc(bytes, (char)(hi * 16 + lo));
        }
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '\\') {
            buf_putc(bytes, text[i]);
        } else if (i + 1 < len && text[i + 1] == '\\') {
            buf_putc(bytes, '\\');
            i++;
        } else if (i + 3 < len && text[i + 1] >= '0' && text[i + 1] <= '3' && text[i + 2] >= '0' &&
                   text[i + 2] <= '7' && text[i + 3] >= '0' && text[i + 3] <= '7') {
            buf_putc(bytes, (char)((text[i + 1] - '0') * 64 + (text[i + 2] - '0') * 8 +
                                   (text[i + 3] - '0')));
            i += 3;
        } else {
            return -EINVAL;
        }
    }
    return 0;
}

static void base64(Buf *out, const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];

    buf_reserve(out, (n + 2) / 3 * 4 + 2);
    buf_putc(out, '"');
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;

        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        q[0] = tab[(v >> 18) & 63];
        q[1] = tab[(v >> 12) & 63];
        q[2] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? tab[v & 63] : '=';
        buf_append(out, q, 4);
    }
    buf_putc(out, '"');
}

static int render_bytea(Buf *out, const char *text, size_t len)
{
    Buf bytes = BUF_INIT;
    int rc = bytea_decode(&bytes, text, len);

    if (rc == 0)
        base64(out, (const unsigned char *)bytes.data, bytes.len);
    buf_release(&bytes);
    return rc < 0 ? bad_value(OID_BYTEA, "a bytea", text, len) : 0;
}

/* ---- dates and times --------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;

    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

typedef struct Cursor {
    const char *p, *end;
} Cursor;

/* Between min and max decimal digits. */
static bool take_digits(Cursor *c, int min, int max, int64_t *v)
{
    int n = 0;

    *v = 0;
    while (c->p < c->end && is_digit(*c->p) && n < max) {
        *v = *v * 10 + (*c->p++ - '0');
        n++;
    }
    return n >= min;
}

static bool take_char(Cursor *c, char ch)
{
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

typedef struct Ymd {
    int64_t y;
    int m, d;
} Ymd;

/* "YYYY-MM-DD" (the year may be longer than four digits). */
static bool parse_date(Cursor *c, Ymd *out)
{
    int64_t y, m, d;

    if (!take_digits(c, 4, 9, &y) || !take_char(c, '-') || !take_digits(c, 2, 2, &m) ||
        !take_char(c, '-') || !take_digits(c, 2, 2, &d))
        return false;
    if (m < 1 || m > 12 || d < 1 || d > 31)
        return false;
    *out = (Ymd){y, (int)m, (int)d};
    return true;
}

/*
 * "H...:MM:SS[.ffffff]" with at least two and at most hdigits hour digits:
 * microseconds. Times of day stop at 24:00:00; interval hours do not.
 */
static bool parse_hms(Cursor *c, int hdigits, int64_t max_h, int64_t *usecs)
{
    int64_t h, mi, s, frac = 0;

    if (!take_digits(c, 2, hdigits, &h) || !take_char(c, ':') || !take_digits(c, 2, 2, &mi) ||
        !take_char(c, ':') || !take_digits(c, 2, 2, &s))
        return false;
    if (take_char(c, '.')) {
        int n = 0;

        while (c->p < c->end && is_digit(*c->p)) {
            if (n < 6) {
                frac = frac * 10 + (*c->p - '0');
                n++;
            }
            c->p++;
        }
        if (n == 0)
            return false;
        for (; n < 6; n++)
            frac *= 10;
    }
    if (h > max_h || mi > 59 || s > 60)
        return false;
    *usecs = ((h * 60 + mi) * 60 + s) * USECS_PER_SEC + frac;
    return true;
}

static bool parse_time(Cursor *c, int64_t *usecs)
{
    return parse_hms(c, 2, 24, usecs);
}

/* "+HH[:MM[:SS]]" or "-...": seconds east of UTC. */
static bool parse_offset(Cursor *c, int64_t *secs)
{
    int sign;
    int64_t h, m = 0, s = 0;

    if (take_char(c, '+'))
        sign = 1;
    else if (take_char(c, '-'))
        sign = -1;
    else
        return false;
    if (!take_digits(c, 2, 2, &h))
        return false;
    if (take_char(c, ':')) {
        if (!take_digits(c, 2, 2, &m))
            return false;
        if (take_char(c, ':') && !take_digits(c, 2, 2, &s))
            return false;
    }
    *secs = sign * ((h * 60 + m) * 60 + s);
    return true;
}

/*
 * A date, or a timestamp with time (and offset when tz): microseconds since
 * the Unix epoch, at UTC. " BC" at the end makes year Y the astronomical
 * year 1 - Y (1 BC is year 0).
 */
static bool parse_timestamp(const char *text, size_t len, bool tz, bool with_time, int64_t *usecs)
{
    Cursor c = {text, text + len};
    Ymd ymd;
    int64_t tod = 0, off = 0;

    if (!parse_date(&c, &ymd))
        return false;
    if (with_time) {
        if (!take_char(&c, ' ') || !parse_time(&c, &tod))
            return false;
        if (tz && !parse_offset(&c, &off))
            return false;
    }
    if (c.end - c.p == 3 && memcmp(c.p, " BC", 3) == 0) {
        ymd.y = 1 - ymd.y;
        c.p += 3;
    }
    if (c.p != c.end)
        return false;
    *usecs = days_from_civil(ymd.y, ymd.m, ymd.d) * USECS_PER_DAY + tod - off * USECS_PER_SEC;
    return true;
}

static bool is_word(const char *text, size_t len, const char *w)
{
    return strlen(w) == len && memcmp(text, w, len) == 0;
}

/* ISO-8601 in UTC with the fraction trimmed, like Java's ISO_OFFSET_DATE_TIME. */
static void put_iso_utc(Buf *out, int64_t usecs, bool date_part)
{
    int64_t days = usecs / USECS_PER_DAY - (usecs % USECS_PER_DAY < 0);
    int64_t tod = usecs - days * USECS_PER_DAY;
    int64_t y;
    int m, d;
    char tmp[64];
    int n = 0;

    if (date_part) {
        civil_from_days(days, &y, &m, &d);
        if (y < 0)
            n = snprintf(tmp, sizeof(tmp), "-%04lld-%02d-%02dT", (long long)-y, m, d);
        else if (y > 9999)
            n = snprintf(tmp, sizeof(tmp), "+%lld-%02d-%02dT", (long long)y, m, d);
        else
            n = snprintf(tmp, sizeof(tmp), "%04lld-%02d-%02dT", (long long)y, m, d);
    }
    int64_t secs = tod / USECS_PER_SEC, frac = tod % USECS_PER_SEC;

    n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "%02d:%02d:%02d", (int)(secs / 3600),
                  (int)(secs / 60 % 60), (int)(secs % 60));
    if (frac) {
        int digits = 6;

        while (frac % 10 == 0) {
            frac /= 10;
            digits--;
        }
        n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, ".%0*lld", digits, (long long)frac);
    }
    tmp[n++] = 'Z';
    buf_putc(out, '"');
    buf_append(out, tmp, (size_t)n);
    buf_putc(out, '"');
}

static int render_date(Buf *out, const char *text, size_t len)
{
    int64_t usecs;

    /* Debezium's int32 days cannot say infinity: the int32 extremes stand in. */
    if (is_word(text, len, "infinity") || is_word(text, len, "-infinity")) {
        put_i64(out, text[0] == '-' ? INT32_MIN : INT32_MAX);
        return 0;
    }
    if (!parse_timestamp(text, len, false, false, &usecs))
        return bad_value(OID_DATE, "a date (DateStyle must be ISO)", text, len);
    put_i64(out, usecs / USECS_PER_DAY);
    return 0;
}

static int render_timestamp(Buf *out, uint32_t oid, const char *text, size_t len)
{
    bool tz = oid == OID_TIMESTAMPTZ;
    int64_t usecs;

    if (is_word(text, len, "infinity") || is_word(text, len, "-infinity")) {
        if (tz)
            debezium_json_string(out, text, len);
        else
            put_i64(out, text[0] == '-' ? INT64_MIN : INT64_MAX);
        return 0;
    }
    if (!parse_timestamp(text, len, tz, true, &usecs))
        return bad_value(oid, "a timestamp (DateStyle must be ISO)", text, len);
    if (tz)
        put_iso_utc(out, usecs, true);
    else
        put_i64(out, usecs);
    return 0;
}

static int render_time(Buf *out, uint32_t oid, const char *text, size_t len)
{
    Cursor c = {text, text + len};
    int64_t usecs, off = 0;

    if (!parse_time(&c, &usecs) || (oid == OID_TIMETZ && !parse_offset(&c, &off)) || c.p != c.end)
        return bad_value(oid, "a time", text, len);
    if (oid == OID_TIME) {
        put_i64(out, usecs);
        return 0;
    }
    /* ZonedTime: the time of day at UTC. */
    usecs -= off * USECS_PER_SEC;
    usecs %= USECS_PER_DAY;
    if (usecs < 0)
        usecs += USECS_PER_DAY;
    put_iso_utc(out, usecs, false);
    return 0;
}

/*
 * IntervalStyle postgres ("1 year 2 mons -3 days +04:05:06.5") to Debezium's
 * MicroDuration: microseconds, a month counted as 365.25 / 12 days.
 */
static int render_interval(Buf *out, const char *text, size_t len)
{
    Cursor c = {text, text + len};
    int64_t months = 0, days = 0, usecs = 0;

    while (c.p < c.end) {
        int64_t sign = 1;
        const char *colon = memchr(c.p, ':', (size_t)(c.end - c.p));
        const char *space = memchr(c.p, ' ', (size_t)(c.end - c.p));
        int64_t n;

        if (take_char(&c, '-'))
            sign = -1;
        else
            take_char(&c, '+');
        if (colon && (!space || colon < space)) {
            if (!parse_hms(&c, 12, INT32_MAX, &n))
                goto bad;
            usecs += sign * n;
        } else {
            const char *w;
            size_t wl;

            if (!take_digits(&c, 1, 18, &n) || !take_char(&c, ' '))
                goto bad;
            n *= sign;
            for (w = c.p; c.p < c.end && *c.p != ' ';)
                c.p++;
            wl = (size_t)(c.p - w);
            if (wl >= 4 && memcmp(w, "year", 4) == 0)
                months += n * 12;
            else if (wl >= 3 && memcmp(w, "mon", 3) == 0)
                months += n;
            else if (wl >= 3 && memcmp(w, "day", 3) == 0)
                days += n;
            else
                goto bad;
        }
        if (c.p < c.end && (!take_char(&c, ' ') || c.p == c.end))
            goto bad;
    }
    if (len == 0)
        goto bad;
    put_i64(out, months * SECS_PER_MONTH * USECS_PER_SEC + days * USECS_PER_DAY + usecs);
    return 0;
bad:
    return bad_value(OID_INTERVAL, "an interval (IntervalStyle must be postgres)", text, len);
}

/* ---- arrays ------------------------------------------------------------ */

static int render_scalar(Buf *out, uint32_t oid, const char *text, size_t len);

/*
 * A one-dimensional array literal ("{1,2,NULL}", "{\"a,b\",c}") as a JSON
 * array of rendered elements. Returns 1 when the literal is not a plain
 * one-dimensional array (dimension decoration, nesting): render it as a string.
 */
static int render_array(Buf *out, uint32_t elem, const char *text, size_t len)
{
    const char *p = text, *end = text + len;
    size_t mark = out->len;
    Buf item = BUF_INIT;
    int rc = 0;
    bool first = true;

    if (len < 2 || text[0] != '{' || text[len - 1] != '}')
        return 1;
    p++;
    end--;
    buf_putc(out, '[');
    while (p < end) {
        bool quoted = false;

        buf_clear(&item);
        if (*p == '{') {
            rc = 1;
            break;
        }
        if (*p == '"') {
            quoted = true;
            for (p++; p < end && *p != '"'; p++) {
                if (*p == '\\' && p + 1 < end)
                    p++;
                buf_putc(&item, *p);
            }
            if (p == end) {
                rc = 1;
                break;
            }
            p++;
        } else {
            const char *s = p;

            while (p < end && *p != ',')
                p++;
            buf_append(&item, s, (size_t)(p - s));
        }
        if (!first)
            buf_putc(out, ',');
        first = false;
        if (!quoted && item.len == 4 && memcmp(item.data, "NULL", 4) == 0)
            buf_puts(out, "null");
        else if ((rc = render_scalar(out, elem, item.data ? item.data : "", item.len)) < 0)
            break;
        if (p < end && *p++ != ',') {
            rc = 1;
            break;
        }
    }
    buf_release(&item);
    if (rc != 0) {
        out->len = mark;
        return rc;
    }
    buf_putc(out, ']');
    return 0;
}

/* ---- dispatch ---------------------------------------------------------- */

static int render_scalar(Buf *out, uint32_t oid, const char *text, size_t len)
{
    switch (oid) {
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
        return render_integer(out, oid, text, len);
    case OID_BOOL:
        if (len == 1 && (text[0] == 't' || text[0] == 'f')) {
            buf_puts(out, text[0] == 't' ? "true" : "false");
            return 0;
        }
        return bad_value(oid, "a boolean", text, len);
    case OID_FLOAT4:
    case OID_FLOAT8:
        return render_float(out, oid, text, len);
    case OID_BYTEA:
        return render_bytea(out, text, len);
    case OID_DATE:
        return render_date(out, text, len);
    case OID_TIMESTAMP:
    case OID_TIMESTAMPTZ:
        return render_timestamp(out, oid, text, len);
    case OID_TIME:
    case OID_TIMETZ:
        return render_time(out, oid, text, len);
    case OID_INTERVAL:
        return render_interval(out, text, len);
    default:
        /* numeric, money, text types, uuid, json(b), xml, inet, enums, ... */
        debezium_json_string(out, text, len);
        return 0;
    }
}

int debezium_value(Buf *out, uint32_t type_oid, const char *text, size_t len)
{
    uint32_t elem = array_element(type_oid);

    if (elem) {
        size_t mark = out->len;
        int rc = render_array(out, elem, text, len);

        if (rc <= 0)
            return rc == 0 ? 0 : tm_fail_ctx(rc, "in an array");
        out->len = mark;
        debezium_json_string(out, text, len);
        return 0;
    }
    return render_scalar(out, type_oid, text, len);
}
