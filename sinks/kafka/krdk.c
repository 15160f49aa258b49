/*
 * See krdk.h.
 */
#include "sinks/kafka/krdk.h"
#include "core/error.h"
#include "core/log.h"
#include "core/lsn.h"

#include <errno.h>

int krdk_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value)
{
    char errstr[512];

    if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
        return tm_fail(-EINVAL, "Kafka setting %s=\"%s\": %s", key, value, errstr);
    return 0;
}

void krdk_on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    LogLevel lvl = level <= 3   ? LOG_LVL_ERROR
                   : level == 4 ? LOG_LVL_WARNING
                   : level == 5 ? LOG_LVL_NOTICE
                   : level == 6 ? LOG_LVL_INFO
                                : LOG_LVL_DEBUG;

    (void)rk;
    log_write(lvl, NULL, LSN_INVALID, "kafka %s: %s", fac, buf);
}
