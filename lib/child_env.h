/* SPDX-License-Identifier: MIT */
#ifndef PRUN_CHILD_ENV_H
#define PRUN_CHILD_ENV_H
/*
 * A child's environment: the runner's own, less the variables the child
 * gets anew, plus PARALLELRUN_* for its instance, the task's env entries,
 * the run's extra entries and its segments' variables.
 */
#include "job.h"
#include "segment.h"

struct prun__envset;

/*
 * Prepares one base environment per task of job (from environ, now);
 * jobs is the run's concurrency (PARALLELRUN_CONCURRENCY).
 * extra (nextra entries "NAME=VALUE") go to every child; they must
 * outlive the set. Returns 0 or PRUN_ENOMEM with err set.
 */
int prun__envset_new(const struct prun_job *job, const char *run_id,
    unsigned jobs, const char *const *extra, size_t nextra,
    struct prun__envset **out, struct prun_err *err);
void prun__envset_free(struct prun__envset *es);

/*
 * The environment of one instance of task, in one malloc'd block (free()
 * it). sc may be NULL. Returns NULL when out of memory.
 */
char **prun__envset_build(const struct prun__envset *es, size_t task,
    const struct prun_ctx *ctx, const struct prun_segchild *sc);

#endif
