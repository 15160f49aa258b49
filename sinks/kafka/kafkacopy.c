/*
 * The Kafka sink's initial copy: each COPY text row of a table becomes a
 * Debezium read event (op "r", snapshot "true") keyed like the stream's.
 * Finishing a copy waits for every one of its delivery reports before the
 * state file records the table as synced at the snapshot's LSN, so a crash
 * before that redoes the table's copy (consumers may see its rows twice).
 * Sessions run on table-sync worker threads and are registered by id; a
 * delivery report that arrives after its session was abandoned finds no
 * session and is dropped.
 */
#include "sinks/kafka/kafkasink_int.h"
#include "core/copytext.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <string.h>
#include <time.h>

struct KCopy {
    KafkaSink *s;
    const TableDef *t;
    DbzTable *dbz;
    rd_kafka_topic_t *rkt;
    CopyText ct;
    Buf key, val;
    Lsn sync_lsn;
    char lsn_text[24];
    int64_t started_ms;
    uint64_t id;
    size_t outstanding; /* under KafkaSink.mu, like err */
    rd_kafka_resp_err_t err;
    long long rows;
};

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kafkacopy_delivered(KafkaSink *s, uint64_t id, rd_kafka_resp_err_t err)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->ncopies; i++) {
        KCopy *c = s->copies[i];

        if (c->id != id)
            continue;
        c->outstanding--;
        if (err && !c->err)
            c->err = err;
        break;
    }
    pthread_mutex_unlock(&s->mu);
}

static size_t outstanding(KCopy *c, rd_kafka_resp_err_t *err)
{
    size_t n;

    pthread_mutex_lock(&c->s->mu);
    n = c->outstanding;
    if (err)
        *err = c->err;
    pthread_mutex_unlock(&c->s->mu);
    return n;
}

int kafkacopy_open(Sink *base, const TableDef *t, Lsn sync_lsn, SinkCopy **out)
{
    KafkaSink *s = kafkasink_of(base);
    KCopy *c = xcalloc(1, sizeof(*c));
    int rc;

    c->s = s;
    c->t = t;
    c->sync_lsn = sync_lsn;
    c->started_ms = wall_ms();
    lsn_format(sync_lsn, c->lsn_text, sizeof(c->lsn_text));
    rc = kafkasink_topic(s, t->schema, t->name, &c->rkt);
    if (rc < 0) {
        free(c);
        return tm_fail_ctx(rc, "initial copy of %s", t->display);
    }
    c->dbz = debezium_table_from_def(t);
    pthread_mutex_lock(&s->mu);
    c->id = ++s->next_copy_id;
    s->copies = xrealloc(s->copies, (s->ncopies + 1) * sizeof(*s->copies));
    s->copies[s->ncopies++] = c;
    pthread_mutex_unlock(&s->mu);
    *out = (SinkCopy *)c;
    return 0;
}

static int copy_row(KCopy *c, const char *row, size_t len)
{
    DbzEvent ev = {
        .op = 'r',
        .snapshot = true,
        .lsn = c->sync_lsn,
        .source_ts_ms = c->started_ms,
        .ts_ms = wall_ms(),
    };
    Tuple tup;
    int k, rc = copytext_parse(&c->ct, row, len, c->dbz->ncols, &tup);

    if (rc < 0)
        return rc;
    buf_clear(&c->key);
    buf_clear(&c->val);
    k = debezium_key(&c->key, c->dbz, &tup);
    if (k < 0)
        return k;
    ev.after = &tup;
    rc = debezium_envelope(&c->val, c->dbz, &c->s->src, &ev);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&c->s->mu);
    c->outstanding++;
    pthread_mutex_unlock(&c->s->mu);
    /* txid 0: an initial-load row belongs to no source transaction. */
    rc = kafkasink_produce(c->s, c->rkt, k == 0 ? &c->key : NULL, &c->val, c->lsn_text, "0",
                           kafka_opaque(OPQ_COPY, c->id));
    if (rc < 0) {
        pthread_mutex_lock(&c->s->mu);
        c->outstanding--;
        pthread_mutex_unlock(&c->s->mu);
        return rc;
    }
    c->rows++;
    return 0;
}

int kafkacopy_rows(SinkCopy *sc, const char *data, size_t len)
{
    KCopy *c = (KCopy *)sc;
    const char *p = data, *end = data + len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl + 1 : end;
        int rc = copy_row(c, p, (size_t)(stop - p));

        if (rc < 0)
            return tm_fail_ctx(rc, "initial copy of %s", c->t->display);
        p = stop;
        /* Serve delivery reports as we go, so they never pile up. */
        if ((c->rows & 1023) == 0) {
            rc = kafkasink_poll(c->s, 0);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int kafkacopy_finish(SinkCopy *sc, bool commit)
{
    KCopy *c = (KCopy *)sc;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    size_t left;
    int rc = 0;

    if (!commit)
        return 0; /* what was sent stays sent; the copy is redone */
    for (time_t last = time(NULL); (left = outstanding(c, &err)) > 0 && !err;) {
        rc = kafkasink_poll(c->s, 100);
        if (rc < 0)
            return tm_fail_ctx(rc, "initial copy of %s", c->t->display);
        if (time(NULL) - last >= 10) {
            last = time(NULL);
            log_write(LOG_LVL_INFO, c->t->display, c->sync_lsn,
                      "initial copy: waiting for %zu delivery reports", left);
        }
    }
    if (err)
        return tm_fail(-EIO, "initial copy of %s: a delivery failed: %s", c->t->display,
                       rd_kafka_err2str(err));
    pthread_mutex_lock(&c->s->mu);
    rc = kstate_set_synced(&c->s->state, c->t->schema, c->t->name, c->sync_lsn);
    pthread_mutex_unlock(&c->s->mu);
    if (rc < 0)
        return tm_fail_ctx(rc, "initial copy of %s", c->t->display);
    return 0;
}

void kafkacopy_free(SinkCopy *sc)
{
    KCopy *c = (KCopy *)sc;
    KafkaSink *s;

    if (!c)
        return;
    s = c->s;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->ncopies; i++) {
        if (s->copies[i] == c) {
            s->copies[i] = s->copies[--s->ncopies];
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    debezium_table_free(c->dbz);
    copytext_release(&c->ct);
    buf_release(&c->key);
    buf_release(&c->val);
    free(c);
}
