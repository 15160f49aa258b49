"""`tidemark apply` end to end (issue 16): source -> `tidemark run` (Kafka
target) -> librdkafka's mock cluster -> appliers in a consumer group ->
PostgreSQL target, compared with the source row by row."""

import pytest

import harness
from kafka_apply_util import apply_config, start_appliers, stored_offsets, wait_applied, group_name
from test_kafka import KafkaMock, kafka_config

pytest.importorskip("confluent_kafka")


@pytest.fixture
def kafka3():
    m = KafkaMock(3)
    try:
        yield m
    finally:
        m.close()


def test_apply_smoke(env, kafka3):
    ddl = "CREATE TABLE items (id int PRIMARY KEY, name text, qty int)"
    env.both_sql(ddl)
    kafka3.command("topic %s.public.items 4" % env.pipeline)
    env.src_sql("INSERT INTO items SELECT g, 'n' || g, g FROM generate_series(1, 300) g")
    prod = env.daemon(config_text=kafka_config(env, kafka3.bootstrap))
    appliers = start_appliers(env, kafka3.bootstrap, 2, level="debug")
    env.src_sql("UPDATE items SET qty = qty + 1 WHERE id % 3 = 0")
    env.src_sql("DELETE FROM items WHERE id % 7 = 0")
    env.src_sql("INSERT INTO items SELECT g, 'm' || g, g FROM generate_series(301, 400) g")
    wait_applied(env, kafka3.bootstrap, prod, appliers, ["public.items"])
    env.assert_tables_equal("items")
    for a in appliers:
        a.stop()
    prod.stop()
