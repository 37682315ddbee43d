/* SPDX-License-Identifier: MIT */
#ifndef PRUN_POOL_FEED_H
#define PRUN_POOL_FEED_H
/*
 * Pool mode, the runner's side: a pool task's items go to Redis for its
 * long-lived workers, and the scheduler sees the task as its workers.
 */
#include "coord.h"
#include "executor.h"
#include "sched.h"

struct prun__pool;

/*
 * For a job with pool tasks: *shadow is the job as the scheduler must see
 * it (each pool task a range of `jobs` worker indices; owned by the pool)
 * and *out the feeder. Without pool tasks, *out is NULL and *shadow is
 * job. skip (may be NULL) says which items an earlier run did (--resume).
 * Returns 0 or a negative PRUN_E* with err set.
 */
int prun__pool_new(const struct prun_job *job, unsigned jobs,
    struct prun_state *state, prun_sched_skip_fn skip, void *skip_ctx,
    const struct prun__exec_hooks *loop, struct prun__pool **out,
    const struct prun_job **shadow, struct prun_err *err);
void prun__pool_free(struct prun__pool *p);

/* A worker of pool task t is about to start: its items begin to flow. */
void prun__pool_start(struct prun__pool *p, size_t t);

/*
 * Feeds started pools' items to Redis a batch at a time, so a huge source
 * neither stalls the loop nor sits in memory. Returns nonzero while some
 * feed has more to give.
 */
int prun__pool_feed(struct prun__pool *p);

#endif
