#!/usr/bin/env bash
# bench/verify.sh — how long `tidemark verify` takes on pgbench_accounts, against the floor.
#
# One run on this machine, two throwaway clusters (src with wal_level = logical, dst):
#   1. pgbench -i -s $SCALE (default 50: 5,000,000 accounts) on both: pgbench's data is
#      deterministic, so both sides hold identical tables; VACUUM ANALYZE, CHECKPOINT;
#   2. warm-up: one hashing scan on each side;
#   3. floor: SELECT sum(hashtext(t::text)) FROM pgbench_accounts t on both clusters at once —
#      every row read and hashed on both sides in parallel, nothing compared;
#   4. tidemark verify --table pgbench_accounts (identical), $REPEAT times, best counts;
#   5. one row changed on the target (abalance of aid = SCALE * 50,000 + 1... the middle one),
#      tidemark verify again: it must find exactly that row;
#   6. summary: seconds and the ratios verify/floor and differing/identical.
# No pipeline runs: verify is called with --no-wait (the temporary slot still gives the source
# snapshot). Method notes and results: docs/BENCHMARKS.md ("Verification").
#
# Environment: SCALE (50), REPEAT (2), TIDEMARK_BIN (build/tidemark), PG_BIN
# (/usr/lib/postgresql/15/bin), KEEP=1 keeps the clusters' directory.
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

BENCH_DIR=$(pgc_mkdir verify)
COMMON=("shared_buffers = 1GB" "work_mem = 64MB" "max_wal_size = 4GB" "checkpoint_timeout = 30min"
    "fsync = off" "synchronous_commit = off")
pgc_init src 55462 "${COMMON[@]}" "wal_level = logical" "max_replication_slots = 10"
pgc_init dst 55463 "${COMMON[@]}"
pgc_start src
pgc_start dst
log "load average at start: $(cut -d' ' -f1 /proc/loadavg)"
for c in src dst; do
    pgc_psql "$c" postgres -c "CREATE DATABASE bench"
    log "$c: pgbench -i -s $SCALE"
    "$PG_BIN/pgbench" -i -q -s "$SCALE" -h "$BENCH_DIR" -p "$(pgc_port "$c")" -U "$PGC_SUPERUSER" \
        bench >"$BENCH_DIR/pgbench-init-$c.log" 2>&1 || {
        cat "$BENCH_DIR/pgbench-init-$c.log"
        die "pgbench -i failed on $c"
    }
    pgc_psql "$c" bench -c "VACUUM ANALYZE" -c "CHECKPOINT"
done
SRC=$(pgc_conninfo src bench)
DST=$(pgc_conninfo dst bench)
ROWS=$(pgc_psql src bench -c "SELECT count(*) FROM pgbench_accounts")
SIZE=$(pgc_psql src bench -c "SELECT pg_size_pretty(pg_table_size('pgbench_accounts'))")
log "pgbench_accounts: $ROWS rows, $SIZE on each side"

seconds() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

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

HASHQ="SELECT sum(hashtext(t::text)) FROM pgbench_accounts t"
floor_scan() {
    pgc_psql src bench -c "$HASHQ" >/dev/null &
    local p=$!
    pgc_psql dst bench -c "$HASHQ" >/dev/null
    wait "$p"
}

cat >"$BENCH_DIR/verify.yaml" <<YAML
pipeline: bench
source:
  conninfo: "$SRC"
target:
  type: postgres
  conninfo: "$DST"
log: {level: warning}
YAML

verify() {
    "$TIDEMARK_BIN" verify --config "$BENCH_DIR/verify.yaml" --table pgbench_accounts --no-wait \
        --no-integrity --no-store --quiet --format json >"$BENCH_DIR/report.json" || true
}

log "warm-up scans"
floor_scan
log "floor: hashing scan on both sides at once"
FLOOR=$(best "$REPEAT" floor_scan)
log "tidemark verify, identical"
SAME=$(best "$REPEAT" verify)
SAME_OK=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ok"])' \
    "$BENCH_DIR/report.json")
[ "$SAME_OK" = True ] || die "identical tables did not verify clean: $(cat "$BENCH_DIR/report.json")"
MID=$((ROWS / 2))
pgc_psql dst bench -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = $MID"
log "tidemark verify, one row differs (aid $MID)"
DIFF=$(best "$REPEAT" verify)
FOUND=$(/usr/bin/python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
d = r["tables"][0]["differences"]
print("%d:%s" % (len(d), d[0]["key"]["aid"] if d else "-"))' "$BENCH_DIR/report.json")
[ "$FOUND" = "1:$MID" ] || die "expected exactly aid $MID to differ, got $FOUND"
QUERIES=$(/usr/bin/python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["tables"][0]; print(t["queries"], t["rows_fetched"])' \
    "$BENCH_DIR/report.json")
log "load average at end: $(cut -d' ' -f1 /proc/loadavg)"

printf '\nverify benchmark: pgbench scale %s, pgbench_accounts %s rows (%s per side), %s cores\n' \
    "$SCALE" "$ROWS" "$SIZE" "$(nproc)"
printf '  floor: hashing scan, both sides at once  %8.2f s\n' "$FLOOR"
printf '  tidemark verify, identical               %8.2f s   (%.2fx the floor; goal <= 1.5x)\n' \
    "$SAME" "$(awk -v a="$SAME" -v b="$FLOOR" 'BEGIN { print a / b }')"
printf '  tidemark verify, one row differs         %8.2f s   (%.2fx identical; goal < 2x;' \
    "$DIFF" "$(awk -v a="$DIFF" -v b="$SAME" 'BEGIN { print a / b }')"
printf ' queries, rows fetched: %s)\n' "$QUERIES"
