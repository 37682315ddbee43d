#!/usr/bin/env bats
# Python/numpy users through the real binary: segment paths that work in
# every descendant of a task (multiprocessing spawn/forkserver/fork pools,
# subprocess, a shell pipeline) and fail fast where they cannot; the
# installed `parallelrun` package (segment, publish, pool mode and the
# synchronization calls); `copy: false` file segments. Each test has its
# own PARALLELRUN_SHM_BASE and XDG_RUNTIME_DIR.

load helpers

PY=/usr/bin/python3
PYPKG=$ROOT/python

setup() {
    common_setup
    export PARALLELRUN_SHM_BASE=$T/shm XDG_RUNTIME_DIR=$T/xdg
    mkdir -p "$PARALLELRUN_SHM_BASE" "$XDG_RUNTIME_DIR"
    unset PARALLELRUN_LIB LD_LIBRARY_PATH PYTHONPATH
    TF=${PRUN_TIME_FACTOR:-1}
}

teardown() {
    [ -n "${HOLDER:-}" ] && kill -9 "$HOLDER" 2>/dev/null
    common_teardown
}

shm_empty() {
    [ -z "$(ls -A "$PARALLELRUN_SHM_BASE")" ]
}

# A .npy of N float64 (0..N-1) at $T/a.npy; its sum is N*(N-1)/2.
make_npy() {
    $PY -c "import numpy as np; np.save('$T/a.npy', np.arange($1, dtype='<f8'))"
}

@test "segment paths work in spawn, forkserver and fork pools, a subprocess and a pipeline" {
    make_npy 2000000
    cat > "$T/w.py" <<'PY'
import multiprocessing as mp, os, subprocess, sys
import numpy as np
import parallelrun as pr

def by_path(_):
    return float(np.load(os.environ["PARALLELRUN_SEGMENT_A"], mmap_mode="r").sum())

def by_package(_):
    a = pr.segment("a")
    assert not a.flags.writeable
    return float(a.sum())

if __name__ == "__main__":
    for method in ("spawn", "forkserver", "fork"):
        with mp.get_context(method).Pool(2) as pool:
            print(method, "path", set(pool.map(by_path, range(4))))
            print(method, "package", set(pool.map(by_package, range(4))))
    out = subprocess.run([sys.executable, "-c",
        "import os, numpy as np; print(float(np.load(os.environ['PARALLELRUN_SEGMENT_A'], mmap_mode='r').sum()))"],
        capture_output=True, text=True, timeout=60)
    print("subprocess", out.stdout.strip(), out.stderr.strip()[-200:])
PY
    job mp <<EOF
segments:
  a: {file: $T/a.npy}
tasks:
  py:
    segments: [a]
    env: {PYTHONPATH: $PYPKG}
    run: [$PY, $T/w.py]
  sh:
    segments: [a]
    run: 'cat "\$PARALLELRUN_SEGMENT_A" | sha256sum; sh -c "sha256sum < \$PARALLELRUN_SEGMENT_A"'
EOF
    want=$($PY -c "print(float(sum(range(2000000))))")
    run timeout $((120 * TF)) "$PR" run "$T/mp.yaml"
    echo "$output"
    [ "$status" -eq 0 ]
    for m in spawn forkserver fork; do
        [[ "$output" == *"$m path {$want}"* ]]
        [[ "$output" == *"$m package {$want}"* ]]
    done
    [[ "$output" == *"subprocess $want "* ]]
    sha=$(sha256sum < "$T/a.npy" | cut -d' ' -f1)
    [ "$(echo "$output" | grep -c "^$sha")" -eq 2 ]
    shm_empty
}

@test "a segment path used after its run ended fails at once with ENOENT" {
    make_npy 1000
    job keep <<EOF
segments:
  a: {file: $T/a.npy}
tasks:
  t: {run: 'env | grep ^PARALLELRUN_SEGMENT_A > $T/env', segments: [a]}
EOF
    run timeout $((60 * TF)) "$PR" run "$T/keep.yaml"
    [ "$status" -eq 0 ]
    path=$(sed -n 's/^PARALLELRUN_SEGMENT_A=//p' "$T/env")
    [[ "$path" == /proc/*/fd/* ]]
    run timeout 10 $PY -c "import numpy as np; np.load('$path', mmap_mode='r')"
    [ "$status" -eq 1 ]
    [[ "$output" == *"No such file or directory"* ]]
    # The package and the C API say what happened, also at once.
    run env $(cat "$T/env") PYTHONPATH=$PYPKG timeout 10 $PY -c '
import parallelrun as pr
try:
    pr.segment("a")
except pr.NotFound as e:
    print("NotFound:", e)'
    [ "$status" -eq 0 ]
    [[ "$output" == *"NotFound: cannot attach segment 'a' ($path): No such file or directory (has its run ended?)"* ]]
    run env $(cat "$T/env") timeout 10 "$PRUN_BUILD/examples/seg_sum" a
    [ "$status" -ne 0 ]
    [ "$status" -ne 124 ]
    [[ "$output" == *"has its run ended?"* ]]
}

@test "a segment path that now names a pipe fails at once, never hangs" {
    mkfifo "$T/fifo"
    # A process of ours holding a FIFO nobody writes to at fd 7: what a
    # reused pid's descriptor could be.
    $PY -c "
import os
fd = os.open('$T/fifo', os.O_RDONLY | os.O_NONBLOCK)
os.dup2(fd, 7, inheritable=True)
open('$T/ready', 'w').close()
os.execv('/bin/sleep', ['sleep', '300'])" &
    HOLDER=$!
    wait_exists "$T/ready" $((100 * TF))
    path=/proc/$HOLDER/fd/7
    [ -p "$path" ]
    run env PARALLELRUN_SEGMENT_A=$path PARALLELRUN_SEGMENT_A_SIZE=8000 \
        PYTHONPATH=$PYPKG timeout 10 $PY -c '
import parallelrun as pr
try:
    pr.segment("a")
except pr.NotFound as e:
    print("NotFound:", e)'
    [ "$status" -eq 0 ]
    [[ "$output" == *"NotFound: cannot attach segment 'a': $path is not a segment"* ]]
    run env PARALLELRUN_SEGMENT_A=$path timeout 10 \
        "$PRUN_BUILD/examples/seg_sum" a
    [ "$status" -ne 0 ]
    [ "$status" -ne 124 ]
    [[ "$output" == *"is not a segment"* ]]
}

@test "installed package: loaders publish structured arrays, a reducer writes HDF5 by name" {
    python_lib_ok
    make -s -C "$ROOT" install PREFIX="$T/prefix" BUILD="$PRUN_BUILD" >/dev/null
    pyver=$($PY -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    site=$T/prefix/lib/python$pyver/dist-packages
    [ -f "$site/parallelrun/__init__.py" ]
    export PYTHONPATH=$site
    cat > "$T/seed.py" <<'PY'
import os, sys
import numpy as np
import parallelrun as pr
DT = np.dtype([('chr','S10'),('pos','<i4'),('pct','<f4'),('c','<i4'),('t','<i4')])
what, d = sys.argv[1], sys.argv[2]
if what == "gen":
    for i in range(4):
        with open("%s/p%d.txt" % (d, i), "w") as f:
            for r in range(1000 + 100 * i):
                f.write("chr%d\t%d\t%.3f\t%d\t%d\n" % (i + 1, r, r / 7.0, r, 2 * r))
elif what == "load":
    i = int(os.environ["PARALLELRUN_INDEX"])
    pr.publish("part%d" % i, np.loadtxt("%s/p%d.txt" % (d, i), dtype=DT, ndmin=1))
else:
    import h5py
    print("package", pr.__file__)
    print("library", pr._load()._name)
    with h5py.File(d + "/all.h5", "w") as f:
        for i in range(4):
            a = pr.segment("part%d" % i)
            assert a.dtype == DT and not a.flags.writeable, a.dtype
            ref = np.loadtxt("%s/p%d.txt" % (d, i), dtype=DT, ndmin=1)
            assert (a == ref).all()
            f["part%d" % i] = a
    with h5py.File(d + "/all.h5") as f:
        print("rows", sum(len(f[k]) for k in f), f["part3"][-1])
PY
    job seed <<EOF
tasks:
  gen: {run: [$PY, $T/seed.py, gen, $T]}
  load:
    needs: [gen]
    foreach: {range: [0, 4]}
    run: [$PY, $T/seed.py, load, $T]
  reduce:
    needs: [load]
    run: [$PY, $T/seed.py, reduce, $T]
EOF
    run timeout $((120 * TF)) "$T/prefix/bin/parallelrun" run "$T/seed.yaml"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"package $site/parallelrun/__init__.py"* ]]
    [[ "$output" == *"library $T/prefix/lib/libparallelrun.so.0"* ]]
    [[ "$output" == *"rows 4600 (b'chr4', 1299, 185.571, 1299, 2598)"* ]]
    shm_empty
}

@test "a system install puts the package where Debian's python3 looks, without variables" {
    syspath=$(env -u PYTHONPATH $PY -c 'import sys; print(" ".join(sys.path))')
    for prefix in /usr/local /usr; do
        make -s -C "$ROOT" install DESTDIR="$T/root" PREFIX=$prefix \
            BUILD="$PRUN_BUILD" >/dev/null
        init=$(cd "$T/root" && ls .$prefix/lib/python3*/dist-packages/parallelrun/__init__.py)
        dir=${init#.}
        dir=${dir%/parallelrun/__init__.py}
        [[ " $syspath " == *" $dir "* ]]
        grep -qx "LIBDIR = '$prefix/lib'" "$T/root$dir/parallelrun/_config.py"
    done
}

@test "publish writes straight into the segment: no second copy in the publisher" {
    python_lib_ok
    cat > "$T/big.py" <<'PY'
import os
import numpy as np
import parallelrun as pr

def rss(kind):
    for line in open("/proc/self/status"):
        if line.startswith(kind + ":"):
            return int(line.split()[1]) * 1024

if os.environ["PARALLELRUN_TASK"] == "pub":
    a = np.arange(100 * 2**20 // 8, dtype=np.float64)
    before = rss("RssAnon")
    pr.publish("big", a)
    print("anon_growth", rss("RssAnon") - before, "array", a.nbytes)
    print("children", len(os.listdir("/proc/self/task")))
else:
    b = pr.segment("big")
    print("sum", float(b.sum()), b.shape, b.dtype)
PY
    job big <<EOF
tasks:
  pub: {run: [$PY, $T/big.py], env: {PYTHONPATH: $PYPKG}}
  read: {needs: [pub], run: [$PY, $T/big.py], env: {PYTHONPATH: $PYPKG}}
EOF
    run timeout $((120 * TF)) "$PR" run "$T/big.yaml"
    echo "$output"
    [ "$status" -eq 0 ]
    growth=$(echo "$output" | sed -n 's/^anon_growth \([0-9-]*\) .*/\1/p')
    # The old way piped the bytes to a helper that copied them into its
    # heap; now no private copy is made anywhere (a few MiB of slack).
    [ "$growth" -lt $((8 * 1024 * 1024)) ]
    n=$((100 * 2**20 / 8))
    [[ "$output" == *"sum $($PY -c "print(float($n * ($n - 1) // 2))") ($n,) float64"* ]]
    shm_empty
}

@test "pool mode, barrier, lock, counter, queue and progress from the package" {
    python_lib_ok
    cat > "$T/pool.py" <<'PY'
import os
import parallelrun as pr
done = 0
for index, item in pr.items():
    with pr.lock("total") as token:
        assert token > 0
        pr.counter("sum", int(item))
    done += 1
    pr.progress(done)
pr.queue("q").push("w%s" % os.environ["PARALLELRUN_INDEX"])
pr.barrier("end")
got = set()
if os.environ["PARALLELRUN_INDEX"] == "0":
    while True:
        v = pr.queue("q").pop()
        if v is None:
            break
        got.add(v)
    print("queue", sorted(got), "sum", pr.counter("sum", 0))
    try:
        pr.barrier("never", count=2, timeout=0.3)
    except pr.Timeout as e:
        print("Timeout:", e)
    try:
        pr.publish("9bad", b"")
    except pr.Error as e:
        print("Error:", e)
PY
    job pool <<EOF
jobs: 3
tasks:
  p:
    pool: true
    jobs: 3
    foreach: {range: [0, 50]}
    env: {PYTHONPATH: $PYPKG}
    run: [$PY, $T/pool.py]
EOF
    run timeout $((120 * TF)) "$PR" run "$T/pool.yaml"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"queue ['w0', 'w1', 'w2'] sum 1225"* ]]
    [[ "$output" == *"Timeout: "*"never"* ]]
    [[ "$output" == *"Error: invalid segment name '9bad'"* ]]
}

@test "copy: false maps the file itself: same bytes, read-only, nothing loaded" {
    make_npy 3000000
    job nc <<EOF
segments:
  a: {file: $T/a.npy, copy: false}
tasks:
  t:
    segments: [a]
    env: {PYTHONPATH: $PYPKG}
    run: [$PY, -c, 'import os, parallelrun as pr; a = pr.segment("a"); print("target", os.readlink(os.environ["PARALLELRUN_SEGMENT_A"])); print("sum", float(a.sum()), a.flags.writeable)']
EOF
    run timeout $((60 * TF)) "$PR" run "$T/nc.yaml"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"target $T/a.npy"* ]]
    [[ "$output" == *"sum $($PY -c "print(float(sum(range(3000000))))") False"* ]]
    # copy: applies to file segments only.
    job bad <<EOF
segments:
  s: {size: 1MiB, writable: true, copy: false}
tasks:
  t: {run: [true], segments: [s]}
EOF
    run "$PR" validate "$T/bad.yaml"
    [ "$status" -eq 2 ]
    [[ "$output" == *"bad.yaml:2:"*"'copy' applies to file segments only"* ]]
}

@test "published names that differ only in case are refused; a killed publisher leaves nothing" {
    python_lib_ok
    cat > "$T/case.py" <<'PY'
import ctypes, os
import numpy as np
import parallelrun as pr
if os.environ["PARALLELRUN_TASK"] == "a":
    pr.publish("data", np.zeros(3))
    try:
        pr.publish("Data", np.zeros(3))
    except pr.Error as e:
        print("Error:", e)
    pr.publish("data", np.ones(4))   # the same name again replaces it
else:
    # Created, half written, then SIGKILL before commit.
    lib, seg, err = pr._load(), pr._Seg(), pr._Err()
    assert lib.prun_segment_create(b"half", 1 << 20, ctypes.byref(seg), ctypes.byref(err)) == 0
    ctypes.memset(seg.data, 1, 1 << 19)
    print(sorted(os.listdir(os.environ["PARALLELRUN_SHM_DIR"])), flush=True)
    os.kill(os.getpid(), 9)
PY
    job case <<EOF
tasks:
  a: {run: [$PY, $T/case.py], env: {PYTHONPATH: $PYPKG}}
  b: {needs: [a], run: [$PY, $T/case.py], env: {PYTHONPATH: $PYPKG}}
  c:
    needs: [a]
    run: [$PY, -c, 'import os, parallelrun as pr; print("files", sorted(os.listdir(os.environ["PARALLELRUN_SHM_DIR"]))); print("data", pr.segment("data"))']
    env: {PYTHONPATH: $PYPKG}
EOF
    run timeout $((60 * TF)) "$PR" run "$T/case.yaml" -j 1
    echo "$output"
    [ "$status" -eq 1 ]
    [[ "$output" == *"Error: cannot publish segment 'Data': segment 'data' was published in this run and the names differ only in case"* ]]
    [[ "$output" == *"files ['data', 'data.meta', 'owner']"* ]]
    [[ "$output" == *"data [1. 1. 1. 1.]"* ]]
    shm_empty
}

@test "the demo job: one copy shared by 4 readers, arrays handed back, live status from a task" {
    python_lib_ok
    run timeout $((120 * TF)) "$PR" run jobs/demo.yaml --set data="$T/d.npy" --set mib=16
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$(echo "$output" | grep -c "^read\[[0-3]\]: attached 16 MiB float64 .*Rss 16 MiB, Pss 4 MiB (1/4: one copy shared)")" -eq 4 ]
    [[ "$output" == *"run "*"  demo  running"*"instances: 7 total"* ]]
    [[ "$output" == *"watch: total Pss of the segment in the 4 readers: 16 MiB"* ]]
    [[ "$output" == *"report: attached hist0..hist3 by name (int64, shape (8,), read-only: True)"* ]]
    shm_empty
}

@test "parallelrun status works from inside a task (the key TTL the runner exports is read back)" {
    job st <<EOF
tasks:
  t: {run: '"$PR" status "\$PARALLELRUN_RUN_ID"'}
EOF
    run timeout $((60 * TF)) "$PR" run "$T/st.yaml"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"  st  running"*"instances: 1 total"* ]]
    [[ "$output" != *"too large"* ]]
}

@test "the C API and the package accept both path forms: /proc/PID/fd/N and an inherited /dev/fd/N" {
    make_npy 5000
    job both <<EOF
segments:
  a: {file: $T/a.npy}
tasks:
  t:
    segments: [a]
    env: {PYTHONPATH: $PYPKG}
    run: |
      n=\$(basename "\$PARALLELRUN_SEGMENT_A")
      for p in "\$PARALLELRUN_SEGMENT_A" /dev/fd/\$n; do
        PARALLELRUN_SEGMENT_A=\$p $PY -c 'import parallelrun as pr, sys; a = pr.segment("a"); print("py", sys.argv[1], a.dtype, a.shape, float(a.sum()))' "\$p"
        PARALLELRUN_SEGMENT_A=\$p $PRUN_BUILD/examples/seg_sum a | sed "s|^|c \$p |"
      done
EOF
    run timeout $((60 * TF)) "$PR" run "$T/both.yaml"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" =~ py\ /proc/[0-9]+/fd/[0-9]+\ float64\ \(5000,\)\ 12497500.0 ]]
    [[ "$output" =~ py\ /dev/fd/[0-9]+\ float64\ \(5000,\)\ 12497500.0 ]]
    [[ "$output" =~ c\ /proc/[0-9]+/fd/[0-9]+\ .*size=40128 ]]
    [[ "$output" =~ c\ /dev/fd/[0-9]+\ .*size=40128 ]]
}
