#!/usr/bin/env bash
# make bench: parallelrun side by side with its peers, in one run, on this
# machine. Writes bench/out/*.json and rewrites the tables in
# bench/RESULTS.md. Ratios, not absolute times, are what to compare: the
# machines are shared and noisy.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PR=$PWD/$BUILD/parallelrun
OUT=bench/out
mkdir -p "$OUT"
N=${BENCH_N:-2000}
RUNS=${BENCH_RUNS:-10}

for t in hyperfine parallel /usr/bin/time; do
    command -v "$t" >/dev/null || { echo "bench: $t missing (make deps)"; exit 1; }
done
cc -O2 -o "$OUT/floor" bench/floor.c

# --- 1. spawn throughput: N x /bin/true at -j 2 ---------------------------
cat > "$OUT/true.yaml" <<YAML
version: 1
name: bench-true
tasks:
  t:
    foreach: {range: [0, $N]}
    run: [/bin/true]
YAML
# The same with the item as an argument, as ad-hoc mode (which appends
# {}), xargs -n 1 and parallel pass it. The argument is not free: GNU
# true given one argument calls setlocale() to check for --help, which
# loads the locale (C.UTF-8 here) in every child. Ad-hoc mode is compared
# with this one, not with the argument-less job above.
sed 's|run: \[/bin/true\]|run: [/bin/true, "{item}"]|; s|name: bench-true|name: bench-true-arg|' \
    "$OUT/true.yaml" > "$OUT/true-arg.yaml"
seq "$N" > "$OUT/seq.txt"
# A fresh embedded store: this measures spawning, not the data of earlier
# runs the server would load and save again (bench/redis.sh measures that).
export HOME=$(mktemp -d)
export PARALLELRUN_STATE_DIR=$HOME/state PARALLELRUN_EMBEDDED_LINGER=0
trap 'rm -rf "$HOME"' EXIT
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$OUT/spawn.json" \
    -n floor "$OUT/floor 2 $N /bin/true" \
    -n "parallelrun --redis off" "$PR run $OUT/true.yaml -j 2 --redis off" \
    -n parallelrun "$PR run $OUT/true.yaml -j 2" \
    -n "parallelrun, one argument" "$PR run $OUT/true-arg.yaml -j 2" \
    -n "parallelrun ad-hoc" "$PR -j2 /bin/true ::: $(seq -s ' ' "$N")" \
    -n "xargs -P 2" "xargs -P 2 -n 1 -a $OUT/seq.txt /bin/true" \
    -n "parallel -j 2" "parallel --will-cite -j 2 -a $OUT/seq.txt /bin/true"

# --- 2. runner peak RSS as the instance count grows -------------------------
rss() { # COUNT CMD... -> max RSS in KiB
    /usr/bin/time -f %M -o "$OUT/rss.tmp" "${@:2}" >/dev/null 2>&1 || true
    cat "$OUT/rss.tmp"
}
: > "$OUT/rss.txt"
for n in 1000 10000 100000; do
    sed "s/range: \[0, $N\]/range: [0, $n]/" "$OUT/true.yaml" > "$OUT/true-$n.yaml"
    echo "parallelrun $n $(rss $n "$PR" run "$OUT/true-$n.yaml" -j 2)" >> "$OUT/rss.txt"
done
for n in 1000 10000; do
    seq "$n" > "$OUT/seq-$n.txt"
    echo "parallel $n $(rss $n parallel --will-cite -j 2 -a "$OUT/seq-$n.txt" /bin/true)" >> "$OUT/rss.txt"
done

bench/segments.sh
bench/redis.sh
bench/embedded.sh
bench/queue.sh
# The seed workloads (a few minutes); BENCH_SEED=0 skips them.
if [ "${BENCH_SEED:-1}" != 0 ]; then
    bench/seed.sh > "$OUT/seed.md"
fi
python3 bench/report.py "$OUT" bench/RESULTS.md
