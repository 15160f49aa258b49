/*
 * The PostgreSQL sink: applies source transactions to the target over one
 * libpq connection in pipeline mode, grouping consecutive source
 * transactions into one target transaction (a batch) that also upserts the
 * pipeline's watermark (invariant 2). A batch becomes durable when its Sync
 * result arrives; only then does pgsink_durable() advance, and only that LSN
 * may be confirmed to the source (invariant 1).
 */
#ifndef TM_PGSINK_H
#define TM_PGSINK_H

#include "config/config.h"
#include "core/change.h"
#include "core/relcache.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct PgSink PgSink;

PgSink *pgsink_new(const Config *cfg);
void pgsink_free(PgSink *s);

/*
 * Connects (blocking), sets the apply session up and creates the tidemark
 * state schema. client_encoding must be the source's server encoding.
 */
int pgsink_connect(PgSink *s, const char *client_encoding);
void pgsink_disconnect(PgSink *s);
PGconn *pgsink_conn(PgSink *s);

int pgsink_read_watermark(PgSink *s, bool *found, Lsn *lsn);

/* Switches the connection to non-blocking pipeline mode for streaming. */
int pgsink_start_pipeline(PgSink *s, Lsn durable);

int pgsink_txn_begin(PgSink *s, const TxnInfo *txn);
int pgsink_apply(PgSink *s, RelEntry *rel, const Change *chg, const TxnInfo *txn);
int pgsink_truncate(PgSink *s, RelEntry **rels, uint32_t nrels, uint8_t flags);
int pgsink_txn_commit(PgSink *s, const TxnInfo *txn);

/* Closes the open batch with watermark + COMMIT + Sync; no-op without one. */
int pgsink_close_batch(PgSink *s);
/* Rolls the open batch back (a source transaction was cut off). */
int pgsink_abort_batch(PgSink *s);
/* Advances the watermark alone (idle stream, nothing in flight). */
int pgsink_idle_watermark(PgSink *s, Lsn lsn);

/* Reads and checks results; returns a negative code on any apply error. */
int pgsink_process(PgSink *s);
/* Sends queued output; 1 while more remains. */
int pgsink_flush(PgSink *s);
/* Blocks until every queued command has its result. */
int pgsink_drain(PgSink *s);

Lsn pgsink_durable(const PgSink *s);
PgTime pgsink_durable_commit_time(const PgSink *s);
size_t pgsink_inflight(const PgSink *s);
size_t pgsink_inflight_bytes(const PgSink *s);
bool pgsink_batch_open(const PgSink *s);
size_t pgsink_batch_changes(const PgSink *s);
int pgsink_socket(const PgSink *s);

#endif
