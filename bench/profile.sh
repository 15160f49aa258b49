#!/usr/bin/env bash
# bench/profile.sh — how long `tidemark profile` takes on pgbench_accounts, against two anchors.
#
# One run on this machine, one throwaway cluster (under a fresh /tmp directory):
#   1. pgbench -i -s $SCALE (default 50: 5,000,000 accounts, ~640 MB), VACUUM ANALYZE, CHECKPOINT;
#   2. a warm-up count(*) so every measurement starts from the same (warm) cache;
#   3. anchor "scan":  SELECT count(*) FROM pgbench_accounts — one bare sequential scan, the floor
#      for anything that reads every row;
#   4. tidemark profile --table pgbench_accounts (one table, so --jobs does not matter), $REPEAT
#      times, the best run counts;
#   5. anchor "naive": the same statistics the usual way, column by column: per column one
#      aggregate query (count, count(col), count(DISTINCT col), min, max) and one top-values
#      GROUP BY query, plus a format-mask GROUP BY for the text column: 9 scans for 4 columns;
#   6. summary: seconds for each and the ratios profile/scan and naive/profile.
# Method notes and results: docs/BENCHMARKS.md ("Profiling").
#
# Environment: SCALE (50), REPEAT (2), TIDEMARK_BIN (build/tidemark), PG_BIN
# (/usr/lib/postgresql/15/bin), KEEP=1 keeps the cluster's directory. Runs as root (the server
# then runs as postgres) or not.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
SCALE=${SCALE:-50}
REPEAT=${REPEAT:-2}
TIDEMARK_BIN=${TIDEMARK_BIN:-$ROOT/build/tidemark}

# shellcheck source=bench/pgcluster.sh
. "$HERE/pgcluster.sh"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    printf 'FAIL: %s\n' "$*"
    exit 1
}

[ -x "$TIDEMARK_BIN" ] || die "no tidemark binary at $TIDEMARK_BIN (ninja -C build)"
[ -x "$PG_BIN/pgbench" ] || die "no pgbench in $PG_BIN"

cleanup() {
    trap - EXIT INT TERM
    if [ "${KEEP:-0}" = 1 ]; then
        log "keeping $BENCH_DIR"
    else
        pgc_destroy_all
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BENCH_DIR=$(pgc_mkdir profile)
pgc_init src 55442 "shared_buffers = 1GB" "work_mem = 64MB" "max_wal_size = 4GB" \
    "checkpoint_timeout = 30min" "fsync = off" "synchronous_commit = off"
pgc_start src
pgc_psql src postgres -c "CREATE DATABASE bench"
SRC=$(pgc_conninfo src bench)

log "pgbench -i -s $SCALE"
"$PG_BIN/pgbench" -i -q -s "$SCALE" -h "$BENCH_DIR" -p "$(pgc_port src)" -U "$PGC_SUPERUSER" bench \
    >"$BENCH_DIR/pgbench-init.log" 2>&1 || {
    cat "$BENCH_DIR/pgbench-init.log"
    die "pgbench -i failed"
}
pgc_psql src bench -c "VACUUM ANALYZE" -c "CHECKPOINT"
ROWS=$(pgc_psql src bench -c "SELECT count(*) FROM pgbench_accounts")
SIZE=$(pgc_psql src bench -c "SELECT pg_size_pretty(pg_table_size('pgbench_accounts'))")
log "pgbench_accounts: $ROWS rows, $SIZE"

# seconds CMD...: run CMD, print its wall time in seconds (3 decimals)
seconds() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

# best N CMD...: the fastest of N runs
best() {
    local n=$1 b="" t i
    shift
    for ((i = 0; i < n; i++)); do
        t=$(seconds "$@")
        if [ -z "$b" ] || awk -v t="$t" -v b="$b" 'BEGIN { exit !(t < b) }'; then
            b=$t
        fi
    done
    printf '%s\n' "$b"
}

cat >"$BENCH_DIR/profile.yaml" <<YAML
pipeline: bench
source:
  conninfo: "$SRC"
target:
  type: postgres
  conninfo: "$SRC"
log: {level: warning}
YAML

naive() {
    local c
    for c in aid bid abalance filler; do
        pgc_psql src bench -c "SELECT count(*), count($c), count(DISTINCT $c), min($c), max($c) FROM pgbench_accounts" \
            -c "SELECT $c, count(*) FROM pgbench_accounts GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
    done
    pgc_psql src bench -c "SELECT translate(filler, 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789',
        'aaaaaaaaaaaaaaaaaaaaaaaaaaAAAAAAAAAAAAAAAAAAAAAAAAAA9999999999'), count(*) FROM pgbench_accounts
        GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
}

profile() {
    "$TIDEMARK_BIN" profile --config "$BENCH_DIR/profile.yaml" --table pgbench_accounts --no-store \
        --quiet --format json --output "$BENCH_DIR/report.json"
}

log "warm-up scan"
pgc_psql src bench -c "SELECT count(*) FROM pgbench_accounts" >/dev/null
log "anchor: bare count(*) scan"
SCAN=$(best "$REPEAT" pgc_psql src bench -c "SELECT count(*) FROM pgbench_accounts")
log "tidemark profile"
PROF=$(best "$REPEAT" profile)
log "anchor: naive per-column queries"
NAIVE=$(best "$REPEAT" naive)

FINDINGS=$(/usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(len(r["findings"]))' \
    "$BENCH_DIR/report.json")
printf '\nprofile benchmark: pgbench scale %s, pgbench_accounts %s rows (%s), %s cores\n' \
    "$SCALE" "$ROWS" "$SIZE" "$(nproc)"
printf '  bare count(*) scan        %8.2f s\n' "$SCAN"
printf '  tidemark profile          %8.2f s   (%.1fx the bare scan; %s findings)\n' "$PROF" \
    "$(awk -v a="$PROF" -v b="$SCAN" 'BEGIN { print a / b }')" "$FINDINGS"
printf '  naive per-column queries  %8.2f s   (%.2fx the profile)\n' "$NAIVE" \
    "$(awk -v a="$NAIVE" -v b="$PROF" 'BEGIN { print a / b }')"
