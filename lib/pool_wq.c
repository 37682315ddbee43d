/* SPDX-License-Identifier: MIT */
/*
 * pool_wq: pool mode's items on the work queue (docs/work-queue.md), as
 * the runner sends them: queue creation, one stream entry per item, the
 * count once all are queued, what a worker's end means for the item it
 * held, and lease renewals for live workers. Everything goes through the
 * state writer's pipeline, so the loop never waits for Redis; a replay
 * after a reconnect is harmless (the queue skips an item that already has
 * its terminal record). Workers take items with `parallelrun next`
 * (coord_sync.c). It does not decide anything about the run.
 */
#include "pool_wq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wq.h"

struct names {
    char prefix[200], meta[220];
};

static struct names names(struct prun_state *s)
{
    const char *rid = prun__state_run_id(s);
    struct names n;

    snprintf(n.prefix, sizeof(n.prefix), "parallelrun:{%s}:wq", rid);
    snprintf(n.meta, sizeof(n.meta), "%s:meta", n.prefix);
    return n;
}

void prun__pool_wq_create(struct prun_state *s, const struct prun_job *job)
{
    const char **argv;
    char ttl[32], host[128] = "", (*rates)[32];
    struct names n = names(s);
    size_t t, k = 0;

    argv = calloc(11 + 3 * job->ntasks, sizeof(*argv));
    rates = calloc(job->ntasks ? job->ntasks : 1, sizeof(*rates));
    if (argv == NULL || rates == NULL) {
        free(argv);
        free(rates);
        return;
    }
    snprintf(ttl, sizeof(ttl), "%lld", (long long)prun__state_ttl(s));
    gethostname(host, sizeof(host) - 1);
    argv[k++] = "EVAL";
    argv[k++] = prun__wq_script(PRUN__WQ_CREATE);
    argv[k++] = "1";
    argv[k++] = n.meta;
    argv[k++] = n.prefix;
    argv[k++] = ttl;
    argv[k++] = "3";
    argv[k++] = "";
    argv[k++] = "";
    argv[k++] = "";
    argv[k++] = host;
    for (t = 0; t < job->ntasks; t++) {
        if (!job->tasks[t].pool)
            continue;
        snprintf(rates[t], sizeof(rates[t]), "%g", job->tasks[t].rate);
        argv[k++] = job->tasks[t].name;
        argv[k++] = "0";
        argv[k++] = rates[t];
    }
    prun__state_argv(s, (int)k, argv, NULL);
    for (t = 0; t < job->ntasks; t++) {
        char field[256], v[16];
        const char *hset[] = {"HSET", n.meta, field, v};

        if (!job->tasks[t].pool)
            continue;
        /*
         * Items a worker may hold at once: one when items have a timeout
         * (it is measured from the claim), else a batch.
         */
        snprintf(field, sizeof(field), "batch:%s", job->tasks[t].name);
        snprintf(v, sizeof(v), "%d",
            job->tasks[t].timeout_ms > 0 ? 1 : PRUN_WQ_POOL_BATCH);
        prun__state_argv(s, 4, hset, NULL);
    }
    free(argv);
    free(rates);
}

void prun__pool_wq_push(struct prun_state *s, const struct prun_task *t,
    unsigned long long index, const char *item)
{
    char stream[300], key[300], ma[16], rd[32];
    const char *argv[12];
    size_t lens[12];
    struct names n = names(s);

    snprintf(stream, sizeof(stream), "%s:s:%s", n.prefix, t->name);
    snprintf(key, sizeof(key), "%s %llu", t->name, index);
    snprintf(ma, sizeof(ma), "%u", t->retries + 1);
    snprintf(rd, sizeof(rd), "%lld", (long long)t->retry_delay_ms);
    /* Only into a queue that exists: after a Redis restart without its
     * data, nothing is created without a TTL, and workers see it gone. */
    argv[0] = "EVAL";
    argv[1] = "if redis.call('EXISTS', KEYS[1]) == 1 then "
              "redis.call('XADD', KEYS[2], '*', 'k', ARGV[1], 'a', 1, "
              "'m', ARGV[2], 'd', ARGV[3], 'p', ARGV[4]) end return 1";
    argv[2] = "2";
    argv[3] = n.meta;
    argv[4] = stream;
    argv[5] = key;
    argv[6] = ma;
    argv[7] = rd;
    argv[8] = item;
    for (int i = 0; i < 9; i++)
        lens[i] = strlen(argv[i]);
    prun__state_argv(s, 9, argv, lens);
}

void prun__pool_wq_fed(
    struct prun_state *s, const char *task, unsigned long long count)
{
    char field[256], v[32];
    const char *argv[6];
    struct names n = names(s);

    snprintf(field, sizeof(field), "fed:%s", task);
    snprintf(v, sizeof(v), "%llu", count);
    argv[0] = "EVAL";
    argv[1] = "if redis.call('EXISTS', KEYS[1]) == 1 then "
              "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end return 1";
    argv[2] = "1";
    argv[3] = n.meta;
    argv[4] = field;
    argv[5] = v;
    prun__state_argv(s, 6, argv, NULL);
}

void prun__pool_wq_worker_end(struct prun_state *s, const char *task,
    unsigned long long worker, unsigned attempt, int ok)
{
    char consumer[256], slot[512], done[300];
    const char *argv[10];
    struct names n = names(s);

    snprintf(consumer, sizeof(consumer), "%s:%llu.%u", task, worker, attempt);
    snprintf(slot, sizeof(slot), "%s:slot:%s", n.prefix, consumer);
    snprintf(done, sizeof(done), "parallelrun:{%s}:done:%s",
        prun__state_run_id(s), task);
    argv[0] = "EVAL";
    argv[1] = prun__wq_script(PRUN__WQ_POOL_END);
    argv[2] = "1";
    argv[3] = n.meta;
    argv[4] = n.prefix;
    argv[5] = consumer;
    argv[6] = task;
    argv[7] = ok ? "1" : "0";
    argv[8] = slot;
    argv[9] = done;
    prun__state_argv(s, 10, argv, NULL);
}

void prun__pool_wq_renew(
    struct prun_state *s, const struct prun__pool_slot *slots, size_t n)
{
    const char **argv;
    char(*consumers)[256];
    struct names nm = names(s);
    size_t i, k = 0;

    if (n == 0)
        return;
    argv = calloc(5 + 2 * n, sizeof(*argv));
    consumers = calloc(n, sizeof(*consumers));
    if (argv == NULL || consumers == NULL) {
        free(argv);
        free(consumers);
        return;
    }
    argv[k++] = "EVAL";
    argv[k++] = prun__wq_script(PRUN__WQ_POOL_RENEW);
    argv[k++] = "1";
    argv[k++] = nm.meta;
    argv[k++] = nm.prefix;
    for (i = 0; i < n; i++) {
        snprintf(consumers[i], sizeof(consumers[i]), "%s:%llu.%u",
            slots[i].task, slots[i].worker, slots[i].attempt);
        argv[k++] = slots[i].task;
        argv[k++] = consumers[i];
    }
    prun__state_argv(s, (int)k, argv, NULL);
    free(argv);
    free(consumers);
}

void prun__pool_wq_timeouts(struct prun_state *s,
    const struct prun__pool_tmo *t, size_t n, prun__state_list_fn fn, void *arg)
{
    const char **argv;
    char(*bufs)[3][512];
    struct names nm = names(s);
    size_t i, k = 0;

    if (n == 0)
        return;
    argv = calloc(5 + 4 * n, sizeof(*argv));
    bufs = calloc(n, sizeof(*bufs));
    if (argv == NULL || bufs == NULL) {
        free(argv);
        free(bufs);
        return;
    }
    argv[k++] = "EVAL";
    argv[k++] = prun__wq_script(PRUN__WQ_POOL_TIMEOUT);
    argv[k++] = "1";
    argv[k++] = nm.meta;
    argv[k++] = nm.prefix;
    for (i = 0; i < n; i++) {
        snprintf(bufs[i][0], sizeof(bufs[i][0]), "%s:%llu.%u", t[i].slot.task,
            t[i].slot.worker, t[i].slot.attempt);
        snprintf(
            bufs[i][1], sizeof(bufs[i][1]), "%lld", (long long)t[i].timeout_ms);
        snprintf(bufs[i][2], sizeof(bufs[i][2]), "%s:slot:%s", nm.prefix,
            bufs[i][0]);
        argv[k++] = t[i].slot.task;
        argv[k++] = bufs[i][0];
        argv[k++] = bufs[i][1];
        argv[k++] = bufs[i][2];
    }
    prun__state_argv_list(s, (int)k, argv, NULL, fn, arg);
    free(argv);
    free(bufs);
}
