"""A statement the target rejects must stop the pipeline without any later
transaction committing past it: batches are pipelined, so the ones queued
behind a failed batch must roll back too (the watermark only moves from the
position the previous batch left). After the cause is fixed, a restart
converges exactly."""

import harness

N_TXNS = 3000
BAD_ID = 1500


def test_failed_batch_blocks_every_later_batch(env):
    env.src_sql("CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)")
    # The target refuses one value the source accepts, and checks slowly, so
    # that many batches sit in the target's input when the bad one fails.
    env.dst_sql("""
        CREATE FUNCTION slow_ok(v int) RETURNS bool LANGUAGE sql IMMUTABLE
            AS $$ SELECT pg_sleep(0.002) IS NOT NULL AND v <> -1 $$;
        CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL CONSTRAINT no_bad CHECK (slow_ok(v)));
    """)
    d = env.daemon(tables=["public.t"], extra="apply: {batch_max_changes: 5}\n")
    env.wait_caught_up(d)
    d.stop()

    # A backlog of one-row transactions, with the poison row in the middle: on
    # restart many small batches are in the pipeline at once.
    with env.src_connect() as c:
        for i in range(1, N_TXNS + 1):
            with c.transaction():
                c.execute("INSERT INTO t VALUES (%s, %s)", (i, -1 if i == BAD_ID else i))
    d.start()
    rc = d.wait_exit(60)
    assert rc != 0
    log = d.log_tail()
    assert "no_bad" in log and "public.t" in log, log

    # Only a prefix of the source transactions may be on the target.
    ids = [r[0] for r in env.dst_sql("SELECT id FROM t ORDER BY id")]
    assert ids == list(range(1, len(ids) + 1)), "a transaction after a gap committed"
    assert len(ids) < BAD_ID
    wm = env.watermark()
    assert wm is not None

    # Fix the target and restart: everything arrives, exactly once.
    env.dst_sql("ALTER TABLE t DROP CONSTRAINT no_bad")
    d.start()
    env.wait_caught_up(d)
    env.assert_tables_equal("t")
    d.stop()
