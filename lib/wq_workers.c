/* SPDX-License-Identifier: MIT */
/*
 * wq_workers: the registry of a Redis's queue workers and the runs they
 * serve (docs/work-queue.md, "Workers"): the announced runs, each
 * worker's heartbeat key, and the listing `parallelrun workers` prints.
 * It is not the worker (worker.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wq_int.h"

/* ---- Workers and the runs they serve ------------------------------------ */

#define WORKERS_KEY "parallelrun:wq:workers"

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
    for (i = 0; i < r->elements; i++)
        v[i] = prun__wq_dup_str(r->element[i]);
    *ids = v;
    *n = r->elements;
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
