#!/usr/bin/env bats
# One `parallelrun worker` serving several distributed runs at once: its
# slots are shared by the runs (none waits for another to end), cancel
# and halt stop only that run's attempts, SIGTERM drains every run, and a
# worker killed -9 loses nothing of any of them.

load helpers

setup() {
    common_setup
    queue_redis
}
teardown() { common_teardown; }


# start_run NAME: `run --distributed` of $T/NAME.yaml in the background
# (bounded); its pid in NAME.runpid, its output in NAME.out.
start_run() {
    timeout "$(scaled 120)" "$PR" run "$T/$1.yaml" --redis "$URL" \
        --distributed > "$T/$1.out" 2>&1 &
    echo $! > "$T/$1.runpid"
}

# finish NAME: waits for run NAME to end; its exit status in $st.
finish() {
    st=0
    wait "$(cat "$T/$1.runpid")" || st=$?
    [ "$st" -eq 0 ] || cat "$T/$1.out" >&2
}

count_at_least() { [ -f "$1" ] && [ "$(grep -c "$2" "$1")" -ge "$3" ]; }
log_has() { grep -q "$2" "$T/$1.log"; }
nruns_is() { [ "$(rcli zcard parallelrun:runs)" -eq "$1" ]; }
serves() { "$PR" workers --redis "$URL" | grep -q "$1"; }
# The id of the worker whose pid is in NAME.pid.
worker_id() { rcli zrange parallelrun:wq:workers 0 -1 | grep ":$(cat "$T/$1.pid")$"; }
beat_of() { rcli hget "parallelrun:wq:worker:$1" beat; }
beat_after() { [ "$(beat_of "$1")" -gt "$2" ]; }

# blocking TAG: a task whose instances log "TAG ITEM PID" to started and
# wait for $T/go-TAG, then log "TAG ITEM" to done.
blocking() {
    cat <<EOF
tasks:
  t:
    run: sh -c 'echo "$1 {item} \$\$" >> $T/started; $GATE wait $T/go-$1; echo "$1 {item}" >> $T/done'
    foreach: {range: [0, $2]}
EOF
}

@test "multirun: run A's instance waits for a file only run B's creates; one worker runs both, each its own output" {
    job a <<EOF
tasks:
  t:
    run: sh -c 'echo a >> $T/started; echo out-a; $GATE wait $T/from-b; echo a >> $T/done'
    foreach: {list: [x]}
EOF
    job b <<EOF
tasks:
  t:
    run: sh -c 'echo out-b; $GATE open $T/from-b; echo b >> $T/done'
    foreach: {list: [y]}
EOF
    start_worker w --slots 8
    start_run a
    wait_until -t 30 count_at_least "$T/started" a 1
    start_run b
    finish b
    [ "$st" -eq 0 ]
    finish a
    [ "$st" -eq 0 ]
    [ "$(sort "$T/done" | tr '\n' ' ')" = "a b " ]
    # Both were t[0] at once on one worker: each run got its own output.
    grep -q out-a "$T/a.out"
    grep -q out-b "$T/b.out"
    [ "$(grep -c out-b "$T/a.out")" -eq 0 ]
    [ "$(grep -c out-a "$T/b.out")" -eq 0 ]
}

@test "multirun: --slots holds over the runs together; the heartbeat lists every run served" {
    blocking a 2 > "$T/a.yaml"
    job b <<EOF
tasks:
  t:
    run: sh -c 'touch $T/b-ran'
    foreach: {list: [y]}
EOF
    start_worker w --slots 2
    start_run a
    wait_until -t 30 count_at_least "$T/started" '^a ' 2
    rid_a=$(last_rid)
    start_run b
    wait_until -t 30 nruns_is 2
    rid_b=$(last_rid)
    # The worker serves B (it is listed) but has no slot for it.
    wait_until -t 30 serves "$rid_b"
    wid=$(worker_id w)
    "$PR" workers --redis "$URL" | grep "$wid" | grep -q "$rid_a"
    b1=$(beat_of "$wid")
    wait_until -t 30 beat_after "$wid" "$b1"
    [ ! -e "$T/b-ran" ]
    [ "$(rcli hget "parallelrun:wq:worker:$wid" running)" -eq 2 ]
    "$GATE" open "$T/go-a"
    finish a
    [ "$st" -eq 0 ]
    finish b
    [ "$st" -eq 0 ]
    [ -e "$T/b-ran" ]
}

@test "multirun: cancel of run A stops only A's attempts; B completes" {
    blocking a 2 > "$T/a.yaml"
    blocking b 2 > "$T/b.yaml"
    start_worker w --slots 4
    start_run a
    wait_until -t 30 count_at_least "$T/started" '^a ' 2
    rid_a=$(last_rid)
    start_run b
    wait_until -t 30 count_at_least "$T/started" '^b ' 2
    "$PR" cancel "$rid_a" --redis "$URL"
    finish a
    [ "$st" -eq 130 ]
    wait_until -t 30 log_has w "run $rid_a is cancelled: stopping its attempts"
    for p in $(awk '$1 == "a" {print $3}' "$T/started"); do
        wait_gone "$p" 30
    done
    # B's attempts were left alone.
    for p in $(awk '$1 == "b" {print $3}' "$T/started"); do
        alive "$p"
    done
    "$GATE" open "$T/go-b"
    finish b
    [ "$st" -eq 0 ]
    [ "$(grep -c '^b ' "$T/done")" -eq 2 ]
    [ "$(grep -c '^a ' "$T/done")" -eq 0 ]
    [ "$(grep -c "run $(last_rid) is" "$T/w.log")" -eq 0 ]
}

@test "multirun: SIGTERM drains every run: each run's attempts handed back, done once elsewhere" {
    blocking a 2 > "$T/a.yaml"
    blocking b 2 > "$T/b.yaml"
    start_worker w --slots 4 --drain-timeout 1s
    start_run a
    wait_until -t 30 count_at_least "$T/started" '^a ' 2
    start_run b
    wait_until -t 30 count_at_least "$T/started" '^b ' 2
    kill -TERM "$(cat "$T/w.pid")"
    wait_until -t 30 log_has w "stopped:"
    grep -q "4 handed back" "$T/w.log"
    for p in $(awk '{print $3}' "$T/started"); do
        wait_gone "$p" 30
    done
    start_worker v --slots 4
    wait_until -t 30 count_at_least "$T/started" . 8
    "$GATE" open "$T/go-a"
    "$GATE" open "$T/go-b"
    finish a
    [ "$st" -eq 0 ]
    finish b
    [ "$st" -eq 0 ]
    [ "$(sort "$T/done" | tr '\n' ' ')" = "a 0 a 1 b 0 b 1 " ]
}

@test "multirun: a worker serving two runs killed -9; both runs' instances reclaimed, none lost or twice" {
    blocking a 2 > "$T/a.yaml"
    blocking b 4 > "$T/b.yaml"
    start_worker w --slots 4 --lease 1s
    start_run a
    wait_until -t 30 count_at_least "$T/started" '^a ' 1
    start_run b
    wait_until -t 30 nruns_is 2
    rid_b=$(last_rid)
    rid_a=$(rcli zrevrange parallelrun:runs 1 1)
    # Both runs have instances on the worker before it dies.
    wait_until -t 30 count_at_least "$T/started" '^b ' 2
    kill -9 "$(cat "$T/w.pid")"
    for p in $(awk '{print $3}' "$T/started"); do
        wait_gone "$p" 30
    done
    start_worker v --slots 8 --lease 1s
    # v takes the rest at once and w's after their lease ran out.
    wait_until -t 60 count_at_least "$T/started" . 10
    "$GATE" open "$T/go-a"
    "$GATE" open "$T/go-b"
    finish a
    [ "$st" -eq 0 ]
    finish b
    [ "$st" -eq 0 ]
    [ "$(sort "$T/done" | uniq | wc -l)" -eq 6 ]
    [ "$(wc -l < "$T/done")" -eq 6 ]
    [ "$(rcli hlen "parallelrun:{$rid_a}:wq:done")" -eq 2 ]
    [ "$(rcli hlen "parallelrun:{$rid_b}:wq:done")" -eq 4 ]
    for rid in "$rid_a" "$rid_b"; do
        [ "$(rcli hget "parallelrun:{$rid}:wq:meta" dup)" -eq 0 ]
        [ "$(rcli hget "parallelrun:{$rid}:wq:meta" stale)" -eq 0 ]
    done
}

@test "multirun: halt of run A stops only A's attempts; B goes on" {
    blocking b 1 > "$T/b.yaml"
    job a <<EOF2
halt: now
tasks:
  t:
    run: sh -c 'if [ {item} = 0 ]; then $GATE wait $T/a1-ready; exit 1; fi; echo \$\$ > $T/a1-pid.tmp; mv $T/a1-pid.tmp $T/a1-pid; $GATE open $T/a1-ready; $GATE wait $T/go-a'
    foreach: {range: [0, 2]}
EOF2
    start_worker w --slots 4
    start_run b
    wait_until -t 30 count_at_least "$T/started" '^b ' 1
    start_run a
    finish a
    [ "$st" -eq 1 ]
    wait_gone "$(cat "$T/a1-pid")" 30
    # B's attempt was left alone and ends as usual.
    alive "$(awk '$1 == "b" {print $3}' "$T/started")"
    "$GATE" open "$T/go-b"
    finish b
    [ "$st" -eq 0 ]
    [ "$(cat "$T/done")" = "b 0" ]
}
