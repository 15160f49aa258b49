# shellcheck shell=bash
# bench/pgcluster.sh — throwaway PostgreSQL clusters for the benchmarks (sourced, not run).
#
# Every cluster lives in $BENCH_DIR/NAME, listens on a unix socket in $BENCH_DIR only (no TCP),
# and is started with the PostgreSQL defaults except what the caller passes to pgc_init.
# PostgreSQL refuses to run as root: when we are root the server-side commands (initdb, pg_ctl)
# run as `postgres` through runuser, and $BENCH_DIR is owned by postgres.
#
#   BENCH_DIR=$(pgc_mkdir drain)        # fresh /tmp/tidemark-bench-drain-XXXXXX
#   pgc_init src 55432 "wal_level = logical" "shared_buffers = 256MB"
#   pgc_start src
#   pgc_conninfo src bench              # host=... port=... dbname=bench user=...
#   pgc_destroy_all                     # stop every cluster (immediate) and remove $BENCH_DIR

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

if [ "$(id -u)" -eq 0 ]; then
    PGC_SUPERUSER=postgres
else
    PGC_SUPERUSER=$(id -un)
fi

# pgc_as_owner CMD...: run CMD as the cluster owner (postgres when we are root).
pgc_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# pgc_mkdir TAG: print a fresh directory under /tmp owned by the cluster owner.
pgc_mkdir() {
    local dir
    dir=$(mktemp -d "/tmp/tidemark-bench-$1-XXXXXX") || return 1
    chmod 755 "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres:postgres "$dir"
    fi
    printf '%s\n' "$dir"
}

# pgc_init NAME PORT [SETTING...]: initdb $BENCH_DIR/NAME and append the settings
# (each "key = value") plus the socket/port/logging lines to postgresql.conf.
pgc_init() {
    local name=$1 port=$2 datadir="$BENCH_DIR/$1"
    shift 2
    pgc_as_owner "$PG_BIN/initdb" -D "$datadir" -U "$PGC_SUPERUSER" --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 --no-sync >"$BENCH_DIR/$name-initdb.log" 2>&1 || {
        cat "$BENCH_DIR/$name-initdb.log" >&2
        return 1
    }
    {
        printf '\n# added by bench/pgcluster.sh\n'
        printf "port = %s\n" "$port"
        printf "listen_addresses = ''\n"
        printf "unix_socket_directories = '%s'\n" "$BENCH_DIR"
        printf "logging_collector = on\n"
        printf "log_directory = 'log'\n"
        printf "log_filename = 'postgresql.log'\n"
        printf "log_line_prefix = '%%m [%%p] %%q%%a@%%d '\n"
        local s
        for s in "$@"; do
            printf '%s\n' "$s"
        done
    } >>"$datadir/postgresql.conf"
    printf '%s\n' "$port" >"$BENCH_DIR/$name.port"
}

pgc_port() { cat "$BENCH_DIR/$1.port"; }

pgc_start() {
    pgc_as_owner "$PG_BIN/pg_ctl" -D "$BENCH_DIR/$1" -l "$BENCH_DIR/$1-pg_ctl.log" \
        start -w -t 120 >/dev/null || {
        cat "$BENCH_DIR/$1-pg_ctl.log" >&2
        return 1
    }
}

# pgc_conninfo NAME DBNAME: libpq conninfo of a database of cluster NAME.
pgc_conninfo() {
    printf 'host=%s port=%s dbname=%s user=%s\n' "$BENCH_DIR" "$(pgc_port "$1")" "$2" "$PGC_SUPERUSER"
}

# pgc_psql NAME DBNAME [psql args...]: psql on a database, quiet, unaligned, stop on error.
pgc_psql() {
    local name=$1 db=$2
    shift 2
    "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$BENCH_DIR" -p "$(pgc_port "$name")" \
        -U "$PGC_SUPERUSER" -d "$db" "$@"
}

# pgc_destroy_all: stop every cluster under $BENCH_DIR (immediate) and remove the directory.
pgc_destroy_all() {
    [ -n "${BENCH_DIR:-}" ] && [ -d "$BENCH_DIR" ] || return 0
    local d
    for d in "$BENCH_DIR"/*/; do
        if [ -f "$d/PG_VERSION" ]; then
            pgc_as_owner "$PG_BIN/pg_ctl" -D "$d" stop -w -t 60 -m immediate >/dev/null 2>&1 || true
        fi
    done
    rm -rf "$BENCH_DIR"
}
