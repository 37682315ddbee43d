#!/usr/bin/env bats
# Hostile input through the real binary: malformed configuration files,
# job files far too big, binary garbage, and a job file rewritten while it
# runs. Every refusal is exit 2 with a first line that says where, and
# nothing starts.

load helpers

setup() { common_setup; }
teardown() { common_teardown; }

# A job whose only task leaves a mark: it must never run when the config
# or the job file is refused.
marker_job() {
    job marker <<EOF
tasks:
  t:
    run: [touch, "$T/ran"]
EOF
}

@test "every bad config fixture: exit 2, the expected FILE:LINE message" {
    marker_job
    n=0
    for f in tests/fixtures/bad-config/*.ini; do
        expected=$(head -1 "${f%.ini}.err")
        # validate checks what run checks, the config included.
        for args in "validate jobs/demo.yaml" "run --dry-run jobs/demo.yaml" \
            "run $T/marker.yaml"; do
            # shellcheck disable=SC2086
            PARALLELRUN_CONFIG=$f run "$PR" $args
            if [ "$status" -ne 2 ] || [ "${lines[0]}" != "$expected" ]; then
                echo "$args with $f: status $status"
                echo "  got:      ${lines[0]}"
                echo "  expected: $expected"
                return 1
            fi
        done
        n=$((n + 1))
    done
    [ "$n" -ge 10 ]
    [ ! -e "$T/ran" ]
}

@test "a 100 MB job file is refused at once with FILE:1:1" {
    big=$BATS_TEST_TMPDIR/big.yaml
    {
        printf 'tasks:\n  t:\n    run: [touch, "%s/ran"]\n' "$T"
        yes '# padding padding padding padding padding padding padding' |
            head -c 100000000
    } >"$big"
    [ "$(stat -c %s "$big")" -gt 100000000 ]
    for sub in validate run; do
        start=$(date +%s%N)
        run "$PR" $sub "$big"
        ms=$((($(date +%s%N) - start) / 1000000))
        [ "$status" -eq 2 ]
        [ "${lines[0]}" = "parallelrun: $big:1:1: job file is larger than 16 MiB" ]
        # Refused from its size, not after reading or parsing it (the
        # bound is generous, and scaled for slow machines).
        [ "$ms" -lt $(($(scaled 3) * 1000)) ] ||
            { echo "$sub took $ms ms"; return 1; }
    done
    rm -f "$big"
    [ ! -e "$T/ran" ]
}

@test "a 100 MB job file through a pipe is refused after 16 MiB" {
    # No size to stat: the reader must stop on its own.
    run bash -c "'$PR' validate <(yes '# padding' | head -c 100000000)"
    [ "$status" -eq 2 ]
    [[ "${lines[0]}" =~ ^parallelrun:\ /dev/fd/[0-9]+:1:1:\ job\ file\ is\ larger\ than\ 16\ MiB$ ]]
    run "$PR" validate /dev/zero
    [ "$status" -eq 2 ]
    [ "${lines[0]}" = "parallelrun: /dev/zero:1:1: job file is larger than 16 MiB" ]
}

@test "random binary garbage: exit 2 with FILE:LINE:COL, nothing printed raw" {
    for i in $(seq 20); do
        f=$T/garbage-$i.yaml
        head -c 4096 /dev/urandom >"$f"
        run "$PR" validate "$f"
        if [ "$status" -ne 2 ] ||
            ! [[ "${lines[0]}" =~ ^parallelrun:\ $f:[0-9]+:[0-9]+:\  ]]; then
            echo "status $status: ${lines[0]}"
            cp "$f" "$BATS_TEST_TMPDIR/failing-garbage.yaml"
            return 1
        fi
        # The message quotes no invalid UTF-8 back at the terminal.
        printf '%s' "${lines[0]}" | iconv -f UTF-8 -t UTF-8 >/dev/null
    done
}

@test "random binary garbage as the config: exit 2 with FILE:LINE" {
    for i in $(seq 10); do
        f=$T/garbage-$i.ini
        head -c 4096 /dev/urandom >"$f"
        PARALLELRUN_CONFIG=$f run "$PR" run --dry-run jobs/demo.yaml
        [ "$status" -eq 2 ] || { echo "status $status: ${lines[0]}"; return 1; }
        [[ "${lines[0]}" =~ ^parallelrun:\ $f:[0-9]+:\  ]]
    done
}

@test "a UTF-8 byte order mark is accepted: libyaml reads it as an encoding mark" {
    printf '\xef\xbb\xbftasks:\n  t:\n    run: [echo, bom-ok]\n' >"$T/bom.yaml"
    run "$PR" validate "$T/bom.yaml"
    [ "$status" -eq 0 ]
    run "$PR" run "$T/bom.yaml"
    [ "$status" -eq 0 ]
    [[ "$output" == *"bom-ok"* ]]
}

@test "a job file rewritten during the run: the run keeps what it loaded" {
    job live <<EOF
tasks:
  first:
    run: [sh, -c, 'touch "$T/started"; until [ -e "$T/rewritten" ]; do sleep 0.05; done; echo original-first']
  second:
    needs: [first]
    run: [echo, original-second]
EOF
    "$PR" run "$T/live.yaml" >"$T/out" 2>"$T/err" &
    pid=$!
    wait_exists "$T/started" 100
    # In place, as an editor that truncates and writes would.
    cat >"$T/live.yaml" <<EOF
tasks:
  first:
    run: [touch, "$T/new-first"]
  second:
    run: [touch, "$T/new-second"]
  third:
    run: [touch, "$T/new-third"]
EOF
    touch "$T/rewritten"
    rc=0
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || { cat "$T/err"; return 1; }
    grep -q '^original-first$' "$T/out"
    grep -q '^original-second$' "$T/out"
    [ ! -e "$T/new-first" ]
    [ ! -e "$T/new-second" ]
    [ ! -e "$T/new-third" ]
}
