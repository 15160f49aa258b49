/*
 * One pipeline: source slot → decoder → sink, wired on one libev loop
 * (invariant 8). pipeline_run() blocks until SIGTERM/SIGINT (returns 0 after a
 * clean drain) or a fatal error (returns < 0 with tm_error() set).
 */
#ifndef TM_PIPELINE_H
#define TM_PIPELINE_H

#include "config/config.h"

int pipeline_run(Config *cfg);

#endif
