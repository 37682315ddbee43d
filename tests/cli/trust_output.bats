#!/usr/bin/env bats
# Trust in what the runner does with children's output: every byte read is
# consumed whatever its size or mode, memory stays bounded when $TMPDIR is
# unusable, JSON is valid whatever bytes it carries, output locations are
# checked before anything starts, and no output file is written through a
# symbolic link.

load helpers

setup() {
    common_setup
    export XDG_RUNTIME_DIR=$T/xdg PARALLELRUN_SHM_BASE=$T/shm
    mkdir -p "$XDG_RUNTIME_DIR" "$PARALLELRUN_SHM_BASE"
    TF=${PRUN_TIME_FACTOR:-1}
}

# Shell code making /tmp and /var/tmp read-only (inside unshare -m).
RO_TMP='mount --bind /tmp /tmp && mount -o remount,bind,ro /tmp &&
    mount --bind /var/tmp /var/tmp && mount -o remount,bind,ro /var/tmp ||
    { echo remount-failed >&2; exit 99; }
'

teardown() { common_teardown; }

# bounded SECONDS CMD...: runs CMD with a hard time limit (SIGKILL after a
# grace: a runaway runner may ignore SIGTERM), its exit status in $rc.
bounded() {
    local s=$(($1 * TF))
    shift
    rc=0
    timeout -k 5 "$s" "$@" || rc=$?
}

# emit_job NAME BYTES STREAM [NL]: one instance writing BYTES 'x' bytes in
# one write to STREAM (1 or 2), then a newline if NL is 1, and exiting 0.
emit_job() {
    cat >"$T/emit.py" <<'PY'
import os, sys
size, fd, nl = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == '1'
v = memoryview(b'x' * size + (b'\n' if nl else b''))
while v:
    v = v[os.write(fd, v):]
PY
    job "$1" <<EOF
tasks:
  t:
    run: [/usr/bin/python3, $T/emit.py, "$2", "$3", "${4:-0}"]
EOF
}

# check_pieces FILE BYTES: FILE holds BYTES 'x' bytes, every line tagged
# "t[0]<TAB>", and no line (a piece of a long one) longer than 64 KiB.
check_pieces() {
    /usr/bin/python3 - "$1" "$2" <<'PY'
import sys
data = open(sys.argv[1], 'rb').read()
want = int(sys.argv[2])
lines = data.split(b'\n')
assert lines[-1] == b'', 'output does not end with a newline'
lines = lines[:-1]
body = 0
for l in lines:
    assert l.startswith(b't[0]\t'), l[:40]
    piece = l[5:]
    assert len(piece) <= 65536, len(piece)
    assert piece.strip(b'x') == b'', piece[:40]
    body += len(piece)
assert body == want, (body, want)
PY
}

# gen_job NAME CHAR BYTES FDS [EXIT]: one instance writing BYTES of CHAR
# (in 1 MiB writes, no newline) to each fd of the comma list FDS.
gen_job() {
    cat >"$T/gen.py" <<'PY'
import os, sys
ch, total, fds, code = sys.argv[1].encode(), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
for fd in map(int, fds.split(',')):
    left = total
    while left:
        v = memoryview(ch * min(left, 1 << 20))
        left -= len(v)
        while v:
            v = v[os.write(fd, v):]
sys.exit(code)
PY
    job "$1" <<EOF
tasks:
  t:
    run: [/usr/bin/python3, $T/gen.py, "$2", "$3", "$4", "${5:-0}"]
EOF
}

@test "--tag: lines of 64 KiB and more without a newline are printed once, in pieces" {
    for size in 65535 65536 65537 131072 1048576; do
        for stream in 1 2; do
            emit_job big "$size" "$stream" 0
            if [ "$stream" = 1 ]; then
                bounded 60 sh -c '"$1" run "$2" --tag --redis off 2>/dev/null | head -c 4000000 >"$3"' \
                    sh "$PR" "$T/big.yaml" "$T/out"
            else
                bounded 60 sh -c '"$1" run "$2" --tag --redis off 2>&1 >/dev/null | head -c 4000000 >"$3"' \
                    sh "$PR" "$T/big.yaml" "$T/out"
            fi
            [ "$rc" -eq 0 ]
            check_pieces "$T/out" "$size"
        done
    done
}

@test "--tag: a long line ending in a newline and split across reads is whole" {
    for size in 65535 65536 200000; do
        emit_job nl "$size" 1 1
        bounded 60 sh -c '"$1" run "$2" --tag --redis off | head -c 4000000 >"$3"' \
            sh "$PR" "$T/nl.yaml" "$T/out"
        [ "$rc" -eq 0 ]
        check_pieces "$T/out" "$size"
    done
}

@test "--tag --quiet: a failed instance's long output is printed once, tagged" {
    gen_job tq y 300000 1 3
    bounded 60 sh -c '"$1" run "$2" --tag --quiet --redis off 2>/dev/null | head -c 4000000 >"$3"' \
        sh "$PR" "$T/tq.yaml" "$T/out"
    [ "$rc" -eq 0 ]
    [ "$(tr -d 'y\n' <"$T/out" | sed 's/t\[0\]\t//g' | wc -c)" -eq 0 ]
    [ "$(tr -cd y <"$T/out" | wc -c)" -eq 300000 ]
    [ "$(grep -vc $'^t\\[0\\]\t' "$T/out")" -eq 0 ]
}

@test "grouped output of 1 MiB on both streams, no newline, is printed exactly" {
    gen_job both z 1048576 1,2
    bounded 60 sh -c '"$1" run "$2" --redis off 2>"$4" | head -c 4000000 >"$3"' \
        sh "$PR" "$T/both.yaml" "$T/out" "$T/err"
    [ "$rc" -eq 0 ]
    [ "$(wc -c <"$T/out")" -eq 1048576 ]
    [ "$(tr -cd z <"$T/err" | wc -c)" -eq 1048576 ]
}

@test "unusable TMPDIR: output spills elsewhere with a note; memory stays bounded" {
    [ -x /usr/bin/time ] || skip "needs /usr/bin/time"
    gen_job huge w 268435456 1
    : >"$T/afile"
    for bad in "$T/does-not-exist" "$T/afile"; do
        bounded 300 sh -c 'TMPDIR="$1" /usr/bin/time -f %M -o "$2" "$3" run "$4" --redis off 2>"$5" | wc -c >"$6"' \
            sh "$bad" "$T/rss" "$PR" "$T/huge.yaml" "$T/err" "$T/n"
        [ "$rc" -eq 0 ]
        [ "$(cat "$T/n")" -eq 268435456 ]
        grep -q "note: TMPDIR is unusable ($bad: " "$T/err"
        # 256 MiB printed; the runner's peak RSS stays far below it.
        [ "$(tail -1 "$T/rss")" -lt 65536 ]
    done
}

@test "no directory can hold spilled output: bounded memory, clear failure" {
    [ "$(id -u)" = 0 ] || skip "needs root for a private mount namespace"
    unshare -m true 2>/dev/null || skip "unshare -m not available"
    gen_job spill v 67108864 1
    # /tmp and /var/tmp read-only in a private mount namespace; $TMPDIR
    # gone. Every file the test keeps is opened outside the namespace.
    bounded 120 bash -c 'set -o pipefail; unshare -m sh -c "$0" sh "$@" 3>"$1/rss" 2>"$1/err" | head -c 4000000 >"$1/out"' \
        "$RO_TMP"' TMPDIR="$1/nope" /usr/bin/time -f %M -o /dev/fd/3 "$2" run "$3" --redis off' \
        "$T" "$PR" "$T/spill.yaml"
    grep -q remount-failed "$T/err" && skip "cannot remount read-only here"
    [ "$rc" -eq 3 ]
    grep -q "note: no directory can hold output past 64 KiB" "$T/err"
    grep -q "t\[0\]: stdout past 64 KiB dropped: no directory can hold it" "$T/err"
    # What was kept is printed (the first 64 KiB), then where it stops.
    [ "$(tr -cd v <"$T/out" | wc -c)" -eq 65536 ]
    [ "$(tail -1 "$T/out")" = "parallelrun: t[0]: $((67108864 - 65536)) more bytes of stdout were dropped: no room to keep them" ]
    [ "$(tail -1 "$T/rss")" -lt 65536 ]
}

@test "no directory can hold spilled output, but --results: printed from there" {
    [ "$(id -u)" = 0 ] || skip "needs root for a private mount namespace"
    unshare -m true 2>/dev/null || skip "unshare -m not available"
    gen_job spill u 2000000 1
    mkdir "$T/r"
    bounded 120 sh -c 'unshare -m sh -c "$0" sh "$@" >"$1/out" 2>"$1/err"' \
        "$RO_TMP"' mount -t tmpfs none "$1/r" || exit 98
        TMPDIR="$1/nope" "$2" run "$3" --redis off --results "$1/r"' \
        "$T" "$PR" "$T/spill.yaml"
    [ "$rc" -ne 98 ] || skip "cannot mount a tmpfs here"
    grep -q remount-failed "$T/err" && skip "cannot remount read-only here"
    [ "$rc" -eq 0 ]
    [ "$(tr -cd u <"$T/out" | wc -c)" -eq 2000000 ]
    grep -q "read back from the results files" "$T/err"
}

# The bytes a hostile child can put in an item and its stderr.
hostile_job() {
    cat >"$T/hostile.py" <<'PY'
import os, sys
os.write(2, b'nul\x00 bad\xff\xfe utf8 \xc3( \xed\xa0\x80 esc\x1b[31m "q" \\ \x01\x7f end\n')
sys.exit(5)
PY
    job hostile <<EOF
tasks:
  t:
    foreach: {list: ["q\\"uo\\\\te\\tctl\\u0001\\u001f\\u007f", "caf\\u00e9 ok"]}
    run: [/usr/bin/python3, $T/hostile.py]
EOF
}

@test "--json is valid JSON whatever bytes items and stderr tails hold" {
    hostile_job
    bounded 60 "$PR" run "$T/hostile.yaml" --json --redis off >"$T/j" 2>/dev/null
    [ "$rc" -eq 1 ]
    /usr/bin/python3 -m json.tool "$T/j" >/dev/null
    /usr/bin/python3 - "$T/j" <<'PY'
import json, sys
d = json.load(open(sys.argv[1], encoding='utf-8', errors='strict'))
f = sorted(d['failures'], key=lambda f: f['index'])
assert f[0]['item'] == 'q"uo\\te\tctl\x01\x1f\x7f', repr(f[0]['item'])
assert f[1]['item'] == 'caf\u00e9 ok', repr(f[1]['item'])
t = f[0]['stderr_tail']
assert 'bad\ufffd\ufffd utf8 \ufffd( \ufffd\ufffd\ufffd esc\x1b[31m "q" \\ \x01\x7f end' in t, repr(t)
assert t.startswith('nul'), repr(t)
PY
}

@test "status --json is valid JSON whatever bytes items and stderr tails hold" {
    hostile_job
    bounded 60 "$PR" run "$T/hostile.yaml" >/dev/null 2>&1
    [ "$rc" -eq 1 ]
    bounded 60 "$PR" status --json >"$T/j"
    [ "$rc" -eq 1 ]
    /usr/bin/python3 -m json.tool "$T/j" >/dev/null
    /usr/bin/python3 - "$T/j" <<'PY'
import json, sys
d = json.load(open(sys.argv[1], encoding='utf-8', errors='strict'))
items = sorted(f['item'] for f in d['failures'])
assert 'q"uo\\te\tctl\x01\x1f\x7f' in items, items
assert any('bad\ufffd\ufffd' in f['stderr_tail'] for f in d['failures'])
PY
    bounded 60 "$PR" runs --json >"$T/r"
    /usr/bin/python3 -m json.tool "$T/r" >/dev/null
}

@test "status exits 1 for a failed run and 0 for a succeeded one; --help says so" {
    job ok <<'EOF'
tasks:
  t:
    run: ["true"]
EOF
    job bad <<'EOF'
tasks:
  t:
    run: ["false"]
EOF
    bounded 60 "$PR" run "$T/ok.yaml"
    [ "$rc" -eq 0 ]
    bounded 60 "$PR" status
    [ "$rc" -eq 0 ]
    bounded 60 "$PR" status --watch
    [ "$rc" -eq 0 ]
    bounded 60 "$PR" run "$T/bad.yaml"
    [ "$rc" -eq 1 ]
    bounded 60 "$PR" status
    [ "$rc" -eq 1 ]
    bounded 60 "$PR" status --json
    [ "$rc" -eq 1 ]
    bounded 60 "$PR" status --watch
    [ "$rc" -eq 1 ]
    run "$PR" status --help
    [ "$status" -eq 0 ]
    [[ "$output" == *"Exit status"*"1  the run failed"*"lost"* ]]
}

@test "status exits 1 for a lost run" {
    job lostjob <<EOF
tasks:
  t:
    run: [sh, -c, 'echo \$\$ > $T/child.pid; exec sleep 60']
EOF
    "$PR" run "$T/lostjob.yaml" >/dev/null 2>&1 &
    runner=$!
    wait_for "$T/child.pid" $((100 * TF))
    rid=$("$PR" status --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["run"]["run_id"])')
    kill -9 "$runner"
    wait "$runner" || true
    kill -9 "$(cat "$T/child.pid")" 2>/dev/null || true
    st=
    for ((i = 0; i < 80 * TF; i++)); do
        st=$("$PR" status "$rid" --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["run"]["state"])')
        [ "$st" = lost ] && break
        sleep 0.25
    done
    [ "$st" = lost ]
    bounded 60 "$PR" status "$rid"
    [ "$rc" -eq 1 ]
    bounded 60 "$PR" status "$rid" --watch
    [ "$rc" -eq 1 ]
}

# marker_job: a job whose child would leave $T/started.
marker_job() {
    job marker <<EOF
tasks:
  t:
    run: [touch, $T/started]
EOF
}

@test "an unusable --results or --joblog location: exit 2, nothing started" {
    marker_job
    : >"$T/file"
    run "$PR" run "$T/marker.yaml" --redis off --results "$T/file/sub"
    [ "$status" -eq 2 ]
    [[ "$output" == *"$T/file/sub"*"Not a directory"* ]]
    [ ! -e "$T/started" ]
    run "$PR" run "$T/marker.yaml" --redis off --joblog "$T/nodir/log"
    [ "$status" -eq 2 ]
    [[ "$output" == *"$T/nodir/log"*"No such file or directory"* ]]
    [ ! -e "$T/started" ]
    # Nothing was recorded either: the embedded Redis knows no run.
    run "$PR" run "$T/marker.yaml" --joblog "$T/nodir/log"
    [ "$status" -eq 2 ]
    [ ! -e "$T/started" ]
    run "$PR" status
    [ "$status" -eq 1 ]
    [[ "$output" != *"marker"* ]]
}

@test "an unwritable --results directory is refused for a non-root user too" {
    [ "$(id -u)" = 0 ] || skip "needs root to switch to another user"
    command -v setpriv >/dev/null || skip "needs setpriv"
    marker_job
    mkdir -p "$T/ro" "$T/w"
    chmod 755 "$T/ro" "$T"
    chmod 777 "$T/w"
    chmod o+rx "$(dirname "$T")" 2>/dev/null || true
    setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$PR" ||
        skip "the binary is not reachable for nobody"
    rc=0
    HOME=$T/w setpriv --reuid=65534 --regid=65534 --clear-groups \
        "$PR" run "$T/marker.yaml" --redis off --results "$T/ro" >"$T/w/out" 2>&1 || rc=$?
    [ "$rc" -eq 2 ]
    grep -q "$T/ro/.*Permission denied" "$T/w/out"
    [ ! -e "$T/started" ]
}

@test "--joblog: a planted symlink is not followed and its target is untouched" {
    marker_job
    echo precious >"$T/victim"
    ln -s "$T/victim" "$T/log"
    run "$PR" run "$T/marker.yaml" --redis off --joblog "$T/log"
    [ "$status" -eq 2 ]
    [[ "$output" == *"'$T/log' is a symbolic link"* ]]
    [ "$(cat "$T/victim")" = precious ]
    [ ! -e "$T/started" ]
    # Someone else's file is not truncated either.
    rm "$T/log"
    echo theirs >"$T/log"
    chown 65534 "$T/log" 2>/dev/null || skip "cannot chown"
    run "$PR" run "$T/marker.yaml" --redis off --joblog "$T/log"
    [ "$status" -eq 2 ]
    [[ "$output" == *"'$T/log' belongs to uid 65534"* ]]
    [ "$(cat "$T/log")" = theirs ]
    # A hard link to a file elsewhere is not truncated.
    rm "$T/log"
    ln "$T/victim" "$T/log"
    run "$PR" run "$T/marker.yaml" --redis off --joblog "$T/log"
    [ "$status" -eq 2 ]
    [[ "$output" == *"hard links"* ]]
    [ "$(cat "$T/victim")" = precious ]
    # Our own file is rewritten as before.
    rm "$T/log"
    echo old >"$T/log"
    run "$PR" run "$T/marker.yaml" --redis off --joblog "$T/log"
    [ "$status" -eq 0 ]
    [ "$(wc -l <"$T/log")" -eq 2 ]
    ! grep -q old "$T/log"
}

# A two-task job: task a plants something in the results tree; b then
# writes its results. $1 is the shell code a runs (R is the run's dir).
plant_job() {
    job plant <<EOF
tasks:
  a:
    run: [sh, -c, 'R=$T/r/\$PARALLELRUN_RUN_ID; $1']
  b:
    needs: [a]
    run: [sh, -c, 'echo from-b; echo err-b >&2']
EOF
}

@test "--results: a symlink planted at DIR/RUN_ID/TASK is refused, named" {
    echo precious >"$T/victim"
    mkdir "$T/vdir"
    plant_job "ln -s $T/vdir \$R/b"
    run "$PR" run "$T/plant.yaml" --redis off --results "$T/r"
    [ "$status" -eq 1 ]
    [[ "$output" == *"b[0]"*"'$T/r/"*"/b' is a symbolic link"* ]]
    [ -z "$(ls -A "$T/vdir")" ]
}

@test "--results: a symlink planted at the .out or .err file is refused, named" {
    echo precious >"$T/victim"
    for f in 0.out 0.err; do
        rm -rf "$T/r"
        plant_job "mkdir \$R/b && ln -s $T/victim \$R/b/$f"
        run "$PR" run "$T/plant.yaml" --redis off --results "$T/r"
        [ "$status" -eq 1 ]
        [[ "$output" == *"'$T/r/"*"/b/$f' is a symbolic link"* ]]
        [ "$(cat "$T/victim")" = precious ]
    done
}

@test "--results: DIR/RUN_ID swapped for a symlink mid-run: the target is untouched" {
    mkdir "$T/vdir"
    plant_job "mv \$R $T/moved && ln -s $T/vdir \$R"
    run "$PR" run "$T/plant.yaml" --redis off --results "$T/r"
    [ -z "$(ls -A "$T/vdir")" ]
    # b's results went to the directory the run made, wherever it is now.
    [ "$(cat "$T/moved/b/0.out")" = from-b ]
}

@test "--results: an existing file of ours is rewritten, one with other links is not" {
    echo precious >"$T/victim"
    plant_job "mkdir \$R/b && ln $T/victim \$R/b/0.out"
    run "$PR" run "$T/plant.yaml" --redis off --results "$T/r"
    [ "$status" -eq 1 ]
    [[ "$output" == *"/b/0.out' has other hard links"* ]]
    [ "$(cat "$T/victim")" = precious ]
    rm -rf "$T/r"
    plant_job "mkdir \$R/b && echo stale-stale-stale > \$R/b/0.out"
    run "$PR" run "$T/plant.yaml" --redis off --results "$T/r"
    [ "$status" -eq 0 ]
    [ "$(cat "$T"/r/*/b/0.out)" = from-b ]
}
