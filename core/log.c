/*
 * Log sinks: text, JSON lines, or journald. Detection of journald follows
 * systemd's documented rule: JOURNAL_STREAM names the device:inode of the
 * stream stderr is connected to, and only then is native logging wanted.
 * Every thread logs; the level is the one setting that changes while they
 * run (SIGHUP), so it is an atomic. Format and pipeline name are set before
 * any thread starts.
 */
#include "core/log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>
#include <time.h>
#include <unistd.h>

static atomic_int cur_level = LOG_LVL_INFO;
static LogFormat cur_fmt = LOG_FMT_TEXT;
static char pipeline_name[128];

static const char *level_names[] = {
    [LOG_LVL_ERROR] = "error", [LOG_LVL_WARNING] = "warning", [LOG_LVL_NOTICE] = "notice",
    [LOG_LVL_INFO] = "info",   [LOG_LVL_DEBUG] = "debug",
};

static bool stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
        return false;
    if (fstat(STDERR_FILENO, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(LogFormat fmt, LogLevel level)
{
    if (fmt == LOG_FMT_AUTO)
        fmt = stderr_is_journal() ? LOG_FMT_JOURNAL : LOG_FMT_TEXT;
    cur_fmt = fmt;
    atomic_store_explicit(&cur_level, level, memory_order_relaxed);
}

/* Relaxed: a thread may log one more line at the old level, nothing else depends on it. */
void log_set_level(LogLevel level)
{
    atomic_store_explicit(&cur_level, level, memory_order_relaxed);
}

void log_set_pipeline(const char *pipeline)
{
    snprintf(pipeline_name, sizeof(pipeline_name), "%s", pipeline ? pipeline : "");
}

int log_level_parse(const char *s, LogLevel *out)
{
    for (int i = LOG_LVL_ERROR; i <= LOG_LVL_DEBUG; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (LogLevel)i;
            return 0;
        }
    }
    if (strcmp(s, "warn") == 0) {
        *out = LOG_LVL_WARNING;
        return 0;
    }
    return tm_fail(-EINVAL, "unknown log level \"%s\" (error, warning, notice, info, debug)", s);
}

int log_format_parse(const char *s, LogFormat *out)
{
    if (strcmp(s, "text") == 0)
        *out = LOG_FMT_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = LOG_FMT_JSON;
    else if (strcmp(s, "journal") == 0)
        *out = LOG_FMT_JOURNAL;
    else if (strcmp(s, "auto") == 0)
        *out = LOG_FMT_AUTO;
    else
        return tm_fail(-EINVAL, "unknown log format \"%s\" (auto, text, json, journal)", s);
    return 0;
}

static void write_text(LogLevel level, const char *table, const char *msg)
{
    struct timespec ts;
    struct tm tm;
    char when[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ %-7s %s%s%s%s%s%s\n", when, ts.tv_nsec / 1000000, level_names[level],
            pipeline_name[0] ? "[" : "", pipeline_name, pipeline_name[0] ? "] " : "", msg,
            table ? " table=" : "", table ? table : "");
}

void log_write(LogLevel level, const char *table, Lsn lsn, const char *fmt, ...)
{
    char msg[2048];
    char lsnbuf[24];
    const char *lsnp = NULL;
    va_list ap;

    if ((int)level > atomic_load_explicit(&cur_level, memory_order_relaxed))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (lsn != LSN_INVALID)
        lsnp = lsn_format(lsn, lsnbuf, sizeof(lsnbuf));

    switch (cur_fmt) {
    case LOG_FMT_JOURNAL:
        sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", (int)level, "SYSLOG_IDENTIFIER=tidemark",
                        "PIPELINE=%s", pipeline_name, "TABLE=%s", table ? table : "", "LSN=%s",
                        lsnp ? lsnp : "", NULL);
        break;
    case LOG_FMT_JSON: {
        json_t *o = json_object();
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        json_object_set_new(o, "ts", json_real((double)ts.tv_sec + ts.tv_nsec / 1e9));
        json_object_set_new(o, "level", json_string(level_names[level]));
        if (pipeline_name[0])
            json_object_set_new(o, "pipeline", json_string(pipeline_name));
        json_object_set_new(o, "msg", json_string(msg));
        if (table)
            json_object_set_new(o, "table", json_string(table));
        if (lsnp)
            json_object_set_new(o, "lsn", json_string(lsnp));
        char *s = json_dumps(o, JSON_COMPACT);
        if (s) {
            fprintf(stderr, "%s\n", s);
            free(s);
        }
        json_decref(o);
        break;
    }
    default: {
        char line[2200];

        if (lsnp) {
            snprintf(line, sizeof(line), "%s lsn=%s", msg, lsnp);
            write_text(level, table, line);
        } else {
            write_text(level, table, msg);
        }
        break;
    }
    }
}
