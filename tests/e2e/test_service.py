"""tidemark as a service: systemd notifications in the right order (READY only
once the slot and the target are connected, STATUS, WATCHDOG, RELOADING,
STOPPING), the Prometheus endpoint's counts, /healthz following a target
outage, SIGHUP reloads (a table added is copied and streams, a removed one
stops, a broken config is rejected while streaming goes on), `tidemark status`
during a load and while streaming, heartbeats that move an idle slot while
another database on the source is busy, and JSON log lines.

Every wait has a deadline (harness.wait_for); nothing sleeps blindly."""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import psycopg
import pytest
from psycopg import sql

import harness


# --------------------------------------------------------------------------- helpers

class ServiceDaemon(harness.Daemon):
    """harness.Daemon with a chosen environment (NOTIFY_SOCKET, WATCHDOG_USEC)."""

    def __init__(self, *args, env=None, **kw):
        super().__init__(*args, **kw)
        self.env = env

    def start(self, extra_args=()):
        assert not self.running(), "daemon already running"
        path = os.path.join(self.workdir, "%s-%d.stderr" % (self.name, len(self.logs) + 1))
        self.logs.append(path)
        with open(path, "wb") as err, open(path.replace(".stderr", ".stdout"), "wb") as out:
            self.proc = subprocess.Popen([self.binary, "run", "--config", self.config_path] + list(extra_args),
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=self.env)
        return self

    def signal(self, sig):
        assert self.running(), "daemon not running\n" + self.log_tail()
        self.proc.send_signal(sig)


def service_config(env, port, tables=None, extra_service=""):
    svc = "service:\n  listen: \"127.0.0.1:%d\"\n  heartbeat_interval_s: 1\n%s" % (port, extra_service)
    return env.config(tables=tables, extra=svc)


def start_service_daemon(env, port, tables=None, environ=None, extra_args=(), config_text=None):
    d = ServiceDaemon(env.workdir, config_text or service_config(env, port, tables), harness.tidemark_bin(),
                      name="tidemark%d" % (len(env.daemons) + 1), env=environ)
    if not (os.path.isfile(d.binary) and os.access(d.binary, os.X_OK)):
        pytest.fail("tidemark binary not found at %s" % d.binary)
    env.daemons.append(d)
    return d.start(extra_args)


def http_get(port, path, timeout=5.0):
    """(status, content-type, body) or None when nothing answers."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path)
        r = c.getresponse()
        out = (r.status, r.getheader("Content-Type"), r.read().decode())
        c.close()
        return out
    except OSError:
        return None


def wait_http(port, path, status, timeout, daemon):
    """Poll until GET path answers with status; returns the body."""
    last = [None]

    def check():
        daemon.check_alive()
        last[0] = http_get(port, path, timeout=2)
        return last[0] is not None and last[0][0] == status

    try:
        harness.wait_for(check, timeout, "%s to answer %d" % (path, status), interval=0.2)
    except TimeoutError as e:
        raise AssertionError("%s (last answer: %r)\n%s" % (e, last[0], daemon.log_tail())) from None
    return last[0][2]


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_metrics(text):
    """Strictly parse a text exposition: {(name, ((k, v), ...)): value}.

    Fails on malformed lines, samples without # TYPE, families declared twice
    or duplicate samples."""
    samples, typed, helped = {}, {}, set()
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in helped, "HELP twice for %s" % name
            helped.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert name not in typed, "TYPE twice for %s" % name
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            typed[name] = kind
            continue
        assert not line.startswith("#"), "unexpected comment: %r" % line
        m = _SAMPLE.match(line)
        assert m, "malformed sample line: %r" % line
        name, labels_s, value = m.group(1), m.group(3) or "", m.group(4)
        labels, pos = [], 0
        while pos < len(labels_s):
            lm = _LABEL.match(labels_s, pos)
            assert lm, "malformed labels in %r" % line
            labels.append((lm.group(1), re.sub(r'\\(.)', lambda x: {"n": "\n"}.get(x.group(1), x.group(1)),
                                               lm.group(2))))
            pos = lm.end()
        assert name in typed, "sample %s before its # TYPE" % name
        if typed[name] == "counter":
            assert name.endswith("_total"), "counter %s should end in _total" % name
        key = (name, tuple(labels))
        assert key not in samples, "duplicate sample %r" % (key,)
        samples[key] = float(value)
    return samples


def metric(samples, name, **labels):
    want = tuple(sorted(labels.items()))
    for (n, ls), v in samples.items():
        if n == name and tuple(sorted(ls)) == want:
            return v
    return None


def scrape(port, daemon):
    r = http_get(port, "/metrics")
    assert r is not None, "no answer from /metrics\n" + daemon.log_tail()
    status, ctype, body = r
    assert status == 200, (status, body)
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    return parse_metrics(body)


def lsn_int(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


class NotifyListener(threading.Thread):
    """An AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET.

    Records (monotonic time, {field: value}) per datagram; on_ready, if
    set, runs in this thread the moment a READY=1 arrives (to look at the
    world exactly then)."""

    def __init__(self, on_ready=None):
        super().__init__(daemon=True)
        self.dir = tempfile.mkdtemp(prefix="tmnotify-", dir="/tmp")  # sun_path is short
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o777)
        self.sock.settimeout(0.2)
        self.messages, self.ready_checks, self.errors = [], [], []
        self.on_ready = on_ready
        self.stop_event = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        while not self.stop_event.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            fields = {}
            for line in data.decode("utf-8", "replace").split("\n"):
                if "=" in line:
                    k, v = line.split("=", 1)
                    fields[k] = v
            now = time.monotonic()
            # Look at the world first, then publish the message: a test that
            # sees READY=1 also sees what was true when it arrived.
            if "READY" in fields and self.on_ready:
                try:
                    self.ready_checks.append(self.on_ready())
                except Exception as e:  # reported by the test
                    self.errors.append(repr(e))
            with self.lock:
                self.messages.append((now, fields))

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def index_of(self, key, after=-1, value="1"):
        for i, (_, f) in enumerate(self.snapshot()):
            if i > after and f.get(key) == value:
                return i
        return None

    def wait_for(self, key, timeout, daemon, after=-1, value="1"):
        def found():
            daemon.check_alive() if daemon.proc.poll() is None or key != "STOPPING" else None
            return self.index_of(key, after, value)
        try:
            harness.wait_for(lambda: found() is not None, timeout, "%s=%s from the daemon" % (key, value))
        except TimeoutError as e:
            raise AssertionError("%s; got %r\n%s" % (e, [f for _, f in self.snapshot()][-20:],
                                                   daemon.log_tail())) from None
        return self.index_of(key, after, value)

    def close(self):
        self.stop_event.set()
        self.join(5)
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def notify_env(listener, watchdog_usec=2000000):
    e = dict(os.environ)
    e.pop("WATCHDOG_PID", None)
    e["NOTIFY_SOCKET"] = listener.path
    e["WATCHDOG_USEC"] = str(watchdog_usec)
    return e


def slot_state(env):
    rows = harness.execute(env.src_cluster.conninfo(),
                           "SELECT active, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
                           (env.slot,))
    return rows[0] if rows else None


# --------------------------------------------------------------------------- (a) sd_notify

def test_notify_sequence(env):
    env.both_sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
    env.src_sql("INSERT INTO t SELECT g, 'v' FROM generate_series(1, 100) g")

    def world_at_ready():
        # What READY=1 promises: the target holds the pipeline's watermark
        # and the slot exists and is streaming.
        return {"watermark": harness.watermark(env.dst, env.pipeline), "slot": slot_state(env)}

    listener = NotifyListener(on_ready=world_at_ready)
    listener.start()
    try:
        port = harness.free_port()
        d = start_service_daemon(env, port, environ=notify_env(listener))
        ready1 = listener.wait_for("READY", 60, d)
        assert not listener.errors, listener.errors
        first = listener.ready_checks[0]
        assert first["watermark"] is not None, "READY=1 before the target had the watermark: %r" % first
        assert first["slot"] is not None and first["slot"][0], "READY=1 before the slot streamed: %r" % first

        # STATUS= lines name the phase, the lag and the watermark.
        def status_ok():
            return any(re.search(r"lag", f.get("STATUS", "")) and re.search(r"watermark \w+/\w+", f["STATUS"])
                       for _, f in listener.snapshot())
        harness.wait_for(status_ok, 15, "a STATUS= line with lag and watermark")
        assert any(re.search(r"streaming|copying", f.get("STATUS", "")) for _, f in listener.snapshot())

        # WATCHDOG=1 at least once a second (WATCHDOG_USEC=2 s: ping at half of it).
        t0 = time.monotonic()
        harness.wait_for(lambda: sum(1 for t, f in listener.snapshot() if t > t0 and f.get("WATCHDOG") == "1") >= 4,
                         15, "four WATCHDOG=1 pings")
        env.src_sql("INSERT INTO t SELECT g, 'w' FROM generate_series(101, 200) g")
        env.wait_caught_up(d)

        d.signal(signal.SIGHUP)
        reloading = listener.wait_for("RELOADING", 30, d, after=ready1)
        assert re.fullmatch(r"\d+", listener.snapshot()[reloading][1].get("MONOTONIC_USEC", "")), \
            "RELOADING=1 without MONOTONIC_USEC: %r" % (listener.snapshot()[reloading][1],)
        ready2 = listener.wait_for("READY", 30, d, after=reloading)

        d.signal(signal.SIGTERM)
        assert d.wait_exit(60) == 0, d.log_tail()
        stopping = listener.wait_for("STOPPING", 10, d, after=ready2)
        msgs = listener.snapshot()
        assert ready1 < reloading < ready2 < stopping

        # Pings come every half interval (1 s) and never miss systemd's 2 s deadline.
        pings = [t for t, f in msgs[ready1:stopping] if f.get("WATCHDOG") == "1"]
        gaps = sorted(b - a for a, b in zip(pings, pings[1:]))
        assert len(pings) >= 4, "WATCHDOG pings: %d" % len(pings)
        assert gaps[len(gaps) // 2] <= 1.1 and gaps[-1] < 2.0, "WATCHDOG gaps: %s" % ["%.2f" % g for g in gaps]
        env.assert_tables_equal("t")
    finally:
        listener.close()


# --------------------------------------------------------------------------- (b) metrics

# A table name with a double quote: its metric label must come out escaped.
ODD_TABLE = '"Odd ""Name"""'
ODD_TABLE_DDL = "CREATE TABLE %s (id int PRIMARY KEY)" % ODD_TABLE

def test_metrics_counts(env):
    env.both_sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
    env.both_sql(ODD_TABLE_DDL)
    port = harness.free_port()
    # Continuous verification on (a long interval): its families are exposed
    # only then, and the documentation check below covers them too.
    d = start_service_daemon(env, port, config_text=service_config(env, port, None)
                             + "verify: {interval_s: 3600}\n")
    env.wait_caught_up(d)
    wait_http(port, "/healthz", 200, 30, d)

    n = 250
    with env.src_connect() as c:
        for k in range(5):
            c.execute("INSERT INTO t SELECT g, 'v' FROM generate_series(%s::int, %s::int) g", (k * 50 + 1, k * 50 + 50))
        c.execute("UPDATE t SET v = 'u' WHERE id <= 10")
        c.execute("DELETE FROM t WHERE id > 245")
        c.execute("INSERT INTO %s VALUES (1), (2)" % ODD_TABLE)
    env.wait_caught_up(d)
    wm = lsn_int(env.watermark())

    def counted():
        s = scrape(port, d)
        return s if metric(s, "tidemark_changes_applied_total", table="public.t", op="insert") == n else None
    try:
        s = harness.wait_for(counted, 15, "the insert counter to reach %d" % n, interval=0.2)
    except TimeoutError:
        raise AssertionError("metrics:\n%s" % http_get(port, "/metrics")[2]) from None
    assert metric(s, "tidemark_changes_applied_total", table="public.t", op="update") == 10
    assert metric(s, "tidemark_changes_applied_total", table="public.t", op="delete") == 5
    assert metric(s, "tidemark_changes_applied_total", table='public."Odd ""Name"""', op="insert") == 2, \
        sorted(k for k in s if k[0] == "tidemark_changes_applied_total")
    assert metric(s, "tidemark_transactions_total") >= 8
    assert metric(s, "tidemark_received_bytes_total") > 0
    assert metric(s, "tidemark_up") == 1
    assert metric(s, "tidemark_streaming") == 1
    assert metric(s, "tidemark_table_synced", table="public.t") == 1
    for name in ("tidemark_replication_lag_bytes", "tidemark_replication_lag_seconds",
                 "tidemark_slot_retained_wal_bytes", "tidemark_last_commit_timestamp_seconds"):
        assert metric(s, name) is not None, "%s missing" % name
    assert metric(s, "tidemark_replication_lag_seconds") >= 0
    assert metric(s, "tidemark_watermark_lsn") >= wm
    assert abs(metric(s, "tidemark_last_commit_timestamp_seconds") - time.time()) < 600
    # The slot check runs every few seconds: retained WAL becomes known.
    harness.wait_for(lambda: metric(scrape(port, d), "tidemark_slot_retained_wal_bytes") >= 0, 30,
                     "tidemark_slot_retained_wal_bytes to be measured")
    assert http_get(port, "/readyz")[0] == 200
    assert http_get(port, "/nope")[0] == 404

    # The docs and the example alert rules name exactly what the daemon exposes.
    body = http_get(port, "/metrics")[2]
    families = set(re.findall(r"^# TYPE (\S+)", body, re.M))
    with open(os.path.join(harness.REPO_ROOT, "docs", "OPERATIONS.md")) as f:
        documented = set(re.findall(r"^\| `(tidemark_[a-z_]+)[{`]", f.read(), re.M))
    assert families - documented == set(), "exposed but not documented in OPERATIONS.md"
    assert documented - families == set(), "documented in OPERATIONS.md but not exposed"
    with open(os.path.join(harness.REPO_ROOT, "docs", "prometheus-rules.yml")) as f:
        in_rules = set(re.findall(r"\btidemark_[a-z_]+", "\n".join(
            line for line in f if "expr:" in line)))
    assert in_rules and in_rules <= families, "rules use unknown metrics: %s" % (in_rules - families)
    promtool = shutil.which("promtool")
    if promtool:
        r = subprocess.run([promtool, "check", "metrics"], input=body, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        assert r.returncode == 0, r.stdout
    d.stop()


# --------------------------------------------------------------------------- (c) health

def test_health_follows_target_outage(env):
    env.both_sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
    port = harness.free_port()
    d = start_service_daemon(env, port)
    env.wait_caught_up(d)
    body = wait_http(port, "/healthz", 200, 30, d)
    assert body.startswith("ok"), body
    env.src_sql("INSERT INTO t SELECT g, 'before' FROM generate_series(1, 100) g")
    env.wait_caught_up(d)
    try:
        env.dst_cluster.stop("fast")
        body = wait_http(port, "/healthz", 503, 30, d)
        assert "target" in body, body
        assert http_get(port, "/readyz")[0] == 503
        # The source keeps taking writes while the target is away.
        env.src_sql("INSERT INTO t SELECT g, 'during' FROM generate_series(101, 300) g")
        env.src_sql("UPDATE t SET v = 'updated' WHERE id % 7 = 0")
        s = scrape(port, d)
        assert metric(s, "tidemark_streaming") == 0
        assert metric(s, "tidemark_errors_total", kind="target_connection") >= 1
    finally:
        if not env.dst_cluster.is_running():
            env.dst_cluster.start()
    wait_http(port, "/healthz", 200, 90, d)
    env.wait_caught_up(d, timeout=90)
    env.assert_tables_equal("t")
    d.stop()


def walsender_pid(env, other_than=None):
    """The pid of the walsender streaming the pipeline's slot (waits for one)."""
    def active():
        rows = harness.execute(env.src_cluster.conninfo(),
                               "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (env.slot,))
        pid = rows[0][0] if rows else None
        return pid if pid is not None and pid != other_than else None
    return harness.wait_for(active, 30, "a walsender on slot %s" % env.slot, interval=0.1)


def test_source_connection_errors_counted(env):
    """Every loss of the replication connection counts in
    tidemark_errors_total{kind="source_connection"}, and so does every failed
    attempt to reconnect (the TidemarkErrorsIncreasing alert keeps firing
    through a long outage); nothing is lost meanwhile."""
    env.both_sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
    env.src_sql("INSERT INTO t SELECT g, 'copy' FROM generate_series(1, 100) g")
    port = harness.free_port()
    d = start_service_daemon(env, port)
    env.wait_caught_up(d)
    wait_http(port, "/healthz", 200, 30, d)

    def source_errors():
        return metric(scrape(port, d), "tidemark_errors_total", kind="source_connection")

    assert source_errors() == 0
    pid = None
    for n in (1, 2):
        pid = walsender_pid(env, other_than=pid)
        env.src_sql("INSERT INTO t SELECT g, 'before kill' FROM generate_series(%s::int, %s::int) g",
                    (1000 * n, 1000 * n + 99))
        env.src_sql("SELECT pg_terminate_backend(%s)", (pid,))
        harness.wait_for(lambda: source_errors() >= n, 30, "source_connection errors to reach %d" % n)
        env.src_sql("UPDATE t SET v = v || '+' WHERE id %% 7 = %s", (n,))
        env.wait_caught_up(d)
        env.assert_tables_equal("t")
    assert source_errors() == 2

    # The source down: the loss and each failed reconnect attempt count.
    env.stop_source()
    try:
        harness.wait_for(lambda: source_errors() >= 5, 60,
                         "the loss and two failed reconnects to count")
    finally:
        env.start_source()
    env.src_sql("INSERT INTO t SELECT g, 'after outage' FROM generate_series(5000, 5099) g")
    env.wait_caught_up(d, timeout=90)
    env.assert_tables_equal("t")
    d.stop()


# --------------------------------------------------------------------------- (d) reload: tables

def test_reload_adds_and_removes_tables(env):
    env.both_sql("""
        CREATE TABLE a (id int PRIMARY KEY, v text);
        CREATE TABLE b (id int PRIMARY KEY, v text);
    """)
    env.src_sql("INSERT INTO a SELECT g, 'a' FROM generate_series(1, 100) g")
    env.src_sql("INSERT INTO b SELECT g, 'b' FROM generate_series(1, 3000) g")
    port = harness.free_port()
    d = start_service_daemon(env, port, tables=["public.a"])
    env.wait_caught_up(d)
    assert env.dst_sql("SELECT count(*) FROM b") == [(0,)]

    d.write_config(service_config(env, port, tables=["public.a", "public.b"]))
    d.signal(signal.SIGHUP)
    env.src_sql("INSERT INTO b SELECT g, 'after reload' FROM generate_series(3001, 3100) g")
    env.src_sql("UPDATE b SET v = 'changed' WHERE id % 10 = 0")
    env.src_sql("INSERT INTO a VALUES (101, 'a')")
    harness.wait_for(lambda: env.dst_sql("SELECT count(*) FROM tidemark.sync_state WHERE pipeline = %s"
                                         " AND table_name = 'b'", (env.pipeline,))[0][0] > 0,
                     30, "table b to enter tidemark.sync_state")
    env.wait_caught_up(d)
    env.assert_tables_equal("a", "b")
    s = scrape(port, d)
    assert metric(s, "tidemark_table_synced", table="public.b") == 1

    # Removing a: its changes stop arriving, b keeps streaming.
    d.write_config(service_config(env, port, tables=["public.b"]))
    d.signal(signal.SIGHUP)
    harness.wait_for(lambda: re.search(r"now replicating 1 table", d.log()), 30, "the reload to take effect")
    env.src_sql("INSERT INTO a VALUES (102, 'not replicated')")
    env.src_sql("INSERT INTO b VALUES (5000, 'still streaming')")
    env.wait_caught_up(d)
    env.assert_tables_equal("b")
    assert env.dst_sql("SELECT count(*) FROM a WHERE id = 102") == [(0,)]
    d.stop()


def test_reload_log_level_while_threads_log(env):
    """SIGHUP changes the log level while another thread (the continuous
    verification) keeps logging: the new level applies to it. Under
    ThreadSanitizer (scripts/test.sh's TSan stage) this is where the level
    was written by the loop while other threads read it. Nothing scrapes
    /metrics in between: a scrape would order the threads and hide the race."""
    env.both_sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
    env.src_sql("INSERT INTO t SELECT g, 'copy' FROM generate_series(1, 500) g")
    port = harness.free_port()

    def config(level):
        return env.config(log_level=level, extra='service: {listen: "127.0.0.1:%d"}\nverify: {interval_s: 1}\n'
                          % port)
    d = start_service_daemon(env, port, config_text=config("info"))
    env.wait_caught_up(d)
    assert "verify: connected" not in d.log()
    d.write_config(config("debug"))
    d.signal(signal.SIGHUP)
    harness.wait_for(lambda: d.check_alive() or "configuration reloaded" in d.log(), 30, "the reload")
    # The verification thread's next pass logs at the new level.
    harness.wait_for(lambda: d.check_alive() or "verify: connected" in d.log(), 30,
                     "a debug line of the verification thread")
    env.src_sql("INSERT INTO t SELECT g, 'stream' FROM generate_series(501, 600) g")
    env.wait_caught_up(d)
    env.assert_tables_equal("t")
    d.stop()


# --------------------------------------------------------------------------- (e) reload: broken config

def test_reload_broken_config_keeps_running(env):
    env.both_sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
    port = harness.free_port()
    d = start_service_daemon(env, port)
    env.wait_caught_up(d)
    good = open(d.config_path).read()
    d.write_config(good + "source: [unclosed\n  : :\n")
    d.signal(signal.SIGHUP)
    harness.wait_for(lambda: re.search(r"reload.*rejected|rejected.*config", d.log()), 30,
                     "a log line saying the new config was rejected")
    line = [l for l in d.log().splitlines() if re.search(r"reload.*rejected|rejected.*config", l)][0]
    assert re.search(r"tidemark\d+\.yaml:\d+", line), "the rejection should name file:line: %s" % line
    d.check_alive()
    env.src_sql("INSERT INTO t SELECT g, 'after' FROM generate_series(1, 200) g")
    env.wait_caught_up(d)
    env.assert_tables_equal("t")
    assert wait_http(port, "/healthz", 200, 30, d).startswith("ok")
    # A config that parses but names another pipeline is rejected too.
    d.write_config(good.replace("pipeline: %s" % env.pipeline, "pipeline: other_name"))
    d.signal(signal.SIGHUP)
    harness.wait_for(lambda: len(re.findall(r"reload.*rejected|rejected.*config", d.log())) >= 2, 30,
                     "the second rejection")
    env.src_sql("INSERT INTO t VALUES (1000, 'still')")
    env.wait_caught_up(d)
    env.assert_tables_equal("t")
    d.stop()


# --------------------------------------------------------------------------- (f) status

def run_status(config_path, *extra, timeout=60):
    return subprocess.run([harness.tidemark_bin(), "status", "--config", config_path] + list(extra),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def status_json(config_path):
    r = run_status(config_path, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def test_status_during_load_and_streaming(env):
    env.both_sql("""
        CREATE TABLE small (id int PRIMARY KEY, v text);
        CREATE TABLE held (id int PRIMARY KEY, v text);
    """)
    env.src_sql("INSERT INTO small SELECT g, 's' FROM generate_series(1, 500) g")
    env.src_sql("INSERT INTO held SELECT g, 'h' FROM generate_series(1, 2000) g")
    port = harness.free_port()
    # A SHARE lock on the target table lets the startup checks read it but
    # holds its COPY: the load of `held` stays unfinished while we look.
    locker = psycopg.connect(env.dst)
    locker.execute("LOCK TABLE held IN SHARE MODE")
    try:
        d = start_service_daemon(env, port, tables=["public.small", "public.held"])

        def loading():
            d.check_alive()
            st = status_json(d.config_path)
            states = {t["table"]: t["state"] for t in st["tables"]}
            return st if states.get("public.small") in ("synced", "streaming") and \
                states.get("public.held") in ("copying", "pending") else None
        st = harness.wait_for(loading, 60, "status to show small synced and held copying", interval=0.3)
        assert st["pipeline"] == env.pipeline
        assert st["phase"] == "copying", st
        assert st["watermark"]["lsn"]
        assert st["source"]["slot"]["exists"] and st["source"]["slot"]["active"], st
        text = run_status(d.config_path)
        assert text.returncode == 0, text.stdout + text.stderr
        out = text.stdout
        assert re.search(r"public\.held\s+(copying \d+%|pending)", out), out
        assert re.search(r"public\.small\s+(synced|streaming)", out), out
        assert "copying" in out.splitlines()[0], out
    finally:
        locker.close()
    env.src_sql("INSERT INTO held VALUES (5000, 'late')")
    env.wait_caught_up(d)
    env.assert_tables_equal("small", "held")

    st = status_json(d.config_path)
    assert st["phase"] == "streaming", st
    assert {t["table"]: t["state"] for t in st["tables"]} == {"public.small": "streaming",
                                                              "public.held": "streaming"}
    assert {t["table"]: t["rows"] for t in st["tables"]} == {"public.small": 500, "public.held": 2000}
    assert st["source"]["slot"]["retained_wal_bytes"] >= 0
    assert st["source"]["slot"]["lag_bytes"] >= 0
    assert st["lag_seconds"] is not None and st["lag_seconds"] >= 0
    assert st["daemon"]["healthz"] == 200, st
    assert st["last_error"] is None
    out = run_status(d.config_path).stdout
    for word in ("streaming", env.slot, "public.small", "public.held", "watermark", "healthz: 200"):
        assert word in out, out

    d.stop()
    st = status_json(d.config_path)
    assert st["phase"] == "stopped" and st["source"]["slot"]["active"] is False, st
    assert st["daemon"]["healthz"] is None and st["daemon"]["error"], st
    assert {t["state"] for t in st["tables"]} == {"synced"}


def test_status_unreachable_source(env):
    text = harness.render_config(env.pipeline, "host=/nonexistent-dir port=1 dbname=x", env.dst,
                                 extra="service:\n  listen: \"\"\n")
    path = os.path.join(env.workdir, "bad.yaml")
    with open(path, "w") as f:
        f.write(text)
    r = run_status(path, "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    st = json.loads(r.stdout)
    assert st["source"]["reachable"] is False and "source" in st["source"]["error"], st
    assert st["target"]["reachable"] is True, st
    assert st["phase"] == "not started", st
    assert "source unreachable" in r.stderr
    r = run_status(path)
    assert r.returncode == 1 and "cannot connect to source" in r.stdout, r.stdout


# --------------------------------------------------------------------------- (g) heartbeats

def test_heartbeat_moves_idle_slot(env):
    env.both_sql("CREATE TABLE idle (id int PRIMARY KEY)")
    busy_db = env.src_db + "_busy"
    admin = env.src_cluster.conninfo()
    harness.execute(admin, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(busy_db)))
    try:
        busy = env.src_cluster.conninfo(busy_db)
        harness.execute(busy, "CREATE TABLE churn (id bigserial PRIMARY KEY, pad text)")
        port = harness.free_port()
        d = start_service_daemon(env, port)
        env.wait_caught_up(d)
        # Writes in another database only: nothing the publication carries.
        for _ in range(20):
            harness.execute(busy, "INSERT INTO churn (pad) SELECT repeat('x', 200) FROM generate_series(1, 500)")
        target = harness.current_wal_lsn(busy)

        def confirmed_past():
            d.check_alive()
            harness.execute(busy, "INSERT INTO churn (pad) VALUES ('tick')")
            st = slot_state(env)
            return st and st[1] and harness.lsn_ge(admin, st[1], target)
        harness.wait_for(confirmed_past, 60, "the idle slot's confirmed_flush_lsn to pass %s" % target,
                         interval=0.5)
        d.stop()
    finally:
        harness.execute(admin, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(busy_db)))


# --------------------------------------------------------------------------- (h) logs

def test_json_log_lines(env):
    env.both_sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
    env.src_sql("INSERT INTO t SELECT g, 'v' FROM generate_series(1, 50) g")
    port = harness.free_port()
    d = start_service_daemon(env, port, extra_args=["--log-format", "json"])
    env.wait_caught_up(d)
    env.src_sql("INSERT INTO t VALUES (51, 'x')")
    env.wait_caught_up(d)
    d.stop()
    lines = [l for l in d.log().splitlines() if l.strip()]
    assert len(lines) >= 3, d.log()
    tables = set()
    for line in lines:
        rec = json.loads(line)
        assert rec["level"] in ("error", "warning", "notice", "info", "debug"), rec
        assert isinstance(rec["msg"], str) and rec["msg"], rec
        assert rec["pipeline"] == env.pipeline, rec
        assert isinstance(rec["ts"], (int, float)), rec
        if "lsn" in rec:
            assert re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", rec["lsn"]), rec
        if "table" in rec:
            tables.add(rec["table"])
    assert any("lsn" in json.loads(l) for l in lines), "no line carries an lsn field"
