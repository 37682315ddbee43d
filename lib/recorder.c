/* SPDX-License-Identifier: MIT */
/*
 * recorder: what the run loop writes to Redis, and when.
 *
 * Records are queued in coord_state's writer and sent once enough have
 * gathered or the oldest has waited FLUSH_MS: every write wakes
 * redis-server on a core the children want, so batching keeps recording
 * off the spawn path, at the cost of status lagging by FLUSH_MS. The
 * heartbeat (TICK_MS) renews the run's liveness key, lists attempts that
 * have run for a while and writes absolute counts. The writer's socket
 * is one more watch on the loop; a slow Redis never stalls spawning.
 *
 * It records; it decides nothing about the run.
 */
#include "recorder.h"

#include "pool_wq.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define TICK_MS  500
#define FLUSH_MS 100

static void on_socket(struct prun__watch *w, uint32_t events)
{
    struct prun__recorder *rc =
        (struct prun__recorder *)((char *)w -
                                  offsetof(struct prun__recorder, w));

    if (rc->state != NULL)
        prun__state_io(rc->state,
            (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0,
            (events & EPOLLOUT) != 0);
}

void prun__recorder_init(struct prun__recorder *rc, struct prun_state *state,
    const struct prun_job *job, const struct prun__exec_hooks *loop)
{
    memset(rc, 0, sizeof(*rc));
    rc->state = state;
    rc->job = job;
    rc->loop = loop;
    rc->w.cb = on_socket;
    rc->fd = -1;
}

void prun__recorder_sync(struct prun__recorder *rc, int64_t now)
{
    uint32_t want;
    int fd;

    if (rc->state == NULL)
        return;
    if (prun__state_pending(rc->state) == 0) {
        rc->next_flush = 0;
    } else if (rc->next_flush == 0) {
        rc->next_flush = now + FLUSH_MS;
    }
    if (rc->next_flush != 0 &&
        (now >= rc->next_flush || prun__state_pending(rc->state) >= 256)) {
        prun__state_pump(rc->state);
        rc->next_flush = 0;
    }
    fd = prun__state_fd(rc->state);
    want = EPOLLIN | (prun__state_want_write(rc->state) ? EPOLLOUT : 0);
    if (fd != rc->fd) {
        /* A closed socket left the epoll set by itself. */
        rc->fd = fd;
        rc->events = 0;
        if (fd >= 0 && rc->loop->watch(rc->loop->ctx, fd, want, &rc->w) == 0)
            rc->events = want;
        return;
    }
    if (fd >= 0 && want != rc->events &&
        rc->loop->watch(rc->loop->ctx, fd, want, &rc->w) == 0)
        rc->events = want;
}

int64_t prun__recorder_deadline(const struct prun__recorder *rc)
{
    int64_t t = INT64_MAX;

    if (rc->state == NULL)
        return t;
    t = rc->next_tick;
    if (rc->next_flush != 0 && rc->next_flush < t)
        t = rc->next_flush;
    return t;
}

void prun__recorder_counts(
    struct prun__recorder *rc, const struct prun__record_view *v)
{
    const struct prun_job *job = rc->job;
    struct prun__sched_stats st;
    struct prun__state_counts c;
    const char **tj;
    size_t t;

    if (rc->state == NULL || v->res->tasks == NULL)
        return;
    prun__sched_stats(v->sched, &st);
    c.total = st.total;
    c.succeeded = st.succeeded;
    c.failed = st.failed;
    c.cancelled = st.cancelled;
    c.skipped = st.skipped;
    c.retried = st.retried;
    c.running = st.running;
    tj = calloc(job->ntasks * 2, sizeof(char *));
    if (tj == NULL)
        return;
    for (t = 0; t < job->ntasks; t++) {
        const struct prun_task_result *tr = &v->res->tasks[t];
        char *j = malloc(160);

        if (j != NULL)
            snprintf(j, 160,
                "{\"count\":%lld,\"succeeded\":%llu,\"failed\":%llu,"
                "\"cancelled\":%llu}",
                prun__sched_task_count(v->sched, t), tr->succeeded, tr->failed,
                tr->cancelled);
        tj[2 * t] = job->tasks[t].name;
        tj[2 * t + 1] = j ? j : "{}";
    }
    prun__state_counts(rc->state, &c, tj, job->ntasks);
    for (t = 0; t < job->ntasks; t++)
        if (strcmp(tj[2 * t + 1], "{}") != 0)
            free((char *)tj[2 * t + 1]);
    free(tj);
}

/*
 * Lists in Redis the attempts that have run for half a tick. Shorter ones
 * are not worth three round trips each: status shows what runs long
 * enough to be looked at, and the done set still records every success.
 */
static void record_running(
    struct prun__recorder *rc, int64_t now, const struct prun__attempt *list)
{
    const struct prun__attempt *a;

    for (a = list; a != NULL; a = a->next) {
        struct prun_buf item = {0};

        if (a->pid <= 0 || a->recorded || now - a->start_mono < TICK_MS / 2)
            continue;
        prun__items_value(a->inst->items, a->inst->nitems, &item);
        prun__state_inst_start(rc->state, a->task->name, a->inst->index,
            a->inst->attempt, a->pid, item.data ? item.data : "");
        prun__buf_free(&item);
        /* The loop's flag; the list is the loop's, written only here. */
        ((struct prun__attempt *)a)->recorded = 1;
    }
}

/* The recorder of the loop now running (late replies check it). */
static struct prun__recorder *active;

void prun__recorder_fini(struct prun__recorder *rc)
{
    if (active == rc)
        active = NULL;
}

/*
 * Redis failed these workers' items for their timeout: the workers stop
 * (SIGKILL to the group: the item is already failed) and are restarted
 * per the task's retries.
 */
static void on_timeouts(void *arg, const char *const *v, size_t n)
{
    struct prun__recorder *rc = arg;
    struct prun__attempt *a;
    size_t i;

    if (rc != active || rc->running == NULL)
        return;
    for (i = 0; i < n; i++)
        for (a = *rc->running; a != NULL; a = a->next) {
            char c[300];

            if (!a->task->pool || a->pid <= 0)
                continue;
            snprintf(c, sizeof(c), "%s:%llu.%u", a->task->name, a->inst->index,
                a->inst->attempt);
            if (strcmp(c, v[i]) != 0)
                continue;
            a->why = PRUN__WHY_TIMEOUT;
            kill(-(pid_t)a->pid, SIGKILL);
        }
}

static void pool_timeouts(
    struct prun__recorder *rc, const struct prun__attempt *list)
{
    struct prun__pool_tmo t[64];
    const struct prun__attempt *a;
    size_t n = 0;

    active = rc;
    for (a = list; a != NULL && n < 64; a = a->next) {
        if (!a->task->pool || a->pid <= 0 || a->task->timeout_ms <= 0)
            continue;
        t[n].slot.task = a->task->name;
        t[n].slot.worker = a->inst->index;
        t[n].slot.attempt = a->inst->attempt;
        t[n].timeout_ms = a->task->timeout_ms;
        n++;
    }
    prun__pool_wq_timeouts(rc->state, t, n, on_timeouts, rc);
}

/*
 * Live pool workers' items keep their leases (pool_wq.c): every running
 * attempt's, whether its process is here or on a queue worker (no pid
 * here: run --distributed); one that has claimed nothing has nothing to
 * renew.
 */
static void renew_pool(
    struct prun__recorder *rc, const struct prun__attempt *list)
{
    struct prun__pool_slot slots[64];
    const struct prun__attempt *a;
    size_t n = 0;

    for (a = list; a != NULL; a = a->next) {
        if (!a->task->pool)
            continue;
        slots[n].task = a->task->name;
        slots[n].worker = a->inst->index;
        slots[n].attempt = a->inst->attempt;
        if (++n == 64) {
            prun__pool_wq_renew(rc->state, slots, n);
            n = 0;
        }
    }
    prun__pool_wq_renew(rc->state, slots, n);
}

int prun__recorder_tick(
    struct prun__recorder *rc, int64_t now, const struct prun__record_view *v)
{
    if (rc->state == NULL || now < rc->next_tick)
        return 0;
    prun__state_tick(rc->state, now);
    prun__state_joblock_renew(rc->state, prun__boot_ms());
    record_running(rc, now, v->running);
    renew_pool(rc, v->running);
    pool_timeouts(rc, v->running);
    prun__recorder_counts(rc, v);
    /*
     * The first counts go out before the first child starts: a task that
     * asks `parallelrun status` about its own run finds the total there.
     */
    if (rc->next_tick == 0)
        prun__state_pump(rc->state);
    rc->next_tick = now + TICK_MS;
    return prun__state_cancel_requested(rc->state);
}

void prun__recorder_end(struct prun__recorder *rc,
    const struct prun__attempt *a, enum prun_verdict v, unsigned attempt,
    const char *kind, int status, const char *reason)
{
    const struct prun_inst *inst = a->inst;
    struct prun_state_end e;
    struct prun_buf item = {0};

    if (rc->state == NULL)
        return;
    prun__items_value(inst->items, inst->nitems, &item);
    memset(&e, 0, sizeof(e));
    e.task = a->task->name;
    e.index = inst->index;
    e.attempt = attempt;
    e.final = v != PRUN_V_RETRY;
    e.succeeded = v == PRUN_V_SUCCEEDED;
    e.was_running = a->recorded;
    e.item = item.data ? item.data : "";
    e.kind = kind;
    e.status = status;
    e.reason = reason;
    e.stderr_tail = a->cap ? prun__capture_err_tail(a->cap) : "";
    prun__state_inst_end(rc->state, &e);
    if (a->task->pool)
        prun__pool_wq_worker_end(
            rc->state, e.task, inst->index, attempt, v == PRUN_V_SUCCEEDED);
    prun__buf_free(&item);
}

void prun__recorder_done(struct prun__recorder *rc, size_t task,
    const struct prun_item *items, size_t n)
{
    struct prun_buf v = {0};

    if (rc->state == NULL)
        return;
    prun__items_value(items, n, &v);
    prun__state_done(
        rc->state, rc->job->tasks[task].name, v.data ? v.data : "");
    prun__buf_free(&v);
}
