/*
 * `tidemark preflight`: every problem before a migration starts, at once
 * (migration/preflight.h). The exit code is the worst finding.
 */
#include "config/config.h"
#include "core/error.h"
#include "core/log.h"
#include "daemon/cmd_util.h"
#include "daemon/commands.h"
#include "migration/preflight.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fputs("Usage: tidemark preflight --config FILE [--format text|json|markdown] [--output F]\n"
          "\n"
          "Checks both databases and this host before a migration and reports every problem\n"
          "in one run, each with how to fix it: wal_level, free replication slots and WAL\n"
          "senders, roles and privileges on both sides (streaming, copy, cutover freeze,\n"
          "fallback), every table's existence, key or replica identity, target emptiness,\n"
          "extensions, encodings, sequences, materialized views, disk headroom for the WAL\n"
          "the slot will retain, the metrics port, clock skew. It creates nothing: no slot,\n"
          "no publication, no schema.\n"
          "\n"
          "Options:\n"
          "  -c, --config FILE     pipeline configuration (YAML)\n"
          "  -f, --format FMT      text (default), json or markdown\n"
          "  -o, --output FILE     write the report there instead of standard output\n"
          "  -h, --help            show this help\n"
          "\n"
          "Exit status: 0 no problem (notes at most), 3 warnings, 4 errors (do not start),\n"
          "1 the configuration cannot be loaded, 2 usage error.\n",
          out);
}

int cmd_preflight(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL, *format = "text", *output = NULL;
    Config *cfg = NULL;
    json_t *report = NULL;
    char *text;
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "c:f:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'f':
            format = optarg;
            break;
        case 'o':
            output = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (!path || optind < argc ||
        (strcmp(format, "text") && strcmp(format, "json") && strcmp(format, "markdown") &&
         strcmp(format, "md"))) {
        fprintf(stderr, "tidemark preflight: %s\n",
                !path           ? "--config FILE is required"
                : optind < argc ? "unexpected argument"
                                : "--format: use text, json or markdown");
        return EXIT_USAGE;
    }
    if (config_load(path, &cfg) < 0)
        return cmd_die(NULL);
    log_init(LOG_FMT_TEXT, LOG_LVL_ERROR);
    rc = preflight_run(cfg, &report);
    config_free(cfg);
    if (rc < 0)
        return cmd_die(NULL);
    text = preflight_render(report, format);
    rc = output ? cmd_write_file(output, text) : (fputs(text, stdout), 0);
    free(text);
    switch (preflight_worst(report)) {
    case PF_ERROR:
        c = PREFLIGHT_EXIT_ERROR;
        break;
    case PF_WARNING:
        c = PREFLIGHT_EXIT_WARNING;
        break;
    default:
        c = 0;
    }
    json_decref(report);
    return rc < 0 ? cmd_die(NULL) : c;
}
