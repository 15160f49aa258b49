/*
 * Pure text helpers of the profiler: format masks and the date layouts they
 * spell, turning arbitrary bytes (a SQL_ASCII database holds any) into valid
 * UTF-8 for the report, text[] literals for passing lists as one parameter,
 * reading the allowed values out of a simple CHECK constraint, and the name
 * heuristics the rules use. Nothing here touches the network.
 */
#include "core/buf.h"
#include "core/xmalloc.h"
#include "migration/profile_int.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

const char PROFILE_MASK_FROM[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const char PROFILE_MASK_TO[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaAAAAAAAAAAAAAAAAAAAAAAAAAA9999999999";

static char mask_char(unsigned char c)
{
    if (c >= 'a' && c <= 'z')
        return 'a';
    if (c >= 'A' && c <= 'Z')
        return 'A';
    if (c >= '0' && c <= '9')
        return '9';
    return (char)c;
}

char *profile_mask(const char *s)
{
    size_t n = strlen(s);
    char *out = xmalloc(n + 1);

    for (size_t i = 0; i < n; i++)
        out[i] = mask_char((unsigned char)s[i]);
    out[n] = '\0';
    return out;
}

static bool class_letter(char c)
{
    return c == 'a' || c == 'A' || c == '9';
}

char *profile_mask_collapse(const char *mask)
{
    size_t n = strlen(mask), o = 0;
    char *out = xmalloc(n + 1);

    for (size_t i = 0; i < n; i++) {
        if (o > 0 && class_letter(mask[i]) && out[o - 1] == mask[i])
            continue;
        out[o++] = mask[i];
    }
    out[o] = '\0';
    return out;
}

/* A mask as runs: 'D' digits, 'L' letters (either case), or one other character. */
typedef struct Tok {
    char kind; /* 'D', 'L', or the character itself */
    size_t len;
} Tok;

static size_t tokenize(const char *m, Tok *toks, size_t max)
{
    size_t n = 0;

    while (*m && n < max) {
        char kind = *m == '9' ? 'D' : (*m == 'a' || *m == 'A') ? 'L' : *m;
        size_t len = 1;

        if (kind == 'D' || kind == 'L') {
            while (m[len] && (kind == 'D' ? m[len] == '9' : (m[len] == 'a' || m[len] == 'A')))
                len++;
        }
        toks[n].kind = kind;
        toks[n].len = len;
        n++;
        m += len;
    }
    return *m ? max + 1 : n; /* too many tokens: not a date */
}

static bool is_d(const Tok *t, size_t lo, size_t hi)
{
    return t->kind == 'D' && t->len >= lo && t->len <= hi;
}

static bool is_sep(const Tok *t)
{
    return t->kind == '-' || t->kind == '/' || t->kind == '.';
}

/* A time part from toks[i]: (' '|'T') hh ':' mm [':' ss ['.' f]] [Z|+hh[:mm]]. Returns tokens used
 * or 0. */
static size_t time_part(const Tok *t, size_t i, size_t n, char *name, size_t namesz)
{
    size_t j = i;
    char lead;

    if (j >= n || (t[j].kind != ' ' && !(t[j].kind == 'L' && t[j].len == 1)))
        return 0;
    lead = t[j].kind == ' ' ? ' ' : 'T';
    j++;
    if (j + 2 >= n + 0 || !is_d(&t[j], 1, 2) || t[j + 1].kind != ':' || !is_d(&t[j + 2], 2, 2))
        return 0;
    j += 3;
    snprintf(name, namesz, "%chh:mm", lead);
    if (j + 1 < n && t[j].kind == ':' && is_d(&t[j + 1], 2, 2)) {
        j += 2;
        snprintf(name, namesz, "%chh:mm:ss", lead);
        if (j + 1 < n && t[j].kind == '.' && is_d(&t[j + 1], 1, 9))
            j += 2;
    }
    if (j < n && t[j].kind == 'L' && t[j].len == 1) {
        j++; /* Z */
    } else if (j + 1 < n && (t[j].kind == '+' || t[j].kind == '-') && is_d(&t[j + 1], 2, 4)) {
        j += 2;
        if (j + 1 < n && t[j].kind == ':' && is_d(&t[j + 1], 2, 2))
            j += 2;
    }
    return j - i;
}

const char *profile_date_family(const char *mask, char *out, size_t outsz)
{
    Tok t[24];
    size_t n = tokenize(mask, t, 24);
    char date[32], time[16] = "";
    size_t used = 0;

    if (n > 24 || n < 3)
        return NULL;
    if (n >= 5 && is_d(&t[0], 4, 4) && is_sep(&t[1]) && is_d(&t[2], 1, 2) &&
        t[3].kind == t[1].kind && is_d(&t[4], 1, 2)) {
        snprintf(date, sizeof(date), "YYYY%cMM%cDD", t[1].kind, t[1].kind);
        used = 5;
    } else if (n >= 5 && is_d(&t[0], 1, 2) && is_sep(&t[1]) && is_d(&t[2], 1, 2) &&
               t[3].kind == t[1].kind && (is_d(&t[4], 4, 4) || is_d(&t[4], 2, 2))) {
        snprintf(date, sizeof(date), "NN%cNN%c%s", t[1].kind, t[1].kind,
                 t[4].len == 4 ? "YYYY" : "YY");
        used = 5;
    } else if (n >= 5 && is_d(&t[0], 1, 2) && (t[1].kind == ' ' || t[1].kind == '-') &&
               t[2].kind == 'L' && t[2].len >= 3 && t[2].len <= 9 && t[3].kind == t[1].kind &&
               (is_d(&t[4], 4, 4) || is_d(&t[4], 2, 2))) {
        snprintf(date, sizeof(date), "DD%cMon%c%s", t[1].kind, t[1].kind,
                 t[4].len == 4 ? "YYYY" : "YY");
        used = 5;
    } else if (t[0].kind == 'L' && t[0].len >= 3 && t[0].len <= 9) {
        size_t j = 1;
        bool comma = false;

        if (j < n && t[j].kind == '.')
            j++;
        if (j + 1 < n && t[j].kind == ' ' && is_d(&t[j + 1], 1, 2)) {
            j += 2;
            if (j < n && t[j].kind == 'L' && t[j].len == 2) /* 5th, 1st */
                j++;
            if (j < n && t[j].kind == ',') {
                comma = true;
                j++;
            }
            if (j + 1 < n && t[j].kind == ' ' && is_d(&t[j + 1], 4, 4)) {
                snprintf(date, sizeof(date), "Mon D%s YYYY", comma ? "," : "");
                used = j + 2;
            }
        }
    }
    if (!used)
        return NULL;
    if (used < n) {
        size_t k = time_part(t, used, n, time, sizeof(time));

        if (!k || used + k != n)
            return NULL;
    }
    snprintf(out, outsz, "%s%s", date, time);
    return out;
}

char *profile_format_family(const char *mask)
{
    char name[64];
    size_t digits = 0, total = 0;

    if (profile_date_family(mask, name, sizeof(name)))
        return xstrdup(name);
    for (const char *p = mask; *p; p++) {
        if (*p == ' ')
            continue;
        total++;
        if (*p == '9')
            digits++;
    }
    if (digits == 0 || digits * 2 < total)
        return NULL;
    return profile_mask_collapse(mask);
}

/* Length of the valid UTF-8 sequence at s (at most len bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t need;
    unsigned lo = 0x80, hi = 0xbf;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        if (c == 0xf0)
            lo = 0x90;
        if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (len < need + 1)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i <= need; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return need + 1;
}

static char *sanitize(const char *s, size_t len, const char *esc)
{
    Buf b = BUF_INIT;
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    buf_reserve(&b, len + 1);
    while (i < len) {
        size_t k = utf8_seq(u + i, len - i);

        if (k) {
            buf_append(&b, u + i, k);
            i += k;
        } else {
            buf_printf(&b, "%sx%02x", esc, u[i]);
            i++;
        }
    }
    buf_cstr(&b);
    return b.data;
}

char *profile_text_sanitize(const char *s, size_t len)
{
    return sanitize(s, len, "\\");
}

char *profile_json_sanitize(const char *s, size_t len)
{
    return sanitize(s, len, "\\\\");
}

char *profile_sql_text_array(const char *const *vals, size_t n)
{
    Buf b = BUF_INIT;

    buf_putc(&b, '{');
    for (size_t i = 0; i < n; i++)
        buf_put_array_elem(&b, vals[i]);
    buf_putc(&b, '}');
    buf_cstr(&b);
    return b.data;
}

/* One list item at *p: 'quoted' (with '') or a bare token, then an optional ::type. */
static char *check_item(const char **pp)
{
    const char *p = *pp;
    Buf b = BUF_INIT;

    while (*p == ' ' || *p == '(')
        p++;
    if (*p == '\'') {
        for (p++; *p; p++) {
            if (*p == '\'' && p[1] == '\'') {
                buf_putc(&b, '\'');
                p++;
            } else if (*p == '\'') {
                break;
            } else {
                buf_putc(&b, *p);
            }
        }
        if (*p != '\'') {
            buf_release(&b);
            return NULL;
        }
        p++;
    } else {
        while (*p && *p != ',' && *p != ']' && *p != ':' && *p != ')' && *p != ' ')
            buf_putc(&b, *p++);
        if (b.len == 0) {
            buf_release(&b);
            return NULL;
        }
    }
    /* ::type, possibly "character varying" or numeric(10,2): skip to the next item */
    for (int depth = 0; *p && (depth > 0 || (*p != ',' && *p != ']')); p++) {
        if (*p == '(')
            depth++;
        else if (*p == ')' && depth > 0)
            depth--;
    }
    *pp = p;
    buf_cstr(&b);
    return b.data;
}

static bool has_word_outside_quotes(const char *s, const char *word)
{
    bool q = false;
    size_t wl = strlen(word);

    for (; *s; s++) {
        if (*s == '\'')
            q = !q;
        else if (!q && strncmp(s, word, wl) == 0)
            return true;
    }
    return false;
}

json_t *profile_parse_check_in(const char *def)
{
    json_t *arr;
    const char *p;

    if (!def || strncmp(def, "CHECK", 5) != 0)
        return NULL;
    if (has_word_outside_quotes(def, " AND ") || has_word_outside_quotes(def, " OR ") ||
        has_word_outside_quotes(def, "NOT "))
        return NULL;
    arr = json_array();
    p = strstr(def, "= ANY (");
    if (p) {
        p += strlen("= ANY (");
        while (*p == '(')
            p++; /* varchar lists are cast: ((ARRAY[...])::text[]) */
        if (strncmp(p, "ARRAY[", 6) != 0)
            goto bad;
        p += 6;
        for (;;) {
            char *v = check_item(&p);

            if (!v)
                goto bad;
            json_array_append_new(arr, json_string(v));
            free(v);
            if (*p == ']')
                break;
            if (*p != ',')
                goto bad;
            p++;
        }
        return arr;
    }
    p = strstr(def, " = '");
    if (p && !strstr(p + 4, " = ")) {
        char *v;

        p += 3;
        v = check_item(&p);
        if (!v)
            goto bad;
        json_array_append_new(arr, json_string(v));
        free(v);
        return arr;
    }
bad:
    json_decref(arr);
    return NULL;
}

char *profile_lower(const char *s)
{
    char *out = xstrdup(s);

    for (char *p = out; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return out;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);

    return n >= k && strcmp(s + n - k, suffix) == 0;
}

char *profile_singular(const char *table)
{
    char *s = profile_lower(table);
    size_t n = strlen(s);

    if (ends_with(s, "ies") && n > 3) {
        strcpy(s + n - 3, "y");
    } else if ((ends_with(s, "sses") || ends_with(s, "xes") || ends_with(s, "ches") ||
                ends_with(s, "shes")) &&
               n > 4) {
        s[n - 2] = '\0';
    } else if (ends_with(s, "s") && !ends_with(s, "ss") && !ends_with(s, "us") && n > 1) {
        s[n - 1] = '\0';
    }
    return s;
}

static bool names_table(const char *prefix, const char *table)
{
    char *lt = profile_lower(table);
    char *sg = profile_singular(table);
    bool r = strcmp(prefix, lt) == 0 || strcmp(prefix, sg) == 0;

    free(lt);
    free(sg);
    return r;
}

bool profile_name_key_like(const char *column, const char *table, const json_t *tables)
{
    static const char *const exact[] = {"id", "uuid", "guid", "email", "code", "key", NULL};
    static const char *const suffixes[] = {"_uuid", "_guid", "_code", "_email",
                                           "_key",  "_id",   NULL};
    char *name = profile_lower(column);
    char *prefix = NULL;
    bool r = false;

    for (size_t i = 0; exact[i]; i++)
        if (strcmp(name, exact[i]) == 0)
            r = true;
    for (size_t i = 0; !r && !prefix && suffixes[i]; i++)
        if (ends_with(name, suffixes[i]) && strlen(name) > strlen(suffixes[i]))
            prefix = xstrndup(name, strlen(name) - strlen(suffixes[i]));
    /* camelCase customerId: the original spelling carries the boundary */
    if (!r && !prefix && ends_with(column, "Id") && strlen(column) > 2)
        prefix = xstrndup(name, strlen(name) - 2);
    if (prefix) {
        size_t i;
        json_t *v;

        r = true;
        if (!names_table(prefix, table)) {
            json_array_foreach(tables, i, v)
            {
                if (json_is_string(v) && strcmp(json_string_value(v), table) != 0 &&
                    names_table(prefix, json_string_value(v)))
                    r = false; /* a reference to another table, which repeats by design */
            }
        }
    }
    free(prefix);
    free(name);
    return r;
}

bool profile_name_future_ok(const char *column)
{
    static const char *const stems[] = {"expir",  "deadline", "schedul",  "renew",
                                        "remind", "future",   "forecast", "estimat",
                                        "valid",  "plan",     NULL};
    static const char *const words[] = {"due", "until", "end",    "ends", "ending",  "next",
                                        "eta", "start", "starts", "to",   "expires", NULL};
    char *name = profile_lower(column);
    bool r = false;
    char *save = NULL;

    for (char *tok = strtok_r(name, "_ ", &save); tok && !r; tok = strtok_r(NULL, "_ ", &save)) {
        for (size_t i = 0; stems[i] && !r; i++)
            r = strncmp(tok, stems[i], strlen(stems[i])) == 0;
        for (size_t i = 0; words[i] && !r; i++)
            r = strcmp(tok, words[i]) == 0;
    }
    free(name);
    return r;
}
