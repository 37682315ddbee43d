#!/bin/sh
# Prints each argument as [arg] on its own line: what argv did I get?
for a in "$@"; do
    printf '[%s]\n' "$a"
done
