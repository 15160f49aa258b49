/*
 * The Kafka sink's own state: Kafka has no transactional table to hold a
 * watermark next to the data, so the replication slot's confirmed position
 * is the stream watermark, and the sink keeps only what the slot cannot
 * know: that the pipeline was initialised, per table whether its initial
 * copy was completely delivered and at which snapshot LSN, and the commit
 * LSN of a source transaction whose delivery failed, so a restart can check
 * that the slot still resends it. One small
 * JSON file, rewritten atomically (temporary file, fsync, rename, fsync of
 * the directory), so a crash leaves either the old or the new state.
 */
#ifndef TM_KSTATE_H
#define TM_KSTATE_H

#include "core/lsn.h"
#include "core/table.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct KStateTable {
    char *schema;
    char *name;
    bool synced;
    Lsn sync_lsn;
} KStateTable;

typedef struct KState {
    char *dir;
    char *path;
    char *pipeline;
    bool initialized;
    Lsn start_lsn;
    Lsn lost_lsn; /* a failed transaction's commit LSN; LSN_INVALID: none */
    size_t n;
    KStateTable *t;
} KState;

/* Reads dir/state.json (creating dir); no file means a first start. */
int kstate_load(KState *st, const char *dir, const char *pipeline);

/* Records the start position and every table as pending, replacing all else. */
int kstate_init(KState *st, Lsn start_lsn, const TableSet *tabs);

/* Whether schema.name's copy is complete (unknown tables are not). */
void kstate_table(const KState *st, const char *schema, const char *name, bool *synced,
                  Lsn *sync_lsn);

/* Marks schema.name synced at sync_lsn and writes the file. */
int kstate_set_synced(KState *st, const char *schema, const char *name, Lsn sync_lsn);

/*
 * Records that the transaction committed at lsn had a failed delivery (the
 * earliest such one is kept) and writes the file; LSN_INVALID clears it.
 */
int kstate_set_lost(KState *st, Lsn lsn);

/* Drops the entries of tables not in keep (they left the pipeline) and writes the file. */
int kstate_forget(KState *st, const TableSet *keep);

void kstate_release(KState *st);

#endif
