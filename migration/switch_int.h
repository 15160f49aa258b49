/*
 * Internals shared by the cutover/rollback files: the run's context, the
 * steps on either side, and the run record on the target.
 */
#ifndef TM_SWITCH_INT_H
#define TM_SWITCH_INT_H

#include "migration/switch.h"
#include "core/lsn.h"
#include "core/table.h"

#include <jansson.h>
#include <libpq-fe.h>

typedef struct SwitchCtx {
    const SwitchOptions *opt;
    const char *kind; /* "cutover" | "rollback" */
    Config *rev;      /* the fallback pipeline's config */
    char *rev_yaml;
    const Config *from; /* the direction that runs now: X -> Y */
    const Config *to;   /* the one that takes over: Y -> X; NULL without a fallback */
    TableSet tabs;      /* from's tables, resolved on X */
    PGconn *x, *xlock, *y;
    char *xdb, *ydb; /* database names */
    char *run_id;
    Lsn frozen_lsn, switch_lsn;
    double t0;
    json_t *steps;  /* [{step, seconds, ok}] */
    json_t *verify; /* [{table, source_rows, target_rows, ok}] */
    int verify_ok;  /* -1: not verified */
    long long src_rows, dst_rows;
    struct SwGuard *guard; /* ends writers that would hold up the frozen period */
    char detail[512];      /* the current step's one-line result */
    char *notes;           /* lines a step printed (sequence values) */
    /* what an abort undoes */
    char *seq_before; /* Y's sequences (jsonb) before they were set */
    char *x_previous; /* X's own default_transaction_read_only setting, if any */
    bool pub_made, slot_made, to_saved, x_frozen, switched;
} SwitchCtx;

/* A session for the run: read-write even on a database frozen by tidemark. */
int sw_open(const ConfigEndpoint *ep, const char *what, PGconn **out);

/* The schemas holding tabs as a text[] literal, malloc'd. */
char *sw_schema_array(const TableSet *tabs);

/* One text value of a one-row query (NULL for SQL NULL or no row; malloc'd). */
int sw_value(PGconn *conn, const char *sql, int n, const char *const *params, char **out);

/* TIDEMARK_FAULT=point[:fail|kill|wait] (tests): act at that point. */
int sw_fault(SwitchCtx *c, const char *point);

/*
 * While the locks are held, a session that wrote elsewhere first (it has a
 * transaction id) and now waits for a locked table would wait for ever, and
 * with it anything that waits for running transactions to end: creating a
 * slot (verify's snapshot) on that server. A thread ends such sessions every
 * 200 ms; stopping it returns how many it ended.
 */
int sw_guard_start(SwitchCtx *c);
int sw_guard_stop(SwitchCtx *c);

/* ---- the run record on Y (switch_record.c) ---- */
int sw_record_begin(SwitchCtx *c);
int sw_record_update(SwitchCtx *c, const char *status, const char *error);
/* The switch itself: the sign-off and "from is switched" in one Y transaction. */
int sw_record_switch(SwitchCtx *c);
const char *sw_operator(void);

/* ---- the sides (switch_side.c) ---- */
int sw_step_prepare(SwitchCtx *c);
int sw_step_switch(SwitchCtx *c);
int sw_step_finish(SwitchCtx *c);
/* Undoes what c did before the switch; prints each action. */
void sw_undo(SwitchCtx *c);
/*
 * What an interrupted run left on X and Y, without its context: X frozen,
 * to's half-built state and slot. *found: something was cleaned.
 */
int sw_cleanup_leftovers(SwitchCtx *c, bool *found);
/* Is from switched on Y? (*when: malloc'd description, NULL if not). */
int sw_switched(SwitchCtx *c, const Config *dir, PGconn *on, char **when);

#endif
