/* SPDX-License-Identifier: MIT */
/*
 * spawn: starting children and making sure none outlives the run.
 *
 * Children are created with clone(CLONE_VM | CLONE_VFORK), as glibc's
 * posix_spawn does: no page tables are copied, which is what keeps the
 * per-child cost near the fork+exec floor even when the runner is large.
 * Until exec the child shares our memory and must only make system calls.
 * It reports a failed chdir or exec through a close-on-exec pipe, so the
 * runner can say "cannot run 'foo'" instead of guessing from status 127.
 *
 * This module does not decide what to run or when (sched), nor read the
 * child's output (output); it only creates and removes processes.
 */
#include "spawn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define CHILD_STACK (64 * 1024)

struct child_args {
    const struct prun_spawn_opts *o;
    const char *path;
    int errfd;
    pid_t parent;
};

struct child_report {
    int stage;
    int err;
};

static char *child_stack;

static int write_all_fd(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/*
 * The child between clone and exec. It runs on its own stack in our
 * address space, so it must not allocate, and sanitizers, which keep
 * per-thread state, must not instrument it.
 */
__attribute__((no_sanitize("address", "undefined"))) static int child_main(
    void *p)
{
    const struct child_args *a = p;
    const struct prun_spawn_opts *o = a->o;
    struct child_report rep = {PRUN_STAGE_NONE, 0};
    struct sigaction dfl;
    sigset_t none;
    size_t i;

    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* The runner may have died before PDEATHSIG was armed. */
    if (getppid() != a->parent)
        _exit(127);

    if (o->cwd != NULL && chdir(o->cwd) < 0) {
        rep.stage = PRUN_STAGE_CHDIR;
        goto fail;
    }
    rep.stage = PRUN_STAGE_DUP;
    if (o->stdin_fd >= 0 && dup2(o->stdin_fd, 0) < 0)
        goto fail;
    if (dup2(o->stdout_fd, 1) < 0 || dup2(o->stderr_fd, 2) < 0)
        goto fail;
    for (i = 0; i < o->nkeep; i++)
        if (fcntl(o->keep_fds[i], F_SETFD, 0) < 0)
            goto fail;

    rep.stage = PRUN_STAGE_EXEC;
    execve(a->path, o->argv, o->envp);
fail:
    rep.err = errno;
    while (write(a->errfd, &rep, sizeof(rep)) < 0 && errno == EINTR)
        ;
    _exit(127);
}

static int ensure_std_fds(void)
{
    int fd;

    /*
     * If the runner was started with 0, 1 or 2 closed, the pipes it makes
     * would take those numbers and collide with the child's stdio.
     */
    for (fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) >= 0)
            continue;
        if (open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) != fd)
            return -1;
    }
    return 0;
}

void prun__spawn_init(void)
{
    ensure_std_fds();
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        /* Older kernels: walk the open descriptors instead. */
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;

        if (d == NULL)
            return;
        while ((e = readdir(d)) != NULL) {
            int fd = atoi(e->d_name);
            if (fd >= 3 && fd != dirfd(d))
                fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
        closedir(d);
    }
}

/* PATH lookups are cached: a run starts the same few programs many times. */
#define PATH_CACHE 8

static struct {
    char name[64];
    char pathvar[512];
    char path[PATH_MAX];
} path_cache[PATH_CACHE];
static unsigned path_cache_next;

static const char *env_path(char *const *envp)
{
    for (; envp != NULL && *envp != NULL; envp++)
        if (strncmp(*envp, "PATH=", 5) == 0)
            return *envp + 5;
    return "/usr/local/bin:/usr/bin:/bin";
}

static int is_exec_file(const char *p)
{
    struct stat st;

    return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

/*
 * Finds name in PATH like execvp does. Returns 0 with out filled, or an
 * errno value (ENOENT, or EACCES when only non-executable matches exist).
 */
static int resolve(const char *name, char *const *envp, char *out, size_t n)
{
    const char *pathvar = env_path(envp), *p, *end;
    int seen_eacces = 0;
    unsigned i;

    if (strchr(name, '/') != NULL) {
        if (strlen(name) >= n)
            return ENAMETOOLONG;
        strcpy(out, name);
        return 0;
    }
    if (*name == '\0')
        return ENOENT;
    for (i = 0; i < PATH_CACHE; i++) {
        if (strcmp(path_cache[i].name, name) == 0 &&
            strcmp(path_cache[i].pathvar, pathvar) == 0 &&
            is_exec_file(path_cache[i].path)) {
            snprintf(out, n, "%s", path_cache[i].path);
            return 0;
        }
    }
    for (p = pathvar;; p = end + 1) {
        size_t dl;

        end = strchr(p, ':');
        if (end == NULL)
            end = p + strlen(p);
        dl = (size_t)(end - p);
        if (dl == 0)
            snprintf(out, n, "%s", name);
        else
            snprintf(out, n, "%.*s/%s", (int)dl, p, name);
        if (is_exec_file(out)) {
            if (strlen(name) < sizeof(path_cache[0].name) &&
                strlen(pathvar) < sizeof(path_cache[0].pathvar)) {
                i = path_cache_next++ % PATH_CACHE;
                strcpy(path_cache[i].name, name);
                strcpy(path_cache[i].pathvar, pathvar);
                snprintf(
                    path_cache[i].path, sizeof(path_cache[i].path), "%s", out);
            }
            return 0;
        }
        if (access(out, F_OK) == 0)
            seen_eacces = 1;
        if (*end == '\0')
            break;
    }
    return seen_eacces ? EACCES : ENOENT;
}

int prun__spawn(
    const struct prun_spawn_opts *o, pid_t *pid, struct prun_err *err)
{
    char path[PATH_MAX];
    struct child_args args;
    struct child_report rep;
    int errpipe[2] = {-1, -1}, nullfd = -1, rc, e;
    struct prun_spawn_opts opts = *o;
    ssize_t n;
    pid_t child;

    e = resolve(o->path, o->envp, path, sizeof(path));
    if (e != 0) {
        errno = e;
        *pid = -1;
        rc = prun__err_set(
            err, PRUN_ENOTFOUND, "cannot run '%s': %s", o->path, strerror(e));
        if (err)
            err->sys_errno = e;
        return rc;
    }
    if (child_stack == NULL) {
        void *st = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (st == MAP_FAILED)
            return prun__err_sys(err, "cannot allocate the spawn stack");
        child_stack = st;
    }
    if (opts.stdin_fd < 0) {
        nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (nullfd < 0)
            return prun__err_sys(err, "cannot open /dev/null");
        opts.stdin_fd = nullfd;
    }
    if (pipe2(errpipe, O_CLOEXEC) < 0) {
        rc = prun__err_sys(err, "cannot create a pipe");
        goto out;
    }
    args.o = &opts;
    args.path = path;
    args.errfd = errpipe[1];
    args.parent = getpid();
    child = clone(child_main, child_stack + CHILD_STACK,
        CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
    if (child < 0) {
        rc = prun__err_sys(err, "cannot start '%s'", o->path);
        goto out;
    }
    /*
     * CLONE_VFORK returns only once the child has exec'd or exited, so the
     * read below never waits: it sees EOF (exec closed the pipe) or a
     * report.
     */
    close(errpipe[1]);
    errpipe[1] = -1;
    do
        n = read(errpipe[0], &rep, sizeof(rep));
    while (n < 0 && errno == EINTR);
    *pid = child;
    rc = 0;
    if (n == (ssize_t)sizeof(rep)) {
        const char *what =
            rep.stage == PRUN_STAGE_CHDIR ? "cannot enter" : "cannot run";
        const char *obj = rep.stage == PRUN_STAGE_CHDIR ? o->cwd : o->path;

        rc = prun__err_set(
            err, PRUN_ENOTFOUND, "%s '%s': %s", what, obj, strerror(rep.err));
        if (err)
            err->sys_errno = rep.err;
    }
out:
    if (errpipe[0] >= 0)
        close(errpipe[0]);
    if (errpipe[1] >= 0)
        close(errpipe[1]);
    if (nullfd >= 0)
        close(nullfd);
    return rc;
}

int prun__children(pid_t *pids, int n)
{
    char path[64], buf[4096];
    int count = 0, fd;
    ssize_t got;
    char *p, *end;

    /* The runner is single-threaded: its only task is its main thread. */
    snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    got = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (got < 0)
        return -1;
    buf[got] = '\0';
    for (p = buf; count < n;) {
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        pids[count++] = (pid_t)v;
        p = end;
    }
    return count;
}

void prun__kill_descendants(int timeout_ms)
{
    struct timespec pause = {0, 5 * 1000 * 1000};
    int64_t deadline = prun__now_ms() + timeout_ms;
    pid_t pids[256];
    int n, i;

    for (;;) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        n = prun__children(pids, 256);
        if (n <= 0 || prun__now_ms() > deadline)
            break;
        for (i = 0; i < n; i++) {
            pid_t pg = getpgid(pids[i]);

            if (pg > 0 && pg != getpgrp())
                kill(-pg, SIGKILL);
            kill(pids[i], SIGKILL);
        }
        nanosleep(&pause, NULL);
    }
}

/* ---- The guardian -------------------------------------------------------- */

struct prun_guardian {
    pid_t pid;
    int fd;    /* write end; -1 once the guardian is gone */
    char *dir; /* the run's directory to remove, or NULL */
};

/*
 * Removes a directory and everything in it, without following symlinks.
 * Called in the guardian after the runner died, so it must not rely on
 * anything of the runner's.
 */
static void guardian_rmtree(int dirfd, const char *name)
{
    int fd =
        openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct dirent *e;
    DIR *d;

    if (fd < 0)
        return;
    if ((d = fdopendir(fd)) == NULL) {
        close(fd);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(fd, e->d_name, 0) < 0 && errno == EISDIR)
            guardian_rmtree(fd, e->d_name);
    }
    closedir(d);
    unlinkat(dirfd, name, AT_REMOVEDIR);
}

/*
 * What the guardian process runs: a set of groups and a directory, then
 * the cleanup. Lines on the pipe: "+PGID", "-PGID", "dPATH", "q".
 */
static void guardian_main(int rfd)
{
    size_t n = 0, cap = 64, i;
    pid_t *groups = malloc(cap * sizeof(pid_t));
    char buf[4096], line[PATH_MAX + 8], dir[PATH_MAX + 8] = "";
    size_t ll = 0;
    sigset_t none;
    struct timespec grace = {0, 500 * 1000 * 1000};
    int closed_cleanly = 0;

    /*
     * The guardian runs in a session of its own (guardian_fork): whatever
     * kills or stops the runner's process group or session (kill -9
     * -PGID, a shell's kill %1, SIGHUP when the terminal closes, Ctrl-C,
     * Ctrl-Z) does not reach it, and it must outlive the runner to clean
     * up after it. Signals sent to it by pid are ignored where they can be.
     */
    prctl(PR_SET_NAME, "prun-guardian");
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (;;) {
        ssize_t got = read(rfd, buf, sizeof(buf));
        ssize_t k;

        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        for (k = 0; k < got; k++) {
            if (buf[k] != '\n') {
                if (ll + 1 < sizeof(line))
                    line[ll++] = buf[k];
                continue;
            }
            line[ll] = '\0';
            ll = 0;
            if (line[0] == 'q') {
                closed_cleanly = 1;
            } else if (line[0] == 'd') {
                snprintf(dir, sizeof(dir), "%s", line + 1);
            } else if (line[0] == '+' && groups != NULL) {
                if (n == cap) {
                    pid_t *g = realloc(groups, cap * 2 * sizeof(pid_t));
                    if (g == NULL)
                        continue;
                    groups = g;
                    cap *= 2;
                }
                groups[n++] = (pid_t)atol(line + 1);
            } else if (line[0] == '-') {
                pid_t pg = (pid_t)atol(line + 1);
                for (i = 0; i < n; i++)
                    if (groups[i] == pg) {
                        groups[i] = groups[--n];
                        break;
                    }
            }
        }
    }
    if (!closed_cleanly && n > 0) {
        for (i = 0; i < n; i++)
            kill(-groups[i], SIGTERM);
        nanosleep(&grace, NULL);
        for (i = 0; i < n; i++)
            kill(-groups[i], SIGKILL);
    }
    /* The run's published segments go with it, not at the next gc. */
    if (!closed_cleanly && dir[0] != '\0')
        guardian_rmtree(AT_FDCWD, dir);
    free(groups);
    _exit(0);
}

/*
 * Forks the guardian process into g. Returns only once it has left the
 * runner's session, so no signal aimed at the runner's group can reach it
 * from then on.
 */
static int guardian_fork(struct prun_guardian *g, struct prun_err *err)
{
    int p[2], ready[2];
    pid_t pid;
    char c;

    if (pipe2(p, O_CLOEXEC) < 0)
        return prun__err_sys(err, "cannot create the guardian's pipe");
    if (pipe2(ready, O_CLOEXEC) < 0) {
        close(p[0]);
        close(p[1]);
        return prun__err_sys(err, "cannot create the guardian's pipe");
    }
    pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        close(ready[0]);
        close(ready[1]);
        return prun__err_sys(err, "cannot start the guardian");
    }
    if (pid == 0) {
        setsid();
        /*
         * Keep nothing of the runner's but the pipe: a held copy of a lock
         * file, socket or memfd would outlive the runner with us. Closing
         * the ready pipe tells the runner we are in our own session.
         */
        if (dup2(p[0], 3) < 0)
            _exit(1);
        syscall(SYS_close_range, 4U, ~0U, 0U);
        guardian_main(3);
    }
    close(p[0]);
    close(ready[1]);
    while (read(ready[0], &c, 1) < 0 && errno == EINTR)
        ;
    close(ready[0]);
    g->pid = pid;
    g->fd = p[1];
    return 0;
}

int prun__guardian_start(struct prun_guardian **out, struct prun_err *err)
{
    struct prun_guardian *g;
    int rc;

    g = calloc(1, sizeof(*g));
    if (g == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    g->fd = -1;
    rc = guardian_fork(g, err);
    if (rc < 0) {
        free(g);
        return rc;
    }
    *out = g;
    return 0;
}

static void guardian_write(struct prun_guardian *g, const char *line, size_t n)
{
    if (g == NULL || g->fd < 0)
        return;
    /* A guardian that died (EPIPE) is simply no longer told. */
    if (write_all_fd(g->fd, line, n) < 0) {
        close(g->fd);
        g->fd = -1;
    }
}

static void guardian_say(struct prun_guardian *g, char op, pid_t pgid)
{
    char line[32];
    int n;

    n = snprintf(line, sizeof(line), "%c%ld\n", op, (long)pgid);
    guardian_write(g, line, (size_t)n);
}

static void guardian_say_dir(struct prun_guardian *g)
{
    char line[PATH_MAX + 8];
    int n;

    if (g->dir == NULL)
        return;
    n = snprintf(line, sizeof(line), "d%s\n", g->dir);
    if (n > 0 && (size_t)n < sizeof(line))
        guardian_write(g, line, (size_t)n);
}

int prun__guardian_set_dir(
    struct prun_guardian *g, const char *path, struct prun_err *err)
{
    char *copy;

    if (g == NULL)
        return 0;
    if (strlen(path) >= PATH_MAX || strchr(path, '\n') != NULL)
        return prun__err_set(
            err, PRUN_EINVAL, "guardian: unusable directory '%.64s'", path);
    if ((copy = strdup(path)) == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    free(g->dir);
    g->dir = copy;
    guardian_say_dir(g);
    return 0;
}

int prun__guardian_restart(struct prun_guardian *g, struct prun_err *err)
{
    int rc;

    if (g->fd >= 0)
        close(g->fd);
    g->fd = -1;
    g->pid = -1;
    rc = guardian_fork(g, err);
    if (rc < 0)
        return rc;
    guardian_say_dir(g);
    return 0;
}

void prun__guardian_add(struct prun_guardian *g, pid_t pgid)
{
    guardian_say(g, '+', pgid);
}

void prun__guardian_del(struct prun_guardian *g, pid_t pgid)
{
    guardian_say(g, '-', pgid);
}

pid_t prun__guardian_pid(const struct prun_guardian *g)
{
    return g ? g->pid : -1;
}

void prun__guardian_stop(struct prun_guardian *g)
{
    if (g == NULL)
        return;
    guardian_say(g, 'q', 0);
    if (g->fd >= 0)
        close(g->fd);
    while (g->pid > 0 && waitpid(g->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    free(g->dir);
    free(g);
}
