/*
 * Parser for the schema-qualified table names users write in config. It
 * follows PostgreSQL's own identifier rules (ASCII folding of unquoted parts,
 * "" inside quotes) so a name means here what it means in psql, and it is
 * strict about everything else: a typo such as `public. orders` is reported
 * at load time instead of silently naming a table that does not exist.
 */
#include "core/sqlname.h"

#include "core/error.h"
#include "core/xmalloc.h"

#include <stdbool.h>
#include <string.h>

/* NAMEDATALEN - 1: PostgreSQL would silently truncate longer names. */
#define SQLNAME_MAX 63

/* Non-ASCII bytes are letters to PostgreSQL's scanner, so they are to us. */
static bool ident_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool ident_char(unsigned char c)
{
    return ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int bad_char(const char *input, const char *p)
{
    unsigned char c = (unsigned char)*p;

    if (c == '\0' || c == '.')
        return tm_fail(-EINVAL, "invalid table name \"%s\": empty name part", input);
    if (is_space(c))
        return tm_fail(-EINVAL,
                       "invalid table name \"%s\": whitespace is not allowed outside double quotes",
                       input);
    if (c >= '0' && c <= '9')
        return tm_fail(-EINVAL,
                       "invalid table name \"%s\": an unquoted name cannot start with a digit",
                       input);
    return tm_fail(-EINVAL, "invalid table name \"%s\": unexpected character '%c'", input, c);
}

static int too_long(const char *input)
{
    return tm_fail(-EINVAL, "invalid table name \"%s\": a name part is longer than %d bytes", input,
                   SQLNAME_MAX);
}

/* Parses one identifier at *pp, advancing past it. */
static int parse_part(const char *input, const char **pp, char **out)
{
    const char *p = *pp;
    char buf[SQLNAME_MAX + 1];
    size_t n = 0;

    if (*p == '"') {
        p++;
        for (;;) {
            char c;

            if (*p == '\0')
                return tm_fail(-EINVAL, "invalid table name \"%s\": unterminated quoted name",
                               input);
            if (*p == '"') {
                if (p[1] != '"') {
                    p++;
                    break;
                }
                c = '"';
                p += 2;
            } else {
                c = *p++;
            }
            if (n == SQLNAME_MAX)
                return too_long(input);
            buf[n++] = c;
        }
        if (n == 0)
            return tm_fail(-EINVAL, "invalid table name \"%s\": empty quoted name \"\"", input);
    } else {
        if (!ident_start((unsigned char)*p))
            return bad_char(input, p);
        while (ident_char((unsigned char)*p)) {
            char c = *p++;

            if (n == SQLNAME_MAX)
                return too_long(input);
            buf[n++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
    }
    *pp = p;
    *out = xstrndup(buf, n);
    return 0;
}

int sqlname_parse(const char *s, char **schema, char **name)
{
    char *parts[2] = {NULL, NULL};
    int nparts = 0;
    const char *p = s;
    int rc = 0;

    if (*s == '\0')
        return tm_fail(-EINVAL, "invalid table name \"\": the name is empty");
    for (;;) {
        if (nparts == 2) {
            rc = tm_fail(-EINVAL,
                         "invalid table name \"%s\": too many dots (expected table or "
                         "schema.table)",
                         s);
            goto out;
        }
        rc = parse_part(s, &p, &parts[nparts]);
        if (rc < 0)
            goto out;
        nparts++;
        if (*p == '\0')
            break;
        if (*p != '.') {
            rc = bad_char(s, p);
            goto out;
        }
        p++;
    }

    if (nparts == 1) {
        *schema = xstrdup("public");
        *name = parts[0];
    } else {
        *schema = parts[0];
        *name = parts[1];
    }
    return 0;

out:
    free(parts[0]);
    free(parts[1]);
    return rc;
}
