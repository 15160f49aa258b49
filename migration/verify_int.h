/*
 * Internals shared by the verify_* files. The pure parts (range splitting,
 * bucket comparison, row diffs, rule parsing, rendering) take no connection,
 * so the unit tests drive them directly; the rest (table shapes, the
 * comparison queries, integrity checks, storing) talks to PostgreSQL through
 * pgconn and never splices a value into SQL.
 */
#ifndef TM_VERIFY_INT_H
#define TM_VERIFY_INT_H

#include "config/config.h"
#include "core/buf.h"
#include "core/table.h"
#include "migration/verify.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A range or bucket whose rows are fetched whole instead of split further. */
#define VERIFY_LEAF_ROWS 256
/* Sub-ranges per split (and hash buckets per level). */
#define VERIFY_FANOUT 64
/* Examples kept per integrity failure. */
#define VERIFY_EXAMPLES 5
/* Differences kept per table in the report (all are counted). */
#define VERIFY_MAX_DIFFS 1000

/* ---- ranges and buckets (verify_range.c, pure) --------------------------- */

/*
 * Up to n-1 strictly increasing split points that cut the integer range
 * [lo, hi) into n nearly equal parts (fewer when the range is narrower).
 * Returns how many were written to out (capacity n).
 */
int verify_int_bounds(int64_t lo, int64_t hi, int n, int64_t *out);

/*
 * The width w of n equal buckets over the integer range [lo, hi): bucket
 * (k - lo) / w of every k in the range is in [0, n), and bucket i is
 * [lo + i*w, lo + (i+1)*w). 0 when the range cannot be split (fewer than two
 * keys, n < 2) or when hi - lo does not fit in an int64, where k - lo could
 * overflow in SQL: the caller then uses verify_int_bounds.
 */
int64_t verify_int_width(int64_t lo, int64_t hi, int n);

/* One bucket's aggregate on one side: rows and the hash sum (numeric text). */
typedef struct VBucket {
    long long id;
    long long count;
    char *sum; /* NULL when the bucket is empty */
} VBucket;

/*
 * The ids of the buckets whose count or sum differ between a and b (a bucket
 * present on one side only differs), ascending, each with the larger of its
 * two counts. Returns how many; *ids and *rows are malloc'd (NULL when none).
 */
size_t verify_buckets_diff(const VBucket *a, size_t na, const VBucket *b, size_t nb,
                           long long **ids, long long **rows);

void verify_buckets_release(VBucket *b, size_t n);

/* ---- rows and their differences (verify_diff.c, pure) --------------------- */

typedef struct VRow {
    char *key;       /* the key's text (the row text for tables without a key) */
    char **vals;     /* one per column; NULL for SQL NULL */
    long long count; /* copies of the row (tables without a key); else 1 */
} VRow;

typedef struct VRowSet {
    size_t n, cap, ncols;
    VRow *rows;
} VRowSet;

void vrowset_init(VRowSet *s, size_t ncols);
/* Takes ownership of key and vals (ncols entries). */
void vrowset_add(VRowSet *s, char *key, char **vals, long long count);
void vrowset_release(VRowSet *s);

/* What the diff needs to name columns and keys. */
typedef struct VShape {
    const char *const *cols; /* column names */
    size_t ncols;
    const int *keyidx; /* indexes of the key columns in cols */
    size_t nkey;       /* 0: no key, rows compare as a multiset */
} VShape;

/*
 * Appends to diffs one object per difference between src and dst (which it
 * sorts): {"kind": "missing"|"extra"|"differs", "key": {...}, "key_text",
 * "columns": [{"column", "source", "target"}] (differs), "row": {...}
 * (missing/extra), "count" (copies, tables without a key)}. Returns the
 * number of differences.
 */
size_t verify_diff_rows(const VShape *shape, VRowSet *src, VRowSet *dst, json_t *diffs);

/* ---- rules from the config (verify_rules.c, pure) ------------------------ */

typedef enum VRuleKind {
    VR_NOT_NULL,
    VR_UNIQUE,
    VR_RANGE,
    VR_REGEX,
    VR_ALLOWED,
} VRuleKind;

typedef struct VRule {
    VRuleKind kind;
    TableName table;
    char **cols; /* one column; several for unique */
    size_t ncols;
    char *min, *max; /* range: NULL for an open end */
    char *pattern;   /* regex */
    char **values;   /* allowed */
    size_t nvalues;
} VRule;

typedef struct VFk {
    char *name; /* constraint name, or "config" for implicit ones */
    TableName table, ref;
    char **cols, **ref_cols;
    size_t ncols;
    bool declared;
} VFk;

typedef struct VSpot {
    TableName table;
    size_t nkeys;
    json_t **keys; /* each a scalar (one key column) or an array (composite key) */
} VSpot;

typedef struct VRuleSet {
    VRule *rules;
    size_t nrules;
    VFk *fks;
    size_t nfks;
    VSpot *spots;
    size_t nspots;
    long interval_s;
    long max_rows_per_s;
    long jobs;
    long recheck_rounds;
    long catchup_timeout_s;
} VRuleSet;

/* Parses the verify section of the config tree (may be NULL). 0 or -EINVAL. */
int verify_rules_parse(const json_t *verify, VRuleSet *out);
void verify_rules_release(VRuleSet *rs);
const char *verify_rule_kind_name(VRuleKind k);
/* Frees the names and column lists of one foreign key. */
void verify_fk_release(VFk *fk);

/* ---- rendering (verify_render.c, pure) ------------------------------------- */

void verify_render_text(const json_t *report, Buf *out);
void verify_render_markdown(const json_t *report, Buf *out);
/* One difference as a short line: `missing {"id": "5"}`, `differs {..}: name "a" -> "b"`. */
void verify_describe_diff(const json_t *diff, Buf *out);

/* ---- one table (verify_table.c, verify_cmp.c) ------------------------------- */

typedef enum VStrategy {
    VS_RANGE,    /* one orderable key column: key ranges, index range scans */
    VS_HASH_KEY, /* composite key: buckets of the key's hash */
    VS_HASH_ROW, /* no key: buckets of the row's hash, rows compared as a multiset */
} VStrategy;

/*
 * One compared column. src_expr/dst_expr are the canonical text of the
 * column over alias t on each side ("t.c::text" today). This is the plug for
 * transformations (issue 4): a column whose target value is computed from the
 * source gets a src_expr that computes the expected target text in SQL, and
 * everything else (hashes, bisection, diffs) is unchanged.
 */
typedef struct VCol {
    char *name;
    char *src_expr, *dst_expr;
} VCol;

typedef struct VMap VMap; /* a table's mapping (verify_map.c) */

typedef struct VTable {
    TableDef *def;     /* borrowed (source shape) */
    char *qsrc, *qdst; /* quoted qualified names */
    VCol *cols;
    size_t ncols;
    const char **colnames;
    int *keyidx;
    size_t nkey;
    VStrategy strategy;
    char *key_type;     /* format_type() of the single key column */
    bool key_int;       /* int2/int4/int8 */
    bool key_collate;   /* text-like: compare with COLLATE "C" on both sides */
    int64_t kmin, kmax; /* integer key: min and max over both sides */
    bool kempty;
    bool t_found;
    char *t_problem; /* why the target table cannot be compared */
    double est_rows;
    /* SQL fragments over alias t */
    char *rowtext_src, *rowtext_dst; /* ROW(c1, c2, ...)::text */
    char *hash_src, *hash_dst;       /* hashtextextended(rowtext, 0) */
    char *bhash_src, *bhash_dst;     /* non-negative bucket hash (hash strategies) */
    char *keytext;                   /* the key's text */
    char *keycol;                    /* the single key column, quoted, with collation */
    char *keyq;                      /* the single key column, quoted */
    char *cols_src, *cols_dst;       /* "c1::text, c2::text, ..." */
    /* results */
    long long src_rows, dst_rows;
    json_t *diffs;
    size_t ndiffs_total;
    long long queries, rows_fetched;
    json_t *checks; /* integrity results: foreign keys, rules, spot checks */
    char *error;
    double seconds;
    VMap *map; /* the table has a mapping: compared through it (verify_map.c) */
} VTable;

/* A throttle shared by the workers of one run: rows per second, 0 = none. */
typedef struct VThrottle {
    pthread_mutex_t mu;
    long rate;
    double t0;
    double rows;
} VThrottle;

void verify_throttle(VThrottle *th, long long rows);

/* Session settings that make ::text identical on both sides. */
int verify_session_setup(PGconn *c);

/* Fills the shape of t from both catalogs (key, types, target columns). */
int verify_table_prepare(PGconn *src, PGconn *dst, VTable *t);
void verify_table_release(VTable *t);

/*
 * Compares t on src and dst (each inside its snapshot): counts, checksums,
 * bisection, leaf diffs. Fills t->src_rows, dst_rows, diffs.
 */
int verify_compare_table(PGconn *src, PGconn *dst, VTable *t, VThrottle *th);

/*
 * Re-reads the rows behind diffs (their key_text) on both sides and returns
 * the differences that remain, as a new array.
 */
int verify_recheck(PGconn *src, PGconn *dst, VTable *t, const json_t *diffs, json_t **out);

/* Spot checks of t: keys compared field by field; differences appended to out. */
int verify_spot_check(PGconn *src, PGconn *dst, VTable *t, const VSpot *spot, json_t *out);

/* Runs both statements concurrently (one per side); results in *rs, *rd. */
int verify_query2(PGconn *src, const char *sql_src, PGconn *dst, const char *sql_dst, int np,
                  const char *const *params, PGresult **rs, PGresult **rd);

/* ---- tables with a mapping (verify_map.c) ------------------------------------ */

/*
 * Compiles the mapping of t->def found in the config tree, if any (t->map
 * stays NULL for a table without one). A mapping that cannot be compiled
 * becomes the table's problem (reported as its error), not a run failure.
 */
int verify_map_attach(const json_t *config_tree, VTable *t);
/* The target table's display name of a mapped table, else NULL. */
const char *verify_map_target(const VTable *t);
/* Checks the mapping's target table and columns; builds the two COPY statements. */
int verify_map_prepare(PGconn *src, PGconn *dst, VTable *t);
/* Streams both sides in key order and merges them (fills counts and diffs). */
int verify_map_compare(PGconn *src, PGconn *dst, VTable *t, VThrottle *th);
/* The merge again at the current snapshots; keeps the keys of diffs that still differ. */
int verify_map_recheck(PGconn *src, PGconn *dst, VTable *t, const json_t *diffs, json_t **out);
void verify_map_release(VTable *t);

/* ---- integrity on the target (verify_check.c) ----------------------------------- */

/* Declared foreign keys of the target tables (pg_constraint contype 'f'). */
int verify_declared_fks(PGconn *dst, VTable *tabs, size_t n, VFk **out, size_t *nout);
/* One check object {"check", "name", "table", "failures", "examples", "ok"}. */
int verify_check_fk(PGconn *dst, const VFk *fk, json_t **out);
int verify_check_rule(PGconn *dst, const VTable *t, const VRule *r, json_t **out);

/* ---- storing (verify_store.c) ------------------------------------------------- */

/* Reads tidemark.baseline_counts (the profile's) into the report's tables. */
void verify_read_baseline(PGconn *dst, const char *pipeline, json_t *tables);
int verify_store(PGconn *dst, const char *pipeline, json_t *report);

/* ---- a stopped pipeline (verify_slot.c) ----------------------------------- */

enum {
    VSLOT_UNKNOWN, /* no slot, WAL not flushed to upto yet, or the peek failed */
    VSLOT_ACTIVE,  /* the slot is in use: the pipeline runs */
    VSLOT_CLEAN,   /* idle, and no change to the tables committed in (from, upto) */
    VSLOT_PENDING, /* idle, with such changes: *detail names table, count, position */
};

/*
 * Peeks (never consumes) the pipeline's idle slot for changes to tabs that
 * commit after from (the watermark) and before upto (the snapshot), decoded
 * as the pipeline would receive them. *detail is malloc'd or NULL.
 */
int verify_slot_peek(const Config *cfg, const VTable *tabs, size_t ntabs, Lsn from, Lsn upto,
                     int *verdict, char **detail);

#endif
