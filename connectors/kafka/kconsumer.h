/*
 * The Kafka consumer of `tidemark apply`: a librdkafka consumer in a consumer
 * group (source.group) subscribed to tidemark's topics (source.topics, or
 * every topic named <topic_prefix>.*), driven from the daemon's one libev
 * loop: every librdkafka event (messages, rebalances, errors, logs) goes to
 * the consumer queue, which signals a pipe the loop watches. Offsets are not
 * Kafka's business here: the applier stores them in the target with the rows
 * and positions each partition itself (pause, seek, resume); commits to
 * Kafka are advisory (for lag tools).
 */
#ifndef TM_KCONSUMER_H
#define TM_KCONSUMER_H

#include "config/config.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>

typedef struct KConsumer KConsumer;

/*
 * A rebalance, called from kconsumer_poll() on the loop thread: parts were
 * given to this member (not assigned yet: the caller assigns them with
 * kconsumer_assign once it knows where each starts), or revoked (lost: the
 * group moved on without this member).
 */
typedef void (*KcRebalanceFn)(void *arg, bool assigned,
                              const rd_kafka_topic_partition_list_t *parts, bool lost);

int kconsumer_new(const Config *cfg, KcRebalanceFn fn, void *arg, KConsumer **out);

/* Closes the group membership (revoking through the callback) and frees; NULL is fine. */
void kconsumer_free(KConsumer *kc);

/* The descriptor the loop watches: readable when the consumer queue has events. */
int kconsumer_fd(const KConsumer *kc);

/*
 * Serves events; returns 1 with *out the next message (destroy it with
 * rd_kafka_message_destroy), 0 when the queue is empty, or a negative code
 * on a fatal consumer error (offsets out of range: data deleted before it
 * was applied; a fatal librdkafka error).
 */
int kconsumer_poll(KConsumer *kc, rd_kafka_message_t **out);

/*
 * The pipe signals only when the queue turns non-empty: a caller that stops
 * polling with messages left calls this to be woken again.
 */
void kconsumer_wake(KConsumer *kc);

/*
 * Assigns parts, each from its .offset. With the eager protocol (range,
 * roundrobin) parts must be the whole assignment the group gave.
 */
int kconsumer_assign(KConsumer *kc, rd_kafka_topic_partition_list_t *parts);

/* Whether the group's protocol is eager (whole assignments) rather than cooperative. */
bool kconsumer_eager(KConsumer *kc);

/* Moves each (assigned) partition of parts to its .offset and resumes it. */
int kconsumer_start_at(KConsumer *kc, rd_kafka_topic_partition_list_t *parts);

/* Pauses parts: nothing more of them is delivered until kconsumer_start_at(). */
void kconsumer_pause(KConsumer *kc, rd_kafka_topic_partition_list_t *parts);

/* Advisory commit of offsets (the next offset to consume), asynchronous. */
void kconsumer_commit(KConsumer *kc, const rd_kafka_topic_partition_list_t *offsets);

/* The number of partitions of topic (0: unknown); from cached metadata. */
int kconsumer_partition_count(KConsumer *kc, const char *topic);

/* A partition of the applier's topics and its end (the offset the next message gets). */
typedef struct KMark {
    char *topic;
    int32_t partition;
    int64_t high;
} KMark;

/*
 * The high watermark of every partition of the topics cfg's appliers read
 * (source.topics, or every topic named <topic_prefix>.*), from the brokers
 * (blocking: for `tidemark verify`, not the loop). Free with kafka_marks_free.
 */
int kafka_high_watermarks(const Config *cfg, KMark **out, size_t *n);
void kafka_marks_free(KMark *marks, size_t n);

#endif
