#!/usr/bin/env bash
# scripts/install-deps.sh — installs every Debian 12 package tidemark's build,
# tests, demo and benchmarks need (one list, used by .ci/run and scripts/demo.sh).
# Run as root. With --check it only prints the missing packages (exit 1 if any).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PACKAGES=(
    build-essential git meson ninja-build pkg-config clang-format
    libpq-dev libev-dev libjansson-dev libyaml-dev librdkafka-dev libmicrohttpd-dev
    libsystemd-dev libcmocka-dev
    postgresql-15 postgresql-client-15
    python3 python3-pytest python3-psycopg python3-confluent-kafka python3-yaml
    kcat pgcopydb
    procps util-linux systemd
)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${1:-}" = "--check" ]; then
    [ "${#missing[@]}" -eq 0 ] && exit 0
    printf '%s\n' "${missing[@]}"
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: run as root (sudo $0)" >&2
    exit 1
fi

apt-get update
# tidemark's tests and demo make their own throwaway clusters: keep the package
# from creating and starting the default one (only matters on the first install).
if ! dpkg -s postgresql-15 >/dev/null 2>&1; then
    apt-get install -y --no-install-recommends postgresql-common
    conf=/etc/postgresql-common/createcluster.conf
    if [ -f "$conf" ]; then
        sed -ri 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' "$conf"
    fi
fi
apt-get install -y "${PACKAGES[@]}"
