#!/bin/sh
# barrier.sh OUTDIR: every instance writes its part, waits until all
# instances of the task have written theirs, then reads all of them.
# Run it with foreach/jobs so all instances run at once, e.g.
#   tasks: {t: {foreach: {range: [0, 8]}, run: [examples/sh/barrier.sh, out]}}
# (jobs must be at least the instance count, or the barrier never fills).
set -eu
PR=${PARALLELRUN_BIN:-parallelrun}
out=${1:?usage: barrier.sh OUTDIR}
mkdir -p "$out"

# Phase 1: produce this instance's part.
echo "part of instance $PARALLELRUN_INDEX" > "$out/part.$PARALLELRUN_INDEX"

# Nobody passes until all PARALLELRUN_COUNT instances have arrived.
"$PR" barrier parts-written --timeout 10m

# Phase 2: every part is there now.
n=$(ls "$out"/part.* | wc -l)
echo "instance $PARALLELRUN_INDEX sees $n of $PARALLELRUN_COUNT parts"
