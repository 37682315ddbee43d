/* SPDX-License-Identifier: MIT */
#ifndef PRUN_SESSION_H
#define PRUN_SESSION_H
/*
 * The composition of a run, shared by every front end (`run` with a job
 * file, the command-line ad-hoc mode, workers): everything that must be
 * in place before the first child starts -- the run id, shared segments,
 * Redis (the embedded server when none is configured), the job lock,
 * what --resume skips, the children's extra environment -- then the run
 * itself, then its final record. Front ends parse options and print; this
 * module does neither (it says what is worth saying through o->say).
 */
#include "config.h"
#include "job.h"
#include "output.h"
#include "runner.h"

struct prun_session_opts {
    const char *redis_url; /* --redis; NULL: the config's, else embedded */
    const char *resume;    /* the run id to resume, or NULL */
    unsigned jobs;         /* -j; 0: the job's, the config's, the CPUs */
    struct prun_output_opts out; /* run_id is filled in; results_dir NULL:
                                    the config's */
    int quiet;                   /* notes are not said, warnings are */
    /* Without resume: instances to count as done without running them
     * (ad-hoc mode's --resume against a joblog). May be NULL. */
    prun_sched_skip_fn skip;
    void *skip_ctx;
    /* Told what the user should read now ("note: ...", warnings, Redis
     * errors as they happen). May be NULL. */
    void (*say)(void *ctx, const char *msg);
    void *say_ctx;
    /* --distributed: the instances go to the work queue on redis_url (or
     * the config's) for `parallelrun worker`s; none run here. The --set
     * entries are passed on to the workers. */
    int distributed;
    const struct prun_set *sets;
    size_t nsets;
    /* --worker-wait (docs/work-queue.md), or NULL for the default. */
    const char *worker_wait;
};

struct prun__session;

/*
 * Sets up a run of job (which must outlive the session) under cfg: after
 * a 0 return, nothing has started yet but everything is in place. Returns
 * a negative PRUN_E* with err set otherwise (PRUN_ELOCKED: the job's lock
 * is held by another run); nothing was started then either.
 */
int prun__session_open(const struct prun_config *cfg,
    const struct prun_job *job, const struct prun_session_opts *o,
    struct prun__session **out, struct prun_err *err);

const char *prun__session_run_id(const struct prun__session *s);

/*
 * Runs the job to the end (prun__run()). res must be released with
 * prun__run_result_free(). On a lost lock, err names the new holder.
 */
int prun__session_run(
    struct prun__session *s, struct prun_run_result *res, struct prun_err *err);

/*
 * Writes the run's final counts and state (exit_code as it will end) and
 * waits, bounded, for Redis to take them. Returns the number of records
 * Redis refused or never got (0: the run's state is complete); the first
 * reason goes in first (n bytes). A run whose state is incomplete should
 * exit 3.
 */
unsigned long long prun__session_finish(struct prun__session *s,
    const struct prun_run_result *res, int exit_code, char *first, size_t n);

/* Releases the lock, Redis, segments. NULL is a no-op. */
void prun__session_close(struct prun__session *s);

#endif
