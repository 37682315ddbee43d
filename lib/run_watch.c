/* SPDX-License-Identifier: MIT */
/*
 * run_watch: a distributed run's watch over the workers that could serve
 * it (docs/work-queue.md, "When no worker serves the run"), part of the
 * coord module.
 *
 * While instances are outstanding, once a second, on the remote
 * executor's non-blocking connection: the run's give-up stream (each new
 * entry is said at once: which worker, on which host, why), the fence
 * table (the longest lease an entry is still held under), and the
 * workers' heartbeats (live, able: not given up on this run, serving
 * it: its heartbeat's run list names it). With no live worker able to serve the
 * run for a few seconds it says so, naming the command to start one; past the
 * bound (and past any lease still running) it tells the executor to fail what
 * is outstanding, with the last give-up's reason or "no worker". It never waits
 * for Redis and never ends an attempt itself: that is exec_remote.c's.
 */
#include "run_watch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "wq.h"

#define CHECK_MS       1000
#define NOTICE_MS      3000
#define BUSY_NOTICE_MS 10000
/* Registry entries older than this are not even asked about. */
#define STALE_MS 60000

static void say(struct prun__wwatch *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void say(struct prun__wwatch *w, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (w->say == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    w->say(w->ctx, msg);
}

/* A duration as the user wrote it, near enough: 60s, 1500ms. */
static void fmt_dur(int64_t ms, char *buf, size_t n)
{
    if (ms % 1000 == 0)
        snprintf(buf, n, "%llds", (long long)(ms / 1000));
    else
        snprintf(buf, n, "%lldms", (long long)ms);
}

void prun__wwatch_init(struct prun__wwatch *w, const char *rid, const char *url,
    int64_t wait_ms, void (*sayf)(void *, const char *), void *ctx)
{
    memset(w, 0, sizeof(*w));
    snprintf(w->rid, sizeof(w->rid), "%s", rid);
    snprintf(w->prefix, sizeof(w->prefix), "parallelrun:{%s}:wq", rid);
    snprintf(w->shown, sizeof(w->shown), "%s", url);
    snprintf(w->last, sizeof(w->last), "0");
    w->wait_ms = wait_ms;
    w->say = sayf;
    w->ctx = ctx;
}

static void ids_free(struct prun__wwatch *w)
{
    prun__wq_strv_free(w->ids, w->nids);
    w->ids = NULL;
    w->nids = w->got = 0;
}

void prun__wwatch_free(struct prun__wwatch *w)
{
    ids_free(w);
    prun__wq_strv_free(w->quit, w->nquit);
    w->quit = NULL;
    w->nquit = 0;
}

static int has_quit(const struct prun__wwatch *w, const char *id)
{
    for (size_t i = 0; i < w->nquit; i++)
        if (strcmp(w->quit[i], id) == 0)
            return 1;
    return 0;
}

static const char *field(const redisReply *f, const char *name)
{
    for (size_t j = 0; j + 1 < f->elements; j += 2)
        if (f->element[j]->type == REDIS_REPLY_STRING &&
            strcmp(f->element[j]->str, name) == 0 &&
            f->element[j + 1]->type == REDIS_REPLY_STRING)
            return f->element[j + 1]->str;
    return "";
}

/* One give-up entry: remembered, and said at once. */
static void gave_up(struct prun__wwatch *w, const redisReply *f)
{
    const char *id = field(f, "w"), *host = field(f, "h");
    const char *kind = field(f, "k"), *why = field(f, "r");

    if (!has_quit(w, id)) {
        char **n = realloc(w->quit, (w->nquit + 1) * sizeof(*n));

        if (n != NULL) {
            w->quit = n;
            w->quit[w->nquit] = strdup(id);
            if (w->quit[w->nquit] != NULL)
                w->nquit++;
        }
    }
    snprintf(w->reason, sizeof(w->reason), "worker %s on %s gave up: %s", id,
        host, why);
    w->host_cause = strcmp(kind, "host") == 0;
    say(w, "worker %s on %s gave up on run %s: %s", id, host, w->rid, why);
}

static void on_gaveup(redisAsyncContext *ac, void *reply, void *priv)
{
    struct prun__wwatch *w = priv;
    const redisReply *r = reply, *entries;

    (void)ac;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->elements < 2)
        return;
    entries = r->element[0]->element[1];
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2)
            continue;
        snprintf(w->last, sizeof(w->last), "%s", e->element[0]->str);
        gave_up(w, e->element[1]);
    }
}

/*
 * The fence table's values are "FENCE LEASE_MS" per claimed entry ("0 0"
 * once handed back): any entry means a worker took an instance.
 */
static void on_fence(redisAsyncContext *ac, void *reply, void *priv)
{
    struct prun__wwatch *w = priv;
    const redisReply *r = reply;

    (void)ac;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return;
    w->max_lease = 0;
    if (r->elements > 0)
        w->served = 1;
    for (size_t i = 0; i < r->elements; i++) {
        const char *sp;
        long long l;

        if (r->element[i]->type != REDIS_REPLY_STRING)
            continue;
        sp = strchr(r->element[i]->str, ' ');
        l = sp ? atoll(sp + 1) : 0;
        if (l > w->max_lease)
            w->max_lease = l;
    }
}

/* A round is complete: what it saw becomes the watch's state. */
static void settle(struct prun__wwatch *w)
{
    int64_t now = prun__now_ms();

    w->round = 0;
    if (w->since == 0)
        return;
    if (w->serving > 0)
        w->served = 1;
    if (w->able > 0) {
        w->alone = 0;
        w->said_alone = 0;
        if (!w->served && !w->said_busy && now - w->since >= BUSY_NOTICE_MS) {
            w->said_busy = 1;
            say(w,
                "run %s: %u live worker%s on %s, none serving this run yet "
                "(busy with other runs?)",
                w->rid, w->able, w->able == 1 ? "" : "s", w->shown);
        }
        return;
    }
    if (w->alone == 0)
        w->alone = now;
}

/* Whether rid is one of list's comma-separated run ids. */
static int in_list(const char *list, const char *rid)
{
    size_t n = strlen(rid);

    for (const char *p = list; p != NULL; p = strchr(p, ',')) {
        if (*p == ',')
            p++;
        if (strncmp(p, rid, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return 1;
    }
    return 0;
}

/* One worker's heartbeat (its run and beat; nil once it expired). */
static void on_worker(redisAsyncContext *ac, void *reply, void *priv)
{
    struct prun__wwatch *w = priv;
    const redisReply *r = reply;
    const char *id;

    (void)ac;
    if (r == NULL || w->got >= w->nids) {
        w->round = 0;
        return;
    }
    /* Replies come in the order asked: this is the got-th worker's. */
    id = w->ids[w->got++];
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING) {
        w->live++;
        if (!has_quit(w, id)) {
            w->able++;
            if (r->element[0]->type == REDIS_REPLY_STRING &&
                in_list(r->element[0]->str, w->rid))
                w->serving++;
        }
    }
    if (w->got == w->nids)
        settle(w);
}

/* The registry's recent entries: each one's heartbeat is read next. */
static void on_ids(redisAsyncContext *ac, void *reply, void *priv)
{
    struct prun__wwatch *w = priv;
    const redisReply *r = reply;
    size_t i;

    ids_free(w);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        w->round = 0;
        return;
    }
    w->live = w->able = w->serving = 0;
    if (r->elements > 0)
        w->ids = calloc(r->elements, sizeof(*w->ids));
    for (i = 0; w->ids != NULL && i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING)
            continue;
        w->ids[w->nids] = strdup(r->element[i]->str);
        if (w->ids[w->nids] == NULL)
            break;
        if (redisAsyncCommand(ac, on_worker, w, "HMGET %s%s run beat",
                PRUN_WQ_WORKER_PREFIX, w->ids[w->nids]) != REDIS_OK) {
            free(w->ids[w->nids]);
            break;
        }
        w->nids++;
    }
    if (w->nids == 0)
        settle(w);
}

void prun__wwatch_tick(
    struct prun__wwatch *w, redisAsyncContext *ac, size_t n, int64_t now)
{
    char min[32];

    if (n == 0) {
        /* Nothing outstanding: the bound's clock stops. */
        w->since = w->alone = 0;
        return;
    }
    if (w->since == 0)
        w->since = now;
    if (ac == NULL) {
        /* Redis away (the outage bound's business): the clock starts anew. */
        w->alone = 0;
        return;
    }
    if (w->alone != 0 && !w->said_alone && now - w->alone >= NOTICE_MS) {
        w->said_alone = 1;
        if (w->nquit > 0)
            say(w,
                "run %s: no live worker on %s can serve it (%zu gave up); "
                "start `parallelrun worker --redis %s` on a host that can",
                w->rid, w->shown, w->nquit, w->shown);
        else
            say(w,
                "run %s: no live worker on %s; start `parallelrun worker "
                "--redis %s`",
                w->rid, w->shown, w->shown);
    }
    if (w->round || now < w->next_check)
        return;
    w->next_check = now + CHECK_MS;
    snprintf(min, sizeof(min), "%lld", (long long)(prun__wall_ms() - STALE_MS));
    if (redisAsyncCommand(ac, on_gaveup, w,
            "XREAD COUNT 64 STREAMS %s:gaveup %s", w->prefix,
            w->last) != REDIS_OK ||
        redisAsyncCommand(ac, on_fence, w, "HVALS %s:fence", w->prefix) !=
            REDIS_OK ||
        redisAsyncCommand(ac, on_ids, w, "ZRANGEBYSCORE %s %s +inf",
            PRUN_WQ_WORKERS_KEY, min) != REDIS_OK)
        return;
    w->round = 1;
}

int64_t prun__wwatch_deadline(const struct prun__wwatch *w)
{
    int64_t t = w->next_check;

    if (w->since == 0)
        return INT64_MAX;
    if (w->alone != 0 && !w->said_alone && w->alone + NOTICE_MS < t)
        t = w->alone + NOTICE_MS;
    if (w->alone != 0 && w->wait_ms > 0) {
        int64_t bound = w->max_lease > w->wait_ms ? w->max_lease : w->wait_ms;

        if (w->alone + bound < t)
            t = w->alone + bound;
    }
    return t;
}

void prun__wwatch_served(struct prun__wwatch *w)
{
    w->served = 1;
}

int prun__wwatch_expired(const struct prun__wwatch *w, int64_t now, char *why,
    char *brief, size_t n, int *sys)
{
    int64_t bound = w->wait_ms;
    char dur[32];

    if (w->wait_ms <= 0 || w->since == 0 || w->alone == 0)
        return 0;
    /* An entry held under a lease is its worker's until the lease ends. */
    if (w->max_lease > bound)
        bound = w->max_lease;
    if (now - w->alone < bound)
        return 0;
    fmt_dur(w->wait_ms, dur, sizeof(dur));
    *sys = 1;
    snprintf(brief, n,
        "not done: no live worker able to serve the run within %s", dur);
    if (w->reason[0] != '\0') {
        snprintf(why, n, "no live worker within %s; %s", dur, w->reason);
        *sys = !w->host_cause;
    } else if (!w->served) {
        snprintf(why, n,
            "no worker took any instance within %s (no live worker on %s; "
            "start `parallelrun worker --redis %s`)",
            dur, w->shown, w->shown);
    } else {
        snprintf(why, n,
            "no live worker on %s for %s (the workers that served this run "
            "are gone)",
            w->shown, dur);
    }
    return 1;
}
