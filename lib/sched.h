/* SPDX-License-Identifier: MIT */
#ifndef PRUN_SCHED_H
#define PRUN_SCHED_H

/*
 * The scheduler decides which task instance starts next and what a finished
 * instance means: dependencies between tasks, the global and per-task
 * concurrency caps, start rates, retries with exponential backoff and
 * jitter, and halting. It is pure logic over a clock the caller passes in:
 * it never forks, never sleeps, never reads the clock itself. The only I/O
 * behind it is the foreach iterators (lines files) it pulls items from, and
 * those never wait: a source with nothing to read yet says so, and the
 * caller watches its fd (prun__sched_input_fd) and calls back when it is
 * readable (prun__sched_input_ready).
 */

#include <stdint.h>

#include "job.h"

/* One attempt-carrying instance of a task. */
struct prun_inst {
    size_t task;              /* index into job->tasks */
    unsigned long long index; /* 0-based within the task */
    unsigned attempt;         /* 1-based */
    size_t nitems;
    struct prun_item *items; /* owned: one prun__items_dup() block */
    int64_t ready_at;        /* monotonic ms; retries wait until then */
    struct prun_inst *next;  /* the scheduler's queue link */
    uint64_t seq;            /* the runner's: joblog sequence, 0 unset */
    void *udata;             /* the runner's, untouched by sched */
};

enum prun_next {
    PRUN_NEXT_START, /* *inst should be started now */
    PRUN_NEXT_WAIT,  /* nothing can start before *wake (or an exit) */
    PRUN_NEXT_DONE,  /* nothing runs and nothing is left to start */
};

enum prun_outcome {
    PRUN_OUT_OK,         /* exit status 0 */
    PRUN_OUT_FAIL,       /* failed; retried while attempts are left */
    PRUN_OUT_FAIL_FINAL, /* failed and must not be retried (exec error) */
    PRUN_OUT_CANCELLED,  /* stopped by the runner (signal, halt now) */
};

enum prun_verdict {
    PRUN_V_SUCCEEDED,
    PRUN_V_RETRY,     /* requeued for inst->ready_at; the caller keeps no ref */
    PRUN_V_FAILED,    /* final failure; caller frees inst */
    PRUN_V_CANCELLED, /* caller frees inst */
};

struct prun_sched_opts {
    unsigned jobs; /* global cap, >= 1 */
    uint64_t seed; /* for retry jitter; fixed in tests */
};

struct prun__sched_stats {
    unsigned long long started; /* attempts started */
    unsigned long long running;
    unsigned long long succeeded; /* instances */
    unsigned long long failed;    /* instances, final */
    unsigned long long retried;   /* attempts that will be retried */
    unsigned long long cancelled;
    unsigned long long skipped; /* instances never started: needs failed,
                                   halt, or stop */
    long long total;            /* all instances, -1 if unknown */
    unsigned long long resumed; /* succeeded in the run being resumed: not
                                   run, counted in succeeded too */
};

struct prun_sched;

/*
 * Creates a scheduler for job. The foreach sources of tasks without needs,
 * and every list, range and matrix, are opened now, so that a missing lines
 * file or a glob that matches nothing is reported before anything starts;
 * a lines file or glob of a task with needs is opened when those have
 * succeeded (it may be their output), and a failure then fails that task
 * (prun__sched_task_error). job must outlive the scheduler.
 */
int prun__sched_new(const struct prun_job *job,
    const struct prun_sched_opts *opts, struct prun_sched **out,
    struct prun_err *err);
void prun__sched_free(struct prun_sched *s);

/*
 * What to do at time now. START: *inst is to be started now and counts as
 * running until prun__sched_finish(). WAIT: *wake is the earliest time
 * something may become startable (INT64_MAX: only a finish or input can
 * change things); a task waiting for input has prun__sched_input_fd() >= 0.
 * DONE: nothing runs and nothing is left. A negative PRUN_E* means the
 * scheduler ran out of memory; a source that fails fails its task only.
 */
int prun__sched_next(struct prun_sched *s, int64_t now, struct prun_inst **inst,
    int64_t *wake, struct prun_err *err);

/* inst, started earlier, ended with outcome at time now. */
enum prun_verdict prun__sched_finish(struct prun_sched *s,
    struct prun_inst *inst, enum prun_outcome outcome, int64_t now);

/*
 * Stops starting instances (Ctrl-C, cancel): queued and unread instances
 * are counted as skipped; running ones are the caller's to stop.
 */
void prun__sched_stop(struct prun_sched *s);

/* Nonzero once halt: now has triggered: the caller stops running ones. */
int prun__sched_halt_now(const struct prun_sched *s);
/* Nonzero once halt (soon or now) has triggered. */
int prun__sched_halted(const struct prun_sched *s);
/*
 * The exit code (128+N for signal N) of the attempt about to be passed to
 * prun__sched_finish: a halt whose threshold is one instance exits with
 * it, as GNU parallel does.
 */
void prun__sched_note_exit(struct prun_sched *s, int code);
/*
 * GNU parallel's exit status for this job's --halt (see halt.c): fixed
 * when the halt triggered, else from the failures so far; -1 with halt
 * never.
 */
int prun__sched_halt_status(const struct prun_sched *s);

void prun__sched_stats(
    const struct prun_sched *s, struct prun__sched_stats *st);
/* Instances of task i in all, -1 if unknown. */
long long prun__sched_task_count(const struct prun_sched *s, size_t task);
/* Nonzero if task i was skipped because a task it needs failed. */
int prun__sched_task_skipped(const struct prun_sched *s, size_t task);

/*
 * A filter for --resume: called for each new instance before it is
 * created; nonzero means it already succeeded (in an earlier run) and is
 * counted as succeeded without being started.
 */
typedef int (*prun_sched_skip_fn)(
    void *ctx, size_t task, const struct prun_item *items, size_t n);
void prun__sched_set_skip(
    struct prun_sched *s, prun_sched_skip_fn fn, void *ctx);

void prun__inst_free(struct prun_inst *inst);

/*
 * The fd task's source waits on (readable or hung up is what it waits
 * for), or -1 if it waits on nothing. Valid until the next call into the
 * scheduler; the fd stays open until prun__sched_free().
 */
int prun__sched_input_fd(const struct prun_sched *s, size_t task);
/* The fd of prun__sched_input_fd(task) became readable or hung up. */
void prun__sched_input_ready(struct prun_sched *s, size_t task);
/* Why task's foreach source failed (it counts as failed), or NULL. */
const char *prun__sched_task_error(const struct prun_sched *s, size_t task);

#endif
