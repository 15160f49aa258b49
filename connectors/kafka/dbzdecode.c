/*
 * Debezium field values back to PostgreSQL text (dbzdecode.h): the dispatch
 * on the column's rendering op, and the numbers, strings, bytes, bits,
 * geometry, hstore and arrays; dates and times are in dbzdecode_time.c.
 * Every branch inverts one renderer of sinks/kafka (dbzvalue.c, dbznum.c),
 * so a value makes the trip source -> Kafka -> target unchanged wherever the
 * encoding keeps it (dbzdecode_lossy() names the exceptions).
 */
#include "connectors/kafka/dbzdecode.h"
#include "core/error.h"
#include "core/hex.h"
#include "core/xmalloc.h"
#include "sinks/kafka/dbz_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { OID_BOOL = 16, OID_BIT = 1560, OID_VARBIT = 1562 };

int dbzdecode_bad(const DbzCol *c, const char *what, const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    int rc = tm_fail(-EINVAL, "cannot read %s from %.80s (type oid %u)", what, s ? s : "?", c->oid);

    free(s);
    return rc;
}

/* ---- numbers -------------------------------------------------------------- */

/* The shortest text that reads back as d (PostgreSQL's float output does the same). */
static void put_double(Buf *out, double d)
{
    char tmp[40];
    int lo = 1, hi = 17;

    /* a precision that reads back keeps doing so above: the least one, by bisection */
    while (lo < hi) {
        int mid = (lo + hi) / 2;

        snprintf(tmp, sizeof(tmp), "%.*g", mid, d);
        if (strtod(tmp, NULL) == d)
            hi = mid;
        else
            lo = mid + 1;
    }
    /* PostgreSQL's float8 output: plain for decimal exponents -4 to 14, else 1.5e-07 */
    snprintf(tmp, sizeof(tmp), "%.*e", lo - 1, d);
    int e = atoi(strchr(tmp, 'e') + 1);

    if (e >= -4 && e < 15)
        snprintf(tmp, sizeof(tmp), "%.*f", lo - 1 - e > 0 ? lo - 1 - e : 0, d);
    buf_puts(out, tmp);
}

/* A JSON number as text; the strings JsonConverter writes for NaN and the infinities. */
static int put_number(const DbzCol *c, const json_t *v, Buf *out, const char *what)
{
    if (json_is_integer(v)) {
        buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 0;
    }
    if (json_is_real(v)) {
        put_double(out, json_real_value(v));
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);

        if (strcmp(s, "NaN") == 0 || strcmp(s, "Infinity") == 0 || strcmp(s, "-Infinity") == 0) {
            buf_puts(out, s);
            return 0;
        }
    }
    return dbzdecode_bad(c, what, v);
}

/* Standard or URL-safe base64, padded or not. */
static bool base64_decode(const char *s, size_t len, Buf *out)
{
    uint32_t acc = 0;
    int bits = 0;

    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        int v;

        if (ch == '=') {
            for (; i < len; i++)
                if (s[i] != '=')
                    return false;
            break;
        }
        if (ch >= 'A' && ch <= 'Z')
            v = ch - 'A';
        else if (ch >= 'a' && ch <= 'z')
            v = ch - 'a' + 26;
        else if (ch >= '0' && ch <= '9')
            v = ch - '0' + 52;
        else if (ch == '+' || ch == '-')
            v = 62;
        else if (ch == '/' || ch == '_')
            v = 63;
        else
            return false;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf_putc(out, (char)((acc >> bits) & 0xff));
        }
    }
    return true;
}

/* The bytes of a value in binary.handling.mode (bytes and base64 modes are base64 text). */
static int binary_bytes(const DbzCol *c, DbzBinaryMode mode, const json_t *v, Buf *bytes)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);

    if (!s)
        return dbzdecode_bad(c, "binary data", v);
    if (mode == DBZ_BIN_HEX) {
        if (len % 2)
            return dbzdecode_bad(c, "hex data", v);
        for (size_t i = 0; i < len; i += 2) {
            int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);

            if (hi < 0 || lo < 0)
                return dbzdecode_bad(c, "hex data", v);
            buf_putc(bytes, (char)(hi * 16 + lo));
        }
        return 0;
    }
    return base64_decode(s, len, bytes) ? 0 : dbzdecode_bad(c, "base64 data", v);
}

/*
 * A Connect Decimal's bytes (big-endian two's complement of the unscaled
 * value) at scale, as decimal text: "-12.340", "0.05", "1200" (scale -2).
 */
static void put_unscaled(Buf *out, const unsigned char *b, size_t n, int32_t scale)
{
    bool neg = n > 0 && (b[0] & 0x80);
    uint32_t *limbs = xcalloc(n + 2, sizeof(uint32_t)); /* base 1e9, little end first */
    size_t nl = 1;
    int carry_in = neg ? 1 : 0;
    Buf digits = BUF_INIT;

    /* magnitude: for a negative value, invert and add one (from the low end) */
    unsigned char *mag = xmalloc(n + 1);

    for (size_t i = n; i-- > 0;) {
        unsigned v = neg ? (unsigned)(unsigned char)~b[i] + (unsigned)carry_in : b[i];

        carry_in = neg && v > 0xff;
        mag[i] = (unsigned char)v;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t carry = mag[i];

        for (size_t k = 0; k < nl; k++) {
            uint64_t x = (uint64_t)limbs[k] * 256 + carry;

            limbs[k] = (uint32_t)(x % 1000000000u);
            carry = x / 1000000000u;
        }
        if (carry)
            limbs[nl++] = (uint32_t)carry;
    }
    buf_printf(&digits, "%u", limbs[nl - 1]);
    for (size_t k = nl - 1; k-- > 0;)
        buf_printf(&digits, "%09u", limbs[k]);
    free(limbs);
    free(mag);

    bool zero = digits.len == 1 && digits.data[0] == '0';

    if (neg && !zero)
        buf_putc(out, '-');
    if (scale <= 0) {
        buf_append(out, digits.data, digits.len);
        for (int32_t i = 0; i < -scale && !zero; i++)
            buf_putc(out, '0');
    } else {
        size_t s = (size_t)scale;

        if (digits.len <= s) {
            buf_puts(out, "0.");
            for (size_t i = digits.len; i < s; i++)
                buf_putc(out, '0');
            buf_append(out, digits.data, digits.len);
        } else {
            buf_append(out, digits.data, digits.len - s);
            buf_putc(out, '.');
            buf_append(out, digits.data + digits.len - s, s);
        }
    }
    buf_release(&digits);
}

static int decimal_bytes(const DbzCol *c, const json_t *v, int32_t scale, Buf *out)
{
    Buf bytes = BUF_INIT;
    int rc = binary_bytes(c, DBZ_BIN_BYTES, v, &bytes);

    if (rc == 0 && bytes.len == 0)
        rc = dbzdecode_bad(c, "a Decimal", v);
    if (rc == 0)
        put_unscaled(out, (const unsigned char *)bytes.data, bytes.len, scale);
    buf_release(&bytes);
    return rc;
}

/*
 * BigDecimal.toString() ("-1.20E-8", "1E+3", "12.50") as the plain text
 * numeric prints for the same digits and scale ("-0.0000000120", "1000").
 */
static bool plain_decimal(const char *s, Buf *out)
{
    Buf digits = BUF_INIT;
    const char *p = s;
    long scale = 0, exp = 0;
    bool neg = false, point = false, any = false;

    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    for (; *p && *p != 'E' && *p != 'e'; p++) {
        if (*p == '.' && !point) {
            point = true;
        } else if (*p >= '0' && *p <= '9') {
            if (digits.len || *p != '0')
                buf_putc(&digits, *p);
            scale += point;
            any = true;
        } else {
            buf_release(&digits);
            return false;
        }
    }
    if (*p) {
        char *end;

        exp = strtol(p + 1, &end, 10);
        if (end == p + 1 || *end || exp > 100000 || exp < -100000) {
            buf_release(&digits);
            return false;
        }
    }
    if (!any) {
        buf_release(&digits);
        return false;
    }
    scale -= exp;
    if (digits.len == 0)
        buf_putc(&digits, '0');
    if (neg && !(digits.len == 1 && digits.data[0] == '0'))
        buf_putc(out, '-');
    if (scale <= 0) {
        buf_append(out, digits.data, digits.len);
        for (long i = 0; i < -scale && !(digits.len == 1 && digits.data[0] == '0'); i++)
            buf_putc(out, '0');
    } else if (digits.len <= (size_t)scale) {
        buf_puts(out, "0.");
        for (size_t i = digits.len; i < (size_t)scale; i++)
            buf_putc(out, '0');
        buf_append(out, digits.data, digits.len);
    } else {
        buf_append(out, digits.data, digits.len - (size_t)scale);
        buf_putc(out, '.');
        buf_append(out, digits.data + digits.len - (size_t)scale, (size_t)scale);
    }
    buf_release(&digits);
    return true;
}

/* decimal.handling.mode=string: BigDecimal.toString(), and its names for the specials. */
static int decimal_string(const DbzCol *c, const json_t *v, Buf *out)
{
    const char *s = json_string_value(v);

    if (!s)
        return dbzdecode_bad(c, "a decimal string", v);
    if (strcmp(s, "NAN") == 0)
        buf_puts(out, "NaN");
    else if (strcmp(s, "POSITIVE_INFINITY") == 0)
        buf_puts(out, "Infinity");
    else if (strcmp(s, "NEGATIVE_INFINITY") == 0)
        buf_puts(out, "-Infinity");
    else if (!plain_decimal(s, out))
        return dbzdecode_bad(c, "a decimal string", v);
    return 0;
}

static int decode_numeric(const DbzCol *c, const json_t *v, Buf *out)
{
    switch (c->op) {
    case OP_DEC_BYTES:
        return decimal_bytes(c, v, c->scale, out);
    case OP_MONEY_BYTES:
        return decimal_bytes(c, v, c->scale, out);
    case OP_DEC_VAR: {
        const json_t *sc = json_object_get(v, "scale"), *val = json_object_get(v, "value");

        if (!json_is_integer(sc) || !json_is_string(val))
            return dbzdecode_bad(c, "a VariableScaleDecimal", v);
        return decimal_bytes(c, val, (int32_t)json_integer_value(sc), out);
    }
    case OP_DEC_STRING:
    case OP_MONEY_STRING:
        return decimal_string(c, v, out);
    default: /* OP_DEC_DOUBLE, OP_MONEY_DOUBLE */
        return put_number(c, v, out, "a decimal as a double");
    }
}

/* ---- bytes, bits, geometry ------------------------------------------------ */

static int decode_bytea(const DbzCol *c, const json_t *v, Buf *out)
{
    static const char hex[] = "0123456789abcdef";
    Buf bytes = BUF_INIT;
    int rc = binary_bytes(c, c->binary, v, &bytes);

    if (rc == 0) {
        buf_puts(out, "\\x");
        for (size_t i = 0; i < bytes.len; i++) {
            buf_putc(out, hex[(unsigned char)bytes.data[i] >> 4]);
            buf_putc(out, hex[(unsigned char)bytes.data[i] & 15]);
        }
    }
    buf_release(&bytes);
    return rc;
}

/* include.unknown.datatypes: the bytes of the value's text. */
static int decode_text_bytes(const DbzCol *c, const json_t *v, Buf *out)
{
    Buf bytes = BUF_INIT;
    int rc = binary_bytes(c, c->binary, v, &bytes);

    if (rc == 0 && memchr(bytes.data ? bytes.data : "", '\0', bytes.len))
        rc = dbzdecode_bad(c, "text (it holds a NUL byte)", v);
    if (rc == 0)
        buf_append(out, bytes.data ? bytes.data : "", bytes.len);
    buf_release(&bytes);
    return rc;
}

/*
 * io.debezium.data.Bits: bit 0 is the rightmost, bytes little-endian. A
 * bit(n) has n bits; a varbit's length is not sent: its highest set bit
 * decides.
 */
static int decode_bits(const DbzCol *c, const json_t *v, Buf *out)
{
    Buf bytes = BUF_INIT;
    int rc = binary_bytes(c, DBZ_BIN_BYTES, v, &bytes);
    size_t nbits;

    if (rc < 0)
        return rc;
    if (c->oid == OID_BIT && c->bits != INT32_MAX) {
        nbits = (size_t)c->bits;
        if (bytes.len > (nbits + 7) / 8)
            rc = dbzdecode_bad(c, "a bit string of its length", v);
    } else {
        nbits = 0;
        for (size_t i = 0; i < bytes.len * 8; i++)
            if ((unsigned char)bytes.data[i / 8] & (1u << (i % 8)))
                nbits = i + 1;
    }
    for (size_t i = 0; rc == 0 && i < nbits; i++) {
        size_t bit = nbits - 1 - i;
        bool set = bit / 8 < bytes.len && ((unsigned char)bytes.data[bit / 8] & (1u << (bit % 8)));

        buf_putc(out, set ? '1' : '0');
    }
    buf_release(&bytes);
    return rc;
}

static int decode_point(const DbzCol *c, const json_t *v, Buf *out)
{
    const json_t *x = json_object_get(v, "x"), *y = json_object_get(v, "y");

    if (!json_is_number(x) || !json_is_number(y))
        return dbzdecode_bad(c, "a point", v);
    buf_putc(out, '(');
    put_double(out, json_number_value(x));
    buf_putc(out, ',');
    put_double(out, json_number_value(y));
    buf_putc(out, ')');
    return 0;
}

/* PostGIS: the EWKB as hex, which geometry and geography read. */
static int decode_postgis(const DbzCol *c, const json_t *v, Buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    const json_t *wkb = json_object_get(v, "wkb");
    Buf bytes = BUF_INIT;
    int rc = wkb ? binary_bytes(c, DBZ_BIN_BYTES, wkb, &bytes) : dbzdecode_bad(c, "a geometry", v);

    for (size_t i = 0; rc == 0 && i < bytes.len; i++) {
        buf_putc(out, hex[(unsigned char)bytes.data[i] >> 4]);
        buf_putc(out, hex[(unsigned char)bytes.data[i] & 15]);
    }
    buf_release(&bytes);
    return rc;
}

/* ---- hstore and arrays ------------------------------------------------------- */

/* s as an array element, quoted where array_out would quote it. */
static void put_element(Buf *out, const char *s, size_t len)
{
    bool quote = len == 0 || (len == 4 && strncasecmp(s, "NULL", 4) == 0);

    for (size_t i = 0; i < len && !quote; i++)
        quote = strchr("{}\",\\ \t\n\r\v\f", s[i]) != NULL && s[i] != '\0';
    if (!quote) {
        buf_append(out, s, len);
        return;
    }
    buf_putc(out, '"');
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            buf_putc(out, '\\');
        buf_putc(out, s[i]);
    }
    buf_putc(out, '"');
}

/* s as a double-quoted element of an hstore literal. */
static void put_quoted(Buf *out, const char *s, size_t len)
{
    buf_putc(out, '"');
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            buf_putc(out, '\\');
        buf_putc(out, s[i]);
    }
    buf_putc(out, '"');
}

static int decode_hstore(const DbzCol *c, const json_t *v, Buf *out)
{
    json_t *owned = NULL;
    const json_t *obj = v;
    const char *key;
    json_t *val;
    bool first = true;
    int rc = 0;

    if (c->op == OP_HSTORE_JSON) {
        if (!json_is_string(v))
            return dbzdecode_bad(c, "an hstore (JSON text)", v);
        owned = json_loadb(json_string_value(v), json_string_length(v), 0, NULL);
        obj = owned;
    }
    if (!json_is_object(obj)) {
        json_decref(owned);
        return dbzdecode_bad(c, "an hstore", v);
    }
    json_object_foreach((json_t *)obj, key, val)
    {
        if (!first)
            buf_puts(out, ", ");
        first = false;
        put_quoted(out, key, strlen(key));
        buf_puts(out, "=>");
        if (json_is_null(val)) {
            buf_puts(out, "NULL");
        } else if (json_is_string(val)) {
            put_quoted(out, json_string_value(val), json_string_length(val));
        } else {
            rc = dbzdecode_bad(c, "an hstore value", val);
            break;
        }
    }
    json_decref(owned);
    return rc;
}

/* A JSON array of element encodings as an array literal; a string is a literal already. */
static int decode_array(const DbzCol *c, const json_t *v, Buf *out)
{
    Buf item = BUF_INIT;
    size_t i;
    json_t *el;
    int rc = 0;

    if (json_is_string(v)) { /* more dimensions or explicit bounds: Debezium sent the literal */
        buf_append(out, json_string_value(v), json_string_length(v));
        return 0;
    }
    if (!json_is_array(v))
        return dbzdecode_bad(c, "an array", v);
    buf_putc(out, '{');
    json_array_foreach(v, i, el)
    {
        if (i)
            buf_putc(out, ',');
        if (json_is_null(el)) {
            buf_puts(out, "NULL");
            continue;
        }
        buf_clear(&item);
        rc = dbzdecode_value(c->elem, el, &item);
        if (rc < 0)
            break;
        put_element(out, item.data ? item.data : "", item.len);
    }
    buf_putc(out, '}');
    buf_release(&item);
    return rc < 0 ? tm_fail_ctx(rc, "in an array") : 0;
}

/* ---- dispatch ------------------------------------------------------------------ */

static int decode_string(const DbzCol *c, const json_t *v, Buf *out)
{
    if (!json_is_string(v))
        return dbzdecode_bad(c, "a string", v);
    buf_append(out, json_string_value(v), json_string_length(v));
    return 0;
}

int dbzdecode_value(const DbzCol *c, const json_t *v, Buf *out)
{
    switch (c->op) {
    case OP_SKIP:
        return tm_fail(-EINVAL, "type oid %u has no Debezium converter: it is never sent", c->oid);
    case OP_BOOL:
        if (!json_is_boolean(v))
            return dbzdecode_bad(c, "a boolean", v);
        if (c->oid == OID_BIT || c->oid == OID_VARBIT)
            buf_putc(out, json_is_true(v) ? '1' : '0');
        else
            buf_putc(out, json_is_true(v) ? 't' : 'f');
        return 0;
    case OP_INT:
        if (!json_is_integer(v))
            return dbzdecode_bad(c, "an integer", v);
        buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 0;
    case OP_FLOAT:
        return put_number(c, v, out, "a float");
    case OP_DEC_BYTES:
    case OP_DEC_VAR:
    case OP_DEC_DOUBLE:
    case OP_DEC_STRING:
    case OP_MONEY_BYTES:
    case OP_MONEY_DOUBLE:
    case OP_MONEY_STRING:
        return decode_numeric(c, v, out);
    case OP_STRING:
        return decode_string(c, v, out);
    case OP_BYTEA:
        return decode_bytea(c, v, out);
    case OP_UNKNOWN:
    case OP_GEO_TEXT:
        return decode_text_bytes(c, v, out);
    case OP_DATE:
        return dbzdecode_date(c, v, out);
    case OP_TIME_MS:
    case OP_TIME_US:
        return dbzdecode_time(c, v, out);
    case OP_TIMETZ:
        return dbzdecode_timetz(c, v, out);
    case OP_TS_MS:
    case OP_TS_US:
        return dbzdecode_timestamp(c, v, out);
    case OP_TSTZ:
        return dbzdecode_timestamptz(c, v, out);
    case OP_INTERVAL_US:
    case OP_INTERVAL_ISO:
        return dbzdecode_interval(c, v, out);
    case OP_BITS:
        return decode_bits(c, v, out);
    case OP_POINT:
        return decode_point(c, v, out);
    case OP_HSTORE_JSON:
    case OP_HSTORE_MAP:
        return decode_hstore(c, v, out);
    case OP_POSTGIS:
        return decode_postgis(c, v, out);
    case OP_ARRAY:
        return decode_array(c, v, out);
    }
    return tm_fail(-EINVAL, "no decoding for type oid %u", c->oid);
}

bool dbzdecode_unavailable(const DbzCol *c, const json_t *v)
{
    Buf ph = BUF_INIT;
    char *s;
    bool same;

    if (!json_is_string(v) && !json_is_array(v))
        return false;
    if (json_is_string(v) && json_string_length(v) > 64)
        return false;
    debezium_unavailable(&ph, c);
    s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    same = s && strcmp(s, buf_cstr(&ph)) == 0;
    free(s);
    buf_release(&ph);
    return same;
}

bool dbzdecode_skipped(const DbzCol *c)
{
    return c->op == OP_SKIP;
}

const char *dbzdecode_lossy(const DbzCol *c, int32_t typmod)
{
    switch (c->op) {
    case OP_INTERVAL_US:
        return "interval.handling.mode numeric sends months and days as an average number of"
               " microseconds (Debezium's MicroDuration), which reads back as a plain duration;"
               " set interval.handling.mode: string on the producing pipeline and here";
    case OP_TIMETZ:
        return "Debezium sends a timetz as the time at UTC: the offset it had is not kept";
    case OP_DEC_VAR:
        return "a numeric without a typmod comes with trailing zeros dropped "
               "(VariableScaleDecimal):"
               " equal as a number, not as text";
    case OP_DEC_DOUBLE:
    case OP_MONEY_DOUBLE:
        return "decimal.handling.mode double rounds values to a double's precision";
    case OP_BITS:
        return c->oid == OID_VARBIT ? "Debezium does not send a varbit's length: leading zeros are"
                                      " lost"
                                    : NULL;
    case OP_TIME_MS:
    case OP_TS_MS:
        return typmod < 0 || typmod > 3 ? "time.precision.mode connect keeps milliseconds only"
                                        : NULL;
    case OP_ARRAY:
        return dbzdecode_lossy(c->elem, typmod);
    default:
        return NULL;
    }
}
