#!/usr/bin/env bash
# bench/kafka.sh — drain a pgbench backlog into Kafka: tidemark vs the raw `kcat -P` floor.
#
# One run on this machine, everything throwaway (under a fresh /tmp directory):
#   1. a source cluster (wal_level=logical) and librdkafka's mock cluster (tests/kafka's
#      tm-kafka-mock, one broker, in-memory) as the broker both producers write to;
#   2. pgbench -i -s $SCALE on the source; tidemark's initial copy into Kafka (timed, for
#      information); tidemark stopped (SIGTERM);
#   3. pgbench -n -c $CLIENTS -j $JOBS -t $TXNS on the source: the backlog (4 row changes per
#      transaction: 3 updates and an insert); its end = pg_current_wal_lsn();
#   4. tidemark started again and timed until the slot's confirmed_flush_lsn >= the backlog end
#      (the Kafka sink confirms only what has every delivery report: this is "all delivered");
#      events = the growth of the topics' high watermarks (every message tidemark produced,
#      tombstones included), size = the average key + value of those messages;
#   5. the floor: `kcat -P` sends the same number of messages of the same key and value sizes
#      to the same mock broker, with the same delivery guarantees (idempotence, acks=all), timed
#      until it exits (kcat waits for every delivery report);
#   6. the source's own floor: pg_recvlogical reads the same backlog through pgoutput (a second
#      slot created beside tidemark's before the backlog) and throws it away, timed to the same
#      end LSN: how fast the walsender can decode and send it, with a client that does nothing;
#   7. summary: events/s of all three and the ratios tidemark/kcat, tidemark/pg_recvlogical.
# Results and method: docs/BENCHMARKS.md ("Kafka sink").
#
# Environment: SCALE (10), CLIENTS (4), JOBS (2), TXNS per client (12500), TIDEMARK_BIN
# (build/tidemark), KAFKA_MOCK (tm-kafka-mock next to TIDEMARK_BIN), DRAIN_TIMEOUT seconds (600),
# PG_BIN (/usr/lib/postgresql/15/bin), KEEP=1 keeps the directory, PERF_OUT=FILE records a
# `perf record -g` profile of tidemark during the drain. Runs as root or not.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PY=/usr/bin/python3

SCALE=${SCALE:-10}
CLIENTS=${CLIENTS:-4}
JOBS=${JOBS:-2}
TXNS=${TXNS:-12500}
TIDEMARK_BIN=${TIDEMARK_BIN:-$ROOT/build/tidemark}
KAFKA_MOCK=${KAFKA_MOCK:-$(dirname "$TIDEMARK_BIN")/tests/kafka/tm-kafka-mock}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-600}
PIPELINE=kbench
SLOT=tidemark_$PIPELINE
TABLES=(public.pgbench_accounts public.pgbench_branches public.pgbench_tellers public.pgbench_history)

# shellcheck source=bench/pgcluster.sh
. "$HERE/pgcluster.sh"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    printf 'FAIL: %s\n' "$*"
    exit 1
}
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

[ -x "$TIDEMARK_BIN" ] || die "no tidemark binary at $TIDEMARK_BIN (ninja -C build)"
[ -x "$KAFKA_MOCK" ] || die "no tm-kafka-mock at $KAFKA_MOCK (ninja -C build)"
command -v kcat >/dev/null || die "kcat is not installed (apt-get install kcat)"
"$PY" -c 'import confluent_kafka' 2>/dev/null || die "$PY cannot import confluent_kafka (python3-confluent-kafka)"

BENCH_DIR=""
TM_PID=""
MOCK_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$TM_PID" ] && kill -0 "$TM_PID" 2>/dev/null; then
        kill -TERM "$TM_PID" 2>/dev/null || true
        wait "$TM_PID" 2>/dev/null || true
    fi
    if [ -n "$MOCK_PID" ]; then
        exec {MOCK_IN}>&- 2>/dev/null || true
        kill -TERM "$MOCK_PID" 2>/dev/null || true
        wait "$MOCK_PID" 2>/dev/null || true
    fi
    if [ -n "$BENCH_DIR" ] && [ -d "$BENCH_DIR" ]; then
        if [ "${KEEP:-0}" = 1 ]; then
            log "KEEP=1: left $BENCH_DIR (the cluster is still running)"
        else
            pgc_destroy_all
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BENCH_DIR=$(pgc_mkdir kafka)
TMLOG="$BENCH_DIR/tidemark.log"
log "working in $BENCH_DIR"
cp "$TIDEMARK_BIN" "$BENCH_DIR/tidemark"
TIDEMARK_ID="$("$BENCH_DIR/tidemark" --version 2>&1 | head -1), sha256 $(sha256sum "$BENCH_DIR/tidemark" | cut -c1-12)"

# ---------------------------------------------------------------- 1. source and broker
pgc_init src 55442 "wal_level = logical" "max_wal_senders = 10" "max_replication_slots = 10" \
    "shared_buffers = 256MB" "synchronous_commit = off"
pgc_start src
pgc_psql src postgres -c "CREATE DATABASE bench"
SRC=$(pgc_conninfo src bench)

mkfifo "$BENCH_DIR/mock.in"
"$KAFKA_MOCK" 1 <"$BENCH_DIR/mock.in" >"$BENCH_DIR/mock.out" 2>"$BENCH_DIR/mock.err" &
MOCK_PID=$!
exec {MOCK_IN}>"$BENCH_DIR/mock.in" # holds the mock's stdin open until cleanup
for _ in $(seq 100); do
    BOOTSTRAP=$(head -1 "$BENCH_DIR/mock.out" 2>/dev/null || true)
    [ -n "$BOOTSTRAP" ] && break
    sleep 0.05
done
[ -n "$BOOTSTRAP" ] || die "tm-kafka-mock printed no bootstrap servers"
log "mock broker at $BOOTSTRAP"

# kafka_py ARGS...: small confluent_kafka helpers (high watermarks, message sizes, payload file).
kafka_py() {
    "$PY" - "$@" <<'EOF'
import random, string, sys
from confluent_kafka import Consumer, TopicPartition

cmd, bootstrap = sys.argv[1], sys.argv[2]
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
              "log_level": 3})

def partitions(topic):
    md = c.list_topics(topic, timeout=10).topics.get(topic)
    return [] if md is None or md.error else sorted(md.partitions)

if cmd == "highs":  # total of the high watermarks of the topics
    print(sum(c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
              for t in sys.argv[3:] for p in partitions(t)))
elif cmd == "sizes":  # average key and value bytes of the last 2000 messages per partition
    n = kb = vb = 0
    for t in sys.argv[3:]:
        for p in partitions(t):
            lo, hi = c.get_watermark_offsets(TopicPartition(t, p), timeout=10)
            start = max(lo, hi - 2000)
            if hi <= start:
                continue
            c.assign([TopicPartition(t, p, start)])
            got = 0
            while got < hi - start:
                for m in c.consume(num_messages=500, timeout=2):
                    if m.error():
                        continue
                    got += 1
                    n += 1
                    kb += len(m.key() or b"")
                    vb += len(m.value() or b"")
    print(round(kb / max(n, 1)), round(vb / max(n, 1)))
elif cmd == "payload":  # N lines "key<TAB>value" of the given sizes, for kcat -P -K '\t'
    path, count, ksize, vsize = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    rnd = random.Random(1)
    value = "".join(rnd.choice(string.ascii_letters) for _ in range(vsize))
    with open(path, "w") as f:
        for i in range(count):
            key = ('{"aid":%d}' % i).ljust(ksize, " ")[:max(ksize, 1)]
            f.write(key + "\t" + value + "\n")
c.close()
EOF
}

slot_confirmed_ge() { # LSN: whether the slot confirmed LSN
    [ "$(pgc_psql src bench -c "SELECT coalesce(confirmed_flush_lsn >= '$1', false) FROM pg_replication_slots WHERE slot_name = '$SLOT'")" = t ]
}

# A position the walsender will reach: a synchronous commit flushes all earlier async ones.
flushed_lsn() {
    pgc_psql src bench -c "SET synchronous_commit = on" \
        -c "BEGIN" -c "CREATE TEMP TABLE bench_flush () ON COMMIT DROP" -c "COMMIT" \
        -c "SELECT pg_current_wal_lsn()"
}

cpu_s() { # PID: user + system CPU seconds so far
    awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat" 2>/dev/null || echo n/a
}

start_tidemark() {
    "$BENCH_DIR/tidemark" run --config "$BENCH_DIR/tidemark.yaml" >>"$TMLOG" 2>&1 &
    TM_PID=$!
}

stop_tidemark() {
    kill -TERM "$TM_PID"
    wait "$TM_PID" || die "tidemark exited with $? on SIGTERM (see $TMLOG)"
    TM_PID=""
}

# wait_confirmed LSN: poll until the slot confirmed LSN; fail if tidemark dies or on timeout.
wait_confirmed() {
    local deadline=$((SECONDS + DRAIN_TIMEOUT))
    until slot_confirmed_ge "$1"; do
        kill -0 "$TM_PID" 2>/dev/null || { tail -20 "$TMLOG"; die "tidemark exited"; }
        [ "$SECONDS" -lt "$deadline" ] || die "timed out waiting for the slot to confirm $1"
        sleep 0.1
    done
}

# ---------------------------------------------------------------- 2. initial state
log "pgbench -i -s $SCALE"
"$PG_BIN/pgbench" -i -q -s "$SCALE" -h "$BENCH_DIR" -p "$(pgc_port src)" -U "$PGC_SUPERUSER" bench \
    >"$BENCH_DIR/pgbench-init.log" 2>&1 || {
    cat "$BENCH_DIR/pgbench-init.log"
    die "pgbench -i failed"
}
pgc_psql src bench -c "ALTER TABLE public.pgbench_history REPLICA IDENTITY FULL"
table_list=$(printf '%s, ' "${TABLES[@]}")
TOPICS=()
for t in "${TABLES[@]}"; do TOPICS+=("$PIPELINE.$t"); done
cat >"$BENCH_DIR/tidemark.yaml" <<EOF
pipeline: $PIPELINE
source:
  conninfo: "$SRC"
  tables: [${table_list%, }]
target:
  type: kafka
  brokers: "$BOOTSTRAP"
  state_dir: "$BENCH_DIR/kafka-state"
apply: {status_interval_ms: 200}
log: {level: info, format: text}
EOF

log "tidemark: initial copy"
t0=$(now)
start_tidemark
wait_confirmed "$(flushed_lsn)"
until [ "$(grep -c '"synced"' "$BENCH_DIR/kafka-state/state.json" 2>/dev/null || echo 0)" -ge ${#TABLES[@]} ]; do
    kill -0 "$TM_PID" 2>/dev/null || die "tidemark exited during the initial copy"
    sleep 0.05
done
COPY_S=$(calc '%.2f' "$(now) - $t0")
stop_tidemark
COPY_EVENTS=$(kafka_py highs "$BOOTSTRAP" "${TOPICS[@]}")
log "initial copy: $COPY_EVENTS events in $COPY_S s"
# The raw anchor's slot starts where tidemark's stopped, so both have the same backlog.
pgc_psql src bench -c "SELECT pg_create_logical_replication_slot('kbench_raw', 'pgoutput')" >/dev/null

# ---------------------------------------------------------------- 3. the backlog
log "pgbench -n -c $CLIENTS -j $JOBS -t $TXNS (tidemark stopped)"
"$PG_BIN/pgbench" -n -c "$CLIENTS" -j "$JOBS" -t "$TXNS" -h "$BENCH_DIR" -p "$(pgc_port src)" \
    -U "$PGC_SUPERUSER" bench >"$BENCH_DIR/pgbench.log" 2>&1 || {
    cat "$BENCH_DIR/pgbench.log"
    die "pgbench failed"
}
BACKLOG_END=$(flushed_lsn)
BACKLOG_TXNS=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$BENCH_DIR/pgbench.log")
log "backlog: $BACKLOG_TXNS transactions, ends at $BACKLOG_END"

# ---------------------------------------------------------------- 4. tidemark drains it
MOCK_CPU0=$(cpu_s "$MOCK_PID")
log "drain: tidemark"
t0=$(now)
start_tidemark
if [ -n "${PERF_OUT:-}" ]; then
    perf record -q -g -p "$TM_PID" -o "$PERF_OUT" 2>/dev/null &
    PERF_PID=$!
fi
wait_confirmed "$BACKLOG_END"
if [ -n "${PERF_OUT:-}" ]; then
    kill -INT "$PERF_PID"
    wait "$PERF_PID" || true
fi
TM_S=$(calc '%.3f' "$(now) - $t0")
TM_RSS_KB=$(awk '/VmHWM/ { print $2 }' "/proc/$TM_PID/status")
# Where the CPU went: the daemon's loop thread, librdkafka's threads, the mock broker; and how
# often the loop thread slept (each sleep is a wake-up: a context switch).
TM_MAIN_CPU_S=$(awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$TM_PID/task/$TM_PID/stat")
TM_MAIN_WAKES=$(awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$TM_PID/task/$TM_PID/status")
MOCK_CPU_S=$(calc '%.2f' "$(cpu_s "$MOCK_PID") - $MOCK_CPU0")
TM_CPU_S=$(cpu_s "$TM_PID")
WS_PID=$(pgc_psql src bench -c "SELECT active_pid FROM pg_replication_slots WHERE slot_name = '$SLOT'")
WS_CPU_S=$(cpu_s "$WS_PID")
stop_tidemark
TM_EVENTS=$(($(kafka_py highs "$BOOTSTRAP" "${TOPICS[@]}") - COPY_EVENTS))
read -r KEY_B VALUE_B < <(kafka_py sizes "$BOOTSTRAP" "${TOPICS[@]}")
log "tidemark: $TM_EVENTS events (key $KEY_B B, value $VALUE_B B on average) in $TM_S s"
[ "$TM_EVENTS" -ge $((BACKLOG_TXNS * 4)) ] || die "only $TM_EVENTS events for $BACKLOG_TXNS transactions"

# ---------------------------------------------------------------- 5. the kcat floor
kafka_py payload "$BOOTSTRAP" "$BENCH_DIR/payload.txt" "$TM_EVENTS" "$KEY_B" "$VALUE_B"
log "floor: kcat -P of $TM_EVENTS messages"
t0=$(now)
kcat -P -b "$BOOTSTRAP" -t kbench_kcat_floor -K $'\t' -l \
    -X enable.idempotence=true -X acks=all -X partitioner=murmur2_random \
    "$BENCH_DIR/payload.txt" 2>"$BENCH_DIR/kcat.err" || { cat "$BENCH_DIR/kcat.err"; die "kcat failed"; }
KCAT_S=$(calc '%.3f' "$(now) - $t0")
KCAT_EVENTS=$(kafka_py highs "$BOOTSTRAP" kbench_kcat_floor)
[ "$KCAT_EVENTS" -eq "$TM_EVENTS" ] || die "kcat delivered $KCAT_EVENTS of $TM_EVENTS messages"

# ---------------------------------------------------------------- 6. the source floor
log "source floor: pg_recvlogical to $BACKLOG_END"
t0=$(now)
"$PG_BIN/pg_recvlogical" -h "$BENCH_DIR" -p "$(pgc_port src)" -U "$PGC_SUPERUSER" -d bench \
    --slot kbench_raw --start -o proto_version=1 -o "publication_names=tidemark_$PIPELINE" \
    --endpos "$BACKLOG_END" -f /dev/null 2>"$BENCH_DIR/recvlogical.err" || {
    cat "$BENCH_DIR/recvlogical.err"
    die "pg_recvlogical failed"
}
RAW_S=$(calc '%.3f' "$(now) - $t0")
pgc_psql src bench -c "SELECT pg_drop_replication_slot('kbench_raw')" >/dev/null

# ---------------------------------------------------------------- 7. summary
TM_RATE=$(calc '%.0f' "$TM_EVENTS / $TM_S")
KCAT_RATE=$(calc '%.0f' "$KCAT_EVENTS / $KCAT_S")
RAW_RATE=$(calc '%.0f' "$((BACKLOG_TXNS * 4)) / $RAW_S")
RATIO=$(calc '%.2f' "$TM_RATE / $KCAT_RATE")
RAW_RATIO=$(calc '%.2f' "$TM_RATE / $RAW_RATE")
COPY_RATE=$(calc '%.0f' "$COPY_EVENTS / $COPY_S")
PROBLEMS=$(grep -ciE '\b(error|fatal|panic)\b' "$TMLOG" || true)

echo
echo "== drain a pgbench backlog into Kafka (librdkafka mock broker): tidemark vs kcat -P"
echo "backlog      $BACKLOG_TXNS transactions (pgbench -s $SCALE -c $CLIENTS -j $JOBS -t $TXNS) = $TM_EVENTS events, key $KEY_B B + value $VALUE_B B"
echo "machine      $(nproc) CPUs, 1-min load average $(cut -d' ' -f1 /proc/loadavg) at end"
echo "tidemark     $TIDEMARK_ID"
printf '%-12s %8.2f s  %8s events/s   (start to slot confirmed >= backlog end; CPU %s s, peak RSS %s MB;\n%38s source walsender CPU %s s)\n' \
    tidemark "$TM_S" "$TM_RATE" "$TM_CPU_S" "$(calc '%.1f' "$TM_RSS_KB / 1024")" "" "$WS_CPU_S"
printf '%38s loop thread CPU %s s, %s wake-ups; librdkafka threads %s s; mock broker CPU %s s\n' \
    "" "$TM_MAIN_CPU_S" "$TM_MAIN_WAKES" "$(calc '%.2f' "$TM_CPU_S - $TM_MAIN_CPU_S")" "$MOCK_CPU_S"
printf '%-12s %8.2f s  %8s events/s   (same count and sizes, idempotent, acks=all)\n' \
    "kcat -P" "$KCAT_S" "$KCAT_RATE"
printf '%-12s %8.2f s  %8s events/s   (pgoutput to /dev/null: the walsender alone)\n' \
    pg_recvlogical "$RAW_S" "$RAW_RATE"
echo "ratio        tidemark/kcat = $RATIO, tidemark/pg_recvlogical = $RAW_RATIO"
echo "copy         initial load: $COPY_EVENTS events in $COPY_S s = $COPY_RATE events/s (informational)"
echo "RESULT scale=$SCALE txns=$BACKLOG_TXNS events=$TM_EVENTS key_b=$KEY_B value_b=$VALUE_B tidemark_s=$TM_S tidemark_eps=$TM_RATE kcat_s=$KCAT_S kcat_eps=$KCAT_RATE ratio=$RATIO recvlogical_s=$RAW_S recvlogical_eps=$RAW_RATE ratio_recvlogical=$RAW_RATIO copy_events=$COPY_EVENTS copy_s=$COPY_S tidemark_cpu_s=$TM_CPU_S walsender_cpu_s=$WS_CPU_S tidemark_rss_kb=$TM_RSS_KB main_cpu_s=$TM_MAIN_CPU_S main_wakeups=$TM_MAIN_WAKES mock_cpu_s=$MOCK_CPU_S log_errors=$PROBLEMS"
