#!/usr/bin/env bats
# The runner core through the real binary: argv, environment, fds, process
# groups, exit statuses, timeouts, signals, retries, halting, dependencies.

load helpers

setup() { common_setup; }
teardown() { common_teardown; }

@test "--help and --version describe the tool" {
    run "$PR" --help
    [ "$status" -eq 0 ]
    [[ "$output" == *"usage: parallelrun run JOBFILE"* ]]
    [[ "$output" == *"--joblog FILE"* ]]
    run "$PR" --version
    [ "$status" -eq 0 ]
    [[ "$output" == "parallelrun "[0-9]* ]]
}

@test "usage errors exit 2 and name the problem" {
    run "$PR"
    [ "$status" -eq 2 ]
    [[ "$output" == *"missing command"* ]]
    run "$PR" frobnicate
    [ "$status" -eq 2 ]
    [[ "$output" == *"unknown command 'frobnicate'"* ]]
    run "$PR" run
    [ "$status" -eq 2 ]
    [[ "$output" == *"missing JOBFILE"* ]]
    run "$PR" run jobs/demo.yaml --bogus
    [ "$status" -eq 2 ]
    [[ "$output" == *"unknown option '--bogus'"* ]]
    run "$PR" run jobs/demo.yaml -j 0
    [ "$status" -eq 2 ]
    run "$PR" run "$T/nope.yaml"
    [ "$status" -eq 2 ]
    [[ "$output" == *"nope.yaml"* ]]
}

@test "the demo job runs: a shared array, arrays handed back, live status" {
    python_lib_ok
    PARALLELRUN_SHM_BASE=$T run "$PR" run jobs/demo.yaml --set data="$T/d.npy" --set mib=8
    [ "$status" -eq 0 ]
    [ "$(echo "$output" | grep -c '^read\[[0-3]\]: attached 8 MiB float64')" -eq 4 ]
    [[ "$output" == *"instances: 7 total"* ]]
    [[ "$output" == *"report: attached hist0..hist3 by name"* ]]
}

@test "list form passes items to argv literally, shell syntax included" {
    job lit <<EOF
tasks:
  t:
    foreach: {list: ['a b', '; rm -rf /tmp/x', '\$(touch $T/pwned)', '\`id\`', "x'y\"z"]}
    run: [$SHOWARGS, "{item}", "pre-{item}-post"]
EOF
    run "$PR" run "$T/lit.yaml" -j 1
    [ "$status" -eq 0 ]
    [[ "$output" == *"[a b]"* ]]
    [[ "$output" == *"[; rm -rf /tmp/x]"* ]]
    [[ "$output" == *'[$(touch '"$T"'/pwned)]'* ]]
    [[ "$output" == *'[`id`]'* ]]
    [[ "$output" == *"[x'y\"z]"* ]]
    [[ "$output" == *"[pre-a b-post]"* ]]
    [ ! -e "$T/pwned" ]
}

@test "string form runs /bin/sh with items quoted" {
    job sh <<EOF
tasks:
  t:
    foreach: {list: ['it''s; echo INJECTED', 'plain']}
    run: "printf '<%s>\\\\n' {item} | tr -d x"
EOF
    run "$PR" run "$T/sh.yaml" -j 1
    [ "$status" -eq 0 ]
    [[ "$output" == *"<it's; echo INJECTED>"* ]]
    [[ "$output" == *"<plain>"* ]]
    [[ "$output" != *$'\nINJECTED'* ]]
}

@test "a child sees the PARALLELRUN_* environment and task env" {
    job env <<EOF
defaults:
  env: {SHARED: "from-defaults", OVERRIDE: "no"}
tasks:
  work:
    foreach: {range: [5, 8]}
    env: {OVERRIDE: "yes-{item}"}
    run: [sh, -c, 'echo "\$PARALLELRUN_TASK/\$PARALLELRUN_INDEX/\$PARALLELRUN_COUNT/\$PARALLELRUN_ITEM/\$PARALLELRUN_ATTEMPT/\$SHARED/\$OVERRIDE/\${{PARALLELRUN_RUN_ID:+has-id}}"']
EOF
    run "$PR" run "$T/env.yaml" -j 2
    [ "$status" -eq 0 ]
    [[ "$output" == *"work/0/3/5/1/from-defaults/yes-5/has-id"* ]]
    [[ "$output" == *"work/1/3/6/1/from-defaults/yes-6/has-id"* ]]
    [[ "$output" == *"work/2/3/7/1/from-defaults/yes-7/has-id"* ]]
}

@test "a child gets only fds 0, 1 and 2, stdin from /dev/null" {
    job fds <<EOF
tasks:
  t:
    env: {PRUN_SHOW_FDS: "1"}
    run: [$SHOWARGS]
EOF
    # Leak an fd into the runner: it must not reach the child.
    exec 7>"$T/leak"
    run "$PR" run "$T/fds.yaml"
    exec 7>&-
    [ "$status" -eq 0 ]
    [ "$(echo "$output" | grep -c '^fd ')" -eq 3 ]
    [[ "$output" == *"fd 0"*"fd 1"*"fd 2"* ]]
    job stdin <<EOF
tasks:
  t:
    run: "cat; echo end"
EOF
    run bash -c "echo SHOULD-NOT-BE-SEEN | '$PR' run '$T/stdin.yaml'"
    [ "$status" -eq 0 ]
    [ "$output" = "end" ]
}

@test "each child leads its own process group" {
    job pg <<EOF
tasks:
  t:
    foreach: {range: [0, 3]}
    run: [sh, -c, 'echo "\$\$ \$(ps -o pgid= -p \$\$)"']
EOF
    run "$PR" run "$T/pg.yaml"
    [ "$status" -eq 0 ]
    [ "${#lines[@]}" -eq 3 ]
    for l in "${lines[@]}"; do
        set -- $l
        [ "$1" = "$2" ]
    done
}

@test "a program that cannot be run is reported, exit 127 recorded" {
    job noexec <<EOF
tasks:
  t:
    run: [no-such-program-xyz, arg]
  u:
    run: [./jobs/demo.yaml]
EOF
    run "$PR" run "$T/noexec.yaml" --joblog "$T/log"
    [ "$status" -eq 1 ]
    [[ "$output" == *"cannot run 'no-such-program-xyz': No such file or directory"* ]]
    [[ "$output" == *"cannot run './jobs/demo.yaml': Permission denied"* ]]
    [ "$(awk -F'\t' 'NR > 1 { print $7 }' "$T/log" | sort -u)" = "127" ]
}

@test "a failure exits 1 and the summary names instance, status and stderr" {
    job fail <<EOF
tasks:
  t:
    foreach: {list: [0, 3, 0]}
    run: [$EX/exit.sh, "{item}", "boom from {index}"]
EOF
    run "$PR" run "$T/fail.yaml"
    [ "$status" -eq 1 ]
    [[ "$output" == *"1 of 3 instances failed"* ]]
    [[ "$output" == *"t[1] '3': exit 3"* ]]
    [[ "$output" == *"      boom from 1"* ]]
}

@test "a child killed by a signal is reported with the signal name" {
    job sig <<EOF
tasks:
  t:
    run: [sh, -c, 'kill -SEGV \$\$']
EOF
    run "$PR" run "$T/sig.yaml" --joblog "$T/log"
    [ "$status" -eq 1 ]
    [[ "$output" == *"t[0]: killed by SIGSEGV"* ]]
    [ "$(awk -F'\t' 'NR == 2 { print $7 "/" $8 }' "$T/log")" = "0/11" ]
}

@test "timeout stops the whole process group, grandchildren included" {
    job to <<EOF
tasks:
  t:
    timeout: 300ms
    kill_grace: 200ms
    run: [$EX/grandchild.sh, "$T/gc.pid", "30"]
EOF
    run "$PR" run "$T/to.yaml"
    [ "$status" -eq 1 ]
    [[ "$output" == *"t[0]: timed out after 300ms"* ]]
    [ -s "$T/gc.pid" ]
    ! alive "$(cat "$T/gc.pid")"
}

@test "a child that ignores SIGTERM is killed after kill_grace" {
    job stubborn <<EOF
tasks:
  t:
    timeout: 200ms
    kill_grace: 300ms
    run: [sh, -c, 'trap "" TERM; echo \$\$ > $T/child.pid; while :; do sleep 0.05; done']
EOF
    run "$PR" run "$T/stubborn.yaml"
    [ "$status" -eq 1 ]
    [[ "$output" == *"timed out"* ]]
    ! alive "$(cat "$T/child.pid")"
}

@test "grandchildren left behind by a finished child are stopped" {
    job left <<EOF
tasks:
  t:
    run: [$EX/grandchild.sh, "$T/gc.pid", "0"]
  later:
    needs: [t]
    run: [sleep, "0.3"]
EOF
    run "$PR" run "$T/left.yaml"
    [ "$status" -eq 0 ]
    ! alive "$(cat "$T/gc.pid")"
}

@test "SIGINT stops every child and exits 130; SIGTERM exits 143" {
    for sig in INT TERM; do
        job sigint <<EOF
tasks:
  t:
    foreach: {range: [0, 4]}
    run: [$EX/grandchild.sh, "$T/gc-{index}.pid", "60"]
EOF
        rm -f "$T"/gc-*.pid
        "$PR" run "$T/sigint.yaml" -j 4 >"$T/out" 2>&1 &
        runner=$!
        for i in 0 1 2 3; do wait_for "$T/gc-$i.pid"; done
        kill -$sig $runner
        rc=0
        wait $runner || rc=$?
        if [ $sig = INT ]; then [ $rc -eq 130 ]; else [ $rc -eq 143 ]; fi
        grep -q "stopped by SIG$sig" "$T/out"
        for i in 0 1 2 3; do ! alive "$(cat "$T/gc-$i.pid")"; done
        # No child of the runner is left, not even a zombie.
        [ -z "$(ps -o pid= --ppid $runner 2>/dev/null)" ]
    done
}

@test "retries: a flaky child succeeds on its third attempt" {
    job flaky <<EOF
tasks:
  t:
    retries: 3
    retry_delay: 10ms
    run: [$EX/flaky.sh, "$T/state", "3"]
EOF
    run "$PR" run "$T/flaky.yaml" --json
    [ "$status" -eq 0 ]
    [ "$(cat "$T/state")" = "$(printf 'attempt 1\nattempt 2\nattempt 3')" ]
    [[ "$output" == *'"retried":2'* ]]
}

@test "retries run out: the last attempt is reported" {
    job never <<EOF
tasks:
  t:
    retries: 2
    retry_delay: 10ms
    run: [$EX/flaky.sh, "$T/state", "99"]
EOF
    run "$PR" run "$T/never.yaml"
    [ "$status" -eq 1 ]
    [ "$(wc -l < "$T/state")" -eq 3 ]
    [[ "$output" == *"t[0] (attempt 3): exit 1"* ]]
    [[ "$output" == *"not yet (attempt 3)"* ]]
}

@test "needs: a task starts only after every instance it needs succeeded" {
    job dag <<EOF
tasks:
  a:
    foreach: {range: [0, 4]}
    run: [sh, -c, 'sleep 0.1; echo a >> $T/order']
  b:
    needs: a
    run: [sh, -c, 'echo b >> $T/order']
  c:
    needs: [b]
    run: [sh, -c, 'echo c >> $T/order']
EOF
    run "$PR" run "$T/dag.yaml" -j 4
    [ "$status" -eq 0 ]
    [ "$(tr -d '\n' < "$T/order")" = "aaaabc" ]
}

@test "needs: when a needed task fails its dependents never start" {
    job dagfail <<EOF
tasks:
  a:
    run: ["false"]
  b:
    needs: [a]
    run: [touch, "$T/b-ran"]
EOF
    run "$PR" run "$T/dagfail.yaml"
    [ "$status" -eq 1 ]
    [ ! -e "$T/b-ran" ]
    [[ "$output" == *"b: 1 instance not started: a task it needs failed"* ]]
}

@test "jobs caps concurrency globally and per task" {
    job cap <<EOF
jobs: 3
tasks:
  t:
    foreach: {range: [0, 12]}
    run: [sh, -c, 'mkdir $T/run.\$PARALLELRUN_INDEX; ls -d $T/run.* | wc -l >> $T/seen; sleep 0.1; rmdir $T/run.\$PARALLELRUN_INDEX']
  u:
    jobs: 1
    foreach: {range: [0, 4]}
    run: [sh, -c, 'mkdir $T/u.lock || echo overlap >> $T/u-bad; sleep 0.05; rmdir $T/u.lock']
EOF
    run "$PR" run "$T/cap.yaml"
    [ "$status" -eq 0 ]
    [ "$(sort -n "$T/seen" | tail -1)" -le 3 ]
    [ ! -e "$T/u-bad" ]
    run "$PR" run "$T/cap.yaml" -j 1
    [ "$status" -eq 0 ]
}

@test "rate spaces out the starts of a task" {
    job rate <<EOF
tasks:
  t:
    rate: 20/s
    foreach: {range: [0, 6]}
    run: ["true"]
EOF
    run "$PR" run "$T/rate.yaml" -j 6 --joblog "$T/log"
    [ "$status" -eq 0 ]
    # Start times as the runner recorded them (ms): 6 starts at 20/s are
    # 5 intervals of 50 ms apart at least, where -j 6 alone would start
    # them all at once.
    span=$(awk -F'\t' 'NR > 1 { t = $3 * 1000; if (min == "" || t < min) min = t;
        if (t > max) max = t } END { printf "%d", max - min }' "$T/log")
    [ "$span" -ge 245 ]
}

@test "halt: soon stops new starts after max_failures; now kills running" {
    job soon <<EOF
halt: soon
max_failures: 1
jobs: 1
tasks:
  t:
    foreach: {range: [0, 5]}
    run: [sh, -c, 'echo \$PARALLELRUN_INDEX >> $T/ran; [ \$PARALLELRUN_INDEX -ne 1 ]']
EOF
    run "$PR" run "$T/soon.yaml"
    [ "$status" -eq 1 ]
    [ "$(tr -d '\n' < "$T/ran")" = "01" ]
    [[ "$output" == *"halted after 1 failure, 1 success (halt: soon,fail=1)"* ]]

    job now <<EOF
halt: now
jobs: 2
tasks:
  slow:
    run: [sh, -c, 'echo \$\$ > $T/slow.pid; exec sleep 30']
  bad:
    run: [sh, -c, 'until [ -s $T/slow.pid ]; do sleep 0.05; done; exit 4']
EOF
    run "$PR" run "$T/now.yaml"
    [ "$status" -eq 1 ]
    [[ "$output" == *"bad[0]: exit 4"* ]]
    [[ "$output" == *"slow[0]: cancelled"* ]]
    ! alive "$(cat "$T/slow.pid")"
}

@test "halt: GNU parallel's conditions: fail=N%, success=N, done=N" {
    job pct <<EOF
halt: soon,fail=50%
jobs: 1
tasks:
  a:
    foreach: {range: [0, 4]}
    run: [sh, -c, 'echo a\$PARALLELRUN_INDEX >> $T/ran; exit 1']
  b:
    foreach: {range: [0, 4]}
    run: [sh, -c, 'echo b\$PARALLELRUN_INDEX >> $T/ran']
EOF
    # 8 instances in all: the 4th failure halts (a and b alternate).
    run "$PR" run "$T/pct.yaml"
    [ "$status" -eq 1 ]
    [ "$(grep -c '^a' "$T/ran")" -eq 4 ]
    [[ "$output" == *"halted after 4 failures"*"(halt: soon,fail=50%)"* ]]

    job succ <<EOF
halt: now,success=2
jobs: 1
tasks:
  t:
    foreach: {range: [0, 9]}
    run: [sh, -c, 'echo \$PARALLELRUN_INDEX >> $T/succ']
EOF
    # Halting on successes is what was asked for: the run succeeds.
    run "$PR" run "$T/succ.yaml"
    [ "$status" -eq 0 ]
    [ "$(tr -d '\n' < "$T/succ")" = "01" ]

    job both <<EOF
halt: now,fail=2
max_failures: 3
tasks:
  t: {run: [true]}
EOF
    run "$PR" validate "$T/both.yaml"
    [ "$status" -eq 2 ]
    [[ "$output" == *"max_failures"*"give one"* ]]
    job bad <<EOF
halt: now,fail=lots
tasks:
  t: {run: [true]}
EOF
    run "$PR" validate "$T/bad.yaml"
    [ "$status" -eq 2 ]
    [[ "$output" == *"bad.yaml:1:7: 'halt': fail="* ]]
}

@test "lines from stdin are streamed to children" {
    job stdin <<EOF
tasks:
  t:
    foreach: {lines: "-"}
    run: [$SHOWARGS, "{item}", "{count}"]
EOF
    run bash -c "printf 'one\ntwo words\nthree\n' | '$PR' run '$T/stdin.yaml' -j 1"
    [ "$status" -eq 0 ]
    [ "$output" = "$(printf '[one]\n[]\n[two words]\n[]\n[three]\n[]')" ]
}

@test "--dry-run prints every command and runs nothing" {
    job dry <<EOF
tasks:
  m:
    foreach: {matrix: {os: [linux, bsd], n: [1, 2]}}
    run: [touch, "$T/{item.os}-{item.n}"]
  c:
    foreach: {range: [0, 5], chunk: 2}
    run: [echo, "{item}"]
EOF
    run "$PR" run "$T/dry.yaml" --dry-run
    [ "$status" -eq 0 ]
    [[ "$output" == *"m[0]	touch $T/linux-1"* ]]
    [[ "$output" == *"m[3]	touch $T/bsd-2"* ]]
    [[ "$output" == *"c[0]	echo 0 1"* ]]
    [[ "$output" == *"c[2]	echo 4"* ]]
    [ -z "$(ls "$T" | grep -- '-[12]$')" ]
}

@test "an invalid job file exits 2 with FILE:LINE:COL and starts nothing" {
    job bad <<EOF
tasks:
  first:
    run: [touch, "$T/started"]
  second:
    cmd: [true]
EOF
    run "$PR" run "$T/bad.yaml"
    [ "$status" -eq 2 ]
    [[ "$output" == *"$T/bad.yaml:5:5: unknown key 'cmd'"*"(did you mean 'run'?)"* ]]
    [ ! -e "$T/started" ]
    run "$PR" validate "$T/bad.yaml"
    [ "$status" -eq 2 ]
    run "$PR" validate jobs/demo.yaml
    [ "$status" -eq 0 ]
    [[ "$output" == *"valid"* ]]
}

@test "a missing lines file is an error before anything starts" {
    job nolines <<EOF
tasks:
  first:
    run: [touch, "$T/started"]
  t:
    foreach: {lines: "$T/missing.txt"}
    run: [echo, "{item}"]
EOF
    run "$PR" run "$T/nolines.yaml"
    [ "$status" -eq 2 ]
    [[ "$output" == *"nolines.yaml:5:22: "*"cannot open '$T/missing.txt': No such file or directory"* ]]
    [ ! -e "$T/started" ]
}

@test "a job file writable by others is refused" {
    job ww <<EOF
tasks:
  t:
    run: ["true"]
EOF
    chmod 666 "$T/ww.yaml"
    run "$PR" run "$T/ww.yaml"
    [ "$status" -eq 2 ]
    [[ "$output" == *"other users can write"* ]]
}

@test "--set overrides vars and unknown vars are rejected" {
    job vars <<EOF
vars: {who: world}
tasks:
  t:
    run: [echo, "hello {vars.who}"]
EOF
    run "$PR" run "$T/vars.yaml"
    [ "$output" = "hello world" ]
    run "$PR" run "$T/vars.yaml" --set who=there
    [ "$output" = "hello there" ]
    run "$PR" run "$T/vars.yaml" --set novalue
    [ "$status" -eq 2 ]
}

@test "config: [run] jobs applies, unknown keys are reported with file:line" {
    printf '[run]\njobs = 1\n' > "$PARALLELRUN_CONFIG"
    job cfg <<EOF
tasks:
  t:
    foreach: {range: [0, 4]}
    run: [sh, -c, 'mkdir $T/lock || echo overlap >> $T/bad; sleep 0.05; rmdir $T/lock']
EOF
    run "$PR" run "$T/cfg.yaml"
    [ "$status" -eq 0 ]
    [ ! -e "$T/bad" ]
    printf '[run]\njobs = 2\nbogus = 1\n' > "$PARALLELRUN_CONFIG"
    run "$PR" run "$T/cfg.yaml"
    [ "$status" -eq 2 ]
    [[ "$output" == *"$PARALLELRUN_CONFIG:3: unknown key 'bogus'"* ]]
    printf '[run]\njobs = 2\n' > "$PARALLELRUN_CONFIG"
    PARALLELRUN_JOBS=x run "$PR" run "$T/cfg.yaml"
    [ "$status" -eq 2 ]
    [[ "$output" == *"PARALLELRUN_JOBS"* ]]
}
