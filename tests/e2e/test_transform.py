"""End-to-end tests of table mappings (docs/TRANSFORMS.md) on the PostgreSQL
target: the same compiled mapping serves the initial copy and the stream, so
rows land transformed (renamed table and columns, parsed dates, state codes,
LATIN1 repaired, placeholders as NULL, shifted ids, a constant tag, filtered
rows kept out) whichever path carried them; transform errors stop the
pipeline with the row named, or go to tidemark.dead_letter in the batch's
transaction; two sources fan in to one target without colliding."""

import json
import os
import subprocess

import psycopg
from psycopg import sql

import harness

CRM_MAPPING = """
mapping:
  public.customers:
    target: crm.clients
    on_error: {on_error}
    filter: {{column: status, not_in: [D, T]}}
    columns:
      id: {{to: client_id, transform: [{{id_offset: 1000000}}]}}
      full_name:
        to: [first_name, last_name]
        transform: [{{decode: latin1}}, collapse_whitespace, {{null_if: ["", "N/A"]}}, {{parse_name: {{parts: [given, last]}}}}]
      signup:
        to: signed_up_on
        transform:
          - {{null_if: ["", "N/A"]}}
          - {{parse_date: {{formats: ["MM/DD/YYYY", "YYYY-MM-DD", "Mon D, YYYY"], prefer: mdy}}}}
      state: {{transform: [trim, {{null_if: ["", "N/A"]}}, {{state_code: {{}}}}]}}
      status: {{transform: [trim, {{map: {{values: {{A: active, I: inactive}}, case_insensitive: true}}}}]}}
    add:
      source_system: {{const: legacy_crm}}
"""

TARGET_DDL = """
    CREATE SCHEMA crm;
    CREATE TABLE crm.clients (client_id bigint PRIMARY KEY, first_name text, last_name text,
                              signed_up_on date, state char(2), status text, source_system text);
"""


def sql_ascii_source(env):
    """Recreate the test's source database as SQL_ASCII: legacy bytes in any encoding."""
    admin = env.src_cluster.conninfo()
    harness.execute(admin, sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(env.src_db)))
    harness.execute(admin, sql.SQL("CREATE DATABASE {} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'"
                                   " TEMPLATE template0").format(sql.Identifier(env.src_db)))
    env.src_sql("""
        CREATE TABLE customers (id int PRIMARY KEY, full_name text, signup text, state text, status text);
        ALTER TABLE customers REPLICA IDENTITY FULL;
    """)


def caught_up(env, d):
    """env.wait_caught_up for a SQL_ASCII source: the WAL position is cluster-wide,
    so read it through the cluster's UTF8 maintenance database."""
    harness.wait_caught_up(env.src_cluster.conninfo(), env.dst, env.pipeline, 60, d.check_alive)


def clients(env):
    return env.dst_sql("SELECT client_id, first_name, last_name, signed_up_on::text, state, status,"
                       " source_system FROM crm.clients ORDER BY client_id")


def crm_daemon(env, on_error="stop"):
    return env.daemon(tables=["public.customers"], extra=CRM_MAPPING.format(on_error=on_error))


def test_mapping_on_copy_and_stream(env):
    sql_ascii_source(env)
    env.dst_sql(TARGET_DDL)
    env.src_sql(r"""
        INSERT INTO customers VALUES
          (1, 'Smith, John', '03/04/2020', 'California', 'A'),
          (2, E'J\xfcrgen   M\xfcller', '2020-12-31', ' ny ', 'I'),
          (3, 'Test Row', 'N/A', 'N/A', 'T'),
          (4, 'Ann  Lee', 'Mar 4, 2020', 'N/A', 'A');
    """)
    d = crm_daemon(env)
    caught_up(env, d)
    env.src_sql(r"""
        INSERT INTO customers VALUES
          (5, 'Bob Stone', '12/25/2021', 'texas', 'A'),
          (6, 'Gone Guy', '2019-01-01', 'Ohio', 'D'),
          (7, E'J\xfcrgen   M\xfcller', '2020-12-31', ' ny ', 'I'),
          (8, 'Keep Me', '01/02/2003', 'Maine', 'A');
        UPDATE customers SET state = 'Oregon' WHERE id = 1;      -- plain update
        UPDATE customers SET status = 'A' WHERE id = 6;          -- into the filter: insert
        UPDATE customers SET status = 'D' WHERE id = 8;          -- out of it: delete
        DELETE FROM customers WHERE id = 3;                      -- filtered row: nothing to delete
        DELETE FROM customers WHERE id = 4;
    """)
    caught_up(env, d)
    assert clients(env) == [
        (1000001, "John", "Smith", "2020-03-04", "OR", "active", "legacy_crm"),
        (1000002, "Jürgen", "Müller", "2020-12-31", "NY", "inactive", "legacy_crm"),
        (1000005, "Bob", "Stone", "2021-12-25", "TX", "active", "legacy_crm"),
        (1000006, "Gone", "Guy", "2019-01-01", "OH", "active", "legacy_crm"),
        (1000007, "Jürgen", "Müller", "2020-12-31", "NY", "inactive", "legacy_crm"),
    ]
    d.stop()


def test_copy_and_stream_produce_identical_rows(env):
    """Issue 4 point 5: one row through the initial copy, the same row (another
    id) through the stream: the target rows differ only in the key."""
    sql_ascii_source(env)
    env.dst_sql(TARGET_DDL)
    row = r"E'Dr. Ana  van der Berg', 'Sep 9, 1999', E' washington, d.c. ', ' i '"
    env.src_sql("INSERT INTO customers VALUES (10, %s)" % row)
    d = crm_daemon(env)
    caught_up(env, d)
    env.src_sql("INSERT INTO customers VALUES (11, %s)" % row)
    caught_up(env, d)
    rows = clients(env)
    assert [r[0] for r in rows] == [1000010, 1000011]
    assert rows[0][1:] == rows[1][1:], rows
    assert rows[0][1:] == ("Ana", "van der Berg", "1999-09-09", "DC", "inactive", "legacy_crm")
    d.stop()


def plain_source(env):
    env.src_sql("CREATE TABLE customers (id int PRIMARY KEY, full_name text, signup text,"
                " state text, status text)")
    env.dst_sql(TARGET_DDL)


NO_FILTER = CRM_MAPPING.replace("    filter: {{column: status, not_in: [D, T]}}\n", "")


def test_on_error_stop_names_the_row(env):
    plain_source(env)
    env.src_sql("INSERT INTO customers VALUES (1, 'Ann Lee', '2020-01-01', 'Maine', 'A')")
    d = env.daemon(tables=["public.customers"], extra=NO_FILTER.format(on_error="stop"))
    env.wait_caught_up(d)
    env.src_sql("INSERT INTO customers VALUES (2, 'Bo Li', '2020-01-02', 'Atlantis', 'A')")
    rc = d.wait_exit(60)
    assert rc != 0
    log = d.log_tail()
    for word in ("public.customers", "id='2'", "state", "state_code", "Atlantis"):
        assert word in log, (word, log)
    assert [r[0] for r in clients(env)] == [1000001]


def test_on_error_dead_letter(env):
    plain_source(env)
    env.src_sql("""
        INSERT INTO customers VALUES (1, 'Ann Lee', '2020-01-01', 'Maine', 'A'),
                                     (2, 'Bad Copy', '2020-13-45', 'Maine', 'A');
    """)
    d = env.daemon(tables=["public.customers"], extra=NO_FILTER.format(on_error="dead_letter"))
    env.wait_caught_up(d)
    env.src_sql("""
        INSERT INTO customers VALUES (3, 'Bo Li', '2020-01-02', 'Atlantis', 'A');
        INSERT INTO customers VALUES (4, 'Cy Young', '2020-01-03', 'Iowa', 'I');
    """)
    env.wait_caught_up(d)
    env.src_sql("INSERT INTO customers VALUES (5, 'Di Ross', '2020-01-04', 'Utah', 'A')")
    env.wait_caught_up(d)
    assert [r[0] for r in clients(env)] == [1000001, 1000004, 1000005]
    dl = env.dst_sql("SELECT table_name, op, row, error, lsn IS NOT NULL, xid FROM tidemark.dead_letter"
                     " WHERE pipeline = %s ORDER BY (row->>'id')::int", (env.pipeline,))
    assert len(dl) == 2, dl
    (t1, op1, row1, err1, lsn1, xid1), (t2, op2, row2, err2, lsn2, xid2) = dl
    assert (t1, op1, xid1, lsn1) == ("public.customers", "copy", None, True)
    assert row1 == {"id": "2", "full_name": "Bad Copy", "signup": "2020-13-45", "state": "Maine", "status": "A"}
    assert "2020-13-45" in err1 and "signup" in err1
    assert (t2, op2, lsn2) == ("public.customers", "INSERT", True) and xid2 > 0
    assert row2 == {"id": "3", "full_name": "Bo Li", "signup": "2020-01-02", "state": "Atlantis", "status": "A"}
    assert "Atlantis" in err2 and "state_code" in err2
    d.check_alive()
    d.stop()


FANIN = """
mapping:
  public.customers:
    columns:
      id: {{transform: [{{id_offset: {off}}}]}}
    add:
      source: {{const: {tag}}}
  public.orders:
    columns:
      id: {{transform: [{{id_offset: {off}}}]}}
      customer_id: {{transform: [{{id_offset: {off}}}]}}
    add:
      source: {{const: {tag}}}
"""


def test_fan_in_two_sources(env):
    """Two pipelines, two source databases, one target: ids shifted per source,
    a source tag, foreign keys shifted with the keys they reference."""
    second_db = env.src_db + "_b"
    admin = env.src_cluster.conninfo()
    harness.execute(admin, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(second_db)))
    src_b = env.src_cluster.conninfo(second_db)
    ddl = """
        CREATE TABLE customers (id int PRIMARY KEY, name text);
        CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, amount numeric);
    """
    env.dst_sql("""
        CREATE TABLE customers (id bigint PRIMARY KEY, name text, source text NOT NULL);
        CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint REFERENCES customers,
                             amount numeric, source text NOT NULL);
    """)
    fill = """
        INSERT INTO customers SELECT g, '{tag}' || g FROM generate_series(1, 50) g;
        INSERT INTO orders SELECT g, g % 50 + 1, g FROM generate_series(1, 200) g;
    """
    harness.execute(env.src, ddl)
    harness.execute(src_b, ddl)
    harness.execute(env.src, fill.format(tag="a"))
    harness.execute(src_b, fill.format(tag="b"))
    tables = ["public.customers", "public.orders"]
    da = env.daemon(tables=tables, extra=FANIN.format(off=1000000, tag="a"))
    cfg_b = harness.render_config(env.pipeline + "_b", src_b, env.dst, tables=tables, log_level="debug",
                                  extra=FANIN.format(off=2000000, tag="b"))
    db = harness.Daemon(env.workdir, cfg_b, name="tidemark_b")
    env.daemons.append(db)
    try:
        env.wait_caught_up(da)
        db.start()
        harness.wait_caught_up(src_b, env.dst, env.pipeline + "_b", 60, db.check_alive)
        # Both stream at once; same source ids on both sides.
        live = """
            INSERT INTO customers SELECT g, '{tag}' || g FROM generate_series(51, 80) g;
            INSERT INTO orders SELECT g, g % 80 + 1, g FROM generate_series(201, 400) g;
            UPDATE orders SET amount = amount * 2 WHERE id % 10 = 0;
            DELETE FROM orders WHERE id % 7 = 0;
        """
        harness.execute(env.src, live.format(tag="a"))
        harness.execute(src_b, live.format(tag="b"))
        env.wait_caught_up(da)
        harness.wait_caught_up(src_b, env.dst, env.pipeline + "_b", 60, db.check_alive)

        for src, off, tag in ((env.src, 1000000, "a"), (src_b, 2000000, "b")):
            want_c = [(i + off, n, tag) for i, n in harness.execute(src, "SELECT id, name FROM customers ORDER BY id")]
            got_c = env.dst_sql("SELECT id, name, source FROM customers WHERE source = %s ORDER BY id", (tag,))
            assert got_c == want_c
            want_o = [(i + off, c + off, a, tag) for i, c, a in
                      harness.execute(src, "SELECT id, customer_id, amount FROM orders ORDER BY id")]
            got_o = env.dst_sql("SELECT id, customer_id, amount, source FROM orders WHERE source = %s"
                                " ORDER BY id", (tag,))
            assert got_o == want_o
        # Every order references a customer of its own source.
        orphans = env.dst_sql("SELECT count(*) FROM orders o LEFT JOIN customers c ON c.id = o.customer_id"
                              " WHERE c.id IS NULL OR c.source <> o.source")
        assert orphans == [(0,)]
        counts = env.dst_sql("SELECT source, count(*) FROM customers GROUP BY 1 ORDER BY 1")
        assert counts == [("a", 80), ("b", 80)]
    finally:
        db.cleanup()
        da.cleanup()

        def drop_slots():
            for (name, active) in harness.execute(admin, "SELECT slot_name, active FROM pg_replication_slots"
                                                         " WHERE database = %s", (second_db,)):
                if active:
                    harness.execute(admin, "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
                                           " WHERE slot_name = %s AND active_pid IS NOT NULL", (name,))
                    continue
                try:
                    harness.execute(admin, "SELECT pg_drop_replication_slot(%s)", (name,))
                except psycopg.Error:
                    pass
            return not harness.execute(admin, "SELECT 1 FROM pg_replication_slots WHERE database = %s",
                                       (second_db,))

        harness.wait_for(drop_slots, 30, "slots of %s to be dropped" % second_db, interval=0.1)
        harness.execute(admin, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(second_db)))


def test_max_errors_early_stops_the_initial_load(env):
    """More failed rows than copy.max_errors_early while under 10% of the load
    is copied: the pipeline stops to let someone look (issue 6's guard)."""
    plain_source(env)
    # 300k rows; the first 2% have dates the mapping cannot parse.
    env.src_sql("""
        INSERT INTO customers SELECT g, 'Name ' || g,
            CASE WHEN g <= 6000 THEN 'garbage' ELSE '2020-01-01' END, 'Maine', 'A'
        FROM generate_series(1, 300000) g;
        ANALYZE customers;
    """)
    extra = NO_FILTER.format(on_error="dead_letter") + "copy: {jobs: 1, part_size_mb: 1, max_errors_early: 50}\n"
    d = env.daemon(tables=["public.customers"], extra=extra)
    rc = d.wait_exit(120)
    assert rc != 0
    log = d.log_tail()
    assert "max_errors_early" in log and "first" in log, log
    # It stopped early: most of the table was never loaded.
    loaded = env.dst_sql("SELECT count(*) FROM crm.clients")[0][0]
    assert loaded < 100000, loaded


def test_errors_after_the_first_tenth_do_not_stop(env):
    """The same number of bad rows at the end of the load is tolerated."""
    plain_source(env)
    env.src_sql("""
        INSERT INTO customers SELECT g, 'Name ' || g,
            CASE WHEN g > 29900 THEN 'garbage' ELSE '2020-01-01' END, 'Maine', 'A'
        FROM generate_series(1, 30000) g;
        ANALYZE customers;
    """)
    extra = NO_FILTER.format(on_error="dead_letter") + "copy: {jobs: 1, part_size_mb: 1, max_errors_early: 50}\n"
    d = env.daemon(tables=["public.customers"], extra=extra)
    env.wait_caught_up(d, timeout=120)
    assert env.dst_sql("SELECT count(*) FROM crm.clients")[0][0] == 29900
    assert env.dst_sql("SELECT count(*) FROM tidemark.dead_letter WHERE pipeline = %s",
                       (env.pipeline,))[0][0] == 100
    d.stop()


def dead_letter_cmd(d, *args, config=None):
    res = subprocess.run([d.binary, "dead-letter"] + list(args) + ["--config", config or d.config_path],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    return res.returncode, res.stdout + res.stderr


def dead_letters(env):
    return env.dst_sql("SELECT row->>'id', op, error FROM tidemark.dead_letter WHERE pipeline = %s"
                       " ORDER BY (row->>'id')::int, op", (env.pipeline,))


def test_dead_letter_list_and_replay(env):
    """Rows the mapping refused (copy, INSERT, UPDATE) are listed; after the value
    map is fixed in the config, replay applies them and removes their dead letters;
    a row that still fails stays, with the new error."""
    plain_source(env)
    env.src_sql("""
        INSERT INTO customers VALUES (1, 'Ann Lee', '2020-01-01', 'Maine', 'A'),
                                     (2, 'Bad Copy', '2020-01-02', 'Iowa', 'X');
    """)
    d = env.daemon(tables=["public.customers"], extra=NO_FILTER.format(on_error="dead_letter"))
    env.wait_caught_up(d)
    env.src_sql("""
        INSERT INTO customers VALUES (3, 'Bo Li', '2020-01-03', 'Utah', 'X');
        INSERT INTO customers VALUES (4, 'Cy Young', '2020-01-04', 'Ohio', 'Q');
        UPDATE customers SET status = 'X', signup = '2021-02-03' WHERE id = 1;
    """)
    env.wait_caught_up(d)
    d.stop()
    assert [r[0] for r in clients(env)] == [1000001]
    assert [(i, op) for i, op, _ in dead_letters(env)] == [("1", "UPDATE"), ("2", "copy"), ("3", "INSERT"),
                                                           ("4", "INSERT")]

    rc, out = dead_letter_cmd(d, "list")
    assert rc == 0, out
    assert "dead letters of pipeline %s: 4" % env.pipeline in out, out
    assert "Bad Copy" in out and "public.customers" in out and "copy" in out, out
    rc, out = dead_letter_cmd(d, "list", "--json", "--table", "customers")
    assert rc == 0, out
    listed = json.loads(out)
    assert sorted((e["row"]["id"], e["op"]) for e in listed) == [("1", "UPDATE"), ("2", "copy"), ("3", "INSERT"),
                                                                 ("4", "INSERT")]
    assert all(e["table"] == "public.customers" and e["error"] and e["id"] for e in listed)
    assert all(e["lsn"] for e in listed)

    # Fix the mapping: X is a known status now; Q still is not.
    fixed = os.path.join(env.workdir, "fixed.yaml")
    with open(d.config_path) as f:
        text = f.read()
    assert "{A: active, I: inactive}" in text
    with open(fixed, "w") as f:
        f.write(text.replace("{A: active, I: inactive}", "{A: active, I: inactive, X: inactive}"))
    env.dst_sql("UPDATE tidemark.dead_letter SET error = 'old error' WHERE row->>'id' = '4'")

    rc, out = dead_letter_cmd(d, "replay", "--dry-run", config=fixed)
    assert rc == 1, out
    assert "3 dead letter(s) replayable, 1 still failing" in out, out
    assert len(dead_letters(env)) == 4 and [r[0] for r in clients(env)] == [1000001]

    rc, out = dead_letter_cmd(d, "replay", config=fixed)
    assert rc == 1, out
    assert "3 dead letter(s) replayed, 1 still failing" in out, out
    left = dead_letters(env)
    assert len(left) == 1 and left[0][:2] == ("4", "INSERT"), left
    assert "'Q'" in left[0][2] and "map" in left[0][2] and "old error" not in left[0][2], left
    assert clients(env) == [
        (1000001, "Ann", "Lee", "2021-02-03", "ME", "inactive", "legacy_crm"),
        (1000002, "Bad", "Copy", "2020-01-02", "IA", "inactive", "legacy_crm"),
        (1000003, "Bo", "Li", "2020-01-03", "UT", "inactive", "legacy_crm"),
    ]
    # Replaying again is harmless; once Q is mapped too, everything is replayed.
    with open(fixed, "w") as f:
        f.write(text.replace("{A: active, I: inactive}", "{A: active, I: inactive, X: inactive, Q: active}"))
    rc, out = dead_letter_cmd(d, "replay", "--table", "public.customers", config=fixed)
    assert rc == 0, out
    assert dead_letters(env) == []
    assert clients(env)[-1] == (1000004, "Cy", "Young", "2020-01-04", "OH", "active", "legacy_crm")


NO_POLICY = NO_FILTER.replace("    on_error: {on_error}\n", "")


def test_pipeline_default_on_error_dead_letter(env):
    """apply.on_error: dead_letter is the policy of mappings that do not set one."""
    plain_source(env)
    env.src_sql("""
        INSERT INTO customers VALUES (1, 'Ann Lee', '2020-01-01', 'Maine', 'A'),
                                     (2, 'Bad Copy', '2020-13-45', 'Maine', 'A');
    """)
    d = env.daemon(tables=["public.customers"], extra="apply: {on_error: dead_letter}\n" + NO_POLICY.format())
    env.wait_caught_up(d)
    env.src_sql("INSERT INTO customers VALUES (3, 'Bo Li', '2020-01-02', 'Atlantis', 'A'),"
                " (4, 'Cy Young', '2020-01-03', 'Iowa', 'I')")
    env.wait_caught_up(d)
    d.check_alive()
    assert [r[0] for r in clients(env)] == [1000001, 1000004]
    assert [(i, op) for i, op, _ in dead_letters(env)] == [("2", "copy"), ("3", "INSERT")]
    d.stop()


def test_table_on_error_overrides_pipeline_default(env):
    """A mapping's own on_error: stop wins over apply.on_error: dead_letter."""
    plain_source(env)
    env.src_sql("INSERT INTO customers VALUES (1, 'Ann Lee', '2020-01-01', 'Maine', 'A')")
    d = env.daemon(tables=["public.customers"],
                   extra="apply: {on_error: dead_letter}\n" + NO_FILTER.format(on_error="stop"))
    env.wait_caught_up(d)
    env.src_sql("INSERT INTO customers VALUES (2, 'Bo Li', '2020-01-02', 'Atlantis', 'A')")
    assert d.wait_exit(60) != 0
    assert "Atlantis" in d.log_tail()
    assert env.dst_sql("SELECT count(*) FROM tidemark.dead_letter")[0][0] == 0


IDMAP = """
mapping:
  public.customers:
    on_error: dead_letter
    columns:
      id: {transform: [{id_map: cust}]}
  public.orders:
    on_error: dead_letter
    columns:
      customer_id: {transform: [{id_map: {namespace: cust}}]}
"""


def test_id_map_lookup(env):
    """id_map: customer ids and the orders' foreign keys go through tidemark.id_map;
    an id without a mapping is dead-lettered and replayed once the map has it."""
    env.src_sql("""
        CREATE TABLE customers (id int PRIMARY KEY, name text);
        CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, amount numeric);
        INSERT INTO customers VALUES (1, 'one'), (2, 'two'), (9, 'nine');
        INSERT INTO orders VALUES (10, 1, 5), (11, 2, 6), (12, 9, 7);
    """)
    env.dst_sql("""
        CREATE TABLE customers (id bigint PRIMARY KEY, name text);
        CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, amount numeric);
        CREATE SCHEMA tidemark;
        CREATE TABLE tidemark.id_map (namespace text NOT NULL, old_id text NOT NULL, new_id text NOT NULL,
                                      PRIMARY KEY (namespace, old_id));
        INSERT INTO tidemark.id_map VALUES ('cust', '1', '501'), ('cust', '2', '502'), ('cust', '3', '503'),
                                           ('other', '9', '999');
    """)
    d = env.daemon(tables=["public.customers", "public.orders"], extra=IDMAP)
    env.wait_caught_up(d)
    env.src_sql("""
        INSERT INTO customers VALUES (3, 'three'), (4, 'four');
        INSERT INTO orders VALUES (13, 3, 8), (14, 4, 9);
        UPDATE customers SET name = 'ONE' WHERE id = 1;
        DELETE FROM orders WHERE id = 10;
    """)
    env.wait_caught_up(d)
    d.check_alive()
    assert env.dst_sql("SELECT id, name FROM customers ORDER BY id") == [(501, "ONE"), (502, "two"), (503, "three")]
    assert env.dst_sql("SELECT id, customer_id, amount FROM orders ORDER BY id") == [(11, 502, 6), (13, 503, 8)]
    dl = env.dst_sql("SELECT table_name, row->>'id', error FROM tidemark.dead_letter ORDER BY 1, 2")
    assert [r[:2] for r in dl] == [("public.customers", "4"), ("public.customers", "9"),
                                   ("public.orders", "12"), ("public.orders", "14")], dl
    assert all("id_map" in r[2] and "cust" in r[2] for r in dl), dl
    d.stop()

    env.dst_sql("INSERT INTO tidemark.id_map VALUES ('cust', '4', '504'), ('cust', '9', '509')")
    rc, out = dead_letter_cmd(d, "replay")
    assert rc == 0, out
    assert env.dst_sql("SELECT count(*) FROM tidemark.dead_letter")[0][0] == 0
    assert env.dst_sql("SELECT id, name FROM customers ORDER BY id") == [
        (501, "ONE"), (502, "two"), (503, "three"), (504, "four"), (509, "nine")]
    assert env.dst_sql("SELECT id, customer_id FROM orders ORDER BY id") == [(11, 502), (12, 509), (13, 503),
                                                                             (14, 504)]
    orphans = env.dst_sql("SELECT count(*) FROM orders o LEFT JOIN customers c ON c.id = o.customer_id"
                          " WHERE c.id IS NULL")
    assert orphans == [(0,)]


# --------------------------------------------------------------------------- id_map: whose fault

ORDERS_IDMAP = """
mapping:
  public.orders:
    on_error: dead_letter
    columns:
      customer_id: {transform: [{id_map: cust}]}
"""


def orders_mapped_source(env):
    """The source orders as the target must hold them: customer ids mapped i -> 1000 + i."""
    return [(i, c + 1000, a) for i, c, a in env.src_sql("SELECT id, customer_id, amount FROM orders ORDER BY id")]


def test_id_map_connection_lost_is_no_dead_letter(env):
    """The id_map lookup's own target session dies (pg_terminate_backend) while rows stream
    with on_error: dead_letter: that is a target outage, not the rows' fault. The pipeline
    reconnects and replays from its watermark; no row goes to tidemark.dead_letter."""
    env.src_sql("CREATE TABLE orders (id int PRIMARY KEY, customer_id int, amount int)")
    env.dst_sql("""
        CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, amount int);
        CREATE SCHEMA tidemark;
        CREATE TABLE tidemark.id_map (namespace text NOT NULL, old_id text NOT NULL, new_id text NOT NULL,
                                      PRIMARY KEY (namespace, old_id));
        INSERT INTO tidemark.id_map SELECT 'cust', g::text, (1000 + g)::text FROM generate_series(1, 500) g;
    """)
    d = env.daemon(tables=["public.orders"], extra=ORDERS_IDMAP)
    env.wait_caught_up(d)
    env.src_sql("INSERT INTO orders VALUES (1, 1, 10)")
    env.wait_caught_up(d)

    for round_ in range(3):
        # The session that answered the last lookup; each lookup after its death is a cache miss.
        pids = [r[0] for r in env.dst_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND query LIKE '%%tidemark.id_map%%'")]
        assert pids, "no id_map lookup session on the target"
        env.dst_sql("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) pid", (pids,))
        harness.wait_for(lambda: not env.dst_sql("SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)",
                                                 (pids,)), 30, "the lookup session to end")
        base = 100 * (round_ + 1)
        env.src_sql("INSERT INTO orders VALUES (%s, %s, 1)", (base, base))
        env.src_sql("INSERT INTO orders SELECT g, g, 2 FROM generate_series(%s::int, %s::int) g",
                    (base + 1, base + 20))
        env.wait_caught_up(d, timeout=90)

    d.check_alive()
    assert env.dst_sql("SELECT count(*) FROM tidemark.dead_letter")[0][0] == 0, \
        env.dst_sql("SELECT row::text, error FROM tidemark.dead_letter")
    assert env.dst_sql("SELECT id, customer_id, amount FROM orders ORDER BY id") == orders_mapped_source(env)
    assert "lost the target" in d.log() and "target reconnected" in d.log()
    d.stop()


ID_MAP_GATE = """
    CREATE SCHEMA tidemark;
    CREATE TABLE tidemark.id_map_rows (namespace text NOT NULL, old_id text NOT NULL, new_id text NOT NULL,
                                       PRIMARY KEY (namespace, old_id));
    INSERT INTO tidemark.id_map_rows SELECT 'cust', g::text, (1000 + g)::text FROM generate_series(1, 500) g;
    CREATE TABLE tidemark.id_map_gate (closed bool NOT NULL);
    INSERT INTO tidemark.id_map_gate VALUES (true);
    -- What a revoked grant does to a non-superuser (the tests connect as one, so REVOKE would not bite).
    CREATE FUNCTION tidemark.id_map_open() RETURNS boolean LANGUAGE plpgsql AS $$
    BEGIN
        IF (SELECT closed FROM tidemark.id_map_gate) THEN
            RAISE EXCEPTION 'permission denied for table id_map' USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN true;
    END $$;
    CREATE VIEW tidemark.id_map AS
        SELECT namespace, old_id, new_id FROM tidemark.id_map_rows WHERE tidemark.id_map_open();
"""


def test_id_map_target_error_stops_instead_of_dead_letter(env):
    """tidemark.id_map cannot be read (permission denied) with on_error: dead_letter: in the
    initial copy and on the stream the pipeline stops, no row is dead-lettered; once access is
    back a restart copies and applies everything. A genuinely missing id is still a dead letter."""
    env.src_sql("CREATE TABLE orders (id int PRIMARY KEY, customer_id int, amount int)")
    env.src_sql("INSERT INTO orders SELECT g, g, 3 FROM generate_series(1, 20) g")
    env.dst_sql("CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, amount int)")
    env.dst_sql(ID_MAP_GATE)

    def no_dead_letters():
        return env.dst_sql("SELECT count(*) FROM tidemark.dead_letter")[0][0] == 0

    d = env.daemon(tables=["public.orders"], extra=ORDERS_IDMAP)
    assert d.wait_exit(60) != 0  # the copy cannot map its rows: it stops
    assert "permission denied for table id_map" in d.log() and "not dead-lettered" in d.log(), d.log_tail()
    assert no_dead_letters()
    assert env.dst_sql("SELECT count(*) FROM orders")[0][0] == 0  # the part rolled back

    env.dst_sql("UPDATE tidemark.id_map_gate SET closed = false")
    d.start()
    env.wait_caught_up(d)
    assert no_dead_letters()
    assert env.dst_sql("SELECT id, customer_id, amount FROM orders ORDER BY id") == orders_mapped_source(env)

    env.dst_sql("UPDATE tidemark.id_map_gate SET closed = true")
    env.src_sql("INSERT INTO orders SELECT g, g, 4 FROM generate_series(21, 30) g")
    assert d.wait_exit(60) != 0  # the stream stops too
    assert no_dead_letters()

    env.dst_sql("UPDATE tidemark.id_map_gate SET closed = false")
    env.wait_slot_inactive()
    d.start()
    env.src_sql("INSERT INTO orders VALUES (31, 999, 5)")  # no mapping for 999: the row's own fault
    env.wait_caught_up(d)
    dl = env.dst_sql("SELECT row->>'id', error FROM tidemark.dead_letter")
    assert [r[0] for r in dl] == ["31"] and "no new id" in dl[0][1], dl
    assert env.dst_sql("SELECT id, customer_id, amount FROM orders ORDER BY id") == \
        [r for r in orders_mapped_source(env) if r[0] != 31]
    d.stop()
