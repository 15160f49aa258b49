"""End-to-end tests of the Kafka sink against librdkafka's mock cluster
(tm-kafka-mock, a real TCP broker built from tests/kafka), consumed with
confluent_kafka: the Debezium envelope of every op and of the initial load,
the type mappings through both paths, a broker outage mid-stream, kill -9
during a workload (at-least-once, per-key order, nothing missing), a
message over the size limit stopping the pipeline instead of being skipped,
and a delivery the broker rejects: the slot never confirms past it, and a
restart resends it (or refuses to start if the slot was moved past it).

"Delivered" is observable on the source: the slot's confirmed_flush_lsn only
moves once every message up to it has a successful delivery report, so the
tests wait for it to pass the source's WAL position, then read every
partition up to its high watermark.
"""

import collections
import json
import os
import random
import re
import subprocess
import threading
import time

import psycopg
import pytest

import harness

confluent_kafka = pytest.importorskip("confluent_kafka")

Msg = collections.namedtuple("Msg", "partition offset key value headers")


def mock_bin():
    path = os.environ.get("TIDEMARK_KAFKA_MOCK")
    if not path:
        path = os.path.join(os.path.dirname(harness.tidemark_bin()), "tests", "kafka", "tm-kafka-mock")
    if not os.access(path, os.X_OK):
        pytest.fail("tm-kafka-mock not found at %s (ninja -C build)" % path)
    return path


class KafkaMock:
    """A mock cluster subprocess; commands go to its stdin ("down 2", "up 2")."""

    def __init__(self, brokers=1):
        self.proc = subprocess.Popen([mock_bin(), str(brokers)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.bootstrap = self.proc.stdout.readline().strip()
        assert self.bootstrap, "tm-kafka-mock printed no bootstrap servers"

    def command(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer == "ok", "tm-kafka-mock: %s -> %s" % (line, answer)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def kafka():
    m = KafkaMock(1)
    try:
        yield m
    finally:
        m.close()


def kafka_config(env, bootstrap, tables=None, target_extra=""):
    lines = ["pipeline: %s" % env.pipeline,
             "source:",
             "  conninfo: %s" % harness.yaml_quote(env.src)]
    if tables is not None:
        lines.append("  tables: [%s]" % ", ".join(harness.yaml_quote(t) for t in tables))
    lines += ["target:",
              "  type: kafka",
              "  brokers: %s" % harness.yaml_quote(bootstrap),
              "  state_dir: %s" % harness.yaml_quote(os.path.join(env.workdir, "kafka-state")),
              ]
    lines += ["  " + line for line in target_extra.strip().splitlines()]
    lines += ["apply: {status_interval_ms: 200}",
              "log: {level: info}"]
    return "\n".join(lines) + "\n"


def lsn_int(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def slot_confirmed(env):
    rows = env.src_sql("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
                       (env.slot,))
    return lsn_int(rows[0][0]) if rows and rows[0][0] else 0


def wait_delivered(env, daemon, timeout=90.0):
    """Wait until the slot confirmed the source's current WAL position: everything is delivered."""
    target = lsn_int(harness.current_wal_lsn(env.src))

    def done():
        daemon.check_alive()
        return slot_confirmed(env) >= target
    harness.wait_for(done, timeout, "the slot to confirm %X/%X" % (target >> 32, target & 0xffffffff), 0.1)


def wait_copied(env, daemon, tables, timeout=60.0):
    """Wait until the sink's state file records the initial copy of every table as delivered."""
    path = os.path.join(env.workdir, "kafka-state", "state.json")

    def done():
        daemon.check_alive()
        try:
            with open(path) as f:
                state = json.load(f)
        except (OSError, ValueError):
            return False
        synced = {t["table"] for t in state["tables"] if t["state"] == "synced"}
        return set(tables) <= synced
    harness.wait_for(done, timeout, "the initial copy of %s" % ", ".join(tables), 0.1)


def read_topic(bootstrap, topic, timeout=60.0):
    """Every message of topic, per partition in offset order (up to the high watermarks)."""
    c = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "tidemark-tests",
                                  "enable.auto.commit": False, "log_level": 3})
    try:
        md = c.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None:
            return []
        parts = sorted(md.partitions)
        marks = {p: c.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p), timeout=10)
                 for p in parts}
        # The mock broker keeps about 5 MB per partition and drops the oldest beyond that.
        assert all(lo == 0 for lo, _ in marks.values()), "the mock broker dropped messages of %s" % topic
        highs = {p: hi for p, (_, hi) in marks.items()}
        c.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in parts])
        out, pending = [], {p for p in parts if highs[p] > 0}
        deadline = time.monotonic() + timeout
        while pending:
            assert time.monotonic() < deadline, "timed out reading %s (partitions left: %s)" % (topic, pending)
            for m in c.consume(num_messages=1000, timeout=0.5):
                if m.error():
                    raise AssertionError("consumer: %s" % m.error())
                out.append(Msg(m.partition(), m.offset(),
                               json.loads(m.key()) if m.key() is not None else None,
                               json.loads(m.value()) if m.value() is not None else None,
                               {k: v.decode() for k, v in (m.headers() or [])}))
                if m.offset() + 1 >= highs[m.partition()]:
                    pending.discard(m.partition())
        out.sort(key=lambda m: (m.partition, m.offset))
        return out
    finally:
        c.close()


def by_key(msgs):
    """Messages grouped by key (as JSON text), each group in partition order."""
    groups = collections.defaultdict(list)
    for m in msgs:
        groups[json.dumps(m.key, sort_keys=True)].append(m)
    return groups


# --------------------------------------------------------------------------- envelope and types

TYPES_DDL = """
    CREATE TYPE mood AS ENUM ('sad', 'happy');
    CREATE TABLE types (id int PRIMARY KEY, i2 smallint, i8 bigint, b bool, f4 real, f8 double precision,
        num numeric(20,5), t text, vc varchar(10), ch char(3), by bytea, d date, ts timestamp,
        tstz timestamptz, tm time, tmtz timetz, iv interval, u uuid, j json, jb jsonb, ai int[],
        at text[], e mood, nan float8, n int);
"""
TYPES_VALUES = ("-7, 9007199254740993, true, 1.5, 0.1, 12345.6789, 'h\u00e9llo \"q\"\ttab', 'vc', 'ab',"
                " '\\x00ff', '2024-03-01', '2024-01-15 10:20:30.123456', '2024-01-15 10:20:30.5+05:30',"
                " '10:20:30.25', '10:20:30+02', '1 day 02:00:00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',"
                " '{\"a\": 1}', '{\"b\": [1, 2]}', '{1,NULL,3}', '{\"x,y\",z}', 'happy', 'NaN', NULL")
TYPES_EXPECTED = {
    "i2": -7, "i8": 9007199254740993, "b": True, "f4": 1.5, "f8": 0.1, "num": "SZYC0g==",
    "t": "h\u00e9llo \"q\"\ttab", "vc": "vc", "ch": "ab ", "by": "AP8=", "d": 19783,
    "ts": 1705314030123456, "tstz": "2024-01-15T04:50:30.500000Z", "tm": 37230250000, "tmtz": "08:20:30Z",
    "iv": 93600000000, "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "j": "{\"a\": 1}",
    "jb": "{\"b\": [1, 2]}", "ai": [1, None, 3], "at": ["x,y", "z"], "e": "happy", "nan": "NaN", "n": None,
}


def test_kafka_every_op_and_type(env, kafka):
    env.src_sql(TYPES_DDL + """
        CREATE TABLE items (id int PRIMARY KEY, name text, qty int, body text);
        ALTER TABLE items ALTER body SET STORAGE EXTERNAL;
        CREATE TABLE full_ident (a int, b text);
        ALTER TABLE full_ident REPLICA IDENTITY FULL;
        CREATE TABLE full_pk (id int PRIMARY KEY, v text);
        ALTER TABLE full_pk REPLICA IDENTITY FULL;
    """)
    env.src_sql("INSERT INTO types VALUES (1, %s)" % TYPES_VALUES)
    env.src_sql("INSERT INTO items VALUES (1, 'one', 1, NULL), (2, 'two', 2, NULL)")
    env.src_sql("INSERT INTO full_ident VALUES (1, 'x')")
    env.src_sql("INSERT INTO full_pk VALUES (1, 'x'), (2, 'y')")
    # Debezium leaves truncates out by default; this test wants to see them.
    d = env.daemon(config_text=kafka_config(env, kafka.bootstrap, target_extra="skipped.operations: none"))
    # Copies run beside the stream: wait for them, or the changes below may land in them.
    wait_copied(env, d, ["types", "items", "full_ident", "full_pk"])

    env.src_sql("INSERT INTO types VALUES (2, %s)" % TYPES_VALUES)
    with env.src_connect() as c:
        with c.transaction():
            xid = c.execute("SELECT txid_current() % 4294967296").fetchone()[0]
            c.execute("INSERT INTO items VALUES (3, 'three', 3, repeat('z', 100000))")
            c.execute("UPDATE items SET qty = 20 WHERE id = 2")
            c.execute("DELETE FROM items WHERE id = 1")
        c.execute("UPDATE items SET qty = 30 WHERE id = 3")          # body unchanged TOAST
        c.execute("UPDATE items SET id = 4 WHERE id = 2")            # key change
        c.execute("UPDATE full_ident SET b = 'y'")
        c.execute("UPDATE full_pk SET v = 'z' WHERE id = 1")         # FULL: the key is the primary key
        c.execute("UPDATE full_pk SET id = 3 WHERE id = 2")
        c.execute("TRUNCATE items")
    wait_delivered(env, d)

    prefix = env.pipeline + ".public."
    # ---- types: the initial copy (COPY text) and the stream (pgoutput) render alike
    types = {m.key["id"]: m for m in read_topic(kafka.bootstrap, prefix + "types")}
    assert sorted(types) == [1, 2]
    assert types[1].value["op"] == "r" and types[2].value["op"] == "c"
    for i in (1, 2):
        after = dict(types[i].value["after"])
        assert after.pop("id") == i
        assert after == TYPES_EXPECTED, "row %d (%s path)" % (i, "copy" if i == 1 else "stream")

    # ---- items: every op, in order per key
    msgs = read_topic(kafka.bootstrap, prefix + "items")
    keys = by_key(msgs)
    ops = {k: [(m.value or {}).get("op", "tombstone") for m in g] for k, g in keys.items()}
    assert ops['{"id": 1}'] == ["r", "d", "tombstone"]
    assert ops['{"id": 2}'] == ["r", "u", "d", "tombstone"]       # the key change deletes id 2
    assert ops['{"id": 3}'] == ["c", "u"]
    assert ops['{"id": 4}'] == ["c"]
    assert ops["null"] == ["t"]                                     # truncate: no key

    def one(key, op):
        return next(m for m in keys[key] if m.value and m.value["op"] == op)

    snap = one('{"id": 1}', "r")
    assert snap.value["before"] is None
    assert snap.value["after"] == {"id": 1, "name": "one", "qty": 1, "body": None}
    assert snap.value["source"]["snapshot"] in ("first", "first_in_data_collection")
    assert snap.value["source"]["txId"] is None
    assert snap.headers["txid"] == "0"

    ins = one('{"id": 3}', "c")
    src = ins.value["source"]
    assert {k: src[k] for k in ("connector", "name", "snapshot", "db", "schema", "table", "txId")} == {
        "connector": "tidemark", "name": env.pipeline, "snapshot": "false", "db": env.src_db,
        "schema": "public", "table": "items", "txId": xid}
    assert list(src) == ["version", "connector", "name", "ts_ms", "snapshot", "db", "sequence", "ts_us",
                         "ts_ns", "schema", "table", "txId", "lsn", "xmin"]
    assert list(ins.value) == ["before", "after", "source", "op", "ts_ms", "ts_us", "ts_ns", "transaction"]
    assert ins.headers["txid"] == str(xid)
    # source.lsn is the change's own position, before its transaction's commit (the lsn header)
    assert 0 < src["lsn"] < lsn_int(ins.headers["lsn"])
    assert json.loads(src["sequence"])[1] == str(src["lsn"])
    assert src["ts_ms"] == src["ts_us"] // 1000 and src["ts_ns"] == src["ts_us"] * 1000
    assert ins.value["ts_ms"] == ins.value["ts_us"] // 1000 == ins.value["ts_ns"] // 1000000
    assert src["version"] and ins.value["after"]["body"] == "z" * 100000
    # the transaction's events share its commit LSN and txid, each has its own source.lsn
    same_txn = [m for m in msgs if m.headers.get("txid") == str(xid)]
    assert len(same_txn) == 4 and len({m.headers["lsn"] for m in same_txn}) == 1
    assert len({m.value["source"]["lsn"] for m in same_txn if m.value}) == 3
    # source.sequence[0]: the previous transaction's end
    assert json.loads(one('{"id": 3}', "u").value["source"]["sequence"])[0] is not None

    upd = one('{"id": 2}', "u")
    assert upd.value["before"] is None                  # replica identity default: no old row
    assert upd.value["after"]["qty"] == 20
    toast = one('{"id": 3}', "u")
    assert toast.value["after"] == {"id": 3, "name": "three", "qty": 30, "body": "__debezium_unavailable_value"}

    dele = one('{"id": 1}', "d")
    assert dele.value["before"] == {"id": 1, "name": None, "qty": None, "body": None}
    assert dele.value["after"] is None
    moved, moved_tomb = keys['{"id": 2}'][-2:]
    assert moved.value["op"] == "d" and moved.value["before"]["id"] == 2
    created = one('{"id": 4}', "c")
    assert created.value["after"] == {"id": 4, "name": "two", "qty": 20, "body": None}
    # Debezium's key-change headers: the delete names the new key, the create the old one
    assert json.loads(moved.headers["__debezium.newkey"]) == {"id": 4}
    assert json.loads(moved_tomb.headers["__debezium.newkey"]) == {"id": 4}
    assert json.loads(created.headers["__debezium.oldkey"]) == {"id": 2}
    assert "__debezium.oldkey" not in moved.headers and "__debezium.newkey" not in created.headers
    # delete + tombstone of the old key come before the create of the new one
    assert lsn_int(moved.headers["lsn"]) == lsn_int(created.headers["lsn"])
    trunc = keys["null"][0]
    assert trunc.value["before"] is None and trunc.value["after"] is None

    # ---- replica identity FULL without a primary key: no key, an update is one "u"
    # (a null key lands on any partition: order by op)
    full = sorted(read_topic(kafka.bootstrap, prefix + "full_ident"), key=lambda m: m.value["op"] != "r")
    assert [m.key for m in full] == [None, None]
    assert [m.value["op"] for m in full] == ["r", "u"]
    assert full[1].value["before"] == {"a": 1, "b": "x"} and full[1].value["after"] == {"a": 1, "b": "y"}
    # ---- FULL with a primary key: the key is the primary key, the before image the old row
    fk = by_key(read_topic(kafka.bootstrap, prefix + "full_pk"))
    u = fk['{"id": 1}'][-1].value
    assert u["op"] == "u" and u["before"] == {"id": 1, "v": "x"} and u["after"] == {"id": 1, "v": "z"}
    assert [(m.value or {}).get("op", "tombstone") for m in fk['{"id": 2}']] == ["r", "d", "tombstone"]
    assert fk['{"id": 2}'][1].value["before"] == {"id": 2, "v": "y"}
    assert [m.value["op"] for m in fk['{"id": 3}']] == ["c"]
    d.stop()


def test_kafka_tombstones_off_and_restart_resumes(env, kafka):
    env.src_sql("CREATE TABLE t (id int PRIMARY KEY, v int)")
    env.src_sql("INSERT INTO t SELECT g, 0 FROM generate_series(1, 100) g")
    config = kafka_config(env, kafka.bootstrap, target_extra="tombstones: false\ntopic: \"cdc_{table}\"")
    d = env.daemon(config_text=config)
    wait_copied(env, d, ["t"])
    d.stop()
    # Stopped: changes wait in the slot; a restart resumes from it without a new copy.
    env.src_sql("DELETE FROM t WHERE id <= 10")
    env.src_sql("UPDATE t SET v = 1 WHERE id > 90")
    d.start()
    wait_delivered(env, d)
    msgs = read_topic(kafka.bootstrap, "cdc_t")
    ops = collections.Counter((m.value or {}).get("op", "tombstone") for m in msgs)
    assert ops == {"r": 100, "d": 10, "u": 10}, ops
    assert "resuming pipeline" in d.log()
    d.stop()


# --------------------------------------------------------------------------- broker outage

def test_kafka_broker_outage_loses_nothing(env):
    mock = KafkaMock(3)
    try:
        env.src_sql("CREATE TABLE ev (id int PRIMARY KEY, v text)")
        # One partition per broker, so broker 2's outage blocks some keys for sure.
        topic = env.pipeline + ".public.ev"
        mock.command("topic %s 3" % topic)
        for part in range(3):
            mock.command("leader %s %d %d" % (topic, part, part + 1))
        d = env.daemon(config_text=kafka_config(env, mock.bootstrap,
                                                target_extra="properties: {reconnect.backoff.max.ms: 500}"))
        env.src_sql("INSERT INTO ev SELECT g, 'a' FROM generate_series(1, 500) g")
        wait_delivered(env, d)

        mock.command("down 2")
        before = slot_confirmed(env)
        for i in range(10):
            env.src_sql("INSERT INTO ev SELECT g, 'b' FROM generate_series(%s::int, %s::int) g",
                        (1000 + i * 100, 1000 + i * 100 + 99))
        target = lsn_int(harness.current_wal_lsn(env.src))
        # Partitions led by broker 2 cannot be written: the slot must not confirm past them.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            d.check_alive()
            assert slot_confirmed(env) < target, "confirmed past undelivered messages"
            time.sleep(0.2)
        mock.command("up 2")
        wait_delivered(env, d, timeout=120)
        assert slot_confirmed(env) > before

        ids = sorted(m.key["id"] for m in read_topic(mock.bootstrap, topic))
        expected = sorted(r[0] for r in env.src_sql("SELECT id FROM ev"))
        assert ids == expected  # idempotent producer: no duplicates from the retries either
        d.stop()
    finally:
        mock.close()


# --------------------------------------------------------------------------- crashes

PRELOAD_KEYS = 1000
KEYS = 2000
ROUNDS = 50          # 1000 inserts + 50 x 2000 updates + 100 deletes: 101,100 changes
KILLS = 5


class Workload(threading.Thread):
    """Each transaction touches a key at most once, so per-key events are ordered by commit LSN."""

    def __init__(self, conninfo):
        super().__init__(daemon=True)
        self.conninfo, self.error, self.changes = conninfo, None, 0

    def run(self):
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                for lo in range(PRELOAD_KEYS + 1, KEYS + 1, 250):
                    conn.execute("INSERT INTO kv SELECT g, 0 FROM generate_series(%s::int, %s::int) g",
                                 (lo, lo + 249))
                    self.changes += 250
                for _ in range(ROUNDS):
                    time.sleep(0.15)  # pacing: the kills land while changes flow
                    for part in range(4):
                        conn.execute("UPDATE kv SET seq = seq + 1 WHERE id %% 4 = %s", (part,))
                        self.changes += KEYS // 4
                conn.execute("DELETE FROM kv WHERE id % 20 = 0")
                self.changes += KEYS // 20
        except Exception as e:  # reported by the test
            self.error = e


def test_kafka_kill9_at_least_once_in_order(env, kafka):
    seed = int(os.environ.get("TIDEMARK_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print("seed", seed)
    env.src_sql("CREATE TABLE kv (id int PRIMARY KEY, seq int NOT NULL)")
    env.src_sql("INSERT INTO kv SELECT g, 0 FROM generate_series(1, %s) g", (PRELOAD_KEYS,))
    # Enough partitions that the mock's ~5 MB per partition holds every event and replay.
    kafka.command("topic %s.public.kv 32" % env.pipeline)
    d = env.daemon(config_text=kafka_config(env, kafka.bootstrap))
    wait_copied(env, d, ["kv"])  # kills during the copy would redo it: history starts there

    w = Workload(env.src)
    w.start()
    during = 0
    for _ in range(KILLS):
        d.wait_running(rng.uniform(0.3, 1.5))
        during += w.is_alive()
        d.kill9()
        d.start()
    w.join(180)
    assert not w.is_alive() and w.error is None, "workload: %s (seed %d)" % (w.error, seed)
    wait_delivered(env, d, timeout=120)
    d.stop()
    assert w.changes >= 100_000

    assert during >= 3, "only %d kills landed while the workload ran (seed %d)" % (during, seed)

    msgs = read_topic(kafka.bootstrap, env.pipeline + ".public.kv", timeout=120)
    print("%d messages for %d changes" % (len(msgs), w.changes + PRELOAD_KEYS))
    final = {r[0]: r[1] for r in env.src_sql("SELECT id, seq FROM kv")}
    problems = []
    seen = by_key(msgs)
    for key_id in range(1, KEYS + 1):
        group = seen.get(json.dumps({"id": key_id}), [])
        # A consumer drops replays: anything not newer (by commit LSN) than what it saw for the key.
        last, seqs, tail = -1, [], None
        for m in group:
            lsn = lsn_int(m.headers["lsn"])
            if m.value is None:
                tail = "tombstone"
                continue
            if lsn <= last:
                continue
            last = lsn
            op = m.value["op"]
            seqs.append(None if op == "d" else m.value["after"]["seq"])
            tail = op
        if key_id in final:
            want = list(range(final[key_id] + 1))
        else:
            want = list(range(ROUNDS + 1)) + [None]
        if seqs != want:
            problems.append("key %d: got %s, want %s" % (key_id, harness.shorten(str(seqs)), harness.shorten(str(want))))
        elif key_id not in final and tail != "tombstone":
            problems.append("key %d: no tombstone after its delete" % key_id)
    assert not problems, "seed %d, %d keys wrong:\n%s" % (seed, len(problems), "\n".join(problems[:20]))
    assert d.returncodes.count(-9) == KILLS


# --------------------------------------------------------------------------- too large

def test_kafka_message_too_large_stops_pipeline(env, kafka):
    env.src_sql("CREATE TABLE big (id int PRIMARY KEY, body text)")
    config = kafka_config(env, kafka.bootstrap, target_extra="properties:\n  message.max.bytes: 2000")
    d = env.daemon(config_text=config)
    wait_delivered(env, d)
    env.src_sql("INSERT INTO big VALUES (1, 'small')")
    env.src_sql("INSERT INTO big VALUES (2, repeat('x', 5000))")
    rc = d.wait_exit(60)
    assert rc != 0
    log = d.log()
    assert "too large" in log.lower(), log[-3000:]
    assert "public.big" in log
    # Nothing skipped: the row is still in the slot, and arrives once the limit allows it.
    d.write_config(kafka_config(env, kafka.bootstrap, target_extra="properties:\n  message.max.bytes: 100000"))
    env.wait_slot_inactive()
    d.start()
    wait_delivered(env, d)
    ids = sorted(m.key["id"] for m in read_topic(kafka.bootstrap, env.pipeline + ".public.big") if m.value)
    assert ids[-1] == 2 and set(ids) == {1, 2}
    d.stop()


# --------------------------------------------------------------------------- failed delivery

# Kafka protocol error codes for the mock's "error" command.
KAFKA_NOT_ENOUGH_REPLICAS = 19   # retriable: librdkafka retries it
KAFKA_INVALID_RECORD = 87        # not retriable: the delivery report is an error


def fail_one_delivery(env, kafka, d):
    """Streams rows, then one transaction whose Produce the broker rejects, then more; waits
    for the daemon to stop. Returns the failed transaction's commit LSN (from the error)."""
    env.src_sql("CREATE TABLE ev (id int PRIMARY KEY, v text)")
    d.start()
    wait_copied(env, d, ["ev"])
    env.src_sql("INSERT INTO ev SELECT g, 'a' FROM generate_series(1, 50) g")
    wait_delivered(env, d)
    # Retriable broker errors are retried by the producer: no stop, nothing lost.
    kafka.command("error -1 0 3 %d" % KAFKA_NOT_ENOUGH_REPLICAS)
    env.src_sql("INSERT INTO ev SELECT g, 'retried' FROM generate_series(51, 60) g")
    wait_delivered(env, d)

    kafka.command("error -1 0 1 %d" % KAFKA_INVALID_RECORD)
    before = lsn_int(harness.current_wal_lsn(env.src))
    env.src_sql("INSERT INTO ev VALUES (1001, 'rejected')")
    for i in range(20):  # later transactions, delivered or not: none may be confirmed either
        env.src_sql("INSERT INTO ev VALUES (%s, 'later')", (2000 + i,))
    assert d.wait_exit(60) != 0
    # The error names the table and the failed transaction.
    log = d.log()
    m = re.search(r"delivery of a change of public\.ev \(source transaction \d+, commit LSN"
                  r" ([0-9A-F]+/[0-9A-F]+)\).*failed: .*validate record", log)
    assert m, log[-3000:]
    failed_lsn = lsn_int(m.group(1))
    assert failed_lsn > before
    # The slot resends every transaction committed at or after its confirmed position.
    env.wait_slot_inactive()
    confirmed = slot_confirmed(env)
    assert confirmed <= failed_lsn, "the slot confirmed %X/%X, past the failed transaction at %s" % (
        confirmed >> 32, confirmed & 0xffffffff, m.group(1))
    with open(os.path.join(env.workdir, "kafka-state", "state.json")) as f:
        assert lsn_int(json.load(f)["lost_lsn"]) == failed_lsn
    return failed_lsn


def test_kafka_failed_delivery_resent_after_restart(env, kafka):
    d = env.daemon(config_text=kafka_config(env, kafka.bootstrap), start=False)
    fail_one_delivery(env, kafka, d)
    # The injected error is used up (the cause is fixed): a restart resends from the slot.
    d.start()
    wait_delivered(env, d)
    got = {m.key["id"]: m.value["after"]["v"]
           for m in read_topic(kafka.bootstrap, env.pipeline + ".public.ev") if m.value}
    want = dict(env.src_sql("SELECT id, v FROM ev"))
    assert got == want  # every change, the rejected one included: no hole
    with open(os.path.join(env.workdir, "kafka-state", "state.json")) as f:
        assert "lost_lsn" not in json.load(f)
    d.stop()


def test_kafka_restart_refuses_slot_past_failed_delivery(env, kafka):
    d = env.daemon(config_text=kafka_config(env, kafka.bootstrap), start=False)
    failed_lsn = fail_one_delivery(env, kafka, d)
    # Something (an operator, an older tidemark) moves the slot past the lost transaction.
    env.src_sql("SELECT pg_replication_slot_advance(%s, pg_current_wal_lsn())", (env.slot,))
    assert slot_confirmed(env) > failed_lsn
    d.start()
    assert d.wait_exit(60) != 0  # a restart that would leave a hole refuses to run
    assert "commit LSN %X/%X failed, but slot %s resumes at" % (
        failed_lsn >> 32, failed_lsn & 0xffffffff, env.slot) in d.log(), d.log_tail()
