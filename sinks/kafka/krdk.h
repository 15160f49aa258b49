/*
 * What the Kafka producer (the sink) and the consumer (`tidemark apply`)
 * share of librdkafka: setting a configuration property with tidemark's
 * error contract, and librdkafka's log lines routed into tidemark's log.
 */
#ifndef TM_KRDK_H
#define TM_KRDK_H

#include <librdkafka/rdkafka.h>

/* 0, or -EINVAL with the property, its value and librdkafka's reason. */
int krdk_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value);

/* A log callback (rd_kafka_conf_set_log_cb): syslog levels to tidemark's. */
void krdk_on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

#endif
