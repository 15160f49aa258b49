/*
 * Initial copy of the rows tables hold: COPY ... TO STDOUT on the source
 * inside an exported snapshot whose LSN is exact (from creating a slot),
 * streamed row by row into a sink copy session that commits the rows together
 * with "this table is synced at that LSN" (invariant 3). Stream changes of the
 * table committed before that LSN are then skipped, later ones applied.
 */
#ifndef TM_INITSYNC_H
#define TM_INITSYNC_H

#include "core/table.h"
#include "sinks/sink.h"

#include <libpq-fe.h>

/* Copies tables[0..n) in snapshot (valid while its exporting session idles). */
int initsync_copy(PGconn *src, Sink *sink, TableDef *const *tables, size_t n, const char *snapshot,
                  Lsn sync_lsn);

#endif
