/* SPDX-License-Identifier: MIT */
/*
 * runner: the parent's event loop.
 *
 * Everything the runner waits for is an fd on one epoll set: a signalfd for
 * SIGCHLD and the stop signals, a timerfd armed for the earliest deadline
 * (timeouts, SIGKILL after kill_grace, retry delays, rate limits, progress
 * refresh), and the read ends of every child's stdout and stderr pipes.
 * Nothing blocks: a child that floods its output, or one that never exits,
 * cannot hold up the others. The Redis connection joins the same set, and
 * so does a foreach source (stdin, a FIFO) while its task waits for input:
 * a slow producer holds up nothing but its own task.
 *
 * Process cleanup rules: each child leads its own process group. When a
 * child exits, whatever it left running in its group gets SIGTERM at once
 * and SIGKILL after kill_grace; the runner is a child subreaper, so
 * orphaned grandchildren are reparented to it and reaped, never zombies.
 * When the run ends, every remaining descendant is killed.
 */
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spawn.h"

extern char **environ;

#define TAG_SIGNAL UINT64_MAX
#define TAG_TIMER  (UINT64_MAX - 1)
#define TAG_REDIS  (UINT64_MAX - 2)
/* Item sources: TAG_INPUT | 2*task (scheduler) or 2*task + 1 (pool feed). */
#define TAG_INPUT   (UINT64_C(1) << 62)
#define TICK_MS     500
#define FLUSH_MS    100
#define PROGRESS_MS 200
#define READ_CHUNK  65536

enum why {
    WHY_NONE,
    WHY_TIMEOUT,
    WHY_CANCEL,
};

/* One running attempt. */
struct proc {
    struct prun_inst *inst; /* NULL: the slot is free */
    pid_t pid;
    int fd[2]; /* read ends of stdout and stderr, -1 closed */
    struct prun_capture *cap;
    int64_t start_mono, start_wall;
    int64_t deadline; /* timeout, 0 none */
    int64_t kill_at;  /* SIGKILL after SIGTERM, 0 none */
    int64_t grace;
    enum why why;
    char exec_err[256]; /* set when the program could not be started */
    int recorded;       /* listed in Redis as running */
};

struct straggler {
    pid_t pgid;
    int64_t kill_at;
};

/* Per-task environment: the runner's, minus names the instance sets. */
struct task_env {
    size_t n;
    char **base;
};

/* Pool mode: the task's real items, fed to Redis for its workers. */
struct pool_feed {
    struct prun_iter *it;
    int started, finished;
    unsigned long long next_index; /* items read */
    unsigned long long queued;     /* items queued (not resumed) */
};

/* A foreach source's fd on the epoll set, armed while it waits for input. */
struct input_watch {
    int fd; /* registered, -1 none */
    int armed;
};

struct runner {
    const struct prun_run_opts *o;
    const struct prun_job *job;
    struct prun_sched *sched;
    struct prun_output *out;
    struct prun_guardian *guardian;
    struct prun_run_result *res;
    struct proc *procs;
    size_t nprocs; /* slots, = jobs */
    size_t *free_slots;
    size_t nfree;
    size_t running;
    struct task_env *envs;
    struct pool_feed *feeds; /* per task; NULL without pool tasks */
    struct input_watch *inw; /* 2 per task: scheduler, pool feed */
    int input_busy;          /* a source is readable without waiting */
    struct prun_job shadow;  /* what sched sees: pool tasks as workers */
    struct prun_task *shadow_tasks;
    struct straggler *strag;
    size_t nstrag, capstrag;
    int epfd, sigfd, timerfd, nullfd;
    int64_t armed; /* timer's current expiry, 0 disarmed */
    int64_t wake;  /* scheduler's next wake time */
    int64_t next_progress;
    int redis_fd; /* registered in epoll, -1 none */
    uint32_t redis_events;
    int64_t next_tick;  /* Redis heartbeat/reconnect */
    int64_t next_flush; /* write queued records by then; 0: none queued */
    int stopping;       /* stop signal or halt now: no new starts */
    int stop_signal;
    uint64_t seq;
    sigset_t oldmask;
    char readbuf[READ_CHUNK];
};

void prun_run_id_new(char *buf, size_t n)
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

static const char *const own_vars[] = {"PARALLELRUN_RUN_ID", "PARALLELRUN_TASK",
    "PARALLELRUN_INDEX", "PARALLELRUN_COUNT", "PARALLELRUN_ITEM",
    "PARALLELRUN_ATTEMPT"};

static int env_name_is(const char *entry, const char *name)
{
    size_t n = strlen(name);
    return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

static int build_task_envs(struct runner *r, struct prun_err *err)
{
    size_t t, i, k, nenv = 0;

    for (char **e = environ; e && *e; e++)
        nenv++;
    r->envs = calloc(r->job->ntasks, sizeof(*r->envs));
    if (r->envs == NULL)
        return prun_err_set(err, PRUN_ENOMEM, "out of memory");
    for (t = 0; t < r->job->ntasks; t++) {
        const struct prun_task *task = &r->job->tasks[t];
        struct task_env *te = &r->envs[t];

        te->base = calloc(nenv + 1, sizeof(char *));
        if (te->base == NULL)
            return prun_err_set(err, PRUN_ENOMEM, "out of memory");
        for (i = 0; i < nenv; i++) {
            int skip = 0;

            for (k = 0; k < sizeof(own_vars) / sizeof(own_vars[0]); k++)
                skip |= env_name_is(environ[i], own_vars[k]);
            for (k = 0; k < task->nenv; k++)
                skip |= env_name_is(environ[i], task->env_keys[k]);
            /* An outer run's segments: their fds do not reach our children. */
            skip |= strncmp(environ[i], "PARALLELRUN_SEGMENT_", 20) == 0;
            for (k = 0; k < r->o->nextra_env; k++) {
                const char *x = r->o->extra_env[k];
                size_t nl = strcspn(x, "=");
                skip |= strncmp(environ[i], x, nl + 1) == 0;
            }
            if (!skip)
                te->base[te->n++] = environ[i];
        }
    }
    return 0;
}

/*
 * The environment of one instance, in one malloc'd block: the task's base
 * environment, the PARALLELRUN_* variables, then the task's env entries.
 */
static char **build_envp(struct runner *r, const struct prun_task *task,
    const struct task_env *te, const struct prun_ctx *ctx,
    const struct prun_segchild *sc)
{
    struct prun_buf b = {0};
    size_t nown = 6 + task->nenv + r->o->nextra_env + sc->nenv, i;
    size_t *offs = NULL;
    char **envp = NULL, *strings;
    int ok = 1;

    offs = calloc(nown, sizeof(size_t));
    if (offs == NULL)
        return NULL;
    offs[0] = b.len;
    ok &= prun_buf_printf(&b, "PARALLELRUN_RUN_ID=%s", r->o->run_id) == 0;
    ok &= prun_buf_addc(&b, '\0') == 0;
    offs[1] = b.len;
    ok &= prun_buf_printf(&b, "PARALLELRUN_TASK=%s", task->name) == 0;
    ok &= prun_buf_addc(&b, '\0') == 0;
    offs[2] = b.len;
    ok &= prun_buf_printf(&b, "PARALLELRUN_INDEX=%llu", ctx->index) == 0;
    ok &= prun_buf_addc(&b, '\0') == 0;
    offs[3] = b.len;
    if (ctx->count >= 0)
        ok &= prun_buf_printf(&b, "PARALLELRUN_COUNT=%lld", ctx->count) == 0;
    else
        ok &= prun_buf_adds(&b, "PARALLELRUN_COUNT=") == 0;
    ok &= prun_buf_addc(&b, '\0') == 0;
    offs[4] = b.len;
    ok &= prun_buf_adds(&b, "PARALLELRUN_ITEM=") == 0;
    ok &= prun_items_value(ctx->items, ctx->nitems, &b) == 0;
    ok &= prun_buf_addc(&b, '\0') == 0;
    offs[5] = b.len;
    ok &= prun_buf_printf(&b, "PARALLELRUN_ATTEMPT=%u", ctx->attempt) == 0;
    ok &= prun_buf_addc(&b, '\0') == 0;
    for (i = 0; i < task->nenv; i++) {
        offs[6 + i] = b.len;
        ok &= prun_buf_printf(&b, "%s=", task->env_keys[i]) == 0;
        ok &= prun_tpl_expand(&task->env_vals[i], ctx, 0, &b) == 0;
        ok &= prun_buf_addc(&b, '\0') == 0;
    }
    for (i = 0; i < r->o->nextra_env; i++) {
        offs[6 + task->nenv + i] = b.len;
        ok &= prun_buf_adds(&b, r->o->extra_env[i]) == 0;
        ok &= prun_buf_addc(&b, '\0') == 0;
    }
    for (i = 0; i < sc->nenv; i++) {
        offs[6 + task->nenv + r->o->nextra_env + i] = b.len;
        ok &= prun_buf_adds(&b, sc->env[i]) == 0;
        ok &= prun_buf_addc(&b, '\0') == 0;
    }
    if (!ok)
        goto out;
    envp = malloc((te->n + nown + 1) * sizeof(char *) + b.len);
    if (envp == NULL)
        goto out;
    strings = (char *)(envp + te->n + nown + 1);
    memcpy(strings, b.data, b.len);
    memcpy(envp, te->base, te->n * sizeof(char *));
    for (i = 0; i < nown; i++)
        envp[te->n + i] = strings + offs[i];
    envp[te->n + nown] = NULL;
out:
    free(offs);
    prun_buf_free(&b);
    return envp;
}

static int epoll_add(struct runner *r, int fd, uint64_t tag)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u64 = tag;
    return epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void input_ready(struct runner *r, size_t w)
{
    r->inw[w].armed = 0;
    if (w & 1)
        prun_iter_readable(r->feeds[w >> 1].it);
    else
        prun_sched_input_ready(r->sched, w >> 1);
}

/*
 * Arms watch w for fd: one readiness report (EPOLLONESHOT), since a source
 * stays readable while its task, held by a cap, reads nothing.
 */
static void watch_input(struct runner *r, size_t w, int fd)
{
    struct input_watch *iw = &r->inw[w];
    struct epoll_event ev;

    if (iw->fd == fd && iw->armed)
        return;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN | EPOLLONESHOT;
    ev.data.u64 = TAG_INPUT | w;
    if (iw->fd >= 0 && iw->fd != fd) {
        epoll_ctl(r->epfd, EPOLL_CTL_DEL, iw->fd, NULL);
        iw->fd = -1;
    }
    if ((iw->fd == fd && epoll_ctl(r->epfd, EPOLL_CTL_MOD, fd, &ev) == 0) ||
        epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) == 0) {
        iw->fd = fd;
        iw->armed = 1;
        return;
    }
    /*
     * epoll refuses what poll calls always ready (/dev/null and the like):
     * then it is read at once.
     */
    iw->fd = -1;
    input_ready(r, w);
    r->input_busy = 1;
}

/* Puts the fds of the sources the scheduler waits on on the epoll set. */
static void watch_inputs(struct runner *r)
{
    size_t t;
    int fd;

    for (t = 0; t < r->job->ntasks; t++)
        if ((fd = prun_sched_input_fd(r->sched, t)) >= 0)
            watch_input(r, 2 * t, fd);
}

static void close_pipe(struct proc *p, int i)
{
    if (p->fd[i] >= 0) {
        close(p->fd[i]);
        p->fd[i] = -1;
    }
}

static void note_warning(struct runner *r, const struct prun_err *e)
{
    if (r->res->warning[0] == '\0')
        snprintf(r->res->warning, sizeof(r->res->warning), "%s", e->msg);
}

/* Reads what is available on stream i of p; closes it at EOF. */
static void read_stream(struct runner *r, struct proc *p, int i)
{
    struct prun_err e;
    ssize_t n;
    int rounds;

    /* A bounded number of reads, so one chatty child cannot starve others. */
    for (rounds = 0; rounds < 16 && p->fd[i] >= 0; rounds++) {
        n = read(p->fd[i], r->readbuf, sizeof(r->readbuf));
        if (n > 0) {
            if (prun_capture_feed(p->cap, i + 1, r->readbuf, (size_t)n, &e) < 0)
                note_warning(r, &e);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        close_pipe(p, i);
    }
}

static int64_t task_grace(const struct runner *r, const struct prun_task *t)
{
    return t->kill_grace_ms >= 0 ? t->kill_grace_ms : r->o->kill_grace_ms;
}

static void fill_ctx(
    const struct runner *r, const struct prun_inst *inst, struct prun_ctx *ctx)
{
    ctx->task = r->job->tasks[inst->task].name;
    ctx->run_id = r->o->run_id;
    ctx->index = inst->index;
    ctx->count = prun_sched_task_count(r->sched, inst->task);
    ctx->attempt = inst->attempt;
    ctx->items = inst->items;
    ctx->nitems = inst->nitems;
}

static void finish(struct runner *r, struct proc *p, int status);

/*
 * Writes the records queued so far once enough have gathered or the
 * oldest has waited FLUSH_MS, then keeps the Redis socket's epoll
 * registration in step with the writer. Every write wakes redis-server
 * on a core the children want: batching keeps recording off the spawn
 * path's critical path, at the cost of status lagging by FLUSH_MS.
 */
static void redis_sync_fd(struct runner *r, int64_t now)
{
    struct epoll_event ev;
    uint32_t want;
    int fd;

    if (r->o->state == NULL)
        return;
    if (prun_state_pending(r->o->state) == 0) {
        r->next_flush = 0;
    } else if (r->next_flush == 0) {
        r->next_flush = now + FLUSH_MS;
    }
    if (r->next_flush != 0 &&
        (now >= r->next_flush || prun_state_pending(r->o->state) >= 256)) {
        prun_state_pump(r->o->state);
        r->next_flush = 0;
    }
    fd = prun_state_fd(r->o->state);
    want = EPOLLIN | (prun_state_want_write(r->o->state) ? EPOLLOUT : 0);
    memset(&ev, 0, sizeof(ev));
    ev.events = want;
    ev.data.u64 = TAG_REDIS;
    if (fd != r->redis_fd) {
        /* A closed socket left the epoll set by itself. */
        r->redis_fd = fd;
        r->redis_events = 0;
        if (fd >= 0 && epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
            r->redis_events = want;
        return;
    }
    if (fd >= 0 && want != r->redis_events &&
        epoll_ctl(r->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
        r->redis_events = want;
}

static void redis_counts(struct runner *r)
{
    struct prun_sched_stats st;
    struct prun_state_counts c;
    const char **tj;
    size_t t;

    prun_sched_stats(r->sched, &st);
    c.total = st.total;
    c.succeeded = st.succeeded;
    c.failed = st.failed;
    c.cancelled = st.cancelled;
    c.skipped = st.skipped;
    c.retried = st.retried;
    c.running = st.running;
    tj = calloc(r->job->ntasks * 2, sizeof(char *));
    if (tj == NULL)
        return;
    for (t = 0; t < r->job->ntasks; t++) {
        const struct prun_task_result *tr = &r->res->tasks[t];
        char *j = malloc(160);

        if (j != NULL)
            snprintf(j, 160,
                "{\"count\":%lld,\"succeeded\":%llu,\"failed\":%llu,"
                "\"cancelled\":%llu}",
                prun_sched_task_count(r->sched, t), tr->succeeded, tr->failed,
                tr->cancelled);
        tj[2 * t] = r->job->tasks[t].name;
        tj[2 * t + 1] = j ? j : "{}";
    }
    prun_state_counts(r->o->state, &c, tj, r->job->ntasks);
    for (t = 0; t < r->job->ntasks; t++)
        if (strcmp(tj[2 * t + 1], "{}") != 0)
            free((char *)tj[2 * t + 1]);
    free(tj);
}

static void stop_all(struct runner *r, int hard);

/*
 * Lists in Redis the attempts that have run for a tick. Shorter ones are
 * not worth three round trips each: status shows what runs long enough to
 * be looked at, and the done set still records every success.
 */
static void record_running(struct runner *r, int64_t now)
{
    size_t i;

    for (i = 0; i < r->nprocs; i++) {
        struct proc *p = &r->procs[i];
        struct prun_buf item = {0};

        if (p->inst == NULL || p->pid <= 0 || p->recorded ||
            now - p->start_mono < TICK_MS / 2)
            continue;
        prun_items_value(p->inst->items, p->inst->nitems, &item);
        prun_state_inst_start(r->o->state, r->job->tasks[p->inst->task].name,
            p->inst->index, p->inst->attempt, (long)p->pid,
            item.data ? item.data : "");
        prun_buf_free(&item);
        p->recorded = 1;
    }
}

static void redis_tick(struct runner *r, int64_t now)
{
    if (r->o->state == NULL || now < r->next_tick)
        return;
    prun_state_tick(r->o->state, now);
    record_running(r, now);
    redis_counts(r);
    r->next_tick = now + TICK_MS;
    if (prun_state_cancel_requested(r->o->state) && r->stop_signal == 0) {
        /* `parallelrun cancel`: stop as on Ctrl-C. */
        r->stop_signal = SIGINT;
        r->res->cancelled = 1;
        r->stopping = 1;
        prun_sched_stop(r->sched);
        stop_all(r, 0);
    }
}

/*
 * Feeds pool tasks' items to Redis a batch at a time, so a huge source
 * neither stalls the loop nor sits in memory. Returns nonzero while some
 * feed has more to give.
 */
static int feed_pools(struct runner *r)
{
    struct prun_err e;
    size_t t;
    int more = 0;

    for (t = 0; r->feeds && t < r->job->ntasks; t++) {
        struct pool_feed *f = &r->feeds[t];
        const struct prun_item *items;
        int batch, n = 0;

        if (!f->started || f->finished)
            continue;
        for (batch = 0; batch < 2000; batch++) {
            struct prun_buf v = {0};

            n = prun_iter_next(f->it, &items, &e);
            if (n == PRUN_ITER_AGAIN) {
                watch_input(r, 2 * t + 1, prun_iter_fd(f->it));
                break;
            }
            if (n <= 0)
                break;
            prun_items_value(items, (size_t)n, &v);
            if (r->o->skip != NULL &&
                r->o->skip(r->o->skip_ctx, t, items, (size_t)n)) {
                /* --resume: done in the earlier run; done in this one. */
                prun_state_done(
                    r->o->state, r->job->tasks[t].name, v.data ? v.data : "");
                f->next_index++;
            } else {
                prun_state_pool_push(r->o->state, r->job->tasks[t].name,
                    f->next_index++, v.data ? v.data : "");
                f->queued++;
            }
            prun_buf_free(&v);
        }
        if (n == PRUN_ITER_AGAIN)
            continue;
        if (n <= 0) {
            if (n < 0)
                note_warning(r, &e);
            prun_state_pool_fed(r->o->state, r->job->tasks[t].name, f->queued);
            f->finished = 1;
        } else {
            more = 1;
        }
    }
    return more;
}

static void start_feed(struct runner *r, size_t t)
{
    struct pool_feed *f = &r->feeds[t];
    struct prun_err e;

    if (f->started)
        return;
    f->started = 1;
    if (prun_iter_open_flags(r->job, &r->job->tasks[t].foreach,
            PRUN_ITER_STRICT | PRUN_ITER_ASYNC, &f->it, &e) < 0) {
        note_warning(r, &e);
        f->finished = 1;
        prun_state_pool_fed(r->o->state, r->job->tasks[t].name, f->queued);
    }
}

/* Starts inst in a free slot; a start that fails finishes it at once. */
static void start_inst(struct runner *r, struct prun_inst *inst)
{
    const struct prun_task *task = &r->job->tasks[inst->task];
    struct prun_spawn_opts so;
    struct prun_ctx ctx;
    struct prun_err e;
    struct proc *p;
    struct prun_buf cwd = {0};
    char **argv = NULL, **envp = NULL;
    struct prun_segchild sc;
    int outp[2] = {-1, -1}, errp[2] = {-1, -1}, rc, have_sc = 0;
    size_t slot = r->free_slots[--r->nfree];

    p = &r->procs[slot];
    memset(p, 0, sizeof(*p));
    p->inst = inst;
    p->pid = -1;
    p->fd[0] = p->fd[1] = -1;
    p->grace = task_grace(r, task);
    r->running++;
    if (inst->seq == 0)
        inst->seq = ++r->seq;
    if (task->pool && r->feeds != NULL)
        start_feed(r, inst->task);
    fill_ctx(r, inst, &ctx);
    p->start_mono = prun_now_ms();
    p->start_wall = prun_wall_ms();

    p->cap = prun_capture_new(r->out, task->name, inst->index, &e);
    if (p->cap == NULL) {
        snprintf(p->exec_err, sizeof(p->exec_err), "%s", e.msg);
        goto fail;
    }
    memset(&sc, 0, sizeof(sc));
    if (r->o->segs != NULL) {
        if (prun_segset_child(r->o->segs, inst->task, &sc, &e) < 0) {
            snprintf(p->exec_err, sizeof(p->exec_err), "%s", e.msg);
            goto fail;
        }
        have_sc = 1;
    }
    argv = prun_task_argv(task, &ctx);
    envp = build_envp(r, task, &r->envs[inst->task], &ctx, &sc);
    if (argv == NULL || envp == NULL ||
        (task->cwd && prun_tpl_expand(task->cwd, &ctx, 0, &cwd) < 0)) {
        snprintf(p->exec_err, sizeof(p->exec_err), "out of memory");
        goto fail;
    }
    if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
        fcntl(outp[0], F_SETFL, O_NONBLOCK) < 0 ||
        fcntl(errp[0], F_SETFL, O_NONBLOCK) < 0) {
        snprintf(p->exec_err, sizeof(p->exec_err), "cannot create a pipe: %s",
            strerror(errno));
        goto fail;
    }
    memset(&so, 0, sizeof(so));
    so.path = argv[0];
    so.argv = argv;
    so.envp = envp;
    so.cwd = task->cwd ? cwd.data : NULL;
    so.stdin_fd = r->nullfd;
    so.stdout_fd = outp[1];
    so.stderr_fd = errp[1];
    so.keep_fds = sc.fds;
    so.nkeep = sc.nfds;
    rc = prun_spawn(&so, &p->pid, &e);
    close(outp[1]);
    close(errp[1]);
    outp[1] = errp[1] = -1;
    p->fd[0] = outp[0];
    p->fd[1] = errp[0];
    outp[0] = errp[0] = -1;
    if (rc < 0) {
        snprintf(p->exec_err, sizeof(p->exec_err), "%s", e.msg);
        if (p->pid <= 0)
            goto fail;
        /* The child exists and has exited; SIGCHLD will finish it. */
    }
    if (epoll_add(r, p->fd[0], (uint64_t)slot << 1) < 0 ||
        epoll_add(r, p->fd[1], (uint64_t)slot << 1 | 1) < 0) {
        /* Without the pipes watched, output is read when the child ends. */
        close_pipe(p, 0);
        close_pipe(p, 1);
    }
    if (task->timeout_ms > 0)
        p->deadline = p->start_mono + task->timeout_ms;
    if (p->pid > 0)
        prun_guardian_add(r->guardian, p->pid);
    goto out;
fail:
    close_pipe(p, 0);
    close_pipe(p, 1);
    finish(r, p, -1);
out:
    if (outp[0] >= 0)
        close(outp[0]);
    if (outp[1] >= 0)
        close(outp[1]);
    if (errp[0] >= 0)
        close(errp[0]);
    if (errp[1] >= 0)
        close(errp[1]);
    if (have_sc)
        prun_segset_child_done(r->o->segs, &sc);
    prun_buf_free(&cwd);
    free(argv);
    free(envp);
}

static const char *signame(int sig, char *buf, size_t n)
{
    const char *abbrev = sigabbrev_np(sig);

    if (abbrev)
        snprintf(buf, n, "SIG%s", abbrev);
    else
        snprintf(buf, n, "signal %d", sig);
    return buf;
}

static void record_failure(
    struct runner *r, struct proc *p, enum prun_fail_kind kind, int status)
{
    const struct prun_inst *inst = p->inst;
    struct prun_failure *f;
    char sb[32], db[32];
    size_t i;

    if (r->res->nfail >= PRUN_MAX_FAILURES) {
        r->res->fail_more++;
        return;
    }
    f = &r->res->fail[r->res->nfail++];
    memset(f, 0, sizeof(*f));
    f->task = inst->task;
    f->index = inst->index;
    f->attempt = inst->attempt;
    f->kind = kind;
    f->status = status;
    for (i = 0; i < inst->nitems; i++) {
        size_t used = strlen(f->item);
        snprintf(f->item + used, sizeof(f->item) - used, "%s%s", i ? " " : "",
            inst->items[i].text);
    }
    switch (kind) {
    case PRUN_FAIL_EXIT:
        snprintf(f->reason, sizeof(f->reason), "exit %d", status);
        break;
    case PRUN_FAIL_SIGNAL:
        snprintf(f->reason, sizeof(f->reason), "killed by %s",
            signame(status, sb, sizeof(sb)));
        break;
    case PRUN_FAIL_TIMEOUT:
        snprintf(f->reason, sizeof(f->reason), "timed out after %s",
            prun_fmt_duration(
                r->job->tasks[inst->task].timeout_ms, db, sizeof(db)));
        break;
    case PRUN_FAIL_EXEC:
        snprintf(f->reason, sizeof(f->reason), "%s", p->exec_err);
        break;
    case PRUN_FAIL_CANCEL:
        snprintf(f->reason, sizeof(f->reason), "cancelled");
        break;
    }
    if (p->cap)
        snprintf(f->tail, sizeof(f->tail), "%s", prun_capture_err_tail(p->cap));
}

/*
 * attempt is the one that ended: for a retry the scheduler has already
 * moved inst on to the next.
 */
static void record_state(struct runner *r, struct proc *p, enum prun_verdict v,
    unsigned attempt, enum prun_fail_kind kind, int status)
{
    static const char *const kinds[] = {
        "exit", "signal", "timeout", "exec", "cancelled"};
    const struct prun_inst *inst = p->inst;
    struct prun_state_end e;
    struct prun_buf item = {0};
    const struct prun_failure *f = NULL;

    prun_items_value(inst->items, inst->nitems, &item);
    memset(&e, 0, sizeof(e));
    e.task = r->job->tasks[inst->task].name;
    e.index = inst->index;
    e.attempt = attempt;
    e.final = v != PRUN_V_RETRY;
    e.succeeded = v == PRUN_V_SUCCEEDED;
    e.was_running = p->recorded;
    e.item = item.data ? item.data : "";
    e.kind = kinds[kind];
    e.status = status;
    e.reason = "";
    e.stderr_tail = p->cap ? prun_capture_err_tail(p->cap) : "";
    if ((v == PRUN_V_FAILED || v == PRUN_V_CANCELLED) && r->res->nfail > 0 &&
        r->res->fail_more == 0)
        f = &r->res->fail[r->res->nfail - 1];
    if (f != NULL)
        e.reason = f->reason;
    prun_state_inst_end(r->o->state, &e);
    if (r->job->tasks[inst->task].pool)
        prun_state_pool_worker_end(
            r->o->state, e.task, inst->index, attempt, v == PRUN_V_SUCCEEDED);
    prun_buf_free(&item);
}

/*
 * An attempt ended: status is the wait status, or -1 when no process ever
 * ran. Decides the outcome, prints or discards the output, logs, frees.
 */
static void finish(struct runner *r, struct proc *p, int status)
{
    struct prun_inst *inst = p->inst;
    struct prun_task_result *tr = &r->res->tasks[inst->task];
    enum prun_outcome outcome;
    enum prun_fail_kind kind = PRUN_FAIL_EXIT;
    enum prun_verdict v;
    struct prun_err e;
    int code = 0, sig = 0, print;
    unsigned attempt;
    int64_t now = prun_now_ms();

    if (status == -1 || p->exec_err[0] != '\0') {
        kind = PRUN_FAIL_EXEC;
        code = 127;
        outcome = PRUN_OUT_FAIL_FINAL;
        if (p->cap) {
            struct prun_buf m = {0};
            if (prun_buf_printf(&m, "parallelrun: %s\n", p->exec_err) == 0)
                prun_capture_feed(p->cap, 2, m.data, m.len, NULL);
            prun_buf_free(&m);
        }
    } else if (WIFEXITED(status)) {
        code = WEXITSTATUS(status);
        outcome = code == 0 ? PRUN_OUT_OK : PRUN_OUT_FAIL;
    } else {
        sig = WTERMSIG(status);
        kind = PRUN_FAIL_SIGNAL;
        outcome = PRUN_OUT_FAIL;
    }
    if (p->why == WHY_TIMEOUT && outcome != PRUN_OUT_OK) {
        kind = PRUN_FAIL_TIMEOUT;
        outcome = PRUN_OUT_FAIL;
    } else if (p->why == WHY_CANCEL && outcome != PRUN_OUT_OK) {
        kind = PRUN_FAIL_CANCEL;
        outcome = PRUN_OUT_CANCELLED;
    }

    /* The verdict tells whether this attempt was the last one. */
    attempt = inst->attempt;
    v = prun_sched_finish(r->sched, inst, outcome, now);
    if (v == PRUN_V_FAILED || v == PRUN_V_CANCELLED)
        record_failure(r, p, kind, kind == PRUN_FAIL_SIGNAL ? sig : code);
    if (r->o->state != NULL)
        record_state(
            r, p, v, attempt, kind, kind == PRUN_FAIL_SIGNAL ? sig : code);
    if (v == PRUN_V_SUCCEEDED)
        tr->succeeded++;
    else if (v == PRUN_V_FAILED)
        tr->failed++;
    else if (v == PRUN_V_CANCELLED)
        tr->cancelled++;

    print = v != PRUN_V_RETRY && (!r->o->out.quiet || v != PRUN_V_SUCCEEDED);
    if (prun_capture_finish(p->cap, print, &e) < 0)
        note_warning(r, &e);
    p->cap = NULL;

    if (v != PRUN_V_RETRY) {
        struct prun_joblog_row row;
        struct prun_buf cmd = {0};
        struct prun_ctx ctx;

        fill_ctx(r, inst, &ctx);
        if (prun_task_cmdline(&r->job->tasks[inst->task], &ctx, &cmd) == 0) {
            row.seq = inst->seq;
            row.start_wall_ms = p->start_wall;
            row.runtime_ms = now - p->start_mono;
            row.exitval = code;
            row.signal = sig;
            row.command = cmd.data ? cmd.data : "";
            if (prun_output_joblog(r->out, &row, &e) < 0)
                note_warning(r, &e);
        }
        prun_buf_free(&cmd);
        prun_inst_free(inst);
    }
    close_pipe(p, 0);
    close_pipe(p, 1);
    p->inst = NULL;
    r->free_slots[r->nfree++] = (size_t)(p - r->procs);
    r->running--;
}

static struct proc *find_proc(struct runner *r, pid_t pid)
{
    size_t i;

    for (i = 0; i < r->nprocs; i++)
        if (r->procs[i].inst != NULL && r->procs[i].pid == pid)
            return &r->procs[i];
    return NULL;
}

static void add_straggler(struct runner *r, pid_t pgid, int64_t kill_at)
{
    if (r->nstrag == r->capstrag) {
        size_t cap = r->capstrag ? r->capstrag * 2 : 16;
        struct straggler *n = realloc(r->strag, cap * sizeof(*n));
        if (n == NULL)
            return; /* the final sweep still kills it */
        r->strag = n;
        r->capstrag = cap;
    }
    r->strag[r->nstrag].pgid = pgid;
    r->strag[r->nstrag].kill_at = kill_at;
    r->nstrag++;
}

static void reap(struct runner *r)
{
    siginfo_t si;
    int status;

    for (;;) {
        struct proc *p;

        memset(&si, 0, sizeof(si));
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 ||
            si.si_pid == 0)
            return;
        p = find_proc(r, si.si_pid);
        if (p == NULL) {
            /* An orphaned grandchild reparented to us. */
            waitpid(si.si_pid, NULL, 0);
            continue;
        }
        /*
         * The leader is still a zombie, so its group id cannot be reused:
         * it is safe to signal whatever it left behind.
         */
        kill(-p->pid, SIGTERM);
        if (waitpid(p->pid, &status, 0) < 0)
            status = 0;
        if (kill(-p->pid, 0) == 0)
            add_straggler(r, p->pid, prun_now_ms() + p->grace);
        else
            prun_guardian_del(r->guardian, p->pid);
        read_stream(r, p, 0);
        read_stream(r, p, 1);
        finish(r, p, status);
    }
}

/* Is some child of ours still in group pgid? Then the id is still ours. */
static int group_is_ours(pid_t pgid)
{
    pid_t kids[512];
    int n = prun_children(kids, 512), i;

    for (i = 0; i < n; i++)
        if (getpgid(kids[i]) == pgid)
            return 1;
    return 0;
}

static void stop_all(struct runner *r, int hard)
{
    int64_t now = prun_now_ms();
    size_t i;

    for (i = 0; i < r->nprocs; i++) {
        struct proc *p = &r->procs[i];

        if (p->inst == NULL || p->pid <= 0)
            continue;
        if (p->why == WHY_NONE)
            p->why = WHY_CANCEL;
        if (hard) {
            kill(-p->pid, SIGKILL);
        } else if (p->kill_at == 0) {
            kill(-p->pid, SIGTERM);
            kill(-p->pid, SIGCONT);
            p->kill_at = now + p->grace;
        }
    }
}

static void on_signal(struct runner *r)
{
    struct signalfd_siginfo si;
    int chld = 0;

    while (read(r->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGCHLD) {
            chld = 1;
            continue;
        }
        if (r->stop_signal != 0) {
            /* A second stop signal: no more patience. */
            stop_all(r, 1);
            continue;
        }
        r->stop_signal = (int)si.ssi_signo;
        r->stopping = 1;
        prun_sched_stop(r->sched);
        stop_all(r, 0);
    }
    if (chld)
        reap(r);
}

static void check_deadlines(struct runner *r, int64_t now)
{
    size_t i, j;

    for (i = 0; i < r->nprocs; i++) {
        struct proc *p = &r->procs[i];

        if (p->inst == NULL || p->pid <= 0)
            continue;
        if (p->deadline && now >= p->deadline && p->kill_at == 0) {
            p->why = WHY_TIMEOUT;
            kill(-p->pid, SIGTERM);
            kill(-p->pid, SIGCONT);
            p->kill_at = now + p->grace;
        } else if (p->kill_at && now >= p->kill_at) {
            kill(-p->pid, SIGKILL);
            p->kill_at = INT64_MAX; /* sent; wait for SIGCHLD */
        }
    }
    for (i = j = 0; i < r->nstrag; i++) {
        if (now >= r->strag[i].kill_at) {
            if (group_is_ours(r->strag[i].pgid))
                kill(-r->strag[i].pgid, SIGKILL);
            prun_guardian_del(r->guardian, r->strag[i].pgid);
            continue;
        }
        r->strag[j++] = r->strag[i];
    }
    r->nstrag = j;
}

static int64_t next_deadline(const struct runner *r)
{
    int64_t t = INT64_MAX;
    size_t i;

    if (!r->stopping && r->wake < t)
        t = r->wake;
    if (r->o->out.progress && r->next_progress < t)
        t = r->next_progress;
    if (r->o->state != NULL && r->next_tick < t)
        t = r->next_tick;
    if (r->next_flush != 0 && r->next_flush < t)
        t = r->next_flush;
    for (i = 0; i < r->nprocs; i++) {
        const struct proc *p = &r->procs[i];

        if (p->inst == NULL)
            continue;
        if (p->deadline && p->kill_at == 0 && p->deadline < t)
            t = p->deadline;
        if (p->kill_at && p->kill_at < t)
            t = p->kill_at;
    }
    for (i = 0; i < r->nstrag; i++)
        if (r->strag[i].kill_at < t)
            t = r->strag[i].kill_at;
    return t;
}

static void arm_timer(struct runner *r, int64_t at)
{
    struct itimerspec its;

    if (at == INT64_MAX)
        at = 0;
    if (at == r->armed)
        return;
    memset(&its, 0, sizeof(its));
    if (at != 0) {
        its.it_value.tv_sec = at / 1000;
        its.it_value.tv_nsec = (at % 1000) * 1000000;
        if (at <= 0)
            its.it_value.tv_nsec = 1;
    }
    timerfd_settime(r->timerfd, TFD_TIMER_ABSTIME, &its, NULL);
    r->armed = at;
}

static void show_progress(struct runner *r, int64_t now)
{
    struct prun_progress pg;
    struct prun_sched_stats st;

    if (!r->o->out.progress)
        return;
    prun_sched_stats(r->sched, &st);
    pg.done = st.succeeded;
    pg.failed = st.failed + st.cancelled;
    pg.running = st.running;
    pg.total = st.total;
    pg.elapsed_ms = prun_wall_ms() - r->res->start_wall_ms;
    pg.child_done = pg.child_total = 0;
    if (r->o->state != NULL)
        prun_state_progress(r->o->state, &pg.child_done, &pg.child_total);
    prun_output_progress(r->out, &pg);
    r->next_progress = now + PROGRESS_MS;
}

static int setup(struct runner *r, struct prun_err *err)
{
    sigset_t mask;
    size_t i;

    r->epfd = r->sigfd = r->timerfd = r->nullfd = -1;
    prun_spawn_init();
    if (prun_guardian_start(&r->guardian, err) < 0)
        return err ? err->code : PRUN_ESYS;
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &mask, &r->oldmask) < 0)
        return prun_err_sys(err, "sigprocmask");
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    r->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    r->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    r->nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (r->epfd < 0 || r->sigfd < 0 || r->timerfd < 0 || r->nullfd < 0)
        return prun_err_sys(err, "cannot set up the event loop");
    if (epoll_add(r, r->sigfd, TAG_SIGNAL) < 0 ||
        epoll_add(r, r->timerfd, TAG_TIMER) < 0)
        return prun_err_sys(err, "epoll_ctl");

    /*
     * Three descriptors per running child (two pipes and a spare for exec
     * errors): make sure the limit allows the whole -j before starting.
     */
    r->nprocs = r->o->jobs;
    {
        struct rlimit rl;
        rlim_t need = (rlim_t)r->o->jobs * 4 + 64;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
            rl.rlim_cur = need < rl.rlim_max ? need : rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
            getrlimit(RLIMIT_NOFILE, &rl);
            /*
             * Still short (a low hard limit): run fewer at once rather
             * than fail halfway through for want of a descriptor.
             */
            if (rl.rlim_cur < need) {
                size_t fit = rl.rlim_cur > 72 ? (rl.rlim_cur - 64) / 4 : 2;

                r->nprocs = fit < r->nprocs ? fit : r->nprocs;
                snprintf(r->res->note, sizeof(r->res->note),
                    "open file limit %llu allows %zu children at once, not "
                    "%u (raise it with ulimit -n)",
                    (unsigned long long)rl.rlim_cur, r->nprocs, r->o->jobs);
            }
        }
    }

    r->inw = calloc(2 * r->job->ntasks + 1, sizeof(*r->inw));
    if (r->inw == NULL)
        return prun_err_set(err, PRUN_ENOMEM, "out of memory");
    for (i = 0; i < 2 * r->job->ntasks; i++)
        r->inw[i].fd = -1;
    r->procs = calloc(r->nprocs, sizeof(*r->procs));
    r->free_slots = calloc(r->nprocs, sizeof(size_t));
    r->res->tasks = calloc(r->job->ntasks, sizeof(*r->res->tasks));
    r->res->fail = calloc(PRUN_MAX_FAILURES, sizeof(*r->res->fail));
    if (!r->procs || !r->free_slots || !r->res->tasks || !r->res->fail)
        return prun_err_set(err, PRUN_ENOMEM, "out of memory");
    r->res->ntasks = r->job->ntasks;
    /* A stack of free slots, lowest on top. */
    for (i = 0; i < r->nprocs; i++)
        r->free_slots[i] = r->nprocs - 1 - i;
    r->nfree = r->nprocs;
    return build_task_envs(r, err);
}

static void teardown(struct runner *r)
{
    size_t t;

    if (r->envs) {
        for (t = 0; t < r->job->ntasks; t++)
            free(r->envs[t].base);
        free(r->envs);
    }
    if (r->feeds) {
        for (t = 0; t < r->job->ntasks; t++)
            prun_iter_free(r->feeds[t].it);
        free(r->feeds);
    }
    free(r->shadow_tasks);
    free(r->inw);
    free(r->procs);
    free(r->free_slots);
    free(r->strag);
    if (r->epfd >= 0)
        close(r->epfd);
    if (r->sigfd >= 0)
        close(r->sigfd);
    if (r->timerfd >= 0)
        close(r->timerfd);
    if (r->nullfd >= 0)
        close(r->nullfd);
    sigprocmask(SIG_SETMASK, &r->oldmask, NULL);
}

/* One pass of the loop body after epoll_wait. */
static void dispatch(struct runner *r, struct epoll_event *evs, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        uint64_t tag = evs[i].data.u64;

        if (tag == TAG_SIGNAL) {
            on_signal(r);
        } else if (tag == TAG_REDIS) {
            if (r->o->state != NULL)
                prun_state_io(r->o->state,
                    (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0,
                    (evs[i].events & EPOLLOUT) != 0);
        } else if (tag == TAG_TIMER) {
            uint64_t ticks;
            if (read(r->timerfd, &ticks, sizeof(ticks)) < 0)
                ticks = 0;
            r->armed = 0;
        } else if ((tag >> 62) == 1) {
            input_ready(r, (size_t)(tag & ~TAG_INPUT));
        } else {
            struct proc *p = &r->procs[tag >> 1];
            if (p->inst != NULL)
                read_stream(r, p, (int)(tag & 1));
        }
    }
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
    struct prun_buf v = {0};

    if (!r->o->skip(r->o->skip_ctx, task, items, n))
        return 0;
    r->res->tasks[task].succeeded++;
    if (r->o->state != NULL) {
        prun_items_value(items, n, &v);
        prun_state_done(
            r->o->state, r->job->tasks[task].name, v.data ? v.data : "");
        prun_buf_free(&v);
    }
    return 1;
}

/*
 * The scheduler sees pool tasks as what they start: `jobs` workers (a
 * range of worker indices), while their real items go to Redis. Other
 * tasks are shared as they are.
 */
static int make_shadow(struct runner *r, struct prun_err *err)
{
    const struct prun_job *job = r->o->job;
    size_t t;
    int any = 0;

    r->shadow = *job;
    for (t = 0; t < job->ntasks; t++)
        any |= job->tasks[t].pool;
    if (!any)
        return 0;
    if (r->o->state == NULL)
        return prun_err_set(err, PRUN_EINVAL,
            "%s: pool tasks need Redis, which is off (--redis off)", job->path);
    r->shadow_tasks = calloc(job->ntasks, sizeof(*r->shadow_tasks));
    r->feeds = calloc(job->ntasks, sizeof(*r->feeds));
    if (r->shadow_tasks == NULL || r->feeds == NULL)
        return prun_err_set(err, PRUN_ENOMEM, "out of memory");
    for (t = 0; t < job->ntasks; t++) {
        struct prun_task *st = &r->shadow_tasks[t];

        *st = job->tasks[t];
        if (!st->pool)
            continue;
        memset(&st->foreach, 0, sizeof(st->foreach));
        st->foreach.kind = PRUN_SRC_RANGE;
        st->foreach.pos = job->tasks[t].foreach.pos;
        st->foreach.from = 0;
        st->foreach.to = st->jobs ? st->jobs : r->o->jobs;
        st->foreach.step = 1;
        st->foreach.chunk = 1;
    }
    r->shadow.tasks = r->shadow_tasks;
    return 0;
}

int prun_run(const struct prun_run_opts *o, struct prun_run_result *res,
    struct prun_err *err)
{
    struct runner r;
    struct prun_sched_opts so;
    struct epoll_event evs[64];
    int rc = 0, halted_now = 0;
    int64_t now;

    memset(&r, 0, sizeof(r));
    memset(res, 0, sizeof(*res));
    r.o = o;
    r.job = o->job;
    r.res = res;
    res->start_wall_ms = prun_wall_ms();
    now = prun_now_ms();

    so.jobs = o->jobs;
    so.seed = o->seed;
    r.redis_fd = -1;
    rc = make_shadow(&r, err);
    if (rc < 0)
        goto out;
    rc = prun_sched_new(&r.shadow, &so, &r.sched, err);
    if (rc < 0)
        goto out;
    if (o->skip != NULL)
        prun_sched_set_skip(r.sched, resume_skip, &r);
    rc = setup(&r, err);
    if (rc < 0)
        goto out;
    rc = prun_output_new(&o->out, &r.out, err);
    if (rc < 0)
        goto out;

    for (;;) {
        int64_t wake = INT64_MAX;
        int done = 0, n, feeding;

        now = prun_now_ms();
        check_deadlines(&r, now);
        redis_tick(&r, now);
        while (!r.stopping && r.nfree > 0) {
            struct prun_inst *inst = NULL;
            int next = prun_sched_next(r.sched, now, &inst, &wake, err);

            if (next < 0) {
                /* A foreach source failed mid-run: stop like on Ctrl-C. */
                rc = next;
                r.stopping = 1;
                prun_sched_stop(r.sched);
                stop_all(&r, 0);
                break;
            }
            if (next == PRUN_NEXT_DONE) {
                done = 1;
                break;
            }
            if (next == PRUN_NEXT_WAIT)
                break;
            start_inst(&r, inst);
        }
        r.input_busy = 0;
        if (!r.stopping)
            watch_inputs(&r);
        r.wake = wake;
        if (!halted_now && prun_sched_halt_now(r.sched)) {
            halted_now = 1;
            r.stopping = 1;
            stop_all(&r, 0);
        }
        if (r.running == 0 && (done || r.stopping))
            break;
        if (r.o->out.progress && now >= r.next_progress)
            show_progress(&r, now);
        feeding = !r.stopping && feed_pools(&r);
        redis_sync_fd(&r, prun_now_ms());
        arm_timer(&r, next_deadline(&r));
        n = epoll_wait(r.epfd, evs, 64, feeding || r.input_busy ? 0 : -1);
        if (n < 0 && errno != EINTR) {
            rc = prun_err_sys(err, "epoll_wait");
            stop_all(&r, 1);
            break;
        }
        if (n > 0)
            dispatch(&r, evs, n);
        redis_sync_fd(&r, prun_now_ms());
    }

out:
    if (r.sched && o->state != NULL && res->tasks != NULL)
        redis_counts(&r);
    if (r.sched) {
        size_t t;

        prun_sched_stats(r.sched, &res->stats);
        res->halted = prun_sched_halted(r.sched) && r.stop_signal == 0;
        for (t = 0; res->tasks && t < o->job->ntasks; t++) {
            const char *why = prun_sched_task_error(r.sched, t);

            res->tasks[t].count = prun_sched_task_count(r.sched, t);
            res->tasks[t].needs_failed = prun_sched_task_skipped(r.sched, t);
            if (why != NULL)
                snprintf(res->tasks[t].error, sizeof(res->tasks[t].error), "%s",
                    why);
        }
    }
    res->signal = r.stop_signal;
    res->elapsed_ms = prun_wall_ms() - res->start_wall_ms;
    prun_guardian_stop(r.guardian);
    r.guardian = NULL;
    /* Whatever is still alive below us (stragglers) goes now. */
    if (r.nstrag > 0 || rc < 0)
        prun_kill_descendants(2000);
    else
        prun_kill_descendants(200);
    prun_output_free(r.out);
    teardown(&r);
    prun_sched_free(r.sched);
    return rc;
}

void prun_run_result_free(struct prun_run_result *res)
{
    if (res == NULL)
        return;
    free(res->tasks);
    free(res->fail);
    res->tasks = NULL;
    res->fail = NULL;
}
