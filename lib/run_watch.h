/* SPDX-License-Identifier: MIT */
#ifndef PRUN_RUN_WATCH_H
#define PRUN_RUN_WATCH_H
/*
 * The watch a distributed run keeps over the workers that could serve it
 * (docs/work-queue.md, "When no worker serves the run"): live workers
 * from their heartbeats, the reasons workers recorded when they gave up
 * on the run, the leases still held. It says what the user should know
 * and tells the remote executor when to give up waiting; it ends no
 * attempt itself. Part of the coord module, on the remote executor's
 * non-blocking connection.
 */
#include <stddef.h>
#include <stdint.h>

#include <async.h>

struct prun__wwatch {
    char rid[128], prefix[200], shown[300];
    int64_t
        wait_ms; /* no live worker able to serve this long fails; 0: never */
    void (*say)(void *ctx, const char *msg);
    void *ctx;
    int64_t next_check;
    int round;         /* a check's replies are due */
    char **ids;        /* the workers whose heartbeats it reads, in order */
    size_t nids, got;  /* ... and how many replies came */
    unsigned live;     /* this round: workers with a heartbeat */
    unsigned able;     /* ... that did not give up on this run */
    unsigned serving;  /* ... whose heartbeat names this run */
    int64_t max_lease; /* the longest lease of an entry still held */
    int64_t since;     /* instances outstanding since (0: none) */
    int64_t alone;     /* no live worker able to serve since (0: one is) */
    int served;        /* a worker took an instance of this run */
    int said_alone, said_busy;
    char last[48]; /* the give-up stream's last id read */
    char **quit;   /* workers that gave up on this run */
    size_t nquit;
    char reason[600]; /* the last give-up: "worker ID on HOST gave up: WHY" */
    int host_cause;   /* ... was this host cannot serve the run */
};

/*
 * Starts watching for run rid on the Redis shown as url (no password);
 * say gets the notices (may be NULL). wait_ms 0 waits for ever.
 */
void prun__wwatch_init(struct prun__wwatch *w, const char *rid, const char *url,
    int64_t wait_ms, void (*say)(void *, const char *), void *ctx);
void prun__wwatch_free(struct prun__wwatch *w);

/*
 * On every tick of the executor: with outstanding instances (n > 0) and a
 * usable connection (ac, else NULL), reads the workers' state now and
 * then; with none, the clock of the bound stops.
 */
void prun__wwatch_tick(
    struct prun__wwatch *w, redisAsyncContext *ac, size_t n, int64_t now);
/* When the watch next needs a tick (INT64_MAX: never). */
int64_t prun__wwatch_deadline(const struct prun__wwatch *w);
/* A worker ended an instance of this run: it was served. */
void prun__wwatch_served(struct prun__wwatch *w);

/*
 * Past the bound with no live worker able to serve the run (and no lease
 * still running): returns 1 with why (n bytes) the cause and *sys 1 for a
 * cause of the system (no worker, Redis: the run ends with why, and each
 * outstanding instance fails with the shorter brief) or 0 for one of the
 * job (no host can load it: each instance fails with why). Else 0.
 */
int prun__wwatch_expired(const struct prun__wwatch *w, int64_t now, char *why,
    char *brief, size_t n, int *sys);

#endif
