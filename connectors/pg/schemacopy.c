/*
 * Schema copy (see schemacopy.h). The tools run as child processes with
 * argument vectors, never through a shell; the conninfo strings go to them
 * as -d arguments and a password_file as PGPASSFILE. Schema entries are
 * filtered out of the restore list because CREATE SCHEMA fails for schemas
 * the target already has (public always): tidemark creates missing schemas
 * itself with IF NOT EXISTS.
 */
#include "connectors/pg/schemacopy.h"
#include "connectors/pg/pgconn.h"
#include "connectors/pg/schemaext.h"
#include "connectors/pg/schemafk.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct SchemaJob {
    pid_t pid;
    char *section;
    char dir[64];
};

static void job_cleanup(SchemaJob *job)
{
    static const char *const files[] = {"schema.dump", "list.txt", "list-filtered.txt"};

    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *f = xasprintf("%s/%s", job->dir, files[i]);

        unlink(f);
        free(f);
    }
    rmdir(job->dir);
    free(job->section);
    free(job);
}

int schemacopy_done(PGconn *dst, const char *pipeline, const char *section, bool *done)
{
    const char *params[2] = {pipeline, section};
    PGresult *res;
    int rc = pgconn_exec(dst, "CREATE TABLE IF NOT EXISTS tidemark.pipeline_state ("
                              " pipeline text NOT NULL, key text NOT NULL, value text,"
                              " updated_at timestamptz NOT NULL DEFAULT now(),"
                              " PRIMARY KEY (pipeline, key))");

    if (rc == 0)
        rc = pgconn_query(dst,
                          "SELECT 1 FROM tidemark.pipeline_state WHERE pipeline = $1 AND"
                          " key = 'schema ' || $2",
                          2, params, &res);
    if (rc < 0)
        return tm_fail_ctx(rc, "target: reading tidemark.pipeline_state");
    *done = PQntuples(res) == 1;
    PQclear(res);
    return 0;
}

int schemacopy_mark(PGconn *dst, const char *pipeline, const char *section)
{
    const char *params[2] = {pipeline, section};

    return pgconn_query(dst,
                        "INSERT INTO tidemark.pipeline_state (pipeline, key, value)"
                        " VALUES ($1, 'schema ' || $2, 'done') ON CONFLICT DO NOTHING",
                        2, params, NULL);
}

/* pg_dump/pg_restore matching the server's major version, else from PATH. */
static char *tool_path(PGconn *conn, const char *tool)
{
    int major = PQserverVersion(conn) / 10000;
    char *p = xasprintf("/usr/lib/postgresql/%d/bin/%s", major, tool);

    if (access(p, X_OK) == 0)
        return p;
    free(p);
    return xstrdup(tool);
}

static char *quote_pattern(const char *name)
{
    Buf b = BUF_INIT;

    /* pg_dump patterns: inside double quotes everything is literal. */
    buf_putc(&b, '"');
    for (const char *c = name; *c; c++) {
        if (*c == '"')
            buf_putc(&b, '"');
        buf_putc(&b, *c);
    }
    buf_putc(&b, '"');
    return b.data;
}

static int run_tool(const ConfigEndpoint *ep, char *const argv[], pid_t *pid)
{
    char *timeout = NULL, *passfile = NULL;
    char **envp;
    size_t n = 0, k;
    int err;

    while (environ[n])
        n++;
    envp = xcalloc(n + 3, sizeof(char *));
    for (k = 0; k < n; k++)
        envp[k] = environ[k];
    /* Like tidemark's own connections (pgconn.h): a host that drops packets
     * ends the tool's connection attempt instead of hanging it. */
    if (!getenv("PGCONNECT_TIMEOUT"))
        envp[k++] = timeout = xasprintf("PGCONNECT_TIMEOUT=%s", PGCONN_CONNECT_TIMEOUT_S);
    if (ep->password_file)
        envp[k++] = passfile = xasprintf("PGPASSFILE=%s", ep->password_file);
    err = posix_spawnp(pid, argv[0], NULL, NULL, argv, envp);
    free(timeout);
    free(passfile);
    free(envp);
    if (err)
        return tm_fail(-err, "cannot run %s: %s", argv[0], strerror(err));
    return 0;
}

static int wait_tool(const char *what, pid_t pid)
{
    int status;

    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return tm_fail(-errno, "%s: waitpid: %s", what, strerror(errno));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    return tm_fail(-EIO, "%s failed (%s %d); its messages are above", what,
                   WIFEXITED(status) ? "exit code" : "signal",
                   WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

/*
 * Keeps every restore-list line except schema creation and its comment and,
 * when fks is false, the foreign keys (see schemafk.h).
 */
static int filter_list(const char *in, const char *out, bool fks)
{
    FILE *fi = fopen(in, "r");
    FILE *fo = fi ? fopen(out, "w") : NULL;
    char line[4096];

    if (!fo) {
        if (fi)
            fclose(fi);
        return tm_fail(-errno, "cannot write the restore list %s: %s", out, strerror(errno));
    }
    while (fgets(line, sizeof(line), fi)) {
        if (strstr(line, " SCHEMA - ") || strstr(line, " COMMENT - SCHEMA "))
            continue;
        if (!fks && schemafk_is_list_entry(line))
            continue;
        fputs(line, fo);
    }
    fclose(fi);
    return fclose(fo) == 0 ? 0 : tm_fail(-EIO, "cannot write the restore list %s", out);
}

static int create_schemas(PGconn *dst, const TableSet *tabs)
{
    for (size_t i = 0; i < tabs->n; i++) {
        char *q = pgconn_ident(dst, tabs->t[i].schema);
        char *sql = xasprintf("CREATE SCHEMA IF NOT EXISTS %s", q);
        int rc = pgconn_exec(dst, sql);

        free(q);
        free(sql);
        if (rc < 0)
            return tm_fail_ctx(rc, "target: creating schema %s", tabs->t[i].schema);
    }
    return 0;
}

int schemacopy_start(const Config *cfg, PGconn *dst, const TableSet *tabs, const char *section,
                     SchemaJob **out)
{
    SchemaJob *job = xcalloc(1, sizeof(*job));
    char *dir = job->dir;
    char *dump = NULL, *list = NULL, *flist = NULL, *pg_dump = NULL, *pg_restore = NULL;
    char **argv = NULL;
    size_t argc = 0;
    PGconn *src = NULL;
    pid_t child, *pid = &child;
    int rc;

    snprintf(job->dir, sizeof(job->dir), "%s/tidemark-schema-XXXXXX",
             getenv("TMPDIR") && strlen(getenv("TMPDIR")) < 30 ? getenv("TMPDIR") : "/tmp");
    job->section = xstrdup(section);
    if (!mkdtemp(job->dir)) {
        rc = tm_fail(-errno, "cannot create a temporary directory: %s", strerror(errno));
        free(job->section);
        free(job);
        return rc;
    }
    dump = xasprintf("%s/schema.dump", dir);
    list = xasprintf("%s/list.txt", dir);
    flist = xasprintf("%s/list-filtered.txt", dir);
    rc = pgconn_open(&cfg->source.conn, PGCONN_NORMAL, "source", &src);
    if (rc < 0)
        goto out;
    if (strcmp(section, "pre-data") == 0 && (rc = schemaext_ensure(src, dst, tabs)) < 0)
        goto out;
    pg_dump = tool_path(src, "pg_dump");
    pg_restore = tool_path(src, "pg_restore");

    argv = xcalloc(2 * tabs->n + 16, sizeof(char *));
    argv[argc++] = pg_dump;
    argv[argc++] = "--schema-only";
    argv[argc++] = "--format=custom";
    argv[argc++] = "--no-owner";
    argv[argc++] = "--no-privileges";
    argv[argc++] = "-f";
    argv[argc++] = dump;
    argv[argc++] = "-d";
    argv[argc++] = cfg->source.conn.conninfo;
    for (size_t i = 0; i < tabs->n; i++) {
        bool seen = false;

        for (size_t j = 0; j < i; j++)
            seen |= strcmp(tabs->t[j].schema, tabs->t[i].schema) == 0;
        if (seen)
            continue;
        argv[argc++] = "-n";
        argv[argc++] = quote_pattern(tabs->t[i].schema);
    }
    log_info("schema copy: dumping the source schema (%s)", section);
    rc = run_tool(&cfg->source.conn, argv, pid);
    if (rc == 0)
        rc = wait_tool("pg_dump", *pid);
    for (size_t i = 9; i < argc; i += 2)
        free(argv[i + 1]);
    if (rc < 0)
        goto out;

    char *largv[] = {pg_restore, "-l", "-f", list, dump, NULL};
    rc = run_tool(&cfg->source.conn, largv, pid);
    if (rc == 0)
        rc = wait_tool("pg_restore -l", *pid);
    if (rc == 0)
        rc = filter_list(list, flist, strcmp(section, "post-data") != 0);
    if (rc == 0 && strcmp(section, "pre-data") == 0)
        rc = create_schemas(dst, tabs);
    if (rc < 0)
        goto out;

    char *sect = xasprintf("--section=%s", section);
    char *rargv[] = {pg_restore,
                     sect,
                     "--no-owner",
                     "--no-privileges",
                     "--single-transaction",
                     "--exit-on-error",
                     "-L",
                     flist,
                     "-d",
                     cfg->target.conn.conninfo,
                     dump,
                     NULL};
    log_info("schema copy: restoring %s on the target", section);
    rc = run_tool(&cfg->target.conn, rargv, pid);
    free(sect);
    if (rc == 0) {
        job->pid = child;
        *out = job;
        job = NULL;
    }
out:
    if (job)
        job_cleanup(job);
    if (src)
        PQfinish(src);
    free(argv);
    free(dump);
    free(list);
    free(flist);
    free(pg_dump);
    free(pg_restore);
    return rc;
}

pid_t schemacopy_pid(const SchemaJob *job)
{
    return job->pid;
}

int schemacopy_finish(SchemaJob *job, int wstatus)
{
    int rc = 0;

    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0)
        log_info("schema copy: %s restored", job->section);
    else
        rc = tm_fail(-EIO,
                     "schema copy: pg_restore of %s failed (%s %d); its messages are above. It"
                     " ran in one transaction, so nothing of it was kept: fix the cause and start"
                     " again, and the section is restored again (the copied rows are kept)",
                     job->section, WIFEXITED(wstatus) ? "exit code" : "signal",
                     WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : WTERMSIG(wstatus));
    job_cleanup(job);
    return rc;
}

int schemacopy_run(const Config *cfg, PGconn *dst, const TableSet *tabs, const char *section)
{
    SchemaJob *job;
    int status, rc = schemacopy_start(cfg, dst, tabs, section, &job);

    if (rc < 0)
        return rc;
    while (waitpid(job->pid, &status, 0) < 0) {
        if (errno != EINTR) {
            rc = tm_fail(-errno, "pg_restore: waitpid: %s", strerror(errno));
            job_cleanup(job);
            return rc;
        }
    }
    return schemacopy_finish(job, status);
}

void schemacopy_abort(SchemaJob *job)
{
    int status;

    if (!job)
        return;
    kill(job->pid, SIGTERM);
    waitpid(job->pid, &status, 0);
    job_cleanup(job);
}
