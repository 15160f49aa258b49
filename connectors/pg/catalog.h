/*
 * Source catalog introspection: which tables the pipeline replicates, their
 * replicated columns and replica identity, and the publication that makes
 * pgoutput send them. All checks that would otherwise surprise an operator
 * mid-migration (a table the source could no longer UPDATE once published,
 * a missing table) happen here, before anything is created.
 */
#ifndef TM_CATALOG_H
#define TM_CATALOG_H

#include "config/config.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct SourceTable {
    uint32_t oid;
    char *schema;
    char *name;
    char *display; /* schema.name for messages */
    char replident;
    char relkind; /* 'r' table, 'p' partitioned */
    bool has_pk;
    bool has_ident_index;
    size_t ncols; /* replicated columns: not dropped, not generated */
    char **cols;
} SourceTable;

typedef struct SourceTables {
    size_t n;
    SourceTable *t;
} SourceTables;

int catalog_resolve(PGconn *src, const Config *cfg, SourceTables *out);
void catalog_tables_release(SourceTables *tabs);

/*
 * Refuses tables whose UPDATE/DELETE the source would reject once they are
 * published (no primary key and no usable replica identity).
 */
int catalog_check_identity(const SourceTables *tabs);

/*
 * Creates the publication, or checks it publishes exactly tabs. With
 * may_alter, a different table set is corrected (first start); otherwise it
 * is an error, since adding a table to a running pipeline needs its rows
 * copied first.
 */
int catalog_sync_publication(PGconn *src, const char *pubname, const SourceTables *tabs,
                             bool may_alter);

/* Each table must exist on the target; with require_empty, hold no rows. */
int catalog_check_target(PGconn *dst, const SourceTables *tabs, bool require_empty);

#endif
