#!/usr/bin/env bash
# Redis coordination, side by side in one run (called from bench/run.sh,
# or alone): 2000 x /bin/true with the embedded Redis vs --redis off; a
# 32-child barrier, time from the last arrival to all released; pool mode
# vs one process per item for POOL_N items with a Python child; status
# --json on a finished 100,000-instance run; LOCK_N uncontended lock round
# trips, the child API against raw SET NX PX + a release script over one
# connection. Writes bench/out/redis-*.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PR=$PWD/$BUILD/parallelrun
OUT=$PWD/bench/out
N=${BENCH_N:-2000}
POOL_N=${BENCH_POOL_N:-20000}
RUNS=${BENCH_RUNS:-10}
LOCK_N=${BENCH_LOCK_N:-5000}
mkdir -p "$OUT"
# A private home: the embedded server of this bench, not the user's.
export HOME=$OUT/home
mkdir -p "$HOME"
export PARALLELRUN_STATE_DIR=$HOME/state PARALLELRUN_EMBEDDED_LINGER=0
unset XDG_RUNTIME_DIR XDG_STATE_HOME PARALLELRUN_REDIS
export PARALLELRUN_CONFIG=$OUT/empty.ini
: > "$PARALLELRUN_CONFIG"

cc -O2 -Iinclude -o "$OUT/barrier_bench" bench/barrier_bench.c \
    "$BUILD/libparallelrun.a" $(pkg-config --libs hiredis yaml-0.1 inih) -lm -pthread
cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -o "$OUT/lock_bench" bench/lock_bench.c \
    "$BUILD/libparallelrun.a" $(pkg-config --libs hiredis yaml-0.1 inih) -lm -pthread

# --- 1. the cost of recording state in Redis -------------------------------
cat > "$OUT/redis-true.yaml" <<YAML
version: 1
name: bench-true
tasks:
  t:
    foreach: {range: [0, $N]}
    run: [/bin/true]
YAML
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$OUT/redis-overhead.json" \
    -n "redis off" "$PR run $OUT/redis-true.yaml -j 2 --redis off" \
    -n "embedded redis" "$PR run $OUT/redis-true.yaml -j 2"

# --- 2. barrier release latency, 32 children ---------------------------------
cat > "$OUT/redis-barrier.yaml" <<YAML
version: 1
name: bench-barrier
tasks:
  meet:
    foreach: {range: [0, 32]}
    jobs: 32
    run: [$OUT/barrier_bench, "30"]
YAML
"$PR" run "$OUT/redis-barrier.yaml" -j 32 > "$OUT/redis-barrier.txt"

# --- 3. pool mode vs one process per item, Python ---------------------------
cat > "$OUT/redis-peritem.yaml" <<YAML
version: 1
name: bench-peritem
tasks:
  t:
    foreach: {range: [0, $POOL_N]}
    run: [/usr/bin/python3, $PWD/bench/square.py, "{item}"]
YAML
cat > "$OUT/redis-pool.yaml" <<YAML
version: 1
name: bench-pool
tasks:
  t:
    pool: true
    foreach: {range: [0, $POOL_N]}
    run: [/usr/bin/python3, $PWD/bench/square_pool.py]
YAML
hyperfine -N --runs 1 --export-json "$OUT/redis-pool.json" \
    -n "one process per item" "$PR run $OUT/redis-peritem.yaml -j 2" \
    -n "pool mode" "$PR run $OUT/redis-pool.yaml -j 2"

# --- 4. status --json on a finished 100,000-instance run ---------------------
sed "s/range: \[0, $N\]/range: [0, 100000]/" "$OUT/redis-true.yaml" > "$OUT/redis-100k.yaml"
"$PR" run "$OUT/redis-100k.yaml" -j 2 --json > "$OUT/redis-100k.json"
rid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$OUT/redis-100k.json")
# Cold: the embedded server is stopped and starts from its saved data.
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$OUT/redis-status.json" \
    -n "status --json (server stopped)" "$PR status $rid --json"
# Warm: another run keeps the server up.
cat > "$OUT/redis-hold.yaml" <<YAML
version: 1
name: bench-hold
tasks:
  hold:
    run: [sleep, "60"]
YAML
"$PR" run "$OUT/redis-hold.yaml" >/dev/null 2>&1 &
hold=$!
sleep 1
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$OUT/redis-status-warm.json" \
    -n "status --json (server running)" "$PR status $rid --json"
kill -INT $hold
wait $hold || true

# --- 5. lock round trips: the child API vs raw commands ---------------------
# Inside a run, so the child gets the run's Redis and run id.
cat > "$OUT/redis-lock.yaml" <<YAML
version: 1
name: bench-lock
tasks:
  lock:
    run: [$OUT/lock_bench, "$LOCK_N"]
YAML
"$PR" run "$OUT/redis-lock.yaml" | tee "$OUT/redis-lock.txt"
