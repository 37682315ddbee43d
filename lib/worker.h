/* SPDX-License-Identifier: MIT */
#ifndef PRUN_WORKER_H
#define PRUN_WORKER_H
/*
 * A queue worker (`parallelrun worker`): serves every run announced on
 * one Redis at once, claiming instances from their work queues (wq.h)
 * and running them with a local executor per run. docs/work-queue.md
 * describes it.
 */
#include <stdint.h>

#include "util.h"

struct prun_worker_opts {
    const char *url;
    const char *password; /* or NULL */
    unsigned slots;       /* attempts at once over all runs, >= 1 */
    int64_t lease_ms;     /* lease of each claim */
    int64_t drain_ms;     /* SIGTERM: finish within this, then hand back */
    int64_t kill_grace_ms;
    int64_t outage_ms; /* Redis unreachable this long: give up */
    /* Something worth telling the user (lib/ never prints). */
    void (*log)(void *ctx, const char *msg);
    void *log_ctx;
};

struct prun_worker_stats {
    unsigned long long started, succeeded, failed, retried, stale, dup,
        released, lost;
};

/*
 * Runs until SIGTERM/SIGINT (then drains: no new claims, running attempts
 * get drain_ms to finish, the rest are handed back and stopped). Returns
 * 0, or a negative PRUN_E* when it could not go on (Redis gone for longer
 * than outage_ms, a system call failed); running attempts were handed
 * back or stopped first.
 */
int prun__worker_run(const struct prun_worker_opts *o,
    struct prun_worker_stats *st, struct prun_err *err);

#endif
