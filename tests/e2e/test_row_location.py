"""Which target row an UPDATE or DELETE touches, and what the apply session keeps.

* REPLICA IDENTITY FULL locates a row by its values and changes exactly one of
  several identical rows through its ctid. A ctid names a row only within one
  relation: on a partitioned target (or one with inheritance children) the
  same ctid exists in every partition, so a one-row source change must be
  applied to (tableoid, ctid), and on a plain table with children to ONLY it.
* A table with inheritance children on the target: changes of the parent
  touch only the parent's rows (ONLY), never a child's row with the same key.
* TRUNCATE of a table that is partitioned on the target.
* Server-side prepared statements: one per relation shape; dropped shapes are
  deallocated and UPDATE shapes per relation are capped, so the apply session
  does not grow with schema changes or with the number of TOAST patterns.
"""

import os
import re

import harness


def only_rows(conninfo, table):
    return harness.execute(conninfo, "SELECT * FROM ONLY %s ORDER BY 1, 2" % table)


def test_full_identity_on_a_partitioned_target(env):
    env.src_sql("CREATE TABLE m (k int, v text); ALTER TABLE m REPLICA IDENTITY FULL")
    env.dst_sql("CREATE TABLE m (k int, v text) PARTITION BY RANGE (k);"
                "CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (10);"
                "CREATE TABLE m2 PARTITION OF m FOR VALUES FROM (10) TO (20)")
    d = env.daemon(tables=["public.m"])
    env.wait_caught_up(d)
    # One row in each partition, each at ctid (0,1) of its partition.
    env.src_sql("INSERT INTO m VALUES (1, 'a')")
    env.src_sql("INSERT INTO m VALUES (11, 'a')")
    env.src_sql("INSERT INTO m VALUES (12, 'dup'), (12, 'dup')")
    env.src_sql("UPDATE m SET v = 'b' WHERE k = 1")
    env.src_sql("DELETE FROM m WHERE k = 11")
    env.src_sql("INSERT INTO m VALUES (2, 'c')")
    env.src_sql("DELETE FROM m WHERE ctid = (SELECT ctid FROM m WHERE k = 12 LIMIT 1)")
    env.wait_caught_up(d)
    env.assert_tables_equal("m")
    assert env.dst_sql("SELECT k, v FROM m ORDER BY k, v") == [(1, "b"), (2, "c"), (12, "dup")]

    # TRUNCATE of a table that is partitioned on the target (not ONLY).
    env.src_sql("TRUNCATE m")
    env.src_sql("INSERT INTO m VALUES (3, 'after')")
    env.wait_caught_up(d)
    env.assert_tables_equal("m")
    d.stop()


def test_inheritance_parent_changes_leave_children_alone(env):
    env.both_sql("""
        CREATE TABLE ih (k int, v text);
        CREATE TABLE ihc () INHERITS (ih);
        ALTER TABLE ih REPLICA IDENTITY FULL;
        ALTER TABLE ihc REPLICA IDENTITY FULL;
        CREATE TABLE ip (id int PRIMARY KEY, v text);
        CREATE TABLE ipc (PRIMARY KEY (id)) INHERITS (ip);
    """)
    d = env.daemon(tables=["public.ih", "public.ihc", "public.ip", "public.ipc"])
    env.wait_caught_up(d)
    # Identical rows in parent and child, at the same ctid in each.
    env.src_sql("INSERT INTO ih VALUES (1, 'a')")
    env.src_sql("INSERT INTO ihc VALUES (1, 'a')")
    env.src_sql("INSERT INTO ip VALUES (1, 'p')")
    env.src_sql("INSERT INTO ipc VALUES (1, 'c')")
    env.src_sql("UPDATE ONLY ih SET v = 'parent' WHERE k = 1")
    env.src_sql("UPDATE ONLY ip SET v = 'parent' WHERE id = 1")
    env.src_sql("DELETE FROM ONLY ihc WHERE k = 1")
    env.src_sql("INSERT INTO ihc VALUES (2, 'b')")
    env.src_sql("DELETE FROM ONLY ip WHERE id = 1")
    env.wait_caught_up(d)
    for t in ("ih", "ihc", "ip", "ipc"):
        assert only_rows(env.dst, t) == only_rows(env.src, t), t
    env.src_sql("TRUNCATE ONLY ih")
    env.wait_caught_up(d)
    assert only_rows(env.dst, "ih") == [] and only_rows(env.dst, "ihc") == [(2, "b")]
    d.stop()


def _live_statements(env, start):
    """Statement names tidemark's target sessions have executed and not
    deallocated, read from the server's statement log (log_statement = all)."""
    with open(env.dst_cluster.logfile, "rb") as f:
        f.seek(start)
        text = f.read().decode("utf-8", "replace")
    used = set(re.findall(r"execute (tm_s\d+)(?:/[^:]*)?: ", text))
    freed = set(re.findall(r"DEALLOCATE (tm_s\d+)", text))
    return used - freed, len(used)


def test_prepared_statements_are_bounded(env):
    env.both_sql("CREATE TABLE wide (id int PRIMARY KEY, c1 text, c2 text, c3 text, c4 text,"
                 " c5 text, c6 text)")
    env.dst_sql("ALTER DATABASE %s SET log_statement = 'all'" % env.dst_db)
    start = os.path.getsize(env.dst_cluster.logfile)
    d = env.daemon(tables=["public.wide"])
    env.wait_caught_up(d)
    # Incompressible values above the TOAST threshold: an UPDATE that leaves a
    # column alone sends it as unchanged TOAST, so each subset of changed
    # columns is an UPDATE shape of its own.
    big = "(SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 100))"
    env.src_sql("INSERT INTO wide SELECT g, %s, %s, %s, %s, %s, %s FROM generate_series(1, 3) g"
                % ((big,) * 6))
    with env.src_connect() as c:
        for mask in range(1, 64):
            sets = ", ".join("c%d = c%d || 'x'" % (i, i) for i in range(1, 7) if mask & (1 << (i - 1)))
            c.execute("UPDATE wide SET %s WHERE id = %d" % (sets, 1 + mask % 3))
    # Schema changes: each makes a new Relation message, a new set of statements.
    for i in range(10):
        env.both_sql("ALTER TABLE wide ADD COLUMN extra%d int" % i)
        env.src_sql("UPDATE wide SET extra%d = %d, c1 = c1 || 'y' WHERE id = 2" % (i, i))
        env.src_sql("DELETE FROM wide WHERE id = %d" % (100 + i))
        env.src_sql("INSERT INTO wide (id, c1) VALUES (%d, 'n')" % (200 + i))
    env.wait_caught_up(d)
    env.assert_tables_equal("wide")
    # After one more batch (deallocation follows the batch that used them).
    env.src_sql("UPDATE wide SET c2 = 'z' WHERE id = 3")
    env.wait_caught_up(d)
    live, used = _live_statements(env, start)
    # Cap of UPDATE shapes (16) + INSERT + DELETE of the current shape.
    assert used > 60, "the workload did not make the statement shapes it should (%d)" % used
    assert len(live) <= 18, "%d of %d prepared statements never deallocated" % (len(live), used)
    d.stop()
