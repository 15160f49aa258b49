/*
 * The transformation function catalogue: every function the mapping engine
 * can chain, each a plain C function over one text value. A value is an
 * XfStr (s == NULL is SQL NULL; s is not NUL-terminated and may point into
 * the input row). Results are allocated in the caller's arena or alias the
 * input, so a function never frees anything. A function returns 0, or a
 * negative errno code with tm_error() naming the function and the value:
 * the engine adds the row, column and table, and the pipeline's error policy
 * decides what happens to the row. Options of a parameterised function are
 * compiled once from the mapping config (xf_spec.c) into a struct that the
 * per-row call only reads, so several copy threads may share it.
 */
#ifndef TM_XF_H
#define TM_XF_H

#include "core/arena.h"
#include "core/transform/decimal.h"

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct XfStr {
    const char *s; /* NULL: SQL NULL */
    size_t len;
} XfStr;

#define XF_NULL        ((XfStr){NULL, 0})
#define XF_STR(lit)    ((XfStr){(lit), sizeof(lit) - 1})
#define XF_CSTR(cstr)  ((XfStr){(cstr), strlen(cstr)}) /* cstr must not be NULL */
#define XF_MAX_OUTPUTS 6

/* ---- shared helpers (xf_util.c) --------------------------------------- */

/* Copies s into the arena, NUL-terminated. */
XfStr xf_dup(Arena *a, const char *s, size_t len);

/*
 * Writes a printable, quoted and truncated rendering of v into buf for
 * error messages: 'abc', NULL, or 'long valu...' with control bytes as \xNN.
 */
const char *xf_show(XfStr v, char *buf, size_t size);
#define XF_SHOW_MAX 96

/* Sets tm_error() to "FN: 'value': what" and returns code. */
int xf_fail(int code, const char *fn, XfStr v, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* True when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
bool xf_utf8_valid(const char *s, size_t len);

/* Decodes one code point at s (len > 0); returns bytes used, 0 on a bad sequence. */
size_t xf_utf8_decode(const char *s, size_t len, uint32_t *cp);

/* Encodes cp into out (4 bytes room); returns bytes written. */
size_t xf_utf8_encode(uint32_t cp, char *out);

/* Lower/upper case of a code point: ASCII, Latin-1 Supplement, Latin Extended-A. */
uint32_t xf_cp_lower(uint32_t cp);
uint32_t xf_cp_upper(uint32_t cp);
bool xf_cp_is_letter(uint32_t cp);

/* Case-folded copy (xf_cp_lower per code point; invalid bytes kept). */
XfStr xf_fold(Arena *a, XfStr v);

/*
 * A string → string dictionary for value maps and lookup tables: open
 * addressing, built once at compile time, read-only afterwards. Values may be
 * SQL NULL. Keys are case-folded at insert and lookup when fold is set.
 */
typedef struct XfDict XfDict;

XfDict *xf_dict_new(bool fold);
void xf_dict_free(XfDict *d);
/* Returns false (and leaves the entry) when key is already present. */
bool xf_dict_put(XfDict *d, const char *key, size_t klen, XfStr value);
/* True and *value when found. fold_buf is scratch for folding (may be NULL: the arena is used). */
bool xf_dict_get(const XfDict *d, XfStr key, Arena *a, XfStr *value);
size_t xf_dict_size(const XfDict *d);

/* ---- casts and validation (xf_cast.c) ---------------------------------- */

typedef enum XfType {
    XF_T_INT,
    XF_T_BIGINT,
    XF_T_NUMERIC,
    XF_T_BOOLEAN,
    XF_T_DATE,
    XF_T_TIMESTAMP,
    XF_T_TIMESTAMPTZ,
    XF_T_UUID,
    XF_T_TEXT,
} XfType;

/* "int", "integer", "int4", ... → type; -1 when unknown. */
int xf_type_from_name(const char *name);
const char *xf_type_name(XfType t);

/*
 * Validates in as a value of type t and returns PostgreSQL's canonical text
 * for it (surrounding blanks removed; ints without leading zeros or '+';
 * booleans "true"/"false"; uuids lower-case with hyphens; dates and
 * timestamps ISO). NULL stays NULL.
 */
int xf_cast(XfType t, XfStr in, Arena *a, XfStr *out);

/* Exact decimal with rounding to scale (numeric(p, s)); precision 0: unlimited. */
int xf_cast_numeric(XfStr in, int precision, int scale, XfRound mode, Arena *a, XfStr *out);

/* ---- dates and times (xf_date.c) --------------------------------------- */

typedef enum XfPrefer { XF_PREFER_NONE, XF_PREFER_MDY, XF_PREFER_DMY } XfPrefer;

typedef struct XfDateFormat XfDateFormat;

typedef struct XfDateOpts {
    XfDateFormat *formats;
    size_t nformats;
    XfPrefer prefer;
    int pivot;  /* two-digit years: yy < pivot → 20yy, else 19yy; -1: not allowed */
    XfType out; /* XF_T_DATE, XF_T_TIMESTAMP or XF_T_TIMESTAMPTZ */
} XfDateOpts;

/*
 * Compiles formats (tokens YYYY YY MM M DD D Mon Month HH HH12 MI SS FF AM
 * TZ, or the whole-format words epoch / epoch_ms; anything else is literal,
 * a blank matches one or more blanks). out < 0 picks date unless a format
 * has a time. Returns -EINVAL with tm_error() naming the bad format.
 */
int xf_date_opts_init(XfDateOpts *o, const char *const *formats, size_t n, XfPrefer prefer,
                      int pivot, int out);
void xf_date_opts_release(XfDateOpts *o);

/*
 * Parses in with every format. All formats that match must agree on the
 * value; when they do not, prefer picks the month-first or day-first reading,
 * otherwise the value is ambiguous (an error). Impossible dates (Feb 30) and
 * two-digit years without a pivot never match.
 */
int xf_parse_date(const XfDateOpts *o, XfStr in, Arena *a, XfStr *out);

/*
 * ISO input only: YYYY-MM-DD for dates; for timestamps also
 * [ T]HH:MI[:SS[.ffffff]] and an optional zone (Z, +HH, +HH:MM). The casts'
 * parser; output as xf_parse_date.
 */
int xf_parse_iso(XfType t, XfStr in, Arena *a, XfStr *out);

/* Civil date helpers shared with casts. */
bool xf_date_valid(int y, int m, int d);
/* Days since 1970-01-01 → y, m, d (proleptic Gregorian). */
void xf_civil_from_days(int64_t days, int *y, int *m, int *d);

/* ---- text (xf_text.c) -------------------------------------------------- */

int xf_trim(XfStr in, Arena *a, XfStr *out);
int xf_collapse_ws(XfStr in, Arena *a, XfStr *out);
int xf_upper(XfStr in, Arena *a, XfStr *out);
int xf_lower(XfStr in, Arena *a, XfStr *out);
/* "o'brien-smith" → "O'Brien-Smith"; "don't" stays "Don't". */
int xf_title(XfStr in, Arena *a, XfStr *out);

typedef struct XfRegex {
    regex_t re;
    char *replace; /* \0..\9 are groups, \\ a backslash */
    bool global;
    bool compiled;
} XfRegex;

int xf_regex_init(XfRegex *r, const char *pattern, const char *replace, bool global, bool icase);
void xf_regex_release(XfRegex *r);
int xf_regex_replace(const XfRegex *r, XfStr in, Arena *a, XfStr *out);

/* ---- value maps and nulls (xf_valuemap.c, xf_null.c) ------------------- */

typedef enum XfUnmapped {
    XF_UNMAPPED_ERROR,
    XF_UNMAPPED_KEEP,
    XF_UNMAPPED_NULL,
    XF_UNMAPPED_DEFAULT
} XfUnmapped;

typedef struct XfValueMap {
    XfDict *dict;
    XfUnmapped unmapped;
    XfStr def;         /* XF_UNMAPPED_DEFAULT */
    const char *fname; /* "map", "lookup", ... for messages */
} XfValueMap;

/* NULL input stays NULL; see XfUnmapped for values not in the map. */
int xf_value_map(const XfValueMap *m, XfStr in, Arena *a, XfStr *out);

typedef struct XfNullIf {
    XfDict *values; /* keys only */
    bool trim;      /* compare with surrounding blanks removed */
} XfNullIf;

int xf_null_if(const XfNullIf *n, XfStr in, Arena *a, XfStr *out);
int xf_if_null(XfStr def, XfStr in, Arena *a, XfStr *out);
/* NULL → error (a NOT NULL target column fed from a nullable source). */
int xf_require(XfStr in, Arena *a, XfStr *out);

/* ---- names (xf_name.c) ------------------------------------------------- */

typedef enum XfNamePart {
    XF_NAME_TITLE,
    XF_NAME_FIRST,
    XF_NAME_MIDDLE,
    XF_NAME_GIVEN, /* first and middle */
    XF_NAME_LAST,
    XF_NAME_SUFFIX,
} XfNamePart;

typedef struct XfName {
    XfStr title, first, middle, last, suffix; /* XF_NULL when absent */
} XfName;

/* single_is_last: a one-word name is a last name (else a first name). */
int xf_parse_name(XfStr in, bool single_is_last, Arena *a, XfName *out);
XfStr xf_name_part(const XfName *n, XfNamePart part, Arena *a);
int xf_name_part_from_name(const char *s); /* -1 when unknown */

/* ---- addresses (xf_address.c) ------------------------------------------ */

/* "California" / "calif"? no: names, codes and a few aliases → "CA". */
int xf_state_code(XfStr in, XfUnmapped unmapped, Arena *a, XfStr *out);
/* "ca" / "California" → "California". */
int xf_state_name(XfStr in, XfUnmapped unmapped, Arena *a, XfStr *out);

/* Loads a two-column CSV (RFC 4180 quoting) into m->dict. */
int xf_lookup_load_csv(XfValueMap *m, const char *path, bool header, bool fold);

/* ---- currency (xf_currency.c) ------------------------------------------ */

typedef struct XfCurrency {
    XfDec rate;
    int scale; /* decimal places of the result */
    XfRound mode;
} XfCurrency;

int xf_currency(const XfCurrency *c, XfStr in, Arena *a, XfStr *out);

/* ---- encodings (xf_encoding.c) ----------------------------------------- */

typedef enum XfCharset { XF_LATIN1, XF_WIN1252 } XfCharset;

/* always: decode even when the bytes already are valid UTF-8. */
int xf_decode(XfCharset cs, bool always, XfStr in, Arena *a, XfStr *out);

/* Repairs UTF-8 that was decoded as WIN1252/LATIN1 and encoded again ("Ã©" → "é"). */
int xf_fix_mojibake(bool error_instead, XfStr in, Arena *a, XfStr *out);
/* True when v looks double-encoded and repairs unambiguously. */
bool xf_is_mojibake(XfStr v);

/* ---- identifiers (xf_id.c) --------------------------------------------- */

/* new = id * multiply + add, checked against int64 overflow. */
int xf_id_remap(int64_t multiply, int64_t add, XfStr in, Arena *a, XfStr *out);

/*
 * The id_map lookup: old → new id in namespace ns (the lead backs it with
 * tidemark.id_map on the target). Returns 0 with *new_out set (valid until
 * the row is written), -ENOENT when the old id has no mapping, -EINVAL when
 * the old id itself cannot be looked up (both the row's data), or, with
 * tm_error() set, -ENOTCONN when the lookup's connection failed and another
 * code for any other failure of the lookup itself (mapping_error_is_data()).
 */
typedef int (*IdLookupFn)(void *ctx, const char *ns, const char *old, const char **new_out);

typedef struct XfIdLookup {
    IdLookupFn fn;
    void *ctx;
} XfIdLookup;

int xf_id_lookup(const XfIdLookup *l, const char *ns, XfStr in, Arena *a, XfStr *out);

/* ---- PII (xf_mask.c) --------------------------------------------------- */

/* Lower-case hex SHA-256 of salt || value. */
int xf_hash_sha256(XfStr salt, XfStr in, Arena *a, XfStr *out);
/* All but the last keep code points replaced by mask_char ("******1234"). */
int xf_mask_keep_last(size_t keep, uint32_t mask_char, XfStr in, Arena *a, XfStr *out);
/* "alice@example.com" → "a***@example.com". */
int xf_mask_email(XfStr in, Arena *a, XfStr *out);

/* ---- compiled steps (xf_spec.c) ---------------------------------------- */

/*
 * One compiled transform: fn reads opts and writes nout values (1 except for
 * parse_name feeding several target columns). needs_value is false only for
 * steps that never look at a non-NULL input.
 */
typedef int (*XfStepFn)(const void *opts, XfStr in, Arena *a, XfStr *out);

typedef struct XfStep {
    const char *name; /* catalogue name, for messages */
    XfStepFn fn;
    void *opts;
    void (*opts_free)(void *opts);
    uint8_t nout;
} XfStep;

/*
 * Where in the mapping config a compile error is: a container (object or
 * array, never a shared json singleton) and the member key or element index
 * inside it. config.c turns it into file:line:col.
 */
typedef struct XfWhere {
    const json_t *container;
    const char *key; /* NULL: index, or the container itself when index < 0 */
    long index;
    bool at_key; /* the key itself is wrong (unknown key), not its value */
} XfWhere;

typedef struct XfSpecCtx {
    XfWhere *where;
    const XfIdLookup *id_lookup; /* where id_map steps find the plan's callback */
    bool uses_id_lookup;         /* set when an id_map step was compiled */
} XfSpecCtx;

/* Records the location and sets tm_error(); returns -EINVAL. */
int xf_spec_fail(XfSpecCtx *c, const json_t *container, const char *key, long index,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * Compiles one element of a "transform:" list (a name, or a one-key mapping
 * name → parameters) found at list[index]. nout > 1 asks a multi-output step
 * (parse_name) for that many values; others refuse it.
 */
int xf_step_compile(XfSpecCtx *c, const json_t *list, size_t index, unsigned nout, XfStep *out);
void xf_step_release(XfStep *s);

/* Names of every catalogue function, NULL-terminated (docs and tests). */
extern const char *const xf_catalogue[];

/* Text of a JSON scalar for config values: strings as is, integers, booleans; NULL otherwise. */
char *xf_scalar_text(const json_t *v);

#endif
