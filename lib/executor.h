/* SPDX-License-Identifier: MIT */
#ifndef PRUN_EXECUTOR_H
#define PRUN_EXECUTOR_H
/*
 * The executor seam (docs/architecture.md, "Executor seam").
 *
 * The run loop (runner.c) owns the scheduler, the result, the recorder
 * (every Redis write) and the output; an executor only runs attempts. The
 * loop says "start this attempt" and the executor answers, once per
 * attempt, "attempt ended" with a wait status. Between the two the
 * executor feeds the attempt's captured output, enforces its timeout and
 * stops it on request. The local executor (exec_local.c) runs children
 * on this host; a remote executor (workers taking attempts from Redis)
 * implements the same operations.
 *
 * Everything happens on the loop's thread. An executor that needs to
 * watch fds registers them on the loop's epoll set with a prun__watch,
 * whose callback the loop calls when the fd is ready.
 */
#include <stdint.h>
#include <sys/types.h>

#include "job.h"
#include "output.h"
#include "sched.h"

/* An fd on the loop's epoll set, and what to call when it is ready. */
struct prun__watch {
    void (*cb)(struct prun__watch *w, uint32_t events);
};

/* Why the runner stopped an attempt, if it did. */
enum prun__why {
    PRUN__WHY_NONE,
    PRUN__WHY_TIMEOUT,
    PRUN__WHY_CANCEL,
};

/* One attempt, from "start" to "ended". The loop allocates and frees it. */
struct prun__attempt {
    struct prun_inst *inst; /* the scheduler's instance */
    const struct prun_task *task;
    struct prun_ctx ctx;      /* what placeholders expand to */
    struct prun_capture *cap; /* where its output goes */
    const char *env1;         /* one more "NAME=VALUE" for it, or NULL */
    int64_t start_mono, start_wall;
    long pid;                          /* executor's: > 0 once known, else -1 */
    enum prun__why why;                /* executor's: set when it stops it */
    char exec_err[256];                /* executor's: why it could not start */
    int recorded;                      /* loop's: listed in Redis as running */
    struct prun__attempt *prev, *next; /* loop's list of running ones */
};

/* What an executor calls back; ctx is the loop's. */
struct prun__exec_hooks {
    void *ctx;
    /* The attempt ended: status is its wait status, or -1 when no process
     * ran (a->exec_err says why). The executor no longer refers to a. */
    void (*ended)(void *ctx, struct prun__attempt *a, int status);
    /* Optional: a's context is complete (its slot chosen) and its process
     * is about to start; the output's tag is made from it here. */
    void (*starting)(void *ctx, struct prun__attempt *a);
    /* Registers or removes an fd on the loop (events: EPOLLIN, ...). */
    int (*watch)(void *ctx, int fd, uint32_t events, struct prun__watch *w);
    void (*unwatch)(void *ctx, int fd);
    /* Something that went wrong but is not an attempt's failure (a
     * results file that cannot be written): the run ends with status 3. */
    void (*warn)(void *ctx, const char *msg);
    /* Something the user should hear at once, and no failure. */
    void (*say)(void *ctx, const char *msg);
    /* The run cannot go on (no guardian): stop everything, fail with e. */
    void (*fatal)(void *ctx, const struct prun_err *e);
};

struct prun__executor;

struct prun__executor_ops {
    /* Attempts it can take now. */
    size_t (*capacity)(const struct prun__executor *x);
    /* Takes a: its end is always reported through hooks->ended, even for
     * an attempt that could not be started at all. */
    void (*start)(struct prun__executor *x, struct prun__attempt *a);
    /* Stops every running attempt: gently (SIGTERM, then SIGKILL after
     * the task's kill_grace) or, with hard, at once. */
    void (*stop_all)(struct prun__executor *x, int hard);
    /* A signal the loop received that concerns executors (SIGCHLD). */
    void (*on_signal)(struct prun__executor *x, int signo);
    /* The earliest time it needs tick() (INT64_MAX: none). */
    int64_t (*next_deadline)(const struct prun__executor *x);
    /* Enforces deadlines due at now. */
    void (*tick)(struct prun__executor *x, int64_t now);
    /* The run is over: nothing it started may outlive this call. */
    void (*shutdown)(struct prun__executor *x, int hurry);
    void (*free)(struct prun__executor *x);
};

struct prun__executor {
    const struct prun__executor_ops *ops;
    struct prun__exec_hooks hooks;
};

#endif
