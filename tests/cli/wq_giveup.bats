#!/usr/bin/env bats
# A distributed run never waits silently for workers that are gone
# (docs/work-queue.md, "When no worker serves the run"): with no live
# worker able to serve it the run says so, says at once why a worker gave
# up on it, and past --worker-wait fails what is outstanding naming the
# cause; a worker that comes in time lets it carry on.

load helpers

setup() {
    common_setup
    queue_redis
}
teardown() { common_teardown; }


# start_run NAME [ARGS...]: run --distributed of $T/NAME.yaml in the
# background, bounded; output in run.out, pid in run.pid and $runpid.
start_run() {
    local name=$1
    shift
    timeout "$(scaled 120)" "$PR" run "$T/$name.yaml" --redis "$URL" \
        --distributed "$@" > "$T/run.out" 2>&1 &
    runpid=$!
    echo "$runpid" > "$T/run.pid"
}

run_said() { grep -q -- "$1" "$T/run.out"; }
done_count() { rcli hlen "parallelrun:{$(last_rid)}:wq:done"; }
queued() { [ -n "$(rcli smembers parallelrun:wq:runs)" ]; }
# registered N: N workers have announced themselves (their first heartbeat).
registered() { [ "$(rcli zcard parallelrun:wq:workers)" -ge "$1" ]; }
started_at_least() { [ -f "$T/started" ] && [ "$(wc -l < "$T/started")" -ge "$1" ]; }

three() {
    job "$1" <<EOF
tasks:
  t:
    run: sh -c 'echo {item} >> $T/started'
    foreach: {range: [0, 3]}
EOF
}

@test "giveup: no worker at all: the run fails within --worker-wait naming the cause, nothing started" {
    three n
    st=0
    t0=$SECONDS
    timeout "$(scaled 60)" "$PR" run "$T/n.yaml" --redis "$URL" \
        --distributed --worker-wait 2s > "$T/run.out" 2>&1 || st=$?
    cat "$T/run.out"
    [ "$st" -eq 3 ]
    [ $((SECONDS - t0)) -le "$(scaled 20)" ]
    grep -q "no worker took any instance within 2s" "$T/run.out"
    grep -q "start .parallelrun worker --redis $URL" "$T/run.out"
    grep -q "3 of 3 instances failed" "$T/run.out"
    [ ! -e "$T/started" ]
    [ "$(done_count)" -eq 0 ]
}

@test "giveup: the run says there is no worker; one that starts within the bound lets it succeed" {
    three w
    start_run w --worker-wait "$(scaled 60)s"
    wait_until -t 30 run_said "no live worker on $URL; start .parallelrun worker --redis $URL"
    alive "$runpid"
    start_worker a --slots 2
    st=0
    wait "$runpid" || st=$?
    cat "$T/run.out"
    [ "$st" -eq 0 ]
    [ "$(wc -l < "$T/started")" -eq 3 ]
    [ "$(done_count)" -eq 3 ]
}

@test "giveup: --worker-wait 0 waits for ever; a late worker finishes the run" {
    three z
    start_run z --worker-wait 0
    wait_until -t 30 run_said "no live worker on $URL"
    alive "$runpid"
    start_worker a
    st=0
    wait "$runpid" || st=$?
    cat "$T/run.out"
    [ "$st" -eq 0 ]
    [ "$(done_count)" -eq 3 ]
}

@test "giveup: the only worker gives up on an error reply (NOPERM): the run prints its reason and fails naming it" {
    # The worker's ACL user can claim but not write terminal records.
    rcli acl setuser w on '>pw' '~*' '&*' +@all -hsetnx >/dev/null
    three p
    # The worker is up before the run: the bound starts with its give-up.
    mkdir -p "$T/home-w"
    HOME=$T/home-w timeout "$(scaled 30)" "$PR" worker \
        --redis "unix://w:pw@$T/q.sock" --lease 1s > "$T/w.log" 2>&1 &
    wpid=$!
    echo "$wpid" > "$T/w.pid"
    wait_until -t 30 registered 1
    start_run p --worker-wait "$(scaled 3)s"
    wst=0
    wait "$wpid" || wst=$?
    cat "$T/w.log"
    [ "$wst" -eq 3 ]
    st=0
    wait "$runpid" || st=$?
    cat "$T/run.out"
    [ "$st" -eq 3 ]
    grep -q "worker [^ ]* on [^ ]* gave up on run [^ ]*: completion of t [0-9]* refused: .*can.t run this command" "$T/run.out"
    grep -q "^parallelrun: no live worker within $(scaled 3)s; worker [^ ]* on [^ ]* gave up: completion of t" "$T/run.out"
    ! grep -q ":pw@" "$T/run.out"
    [ "$(done_count)" -eq 0 ]
}

@test "giveup: maxmemory stops the only worker and refuses its record: the run fails naming OOM, never 'no worker took any'" {
    job o <<EOF
tasks:
  t:
    run: sh -c 'echo {item} >> $T/started; $GATE wait $T/go'
    foreach: {range: [0, 3]}
EOF
    start_worker a --slots 3 --lease 1s
    wait_until -t 30 registered 1
    start_run o --worker-wait "$(scaled 3)s"
    wait_until -t 30 started_at_least 3
    /usr/bin/python3 -c '
import sys
v = "x" * 1000
for i in range(3000):
    sys.stdout.write("SET fill:%d %s\r\n" % (i, v))' | rcli >/dev/null
    rcli config set maxmemory-policy noeviction >/dev/null
    rcli config set maxmemory 1mb >/dev/null
    "$GATE" open "$T/go"
    st=0
    wait "$runpid" || st=$?
    rcli config set maxmemory 0 >/dev/null
    cat "$T/run.out" "$T/a.log"
    [ "$st" -eq 3 ]
    grep -q "cannot record why this worker gave up: .*OOM" "$T/a.log"
    grep -q "OOM command not allowed" "$T/run.out"
    grep -q "no live worker on $URL for $(scaled 3)s" "$T/run.out"
    ! grep -q "no worker took any instance" "$T/run.out"
    [ "$(done_count)" -eq 0 ]
}

@test "giveup: a host that cannot load the job: the run names the loader's reason and fails" {
    three h
    # The worker is up (and held still) before the run; it looks at the
    # run only once this host's copy of the job file differs from the
    # run's.
    start_worker a
    wait_until -t 30 registered 1
    kill -STOP "$(cat "$T/a.pid")"
    start_run h --worker-wait "$(scaled 4)s"
    wait_until -t 30 queued
    printf 'tasks:\n  t:\n    runn: x\n' > "$T/h.yaml"
    kill -CONT "$(cat "$T/a.pid")"
    wait_until -t 30 run_said "gave up on run"
    st=0
    wait "$runpid" || st=$?
    cat "$T/run.out" "$T/a.log"
    [ "$st" -eq 1 ]
    grep -q "worker [^ ]* on [^ ]* gave up on run [^ ]*: .*h.yaml:3:5: unknown key 'runn'" "$T/run.out"
    grep -q "no live worker within $(scaled 4)s; worker [^ ]* on [^ ]* gave up: .*unknown key" "$T/run.out"
    # The worker lives on for other runs; it started nothing of this one.
    alive "$(cat "$T/a.pid")"
    [ ! -e "$T/started" ]
}

@test "giveup: instances held under a lease wait for it; a worker that comes after the bound but before the lease ends finishes the run" {
    job l <<EOF
tasks:
  t:
    run: sh -c 'echo {item} >> $T/started; timeout 30 $GATE wait $T/go'
    foreach: {range: [0, 3]}
EOF
    # --worker-wait is far shorter than the lease: the lease decides.
    start_worker a --slots 3 --lease "$(scaled 10)s"
    wait_until -t 30 registered 1
    start_run l --worker-wait 1s
    wait_until -t 30 started_at_least 3
    kill -9 "$(cat "$T/a.pid")"
    # Its heartbeat expires, the notice comes; the leases still hold.
    wait_until -t 30 run_said "no live worker on $URL"
    alive "$runpid"
    start_worker b --slots 3 --lease 1s
    "$GATE" open "$T/go"
    st=0
    wait "$runpid" || st=$?
    cat "$T/run.out"
    [ "$st" -eq 0 ]
    [ "$(done_count)" -eq 3 ]
}

@test "giveup: --worker-wait is checked: a bad duration, or without --distributed, is a usage error" {
    three u
    st=0
    "$PR" run "$T/u.yaml" --redis "$URL" --distributed --worker-wait soon \
        > "$T/out" 2>&1 || st=$?
    cat "$T/out"
    [ "$st" -eq 2 ]
    grep -q "worker-wait: expected a duration" "$T/out"
    st=0
    "$PR" run "$T/u.yaml" --worker-wait 5s > "$T/out" 2>&1 || st=$?
    [ "$st" -eq 2 ]
    grep -q "needs --distributed" "$T/out"
    [ ! -e "$T/started" ]
}
