/* SPDX-License-Identifier: MIT */
#ifndef PRUN_WORKER_INT_H
#define PRUN_WORKER_INT_H
/*
 * What worker.c (the loop, leases, drain), worker_runs.c (the runs
 * served and the claims) and worker_end.c (an attempt's end: its record,
 * output and completion) share. Nothing else includes it.
 */
#include <signal.h>

#include "executor.h"
#include "output.h"
#include "segment.h"
#include "worker.h"
#include "wq.h"

struct wrun;

/* One claimed attempt. */
struct wattempt {
    struct prun__attempt a; /* first: the executor hands back &a */
    struct prun_inst inst;
    struct prun__wq_claim c;
    struct wrun *run; /* the run it was claimed from */
    char env1[48];
    int lost, released;
    struct wattempt *prev, *next;
};

/* A completion Redis did not take yet (an outage): sent again later. */
struct pending {
    struct wrun *run;
    struct prun__wq_claim c;
    char *record;
    struct prun_buf out, err; /* the instance's output */
    int ok;
    struct pending *next;
};

/*
 * A run being served (worker_runs.c): open from when it is first seen
 * announced until it has left the set (or was cancelled, or its queue is
 * gone) with nothing of it running or owed. Each has its own job, queue
 * handle, segments and local executor; the executors share the process's
 * children, reaped by one SIGCHLD path (prun__local_reap).
 */
struct wrun {
    char rid[128];
    char cwd[4096];    /* the run's directory: its children run there */
    struct prun_wq *q; /* NULL while Redis is away */
    struct prun_job *job;
    struct prun__executor *exec;
    struct prun_segset *segs; /* its file segments, loaded on this host */
    struct prun_output *out;  /* its children's output, captured to files */
    const char *extra[16];    /* the worker's extra env + the segments' */
    size_t nextra;
    size_t running; /* its attempts this worker holds */
    size_t npend;   /* its completions an outage held back */
    int64_t next_claim;
    int got_work; /* the last claim found something */
    int stopping; /* cancelled: its attempts were told to stop */
    int listed;   /* in the last list of announced runs */
    int gone;     /* its queue is gone: closed once idle */
    struct wrun *next;
};

struct worker {
    const struct prun_worker_opts *o;
    struct prun_worker_stats *st;
    struct prun_conn *conn;
    struct prun__exec_hooks hooks;
    char resdir[4096]; /* where children's output is captured (worker_out):
                          one directory per run */
    struct wrun *runs; /* the runs served */
    size_t nruns;
    struct wattempt *held; /* every run's, one list */
    size_t running;
    struct pending *pend;
    int epfd, sigfd;
    struct prun__watch sigw;
    char id[160], host[128];
    char env_url[400], env_pw[300];
    const char *extra[2];
    size_t nextra;
    char **bad; /* runs this host cannot serve (job file missing, ...) */
    size_t nbad;
    size_t rr;
    int64_t next_claim, next_renew, next_beat, next_connect, next_runs;
    int64_t down_since; /* 0: connected */
    int64_t busy_since; /* 0: Redis answers (not BUSY, LOADING, ...) */
    int draining, drained, fatal;
    struct prun_err fatal_err; /* the executor's (no guardian), if set */
    int have_fatal_err;
    int64_t drain_at;
    sigset_t oldmask;
};

/* A line for the worker's log (the CLI prints it), if it has one. */
void prun__worker_say(struct worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The connection failed: drop it and retry later (an outage starts). */
void prun__worker_conn_lost(struct worker *w, const struct prun_err *e);

static inline int prun__worker_is_conn_error(int rc)
{
    return rc == PRUN_EREDIS || rc == PRUN_ETIMEDOUT;
}

/*
 * A queue call (what: "completion of KEY", "claim", ...) for run r (NULL:
 * no run's) failed with rc and e (prun__wq_fault sorts it). A lost connection
 * starts an outage (prun__worker_conn_lost); a busy server is asked again
 * later, within the same --outage bound; any other error reply is reported at
 * once in Redis's words and ends the worker's part: no more claims, its
 * attempts handed back and stopped, exit non-zero. Returns PRUN_WQ_FAULT_*.
 */
int prun__worker_redis_fail(struct worker *w, const struct wrun *r,
    const char *what, int rc, const struct prun_err *e);
/* A queue call succeeded: a busy spell is over. */
void prun__worker_redis_ok(struct worker *w);

/*
 * The executor's "attempt ended" (ctx: the worker): the terminal record
 * and the output sent back, fenced; kept for later during an outage.
 */
void prun__worker_attempt_ended(void *ctx, struct prun__attempt *a, int status);
/* Sends the completions an outage held back, oldest first. */
void prun__worker_flush_pending(struct worker *w);

/*
 * w gives up on run rid (NULL: every run it serves): why (this host
 * cannot serve it), or with why NULL w's fatal error, goes on the run's
 * give-up stream, where the run reads it and says it (docs/work-queue.md).
 */
void prun__worker_gave_up(struct worker *w, const char *rid, const char *why);

/* ---- The runs served (worker_runs.c) ---- */

/*
 * Looks at the announced runs every so often (opening those this host
 * can serve, closing those that are over and idle), then claims from the
 * open ones round robin, never more than the free slots in all.
 */
void prun__worker_claim(struct worker *w, int64_t now);
/* Reads the state of each run with attempts here: a cancelled (or ended)
 * run's attempts are stopped, and end as cancelled; the others go on. */
void prun__worker_runs_check(struct worker *w);
/* The open runs' ids, comma-separated, into buf (cut with ",..."). */
void prun__worker_runs_list(const struct worker *w, char *buf, size_t n);
/* Closes every run (their executors stop what is left of theirs). */
void prun__worker_runs_free(struct worker *w);

#endif
