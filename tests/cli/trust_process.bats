#!/usr/bin/env bats
# Process and lock guarantees: the guardian survives whatever kills the
# runner's process group and cleans up after it (groups, published
# segments); the runner notices a dead guardian; a `lock: true` run that
# loses its lease (stopped past it, Redis gone past it) stops its children
# and exits 75. Each test starts the runner in a session of its own with
# setsid, so `kill -9 -PGID` can only reach what the test started, and
# kills only pids it started.

load helpers

setup() {
    common_setup
    F=${PRUN_TIME_FACTOR:-1}
    export XDG_RUNTIME_DIR=$T/xdg PARALLELRUN_SHM_BASE=$T/shm
    mkdir -p "$XDG_RUNTIME_DIR" "$PARALLELRUN_SHM_BASE"
}
teardown() { common_teardown; }

# gone PID [TENTHS]: waits until PID no longer runs (default 10 s * F).
gone() {
    local i
    for ((i = 0; i < ${2:-$((100 * F))}; i++)); do
        alive "$1" || return 0
        sleep 0.1
    done
    return 1
}

# guardian_of PID: the runner's child named prun-guardian, if any.
guardian_of() {
    local c
    for c in $(cat "/proc/$1/task/$1/children" 2>/dev/null); do
        [ "$(cat "/proc/$c/comm" 2>/dev/null)" = prun-guardian ] && echo "$c"
    done
    return 0
}

# wait_guardian PID [NOT]: waits for a guardian of PID other than NOT.
wait_guardian() {
    local i g
    for ((i = 0; i < 50 * F; i++)); do
        g=$(guardian_of "$1")
        if [ -n "$g" ] && [ "$g" != "${2:-}" ]; then
            echo "$g"
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# start_runner JOB OUT [ARGS...]: the runner leads its own session and
# group ($T/runner.pid, killed by teardown if the test fails).
start_runner() {
    local jobf=$1 out=$2
    shift 2
    setsid "$PR" run "$jobf" "$@" > "$out" 2>&1 &
    RUNNER=$!
    echo "$RUNNER" > "$T/runner.pid"
}

# The runner's group is its own, never the test's.
own_group() {
    local pg
    pg=$(ps -o pgid= -p "$1" | tr -d ' ')
    [ "$pg" = "$1" ] && [ "$pg" != "$(ps -o pgid= -p $$ | tr -d ' ')" ]
}

fanout_job() {
    job k9 <<EOF
tasks:
  t:
    foreach: {range: [0, 2]}
    run: [sh, -c, 'sleep 1000 & echo \$! > $T/gc\$PARALLELRUN_INDEX.pid; head -c 4096 /dev/zero | "\$PARALLELRUN_BIN" segment publish p\$PARALLELRUN_INDEX - || exit 9; echo \$\$ > $T/c\$PARALLELRUN_INDEX.pid; wait']
EOF
}

@test "kill -9 -PGID of the runner: guardian survives, kills children and grandchildren, removes published segments" {
    start_redis r
    fanout_job
    start_runner "$T/k9.yaml" "$T/out" -j 2 --redis "unix://$T/r.sock"
    for i in 0 1; do wait_for "$T/c$i.pid"; wait_for "$T/gc$i.pid"; done
    own_group "$RUNNER"
    g=$(guardian_of "$RUNNER")
    gsid=
    [ -z "$g" ] || gsid=$(ps -o sid= -p "$g" | tr -d ' ')
    dirs=("$PARALLELRUN_SHM_BASE"/parallelrun-*)
    [ -e "${dirs[0]}/p0" ] && [ -e "${dirs[0]}/p1" ]
    kill -9 -- "-$RUNNER"
    wait "$RUNNER" || true
    for i in 0 1; do
        gone "$(cat "$T/c$i.pid")"
        gone "$(cat "$T/gc$i.pid")"
    done
    for ((i = 0; i < 50 * F; i++)); do
        [ -e "${dirs[0]}" ] || break
        sleep 0.1
    done
    [ ! -e "${dirs[0]}" ]
    # It was the guardian, in a session of its own, and it is gone too.
    [ -n "$g" ] && [ "$gsid" = "$g" ]
    gone "$g"
}

@test "guardian killed by pid: the runner starts a new one, which still cleans up after kill -9 -PGID" {
    start_redis r
    fanout_job
    start_runner "$T/k9.yaml" "$T/out" -j 2 --redis "unix://$T/r.sock"
    for i in 0 1; do wait_for "$T/c$i.pid"; wait_for "$T/gc$i.pid"; done
    own_group "$RUNNER"
    g1=$(wait_guardian "$RUNNER")
    kill -9 "$g1"
    g2=$(wait_guardian "$RUNNER" "$g1")
    [ "$g2" != "$g1" ]
    for ((i = 0; i < 50 * F; i++)); do
        grep -q "started a new one (pid $g2)" "$T/out" && break
        sleep 0.1
    done
    grep -q "parallelrun: the guardian process (pid $g1) died (killed by SIGKILL); started a new one (pid $g2)" "$T/out"
    # The run goes on; the new guardian knows the running groups.
    alive "$RUNNER"
    kill -9 -- "-$RUNNER"
    wait "$RUNNER" || true
    for i in 0 1; do
        gone "$(cat "$T/c$i.pid")"
        gone "$(cat "$T/gc$i.pid")"
    done
    gone "$g2"
    for ((i = 0; i < 50 * F; i++)); do
        [ -z "$(ls -A "$PARALLELRUN_SHM_BASE")" ] && break
        sleep 0.1
    done
    [ -z "$(ls -A "$PARALLELRUN_SHM_BASE")" ]
}

@test "a run that ends normally leaves no guardian and no segment directory" {
    job ok <<EOF
tasks:
  t:
    run: [sh, -c, 'head -c 100 /dev/zero | "\$PARALLELRUN_BIN" segment publish s -']
EOF
    start_redis r
    run timeout $((30 * F)) "$PR" run "$T/ok.yaml" --redis "unix://$T/r.sock"
    [ "$status" -eq 0 ]
    [ -z "$(ls -A "$PARALLELRUN_SHM_BASE")" ]
}

# lock_job NAME FILE BODY: a lock: true job with one task running BODY.
lock_job() {
    job "$2" <<EOF
name: $1
lock: true
defaults:
  kill_grace: 1s
tasks:
  t:
    run: [sh, -c, '$3']
EOF
}

@test "lock: a holder stopped past its lease exits 75 on SIGCONT and stops its children; the new holder runs" {
    export PARALLELRUN_LOCK_LEASE=$((2 * F))s
    start_redis lk
    url=unix://$T/lk.sock
    lock_job nightly a "sleep 1000 & echo \$! > $T/agc.pid; echo \$\$ > $T/a.pid; wait"
    start_runner "$T/a.yaml" "$T/a.out" --redis "$url"
    A=$RUNNER
    wait_for "$T/a.pid"
    wait_for "$T/agc.pid"
    kill -STOP "$A"
    # The lease runs out in Redis while A is stopped.
    for ((i = 0; i < 100 * F; i++)); do
        [ "$(redis-cli -s "$T/lk.sock" exists 'parallelrun:lock:{nightly}')" = 0 ] && break
        sleep 0.1
    done
    [ "$(redis-cli -s "$T/lk.sock" exists 'parallelrun:lock:{nightly}')" = 0 ]
    lock_job nightly b "touch $T/b.started; i=0; while [ ! -e $T/b.go ] && [ \$i -lt $((600 * F)) ]; do sleep 0.1; i=\$((i+1)); done"
    "$PR" run "$T/b.yaml" --redis "$url" > "$T/b.out" 2>&1 &
    B=$!
    echo "$B" > "$T/b.pid"
    wait_exists "$T/b.started" $((100 * F))
    kill -CONT "$A"
    gone "$A" $((150 * F))
    rc=0
    wait "$A" || rc=$?
    [ "$rc" -eq 75 ]
    grep -q "parallelrun: lock 'nightly' lost (held by run .* since .*): its lease of $((2 * F))s ran out" "$T/a.out"
    gone "$(cat "$T/a.pid")"
    gone "$(cat "$T/agc.pid")"
    # B still holds the lock: A's end did not release it.
    [ "$(redis-cli -s "$T/lk.sock" exists 'parallelrun:lock:{nightly}')" = 1 ]
    touch "$T/b.go"
    gone "$B" $((300 * F))
    rc=0
    wait "$B" || rc=$?
    [ "$rc" -eq 0 ]
}

@test "lock: Redis unreachable past the lease: the holder exits 75 and stops its children" {
    export PARALLELRUN_LOCK_LEASE=$((2 * F))s
    start_redis lk
    lock_job down a "sleep 1000 & echo \$! > $T/agc.pid; echo \$\$ > $T/a.pid; wait"
    start_runner "$T/a.yaml" "$T/a.out" --redis "unix://$T/lk.sock"
    wait_for "$T/a.pid"
    wait_for "$T/agc.pid"
    kill -9 "$(cat "$T/lk.pid")"
    gone "$(cat "$T/lk.pid")"
    gone "$RUNNER" $((400 * F))
    rc=0
    wait "$RUNNER" || rc=$?
    [ "$rc" -eq 75 ]
    grep -q "parallelrun: lock 'down' lost (Redis unreachable.*): its lease of $((2 * F))s ran out while Redis was unreachable" "$T/a.out"
    gone "$(cat "$T/a.pid")"
    gone "$(cat "$T/agc.pid")"
}

@test "lock: a short lease is renewed for as long as the run lasts, and keeps others out" {
    export PARALLELRUN_LOCK_LEASE=2s
    start_redis lk
    url=unix://$T/lk.sock
    # The child outlives several leases.
    lock_job long a "touch $T/a.started; sleep $((5 * F))"
    start_runner "$T/a.yaml" "$T/a.out" --redis "$url"
    wait_exists "$T/a.started" $((100 * F))
    lock_job long b "touch $T/b.ran"
    run timeout $((30 * F)) "$PR" run "$T/b.yaml" --redis "$url"
    [ "$status" -eq 75 ]
    [[ "$output" == *"job 'long' is locked by run "* ]]
    [ ! -e "$T/b.ran" ]
    gone "$RUNNER" $((300 * F))
    rc=0
    wait "$RUNNER" || rc=$?
    [ "$rc" -eq 0 ]
    # Released at the end; the fencing counter went up once per holder.
    [ "$(redis-cli -s "$T/lk.sock" exists 'parallelrun:lock:{long}')" = 0 ]
    [ "$(redis-cli -s "$T/lk.sock" get 'parallelrun:lock:{long}:fence')" = 1 ]
}

@test "lock_lease below 2s is refused before anything starts" {
    job l <<EOF
lock: true
tasks:
  t:
    run: [touch, $T/ran]
EOF
    PARALLELRUN_LOCK_LEASE=500ms run timeout $((30 * F)) "$PR" run "$T/l.yaml" --redis off
    [ "$status" -eq 2 ]
    [[ "$output" == *"lock_lease must be at least 2s"* ]]
    [ ! -e "$T/ran" ]
}
