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
#include "core/table.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

int catalog_resolve(PGconn *src, const Config *cfg, TableSet *out);

/*
 * Refuses tables whose UPDATE/DELETE the source would reject once they are
 * published (no primary key and no usable replica identity).
 */
int catalog_check_identity(const TableSet *tabs);

/*
 * Creates the publication, or sets it to publish exactly tabs: tables added
 * to the config are copied by the workers, removed ones stop being applied.
 */
int catalog_sync_publication(PGconn *src, const char *pubname, const TableSet *tabs);

/*
 * The materialized views of the schemas that hold tabs, in creation order
 * (a view built on another one comes after it): *out holds *n entries whose
 * schema and name are malloc'd, as is the array. Logical replication does
 * not carry them: cutover refreshes them on the new side.
 */
int catalog_matviews(PGconn *conn, const TableSet *tabs, TableName **out, size_t *n);

#endif
