/*
 * What the PostgreSQL sink knows of the target's tables: their kind
 * (partitioned ones are addressed without ONLY) and their columns' types
 * as format_type() spells them (set statements cast text arrays to them).
 * Read once per target session, before the session enters pipeline mode:
 * the stream never asks the catalog while it applies.
 */
#ifndef TM_PGTARGET_H
#define TM_PGTARGET_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct TargetColumn {
    char *name;
    char *type; /* format_type(atttypid, atttypmod) */
} TargetColumn;

/* A unique or exclusion index checked row by row: its columns by name. */
typedef struct TargetIndex {
    size_t ncols;
    char **cols;
    bool whole; /* an expression or a predicate: any column may matter */
} TargetIndex;

typedef struct TargetTable {
    char *schema;
    char *name;
    char relkind; /* 'r' or 'p' */
    size_t ncols;
    TargetColumn *cols;
    size_t nidx;
    TargetIndex *idx;
} TargetTable;

typedef struct TargetCatalog {
    TargetTable *tables; /* sorted by schema, name */
    size_t n;
} TargetCatalog;

/* Every ordinary and partitioned table outside the system schemas. */
int pgtarget_load(PGconn *conn, TargetCatalog *out);
void pgtarget_release(TargetCatalog *c);

/* NULL when the table was not there when the session started. */
const TargetTable *pgtarget_find(const TargetCatalog *c, const char *schema, const char *name);
/* The type of column col, or NULL. */
const char *pgtarget_column_type(const TargetTable *t, const char *col);

/*
 * Whether changing column col in many rows with one statement could trip a
 * uniqueness check halfway although the end state is valid (two rows swap
 * a unique value): col is in an index checked row by row that does not
 * contain every key column (such an index cannot see two rows collide).
 */
bool pgtarget_column_checked(const TargetTable *t, const char *col, const char *const *keys,
                             size_t nkeys);

#endif
