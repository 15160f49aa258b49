/*
 * The mapping engine: a table's `mapping:` section compiled against the
 * source table's shape into a MappingPlan, then applied to every row without
 * looking at the config again. The same plan serves the stream (Tuple in,
 * Tuple out) and the bulk load (COPY text row in, COPY text row out), so a
 * row copied in the initial load and the same row streamed later produce
 * identical target rows. A plan is immutable once compiled (the id lookup
 * callback is set before use) and can be shared by copy threads; recompile
 * it when a Relation message changes the source shape.
 *
 * Errors: every function returns 0 or a negative errno code with tm_error()
 * naming the table, the row key, the column, the function and the value.
 * The engine never drops a row on its own: a filtered row is reported
 * through *filtered, and what to do with a failing row (stop or dead-letter)
 * is the caller's decision, read from mapping_on_error() — for the row's own
 * data errors only (mapping_error_is_data()).
 */
#ifndef TM_MAPPING_H
#define TM_MAPPING_H

#include "core/arena.h"
#include "core/buf.h"
#include "core/change.h"
#include "core/copytext.h"
#include "core/table.h"
#include "core/transform/xf.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct MappingPlan MappingPlan;

typedef enum MappingOnError {
    MAPPING_ON_ERROR_STOP = 0,
    MAPPING_ON_ERROR_DEAD_LETTER = 1,
} MappingOnError;

/*
 * The mapping of source table schema.name in a config tree (Config.tree):
 * the member of "mapping" whose key names that table ("public.customers",
 * "customers", "\"Odd\".\"Name\""), or NULL when it has none (identity).
 */
const json_t *mapping_find(const json_t *config_tree, const char *schema, const char *name);

/*
 * Validates one table's mapping without the source shape (what config load
 * can check): keys, transform names and parameters, lookup files. Relative
 * lookup file paths are rewritten in place as absolute against base_dir
 * (NULL: the working directory), so later compiles do not depend on the
 * cwd. On error *where (when not NULL) locates the offending value.
 */
int mapping_check(json_t *table_cfg, const char *base_dir, XfWhere *where);

/*
 * Compiles table_cfg (NULL: identity) against src. Fails when a named column
 * is not in src, when target columns collide, or when a replica-identity
 * column is dropped (UPDATE/DELETE could not find the target row).
 */
int mapping_compile(const json_t *table_cfg, const RelInfo *src, MappingPlan **out);
void mapping_free(MappingPlan *plan);

/* Backs id_map steps (tidemark.id_map on the target). Call before the first row. */
void mapping_set_id_lookup(MappingPlan *plan, IdLookupFn fn, void *ctx);
bool mapping_uses_id_lookup(const MappingPlan *plan);

/* Target table and columns, in output tuple order. */
const char *mapping_target_schema(const MappingPlan *plan);
const char *mapping_target_table(const MappingPlan *plan);
size_t mapping_target_ncols(const MappingPlan *plan);
const char *const *mapping_target_columns(const MappingPlan *plan);

/*
 * The target shape as a RelInfo (what sinks compile statements for): names,
 * is_key for columns fed by exactly one source key column, type_oid of the
 * source column for pass-through columns and 0 (unknown) for transformed ones.
 * oid and replident are the source's. Owned by the plan.
 */
const RelInfo *mapping_target_rel(const MappingPlan *plan);

MappingOnError mapping_on_error(const MappingPlan *plan);

/*
 * Whether a failure of mapping_apply*() (or of an IdLookupFn) is the row's
 * own data, which on_error: dead_letter may set aside: a value a transform
 * cannot take (-EINVAL, -ERANGE, -EDOM, -EILSEQ) or an id with no entry in
 * the id map (-ENOENT). Every other code is the environment failing — the
 * id_map connection lost (-ENOTCONN), a target error (-EIO), a malformed
 * COPY row or a stale plan (-EPROTO), no memory — and says nothing about the
 * row: it is never dead-lettered; the caller reconnects and retries, or stops.
 */
bool mapping_error_is_data(int rc);

/*
 * The pipeline's default (`apply.on_error`) for a plan whose table mapping
 * does not set on_error itself; the table's own setting always wins.
 * mapping_tree_on_error() reads that default from a config tree (stop when
 * absent). mapping_compile_for_table() applies it; callers of
 * mapping_compile() do it themselves.
 */
void mapping_default_on_error(MappingPlan *plan, MappingOnError def);
MappingOnError mapping_tree_on_error(const json_t *config_tree);

/* No rename, no filter, every column passed through unchanged: callers may skip the engine. */
bool mapping_is_identity(const MappingPlan *plan);

/* True when the plan has a filter (for DELETEs: see mapping_apply_key). */
bool mapping_has_filter(const MappingPlan *plan);

/*
 * Maps one row (an INSERT's or UPDATE's new tuple, or a full old row).
 * out->cols is allocated in arena; values point into in, the arena or the
 * plan. *filtered is set when the row does not belong in the target (out is
 * then empty): count it. An unchanged-TOAST column ('u') passes through as
 * unchanged when its column is mapped as identity, and is an error when a
 * transform, filter or concat needs its value (fill it from the old row
 * first when REPLICA IDENTITY FULL provides one).
 */
int mapping_apply(const MappingPlan *plan, const Tuple *in, Arena *arena, Tuple *out,
                  bool *filtered);

/*
 * A row change (INSERT, UPDATE, DELETE) through plan: *out is the change the
 * target gets, whose kind may differ when a filter is crossed (an UPDATE
 * into the filter's range is an INSERT, out of it a DELETE), or *filtered
 * when the target gets nothing (count it). Tuples live in arena and in.
 * Errors as mapping_apply(): the caller decides about dead letters.
 */
int mapping_apply_change(const MappingPlan *plan, const Change *in, Arena *arena, Change *out,
                         bool *filtered);

/*
 * Maps an old key tuple (UPDATE's 'K' old tuple, DELETE's key): the target
 * key columns are computed from the source key columns, every other output
 * column is COL_NULL. The filter is not evaluated (a key tuple does not
 * carry the filter column); a DELETE of a filtered row matches no target row.
 */
int mapping_apply_key(const MappingPlan *plan, const Tuple *oldkey, Arena *arena, Tuple *out);

/*
 * The bulk path: parses one COPY text row of the source columns (ct is the
 * caller's reusable parser state, one per thread), maps it, and appends the
 * target COPY text row (with its '\n') to out. A filtered row appends
 * nothing and sets *filtered.
 */
int mapping_apply_copy_row(const MappingPlan *plan, CopyText *ct, const char *row, size_t len,
                           Arena *arena, Buf *out, bool *filtered);

/* Appends a tuple as one COPY text row ('\N' for NULL, backslash escapes, '\n' at the end). */
int mapping_copy_render(const Tuple *t, Buf *out);

/* ---- integration helpers (mapping_table.c) ------------------------------ */

/*
 * Compiles the mapping of table t found in config_tree against t's catalog
 * shape (the copy path's view of the table); *out NULL when t has none.
 * Also applies mapping_check_identity().
 */
int mapping_compile_for_table(const json_t *config_tree, const TableDef *t, MappingPlan **out);

/*
 * A filter needs REPLICA IDENTITY FULL on the source: an UPDATE that moves a
 * row into or out of the filter, and a DELETE of a filtered row, can only be
 * told apart with the whole old row. Fails with a clear message otherwise.
 */
int mapping_check_identity(const MappingPlan *plan, char replident);

/* The target table and columns as a TableDef (free with tabledef_release()). */
void mapping_target_tabledef(const MappingPlan *plan, TableDef *out);

/*
 * Whether output column col is a plain constant (`add: {x: {const: v}}`):
 * *value (NULL for a NULL constant) and *len. Such columns tag the rows of
 * one source in a fan-in target, so they scope "this pipeline's rows".
 */
bool mapping_target_const(const MappingPlan *plan, size_t col, const char **value, size_t *len);

/*
 * Appends the source row t as a JSON object {column: text or null} (dead
 * letters). Columns not sent (unchanged TOAST) are left out; bytes that are
 * not UTF-8 are read as LATIN1, so any source row becomes valid jsonb.
 */
void mapping_row_json(const RelInfo *rel, const Tuple *t, Buf *out);

#endif
