#!/usr/bin/env bats
# The work queue through the real binary: `run --distributed` puts the
# instances on a private redis-server, `parallelrun worker`s (separate
# processes with separate HOMEs) claim and run them. Faults: a worker
# killed, a worker stopped past its lease, Redis restarted with and
# without its data.

load helpers

setup() {
    common_setup
    export XDG_RUNTIME_DIR=$T/xdg PARALLELRUN_SHM_BASE=$T/shm
    mkdir -p "$XDG_RUNTIME_DIR" "$PARALLELRUN_SHM_BASE"
    F=${PRUN_TIME_FACTOR:-1}
    queue_redis
}
teardown() { common_teardown; }


# wait_for SECONDS CMD...: until CMD succeeds (bounded, scaled).
wait_for() {
    local secs=$(($1 * F)) i
    shift
    for ((i = 0; i < secs * 20; i++)); do
        "$@" && return 0
        sleep 0.05
    done
    echo "timed out waiting for: $*" >&2
    return 1
}

lines_at_least() { [ -f "$1" ] && [ "$(wc -l < "$1")" -ge "$2" ]; }
log_has() { grep -q "$2" "$T/$1.log"; }

# The run id of the newest run in this test's Redis.

@test "queue: two workers run a distributed run; each instance once; usual exit and summary" {
    job d <<EOF
tasks:
  sq:
    run: sh -c 'echo {item} >> $T/done; test {item} -ne 13'
    foreach: {range: [0, 200]}
EOF
    start_worker a --slots 3
    start_worker b --slots 2
    run timeout $((60 * F)) "$PR" run "$T/d.yaml" --redis "$URL" --distributed
    [ "$status" -eq 1 ]
    [[ "$output" == *"1 of 200 instances failed"* ]]
    [[ "$output" == *"sq[13]"* ]]
    [ "$(sort -n "$T/done" | uniq | wc -l)" -eq 200 ]
    [ "$(wc -l < "$T/done")" -eq 200 ]
    rid=$(last_rid)
    [ "$(rcli hlen "parallelrun:{$rid}:wq:done")" -eq 200 ]
    # Both workers took part, as separate processes.
    run "$PR" workers --redis "$URL"
    [[ "$output" == *"$(cat "$T/a.pid")"* ]]
    [[ "$output" == *"$(cat "$T/b.pid")"* ]]
    # Every key of the run's queue expires.
    for k in $(rcli --scan --pattern "parallelrun:{$rid}:wq:*"); do
        [ "$(rcli pttl "$k")" -gt 0 ]
    done
}

@test "queue: a child gets its fence token; retries go through the queue" {
    job f <<EOF
tasks:
  t:
    run: sh -c 'echo "{item} \$PARALLELRUN_FENCE \$PARALLELRUN_ATTEMPT" >> $T/seen; test \$PARALLELRUN_ATTEMPT -ge 2'
    foreach: {list: [x, y]}
    retries: 2
    retry_delay: 50ms
EOF
    start_worker a --slots 2
    run timeout $((60 * F)) "$PR" run "$T/f.yaml" --redis "$URL" --distributed
    [ "$status" -eq 0 ]
    # Two attempts each, each with its own fence token.
    [ "$(wc -l < "$T/seen")" -eq 4 ]
    [ "$(awk '{print $2}' "$T/seen" | sort -u | wc -l)" -eq 4 ]
    grep -q '^x [0-9][0-9]* 2$' "$T/seen"
    rid=$(last_rid)
    [ "$(rcli hget "parallelrun:{$rid}:wq:meta" retried)" -eq 2 ]
}

@test "queue: rediss:// is refused with advice; --distributed needs --redis" {
    run "$PR" worker --redis rediss://example.com:6380
    [ "$status" -eq 2 ]
    [[ "$output" == *"TLS tunnel"* ]]
    job s <<EOF
tasks:
  t: {run: ["true"]}
EOF
    run "$PR" run "$T/s.yaml" --distributed
    [ "$status" -eq 2 ]
    [[ "$output" == *"--distributed needs --redis URL"* ]]
}

@test "queue: a worker killed -9 mid-run; its instances are reclaimed and done once" {
    job k <<EOF
tasks:
  t:
    run: sh -c 'echo {item} >> $T/started; while [ ! -e $T/go ]; do sleep 0.05; done; echo {item} >> $T/done'
    foreach: {range: [0, 12]}
EOF
    start_worker a --slots 4 --lease 1s
    timeout $((120 * F)) "$PR" run "$T/k.yaml" --redis "$URL" --distributed \
        > "$T/run.out" 2>&1 &
    runpid=$!
    wait_for 30 lines_at_least "$T/started" 4
    kill -9 "$(cat "$T/a.pid")"
    start_worker b --slots 4 --lease 1s
    # b takes new ones at once and a's four once their lease ran out.
    wait_for 30 lines_at_least "$T/started" 8
    touch "$T/go"
    wait "$runpid"
    [ "$(sort -n "$T/done" | uniq | wc -l)" -eq 12 ]
    [ "$(wc -l < "$T/done")" -eq 12 ]
    rid=$(last_rid)
    [ "$(rcli hlen "parallelrun:{$rid}:wq:done")" -eq 12 ]
    [ "$(rcli hget "parallelrun:{$rid}:wq:meta" ok)" -eq 12 ]
}

@test "queue: a worker stopped past its lease; its completion is rejected as stale" {
    job s <<EOF
tasks:
  t:
    run: sh -c 'echo "\$\$ \$PARALLELRUN_FENCE" >> $T/started; while [ ! -e $T/go ]; do sleep 0.05; done; echo \$PARALLELRUN_FENCE >> $T/done'
    foreach: {list: [only]}
EOF
    start_worker a --slots 1 --lease 1s
    timeout $((120 * F)) "$PR" run "$T/s.yaml" --redis "$URL" --distributed \
        > "$T/run.out" 2>&1 &
    runpid=$!
    wait_for 30 lines_at_least "$T/started" 1
    child=$(awk 'NR==1{print $1}' "$T/started")
    kill -STOP "$(cat "$T/a.pid")" "$child"
    start_worker b --slots 1 --lease 1s
    wait_for 30 lines_at_least "$T/started" 2
    touch "$T/go"
    wait "$runpid"
    rid=$(last_rid)
    # The new owner's result is the terminal record.
    rec=$(rcli hget "parallelrun:{$rid}:wq:done" "t 0")
    [[ "$rec" == *"$(cat "$T/b.pid")"* ]]
    kill -CONT "$child" "$(cat "$T/a.pid")"
    wait_for 30 log_has a "stale"
    [ "$(rcli hget "parallelrun:{$rid}:wq:meta" stale)" -eq 1 ]
    [ "$(rcli hlen "parallelrun:{$rid}:wq:done")" -eq 1 ]
    [ "$(rcli hget "parallelrun:{$rid}:wq:meta" ok)" -eq 1 ]
    # The two attempts had different fence tokens.
    [ "$(awk '{print $2}' "$T/started" | sort -u | wc -l)" -eq 2 ]
}

@test "queue: Redis restarted with its data mid-run; nothing lost, nothing twice" {
    job r <<EOF
tasks:
  t:
    run: sh -c 'echo {item} >> $T/started; while [ ! -e $T/go ]; do sleep 0.05; done; echo {item} >> $T/done'
    foreach: {range: [0, 30]}
EOF
    start_worker a --slots 3 --lease 5s
    start_worker b --slots 3 --lease 5s
    timeout $((120 * F)) "$PR" run "$T/r.yaml" --redis "$URL" --distributed \
        > "$T/run.out" 2>&1 &
    runpid=$!
    wait_for 30 lines_at_least "$T/started" 6
    rcli shutdown save
    start_redis q
    touch "$T/go"
    st=0
    wait "$runpid" || st=$?
    cat "$T/run.out"
    [ "$st" -eq 0 ]
    [ "$(sort -n "$T/done" | uniq | wc -l)" -eq 30 ]
    rid=$(last_rid)
    [ "$(rcli hlen "parallelrun:{$rid}:wq:done")" -eq 30 ]
}

@test "queue: Redis back without its data; the run fails loudly, no hang" {
    job n <<EOF
tasks:
  t:
    run: sh -c 'echo {item} >> $T/started; while [ ! -e $T/go ]; do sleep 0.05; done'
    foreach: {range: [0, 10]}
EOF
    start_worker a --slots 3 --lease 5s
    timeout $((120 * F)) "$PR" run "$T/n.yaml" --redis "$URL" --distributed \
        > "$T/run.out" 2>&1 &
    runpid=$!
    wait_for 30 lines_at_least "$T/started" 3
    rcli shutdown nosave
    rm -f "$T/q.rdb"
    start_redis q
    touch "$T/go"
    st=0
    wait "$runpid" || st=$?
    cat "$T/run.out"
    [ "$st" -ne 0 ]
    [ "$st" -ne 124 ]
    grep -q "without this run's work queue" "$T/run.out"
}

@test "queue: --resume of a distributed run runs exactly the instances not done" {
    job res <<EOF
tasks:
  t:
    run: sh -c 'echo {item} >> $T/started; test {item} -ne 4 || test -e $T/fixed'
    foreach: {range: [0, 10]}
EOF
    start_worker a --slots 2
    run timeout $((60 * F)) "$PR" run "$T/res.yaml" --redis "$URL" --distributed
    [ "$status" -eq 1 ]
    rid=$(last_rid)
    [ "$(wc -l < "$T/started")" -eq 10 ]
    touch "$T/fixed"
    run timeout $((60 * F)) "$PR" run "$T/res.yaml" --redis "$URL" \
        --distributed --resume "$rid"
    [ "$status" -eq 0 ]
    [ "$(wc -l < "$T/started")" -eq 11 ]
    [ "$(tail -1 "$T/started")" = 4 ]
}

@test "queue: SIGTERM drains a worker: running instances finish, no new claims" {
    job dr <<EOF
tasks:
  t:
    run: sh -c 'echo {item} >> $T/started; while [ ! -e $T/go ]; do sleep 0.05; done; echo {item} >> $T/done'
    foreach: {range: [0, 6]}
EOF
    start_worker a --slots 2 --drain-timeout 60s
    timeout $((120 * F)) "$PR" run "$T/dr.yaml" --redis "$URL" --distributed \
        > "$T/run.out" 2>&1 &
    runpid=$!
    wait_for 30 lines_at_least "$T/started" 2
    kill -TERM "$(cat "$T/a.pid")"
    wait_for 30 log_has a "no new claims"
    touch "$T/go"
    wait_for 30 log_has a "stopped:"
    [ "$(wc -l < "$T/done")" -eq 2 ]
    start_worker b --slots 2
    wait "$runpid"
    [ "$(sort -n "$T/done" | uniq | wc -l)" -eq 6 ]
    [ "$(wc -l < "$T/done")" -eq 6 ]
}

@test "queue: 3 workers x 20,000 trivial instances; zero lost, zero duplicate terminal records" {
    job big <<EOF
tasks:
  t:
    run: ["true"]
    foreach: {range: [0, 20000]}
EOF
    start_worker a --slots 4
    start_worker b --slots 4
    start_worker c --slots 4
    run timeout $((600 * F)) "$PR" run "$T/big.yaml" --redis "$URL" \
        --distributed -q
    [ "$status" -eq 0 ]
    rid=$(last_rid)
    [ "$(rcli hlen "parallelrun:{$rid}:wq:done")" -eq 20000 ]
    [ "$(rcli hget "parallelrun:{$rid}:wq:meta" ok)" -eq 20000 ]
    [ "$(rcli hget "parallelrun:{$rid}:wq:meta" dup)" -eq 0 ]
    [ "$(rcli hget "parallelrun:{$rid}:wq:meta" stale)" -eq 0 ]
    [ "$(rcli xlen "parallelrun:{$rid}:wq:ends")" -eq 20000 ]
}

@test "queue: cancel reaches the workers; their attempts stop" {
    job c <<EOF
tasks:
  t:
    run: sh -c 'echo \$\$ >> $T/started; while [ ! -e $T/go ]; do sleep 0.05; done'
    foreach: {range: [0, 3]}
EOF
    start_worker a --slots 3
    timeout $((120 * F)) "$PR" run "$T/c.yaml" --redis "$URL" --distributed \
        > "$T/run.out" 2>&1 &
    runpid=$!
    wait_for 30 lines_at_least "$T/started" 3
    "$PR" cancel "$(last_rid)" --redis "$URL"
    st=0
    wait "$runpid" || st=$?
    [ "$st" -eq 130 ]
    wait_for 30 log_has a "is cancelled: stopping"
    for p in $(cat "$T/started"); do
        wait_for 30 eval "! kill -0 $p 2>/dev/null"
    done
}

# ---- pool mode on the queue --------------------------------------------

# A shell pool worker: records each item it finishes in $T/done.
pool_loop='while item=$("$PARALLELRUN_BIN" next $flag); do flag=; '

@test "pool: an item the worker reports failed fails that item, not the pool" {
    job pf <<EOF
tasks:
  work:
    pool: true
    jobs: 2
    foreach: {range: [0, 20]}
    run: [sh, -c, 'flag=; ${pool_loop}if [ "\$item" = 13 ]; then flag=--fail; else echo "\$item" >> $T/done; fi; done']
EOF
    run timeout $((60 * F)) "$PR" run "$T/pf.yaml" --redis "$URL"
    [ "$status" -eq 1 ]
    [[ "$output" == *"work[13]"* ]]
    [[ "$output" == *"reported it failed"* ]]
    [ "$(sort -n "$T/done" | uniq | wc -l)" -eq 19 ]
}

@test "pool: an item that kills every worker is dead-lettered; the others are done" {
    job pk <<EOF
tasks:
  work:
    pool: true
    jobs: 2
    retries: 5
    retry_delay: 10ms
    foreach: {range: [0, 30]}
    run: [sh, -c, 'flag=; ${pool_loop}if [ "\$item" = 7 ]; then kill -9 \$\$; fi; echo "\$item" >> $T/done; done']
EOF
    run timeout $((120 * F)) "$PR" run "$T/pk.yaml" --redis "$URL"
    [ "$status" -eq 1 ]
    [[ "$output" == *"work[7]"* ]]
    [[ "$output" == *"max_deliveries"* ]]
    [ "$(sort -n "$T/done" | uniq | wc -l)" -eq 29 ]
    [ -z "$(sort -n "$T/done" | uniq -d)" ]
}

@test "pool: a Redis outage (restarted with its data) is ridden out; every item done" {
    job po <<EOF
tasks:
  work:
    pool: true
    jobs: 3
    foreach: {range: [0, 200]}
    run: [sh, -c, 'flag=; ${pool_loop}echo "\$item" >> $T/done; sleep 0.02; done']
EOF
    timeout $((120 * F)) "$PR" run "$T/po.yaml" --redis "$URL" \
        > "$T/run.out" 2>&1 &
    runpid=$!
    wait_for 30 lines_at_least "$T/done" 20
    rcli shutdown save
    sleep 1.5 # the outage itself, not a synchronisation
    start_redis q
    st=0
    wait "$runpid" || st=$?
    cat "$T/run.out"
    [ "$st" -eq 0 ]
    [ "$(sort -n "$T/done" | uniq | wc -l)" -eq 200 ]
}

@test "pool: Redis back without its data; the run fails loudly, never exits 0, no hang" {
    job pn <<EOF
tasks:
  work:
    pool: true
    jobs: 2
    foreach: {range: [0, 200]}
    run: [sh, -c, 'flag=; ${pool_loop}echo "\$item" >> $T/done; sleep 0.02; done']
EOF
    timeout $((120 * F)) "$PR" run "$T/pn.yaml" --redis "$URL" \
        > "$T/run.out" 2>&1 &
    runpid=$!
    wait_for 30 lines_at_least "$T/done" 20
    rcli shutdown nosave
    rm -f "$T/q.rdb"
    start_redis q
    st=0
    wait "$runpid" || st=$?
    cat "$T/run.out"
    [ "$st" -ne 0 ]
    [ "$st" -ne 124 ]
    grep -q "lost\|gone" "$T/run.out"
}

@test "pool: --resume of an interrupted pool run over a range runs exactly the items not done" {
    job pr <<EOF
tasks:
  work:
    pool: true
    jobs: 3
    foreach: {range: [0, 300]}
    run: [sh, -c, 'flag=; ${pool_loop}echo "\$item" >> $T/started; if [ "\$item" -ge 100 ] && [ ! -e $T/fixed ]; then flag=--fail; else echo "\$item" >> $T/done; fi; done']
EOF
    run timeout $((120 * F)) "$PR" run "$T/pr.yaml" --redis "$URL"
    [ "$status" -eq 1 ]
    rid=$(last_rid)
    [ "$(wc -l < "$T/done")" -eq 100 ]
    touch "$T/fixed"
    : > "$T/started"
    run timeout $((120 * F)) "$PR" run "$T/pr.yaml" --redis "$URL" --resume "$rid"
    [ "$status" -eq 0 ]
    [ "$(wc -l < "$T/started")" -eq 200 ]
    [ "$(sort -n "$T/started" | head -1)" = 100 ]
    [ "$(sort -n "$T/done" | uniq | wc -l)" -eq 300 ]
}

@test "pool: timeout is per item; a stuck item fails alone, its worker is stopped" {
    job pt <<EOF
tasks:
  work:
    pool: true
    jobs: 2
    timeout: 2s
    foreach: {range: [0, 40]}
    run: [sh, -c, 'flag=; ${pool_loop}if [ "\$item" = 5 ]; then sleep 300; fi; echo "\$item" >> $T/done; sleep 0.1; done']
EOF
    SECONDS=0
    run timeout $((120 * F)) "$PR" run "$T/pt.yaml" --redis "$URL"
    [ "$status" -eq 1 ]
    [ "$SECONDS" -lt $((100 * F)) ]
    [[ "$output" == *"work[5]"* ]]
    [[ "$output" == *"timed out after 2s"* ]]
    # The whole pool ran for longer than the timeout: not a worker limit.
    [ "$(sort -n "$T/done" | uniq | wc -l)" -eq 39 ]
}

@test "queue: a read-only file segment is loaded on the worker's host; others are refused" {
    head -c 100000 /dev/urandom > "$T/data.bin"
    want=$(sha256sum < "$T/data.bin")
    job seg <<EOF
segments:
  d: {file: $T/data.bin}
tasks:
  t:
    foreach: {range: [0, 3]}
    segments: [d]
    run: 'sha256sum < "\$PARALLELRUN_SEGMENT_D" > $T/sum.{item}'
EOF
    start_worker a --slots 2
    run timeout $((60 * F)) "$PR" run "$T/seg.yaml" --redis "$URL" --distributed
    [ "$status" -eq 0 ]
    for i in 0 1 2; do [ "$(cat "$T/sum.$i")" = "$want" ]; done
    job segw <<EOF
segments:
  s: {size: 4096, writable: true}
tasks:
  t: {run: ["true"], segments: [s]}
EOF
    run "$PR" run "$T/segw.yaml" --redis "$URL" --distributed
    [ "$status" -eq 2 ]
    [[ "$output" == *"only read-only file: segments"* ]]
}

@test "pool: a Python worker killed mid-batch; its held items go to others, one terminal record each" {
    cat > "$T/w.py" <<EOF
import os, sys
sys.path.insert(0, "$ROOT/examples/python")
import prun
for index, item in prun.items():
    if item == "50":
        try:
            os.mkdir("$T/killed")
            os.kill(os.getpid(), 9)
        except FileExistsError:
            pass
    with open("$T/done", "a") as f:
        f.write(item + "\n")
EOF
    job py <<EOF
tasks:
  work:
    pool: true
    jobs: 2
    retries: 1
    foreach: {range: [0, 200]}
    run: [/usr/bin/python3, $T/w.py]
EOF
    run timeout $((120 * F)) "$PR" run "$T/py.yaml" --redis "$URL"
    [ "$status" -eq 0 ]
    [ -d "$T/killed" ]
    [ "$(sort -n "$T/done" | uniq | wc -l)" -eq 200 ]
    rid=$(last_rid)
    [ "$(rcli hget "parallelrun:{$rid}:wq:meta" okt:work)" -eq 200 ]
    [ "$(rcli hget "parallelrun:{$rid}:wq:meta" term:work)" -eq 200 ]
    [ "$(rcli hlen "parallelrun:{$rid}:wq:done")" -eq 200 ]
}

@test "pool: status counts and names items, not workers" {
    job ps <<EOF
tasks:
  work:
    pool: true
    jobs: 3
    foreach: {range: [0, 30]}
    run: [sh, -c, 'flag=; ${pool_loop}if [ "\$item" = 3 ]; then flag=--fail; fi; done']
EOF
    run timeout $((60 * F)) "$PR" run "$T/ps.yaml" --redis "$URL"
    [ "$status" -eq 1 ]
    [[ "$output" == *"1 of 30 instances failed"* ]]
    run "$PR" status --redis "$URL"
    [[ "$output" == *"work: items: 30 queued, 29 done, 1 failed"* ]]
}

@test "pool: completions are batched: one ends record per batch, one terminal record per item" {
    cat > "$T/b.py" <<EOF
import sys
sys.path.insert(0, "$ROOT/examples/python")
import prun
for index, item in prun.items():
    pass
EOF
    job pb <<EOF
tasks:
  work:
    pool: true
    jobs: 2
    foreach: {range: [0, 1000]}
    run: [/usr/bin/python3, $T/b.py]
EOF
    run timeout $((120 * F)) "$PR" run "$T/pb.yaml" --redis "$URL"
    [ "$status" -eq 0 ]
    rid=$(last_rid)
    [ "$(rcli hlen "parallelrun:{$rid}:wq:done")" -eq 1000 ]
    [ "$(rcli hget "parallelrun:{$rid}:wq:meta" okt:work)" -eq 1000 ]
    # Far fewer ends records than items, naming every key once.
    [ "$(rcli xlen "parallelrun:{$rid}:wq:ends")" -lt 100 ]
    rcli xrange "parallelrun:{$rid}:wq:ends" - + > "$T/ends"
    [ "$(grep -c '^work [0-9]*$' "$T/ends")" -eq 1000 ]
    [ "$(grep '^work [0-9]*$' "$T/ends" | sort -u | wc -l)" -eq 1000 ]
    # Nothing left on the stream or in the fence table.
    [ "$(rcli xlen "parallelrun:{$rid}:wq:s:work")" -eq 0 ]
    [ "$(rcli hlen "parallelrun:{$rid}:wq:fence")" -eq 0 ]
}

@test "queue: --results and printed output come back from a worker in another HOME; big output is cut at 1 MiB with a note" {
    cat > "$T/res.sh" <<'EOF'
echo "out $1 $HOME"
echo "err $1" >&2
if [ "$1" = 2 ]; then head -c 1100000 /dev/zero | tr '\0' x; fi
EOF
    job res <<EOF
tasks:
  t:
    foreach: {range: [0, 3]}
    run: [sh, $T/res.sh, "{item}"]
EOF
    mkdir -p "$T/wtmp"
    TMPDIR=$T/wtmp start_worker a --slots 2
    run timeout $((60 * F)) "$PR" run "$T/res.yaml" --redis "$URL" --distributed --results "$T/res"
    [ "$status" -eq 0 ]
    rid=$(last_rid)
    # Written by the run, on its host, like a local run's files.
    [ "$(head -1 "$T/res/$rid/t/0.out")" = "out 0 $T/home-a" ]
    [ "$(cat "$T/res/$rid/t/1.err")" = "err 1" ]
    [[ "$output" == *"out 1 $T/home-a"* ]]
    [[ "$output" == *"err 0"* ]]
    # 1 MiB kept, then a note saying how much was cut and by whom.
    [ "$(head -c 1048576 "$T/res/$rid/t/2.out" | tr -d x | wc -c)" -le 100 ]
    grep -q "stdout cut at 1048576 bytes of 110[0-9]* by worker" "$T/res/$rid/t/2.out"
    # The worker's private directory keeps no file once they went back.
    [ -z "$(find "$T/wtmp" -type f)" ]
    kill -TERM "$(cat "$T/a.pid")"
    wait_for 10 sh -c "! kill -0 $(cat "$T/a.pid") 2>/dev/null"
    [ -z "$(ls -A "$T/wtmp")" ]
}

# Error replies to a worker's queue commands (not a lost connection): a
# permanent one is reported in Redis's words and ends the worker's part at
# once; a transient one (BUSY) is ridden out.

# The number of the newest run's instances that have a terminal record.
done_count() { rcli hlen "parallelrun:{$(last_rid)}:wq:done"; }

@test "queue: a worker whose completion gets NOPERM says so and exits non-zero; nothing lost" {
    # The worker's ACL user can claim but not write terminal records.
    rcli acl setuser w on '>pw' '~*' '&*' +@all -hsetnx >/dev/null
    job p <<EOF
tasks:
  t:
    run: sh -c 'echo {item} >> $T/started'
    foreach: {range: [0, 4]}
EOF
    timeout $((120 * F)) "$PR" run "$T/p.yaml" --redis "$URL" --distributed \
        > "$T/run.out" 2>&1 &
    runpid=$!
    echo "$runpid" > "$T/run.pid"
    mkdir -p "$T/home-w"
    st=0
    HOME=$T/home-w timeout $((30 * F)) "$PR" worker \
        --redis "unix://w:pw@$T/q.sock" --lease 1s > "$T/w.log" 2>&1 || st=$?
    cat "$T/w.log"
    [ "$st" -eq 3 ]
    grep -q "completion of t [0-9]* refused: .*can.t run this command" "$T/w.log"
    ! grep -q ":pw@" "$T/w.log"
    # The run got no success for them: it still waits.
    alive "$runpid"
    [ "$(done_count)" -eq 0 ]
    # A sound worker takes them over after the lease: none is lost.
    start_worker b --lease 1s
    st=0
    wait "$runpid" || st=$?
    cat "$T/run.out"
    [ "$st" -eq 0 ]
    [ "$(done_count)" -eq 4 ]
}

@test "queue: maxmemory + noeviction hit while a worker completes: OOM reported, no hang" {
    job o <<EOF
tasks:
  t:
    run: sh -c 'echo {item} >> $T/started; while [ ! -e $T/go ]; do sleep 0.05; done'
    foreach: {range: [0, 3]}
EOF
    timeout $((120 * F)) "$PR" run "$T/o.yaml" --redis "$URL" --distributed \
        > "$T/run.out" 2>&1 &
    runpid=$!
    echo "$runpid" > "$T/run.pid"
    mkdir -p "$T/home-a"
    HOME=$T/home-a timeout $((60 * F)) "$PR" worker --redis "$URL" \
        --slots 3 --lease 1s > "$T/a.log" 2>&1 &
    apid=$!
    echo "$apid" > "$T/a.pid"
    wait_for 30 lines_at_least "$T/started" 3
    /usr/bin/python3 -c '
import sys
v = "x" * 1000
for i in range(3000):
    sys.stdout.write("SET fill:%d %s\r\n" % (i, v))' | rcli >/dev/null
    rcli config set maxmemory-policy noeviction >/dev/null
    rcli config set maxmemory 1mb >/dev/null
    touch "$T/go"
    st=0
    wait "$apid" || st=$?
    cat "$T/a.log"
    [ "$st" -eq 3 ]
    grep -q "refused: .*OOM command not allowed when used memory" "$T/a.log"
    [ "$(done_count)" -eq 0 ]
    # Memory back: another worker finishes the run; nothing is lost.
    rcli config set maxmemory 0 >/dev/null
    start_worker b --lease 1s
    st=0
    wait "$runpid" || st=$?
    cat "$T/run.out"
    [ "$st" -ne 124 ]
    [ "$(done_count)" -eq 3 ]
}

@test "queue: BUSY (a long script) meets a worker's completions: ridden out, nothing lost" {
    rcli config set lua-time-limit 100 >/dev/null
    s=$T/q.sock
    # Instance 0 keeps the server in a script for 2 s; the others end while
    # the server answers BUSY, so their completions meet it.
    job b <<EOF2
tasks:
  t:
    foreach: {range: [0, 6]}
    run: [sh, -c, 'if [ \$PARALLELRUN_INDEX = 0 ]; then touch $T/busy; redis-cli -s $s eval "local t = redis.call(\"TIME\") while redis.call(\"TIME\")[1] - t[1] < 2 do end return 1" 0 >/dev/null; else i=0; while [ ! -e $T/busy ] && [ \$i -lt $((200 * F)) ]; do i=\$((i+1)); sleep 0.05; done; while ! redis-cli -s $s ping | grep -q BUSY && [ \$i -lt $((400 * F)) ]; do i=\$((i+1)); sleep 0.02; done; fi']
EOF2
    start_worker a --slots 6
    st=0
    timeout $((60 * F)) "$PR" run "$T/b.yaml" --redis "$URL" --distributed \
        > "$T/run.out" 2>&1 || st=$?
    cat "$T/run.out" "$T/a.log"
    [ "$st" -eq 0 ]
    grep -q "Redis cannot answer yet (.*BUSY" "$T/a.log"
    alive "$(cat "$T/a.pid")"
    [ "$(done_count)" -eq 6 ]
}

@test "queue: the run's read of terminal records refused (NOPERM): it fails naming it, no hang" {
    # The run's ACL user may queue instances but not read their ends.
    rcli acl setuser r on '>pw' '~*' '&*' +@all -xread >/dev/null
    job x <<EOF
tasks:
  t:
    run: 'true'
    foreach: {range: [0, 3]}
EOF
    st=0
    timeout $((60 * F)) "$PR" run "$T/x.yaml" \
        --redis "unix://r:pw@$T/q.sock" --distributed > "$T/run.out" 2>&1 ||
        st=$?
    cat "$T/run.out"
    [ "$st" -ne 0 ]
    [ "$st" -ne 124 ]
    grep -q "refused the read of .*:ends (XREAD): NOPERM" "$T/run.out"
    ! grep -q ":pw@" "$T/run.out"
}

@test "pool: maxmemory + noeviction hit mid-pool: next fails at once with OOM, the run exits non-zero, no hang" {
    job po <<EOF
tasks:
  work:
    pool: true
    jobs: 2
    foreach: {range: [0, 200]}
    run: [sh, -c, 'flag=; ${pool_loop}echo "\$item" >> $T/done; if [ "\$item" -ge 20 ]; then while [ ! -e $T/go ]; do sleep 0.05; done; fi; done']
EOF
    timeout $((120 * F)) "$PR" run "$T/po.yaml" --redis "$URL" \
        > "$T/run.out" 2>&1 &
    runpid=$!
    echo "$runpid" > "$T/run.pid"
    wait_for 30 lines_at_least "$T/done" 20
    /usr/bin/python3 -c '
import sys
v = "x" * 1000
for i in range(3000):
    sys.stdout.write("SET fill:%d %s\r\n" % (i, v))' | rcli >/dev/null
    rcli config set maxmemory-policy noeviction >/dev/null
    rcli config set maxmemory 1mb >/dev/null
    touch "$T/go"
    st=0
    wait "$runpid" || st=$?
    cat "$T/run.out" | head -c 4000
    [ "$st" -ne 0 ]
    [ "$st" -ne 124 ]
    grep -q "next for work:.*OOM command not allowed" "$T/run.out"
    [ "$(sort -n "$T/done" | uniq | wc -l)" -lt 30 ]
}
