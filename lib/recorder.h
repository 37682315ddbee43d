/* SPDX-License-Identifier: MIT */
#ifndef PRUN_RECORDER_H
#define PRUN_RECORDER_H
/*
 * The recorder: every Redis write the run loop makes, batched and
 * pipelined through coord_state's writer, whose socket sits on the loop.
 */
#include <stdint.h>

#include "coord.h"
#include "executor.h"
#include "runner.h"

struct prun__recorder {
    struct prun_state *state; /* NULL: nothing is recorded */
    const struct prun_job *job;
    struct prun__watch w;
    const struct prun__exec_hooks *loop; /* watch/unwatch its socket */
    int fd;                              /* registered on the loop, -1 none */
    uint32_t events;
    int64_t next_tick;  /* heartbeat, running list, counts */
    int64_t next_flush; /* write queued records by then; 0: none queued */
    /* The loop's list of running attempts (pool items' timeouts act on
     * it when Redis answers), or NULL. */
    struct prun__attempt *const *running;
};

/* What the loop knows that the recorder writes down. */
struct prun__record_view {
    const struct prun_sched *sched;
    const struct prun_run_result *res;
    const struct prun__attempt *running; /* the loop's list */
};

void prun__recorder_init(struct prun__recorder *rc, struct prun_state *state,
    const struct prun_job *job, const struct prun__exec_hooks *loop);

/* Writes what has gathered when due, and keeps the socket's watch in step. */
void prun__recorder_sync(struct prun__recorder *rc, int64_t now);

/* The earliest time the recorder needs the loop (INT64_MAX: none). */
int64_t prun__recorder_deadline(const struct prun__recorder *rc);

/*
 * The heartbeat, when due: renews the run's liveness, lists attempts that
 * have run for a while, and writes the counts. Returns nonzero when
 * `parallelrun cancel` asked this run to stop.
 */
int prun__recorder_tick(
    struct prun__recorder *rc, int64_t now, const struct prun__record_view *v);

/* The counts, now (also at the end of the run). */
void prun__recorder_counts(
    struct prun__recorder *rc, const struct prun__record_view *v);

/* An attempt ended with verdict v; reason is "" or the failure's. */
void prun__recorder_end(struct prun__recorder *rc,
    const struct prun__attempt *a, enum prun_verdict v, unsigned attempt,
    const char *kind, int status, const char *reason);

/* An instance done in a resumed run counts as done in this one too. */
void prun__recorder_done(struct prun__recorder *rc, size_t task,
    const struct prun_item *items, size_t n);

/* The loop is over: late replies no longer reach it. */
void prun__recorder_fini(struct prun__recorder *rc);

#endif
