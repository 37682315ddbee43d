/* SPDX-License-Identifier: MIT */
/*
 * coord_joblock: the job lock of `lock: true`, over a blocking connection.
 *
 * A run takes parallelrun:lock:{NAME} with a lease and a fencing token: a
 * counter, parallelrun:lock:{NAME}:fence, incremented on every take, so
 * every holder has a token no earlier or later holder has. The stored
 * value is "RID HOST PID TOKEN SINCE_MS", and the holder renews and checks
 * the lease by comparing the whole value (coord_state.c does that from the
 * runner's loop): once a later run took the lock, the value, and with it
 * the token, is no longer ours, whatever our own clock says.
 *
 * This module takes, describes and releases the lock; it does not decide
 * what a run does when it loses it (the runner stops its children).
 */
#include "coord_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int64_t prun__boot_ms(void)
{
    struct timespec ts;

    /* Unlike CLOCK_MONOTONIC, CLOCK_BOOTTIME goes on during a suspend. */
    if (clock_gettime(CLOCK_BOOTTIME, &ts) < 0)
        clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char acquire_lua[] =
    "local h = redis.call('GET', KEYS[1]) "
    "if h and h ~= ARGV[3] then return {0, h} end "
    "local t = redis.call('INCR', KEYS[2]) "
    "local v = ARGV[1] .. ' ' .. t .. ' ' .. ARGV[4] "
    "redis.call('SET', KEYS[1], v, 'PX', ARGV[2]) "
    "return {1, v}";

static const char release_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('DEL', KEYS[1]) end return 0";

int prun__joblock_acquire(struct prun_conn *c, const char *job_name,
    const char *run_id, int64_t lease_ms, struct prun_joblock *out,
    struct prun_err *err)
{
    char fk[300], me[256], host[128], lease[32], now[32], stale[256] = "-";
    const char *args[6];
    struct prun_joblock l;
    redisReply *r;
    int attempt, rc = 0;

    memset(&l, 0, sizeof(l));
    if (gethostname(host, sizeof(host)) < 0)
        snprintf(host, sizeof(host), "localhost");
    snprintf(l.name, sizeof(l.name), "%s", job_name);
    snprintf(l.key, sizeof(l.key), "parallelrun:lock:{%s}", job_name);
    snprintf(fk, sizeof(fk), "%s:fence", l.key);
    snprintf(me, sizeof(me), "%s %s %ld", run_id, host, (long)getpid());
    snprintf(lease, sizeof(lease), "%lld", (long long)lease_ms);
    l.lease_ms = lease_ms;
    for (attempt = 0; attempt < 2; attempt++) {
        char hrid[64] = "", hhost[128] = "";
        long hpid = 0;

        snprintf(now, sizeof(now), "%lld", (long long)prun__wall_ms());
        args[0] = l.key;
        args[1] = fk;
        args[2] = me;
        args[3] = lease;
        args[4] = stale;
        args[5] = now;
        /* The lease counts from before the request: never longer than Redis's.
         */
        l.taken_ms = prun__boot_ms();
        r = prun__eval(c, err, acquire_lua, 2, 6, args);
        if (r == NULL)
            return err ? err->code : PRUN_EREDIS;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[1]->type != REDIS_REPLY_STRING) {
            freeReplyObject(r);
            return prun__err_set(
                err, PRUN_EREDIS, "job lock: unexpected reply");
        }
        if (r->element[0]->integer == 1) {
            snprintf(l.value, sizeof(l.value), "%s", r->element[1]->str);
            sscanf(l.value, "%*s %*s %*s %llu", &l.token);
            freeReplyObject(r);
            *out = l;
            return 0;
        }
        sscanf(r->element[1]->str, "%63s %127s %ld", hrid, hhost, &hpid);
        /*
         * A holder on this host whose process is gone died without
         * releasing: take the lock over rather than wait out its lease.
         */
        if (attempt == 0 && strcmp(hhost, host) == 0 && hpid > 0 &&
            kill((pid_t)hpid, 0) < 0 && errno == ESRCH) {
            snprintf(stale, sizeof(stale), "%s", r->element[1]->str);
            freeReplyObject(r);
            continue;
        }
        rc = prun__err_set(err, PRUN_ELOCKED,
            "job '%s' is locked by run %s (host %s, pid %ld); try later",
            job_name, hrid, hhost, hpid);
        freeReplyObject(r);
        return rc;
    }
    return prun__err_set(err, PRUN_ELOCKED, "job '%s' is locked", job_name);
}

void prun__joblock_drop(struct prun_conn *c, const struct prun_joblock *l)
{
    const char *args[2];
    redisReply *r;

    if (c == NULL || l == NULL || l->value[0] == '\0')
        return;
    args[0] = l->key;
    args[1] = l->value;
    r = prun__eval(c, NULL, release_lua, 1, 2, args);
    if (r)
        freeReplyObject(r);
}

void prun__joblock_describe(
    struct prun_conn *c, const struct prun_joblock *l, char *buf, size_t n)
{
    struct prun_err e;
    redisReply *r;
    char rid[64] = "", when[64] = "?";
    long long since = 0;

    if (c == NULL) {
        snprintf(buf, n, "Redis unreachable");
        return;
    }
    prun__conn_timeout(c, 2000);
    r = prun__cmd(c, &e, "GET %s", l->key);
    if (r == NULL) {
        snprintf(buf, n, "Redis unreachable: %s", e.msg);
        return;
    }
    if (r->type != REDIS_REPLY_STRING) {
        snprintf(buf, n, "now held by no run");
    } else if (strcmp(r->str, l->value) == 0) {
        snprintf(buf, n, "still ours in Redis");
    } else {
        sscanf(r->str, "%63s %*s %*s %*s %lld", rid, &since);
        if (since > 0) {
            time_t t = (time_t)(since / 1000);
            struct tm tm;

            localtime_r(&t, &tm);
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
        }
        snprintf(buf, n, "held by run %s since %s", rid, when);
    }
    freeReplyObject(r);
}
