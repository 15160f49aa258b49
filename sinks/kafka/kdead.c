/*
 * The Kafka sink's dead letters: rows a mapping could not transform
 * (on_error: dead_letter) and messages Kafka rejected for good (target
 * undeliverable: dead_letter) go to state_dir/dead_letters.jsonl, one JSON
 * object per line with the table, the source LSN and transaction, the error
 * and the full row or message, each fsynced before the pipeline goes on, so
 * nothing the stream skips is lost. A file rather than a topic: a message
 * too large for Kafka would be too large for a dead-letter topic as well.
 */
#include "sinks/kafka/kafkasink_int.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int kafkasink_dead_letter(KafkaSink *s, const char *kind, const char *table, Lsn lsn, uint32_t xid,
                          const char *error, const char *fields_json)
{
    char *path = xasprintf("%s/dead_letters.jsonl", s->state.dir);
    Buf line = BUF_INIT;
    char lsn_text[24];
    struct timespec ts;
    int fd, rc = 0;

    clock_gettime(CLOCK_REALTIME, &ts);
    lsn_format(lsn, lsn_text, sizeof(lsn_text));
    buf_printf(&line, "{\"kind\":\"%s\",\"at_ms\":%lld,\"pipeline\":", kind,
               (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    debezium_json_string(&line, s->cfg->pipeline, strlen(s->cfg->pipeline));
    buf_puts(&line, ",\"table\":");
    debezium_json_string(&line, table, strlen(table));
    buf_printf(&line, ",\"lsn\":\"%s\",\"xid\":%u,\"error\":", lsn_text, xid);
    debezium_json_string(&line, error, strlen(error));
    buf_printf(&line, ",%s}\n", fields_json);
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = tm_fail(-errno, "cannot open %s: %s", path, strerror(errno));
    } else {
        /* One write: concurrent writers (copy workers, the loop) never interleave lines. */
        ssize_t n = write(fd, line.data, line.len);

        if (n != (ssize_t)line.len)
            rc = tm_fail(n < 0 ? -errno : -EIO, "cannot write %s: %s", path,
                         n < 0 ? strerror(errno) : "short write");
        else if (fsync(fd) != 0)
            rc = tm_fail(-errno, "cannot fsync %s: %s", path, strerror(errno));
        close(fd);
    }
    if (rc == 0) {
        atomic_fetch_add(&s->dead_letters, 1);
        log_write(LOG_LVL_WARNING, table, lsn, "dead letter (%s): %s", kind, error);
    }
    free(path);
    buf_release(&line);
    return rc;
}
