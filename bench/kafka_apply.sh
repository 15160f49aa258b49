#!/usr/bin/env bash
# bench/kafka_apply.sh — `tidemark apply` throughput with 1, 2 and 4 appliers on the same topics.
#
# One run on this machine, everything throwaway (under a fresh /tmp directory):
#   1. a source and a target cluster, librdkafka's mock cluster (tests/kafka's tm-kafka-mock,
#      3 brokers, in memory) with the four pgbench topics created with $PARTITIONS partitions
#      each (enough that no partition outgrows the mock's ~5 MB);
#   2. pgbench -i -s $SCALE on the source (the same tables, empty, on the target); `tidemark run`
#      (Kafka target) copies them and then streams pgbench -n -c $CLIENTS -t $TXNS into the
#      topics; stopped once its slot confirmed the backlog's end. The topics now hold the input
#      every round reads: initial-load events ('r') and the stream (3 updates and an insert per
#      transaction);
#   3. for N in $APPLIERS (1 2 4): the target's tables emptied, N `tidemark apply` processes in
#      a fresh consumer group, timed from the moment the last of them got its partitions (the
#      group's first join, which the mock delays by ~3 s, is not applying) until
#      tidemark.kafka_offsets holds every partition's high watermark (everything applied and
#      committed); the target compared with the source (md5 of every table); CPU of the
#      appliers, of the clusters' processes and of the mock brokers;
#   4. summary: messages/s per N and the ratios to N=1.
# Results and method: docs/BENCHMARKS.md ("Kafka appliers"), docs/SCALE.md.
#
# Environment: SCALE (2), CLIENTS (4), TXNS per client (5000), PARTITIONS (32), APPLIERS
# ("1 2 4"), BATCH (apply.batch_max_changes, 10000), TIDEMARK_BIN (build/tidemark), KAFKA_MOCK,
# APPLY_TIMEOUT seconds (600), PG_BIN, KEEP=1 keeps the directory (and the clusters running),
# LOG_DIR=DIR copies the logs there at the end. Runs as root or not.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PY=/usr/bin/python3

SCALE=${SCALE:-2}
CLIENTS=${CLIENTS:-4}
TXNS=${TXNS:-5000}
PARTITIONS=${PARTITIONS:-32}
APPLIERS=${APPLIERS:-"1 2 4"}
BATCH=${BATCH:-10000}
TIDEMARK_BIN=${TIDEMARK_BIN:-$ROOT/build/tidemark}
KAFKA_MOCK=${KAFKA_MOCK:-$(dirname "$TIDEMARK_BIN")/tests/kafka/tm-kafka-mock}
APPLY_TIMEOUT=${APPLY_TIMEOUT:-600}
PIPELINE=abench
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
cpu_s() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# CPU seconds (user + system, in clock ticks / 100) of the live processes of a user
user_cpu_s() {
    local pid total=0
    for pid in $(pgrep -u "$1" || true); do
        total=$(calc '%.2f' "$total + $(cpu_s "$pid")")
    done
    echo "$total"
}

[ -x "$TIDEMARK_BIN" ] || die "no tidemark binary at $TIDEMARK_BIN (ninja -C build)"
[ -x "$KAFKA_MOCK" ] || die "no tm-kafka-mock at $KAFKA_MOCK (ninja -C build)"
"$PY" -c 'import confluent_kafka' 2>/dev/null || die "$PY cannot import confluent_kafka"

BENCH_DIR=""
TM_PID=""
MOCK_PID=""
AP_PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in $TM_PID "${AP_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$MOCK_PID" ]; then
        exec {MOCK_IN}>&- 2>/dev/null || true
        kill -TERM "$MOCK_PID" 2>/dev/null || true
        wait "$MOCK_PID" 2>/dev/null || true
    fi
    if [ -n "${LOG_DIR:-}" ] && [ -n "$BENCH_DIR" ]; then
        mkdir -p "$LOG_DIR" && cp "$BENCH_DIR"/*.log "$LOG_DIR"/ 2>/dev/null || true
    fi
    if [ -n "$BENCH_DIR" ] && [ -d "$BENCH_DIR" ]; then
        if [ "${KEEP:-0}" = 1 ]; then
            log "KEEP=1: left $BENCH_DIR (the clusters are still running)"
        else
            pgc_destroy_all
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BENCH_DIR=$(pgc_mkdir apply)
log "working in $BENCH_DIR"
cp "$TIDEMARK_BIN" "$BENCH_DIR/tidemark"
TIDEMARK_ID="$("$BENCH_DIR/tidemark" --version 2>&1 | head -1), sha256 $(sha256sum "$BENCH_DIR/tidemark" | cut -c1-12)"

# ---------------------------------------------------------------- 1. clusters and brokers
pgc_init src 55452 "wal_level = logical" "max_wal_senders = 10" "max_replication_slots = 10" \
    "shared_buffers = 256MB" "synchronous_commit = off"
pgc_init dst 55453 "shared_buffers = 256MB" "max_connections = 100"
pgc_start src
pgc_start dst
pgc_psql src postgres -c "CREATE DATABASE bench"
pgc_psql dst postgres -c "CREATE DATABASE bench"
SRC=$(pgc_conninfo src bench)
DST=$(pgc_conninfo dst bench)

mkfifo "$BENCH_DIR/mock.in"
"$KAFKA_MOCK" 3 <"$BENCH_DIR/mock.in" >"$BENCH_DIR/mock.out" 2>"$BENCH_DIR/mock.err" &
MOCK_PID=$!
exec {MOCK_IN}>"$BENCH_DIR/mock.in"
for _ in $(seq 100); do
    BOOTSTRAP=$(head -1 "$BENCH_DIR/mock.out" 2>/dev/null || true)
    [ -n "$BOOTSTRAP" ] && break
    sleep 0.05
done
[ -n "$BOOTSTRAP" ] || die "tm-kafka-mock printed no bootstrap servers"
TOPICS=()
for t in "${TABLES[@]}"; do
    TOPICS+=("$PIPELINE.$t")
    echo "topic $PIPELINE.$t $PARTITIONS" >&"$MOCK_IN"
done
log "mock brokers at $BOOTSTRAP, ${#TOPICS[@]} topics of $PARTITIONS partitions"

# highs: total high watermark of the topics; lows: whether every partition still starts at 0
kafka_py() {
    "$PY" - "$@" <<'EOF'
import sys
from confluent_kafka import Consumer, TopicPartition
cmd, bootstrap, topics = sys.argv[1], sys.argv[2], sys.argv[3:]
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "log_level": 3})
marks = []
for t in topics:
    md = c.list_topics(t, timeout=10).topics[t]
    for p in md.partitions:
        marks.append((t, p) + c.get_watermark_offsets(TopicPartition(t, p), timeout=10))
if cmd == "highs":
    print(sum(hi for _, _, _, hi in marks))
elif cmd == "marks":  # topic partition high, one a line
    for t, p, lo, hi in marks:
        assert lo == 0, "the mock dropped messages of %s [%d]: raise PARTITIONS" % (t, p)
        print(t, p, hi)
c.close()
EOF
}

# ---------------------------------------------------------------- 2. the input
"$PG_BIN/pgbench" -i -q -s "$SCALE" -h "$BENCH_DIR" -p "$(pgc_port src)" -U "$PGC_SUPERUSER" bench \
    >"$BENCH_DIR/pgbench-init.log" 2>&1 || die "pgbench -i failed"
"$PG_BIN/pgbench" -i -q -s 1 -I dtp -h "$BENCH_DIR" -p "$(pgc_port dst)" -U "$PGC_SUPERUSER" bench \
    >"$BENCH_DIR/pgbench-init-dst.log" 2>&1 || die "pgbench -i on the target failed"
pgc_psql src bench -c "ALTER TABLE public.pgbench_history REPLICA IDENTITY FULL"
table_list=$(printf '%s, ' "${TABLES[@]}")
cat >"$BENCH_DIR/run.yaml" <<EOF
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
"$BENCH_DIR/tidemark" run --config "$BENCH_DIR/run.yaml" >>"$BENCH_DIR/run.log" 2>&1 &
TM_PID=$!
log "pgbench -n -c $CLIENTS -t $TXNS into the topics through tidemark run"
"$PG_BIN/pgbench" -n -c "$CLIENTS" -j 2 -t "$TXNS" -h "$BENCH_DIR" -p "$(pgc_port src)" \
    -U "$PGC_SUPERUSER" bench >"$BENCH_DIR/pgbench.log" 2>&1 || die "pgbench failed"
END_LSN=$(pgc_psql src bench -c "SET synchronous_commit = on" -c "BEGIN" \
    -c "CREATE TEMP TABLE f () ON COMMIT DROP" -c "COMMIT" -c "SELECT pg_current_wal_lsn()")
deadline=$((SECONDS + APPLY_TIMEOUT))
until [ "$(pgc_psql src bench -c "SELECT coalesce(confirmed_flush_lsn >= '$END_LSN', false) FROM pg_replication_slots WHERE slot_name = '$SLOT'")" = t ] &&
    [ "$(grep -c '"synced"' "$BENCH_DIR/kafka-state/state.json" 2>/dev/null || echo 0)" -ge ${#TABLES[@]} ]; do
    kill -0 "$TM_PID" 2>/dev/null || die "tidemark run exited (see $BENCH_DIR/run.log)"
    [ "$SECONDS" -lt "$deadline" ] || die "timed out producing the input"
    sleep 0.2
done
kill -TERM "$TM_PID"
wait "$TM_PID" || die "tidemark run exited with $? on SIGTERM"
TM_PID=""
kafka_py marks "$BOOTSTRAP" "${TOPICS[@]}" >"$BENCH_DIR/marks.txt"
MSGS=$(awk '{ s += $3 } END { print s }' "$BENCH_DIR/marks.txt")
log "input: $MSGS messages in $(wc -l <"$BENCH_DIR/marks.txt") partitions"

src_digest() {
    local t
    for t in "${TABLES[@]}"; do
        pgc_psql "$1" bench -c "SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM $t x"
    done
}
SRC_DIGEST=$(src_digest src)

# applied GROUP: how many partitions have their high watermark committed in the target
applied() {
    pgc_psql dst bench -c "CREATE TEMP TABLE m (topic text, partition int, high bigint)" \
        -c "COPY m FROM STDIN WITH (DELIMITER ' ')" -c "SELECT count(*) FROM m LEFT JOIN
            tidemark.kafka_offsets o ON o.consumer_group = '$1' AND o.topic = m.topic AND
            o.partition = m.partition WHERE coalesce(o.next_offset, 0) < m.high" <"$BENCH_DIR/marks.txt" |
        tail -1
}

# ---------------------------------------------------------------- 3. rounds
declare -A RATE SECS CPU DBCPU MOCKCPU
for n in $APPLIERS; do
    group="abench-$n-$RANDOM"
    for t in "${TABLES[@]}"; do pgc_psql dst bench -c "TRUNCATE $t"; done
    cat >"$BENCH_DIR/apply.yaml" <<EOF
pipeline: $PIPELINE
source:
  type: kafka
  brokers: "$BOOTSTRAP"
  group: "$group"
  properties: {session.timeout.ms: 6000, heartbeat.interval.ms: 500}
target:
  conninfo: "$DST"
apply: {batch_max_changes: $BATCH}
log: {level: info, format: text}
EOF
    db_cpu0=$(user_cpu_s "$(stat -c %U "$BENCH_DIR/dst")")
    mock_cpu0=$(cpu_s "$MOCK_PID")
    log "round: $n applier(s), group $group"
    AP_PIDS=()
    t0=$(now)
    for i in $(seq "$n"); do
        "$BENCH_DIR/tidemark" apply --config "$BENCH_DIR/apply.yaml" >>"$BENCH_DIR/apply-$n-$i.log" 2>&1 &
        AP_PIDS+=($!)
    done
    # timed from the moment every applier has its partitions (the log line's own time): the
    # group's first join, which the mock delays by ~3 s, is not applying
    for i in $(seq "$n"); do
        until grep -q "partition(s) assigned" "$BENCH_DIR/apply-$n-$i.log"; do
            kill -0 "${AP_PIDS[$((i - 1))]}" 2>/dev/null || die "an applier exited (see $BENCH_DIR/apply-$n-$i.log)"
            sleep 0.02
        done
    done
    t0=$(for i in $(seq "$n"); do
        date -d "$(grep -m1 "partition(s) assigned" "$BENCH_DIR/apply-$n-$i.log" | cut -d' ' -f1)" +%s.%N
    done | sort -n | tail -1)
    first_applied=0
    deadline=$((SECONDS + APPLY_TIMEOUT))
    until [ "$(applied "$group")" = 0 ]; do
        for pid in "${AP_PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null || die "an applier exited (see $BENCH_DIR/apply-$n-*.log)"
        done
        [ "$SECONDS" -lt "$deadline" ] || die "timed out applying with $n applier(s) (SECONDS=$SECONDS deadline=$deadline)"
        sleep 0.1
    done
    SECS[$n]=$(calc '%.2f' "$(now) - $t0")
    cpu=0
    for pid in "${AP_PIDS[@]}"; do cpu=$(calc '%.2f' "$cpu + $(cpu_s "$pid")"); done
    CPU[$n]=$cpu
    DBCPU[$n]=$(calc '%.1f' "$(user_cpu_s "$(stat -c %U "$BENCH_DIR/dst")") - $db_cpu0")
    MOCKCPU[$n]=$(calc '%.1f' "$(cpu_s "$MOCK_PID") - $mock_cpu0")
    for pid in "${AP_PIDS[@]}"; do
        kill -TERM "$pid"
        wait "$pid" || die "an applier exited with $? on SIGTERM"
    done
    AP_PIDS=()
    RATE[$n]=$(calc '%.0f' "($MSGS - $first_applied) / ${SECS[$n]}")
    [ "$(src_digest dst)" = "$SRC_DIGEST" ] || die "the target differs from the source after $n applier(s)"
    log "$n applier(s): ${SECS[$n]} s, ${RATE[$n]} messages/s, target = source"
done

# ---------------------------------------------------------------- 4. summary
first=${APPLIERS%% *}
echo
echo "== tidemark apply: $MSGS messages (pgbench -s $SCALE initial load + $CLIENTS x $TXNS transactions) from $((${#TABLES[@]} * PARTITIONS)) partitions"
echo "machine      $(nproc) CPUs, 1-min load average $(cut -d' ' -f1 /proc/loadavg) at end; brokers, source and target on it too"
echo "tidemark     $TIDEMARK_ID"
result="RESULT msgs=$MSGS partitions=$((${#TABLES[@]} * PARTITIONS)) batch=$BATCH"
for n in $APPLIERS; do
    printf '%-3s applier(s) %8.2f s %8s messages/s  x%s of %s  (CPU s: appliers %s, target+source %s, brokers %s)\n' \
        "$n" "${SECS[$n]}" "${RATE[$n]}" "$(calc '%.2f' "${RATE[$n]} / ${RATE[$first]}")" "$first" \
        "${CPU[$n]}" "${DBCPU[$n]}" "${MOCKCPU[$n]}"
    result="$result n${n}_s=${SECS[$n]} n${n}_mps=${RATE[$n]} n${n}_ratio=$(calc '%.2f' "${RATE[$n]} / ${RATE[$first]}") n${n}_cpu_s=${CPU[$n]} n${n}_db_cpu_s=${DBCPU[$n]} n${n}_mock_cpu_s=${MOCKCPU[$n]}"
done
echo "$result"
