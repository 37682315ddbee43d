/* SPDX-License-Identifier: MIT */
#ifndef PRUN_COORD_SYNC_H
#define PRUN_COORD_SYNC_H

/*
 * Internal side of coord_sync.c for the CLI (cmd/child.c) and the unit
 * tests: what the public API in include/parallelrun.h does not expose.
 * The public functions are built on these.
 */

#include <stdint.h>

#include "util.h"

/* The lease of a run-wide lock, as in docs/redis-schema.md. */
#define PRUN_LOCK_LEASE_MS 10000

/*
 * Acquires lock name like prun_lock_acquire(), with a lease of lease_ms.
 * With renew_thread, a background thread (with its own Redis connection)
 * renews the lease every lease_ms/3 until prun_lock_release(); without it
 * the caller must call prun__lock_renew() at least that often. When the
 * lock stays held for timeout_ms, returns PRUN_ETIMEDOUT with a message
 * "lock 'NAME' is held (waited 5s)".
 */
int prun__lock_take(const char *name, int64_t timeout_ms, int64_t lease_ms,
    int renew_thread, struct prun_lock **out, uint64_t *token,
    struct prun_err *err);

/*
 * Extends the lease of l by its full length, over the process-wide
 * connection. Returns 0, PRUN_ELOCKED when the lock is no longer ours (the
 * lease ran out and someone else may hold it), or a Redis error.
 */
int prun__lock_renew(struct prun_lock *l, struct prun_err *err);

/* The lease l was taken with, in ms. */
int64_t prun__lock_lease_ms(const struct prun_lock *l);

/*
 * Closes the process-wide connection the API keeps (a no-op when none is
 * open). The next call opens a new one from the environment.
 */
void prun__sync_disconnect(void);

/*
 * Registers a published segment in the run's Redis keys (schema:
 * seg:NAME), when the process has a Redis to talk to; a no-op otherwise.
 */
int prun__segment_register(const char *name, const char *path, size_t size,
    const char *dtype, const char *shape, struct prun_err *err);

/*
 * Pool mode's next (coord_pool.c): ok 1 marks the current item done, 0
 * marks it failed (`parallelrun next --fail`); then takes the next item
 * as prun_next() does.
 */
int prun__next_mark(
    int ok, char **item, unsigned long long *index, struct prun_err *err);

#endif
