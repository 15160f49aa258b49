#!/usr/bin/env bash
# bench/drain.sh — drain a pgbench backlog: tidemark vs native logical replication.
#
# One run on this machine, all clusters throwaway (under a fresh /tmp directory):
#   1. a source cluster (wal_level=logical) and a target cluster with two databases,
#      tm_target (tidemark) and native_target (CREATE SUBSCRIPTION); same settings everywhere;
#   2. pgbench -i -s $SCALE on the source, the schema (pg_dump --schema-only) on both targets,
#      both consumers brought to the initial state (tidemark's initial copy / the subscription's
#      copy_data), then both stopped (SIGTERM / ALTER SUBSCRIPTION ... DISABLE);
#   3. pgbench -c $CLIENTS -j $JOBS -t $TXNS on the source: the backlog; its end = pg_current_wal_lsn();
#   4. each consumer drains the same backlog, one after the other ($ORDER):
#        tidemark: started, timed until tidemark.watermark.lsn >= backlog end;
#        native:   ENABLE, timed until the target's pgbench_history count equals the source's
#                  (apply is in commit order, one local transaction per source transaction)
#                  and pgbench_accounts' digest matches;
#   5. both targets compared with the source (row digests of all four tables): FAIL + exit 1 if not;
#   6. summary: seconds, transactions/s, ratio tidemark/native, tidemark peak RSS.
# Method notes and results: docs/BENCHMARKS.md.
#
# Environment: WORKLOAD (pgbench | bigtxn: one transaction updating every account row), SCALE (10), CLIENTS (4), JOBS (2), TXNS per client (5000), ORDER (tidemark-first
# | native-first), TIDEMARK_BIN (build/tidemark), DRAIN_TIMEOUT seconds (900), PG_BIN
# (/usr/lib/postgresql/15/bin), TIDEMARK_LABEL (names the binary in the summary, e.g. the commit
# it was built from), TM_TARGET_EXTRA (appended to tidemark's target conninfo, for
# experiments only, e.g. "options=-csynchronous_commit=off"), TM_APPLY (tidemark's apply: settings,
# e.g. "set_statements: false"), KEEP=1 keeps the clusters' directory, RESULTS_DIR=DIR copies the
# logs (tidemark, pgbench, PostgreSQL) there.  Runs as root (servers then run as postgres) or not.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PY=/usr/bin/python3
TIMER="$HERE/drain_timer.py"

SCALE=${SCALE:-10}
CLIENTS=${CLIENTS:-4}
JOBS=${JOBS:-2}
TXNS=${TXNS:-5000}
ORDER=${ORDER:-tidemark-first}
WORKLOAD=${WORKLOAD:-pgbench}
TIDEMARK_BIN=${TIDEMARK_BIN:-$ROOT/build/tidemark}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-900}
PIPELINE=bench
SUB=bench_native
TABLES=(public.pgbench_accounts public.pgbench_branches public.pgbench_tellers public.pgbench_history)

# shellcheck source=bench/pgcluster.sh
. "$HERE/pgcluster.sh"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    printf 'FAIL: %s\n' "$*"
    exit 1
}

case $ORDER in
tidemark-first) DRAINS=(tidemark native) ;;
native-first) DRAINS=(native tidemark) ;;
*) die "ORDER must be tidemark-first or native-first, not '$ORDER'" ;;
esac
[ -x "$TIDEMARK_BIN" ] || die "no tidemark binary at $TIDEMARK_BIN (ninja -C build)"
[ -x "$PG_BIN/pgbench" ] || die "no pgbench in $PG_BIN"
"$PY" -c 'import psycopg' 2>/dev/null || die "$PY cannot import psycopg (apt-get install python3-psycopg)"

BENCH_DIR=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$BENCH_DIR" ] && [ -d "$BENCH_DIR" ]; then
        if [ -f "$BENCH_DIR/tidemark.pid" ]; then
            local pid
            pid=$(cat "$BENCH_DIR/tidemark.pid")
            if kill -TERM "$pid" 2>/dev/null; then
                for _ in 1 2 3 4 5 6 7 8 9 10; do
                    kill -0 "$pid" 2>/dev/null || break
                    sleep 1
                done
                kill -KILL "$pid" 2>/dev/null || true # a stop can hang (docs/BENCHMARKS.md)
            fi
        fi
        if [ -n "${RESULTS_DIR:-}" ]; then
            mkdir -p "$RESULTS_DIR"
            cp "$BENCH_DIR"/*.log "$RESULTS_DIR"/ 2>/dev/null || true
            for c in src dst; do
                cp "$BENCH_DIR/$c/log/postgresql.log" "$RESULTS_DIR/postgresql-$c.log" 2>/dev/null || true
            done
        fi
        if [ "${KEEP:-0}" = 1 ]; then
            log "KEEP=1: clusters left running in $BENCH_DIR"
        else
            pgc_destroy_all
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
BENCH_DIR=$(pgc_mkdir drain)
TMLOG="$BENCH_DIR/tidemark.log"
log "clusters in $BENCH_DIR"
# Run a private copy: a rebuild of build/ during the run must not change the binary under test.
cp "$TIDEMARK_BIN" "$BENCH_DIR/tidemark"
if [ -z "${TIDEMARK_LABEL:-}" ]; then
    case $(realpath "$TIDEMARK_BIN") in
    "$ROOT"/*) TIDEMARK_LABEL="work tree $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)" ;;
    *) TIDEMARK_LABEL=$(realpath "$TIDEMARK_BIN") ;;
    esac
fi
TIDEMARK_ID="$("$BENCH_DIR/tidemark" --version 2>&1 | head -1), $TIDEMARK_LABEL, sha256 $(sha256sum "$BENCH_DIR/tidemark" | cut -c1-12)"
TIDEMARK_BIN="$BENCH_DIR/tidemark"
log "tidemark: $TIDEMARK_ID"

# ---------------------------------------------------------------- 1. clusters
# The same settings on both clusters (so both anchors apply into an identically configured
# server): PostgreSQL defaults (fsync, synchronous_commit and full_page_writes on) except these.
SETTINGS=(
    "wal_level = logical"
    "max_wal_senders = 10"
    "max_replication_slots = 10"
    "shared_buffers = 256MB"
)
pgc_init src 55432 "${SETTINGS[@]}"
pgc_init dst 55433 "${SETTINGS[@]}"
pgc_start src
pgc_start dst
pgc_psql src postgres -c "CREATE DATABASE bench"
pgc_psql dst postgres -c "CREATE DATABASE tm_target" -c "CREATE DATABASE native_target"
SRC=$(pgc_conninfo src bench)
TM_DST=$(pgc_conninfo dst tm_target)
NAT_DST=$(pgc_conninfo dst native_target)

# ---------------------------------------------------------------- 2. initial state
log "pgbench -i -s $SCALE"
"$PG_BIN/pgbench" -i -q -s "$SCALE" -h "$BENCH_DIR" -p "$(pgc_port src)" -U "$PGC_SUPERUSER" bench \
    >"$BENCH_DIR/pgbench-init.log" 2>&1 || {
    cat "$BENCH_DIR/pgbench-init.log"
    die "pgbench -i failed"
}
pgc_psql src bench -c "ALTER TABLE public.pgbench_history REPLICA IDENTITY FULL"
"$PG_BIN/pg_dump" --schema-only --no-owner -h "$BENCH_DIR" -p "$(pgc_port src)" -U "$PGC_SUPERUSER" bench \
    >"$BENCH_DIR/schema.sql"
pgc_psql dst tm_target -f "$BENCH_DIR/schema.sql" >/dev/null
pgc_psql dst native_target -f "$BENCH_DIR/schema.sql" >/dev/null

table_list=$(printf '%s, ' "${TABLES[@]}")
cat >"$BENCH_DIR/tidemark.yaml" <<EOF
pipeline: $PIPELINE
source:
  conninfo: "$SRC"
  tables: [${table_list%, }]
target:
  type: postgres
  conninfo: "$TM_DST${TM_TARGET_EXTRA:+ $TM_TARGET_EXTRA}"
log: {level: info, format: text}
${TM_APPLY:+apply: {$TM_APPLY\}}
EOF

# run_tidemark LSN [HISTORY_COUNT]: start the daemon, time it to LSN, SIGTERM it; prints KEY=VALUE.
run_tidemark() {
    "$PY" "$TIMER" tidemark --bin "$TIDEMARK_BIN" --config "$BENCH_DIR/tidemark.yaml" --log "$TMLOG" \
        --pidfile "$BENCH_DIR/tidemark.pid" --src "$SRC" --dst "$TM_DST" --pipeline "$PIPELINE" --slot "tidemark_$PIPELINE" \
        --timeout "$DRAIN_TIMEOUT" --lsn "$@"
}

log "tidemark: initial copy"
printf -- '--- initial copy\n' >>"$TMLOG"
out=$(run_tidemark now) || die "tidemark initial copy failed (log above)"
TM_INIT_SECONDS=$(sed -n 's/^TM_COPY_SECONDS=//p' <<<"$out")

log "native: CREATE SUBSCRIPTION (copy_data = true)"
pgc_psql src bench -c "CREATE PUBLICATION $SUB FOR TABLE ${table_list%, }"
out=$("$PY" "$TIMER" native-init --src "$SRC" --dst "$NAT_DST" --sub "$SUB" --pub "$SUB" \
    --sub-conninfo "$SRC" --timeout "$DRAIN_TIMEOUT") || die "native initial copy failed"
eval "$out"

# Same starting state for both targets: vacuumed and analyzed (no autovacuum pending from the
# copies), everything checkpointed.
log "VACUUM ANALYZE, CHECKPOINT"
pgc_psql src bench -c "VACUUM ANALYZE"
pgc_psql dst tm_target -c "VACUUM ANALYZE"
pgc_psql dst native_target -c "VACUUM ANALYZE"
pgc_psql src bench -c "CHECKPOINT"
pgc_psql dst postgres -c "CHECKPOINT"

# ---------------------------------------------------------------- 3. the backlog
BACKLOG_START=$(pgc_psql src bench -c "SELECT pg_current_wal_lsn()")
if [ "$WORKLOAD" = bigtxn ]; then
    # One transaction changing every account row (scale x 100,000 rows): memory must not
    # grow with a transaction's size.
    log "one transaction updating every pgbench_accounts row (both consumers stopped)"
    pgc_psql src bench -c "UPDATE pgbench_accounts SET abalance = abalance + 1" \
        >"$BENCH_DIR/pgbench.log" 2>&1 || die "the big transaction failed"
    echo "number of transactions actually processed: 1" >>"$BENCH_DIR/pgbench.log"
else
    log "pgbench -n -c $CLIENTS -j $JOBS -t $TXNS (both consumers stopped)"
    "$PG_BIN/pgbench" -n -c "$CLIENTS" -j "$JOBS" -t "$TXNS" -h "$BENCH_DIR" -p "$(pgc_port src)" \
        -U "$PGC_SUPERUSER" bench >"$BENCH_DIR/pgbench.log" 2>&1 || {
        cat "$BENCH_DIR/pgbench.log"
        die "pgbench failed"
    }
fi
BACKLOG_END=$(pgc_psql src bench -c "SELECT pg_current_wal_lsn()")
BACKLOG_TXNS=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$BENCH_DIR/pgbench.log")
PGBENCH_TPS=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$BENCH_DIR/pgbench.log" | head -1)
PGBENCH_TPS=${PGBENCH_TPS:-0}
BACKLOG_BYTES=$(pgc_psql src bench -c "SELECT pg_wal_lsn_diff('$BACKLOG_END', '$BACKLOG_START')::bigint")
HISTORY_COUNT=$(pgc_psql src bench -c "SELECT count(*) FROM public.pgbench_history")
ACCOUNTS_DIGEST=$("$PY" "$TIMER" digests "$SRC" pgbench_accounts | awk '{print $2}')
log "backlog: $BACKLOG_TXNS transactions, $BACKLOG_START .. $BACKLOG_END ($BACKLOG_BYTES bytes of WAL)"

# target_wal WHO START END: count the target's commit records and WAL bytes between two of its LSNs
# (what one drain wrote: the drains run one at a time, so the range is that consumer's, plus
# whatever autovacuum did meanwhile).  Sets <WHO>_COMMITS and <WHO>_WAL_MB.
target_wal() {
    local who=$1 start=$2 end=$3 commits bytes
    local stats="$BENCH_DIR/target-wal-${who,,}.log"
    if pgc_as_owner "$PG_BIN/pg_waldump" -p "$BENCH_DIR/dst/pg_wal" -s "$start" -e "$end" \
        --stats=record >"$stats" 2>&1; then
        commits=$(awk '$1 == "Transaction/COMMIT" { print $2 }' "$stats")
    else
        commits="n/a"
    fi
    bytes=$(pgc_psql dst postgres -c "SELECT pg_wal_lsn_diff('$end', '$start')::bigint")
    printf -v "${who}_COMMITS" '%s' "${commits:-0}"
    printf -v "${who}_WAL_MB" '%s' "$(awk "BEGIN { printf \"%.1f\", $bytes / 1048576 }")"
}

# ---------------------------------------------------------------- 4. drains
for who in "${DRAINS[@]}"; do
    pgc_psql src bench -c "CHECKPOINT"
    pgc_psql dst postgres -c "CHECKPOINT"
    # A physical slot keeps the target's WAL of this drain for pg_waldump (a checkpoint during a
    # long drain would otherwise recycle it); dropped right after.
    pgc_psql dst postgres -c "SELECT pg_create_physical_replication_slot('bench_keep_wal', true)" >/dev/null
    dst_start=$(pgc_psql dst postgres -c "SELECT pg_current_wal_insert_lsn()")
    case $who in
    tidemark)
        log "drain: tidemark"
        printf -- '--- drain\n' >>"$TMLOG"
        out=$(run_tidemark "$BACKLOG_END" --history-count "$HISTORY_COUNT") || die "tidemark drain failed"
        eval "$out"
        ;;
    native)
        log "drain: native (ALTER SUBSCRIPTION $SUB ENABLE)"
        out=$("$PY" "$TIMER" native --src "$SRC" --dst "$NAT_DST" --sub "$SUB" --lsn "$BACKLOG_END" \
            --history-count "$HISTORY_COUNT" --accounts-digest "$ACCOUNTS_DIGEST" --launched-at "$NATIVE_LAUNCHED_AT" \
            --timeout "$DRAIN_TIMEOUT") || die "native drain failed"
        eval "$out"
        ;;
    esac
    dst_end=$(pgc_psql dst postgres -c "SELECT pg_current_wal_insert_lsn()")
    pgc_psql dst postgres -c "SELECT pg_switch_wal()" >/dev/null # written out for pg_waldump
    target_wal "${who^^}" "$dst_start" "$dst_end"
    pgc_psql dst postgres -c "SELECT pg_drop_replication_slot('bench_keep_wal')" >/dev/null
done

# ---------------------------------------------------------------- 5. verify
log "verify: both targets against the source"
verify_ok=1
"$PY" "$TIMER" verify --src "$SRC" --target tidemark "$TM_DST" --target native "$NAT_DST" || verify_ok=0
TM_PROBLEMS=$(grep -ciE '\b(error|warning|fatal|panic)\b' "$TMLOG" || true)
if [ "$TM_PROBLEMS" -gt 0 ]; then
    log "tidemark log has $TM_PROBLEMS error/warning line(s):"
    grep -iE '\b(error|warning|fatal|panic)\b' "$TMLOG" | head -20 >&2
fi
[ "${NATIVE_ERRORS:-0}" = 0 ] || log "native subscription reported $NATIVE_ERRORS apply/sync error(s)"

# ---------------------------------------------------------------- 6. summary
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
TM_TPS=$(calc '%.0f' "$BACKLOG_TXNS / $TM_SECONDS")
NAT_TPS=$(calc '%.0f' "$BACKLOG_TXNS / $NATIVE_SECONDS")
RATIO=$(calc '%.2f' "$TM_SECONDS / $NATIVE_SECONDS")
RATIO_DATA=$(calc '%.2f' "$TM_DATA_SECONDS / $NATIVE_SECONDS")
TM_CPU_ALL=$(calc '%.2f' "$TM_CPU_S + $TM_WALSENDER_CPU_S + $TM_TARGET_CPU_S")
NAT_CPU_ALL=$(calc '%.2f' "$NATIVE_WALSENDER_CPU_S + $NATIVE_TARGET_CPU_S")
CPU_RATIO=$(calc '%.2f' "$TM_CPU_ALL / $NAT_CPU_ALL")
RSS_MB=$(calc '%.1f' "$TM_VMHWM_KB / 1024")
WAL_MB=$(calc '%.1f' "$BACKLOG_BYTES / 1048576")

echo
echo "== drain a pgbench backlog: tidemark vs native logical replication"
echo "backlog      $BACKLOG_TXNS transactions (pgbench -s $SCALE -c $CLIENTS -j $JOBS -t $TXNS, $PGBENCH_TPS tps at the source), $WAL_MB MB of WAL"
echo "order        ${DRAINS[*]}; 1-min load average $LOAD_START at start, $(cut -d' ' -f1 /proc/loadavg) at end ($(nproc) CPUs)"
echo "tidemark     $TIDEMARK_ID"
printf '%-12s %8.2f s  %7s txn/s   (watermark >= backlog end; data complete at %.2f s; CPU %.1f s)\n' \
    tidemark "$TM_SECONDS" "$TM_TPS" "$TM_DATA_SECONDS" "$TM_CPU_S"
printf '%-12s %8.2f s  %7s txn/s   (target data = source; apply worker up at %.2f s; reported to the source at %s s)\n' \
    native "$NATIVE_SECONDS" "$NAT_TPS" "$NATIVE_WORKER_SECONDS" "$NATIVE_ACK_SECONDS"
echo "ratio        tidemark/native = $RATIO   (data-complete both sides: $RATIO_DATA)"
printf 'CPU seconds  tidemark: daemon %.2f, source walsender %.2f, target backend(s) %.2f | native: source walsender %.2f, apply worker %.2f\n' \
    "$TM_CPU_S" "$TM_WALSENDER_CPU_S" "$TM_TARGET_CPU_S" "$NATIVE_WALSENDER_CPU_S" "$NATIVE_TARGET_CPU_S"
echo "CPU ratio    tidemark/native = $CPU_RATIO   ($TM_CPU_ALL s vs $NAT_CPU_ALL s: less sensitive to a busy machine than the wall-clock ratio)"
echo "target       commits: tidemark $TIDEMARK_COMMITS, native $NATIVE_COMMITS; WAL written: tidemark $TIDEMARK_WAL_MB MB, native $NATIVE_WAL_MB MB"
echo "tidemark     peak RSS $RSS_MB MB (VmHWM), $TM_PROBLEMS error/warning log line(s)"
echo "setup        initial copy: tidemark $(calc '%.1f' "$TM_INIT_SECONDS") s, native $(calc '%.1f' "$NATIVE_INIT_SECONDS") s (informational)"
echo "RESULT scale=$SCALE txns=$BACKLOG_TXNS wal_mb=$WAL_MB order=$ORDER tidemark_s=$TM_SECONDS tidemark_data_s=$TM_DATA_SECONDS native_s=$NATIVE_SECONDS native_ack_s=$NATIVE_ACK_SECONDS tidemark_tps=$TM_TPS native_tps=$NAT_TPS ratio=$RATIO ratio_data=$RATIO_DATA cpu_ratio=$CPU_RATIO tidemark_rss_mb=$RSS_MB tidemark_cpu_s=$TM_CPU_S init_tidemark_s=$TM_INIT_SECONDS init_native_s=$NATIVE_INIT_SECONDS tidemark_commits=$TIDEMARK_COMMITS native_commits=$NATIVE_COMMITS tidemark_target_wal_mb=$TIDEMARK_WAL_MB native_target_wal_mb=$NATIVE_WAL_MB tidemark_walsender_cpu_s=$TM_WALSENDER_CPU_S tidemark_target_cpu_s=$TM_TARGET_CPU_S native_walsender_cpu_s=$NATIVE_WALSENDER_CPU_S native_apply_cpu_s=$NATIVE_TARGET_CPU_S load_start=$LOAD_START load_end=$(cut -d' ' -f1 /proc/loadavg)"
if [ "$verify_ok" != 1 ]; then
    echo "FAIL: a target differs from the source (see the verify lines above)"
    exit 1
fi
echo "PASS: both targets equal the source"
