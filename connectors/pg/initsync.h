/*
 * Initial copy of the rows a table already holds when a pipeline first
 * starts: COPY ... TO STDOUT on the source inside the snapshot exported by
 * the slot's creation, streamed into COPY ... FROM STDIN on the target, and
 * committed with the watermark set to the slot's consistent point, so the
 * stream continues exactly where the snapshot ends (invariant 3).
 */
#ifndef TM_INITSYNC_H
#define TM_INITSYNC_H

#include "connectors/pg/catalog.h"
#include "core/lsn.h"

#include <libpq-fe.h>

int initsync_run(PGconn *src, PGconn *dst, const SourceTables *tabs, const char *snapshot,
                 Lsn consistent, const char *pipeline);

#endif
