#!/usr/bin/env bash
# bench/transform_load.sh — what a table mapping costs the initial load (issue 4 point 7).
#
# One source cluster and one target cluster (throwaway, under a fresh /tmp directory, the same
# settings as bench/bulkload.sh); pgbench -i -s $SCALE on the source; then tidemark loads
# pgbench_accounts alone ($ROWS = SCALE x 100,000 rows), $REPEAT rounds, each round twice into a
# fresh target database, the order alternating per round:
#   plain   no mapping: the rows go through COPY untouched (the existing fast path);
#   mapped  a 5-function mapping: aid {id_offset}, bid {cast: int}, abalance {currency: rate
#           1.0837, scale 2, half_even}, filler [trim, upper] — every row parsed from COPY text,
#           transformed and rendered back (core/transform/mapping_apply.c).
# Each load is timed by bench/bulkload_timer.py from the start of `tidemark run` until the table's
# sync_state is synced. The median per variant and the ratio mapped/plain are printed; the
# mapped target is checked against the source (row count, sum of aid and of abalance).
# Environment: SCALE (10), JOBS (2), REPEAT (3), TIDEMARK_BIN (build/tidemark), PG_BIN, KEEP=1.
# Results: docs/BENCHMARKS.md ("Transformations: mapping cost on the initial load").
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PY=/usr/bin/python3
TIMER="$HERE/bulkload_timer.py"
SCALE=${SCALE:-10}
JOBS=${JOBS:-2}
REPEAT=${REPEAT:-3}
TIDEMARK_BIN=${TIDEMARK_BIN:-$ROOT/build/tidemark}
PIPELINE=xload

# shellcheck source=bench/pgcluster.sh
. "$HERE/pgcluster.sh"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    printf 'FAIL: %s\n' "$*"
    exit 1
}
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

[ -x "$TIDEMARK_BIN" ] || die "no tidemark binary at $TIDEMARK_BIN (ninja -C build)"

BENCH_DIR=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$BENCH_DIR" ] && [ -d "$BENCH_DIR" ]; then
        [ -f "$BENCH_DIR/tidemark.pid" ] && kill -KILL "$(cat "$BENCH_DIR/tidemark.pid")" 2>/dev/null
        if [ "${KEEP:-0}" = 1 ]; then log "KEEP=1: clusters left in $BENCH_DIR"; else pgc_destroy_all; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BENCH_DIR=$(pgc_mkdir xload)
cp "$TIDEMARK_BIN" "$BENCH_DIR/tidemark"
TIDEMARK_BIN="$BENCH_DIR/tidemark"
SETTINGS=("wal_level = logical" "max_wal_senders = 20" "max_replication_slots = 20"
    "shared_buffers = 256MB" "max_wal_size = 8GB" "checkpoint_timeout = 30min")
pgc_init src 55452 "${SETTINGS[@]}"
pgc_init dst 55453 "${SETTINGS[@]}"
pgc_start src
pgc_start dst
pgc_psql src postgres -c "CREATE DATABASE bench"
SRC=$(pgc_conninfo src bench)
log "pgbench -i -s $SCALE"
"$PG_BIN/pgbench" -i -q -s "$SCALE" -h "$BENCH_DIR" -p "$(pgc_port src)" -U "$PGC_SUPERUSER" bench \
    >"$BENCH_DIR/pgbench-init.log" 2>&1 || die "pgbench -i failed"
pgc_psql src bench -c "VACUUM ANALYZE pgbench_accounts"
ROWS=$(pgc_psql src bench -c "SELECT count(*) FROM pgbench_accounts")
pgc_psql src bench -c "COPY pgbench_accounts TO STDOUT" >/dev/null # warm-up

MAPPING='
mapping:
  public.pgbench_accounts:
    columns:
      aid: {transform: [{id_offset: 1000000000}]}
      bid: {transform: [{cast: int}]}
      abalance: {transform: [{currency: {rate: "1.0837", scale: 2, rounding: half_even}}]}
      filler: {transform: [trim, upper]}
'
load() { # load VARIANT ROUND: prints seconds
    local v=$1 db="load_$1_$2" out
    pgc_psql dst postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
    if [ "$v" = plain ]; then
        pgc_psql dst "$db" -c "CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int,
            abalance int, filler char(84))" >/dev/null
    else
        pgc_psql dst "$db" -c "CREATE TABLE pgbench_accounts (aid bigint PRIMARY KEY, bid int,
            abalance numeric(14,2), filler text)" >/dev/null
    fi
    {
        printf 'pipeline: %s\nsource:\n  conninfo: "%s"\n  tables: [public.pgbench_accounts]\n' "$PIPELINE" "$SRC"
        printf 'target:\n  type: postgres\n  conninfo: "%s"\n' "$(pgc_conninfo dst "$db")"
        printf 'copy: {jobs: %s}\nlog: {level: info, format: text}\n' "$JOBS"
        [ "$v" = mapped ] && printf '%s\n' "$MAPPING"
    } >"$BENCH_DIR/$db.yaml"
    pgc_psql src bench -c "CHECKPOINT" >/dev/null
    pgc_psql dst postgres -c "CHECKPOINT" >/dev/null
    out=$("$PY" "$TIMER" tidemark --bin "$TIDEMARK_BIN" --config "$BENCH_DIR/$db.yaml" \
        --log "$BENCH_DIR/$db.log" --pidfile "$BENCH_DIR/tidemark.pid" \
        --dst "$(pgc_conninfo dst "$db")" --pipeline "$PIPELINE" --tables 1 --timeout 1800) ||
        die "tidemark load ($v) failed: $(tail -5 "$BENCH_DIR/$db.log")"
    eval "$out"
    rm -f "$BENCH_DIR/tidemark.pid"
    pgc_psql src bench -c "SELECT pg_drop_replication_slot('tidemark_$PIPELINE')" \
        -c "DROP PUBLICATION IF EXISTS tidemark_$PIPELINE" >/dev/null
    if [ "$v" = mapped ]; then
        local want got
        want=$(pgc_psql src bench -c "SELECT count(*), sum(aid::bigint + 1000000000), sum(round(abalance * 1.0837, 2))
            FROM pgbench_accounts")
        got=$(pgc_psql dst "$db" -c "SELECT count(*), sum(aid), sum(abalance) FROM pgbench_accounts")
        [ "$want" = "$got" ] || die "mapped target differs: want $want got $got"
    fi
    pgc_psql dst postgres -c "DROP DATABASE $db" >/dev/null
    echo "$TM_SECONDS"
}

PLAIN=() MAPPED=()
for ((r = 1; r <= REPEAT; r++)); do
    if ((r % 2)); then order="plain mapped"; else order="mapped plain"; fi
    for v in $order; do
        s=$(load "$v" "$r")
        log "round $r $v: $s s"
        if [ "$v" = plain ]; then PLAIN+=("$s"); else MAPPED+=("$s"); fi
    done
done
P=$(median "${PLAIN[@]}")
M=$(median "${MAPPED[@]}")
echo "rows:            $ROWS (pgbench scale $SCALE, pgbench_accounts only, copy jobs $JOBS)"
echo "plain  (median): $(calc '%.2f' "$P") s  $(calc '%.0f' "$ROWS / $P") rows/s   rounds: ${PLAIN[*]}"
echo "mapped (median): $(calc '%.2f' "$M") s  $(calc '%.0f' "$ROWS / $M") rows/s   rounds: ${MAPPED[*]}"
echo "throughput cost of the 5-function mapping: $(calc '%.1f' "(1 - $P / $M) * 100") %  (time ratio mapped/plain $(calc '%.2f' "$M / $P"); goal < 20 %)"
