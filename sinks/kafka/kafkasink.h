/*
 * The Kafka sink: every source change as a Debezium-compatible event on a
 * topic per table, produced with librdkafka (idempotent, acks=all, retried
 * forever). The replication slot is the watermark: durable() advances only
 * to the end of a source transaction whose messages, and every earlier
 * one's, have successful delivery reports, so a crash replays from the slot
 * (at-least-once, in order per key). See docs/KAFKA.md.
 */
#ifndef TM_KAFKASINK_H
#define TM_KAFKASINK_H

#include "sinks/sink.h"

Sink *kafkasink_new(const Config *cfg);

/*
 * The topic for schema.table: template (NULL: "{prefix}.{schema}.{table}")
 * expanded, every character Kafka does not allow in a topic name replaced by
 * '_' as Debezium does. Returns NULL (tm_error() set) when the result is
 * empty or longer than Kafka's 249 characters. malloc'd.
 */
char *kafkasink_topic_name(const char *tmpl, const char *prefix, const char *schema,
                           const char *table);

#endif
