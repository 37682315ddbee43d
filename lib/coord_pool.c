/* SPDX-License-Identifier: MIT */
/*
 * coord_pool: pool mode's `next`, the worker's side, on the run's work
 * queue (wq.c, docs/work-queue.md). A worker slot is its task, index and
 * attempt; one script completes what the slot finished (fenced) and
 * returns what it holds, claiming more. `parallelrun next` (a process per
 * call) holds one item at a time. prun_next() in a long-lived process
 * holds a batch (up to PRUN_WQ_POOL_BATCH, one when the task has a
 * timeout or a rate) and reports its finished items with the next claim:
 * one round trip per batch, not per item. With nothing to claim yet it
 * blocks on its slot's wake list, which the queue's scripts push to. Its
 * unstarted items are handed back when the process exits; if it is killed, the
 * runner hands them back.
 *
 * When nothing can be claimed yet (items still being fed, or held by
 * workers that may fail) it polls with a short backoff: no blocking
 * command can run inside a script. A Redis outage is ridden out up to
 * PARALLELRUN_QUEUE_OUTAGE (default 60s), then next fails naming the
 * cause; a queue that is gone (Redis lost its data) fails at once.
 *
 * It is not the runner's side (pool_feed.c, pool_wq.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coord_int.h"
#include "coord_sync.h"
#include "wq.h"

#define BATCH PRUN_WQ_POOL_BATCH

/* This process's connection for next, and its slot's batch. */
static struct {
    struct prun_conn *c;
    pid_t pid;
    struct prun_wq_pool_item buf[BATCH];
    size_t nbuf, pos;
    char cur[48]; /* the item handed out last, "" none */
    struct {
        char id[48];
        int ok;
    } fin[BATCH];
    size_t nfin;
    int atexit_set;
} g;

/* The names of this process's slot. */
struct slot {
    const char *task, *rid;
    char consumer[300], key[600], done[400], rok[600], rfail[600];
    char wake[600];
};

static void drop(void)
{
    prun__conn_close(g.c);
    g.c = NULL;
}

static void forget_batch(void)
{
    for (size_t i = 0; i < g.nbuf; i++)
        prun__wq_pool_item_clear(&g.buf[i]);
    g.nbuf = g.pos = g.nfin = 0;
    g.cur[0] = '\0';
}

static int get_conn(struct prun_conn **out, struct prun_err *err)
{
    int rc;

    if (g.pid != getpid()) {
        /* A forked child: the parent's connection and batch are not ours. */
        g.c = NULL;
        memset(g.buf, 0, sizeof(g.buf));
        g.nbuf = g.pos = g.nfin = 0;
        g.cur[0] = '\0';
    } else if (g.c != NULL && g.c->ctx->err) {
        drop();
    }
    if (g.c == NULL) {
        rc = prun__conn_from_env(&g.c, err);
        if (rc < 0)
            return rc;
        g.pid = getpid();
    }
    *out = g.c;
    return 0;
}

static void nap(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static int need(const char *var, const char **out, struct prun_err *err)
{
    *out = getenv(var);
    if (*out == NULL || **out == '\0')
        return prun__err_set(err, PRUN_EINVAL,
            "%s is not set: run this inside a task started by "
            "'parallelrun run'",
            var);
    return 0;
}

static int64_t outage_ms(void)
{
    const char *v = getenv("PARALLELRUN_QUEUE_OUTAGE");
    int64_t ms = 60000;
    struct prun_err e;

    if (v != NULL && *v != '\0' && prun__parse_duration(v, &ms, &e) < 0)
        ms = 60000;
    return ms;
}

static int slot_names(struct slot *sl, struct prun_err *err)
{
    const char *w, *attempt;
    int rc;

    if ((rc = need("PARALLELRUN_TASK", &sl->task, err)) < 0 ||
        (rc = need("PARALLELRUN_INDEX", &w, err)) < 0 ||
        (rc = need("PARALLELRUN_ATTEMPT", &attempt, err)) < 0 ||
        (rc = need("PARALLELRUN_RUN_ID", &sl->rid, err)) < 0)
        return rc;
    snprintf(
        sl->consumer, sizeof(sl->consumer), "%s:%s.%s", sl->task, w, attempt);
    snprintf(sl->key, sizeof(sl->key), "parallelrun:{%s}:wq:slot:%s", sl->rid,
        sl->consumer);
    snprintf(sl->done, sizeof(sl->done), "parallelrun:{%s}:done:%s", sl->rid,
        sl->task);
    snprintf(sl->wake, sizeof(sl->wake), "parallelrun:{%s}:wq:wake:%s", sl->rid,
        sl->consumer);
    snprintf(sl->rok, sizeof(sl->rok),
        "{\"ok\":true,\"status\":0,\"kind\":\"exit\",\"worker\":\"%s\"}",
        sl->consumer);
    snprintf(sl->rfail, sizeof(sl->rfail),
        "{\"ok\":false,\"status\":-1,\"kind\":\"exit\",\"worker\":\"%s\","
        "\"reason\":\"its worker reported it failed\"}",
        sl->consumer);
    return 0;
}

/* One round trip, riding out an outage. out/n as prun__wq_pool_next. */
static int call(const struct slot *sl, struct prun_wq_pool_req *rq,
    struct prun_wq_pool_item *out, size_t *n, int once, struct prun_err *err)
{
    int64_t down_since = 0, limit = outage_ms();
    int rc;

    for (;;) {
        struct prun_conn *c = NULL;
        struct prun_wq *q = NULL;

        rc = get_conn(&c, err);
        if (rc == 0)
            rc = prun__wq_new(c, sl->rid, sl->consumer, &q, err);
        if (rc == 0) {
            rc = prun__wq_pool_next(q, rq, out, BATCH, n, err);
            prun__wq_free(q);
            /*
             * Complete at most once in the CLI's mode: if the reply was
             * lost the script may have run, and completing again could
             * mark an item the slot has not done. The worst is then a
             * finished item handed out twice. Explicit lists ('L') are
             * fenced per item and safe to send again.
             */
            if (rq->mark == '1' || rq->mark == '2')
                rq->mark = '0';
        }
        if (rc >= 0 || rc == PRUN_ENOTFOUND || once)
            return rc;
        if (rc == PRUN_EREDIS || rc == PRUN_ETIMEDOUT) {
            enum prun_wq_fault f = prun__wq_fault(c, rc, err);
            int64_t now = prun__now_ms();
            char why[sizeof(err->msg)];

            /*
             * A lost connection or a busy server (BUSY, LOADING) is
             * ridden out within the bound; any other error reply would
             * be the same next time: next fails with it at once.
             */
            snprintf(why, sizeof(why), "%s", err->msg);
            if (f == PRUN_WQ_FAULT_PERM)
                return prun__err_set(err, rc, "run %s: next for %s: %s",
                    sl->rid, sl->consumer, why);
            if (f == PRUN_WQ_FAULT_CONN)
                drop();
            if (down_since == 0)
                down_since = now;
            if (now - down_since > limit)
                return prun__err_set(err, PRUN_EREDIS,
                    "%s (%s for more than %llds)", why,
                    f == PRUN_WQ_FAULT_CONN ? "unreachable" : "busy",
                    (long long)(limit / 1000));
            nap(200);
            continue;
        }
        return rc;
    }
}

/*
 * Nothing to claim yet: wait up to ms for a token on this slot's wake
 * list (pushed when items are queued or come back, or when all are done,
 * to every slot in the task's waiting set, which the script that
 * answered "wait" put this slot in). The timeout stays short:
 * a retry becomes due, or a lease runs out, without anyone pushing. An
 * error is left to the next call, which rides out outages.
 */
static void wait_wake(const struct slot *sl, int64_t ms)
{
    char secs[32];
    struct prun_err e;
    redisReply *r;

    snprintf(secs, sizeof(secs), "%.3f", (double)ms / 1000.0);
    if (g.c == NULL) {
        nap(ms);
        return;
    }
    r = prun__cmd(g.c, &e, "BLPOP %s %s", sl->wake, secs);
    if (r == NULL)
        nap(ms);
    else
        freeReplyObject(r);
}

/* Hands out item i of the batch. */
static int hand_out(
    size_t i, char **item, unsigned long long *index, struct prun_err *err)
{
    const char *sp = strrchr(g.buf[i].key, ' ');

    *item = strdup(g.buf[i].item);
    if (*item == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    if (index)
        *index = sp ? strtoull(sp + 1, NULL, 10) : 0;
    snprintf(g.cur, sizeof(g.cur), "%s", g.buf[i].id);
    return 1;
}

/* A request for slot sl with mark, wanting one item. */
static void req_init(
    struct prun_wq_pool_req *rq, const struct slot *sl, char mark)
{
    memset(rq, 0, sizeof(*rq));
    rq->task = sl->task;
    rq->mark = mark;
    rq->want = 1;
    rq->lease_ms = PRUN_WQ_LEASE_MS;
    rq->slot_key = sl->key;
    rq->done_key = sl->done;
    rq->rec_ok = sl->rok;
    rq->rec_fail = sl->rfail;
}

/* At exit: report what is finished, hand back what was never started. */
static void flush_at_exit(void)
{
    struct prun_wq_pool_fin fin[BATCH];
    struct prun_wq_pool_item out[BATCH];
    struct prun_wq_pool_req rq;
    struct prun_err e;
    struct slot sl;
    size_t n, i, k;

    if (g.pid != getpid() || slot_names(&sl, &e) < 0)
        return;
    req_init(&rq, &sl, 'L');
    rq.want = 0;
    rq.fin = fin;
    for (k = 0; k < g.nfin; k++)
        fin[k] = (struct prun_wq_pool_fin){g.fin[k].id, g.fin[k].ok};
    rq.nfin = k;
    if (k > 0 && call(&sl, &rq, out, &n, 1, &e) == 1)
        for (i = 0; i < n; i++)
            prun__wq_pool_item_clear(&out[i]);
    for (k = 0; g.pos < g.nbuf; g.pos++)
        fin[k++] = (struct prun_wq_pool_fin){g.buf[g.pos].id, 3};
    rq.nfin = k;
    if (k > 0 && call(&sl, &rq, out, &n, 1, &e) == 1)
        for (i = 0; i < n; i++)
            prun__wq_pool_item_clear(&out[i]);
    forget_batch();
    drop();
}

static int next_item(int batch, int ok, char **item, unsigned long long *index,
    struct prun_err *err)
{
    struct prun_wq_pool_fin fin[BATCH];
    struct prun_wq_pool_item out[BATCH];
    struct prun_wq_pool_req rq;
    struct slot sl;
    int64_t wait = 2;
    size_t n = 0, i;
    int rc;

    rc = slot_names(&sl, err);
    if (rc < 0)
        return rc;
    if (g.pid != getpid() && g.pid != 0) {
        g.c = NULL;
        memset(g.buf, 0, sizeof(g.buf));
        g.nbuf = g.pos = g.nfin = 0;
        g.cur[0] = '\0';
        g.pid = 0;
    }
    req_init(&rq, &sl, ok ? '1' : '2');
    if (batch) {
        if (g.cur[0] != '\0') {
            snprintf(g.fin[g.nfin].id, sizeof(g.fin[g.nfin].id), "%s", g.cur);
            g.fin[g.nfin++].ok = ok;
            g.cur[0] = '\0';
        }
        if (g.pos < g.nbuf && g.nfin < BATCH)
            return hand_out(g.pos++, item, index, err);
        if (!g.atexit_set) {
            atexit(flush_at_exit);
            g.atexit_set = 1;
        }
        rq.mark = 'L';
        rq.want = BATCH;
    }
    for (;;) {
        if (batch) {
            for (i = 0; i < g.nfin; i++)
                fin[i] = (struct prun_wq_pool_fin){g.fin[i].id, g.fin[i].ok};
            rq.fin = fin;
            rq.nfin = g.nfin;
        }
        rc = call(&sl, &rq, out, &n, 0, err);
        if (rc < 0)
            return rc;
        if (batch) {
            /* Completed (a replay would be rejected as a duplicate). */
            g.nfin = 0;
            forget_batch();
        }
        if (rc == 0)
            return 0;
        if (rc == 2) {
            wait_wake(&sl, wait);
            wait = wait < 100 ? wait * 2 : 100;
            continue;
        }
        if (!batch) {
            const char *sp = strrchr(out[0].key, ' ');

            if (index)
                *index = sp ? strtoull(sp + 1, NULL, 10) : 0;
            *item = out[0].item;
            out[0].item = NULL;
            for (i = 0; i < n; i++)
                prun__wq_pool_item_clear(&out[i]);
            return 1;
        }
        for (i = 0; i < n; i++)
            g.buf[i] = out[i];
        g.nbuf = n;
        g.pos = 0;
        return hand_out(g.pos++, item, index, err);
    }
}

int prun__next_mark(
    int ok, char **item, unsigned long long *index, struct prun_err *err)
{
    return next_item(0, ok, item, index, err);
}

int prun_next(char **item, unsigned long long *index, struct prun_err *err)
{
    struct prun_err e = {0};
    int rc = next_item(1, 1, item, index, &e);

    if (rc < 0 && err)
        *err = e;
    return rc;
}
