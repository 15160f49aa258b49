"""`tidemark preflight` against real clusters.

* A clean pipeline passes (exit 0) and preflight creates nothing.
* One run finds every planted problem: a source cluster of its own with
  wal_level = replica, no free slot or sender, a short max_slot_wal_keep_size
  and a prepared transaction; a LATIN1 source database; roles without the
  privileges; a missing table on each side, a table without a key, an
  unreadable one, a non-empty target table; an extension, a sequence and a
  materialized view the target lacks; a busy metrics port; a skewed clock.
"""

import json
import os
import shutil
import socket
import subprocess

import pytest
from psycopg import sql

import harness


def preflight(config_path, *args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([harness.tidemark_bin(), "preflight", "--config", config_path] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
                          env=e, cwd="/")


def created_nothing(env, src=None):
    src = src or env.src
    assert harness.execute(src, "SELECT count(*) FROM pg_publication")[0][0] == 0
    assert harness.execute(src, "SELECT count(*) FROM pg_replication_slots WHERE slot_type = 'logical'")[0][0] == 0
    assert harness.execute(env.dst, "SELECT to_regnamespace('tidemark')")[0][0] is None


def test_preflight_clean(env):
    env.both_sql("CREATE TABLE a (id serial PRIMARY KEY, v text); CREATE TABLE b (k int PRIMARY KEY)")
    env.src_sql("INSERT INTO a (v) SELECT 'x' FROM generate_series(1, 100)")
    d = env.daemon(tables=["a", "b"], start=False)
    r = preflight(d.config_path)
    assert r.returncode == 0, r.stdout
    assert "0 error(s), 0 warning(s)" in r.stdout, r.stdout
    r = preflight(d.config_path, "--format", "json")
    report = json.loads(r.stdout)
    assert report["summary"]["worst"] in ("ok", "info") and report["summary"]["ok"] > 10
    r = preflight(d.config_path, "--format", "markdown")
    assert r.stdout.startswith("# Preflight of pipeline") and "| ok | source | wal_level |" in r.stdout
    created_nothing(env)


@pytest.fixture
def bad_source(clusters):
    """A cluster of its own with settings a migration cannot live with."""
    c = harness.Cluster(clusters.base, "pf%d" % os.getpid()).initdb()
    with open(os.path.join(c.datadir, "postgresql.conf"), "a") as f:
        f.write("wal_level = replica\nmax_replication_slots = 1\nmax_wal_senders = 1\n"
                "max_slot_wal_keep_size = 1MB\nmax_prepared_transactions = 2\n")
    c.start()
    try:
        yield c
    finally:
        c.stop("immediate")
        shutil.rmtree(c.datadir, ignore_errors=True)


def test_preflight_finds_every_problem(env, bad_source):
    admin = bad_source.conninfo()
    harness.execute(admin, "CREATE DATABASE legacy ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'"
                           " TEMPLATE template0")
    harness.execute(admin, "SELECT pg_create_physical_replication_slot('occupied')")
    src = bad_source.conninfo("legacy")
    harness.execute(src, "CREATE ROLE pf_app LOGIN; CREATE EXTENSION citext;"
                         " CREATE TABLE keyed (id serial PRIMARY KEY, v int);"
                         " CREATE TABLE nokey (v int); CREATE TABLE secret (id int PRIMARY KEY);"
                         " CREATE TABLE only_src (id int PRIMARY KEY); CREATE TABLE other (x int);"
                         " CREATE MATERIALIZED VIEW keyed_sum AS SELECT sum(v) FROM keyed;"
                         " GRANT SELECT ON keyed, nokey, only_src TO pf_app;"
                         " INSERT INTO keyed (v) SELECT g FROM generate_series(1, 20000) g")
    harness.execute(src, "BEGIN; INSERT INTO other VALUES (1); PREPARE TRANSACTION 'pf_pending'")
    env.dst_sql("CREATE TABLE keyed (id int PRIMARY KEY, v int); INSERT INTO keyed VALUES (1, 1);"
                " CREATE TABLE nokey (v int); CREATE TABLE secret (id int PRIMARY KEY)")
    env.dst_sql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pf_tgt') THEN"
                " CREATE ROLE pf_tgt LOGIN; END IF; END $$; GRANT SELECT ON keyed TO pf_tgt")
    harness.execute(env.dst_cluster.conninfo(), sql.SQL("REVOKE CREATE ON DATABASE {} FROM PUBLIC").format(
        sql.Identifier(env.dst_db)))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    cfg = harness.render_config(env.pipeline, bad_source.conninfo("legacy", user="pf_app"),
                                env.dst_cluster.conninfo(env.dst_db, user="pf_tgt"),
                                tables=["keyed", "nokey", "secret", "only_src", "missing"],
                                extra="service: {listen: \"127.0.0.1:%d\"}\n" % port)
    path = os.path.join(env.workdir, "bad.yaml")
    with open(path, "w") as f:
        f.write(cfg)
    try:
        r = preflight(path, "--format", "json", env={"TIDEMARK_PREFLIGHT_CLOCK_OFFSET_S": "-120"})
        assert r.returncode == 4, r.stdout
        report = json.loads(r.stdout)
        found = {(f["severity"], f["side"], f["check"], f.get("subject") or "") for f in report["findings"]}
        expected = {
            ("error", "source", "wal_level", ""),
            ("error", "source", "slots", ""),
            ("error", "source", "senders", ""),
            ("error", "source", "role", "pf_app"),
            ("warning", "source", "prepared", ""),
            ("error", "source", "table", "public.missing"),
            ("error", "source", "identity", "public.nokey"),
            ("error", "source", "privilege", "public.secret"),
            ("error", "source", "wal", "max_slot_wal_keep_size"),
            ("error", "source", "clock", ""),
            ("error", "target", "table", "public.only_src"),
            ("error", "target", "empty", "public.keyed"),
            ("error", "target", "privilege", "public.nokey"),
            ("error", "target", "role", "pf_tgt"),
            ("error", "target", "clock", ""),
            ("warning", "target", "encoding", ""),
            ("warning", "target", "extension", "citext"),
            ("error", "target", "sequence", "public.keyed_id_seq"),
            ("warning", "target", "matview", "public.keyed_sum"),
            ("warning", "target", "fallback", "pf_tgt"),
            ("error", "host", "listen", "127.0.0.1:%d" % port),
        }
        assert expected <= found, "not found: %s\nreport:\n%s" % (sorted(expected - found), r.stdout)
        # the text form lists them too, each with its fix
        r = preflight(path)
        assert r.returncode == 4 and "fix: ALTER SYSTEM SET wal_level = logical" in r.stdout, r.stdout
        # and nothing was created anywhere
        created_nothing(env, src)
        assert harness.execute(src, "SELECT count(*) FROM pg_replication_slots")[0][0] == 1
    finally:
        busy.close()
        harness.execute(src, "ROLLBACK PREPARED 'pf_pending'")
