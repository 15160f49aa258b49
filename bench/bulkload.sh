#!/usr/bin/env bash
# bench/bulkload.sh — initial load of a pgbench database: tidemark vs pgcopydb vs native logical
# replication vs the raw COPY pipe.
#
# One run on this machine, all clusters throwaway (under a fresh /tmp directory):
#   1. a source cluster (wal_level=logical) and a target cluster with four databases, one per
#      loader; the same settings on both clusters;
#   2. pgbench -i -s $SCALE on the source (5M rows in pgbench_accounts at the default 50);
#      pgbench_history gets REPLICA IDENTITY FULL (tidemark refuses a table UPDATE/DELETE could not
#      be replicated for); VACUUM ANALYZE; the target schema, created in every target database
#      before its load, the same for every loader: KEYS=yes pg_dump --schema-only (tables WITH
#      their primary keys: what tidemark's default `schema: existing` expects, and what users
#      have), KEYS=no its pre-data section only (bare tables);
#   3. one warm-up read of the source tables (so the first loader does not pay for a cold cache);
#   4. for every configuration (each of $KEYS times each of $JOBS; "cores": nproc jobs, tidemark
#      with its default jobs: 0) the loaders, one after the other, each into its own freshly created database (schema as in
#      2.), with a CHECKPOINT on both clusters before each, all with $JOBS parallel jobs; $REPEAT
#      rounds, the order rotated by one loader each round (the machine may be shared: the median
#      of the rounds is reported, every round's time is printed):
#        tidemark  `tidemark run` with copy: {jobs: $JOBS} (part_size_mb: tidemark's default unless
#                  PART_SIZE_MB is set), timed from the start of the process until every row of
#                  tidemark.sync_state is synced; peak RSS (VmHWM) read just before SIGTERM;
#        pgcopydb  `pgcopydb copy table-data --table-jobs $JOBS` (Debian's pgcopydb), wall time;
#        native    CREATE SUBSCRIPTION ... WITH (copy_data = true) on the target
#                  (max_sync_workers_per_subscription = $JOBS), timed until every table is in
#                  state 'r' in pg_subscription_rel;
#        pipe      psql -c "COPY t TO STDOUT" | psql -c "COPY t FROM STDIN" per table, one table
#                  after the other (pgbench_accounts dominates), wall time: the bulk-load limit;
#        base      (only if in ORDER) tidemark again with the binary BASE_BIN (default: the same)
#                  and part_size_mb BASE_PART_SIZE_MB (default: PART_SIZE_MB): A/B of a change;
#   5. every target (of the last round of each configuration) compared with the source (row counts + md5 of the per-row
#      md5s in key order): FAIL and exit 1 if one differs;
#   6. summary per configuration: seconds, rows/s, ratio tidemark/each anchor, CPU seconds (the
#      loader's own processes plus both clusters' during the load) and CPU microseconds per row,
#      tidemark peak RSS, the goals; then one RESULT line per configuration.
# Method notes and results: docs/BENCHMARKS.md ("Initial load").
#
# Environment: SCALE (50), KEYS ("yes"; e.g. "yes no"), JOBS ("2"; e.g. "1 2 cores"), PART_SIZE_MB (unset: tidemark's default), REPEAT (3), ORDER
# of the first round (default "tidemark pgcopydb native pipe"), TIDEMARK_BIN (build/tidemark), LOAD_TIMEOUT seconds (1800),
# BASE_BIN, PG_BIN (/usr/lib/postgresql/15/bin), PGCOPYDB (pgcopydb), KEEP=1 keeps the clusters,
# RESULTS_DIR=DIR copies the logs there.  Runs as root (servers then run as postgres) or not.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PY=/usr/bin/python3
TIMER="$HERE/bulkload_timer.py"

SCALE=${SCALE:-50}
JOBS=${JOBS:-2}
KEYS=${KEYS:-yes}
REPEAT=${REPEAT:-3}
ORDER=${ORDER:-tidemark pgcopydb native pipe}
TIDEMARK_BIN=${TIDEMARK_BIN:-$ROOT/build/tidemark}
PGCOPYDB=${PGCOPYDB:-pgcopydb}
LOAD_TIMEOUT=${LOAD_TIMEOUT:-1800}
PIPELINE=bulk
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
[ -x "$PG_BIN/pgbench" ] || die "no pgbench in $PG_BIN"
command -v "$PGCOPYDB" >/dev/null || die "no $PGCOPYDB (apt-get install pgcopydb)"
"$PY" -c 'import psycopg' 2>/dev/null || die "$PY cannot import psycopg (apt-get install python3-psycopg)"
for who in $ORDER; do
    case $who in tidemark | base | pgcopydb | native | pipe) ;; *) die "ORDER: unknown loader '$who'" ;; esac
done
for k in $KEYS; do case $k in yes | no) ;; *) die "KEYS: yes or no, not '$k'" ;; esac; done
for j in $JOBS; do case $j in cores | [1-9] | [1-9][0-9]) ;; *) die "JOBS: a number or 'cores', not '$j'" ;; esac; done
BASE_BIN=${BASE_BIN:-$TIDEMARK_BIN}

BENCH_DIR=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$BENCH_DIR" ] && [ -d "$BENCH_DIR" ]; then
        if [ -f "$BENCH_DIR/tidemark.pid" ]; then
            kill -KILL "$(cat "$BENCH_DIR/tidemark.pid")" 2>/dev/null || true
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
BENCH_DIR=$(pgc_mkdir bulkload)
log "clusters in $BENCH_DIR"
# A private copy: a rebuild of build/ during the run must not change the binary under test.
cp "$TIDEMARK_BIN" "$BENCH_DIR/tidemark"
TIDEMARK_ID="$("$BENCH_DIR/tidemark" --version 2>&1 | head -1), $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown), sha256 $(sha256sum "$BENCH_DIR/tidemark" | cut -c1-12)"
TIDEMARK_BIN="$BENCH_DIR/tidemark"
if [ -n "${BASE_BIN:-}" ]; then
    cp "$BASE_BIN" "$BENCH_DIR/tidemark-base"
    BASE_BIN=$BENCH_DIR/tidemark-base
    BASE_ID="sha256 $(sha256sum "$BASE_BIN" | cut -c1-12)"
fi
log "tidemark: $TIDEMARK_ID; $("$PGCOPYDB" --version 2>&1 | grep -m1 '^pgcopydb version')"

# ---------------------------------------------------------------- 1. clusters
# PostgreSQL defaults (fsync, synchronous_commit, full_page_writes on) except these, on both.
SETTINGS=(
    "wal_level = logical"
    "max_wal_senders = 20"
    "max_replication_slots = 20"
    "shared_buffers = 256MB"
    "max_wal_size = 8GB"
    "checkpoint_timeout = 30min"
    "max_logical_replication_workers = 8"
    "max_sync_workers_per_subscription = 2" # per configuration: ALTER SYSTEM in run_config
)
pgc_init src 55442 "${SETTINGS[@]}"
pgc_init dst 55443 "${SETTINGS[@]}"
pgc_start src
pgc_start dst
pgc_psql src postgres -c "CREATE DATABASE bench"
SRC=$(pgc_conninfo src bench)
uri() { printf 'postgres:///%s?host=%s&port=%s&user=%s\n' "$2" "$BENCH_DIR" "$(pgc_port "$1")" "$PGC_SUPERUSER"; }

# ---------------------------------------------------------------- 2. source data, target schema
log "pgbench -i -s $SCALE"
t=$(now)
"$PG_BIN/pgbench" -i -q -s "$SCALE" -h "$BENCH_DIR" -p "$(pgc_port src)" -U "$PGC_SUPERUSER" bench \
    >"$BENCH_DIR/pgbench-init.log" 2>&1 || {
    cat "$BENCH_DIR/pgbench-init.log"
    die "pgbench -i failed"
}
pgc_psql src bench -c "ALTER TABLE public.pgbench_history REPLICA IDENTITY FULL"
pgc_psql src bench -c "VACUUM ANALYZE"
log "pgbench -i took $(calc '%.0f' "$(now) - $t") s"
# keys=yes: tables with their primary keys (what pg_dump --schema-only / tidemark's schema: copy
# leave on a target); keys=no: bare tables (pre-data only), nothing to maintain while loading.
"$PG_BIN/pg_dump" --schema-only --no-owner -h "$BENCH_DIR" -p "$(pgc_port src)" -U "$PGC_SUPERUSER" bench \
    >"$BENCH_DIR/schema-keys.sql"
"$PG_BIN/pg_dump" --schema-only --section=pre-data --no-owner -h "$BENCH_DIR" -p "$(pgc_port src)" \
    -U "$PGC_SUPERUSER" bench >"$BENCH_DIR/schema-bare.sql"
# fresh_target WHO: an empty database load_WHO with the source's schema ($SCHEMA_SQL).
fresh_target() {
    pgc_psql dst postgres -c "DROP DATABASE IF EXISTS load_$1" -c "CREATE DATABASE load_$1" 2>/dev/null
    pgc_psql dst "load_$1" -f "$SCHEMA_SQL" >/dev/null
}
ACCOUNTS_MB=$(pgc_psql src bench -c "SELECT pg_table_size('pgbench_accounts') / 1048576")
TOTAL_MB=$(pgc_psql src bench -c "SELECT (sum(pg_table_size(c.oid)) / 1048576)::bigint FROM pg_class c
    WHERE c.relname IN ('pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history')")
ROWS=$(pgc_psql src bench -c "SELECT count(*) FROM pgbench_accounts")
ROWS_ALL=$(pgc_psql src bench -c "SELECT (SELECT count(*) FROM pgbench_accounts) + (SELECT count(*) FROM pgbench_branches)
    + (SELECT count(*) FROM pgbench_tellers) + (SELECT count(*) FROM pgbench_history)")
log "source: $ROWS rows in pgbench_accounts ($ACCOUNTS_MB MB), $TOTAL_MB MB in the four tables"

# ---------------------------------------------------------------- 3. warm-up
for t in "${TABLES[@]}"; do
    pgc_psql src bench -c "COPY $t TO STDOUT" >/dev/null
done

# ---------------------------------------------------------------- 4. loads
table_list=$(printf '%s, ' "${TABLES[@]}")
# tidemark_yaml DB JOBS_SETTING PART_SIZE_MB: the config of a tidemark load into database DB.
tidemark_yaml() {
    cat <<EOF
pipeline: $PIPELINE
source:
  conninfo: "$SRC"
  tables: [${table_list%, }]
target:
  type: postgres
  conninfo: "$(pgc_conninfo dst "$1")"
copy: {jobs: $2${3:+, part_size_mb: $3}}
log: {level: info, format: text}
EOF
}

# load_tidemark_bin WHO BIN PART_SIZE_MB: one tidemark load into load_WHO with binary BIN.
load_tidemark_bin() {
    local out
    tidemark_yaml "load_$1" "$TM_JOBS" "$3" >"$BENCH_DIR/$1.yaml"
    out=$("$PY" "$TIMER" tidemark --bin "$2" --config "$BENCH_DIR/$1.yaml" \
        --log "$BENCH_DIR/$1.log" --pidfile "$BENCH_DIR/tidemark.pid" \
        --dst "$(pgc_conninfo dst "load_$1")" --pipeline "$PIPELINE" --tables "${#TABLES[@]}" \
        --timeout "$LOAD_TIMEOUT") || die "$1 load failed"
    eval "$out"
    CLIENT_CPU=$TM_CPU_S
    [ "$1" != tidemark ] || TIDEMARK_PARTS=$TM_PARTS
    rm -f "$BENCH_DIR/tidemark.pid"
    # The pipeline's slot and publication would keep WAL for the loads that follow.
    pgc_psql src bench -c "SELECT pg_drop_replication_slot('tidemark_$PIPELINE')" \
        -c "DROP PUBLICATION IF EXISTS tidemark_$PIPELINE" >/dev/null
    TIME=$TM_SECONDS
}
load_tidemark() { load_tidemark_bin tidemark "$TIDEMARK_BIN" "${PART_SIZE_MB:-}"; }
load_base() { load_tidemark_bin base "$BASE_BIN" "${BASE_PART_SIZE_MB:-${PART_SIZE_MB:-}}"; }

load_pgcopydb() {
    local out
    out=$("$PY" "$TIMER" run --log "$BENCH_DIR/pgcopydb.log" -- "$PGCOPYDB" copy table-data \
        --source "$(uri src bench)" --target "$(uri dst load_pgcopydb)" --dir "$BENCH_DIR/pgcopydb" \
        --table-jobs "$NJOBS")
    eval "$out"
    [ "$RUN_RC" = 0 ] || {
        tail -30 "$BENCH_DIR/pgcopydb.log"
        die "pgcopydb copy table-data failed"
    }
    rm -rf "$BENCH_DIR/pgcopydb"
    TIME=$RUN_SECONDS CLIENT_CPU=$RUN_CPU_S
}

load_native() {
    local out
    pgc_psql src bench -c "CREATE PUBLICATION bulk_native FOR TABLE ${table_list%, }"
    out=$("$PY" "$TIMER" native --dst "$(pgc_conninfo dst load_native)" --sub bulk_native --pub bulk_native \
        --sub-conninfo "$SRC" --tables "${#TABLES[@]}" --timeout "$LOAD_TIMEOUT") || die "native load failed"
    eval "$out"
    pgc_psql src bench -c "DROP PUBLICATION bulk_native"
    TIME=$NATIVE_SECONDS CLIENT_CPU=0 # the sync and apply workers are the target cluster's
}

load_pipe() {
    local out
    # shellcheck disable=SC2016
    out=$(SRC_PORT=$(pgc_port src) DST_PORT=$(pgc_port dst) PG_BIN=$PG_BIN BENCH_DIR=$BENCH_DIR \
        PGC_SUPERUSER=$PGC_SUPERUSER "$PY" "$TIMER" run -- bash -c 'set -eo pipefail
        for t in "$@"; do
            "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$BENCH_DIR" -p "$SRC_PORT" -U "$PGC_SUPERUSER" -d bench \
                -c "COPY $t TO STDOUT" |
                "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$BENCH_DIR" -p "$DST_PORT" -U "$PGC_SUPERUSER" \
                    -d load_pipe -c "COPY $t FROM STDIN"
        done' pipe "${TABLES[@]}")
    eval "$out"
    [ "$RUN_RC" = 0 ] || die "the COPY pipe failed"
    TIME=$RUN_SECONDS CLIENT_CPU=$RUN_CPU_S
}

# median of the arguments
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
server_cpu() { "$PY" "$TIMER" cpu --datadir "$BENCH_DIR/src" --datadir "$BENCH_DIR/dst" | sed -n 's/^CPU_S=//p'; }
goal() { awk "BEGIN { exit !($1) }" && echo "met" || echo "MISSED"; }

SUMMARY=()
ALL_OK=1
# run_config KEYS JOBS: every loader, REPEAT interleaved rounds, verify, summary.
run_config() {
    local keys=$1 jobs=$2 round who cpu out
    local -A TIMES=() CPUS=()
    local rss_all=""
    if [ "$jobs" = cores ]; then
        NJOBS=$(nproc) TM_JOBS=0 # tidemark's own default: one job per core
    else
        NJOBS=$jobs TM_JOBS=$jobs
    fi
    if [ "$keys" = yes ]; then SCHEMA_SQL=$BENCH_DIR/schema-keys.sql; else SCHEMA_SQL=$BENCH_DIR/schema-bare.sql; fi
    pgc_psql dst postgres -c "ALTER SYSTEM SET max_sync_workers_per_subscription = $NJOBS" \
        -c "SELECT pg_reload_conf()" >/dev/null
    read -r -a order <<<"$ORDER"
    for round in $(seq 1 "$REPEAT"); do
        for who in "${order[@]}"; do
            fresh_target "$who"
            pgc_psql src bench -c "CHECKPOINT"
            pgc_psql dst postgres -c "CHECKPOINT"
            log "keys=$keys jobs=$jobs round $round: $who"
            cpu0=$(server_cpu)
            "load_$who"
            cpu=$(calc '%.2f' "$(server_cpu) - $cpu0 + $CLIENT_CPU")
            TIMES[$who]="${TIMES[$who]:-} $TIME"
            CPUS[$who]="${CPUS[$who]:-} $cpu"
            [ "$who" = tidemark ] && rss_all="$rss_all $TM_VMHWM_KB"
            log "keys=$keys jobs=$jobs round $round: $who took $TIME s, $cpu CPU s (client $CLIENT_CPU s, the rest both clusters)"
        done
        order=("${order[@]:1}" "${order[0]}")
    done
    local -A SEC=() CPU=()
    for who in $ORDER; do
        # shellcheck disable=SC2086
        SEC[$who]=$(median ${TIMES[$who]})
        # shellcheck disable=SC2086
        CPU[$who]=$(median ${CPUS[$who]})
    done

    log "verify (keys=$keys jobs=$jobs): every target against the source"
    local verify_args=() verify_ok=1
    for who in $ORDER; do
        verify_args+=(--target "$who" "$(pgc_conninfo dst "load_$who")")
    done
    out=$("$PY" "$TIMER" verify --src "$SRC" "${verify_args[@]}") || verify_ok=0
    eval "$out"
    [ "$verify_ok" = 1 ] || ALL_OK=0
    local problems rss_mb
    problems=$(cat "$BENCH_DIR"/tidemark.log "$BENCH_DIR"/base.log 2>/dev/null | grep -ciE '\b(error|warning|fatal|panic)\b' || true)
    # shellcheck disable=SC2086
    rss_mb=$(calc '%.1f' "$(printf '%s\n' $rss_all -1024 | sort -g | tail -1) / 1024")

    echo
    echo "== keys=$keys jobs=$jobs ($NJOBS; tidemark jobs: $TM_JOBS): pgbench -s $SCALE, $ROWS_ALL rows in all tables, median of $REPEAT round(s)"
    echo "tidemark parts: ${TIDEMARK_PARTS:-?}; load average now $(cut -d' ' -f1 /proc/loadavg)"
    printf '%-10s %8s %10s %8s %9s %10s   %s\n' loader seconds rows/s "tm/this" "CPU s" "CPU us/row" "rounds: seconds / CPU s"
    local line="" ratio
    for who in tidemark base pgcopydb native pipe; do
        [ -n "${SEC[$who]:-}" ] || continue
        ratio=""
        [ "$who" != tidemark ] && [ -n "${SEC[tidemark]:-}" ] && ratio=$(calc '%.2f' "${SEC[tidemark]} / ${SEC[$who]}")
        printf '%-10s %8.2f %10s %8s %9.2f %10.2f   %s / %s\n' "$who" "${SEC[$who]}" \
            "$(calc '%.0f' "$ROWS_ALL / ${SEC[$who]}")" "$ratio" "${CPU[$who]}" \
            "$(calc '%.3f' "${CPU[$who]} * 1000000 / $ROWS_ALL")" "${TIMES[$who]# }" "${CPUS[$who]# }"
        line+=" ${who}_s=${SEC[$who]} ${who}_cpu_s=${CPU[$who]}"
    done
    if [ -n "${SEC[tidemark]:-}" ]; then
        [ -n "${SEC[pgcopydb]:-}" ] && echo "goal         faster than pgcopydb: $(goal "${SEC[tidemark]} < ${SEC[pgcopydb]}")"
        [ -n "${SEC[native]:-}" ] && echo "goal         faster than native: $(goal "${SEC[tidemark]} < ${SEC[native]}")"
        [ -n "${SEC[pipe]:-}" ] && echo "goal         within 1.2x of the raw pipe: $(goal "${SEC[tidemark]} <= 1.2 * ${SEC[pipe]}")"
        echo "goal         peak RSS < 64 MB: $(goal "$rss_mb < 64") ($rss_mb MB); $problems error/warning line(s) in tidemark's log"
    fi
    if [ "$verify_ok" = 1 ]; then echo "verify       PASS"; else echo "verify       FAIL: a target differs from the source"; fi
    SUMMARY+=("RESULT scale=$SCALE keys=$keys jobs=$jobs repeat=$REPEAT rows=$ROWS_ALL$line tidemark_rss_mb=$rss_mb verify=$verify_ok")
}

for keys in $KEYS; do
    for jobs in $JOBS; do
        run_config "$keys" "$jobs"
    done
done

# ---------------------------------------------------------------- 6. summary
echo
echo "== all configurations: pgbench -s $SCALE; $(nproc) CPUs; load average $LOAD_START at start, $(cut -d' ' -f1 /proc/loadavg) at end"
echo "tidemark     $TIDEMARK_ID${BASE_ID:+; base: $BASE_ID}"
printf '%s\n' "${SUMMARY[@]}"
if [ "$ALL_OK" != 1 ]; then
    echo "FAIL: a target differs from the source (see the verify lines above)"
    exit 1
fi
echo "PASS: every target equals the source"
