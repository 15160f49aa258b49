/*
 * `tidemark verify`: parses its options, loads the config, runs the
 * verification (migration/verify.h) and writes the report: the chosen format
 * on stdout, and with --output also a report file (Markdown unless the name
 * or --format says otherwise; stdout then keeps the text summary). The exit
 * code is the verdict: 0 only when everything matched.
 */
#include "config/config.h"
#include "core/error.h"
#include "core/log.h"
#include "daemon/applier.h"
#include "daemon/cmd_util.h"
#include "daemon/commands.h"
#include "migration/verify.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage_verify(FILE *out)
{
    fputs("Usage: tidemark verify --config FILE [OPTIONS]\n"
          "\n"
          "Proves that the target matches the source, row by row, while the pipeline runs:\n"
          "takes a source snapshot with an exact LSN, waits until the target's watermark has\n"
          "passed it, then per table compares row counts and checksums of key ranges inside\n"
          "both databases, bisects the ranges that differ down to single rows and diffs\n"
          "them column by column. Rows that differ are rechecked at fresh snapshots, so only\n"
          "persistent differences are reported. Foreign keys (declared on the target and\n"
          "verify.foreign_keys), the verify.rules and verify.spot_checks run on the same\n"
          "snapshot. Results go to tidemark.verify_runs and tidemark.verify_failures on the\n"
          "target.\n"
          "\n"
          "Options:\n"
          "  -c, --config FILE     pipeline configuration (YAML)\n"
          "  -t, --table NAME      verify this table ([schema.]name; repeatable;\n"
          "                        default: source.tables, else every table of public)\n"
          "  -f, --format FMT      text (default), json, markdown\n"
          "  -o, --output FILE     also write the report to FILE (markdown unless FILE ends\n"
          "                        in .json or .txt, or --format says otherwise)\n"
          "  -j, --jobs N          tables compared in parallel, one connection pair each\n"
          "                        (default verify.jobs, 2)\n"
          "      --max-rows-per-second N  throttle (default verify.max_rows_per_second)\n"
          "      --no-wait         do not wait for the target's watermark (the pipeline is\n"
          "                        stopped or the data is static)\n"
          "      --no-integrity    skip foreign keys, rules and spot checks\n"
          "      --no-store        do not write the results to the target\n"
          "  -q, --quiet           no progress lines on stderr\n"
          "  -h, --help            show this help\n"
          "\n"
          "Exit status: 0 when everything matches, 1 on a difference or a failure, 2 on a\n"
          "usage error.\n",
          out);
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "tidemark verify: %s\n", msg);
    usage_verify(stderr);
    return EXIT_USAGE;
}

static int output(const json_t *report, VerifyFormat fmt, bool fmt_given, const char *path)
{
    char *text;
    int rc = 0;

    if (!path) {
        text = verify_render(report, fmt);
        fputs(text, stdout);
        free(text);
        fflush(stdout);
        return 0;
    }
    if (!fmt_given)
        fmt = cmd_has_ext(path, ".json")  ? VERIFY_FMT_JSON
              : cmd_has_ext(path, ".txt") ? VERIFY_FMT_TEXT
                                          : VERIFY_FMT_MARKDOWN;
    text = verify_render(report, fmt);
    rc = cmd_write_file(path, text);
    free(text);
    text = verify_render(report, VERIFY_FMT_TEXT);
    fputs(text, stdout);
    free(text);
    fflush(stdout);
    return rc;
}

int cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"table", required_argument, NULL, 't'},
        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},
        {"jobs", required_argument, NULL, 'j'},
        {"max-rows-per-second", required_argument, NULL, 'R'},
        {"no-wait", no_argument, NULL, 'W'},
        {"no-integrity", no_argument, NULL, 'I'},
        {"no-store", no_argument, NULL, 'N'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    VerifyOptions vo = {.store = true, .progress = true, .integrity = true};
    const char *path = NULL, *out = NULL, *fmt_s = NULL;
    VerifyFormat fmt = VERIFY_FMT_TEXT;
    Config *cfg = NULL;
    LogLevel level;
    json_t *report = NULL;
    long v = 0;
    int c, rc, status;

    optind = 1;
    while ((c = getopt_long(argc, argv, "c:t:f:o:j:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 't':
            if (cmd_add_table(&vo.tables, &vo.ntables, optarg) < 0) {
                cmd_tables_free(vo.tables, vo.ntables);
                return usage_error(tm_error());
            }
            break;
        case 'f':
            fmt_s = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'j':
        case 'R':
            if (cmd_parse_long(c == 'j' ? "--jobs" : "--max-rows-per-second", optarg, 1,
                               c == 'j' ? 64 : 1000000000L, &v) < 0) {
                cmd_tables_free(vo.tables, vo.ntables);
                return usage_error(tm_error());
            }
            if (c == 'j')
                vo.jobs = (int)v;
            else
                vo.max_rows_per_s = v;
            break;
        case 'W':
            vo.no_wait = true;
            break;
        case 'I':
            vo.integrity = false;
            break;
        case 'N':
            vo.store = false;
            break;
        case 'q':
            vo.progress = false;
            break;
        case 'h':
            cmd_tables_free(vo.tables, vo.ntables);
            usage_verify(stdout);
            return 0;
        default:
            cmd_tables_free(vo.tables, vo.ntables);
            usage_verify(stderr);
            return EXIT_USAGE;
        }
    }
    if (!path || optind < argc) {
        cmd_tables_free(vo.tables, vo.ntables);
        return usage_error(!path ? "--config FILE is required" : "unexpected argument");
    }
    if (fmt_s && verify_format_parse(fmt_s, &fmt) < 0) {
        cmd_tables_free(vo.tables, vo.ntables);
        return usage_error(tm_error());
    }
    if (config_load(path, &cfg) < 0 || log_level_parse(cfg->log.level, &level) < 0) {
        config_free(cfg);
        cmd_tables_free(vo.tables, vo.ntables);
        return cmd_die(NULL);
    }
    log_init(LOG_FMT_TEXT, level);
    log_set_pipeline(cfg->pipeline);
    if (strcmp(cfg->source.type, "kafka") == 0)
        vo.wait_target = applier_verify_wait; /* a target fed through Kafka */
    rc = verify_run(cfg, &vo, &report);
    if (rc < 0) {
        char msg[1024];

        snprintf(msg, sizeof(msg), "%s", tm_error());
        if (report)
            output(report, fmt, fmt_s != NULL, out);
        tm_fail(rc, "%s", msg);
        status = cmd_die(NULL);
    } else if (output(report, fmt, fmt_s != NULL, out) < 0) {
        status = cmd_die(NULL);
    } else {
        status = verify_report_ok(report) ? 0 : 1;
    }
    json_decref(report);
    config_free(cfg);
    cmd_tables_free(vo.tables, vo.ntables);
    return status;
}
