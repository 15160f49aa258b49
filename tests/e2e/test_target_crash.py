"""A target crash must not lose what tidemark told the source was flushed.

The flush position sent to the source lets it discard WAL: it may only cover
commits that survive a crash of the target. A target running with
synchronous_commit = off (the harness's clusters do, like many tuned targets)
acknowledges a COMMIT before its WAL is written; an immediate shutdown then
loses it. tidemark's apply sessions therefore commit synchronously, and every
stream (re)start refuses a slot that has confirmed past the target's
watermark instead of letting the walsender silently start further on."""

import harness


def test_immediate_target_crash_after_flush_report_loses_nothing(env):
    env.both_sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
    d = env.daemon(tables=["public.t"])
    env.wait_caught_up(d)
    admin = env.dst_cluster.conninfo()
    # Keep asynchronous commits unwritten for long: the window is deterministic.
    harness.execute(admin, "ALTER SYSTEM SET wal_writer_delay = '10s'")
    harness.execute(admin, "SELECT pg_reload_conf()")
    try:
        with env.src_connect() as c:
            for i in range(1, 51):
                c.execute("INSERT INTO t VALUES (%s, 'row')", (i,))
            end = c.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]

        def confirmed():
            d.check_alive()
            rows = harness.execute(env.src_cluster.conninfo(),
                                   "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots"
                                   " WHERE slot_name = %s", (end, env.slot))
            return rows and rows[0][0]
        # The source has been told everything up to `end` is flushed on the target...
        harness.wait_for(confirmed, 60, "the slot to confirm the writes", interval=0.01)
        # ...and the target crashes right then.
        env.dst_cluster.stop("immediate")
        env.dst_cluster.start()
    finally:
        harness.execute(admin, "ALTER SYSTEM RESET wal_writer_delay")
        harness.execute(admin, "SELECT pg_reload_conf()")

    env.src_sql("INSERT INTO t VALUES (1000, 'after the crash')")
    env.wait_caught_up(d, timeout=90)
    env.assert_tables_equal("t")
    assert env.dst_sql("SELECT count(*) FROM t")[0][0] == 51
    d.stop()


def test_stream_restart_refuses_a_slot_confirmed_past_the_watermark(env):
    """Defence in depth: whatever made the target's watermark fall behind what
    the slot confirmed (here: set back by hand, then the target session cut),
    the reconnecting stream must stop and say so, not skip the difference."""
    env.both_sql("CREATE TABLE t (id int PRIMARY KEY)")
    d = env.daemon(tables=["public.t"])
    env.src_sql("INSERT INTO t SELECT generate_series(1, 10)")
    env.wait_caught_up(d)
    wm = env.watermark()
    env.src_sql("INSERT INTO t VALUES (11)")
    env.wait_caught_up(d)
    env.dst_sql("UPDATE tidemark.watermark SET lsn = %s WHERE pipeline = %s", (wm, env.pipeline))
    env.dst_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = 'tidemark' AND pid <> pg_backend_pid()")
    rc = d.wait_exit(60)
    assert rc != 0
    assert "beyond the target's" in d.log() or "has confirmed" in d.log(), d.log_tail()
    assert "lost transactions" in d.log(), d.log_tail()
