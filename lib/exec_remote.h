/* SPDX-License-Identifier: MIT */
#ifndef PRUN_EXEC_REMOTE_H
#define PRUN_EXEC_REMOTE_H
/*
 * The remote executor (`run --distributed`): attempts become entries of
 * the run's work queue (wq.h) for `parallelrun worker`s on any host, and
 * end when their terminal records arrive. docs/work-queue.md.
 */
#include "executor.h"
#include "runner.h"

struct prun__remote_opts {
    const struct prun_job *job;
    const char *run_id;
    unsigned slots; /* instances queued or running at once */
    int64_t kill_grace_ms;
    const struct prun_dist *dist;
};

/*
 * Creates the run's work queue and the executor, with a non-blocking
 * connection whose socket sits on the loop. Returns 0 or a negative
 * PRUN_E* with err set.
 */
int prun__remote_new(const struct prun__remote_opts *o,
    const struct prun__exec_hooks *hooks, struct prun__executor **out,
    struct prun_err *err);

#endif
