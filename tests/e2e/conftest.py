"""pytest fixtures for tidemark end-to-end tests.

* `clusters` (session): two throwaway PostgreSQL 15 clusters, "src" and "dst",
  in a fresh /tmp directory, removed at the end of the session.
* `env` (per test): fresh databases on both clusters, a unique pipeline name,
  helpers to run SQL, start/stop/kill the daemon, wait for catch-up and compare
  tables.  Afterwards it stops any daemon, drops the test's replication slots
  and drops both databases.
* `make_env` (per test): a factory for more Envs in the same test (several
  pipelines, each with fresh databases, optionally writing to another Env's
  target database), all cleaned up like `env`.
* `tidemark_binary`: path of the binary (env TIDEMARK_BIN, default
  <repo>/build/tidemark); tests that need it fail if it is missing.

On failure, each daemon's stderr and the tails of the cluster logs are attached
to the pytest report.
"""

import itertools
import os
import re
import time
import types

import psycopg
import pytest
from psycopg import sql

import harness

_counter = itertools.count(1)


@pytest.fixture(scope="session")
def clusters():
    base = harness.make_base_dir()
    src, dst = harness.create_clusters(base)
    try:
        yield types.SimpleNamespace(base=base, src=src, dst=dst)
    finally:
        harness.destroy_clusters(base)


@pytest.fixture
def tidemark_binary():
    path = harness.tidemark_bin()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail("tidemark binary not found at %s (build it or set TIDEMARK_BIN)" % path)
    return path


class Env:
    """Everything one test needs: its databases, pipeline name and daemons."""

    def __init__(self, clusters, name, workdir, share_target=None):
        """share_target: another Env whose target database this one writes to too."""
        self.src_cluster = clusters.src
        self.dst_cluster = clusters.dst
        self.pipeline = name
        self.slot = "tidemark_" + name
        self.src_db = name + "_src"
        self.dst_db = share_target.dst_db if share_target else name + "_dst"
        self.owns_dst = share_target is None
        self.workdir = workdir
        self.daemons = []
        for cluster, db in ((self.src_cluster, self.src_db), (self.dst_cluster, self.dst_db)):
            if cluster is self.dst_cluster and not self.owns_dst:
                continue
            harness.execute(cluster.conninfo(), sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))

    # -- connections and SQL
    @property
    def src(self):
        return self.src_cluster.conninfo(self.src_db)

    @property
    def dst(self):
        return self.dst_cluster.conninfo(self.dst_db)

    def src_sql(self, query, params=None):
        return harness.execute(self.src, query, params)

    def dst_sql(self, query, params=None):
        return harness.execute(self.dst, query, params)

    def both_sql(self, query, params=None):
        """Run the same DDL/SQL on source and target (identical schemas)."""
        self.src_sql(query, params)
        self.dst_sql(query, params)

    def src_connect(self):
        return psycopg.connect(self.src, autocommit=True)

    # -- daemon
    def config(self, tables=None, log_level="debug", extra=""):
        return harness.render_config(self.pipeline, self.src, self.dst, tables=tables,
                                     log_level=log_level, extra=extra)

    def daemon(self, tables=None, extra="", config_text=None, start=True):
        """A Daemon for this test's pipeline (started unless start=False)."""
        binary = harness.tidemark_bin()
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            pytest.fail("tidemark binary not found at %s" % binary)
        d = harness.Daemon(self.workdir, config_text or self.config(tables, extra=extra), binary,
                           name="tidemark%d" % (len(self.daemons) + 1))
        self.daemons.append(d)
        return d.start() if start else d

    def wait_caught_up(self, daemon=None, timeout=60.0):
        alive = daemon.check_alive if daemon else None
        return harness.wait_caught_up(self.src, self.dst, self.pipeline, timeout, alive)

    def watermark(self):
        return harness.watermark(self.dst, self.pipeline)

    def lsn_ge(self, a, b):
        return harness.lsn_ge(self.dst, a, b)

    def assert_tables_equal(self, *tables):
        ok, lines, problems = harness.compare_tables(self.src, self.dst, tables)
        assert ok, "\n".join(lines + problems)

    def assert_column_text_equal(self, table, order_by="1"):
        """Compare each column cast to text, row by row, ordered by order_by."""
        ident = harness.parse_table(table)
        with psycopg.connect(self.src, options=harness.COMPARE_OPTIONS) as sc, \
                psycopg.connect(self.dst, options=harness.COMPARE_OPTIONS) as dc:
            cols = [c.name for c in sc.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(ident)).description]
            textq = sql.SQL("SELECT {} FROM {} ORDER BY " + order_by).format(
                sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in cols), ident)
            srows, drows = sc.execute(textq).fetchall(), dc.execute(textq).fetchall()
            assert len(srows) == len(drows), "row counts differ: %d vs %d" % (len(srows), len(drows))
            diffs = ["row %d column %s: src %r dst %r" % (i, col, a, b)
                     for i, (sr, dr) in enumerate(zip(srows, drows))
                     for col, a, b in zip(cols, sr, dr) if a != b]
            assert not diffs, "\n".join(harness.shorten(x) for x in diffs[:20])

    # -- source-side state
    def slots(self):
        return harness.execute(self.src_cluster.conninfo(),
                               "SELECT slot_name, active FROM pg_replication_slots WHERE database = %s",
                               (self.src_db,))

    def slot_exists(self):
        return any(name == self.slot for name, _ in self.slots())

    def wait_slot_inactive(self, timeout=30.0):
        """Wait until no walsender holds this test's slots (after a daemon exit/kill)."""
        harness.wait_for(lambda: not any(active for _, active in self.slots()), timeout,
                         "replication slots of %s to become inactive" % self.src_db)

    def stop_source(self):
        self.src_cluster.stop("fast")

    def start_source(self):
        self.src_cluster.start()

    def restart_source(self):
        self.src_cluster.restart("fast")

    # -- teardown
    def cleanup(self):
        for d in self.daemons:
            d.cleanup()
        reports = [(d.name, d.sanitizer_report()) for d in self.daemons]
        reports = [(name, r) for name, r in reports if r]
        try:
            self._drop_test_objects()
        finally:
            assert not reports, "sanitizer report in %s's log:\n%s" % reports[0]

    def _drop_test_objects(self):
        if not self.src_cluster.is_running():
            self.src_cluster.start()
        admin = self.src_cluster.conninfo()

        def drop_slots():
            for name, active in self.slots():
                if active:
                    harness.execute(admin, "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                                           "WHERE slot_name = %s AND active_pid IS NOT NULL", (name,))
                    continue
                try:
                    harness.execute(admin, "SELECT pg_drop_replication_slot(%s)", (name,))
                except psycopg.Error:
                    pass
            return not self.slots()

        harness.wait_for(drop_slots, 30, "slots of %s to be dropped" % self.src_db, interval=0.1)
        for cluster, db in ((self.src_cluster, self.src_db), (self.dst_cluster, self.dst_db)):
            if cluster is self.dst_cluster and not self.owns_dst:
                continue
            harness.execute(cluster.conninfo(),
                            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))


def _unique_name(nodename):
    slug = re.sub(r"[^a-z0-9]+", "_", nodename.lower().replace("test_", "", 1)).strip("_")[:24]
    return "t%d_%s" % (next(_counter), slug or "x")


@pytest.fixture
def env(clusters, tmp_path, request):
    e = Env(clusters, _unique_name(request.node.name), str(tmp_path))
    request.node._tidemark_env = e
    try:
        yield e
    finally:
        e.cleanup()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    e = getattr(item, "_tidemark_env", None)
    if e is None or not rep.failed:
        return
    for d in e.daemons:
        rep.sections.append(("%s stderr (%s)" % (d.name, ", ".join(d.logs)), d.log_tail(12000)))
    rep.sections.append(("src cluster log tail", e.src_cluster.log_tail()))
    rep.sections.append(("dst cluster log tail", e.dst_cluster.log_tail()))



@pytest.fixture
def make_env(clusters, tmp_path, request):
    """make_env() -> a new Env with fresh databases and its own pipeline name."""
    made = []

    def make(share_target=None):
        name = _unique_name(request.node.name)
        workdir = tmp_path / name
        workdir.mkdir()
        e = Env(clusters, name, str(workdir), share_target)
        made.append(e)
        return e

    try:
        yield make
    finally:
        errors = []
        for e in reversed(made):  # an Env sharing a target goes before the target's owner
            try:
                e.cleanup()
            except Exception as ex:  # clean up the others before reporting
                errors.append(ex)
        if errors:
            raise errors[0]
