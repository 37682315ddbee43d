/* SPDX-License-Identifier: MIT */
/*
 * exec_local: the local executor, children of this host.
 *
 * Each attempt runs in a slot: a child process leading its own process
 * group, with its stdout and stderr on non-blocking pipes watched by the
 * loop. When a child exits, whatever it left running in its group gets
 * SIGTERM at once and SIGKILL after kill_grace (a "straggler"); the
 * runner is a child subreaper, so orphaned grandchildren are reparented
 * to it and reaped here, never left as zombies. Timeouts and stops act on
 * the whole group. A guardian process stops every group if the runner
 * dies. When the run ends, every remaining descendant is killed.
 *
 * It does not decide what runs or what an exit means (the loop and the
 * scheduler do), and does not talk to Redis.
 */
#include "exec_local.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child_env.h"
#include "spawn.h"

#define READ_CHUNK 65536

struct local;
struct proc;

/* The watch of one of a slot's pipes: which slot, which stream. */
struct pipe_watch {
    struct prun__watch w; /* first: the loop hands back &w */
    struct proc *p;
    int stream; /* 0 stdout, 1 stderr */
};

/* One slot: a running child, or free (a == NULL). */
struct proc {
    struct local *x;
    struct prun__attempt *a;
    pid_t pid;
    int fd[2]; /* read ends of stdout and stderr, -1 closed */
    struct pipe_watch w[2];
    int64_t deadline; /* timeout, 0 none */
    int64_t kill_at;  /* SIGKILL after SIGTERM, 0 none */
    int64_t grace;
};

struct straggler {
    pid_t pgid;
    int64_t kill_at;
};

struct local {
    struct prun__executor base;
    struct prun__local_opts o;
    struct prun__envset *envs;
    struct prun_guardian *guardian;
    struct proc *procs;
    size_t nprocs;
    size_t *free_slots; /* a stack, lowest slot on top */
    size_t nfree;
    struct straggler *strag;
    size_t nstrag, capstrag;
    int nullfd;
    char readbuf[READ_CHUNK];
};

static void warn(struct local *x, const struct prun_err *e)
{
    if (x->base.hooks.warn)
        x->base.hooks.warn(x->base.hooks.ctx, e->msg);
}

static void close_pipe(struct proc *p, int i)
{
    if (p->fd[i] >= 0) {
        p->x->base.hooks.unwatch(p->x->base.hooks.ctx, p->fd[i]);
        close(p->fd[i]);
        p->fd[i] = -1;
    }
}

/* Reads what is available on stream i of p; closes it at EOF. */
static void read_stream(struct proc *p, int i)
{
    struct local *x = p->x;
    struct prun_err e;
    ssize_t n;
    int rounds;

    /* A bounded number of reads, so one chatty child cannot starve others. */
    for (rounds = 0; rounds < 16 && p->fd[i] >= 0; rounds++) {
        n = read(p->fd[i], x->readbuf, sizeof(x->readbuf));
        if (n > 0) {
            if (prun__capture_feed(
                    p->a->cap, i + 1, x->readbuf, (size_t)n, &e) < 0)
                warn(x, &e);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        close_pipe(p, i);
    }
}

static void on_pipe(struct prun__watch *w, uint32_t events)
{
    struct pipe_watch *pw = (struct pipe_watch *)w;

    (void)events;
    if (pw->p->a != NULL)
        read_stream(pw->p, pw->stream);
}

/* The attempt in p is over: hand it back and free the slot. */
static void release(struct proc *p, int status)
{
    struct local *x = p->x;
    struct prun__attempt *a = p->a;

    close_pipe(p, 0);
    close_pipe(p, 1);
    p->a = NULL;
    p->pid = -1;
    x->free_slots[x->nfree++] = (size_t)(p - x->procs);
    x->base.hooks.ended(x->base.hooks.ctx, a, status);
}

static size_t local_capacity(const struct prun__executor *base)
{
    const struct local *x = (const struct local *)base;
    return x->nfree;
}

static int64_t task_grace(const struct local *x, const struct prun_task *t)
{
    return t->kill_grace_ms >= 0 ? t->kill_grace_ms : x->o.kill_grace_ms;
}

/* Creates the child's two pipes, read ends non-blocking. */
static int make_pipes(int outp[2], int errp[2])
{
    if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
        fcntl(outp[0], F_SETFL, O_NONBLOCK) < 0 ||
        fcntl(errp[0], F_SETFL, O_NONBLOCK) < 0)
        return -1;
    return 0;
}

/*
 * Spawns p's attempt with its argv, environment and cwd. Returns 0 when a
 * child exists (p->pid > 0, its pipes in p->fd, possibly with exec_err
 * set: then it has already exited), -1 when none could be created
 * (exec_err says why).
 */
static int spawn_attempt(struct local *x, struct proc *p,
    const struct prun_segchild *sc, char **argv, char **envp, const char *cwd)
{
    struct prun__attempt *a = p->a;
    struct prun_spawn_opts so;
    struct prun_err e;
    int outp[2] = {-1, -1}, errp[2] = {-1, -1}, rc;

    if (make_pipes(outp, errp) < 0) {
        snprintf(a->exec_err, sizeof(a->exec_err), "cannot create a pipe: %s",
            strerror(errno));
        for (int i = 0; i < 2; i++) {
            if (outp[i] >= 0)
                close(outp[i]);
            if (errp[i] >= 0)
                close(errp[i]);
        }
        return -1;
    }
    memset(&so, 0, sizeof(so));
    so.path = argv[0];
    so.argv = argv;
    so.envp = envp;
    so.cwd = cwd;
    so.stdin_fd = x->nullfd;
    so.stdout_fd = outp[1];
    so.stderr_fd = errp[1];
    so.keep_fds = sc->fds;
    so.nkeep = sc->nfds;
    rc = prun__spawn(&so, &p->pid, &e);
    close(outp[1]);
    close(errp[1]);
    p->fd[0] = outp[0];
    p->fd[1] = errp[0];
    if (rc < 0) {
        snprintf(a->exec_err, sizeof(a->exec_err), "%s", e.msg);
        /* A child that exists has exited; SIGCHLD will finish it. */
        if (p->pid <= 0)
            return -1;
    }
    return 0;
}

/* envp (one malloc'd block) with e appended, in a new block; NULL on ENOMEM. */
static char **add_env1(char **envp, const char *e)
{
    size_t n = 0;
    char **out;

    while (envp[n] != NULL)
        n++;
    out = malloc((n + 2) * sizeof(char *));
    if (out != NULL) {
        memcpy(out, envp, n * sizeof(char *));
        out[n] = (char *)e;
        out[n + 1] = NULL;
    }
    /* The strings live in envp's block: the caller frees both. */
    return out;
}

/*
 * The child's directory: the task's cwd (expanded in cwd; a relative one
 * under the executor's directory, if it has one), else the executor's;
 * NULL: the runner's own.
 */
static const char *child_dir(
    struct local *x, const struct prun_task *task, struct prun_buf *cwd)
{
    struct prun_buf joined = {0};

    if (task->cwd == NULL)
        return x->o.cwd;
    if (x->o.cwd == NULL || cwd->data[0] == '/')
        return cwd->data;
    if (prun__buf_printf(&joined, "%s/%s", x->o.cwd, cwd->data) < 0)
        return cwd->data;
    prun__buf_free(cwd);
    *cwd = joined;
    return cwd->data;
}

static void local_start(struct prun__executor *base, struct prun__attempt *a)
{
    struct local *x = (struct local *)base;
    const struct prun_task *task = a->task;
    const struct prun__exec_hooks *h = &x->base.hooks;
    struct prun_err e;
    struct proc *p;
    struct prun_buf cwd = {0};
    char **argv = NULL, **envp = NULL, **envp0 = NULL;
    struct prun_segchild sc;
    int have_sc = 0;
    size_t slot = x->free_slots[--x->nfree];

    p = &x->procs[slot];
    p->a = a;
    p->pid = -1;
    p->fd[0] = p->fd[1] = -1;
    p->deadline = p->kill_at = 0;
    p->grace = task_grace(x, task);
    a->pid = -1;

    memset(&sc, 0, sizeof(sc));
    if (x->o.segs != NULL) {
        if (prun__segset_child(x->o.segs, a->inst->task, &sc, &e) < 0) {
            snprintf(a->exec_err, sizeof(a->exec_err), "%s", e.msg);
            goto fail;
        }
        have_sc = 1;
    }
    /* {%} and PARALLELRUN_SLOT: GNU parallel's slot number, 1-based. */
    a->ctx.slot = (unsigned)slot + 1;
    if (h->starting != NULL)
        h->starting(h->ctx, a);
    argv = prun__task_argv(task, &a->ctx);
    envp = prun__envset_build(x->envs, a->inst->task, &a->ctx, &sc);
    if (envp != NULL && a->env1 != NULL) {
        envp0 = envp;
        envp = add_env1(envp0, a->env1);
    }
    if (argv == NULL || envp == NULL ||
        (task->cwd && prun__tpl_expand(task->cwd, &a->ctx, 0, &cwd) < 0)) {
        snprintf(a->exec_err, sizeof(a->exec_err), "out of memory");
        goto fail;
    }
    /* An empty item must not become exec("") or chdir(""). */
    if (argv[0][0] == '\0' || (task->cwd && cwd.data[0] == '\0')) {
        snprintf(a->exec_err, sizeof(a->exec_err),
            "%s is empty once the placeholders are substituted",
            argv[0][0] == '\0' ? "the command" : "cwd");
        goto fail;
    }
    if (spawn_attempt(x, p, &sc, argv, envp, child_dir(x, task, &cwd)) < 0)
        goto fail;
    a->pid = p->pid;
    if (h->watch(h->ctx, p->fd[0], EPOLLIN, &p->w[0].w) < 0 ||
        h->watch(h->ctx, p->fd[1], EPOLLIN, &p->w[1].w) < 0) {
        /* Without the pipes watched, output is read when the child ends. */
        close_pipe(p, 0);
        close_pipe(p, 1);
    }
    /* A pool worker's timeout is per item (pool_wq.c), not for its life. */
    if (task->timeout_ms > 0 && !task->pool)
        p->deadline = a->start_mono + task->timeout_ms;
    prun__guardian_add(x->guardian, p->pid);
    goto out;
fail:
    release(p, -1);
out:
    if (have_sc)
        prun__segset_child_done(x->o.segs, &sc);
    prun__buf_free(&cwd);
    free(argv);
    free(envp);
    free(envp0);
}

static struct proc *find_proc(struct local *x, pid_t pid)
{
    size_t i;

    for (i = 0; i < x->nprocs; i++)
        if (x->procs[i].a != NULL && x->procs[i].pid == pid)
            return &x->procs[i];
    return NULL;
}

static void add_straggler(struct local *x, pid_t pgid, int64_t kill_at)
{
    if (x->nstrag == x->capstrag) {
        size_t cap = x->capstrag ? x->capstrag * 2 : 16;
        struct straggler *n = realloc(x->strag, cap * sizeof(*n));
        if (n == NULL)
            return; /* the final sweep still kills it */
        x->strag = n;
        x->capstrag = cap;
    }
    x->strag[x->nstrag].pgid = pgid;
    x->strag[x->nstrag].kill_at = kill_at;
    x->nstrag++;
}

/*
 * The guardian died (someone killed it by pid: nothing aimed at our group
 * or session reaches it). Without it a kill -9 of the runner would leave
 * grandchildren and published segments behind, so a new one is started
 * and told every group still running; if that fails, the run stops.
 */
static void guardian_died(struct local *x, int status)
{
    const struct prun__exec_hooks *h = &x->base.hooks;
    pid_t old = prun__guardian_pid(x->guardian);
    char how[64], sig[32], msg[300];
    struct prun_err e;
    size_t i;

    if (WIFSIGNALED(status))
        snprintf(how, sizeof(how), "killed by %s",
            prun__signame(WTERMSIG(status), sig, sizeof(sig)));
    else
        snprintf(how, sizeof(how), "exit %d", WEXITSTATUS(status));
    if (prun__guardian_restart(x->guardian, &e) < 0) {
        struct prun_err f;

        prun__err_set(&f, PRUN_ESYS,
            "the guardian process (pid %ld) died (%s) and no new one could "
            "be started: %s; stopping the run",
            (long)old, how, e.msg);
        h->say(h->ctx, f.msg);
        h->fatal(h->ctx, &f);
        return;
    }
    for (i = 0; i < x->nprocs; i++)
        if (x->procs[i].a != NULL && x->procs[i].pid > 0)
            prun__guardian_add(x->guardian, x->procs[i].pid);
    for (i = 0; i < x->nstrag; i++)
        prun__guardian_add(x->guardian, x->strag[i].pgid);
    snprintf(msg, sizeof(msg),
        "the guardian process (pid %ld) died (%s); started a new one (pid %ld)",
        (long)old, how, (long)prun__guardian_pid(x->guardian));
    h->say(h->ctx, msg);
}

/*
 * The end of child pid, if it is x's (one of its attempts or its
 * guardian): handled, and 1 returned; else 0 and pid left unreaped.
 */
static int reap_own(struct local *x, pid_t pid)
{
    struct proc *p;
    int status;

    if (pid == prun__guardian_pid(x->guardian)) {
        if (waitpid(pid, &status, 0) < 0)
            status = 0;
        guardian_died(x, status);
        return 1;
    }
    p = find_proc(x, pid);
    if (p == NULL)
        return 0;
    /*
     * The leader is still a zombie, so its group id cannot be reused:
     * it is safe to signal whatever it left behind.
     */
    kill(-p->pid, SIGTERM);
    if (waitpid(p->pid, &status, 0) < 0)
        status = 0;
    if (kill(-p->pid, 0) == 0)
        add_straggler(x, p->pid, prun__now_ms() + p->grace);
    else
        prun__guardian_del(x->guardian, p->pid);
    read_stream(p, 0);
    read_stream(p, 1);
    release(p, status);
    return 1;
}

void prun__local_reap(struct prun__executor *const *xs, size_t n)
{
    siginfo_t si;
    size_t i;

    for (;;) {
        /* Peek first: the child is reaped by whoever owns it. */
        memset(&si, 0, sizeof(si));
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 ||
            si.si_pid == 0)
            return;
        for (i = 0; i < n; i++)
            if (reap_own((struct local *)xs[i], si.si_pid))
                break;
        /* An orphaned grandchild reparented to us (or a stopped
         * executor's guardian or child). */
        if (i == n)
            waitpid(si.si_pid, NULL, 0);
    }
}

static void local_on_signal(struct prun__executor *base, int signo)
{
    if (signo == SIGCHLD)
        prun__local_reap(&base, 1);
}

/* Is some child of ours still in group pgid? Then the id is still ours. */
static int group_is_ours(pid_t pgid)
{
    pid_t kids[512];
    int n = prun__children(kids, 512), i;

    for (i = 0; i < n; i++)
        if (getpgid(kids[i]) == pgid)
            return 1;
    return 0;
}

static void local_stop_all(struct prun__executor *base, int hard)
{
    struct local *x = (struct local *)base;
    int64_t now = prun__now_ms();
    size_t i;

    for (i = 0; i < x->nprocs; i++) {
        struct proc *p = &x->procs[i];

        if (p->a == NULL || p->pid <= 0)
            continue;
        if (p->a->why == PRUN__WHY_NONE)
            p->a->why = PRUN__WHY_CANCEL;
        if (hard) {
            kill(-p->pid, SIGKILL);
        } else if (p->kill_at == 0) {
            kill(-p->pid, SIGTERM);
            kill(-p->pid, SIGCONT);
            p->kill_at = now + p->grace;
        }
    }
}

static void local_tick(struct prun__executor *base, int64_t now)
{
    struct local *x = (struct local *)base;
    size_t i, j;

    for (i = 0; i < x->nprocs; i++) {
        struct proc *p = &x->procs[i];

        if (p->a == NULL || p->pid <= 0)
            continue;
        if (p->deadline && now >= p->deadline && p->kill_at == 0) {
            p->a->why = PRUN__WHY_TIMEOUT;
            kill(-p->pid, SIGTERM);
            kill(-p->pid, SIGCONT);
            p->kill_at = now + p->grace;
        } else if (p->kill_at && now >= p->kill_at) {
            kill(-p->pid, SIGKILL);
            p->kill_at = INT64_MAX; /* sent; wait for SIGCHLD */
        }
    }
    for (i = j = 0; i < x->nstrag; i++) {
        if (now >= x->strag[i].kill_at) {
            if (group_is_ours(x->strag[i].pgid))
                kill(-x->strag[i].pgid, SIGKILL);
            prun__guardian_del(x->guardian, x->strag[i].pgid);
            continue;
        }
        x->strag[j++] = x->strag[i];
    }
    x->nstrag = j;
}

static int64_t local_next_deadline(const struct prun__executor *base)
{
    const struct local *x = (const struct local *)base;
    int64_t t = INT64_MAX;
    size_t i;

    for (i = 0; i < x->nprocs; i++) {
        const struct proc *p = &x->procs[i];

        if (p->a == NULL)
            continue;
        if (p->deadline && p->kill_at == 0 && p->deadline < t)
            t = p->deadline;
        if (p->kill_at && p->kill_at < t)
            t = p->kill_at;
    }
    for (i = 0; i < x->nstrag; i++)
        if (x->strag[i].kill_at < t)
            t = x->strag[i].kill_at;
    return t;
}

/* Shared mode's end: SIGKILL to this executor's own groups, no others. */
static void kill_own(struct local *x)
{
    size_t i;

    for (i = 0; i < x->nprocs; i++)
        if (x->procs[i].a != NULL && x->procs[i].pid > 0)
            kill(-x->procs[i].pid, SIGKILL);
    for (i = 0; i < x->nstrag; i++)
        if (group_is_ours(x->strag[i].pgid))
            kill(-x->strag[i].pgid, SIGKILL);
    x->nstrag = 0;
}

static void local_shutdown(struct prun__executor *base, int hurry)
{
    struct local *x = (struct local *)base;

    if (x->o.shared) {
        /* Other executors' children are not ours to kill; their reaper
         * reaps ours (prun__local_reap). */
        kill_own(x);
        prun__guardian_stop(x->guardian);
        x->guardian = NULL;
        return;
    }
    prun__guardian_stop(x->guardian);
    x->guardian = NULL;
    /* Whatever is still alive below us (stragglers) goes now. */
    prun__kill_descendants(x->nstrag > 0 || hurry ? 2000 : 200);
}

static void local_free(struct prun__executor *base)
{
    struct local *x = (struct local *)base;

    if (x == NULL)
        return;
    if (x->guardian != NULL)
        local_shutdown(base, 1);
    prun__envset_free(x->envs);
    free(x->procs);
    free(x->free_slots);
    free(x->strag);
    if (x->nullfd >= 0)
        close(x->nullfd);
    free(x);
}

static const struct prun__executor_ops local_ops = {
    .capacity = local_capacity,
    .start = local_start,
    .stop_all = local_stop_all,
    .on_signal = local_on_signal,
    .next_deadline = local_next_deadline,
    .tick = local_tick,
    .shutdown = local_shutdown,
    .free = local_free,
};

/*
 * Three descriptors per running child (two pipes and a spare for exec
 * errors): make sure the limit allows every slot before starting. Still
 * short (a low hard limit): run fewer at once rather than fail halfway
 * through for want of a descriptor. Returns the slots that fit.
 */
static size_t fit_nofile(size_t slots, char *note, size_t note_len)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)slots * 4 + 64;
    size_t fit;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
        return slots;
    rl.rlim_cur = need < rl.rlim_max ? need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur >= need)
        return slots;
    fit = rl.rlim_cur > 72 ? (rl.rlim_cur - 64) / 4 : 2;
    fit = fit < slots ? fit : slots;
    if (note != NULL)
        snprintf(note, note_len,
            "open file limit %llu allows %zu children at once, not %zu "
            "(raise it with ulimit -n)",
            (unsigned long long)rl.rlim_cur, fit, slots);
    return fit;
}

int prun__local_new(const struct prun__local_opts *o,
    const struct prun__exec_hooks *hooks, struct prun__executor **out,
    char *note, size_t note_len, struct prun_err *err)
{
    struct local *x;
    size_t i;
    int rc;

    x = calloc(1, sizeof(*x));
    if (x == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    x->base.ops = &local_ops;
    x->base.hooks = *hooks;
    x->o = *o;
    x->nullfd = -1;
    prun__spawn_init();
    rc = prun__guardian_start(&x->guardian, err);
    if (rc < 0)
        goto fail;
    if (o->segs != NULL) {
        /* Published segments: the guardian removes them if we die. */
        const char *const *env;
        size_t n = prun__segset_env_all(o->segs, &env), k;

        for (k = 0; k < n; k++)
            if (strncmp(env[k], "PARALLELRUN_SHM_DIR=", 20) == 0 &&
                (rc = prun__guardian_set_dir(x->guardian, env[k] + 20, err)) <
                    0)
                goto fail;
    }
    x->nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (x->nullfd < 0) {
        rc = prun__err_sys(err, "/dev/null");
        goto fail;
    }
    rc = prun__envset_new(o->job, o->run_id, o->slots, o->extra_env,
        o->nextra_env, &x->envs, err);
    if (rc < 0)
        goto fail;
    x->nprocs = fit_nofile(o->slots, note, note_len);
    x->procs = calloc(x->nprocs, sizeof(*x->procs));
    x->free_slots = calloc(x->nprocs, sizeof(size_t));
    if (x->procs == NULL || x->free_slots == NULL) {
        rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
        goto fail;
    }
    for (i = 0; i < x->nprocs; i++) {
        x->procs[i].x = x;
        x->procs[i].pid = -1;
        x->procs[i].fd[0] = x->procs[i].fd[1] = -1;
        x->procs[i].w[0] = (struct pipe_watch){{on_pipe}, &x->procs[i], 0};
        x->procs[i].w[1] = (struct pipe_watch){{on_pipe}, &x->procs[i], 1};
        x->free_slots[i] = x->nprocs - 1 - i;
    }
    x->nfree = x->nprocs;
    *out = &x->base;
    return 0;
fail:
    local_free(&x->base);
    return rc;
}
