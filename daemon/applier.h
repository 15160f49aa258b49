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
#include "core/lsn.h"

#include <libpq-fe.h>

/* Runs until SIGTERM/SIGINT (0) or a failure (< 0, tm_error() set). */
int applier_run(Config *cfg);

/*
 * `tidemark verify` of a target fed through Kafka (VerifyOptions.wait_target):
 * waits until the target holds every source transaction committed up to lsn
 * -- the producing pipeline's slot (source.slot) confirmed lsn, so all of
 * them are in Kafka, and the group's offsets in tidemark.kafka_offsets
 * reached every partition's end as it was then.
 */
int applier_verify_wait(const Config *cfg, PGconn *dst, Lsn lsn, long timeout_s,
                        const volatile int *cancel);

#endif
