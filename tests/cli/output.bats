#!/usr/bin/env bats
# Output: grouping, --tag, --results, --joblog, --quiet, --json, and a
# child printing far more than the runner may hold in memory.

load helpers

setup() { common_setup; }
teardown() { common_teardown; }

@test "grouped output never interleaves lines of different instances" {
    job group <<EOF
tasks:
  t:
    foreach: {range: [0, 4]}
    run: [sh, -c, 'for i in 1 2 3 4 5; do echo "\$PARALLELRUN_INDEX-\$i"; sleep 0.02; done']
EOF
    run "$PR" run "$T/group.yaml" -j 4
    [ "$status" -eq 0 ]
    [ "${#lines[@]}" -eq 20 ]
    # Each instance's five lines are contiguous and in order.
    for ((b = 0; b < 20; b += 5)); do
        idx=${lines[$b]%-*}
        for i in 1 2 3 4 5; do
            [ "${lines[$((b + i - 1))]}" = "$idx-$i" ]
        done
    done
}

@test "stdout goes to stdout and stderr to stderr" {
    job streams <<EOF
tasks:
  t:
    run: [sh, -c, 'echo to-out; echo to-err >&2']
EOF
    "$PR" run "$T/streams.yaml" >"$T/o" 2>"$T/e"
    [ "$(cat "$T/o")" = "to-out" ]
    [ "$(cat "$T/e")" = "to-err" ]
}

@test "--tag prefixes every line with task[index]" {
    job tag <<EOF
tasks:
  fetch:
    foreach: {list: [a, b]}
    run: [sh, -c, 'echo "line1 \$1"; printf "partial \$1"', x, "{item}"]
EOF
    run "$PR" run "$T/tag.yaml" --tag -j 1
    [ "$status" -eq 0 ]
    [[ "$output" == *$'fetch[0]\tline1 a'* ]]
    [[ "$output" == *$'fetch[0]\tpartial a'* ]]
    [[ "$output" == *$'fetch[1]\tline1 b'* ]]
    [ "$(echo "$output" | grep -vc $'^fetch\\[[01]\\]\t')" -eq 0 ]
}

@test "--results keeps DIR/RUN_ID/TASK/INDEX.{out,err}" {
    job res <<EOF
tasks:
  t:
    foreach: {list: [x, y]}
    run: [sh, -c, 'echo "out \$1"; echo "err \$1" >&2', s, "{item}"]
EOF
    run "$PR" run "$T/res.yaml" --results "$T/r"
    [ "$status" -eq 0 ]
    d=$(ls -d "$T"/r/*/t)
    [ "$(cat "$d/0.out")" = "out x" ]
    [ "$(cat "$d/1.err")" = "err y" ]
    [[ "$(basename "$(dirname "$d")")" =~ ^[0-9]{8}-[0-9]{6}-[0-9a-f]{4}$ ]]
}

@test "--results: TASK/manifest.tsv says which item each index was, escaped" {
    job man <<EOF
tasks:
  t:
    foreach: {list: [plain, "tab	in", "back\\\\slash", "two\\nlines"]}
    retries: 1
    run: [sh, -c, 'echo "\$1"; [ -e $T/again ] || ! touch $T/again', s, "{item}"]
  m:
    foreach: {matrix: {a: [1, 2], b: [x]}}
    run: [echo, "{item.a}{item.b}"]
EOF
    run "$PR" run "$T/man.yaml" --results "$T/r" -j1
    [ "$status" -eq 0 ]
    d=$(ls -d "$T"/r/*)
    # One row per instance, the retried one too, in the order they started.
    printf '0\tplain\n1\ttab\\tin\n2\tback\\\\slash\n3\ttwo\\nlines\n' > "$T/want"
    diff "$T/want" "$d/t/manifest.tsv"
    printf '0\t1\tx\n1\t2\tx\n' > "$T/want"
    diff "$T/want" "$d/m/manifest.tsv"
    [ "$(cat "$d/t/2.out")" = 'back\slash' ]
    # Ad-hoc mode: the values of every source.
    run "$PR" --redis off --results "$T/a" -j1 echo ::: p 'q r' ::: 1
    [ "$status" -eq 0 ]
    printf '0\tp\t1\n1\tq r\t1\n' > "$T/want"
    diff "$T/want" "$(ls -d "$T"/a/*/echo)/manifest.tsv"
}

@test "--joblog writes GNU parallel's format" {
    job jl <<EOF
tasks:
  t:
    foreach: {list: [0, 2]}
    run: [sh, -c, 'exit \$1', s, "{item}"]
EOF
    run "$PR" run "$T/jl.yaml" --joblog "$T/log" -j 1
    [ "$status" -eq 1 ]
    [ "$(head -1 "$T/log")" = "$(printf 'Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand')" ]
    [ "$(wc -l < "$T/log")" -eq 3 ]
    # Seq, host ':', epoch with ms, runtime %10.3f, exit value, command.
    grep -qE $'^1\t:\t[0-9]{10}\\.[0-9]{3}\t +[0-9]+\\.[0-9]{3}\t0\t0\t0\t0\tsh -c \'exit \\$1\' s 0$' "$T/log"
    grep -qE $'^2\t:\t.*\t2\t0\tsh -c .* s 2$' "$T/log"
}

@test "--quiet prints nothing on success and the failure when one fails" {
    job q <<EOF
tasks:
  t:
    foreach: {range: [0, 3]}
    run: [sh, -c, 'echo chatter-\$PARALLELRUN_INDEX']
EOF
    run "$PR" run "$T/q.yaml" --quiet
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    job qf <<EOF
tasks:
  t:
    foreach: {range: [0, 3]}
    run: [sh, -c, 'echo chatter-\$PARALLELRUN_INDEX; [ \$PARALLELRUN_INDEX != 2 ]']
EOF
    run "$PR" run "$T/qf.yaml" --quiet
    [ "$status" -eq 1 ]
    [[ "$output" == *"chatter-2"* ]]
    [[ "$output" != *"chatter-0"* ]]
    [[ "$output" == *"t[2] '2': exit 1"* ]]
}

@test "--json prints one summary object" {
    job js <<EOF
tasks:
  ok:
    foreach: {range: [0, 3]}
    run: [echo, hidden]
  bad:
    run: [sh, -c, 'echo "why it failed" >&2; exit 5']
EOF
    run "$PR" run "$T/js.yaml" --json
    [ "$status" -eq 1 ]
    echo "$output" | grep '^{' > "$T/j"
    python3 - "$T/j" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["status"] == "failed" and d["exit_code"] == 1, d
assert d["instances"]["succeeded"] == 3 and d["instances"]["failed"] == 1
t = {x["name"]: x for x in d["tasks"]}
assert t["ok"]["count"] == 3 and t["bad"]["failed"] == 1
f = d["failures"][0]
assert f["task"] == "bad" and f["exit"] == 5 and f["kind"] == "exit"
assert "why it failed" in f["stderr_tail"]
PY
    [[ "$output" != *"hidden"* ]]
}

@test "a child printing 64 MiB does not grow the runner's memory" {
    job big <<EOF
tasks:
  t:
    run: [$EX/flood.sh, "67108864"]
EOF
    /usr/bin/time -f '%M' -o "$T/rss" "$PR" run "$T/big.yaml" > "$T/out"
    [ "$(stat -c %s "$T/out")" -ge 67108864 ]
    # Max RSS in KiB: the output was spilled to a file, not kept in memory.
    [ "$(cat "$T/rss")" -lt 16384 ]
}

@test "a child flooding stderr while others run does not stall them" {
    job flood <<EOF
tasks:
  noisy:
    run: [$EX/flood.sh, "8388608", stderr]
  quiet:
    foreach: {range: [0, 20]}
    run: [echo, "q{item}"]
EOF
    run "$PR" run "$T/flood.yaml" -j 2 2>/dev/null
    [ "$status" -eq 0 ]
    [ "$(echo "$output" | grep -c '^q')" -eq 20 ]
}

@test "a child that closes stdout early still completes normally" {
    job closer <<EOF
tasks:
  t:
    run: [sh, -c, 'exec 1>&-; sleep 0.2; echo still-here >&2']
EOF
    run "$PR" run "$T/closer.yaml"
    [ "$status" -eq 0 ]
    [[ "$output" == *"still-here"* ]]
}

@test "output into a closed pipe does not stop the run" {
    job pipe <<EOF
tasks:
  t:
    foreach: {range: [0, 50]}
    run: [sh, -c, 'seq 1 1000; touch $T/done.\$PARALLELRUN_INDEX']
EOF
    "$PR" run "$T/pipe.yaml" | head -1 > /dev/null
    [ "$(ls "$T" | grep -c '^done\.')" -eq 50 ]
}
