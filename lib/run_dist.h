/* SPDX-License-Identifier: MIT */
#ifndef PRUN_RUN_DIST_H
#define PRUN_RUN_DIST_H

#include <limits.h>

#include "job.h"
#include "runner.h"

struct prun__dist_spec {
    struct prun_dist dist;
    char job_path[PATH_MAX], cwd[PATH_MAX], sets[8192];
};

/*
 * Fills d for run --distributed over the Redis at url, or refuses
 * (PRUN_EINVAL: no explicit Redis, pool tasks, segments, a bad wait).
 * wait is --worker-wait (NULL: PARALLELRUN_WORKER_WAIT, else 60s).
 */
int prun__dist_setup(const struct prun_job *job, const char *url,
    const char *password, const char *wait, const struct prun_set *sets,
    size_t nsets, struct prun__dist_spec *d, struct prun_err *err);

/*
 * A run with pool tasks succeeds only when every item has a terminal
 * success record in the run's work queue: replaces the pool tasks'
 * counts (workers) by their items' and lists failed items in res.
 * Returns 0, or PRUN_EREDIS when the items cannot be accounted for.
 */
int prun__pool_verify(const char *url, const char *password, const char *run_id,
    const struct prun_job *job, struct prun_run_result *res,
    struct prun_err *err);

#endif
