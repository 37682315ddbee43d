/* SPDX-License-Identifier: MIT */
#ifndef PRUN_SEGMENT_INT_H
#define PRUN_SEGMENT_INT_H
/*
 * Shared by the runner's side of segments: segment.c (the set of a run's
 * segments, what children inherit, the run directory, gc) and
 * segment_load.c (making each segment's memory). Nothing else includes it.
 */
#include "segment.h"
#include "segcache.h"

struct seg {
    const struct prun_segdef *def;
    int fd;       /* memfd; -1 for published or not loaded yet */
    int deferred; /* file missing at start: loaded by the first user */
    int used;     /* some task lists it */
    int huge;
    int mapped;    /* copy: false: fd is the file itself, not a memfd */
    int hostcache; /* a `file:` copy goes through the host cache */
    char cache[PRUN__SEGCACHE_NAME]; /* fd is this cache entry ("": not) */
    uint64_t size;
    char dtype[PRUN__DTYPE_MAX];
    char shape[PRUN_SEGMENT_MAX_DIMS * 21];
};

/*
 * Whether the kernel's shmem setting lets memfds get transparent huge
 * pages at all (shmem_enabled is neither "never" nor "deny").
 */
int prun__seg_thp_allowed(void);
/*
 * Loads g's `file:` segment into g->fd (a sealed memfd, or with `copy:
 * false` the file's own fd; with g->hostcache the host cache's entry for
 * its content, named in g->cache, else a memfd) with its size, dtype and
 * shape; clears g->deferred. Errors name the job file's line for a file that
 * cannot be opened or read.
 */
int prun__seg_load_file(
    const struct prun_job *job, struct seg *g, struct prun_err *err);
/* Makes g's `size:` segment: a zero-filled memfd sealed against resizes. */
int prun__seg_load_writable(struct seg *g, struct prun_err *err);

#endif
