/* SPDX-License-Identifier: MIT */
/*
 * wq_workers: the registry of a Redis's queue workers and the runs they
 * serve (docs/work-queue.md, "Workers"): the announced runs, each
 * worker's heartbeat key, the listing `parallelrun workers` prints, and
 * the record a worker leaves on a run it gives up on.
 * It is not the worker (worker.c).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wq_int.h"

/* ---- Workers and the runs they serve ------------------------------------ */

#define WORKERS_KEY PRUN_WQ_WORKERS_KEY

/* 1 if process pid of this host has ended (gone, or a zombie). */
static int pid_ended(long pid)
{
    char path[64], buf[256], *rp;
    FILE *f;
    size_t n;

    if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
        return 1;
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    rp = strrchr(buf, ')');
    return rp != NULL && rp[1] == ' ' && rp[2] == 'Z';
}

/*
 * 1 if run id's runner is alive, 0 if not, < 0 on a Redis error. Its
 * `alive` key ("HOST PID", set every heartbeat with a 6 s TTL:
 * docs/redis-schema.md) must exist, and a runner on this host must still
 * be running. A run whose runner was killed stays announced until its
 * keys expire; nobody would collect what a worker did for it.
 */
static int runner_alive(
    struct prun_conn *c, const redisReply *id, struct prun_err *err)
{
    char host[256] = "", me[256] = "";
    long pid = 0;
    redisReply *r;
    int live;

    if (id->type != REDIS_REPLY_STRING)
        return 0;
    r = prun__cmd(
        c, err, "GET parallelrun:{%b}:alive", id->str, (size_t)id->len);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    live = r->type == REDIS_REPLY_STRING;
    if (live && sscanf(r->str, "%255s %ld", host, &pid) == 2 && pid > 0 &&
        gethostname(me, sizeof(me) - 1) == 0 && strcmp(host, me) == 0 &&
        pid_ended(pid))
        live = 0;
    freeReplyObject(r);
    return live;
}

int prun__wq_runs(
    struct prun_conn *c, char ***ids, size_t *n, struct prun_err *err)
{
    redisReply *r = prun__cmd(c, err, "SMEMBERS %s", PRUN_WQ_RUNS_KEY);
    char **v;
    size_t i;

    *ids = NULL;
    *n = 0;
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        freeReplyObject(r);
        return 0;
    }
    v = calloc(r->elements, sizeof(*v));
    if (v == NULL) {
        freeReplyObject(r);
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    }
    for (i = 0; i < r->elements; i++) {
        int live = runner_alive(c, r->element[i], err);

        if (live < 0) {
            freeReplyObject(r);
            prun__wq_strv_free(v, *n);
            *n = 0;
            return live;
        }
        if (live)
            v[(*n)++] = prun__wq_dup_str(r->element[i]);
    }
    *ids = v;
    freeReplyObject(r);
    return 0;
}

void prun__wq_strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

int prun__wq_worker_beat(struct prun_conn *c, const struct prun_wq_worker *w,
    int64_t ttl_ms, struct prun_err *err)
{
    char key[300], pid[24], slots[16], running[16], beat[24], ttl[24];
    redisContext *ctx = c->ctx;
    int i, rc = 0;

    snprintf(key, sizeof(key), "parallelrun:wq:worker:%s", w->id);
    snprintf(pid, sizeof(pid), "%ld", w->pid);
    snprintf(slots, sizeof(slots), "%u", w->slots);
    snprintf(running, sizeof(running), "%u", w->running);
    snprintf(beat, sizeof(beat), "%lld", (long long)w->beat_ms);
    snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
    redisAppendCommand(ctx,
        "HSET %s host %s pid %s slots %s running %s beat %s run %s", key,
        w->host, pid, slots, running, beat, w->run);
    redisAppendCommand(ctx, "PEXPIRE %s %s", key, ttl);
    redisAppendCommand(ctx, "ZADD %s %s %s", WORKERS_KEY, beat, w->id);
    redisAppendCommand(ctx, "PEXPIRE %s 86400000", WORKERS_KEY);
    for (i = 0; i < 4; i++) {
        void *reply = NULL;

        if (redisGetReply(ctx, &reply) != REDIS_OK) {
            return prun__err_set(err, PRUN_EREDIS, "Redis at %s: %s",
                prun__conn_url(c), ctx->errstr);
        }
        if (((redisReply *)reply)->type == REDIS_REPLY_ERROR && rc == 0)
            rc = prun__err_set(err, PRUN_EREDIS, "Redis at %s: %s",
                prun__conn_url(c), ((redisReply *)reply)->str);
        freeReplyObject(reply);
    }
    return rc;
}

int prun__wq_worker_gone(
    struct prun_conn *c, const char *id, struct prun_err *err)
{
    redisReply *r = prun__cmd(c, err, "DEL parallelrun:wq:worker:%s", id);

    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    freeReplyObject(r);
    r = prun__cmd(c, err, "ZREM %s %s", WORKERS_KEY, id);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    freeReplyObject(r);
    return 0;
}

static void hget_str(const redisReply *r, const char *name, char *buf, size_t n)
{
    size_t i;

    buf[0] = '\0';
    for (i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (strcmp(r->element[i]->str, name) == 0 &&
            r->element[i + 1]->type == REDIS_REPLY_STRING)
            snprintf(buf, n, "%s", r->element[i + 1]->str);
}

int prun__wq_workers(struct prun_conn *c, struct prun_wq_worker **out,
    size_t *n, struct prun_err *err)
{
    redisReply *r = prun__cmd(c, err, "ZRANGE %s 0 -1", WORKERS_KEY);
    struct prun_wq_worker *v = NULL;
    size_t i, k = 0;

    *out = NULL;
    *n = 0;
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0)
        v = calloc(r->elements, sizeof(*v));
    for (i = 0; v && i < r->elements; i++) {
        const char *id = r->element[i]->str;
        redisReply *h =
            prun__cmd(c, err, "HGETALL parallelrun:wq:worker:%s", id);

        if (h == NULL)
            break;
        if (h->type != REDIS_REPLY_ARRAY || h->elements == 0) {
            /* Its heartbeat expired: it is gone. */
            redisReply *z = prun__cmd(c, NULL, "ZREM %s %s", WORKERS_KEY, id);
            if (z)
                freeReplyObject(z);
        } else {
            struct prun_wq_worker *w = &v[k++];

            snprintf(w->id, sizeof(w->id), "%s", id);
            hget_str(h, "host", w->host, sizeof(w->host));
            hget_str(h, "run", w->run, sizeof(w->run));
            w->pid = (long)prun__wq_hget_int(h, "pid");
            w->slots = (unsigned)prun__wq_hget_int(h, "slots");
            w->running = (unsigned)prun__wq_hget_int(h, "running");
            w->beat_ms = prun__wq_hget_int(h, "beat");
        }
        freeReplyObject(h);
    }
    freeReplyObject(r);
    *out = v;
    *n = k;
    return 0;
}

/*
 * KEYS: meta, the give-up stream. ARGV: id, host, kind, reason. The
 * stream is capped (it is a log, never work) and expires with the run's
 * other keys.
 */
static const char gaveup_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end\n"
    "local ttl = tonumber(redis.call('HGET', KEYS[1], 'ttl'))\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000, '*', 'w', ARGV[1],\n"
    "  'h', ARGV[2], 't', now, 'k', ARGV[3], 'r', ARGV[4])\n"
    "if ttl then redis.call('PEXPIRE', KEYS[2], ttl) end\n"
    "return 0\n";

int prun__wq_gave_up(struct prun_conn *c, const char *rid,
    const struct prun_wq_giveup *g, struct prun_err *err)
{
    char meta[220], stream[220];
    const char *args[6];
    redisReply *r;
    int rc = 0;

    snprintf(meta, sizeof(meta), "parallelrun:{%s}:wq:meta", rid);
    snprintf(stream, sizeof(stream), "parallelrun:{%s}:wq:gaveup", rid);
    args[0] = meta;
    args[1] = stream;
    args[2] = g->id;
    args[3] = g->host;
    args[4] = g->kind;
    args[5] = g->reason;
    r = prun__eval(c, err, gaveup_lua, 2, 6, args);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    if (r->type == REDIS_REPLY_INTEGER && r->integer < 0)
        rc = prun__err_set(err, PRUN_ENOTFOUND,
            "Redis at %s has no work queue for run %s", prun__conn_url(c), rid);
    freeReplyObject(r);
    return rc;
}
