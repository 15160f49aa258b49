"""A change the target cannot take as the source made it must never be committed past.

An UPDATE or DELETE that matches no target row (the target diverged: someone
changed it by hand, a trigger, a bad restore) is found inside the target
transaction, before its COMMIT: the whole batch rolls back, the watermark
stays before the failed source transaction, the pipeline stops with the
table, key and LSN, and it refuses to start again until an operator has
looked (`tidemark resume`). After the repair, the failed transaction is
applied like any other and the tables converge exactly."""

import subprocess

import harness


def tidemark(*args, timeout=60):
    return subprocess.run([harness.tidemark_bin()] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout)


def status_json(config_path):
    import json
    r = tidemark("status", "--config", config_path, "--json")
    return json.loads(r.stdout)


def _diverge_and_check(env, op):
    env.both_sql("CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);"
                 "CREATE TABLE side (id int PRIMARY KEY)")
    env.src_sql("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g")
    d = env.daemon(tables=["public.t", "public.side"])
    env.wait_caught_up(d)
    env.assert_tables_equal("t", "side")

    # Someone changes the target by hand: row 42 is gone there.
    env.dst_sql("DELETE FROM t WHERE id = 42")

    # Complete transactions before the bad one, the bad one (with a row of
    # another table first), then more: one target batch may hold them all.
    with env.src_connect() as c:
        c.execute("INSERT INTO side VALUES (1)")
        with c.transaction():
            c.execute("INSERT INTO side VALUES (2)")
            if op == "update":
                c.execute("UPDATE t SET v = 'changed' WHERE id = 42")
            else:
                c.execute("DELETE FROM t WHERE id = 42")
            # The commit record comes after this: the watermark may reach it
            # (a keepalive while the transaction is decoded) but not pass it.
            before = c.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
        c.execute("INSERT INTO side VALUES (3)")

    rc = d.wait_exit(60)
    assert rc != 0, "the daemon went on past a change that matched no target row"
    log = d.log()
    assert "diverged" in log and "public.t" in log, d.log_tail()

    # Nothing of the failed transaction, and nothing after it, is on the target;
    # the watermark is before it.
    wm = env.watermark()
    assert env.lsn_ge(before, wm), "watermark %s passed the failed transaction (commit after %s)" % (wm, before)
    side = [r[0] for r in env.dst_sql("SELECT id FROM side ORDER BY id")]
    assert 2 not in side and 3 not in side, side
    assert "id=42" in log, d.log_tail()

    st = status_json(d.config_path)
    assert st["last_error"] and "diverged" in st["last_error"]["message"], st
    assert st["halted"] and st["phase"] == "halted", st

    # A restart refuses: the operator must decide.
    d.start()
    rc = d.wait_exit(60)
    assert rc != 0
    assert "tidemark resume" in d.log_tail(3000), d.log_tail()
    assert env.watermark() == wm
    st = status_json(d.config_path)
    assert st["last_error"] and "diverged" in st["last_error"]["message"], st

    # Repair the target (the row as the source had it before the change), let it resume.
    env.dst_sql("INSERT INTO t VALUES (42, 'v42')")
    r = tidemark("resume", "--config", d.config_path)
    assert r.returncode == 0, r.stderr
    d.start()
    env.wait_caught_up(d)
    env.assert_tables_equal("t", "side")
    st = status_json(d.config_path)
    assert st["last_error"] is None and st["halted"] is None, st
    d.stop()
    return d


def test_update_matching_no_row_rolls_back_and_halts(env):
    _diverge_and_check(env, "update")


def test_delete_matching_no_row_rolls_back_and_halts(env):
    _diverge_and_check(env, "delete")


def test_resume_without_repair_halts_again(env):
    env.both_sql("CREATE TABLE t (id int PRIMARY KEY, v int)")
    env.src_sql("INSERT INTO t SELECT g, g FROM generate_series(1, 10) g")
    d = env.daemon(tables=["public.t"])
    env.wait_caught_up(d)
    env.dst_sql("DELETE FROM t WHERE id = 7")
    env.src_sql("UPDATE t SET v = -7 WHERE id = 7")
    assert d.wait_exit(60) != 0
    wm = env.watermark()

    # Resuming without repairing retries the same transaction and stops again.
    r = tidemark("resume", "--config", d.config_path)
    assert r.returncode == 0, r.stderr
    d.start()
    assert d.wait_exit(60) != 0
    assert env.watermark() == wm
    assert "diverged" in d.log_tail(4000)
    assert env.dst_sql("SELECT count(*) FROM t")[0][0] == 9


def test_copy_commits_only_with_its_part_pending(env):
    """The copy path's check: a part's rows commit only together with the move of
    that part from pending to synced, inside the copy's transaction. Here another
    process claims the part while the copy runs (as a second daemon for the same
    pipeline would): the copy must roll back, not add a second set of rows."""
    env.src_sql("CREATE TABLE big (id int, v int); ALTER TABLE big REPLICA IDENTITY FULL")
    env.src_sql("INSERT INTO big SELECT g, g FROM generate_series(1, 2000) g")
    env.dst_sql("CREATE FUNCTION slow(v int) RETURNS bool LANGUAGE sql"
                " AS $$ SELECT pg_sleep(0.002) IS NOT NULL $$;"
                "CREATE TABLE big (id int, v int CHECK (slow(v)))")
    d = env.daemon(tables=["public.big"])

    def copying():
        return env.dst_sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                           " AND query LIKE 'COPY %%'")[0][0] > 0
    harness.wait_for(copying, 30, "the initial copy to run")
    import psycopg
    with psycopg.connect(env.dst) as c:
        c.execute("INSERT INTO big VALUES (0, 0)")
        n = c.execute("UPDATE tidemark.sync_state SET state = 'synced', rows = 1, sync_lsn = '0/1'"
                      " WHERE pipeline = %s AND table_name = 'big'", (env.pipeline,)).rowcount
        assert n == 1
    rc = d.wait_exit(60)
    assert rc != 0, "the copy committed its rows over a part another process had copied"
    assert "no longer pending" in d.log(), d.log_tail()
    assert env.dst_sql("SELECT count(*) FROM big")[0][0] == 1
