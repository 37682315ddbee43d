# Shared by the bats files: paths to the built binaries, a private temp
# directory per test, and small helpers to write job files and to wait
# for events.
#
# Every test is hermetic: it gets its own HOME, XDG_RUNTIME_DIR,
# PARALLELRUN_SHM_BASE and TMPDIR under $T, so tests can run in parallel
# (bats --jobs) and beside another checkout's suite. Waits poll for an
# event (a file, a fifo, a Redis key) with a bound; every bound is
# multiplied by PRUN_TIME_FACTOR (default 1) for slow machines.

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
# A one-shot gate children block on (tests/cli/gate wait|open PATH).
GATE=$ROOT/tests/cli/gate
: "${PRUN_BUILD:=$ROOT/build}"
PR=${PARALLELRUN_BIN:-$PRUN_BUILD/parallelrun}
SHOWARGS=$PRUN_BUILD/examples/showargs
EX=$ROOT/examples/sh

common_setup() {
    T=$(mktemp -d "${BATS_TMPDIR:-/tmp}/prun-test.XXXXXX")
    cd "$ROOT" || return 1
    # No config of the machine's or the user's may change what we test.
    export PARALLELRUN_CONFIG=$T/empty.ini
    : > "$PARALLELRUN_CONFIG"
    unset PARALLELRUN_JOBS PARALLELRUN_RESULTS PARALLELRUN_KILL_GRACE
    unset PARALLELRUN_REDIS PARALLELRUN_REDIS_PASSWORD PARALLELRUN_RUN_ID
    # A private home: the embedded Redis and its data belong to this test.
    export HOME=$T/home
    mkdir -p "$HOME"
    unset XDG_STATE_HOME XDG_CONFIG_HOME
    # The embedded server lives where the user's passwd home says; a test
    # names its own place, and the server stops as soon as it is unused.
    export PARALLELRUN_STATE_DIR=$HOME/.local/state/parallelrun
    export PARALLELRUN_EMBEDDED_LINGER=0
    # Private runtime, shared-memory and temp directories too.
    export XDG_RUNTIME_DIR=$T/xdg PARALLELRUN_SHM_BASE=$T/shm TMPDIR=$T/tmp
    mkdir -p -m 0700 "$XDG_RUNTIME_DIR" "$PARALLELRUN_SHM_BASE" "$TMPDIR"
}

# time_factor: PRUN_TIME_FACTOR, a positive number (default 1).
time_factor() {
    local f=${PRUN_TIME_FACTOR:-1}
    [[ "$f" =~ ^[0-9]+(\.[0-9]+)?$ ]] && [ "$f" != 0 ] || f=1
    echo "$f"
}

# scaled N: N (seconds, or any count) times the time factor, an integer.
scaled() {
    awk -v n="$1" -v f="$(time_factor)" 'BEGIN { v = n * f;
        printf "%d\n", (v == int(v)) ? v : int(v) + 1 }'
}

# The directory of this test's embedded redis-server (its socket and pid
# file). The one place that knows where the runner puts it.
embedded_dir() {
    echo "$PARALLELRUN_STATE_DIR/run"
}

# The pid of this test's embedded redis-server, if one runs.
embedded_pid() {
    local f
    f=$(embedded_dir)/redis.pid
    [ -f "$f" ] && alive "$(cat "$f")" && cat "$f"
}

# start_redis NAME [ARGS...]: a private redis-server on $T/NAME.sock.
start_redis() {
    local name=$1
    shift
    redis-server --port 0 --unixsocket "$T/$name.sock" --unixsocketperm 700 \
        --dir "$T" --dbfilename "$name.rdb" --daemonize yes \
        --pidfile "$T/$name.pid" --logfile "$T/$name.log" "$@" >/dev/null
    wait_until redis-cli -s "$T/$name.sock" ping
}

common_teardown() {
    # Anything a test started and lost track of dies with the test.
    if [ -n "${T:-}" ] && [ -d "$T" ]; then
        for f in "$T"/*.pid; do
            [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
        done
        # The embedded server of this test, if a test left it.
        local ep
        for ep in "$(embedded_dir)/redis.keeper" "$(embedded_dir)/redis.pid"; do
            [ -f "$ep" ] && kill -9 "$(cat "$ep")" 2>/dev/null
        done
        rm -rf "$T"
    fi
}

# job NAME <<'YAML' ... : writes $T/NAME.yaml from stdin.
job() {
    cat > "$T/$1.yaml"
}

# alive PID: true if PID exists and is not a zombie.
alive() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "${st#Z}" = "$st" ]
}

# wait_until [-t SECONDS] CMD...: polls CMD (quietly) until it succeeds;
# fails after SECONDS (default 10) times the time factor. For events a
# test cannot block on: a file appearing, a Redis key, a process ending.
wait_until() {
    local limit=10 deadline
    if [ "$1" = -t ]; then
        limit=$2
        shift 2
    fi
    deadline=$((SECONDS + $(scaled "$limit")))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -le "$deadline" ] || {
            echo "wait_until: gave up after $(scaled "$limit") s: $*" >&2
            return 1
        }
        sleep 0.02
    done
}

# wait_for FILE [TENTHS]: waits until FILE has content (default 10 s,
# times the time factor).
wait_for() {
    wait_until -t "$(((${2:-100} + 9) / 10))" test -s "$1"
}

# wait_exists FILE [TENTHS]: waits until FILE exists, even empty.
wait_exists() {
    wait_until -t "$(((${2:-100} + 9) / 10))" test -e "$1"
}

# wait_gone PID [SECONDS]: waits until process PID has ended (or is a
# zombie).
wait_gone() {
    wait_until -t "${2:-10}" not_alive "$1"
}

not_alive() {
    ! alive "$1"
}

# python_lib_ok: skips the test when the library under test is built with
# ASan (make check): a python3 that loads it would need the sanitizer
# runtime preloaded. make test runs these tests on the normal build.
python_lib_ok() {
    if ldd "$PRUN_BUILD/libparallelrun.so" 2>/dev/null | grep -q libasan; then
        skip "the Python package cannot load an ASan build of the library"
    fi
}

# ---- Work-queue tests: a private redis-server, queue workers -----------

# queue_redis: a private redis-server on $T/q.sock; sets URL.
queue_redis() {
    start_redis q
    URL=unix://$T/q.sock
}

rcli() { redis-cli -s "$T/q.sock" "$@"; }

# The newest run announced on the queue's Redis.
last_rid() { rcli zrevrange parallelrun:runs 0 0; }

# start_worker NAME [ARGS...]: `parallelrun worker` on $URL in its own
# HOME; log in $T/NAME.log, pid in $T/NAME.pid.
start_worker() {
    local name=$1
    shift
    mkdir -p "$T/home-$name"
    HOME=$T/home-$name "$PR" worker --redis "$URL" "$@" \
        > "$T/$name.log" 2>&1 &
    echo $! > "$T/$name.pid"
}
