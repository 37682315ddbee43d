#!/usr/bin/env bash
# The work queue (called from bench/run.sh, or alone), on a private
# redis-server: the protocol's claims+completions/s with 1, 2, 3 consumers
# (batched claims, no spawning); instances/s of `run --distributed` with
# 1, 2, 3 workers; time for a killed worker's instances to be reclaimed,
# in leases; 3 workers x BENCH_QUEUE_BIG trivial instances with lost and
# duplicate terminal records counted; and, on POOL_N tiny Python items,
# pool mode vs one process per item vs multiprocessing.Pool.map, and the
# same with items of 1 ms (with the end-of-run tail: how long the run
# outlives its last item); the runner's peak RSS with 2k, 20k and 200k
# pool items. Python is /usr/bin/python3 (the first python3 on PATH may
# lack numpy). Writes bench/out/queue.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PR=$PWD/$BUILD/parallelrun
OUT=$PWD/bench/out
QN=${BENCH_QUEUE_N:-20000}
BIG=${BENCH_QUEUE_BIG:-100000}
POOL_N=${BENCH_POOL_N:-20000}
LEASE_S=${BENCH_QUEUE_LEASE:-2}
mkdir -p "$OUT"
Q=$(mktemp -d)
export HOME=$Q/home
mkdir -p "$HOME"
unset XDG_RUNTIME_DIR XDG_STATE_HOME PARALLELRUN_REDIS
export PARALLELRUN_CONFIG=$Q/empty.ini
: > "$PARALLELRUN_CONFIG"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    [ -f "$Q/r.pid" ] && kill -9 "$(cat "$Q/r.pid")" 2>/dev/null
    rm -rf "$Q"
}
trap cleanup EXIT
redis-server --port 0 --unixsocket "$Q/r.sock" --save '' --appendonly no \
    --dir "$Q" --daemonize yes --pidfile "$Q/r.pid" >/dev/null
for _ in $(seq 100); do redis-cli -s "$Q/r.sock" ping >/dev/null 2>&1 && break; sleep 0.05; done
URL=unix://$Q/r.sock
R="$OUT/queue.txt"
: > "$R"
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.2f\", $* }"; }

cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -iquote lib \
    $(pkg-config --cflags hiredis) -o "$OUT/wq_bench" bench/wq_bench.c \
    "$BUILD/libparallelrun.a" $(pkg-config --libs hiredis yaml-0.1 inih) -lm -pthread

# --- 1. the protocol alone -------------------------------------------------
for k in 1 2 3; do
    "$OUT/wq_bench" "$URL" "$QN" "$k" 16 | sed 's/^/protocol: /' | tee -a "$R"
done

workers() { # N SLOTS LEASE: start N workers, pids in $wpids
    wpids=()
    for ((i = 0; i < $1; i++)); do
        "$PR" worker --redis "$URL" --slots "$2" --lease "$3" \
            > "$Q/w$i.log" 2>&1 &
        wpids+=($!)
        pids+=($!)
    done
}
stop_workers() {
    for p in "${wpids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${wpids[@]}"; do wait "$p" 2>/dev/null || true; done
}

# --- 2. run --distributed, instances/s -------------------------------------
cat > "$Q/true.yaml" <<YAML
tasks:
  t:
    foreach: {range: [0, $QN]}
    run: [/bin/true]
YAML
for k in 1 2 3; do
    workers "$k" 4 30s
    t0=$(now)
    "$PR" run "$Q/true.yaml" --redis "$URL" --distributed -q
    t1=$(now)
    stop_workers
    echo "distributed: $k workers x 4 slots: $QN instances in $(calc "$t1 - $t0")s: $(calc "$QN / ($t1 - $t0)")/s" | tee -a "$R"
done

# --- 3. reclaim time after kill -9, in leases --------------------------------
cat > "$Q/hold.yaml" <<YAML
tasks:
  t:
    foreach: {range: [0, 4]}
    run: [sh, -c, 'echo "{item} \$(date +%s.%N)" >> $Q/started; while [ ! -e $Q/go ]; do sleep 0.05; done']
YAML
rm -f "$Q/started" "$Q/go"
workers 1 4 "${LEASE_S}s"
victim=${wpids[0]}
"$PR" run "$Q/hold.yaml" --redis "$URL" --distributed -q > /dev/null 2>&1 &
runpid=$!
pids+=($runpid)
while [ "$(cat "$Q/started" 2>/dev/null | wc -l)" -lt 4 ]; do sleep 0.02; done
workers 1 4 "${LEASE_S}s"
tk=$(now)
kill -9 "$victim"
while [ "$(wc -l < "$Q/started")" -lt 8 ]; do sleep 0.02; done
last=$(tail -4 "$Q/started" | awk '{print $2}' | sort -n | tail -1)
touch "$Q/go"
wait "$runpid" || true
stop_workers
echo "reclaim after kill -9: $(calc "$last - $tk")s with a ${LEASE_S}s lease = $(calc "($last - $tk) / $LEASE_S") leases" | tee -a "$R"

# --- 4. 3 workers x BIG trivial instances: lost and duplicate records -------
sed "s/range: \[0, $QN\]/range: [0, $BIG]/" "$Q/true.yaml" > "$Q/big.yaml"
workers 3 4 30s
t0=$(now)
"$PR" run "$Q/big.yaml" --redis "$URL" --distributed -q && st=0 || st=$?
t1=$(now)
stop_workers
rid=$(redis-cli -s "$Q/r.sock" zrevrange parallelrun:runs 0 0)
done_n=$(redis-cli -s "$Q/r.sock" hlen "parallelrun:{$rid}:wq:done")
dup=$(redis-cli -s "$Q/r.sock" hget "parallelrun:{$rid}:wq:meta" dup)
echo "3 workers x $BIG: exit $st in $(calc "$t1 - $t0")s; terminal records $done_n (lost $((BIG - done_n))), duplicates rejected $dup" | tee -a "$R"

# --- 5. tiny Python items: pool mode, per item, multiprocessing.Pool.map ----
cat > "$Q/peritem.yaml" <<YAML
tasks:
  t:
    foreach: {range: [0, $POOL_N]}
    run: [/usr/bin/python3, $PWD/bench/square.py, "{item}"]
YAML
cat > "$Q/pool.yaml" <<YAML
tasks:
  t:
    pool: true
    foreach: {range: [0, $POOL_N]}
    run: [/usr/bin/python3, $PWD/bench/square_pool.py]
YAML
t0=$(now); /usr/bin/python3 -c "
import multiprocessing
def sq(n): return n * n
if __name__ == '__main__':
    with multiprocessing.Pool(2) as p: p.map(sq, range($POOL_N))
"; t1=$(now)
echo "python $POOL_N items: multiprocessing.Pool.map (2): $(calc "$t1 - $t0")s" | tee -a "$R"
t0=$(now); "$PR" run "$Q/pool.yaml" -j 2 --redis "$URL" -q; t1=$(now)
echo "python $POOL_N items: pool mode -j 2: $(calc "$t1 - $t0")s" | tee -a "$R"
# One Python process per item takes minutes: BENCH_PERITEM=0 skips it.
if [ "${BENCH_PERITEM:-1}" != 0 ]; then
    t0=$(now); "$PR" run "$Q/peritem.yaml" -j 2 --redis "$URL" -q; t1=$(now)
    echo "python $POOL_N items: one process per item -j 2: $(calc "$t1 - $t0")s" | tee -a "$R"
fi

# --- 6. items of 1 ms: pool mode vs Pool.map, and the end-of-run tail -------
cat > "$Q/pool1ms.yaml" <<YAML
tasks:
  t:
    pool: true
    foreach: {range: [0, $POOL_N]}
    run: [/usr/bin/python3, $PWD/bench/sleep_pool.py]
YAML
t0=$(now); /usr/bin/python3 -c "
import multiprocessing, time
def sq(n):
    time.sleep(0.001)
    return n * n
if __name__ == '__main__':
    with multiprocessing.Pool(2) as p: p.map(sq, range($POOL_N))
"; t1=$(now)
mp=$(calc "$t1 - $t0")
echo "python $POOL_N items of 1 ms: multiprocessing.Pool.map (2): ${mp}s" | tee -a "$R"
: > "$Q/tail.log"
t0=$(now)
SLEEP_MS=1 TAIL_LOG=$Q/tail.log "$PR" run "$Q/pool1ms.yaml" -j 2 --redis "$URL" -q
t1=$(now)
last=$(awk '{ if ($2 > m) m = $2 } END { printf "%f", m }' "$Q/tail.log")
first_end=$(awk 'NR == 1 || $2 < m { m = $2 } END { printf "%f", m }' "$Q/tail.log")
echo "python $POOL_N items of 1 ms: pool mode -j 2: $(calc "$t1 - $t0")s ($(calc "($t1 - $t0) / $mp")x Pool.map); run exit $(calc "($t1 - $last) * 1000") ms after the last worker's last item; workers ended $(calc "($last - $first_end) * 1000") ms apart" | tee -a "$R"

# --- 7. the runner's peak RSS with 2k, 20k, 200k pool items -----------------
# VmHWM of the runner alone, sampled every 5 ms until it exits (/usr/bin/time
# -v would report the largest of it and its Python workers; a run of 2k
# items now takes well under the 100 ms this used to sample at).
for n in 2000 20000 200000; do
    sed "s/range: \[0, $POOL_N\]/range: [0, $n]/" "$Q/pool.yaml" > "$Q/rss.yaml"
    "$PR" run "$Q/rss.yaml" -j 2 --redis "$URL" -q &
    rp=$!
    hwm=0
    while kill -0 "$rp" 2>/dev/null; do
        h=$(awk '/^VmHWM/ { print $2 }' "/proc/$rp/status" 2>/dev/null || true)
        [ -n "$h" ] && hwm=$h
        sleep 0.005
    done
    wait "$rp" || true
    echo "runner peak RSS, $n pool items: ${hwm} kB" | tee -a "$R"
done
