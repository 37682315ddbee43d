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
}

common_teardown() {
    # Anything a test started and lost track of dies with the test.
    if [ -n "${T:-}" ] && [ -d "$T" ]; then
        for f in "$T"/*.pid; do
            [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
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

# wait_for FILE [TENTHS]: waits until FILE exists (default 5 s).
wait_for() {
    local i
    for ((i = 0; i < ${2:-50}; i++)); do
        [ -s "$1" ] && return 0
        sleep 0.1
    done
    return 1
}
