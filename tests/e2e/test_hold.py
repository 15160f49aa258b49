"""The stream waits for a table's initial copy at a transaction boundary.

A source transaction that touches a table still being copied must wait for
that copy (its changes would otherwise be lost or doubled). The wait must not
happen inside an open target transaction: an idle transaction pins the
target's vacuum horizon for the whole copy and keeps every earlier complete
source transaction from becoming durable. Here the copy of `big` is held by
a lock while a transaction touches `small` then `big`: the transactions before
it must be committed on the target during the wait, and no tidemark session
may sit idle in a transaction."""

import psycopg

import harness


def synced(env, table):
    rows = env.dst_sql("SELECT to_regclass('tidemark.sync_state') IS NOT NULL")
    if not rows[0][0]:
        return False
    return env.dst_sql("SELECT count(*) FROM tidemark.sync_state WHERE pipeline = %s"
                       " AND table_name = %s AND state = 'synced'", (env.pipeline, table))[0][0] > 0


def test_stream_waits_for_a_copy_outside_any_target_transaction(env):
    env.both_sql("CREATE TABLE small (id int PRIMARY KEY, v text);"
                 "CREATE TABLE big (id int PRIMARY KEY, v text)")
    env.src_sql("INSERT INTO small SELECT g, 's' FROM generate_series(1, 100) g")
    env.src_sql("INSERT INTO big SELECT g, 'b' FROM generate_series(1, 2000) g")
    # SHARE lets the startup checks read `big` but holds its COPY.
    locker = psycopg.connect(env.dst)
    locker.execute("LOCK TABLE big IN SHARE MODE")
    try:
        d = env.daemon(tables=["public.small", "public.big"])
        harness.wait_for(lambda: d.check_alive() or synced(env, "small"), 60, "small to be copied")

        with env.src_connect() as c:
            c.execute("INSERT INTO small VALUES (1001, 'before')")
            with c.transaction():
                c.execute("INSERT INTO small VALUES (1002, 'with big')")
                c.execute("INSERT INTO big VALUES (5001, 'waits')")
        harness.wait_for(lambda: d.check_alive() or "waits for the initial copy" in d.log(), 60,
                         "the stream to wait for big's copy")

        # The complete transaction before the waiting one is durable on the target...
        harness.wait_for(lambda: env.dst_sql("SELECT count(*) FROM small WHERE id = 1001")[0][0] == 1,
                         30, "the transaction before the wait to commit on the target")
        # ...the waiting one is not there at all, and nothing idles in a transaction.
        assert env.dst_sql("SELECT count(*) FROM small WHERE id = 1002")[0][0] == 0
        idle = env.dst_sql("SELECT pid, query FROM pg_stat_activity WHERE datname = current_database()"
                           " AND application_name = 'tidemark' AND state LIKE 'idle in transaction%%'")
        assert idle == [], idle
        assert not synced(env, "big")
    finally:
        locker.close()

    env.src_sql("UPDATE big SET v = 'after' WHERE id % 100 = 0")
    env.wait_caught_up(d)
    env.assert_tables_equal("small", "big")
    d.stop()
