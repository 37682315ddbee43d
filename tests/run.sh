#!/usr/bin/env bash
# Runs every unit test binary and every bats file, all printing TAP, and
# ends with one line "N passed, N failed, N skipped". Exits non-zero if
# anything failed or nothing ran.
#
# Every test is hermetic (tests/cli/helpers.bash, tests/unit/unit.h), so
# the bats tests run BATS_JOBS (default 2) at a time when GNU parallel is
# installed; BATS_JOBS=1 runs them one by one. PRUN_TIME_FACTOR (default
# 1) scales every time bound of the tests for slow machines. BATS_FILTER
# and UNIT_FILTER select tests by name.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export PARALLELRUN_BIN="$PWD/$BUILD/parallelrun"
export PRUN_BUILD="$PWD/$BUILD"

pass=0 fail=0 skip=0
log=$(mktemp)
ulogs=$(mktemp -d)
trap 'rm -rf "$log" "$ulogs"' EXIT

count() {
    # $1: a TAP stream file. "ok N ... # skip" counts as skipped.
    local p f s
    p=$(grep -cE '^ok [0-9]+' "$1" || true)
    s=$(grep -cE '^ok [0-9]+ .*# skip' "$1" || true)
    f=$(grep -cE '^not ok [0-9]+' "$1" || true)
    pass=$((pass + p - s)) fail=$((fail + f)) skip=$((skip + s))
}

# The unit binaries run in the background while bats runs: each is
# hermetic, and most of their time is spent waiting.
units=()
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    u=$ulogs/$(basename "$t")
    ("$t" >"$u.tap" 2>&1; echo $? >"$u.rc") &
    units+=("$t")
done

if [ -n "$(ls tests/cli/*.bats 2>/dev/null)" ]; then
    if [ -n "${BATS_FILTER:-}" ]; then set -- --filter "$BATS_FILTER"; else set --; fi
    jobs=${BATS_JOBS:-2}
    if [ "$jobs" -gt 1 ] && command -v parallel >/dev/null; then
        set -- "$@" --jobs "$jobs"
    fi
    bats --tap "$@" tests/cli >"$log" 2>&1
fi
wait

for t in "${units[@]}"; do
    u=$ulogs/$(basename "$t")
    echo "# unit: $t"
    cat "$u.tap"
    count "$u.tap"
    rc=$(cat "$u.rc")
    if [ "$rc" -ne 0 ] && ! grep -qE '^not ok' "$u.tap"; then
        echo "not ok - $t exited $rc"
        fail=$((fail + 1))
    fi
done
if [ -s "$log" ]; then
    echo "# bats: tests/cli"
    cat "$log"
    count "$log"
fi

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ $((pass + skip)) -gt 0 ]
