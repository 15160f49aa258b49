/*
 * The sink interface: what the pipeline needs from any destination
 * (PostgreSQL, Kafka, ...). Two paths:
 *
 *  - the stream: source transactions arrive as begin / row changes / commit;
 *    the sink groups them into batches and reports, through durable(), the
 *    end LSN up to which everything is safely stored. Only that LSN may be
 *    confirmed to the source (invariant 1). Work is asynchronous: the pipeline
 *    polls socket() and calls process() / flush() from its loop.
 *  - the copy: a copy session loads one table (or part) from COPY text rows;
 *    sessions are independent so parallel copy workers may each open one.
 *
 * Every function returns 0 or a negative errno-style code with tm_error() set.
 * The copy functions, table_state, check_table and the parts functions are
 * called from table-sync worker threads, concurrently with the stream
 * functions on the main thread: they must not share the stream's session.
 */
#ifndef TM_SINK_H
#define TM_SINK_H

#include "config/config.h"
#include "core/change.h"
#include "core/relcache.h"
#include "core/table.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct Sink Sink;
typedef struct SinkCopy SinkCopy;

typedef struct SinkOps {
    const char *name;
    /*
     * Batches are target transactions that abort_batch rolls back: the
     * pipeline never leaves one open while it waits (it rolls back and
     * replays from durable() instead).
     */
    bool transactional;
    void (*free)(Sink *s);
    /* Blocking setup; client_encoding is the source's server encoding. */
    int (*connect)(Sink *s, const char *client_encoding);
    /*
     * The stored position: *found false on a pipeline's first start. A sink
     * that relies on the slot's confirmed position (Kafka) returns
     * *found true with *lsn LSN_INVALID once initialised.
     */
    int (*read_position)(Sink *s, bool *found, Lsn *lsn);
    /*
     * First start: records the stream's start position and every table as
     * pending copy, atomically, before any row is copied.
     */
    int (*init_position)(Sink *s, Lsn lsn, const TableSet *tabs);
    /* Whether t's initial copy is done, and the LSN of the snapshot it used. */
    int (*table_state)(Sink *s, const TableDef *t, bool *synced, Lsn *sync_lsn);
    /* Checks t can receive rows (exists; with require_empty, holds none). */
    int (*check_table)(Sink *s, const TableDef *t, bool require_empty);
    /* Optional: check_table for every table of tabs, cheaper than one by one. */
    int (*check_tables)(Sink *s, const TableSet *tabs, bool require_empty);
    /* Enters streaming mode: durable() starts at lsn. */
    int (*start)(Sink *s, Lsn lsn);

    int (*txn_begin)(Sink *s, const TxnInfo *txn);
    int (*apply)(Sink *s, RelEntry *rel, const Change *chg, const TxnInfo *txn);
    int (*truncate)(Sink *s, RelEntry **rels, uint32_t nrels, uint8_t flags, const TxnInfo *txn);
    /*
     * Optional: records a row change that could not be transformed (mapping
     * on_error: dead_letter) in the same target transaction as the batch:
     * the full source row of chg (src_rel's shape), the error, the source
     * transaction's LSN and xid. Sinks without it cannot take dead letters.
     */
    int (*dead_letter)(Sink *s, const RelEntry *src_rel, const Change *chg, const TxnInfo *txn,
                       const char *error);
    int (*txn_commit)(Sink *s, const TxnInfo *txn);
    /*
     * Optional: sends what the sink gathered for the open batch. Called
     * before a Relation message replaces a relation's shape (the gathered
     * changes refer to the old one).
     */
    int (*barrier)(Sink *s);
    int (*close_batch)(Sink *s);
    int (*abort_batch)(Sink *s);
    /* Nothing received is open: everything up to lsn may become durable. */
    int (*idle_position)(Sink *s, Lsn lsn);

    int (*process)(Sink *s);
    int (*flush)(Sink *s); /* 1 while output remains queued */
    int (*drain)(Sink *s);
    int (*socket)(const Sink *s);
    Lsn (*durable)(const Sink *s);
    size_t (*inflight)(const Sink *s);
    size_t (*inflight_bytes)(const Sink *s);
    size_t (*batch_changes)(const Sink *s);
    /*
     * Optional: a closed batch is still being checked before its commit; no
     * transaction may begin (txn_begin fails) until this turns false, which
     * process() does once the checks are in.
     */
    bool (*gated)(const Sink *s);

    /*
     * Copy sessions: rows are COPY text-format lines, each ending in '\n'.
     * sync_lsn is the LSN of the snapshot the rows come from; finishing with
     * commit makes the rows durable together with "t is synced at sync_lsn".
     */
    int (*copy_open)(Sink *s, const TableDef *t, Lsn sync_lsn, SinkCopy **out);
    int (*copy_rows)(SinkCopy *c, const char *data, size_t len);
    int (*copy_finish)(SinkCopy *c, bool commit);
    void (*copy_free)(SinkCopy *c);

    /*
     * Optional: split copies. parts_load returns the stored plan (*n 0: none).
     * parts_plan replaces it with parts, all pending, and with reset also
     * empties t on the target (parts that share a snapshot start over
     * together). copy_open_part is copy_open for one part: finishing with
     * commit marks that part synced at sync_lsn. Sinks without these copy
     * every table whole. target (NULL: t itself) is the table and columns
     * the rows go to when a mapping reshapes them; the copy state stays
     * keyed by the source table t.
     */
    int (*parts_load)(Sink *s, const TableDef *t, CopyPart **parts, int *n);
    int (*parts_plan)(Sink *s, const TableDef *t, const CopyPart *parts, int n, bool reset);
    int (*copy_open_part)(Sink *s, const TableDef *t, const TableDef *target, const CopyPart *part,
                          Lsn sync_lsn, SinkCopy **out);
    /*
     * Optional: whether t's target table has an index led by the column key
     * (t's split key; with a mapping, the target's single key column).
     * Parts of one table copied at once would insert into such an index at
     * several places together, each of them splitting pages in the middle:
     * slower than one COPY appending at its right edge. Without this op
     * tables are split.
     */
    int (*copy_key_indexed)(Sink *s, const TableDef *t, const char *key, bool *indexed);
    /*
     * Optional: a copy worker found no work left; the sink may close what it
     * keeps for the copy functions (idle sessions). Called from any worker.
     */
    void (*copy_idle)(Sink *s);
    /*
     * Optional: a copied row that could not be transformed (on_error:
     * dead_letter), as the JSON of its source row; stored in the copy's
     * transaction when it commits.
     */
    int (*copy_dead_letter)(SinkCopy *c, const char *row_json, const char *error);
    /* Optional: drops the copy state of tables no longer in keep. */
    int (*forget_tables)(Sink *s, const TableSet *keep);

    /*
     * Optional: which slot this pipeline's first start created, so that a
     * later first start can tell a slot it left behind from anyone else's.
     * record_slot is called before the slot is created (created_at
     * LSN_INVALID) and again with its consistent point; recorded_slot reads
     * it back (*slot NULL: none; malloc'd). Without them a first start never
     * drops an existing slot.
     */
    int (*record_slot)(Sink *s, const char *slot, Lsn created_at);
    int (*recorded_slot)(Sink *s, char **slot, Lsn *created_at);
} SinkOps;

struct Sink {
    const SinkOps *ops;
    const Config *cfg;
};

/* Creates the sink named by cfg->target.type. */
int sink_new(const Config *cfg, Sink **out);

static inline void sink_free(Sink *s)
{
    if (s)
        s->ops->free(s);
}

#endif
