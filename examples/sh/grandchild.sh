#!/bin/sh
# grandchild.sh PIDFILE [SECONDS]: starts a background grandchild that
# would outlive us, records its pid, then waits SECONDS (default 0) and
# exits. The runner must not leave the grandchild running.
sleep 1000 &
echo $! > "$1"
sleep "${2:-0}"
