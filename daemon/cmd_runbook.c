/*
 * `tidemark runbook`: writes the migration runbook (migration/runbook.h).
 */
#include "config/config.h"
#include "core/error.h"
#include "core/log.h"
#include "daemon/cmd_util.h"
#include "daemon/commands.h"
#include "migration/runbook.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static void usage(FILE *out)
{
    fputs("Usage: tidemark runbook --config FILE [--output runbook.md]\n"
          "\n"
          "Writes the migration's runbook (Markdown) for an operator who did not build the\n"
          "pipeline: what moves, expected durations from the last three recorded cutover\n"
          "and rollback runs (rehearsals), the backup-and-restore check of the target,\n"
          "pre-checks, the exact commands, validation queries, sign-off criteria, the\n"
          "rollback procedure and the teardown. It reads the run records on both\n"
          "databases and changes nothing.\n"
          "\n"
          "Options:\n"
          "  -c, --config FILE   the forward pipeline's configuration (YAML)\n"
          "  -o, --output FILE   write it there (default: standard output)\n"
          "  -h, --help          show this help\n"
          "\n"
          "Exit status: 0 written, 1 on errors, 2 usage error.\n",
          out);
}

int cmd_runbook(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL, *output = NULL;
    Config *cfg = NULL;
    char *text = NULL;
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "c:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
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
    rc = cmd_load_config("runbook", path, argc, NULL, &cfg);
    if (rc != 0)
        return rc;
    log_init(LOG_FMT_TEXT, LOG_LVL_WARNING);
    rc = runbook_render(cfg, path, &text);
    if (rc == 0 && output)
        rc = cmd_write_file(output, text);
    else if (rc == 0)
        fputs(text, stdout);
    if (rc == 0 && output)
        printf("runbook written to %s\n", output);
    free(text);
    config_free(cfg);
    return rc < 0 ? cmd_die(NULL) : 0;
}
