/*
 * `tidemark profile`: what the source data looks like before it moves. One
 * run takes a consistent snapshot of the source, scans each table a bounded
 * number of times (an aggregate pass and a grouping pass, plus an exact count
 * when sampling), several tables at once on independent connections, and
 * returns one JSON report: per table and per column statistics, findings
 * (anomalies with evidence, ordered by severity), relationships, and checks
 * against the target's constraints. The same report renders as text,
 * Markdown, JSON or a self-contained HTML page, and is stored on a postgres
 * target (with the baseline row counts) for later verification.
 */
#ifndef TM_PROFILE_H
#define TM_PROFILE_H

#include "config/config.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum ProfileFormat {
    PROFILE_FMT_TEXT,
    PROFILE_FMT_JSON,
    PROFILE_FMT_MARKDOWN,
    PROFILE_FMT_HTML,
} ProfileFormat;

typedef struct ProfileOptions {
    size_t ntables;    /* --table: overrides source.tables when > 0 */
    TableName *tables; /* borrowed */
    double sample_pct; /* 0: every row; else TABLESAMPLE SYSTEM (pct) */
    int jobs;          /* 0: profile.jobs from the config */
    bool store;        /* write the report and baseline counts to a postgres target */
    bool progress;     /* one line per table on stderr */
} ProfileOptions;

/*
 * Profiles the source described by cfg. On success *report is the report
 * (the caller json_decref()s it). A table that could not be profiled is
 * reported inside the report (finding profile_failed) and makes the return
 * -EIO with *report still set, so the partial report can be written.
 */
int profile_run(const Config *cfg, const ProfileOptions *opt, json_t **report);

/* "text", "json", "markdown" (or "md"), "html"; 0 or -EINVAL. */
int profile_format_parse(const char *s, ProfileFormat *out);

/* The report in fmt, malloc'd and NUL-terminated. */
char *profile_render(const json_t *report, ProfileFormat fmt);

#endif
