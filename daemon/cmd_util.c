/*
 * See cmd_util.h.
 */
#include "daemon/cmd_util.h"
#include "core/error.h"
#include "core/log.h"
#include "daemon/commands.h"
#include "core/sqlname.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_parse_long(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (end == s || *end || v < lo || v > hi)
        return tm_fail(-EINVAL, "%s: \"%s\" is not a number from %ld to %ld", opt, s, lo, hi);
    *out = v;
    return 0;
}

int cmd_add_table(TableName **tables, size_t *n, const char *arg)
{
    TableName tn;
    int rc = sqlname_parse(arg, &tn.schema, &tn.name);

    if (rc < 0)
        return rc;
    *tables = xrealloc(*tables, (*n + 1) * sizeof(TableName));
    (*tables)[(*n)++] = tn;
    return 0;
}

void cmd_tables_free(TableName *tables, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(tables[i].schema);
        free(tables[i].name);
    }
    free(tables);
}

bool cmd_has_ext(const char *path, const char *ext)
{
    size_t n = strlen(path), k = strlen(ext);

    return n > k && strcmp(path + n - k, ext) == 0;
}

int cmd_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (!f)
        return tm_fail(-errno, "%s: cannot open: %s", path, strerror(errno));
    if (fputs(text, f) < 0 || fclose(f) != 0)
        return tm_fail(-EIO, "%s: cannot write", path);
    return 0;
}

int cmd_load_config(const char *cmd, const char *path, int argc, CmdUsage usage, Config **cfg)
{
    if (!path || optind < argc) {
        fprintf(stderr, "tidemark %s: %s\n", cmd,
                !path ? "--config FILE is required" : "unexpected argument");
        if (usage)
            usage(stderr);
        return EXIT_USAGE;
    }
    if (config_load(path, cfg) < 0)
        return cmd_die(NULL);
    return 0;
}

bool cmd_service_start(const char *cmd, int argc, char **argv, CmdUsage usage, Config **cfg,
                       int *status)
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
    int c;

    *cfg = NULL;
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
            usage(stdout);
            *status = 0;
            return false;
        default:
            usage(stderr);
            *status = EXIT_USAGE;
            return false;
        }
    }
    *status = cmd_load_config(cmd, path, argc, usage, cfg);
    if (*status != 0)
        return false;
    if (log_level_parse(level_s ? level_s : (*cfg)->log.level, &level) < 0 ||
        log_format_parse(format_s ? format_s : (*cfg)->log.format, &format) < 0) {
        config_free(*cfg);
        *cfg = NULL;
        *status = cmd_die(NULL);
        return false;
    }
    log_init(format, level);
    log_set_pipeline((*cfg)->pipeline);
    return true;
}
