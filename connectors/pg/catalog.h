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
 * An existing one is also made to publish every kind of change, under the
 * partitioned tables' names, without row filters or column lists.
 * *created (may be NULL) says whether this call created it.
 */
int catalog_sync_publication(PGconn *src, const char *pubname, const TableSet *tabs, bool *created);
/* For a first start that failed after creating the publication. */
int catalog_drop_publication(PGconn *src, const char *pubname);

/*
 * The materialized views the tables feed (directly, or through views and
 * other materialized views). Logical replication carries no materialized
 * view: each must be refreshed on the target at cutover.
 */
typedef struct CatalogMatview {
    char *display; /* schema.name */
    char *fed_by;  /* the tables of tabs it reads, "schema.name, ..." */
    bool populated;
} CatalogMatview;

int catalog_matviews(PGconn *src, const TableSet *tabs, CatalogMatview **out, size_t *n);
void catalog_matviews_free(CatalogMatview *m, size_t n);

/*
 * Every materialized view of the schemas that hold tabs, in creation order
 * (a view built on another one comes after it), as names to quote: what
 * cutover refreshes on the new side (catalog_matviews above is the profile's
 * view of which ones the tables feed). *out holds *n entries whose schema
 * and name are malloc'd, as is the array.
 */
int catalog_schema_matviews(PGconn *conn, const TableSet *tabs, TableName **out, size_t *n);

#endif
