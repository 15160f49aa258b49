/*
 * Removing a pipeline for good: its slots, publications and state on both
 * sides, its fallback's too (see teardown.c).
 */
#ifndef TM_TEARDOWN_H
#define TM_TEARDOWN_H

#include "config/config.h"

#include <stdbool.h>
#include <stdio.h>

/* -EBUSY while a daemon streams from one of the slots; nothing to do is 0. */
int teardown_run(const Config *fwd, bool purge_history, FILE *out);

#endif
