/*
 * The catalogue: how each transform is written in the mapping config and
 * compiled into an XfStep (function pointer plus read-only options). A step
 * is either a bare name ("trim") or a one-key mapping from the name to its
 * parameters ({parse_date: {formats: [...]}}); some take a scalar shorthand
 * ({cast: int}, {id_offset: 1000000}). Every parameter is checked here, with
 * the position of the offending value recorded for config.c, so a mapping
 * that loads cannot fail on its own terms at row time.
 */
#include "core/transform/xf.h"

#include "core/error.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int xf_spec_fail(XfSpecCtx *c, const json_t *container, const char *key, long index,
                 const char *fmt, ...)
{
    char msg[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c && c->where)
        *c->where = (XfWhere){container, key, index, false};
    return tm_fail(-EINVAL, "%s", msg);
}

/* ---- parameter access -------------------------------------------------- */

typedef struct Params {
    XfSpecCtx *c;
    const char *fn;
    const json_t *obj; /* the parameter mapping; NULL when the step has none */
    const json_t *holder;
    const char *holder_key; /* where obj sits, for "expected a mapping" */
    long holder_index;      /* or the list index of a bare name */
} Params;

static int p_fail(Params *p, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int p_fail(Params *p, const char *key, const char *fmt, ...)
{
    char msg[640];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (key && p->obj)
        return xf_spec_fail(p->c, p->obj, key, -1, "%s: %s: %s", p->fn, key, msg);
    return xf_spec_fail(p->c, p->holder, p->holder_key, p->holder_index, "%s: %s", p->fn, msg);
}

/* Rejects keys not in the NULL-terminated list. */
static int p_known(Params *p, const char *const *known)
{
    const char *key;
    const json_t *v;

    if (!p->obj)
        return 0;
    json_object_foreach((json_t *)p->obj, key, v)
    {
        const char *const *k = known;
        char list[256];
        size_t len = 0;

        while (*k && strcmp(*k, key) != 0)
            k++;
        if (*k)
            continue;
        list[0] = '\0';
        for (k = known; *k && len < sizeof(list); k++)
            len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", k == known ? "" : ", ",
                                    *k);
        int rc = p_fail(p, key, "unknown parameter (known: %s)", *known ? list : "none");

        if (p->c && p->c->where)
            p->c->where->at_key = true;
        return rc;
    }
    return 0;
}

static const json_t *p_get(Params *p, const char *key)
{
    const json_t *v = p->obj ? json_object_get(p->obj, key) : NULL;

    return v && !json_is_null(v) ? v : NULL;
}

/* String parameter (integers and booleans read as text); def when absent and not required. */
static int p_str(Params *p, const char *key, bool required, const char *def, char **out)
{
    const json_t *v = p_get(p, key);

    *out = NULL;
    if (!v) {
        if (required)
            return p_fail(p, NULL, "parameter \"%s\" is required", key);
        *out = def ? xstrdup(def) : NULL;
        return 0;
    }
    *out = xf_scalar_text(v);
    if (!*out)
        return p_fail(p, key, "expected a text value");
    return 0;
}

static int p_int(Params *p, const char *key, bool required, long long def, long long min,
                 long long max, long long *out)
{
    const json_t *v = p_get(p, key);

    *out = def;
    if (!v) {
        if (required)
            return p_fail(p, NULL, "parameter \"%s\" is required", key);
        return 0;
    }
    if (!json_is_integer(v))
        return p_fail(p, key, "expected an integer");
    *out = json_integer_value(v);
    if (*out < min || *out > max)
        return p_fail(p, key, "%lld is out of range (%lld..%lld)", *out, min, max);
    return 0;
}

static int p_bool(Params *p, const char *key, bool def, bool *out)
{
    const json_t *v = p_get(p, key);

    *out = def;
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return p_fail(p, key, "expected true or false");
    *out = json_is_true(v);
    return 0;
}

static int p_enum(Params *p, const char *key, const char *const *names, int def, int *out)
{
    char *s;
    int rc = p_str(p, key, false, NULL, &s);

    *out = def;
    if (rc < 0 || !s)
        return rc;
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            free(s);
            return 0;
        }
    char list[256];
    size_t len = 0;

    list[0] = '\0';
    for (int i = 0; names[i] && len < sizeof(list); i++)
        len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", names[i]);
    rc = p_fail(p, key, "\"%s\" is not one of %s", s, list);
    free(s);
    return rc;
}

static const char *const unmapped_names[] = {"error", "keep", "null", NULL};

/* ---- step functions ---------------------------------------------------- */

#define SIMPLE(name, call)                                                                         \
    static int name(const void *o, XfStr in, Arena *a, XfStr *out)                                 \
    {                                                                                              \
        (void)o;                                                                                   \
        return call(in, a, out);                                                                   \
    }

SIMPLE(st_trim, xf_trim)
SIMPLE(st_collapse, xf_collapse_ws)
SIMPLE(st_upper, xf_upper)
SIMPLE(st_lower, xf_lower)
SIMPLE(st_title, xf_title)
SIMPLE(st_require, xf_require)
SIMPLE(st_mask_email, xf_mask_email)

static int st_regex(const void *o, XfStr in, Arena *a, XfStr *out)
{
    return xf_regex_replace(o, in, a, out);
}

static void free_regex(void *o)
{
    xf_regex_release(o);
    free(o);
}

typedef struct CastOpts {
    XfType type;
    int precision, scale;
    XfRound mode;
} CastOpts;

static int st_cast(const void *o, XfStr in, Arena *a, XfStr *out)
{
    const CastOpts *c = o;

    if (c->type == XF_T_NUMERIC && in.s)
        return xf_cast_numeric(in, c->precision, c->scale, c->mode, a, out);
    return xf_cast(c->type, in, a, out);
}

static int st_date(const void *o, XfStr in, Arena *a, XfStr *out)
{
    return xf_parse_date(o, in, a, out);
}

static void free_date(void *o)
{
    xf_date_opts_release(o);
    free(o);
}

static int st_map(const void *o, XfStr in, Arena *a, XfStr *out)
{
    return xf_value_map(o, in, a, out);
}

static void free_map(void *o)
{
    XfValueMap *m = o;

    xf_dict_free(m->dict);
    free((char *)m->def.s);
    free(m);
}

static int st_null_if(const void *o, XfStr in, Arena *a, XfStr *out)
{
    return xf_null_if(o, in, a, out);
}

static void free_null_if(void *o)
{
    xf_dict_free(((XfNullIf *)o)->values);
    free(o);
}

static int st_if_null(const void *o, XfStr in, Arena *a, XfStr *out)
{
    return xf_if_null(*(const XfStr *)o, in, a, out);
}

static void free_str_opts(void *o)
{
    free((char *)((XfStr *)o)->s);
    free(o);
}

typedef struct NameOpts {
    XfNamePart parts[XF_MAX_OUTPUTS];
    unsigned nparts;
    bool single_is_last;
} NameOpts;

static int st_name(const void *o, XfStr in, Arena *a, XfStr *out)
{
    const NameOpts *n = o;
    XfName name;
    int rc = xf_parse_name(in, n->single_is_last, a, &name);

    if (rc < 0)
        return rc;
    for (unsigned i = 0; i < n->nparts; i++)
        out[i] = xf_name_part(&name, n->parts[i], a);
    return 0;
}

static int st_state_code(const void *o, XfStr in, Arena *a, XfStr *out)
{
    return xf_state_code(in, *(const XfUnmapped *)o, a, out);
}

static int st_state_name(const void *o, XfStr in, Arena *a, XfStr *out)
{
    return xf_state_name(in, *(const XfUnmapped *)o, a, out);
}

static int st_currency(const void *o, XfStr in, Arena *a, XfStr *out)
{
    return xf_currency(o, in, a, out);
}

typedef struct DecodeOpts {
    XfCharset cs;
    bool always;
} DecodeOpts;

static int st_decode(const void *o, XfStr in, Arena *a, XfStr *out)
{
    const DecodeOpts *d = o;

    return xf_decode(d->cs, d->always, in, a, out);
}

static int st_mojibake(const void *o, XfStr in, Arena *a, XfStr *out)
{
    return xf_fix_mojibake(*(const bool *)o, in, a, out);
}

typedef struct IdOpts {
    int64_t multiply, add;
} IdOpts;

static int st_id(const void *o, XfStr in, Arena *a, XfStr *out)
{
    const IdOpts *i = o;

    return xf_id_remap(i->multiply, i->add, in, a, out);
}

typedef struct IdMapOpts {
    const XfIdLookup *lookup;
    char *ns;
} IdMapOpts;

static int st_id_map(const void *o, XfStr in, Arena *a, XfStr *out)
{
    const IdMapOpts *m = o;

    return xf_id_lookup(m->lookup, m->ns, in, a, out);
}

static void free_id_map(void *o)
{
    free(((IdMapOpts *)o)->ns);
    free(o);
}

static int st_hash(const void *o, XfStr in, Arena *a, XfStr *out)
{
    return xf_hash_sha256(*(const XfStr *)o, in, a, out);
}

typedef struct MaskOpts {
    size_t keep;
    uint32_t ch;
} MaskOpts;

static int st_mask(const void *o, XfStr in, Arena *a, XfStr *out)
{
    const MaskOpts *m = o;

    return xf_mask_keep_last(m->keep, m->ch, in, a, out);
}

/* ---- compilers --------------------------------------------------------- */

typedef int (*CompileFn)(Params *p, const json_t *scalar, unsigned nout, XfStep *st);

static int c_none(Params *p, const json_t *scalar, unsigned nout, XfStep *st)
{
    static const char *const none[] = {NULL};

    if (scalar)
        return p_fail(p, NULL, "takes no parameters");
    return p_known(p, none);
}

static int c_regex(Params *p, const json_t *scalar, unsigned nout, XfStep *st)
{
    static const char *const known[] = {"pattern", "replace", "global", "case_insensitive", NULL};
    char *pat = NULL, *rep = NULL;
    bool global, icase;
    XfRegex *r;
    int rc;

    if (scalar)
        return p_fail(p, NULL, "expected a mapping with pattern and replace");
    if ((rc = p_known(p, known)) < 0 || (rc = p_str(p, "pattern", true, NULL, &pat)) < 0 ||
        (rc = p_str(p, "replace", false, "", &rep)) < 0 ||
        (rc = p_bool(p, "global", true, &global)) < 0 ||
        (rc = p_bool(p, "case_insensitive", false, &icase)) < 0) {
        free(pat);
        free(rep);
        return rc;
    }
    r = xcalloc(1, sizeof(*r));
    rc = xf_regex_init(r, pat, rep, global, icase);
    free(pat);
    free(rep);
    st->opts = r;
    st->opts_free = free_regex;
    if (rc < 0)
        return p_fail(p, "pattern", "%s", tm_error());
    st->fn = st_regex;
    return 0;
}

static int c_cast(Params *p, const json_t *scalar, unsigned nout, XfStep *st)
{
    static const char *const known[] = {"type", "precision", "scale", "rounding", NULL};
    static const char *const rounds[] = {"half_up", "half_even", "down", "up", NULL};
    CastOpts *c = xcalloc(1, sizeof(*c));
    char *type = NULL;
    long long prec = 0, scale = -1;
    int mode = XF_ROUND_HALF_UP, rc, t;

    st->opts = c;
    st->opts_free = free;
    if (scalar) {
        type = xf_scalar_text(scalar);
    } else if ((rc = p_known(p, known)) < 0 || (rc = p_str(p, "type", true, NULL, &type)) < 0 ||
               (rc = p_int(p, "precision", false, 0, 1, 1000, &prec)) < 0 ||
               (rc = p_int(p, "scale", false, -1, 0, XF_DEC_MAX_SCALE, &scale)) < 0 ||
               (rc = p_enum(p, "rounding", rounds, XF_ROUND_HALF_UP, &mode)) < 0) {
        free(type);
        return rc;
    }
    t = type ? xf_type_from_name(type) : -1;
    if (t < 0) {
        rc = p_fail(p, scalar ? NULL : "type",
                    "unknown type \"%s\" (int, bigint, numeric, boolean, date, timestamp, "
                    "timestamptz, uuid, text)",
                    type ? type : "");
        free(type);
        return rc;
    }
    free(type);
    if ((prec > 0 || scale >= 0) && t != XF_T_NUMERIC)
        return p_fail(p, NULL, "precision and scale apply to numeric only");
    c->type = (XfType)t;
    c->precision = (int)prec;
    c->scale = (int)scale;
    c->mode = (XfRound)mode;
    st->fn = st_cast;
    return 0;
}

static int c_date(Params *p, const json_t *scalar, unsigned nout, XfStep *st)
{
    static const char *const known[] = {"formats", "prefer", "pivot", "output", NULL};
    static const char *const prefers[] = {"none", "mdy", "dmy", NULL};
    static const char *const outputs[] = {"date", "timestamp", "timestamptz", NULL};
    static const XfType out_types[] = {XF_T_DATE, XF_T_TIMESTAMP, XF_T_TIMESTAMPTZ};
    const json_t *fl = p_get(p, "formats");
    const char **fmts;
    long long pivot;
    int prefer, output, rc;
    XfDateOpts *o;

    if (scalar)
        return p_fail(p, NULL, "expected a mapping with formats");
    if ((rc = p_known(p, known)) < 0 || (rc = p_enum(p, "prefer", prefers, 0, &prefer)) < 0 ||
        (rc = p_int(p, "pivot", false, -1, 0, 99, &pivot)) < 0 ||
        (rc = p_enum(p, "output", outputs, -1, &output)) < 0)
        return rc;
    if (!fl)
        return p_fail(p, NULL, "parameter \"formats\" is required");
    if (!json_is_array(fl) || json_array_size(fl) == 0)
        return p_fail(p, "formats", "expected a non-empty list of formats");
    fmts = xcalloc(json_array_size(fl), sizeof(char *));
    for (size_t i = 0; i < json_array_size(fl); i++) {
        fmts[i] = json_string_value(json_array_get(fl, i));
        if (!fmts[i]) {
            free(fmts);
            return xf_spec_fail(p->c, fl, NULL, (long)i, "%s: formats: expected a string", p->fn);
        }
    }
    o = xcalloc(1, sizeof(*o));
    st->opts = o;
    st->opts_free = free_date;
    rc = xf_date_opts_init(o, fmts, json_array_size(fl), (XfPrefer)prefer, (int)pivot,
                           output < 0 ? -1 : (int)out_types[output]);
    free(fmts);
    if (rc < 0)
        return p_fail(p, "formats", "%s", tm_error());
    st->fn = st_date;
    return 0;
}

/* unmapped / default shared by map and lookup. */
static int unmapped_policy(Params *p, XfValueMap *m)
{
    const json_t *def = p->obj ? json_object_get(p->obj, "default") : NULL;
    int um, rc;

    if ((rc = p_enum(p, "unmapped", unmapped_names, XF_UNMAPPED_ERROR, &um)) < 0)
        return rc;
    m->unmapped = (XfUnmapped)um;
    if (def) {
        char *s;

        if (p_get(p, "unmapped"))
            return p_fail(p, "default", "give either default or unmapped, not both");
        s = json_is_null(def) ? NULL : xf_scalar_text(def);
        if (!json_is_null(def) && !s)
            return p_fail(p, "default", "expected a text value or null");
        m->unmapped = XF_UNMAPPED_DEFAULT;
        m->def = s ? (XfStr){s, strlen(s)} : XF_NULL;
    }
    return 0;
}

static int c_map(Params *p, const json_t *scalar, unsigned nout, XfStep *st)
{
    static const char *const known[] = {"values", "default", "unmapped", "case_insensitive", NULL};
    const json_t *values = p_get(p, "values");
    XfValueMap *m;
    bool fold;
    const char *key;
    const json_t *v;
    int rc;

    if (scalar)
        return p_fail(p, NULL, "expected a mapping with values");
    if ((rc = p_known(p, known)) < 0 || (rc = p_bool(p, "case_insensitive", false, &fold)) < 0)
        return rc;
    if (!values || !json_is_object(values))
        return p_fail(p, values ? "values" : NULL,
                      "\"values\" must be a mapping of old value to new value");
    m = xcalloc(1, sizeof(*m));
    m->fname = "map";
    m->dict = xf_dict_new(fold);
    st->opts = m;
    st->opts_free = free_map;
    json_object_foreach((json_t *)values, key, v)
    {
        char *s = json_is_null(v) ? NULL : xf_scalar_text(v);

        if (!json_is_null(v) && !s)
            return xf_spec_fail(p->c, values, key, -1, "map: values: %s: expected a text value",
                                key);
        bool fresh = xf_dict_put(m->dict, key, strlen(key), s ? XF_CSTR(s) : XF_NULL);
        free(s);
        if (!fresh)
            return xf_spec_fail(p->c, values, key, -1,
                                "map: values: \"%s\" is listed twice (ignoring case)", key);
    }
    if ((rc = unmapped_policy(p, m)) < 0)
        return rc;
    st->fn = st_map;
    return 0;
}

static int c_lookup(Params *p, const json_t *scalar, unsigned nout, XfStep *st)
{
    static const char *const known[] = {"file",     "header",           "default",
                                        "unmapped", "case_insensitive", NULL};
    XfValueMap *m;
    char *file = NULL;
    bool header, fold;
    int rc;

    if (scalar)
        return p_fail(p, NULL, "expected a mapping with file");
    if ((rc = p_known(p, known)) < 0 || (rc = p_str(p, "file", true, NULL, &file)) < 0 ||
        (rc = p_bool(p, "header", false, &header)) < 0 ||
        (rc = p_bool(p, "case_insensitive", false, &fold)) < 0)
        return rc;
    m = xcalloc(1, sizeof(*m));
    m->fname = "lookup";
    st->opts = m;
    st->opts_free = free_map;
    rc = xf_lookup_load_csv(m, file, header, fold);
    free(file);
    if (rc < 0)
        return p_fail(p, "file", "%s", tm_error());
    if ((rc = unmapped_policy(p, m)) < 0)
        return rc;
    st->fn = st_map;
    return 0;
}

static int c_null_if(Params *p, const json_t *scalar, unsigned nout, XfStep *st)
{
    static const char *const known[] = {"values", "trim", "case_insensitive", NULL};
    const json_t *list = scalar;
    XfNullIf *n;
    bool trim = true, fold = true;
    int rc;

    if (!scalar) {
        if ((rc = p_known(p, known)) < 0 || (rc = p_bool(p, "trim", true, &trim)) < 0 ||
            (rc = p_bool(p, "case_insensitive", true, &fold)) < 0)
            return rc;
        list = p_get(p, "values");
    }
    if (!list || !json_is_array(list))
        return p_fail(p, scalar ? NULL : "values", "expected a list of placeholder values");
    n = xcalloc(1, sizeof(*n));
    n->values = xf_dict_new(fold);
    n->trim = trim;
    st->opts = n;
    st->opts_free = free_null_if;
    for (size_t i = 0; i < json_array_size(list); i++) {
        char *s = xf_scalar_text(json_array_get(list, i));

        if (!s)
            return xf_spec_fail(p->c, list, NULL, (long)i, "null_if: expected a text value");
        xf_dict_put(n->values, s, strlen(s), XF_STR(""));
        free(s);
    }
    st->fn = st_null_if;
    return 0;
}

static int c_if_null(Params *p, const json_t *scalar, unsigned nout, XfStep *st)
{
    char *s = scalar ? xf_scalar_text(scalar) : NULL;
    XfStr *o;

    if (!s)
        return p_fail(p, NULL, "expected the default value (if_null: VALUE)");
    o = xmalloc(sizeof(*o));
    *o = (XfStr){s, strlen(s)};
    st->opts = o;
    st->opts_free = free_str_opts;
    st->fn = st_if_null;
    return 0;
}

static int c_name(Params *p, const json_t *scalar, unsigned nout, XfStep *st)
{
    static const char *const known[] = {"parts", "part", "single", NULL};
    static const char *const singles[] = {"last", "first", NULL};
    static const XfNamePart defaults[5][XF_MAX_OUTPUTS] = {
        {XF_NAME_GIVEN},
        {XF_NAME_GIVEN, XF_NAME_LAST},
        {XF_NAME_FIRST, XF_NAME_MIDDLE, XF_NAME_LAST},
        {XF_NAME_FIRST, XF_NAME_MIDDLE, XF_NAME_LAST, XF_NAME_SUFFIX},
        {XF_NAME_TITLE, XF_NAME_FIRST, XF_NAME_MIDDLE, XF_NAME_LAST, XF_NAME_SUFFIX},
    };
    const json_t *parts = p_get(p, "parts"), *part = p_get(p, "part");
    NameOpts *n;
    int single, rc;

    if (scalar)
        return p_fail(p, NULL, "expected a mapping ({} for the defaults)");
    if ((rc = p_known(p, known)) < 0 || (rc = p_enum(p, "single", singles, 0, &single)) < 0)
        return rc;
    if (parts && part)
        return p_fail(p, "part", "give either part or parts");
    n = xcalloc(1, sizeof(*n));
    st->opts = n;
    st->opts_free = free;
    n->single_is_last = single == 0;
    if (part) {
        parts = NULL;
        const char *s = json_string_value(part);
        int k = s ? xf_name_part_from_name(s) : -1;

        if (k < 0)
            return p_fail(p, "part", "expected one of title, first, middle, given, last, suffix");
        n->parts[0] = (XfNamePart)k;
        n->nparts = 1;
    } else if (parts) {
        if (!json_is_array(parts) || json_array_size(parts) == 0 ||
            json_array_size(parts) > XF_MAX_OUTPUTS)
            return p_fail(p, "parts", "expected a list of 1 to %d parts", XF_MAX_OUTPUTS);
        for (size_t i = 0; i < json_array_size(parts); i++) {
            const char *s = json_string_value(json_array_get(parts, i));
            int k = s ? xf_name_part_from_name(s) : -1;

            if (k < 0)
                return xf_spec_fail(p->c, parts, NULL, (long)i,
                                    "parse_name: parts: expected one of title, first, middle, "
                                    "given, last, suffix");
            n->parts[i] = (XfNamePart)k;
        }
        n->nparts = (unsigned)json_array_size(parts);
    } else {
        if (nout < 1 || nout > 5)
            return p_fail(p, NULL, "feeds %u columns; list the parts for each (parts: [...])",
                          nout);
        memcpy(n->parts, defaults[nout - 1], sizeof(n->parts));
        n->nparts = nout;
    }
    if (n->nparts != nout)
        return p_fail(p, NULL, "yields %u part(s) but feeds %u column(s)", n->nparts, nout);
    st->nout = (uint8_t)nout;
    st->fn = st_name;
    return 0;
}

static int c_state(Params *p, const json_t *scalar, unsigned nout, XfStep *st, XfStepFn fn)
{
    static const char *const known[] = {"unmapped", NULL};
    XfUnmapped *u;
    int um, rc;

    if (scalar)
        return p_fail(p, NULL, "expected a mapping ({} for the defaults)");
    if ((rc = p_known(p, known)) < 0 ||
        (rc = p_enum(p, "unmapped", unmapped_names, XF_UNMAPPED_ERROR, &um)) < 0)
        return rc;
    u = xmalloc(sizeof(*u));
    *u = (XfUnmapped)um;
    st->opts = u;
    st->opts_free = free;
    st->fn = fn;
    return 0;
}

static int c_state_code(Params *p, const json_t *scalar, unsigned nout, XfStep *st)
{
    return c_state(p, scalar, nout, st, st_state_code);
}

static int c_state_name(Params *p, const json_t *scalar, unsigned nout, XfStep *st)
{
    return c_state(p, scalar, nout, st, st_state_name);
}

static int c_currency(Params *p, const json_t *scalar, unsigned nout, XfStep *st)
{
    static const char *const known[] = {"rate", "scale", "rounding", NULL};
    static const char *const rounds[] = {"half_up", "half_even", "down", "up", NULL};
    XfCurrency *c;
    char *rate = NULL;
    long long scale;
    int mode, rc;

    if (scalar)
        return p_fail(p, NULL, "expected a mapping with rate, scale and rounding");
    if ((rc = p_known(p, known)) < 0 || (rc = p_str(p, "rate", true, NULL, &rate)) < 0 ||
        (rc = p_int(p, "scale", false, 2, 0, 38, &scale)) < 0 ||
        (rc = p_enum(p, "rounding", rounds, -1, &mode)) < 0) {
        free(rate);
        return rc;
    }
    if (mode < 0) {
        free(rate);
        return p_fail(p, NULL,
                      "parameter \"rounding\" is required (half_up, half_even, down or up)");
    }
    c = xcalloc(1, sizeof(*c));
    st->opts = c;
    st->opts_free = free;
    rc = xf_dec_parse(rate, strlen(rate), &c->rate);
    if (rc < 0 || c->rate.neg || c->rate.ndig == 0) {
        rc = p_fail(p, "rate",
                    "\"%s\" is not a positive decimal (write it quoted to keep every "
                    "digit)",
                    rate);
        free(rate);
        return rc;
    }
    free(rate);
    c->scale = (int)scale;
    c->mode = (XfRound)mode;
    st->fn = st_currency;
    return 0;
}

static int c_decode(Params *p, const json_t *scalar, unsigned nout, XfStep *st)
{
    static const char *const known[] = {"from", "always", NULL};
    static const char *const charsets[] = {"latin1", "win1252", NULL};
    DecodeOpts *d;
    int cs = -1, rc;
    bool always = false;

    if (scalar) {
        const char *s = json_string_value(scalar);

        for (int i = 0; s && charsets[i]; i++)
            if (strcmp(s, charsets[i]) == 0)
                cs = i;
        if (cs < 0)
            return p_fail(p, NULL, "expected latin1 or win1252");
    } else if ((rc = p_known(p, known)) < 0 || (rc = p_enum(p, "from", charsets, -1, &cs)) < 0 ||
               (rc = p_bool(p, "always", false, &always)) < 0) {
        return rc;
    } else if (cs < 0) {
        return p_fail(p, NULL, "parameter \"from\" is required (latin1 or win1252)");
    }
    d = xcalloc(1, sizeof(*d));
    d->cs = (XfCharset)cs;
    d->always = always;
    st->opts = d;
    st->opts_free = free;
    st->fn = st_decode;
    return 0;
}

static int c_mojibake(Params *p, const json_t *scalar, unsigned nout, XfStep *st)
{
    static const char *const known[] = {"action", NULL};
    static const char *const actions[] = {"repair", "error", NULL};
    bool *e;
    int act, rc;

    if (scalar)
        return p_fail(p, NULL, "expected a mapping ({} for the defaults)");
    if ((rc = p_known(p, known)) < 0 || (rc = p_enum(p, "action", actions, 0, &act)) < 0)
        return rc;
    e = xmalloc(sizeof(*e));
    *e = act == 1;
    st->opts = e;
    st->opts_free = free;
    st->fn = st_mojibake;
    return 0;
}

static int c_id_offset(Params *p, const json_t *scalar, unsigned nout, XfStep *st)
{
    static const char *const known[] = {"offset", NULL};
    long long off;
    IdOpts *o;
    int rc;

    if (scalar) {
        if (!json_is_integer(scalar))
            return p_fail(p, NULL, "expected an integer offset");
        off = json_integer_value(scalar);
    } else if ((rc = p_known(p, known)) < 0 ||
               (rc = p_int(p, "offset", true, 0, INT64_MIN, INT64_MAX, &off)) < 0) {
        return rc;
    }
    o = xmalloc(sizeof(*o));
    *o = (IdOpts){1, off};
    st->opts = o;
    st->opts_free = free;
    st->fn = st_id;
    return 0;
}

static int c_id_namespace(Params *p, const json_t *scalar, unsigned nout, XfStep *st)
{
    static const char *const known[] = {"multiply", "tag", NULL};
    long long k, tag;
    IdOpts *o;
    int rc;

    if (scalar)
        return p_fail(p, NULL, "expected a mapping with multiply and tag");
    if ((rc = p_known(p, known)) < 0 ||
        (rc = p_int(p, "multiply", true, 0, 2, 1000000000, &k)) < 0 ||
        (rc = p_int(p, "tag", true, 0, 0, 1000000000, &tag)) < 0)
        return rc;
    if (tag >= k)
        return p_fail(p, "tag", "must be below multiply (%lld), or namespaces overlap", k);
    o = xmalloc(sizeof(*o));
    *o = (IdOpts){k, tag};
    st->opts = o;
    st->opts_free = free;
    st->fn = st_id;
    return 0;
}

static int c_id_map(Params *p, const json_t *scalar, unsigned nout, XfStep *st)
{
    static const char *const known[] = {"namespace", NULL};
    char *ns = NULL;
    IdMapOpts *m;
    int rc;

    if (scalar) {
        ns = xf_scalar_text(scalar);
        if (!ns)
            return p_fail(p, NULL, "expected the namespace name");
    } else if ((rc = p_known(p, known)) < 0 || (rc = p_str(p, "namespace", true, NULL, &ns)) < 0) {
        return rc;
    }
    if (!*ns) {
        free(ns);
        return p_fail(p, scalar ? NULL : "namespace", "the namespace is empty");
    }
    m = xcalloc(1, sizeof(*m));
    m->ns = ns;
    m->lookup = p->c->id_lookup;
    p->c->uses_id_lookup = true;
    st->opts = m;
    st->opts_free = free_id_map;
    st->fn = st_id_map;
    return 0;
}

static int c_hash(Params *p, const json_t *scalar, unsigned nout, XfStep *st)
{
    static const char *const known[] = {"salt", "salt_env", NULL};
    char *salt = NULL, *env = NULL;
    XfStr *o;
    int rc;

    if (scalar)
        return p_fail(p, NULL, "expected a mapping with salt or salt_env");
    if ((rc = p_known(p, known)) < 0 || (rc = p_str(p, "salt", false, NULL, &salt)) < 0 ||
        (rc = p_str(p, "salt_env", false, NULL, &env)) < 0) {
        free(salt);
        return rc;
    }
    if (salt && env) {
        free(salt);
        free(env);
        return p_fail(p, "salt_env", "give either salt or salt_env");
    }
    if (env) {
        const char *v = getenv(env);

        if (!v || !*v) {
            rc = p_fail(p, "salt_env", "environment variable %s is not set", env);
            free(env);
            return rc;
        }
        salt = xstrdup(v);
        free(env);
    }
    if (!salt)
        return p_fail(p, NULL,
                      "a salt is required (salt or salt_env): unsalted hashes of "
                      "short values are reversible by brute force");
    o = xmalloc(sizeof(*o));
    *o = (XfStr){salt, strlen(salt)};
    st->opts = o;
    st->opts_free = free_str_opts;
    st->fn = st_hash;
    return 0;
}

static int c_mask(Params *p, const json_t *scalar, unsigned nout, XfStep *st)
{
    static const char *const known[] = {"keep_last", "char", NULL};
    long long keep;
    char *ch = NULL;
    uint32_t cp;
    MaskOpts *m;
    int rc;

    if (scalar)
        return p_fail(p, NULL, "expected a mapping with keep_last");
    if ((rc = p_known(p, known)) < 0 ||
        (rc = p_int(p, "keep_last", false, 0, 0, 1000, &keep)) < 0 ||
        (rc = p_str(p, "char", false, "*", &ch)) < 0)
        return rc;
    size_t n = xf_utf8_decode(ch, strlen(ch), &cp);
    if (n == 0 || n != strlen(ch)) {
        free(ch);
        return p_fail(p, "char", "expected exactly one character");
    }
    free(ch);
    m = xmalloc(sizeof(*m));
    *m = (MaskOpts){(size_t)keep, cp};
    st->opts = m;
    st->opts_free = free;
    st->fn = st_mask;
    return 0;
}

/* ---- the catalogue ----------------------------------------------------- */

typedef struct Entry {
    const char *name;
    CompileFn compile;
    XfStepFn fn; /* for parameterless functions */
} Entry;

static const Entry entries[] = {
    {"trim", c_none, st_trim},
    {"collapse_whitespace", c_none, st_collapse},
    {"upper", c_none, st_upper},
    {"lower", c_none, st_lower},
    {"title", c_none, st_title},
    {"regex_replace", c_regex, NULL},
    {"cast", c_cast, NULL},
    {"parse_date", c_date, NULL},
    {"map", c_map, NULL},
    {"lookup", c_lookup, NULL},
    {"null_if", c_null_if, NULL},
    {"if_null", c_if_null, NULL},
    {"require", c_none, st_require},
    {"parse_name", c_name, NULL},
    {"state_code", c_state_code, NULL},
    {"state_name", c_state_name, NULL},
    {"currency", c_currency, NULL},
    {"decode", c_decode, NULL},
    {"fix_mojibake", c_mojibake, NULL},
    {"id_offset", c_id_offset, NULL},
    {"id_namespace", c_id_namespace, NULL},
    {"id_map", c_id_map, NULL},
    {"hash", c_hash, NULL},
    {"mask", c_mask, NULL},
    {"mask_email", c_none, st_mask_email},
};

#define NENTRIES (sizeof(entries) / sizeof(entries[0]))

const char *const xf_catalogue[] = {
    "trim",         "collapse_whitespace",
    "upper",        "lower",
    "title",        "regex_replace",
    "cast",         "parse_date",
    "map",          "lookup",
    "null_if",      "if_null",
    "require",      "parse_name",
    "state_code",   "state_name",
    "currency",     "decode",
    "fix_mojibake", "id_offset",
    "id_namespace", "id_map",
    "hash",         "mask",
    "mask_email",   NULL,
};

/* Parameterless steps can be written bare, with {}, or with null. */
static bool no_params(const json_t *v)
{
    return !v || json_is_null(v) || (json_is_object(v) && json_object_size(v) == 0);
}

int xf_step_compile(XfSpecCtx *c, const json_t *list, size_t index, unsigned nout, XfStep *out)
{
    const json_t *spec = json_array_get(list, index);
    const char *name = NULL;
    const json_t *params = NULL;
    const Entry *e = NULL;
    Params p = {.c = c};
    int rc;

    memset(out, 0, sizeof(*out));
    out->nout = 1;
    if (json_is_string(spec)) {
        name = json_string_value(spec);
    } else if (json_is_object(spec) && json_object_size(spec) == 1) {
        void *it = json_object_iter((json_t *)spec);

        name = json_object_iter_key(it);
        params = json_object_iter_value(it);
    } else {
        return xf_spec_fail(c, list, NULL, (long)index,
                            "a transform is a name (trim) or a one-key mapping ({name: "
                            "parameters})");
    }
    for (size_t i = 0; i < NENTRIES; i++)
        if (strcmp(entries[i].name, name) == 0)
            e = &entries[i];
    if (!e) {
        char list_text[512];
        size_t len = 0;

        list_text[0] = '\0';
        for (size_t i = 0; i < NENTRIES && len < sizeof(list_text); i++)
            len += (size_t)snprintf(list_text + len, sizeof(list_text) - len, "%s%s", i ? ", " : "",
                                    entries[i].name);
        if (json_is_object(spec))
            return xf_spec_fail(c, spec, name, -1, "unknown transform \"%s\" (known: %s)", name,
                                list_text);
        return xf_spec_fail(c, list, NULL, (long)index, "unknown transform \"%s\" (known: %s)",
                            name, list_text);
    }
    out->name = e->name;
    p.fn = e->name;
    if (json_is_object(spec)) {
        p.holder = spec;
        p.holder_key = name;
        p.holder_index = -1;
    } else {
        p.holder = list;
        p.holder_index = (long)index;
    }
    if (params && json_is_object(params))
        p.obj = params;
    if (nout != 1 && e->compile != c_name)
        return p_fail(&p, NULL, "yields one value; only parse_name can feed several columns");
    rc = e->compile(&p, params && !json_is_object(params) && !json_is_null(params) ? params : NULL,
                    nout, out);
    if (rc < 0) {
        xf_step_release(out);
        return rc;
    }
    if (e->fn) {
        if (!no_params(params) && e->compile == c_none)
            return p_fail(&p, NULL, "takes no parameters");
        out->fn = e->fn;
    }
    return 0;
}

void xf_step_release(XfStep *s)
{
    if (s->opts && s->opts_free)
        s->opts_free(s->opts);
    s->opts = NULL;
    s->opts_free = NULL;
}
