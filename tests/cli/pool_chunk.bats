#!/usr/bin/env bats
# Pool mode's staged items and chunks (docs/work-queue.md, "Pool mode"):
# a long-lived worker's claim is one stream entry of many items, a
# `parallelrun next` per item still takes them one by one and in order,
# and an item that kills its worker every time fails alone, even when it
# first came in a chunk with others. On a private redis-server, so the
# queue's keys can be read.

load helpers

setup() {
    common_setup
    export XDG_RUNTIME_DIR=$T/xdg PARALLELRUN_SHM_BASE=$T/shm
    mkdir -p "$XDG_RUNTIME_DIR" "$PARALLELRUN_SHM_BASE"
    F=${PRUN_TIME_FACTOR:-1}
    queue_redis
}
teardown() { common_teardown; }


# py FILE BODY: a Python pool worker through the package; BODY runs per
# item with index and item set.
py() {
    cat > "$1" <<EOF
import os, sys
sys.path.insert(0, "$ROOT/python")
import parallelrun
for index, item in parallelrun.items():
$2
EOF
}

@test "pool chunks: a Python worker's claim is one entry of many items; each item one terminal record" {
    python_lib_ok
    py "$T/w.py" '    open("'"$T"'/done", "a").write(item + "\n")'
    job pc <<EOF
tasks:
  work:
    pool: true
    jobs: 2
    foreach: {range: [0, 3000]}
    run: [/usr/bin/python3, $T/w.py]
EOF
    run timeout $((120 * F)) "$PR" run "$T/pc.yaml" --redis "$URL"
    [ "$status" -eq 0 ]
    [ "$(sort -n "$T/done" | uniq | wc -l)" -eq 3000 ]
    [ "$(wc -l < "$T/done")" -eq 3000 ]
    rid=$(last_rid)
    [ "$(rcli hlen "parallelrun:{$rid}:wq:done")" -eq 3000 ]
    [ "$(rcli hget "parallelrun:{$rid}:wq:meta" okt:work)" -eq 3000 ]
    [ "$(rcli hget "parallelrun:{$rid}:wq:meta" term:work)" -eq 3000 ]
    # One fence per claimed entry: far fewer entries than items.
    [ "$(rcli get "parallelrun:{$rid}:wq:seq")" -lt 300 ]
    # Nothing left staged, on the stream or in the fence table.
    [ "$(rcli exists "parallelrun:{$rid}:wq:stage.x:work")" -eq 0 ]
    [ "$(rcli exists "parallelrun:{$rid}:wq:stage.p:work")" -eq 0 ]
    [ "$(rcli xlen "parallelrun:{$rid}:wq:s:work")" -eq 0 ]
    [ "$(rcli hlen "parallelrun:{$rid}:wq:fence")" -eq 0 ]
}

@test "pool chunks: parallelrun next takes one item per call, in order" {
    job seq <<EOF
tasks:
  work:
    pool: true
    jobs: 1
    foreach: {range: [0, 300]}
    run: [sh, -c, 'while it=\$("\$PARALLELRUN_BIN" next); do echo "\$it" >> $T/done; done']
EOF
    run timeout $((120 * F)) "$PR" run "$T/seq.yaml" --redis "$URL"
    [ "$status" -eq 0 ]
    seq 0 299 > "$T/want"
    cmp "$T/want" "$T/done"
}

@test "pool chunks: an item that kills its Python worker every time fails alone; every other item is done" {
    python_lib_ok
    py "$T/k.py" '    if item == "37":
        os.kill(os.getpid(), 9)
    open("'"$T"'/done", "a").write(item + "\n")'
    job pk <<EOF
tasks:
  work:
    pool: true
    jobs: 2
    retries: 6
    foreach: {range: [0, 500]}
    run: [/usr/bin/python3, $T/k.py]
EOF
    run timeout $((120 * F)) "$PR" run "$T/pk.yaml" --redis "$URL"
    echo "$output" | head -c 3000
    [ "$status" -eq 1 ]
    # At least once: an item of the chunk 37 came in may run twice.
    [ "$(sort -n "$T/done" | uniq | wc -l)" -eq 499 ]
    ! grep -qx 37 "$T/done"
    rid=$(last_rid)
    [ "$(rcli hlen "parallelrun:{$rid}:wq:done")" -eq 500 ]
    [ "$(rcli hget "parallelrun:{$rid}:wq:meta" okt:work)" -eq 499 ]
    [ "$(rcli hget "parallelrun:{$rid}:wq:meta" term:work)" -eq 500 ]
    rcli hget "parallelrun:{$rid}:wq:done" "work 37" | grep -q '"ok":false'
    [ "$(rcli lrange "parallelrun:{$rid}:wq:dead" 0 -1)" = "work 37" ]
    [[ "$output" == *"37"* ]]
}
