"""Throwaway PostgreSQL clusters and tidemark helpers for end-to-end tests.

This module is shared by the pytest suite (tests/e2e/conftest.py) and by
scripts/demo.sh.  It knows how to:

* create two clusters ("src" and "dst") under a fresh /tmp directory that the
  `postgres` user owns (when running as root) and start/stop/restart them;
* run SQL against a database (a fresh connection per call, so helpers survive
  a source restart);
* wait until a pipeline has caught up (target watermark >= source WAL
  position taken after the writes), with a deadline, polling;
* compare tables between source and target by content (md5 of the sorted row
  text plus count) and explain a mismatch with a row-level diff;
* write a tidemark config file and start / stop / kill the daemon.

Run as a script it offers a small CLI for shell scripts (see `main`):
    python3 tests/e2e/harness.py up DIR          # prints KEY=VALUE lines
    python3 tests/e2e/harness.py down DIR
    python3 tests/e2e/harness.py wait-caught-up SRC DST PIPELINE [--timeout S] [--pid PID]
    python3 tests/e2e/harness.py compare SRC DST TABLE...
"""

import collections
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import psycopg
from psycopg import sql

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Settings shared by both clusters.  The two clusters deliberately run in
# different time zones: a daemon that ships timestamptz values without their
# offset, or relies on both servers agreeing, corrupts data and the tests see it.
COMMON_SETTINGS = {
    "listen_addresses": "''",
    "wal_level": "logical",
    "max_replication_slots": "32",
    "max_wal_senders": "32",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "128MB",
    "max_connections": "200",
    "logging_collector": "on",
    "log_directory": "'log'",
    "log_filename": "'postgresql.log'",
    "log_line_prefix": "'%m [%p] %q%a@%d '",
    "log_min_messages": "warning",
}
CLUSTER_TIMEZONES = {"src": "UTC", "dst": "Pacific/Chatham"}

# Session options used by the harness's own comparison connections so both
# sides render values the same way regardless of the cluster defaults.
COMPARE_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO,MDY -c IntervalStyle=postgres -c extra_float_digits=1"


def is_root():
    return os.geteuid() == 0


def superuser_name():
    """The cluster superuser: `postgres` when running as root, else ourselves."""
    return "postgres" if is_root() else pwd.getpwuid(os.geteuid()).pw_name


def as_cluster_owner(argv):
    """Prefix argv so it runs as the cluster owner (runuser when root)."""
    return ["runuser", "-u", "postgres", "--"] + argv if is_root() else argv


def free_port():
    """A TCP port nobody listens on (used to name the unix socket)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_base_dir(prefix="tidemark-e2e-"):
    """A fresh /tmp directory owned by the cluster owner."""
    base = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(base, 0o755)
    if is_root():
        pw = pwd.getpwnam("postgres")
        os.chown(base, pw.pw_uid, pw.pw_gid)
    return base


def run(argv, check=True, **kw):
    """subprocess.run with captured text output; raise with the output on failure.

    Runs in / by default: the checkout may be unreadable for the postgres user."""
    kw.setdefault("cwd", "/")
    res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if check and res.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s" % (res.returncode, " ".join(argv), res.stdout))
    return res


def wait_for(predicate, timeout, what, interval=0.05):
    """Poll predicate() until it returns a truthy value; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


class Cluster:
    """One PostgreSQL cluster with its data directory in base_dir/name."""

    def __init__(self, base_dir, name, port=None):
        self.base_dir = base_dir
        self.name = name
        self.datadir = os.path.join(base_dir, name)
        self.port = port or free_port()
        self.host = base_dir  # unix socket directory
        self.user = superuser_name()

    @property
    def logfile(self):
        return os.path.join(self.datadir, "log", "postgresql.log")

    @property
    def ctl_logfile(self):
        return os.path.join(self.base_dir, self.name + "-pg_ctl.log")

    def initdb(self):
        run(as_cluster_owner([os.path.join(PG_BIN, "initdb"), "-D", self.datadir, "-U", self.user,
                              "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"]))
        settings = dict(COMMON_SETTINGS)
        settings["port"] = str(self.port)
        settings["unix_socket_directories"] = "'%s'" % self.host
        settings["timezone"] = "'%s'" % CLUSTER_TIMEZONES.get(self.name, "UTC")
        conf = "".join("%s = %s\n" % kv for kv in settings.items())
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write(conf)
        return self

    def _ctl(self, *args, check=True):
        return run(as_cluster_owner([os.path.join(PG_BIN, "pg_ctl"), "-D", self.datadir,
                                     "-l", self.ctl_logfile] + list(args)), check=check)

    def start(self):
        self._ctl("start", "-w", "-t", "60")
        return self

    def stop(self, mode="fast"):
        self._ctl("stop", "-w", "-t", "60", "-m", mode, check=False)

    def restart(self, mode="fast"):
        """Restart the cluster (connections, including walsenders, are cut)."""
        self._ctl("restart", "-w", "-t", "60", "-m", mode)

    def is_running(self):
        return self._ctl("status", check=False).returncode == 0

    def conninfo(self, dbname="postgres", **extra):
        parts = ["host=%s" % self.host, "port=%d" % self.port, "dbname=%s" % dbname, "user=%s" % self.user]
        parts += ["%s=%s" % kv for kv in extra.items()]
        return " ".join(parts)

    def connect(self, dbname="postgres", compare=False):
        """An autocommit psycopg connection (compare=True pins the display settings)."""
        kw = {"options": COMPARE_OPTIONS} if compare else {}
        return psycopg.connect(self.conninfo(dbname), autocommit=True, **kw)

    def log_tail(self, nbytes=4000):
        return tail_file(self.logfile, nbytes)


def tail_file(path, nbytes=4000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - nbytes))
            return f.read().decode("utf-8", "replace")
    except OSError as e:
        return "<cannot read %s: %s>" % (path, e)


def create_clusters(base_dir):
    """Create and start the src and dst clusters under base_dir."""
    clusters = {}
    try:
        for name in ("src", "dst"):
            clusters[name] = Cluster(base_dir, name).initdb().start()
    except Exception:
        for c in clusters.values():
            c.stop("immediate")
        raise
    return clusters["src"], clusters["dst"]


def destroy_clusters(base_dir):
    """Stop (immediate) every cluster under base_dir and remove the directory."""
    if not os.path.isdir(base_dir):
        return
    for name in sorted(os.listdir(base_dir)):
        datadir = os.path.join(base_dir, name)
        if os.path.exists(os.path.join(datadir, "PG_VERSION")):
            run(as_cluster_owner([os.path.join(PG_BIN, "pg_ctl"), "-D", datadir, "stop", "-w", "-m", "immediate"]),
                check=False)
    shutil.rmtree(base_dir, ignore_errors=True)


# --------------------------------------------------------------------------- SQL helpers

def execute(conninfo, query, params=None, options=None):
    """Run one statement on a fresh autocommit connection; return all rows (or None)."""
    kw = {"options": options} if options else {}
    with psycopg.connect(conninfo, autocommit=True, **kw) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else None


def current_wal_lsn(src_conninfo):
    """The source's pg_current_wal_lsn() after making every earlier commit durable.

    The clusters run with synchronous_commit=off, so the last commits may be
    inserted but not yet written: pg_current_wal_lsn() (the write position)
    would then lag behind them, and the walsender only sends flushed WAL.  A
    synchronous commit of a transaction that wrote WAL flushes everything
    before it, so the position read afterwards covers all earlier writes and is
    one the walsender will reach.  The transaction creates a temporary table
    (catalog WAL only, nothing a publication can carry).
    (pg_current_wal_insert_lsn() is not usable: at a page boundary it points
    past the page header, beyond any record end the walsender reports.)"""
    with psycopg.connect(src_conninfo, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = on")
        with conn.transaction():
            conn.execute("CREATE TEMP TABLE tidemark_test_flush () ON COMMIT DROP")
        return conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]


def watermark(dst_conninfo, pipeline):
    """The pipeline's watermark LSN on the target as text, or None if absent."""
    with psycopg.connect(dst_conninfo, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('tidemark.watermark')").fetchone()[0] is None:
            return None  # not created yet (checked first to keep the server log clean)
        row = conn.execute("SELECT lsn::text FROM tidemark.watermark WHERE pipeline = %s", (pipeline,)).fetchone()
    return row[0] if row else None


def lsn_ge(conninfo, a, b):
    """a >= b, compared as pg_lsn by the server."""
    return execute(conninfo, "SELECT %s::pg_lsn >= %s::pg_lsn", (a, b))[0][0]


def copies_done(dst_conninfo, pipeline):
    """True when no table of the pipeline has an initial copy still to commit."""
    with psycopg.connect(dst_conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FILTER (WHERE state NOT IN ('synced', 'ready'))"
                           " FROM tidemark.sync_state WHERE pipeline = %s", (pipeline,)).fetchone()
    return row[0] == 0


def wait_caught_up(src_conninfo, dst_conninfo, pipeline, timeout=60.0, alive=None):
    """Wait until the target watermark >= the source WAL position taken now
    and every table's initial copy has committed (tidemark.sync_state): the
    copies run beside the stream, so the watermark alone does not cover a
    table whose copy is still running.

    alive, if given, is called on each poll and should raise if the daemon died
    (so a crash fails fast with its log instead of timing out)."""
    target = current_wal_lsn(src_conninfo)
    last = [None]

    def caught_up():
        if alive:
            alive()
        wm = watermark(dst_conninfo, pipeline)
        last[0] = wm
        return (wm is not None and lsn_ge(dst_conninfo, wm, target)
                and copies_done(dst_conninfo, pipeline))

    try:
        wait_for(caught_up, timeout, "pipeline %s to reach source LSN %s" % (pipeline, target))
    except TimeoutError as e:
        raise TimeoutError("%s (watermark is %s)" % (e, last[0])) from None
    return target


def parse_table(name):
    """'schema.table' or '"Odd Schema"."Odd Table"' -> sql.Identifier parts."""
    parts, cur, quoted, i = [], "", False, 0
    while i < len(name):
        ch = name[i]
        if quoted:
            if ch == '"' and name[i + 1:i + 2] == '"':
                cur += '"'
                i += 1
            elif ch == '"':
                quoted = False
            else:
                cur += ch
        elif ch == '"':
            quoted = True
        elif ch == ".":
            parts.append(cur)
            cur = ""
        else:
            cur += ch.lower()
        i += 1
    parts.append(cur)
    if len(parts) == 1:
        parts.insert(0, "public")
    return sql.Identifier(*parts)


def table_digest(conn, table):
    """(md5 of the rows' text sorted by that text, row count).

    The alias is unusual on purpose: `t::text` would name a column `t` if the
    table had one, instead of the whole row."""
    q = sql.SQL("SELECT md5(string_agg(__tm_row::text, E'\\n' ORDER BY __tm_row::text)), count(*) "
                "FROM {} __tm_row").format(parse_table(table))
    return tuple(conn.execute(q).fetchone())


def table_rows(conn, table):
    q = sql.SQL("SELECT __tm_row::text FROM {} __tm_row ORDER BY 1").format(parse_table(table))
    return [r[0] for r in conn.execute(q)]


def row_diff(src_rows, dst_rows, limit=10):
    """Human-readable multiset difference of two lists of row texts."""
    s, d = collections.Counter(src_rows), collections.Counter(dst_rows)
    only_src = sorted((s - d).elements())
    only_dst = sorted((d - s).elements())
    out = ["%d row(s) only on source, %d only on target" % (len(only_src), len(only_dst))]
    out += ["  - src: %s" % shorten(r) for r in only_src[:limit]]
    out += ["  + dst: %s" % shorten(r) for r in only_dst[:limit]]
    return "\n".join(out)


def shorten(text, n=300):
    return text if len(text) <= n else "%s...<%d chars>...%s" % (text[:n // 2], len(text), text[-n // 2:])


def compare_tables(src_conninfo, dst_conninfo, tables):
    """Compare tables by content; return (ok, report lines, details of mismatches)."""
    lines, problems = [], []
    with psycopg.connect(src_conninfo, autocommit=True, options=COMPARE_OPTIONS) as sc, \
            psycopg.connect(dst_conninfo, autocommit=True, options=COMPARE_OPTIONS) as dc:
        for table in tables:
            s, d = table_digest(sc, table), table_digest(dc, table)
            ok = s == d
            lines.append("%s %-30s src: %7d rows %s   dst: %7d rows %s" % (
                "\u2713" if ok else "\u2717", table, s[1], s[0], d[1], d[0]))
            if not ok:
                problems.append("table %s differs (src %s, dst %s):\n%s" % (
                    table, s, d, row_diff(table_rows(sc, table), table_rows(dc, table))))
    return not problems, lines, problems


class WatermarkSampler(threading.Thread):
    """Background thread polling the target watermark; records backwards moves."""

    def __init__(self, dst_conninfo, pipeline, interval=0.05):
        super().__init__(daemon=True)
        self.dst, self.pipeline, self.interval = dst_conninfo, pipeline, interval
        self.stop_event = threading.Event()
        self.last, self.samples, self.violations, self.errors = None, 0, [], []

    def run(self):
        while not self.stop_event.wait(self.interval):
            try:
                wm = watermark(self.dst, self.pipeline)
                if wm is None:
                    continue
                if self.last is not None and not lsn_ge(self.dst, wm, self.last):
                    self.violations.append((self.last, wm))
            except Exception as e:  # the target stays up; keep sampling
                self.errors.append(repr(e))
                continue
            self.last = wm
            self.samples += 1

    def finish(self):
        """Stop sampling and assert the watermark never moved backwards."""
        self.stop_event.set()
        self.join(10)
        assert not self.violations, "watermark moved backwards (before, after): %s" % self.violations
        return self


# --------------------------------------------------------------------------- daemon helpers

def tidemark_bin():
    return os.environ.get("TIDEMARK_BIN") or os.path.join(REPO_ROOT, "build", "tidemark")


# For a ThreadSanitizer build (TIDEMARK_BIN=build-tsan/tidemark; other builds
# ignore it): the documented suppressions of third-party frames; every report,
# not only the first; and io_sync=0. tidemark's threads share data only under
# mutexes and atomics, so I/O must not count as synchronization: with TSan's
# default, any log line one thread writes to the (file) stderr and any file
# another thread reads order the two threads, which hid a real race. Options
# already in the environment come later and win.
TSAN_SUPPRESSIONS = os.path.join(REPO_ROOT, "tests", "tsan.supp")
os.environ["TSAN_OPTIONS"] = ("suppressions=%s io_sync=0 halt_on_error=0 second_deadlock_stack=1 %s"
                              % (TSAN_SUPPRESSIONS, os.environ.get("TSAN_OPTIONS", ""))).strip()


def yaml_quote(s):
    """A double-quoted YAML scalar."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_config(pipeline, src_conninfo, dst_conninfo, tables=None, log_level="info", extra=""):
    lines = ["pipeline: %s" % pipeline,
             "source:",
             "  conninfo: %s" % yaml_quote(src_conninfo)]
    if tables is not None:
        lines.append("  tables: [%s]" % ", ".join(yaml_quote(t) for t in tables))
    lines += ["target:",
              "  type: postgres",
              "  conninfo: %s" % yaml_quote(dst_conninfo),
              "log: {level: %s}" % log_level]
    return "\n".join(lines) + "\n" + extra


class Daemon:
    """A tidemark process: config file, start, SIGTERM stop, kill -9, logs.

    Each start writes stderr to a new file in workdir; `log()` returns all of
    them concatenated (oldest first) so tests can assert on log lines."""

    def __init__(self, workdir, config_text, binary=None, name="tidemark"):
        self.workdir = workdir
        self.binary = binary or tidemark_bin()
        self.name = name
        self.config_path = os.path.join(workdir, name + ".yaml")
        self.write_config(config_text)
        self.proc = None
        self.logs = []
        self.returncodes = []

    def write_config(self, text):
        with open(self.config_path, "w") as f:
            f.write(text)

    def start(self, extra_args=()):
        assert not self.running(), "daemon already running"
        path = os.path.join(self.workdir, "%s-%d.stderr" % (self.name, len(self.logs) + 1))
        self.logs.append(path)
        with open(path, "wb") as err, open(path.replace(".stderr", ".stdout"), "wb") as out:
            self.proc = subprocess.Popen([self.binary, "run", "--config", self.config_path] + list(extra_args),
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self):
        """Raise with the log if the daemon has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError("tidemark exited unexpectedly with code %s\n%s" % (
                self.proc.returncode, self.log_tail()))

    def wait_running(self, seconds):
        """Let the daemon run for `seconds`; fail at once if it exits meanwhile."""
        try:
            self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            return
        self.check_alive()

    def wait_exit(self, timeout=30.0):
        """Wait for the process to exit on its own; return its exit code."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("tidemark did not exit within %.0fs\n%s" % (timeout, self.log_tail())) from None
        self.returncodes.append(rc)
        return rc

    def stop(self, timeout=30.0):
        """SIGTERM; assert a clean exit (code 0) within timeout."""
        assert self.running(), "daemon not running (exit code %s)\n%s" % (
            self.proc and self.proc.returncode, self.log_tail())
        self.proc.send_signal(signal.SIGTERM)
        rc = self.wait_exit(timeout)
        assert rc == 0, "tidemark exited with %d after SIGTERM\n%s" % (rc, self.log_tail())

    def kill9(self):
        """kill -9 and reap."""
        if self.running():
            self.proc.kill()
        if self.proc is not None:
            self.returncodes.append(self.proc.wait())

    def cleanup(self):
        """Make sure no process is left behind (SIGTERM, then SIGKILL)."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self):
        chunks = []
        for path in self.logs:
            try:
                with open(path, "rb") as f:
                    chunks.append(f.read().decode("utf-8", "replace"))
            except OSError:
                pass
        return "".join(chunks)

    def sanitizer_report(self):
        """The first ASan/UBSan/LSan/TSan report in the logs, or None (for sanitizer builds)."""
        text = self.log()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "WARNING: ThreadSanitizer:", "ERROR: ThreadSanitizer:", "FATAL: ThreadSanitizer"):
            i = text.find(marker)
            if i >= 0:
                return text[max(0, i - 200):i + 3000]
        return None

    def log_tail(self, nchars=6000):
        text = self.log()
        return ("..." + text[-nchars:]) if len(text) > nchars else text


# --------------------------------------------------------------------------- CLI for shell scripts

def pid_alive(pid):
    """True if process pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="harness.py", description="Throwaway clusters and checks for scripts.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("up", help="create and start src and dst clusters in DIR; print shell variables")
    p.add_argument("dir")
    p = sub.add_parser("down", help="stop the clusters in DIR and remove it")
    p.add_argument("dir")
    p = sub.add_parser("wait-caught-up", help="wait until PIPELINE's watermark >= the source WAL position")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("pipeline")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--pid", type=int, help="fail at once if this process (the daemon) exits")
    p = sub.add_parser("compare", help="compare tables by content; exit 1 on any difference")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("tables", nargs="+")
    args = ap.parse_args(argv)

    if args.cmd == "up":
        os.makedirs(args.dir, exist_ok=True)
        os.chmod(args.dir, 0o755)
        if is_root():
            pw = pwd.getpwnam("postgres")
            os.chown(args.dir, pw.pw_uid, pw.pw_gid)
        src, dst = create_clusters(args.dir)
        print("PGHOST=%s\nPGUSER=%s\nSRC_PORT=%d\nDST_PORT=%d" % (args.dir, src.user, src.port, dst.port))
    elif args.cmd == "down":
        destroy_clusters(args.dir)
    elif args.cmd == "wait-caught-up":
        def alive():
            if args.pid and not pid_alive(args.pid):
                raise RuntimeError("process %d exited" % args.pid)
        try:
            print(wait_caught_up(args.src, args.dst, args.pipeline, args.timeout, alive))
        except (TimeoutError, RuntimeError) as e:
            print(e, file=sys.stderr)
            return 1
    elif args.cmd == "compare":
        ok, lines, problems = compare_tables(args.src, args.dst, args.tables)
        print("\n".join(lines))
        if problems:
            print("\n".join(problems), file=sys.stderr)
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
