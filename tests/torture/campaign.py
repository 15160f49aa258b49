#!/usr/bin/env python3
"""Fault campaign: kill -9, cluster restarts and network cuts while a writer
runs; counts the rows lost, duplicated and differing on the target.

Two throwaway clusters listen on unix sockets only; the daemon reaches each
through a proxy on 127.0.0.1 (tcpproxy.py) that the campaign can cut (RST)
or black-hole.  The writer (workload.py) talks to the source directly.

A trial is one fault:
  kill9          kill -9 of the daemon, restarted at once (as systemd would)
  src_restart    pg_ctl restart of the source (-m fast or immediate, at random)
  dst_restart    the same for the target
  src_cut        every connection through the source proxy reset
  dst_cut        the same for the target proxy
  src_blackhole  nothing forwarded for 1-4 s, then released or cut (at random)
  dst_blackhole  the same for the target proxy
injected in the "copy" phase (a fresh pipeline, whose initial copy the fault
interrupts, at a random point of its expected duration) or the "stream"
phase (a pipeline whose copy is complete, 0.2-3 s into the trial).  Then:
let the daemon run (restarting it whenever it exits, as systemd's
Restart=on-failure would, and recording why it exited), pause the writer,
wait until the pipeline caught up (with a deadline), compare every table,
resume the writer.  Comparing per trial attributes every difference to one
fault; a trial that finds one gets a fresh pipeline for the next trial so a
difference is counted once.

Per table, source and target are compared as multisets of row texts (md5
first, rows only on a mismatch); the rows only on one side are paired by the
table's row identity (workload.TABLE_KEYS): a pair is one "differing" row,
an unpaired source row is "lost", an unpaired target row is "duplicated"
(an extra copy, or a row the source deleted).

Exit status 0 only when no row was lost, duplicated or differing, every
trial caught up, the daemon never stopped on "diverged", and the target's
watermark never moved backwards.  Other daemon exits (anything but a lost
connection) are findings listed in the report; --strict fails on them too.

    tests/torture/campaign.py --trials 75 --seed 1234
    tests/torture/campaign.py --short            # CI: one trial per fault kind
"""

import argparse
import collections
import os
import random
import re
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

import harness  # noqa: E402
import tcpproxy  # noqa: E402
import workload  # noqa: E402

KINDS = ["kill9", "src_restart", "dst_restart", "src_cut", "dst_cut", "src_blackhole", "dst_blackhole"]
SRC_DB = "torture"

# An exit whose message says only that a connection was lost: expected while
# a cluster is away (systemd restarts the daemon), listed but not a failure.
OUTAGE_PATTERNS = re.compile(
    r"could not connect|connection to server|server closed the connection|terminating connection|"
    r"Connection refused|No such file or directory|connection reset|Connection reset|"
    r"the database system is (starting up|shutting down|in recovery)|could not receive data|"
    r"could not send data|lost synchronization|SSL SYSCALL|EOF|no connection to the server|"
    r"server conn crashed|unexpected (EOF|response)", re.I)


def log(msg):
    print(msg, flush=True)


class Trial:
    def __init__(self, number, kind, phase, delay, detail=""):
        self.number, self.kind, self.phase, self.delay, self.detail = number, kind, phase, delay, detail
        self.when = ""          # the pipeline's state observed at the fault
        self.exits = []         # (returncode, message, category) of daemon exits we did not cause
        self.lost = self.dup = self.diff = 0
        self.problems = []      # row-level details
        self.caught_up = None   # seconds from pausing the writer to caught up, or None
        self.wm_backwards = self.confirmed_ahead = 0  # FeedbackSampler samples
        self.result = ""

    @property
    def failed(self):
        """Rows wrong, not caught up, or the daemon judged the target diverged."""
        return bool(self.lost or self.dup or self.diff or self.caught_up is None or self.wm_backwards or
                    self.confirmed_ahead or any(cat == "diverged" for _, _, cat in self.exits))

    @property
    def clean(self):
        """failed() is false and the daemon left only on lost connections."""
        return not self.failed and all(cat == "outage" for _, _, cat in self.exits)


def plan_trials(rng, n, short, kinds=None):
    """(kind, phase, detail or None: drawn at random) per trial.

    Full: about 4% of the trials for each kind other than kill9 (at least
    one each), kill9 for the rest; 40% of the trials hit an initial copy.
    Short: every kind once, plus a second kill9 so both phases see one.
    kinds (a list) instead: each trial one of those kinds, at random."""
    if short:
        # Fixed details: an immediate target restart while streaming (the
        # harness's targets run synchronous_commit=off: this is the fault
        # that once lost acknowledged commits, see docs/BENCHMARKS.md).
        return [("kill9", "copy", None), ("kill9", "stream", None), ("src_restart", "stream", "immediate"),
                ("dst_restart", "stream", "immediate"), ("src_cut", "copy", None), ("dst_cut", "stream", None),
                ("src_blackhole", "stream", "2.0s then release"), ("dst_blackhole", "stream", "2.0s then cut")]
    if kinds:
        return [(rng.choice(kinds), "copy" if rng.random() < 0.4 else "stream", None) for _ in range(n)]
    others = max(1, round(n * 0.04))
    kinds = [k for k in KINDS[1:] for _ in range(others)]
    kinds += ["kill9"] * max(0, n - len(kinds))
    rng.shuffle(kinds)
    return [(k, "copy" if rng.random() < 0.4 else "stream", None) for k in kinds[:n]]


class Campaign:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.base = harness.make_base_dir("tidemark-torture-")
        self.workdir = os.path.join(self.base, "work")
        os.makedirs(self.workdir)
        self.src = self.dst = None
        self.proxies = {}
        self.writer = None
        self.daemon = None
        self.round = 0
        self.pipeline = None
        self.sampler = None
        self.copy_estimate = None
        self.trials = []
        self.restarts = 0
        self.need_reset = True

    # ------------------------------------------------------------ setup
    def setup(self):
        log("clusters and proxies under %s" % self.base)
        self.src, self.dst = harness.create_clusters(self.base)
        for name, cluster in (("src", self.src), ("dst", self.dst)):
            path = os.path.join(cluster.host, ".s.PGSQL.%d" % cluster.port)
            self.proxies[name] = tcpproxy.Proxy(path, name)
        if self.args.target_synchronous_commit:
            harness.execute(self.dst.conninfo(), "ALTER SYSTEM SET synchronous_commit = %s" %
                            self.args.target_synchronous_commit)
            harness.execute(self.dst.conninfo(), "SELECT pg_reload_conf()")
        harness.execute(self.src.conninfo(), "CREATE DATABASE " + SRC_DB)
        workload.create_schema(self.src_direct)
        t0 = time.monotonic()
        rows = workload.sizes(self.args.big_rows, small=self.args.short)
        workload.preload(self.src_direct, rows)
        log("preloaded %s rows in %.1f s" % (", ".join("%s %d" % kv for kv in rows.items()), time.monotonic() - t0))
        self.writer = workload.Writer(self.src_direct, self.args.seed + 1, rows, self.args.rate)
        self.writer.start()

    @property
    def src_direct(self):
        return self.src.conninfo(SRC_DB)

    @property
    def dst_db(self):
        return "torture_r%d" % self.round

    @property
    def dst_direct(self):
        return self.dst.conninfo(self.dst_db)

    def via_proxy(self, name, dbname):
        cluster = self.src if name == "src" else self.dst
        return "host=127.0.0.1 port=%d dbname=%s user=%s" % (self.proxies[name].port, dbname, cluster.user)

    def config(self):
        extra = ("apply: {batch_max_changes: 2000, status_interval_ms: 1000}\n"
                 "copy: {jobs: 2, part_size_mb: %d}\n" % self.args.part_size_mb)
        return harness.render_config(self.pipeline, self.via_proxy("src", SRC_DB), self.via_proxy("dst", self.dst_db),
                                     log_level="info", extra=extra)

    # ------------------------------------------------------------ pipeline rounds
    def new_round(self):
        """A fresh pipeline: its own slot, publication and target database."""
        old_pipeline, old_db = self.pipeline, self.dst_db if self.round else None
        if self.daemon is not None:
            self.daemon.kill9()
        if self.sampler is not None:
            self.finish_sampler()
        if old_pipeline:
            self.drop_source_objects(old_pipeline)
            harness.execute(self.dst.conninfo(), sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(old_db)))
        self.round += 1
        self.pipeline = "torture_r%d" % self.round
        harness.execute(self.dst.conninfo(), sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.dst_db)))
        workload.create_schema(self.dst_direct)
        self.daemon = harness.Daemon(self.workdir, self.config(), self.args.binary, name=self.pipeline)
        self.daemon.start()
        self.round_started = time.monotonic()
        self.sampler = FeedbackSampler(self.src_direct, self.dst_direct, self.pipeline)
        self.sampler.start()
        self.need_reset = False

    def finish_sampler(self):
        self.sampler.finish()
        self.sampler = None

    def sampler_findings(self, trial):
        """Move what the sampler saw since the last call into the trial."""
        smp = self.sampler
        if smp is None:
            return
        back, ahead = list(smp.backwards), list(smp.ahead)
        del smp.backwards[:len(back)]
        del smp.ahead[:len(ahead)]
        if back:
            trial.problems.append("watermark moved backwards: %s" % ", ".join("%s -> %s" % v for v in back[:5]))
        if ahead:
            trial.problems.append("slot confirmed past the target's watermark (%d samples): %s" % (
                len(ahead), ", ".join("confirmed %s > watermark %s" % v for v in ahead[:5])))
        trial.wm_backwards += len(back)
        trial.confirmed_ahead += len(ahead)

    def drop_source_objects(self, pipeline):
        admin = self.src.conninfo(SRC_DB)
        slot = "tidemark_" + pipeline

        def dropped():
            rows = harness.execute(admin, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            if not rows:
                return True
            if rows[0][0] is not None:
                harness.execute(admin, "SELECT pg_terminate_backend(%s)", (rows[0][0],))
                return False
            try:
                harness.execute(admin, "SELECT pg_drop_replication_slot(%s)", (slot,))
            except psycopg.Error:
                return False
            return True

        harness.wait_for(dropped, 60, "slot %s to be dropped" % slot, interval=0.1)
        harness.execute(admin, sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(slot)))

    # ------------------------------------------------------------ daemon supervision
    def supervise(self, trial):
        """Restart the daemon if it exited by itself; record why it exited."""
        d = self.daemon
        if d.running():
            return
        rc = d.proc.returncode
        d.returncodes.append(rc)
        msg = last_error(d)
        cat = "diverged" if "diverged" in msg else "outage" if OUTAGE_PATTERNS.search(msg) else "error"
        trial.exits.append((rc, msg, cat))
        log("    daemon exited with %s (%s): %s" % (rc, cat, msg))
        if len(trial.exits) > self.args.max_restarts:
            raise TrialStuck("daemon exited %d times in this trial" % len(trial.exits))
        time.sleep(self.args.restart_delay)
        d.start()
        self.restarts += 1

    def run_for(self, trial, seconds):
        """Let the pipeline run, supervised."""
        deadline = time.monotonic() + seconds
        while True:
            self.supervise(trial)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.05, left))

    # ------------------------------------------------------------ state probes
    def copy_state(self):
        """'startup', 'copy (n of m parts pending)' or 'stream', read from the target."""
        try:
            with psycopg.connect(self.dst_direct, autocommit=True, connect_timeout=5) as conn:
                if conn.execute("SELECT to_regclass('tidemark.sync_state')").fetchone()[0] is None:
                    return "startup"
                pending, total = conn.execute(
                    "SELECT count(*) FILTER (WHERE state NOT IN ('synced', 'ready')), count(*)"
                    " FROM tidemark.sync_state WHERE pipeline = %s", (self.pipeline,)).fetchone()
        except psycopg.Error:
            return "unknown (target down)"
        if total == 0:
            return "startup"
        return "copy (%d of %d pending)" % (pending, total) if pending else "stream"

    def wait_copies_done(self, trial, timeout):
        def done():
            self.supervise(trial)
            return self.copy_state() == "stream"
        harness.wait_for(done, timeout, "the initial copy to complete", interval=0.1)

    def wait_copy_started(self, trial, timeout=60):
        def started():
            self.supervise(trial)
            return self.copy_state().startswith("copy")
        harness.wait_for(started, timeout, "the initial copy to start", interval=0.02)

    # ------------------------------------------------------------ faults
    def inject(self, trial):
        kind = trial.kind
        if kind == "kill9":
            self.daemon.kill9()
            self.daemon.start()
        elif kind in ("src_restart", "dst_restart"):
            cluster = self.src if kind == "src_restart" else self.dst
            cluster.restart(trial.detail)
        elif kind in ("src_cut", "dst_cut"):
            n = self.proxies[kind[:3]].cut()
            trial.detail = "%d conns reset" % n
        else:
            proxy = self.proxies[kind[:3]]
            proxy.hold()
            hold = trial.hold_seconds
            self.run_for(trial, hold)
            if trial.detail.endswith("cut"):
                n = proxy.cut()
                trial.detail += " (%d conns)" % n
            else:
                proxy.release()

    def choose_detail(self, trial):
        rng = self.rng
        if trial.kind.endswith("_restart"):
            trial.detail = trial.detail or rng.choice(["fast", "immediate"])
        elif trial.kind.endswith("_blackhole"):
            if not trial.detail:
                trial.detail = "%.1fs then %s" % (rng.uniform(1.0, 4.0), rng.choice(["release", "cut"]))
            trial.hold_seconds = float(trial.detail.split("s", 1)[0])

    # ------------------------------------------------------------ one trial
    def run_trial(self, trial):
        self.choose_detail(trial)
        if trial.phase == "copy" or self.need_reset:
            self.new_round()
        if trial.phase == "copy":
            self.wait_copy_started(trial)
            est = self.copy_estimate or 3.0
            trial.delay = round(self.rng.uniform(0.0, est * 0.9), 2)
        else:
            self.wait_copies_done(trial, self.args.catchup_timeout)
            trial.delay = round(self.rng.uniform(0.2, 3.0), 2)
        self.run_for(trial, trial.delay)
        trial.when = self.copy_state()
        log("trial %d: %s (%s) after %.2fs, %s" % (trial.number, trial.kind, trial.detail or "-", trial.delay,
                                                   trial.when))
        self.inject(trial)
        self.run_for(trial, self.args.settle)
        self.writer.pause()
        t0 = time.monotonic()
        try:
            harness.wait_caught_up(self.src_direct, self.dst_direct, self.pipeline, self.args.catchup_timeout,
                                   alive=lambda: self.supervise(trial))
            trial.caught_up = time.monotonic() - t0
        except TimeoutError as e:
            trial.problems.append(str(e))
            log("    NOT CAUGHT UP: %s" % e)
        self.compare(trial)
        self.writer.resume()
        if trial.failed:
            self.need_reset = True

    def measure_copy(self):
        """Round 1 without a fault: how long the initial copy takes (sets the
        copy-phase fault window) and a baseline comparison."""
        t = Trial(0, "none", "copy", 0)
        self.new_round()
        t0 = time.monotonic()
        self.wait_copies_done(t, max(self.args.catchup_timeout, 300))
        self.copy_estimate = time.monotonic() - t0
        t.when = "baseline"
        self.writer.pause()
        try:
            harness.wait_caught_up(self.src_direct, self.dst_direct, self.pipeline, self.args.catchup_timeout,
                                   alive=lambda: self.supervise(t))
            t.caught_up = 0.0
        except TimeoutError as e:
            t.problems.append(str(e))
        self.compare(t)
        self.writer.resume()
        log("baseline: initial copy took %.1f s; %s" % (self.copy_estimate, t.result))
        if t.failed:
            raise RuntimeError("the baseline round (no fault) failed: %s\n%s" % (t.result, "\n".join(t.problems)))

    # ------------------------------------------------------------ comparison
    def compare(self, trial):
        lost = dup = diff = 0
        with psycopg.connect(self.src_direct, autocommit=True, options=harness.COMPARE_OPTIONS) as sc, \
                psycopg.connect(self.dst_direct, autocommit=True, options=harness.COMPARE_OPTIONS) as dc:
            for table, key in workload.TABLE_KEYS.items():
                if harness.table_digest(sc, table) == harness.table_digest(dc, table):
                    continue
                l, u, d, lines = classify(keyed_rows(sc, table, key), keyed_rows(dc, table, key))
                lost, dup, diff = lost + l, dup + u, diff + d
                trial.problems.append("%s: %d lost, %d duplicated, %d differing\n%s" % (
                    table, l, u, d, "\n".join(lines)))
        trial.lost, trial.dup, trial.diff = lost, dup, diff
        self.sampler_findings(trial)
        trial.result = "FAIL" if trial.failed else "ok" if trial.clean else "finding"
        parts = ["lost %d dup %d diff %d" % (lost, dup, diff)]
        if trial.caught_up is None:
            parts.append("not caught up")
        if trial.wm_backwards:
            parts.append("watermark backwards")
        if trial.confirmed_ahead:
            parts.append("slot confirmed past watermark")
        if trial.exits:
            parts.append("exits: " + ", ".join("%s/%s" % (rc, cat) for rc, _, cat in trial.exits))
        trial.result += " (" + "; ".join(parts) + ")"
        log("    %s%s" % (trial.result, "".join("\n    " + p.replace("\n", "\n    ") for p in trial.problems)))

    # ------------------------------------------------------------ campaign
    def run(self):
        self.setup()
        self.measure_copy()
        for i, (kind, phase, detail) in enumerate(plan_trials(self.rng, self.args.trials, self.args.short,
                                                                self.args.kinds), 1):
            t = Trial(i, kind, phase, 0, detail or "")
            self.trials.append(t)
            try:
                self.run_trial(t)
            except (TrialStuck, TimeoutError) as e:
                t.problems.append(str(e))
                t.result = "FAIL (%s)" % e
                log("    " + t.result)
                if not self.writer.go.is_set():
                    self.writer.resume()
                self.need_reset = True
        self.writer.pause()
        if self.sampler is not None:
            self.finish_sampler()
        if self.daemon is not None and self.daemon.running():
            self.daemon.stop()

    def cleanup(self):
        if self.writer is not None:
            self.writer.finish()
        if self.daemon is not None:
            self.daemon.cleanup()
        for p in self.proxies.values():
            p.close()
        if self.args.keep:
            log("kept %s (daemon logs in %s)" % (self.base, self.workdir))
            for name in ("src", "dst"):
                c = getattr(self, name)
                if c is not None:
                    c.stop("fast")
        else:
            harness.destroy_clusters(self.base)

    # ------------------------------------------------------------ report
    def summary(self):
        t = self.trials
        s = {
            "trials": len(t),
            "kill9": sum(x.kind == "kill9" for x in t),
            "in_copy": sum(x.when.startswith("copy") for x in t),
            "lost": sum(x.lost for x in t),
            "duplicated": sum(x.dup for x in t),
            "differing": sum(x.diff for x in t),
            "not_caught_up": sum(x.caught_up is None for x in t),
            "exits_outage": sum(cat == "outage" for x in t for _, _, cat in x.exits),
            "exits_diverged": sum(cat == "diverged" for x in t for _, _, cat in x.exits),
            "exits_error": sum(cat == "error" for x in t for _, _, cat in x.exits),
            "watermark_backwards": sum(x.wm_backwards for x in t),
            "confirmed_ahead": sum(x.confirmed_ahead for x in t),
            "writer_commits": self.writer.committed if self.writer else 0,
            "writer_errors": len(self.writer.errors) if self.writer else 0,
        }
        s["data_ok"] = not (s["lost"] or s["duplicated"] or s["differing"] or s["not_caught_up"] or
                            s["exits_diverged"] or s["watermark_backwards"] or s["confirmed_ahead"] or
                            s["writer_errors"])
        s["ok"] = s["data_ok"] and not s["exits_error"]
        return s

    def report(self):
        lines = ["", "seed %d, %d trials, big table %d rows, initial copy %.1f s" % (
            self.args.seed, len(self.trials), self.args.big_rows, self.copy_estimate or 0),
            "%3s  %-13s %-24s %6s  %-26s %s" % ("#", "fault", "detail", "after", "pipeline at fault", "result")]
        for x in self.trials:
            lines.append("%3d  %-13s %-24s %5.2fs  %-26s %s" % (x.number, x.kind, x.detail or "-", x.delay,
                                                                 x.when, x.result))
        s = self.summary()
        kinds = collections.Counter(x.kind for x in self.trials)
        lines.append("")
        lines.append("faults: " + ", ".join("%s %d" % (k, kinds[k]) for k in KINDS if kinds[k]) +
                     "; %d landed in an initial copy" % s["in_copy"])
        lines.append("totals: trials %d, rows lost %d, rows duplicated %d, rows differing %d, "
                     "not caught up %d" % (s["trials"], s["lost"], s["duplicated"], s["differing"],
                                           s["not_caught_up"]))
        lines.append("daemon exits we did not cause (each restarted): %d on a lost connection, %d 'diverged', "
                     "%d other errors" % (s["exits_outage"], s["exits_diverged"], s["exits_error"]))
        lines.append("feedback (sampled every 0.1 s): watermark moved backwards in %d trials' samples (%d), slot "
                     "confirmed past the target's watermark in %d samples" % (
                         sum(1 for x in self.trials if x.wm_backwards), s["watermark_backwards"],
                         s["confirmed_ahead"]))
        lines.append("writer: %d transactions committed, %d interrupted by source restarts, %d other errors" % (
            self.writer.committed, self.writer.failed - len(self.writer.errors), len(self.writer.errors)))
        findings = [(x.number, rc, cat, msg) for x in self.trials for rc, msg, cat in x.exits if cat != "outage"]
        for n, rc, cat, msg in findings:
            lines.append("  trial %d: daemon exit %s (%s): %s" % (n, rc, cat, msg))
        outages = collections.Counter(normalize(msg) for x in self.trials for _, msg, cat in x.exits
                                      if cat == "outage")
        for msg, n in outages.most_common():
            lines.append("  %dx outage exit: %s" % (n, msg))
        for e in self.writer.errors[:5]:
            lines.append("  writer error: %s" % e)
        lines.append("RESULT: %s" % ("PASS" if s["ok"] else "PASS on data, with daemon-exit findings"
                                     if s["data_ok"] else "FAIL"))
        return "\n".join(lines)


class TrialStuck(Exception):
    pass


class FeedbackSampler(threading.Thread):
    """Checks invariant 1 from the outside, every `interval` seconds: the
    slot's confirmed_flush_lsn (read first) never exceeds the target's
    watermark (read after), and the watermark never moves backwards.  A
    confirmed position past the watermark means the source may discard
    changes the target does not have: the next restart of the stream
    silently starts after them."""

    def __init__(self, src_conninfo, dst_conninfo, pipeline, interval=0.1):
        super().__init__(daemon=True, name="feedback-sampler")
        self.src, self.dst, self.pipeline, self.interval = src_conninfo, dst_conninfo, pipeline, interval
        self.slot = "tidemark_" + pipeline
        self.stop_event = threading.Event()
        self.samples = 0
        self.last_wm = None
        self.backwards = []      # (before, after)
        self.ahead = []          # (confirmed, watermark)

    def run(self):
        sc = dc = None
        while not self.stop_event.wait(self.interval):
            try:
                if sc is None or sc.closed:
                    sc = psycopg.connect(self.src, autocommit=True, connect_timeout=2)
                if dc is None or dc.closed:
                    dc = psycopg.connect(self.dst, autocommit=True, connect_timeout=2)
                row = sc.execute("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
                                 (self.slot,)).fetchone()
                confirmed = row[0] if row else None
                if dc.execute("SELECT to_regclass('tidemark.watermark')").fetchone()[0] is None:
                    continue
                row = dc.execute("SELECT lsn::text FROM tidemark.watermark WHERE pipeline = %s",
                                 (self.pipeline,)).fetchone()
                wm = row[0] if row else None
                if wm is None:
                    continue
                if self.last_wm is not None and dc.execute("SELECT %s::pg_lsn < %s::pg_lsn",
                                                           (wm, self.last_wm)).fetchone()[0]:
                    self.backwards.append((self.last_wm, wm))
                if confirmed is not None and dc.execute("SELECT %s::pg_lsn > %s::pg_lsn",
                                                        (confirmed, wm)).fetchone()[0]:
                    self.ahead.append((confirmed, wm))
                self.last_wm = wm
                self.samples += 1
            except psycopg.Error:
                # a cluster is restarting: reconnect on the next round
                for c in (sc, dc):
                    if c is not None:
                        c.close()
                sc = dc = None
        for c in (sc, dc):
            if c is not None:
                c.close()

    def finish(self):
        self.stop_event.set()
        self.join(10)


def keyed_rows(conn, table, key):
    q = sql.SQL("SELECT ({})::text, __tm_row::text FROM {} __tm_row").format(
        sql.SQL(key), harness.parse_table(table))
    return conn.execute(q).fetchall()


def classify(src_rows, dst_rows, limit=8):
    """(lost, duplicated, differing, example lines) for two lists of (key, row text)."""
    s = collections.Counter(r for _, r in src_rows)
    d = collections.Counter(r for _, r in dst_rows)
    key_of = {r: k for k, r in src_rows}
    key_of.update({r: k for k, r in dst_rows})
    only_src, only_dst = s - d, d - s
    by_key = collections.defaultdict(lambda: [[], []])
    for r, n in only_src.items():
        by_key[key_of[r]][0].extend([r] * n)
    for r, n in only_dst.items():
        by_key[key_of[r]][1].extend([r] * n)
    lost = dup = diff = 0
    lines = []
    for key in sorted(by_key, key=lambda k: (len(k), k)):
        srows, drows = by_key[key]
        pairs = min(len(srows), len(drows))
        diff += pairs
        lost += len(srows) - pairs
        dup += len(drows) - pairs
        if len(lines) < limit:
            what = "differs" if pairs else "lost" if srows else "duplicated/extra"
            lines.append("  key %s %s: source %s target %s (source has %d, target %d copies)" % (
                key, what, [harness.shorten(r, 160) for r in srows[:2]], [harness.shorten(r, 160) for r in drows[:2]],
                sum(1 for k, _ in src_rows if k == key), sum(1 for k, _ in dst_rows if k == key)))
    return lost, dup, diff, lines


def last_error(daemon):
    """The daemon's last error line from its latest log."""
    text = harness.tail_file(daemon.logs[-1], 8000) if daemon.logs else ""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    errs = [ln for ln in lines if " error " in ln.lower() or ln.startswith("tidemark:") or "ERROR" in ln]
    return (errs or lines or ["<no output>"])[-1].strip()


def normalize(msg):
    """An exit message without its timestamp and numbers, for grouping."""
    msg = re.sub(r"^\S+Z\s+\S+\s+", "", msg)
    return re.sub(r"\d+", "N", msg)


def parse_args(argv):
    ap = argparse.ArgumentParser(description="kill -9 / restart / network-cut campaign against tidemark")
    ap.add_argument("--trials", type=int, default=75)
    ap.add_argument("--seed", type=int, default=None, help="random seed (printed; default: from the clock)")
    ap.add_argument("--short", action="store_true", help="CI: 8 trials, every fault kind, a small table")
    ap.add_argument("--kinds", type=lambda v: v.split(","), default=None,
                    help="comma-separated fault kinds to draw from at random (default: the standard mix): "
                         + ",".join(KINDS))
    ap.add_argument("--big-rows", type=int, default=None, help="rows preloaded into big (default 400000, short 30000)")
    ap.add_argument("--part-size-mb", type=int, default=None, help="copy.part_size_mb (default 8, short 1)")
    ap.add_argument("--rate", type=int, default=80, help="writer transactions per second")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds the pipeline runs after a fault")
    ap.add_argument("--catchup-timeout", type=float, default=180.0)
    ap.add_argument("--max-restarts", type=int, default=12, help="daemon exits tolerated per trial")
    ap.add_argument("--restart-delay", type=float, default=0.5, help="seconds before restarting an exited daemon")
    ap.add_argument("--target-synchronous-commit", choices=["on", "off", "local"], default=None,
                    help="the target cluster's synchronous_commit (default: the harness's, off)")
    ap.add_argument("--binary", default=None, help="tidemark binary (default: TIDEMARK_BIN or build/tidemark)")
    ap.add_argument("--keep", action="store_true", help="keep clusters and logs for inspection")
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 also when the daemon exited with an error that is not a lost connection")
    args = ap.parse_args(argv)
    for k in args.kinds or []:
        if k not in KINDS:
            ap.error("unknown fault kind %r (known: %s)" % (k, ", ".join(KINDS)))
    if args.seed is None:
        args.seed = time.time_ns() % 2 ** 31
    if args.big_rows is None:
        args.big_rows = 30_000 if args.short else 400_000
    if args.part_size_mb is None:
        args.part_size_mb = 1 if args.short else 8
    if args.short:
        args.trials = len(plan_trials(None, 0, True))
        args.settle = min(args.settle, 1.5)
    args.binary = args.binary or harness.tidemark_bin()
    return args


def argv_with_seed(argv, seed):
    return list(argv) + ([] if "--seed" in argv else ["--seed", str(seed)])


def run(argv):
    """Run a campaign; return (summary dict, report text, parsed arguments)."""
    args = parse_args(argv)
    log("fault campaign: seed %d, %d trials (reproduce: tests/torture/campaign.py %s)" % (
        args.seed, args.trials, " ".join(argv_with_seed(argv, args.seed))))
    c = Campaign(args)
    try:
        c.run()
    finally:
        c.cleanup()
    return c.summary(), c.report(), args


def main(argv):
    summary, text, args = run(argv)
    print(text)
    return 0 if summary["ok"] or (summary["data_ok"] and not args.strict) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
