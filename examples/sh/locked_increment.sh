#!/bin/sh
# locked_increment.sh FILE: adds 1 to the number in FILE, holding the
# run-wide lock "FILE" so concurrent instances never lose an update.
# The fencing token ($PARALLELRUN_LOCK_TOKEN inside the lock) grows with
# every acquisition: a storage that remembers the highest token it saw can
# refuse a write from a holder whose lease has run out.
set -eu
PR=${PARALLELRUN_BIN:-parallelrun}
file=${1:?usage: locked_increment.sh FILE}

exec "$PR" lock "counter-file" --timeout 1m -- sh -c '
    n=$(cat "$1" 2>/dev/null || echo 0)
    echo $((n + 1)) > "$1.tmp" && mv "$1.tmp" "$1"
    echo "instance $PARALLELRUN_INDEX: $n -> $((n + 1)) (token $PARALLELRUN_LOCK_TOKEN)"
' sh "$file"
