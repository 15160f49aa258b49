"""End-to-end tests of the parallel, resumable initial load (issue 3).

(a) a pgbench-style writer runs on the source during the whole copy of a table
    split by key range, a table without a key (CTID ranges), a partitioned
    table (one part per leaf) and a small table; the target ends equal.
(b) kill -9 at random moments of the copy (seeded: TIDEMARK_LOAD_SEED=<seed>
    reproduces), restart each time, writer running: exact result, and the logs
    and tidemark.sync_state prove finished tables/parts were not copied again.
(c) trickle migration: a table added to source.tables is copied while the
    others keep streaming; a table removed from it is no longer applied.
(d) `schema: copy` creates the target tables (indexes, FKs, CHECK, generated
    and identity columns, serial, enum) from the source.
(e) `tidemark sync-sequences` sets the target's sequences from the source.
(f) one copy worker loads many small tables in one snapshot and on reused
    target sessions, with a writer running; nothing is left open afterwards.
Also: which tables are split (the target indexes the key; one copy job).

Every wait is a deadline on a condition; the copies are forced into many parts
with copy.part_size_mb = 1.
"""

import collections
import os
import random
import re
import subprocess
import threading
import time

import psycopg
import pytest

import harness

COPY = "copy: {jobs: 2, part_size_mb: 1}\n"

# --------------------------------------------------------------------------- workload

BANK_TABLES = ["public.branches", "public.accounts", "public.ledger", "public.orders", "public.tellers"]
REGIONS = 4


def create_bank(env, accounts, ledger, orders, ledger_note=8):
    """The bank schema on both sides and its rows on the source.

    accounts: bigint primary key (key-range parts); ledger: no key, replica
    identity FULL (CTID parts); orders: list-partitioned into four leaves
    (leaf parts); branches, tellers: small (one whole part)."""
    ddl = """
        CREATE TABLE branches (id int PRIMARY KEY, balance bigint NOT NULL);
        CREATE TABLE tellers (id int PRIMARY KEY, branch int NOT NULL, name text);
        CREATE TABLE accounts (id bigint PRIMARY KEY, branch int NOT NULL, balance int NOT NULL, note text);
        CREATE TABLE ledger (acct bigint, delta int, note text);
        ALTER TABLE ledger REPLICA IDENTITY FULL;
        CREATE INDEX ON ledger (acct);
        CREATE TABLE orders (id bigint NOT NULL, region int NOT NULL, amount int, PRIMARY KEY (region, id))
            PARTITION BY LIST (region);
        CREATE TABLE orders_r0 PARTITION OF orders FOR VALUES IN (0);
        CREATE TABLE orders_r1 PARTITION OF orders FOR VALUES IN (1);
        CREATE TABLE orders_r2 PARTITION OF orders FOR VALUES IN (2);
        CREATE TABLE orders_rest PARTITION OF orders DEFAULT;
        CREATE INDEX ON orders (id);
    """
    env.both_sql(ddl)
    # No index on the target's accounts.id: a key the target indexes is copied in one part
    # (test_indexed_key_copied_in_one_part); these tests are about key-range parts.
    env.dst_sql("ALTER TABLE accounts DROP CONSTRAINT accounts_pkey")
    env.src_sql("INSERT INTO branches SELECT g, 0 FROM generate_series(1, 10) g")
    env.src_sql("INSERT INTO tellers SELECT g, g % 10 + 1, 'teller ' || g FROM generate_series(1, 100) g")
    env.src_sql("INSERT INTO accounts SELECT g, g %% 10 + 1, 0, 'a' || g FROM generate_series(1, %d) g" % accounts)
    env.src_sql("INSERT INTO ledger SELECT g %% %d + 1, g %% 100, left(repeat(md5(g::text), 4), %d)"
                " FROM generate_series(1, %d) g" % (accounts, ledger_note, ledger))
    env.src_sql("INSERT INTO orders SELECT g, g %% %d, g %% 1000 FROM generate_series(1, %d) g" % (REGIONS, orders))
    env.src_sql("VACUUM ANALYZE")  # so relation sizes and reltuples are known to the planner of parts


class BankWriter(threading.Thread):
    """pgbench-style short transactions over every bank table: balance updates,
    new and closed accounts, key changes that move a row to another key range,
    ledger inserts/updates/deletes (no key), orders inserted, updated, moved
    between partitions and deleted.  Paced to `rate` transactions per second."""

    def __init__(self, conninfo, seed, accounts, orders, rate=200):
        super().__init__(daemon=True)
        self.conninfo, self.rng, self.rate = conninfo, random.Random(seed), rate
        self.accounts, self.orders = accounts, orders
        self.next_account, self.next_order = accounts + 1, orders + 1
        self.stop_event = threading.Event()
        self.txns, self.error = 0, None
        self.kinds = collections.Counter()

    def run(self):
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                started = time.monotonic()
                while not self.stop_event.is_set():
                    with conn.transaction():
                        self.one(conn)
                    self.txns += 1
                    ahead = self.txns / self.rate - (time.monotonic() - started)
                    if ahead > 0:
                        self.stop_event.wait(ahead)
        except Exception as e:  # reported by the test
            self.error = e

    def finish(self, timeout=30):
        self.stop_event.set()
        self.join(timeout)
        assert not self.is_alive(), "writer did not stop"
        assert self.error is None, "writer failed: %r" % self.error
        print("writer: %d transactions %s" % (self.txns, dict(self.kinds)))

    def one(self, conn):
        rng = self.rng
        kind = rng.choices(["transfer", "open", "close", "renumber", "order", "move_order", "cancel_order",
                            "ledger_fix"], weights=[45, 10, 6, 5, 18, 5, 5, 6])[0]
        self.kinds[kind] += 1
        aid = rng.randrange(1, self.next_account)
        delta = rng.randrange(-500, 500)
        if kind == "transfer":
            conn.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (delta, aid))
            conn.execute("UPDATE branches SET balance = balance + %s WHERE id = %s", (delta, rng.randrange(1, 11)))
            conn.execute("INSERT INTO ledger VALUES (%s, %s, 'transfer')", (aid, delta))
        elif kind == "open":
            conn.execute("INSERT INTO accounts VALUES (%s, %s, %s, 'opened')",
                         (self.next_account, rng.randrange(1, 11), delta))
            self.next_account += 1
        elif kind == "close":
            conn.execute("DELETE FROM accounts WHERE id = %s", (aid,))
        elif kind == "renumber":
            # A key update: the row moves to another key range (part) of the copy.
            if rng.random() < 0.5:
                conn.execute("UPDATE accounts SET id = -id, note = 'negated' WHERE id = %s AND id > 0", (aid,))
            else:
                conn.execute("UPDATE accounts SET id = %s, note = 'renumbered' WHERE id = %s",
                             (self.next_account, aid))
                self.next_account += 1
        elif kind == "order":
            conn.execute("INSERT INTO orders VALUES (%s, %s, %s)",
                         (self.next_order, rng.randrange(REGIONS + 1), delta))
            self.next_order += 1
            oid = rng.randrange(1, self.next_order)
            conn.execute("UPDATE orders SET amount = amount + 1 WHERE id = %s", (oid,))
        elif kind == "move_order":
            # Moves the row to another partition (delete + insert on the leaves).
            oid = rng.randrange(1, self.next_order)
            conn.execute("UPDATE orders SET region = (region + 1) %% %s WHERE id = %s", (REGIONS + 1, oid))
        elif kind == "cancel_order":
            conn.execute("DELETE FROM orders WHERE id = %s", (rng.randrange(1, self.next_order),))
        elif kind == "ledger_fix":
            acct = rng.randrange(1, self.accounts + 1)
            conn.execute("UPDATE ledger SET delta = delta + 1, note = 'fixed' WHERE ctid = "
                         "(SELECT ctid FROM ledger WHERE acct = %s LIMIT 1)", (acct,))
            if rng.random() < 0.5:
                conn.execute("DELETE FROM ledger WHERE ctid = (SELECT ctid FROM ledger WHERE acct = %s LIMIT 1)",
                             (acct + 1,))


# --------------------------------------------------------------------------- sync_state and logs

Part = collections.namedtuple("Part", "table part state kind updated_at sync_lsn")


def sync_state(env):
    """{table: [Part...]} of the planned parts (rows with a part_kind) plus
    tables that only have their 'pending' placeholder (empty list)."""
    if env.dst_sql("SELECT to_regclass('tidemark.sync_state')")[0][0] is None:
        return {}  # the daemon has not created its state yet
    rows = env.dst_sql("SELECT schema_name || '.' || table_name, part, state, part_kind, updated_at, sync_lsn::text"
                       " FROM tidemark.sync_state WHERE pipeline = %s ORDER BY 1, 2", (env.pipeline,))
    out = {}
    for r in rows:
        parts = out.setdefault(r[0], [])
        if r[3] is not None:
            parts.append(Part(*r))
    return out


def fully_synced(parts):
    return bool(parts) and all(p.state in ("synced", "ready") for p in parts)


def copy_done(env):
    state = sync_state(env)
    return bool(state) and all(fully_synced(parts) for parts in state.values())


def part_kinds(state, table):
    return collections.Counter(p.kind for p in state[table])


PLAN_RE = re.compile(r"initial copy: (\d+) of (\d+) part\(s\) to copy\b.* table=(\S+)")
DONE_RE = re.compile(r"initial copy complete: (\d+) rows in target \((\d+) parts?\), (\d+) copied this run"
                     r".* table=(\S+)")
RESTART_RE = re.compile(r"initial copy was interrupted; copying the whole table again\b.* table=(\S+)")


def read_log(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def plan_lines(text):
    """{table: [(still to copy, total)]} from 'initial copy: K of N part(s) to copy' lines."""
    out = collections.defaultdict(list)
    for k, n, table in PLAN_RE.findall(text):
        out[table].append((int(k), int(n)))
    return out


def done_lines(text):
    """{table: [(rows in target, parts, copied this run)]}."""
    out = collections.defaultdict(list)
    for rows, parts, copied, table in DONE_RE.findall(text):
        out[table].append((int(rows), int(parts), int(copied)))
    return out


def target_sessions(env):
    """Client sessions on the test's target database other than this query's."""
    return env.dst_sql("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
                       " AND backend_type = 'client backend'", (env.dst_db,))[0][0]


def wait_copy_done(env, d, timeout=120):
    harness.wait_for(lambda: d.check_alive() or copy_done(env), timeout, "every table's initial copy", interval=0.1)


# --------------------------------------------------------------------------- (a)

def test_parallel_copy_with_concurrent_writer(env):
    accounts, orders = 250_000, 40_000
    create_bank(env, accounts=accounts, ledger=60_000, orders=orders)
    writer = BankWriter(env.src, seed=11, accounts=accounts, orders=orders)
    writer.start()
    try:
        harness.wait_for(lambda: writer.error or writer.txns >= 20, 30, "the writer to start")
        txns_at_start = writer.txns
        d = env.daemon(tables=BANK_TABLES, extra=COPY)
        wait_copy_done(env, d)
        txns_during_copy = writer.txns - txns_at_start
        assert writer.is_alive() and writer.error is None, "writer stopped during the copy: %r" % writer.error
        # A few more transactions after the copy: the stream applies them directly.
        target = writer.txns + 50
        harness.wait_for(lambda: writer.error or writer.txns >= target, 30, "writes after the copy")
    finally:
        writer.finish()
    env.wait_caught_up(d, timeout=120)
    env.assert_tables_equal(*BANK_TABLES)

    state = sync_state(env)
    print({t: dict(part_kinds(state, t)) for t in state})
    assert part_kinds(state, "public.accounts")["key"] >= 4, state["public.accounts"]
    assert part_kinds(state, "public.ledger")["ctid"] >= 2, state["public.ledger"]
    assert part_kinds(state, "public.orders") == {"leaf": 4}, state["public.orders"]
    assert part_kinds(state, "public.branches") == {"whole": 1}, state["public.branches"]
    assert txns_during_copy > 0, "the writer made no transaction during the copy"
    print("writer transactions during the copy: %d" % txns_during_copy)

    log = d.log()
    plans = plan_lines(log)
    done = done_lines(log)
    for table in BANK_TABLES:
        nparts = len(state[table])
        assert plans[table] == [(nparts, nparts)], "plan lines of %s: %s" % (table, plans[table])
        assert len(done[table]) == 1 and done[table][0][1] == nparts, "summary of %s: %s" % (table, done[table])
    assert "initial copy complete for all %d table(s)" % len(BANK_TABLES) in log
    d.stop()


def test_indexed_key_copied_in_one_part(env):
    """A table whose target has an index led by the split key is copied as one
    part (parallel key ranges would fill that index at several places at once,
    splitting its pages in the middle); the same source table with a target
    that does not index the key is still split into key ranges. Changes made
    during and after the copy converge row by row."""
    env.both_sql("""
        CREATE TABLE ix_pk (id bigint PRIMARY KEY, v int NOT NULL, note text);
        CREATE TABLE ix_lead (id int PRIMARY KEY, v int NOT NULL, note text);
        CREATE TABLE ix_bare (id bigint PRIMARY KEY, v int NOT NULL, note text);
    """)
    # ix_lead's target: no primary key, but a (non-unique) index led by id.
    env.dst_sql("ALTER TABLE ix_lead DROP CONSTRAINT ix_lead_pkey; CREATE INDEX ON ix_lead (id, v)")
    env.dst_sql("ALTER TABLE ix_bare DROP CONSTRAINT ix_bare_pkey; CREATE INDEX ON ix_bare (v)")
    for t in ("ix_pk", "ix_lead", "ix_bare"):
        env.src_sql("INSERT INTO %s SELECT g, g %% 7, repeat(md5(g::text), 2) FROM generate_series(1, 60000) g" % t)
    env.src_sql("VACUUM ANALYZE")
    tables = ["public.ix_pk", "public.ix_lead", "public.ix_bare"]
    d = env.daemon(tables=tables, extra=COPY)
    env.src_sql("UPDATE ix_pk SET v = v + 1 WHERE id % 100 = 0; DELETE FROM ix_lead WHERE id % 333 = 0;"
                "INSERT INTO ix_bare VALUES (70000, 1, 'new'); UPDATE ix_bare SET id = -id WHERE id = 5")
    wait_copy_done(env, d)
    env.src_sql("UPDATE ix_pk SET note = 'after' WHERE id < 50; UPDATE ix_lead SET v = -1 WHERE id > 59990")
    env.wait_caught_up(d, timeout=120)
    env.assert_tables_equal("ix_pk", "ix_lead", "ix_bare")

    state = sync_state(env)
    assert part_kinds(state, "public.ix_pk") == {"whole": 1}, state["public.ix_pk"]
    assert part_kinds(state, "public.ix_lead") == {"whole": 1}, state["public.ix_lead"]
    assert part_kinds(state, "public.ix_bare")["key"] >= 4, state["public.ix_bare"]
    log = d.log()
    for t, key in (("public.ix_pk", "id"), ("public.ix_lead", "id")):
        assert re.search(r"initial copy in one part: the target indexes the key %s\b.* table=%s$" % (key, re.escape(t)),
                         log, re.M), "no one-part line for %s" % t
    assert not any("in one part" in l and l.endswith("table=public.ix_bare") for l in log.splitlines())
    d.stop()


def test_one_job_splits_only_large_keyed_tables(env):
    """With copy.jobs 1 parts run one after the other: a keyed table of up to
    8 parts and a table without a key (whose CTID parts would be redone
    together anyway) are copied whole; a keyed table larger than that is
    still split by key (a crash redoes one part, not the table). Bare targets
    (no index on the key), changes during and after the copy; row by row."""
    env.both_sql("""
        CREATE TABLE oj_small (id bigint PRIMARY KEY, v int NOT NULL, note text);
        CREATE TABLE oj_big (id bigint PRIMARY KEY, v int NOT NULL, note text);
        CREATE TABLE oj_nokey (id bigint NOT NULL, v int NOT NULL, note text);
        ALTER TABLE oj_nokey REPLICA IDENTITY FULL;
    """)
    env.dst_sql("ALTER TABLE oj_small DROP CONSTRAINT oj_small_pkey; ALTER TABLE oj_big DROP CONSTRAINT oj_big_pkey")
    for t, n in (("oj_small", 30000), ("oj_big", 150000), ("oj_nokey", 30000)):
        env.src_sql("INSERT INTO %s SELECT g, g %% 7, repeat(md5(g::text), 2) FROM generate_series(1, %d) g" % (t, n))
    env.src_sql("VACUUM ANALYZE")
    tables = ["public.oj_small", "public.oj_big", "public.oj_nokey"]
    d = env.daemon(tables=tables, extra="copy: {jobs: 1, part_size_mb: 1}\n")
    env.src_sql("UPDATE oj_small SET v = v + 1 WHERE id % 100 = 0; DELETE FROM oj_big WHERE id % 333 = 0;"
                "UPDATE oj_nokey SET note = 'during' WHERE id < 20; INSERT INTO oj_big VALUES (200000, 1, 'new')")
    wait_copy_done(env, d)
    env.src_sql("UPDATE oj_big SET note = 'after' WHERE id < 50; DELETE FROM oj_nokey WHERE id > 29990")
    env.wait_caught_up(d, timeout=120)
    env.assert_tables_equal(*tables)
    state = sync_state(env)
    print({t: dict(part_kinds(state, t)) for t in tables})
    assert part_kinds(state, "public.oj_small") == {"whole": 1}, state["public.oj_small"]
    assert part_kinds(state, "public.oj_nokey") == {"whole": 1}, state["public.oj_nokey"]
    assert part_kinds(state, "public.oj_big")["key"] > 8, state["public.oj_big"]
    d.stop()


# --------------------------------------------------------------------------- (b)

# Each kill lands in the copy of one of KILL_TABLES (a random number of its
# parts done, plus a random delay): the key-split table, the CTID-split one,
# the partitioned one. Which of them is being copied when depends on the
# workers' scheduling (a worker may take its next table in the snapshot of
# its previous one, without waiting for a new slot), so each kill takes the
# first of them that this run is copying and has not finished; one that
# finished meanwhile is not killed in. Each kill also finds tables finished.
KILL_TABLES = ["public.accounts", "public.ledger", "public.orders"]
KEY_TABLE = "public.accounts"


def test_kill9_during_copy_resumes_unfinished_parts(env):
    seed = int(os.environ.get("TIDEMARK_LOAD_SEED") or time.time_ns() % 2 ** 32)
    print("TIDEMARK_LOAD_SEED=%d" % seed)
    rng = random.Random(seed)
    accounts, orders = 600_000, 400_000
    create_bank(env, accounts=accounts, ledger=150_000, orders=orders, ledger_note=96)
    writer = BankWriter(env.src, seed=seed + 1, accounts=accounts, orders=orders)
    writer.start()
    kills = []  # (sync_state after the kill, log file of the run that follows)
    remaining = list(KILL_TABLES)
    try:
        harness.wait_for(lambda: writer.error or writer.txns >= 20, 30, "the writer to start")
        d = env.daemon(tables=BANK_TABLES, extra=COPY)
        while remaining:
            i = len(kills)

            def copying():
                """(table, its part count) this run copies, ("", 0) when all are finished."""
                d.check_alive()
                state = sync_state(env)
                left = [t for t in remaining if not fully_synced(state.get(t, []))]
                if not left:
                    return "", 0
                for t, plans in plan_lines(read_log(d.logs[-1])).items():  # in log order
                    if t in left:
                        return t, plans[0][1]
                return None
            table, nparts = harness.wait_for(copying, 120, "this run's copy of one of %s" % remaining,
                                             interval=0.01)
            if not table:
                break
            remaining.remove(table)
            # 0..n-3 parts of it done (1.. for the key-split table, so some
            # parts survive the kill), then up to 50 ms more: parts take
            # longer, so the kill usually lands inside one.
            want = rng.randint(1 if table == KEY_TABLE else 0, max(nparts - 3, 1))
            delay = rng.uniform(0.0, 0.05)

            def reached():
                d.check_alive()
                parts = sync_state(env).get(table, [])
                return fully_synced(parts) or sum(p.state == "synced" for p in parts) >= want
            harness.wait_for(reached, 120, "%d synced part(s) of %s before kill %d" % (want, table, i + 1),
                             interval=0.01)
            d.wait_running(delay)
            assert not copy_done(env), ("the copy finished before kill %d could land in it (seed %d): "
                                        "make the tables bigger" % (i + 1, seed))
            print("kill %d in the copy of %s: after %d of %d part(s) + %.3f s" % (i + 1, table, want, nparts, delay))
            d.kill9()
            # The dead daemon's target sessions end (their open copies roll
            # back) before the state that survived is read.
            harness.wait_for(lambda: target_sessions(env) == 0, 30, "the killed daemon's target sessions to end")
            state = sync_state(env)
            print("kill %d: %d writer txns; synced parts per table: %s" % (
                i + 1, writer.txns, {t: "%d/%d" % (sum(p.state == "synced" for p in ps), len(ps))
                                     for t, ps in state.items()}))
            d.start()
            kills.append((state, d.logs[-1]))
        assert len(kills) >= 2, "only %d kill(s) landed in a copy (seed %d): make the tables bigger" % (
            len(kills), seed)
        wait_copy_done(env, d)
        target = writer.txns + 50
        harness.wait_for(lambda: writer.error or writer.txns >= target, 30, "writes after the copy")
    finally:
        writer.finish()
    env.wait_caught_up(d, timeout=180)
    env.assert_tables_equal(*BANK_TABLES)
    final = sync_state(env)
    d.stop()

    saw_finished, saw_key_resume, saw_restart = False, False, False
    for i, (state, logfile) in enumerate(kills):
        run_log = read_log(logfile)  # the run right after kill i + 1
        later_logs = "".join(read_log(f) for _, f in kills[i:])  # every run after kill i + 1
        plans, restarts = plan_lines(run_log), set(RESTART_RE.findall(run_log))
        later_plans, later_restarts = plan_lines(later_logs), set(RESTART_RE.findall(later_logs))
        for table, parts in state.items():
            final_parts = {p.part: p for p in final[table]}
            synced = [p for p in parts if p.state == "synced"]
            if fully_synced(parts):
                saw_finished = True
                # Finished before the kill: never planned, copied or touched again.
                assert table not in later_plans, "kill %d: %s was finished but copied again: %s" % (
                    i + 1, table, later_plans[table])
                assert table not in later_restarts, "kill %d: finished %s was restarted" % (i + 1, table)
                for p in parts:
                    assert final_parts[p.part][4:] == p[4:], "kill %d: finished part %s/%d changed: %s -> %s" % (
                        i + 1, table, p.part, p, final_parts[p.part])
            elif parts and all(p.kind == "key" for p in parts):
                # Key parts resume one by one: only the unfinished ones are copied.
                if synced:
                    saw_key_resume = True
                todo = len(parts) - len(synced)
                assert all(k == todo and n == len(parts) for k, n in plans[table]), (
                    "kill %d: %s had %d of %d parts left, the restart planned %s" % (
                        i + 1, table, todo, len(parts), plans[table]))
                assert table not in restarts
                for p in synced:
                    assert final_parts[p.part][4:] == p[4:], "kill %d: synced key part %s/%d was copied again" % (
                        i + 1, table, p.part)
            elif parts and plans.get(table):
                # CTID, leaf and whole parts share a snapshot: the table starts over.
                saw_restart = True
                assert table in restarts, "kill %d: %s (parts %s) not restarted: %s" % (
                    i + 1, table, [p.kind for p in parts], plans[table])
                assert all(k == n == len(parts) for k, n in plans[table]), plans[table]
    assert saw_finished, "no table had finished before a kill (seed %d)" % seed
    assert saw_key_resume, "no kill left a key-split table partly copied (seed %d)" % seed
    assert saw_restart, "no kill left a CTID- or leaf-split table partly copied (seed %d)" % seed

    # The last run's summaries: tables finished before the last kill copied nothing.
    last_state = kills[-1][0]
    done = done_lines(read_log(kills[-1][1]))
    for table, parts in last_state.items():
        if fully_synced(parts):
            assert [c for _, _, c in done[table]] == [0], "%s: %s" % (table, done[table])
    assert "initial copy complete for all %d table(s)" % len(BANK_TABLES) in read_log(kills[-1][1])


# --------------------------------------------------------------------------- (c)

def test_trickle_add_and_remove_tables(env):
    env.both_sql("""
        CREATE TABLE trk_a (id bigint PRIMARY KEY, v int NOT NULL, note text);
        CREATE TABLE trk_b (id bigint PRIMARY KEY, v int NOT NULL, note text);
        CREATE TABLE trk_c (id bigint PRIMARY KEY, v int NOT NULL, note text);
    """)
    env.src_sql("INSERT INTO trk_a SELECT g, 0, 'a' FROM generate_series(1, 1000) g")
    env.src_sql("INSERT INTO trk_b SELECT g, 0, 'b' FROM generate_series(1, 1000) g")
    # trk_c holds rows but is not in the pipeline yet.  (Filled before the
    # slot exists: after a restart the walsender would decode these 500k
    # inserts again before it reaches the changes the test waits for.)
    env.src_sql("INSERT INTO trk_c SELECT g, 0, 'c' || g FROM generate_series(1, 500000) g")
    env.dst_sql("ALTER TABLE trk_c DROP CONSTRAINT trk_c_pkey")  # key-range parts (see create_bank)
    env.src_sql("VACUUM ANALYZE trk_c")
    d = env.daemon(tables=["public.trk_a", "public.trk_b"], extra=COPY)
    env.src_sql("UPDATE trk_a SET v = 1 WHERE id % 10 = 0; INSERT INTO trk_b VALUES (1001, 1, 'new')")
    env.src_sql("UPDATE trk_c SET v = 1 WHERE id % 100 = 0")  # not published yet
    env.wait_caught_up(d)
    env.assert_tables_equal("trk_a", "trk_b")
    assert env.dst_sql("SELECT count(*) FROM trk_c") == [(0,)]
    d.stop()

    # Add trk_c to source.tables, first in the list.
    env.src_sql("UPDATE trk_a SET v = 2 WHERE id % 10 = 1")  # while tidemark is stopped
    d.write_config(env.config(tables=["public.trk_c", "public.trk_a", "public.trk_b"], extra=COPY))
    d.start()

    # While trk_c is copied, trk_a's changes keep arriving on the target.
    seen_during_copy = []
    next_id = [2000]

    def c_copied():
        d.check_alive()
        parts = sync_state(env).get("public.trk_c", [])
        return fully_synced(parts)

    def write_a_and_look():
        if c_copied():
            return True
        env.src_sql("INSERT INTO trk_a VALUES (%s, 3, 'during c')", (next_id[0],))
        next_id[0] += 1
        on_target = env.dst_sql("SELECT count(*) FROM trk_a WHERE note = 'during c'")[0][0]
        if on_target > 0 and not c_copied():
            seen_during_copy.append(on_target)
        return False

    harness.wait_for(write_a_and_look, 120, "trk_c's initial copy", interval=0.02)
    env.src_sql("UPDATE trk_c SET v = v + 1 WHERE id % 1000 = 0; DELETE FROM trk_c WHERE id % 777 = 0")
    env.wait_caught_up(d, timeout=120)
    env.assert_tables_equal("trk_a", "trk_b", "trk_c")
    assert part_kinds(sync_state(env), "public.trk_c")["key"] >= 4
    assert seen_during_copy, "no change of trk_a reached the target while trk_c was being copied"
    run2 = read_log(d.logs[-1])
    assert not re.search(r"stream waits for the initial copy of this table\b.* table=public\.trk_a$", run2, re.M)
    plans = plan_lines(run2)
    assert "public.trk_a" not in plans and "public.trk_b" not in plans, plans
    d.stop()

    # Remove trk_b: its later changes are no longer applied; the others stream.
    b_before = env.dst_sql("SELECT md5(string_agg(t::text, ',' ORDER BY id)), count(*) FROM trk_b t")
    d.write_config(env.config(tables=["public.trk_c", "public.trk_a"], extra=COPY))
    d.start()
    env.src_sql("UPDATE trk_b SET v = v + 100; INSERT INTO trk_b VALUES (5000, 5, 'after removal');"
                "DELETE FROM trk_b WHERE id <= 10")
    env.src_sql("INSERT INTO trk_a VALUES (900000, 9, 'after removal'); UPDATE trk_c SET v = -1 WHERE id < 100")
    env.wait_caught_up(d)
    env.assert_tables_equal("trk_a", "trk_c")
    assert env.dst_sql("SELECT md5(string_agg(t::text, ',' ORDER BY id)), count(*) FROM trk_b t") == b_before
    assert "public.trk_b" not in sync_state(env)
    d.stop()


def test_trickle_one_job_keeps_synced_tables_streaming(env):
    """With a single copy job busy with a newly added table, the tables that
    finished long ago must keep streaming: their state is on the target, no
    worker has to look at them first."""
    env.both_sql("CREATE TABLE one_a (id bigint PRIMARY KEY, v int NOT NULL);"
                 "CREATE TABLE one_c (id bigint PRIMARY KEY, v int NOT NULL, note text)")
    env.src_sql("INSERT INTO one_a SELECT g, 0 FROM generate_series(1, 100) g")
    env.src_sql("INSERT INTO one_c SELECT g, 0, 'c' || g FROM generate_series(1, 500000) g")
    env.src_sql("VACUUM ANALYZE one_c")
    d = env.daemon(tables=["public.one_a"], extra="copy: {jobs: 1, part_size_mb: 1}\n")
    env.wait_caught_up(d)
    d.stop()

    d.write_config(env.config(tables=["public.one_c", "public.one_a"], extra="copy: {jobs: 1, part_size_mb: 1}\n"))
    d.start()
    harness.wait_for(lambda: d.check_alive() or plan_lines(read_log(d.logs[-1])).get("public.one_c"), 60,
                     "the copy of one_c to start", interval=0.01)
    env.src_sql("INSERT INTO one_a VALUES (1000, 1)")
    lsn = harness.current_wal_lsn(env.src)

    def applied_or_copied():
        # In this order: applied first, then the copy found still running,
        # proves the change was applied during the copy.
        d.check_alive()
        applied = env.dst_sql("SELECT count(*) FROM one_a WHERE id = 1000")[0][0] > 0
        copied = fully_synced(sync_state(env).get("public.one_c", []))
        if applied and not copied:
            return "applied"
        return "copied" if copied else None
    first = harness.wait_for(applied_or_copied, 120, "one_a's insert or the end of one_c's copy", interval=0.01)
    env.wait_caught_up(d, timeout=120)
    env.assert_tables_equal("one_a", "one_c")
    assert first == "applied", ("one_a's change (source LSN %s) waited for the copy of one_c: %s" % (
        lsn, [l for l in read_log(d.logs[-1]).splitlines() if "one_a" in l]))
    d.stop()


def test_target_session_lost_during_copy(env):
    """The stream's target session is lost while a copy worker is in the
    middle of a table (its COPY waits for a lock on the target): the stream
    reconnects to the target while the worker's copy goes on, and the next
    tables' copies open sessions after the reconnect. The result is exact.
    Under ThreadSanitizer (scripts/test.sh's TSan stage) this is where the
    reconnect replaced the client encoding that copy workers read when they
    open their sessions."""
    tables = ["rc_1_locked", "rc_2", "rc_3"]
    for t in tables:
        env.both_sql("CREATE TABLE %s (id int PRIMARY KEY, v text)" % t)
        env.src_sql("INSERT INTO %s SELECT g, md5(g::text) FROM generate_series(1, 2000) g" % t)
    with psycopg.connect(env.dst) as locker:
        # SHARE: the start's emptiness check reads the table; the copy's
        # COPY FROM (ROW EXCLUSIVE) waits.
        locker.execute("LOCK TABLE rc_1_locked IN SHARE MODE")
        d = env.daemon(tables=["public." + t for t in tables], extra="copy: {jobs: 1}\n")

        def blocked_copy():
            d.check_alive()
            rows = env.dst_sql("SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = 'tidemark'"
                               " AND wait_event_type = 'Lock'", (env.dst_db,))
            return rows[0][0] if rows else None
        copier = harness.wait_for(blocked_copy, 60, "the copy of rc_1_locked to wait for the lock")
        # Every other tidemark session on the target: the stream's among them.
        killed = env.dst_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
                             " AND application_name = 'tidemark' AND pid <> %s", (env.dst_db, copier))
        assert killed, "no stream session on the target"
        harness.wait_for(lambda: d.check_alive() or "target reconnected" in d.log(), 60,
                         "the stream to reconnect to the target")
        env.src_sql("UPDATE rc_2 SET v = 'during' WHERE id % 10 = 0")
        locker.rollback()
    env.src_sql("INSERT INTO rc_1_locked VALUES (5000, 'after'); DELETE FROM rc_3 WHERE id <= 100")
    env.wait_caught_up(d)
    env.assert_tables_equal(*tables)
    assert "lost the target" in d.log()
    d.stop()


# --------------------------------------------------------------------------- (d)

SCHEMA_DDL = """
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
    CREATE TABLE customers (
        id serial PRIMARY KEY,
        email text NOT NULL UNIQUE,
        mood mood NOT NULL DEFAULT 'ok',
        age int CONSTRAINT customers_age_check CHECK (age >= 0),
        created timestamptz NOT NULL DEFAULT now());
    CREATE INDEX customers_lower_email_idx ON customers (lower(email));
    CREATE TABLE orders (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        customer_id int NOT NULL CONSTRAINT orders_customer_fk REFERENCES customers (id),
        qty int NOT NULL,
        price numeric(10, 2) NOT NULL,
        total numeric GENERATED ALWAYS AS (qty * price) STORED);
    CREATE INDEX orders_customer_idx ON orders (customer_id);
    CREATE TABLE order_notes (
        order_id bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
        n int GENERATED BY DEFAULT AS IDENTITY,
        body text,
        PRIMARY KEY (order_id, n));
"""


def insert_shop_rows(env, customers, orders):
    env.src_sql("INSERT INTO customers (email, mood, age) SELECT 'c' || g || '@example.com',"
                " (ARRAY['sad', 'ok', 'happy'])[g %% 3 + 1]::mood, g %% 90 FROM generate_series(1, %d) g" % customers)
    env.src_sql("INSERT INTO orders (customer_id, qty, price) SELECT (g %% %d) + 1, g %% 7 + 1, (g %% 100) + 0.99"
                " FROM generate_series(1, %d) g" % (customers, orders))
    env.src_sql("INSERT INTO order_notes (order_id, body) SELECT id, 'note ' || id FROM orders WHERE id % 3 = 0")


def test_schema_copy(env):
    env.src_sql(SCHEMA_DDL)
    insert_shop_rows(env, customers=2000, orders=20000)
    tables = ["public.customers", "public.orders", "public.order_notes"]
    d = env.daemon(tables=tables, extra="schema: copy\n" + COPY)
    # Writes after the slot exists, while the copy runs: the watermark passes
    # them only once the stream runs, which is after the post-data section.
    harness.wait_for(lambda: d.check_alive() or env.watermark(), 60, "the pipeline's start position")
    env.src_sql("INSERT INTO customers (email, mood, age) VALUES ('during@example.com', 'sad', 1)")
    env.src_sql("UPDATE orders SET qty = qty + 1 WHERE id % 1000 = 0")
    env.wait_caught_up(d, timeout=120)
    env.assert_tables_equal(*tables)
    assert env.dst_sql("SELECT key, value FROM tidemark.pipeline_state WHERE pipeline = %s AND key LIKE 'schema p%%'"
                       " ORDER BY 1", (env.pipeline,)) == [("schema post-data", "done"), ("schema pre-data", "done")]
    # Foreign keys: NOT VALID until every table has caught up, then validated (test_schema_copy.py).
    harness.wait_for(lambda: env.dst_sql("SELECT value FROM tidemark.pipeline_state WHERE pipeline = %s"
                                         " AND key = 'schema foreign-keys'", (env.pipeline,)) == [("validated",)],
                     60, "the foreign keys to be validated")

    indexes = {r[0] for r in env.dst_sql("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
    assert {"customers_pkey", "customers_email_key", "customers_lower_email_idx", "orders_pkey",
            "orders_customer_idx", "order_notes_pkey"} <= indexes, indexes
    constraints = {(r[0], r[1]) for r in env.dst_sql(
        "SELECT conname, contype::text FROM pg_constraint WHERE connamespace = 'public'::regnamespace")}
    assert {("customers_age_check", "c"), ("orders_customer_fk", "f"), ("customers_email_key", "u"),
            ("orders_pkey", "p")} <= constraints, constraints
    assert any(t == "f" and name.startswith("order_notes") for name, t in constraints), constraints
    cols = {(r[0], r[1]): r[2:] for r in env.dst_sql(
        "SELECT table_name, column_name, is_generated, is_identity, identity_generation, column_default"
        " FROM information_schema.columns WHERE table_schema = 'public'")}
    assert cols[("orders", "total")][0] == "ALWAYS", cols[("orders", "total")]
    # ALWAYS on the source; BY DEFAULT while the pipeline applies updates, recorded
    # for `sync-sequences --restore-identity` at cutover (tests/e2e/test_shapes.py).
    assert cols[("orders", "id")][1:3] == ("YES", "BY DEFAULT"), cols[("orders", "id")]
    assert env.dst_sql("SELECT key FROM tidemark.pipeline_state WHERE pipeline = %s AND key LIKE 'identity%%'",
                       (env.pipeline,)) == [("identity public.orders.id",)]
    assert cols[("order_notes", "n")][1:3] == ("YES", "BY DEFAULT"), cols[("order_notes", "n")]
    assert "nextval" in (cols[("customers", "id")][3] or ""), cols[("customers", "id")]
    assert env.dst_sql("SELECT enum_range(NULL::mood)::text") == [("{sad,ok,happy}",)]
    # The CHECK and FK are enforced on the target (outside tidemark's replica session).
    with pytest.raises(psycopg.errors.CheckViolation):
        env.dst_sql("INSERT INTO customers (id, email, age) VALUES (-1, 'x@y', -1)")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        env.dst_sql("INSERT INTO orders (id, customer_id, qty, price) OVERRIDING SYSTEM VALUE VALUES (-1, -5, 1, 1)")

    # Streaming after the copy: serial, identity and generated columns, enum, cascade.
    env.src_sql("INSERT INTO customers (email, mood, age) VALUES ('late@example.com', 'happy', 33)")
    env.src_sql("INSERT INTO orders (customer_id, qty, price) SELECT id, 3, 9.5 FROM customers WHERE id % 100 = 0")
    env.src_sql("INSERT INTO order_notes (order_id, body) SELECT max(id), 'late note' FROM orders")
    env.src_sql("UPDATE orders SET qty = qty + 1 WHERE id % 50 = 0; UPDATE customers SET mood = 'sad' WHERE id < 10")
    env.src_sql("DELETE FROM orders WHERE id IN (SELECT order_id FROM order_notes WHERE n % 13 = 0)")
    env.wait_caught_up(d)
    env.assert_tables_equal(*tables)
    d.stop()


# --------------------------------------------------------------------------- (e)

def sequences(conninfo):
    return {r[0]: r[1] for r in harness.execute(
        conninfo, "SELECT schemaname || '.' || sequencename, last_value FROM pg_sequences ORDER BY 1")}


def test_sync_sequences(env):
    env.both_sql(SCHEMA_DDL + "CREATE SEQUENCE invoice_no START 1000 INCREMENT 10;")
    tables = ["public.customers", "public.orders", "public.order_notes"]
    d = env.daemon(tables=tables, extra=COPY)
    insert_shop_rows(env, customers=300, orders=3000)
    env.src_sql("SELECT nextval('invoice_no') FROM generate_series(1, 25)")
    env.wait_caught_up(d)
    env.assert_tables_equal(*tables)
    src_seqs = sequences(env.src)
    assert len(src_seqs) == 4 and all(v is not None for v in src_seqs.values()), src_seqs
    assert sequences(env.dst) != src_seqs  # rows arrive with their values; sequences stay behind

    res = subprocess.run([d.binary, "sync-sequences", "--config", d.config_path], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, "sync-sequences failed (%d):\n%s%s" % (res.returncode, res.stdout, res.stderr)
    assert sequences(env.dst) == src_seqs
    d.stop()
    # nextval on the target continues after the source's values: no collisions.
    env.dst_sql("INSERT INTO customers (email) VALUES ('target@example.com')")
    env.dst_sql("INSERT INTO orders (customer_id, qty, price) VALUES (1, 1, 1)")
    env.dst_sql("INSERT INTO order_notes (order_id, body) VALUES (1, 'target')")
    assert env.dst_sql("SELECT nextval('invoice_no')")[0][0] == src_seqs["public.invoice_no"] + 10


# --------------------------------------------------------------------------- (f)

SMALL_TABLES = ["public.sm_%02d" % i for i in range(24)]


class SmallWriter(threading.Thread):
    """Short transactions on random small tables until stopped: an update, an
    insert of a new key, a delete, or a change to two tables at once."""

    def __init__(self, conninfo, tables, rows, seed):
        super().__init__(daemon=True)
        self.conninfo, self.tables, self.rng = conninfo, tables, random.Random(seed)
        self.next_id = rows + 1
        self.stop_event = threading.Event()
        self.txns, self.error = 0, None

    def run(self):
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                while not self.stop_event.is_set():
                    with conn.transaction():
                        for t in self.rng.sample(self.tables, self.rng.choice((1, 2))):
                            self.one(conn, t)
                    self.txns += 1
                    self.stop_event.wait(0.002)
        except Exception as e:  # reported by the test
            self.error = e

    def one(self, conn, table):
        kind, key = self.rng.randrange(3), self.rng.randint(1, 2000)
        if kind == 0:
            conn.execute("UPDATE %s SET v = v + 1, note = note || '+' WHERE id = %%s" % table, (key,))
        elif kind == 1:
            conn.execute("INSERT INTO %s VALUES (%%s, 0, 'new')" % table, (self.next_id,))
            self.next_id += 1
        else:
            conn.execute("DELETE FROM %s WHERE id = %%s" % table, (key,))

    def finish(self, timeout=30):
        self.stop_event.set()
        self.join(timeout)
        assert not self.is_alive(), "writer did not stop"
        assert self.error is None, "writer failed: %r" % self.error


def target_sessions_total(env):
    """Sessions ever established to the test's target database (pg_stat_database)."""
    with psycopg.connect(env.dst, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        return conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s",
                            (env.dst_db,)).fetchone()[0]


def test_many_small_tables_share_snapshot_and_sessions(env):
    """One copy worker loads many small tables: each after the first in the
    snapshot it took for the first (no new temporary slot per table) and on
    target sessions it reuses (no new connection per step), while a writer
    changes them; the target converges row by row. Once the copy is done no
    temporary slot and no idle copy session is left behind (issue 17)."""
    for t in SMALL_TABLES:
        name = t.split(".")[1]
        env.both_sql("CREATE TABLE %s (id bigint PRIMARY KEY, v int NOT NULL, note text)" % name)
        env.src_sql("INSERT INTO %s SELECT g, g %% 5, md5(g::text) FROM generate_series(1, 2000) g" % name)
    writer = SmallWriter(env.src, SMALL_TABLES, 2000, seed=17)
    writer.start()
    try:
        harness.wait_for(lambda: writer.error or writer.txns >= 20, 30, "the writer to start")
        sessions_before = target_sessions_total(env)
        d = env.daemon(tables=SMALL_TABLES, extra="copy: {jobs: 1}\n")
        # Waits on the daemon's log, not on target queries: those would count as sessions.
        harness.wait_for(lambda: d.check_alive() or "initial copy complete for all" in d.log(), 120,
                         "the initial copy", interval=0.1)
        txns_at_copy = writer.txns
        harness.wait_for(lambda: writer.error or writer.txns >= txns_at_copy + 50, 30, "writes after the copy")
    finally:
        writer.finish()
    # What the workers kept for a next table goes once nothing is queued.
    harness.wait_for(lambda: env.src_sql("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'tm_sync_%'")[0][0] == 0,
                     30, "the copy's temporary slots to go")
    harness.wait_for(lambda: target_sessions(env) == 1, 30, "the copy sessions to close (only the stream's is left)")
    env.wait_caught_up(d, timeout=120)
    env.assert_tables_equal(*SMALL_TABLES)

    log = d.log()
    plans = plan_lines(log)
    assert sorted(plans) == SMALL_TABLES and all(p == [(1, 1)] for p in plans.values()), plans
    lsns = {r[0] for r in env.dst_sql("SELECT sync_lsn::text FROM tidemark.sync_state WHERE pipeline = %s",
                                      (env.pipeline,))}
    reused = log.count("(in the snapshot of the worker's previous table)")
    print("sync LSNs: %s; tables copied in a previous table's snapshot: %d" % (sorted(lsns), reused))
    assert len(lsns) == 1 and reused == len(SMALL_TABLES) - 1, (lsns, reused)

    d.stop()
    harness.wait_for(lambda: target_sessions(env) == 0, 30, "the daemon's target sessions to end")
    # Minus the two sessions of target_sessions_total; the waits above made a few more.
    opened = target_sessions_total(env) - sessions_before
    print("target sessions opened while %d tables were copied and streamed: at most %d" % (len(SMALL_TABLES), opened))
    assert opened < len(SMALL_TABLES), "%d target sessions for %d tables" % (opened, len(SMALL_TABLES))
