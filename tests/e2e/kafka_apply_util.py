"""Helpers for the `tidemark apply` end-to-end tests: the applier process, its
config, and the "applied" condition of the Kafka path (the producer's slot
confirmed the source's WAL position, so every change is in Kafka; every
partition's stored offset in tidemark.kafka_offsets reached the partition's
high watermark, so every message is applied and committed)."""

import os
import signal
import subprocess

import confluent_kafka

import harness
from test_kafka import lsn_int, slot_confirmed, wait_copied

SESSION = "properties: {session.timeout.ms: 6000, heartbeat.interval.ms: 500, reconnect.backoff.max.ms: 500%s}"


class Applier(harness.Daemon):
    """A `tidemark apply` process (same helpers as harness.Daemon)."""

    def start(self, extra_args=()):
        assert not self.running(), "applier already running"
        path = os.path.join(self.workdir, "%s-%d.stderr" % (self.name, len(self.logs) + 1))
        self.logs.append(path)
        with open(path, "wb") as err, open(path.replace(".stderr", ".stdout"), "wb") as out:
            self.proc = subprocess.Popen([self.binary, "apply", "--config", self.config_path] + list(extra_args),
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        return self

    def sigstop(self):
        self.proc.send_signal(signal.SIGSTOP)

    def sigcont(self):
        self.proc.send_signal(signal.SIGCONT)


def group_name(env):
    return "tidemark-" + env.pipeline


def apply_config(env, bootstrap, extra_source="", extra="", batch=500, tables=None, level="info",
                 set_statements=True, properties=""):
    lines = ["pipeline: %s" % env.pipeline,
             "source:",
             "  type: kafka",
             "  brokers: %s" % harness.yaml_quote(bootstrap),
             "  conninfo: %s" % harness.yaml_quote(env.src),
             "  " + SESSION % ((", " + properties) if properties else "")]
    if tables is not None:
        lines.append("  tables: [%s]" % ", ".join(harness.yaml_quote(t) for t in tables))
    lines += ["  " + line for line in extra_source.strip().splitlines()]
    lines += ["target:",
              "  conninfo: %s" % harness.yaml_quote(env.dst),
              "apply: {batch_max_changes: %d, set_statements: %s}" % (
                  batch, "true" if set_statements else "false"),
              "log: {level: %s}" % level]
    return "\n".join(lines) + "\n" + extra


def start_appliers(env, bootstrap, n, **kw):
    out = []
    for _ in range(n):
        binary = harness.tidemark_bin()
        a = Applier(env.workdir, apply_config(env, bootstrap, **kw), binary,
                    name="apply%d" % (len(env.daemons) + 1))
        env.daemons.append(a)
        out.append(a.start())
    return out


def high_watermarks(bootstrap, topics):
    """{(topic, partition): high watermark} of each topic."""
    c = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "tidemark-tests-hw",
                                  "enable.auto.commit": False, "log_level": 3})
    try:
        out = {}
        for name in topics:
            md = c.list_topics(name, timeout=10).topics.get(name)
            assert md is not None and md.error is None, "topic %s: %s" % (name, md and md.error)
            for p in md.partitions:
                lo, hi = c.get_watermark_offsets(confluent_kafka.TopicPartition(name, p), timeout=10)
                out[(name, p)] = hi
        return out
    finally:
        c.close()


def stored_offsets(env):
    if env.dst_sql("SELECT to_regclass('tidemark.kafka_offsets')")[0][0] is None:
        return {}  # no applier has started yet
    rows = env.dst_sql("SELECT topic, partition, next_offset FROM tidemark.kafka_offsets"
                       " WHERE consumer_group = %s", (group_name(env),))
    return {(t, p): n for t, p, n in rows}


def wait_applied(env, bootstrap, producer, appliers, tables, timeout=120.0):
    """Wait until the producer delivered everything the source has and the appliers committed
    it all (tables: the source tables, "schema.name")."""
    if producer is not None:
        wait_copied(env, producer, [t.split(".")[-1] for t in tables], timeout)
    target = lsn_int(harness.current_wal_lsn(env.src))

    def delivered():
        if producer is not None:
            producer.check_alive()
        return slot_confirmed(env) >= target
    harness.wait_for(delivered, timeout, "the producer to deliver everything", 0.1)
    highs = high_watermarks(bootstrap, ["%s.%s" % (env.pipeline, t) for t in tables])
    want = {k: v for k, v in highs.items() if v > 0}
    assert want, "no messages in the topics"
    got = {}

    def applied():
        for a in appliers:
            a.check_alive()
        got.update(stored_offsets(env))
        return all(got.get(k, 0) >= v for k, v in want.items())
    try:
        harness.wait_for(applied, timeout, "the appliers to commit every offset", 0.2)
    except AssertionError as e:
        raise AssertionError("%s: want %s, have %s" % (e, want, got)) from None
