/*
 * Unit tests for the Kafka sink's delivery accounting (invariant 1): the
 * durable LSN reaches a transaction's end only when it and every earlier
 * transaction have all their delivery reports; idle positions wait behind
 * what is in flight; an abandoned partial transaction never becomes durable
 * itself. The producer points at a closed port, so nothing is ever really
 * delivered: the tests play the delivery reports. The failed-delivery test
 * instead produces to librdkafka's in-process mock cluster, which fails a
 * Produce request on demand, so the real delivery callback runs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/error.h"
#include "core/relcache.h"
#include "core/xmalloc.h"
#include "core/clock.h"
#include "sinks/kafka/kafkasink_int.h"

#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Fixture {
    char dir[64];
    Config *cfg;
    Sink *sink;
    RelCache *rels;
    RelEntry *rel;
} Fixture;

static int setup_with(void **state, const char *target_extra)
{
    Fixture *f = xcalloc(1, sizeof(*f));
    char yaml[768];
    RelColumn cols[2] = {{.name = "id", .type_oid = 23, .is_key = true},
                         {.name = "v", .type_oid = 25}};
    RelInfo ri = {
        .oid = 42, .schema = "public", .name = "t", .replident = 'd', .ncols = 2, .cols = cols};

    snprintf(f->dir, sizeof(f->dir), "/tmp/tidemark-kdeliv-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(yaml, sizeof(yaml),
             "pipeline: p\nsource:\n  conninfo: dbname=app\ntarget:\n  type: kafka\n"
             "  brokers: 127.0.0.1:1\n  state_dir: %s\n%s",
             f->dir, target_extra);
    assert_int_equal(config_load_string("t.yaml", yaml, &f->cfg), 0);
    assert_int_equal(sink_new(f->cfg, &f->sink), 0);
    assert_int_equal(f->sink->ops->connect(f->sink, "UTF8"), 0);
    assert_int_equal(f->sink->ops->init_position(f->sink, 100, &(TableSet){0}), 0);
    assert_int_equal(f->sink->ops->start(f->sink, 100), 0);
    f->rels = relcache_new();
    f->rel = relcache_put(f->rels, &ri);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, "");
}

/* The same, producing to an in-process mock cluster of one broker. */
static int setup_mock(void **state)
{
    return setup_with(state, "  properties: {test.mock.num.brokers: \"1\"}\n");
}

static int teardown(void **state)
{
    Fixture *f = *state;
    char *cmd = xasprintf("rm -rf '%s'", f->dir);

    sink_free(f->sink);
    relcache_free(f->rels); /* after the sink, as in the pipeline */
    config_free(f->cfg);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f);
    return 0;
}

static void txn(Fixture *f, Lsn final, Lsn end, int inserts, int deletes, bool commit)
{
    TxnInfo t = {.xid = (uint32_t) final, .final_lsn = final, .end_lsn = end};
    ColValue vals[2] = {{.state = COL_TEXT, .len = 1, .data = "7"},
                        {.state = COL_TEXT, .len = 1, .data = "x"}};
    Change c = {.kind = CHG_INSERT};

    c.insert.relid = 42;
    c.insert.newtup = (Tuple){2, vals};
    assert_int_equal(f->sink->ops->txn_begin(f->sink, &t), 0);
    for (int i = 0; i < inserts; i++)
        assert_int_equal(f->sink->ops->apply(f->sink, f->rel, &c, &t), 0);
    c.kind = CHG_DELETE;
    c.del.relid = 42;
    c.del.old_kind = 'K';
    c.del.oldtup = (Tuple){2, vals};
    for (int i = 0; i < deletes; i++)
        assert_int_equal(f->sink->ops->apply(f->sink, f->rel, &c, &t), 0);
    if (commit)
        assert_int_equal(f->sink->ops->txn_commit(f->sink, &t), 0);
}

static Lsn durable(Fixture *f)
{
    return f->sink->ops->durable(f->sink);
}

static void deliver(Fixture *f, uint64_t seq, int n)
{
    for (int i = 0; i < n; i++)
        kafkaapply_delivered(kafkasink_of(f->sink), seq, 10, RD_KAFKA_RESP_ERR_NO_ERROR, NULL);
}

static void test_in_order_durability(void **state)
{
    Fixture *f = *state;

    txn(f, 200, 210, 2, 0, true); /* seq 0: 2 messages */
    txn(f, 300, 310, 0, 1, true); /* seq 1: delete + tombstone */
    assert_int_equal(f->sink->ops->idle_position(f->sink, 400), 0);
    assert_int_equal(f->sink->ops->inflight(f->sink), 4);
    assert_true(f->sink->ops->inflight_bytes(f->sink) > 0);
    assert_int_equal(durable(f), 100);

    /* The later transaction delivered first: nothing durable yet. */
    deliver(f, 1, 2);
    assert_int_equal(durable(f), 100);
    deliver(f, 0, 1);
    assert_int_equal(durable(f), 100);
    /* The last report of the first: both, and the idle position behind them. */
    deliver(f, 0, 1);
    assert_int_equal(durable(f), 400);
    assert_int_equal(f->sink->ops->inflight(f->sink), 0);

    /* Idle with nothing in flight: durable at once. */
    assert_int_equal(f->sink->ops->idle_position(f->sink, 450), 0);
    assert_int_equal(durable(f), 450);
}

static void test_open_transaction_blocks(void **state)
{
    Fixture *f = *state;

    txn(f, 200, 210, 1, 0, false); /* seq 0, still open */
    deliver(f, 0, 1);
    assert_int_equal(durable(f), 100); /* delivered but not committed */
    /* Keepalives inside a transaction never move anything. */
    assert_int_equal(f->sink->ops->idle_position(f->sink, 500), 0);
    assert_int_equal(durable(f), 100);
    assert_int_equal(f->sink->ops->txn_commit(f->sink, &(TxnInfo){.end_lsn = 210}), 0);
    assert_int_equal(durable(f), 210);
}

static void test_abort_never_durable(void **state)
{
    Fixture *f = *state;

    txn(f, 200, 210, 1, 0, true);  /* seq 0 */
    txn(f, 300, 310, 2, 0, false); /* seq 1: partial, then the source goes away */
    assert_int_equal(f->sink->ops->abort_batch(f->sink), 0);
    deliver(f, 1, 2);
    assert_int_equal(durable(f), 100); /* still behind seq 0 */
    deliver(f, 0, 1);
    assert_int_equal(durable(f), 210); /* seq 0's end, never the partial one's */
    /* The slot resends the whole transaction; this time it commits. */
    txn(f, 300, 310, 2, 0, true);
    deliver(f, 2, 2);
    assert_int_equal(durable(f), 310);
}

static void test_many_transactions_grow_fifo(void **state)
{
    Fixture *f = *state;

    /* More than the initial FIFO capacity in flight at once. */
    for (int i = 0; i < 3000; i++)
        txn(f, 1000 + 10 * (Lsn)i, 1005 + 10 * (Lsn)i, 1, 0, true);
    for (int i = 2999; i >= 1; i--)
        deliver(f, (uint64_t)i, 1);
    assert_int_equal(durable(f), 100);
    deliver(f, 0, 1);
    assert_int_equal(durable(f), 1005 + 10 * 2999);
}

static void test_failure_stops_the_stream(void **state)
{
    Fixture *f = *state;
    TxnInfo t = {.xid = 9, .final_lsn = 200, .end_lsn = 210};

    kafkasink_set_failure(kafkasink_of(f->sink), "Kafka: delivery failed: %s", "too large");
    assert_int_equal(f->sink->ops->txn_begin(f->sink, &t), -EIO);
    assert_string_equal(tm_error(), "Kafka: delivery failed: too large");
    assert_int_equal(f->sink->ops->process(f->sink), -EIO);
}

/* Serves delivery reports until durable() reaches want or process() fails (10 s deadline). */
static int serve_until(Fixture *f, Lsn want)
{
    double deadline = clock_mono_secs() + 10;
    int rc = 0;

    while (rc == 0 && durable(f) < want && clock_mono_secs() < deadline)
        rc = kafkasink_poll(kafkasink_of(f->sink), 50);
    return rc;
}

static void test_failed_delivery_never_durable(void **state)
{
    Fixture *f = *state;
    KafkaSink *s = kafkasink_of(f->sink);
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(s->rk);

    assert_non_null(mc);
    assert_int_equal(rd_kafka_mock_topic_create(mc, "p.public.t", 1, 1), 0);
    txn(f, 200, 210, 1, 0, true); /* seq 0: really delivered */
    assert_int_equal(serve_until(f, 210), 0);
    assert_int_equal(durable(f), 210);

    /* The next Produce fails with an error no retry can fix. */
    rd_kafka_mock_push_request_errors(mc, 0 /* Produce */, 1, RD_KAFKA_RESP_ERR_INVALID_RECORD);
    txn(f, 300, 310, 1, 0, true); /* seq 1: its only message fails */
    assert_int_equal(serve_until(f, 310), -EIO);
    assert_int_equal(f->sink->ops->inflight(f->sink), 0); /* every report is in */
    assert_int_equal(durable(f), 210);
    assert_non_null(strstr(tm_error(), "public.t"));
    assert_non_null(strstr(tm_error(), "commit LSN 0/12C"));
    /* Nothing after it becomes durable either: not an idle position, not a later report. */
    assert_int_equal(f->sink->ops->idle_position(f->sink, 500), 0);
    assert_int_equal(durable(f), 210);
    assert_int_equal(f->sink->ops->process(f->sink), -EIO);
    assert_int_equal(durable(f), 210);

    /* The state file remembers it: a restart past the transaction is refused... */
    assert_int_equal(s->state.lost_lsn, 300);
    sink_free(f->sink);
    assert_int_equal(sink_new(f->cfg, &f->sink), 0);
    assert_int_equal(f->sink->ops->connect(f->sink, "UTF8"), 0);
    assert_int_equal(f->sink->ops->start(f->sink, 301), -EIO);
    assert_non_null(strstr(tm_error(), "0/12C"));
    /* ...one that resends it is not, and the mark is cleared. */
    assert_int_equal(f->sink->ops->start(f->sink, 210), 0);
    assert_int_equal(kafkasink_of(f->sink)->state.lost_lsn, LSN_INVALID);
    assert_int_equal(durable(f), 210);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_in_order_durability, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_transaction_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_never_durable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_transactions_grow_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_stops_the_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_delivery_never_durable, setup_mock, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
