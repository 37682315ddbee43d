#!/usr/bin/env bats
# foreach sources through the real binary: sources opened when their task's
# needs have succeeded, stdin and FIFOs read without holding up the loop
# (timeouts and signals with a slow producer), empty sources, NUL bytes and
# CRLF line ends.

load helpers

setup() {
    common_setup
    export XDG_RUNTIME_DIR=$T/xdg PARALLELRUN_SHM_BASE=$T/shm
    mkdir -p "$XDG_RUNTIME_DIR" "$PARALLELRUN_SHM_BASE"
    F=${PRUN_TIME_FACTOR:-1}
}
teardown() {
    # The producers and runners a test started, by pid.
    for p in ${PIDS:-}; do kill -9 "$p" 2>/dev/null; done
    common_teardown
}

# gone PID TENTHS: true once PID has exited (waited for up to TENTHS/10 s).
gone() {
    local i
    for ((i = 0; i < $2; i++)); do
        alive "$1" || return 0
        sleep 0.1
    done
    return 1
}

@test "a glob over files a needed task creates runs one instance per file" {
    job g <<EOF
tasks:
  make:
    run: "mkdir -p $T/out && touch $T/out/a.txt $T/out/b.txt $T/out/c.txt"
  use:
    needs: [make]
    run: [$SHOWARGS, "{item}"]
    foreach: {glob: "$T/out/*.txt"}
EOF
    run "$PR" run "$T/g.yaml" --redis off
    [ "$status" -eq 0 ]
    [ "$(echo "$output" | grep -c '^\[.*/out/[abc].txt\]$')" -eq 3 ]
    # validate and --dry-run check what exists now and say what waits.
    rm -rf "$T/out"
    run "$PR" validate "$T/g.yaml"
    [ "$status" -eq 0 ]
    [[ "$output" == *"task 'use': glob '$T/out/*.txt' is resolved when its needs succeed"* ]]
    run "$PR" run "$T/g.yaml" --dry-run
    [ "$status" -eq 0 ]
    [[ "$output" == *"make[0]"* ]]
    [[ "$output" == *"resolved when its needs succeed"* ]]
    [ ! -e "$T/out" ]
}

@test "a lines file written by a needed task is read after it" {
    job l <<EOF
tasks:
  make:
    run: "printf 'x\\\\ny\\\\n' > $T/list.txt"
  use:
    needs: [make]
    run: [$SHOWARGS, "{item}", "{count}"]
    foreach: {lines: "$T/list.txt"}
EOF
    run "$PR" run "$T/l.yaml" --redis off -j 1
    [ "$status" -eq 0 ]
    [[ "$output" == *"[x]"*"[2]"*"[y]"*"[2]"* ]]
}

@test "a deferred source that fails fails its task, names it, skips dependents" {
    job d <<EOF
tasks:
  make:
    run: "true"
  use:
    needs: [make]
    run: [echo, "{item}"]
    foreach: {lines: "$T/never-made.txt"}
  after:
    needs: [use]
    run: "touch $T/after-ran"
  other:
    run: "touch $T/other-ran"
EOF
    run "$PR" run "$T/d.yaml" --redis off
    [ "$status" -eq 1 ]
    [[ "$output" == *"use: $T/d.yaml:"*"cannot open '$T/never-made.txt': No such file or directory"* ]]
    [[ "$output" == *"after"*"not started: a task it needs failed"* ]]
    [ ! -e "$T/after-ran" ]
    [ -e "$T/other-ran" ]
}

@test "a glob that matches nothing is an error naming it; allow_empty: true opts in" {
    job e <<EOF
tasks:
  marker:
    run: "touch $T/started"
  use:
    run: [echo, "{item}"]
    foreach: {glob: "$T/none/*.txt"}
EOF
    run "$PR" run "$T/e.yaml" --redis off
    [ "$status" -eq 2 ]
    [[ "$output" == *"glob '$T/none/*.txt' matches nothing"*"allow_empty"* ]]
    [ ! -e "$T/started" ]
    run "$PR" validate "$T/e.yaml"
    [ "$status" -eq 2 ]
    [[ "$output" == *"matches nothing"* ]]

    job ok <<EOF
tasks:
  use:
    run: [echo, "{item}"]
    foreach: {glob: "$T/none/*.txt", allow_empty: true}
  after:
    needs: [use]
    run: "touch $T/after-ran"
EOF
    run "$PR" run "$T/ok.yaml" --redis off
    [ "$status" -eq 0 ]
    [ -e "$T/after-ran" ]

    # The same rule for every source: empty list, range, lines file.
    : > "$T/empty.txt"
    for src in "list: []" "range: [3, 3]" "lines: $T/empty.txt"; do
        job s <<EOF
tasks:
  use:
    run: [echo, "{item}"]
    foreach: {$src}
EOF
        run "$PR" run "$T/s.yaml" --redis off
        [ "$status" -eq 2 ] || { echo "$src: $status $output"; return 1; }
        [[ "$output" == *"allow_empty"* ]]
    done

    # Found empty only when its needs succeeded: the task fails, exit 1.
    job late <<EOF
tasks:
  make:
    run: "true"
  use:
    needs: [make]
    run: [echo, "{item}"]
    foreach: {glob: "$T/none/*.txt"}
EOF
    run "$PR" run "$T/late.yaml" --redis off
    [ "$status" -eq 1 ]
    [[ "$output" == *"use: "*"glob '$T/none/*.txt' matches nothing"* ]]
}

@test "a NUL byte in a lines file is refused with FILE:LINE; separator: nul reads NUL-separated items" {
    printf 'one\ntw\0o\nthree\n' > "$T/nul.txt"
    job n <<EOF
tasks:
  marker:
    run: "touch $T/started"
  use:
    run: [$SHOWARGS, "{item}"]
    foreach: {lines: "$T/nul.txt"}
EOF
    run "$PR" run "$T/n.yaml" --redis off
    [ "$status" -eq 2 ]
    [[ "$output" == *"$T/nul.txt:2: NUL byte in a line"*"separator: nul"* ]]
    [ ! -e "$T/started" ]
    # From a pipe it is found while reading: the task fails, exit 1.
    job np <<EOF
tasks:
  use:
    run: [$SHOWARGS, "{item}"]
    foreach: {lines: "-"}
EOF
    run bash -c "printf 'a\nb\nc\0d\n' | '$PR' run '$T/np.yaml' --redis off -j 1"
    [ "$status" -eq 1 ]
    [[ "$output" == *"stdin:3: NUL byte in a line"* ]]
    [[ "$output" != *"[c]"* ]]

    printf 'a b\nc\0d\r\n\0' > "$T/z.txt"
    job z <<EOF
tasks:
  use:
    run: [$SHOWARGS, "<{item}>", "{count}"]
    foreach: {lines: "$T/z.txt", separator: nul}
EOF
    run "$PR" run "$T/z.yaml" --redis off -j 1
    [ "$status" -eq 0 ]
    # NUL-separated items keep their newlines and CRs, like xargs -0.
    [ "$output" = "$(printf '[<a b\nc>]\n[2]\n[<d\r\n>]\n[2]')" ]
}

@test "CRLF line ends are dropped on every line, the last one's included" {
    printf 'a\r\nb\r\nlast\r' > "$T/crlf.txt"
    job c <<EOF
tasks:
  use:
    run: [$SHOWARGS, "<{item}>"]
    foreach: {lines: "$T/crlf.txt"}
EOF
    run "$PR" run "$T/c.yaml" --redis off -j 1
    [ "$status" -eq 0 ]
    [ "$output" = "$(printf '[<a>]\n[<b>]\n[<last>]')" ]
    # The same through a pipe.
    job cp <<EOF
tasks:
  use:
    run: [$SHOWARGS, "<{item}>"]
    foreach: {lines: "-"}
EOF
    run bash -c "cat '$T/crlf.txt' | '$PR' run '$T/cp.yaml' --redis off -j 1"
    [ "$status" -eq 0 ]
    [ "$output" = "$(printf '[<a>]\n[<b>]\n[<last>]')" ]
}

# A slow producer on the runner's stdin: one line now, then it blocks until
# the test writes to $T/release, then a last line and the end.
start_slow_run() {
    mkfifo "$T/in" "$T/release"
    # Builtins only (no child to outlive a kill), and no fd of bats kept.
    "$PR" run "$T/$1.yaml" --redis off -j 4 < "$T/in" > "$T/run.out" 2>&1 3>&- &
    RUNNER=$!
    { echo first; read -r _ < "$T/release"; echo second; } > "$T/in" 2>/dev/null 3>&- &
    PRODUCER=$!
    PIDS="$RUNNER $PRODUCER"
}

@test "lines: - from a slow producer never delays a timeout" {
    job slow <<EOF
tasks:
  hang:
    run: "echo \$\$ > $T/hang.pid; exec sleep 1000"
    timeout: 1s
  feed:
    run: "echo {item} >> $T/fed"
    foreach: {lines: "-"}
EOF
    start_slow_run slow
    wait_for "$T/hang.pid" $((100 * F))
    wait_for "$T/fed" $((100 * F))
    hang=$(cat "$T/hang.pid")
    SECONDS=0
    # Killed at its 1 s timeout while the producer still holds back.
    gone "$hang" $((80 * F))
    echo "timeout took ${SECONDS}s"
    [ "$SECONDS" -le $((6 * F)) ]
    alive "$PRODUCER"
    alive "$RUNNER"
    echo go > "$T/release"
    gone "$RUNNER" $((100 * F))
    wait "$RUNNER" || st=$?
    [ "${st:-0}" -eq 1 ]
    [ "$(cat "$T/fed")" = "$(printf 'first\nsecond')" ]
    grep -q "timed out" "$T/run.out"
}

@test "SIGINT while the runner waits on stdin takes effect at once" {
    job sig <<EOF
tasks:
  feed:
    run: "echo {item} >> $T/fed"
    foreach: {lines: "-"}
EOF
    start_slow_run sig
    wait_for "$T/fed" $((100 * F))
    kill -INT "$RUNNER"
    gone "$RUNNER" $((50 * F))
    wait "$RUNNER" || st=$?
    [ "${st:-0}" -eq 130 ]
    # The producer never got past its first line.
    alive "$PRODUCER"
    [ "$(cat "$T/fed")" = first ]
}

@test "a lines FIFO without a writer: validate returns, run waits without blocking, SIGTERM stops it" {
    mkfifo "$T/nowriter"
    job f <<EOF
tasks:
  marker:
    run: "touch $T/started"
  use:
    run: [echo, "{item}"]
    foreach: {lines: "$T/nowriter"}
EOF
    run timeout $((20 * F)) "$PR" validate "$T/f.yaml"
    [ "$status" -eq 0 ]
    "$PR" run "$T/f.yaml" --redis off > "$T/run.out" 2>&1 3>&- &
    RUNNER=$!
    PIDS=$RUNNER
    # The other task ran: the runner is in its loop, not stuck in open().
    wait_exists "$T/started" $((100 * F))
    kill -TERM "$RUNNER"
    gone "$RUNNER" $((50 * F))
    wait "$RUNNER" || st=$?
    [ "${st:-0}" -eq 143 ]
}

@test "a lines FIFO whose writer comes later gives every line, no early end" {
    mkfifo "$T/later"
    job w <<EOF
tasks:
  marker:
    run: "touch $T/started"
  use:
    run: "echo {item} >> $T/fed"
    foreach: {lines: "$T/later"}
EOF
    "$PR" run "$T/w.yaml" --redis off -j 1 > "$T/run.out" 2>&1 3>&- &
    RUNNER=$!
    PIDS=$RUNNER
    wait_exists "$T/started" $((100 * F))
    printf 'a\nb\nc\n' > "$T/later"
    gone "$RUNNER" $((100 * F))
    wait "$RUNNER" || st=$?
    [ "${st:-0}" -eq 0 ]
    [ "$(cat "$T/fed")" = "$(printf 'a\nb\nc')" ]
}

@test "empty stdin is an error found at its end; allow_empty: true opts in" {
    job es <<EOF
tasks:
  use:
    run: [echo, "{item}"]
    foreach: {lines: "-"}
EOF
    run bash -c "'$PR' run '$T/es.yaml' --redis off < /dev/null"
    [ "$status" -eq 1 ]
    [[ "$output" == *"lines 'stdin' has no lines"* ]]
    job es2 <<EOF
tasks:
  use:
    run: [echo, "{item}"]
    foreach: {lines: "-", allow_empty: true}
EOF
    run bash -c "true | '$PR' run '$T/es2.yaml' --redis off"
    [ "$status" -eq 0 ]
}

@test "foreach options are checked: separator only for lines, known values" {
    job b1 <<EOF
tasks:
  use:
    run: [echo, "{item}"]
    foreach: {list: [a], separator: nul}
EOF
    run "$PR" validate "$T/b1.yaml"
    [ "$status" -eq 2 ]
    [[ "$output" == *"'separator' applies only to 'lines'"* ]]
    job b2 <<EOF
tasks:
  use:
    run: [echo, "{item}"]
    foreach: {lines: x, separator: tab}
EOF
    run "$PR" validate "$T/b2.yaml"
    [ "$status" -eq 2 ]
    [[ "$output" == *"'separator' must be newline or nul"* ]]
    job b3 <<EOF
tasks:
  a:
    run: [echo, "{item}"]
    foreach: {lines: "-"}
  b:
    run: [echo, "{item}"]
    foreach: {lines: "-"}
EOF
    run "$PR" validate "$T/b3.yaml"
    [ "$status" -eq 2 ]
    [[ "$output" == *"only one task can read stdin"* ]]
}
