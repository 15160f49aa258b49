/*
 * `tidemark apply`: parses its options, loads the config (source.type:
 * kafka) and runs one applier of the consumer group (daemon/applier.h) until
 * SIGTERM or SIGINT. Any number of them may run, on any number of machines.
 */
#include "config/config.h"
#include "core/error.h"
#include "core/log.h"
#include "daemon/applier.h"
#include "daemon/cmd_util.h"
#include "daemon/commands.h"

#include <stdio.h>
#include <string.h>

static void usage_apply(FILE *out)
{
    fputs("Usage: tidemark apply --config FILE [OPTIONS]\n"
          "\n"
          "Reads tidemark's Kafka topics (source.type: kafka; written by `tidemark run`\n"
          "with target.type: kafka) as a member of consumer group source.group and applies\n"
          "every change to the PostgreSQL target exactly once: each batch commits the\n"
          "consumed offsets (tidemark.kafka_offsets) with its rows, and every start or\n"
          "rebalance resumes from them. Run as many as the topics have partitions, on any\n"
          "machines (docs/SCALE.md). SIGTERM or SIGINT commits what is applied and leaves\n"
          "the group (exit 0).\n"
          "\n"
          "Options:\n"
          "  -c, --config FILE       applier configuration (YAML)\n"
          "      --log-level LEVEL   error, warning, notice, info, debug (overrides log.level)\n"
          "      --log-format FMT    auto, text, json, journal (overrides log.format)\n"
          "  -h, --help              show this help\n",
          out);
}

int cmd_apply(int argc, char **argv)
{
    Config *cfg;
    int rc;

    if (!cmd_service_start("apply", argc, argv, usage_apply, &cfg, &rc))
        return rc;
    if (strcmp(cfg->source.type, "kafka") != 0) {
        fprintf(stderr,
                "tidemark apply: %s: source.type is %s; `tidemark apply` reads a Kafka"
                " source (source.type: kafka), `tidemark run` a PostgreSQL one\n",
                cfg->path, cfg->source.type);
        config_free(cfg);
        return 1;
    }
    rc = applier_run(cfg);
    config_free(cfg);
    return rc < 0 ? cmd_die(NULL) : 0;
}
