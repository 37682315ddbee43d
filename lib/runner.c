/* SPDX-License-Identifier: MIT */
/*
 * runner: the run loop.
 *
 * Everything the run waits for is an fd on one epoll set (evloop.c keeps
 * the set, the signalfd and the timerfd): a signalfd for SIGCHLD and the
 * stop signals, a timerfd armed for the earliest deadline of anyone (retry
 * delays and rates from the scheduler, timeouts and kill_grace from the
 * executor, the recorder's heartbeat and flush, the progress line), and
 * whatever the executor and the recorder watch (the children's pipes, the
 * Redis socket). Nothing blocks: a child that floods its output, or one
 * that never exits, cannot hold up the others; a foreach source (stdin, a
 * FIFO) joins the set while its task waits for input, so a slow producer
 * holds up nothing but its own task.
 *
 * The loop owns the scheduler, the result, the recorder and the output.
 * It hands attempts to an executor through the seam of executor.h and
 * decides, when one ends, what that means: retry, success, failure,
 * halt (the wait status is classified by outcome.c). The local executor
 * (exec_local.c) is the one used today.
 */
#include "runner.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "evloop.h"
#include "exec_local.h"
#include "exec_remote.h"
#include "executor.h"
#include "outcome.h"
#include "pool_feed.h"
#include "recorder.h"

#define PROGRESS_MS 200

struct runner;

/* A task's foreach source on the loop, armed while the task waits for it. */
struct input_watch {
    struct prun__watch w; /* first: the loop hands back &w */
    struct runner *r;
    size_t task;
    int fd; /* registered, -1 none */
    int armed;
};

struct runner {
    const struct prun_run_opts *o;
    const struct prun_job *job;
    struct prun_sched *sched;
    struct prun_output *out;
    struct prun_run_result *res;
    struct prun__executor *exec;
    struct prun__exec_hooks hooks;
    struct prun__recorder rec;
    struct prun__pool *pool;
    struct input_watch *inw;       /* one per task */
    int input_busy;                /* a source is readable without waiting */
    struct prun__attempt *running; /* list of attempts under way */
    size_t nrunning;
    struct prun__evloop ev; /* epoll set, signalfd, timerfd */
    struct prun__watch sigw, timerw;
    int64_t wake; /* scheduler's next wake time */
    int64_t next_progress;
    int stopping; /* stop signal or halt now: no new starts */
    int stop_signal;
    int fail_rc;              /* lock lost, guardian gone: PRUN_E* */
    struct prun_err fail_err; /* ... and why */
    uint64_t seq;
};

void prun__run_id_new(char *buf, size_t n)
{
    struct timespec ts;
    struct tm tm;
    unsigned r;
    int fd;

    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    r = (unsigned)(ts.tv_nsec ^ (getpid() << 16));
    fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
            r ^= (unsigned)ts.tv_nsec;
        close(fd);
    }
    snprintf(buf, n, "%04d%02d%02d-%02d%02d%02d-%04x", tm.tm_year + 1900,
        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
        r & 0xffff);
}

/* ---- The loop's side of the seam ---------------------------------------- */

static int hook_watch(void *ctx, int fd, uint32_t events, struct prun__watch *w)
{
    return prun__evloop_watch(&((struct runner *)ctx)->ev, fd, events, w);
}

static void hook_unwatch(void *ctx, int fd)
{
    prun__evloop_unwatch(&((struct runner *)ctx)->ev, fd);
}

static void hook_warn(void *ctx, const char *msg)
{
    struct runner *r = ctx;

    if (r->res->warning[0] == '\0')
        snprintf(r->res->warning, sizeof(r->res->warning), "%s", msg);
}

static void note_warning(struct runner *r, const struct prun_err *e)
{
    hook_warn(r, e->msg);
}

static void hook_say(void *ctx, const char *msg)
{
    struct runner *r = ctx;

    if (r->o->warn != NULL)
        r->o->warn(r->o->warn_ctx, msg);
}

/*
 * Something stops the run for good (lost lock, no guardian): no new starts,
 * and every child gets SIGTERM, then SIGKILL after its kill_grace. The run
 * then ends with e as its error.
 */
static void hook_fatal(void *ctx, const struct prun_err *e)
{
    struct runner *r = ctx;

    if (r->fail_rc == 0) {
        r->fail_rc = e->code < 0 ? e->code : PRUN_ESYS;
        r->fail_err = *e;
    }
    r->stopping = 1;
    prun__sched_stop(r->sched);
    r->exec->ops->stop_all(r->exec, 0);
}

/*
 * The job lock, if the run holds one: is its lease still valid and the
 * value in Redis (its fencing token) still ours? Checked before every
 * start and on every wake of the loop, including the one right after a
 * SIGCONT: a runner that was stopped or suspended past its lease finds out
 * before it starts anything more.
 */
static int lock_ok(struct runner *r)
{
    struct prun_err e;

    if (r->o->state == NULL)
        return 1;
    if (r->fail_rc == PRUN_ELOCKED)
        return 0;
    if (prun__state_joblock_check(r->o->state, prun__boot_ms(), &e) == 0)
        return 1;
    hook_fatal(r, &e);
    return 0;
}

static void fill_ctx(
    const struct runner *r, const struct prun_inst *inst, struct prun_ctx *ctx)
{
    ctx->task = r->job->tasks[inst->task].name;
    ctx->run_id = r->o->run_id;
    ctx->index = inst->index;
    ctx->count = prun__sched_task_count(r->sched, inst->task);
    ctx->attempt = inst->attempt;
    ctx->items = inst->items;
    ctx->nitems = inst->nitems;
    ctx->slot = 0;
}

static void list_del(struct runner *r, struct prun__attempt *a)
{
    if (a->prev)
        a->prev->next = a->next;
    else
        r->running = a->next;
    if (a->next)
        a->next->prev = a->prev;
    a->prev = a->next = NULL;
    r->nrunning--;
}

static void record_view(const struct runner *r, struct prun__record_view *v)
{
    v->sched = r->sched;
    v->res = r->res;
    v->running = r->running;
}

/* ---- Item sources on the loop ------------------------------------------ */

static void on_input(struct prun__watch *w, uint32_t events)
{
    struct input_watch *iw = (struct input_watch *)w;

    (void)events;
    iw->armed = 0;
    prun__sched_input_ready(iw->r->sched, iw->task);
}

/*
 * Arms task's watch for fd: one readiness report (EPOLLONESHOT), since a
 * source stays readable while its task, held by a cap, reads nothing.
 * epoll refuses what poll calls always ready (/dev/null and the like):
 * then the source is read at once, on the next turn.
 */
static void watch_input(struct runner *r, size_t task, int fd)
{
    struct input_watch *iw = &r->inw[task];

    if (iw->fd == fd && iw->armed)
        return;
    if (iw->fd >= 0 && iw->fd != fd) {
        hook_unwatch(r, iw->fd);
        iw->fd = -1;
    }
    if (hook_watch(r, fd, EPOLLIN | EPOLLONESHOT, &iw->w) == 0) {
        iw->fd = fd;
        iw->armed = 1;
        return;
    }
    iw->fd = -1;
    on_input(&iw->w, EPOLLIN);
    r->input_busy = 1;
}

/* Puts the fds of the sources the scheduler waits on on the loop. */
static void watch_inputs(struct runner *r)
{
    size_t t;
    int fd;

    for (t = 0; t < r->job->ntasks; t++)
        if ((fd = prun__sched_input_fd(r->sched, t)) >= 0)
            watch_input(r, t, fd);
}

/* ---- Starting and ending attempts ----------------------------------- */

static void attempt_ended(void *ctx, struct prun__attempt *a, int status);

/* Hands inst to the executor; a start that fails ends it at once. */
static void start_inst(struct runner *r, struct prun_inst *inst)
{
    const struct prun_task *task = &r->job->tasks[inst->task];
    struct prun__attempt *a;
    struct prun_err e;

    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        /* Nothing to report it in: finish it as a failure to start. */
        prun__sched_finish(r->sched, inst, PRUN_OUT_FAIL_FINAL, prun__now_ms());
        prun__inst_free(inst);
        hook_warn(r, "out of memory");
        return;
    }
    a->inst = inst;
    a->task = task;
    a->pid = -1;
    /* With one task the joblog's Seq is {#}, as GNU parallel's (its
     * --resume matches on it); with several, the order of first starts. */
    if (inst->seq == 0)
        inst->seq = r->job->ntasks == 1 ? inst->index + 1 : ++r->seq;
    fill_ctx(r, inst, &a->ctx);
    a->start_mono = prun__now_ms();
    a->start_wall = prun__wall_ms();
    a->next = r->running;
    if (r->running)
        r->running->prev = a;
    r->running = a;
    r->nrunning++;
    prun__pool_start(r->pool, inst->task);
    a->cap = prun__capture_new(r->out, task->name, inst->index, &e);
    if (a->cap == NULL) {
        snprintf(a->exec_err, sizeof(a->exec_err), "%s", e.msg);
        attempt_ended(r, a, -1);
        return;
    }
    if (inst->attempt == 1 &&
        prun__output_manifest(r->out, inst->task, task->name, inst->index,
            inst->items, inst->nitems, &e) < 0)
        note_warning(r, &e);
    r->exec->ops->start(r->exec, a);
}

/*
 * The executor's "starting": the slot is known now, so {%} in --tagstring
 * is the same as in the command. --tag/--tagstring: the instance's own
 * line prefix.
 */
static void attempt_starting(void *ctx, struct prun__attempt *a)
{
    struct runner *r = ctx;
    struct prun_buf tag = {0};

    if (r->o->out.tag_tpl == NULL || a->cap == NULL)
        return;
    if (prun__tpl_expand(r->o->out.tag_tpl, &a->ctx, 0, &tag) == 0)
        prun__capture_set_tag(a->cap, tag.data);
    prun__buf_free(&tag);
}

static void write_joblog(struct runner *r, const struct prun__attempt *a,
    int64_t now, int code, int sig, uint64_t receive)
{
    struct prun_joblog_row row;
    struct prun_buf cmd = {0};
    struct prun_err e;
    struct prun_ctx ctx;

    fill_ctx(r, a->inst, &ctx);
    ctx.slot = a->ctx.slot;
    if (prun__task_cmdline(a->task, &ctx, &cmd) == 0) {
        row.seq = a->inst->seq;
        row.start_wall_ms = a->start_wall;
        row.runtime_ms = now - a->start_mono;
        row.exitval = code;
        row.signal = sig;
        row.receive = receive;
        row.command = cmd.data ? cmd.data : "";
        if (prun__output_joblog(r->out, &row, &e) < 0)
            note_warning(r, &e);
    }
    prun__buf_free(&cmd);
}

/*
 * The executor's "attempt ended": decides the outcome, records it, prints
 * or discards the output, logs, frees.
 */
static void attempt_ended(void *ctx, struct prun__attempt *a, int status)
{
    static const char *const kinds[] = {
        "exit", "signal", "timeout", "exec", "cancelled"};
    struct runner *r = ctx;
    struct prun_inst *inst = a->inst;
    struct prun_task_result *tr = &r->res->tasks[inst->task];
    const struct prun_failure *f = NULL;
    enum prun_outcome outcome;
    enum prun_fail_kind kind;
    enum prun_verdict v;
    struct prun_err e;
    int code, sig, print;
    unsigned attempt;
    uint64_t receive = a->cap ? prun__capture_bytes(a->cap, 1) : 0;
    int64_t now = prun__now_ms();

    list_del(r, a);
    outcome = prun__outcome_classify(a, status, &kind, &code, &sig);
    if (kind == PRUN_FAIL_EXEC && a->cap) {
        struct prun_buf m = {0};
        if (prun__buf_printf(&m, "parallelrun: %s\n", a->exec_err) == 0)
            prun__capture_feed(a->cap, 2, m.data, m.len, NULL);
        prun__buf_free(&m);
    }

    /* The verdict tells whether this attempt was the last one. */
    attempt = inst->attempt;
    prun__sched_note_exit(r->sched, sig != 0 ? 128 + sig : code);
    v = prun__sched_finish(r->sched, inst, outcome, now);
    if (v == PRUN_V_FAILED || v == PRUN_V_CANCELLED)
        f = prun__outcome_failure(
            r->res, a, kind, kind == PRUN_FAIL_SIGNAL ? sig : code);
    prun__recorder_end(&r->rec, a, v, attempt, kinds[kind],
        kind == PRUN_FAIL_SIGNAL ? sig : code, f ? f->reason : "");
    if (v == PRUN_V_SUCCEEDED)
        tr->succeeded++;
    else if (v == PRUN_V_FAILED)
        tr->failed++;
    else if (v == PRUN_V_CANCELLED)
        tr->cancelled++;

    print = v != PRUN_V_RETRY && (!r->o->out.quiet || v != PRUN_V_SUCCEEDED);
    if (a->cap &&
        prun__capture_finish_ordered(a->cap, print, v != PRUN_V_RETRY, &e) < 0)
        note_warning(r, &e);
    a->cap = NULL;
    if (v != PRUN_V_RETRY) {
        write_joblog(r, a, now, code, sig, receive);
        prun__inst_free(inst);
    }
    free(a);
}

/* ---- Signals, timers, progress -------------------------------------- */

static void stop(struct runner *r, int signo)
{
    r->stop_signal = signo;
    r->stopping = 1;
    prun__sched_stop(r->sched);
    r->exec->ops->stop_all(r->exec, 0);
}

static void on_signal(struct prun__watch *w, uint32_t events)
{
    struct runner *r =
        (struct runner *)((char *)w - offsetof(struct runner, sigw));
    int chld = 0, signo;

    (void)events;
    while ((signo = prun__evloop_signal(&r->ev)) != 0) {
        if (signo == SIGCHLD) {
            chld = 1;
            continue;
        }
        /*
         * We were stopped and go on: the loop's next turn checks the job
         * lock's lease before anything else happens.
         */
        if (signo == SIGCONT)
            continue;
        /* A resized terminal: the progress line's width, redrawn now. */
        if (signo == SIGWINCH) {
            prun__output_winch(r->out);
            r->next_progress = 0;
            continue;
        }
        if (r->stop_signal != 0) {
            /* A second stop signal: no more patience. */
            r->exec->ops->stop_all(r->exec, 1);
            continue;
        }
        stop(r, signo);
    }
    if (chld)
        r->exec->ops->on_signal(r->exec, SIGCHLD);
}

static void on_timer(struct prun__watch *w, uint32_t events)
{
    struct runner *r =
        (struct runner *)((char *)w - offsetof(struct runner, timerw));

    (void)events;
    prun__evloop_expired(&r->ev);
}

static int64_t next_deadline(const struct runner *r)
{
    int64_t t = r->exec->ops->next_deadline(r->exec), u;

    if (!r->stopping && r->wake < t)
        t = r->wake;
    if (r->o->out.progress && r->next_progress < t)
        t = r->next_progress;
    u = prun__recorder_deadline(&r->rec);
    return u < t ? u : t;
}

static void show_progress(struct runner *r, int64_t now)
{
    struct prun_progress pg;
    struct prun__sched_stats st;

    if (!r->o->out.progress)
        return;
    prun__sched_stats(r->sched, &st);
    pg.done = st.succeeded;
    pg.failed = st.failed + st.cancelled;
    pg.running = st.running;
    pg.total = st.total;
    pg.elapsed_ms = prun__wall_ms() - r->res->start_wall_ms;
    pg.child_done = pg.child_total = 0;
    if (r->o->state != NULL)
        prun__state_progress(r->o->state, &pg.child_done, &pg.child_total);
    prun__output_progress(r->out, &pg);
    r->next_progress = now + PROGRESS_MS;
}

/* ---- Set-up and the loop -------------------------------------------- */

static int setup(struct runner *r, struct prun_err *err)
{
    int rc = prun__evloop_open(&r->ev, err);

    if (rc < 0)
        return rc;
    r->sigw.cb = on_signal;
    r->timerw.cb = on_timer;
    if (hook_watch(r, r->ev.sigfd, EPOLLIN, &r->sigw) < 0 ||
        hook_watch(r, r->ev.timerfd, EPOLLIN, &r->timerw) < 0)
        return prun__err_sys(err, "epoll_ctl");
    r->res->tasks = calloc(r->job->ntasks, sizeof(*r->res->tasks));
    r->res->fail = calloc(PRUN_MAX_FAILURES, sizeof(*r->res->fail));
    if (!r->res->tasks || !r->res->fail)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    r->res->ntasks = r->job->ntasks;
    r->inw = calloc(r->job->ntasks + 1, sizeof(*r->inw));
    if (r->inw == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    for (size_t t = 0; t < r->job->ntasks; t++)
        r->inw[t] = (struct input_watch){{on_input}, r, t, -1, 0};
    return 0;
}

static void teardown(struct runner *r)
{
    free(r->inw);
    prun__evloop_close(&r->ev);
}

/*
 * --resume: an instance whose item succeeded in the resumed run counts as
 * succeeded here, and is recorded as done in this run too, so that a
 * resume of this run skips it as well.
 */
static int resume_skip(
    void *ctx, size_t task, const struct prun_item *items, size_t n)
{
    struct runner *r = ctx;

    /* A pool task's instances are its workers: its items resume in the
     * feed (pool_feed.c), never by matching a worker index as an item. */
    if (r->job->tasks[task].pool)
        return 0;
    if (!r->o->skip(r->o->skip_ctx, task, items, n))
        return 0;
    r->res->tasks[task].succeeded++;
    prun__recorder_done(&r->rec, task, items, n);
    return 1;
}

/* Starts what the scheduler allows now. Returns 1 when all is done. */
static int start_ready(
    struct runner *r, int64_t now, int *rc, struct prun_err *err)
{
    int64_t wake = INT64_MAX;
    int done = 0;

    while (!r->stopping && r->exec->ops->capacity(r->exec) > 0 && lock_ok(r)) {
        struct prun_inst *inst = NULL;
        int next = prun__sched_next(r->sched, now, &inst, &wake, err);

        if (next < 0) {
            /* A foreach source failed mid-run: stop like on Ctrl-C. */
            *rc = next;
            r->stopping = 1;
            prun__sched_stop(r->sched);
            r->exec->ops->stop_all(r->exec, 0);
            break;
        }
        if (next == PRUN_NEXT_DONE) {
            done = 1;
            break;
        }
        if (next == PRUN_NEXT_WAIT)
            break;
        start_inst(r, inst);
    }
    r->wake = wake;
    return done;
}

static int loop(struct runner *r, struct prun_err *err)
{
    struct prun__record_view view;
    int rc = 0, halted_now = 0;

    for (;;) {
        int64_t now = prun__now_ms();
        int done, feeding;

        lock_ok(r);
        r->exec->ops->tick(r->exec, now);
        record_view(r, &view);
        if (prun__recorder_tick(&r->rec, now, &view) && r->stop_signal == 0) {
            /* `parallelrun cancel`: stop as on Ctrl-C. */
            r->res->cancelled = 1;
            stop(r, SIGINT);
        }
        done = start_ready(r, now, &rc, err);
        r->input_busy = 0;
        if (!r->stopping)
            watch_inputs(r);
        if (!halted_now && prun__sched_halt_now(r->sched)) {
            halted_now = 1;
            r->stopping = 1;
            r->exec->ops->stop_all(r->exec, 0);
        }
        if (r->nrunning == 0 && (done || r->stopping))
            break;
        if (r->o->out.progress && now >= r->next_progress)
            show_progress(r, now);
        feeding = !r->stopping && prun__pool_feed(r->pool);
        feeding |= r->input_busy;
        prun__recorder_sync(&r->rec, prun__now_ms());
        prun__evloop_arm(&r->ev, next_deadline(r));
        if (prun__evloop_dispatch(&r->ev, feeding ? 0 : -1) < 0) {
            rc = prun__err_sys(err, "epoll_wait");
            r->exec->ops->stop_all(r->exec, 1);
            break;
        }
        prun__recorder_sync(&r->rec, prun__now_ms());
    }
    if (rc == 0 && r->fail_rc != 0) {
        rc = r->fail_rc;
        if (err != NULL)
            *err = r->fail_err;
    }
    return rc;
}

/* The runner before anything is set up: its hooks and its recorder. */
static void runner_init(struct runner *r, const struct prun_run_opts *o,
    struct prun_run_result *res)
{
    memset(r, 0, sizeof(*r));
    memset(res, 0, sizeof(*res));
    res->halt_status = -1;
    r->o = o;
    r->job = o->job;
    r->res = res;
    prun__evloop_init(&r->ev);
    res->start_wall_ms = prun__wall_ms();
    r->hooks.ctx = r;
    r->hooks.ended = attempt_ended;
    r->hooks.starting = attempt_starting;
    r->hooks.watch = hook_watch;
    r->hooks.unwatch = hook_unwatch;
    r->hooks.warn = hook_warn;
    r->hooks.say = hook_say;
    r->hooks.fatal = hook_fatal;
    prun__recorder_init(&r->rec, o->state, o->job, &r->hooks);
    r->rec.running = &r->running;
}

/*
 * Pool mode's side of the run, and the scheduler over the job as pool
 * mode shows it (a pool task's instances are its workers), with
 * --resume's skip.
 */
static int new_sched(struct runner *r, struct prun_err *err)
{
    const struct prun_run_opts *o = r->o;
    const struct prun_job *sched_job = o->job;
    struct prun_sched_opts so;
    int rc;

    rc = prun__pool_new(o->job, o->jobs, o->state, o->skip, o->skip_ctx,
        &r->hooks, &r->pool, &sched_job, err);
    if (rc < 0)
        return rc;
    so.jobs = o->jobs;
    so.seed = o->seed;
    rc = prun__sched_new(sched_job, &so, &r->sched, err);
    if (rc < 0)
        return rc;
    if (o->skip != NULL)
        prun__sched_set_skip(r->sched, resume_skip, r);
    return 0;
}

/* The executor: the remote one with --distributed, else the local one. */
static int new_executor(struct runner *r, struct prun_err *err)
{
    const struct prun_run_opts *o = r->o;
    struct prun__local_opts lo;

    if (o->dist != NULL) {
        struct prun__remote_opts ro = {
            o->job, o->run_id, o->jobs, o->kill_grace_ms, o->dist};
        return prun__remote_new(&ro, &r->hooks, &r->exec, err);
    }
    memset(&lo, 0, sizeof(lo));
    lo.job = o->job;
    lo.slots = o->jobs;
    lo.kill_grace_ms = o->kill_grace_ms;
    lo.run_id = o->run_id;
    lo.extra_env = o->extra_env;
    lo.nextra_env = o->nextra_env;
    lo.segs = o->segs;
    return prun__local_new(
        &lo, &r->hooks, &r->exec, r->res->note, sizeof(r->res->note), err);
}

/* What the scheduler knows at the end, into the result and the record. */
static void collect_result(struct runner *r)
{
    struct prun_run_result *res = r->res;
    struct prun__record_view view;
    size_t t;

    record_view(r, &view);
    prun__recorder_counts(&r->rec, &view);
    prun__sched_stats(r->sched, &res->stats);
    res->halted = prun__sched_halted(r->sched) && r->stop_signal == 0;
    res->halt_status = prun__sched_halt_status(r->sched);
    for (t = 0; res->tasks && t < r->job->ntasks; t++) {
        const char *why = prun__sched_task_error(r->sched, t);

        res->tasks[t].count = prun__sched_task_count(r->sched, t);
        res->tasks[t].needs_failed = prun__sched_task_skipped(r->sched, t);
        if (why != NULL)
            snprintf(
                res->tasks[t].error, sizeof(res->tasks[t].error), "%s", why);
    }
}

/*
 * The executor shut down (at once when the run failed) and freed; the
 * output freed, or, when it is the caller's, released.
 */
static void close_exec_output(struct runner *r, int failed)
{
    if (r->exec) {
        r->exec->ops->shutdown(r->exec, failed);
        r->exec->ops->free(r->exec);
    }
    if (r->o->output == NULL) {
        prun__output_free(r->out);
    } else {
        /* -k: what waits for an index that never ran is printed now. */
        prun__output_release(r->o->output);
        prun__output_progress_clear(r->o->output);
    }
}

int prun__run(const struct prun_run_opts *o, struct prun_run_result *res,
    struct prun_err *err)
{
    struct runner r;
    int rc;

    runner_init(&r, o, res);
    if ((rc = new_sched(&r, err)) < 0 || (rc = setup(&r, err)) < 0 ||
        (rc = new_executor(&r, err)) < 0)
        goto out;
    if (o->output != NULL)
        r.out = o->output;
    else if ((rc = prun__output_new(&o->out, &r.out, err)) < 0)
        goto out;
    rc = loop(&r, err);

out:
    if (r.sched)
        collect_result(&r);
    prun__recorder_fini(&r.rec);
    res->signal = r.stop_signal;
    res->elapsed_ms = prun__wall_ms() - res->start_wall_ms;
    close_exec_output(&r, rc < 0);
    teardown(&r);
    prun__sched_free(r.sched);
    prun__pool_free(r.pool);
    return rc;
}

void prun__run_result_free(struct prun_run_result *res)
{
    if (res == NULL)
        return;
    free(res->tasks);
    free(res->fail);
    res->tasks = NULL;
    res->fail = NULL;
}
