/*
 * The Kafka sink's initial copy: each COPY text row of a table becomes a
 * Debezium read event (op "r") keyed like the stream's, with Debezium's
 * snapshot markers in source.snapshot: "first" on the first row of the
 * first table copied, "first_in_data_collection" / "last_in_data_collection"
 * on each table's first and last row, "last" on the last row of the last
 * table, "true" otherwise. A row is sent when the next one arrives (or the
 * copy finishes), since only then is it known to be the last. Finishing a
 * copy waits for every delivery report before the state file records the
 * table as synced at the snapshot's LSN, so a crash before that redoes the
 * table's copy (consumers may see its rows twice). Sessions run on
 * table-sync worker threads and are registered by id; a delivery report
 * that arrives after its session was abandoned finds no session and is
 * dropped. With a mapping the rows arrive already transformed, in the
 * target's shape, and go to the target's topic.
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
    const TableDef *t;   /* the source table: the copy state's key */
    char *shape_display; /* schema.table the rows have (a mapping's target) */
    DbzTable *dbz;
    rd_kafka_topic_t *rkt;
    CopyText ct;
    Buf key, val, held; /* held: the last row read, sent when the next one comes */
    bool have_held;
    bool first_table; /* the snapshot's first table: its first row is "first" */
    bool produced_all;
    Lsn sync_lsn;
    char lsn_text[24];
    uint64_t id;
    size_t outstanding; /* under KafkaSink.mu, like err */
    rd_kafka_resp_err_t err;
    long long rows;
};

static int64_t wall_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
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

int kafkacopy_open_part(Sink *base, const TableDef *t, const TableDef *target, const CopyPart *part,
                        Lsn sync_lsn, SinkCopy **out)
{
    KafkaSink *s = kafkasink_of(base);
    const TableDef *shape = target ? target : t;
    KCopy *c = xcalloc(1, sizeof(*c));
    int rc;

    (void)part; /* the Kafka sink copies tables whole */
    c->s = s;
    c->t = t;
    c->sync_lsn = sync_lsn;
    lsn_format(sync_lsn, c->lsn_text, sizeof(c->lsn_text));
    rc = kafkasink_topic(s, shape->schema, shape->name, &c->rkt);
    if (rc < 0) {
        free(c);
        return tm_fail_ctx(rc, "initial copy of %s", t->display);
    }
    c->dbz = kafkasink_dbz_def(s, shape);
    c->shape_display = xstrdup(shape->display);
    pthread_mutex_lock(&s->mu);
    c->id = ++s->next_copy_id;
    s->copies = xrealloc(s->copies, (s->ncopies + 1) * sizeof(*s->copies));
    s->copies[s->ncopies++] = c;
    pthread_mutex_unlock(&s->mu);
    *out = (SinkCopy *)c;
    return 0;
}

int kafkacopy_open(Sink *base, const TableDef *t, Lsn sync_lsn, SinkCopy **out)
{
    return kafkacopy_open_part(base, t, NULL, NULL, sync_lsn, out);
}

/*
 * Whether no other table is left to copy after c's (under mu): every table
 * of the state file is synced or fully produced by its session.
 */
static bool last_table(KafkaSink *s, const KCopy *c)
{
    for (size_t i = 0; i < s->state.n; i++) {
        const KStateTable *st = &s->state.t[i];
        bool done = st->synced ||
                    (strcmp(st->schema, c->t->schema) == 0 && strcmp(st->name, c->t->name) == 0);

        for (size_t k = 0; k < s->ncopies && !done; k++)
            done = s->copies[k]->produced_all && strcmp(st->schema, s->copies[k]->t->schema) == 0 &&
                   strcmp(st->name, s->copies[k]->t->name) == 0;
        if (!done)
            return false;
    }
    return true;
}

/* Debezium's marker for a row (RelationalSnapshotChangeEventSource's precedence). */
static const char *marker(bool first_table, bool last_table, bool first_row, bool last_row)
{
    if (last_row && last_table)
        return "last";
    if (first_row && first_table)
        return "first";
    if (last_row)
        return "last_in_data_collection";
    if (first_row)
        return "first_in_data_collection";
    return "true";
}

/* Renders and produces the held row with its snapshot marker. */
static int send_held(KCopy *c, bool last_row, bool is_last_table)
{
    int64_t now = wall_ns();
    DbzEvent ev = {
        .op = 'r',
        .snapshot = marker(c->first_table, is_last_table, c->rows == 0, last_row),
        .lsn = c->sync_lsn,
        .source_ts_us = now / 1000,
        .ts_ns = now,
    };
    Tuple tup;
    int k, rc = copytext_parse(&c->ct, c->held.data, c->held.len, c->dbz->ncols, &tup);

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
    rc = kafkasink_produce(c->s, c->rkt, k == 0 ? &c->key : NULL, &c->val, c->lsn_text, "0", NULL,
                           NULL, kafka_opaque(OPQ_COPY, c->id));
    if (rc < 0) {
        pthread_mutex_lock(&c->s->mu);
        c->outstanding--;
        pthread_mutex_unlock(&c->s->mu);
        return rc;
    }
    c->have_held = false;
    c->rows++;
    return 0;
}

static int copy_row(KCopy *c, const char *row, size_t len)
{
    int rc;

    if (c->have_held) {
        rc = send_held(c, false, false);
        if (rc < 0)
            return rc;
    } else if (c->rows == 0) {
        /* The first row of the first table of the snapshot is "first". */
        pthread_mutex_lock(&c->s->mu);
        c->first_table = !c->s->snapshot_started;
        c->s->snapshot_started = true;
        pthread_mutex_unlock(&c->s->mu);
    }
    buf_clear(&c->held);
    buf_append(&c->held, row, len);
    c->have_held = true;
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
            return tm_fail_ctx(rc, "initial copy of %s", c->shape_display);
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

int kafkacopy_dead_letter(SinkCopy *sc, const char *row_json, const char *error)
{
    KCopy *c = (KCopy *)sc;
    Buf f = BUF_INIT;
    int rc;

    buf_printf(&f, "\"op\":\"r\",\"row\":%s", row_json);
    rc = kafkasink_dead_letter(c->s, "mapping", c->t->display, c->sync_lsn, 0, error, f.data);
    buf_release(&f);
    return rc;
}

int kafkacopy_finish(SinkCopy *sc, bool commit)
{
    KCopy *c = (KCopy *)sc;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    size_t left;
    int rc = 0;

    if (!commit)
        return 0; /* what was sent stays sent; the copy is redone */
    if (c->have_held) {
        bool last;

        pthread_mutex_lock(&c->s->mu);
        last = last_table(c->s, c);
        c->produced_all = true;
        pthread_mutex_unlock(&c->s->mu);
        rc = send_held(c, true, last);
        if (rc < 0)
            return tm_fail_ctx(rc, "initial copy of %s", c->shape_display);
    } else {
        pthread_mutex_lock(&c->s->mu);
        c->produced_all = true;
        pthread_mutex_unlock(&c->s->mu);
    }
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
    buf_release(&c->held);
    free(c->shape_display);
    free(c);
}
