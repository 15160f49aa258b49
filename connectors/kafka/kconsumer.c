/*
 * The consumer (kconsumer.h): settings, the subscription, the rebalance
 * callback (eager or cooperative), the queue pipe for the loop, and message
 * errors sorted into fatal (data gone) and transient (brokers away: librdkafka
 * reconnects).
 */
#include "connectors/kafka/kconsumer.h"
#include "sinks/kafka/krdk.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct KConsumer {
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    int pipefd[2];
    KcRebalanceFn fn;
    void *arg;
    int failed;
    char failmsg[512];
    bool closing;
};

static void fail_once(KConsumer *kc, const char *fmt, ...) TM_PRINTF(2, 3);

static void fail_once(KConsumer *kc, const char *fmt, ...)
{
    va_list ap;

    if (kc->failed)
        return;
    va_start(ap, fmt);
    vsnprintf(kc->failmsg, sizeof(kc->failmsg), fmt, ap);
    va_end(ap);
    kc->failed = -EIO;
}

static bool cooperative(rd_kafka_t *rk)
{
    return strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
}

/*
 * Assignments are not taken here: the applier reads the partitions' offsets
 * from the target first and assigns them at those offsets
 * (kconsumer_assign), so nothing is fetched from anywhere else. (Assigning
 * at once, paused, and seeking later raced with librdkafka's own offset
 * lookup of the initial position, which could win and move a partition
 * past messages never applied.) The group waits for the call meanwhile.
 */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    KConsumer *kc = opaque;
    rd_kafka_error_t *e = NULL;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (kc->closing) {
            /* Leaving: take nothing (the group reassigns them once we are gone), but
             * answer, or the close waits for the call. */
            if (cooperative(rk)) {
                rd_kafka_topic_partition_list_t *none = rd_kafka_topic_partition_list_new(1);

                e = rd_kafka_incremental_assign(rk, none);
                rd_kafka_topic_partition_list_destroy(none);
                if (e)
                    rd_kafka_error_destroy(e);
            } else {
                rd_kafka_assign(rk, NULL);
            }
            return;
        }
        if (parts->cnt == 0) {
            /* Nothing to position: the call the group waits for is made now (else a
             * member with no partitions holds up every later rebalance). */
            if (kconsumer_assign(kc, parts) < 0)
                fail_once(kc, "%s", tm_error());
            return;
        }
        kc->fn(kc->arg, true, parts, false);
        return;
    }
    bool lost = err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS || rd_kafka_assignment_lost(rk);

    if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
        log_warn("kafka: rebalance failed (%s): dropping the assignment", rd_kafka_err2str(err));
    kc->fn(kc->arg, false, parts, lost);
    if (cooperative(rk) && err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        /* Only what was assigned: a partition still waiting for its offsets was not. The
         * call is made even when that is nothing, or the group (and a close) waits for it. */
        rd_kafka_topic_partition_list_t *now = NULL, *drop;

        rd_kafka_assignment(rk, &now);
        drop = rd_kafka_topic_partition_list_new(parts->cnt + 1);
        for (int i = 0; now && i < parts->cnt; i++)
            if (rd_kafka_topic_partition_list_find(now, parts->elems[i].topic,
                                                   parts->elems[i].partition))
                rd_kafka_topic_partition_list_add(drop, parts->elems[i].topic,
                                                  parts->elems[i].partition);
        e = rd_kafka_incremental_unassign(rk, drop);
        rd_kafka_topic_partition_list_destroy(drop);
        if (now)
            rd_kafka_topic_partition_list_destroy(now);
    } else {
        rd_kafka_assign(rk, NULL);
    }
    if (e)
        rd_kafka_error_destroy(e);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    KConsumer *kc = opaque;
    char fatal[256];

    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, fatal, sizeof(fatal));

        fail_once(kc, "Kafka: fatal consumer error: %s: %s", rd_kafka_err2name(ferr), fatal);
        return;
    }
    /* brokers down, timeouts: librdkafka reconnects; the target keeps our place */
    log_warn("kafka: %s (%s)", reason, rd_kafka_err2name((rd_kafka_resp_err_t)err));
}

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    /* Advisory only: the target has the offsets that count. */
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        log_debug("kafka: advisory offset commit: %s", rd_kafka_err2str(err));
}

/* Settings the exactly-once design rests on; properties may not change them. */
static const char *const FIXED[][2] = {
    {"enable.auto.commit", "false"},
    {"enable.auto.offset.store", "false"},
    /* a position the broker no longer has is data deleted before it was applied */
    {"auto.offset.reset", "error"},
};

static int check_property(const char *key, const char *value)
{
    if (strcmp(key, "bootstrap.servers") == 0 || strcmp(key, "metadata.broker.list") == 0 ||
        strcmp(key, "group.id") == 0)
        return tm_fail(-EINVAL, "source.properties.%s: set source.%s instead", key,
                       strcmp(key, "group.id") == 0 ? "group" : "brokers");
    for (size_t i = 0; i < sizeof(FIXED) / sizeof(FIXED[0]); i++)
        if (strcmp(key, FIXED[i][0]) == 0 && strcmp(value, FIXED[i][1]) != 0)
            return tm_fail(-EINVAL,
                           "source.properties.%s: must be %s (the applier keeps its offsets in"
                           " the target, with the rows)",
                           key, FIXED[i][1]);
    return 0;
}

static bool has_property(const Config *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->source.kafka.nproperties; i++)
        if (strcmp(cfg->source.kafka.prop_keys[i], key) == 0)
            return true;
    return false;
}

static int make_conf(KConsumer *kc, const Config *cfg, rd_kafka_conf_t **out)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char *client_id = xasprintf("tidemark-apply-%s", cfg->pipeline);
    int rc = krdk_conf_set(conf, "bootstrap.servers", cfg->source.kafka.brokers);

    if (rc == 0)
        rc = krdk_conf_set(conf, "group.id", cfg->source.kafka.group);
    for (size_t i = 0; rc == 0 && i < sizeof(FIXED) / sizeof(FIXED[0]); i++)
        rc = krdk_conf_set(conf, FIXED[i][0], FIXED[i][1]);
    if (rc == 0)
        rc = krdk_conf_set(conf, "client.id", client_id);
    if (rc == 0)
        rc = krdk_conf_set(conf, "log.queue", "true");
    /* bounded prefetch (invariant 6): the default queues up to 64 MB per consumer */
    if (rc == 0 && !has_property(cfg, "queued.max.messages.kbytes"))
        rc = krdk_conf_set(conf, "queued.max.messages.kbytes", "16384");
    /* topics created after the start are found within seconds, not minutes */
    if (rc == 0 && !cfg->source.kafka.ntopics &&
        !has_property(cfg, "topic.metadata.refresh.interval.ms"))
        rc = krdk_conf_set(conf, "topic.metadata.refresh.interval.ms", "10000");
    for (size_t i = 0; rc == 0 && i < cfg->source.kafka.nproperties; i++) {
        rc = check_property(cfg->source.kafka.prop_keys[i], cfg->source.kafka.prop_values[i]);
        if (rc == 0)
            rc = krdk_conf_set(conf, cfg->source.kafka.prop_keys[i],
                               cfg->source.kafka.prop_values[i]);
    }
    free(client_id);
    if (rc < 0) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    rd_kafka_conf_set_opaque(conf, kc);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, krdk_on_log);
    rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
    *out = conf;
    return 0;
}

/* The topics: the configured list, or "^<prefix>\.": every table topic of the pipeline. */
static rd_kafka_topic_partition_list_t *subscription(const Config *cfg)
{
    rd_kafka_topic_partition_list_t *l;

    if (cfg->source.kafka.ntopics) {
        l = rd_kafka_topic_partition_list_new((int)cfg->source.kafka.ntopics);
        for (size_t i = 0; i < cfg->source.kafka.ntopics; i++)
            rd_kafka_topic_partition_list_add(l, cfg->source.kafka.topics[i],
                                              RD_KAFKA_PARTITION_UA);
        return l;
    }
    Buf re = BUF_INIT;

    buf_putc(&re, '^');
    for (const char *p = cfg->source.kafka.topic_prefix; *p; p++) {
        if (strchr(".\\+*?()[]{}|^$", *p))
            buf_putc(&re, '\\');
        buf_putc(&re, *p);
    }
    buf_puts(&re, "\\..+");
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, buf_cstr(&re), RD_KAFKA_PARTITION_UA);
    buf_release(&re);
    return l;
}

int kconsumer_new(const Config *cfg, KcRebalanceFn fn, void *arg, KConsumer **out)
{
    KConsumer *kc = xcalloc(1, sizeof(*kc));
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_topic_partition_list_t *topics;
    rd_kafka_resp_err_t err;
    char errstr[512];
    int rc;

    kc->fn = fn;
    kc->arg = arg;
    kc->pipefd[0] = kc->pipefd[1] = -1;
    rc = make_conf(kc, cfg, &conf);
    if (rc < 0)
        goto fail;
    kc->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!kc->rk) {
        rd_kafka_conf_destroy(conf);
        rc = tm_fail(-EINVAL, "Kafka: cannot create the consumer: %s", errstr);
        goto fail;
    }
    /* One queue for everything, served on the loop thread. */
    rd_kafka_poll_set_consumer(kc->rk);
    rd_kafka_set_log_queue(kc->rk, NULL);
    kc->q = rd_kafka_queue_get_consumer(kc->rk);
    if (pipe2(kc->pipefd, O_NONBLOCK | O_CLOEXEC) < 0) {
        rc = tm_fail(-errno, "Kafka: pipe: %s", strerror(errno));
        goto fail;
    }
    rd_kafka_queue_io_event_enable(kc->q, kc->pipefd[1], "1", 1);
    topics = subscription(cfg);
    err = rd_kafka_subscribe(kc->rk, topics);
    if (err == 0)
        log_info("kafka: consumer group %s on %s, topics %s", cfg->source.kafka.group,
                 cfg->source.kafka.brokers, topics->elems[0].topic);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        rc = tm_fail(-EINVAL, "Kafka: subscribing: %s", rd_kafka_err2str(err));
        goto fail;
    }
    *out = kc;
    return 0;
fail:
    kconsumer_free(kc);
    return rc;
}

void kconsumer_free(KConsumer *kc)
{
    if (!kc)
        return;
    if (kc->rk) {
        kc->closing = true;
        rd_kafka_consumer_close(kc->rk); /* leaves the group: the others take over at once */
        if (kc->q)
            rd_kafka_queue_destroy(kc->q);
        rd_kafka_destroy(kc->rk);
    }
    if (kc->pipefd[0] >= 0) {
        close(kc->pipefd[0]);
        close(kc->pipefd[1]);
    }
    free(kc);
}

int kconsumer_fd(const KConsumer *kc)
{
    return kc->pipefd[0];
}

static int message_error(KConsumer *kc, rd_kafka_message_t *m)
{
    const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "?";

    switch (m->err) {
    case RD_KAFKA_RESP_ERR__PARTITION_EOF:
        return 0;
    case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
    case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
        fail_once(kc,
                  "Kafka: partition %d of %s no longer has the next message to apply (%s):"
                  " retention deleted messages before they were applied, and nothing can bring"
                  " them back. The target is missing those changes; reload it (or the affected"
                  " tables) from the source, then reset this group's rows in"
                  " tidemark.kafka_offsets",
                  m->partition, topic, rd_kafka_message_errstr(m));
        return -EIO;
    default:
        log_warn("kafka: %s [%d]: %s", topic, m->partition, rd_kafka_message_errstr(m));
        return 0;
    }
}

int kconsumer_poll(KConsumer *kc, rd_kafka_message_t **out)
{
    char buf[64];

    *out = NULL;
    while (read(kc->pipefd[0], buf, sizeof(buf)) > 0)
        ;
    for (;;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(kc->rk, 0);
        int rc = 0;

        if (kc->failed)
            rc = tm_fail(kc->failed, "%s", kc->failmsg);
        if (!m)
            return rc;
        if (rc == 0 && !m->err) {
            *out = m;
            return 1;
        }
        if (rc == 0)
            rc = message_error(kc, m);
        rd_kafka_message_destroy(m);
        if (rc < 0)
            return tm_fail(rc, "%s", kc->failmsg);
    }
}

bool kconsumer_eager(KConsumer *kc)
{
    return !cooperative(kc->rk);
}

int kconsumer_assign(KConsumer *kc, rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_error_t *e = NULL;
    rd_kafka_resp_err_t err = 0;
    int rc = 0;

    if (cooperative(kc->rk))
        e = rd_kafka_incremental_assign(kc->rk, parts);
    else
        err = rd_kafka_assign(kc->rk, parts);
    if (e) {
        rc = tm_fail(-EIO, "Kafka: assigning partitions: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    } else if (err) {
        rc = tm_fail(-EIO, "Kafka: assigning partitions: %s", rd_kafka_err2str(err));
    }
    return rc;
}

void kconsumer_wake(KConsumer *kc)
{
    if (write(kc->pipefd[1], "1", 1) < 0 && errno != EAGAIN)
        log_debug("kafka: cannot signal the queue pipe: %s", strerror(errno));
}

int kconsumer_start_at(KConsumer *kc, rd_kafka_topic_partition_list_t *parts)
{
    /* Waits only for librdkafka's own threads: afterwards nothing fetched from the
     * old position reaches us. */
    rd_kafka_error_t *e = rd_kafka_seek_partitions(kc->rk, parts, 5000);

    if (e) {
        int rc = tm_fail(-EIO, "Kafka: seeking: %s", rd_kafka_error_string(e));

        rd_kafka_error_destroy(e);
        return rc;
    }
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].err)
            return tm_fail(-EIO, "Kafka: seeking %s [%d] to %lld: %s", parts->elems[i].topic,
                           parts->elems[i].partition, (long long)parts->elems[i].offset,
                           rd_kafka_err2str(parts->elems[i].err));
    rd_kafka_resume_partitions(kc->rk, parts);
    return 0;
}

void kconsumer_pause(KConsumer *kc, rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_pause_partitions(kc->rk, parts);
}

void kconsumer_commit(KConsumer *kc, const rd_kafka_topic_partition_list_t *offsets)
{
    if (offsets->cnt)
        rd_kafka_commit(kc->rk, offsets, 1);
}

int kconsumer_partition_count(KConsumer *kc, const char *topic)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(kc->rk, topic, NULL);
    const rd_kafka_metadata_t *md = NULL;
    int n = 0;

    if (!rkt)
        return 0;
    /* cached metadata answers at once; the timeout bounds a cold cache */
    if (rd_kafka_metadata(kc->rk, 0, rkt, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR && md &&
        md->topic_cnt == 1)
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return n;
}

static bool wanted_topic(const Config *cfg, const char *topic)
{
    size_t n = strlen(cfg->source.kafka.topic_prefix);

    if (!cfg->source.kafka.ntopics)
        return strncmp(topic, cfg->source.kafka.topic_prefix, n) == 0 && topic[n] == '.' &&
               topic[n + 1];
    for (size_t i = 0; i < cfg->source.kafka.ntopics; i++)
        if (strcmp(cfg->source.kafka.topics[i], topic) == 0)
            return true;
    return false;
}

int kafka_high_watermarks(const Config *cfg, KMark **out, size_t *n)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char *group = xasprintf("%s.verify", cfg->source.kafka.group);
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_resp_err_t err;
    char errstr[512];
    size_t cap = 16;
    int rc = krdk_conf_set(conf, "bootstrap.servers", cfg->source.kafka.brokers);

    *out = xcalloc(cap, sizeof(KMark));
    *n = 0;
    if (rc == 0)
        rc = krdk_conf_set(conf, "group.id", group); /* never joined: no subscription */
    if (rc == 0)
        rc = krdk_conf_set(conf, "log_level", "3");
    for (size_t i = 0; rc == 0 && i < cfg->source.kafka.nproperties; i++)
        rc = krdk_conf_set(conf, cfg->source.kafka.prop_keys[i], cfg->source.kafka.prop_values[i]);
    free(group);
    if (rc < 0) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return tm_fail(-EINVAL, "Kafka: cannot create a client: %s", errstr);
    }
    err = rd_kafka_metadata(rk, 1, NULL, &md, 10000);
    if (err)
        rc = tm_fail(-EIO, "Kafka: reading the topics: %s", rd_kafka_err2str(err));
    for (int t = 0; rc == 0 && t < md->topic_cnt; t++) {
        const rd_kafka_metadata_topic_t *mt = &md->topics[t];

        if (mt->err || !wanted_topic(cfg, mt->topic))
            continue;
        for (int p = 0; rc == 0 && p < mt->partition_cnt; p++) {
            int64_t lo, hi;

            err = rd_kafka_query_watermark_offsets(rk, mt->topic, mt->partitions[p].id, &lo, &hi,
                                                   10000);
            if (err) {
                rc = tm_fail(-EIO, "Kafka: the end of %s [%d]: %s", mt->topic,
                             (int)mt->partitions[p].id, rd_kafka_err2str(err));
                break;
            }
            if (*n == cap) {
                cap *= 2;
                *out = xrealloc(*out, cap * sizeof(KMark));
            }
            (*out)[(*n)++] = (KMark){xstrdup(mt->topic), mt->partitions[p].id, hi};
        }
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    if (rc < 0) {
        kafka_marks_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

void kafka_marks_free(KMark *marks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(marks[i].topic);
    free(marks);
}
