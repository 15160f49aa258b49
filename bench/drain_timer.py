#!/usr/bin/python3
"""Timing and checking helpers for bench/drain.sh (run with /usr/bin/python3: needs psycopg 3).

Each subcommand prints KEY=VALUE lines on stdout (for `eval` in the shell script) and explains
failures on stderr with a non-zero exit.  Polling uses one persistent connection per database,
every --interval seconds (50 ms), so the observer costs the 2-core machine little.

  tidemark      start `tidemark run`, wait until tidemark.watermark.lsn >= --lsn (or the source's
                WAL position right after start with --lsn now), also note when pgbench_history on
                the target reaches --history-count rows; read VmHWM/VmRSS/CPU time; SIGTERM it.
  native-init   CREATE SUBSCRIPTION (copy_data), wait for every table in state 'r' and the slot
                to confirm the source's position, then DISABLE it and wait for the worker to exit.
  native        ENABLE the subscription, wait until the target's pgbench_history count and the
                pgbench_accounts digest equal the source's, then (informational) until
                pg_stat_subscription.latest_end_lsn >= --lsn; DISABLE it again.
  digests       print the digest of each pgbench table of one database.
  verify        compare the pgbench tables of the source with one or more targets.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

import psycopg
from psycopg import sql

# The same display settings on every comparison connection, whatever the cluster defaults.
COMPARE_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO,MDY -c IntervalStyle=postgres -c extra_float_digits=1"

# Row digest per table: md5 over the per-row md5s in a total order (the primary key, or every
# column for pgbench_history, which has no key).  Hashing each row first keeps the aggregated
# string at 32 bytes a row, so large scales stay far below the 1 GB text limit.
DIGEST_ORDER = {
    "pgbench_accounts": "aid",
    "pgbench_branches": "bid",
    "pgbench_tellers": "tid",
    "pgbench_history": "tid, bid, aid, delta, mtime, filler",
}
TABLES = list(DIGEST_ORDER)


def connect(conninfo, compare=False):
    kw = {"options": COMPARE_OPTIONS} if compare else {}
    return psycopg.connect(conninfo, autocommit=True, **kw)


def one(conn, query, params=None):
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def digest(conn, table):
    """(row count, md5 of the per-row md5s in key order) of public.<table>."""
    q = sql.SQL("SELECT count(*), coalesce(md5(string_agg(md5(__r::text), '' ORDER BY {order})), '-')"
                " FROM public.{t} __r").format(t=sql.Identifier(table), order=sql.SQL(DIGEST_ORDER[table]))
    n, d = conn.execute(q).fetchone()
    return n, d


def proc_stats(pid):
    """VmHWM and VmRSS in kB, CPU seconds (user+system) of a live process."""
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
        # fields[0] is the state (field 3); utime and stime are fields 14 and 15.
        out["cpu_s"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        pass
    return out


def cpu_of(pids):
    """Summed CPU seconds of live processes (the servers' backends run as postgres; we may read
    their /proc/PID/stat as root or as postgres)."""
    total = 0.0
    for pid in pids:
        if pid:
            c = proc_stats(pid)["cpu_s"]
            if c < 0:
                return -1.0
            total += c
    return total


def server_cpu(src, dst, slot, dst_pids_query, params=()):
    """CPU seconds of the source walsender serving `slot` and of the target processes applying."""
    sender = one(src, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,))
    appliers = [r[0] for r in dst.execute(dst_pids_query, params).fetchall()]
    return cpu_of([sender]), cpu_of(appliers)


def tail(path, nbytes=6000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - nbytes))
            return f.read().decode("utf-8", "replace")
    except OSError as e:
        return "<cannot read %s: %s>" % (path, e)


def emit(**kv):
    for k, v in kv.items():
        if isinstance(v, float):
            v = "%.3f" % v
        print("%s=%s" % (k.upper(), v))
    sys.stdout.flush()


def fail(msg):
    print("drain_timer: %s" % msg, file=sys.stderr)
    sys.exit(1)


# --------------------------------------------------------------------------- tidemark

def copy_done(dst, pipeline):
    """The watermark once tidemark's initial copy has committed, else None.

    Builds that keep per-table copy state (tidemark.sync_state) write the watermark row before
    copying: there the copy is done when no table is still 'pending' or 'copying'."""
    try:
        wm = one(dst, "SELECT lsn::text FROM tidemark.watermark WHERE pipeline = %s", (pipeline,))
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        return None
    if wm is not None and one(dst, "SELECT to_regclass('tidemark.sync_state') IS NOT NULL"):
        if one(dst, "SELECT count(*) FROM tidemark.sync_state WHERE pipeline = %s"
                    " AND state IN ('pending', 'copying')", (pipeline,)):
            return None
    return wm


def cmd_tidemark(a):
    dst = connect(a.dst)
    src = connect(a.src)
    log = open(a.log, "ab")
    t0 = time.monotonic()
    proc = subprocess.Popen([a.bin, "run", "--config", a.config], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log)
    with open(a.pidfile, "w") as f:
        f.write("%d\n" % proc.pid)
    target = None if a.lsn == "now" else a.lsn
    deadline = t0 + a.timeout
    t_wm = t_data = t_copy = None
    wm = None
    try:
        while target is None:
            # --lsn now (initial copy): once the copy has committed (the watermark row exists), write
            # a WAL record on the source and wait for the watermark to pass it.  The watermark then
            # moved during this run, which also sidesteps a stop that hangs when SIGTERM arrives
            # before the daemon's first target Sync (see docs/BENCHMARKS.md, "tidemark problems").
            if proc.poll() is not None:
                fail("tidemark exited with code %s during the initial copy\n%s" % (proc.returncode, tail(a.log)))
            wm = copy_done(dst, a.pipeline)
            if wm is not None:
                t_copy = time.monotonic() - t0
                # (the function returns the record's end; pg_current_wal_lsn() may still be behind it)
                target = one(src, "SELECT pg_logical_emit_message(false, 'tidemark-bench', 'copy done')::text")
                break
            if time.monotonic() > deadline:
                fail("tidemark did not finish its initial copy within %.0fs\n%s" % (a.timeout, tail(a.log)))
            time.sleep(a.interval)
        while True:
            now = time.monotonic()
            if proc.poll() is not None:
                fail("tidemark exited with code %s before catching up (watermark %s, target %s)%s\n%s"
                     % (proc.returncode, wm, target,
                        " -- a signal from outside this benchmark stopped it" if proc.returncode == 0 else "",
                        tail(a.log)))
            try:
                row = dst.execute("SELECT lsn::text, lsn >= %s::pg_lsn FROM tidemark.watermark"
                                  " WHERE pipeline = %s", (target, a.pipeline)).fetchone()
            except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
                row = None
            if row:
                wm = row[0]
            if a.history_count is not None and t_data is None:
                if one(dst, "SELECT count(*) FROM public.pgbench_history") == a.history_count:
                    t_data = now - t0
            if row and row[1]:
                t_wm = now - t0
                walsender_cpu, target_cpu = server_cpu(
                    src, dst, a.slot, "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND backend_type = 'client backend' AND pid <> pg_backend_pid()")
                break
            if now > deadline:
                fail("tidemark did not reach %s within %.0fs (watermark %s)\n%s"
                     % (target, a.timeout, wm, tail(a.log)))
            time.sleep(a.interval)
        stats = proc_stats(proc.pid)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
            os.unlink(a.pidfile)
            fail("tidemark did not exit within 60s of SIGTERM (killed)\n%s" % tail(a.log))
        os.unlink(a.pidfile)
    if rc != 0:
        fail("tidemark exited with %d after SIGTERM\n%s" % (rc, tail(a.log)))
    if t_data is None:
        t_data = t_wm  # the watermark commits with the data: data is complete by then at the latest
    emit(tm_target_lsn=target, tm_watermark=wm, tm_seconds=t_wm, tm_data_seconds=t_data,
         tm_copy_seconds=t_copy if t_copy is not None else "none",
         tm_walsender_cpu_s=walsender_cpu, tm_target_cpu_s=target_cpu,
         tm_vmhwm_kb=stats["vmhwm_kb"], tm_vmrss_kb=stats["vmrss_kb"], tm_cpu_s=stats["cpu_s"])


# --------------------------------------------------------------------------- native

def sub_worker_running(dst, sub):
    return one(dst, "SELECT count(*) FROM pg_stat_subscription WHERE subname = %s AND pid IS NOT NULL",
               (sub,)) > 0


def disable_and_wait(dst, src, sub, timeout=60.0):
    dst.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(sql.Identifier(sub)))
    deadline = time.monotonic() + timeout
    while sub_worker_running(dst, sub) or one(
            src, "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (sub,)):
        if time.monotonic() > deadline:
            fail("subscription %s still has a worker or an active slot %.0fs after DISABLE" % (sub, timeout))
        time.sleep(0.1)


def cmd_native_init(a):
    dst = connect(a.dst)
    src = connect(a.src)
    ntables = one(src, "SELECT count(*) FROM pg_publication_tables WHERE pubname = %s", (a.pub,))
    t0 = time.monotonic()
    dst.execute(sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (copy_data = true)").format(
        sql.Identifier(a.sub), sql.Literal(a.sub_conninfo), sql.Identifier(a.pub)))
    deadline = t0 + a.timeout
    launched_at = None
    while True:
        if launched_at is None and sub_worker_running(dst, a.sub):
            launched_at = time.time()
        ready = one(dst, "SELECT count(*) FILTER (WHERE r.srsubstate = 'r') FROM pg_subscription_rel r"
                         " JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = %s", (a.sub,))
        if ready == ntables:
            break
        if time.monotonic() > deadline:
            fail("subscription %s: only %s of %s tables ready after %.0fs" % (a.sub, ready, ntables, a.timeout))
        time.sleep(0.1)
    t_sync = time.monotonic() - t0
    target = one(src, "SELECT pg_current_wal_lsn()::text")
    while not one(src, "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots WHERE slot_name = %s",
                  (target, a.sub)):
        if time.monotonic() > deadline:
            fail("subscription %s: slot did not confirm %s within %.0fs" % (a.sub, target, a.timeout))
        time.sleep(0.1)
    disable_and_wait(dst, src, a.sub)
    emit(native_init_seconds=t_sync, native_launched_at=launched_at or time.time())


def cmd_native(a):
    dst = connect(a.dst)
    src = connect(a.src)
    check = connect(a.dst, compare=True)
    # The launcher starts a worker at most once per wal_retrieve_retry_interval (5 s by default)
    # and, woken earlier than that after its last start, sleeps a full interval: ENABLE only once
    # that interval has passed since it started the apply worker in native-init, so the drain is
    # not charged a launcher back-off that a long-stopped subscription would not see.
    retry_s = one(dst, "SELECT setting::float / 1000 FROM pg_settings WHERE name = 'wal_retrieve_retry_interval'")
    if a.launched_at:
        wait = a.launched_at + retry_s + 0.5 - time.time()
        if wait > 0:
            time.sleep(wait)
    t0 = time.monotonic()
    dst.execute(sql.SQL("ALTER SUBSCRIPTION {} ENABLE").format(sql.Identifier(a.sub)))
    deadline = t0 + a.timeout
    t_data = t_worker = None
    n = None
    while t_data is None:
        now = time.monotonic()
        if t_worker is None and sub_worker_running(dst, a.sub):
            t_worker = now - t0
        n = one(dst, "SELECT count(*) FROM public.pgbench_history")
        if n == a.history_count:
            # CPU first: the digest below keeps running for a while, the servers idle meanwhile.
            walsender_cpu, target_cpu = server_cpu(
                src, dst, a.sub, "SELECT pid FROM pg_stat_subscription WHERE subname = %s AND pid IS NOT NULL",
                (a.sub,))
            # Applied in commit order, one local transaction per source transaction: the last
            # history row arriving means every transaction before it is applied.  Confirm on the
            # biggest table before accepting (this check is not part of the timed interval).
            got = digest(check, "pgbench_accounts")
            if a.accounts_digest is None or "%d:%s" % got == a.accounts_digest:
                t_data = now - t0
                break
            print("drain_timer: history count reached but pgbench_accounts differs (%d:%s); polling on"
                  % got, file=sys.stderr)
        if now > deadline:
            fail("native subscription did not apply the backlog within %.0fs (target history %s of %s rows)"
                 % (a.timeout, n, a.history_count))
        time.sleep(a.interval)
    # Informational: when the subscriber reported the backlog end back to the source.
    t_ack = None
    ack_deadline = time.monotonic() + a.ack_timeout
    while time.monotonic() < ack_deadline:
        now = time.monotonic()
        if one(dst, "SELECT bool_or(latest_end_lsn >= %s::pg_lsn) FROM pg_stat_subscription"
                    " WHERE subname = %s AND relid IS NULL", (a.lsn, a.sub)):
            t_ack = now - t0
            break
        time.sleep(a.interval)
    errors = one(dst, "SELECT apply_error_count + sync_error_count FROM pg_stat_subscription_stats"
                      " WHERE subname = %s", (a.sub,))
    disable_and_wait(dst, src, a.sub)
    emit(native_seconds=t_data, native_ack_seconds=t_ack if t_ack is not None else "none",
         native_worker_seconds=t_worker if t_worker is not None else t_data,
         native_walsender_cpu_s=walsender_cpu, native_target_cpu_s=target_cpu,
         native_errors=errors)


# --------------------------------------------------------------------------- digests / verify

def cmd_digests(a):
    with connect(a.conninfo, compare=True) as c:
        for t in a.tables or TABLES:
            n, d = digest(c, t)
            print("%s %d:%s" % (t, n, d))


def cmd_verify(a):
    ok = True
    with connect(a.src, compare=True) as sc:
        want = {t: digest(sc, t) for t in TABLES}
    for label, conninfo in a.target:
        with connect(conninfo, compare=True) as dc:
            for t in TABLES:
                got = digest(dc, t)
                same = got == want[t]
                ok &= same
                print("  %-4s %-9s %-17s source %8d rows %s  target %8d rows %s" % (
                    "ok" if same else "DIFF", label, t, want[t][0], want[t][1][:12], got[0], got[1][:12]))
    sys.exit(0 if ok else 1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = p.add_subparsers(dest="cmd", required=True)

    t = sp.add_parser("tidemark")
    t.add_argument("--bin", required=True)
    t.add_argument("--config", required=True)
    t.add_argument("--log", required=True)
    t.add_argument("--pidfile", required=True)
    t.add_argument("--src", required=True)
    t.add_argument("--dst", required=True)
    t.add_argument("--pipeline", required=True)
    t.add_argument("--slot", required=True)
    t.add_argument("--lsn", required=True, help="LSN to reach, or 'now'")
    t.add_argument("--history-count", type=int)
    t.add_argument("--timeout", type=float, default=600)
    t.add_argument("--interval", type=float, default=0.05)
    t.set_defaults(fn=cmd_tidemark)

    ni = sp.add_parser("native-init")
    ni.add_argument("--src", required=True)
    ni.add_argument("--dst", required=True)
    ni.add_argument("--sub", required=True)
    ni.add_argument("--pub", required=True)
    ni.add_argument("--sub-conninfo", required=True)
    ni.add_argument("--timeout", type=float, default=600)
    ni.set_defaults(fn=cmd_native_init)

    n = sp.add_parser("native")
    n.add_argument("--src", required=True)
    n.add_argument("--dst", required=True)
    n.add_argument("--sub", required=True)
    n.add_argument("--lsn", required=True)
    n.add_argument("--history-count", type=int, required=True)
    n.add_argument("--launched-at", type=float, help="epoch seconds the launcher last started a worker")
    n.add_argument("--accounts-digest", help="COUNT:MD5 of the source's pgbench_accounts")
    n.add_argument("--timeout", type=float, default=600)
    n.add_argument("--ack-timeout", type=float, default=15)
    n.add_argument("--interval", type=float, default=0.05)
    n.set_defaults(fn=cmd_native)

    d = sp.add_parser("digests")
    d.add_argument("conninfo")
    d.add_argument("tables", nargs="*")
    d.set_defaults(fn=cmd_digests)

    v = sp.add_parser("verify")
    v.add_argument("--src", required=True)
    v.add_argument("--target", nargs=2, action="append", required=True, metavar=("LABEL", "CONNINFO"))
    v.set_defaults(fn=cmd_verify)

    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
