/*
 * Numbers as Debezium renders them (dbz_int.h): numeric in the three
 * decimal.handling.mode encodings (Kafka Connect Decimal bytes, Debezium's
 * VariableScaleDecimal, a double, BigDecimal.toString()), money (which
 * Debezium reads through a Java double, so it is converted the same way),
 * floats, and Java's Double.toString(), which is what Jackson writes for a
 * double and Debezium uses for money strings. Decimal digits are handled as
 * text, never as floats, except where Debezium itself goes through a double.
 */
#include "sinks/kafka/dbz_int.h"
#include "core/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A decimal as BigDecimal sees it: unscaled digits (no leading zeros) times 10^-scale. */
typedef struct Dec {
    bool neg;
    Buf digits; /* "0" for zero */
    int32_t scale;
} Dec;

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_special(const char *t, size_t len)
{
    return (len == 3 && memcmp(t, "NaN", 3) == 0) || (len == 8 && memcmp(t, "Infinity", 8) == 0) ||
           (len == 9 && memcmp(t, "-Infinity", 9) == 0);
}

static void dec_release(Dec *d)
{
    buf_release(&d->digits);
}

/* Drops leading zeros, keeping one digit. */
static void dec_trim_leading(Dec *d)
{
    size_t z = 0;

    while (z + 1 < d->digits.len && d->digits.data[z] == '0')
        z++;
    if (z) {
        memmove(d->digits.data, d->digits.data + z, d->digits.len - z);
        d->digits.len -= z;
    }
    if (d->digits.len == 0)
        buf_putc(&d->digits, '0');
}

/* "[-]digits[.digits][E[+-]n]": PostgreSQL's numeric output, or Java's double output. */
static bool dec_parse(Dec *d, const char *s, size_t len)
{
    const char *p = s, *end = s + len;
    long exp = 0;
    bool any = false;

    memset(d, 0, sizeof(*d));
    if (p < end && (*p == '-' || *p == '+'))
        d->neg = *p++ == '-';
    for (; p < end && is_digit(*p); p++, any = true)
        buf_putc(&d->digits, *p);
    if (p < end && *p == '.') {
        for (p++; p < end && is_digit(*p); p++, any = true) {
            buf_putc(&d->digits, *p);
            d->scale++;
        }
    }
    if (p < end && (*p == 'E' || *p == 'e')) {
        char *e;

        exp = strtol(p + 1, &e, 10);
        if (e == p + 1 || e != end)
            return false;
        p = end;
    }
    if (!any || p != end)
        return false;
    d->scale -= (int32_t)exp;
    dec_trim_leading(d);
    return true;
}

static bool dec_is_zero(const Dec *d)
{
    return d->digits.len == 1 && d->digits.data[0] == '0';
}

/* Adds one to the last digit, carrying. */
static void dec_increment(Dec *d)
{
    size_t i = d->digits.len;

    while (i > 0) {
        if (d->digits.data[--i] != '9') {
            d->digits.data[i]++;
            return;
        }
        d->digits.data[i] = '0';
    }
    buf_putc(&d->digits, '0');
    memmove(d->digits.data + 1, d->digits.data, d->digits.len - 1);
    d->digits.data[0] = '1';
}

/* BigDecimal.setScale(scale, HALF_UP) (half_up false: exact only, else -ERANGE). */
static int dec_set_scale(Dec *d, int32_t scale, bool half_up)
{
    if (scale >= d->scale) {
        if (!dec_is_zero(d))
            for (int32_t i = d->scale; i < scale; i++)
                buf_putc(&d->digits, '0');
        d->scale = scale;
        return 0;
    }
    size_t drop = (size_t)(d->scale - scale);
    bool up = false;

    if (drop > d->digits.len) {
        up = false;
        if (!half_up && !dec_is_zero(d))
            return -ERANGE;
        buf_clear(&d->digits);
    } else {
        const char *cut = d->digits.data + d->digits.len - drop;

        for (size_t i = 0; i < drop; i++)
            if (cut[i] != '0' && !half_up)
                return -ERANGE;
        up = half_up && cut[0] >= '5';
        d->digits.len -= drop;
    }
    d->scale = scale;
    if (d->digits.len == 0)
        buf_putc(&d->digits, '0');
    if (up)
        dec_increment(d);
    dec_trim_leading(d);
    if (dec_is_zero(d))
        d->neg = false;
    return 0;
}

/* BigDecimal.stripTrailingZeros(), then a negative scale back to 0 (VariableScaleDecimal). */
static void dec_strip(Dec *d)
{
    if (dec_is_zero(d)) {
        d->scale = 0;
        d->neg = false;
        return;
    }
    while (d->scale > 0 && d->digits.len > 1 && d->digits.data[d->digits.len - 1] == '0') {
        d->digits.len--;
        d->scale--;
    }
    if (d->scale < 0)
        dec_set_scale(d, 0, false);
}

/* BigDecimal.toString(): plain unless the scale is negative or the exponent below -6. */
static void dec_java_string(Buf *out, const Dec *d)
{
    const char *dg = d->digits.data;
    long n = (long)d->digits.len;
    long adjusted = -(long)d->scale + (n - 1);

    if (d->neg)
        buf_putc(out, '-');
    if (d->scale == 0) {
        buf_append(out, dg, (size_t)n);
    } else if (d->scale > 0 && adjusted >= -6) {
        long point = n - d->scale; /* digits before the point */

        if (point > 0) {
            buf_append(out, dg, (size_t)point);
            buf_putc(out, '.');
            buf_append(out, dg + point, (size_t)(n - point));
        } else {
            buf_puts(out, "0.");
            for (long i = point; i < 0; i++)
                buf_putc(out, '0');
            buf_append(out, dg, (size_t)n);
        }
    } else {
        buf_putc(out, dg[0]);
        if (n > 1) {
            buf_putc(out, '.');
            buf_append(out, dg + 1, (size_t)(n - 1));
        }
        buf_printf(out, "E%s%ld", adjusted > 0 ? "+" : "", adjusted);
    }
}

/* BigInteger.toByteArray() of the signed unscaled value: big-endian two's complement. */
static void dec_unscaled_bytes(const Dec *d, Buf *bytes)
{
    size_t n = 0;

    buf_clear(bytes);
    /* Magnitude, little-endian, by repeated multiply-add: fine for numeric's sizes. */
    for (size_t i = 0; i < d->digits.len; i++) {
        unsigned carry = (unsigned)(d->digits.data[i] - '0');

        for (size_t k = 0; k < n; k++) {
            unsigned v = (unsigned char)bytes->data[k] * 10u + carry;

            bytes->data[k] = (char)(v & 0xff);
            carry = v >> 8;
        }
        while (carry) {
            buf_putc(bytes, (char)(carry & 0xff));
            carry >>= 8;
            n++;
        }
    }
    if (n == 0) {
        buf_putc(bytes, 0);
        return;
    }
    if (d->neg) {
        unsigned carry = 1;

        for (size_t k = 0; k < n; k++) {
            unsigned v = (unsigned)(~(unsigned char)bytes->data[k] & 0xff) + carry;

            bytes->data[k] = (char)(v & 0xff);
            carry = v >> 8;
        }
        if (!((unsigned char)bytes->data[n - 1] & 0x80))
            buf_putc(bytes, (char)0xff), n++;
        /* Minimal: a leading 0xff is redundant when the next byte carries the sign. */
        while (n > 1 && (unsigned char)bytes->data[n - 1] == 0xff &&
               ((unsigned char)bytes->data[n - 2] & 0x80))
            n--;
    } else if ((unsigned char)bytes->data[n - 1] & 0x80) {
        buf_putc(bytes, 0), n++;
    }
    bytes->len = n;
    for (size_t i = 0; i < n / 2; i++) {
        char t = bytes->data[i];

        bytes->data[i] = bytes->data[n - 1 - i];
        bytes->data[n - 1 - i] = t;
    }
}

static void put_decimal_bytes(Buf *out, const Dec *d)
{
    Buf bytes = BUF_INIT;

    dec_unscaled_bytes(d, &bytes);
    dbz_bytes(out, DBZ_BIN_BYTES, (const unsigned char *)bytes.data, bytes.len);
    buf_release(&bytes);
}

/* ---- Java's Double.toString ------------------------------------------------ */

/*
 * The shortest decimal that reads back as d (as Java's Double.toString
 * since JDK 19 and Jackson's output): digits and the exponent of the first.
 */
static int shortest_digits(double d, char *digits, int *exp10)
{
    char tmp[40];

    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d || prec == 17) {
            int n = 0;
            char *e = strchr(tmp, 'e');

            for (char *p = tmp; p < e; p++)
                if (is_digit(*p))
                    digits[n++] = *p;
            while (n > 1 && digits[n - 1] == '0')
                n--;
            digits[n] = '\0';
            *exp10 = atoi(e + 1);
            return n;
        }
    }
    return 0; /* not reached */
}

void dbz_java_double(Buf *out, double d)
{
    char digits[24];
    int e, n;

    if (isnan(d)) {
        buf_puts(out, "NaN");
        return;
    }
    if (isinf(d)) {
        buf_puts(out, d < 0 ? "-Infinity" : "Infinity");
        return;
    }
    if (d == 0) {
        buf_puts(out, signbit(d) ? "-0.0" : "0.0");
        return;
    }
    if (d < 0) {
        buf_putc(out, '-');
        d = -d;
    }
    n = shortest_digits(d, digits, &e);
    if (d >= 1e-3 && d < 1e7) {
        if (e >= 0) {
            for (int i = 0; i <= e; i++)
                buf_putc(out, i < n ? digits[i] : '0');
            buf_putc(out, '.');
            if (n > e + 1)
                buf_append(out, digits + e + 1, (size_t)(n - e - 1));
            else
                buf_putc(out, '0');
        } else {
            buf_puts(out, "0.");
            for (int i = e + 1; i < 0; i++)
                buf_putc(out, '0');
            buf_append(out, digits, (size_t)n);
        }
        return;
    }
    buf_putc(out, digits[0]);
    buf_putc(out, '.');
    if (n > 1)
        buf_append(out, digits + 1, (size_t)(n - 1));
    else
        buf_putc(out, '0');
    buf_printf(out, "E%d", e);
}

void dbz_json_double(Buf *out, double d)
{
    if (isnan(d) || isinf(d)) {
        buf_putc(out, '"');
        dbz_java_double(out, d);
        buf_putc(out, '"');
        return;
    }
    dbz_java_double(out, d);
}

bool dbz_parse_double(const char *text, size_t len, double *out)
{
    char tmp[512];
    char *end;

    if (len == 0 || len >= sizeof(tmp))
        return false;
    memcpy(tmp, text, len);
    tmp[len] = '\0';
    if (strcmp(tmp, "NaN") == 0) {
        *out = NAN;
        return true;
    }
    if (strcmp(tmp, "Infinity") == 0 || strcmp(tmp, "-Infinity") == 0) {
        *out = tmp[0] == '-' ? -INFINITY : INFINITY;
        return true;
    }
    *out = strtod(tmp, &end);
    return end == tmp + len && (is_digit(tmp[len - 1]) || tmp[len - 1] == '.');
}

/* ---- floats ---------------------------------------------------------------- */

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

/*
 * PostgreSQL prints the shortest text that reads back as the float, like
 * Java: the text is the value Jackson would write (3 where Java writes 3.0,
 * 1e+20 for 1.0E20: the same JSON number). NaN and the infinities have no
 * JSON number; Jackson quotes them.
 */
int dbz_float(Buf *out, const DbzCol *c, const char *text, size_t len)
{
    if (json_number(text, len)) {
        buf_append(out, text, len);
        return 0;
    }
    if (is_special(text, len)) {
        debezium_json_string(out, text, len);
        return 0;
    }
    return dbz_bad_value(c, "a float", text, len);
}

/* ---- numeric ----------------------------------------------------------------- */

static int special_numeric(Buf *out, const DbzCol *c, const char *text, size_t len)
{
    bool nan = len == 3 && memcmp(text, "NaN", 3) == 0;
    bool neg = text[0] == '-';

    switch (c->op) {
    case OP_DEC_STRING: /* SpecialValueDecimal's enum names */
        buf_puts(out, nan ? "\"NAN\"" : neg ? "\"NEGATIVE_INFINITY\"" : "\"POSITIVE_INFINITY\"");
        return 0;
    case OP_DEC_DOUBLE:
        buf_puts(out, nan ? "\"NaN\"" : neg ? "\"-Infinity\"" : "\"Infinity\"");
        return 0;
    default:
        return tm_fail(-EINVAL,
                       "numeric value %.*s cannot be encoded with decimal.handling.mode=precise"
                       " (Debezium stops the same way); set target.decimal.handling.mode to string"
                       " or double",
                       (int)len, text);
    }
}

int dbz_numeric(Buf *out, const DbzCol *c, const char *text, size_t len)
{
    Dec d;
    int rc = 0;

    if (is_special(text, len))
        return special_numeric(out, c, text, len);
    if (!dec_parse(&d, text, len)) {
        dec_release(&d);
        return dbz_bad_value(c, "a numeric", text, len);
    }
    switch (c->op) {
    case OP_DEC_BYTES:
        rc = dec_set_scale(&d, c->scale, false);
        if (rc == 0)
            put_decimal_bytes(out, &d);
        break;
    case OP_DEC_VAR:
        dec_strip(&d);
        buf_printf(out, "{\"scale\":%d,\"value\":", (int)d.scale);
        put_decimal_bytes(out, &d);
        buf_putc(out, '}');
        break;
    case OP_DEC_DOUBLE: {
        char tmp[64];
        double v;

        if (len < sizeof(tmp)) {
            memcpy(tmp, text, len);
            tmp[len] = '\0';
            v = strtod(tmp, NULL);
        } else {
            Buf big = BUF_INIT;

            buf_append(&big, text, len);
            v = strtod(buf_cstr(&big), NULL);
            buf_release(&big);
        }
        dbz_json_double(out, v == 0 ? 0.0 : v); /* BigDecimal has no negative zero */
        break;
    }
    default:
        if (c->scale != INT32_MIN)
            rc = dec_set_scale(&d, c->scale, false);
        if (rc == 0) {
            buf_putc(out, '"');
            dec_java_string(out, &d);
            buf_putc(out, '"');
        }
        break;
    }
    dec_release(&d);
    if (rc < 0)
        return dbz_bad_value(c, "a numeric (more digits than its scale)", text, len);
    return 0;
}

/* ---- money ------------------------------------------------------------------- */

/*
 * Money text as lc_monetary prints it ("$1,234.11", "-$1,234.11",
 * "($1,234.11)"): Debezium reads it with PGmoney into a Java double (sign,
 * currency symbol and group separators dropped), so do the same.
 */
static bool money_to_double(const char *text, size_t len, double *out)
{
    const char *p = text, *end = text + len;
    bool neg = false, any = false, point = false;
    char tmp[64];
    size_t n = 0;

    if (p < end && (*p == '-' || *p == '(')) {
        neg = true;
        if (*p == '(' && end[-1] == ')')
            end--;
        p++;
    }
    while (p < end && !is_digit(*p)) { /* the currency symbol */
        if (*p == '-')
            neg = true;
        p++;
    }
    for (; p < end; p++) {
        if (is_digit(*p)) {
            any = true;
            if (n + 1 < sizeof(tmp))
                tmp[n++] = *p;
        } else if (*p == '.' && !point) {
            point = true;
            tmp[n++] = '.';
        } else if (*p != ',') {
            return false;
        }
    }
    if (!any)
        return false;
    tmp[n] = '\0';
    *out = strtod(tmp, NULL);
    if (neg)
        *out = -*out;
    return true;
}

int dbz_money(Buf *out, const DbzCol *c, const char *text, size_t len)
{
    double v;

    if (!money_to_double(text, len, &v))
        return dbz_bad_value(c, "a money (lc_monetary must print '.' decimals)", text, len);
    if (c->op == OP_MONEY_DOUBLE) {
        dbz_json_double(out, v);
        return 0;
    }
    if (c->op == OP_MONEY_STRING) { /* String.valueOf(double) */
        buf_putc(out, '"');
        dbz_java_double(out, v);
        buf_putc(out, '"');
        return 0;
    }
    /* BigDecimal.valueOf(double).setScale(money.fraction.digits, HALF_UP) */
    Buf java = BUF_INIT;
    Dec d;

    dbz_java_double(&java, v);
    dec_parse(&d, java.data, java.len);
    dec_set_scale(&d, c->scale, true);
    put_decimal_bytes(out, &d);
    dec_release(&d);
    buf_release(&java);
    return 0;
}
