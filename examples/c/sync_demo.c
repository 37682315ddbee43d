/* SPDX-License-Identifier: MIT */
/*
 * sync_demo: the synchronization API of libparallelrun from C. Run several
 * instances at once, e.g.
 *
 *   tasks:
 *     demo: {foreach: {range: [0, 4]}, run: [build/examples/sync_demo]}
 *
 * (with jobs >= 4, or the barriers never fill). Instance 0 queues one job
 * per instance; a barrier makes sure every instance sees the full queue;
 * each takes one job, counts it, and reports under a run-wide lock with
 * its fencing token. Build: cc sync_demo.c $(pkg-config --cflags --libs
 * --static parallelrun).
 */
#include <parallelrun.h>
#include <stdio.h>
#include <stdlib.h>

static int check(int rc, const struct prun_err *err, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "sync_demo: %s: %s\n", what, err->msg);
        exit(rc == PRUN_EINVAL ? 2 : 3);
    }
    return rc;
}

int main(void)
{
    const char *ix = getenv("PARALLELRUN_INDEX");
    const char *cnt = getenv("PARALLELRUN_COUNT");
    long index = ix ? atol(ix) : 0, count = cnt ? atol(cnt) : 1, i;
    struct prun_err err;
    struct prun_lock *lock;
    uint64_t token;
    long long done;
    char *job = NULL;

    if (index == 0) {
        for (i = 0; i < count; i++) {
            char buf[32];
            const char *v[1] = {buf};

            snprintf(buf, sizeof(buf), "job-%ld", i);
            check(prun_queue_push("jobs", v, 1, &err), &err, "queue push");
        }
    }
    /* count 0: every instance of this task (PARALLELRUN_COUNT). */
    check(prun_barrier_wait("queued", 0, 60000, &err), &err, "barrier");

    if (check(prun_queue_pop("jobs", 0, &job, &err), &err, "queue pop") == 0) {
        fprintf(stderr, "sync_demo: the queue was empty\n");
        return 1;
    }
    check(prun_counter_add("jobs-done", 1, &done, &err), &err, "counter");
    check(prun_progress(1, 1, &err), &err, "progress");

    /*
     * The token grows with every acquisition: a storage that remembers the
     * highest one it saw can reject a late write from an expired holder.
     */
    check(
        prun_lock_acquire("report", 10000, &lock, &token, &err), &err, "lock");
    printf("instance %ld took %s (%lld done so far), lock token %llu\n", index,
        job, done, (unsigned long long)token);
    fflush(stdout);
    check(prun_lock_release(lock, &err), &err, "unlock");
    free(job);

    check(prun_barrier_wait("finished", 0, 60000, &err), &err, "barrier");
    if (index == 0) {
        check(prun_counter_add("jobs-done", 0, &done, &err), &err, "counter");
        printf("all %lld jobs done\n", done);
    }
    return 0;
}
