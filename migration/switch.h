/*
 * Cutover and rollback: moving the system of record from one database to
 * the other with nothing lost. Both are the same operation on a pair of
 * pipelines, the forward one (old -> new) and its fallback (new -> old):
 * the direction that runs now ("from", X -> Y) is frozen on X, drained to
 * zero lag, sequences and materialized views are brought over, the tables
 * are verified, the other direction ("to", Y -> X) is created at the exact
 * point where both sides are equal, and the switch is recorded and signed
 * off on Y. Cutover goes forward -> fallback, rollback fallback -> forward.
 * Everything before the switch is undone on failure or interruption
 * (docs/CUTOVER.md).
 */
#ifndef TM_SWITCH_H
#define TM_SWITCH_H

#include "config/config.h"

#include <stdbool.h>
#include <stdio.h>

typedef enum SwitchKind {
    SWITCH_CUTOVER,
    SWITCH_ROLLBACK,
} SwitchKind;

typedef struct SwitchOptions {
    SwitchKind kind;
    const Config *fwd;        /* the forward pipeline's configuration */
    const char *reverse_path; /* cutover: where the fallback config is written */
    bool no_fallback;         /* cutover without a fallback pipeline */
    long lock_timeout_ms;     /* waiting for the freeze's table locks */
    long drain_timeout_s;     /* waiting for zero lag */
    const char *note;         /* recorded with the run ("rehearsal 2") */
    /* Set by SIGINT/SIGTERM; polled between and inside the steps. */
    const volatile int *interrupted;
    FILE *out; /* the steps as they happen */
} SwitchOptions;

/*
 * Runs a cutover or a rollback. 0: switched (and recorded); < 0: aborted and
 * undone (tm_error() says why), or a failure after the switch that leaves it
 * in force (the message says what remains to do).
 */
int switch_run(const SwitchOptions *opt);

/*
 * Undoes what an interrupted run left (a run killed outright cannot clean up
 * after itself): the database frozen by it is made writable again, the
 * half-created other direction is removed. Nothing to do is success.
 */
int switch_abort(const SwitchOptions *opt);

#endif
