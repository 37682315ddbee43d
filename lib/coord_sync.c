/* SPDX-License-Identifier: MIT */
/*
 * coord_sync: the synchronization primitives a child uses through Redis
 * (README "Synchronization for children"): barriers, locks with a lease and a
 * fencing token, counters, queues, progress reports and the pool mode's next
 * item. The key names and algorithms are the ones in docs/redis-schema.md;
 * every multi-key step is one Lua script or one MULTI block, so a crash between
 * two commands can never leave a half-done state, and every key created here
 * gets a TTL in the same step so nothing outlives the run forever.
 *
 * It is not the runner's side: feeding pool items, requeueing a dead
 * worker's item and expiring a finished run's keys are done by the runner
 * (coord_state.c and lib/runner.c). It reads only the PARALLELRUN_*
 * environment and keeps one Redis connection per process, opened on first
 * use and reopened after a fork or a broken connection. Locks acquired
 * with a renewal thread give that thread a connection of its own.
 */
#include "coord_int.h"
#include "coord_sync.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_KEY_TTL_MS (7LL * 24 * 3600 * 1000)
/* How long a lock waiter sleeps on the wake list before trying again. */
#define LOCK_POLL_MS 200
/* A wait without a deadline is a loop of blocking calls this long. */
#define BLOCK_SLICE_MS 5000
/* How long next blocks for an item before looking at 'fed' again. */
#define POOL_POLL_MS 1000
#define KEY_MAX      512
#define NAME_MAX_LEN 200

/* ---- The process-wide connection -----------------------------------------
 */

static struct {
    struct prun_conn *c;
    pid_t pid;
    char url[512]; /* the PARALLELRUN_REDIS it was opened for */
} g;

void prun__sync_disconnect(void)
{
    prun__conn_close(g.c);
    g.c = NULL;
}

/*
 * The connection of this process. A forked child must not talk over its
 * parent's socket (their replies would interleave), a broken connection
 * cannot be used again, and a changed PARALLELRUN_REDIS means another
 * server: each of these opens a new one. Closing the inherited copy in a
 * child only closes the child's fd; hiredis sends nothing.
 */
static int conn_get(struct prun_conn **out, struct prun_err *err)
{
    const char *url = getenv("PARALLELRUN_REDIS");
    int rc;

    if (g.c != NULL && (g.pid != getpid() || g.c->ctx->err || url == NULL ||
                           strcmp(url, g.url) != 0))
        prun__sync_disconnect();
    if (g.c == NULL) {
        rc = prun__conn_from_env(&g.c, err);
        if (rc < 0)
            return rc;
        g.pid = getpid();
        snprintf(g.url, sizeof(g.url), "%s", url);
    }
    *out = g.c;
    return 0;
}

/*
 * A reply that did not come in time is a broken connection here, never
 * PRUN_ETIMEDOUT: that code means "the lock stayed held" or "the barrier
 * did not fill" to our callers.
 */
static int redis_fail(struct prun_err *err)
{
    if (err->code == PRUN_ETIMEDOUT || err->code == 0)
        err->code = PRUN_EREDIS;
    return err->code;
}

static int io_fail(struct prun_conn *c, struct prun_err *err)
{
    return prun__err_set(err, PRUN_EREDIS, "Redis at %s: %s", c->url,
        c->ctx->errstr[0] ? c->ctx->errstr : "no reply");
}

/* ---- Environment, names and keys -----------------------------------------
 */

static int env_need(const char *var, const char **out, struct prun_err *err)
{
    const char *v = getenv(var);

    if (v == NULL || *v == '\0')
        return prun__err_set(err, PRUN_EINVAL,
            "%s is not set: run this inside a task started by "
            "'parallelrun run'",
            var);
    *out = v;
    return 0;
}

/*
 * Names become part of key names. A ':' would let one primitive's name
 * collide with another's sub-key (barrier "a:3" and the token list of
 * generation 3 of barrier "a"), so it is refused, as are blanks and
 * control characters, which no shell user means.
 */
static int check_name(const char *kind, const char *name, struct prun_err *err)
{
    const unsigned char *p;

    if (name == NULL || *name == '\0')
        return prun__err_set(err, PRUN_EINVAL, "%s name is empty", kind);
    if (strlen(name) > NAME_MAX_LEN)
        return prun__err_set(err, PRUN_EINVAL,
            "%s name '%.40s...' is longer than %d bytes", kind, name,
            NAME_MAX_LEN);
    for (p = (const unsigned char *)name; *p; p++)
        if (*p == ':' || *p <= ' ' || *p == 0x7f)
            return prun__err_set(err, PRUN_EINVAL,
                "invalid %s name '%s': it may not contain ':', blanks or "
                "control characters",
                kind, name);
    return 0;
}

/* "parallelrun:{RID}:" followed by fmt, into buf. */
static int key(char *buf, struct prun_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int key(char *buf, struct prun_err *err, const char *fmt, ...)
{
    const char *rid = NULL;
    va_list ap;
    int n, m, rc;

    rc = env_need("PARALLELRUN_RUN_ID", &rid, err);
    if (rc < 0)
        return rc;
    n = snprintf(buf, KEY_MAX, "parallelrun:{%s}:", rid);
    if (n < 0 || n >= KEY_MAX)
        return prun__err_set(
            err, PRUN_EINVAL, "PARALLELRUN_RUN_ID is too long");
    va_start(ap, fmt);
    m = vsnprintf(buf + n, (size_t)(KEY_MAX - n), fmt, ap);
    va_end(ap);
    if (m < 0 || m >= KEY_MAX - n)
        return prun__err_set(err, PRUN_EINVAL, "key name too long");
    return 0;
}

/*
 * The TTL of every key created here: PARALLELRUN_KEY_TTL in ms (or a
 * duration such as "7d"), else 7 days, as "key_ttl" in the schema.
 */
static void key_ttl(char *buf, size_t n)
{
    const char *v = getenv("PARALLELRUN_KEY_TTL");
    long long ms = DEFAULT_KEY_TTL_MS, x;
    int64_t d;
    struct prun_err e;

    if (v != NULL && *v != '\0') {
        if (prun__parse_int(v, 1, INT64_MAX / 2, &x, &e) == 0)
            ms = x;
        else if (prun__parse_duration(v, &d, &e) == 0 && d > 0)
            ms = d;
    }
    snprintf(buf, n, "%lld", ms);
}

static void fmt_wait(int64_t ms, char *buf, size_t n)
{
    if (ms >= 1000 && ms % 1000 == 0 && ms < 60000)
        snprintf(buf, n, "%llds", (long long)(ms / 1000));
    else
        prun__fmt_duration(ms, buf, n);
}

/* A blocking command's timeout argument, in seconds (never 0: forever). */
static void block_secs(int64_t ms, char *buf, size_t n)
{
    if (ms < 1)
        ms = 1;
    snprintf(
        buf, n, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
}

/*
 * Runs argv commands inside MULTI ... EXEC, pipelined, and returns EXEC's
 * array reply (the caller frees it), or NULL with err filled.
 */
struct cmdv {
    int argc;
    const char **argv;
    const size_t *lens;
};

static redisReply *multi_exec(struct prun_conn *c, size_t n,
    const struct cmdv *cmds, struct prun_err *err)
{
    redisReply *r = NULL, *res = NULL;
    char first[256] = "";
    void *v;
    size_t i;

    if (c->ctx->err)
        return io_fail(c, err), NULL;
    redisAppendCommand(c->ctx, "MULTI");
    for (i = 0; i < n; i++)
        redisAppendCommandArgv(
            c->ctx, cmds[i].argc, cmds[i].argv, cmds[i].lens);
    redisAppendCommand(c->ctx, "EXEC");
    /* Read every reply, even after an error, to keep the stream aligned. */
    for (i = 0; i < n + 2; i++) {
        if (redisGetReply(c->ctx, &v) != REDIS_OK) {
            if (res)
                freeReplyObject(res);
            return io_fail(c, err), NULL;
        }
        r = v;
        /*
         * A command refused while queueing (OOM, NOPERM, READONLY...)
         * makes EXEC answer EXECABORT: the refusal is the reason to tell.
         */
        if (r->type == REDIS_REPLY_ERROR && first[0] == '\0')
            snprintf(first, sizeof(first), "%s", r->str);
        if (i == n + 1)
            res = r;
        else
            freeReplyObject(r);
    }
    if (res->type == REDIS_REPLY_ERROR) {
        prun__err_set(err, PRUN_EREDIS, "Redis at %s: %s", c->url,
            first[0] ? first : res->str);
        freeReplyObject(res);
        return NULL;
    }
    if (res->type != REDIS_REPLY_ARRAY || res->elements != n) {
        prun__err_set(
            err, PRUN_EREDIS, "Redis at %s: transaction aborted", c->url);
        freeReplyObject(res);
        return NULL;
    }
    for (i = 0; i < n; i++)
        if (res->element[i]->type == REDIS_REPLY_ERROR) {
            prun__err_set(err, PRUN_EREDIS, "Redis at %s: %s", c->url,
                res->element[i]->str);
            freeReplyObject(res);
            return NULL;
        }
    return res;
}

static int reply_int(const redisReply *r, long long *out)
{
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
        return 0;
    }
    return -1;
}

static int bad_reply(
    struct prun_conn *c, const char *what, struct prun_err *err)
{
    return prun__err_set(
        err, PRUN_EREDIS, "Redis at %s: unexpected reply to %s", c->url, what);
}

/* ---- Barriers -----------------------------------------------------------
 */

/*
 * KEYS[1] barrier hash; ARGV: count, ttl. Returns {gen, last}: the
 * generation this caller arrived in, and 1 if it was the last arrival, who
 * has pushed one release token per waiter onto HASH:gen.
 */
static const char barrier_arrive_lua[] =
    "local n = tonumber(ARGV[1])\n"
    "local c = redis.call('HINCRBY', KEYS[1], 'count', 1)\n"
    "local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "if c < n then return {gen, 0} end\n"
    "redis.call('HSET', KEYS[1], 'count', 0, 'gen', gen + 1)\n"
    "local l = KEYS[1] .. ':' .. gen\n"
    "local left = c - 1\n"
    "while left > 0 do\n"
    "  local t = {}\n"
    "  for i = 1, math.min(left, 1000) do t[i] = '1' end\n"
    "  redis.call('RPUSH', l, unpack(t))\n"
    "  left = left - #t\n"
    "end\n"
    "if c > 1 then redis.call('PEXPIRE', l, ARGV[2]) end\n"
    "return {gen, 1}\n";

/*
 * KEYS[1] barrier hash; ARGV[1] the caller's generation. A waiter giving
 * up: if its generation is still filling, it takes its arrival back so the
 * barrier stays usable; if the generation was released meanwhile, it takes
 * its token and counts as released. Returns {released, arrived}.
 */
static const char barrier_leave_lua[] =
    "local gen = redis.call('HGET', KEYS[1], 'gen') or '0'\n"
    "local c = tonumber(redis.call('HGET', KEYS[1], 'count') or '0')\n"
    "if gen == ARGV[1] then\n"
    "  if c > 0 then redis.call('HINCRBY', KEYS[1], 'count', -1) end\n"
    "  return {0, c}\n"
    "end\n"
    "redis.call('LPOP', KEYS[1] .. ':' .. ARGV[1])\n"
    "return {1, c}\n";

static int barrier_leave(
    const char *hash, const char *gen, long long *arrived, struct prun_err *err)
{
    const char *args[2] = {hash, gen};
    struct prun_conn *c;
    redisReply *r;
    long long released;
    int rc;

    rc = conn_get(&c, err);
    if (rc < 0)
        return rc;
    r = prun__eval(c, err, barrier_leave_lua, 1, 2, args);
    if (r == NULL)
        return redis_fail(err);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        reply_int(r->element[0], &released) < 0 ||
        reply_int(r->element[1], arrived) < 0) {
        freeReplyObject(r);
        return bad_reply(c, "barrier leave", err);
    }
    freeReplyObject(r);
    return released ? 1 : 0;
}

static int barrier_wait(
    const char *name, long count, int64_t timeout_ms, struct prun_err *err)
{
    char hash[KEY_MAX], list[KEY_MAX + 24], ttl[24], n[24], secs[32], gen[24],
        waited[32];
    const char *args[3] = {hash, n, ttl};
    const char *cnt = NULL;
    struct prun_conn *c;
    redisReply *r;
    long long g_gen, last, arrived = 0, x;
    int64_t deadline, slice;
    int rc;

    rc = check_name("barrier", name, err);
    if (rc < 0)
        return rc;
    if (count <= 0) {
        rc = env_need("PARALLELRUN_COUNT", &cnt, err);
        if (rc < 0)
            return prun__err_set(err, PRUN_EINVAL,
                "barrier '%s': no count given and PARALLELRUN_COUNT is not "
                "set (the task's instance count is unknown)",
                name);
        if (prun__parse_int(cnt, 1, 1000000000, &x, err) < 0)
            return prun__err_set(err, PRUN_EINVAL,
                "barrier '%s': PARALLELRUN_COUNT='%s' is not a count", name,
                cnt);
        count = (long)x;
    }
    /*
     * Instances waiting at a barrier keep their slots: one larger than
     * what the task may run at once would wait forever.
     */
    if ((cnt = getenv("PARALLELRUN_CONCURRENCY")) != NULL &&
        prun__parse_int(cnt, 1, 1000000000, &x, NULL) == 0 && count > x)
        return prun__err_set(err, PRUN_EINVAL,
            "barrier '%s' waits for %ld instances, but at most %lld of this "
            "task run at once (jobs / -j); it can never fill",
            name, count, x);
    rc = conn_get(&c, err);
    if (rc < 0)
        return rc;
    rc = key(hash, err, "barrier:%s", name);
    if (rc < 0)
        return rc;
    key_ttl(ttl, sizeof(ttl));
    snprintf(n, sizeof(n), "%ld", count);
    deadline = timeout_ms < 0 ? -1 : prun__now_ms() + timeout_ms;
    r = prun__eval(c, err, barrier_arrive_lua, 1, 3, args);
    if (r == NULL)
        return redis_fail(err);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        reply_int(r->element[0], &g_gen) < 0 ||
        reply_int(r->element[1], &last) < 0) {
        freeReplyObject(r);
        return bad_reply(c, "barrier arrive", err);
    }
    freeReplyObject(r);
    if (last)
        return 0;
    snprintf(gen, sizeof(gen), "%lld", g_gen);
    snprintf(list, sizeof(list), "%s:%s", hash, gen);
    for (;;) {
        slice = BLOCK_SLICE_MS;
        if (deadline >= 0) {
            slice = deadline - prun__now_ms();
            if (slice <= 0)
                break;
            if (slice > BLOCK_SLICE_MS)
                slice = BLOCK_SLICE_MS;
        }
        block_secs(slice, secs, sizeof(secs));
        /* The reply may take as long as the BLPOP itself, and then some. */
        prun__conn_timeout(c, slice + c->timeout_ms);
        r = prun__cmd(c, err, "BLPOP %s %s", list, secs);
        prun__conn_timeout(c, c->timeout_ms);
        if (r == NULL) {
            /*
             * Connection lost: take our arrival back if we can, so the
             * others are not released one short.
             */
            struct prun_err e2;

            rc = redis_fail(err);
            if (barrier_leave(hash, gen, &arrived, &e2) == 1)
                return 0;
            return rc;
        }
        if (r->type == REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            return 0;
        }
        freeReplyObject(r);
    }
    rc = barrier_leave(hash, gen, &arrived, err);
    if (rc < 0)
        return rc;
    if (rc == 1)
        return 0;
    fmt_wait(timeout_ms, waited, sizeof(waited));
    return prun__err_set(err, PRUN_ETIMEDOUT,
        "barrier '%s' timed out after %s (%lld of %ld arrived)", name, waited,
        arrived, count);
}

int prun_barrier_wait(
    const char *name, long count, int64_t timeout_ms, struct prun_err *err)
{
    struct prun_err e = {0};
    int rc = barrier_wait(name, count, timeout_ms, &e);

    if (rc < 0 && err)
        *err = e;
    return rc < 0 ? rc : 0;
}

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
        return redis_fail(err);
    if (reply_int(r, &ok) < 0) {
        freeReplyObject(r);
        return bad_reply(c, "lock renew", err);
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

    rc = check_name("lock", name, err);
    if (rc < 0)
        return rc;
    if (lease_ms < 30)
        return prun__err_set(err, PRUN_EINVAL, "lock lease too short");
    rc = conn_get(&c, err);
    if (rc < 0)
        return rc;
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    snprintf(l->name, sizeof(l->name), "%s", name);
    l->lease_ms = lease_ms;
    snprintf(l->lease, sizeof(l->lease), "%lld", (long long)lease_ms);
    if ((rc = key(l->key, err, "lock:%s", name)) < 0 ||
        (rc = key(l->wake, err, "lock:%s:wake", name)) < 0)
        goto fail;
    snprintf(fence, sizeof(fence), "%s:fence", l->key);
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        rc = prun__err_sys(err, "lock '%s': getrandom", name);
        goto fail;
    }
    for (i = 0; i < 16; i++)
        snprintf(l->owner + 2 * i, 3, "%02x", rnd[i]);
    key_ttl(ttl, sizeof(ttl));
    args[0] = l->key;
    args[1] = fence;
    args[2] = l->owner;
    args[3] = l->lease;
    args[4] = ttl;
    deadline = timeout_ms < 0 ? -1 : prun__now_ms() + timeout_ms;
    for (;;) {
        r = prun__eval(c, err, lock_acquire_lua, 2, 5, args);
        if (r == NULL) {
            rc = redis_fail(err);
            goto fail;
        }
        if (reply_int(r, &got) < 0) {
            freeReplyObject(r);
            rc = bad_reply(c, "lock acquire", err);
            goto fail;
        }
        freeReplyObject(r);
        if (got > 0)
            break;
        slice = LOCK_POLL_MS;
        if (deadline >= 0) {
            slice = deadline - prun__now_ms();
            if (slice <= 0) {
                fmt_wait(timeout_ms, waited, sizeof(waited));
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
        block_secs(slice, secs, sizeof(secs));
        prun__conn_timeout(c, slice + c->timeout_ms);
        r = prun__cmd(c, err, "BLPOP %s %s", l->wake, secs);
        prun__conn_timeout(c, c->timeout_ms);
        if (r == NULL) {
            rc = redis_fail(err);
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

    rc = conn_get(&c, &e);
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
        rc = conn_get(&c, &e);
    if (rc == 0) {
        key_ttl(ttl, sizeof(ttl));
        args[0] = l->key;
        args[1] = l->wake;
        args[2] = l->owner;
        args[3] = ttl;
        r = prun__eval(c, &e, lock_release_lua, 2, 4, args);
        if (r == NULL) {
            rc = redis_fail(&e);
        } else {
            if (reply_int(r, &ok) < 0)
                rc = bad_reply(c, "lock release", &e);
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

/* ---- Counters, queues, progress -----------------------------------------
 */

static int counter_add(
    const char *name, long long delta, long long *value, struct prun_err *err)
{
    char k[KEY_MAX], d[24], ttl[24];
    const char *incr[3] = {"INCRBY", k, d};
    const char *exp[3] = {"PEXPIRE", k, ttl};
    struct cmdv cmds[2] = {{3, incr, NULL}, {3, exp, NULL}};
    struct prun_conn *c;
    redisReply *r;
    long long v;
    int rc;

    if ((rc = check_name("counter", name, err)) < 0 ||
        (rc = conn_get(&c, err)) < 0 ||
        (rc = key(k, err, "counter:%s", name)) < 0)
        return rc;
    snprintf(d, sizeof(d), "%lld", delta);
    key_ttl(ttl, sizeof(ttl));
    /* MULTI, not Lua: Lua numbers are doubles and would round past 2^53. */
    r = multi_exec(c, 2, cmds, err);
    if (r == NULL)
        return redis_fail(err);
    rc = reply_int(r->element[0], &v);
    freeReplyObject(r);
    if (rc < 0)
        return bad_reply(c, "INCRBY", err);
    if (value)
        *value = v;
    return 0;
}

int prun_counter_add(
    const char *name, long long delta, long long *value, struct prun_err *err)
{
    struct prun_err e = {0};
    int rc = counter_add(name, delta, value, &e);

    if (rc < 0 && err)
        *err = e;
    return rc;
}

static int queue_push(
    const char *name, const char *const *values, size_t n, struct prun_err *err)
{
    char k[KEY_MAX], ttl[24];
    const char *exp[3] = {"PEXPIRE", k, ttl};
    const char **argv = NULL;
    struct cmdv cmds[2];
    struct prun_conn *c;
    redisReply *r;
    size_t i;
    int rc;

    if ((rc = check_name("queue", name, err)) < 0)
        return rc;
    if (n == 0)
        return 0;
    if (n > (size_t)1 << 20)
        return prun__err_set(
            err, PRUN_EINVAL, "queue '%s': too many values at once", name);
    if ((rc = conn_get(&c, err)) < 0 ||
        (rc = key(k, err, "queue:%s", name)) < 0)
        return rc;
    key_ttl(ttl, sizeof(ttl));
    argv = malloc((n + 2) * sizeof(*argv));
    if (argv == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    argv[0] = "RPUSH";
    argv[1] = k;
    for (i = 0; i < n; i++)
        argv[i + 2] = values[i];
    cmds[0] = (struct cmdv){(int)(n + 2), argv, NULL};
    cmds[1] = (struct cmdv){3, exp, NULL};
    r = multi_exec(c, 2, cmds, err);
    free(argv);
    if (r == NULL)
        return redis_fail(err);
    freeReplyObject(r);
    return 0;
}

int prun_queue_push(
    const char *name, const char *const *values, size_t n, struct prun_err *err)
{
    struct prun_err e = {0};
    int rc = queue_push(name, values, n, &e);

    if (rc < 0 && err)
        *err = e;
    return rc;
}

static int take_string(const redisReply *r, char **out, struct prun_err *err)
{
    char *s = malloc(r->len + 1);

    if (s == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    memcpy(s, r->str, r->len);
    s[r->len] = '\0';
    *out = s;
    return 0;
}

static int queue_pop(
    const char *name, int64_t timeout_ms, char **value, struct prun_err *err)
{
    char k[KEY_MAX], secs[32];
    struct prun_conn *c;
    redisReply *r;
    int64_t deadline, slice;
    int rc;

    if ((rc = check_name("queue", name, err)) < 0 ||
        (rc = conn_get(&c, err)) < 0 ||
        (rc = key(k, err, "queue:%s", name)) < 0)
        return rc;
    if (timeout_ms == 0) {
        r = prun__cmd(c, err, "LPOP %s", k);
        if (r == NULL)
            return redis_fail(err);
        rc = 0;
        if (r->type == REDIS_REPLY_STRING)
            rc = take_string(r, value, err) < 0 ? PRUN_ENOMEM : 1;
        freeReplyObject(r);
        return rc;
    }
    deadline = timeout_ms < 0 ? -1 : prun__now_ms() + timeout_ms;
    for (;;) {
        slice = BLOCK_SLICE_MS;
        if (deadline >= 0) {
            slice = deadline - prun__now_ms();
            if (slice <= 0)
                return 0;
            if (slice > BLOCK_SLICE_MS)
                slice = BLOCK_SLICE_MS;
        }
        block_secs(slice, secs, sizeof(secs));
        prun__conn_timeout(c, slice + c->timeout_ms);
        r = prun__cmd(c, err, "BLPOP %s %s", k, secs);
        prun__conn_timeout(c, c->timeout_ms);
        if (r == NULL)
            return redis_fail(err);
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[1]->type == REDIS_REPLY_STRING) {
            rc = take_string(r->element[1], value, err) < 0 ? PRUN_ENOMEM : 1;
            freeReplyObject(r);
            return rc;
        }
        freeReplyObject(r);
    }
}

int prun_queue_pop(
    const char *name, int64_t timeout_ms, char **value, struct prun_err *err)
{
    struct prun_err e = {0};
    int rc = queue_pop(name, timeout_ms, value, &e);

    if (rc < 0 && err)
        *err = e;
    return rc;
}

static int progress(
    unsigned long long done, long long total, struct prun_err *err)
{
    char k[KEY_MAX], field[300], val[64], ttl[24];
    const char *task = NULL, *index = NULL;
    const char *hset[4] = {"HSET", k, field, val};
    const char *exp[3] = {"PEXPIRE", k, ttl};
    struct cmdv cmds[2] = {{4, hset, NULL}, {3, exp, NULL}};
    struct prun_conn *c;
    redisReply *r;
    int rc;

    if ((rc = env_need("PARALLELRUN_TASK", &task, err)) < 0 ||
        (rc = env_need("PARALLELRUN_INDEX", &index, err)) < 0 ||
        (rc = conn_get(&c, err)) < 0 || (rc = key(k, err, "progress")) < 0)
        return rc;
    snprintf(field, sizeof(field), "%s[%s]", task, index);
    snprintf(val, sizeof(val), "%llu %lld", done, total < 0 ? -1 : total);
    key_ttl(ttl, sizeof(ttl));
    r = multi_exec(c, 2, cmds, err);
    if (r == NULL)
        return redis_fail(err);
    freeReplyObject(r);
    return 0;
}

int prun_progress(
    unsigned long long done, long long total, struct prun_err *err)
{
    struct prun_err e = {0};
    int rc = progress(done, total, &e);

    if (rc < 0 && err)
        *err = e;
    return rc;
}

/* ---- Pool mode ----------------------------------------------------------
 */

/*
 * KEYS: pool, wip, done, ok, fed; ARGV: mark, ttl. With mark = 1 the item
 * in wip is the one this worker has finished: it is marked done. With mark
 * = 0 an item in wip is one a BLMOVE moved there whose reply we never got
 * (a broken connection): it is handed out, never marked. Then the next
 * item moves into wip. Returns {1, entry}, {0} when none is left (fed
 * holds the number of items queued and that many are done), or {2} when
 * the caller should wait: the runner may feed more, or put back the item
 * of a worker that died.
 */
static const char next_lua[] =
    "local cur = redis.call('LINDEX', KEYS[2], 0)\n"
    "if cur then\n"
    "  if ARGV[1] == '0' then return {1, cur} end\n"
    "  local tab = string.find(cur, '\\t', 1, true)\n"
    "  local item = cur\n"
    "  if tab then item = string.sub(cur, tab + 1) end\n"
    "  redis.call('SADD', KEYS[3], item)\n"
    "  redis.call('PEXPIRE', KEYS[3], ARGV[2])\n"
    "  redis.call('INCR', KEYS[4])\n"
    "  redis.call('PEXPIRE', KEYS[4], ARGV[2])\n"
    "  redis.call('DEL', KEYS[2])\n"
    "end\n"
    "local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')\n"
    "if v then\n"
    "  redis.call('PEXPIRE', KEYS[2], ARGV[2])\n"
    "  return {1, v}\n"
    "end\n"
    "local total = tonumber(redis.call('GET', KEYS[5]))\n"
    "if total and tonumber(redis.call('GET', KEYS[4]) or '0') >= total then\n"
    "  return {0}\n"
    "end\n"
    "return {2}\n";

/* "INDEX<TAB>ITEM" into its parts; an entry without a tab is index 0. */
static int split_entry(const redisReply *r, char **item,
    unsigned long long *index, struct prun_err *err)
{
    const char *tab = memchr(r->str, '\t', r->len);
    unsigned long long ix = 0;
    size_t off = 0;
    char *s;

    if (tab != NULL) {
        ix = strtoull(r->str, NULL, 10);
        off = (size_t)(tab - r->str) + 1;
    }
    s = malloc(r->len - off + 1);
    if (s == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    memcpy(s, r->str + off, r->len - off);
    s[r->len - off] = '\0';
    *item = s;
    if (index)
        *index = ix;
    return 0;
}

static int next_item(
    char **item, unsigned long long *index, struct prun_err *err)
{
    char pool[KEY_MAX], wip[KEY_MAX], done[KEY_MAX], ok[KEY_MAX], fed[KEY_MAX],
        ttl[24], secs[32];
    const char *args[7] = {pool, wip, done, ok, fed, "1", ttl};
    const char *task = NULL, *w = NULL, *attempt = NULL;
    struct prun_conn *c;
    redisReply *r;
    long long status;
    int rc, failures = 0;
    void *v;

    /*
     * The worker's slot is its index and attempt: a worker started again
     * after its predecessor died must never see (and mark done) the item
     * the predecessor left unfinished; the runner puts that one back.
     */
    if ((rc = env_need("PARALLELRUN_TASK", &task, err)) < 0 ||
        (rc = env_need("PARALLELRUN_INDEX", &w, err)) < 0 ||
        (rc = env_need("PARALLELRUN_ATTEMPT", &attempt, err)) < 0 ||
        (rc = key(pool, err, "pool:%s", task)) < 0 ||
        (rc = key(wip, err, "pool:%s:wip:%s.%s", task, w, attempt)) < 0 ||
        (rc = key(done, err, "done:%s", task)) < 0 ||
        (rc = key(ok, err, "pool:%s:ok", task)) < 0 ||
        (rc = key(fed, err, "pool:%s:fed", task)) < 0)
        return rc;
    key_ttl(ttl, sizeof(ttl));
    for (;;) {
        rc = conn_get(&c, err);
        if (rc < 0)
            return rc;
        r = prun__eval(c, err, next_lua, 5, 7, args);
        /*
         * Mark at most once. If the reply was lost, the script may or may
         * not have run: not marking again means the worst case is a
         * finished item handed out a second time, never an unfinished one
         * marked done.
         */
        args[5] = "0";
        if (r == NULL) {
            if (c->ctx->err && ++failures < 3)
                continue;
            return redis_fail(err);
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
            reply_int(r->element[0], &status) < 0 ||
            (status == 1 && (r->elements != 2 ||
                                r->element[1]->type != REDIS_REPLY_STRING))) {
            freeReplyObject(r);
            return bad_reply(c, "next", err);
        }
        if (status == 1) {
            rc = split_entry(r->element[1], item, index, err);
            freeReplyObject(r);
            return rc < 0 ? rc : 1;
        }
        freeReplyObject(r);
        if (status == 0)
            return 0;
        /*
         * The runner is still feeding. A blocking command cannot run in a
         * script, so wait outside it; the script above has already marked
         * the previous item and emptied wip, so this BLMOVE cannot lose
         * anything. PEXPIRE rides in the same pipeline (the server runs it
         * once the BLMOVE returns).
         */
        block_secs(POOL_POLL_MS, secs, sizeof(secs));
        prun__conn_timeout(c, POOL_POLL_MS + c->timeout_ms);
        redisAppendCommand(
            c->ctx, "BLMOVE %s %s LEFT RIGHT %s", pool, wip, secs);
        redisAppendCommand(c->ctx, "PEXPIRE %s %s", wip, ttl);
        if (redisGetReply(c->ctx, &v) != REDIS_OK) {
            io_fail(c, err);
            if (++failures < 3)
                continue;
            return redis_fail(err);
        }
        r = v;
        if (redisGetReply(c->ctx, &v) != REDIS_OK) {
            freeReplyObject(r);
            io_fail(c, err);
            if (++failures < 3)
                continue;
            return redis_fail(err);
        }
        prun__conn_timeout(c, c->timeout_ms);
        failures = 0;
        if (r->type == REDIS_REPLY_ERROR ||
            ((redisReply *)v)->type == REDIS_REPLY_ERROR) {
            prun__err_set(err, PRUN_EREDIS, "Redis at %s: %s", c->url,
                r->type == REDIS_REPLY_ERROR ? r->str : ((redisReply *)v)->str);
            freeReplyObject(v);
            freeReplyObject(r);
            return PRUN_EREDIS;
        }
        freeReplyObject(v);
        if (r->type == REDIS_REPLY_STRING) {
            rc = split_entry(r, item, index, err);
            freeReplyObject(r);
            return rc < 0 ? rc : 1;
        }
        freeReplyObject(r);
    }
}

int prun_next(char **item, unsigned long long *index, struct prun_err *err)
{
    struct prun_err e = {0};
    int rc = next_item(item, index, &e);

    if (rc < 0 && err)
        *err = e;
    return rc;
}

/* ---- Published segments ----------------------------------------------- */

int prun__segment_register(const char *name, const char *path, size_t size,
    const char *dtype, const char *shape, struct prun_err *err)
{
    char k[KEY_MAX], ttl[32], sz[32], pid[32];
    struct prun_conn *c;
    redisReply *r;
    int rc;

    /* Without Redis the files in the run directory are all there is. */
    if (getenv("PARALLELRUN_REDIS") == NULL)
        return 0;
    rc = key(k, err, "seg:%s", name);
    if (rc == 0)
        rc = conn_get(&c, err);
    if (rc < 0)
        return rc;
    key_ttl(ttl, sizeof(ttl));
    snprintf(sz, sizeof(sz), "%zu", size);
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    {
        const char *hset[] = {"HSET", k, "path", path, "size", sz, "dtype",
            dtype ? dtype : "", "shape", shape ? shape : "", "publisher_pid",
            pid};
        const char *exp[] = {"PEXPIRE", k, ttl};
        const struct cmdv cmds[] = {{12, hset, NULL}, {3, exp, NULL}};

        r = multi_exec(c, 2, cmds, err);
    }
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    freeReplyObject(r);
    return 0;
}
