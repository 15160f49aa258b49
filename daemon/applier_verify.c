/*
 * `tidemark verify` against a target fed through Kafka (applier.h): the
 * target holds every source transaction committed up to an LSN once (1) the
 * producing pipeline's slot confirmed it -- its Kafka sink confirms only
 * what every broker acknowledged, so all of them are in the topics -- and
 * (2) the appliers' offsets in tidemark.kafka_offsets reached the end each
 * partition had after that. Both are polled every 50 ms up to the deadline.
 */
#include "connectors/kafka/kconsumer.h"
#include "connectors/pg/pgconn.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/xmalloc.h"
#include "daemon/applier.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool cancelled(const volatile int *cancel)
{
    return cancel && __atomic_load_n(cancel, __ATOMIC_ACQUIRE);
}

/* Polls until the slot confirmed lsn. */
static int wait_slot(const Config *cfg, Lsn lsn, double deadline, const volatile int *cancel)
{
    PGconn *src = NULL;
    char want[32], *at = NULL;
    const char *params[2] = {want, cfg->source.slot};
    int rc = pgconn_open(&cfg->source.conn, PGCONN_NORMAL, "source", &src);

    snprintf(want, sizeof(want), LSN_FMT, LSN_ARGS(lsn));
    while (rc == 0) {
        PGresult *res;

        rc = pgconn_query(src,
                          "SELECT confirmed_flush_lsn >= $1::pg_lsn, confirmed_flush_lsn::text"
                          " FROM pg_replication_slots WHERE slot_name = $2",
                          2, params, &res);
        if (rc < 0)
            break;
        if (PQntuples(res) != 1) {
            PQclear(res);
            rc = tm_fail(-ENOENT,
                         "the producing pipeline's slot %s does not exist on the source"
                         " (source.slot names it)",
                         cfg->source.slot);
            break;
        }
        bool done = PQgetvalue(res, 0, 0)[0] == 't';

        free(at);
        at = xstrdup(PQgetvalue(res, 0, 1));
        PQclear(res);
        if (done)
            break;
        if (cancelled(cancel))
            rc = tm_fail(-ECANCELED, "verification cancelled");
        else if (clock_mono_secs() > deadline)
            rc = tm_fail(-ETIMEDOUT,
                         "the producing pipeline did not deliver the verification snapshot %s to"
                         " Kafka in time: slot %s confirmed %s (is `tidemark run` running? see"
                         " verify.catchup_timeout_s)",
                         want, cfg->source.slot, at);
        else
            usleep(50 * 1000);
    }
    free(at);
    if (src)
        PQfinish(src);
    return rc;
}

int applier_verify_wait(const Config *cfg, PGconn *dst, Lsn lsn, long timeout_s,
                        const volatile int *cancel)
{
    double deadline = clock_mono_secs() + (double)timeout_s;
    const char *params[1] = {cfg->source.kafka.group};
    KMark *marks = NULL;
    size_t n = 0;
    int rc = wait_slot(cfg, lsn, deadline, cancel);

    if (rc == 0)
        rc = kafka_high_watermarks(cfg, &marks, &n);
    while (rc == 0) {
        PGresult *res;
        const KMark *behind = NULL;
        long long at = -1;

        rc = pgconn_query(dst,
                          "SELECT topic, partition, next_offset FROM tidemark.kafka_offsets"
                          " WHERE consumer_group = $1",
                          1, params, &res);
        if (rc < 0)
            break;
        for (size_t i = 0; i < n && !behind; i++) {
            long long got = 0;

            for (int r = 0; r < PQntuples(res); r++)
                if (strcmp(PQgetvalue(res, r, 0), marks[i].topic) == 0 &&
                    atoi(PQgetvalue(res, r, 1)) == marks[i].partition)
                    got = strtoll(PQgetvalue(res, r, 2), NULL, 10);
            if (got < marks[i].high) {
                behind = &marks[i];
                at = got;
            }
        }
        PQclear(res);
        if (!behind)
            break;
        if (cancelled(cancel))
            rc = tm_fail(-ECANCELED, "verification cancelled");
        else if (clock_mono_secs() > deadline)
            rc = tm_fail(-ETIMEDOUT,
                         "the appliers of group %s did not catch up with the verification"
                         " snapshot in time: %s [%d] is applied up to offset %lld of %lld (are"
                         " `tidemark apply` processes running? see verify.catchup_timeout_s)",
                         cfg->source.kafka.group, behind->topic, (int)behind->partition, at,
                         (long long)behind->high);
        else
            usleep(50 * 1000);
    }
    kafka_marks_free(marks, n);
    return rc;
}
