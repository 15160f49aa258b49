/*
 * `tidemark resume`: the operator's decision after a divergence halted the
 * pipeline. A halt is recorded on the target (tidemark.pipeline_state key
 * 'halted') and every start refuses while it is there, so a service manager
 * restarting the daemon cannot loop over a target someone must look at.
 * Resuming removes the record and keeps who did it and what it was; the next
 * start retries from the watermark, which is still before the transaction
 * that diverged, so nothing after it was ever committed.
 */
#include "config/config.h"
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/log.h"
#include "daemon/cmd_util.h"
#include "daemon/commands.h"

#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fputs("Usage: tidemark resume --config FILE\n"
          "\n"
          "Lifts the halt a divergence put on the pipeline (an UPDATE or DELETE that\n"
          "matched no target row, or several). The failed batch was rolled back and the\n"
          "watermark stayed before it: repair the target first (the error names the\n"
          "table, the row and the source LSN), then resume and start the daemon; it\n"
          "applies the failed transaction again. Without a repair it halts again.\n"
          "\n"
          "Options:\n"
          "  -c, --config FILE   pipeline configuration (YAML)\n"
          "  -h, --help          show this help\n"
          "\n"
          "Exit status: 0 when the pipeline is not (or no longer) halted, 1 on errors.\n",
          out);
}

static const char *operator_name(void)
{
    const char *who = getenv("SUDO_USER");
    struct passwd *pw;

    if (who && *who)
        return who;
    pw = getpwuid(geteuid());
    return pw ? pw->pw_name : "unknown";
}

static int resume(const Config *cfg, PGconn *conn, bool *was_halted)
{
    char who[256];
    const char *params[2] = {cfg->pipeline, who};
    PGresult *res = NULL;
    int rc;

    snprintf(who, sizeof(who), "%s", operator_name());
    rc = pgconn_exec(conn, "BEGIN");
    if (rc == 0)
        rc = pgconn_query(conn,
                          "DELETE FROM tidemark.pipeline_state WHERE pipeline = $1 AND"
                          " key = 'halted' RETURNING value",
                          1, params, &res);
    if (rc < 0)
        goto out;
    *was_halted = PQntuples(res) == 1;
    if (*was_halted) {
        const char *rp[2] = {cfg->pipeline, NULL};
        char *value = NULL;
        size_t len = strlen(who) + strlen(PQgetvalue(res, 0, 0)) + 64;

        value = malloc(len);
        if (!value) {
            rc = tm_fail(-ENOMEM, "out of memory");
            goto out;
        }
        snprintf(value, len, "by %s; the halt was: %s", who, PQgetvalue(res, 0, 0));
        rp[1] = value;
        rc = pgconn_query(conn,
                          "INSERT INTO tidemark.pipeline_state (pipeline, key, value) VALUES"
                          " ($1, 'resumed', $2) ON CONFLICT (pipeline, key) DO UPDATE SET"
                          " value = excluded.value, updated_at = now()",
                          2, rp, NULL);
        free(value);
    }
    if (rc == 0)
        rc = pgconn_exec(conn, "COMMIT");
out:
    PQclear(res);
    if (rc < 0)
        PQclear(PQexec(conn, "ROLLBACK"));
    return rc;
}

int cmd_resume(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    Config *cfg = NULL;
    PGconn *dst = NULL;
    bool was_halted = false;
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    rc = cmd_load_config("resume", path, argc, NULL, &cfg);
    if (rc != 0)
        return rc;
    log_init(LOG_FMT_TEXT, LOG_LVL_WARNING);
    if (strcmp(cfg->target.type, "postgres") != 0) {
        printf("pipeline %s: only a postgres target can halt; nothing to resume\n", cfg->pipeline);
        config_free(cfg);
        return 0;
    }
    rc = pgconn_open(&cfg->target.conn, PGCONN_NORMAL, "target", &dst);
    if (rc == 0 && pgconn_exec(dst, "SELECT 1 FROM tidemark.pipeline_state LIMIT 0") < 0) {
        printf("pipeline %s has no state on the target: nothing to resume\n", cfg->pipeline);
        PQfinish(dst);
        config_free(cfg);
        return 0;
    }
    if (rc == 0)
        rc = resume(cfg, dst, &was_halted);
    if (dst)
        PQfinish(dst);
    if (rc == 0 && was_halted)
        printf("pipeline %s resumed: its next start retries the transaction that diverged\n",
               cfg->pipeline);
    else if (rc == 0)
        printf("pipeline %s is not halted\n", cfg->pipeline);
    config_free(cfg);
    return rc < 0 ? cmd_die(NULL) : 0;
}
