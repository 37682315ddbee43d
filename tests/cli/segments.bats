#!/usr/bin/env bats
# Shared segments through the real binary (README "Shared segments"): sealed read-only
# file segments, writable segments, published segments, what each child
# inherits, and that nothing is left in the segment directory or held as a
# memfd after success, failure, Ctrl-C or kill -9 + gc. Every test uses its
# own PARALLELRUN_SHM_BASE, so runs of other tests are never in the way.

load helpers

PY=/usr/bin/python3
SEGSUM=$PRUN_BUILD/examples/seg_sum

setup() {
    common_setup
    export PARALLELRUN_SHM_BASE=$T/shm
    mkdir -p "$PARALLELRUN_SHM_BASE"
    head -c 3000000 /dev/urandom > "$T/data.bin"
    # A segment name no other test uses, to find its memfds in /proc.
    SEG=s$$_$RANDOM
}

teardown() {
    if [ -n "${MNT:-}" ]; then
        umount -l "$MNT" 2>/dev/null
    fi
    common_teardown
}

# memfds of this test's segment still open anywhere.
memfds() {
    ls -l /proc/[0-9]*/fd 2>/dev/null | grep -c "memfd:parallelrun:$SEG" || true
}

shm_empty() {
    [ -z "$(ls -A "$PARALLELRUN_SHM_BASE")" ]
}

@test "a read-only segment cannot be written: EPERM, read-only numpy array" {
    cat > "$T/w.py" <<'PY'
import errno, mmap, os
path = os.environ["PARALLELRUN_SEGMENT_D"]
try:
    fd = os.open(path, os.O_RDWR)
    os.write(fd, b"x")
    print("WROTE")
except OSError as e:
    print("write:", errno.errorcode[e.errno])
try:
    fd = os.open(path, os.O_RDWR)
    mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    print("MAPPED")
except OSError as e:
    print("mmap:", errno.errorcode[e.errno])
import numpy as np
a = np.load(path, mmap_mode="r") if open(path, "rb").read(6) == b"\x93NUMPY" \
    else np.memmap(path, dtype=np.uint8, mode="r")
try:
    a[0] = 1
    print("NUMPY WROTE")
except ValueError:
    print("numpy: read-only")
PY
    job ro <<EOF
segments:
  d: {file: $T/data.bin}
tasks:
  t: {run: [$PY, $T/w.py], segments: [d]}
EOF
    cp "$T/data.bin" "$T/orig.bin"
    run timeout 60 "$PR" run "$T/ro.yaml"
    [ "$status" -eq 0 ]
    [[ "$output" == *"write: EPERM"* ]]
    [[ "$output" == *"mmap: EPERM"* ]]
    [[ "$output" == *"numpy: read-only"* ]]
    [[ "$output" != *WROTE* && "$output" != *MAPPED* ]]
    cmp "$T/data.bin" "$T/orig.bin"
}

@test "every child sees identical bytes" {
    want=$(sha256sum < "$T/data.bin" | cut -d' ' -f1)
    job same <<EOF
segments:
  $SEG: {file: $T/data.bin}
tasks:
  t:
    foreach: {range: [0, 6]}
    run: 'sha256sum < "\$PARALLELRUN_SEGMENT_${SEG^^}"'
    segments: [$SEG]
EOF
    run timeout 60 "$PR" run "$T/same.yaml" -j 3
    [ "$status" -eq 0 ]
    [ "$(echo "$output" | grep -c "^$want")" -eq 6 ]
    shm_empty
    [ "$(memfds)" -eq 0 ]
}

@test "a C child attaches with the API; attach is a matter of microseconds" {
    job c <<EOF
segments:
  d: {file: $T/data.bin, dtype: uint8, shape: [3000000]}
tasks:
  t: {run: [$SEGSUM, d], segments: [d]}
EOF
    run timeout 60 "$PR" run "$T/c.yaml"
    [ "$status" -eq 0 ]
    [[ "$output" == *"size=3000000 "* ]]
    [[ "$output" == *"writable=0 dtype=uint8 shape=3000000"* ]]
    us=$(echo "$output" | sed -n 's/.*attach_us=\([0-9]*\).*/\1/p')
    # Typically tens of microseconds (a map, no copy); the bound is wide
    # so a loaded machine does not fail it, and scaled for slow ones.
    [ "$us" -lt $(($(scaled 5) * 1000)) ]
}

@test "writable segment: one slot per child adds up exactly" {
    job w <<EOF
segments:
  res: {size: 8KiB, writable: true, dtype: uint64, shape: [1024]}
tasks:
  fill:
    foreach: {range: [0, 100]}
    run: [$SEGSUM, --write, res, "{item}", "{item}"]
    segments: [res]
  sum:
    needs: [fill]
    run: [$SEGSUM, res]
    segments: [res]
EOF
    run timeout 60 "$PR" run "$T/w.yaml" -j 4
    [ "$status" -eq 0 ]
    [[ "$output" == *"sum=4950 size=8192 "*"writable=1"* ]]
}

@test "writable segment: read-modify-write under flock adds up exactly" {
    cat > "$T/inc.py" <<'PY'
import mmap, os, struct
fd = os.open(os.environ["PARALLELRUN_SEGMENT_ACC"], os.O_RDWR)
m = mmap.mmap(fd, 8)
for _ in range(50):
    v = struct.unpack_from("<Q", m, 0)[0]
    struct.pack_into("<Q", m, 0, v + 1)
PY
    job f <<EOF
segments:
  acc: {size: 4KiB, writable: true}
tasks:
  inc:
    foreach: {range: [0, 20]}
    run: 'flock $T/lock $PY $T/inc.py'
    segments: [acc]
  sum:
    needs: [inc]
    run: [$SEGSUM, acc]
    segments: [acc]
EOF
    run timeout 60 "$PR" run "$T/f.yaml" -j 4
    [ "$status" -eq 0 ]
    [[ "$output" == *"sum=1000 "* ]]
}

@test "published segments reach a later task with dtype and shape" {
    printf 'ABCDEFGHIJKLMNOPQRSTUVWX' > "$T/pub.bin"
    job p <<EOF
segments:
  table: {published: true}
tasks:
  make:
    run: [$PR, segment, publish, table, $T/pub.bin, --dtype, "<i4", --shape, "2,3"]
  use:
    needs: [make]
    run: 'env | grep ^PARALLELRUN_SEGMENT_TABLE | sort; cat "\$PARALLELRUN_SEGMENT_TABLE"; echo; $SEGSUM table'
    segments: [table]
  byname:
    needs: [make]
    run: 'cat "\$($PR segment path table)"; echo; $SEGSUM table'
EOF
    run timeout 60 "$PR" run "$T/p.yaml" -j 1
    [ "$status" -eq 0 ]
    [[ "$output" == *"PARALLELRUN_SEGMENT_TABLE_DTYPE=<i4"* ]]
    [[ "$output" == *"PARALLELRUN_SEGMENT_TABLE_SHAPE=2,3"* ]]
    [[ "$output" == *"PARALLELRUN_SEGMENT_TABLE_SIZE=24"* ]]
    [ "$(echo "$output" | grep -c '^ABCDEFGHIJKLMNOPQRSTUVWX$')" -eq 2 ]
    [ "$(echo "$output" | grep -c 'dtype=<i4 shape=2,3')" -eq 2 ]
    shm_empty
}

@test "a .npy segment and a published numpy array keep dtype and shape" {
    $PY -c "import numpy as np; np.save('$T/a.npy', np.arange(12, dtype='<f4').reshape(3, 4))"
    cat > "$T/np.py" <<'PY'
import os, sys
sys.path.insert(0, os.environ["EXPY"])
import numpy as np, prun_segments
a = np.load(os.environ["PARALLELRUN_SEGMENT_A"], mmap_mode="r")
print("a", a.dtype.str, a.shape, float(a.sum()), a.flags.writeable)
prun_segments.publish("b", np.asarray(a) * 2)
PY
    cat > "$T/np2.py" <<'PY'
import os, sys
sys.path.insert(0, os.environ["EXPY"])
import prun_segments
b = prun_segments.attach("b")
print("b", b.dtype.str, b.shape, float(b.sum()))
PY
    job n <<EOF
segments:
  a: {file: $T/a.npy}
tasks:
  pub:
    run: [$PY, $T/np.py]
    segments: [a]
    env: {EXPY: $ROOT/examples/python, PARALLELRUN_BIN: $PR}
  get:
    needs: [pub]
    run: [$PY, $T/np2.py]
    env: {EXPY: $ROOT/examples/python}
EOF
    run timeout 60 "$PR" run "$T/n.yaml"
    [ "$status" -eq 0 ]
    [[ "$output" == *"a <f4 (3, 4) 66.0 False"* ]]
    [[ "$output" == *"b <f4 (3, 4) 132.0"* ]]
}

@test "a missing published segment fails the task that lists it" {
    job m <<EOF
segments:
  never: {published: true}
tasks:
  a: {run: "true"}
  b: {needs: [a], run: "true", segments: [never]}
EOF
    run timeout 60 "$PR" run "$T/m.yaml"
    [ "$status" -eq 1 ]
    [[ "$output" == *"segment 'never' was not published (by a task this one needs?)"* ]]
    shm_empty
}

@test "a missing segment file is refused before anything starts" {
    job mf <<EOF
segments:
  d: {file: $T/nope.bin}
tasks:
  a: {run: [touch, $T/ran], segments: [d]}
EOF
    run timeout 60 "$PR" run "$T/mf.yaml"
    [ "$status" -ne 0 ]
    [[ "$output" == *"mf.yaml:2:3: segment 'd': cannot open '$T/nope.bin': No such file or directory"* ]]
    [ ! -e "$T/ran" ]
    shm_empty
}

@test "only tasks that list a segment get its fd" {
    job fds <<EOF
segments:
  d: {file: $T/data.bin}
  w: {size: 1MiB, writable: true}
tasks:
  with: {run: [$SHOWARGS, with], segments: [d, w], env: {PRUN_SHOW_FDS: "1"}}
  one: {run: [$SHOWARGS, one], segments: [w], env: {PRUN_SHOW_FDS: "1"}}
  without: {run: [$SHOWARGS, without], env: {PRUN_SHOW_FDS: "1", PRUN_SHOW_ENV: "1"}}
EOF
    run timeout 60 "$PR" run "$T/fds.yaml" -j 1
    [ "$status" -eq 0 ]
    with=$(echo "$output" | sed -n '/^\[with\]/,/^\[/p' | grep -c '^fd ')
    one=$(echo "$output" | sed -n '/^\[one\]/,/^\[/p' | grep -c '^fd ')
    without=$(echo "$output" | sed -n '/^\[without\]/,/^\[/p' | grep -c '^fd ')
    [ "$with" -eq 5 ]
    [ "$one" -eq 4 ]
    [ "$without" -eq 3 ]
    ! echo "$output" | sed -n '/^\[without\]/,/^\[/p' | grep -q PARALLELRUN_SEGMENT_
}

@test "nothing left after a failure" {
    job fail <<EOF
segments:
  $SEG: {file: $T/data.bin}
  out: {published: true}
tasks:
  t:
    run: 'head -c 1000 /dev/zero | $PR segment publish out - && exit 3'
    segments: [$SEG]
EOF
    run timeout 60 "$PR" run "$T/fail.yaml"
    [ "$status" -eq 1 ]
    shm_empty
    [ "$(memfds)" -eq 0 ]
}

@test "nothing left after Ctrl-C" {
    job int <<EOF
segments:
  $SEG: {file: $T/data.bin}
  out: {published: true}
tasks:
  t:
    run: 'head -c 1000 /dev/zero | $PR segment publish out - && echo \$\$ > $T/child.pid && sleep 30'
    segments: [$SEG]
EOF
    timeout 60 "$PR" run "$T/int.yaml" > "$T/int.out" 2>&1 &
    echo $! > "$T/runner.pid"
    wait_for "$T/child.pid"
    [ -e "$PARALLELRUN_SHM_BASE"/parallelrun-*/out ]
    [ "$(memfds)" -ge 1 ]
    # $! is timeout(1); the runner is its child.
    kill -INT "$(pgrep -P "$(cat "$T/runner.pid")")"
    rc=0
    wait "$(cat "$T/runner.pid")" || rc=$?
    [ "$rc" -eq 130 ]
    shm_empty
    [ "$(memfds)" -eq 0 ]
}

@test "kill -9 of the runner and its guardian: parallelrun gc removes what they left" {
    job k9 <<EOF
segments:
  $SEG: {file: $T/data.bin}
  out: {published: true}
tasks:
  t:
    run: 'head -c 1000 /dev/zero | $PR segment publish out - && echo \$\$ > $T/child.pid && exec sleep 30'
    segments: [$SEG]
EOF
    "$PR" run "$T/k9.yaml" > /dev/null 2>&1 &
    runner=$!
    echo $runner > "$T/runner.pid"
    wait_for "$T/child.pid"
    # A live run is never touched.
    run "$PR" gc
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    [ -e "$PARALLELRUN_SHM_BASE"/parallelrun-*/out ]
    # The guardian would remove the directory after the runner's death;
    # killed right after the runner, it cannot, and gc must.
    guardian=
    for c in $(cat "/proc/$runner/task/$runner/children"); do
        [ "$(cat "/proc/$c/comm")" = prun-guardian ] && guardian=$c
    done
    [ -n "$guardian" ]
    kill -9 "$runner" "$guardian"
    wait "$runner" || true
    # The child dies with the runner (PDEATHSIG), and its memfd with it.
    wait_gone "$(cat "$T/child.pid")"
    [ "$(memfds)" -eq 0 ]
    run "$PR" gc
    [ "$status" -eq 0 ]
    [[ "$output" == "removed $PARALLELRUN_SHM_BASE/parallelrun-"* ]]
    shm_empty
}

@test "a segment larger than a small tmpfs fails cleanly" {
    [ "$(id -u)" -eq 0 ] || skip "needs root to mount a tmpfs"
    MNT=$T/tiny
    mkdir -p "$MNT"
    mount -t tmpfs -o size=1m tmpfs "$MNT" || skip "cannot mount a tmpfs"
    export PARALLELRUN_SHM_BASE=$MNT
    job big <<EOF
segments:
  d: {file: $T/data.bin}
tasks:
  pub:
    run: 'head -c 2097152 /dev/zero | $PR segment publish big -'
  ro:
    run: [$SEGSUM, d]
    segments: [d]
EOF
    run timeout 60 "$PR" run "$T/big.yaml"
    [ "$status" -eq 1 ]
    [[ "$output" == *"cannot publish segment 'big' (2097152 bytes) in $MNT/parallelrun-"*": No space left on device"* ]]
    # memfds are not limited by the small tmpfs: the 3 MB file segment works.
    [[ "$output" == *"sum="*"size=3000000"* ]]
    [ -z "$(ls -A "$MNT")" ]
    umount "$MNT" && MNT=
}

@test "segment subcommands: usage, outside a run, not found, gc" {
    run "$PR" segment path x
    [ "$status" -eq 2 ]
    [[ "$output" == *"not inside a parallelrun run"* ]]
    run "$PR" segment publish x "$T/data.bin"
    [ "$status" -eq 2 ]
    run "$PR" segment publish 9bad "$T/data.bin"
    [ "$status" -eq 2 ]
    [[ "$output" == *"invalid segment name '9bad'"* ]]
    run "$PR" segment frob
    [ "$status" -eq 2 ]
    PARALLELRUN_RUN_ID=x PARALLELRUN_SHM_DIR=$T/shm run "$PR" segment path nothere
    [ "$status" -eq 1 ]
    [[ "$output" == *"segment 'nothere' is not attached to this task and was not published in this run"* ]]
    run "$PR" gc
    [ "$status" -eq 0 ]
}

@test "the example jobs run and leave nothing behind" {
    run timeout 120 "$PR" run jobs/montecarlo.yaml --set mib=8 --set data="$T/mc.npy"
    [ "$status" -eq 0 ]
    [[ "$output" == *"pi ~ 3.1"* ]]
    [ ! -e "$T/mc.npy" ]
    run timeout 120 "$PR" run jobs/ragged.yaml --set data="$T/r.bin"
    [ "$status" -eq 0 ]
    [[ "$output" == *"all sums match"* ]]
    run timeout 120 "$PR" run jobs/handback.yaml --set work="$T/hb" --set out="$T/hb/all.h5"
    [ "$status" -eq 0 ]
    [[ "$output" == *"4 parts"* ]]
    [ -s "$T/hb/all.h5" ]
    shm_empty
}
