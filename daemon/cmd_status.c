/*
 * `tidemark status`: one screen on where a pipeline stands (phase, watermark,
 * lag, the source slot's WAL retention, every table's copy or stream state,
 * the last error, whether the daemon's /healthz answers), or the same as one
 * JSON object with --json. The facts come from status.c; this file only
 * parses options and renders text.
 */
#include "config/config.h"
#include "core/error.h"
#include "core/log.h"
#include "daemon/cmd_util.h"
#include "daemon/commands.h"
#include "daemon/status.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fputs("Usage: tidemark status --config FILE [--json]\n"
          "\n"
          "Shows where the pipeline described by FILE stands: its phase, the target's\n"
          "watermark and lag, the source slot's retained WAL, the state of every table\n"
          "(copying n%, synced, streaming), the last error and, when service.listen is\n"
          "set, whether the daemon's /healthz answers. It only reads, so it can run\n"
          "while the daemon runs.\n"
          "\n"
          "Options:\n"
          "  -c, --config FILE   pipeline configuration (YAML)\n"
          "  -j, --json          print one JSON object instead of text\n"
          "  -h, --help          show this help\n"
          "\n"
          "Exit status: 0, or 1 when the source or the target cannot be reached.\n",
          out);
}

static const char *str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));

    return s ? s : "-";
}

static void print_bytes(json_t *v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double n;
    int u = 0;

    if (!json_is_integer(v)) {
        fputs("? B", stdout);
        return;
    }
    n = (double)json_integer_value(v);
    while ((n >= 1024 || n <= -1024) && u < 4) {
        n /= 1024;
        u++;
    }
    if (u == 0)
        printf("%.0f B", n);
    else
        printf("%.1f %s", n, units[u]);
}

static void print_text(json_t *st)
{
    json_t *wm = json_object_get(st, "watermark");
    json_t *src = json_object_get(st, "source");
    json_t *dst = json_object_get(st, "target");
    json_t *slot = json_object_get(src, "slot");
    json_t *err = json_object_get(st, "last_error");
    json_t *daemon = json_object_get(st, "daemon");
    json_t *lag = json_object_get(st, "lag_seconds");
    json_t *tables = json_object_get(st, "tables"), *t;
    size_t i, width = 5;

    printf("pipeline   %s: %s\n", str(st, "pipeline"), str(st, "phase"));
    if (json_object_get(dst, "error"))
        printf("target     %s: %s\n", str(dst, "type"), str(dst, "error"));
    if (json_object_get(src, "error"))
        printf("source     %s\n", str(src, "error"));
    if (json_is_object(wm)) {
        printf("watermark  %s", str(wm, "lsn"));
        if (json_is_string(json_object_get(wm, "commit_time")))
            printf(", last commit %s", str(wm, "commit_time"));
        if (json_is_string(json_object_get(wm, "updated_at")))
            printf(", written %s", str(wm, "updated_at"));
        putchar('\n');
    } else {
        printf("watermark  none (the pipeline has not committed its start yet)\n");
    }
    if (json_is_number(lag) || json_is_integer(json_object_get(slot, "lag_bytes"))) {
        printf("lag        ");
        if (json_is_number(lag))
            printf("%.1f s since the last applied commit", json_number_value(lag));
        if (json_is_integer(json_object_get(slot, "lag_bytes"))) {
            printf(json_is_number(lag) ? "; " : "");
            print_bytes(json_object_get(slot, "lag_bytes"));
            printf(" of source WAL not yet confirmed");
        }
        putchar('\n');
    }
    if (json_is_true(json_object_get(slot, "exists"))) {
        printf("slot       %s: %s, confirmed %s, retains ", str(slot, "name"),
               json_is_true(json_object_get(slot, "active")) ? "active" : "inactive",
               str(slot, "confirmed_flush_lsn"));
        print_bytes(json_object_get(slot, "retained_wal_bytes"));
        printf(" of WAL (restart %s, wal_status %s)\n", str(slot, "restart_lsn"),
               str(slot, "wal_status"));
    } else if (json_is_true(json_object_get(src, "reachable"))) {
        printf("slot       %s: does not exist on the source\n", str(slot, "name"));
    }
    if (json_is_object(daemon)) {
        if (json_is_integer(json_object_get(daemon, "healthz")))
            printf("daemon     http://%s/healthz: %d %s\n", str(daemon, "listen"),
                   (int)json_integer_value(json_object_get(daemon, "healthz")),
                   str(daemon, "answer"));
        else
            printf("daemon     http://%s/healthz: not answering (%s)\n", str(daemon, "listen"),
                   str(daemon, "error"));
    }
    if (json_is_object(err))
        printf("last error %s: %s\n", str(err, "at"), str(err, "message"));
    else
        printf("last error none\n");
    if (json_is_object(json_object_get(st, "halted")))
        printf("HALTED     since %s: a divergence; repair the target, then run"
               " `tidemark resume`\n",
               str(json_object_get(st, "halted"), "at"));

    json_array_foreach(tables, i, t)
    {
        size_t w = strlen(str(t, "table"));

        if (w > width)
            width = w;
    }
    printf("\n%-*s  %-13s  %-7s  %s\n", (int)width, "TABLE", "STATE", "PARTS", "ROWS COPIED");
    json_array_foreach(tables, i, t)
    {
        char state[32], parts[32], rows[32] = "-";
        const char *s = str(t, "state");

        if (strcmp(s, "copying") == 0)
            snprintf(state, sizeof(state), "copying %d%%",
                     (int)json_integer_value(json_object_get(t, "percent")));
        else
            snprintf(state, sizeof(state), "%s", s);
        snprintf(parts, sizeof(parts), "%lld/%lld",
                 (long long)json_integer_value(json_object_get(t, "parts_synced")),
                 (long long)json_integer_value(json_object_get(t, "parts")));
        if (json_is_integer(json_object_get(t, "rows")))
            snprintf(rows, sizeof(rows), "%lld",
                     (long long)json_integer_value(json_object_get(t, "rows")));
        printf("%-*s  %-13s  %-7s  %s\n", (int)width, str(t, "table"), state, parts, rows);
    }
    if (json_array_size(tables) == 0)
        printf("(no tables known yet)\n");
}

int cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    bool as_json = false;
    Config *cfg = NULL;
    json_t *st = NULL;
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "c:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'j':
            as_json = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    rc = cmd_load_config("status", path, argc, usage, &cfg);
    if (rc != 0)
        return rc;
    /* Library code logs at debug level now and then; status output is stdout only. */
    log_init(LOG_FMT_TEXT, LOG_LVL_WARNING);
    rc = status_collect(cfg, &st);
    if (as_json) {
        json_dumpf(st, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        putchar('\n');
    } else {
        print_text(st);
    }
    fflush(stdout);
    json_decref(st);
    config_free(cfg);
    if (rc < 0)
        return cmd_die(NULL);
    return 0;
}
