/*
 * `tidemark runbook`: the migration's runbook in Markdown, for someone who
 * did not build the pipeline. It is generated from the configuration (what
 * moves, the exact commands and validation queries) and from the recorded
 * runs: every cutover and rollback stores its step durations on the database
 * it switched to (tidemark.cutover_runs), and the last three of each kind
 * give the expected times, the freeze window the application will see, and
 * the history of rehearsals. A side that cannot be reached is said so; the
 * rest of the runbook is still written.
 */
#include "migration/runbook.h"
#include "connectors/pg/pgconn.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/xmalloc.h"
#include "migration/reverse.h"
#include "migration/switch_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RUNS  3
#define MAX_STEPS 16

typedef struct Run {
    char *when, *operator, * note, *rows, *verify, *total;
    char *secs[MAX_STEPS];
    double freeze; /* seconds from the freeze to the switch: writers wait */
} Run;

typedef struct Runs {
    int n, nsteps;
    char *steps[MAX_STEPS];
    Run r[MAX_RUNS];
    char *error; /* the side could not be read */
} Runs;

/* "host=... port=... dbname=... user=..." without secrets, malloc'd. */
static char *safe_conninfo(const ConfigEndpoint *ep)
{
    static const char *const keep[] = {"host", "hostaddr", "port", "dbname", "user", NULL};
    PQconninfoOption *opts = PQconninfoParse(ep->conninfo, NULL);
    Buf b = BUF_INIT;
    char *out;

    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        for (int k = 0; keep[k]; k++)
            if (o->val && *o->val && strcmp(o->keyword, keep[k]) == 0)
                buf_printf(&b, "%s%s=%s", b.len ? " " : "", o->keyword, o->val);
    PQconninfoFree(opts);
    out = xstrdup(b.len ? buf_cstr(&b) : "(see the configuration)");
    buf_release(&b);
    return out;
}

static int step_index(Runs *rs, const char *step)
{
    for (int i = 0; i < rs->nsteps; i++)
        if (strcmp(rs->steps[i], step) == 0)
            return i;
    if (rs->nsteps == MAX_STEPS)
        return -1;
    rs->steps[rs->nsteps] = xstrdup(step);
    return rs->nsteps++;
}

static void load_runs(const ConfigEndpoint *ep, const char *what, const Config *fwd,
                      const char *kind, Runs *rs)
{
    const char *p[2] = {fwd->pipeline, kind};
    PGconn *conn = NULL;
    PGresult *res = NULL;
    char *has = NULL;
    int rc = sw_open(ep, what, &conn);

    if (rc == 0)
        rc = sw_value(conn, "SELECT 1 WHERE to_regclass('tidemark.cutover_runs') IS NOT NULL", 0,
                      NULL, &has);
    if (rc == 0 && has)
        rc = pgconn_query(
            conn,
            "WITH r AS (SELECT * FROM tidemark.cutover_runs WHERE pipeline = $1 AND kind = $2"
            " AND status = 'done' ORDER BY started_at DESC LIMIT 3)"
            " SELECT r.id::text, to_char(r.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),"
            " r.operator, coalesce(r.note, ''), coalesce(r.source_rows::text, '?'),"
            " coalesce(r.verify_ok::text, '?'), round(extract(epoch from r.finished_at -"
            " r.started_at)::numeric, 2)::text, s.v->>'step', round((s.v->>'seconds')::numeric,"
            " 2)::text FROM r, jsonb_array_elements(r.steps) WITH ORDINALITY s(v, ord)"
            " ORDER BY r.started_at, s.ord",
            2, p, &res);
    if (rc < 0)
        rs->error = xstrdup(tm_error());
    free(has);
    for (int i = 0, cur = -1; res && i < PQntuples(res); i++) {
        int si;

        if (cur < 0 || strcmp(PQgetvalue(res, i, 0), PQgetvalue(res, i - 1, 0)) != 0) {
            Run *r = &rs->r[cur = rs->n++];

            r->when = xstrdup(PQgetvalue(res, i, 1));
            r->operator= xstrdup(PQgetvalue(res, i, 2));
            r->note = xstrdup(PQgetvalue(res, i, 3));
            r->rows = xstrdup(PQgetvalue(res, i, 4));
            r->verify =
                xstrdup(strcmp(PQgetvalue(res, i, 5), "true") == 0 ? "all equal" : "differences");
            r->total = xstrdup(PQgetvalue(res, i, 6));
        }
        si = step_index(rs, PQgetvalue(res, i, 7));
        if (si >= 0) {
            rs->r[cur].secs[si] = xstrdup(PQgetvalue(res, i, 8));
            if (strcmp(rs->steps[si], "check") != 0 && strcmp(rs->steps[si], "finish") != 0)
                rs->r[cur].freeze += strtod(PQgetvalue(res, i, 8), NULL);
        }
    }
    PQclear(res);
    if (conn)
        PQfinish(conn);
}

static void runs_free(Runs *rs)
{
    for (int i = 0; i < rs->n; i++) {
        Run *r = &rs->r[i];

        free(r->when);
        free(r->operator);
        free(r->note);
        free(r->rows);
        free(r->verify);
        free(r->total);
        for (int s = 0; s < MAX_STEPS; s++)
            free(r->secs[s]);
    }
    for (int s = 0; s < rs->nsteps; s++)
        free(rs->steps[s]);
    free(rs->error);
}

static void put_timings(Buf *b, const char *kind, const Runs *rs, const char *where)
{
    double worst = 0;

    buf_printf(b, "\n### %s\n\n", kind);
    if (rs->error) {
        buf_printf(b, "The records on the %s could not be read: %s\n", where, rs->error);
        return;
    }
    if (rs->n == 0) {
        buf_printf(b,
                   "No %s has been recorded yet. Rehearse it at least three times (on a copy"
                   " of production, with the application's load) before the real one: each"
                   " run records its step times here.\n",
                   kind);
        return;
    }
    buf_printf(b, "From the last %d %s run(s) recorded on the %s (seconds):\n\n| step |", rs->n,
               kind, where);
    for (int i = 0; i < rs->n; i++)
        buf_printf(b, " %s |", rs->r[i].when);
    buf_puts(b, "\n|---|");
    for (int i = 0; i < rs->n; i++)
        buf_puts(b, "---:|");
    buf_putc(b, '\n');
    for (int s = 0; s < rs->nsteps; s++) {
        buf_printf(b, "| %s |", rs->steps[s]);
        for (int i = 0; i < rs->n; i++)
            buf_printf(b, " %s |", rs->r[i].secs[s] ? rs->r[i].secs[s] : "-");
        buf_putc(b, '\n');
    }
    buf_puts(b, "| **total** |");
    for (int i = 0; i < rs->n; i++)
        buf_printf(b, " %s |", rs->r[i].total);
    buf_puts(b, "\n| writers wait (freeze to switch) |");
    for (int i = 0; i < rs->n; i++) {
        buf_printf(b, " %.2f |", rs->r[i].freeze);
        worst = rs->r[i].freeze > worst ? rs->r[i].freeze : worst;
    }
    buf_puts(
        b,
        "\n\n| run | operator | note | rows verified | verification |\n|---|---|---|---:|---|\n");
    for (int i = 0; i < rs->n; i++)
        buf_printf(b, "| %s | %s | %s | %s | %s |\n", rs->r[i].when, rs->r[i].operator,
                   rs->r[i].note, rs->r[i].rows, rs->r[i].verify);
    buf_printf(b,
               "\nExpect the application's writes to wait about %.1f s (the longest freeze"
               " recorded)%s.\n",
               worst, rs->n < 3 ? "; fewer than three runs are recorded, so rehearse again" : "");
}

static void put_tables(Buf *b, const Config *cfg)
{
    if (cfg->source.ntables == 0) {
        buf_puts(b, "every table of schema `public` on the source");
        return;
    }
    for (size_t i = 0; i < cfg->source.ntables; i++) {
        char *d = config_table_display(&cfg->source.tables[i]);

        buf_printf(b, "%s`%s`", i ? ", " : "", d);
        free(d);
    }
}

static void put_counts(Buf *b, const Config *cfg)
{
    buf_puts(b, "```sql\n");
    if (cfg->source.ntables == 0)
        buf_puts(b, "-- for each table T of schema public:\nSELECT count(*) FROM T;\n");
    for (size_t i = 0; i < cfg->source.ntables; i++) {
        char *d = config_table_display(&cfg->source.tables[i]);

        buf_printf(b, "SELECT '%s' AS t, count(*) FROM %s;\n", d, d);
        free(d);
    }
    buf_puts(b, "```\n");
}

int runbook_render(const Config *cfg, const char *config_path, char **out)
{
    Buf b = BUF_INIT;
    Runs cut = {0}, back = {0};
    char *src = safe_conninfo(&cfg->source.conn), *dst = safe_conninfo(&cfg->target.conn);
    char *revpath = reverse_default_path(cfg);
    const char *p = cfg->pipeline, *f = config_path;
    char when[32];
    time_t now = time(NULL);
    bool pg = strcmp(cfg->target.type, "postgres") == 0;

    strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", gmtime(&now));
    if (pg) {
        load_runs(&cfg->target.conn, "target", cfg, "cutover", &cut);
        load_runs(&cfg->source.conn, "source", cfg, "rollback", &back);
    }
    buf_printf(&b,
               "# Runbook: migration `%s`\n\n"
               "Generated by `tidemark runbook` on %s from `%s` and the recorded cutover and"
               " rollback runs. Each section says what to run, what to check, and what to do if"
               " the check fails. docs/CUTOVER.md explains the mechanics.\n\n"
               "## 1. What moves\n\n"
               "- **Source** (old system of record): `%s`\n"
               "- **Target** (new system of record): `%s`\n"
               "- **Tables**: ",
               p, when, f, src, dst);
    put_tables(&b, cfg);
    buf_printf(&b,
               "\n- **Pipeline** `%s`: slot `%s` and publication `%s` on the source; state in"
               " schema `tidemark` on the target.\n"
               "- **Fallback pipeline** `%s%s` (written by the cutover to `%s`): streams the"
               " target's changes back to the source after the cutover, so a rollback loses"
               " nothing.\n"
               "- **Configuration**: `%s`\n\n"
               "## 2. Expected durations\n",
               p, cfg->source.slot, cfg->source.publication, p, REVERSE_SUFFIX, revpath, f);
    if (!pg)
        buf_puts(&b, "\nThis pipeline writes to Kafka: it has no cutover or rollback.\n");
    put_timings(&b, "cutover", &cut, "target");
    put_timings(&b, "rollback", &back, "source");
    buf_printf(&b,
               "\n## 3. Before the start: a restore of the target that works\n\n"
               "A backup that has not been restored is a hope. Before the first row moves,"
               " back up the target database, restore it into a scratch database and compare:\n\n"
               "```sh\n"
               "pg_dump --format=custom --file=target-before.dump \"%s\"\n"
               "createdb restore_check   # on the target server, same owner\n"
               "pg_restore --dbname=restore_check --exit-on-error target-before.dump\n"
               "# the counts below on the target and on restore_check must be equal\n"
               "dropdb restore_check\n"
               "```\n\n"
               "Keep `target-before.dump` until the migration is signed off.\n\n"
               "## 4. Pre-checks\n\n"
               "```sh\n"
               "tidemark preflight --config %s --format markdown > preflight.md\n"
               "```\n\n"
               "Exit status 0: go. 3: warnings, read each one and decide (record the decision"
               " with the sign-off). 4: errors, do not start; each finding says how to fix it."
               " Run it again after every fix; it creates nothing.\n\n"
               "## 5. Copy and stream\n\n"
               "```sh\n"
               "sudo install -m 0640 -o root -g tidemark %s /etc/tidemark/%s.yaml\n"
               "sudo systemctl enable --now tidemark@%s\n"
               "tidemark status --config %s        # until every table is 'streaming'\n"
               "tidemark verify --config %s        # exit 0: every row matches\n"
               "```\n\n"
               "If `status` shows an error or a halt, see docs/OPERATIONS.md; nothing has"
               " changed for the application yet.\n\n"
               "## 6. Cutover\n\n"
               "In the maintenance window, with the daemon running:\n\n"
               "```sh\n"
               "tidemark cutover --config %s --note \"production\"\n"
               "```\n\n"
               "It prints each step with its duration: check, freeze (the tables are locked on"
               " the source: the application's writes wait, reads go on), drain (to zero lag),"
               " sequences, matviews, verify (every row), prepare (the fallback slot on the"
               " target), switch (the source database becomes read-only, the switch is signed"
               " off on the target), finish (the forward slot is dropped; the daemon stops by"
               " itself). If any step fails, or you press Ctrl-C before the switch, it undoes"
               " everything and says so: the source is writable again and the pipeline"
               " streams on; fix the cause and run it again.\n\n"
               "Then, at once:\n\n"
               "1. Point the application at the target.\n"
               "2. Start the fallback: `sudo install -m 0640 -o root -g tidemark %s"
               " /etc/tidemark/%s%s.yaml && sudo systemctl enable --now tidemark@%s%s`.\n"
               "3. Run the validation below.\n\n"
               "## 7. Validation queries\n\n"
               "Row counts, on the source and on the target (equal right after the cutover):\n\n",
               dst, f, f, p, p, f, f, f, revpath, p, REVERSE_SUFFIX, p, REVERSE_SUFFIX);
    put_counts(&b, cfg);
    buf_printf(&b,
               "\nThe signed-off record of the cutover, on the target:\n\n"
               "```sql\n"
               "SELECT started_at, finished_at, operator, status, frozen_lsn, source_rows,"
               " target_rows, verify_ok, steps\n"
               "  FROM tidemark.cutover_runs WHERE pipeline = '%s' ORDER BY started_at DESC"
               " LIMIT 1;\n"
               "SELECT lsn, updated_at FROM tidemark.watermark WHERE pipeline = '%s%s'; -- on the"
               " source: the fallback's position\n"
               "```\n\n"
               "`tidemark status --config /etc/tidemark/%s%s.yaml` shows the fallback's lag.\n\n"
               "## 8. Sign-off criteria\n\n"
               "- `tidemark cutover` exited 0 and its record says `status = done`, `verify_ok ="
               " true`, `source_rows = target_rows`.\n"
               "- The counts of section 7 match; the application's smoke tests pass against the"
               " target.\n"
               "- The fallback pipeline streams (`tidemark status`: lag under a minute) for the"
               " whole monitoring period (48 to 72 hours), so the source stays a current"
               " rollback target.\n"
               "- The backup of section 3 was restored successfully.\n"
               "- Named people sign off: the operator (recorded by the cutover), the application"
               " owner, the data owner.\n\n"
               "## 9. Rollback\n\n"
               "When the application misbehaves on the target during the monitoring period:\n\n"
               "```sh\n"
               "tidemark rollback --config %s --note \"why\"\n"
               "```\n\n"
               "With the fallback running, it locks the tables on the target, drains the"
               " fallback stream, sets the source's sequences, refreshes its materialized views,"
               " verifies every row, re-creates the forward pipeline at that point, makes the"
               " target read-only and the source writable, and signs off on the source. Then"
               " point the application back at the source and start the forward pipeline again"
               " (`sudo systemctl start tidemark@%s`): it keeps the target current from where"
               " the rollback left it, ready for the next cutover. Check with section 7, roles"
               " swapped. The same rules hold as for the cutover: a failure or Ctrl-C before"
               " the switch undoes everything.\n\n"
               "If a cutover or rollback process was killed outright, run the same command"
               " again (it cleans up, or finishes a switch that was already made) or with"
               " `--abort` to only clean up.\n\n"
               "## 10. After the monitoring period\n\n"
               "```sh\n"
               "sudo systemctl disable --now tidemark@%s%s\n"
               "tidemark teardown --config %s   # slots, publications, state on both sides\n"
               "```\n\n"
               "The source stays read-only; archive it as your retention rules say.\n",
               p, p, REVERSE_SUFFIX, p, REVERSE_SUFFIX, f, p, p, REVERSE_SUFFIX, f);
    *out = xstrdup(buf_cstr(&b));
    buf_release(&b);
    runs_free(&cut);
    runs_free(&back);
    free(src);
    free(dst);
    free(revpath);
    return 0;
}
