#!/usr/bin/env bats
# Faults: the runner killed outright, stop signals against stubborn
# children, escaping grandchildren, descriptor limits, a full results disk.
# Every test is bounded in time and cleans up after itself.

load helpers

setup() { common_setup; }
teardown() {
    [ -n "${MNT:-}" ] && umount "$MNT" 2>/dev/null
    common_teardown
}

# run_state RID: the state status reports for run RID.
run_state() {
    "$PR" status "$1" --json |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["run"]["state"])'
}

# run_is STATE RID: true if status reports run RID in STATE.
run_is() {
    [ "$(run_state "$2")" = "$1" ]
}

@test "kill -9 of the runner: children and grandchildren gone promptly" {
    job k9 <<EOF
segments:
  buf: {size: 1MiB, writable: true}
tasks:
  t:
    foreach: {range: [0, 3]}
    segments: [buf]
    run: [sh, -c, 'sleep 1000 & echo \$! > $T/gc\$PARALLELRUN_INDEX.pid; echo \$\$ > $T/c\$PARALLELRUN_INDEX.pid; "\$PARALLELRUN_BIN" segment publish p\$PARALLELRUN_INDEX /etc/hostname; wait']
EOF
    "$PR" run "$T/k9.yaml" -j 3 >/dev/null 2>&1 &
    runner=$!
    for i in 0 1 2; do
        wait_for "$T/gc$i.pid"
        wait_for "$T/c$i.pid"
        wait_until compgen -G "$PARALLELRUN_SHM_BASE/parallelrun-*/p$i"
    done
    rid=$("$PR" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["run"]["run_id"])')
    kill -9 $runner
    wait $runner || true
    # The guardian stops them as soon as the runner is gone (the bound is
    # only there so a failure does not hang the suite).
    for i in 0 1 2; do
        wait_gone "$(cat "$T/gc$i.pid")" 5
        wait_gone "$(cat "$T/c$i.pid")" 5
    done
    # The guardian removes the published segments the runner could not.
    wait_until -t 5 test ! -e "$PARALLELRUN_SHM_BASE/parallelrun-$rid"
    run "$PR" gc
    [ "$status" -eq 0 ]
    # Its heartbeat expires: the run shows as lost.
    wait_until -t 30 run_is lost "$rid"
    run "$PR" status "$rid"
    [[ "$output" == *"lost"*"stopped sending heartbeats"* ]]
    # status was the last user of the embedded server: nothing stays up.
    [ -z "$(embedded_pid)" ]
}

@test "SIGINT: children ignoring SIGTERM are killed after kill_grace" {
    job stubborn <<EOF
defaults:
  kill_grace: 300ms
tasks:
  t:
    foreach: {range: [0, 2]}
    run: [sh, -c, 'trap "" TERM INT; echo \$\$ > $T/s\$PARALLELRUN_INDEX.pid; while :; do sleep 0.05; done']
EOF
    "$PR" run "$T/stubborn.yaml" -j 2 >"$T/out" 2>&1 &
    runner=$!
    wait_for "$T/s0.pid"
    wait_for "$T/s1.pid"
    start=$(date +%s%N)
    kill -INT $runner
    rc=0
    wait $runner || rc=$?
    [ $rc -eq 130 ]
    ! alive "$(cat "$T/s0.pid")"
    ! alive "$(cat "$T/s1.pid")"
    # It waited out the grace period, and not much more.
    ms=$((($(date +%s%N) - start) / 1000000))
    [ $ms -ge 250 ]
}

@test "a second Ctrl-C kills at once" {
    job stubborn <<EOF
defaults:
  kill_grace: 60s
tasks:
  t:
    run: [sh, -c, 'trap "touch $T/term" TERM; trap "" INT; echo \$\$ > $T/s.pid; while :; do sleep 0.05; done']
EOF
    "$PR" run "$T/stubborn.yaml" >/dev/null 2>&1 &
    runner=$!
    wait_for "$T/s.pid"
    kill -INT $runner
    # The first Ctrl-C reached the child as SIGTERM, which it survives.
    wait_exists "$T/term"
    alive "$(cat "$T/s.pid")"
    kill -INT $runner
    rc=0
    wait $runner || rc=$?
    [ $rc -eq 130 ]
    ! alive "$(cat "$T/s.pid")"
}

@test "double-forked grandchildren are reached through the process group" {
    job dfork <<EOF
tasks:
  t:
    timeout: 300ms
    kill_grace: 200ms
    run: [sh, -c, '(sleep 1000 & echo \$! > $T/orphan.pid) & wait; sleep 30']
EOF
    run "$PR" run "$T/dfork.yaml"
    [ "$status" -eq 1 ]
    wait_for "$T/orphan.pid"
    ! alive "$(cat "$T/orphan.pid")"
}

@test "setsid grandchildren: stopped when the run ends (documented limit: not after kill -9)" {
    job escape <<EOF
tasks:
  t:
    run: [sh, -c, 'setsid sleep 1000 & echo \$! > $T/escaped.pid']
  later:
    needs: [t]
    run: [sleep, "0.2"]
EOF
    run "$PR" run "$T/escape.yaml"
    [ "$status" -eq 0 ]
    wait_for "$T/escaped.pid"
    # It left the process group, but not the runner's descendants.
    ! alive "$(cat "$T/escaped.pid")"
}

@test "2,000 instances at -j 64 with a low fd limit: no descriptor runs out" {
    # 2,000 children at 64 at a time reuse every slot 30 times over: a
    # descriptor leaked per child would exhaust the 128 fds long before.
    job many <<EOF
tasks:
  t:
    foreach: {range: [0, 2000]}
    run: [/bin/true]
EOF
    run bash -c "ulimit -Sn 128; '$PR' run '$T/many.yaml' -j 64 --json"
    [ "$status" -eq 0 ]
    [[ "$output" == *'"succeeded":2000'* ]]
    # A hard limit too low for -j 64: fewer at once, and it says so.
    run bash -c "ulimit -Sn 150; ulimit -Hn 150; '$PR' run '$T/many.yaml' -j 64"
    [ "$status" -eq 0 ]
    [[ "$output" == *"open file limit 150 allows 21 children at once, not 64"* ]]
}

@test "results disk full: the run finishes, exits 3 and names the file" {
    [ "$(id -u)" = 0 ] || skip "needs root to mount a small tmpfs"
    MNT=$T/small
    mkdir -p "$MNT"
    mount -t tmpfs -o size=256k tmpfs "$MNT" || skip "cannot mount tmpfs"
    job full <<EOF
tasks:
  t:
    foreach: {range: [0, 4]}
    run: [sh, -c, 'head -c 200000 /dev/zero | tr "\\0" x; echo done-\$PARALLELRUN_INDEX >&2']
EOF
    run "$PR" run "$T/full.yaml" --results "$MNT/r" -j 1
    [ "$status" -eq 3 ]
    [[ "$output" == *"No space left on device"* ]]
    [[ "$output" == *"$MNT/r/"* ]]
    [[ "$output" == *"done-3"* ]]
}

@test "the runtime directory and published segments are private" {
    job priv <<EOF
tasks:
  t:
    run: [sh, -c, '"\$PARALLELRUN_BIN" segment publish s /etc/hostname; stat -c "%a %n" "\$PARALLELRUN_SHM_DIR" "\$PARALLELRUN_SHM_DIR/s"; stat -c %a "\$(dirname "\${{PARALLELRUN_REDIS#unix://}}")"']
EOF
    run "$PR" run "$T/priv.yaml"
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == "700 $PARALLELRUN_SHM_BASE/parallelrun-"* ]]
    [[ "${lines[1]}" == "400 $PARALLELRUN_SHM_BASE/parallelrun-"*"/s" ]]
    [ "${lines[2]}" = 700 ]
}
