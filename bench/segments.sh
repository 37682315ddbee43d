#!/usr/bin/env bash
# Shared segments, side by side in one run (called at the end of
# bench/run.sh, or alone): a 1 GiB read-only segment summed by 8 children
# (total PSS, wall time vs a C program summing a memfd it mapped itself),
# attach time for 1 MiB and 1 GiB, loading vs cp to /dev/shm, and a Monte
# Carlo with multiprocessing.Pool (pickled array) vs parallelrun segments.
# Writes bench/out/seg-*.{json,txt}; bench/report.py turns them into the
# "Shared segments" section of bench/RESULTS.md. About 2-3 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PR=$PWD/$BUILD/parallelrun
SEGSUM=$PWD/$BUILD/examples/seg_sum
OUT=bench/out
RUNS=${BENCH_SEG_RUNS:-5}
PY=/usr/bin/python3
mkdir -p "$OUT"
export PARALLELRUN_SHM_BASE=${PARALLELRUN_SHM_BASE:-/dev/shm}
BIG=$OUT/seg-1g.bin SMALL=$OUT/seg-1m.bin MC=$OUT/seg-mc.npy
trap 'rm -f "$BIG" "$SMALL" "$MC" /dev/shm/parallelrun-bench-cp' EXIT

head -c 1073741824 /dev/urandom > "$BIG"
head -c 1048576 /dev/urandom > "$SMALL"
cat "$BIG" > /dev/null # in the page cache for everyone

cat > "$OUT/seg-sum.yaml" <<YAML
version: 1
name: bench-seg-sum
segments:
  data: {file: $PWD/$BIG}
tasks:
  sum:
    foreach: {range: [0, 8]}
    run: [$SEGSUM, data]
    segments: [data]
YAML
cat > "$OUT/seg-load.yaml" <<YAML
version: 1
name: bench-seg-load
segments:
  data: {file: $PWD/$BIG}
tasks:
  t: {run: [/bin/true], segments: [data]}
YAML
cat > "$OUT/seg-attach.yaml" <<YAML
version: 1
name: bench-seg-attach
segments:
  big: {file: $PWD/$BIG}
  small: {file: $PWD/$SMALL}
tasks:
  big: {run: [$SEGSUM, big], segments: [big]}
  small: {run: [$SEGSUM, small], segments: [small]}
YAML

# --- 1. 8 children summing 1 GiB: wall time --------------------------------
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$OUT/seg-sum.json" \
    -n "C, own memfd" "$SEGSUM --baseline $BIG 8" \
    -n parallelrun "$PR run $OUT/seg-sum.yaml -j 8 --quiet"

# --- 2. the same: total PSS of the 8 children ------------------------------
PSS_ONLY=seg_sum $PY bench/pss.py "$OUT/seg-pss-pr.txt" \
    "$PR" run "$OUT/seg-sum.yaml" -j 8 --quiet
PSS_ONLY=seg_sum $PY bench/pss.py "$OUT/seg-pss-c.txt" \
    "$SEGSUM" --baseline "$BIG" 8

# --- 3. attach time, 1 MiB vs 1 GiB ----------------------------------------
: > "$OUT/seg-attach.txt"
for i in $(seq "$RUNS"); do
    "$PR" run "$OUT/seg-attach.yaml" -j 1 |
        sed -n 's/^sum=[0-9]* size=\([0-9]*\) attach_us=\([0-9.]*\).*/\1 \2/p' \
            >> "$OUT/seg-attach.txt"
done

# --- 4. loading the segment vs cp to /dev/shm ------------------------------
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$OUT/seg-load.json" \
    -n "cp to /dev/shm" "sh -c 'cp $BIG /dev/shm/parallelrun-bench-cp && rm /dev/shm/parallelrun-bench-cp'" \
    -n "parallelrun load" "$PR run $OUT/seg-load.yaml --quiet"

# --- 5. Monte Carlo: multiprocessing.Pool (pickled) vs segments -------------
$PY examples/python/montecarlo.py gen "$MC" "${BENCH_MC_MIB:-256}"
cat > "$OUT/seg-mc.yaml" <<YAML
version: 1
name: bench-seg-mc
segments:
  data: {file: $PWD/$MC}
  results: {size: 4KiB, writable: true, dtype: float64, shape: [512]}
tasks:
  sim:
    foreach: {range: [0, 8]}
    run: [$PY, $PWD/examples/python/montecarlo.py, sim]
    segments: [data, results]
  reduce:
    needs: [sim]
    run: [$PY, -c, "import numpy as np, os; print(np.memmap(os.environ['PARALLELRUN_SEGMENT_RESULTS'], dtype='f8', mode='r').sum())"]
    segments: [results]
YAML
: > "$OUT/seg-mc.txt"
for i in 1 2 3; do
    $PY bench/pss.py "$OUT/seg-mc-pool.tmp" $PY bench/mc_pool.py "$MC"
    $PY bench/pss.py "$OUT/seg-mc-pr.tmp" "$PR" run "$OUT/seg-mc.yaml" -j 2 --quiet
    echo "pool $(cat "$OUT/seg-mc-pool.tmp")" >> "$OUT/seg-mc.txt"
    echo "parallelrun $(cat "$OUT/seg-mc-pr.tmp")" >> "$OUT/seg-mc.txt"
done
rm -f "$OUT"/seg-mc-*.tmp
echo "mib ${BENCH_MC_MIB:-256}" >> "$OUT/seg-mc.txt"

[ -z "$(ls "$PARALLELRUN_SHM_BASE" | grep '^parallelrun-' || true)" ] ||
    echo "bench: WARNING: something left in $PARALLELRUN_SHM_BASE"
python3 bench/report.py "$OUT" bench/RESULTS.md

# --- hugepages: faults a child pays to read a 256 MiB segment ----------------
# With the kernel's shmem THP at "advise" (as root, switched for the
# measurement and restored), hugepages: auto vs never.
THP=/sys/kernel/mm/transparent_hugepage/shmem_enabled
: > "$OUT/seg-huge.txt"
if [ -w "$THP" ]; then
    orig=$(grep -o '\[[a-z_]*\]' "$THP" | tr -d '[]')
    head -c 268435456 /dev/urandom > "$OUT/seg-huge.bin"
    echo advise > "$THP"
    for hp in never auto; do
        cat > "$OUT/seg-huge-$hp.yaml" <<YAML
version: 1
name: bench-huge
segments:
  data: {file: $OUT/seg-huge.bin, hugepages: $hp}
tasks:
  sum:
    segments: [data]
    run: [/usr/bin/time, -f, "faults=%R", $SEGSUM, data]
YAML
        f=$("$PR" run "$OUT/seg-huge-$hp.yaml" --redis off 2>&1 | sed -n 's/.*faults=\([0-9]*\).*/\1/p')
        echo "$hp $f" >> "$OUT/seg-huge.txt"
    done
    echo "$orig" > "$THP"
    rm -f "$OUT/seg-huge.bin"
fi
