#!/usr/bin/env bash
# scripts/demo.sh — the Quick-start demo.
#
# Builds tidemark, creates two throwaway PostgreSQL 15 clusters in a fresh /tmp
# directory (via tests/e2e/harness.py, the same code the tests use), loads a
# small shop (customers, orders with a foreign key, ~50k rows) into the source,
# creates the same schema on the target, starts tidemark, runs ~10 s of live
# writes with pgbench, waits until the target has caught up, prints a
# per-table comparison (rows and md5 on both sides), stops the daemon and
# removes the clusters.  Exits 0 only if every table matches.
#
# Environment: DEMO_SECONDS (default 10), DEMO_CLIENTS (default 4).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PY=/usr/bin/python3
PG_BIN=/usr/lib/postgresql/15/bin
HARNESS="$ROOT/tests/e2e/harness.py"
SECONDS_OF_WRITES=${DEMO_SECONDS:-10}
CLIENTS=${DEMO_CLIENTS:-4}
PIPELINE=demo
DEMO_DIR=""
DAEMON_PID=""

say() { printf '[demo] %s\n' "$*"; }
die() { printf '[demo] ERROR: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ packages
if ! missing=$("$ROOT/scripts/install-deps.sh" --check); then
    if [ "$(id -u)" -eq 0 ]; then
        say "installing packages: $(echo $missing)"
        "$ROOT/scripts/install-deps.sh"
    else
        die "missing packages; run: sudo scripts/install-deps.sh"
    fi
fi

# ------------------------------------------------------------------ build
say "building build/tidemark"
"$ROOT/scripts/meson-dir.sh" build -Dwerror=true 2>/dev/null >/dev/null
ninja -C build >/dev/null
TIDEMARK="$ROOT/build/tidemark"
say "$("$TIDEMARK" --version 2>&1 | head -n1)"

# ------------------------------------------------------------------ clusters
cleanup() {
    local rc=$?
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    if [ -n "$DEMO_DIR" ]; then
        say "removing the clusters in $DEMO_DIR"
        "$PY" "$HARNESS" down "$DEMO_DIR" || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

DEMO_DIR=$(mktemp -d /tmp/tidemark-demo-XXXXXX)
say "starting two PostgreSQL 15 clusters in $DEMO_DIR"
cluster_vars=$("$PY" "$HARNESS" up "$DEMO_DIR")
eval "$cluster_vars"
export PGHOST PGUSER
SRC="host=$PGHOST port=$SRC_PORT dbname=shop user=$PGUSER"
DST="host=$PGHOST port=$DST_PORT dbname=shop_new user=$PGUSER"
say "source: port $SRC_PORT database shop; target: port $DST_PORT database shop_new"

psql_src() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -p "$SRC_PORT" -d shop "$@"; }
psql_dst() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -p "$DST_PORT" -d shop_new "$@"; }
"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -p "$SRC_PORT" -d postgres -c 'CREATE DATABASE shop'
"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -p "$DST_PORT" -d postgres -c 'CREATE DATABASE shop_new'

# ------------------------------------------------------------------ schema and data
SCHEMA="
CREATE TABLE customers (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    email       text,
    order_count int NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
    id          bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    amount      numeric(10, 2) NOT NULL,
    status      text NOT NULL DEFAULT 'new',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON orders (customer_id);
"
say "creating the schema on both sides"
psql_src -c "$SCHEMA"
psql_dst -c "$SCHEMA"

say "loading 10000 customers and 40000 orders into the source"
psql_src <<'SQL'
INSERT INTO customers (name, email)
    SELECT 'customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 10000) g;
INSERT INTO orders (customer_id, amount, status)
    SELECT 1 + g % 10000, (g % 50000) / 100.0, (ARRAY['new', 'paid', 'shipped'])[1 + g % 3]
    FROM generate_series(1, 40000) g;
UPDATE customers c SET order_count = o.n FROM (SELECT customer_id, count(*) n FROM orders GROUP BY 1) o
    WHERE o.customer_id = c.id;
SQL

# ------------------------------------------------------------------ tidemark
CONFIG="$DEMO_DIR/tidemark.yaml"
cat >"$CONFIG" <<EOF
pipeline: $PIPELINE
source:
  conninfo: "$SRC"
  tables: [public.customers, public.orders]
target:
  type: postgres
  conninfo: "$DST"
log: {level: info}
EOF
say "profiling the source first (tidemark profile; baseline counts kept on the target)"
if ! "$TIDEMARK" profile --config "$CONFIG" --quiet >"$DEMO_DIR/profile.txt" \
        2>"$DEMO_DIR/profile.log"; then
    sed 's/^/    /' "$DEMO_DIR/profile.log"
    die "tidemark profile failed"
fi
sed -n '1,4p' "$DEMO_DIR/profile.txt" | sed 's/^/    /'
say "starting tidemark (log: $DEMO_DIR/tidemark.log)"
"$TIDEMARK" run --config "$CONFIG" 2>"$DEMO_DIR/tidemark.log" &
DAEMON_PID=$!

show_log() { say "tidemark log (last 30 lines):"; tail -n 30 "$DEMO_DIR/tidemark.log" | sed 's/^/    /'; }

wait_caught_up() {
    if ! "$PY" "$HARNESS" wait-caught-up "$SRC" "$DST" "$PIPELINE" --timeout "$1" --pid "$DAEMON_PID" >/dev/null; then
        show_log
        die "tidemark did not catch up"
    fi
}

elapsed() { local ms=$((($(date +%s%N) - $1) / 1000000)); printf '%d.%ds' $((ms / 1000)) $((ms % 1000 / 100)); }

t0=$(date +%s%N)
wait_caught_up 120
say "initial copy done and caught up in $(elapsed "$t0")"

# ------------------------------------------------------------------ live writes
cat >"$DEMO_DIR/order.sql" <<'SQL'
\set cid random(1, 10000)
\set cents random(100, 100000)
BEGIN;
INSERT INTO orders (customer_id, amount) VALUES (:cid, :cents / 100.0);
UPDATE customers SET order_count = order_count + 1 WHERE id = :cid;
END;
SQL
cat >"$DEMO_DIR/ship.sql" <<'SQL'
\set oid random(1, 40000)
UPDATE orders SET status = 'shipped' WHERE id = :oid AND status <> 'shipped';
SQL
cat >"$DEMO_DIR/signup.sql" <<'SQL'
INSERT INTO customers (name, email) VALUES ('live signup', NULL);
SQL
cat >"$DEMO_DIR/cancel.sql" <<'SQL'
\set oid random(1, 40000)
DELETE FROM orders WHERE id = :oid;
SQL
say "running live writes for ${SECONDS_OF_WRITES}s with $CLIENTS pgbench clients while tidemark streams"
if ! "$PG_BIN/pgbench" -n -p "$SRC_PORT" -c "$CLIENTS" -j 2 -T "$SECONDS_OF_WRITES" \
    -f "$DEMO_DIR/order.sql@6" -f "$DEMO_DIR/ship.sql@3" -f "$DEMO_DIR/signup.sql@1" -f "$DEMO_DIR/cancel.sql@1" \
    shop >"$DEMO_DIR/pgbench.log" 2>&1; then
    sed 's/^/    /' "$DEMO_DIR/pgbench.log"
    die "pgbench failed"
fi
grep -E '^(number of transactions actually processed|number of failed|tps)' "$DEMO_DIR/pgbench.log" | sed 's/^/    /'
kill -0 "$DAEMON_PID" 2>/dev/null || { show_log; die "tidemark exited during the writes"; }

say "waiting for tidemark to catch up"
t0=$(date +%s%N)
wait_caught_up 120
say "caught up $(elapsed "$t0") after the writes stopped"

# ------------------------------------------------------------------ compare
say "verifying row by row (tidemark verify: counts, checksums, bisection, FKs)"
status=0
"$TIDEMARK" verify --config "$CONFIG" 2>"$DEMO_DIR/verify.log" | sed 's/^/    /'
[ "${PIPESTATUS[0]}" -eq 0 ] || { status=1; sed 's/^/    /' "$DEMO_DIR/verify.log"; }
say "cross-check with an independent comparison (md5 of every row on both sides)"
"$PY" "$HARNESS" compare "$SRC" "$DST" public.customers public.orders 2>&1 | sed 's/^/    /' || status=1

say "stopping tidemark"
kill -TERM "$DAEMON_PID"
rc=0
wait "$DAEMON_PID" || rc=$?
DAEMON_PID=""
if [ "$rc" -ne 0 ]; then
    show_log
    die "tidemark exited with status $rc"
fi

if [ "$status" -eq 0 ]; then
    say "all tables match ✓"
else
    show_log
    die "tables differ ✗"
fi
