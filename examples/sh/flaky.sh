#!/bin/sh
# flaky.sh STATEFILE N: fails until it has been run N times, then succeeds.
# Shows how retries behave: each attempt appends a line to STATEFILE.
echo "attempt ${PARALLELRUN_ATTEMPT:-?}" >> "$1"
[ "$(wc -l < "$1")" -ge "$2" ] && exit 0
echo "not yet (attempt ${PARALLELRUN_ATTEMPT:-?})" >&2
exit 1
