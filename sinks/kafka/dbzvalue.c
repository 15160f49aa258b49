/*
 * Debezium value rendering (debezium.h): one PostgreSQL text-output value of
 * a column to the JSON Debezium's converter and Kafka Connect's JsonConverter
 * write for it. The dispatch is a switch on the op dbztype.c chose for the
 * column; numbers are in dbznum.c, dates and times in dbztime.c. Here:
 * strings, bytes in the binary modes, bits, point and PostGIS structs,
 * hstore (in Java's HashMap order, which Debezium's output follows), arrays
 * and the unchanged-TOAST placeholder.
 */
#include "sinks/kafka/dbz_int.h"
#include "core/error.h"
#include "core/hex.h"
#include "core/xmalloc.h"

#include <stdlib.h>
#include <string.h>

/* ---- JSON strings and small helpers ------------------------------------ */

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

void dbz_put_i64(Buf *out, int64_t v)
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

int dbz_bad_value(const DbzCol *c, const char *what, const char *text, size_t len)
{
    return tm_fail(-EINVAL, "cannot render %s value \"%.*s\" (type oid %u)", what,
                   len > 60 ? 60 : (int)len, text, c->oid);
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ---- bytes ------------------------------------------------------------- */

static void base64(Buf *out, const unsigned char *p, size_t n, bool url)
{
    static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char safe[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *tab = url ? safe : std;
    char q[4];

    buf_reserve(out, (n + 2) / 3 * 4 + 2);
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
}

void dbz_bytes(Buf *out, DbzBinaryMode mode, const unsigned char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";

    buf_putc(out, '"');
    if (mode == DBZ_BIN_HEX) {
        buf_reserve(out, n * 2 + 1);
        for (size_t i = 0; i < n; i++) {
            buf_putc(out, hex[p[i] >> 4]);
            buf_putc(out, hex[p[i] & 15]);
        }
    } else {
        base64(out, p, n, mode == DBZ_BIN_BASE64_URL);
    }
    buf_putc(out, '"');
}

/* Decodes bytea text output (hex "\x..." or the escape format) onto bytes. */
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

static int render_bytea(Buf *out, const DbzCol *c, const char *text, size_t len)
{
    Buf bytes = BUF_INIT;
    int rc = bytea_decode(&bytes, text, len);

    if (rc == 0)
        dbz_bytes(out, c->binary, (const unsigned char *)bytes.data, bytes.len);
    buf_release(&bytes);
    return rc < 0 ? dbz_bad_value(c, "a bytea", text, len) : 0;
}

/* ---- bits -------------------------------------------------------------- */

/*
 * io.debezium.data.Bits: the rightmost bit is bit 0, bytes little-endian,
 * as few as the highest set bit needs (Debezium sizes them by content).
 */
static int render_bits(Buf *out, const DbzCol *c, const char *text, size_t len)
{
    unsigned char bytes[1024];
    Buf big = BUF_INIT;
    unsigned char *b = bytes;
    size_t nbytes = 0;

    for (size_t i = 0; i < len; i++)
        if (text[i] != '0' && text[i] != '1')
            return dbz_bad_value(c, "a bit string", text, len);
    if (len / 8 + 1 > sizeof(bytes)) {
        buf_reserve(&big, len / 8 + 1);
        b = (unsigned char *)big.data;
    }
    memset(b, 0, len / 8 + 1);
    for (size_t i = 0; i < len; i++) {
        size_t bit = len - 1 - i;

        if (text[i] == '1') {
            b[bit / 8] |= (unsigned char)(1u << (bit % 8));
            if (bit / 8 + 1 > nbytes)
                nbytes = bit / 8 + 1;
        }
    }
    dbz_bytes(out, DBZ_BIN_BYTES, b, nbytes);
    buf_release(&big);
    return 0;
}

/* ---- geometry ------------------------------------------------------------ */

/* Reads the next number of a geometric value's text, skipping ( ) [ ] < > { } , and spaces. */
static bool next_number(const char **p, const char *end, double *v)
{
    const char *s;

    while (*p < end && strchr("()[]<>{}, ", **p))
        (*p)++;
    s = *p;
    while (*p < end && !strchr("()[]<>{}, ", **p))
        (*p)++;
    return *p > s && dbz_parse_double(s, (size_t)(*p - s), v);
}

static void put_le_double(Buf *out, double d)
{
    uint64_t u;

    memcpy(&u, &d, 8);
    for (int i = 0; i < 8; i++)
        buf_putc(out, (char)(u >> (8 * i)));
}

/* io.debezium.data.geometry.Point: {"x","y","wkb" (2D WKB point),"srid":null}. */
static int render_point(Buf *out, const DbzCol *c, const char *text, size_t len)
{
    const char *p = text, *end = text + len;
    double x, y;
    Buf wkb = BUF_INIT;

    if (!next_number(&p, end, &x) || !next_number(&p, end, &y))
        return dbz_bad_value(c, "a point", text, len);
    buf_puts(out, "{\"x\":");
    dbz_json_double(out, x);
    buf_puts(out, ",\"y\":");
    dbz_json_double(out, y);
    buf_puts(out, ",\"wkb\":");
    buf_putc(&wkb, 1); /* little-endian */
    buf_append(&wkb, "\1\0\0\0", 4);
    put_le_double(&wkb, x);
    put_le_double(&wkb, y);
    dbz_bytes(out, DBZ_BIN_BYTES, (const unsigned char *)wkb.data, wkb.len);
    buf_puts(out, ",\"srid\":null}");
    buf_release(&wkb);
    return 0;
}

/*
 * A geometric value without a Debezium converter, with
 * include.unknown.datatypes: the bytes of the text the JDBC driver's PGbox,
 * PGcircle, ... print, numbers as Java doubles ("<(10.0,20.0),10.0>").
 */
static int render_geo_text(Buf *out, const DbzCol *c, const char *text, size_t len)
{
    Buf s = BUF_INIT;
    const char *p = text, *end = text + len;
    int rc = 0;

    for (; p < end;) {
        if (strchr("()[]<>{}, ", *p)) {
            if (*p != ' ')
                buf_putc(&s, *p);
            p++;
            continue;
        }
        const char *start = p;
        double v;

        while (p < end && !strchr("()[]<>{}, ", *p))
            p++;
        if (!dbz_parse_double(start, (size_t)(p - start), &v)) {
            rc = dbz_bad_value(c, "a geometric", text, len);
            break;
        }
        dbz_java_double(&s, v);
    }
    if (rc == 0)
        dbz_bytes(out, c->binary, (const unsigned char *)s.data, s.len);
    buf_release(&s);
    return rc;
}

/* PostGIS geometry/geography (hex EWKB text): {"wkb": the bytes, "srid": from the header}. */
static int render_postgis(Buf *out, const DbzCol *c, const char *text, size_t len)
{
    Buf bytes = BUF_INIT;
    int srid_set = 0;
    uint32_t type = 0, srid = 0;
    bool le;

    if (len % 2)
        return dbz_bad_value(c, "a PostGIS (hex EWKB)", text, len);
    for (size_t i = 0; i < len; i += 2) {
        int hi = hex_value(text[i]), lo = hex_value(text[i + 1]);

        if (hi < 0 || lo < 0) {
            buf_release(&bytes);
            return dbz_bad_value(c, "a PostGIS (hex EWKB)", text, len);
        }
        buf_putc(&bytes, (char)(hi * 16 + lo));
    }
    if (bytes.len >= 5) {
        const unsigned char *b = (const unsigned char *)bytes.data;

        le = b[0] == 1;
        for (int i = 0; i < 4; i++)
            type |= (uint32_t)b[1 + i] << (le ? 8 * i : 8 * (3 - i));
        if ((type & 0x20000000u) && bytes.len >= 9) {
            srid_set = 1;
            for (int i = 0; i < 4; i++)
                srid |= (uint32_t)b[5 + i] << (le ? 8 * i : 8 * (3 - i));
        }
    }
    buf_puts(out, "{\"wkb\":");
    dbz_bytes(out, DBZ_BIN_BYTES, (const unsigned char *)bytes.data, bytes.len);
    buf_puts(out, ",\"srid\":");
    if (srid_set)
        dbz_put_i64(out, (int32_t)srid);
    else
        buf_puts(out, "null");
    buf_putc(out, '}');
    buf_release(&bytes);
    return 0;
}

/* ---- hstore --------------------------------------------------------------- */

typedef struct HsPair {
    size_t kofs, klen, vofs, vlen; /* into the unescaped text */
    bool vnull;                    /* the value is SQL NULL */
    bool replaced;                 /* a later pair has the same key */
    uint32_t hash;
} HsPair;

/* Java's String.hashCode over UTF-16 code units of UTF-8 text, then HashMap's spread. */
static uint32_t java_hash(const char *s, size_t len)
{
    uint32_t h = 0;

    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp;
        int n = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;

        cp = n == 1 ? c : c & (0xff >> (n + 1));
        for (int k = 1; k < n && i + (size_t)k < len; k++)
            cp = cp << 6 | ((unsigned char)s[i + (size_t)k] & 0x3f);
        i += (size_t)n;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            h = 31 * h + (0xd800 + (cp >> 10));
            h = 31 * h + (0xdc00 + (cp & 0x3ff));
        } else {
            h = 31 * h + cp;
        }
    }
    return h ^ (h >> 16);
}

/* A quoted hstore token ("..." with \ escapes) or NULL; unescaped into tok. */
static bool hs_token(const char **p, const char *end, Buf *tok, bool *null)
{
    while (*p < end && **p == ' ')
        (*p)++;
    *null = false;
    if (*p + 4 <= end && memcmp(*p, "NULL", 4) == 0) {
        *p += 4;
        *null = true;
        return true;
    }
    if (*p >= end || **p != '"')
        return false;
    for ((*p)++; *p < end && **p != '"'; (*p)++) {
        if (**p == '\\' && *p + 1 < end)
            (*p)++;
        buf_putc(tok, **p);
    }
    if (*p >= end)
        return false;
    (*p)++;
    return true;
}

/*
 * hstore text ("k"=>"v", "k2"=>NULL) as Debezium writes it: through the JDBC
 * driver's HStoreConverter into a java.util.HashMap, whose iteration order
 * (by hash bucket, then insertion) becomes the JSON object's key order.
 */
static int render_hstore(Buf *out, const DbzCol *c, const char *text, size_t len)
{
    const char *p = text, *end = text + len;
    Buf store = BUF_INIT, obj = BUF_INIT;
    HsPair *pairs = NULL;
    size_t n = 0, cap = 0, table = 16, distinct = 0;
    bool first = true;
    int rc = 0;

    while (p < end) {
        HsPair pr = {.kofs = store.len};
        bool knull;

        if (!hs_token(&p, end, &store, &knull) || knull)
            goto bad;
        pr.klen = store.len - pr.kofs;
        while (p < end && *p == ' ')
            p++;
        if (p + 2 > end || memcmp(p, "=>", 2) != 0)
            goto bad;
        p += 2;
        pr.vofs = store.len;
        if (!hs_token(&p, end, &store, &pr.vnull))
            goto bad;
        pr.vlen = store.len - pr.vofs;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            pairs = xrealloc(pairs, cap * sizeof(*pairs));
        }
        pairs[n++] = pr;
        while (p < end && (*p == ' ' || *p == ','))
            p++;
    }
    /* A later duplicate key replaces the value in place; HashMap doubles past 3/4 full. */
    for (size_t i = 0; i < n; i++) {
        pairs[i].hash = java_hash(store.data + pairs[i].kofs, pairs[i].klen);
        for (size_t j = 0; j < i && !pairs[i].replaced; j++) {
            if (pairs[j].replaced || pairs[j].klen != pairs[i].klen ||
                memcmp(store.data + pairs[j].kofs, store.data + pairs[i].kofs, pairs[i].klen))
                continue;
            pairs[j].vofs = pairs[i].vofs;
            pairs[j].vlen = pairs[i].vlen;
            pairs[j].vnull = pairs[i].vnull;
            pairs[i].replaced = true;
        }
        if (!pairs[i].replaced && ++distinct > table * 3 / 4)
            table *= 2;
    }
    /* JsonConverter (map mode) and Jackson (json mode) both walk the map in bucket order. */
    buf_putc(&obj, '{');
    for (size_t b = 0; b < table; b++)
        for (size_t i = 0; i < n; i++) {
            if (pairs[i].replaced || (pairs[i].hash & (table - 1)) != b)
                continue;
            if (!first)
                buf_putc(&obj, ',');
            first = false;
            debezium_json_string(&obj, store.data + pairs[i].kofs, pairs[i].klen);
            buf_putc(&obj, ':');
            if (pairs[i].vnull)
                buf_puts(&obj, "null");
            else
                debezium_json_string(&obj, store.data + pairs[i].vofs, pairs[i].vlen);
        }
    buf_putc(&obj, '}');
    if (c->op == OP_HSTORE_MAP)
        buf_append(out, obj.data, obj.len);
    else
        debezium_json_string(out, obj.data, obj.len);
    goto out;
bad:
    rc = dbz_bad_value(c, "an hstore", text, len);
out:
    free(pairs);
    buf_release(&store);
    buf_release(&obj);
    return rc;
}

/* ---- arrays ---------------------------------------------------------------- */

/*
 * A one-dimensional array literal ("{1,2,NULL}", "{\"a,b\",c}") as a JSON
 * array of its elements rendered as the element type. Returns 1 when the
 * literal is not a plain one-dimensional array (nested, or with bounds).
 */
static int render_array(Buf *out, const DbzCol *c, const char *text, size_t len)
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
        else if ((rc = debezium_value(out, c->elem, item.data ? item.data : "", item.len)) < 0)
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

/* ---- dispatch -------------------------------------------------------------- */

int debezium_value(Buf *out, const DbzCol *c, const char *text, size_t len)
{
    switch (c->op) {
    case OP_SKIP:
        return 0;
    case OP_BOOL:
        if (len == 1 && (text[0] == 't' || text[0] == '1')) {
            buf_puts(out, "true");
            return 0;
        }
        if (len == 1 && (text[0] == 'f' || text[0] == '0')) {
            buf_puts(out, "false");
            return 0;
        }
        return dbz_bad_value(c, "a boolean", text, len);
    case OP_INT: {
        size_t i = len > 0 && text[0] == '-' ? 1 : 0;

        if (i == len)
            return dbz_bad_value(c, "an integer", text, len);
        for (; i < len; i++)
            if (!is_digit(text[i]))
                return dbz_bad_value(c, "an integer", text, len);
        buf_append(out, text, len);
        return 0;
    }
    case OP_FLOAT:
        return dbz_float(out, c, text, len);
    case OP_DEC_BYTES:
    case OP_DEC_VAR:
    case OP_DEC_DOUBLE:
    case OP_DEC_STRING:
        return dbz_numeric(out, c, text, len);
    case OP_MONEY_BYTES:
    case OP_MONEY_DOUBLE:
    case OP_MONEY_STRING:
        return dbz_money(out, c, text, len);
    case OP_STRING:
        debezium_json_string(out, text, len);
        return 0;
    case OP_BYTEA:
        return render_bytea(out, c, text, len);
    case OP_UNKNOWN:
        dbz_bytes(out, c->binary, (const unsigned char *)text, len);
        return 0;
    case OP_GEO_TEXT:
        return render_geo_text(out, c, text, len);
    case OP_DATE:
        return dbz_date(out, c, text, len);
    case OP_TIME_MS:
    case OP_TIME_US:
        return dbz_time(out, c, text, len);
    case OP_TIMETZ:
        return dbz_timetz(out, c, text, len);
    case OP_TS_MS:
    case OP_TS_US:
        return dbz_timestamp(out, c, text, len);
    case OP_TSTZ:
        return dbz_timestamptz(out, c, text, len);
    case OP_INTERVAL_US:
    case OP_INTERVAL_ISO:
        return dbz_interval(out, c, text, len);
    case OP_BITS:
        return render_bits(out, c, text, len);
    case OP_POINT:
        return render_point(out, c, text, len);
    case OP_HSTORE_JSON:
    case OP_HSTORE_MAP:
        return render_hstore(out, c, text, len);
    case OP_POSTGIS:
        return render_postgis(out, c, text, len);
    case OP_ARRAY: {
        size_t mark = out->len;
        int rc = render_array(out, c, text, len);

        if (rc <= 0)
            return rc == 0 ? 0 : tm_fail_ctx(rc, "in an array");
        /* Nested or with bounds: Debezium has no rendering for it; keep the literal. */
        out->len = mark;
        debezium_json_string(out, text, len);
        return 0;
    }
    }
    return tm_fail(-EINVAL, "no rendering for type oid %u", c->oid);
}

/*
 * Debezium's placeholder for an unchanged TOASTed value, in the column's
 * type: the string, its bytes for binary columns, [string] for text arrays,
 * and the list of its byte values for integer arrays (UnchangedToastedPlaceholder).
 */
void debezium_unavailable(Buf *out, const DbzCol *c)
{
    static const char ph[] = DEBEZIUM_UNAVAILABLE;

    switch (c->op) {
    case OP_BYTEA:
    case OP_UNKNOWN:
    case OP_GEO_TEXT:
        dbz_bytes(out, c->binary, (const unsigned char *)ph, sizeof(ph) - 1);
        return;
    case OP_ARRAY:
        if (c->elem->op == OP_INT) {
            buf_putc(out, '[');
            for (size_t i = 0; i < sizeof(ph) - 1; i++) {
                if (i)
                    buf_putc(out, ',');
                dbz_put_i64(out, ph[i]);
            }
            buf_putc(out, ']');
            return;
        }
        buf_puts(out, "[\"" DEBEZIUM_UNAVAILABLE "\"]");
        return;
    default:
        buf_puts(out, "\"" DEBEZIUM_UNAVAILABLE "\"");
        return;
    }
}
