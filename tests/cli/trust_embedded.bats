#!/usr/bin/env bats
# The embedded redis-server: one place per user whatever the environment,
# a keeper that stops it after a short linger (also when its last runner
# was killed), a heartbeat TTL as documented, a log that does not grow
# without bound, and a warning when the state cannot be saved.

load helpers

setup() {
    common_setup
    # The state (and so the embedded server) of this test alone; without
    # it the server would live in the passwd home of the user.
    export PARALLELRUN_STATE_DIR=$HOME/.local/state/parallelrun
    export PARALLELRUN_EMBEDDED_LINGER=0
    export XDG_RUNTIME_DIR=$T/xdg PARALLELRUN_SHM_BASE=$T/shm
    mkdir -p "$XDG_RUNTIME_DIR" "$PARALLELRUN_SHM_BASE"
    F=${PRUN_TIME_FACTOR:-1}
}

teardown() {
    # Only the keeper and server of this test's state directory, by pid.
    local d
    for d in "$PARALLELRUN_STATE_DIR" "${MNT:+$MNT/state}"; do
        [ -n "$d" ] || continue
        for f in "$d/run/redis.keeper" "$d/run/redis.pid"; do
            [ -s "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
        done
    done
    if [ -n "${MNT:-}" ]; then
        umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
    fi
    common_teardown
}

keeper_pid() {
    local f=${1:-$PARALLELRUN_STATE_DIR}/run/redis.keeper
    [ -s "$f" ] && alive "$(cat "$f")" && cat "$f"
}

# new_keeper OLD: a live keeper other than OLD looks after the server.
new_keeper() {
    local k
    k=$(keeper_pid) && [ "$k" != "$1" ]
}

server_pid() {
    local f=${1:-$PARALLELRUN_STATE_DIR}/run/redis.pid
    [ -s "$f" ] && alive "$(cat "$f")" && cat "$f"
}

# wait_gone PID [TENTHS]: waits until PID has exited (default 10 s).
wait_gone() {
    local i
    for ((i = 0; i < ${2:-100} * F; i++)); do
        alive "$1" || return 0
        sleep 0.1
    done
    return 1
}

run_state() { # RID -> the run's state as status --json says
    "$PR" status "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["run"]["state"])'
}

@test "embedded: lock: true excludes a run from cron's environment (no XDG, other HOME)" {
    mkfifo "$T/release"
    job nightly <<EOF
lock: true
tasks:
  t:
    run: [sh, -c, 'touch $T/started; cat $T/release']
EOF
    # A login shell: XDG_RUNTIME_DIR and XDG_STATE_HOME set.
    XDG_STATE_HOME=$T/xdgstate "$PR" run "$T/nightly.yaml" >/dev/null 2>&1 &
    runner=$!
    wait_exists "$T/started" $((100 * F))
    # cron: neither variable, and a HOME of its own.
    mkdir -p "$T/cronhome"
    run timeout $((30 * F)) env -u XDG_RUNTIME_DIR -u XDG_STATE_HOME \
        HOME="$T/cronhome" "$PR" run "$T/nightly.yaml"
    [ "$status" -eq 75 ]
    [[ "$output" == *"lock"* ]]
    echo go > "$T/release"
    wait $runner
    # Both environments see the same record.
    run env -u XDG_RUNTIME_DIR HOME="$T/cronhome" "$PR" runs
    [ "$status" -eq 0 ]
    [ "$(echo "$output" | grep -c 'nightly.*succeeded')" -eq 1 ]
}

@test "embedded: the place comes from the passwd home directory, not HOME" {
    command -v setpriv >/dev/null || skip "setpriv missing"
    getent passwd nobody | grep -q ':/nonexistent:' || skip "nobody's home is not /nonexistent"
    [ ! -e /nonexistent ] || skip "/nonexistent exists"
    mkdir -p "$T/nobodyhome"
    chmod 777 "$T/nobodyhome"
    chmod 755 "$T"
    run timeout $((30 * F)) env -u PARALLELRUN_STATE_DIR HOME="$T/nobodyhome" \
        PARALLELRUN_CONFIG=/dev/null setpriv --reuid=65534 --regid=65534 \
        --clear-groups "$PR" runs
    [ "$status" -eq 3 ]
    [[ "$output" == *"'/nonexistent"* ]]
    [ ! -e "$T/nobodyhome/.local" ]
    # An explicit state directory must be absolute.
    PARALLELRUN_STATE_DIR=relative/dir run "$PR" runs
    [ "$status" -ne 0 ]
    [[ "$output" == *"PARALLELRUN_STATE_DIR"*"absolute"* ]]
}

@test "embedded: kill -9 of the only runner stops the server; lost after the 6 s heartbeat TTL" {
    job hold <<EOF
tasks:
  t:
    run: [sh, -c, 'touch $T/started; exec sleep 300']
EOF
    "$PR" run "$T/hold.yaml" >/dev/null 2>&1 &
    runner=$!
    wait_exists "$T/started" $((100 * F))
    spid=$(server_pid)
    kpid=$(keeper_pid)
    [ -n "$spid" ] && [ -n "$kpid" ]
    rid=$("$PR" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["run"]["run_id"])')
    # The heartbeat key's TTL is the documented 6 s.
    ttl=$(redis-cli -s "$PARALLELRUN_STATE_DIR/run/redis.sock" PTTL "parallelrun:{$rid}:alive")
    [ "$ttl" -gt 3000 ] && [ "$ttl" -le 6000 ]
    kill -9 $runner
    # No later command needed: the keeper sees the last user go.
    wait_gone "$spid"
    wait_gone "$kpid"
    [ ! -e "$PARALLELRUN_STATE_DIR/run/redis.sock" ]
    # Its data was saved: the run is there, and shown lost once the
    # heartbeat has expired.
    for ((i = 0; i < 100 * F; i++)); do
        st=$(run_state "$rid")
        [ "$st" = lost ] && break
        sleep 0.2
    done
    [ "$st" = lost ]
}

@test "embedded: the server lingers between commands, then stops by itself" {
    export PARALLELRUN_EMBEDDED_LINGER=300s
    job quick <<EOF
tasks:
  t:
    run: [/bin/true]
EOF
    run "$PR" run "$T/quick.yaml"
    [ "$status" -eq 0 ]
    spid=$(server_pid)
    [ -n "$spid" ]
    run "$PR" runs
    [ "$status" -eq 0 ]
    [[ "$output" == *quick*succeeded* ]]
    run "$PR" run "$T/quick.yaml"
    [ "$status" -eq 0 ]
    # The same server served all three commands.
    [ "$(server_pid)" = "$spid" ]
    # A user without linger stops it at once, and the next command starts
    # a new one (its keeper must not be left waiting for the lock).
    PARALLELRUN_EMBEDDED_LINGER=0 run "$PR" runs
    [ "$status" -eq 0 ]
    wait_gone "$spid"
    run timeout $((8 * F)) "$PR" runs
    [ "$status" -eq 0 ]
    spid=$(server_pid)
    [ -n "$spid" ]
    # A short linger: the next user's leaving starts it, then it stops.
    PARALLELRUN_EMBEDDED_LINGER=1s run "$PR" runs
    [ "$status" -eq 0 ]
    kpid=$(keeper_pid)
    wait_gone "$spid"
    wait_gone "$kpid"
    # The data of all of it was saved.
    run "$PR" runs
    [ "$(echo "$output" | grep -c 'quick.*succeeded')" -eq 2 ]
}

@test "embedded: a server whose keeper was killed is adopted, not doubled" {
    export PARALLELRUN_EMBEDDED_LINGER=300s
    run "$PR" runs
    [ "$status" -eq 0 ]
    spid=$(server_pid)
    kpid=$(keeper_pid)
    kill -9 "$kpid"
    wait_gone "$kpid"
    # Its lock goes when its last thread has exited, which can be after
    # ps shows the leader as a zombie: wait for the lock itself.
    wait_until flock -n -s "$PARALLELRUN_STATE_DIR/run/redis.keeper" true
    run "$PR" runs
    [ "$status" -eq 0 ]
    # The same server, looked after by a new keeper (which writes its pid
    # file once it has adopted the server: wait for that event).
    [ "$(server_pid)" = "$spid" ]
    wait_until new_keeper "$kpid"
    k2=$(keeper_pid)
    [ -n "$k2" ] && [ "$k2" != "$kpid" ]
    # Without a linger the last user stops it before returning.
    PARALLELRUN_EMBEDDED_LINGER=0 run "$PR" runs
    [ "$status" -eq 0 ]
    wait_gone "$spid"
}

@test "embedded: redis.log is rotated instead of growing forever" {
    d=$PARALLELRUN_STATE_DIR
    mkdir -p "$d"
    chmod 700 "$d"
    head -c 600000 /dev/zero | tr '\0' x > "$d/redis.log"
    run "$PR" runs
    [ "$status" -eq 0 ]
    [ "$(stat -c %s "$d/redis.log.1")" -eq 600000 ]
    [ "$(stat -c %s "$d/redis.log")" -lt 100000 ]
}

@test "embedded: a full state directory is reported when the run ends" {
    MNT=$T/full
    mkdir -p "$MNT"
    mount -t tmpfs -o size=1m,mode=0700 tmpfs "$MNT" 2>/dev/null || {
        MNT=
        skip "cannot mount a tmpfs here"
    }
    export PARALLELRUN_STATE_DIR=$MNT/state PARALLELRUN_EMBEDDED_LINGER=300s
    job small <<EOF
tasks:
  t:
    run: [/bin/true]
EOF
    run "$PR" run "$T/small.yaml"
    [ "$status" -eq 0 ]
    [[ "$output" != *"cannot save"* ]]
    # Fill it (bounded by the tmpfs's size).
    dd if=/dev/zero of="$MNT/fill" bs=64k 2>/dev/null || true
    run "$PR" run "$T/small.yaml"
    # The run itself succeeded, and says its state will not be kept.
    [ "$status" -eq 0 ]
    [[ "$output" == *"cannot save its data in $MNT/state"* ]]
    [[ "$output" == *"bytes free"* ]]
    # So do status and runs, as long as it lasts.
    run "$PR" runs
    [ "$status" -eq 0 ]
    [[ "$output" == *"cannot save its data in $MNT/state"* ]]
    [[ "$output" == *small*succeeded* ]]
}
