/*
 * `tidemark cutover` and `tidemark rollback`: the two directions of one
 * operation (migration/switch.h). This file parses the options, turns
 * SIGINT/SIGTERM into a flag the run polls (so Ctrl-C aborts it cleanly
 * before the switch), and makes every session the run opens read-write even
 * on a database tidemark itself froze.
 */
#include "config/config.h"
#include "core/error.h"
#include "core/log.h"
#include "daemon/cmd_util.h"
#include "daemon/commands.h"
#include "migration/switch.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile int interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *out, SwitchKind kind)
{
    if (kind == SWITCH_CUTOVER)
        fputs("Usage: tidemark cutover --config FILE [OPTIONS]\n"
              "\n"
              "Moves the application from the source to the target with nothing lost. With\n"
              "the pipeline's daemon running: locks the migrated tables on the source (writers\n"
              "wait, readers go on), drains to zero lag, sets the target's sequences, refreshes\n"
              "its materialized views, verifies every table, creates the fallback pipeline\n"
              "<pipeline>_reverse (a slot on the target at this exact point, its config file),\n"
              "then switches: the source database becomes read-only, the switch is recorded\n"
              "and signed off on the target, the forward slot is dropped (the daemon stops).\n"
              "Any failure, SIGINT or SIGTERM before the switch undoes everything: the source\n"
              "is writable again and the pipeline goes on streaming. See docs/CUTOVER.md.\n",
              out);
    else
        fputs("Usage: tidemark rollback --config FILE [OPTIONS]\n"
              "\n"
              "Moves the application back to the source after a cutover, with nothing lost.\n"
              "FILE is the forward pipeline's configuration. With the fallback pipeline\n"
              "<pipeline>_reverse running: locks the tables on the new side, drains the\n"
              "fallback stream, sets the old side's sequences, refreshes its materialized\n"
              "views, verifies, re-creates the forward pipeline at this exact point (start\n"
              "it again to keep the new side current), then switches: the new database\n"
              "becomes read-only, the old one writable. Any failure, SIGINT or SIGTERM before\n"
              "the switch undoes everything. See docs/CUTOVER.md.\n",
              out);
    fputs("\n"
          "Options:\n"
          "  -c, --config FILE        the forward pipeline's configuration (YAML)\n",
          out);
    if (kind == SWITCH_CUTOVER)
        fputs("      --reverse-config F   where to write the fallback pipeline's configuration\n"
              "                           (default: <pipeline>_reverse.yaml beside FILE)\n"
              "      --no-fallback        no fallback pipeline (then no rollback either)\n",
              out);
    fputs("      --lock-timeout MS    how long to wait for the table locks (default 10000)\n"
          "      --drain-timeout S    how long to wait for zero lag (default 300)\n"
          "      --note TEXT          recorded with the run (\"rehearsal 2 on staging\")\n"
          "      --abort              only clean up after a run that was killed: make the\n"
          "                           database it froze writable, remove what it half-created\n"
          "  -h, --help               show this help\n"
          "\n"
          "Exit status: 0 switched (or nothing left to do), 1 aborted or failed (the\n"
          "message says what happened and what was undone), 2 usage error.\n",
          out);
}

/* libpq reads PGOPTIONS for every session a conninfo leaves `options` unset in. */
static void sessions_read_write(void)
{
    const char *old = getenv("PGOPTIONS");
    char buf[1024];

    snprintf(buf, sizeof(buf), "%s%s-c default_transaction_read_only=off", old ? old : "",
             old && *old ? " " : "");
    setenv("PGOPTIONS", buf, 1);
}

static int run_switch(int argc, char **argv, SwitchKind kind)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"reverse-config", required_argument, NULL, 'r'},
        {"no-fallback", no_argument, NULL, 'F'},
        {"lock-timeout", required_argument, NULL, 'L'},
        {"drain-timeout", required_argument, NULL, 'D'},
        {"note", required_argument, NULL, 'N'},
        {"abort", no_argument, NULL, 'A'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *name = kind == SWITCH_CUTOVER ? "cutover" : "rollback";
    const char *path = NULL;
    SwitchOptions so = {.kind = kind, .lock_timeout_ms = 10000, .drain_timeout_s = 300};
    bool do_abort = false;
    Config *cfg = NULL;
    struct sigaction sa;
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'r':
        case 'F':
            if (kind != SWITCH_CUTOVER) {
                usage(stderr, kind);
                return EXIT_USAGE;
            }
            if (c == 'r')
                so.reverse_path = optarg;
            else
                so.no_fallback = true;
            break;
        case 'L':
        case 'D': {
            long v;

            if (cmd_parse_long(c == 'L' ? "--lock-timeout" : "--drain-timeout", optarg, 1,
                               c == 'L' ? 3600000 : 86400, &v) < 0) {
                fprintf(stderr, "tidemark %s: %s\n", name, tm_error());
                return EXIT_USAGE;
            }
            if (c == 'L')
                so.lock_timeout_ms = v;
            else
                so.drain_timeout_s = v;
            break;
        }
        case 'N':
            so.note = optarg;
            break;
        case 'A':
            do_abort = true;
            break;
        case 'h':
            usage(stdout, kind);
            return 0;
        default:
            usage(stderr, kind);
            return EXIT_USAGE;
        }
    }
    rc = cmd_load_config(name, path, argc, NULL, &cfg);
    if (rc != 0)
        return rc;
    log_init(LOG_FMT_TEXT, LOG_LVL_WARNING);
    sessions_read_write();
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    so.fwd = cfg;
    so.interrupted = &interrupted;
    so.out = stdout;
    rc = do_abort ? switch_abort(&so) : switch_run(&so);
    config_free(cfg);
    return rc < 0 ? cmd_die(NULL) : 0;
}

int cmd_cutover(int argc, char **argv)
{
    return run_switch(argc, argv, SWITCH_CUTOVER);
}

int cmd_rollback(int argc, char **argv)
{
    return run_switch(argc, argv, SWITCH_ROLLBACK);
}
