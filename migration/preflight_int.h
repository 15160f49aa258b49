/*
 * Internals of the preflight checks (see preflight.h).
 */
#ifndef TM_PREFLIGHT_INT_H
#define TM_PREFLIGHT_INT_H

#include "migration/preflight.h"
#include "core/table.h"

#include <libpq-fe.h>
#include <stdbool.h>

typedef struct PfTable {
    char *schema, *name, *display;
    char *tschema, *tname; /* on the target (a mapping may rename it) */
    bool on_source, on_target;
} PfTable;

typedef struct Pf {
    const Config *cfg;
    PGconn *s, *t; /* NULL when unreachable */
    json_t *findings;
    PfTable *tabs;
    size_t ntabs;
    bool started; /* the target has the pipeline's watermark */
    bool s_super, t_super;
} Pf;

void pf_add(Pf *pf, PreflightSeverity sev, const char *side, const char *check, const char *subject,
            const char *fix, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* One text value (NULL: SQL NULL, no row, or the query failed: *failed). */
char *pf_value(PGconn *conn, const char *sql, int n, const char *const *params);

void pf_check_source(Pf *pf);
void pf_check_target(Pf *pf);
void pf_check_both(Pf *pf);

#endif
