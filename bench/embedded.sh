#!/usr/bin/env bash
# The embedded Redis's cost per command (called from bench/run.sh, or
# alone): a one-instance run with the embedded server warm (lingering from
# the previous command) and cold (started from its saved data), against
# --redis off, and status/runs warm and cold, on a store left by earlier
# runs (one 100,000-instance run with a failure, whose done sets --resume
# needs, and 50 small ones). Writes bench/out/embedded.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PR=$PWD/$BUILD/parallelrun
OUT=$PWD/bench/out
RUNS=${BENCH_RUNS:-10}
mkdir -p "$OUT"
# A private state directory: the embedded server of this bench alone.
export PARALLELRUN_STATE_DIR=$OUT/embedded-state
rm -rf "$PARALLELRUN_STATE_DIR"
unset PARALLELRUN_REDIS
export PARALLELRUN_CONFIG=$OUT/empty.ini
: > "$PARALLELRUN_CONFIG"

cat > "$OUT/emb-one.yaml" <<YAML
version: 1
name: bench-one
tasks:
  t:
    run: [/bin/true]
YAML
cat > "$OUT/emb-big.yaml" <<YAML
version: 1
name: bench-big
tasks:
  t:
    foreach: {range: [0, 100000]}
    run: [sh, -c, 'test {item} != 99999']
YAML
# The store earlier runs leave.
export PARALLELRUN_EMBEDDED_LINGER=600s
"$PR" run "$OUT/emb-big.yaml" -j 2 --quiet >/dev/null 2>&1 || true
for i in $(seq 50); do "$PR" run "$OUT/emb-one.yaml" --quiet >/dev/null; done
dump=$(stat -c %s "$PARALLELRUN_STATE_DIR/dump.rdb" 2>/dev/null || echo 0)

mean() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(" ".join("%.6f" % x["mean"] for x in r))' "$1"; }

hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$OUT/emb-warm.json" \
    -n "run --redis off" "$PR run $OUT/emb-one.yaml --redis off" \
    -n "run (warm)" "$PR run $OUT/emb-one.yaml" \
    -n "status (warm)" "$PR status" \
    -n "runs (warm)" "$PR runs"
# Cold: the server is stopped (outside the timing) before each command,
# which starts it from its data file.
stop="env PARALLELRUN_EMBEDDED_LINGER=0 $PR runs"
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$OUT/emb-cold.json" \
    --prepare "$stop" \
    -n "run (cold)" "$PR run $OUT/emb-one.yaml" \
    -n "status (cold)" "$PR status"
read -r off warm swarm rwarm < <(mean "$OUT/emb-warm.json")
read -r cold scold < <(mean "$OUT/emb-cold.json")
python3 - "$off" "$warm" "$swarm" "$rwarm" "$cold" "$scold" "$dump" > "$OUT/embedded.txt" <<'PY'
import sys
off, warm, swarm, rwarm, cold, scold = (float(x) * 1000 for x in sys.argv[1:7])
dump = int(sys.argv[7])
print(f"store left by earlier runs: dump.rdb {dump / 1e6:.2f} MB")
print(f"one-instance run, --redis off: {off:.1f} ms")
print(f"added by the embedded Redis, warm: {warm - off:+.1f} ms (target <= 5 ms)")
print(f"added by the embedded Redis, cold: {cold - off:+.1f} ms (target <= 50 ms)")
print(f"status warm {swarm:.1f} ms, cold {scold:.1f} ms; runs warm {rwarm:.1f} ms")
PY
cat "$OUT/embedded.txt"
$stop >/dev/null
rm -rf "$PARALLELRUN_STATE_DIR"
