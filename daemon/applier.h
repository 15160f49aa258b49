/*
 * `tidemark apply`: the other half of the Kafka path. Reads tidemark's
 * topics (Debezium envelopes, docs/KAFKA.md) as one member of a consumer
 * group and applies them to a PostgreSQL target through the PostgreSQL
 * sink's pipelined apply, exactly once: each batch stores the consumed
 * offsets in the target with its rows (docs/SCALE.md). Any number of
 * appliers, on any number of machines, share the topics' partitions.
 */
#ifndef TM_APPLIER_H
#define TM_APPLIER_H

#include "config/config.h"

/* Runs until SIGTERM/SIGINT (0) or a failure (< 0, tm_error() set). */
int applier_run(Config *cfg);

#endif
