"""The loop never waits on the network (invariant 8). A small TCP forwarder
stands between the daemon and a cluster (the clusters listen only on Unix
sockets); switched to a black hole it drops its connections and stops
accepting, so a new connection hangs in the listen backlog the way one to
a host that drops packets does. While the daemon tries to reconnect,
/metrics and /healthz keep answering and the systemd watchdog keeps being
pinged; the default connect_timeout ends each attempt. Restored, the daemon
reconnects and the tables converge. An id_map lookup that waits on the
target (its table locked) does not stop the loop either.

Every wait has a deadline (harness.wait_for); nothing sleeps blindly."""

import os
import queue
import selectors
import socket
import threading
import time

import psycopg

import harness
from test_service import (NotifyListener, http_get, metric, notify_env, parse_metrics, service_config,
                          start_service_daemon)

CONNECT_TIMEOUT_S = 10  # connectors/pg/pgconn.h: PGCONN_CONNECT_TIMEOUT_S
WATCHDOG_USEC = 6000000  # the daemon pings every 3 s


class Forwarder(threading.Thread):
    """127.0.0.1:port -> a cluster's Unix socket; black_hole() drops every
    forwarded connection and stops accepting (connects then hang in the
    backlog), restore() accepts again (the backlog first)."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.unix_path = os.path.join(cluster.host, ".s.PGSQL.%d" % cluster.port)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.cmds = queue.Queue()
        self.peers = {}  # socket -> its other end
        self.accepting = False
        self.stopped = False
        self.done = {}  # command -> threading.Event

    def conninfo(self, cluster, dbname):
        return "host=127.0.0.1 port=%d dbname=%s user=%s" % (self.port, dbname, cluster.user)

    # -- control (any thread): each returns once the forwarder thread did it
    def _command(self, cmd):
        ev = threading.Event()
        self.cmds.put((cmd, ev))
        self.wake_w.send(b"x")
        assert ev.wait(10), "forwarder did not %s" % cmd

    def black_hole(self):
        self._command("black_hole")

    def restore(self):
        self._command("restore")

    def stop(self):
        if self.is_alive():
            self._command("stop")
            self.join(10)

    # -- the forwarder thread
    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except BlockingIOError:
                return
            u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                u.connect(self.unix_path)
            except OSError:
                c.close()
                u.close()
                continue
            self.peers[c], self.peers[u] = u, c
            self.sel.register(c, selectors.EVENT_READ)
            self.sel.register(u, selectors.EVENT_READ)

    def _close(self, s):
        other = self.peers.pop(s, None)
        for x in (s, other):
            if x is None:
                continue
            self.peers.pop(x, None)
            try:
                self.sel.unregister(x)
            except (KeyError, ValueError):
                pass
            x.close()

    def _set_accepting(self, on):
        if on and not self.accepting:
            self.sel.register(self.lsock, selectors.EVENT_READ)
        elif not on and self.accepting:
            self.sel.unregister(self.lsock)
        self.accepting = on

    def _handle(self, cmd):
        if cmd == "black_hole":
            self._set_accepting(False)
            for s in list(self.peers):
                self._close(s)
        elif cmd == "restore":
            self._set_accepting(True)
            self._accept()
        elif cmd == "stop":
            self._set_accepting(False)
            for s in list(self.peers):
                self._close(s)
            self.stopped = True

    def start(self):
        self.sel.register(self.wake_r, selectors.EVENT_READ)
        self._set_accepting(True)
        super().start()
        return self

    def run(self):
        while not self.stopped:
            for key, _ in self.sel.select(0.5):
                s = key.fileobj
                if s is self.wake_r:
                    self.wake_r.recv(64)
                    while not self.cmds.empty():
                        cmd, ev = self.cmds.get()
                        self._handle(cmd)
                        ev.set()
                elif s is self.lsock:
                    self._accept()
                elif s in self.peers:
                    try:
                        data = s.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        self._close(s)
                        continue
                    try:
                        self.peers[s].sendall(data)
                    except OSError:
                        self._close(s)
        self.lsock.close()


def keep_answering(port, daemon, until, timeout, what):
    """Poll /metrics and /healthz until until() holds (deadline: timeout);
    every request must be answered within 2 s. Returns the last samples."""
    failures, last = [], [None]

    def check():
        daemon.check_alive()
        r = http_get(port, "/metrics", timeout=2)
        h = http_get(port, "/healthz", timeout=2)
        if r is None or r[0] != 200:
            failures.append(("/metrics", r))
        else:
            last[0] = parse_metrics(r[2])
        if h is None:
            failures.append(("/healthz", h))
        assert not failures, "the HTTP endpoint stopped answering %s: %r\n%s" % (
            what, failures[:3], daemon.log_tail())
        return until()

    harness.wait_for(check, timeout, what, interval=0.3)
    return last[0]


def watchdog_gaps(listener, t0, t1):
    """The longest gap between WATCHDOG=1 pings in [t0, t1] (edges included)."""
    times = [t for t, f in listener.snapshot() if f.get("WATCHDOG") == "1" and t0 <= t <= t1]
    edges = [t0] + times + [t1]
    return max(b - a for a, b in zip(edges, edges[1:]))


def log_count(daemon, text):
    return daemon.log().count(text)


def write_rows(env, lo, hi, tag):
    env.src_sql("INSERT INTO t SELECT g, %s FROM generate_series(%s::int, %s::int) g", (tag, lo, hi))


def outage_while_serving(env, fwd, port, d, listener, retry_line):
    """Black-hole the forwarder; while two reconnect attempts run into the
    connect timeout the endpoint answers and the watchdog is pinged; then
    restore it. Returns the metrics seen during the outage."""
    before = log_count(d, retry_line)
    t0 = time.monotonic()
    fwd.black_hole()
    write_rows(env, 1001, 1500, "during")
    env.src_sql("UPDATE t SET v = 'updated' WHERE id % 7 = 0")
    samples = keep_answering(port, d, lambda: log_count(d, retry_line) >= before + 2,
                             4 * CONNECT_TIMEOUT_S + 30, "during a black-holed peer")
    t1 = time.monotonic()
    assert t1 - t0 > CONNECT_TIMEOUT_S, "the outage did not outlast a connect attempt"
    gap = watchdog_gaps(listener, t0, t1)
    assert gap < WATCHDOG_USEC / 1e6, (
        "the watchdog went %.1f s without a ping (systemd kills after %.0f s)" % (gap, WATCHDOG_USEC / 1e6))
    assert "timeout expired" in d.log(), "a connect attempt should end at connect_timeout\n" + d.log_tail()
    fwd.restore()
    return samples


def test_black_holed_target_keeps_the_loop_serving(env):
    """Target behind the forwarder: black-holed, the target reconnect (connect,
    watermark, START) runs off the loop and ends at the default connect
    timeout; /metrics, /healthz (503) and the watchdog keep going; restored,
    the stream resumes from the target's watermark and the tables converge."""
    env.both_sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
    write_rows(env, 1, 1000, "before")
    fwd = Forwarder(env.dst_cluster).start()
    listener = NotifyListener()
    listener.start()
    try:
        port = harness.free_port()
        cfg = harness.render_config(env.pipeline, env.src, fwd.conninfo(env.dst_cluster, env.dst_db),
                                    log_level="debug",
                                    extra="service:\n  listen: \"127.0.0.1:%d\"\n  heartbeat_interval_s: 1\n" % port)
        d = start_service_daemon(env, port, config_text=cfg, environ=notify_env(listener, WATCHDOG_USEC))
        listener.wait_for("READY", 60, d)
        env.wait_caught_up(d)
        samples = outage_while_serving(env, fwd, port, d, listener, "target still unavailable")
        assert metric(samples, "tidemark_streaming") == 0
        assert metric(samples, "tidemark_errors_total", kind="target_connection") >= 1
        h = http_get(port, "/healthz", timeout=2)
        assert h is not None and h[0] == 503 and "target" in h[2], h
        env.wait_caught_up(d, timeout=120)
        env.assert_tables_equal("t")
        write_rows(env, 1501, 1600, "after")
        env.wait_caught_up(d, timeout=60)
        env.assert_tables_equal("t")
        d.stop()
    finally:
        fwd.stop()
        listener.close()


def test_black_holed_source_keeps_the_loop_serving(env):
    """Source behind the forwarder (replication and monitor sessions):
    black-holed, the stream restarts and heartbeats run off the loop and end
    at the connect timeout; the endpoint and the watchdog keep going;
    restored, the stream resumes from the durable position and converges."""
    env.both_sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
    write_rows(env, 1, 1000, "before")
    fwd = Forwarder(env.src_cluster).start()
    listener = NotifyListener()
    listener.start()
    try:
        port = harness.free_port()
        cfg = harness.render_config(env.pipeline, fwd.conninfo(env.src_cluster, env.src_db), env.dst,
                                    log_level="debug",
                                    extra="service:\n  listen: \"127.0.0.1:%d\"\n  heartbeat_interval_s: 1\n" % port)
        d = start_service_daemon(env, port, config_text=cfg, environ=notify_env(listener, WATCHDOG_USEC))
        listener.wait_for("READY", 60, d)
        env.wait_caught_up(d)
        outage_while_serving(env, fwd, port, d, listener, "source still unavailable")
        env.wait_caught_up(d, timeout=120)
        env.assert_tables_equal("t")
        d.stop()
    finally:
        fwd.stop()
        listener.close()


IDMAP = """
mapping:
  public.orders:
    on_error: dead_letter
    columns:
      customer_id: {transform: [{id_map: cust}]}
"""


def test_id_map_lookup_waits_off_the_loop(env):
    """An id_map lookup that waits on the target (tidemark.id_map locked by
    another session) keeps its change waiting, not the loop: /metrics and the
    watchdog go on, nothing is dead-lettered meanwhile; once the lock goes the
    change applies with its mapped id."""
    env.src_sql("CREATE TABLE orders (id int PRIMARY KEY, customer_id int, amount int)")
    env.dst_sql("""
        CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, amount int);
        CREATE SCHEMA tidemark;
        CREATE TABLE tidemark.id_map (namespace text NOT NULL, old_id text NOT NULL, new_id text NOT NULL,
                                      PRIMARY KEY (namespace, old_id));
        INSERT INTO tidemark.id_map SELECT 'cust', g::text, (1000 + g)::text FROM generate_series(1, 50) g;
    """)
    env.src_sql("INSERT INTO orders SELECT g, 1 + g % 20, g FROM generate_series(1, 100) g")
    listener = NotifyListener()
    listener.start()
    try:
        port = harness.free_port()
        d = start_service_daemon(env, port, tables=["public.orders"],
                                 config_text=service_config(env, port, ["public.orders"]) + IDMAP,
                                 environ=notify_env(listener, WATCHDOG_USEC))
        listener.wait_for("READY", 60, d)
        env.wait_caught_up(d)
        with psycopg.connect(env.dst) as locker:
            locker.execute("LOCK TABLE tidemark.id_map IN ACCESS EXCLUSIVE MODE")
            t0 = time.monotonic()
            # Customers 21..30 were never looked up: their lookups wait for the lock.
            env.src_sql("INSERT INTO orders SELECT g, g - 80, g FROM generate_series(101, 110) g")

            def lookup_waiting():
                rows = harness.execute(env.dst_cluster.conninfo(),
                                       "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                                       " AND wait_event_type = 'Lock' AND query LIKE '%%tidemark.id_map%%'",
                                       (env.dst_db,))
                return rows[0][0] >= 1

            harness.wait_for(lookup_waiting, 30, "the id_map lookup to wait for the lock")
            keep_answering(port, d, lambda: time.monotonic() - t0 > 2 * WATCHDOG_USEC / 1e6, 60,
                           "while an id_map lookup waits")
            gap = watchdog_gaps(listener, t0, time.monotonic())
            assert gap < WATCHDOG_USEC / 1e6, "the watchdog went %.1f s without a ping" % gap
            assert env.dst_sql("SELECT count(*) FROM orders WHERE id > 100") == [(0,)]
            locker.rollback()
        env.wait_caught_up(d, timeout=60)
        want = [(i, c + 1000, a) for i, c, a in env.src_sql("SELECT id, customer_id, amount FROM orders ORDER BY id")]
        assert env.dst_sql("SELECT id, customer_id, amount FROM orders ORDER BY id") == want
        assert env.dst_sql("SELECT count(*) FROM tidemark.dead_letter") == [(0,)]
        d.stop()
    finally:
        listener.close()
