/*
 * `tidemark apply`: parses its options, loads the config (source.type:
 * kafka) and runs one applier of the consumer group (daemon/applier.h) until
 * SIGTERM or SIGINT. Any number of them may run, on any number of machines.
 */
#include "config/config.h"
#include "core/error.h"
#include "core/log.h"
#include "daemon/applier.h"
#include "daemon/commands.h"

#include <getopt.h>
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
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"log-level", required_argument, NULL, 'l'},
        {"log-format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL, *level_s = NULL, *format_s = NULL;
    LogLevel level;
    LogFormat format;
    Config *cfg = NULL;
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'l':
            level_s = optarg;
            break;
        case 'f':
            format_s = optarg;
            break;
        case 'h':
            usage_apply(stdout);
            return 0;
        default:
            usage_apply(stderr);
            return EXIT_USAGE;
        }
    }
    if (!path || optind < argc) {
        fprintf(stderr, "tidemark apply: %s\n",
                !path ? "--config FILE is required" : "unexpected argument");
        usage_apply(stderr);
        return EXIT_USAGE;
    }
    if (config_load(path, &cfg) < 0)
        return cmd_die(NULL);
    if (strcmp(cfg->source.type, "kafka") != 0) {
        config_free(cfg);
        fprintf(stderr,
                "tidemark apply: %s: source.type is %s; `tidemark apply` reads a Kafka"
                " source (source.type: kafka), `tidemark run` a PostgreSQL one\n",
                path, "postgres");
        return 1;
    }
    if (log_level_parse(level_s ? level_s : cfg->log.level, &level) < 0 ||
        log_format_parse(format_s ? format_s : cfg->log.format, &format) < 0) {
        config_free(cfg);
        return cmd_die(NULL);
    }
    log_init(format, level);
    log_set_pipeline(cfg->pipeline);
    rc = applier_run(cfg);
    config_free(cfg);
    return rc < 0 ? cmd_die(NULL) : 0;
}
