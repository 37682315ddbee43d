#!/usr/bin/env bats
# File segments on queue workers: one copy per content per host, in the
# host cache under PARALLELRUN_SHM_BASE (lib/segcache.c,
# docs/work-queue.md "Segments"). Workers share it, a later run with the
# same content attaches it while it is held, a changed file gets a new
# copy, and nothing is left in the shm base once no one holds an entry,
# workers killed with -9 included.

load helpers

setup() {
    common_setup
    queue_redis
    CACHE=$PARALLELRUN_SHM_BASE/parallelrun.cache.$(id -u)
    cat > "$T/mapsum.py" <<'PY'
import hashlib, mmap, os
with open(os.environ["PARALLELRUN_SEGMENT_D"], "rb") as f:
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    assert len(m) == int(os.environ["PARALLELRUN_SEGMENT_D_SIZE"])
    print(hashlib.sha256(m).hexdigest() + "  -")
PY
}
teardown() { common_teardown; }

# stop_worker NAME: SIGTERM, then until it has exited.
stop_worker() {
    kill -TERM "$(cat "$T/$1.pid")"
    wait_gone "$(cat "$T/$1.pid")" 30
}

# The host cache's copies (entries and temporary files), by inode: an
# entry may have two names (its hash and its memo, lib/segcache.c).
cache_inodes() {
    find "$PARALLELRUN_SHM_BASE" -path '*parallelrun.cache*' -type f \
        -printf '%i\n' 2>/dev/null | sort -u
}
cache_count() { cache_inodes | grep -c . || true; }

# A job over FILE whose instances record what they were given: the
# segment's path and inode, and its bytes' hash as a grandchild reads them
# through the path (and as a Python grandchild maps them, zero-copy);
# then each waits until the gate $T/go.NAME opens.
seg_job() {
    local name=$1 file=$2 n=$3
    job "$name" <<EOF
segments:
  d: {file: $file}
tasks:
  t:
    foreach: {range: [0, $n]}
    segments: [d]
    run: >-
      echo "\$PARALLELRUN_SEGMENT_D" > $T/$name.path.{item};
      stat -L -c %i "\$PARALLELRUN_SEGMENT_D" > $T/$name.ino.{item};
      sh -c 'sha256sum < "\$PARALLELRUN_SEGMENT_D"' > $T/$name.sum.{item};
      python3 $T/mapsum.py > $T/$name.map.{item};
      touch $T/$name.started.{item};
      $GATE wait $T/go.$name
EOF
}

# start_run NAME: a distributed run of $T/NAME.yaml; pid in run-NAME.pid.
start_run() {
    timeout "$(scaled 120)" "$PR" run "$T/$1.yaml" --redis "$URL" \
        --distributed > "$T/run-$1.out" 2>&1 &
    echo $! > "$T/run-$1.pid"
}

# finish_run NAME: lets its instances end; its exit status must be 0.
finish_run() {
    "$GATE" open "$T/go.$1"
    wait "$(cat "$T/run-$1.pid")" || {
        cat "$T/run-$1.out" >&2
        return 1
    }
}

@test "wq_segments: two workers on one host share one copy; children and grandchildren read the right bytes" {
    head -c 300000 /dev/urandom > "$T/data.bin"
    want=$(sha256sum < "$T/data.bin")
    seg_job s "$T/data.bin" 2
    start_worker a --slots 1
    start_worker b --slots 1
    start_run s
    # Both instances run at once, one on each worker (one slot each).
    wait_exists "$T/s.started.0" 300
    wait_exists "$T/s.started.1" 300
    [ "$(cut -d/ -f3 "$T/s.path.0")" != "$(cut -d/ -f3 "$T/s.path.1")" ]
    # One copy in the shm base, the one both children see.
    [ "$(cache_count)" -eq 1 ]
    [ "$(cat "$T/s.ino.0")" = "$(cache_inodes)" ]
    [ "$(cat "$T/s.ino.1")" = "$(cache_inodes)" ]
    # Named by the content's SHA-256, read-only.
    [ -f "$CACHE/$(sha256sum < "$T/data.bin" | cut -d' ' -f1)" ]
    [ "$(stat -c %a "$CACHE/$(cut -d' ' -f1 <<<"$want")")" = 400 ]
    [ "$(cat "$T/s.sum.0")" = "$want" ]
    [ "$(cat "$T/s.sum.1")" = "$want" ]
    [ "$(cat "$T/s.map.0")" = "$want" ]
    [ "$(cat "$T/s.map.1")" = "$want" ]
    finish_run s
    # The idle workers keep their last run's segment until they move on:
    # a later run with the same content, on either, finds the one copy.
    seg_job s2 "$T/data.bin" 1
    start_run s2
    wait_exists "$T/s2.started.0" 300
    [ "$(cat "$T/s2.sum.0")" = "$want" ]
    [ "$(cache_count)" -eq 1 ]
    [ "$(cat "$T/s2.ino.0")" = "$(cache_inodes)" ]
    finish_run s2
    # Let go by the last user: nothing left in the shm base.
    stop_worker a
    [ "$(cache_count)" -le 1 ]
    stop_worker b
    [ "$(cache_count)" -eq 0 ]
    [ -z "$(ls -A "$PARALLELRUN_SHM_BASE")" ]
}

@test "wq_segments: a later run with the same content attaches the held copy; a changed file gets a new one" {
    head -c 200000 /dev/urandom > "$T/data.bin"
    old=$(sha256sum < "$T/data.bin")
    cp "$T/data.bin" "$T/same.bin"
    seg_job one "$T/data.bin" 1
    seg_job two "$T/same.bin" 1
    seg_job three "$T/data.bin" 1
    start_worker a --slots 1
    start_worker b --slots 1
    start_worker c --slots 1
    start_run one
    wait_exists "$T/one.started.0" 300
    # Another file with the same bytes, another run: the same copy.
    start_run two
    wait_exists "$T/two.started.0" 300
    [ "$(cat "$T/two.ino.0")" = "$(cat "$T/one.ino.0")" ]
    [ "$(cache_count)" -eq 1 ]
    # The file rewritten in place: a new copy; the old one stays for
    # those holding it.
    head -c 200000 /dev/urandom > "$T/data.bin"
    new=$(sha256sum < "$T/data.bin")
    [ "$new" != "$old" ]
    start_run three
    wait_exists "$T/three.started.0" 300
    [ "$(cat "$T/three.ino.0")" != "$(cat "$T/one.ino.0")" ]
    [ "$(cache_count)" -eq 2 ]
    [ "$(cat "$T/one.sum.0")" = "$old" ]
    [ "$(cat "$T/two.sum.0")" = "$old" ]
    [ "$(cat "$T/three.sum.0")" = "$new" ]
    [ "$(cat "$T/three.map.0")" = "$new" ]
    finish_run one
    finish_run two
    finish_run three
    for w in a b c; do stop_worker $w; done
    [ "$(cache_count)" -eq 0 ]
}

# start_run_killable NAME: like start_run, but the runner is this shell's
# own child (no `timeout` between), so kill_run reaps it: a runner left a
# zombie would look alive to gc's owner check. Teardown kills it if the
# test ends first.
start_run_killable() {
    "$PR" run "$T/$1.yaml" --redis "$URL" --distributed \
        > "$T/run-$1.out" 2>&1 &
    echo $! > "$T/run-$1.pid"
}

# kill_run NAME: SIGKILL to the runner of start_run_killable NAME.
kill_run() {
    kill -9 "$(cat "$T/run-$1.pid")"
    wait "$(cat "$T/run-$1.pid")" || true
}

@test "wq_segments: the run, its worker and their children killed -9; the next run and worker leave nothing behind" {
    head -c 100000 /dev/urandom > "$T/data.bin"
    head -c 100000 /dev/urandom > "$T/other.bin"
    want=$(sha256sum < "$T/other.bin")
    seg_job k "$T/data.bin" 1
    start_worker a --slots 1
    start_run_killable k
    wait_exists "$T/k.started.0" 300
    [ "$(cache_count)" -eq 1 ]
    # Every holder of the copy dies without letting go.
    kill -9 "$(cat "$T/a.pid")"
    kill_run k
    wait_gone "$(cat "$T/a.pid")"
    # The worker's child goes with it (its guardian), and its lock too.
    # (g[o]: the pattern does not match the pgrep's own command line.)
    wait_until sh -c '! pgrep -f "$1" >/dev/null' sh "$T/g[o]\.k"
    [ "$(cache_count)" -eq 1 ]
    # The next run and worker on the host sweep it; theirs is the only one.
    seg_job n "$T/other.bin" 1
    start_worker b --slots 1
    start_run n
    wait_exists "$T/n.started.0" 300
    [ "$(cache_count)" -eq 1 ]
    [ "$(cat "$T/n.ino.0")" = "$(cache_inodes)" ]
    [ "$(cat "$T/n.sum.0")" = "$want" ]
    finish_run n
    stop_worker b
    [ "$(cache_count)" -eq 0 ]
    [ -z "$(ls -A "$PARALLELRUN_SHM_BASE")" ]
}

@test "wq_segments: parallelrun gc removes a copy whose holders were all killed, never a held one" {
    head -c 100000 /dev/urandom > "$T/data.bin"
    seg_job g "$T/data.bin" 1
    start_worker a --slots 1
    start_run_killable g
    wait_exists "$T/g.started.0" 300
    [ "$(cache_count)" -eq 1 ]
    run "$PR" gc
    [ "$status" -eq 0 ]
    [ "$(cache_count)" -eq 1 ]
    kill -9 "$(cat "$T/a.pid")"
    kill_run g
    wait_gone "$(cat "$T/a.pid")"
    # The worker's child may outlive it a moment; then nothing holds it.
    wait_until sh -c '"$1" gc | grep -q parallelrun.cache' sh "$PR"
    [ "$(cache_count)" -eq 0 ]
}
