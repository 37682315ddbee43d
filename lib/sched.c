/* SPDX-License-Identifier: MIT */
/*
 * sched: decides which task instance starts next and what a finished one
 * means. It walks the tasks round-robin in file order, honours `needs`, the
 * global and per-task caps and start rates, requeues failed attempts with
 * exponential backoff and jitter, and halts or stops on request. It is pure
 * logic over a clock the caller passes in: it does not fork, sleep, read the
 * clock or print. Its memory is proportional to the instances running and
 * waiting for a retry, never to the size of a task: new instances are pulled
 * from the foreach iterators one at a time, when they are about to start.
 */
#include "sched.h"

#include "halt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Retry delays grow exponentially, but never beyond this. */
#define MAX_RETRY_DELAY_MS (3600 * 1000.0)

struct task_state {
    const struct prun_task *task;
    struct prun_iter *it;
    long long count;               /* instances, -1 while unknown */
    unsigned long long next_index; /* instances taken from the iterator */
    int exhausted;                 /* nothing more to take from it */
    int done;                      /* finished: nothing runs or waits */
    int bad;                       /* an instance failed or was cancelled */
    int skipped;                   /* a task it needs failed */
    int opened;                    /* its source was opened (or failed to) */
    int waiting;                   /* its source waits for input */
    char *srcerr;                  /* why its source failed, or NULL */
    unsigned running;
    struct prun_inst *retries; /* sorted by ready_at */
    unsigned long long nretries;
    int rate_started;          /* rate_base is meaningful */
    int64_t rate_base;         /* when the rate schedule (re)started */
    unsigned long long rate_k; /* starts since rate_base */
};

struct prun_sched {
    const struct prun_job *job;
    unsigned jobs;
    uint64_t rng;
    size_t ntasks;
    struct task_state *tasks;
    size_t rr; /* the task to look at first, for round-robin */
    int halted, halt_now, stopped;
    unsigned long long final_failures;
    int last_exit;   /* prun__sched_note_exit's */
    int halt_status; /* parallel's exit status once halted, else -1 */
    struct prun__sched_stats st;
    prun_sched_skip_fn skip;
    void *skip_ctx;
};

/* xorshift64*: small, fast and reproducible from opts->seed. */
static uint64_t rng_next(struct prun_sched *s)
{
    uint64_t x = s->rng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* A factor in [0.8, 1.2). */
static double jitter(struct prun_sched *s)
{
    return 0.8 + 0.4 * (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

/*
 * Counts the instances a task will never take from its iterator as skipped
 * and stops taking any. With an unknown count there is nothing to add.
 */
static void drop_unread(struct prun_sched *s, struct task_state *t)
{
    if (t->exhausted)
        return;
    if (t->count >= 0 && (unsigned long long)t->count > t->next_index)
        s->st.skipped += (unsigned long long)t->count - t->next_index;
    t->exhausted = 1;
}

static void drop_retries(struct prun_sched *s, struct task_state *t)
{
    struct prun_inst *inst, *next;

    for (inst = t->retries; inst != NULL; inst = next) {
        next = inst->next;
        prun__inst_free(inst);
        s->st.skipped++;
    }
    t->retries = NULL;
    t->nretries = 0;
}

/*
 * Brings task states up to date after something changed: a task whose
 * needs failed (or were skipped) is skipped, transitively; a task whose
 * needs all succeeded and that has nothing left is done. Tasks are few, so
 * repeating the pass until nothing changes is cheap.
 */
static void settle(struct prun_sched *s)
{
    int changed;
    size_t i, k;

    do {
        changed = 0;
        for (i = 0; i < s->ntasks; i++) {
            struct task_state *t = &s->tasks[i];
            int needs_ok = 1, needs_bad = 0;

            if (t->done || t->skipped)
                continue;
            for (k = 0; k < t->task->nneeds; k++) {
                const struct task_state *n = &s->tasks[t->task->needs[k]];

                if (n->bad || n->skipped)
                    needs_bad = 1;
                else if (!n->done)
                    needs_ok = 0;
            }
            if (needs_bad) {
                /*
                 * It cannot have started anything: that needs every task
                 * it depends on done without failures, and a done task
                 * never fails again.
                 */
                t->skipped = 1;
                drop_unread(s, t);
                drop_retries(s, t);
                changed = 1;
            } else if (needs_ok && t->exhausted && t->running == 0 &&
                       t->retries == NULL) {
                t->done = 1;
                changed = 1;
            }
        }
    } while (changed);
}

/*
 * Opens task t's source. Tasks without needs, and sources no task can
 * change (lists, ranges, matrices), are opened when the scheduler is made;
 * a lines file or glob of a task with needs when those have succeeded, so
 * that it sees what they made.
 */
static int open_source(
    struct prun_sched *s, struct task_state *t, struct prun_err *err)
{
    int rc;

    t->opened = 1;
    rc = prun__iter_open_flags(s->job, &t->task->foreach,
        PRUN_ITER_STRICT | PRUN_ITER_ASYNC, &t->it, err);
    if (rc < 0)
        return rc;
    t->count = prun__iter_count(t->it);
    if (t->count == 0)
        t->exhausted = 1;
    return 0;
}

static void check_halt(struct prun_sched *s);

/*
 * Task t's source could not be opened or read: the task fails (what it
 * started runs on), what it has not read is never started, and the tasks
 * that need it are skipped. Only running out of memory is returned.
 */
static int source_failed(
    struct prun_sched *s, struct task_state *t, const struct prun_err *e)
{
    if (e->code == PRUN_ENOMEM)
        return PRUN_ENOMEM;
    free(t->srcerr);
    t->srcerr = strdup(e->msg);
    if (t->srcerr == NULL)
        return PRUN_ENOMEM;
    t->bad = 1;
    t->waiting = 0;
    drop_unread(s, t);
    if (t->count < 0)
        t->count = (long long)t->next_index;
    s->final_failures++;
    s->last_exit = 1;
    check_halt(s);
    settle(s);
    return 0;
}

/* Nonzero if some live task waits for input on its source. */
static int any_waiting(const struct prun_sched *s)
{
    size_t i;

    for (i = 0; i < s->ntasks; i++)
        if (s->tasks[i].waiting && !s->tasks[i].done && !s->tasks[i].skipped)
            return 1;
    return 0;
}

static int task_ready(const struct prun_sched *s, const struct task_state *t)
{
    size_t k;

    if (t->done || t->skipped)
        return 0;
    for (k = 0; k < t->task->nneeds; k++) {
        const struct task_state *n = &s->tasks[t->task->needs[k]];

        if (!n->done || n->bad)
            return 0;
    }
    return 1;
}

int prun__sched_new(const struct prun_job *job,
    const struct prun_sched_opts *opts, struct prun_sched **out,
    struct prun_err *err)
{
    struct prun_sched *s;
    uint64_t z;
    size_t i;
    int rc = 0;

    if (opts->jobs < 1)
        return prun__err_set(err, PRUN_EINVAL, "jobs must be at least 1");
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    s->job = job;
    s->jobs = opts->jobs;
    s->halt_status = -1;
    /*
     * One splitmix64 step spreads the seed's bits, and keeps the xorshift
     * state nonzero (a zero state would stay zero forever).
     */
    z = opts->seed + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    s->rng = z ? z : 0x2545F4914F6CDD1DULL;
    s->ntasks = job->ntasks;
    s->tasks = calloc(job->ntasks ? job->ntasks : 1, sizeof(*s->tasks));
    if (s->tasks == NULL) {
        rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
        goto fail;
    }
    for (i = 0; i < job->ntasks; i++) {
        struct task_state *t = &s->tasks[i];

        t->task = &job->tasks[i];
        t->count = -1;
        if (prun__task_source_deferred(t->task))
            continue;
        rc = open_source(s, t, err);
        if (rc < 0)
            goto fail;
    }
    settle(s);
    *out = s;
    return 0;
fail:
    prun__sched_free(s);
    return rc;
}

void prun__sched_free(struct prun_sched *s)
{
    size_t i;

    if (s == NULL)
        return;
    for (i = 0; i < s->ntasks; i++) {
        struct prun_inst *inst, *next;

        for (inst = s->tasks[i].retries; inst != NULL; inst = next) {
            next = inst->next;
            prun__inst_free(inst);
        }
        prun__iter_free(s->tasks[i].it);
        free(s->tasks[i].srcerr);
    }
    free(s->tasks);
    free(s);
}

void prun__sched_set_skip(
    struct prun_sched *s, prun_sched_skip_fn fn, void *ctx)
{
    s->skip = fn;
    s->skip_ctx = ctx;
}

void prun__inst_free(struct prun_inst *inst)
{
    if (inst == NULL)
        return;
    free(inst->items);
    free(inst);
}

/* Stops starting anything: queued retries and unread items are skipped. */
static void drain(struct prun_sched *s)
{
    size_t i;

    for (i = 0; i < s->ntasks; i++) {
        struct task_state *t = &s->tasks[i];

        if (t->skipped)
            continue;
        drop_unread(s, t);
        drop_retries(s, t);
    }
}

/*
 * The earliest time the next start of a rate-limited task may happen: the
 * k-th slot after the schedule's base. Computing it from k rather than
 * adding up intervals keeps the fractional part exact, so that 30/s gives
 * exactly 30 starts a second even though times are whole milliseconds.
 */
static int64_t rate_slot(const struct task_state *t)
{
    double ms = (double)t->rate_k * 1000.0 / t->task->rate;

    return t->rate_base + (int64_t)ceil(ms - 1e-6);
}

static void start(
    struct prun_sched *s, size_t ti, struct prun_inst *inst, int64_t now)
{
    struct task_state *t = &s->tasks[ti];

    inst->next = NULL;
    t->running++;
    s->st.running++;
    s->st.started++;
    s->rr = (ti + 1) % s->ntasks;
    if (t->task->rate > 0) {
        /*
         * A start later than its slot (the caps held it back) restarts
         * the schedule from now: starts stay an interval apart and nothing
         * bursts to catch up.
         */
        if (!t->rate_started || now > rate_slot(t)) {
            t->rate_base = now;
            t->rate_k = 0;
        }
        t->rate_k++;
        t->rate_started = 1;
    }
}

/*
 * Takes the next instance of task ti from its iterator. Returns 1 with *out
 * set, 0 when the task has no more, 2 when its source waits for input, or a
 * negative PRUN_E*.
 */
static int take_new(struct prun_sched *s, size_t ti, struct prun_inst **out,
    struct prun_err *err)
{
    struct task_state *t = &s->tasks[ti];
    const struct prun_item *items;
    struct prun_inst *inst;
    int n;

    for (;;) {
        n = prun__iter_next(t->it, &items, err);
        if (n == PRUN_ITER_AGAIN) {
            t->waiting = 1;
            return 2;
        }
        if (n <= 0 || s->skip == NULL ||
            !s->skip(s->skip_ctx, ti, items, (size_t)n))
            break;
        /* Done in the run being resumed: it counts, it does not run. */
        t->next_index++;
        s->st.succeeded++;
        s->st.resumed++;
        if (t->count >= 0 && t->next_index >= (unsigned long long)t->count) {
            t->exhausted = 1;
            return 0;
        }
    }
    if (n < 0)
        return n;
    if (n == 0) {
        /*
         * Now the count is known; a lines file that shrank since it was
         * counted ends early, and the count follows what really ran.
         */
        t->count = (long long)t->next_index;
        t->exhausted = 1;
        return 0;
    }
    inst = calloc(1, sizeof(*inst));
    if (inst == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    inst->items = prun__items_dup(items, (size_t)n);
    if (inst->items == NULL) {
        free(inst);
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    }
    inst->task = ti;
    inst->index = t->next_index++;
    inst->attempt = 1;
    inst->nitems = (size_t)n;
    if (t->count >= 0 && t->next_index >= (unsigned long long)t->count)
        t->exhausted = 1;
    *out = inst;
    return 1;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* What one task's turn in prun__sched_next came to. */
enum turn {
    TURN_PASS,   /* nothing from this task now: the next task's turn */
    TURN_START,  /* an instance to start */
    TURN_RESCAN, /* tasks may have become ready: look at all of them again */
};

/*
 * A task's first turn opens its source. That may end the task at once (its
 * source failed, or is empty and allowed to be), which settles it and may
 * make its dependents ready: TURN_RESCAN. Returns TURN_PASS when the task
 * goes on, or a negative PRUN_E* with e filled.
 */
static int open_task(
    struct prun_sched *s, struct task_state *t, struct prun_err *e)
{
    int rc = open_source(s, t, e);

    if (rc < 0 && (rc = source_failed(s, t, e)) < 0)
        return rc;
    if (t->exhausted) {
        settle(s);
        return TURN_RESCAN;
    }
    return TURN_PASS;
}

/*
 * Whether task t may start something at now, under its cap and its rate.
 * Returns 1 when a retry is due, 0 when a new instance may be taken, -1
 * when nothing may start; *when is lowered to the time a pending retry or
 * the rate's next slot changes that.
 */
static int may_start(const struct task_state *t, int64_t now, int64_t *when)
{
    int due;

    if (t->waiting)
        return -1;
    if (t->task->jobs > 0 && t->running >= t->task->jobs)
        return -1;
    due = t->retries != NULL && t->retries->ready_at <= now;
    if (!due && t->retries != NULL)
        *when = min64(*when, t->retries->ready_at);
    if (!due && t->exhausted)
        return -1;
    if (t->task->rate > 0 && t->rate_started && now < rate_slot(t)) {
        *when = min64(*when, rate_slot(t));
        return -1;
    }
    return due;
}

/*
 * Task ti's next instance: its due retry, or a new one from its source.
 * Returns TURN_START with *got set; TURN_PASS when the source waits for
 * input; TURN_RESCAN when the source failed (the task fails with it) or
 * ran out, either of which may end the task and so make its dependents
 * ready or skipped; or a negative PRUN_E* with e filled.
 */
static int take_instance(struct prun_sched *s, size_t ti, int due,
    struct prun_inst **got, struct prun_err *e)
{
    struct task_state *t = &s->tasks[ti];
    int rc;

    if (due) {
        *got = t->retries;
        t->retries = (*got)->next;
        t->nretries--;
        return TURN_START;
    }
    rc = take_new(s, ti, got, e);
    if (rc == 2)
        return TURN_PASS;
    if (rc < 0)
        return (rc = source_failed(s, t, e)) < 0 ? rc : TURN_RESCAN;
    if (rc == 0) {
        settle(s);
        return TURN_RESCAN;
    }
    return TURN_START;
}

/*
 * Nothing may start now: either nothing ever will (nothing runs and no
 * timer is pending), or the caller waits until *wake or an exit.
 */
static int wait_or_done(struct prun_sched *s, int64_t when, int64_t *wake)
{
    if (s->st.running == 0 &&
        (s->halted || s->stopped || (when == INT64_MAX && !any_waiting(s)))) {
        /*
         * Nothing runs and no timer is pending, so nothing can change any
         * more. Whatever has not run by now never will.
         */
        drain(s);
        return PRUN_NEXT_DONE;
    }
    *wake = s->halted || s->stopped ? INT64_MAX : when;
    return PRUN_NEXT_WAIT;
}

int prun__sched_next(struct prun_sched *s, int64_t now, struct prun_inst **inst,
    int64_t *wake, struct prun_err *err)
{
    int64_t when = INT64_MAX;
    struct prun_err e;
    size_t i;
    int rc;

again:
    if (s->halted || s->stopped || s->st.running >= s->jobs)
        return wait_or_done(s, when, wake);
    for (i = 0; i < s->ntasks; i++) {
        size_t ti = (s->rr + i) % s->ntasks;
        struct task_state *t = &s->tasks[ti];
        struct prun_inst *got = NULL;
        int due;

        if (!task_ready(s, t))
            continue;
        if (!t->opened && (rc = open_task(s, t, &e)) != TURN_PASS) {
            if (rc < 0)
                goto fail;
            when = INT64_MAX;
            goto again;
        }
        if ((due = may_start(t, now, &when)) < 0)
            continue;
        rc = take_instance(s, ti, due, &got, &e);
        if (rc < 0)
            goto fail;
        if (rc == TURN_PASS)
            continue;
        if (rc == TURN_RESCAN) {
            when = INT64_MAX;
            goto again;
        }
        start(s, ti, got, now);
        *inst = got;
        return PRUN_NEXT_START;
    }
    return wait_or_done(s, when, wake);
fail:
    if (err != NULL)
        *err = e;
    return rc;
}

static long long total_count(const struct prun_sched *s)
{
    long long total = 0;
    size_t i;

    for (i = 0; i < s->ntasks; i++) {
        if (s->tasks[i].count < 0)
            return -1;
        total += s->tasks[i].count;
    }
    return total;
}

/* parallel's ceil(failed / of * 100). */
static int pct_of(unsigned long long failed, unsigned long long of)
{
    return of == 0 ? 0 : (int)((failed * 100 + of - 1) / of);
}

/*
 * After a final success or failure: does the job's halt condition hold
 * now? If so, nothing more starts (and with now, the caller stops what
 * runs), and parallel's exit status is fixed as parallel fixes it then.
 */
static void check_halt(struct prun_sched *s)
{
    const struct prun_job *j = s->job;
    unsigned long long ok = s->st.succeeded - s->st.resumed;
    unsigned long long bad = s->final_failures, n;
    long long total = total_count(s);
    int one;

    if (s->halted)
        return;
    n = j->halt_on == PRUN_HALT_ON_FAIL      ? bad
        : j->halt_on == PRUN_HALT_ON_SUCCESS ? ok
                                             : ok + bad;
    if (!prun__halt_reached(j, n, total, &one))
        return;
    if (j->halt_on == PRUN_HALT_ON_SUCCESS)
        s->halt_status = 0;
    else if (one)
        s->halt_status = s->last_exit;
    else if (j->halt_pct > 0)
        s->halt_status = pct_of(bad, (unsigned long long)total);
    else
        s->halt_status = bad > 101 ? 101 : (int)bad;
    s->halted = 1;
    if (j->halt == PRUN_HALT_NOW)
        s->halt_now = 1;
    drain(s);
}

/* Queues inst for a retry, keeping the queue sorted by ready_at. */
static void requeue(struct task_state *t, struct prun_inst *inst)
{
    struct prun_inst **pp = &t->retries;

    while (*pp != NULL && (*pp)->ready_at <= inst->ready_at)
        pp = &(*pp)->next;
    inst->next = *pp;
    *pp = inst;
    t->nretries++;
}

/*
 * Only a retry keeps inst: the scheduler owns it again until it starts it
 * anew. With every other verdict the caller still owns inst and frees it.
 */
enum prun_verdict prun__sched_finish(struct prun_sched *s,
    struct prun_inst *inst, enum prun_outcome outcome, int64_t now)
{
    struct task_state *t = &s->tasks[inst->task];
    const struct prun_task *task = t->task;
    enum prun_verdict v;
    double delay;

    t->running--;
    s->st.running--;
    switch (outcome) {
    case PRUN_OUT_OK:
        s->st.succeeded++;
        v = PRUN_V_SUCCEEDED;
        check_halt(s);
        break;
    case PRUN_OUT_FAIL:
        /* After a halt or a stop nothing starts again, retries included. */
        if (inst->attempt <= task->retries && !s->halted && !s->stopped) {
            inst->attempt++;
            delay = (double)task->retry_delay_ms *
                    ldexp(1.0, (int)inst->attempt - 2) * jitter(s);
            if (delay > MAX_RETRY_DELAY_MS)
                delay = MAX_RETRY_DELAY_MS;
            inst->ready_at = now + (int64_t)delay;
            requeue(t, inst);
            s->st.retried++;
            return PRUN_V_RETRY;
        }
        /* fall through */
    case PRUN_OUT_FAIL_FINAL:
        s->st.failed++;
        t->bad = 1;
        s->final_failures++;
        v = PRUN_V_FAILED;
        check_halt(s);
        break;
    case PRUN_OUT_CANCELLED:
    default:
        s->st.cancelled++;
        t->bad = 1;
        v = PRUN_V_CANCELLED;
        break;
    }
    if (t->bad || (t->exhausted && t->running == 0 && t->retries == NULL))
        settle(s);
    return v;
}

void prun__sched_stop(struct prun_sched *s)
{
    s->stopped = 1;
    drain(s);
}

void prun__sched_note_exit(struct prun_sched *s, int code)
{
    s->last_exit = code;
}

int prun__sched_halt_status(const struct prun_sched *s)
{
    if (s->job->halt == PRUN_HALT_NEVER)
        return -1;
    if (s->halt_status >= 0)
        return s->halt_status;
    /* Not halted: parallel's status from the failures at the end. */
    if (s->job->halt_pct > 0)
        return pct_of(s->final_failures, s->st.started ? s->st.started : 1);
    return s->final_failures > 101 ? 101 : (int)s->final_failures;
}

int prun__sched_halt_now(const struct prun_sched *s)
{
    return s->halt_now;
}

int prun__sched_halted(const struct prun_sched *s)
{
    return s->halted;
}

void prun__sched_stats(const struct prun_sched *s, struct prun__sched_stats *st)
{
    size_t i;

    *st = s->st;
    st->total = 0;
    for (i = 0; i < s->ntasks; i++) {
        if (s->tasks[i].count < 0) {
            st->total = -1;
            break;
        }
        st->total += s->tasks[i].count;
    }
}

long long prun__sched_task_count(const struct prun_sched *s, size_t task)
{
    return task < s->ntasks ? s->tasks[task].count : -1;
}

int prun__sched_task_skipped(const struct prun_sched *s, size_t task)
{
    return task < s->ntasks && s->tasks[task].skipped;
}

int prun__sched_input_fd(const struct prun_sched *s, size_t task)
{
    const struct task_state *t;

    if (task >= s->ntasks || s->halted || s->stopped)
        return -1;
    t = &s->tasks[task];
    return t->waiting && !t->done && !t->skipped ? prun__iter_fd(t->it) : -1;
}

void prun__sched_input_ready(struct prun_sched *s, size_t task)
{
    if (task >= s->ntasks)
        return;
    s->tasks[task].waiting = 0;
    prun__iter_readable(s->tasks[task].it);
}

const char *prun__sched_task_error(const struct prun_sched *s, size_t task)
{
    return task < s->ntasks ? s->tasks[task].srcerr : NULL;
}
