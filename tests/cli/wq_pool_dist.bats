#!/usr/bin/env bats
# Pool tasks with run --distributed: the pool's workers are instances that
# queue workers run (each in its own HOME); its items are staged by the
# run and claimed with `next` over the same Redis. Every item gets one
# terminal record, whatever happens to a queue worker. And a jobs: cap,
# which bounds new claims, never keeps a lost worker's entries from
# being reclaimed.

load helpers

setup() {
    common_setup
    F=${PRUN_TIME_FACTOR:-1}
    queue_redis
}
teardown() { common_teardown; }


# A Python pool worker through the package; it records each item, and
# with HOLD set waits for the gate $T/go after its first item.
pyworker() {
    cat > "$T/w.py" <<EOF
import os, subprocess, sys
sys.path.insert(0, "$ROOT/python")
import parallelrun
for index, item in parallelrun.items():
    with open("$T/done", "a") as f:
        f.write(item + "\n")
    if os.environ.get("HOLD"):
        open("$T/held.%s" % os.environ["PARALLELRUN_INDEX"], "w").close()
        subprocess.run(["$GATE", "wait", "$T/go"], check=True)
EOF
}

@test "pool --distributed: queue workers run the pool's workers; every item once; status counts items" {
    python_lib_ok
    pyworker
    job pd <<EOF
tasks:
  sq:
    pool: true
    jobs: 3
    foreach: {range: [0, 3000]}
    run: [/usr/bin/python3, $T/w.py]
EOF
    start_worker a --slots 2
    start_worker b --slots 2
    run timeout $((120 * F)) "$PR" run "$T/pd.yaml" --redis "$URL" --distributed
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$(sort -n "$T/done" | uniq | wc -l)" -eq 3000 ]
    [ "$(wc -l < "$T/done")" -eq 3000 ]
    rid=$(last_rid)
    [ "$(rcli hget "parallelrun:{$rid}:wq:meta" okt:sq)" -eq 3000 ]
    [ "$(rcli hget "parallelrun:{$rid}:wq:meta" term:sq)" -eq 3000 ]
    run "$PR" status "$rid" --redis "$URL"
    [[ "$output" == *"sq: items: 3000 queued, 3000 done, 0 failed"* ]]
}

@test "pool --distributed: a queue worker killed -9 mid-pool; its pool workers and their items go to another" {
    python_lib_ok
    pyworker
    job pk <<EOF
tasks:
  sq:
    pool: true
    jobs: 2
    env: {HOLD: "1"}
    foreach: {range: [0, 500]}
    run: [/usr/bin/python3, $T/w.py]
EOF
    start_worker a --slots 2 --lease 2s
    timeout $((40 * F)) "$PR" run "$T/pk.yaml" --redis "$URL" \
        --distributed > "$T/run.out" 2>&1 &
    echo $! > "$T/run.pid"
    wait_until -t 60 test -e "$T/held.0" -a -e "$T/held.1"
    kill -9 "$(cat "$T/a.pid")"
    "$GATE" open "$T/go"
    start_worker b --slots 2 --lease 2s
    st=0
    wait "$(cat "$T/run.pid")" || st=$?
    cat "$T/run.out" "$T/a.log" "$T/b.log"
    [ "$st" -eq 0 ]
    # At least once: an item the dead worker held may run twice.
    [ "$(sort -n "$T/done" | uniq | wc -l)" -eq 500 ]
    rid=$(last_rid)
    [ "$(rcli hlen "parallelrun:{$rid}:wq:done")" -ge 500 ]
    [ "$(rcli hget "parallelrun:{$rid}:wq:meta" okt:sq)" -eq 500 ]
    [ "$(rcli hget "parallelrun:{$rid}:wq:meta" term:sq)" -eq 500 ]
}

@test "pool --distributed: a per-item timeout is refused, naming the task, and nothing starts" {
    job pt <<EOF
tasks:
  sq:
    pool: true
    timeout: 5s
    foreach: {range: [0, 10]}
    run: [sh, -c, 'touch $T/started']
EOF
    run "$PR" run "$T/pt.yaml" --redis "$URL" --distributed
    [ "$status" -eq 2 ]
    [[ "$output" == *"pt.yaml:2:"*"task 'sq'"*"timeout"*"--distributed"* ]]
    [ ! -e "$T/started" ]
}

@test "queue: a task's jobs: cap does not keep a killed worker's instances from being reclaimed" {
    job jc <<EOF2
tasks:
  t:
    jobs: 2
    run: sh -c 'if [ ! -e $T/go ]; then touch $T/held.{item}; exec sleep $((600 * F)); fi; echo {item} >> $T/done'
    foreach: {range: [0, 6]}
EOF2
    start_worker a --slots 4 --lease 2s
    timeout $((120 * F)) "$PR" run "$T/jc.yaml" --redis "$URL" \
        --distributed > "$T/run.out" 2>&1 &
    echo $! > "$T/run.pid"
    wait_until -t 60 test -e "$T/held.0" -a -e "$T/held.1"
    kill -9 "$(cat "$T/a.pid")"
    touch "$T/go"
    start_worker b --slots 4 --lease 2s
    st=0
    wait "$(cat "$T/run.pid")" || st=$?
    cat "$T/run.out"
    [ "$st" -eq 0 ]
    [ "$(sort -n "$T/done" | uniq | wc -l)" -eq 6 ]
    [ "$(wc -l < "$T/done")" -eq 6 ]
}
