/* SPDX-License-Identifier: MIT */
/*
 * wq: the work-queue protocol on Redis streams (docs/work-queue.md), part
 * of the coord module (it talks to Redis through coord_int.h).
 *
 * Every state change is one Lua script, so that no other party sees half
 * of it: a claim promotes due retries, reclaims expired leases (with
 * dead-lettering), reads new entries and grants each a fence token; a
 * completion checks the token, writes the one terminal record or queues
 * the retry, and acknowledges and deletes the entry. Scripts run with
 * EVALSHA (loaded again on NOSCRIPT by prun__eval). Nothing here blocks
 * inside Redis: waiting for work is the caller's business.
 *
 * The scripts' shared Lua is wq_lua.h; pool mode's side is wq_pool.c,
 * the workers' registry wq_workers.c. It is not a worker (worker.c runs
 * what is claimed) nor a runner.
 */
#include "wq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord_int.h"
#include "wq_int.h"
#include "wq_lua.h"

#define KEY_MAX 512

/*
 * KEYS: meta. ARGV: prefix, ttl, max_deliveries, job, cwd, sets, host,
 * then name, cap, rate per task. Re-creating keeps counters and entries.
 */
static const char create_lua[] =
    "local P = ARGV[1]\n"
    "local meta = KEYS[1]\n"
    "local ttl = tonumber(ARGV[2])\n"
    "redis.call('HSET', meta, 'ttl', ttl, 'maxdel', ARGV[3], 'state', 'open',\n"
    "  'host', ARGV[7])\n"
    /* pool mode's own create (pool_wq.c) knows no job: it leaves the
       distributed run's alone, whichever comes first */
    "if ARGV[4] ~= '' or redis.call('HEXISTS', meta, 'job') == 0 then\n"
    "  redis.call('HSET', meta, 'job', ARGV[4], 'cwd', ARGV[5], 'sets',\n"
    "    ARGV[6])\n"
    "end\n"
    "for _, c in ipairs({'enq', 'ok', 'failed', 'retried', 'stale', 'dup',\n"
    "  'dead', 'lost'}) do redis.call('HSETNX', meta, c, 0) end\n"
    "redis.call('PEXPIRE', meta, ttl)\n"
    "for i = 8, #ARGV, 3 do\n"
    "  local s = P..':s:'..ARGV[i]\n"
    "  redis.call('HSET', P..':tasks', ARGV[i], ARGV[i+1]..' '..ARGV[i+2])\n"
    "  if redis.call('EXISTS', s) == 0 then\n"
    "    redis.call('XGROUP', 'CREATE', s, 'g', '0', 'MKSTREAM')\n"
    "  end\n"
    "  redis.call('PEXPIRE', s, ttl)\n"
    "end\n"
    "redis.call('PEXPIRE', P..':tasks', ttl)\n"
    "return {0}\n";

const char *prun__wq_create_script(void)
{
    return create_lua;
}

static const char claim_lua[] = LUA_COMMON LUA_CLAIM_FN
    "return claim(ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), '')\n";

/*
 * KEYS: meta. ARGV: prefix, consumer, then task, id, fence per claim.
 * Returns {1 or 0 per claim} (1: still ours, lease renewed).
 */
static const char renew_lua[] =
    LUA_COMMON "local me = ARGV[2]\n"
               "local res = {}\n"
               "for i = 3, #ARGV, 3 do\n"
               "  local task, id, fence = ARGV[i], ARGV[i+1], ARGV[i+2]\n"
               "  local s = P..':s:'..task\n"
               "  local fv = redis.call('HGET', fk, task..' '..id)\n"
               "  local ok = 0\n"
               "  if fv and string.match(fv, '^(%d+)') == fence then\n"
               "    local p = redis.call('XPENDING', s, 'g', id, id, 1)\n"
               "    if p[1] and p[1][2] == me then\n"
               "      redis.call('XCLAIM', s, 'g', me, 0, id, 'JUSTID')\n"
               "      ok = 1\n"
               "    end\n"
               "  end\n"
               "  res[#res+1] = ok\n"
               "end\n"
               "return res\n";

static const char complete_lua[] = LUA_COMMON LUA_COMPLETE_FN
    "local code = complete(ARGV[3], ARGV[4], ARGV[5], ARGV[6] == '1',\n"
    "  ARGV[7], ARGV[8], ARGV[9], ARGV[10])\n"
    "return {code}\n";

/*
 * KEYS: meta. ARGV: prefix, consumer, task, id, fence. Owner-checked: the
 * entry becomes claimable at once, its delivery not counted, and the old
 * fence dies. Returns {1} released, {0} not ours.
 */
static const char release_lua[] = LUA_COMMON
    "local me, task, id, fence = ARGV[2], ARGV[3], ARGV[4], ARGV[5]\n"
    "local s = P..':s:'..task\n"
    "local fv = redis.call('HGET', fk, task..' '..id)\n"
    "if not fv or string.match(fv, '^(%d+)') ~= fence then return {0} end\n"
    "local p = redis.call('XPENDING', s, 'g', id, id, 1)\n"
    "if not p[1] or p[1][2] ~= me then return {0} end\n"
    "local minlease = tonumber(redis.call('HGET', meta, 'minlease') or '0')\n"
    "local l = tonumber(string.match(fv, ' (%d+)$'))\n"
    "redis.call('XCLAIM', s, 'g', me, 0, id, 'IDLE',\n"
    "  math.max(l, minlease) * 2 + 1000, 'RETRYCOUNT',\n"
    "  math.max(0, tonumber(p[1][4]) - 1), 'JUSTID')\n"
    "redis.call('HSET', fk, task..' '..id, '0 0')\n"
    "return {1}\n";

int prun__wq_new(struct prun_conn *c, const char *run_id, const char *consumer,
    struct prun_wq **out, struct prun_err *err)
{
    struct prun_wq *q;

    if (strlen(run_id) >= sizeof(q->rid) || strlen(consumer) >= sizeof(q->me) ||
        strchr(run_id, '}') != NULL)
        return prun__err_set(
            err, PRUN_EINVAL, "work queue: bad run id '%s'", run_id);
    q = calloc(1, sizeof(*q));
    if (q == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    q->c = c;
    snprintf(q->rid, sizeof(q->rid), "%s", run_id);
    snprintf(q->prefix, sizeof(q->prefix), "parallelrun:{%s}:wq", run_id);
    snprintf(q->meta, sizeof(q->meta), "%s:meta", q->prefix);
    snprintf(q->me, sizeof(q->me), "%s", consumer);
    *out = q;
    return 0;
}

void prun__wq_free(struct prun_wq *q)
{
    free(q);
}

/* A script's reply {N}: returns N, or PRUN_EREDIS for another shape. */
static int int_reply(struct prun_wq *q, redisReply *r, struct prun_err *err)
{
    long long v;

    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(r);
        return prun__err_set(err, PRUN_EREDIS,
            "Redis at %s: unexpected reply from a work-queue script",
            prun__conn_url(q->c));
    }
    v = r->element[0]->integer;
    freeReplyObject(r);
    return (int)v;
}

enum prun_wq_fault prun__wq_fault_reply(const char *msg)
{
    static const char *const busy[] = {
        "BUSY", "LOADING", "TRYAGAIN", "MASTERDOWN"};
    size_t i;

    for (i = 0; i < sizeof(busy) / sizeof(busy[0]); i++) {
        size_t len = strlen(busy[i]);

        if (strncmp(msg, busy[i], len) == 0 &&
            (msg[len] == ' ' || msg[len] == '\0'))
            return PRUN_WQ_FAULT_BUSY;
    }
    return PRUN_WQ_FAULT_PERM;
}

enum prun_wq_fault prun__wq_fault(
    struct prun_conn *c, int rc, const struct prun_err *e)
{
    char head[sizeof(c->url) + 16];
    const char *p;
    size_t n;

    if (rc == PRUN_ETIMEDOUT)
        return PRUN_WQ_FAULT_CONN;
    if (rc != PRUN_EREDIS || e == NULL)
        return PRUN_WQ_FAULT_PERM;
    /*
     * hiredis marks its context on an I/O or protocol error, never on an
     * error reply: a context still sound means the server answered.
     */
    if (c == NULL || c->ctx == NULL || c->ctx->err != 0)
        return PRUN_WQ_FAULT_CONN;
    n = (size_t)snprintf(head, sizeof(head), "Redis at %s: ", c->url);
    p = e->msg;
    if (n < sizeof(head) && strncmp(p, head, n) == 0)
        p += n;
    return prun__wq_fault_reply(p);
}

int prun__wq_gone(struct prun_wq *q, struct prun_err *err)
{
    return prun__err_set(err, PRUN_ENOTFOUND,
        "Redis at %s has no work queue for run %s (it ended, or Redis lost "
        "its data)",
        prun__conn_url(q->c), q->rid);
}

int prun__wq_create(
    struct prun_wq *q, const struct prun_wq_run *r, struct prun_err *err)
{
    const char **args;
    char ttl[32], md[16], (*caps)[2][32] = NULL;
    redisReply *rep;
    size_t i, n = 8 + 3 * r->ntasks;
    int rc;

    args = calloc(n, sizeof(*args));
    caps = calloc(r->ntasks ? r->ntasks : 1, sizeof(*caps));
    if (args == NULL || caps == NULL) {
        rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(ttl, sizeof(ttl), "%lld",
        (long long)(r->ttl_ms > 0 ? r->ttl_ms : PRUN_WQ_TTL_MS));
    snprintf(md, sizeof(md), "%u",
        r->max_deliveries ? r->max_deliveries : PRUN_WQ_MAX_DELIVERIES);
    args[0] = q->meta;
    args[1] = q->prefix;
    args[2] = ttl;
    args[3] = md;
    args[4] = r->job ? r->job : "";
    args[5] = r->cwd ? r->cwd : "";
    args[6] = r->sets ? r->sets : "";
    args[7] = r->host ? r->host : "";
    for (i = 0; i < r->ntasks; i++) {
        snprintf(caps[i][0], sizeof(caps[i][0]), "%u", r->tasks[i].cap);
        snprintf(caps[i][1], sizeof(caps[i][1]), "%g", r->tasks[i].rate);
        args[8 + 3 * i] = r->tasks[i].name;
        args[9 + 3 * i] = caps[i][0];
        args[10 + 3 * i] = caps[i][1];
    }
    rc = int_reply(q, prun__eval(q->c, err, create_lua, 1, (int)n, args), err);
    if (rc < 0)
        goto out;
    rep = prun__cmd(q->c, err, "SADD %s %s", PRUN_WQ_RUNS_KEY, q->rid);
    if (rep == NULL) {
        rc = err ? err->code : PRUN_EREDIS;
        goto out;
    }
    freeReplyObject(rep);
    rep = prun__cmd(q->c, err, "PEXPIRE %s %s", PRUN_WQ_RUNS_KEY, ttl);
    if (rep == NULL) {
        rc = err ? err->code : PRUN_EREDIS;
        goto out;
    }
    freeReplyObject(rep);
    rc = 0;
out:
    /* args[] points at the script's arguments; the call above is done. */
    free(args);
    free(caps);
    return rc;
}

int prun__wq_close(struct prun_wq *q, struct prun_err *err)
{
    redisReply *r;

    r = prun__cmd(q->c, err, "SREM %s %s", PRUN_WQ_RUNS_KEY, q->rid);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    freeReplyObject(r);
    r = prun__cmd(q->c, err, "HSET %s state closed", q->meta);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    freeReplyObject(r);
    return 0;
}

int prun__wq_exists(struct prun_wq *q, struct prun_err *err)
{
    redisReply *r = prun__cmd(q->c, err, "EXISTS %s", q->meta);
    int v;

    if (r == NULL)
        return 0;
    v = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return v;
}

int prun__wq_meta(struct prun_wq *q, const char *field, char *buf, size_t n,
    struct prun_err *err)
{
    redisReply *r = prun__cmd(q->c, err, "HGET %s %s", q->meta, field);

    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    snprintf(buf, n, "%.*s", r->type == REDIS_REPLY_STRING ? (int)r->len : 0,
        r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    return 0;
}

int prun__wq_enqueue(struct prun_wq *q, const struct prun_wq_entry *e, size_t n,
    struct prun_err *err)
{
    redisContext *ctx = q->c->ctx;
    char key[KEY_MAX], ma[16], rd[32];
    size_t i, sent = 0;
    int rc = 0;

    for (i = 0; i < n; i++) {
        const char *argv[13];
        size_t lens[13];

        snprintf(key, sizeof(key), "%s:s:%s", q->prefix, e[i].task);
        snprintf(
            ma, sizeof(ma), "%u", e[i].max_attempts ? e[i].max_attempts : 1);
        snprintf(rd, sizeof(rd), "%lld", (long long)e[i].retry_delay_ms);
        argv[0] = "XADD";
        argv[1] = key;
        argv[2] = "*";
        argv[3] = "k";
        argv[4] = e[i].key;
        argv[5] = "a";
        argv[6] = "1";
        argv[7] = "m";
        argv[8] = ma;
        argv[9] = "d";
        argv[10] = rd;
        argv[11] = "p";
        argv[12] = e[i].payload ? e[i].payload : "";
        for (int j = 0; j < 13; j++)
            lens[j] = strlen(argv[j]);
        lens[12] = e[i].payload ? e[i].payload_len : 0;
        if (redisAppendCommandArgv(ctx, 13, argv, lens) != REDIS_OK)
            break;
        sent++;
    }
    if (redisAppendCommand(
            ctx, "HINCRBY %s enq %lld", q->meta, (long long)sent) == REDIS_OK)
        sent++;
    for (i = 0; i < sent; i++) {
        void *reply = NULL;

        if (redisGetReply(ctx, &reply) != REDIS_OK) {
            rc = prun__err_set(err, PRUN_EREDIS, "Redis at %s: %s",
                prun__conn_url(q->c), ctx->errstr);
            break;
        }
        if (((redisReply *)reply)->type == REDIS_REPLY_ERROR && rc == 0)
            rc = prun__err_set(err, PRUN_EREDIS, "Redis at %s: %s",
                prun__conn_url(q->c), ((redisReply *)reply)->str);
        freeReplyObject(reply);
    }
    if (rc == 0 && sent != n + 1)
        rc = prun__err_set(err, PRUN_EREDIS, "Redis at %s: %s",
            prun__conn_url(q->c),
            ctx->errstr[0] ? ctx->errstr : "out of memory");
    return rc;
}

void prun__wq_claim_clear(struct prun__wq_claim *c)
{
    if (c == NULL)
        return;
    free(c->task);
    free(c->id);
    free(c->key);
    free(c->payload);
    memset(c, 0, sizeof(*c));
}

char *prun__wq_dup_str(const redisReply *r)
{
    char *s;

    if (r == NULL || r->type != REDIS_REPLY_STRING)
        return strdup("");
    s = malloc(r->len + 1);
    if (s != NULL) {
        memcpy(s, r->str, r->len);
        s[r->len] = '\0';
    }
    return s;
}

long long prun__wq_int_of(const redisReply *r)
{
    if (r == NULL)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoll(r->str, NULL, 10);
    return 0;
}

/* Fills c from {task, id, fence, deliveries, {field, value, ...}}. */
static int fill_claim(
    const redisReply *e, int64_t lease_ms, struct prun__wq_claim *c)
{
    const redisReply *f;
    size_t j;

    memset(c, 0, sizeof(*c));
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 5 ||
        e->element[4]->type != REDIS_REPLY_ARRAY)
        return -1;
    c->task = prun__wq_dup_str(e->element[0]);
    c->id = prun__wq_dup_str(e->element[1]);
    c->fence = (uint64_t)prun__wq_int_of(e->element[2]);
    c->deliveries = (unsigned)prun__wq_int_of(e->element[3]);
    c->lease_ms = lease_ms;
    f = e->element[4];
    for (j = 0; j + 1 < f->elements; j += 2) {
        const char *name = f->element[j]->str;

        if (f->element[j]->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(name, "k") == 0)
            c->key = prun__wq_dup_str(f->element[j + 1]);
        else if (strcmp(name, "a") == 0)
            c->attempt = (unsigned)prun__wq_int_of(f->element[j + 1]);
        else if (strcmp(name, "m") == 0)
            c->max_attempts = (unsigned)prun__wq_int_of(f->element[j + 1]);
        else if (strcmp(name, "p") == 0) {
            c->payload = prun__wq_dup_str(f->element[j + 1]);
            c->payload_len = f->element[j + 1]->len;
        }
    }
    if (c->key == NULL)
        c->key = strdup("");
    if (c->payload == NULL)
        c->payload = strdup("");
    if (!c->task || !c->id || !c->key || !c->payload) {
        prun__wq_claim_clear(c);
        return -1;
    }
    return 0;
}

int prun__wq_claim(struct prun_wq *q, size_t want, int64_t lease_ms,
    struct prun__wq_claim *out, size_t *n, struct prun_err *err)
{
    char w[32], l[32];
    const char *args[5] = {q->meta, q->prefix, q->me, w, l};
    redisReply *r;
    size_t i;
    int rc = 0;

    *n = 0;
    if (want == 0)
        return 0;
    snprintf(w, sizeof(w), "%zu", want);
    snprintf(l, sizeof(l), "%lld", (long long)lease_ms);
    r = prun__eval(q->c, err, claim_lua, 1, 5, args);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return prun__err_set(err, PRUN_EREDIS,
            "Redis at %s: unexpected reply to a claim", prun__conn_url(q->c));
    }
    if (r->elements == 1 && r->element[0]->type == REDIS_REPLY_INTEGER) {
        freeReplyObject(r);
        return prun__wq_gone(q, err);
    }
    for (i = 0; i < r->elements && *n < want; i++) {
        if (fill_claim(r->element[i], lease_ms, &out[*n]) < 0) {
            /* Granted in Redis but unusable here: its lease will lapse. */
            rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
            continue;
        }
        (*n)++;
    }
    freeReplyObject(r);
    return rc;
}

int prun__wq_renew(struct prun_wq *q, const struct prun__wq_claim *c, size_t n,
    int *lost, struct prun_err *err)
{
    const char **args;
    char(*fences)[24];
    redisReply *r;
    size_t i, done = 0;
    int rc = 0;

    /* At most 60 arguments per script call (prun__eval's limit). */
    args = calloc(62, sizeof(*args));
    fences = calloc(20, sizeof(*fences));
    if (args == NULL || fences == NULL) {
        free(args);
        free(fences);
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    }
    while (done < n && rc == 0) {
        size_t m = n - done < 20 ? n - done : 20;

        args[0] = q->meta;
        args[1] = q->prefix;
        args[2] = q->me;
        for (i = 0; i < m; i++) {
            snprintf(fences[i], sizeof(fences[i]), "%llu",
                (unsigned long long)c[done + i].fence);
            args[3 + 3 * i] = c[done + i].task;
            args[4 + 3 * i] = c[done + i].id;
            args[5 + 3 * i] = fences[i];
        }
        r = prun__eval(q->c, err, renew_lua, 1, (int)(3 + 3 * m), args);
        if (r == NULL) {
            rc = err ? err->code : PRUN_EREDIS;
            break;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
            r->element[0]->type == REDIS_REPLY_INTEGER &&
            r->element[0]->integer == -1) {
            /* The run is gone: nothing is ours any more. */
            for (i = 0; i < m; i++)
                lost[done + i] = 1;
        } else if (r->type != REDIS_REPLY_ARRAY || r->elements != m) {
            rc = prun__err_set(err, PRUN_EREDIS,
                "Redis at %s: unexpected reply to a renewal",
                prun__conn_url(q->c));
        } else {
            for (i = 0; i < m; i++)
                lost[done + i] = prun__wq_int_of(r->element[i]) != 1;
        }
        freeReplyObject(r);
        done += m;
    }
    free(args);
    free(fences);
    return rc;
}

int prun__wq_complete(struct prun_wq *q, const struct prun__wq_claim *c, int ok,
    const char *record, struct prun_err *err)
{
    char fence[24];
    const char *args[9] = {q->meta, q->prefix, q->me, c->task, c->id, fence,
        ok ? "1" : "0", record, c->key};
    int rc;

    snprintf(fence, sizeof(fence), "%llu", (unsigned long long)c->fence);
    rc = int_reply(q, prun__eval(q->c, err, complete_lua, 1, 9, args), err);
    if (rc == -1)
        return prun__wq_gone(q, err);
    return rc;
}

int prun__wq_complete_out(struct prun_wq *q, const struct prun__wq_claim *c,
    int ok, const char *record, const struct prun_wq_output *o,
    struct prun_err *err)
{
    char fence[24];
    const char *argv[14] = {"EVAL", complete_lua, "1", q->meta, q->prefix,
        q->me, c->task, c->id, fence, ok ? "1" : "0", record, c->key,
        o ? o->out : NULL, o ? o->err : NULL};
    size_t lens[14];
    int i, rc;

    if (o == NULL || (o->outlen == 0 && o->errlen == 0))
        return prun__wq_complete(q, c, ok, record, err);
    snprintf(fence, sizeof(fence), "%llu", (unsigned long long)c->fence);
    for (i = 0; i < 12; i++)
        lens[i] = strlen(argv[i]);
    lens[12] = o->outlen;
    lens[13] = o->errlen;
    /*
     * EVAL, not EVALSHA: the output is binary and prun__eval is not; the
     * script's text costs nothing next to up to 2 MiB of output.
     */
    rc = int_reply(q, prun__cmdv(q->c, err, 14, argv, lens), err);
    if (rc == -1)
        return prun__wq_gone(q, err);
    return rc;
}

int prun__wq_release(
    struct prun_wq *q, const struct prun__wq_claim *c, struct prun_err *err)
{
    char fence[24];
    const char *args[6] = {q->meta, q->prefix, q->me, c->task, c->id, fence};
    int rc;

    snprintf(fence, sizeof(fence), "%llu", (unsigned long long)c->fence);
    rc = int_reply(q, prun__eval(q->c, err, release_lua, 1, 6, args), err);
    if (rc == -1)
        return prun__wq_gone(q, err);
    return rc < 0 ? rc : 0;
}

void prun__wq_end_clear(struct prun_wq_end *e)
{
    if (e == NULL)
        return;
    free(e->key);
    free(e->record);
    memset(e, 0, sizeof(*e));
}

int prun__wq_read_ends(struct prun_wq *q, const char *after,
    struct prun_wq_end *out, size_t max, struct prun_err *err)
{
    redisReply *r, *entries;
    size_t i, j;
    int n = 0;
    char cnt[24];

    snprintf(cnt, sizeof(cnt), "%zu", max);
    r = prun__cmd(
        q->c, err, "XREAD COUNT %s STREAMS %s:ends %s", cnt, q->prefix, after);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        freeReplyObject(r);
        return 0;
    }
    entries = r->element[0]->element[1];
    for (i = 0; i < entries->elements && (size_t)n < max; i++) {
        const redisReply *e = entries->element[i], *f = e->element[1];
        struct prun_wq_end *o = &out[n];

        memset(o, 0, sizeof(*o));
        snprintf(o->id, sizeof(o->id), "%s", e->element[0]->str);
        for (j = 0; j + 1 < f->elements; j += 2) {
            const char *name = f->element[j]->str;

            if (strcmp(name, "k") == 0)
                o->key = prun__wq_dup_str(f->element[j + 1]);
            else if (strcmp(name, "r") == 0)
                o->record = prun__wq_dup_str(f->element[j + 1]);
            else if (strcmp(name, "f") == 0)
                o->fence = (uint64_t)prun__wq_int_of(f->element[j + 1]);
            else if (strcmp(name, "a") == 0)
                o->attempt = (unsigned)prun__wq_int_of(f->element[j + 1]);
        }
        if (o->key == NULL || o->record == NULL) {
            prun__wq_end_clear(o);
            continue;
        }
        n++;
    }
    freeReplyObject(r);
    return n;
}

long long prun__wq_hget_int(const redisReply *r, const char *name)
{
    size_t i;

    for (i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (strcmp(r->element[i]->str, name) == 0)
            return prun__wq_int_of(r->element[i + 1]);
    return 0;
}

int prun__wq_stats(
    struct prun_wq *q, struct prun__wq_stats *st, struct prun_err *err)
{
    redisReply *r;
    size_t i;

    memset(st, 0, sizeof(*st));
    r = prun__cmd(q->c, err, "HGETALL %s", q->meta);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        freeReplyObject(r);
        return prun__wq_gone(q, err);
    }
    st->enqueued = prun__wq_hget_int(r, "enq");
    st->ok = prun__wq_hget_int(r, "ok");
    st->failed = prun__wq_hget_int(r, "failed");
    st->retried = prun__wq_hget_int(r, "retried");
    st->stale = prun__wq_hget_int(r, "stale");
    st->dup = prun__wq_hget_int(r, "dup");
    st->dead = prun__wq_hget_int(r, "dead");
    st->lost = prun__wq_hget_int(r, "lost");
    freeReplyObject(r);
    r = prun__cmd(q->c, err, "HLEN %s:done", q->prefix);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    st->done = prun__wq_int_of(r);
    freeReplyObject(r);
    r = prun__cmd(q->c, err, "ZCARD %s:delay", q->prefix);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    st->delayed = prun__wq_int_of(r);
    freeReplyObject(r);
    r = prun__cmd(q->c, err, "HKEYS %s:tasks", q->prefix);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *g = prun__cmd(
            q->c, NULL, "XINFO GROUPS %s:s:%s", q->prefix, r->element[i]->str);
        redisReply *len = prun__cmd(
            q->c, NULL, "XLEN %s:s:%s", q->prefix, r->element[i]->str);
        long long pending = 0;

        if (g != NULL && g->type == REDIS_REPLY_ARRAY && g->elements > 0)
            pending = prun__wq_hget_int(g->element[0], "pending");
        st->pending += pending;
        st->backlog += prun__wq_int_of(len) - pending;
        if (g)
            freeReplyObject(g);
        if (len)
            freeReplyObject(len);
    }
    freeReplyObject(r);
    return 0;
}

int prun__wq_record(
    struct prun_wq *q, const char *key, char **out, struct prun_err *err)
{
    redisReply *r = prun__cmd(q->c, err, "HGET %s:done %s", q->prefix, key);

    *out = NULL;
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    if (r->type == REDIS_REPLY_STRING)
        *out = prun__wq_dup_str(r);
    freeReplyObject(r);
    return 0;
}
