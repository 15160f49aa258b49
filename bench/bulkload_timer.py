#!/usr/bin/python3
"""Timing and checking helpers for bench/bulkload.sh (run with /usr/bin/python3: needs psycopg 3).

Each subcommand prints KEY=VALUE lines on stdout (for `eval` in the shell script) and explains
failures on stderr with a non-zero exit.  Polling uses one persistent connection, every
--interval seconds (50 ms), so the observer costs the 2-core machine little.

  tidemark  start `tidemark run`, time it until every row of tidemark.sync_state for the pipeline
            is synced (and every table has its plan), read VmHWM/VmRSS/CPU time of the daemon just
            before stopping it with SIGTERM (it must exit 0).
  native    CREATE SUBSCRIPTION ... WITH (copy_data = true) on the target, time it until every
            table of the subscription is in state 'r' (ready) in pg_subscription_rel; then DROP
            SUBSCRIPTION (which drops its slot on the source).
  verify    compare the pgbench tables of the source with one or more targets: row count and an
            md5 over the per-row md5s in primary-key order (every column for pgbench_history).
  run       run a command (pgcopydb, the psql pipe) with its output to --log (or stderr); print
            its wall time and the CPU seconds of it and every descendant it waited for.
  cpu       CPU seconds used so far by the PostgreSQL clusters in the given data directories:
            the postmaster, its live children and every child it has reaped (cutime/cstime), so
            the backends, walsenders and replication workers of a load that have exited count.
"""

import argparse
import os
import resource
import signal
import subprocess
import sys
import time

import psycopg
from psycopg import sql

COMPARE_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO,MDY -c IntervalStyle=postgres -c extra_float_digits=1"
DIGEST_ORDER = {
    "pgbench_accounts": "aid",
    "pgbench_branches": "bid",
    "pgbench_tellers": "tid",
    "pgbench_history": "tid, bid, aid, delta, mtime, filler",
}


def connect(conninfo, compare=False):
    kw = {"options": COMPARE_OPTIONS} if compare else {}
    return psycopg.connect(conninfo, autocommit=True, **kw)


def emit(**kv):
    for k, v in kv.items():
        if isinstance(v, float):
            v = "%.3f" % v
        print("%s=%s" % (k.upper(), v))
    sys.stdout.flush()


def fail(msg):
    print("bulkload_timer: %s" % msg, file=sys.stderr)
    sys.exit(1)


def tail(path, nbytes=6000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - nbytes))
            return f.read().decode("utf-8", "replace")
    except OSError as e:
        return "<cannot read %s: %s>" % (path, e)


def proc_stats(pid):
    """VmHWM and VmRSS in kB and CPU seconds (user + system) of a live process."""
    out = {"vmhwm_kb": -1, "vmrss_kb": -1, "cpu_s": -1.0}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    out["vmhwm_kb"] = int(line.split()[1])
                elif line.startswith("VmRSS:"):
                    out["vmrss_kb"] = int(line.split()[1])
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out["cpu_s"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        pass
    return out


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# --------------------------------------------------------------------------- tidemark

def sync_progress(conn, pipeline, ntables):
    """(parts synced, parts known, done?) from tidemark.sync_state; done when every one of the
    ntables tables has planned parts (no placeholder row left) and all of them are synced."""
    if conn.execute("SELECT to_regclass('tidemark.sync_state')").fetchone()[0] is None:
        return 0, 0, False
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE state IN ('synced', 'ready')), count(*),"
        " count(DISTINCT (schema_name, table_name)), count(*) FILTER (WHERE part_kind IS NULL AND"
        " state NOT IN ('synced', 'ready'))"
        " FROM tidemark.sync_state WHERE pipeline = %s", (pipeline,)).fetchone()
    synced, total, tables, placeholders = row
    return synced, total, tables == ntables and total > 0 and synced == total and placeholders == 0


def cmd_tidemark(a):
    dst = connect(a.dst)
    cpu0 = children_cpu()
    with open(a.log, "ab") as log:
        t0 = time.monotonic()
        proc = subprocess.Popen([a.bin, "run", "--config", a.config], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL)
    with open(a.pidfile, "w") as f:
        f.write("%d\n" % proc.pid)
    deadline = t0 + a.timeout
    last_report = t0
    while True:
        if proc.poll() is not None:
            fail("tidemark exited with %d during the load:\n%s" % (proc.returncode, tail(a.log)))
        synced, total, done = sync_progress(dst, a.pipeline, a.tables)
        now = time.monotonic()
        if done:
            seconds = now - t0
            break
        if now > deadline:
            proc.kill()
            fail("tidemark did not finish the load within %.0f s (%d of %d parts)" % (a.timeout, synced, total))
        if now - last_report >= 10:
            print("  tidemark: %d of %d part(s) synced after %.0f s" % (synced, total, now - t0), file=sys.stderr)
            last_report = now
        time.sleep(a.interval)
    stats = proc_stats(proc.pid)  # just before stopping: VmHWM is the peak of the whole run
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        fail("tidemark did not stop within 60 s after SIGTERM:\n%s" % tail(a.log))
    if rc != 0:
        fail("tidemark exited with %d after SIGTERM:\n%s" % (rc, tail(a.log)))
    cpu = children_cpu() - cpu0  # every thread, start to exit
    parts = dst.execute("SELECT table_name || ':' || count(*) || ' ' || min(part_kind) FROM tidemark.sync_state"
                        " WHERE pipeline = %s GROUP BY table_name ORDER BY 1", (a.pipeline,)).fetchall()
    emit(tm_seconds=seconds, tm_vmhwm_kb=stats["vmhwm_kb"], tm_vmrss_kb=stats["vmrss_kb"],
         tm_cpu_s=cpu, tm_parts="'%s'" % ", ".join(r[0] for r in parts))


# --------------------------------------------------------------------------- native

def cmd_native(a):
    dst = connect(a.dst)
    t0 = time.monotonic()
    dst.execute(sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (copy_data = true)").format(
        sql.Identifier(a.sub), sql.Literal(a.sub_conninfo), sql.Identifier(a.pub)))
    deadline = t0 + a.timeout
    last_report = t0
    while True:
        states = dict(dst.execute(
            "SELECT srsubstate::text, count(*) FROM pg_subscription_rel r JOIN pg_subscription s"
            " ON s.oid = r.srsubid WHERE s.subname = %s GROUP BY 1", (a.sub,)).fetchall())
        n = sum(states.values())
        now = time.monotonic()
        if n == a.tables and states.get("r", 0) == n:
            seconds = now - t0
            break
        if now > deadline:
            fail("the subscription did not reach 'r' for every table within %.0f s: %s" % (a.timeout, states))
        if now - last_report >= 10:
            print("  native: table states %s after %.0f s" % (states, now - t0), file=sys.stderr)
            last_report = now
        time.sleep(a.interval)
    errors = dst.execute("SELECT coalesce(sum(sync_error_count + apply_error_count), 0)"
                         " FROM pg_stat_subscription_stats WHERE subname = %s", (a.sub,)).fetchone()[0]
    dst.execute(sql.SQL("DROP SUBSCRIPTION {}").format(sql.Identifier(a.sub)))
    emit(native_seconds=seconds, native_errors=errors)


# --------------------------------------------------------------------------- verify

def digest(conn, table):
    q = sql.SQL("SELECT count(*), coalesce(md5(string_agg(md5(__r::text), '' ORDER BY {order})), '-')"
                " FROM public.{t} __r").format(t=sql.Identifier(table), order=sql.SQL(DIGEST_ORDER[table]))
    return tuple(conn.execute(q).fetchone())


def cmd_verify(a):
    src = connect(a.src, compare=True)
    want = {t: digest(src, t) for t in DIGEST_ORDER}
    ok = True
    for name, conninfo in a.target:
        with connect(conninfo, compare=True) as conn:
            for t in DIGEST_ORDER:
                got = digest(conn, t)
                same = got == want[t]
                ok &= same
                print("  %s %-9s %-17s src %9d rows %s  dst %9d rows %s" % (
                    "ok  " if same else "DIFF", name, t, want[t][0], want[t][1], got[0], got[1]), file=sys.stderr)
    emit(verify_ok=int(ok), accounts_rows=want["pgbench_accounts"][0])
    return 0 if ok else 1


# --------------------------------------------------------------------------- run, cpu

def cmd_run(a):
    argv = a.argv[1:] if a.argv and a.argv[0] == "--" else a.argv
    t0, cpu0 = time.monotonic(), children_cpu()
    if a.log:
        with open(a.log, "ab") as log:
            rc = subprocess.call(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    else:
        rc = subprocess.call(argv, stdin=subprocess.DEVNULL, stdout=sys.stderr)
    emit(run_seconds=time.monotonic() - t0, run_cpu_s=children_cpu() - cpu0, run_rc=rc)
    return 0


def stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def cluster_cpu(datadir):
    tick = os.sysconf("SC_CLK_TCK")
    with open(os.path.join(datadir, "postmaster.pid")) as f:
        pm = int(f.readline())
    fields = stat_fields(pm)
    # utime, stime, cutime, cstime are fields 14-17 (indexes 11-14 after the command name)
    total = sum(int(x) for x in fields[11:15])
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            f = stat_fields(int(name))
        except OSError:
            continue
        if int(f[1]) == pm:  # field 4: ppid
            total += int(f[11]) + int(f[12])
    return total / tick


def cmd_cpu(a):
    emit(cpu_s=sum(cluster_cpu(d) for d in a.datadir))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("tidemark")
    p.add_argument("--bin", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--pidfile", required=True)
    p.add_argument("--dst", required=True)
    p.add_argument("--pipeline", required=True)
    p.add_argument("--tables", type=int, required=True, help="number of tables in the pipeline")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--interval", type=float, default=0.05)
    p = sub.add_parser("native")
    p.add_argument("--dst", required=True)
    p.add_argument("--sub", required=True)
    p.add_argument("--pub", required=True)
    p.add_argument("--sub-conninfo", required=True)
    p.add_argument("--tables", type=int, required=True)
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--interval", type=float, default=0.05)
    p = sub.add_parser("verify")
    p.add_argument("--src", required=True)
    p.add_argument("--target", nargs=2, action="append", metavar=("NAME", "CONNINFO"), required=True)
    p = sub.add_parser("run")
    p.add_argument("--log", help="append the command's output here (default: stderr)")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p = sub.add_parser("cpu")
    p.add_argument("--datadir", action="append", required=True)
    a = ap.parse_args()
    return {"tidemark": cmd_tidemark, "native": cmd_native, "verify": cmd_verify, "run": cmd_run,
            "cpu": cmd_cpu}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
