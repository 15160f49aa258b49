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
 * Creates the publication, or checks it publishes exactly tabs. With
 * may_alter, a different table set is corrected (first start); otherwise it
 * is an error, since adding a table to a running pipeline needs its rows
 * copied first.
 */
int catalog_sync_publication(PGconn *src, const char *pubname, const TableSet *tabs,
                             bool may_alter);

#endif
