#!/bin/sh
# exit.sh CODE [MESSAGE]: prints MESSAGE on stderr, exits with CODE.
[ -n "$2" ] && echo "$2" >&2
exit "${1:-0}"
