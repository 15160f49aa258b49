/*
 * Exactly once into the target: each batch writes, in the same transaction
 * as its rows, the next offset of every partition it consumed, to
 * tidemark.kafka_offsets (one row per group, topic, partition). The write
 * expects the value this applier read or last wrote, and must hit exactly
 * one row before COMMIT (the gate, pgsink_batch_position): an applier whose
 * partition another one took over (a rebalance, a paused process coming
 * back) cannot commit, so no message is applied twice, and none is skipped:
 * a partition starts where its row says. The row also keeps the position of
 * the last applied change (commit LSN, change LSN), which tells a producer's
 * resends (it replays from its slot after a crash) from new changes. Kafka's
 * own committed offsets follow once a batch is durable, for lag tools only.
 */
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "daemon/applier_int.h"
#include "sinks/pg/pgsink.h"
#include "sinks/pg/pgstate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const OFFSETS_DDL =
    "CREATE TABLE IF NOT EXISTS tidemark.kafka_offsets ("
    " consumer_group text NOT NULL,"
    " topic text NOT NULL,"
    " partition int NOT NULL,"
    " next_offset bigint NOT NULL,"     /* the next message to apply */
    " producer text,"                   /* source.name of the events: the pipeline writing them */
    " last_lsn pg_lsn,"                 /* the last applied change: its commit LSN, */
    " last_change_lsn pg_lsn,"          /* its own LSN, */
    " last_seq int NOT NULL DEFAULT 0," /* its place in a key-change pair, */
    " last_kind text,"                  /* 'r' initial load, 's' stream */
    " applier text,"                    /* host:pid of the process that wrote the row */
    " updated_at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (consumer_group, topic, partition))";

/*
 * $5 is the value this applier expects: the row's next_offset, or -1 for no
 * row. Anything else matches no row and the batch rolls back.
 */
static const char *const WRITE_SQL =
    "INSERT INTO tidemark.kafka_offsets AS o (consumer_group, topic, partition, next_offset,"
    " producer, last_lsn, last_change_lsn, last_seq, last_kind, applier, updated_at)"
    " VALUES ($1, $2, $3::int, $4::bigint, $6, $7::pg_lsn, $8::pg_lsn, $9::int, $10, $11, now())"
    " ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET"
    " next_offset = excluded.next_offset, producer = excluded.producer,"
    " last_lsn = excluded.last_lsn, last_change_lsn = excluded.last_change_lsn,"
    " last_seq = excluded.last_seq, last_kind = excluded.last_kind,"
    " applier = excluded.applier, updated_at = now()"
    " WHERE o.next_offset = $5::bigint";

int applier_pos_ensure(PGconn *conn)
{
    int rc = pgstate_ensure(conn, OFFSETS_DDL);

    return rc < 0 ? tm_fail_ctx(rc, "target: creating tidemark.kafka_offsets") : 0;
}

void applier_batch_release(ABatch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->parts[i].topic);
    free(b->parts);
    memset(b, 0, sizeof(*b));
}

int applier_pos_write(Applier *a, ABatch *b)
{
    char host[64], who[96];
    int rc = 0;

    if (gethostname(host, sizeof(host)) < 0)
        snprintf(host, sizeof(host), "?");
    host[sizeof(host) - 1] = '\0';
    snprintf(who, sizeof(who), "%s:%d", host, (int)getpid());
    b->parts = xcalloc(a->nparts + 1, sizeof(*b->parts));
    for (size_t i = 0; i < a->nparts && rc == 0; i++) {
        APart *p = &a->parts[i];
        char part[16], next[24], exp[24], lsn[24], clsn[24], seq[12], kind[2] = {p->pos.kind, 0};
        char what[160];

        if (!p->touched)
            continue;
        snprintf(part, sizeof(part), "%d", (int)p->partition);
        snprintf(next, sizeof(next), "%lld", (long long)p->next);
        snprintf(exp, sizeof(exp), "%lld", (long long)p->stored);
        snprintf(seq, sizeof(seq), "%d", p->pos.seq);
        lsn_format(p->pos.commit, lsn, sizeof(lsn));
        lsn_format(p->pos.change, clsn, sizeof(clsn));
        snprintf(what, sizeof(what), "the offset of %s [%d] (group %s) in tidemark.kafka_offsets",
                 p->topic, (int)p->partition, a->cfg->source.kafka.group);
        const char *params[11] = {a->cfg->source.kafka.group,
                                  p->topic,
                                  part,
                                  next,
                                  exp,
                                  p->producer,
                                  p->pos.kind ? lsn : NULL,
                                  p->pos.kind ? clsn : NULL,
                                  seq,
                                  p->pos.kind ? kind : NULL,
                                  who};

        rc = pgsink_batch_position(a->sink, WRITE_SQL, 11, params, what);
        b->parts[b->n++] = (struct ABatchPart){xstrdup(p->topic), p->partition, p->stored, p->next};
        p->stored = p->next;
        p->touched = false;
    }
    return rc;
}

void applier_pos_settle(Applier *a)
{
    Lsn durable = a->sink_down ? 0 : a->sink->ops->durable(a->sink);
    size_t done = 0;

    while (done < a->nbatches && a->batches[done].end <= durable) {
        ABatch *b = &a->batches[done++];
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)b->n + 1);

        for (size_t i = 0; i < b->n; i++)
            if (applier_part(a, b->parts[i].topic, b->parts[i].partition))
                rd_kafka_topic_partition_list_add(l, b->parts[i].topic, b->parts[i].partition)
                    ->offset = b->parts[i].next;
        kconsumer_commit(a->kc, l);
        rd_kafka_topic_partition_list_destroy(l);
        applier_batch_release(b);
        a->n_batches++;
    }
    if (done) {
        memmove(a->batches, a->batches + done, (a->nbatches - done) * sizeof(ABatch));
        a->nbatches -= done;
        a->attempts = 0; /* progress: a later failure starts its count anew */
        a->backoff = 0.5;
    }
}

/* ---- reading the positions on the target worker ---------------------------- */

typedef struct PosRow {
    char *topic;
    int32_t partition;
    int64_t next;
    char *producer;
    KPos pos;
} PosRow;

typedef struct PosJob {
    OffloadJob base;
    Applier *a;
    unsigned long gen; /* partitions assigned up to this generation are answered */
    PosRow *rows;
    size_t nrows;
} PosJob;

static void pos_run(OffloadJob *base)
{
    PosJob *j = (PosJob *)base;
    Applier *a = j->a;
    const char *params[1] = {a->cfg->source.kafka.group};
    PGresult *res = NULL;
    int rc = 0;

    if (!a->ctl)
        rc = pgconn_open(&a->cfg->target.conn, PGCONN_NORMAL, "target", &a->ctl);
    if (rc == 0)
        rc = pgconn_query(a->ctl,
                          "SELECT topic, partition, next_offset, producer, last_lsn::text,"
                          " last_change_lsn::text, last_seq, coalesce(last_kind, '')"
                          " FROM tidemark.kafka_offsets WHERE consumer_group = $1",
                          1, params, &res);
    if (rc < 0 && a->ctl && PQstatus(a->ctl) == CONNECTION_BAD) {
        PQfinish(a->ctl);
        a->ctl = NULL;
    }
    if (rc == 0) {
        j->nrows = (size_t)PQntuples(res);
        j->rows = xcalloc(j->nrows + 1, sizeof(PosRow));
        for (size_t i = 0; i < j->nrows; i++) {
            PosRow *r = &j->rows[i];
            int row = (int)i;

            r->topic = xstrdup(PQgetvalue(res, row, 0));
            r->partition = (int32_t)atoi(PQgetvalue(res, row, 1));
            r->next = strtoll(PQgetvalue(res, row, 2), NULL, 10);
            r->producer = PQgetisnull(res, row, 3) ? NULL : xstrdup(PQgetvalue(res, row, 3));
            if (!PQgetisnull(res, row, 4))
                lsn_parse(PQgetvalue(res, row, 4), &r->pos.commit);
            if (!PQgetisnull(res, row, 5))
                lsn_parse(PQgetvalue(res, row, 5), &r->pos.change);
            r->pos.seq = atoi(PQgetvalue(res, row, 6));
            r->pos.kind = PQgetvalue(res, row, 7)[0];
        }
        PQclear(res);
    }
    offload_result(base, rc < 0 ? tm_fail_ctx(-ENOTCONN, "target: reading the offsets") : 0);
}

static void pos_free(PosJob *j)
{
    for (size_t i = 0; i < j->nrows; i++) {
        free(j->rows[i].topic);
        free(j->rows[i].producer);
    }
    free(j->rows);
    free(j);
}

/*
 * A retried failure that was a race: another applier moved an offset the
 * failed batch expected (it committed that partition meanwhile).
 */
static bool failure_was_race(const Applier *a, const PosJob *j)
{
    for (size_t i = 0; i < a->failed.n; i++) {
        int64_t now = -1;

        for (size_t k = 0; k < j->nrows; k++)
            if (j->rows[k].partition == a->failed.parts[i].partition &&
                strcmp(j->rows[k].topic, a->failed.parts[i].topic) == 0)
                now = j->rows[k].next;
        if (now != a->failed.parts[i].expected)
            return true;
    }
    return false;
}

/*
 * Partitions whose position is known start there: new ones are assigned at
 * it, assigned ones (after a failure) are moved. An eager group's assignment
 * is given whole, once every partition of it has its position. A move
 * librdkafka cannot make yet leaves the partitions paused, asked again soon.
 */
static int positions_start(Applier *a, rd_kafka_topic_partition_list_t *seek,
                           rd_kafka_topic_partition_list_t *add)
{
    int rc = 0;

    a->want_positions = false;
    for (size_t i = 0; i < a->nparts; i++)
        if (!a->parts[i].ready)
            a->want_positions = true;
    if (add->cnt && kconsumer_eager(a->kc) && a->want_positions) {
        /* not yet: the rest of the assignment comes with the next answer */
        for (int i = 0; i < add->cnt; i++)
            applier_part(a, add->elems[i].topic, add->elems[i].partition)->ready = false;
        add->cnt = 0;
    }
    if (add->cnt) {
        rc = kconsumer_assign(a->kc, add);
        for (int i = 0; rc == 0 && i < add->cnt; i++)
            applier_part(a, add->elems[i].topic, add->elems[i].partition)->assigned = true;
        if (rc < 0)
            return rc;
    }
    if (seek->cnt && kconsumer_start_at(a->kc, seek) < 0) {
        log_info("%s; trying again", tm_error());
        kconsumer_pause(a->kc, seek);
        for (int i = 0; i < seek->cnt; i++)
            applier_part(a, seek->elems[i].topic, seek->elems[i].partition)->ready = false;
        a->want_positions = true;
        ev_timer_set(&a->pos_timer, 0.2, 0);
        ev_timer_start(a->loop, &a->pos_timer);
    }
    return 0;
}

static void pos_done(OffloadJob *base)
{
    PosJob *j = (PosJob *)base;
    Applier *a = j->a;
    int rc = offload_rethrow(base);

    if (base->cancelled) {
        pos_free(j);
        return;
    }
    a->positions_job = false;
    if (rc < 0) {
        pos_free(j);
        applier_recover(a, rc);
        return;
    }
    if (a->failed_rc) {
        if (a->failed_rc != -ESTALE && a->failed_rc != -ENOTCONN && !failure_was_race(a, j) &&
            ++a->attempts >= 3) {
            pos_free(j);
            applier_fail(a, tm_fail(a->failed_rc,
                                    "%s (the same failure %d times, nothing"
                                    " committed in between)",
                                    a->failed_msg, a->attempts));
            return;
        }
        a->failed_rc = 0;
        applier_batch_release(&a->failed);
    }
    rd_kafka_topic_partition_list_t *seek = rd_kafka_topic_partition_list_new((int)a->nparts + 1);
    rd_kafka_topic_partition_list_t *add = rd_kafka_topic_partition_list_new((int)a->nparts + 1);

    for (size_t i = 0; i < a->nparts; i++) {
        APart *p = &a->parts[i];
        const PosRow *r = NULL;

        if (p->ready || p->gen > j->gen)
            continue;
        for (size_t k = 0; k < j->nrows && !r; k++)
            if (j->rows[k].partition == p->partition && strcmp(j->rows[k].topic, p->topic) == 0)
                r = &j->rows[k];
        p->next = r ? r->next : -1;
        p->stored = p->next;
        p->pos = r ? r->pos : (KPos){0};
        free(p->producer);
        p->producer = r && r->producer ? xstrdup(r->producer) : NULL;
        p->touched = false;
        p->ready = true;
        rd_kafka_topic_partition_list_add(p->assigned ? seek : add, p->topic, p->partition)
            ->offset = p->next >= 0 ? p->next : RD_KAFKA_OFFSET_BEGINNING;
        log_debug("%s [%d]: applying from offset %lld", p->topic, (int)p->partition,
                  (long long)p->next);
    }
    pos_free(j);
    rc = positions_start(a, seek, add);
    rd_kafka_topic_partition_list_destroy(seek);
    rd_kafka_topic_partition_list_destroy(add);
    if (rc < 0) {
        applier_fail(a, rc);
        return;
    }
    applier_pump(a);
    applier_pos_request(a);
}

void applier_pos_request(Applier *a)
{
    PosJob *j;

    if (!a->want_positions || a->positions_job || a->sink_down || a->stopping || a->rc)
        return;
    /* What this applier still had in flight when partitions came (back) must be
     * durable first, or it would read an offset from before its own commit. */
    if (a->sink->ops->durable(a->sink) < a->positions_after)
        return;
    j = xcalloc(1, sizeof(*j));
    j->base.run = pos_run;
    j->base.done = pos_done;
    j->a = a;
    j->gen = a->assign_gen;
    a->want_positions = false;
    a->positions_job = true;
    offload_submit(a->jobs, &j->base);
}
