"""The fault campaign's schema and writer: a workload where a lost, doubled
or stale row is visible.

Every row carries `rv`, a row version drawn from one source sequence on each
insert and update, so no two row versions are alike (except the deliberate
twins below) and a stale row on the target shows as "differing".  Tables:

* big     - bigint primary key, preloaded large enough that its initial copy
            takes seconds and splits into key-range parts; updates, deletes,
            key changes that move rows across parts, now and then a
            transaction bigger than one apply batch;
* acct    - bigint primary key plus a TOASTed column that most updates leave
            unchanged (pgoutput sends it as 'u'), key changes, deletes;
* ledger  - no key, REPLICA IDENTITY FULL: rows identified by `uid` only by
            convention; some uids are inserted as identical twins, updated
            together (one rv for both) or one of them alone (by ctid), and one
            twin deleted: a doubled or missed change leaves a count wrong;
* orders  - list-partitioned (four leaves); updates that move a row to
            another partition.

The writer connects to the source's unix socket directly (it is the
application, not the daemon), survives source restarts by reconnecting, and
can be paused so the campaign compares a quiet source with the target.
New ids come from the writer's own counters and are never reused, even when
a transaction's fate is unknown (its COMMIT lost in a restart).
"""

import random
import threading
import time

import psycopg

DDL = """
CREATE SEQUENCE IF NOT EXISTS rv;
CREATE TABLE big (id bigint PRIMARY KEY, grp int NOT NULL, rv bigint NOT NULL, pad text);
CREATE TABLE acct (id bigint PRIMARY KEY, rv bigint NOT NULL, bal int NOT NULL, note text, doc text);
CREATE TABLE ledger (uid bigint NOT NULL, rv bigint NOT NULL, grp int, note text);
ALTER TABLE ledger REPLICA IDENTITY FULL;
CREATE INDEX ledger_uid ON ledger (uid);
CREATE TABLE orders (id bigint NOT NULL, region int NOT NULL, rv bigint NOT NULL, amount int,
                     PRIMARY KEY (region, id)) PARTITION BY LIST (region);
CREATE TABLE orders_r0 PARTITION OF orders FOR VALUES IN (0);
CREATE TABLE orders_r1 PARTITION OF orders FOR VALUES IN (1);
CREATE TABLE orders_r2 PARTITION OF orders FOR VALUES IN (2);
CREATE TABLE orders_rest PARTITION OF orders DEFAULT;
CREATE INDEX orders_id ON orders (id);
"""

# table -> SQL expression that identifies "the same row" on both sides (pairs
# a missing row with an extra one as one differing row)
TABLE_KEYS = {"big": "id", "acct": "id", "ledger": "uid", "orders": "id"}
TABLES = list(TABLE_KEYS)



def sizes(big_rows, small=False):
    """Rows preloaded per table: `big` as asked, the others fixed (fewer for CI)."""
    if small:
        return {"big": big_rows, "acct": 4_000, "ledger": 3_000, "orders": 5_000}
    return {"big": big_rows, "acct": 20_000, "ledger": 10_000, "orders": 20_000}
# ids the writer creates: per table from its own base, never reused
FRESH_BASE = {"big": 100_000_000, "acct": 200_000_000, "ledger": 300_000_000, "orders": 400_000_000}
REGIONS = 5               # 0, 1, 2 have their own leaf; 3, 4 land in the default one

# a ~6 kB value of random hex digits: compresses to > 2 kB, so it is stored out of line
DOC_SQL = "(SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 190))"


def create_schema(conninfo):
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(DDL)


def preload(conninfo, rows):
    """The rows present before the first pipeline starts."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO big SELECT g, g %% 100, nextval('rv'), md5(g::text) || md5((g * 7)::text)"
                     " FROM generate_series(1, %s) g", (rows["big"],))
        conn.execute("INSERT INTO acct SELECT g, nextval('rv'), 0, 'a' || g, CASE WHEN g %% 10 = 0 THEN "
                     + DOC_SQL + " END FROM generate_series(1, %s) g", (rows["acct"],))
        # twins: every 10th uid has two identical rows (the same rv)
        conn.execute("INSERT INTO ledger SELECT u, r, u %% 50, 'pre' FROM ("
                     " SELECT g AS u, nextval('rv') AS r FROM generate_series(1, %s) g) s,"
                     " LATERAL generate_series(1, CASE WHEN u %% 10 = 0 THEN 2 ELSE 1 END)", (rows["ledger"],))
        conn.execute("INSERT INTO orders SELECT g, g %% %s, nextval('rv'), g %% 1000"
                     " FROM generate_series(1, %s) g", (REGIONS, rows["orders"]))
        conn.execute("VACUUM ANALYZE")


class Writer(threading.Thread):
    """Paced mixed transactions on every table until stopped; pause()/resume()."""

    def __init__(self, conninfo, seed, rows, rate=80):
        super().__init__(daemon=True, name="writer")
        self.conninfo, self.rng, self.rate = conninfo, random.Random(seed), rate
        self.preloaded = dict(rows)
        self.fresh = dict(FRESH_BASE)
        self.stop_event = threading.Event()
        self.go = threading.Event()
        self.go.set()
        self.idle = threading.Event()
        self.committed = self.failed = self.reconnects = 0
        self.errors = []  # errors other than lost connections: a bug in the workload or a finding

    # ---------------------------------------------------------- control
    def pause(self, timeout=60):
        """Stop writing; return once no transaction is open."""
        self.go.clear()
        if not self.idle.wait(timeout):
            raise TimeoutError("writer did not pause within %ds" % timeout)

    def resume(self):
        self.idle.clear()
        self.go.set()

    def finish(self):
        self.stop_event.set()
        self.go.set()
        self.join(30)

    # ---------------------------------------------------------- loop
    def run(self):
        conn = None
        started, done = time.monotonic(), 0
        while not self.stop_event.is_set():
            if not self.go.is_set():
                self.idle.set()
                self.go.wait()
                started, done = time.monotonic(), 0
                continue
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)
                with conn.transaction():
                    self.one(conn)
                self.committed += 1
            except psycopg.OperationalError:
                # the source restarted: the transaction's fate is unknown;
                # the comparison reads what the source really has
                self.failed += 1
                self.reconnects += 1
                if conn is not None:
                    conn.close()
                conn = None
                self.stop_event.wait(0.2)
                continue
            except psycopg.Error as e:
                self.failed += 1
                self.errors.append(repr(e))
                continue
            done += 1
            ahead = done / self.rate - (time.monotonic() - started)
            if ahead > 0:
                self.stop_event.wait(ahead)
        self.idle.set()
        if conn is not None:
            conn.close()

    def new_ids(self, table, n):
        first = self.fresh[table] + 1
        self.fresh[table] += n
        return first, self.fresh[table]

    def pick(self, table, rng):
        """An id that probably exists: preloaded or created by this writer, half and half."""
        if self.fresh[table] > FRESH_BASE[table] and rng.random() < 0.5:
            return rng.randint(FRESH_BASE[table] + 1, self.fresh[table])
        return rng.randint(1, self.preloaded[table])

    def one(self, conn):
        """One source transaction of one to three operations."""
        rng = self.rng
        ops = rng.choices([self.big_op, self.acct_op, self.ledger_op, self.orders_op],
                          weights=[35, 25, 25, 15], k=rng.choice([1, 1, 2, 3]))
        for op in ops:
            op(conn, rng)

    def big_op(self, conn, rng):
        kind = rng.choices(["insert", "update", "delete", "rekey", "bulk"], weights=[30, 40, 15, 12, 3])[0]
        lo = self.pick("big", rng)
        if kind == "insert":
            first, last = self.new_ids("big", rng.choice([1, 5, 50, 200]))
            conn.execute("INSERT INTO big SELECT g, g %% 100, nextval('rv'), md5(g::text)"
                         " FROM generate_series(%s, %s) g", (first, last))
        elif kind == "update":
            conn.execute("UPDATE big SET grp = grp + 1, rv = nextval('rv') WHERE id BETWEEN %s AND %s",
                         (lo, lo + rng.choice([0, 3, 20])))
        elif kind == "delete":
            conn.execute("DELETE FROM big WHERE id BETWEEN %s AND %s", (lo, lo + rng.choice([0, 2, 10])))
        elif kind == "rekey":
            # a fresh key far from the old one: the row moves to another copy part
            first, _ = self.new_ids("big", 1)
            conn.execute("UPDATE big SET id = %s, rv = nextval('rv') WHERE id = %s", (first, lo))
        else:
            # larger than one apply batch (batch_max_changes, 2000 in the campaign's config)
            conn.execute("UPDATE big SET rv = nextval('rv'), pad = left(pad, 30) || 'b' WHERE id BETWEEN %s AND %s",
                         (lo, lo + 3000))

    def acct_op(self, conn, rng):
        kind = rng.choices(["insert", "balance", "doc", "rekey", "delete"], weights=[20, 50, 8, 10, 12])[0]
        lo = self.pick("acct", rng)
        if kind == "insert":
            first, last = self.new_ids("acct", rng.choice([1, 3]))
            conn.execute("INSERT INTO acct SELECT g, nextval('rv'), 0, 'new', " + DOC_SQL +
                         " FROM generate_series(%s, %s) g", (first, last))
        elif kind == "balance":
            # leaves doc alone: pgoutput marks it unchanged-TOAST
            conn.execute("UPDATE acct SET bal = bal + 1, rv = nextval('rv') WHERE id BETWEEN %s AND %s",
                         (lo, lo + rng.choice([0, 5])))
        elif kind == "doc":
            conn.execute("UPDATE acct SET doc = " + DOC_SQL + ", rv = nextval('rv') WHERE id = %s", (lo,))
        elif kind == "rekey":
            first, _ = self.new_ids("acct", 1)
            conn.execute("UPDATE acct SET id = %s, rv = nextval('rv') WHERE id = %s", (first, lo))
        else:
            conn.execute("DELETE FROM acct WHERE id BETWEEN %s AND %s", (lo, lo + rng.choice([0, 2])))

    def ledger_op(self, conn, rng):
        kind = rng.choices(["insert", "twins", "update", "update_one", "delete_one", "delete"],
                           weights=[25, 15, 25, 10, 15, 10])[0]
        uid = self.pick("ledger", rng)
        if kind in ("insert", "twins"):
            first, _ = self.new_ids("ledger", 1)
            copies = 2 if kind == "twins" else 1
            conn.execute("INSERT INTO ledger SELECT %s, r, %s, 'w' FROM (SELECT nextval('rv') AS r) s,"
                         " generate_series(1, %s)", (first, first % 50, copies))
        elif kind == "update":
            # one rv for every row of the uid (an initplan): twins stay identical
            conn.execute("UPDATE ledger SET rv = (SELECT nextval('rv')), grp = grp + 1 WHERE uid = %s", (uid,))
        elif kind == "update_one":
            conn.execute("UPDATE ledger SET rv = nextval('rv'), note = 'one' WHERE ctid ="
                         " (SELECT ctid FROM ledger WHERE uid = %s LIMIT 1)", (uid,))
        elif kind == "delete_one":
            conn.execute("DELETE FROM ledger WHERE ctid = (SELECT ctid FROM ledger WHERE uid = %s LIMIT 1)", (uid,))
        else:
            conn.execute("DELETE FROM ledger WHERE uid = %s", (uid,))

    def orders_op(self, conn, rng):
        kind = rng.choices(["insert", "update", "move", "delete"], weights=[30, 35, 20, 15])[0]
        oid = self.pick("orders", rng)
        if kind == "insert":
            first, last = self.new_ids("orders", rng.choice([1, 10]))
            conn.execute("INSERT INTO orders SELECT g, g %% %s, nextval('rv'), 1 FROM generate_series(%s, %s) g",
                         (REGIONS, first, last))
        elif kind == "update":
            conn.execute("UPDATE orders SET amount = amount + 1, rv = nextval('rv') WHERE id = %s", (oid,))
        elif kind == "move":
            # a new region: another leaf partition (delete + insert on the source)
            conn.execute("UPDATE orders SET region = (region + %s) %% %s, rv = nextval('rv') WHERE id = %s",
                         (rng.randint(1, REGIONS - 1), REGIONS, oid))
        else:
            conn.execute("DELETE FROM orders WHERE id = %s", (oid,))
