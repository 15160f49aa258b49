/*
 * Continuous verification for parallel-run periods: verify_table_once runs
 * one table through the same path as `tidemark verify --table` (its own
 * connections, a temporary slot for the snapshot, throttled, stored on the
 * target), and VerifyLoop repeats that over the pipeline's tables every
 * verify.interval_s seconds in one worker thread. The daemon's loop thread
 * only copies the last results out under the mutex (for tidemark_verify_*
 * gauges), so it never waits on PostgreSQL.
 */
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "migration/verify_int.h"
#include "core/clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void fill_result(const json_t *rep, VerifyResult *out)
{
    const json_t *t = json_array_get(json_object_get(rep, "tables"), 0);
    const json_t *snap = json_object_get(rep, "snapshot");

    out->ok = json_is_true(json_object_get(rep, "ok"));
    out->source_rows = (long long)json_integer_value(json_object_get(t, "source_rows"));
    out->target_rows = (long long)json_integer_value(json_object_get(t, "target_rows"));
    out->missing = (long long)json_integer_value(json_object_get(t, "missing"));
    out->extra = (long long)json_integer_value(json_object_get(t, "extra"));
    out->differing = (long long)json_integer_value(json_object_get(t, "differing"));
    out->integrity = (long long)json_integer_value(json_object_get(t, "integrity_failures"));
    lsn_parse(json_string_value(json_object_get(snap, "source_lsn")), &out->snapshot_lsn);
    if (json_string_value(json_object_get(t, "error"))) {
        out->failed = true;
        snprintf(out->error, sizeof(out->error), "%s",
                 json_string_value(json_object_get(t, "error")));
    }
}

int verify_table_once(const Config *cfg, const TableDef *table, const volatile int *cancel,
                      VerifyResult *out)
{
    TableName tn = {table->schema, table->name};
    VerifyOptions opt = {
        .ntables = 1, .tables = &tn, .jobs = 1, .store = true, .integrity = true, .cancel = cancel};
    json_t *rep = NULL;
    double t0 = clock_mono_secs();
    int rc;

    memset(out, 0, sizeof(*out));
    snprintf(out->table, sizeof(out->table), "%s", table->display);
    rc = verify_run(cfg, &opt, &rep);
    if (rep)
        fill_result(rep, out);
    if (rc < 0) {
        out->failed = true;
        out->ok = false;
        snprintf(out->error, sizeof(out->error), "%s", tm_error());
    }
    out->seconds = clock_mono_secs() - t0;
    out->finished_at = time(NULL);
    json_decref(rep);
    return rc;
}

struct VerifyLoop {
    const Config *cfg;
    const TableSet *tables;
    long interval_s;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    volatile int cancel; /* stop, as the running verification sees it */
    VerifyResult *results;
    size_t nresults;
};

static void *loop_main(void *arg)
{
    VerifyLoop *vl = arg;

    for (;;) {
        struct timespec until;

        for (size_t i = 0; i < vl->tables->n; i++) {
            VerifyResult r;
            bool stop;

            pthread_mutex_lock(&vl->mu);
            stop = vl->stop;
            pthread_mutex_unlock(&vl->mu);
            if (stop)
                return NULL;
            if (verify_table_once(vl->cfg, &vl->tables->t[i], &vl->cancel, &r) < 0)
                log_warn("continuous verification of %s failed: %s", r.table, r.error);
            else if (!r.ok)
                log_warn("continuous verification of %s: %lld missing, %lld extra, %lld differing,"
                         " %lld integrity failures",
                         r.table, r.missing, r.extra, r.differing, r.integrity);
            pthread_mutex_lock(&vl->mu);
            vl->results[i] = r;
            pthread_mutex_unlock(&vl->mu);
        }
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += vl->interval_s;
        pthread_mutex_lock(&vl->mu);
        while (!vl->stop && pthread_cond_timedwait(&vl->cv, &vl->mu, &until) != ETIMEDOUT)
            ;
        if (vl->stop) {
            pthread_mutex_unlock(&vl->mu);
            return NULL;
        }
        pthread_mutex_unlock(&vl->mu);
    }
}

VerifyLoop *verify_loop_start(const Config *cfg, const TableSet *tables)
{
    const json_t *v = json_object_get(json_object_get(cfg->tree, "verify"), "interval_s");
    VerifyLoop *vl;

    if (!json_is_integer(v) || json_integer_value(v) <= 0 || tables->n == 0)
        return NULL;
    vl = xcalloc(1, sizeof(*vl));
    vl->cfg = cfg;
    vl->tables = tables;
    vl->interval_s = (long)json_integer_value(v);
    vl->nresults = tables->n;
    vl->results = xcalloc(tables->n, sizeof(VerifyResult));
    for (size_t i = 0; i < tables->n; i++)
        snprintf(vl->results[i].table, sizeof(vl->results[i].table), "%s", tables->t[i].display);
    pthread_mutex_init(&vl->mu, NULL);
    pthread_cond_init(&vl->cv, NULL);
    if (pthread_create(&vl->thread, NULL, loop_main, vl) != 0) {
        pthread_mutex_destroy(&vl->mu);
        pthread_cond_destroy(&vl->cv);
        free(vl->results);
        free(vl);
        return NULL;
    }
    return vl;
}

size_t verify_loop_results(VerifyLoop *vl, VerifyResult *out, size_t max)
{
    size_t n;

    if (!vl)
        return 0;
    pthread_mutex_lock(&vl->mu);
    n = vl->nresults < max ? vl->nresults : max;
    memcpy(out, vl->results, n * sizeof(VerifyResult));
    pthread_mutex_unlock(&vl->mu);
    return n;
}

void verify_loop_stop(VerifyLoop *vl)
{
    if (!vl)
        return;
    pthread_mutex_lock(&vl->mu);
    vl->stop = true;
    __atomic_store_n(&vl->cancel, 1, __ATOMIC_RELEASE);
    pthread_cond_signal(&vl->cv);
    pthread_mutex_unlock(&vl->mu);
    pthread_join(vl->thread, NULL);
    pthread_mutex_destroy(&vl->mu);
    pthread_cond_destroy(&vl->cv);
    free(vl->results);
    free(vl);
}
