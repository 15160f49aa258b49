/*
 * The tidemark command line: dispatches subcommands, parses their options,
 * loads the config and reports failures as one line on stderr with a
 * non-zero exit code. Long-running work lives in the modules it calls.
 */
#include "config/config.h"
#include "core/error.h"
#include "core/log.h"
#include "daemon/cmd_util.h"
#include "daemon/commands.h"
#include "daemon/pipeline.h"
#include "tm_version.h"

#include <stdio.h>
#include <string.h>

static const Command commands[] = {
    {"run", "run one pipeline in the foreground until SIGTERM/SIGINT", cmd_run},
    {"apply", "apply tidemark's Kafka topics to PostgreSQL, in a consumer group", cmd_apply},
    {"sync-sequences", "set target sequences from the source (cutover)", cmd_sync_sequences},
    {"profile", "profile the source data before migrating it (report, baseline)", cmd_profile},
    {"status", "show where the pipeline stands (tables, lag, slot, errors)", cmd_status},
    {"verify", "prove the target matches the source row by row, even while streaming", cmd_verify},
    {"dead-letter", "list or replay the rows a mapping could not transform", cmd_dead_letter},
    {"resume", "lift the halt a divergence put on the pipeline, after a repair", cmd_resume},
    {"preflight", "check both sides before a migration: every problem at once", cmd_preflight},
    {"cutover", "switch the application to the target, nothing lost (fallback kept)", cmd_cutover},
    {"rollback", "switch back to the source after a cutover, nothing lost", cmd_rollback},
    {"teardown", "drop the pipeline's slots, publications and state", cmd_teardown},
    {"runbook", "write the migration runbook from the config and recorded runs", cmd_runbook},
    /* further commands register here */
};

static void usage_main(FILE *out)
{
    fputs("Usage: tidemark COMMAND [OPTIONS]\n"
          "\n"
          "Change-data-capture sync for PostgreSQL migrations: tails logical replication\n"
          "from a source and applies every change to a target, exactly once.\n"
          "\n"
          "Commands:\n",
          out);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-15s %s\n", commands[i].name, commands[i].summary);
    fputs("\n"
          "Options:\n"
          "  -h, --help     show this help\n"
          "  -V, --version  show the version\n"
          "\n"
          "Run 'tidemark COMMAND --help' for a command's options.\n",
          out);
}

static void usage_run(FILE *out)
{
    fputs("Usage: tidemark run --config FILE [OPTIONS]\n"
          "\n"
          "Runs the pipeline described by FILE: on first start it creates the publication\n"
          "and the slot on the source and copies the rows the tables already hold; then it\n"
          "streams every change to the target, with the watermark committed in the same\n"
          "target transaction as the data. SIGTERM or SIGINT stops it cleanly (exit 0).\n"
          "\n"
          "Options:\n"
          "  -c, --config FILE       pipeline configuration (YAML)\n"
          "      --log-level LEVEL   error, warning, notice, info, debug (overrides log.level)\n"
          "      --log-format FMT    auto, text, json, journal (overrides log.format)\n"
          "  -h, --help              show this help\n",
          out);
}

int cmd_die(const char *what)
{
    fprintf(stderr, "tidemark: %s%s%s\n", what ? what : "", what && *tm_error() ? ": " : "",
            tm_error());
    return 1;
}

int cmd_run(int argc, char **argv)
{
    Config *cfg;
    int rc;

    if (!cmd_service_start("run", argc, argv, usage_run, &cfg, &rc))
        return rc;
    if (strcmp(cfg->source.type, "kafka") == 0) {
        fprintf(stderr,
                "tidemark run: %s: a Kafka source (source.type: kafka) is read by"
                " `tidemark apply`\n",
                cfg->path);
        config_free(cfg);
        return 1;
    }
    rc = pipeline_run(cfg);
    if (rc < 0) {
        /* Once: the log line (its format, stderr or the journal) is the message. */
        log_error("%s", tm_error());
        config_free(cfg);
        return 1;
    }
    config_free(cfg);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage_main(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage_main(stdout);
        return 0;
    }
    if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("tidemark %s\n", TM_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "tidemark: unknown command \"%s\" (see 'tidemark --help')\n", argv[1]);
    return EXIT_USAGE;
}
