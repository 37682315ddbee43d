/* SPDX-License-Identifier: MIT */
#ifndef PRUN_SEGCACHE_H
#define PRUN_SEGCACHE_H
/*
 * The host cache of read-only file segments (docs/work-queue.md
 * "Segments"): one copy per content per host, named by its SHA-256, in
 * BASE/parallelrun.cache.UID (BASE = $PARALLELRUN_SHM_BASE or /dev/shm),
 * shared by every queue worker of that user on the host and reused by
 * later runs with the same content.
 *
 * Lifetime: whoever uses an entry holds a shared flock on it (its fd, and
 * the children that inherit that fd) for as long as it is attached. The
 * last user to let go removes it (prun__segcache_put); an entry nobody
 * holds (its users were killed) is removed by the next get, put or sweep
 * on the host.
 */
#include <stdint.h>

#include "sha256.h"
#include "util.h"

/* Room for an entry's name: its hash, or its memo (segcache.c). */
#define PRUN__SEGCACHE_NAME 160

/*
 * Attaches the cache entry of size bytes of in (from offset 0): by the
 * memo of in's file if it has one, else by the SHA-256 of those bytes,
 * or makes it: copied from in while hashed again, so an entry always
 * holds the bytes its name says (a file that changes while it is copied
 * is PRUN_EINVAL, and nothing is left behind). On success *fdp is a
 * read-only fd (>= 3, close-on-exec) holding the entry's shared lock, and
 * name (PRUN__SEGCACHE_NAME bytes) the name it was attached by; give both
 * back to prun__segcache_put. Errors: PRUN_ESYS (the cache directory
 * cannot be made or is not this user's, shm is full, ...), PRUN_ENOMEM.
 */
int prun__segcache_get(
    int in, uint64_t size, int *fdp, char *name, struct prun_err *err);

/*
 * Lets go of an entry got from prun__segcache_get: closes fd and removes
 * the entry (and the empty cache directory) if no one else holds it.
 */
void prun__segcache_put(int fd, const char *name);

/*
 * Removes the entries of this user's host cache that nobody holds, and
 * temporary files left by a copy that was killed, calling cb (if not
 * NULL) with each removed path; *removed (may be NULL) counts them.
 * prun__segment_gc does it too.
 */
int prun__segcache_sweep(void (*cb)(const char *path, void *arg), void *arg,
    unsigned *removed, struct prun_err *err);

#endif
