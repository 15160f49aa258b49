/*
 * Sequence synchronisation for cutover: every sequence of the schemas that
 * hold the pipeline's tables (serial columns, identity columns, standalone
 * sequences) is set on the target to the source's current value, so rows
 * inserted on the target after cutover do not collide with migrated ones.
 * Logical replication does not carry sequence values, hence this step.
 */
#ifndef TM_SEQUENCES_H
#define TM_SEQUENCES_H

#include "config/config.h"
#include "core/table.h"

#include <stdbool.h>
#include <stdio.h>

typedef struct SeqSyncResult {
    int synced;
    int missing; /* on the source but not on the target */
    int failed;  /* on the target but could not be set (each reported) */
} SeqSyncResult;

/*
 * Prints one line per sequence to out. With dry_run nothing is changed. A
 * sequence that is missing on the target or cannot be set there is reported
 * and counted, and the others are still set; only a failure of the run
 * itself (a lost connection, the source unreadable) returns an error.
 */
int sequences_sync(const Config *cfg, const TableSet *tabs, bool dry_run, FILE *out,
                   SeqSyncResult *res);

#endif
