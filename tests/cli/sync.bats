#!/usr/bin/env bats
# The child-side primitives through the real binary: barrier, lock,
# counter, queue, progress and next. A private redis-server (unix socket in
# the test's temp dir, no TCP port) serves each test; the first tests call
# the subcommands directly with the PARALLELRUN_* environment set by hand,
# the later ones run them inside `parallelrun run` job files.

load helpers
bats_require_minimum_version 1.5.0

setup() {
    common_setup
    command -v redis-server >/dev/null || skip "redis-server not installed"
    SOCK=$T/r.sock
    redis-server --port 0 --unixsocket "$SOCK" --save "" --appendonly no \
        --dir "$T" --pidfile "$T/redis.pid" --daemonize yes \
        --logfile "$T/redis.log" >/dev/null
    wait_until redis-cli -s "$SOCK" ping
    # The pid file is named *.pid: common_teardown kills the server.
    export PARALLELRUN_REDIS=unix://$SOCK
    export PARALLELRUN_RUN_ID=bats-$$-$BATS_TEST_NUMBER
    export PARALLELRUN_TASK=t PARALLELRUN_INDEX=0 PARALLELRUN_ATTEMPT=1 PARALLELRUN_COUNT=1
    unset PARALLELRUN_REDIS_PASSWORD PARALLELRUN_KEY_TTL
}

teardown() { common_teardown; }

# rcli ARGS...: redis-cli against the test's server.
rcli() {
    redis-cli -s "$SOCK" "$@"
}

# key SUFFIX: a key of this test's run.
key() {
    echo "parallelrun:{$PARALLELRUN_RUN_ID}:$1"
}

# run_job NAME: runs $T/NAME.yaml with the test's Redis. A runner that
# knows --redis gets it; one that does not yet passes PARALLELRUN_REDIS
# through from our environment.
run_job() {
    local extra=()
    if "$PR" --help 2>&1 | grep -q -- '--redis'; then
        extra=(--redis "$PARALLELRUN_REDIS")
    fi
    run "$PR" run "$T/$1.yaml" "${extra[@]}" "${@:2}"
}

# ---- directly, with the environment set by hand ---------------------------

@test "outside a task: the subcommands say what is missing and exit 2" {
    unset PARALLELRUN_REDIS
    run "$PR" barrier b
    [ "$status" -eq 2 ]
    [[ "$output" == "parallelrun: barrier: PARALLELRUN_REDIS is not set: run this inside a task started by 'parallelrun run'" ]]
    run "$PR" counter c
    [ "$status" -eq 2 ]
    [[ "$output" == *"PARALLELRUN_REDIS is not set"* ]]
    export PARALLELRUN_REDIS=unix://$SOCK
    unset PARALLELRUN_RUN_ID
    run "$PR" counter c
    [ "$status" -eq 2 ]
    [[ "$output" == *"PARALLELRUN_RUN_ID is not set"* ]]
}

@test "an unreachable Redis exits 3 and names the address" {
    export PARALLELRUN_REDIS=unix://$T/nothing.sock
    run "$PR" counter c --add 1
    [ "$status" -eq 3 ]
    [[ "$output" == "parallelrun: counter: "*"unix://$T/nothing.sock"* ]]
    run "$PR" lock l -- true
    [ "$status" -eq 3 ]
}

@test "usage errors exit 2" {
    run "$PR" barrier
    [ "$status" -eq 2 ]
    [[ "$output" == *"barrier: missing NAME"* ]]
    run "$PR" barrier b --bogus
    [ "$status" -eq 2 ]
    [[ "$output" == *"unknown option '--bogus'"* ]]
    run "$PR" barrier b --timeout soon
    [ "$status" -eq 2 ]
    run "$PR" lock l
    [ "$status" -eq 2 ]
    [[ "$output" == *"missing '-- CMD"* ]]
    run "$PR" counter c --add x
    [ "$status" -eq 2 ]
    run "$PR" counter a:b
    [ "$status" -eq 2 ]
    [[ "$output" == *"'a:b'"* ]]
    run "$PR" queue frob q
    [ "$status" -eq 2 ]
    run "$PR" queue push q
    [ "$status" -eq 2 ]
    run "$PR" progress x
    [ "$status" -eq 2 ]
    run "$PR" next extra
    [ "$status" -eq 2 ]
    run "$PR" lock --help
    [ "$status" -eq 0 ]
    [[ "$output" == *"usage: parallelrun lock NAME"* ]]
}

@test "counter prints the value after adding; without --add it reads" {
    run "$PR" counter c
    [ "$status" -eq 0 ]
    [ "$output" = 0 ]
    run "$PR" counter c --add 5
    [ "$output" = 5 ]
    run "$PR" counter c --add=-2
    [ "$output" = 3 ]
    run "$PR" counter c
    [ "$output" = 3 ]
    [ "$(rcli get "$(key counter:c)")" = 3 ]
    ttl=$(rcli pttl "$(key counter:c)")
    [ "$ttl" -gt 600000000 ] && [ "$ttl" -le 604800000 ]
}

@test "queue push and pop keep order and values; pop without --timeout does not wait" {
    run "$PR" queue push q one "two words" -three
    [ "$status" -eq 0 ]
    run "$PR" queue pop q
    [ "$output" = one ]
    run "$PR" queue pop q --timeout 1s
    [ "$output" = "two words" ]
    run "$PR" queue pop q
    [ "$output" = -three ]
    # Without --timeout it returns at once (timeout(1) would say 124).
    run timeout "$(scaled 10)" "$PR" queue pop q
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    run "$PR" queue pop q --timeout 300ms
    [ "$status" -eq 1 ]
    # A waiting pop gets what is pushed while it waits.
    timeout "$(scaled 30)" "$PR" queue pop q --timeout 60s >"$T/late" &
    popper=$!
    wait_until blocked_clients 1
    "$PR" queue push q late
    wait $popper
    [ "$(cat "$T/late")" = late ]
}

# blocked_clients N: N clients of the test's server wait in a blocking pop.
blocked_clients() {
    rcli info clients | tr -d '\r' | grep -qx "blocked_clients:$1"
}

@test "progress writes TASK[INDEX] = DONE TOTAL" {
    PARALLELRUN_INDEX=4 run "$PR" progress 3 10
    [ "$status" -eq 0 ]
    [ "$(rcli hget "$(key progress)" 't[4]')" = "3 10" ]
    PARALLELRUN_INDEX=4 run "$PR" progress 5
    [ "$(rcli hget "$(key progress)" 't[4]')" = "5 -1" ]
}

@test "barrier times out with exit 1 and stays usable" {
    run "$PR" barrier b --count 2 --timeout 200ms
    [ "$status" -eq 1 ]
    [[ "$output" == "parallelrun: barrier 'b' timed out after 200ms (1 of 2 arrived)" ]]
    "$PR" barrier b --count 2 --timeout 10s &
    run "$PR" barrier b --count 2 --timeout 10s
    wait $!
    [ "$status" -eq 0 ]
    [ "$(rcli hget "$(key barrier:b)" gen)" = 1 ]
}

@test "lock runs CMD with its fencing token and exits with its status" {
    run "$PR" lock l -- sh -c 'echo "token $PARALLELRUN_LOCK_TOKEN"; exit 7'
    [ "$status" -eq 7 ]
    [ "$output" = "token 1" ]
    run "$PR" lock l -- sh -c 'echo "token $PARALLELRUN_LOCK_TOKEN"'
    [ "$output" = "token 2" ]
    [ "$(rcli exists "$(key lock:l)")" = 0 ]
    run "$PR" lock l -- sh -c 'kill -KILL $$'
    [ "$status" -eq 137 ]
    run -127 "$PR" lock l -- "$T/no-such-program"
    [ "$status" -eq 127 ]
    [[ "$output" == *"cannot run '$T/no-such-program'"* ]]
    # Released every time.
    [ "$(rcli exists "$(key lock:l)")" = 0 ]
}

@test "a held lock makes --timeout exit 75" {
    "$PR" lock l -- sh -c "echo in > $T/in; until [ -e $T/release ]; do sleep 0.05; done" &
    holder=$!
    wait_for "$T/in"
    # It gives up after 500ms, long before the holder is done (timeout(1)
    # would say 124).
    run timeout "$(scaled 10)" "$PR" lock l --timeout 500ms -- true
    [ "$status" -eq 75 ]
    [ "$output" = "parallelrun: lock 'l' is held (waited 500ms)" ]
    # A waiter without a timeout gets it once the holder is done.
    timeout "$(scaled 30)" "$PR" lock l -- echo got it >"$T/got" &
    waiter=$!
    wait_until blocked_clients 1
    touch "$T/release"
    wait $holder
    wait $waiter
    [ "$(cat "$T/got")" = "got it" ]
}

@test "lock forwards SIGTERM to CMD and waits for it" {
    "$PR" lock l -- sh -c "trap 'echo term > $T/got; exit 9' TERM; echo in > $T/in; while :; do sleep 0.1; done" &
    pid=$!
    wait_for "$T/in"
    kill -TERM $pid
    st=0
    wait $pid || st=$?
    [ "$st" -eq 9 ]
    [ "$(cat "$T/got")" = term ]
    [ "$(rcli exists "$(key lock:l)")" = 0 ]
}

@test "next hands out pool items once and marks the previous one done" {
    # The run's work queue as the runner creates it (docs/work-queue.md).
    rcli hset "$(key wq:meta)" state open ttl 600000 maxdel 3 >/dev/null
    rcli hset "$(key wq:tasks)" t "0 0" >/dev/null
    rcli xgroup create "$(key wq:s:t)" g 0 mkstream >/dev/null
    rcli xadd "$(key wq:s:t)" '*' k "t 0" a 1 m 1 d 0 p 'first item' >/dev/null
    rcli xadd "$(key wq:s:t)" '*' k "t 1" a 1 m 1 d 0 p second >/dev/null
    rcli hset "$(key wq:meta)" fed:t 2 >/dev/null
    run "$PR" next
    [ "$status" -eq 0 ]
    [ "$output" = "first item" ]
    run "$PR" next
    [ "$output" = second ]
    [ "$(rcli sismember "$(key done:t)" 'first item')" = 1 ]
    run "$PR" next
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [ "$(rcli scard "$(key done:t)")" = 2 ]
    [ "$(rcli hget "$(key wq:meta)" okt:t)" = 2 ]
}

# ---- inside `parallelrun run` ---------------------------------------------

@test "run: a barrier of 32 children releases nobody before the last arrives" {
    job bar <<EOF
jobs: 32
tasks:
  t:
    foreach: {range: [0, 32]}
    run: |
      sleep 0.\$(( {index} % 5 ))
      date +%s%N > $T/arrive.{index}
      "$PR" barrier start --timeout 60s || exit 1
      date +%s%N > $T/release.{index}
EOF
    run_job bar
    [ "$status" -eq 0 ]
    [ "$(ls "$T"/release.* | wc -l)" -eq 32 ]
    last_arrive=$(cat "$T"/arrive.* | sort -n | tail -1)
    first_release=$(cat "$T"/release.* | sort -n | head -1)
    [ "$first_release" -ge "$last_arrive" ]
}

@test "run: a lock keeps the critical section to one holder at a time" {
    echo 0 > "$T/count"
    job lk <<EOF
jobs: 8
tasks:
  t:
    foreach: {range: [0, 40]}
    run: [$PR, lock, crit, --, sh, -c, 'if ! mkdir $T/inside; then echo OVERLAP; exit 1; fi; n=\$(cat $T/count); sleep 0.01; echo \$((n + 1)) > $T/count; rmdir $T/inside']
EOF
    run_job lk
    [ "$status" -eq 0 ]
    [[ "$output" != *OVERLAP* ]]
    [ "$(cat "$T/count")" -eq 40 ]
}

@test "run: counter, queue between tasks, and progress" {
    job cq <<EOF
jobs: 4
tasks:
  produce:
    foreach: {range: [0, 5]}
    run: "$PR counter produced --add 1 >/dev/null && $PR queue push work item-{index} && $PR progress 1 1"
  consume:
    needs: [produce]
    run: |
      n=0
      while v=\$("$PR" queue pop work); do n=\$((n + 1)); echo "got \$v"; done
      echo "consumed \$n of \$("$PR" counter produced)"
EOF
    run_job cq
    [ "$status" -eq 0 ]
    [[ "$output" == *"consumed 5 of 5"* ]]
    for i in 0 1 2 3 4; do [[ "$output" == *"got item-$i"* ]]; done
}
