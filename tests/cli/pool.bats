#!/usr/bin/env bats
# Pool mode through the real binary and the embedded Redis: long-lived
# workers take items with `parallelrun next`; an item is never lost and
# never done twice, even when a worker dies in the middle of one.

load helpers

setup() { common_setup; }
teardown() { common_teardown; }

# A shell worker: records each item it finishes in $T/done.
worker='while item=$("$PARALLELRUN_BIN" next); do echo "$item" >> '

@test "pool: jobs workers share the items, each done exactly once" {
    job pool <<EOF
tasks:
  work:
    pool: true
    jobs: 3
    foreach: {range: [0, 300]}
    run: [sh, -c, 'echo \$\$ >> $T/workers; $worker$T/done; done']
EOF
    run "$PR" run "$T/pool.yaml"
    [ "$status" -eq 0 ]
    [ "$(wc -l < "$T/done")" -eq 300 ]
    [ "$(sort -n "$T/done" | uniq | wc -l)" -eq 300 ]
    [ "$(sort -n "$T/done" | head -1)" = 0 ]
    [ "$(sort -n "$T/done" | tail -1)" = 299 ]
    # Three worker processes, not one process per item.
    [ "$(wc -l < "$T/workers")" -eq 3 ]
}

@test "pool: a worker killed mid-item; its item goes to another, none twice" {
    job kill <<EOF
tasks:
  work:
    pool: true
    jobs: 3
    retries: 2
    retry_delay: 50ms
    foreach: {range: [0, 200]}
    run: [sh, -c, 'while item=\$("\$PARALLELRUN_BIN" next); do if [ "\$item" = 77 ] && mkdir $T/killed 2>/dev/null; then kill -9 \$\$; fi; echo "\$item" >> $T/done; done']
EOF
    run "$PR" run "$T/kill.yaml"
    [ "$status" -eq 0 ]
    [ -d "$T/killed" ]
    [ "$(wc -l < "$T/done")" -eq 200 ]
    [ -z "$(sort -n "$T/done" | uniq -d)" ]
    grep -qx 77 "$T/done"
}

@test "pool: without retries a killed worker's item is done by another; every item done, the run succeeds" {
    job noretry <<EOF
tasks:
  work:
    pool: true
    jobs: 2
    foreach: {range: [0, 100]}
    run: [sh, -c, 'while item=\$("\$PARALLELRUN_BIN" next); do if [ "\$item" = 10 ] && mkdir $T/killed 2>/dev/null; then kill -9 \$\$; fi; echo "\$item" >> $T/done; sleep 0.01; done']
EOF
    run "$PR" run "$T/noretry.yaml"
    # Success is every item's terminal success, not every worker's exit.
    [ "$status" -eq 0 ]
    [ "$(wc -l < "$T/done")" -eq 100 ]
    [ -z "$(sort -n "$T/done" | uniq -d)" ]
}

@test "pool: a Python worker through the C API (prun.items)" {
    job py <<EOF
tasks:
  work:
    pool: true
    jobs: 2
    foreach: {list: [alpha, beta, gamma, delta]}
    run: [/usr/bin/python3, -c, 'import sys; sys.path.insert(0, "examples/python"); import prun; [open("$T/py", "a").write("%d %s\n" % (i, it)) for i, it in prun.items()]']
EOF
    run "$PR" run "$T/py.yaml"
    [ "$status" -eq 0 ]
    [ "$(sort "$T/py")" = "$(printf '0 alpha\n1 beta\n2 gamma\n3 delta')" ]
}

@test "pool: an HTTP fan-out against a server the job starts itself" {
    port=$((20000 + RANDOM % 20000))
    run "$PR" run jobs/http-fanout.yaml --set port=$port --set out="$T/http"
    [ "$status" -eq 0 ]
    [ "$(ls "$T/http" | wc -l)" -eq 500 ]
    [[ "$output" == *"served 500 ids"* ]]
    grep -q '"square": 9801' "$T/http/99.json"
}

@test "pool: lines streamed to the workers, count shown by status" {
    seq 1 1000 > "$T/lines"
    job lines <<EOF
tasks:
  work:
    pool: true
    jobs: 2
    foreach: {lines: "$T/lines", chunk: 10}
    run: [sh, -c, '$worker$T/done; done']
EOF
    run "$PR" run "$T/lines.yaml"
    [ "$status" -eq 0 ]
    # Chunks of 10 lines, one item per chunk.
    [ "$(wc -l < "$T/done")" -eq 1000 ]
    [ "$(sort -n "$T/done" | uniq | wc -l)" -eq 1000 ]
}

@test "pool: refused with --redis off" {
    job off <<EOF
tasks:
  work:
    pool: true
    foreach: {range: [0, 3]}
    run: ["true"]
EOF
    run "$PR" run "$T/off.yaml" --redis off
    [ "$status" -eq 2 ]
    [[ "$output" == *"pool tasks need Redis"* ]]
}
