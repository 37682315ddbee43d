/* SPDX-License-Identifier: MIT */
#ifndef PRUN_POOL_WQ_H
#define PRUN_POOL_WQ_H
/*
 * Pool mode on the work queue, the runner's side: the commands it sends
 * through its pipelined state writer (never waiting for Redis).
 */
#include "coord.h"
#include "job.h"

/* Creates the run's queue with one stream per pool task of job. */
void prun__pool_wq_create(struct prun_state *s, const struct prun_job *job);
/*
 * Queues one item of task t: held back and sent with others, a batch per
 * script, when PUSH_BATCH are waiting or at prun__pool_wq_flush().
 */
void prun__pool_wq_push(struct prun_state *s, const struct prun_task *t,
    unsigned long long index, const char *item);
/* Sends the items prun__pool_wq_push() holds back; call every turn. */
void prun__pool_wq_flush(struct prun_state *s);
/* Every item of task is queued: count of them. */
void prun__pool_wq_fed(
    struct prun_state *s, const char *task, unsigned long long count);
/* Worker W (attempt A) of task ended; ok: it exited 0. */
void prun__pool_wq_worker_end(struct prun_state *s, const char *task,
    unsigned long long worker, unsigned attempt, int ok);
/* Renews the leases of live workers' items: n (task, worker, attempt). */
struct prun__pool_slot {
    const char *task;
    unsigned long long worker;
    unsigned attempt;
};
void prun__pool_wq_renew(
    struct prun_state *s, const struct prun__pool_slot *slots, size_t n);

/*
 * Per-item timeouts: n (task, worker, attempt, timeout) of live workers;
 * fn gets the consumers ("TASK:W.A") whose item timed out (it is failed
 * in Redis already): their worker must be stopped.
 */
struct prun__pool_tmo {
    struct prun__pool_slot slot;
    int64_t timeout_ms;
};
void prun__pool_wq_timeouts(struct prun_state *s,
    const struct prun__pool_tmo *t, size_t n, prun__state_list_fn fn,
    void *arg);

#endif
