/*
 * Sink construction by target type. Adding a sink means one ops table and
 * one line here.
 */
#include "sinks/sink.h"
#include "core/error.h"
#include "sinks/kafka/kafkasink.h"
#include "sinks/pg/pgsink.h"

#include <string.h>

int sink_new(const Config *cfg, Sink **out)
{
    if (strcmp(cfg->target.type, "postgres") == 0) {
        *out = pgsink_new(cfg);
        return 0;
    }
    if (strcmp(cfg->target.type, "kafka") == 0) {
        *out = kafkasink_new(cfg);
        return 0;
    }
    return tm_fail(-EINVAL, "target.type \"%s\" is not supported", cfg->target.type);
}
