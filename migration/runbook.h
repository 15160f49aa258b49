/*
 * The migration runbook, generated from the configuration and the recorded
 * cutover and rollback runs (see runbook.c).
 */
#ifndef TM_RUNBOOK_H
#define TM_RUNBOOK_H

#include "config/config.h"

/* Markdown in *out (malloc'd). Unreachable databases are noted, not fatal. */
int runbook_render(const Config *cfg, const char *config_path, char **out);

#endif
