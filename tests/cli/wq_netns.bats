#!/usr/bin/env bats
# Distributed runs across network namespaces: Redis and the run in one
# namespace, queue workers in another, joined only by a veth pair, as on
# two hosts. Skipped where namespaces cannot be made (not root, no `ip`).
# Each test makes its own two namespaces (random names), so concurrent
# suites do not meet; the addresses live inside them only.

load helpers

setup() {
    common_setup
    F=$(time_factor)
    command -v ip >/dev/null || skip "no ip (iproute2)"
    NA=prun-a-$$-$RANDOM NB=prun-b-$$-$RANDOM
    VA=pa$RANDOM VB=pb$RANDOM
    ip netns add "$NA" 2>/dev/null || skip "cannot make network namespaces"
    echo "$NA" > "$T/netns"
    ip netns add "$NB" || skip "cannot make network namespaces"
    echo "$NB" >> "$T/netns"
    ip link add "$VA" type veth peer name "$VB"
    ip link set "$VA" netns "$NA"
    ip link set "$VB" netns "$NB"
    ip -n "$NA" addr add 10.231.0.1/30 dev "$VA"
    ip -n "$NB" addr add 10.231.0.2/30 dev "$VB"
    ip -n "$NA" link set lo up
    ip -n "$NB" link set lo up
    ip -n "$NA" link set "$VA" up
    ip -n "$NB" link set "$VB" up
    # protected-mode off: the namespace pair is all the network there is.
    ip netns exec "$NA" redis-server --bind 10.231.0.1 --port 6390 \
        --protected-mode no \
        --save '' --appendonly no --dir "$T" --daemonize yes \
        --pidfile "$T/redis.pid" --logfile "$T/redis.log" >/dev/null
    URL=redis://10.231.0.1:6390/0
    wait_until ip netns exec "$NB" redis-cli -h 10.231.0.1 -p 6390 ping
}

teardown() {

    common_teardown_netns
    common_teardown
}

# Processes first (by the pids the test recorded), then the namespaces.
common_teardown_netns() {
    local f ns
    for f in "$T"/*.pid; do
        [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
    done
    if [ -f "$T/netns" ]; then
        while read -r ns; do ip netns del "$ns" 2>/dev/null; done < "$T/netns"
    fi
}

rcli() { ip netns exec "$NA" redis-cli -h 10.231.0.1 -p 6390 "$@"; }
last_rid() { rcli zrevrange parallelrun:runs 0 0; }

# worker NAME ARGS...: a queue worker in the other namespace, own HOME.
worker() {
    local name=$1
    shift
    mkdir -p "$T/home-$name"
    HOME=$T/home-$name ip netns exec "$NB" "$PR" worker --redis "$URL" "$@" \
        > "$T/$name.log" 2>&1 &
    echo $! > "$T/$name.pid"
}

@test "netns: a worker in another namespace runs a distributed run; each instance once" {
    job d <<EOF
tasks:
  sq:
    run: sh -c 'echo {item} >> $T/done; test {item} -ne 7'
    foreach: {range: [0, 100]}
EOF
    worker a --slots 4
    run timeout $(scaled 120) ip netns exec "$NA" "$PR" run "$T/d.yaml" \
        --redis "$URL" --distributed
    echo "$output"; cat "$T"/a.log
    [ "$status" -eq 1 ]
    [[ "$output" == *"1 of 100 instances failed"* ]]
    [[ "$output" == *"sq[7]"* ]]
    [ "$(sort -n "$T/done" | uniq | wc -l)" -eq 100 ]
    [ "$(wc -l < "$T/done")" -eq 100 ]
    rid=$(last_rid)
    [ "$(rcli hlen "parallelrun:{$rid}:wq:done")" -eq 100 ]
}

@test "netns: the link to Redis is cut under a running instance, then restored; the instance is done once" {
    job p <<EOF
tasks:
  t:
    run: sh -c 'touch $T/started.{item}; $GATE wait $T/go; echo {item} >> $T/done'
    foreach: {range: [0, 3]}
EOF
    worker a --slots 3 --lease 60s
    timeout $(scaled 120) ip netns exec "$NA" "$PR" run "$T/p.yaml" \
        --redis "$URL" --distributed > "$T/run.out" 2>&1 &
    echo $! > "$T/run.pid"
    wait_until -t 60 test -e "$T/started.0" -a -e "$T/started.1" -a -e "$T/started.2"
    # The partition: the worker's side of the link goes down.
    ip -n "$NB" link set "$VB" down
    wait_until -t 60 grep -q "unreachable" "$T/a.log"
    ip -n "$NB" link set "$VB" up
    "$GATE" open "$T/go"
    st=0
    wait "$(cat "$T/run.pid")" || st=$?
    cat "$T/run.out" "$T/a.log"
    [ "$st" -eq 0 ]
    [ "$(sort -n "$T/done" | uniq | wc -l)" -eq 3 ]
    [ "$(wc -l < "$T/done")" -eq 3 ]
    rid=$(last_rid)
    [ "$(rcli hlen "parallelrun:{$rid}:wq:done")" -eq 3 ]
    [ "$(rcli hget "parallelrun:{$rid}:wq:meta" dup || echo 0)" -le 0 ]
}

@test "netns: a worker killed -9 in its namespace; a second worker there takes its instances" {
    job k <<EOF
tasks:
  t:
    run: sh -c 'if [ ! -e $T/go ]; then touch $T/held.{item}; exec sleep $(scaled 600); fi; echo {item} >> $T/done'
    foreach: {range: [0, 4]}
EOF
    worker a --slots 4 --lease 2s
    timeout $(scaled 120) ip netns exec "$NA" "$PR" run "$T/k.yaml" \
        --redis "$URL" --distributed > "$T/run.out" 2>&1 &
    echo $! > "$T/run.pid"
    wait_until -t 60 test -e "$T/held.0" -a -e "$T/held.1" -a -e "$T/held.2" -a -e "$T/held.3"
    kill -9 "$(cat "$T/a.pid")"
    touch "$T/go"
    worker b --slots 4 --lease 2s
    st=0
    wait "$(cat "$T/run.pid")" || st=$?
    cat "$T/run.out"
    [ "$st" -eq 0 ]
    [ "$(sort -n "$T/done" | uniq | wc -l)" -eq 4 ]
    [ "$(wc -l < "$T/done")" -eq 4 ]
}
