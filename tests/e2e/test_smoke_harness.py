"""Temporary smoke test of the harness itself (no daemon needed)."""


def test_harness(env):
    env.both_sql("CREATE TABLE a (id int primary key, t text)")
    env.src_sql("INSERT INTO a SELECT g, md5(g::text) FROM generate_series(1, 100) g")
    env.dst_sql("INSERT INTO a SELECT g, md5(g::text) FROM generate_series(1, 100) g")
    env.assert_tables_equal("public.a")
    env.src_sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (env.slot,))
    assert env.slot_exists()
    env.restart_source()
    env.src_sql("INSERT INTO a VALUES (101, NULL)")
    try:
        env.assert_tables_equal("a")
    except AssertionError as e:
        print(e)
    else:
        raise AssertionError("mismatch not detected")


def test_harness2(env):
    assert env.watermark() is None
    env.dst_sql("CREATE SCHEMA tidemark; CREATE TABLE tidemark.watermark(pipeline text primary key, lsn pg_lsn, commit_time timestamptz, updated_at timestamptz)")
    lsn = env.src_sql("SELECT pg_current_wal_lsn()::text")[0][0]
    env.dst_sql("INSERT INTO tidemark.watermark VALUES (%s, %s, now(), now())", (env.pipeline, lsn))
    env.wait_caught_up(timeout=5)
