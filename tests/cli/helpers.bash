# Shared by the bats files: paths to the built binaries, a private temp
# directory per test, and small helpers to write job files.

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
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
    unset XDG_RUNTIME_DIR XDG_STATE_HOME XDG_CONFIG_HOME
}

# The pid of this test's embedded redis-server, if one runs.
embedded_pid() {
    local f=$HOME/.local/state/parallelrun/run/redis.pid
    [ -f "$f" ] && alive "$(cat "$f")" && cat "$f"
}

# start_redis NAME [ARGS...]: a private redis-server on $T/NAME.sock.
start_redis() {
    local name=$1
    shift
    redis-server --port 0 --unixsocket "$T/$name.sock" --unixsocketperm 700 \
        --dir "$T" --dbfilename "$name.rdb" --daemonize yes \
        --pidfile "$T/$name.pid" --logfile "$T/$name.log" "$@" >/dev/null
    for ((i = 0; i < 100; i++)); do
        redis-cli -s "$T/$name.sock" ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    return 1
}

common_teardown() {
    # Anything a test started and lost track of dies with the test.
    if [ -n "${T:-}" ] && [ -d "$T" ]; then
        for f in "$T"/*.pid; do
            [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
        done
        # The embedded server of this test's home, if a test left it.
        local ep=$T/home/.local/state/parallelrun/run/redis.pid
        [ -f "$ep" ] && kill -9 "$(cat "$ep")" 2>/dev/null
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

# wait_for FILE [TENTHS]: waits until FILE has content (default 5 s).
wait_for() {
    local i
    for ((i = 0; i < ${2:-50}; i++)); do
        [ -s "$1" ] && return 0
        sleep 0.1
    done
    return 1
}

# wait_exists FILE [TENTHS]: waits until FILE exists, even empty.
wait_exists() {
    local i
    for ((i = 0; i < ${2:-50}; i++)); do
        [ -e "$1" ] && return 0
        sleep 0.1
    done
    return 1
}
