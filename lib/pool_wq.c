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
        /* cap -1: a stream of items, which queue workers never claim
           (only a slot's `next` does); its rate is per item */
        argv[k++] = job->tasks[t].name;
        argv[k++] = "-1";
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
         * (it is measured from the claim) or a rate, else a batch.
         */
        snprintf(field, sizeof(field), "batch:%s", job->tasks[t].name);
        snprintf(v, sizeof(v), "%d",
            job->tasks[t].timeout_ms > 0 || job->tasks[t].rate > 0
                ? 1
                : PRUN_WQ_POOL_BATCH);
        prun__state_argv(s, 4, hset, NULL);
        /* what every entry made of staged items carries */
        snprintf(field, sizeof(field), "m:%s", job->tasks[t].name);
        snprintf(v, sizeof(v), "%u", job->tasks[t].retries + 1);
        prun__state_argv(s, 4, hset, NULL);
        snprintf(field, sizeof(field), "d:%s", job->tasks[t].name);
        snprintf(v, sizeof(v), "%lld", (long long)job->tasks[t].retry_delay_ms);
        prun__state_argv(s, 4, hset, NULL);
    }
    free(argv);
    free(rates);
}

/*
 * Items waiting to be queued: the feeder hands them over one by one and
 * they go out a batch per script (one round of the pipeline, not one per
 * item), at PUSH_BATCH items or when prun__pool_wq_flush() is called at
 * the end of each feeding turn. Only into a queue that exists: after a
 * Redis restart without its data, nothing is created without a TTL, and
 * workers see it gone.
 *
 * Items are staged, not put on the stream: two lists per task, indices
 * (stage.x) and "LEN:ITEM" (stage.p), pushed in the same script. A
 * worker slot's `next` makes one stream entry of as many as it wants (a
 * chunk), so the queue's cost is paid per claim, not per item, and a
 * `parallelrun next` per item still takes them one by one, in order
 * (docs/work-queue.md, "Pool mode"). KEYS: meta, the two lists, the
 * waiting set. ARGV: the wake lists' prefix, n, then n indices and n
 * items.
 */
#define PUSH_BATCH 256

/*
 * Wakes the task's waiting slots (`next` blocks on its own wake list with
 * a short timeout): one token each, at most one held. KEYS[1] meta,
 * KEYS[K] the waiting set; ARGV[A] the wake lists' prefix.
 */
#define WAKE_PUSH WAKE_LUA_K("4", "1")
#define WAKE_FED  WAKE_LUA_K("2", "3")
#define WAKE_LUA_K(K, A)                                                       \
    "  local who = redis.call('SMEMBERS', KEYS[" K "])\n"                      \
    "  local ttl = redis.call('HGET', KEYS[1], 'ttl')\n"                       \
    "  for _, c in ipairs(who) do\n"                                           \
    "    local k = ARGV[" A "]..c\n"                                           \
    "    redis.call('RPUSH', k, 1) redis.call('LTRIM', k, 0, 0)\n"             \
    "    redis.call('PEXPIRE', k, ttl)\n"                                      \
    "  end\n"                                                                  \
    "  if #who > 0 then redis.call('DEL', KEYS[" K "]) end\n"

static const char push_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then\n"
    "  local n = tonumber(ARGV[2])\n"
    "  redis.call('RPUSH', KEYS[2], unpack(ARGV, 3, 2 + n))\n"
    "  redis.call('RPUSH', KEYS[3], unpack(ARGV, 3 + n, 2 + 2 * n))\n"
    "  local ttl = redis.call('HGET', KEYS[1], 'ttl')\n"
    "  redis.call('PEXPIRE', KEYS[2], ttl)\n"
    "  redis.call('PEXPIRE', KEYS[3], ttl)\n" WAKE_PUSH "end\n"
    "return 1\n";

static struct {
    struct prun_state *s;
    const struct prun_task *t;
    size_t n;
    unsigned long long index[PUSH_BATCH];
    char *item[PUSH_BATCH];
} pend;

/* One script staging n items of task t. */
static void send_items(struct prun_state *s, const struct prun_task *t,
    const unsigned long long *index, char *const *items, size_t n)
{
    char xk[300], pk[300], waiting[300], wakes[300], nn[24];
    const char *argv[10 + 2 * PUSH_BATCH];
    size_t lens[10 + 2 * PUSH_BATCH], i, k = 0;
    char(*idx)[24] = calloc(n ? n : 1, sizeof(*idx));
    char **pays = calloc(n ? n : 1, sizeof(*pays));
    struct names nm = names(s);

    if (idx == NULL || pays == NULL || n > PUSH_BATCH)
        goto out;
    snprintf(xk, sizeof(xk), "%s:stage.x:%s", nm.prefix, t->name);
    snprintf(pk, sizeof(pk), "%s:stage.p:%s", nm.prefix, t->name);
    snprintf(waiting, sizeof(waiting), "%s:waiting:%s", nm.prefix, t->name);
    snprintf(wakes, sizeof(wakes), "%s:wake:", nm.prefix);
    snprintf(nn, sizeof(nn), "%zu", n);
    argv[k++] = "EVAL";
    argv[k++] = push_lua;
    argv[k++] = "4";
    argv[k++] = nm.meta;
    argv[k++] = xk;
    argv[k++] = pk;
    argv[k++] = waiting;
    argv[k++] = wakes;
    argv[k++] = nn;
    for (i = 0; i < n; i++) {
        snprintf(idx[i], sizeof(idx[i]), "%llu", index[i]);
        argv[k++] = idx[i];
    }
    for (i = 0; i < n; i++) {
        if (asprintf(&pays[i], "%zu:%s", strlen(items[i]), items[i]) < 0) {
            pays[i] = NULL;
            goto out;
        }
        argv[k++] = pays[i];
    }
    for (i = 0; i < k; i++)
        lens[i] = strlen(argv[i]);
    prun__state_argv(s, (int)k, argv, lens);
out:
    for (i = 0; pays != NULL && i < n; i++)
        free(pays[i]);
    free(pays);
    free(idx);
}

void prun__pool_wq_flush(struct prun_state *s)
{
    size_t i;

    if (pend.n == 0 || pend.s != s)
        return;
    send_items(s, pend.t, pend.index, pend.item, pend.n);
    for (i = 0; i < pend.n; i++)
        free(pend.item[i]);
    pend.n = 0;
}

void prun__pool_wq_push(struct prun_state *s, const struct prun_task *t,
    unsigned long long index, const char *item)
{
    char *i1 = (char *)item;

    if (pend.n > 0 && (pend.s != s || pend.t != t))
        prun__pool_wq_flush(pend.s);
    pend.s = s;
    pend.t = t;
    pend.index[pend.n] = index;
    pend.item[pend.n] = strdup(item);
    if (pend.item[pend.n] == NULL) {
        /* Out of memory: what is pending goes now, then this item alone. */
        prun__pool_wq_flush(s);
        send_items(s, t, &index, &i1, 1);
        return;
    }
    if (++pend.n == PUSH_BATCH)
        prun__pool_wq_flush(s);
}

void prun__pool_wq_fed(
    struct prun_state *s, const char *task, unsigned long long count)
{
    char field[256], v[32], waiting[300], wakes[300];
    const char *argv[9];
    struct names n = names(s);

    /* The count may be what waiting slots need to see they are done. */
    snprintf(field, sizeof(field), "fed:%s", task);
    snprintf(v, sizeof(v), "%llu", count);
    snprintf(waiting, sizeof(waiting), "%s:waiting:%s", n.prefix, task);
    snprintf(wakes, sizeof(wakes), "%s:wake:", n.prefix);
    argv[0] = "EVAL";
    argv[1] =
        "if redis.call('EXISTS', KEYS[1]) == 1 then\n"
        "  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n" WAKE_FED "end\n"
        "return 1\n";
    argv[2] = "2";
    argv[3] = n.meta;
    argv[4] = waiting;
    argv[5] = field;
    argv[6] = v;
    argv[7] = wakes;
    prun__state_argv(s, 8, argv, NULL);
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
