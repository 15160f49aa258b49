"""Cutover, fallback and rollback end to end, with the application writing
the whole time (switchwriter.Writer).

* test_cutover_aborts: a cutover failed at each step, interrupted by SIGINT,
  and killed outright, leaves the source writable, the target as the stream
  left it (sequences put back, no fallback state) and the pipeline
  streaming; then a cutover killed right after its switch is finished by a
  second run: nothing lost, the source read-only.
* test_cutover_fallback_rollback: a cutover loses nothing and leaves the
  source read-only; the application moves to the new side and the fallback
  pipeline streams its writes back; a rollback with the application still
  writing loses nothing and ends with the old side writable and the new one
  read-only; the forward pipeline resumes; the runbook shows the recorded
  step times; teardown removes slots, publications and state.
"""

import os
import signal
import subprocess

import psycopg
import pytest

import harness
import switchwriter


def tidemark(*args, env=None, timeout=180):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([harness.tidemark_bin()] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, env=e, cwd="/")


def writable(conninfo):
    """True when a new session may write (the database is not frozen)."""
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            with conn.transaction():
                conn.execute("INSERT INTO acct (id, note) VALUES (-1, 'probe')")
                raise psycopg.Rollback()
        return True
    except psycopg.errors.ReadOnlySqlTransaction:
        return False


def slots(cluster, db):
    return {r[0] for r in harness.execute(cluster.conninfo(), "SELECT slot_name FROM pg_replication_slots"
                                                            " WHERE database = %s", (db,))}


def publications(conninfo):
    return {r[0] for r in harness.execute(conninfo, "SELECT pubname FROM pg_publication")}


def state_rows(conninfo, pipeline):
    if harness.execute(conninfo, "SELECT to_regclass('tidemark.pipeline_state')")[0][0] is None:
        return []
    return harness.execute(conninfo, "SELECT 'watermark', pipeline FROM tidemark.watermark WHERE pipeline = %s"
                                     " UNION ALL SELECT 'sync_state', pipeline FROM tidemark.sync_state"
                                     " WHERE pipeline = %s UNION ALL SELECT key, pipeline FROM"
                                     " tidemark.pipeline_state WHERE pipeline = %s",
                           (pipeline, pipeline, pipeline))


def sequences(conninfo):
    return harness.execute(conninfo, "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public'"
                                     " ORDER BY 1")


def drop_dst_slots(env):
    admin = env.dst_cluster.conninfo()
    for name in slots(env.dst_cluster, env.dst_db):
        harness.execute(admin, "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
                               " WHERE slot_name = %s AND active_pid IS NOT NULL", (name,))
        harness.wait_for(lambda: harness.execute(admin, "SELECT NOT active FROM pg_replication_slots"
                                                        " WHERE slot_name = %s", (name,)) in ([(True,)], []),
                         30, "slot %s idle" % name)
        harness.execute(admin, "SELECT pg_drop_replication_slot(%s) FROM pg_replication_slots"
                               " WHERE slot_name = %s", (name, name))


def setup_pipeline(env):
    env.both_sql(switchwriter.DDL)
    switchwriter.preload(env.src)
    d = env.daemon(tables=switchwriter.TABLES)
    env.wait_caught_up(d)
    w = switchwriter.Writer(env.src)
    w.start()
    return d, w


def settle(env, w, daemon, src, dst, pipeline):
    """Pause the writer and wait until pipeline has everything."""
    w.pause()
    harness.wait_caught_up(src, dst, pipeline, 60, daemon.check_alive)


def test_cutover_aborts(env):
    d, w = setup_pipeline(env)
    env.src_sql("CREATE TABLE elsewhere (x int)")  # not migrated
    rev = env.pipeline + "_reverse"
    seq_before = sequences(env.dst)
    try:
        for step in ["check", "freeze", "drain", "sequences", "matviews", "verify", "prepare", "switch",
                     "frozen"]:
            r = tidemark("cutover", "--config", d.config_path, env={"TIDEMARK_FAULT": step})
            assert r.returncode == 1, r.stdout
            assert "fault injected at %s" % step in r.stdout and "aborted" in r.stdout, r.stdout
            assert writable(env.src), "source read-only after a cutover aborted at %s:\n%s" % (step, r.stdout)
            assert sequences(env.dst) == seq_before, "target sequences changed by an abort at %s" % step
            assert "tidemark_" + rev not in slots(env.dst_cluster, env.dst_db)
            assert state_rows(env.src, rev) == [], "fallback state left after an abort at %s" % step
            d.check_alive()

        # SIGINT while draining: the real signal path
        p = subprocess.Popen([harness.tidemark_bin(), "cutover", "--config", d.config_path],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=dict(os.environ, TIDEMARK_FAULT="drain:wait"))
        for line in p.stdout:
            if "waiting for a signal" in line:
                break
        assert not writable_nowait(env.src), "the tables should be locked while draining"
        # a transaction that wrote elsewhere first, then waits for a frozen table, is ended
        # (it would hold up the snapshot of the final verification for ever)
        with psycopg.connect(env.src) as stuck:
            stuck.execute("SET lock_timeout = 5000")  # bounds the test if nothing ends it
            stuck.execute("INSERT INTO elsewhere VALUES (1)")
            with pytest.raises(psycopg.OperationalError, match="administrator command"):
                stuck.execute("INSERT INTO acct (id, note) VALUES (-2, 'stuck')")
        p.send_signal(signal.SIGINT)
        out = p.stdout.read()
        assert p.wait(60) == 1 and "interrupted by a signal" in out, out
        assert writable(env.src)

        # killed outright while only the locks froze the source: they go with the process
        r = tidemark("cutover", "--config", d.config_path, env={"TIDEMARK_FAULT": "verify:kill"})
        assert r.returncode == -signal.SIGKILL, r.stdout
        harness.wait_for(lambda: writable(env.src), 30, "the source to be writable after a kill")

        # killed after the database was set read-only: --abort makes it writable again
        r = tidemark("cutover", "--config", d.config_path, env={"TIDEMARK_FAULT": "frozen:kill"})
        assert r.returncode == -signal.SIGKILL, r.stdout
        assert not writable(env.src)
        r = tidemark("cutover", "--config", d.config_path, "--abort")
        assert r.returncode == 0 and "writable again" in r.stdout, r.stdout
        assert writable(env.src)
        assert "tidemark_" + rev not in slots(env.dst_cluster, env.dst_db)
        assert state_rows(env.src, rev) == []
        d.check_alive()

        # the pipeline kept streaming through all of it
        settle(env, w, d, env.src, env.dst, env.pipeline)
        env.assert_tables_equal(*switchwriter.TABLES)
        w.assert_all_present(env.dst)
        w.resume()

        # killed right after the switch: a second run finishes it
        r = tidemark("cutover", "--config", d.config_path, env={"TIDEMARK_FAULT": "switched:kill"})
        assert r.returncode == -signal.SIGKILL, r.stdout
        r = tidemark("cutover", "--config", d.config_path)
        assert r.returncode == 0 and "already switched over" in r.stdout, r.stdout
        assert d.wait_exit(30) == 0, d.log_tail()
        assert "was switched over" in d.log()
        assert not writable(env.src)
        w.pause()
        env.assert_tables_equal(*switchwriter.TABLES)
        w.assert_all_present(env.dst)
        assert env.slot not in slots(env.src_cluster, env.src_db)
        assert "tidemark_" + rev in slots(env.dst_cluster, env.dst_db)
        runs = harness.execute(env.dst, "SELECT status, count(*) FROM tidemark.cutover_runs GROUP BY 1 ORDER BY 1")
        assert runs == [("aborted", 12), ("done", 1)], runs
    finally:
        w.finish()
        drop_dst_slots(env)


def writable_nowait(conninfo):
    """Like writable(), but a write that would wait for a lock counts as not writable."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET lock_timeout = 200")
        try:
            with conn.transaction():
                conn.execute("INSERT INTO acct (id, note) VALUES (-1, 'probe')")
                raise psycopg.Rollback()
            return True
        except psycopg.errors.LockNotAvailable:
            return False


def test_cutover_fallback_rollback(env, tmp_path):
    d, w = setup_pipeline(env)
    rev = env.pipeline + "_reverse"
    rev_path = str(tmp_path / "reverse.yaml")
    try:
        harness.wait_for(lambda: w.committed.get(env.src, 0) > 20, 30, "writes on the source")
        r = tidemark("cutover", "--config", d.config_path, "--reverse-config", rev_path, "--note", "rehearsal 1")
        assert r.returncode == 0, r.stdout
        for step in ["check", "freeze", "drain", "sequences", "matviews", "verify", "prepare", "switch",
                     "finish"]:
            assert "  %s " % step in r.stdout, r.stdout
        # the forward daemon stops by itself; the source refuses writes
        assert d.wait_exit(30) == 0, d.log_tail()
        assert not writable(env.src)
        assert env.slot not in slots(env.src_cluster, env.src_db)
        # everything the application committed on the source is on the target
        n_src = w.committed.get(env.src, 0)
        w.pause()
        env.assert_tables_equal(*switchwriter.TABLES)
        w.assert_all_present(env.dst)
        assert n_src > 20 and w.rejected > 0
        assert sequences(env.dst) == sequences(env.src)
        assert harness.execute(env.dst, "SELECT count(*) FROM (SELECT * FROM acct_totals EXCEPT SELECT acct,"
                                        " sum(amount), count(*) FROM ledger GROUP BY acct) x")[0][0] == 0
        rec = harness.execute(env.dst, "SELECT status, operator, verify_ok, source_rows, target_rows,"
                                       " frozen_lsn IS NOT NULL, jsonb_array_length(steps), note"
                                       " FROM tidemark.cutover_runs WHERE kind = 'cutover'")
        assert rec and rec[0][0] == "done" and rec[0][2] is True and rec[0][3] == rec[0][4] > 0, rec
        assert rec[0][6] == 9 and rec[0][7] == "rehearsal 1", rec

        # the application moves to the new side; the fallback streams its writes back
        w.point_at(env.dst)
        w.resume()
        with open(rev_path) as f:
            rd = env.daemon(config_text=f.read())
        harness.wait_for(lambda: w.committed.get(env.dst, 0) > 30, 30, "writes on the new side")
        settle(env, w, rd, env.dst, env.src, rev)
        env.assert_tables_equal(*switchwriter.TABLES)
        w.assert_all_present(env.src)
        w.resume()

        # rollback with the application writing to the new side
        r = tidemark("rollback", "--config", d.config_path, "--note", "rehearsal 1")
        assert r.returncode == 0, r.stdout
        assert rd.wait_exit(30) == 0, rd.log_tail()
        assert not writable(env.dst) and writable(env.src)
        w.pause()
        env.assert_tables_equal(*switchwriter.TABLES)
        w.assert_all_present(env.src)
        assert sequences(env.dst) == sequences(env.src)
        assert "tidemark_" + rev not in slots(env.dst_cluster, env.dst_db)

        # back on the old side; the forward pipeline resumes from the rollback point
        w.point_at(env.src)
        w.resume()
        d2 = env.daemon(tables=switchwriter.TABLES)
        harness.wait_for(lambda: w.committed.get(env.src, 0) > n_src + 30, 30, "writes on the old side again")
        settle(env, w, d2, env.src, env.dst, env.pipeline)
        env.assert_tables_equal(*switchwriter.TABLES)
        w.assert_all_present(env.dst)
        assert harness.execute(env.src, "SELECT status, verify_ok FROM tidemark.cutover_runs"
                                        " WHERE kind = 'rollback'") == [("done", True)]

        # the runbook shows the recorded step times
        book = str(tmp_path / "runbook.md")
        r = tidemark("runbook", "--config", d.config_path, "--output", book)
        assert r.returncode == 0, r.stdout
        text = open(book).read()
        times = harness.execute(env.dst, "SELECT s->>'step', round((s->>'seconds')::numeric, 2)::text FROM"
                                         " tidemark.cutover_runs, jsonb_array_elements(steps) s"
                                         " WHERE kind = 'cutover'")
        for step, secs in times:
            assert "| %s |" % step in text and secs in text, (step, secs)
        assert "rollback" in text and "pg_restore" in text

        # teardown refuses while a daemon runs, then removes everything
        r = tidemark("teardown", "--config", d.config_path)
        assert r.returncode == 1 and "running" in r.stdout, r.stdout
        d2.stop()
        for attempt in range(2):  # idempotent
            r = tidemark("teardown", "--config", d.config_path)
            assert r.returncode == 0, r.stdout
        assert not slots(env.src_cluster, env.src_db) and not slots(env.dst_cluster, env.dst_db)
        assert not publications(env.src) and not publications(env.dst)
        for side in (env.src, env.dst):
            for p in (env.pipeline, rev):
                assert state_rows(side, p) == []
    finally:
        w.finish()
        drop_dst_slots(env)
