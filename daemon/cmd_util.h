/*
 * Small pieces the report-writing commands (profile, verify) share: option
 * value parsing, `--table` lists, and writing a report file.
 */
#ifndef TM_CMD_UTIL_H
#define TM_CMD_UTIL_H

#include "config/config.h"

#include <stdbool.h>
#include <stddef.h>

/* An integer option in [lo, hi]; the error names opt. */
int cmd_parse_long(const char *opt, const char *s, long lo, long hi, long *out);

/* Parses a `--table` SQL name and appends it to *tables. */
int cmd_add_table(TableName **tables, size_t *n, const char *arg);
void cmd_tables_free(TableName *tables, size_t n);

bool cmd_has_ext(const char *path, const char *ext);
int cmd_write_file(const char *path, const char *text);

#endif
