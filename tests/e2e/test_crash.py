"""Crash test: kill -9 the daemon at random moments while the source takes a
steady stream of transactions; after restarts the target must equal the source
exactly and the watermark must never move backwards.

The seed is printed (shown on failure); reproduce with TIDEMARK_CRASH_SEED=<seed>.
"""

import os
import random
import threading
import time

import psycopg

import harness

TOTAL_ROWS = 100_000      # rows inserted by the writer (100k more exist before the first start)
ROWS_PER_SECOND = 4_000   # pacing, so the kills land while writes are flowing
KILLS = 5


class Writer(threading.Thread):
    """Commits transactions of mixed sizes with inserts, updates and deletes."""

    def __init__(self, conninfo, seed):
        super().__init__(daemon=True)
        self.conninfo, self.rng = conninfo, random.Random(seed)
        self.stop_event = threading.Event()
        self.inserted, self.transactions, self.error = 0, 0, None
        self.next_id = 1_000_000

    def run(self):
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                started = time.monotonic()
                while self.inserted < TOTAL_ROWS and not self.stop_event.is_set():
                    with conn.transaction():
                        self.one_transaction(conn)
                    self.transactions += 1
                    ahead = self.inserted / ROWS_PER_SECOND - (time.monotonic() - started)
                    if ahead > 0:
                        self.stop_event.wait(ahead)
        except Exception as e:  # reported by the test
            self.error = e

    def one_transaction(self, conn):
        rng = self.rng
        size = rng.choices([1, 10, 100, 1000], weights=[40, 30, 20, 10])[0]
        first = self.next_id
        self.next_id += size
        conn.execute("INSERT INTO crash_pk SELECT g, g %% 97, 0, md5(g::text) FROM generate_series(%s, %s) g",
                     (first, first + size - 1))
        nopk = size // 10 + 1
        conn.execute("INSERT INTO crash_nopk SELECT g %% 1000, 0, 'n' FROM generate_series(%s, %s) g",
                     (first, first + nopk - 1))
        self.inserted += size + nopk
        if rng.random() < 0.3:
            lo = rng.randrange(1, self.next_id)
            conn.execute("UPDATE crash_pk SET v = v + 1, payload = md5(random()::text) WHERE id BETWEEN %s AND %s",
                         (lo, lo + rng.choice([0, 5, 50])))
        if rng.random() < 0.15:
            lo = rng.randrange(1, self.next_id)
            conn.execute("DELETE FROM crash_pk WHERE id BETWEEN %s AND %s", (lo, lo + rng.choice([0, 3, 30])))
        if rng.random() < 0.2:
            conn.execute("UPDATE crash_nopk SET v = v + 1 WHERE k = %s", (rng.randrange(1000),))
        if rng.random() < 0.1:
            k = rng.randrange(1000)
            conn.execute("DELETE FROM crash_nopk WHERE ctid IN (SELECT ctid FROM crash_nopk WHERE k = %s LIMIT 2)",
                         (k,))


def test_kill9_during_writes(env):
    seed = int(os.environ.get("TIDEMARK_CRASH_SEED") or time.time_ns() % 2 ** 32)
    print("TIDEMARK_CRASH_SEED=%d" % seed)
    rng = random.Random(seed)
    env.both_sql("""
        CREATE TABLE crash_pk (id bigint PRIMARY KEY, grp int, v int, payload text);
        CREATE TABLE crash_nopk (k int, v int, note text);
        ALTER TABLE crash_nopk REPLICA IDENTITY FULL;
        CREATE INDEX ON crash_nopk (k);
    """)
    # Rows present before the first start, so early kills can hit the initial copy.
    env.src_sql("INSERT INTO crash_pk SELECT g, g % 97, 0, md5(g::text) FROM generate_series(1, 100000) g")
    env.src_sql("INSERT INTO crash_nopk SELECT g % 1000, 0, 'pre' FROM generate_series(1, 5000) g")

    sampler = harness.WatermarkSampler(env.dst, env.pipeline)
    writer = Writer(env.src, seed + 1)
    d = env.daemon()
    sampler.start()
    writer.start()
    try:
        for i in range(KILLS):
            # The first kill often lands in the initial copy, the others while streaming.
            uptime = rng.uniform(0.05, 1.0) if i == 0 else rng.uniform(0.3, 5.0)
            d.wait_running(uptime)  # returns early (and fails) only if the daemon dies by itself
            print("kill %d after %.2fs uptime: %d rows written, watermark %s" % (
                i + 1, uptime, writer.inserted, env.watermark()))
            d.kill9()
            d.start()  # at once, like systemd would: the old walsender may still hold the slot
        writer.join(120)
        assert not writer.is_alive(), "writer did not finish"
        assert writer.error is None, "writer failed: %r" % writer.error
        print("writer done: %d rows in %d transactions" % (writer.inserted, writer.transactions))
        env.wait_caught_up(d, timeout=120)
        env.assert_tables_equal("crash_pk", "crash_nopk")
        d.stop()
    finally:
        writer.stop_event.set()
        sampler.finish()
    assert sampler.samples > 0, "the watermark was never observed"


def copy_running(env):
    """True while a COPY ... TO STDOUT runs against the test's source database."""
    rows = env.src_sql("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state = 'active' "
                       "AND query ILIKE 'copy%%'", (env.src_db,))
    return rows[0][0] > 0


def test_kill9_during_initial_copy(env):
    env.both_sql("""
        CREATE TABLE big1 (id int PRIMARY KEY, v int, pad text);
        CREATE TABLE big2 (id int PRIMARY KEY, v int, pad text);
        CREATE TABLE small (id int PRIMARY KEY, v int);
    """)
    for table in ("big1", "big2"):
        env.src_sql("INSERT INTO %s SELECT g, 0, md5(g::text) || md5((-g)::text) "
                    "FROM generate_series(1, 600000) g" % table)
    env.src_sql("INSERT INTO small SELECT g, 0 FROM generate_series(1, 100) g")
    d = env.daemon()
    harness.wait_for(lambda: d.check_alive() or copy_running(env), 60, "the initial copy to start", interval=0.01)
    # Changes made while tables are being copied must still arrive exactly once.
    env.src_sql("UPDATE big1 SET v = v + 1 WHERE id % 1000 = 0; UPDATE small SET v = 1; "
                "INSERT INTO big2 VALUES (600001, 1, 'during copy'); DELETE FROM big2 WHERE id <= 10")
    print("kill -9 during the initial copy; watermark %s" % env.watermark())
    d.kill9()
    env.src_sql("UPDATE big2 SET v = v + 1 WHERE id % 777 = 0; INSERT INTO small VALUES (101, 2)")
    d.start()
    harness.wait_for(lambda: d.check_alive() or copy_running(env) or env.watermark(), 60,
                     "the copy to resume", interval=0.01)
    env.src_sql("UPDATE big1 SET v = v + 1 WHERE id % 999 = 0; DELETE FROM small WHERE id = 1")
    env.wait_caught_up(d, timeout=120)
    env.assert_tables_equal("big1", "big2", "small")
    d.stop()
