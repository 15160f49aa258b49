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
} SeqSyncResult;

/* Prints one line per sequence to out. With dry_run nothing is changed. */
int sequences_sync(const Config *cfg, const TableSet *tabs, bool dry_run, FILE *out,
                   SeqSyncResult *res);

#endif
