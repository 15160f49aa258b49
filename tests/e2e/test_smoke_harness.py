"""Self-tests of the e2e harness (no daemon needed): fresh databases, slot
teardown, source restart, mismatch detection and the catch-up condition.
A harness that always reports "equal" would make every other test worthless."""

import pytest

import harness


def test_compare_detects_differences(env):
    # A column named `t` once shadowed the whole-row reference `t::text`.
    env.both_sql("CREATE TABLE a (id int PRIMARY KEY, t text)")
    for run in (env.src_sql, env.dst_sql):
        run("INSERT INTO a SELECT g, md5(g::text) FROM generate_series(1, 100) g")
    env.assert_tables_equal("public.a")
    env.src_sql("INSERT INTO a VALUES (101, NULL)")
    with pytest.raises(AssertionError, match=r"only on source.*\n.*src: \(101,\)"):
        env.assert_tables_equal("a")
    env.dst_sql("INSERT INTO a VALUES (101, '')")
    with pytest.raises(AssertionError, match=r'dst: \(101,""\)'):
        env.assert_tables_equal("a")


def test_slot_cleanup_and_source_restart(env):
    env.src_sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (env.slot,))
    assert env.slot_exists()
    env.restart_source()
    env.src_sql("SELECT 1")  # fresh connections survive the restart
    # the fixture's teardown drops the slot; a leftover would break later tests


def test_wait_caught_up_condition(env):
    assert env.watermark() is None
    with pytest.raises(TimeoutError):
        env.wait_caught_up(timeout=0.3)
    env.dst_sql("CREATE SCHEMA tidemark; CREATE TABLE tidemark.watermark (pipeline text PRIMARY KEY, lsn pg_lsn, "
                "commit_time timestamptz, updated_at timestamptz);"
                "CREATE TABLE tidemark.sync_state (pipeline text, schema_name text, table_name text, state text)")
    env.dst_sql("INSERT INTO tidemark.watermark VALUES (%s, '0/1', now(), now())", (env.pipeline,))
    with pytest.raises(TimeoutError):
        env.wait_caught_up(timeout=0.3)
    env.dst_sql("UPDATE tidemark.watermark SET lsn = 'FFFFFFFF/0' WHERE pipeline = %s", (env.pipeline,))
    # A table whose initial copy has not committed: not caught up yet.
    env.dst_sql("INSERT INTO tidemark.sync_state VALUES (%s, 'public', 't', 'pending')", (env.pipeline,))
    with pytest.raises(TimeoutError):
        env.wait_caught_up(timeout=0.3)
    env.dst_sql("UPDATE tidemark.sync_state SET state = 'synced'")
    env.wait_caught_up(timeout=5)
    assert harness.lsn_ge(env.dst, env.watermark(), harness.current_wal_lsn(env.src))
