#!/bin/bash
# bench/decode_split.sh — does the source's decoding split when the stream is split by key?
#
# Issue 14 asks how the apply scales with cores. Whatever the apply does, one slot is decoded by
# one walsender, serially: it is the floor of every drain (tidemark's and native's). This measures
# what a key-partitioned stream would cost the source: the same pgbench backlog decoded through one
# publication with every row, and through K publications with PostgreSQL 15 row filters
# (`WHERE (key % K) = i`), each slot read by a backend of its own
# (pg_logical_slot_peek_binary_changes, pgoutput). CPU seconds of each decoding backend come from
# /proc/PID/stat. If each of the K filtered decodes costs clearly less than the full one, K
# walsenders on K cores decode the backlog in parallel; if each costs about as much, decoding does
# not split and one walsender stays the floor.
#
#   bench/decode_split.sh                  # SCALE=10, TXNS=5000 per client x 4, K=2 and 4
# Environment: SCALE (10), TXNS (5000), KS ("2 4"), PG_BIN. Clusters are removed on exit.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/pgcluster.sh
. "$HERE/pgcluster.sh"
SCALE=${SCALE:-10}
TXNS=${TXNS:-5000}
KS=${KS:-2 4}
PORT=${PORT:-55491}

BENCH_DIR=$(pgc_mkdir decode)
export BENCH_DIR
trap 'pgc_destroy_all' EXIT
pgc_init src "$PORT" "wal_level = logical" "max_replication_slots = 20" "shared_buffers = 256MB" \
    "logical_decoding_work_mem = 256MB"
pgc_start src
CI=$(pgc_conninfo src postgres)
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$CI" "$@"; }
psql -c "CREATE DATABASE bench"
CB=$(pgc_conninfo src bench)
bpsql() { command psql -X -q -At -v ON_ERROR_STOP=1 "$CB" "$@"; }
"$PG_BIN/pgbench" -q -i -s "$SCALE" "$CB" >/dev/null 2>&1
bpsql -c "ALTER TABLE pgbench_history REPLICA IDENTITY FULL"
bpsql -c "CREATE PUBLICATION p_all FOR TABLE pgbench_accounts, pgbench_tellers, pgbench_branches, pgbench_history"
slots="all"
for k in $KS; do
    for ((i = 0; i < k; i++)); do
        bpsql -c "CREATE PUBLICATION p_${k}_$i FOR TABLE pgbench_accounts WHERE ((aid % $k) = $i),
                  pgbench_tellers WHERE ((tid % $k) = $i), pgbench_branches WHERE ((bid % $k) = $i),
                  pgbench_history WHERE ((aid % $k) = $i)"
        slots="$slots ${k}_$i"
    done
done
for s in $slots; do
    bpsql -c "SELECT pg_create_logical_replication_slot('s_$s', 'pgoutput')" >/dev/null
done
"$PG_BIN/pgbench" -n -c 4 -j 2 -t "$TXNS" "$CB" >/dev/null 2>&1
bpsql -c "CHECKPOINT"

# decode SLOT PUB: CPU seconds of the backend that decodes the whole backlog, and bytes out.
decode() {
    /usr/bin/python3 - "$CB" "s_$1" "$2" <<'PY'
import sys, os, psycopg
tck = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tck
with psycopg.connect(sys.argv[1]) as c:
    pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
    c.execute("SELECT count(*) FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL,"
              " 'proto_version', '1', 'publication_names', %s)", (sys.argv[2], sys.argv[3])).fetchone()
    c0 = cpu(pid)
    n, b = c.execute("SELECT count(*), coalesce(sum(length(data)), 0) FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL,"
                     " 'proto_version', '1', 'publication_names', %s)", (sys.argv[2], sys.argv[3])).fetchone()
    print("%.2f %d %d" % (cpu(pid) - c0, n, b))
PY
}
echo "== decoding one backlog ($((4 * TXNS)) pgbench transactions, scale $SCALE) through one slot per publication"
echo "   (second of two reads; the first warms the cache)"
read -r full nfull bfull <<<"$(decode all p_all)"
printf '%-10s %8s %10s %12s %s\n' slot "CPU s" messages "bytes out" "vs all rows"
printf '%-10s %8s %10s %12s %s\n' all "$full" "$nfull" "$bfull" 1.00
for k in $KS; do
    sum=0 max=0
    for ((i = 0; i < k; i++)); do
        read -r c n b <<<"$(decode "${k}_$i" "p_${k}_$i")"
        printf '%-10s %8s %10s %12s %s\n' "${k}_$i" "$c" "$n" "$b" "$(echo "scale=2; $c / $full" | bc)"
        sum=$(echo "$sum + $c" | bc)
        max=$(echo "if ($c > $max) $c else $max" | bc)
    done
    echo "RESULT k=$k full_cpu_s=$full sum_cpu_s=$sum max_cpu_s=$max parallel_speedup=$(echo "scale=2; $full / $max" | bc)"
done
