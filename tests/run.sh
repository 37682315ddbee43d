#!/usr/bin/env bash
# Runs every unit test binary and every bats file, all printing TAP, and
# ends with one line "N passed, N failed, N skipped". Exits non-zero if
# anything failed or nothing ran.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export PARALLELRUN_BIN="$PWD/$BUILD/parallelrun"
export PRUN_BUILD="$PWD/$BUILD"

pass=0 fail=0 skip=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

count() {
    # $1: a TAP stream file. "ok N ... # skip" counts as skipped.
    local p f s
    p=$(grep -cE '^ok [0-9]+' "$1" || true)
    s=$(grep -cE '^ok [0-9]+ .*# skip' "$1" || true)
    f=$(grep -cE '^not ok [0-9]+' "$1" || true)
    pass=$((pass + p - s)) fail=$((fail + f)) skip=$((skip + s))
}

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    echo "# unit: $t"
    "$t" >"$log" 2>&1
    rc=$?
    cat "$log"
    count "$log"
    if [ $rc -ne 0 ] && ! grep -qE '^not ok' "$log"; then
        echo "not ok - $t exited $rc"
        fail=$((fail + 1))
    fi
done

if [ -n "$(ls tests/cli/*.bats 2>/dev/null)" ]; then
    if [ -n "${BATS_FILTER:-}" ]; then set -- --filter "$BATS_FILTER"; else set --; fi
    bats --tap "$@" tests/cli >"$log" 2>&1
    cat "$log"
    count "$log"
fi

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ $((pass + skip)) -gt 0 ]
