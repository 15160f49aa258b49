"""What an operator meets when a first start goes wrong or waits:

* the HTTP port is taken, or the source's wal_level is not logical: the start
  is refused before a slot or publication exists, and leaves nothing on the
  source;
* creating the slot waits for transactions open on the source: the log says
  which (pid, age, state, query) while it waits, and SIGTERM stops the wait
  at once, leaving nothing behind;
* a runtime error is printed once.
"""

import os
import signal
import socket
import time

import pytest

import harness


def publications(env):
    return [r[0] for r in env.src_sql("SELECT pubname FROM pg_publication")]


def test_http_port_taken_leaves_nothing_on_the_source(env):
    env.both_sql("CREATE TABLE t (id int PRIMARY KEY)")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        d = env.daemon(tables=["public.t"], extra="service: {listen: \"127.0.0.1:%d\"}\n" % port)
        assert d.wait_exit() == 1
    log = d.log()
    assert str(port) in log, log
    assert not env.slot_exists(), env.slots()
    assert publications(env) == []


@pytest.fixture
def replica_cluster(clusters):
    """A third cluster whose wal_level is replica (logical decoding impossible)."""
    c = harness.Cluster(clusters.base, "walrep").initdb()
    with open(os.path.join(c.datadir, "postgresql.conf"), "a") as f:
        f.write("wal_level = replica\n")
    c.start()
    try:
        yield c
    finally:
        c.stop("immediate")


def test_wal_level_is_checked_before_anything_is_created(env, replica_cluster):
    harness.execute(replica_cluster.conninfo(), "CREATE DATABASE app")
    src = replica_cluster.conninfo("app")
    harness.execute(src, "CREATE TABLE t (id int PRIMARY KEY)")
    env.dst_sql("CREATE TABLE t (id int PRIMARY KEY)")
    d = env.daemon(config_text=harness.render_config(env.pipeline, src, env.dst, tables=["public.t"]))
    assert d.wait_exit() == 1
    log = d.log()
    assert "wal_level" in log and "replica" in log and "logical" in log, log
    assert harness.execute(src, "SELECT count(*) FROM pg_publication") == [(0,)], log


def test_slot_creation_waits_visibly_and_stops_on_sigterm(env):
    env.both_sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
    blocker = env.src_connect()
    blocker.autocommit = False
    pid = blocker.execute("SELECT pg_backend_pid()").fetchone()[0]
    blocker.execute("INSERT INTO t VALUES (1, 'open')")   # an xid, not committed
    try:
        d = env.daemon(tables=["public.t"])
        harness.wait_for(lambda: d.check_alive() or "transaction" in d.log() and ("pid %d" % pid) in d.log(),
                         30, "the log to name the open transaction")
        line = [x for x in d.log().splitlines() if "pid %d" % pid in x][0]
        assert "waits for 1 transaction" in line and "idle in transaction" in line and "INSERT INTO t" in line, line
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        rc = d.wait_exit(10)
        assert rc == 0, d.log()
        assert time.monotonic() - t0 < 10
        assert not env.slot_exists(), env.slots()
        assert publications(env) == []
    finally:
        blocker.rollback()
        blocker.close()


def test_a_runtime_error_is_printed_once(env):
    env.src_sql("CREATE TABLE t (id int PRIMARY KEY)")   # missing on the target
    d = env.daemon(tables=["public.t"])
    assert d.wait_exit() == 1
    log = d.log()
    assert log.count("does not exist on the target") == 1, log


def test_copy_slot_waits_visibly_and_stops_on_sigterm(env):
    """A table added on a later start is copied from a snapshot of its own,
    whose slot waits for open transactions just the same."""
    env.both_sql("CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE added (id int PRIMARY KEY)")
    env.src_sql("INSERT INTO added SELECT generate_series(1, 100)")
    d = env.daemon(tables=["public.t"])
    env.wait_caught_up(d)
    d.stop()
    blocker = env.src_connect()
    blocker.autocommit = False
    pid = blocker.execute("SELECT pg_backend_pid()").fetchone()[0]
    blocker.execute("INSERT INTO t VALUES (1)")
    try:
        d = env.daemon(tables=["public.t", "public.added"])
        harness.wait_for(lambda: d.check_alive() or ("pid %d" % pid) in d.log(), 30,
                         "the log to name the open transaction")
        line = [x for x in d.log().splitlines() if "pid %d" % pid in x][0]
        assert "creating slot tm_sync_" in line and "waits for 1 transaction" in line, line
        d.proc.send_signal(signal.SIGTERM)
        assert d.wait_exit(10) == 0, d.log()
    finally:
        blocker.rollback()
        blocker.close()
    d = env.daemon(tables=["public.t", "public.added"])
    env.wait_caught_up(d)
    env.assert_tables_equal("t", "added")
    d.stop()
