/*
 * `tidemark preflight`: every problem that would stop or endanger the
 * migration, found at once and before anything is created on either side
 * (no slot, no publication, no schema tidemark): the source's logical
 * decoding settings and free slots and senders, roles and privileges on both
 * sides (for the pipeline, the cutover and the fallback), every table's
 * existence, key or replica identity and the target's emptiness, extensions,
 * encodings, sequences, materialized views, disk headroom for the WAL the
 * slot will retain, the metrics port, and the clocks. Each finding has a
 * severity, what is wrong and how to fix it.
 */
#ifndef TM_PREFLIGHT_H
#define TM_PREFLIGHT_H

#include "config/config.h"

#include <jansson.h>

typedef enum PreflightSeverity {
    PF_OK,
    PF_INFO,
    PF_WARNING,
    PF_ERROR,
} PreflightSeverity;

/* Exit codes by the worst finding (docs/CUTOVER.md). */
enum { PREFLIGHT_EXIT_WARNING = 3, PREFLIGHT_EXIT_ERROR = 4 };

/*
 * Runs every check; *report: {"pipeline", "findings": [{"severity", "side",
 * "check", "subject", "message", "fix"}], "summary": {...}}. Unreachable
 * databases are findings, not failures.
 */
int preflight_run(const Config *cfg, json_t **report);

/* The worst severity in the report. */
PreflightSeverity preflight_worst(const json_t *report);

/* "text", "json" or "markdown", malloc'd. */
char *preflight_render(const json_t *report, const char *format);

#endif
