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

/*
 * For a caller that keeps its own position in the target instead of the
 * pipeline's watermark (the Kafka applier: consumed offsets per partition):
 * batches then write no watermark, idle_position does nothing, and durable()
 * reports the largest TxnInfo.end_lsn of a committed batch, whatever the
 * caller counts in it. Call before start().
 */
void pgsink_own_position(Sink *s);

/*
 * Queues sql (parameters as text) into the open batch, before its gate: the
 * statement must affect exactly one row, checked with the batch's other
 * results before COMMIT, like the watermark. If it does not, the batch rolls
 * back and process() fails with -ESTALE naming what ("the offsets of ...").
 */
int pgsink_batch_position(Sink *s, const char *sql, int nparams, const char *const *params,
                          const char *what);

#endif
