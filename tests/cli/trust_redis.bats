#!/usr/bin/env bats
# Redis that refuses, redirects or is reached as an ACL user is never
# silent: every error reply is reported in Redis's own words and counted,
# a run whose state could not be recorded exits 3, a cluster endpoint is
# refused, an ACL user in the URL reaches the children, no key is ever
# left without a TTL, and no message shows a password.

load helpers

setup() {
    common_setup
    export XDG_RUNTIME_DIR=$T/xdg PARALLELRUN_SHM_BASE=$T/shm
    mkdir -p "$XDG_RUNTIME_DIR" "$PARALLELRUN_SHM_BASE"
}
teardown() { common_teardown; }

TF=${PRUN_TIME_FACTOR:-1}

# free_port: a TCP port on 127.0.0.1 nobody listens on right now.
free_port() {
    /usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# start_tcp_redis NAME [ARGS...]: a private redis-server on 127.0.0.1:$PORT
# (and $T/NAME.sock for redis-cli). A port taken meanwhile is tried again.
start_tcp_redis() {
    local name=$1 try
    shift
    for ((try = 0; try < 5; try++)); do
        PORT=$(free_port)
        redis-server --port "$PORT" --bind 127.0.0.1 \
            --unixsocket "$T/$name.sock" --unixsocketperm 700 --dir "$T" \
            --dbfilename "$name.rdb" --daemonize yes --save '' \
            --pidfile "$T/$name.pid" --logfile "$T/$name.log" "$@" \
            >/dev/null 2>&1 || continue
        for ((i = 0; i < 100 * TF; i++)); do
            redis-cli -s "$T/$name.sock" ping 2>/dev/null | grep -q PONG &&
                return 0
            redis-cli -s "$T/$name.sock" ping 2>&1 | grep -q NOAUTH &&
                return 0
            [ -f "$T/$name.pid" ] && ! alive "$(cat "$T/$name.pid")" && break
            sleep 0.05
        done
    done
    return 1
}

# fill SOCK: about 3 MB of data, so that a 1 MB maxmemory refuses writes.
fill() {
    /usr/bin/python3 -c '
import sys
v = "x" * 1000
for i in range(3000):
    sys.stdout.write("SET fill:%d %s\r\n" % (i, v))' |
        redis-cli -s "$1" >/dev/null
}

# no_key_without_ttl SOCK: every key of the server has a TTL.
no_key_without_ttl() {
    local k bad=0 n=0
    while IFS= read -r k; do
        n=$((n + 1))
        if [ "$(redis-cli -s "$1" pttl "$k")" = -1 ]; then
            echo "no TTL: $k"
            bad=1
        fi
    done < <(redis-cli -s "$1" --scan)
    echo "$n keys"
    [ "$n" -gt 0 ] && [ $bad -eq 0 ]
}

# wait_key SOCK KEY: waits (bounded) until KEY exists.
wait_key() {
    local i
    for ((i = 0; i < 200 * TF; i++)); do
        [ "$(redis-cli -s "$1" exists "$2")" = 1 ] && return 0
        sleep 0.05
    done
    echo "key $2 never appeared"
    return 1
}

# A job of n quick instances; each waits (bounded) until the runner has
# said something about Redis on its stderr, so the message is known to
# come while the run goes on, not at its end.
quick_job() {
    job "$1" <<EOF
tasks:
  t:
    foreach: {range: [0, ${2:-20}]}
    run: [sh, -c, 'i=0; while [ \$i -lt $((100 * TF)) ] && ! grep -q "Redis at" $T/err; do i=\$((i+1)); sleep 0.05; done; grep -q "Redis at" $T/err && touch $T/seen']
EOF
}

@test "OOM: maxmemory + noeviction is reported at once, counted, exits 3" {
    start_redis oom
    fill "$T/oom.sock"
    redis-cli -s "$T/oom.sock" config set maxmemory-policy noeviction >/dev/null
    redis-cli -s "$T/oom.sock" config set maxmemory 1mb >/dev/null
    quick_job oom 20
    rc=0
    timeout $((60 * TF)) "$PR" run "$T/oom.yaml" -j 4 \
        --redis "unix://$T/oom.sock" --json >"$T/out" 2>"$T/err" || rc=$?
    cat "$T/err" | head -c 4000
    [ $rc -eq 3 ]
    # Seen by a child while the run went on.
    [ -e "$T/seen" ]
    grep -q "refused a state write: OOM command not allowed when used memory" "$T/err"
    # The first of its kind only, then a count.
    [ "$(grep -c "refused a state write: OOM" "$T/err")" -eq 1 ]
    n=$(sed -n 's/.*Redis refused \([0-9]*\) state writes*: OOM.*/\1/p' "$T/err")
    [ "$n" -ge 20 ]
    /usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["exit_code"] == 3, d
assert d["redis_errors"] == int(sys.argv[2]), d
assert d["redis_error"].startswith("OOM "), d' "$T/out" "$n"
}

@test "OOM: the text summary counts the refused writes, even with --quiet" {
    start_redis oom2
    fill "$T/oom2.sock"
    redis-cli -s "$T/oom2.sock" config set maxmemory 1mb >/dev/null
    redis-cli -s "$T/oom2.sock" config set maxmemory-policy noeviction >/dev/null
    quick_job oom2 5
    run timeout $((60 * TF)) "$PR" run "$T/oom2.yaml" --quiet \
        --redis "unix://$T/oom2.sock"
    [ "$status" -eq 3 ]
    [[ "$output" == *"Redis refused "*" state write"*": OOM command not allowed"* ]]
    [[ "$output" == *"incomplete"* ]]
}

@test "NOPERM: an ACL user without the right to write is reported, exits 3" {
    start_redis acl
    redis-cli -s "$T/acl.sock" acl setuser ro on '>pw' '~*' '&*' +@all \
        -@write >/dev/null
    quick_job noperm 3
    rc=0
    timeout $((60 * TF)) "$PR" run "$T/noperm.yaml" \
        --redis "unix://ro:pw@$T/acl.sock" >"$T/out" 2>"$T/err" || rc=$?
    cat "$T/err" | head -c 4000
    [ $rc -eq 3 ]
    [ -e "$T/seen" ]
    grep -q "refused a state write: NOPERM" "$T/err"
    grep -q "Redis refused [0-9]* state writes*: NOPERM" "$T/err"
    ! grep -q ":pw@" "$T/err"
}

@test "READONLY: a replica of a dead master refuses writes: reported, exits 3" {
    start_redis ro --replicaof 127.0.0.1 1
    quick_job ro 3
    rc=0
    timeout $((60 * TF)) "$PR" run "$T/ro.yaml" \
        --redis "unix://$T/ro.sock" >"$T/out" 2>"$T/err" || rc=$?
    cat "$T/err" | head -c 4000
    [ $rc -eq 3 ]
    [ -e "$T/seen" ]
    grep -q "refused a state write: READONLY You can't write against a read only replica" "$T/err"
}

@test "WRONGTYPE inside a transaction is caught too" {
    start_redis wt
    quick_job wt 3
    # Run ids are unknown beforehand: the registry of runs is the victim.
    redis-cli -s "$T/wt.sock" set parallelrun:runs not-a-zset >/dev/null
    rc=0
    timeout $((60 * TF)) "$PR" run "$T/wt.yaml" \
        --redis "unix://$T/wt.sock" >"$T/out" 2>"$T/err" || rc=$?
    cat "$T/err" | head -c 4000
    [ $rc -eq 3 ]
    grep -q "refused a state write: WRONGTYPE" "$T/err"
}

@test "a child's primitive reports Redis's own error message" {
    start_redis cacl
    redis-cli -s "$T/cacl.sock" acl setuser default -incrby -rpush \
        >/dev/null
    # Refused while queued in MULTI: Redis's reason, not EXECABORT.
    run env PARALLELRUN_REDIS="unix://$T/cacl.sock" PARALLELRUN_RUN_ID=r1 \
        "$PR" counter c --add 1
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"NOPERM"*"incrby"* ]]
    run env PARALLELRUN_REDIS="unix://$T/cacl.sock" PARALLELRUN_RUN_ID=r1 \
        "$PR" queue push q a b
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"NOPERM"*"rpush"* ]]
}

@test "a Redis Cluster endpoint is refused at start with a clear message" {
    CPORT=$(free_port)
    start_tcp_redis cl --cluster-enabled yes \
        --cluster-config-file "$T/nodes.conf" --cluster-port "$CPORT"
    job cl <<EOF
tasks:
  t:
    foreach: {range: [0, 3]}
    run: [touch, "$T/ran.{item}"]
EOF
    run timeout $((60 * TF)) "$PR" run "$T/cl.yaml" \
        --redis "redis://127.0.0.1:$PORT/0"
    echo "$output"
    [ "$status" -eq 3 ]
    [[ "$output" == *"Redis Cluster"* ]]
    ! ls "$T"/ran.* 2>/dev/null
    run timeout $((30 * TF)) "$PR" status --redis "redis://127.0.0.1:$PORT"
    [ "$status" -eq 3 ]
    [[ "$output" == *"Redis Cluster"* ]]
}

@test "ACL user in the URL: the runner and its children authenticate as it" {
    start_tcp_redis user
    s=$T/user.sock
    redis-cli -s "$s" acl setuser app on '>s3cret' '~parallelrun:*' '&*' \
        +@all >/dev/null
    # No anonymous access at all: a child without the user cannot work.
    redis-cli -s "$s" acl setuser default off >/dev/null
    job acl <<EOF
tasks:
  t:
    foreach: {range: [0, 3]}
    run: [sh, -c, 'echo "\$PARALLELRUN_REDIS" > $T/url.\$PARALLELRUN_INDEX; "\$PARALLELRUN_BIN" counter hits --add 1 && echo "\$PARALLELRUN_RUN_ID" > $T/rid']
EOF
    run timeout $((60 * TF)) "$PR" run "$T/acl.yaml" \
        --redis "redis://app:s3cret@127.0.0.1:$PORT/2"
    echo "$output"
    [ "$status" -eq 0 ]
    rid=$(cat "$T/rid")
    [ "$(redis-cli -s "$s" --user app --pass s3cret -n 2 --no-auth-warning \
        get "parallelrun:{$rid}:counter:hits")" = 3 ]
    # The children's URL names the user, never the password.
    grep -q "^redis://app@127.0.0.1:$PORT/2$" "$T/url.0"
    ! grep -q s3cret "$T"/url.*
}

@test "redis://user@host with the password in the config (and %-escapes)" {
    start_tcp_redis user2
    s=$T/user2.sock
    redis-cli -s "$s" acl setuser 'ci@x' on '>p@ss:w/rd' '~*' '&*' \
        +@all >/dev/null
    redis-cli -s "$s" acl setuser default off >/dev/null
    printf '[redis]\nurl = redis://ci%%40x@127.0.0.1:%s/0\npassword = p@ss:w/rd\n' \
        "$PORT" >"$T/c.ini"
    chmod 600 "$T/c.ini"
    job acl2 <<EOF
tasks:
  t:
    foreach: {range: [0, 2]}
    run: [sh, -c, '"\$PARALLELRUN_BIN" counter n']
EOF
    run env PARALLELRUN_CONFIG="$T/c.ini" timeout $((60 * TF)) \
        "$PR" run "$T/acl2.yaml"
    echo "$output"
    [ "$status" -eq 0 ]
    # The same password in the URL, %-encoded.
    run timeout $((60 * TF)) "$PR" run "$T/acl2.yaml" \
        --redis "redis://ci%40x:p%40ss%3Aw%2Frd@127.0.0.1:$PORT"
    echo "$output"
    [ "$status" -eq 0 ]
    # A wrong password is refused in Redis's words, the user named.
    run timeout $((60 * TF)) "$PR" run "$T/acl2.yaml" \
        --redis "redis://ci%40x:nope@127.0.0.1:$PORT"
    [ "$status" -eq 3 ]
    [[ "$output" == *"user 'ci@x'"*"WRONGPASS"* ]]
    [[ "$output" != *nope* ]]
}

@test "a world-readable config with a password in its URL is refused" {
    printf '[redis]\nurl = redis://u:topsecret@127.0.0.1:1/0\n' >"$T/c.ini"
    chmod 644 "$T/c.ini"
    job t <<EOF
tasks:
  t:
    run: ["true"]
EOF
    run env PARALLELRUN_CONFIG="$T/c.ini" "$PR" run "$T/t.yaml"
    echo "$output"
    [ "$status" -eq 2 ]
    [[ "$output" == *"readable by others"* ]]
    [[ "$output" != *topsecret* ]]
    # A user without a password is no secret.
    printf '[redis]\nurl = redis://u@127.0.0.1:1/0\n' >"$T/c.ini"
    run env PARALLELRUN_CONFIG="$T/c.ini" "$PR" validate "$T/t.yaml"
    [ "$status" -eq 0 ]
}

@test "no message shows the password of a bad Redis URL" {
    job t <<EOF
tasks:
  t:
    run: ["true"]
EOF
    for url in 'redis://u:topsecret@h:notaport/0' 'redis://:topsecret@h/x' \
        'redis://u:topsecret@' 'unix://u:topsecret@relative' \
        'redis://u:top%zzsecret@h'; do
        run "$PR" run "$T/t.yaml" --redis "$url"
        echo "$url -> $status $output"
        [ "$status" -ne 0 ]
        [[ "$output" == *"invalid Redis URL"* ]]
        [[ "$output" != *topsecret* ]] && [[ "$output" != *secret* ]]
        run "$PR" status --redis "$url"
        [ "$status" -ne 0 ]
        [[ "$output" != *secret* ]]
        run env PARALLELRUN_REDIS="$url" PARALLELRUN_RUN_ID=r1 \
            "$PR" counter c
        [ "$status" -ne 0 ]
        [[ "$output" == *"invalid Redis URL"* ]]
        [[ "$output" != *secret* ]]
    done
}

# kill_run_when KEYSUFFIX JOB: starts JOB, kills the runner with SIGKILL as
# soon as parallelrun:{RID}:KEYSUFFIX exists, then checks every key's TTL.
kill_run_when() {
    local suffix=$1 name=$2 sock=$T/$2.sock runner rid i
    start_redis "$name"
    "$PR" run "$T/$name.yaml" -j 4 --redis "unix://$sock" \
        >"$T/$name.out" 2>&1 &
    runner=$!
    echo "$runner" >"$T/$name-runner.pid"
    wait_for "$T/rid" $((100 * TF))
    rid=$(cat "$T/rid")
    wait_key "$sock" "parallelrun:{$rid}:$suffix"
    kill -9 "$runner"
    wait "$runner" || true
    # The guardian stops the children; nothing writes any more.
    no_key_without_ttl "$sock"
}

@test "kill -9 as soon as an instance runs: no key without a TTL" {
    job k1 <<EOF
tasks:
  t:
    foreach: {range: [0, 8]}
    run: [sh, -c, 'echo \$PARALLELRUN_RUN_ID > $T/rid.tmp && mv $T/rid.tmp $T/rid; exec sleep $((30 * TF))']
EOF
    kill_run_when running k1
}

@test "kill -9 once an instance is done: no key without a TTL" {
    job k2 <<EOF
tasks:
  t:
    foreach: {range: [0, 8]}
    run: [sh, -c, 'echo \$PARALLELRUN_RUN_ID > $T/rid.tmp && mv $T/rid.tmp $T/rid; [ \$PARALLELRUN_INDEX -eq 0 ] || exec sleep $((30 * TF))']
EOF
    kill_run_when done:t k2
}

@test "kill -9 once the task counts are written: no key without a TTL" {
    job k3 <<EOF
tasks:
  t:
    foreach: {range: [0, 4]}
    run: [sh, -c, 'echo \$PARALLELRUN_RUN_ID > $T/rid.tmp && mv $T/rid.tmp $T/rid; exec sleep $((30 * TF))']
EOF
    kill_run_when tasks k3
}

@test "kill -9 in pool mode: no key without a TTL" {
    job k4 <<EOF
tasks:
  p:
    pool: true
    jobs: 2
    foreach: {range: [0, 50]}
    run: [sh, -c, 'echo \$PARALLELRUN_RUN_ID > $T/rid.tmp && mv $T/rid.tmp $T/rid; "\$PARALLELRUN_BIN" next >/dev/null; exec sleep $((30 * TF))']
EOF
    # Pool items live on the work queue: a worker slot holds one (wq.c).
    kill_run_when wq:slot:p:0.1 k4
}

@test "a finished pool run keeps no pool queues; every key has a TTL" {
    start_redis pool
    job pool <<EOF
tasks:
  p:
    pool: true
    jobs: 2
    foreach: {range: [0, 40]}
    run: [sh, -c, 'while "\$PARALLELRUN_BIN" next >/dev/null; do :; done; echo \$PARALLELRUN_RUN_ID > $T/rid']
EOF
    run timeout $((60 * TF)) "$PR" run "$T/pool.yaml" \
        --redis "unix://$T/pool.sock"
    [ "$status" -eq 0 ]
    rid=$(cat "$T/rid")
    [ -z "$(redis-cli -s "$T/pool.sock" --scan --pattern "parallelrun:{$rid}:pool:*")" ]
    [ "$(redis-cli -s "$T/pool.sock" exists "parallelrun:{$rid}:run")" = 1 ]
    no_key_without_ttl "$T/pool.sock"
}

@test "BUSY (a long script) is transient: reported, retried, nothing lost" {
    start_redis busy --lua-time-limit 100
    s=$T/busy.sock
    # Instance 0 keeps the server in a script for 2 s; the others end while
    # the server answers BUSY, so their records meet it.
    job busy <<EOF2
tasks:
  t:
    foreach: {range: [0, 6]}
    run: [sh, -c, 'if [ \$PARALLELRUN_INDEX = 0 ]; then touch $T/busy; redis-cli -s $s eval "local t = redis.call(\"TIME\") while redis.call(\"TIME\")[1] - t[1] < 2 do end return 1" 0 >/dev/null; else i=0; while [ ! -e $T/busy ] && [ \$i -lt $((200 * TF)) ]; do i=\$((i+1)); sleep 0.05; done; while ! redis-cli -s $s ping | grep -q BUSY && [ \$i -lt $((400 * TF)) ]; do i=\$((i+1)); sleep 0.02; done; echo \$PARALLELRUN_RUN_ID > $T/rid; fi']
EOF2
    rc=0
    timeout $((60 * TF)) "$PR" run "$T/busy.yaml" -j 6 --redis "unix://$s" \
        >"$T/out" 2>"$T/err" || rc=$?
    cat "$T/err" | head -c 4000
    [ $rc -eq 0 ]
    grep -q "not taking writes yet (retrying): BUSY" "$T/err"
    rid=$(cat "$T/rid")
    run "$PR" status "$rid" --redis "unix://$s" --json
    echo "$output" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)["run"]
assert d["state"] == "succeeded" and d["succeeded"] == 6, d'
}
