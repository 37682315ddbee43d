/* SPDX-License-Identifier: MIT */
/*
 * pool_feed: pool mode as the run loop sees it. A pool task starts `jobs`
 * long-lived workers instead of one process per item: the scheduler is
 * given a shadow of the job in which that task iterates over worker
 * indices, while the task's real items are read here, a batch per loop
 * turn, and queued in Redis where the workers take them with
 * `parallelrun next` (coord_sync.c). Items an earlier run did (--resume)
 * are marked done instead of queued.
 *
 * It does not start the workers (the executor does) nor hand items out.
 */
#include "pool_feed.h"
#include "pool_wq.h"

#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define BATCH 2000

/* One pool task's items on their way to Redis. */
struct feed {
    struct prun__watch w; /* first: its source's fd, while waiting */
    struct prun__pool *p;
    int fd; /* registered, -1 none */
    int armed;
    int busy; /* epoll refused the fd: read it at once */
    struct prun_iter *it;
    int started, finished;
    unsigned long long next_index; /* items read */
    unsigned long long queued;     /* items queued (not resumed) */
};

struct prun__pool {
    const struct prun_job *job;
    struct prun_state *state;
    prun_sched_skip_fn skip;
    void *skip_ctx;
    const struct prun__exec_hooks *loop;
    struct prun_job shadow;
    struct prun_task *shadow_tasks;
    struct feed *feeds;
};

static void on_input(struct prun__watch *w, uint32_t events);

int prun__pool_new(const struct prun_job *job, unsigned jobs,
    struct prun_state *state, prun_sched_skip_fn skip, void *skip_ctx,
    const struct prun__exec_hooks *loop, struct prun__pool **out,
    const struct prun_job **shadow, struct prun_err *err)
{
    struct prun__pool *p;
    size_t t;
    int any = 0;

    *out = NULL;
    *shadow = job;
    for (t = 0; t < job->ntasks; t++)
        any |= job->tasks[t].pool;
    if (!any)
        return 0;
    if (state == NULL)
        return prun__err_set(err, PRUN_EINVAL,
            "%s: pool tasks need Redis, which is off (--redis off)", job->path);
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    p->job = job;
    p->state = state;
    p->skip = skip;
    p->skip_ctx = skip_ctx;
    p->loop = loop;
    p->shadow = *job;
    p->shadow_tasks = calloc(job->ntasks, sizeof(*p->shadow_tasks));
    p->feeds = calloc(job->ntasks, sizeof(*p->feeds));
    if (p->shadow_tasks == NULL || p->feeds == NULL) {
        prun__pool_free(p);
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    }
    for (t = 0; t < job->ntasks; t++) {
        struct prun_task *st = &p->shadow_tasks[t];

        p->feeds[t].w.cb = on_input;
        p->feeds[t].p = p;
        p->feeds[t].fd = -1;
        *st = job->tasks[t];
        if (!st->pool)
            continue;
        memset(&st->foreach, 0, sizeof(st->foreach));
        st->foreach.kind = PRUN_SRC_RANGE;
        st->foreach.pos = job->tasks[t].foreach.pos;
        st->foreach.from = 0;
        st->foreach.to = st->jobs ? st->jobs : jobs;
        st->foreach.step = 1;
        st->foreach.chunk = 1;
    }
    p->shadow.tasks = p->shadow_tasks;
    /* The items go to the run's work queue (docs/work-queue.md). */
    prun__pool_wq_create(state, job);
    *out = p;
    *shadow = &p->shadow;
    return 0;
}

void prun__pool_free(struct prun__pool *p)
{
    size_t t;

    if (p == NULL)
        return;
    for (t = 0; p->feeds && t < p->job->ntasks; t++) {
        if (p->feeds[t].fd >= 0)
            p->loop->unwatch(p->loop->ctx, p->feeds[t].fd);
        prun__iter_free(p->feeds[t].it);
    }
    free(p->feeds);
    free(p->shadow_tasks);
    free(p);
}

void prun__pool_start(struct prun__pool *p, size_t t)
{
    struct feed *f;
    struct prun_err e;

    if (p == NULL || !p->job->tasks[t].pool)
        return;
    f = &p->feeds[t];
    if (f->started)
        return;
    f->started = 1;
    if (prun__iter_open_flags(p->job, &p->job->tasks[t].foreach,
            PRUN_ITER_STRICT | PRUN_ITER_ASYNC, &f->it, &e) < 0) {
        p->loop->warn(p->loop->ctx, e.msg);
        f->finished = 1;
        prun__pool_wq_fed(p->state, p->job->tasks[t].name, f->queued);
    }
}

static void on_input(struct prun__watch *w, uint32_t events)
{
    struct feed *f = (struct feed *)w;

    (void)events;
    f->armed = 0;
    prun__iter_readable(f->it);
}

/* Waits (one readiness report) for f's source to have input. */
static void watch_input(struct prun__pool *p, struct feed *f, int fd)
{
    if (f->fd == fd && f->armed)
        return;
    if (f->fd >= 0 && f->fd != fd) {
        p->loop->unwatch(p->loop->ctx, f->fd);
        f->fd = -1;
    }
    if (p->loop->watch(p->loop->ctx, fd, EPOLLIN | EPOLLONESHOT, &f->w) == 0) {
        f->fd = fd;
        f->armed = 1;
        return;
    }
    /* epoll refuses what is always ready: read it on the next turn. */
    prun__iter_readable(f->it);
    f->busy = 1;
}

/* Queues up to BATCH items of task t; returns nonzero if more are left. */
static int feed_one(struct prun__pool *p, size_t t)
{
    struct feed *f = &p->feeds[t];
    const char *name = p->job->tasks[t].name;
    const struct prun_item *items;
    struct prun_err e;
    int batch, n = 0;

    for (batch = 0; batch < BATCH; batch++) {
        struct prun_buf v = {0};

        n = prun__iter_next(f->it, &items, &e);
        if (n == PRUN_ITER_AGAIN) {
            watch_input(p, f, prun__iter_fd(f->it));
            return f->busy;
        }
        if (n <= 0)
            break;
        prun__items_value(items, (size_t)n, &v);
        if (p->skip != NULL && p->skip(p->skip_ctx, t, items, (size_t)n)) {
            /* --resume: done in the earlier run; done in this one. */
            prun__state_done(p->state, name, v.data ? v.data : "");
            f->next_index++;
        } else {
            prun__pool_wq_push(p->state, &p->job->tasks[t], f->next_index++,
                v.data ? v.data : "");
            f->queued++;
        }
        prun__buf_free(&v);
    }
    if (n > 0)
        return 1;
    if (n < 0)
        p->loop->warn(p->loop->ctx, e.msg);
    prun__pool_wq_flush(p->state);
    prun__pool_wq_fed(p->state, name, f->queued);
    f->finished = 1;
    return 0;
}

/*
 * Back-pressure: while the state writer holds this many records Redis has
 * not acknowledged (the item batches among them up to 256 items each), no
 * more items are read. The loop wakes on the Redis socket as replies
 * come, so nothing spins, and the runner's memory stays flat however many
 * items the task has.
 */
#define UNACKED_MAX 8

int prun__pool_feed(struct prun__pool *p)
{
    size_t t;
    int more = 0, fed = 0;

    if (p != NULL && prun__state_unacked(p->state) >= UNACKED_MAX)
        return 0;
    for (t = 0; p != NULL && t < p->job->ntasks; t++) {
        p->feeds[t].busy = 0;
        if (p->feeds[t].started && !p->feeds[t].finished) {
            more |= feed_one(p, t);
            fed = 1;
        }
    }
    if (fed) {
        /* Workers may be waiting for these: send now, not at the
           recorder's next batched flush. */
        prun__pool_wq_flush(p->state);
        prun__state_pump(p->state);
    }
    return more;
}
