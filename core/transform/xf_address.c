/*
 * Address normalization: US state and territory names to USPS two-letter
 * codes and back, and generic two-column lookup tables loaded from CSV
 * files (city spellings, country names, anything site-specific). The state
 * table is built in, including DC, the territories and the military "states",
 * so the common case needs no file; matching ignores case, dots and commas.
 */
#include "core/transform/xf.h"

#include "core/buf.h"
#include "core/error.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *code, *name;
} states[] = {
    {"AL", "Alabama"},
    {"AK", "Alaska"},
    {"AZ", "Arizona"},
    {"AR", "Arkansas"},
    {"CA", "California"},
    {"CO", "Colorado"},
    {"CT", "Connecticut"},
    {"DE", "Delaware"},
    {"FL", "Florida"},
    {"GA", "Georgia"},
    {"HI", "Hawaii"},
    {"ID", "Idaho"},
    {"IL", "Illinois"},
    {"IN", "Indiana"},
    {"IA", "Iowa"},
    {"KS", "Kansas"},
    {"KY", "Kentucky"},
    {"LA", "Louisiana"},
    {"ME", "Maine"},
    {"MD", "Maryland"},
    {"MA", "Massachusetts"},
    {"MI", "Michigan"},
    {"MN", "Minnesota"},
    {"MS", "Mississippi"},
    {"MO", "Missouri"},
    {"MT", "Montana"},
    {"NE", "Nebraska"},
    {"NV", "Nevada"},
    {"NH", "New Hampshire"},
    {"NJ", "New Jersey"},
    {"NM", "New Mexico"},
    {"NY", "New York"},
    {"NC", "North Carolina"},
    {"ND", "North Dakota"},
    {"OH", "Ohio"},
    {"OK", "Oklahoma"},
    {"OR", "Oregon"},
    {"PA", "Pennsylvania"},
    {"RI", "Rhode Island"},
    {"SC", "South Carolina"},
    {"SD", "South Dakota"},
    {"TN", "Tennessee"},
    {"TX", "Texas"},
    {"UT", "Utah"},
    {"VT", "Vermont"},
    {"VA", "Virginia"},
    {"WA", "Washington"},
    {"WV", "West Virginia"},
    {"WI", "Wisconsin"},
    {"WY", "Wyoming"},
    {"DC", "District of Columbia"},
    {"AS", "American Samoa"},
    {"GU", "Guam"},
    {"MP", "Northern Mariana Islands"},
    {"PR", "Puerto Rico"},
    {"VI", "U.S. Virgin Islands"},
    {"UM", "U.S. Minor Outlying Islands"},
    {"AA", "Armed Forces Americas"},
    {"AE", "Armed Forces Europe"},
    {"AP", "Armed Forces Pacific"},
};

#define NSTATES (sizeof(states) / sizeof(states[0]))

/* Other spellings seen in the wild, normalized as by norm(). */
static const struct {
    const char *alias, *code;
} aliases[] = {
    {"washington dc", "DC"},
    {"washington d c", "DC"},
    {"d c", "DC"},
    {"virgin islands", "VI"},
    {"us virgin islands", "VI"},
    {"united states virgin islands", "VI"},
    {"northern marianas", "MP"},
    {"commonwealth of puerto rico", "PR"},
    {"us minor outlying islands", "UM"},
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static XfDict *by_key; /* normalized name, alias or code → index into states as text */

/* Lower case, letters and single spaces only ("Washington, D.C." → "washington d c"). */
static size_t norm(const char *s, size_t len, char *out, size_t size)
{
    size_t k = 0;
    bool space = false;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (c >= 'a' && c <= 'z') {
            if (space && k && k + 1 < size)
                out[k++] = ' ';
            space = false;
            if (k + 1 >= size)
                return 0;
            out[k++] = c;
        } else if (c == '.' && i + 1 < len && s[i + 1] != ' ') {
            space = true; /* "D.C." → "d c", same as "D. C." */
        } else if (c == ' ' || c == ',' || c == '\t' || c == '-') {
            space = true;
        } else if (c != '.') {
            return 0; /* digits or other symbols: not a state */
        }
    }
    out[k] = '\0';
    return k;
}

static void build(void)
{
    char buf[64], idx[8];

    by_key = xf_dict_new(false);
    for (size_t i = 0; i < NSTATES; i++) {
        size_t n = (size_t)snprintf(idx, sizeof(idx), "%zu", i);

        xf_dict_put(by_key, buf, norm(states[i].code, 2, buf, sizeof(buf)), (XfStr){idx, n});
        xf_dict_put(by_key, buf, norm(states[i].name, strlen(states[i].name), buf, sizeof(buf)),
                    (XfStr){idx, n});
    }
    for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
        for (size_t j = 0; j < NSTATES; j++)
            if (strcmp(states[j].code, aliases[i].code) == 0) {
                size_t n = (size_t)snprintf(idx, sizeof(idx), "%zu", j);

                xf_dict_put(by_key, aliases[i].alias, strlen(aliases[i].alias), (XfStr){idx, n});
            }
    }
}

/* Index into states, or -1. */
static int find_state(XfStr in)
{
    char buf[64];
    size_t n;
    XfStr v;

    pthread_once(&once, build);
    n = norm(in.s, in.len, buf, sizeof(buf));
    if (n == 0 || !xf_dict_get(by_key, (XfStr){buf, n}, NULL, &v))
        return -1;
    return atoi(v.s);
}

static int state_convert(bool to_code, XfStr in, XfUnmapped unmapped, XfStr *out)
{
    const char *fn = to_code ? "state_code" : "state_name";
    int i;

    if (!in.s) {
        *out = in;
        return 0;
    }
    i = find_state(in);
    if (i >= 0) {
        *out = to_code ? XF_CSTR(states[i].code) : XF_CSTR(states[i].name);
        return 0;
    }
    switch (unmapped) {
    case XF_UNMAPPED_KEEP:
        *out = in;
        return 0;
    case XF_UNMAPPED_NULL:
        *out = XF_NULL;
        return 0;
    default:
        return xf_fail(-EINVAL, fn, in, "not a US state, territory or code");
    }
}

int xf_state_code(XfStr in, XfUnmapped unmapped, Arena *a, XfStr *out)
{
    (void)a;
    return state_convert(true, in, unmapped, out);
}

int xf_state_name(XfStr in, XfUnmapped unmapped, Arena *a, XfStr *out)
{
    (void)a;
    return state_convert(false, in, unmapped, out);
}

/* ---- CSV lookup tables -------------------------------------------------- */

/*
 * One RFC 4180 field at *p: quoted ("" is a quote) or plain. Returns the
 * unquoted text in buf and leaves *p on the delimiter; -1 on a broken quote.
 */
static int csv_field(const char **p, const char *end, char **buf, size_t *cap, size_t *len)
{
    const char *q = *p;

    *len = 0;
    if (q < end && *q == '"') {
        for (q++;; q++) {
            if (q >= end)
                return -1;
            if (*q == '"') {
                if (q + 1 < end && q[1] == '"') {
                    q++;
                } else {
                    q++;
                    break;
                }
            }
            if (*len + 2 > *cap) {
                *cap = *cap ? *cap * 2 : 64;
                *buf = xrealloc(*buf, *cap);
            }
            (*buf)[(*len)++] = *q;
        }
        if (q < end && *q != ',' && *q != '\n' && *q != '\r')
            return -1;
    } else {
        for (; q < end && *q != ',' && *q != '\n' && *q != '\r'; q++) {
            if (*q == '"')
                return -1;
            if (*len + 2 > *cap) {
                *cap = *cap ? *cap * 2 : 64;
                *buf = xrealloc(*buf, *cap);
            }
            (*buf)[(*len)++] = *q;
        }
    }
    if (*cap == 0) {
        *cap = 64;
        *buf = xrealloc(*buf, *cap);
    }
    (*buf)[*len] = '\0';
    *p = q;
    return 0;
}

static int load_text(XfValueMap *m, const char *path, const char *text, size_t size, bool header)
{
    const char *p = text, *end = text + size;
    char *k = NULL, *v = NULL;
    size_t kcap = 0, vcap = 0, klen, vlen;
    int line = 1, rc = 0;

    if (size >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
        p += 3;
    for (; p < end; line++) {
        int fields = 0;

        if (*p == '\n' || *p == '\r') {
            /* blank line */
        } else {
            if (csv_field(&p, end, &k, &kcap, &klen) < 0) {
                rc = tm_fail(-EINVAL, "%s:%d: broken quoting", path, line);
                break;
            }
            fields = 1;
            while (p < end && *p == ',') {
                p++;
                if (csv_field(&p, end, fields == 1 ? &v : &k, fields == 1 ? &vcap : &kcap,
                              fields == 1 ? &vlen : &klen) < 0) {
                    rc = tm_fail(-EINVAL, "%s:%d: broken quoting", path, line);
                    break;
                }
                fields++;
            }
            if (rc < 0)
                break;
            if (fields != 2) {
                rc = tm_fail(-EINVAL, "%s:%d: expected 2 columns (old,new), found %d", path, line,
                             fields);
                break;
            }
            if (!(header && line == 1) && !xf_dict_put(m->dict, k, klen, (XfStr){v, vlen})) {
                rc = tm_fail(-EINVAL, "%s:%d: \"%s\" is listed twice", path, line, k);
                break;
            }
        }
        if (p < end && *p == '\r')
            p++;
        if (p < end && *p == '\n')
            p++;
    }
    free(k);
    free(v);
    return rc;
}

int xf_lookup_load_csv(XfValueMap *m, const char *path, bool header, bool fold)
{
    Buf text = BUF_INIT;
    int rc = buf_read_file(&text, path);

    if (rc < 0) {
        buf_release(&text);
        return tm_fail_ctx(rc, "lookup table %s", path);
    }
    if (!m->dict)
        m->dict = xf_dict_new(fold);
    rc = load_text(m, path, text.data, text.len, header);
    buf_release(&text);
    return rc;
}
