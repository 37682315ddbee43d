#!/bin/sh
# flood.sh BYTES [stdout|stderr]: writes BYTES bytes of 'x' lines.
n=${1:-1048576}
if [ "${2:-stdout}" = stderr ]; then
    head -c "$n" /dev/zero | tr '\0' 'x' | fold -w 79 >&2
else
    head -c "$n" /dev/zero | tr '\0' 'x' | fold -w 79
fi
