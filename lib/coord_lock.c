/* SPDX-License-Identifier: MIT */
/*
 * coord_lock: the children's locks (prun_lock_acquire and the `lock`
 * subcommand): a key taken with a lease and a fencing token, renewed by
 * an owner-checked script (by a thread with its own connection, or by the
 * caller), released only by its owner. Key names and algorithms:
 * docs/redis-schema.md. The job lock of a whole run is coord_joblock.c.
 */
#include "coord_int.h"
#include "coord_sync.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <unistd.h>

/* How long a lock waiter sleeps on the wake list before trying again. */
#define LOCK_POLL_MS 200

/* ---- Locks --------------------------------------------------------------
 */

/* KEYS: lock, fence; ARGV: owner, lease, ttl. Returns the token or 0. */
static const char lock_acquire_lua[] =
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"
    "  local f = redis.call('INCR', KEYS[2])\n"
    "  redis.call('PEXPIRE', KEYS[2], ARGV[3])\n"
    "  return f\n"
    "end\n"
    "return 0\n";

/* KEYS: lock; ARGV: owner, lease. Returns 1 if still ours. */
static const char lock_renew_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

/*
 * KEYS: lock, wake; ARGV: owner, ttl. Returns 1 if it was ours. The wake
 * list is a hint, not a count: one entry wakes one waiter, and keeping at
 * most one stops releases without waiters from piling entries up.
 */
static const char lock_release_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  redis.call('RPUSH', KEYS[2], '1')\n"
    "  redis.call('LTRIM', KEYS[2], -1, -1)\n"
    "  redis.call('PEXPIRE', KEYS[2], ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

struct prun_lock {
    char name[NAME_MAX_LEN + 1];
    char key[KEY_MAX];
    char wake[KEY_MAX];
    char owner[33];
    char lease[24];
    int64_t lease_ms;
    uint64_t token;

    /* With a renewal thread: */
    int has_thread;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    struct prun_conn *own; /* the thread's connection; also releases */
    char url[512];
    char password[256];
};

static int lock_renew_on(
    struct prun_lock *l, struct prun_conn *c, struct prun_err *err)
{
    const char *args[3] = {l->key, l->owner, l->lease};
    redisReply *r;
    long long ok;

    r = prun__eval(c, err, lock_renew_lua, 1, 3, args);
    if (r == NULL)
        return prun__sync_redis_fail(err);
    if (prun__sync_reply_int(r, &ok) < 0) {
        freeReplyObject(r);
        return prun__sync_bad_reply(c, "lock renew", err);
    }
    freeReplyObject(r);
    if (!ok)
        return prun__err_set(err, PRUN_ELOCKED,
            "lock '%s' was lost: its lease ran out before it was renewed",
            l->name);
    return 0;
}

static void abs_after(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/*
 * The renewal thread: renews every lease/3, so two renewals may fail in a
 * row (Redis restarting, a slow network) before the lease runs out. It
 * stops when asked or when the lock turns out to be lost; it never
 * touches the process-wide connection, which the main thread may be using.
 */
static void *renew_main(void *arg)
{
    struct prun_lock *l = arg;
    struct timespec ts;
    struct prun_err e;
    int rc = 0;

    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        abs_after(&ts, l->lease_ms / 3);
        while (!l->stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&l->cv, &l->mu, &ts);
        if (l->stop)
            break;
        rc = 0;
        pthread_mutex_unlock(&l->mu);
        if (l->own != NULL && l->own->ctx->err) {
            prun__conn_close(l->own);
            l->own = NULL;
        }
        if (l->own == NULL)
            prun__conn_open(
                l->url, l->password, (int)(l->lease_ms / 3), &l->own, &e);
        if (l->own != NULL && lock_renew_on(l, l->own, &e) == PRUN_ELOCKED) {
            pthread_mutex_lock(&l->mu);
            break;
        }
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void lock_free(struct prun_lock *l)
{
    if (l->has_thread) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_signal(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        pthread_cond_destroy(&l->cv);
        pthread_mutex_destroy(&l->mu);
    }
    prun__conn_close(l->own);
    memset(l->password, 0, sizeof(l->password));
    free(l);
}

static int start_renewal(struct prun_lock *l, struct prun_err *err)
{
    const char *url = getenv("PARALLELRUN_REDIS");
    const char *pw = getenv("PARALLELRUN_REDIS_PASSWORD");
    pthread_condattr_t ca;
    int rc;

    snprintf(l->url, sizeof(l->url), "%s", url ? url : "");
    snprintf(l->password, sizeof(l->password), "%s", pw ? pw : "");
    rc = prun__conn_open(l->url, l->password, 5000, &l->own, err);
    if (rc < 0)
        return rc;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&l->mu, NULL);
    rc = pthread_create(&l->thread, NULL, renew_main, l);
    if (rc != 0) {
        pthread_cond_destroy(&l->cv);
        pthread_mutex_destroy(&l->mu);
        errno = rc;
        return prun__err_sys(
            err, "lock '%s': cannot start the renewal thread", l->name);
    }
    l->has_thread = 1;
    return 0;
}

static int lock_take(const char *name, int64_t timeout_ms, int64_t lease_ms,
    int renew_thread, struct prun_lock **out, uint64_t *token,
    struct prun_err *err)
{
    char fence[KEY_MAX + 8], ttl[24], secs[32], waited[32];
    unsigned char rnd[16];
    const char *args[5];
    struct prun_lock *l = NULL;
    struct prun_conn *c;
    redisReply *r;
    long long got;
    int64_t deadline, slice;
    int rc, i;

    rc = prun__sync_check_name("lock", name, err);
    if (rc < 0)
        return rc;
    if (lease_ms < 30)
        return prun__err_set(err, PRUN_EINVAL, "lock lease too short");
    rc = prun__sync_conn_get(&c, err);
    if (rc < 0)
        return rc;
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    snprintf(l->name, sizeof(l->name), "%s", name);
    l->lease_ms = lease_ms;
    snprintf(l->lease, sizeof(l->lease), "%lld", (long long)lease_ms);
    if ((rc = prun__sync_key(l->key, err, "lock:%s", name)) < 0 ||
        (rc = prun__sync_key(l->wake, err, "lock:%s:wake", name)) < 0)
        goto fail;
    snprintf(fence, sizeof(fence), "%s:fence", l->key);
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        rc = prun__err_sys(err, "lock '%s': getrandom", name);
        goto fail;
    }
    for (i = 0; i < 16; i++)
        snprintf(l->owner + 2 * i, 3, "%02x", rnd[i]);
    prun__sync_key_ttl(ttl, sizeof(ttl));
    args[0] = l->key;
    args[1] = fence;
    args[2] = l->owner;
    args[3] = l->lease;
    args[4] = ttl;
    deadline = timeout_ms < 0 ? -1 : prun__now_ms() + timeout_ms;
    for (;;) {
        r = prun__eval(c, err, lock_acquire_lua, 2, 5, args);
        if (r == NULL) {
            rc = prun__sync_redis_fail(err);
            goto fail;
        }
        if (prun__sync_reply_int(r, &got) < 0) {
            freeReplyObject(r);
            rc = prun__sync_bad_reply(c, "lock acquire", err);
            goto fail;
        }
        freeReplyObject(r);
        if (got > 0)
            break;
        slice = LOCK_POLL_MS;
        if (deadline >= 0) {
            slice = deadline - prun__now_ms();
            if (slice <= 0) {
                prun__sync_fmt_wait(timeout_ms, waited, sizeof(waited));
                rc = prun__err_set(err, PRUN_ETIMEDOUT,
                    "lock '%s' is held (waited %s)", name, waited);
                goto fail;
            }
            if (slice > LOCK_POLL_MS)
                slice = LOCK_POLL_MS;
        }
        /*
         * A release pushes onto the wake list, so a waiter usually tries
         * again at once; the short timeout covers a holder that died and
         * whose lease ran out, which pushes nothing.
         */
        prun__sync_block_secs(slice, secs, sizeof(secs));
        prun__conn_timeout(c, slice + c->timeout_ms);
        r = prun__cmd(c, err, "BLPOP %s %s", l->wake, secs);
        prun__conn_timeout(c, c->timeout_ms);
        if (r == NULL) {
            rc = prun__sync_redis_fail(err);
            goto fail;
        }
        freeReplyObject(r);
    }
    l->token = (uint64_t)got;
    if (renew_thread) {
        rc = start_renewal(l, err);
        if (rc < 0) {
            const char *rargs[4] = {l->key, l->wake, l->owner, ttl};

            r = prun__eval(c, NULL, lock_release_lua, 2, 4, rargs);
            if (r)
                freeReplyObject(r);
            goto fail;
        }
    }
    *out = l;
    if (token)
        *token = l->token;
    return 0;
fail:
    if (l)
        lock_free(l);
    return rc;
}

int prun__lock_take(const char *name, int64_t timeout_ms, int64_t lease_ms,
    int renew_thread, struct prun_lock **out, uint64_t *token,
    struct prun_err *err)
{
    struct prun_err e = {0};
    int rc =
        lock_take(name, timeout_ms, lease_ms, renew_thread, out, token, &e);

    if (rc < 0 && err)
        *err = e;
    return rc;
}

int prun_lock_acquire(const char *name, int64_t timeout_ms,
    struct prun_lock **out, uint64_t *token, struct prun_err *err)
{
    return prun__lock_take(
        name, timeout_ms, PRUN_LOCK_LEASE_MS, 1, out, token, err);
}

int prun__lock_renew(struct prun_lock *l, struct prun_err *err)
{
    struct prun_err e = {0};
    struct prun_conn *c;
    int rc;

    rc = prun__sync_conn_get(&c, &e);
    if (rc == 0) {
        /* Renewal must not block past the next one. */
        prun__conn_timeout(c, l->lease_ms / 3);
        rc = lock_renew_on(l, c, &e);
        if (!c->ctx->err)
            prun__conn_timeout(c, c->timeout_ms);
    }
    if (rc < 0 && err)
        *err = e;
    return rc;
}

int64_t prun__lock_lease_ms(const struct prun_lock *l)
{
    return l->lease_ms;
}

int prun_lock_release(struct prun_lock *l, struct prun_err *err)
{
    struct prun_err e = {0};
    char ttl[24];
    const char *args[4];
    struct prun_conn *c = NULL;
    redisReply *r;
    long long ok = 0;
    int rc = 0;

    if (l == NULL)
        return 0;
    if (l->has_thread) {
        /* Stop renewing first: the thread's connection is ours now. */
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_signal(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        pthread_cond_destroy(&l->cv);
        pthread_mutex_destroy(&l->mu);
        l->has_thread = 0;
        if (l->own != NULL && !l->own->ctx->err)
            c = l->own;
    }
    if (c == NULL)
        rc = prun__sync_conn_get(&c, &e);
    if (rc == 0) {
        prun__sync_key_ttl(ttl, sizeof(ttl));
        args[0] = l->key;
        args[1] = l->wake;
        args[2] = l->owner;
        args[3] = ttl;
        r = prun__eval(c, &e, lock_release_lua, 2, 4, args);
        if (r == NULL) {
            rc = prun__sync_redis_fail(&e);
        } else {
            if (prun__sync_reply_int(r, &ok) < 0)
                rc = prun__sync_bad_reply(c, "lock release", &e);
            else if (!ok)
                rc = prun__err_set(&e, PRUN_ELOCKED,
                    "lock '%s' had been lost before its release: its lease "
                    "(%lldms) ran out, so another holder may have overlapped "
                    "(fencing token %llu)",
                    l->name, (long long)l->lease_ms,
                    (unsigned long long)l->token);
            freeReplyObject(r);
        }
    }
    lock_free(l);
    if (rc < 0 && err)
        *err = e;
    return rc;
}
