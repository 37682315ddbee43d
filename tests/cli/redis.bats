#!/usr/bin/env bats
# Redis coordination through the real binary and a real redis-server: the
# embedded default, status/runs/cancel from another shell, resume, the job
# lock, and Redis going away mid-run.

load helpers

# HOLD: a child's command that holds until the test creates $T/release:
# the test decides when children end, so nothing depends on how fast they
# start.
setup() {
    common_setup
    HOLD="until [ -e $T/release ]; do sleep 0.05; done"
}
teardown() { common_teardown; }

# count_at_least N PATTERN: at least N paths match the glob PATTERN.
count_at_least() {
    local -a m
    m=($(compgen -G "$2"))
    [ "${#m[@]}" -ge "$1" ]
}

@test "embedded Redis: started, unix socket only, stopped with its data kept" {
    job one <<EOF
tasks:
  t:
    foreach: {range: [0, 3]}
    run: [sh, -c, 'echo \$PARALLELRUN_REDIS > $T/url.\$PARALLELRUN_INDEX; $HOLD']
EOF
    "$PR" run "$T/one.yaml" &
    runner=$!
    wait_for "$T/url.0"
    pid=$(embedded_pid)
    [ -n "$pid" ]
    # No TCP port: the server listens on its unix socket only.
    [ -z "$(ss -ltnp 2>/dev/null | grep "pid=$pid,")" ]
    [[ "$(cat "$T/url.0")" == unix://*/redis.sock ]]
    sock=${pid:+$(cat "$T/url.0")}
    sock=${sock#unix://}
    [ "$(stat -c %a "$(dirname "$sock")")" = 700 ]
    [ "$(stat -c %a "$sock")" = 700 ]
    touch "$T/release"
    wait $runner
    # Stopped when the run ended, data saved for status.
    [ -z "$(embedded_pid)" ]
    ! alive "$pid"
    [ -s "$HOME/.local/state/parallelrun/dump.rdb" ]
    run "$PR" status
    [ "$status" -eq 0 ]
    [[ "$output" == *"one  succeeded (exit 0)"* ]]
    [ -z "$(embedded_pid)" ]
}

@test "embedded Redis: concurrent runs share one server, the last stops it" {
    job slow <<EOF
tasks:
  t:
    run: [sh, -c, 'touch $T/started.\$PARALLELRUN_RUN_ID; $HOLD']
EOF
    job fast <<EOF
tasks:
  t:
    run: [sh, -c, 'sleep 0.2']
EOF
    "$PR" run "$T/slow.yaml" &
    a=$!
    wait_until compgen -G "$T/started.*"
    pid=$(embedded_pid)
    [ -n "$pid" ]
    "$PR" run "$T/fast.yaml"
    # The fast run ended first: the server must still serve the slow one.
    [ "$(embedded_pid)" = "$pid" ]
    touch "$T/release"
    wait $a
    [ -z "$(embedded_pid)" ]
    ! alive "$pid"
    run "$PR" runs
    [ "$status" -eq 0 ]
    [ "$(echo "$output" | grep -c succeeded)" -eq 2 ]
}

# status_lists REGEX...: the output of status matches every REGEX.
status_lists() {
    local out re
    out=$("$PR" status) || return 1
    for re in "$@"; do
        grep -qE "$re" <<<"$out" || return 1
    done
}

@test "status from another shell during the run and after it" {
    job watch <<EOF
tasks:
  work:
    foreach: {range: [0, 6]}
    run: [sh, -c, 'if [ \$PARALLELRUN_INDEX = 5 ]; then echo "bad input" >&2; exit 4; fi; touch $T/r.\$PARALLELRUN_INDEX; $HOLD']
EOF
    "$PR" run "$T/watch.yaml" -j 2 >/dev/null 2>&1 &
    runner=$!
    wait_exists "$T/r.1"
    # Attempts are listed once they have run a heartbeat tick (500 ms).
    wait_until status_lists 'work\[0\].*pid ' 'work\[1\]'
    run "$PR" status
    [ "$status" -eq 0 ]
    [[ "$output" == *"watch  running"* ]]
    [[ "$output" == *"work[0]"*"pid "* ]]
    [[ "$output" == *"work[1]"* ]]
    run "$PR" status --json
    [ "$status" -eq 0 ]
    echo "$output" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["run"]["state"] == "running", d
assert d["run"]["total"] == 6
assert len(d["running"]) == 2, d["running"]
assert {r["index"] for r in d["running"]} == {0, 1}'
    touch "$T/release"
    wait $runner || true
    run "$PR" status --json
    echo "$output" | python3 -c '
import json, sys
d = json.load(sys.stdin)
r = d["run"]
assert r["state"] == "failed" and r["exit_code"] == 1, r
assert r["succeeded"] == 5 and r["failed"] == 1 and r["running"] == 0
f = d["failures"][0]
assert f["task"] == "work" and f["index"] == 5 and f["status"] == 4
assert "bad input" in f["stderr_tail"]
assert d["tasks"]["work"]["failed"] == 1'
}

@test "cancel stops a run as Ctrl-C does" {
    job long <<EOF
tasks:
  t:
    foreach: {range: [0, 3]}
    run: [sh, -c, 'echo \$\$ > $T/c\$PARALLELRUN_INDEX.pid; exec sleep 60']
EOF
    "$PR" run "$T/long.yaml" -j 3 >"$T/out" 2>&1 &
    runner=$!
    for i in 0 1 2; do wait_for "$T/c$i.pid"; done
    rid=$("$PR" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["run"]["run_id"])')
    run "$PR" cancel "$rid"
    [ "$status" -eq 0 ]
    [[ "$output" == "cancelling run $rid"* ]]
    rc=0
    wait $runner || rc=$?
    [ $rc -eq 130 ]
    for i in 0 1 2; do ! alive "$(cat "$T/c$i.pid")"; done
    run "$PR" status "$rid"
    [[ "$output" == *"stopped"* ]]
    run "$PR" cancel "$rid"
    [ "$status" -eq 1 ]
    [[ "$output" == *"is not running"* ]]
    run "$PR" cancel no-such-run
    [ "$status" -eq 1 ]
}

@test "--resume runs only what did not succeed, matched by item value" {
    printf 'a\nb\nc\nd\n' > "$T/items"
    job res <<EOF
tasks:
  t:
    foreach: {lines: "$T/items"}
    run: [sh, -c, 'echo "\$1" >> $T/ran; [ "\$1" != c ] || [ -e $T/fixed ]', s, "{item}"]
EOF
    run "$PR" run "$T/res.yaml" --json
    [ "$status" -eq 1 ]
    rid=$(echo "$output" | head -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["run_id"])')
    touch "$T/fixed"
    : > "$T/ran"
    # Reordered input: resume must still skip a, b and d.
    printf 'd\nc\nb\na\n' > "$T/items"
    run "$PR" run "$T/res.yaml" --resume "$rid" --json
    [ "$status" -eq 0 ]
    [ "$(cat "$T/ran")" = c ]
    echo "$output" | head -1 | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["instances"]["succeeded"] == 4, d'
    rid2=$(echo "$output" | head -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["run_id"])')
    # A resume of the resumed run has nothing left to do.
    : > "$T/ran"
    run "$PR" run "$T/res.yaml" --resume "$rid2"
    [ "$status" -eq 0 ]
    [ ! -s "$T/ran" ]
    run "$PR" run "$T/res.yaml" --resume nope
    [ "$status" -eq 2 ]
    [[ "$output" == *"no run 'nope'"* ]]
}

@test "--resume last resumes the job's newest run; status JOB shows it" {
    job other <<EOF
tasks:
  t: {run: ["true"]}
EOF
    job lr <<EOF
name: lastjob
tasks:
  t:
    foreach: {list: [a, b, c]}
    run: [sh, -c, 'echo "\$1" >> $T/ran; [ "\$1" != b ] || [ -e $T/fixed ]', s, "{item}"]
EOF
    # No run of this job yet: nothing to resume, nothing started.
    run "$PR" run "$T/lr.yaml" --resume last
    [ "$status" -eq 2 ]
    [[ "$output" == *"--resume last: no run of job 'lastjob' is recorded"* ]]
    [ ! -e "$T/ran" ]
    run "$PR" status lastjob
    [ "$status" -eq 1 ]
    [[ "$output" == *"no run 'lastjob' and no run of a job named 'lastjob'"* ]]

    run "$PR" run "$T/lr.yaml" --json
    [ "$status" -eq 1 ]
    rid=$(echo "$output" | head -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["run_id"])')
    # A newer run of another job is not "last" for this one.
    run "$PR" run "$T/other.yaml"
    [ "$status" -eq 0 ]
    touch "$T/fixed"
    : > "$T/ran"
    run "$PR" run "$T/lr.yaml" --resume last
    [ "$status" -eq 0 ]
    [[ "$output" == *"resuming run $rid, the latest of job 'lastjob'"* ]]
    [ "$(cat "$T/ran")" = b ]

    # status JOB: that job's newest run, the resumed one.
    run "$PR" status lastjob
    [ "$status" -eq 0 ]
    [[ "$output" == *"lastjob  succeeded"* ]]
    [[ "$output" == *"resumed from $rid"* ]]
    # A run id still works, and wins over a job of the same name.
    run "$PR" status "$rid"
    [ "$status" -eq 1 ]
    [[ "$output" == "run $rid  lastjob  failed"* ]]
    job clash <<EOF
name: $rid
tasks:
  t: {run: ["true"]}
EOF
    run "$PR" run "$T/clash.yaml"
    [ "$status" -eq 0 ]
    run "$PR" status "$rid"
    [ "$status" -eq 1 ]
    [[ "$output" == *"'$rid' is a run id and a job name: showing that run"* ]]
    [[ "$output" == *"run $rid  lastjob  failed"* ]]
}

@test "lock: true refuses a concurrent run with exit 75 naming the holder" {
    job cron <<EOF
name: nightly
lock: true
tasks:
  t:
    run: [sh, -c, 'touch $T/holding; $HOLD']
EOF
    "$PR" run "$T/cron.yaml" &
    first=$!
    wait_exists "$T/holding"
    run "$PR" run "$T/cron.yaml"
    [ "$status" -eq 75 ]
    [[ "$output" == *"job 'nightly' is locked by run "*"(host $(hostname), pid $first)"* ]]
    touch "$T/release"
    wait $first
    # Released at the end: the next run goes through.
    run "$PR" run "$T/cron.yaml" --quiet
    [ "$status" -eq 0 ]
    [ -z "$output" ]
}

@test "lock: true is released when the holder is killed" {
    job cron <<EOF
name: nightly2
lock: true
tasks:
  t:
    run: [sh, -c, 'touch $T/holding; sleep 30']
EOF
    start_redis ext
    url=unix://$T/ext.sock
    "$PR" run "$T/cron.yaml" --redis "$url" &
    first=$!
    wait_exists "$T/holding"
    kill -9 $first
    wait $first || true
    rm -f "$T/holding"
    job quick <<EOF
name: nightly2
lock: true
tasks:
  t:
    run: ["true"]
EOF
    run "$PR" run "$T/quick.yaml" --redis "$url"
    [ "$status" -eq 0 ]
    # The killed run shows as lost once its heartbeat expires; here its
    # alive key is still fresh, so it still says running or lost.
    run "$PR" runs --redis "$url"
    [[ "$output" == *"nightly2"* ]]
}

@test "an unreachable Redis is exit 3 with the address, nothing started" {
    job t <<EOF
tasks:
  t:
    run: [touch, "$T/ran"]
EOF
    run "$PR" run "$T/t.yaml" --redis "unix://$T/none.sock"
    [ "$status" -eq 3 ]
    [[ "$output" == *"cannot connect to Redis at unix://$T/none.sock"* ]]
    [ ! -e "$T/ran" ]
    run "$PR" run "$T/t.yaml" --redis "redis://127.0.0.1:1/0"
    [ "$status" -eq 3 ]
    [[ "$output" == *"127.0.0.1:1"*"refused"* ]]
    run "$PR" run "$T/t.yaml" --redis "http://x"
    [ "$status" -eq 2 ]
    run "$PR" run "$T/t.yaml" --redis off
    [ "$status" -eq 0 ]
    [ -e "$T/ran" ]
}

@test "a password goes through AUTH, never argv, and children get it apart" {
    start_redis pw --requirepass s3cret-pw
    url=unix://$T/pw.sock
    job pw <<EOF
tasks:
  t:
    run: [sh, -c, 'echo "\$PARALLELRUN_REDIS" > $T/url; ps -eo args > $T/ps; sleep 0.2']
EOF
    run "$PR" run "$T/pw.yaml" --redis "$url"
    [ "$status" -eq 3 ]
    [[ "$output" == *"needs a password"* ]]
    printf '[redis]\npassword = s3cret-pw\n' > "$PARALLELRUN_CONFIG"
    chmod 644 "$PARALLELRUN_CONFIG"
    run "$PR" run "$T/pw.yaml" --redis "$url"
    [ "$status" -eq 2 ]
    [[ "$output" == *"readable by others"* ]]
    chmod 600 "$PARALLELRUN_CONFIG"
    run "$PR" run "$T/pw.yaml" --redis "$url"
    [ "$status" -eq 0 ]
    [ "$(cat "$T/url")" = "$url" ]
    ! grep -q s3cret-pw "$T/ps"
    run "$PR" status --redis "$url"
    [[ "$output" == *"pw  succeeded"* ]]
}

@test "Redis killed and restarted mid-run: the run completes and state lands" {
    start_redis flaky --appendonly yes --appendfsync always
    url=unix://$T/flaky.sock
    job mid <<EOF
tasks:
  t:
    foreach: {range: [0, 12]}
    run: [sh, -c, 'touch $T/m.\$PARALLELRUN_INDEX; sleep 0.25']
EOF
    "$PR" run "$T/mid.yaml" -j 2 --redis "$url" >"$T/out" 2>&1 &
    runner=$!
    wait_exists "$T/m.1"
    kill -9 "$(cat "$T/flaky.pid")"
    # Children kept running and new ones kept starting without Redis.
    wait_until count_at_least 4 "$T/m.*"
    start_redis flaky --appendonly yes --appendfsync always
    rc=0
    wait $runner || rc=$?
    [ $rc -eq 0 ]
    [ "$(ls "$T" | grep -c '^m\.')" -eq 12 ]
    run "$PR" status --redis "$url" --json
    echo "$output" | python3 -c '
import json, sys
d = json.load(sys.stdin)["run"]
assert d["state"] == "succeeded" and d["succeeded"] == 12, d'
}

@test "Redis gone for good: the run still ends right and says state was lost" {
    start_redis gone
    url=unix://$T/gone.sock
    job gone <<EOF
tasks:
  t:
    foreach: {range: [0, 4]}
    run: [sh, -c, 'touch $T/g.\$PARALLELRUN_INDEX; $HOLD; exit \$((PARALLELRUN_INDEX == 2))']
EOF
    "$PR" run "$T/gone.yaml" -j 2 --redis "$url" >"$T/out" 2>&1 &
    runner=$!
    wait_exists "$T/g.0"
    kill -9 "$(cat "$T/gone.pid")"
    wait_gone "$(cat "$T/gone.pid")"
    touch "$T/release"
    rc=0
    wait $runner || rc=$?
    # Its state could not be recorded: exit 3, and the failure still named.
    [ $rc -eq 3 ]
    grep -q "t\[2\] '2': exit 1" "$T/out"
    grep -q "could not be written to Redis at $url" "$T/out"
}

@test "a published segment is registered in Redis with size, dtype, shape" {
    start_redis seg
    url=unix://$T/seg.sock
    printf 'abcdefgh' > "$T/data.bin"
    job pub <<EOF2
tasks:
  t:
    run: [sh, -c, '"\$PARALLELRUN_BIN" segment publish arr $T/data.bin --dtype "<i4" --shape 2 && echo "\$PARALLELRUN_RUN_ID" > $T/rid']
EOF2
    run "$PR" run "$T/pub.yaml" --redis "$url"
    [ "$status" -eq 0 ]
    rid=$(cat "$T/rid")
    run redis-cli -s "$T/seg.sock" hgetall "parallelrun:{$rid}:seg:arr"
    [[ "$output" == *"size"*"8"* ]]
    [[ "$output" == *"dtype"*"<i4"* ]]
    [[ "$output" == *"shape"*"2"* ]]
    ttl=$(redis-cli -s "$T/seg.sock" pttl "parallelrun:{$rid}:seg:arr")
    [ "$ttl" -gt 0 ]
}

@test "on a terminal: a progress line with the children's own progress" {
    job prog <<EOF2
tasks:
  t:
    foreach: {range: [0, 4]}
    run: [sh, -c, 'for i in 1 2 3 4 5 6; do "\$PARALLELRUN_BIN" progress \$i 6; done; until grep -qE "running: [0-9]+/12]" $T/tty || [ -e $T/release ]; do sleep 0.05; done']
EOF2
    # The children end once the progress line has shown their progress.
    script -qfec "$PR run $T/prog.yaml -j 2" "$T/tty" > /dev/null
    grep -q $'\r\e\\[K\\[' "$T/tty"
    grep -qE 'running: [0-9]+/12\]' "$T/tty"
    grep -q 'succeeded in' "$T/tty"
    # Not on a terminal: no progress line at all.
    touch "$T/release"
    run "$PR" run "$T/prog.yaml" -j 2
    [[ "$output" != *$'\e['* ]]
}

screens_at_least() {
    [ "$(grep -o $'\e\\[H\e\\[2J' "$T/tty" | wc -l)" -ge "$1" ]
}

@test "status --watch refreshes in place and stops when the run ends" {
    job w <<EOF2
tasks:
  t:
    foreach: {range: [0, 3]}
    run: [sh, -c, 'touch $T/w\$PARALLELRUN_INDEX; $HOLD']
EOF2
    "$PR" run "$T/w.yaml" -j 3 >/dev/null 2>&1 &
    runner=$!
    wait_exists "$T/w2"
    timeout "$(scaled 30)" script -qfec "$PR status --watch" "$T/tty" > /dev/null &
    watch=$!
    # Two screens drawn while the run goes on; then it ends, and so does
    # the watch.
    wait_until screens_at_least 2
    touch "$T/release"
    wait $runner
    wait $watch
    # Several screens, cleared in place, the last one final.
    [ "$(grep -o $'\e\\[H\e\\[2J' "$T/tty" | wc -l)" -ge 2 ]
    tail -c 2000 "$T/tty" | grep -q "w  succeeded"
}

@test "no redis-server to embed: a plain job runs with a note, a locked one fails" {
    job plain <<EOF2
tasks:
  t:
    run: [touch, "$T/ran"]
EOF2
    PARALLELRUN_REDIS_SERVER=$T/no-such-redis-server run "$PR" run "$T/plain.yaml"
    [ "$status" -eq 0 ]
    [ -e "$T/ran" ]
    [[ "$output" == *"note: running without status"*"redis-server not found"* ]]
    PARALLELRUN_REDIS_SERVER=$T/no-such-redis-server run "$PR" run "$T/plain.yaml" --quiet
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    job locked <<EOF2
lock: true
tasks:
  t:
    run: [touch, "$T/locked-ran"]
EOF2
    PARALLELRUN_REDIS_SERVER=$T/no-such-redis-server run "$PR" run "$T/locked.yaml"
    [ "$status" -eq 3 ]
    [[ "$output" == *"redis-server not found"* ]]
    [ ! -e "$T/locked-ran" ]
}

@test "a fully succeeded run keeps no done sets; resuming it runs nothing" {
    start_redis ok
    url=unix://$T/ok.sock
    job ok <<EOF2
tasks:
  t:
    foreach: {range: [0, 50]}
    run: [sh, -c, 'echo \$PARALLELRUN_INDEX >> $T/ran']
EOF2
    run "$PR" run "$T/ok.yaml" --redis "$url" --json
    [ "$status" -eq 0 ]
    rid=$(echo "$output" | head -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["run_id"])')
    [ "$(redis-cli -s "$T/ok.sock" exists "parallelrun:{$rid}:done:t")" = 0 ]
    : > "$T/ran"
    run "$PR" run "$T/ok.yaml" --redis "$url" --resume "$rid" --json
    [ "$status" -eq 0 ]
    [ ! -s "$T/ran" ]
    [[ "$output" == *'"succeeded":50'* ]]
}
