/* SPDX-License-Identifier: MIT */
/*
 * coord_sync: the synchronization primitives a child uses through Redis
 * (README "Synchronization for children"): barriers, locks with a lease and a
 * fencing token, counters, queues, progress reports and the pool mode's next
 * item (locks in coord_lock.c, pool mode in coord_pool.c; this file keeps
 * the connection and the helpers they share). The key names and
 * algorithms are the ones in docs/redis-schema.md;
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
/* A wait without a deadline is a loop of blocking calls this long. */
#define BLOCK_SLICE_MS 5000

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
int prun__sync_conn_get(struct prun_conn **out, struct prun_err *err)
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
int prun__sync_redis_fail(struct prun_err *err)
{
    if (err->code == PRUN_ETIMEDOUT || err->code == 0)
        err->code = PRUN_EREDIS;
    return err->code;
}

int prun__sync_io_fail(struct prun_conn *c, struct prun_err *err)
{
    return prun__err_set(err, PRUN_EREDIS, "Redis at %s: %s", c->url,
        c->ctx->errstr[0] ? c->ctx->errstr : "no reply");
}

/* ---- Environment, names and keys -----------------------------------------
 */

int prun__sync_env_need(const char *var, const char **out, struct prun_err *err)
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
int prun__sync_check_name(
    const char *kind, const char *name, struct prun_err *err)
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
int prun__sync_key(char *buf, struct prun_err *err, const char *fmt, ...)
{
    const char *rid = NULL;
    va_list ap;
    int n, m, rc;

    rc = prun__sync_env_need("PARALLELRUN_RUN_ID", &rid, err);
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
void prun__sync_key_ttl(char *buf, size_t n)
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

void prun__sync_fmt_wait(int64_t ms, char *buf, size_t n)
{
    if (ms >= 1000 && ms % 1000 == 0 && ms < 60000)
        snprintf(buf, n, "%llds", (long long)(ms / 1000));
    else
        prun__fmt_duration(ms, buf, n);
}

/* A blocking command's timeout argument, in seconds (never 0: forever). */
void prun__sync_block_secs(int64_t ms, char *buf, size_t n)
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
        return prun__sync_io_fail(c, err), NULL;
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
            return prun__sync_io_fail(c, err), NULL;
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

int prun__sync_reply_int(const redisReply *r, long long *out)
{
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
        return 0;
    }
    return -1;
}

int prun__sync_bad_reply(
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

    rc = prun__sync_conn_get(&c, err);
    if (rc < 0)
        return rc;
    r = prun__eval(c, err, barrier_leave_lua, 1, 2, args);
    if (r == NULL)
        return prun__sync_redis_fail(err);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        prun__sync_reply_int(r->element[0], &released) < 0 ||
        prun__sync_reply_int(r->element[1], arrived) < 0) {
        freeReplyObject(r);
        return prun__sync_bad_reply(c, "barrier leave", err);
    }
    freeReplyObject(r);
    return released ? 1 : 0;
}

/*
 * The count a barrier waits for: count, or the task's instance count when
 * count is 0; refused when more than the task may run at once, since
 * instances waiting at a barrier keep their slots and it could never fill.
 */
static int barrier_count(
    const char *name, long count, long *out, struct prun_err *err)
{
    const char *cnt = NULL;
    long long x;
    int rc;

    if (count <= 0) {
        rc = prun__sync_env_need("PARALLELRUN_COUNT", &cnt, err);
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
    if ((cnt = getenv("PARALLELRUN_CONCURRENCY")) != NULL &&
        prun__parse_int(cnt, 1, 1000000000, &x, NULL) == 0 && count > x)
        return prun__err_set(err, PRUN_EINVAL,
            "barrier '%s' waits for %ld instances, but at most %lld of this "
            "task run at once (jobs / -j); it can never fill",
            name, count, x);
    *out = count;
    return 0;
}

/*
 * Waits on generation gen's release list until deadline (< 0: forever).
 * Returns 1 released, 0 timed out, or a PRUN_E* (the arrival was taken
 * back if it could be; then 1 if that found the barrier released).
 */
static int barrier_block(struct prun_conn *c, const char *hash, const char *gen,
    int64_t deadline, long long *arrived, struct prun_err *err)
{
    char list[KEY_MAX + 24], secs[32];
    int64_t slice;
    redisReply *r;
    int rc;

    snprintf(list, sizeof(list), "%s:%s", hash, gen);
    for (;;) {
        slice = BLOCK_SLICE_MS;
        if (deadline >= 0) {
            slice = deadline - prun__now_ms();
            if (slice <= 0)
                return 0;
            if (slice > BLOCK_SLICE_MS)
                slice = BLOCK_SLICE_MS;
        }
        prun__sync_block_secs(slice, secs, sizeof(secs));
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

            rc = prun__sync_redis_fail(err);
            if (barrier_leave(hash, gen, arrived, &e2) == 1)
                return 1;
            return rc;
        }
        rc = r->type == REDIS_REPLY_ARRAY;
        freeReplyObject(r);
        if (rc)
            return 1;
    }
}

static int barrier_wait(
    const char *name, long count, int64_t timeout_ms, struct prun_err *err)
{
    char hash[KEY_MAX], ttl[24], n[24], gen[24], waited[32];
    const char *args[3] = {hash, n, ttl};
    struct prun_conn *c;
    redisReply *r;
    long long g_gen, last, arrived = 0;
    int64_t deadline;
    int rc;

    if ((rc = prun__sync_check_name("barrier", name, err)) < 0 ||
        (rc = barrier_count(name, count, &count, err)) < 0 ||
        (rc = prun__sync_conn_get(&c, err)) < 0 ||
        (rc = prun__sync_key(hash, err, "barrier:%s", name)) < 0)
        return rc;
    prun__sync_key_ttl(ttl, sizeof(ttl));
    snprintf(n, sizeof(n), "%ld", count);
    deadline = timeout_ms < 0 ? -1 : prun__now_ms() + timeout_ms;
    r = prun__eval(c, err, barrier_arrive_lua, 1, 3, args);
    if (r == NULL)
        return prun__sync_redis_fail(err);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        prun__sync_reply_int(r->element[0], &g_gen) < 0 ||
        prun__sync_reply_int(r->element[1], &last) < 0) {
        freeReplyObject(r);
        return prun__sync_bad_reply(c, "barrier arrive", err);
    }
    freeReplyObject(r);
    if (last)
        return 0;
    snprintf(gen, sizeof(gen), "%lld", g_gen);
    rc = barrier_block(c, hash, gen, deadline, &arrived, err);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    rc = barrier_leave(hash, gen, &arrived, err);
    if (rc < 0)
        return rc;
    if (rc == 1)
        return 0;
    prun__sync_fmt_wait(timeout_ms, waited, sizeof(waited));
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

    if ((rc = prun__sync_check_name("counter", name, err)) < 0 ||
        (rc = prun__sync_conn_get(&c, err)) < 0 ||
        (rc = prun__sync_key(k, err, "counter:%s", name)) < 0)
        return rc;
    snprintf(d, sizeof(d), "%lld", delta);
    prun__sync_key_ttl(ttl, sizeof(ttl));
    /* MULTI, not Lua: Lua numbers are doubles and would round past 2^53. */
    r = multi_exec(c, 2, cmds, err);
    if (r == NULL)
        return prun__sync_redis_fail(err);
    rc = prun__sync_reply_int(r->element[0], &v);
    freeReplyObject(r);
    if (rc < 0)
        return prun__sync_bad_reply(c, "INCRBY", err);
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

    if ((rc = prun__sync_check_name("queue", name, err)) < 0)
        return rc;
    if (n == 0)
        return 0;
    if (n > (size_t)1 << 20)
        return prun__err_set(
            err, PRUN_EINVAL, "queue '%s': too many values at once", name);
    if ((rc = prun__sync_conn_get(&c, err)) < 0 ||
        (rc = prun__sync_key(k, err, "queue:%s", name)) < 0)
        return rc;
    prun__sync_key_ttl(ttl, sizeof(ttl));
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
        return prun__sync_redis_fail(err);
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

    if ((rc = prun__sync_check_name("queue", name, err)) < 0 ||
        (rc = prun__sync_conn_get(&c, err)) < 0 ||
        (rc = prun__sync_key(k, err, "queue:%s", name)) < 0)
        return rc;
    if (timeout_ms == 0) {
        r = prun__cmd(c, err, "LPOP %s", k);
        if (r == NULL)
            return prun__sync_redis_fail(err);
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
        prun__sync_block_secs(slice, secs, sizeof(secs));
        prun__conn_timeout(c, slice + c->timeout_ms);
        r = prun__cmd(c, err, "BLPOP %s %s", k, secs);
        prun__conn_timeout(c, c->timeout_ms);
        if (r == NULL)
            return prun__sync_redis_fail(err);
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

    if ((rc = prun__sync_env_need("PARALLELRUN_TASK", &task, err)) < 0 ||
        (rc = prun__sync_env_need("PARALLELRUN_INDEX", &index, err)) < 0 ||
        (rc = prun__sync_conn_get(&c, err)) < 0 ||
        (rc = prun__sync_key(k, err, "progress")) < 0)
        return rc;
    snprintf(field, sizeof(field), "%s[%s]", task, index);
    snprintf(val, sizeof(val), "%llu %lld", done, total < 0 ? -1 : total);
    prun__sync_key_ttl(ttl, sizeof(ttl));
    r = multi_exec(c, 2, cmds, err);
    if (r == NULL)
        return prun__sync_redis_fail(err);
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
    rc = prun__sync_key(k, err, "seg:%s", name);
    if (rc == 0)
        rc = prun__sync_conn_get(&c, err);
    if (rc < 0)
        return rc;
    prun__sync_key_ttl(ttl, sizeof(ttl));
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
