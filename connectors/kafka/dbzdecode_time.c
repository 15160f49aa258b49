/*
 * Dates, times and intervals of Debezium events back to PostgreSQL text
 * (dbzdecode.h), in the ISO DateStyle and postgres IntervalStyle the apply
 * session uses: epoch days and milli/microseconds (the adaptive and connect
 * time modes), ZonedTimestamp and ZonedTime strings, MicroDuration and ISO
 * interval strings, and the values Debezium uses for ±infinity.
 */
#include "connectors/kafka/dbzdecode.h"
#include "core/error.h"
#include "sinks/kafka/dbz_int.h"

#include <stdio.h>
#include <string.h>

/* What the producer writes for ±infinity (sinks/kafka/dbztime.c, after Debezium). */
#define TS_POS_INF_US 9223372036825200000LL
#define TS_NEG_INF_US (-9223372036832400000LL)
#define DATE_POS_INF  (-2147472693LL)
#define DATE_NEG_INF  (-2147472692LL)

#define USECS_PER_SEC 1000000LL
#define USECS_PER_DAY 86400000000LL

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm). */
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

/* "YYYY-MM-DD" as PostgreSQL prints it: year 0 and before are 1 BC and before. */
static void put_date(Buf *out, int64_t days, bool *bc)
{
    int64_t y;
    int m, d;

    civil_from_days(days, &y, &m, &d);
    *bc = y <= 0;
    buf_printf(out, "%04lld-%02d-%02d", (long long)(*bc ? 1 - y : y), m, d);
}

/* "HH:MM:SS[.ffffff]" with the fraction's trailing zeros trimmed; 24:00:00 allowed. */
static void put_time(Buf *out, int64_t usecs)
{
    int64_t secs = usecs / USECS_PER_SEC, frac = usecs % USECS_PER_SEC;

    buf_printf(out, "%02lld:%02lld:%02lld", (long long)(secs / 3600), (long long)(secs / 60 % 60),
               (long long)(secs % 60));
    if (frac) {
        int digits = 6;

        while (frac % 10 == 0) {
            frac /= 10;
            digits--;
        }
        buf_printf(out, ".%0*lld", digits, (long long)frac);
    }
}

static void put_timestamp(Buf *out, int64_t usecs, const char *zone)
{
    int64_t days = floor_div(usecs, USECS_PER_DAY);
    bool bc;

    put_date(out, days, &bc);
    buf_putc(out, ' ');
    put_time(out, usecs - days * USECS_PER_DAY);
    if (zone)
        buf_puts(out, zone);
    if (bc)
        buf_puts(out, " BC");
}

int dbzdecode_date(const DbzCol *c, const json_t *v, Buf *out)
{
    int64_t days;
    bool bc;

    if (!json_is_integer(v))
        return dbzdecode_bad(c, "a date (epoch days)", v);
    days = json_integer_value(v);
    if (days == DATE_POS_INF || days == DATE_NEG_INF) {
        buf_puts(out, days == DATE_POS_INF ? "infinity" : "-infinity");
        return 0;
    }
    put_date(out, days, &bc);
    if (bc)
        buf_puts(out, " BC");
    return 0;
}

int dbzdecode_time(const DbzCol *c, const json_t *v, Buf *out)
{
    int64_t t;

    if (!json_is_integer(v))
        return dbzdecode_bad(c, "a time", v);
    t = json_integer_value(v) * (c->op == OP_TIME_MS ? 1000 : 1);
    if (t < 0 || t > USECS_PER_DAY)
        return dbzdecode_bad(c, "a time of day", v);
    put_time(out, t);
    return 0;
}

int dbzdecode_timestamp(const DbzCol *c, const json_t *v, Buf *out)
{
    bool ms = c->op == OP_TS_MS;
    int64_t t;

    if (!json_is_integer(v))
        return dbzdecode_bad(c, "a timestamp", v);
    t = json_integer_value(v);
    if (t == (ms ? TS_POS_INF_US / 1000 : TS_POS_INF_US) ||
        t == (ms ? floor_div(TS_NEG_INF_US, 1000) : TS_NEG_INF_US)) {
        buf_puts(out, t > 0 ? "infinity" : "-infinity");
        return 0;
    }
    if (ms && (t > INT64_MAX / 1000 || t < INT64_MIN / 1000))
        return dbzdecode_bad(c, "a timestamp in range", v);
    put_timestamp(out, ms ? t * 1000 : t, NULL);
    return 0;
}

typedef struct Cur {
    const char *p, *end;
} Cur;

static bool digits(Cur *c, int min, int max, int64_t *v)
{
    int n = 0;

    *v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9' && n < max) {
        *v = *v * 10 + (*c->p++ - '0');
        n++;
    }
    return n >= min;
}

static bool take(Cur *c, char ch)
{
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* "HH:MM:SS[.f...]Z" into microseconds of the day. */
static bool utc_time(Cur *c, int64_t *usecs)
{
    int64_t h, mi, s, frac = 0;
    int n = 0;

    if (!digits(c, 2, 2, &h) || !take(c, ':') || !digits(c, 2, 2, &mi) || !take(c, ':') ||
        !digits(c, 2, 2, &s))
        return false;
    if (take(c, '.')) {
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (n < 6) {
                frac = frac * 10 + (*c->p - '0');
                n++;
            } else if (*c->p != '0') {
                return false; /* below a microsecond: PostgreSQL has no such value */
            }
            c->p++;
        }
        for (; n < 6; n++)
            frac *= 10;
    }
    if (!take(c, 'Z') || c->p != c->end || h > 24 || mi > 59 || s > 59)
        return false;
    *usecs = ((h * 60 + mi) * 60 + s) * USECS_PER_SEC + frac;
    return true;
}

/* ZonedTimestamp: "[+-]YYYY-MM-DDTHH:MM:SS[.f]Z" (year astronomical), or ±infinity. */
int dbzdecode_timestamptz(const DbzCol *c, const json_t *v, Buf *out)
{
    const char *s = json_string_value(v);
    Cur cur;
    int64_t y, m, d, tod;
    bool neg;

    if (!s)
        return dbzdecode_bad(c, "a timestamptz", v);
    if (strcmp(s, "infinity") == 0 || strcmp(s, "-infinity") == 0) {
        buf_puts(out, s);
        return 0;
    }
    cur = (Cur){s, s + json_string_length(v)};
    neg = take(&cur, '-');
    if (!neg)
        take(&cur, '+');
    if (!digits(&cur, 4, 9, &y) || !take(&cur, '-') || !digits(&cur, 2, 2, &m) ||
        !take(&cur, '-') || !digits(&cur, 2, 2, &d) || !take(&cur, 'T') || !utc_time(&cur, &tod))
        return dbzdecode_bad(c, "a timestamptz (ISO-8601 at UTC)", v);
    if (neg)
        y = -y;
    buf_printf(out, "%04lld-%02lld-%02lld ", (long long)(y <= 0 ? 1 - y : y), (long long)m,
               (long long)d);
    put_time(out, tod);
    buf_puts(out, y <= 0 ? "+00 BC" : "+00");
    return 0;
}

/* ZonedTime: "HH:MM:SS[.f]Z", the time at UTC. */
int dbzdecode_timetz(const DbzCol *c, const json_t *v, Buf *out)
{
    const char *s = json_string_value(v);
    Cur cur;
    int64_t tod;

    if (!s)
        return dbzdecode_bad(c, "a timetz", v);
    cur = (Cur){s, s + json_string_length(v)};
    if (!utc_time(&cur, &tod))
        return dbzdecode_bad(c, "a timetz (ISO-8601 at UTC)", v);
    put_time(out, tod);
    buf_puts(out, "+00");
    return 0;
}

/*
 * MicroDuration: a number of microseconds (months and days were turned into
 * average durations on the way: dbzdecode_lossy says so); the ISO string
 * "P1Y2M3DT4H5M6.78S", which interval input reads as it is.
 */
int dbzdecode_interval(const DbzCol *c, const json_t *v, Buf *out)
{
    if (c->op == OP_INTERVAL_US) {
        if (!json_is_integer(v))
            return dbzdecode_bad(c, "an interval (microseconds)", v);
        buf_printf(out, "%" JSON_INTEGER_FORMAT " microseconds", json_integer_value(v));
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) < 2 || json_string_value(v)[0] != 'P')
        return dbzdecode_bad(c, "an interval (ISO-8601)", v);
    buf_append(out, json_string_value(v), json_string_length(v));
    return 0;
}
