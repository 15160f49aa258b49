#!/usr/bin/env bash
# scripts/test.sh — THE test command for tidemark (README and CI call it).
#
#   1. builds build/ (warnings are errors), build-asan/ (ASan + UBSan) and
#      build-tsan/tidemark (ThreadSanitizer);
#   2. runs the C unit tests (cmocka) under ASan + UBSan;
#   3. runs the end-to-end tests: /usr/bin/python3 -m pytest tests/e2e -v
#      against build/tidemark (extra arguments are passed to pytest, e.g.
#      scripts/test.sh -k stream);
#   4. runs the end-to-end tests where threads share state (initial-copy
#      workers, a target reconnect during a copy, SIGHUP reloads, continuous
#      verification) again against build-tsan/tidemark: a ThreadSanitizer
#      report in a daemon log fails the test (suppressions, third-party
#      frames only: tests/tsan.supp). A minute or two; skipped when pytest
#      arguments are given (a focused run);
#   5. prints exactly one final line "N passed, N failed" (all stages summed)
#      and exits non-zero if anything failed or nothing ran.
#
# Works as root (CI: clusters then run as the postgres user) and as a normal user.
# Environment: TIDEMARK_SKIP_UNIT=1, TIDEMARK_SKIP_E2E=1 or TIDEMARK_SKIP_TSAN=1
# skip a stage; TIDEMARK_BIN=build-asan/tidemark (or build-tsan/tidemark) runs
# the end-to-end tests against a sanitizer build (a sanitizer report in a
# daemon log fails the test).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD
PY=/usr/bin/python3
passed=0
failed=0

log() { printf '==> %s\n' "$*" >&2; }

# add PASSED FAILED: accumulate counts
add() {
    passed=$((passed + $1))
    failed=$((failed + $2))
}

finish() {
    printf '%d passed, %d failed\n' "$passed" "$failed"
    if [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
        exit 1
    fi
    exit 0
}

# build DIR [meson options...]: set up, or reconfigure an existing DIR whose
# options differ (a build/ left by scripts/demo.sh must honour werror too),
# then ninja. Returns ninja's status.
build() {
    local dir=$1
    shift
    "$ROOT/scripts/meson-dir.sh" "$dir" "$@" || return 1
    log "ninja -C $dir"
    ninja -C "$dir" >&2
}

# ------------------------------------------------------------------ packages
# On a fresh machine (the README's second command alone) install what is
# missing when we may; otherwise say what to install.
if ! missing=$("$ROOT/scripts/install-deps.sh" --check); then
    if [ "$(id -u)" -eq 0 ]; then
        log "installing missing packages: $(echo $missing)"
        "$ROOT/scripts/install-deps.sh" >&2 || { printf '0 passed, 1 failed\n'; exit 1; }
    else
        log "missing packages: $(echo $missing); run: sudo scripts/install-deps.sh"
        printf '0 passed, 1 failed\n'
        exit 1
    fi
fi

# ------------------------------------------------------------------ build
release_ok=1
asan_ok=1
tsan_ok=1
if ! build build -Dwerror=true; then
    log "BUILD FAILED: build/"
    release_ok=0
    add 0 1
fi
if ! build build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true; then
    log "BUILD FAILED: build-asan/"
    asan_ok=0
    add 0 1
fi

run_tsan=1
if [ "${TIDEMARK_SKIP_E2E:-0}" = 1 ] || [ "${TIDEMARK_SKIP_TSAN:-0}" = 1 ] || [ $# -gt 0 ]; then
    run_tsan=0
fi
if [ "$run_tsan" = 1 ]; then
    # Only the daemon: the TSan stage runs no unit tests.
    "$ROOT/scripts/meson-dir.sh" build-tsan -Db_sanitize=thread -Db_lundef=false -Dwerror=true || tsan_ok=0
    if [ "$tsan_ok" = 1 ]; then
        log "ninja -C build-tsan tidemark"
        ninja -C build-tsan tidemark >&2 || tsan_ok=0
    fi
    if [ "$tsan_ok" = 0 ]; then
        log "BUILD FAILED: build-tsan/"
        add 0 1
    fi
fi

# ------------------------------------------------------------------ unit tests (ASan + UBSan)
# Counts come from cmocka's summary lines in meson's testlog.json; an executable
# that crashed before printing a summary counts as one failure.
count_unit_tests() {
    "$PY" - "$1" <<'EOF'
import json, re, sys
passed = failed = 0
try:
    lines = open(sys.argv[1]).read().splitlines()
except OSError:
    lines = []
for line in lines:
    if not line.strip():
        continue
    t = json.loads(line)
    out = (t.get("stdout") or "") + (t.get("stderr") or "")  # cmocka prints its summary on stderr
    p = sum(int(n) for n in re.findall(r"\[  PASSED  \] (\d+) test", out))
    f = sum(int(n) for n in re.findall(r"\[  FAILED  \] (\d+) test", out))
    ok = t.get("result") in ("OK", "EXPECTEDFAIL")
    if not ok and f == 0:
        f = 1          # crashed, sanitizer abort, timeout...
    if ok and p == 0 and f == 0:
        p = 1          # not a cmocka executable: count it as one test
    print("   unit %-12s %-8s %d passed, %d failed" % (t.get("name"), t.get("result"), p, f), file=sys.stderr)
    passed += p
    failed += f
print(passed, failed)
EOF
}

if [ "${TIDEMARK_SKIP_UNIT:-0}" != 1 ]; then
    if [ "$asan_ok" = 1 ]; then
        log "unit tests under ASan + UBSan"
        rm -f build-asan/meson-logs/testlog.json
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        CMOCKA_MESSAGE_OUTPUT=stdout \
            meson test -C build-asan --print-errorlogs >&2
        unit_rc=$?
        read -r up uf < <(count_unit_tests build-asan/meson-logs/testlog.json)
        if [ "$unit_rc" -ne 0 ] && [ "${uf:-0}" -eq 0 ]; then
            uf=1    # meson itself failed (e.g. no tests could run)
        fi
        log "unit tests: ${up:-0} passed, ${uf:-0} failed"
        add "${up:-0}" "${uf:-0}"
    fi
fi

# ------------------------------------------------------------------ end-to-end tests
# e2e LABEL BINARY PYTEST-ARGS...: run pytest against BINARY and add its counts
# (from the JUnit report: passed, failed + errors).
e2e() {
    local label=$1 bin=$2 junit ep ef
    shift 2
    junit=$(mktemp /tmp/tidemark-junit-XXXXXX.xml)
    log "$label: TIDEMARK_BIN=$bin $PY -m pytest $*"
    TIDEMARK_BIN="$bin" "$PY" -m pytest -v -p no:cacheprovider --junitxml="$junit" "$@" >&2
    read -r ep ef < <("$PY" - "$junit" <<'EOF'
import sys
import xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print(0, 1)   # pytest did not even write a report
    sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
tests = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(tests - bad - skipped, bad)
EOF
    )
    rm -f "$junit"
    log "$label: ${ep:-0} passed, ${ef:-0} failed"
    add "${ep:-0}" "${ef:-0}"
}

if [ "${TIDEMARK_SKIP_E2E:-0}" != 1 ] && [ "$release_ok" = 1 ]; then
    e2e "end-to-end tests" "${TIDEMARK_BIN:-$ROOT/build/tidemark}" tests/e2e "$@"
fi

# ------------------------------------------------------------------ ThreadSanitizer
# The tests whose daemons run several threads over shared state. TSAN_OPTIONS
# (suppressions, io_sync=0) come from tests/e2e/harness.py.
TSAN_TESTS="parallel_copy or trickle or target_session_lost or reload or reverifies"
if [ "$run_tsan" = 1 ] && [ "$tsan_ok" = 1 ]; then
    e2e "ThreadSanitizer end-to-end tests" "$ROOT/build-tsan/tidemark" \
        tests/e2e/test_initial_load.py tests/e2e/test_service.py tests/e2e/test_continuous_verify.py \
        -k "$TSAN_TESTS"
fi

finish
