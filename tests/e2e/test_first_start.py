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
