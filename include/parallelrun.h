/* SPDX-License-Identifier: MIT */
#ifndef PARALLELRUN_H
#define PARALLELRUN_H

/*
 * The child side of parallelrun: what a program started by `parallelrun run`
 * can do from C. Every call reads the PARALLELRUN_* environment the runner
 * set (run id, task, index, count, Redis address, segments). Link with
 * `pkg-config --cflags --libs parallelrun`.
 *
 * Every function returns 0 (or a documented positive value) on success and
 * a negative PRUN_E* code on failure with err filled; err may be NULL.
 * No function prints or exits. The library keeps one Redis connection per
 * process, opened on first use; it is not thread-safe except where noted.
 */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * PRUN_API marks the functions libparallelrun.so exports. The library is
 * built with -fvisibility=hidden, so everything else in it stays internal.
 */
#if defined(__GNUC__) && __GNUC__ >= 4
#define PRUN_API __attribute__((visibility("default")))
#else
#define PRUN_API
#endif

enum {
    PRUN_OK = 0,
    PRUN_EINVAL = -1,  /* bad input: job file, config, usage, arguments */
    PRUN_ESYS = -2,    /* a system call failed */
    PRUN_ENOMEM = -3,  /* out of memory */
    PRUN_EREDIS = -4,  /* Redis unreachable or misbehaving */
    PRUN_ELOCKED = -5, /* a lock is held elsewhere */
    PRUN_ETIMEDOUT = -6,
    PRUN_ENOTFOUND = -7,
};

/* What went wrong: code (PRUN_E*), the errno behind it, and a message. */
struct prun_err {
    int code;
    int sys_errno;
    char msg[256];
};

/* ---- Shared segments ---------------------------------------------------- */

#define PRUN_SEGMENT_MAX_DIMS 16

/*
 * An attached segment: data is mapped shared (read-only unless the segment
 * is writable). dtype is numpy notation ("<f4", "float32") or "" when not
 * known; shape has ndim entries.
 */
struct prun_segment {
    char name[64];
    void *data;
    size_t size;
    int writable;
    int fd;
    char dtype[32];
    size_t ndim;
    uint64_t shape[PRUN_SEGMENT_MAX_DIMS];
};

/*
 * Maps the segment called name: one the runner attached to this task
 * (PARALLELRUN_SEGMENT_<NAME>) or one published earlier in this run.
 * For a .npy file, data points at the whole file, header included.
 */
PRUN_API int prun_segment_attach(
    const char *name, struct prun_segment *seg, struct prun_err *err);
/* Unmaps seg and closes its fd. */
PRUN_API int prun_segment_detach(struct prun_segment *seg);
/*
 * Publishes size bytes at data as a named segment of this run, with
 * optional dtype (NULL) and shape (ndim 0). Space is reserved before any
 * byte is copied, so a full /dev/shm is PRUN_ESYS ("No space left on
 * device"), never SIGBUS. The runner removes it when the run ends.
 */
PRUN_API int prun_segment_publish(const char *name, const void *data,
    size_t size, const char *dtype, const uint64_t *shape, size_t ndim,
    struct prun_err *err);

/* ---- Synchronization through Redis -------------------------------------- */

/*
 * Waits until count processes of this run have called it with the same
 * name (count 0: PARALLELRUN_COUNT, the task's instance count). Reusable:
 * the next count callers form the next generation. timeout_ms < 0 waits
 * forever; PRUN_ETIMEDOUT otherwise.
 */
PRUN_API int prun_barrier_wait(
    const char *name, long count, int64_t timeout_ms, struct prun_err *err);

struct prun_lock;
/*
 * Acquires the run-wide lock name, waiting up to timeout_ms (< 0: forever;
 * PRUN_ETIMEDOUT). *token is its fencing token: strictly greater than that
 * of every earlier holder. A background thread renews the lease while it
 * is held; if the process dies the lease runs out and the lock is free.
 */
PRUN_API int prun_lock_acquire(const char *name, int64_t timeout_ms,
    struct prun_lock **out, uint64_t *token, struct prun_err *err);
/* Releases and frees l (NULL is a no-op). */
PRUN_API int prun_lock_release(struct prun_lock *l, struct prun_err *err);

/* Adds delta to the run-wide counter name; *value gets the new value. */
PRUN_API int prun_counter_add(
    const char *name, long long delta, long long *value, struct prun_err *err);

/* Appends n values to the run-wide queue name. */
PRUN_API int prun_queue_push(const char *name, const char *const *values,
    size_t n, struct prun_err *err);
/*
 * Takes the oldest value of queue name into *value (malloc'd; free it).
 * Returns 1 with a value, 0 when the queue stayed empty for timeout_ms
 * (0: do not wait; < 0: wait forever).
 */
PRUN_API int prun_queue_pop(
    const char *name, int64_t timeout_ms, char **value, struct prun_err *err);

/* Reports this instance's progress (total < 0: unknown), shown by status. */
PRUN_API int prun_progress(
    unsigned long long done, long long total, struct prun_err *err);

/*
 * Pool mode (a task with pool: true): takes the next item into *item
 * (malloc'd; free it) and its index into *index. Taking the next item marks
 * the previous one done. Returns 1 with an item, 0 when none is left.
 */
PRUN_API int prun_next(
    char **item, unsigned long long *index, struct prun_err *err);

#ifdef __cplusplus
}
#endif

#endif
