/*
 * Dates, times and intervals as Debezium renders them (dbz_int.h), parsed
 * from PostgreSQL's DateStyle ISO and IntervalStyle postgres output (the
 * defaults of replication and copy sessions; another style is an error, not
 * a guess). time.precision.mode picks milliseconds or microseconds per
 * column precision, as Debezium's adaptive modes do; ±infinity become the
 * values Debezium's converter produces for them (docs/KAFKA.md); intervals
 * go through the same double arithmetic as Debezium's MicroDuration, so the
 * result is the same to the microsecond.
 */
#include "sinks/kafka/dbz_int.h"
#include "core/error.h"

#include <stdio.h>
#include <string.h>

#define USECS_PER_SEC 1000000LL
#define USECS_PER_DAY 86400000000LL

/*
 * What Debezium emits for infinite values. Timestamps: PgStatement's
 * DATE_POSITIVE/NEGATIVE_INFINITY taken as microseconds. Dates: the epoch
 * days of the LocalDates -5877611-06-21 and -06-22 that its converter uses
 * for 'infinity' and '-infinity' (PostgresValueConverter).
 */
#define TS_POS_INF_US  9223372036825200000LL
#define TS_NEG_INF_US  (-9223372036832400000LL)
#define DATE_POS_INF   (-2147472693LL)
#define DATE_NEG_INF   (-2147472692LL)
#define DAYS_PER_MONTH (365.25 / 12.0)

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Floor division, for times before the epoch. */
static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

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

/* "YYYY-MM-DD" (the year may be longer than four digits). */
static bool parse_date(Cursor *c, int64_t *y, int *m, int *d)
{
    int64_t yy, mm, dd;

    if (!take_digits(c, 4, 9, &yy) || !take_char(c, '-') || !take_digits(c, 2, 2, &mm) ||
        !take_char(c, '-') || !take_digits(c, 2, 2, &dd))
        return false;
    if (mm < 1 || mm > 12 || dd < 1 || dd > 31)
        return false;
    *y = yy;
    *m = (int)mm;
    *d = (int)dd;
    return true;
}

/* "H..:MM:SS[.ffffff]" in microseconds; a time of day stops at 24:00:00. */
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
 * the Unix epoch, at UTC. " BC" makes year Y the astronomical 1 - Y.
 */
static bool parse_timestamp(const char *text, size_t len, bool tz, bool with_time, int64_t *usecs)
{
    Cursor c = {text, text + len};
    int64_t y, tod = 0, off = 0;
    int m, d;

    if (!parse_date(&c, &y, &m, &d))
        return false;
    if (with_time) {
        if (!take_char(&c, ' ') || !parse_hms(&c, 2, 24, &tod))
            return false;
        if (tz && !parse_offset(&c, &off))
            return false;
    }
    if (c.end - c.p == 3 && memcmp(c.p, " BC", 3) == 0) {
        y = 1 - y;
        c.p += 3;
    }
    if (c.p != c.end)
        return false;
    *usecs = days_from_civil(y, m, d) * USECS_PER_DAY + tod - off * USECS_PER_SEC;
    return true;
}

static int infinity(const char *text, size_t len)
{
    if (len == 8 && memcmp(text, "infinity", 8) == 0)
        return 1;
    if (len == 9 && memcmp(text, "-infinity", 9) == 0)
        return -1;
    return 0;
}

/* java.time's ISO date-time at UTC: fraction of exactly width digits, or trimmed (0). */
static void put_iso_utc(Buf *out, int64_t usecs, bool date_part, int width)
{
    int64_t days = floor_div(usecs, USECS_PER_DAY);
    int64_t tod = usecs - days * USECS_PER_DAY;
    int64_t y, secs = tod / USECS_PER_SEC, frac = tod % USECS_PER_SEC;
    int m, d, n = 0;
    char tmp[80];

    if (date_part) {
        civil_from_days(days, &y, &m, &d);
        if (y < 0)
            n = snprintf(tmp, sizeof(tmp), "-%04lld-%02d-%02dT", (long long)-y, m, d);
        else if (y > 9999)
            n = snprintf(tmp, sizeof(tmp), "+%lld-%02d-%02dT", (long long)y, m, d);
        else
            n = snprintf(tmp, sizeof(tmp), "%04lld-%02d-%02dT", (long long)y, m, d);
    }
    n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "%02d:%02d:%02d", (int)(secs / 3600),
                  (int)(secs / 60 % 60), (int)(secs % 60));
    if (width > 0) {
        /* width digits of the nanosecond fraction (we have six) */
        char nanos[32];

        snprintf(nanos, sizeof(nanos), "%06lld000", (long long)frac);
        tmp[n++] = '.';
        for (int i = 0; i < width && i < 9; i++)
            tmp[n++] = nanos[i];
    } else if (frac) {
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

int dbz_date(Buf *out, const DbzCol *c, const char *text, size_t len)
{
    int inf = infinity(text, len);
    int64_t usecs;

    if (inf) {
        dbz_put_i64(out, inf > 0 ? DATE_POS_INF : DATE_NEG_INF);
        return 0;
    }
    if (!parse_timestamp(text, len, false, false, &usecs))
        return dbz_bad_value(c, "a date (DateStyle must be ISO)", text, len);
    dbz_put_i64(out, usecs / USECS_PER_DAY);
    return 0;
}

int dbz_timestamp(Buf *out, const DbzCol *c, const char *text, size_t len)
{
    int inf = infinity(text, len);
    int64_t usecs;

    if (inf)
        usecs = inf > 0 ? TS_POS_INF_US : TS_NEG_INF_US;
    else if (!parse_timestamp(text, len, false, true, &usecs))
        return dbz_bad_value(c, "a timestamp (DateStyle must be ISO)", text, len);
    dbz_put_i64(out, c->op == OP_TS_MS ? floor_div(usecs, 1000) : usecs);
    return 0;
}

int dbz_timestamptz(Buf *out, const DbzCol *c, const char *text, size_t len)
{
    int64_t usecs;

    if (infinity(text, len)) {
        debezium_json_string(out, text, len);
        return 0;
    }
    if (!parse_timestamp(text, len, true, true, &usecs))
        return dbz_bad_value(c, "a timestamptz (DateStyle must be ISO)", text, len);
    put_iso_utc(out, usecs, true, c->scale);
    return 0;
}

int dbz_time(Buf *out, const DbzCol *c, const char *text, size_t len)
{
    Cursor cur = {text, text + len};
    int64_t usecs;

    if (!parse_hms(&cur, 2, 24, &usecs) || cur.p != cur.end)
        return dbz_bad_value(c, "a time", text, len);
    dbz_put_i64(out, c->op == OP_TIME_MS ? usecs / 1000 : usecs);
    return 0;
}

/* ZonedTime: the time of day at UTC. */
int dbz_timetz(Buf *out, const DbzCol *c, const char *text, size_t len)
{
    Cursor cur = {text, text + len};
    int64_t usecs, off = 0;

    if (!parse_hms(&cur, 2, 24, &usecs) || !parse_offset(&cur, &off) || cur.p != cur.end)
        return dbz_bad_value(c, "a timetz", text, len);
    usecs -= off * USECS_PER_SEC;
    usecs %= USECS_PER_DAY;
    if (usecs < 0)
        usecs += USECS_PER_DAY;
    put_iso_utc(out, usecs, false, 0);
    return 0;
}

/* An interval's fields as PGInterval parses IntervalStyle postgres output. */
typedef struct Interval {
    int64_t years, months, days, hours, minutes;
    int64_t whole_secs, micros; /* same sign */
} Interval;

static bool parse_interval(const char *text, size_t len, Interval *iv)
{
    Cursor c = {text, text + len};

    memset(iv, 0, sizeof(*iv));
    if (len == 0)
        return false;
    while (c.p < c.end) {
        int64_t sign = 1, n;
        const char *colon = memchr(c.p, ':', (size_t)(c.end - c.p));
        const char *space = memchr(c.p, ' ', (size_t)(c.end - c.p));

        if (take_char(&c, '-'))
            sign = -1;
        else
            take_char(&c, '+');
        if (colon && (!space || colon < space)) {
            if (!parse_hms(&c, 12, INT32_MAX, &n))
                return false;
            iv->hours = sign * (n / (3600 * USECS_PER_SEC));
            iv->minutes = sign * (n / (60 * USECS_PER_SEC) % 60);
            iv->whole_secs = sign * (n / USECS_PER_SEC % 60);
            iv->micros = sign * (n % USECS_PER_SEC);
        } else {
            const char *w;
            size_t wl;

            if (!take_digits(&c, 1, 18, &n) || !take_char(&c, ' '))
                return false;
            n *= sign;
            for (w = c.p; c.p < c.end && *c.p != ' ';)
                c.p++;
            wl = (size_t)(c.p - w);
            if (wl >= 4 && memcmp(w, "year", 4) == 0)
                iv->years += n;
            else if (wl >= 3 && memcmp(w, "mon", 3) == 0)
                iv->months += n;
            else if (wl >= 3 && memcmp(w, "day", 3) == 0)
                iv->days += n;
            else
                return false;
        }
        if (c.p < c.end && (!take_char(&c, ' ') || c.p == c.end))
            return false;
    }
    return true;
}

int dbz_interval(Buf *out, const DbzCol *c, const char *text, size_t len)
{
    Interval iv;
    /* PGInterval.getSeconds(): whole seconds plus microseconds / 1e6, as a double */
    double secs;

    if (!parse_interval(text, len, &iv))
        return dbz_bad_value(c, "an interval (IntervalStyle must be postgres)", text, len);
    secs = (double)iv.whole_secs + (double)iv.micros / 1e6;
    if (c->op == OP_INTERVAL_US) {
        /* MicroDuration.durationMicros, in Java's double arithmetic */
        double days = (double)(int32_t)(iv.years * 12 + iv.months) * DAYS_PER_MONTH +
                      (double)(int32_t)iv.days;
        double total =
            (((days * 24 + (double)(int32_t)iv.hours) * 60) + (double)(int32_t)iv.minutes) * 60 +
            secs;

        dbz_put_i64(out, (int64_t)(total * 1e6));
        return 0;
    }
    /* Interval.toIsoString: BigDecimal.valueOf(seconds).stripTrailingZeros().toPlainString() */
    Buf s = BUF_INIT;
    const char *p, *dot;

    dbz_java_double(&s, secs);
    buf_cstr(&s);
    if (!strchr(s.data, 'E')) {
        /* plain: drop trailing zeros of the fraction, and the point with them */
        dot = strchr(s.data, '.');
        if (dot) {
            while (s.len && s.data[s.len - 1] == '0')
                s.len--;
            if (s.data[s.len - 1] == '.')
                s.len--;
        }
        p = buf_cstr(&s);
        if (strcmp(p, "-0") == 0)
            p = "0";
    } else {
        /* a tiny fraction (below 1e-3, printed as E-n): micros, plainly */
        buf_clear(&s);
        buf_printf(&s, "%s%lld.%06lld", iv.whole_secs < 0 || iv.micros < 0 ? "-" : "",
                   (long long)(iv.whole_secs < 0 ? -iv.whole_secs : iv.whole_secs),
                   (long long)(iv.micros < 0 ? -iv.micros : iv.micros));
        while (s.data[s.len - 1] == '0')
            s.len--;
        p = buf_cstr(&s);
    }
    buf_printf(out, "\"P%lldY%lldM%lldDT%lldH%lldM%sS\"", (long long)iv.years, (long long)iv.months,
               (long long)iv.days, (long long)iv.hours, (long long)iv.minutes, p);
    buf_release(&s);
    return 0;
}
