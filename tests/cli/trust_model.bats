#!/usr/bin/env bats
# Trust in the job model (issue #8): empty templates, --set of undeclared
# variables, out-of-range numbers, strict scalar types and tags, what
# validate checks, exit codes, concurrency caps and barriers, shell quoting
# of every substituted value in every quote context, and root's refusal of
# job files others control. Everything goes through the real binary.

load helpers
bats_require_minimum_version 1.5.0

setup() {
    common_setup
    export XDG_RUNTIME_DIR=$T/xdg PARALLELRUN_SHM_BASE=$T/shm
    mkdir -p "$XDG_RUNTIME_DIR" "$PARALLELRUN_SHM_BASE"
    TF=${PRUN_TIME_FACTOR:-1}
}
teardown() { common_teardown; }

# refused FILE EXPECTED...: validate and run both exit 2, print each
# EXPECTED, and run starts nothing (no $T/ran).
refused() {
    local f=$1 sub
    shift
    for sub in validate run; do
        run timeout $((30 * TF)) "$PR" $sub "$f"
        [ "$status" -eq 2 ] || { echo "$sub: status $status: $output"; return 1; }
        for want in "$@"; do
            [[ "$output" == *"$want"* ]] || { echo "$sub: missing '$want' in: $output"; return 1; }
        done
    done
    [ ! -e "$T/ran" ]
}

# ---- A: empty templates ----------------------------------------------------

@test "A: an empty cwd, command or argv[0] is refused at load with its position" {
    job cwd <<EOF
tasks:
  t:
    cwd: ""
    run: [touch, "$T/ran"]
EOF
    refused "$T/cwd.yaml" "cwd.yaml:3:10: 'cwd' must not be empty"
    job argv0 <<EOF
vars: {cmd: ""}
tasks:
  t:
    run: ["{vars.cmd}", "$T/ran"]
EOF
    refused "$T/argv0.yaml" "argv0.yaml:4:11: the command (first element of 'run') is empty"
    job sh <<EOF
vars: {x: "  "}
tasks:
  t:
    run: "{vars.x}"
EOF
    refused "$T/sh.yaml" "sh.yaml:4:10: 'run' is empty"
}

@test "A: --set x= that empties cwd or the command is refused at load" {
    job v <<EOF
vars: {d: "$T", c: touch}
tasks:
  t:
    cwd: "{vars.d}"
    run: ["{vars.c}", "$T/ran"]
EOF
    run "$PR" run "$T/v.yaml" --set d=
    [ "$status" -eq 2 ]
    [[ "$output" == *"v.yaml:4:10: 'cwd' must not be empty (it is, once {vars.} are substituted)"* ]]
    run "$PR" run "$T/v.yaml" --set c=
    [ "$status" -eq 2 ]
    [[ "$output" == *"v.yaml:5:11: the command (first element of 'run') is empty once {vars.} are substituted"* ]]
    [ ! -e "$T/ran" ]
    run "$PR" run "$T/v.yaml"
    [ "$status" -eq 0 ]
    [ -e "$T/ran" ]
}

@test "A: an item that empties cwd or the command fails that instance clearly, the joblog stays clean" {
    job e <<EOF
tasks:
  c:
    foreach: {list: ["", "$T"]}
    cwd: "{item}"
    run: [sh, -c, 'pwd > "\$1"/pwd.{index}', sh, "$T"]
  x:
    foreach: {list: [""]}
    run: ["{item}"]
  s:
    foreach: {list: [""]}
    run: "{item}"
EOF
    run timeout $((60 * TF)) "$PR" run "$T/e.yaml" --joblog "$T/log"
    [ "$status" -eq 1 ]
    [[ "$output" == *"c[0]: cwd is empty once the placeholders are substituted"* ]]
    [[ "$output" == *"x[0]: the command is empty once the placeholders are substituted"* ]]
    [ "$(cat "$T/pwd.1")" = "$T" ]
    [ ! -e "$T/pwd.0" ]
    # Every joblog line is printable text: no heap garbage.
    run env LC_ALL=C grep -c '[^[:print:][:space:]]' "$T/log"
    [ "$output" = 0 ]
    grep -q "''" "$T/log"
}

# ---- B: --set -------------------------------------------------------------

@test "B: --set of a variable the file does not declare: exit 2 with the closest name" {
    job s <<EOF
vars: {name: world, other: x}
tasks:
  t:
    run: [touch, "$T/ran"]
EOF
    for sub in validate run; do
        run "$PR" $sub "$T/s.yaml" --set nmae=x
        [ "$status" -eq 2 ]
        [[ "$output" == *"--set nmae: $T/s.yaml declares no such variable (did you mean 'name'?)"* ]]
    done
    run "$PR" run "$T/s.yaml" --set zzzzzz=1
    [ "$status" -eq 2 ]
    [[ "$output" == *"declares no such variable (declare it under 'vars:')"* ]]
    [ ! -e "$T/ran" ]
    run "$PR" run "$T/s.yaml" --set name=there
    [ "$status" -eq 0 ]
}

# ---- C: numbers -------------------------------------------------------------

@test "C: out-of-range, sub-millisecond, NaN, inf, hex, exponent and negative numbers are refused with position" {
    local i=0 spec want
    while IFS='|' read -r spec want; do
        i=$((i + 1))
        printf 'segments:\n  s: {size: 1KiB, writable: true}\ntasks:\n  t:\n    run: [touch, "%s/ran"]\n    %s\n' \
            "$T" "$spec" > "$T/c$i.yaml"
        refused "$T/c$i.yaml" "c$i.yaml:6:" "$want" || { echo "case: $spec"; return 1; }
    done <<'EOF'
rate: 1e-300/s|invalid rate '1e-300/s'
rate: 0.0000000001/s|rate '0.0000000001/s' is too low
rate: 99999999999/s|rate '99999999999/s' is too high
rate: nan/s|invalid rate
rate: inf|invalid rate
timeout: 0.4ms|duration '0.4ms' is shorter than 1ms
timeout: 0.0001s|shorter than 1ms
timeout: 99999999d|duration '99999999d' is too large
timeout: 1e3s|invalid duration '1e3s'
timeout: 0x10s|invalid duration '0x10s'
timeout: -1s|'timeout' must not be negative, got '-1s'
timeout: .nan|invalid duration '.nan'
kill_grace: 999999999999999999999999s|too large
retry_delay: " 5 x"|invalid duration
jobs: 100001|'jobs' must be at most 100000
retries: 99999999999999999999999|'retries' must be at most 1000
EOF
    job sz <<EOF
segments:
  a: {size: 9223372036854775808, writable: true}
tasks:
  t: {run: [touch, "$T/ran"], segments: [a]}
EOF
    refused "$T/sz.yaml" "sz.yaml:2:13: 'size': size '9223372036854775808' is too large"
    job sz2 <<EOF
segments:
  a: {size: 0x1000, writable: true}
tasks:
  t: {run: [touch, "$T/ran"], segments: [a]}
EOF
    refused "$T/sz2.yaml" "sz2.yaml:2:13: 'size': invalid size '0x1000'"
}

@test "C: a zero timeout still means none, and 1ms is accepted" {
    job z <<EOF
tasks:
  t:
    timeout: 0
    run: [touch, "$T/ran"]
  u:
    timeout: 1ms
    rate: 1/d
    run: ["true"]
EOF
    run "$PR" validate "$T/z.yaml"
    [ "$status" -eq 0 ]
}

# ---- D: strict types -----------------------------------------------------------

@test "D: non-strings where a command or string is expected, quoted integers and booleans, and tags are refused" {
    local i=0 spec want
    while IFS='|' read -r spec want; do
        i=$((i + 1))
        printf 'tasks:\n  t:\n    %b\n' "$spec" > "$T/d$i.yaml"
        refused "$T/d$i.yaml" "d$i.yaml:" "$want" || { echo "case: $spec"; return 1; }
    done <<'EOF'
run: 42|'run' must be a string naming a command, got an integer '42'
run: true|'run' must be a string naming a command, got a boolean 'true'
run: 1.5|got a number '1.5'
run: [42, x]|the command ('run' element 1) must be a string naming a command, got an integer
run: [False]|got a boolean 'False'
run: [echo, true]|a 'run' element must be a string, got a boolean 'true' (quote it: "true")
run: [echo, x]\n    jobs: "4"|'jobs' must be an integer >= 1, got the string '4'
run: [echo, x]\n    pool: "true"|'pool' must be true or false, got the string 'true'
run: [echo, x]\n    pool: yes|'pool' must be true or false, got 'yes'
run: [echo, x]\n    retries: !!str 3|'retries' must be an integer >= 0, got the string '3'
run: [echo, x]\n    env: {A: TRUE}|'A' must be a string, got a boolean 'TRUE'
run: [echo, x]\n    foreach: {range: [0, "3"]}|'range' values must be integers, got the string '3'
run: [echo, x]\n    foreach: {list: [a, true]}|a 'list' item must be a string, got a boolean
run: !!binary aGVsbG8=|YAML tag '!!binary' is not allowed
run: !!python/object:os.system x|YAML tag '!!python/object:os.system' is not allowed
run: !foo x|YAML tag '!foo' is not allowed
run: !!map {a: b}|YAML tag '!!map' is not allowed
run: [echo, !!int 3]|YAML tag '!!int' is not allowed
EOF
}

@test "D: !!str makes a string, numbers are fine as arguments, a quoted command is fine" {
    job ok <<EOF
vars: {n: 3}
tasks:
  t:
    run: [!!str 42, "1"]
  u:
    run: ["true", 1, 2.5, "{vars.n}"]
    env: {N: 1}
EOF
    run "$PR" validate "$T/ok.yaml"
    [ "$status" -eq 0 ]
    run "$PR" run --dry-run "$T/ok.yaml"
    [[ "$output" == *"t[0]	42 1"* ]]
    [[ "$output" == *"u[0]	true 1 2.5 3"* ]]
}

# ---- E: what validate checks -------------------------------------------------

@test "E: placeholder names of any valid length; a longer garbage name is refused" {
    v60=v$(printf 'x%.0s' $(seq 59))
    [ ${#v60} -eq 60 ]
    job long <<EOF
vars: {$v60: hello}
tasks:
  t:
    run: [echo, "{vars.$v60}"]
EOF
    run "$PR" run "$T/long.yaml"
    [ "$status" -eq 0 ]
    [ "$output" = hello ]
    v59=${v60:0:59}
    job garbage <<EOF
vars: {$v59: hello}
tasks:
  t:
    run: [touch, "$T/ran", "{vars.${v59}GARBAGE}"]
EOF
    refused "$T/garbage.yaml" "undefined variable '{vars.${v59:0:59}"
}

@test "E: reserved and colliding segment names are refused" {
    job owner <<EOF
segments:
  owner: {size: 1KiB, writable: true}
tasks:
  t: {run: [touch, "$T/ran"]}
EOF
    refused "$T/owner.yaml" "owner.yaml:2:3: segment name 'owner' is reserved"
    job case <<EOF
segments:
  data: {size: 1KiB, writable: true}
  Data: {size: 2KiB, writable: true}
tasks:
  t: {run: [touch, "$T/ran"], segments: [data, Data]}
EOF
    refused "$T/case.yaml" "case.yaml:3:3: segment 'Data' and segment 'data' (line 2) differ only in case"
    job suffix <<EOF
segments:
  a: {size: 1KiB, writable: true}
  a_size: {size: 2KiB, writable: true}
tasks:
  t: {run: [touch, "$T/ran"], segments: [a, a_size]}
EOF
    refused "$T/suffix.yaml" "suffix.yaml:3:3: segment 'a_size' clashes with segment 'a' (line 2): PARALLELRUN_SEGMENT_a_SIZE"
}

@test "E: segment files: missing, a directory, a FIFO (never blocks), dtype x shape against the size" {
    job miss <<EOF
segments:
  s: {file: "$T/nope.bin"}
tasks:
  t: {run: [touch, "$T/ran"], segments: [s]}
EOF
    refused "$T/miss.yaml" "miss.yaml:2:3: segment 's': cannot open '$T/nope.bin': No such file or directory"
    mkdir "$T/dir"
    sed "s#$T/nope.bin#$T/dir#" "$T/miss.yaml" > "$T/dir.yaml"
    refused "$T/dir.yaml" "segment 's': cannot open '$T/dir': Is a directory"
    mkfifo "$T/fifo"
    sed "s#$T/nope.bin#$T/fifo#" "$T/miss.yaml" > "$T/fifo.yaml"
    start=$(date +%s)
    refused "$T/fifo.yaml" "segment 's': cannot open '$T/fifo': not a regular file"
    [ $(($(date +%s) - start)) -lt $((30 * TF)) ]
    head -c 4000 /dev/zero > "$T/f.bin"
    job shape <<EOF
segments:
  s: {file: "$T/f.bin", dtype: float64, shape: [512]}
  w: {size: 4KiB, writable: true, dtype: float32, shape: [1024]}
tasks:
  t: {run: [touch, "$T/ran"], segments: [s, w]}
EOF
    refused "$T/shape.yaml" "shape.yaml:2:3: segment 's': dtype float64 and its shape make 4096 bytes, but the file holds 4000"
    job wshape <<EOF
segments:
  w: {size: 4000, writable: true, dtype: "<f4", shape: [1024]}
tasks:
  t: {run: [touch, "$T/ran"], segments: [w]}
EOF
    refused "$T/wshape.yaml" "segment 'w': dtype <f4 and its shape make 4096 bytes, but 'size' is 4000"
}

@test "E: validate of a lines: FIFO returns at once without reading it" {
    mkfifo "$T/lines"
    job l <<EOF
tasks:
  t:
    foreach: {lines: "$T/lines"}
    run: [echo, "{item}"]
EOF
    run timeout $((20 * TF)) "$PR" validate "$T/l.yaml"
    [ "$status" -eq 0 ]
    [[ "$output" == *"valid (1 task)"* ]]
}

# ---- F: exit codes -----------------------------------------------------------

@test "F: a missing or unreadable job file is exit 2" {
    for sub in validate run; do
        run "$PR" $sub "$T/none.yaml"
        [ "$status" -eq 2 ]
        [[ "$output" == *"cannot read '$T/none.yaml': No such file or directory"* ]]
        mkdir -p "$T/adir.yaml"
        run "$PR" $sub "$T/adir.yaml"
        [ "$status" -eq 2 ]
        [[ "$output" == *"cannot read '$T/adir.yaml'"* ]]
    done
}

# ---- G: caps and barriers ----------------------------------------------------

@test "G: a task's jobs above the run's concurrency is reported at start, even with --quiet" {
    job cap <<EOF
tasks:
  t:
    jobs: 8
    run: ["true"]
EOF
    run "$PR" run -j 2 --quiet --redis off "$T/cap.yaml"
    [ "$status" -eq 0 ]
    [[ "$output" == *"warning: task 't' has jobs: 8 but the run starts at most 2 children at once"* ]]
    run "$PR" run -j 8 --quiet --redis off "$T/cap.yaml"
    [ "$status" -eq 0 ]
    [ -z "$output" ]
}

@test "G: a barrier larger than the task's concurrency fails at once instead of hanging" {
    command -v redis-server >/dev/null || skip "redis-server not installed"
    start_redis r
    job bar <<'EOF'
jobs: 2
tasks:
  t:
    foreach: {range: [0, 4]}
    run: [sh, -c, '"$PARALLELRUN_BIN" barrier b --timeout 60s']
EOF
    start=$(date +%s)
    run timeout $((120 * TF)) "$PR" run --redis "unix://$T/r.sock" "$T/bar.yaml"
    [ "$status" -eq 1 ]
    [[ "$output" == *"barrier 'b' waits for 4 instances, but at most 2 of this task run at once"* ]]
    [ $(($(date +%s) - start)) -lt $((50 * TF)) ]
    # With room for every instance the same barrier fills.
    run timeout $((120 * TF)) "$PR" run -j 4 --redis "unix://$T/r.sock" "$T/bar.yaml"
    [ "$status" -eq 0 ]
}

# ---- H: shell quoting ----------------------------------------------------------

# The hostile values: each would run 'touch X' or break out if pasted raw.
hostile_items() {
    cat <<'EOF'
      - "$(touch X)"
      - "`touch X`"
      - "it's"
      - "a\"b"
      - "back\\slash\\"
      - "new\nline"
      - "; touch X; |"
      - "*?[a] ~ {x} $HOME"
      - "'; touch X; '"
      - "\"; touch X; \""
      - "--"
      - ""
EOF
}

@test "H: every item reaches the child exactly, in every quote context, and nothing executes" {
    mkdir "$T/w" "$T/out"
    {
        printf 'tasks:\n  t:\n    cwd: "%s/w"\n    foreach:\n      list:\n' "$T"
        hostile_items
        sed "s#@T@#$T#" <<'YAML'
    run: "printf '%s\\n' {item} \"{item}\" '{item}' \"x$(printf %s {item})y\" > @T@/out/{index} # {item}"
YAML
    } > "$T/h.yaml"
    run timeout $((60 * TF)) "$PR" run "$T/h.yaml"
    [ "$status" -eq 0 ] || { echo "$output"; cat "$T/h.yaml"; return 1; }
    [ ! -e "$T/w/X" ]
    /usr/bin/python3 - "$T" <<'PY'
import sys, os
T = sys.argv[1]
items = ["$(touch X)", "`touch X`", "it's", 'a"b', "back\\slash\\", "new\nline",
         "; touch X; |", "*?[a] ~ {x} $HOME", "'; touch X; '", '"; touch X; "',
         "--", ""]
for i, it in enumerate(items):
    got = open(os.path.join(T, "out", str(i))).read()
    want = "%s\n%s\n%s\nx%sy\n" % (it, it, it, it)
    assert got == want, (i, got, want)
PY
}

@test "H: --set and vars values are quoted too, in every context" {
    mkdir "$T/w"
    job v <<EOF
vars: {x: "", y: plain}
tasks:
  t:
    cwd: "$T/w"
    run: "printf '%s|' {vars.x} \"{vars.x}\" '{vars.x}' {vars.y} > $T/out"
EOF
    for val in '$(touch X)' '`touch X`' "it's" 'a"b\' "'; touch X; '" '; touch X'; do
        run timeout $((30 * TF)) "$PR" run "$T/v.yaml" --set "x=$val"
        [ "$status" -eq 0 ] || { echo "$val: $output"; return 1; }
        [ ! -e "$T/w/X" ]
        [ "$(cat "$T/out")" = "$val|$val|$val|plain|" ] || { echo "$val: $(cat "$T/out")"; return 1; }
    done
}

@test "H: placeholders the shell would re-read are refused with position and advice" {
    local i=0 spec want
    while IFS='|' read -r spec want; do
        i=$((i + 1))
        printf 'tasks:\n  t:\n    foreach: {list: [a]}\n    run: %s\n' "$spec" > "$T/q$i.yaml"
        refused "$T/q$i.yaml" "q$i.yaml:4:" "$want" "pass it as an argument" || { echo "case: $spec"; return 1; }
    done <<'EOF'
"echo `echo {item}`"|'{item}' cannot be shell-quoted inside `...`
"echo \"`echo {item}`\""|inside `...`
"echo $(( {item} + 1 ))"|inside $((...))
"echo ${{x:-{item}}}"|inside ${...}
"cat <<E\n{item}\nE"|after a here-document '<<'
"echo \\{item}"|right after a backslash
"echo \"\\{item}\""|right after a backslash
"echo ${item}"|right after '$'
EOF
    # Numbers are safe anywhere, and so is a var whose value is inert.
    job safe <<'EOF'
vars: {n: "5"}
tasks:
  t:
    foreach: {list: [a, b]}
    run: "echo $(( {index} + {vars.n} )) `echo {task}`"
EOF
    run "$PR" run "$T/safe.yaml"
    [ "$status" -eq 0 ]
    [[ "$output" == *"5 t"* ]]
    [[ "$output" == *"6 t"* ]]
}

# ---- I: root and job file ownership ------------------------------------------------

@test "I: root refuses a job file owned by another user, or in a world-writable non-sticky directory" {
    [ "$(id -u)" -eq 0 ] || skip "needs root"
    id nobody >/dev/null 2>&1 || skip "no user nobody"
    job own <<EOF
tasks:
  t: {run: [touch, "$T/ran"]}
EOF
    chown nobody "$T/own.yaml"
    refused "$T/own.yaml" "refusing to run as root a job file owned by uid $(id -u nobody)"
    chown root "$T/own.yaml"
    mkdir -m 0777 "$T/open"
    chmod 0777 "$T/open"
    cp "$T/own.yaml" "$T/open/j.yaml"
    refused "$T/open/j.yaml" "refusing to run as root a job file in $T/open, which every user can write"
    chmod 1777 "$T/open"
    run "$PR" run "$T/open/j.yaml"
    [ "$status" -eq 0 ]
    [ -e "$T/ran" ]
}
