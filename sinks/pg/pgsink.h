/*
 * The PostgreSQL sink: applies source transactions to the target over one
 * libpq connection in pipeline mode, grouping consecutive source
 * transactions into one target transaction (a batch) that also upserts the
 * pipeline's watermark (invariant 2); loads initial copies through COPY
 * FROM STDIN sessions that record each table's sync LSN in the same
 * transaction. State lives in schema tidemark on the target.
 */
#ifndef TM_PGSINK_H
#define TM_PGSINK_H

#include "sinks/sink.h"

Sink *pgsink_new(const Config *cfg);

#endif
