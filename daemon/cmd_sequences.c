/*
 * `tidemark sync-sequences`: sets every target sequence from the source's
 * current value (the cutover step logical replication does not cover).
 */
#include "config/config.h"
#include "connectors/pg/catalog.h"
#include "connectors/pg/pgconn.h"
#include "connectors/pg/sequences.h"
#include "core/error.h"
#include "core/log.h"
#include "daemon/commands.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fputs("Usage: tidemark sync-sequences --config FILE [--dry-run]\n"
          "\n"
          "Sets every sequence of the schemas holding the pipeline's tables (serial and\n"
          "identity columns included) on the target to the source's current value, so\n"
          "inserts on the target after cutover do not collide with migrated rows. Run it\n"
          "while writes to the source are frozen, after the pipeline has caught up.\n"
          "\n"
          "Options:\n"
          "  -c, --config FILE   pipeline configuration (YAML)\n"
          "  -n, --dry-run       show what would be set, change nothing\n"
          "  -h, --help          show this help\n"
          "\n"
          "Exit status: 0 when every sequence was set, 1 on errors or when a sequence is\n"
          "missing on the target.\n",
          out);
}

int cmd_sync_sequences(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"dry-run", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    bool dry_run = false;
    Config *cfg = NULL;
    PGconn *src = NULL;
    TableSet tabs = {0};
    SeqSyncResult res;
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "c:nh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'n':
            dry_run = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (!path || optind < argc) {
        fprintf(stderr, "tidemark sync-sequences: %s\n",
                !path ? "--config FILE is required" : "unexpected argument");
        return EXIT_USAGE;
    }
    if (config_load(path, &cfg) < 0)
        return cmd_die(NULL);
    log_init(LOG_FMT_TEXT, LOG_LVL_WARNING);
    if (strcmp(cfg->target.type, "postgres") != 0) {
        fprintf(stderr, "tidemark: sync-sequences needs a postgres target\n");
        config_free(cfg);
        return 1;
    }
    rc = pgconn_open(&cfg->source.conn, PGCONN_NORMAL, "source", &src);
    if (rc == 0)
        rc = catalog_resolve(src, cfg, &tabs);
    if (src)
        PQfinish(src);
    if (rc == 0) {
        printf("sequences of pipeline %s:\n", cfg->pipeline);
        rc = sequences_sync(cfg, &tabs, dry_run, stdout, &res);
    }
    tableset_release(&tabs);
    config_free(cfg);
    if (rc < 0)
        return cmd_die(NULL);
    printf("%d sequence(s) %s, %d missing on the target\n", res.synced, dry_run ? "to set" : "set",
           res.missing);
    return res.missing ? 1 : 0;
}
