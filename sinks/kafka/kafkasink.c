/*
 * Kafka sink: the producer and its settings, how librdkafka is driven from
 * the pipeline's libev loop (its main queue signals a pipe whose read end is
 * the sink's socket; process() serves delivery reports, logs and errors), the
 * delivery-report dispatch, the state the slot cannot hold (kstate.c), and
 * the ops table. The stream is in kafkaapply.c, the initial copy in
 * kafkacopy.c.
 */
#include "sinks/kafka/kafkasink_int.h"
#include "sinks/kafka/krdk.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "tm_version.h"
#include "core/clock.h"

#include <fcntl.h>
#include <stdarg.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Settings tidemark's guarantees rest on: properties may not weaken them. */
static const char *const FIXED[][2] = {
    {"enable.idempotence", "true"},
    {"acks", "all"},
};

char *kafkasink_topic_name(const char *tmpl, const char *prefix, const char *schema,
                           const char *table)
{
    Buf b = BUF_INIT;

    if (!tmpl)
        tmpl = "{prefix}.{schema}.{table}";
    for (const char *p = tmpl; *p;) {
        const char *piece = NULL;

        if (strncmp(p, "{prefix}", 8) == 0)
            piece = prefix;
        else if (strncmp(p, "{schema}", 8) == 0)
            piece = schema;
        else if (strncmp(p, "{table}", 7) == 0)
            piece = table;
        if (piece) {
            buf_puts(&b, piece);
            p = strchr(p, '}') + 1;
        } else {
            buf_putc(&b, *p++);
        }
    }
    buf_cstr(&b);
    for (size_t i = 0; i < b.len; i++) {
        char c = b.data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            b.data[i] = '_';
    }
    if (b.len == 0 || b.len > 249 || strcmp(b.data, ".") == 0 || strcmp(b.data, "..") == 0) {
        tm_fail(-EINVAL,
                "the Kafka topic name for %s.%s, \"%s\", is not valid (1 to 249"
                " characters, not \".\" or \"..\"); change target.topic or topic_prefix",
                schema, table, b.data);
        buf_release(&b);
        return NULL;
    }
    return b.data;
}

int kafkasink_topic(KafkaSink *s, const char *schema, const char *table, rd_kafka_topic_t **out)
{
    char *name = kafkasink_topic_name(s->cfg->target.kafka.topic, s->cfg->target.kafka.topic_prefix,
                                      schema, table);
    rd_kafka_topic_t *rkt = NULL;
    int rc = 0;

    if (!name)
        return -EINVAL;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->ntopics && !rkt; i++)
        if (strcmp(s->topics[i].name, name) == 0)
            rkt = s->topics[i].rkt;
    if (!rkt) {
        rkt = rd_kafka_topic_new(s->rk, name, NULL);
        if (rkt) {
            s->topics = xrealloc(s->topics, (s->ntopics + 1) * sizeof(*s->topics));
            s->topics[s->ntopics++] = (KTopic){name, xasprintf("%s.%s", schema, table), rkt};
            name = NULL;
        } else {
            rc = tm_fail(-EINVAL, "Kafka: cannot use topic %s: %s", name,
                         rd_kafka_err2str(rd_kafka_last_error()));
        }
    }
    pthread_mutex_unlock(&s->mu);
    free(name);
    *out = rkt;
    return rc;
}

void kafkasink_set_failure(KafkaSink *s, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&s->mu);
    if (!atomic_load(&s->failed)) {
        va_start(ap, fmt);
        vsnprintf(s->failmsg, sizeof(s->failmsg), fmt, ap);
        va_end(ap);
        atomic_store(&s->failed, -EIO);
    }
    pthread_mutex_unlock(&s->mu);
}

int kafkasink_failure(KafkaSink *s)
{
    char msg[sizeof(s->failmsg)];
    int rc = atomic_load(&s->failed);

    if (!rc)
        return 0;
    pthread_mutex_lock(&s->mu);
    memcpy(msg, s->failmsg, sizeof(msg));
    pthread_mutex_unlock(&s->mu);
    return tm_fail(rc, "%s", msg);
}

int kafkasink_produce(KafkaSink *s, rd_kafka_topic_t *rkt, const Buf *key, const Buf *val,
                      const char *lsn_text, const char *txid_text, const char *hname,
                      const Buf *hval, void *opaque)
{
    for (;;) {
        rd_kafka_resp_err_t err;

        if (hname)
            err = rd_kafka_producev(
                s->rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_KEY(key ? key->data : NULL, key ? key->len : 0),
                RD_KAFKA_V_VALUE(val ? val->data : NULL, val ? val->len : 0),
                RD_KAFKA_V_HEADER("lsn", lsn_text, (ssize_t)strlen(lsn_text)),
                RD_KAFKA_V_HEADER("txid", txid_text, (ssize_t)strlen(txid_text)),
                RD_KAFKA_V_HEADER(hname, hval->data, (ssize_t)hval->len), RD_KAFKA_V_OPAQUE(opaque),
                RD_KAFKA_V_END);
        else
            err = rd_kafka_producev(
                s->rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_KEY(key ? key->data : NULL, key ? key->len : 0),
                RD_KAFKA_V_VALUE(val ? val->data : NULL, val ? val->len : 0),
                RD_KAFKA_V_HEADER("lsn", lsn_text, (ssize_t)strlen(lsn_text)),
                RD_KAFKA_V_HEADER("txid", txid_text, (ssize_t)strlen(txid_text)),
                RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            return 0;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return tm_fail(-EIO, "Kafka: producing a %zu-byte message to %s: %s",
                           (key ? key->len : 0) + (val ? val->len : 0), rd_kafka_topic_name(rkt),
                           rd_kafka_err2str(err));
        /* Backpressure, not loss: let deliveries make room, then retry. */
        int rc = kafkasink_poll(s, 10);

        if (rc < 0)
            return rc;
    }
}

int kafkasink_poll(KafkaSink *s, int timeout_ms)
{
    int rounds = 0;

    rd_kafka_poll(s->rk, timeout_ms);
    while (rd_kafka_poll(s->rk, 0) > 0) {
        if (++rounds == 1000) {
            /* Keep the loop responsive; the pipe brings us back at once. */
            if (write(s->pipefd[1], "1", 1) < 0 && errno != EAGAIN)
                log_debug("kafka: cannot signal the queue pipe: %s", strerror(errno));
            break;
        }
    }
    return kafkasink_failure(s);
}

/* The first table routed to rkt, for messages. */
static const char *topic_table(KafkaSink *s, const rd_kafka_topic_t *rkt)
{
    const char *t = "?";

    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->ntopics; i++)
        if (s->topics[i].rkt == rkt)
            t = s->topics[i].table;
    pthread_mutex_unlock(&s->mu);
    return t;
}

static void put_raw_or_null(Buf *b, const void *p, size_t n)
{
    if (p)
        buf_append(b, p, n); /* our own keys and values are JSON */
    else
        buf_puts(b, "null");
}

/*
 * undeliverable: dead_letter — a message Kafka rejected for good goes to the
 * dead-letter file, with its topic, key, value and headers; returns whether
 * it was written (else the failure stands).
 */
static bool dead_letter_message(KafkaSink *s, const rd_kafka_message_t *m)
{
    Buf f = BUF_INIT;
    Lsn lsn = LSN_INVALID;
    uint32_t xid = 0;
    const void *hv;
    size_t hl;
    rd_kafka_headers_t *hdrs = NULL;
    bool ok;

    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        char tmp[32];

        if (rd_kafka_header_get_last(hdrs, "lsn", &hv, &hl) == 0 && hl < sizeof(tmp)) {
            memcpy(tmp, hv, hl);
            tmp[hl] = '\0';
            lsn_parse(tmp, &lsn);
        }
        if (rd_kafka_header_get_last(hdrs, "txid", &hv, &hl) == 0 && hl < sizeof(tmp)) {
            memcpy(tmp, hv, hl);
            tmp[hl] = '\0';
            xid = (uint32_t)strtoul(tmp, NULL, 10);
        }
    }
    buf_puts(&f, "\"topic\":");
    debezium_json_string(&f, rd_kafka_topic_name(m->rkt), strlen(rd_kafka_topic_name(m->rkt)));
    buf_puts(&f, ",\"key\":");
    put_raw_or_null(&f, m->key, m->key_len);
    buf_puts(&f, ",\"value\":");
    put_raw_or_null(&f, m->payload, m->len);
    ok = kafkasink_dead_letter(s, "undeliverable", topic_table(s, m->rkt), lsn, xid,
                               rd_kafka_err2str(m->err), buf_cstr(&f)) == 0;
    if (!ok)
        log_error("kafka: %s", tm_error());
    buf_release(&f);
    return ok;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    KafkaSink *s = opaque;
    uintptr_t o = (uintptr_t)m->_private;
    rd_kafka_resp_err_t err = m->err;

    if (s->closing)
        return;
    /* The dead letter is durable before the message counts as delivered. */
    if (err && s->cfg->target.kafka.dead_letter && dead_letter_message(s, m))
        err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if ((o & 3) == OPQ_STREAM) {
        kafkaapply_delivered(s, (uint64_t)(o >> 2), m->len + m->key_len, err, m->rkt);
        return;
    }
    if (err)
        kafkasink_set_failure(s,
                              "Kafka: delivery of a %zu-byte initial-copy message to topic %s"
                              " failed: %s. The table's copy is redone on restart; fix the"
                              " cause (for a size limit: the topic's max.message.bytes and"
                              " target.properties message.max.bytes) and restart",
                              m->len + m->key_len, rd_kafka_topic_name(m->rkt),
                              rd_kafka_err2str(err));
    if ((o & 3) == OPQ_COPY)
        kafkacopy_delivered(s, (uint64_t)(o >> 2), err);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    KafkaSink *s = opaque;
    char fatal[256];

    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, fatal, sizeof(fatal));

        kafkasink_set_failure(s, "Kafka: fatal producer error: %s: %s", rd_kafka_err2name(ferr),
                              fatal);
        return;
    }
    /* Transient (brokers down, timeouts): librdkafka retries, the slot keeps the WAL. */
    log_warn("kafka: %s (%s)", reason, rd_kafka_err2name((rd_kafka_resp_err_t)err));
}

static int check_property(const char *key, const char *value)
{
    if (strcmp(key, "bootstrap.servers") == 0 || strcmp(key, "metadata.broker.list") == 0)
        return tm_fail(-EINVAL, "target.properties.%s: set target.brokers instead", key);
    if (strcmp(key, "transactional.id") == 0)
        return tm_fail(-EINVAL, "target.properties.transactional.id: Kafka transactions are"
                                " not supported yet");
    for (size_t i = 0; i < sizeof(FIXED) / sizeof(FIXED[0]); i++) {
        bool same = strcmp(value, FIXED[i][1]) == 0 ||
                    (strcmp(FIXED[i][0], "acks") == 0 && strcmp(value, "-1") == 0);

        if (strcmp(key, FIXED[i][0]) == 0 && !same)
            return tm_fail(-EINVAL,
                           "target.properties.%s: must be %s (delivery without loss or"
                           " reordering depends on it)",
                           key, FIXED[i][1]);
    }
    return 0;
}

static int make_conf(KafkaSink *s, rd_kafka_conf_t **out)
{
    const Config *cfg = s->cfg;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char *client_id = xasprintf("tidemark-%s", cfg->pipeline);
    int rc = krdk_conf_set(conf, "bootstrap.servers", cfg->target.kafka.brokers);

    for (size_t i = 0; rc == 0 && i < sizeof(FIXED) / sizeof(FIXED[0]); i++)
        rc = krdk_conf_set(conf, FIXED[i][0], FIXED[i][1]);
    /* Retry forever while brokers are away: the slot keeps the WAL meanwhile. */
    if (rc == 0)
        rc = krdk_conf_set(conf, "message.timeout.ms", "0");
    /* Java's default partitioner, so keys land where Debezium would put them. */
    if (rc == 0)
        rc = krdk_conf_set(conf, "partitioner", "murmur2_random");
    if (rc == 0)
        rc = krdk_conf_set(conf, "client.id", client_id);
    /* Logs through the main queue: served on the loop thread like everything else. */
    if (rc == 0)
        rc = krdk_conf_set(conf, "log.queue", "true");
    for (size_t i = 0; rc == 0 && i < cfg->target.kafka.nproperties; i++) {
        const char *key = cfg->target.kafka.prop_keys[i], *value = cfg->target.kafka.prop_values[i];

        rc = check_property(key, value);
        if (rc == 0)
            rc = krdk_conf_set(conf, key, value);
    }
    free(client_id);
    if (rc < 0) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    rd_kafka_conf_set_opaque(conf, s);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, krdk_on_log);
    *out = conf;
    return 0;
}

/* The source database's name for source.db, from its conninfo as libpq would resolve it. */
static char *source_dbname(const Config *cfg)
{
    PQconninfoOption *opts = PQconninfoParse(cfg->source.conn.conninfo, NULL);
    const char *db = NULL, *user = NULL;
    char *out;

    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (o->val && *o->val && strcmp(o->keyword, "dbname") == 0)
            db = o->val;
        else if (o->val && *o->val && strcmp(o->keyword, "user") == 0)
            user = o->val;
    }
    if (!db)
        db = getenv("PGDATABASE");
    if (!db)
        db = user ? user : getenv("PGUSER");
    if (!db) {
        struct passwd *pw = getpwuid(getuid());

        db = pw ? pw->pw_name : "";
    }
    out = xstrdup(db);
    PQconninfoFree(opts);
    return out;
}

/* skipped.operations ("t", "c,u", "none") as SKIP_* bits. */
static unsigned skipped_ops(const char *ops)
{
    unsigned m = 0;

    for (const char *p = ops ? ops : ""; *p; p++)
        m |= *p == 'c'   ? SKIP_CREATE
             : *p == 'u' ? SKIP_UPDATE
             : *p == 'd' ? SKIP_DELETE
             : *p == 't' ? SKIP_TRUNCATE
                         : 0;
    return m;
}

static int kafkasink_connect(Sink *base, const char *client_encoding)
{
    KafkaSink *s = kafkasink_of(base);
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_queue_t *mainq;
    char errstr[512];
    char *db;
    int rc;

    if (strcmp(client_encoding, "UTF8") != 0)
        return tm_fail(-EINVAL,
                       "the Kafka sink writes JSON, which is UTF-8; the source database's"
                       " encoding is %s",
                       client_encoding);
    if (s->rk)
        return 0;
    rc = kstate_load(&s->state, s->cfg->target.kafka.state_dir, s->cfg->pipeline);
    if (rc == 0)
        rc = make_conf(s, &conf);
    if (rc < 0)
        return rc;
    s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!s->rk) {
        rd_kafka_conf_destroy(conf);
        return tm_fail(-EINVAL, "Kafka: cannot create the producer: %s", errstr);
    }
    rd_kafka_set_log_queue(s->rk, NULL); /* logs to the main queue */
    if (pipe2(s->pipefd, O_NONBLOCK | O_CLOEXEC) < 0)
        return tm_fail(-errno, "Kafka: pipe: %s", strerror(errno));
    mainq = rd_kafka_queue_get_main(s->rk);
    rd_kafka_queue_io_event_enable(mainq, s->pipefd[1], "1", 1);
    rd_kafka_queue_destroy(mainq);
    db = source_dbname(s->cfg);
    debezium_source_init(&s->src, TM_VERSION, s->cfg->pipeline, db);
    s->dbz = debezium_options(s->cfg);
    s->skip = skipped_ops(s->cfg->target.kafka.skipped_ops);
    free(db);
    log_info("kafka: producing to %s (topics %s)", s->cfg->target.kafka.brokers,
             s->cfg->target.kafka.topic ? s->cfg->target.kafka.topic : "{prefix}.{schema}.{table}");
    return 0;
}

static int kafkasink_read_position(Sink *base, bool *found, Lsn *lsn)
{
    KafkaSink *s = kafkasink_of(base);

    /* The slot's confirmed position is the watermark: nothing of our own. */
    *found = s->state.initialized;
    *lsn = LSN_INVALID;
    return 0;
}

static int kafkasink_init_position(Sink *base, Lsn lsn, const TableSet *tabs)
{
    KafkaSink *s = kafkasink_of(base);
    int rc;

    pthread_mutex_lock(&s->mu);
    rc = kstate_init(&s->state, lsn, tabs);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int kafkasink_table_state(Sink *base, const TableDef *t, bool *synced, Lsn *sync_lsn)
{
    KafkaSink *s = kafkasink_of(base);

    pthread_mutex_lock(&s->mu);
    kstate_table(&s->state, t->schema, t->name, synced, sync_lsn);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int kafkasink_forget_tables(Sink *base, const TableSet *keep)
{
    KafkaSink *s = kafkasink_of(base);
    int rc;

    pthread_mutex_lock(&s->mu);
    rc = kstate_forget(&s->state, keep);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int kafkasink_check_table(Sink *base, const TableDef *t, bool require_empty)
{
    /* Topics are created on first use; a redone copy appends, consumers dedupe. What
     * matters is the catalog's view of the table: types and the message key. */
    kafkasink_register_table(kafkasink_of(base), t);
    return 0;
}

static int kafkasink_process(Sink *base)
{
    KafkaSink *s = kafkasink_of(base);
    char buf[256];

    while (read(s->pipefd[0], buf, sizeof(buf)) > 0)
        ;
    return kafkasink_poll(s, 0);
}

static int kafkasink_flush(Sink *base)
{
    return 0; /* librdkafka's own threads send */
}

static int kafkasink_drain(Sink *base)
{
    KafkaSink *s = kafkasink_of(base);
    double last = clock_mono_secs();

    while (atomic_load(&s->outstanding) > 0) {
        int rc = kafkasink_poll(s, 100);

        if (rc < 0)
            return rc;
        if (clock_mono_secs() - last > 10) {
            last = clock_mono_secs();
            log_info("kafka: waiting for %zu delivery reports (brokers unreachable?)",
                     atomic_load(&s->outstanding));
        }
    }
    return kafkasink_poll(s, 0);
}

static int kafkasink_socket(const Sink *base)
{
    return ((const KafkaSink *)base)->pipefd[0];
}

static Lsn kafkasink_durable(const Sink *base)
{
    return atomic_load(&((KafkaSink *)base)->durable);
}

static size_t kafkasink_inflight(const Sink *base)
{
    return atomic_load(&((KafkaSink *)base)->outstanding);
}

static size_t kafkasink_inflight_bytes(const Sink *base)
{
    return atomic_load(&((KafkaSink *)base)->outstanding_bytes);
}

static size_t kafkasink_batch_changes(const Sink *base)
{
    return ((const KafkaSink *)base)->batch_changes;
}

static void kafkasink_free(Sink *base)
{
    KafkaSink *s = kafkasink_of(base);

    if (s->rk) {
        /* Whatever is undelivered was never confirmed: the slot resends it. */
        s->closing = true;
        rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        for (size_t i = 0; i < s->ntopics; i++)
            rd_kafka_topic_destroy(s->topics[i].rkt);
        rd_kafka_destroy(s->rk);
    }
    for (size_t i = 0; i < s->ntopics; i++) {
        free(s->topics[i].name);
        free(s->topics[i].table);
    }
    free(s->topics);
    for (size_t i = 0; i < s->nknown; i++)
        tabledef_release(&s->known[i]);
    free(s->known);
    if (s->pipefd[0] >= 0) {
        close(s->pipefd[0]);
        close(s->pipefd[1]);
    }
    kstate_release(&s->state);
    debezium_source_release(&s->src);
    buf_release(&s->key);
    buf_release(&s->val);
    buf_release(&s->key2);
    free(s->fifo);
    free(s->copies);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static const SinkOps kafkasink_ops = {
    .name = "kafka",
    .free = kafkasink_free,
    .connect = kafkasink_connect,
    .read_position = kafkasink_read_position,
    .init_position = kafkasink_init_position,
    .table_state = kafkasink_table_state,
    .check_table = kafkasink_check_table,
    .start = kafkaapply_start,
    .txn_begin = kafkaapply_txn_begin,
    .apply = kafkaapply_apply,
    .truncate = kafkaapply_truncate,
    .dead_letter = kafkaapply_dead_letter,
    .txn_commit = kafkaapply_txn_commit,
    .close_batch = kafkaapply_close_batch,
    .abort_batch = kafkaapply_abort_batch,
    .idle_position = kafkaapply_idle_position,
    .process = kafkasink_process,
    .flush = kafkasink_flush,
    .drain = kafkasink_drain,
    .socket = kafkasink_socket,
    .durable = kafkasink_durable,
    .inflight = kafkasink_inflight,
    .inflight_bytes = kafkasink_inflight_bytes,
    .batch_changes = kafkasink_batch_changes,
    .copy_open = kafkacopy_open,
    .copy_rows = kafkacopy_rows,
    .copy_finish = kafkacopy_finish,
    .copy_free = kafkacopy_free,
    .copy_open_part = kafkacopy_open_part,
    .copy_dead_letter = kafkacopy_dead_letter,
    .forget_tables = kafkasink_forget_tables,
};

Sink *kafkasink_new(const Config *cfg)
{
    KafkaSink *s = xcalloc(1, sizeof(*s));

    s->base.ops = &kafkasink_ops;
    s->base.cfg = cfg;
    s->cfg = cfg;
    s->pipefd[0] = s->pipefd[1] = -1;
    s->fifo_cap = 1024;
    s->fifo = xcalloc(s->fifo_cap, sizeof(*s->fifo));
    pthread_mutex_init(&s->mu, NULL);
    return &s->base;
}
