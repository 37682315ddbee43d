#!/usr/bin/env bats
# Ad-hoc mode and GNU parallel's placeholders, run side by side with GNU
# parallel: the same command lines must give the same outputs.

load helpers

setup() {
    common_setup
    export XDG_RUNTIME_DIR=$T/xdg PARALLELRUN_SHM_BASE=$T/shm
    mkdir -p "$XDG_RUNTIME_DIR" "$PARALLELRUN_SHM_BASE"
    # parallel's citation notice stays out of the outputs compared.
    mkdir -p "$HOME/.parallel" && touch "$HOME/.parallel/will-cite"
}
teardown() {
    # This test's embedded server, if one outlived its runs (it lives
    # under XDG_RUNTIME_DIR here, where common_teardown does not look).
    local p=$T/xdg/parallelrun/redis.pid
    [ -f "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null
    common_teardown
}

# Both tools on the same arguments: stdout of each in $T/par and $T/pr,
# stdin from $IN (default /dev/null) for each.
# (Ad-hoc runs use --redis off here except where recording is the point.)
both() {
    parallel "$@" < "${IN:-/dev/null}" > "$T/par" 2>/dev/null || true
    "$PR" --redis off "$@" < "${IN:-/dev/null}" > "$T/pr" 2>/dev/null || true
}

same() {
    both "$@"
    [ -s "$T/par" ]
    diff "$T/par" "$T/pr"
}

TRICKY=(a.b/c foo.tar.gz .bashrc /a a/b/ / "x y.z" a/.b dir/sub.d/ "it's" '$HOME' plain)

@test "adhoc: {} {.} {/} {//} {/.} {#} as GNU parallel, list form" {
    same -k -j2 echo '[{}]' '[{.}]' '[{/}]' '[{//}]' '[{/.}]' '{#}' ::: "${TRICKY[@]}"
    [ "$(wc -l < "$T/pr")" -eq ${#TRICKY[@]} ]
    grep -qx '\[foo.tar.gz\] \[foo.tar\] \[foo.tar.gz\] \[.\] \[foo.tar\] 2' "$T/pr"
}

@test "adhoc: the same placeholders inside a shell command, quoted" {
    same -k 'echo [{}] [{.}] {/} | tr a-z A-Z' ::: "${TRICKY[@]}" '`id`' '$(id)'
    grep -qx '\[`ID`\] \[`ID`\] `ID`' "$T/pr"
    # Inside "..." too (where parallel's own quoting lets `id` run).
    run "$PR" --redis off -k 'echo "[{}]" "{.}"' ::: '`id`' '$(id).x' "it's"
    [ "$output" = "$(printf '[`id`] `id`\n[$(id).x] $(id)\n[it'"'"'s] it'"'"'s')" ]
}

@test "adhoc: several sources are a cartesian product; {N} {N.} {N/} and {#}" {
    same -k echo '{1}-{2.}-{2/}' '{#}' '{}' ::: a b c ::: x.1 dir/y.2
    [ "$(wc -l < "$T/pr")" -eq 6 ]
    printf 'l1\nl 2\n' > "$T/f"
    same -k echo '{2}:{1}' ::: a b :::: "$T/f"
    [ "$(wc -l < "$T/pr")" -eq 4 ]
    same -k echo :::: "$T/f" ::: p q
}

@test "adhoc: no placeholder appends the arguments, each one word, no shell" {
    run "$PR" --redis off -k "$SHOWARGS" ::: 'a b' '*' '$(id)'
    [ "$status" -eq 0 ]
    [ "$output" = "$(printf '[a b]\n[*]\n[$(id)]')" ]
    run "$PR" --redis off -k "$SHOWARGS" x {} y ::: 'p q' ::: r
    [ "$output" = "$(printf '[x]\n[p q]\n[r]\n[y]')" ]
    same -k echo pre ::: a b ::: x
}

@test "adhoc: arguments from stdin, :::: FILE and -0 (find -print0)" {
    printf 'one\ntwo words\nthree' > "$T/in"
    IN=$T/in both -k echo 'x{}y'
    diff "$T/par" "$T/pr"
    [ "$(wc -l < "$T/pr")" -eq 3 ]
    same -k echo 'x{}y' :::: "$T/in"
    mkdir -p "$T/tree/sub dir" && touch "$T/tree/a" "$T/tree/sub dir/b c" "$T/tree/sub dir/d"
    (cd "$T/tree" && find . -type f -print0 | sort -z) > "$T/nul"
    IN=$T/nul both -k -0 echo '[{/}]'
    diff "$T/par" "$T/pr"
    # Every record, not just the first.
    [ "$(wc -l < "$T/pr")" -eq 3 ]
    grep -qx '\[b c\]' "$T/pr"
    same -k -0 echo '[{}]' :::: "$T/nul"
}

@test "adhoc: a NUL byte in newline-separated input is refused with a hint at -0" {
    # Streamed stdin: what came before runs, nothing from that item on.
    run "$PR" --redis off -j1 echo < <(printf 'x\na\0b\ny\n')
    [ "$status" -eq 1 ]
    [ "$(echo "$output" | grep -c '^x$')" -eq 1 ]
    ! grep -q '^y$' <<< "$output"
    [ "$(grep -c 'NUL byte' <<< "$output")" -eq 1 ]
    [[ "$output" == *"stdin item 2 contains a NUL byte; use -0/--null for NUL-separated input"* ]]
    # find -print0 without -0: the first item already holds one.
    run "$PR" --redis off echo < <(printf 'a\0b\0')
    [ "$status" -eq 1 ]
    [[ "$output" == *"stdin item 1 contains a NUL byte"* ]]
    ! grep -qx a <<< "$output"
    # Read whole before the run (a :::: file among several sources): a
    # usage error, nothing started.
    printf 'p\nq\0r\n' > "$T/nul"
    run "$PR" --redis off echo :::: "$T/nul" ::: 1
    [ "$status" -eq 2 ]
    [[ "$output" == *"$T/nul item 2 contains a NUL byte; use -0/--null"* ]]
    ! grep -qx 'p 1' <<< "$output"
    # With -0 the same bytes are fine.
    run "$PR" --redis off -k -0 echo '[{}]' < <(printf 'a\0b\0')
    [ "$status" -eq 0 ]
    [ "$output" = "$(printf '[a]\n[b]')" ]
}

@test "adhoc: {%} and PARALLELRUN_SLOT are the slot, within -j" {
    run "$PR" --redis off -j2 sh -c 'echo "{%} $PARALLELRUN_SLOT"' ::: 1 2 3 4 5 6
    [ "$status" -eq 0 ]
    [ "$(echo "$output" | wc -l)" -eq 6 ]
    while read -r s e; do
        [ "$s" = "$e" ]
        [ "$s" = 1 ] || [ "$s" = 2 ]
    done <<< "$output"
    run "$PR" --redis off -j1 echo '{%}' ::: a b c
    [ "$output" = "$(printf '1\n1\n1')" ]
    same -k -j1 echo '{%}' ::: a b c
}

@test "adhoc: -k keeps input order whatever finishes first" {
    run "$PR" --redis off -j4 -k sh -c 'sleep 0.$((4 - {})); echo {}' ::: 1 2 3
    [ "$status" -eq 0 ]
    [ "$output" = "$(printf '1\n2\n3')" ]
}

@test "adhoc: --tag prints the argument, --tagstring a template, as parallel" {
    same -k --tag echo out ::: a 'b c'
    grep -qx "$(printf 'b c\tout b c')" "$T/pr"
    same -k --tag echo ::: a b ::: x
    grep -qx "$(printf 'a x\ta x')" "$T/pr"
    same -k --tagstring '<{#}:{}>' echo ::: a b
    run "$PR" --redis off --tag echo hi ::: q
    [ "$output" = "$(printf 'q\thi q')" ]
}

@test "adhoc: {%} in --tagstring is the slot, as in the command and parallel" {
    same -k -j1 --tagstring '{%}' echo '{%}' ::: a b c
    [ "$(cat "$T/pr")" = "$(printf '1\t1\n1\t1\n1\t1')" ]
    # -j2: which slot each gets varies, but the tag is always the slot.
    run "$PR" --redis off -j2 --tagstring 's{%}' echo '{%}' ::: $(seq 8)
    [ "$status" -eq 0 ]
    [ "$(echo "$output" | wc -l)" -eq 8 ]
    while IFS=$'\t' read -r tag val; do
        [ "$tag" = "s$val" ]
        [ "$val" = 1 ] || [ "$val" = 2 ]
    done <<< "$output"
    # parallel agrees on the pairing.
    parallel -j2 --tagstring 's{%}' echo '{%}' ::: $(seq 8) > "$T/par"
    ! awk -F'\t' '$1 != "s" $2 { bad = 1 } END { exit !bad }' "$T/par"
}

@test "adhoc: --halt now,fail=1 stops where parallel stops" {
    same -j1 --halt now,fail=1 'echo {}; exit {}' ::: 0 1 0 0
    [ "$(cat "$T/pr")" = "$(printf '0\n1')" ]
    run "$PR" --redis off -j1 --halt now,fail=1 false ::: a b
    [ "$status" -eq 1 ]
    for bad in sometimes now,fail=0 now,fail=101% now,fail= now,fial=1 never,fail=1; do
        run "$PR" --redis off --halt "$bad" true ::: a
        [ "$status" -eq 2 ]
        [[ "$output" == *"--halt"* ]]
    done
}

# Both tools on the same arguments, -j1: the same items run, the same
# exit status.
same_halt() {
    local ps rs
    parallel -j1 --halt "$1" "$CMD" ::: "${@:2}" > "$T/par" 2>/dev/null && ps=0 || ps=$?
    "$PR" --redis off -j1 --halt "$1" "$CMD" ::: "${@:2}" > "$T/pr" 2>/dev/null && rs=0 || rs=$?
    echo "--halt $1: parallel $ps $(echo $(cat "$T/par")); parallelrun $rs $(echo $(cat "$T/pr"))"
    [ "$ps" = "$rs" ]
    diff "$T/par" "$T/pr"
}

@test "adhoc: --halt fail=N%, success=N[%], done=N: the items and exit status of parallel" {
    CMD='echo {}; case {} in 2|4|5|7|9) exit {};; esac'
    for h in now,fail=30% soon,fail=30% now,fail=10% soon,fail=90% now,fail=2 \
        soon,fail=3 now,success=2 soon,success=50% now,success=30% \
        now,done=3 soon,done=20% 1 2 -1 -2 5% soon,fail=50; do
        same_halt "$h" $(seq 10)
    done
    # The exit status of the failing instance itself when the threshold
    # is one: fail=1, or a percentage that comes to one instance.
    same_halt now,fail=10% 1 2 3 4 5 6 7 8 9 10
    [ "$rs" = 2 ] || [ "$(tail -1 "$T/pr")" = 2 ]
    same_halt now,fail=25% 1 3 6 7
    # Percentages of stdin's lines are of all of them: read first.
    seq 10 | "$PR" --redis off -j1 --halt now,fail=30% "$CMD" > "$T/pr" 2>/dev/null && rs=0 || rs=$?
    [ "$rs" = 30 ]
    [ "$(echo $(cat "$T/pr"))" = "1 2 3 4 5" ]
}

@test "adhoc: joblog Receive counts bytes; +FILE appends; parallel resumes from it" {
    printf '#!/bin/sh\nprintf %%s "$1"; [ "$1" != 22 ]\n' > "$T/pf"
    chmod +x "$T/pf"
    "$PR" --redis off -j1 --joblog "$T/jl" "$T/pf" ::: 1 22 333 || true
    parallel -j1 --joblog "$T/pjl" "$T/pf" ::: 1 22 333 || true
    diff <(cut -f1,5-9 "$T/pjl") <(cut -f1,5-9 "$T/jl")
    [ "$(cut -f6 "$T/jl" | tail -n +2 | tr '\n' ' ')" = "1 2 3 " ]
    # GNU parallel reads our joblog: --resume-failed reruns only 22.
    run parallel -j1 --resume-failed --joblog "$T/jl" "$T/pf" ::: 1 22 333
    [ "$output" = "22" ]
    # And parallelrun resumes from the joblog parallel wrote: --resume runs
    # only what has no row, --resume-failed also what failed.
    run "$PR" --redis off -j1 --resume --joblog "$T/pjl" "$T/pf" ::: 1 22 333 4
    [ "$status" -eq 0 ]
    [ "$output" = "4" ]
    st=0
    out=$("$PR" --redis off -j1 --resume-failed --joblog "$T/pjl" "$T/pf" ::: 1 22 333 4 2>/dev/null) || st=$?
    [ "$st" -eq 1 ]
    [ "$out" = "22" ]
    [ "$(grep -c '^Seq' "$T/pjl")" -eq 1 ]
    run "$PR" --redis off --resume true ::: a
    [ "$status" -eq 2 ]
    "$PR" --redis off --joblog "+$T/jl2" echo ::: a
    "$PR" --redis off --joblog "+$T/jl2" echo ::: b
    [ "$(grep -c '^Seq' "$T/jl2")" -eq 1 ]
    [ "$(wc -l < "$T/jl2")" -eq 3 ]
    "$PR" --redis off --joblog "$T/jl2" echo ::: c
    [ "$(wc -l < "$T/jl2")" -eq 2 ]
}

@test "adhoc: --retries N is N tries in all, --timeout stops an instance" {
    run "$PR" --redis off --retries 3 sh -c 'echo x >> "$1"; [ $(wc -l < "$1") -ge 3 ]' sh "$T/cnt" ::: a
    [ "$status" -eq 0 ]
    [ "$(wc -l < "$T/cnt")" -eq 3 ]
    run timeout $((20 * ${PRUN_TIME_FACTOR:-1})) "$PR" --redis off --timeout 0.3 sleep ::: 30
    [ "$status" -eq 1 ]
    [[ "$output" == *"timed out"* ]]
}

@test "adhoc: mistakes are usage errors, nothing started; braces stay literal" {
    run "$PR" --redis off --frobnicate echo ::: a
    [ "$status" -eq 2 ]
    [[ "$output" == *"unknown option '--frobnicate'"* ]]
    run "$PR" --redis off -j 0 touch "$T/never" ::: a
    [ "$status" -eq 2 ]
    [ ! -e "$T/never" ]
    run "$PR" --redis off --retries
    [ "$status" -eq 2 ]
    # A word that is neither a subcommand nor a program: said at once.
    run "$PR" stauts ::: a
    [ "$status" -eq 2 ]
    [[ "$output" == *"unknown command 'stauts' (did you mean 'status'?)"* ]]
    run "$PR" --redis off no-such-program-here ::: a
    [ "$status" -eq 2 ]
    [[ "$output" == *"no program of that name in PATH"* ]]
    # parallel passes it through a shell, which splits it: ours is one word.
    printf 'a b\n' > "$T/w"
    run "$PR" --redis off awk '{print $2}' ::: "$T/w"
    [ "$output" = b ]
    run "$PR" --redis off --dry-run echo {.} ::: 'a b.c' d
    [ "$output" = "$(printf "echo 'a b'\necho d")" ]
}

@test "adhoc: runs are recorded: runs, status" {
    run "$PR" -j2 echo ::: a b c
    [ "$status" -eq 0 ]
    run "$PR" runs
    [ "$status" -eq 0 ]
    [[ "$output" == *" echo "* ]]
    id=$(echo "$output" | awk 'NR == 2 { print $1 }')
    run "$PR" status "$id"
    [[ "$output" == *"3 succeeded"* ]]
}

@test "job file: GNU placeholders; {N} is the Nth matrix axis, with chunk the Nth value" {
    job p <<'YAML'
version: 1
jobs: 1
tasks:
  a:
    run: [echo, "[{}] [{.}] [{/}] [{//}] [{/.}] {#}"]
    foreach: {list: [a.b/c, foo.tar.gz, /a, a/b/]}
  m:
    needs: [a]
    run: [echo, "{1}-{2.}-{}", "{%}"]
    foreach: {matrix: {x: [a.x, b.y], y: [c.z, d]}}
  c:
    needs: [m]
    run: "echo {1}-{2}-{3} {#}"
    foreach: {list: [a, b, c, d, e], chunk: 2}
YAML
    run "$PR" run "$T/p.yaml" --redis off
    [ "$status" -eq 0 ]
    parallel -k echo '[{}] [{.}] [{/}] [{//}] [{/.}] {#}' ::: a.b/c foo.tar.gz /a a/b/ > "$T/exp"
    parallel -k echo '{1}-{2.}-{}' 1 ::: a.x b.y ::: c.z d >> "$T/exp"
    parallel -k -N2 echo '{1}-{2}-{3} {#}' ::: a b c d e >> "$T/exp"
    diff "$T/exp" <(echo "$output")
}

@test "progress: --bar forces the line on; it fits a 40-column terminal" {
    # A pty of 40 columns: every redraw must fit, or it wraps and stays.
    run timeout $((30 * ${PRUN_TIME_FACTOR:-1})) script -qec \
        "stty cols 40 rows 10; '$PR' --redis off --bar -j2 sh -c 'sleep 0.05' ::: \$(seq 40) >/dev/null" /dev/null
    [ "$status" -eq 0 ]
    echo "$output" | tr '\r' '\n' | sed 's/\x1b\[K//g' > "$T/lines"
    grep -q '/40' "$T/lines"
    ! awk 'length($0) > 39 { bad = 1 } END { exit !bad }' "$T/lines"
    # Off a terminal, --bar still draws it.
    run "$PR" --redis off --bar true ::: a
    [[ "$output" == *"/1 "* ]]
}

@test "progress: a resized terminal (SIGWINCH) is followed: the line is cut to the new width" {
    mkfifo "$T/gate"
    # A pty 100 columns wide; the first instance waits on the fifo while
    # the terminal shrinks to 30 columns.
    run timeout "$(scaled 60)" /usr/bin/python3 - "$PR" "$T/gate" <<'PY'
import fcntl, os, pty, select, struct, sys, termios

pr, gate = sys.argv[1], sys.argv[2]

def size(fd, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 10, cols, 0, 0))

pid, fd = pty.fork()
if pid == 0:
    size(0, 100)
    os.execv(pr, [pr, "--redis", "off", "--bar", "-j1", "sh", "-c",
                  '[ "$1" != 1 ] || read x < "$0"', gate, ":::", "1", "2", "3"])

buf = b""

def read_until(pred):
    global buf
    while not pred():
        r, _, _ = select.select([fd], [], [])
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            return False
        buf += chunk
    return True

def draws(data):
    # Each redraw is "\r\033[K" and the line ("[===  ] 1/3 ..."); the
    # summary at the end is no redraw.
    return [s[3:] for s in data.split(b"\r") if s.startswith(b"\x1b[K[")]

assert read_until(lambda: len(draws(buf)) > 0), buf
wide = draws(buf)
assert max(len(d) for d in wide) > 29, wide
mark = len(buf)
size(fd, 30)
assert read_until(lambda: len(draws(buf[mark:])) > 0), buf
with open(gate, "w") as g:
    g.write("go\n")
read_until(lambda: False)
_, st = os.waitpid(pid, 0)
narrow = draws(buf[mark:])
print("before:", wide[-1], "after:", narrow)
assert os.WEXITSTATUS(st) == 0, st
assert narrow and all(len(d) <= 29 for d in narrow), narrow
PY
    echo "$output"
    [ "$status" -eq 0 ]
}
