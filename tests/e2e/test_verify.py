"""End-to-end tests of `tidemark verify`: identical tables verify clean; each
planted difference (missing, extra, changed column, NULL vs '', trailing
whitespace, Unicode normalization, a change inside a 1 MB TOASTed value, a
duplicated row in a table without a key) is reported with the right kind and
values and stored in tidemark.verify_failures; verification while a writer
runs and the daemon streams gives no false mismatch, yet still finds a
planted difference; foreign-key orphans, every rule kind and spot checks are
reported; a pipeline that does not catch up fails clearly."""

import json
import os
import random
import subprocess
import threading
import time

import psycopg

import harness

LONG_BODY = "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 32768) g)"  # 1 MiB


def run_verify(env, *args, extra="", config_text=None, timeout=300):
    path = os.path.join(env.workdir, "verify.yaml")
    with open(path, "w") as f:
        f.write(config_text or env.config(extra=extra))
    res = subprocess.run([harness.tidemark_bin(), "verify", "--config", path] + list(args),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                         stdin=subprocess.DEVNULL)
    err = res.stderr.decode("utf-8", "replace")
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        assert marker not in err, "sanitizer report:\n" + err
    return res.returncode, res.stdout.decode("utf-8", "replace"), err


def verify_json(env, *args, expect=None, **kw):
    rc, out, err = run_verify(env, "--format", "json", *args, **kw)
    assert rc in (0, 1), "verify failed (%d):\n%s\n%s" % (rc, err, out)
    rep = json.loads(out)
    if expect is not None:
        assert rc == expect, "exit %d, expected %d\n%s\n%s" % (rc, expect, err, json.dumps(rep, indent=1))
    assert (rc == 0) == rep["ok"]
    return rep


def table_of(rep, display):
    return next(t for t in rep["tables"] if t["display"] == display)


def diffs(rep, display):
    return table_of(rep, display)["differences"]


def by_key(rep, display, col, value):
    hits = [d for d in diffs(rep, display) if d["key"].get(col) == value]
    assert len(hits) == 1, "expected one difference for %s=%s in %s, got %s" % (
        col, value, display, json.dumps(diffs(rep, display), indent=1))
    return hits[0]


SCHEMA = """
    CREATE TABLE items (id int PRIMARY KEY, name text, note text, amount numeric(12,2),
                        at timestamptz, body text);
    ALTER TABLE items ALTER body SET STORAGE EXTERNAL;
    CREATE TABLE codes (code text PRIMARY KEY, label text);
    CREATE TABLE pairs (a int, b text, v int, PRIMARY KEY (a, b));
    CREATE TABLE loose (x int, y text);
    ALTER TABLE loose REPLICA IDENTITY FULL;
"""


def load(env, n=3000):
    env.both_sql(SCHEMA)
    env.src_sql("""
        INSERT INTO items SELECT g, 'name ' || g, CASE WHEN g %% 10 = 0 THEN '' END, g * 1.5,
               '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 minute', NULL
          FROM generate_series(1, %d) g;
        UPDATE items SET body = %s WHERE id = 11;
        INSERT INTO codes SELECT 'c' || lpad(g::text, 6, '0'), 'label ' || g FROM generate_series(1, %d) g;
        INSERT INTO pairs SELECT g %% 50, 'b' || (g / 50), g FROM generate_series(1, %d) g;
        INSERT INTO loose SELECT g %% 100, 'y' || (g %% 7) FROM generate_series(1, %d) g;
    """ % (n, LONG_BODY, n, n, n))


def start(env):
    d = env.daemon()
    env.wait_caught_up(d)
    return d


# --------------------------------------------------------------------------- clean

def test_identical_tables_verify_clean(env):
    load(env)
    d = start(env)
    rep = verify_json(env, expect=0)
    assert rep["summary"]["tables"] == 4 and rep["summary"]["tables_ok"] == 4, json.dumps(rep, indent=1)
    for t in rep["tables"]:
        assert t["source_rows"] == t["target_rows"] == 3000, t
        assert t["differences"] == []
    strategies = {t["name"]: t["strategy"] for t in rep["tables"]}
    assert strategies == {"items": "key_ranges", "codes": "key_ranges", "pairs": "key_hash_buckets",
                          "loose": "row_hash_buckets"}
    # the run is recorded with both counts as the baseline
    rows = env.dst_sql("SELECT table_name, source_rows, target_rows, ok FROM tidemark.verify_runs"
                       " WHERE run_id = %s ORDER BY 1", (rep["run_id"],))
    assert rows == [("codes", 3000, 3000, True), ("items", 3000, 3000, True),
                    ("loose", 3000, 3000, True), ("pairs", 3000, 3000, True)]
    assert env.dst_sql("SELECT count(*) FROM tidemark.verify_failures")[0][0] == 0
    # text summary and markdown report
    rc, out, err = run_verify(env, "--output", os.path.join(env.workdir, "r.md"), "--no-store")
    assert rc == 0, err
    assert "\u2713 public.items" in out and "OK:" in out
    md = open(os.path.join(env.workdir, "r.md")).read()
    assert md.startswith("# Verification of pipeline") and "| \u2713 | `public.items` | 3000 | 3000 |" in md
    d.stop()


# --------------------------------------------------------------------------- planted

def test_planted_differences_are_reported_exactly(env):
    load(env)
    env.src_sql("UPDATE items SET note = '' WHERE id = 8; UPDATE items SET name = 'caf\u00e9' WHERE id = 10")
    d = start(env)
    d.stop()   # the target is edited by hand below; nothing streams meanwhile
    env.dst_sql("""
        DELETE FROM items WHERE id = 5;
        INSERT INTO items (id, name) VALUES (100000, 'only on target');
        UPDATE items SET amount = 999.99 WHERE id = 7;
        UPDATE items SET note = NULL WHERE id = 8;
        UPDATE items SET name = name || ' ' WHERE id = 9;
        UPDATE items SET name = normalize(name, NFD) WHERE id = 10;
        UPDATE items SET body = overlay(body placing 'X' from 500000 for 1) WHERE id = 11;
        UPDATE codes SET label = 'changed' WHERE code = 'c001234';
        DELETE FROM codes WHERE code = 'c002000';
        UPDATE pairs SET v = -1 WHERE a = 3 AND b = 'b10';
        INSERT INTO loose SELECT * FROM loose WHERE x = 42 AND y = 'y0' LIMIT 1;
        DELETE FROM loose WHERE ctid = (SELECT min(ctid) FROM loose WHERE x = 17);
    """)
    rep = verify_json(env, "--no-wait", expect=1)
    assert by_key(rep, "public.items", "id", "5")["kind"] == "missing"
    extra = by_key(rep, "public.items", "id", "100000")
    assert extra["kind"] == "extra" and extra["row"]["name"] == "only on target"

    def column(idv, col):
        d = by_key(rep, "public.items", "id", idv)
        assert d["kind"] == "differs", d
        assert [c["column"] for c in d["columns"]] == [col], d
        return d["columns"][0]

    assert column("7", "amount") == {"column": "amount", "source": "10.50", "target": "999.99"}
    assert column("8", "note") == {"column": "note", "source": "", "target": None}
    assert column("9", "name") == {"column": "name", "source": "name 9", "target": "name 9 "}
    c = column("10", "name")
    assert c["source"] == "caf\u00e9" and c["target"] == "cafe\u0301"
    c = column("11", "body")
    assert len(c["source"]) == len(c["target"]) == 1 << 20 and c["source"] != c["target"]
    assert len(diffs(rep, "public.items")) == 7
    assert by_key(rep, "public.codes", "code", "c001234")["columns"] == [
        {"column": "label", "source": "label 1234", "target": "changed"}]
    assert by_key(rep, "public.codes", "code", "c002000")["kind"] == "missing"
    p = diffs(rep, "public.pairs")
    assert len(p) == 1 and p[0]["kind"] == "differs" and p[0]["key"] == {"a": "3", "b": "b10"}
    assert p[0]["columns"] == [{"column": "v", "source": "503", "target": "-1"}]
    loose = sorted(diffs(rep, "public.loose"), key=lambda x: x["kind"])
    assert [(x["kind"], x["row"], x["count"]) for x in loose] == [
        ("extra", {"x": "42", "y": "y0"}, 1), ("missing", {"x": "17", "y": loose[1]["row"]["y"]}, 1)]
    t = table_of(rep, "public.items")
    assert (t["source_rows"], t["target_rows"], t["missing"], t["extra"], t["differing"]) == (3000, 3000, 1, 1, 5)
    # stored on the target
    stored = env.dst_sql("SELECT table_name, kind, key::text, details FROM tidemark.verify_failures"
                         " WHERE run_id = %s ORDER BY id", (rep["run_id"],))
    assert len(stored) == 7 + 2 + 1 + 2
    amount = [r for r in stored if r[0] == "items" and r[2] == '{"id": "7"}']
    assert amount and amount[0][1] == "differs" and amount[0][3]["columns"][0]["target"] == "999.99"
    assert ("loose", "extra") in {(r[0], r[1]) for r in stored}
    # the text summary says what differs
    rc, out, _ = run_verify(env, "--no-wait", "--no-store")
    assert rc == 1 and "\u2717 public.items" in out and 'missing {id: "5"}' in out
    assert 'amount: source "10.50" target "999.99"' in out and "MISMATCH" in out


# --------------------------------------------------------------------------- live traffic

class Writer(threading.Thread):
    """Random inserts, updates and deletes on the source until stopped (ids below 20000)."""

    def __init__(self, conninfo):
        super().__init__(daemon=True)
        self.conninfo, self.stop_event, self.count, self.error = conninfo, threading.Event(), 0, None

    def run(self):
        rnd = random.Random(7)
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as c:
                while not self.stop_event.is_set():
                    i = rnd.randint(1, 19999)
                    with c.transaction():
                        c.execute("UPDATE items SET name = md5(random()::text), amount = amount + 1"
                                  " WHERE id = %s", (i,))
                        c.execute("INSERT INTO items (id, name) VALUES (%s, 'new') ON CONFLICT (id)"
                                  " DO UPDATE SET note = 'upd'", (rnd.randint(1, 19999),))
                        c.execute("DELETE FROM items WHERE id = %s", (rnd.randint(1, 19999),))
                        c.execute("UPDATE codes SET label = md5(random()::text) WHERE code = %s",
                                  ("c%06d" % rnd.randint(1, 19999),))
                        c.execute("INSERT INTO loose VALUES (%s, 'w')", (rnd.randint(1, 5),))
                    self.count += 1
        except Exception as e:  # reported by finish()
            self.error = e

    def finish(self):
        self.stop_event.set()
        self.join(30)
        assert self.error is None, self.error
        assert self.count > 0


def test_live_traffic_no_false_mismatch_and_planted_found(env):
    load(env, n=20000)
    d = start(env)
    w = Writer(env.src)
    w.start()
    try:
        time.sleep(1)
        for _ in range(3):
            rep = verify_json(env, "--no-integrity")
            assert rep["ok"], json.dumps([t for t in rep["tables"] if not t["ok"]], indent=1)[:4000]
            d.check_alive()
        # a difference planted on the target, in rows the writer never touches, is still found
        env.dst_sql("UPDATE items SET name = 'planted' WHERE id = 20000;"
                    " DELETE FROM codes WHERE code = 'c020000'")
        rep = verify_json(env, "--no-integrity", expect=1)
        bad = {t["display"]: t["differences"] for t in rep["tables"] if not t["ok"]}
        assert set(bad) == {"public.items", "public.codes"}, bad
        assert [(x["kind"], x["key"]) for x in bad["public.items"]] == [("differs", {"id": "20000"})]
        assert bad["public.items"][0]["columns"][0]["target"] == "planted"
        assert [(x["kind"], x["key"]) for x in bad["public.codes"]] == [("missing", {"code": "c020000"})]
    finally:
        w.finish()
    assert w.count > 20, w.count
    env.dst_sql("UPDATE items SET name = 'name 20000' WHERE id = 20000;"
                " INSERT INTO codes VALUES ('c020000', 'label 20000')")
    env.wait_caught_up(d)
    verify_json(env, "--no-integrity", expect=0)
    d.stop()


def test_catchup_deadline_is_a_clear_error(env):
    env.both_sql("CREATE TABLE t (id int PRIMARY KEY)")
    d = start(env)
    d.stop()
    env.src_sql("INSERT INTO t VALUES (1)")
    rc, out, err = run_verify(env, extra="verify: {catchup_timeout_s: 2}\n")
    assert rc == 1
    assert "did not catch up with the verification snapshot within 2 s" in err, err


# --------------------------------------------------------------------------- integrity

RULES = """
verify:
  rules:
    orders:
      not_null: [customer_id]
      unique: [[ref]]
      range: {amount: [0, 1000]}
      regex: {email: '^[^@ ]+@[^@ ]+$'}
      allowed: {status: [new, paid, shipped]}
  foreign_keys:
    - {table: orders, columns: [product], references: products, ref_columns: [sku]}
  spot_checks:
    customers: [1, 2, 3]
    orders: [10]
"""


def test_integrity_rules_and_spot_checks(env):
    env.both_sql("""
        CREATE TABLE customers (id int PRIMARY KEY, name text);
        CREATE TABLE products (sku text PRIMARY KEY);
        CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers (id),
                             product text, ref text, amount numeric, email text, status text);
    """)
    env.src_sql("""
        INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 20) g;
        INSERT INTO products VALUES ('p1'), ('p2');
        INSERT INTO orders SELECT g, g % 20 + 1, 'p' || (g % 2 + 1), 'r' || g, g, 'u' || g || '@x.org', 'new'
          FROM generate_series(1, 50) g;
    """)
    d = start(env)
    d.stop()
    rep = verify_json(env, "--no-wait", extra=RULES, expect=0)
    kinds = sorted((c["check"], c.get("rule", c.get("name", ""))) for c in rep["checks"])
    assert ("foreign_key", "orders_customer_id_fkey") in kinds and ("rule", "regex") in kinds
    assert all(c["ok"] for c in rep["checks"])
    # orphans and rule violations, written on the target only (FK triggers off, as the sink does)
    with psycopg.connect(env.dst, autocommit=True) as c:
        c.execute("SET session_replication_role = replica")
        c.execute("""
            INSERT INTO orders VALUES (101, 999, 'p1', 'r101', 5, 'a@b.c', 'new');
            INSERT INTO orders VALUES (102, NULL, 'nope', 'r102', 5, 'a@b.c', 'new');
            INSERT INTO orders VALUES (103, 1, 'p1', 'r1', 5000, 'not an email', 'lost');
            UPDATE customers SET name = 'changed' WHERE id = 2;
        """)
    rep = verify_json(env, "--no-wait", extra=RULES, expect=1)
    checks = {(c["check"], c.get("rule") or c.get("name")): c for c in rep["checks"] if c["check"] != "spot"}

    def failed(key, n, example=None):
        c = checks[key]
        assert not c["ok"] and c["failures"] == n, c
        if example:
            assert example in c["examples"], c
        return c

    failed(("foreign_key", "orders_customer_id_fkey"), 1, {"customer_id": 999})
    failed(("foreign_key", "config.foreign_keys[0]"), 1, {"product": "nope"})
    failed(("rule", "not_null"), 1, {"id": 102, "customer_id": None})
    failed(("rule", "unique"), 1, {"ref": "r1", "rows": 2})
    failed(("rule", "range"), 1, {"id": 103, "amount": 5000})
    failed(("rule", "regex"), 1, {"id": 103, "email": "not an email"})
    failed(("rule", "allowed"), 1, {"id": 103, "status": "lost"})
    spot = {c["table"]: c for c in rep["checks"] if c["check"] == "spot"}
    assert not spot["public.customers"]["ok"] and spot["public.orders"]["ok"]
    d2 = by_key(rep, "public.customers", "id", "2")
    assert d2["kind"] == "differs" and d2.get("check") == "spot"
    kinds = env.dst_sql("SELECT kind, count(*) FROM tidemark.verify_failures WHERE run_id = %s"
                        " GROUP BY 1 ORDER BY 1", (rep["run_id"],))
    assert dict(kinds) == {"allowed": 1, "differs": 1, "extra": 3, "not_null": 1, "orphan": 2,
                           "range": 1, "regex": 1, "unique": 1}, kinds


def test_usage_errors(env):
    rc, _, err = run_verify(env, "--format", "xml")
    assert rc == 2 and "unknown format" in err
    bad = env.config(extra="verify:\n  rules:\n    t: {not_nul: [a]}\n")
    rc, _, err = run_verify(env, config_text=bad)
    assert rc == 1 and "not_nul: unknown rule" in err, err


def test_column_order_and_types_may_differ(env):
    """The target declares the columns in another order and one wider type: compared by name
    and by ::text, so it verifies clean, and a change is still found."""
    env.src_sql("CREATE TABLE t (id int PRIMARY KEY, flag boolean, n int, s text)")
    env.dst_sql("CREATE TABLE t (s text, n bigint, id int PRIMARY KEY, flag boolean)")
    env.src_sql("INSERT INTO t SELECT g, g % 2 = 0, g, 's' || g FROM generate_series(1, 2000) g")
    d = start(env)
    d.stop()
    rep = verify_json(env, "--no-wait", expect=0)
    assert table_of(rep, "public.t")["source_rows"] == 2000
    env.dst_sql("UPDATE t SET flag = NOT flag WHERE id = 1500")
    rep = verify_json(env, "--no-wait", expect=1)
    assert by_key(rep, "public.t", "id", "1500")["columns"] == [
        {"column": "flag", "source": "true", "target": "false"}]
