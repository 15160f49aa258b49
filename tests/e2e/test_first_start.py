"""First starts: pipelines that start together against one target (fan-in
at boot) all come up, because creating schema `tidemark` and its tables is
serialized on the target; and a first start never drops a replication slot
it did not create: a foreign slot of the configured name is refused (and
survives), while the slot this pipeline's own interrupted first start left
behind is dropped and made again, with a log line."""

import re
import threading

import harness

ROUNDS = 10


def _table_ddl(name):
    return "CREATE TABLE %s (id int PRIMARY KEY, v text)" % name


def test_simultaneous_first_starts_share_one_target(make_env):
    """Two pipelines (own source database and table each) start at the same
    moment against one fresh target database, ROUNDS times: both must come up
    and converge every time."""
    for r in range(ROUNDS):
        a = make_env()
        b = make_env(share_target=a)
        for e, table in ((a, "ta"), (b, "tb")):
            e.src_sql(_table_ddl(table))
            e.src_sql("INSERT INTO %s SELECT g, 'copy' FROM generate_series(1, 200) g" % table)
            e.dst_sql(_table_ddl(table))
        da = a.daemon(tables=["public.ta"], start=False)
        db = b.daemon(tables=["public.tb"], start=False)
        # Both processes are spawned back to back, so their first
        # connections to the target overlap.
        gate = threading.Barrier(2)

        def spawn(d):
            gate.wait()
            d.start()
        threads = [threading.Thread(target=spawn, args=(d,)) for d in (da, db)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for e, d, table in ((a, da, "ta"), (b, db, "tb")):
            e.src_sql("INSERT INTO %s SELECT g, 'stream' FROM generate_series(201, 300) g" % table)
        for e, d, table in ((a, da, "ta"), (b, db, "tb")):
            try:
                e.wait_caught_up(d)
            except AssertionError as ex:
                raise AssertionError("round %d: %s" % (r + 1, ex)) from None
            e.assert_tables_equal(table)
        da.stop()
        db.stop()
        b.cleanup()
        a.cleanup()


def _slot_row(env):
    rows = harness.execute(env.src_cluster.conninfo(),
                           "SELECT plugin, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
                           (env.slot,))
    return rows[0] if rows else None


def test_foreign_slot_of_the_same_name_is_refused_and_kept(env):
    env.both_sql(_table_ddl("t"))
    env.src_sql("INSERT INTO t SELECT g, 'copy' FROM generate_series(1, 100) g")
    # Someone else's slot, made by hand with the name the pipeline would use.
    env.src_sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (env.slot,))
    before = _slot_row(env)
    d = env.daemon(tables=["public.t"])
    assert d.wait_exit(60) != 0, "the first start used someone else's slot\n" + d.log_tail()
    log = d.log()
    refusal = [line for line in log.splitlines() if "already exists" in line]
    assert refusal, log
    line = refusal[-1]
    assert env.slot in line and "pgoutput" in line and before[1] in line, line
    assert "SELECT pg_drop_replication_slot('%s')" % env.slot in line, line
    assert not re.search(r"dropping slot", log), log
    # The slot is untouched and nothing was started on the target.
    assert _slot_row(env) == before
    assert env.watermark() is None
    assert env.dst_sql("SELECT count(*) FROM t") == [(0,)]

    # The operator drops it as the message says: the pipeline starts.
    env.src_sql("SELECT pg_drop_replication_slot(%s)", (env.slot,))
    d.start()
    env.src_sql("INSERT INTO t SELECT g, 'stream' FROM generate_series(101, 200) g")
    env.wait_caught_up(d)
    env.assert_tables_equal("t")
    d.stop()


def test_own_leftover_slot_is_dropped_with_a_log_line(env):
    env.both_sql(_table_ddl("t"))
    env.src_sql("INSERT INTO t SELECT g, 'copy' FROM generate_series(1, 100) g")
    # The first start fails right after creating its slot: the target refuses
    # to record the start position (a trigger on tidemark.watermark).
    env.dst_sql("""
        CREATE SCHEMA tidemark;
        CREATE TABLE tidemark.watermark (pipeline text PRIMARY KEY, lsn pg_lsn NOT NULL,
                                         commit_time timestamptz, updated_at timestamptz NOT NULL DEFAULT now());
        CREATE FUNCTION tidemark.refuse() RETURNS trigger LANGUAGE plpgsql
            AS $$ BEGIN RAISE EXCEPTION 'injected: no watermark today'; END $$;
        CREATE TRIGGER refuse BEFORE INSERT ON tidemark.watermark FOR EACH ROW EXECUTE FUNCTION tidemark.refuse();
        -- ALWAYS: the daemon's sessions run with session_replication_role = replica
        ALTER TABLE tidemark.watermark ENABLE ALWAYS TRIGGER refuse;
    """)
    d = env.daemon(tables=["public.t"])
    assert d.wait_exit(60) != 0, d.log_tail()
    assert "injected: no watermark today" in d.log(), d.log_tail()
    assert env.watermark() is None
    created = _slot_row(env)
    assert created is not None, "the interrupted first start left no slot"
    # The target records which slot this pipeline created, and where.
    rec = env.dst_sql("SELECT value::jsonb->>'name', value::jsonb->>'lsn' FROM tidemark.pipeline_state"
                      " WHERE pipeline = %s AND key = 'slot'", (env.pipeline,))
    assert rec == [(env.slot, created[1])], rec

    env.dst_sql("DROP TRIGGER refuse ON tidemark.watermark")
    d.start()
    env.src_sql("INSERT INTO t SELECT g, 'stream' FROM generate_series(101, 200) g")
    env.wait_caught_up(d)
    env.assert_tables_equal("t")
    line = [l for l in d.log().splitlines() if "dropping slot %s" % env.slot in l]
    assert line and created[1] in line[0], d.log_tail()
    rec = env.dst_sql("SELECT value::jsonb->>'name' FROM tidemark.pipeline_state"
                      " WHERE pipeline = %s AND key = 'slot'", (env.pipeline,))
    assert rec == [(env.slot,)]
    d.stop()
