"""End-to-end streaming tests: initial copy plus live changes from a source
PostgreSQL to a target PostgreSQL must arrive identical (compared by content),
across restarts and source reconnects; bad setups must be refused clearly."""

import harness

LONG_BODY = "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 32768) g)"  # 1 MiB, incompressible


def start_and_catch_up(env, **kw):
    d = env.daemon(**kw)
    env.wait_caught_up(d)
    return d


# --------------------------------------------------------------------------- (a)

def test_dml_and_truncate_several_tables(env):
    env.both_sql("""
        CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text);
        CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, amount numeric(12,2), note text);
        CREATE TABLE events (id bigserial PRIMARY KEY, kind text, payload jsonb);
        CREATE TABLE scratch (id int PRIMARY KEY, v text);
    """)
    env.src_sql("INSERT INTO customers SELECT g, 'c' || g, 'c' || g || '@example.com' "
                "FROM generate_series(1, 200) g")
    d = start_and_catch_up(env)
    env.src_sql("""
        INSERT INTO customers SELECT g, 'c' || g, NULL FROM generate_series(201, 400) g;
        INSERT INTO orders SELECT g, g % 400 + 1, g * 1.25, repeat('x', g % 50) FROM generate_series(1, 2000) g;
        INSERT INTO events (kind, payload) SELECT 'k' || (g % 7), jsonb_build_object('g', g) FROM generate_series(1, 500) g;
        INSERT INTO scratch SELECT g, 'v' FROM generate_series(1, 100) g;
    """)
    with env.src_connect() as c:
        with c.transaction():
            c.execute("UPDATE customers SET email = upper(name) WHERE id % 3 = 0")
            c.execute("DELETE FROM orders WHERE id % 5 = 0")
            c.execute("UPDATE orders SET amount = amount + 1, note = NULL WHERE id % 7 = 0")
        c.execute("DELETE FROM customers WHERE id BETWEEN 50 AND 60")
        c.execute("TRUNCATE scratch")
        c.execute("INSERT INTO scratch VALUES (1, 'after truncate')")
        c.execute("UPDATE events SET payload = payload || '{\"u\": true}' WHERE id % 2 = 0")
        c.execute("TRUNCATE events, orders")
        c.execute("INSERT INTO orders VALUES (1, 1, 9.99, 'post-truncate')")
    env.wait_caught_up(d)
    env.assert_tables_equal("customers", "orders", "events", "scratch")
    d.stop()


# --------------------------------------------------------------------------- (b)

def test_primary_key_update(env):
    env.both_sql("""
        CREATE TABLE t (id int PRIMARY KEY, v text);
        CREATE TABLE doc (id int PRIMARY KEY, rev int, body text);
        ALTER TABLE doc ALTER body SET STORAGE EXTERNAL;
    """)
    env.src_sql("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 500) g")
    env.src_sql("INSERT INTO doc VALUES (1, 0, %s)" % LONG_BODY)
    d = start_and_catch_up(env)
    env.src_sql("UPDATE t SET id = id + 1000")
    env.src_sql("UPDATE t SET id = -id, v = v || '!' WHERE id % 10 = 0")
    # Key change while a TOASTed column is unchanged ('u' in the new tuple).
    env.src_sql("UPDATE doc SET id = 2, rev = rev + 1")
    env.wait_caught_up(d)
    env.assert_tables_equal("t", "doc")
    assert env.dst_sql("SELECT id, length(body) FROM doc") == [(2, 1 << 20)]
    d.stop()


# --------------------------------------------------------------------------- (c)

def test_replica_identity_full_duplicates(env):
    env.both_sql("""
        CREATE TABLE dup (a int, b text, c numeric);
        ALTER TABLE dup REPLICA IDENTITY FULL;
    """)
    env.src_sql("INSERT INTO dup VALUES (1, 'x', 1.0), (1, 'x', 1.0), (1, 'x', 1.0), (2, NULL, NULL), "
                "(2, NULL, NULL), (3, 'y', 3)")
    d = start_and_catch_up(env)
    env.src_sql("INSERT INTO dup VALUES (4, 'z', 4), (4, 'z', 4)")
    # Change exactly one of several identical rows, then delete exactly one.
    env.src_sql("UPDATE dup SET b = 'changed' WHERE ctid = (SELECT min(ctid) FROM dup WHERE a = 1)")
    env.src_sql("DELETE FROM dup WHERE ctid = (SELECT min(ctid) FROM dup WHERE a = 1 AND b = 'x')")
    # Rows with NULLs in the identity must still be found.
    env.src_sql("DELETE FROM dup WHERE ctid = (SELECT min(ctid) FROM dup WHERE a = 2)")
    env.src_sql("UPDATE dup SET c = 5 WHERE ctid = (SELECT max(ctid) FROM dup WHERE a = 4)")
    env.wait_caught_up(d)
    env.assert_tables_equal("dup")
    assert env.dst_sql("SELECT count(*) FROM dup WHERE a = 1") == [(2,)]
    d.stop()


# --------------------------------------------------------------------------- (d)

def test_unchanged_toast_survives_update(env):
    env.both_sql("""
        CREATE TABLE doc (id int PRIMARY KEY, counter int, body text, small text);
        ALTER TABLE doc ALTER body SET STORAGE EXTERNAL;
    """)
    env.src_sql("INSERT INTO doc VALUES (1, 0, %s, 'copied')" % LONG_BODY)
    d = start_and_catch_up(env)
    env.src_sql("INSERT INTO doc VALUES (2, 0, %s || 'streamed', 'streamed')" % LONG_BODY)
    env.src_sql("UPDATE doc SET counter = counter + 1")
    env.src_sql("UPDATE doc SET small = NULL WHERE id = 2")
    env.src_sql("UPDATE doc SET counter = counter + 1, small = 'again'")
    env.wait_caught_up(d)
    env.assert_tables_equal("doc")
    src = env.src_sql("SELECT id, counter, md5(body), length(body) FROM doc ORDER BY id")
    assert env.dst_sql("SELECT id, counter, md5(body), length(body) FROM doc ORDER BY id") == src
    assert src[0][3] == 1 << 20
    d.stop()


# --------------------------------------------------------------------------- (e)

def test_null_versus_empty_string(env):
    env.both_sql("CREATE TABLE ne (id int PRIMARY KEY, a text, b text, c bytea)")
    env.src_sql("INSERT INTO ne VALUES (1, NULL, '', ''), (2, '', NULL, NULL), (3, 'NULL', '\\N', '\\x')")
    d = start_and_catch_up(env)
    env.src_sql("INSERT INTO ne VALUES (4, NULL, '', ''), (5, '', NULL, NULL), (6, 'null', E'\\\\N', '\\x00')")
    env.src_sql("UPDATE ne SET a = '' WHERE a IS NULL")
    env.src_sql("UPDATE ne SET b = NULL WHERE b = ''")
    env.wait_caught_up(d)
    env.assert_tables_equal("ne")
    q = "SELECT id, a IS NULL, b IS NULL, c IS NULL, a, b, c FROM ne ORDER BY id"
    assert env.dst_sql(q) == env.src_sql(q)
    d.stop()


# --------------------------------------------------------------------------- (f)

ALL_TYPES_DDL = """
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'with space', 'ünï"code');
    CREATE DOMAIN posint AS int CHECK (VALUE > 0);
    CREATE TABLE alltypes (
        id int PRIMARY KEY,
        c_int2 int2, c_int4 int4, c_int8 int8, c_numeric numeric, c_num_typed numeric(10, 3),
        c_float8 float8, c_float4 float4, c_text text, c_varchar varchar(10), c_char char(5),
        c_bytea bytea, c_bool bool, c_date date, c_time time, c_ts timestamp, c_tstz timestamptz,
        c_interval interval, c_uuid uuid, c_json json, c_jsonb jsonb, c_int_arr int[], c_text_arr text[],
        c_mood mood, c_posint posint, c_inet inet
    );
"""

ALL_TYPES_ROWS = [
    # minima, NaN, +Infinity, emoji and control characters, 'infinity' dates
    """(%(id)s + 1, -32768, -2147483648, -9223372036854775808, 'NaN', -1234567.125, 'Infinity', '-Infinity',
        E'emoji \U0001F600 tab\\t cr\\r lf\\n bell\\x07 esc\\x1b unit\\x1f backslash\\\\ quote" apos'' end',
        'ünïcødé', 'ab', '\\x00ff10', true, 'infinity', '00:00:00', '-infinity', 'infinity',
        '1 year 2 mons 3 days 04:05:06.789', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
        '{"a" :  1,   "b":[1, 2 ] ,"a":2}', '{"b": [1, 2], "a": {"nested": null}}', '{1,NULL,3}',
        '{"a",NULL,"","with space","quo\\"te","NULL","back\\\\slash"}', 'with space', 1, '192.168.0.1/24')""",
    # maxima, huge numeric, -Infinity, '-infinity'
    """(%(id)s + 2, 32767, 2147483647, 9223372036854775807,
        (repeat('9', 1000) || '.' || repeat('0', 999) || '1')::numeric, 9999999.999, '-Infinity', 'Infinity',
        repeat('long text ', 1000), '', '     ', '\\x', false, '-infinity', '23:59:59.999999', 'infinity',
        '-infinity', '-178000000 years', '00000000-0000-0000-0000-000000000000', 'null', '"just a string"',
        '{}', '{}', 'sad', 2147483647, '::1')""",
    # negative zero, NaN float, tiny/denormal numbers, BC dates
    """(%(id)s + 3, 0, 0, 0, '-0.000', 0, '-0', 'NaN', ' ', 'x', 'x', decode(repeat('00ff', 1000), 'hex'), NULL,
        '4713-01-01 BC', '12:00', '0001-01-01 00:00:00 BC', '294276-12-31 23:59:59.999999+00',
        '-1 days -00:00:00.000001', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '[1, 2.50, 1e3, -0]',
        '[1, 2.50, 1e3, -0, 1.0E+2]', '{NULL}', '{NULL}', 'ünï"code', 42, '2001:db8::/32')""",
    """(%(id)s + 4, 1, 2, 3, 0.1, 0.5, 5e-324, 1.17549435e-38, 'plain', 'v', 'c', '\\x5c', true,
        '2000-02-29', '01:02:03', '2024-02-29 12:34:56.789012', '2024-06-30 23:59:59.5+05:45',
        '0', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{}', '{}', '{2147483647,-2147483648}',
        '{"{braces}","comma,here","semi;colon"}', 'ok', 3, '10.0.0.0/8')""",
    """(%(id)s + 5, 2, 3, 4, 0.30000000000000004, 1, 0.30000000000000004, 3.4028235e38, 'plain2', 'v', 'c', '\\x',
        false, '1970-01-01', '00:00:00.000001', '1970-01-01 00:00:00', '1970-01-01 00:00:00+00',
        '1 mon -1 days', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"k": "\\u00e9\\n"}',
        '{"k": "\\u00e9\\n", "empty": ""}', '{{1,2},{3,NULL}}', '{{"a","b"},{NULL,""}}', 'sad', 7, '0.0.0.0/0')""",
    # all NULL except the key
    """(%(id)s + 6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
        NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)""",
]


def insert_all_types(env, base):
    env.src_sql("INSERT INTO alltypes VALUES " + ",\n".join(r % {"id": base} for r in ALL_TYPES_ROWS))


def test_all_types(env):
    env.both_sql(ALL_TYPES_DDL)
    insert_all_types(env, 0)  # copied by the initial sync
    d = start_and_catch_up(env)
    env.assert_tables_equal("alltypes")
    insert_all_types(env, 100)  # streamed
    env.src_sql("""UPDATE alltypes SET c_text = c_text || ' updated', c_float8 = '-0', c_jsonb = '{"z": [null]}',
                   c_text_arr = '{NULL,NULL}', c_mood = 'ok', c_tstz = '-infinity' WHERE id IN (101, 104)""")
    env.src_sql("UPDATE alltypes SET c_numeric = 'NaN', c_int_arr = NULL WHERE id = 102")
    env.src_sql("DELETE FROM alltypes WHERE id = 103")
    env.wait_caught_up(d)
    env.assert_tables_equal("alltypes")
    env.assert_column_text_equal("alltypes", order_by="id")
    # json keeps its whitespace and duplicate keys byte for byte.
    q = "SELECT id, c_json::text FROM alltypes WHERE c_json IS NOT NULL ORDER BY id"
    assert env.dst_sql(q) == env.src_sql(q)
    d.stop()


# --------------------------------------------------------------------------- (g)

def test_existing_rows_are_copied(env):
    env.both_sql("""
        CREATE TABLE big (id int PRIMARY KEY, v text, n numeric);
        CREATE TABLE empty_one (id int PRIMARY KEY);
        CREATE TABLE single (k text PRIMARY KEY, v jsonb);
        CREATE TABLE composite_pk (a int, b text, v int, PRIMARY KEY (a, b));
    """)
    env.src_sql("""
        INSERT INTO big SELECT g, md5(g::text), g / 7.0 FROM generate_series(1, 20000) g;
        INSERT INTO single VALUES ('only', '{"x": 1}');
        INSERT INTO composite_pk SELECT g % 10, 'b' || g, g FROM generate_series(1, 1000) g;
    """)
    d = start_and_catch_up(env)
    env.assert_tables_equal("big", "empty_one", "single", "composite_pk")
    env.src_sql("""
        INSERT INTO empty_one VALUES (1), (2);
        UPDATE big SET v = 'changed' WHERE id % 1000 = 0;
        UPDATE composite_pk SET v = -v WHERE a = 3;
        DELETE FROM composite_pk WHERE a = 4;
    """)
    env.wait_caught_up(d)
    env.assert_tables_equal("big", "empty_one", "single", "composite_pk")
    d.stop()


# --------------------------------------------------------------------------- (h)

def test_non_empty_target_table_refused(env):
    env.both_sql("""
        CREATE TABLE fine (id int PRIMARY KEY);
        CREATE TABLE occupied_table (id int PRIMARY KEY, v text);
    """)
    env.src_sql("INSERT INTO occupied_table VALUES (1, 'source')")
    env.dst_sql("INSERT INTO occupied_table VALUES (99, 'already here')")
    d = env.daemon()
    rc = d.wait_exit(60)
    assert rc != 0, "daemon accepted a non-empty target table"
    assert "occupied_table" in d.log(), d.log_tail()
    assert env.dst_sql("SELECT * FROM occupied_table") == [(99, "already here")]


# --------------------------------------------------------------------------- (i)

def test_table_without_identity_refused(env):
    env.both_sql("""
        CREATE TABLE has_pk (id int PRIMARY KEY);
        CREATE TABLE no_identity (a int, b text);
    """)
    d = env.daemon()
    rc = d.wait_exit(60)
    assert rc != 0, "daemon started with a table it cannot replicate updates/deletes for"
    log = d.log()
    assert "no_identity" in log, log
    assert "REPLICA IDENTITY" in log, log


# --------------------------------------------------------------------------- (j)

def test_sigterm_and_restart_resume(env):
    env.both_sql("""
        CREATE TABLE items (id int PRIMARY KEY, v int);
        CREATE TABLE log_rows (n int, msg text);
        ALTER TABLE log_rows REPLICA IDENTITY FULL;
    """)
    sampler = harness.WatermarkSampler(env.dst, env.pipeline)
    sampler.start()
    env.src_sql("INSERT INTO items SELECT g, g FROM generate_series(1, 1000) g")
    d = start_and_catch_up(env)
    env.src_sql("INSERT INTO log_rows SELECT g % 10, 'batch1' FROM generate_series(1, 500) g")
    env.src_sql("UPDATE items SET v = v + 1 WHERE id <= 100")
    env.wait_caught_up(d)
    d.stop()
    wm1 = env.watermark()

    # Changes made while the daemon is down arrive after the restart, once.
    env.src_sql("INSERT INTO log_rows SELECT g % 10, 'batch2' FROM generate_series(1, 500) g")
    env.src_sql("DELETE FROM items WHERE id > 900")
    d.start()
    env.wait_caught_up(d)
    assert env.lsn_ge(env.watermark(), wm1)
    env.assert_tables_equal("items", "log_rows")
    d.stop()

    # A restart with nothing new changes nothing.
    wm2 = env.watermark()
    d.start()
    env.wait_caught_up(d)
    env.src_sql("INSERT INTO log_rows VALUES (1, 'batch3')")
    env.wait_caught_up(d)
    assert env.lsn_ge(env.watermark(), wm2)
    env.assert_tables_equal("items", "log_rows")
    assert env.dst_sql("SELECT msg, count(*) FROM log_rows GROUP BY 1 ORDER BY 1") == \
        [("batch1", 500), ("batch2", 500), ("batch3", 1)]
    d.stop()
    sampler.finish()
    assert sampler.samples > 0


# --------------------------------------------------------------------------- (k)

def test_source_restart_reconnects(env):
    env.both_sql("CREATE TABLE r (id int PRIMARY KEY, phase text)")
    env.src_sql("INSERT INTO r SELECT g, 'copy' FROM generate_series(1, 100) g")
    d = start_and_catch_up(env)
    env.src_sql("INSERT INTO r SELECT g, 'before' FROM generate_series(101, 200) g")
    env.wait_caught_up(d)
    for round_no in range(2):
        env.src_sql("INSERT INTO r SELECT g, 'unconfirmed' FROM generate_series(%s::int, %s::int) g",
                    (1000 * (round_no + 1), 1000 * (round_no + 1) + 99))
        env.restart_source()
        env.src_sql("INSERT INTO r SELECT g, 'after' FROM generate_series(%s::int, %s::int) g",
                    (1000 * (round_no + 1) + 100, 1000 * (round_no + 1) + 199))
        env.src_sql("UPDATE r SET phase = phase || '+' WHERE id %% 10 = %s", (round_no,))
        env.wait_caught_up(d, timeout=90)
        d.check_alive()
    env.assert_tables_equal("r")
    d.stop()


# --------------------------------------------------------------------------- (l)

def test_quoted_identifiers_via_tables_list(env):
    env.both_sql("""
        CREATE SCHEMA "Sales Dept";
        CREATE TABLE "Sales Dept"."Order Lines" ("Line ID" int PRIMARY KEY, "Qty" int, "Note" text);
        CREATE TABLE public.ignored (id int PRIMARY KEY);
    """)
    env.src_sql("""INSERT INTO "Sales Dept"."Order Lines" SELECT g, g * 2, 'n' || g FROM generate_series(1, 50) g""")
    env.src_sql("INSERT INTO public.ignored VALUES (1)")
    d = start_and_catch_up(env, tables=['"Sales Dept"."Order Lines"'])
    env.src_sql("""INSERT INTO "Sales Dept"."Order Lines" VALUES (51, 1, 'streamed');
                   UPDATE "Sales Dept"."Order Lines" SET "Qty" = 0 WHERE "Line ID" < 5;
                   DELETE FROM "Sales Dept"."Order Lines" WHERE "Line ID" = 10;
                   INSERT INTO public.ignored VALUES (2);""")
    env.wait_caught_up(d)
    env.assert_tables_equal('"Sales Dept"."Order Lines"')
    assert env.dst_sql("SELECT count(*) FROM public.ignored") == [(0,)]
    d.stop()
