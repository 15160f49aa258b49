/*
 * `tidemark profile`: parses its options, loads the config, runs the
 * profiler (migration/profile.h) and writes the report: text on stdout by
 * default, or the chosen format to --output. When --output is given in a
 * format other than JSON, the JSON report is written next to it as well
 * (same name, .json), so the baseline is always on disk for `verify`.
 */
#include "config/config.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "daemon/cmd_util.h"
#include "daemon/commands.h"
#include "migration/profile.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage_profile(FILE *out)
{
    fputs("Usage: tidemark profile --config FILE [OPTIONS]\n"
          "\n"
          "Profiles the source tables before a migration: per table the exact row count\n"
          "(the baseline), size, primary key and replica identity; per column nulls,\n"
          "blanks, placeholders, distinct values, min/max, lengths, top values, format\n"
          "masks and histograms; findings (competing formats, dates or numbers in text,\n"
          "abbreviation mixes, whitespace, case variants, encoding damage, odd dates,\n"
          "duplicate keys and rows, orphans, values the target would reject), ordered by\n"
          "severity. All tables are read in one snapshot. With a postgres target the\n"
          "report and the baseline counts are stored in tidemark.profile_runs and\n"
          "tidemark.baseline_counts on the target.\n"
          "\n"
          "Options:\n"
          "  -c, --config FILE     pipeline configuration (YAML)\n"
          "  -t, --table NAME      profile this table ([schema.]name; repeatable;\n"
          "                        default: source.tables, else every table of public)\n"
          "  -s, --sample PCT      statistics from TABLESAMPLE SYSTEM (PCT), 0 < PCT <= 100;\n"
          "                        row counts stay exact\n"
          "  -f, --format FMT      text (default), json, markdown, html\n"
          "  -o, --output FILE     write the report to FILE (format from its extension\n"
          "                        unless --format); a non-JSON report also writes FILE's\n"
          "                        .json twin\n"
          "  -j, --jobs N          tables profiled in parallel, one connection each\n"
          "                        (default profile.jobs, 2)\n"
          "      --no-store        do not write the report to the target\n"
          "  -q, --quiet           no progress lines on stderr\n"
          "  -h, --help            show this help\n"
          "\n"
          "Exit status: 0 when every table was profiled (findings do not change it),\n"
          "1 on failure, 2 on a usage error.\n",
          out);
}

static ProfileFormat format_of_path(const char *path)
{
    if (cmd_has_ext(path, ".json"))
        return PROFILE_FMT_JSON;
    if (cmd_has_ext(path, ".md") || cmd_has_ext(path, ".markdown"))
        return PROFILE_FMT_MARKDOWN;
    if (cmd_has_ext(path, ".html") || cmd_has_ext(path, ".htm"))
        return PROFILE_FMT_HTML;
    return PROFILE_FMT_TEXT;
}

/* report.html -> report.json; report -> report.json */
static char *json_twin(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(path, '.');

    if (dot && (!slash || dot > slash + 1))
        return xasprintf("%.*s.json", (int)(dot - path), path);
    return xasprintf("%s.json", path);
}

static int output(const json_t *report, ProfileFormat fmt, const char *path)
{
    char *text = profile_render(report, fmt);
    int rc = 0;

    if (!path) {
        fputs(text, stdout);
        fflush(stdout);
    } else {
        rc = cmd_write_file(path, text);
        if (rc == 0 && fmt != PROFILE_FMT_JSON) {
            char *twin = json_twin(path);
            char *js = profile_render(report, PROFILE_FMT_JSON);

            rc = cmd_write_file(twin, js);
            free(js);
            free(twin);
        }
    }
    free(text);
    return rc;
}

static int parse_sample(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s || *end || !(v > 0 && v <= 100))
        return tm_fail(-EINVAL, "--sample: \"%s\" is not a percentage in (0, 100]", s);
    *out = v;
    return 0;
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "tidemark profile: %s\n", msg);
    usage_profile(stderr);
    return EXIT_USAGE;
}

int cmd_profile(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"table", required_argument, NULL, 't'},
        {"sample", required_argument, NULL, 's'}, {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'}, {"jobs", required_argument, NULL, 'j'},
        {"no-store", no_argument, NULL, 'N'},     {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    ProfileOptions po = {.store = true, .progress = true};
    const char *path = NULL, *out = NULL, *fmt_s = NULL;
    ProfileFormat fmt = PROFILE_FMT_TEXT;
    Config *cfg = NULL;
    LogLevel level;
    json_t *report = NULL;
    long jobs;
    int c, rc, status = 0;

    optind = 1;
    while ((c = getopt_long(argc, argv, "c:t:s:f:o:j:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 't':
            if (cmd_add_table(&po.tables, &po.ntables, optarg) < 0) {
                cmd_tables_free(po.tables, po.ntables);
                return usage_error(tm_error());
            }
            break;
        case 's':
            if (parse_sample(optarg, &po.sample_pct) < 0) {
                cmd_tables_free(po.tables, po.ntables);
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
            if (cmd_parse_long("--jobs", optarg, 1, 64, &jobs) < 0) {
                cmd_tables_free(po.tables, po.ntables);
                return usage_error(tm_error());
            }
            po.jobs = (int)jobs;
            break;
        case 'N':
            po.store = false;
            break;
        case 'q':
            po.progress = false;
            break;
        case 'h':
            cmd_tables_free(po.tables, po.ntables);
            usage_profile(stdout);
            return 0;
        default:
            cmd_tables_free(po.tables, po.ntables);
            usage_profile(stderr);
            return EXIT_USAGE;
        }
    }
    if (!path || optind < argc) {
        cmd_tables_free(po.tables, po.ntables);
        return usage_error(!path ? "--config FILE is required" : "unexpected argument");
    }
    if (fmt_s && profile_format_parse(fmt_s, &fmt) < 0) {
        cmd_tables_free(po.tables, po.ntables);
        return usage_error(tm_error());
    }
    if (!fmt_s && out)
        fmt = format_of_path(out);
    if (config_load(path, &cfg) < 0 || log_level_parse(cfg->log.level, &level) < 0) {
        config_free(cfg);
        cmd_tables_free(po.tables, po.ntables);
        return cmd_die(NULL);
    }
    log_init(LOG_FMT_TEXT, level);
    log_set_pipeline(cfg->pipeline);
    rc = profile_run(cfg, &po, &report);
    if (rc < 0) {
        char msg[1024];

        snprintf(msg, sizeof(msg), "%s", tm_error());
        status = 1;
        if (report && output(report, fmt, out) < 0)
            cmd_die("writing the report");
        tm_fail(rc, "%s", msg);
        cmd_die(NULL);
    } else if (output(report, fmt, out) < 0) {
        status = cmd_die(NULL);
    }
    json_decref(report);
    config_free(cfg);
    cmd_tables_free(po.tables, po.ntables);
    return status;
}
