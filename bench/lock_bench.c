/* SPDX-License-Identifier: MIT */
/*
 * lock_bench: N uncontended lock round trips (acquire + release), first
 * raw over one persistent hiredis connection (SET key val NX PX, then a
 * release-by-value Lua script through EVALSHA), then through the child
 * API (prun_lock_acquire/prun_lock_release), against the same Redis.
 * The two alternate in ten rounds of N/10, so a neighbour's load on this
 * shared machine falls on both alike. Prints one line per variant and
 * their ratio.
 *
 *   PARALLELRUN_REDIS=redis://... PARALLELRUN_RUN_ID=bench lock_bench [N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <parallelrun.h>

static const char release_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('DEL', KEYS[1])\n"
    "end\n"
    "return 0\n";

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static redisContext *connect_url(const char *url)
{
    char host[256] = "127.0.0.1";
    int port = 6379, db = 0;

    if (strncmp(url, "unix://", 7) == 0)
        return redisConnectUnix(url + 7);
    if (sscanf(url, "redis://%255[^:/]:%d/%d", host, &port, &db) < 1)
        return NULL;
    return redisConnect(host, port);
}

static int raw(redisContext *c, int n)
{
    redisReply *r = redisCommand(c, "SCRIPT LOAD %s", release_lua);
    char sha[41], val[32];
    int i;

    if (r == NULL || r->type != REDIS_REPLY_STRING)
        return -1;
    snprintf(sha, sizeof(sha), "%s", r->str);
    freeReplyObject(r);
    for (i = 0; i < n; i++) {
        snprintf(val, sizeof(val), "%d", i);
        r = redisCommand(c, "SET bench:rawlock %s NX PX 15000", val);
        if (r == NULL || r->type != REDIS_REPLY_STATUS)
            return -1;
        freeReplyObject(r);
        r = redisCommand(c, "EVALSHA %s 1 bench:rawlock %s", sha, val);
        if (r == NULL || r->type != REDIS_REPLY_INTEGER || r->integer != 1)
            return -1;
        freeReplyObject(r);
    }
    return 0;
}

static int api(int n)
{
    struct prun_lock *l;
    struct prun_err err;
    int i;

    for (i = 0; i < n; i++) {
        if (prun_lock_acquire("bench", 5000, &l, NULL, &err) < 0 ||
            prun_lock_release(l, &err) < 0) {
            fprintf(stderr, "lock_bench: %s\n", err.msg);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 5000;
    const char *url = getenv("PARALLELRUN_REDIS");
    redisContext *c;
    double t0, t_raw = 0, t_api = 0;
    int round;

    if (url == NULL || (c = connect_url(url)) == NULL || c->err) {
        fprintf(stderr, "lock_bench: cannot connect to PARALLELRUN_REDIS\n");
        return 1;
    }
    /* One warm-up round each: scripts loaded, connections open. */
    if (raw(c, 1) < 0 || api(1) < 0)
        return 1;
    n = n / 10 * 10;
    for (round = 0; round < 10; round++) {
        t0 = now_s();
        if (raw(c, n / 10) < 0) {
            fprintf(stderr, "lock_bench: raw round trip failed\n");
            return 1;
        }
        t_raw += now_s() - t0;
        t0 = now_s();
        if (api(n / 10) < 0)
            return 1;
        t_api += now_s() - t0;
    }
    printf("raw  %d round trips: %.3f s (%.1f us each)\n", n, t_raw,
        t_raw * 1e6 / n);
    printf("api  %d round trips: %.3f s (%.1f us each)\n", n, t_api,
        t_api * 1e6 / n);
    printf("ratio api/raw: %.2f\n", t_api / t_raw);
    redisFree(c);
    return 0;
}
