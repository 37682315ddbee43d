/* SPDX-License-Identifier: MIT */
#ifndef PRUN_SEGMENT_H
#define PRUN_SEGMENT_H

/*
 * Shared segments (README "Shared segments"), runner side: the memfds of a
 * run's `file:` and `size:` segments, the directory published segments live in,
 * what each child inherits, and the garbage collector for runs that died. The
 * child side (attach, publish) is in api_segment.c, declared in parallelrun.h.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "job.h"
#include "util.h"

/* The most of a .npy file read to find its header. */
#define PRUN__NPY_PEEK 65536

struct prun_segset;

/*
 * Loads job->segs for a run: each `file:` segment into one memfd, filled
 * once and then sealed (F_SEAL_WRITE|F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL);
 * each `size:` + `writable: true` segment into a zero-filled memfd of that
 * size, shared writable. hugepages: the segdef's value, else deflt; AUTO
 * asks for transparent huge pages where the kernel's shmem setting allows.
 * A file that does not exist yet is loaded when the first task listing it
 * starts, provided every such task has `needs` (an earlier task may create
 * it); otherwise it is an error here.
 *
 * Also creates the run's directory for published segments,
 * BASE/parallelrun-RUNID (BASE = $PARALLELRUN_SHM_BASE or /dev/shm), mode
 * 0700, with an `owner` file "PID STARTTIME HOSTNAME" for prun__segment_gc.
 *
 * Errors: PRUN_EINVAL "JOBFILE:LINE:COL: segment 'x': cannot open 'path':
 * reason" for a missing or unreadable file; PRUN_ESYS / PRUN_ENOMEM when
 * memory or /dev/shm fail. On success *out owns everything.
 */
int prun__segset_new(const struct prun_job *job, const char *run_id,
    enum prun_hugepages deflt, struct prun_segset **out, struct prun_err *err);

/*
 * Like prun__segset_new, for a queue worker: each `file:` segment that is
 * copied is the host cache's entry for the file's content (segcache.h),
 * attached if another worker or an earlier run made it, else made; a
 * private memfd where the cache cannot be used. prun__segset_free lets go
 * of the entries (the last user removes them).
 */
int prun__segset_new_host(const struct prun_job *job, const char *run_id,
    enum prun_hugepages deflt, struct prun_segset **out, struct prun_err *err);

/*
 * The environment every child of this run gets ("PARALLELRUN_SHM_DIR=...").
 * Returns the count; *env points into s.
 */
size_t prun__segset_env_all(
    const struct prun_segset *s, const char *const **env);

/*
 * What one child of task index `task` gets: fds to inherit at the same
 * numbers (give them to prun__spawn as keep_fds) and env strings to append
 * (PARALLELRUN_SEGMENT_<NAME>=/dev/fd/N, _SIZE, _DTYPE, _SHAPE, _WRITABLE,
 * _HUGEPAGES). Only segments the task lists are given. Published segments
 * are opened here from the run directory; one that is missing is
 * PRUN_ENOTFOUND "segment 'x' was not published (by a task this one
 * needs?)". Valid until prun__segset_child_done(), which must be called
 * once the child is spawned (or was not).
 */
struct prun_segchild {
    const int *fds;
    size_t nfds;
    const char *const *env;
    size_t nenv;
    void *priv;
};
int prun__segset_child(struct prun_segset *s, size_t task,
    struct prun_segchild *out, struct prun_err *err);
void prun__segset_child_done(struct prun_segset *s, struct prun_segchild *c);

/* Closes every memfd and removes the run directory with everything in it. */
void prun__segset_free(struct prun_segset *s);

/*
 * Removes BASE/parallelrun-* directories whose runner is dead (pid gone,
 * or its start time differs), and the entries of this user's host cache
 * of file segments that nobody holds (segcache.h); *removed (may be NULL)
 * counts them. Never touches live runs, other users' runs or other
 * hosts' runs.
 */
int prun__segment_gc(unsigned *removed, struct prun_err *err);

/* ---- Internal, shared with api_segment.c and cmd/segment.c ------------ */

/* $PARALLELRUN_SHM_BASE or /dev/shm. */
const char *prun__shm_base(void);

/* Like prun__segment_gc, calling cb (if not NULL) with each removed path. */
int prun__segment_gc_cb(void (*cb)(const char *path, void *arg), void *arg,
    unsigned *removed, struct prun_err *err);

/* [A-Za-z_][A-Za-z0-9_]{0,63} */
int prun__segment_name_ok(const char *name);

/*
 * Parses a .npy header at buf (len bytes available). Returns 0 with dtype
 * (numpy notation, "" for structured dtypes it cannot spell), shape and
 * *hdrlen (offset of the data) filled, or -1 if buf is not a .npy header.
 */
int prun__npy_parse(const void *buf, size_t len, char *dtype, size_t dtn,
    uint64_t *shape, size_t *ndim, size_t *hdrlen);

/* What NAME.meta beside a published segment says. */
#define PRUN__DTYPE_MAX 256

struct prun__segmeta {
    uint64_t size;
    char dtype[PRUN__DTYPE_MAX]; /* may be a structured descr, "" unknown */
    size_t ndim;
    uint64_t shape[PRUN_SEGMENT_MAX_DIMS];
};

/*
 * Reads DIR/NAME.meta. Returns 0, PRUN_ENOTFOUND when it does not exist,
 * PRUN_EINVAL when it is malformed, PRUN_ESYS otherwise.
 */
int prun__segmeta_read(const char *dir, const char *name,
    struct prun__segmeta *m, struct prun_err *err);

/* "A,B,C" into buf; "" for ndim 0. */
void prun__shape_fmt(const uint64_t *shape, size_t ndim, char *buf, size_t n);
/* "A,B,C" (or "(A, B)", "[A,B]") into shape; -1 if malformed. */
int prun__shape_parse(const char *s, uint64_t *shape, size_t *ndim);

/*
 * Publishes a segment in $PARALLELRUN_SHM_DIR from memory (data) or, when
 * data is NULL, from size bytes read from srcfd at its current offset.
 * See prun_segment_publish.
 */
int prun__segment_publish_src(const char *name, const void *data, int srcfd,
    size_t size, const char *dtype, const uint64_t *shape, size_t ndim,
    struct prun_err *err);

/*
 * Copies size bytes of in (from *off, advanced) to out's current offset,
 * in the kernel when it can (segment.c; also used to publish from a fd).
 */
int prun__segment_copy_fd(int in, off_t *off, int out, uint64_t size);

#endif
