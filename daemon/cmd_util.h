/*
 * Small pieces the commands share: loading the one `--config FILE` they all
 * take, the service commands' options (run, apply), option value parsing,
 * `--table` lists, and writing a report file.
 */
#ifndef TM_CMD_UTIL_H
#define TM_CMD_UTIL_H

#include "config/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef void (*CmdUsage)(FILE *out);

/* After getopt: exactly a --config FILE and no other argument, loaded. 0 with
 * *cfg set, or the exit status for the caller to return (usage printed when
 * given, for argument errors). */
int cmd_load_config(const char *cmd, const char *path, int argc, CmdUsage usage, Config **cfg);

/* The options of a service command (run, apply): --config, --log-level,
 * --log-format, --help. Returns true with *cfg loaded and logging set up for
 * it, or false with *status the exit status (0 after --help). */
bool cmd_service_start(const char *cmd, int argc, char **argv, CmdUsage usage, Config **cfg,
                       int *status);

/* An integer option in [lo, hi]; the error names opt. */
int cmd_parse_long(const char *opt, const char *s, long lo, long hi, long *out);

/* Parses a `--table` SQL name and appends it to *tables. */
int cmd_add_table(TableName **tables, size_t *n, const char *arg);
void cmd_tables_free(TableName *tables, size_t n);

bool cmd_has_ext(const char *path, const char *ext);
int cmd_write_file(const char *path, const char *text);

#endif
