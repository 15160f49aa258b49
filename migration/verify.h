/*
 * `tidemark verify`: proves that the target holds what the source holds,
 * row by row, while the pipeline keeps streaming. One run takes a source
 * snapshot with an exact LSN (a temporary slot's exported snapshot), waits
 * until the target's watermark has passed it, then compares every table
 * inside both databases: per-range counts and hash sums, bisection of the
 * ranges that differ down to a few rows, and a column-by-column diff of
 * those rows. Differences are rechecked at fresh snapshots so a row that
 * changed after the snapshot is not reported; integrity (foreign keys,
 * business rules) and spot checks run on the same snapshots. The result is
 * one JSON report, rendered as text, JSON or Markdown and stored on the
 * target (tidemark.verify_runs, tidemark.verify_failures).
 */
#ifndef TM_VERIFY_H
#define TM_VERIFY_H

#include "config/config.h"
#include "core/lsn.h"
#include "core/table.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

typedef enum VerifyFormat {
    VERIFY_FMT_TEXT,
    VERIFY_FMT_JSON,
    VERIFY_FMT_MARKDOWN,
} VerifyFormat;

typedef struct VerifyOptions {
    size_t ntables;      /* --table: overrides source.tables when > 0 */
    TableName *tables;   /* borrowed */
    int jobs;            /* tables compared in parallel; 0: verify.jobs */
    bool store;          /* write verify_runs / verify_failures on the target */
    bool progress;       /* one line per table on stderr */
    bool no_wait;        /* do not wait for the watermark (pipeline stopped, static data) */
    bool integrity;      /* foreign keys, rules and spot checks (default true) */
    long max_rows_per_s; /* throttle; 0: verify.max_rows_per_second */
    /* Set from another thread (the daemon stopping): stop waiting for the
     * pipeline to catch up and fail with -ECANCELED. */
    const volatile int *cancel;
    /*
     * How the target shows that it holds every source transaction committed
     * up to lsn when that is not this pipeline's watermark (a target fed
     * through Kafka by `tidemark apply`: daemon/applier_verify.c). NULL: the
     * watermark. 0 once it does; -ETIMEDOUT after timeout_s.
     */
    int (*wait_target)(const Config *cfg, PGconn *dst, Lsn lsn, long timeout_s,
                       const volatile int *cancel);
} VerifyOptions;

/*
 * Verifies the tables of cfg. Returns 0 with *report set (report "ok" says
 * whether everything matched), or a negative code (with *report possibly set
 * to a partial report) when the run itself failed: cannot connect, the
 * pipeline did not catch up with the snapshot, a query failed.
 */
int verify_run(const Config *cfg, const VerifyOptions *opt, json_t **report);

/* true when the report says everything matched. */
bool verify_report_ok(const json_t *report);

/* "text", "json", "markdown" (or "md"); 0 or -EINVAL. */
int verify_format_parse(const char *s, VerifyFormat *out);

/* The report in fmt, malloc'd and NUL-terminated. */
char *verify_render(const json_t *report, VerifyFormat fmt);

/* ---- continuous verification (the daemon's integration point) ------------ */

/* The last result for one table, as the metrics endpoint exposes it. */
typedef struct VerifyResult {
    char table[256];       /* schema.name */
    bool ok;               /* counts equal, no difference, no integrity failure */
    bool failed;           /* the run itself failed; error says why */
    long long source_rows; /* at the snapshot */
    long long target_rows;
    long long missing;   /* rows missing in the target */
    long long extra;     /* rows only in the target */
    long long differing; /* rows with differing columns */
    long long integrity; /* foreign-key orphans + rule violations (rows) */
    double seconds;      /* duration of the run */
    Lsn snapshot_lsn;    /* source snapshot the comparison used */
    time_t finished_at;  /* wall clock */
    char error[512];
} VerifyResult;

/*
 * Verifies one table (throttled by verify.max_rows_per_second), stores the
 * run on the target like `tidemark verify --table`, and fills *out. Blocking:
 * it opens its own connections (and a temporary slot for the snapshot), so
 * the daemon calls it from a worker thread, never from the libev loop.
 * Returns 0 when the run completed (out->ok tells the verdict), or a negative
 * code with out->failed and out->error set.
 */
int verify_table_once(const Config *cfg, const TableDef *table, const volatile int *cancel,
                      VerifyResult *out);

/*
 * A worker thread that runs verify_table_once over tables every
 * verify.interval_s seconds (one table after the other, throttled). Results
 * are read with verify_loop_results under a mutex, so the HTTP handler on the
 * loop thread never blocks on PostgreSQL. NULL when verify.interval_s is 0.
 */
typedef struct VerifyLoop VerifyLoop;

VerifyLoop *verify_loop_start(const Config *cfg, const TableSet *tables);

/* Copies up to max results (one per table, in table order); returns the count. */
size_t verify_loop_results(VerifyLoop *vl, VerifyResult *out, size_t max);

/* Asks the thread to stop (it finishes the current query) and joins it. */
void verify_loop_stop(VerifyLoop *vl);

#endif
