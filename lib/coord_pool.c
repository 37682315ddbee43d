/* SPDX-License-Identifier: MIT */
/*
 * coord_pool: pool mode's `next` on the worker's side: the item a
 * long-lived worker takes from its task's queue, the previous one marked
 * done, in one script. The runner's side (feeding the queue) is
 * pool_feed.c and coord_state.c.
 */
#include "coord_int.h"
#include "coord_sync.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How long next blocks for an item before looking at 'fed' again. */
#define POOL_POLL_MS 1000

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
    if ((rc = prun__sync_env_need("PARALLELRUN_TASK", &task, err)) < 0 ||
        (rc = prun__sync_env_need("PARALLELRUN_INDEX", &w, err)) < 0 ||
        (rc = prun__sync_env_need("PARALLELRUN_ATTEMPT", &attempt, err)) < 0 ||
        (rc = prun__sync_key(pool, err, "pool:%s", task)) < 0 ||
        (rc = prun__sync_key(wip, err, "pool:%s:wip:%s.%s", task, w, attempt)) <
            0 ||
        (rc = prun__sync_key(done, err, "done:%s", task)) < 0 ||
        (rc = prun__sync_key(ok, err, "pool:%s:ok", task)) < 0 ||
        (rc = prun__sync_key(fed, err, "pool:%s:fed", task)) < 0)
        return rc;
    prun__sync_key_ttl(ttl, sizeof(ttl));
    for (;;) {
        rc = prun__sync_conn_get(&c, err);
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
            return prun__sync_redis_fail(err);
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
            prun__sync_reply_int(r->element[0], &status) < 0 ||
            (status == 1 && (r->elements != 2 ||
                                r->element[1]->type != REDIS_REPLY_STRING))) {
            freeReplyObject(r);
            return prun__sync_bad_reply(c, "next", err);
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
        prun__sync_block_secs(POOL_POLL_MS, secs, sizeof(secs));
        prun__conn_timeout(c, POOL_POLL_MS + c->timeout_ms);
        redisAppendCommand(
            c->ctx, "BLMOVE %s %s LEFT RIGHT %s", pool, wip, secs);
        redisAppendCommand(c->ctx, "PEXPIRE %s %s", wip, ttl);
        if (redisGetReply(c->ctx, &v) != REDIS_OK) {
            prun__sync_io_fail(c, err);
            if (++failures < 3)
                continue;
            return prun__sync_redis_fail(err);
        }
        r = v;
        if (redisGetReply(c->ctx, &v) != REDIS_OK) {
            freeReplyObject(r);
            prun__sync_io_fail(c, err);
            if (++failures < 3)
                continue;
            return prun__sync_redis_fail(err);
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
