/*
 * `tidemark teardown`: the end of a pipeline (migration/teardown.h).
 */
#include "config/config.h"
#include "core/error.h"
#include "core/log.h"
#include "daemon/cmd_util.h"
#include "daemon/commands.h"
#include "migration/teardown.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static void usage(FILE *out)
{
    fputs("Usage: tidemark teardown --config FILE [--purge-history]\n"
          "\n"
          "Removes the pipeline of FILE and its fallback pipeline <pipeline>_reverse from\n"
          "both databases: the replication slots (they keep WAL on their server while\n"
          "they exist), the publications, and their rows in schema tidemark. Refuses while\n"
          "a daemon streams from one of the slots. Running it again does nothing. The\n"
          "cutover and rollback records (tidemark.cutover_runs) stay as the migration's\n"
          "signed-off history, and a database that a cutover or rollback left read-only\n"
          "stays read-only (the output says how to change that).\n"
          "\n"
          "Options:\n"
          "  -c, --config FILE     the forward pipeline's configuration (YAML)\n"
          "      --purge-history   also delete the pipeline's cutover and rollback records\n"
          "  -h, --help            show this help\n"
          "\n"
          "Exit status: 0 when nothing of the pipeline is left, 1 on errors or while a\n"
          "daemon runs, 2 usage error.\n",
          out);
}

int cmd_teardown(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"purge-history", no_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    bool purge = false;
    Config *cfg = NULL;
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'P':
            purge = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    rc = cmd_load_config("teardown", path, argc, NULL, &cfg);
    if (rc != 0)
        return rc;
    log_init(LOG_FMT_TEXT, LOG_LVL_WARNING);
    setenv("PGOPTIONS", "-c default_transaction_read_only=off", 0);
    rc = teardown_run(cfg, purge, stdout);
    config_free(cfg);
    return rc < 0 ? cmd_die(NULL) : 0;
}
