/*
 * The one log API. Levels follow syslog priorities so the journald PRIORITY
 * field needs no translation. Under systemd (JOURNAL_STREAM set and matching
 * stderr) records go to journald with structured fields (PIPELINE, TABLE,
 * LSN); otherwise they are timestamped lines on stderr, or JSON lines with
 * --log-format json.
 */
#ifndef TM_LOG_H
#define TM_LOG_H

#include "core/error.h"
#include "core/lsn.h"

typedef enum LogLevel {
    LOG_LVL_ERROR = 3,
    LOG_LVL_WARNING = 4,
    LOG_LVL_NOTICE = 5,
    LOG_LVL_INFO = 6,
    LOG_LVL_DEBUG = 7,
} LogLevel;

typedef enum LogFormat {
    LOG_FMT_AUTO, /* journald when under systemd, else text */
    LOG_FMT_TEXT,
    LOG_FMT_JSON,
    LOG_FMT_JOURNAL,
} LogFormat;

void log_init(LogFormat fmt, LogLevel level);
void log_set_level(LogLevel level);
void log_set_pipeline(const char *pipeline);
/* Parses "error|warning|notice|info|debug"; returns 0 or -EINVAL. */
int log_level_parse(const char *s, LogLevel *out);
int log_format_parse(const char *s, LogFormat *out);

/* table may be NULL; lsn may be LSN_INVALID. */
void log_write(LogLevel level, const char *table, Lsn lsn, const char *fmt, ...) TM_PRINTF(4, 5);

#define log_error(...)  log_write(LOG_LVL_ERROR, NULL, LSN_INVALID, __VA_ARGS__)
#define log_warn(...)   log_write(LOG_LVL_WARNING, NULL, LSN_INVALID, __VA_ARGS__)
#define log_notice(...) log_write(LOG_LVL_NOTICE, NULL, LSN_INVALID, __VA_ARGS__)
#define log_info(...)   log_write(LOG_LVL_INFO, NULL, LSN_INVALID, __VA_ARGS__)
#define log_debug(...)  log_write(LOG_LVL_DEBUG, NULL, LSN_INVALID, __VA_ARGS__)

#endif
