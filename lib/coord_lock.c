/* SPDX-License-Identifier: MIT */
/*
 * coord_lock: the children's locks (prun_lock_acquire and the `lock`
 * subcommand): a key taken with a lease and a fencing token, renewed by
 * an owner-checked script (by the process's one renewer thread, with its
 * own connection, or by the caller), released only by its owner. Key names and
 * algorithms: docs/redis-schema.md. The job lock of a whole run is
 * coord_joblock.c.
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
 * most one stops releases without waiters from piling entries up. When
 * the entry of an earlier release is still there nobody has waited since,
 * and the release writes nothing more (uncontended locks stay cheap).
 */
static const char lock_release_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  if redis.call('LLEN', KEYS[2]) == 0 then\n"
    "    redis.call('RPUSH', KEYS[2], '1')\n"
    "    redis.call('PEXPIRE', KEYS[2], ARGV[2])\n"
    "  end\n"
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

    /* Renewed by the process's renewer (below); guarded by rn.mu: */
    int renewed;
    int lost;
    int64_t due_ms; /* the next renewal, monotonic */
    struct prun_lock *next;
};

/*
 * The renewer: one thread per process renews every lock acquired with
 * renewal, each every lease/3, so two renewals may fail in a row (Redis
 * restarting, a slow network) before a lease runs out. It is started by
 * the first such lock and then parked on a condition variable, so a lock
 * released within lease/3 costs it nothing: no thread and no connection
 * per lock, and the renewer opens its own connection only when a renewal
 * is first due. It never touches the process-wide connection, which the
 * caller's thread may be using. A forked child starts with no renewer and
 * no locks to renew (the parent's locks stay the parent's).
 */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC; set up by renewer_start */
    int running;
    int64_t wake_at; /* when the thread next wakes; INT64_MAX parked */
    struct prun_lock *head;
    struct prun_lock *busy; /* being renewed, rn.mu released */
    struct prun_conn *own;  /* the thread's connection */
    int reopen;             /* the server changed: open own again */
    char url[512];
    char password[256];
} rn = {.mu = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t rn_once = PTHREAD_ONCE_INIT;

static void rn_prepare(void)
{
    pthread_mutex_lock(&rn.mu);
}

static void rn_parent(void)
{
    pthread_mutex_unlock(&rn.mu);
}

static void rn_child(void)
{
    pthread_mutex_unlock(&rn.mu);
    /*
     * The parent's thread may have been waiting on rn.cv, and destroying a
     * condition variable waits for its waiters: renewer_start initialises
     * it afresh instead.
     */
    rn.running = 0;
    rn.head = NULL;
    rn.busy = NULL;
    /* The socket is shared with the parent: close our copy, say nothing. */
    prun__conn_close(rn.own);
    rn.own = NULL;
}

static void rn_register_atfork(void)
{
    pthread_atfork(rn_prepare, rn_parent, rn_child);
}

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

static void abs_at(struct timespec *ts, int64_t mono_ms)
{
    ts->tv_sec = (time_t)(mono_ms / 1000);
    ts->tv_nsec = (long)(mono_ms % 1000) * 1000000L;
}

/* One renewal of l, with rn.mu released; l stays alive while rn.busy. */
static void renew_one(struct prun_lock *l)
{
    char url[sizeof(rn.url)], pw[sizeof(rn.password)];
    struct prun_err e;
    int rc = -1, reopen = rn.reopen;

    memcpy(url, rn.url, sizeof(url));
    memcpy(pw, rn.password, sizeof(pw));
    rn.reopen = 0;
    pthread_mutex_unlock(&rn.mu);
    if (rn.own != NULL && (reopen || rn.own->ctx->err)) {
        prun__conn_close(rn.own);
        rn.own = NULL;
    }
    if (rn.own == NULL)
        prun__conn_open(url, pw, (int)(l->lease_ms / 3), &rn.own, &e);
    memset(pw, 0, sizeof(pw));
    if (rn.own != NULL) {
        prun__conn_timeout(rn.own, l->lease_ms / 3);
        rc = lock_renew_on(l, rn.own, &e);
    }
    pthread_mutex_lock(&rn.mu);
    /* A lost lock is never renewed again: its release reports the loss. */
    if (rc == PRUN_ELOCKED)
        l->lost = 1;
    l->due_ms = prun__now_ms() + l->lease_ms / 3;
}

static void *renew_main(void *arg)
{
    struct prun_lock *l, *first;
    struct timespec ts;

    (void)arg;
    pthread_mutex_lock(&rn.mu);
    for (;;) {
        first = NULL;
        for (l = rn.head; l != NULL; l = l->next)
            if (!l->lost && (first == NULL || l->due_ms < first->due_ms))
                first = l;
        if (first == NULL) {
            rn.wake_at = INT64_MAX;
            pthread_cond_wait(&rn.cv, &rn.mu);
            continue;
        }
        if (first->due_ms > prun__now_ms()) {
            rn.wake_at = first->due_ms;
            abs_at(&ts, first->due_ms);
            pthread_cond_timedwait(&rn.cv, &rn.mu, &ts);
            continue;
        }
        rn.busy = first;
        renew_one(first);
        rn.busy = NULL;
        pthread_cond_broadcast(&rn.cv);
    }
    return NULL;
}

/*
 * With rn.mu held: notes the server the children's environment names and
 * starts the thread if this process has none yet.
 */
static int renewer_start(const char *name, struct prun_err *err)
{
    const char *url = getenv("PARALLELRUN_REDIS");
    const char *pw = getenv("PARALLELRUN_REDIS_PASSWORD");
    pthread_condattr_t ca;
    pthread_attr_t ta;
    pthread_t t;
    int rc;

    /* The lock's server, which may differ from the last lock's. */
    if (strcmp(rn.url, url ? url : "") != 0 ||
        strcmp(rn.password, pw ? pw : "") != 0) {
        snprintf(rn.url, sizeof(rn.url), "%s", url ? url : "");
        snprintf(rn.password, sizeof(rn.password), "%s", pw ? pw : "");
        rn.reopen = 1;
    }
    if (rn.running)
        return 0;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rn.cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_attr_init(&ta);
    pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&t, &ta, renew_main, NULL);
    pthread_attr_destroy(&ta);
    if (rc != 0) {
        pthread_cond_destroy(&rn.cv);
        errno = rc;
        return prun__err_sys(
            err, "lock '%s': cannot start the renewal thread", name);
    }
    rn.running = 1;
    rn.wake_at = INT64_MAX;
    return 0;
}

/* Hands l to the renewer; it is first renewed lease/3 from now. */
static int renew_add(struct prun_lock *l, struct prun_err *err)
{
    int rc;

    pthread_once(&rn_once, rn_register_atfork);
    pthread_mutex_lock(&rn.mu);
    rc = renewer_start(l->name, err);
    if (rc == 0) {
        l->due_ms = prun__now_ms() + l->lease_ms / 3;
        l->next = rn.head;
        rn.head = l;
        l->renewed = 1;
        /* Wake the thread only when it would sleep past this renewal. */
        if (l->due_ms < rn.wake_at)
            pthread_cond_broadcast(&rn.cv);
    }
    pthread_mutex_unlock(&rn.mu);
    return rc;
}

/*
 * Takes l back from the renewer. A lock the renewer found lost needs no
 * flag here: the release script finds it is not ours and says so.
 */
static void renew_remove(struct prun_lock *l)
{
    struct prun_lock **p;

    if (!l->renewed)
        return;
    pthread_mutex_lock(&rn.mu);
    while (rn.busy == l)
        pthread_cond_wait(&rn.cv, &rn.mu);
    for (p = &rn.head; *p != NULL; p = &(*p)->next)
        if (*p == l) {
            *p = l->next;
            break;
        }
    l->renewed = 0;
    pthread_mutex_unlock(&rn.mu);
}

/* A new lock object for name with a random owner value. */
static int lock_new(const char *name, int64_t lease_ms, struct prun_lock **out,
    struct prun_err *err)
{
    unsigned char rnd[16];
    struct prun_lock *l;
    int rc, i;

    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    snprintf(l->name, sizeof(l->name), "%s", name);
    l->lease_ms = lease_ms;
    snprintf(l->lease, sizeof(l->lease), "%lld", (long long)lease_ms);
    if ((rc = prun__sync_key(l->key, err, "lock:%s", name)) < 0 ||
        (rc = prun__sync_key(l->wake, err, "lock:%s:wake", name)) < 0) {
        free(l);
        return rc;
    }
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        rc = prun__err_sys(err, "lock '%s': getrandom", name);
        free(l);
        return rc;
    }
    for (i = 0; i < 16; i++)
        snprintf(l->owner + 2 * i, 3, "%02x", rnd[i]);
    *out = l;
    return 0;
}

/* One attempt: sets *token to the fencing token, or 0 if the lock is held. */
static int lock_try(struct prun_conn *c, struct prun_lock *l, uint64_t *token,
    struct prun_err *err)
{
    char fence[KEY_MAX + 8], ttl[24];
    const char *args[5];
    redisReply *r;
    long long got;

    snprintf(fence, sizeof(fence), "%s:fence", l->key);
    prun__sync_key_ttl(ttl, sizeof(ttl));
    args[0] = l->key;
    args[1] = fence;
    args[2] = l->owner;
    args[3] = l->lease;
    args[4] = ttl;
    r = prun__eval(c, err, lock_acquire_lua, 2, 5, args);
    if (r == NULL)
        return prun__sync_redis_fail(err);
    if (prun__sync_reply_int(r, &got) < 0) {
        freeReplyObject(r);
        return prun__sync_bad_reply(c, "lock acquire", err);
    }
    freeReplyObject(r);
    *token = got > 0 ? (uint64_t)got : 0;
    return 0;
}

/*
 * Waits up to slice ms for a release. A release pushes onto the wake
 * list, so a waiter usually tries again at once; the short timeout covers
 * a holder that died and whose lease ran out, which pushes nothing.
 */
static int lock_wait_wake(struct prun_conn *c, const struct prun_lock *l,
    int64_t slice, struct prun_err *err)
{
    char secs[32];
    redisReply *r;

    prun__sync_block_secs(slice, secs, sizeof(secs));
    prun__conn_timeout(c, slice + c->timeout_ms);
    r = prun__cmd(c, err, "BLPOP %s %s", l->wake, secs);
    prun__conn_timeout(c, c->timeout_ms);
    if (r == NULL)
        return prun__sync_redis_fail(err);
    freeReplyObject(r);
    return 0;
}

/* Releases l's key if it is still l's: 1 released, 0 not ours. */
static int lock_drop(
    struct prun_conn *c, const struct prun_lock *l, struct prun_err *err)
{
    char ttl[24];
    const char *args[4];
    redisReply *r;
    long long ok = 0;

    prun__sync_key_ttl(ttl, sizeof(ttl));
    args[0] = l->key;
    args[1] = l->wake;
    args[2] = l->owner;
    args[3] = ttl;
    r = prun__eval(c, err, lock_release_lua, 2, 4, args);
    if (r == NULL)
        return prun__sync_redis_fail(err);
    if (prun__sync_reply_int(r, &ok) < 0) {
        freeReplyObject(r);
        return prun__sync_bad_reply(c, "lock release", err);
    }
    freeReplyObject(r);
    return ok ? 1 : 0;
}

static int lock_take(const char *name, int64_t timeout_ms, int64_t lease_ms,
    int renew_thread, struct prun_lock **out, uint64_t *token,
    struct prun_err *err)
{
    char waited[32];
    struct prun_lock *l = NULL;
    struct prun_conn *c;
    uint64_t got = 0;
    int64_t deadline, slice;
    int rc;

    rc = prun__sync_check_name("lock", name, err);
    if (rc < 0)
        return rc;
    if (lease_ms < 30)
        return prun__err_set(err, PRUN_EINVAL, "lock lease too short");
    if ((rc = prun__sync_conn_get(&c, err)) < 0 ||
        (rc = lock_new(name, lease_ms, &l, err)) < 0)
        return rc;
    deadline = timeout_ms < 0 ? -1 : prun__now_ms() + timeout_ms;
    while ((rc = lock_try(c, l, &got, err)) == 0 && got == 0) {
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
        if ((rc = lock_wait_wake(c, l, slice, err)) < 0)
            goto fail;
    }
    if (rc < 0)
        goto fail;
    l->token = got;
    if (renew_thread && (rc = renew_add(l, err)) < 0) {
        struct prun_err ignored;

        lock_drop(c, l, &ignored);
        goto fail;
    }
    *out = l;
    if (token)
        *token = l->token;
    return 0;
fail:
    free(l);
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
    struct prun_conn *c = NULL;
    int rc;

    if (l == NULL)
        return 0;
    /* Stop renewing first, so no renewal races the release. */
    renew_remove(l);
    rc = prun__sync_conn_get(&c, &e);
    if (rc == 0)
        rc = lock_drop(c, l, &e);
    if (rc == 0)
        rc = prun__err_set(&e, PRUN_ELOCKED,
            "lock '%s' had been lost before its release: its lease "
            "(%lldms) ran out, so another holder may have overlapped "
            "(fencing token %llu)",
            l->name, (long long)l->lease_ms, (unsigned long long)l->token);
    free(l);
    if (rc < 0 && err)
        *err = e;
    return rc < 0 ? rc : 0;
}
