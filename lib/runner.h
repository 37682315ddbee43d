/* SPDX-License-Identifier: MIT */
#ifndef PRUN_RUNNER_H
#define PRUN_RUNNER_H

/*
 * The runner: one epoll loop that starts what the scheduler says, reaps
 * children (signalfd), reads their output (pipes), enforces timeouts, rates
 * and retry delays (timerfd) and stops everything on SIGINT/SIGTERM/SIGHUP.
 * With a job lock (o->state holding one) it renews the lease from the loop
 * and checks it before every start, on every wake and at once on SIGCONT;
 * once the lease is lost it stops every child (SIGTERM, SIGKILL after
 * kill_grace) and returns PRUN_ELOCKED.
 * It reports what happened in a prun_run_result; printing the summary is
 * the caller's.
 */

#include <stdint.h>

#include "config.h"
#include "coord.h"
#include "job.h"
#include "output.h"
#include "sched.h"
#include "segment.h"

/* --distributed: where the work queue lives and what workers need. */
struct prun_dist {
    const char *url;
    const char *password; /* or NULL */
    const char *job_path; /* absolute: workers load the same file */
    const char *cwd;      /* the runner's directory */
    const char *sets;     /* --set entries joined by \x1f */
    int64_t key_ttl_ms;
    int64_t outage_ms;      /* Redis unreachable this long fails the run */
    int64_t worker_wait_ms; /* no live worker this long fails it; 0: never */
};

struct prun_run_opts {
    const struct prun_job *job;
    unsigned jobs;         /* resolved global cap, >= 1 */
    int64_t kill_grace_ms; /* default for tasks that set none */
    const char *run_id;
    struct prun_output_opts out;
    struct prun_output *output;   /* made from out by the caller, or NULL */
    uint64_t seed;                /* retry jitter */
    struct prun_state *state;     /* Redis recording, or NULL (--redis off) */
    const char *const *extra_env; /* added to every child's environment */
    size_t nextra_env;
    struct prun_segset *segs; /* shared segments, or NULL */
    prun_sched_skip_fn skip;  /* --resume: instances done earlier */
    void *skip_ctx;
    /* Told what is worth saying at once (a restarted guardian); or NULL. */
    void (*warn)(void *ctx, const char *msg);
    void *warn_ctx;
    const struct prun_dist *dist; /* --distributed, or NULL */
};

enum prun_fail_kind {
    PRUN_FAIL_EXIT,    /* non-zero exit status */
    PRUN_FAIL_SIGNAL,  /* killed by a signal it did not expect */
    PRUN_FAIL_TIMEOUT, /* exceeded its timeout */
    PRUN_FAIL_EXEC,    /* could not be started */
    PRUN_FAIL_CANCEL,  /* stopped by the runner (signal, halt) */
};

struct prun_failure {
    size_t task;
    unsigned long long index;
    unsigned attempt;
    enum prun_fail_kind kind;
    int status;       /* exit status, or signal number */
    char item[96];    /* the item, shortened */
    char reason[256]; /* "exit 3", "killed by SIGKILL", "timed out after 30s" */
    char tail[1025];  /* the last lines of stderr */
};

struct prun_task_result {
    long long count; /* -1 unknown */
    unsigned long long succeeded, failed, cancelled, skipped;
    int needs_failed; /* skipped: a task it needs failed */
    char error[512];  /* its foreach source failed: why; "" if not */
};

struct prun_run_result {
    int signal;      /* the runner was stopped by this signal */
    int cancelled;   /* ... by `parallelrun cancel` (signal is SIGINT) */
    int halted;      /* halt: triggered */
    int halt_status; /* GNU parallel's exit status for the halt; -1: none */
    struct prun__sched_stats stats;
    size_t ntasks;
    struct prun_task_result *tasks;
    size_t nfail; /* recorded failures (bounded) */
    struct prun_failure *fail;
    unsigned long long fail_more; /* failures not recorded */
    int64_t start_wall_ms;
    int64_t elapsed_ms;
    char warning[256]; /* e.g. results disk full; "" if none */
    char note[256];    /* worth saying, not a failure; "" if none */
    /* Filled by the caller once the state is flushed: records Redis
     * refused or never got, and the first reason ("" if none). */
    unsigned long long redis_errors;
    char redis_error[256];
};

/* The most failures kept with details for the summary. */
#define PRUN_MAX_FAILURES 1000

/*
 * Runs the job to the end. Returns 0 when the run went through (whatever
 * its instances did: see res), or a negative PRUN_E* when it could not
 * (err says why; running children were stopped first): PRUN_ELOCKED when
 * the run lost its job lock. res is filled in
 * both cases and must be released with prun__run_result_free().
 */
int prun__run(const struct prun_run_opts *o, struct prun_run_result *res,
    struct prun_err *err);
void prun__run_result_free(struct prun_run_result *res);

/* A new run id, "YYYYMMDD-HHMMSS-xxxx" (local time, random suffix). */
void prun__run_id_new(char *buf, size_t n);

#endif
