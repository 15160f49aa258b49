/*
 * Internals shared by the profile_* files: the pure helpers (format masks,
 * byte sanitizing, SQL array literals, CHECK parsing, name heuristics, the
 * shipped value sets), the finding rules and renderers that work on the
 * JSON report alone, and the catalog / scan / relationship / store steps
 * that talk to PostgreSQL. Keeping the pure parts free of libpq lets the
 * unit tests exercise them directly.
 */
#ifndef TM_PROFILE_INT_H
#define TM_PROFILE_INT_H

#include "config/config.h"
#include "core/buf.h"
#include "core/table.h"
#include "migration/profile.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- pure text helpers (profile_text.c) ---------------------------------- */

/* The characters translate() maps: a-z to 'a', A-Z to 'A', 0-9 to '9'. */
extern const char PROFILE_MASK_FROM[];
extern const char PROFILE_MASK_TO[];

/*
 * Format mask of s, as bytefreq/TestGen do: lower-case ASCII letter -> 'a',
 * upper-case -> 'A', digit -> '9', every other byte kept ("2024-01-05" ->
 * "9999-99-99"). The same mapping as translate(v, FROM, TO) in SQL. malloc'd.
 */
char *profile_mask(const char *s);

/* Runs of the same class letter (a, A, 9) collapsed to one: "9999-99-99" -> "9-9-9". malloc'd. */
char *profile_mask_collapse(const char *mask);

/*
 * The date layout a mask spells ("YYYY-MM-DD", "NN/NN/YYYY", "Mon D, YYYY",
 * with " hh:mm[:ss]" for a time part), or NULL when it is not a date. out
 * receives the name (size >= 48).
 */
const char *profile_date_family(const char *mask, char *out, size_t outsz);

/*
 * The format family used by the competing-formats rule: the date layout for
 * date-like masks, the collapsed mask for masks made mostly of digits, NULL
 * for free text (whose masks vary with every word length).
 */
char *profile_format_family(const char *mask);

/* Copy of len bytes as valid UTF-8: each byte that is not part of a valid sequence becomes "\xNN".
 */
char *profile_text_sanitize(const char *s, size_t len);

/* The same inside JSON text: invalid bytes become the JSON escape "\\xNN". */
char *profile_json_sanitize(const char *s, size_t len);

/* A PostgreSQL text[] literal ({"a","b"}), for passing a list as one parameter. */
char *profile_sql_text_array(const char *const *vals, size_t n);

/*
 * Parses the allowed values of a simple CHECK constraint as
 * pg_get_constraintdef() prints it: "CHECK ((c = ANY (ARRAY['a'::text, ...])))"
 * or "CHECK ((c = 'a'::text))" or "CHECK (c IN (...))". Returns a JSON array
 * of strings, or NULL when the constraint is anything else.
 */
json_t *profile_parse_check_in(const char *def);

/* Lower-cased ASCII copy. malloc'd. */
char *profile_lower(const char *s);

/*
 * A column name that says "I identify the row": id, uuid, email, code, or
 * <x>_id/_code/_uuid/_email/_key where <x> is not another profiled table (then
 * it is a reference). tables: JSON array of table names (unqualified).
 */
bool profile_name_key_like(const char *column, const char *table, const json_t *tables);

/* A date column whose name says future values are expected (expires_at, due_date...). */
bool profile_name_future_ok(const char *column);

/* "customers" -> "customer", "addresses" -> "address"; malloc'd. */
char *profile_singular(const char *table);

/* ---- value sets (profile_valueset.c) ------------------------------------- */

typedef struct ProfileValuePair {
    const char *code;
    const char *name;
} ProfileValuePair;

typedef struct ProfileValueSet {
    const char *label; /* "US states" */
    size_t n;
    const ProfileValuePair *pairs;
} ProfileValueSet;

const ProfileValueSet *profile_valueset_states(void);

/* 1 when v (trimmed, any case) is a code of set, 2 a name, 0 neither. */
int profile_valueset_classify(const ProfileValueSet *set, const char *v);

/* text[] literals of the upper-cased codes and the lower-cased names. malloc'd. */
char *profile_valueset_codes_array(const ProfileValueSet *set);
char *profile_valueset_names_array(const ProfileValueSet *set);

/* ---- findings (profile_rules.c) ------------------------------------------ */

/* Appends the findings of one table report (see profile_scan.c for its shape). */
void profile_rules_table(const json_t *table, const json_t *table_names, json_t *findings);

/* Appends the findings of the relationships section. */
void profile_rules_relationships(const json_t *rels, json_t *findings);

/* Orders findings: error, warning, info; then larger counts first; then by name. */
void profile_findings_sort(json_t *findings);

/* {"error": n, "warning": n, "info": n} */
json_t *profile_findings_count(const json_t *findings);

/* ---- renderers ------------------------------------------------------------ */

void profile_render_text(const json_t *report, Buf *out);
void profile_render_markdown(const json_t *report, Buf *out);
void profile_render_html(const json_t *report, Buf *out);

/* Helpers the renderers share (profile_report.c). */
const char *profile_jstr(const json_t *obj, const char *key);     /* "" when absent */
long long profile_jint(const json_t *obj, const char *key);       /* 0 when absent */
void profile_fmt_value(const json_t *v, char *buf, size_t bufsz); /* any scalar as short text */
void profile_fmt_bytes(long long n, char *buf, size_t bufsz);

/* ---- catalog and scans (talk to PostgreSQL) ------------------------------ */

typedef enum ProfCat {
    PROF_CAT_TEXT,
    PROF_CAT_NUMBER,
    PROF_CAT_TEMPORAL,
    PROF_CAT_OTHER,
} ProfCat;

typedef struct ProfCol {
    const char *name; /* borrowed from the TableDef */
    char *type;       /* format_type() */
    char *base;       /* base type name after domains: "int4", "date", "text"... */
    ProfCat cat;
    bool not_null;
    bool unique; /* a one-column unique index or primary key */
    bool in_fk;  /* part of a declared foreign key of its table */
    /* the same column on the target */
    bool t_found;
    bool t_not_null;
    char *t_type;
    int t_maxlen;      /* varchar(n)/char(n) limit, 0 when none */
    json_t *t_allowed; /* enum labels or CHECK IN list; NULL when none */
    /* filled by the aggregate pass, used by the grouping pass */
    bool hist;
    double lo, hi;
} ProfCol;

typedef struct ProfTable {
    TableDef *def;    /* borrowed */
    ProfCol *cols;    /* def->ncols of them */
    json_t *pk;       /* array of column names, or null */
    bool rows_unique; /* a primary key or a unique index on NOT NULL columns */
    long long size, total_size;
    bool t_found; /* a table of the same name exists on the target */
    json_t *out;  /* the table's report, filled by profile_scan_table */
    char *error;  /* set when the scan failed */
} ProfTable;

/* What every scan needs to know about the run. */
typedef struct ProfCtx {
    const char *encoding; /* source server_encoding */
    bool sql_ascii;
    double sample_pct;
    long top_values;
    char *placeholders; /* text[] literal, lower-cased and trimmed */
    char *state_codes, *state_names;
    bool has_target;
} ProfCtx;

/* Fills the column, key, size and foreign-key details of tabs (the source). */
int profile_catalog_source(PGconn *src, ProfTable *tabs, size_t n, json_t **fks);

/* Fills the target side (t_* fields) from the tables of the same names on dst. */
int profile_catalog_target(PGconn *dst, ProfTable *tabs, size_t n);

/* The passes over one table: fills t->out. On error the transaction is rolled back to a savepoint.
 */
int profile_scan_table(PGconn *conn, const ProfCtx *ctx, ProfTable *t);

/* Appends " AS t TABLESAMPLE SYSTEM ($i) REPEATABLE ($j)" and its parameters when sampling. */
typedef struct SqlParams {
    int n, cap;
    char **v;
} SqlParams;

int sqlp_add(SqlParams *p, const char *value); /* copies value (NULL for SQL NULL); returns $n */
void sqlp_release(SqlParams *p);
void profile_sql_from(PGconn *conn, const ProfCtx *ctx, const char *schema, const char *name,
                      Buf *sql, SqlParams *p);

/* Runs sql and parses its single jsonb column (sanitized) into *out. */
int profile_query_json(PGconn *conn, const char *sql, const SqlParams *p, json_t **out);

/*
 * Relationships: {"foreign_keys": [...], "candidates": [...]} from the declared
 * foreign keys and the implicit candidates (names and types that match a
 * unique column of another profiled table); each item is then checked on its
 * own (so items can run in parallel), which adds the counts.
 */
json_t *profile_rel_plan(const ProfTable *tabs, size_t n, const json_t *fks);
int profile_rel_check_fk(PGconn *conn, const ProfCtx *ctx, json_t *fk);
int profile_rel_check_candidate(PGconn *conn, const ProfCtx *ctx, json_t *cand);

/* Writes the report and the baseline counts to schema tidemark on the target. */
int profile_store(PGconn *dst, const char *pipeline, const json_t *report);

#endif
