"""`tidemark apply` end to end (issue 16): source -> `tidemark run` (Kafka
target) -> librdkafka's mock cluster -> appliers in a consumer group ->
PostgreSQL target, compared with the source row by row."""

import collections
import json
import os
import random
import re
import signal
import subprocess
import threading
import time

import psycopg
import pytest

import harness
from kafka_apply_util import apply_config, start_appliers, stored_offsets, wait_applied, group_name
from test_kafka import KafkaMock, kafka_config, lsn_int, read_topic, slot_confirmed, wait_copied
from test_kafka_debezium import DDL, MODES, insert

confluent_kafka = pytest.importorskip("confluent_kafka")


@pytest.fixture
def kafka3():
    m = KafkaMock(3)
    try:
        yield m
    finally:
        m.close()


def test_apply_smoke(env, kafka3):
    ddl = "CREATE TABLE items (id int PRIMARY KEY, name text, qty int)"
    env.both_sql(ddl)
    kafka3.command("topic %s.public.items 4" % env.pipeline)
    env.src_sql("INSERT INTO items SELECT g, 'n' || g, g FROM generate_series(1, 300) g")
    prod = env.daemon(config_text=kafka_config(env, kafka3.bootstrap))
    appliers = start_appliers(env, kafka3.bootstrap, 2, level="debug")
    env.src_sql("UPDATE items SET qty = qty + 1 WHERE id % 3 = 0")
    env.src_sql("DELETE FROM items WHERE id % 7 = 0")
    env.src_sql("INSERT INTO items SELECT g, 'm' || g, g FROM generate_series(301, 400) g")
    wait_applied(env, kafka3.bootstrap, prod, appliers, ["public.items"])
    env.assert_tables_equal("items")
    for a in appliers:
        a.stop()
    prod.stop()


# --------------------------------------------------------------------------- every type

# What a Debezium encoding cannot bring back (docs/SCALE.md, "Types"): per mode, the
# target's text of the column instead of the source's. None: the column is never sent.
LOSSY_ALL = {"ttz": "11:51:30.123789+00", "tptz": "11:51:30.123+00"}
LOSSY = {
    "defaults": dict(LOSSY_ALL, it="MICRO", circ=None, lsn=None),
    "string_us_hex": dict(LOSSY_ALL, circ=None, lsn=None),
    "double_connect_unknown": dict(LOSSY_ALL, it="MICRO", ts="2016-11-04 13:51:30.123",
                                   ts_large="21016-11-04 13:51:30.123"),
}


def column_texts(conninfo, table, cols):
    q = "SELECT %s FROM %s ORDER BY 1" % (", ".join('"%s"::text' % c for c in cols), table)
    with psycopg.connect(conninfo, autocommit=True, options=harness.COMPARE_OPTIONS) as c:
        return c.execute(q).fetchall()


@pytest.mark.parametrize("mode", sorted(MODES))
def test_apply_every_type_round_trips(env, kafka3, mode):
    """Every column type of Debezium's connector tests, through copy ('r'), insert ('c'),
    update ('u') and delete ('d'), in three converter configurations: the target holds the
    source's text, except what the encoding documentedly loses."""
    extra, _, specials = MODES[mode]
    env.src_sql(DDL)
    env.dst_sql(DDL)
    kafka3.command("topic %s.public.dbz 2" % env.pipeline)
    insert(env, 1, specials)
    prod = env.daemon(config_text=kafka_config(env, kafka3.bootstrap, target_extra=extra))
    appliers = start_appliers(env, kafka3.bootstrap, 1, extra_source=extra)
    insert(env, 2, specials)
    insert(env, 3, specials)
    env.src_sql("UPDATE dbz SET t = 'changed', i = 7, int_array = '{9}' WHERE pk = 2")
    env.src_sql("DELETE FROM dbz WHERE pk = 3")
    wait_applied(env, kafka3.bootstrap, prod, appliers, ["public.dbz"])
    cols = [r[0] for r in env.src_sql("SELECT attname FROM pg_attribute WHERE attrelid = 'dbz'::regclass"
                                      " AND attnum > 0 AND NOT attisdropped ORDER BY attnum")]
    src = column_texts(env.src, "dbz", cols)
    dst = column_texts(env.dst, "dbz", cols)
    assert [r[0] for r in src] == [r[0] for r in dst] == ["1", "2"]
    micro = env.dst_sql("SELECT '37091106780000 microseconds'::interval::text")[0][0]
    wrong = []
    for srow, drow in zip(src, dst):
        for col, s, d in zip(cols, srow, drow):
            want = LOSSY[mode].get(col, s) if col in LOSSY[mode] else s
            want = micro if want == "MICRO" else want
            if d != want:
                wrong.append("pk %s %s: source %r, target %r, expected %r" % (srow[0], col, s, d, want))
    assert not wrong, "%s:\n%s" % (mode, "\n".join(wrong))
    for a in appliers:
        a.stop()
    prod.stop()


# --------------------------------------------------------------------------- exactly once

# On the target, an ALWAYS trigger (the apply session runs as a replica: only those fire)
# records every row version applied, in the transaction that applied it: a batch rolled
# back takes its history rows with it. Each source change adds 1 to v, so per key the
# history must read 0, 1, 2, ... with nothing missing, nothing twice, nothing out of order.
KV_DDL = "CREATE TABLE kv (k int PRIMARY KEY, v int NOT NULL, src_txid bigint, pad text)"
HISTORY_DDL = """
    CREATE TABLE kv_history (at bigserial, k int, v int, src_txid bigint,
                             tgt_txid bigint DEFAULT txid_current());
    CREATE FUNCTION kv_log() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO kv_history (k, v, src_txid) VALUES (NEW.k, NEW.v, NEW.src_txid);
        RETURN NEW;
    END $$;
    CREATE TRIGGER kv_log AFTER INSERT OR UPDATE ON kv FOR EACH ROW EXECUTE FUNCTION kv_log();
    ALTER TABLE kv ENABLE ALWAYS TRIGGER kv_log;
"""


class KvWorkload(threading.Thread):
    """Transactions that each add 1 to v of a few distinct keys, and insert new keys."""

    def __init__(self, conninfo, keys, txns, seed):
        super().__init__(daemon=True)
        self.conninfo, self.keys, self.txns = conninfo, keys, txns
        self.rng = random.Random(seed)
        self.error = None
        self.done = 0

    def run(self):
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                nxt = self.keys + 1
                for i in range(self.txns):
                    with conn.transaction():
                        ks = self.rng.sample(range(1, nxt), 4)
                        conn.execute("UPDATE kv SET v = v + 1, src_txid = txid_current()"
                                     " WHERE k = ANY(%s)", (ks,))
                        if i % 10 == 0:
                            conn.execute("INSERT INTO kv VALUES (%s, 0, txid_current(), repeat('x', 50))",
                                         (nxt,))
                            nxt += 1
                    self.done += 1
                    if i % 10 == 0:
                        time.sleep(0.05)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e


def assert_history_exact(env, exact=True):
    """Per key: 0, 1, 2, ... up to the final v, each once, in order. With the sink's set
    statements (the default) repeated updates of a key in one batch merge into one, so
    versions may be missing: then each key's versions only have to rise strictly (a batch
    applied twice would go back) and end at the final value."""
    final = dict(env.dst_sql("SELECT k, v FROM kv"))
    hist = collections.defaultdict(list)
    for k, v in env.dst_sql("SELECT k, v FROM kv_history ORDER BY at"):
        hist[k].append(v)
    if exact:
        bad = [k for k, v in final.items() if hist[k] != list(range(v + 1))]
    else:
        bad = [k for k, v in final.items()
               if not hist[k] or hist[k][-1] != v or any(b <= a for a, b in zip(hist[k], hist[k][1:]))]
    bad = ["key %d: %s (final %d)" % (k, hist[k][:12], final[k]) for k in sorted(bad)]
    assert not bad, "%d key(s) applied twice, skipped or out of order:\n%s" % (len(bad), "\n".join(bad[:10]))
    return hist


def test_apply_exactly_once_under_kills_rebalances_and_broker_restarts(env):
    """3 brokers, 12 partitions, 3 appliers; during the workload: kill -9 of appliers (and
    restarts), a graceful leave and join (rebalances), a broker down and up, a kill -9 of
    the producer (it resends from its slot). The target equals the source, and every key's
    history is exact."""
    mock = KafkaMock(3)
    try:
        env.src_sql(KV_DDL)
        env.dst_sql(KV_DDL + ";" + HISTORY_DDL)
        topic = "%s.public.kv" % env.pipeline
        mock.command("topic %s 12" % topic)
        for part in range(12):
            mock.command("leader %s %d %d" % (topic, part, part % 3 + 1))
        env.src_sql("INSERT INTO kv SELECT g, 0, txid_current(), repeat('x', 50) FROM generate_series(1, 600) g")
        prod = env.daemon(config_text=kafka_config(
            env, mock.bootstrap, target_extra="properties: {reconnect.backoff.max.ms: 500}"))
        wait_copied(env, prod, ["kv"])  # so every key's history starts at 0
        appliers = start_appliers(env, mock.bootstrap, 3, batch=200)
        # CI runs one round (the short campaign); TIDEMARK_APPLY_CAMPAIGN_ROUNDS=N runs N, with
        # a workload N times as long and a seed of its own per round
        rounds = int(os.environ.get("TIDEMARK_APPLY_CAMPAIGN_ROUNDS", "1"))
        work = KvWorkload(env.src, 600, 3000 * rounds, seed=16)
        work.start()
        rng = random.Random(1616)
        actions = ["kill", "producer", "leave", "broker", "kill", "pause", "kill", "broker", "kill"]
        for r in range(1, rounds):
            more = list(actions[:9])
            random.Random(1616 + r).shuffle(more)
            actions += more
        for act in actions:
            time.sleep(rng.uniform(1.0, 2.5))
            if act == "kill":
                victim = rng.choice(appliers)
                victim.kill9()
                time.sleep(rng.uniform(0.2, 1.5))
                victim.start()
            elif act == "leave":
                victim = rng.choice(appliers)
                victim.stop()
                time.sleep(1.0)
                victim.start()
            elif act == "broker":
                b = rng.randint(1, 3)
                mock.command("down %d" % b)
                time.sleep(2.0)
                mock.command("up %d" % b)
            elif act == "pause":
                # a process that stalls past its session (GC, a frozen VM) and comes back:
                # the group moved its partitions on; its own commits must fail the fence
                victim = rng.choice(appliers)
                victim.sigstop()
                time.sleep(8.0)
                victim.sigcont()
            elif act == "producer":
                prod.kill9()
                env.wait_slot_inactive()
                prod.start()
            for a in appliers:
                a.check_alive()
        work.join(120 * rounds)
        assert not work.is_alive() and work.error is None, work.error
        wait_applied(env, mock.bootstrap, prod, appliers, ["public.kv"], timeout=150)
        env.assert_tables_equal("kv")
        assert_history_exact(env, exact=False)
        logs = "".join(a.log() for a in appliers)
        print("fenced batches: %d, producer resends skipped: %s" % (
            logs.count("moved since this process read it"),
            re.findall(r"skipped (\d+) resends", logs)[-3:]))
        for a in appliers:
            a.stop()
        prod.stop()
    finally:
        mock.close()


def test_apply_idle_member_does_not_hold_up_a_rebalance(env, kafka3):
    """More appliers than partitions: one member gets an empty assignment. When an applier
    that holds partitions is killed (-9), the group rebalances and the idle member must
    answer at once and take the partitions over from the target's offsets: every change
    applies once."""
    env.src_sql(KV_DDL)
    env.dst_sql(KV_DDL + ";" + HISTORY_DDL)
    topic = "%s.public.kv" % env.pipeline
    kafka3.command("topic %s 2" % topic)
    env.src_sql("INSERT INTO kv SELECT g, 0, txid_current(), 'x' FROM generate_series(1, 40) g")
    prod = env.daemon(config_text=kafka_config(env, kafka3.bootstrap))
    wait_copied(env, prod, ["kv"])
    appliers = start_appliers(env, kafka3.bootstrap, 3, set_statements=False)
    wait_applied(env, kafka3.bootstrap, prod, appliers, ["public.kv"])
    owners = {r[0] for r in env.dst_sql("SELECT applier FROM tidemark.kafka_offsets")}
    pids = {int(o.rsplit(":", 1)[1]) for o in owners}
    holders = [a for a in appliers if a.proc.pid in pids]
    idle = [a for a in appliers if a.proc.pid not in pids]
    assert holders and idle, "owners %s, pids %s" % (owners, [a.proc.pid for a in appliers])
    for victim in holders:
        victim.kill9()
    for i in range(10):
        env.src_sql("UPDATE kv SET v = v + 1, src_txid = txid_current() WHERE k %% 5 = %s", (i % 5,))
    # the session timeout is 6 s; a member stuck in its rebalance holds the group for 300 s
    wait_applied(env, kafka3.bootstrap, prod, idle, ["public.kv"], timeout=60)
    env.assert_tables_equal("kv")
    assert_history_exact(env)
    for a in idle:
        a.stop()
    prod.stop()


def test_apply_starts_at_the_targets_offsets_not_kafkas(env, kafka3):
    """The group's committed offsets in Kafka are advisory: set one partition's far ahead
    (starting there would skip changes) and the other's back to 0 (starting there would
    read everything again), and a restarted applier still begins each partition exactly
    at the offset tidemark.kafka_offsets holds: nothing skipped, nothing read twice."""
    env.src_sql(KV_DDL)
    env.dst_sql(KV_DDL + ";" + HISTORY_DDL)
    topic = "%s.public.kv" % env.pipeline
    kafka3.command("topic %s 2" % topic)
    env.src_sql("INSERT INTO kv SELECT g, 0, txid_current(), 'x' FROM generate_series(1, 40) g")
    prod = env.daemon(config_text=kafka_config(env, kafka3.bootstrap))
    wait_copied(env, prod, ["kv"])
    (a,) = start_appliers(env, kafka3.bootstrap, 1, set_statements=False)
    wait_applied(env, kafka3.bootstrap, prod, [a], ["public.kv"])
    a.stop()
    stored = stored_offsets(env)
    for i in range(20):
        env.src_sql("UPDATE kv SET v = v + 1, src_txid = txid_current() WHERE k %% 5 = %s", (i % 5,))
    wait_copied(env, prod, ["kv"])
    target = lsn_int(harness.current_wal_lsn(env.src))
    harness.wait_for(lambda: slot_confirmed(env) >= target, 60, "the producer to deliver", 0.1)
    # a member of the group commits them (the mock refuses commits from outside the group)
    c = confluent_kafka.Consumer({"bootstrap.servers": kafka3.bootstrap, "group.id": group_name(env),
                                  "enable.auto.commit": False, "log_level": 3,
                                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    try:
        c.subscribe([topic])
        harness.wait_for(lambda: c.poll(0.2) is None and len(c.assignment()) == 2, 60,
                         "the test consumer's assignment", 0)
        c.commit(offsets=[confluent_kafka.TopicPartition(topic, 0, stored[(topic, 0)] + 1000),
                          confluent_kafka.TopicPartition(topic, 1, 0)], asynchronous=False)
        got = {(tp.topic, tp.partition): tp.offset for tp in c.committed(
            [confluent_kafka.TopicPartition(topic, 0), confluent_kafka.TopicPartition(topic, 1)], timeout=10)}
    finally:
        c.close()
    assert got == {(topic, 0): stored[(topic, 0)] + 1000, (topic, 1): 0}, got
    a.start()
    wait_applied(env, kafka3.bootstrap, prod, [a], ["public.kv"])
    env.assert_tables_equal("kv")
    assert_history_exact(env)
    a.stop()
    assert "(0 resends skipped" in a.log(), a.log_tail()  # nothing before the stored offsets read
    prod.stop()


def test_apply_cooperative_rebalances(env, kafka3):
    """The cooperative protocol (partition.assignment.strategy: cooperative-sticky): members
    join, one is killed (-9) and comes back, one leaves, while changes stream; partitions
    move incrementally and each starts at the target's offset: the target equals the source
    and every key's history is exact."""
    env.src_sql(KV_DDL)
    env.dst_sql(KV_DDL + ";" + HISTORY_DDL)
    topic = "%s.public.kv" % env.pipeline
    kafka3.command("topic %s 6" % topic)
    env.src_sql("INSERT INTO kv SELECT g, 0, txid_current(), 'x' FROM generate_series(1, 200) g")
    prod = env.daemon(config_text=kafka_config(env, kafka3.bootstrap))
    wait_copied(env, prod, ["kv"])
    coop = "partition.assignment.strategy: cooperative-sticky"
    appliers = start_appliers(env, kafka3.bootstrap, 2, batch=50, set_statements=False, properties=coop)
    work = KvWorkload(env.src, 200, 600, seed=21)
    work.start()
    harness.wait_for(lambda: work.done >= 100, 60, "the workload to start", 0.1)
    appliers += start_appliers(env, kafka3.bootstrap, 1, batch=50, set_statements=False, properties=coop)
    harness.wait_for(lambda: work.done >= 250, 60, "more of the workload", 0.1)
    appliers[0].kill9()
    harness.wait_for(lambda: work.done >= 350, 60, "more of the workload", 0.1)
    appliers[0].start()
    harness.wait_for(lambda: work.done >= 450, 60, "more of the workload", 0.1)
    appliers[1].stop()
    work.join(120)
    assert not work.is_alive() and work.error is None, work.error
    live = [appliers[0], appliers[2]]
    wait_applied(env, kafka3.bootstrap, prod, live, ["public.kv"])
    env.assert_tables_equal("kv")
    assert_history_exact(env)
    assert "assigned (cooperative)" in appliers[2].log(), appliers[2].log_tail()
    for a in live:
        a.stop()
    prod.stop()


def last_log(daemon):
    with open(daemon.logs[-1], "rb") as f:
        return f.read().decode("utf-8", "replace")


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_apply_stops_while_its_offsets_are_being_read(env, kafka3, strategy):
    """SIGTERM while the applier still waits for its partitions' offsets from the target (so
    it has not taken them from the group yet): it leaves the group and exits 0, with either
    protocol, and a restart goes on exactly from the stored offsets."""
    env.src_sql(KV_DDL)
    env.dst_sql(KV_DDL + ";" + HISTORY_DDL)
    kafka3.command("topic %s.public.kv 2" % env.pipeline)
    env.src_sql("INSERT INTO kv SELECT g, 0, txid_current(), 'x' FROM generate_series(1, 20) g")
    prod = env.daemon(config_text=kafka_config(env, kafka3.bootstrap))
    wait_copied(env, prod, ["kv"])
    (a,) = start_appliers(env, kafka3.bootstrap, 1, set_statements=False,
                          properties="partition.assignment.strategy: " + strategy)
    wait_applied(env, kafka3.bootstrap, prod, [a], ["public.kv"])
    a.stop()
    with psycopg.connect(env.dst) as lock:
        # the offsets cannot be read while this is held
        lock.execute("LOCK TABLE tidemark.kafka_offsets IN ACCESS EXCLUSIVE MODE")
        a.start()
        harness.wait_for(lambda: "partition(s) assigned" in last_log(a), 60, "the assignment", 0.05)
        a.proc.send_signal(signal.SIGTERM)
        harness.wait_for(lambda: "received Terminated" in last_log(a), 60, "the signal", 0.05)
        lock.rollback()
    assert a.wait_exit(30) == 0, a.log_tail()
    env.src_sql("UPDATE kv SET v = v + 1, src_txid = txid_current()")
    a.start()
    wait_applied(env, kafka3.bootstrap, prod, [a], ["public.kv"])
    env.assert_tables_equal("kv")
    assert_history_exact(env)
    a.stop()
    prod.stop()


# --------------------------------------------------------------------------- resends, fences

def test_apply_skips_producer_resends(env, kafka3):
    """A producer that crashes resends from its slot what Kafka already has: the same
    events again, at new offsets. The appliers drop every one of them by its LSN (the last
    applied position is stored with the offset), so nothing is applied twice."""
    env.src_sql(KV_DDL)
    env.dst_sql(KV_DDL + ";" + HISTORY_DDL)
    topic = "%s.public.kv" % env.pipeline
    kafka3.command("topic %s 2" % topic)
    env.src_sql("INSERT INTO kv SELECT g, 0, txid_current(), 'x' FROM generate_series(1, 40) g")
    prod = env.daemon(config_text=kafka_config(env, kafka3.bootstrap))
    wait_copied(env, prod, ["kv"])
    appliers = start_appliers(env, kafka3.bootstrap, 1, set_statements=False)
    for i in range(20):
        env.src_sql("UPDATE kv SET v = v + 1, src_txid = txid_current() WHERE k %% 5 = %s", (i % 5,))
    wait_applied(env, kafka3.bootstrap, prod, appliers, ["public.kv"])
    # resend the second half of each partition, as a restarted producer would
    msgs = read_topic(kafka3.bootstrap, topic)
    resend = []
    for part in (0, 1):
        mine = [m for m in msgs if m.partition == part]
        resend += mine[len(mine) // 2:]
    p = confluent_kafka.Producer({"bootstrap.servers": kafka3.bootstrap, "enable.idempotence": True})
    for m in resend:
        p.produce(topic, partition=m.partition, key=json.dumps(m.key).encode(),
                  value=None if m.value is None else json.dumps(m.value).encode(),
                  headers=list(m.headers.items()))
    assert p.flush(30) == 0
    wait_applied(env, kafka3.bootstrap, None, appliers, ["public.kv"])
    env.assert_tables_equal("kv")
    assert_history_exact(env)
    appliers[0].stop()
    resent = sum(1 for m in resend if m.value is not None)
    assert "(%d resends skipped" % resent in appliers[0].log(), appliers[0].log_tail()
    prod.stop()


def test_apply_fence_rolls_back_a_batch_whose_offsets_moved(env, kafka3):
    """Another process (a new owner after a rebalance, while this one stalled) committed
    past the offsets this applier read: its next batch fails the offset check at the gate
    and rolls back whole, and it goes on from where the target says."""
    env.src_sql(KV_DDL)
    env.dst_sql(KV_DDL + ";" + HISTORY_DDL)
    topic = "%s.public.kv" % env.pipeline
    kafka3.command("topic %s 1" % topic)
    env.src_sql("INSERT INTO kv SELECT g, 0, txid_current(), 'x' FROM generate_series(1, 10) g")
    prod = env.daemon(config_text=kafka_config(env, kafka3.bootstrap))
    appliers = start_appliers(env, kafka3.bootstrap, 1, level="debug", set_statements=False)
    wait_applied(env, kafka3.bootstrap, prod, appliers, ["public.kv"])
    (o1,) = stored_offsets(env).values()
    # "another applier" applied the next five messages: keys 1..5
    env.dst_sql("UPDATE tidemark.kafka_offsets SET next_offset = next_offset + 5 WHERE consumer_group = %s",
                (group_name(env),))
    env.src_sql("SELECT 1")
    for k in range(1, 11):
        env.src_sql("UPDATE kv SET v = v + 1, src_txid = txid_current() WHERE k = %s", (k,))
    wait_applied(env, kafka3.bootstrap, prod, appliers, ["public.kv"])
    got = dict(env.dst_sql("SELECT k, v FROM kv"))
    assert got == {k: (0 if k <= 5 else 1) for k in range(1, 11)}, got
    assert stored_offsets(env) == {(topic, 0): o1 + 10}
    log = appliers[0].log()
    assert "moved since this process read it" in log and "rolling back" in log, appliers[0].log_tail()
    assert_history_exact(env)
    appliers[0].stop()
    prod.stop()


def test_apply_per_key_order_and_split_transactions(env, kafka3):
    """The documented relaxation: a source transaction's changes of keys in different
    partitions reach the target in different target transactions (here: two appliers),
    while each key's changes keep their order and apply once. The lsn headers show the
    order: per partition they never go back."""
    env.src_sql(KV_DDL)
    env.dst_sql(KV_DDL + ";" + HISTORY_DDL)
    topic = "%s.public.kv" % env.pipeline
    kafka3.command("topic %s 6" % topic)
    env.src_sql("INSERT INTO kv SELECT g, 0, txid_current(), 'x' FROM generate_series(1, 100) g")
    prod = env.daemon(config_text=kafka_config(env, kafka3.bootstrap))
    wait_copied(env, prod, ["kv"])
    appliers = start_appliers(env, kafka3.bootstrap, 2, batch=50, set_statements=False)
    work = KvWorkload(env.src, 100, 300, seed=7)
    work.run()
    assert work.error is None, work.error
    wait_applied(env, kafka3.bootstrap, prod, appliers, ["public.kv"])
    env.assert_tables_equal("kv")
    assert_history_exact(env)
    split = env.dst_sql("SELECT count(*) FROM (SELECT src_txid FROM kv_history WHERE v > 0"
                        " GROUP BY src_txid HAVING count(DISTINCT tgt_txid) > 1) s")[0][0]
    assert split > 0, "no source transaction was split: the test shows nothing"
    for part in range(6):
        lsns = [lsn_int(m.headers["lsn"]) for m in read_topic(kafka3.bootstrap, topic) if m.partition == part]
        assert lsns == sorted(lsns), "partition %d: lsn headers out of order" % part
    for a in appliers:
        a.stop()
    prod.stop()


# --------------------------------------------------------------------------- verify, divergence, mappings

def run_cli(*args):
    return subprocess.run([harness.tidemark_bin()] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=180)


def test_apply_verify_compares_source_with_the_kafka_fed_target(env, kafka3):
    env.src_sql(KV_DDL)
    env.dst_sql(KV_DDL)
    kafka3.command("topic %s.public.kv 3" % env.pipeline)
    env.src_sql("INSERT INTO kv SELECT g, 0, txid_current(), 'x' FROM generate_series(1, 500) g")
    prod = env.daemon(config_text=kafka_config(env, kafka3.bootstrap))
    appliers = start_appliers(env, kafka3.bootstrap, 2)
    work = KvWorkload(env.src, 500, 400, seed=3)
    work.start()
    # verify waits for the producer's slot and the appliers' offsets to pass its snapshot
    res = run_cli("verify", "--config", appliers[0].config_path, "--quiet")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "kv" in res.stdout
    work.join(60)
    wait_applied(env, kafka3.bootstrap, prod, appliers, ["public.kv"])
    for a in appliers:
        a.stop()
    env.dst_sql("UPDATE kv SET v = v + 100 WHERE k = 7")
    res = run_cli("verify", "--config", appliers[0].config_path, "--quiet")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "7" in res.stdout
    prod.stop()


def test_apply_divergence_halts_until_resume(env, kafka3):
    env.both_sql("CREATE TABLE items (id int PRIMARY KEY, qty int)")
    kafka3.command("topic %s.public.items 1" % env.pipeline)
    env.src_sql("INSERT INTO items SELECT g, g FROM generate_series(1, 5) g")
    prod = env.daemon(config_text=kafka_config(env, kafka3.bootstrap))
    (a,) = start_appliers(env, kafka3.bootstrap, 1)
    wait_applied(env, kafka3.bootstrap, prod, [a], ["public.items"])
    env.dst_sql("DELETE FROM items WHERE id = 3")  # someone broke the target
    env.src_sql("UPDATE items SET qty = 30 WHERE id = 3")
    env.src_sql("UPDATE items SET qty = 40 WHERE id = 4")
    assert a.wait_exit(60) == 1
    assert "diverged" in a.log_tail() and "id=3" in a.log_tail()
    halted = env.dst_sql("SELECT value FROM tidemark.pipeline_state WHERE pipeline = %s AND key = 'halted'",
                         (env.pipeline,))
    assert halted and "id=3" in halted[0][0]
    assert env.dst_sql("SELECT qty FROM items WHERE id = 4") == [(4,)]  # nothing after it committed
    a.start()
    assert a.wait_exit(30) == 1 and "halted" in a.log_tail()
    env.dst_sql("INSERT INTO items VALUES (3, 3)")  # the repair
    res = run_cli("resume", "--config", a.config_path)
    assert res.returncode == 0, res.stdout + res.stderr
    a.start()
    wait_applied(env, kafka3.bootstrap, prod, [a], ["public.items"])
    env.assert_tables_equal("items")
    a.stop()
    prod.stop()


MAPPING = """
mapping:
  public.src:
    target: public.clients
    on_error: dead_letter
    columns:
      id: {to: client_id, transform: [{id_offset: 1000}]}
      signup: {to: signed_up, transform: [{parse_date: {formats: ["MM/DD/YYYY"]}}]}
"""


def test_apply_mapping_and_dead_letters(env, kafka3):
    """An applier-side mapping (docs/TRANSFORMS.md) with on_error: dead_letter: rows it
    cannot transform land in tidemark.dead_letter with the full row, in the batch's
    transaction; the others in the mapped table."""
    env.src_sql("CREATE TABLE src (id int PRIMARY KEY, signup text, name text)")
    env.dst_sql("CREATE TABLE clients (client_id int PRIMARY KEY, signed_up date, name text)")
    kafka3.command("topic %s.public.src 2" % env.pipeline)
    env.src_sql("INSERT INTO src VALUES (1, '01/02/2020', 'a'), (2, 'garbage', 'b')")
    prod = env.daemon(config_text=kafka_config(env, kafka3.bootstrap))
    appliers = start_appliers(env, kafka3.bootstrap, 1, extra=MAPPING)
    env.src_sql("INSERT INTO src VALUES (3, '03/04/2021', 'c'), (4, 'also bad', 'd')")
    env.src_sql("UPDATE src SET name = 'cc' WHERE id = 3")
    env.src_sql("DELETE FROM src WHERE id = 1")
    wait_applied(env, kafka3.bootstrap, prod, appliers, ["public.src"])
    assert env.dst_sql("SELECT client_id, signed_up::text, name FROM clients ORDER BY 1") == [
        (1003, "2021-03-04", "cc")]
    dead = env.dst_sql("SELECT pipeline, table_name, op, row->>'id', row->>'signup', error, lsn IS NOT NULL"
                       " FROM tidemark.dead_letter ORDER BY 4")
    assert [(p, t, op, i, s) for p, t, op, i, s, _, _ in dead] == [
        (env.pipeline, "public.src", "INSERT", "2", "garbage"),
        (env.pipeline, "public.src", "INSERT", "4", "also bad")]
    assert all(err and has_lsn for *_, err, has_lsn in dead)
    for a in appliers:
        a.stop()
    prod.stop()


# --------------------------------------------------------------------------- positions, crafted

def envelope(op, before, after, lsn, table="t", name="crafted"):
    return json.dumps({"before": before, "after": after,
                       "source": {"version": "0.1.0", "connector": "tidemark", "name": name,
                                  "ts_ms": 0, "snapshot": "true" if op == "r" else "false", "db": "x",
                                  "sequence": None, "schema": "public", "table": table,
                                  "txId": None, "lsn": lsn, "xmin": None},
                       "op": op, "ts_ms": 0, "transaction": None}).encode()


def lsn_text(v):
    return "%X/%X" % (v >> 32, v & 0xffffffff)


def test_apply_positions_tell_resends_from_new_changes(env, kafka3):
    """Crafted events on one partition. A stream change whose commit LSN equals the initial
    load's snapshot LSN is new (a transaction committing right at the snapshot's
    consistent point is not in it: bench/kafka_apply.sh lost such an update once); an event
    at or before the last applied position is a resend; the create of a key-change pair
    shares its delete's position and follows it (seq)."""
    env.dst_sql("""
        CREATE TABLE t (pk int PRIMARY KEY, v int NOT NULL);
        CREATE TABLE t_history (at bigserial, k int, v int);
        CREATE FUNCTION t_log() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO t_history (k, v) VALUES (NEW.pk, NEW.v); RETURN NEW; END $$;
        CREATE TRIGGER t_log AFTER INSERT OR UPDATE ON t FOR EACH ROW EXECUTE FUNCTION t_log();
        ALTER TABLE t ENABLE ALWAYS TRIGGER t_log;""")
    topic = "%s.public.t" % env.pipeline
    kafka3.command("topic %s 1" % topic)
    L = 0x1000
    events = [  # (key, op, before, after, commit lsn, change lsn, extra header)
        (1, "r", None, {"pk": 1, "v": 0}, L, L, None),
        (2, "r", None, {"pk": 2, "v": 0}, L, L, None),
        (1, "u", None, {"pk": 1, "v": 1}, L, L + 0x10, None),        # committed at the snapshot LSN
        (2, "u", None, {"pk": 2, "v": 5}, L, L + 0x20, None),        # the same transaction
        (1, "u", None, {"pk": 1, "v": 2}, L + 0x100, L + 0x80, None),
        (1, "u", None, {"pk": 1, "v": 1}, L, L + 0x10, None),        # resent
        (2, "u", None, {"pk": 2, "v": 5}, L, L + 0x20, None),        # resent
        (1, "d", {"pk": 1, "v": None}, None, L + 0x200, L + 0x180, "__debezium.newkey"),
        (1, None, None, None, L + 0x200, L + 0x180, "__debezium.newkey"),  # tombstone
        (3, "c", None, {"pk": 3, "v": 3}, L + 0x200, L + 0x180, "__debezium.oldkey"),
        (1, "u", None, {"pk": 1, "v": 2}, L + 0x100, L + 0x80, None),  # resent, before the pair
    ]
    p = confluent_kafka.Producer({"bootstrap.servers": kafka3.bootstrap, "enable.idempotence": True})
    for key, op, before, after, commit, change, hdr in events:
        headers = [("lsn", lsn_text(commit)), ("txid", "0" if op == "r" else "77")]
        if hdr:
            headers.append((hdr, json.dumps({"pk": 3 if hdr.endswith("newkey") else 1})))
        p.produce(topic, partition=0, key=json.dumps({"pk": key}).encode(),
                  value=None if op is None else envelope(op, before, after, change), headers=headers)
    assert p.flush(30) == 0
    appliers = start_appliers(env, kafka3.bootstrap, 1, set_statements=False,
                              extra_source="topics: [%s]" % topic)
    def taken():
        appliers[0].check_alive()
        return stored_offsets(env).get((topic, 0)) == len(events)
    harness.wait_for(taken, 60, "the applier to take every crafted event")
    assert env.dst_sql("SELECT pk, v FROM t ORDER BY pk") == [(2, 5), (3, 3)]
    hist = env.dst_sql("SELECT k, v FROM t_history ORDER BY at")
    assert hist == [(1, 0), (2, 0), (1, 1), (2, 5), (1, 2), (3, 3)], hist
    appliers[0].stop()
    assert "(3 resends skipped" in appliers[0].log(), appliers[0].log_tail()
