#!/usr/bin/env bats
# Every malformed job file in tests/fixtures/bad is refused by the real
# binary with exit 2 and the exact first line recorded beside it, by both
# validate and run, and run starts nothing.

load helpers

setup() { common_setup; }
teardown() { common_teardown; }

@test "every bad fixture: exit 2, the expected FILE:LINE:COL message" {
    n=0
    for f in tests/fixtures/bad/*.yaml; do
        expected=$(head -1 "${f%.yaml}.err")
        for sub in validate run; do
            run "$PR" $sub "$f"
            if [ "$status" -ne 2 ] || [ "${lines[0]}" != "$expected" ]; then
                echo "$sub $f: status $status"
                echo "  got:      ${lines[0]}"
                echo "  expected: $expected"
                return 1
            fi
        done
        n=$((n + 1))
    done
    [ "$n" -ge 50 ]
}

@test "every good fixture validates" {
    # full.yaml streams lines from a file relative to the current directory
    # (an empty one is an error: it needs a line), and validate checks its
    # segment files as run does.
    echo https://example.org/ > "$T/urls-2026-11-21.txt"
    mkdir -p "$T/data/2026-11-21"
    touch "$T/data/2026-11-21/genome.npy"
    truncate -s 64000000 "$T/data/t.bin"
    # glob.yaml's pattern must match something, for the same reason.
    mkdir -p "$T/logs" && touch "$T/logs/a.log"
    for f in "$ROOT"/tests/fixtures/good/*.yaml; do
        run bash -c "cd '$T' && '$PR' validate '$f'"
        [ "$status" -eq 0 ] || { echo "$f: $output"; return 1; }
    done
}

@test "a bad file starts nothing, even when its first task is fine" {
    job half <<EOF
tasks:
  ok:
    run: [touch, "$T/ran"]
  broken:
    run: [echo, "{nope}"]
EOF
    run "$PR" run "$T/half.yaml"
    [ "$status" -eq 2 ]
    [[ "${lines[0]}" == "parallelrun: $T/half.yaml:5:18: unknown placeholder '{nope}'"* ]]
    [ ! -e "$T/ran" ]
}
