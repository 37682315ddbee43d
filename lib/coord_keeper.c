/* SPDX-License-Identifier: MIT */
/*
 * coord_keeper: the process that looks after the embedded redis-server.
 *
 * The first process that needs the embedded server starts a keeper,
 * detached from itself (its own session, not its child, none of its fds).
 * The keeper starts redis-server as its own child, says on a pipe once the
 * server answers (or why it did not), and then waits for the server's
 * users to go away. Users hold a shared flock on the "users" file, which
 * the kernel drops when a user exits or is killed, so a thread of the
 * keeper blocked on an exclusive flock of that file wakes exactly when the
 * last user is gone: no polling, and a `kill -9` of the last runner stops
 * the server as promptly as a clean exit. After a linger without users
 * (PARALLELRUN_EMBEDDED_LINGER, default 10 s, of the last user to leave,
 * who sets the file's mtime to the end of its linger; of the server's
 * starter when that user was killed) it stops the server with SHUTDOWN
 * SAVE, under the start/stop lock, and exits. If the server
 * cannot save, it keeps running (its memory is the only copy of the data)
 * and the keeper tries again a minute later.
 *
 * The keeper holds an exclusive flock on the "keeper" file for as long as
 * it lives, so a user can tell a looked-after server from an orphan (whose
 * keeper was killed): a new keeper adopts an orphan rather than starting a
 * second server on the same socket.
 *
 * This module is not the users' side (coord.c acquires and releases) and
 * never touches the data beyond asking the server to save it.
 */
#include "coord_int.h"
#include "coord_keeper.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_LINGER_MS 10000
/* Loading a large dump takes a while; LOADING replies are retried. */
#define READY_MS         60000
#define RETRY_SAVE_MS    60000
#define LOG_ROTATE_BYTES (256 * 1024)

struct keeper {
    char dir[PATH_MAX], state[PATH_MAX], sock[128];
    int64_t linger_ms;
    pid_t pid;     /* the server */
    int own_child; /* we started it (else adopted) */
    int pidfd;
    int keeperfd, lockfd, usersfd;
};

struct waiter {
    int usersfd; /* its own open file: flocks belong to open files */
    int idle_w;
    int rearm_r;
};

int prun__embedded_linger(int64_t *ms, struct prun_err *err)
{
    const char *v = getenv("PARALLELRUN_EMBEDDED_LINGER");
    struct prun_err e;

    if (v == NULL || *v == '\0') {
        *ms = DEFAULT_LINGER_MS;
        return 0;
    }
    if (prun__parse_duration(v, ms, &e) < 0)
        return prun__err_set(
            err, PRUN_EINVAL, "PARALLELRUN_EMBEDDED_LINGER: %s", e.msg);
    return 0;
}

int prun__keeper_alive(const char *dir)
{
    char path[PATH_MAX + 16];
    int fd, alive;

    snprintf(path, sizeof(path), "%s/redis.keeper", dir);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    alive = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
    close(fd);
    return alive;
}

static redisContext *connect_sock(const char *sock, int64_t timeout_ms)
{
    redisContext *c =
        redisConnectUnixWithTimeout(sock, prun__tv_ms(timeout_ms));

    if (c == NULL)
        return NULL;
    if (c->err) {
        redisFree(c);
        return NULL;
    }
    /* hiredis 0.14 opens sockets without close-on-exec. */
    fcntl(c->fd, F_SETFD, FD_CLOEXEC);
    redisSetTimeout(c, prun__tv_ms(timeout_ms));
    return c;
}

/* Does a server answer PING on sock? A LOADING one does not, yet. */
static int answers(const char *sock, int64_t timeout_ms)
{
    redisContext *c = connect_sock(sock, timeout_ms);
    redisReply *r;
    int ok;

    if (c == NULL)
        return 0;
    r = redisCommand(c, "PING");
    ok = r != NULL && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return ok;
}

/* INFO section as a string the caller frees, or NULL. */
static char *info(redisContext *c, const char *section)
{
    redisReply *r = redisCommand(c, "INFO %s", section);
    char *s = NULL;

    if (r != NULL && r->type == REDIS_REPLY_STRING)
        s = strdup(r->str);
    if (r)
        freeReplyObject(r);
    return s;
}

/* The value of "field:value" in an INFO text, or "" when absent. */
static const char *info_get(
    const char *inf, const char *field, char *buf, size_t n)
{
    size_t fl = strlen(field), o = 0;
    const char *p = inf;

    buf[0] = '\0';
    while (p != NULL && *p) {
        if (strncmp(p, field, fl) == 0 && p[fl] == ':') {
            p += fl + 1;
            while (*p && *p != '\r' && *p != '\n' && o + 1 < n)
                buf[o++] = *p++;
            buf[o] = '\0';
            break;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return buf;
}

/*
 * The end of the server's log: its last size - 1 bytes at most, read into
 * buf and NUL-terminated. Returns how many, or <= 0 for none.
 */
static ssize_t read_log_end(const char *state, char *buf, size_t size)
{
    char path[PATH_MAX + 16];
    ssize_t got;
    int fd;

    snprintf(path, sizeof(path), "%s/redis.log", state);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (lseek(fd, 0, SEEK_END) > (off_t)size - 1)
        lseek(fd, -(off_t)size + 1, SEEK_END);
    else
        lseek(fd, 0, SEEK_SET);
    got = read(fd, buf, size - 1);
    close(fd);
    if (got > 0)
        buf[got] = '\0';
    return got;
}

/*
 * The reason the server's log gives for its last failure ("Write error
 * saving DB on disk: No space left on device"), without the log prefix.
 */
static void log_reason(const char *state, char *buf, size_t n)
{
    char tmp[8192];
    const char *line, *best = NULL;
    size_t bestlen = 0;

    buf[0] = '\0';
    if (read_log_end(state, tmp, sizeof(tmp)) <= 0)
        return;
    for (line = tmp; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *msg = memmem(line, len, " # ", 3);

        /* "Background saving error" says that, not why: skip it. */
        if (msg != NULL &&
            (memmem(line, len, "rror", 4) != NULL ||
                memmem(line, len, "Failed", 6) != NULL) &&
            memmem(line, len, "Background saving error", 23) == NULL) {
            best = msg + 3;
            bestlen = len - (size_t)(best - line);
        }
        line = end ? end + 1 : NULL;
    }
    if (best != NULL)
        snprintf(buf, n, "%.*s", (int)bestlen, best);
}

/* The server log's last line. */
static void log_tail(const char *state, char *buf, size_t n)
{
    char tmp[2048], *last;
    ssize_t got;

    buf[0] = '\0';
    if ((got = read_log_end(state, tmp, sizeof(tmp))) <= 0)
        return;
    while (got > 0 && tmp[got - 1] == '\n')
        tmp[--got] = '\0';
    last = strrchr(tmp, '\n');
    snprintf(buf, n, "%.*s", (int)(n - 1), last ? last + 1 : tmp);
}

static int pidfd_of(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int prun__server_stop(const char *sock, const char *state, struct prun_err *err)
{
    redisContext *c = connect_sock(sock, 5000);
    redisReply *r;
    char buf[32], why[300], *inf;
    pid_t pid = -1;
    int pidfd = -1, rc = 0;

    if (c == NULL)
        return 0;
    inf = info(c, "server");
    if (inf != NULL)
        pid = (pid_t)atol(info_get(inf, "process_id", buf, sizeof(buf)));
    free(inf);
    if (pid > 0)
        pidfd = pidfd_of(pid);
    /* Saving a large store takes its time; the reply is the connection
     * closing, or an error when the save failed. */
    redisSetTimeout(c, prun__tv_ms(120000));
    r = redisCommand(c, "SHUTDOWN SAVE");
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        log_reason(state, why, sizeof(why));
        rc = prun__err_set(err, PRUN_EREDIS,
            "the embedded Redis could not save its data in %s: %s", state,
            why[0] ? why : r->str);
    }
    if (r)
        freeReplyObject(r);
    redisFree(c);
    if (rc == 0 && pidfd >= 0) {
        struct pollfd pf = {pidfd, POLLIN, 0};

        /* Its data is on disk: a server slow to exit is only slow. */
        if (poll(&pf, 1, 10000) == 0)
            kill(pid, SIGKILL);
    }
    if (pidfd >= 0)
        close(pidfd);
    return rc;
}

int prun__server_check_saved(
    const char *sock, const char *state, int save_now, struct prun_err *err)
{
    redisContext *c = connect_sock(sock, 5000);
    char st[16], why[300], path[PATH_MAX + 16], *inf;
    struct statvfs vfs;
    struct stat dump;
    unsigned long long need, avail;
    int failed = 0;

    if (c == NULL)
        return 0;
    if (save_now) {
        /* A background save (a fork, the server goes on serving) of what
         * it holds now; one already running leaves ours to the next. */
        redisReply *r = redisCommand(c, "BGSAVE SCHEDULE");
        if (r)
            freeReplyObject(r);
    }
    inf = info(c, "persistence");
    redisFree(c);
    if (inf != NULL)
        failed = strcmp(info_get(inf, "rdb_last_bgsave_status", st, sizeof(st)),
                     "err") == 0;
    free(inf);
    /* Room for its data file: the last one, plus what a run adds. */
    snprintf(path, sizeof(path), "%s/dump.rdb", state);
    need = (stat(path, &dump) == 0 ? (unsigned long long)dump.st_size : 0) +
           64 * 1024;
    avail = statvfs(state, &vfs) == 0
                ? (unsigned long long)vfs.f_bavail * vfs.f_frsize
                : need;
    if (!failed && avail >= need)
        return 0;
    /* Its log says why, unless the full disk kept it from saying. */
    why[0] = '\0';
    if (failed)
        log_reason(state, why, sizeof(why));
    if (why[0] == '\0' && avail < need)
        snprintf(why, sizeof(why),
            "%llu bytes free, its data file needs about %llu", avail, need);
    if (why[0] == '\0')
        snprintf(why, sizeof(why),
            "its last save failed (see %.200s/redis.log)", state);
    return prun__err_set(err, PRUN_ESYS,
        "the embedded Redis cannot save its data in %s: %s: status, runs "
        "and --resume will not know recent runs once it stops",
        state, why);
}

/* ---- The keeper process --------------------------------------------------
 */

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    char ch;

    for (;;) {
        while (flock(w->usersfd, LOCK_EX) < 0)
            if (errno != EINTR)
                return NULL;
        flock(w->usersfd, LOCK_UN);
        if (write(w->idle_w, "i", 1) != 1)
            return NULL;
        if (read(w->rearm_r, &ch, 1) != 1)
            return NULL;
    }
}

/* Until when the last user to leave asked the server to linger (the
 * users file's mtime), in wall ms. */
static int64_t linger_until_ms(const struct keeper *k)
{
    struct stat st;

    if (fstat(k->usersfd, &st) < 0)
        return 0;
    return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

static void server_gone(struct keeper *k)
{
    char path[PATH_MAX + 16];

    if (k->own_child)
        while (waitpid(k->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    /* No other server can use this directory while we hold the keeper
     * flock, so what is left here is ours to remove. */
    unlink(k->sock);
    snprintf(path, sizeof(path), "%s/redis.pid", k->dir);
    unlink(path);
}

static int wait_gone(struct keeper *k, int ms)
{
    struct pollfd gone = {k->pidfd, POLLIN, 0};

    return poll(&gone, 1, ms) == 1;
}

/*
 * Stops the server, saving its data. Returns 0 once it is gone, or -1
 * when it could not save (it then runs on).
 */
static int keeper_stop(struct keeper *k)
{
    if (wait_gone(k, 0))
        return 0;
    if (access(k->state, F_OK) < 0 && errno == ENOENT) {
        /* Its state directory was removed: nothing to save to. */
        kill(k->pid, SIGKILL);
    } else if (!answers(k->sock, 5000)) {
        /* Its socket was removed: a signal is all it can hear. */
        kill(k->pid, SIGTERM);
        if (!wait_gone(k, 10000))
            kill(k->pid, SIGKILL);
    } else if (prun__server_stop(k->sock, k->state, NULL) < 0) {
        return -1;
    }
    if (!wait_gone(k, 10000))
        kill(k->pid, SIGKILL);
    return 0;
}

/* poll()'s timeout until deadline (ms since the epoch; -1: none). */
static int poll_timeout(int64_t deadline, int64_t now)
{
    if (deadline < 0)
        return -1;
    return deadline <= now            ? 0
           : deadline - now > INT_MAX ? INT_MAX
                                      : (int)(deadline - now);
}

/*
 * The linger is over (at now), unless someone came and left meanwhile:
 * then the server is stopped if it still has no user. Returns 1 when the
 * keeper is done (the server is gone, or the waiter thread cannot be
 * rearmed through rearm_w), else 0 with *deadline the next one (-1: none
 * until the waiter says the server is idle again).
 */
static int linger_over(
    struct keeper *k, int64_t now, int rearm_w, int64_t *deadline)
{
    int64_t last = linger_until_ms(k);

    if (last > now) {
        *deadline = last;
        return 0;
    }
    while (flock(k->lockfd, LOCK_EX) < 0 && errno == EINTR)
        ;
    if (flock(k->usersfd, LOCK_EX | LOCK_NB) == 0) {
        /* Nobody can come in while we hold the lock: stop it. */
        if (keeper_stop(k) == 0) {
            server_gone(k);
            return 1;
        }
        /* It could not save: keep it (and its data), try again. */
        flock(k->usersfd, LOCK_UN);
        flock(k->lockfd, LOCK_UN);
        *deadline = prun__wall_ms() + RETRY_SAVE_MS;
        return 0;
    }
    flock(k->lockfd, LOCK_UN);
    *deadline = -1;
    return write(rearm_w, "r", 1) != 1;
}

static void keeper_loop(struct keeper *k)
{
    struct waiter w;
    pthread_t th;
    int idle[2], rearm[2], ino;
    int64_t deadline = -1;
    char path[PATH_MAX + 16], ch;

    snprintf(path, sizeof(path), "%s/redis.users", k->dir);
    w.usersfd = open(path, O_RDWR | O_CLOEXEC);
    if (w.usersfd < 0 || pipe2(idle, O_CLOEXEC) < 0 ||
        pipe2(rearm, O_CLOEXEC) < 0)
        return;
    w.idle_w = idle[1];
    w.rearm_r = rearm[0];
    if (pthread_create(&th, NULL, waiter_main, &w) != 0)
        return;
    /* A user leaving while we linger moves the deadline to its own. */
    ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (ino >= 0)
        inotify_add_watch(ino, path, IN_ATTRIB);
    for (;;) {
        struct pollfd pf[3] = {
            {k->pidfd, POLLIN, 0}, {idle[0], POLLIN, 0}, {ino, POLLIN, 0}};
        int64_t now = prun__wall_ms(), last;
        int n;

        n = poll(pf, ino >= 0 ? 3 : 2, poll_timeout(deadline, now));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return;
        if (pf[0].revents) {
            server_gone(k);
            return;
        }
        if (pf[1].revents) {
            if (read(idle[0], &ch, 1) != 1)
                return;
            /*
             * A user that left cleanly said until when; one that was
             * killed said nothing: then the linger of whoever started
             * the server applies.
             */
            last = linger_until_ms(k);
            deadline = last > now ? last : now + k->linger_ms;
            continue;
        }
        if (ino >= 0 && pf[2].revents) {
            char evbuf[4096];

            while (read(ino, evbuf, sizeof(evbuf)) > 0)
                ;
            if (deadline >= 0) {
                last = linger_until_ms(k);
                deadline = last > now ? last : now;
            }
            continue;
        }
        if (n > 0 || deadline < 0)
            continue;
        if (linger_over(k, now, rearm[1], &deadline))
            return;
    }
}

static void rotate_log(const char *state)
{
    char logf[PATH_MAX + 16], old[PATH_MAX + 32];
    struct stat st;

    snprintf(logf, sizeof(logf), "%s/redis.log", state);
    snprintf(old, sizeof(old), "%s/redis.log.1", state);
    if (stat(logf, &st) == 0 && st.st_size > LOG_ROTATE_BYTES)
        rename(logf, old);
}

/*
 * The keeper's flock on "keeper" (held for its life, with its pid in the
 * file), and the "lock" and "users" files it waits on.
 */
static int open_lock_files(struct keeper *k, char *msg, size_t n)
{
    char path[PATH_MAX + 16];

    snprintf(path, sizeof(path), "%s/redis.keeper", k->dir);
    k->keeperfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (k->keeperfd < 0 || flock(k->keeperfd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(msg, n, "cannot lock '%.200s': %s", path, strerror(errno));
        return -1;
    }
    if (ftruncate(k->keeperfd, 0) == 0)
        dprintf(k->keeperfd, "%ld\n", (long)getpid());
    snprintf(path, sizeof(path), "%s/redis.lock", k->dir);
    k->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    snprintf(path, sizeof(path), "%s/redis.users", k->dir);
    k->usersfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (k->lockfd < 0 || k->usersfd < 0) {
        snprintf(msg, n, "cannot open lock files in '%.200s': %s", k->dir,
            strerror(errno));
        return -1;
    }
    return 0;
}

/* An orphaned server (its keeper was killed): watched through a pidfd. */
static int adopt_server(struct keeper *k, char *msg, size_t n)
{
    redisContext *c = connect_sock(k->sock, 5000);
    char *inf = c ? info(c, "server") : NULL;
    char buf[32];

    if (inf != NULL)
        k->pid = (pid_t)atol(info_get(inf, "process_id", buf, sizeof(buf)));
    free(inf);
    if (c)
        redisFree(c);
    k->pidfd = k->pid > 0 ? pidfd_of(k->pid) : -1;
    if (k->pidfd < 0) {
        snprintf(msg, n, "the server on %.128s went away", k->sock);
        return -1;
    }
    return 0;
}

/* redis-server (bin) started as the keeper's child, on the unix socket. */
static int start_server(struct keeper *k, const char *bin, char *msg, size_t n)
{
    char logf[PATH_MAX + 16], pidf[PATH_MAX + 16];

    rotate_log(k->state);
    snprintf(logf, sizeof(logf), "%s/redis.log", k->state);
    snprintf(pidf, sizeof(pidf), "%s/redis.pid", k->dir);
    unlink(k->sock);
    k->pid = fork();
    if (k->pid == 0) {
        /*
         * A full disk must not make the server refuse writes: children's
         * barriers and locks go on, and the runner warns that the state
         * could not be saved.
         */
        execl(bin, bin, "--port", "0", "--unixsocket", k->sock,
            "--unixsocketperm", "700", "--dir", k->state, "--dbfilename",
            "dump.rdb", "--save", "30 1", "--stop-writes-on-bgsave-error", "no",
            "--appendonly", "no", "--logfile", logf, "--loglevel", "warning",
            "--pidfile", pidf, "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    if (k->pid < 0) {
        snprintf(msg, n, "cannot start %.200s: %s", bin, strerror(errno));
        return -1;
    }
    k->own_child = 1;
    k->pidfd = pidfd_of(k->pid);
    if (k->pidfd < 0) {
        snprintf(msg, n, "pidfd_open: %s", strerror(errno));
        kill(k->pid, SIGKILL);
        return -1;
    }
    return 0;
}

/*
 * Waits for the server just started to answer. Up in a few ms on a small
 * store: poll with a short backoff, never a fixed wait; a LOADING server
 * is asked again as quickly.
 */
static int wait_ready(struct keeper *k, const char *bin, char *msg, size_t n)
{
    int64_t deadline = prun__now_ms() + READY_MS, delay = 1;
    char tail[256];
    int status;

    for (;;) {
        if (waitpid(k->pid, &status, WNOHANG) == k->pid) {
            log_tail(k->state, tail, sizeof(tail));
            snprintf(msg, n, "%.100s exited%s%.250s", bin, tail[0] ? ": " : "",
                tail);
            return -1;
        }
        if (answers(k->sock, 2000))
            return 0;
        if (prun__now_ms() > deadline) {
            kill(k->pid, SIGKILL);
            log_tail(k->state, tail, sizeof(tail));
            snprintf(msg, n, "%.100s did not answer within %ds%s%.250s", bin,
                READY_MS / 1000, tail[0] ? ": " : "", tail);
            return -1;
        }
        prun__sleep_ms(delay);
        delay = delay < 4 ? delay * 2 : 4;
    }
}

static int keeper_setup(
    struct keeper *k, const char *bin, int adopt, char *msg, size_t n)
{
    if (open_lock_files(k, msg, n) < 0)
        return -1;
    if (adopt)
        return adopt_server(k, msg, n);
    if (start_server(k, bin, msg, n) < 0)
        return -1;
    return wait_ready(k, bin, msg, n);
}

static void keeper_main(const char *dir, const char *state, const char *sock,
    const char *bin, int adopt, int64_t linger_ms, int notify)
    __attribute__((noreturn));
static void keeper_main(const char *dir, const char *state, const char *sock,
    const char *bin, int adopt, int64_t linger_ms, int notify)
{
    struct keeper k;
    char msg[400];
    sigset_t none;
    int fd, i;

    /* Nothing of the caller's but the pipe: a copy of a user's flock or of
     * a runner's memfd would live as long as we do. */
    if (dup2(notify, 3) < 0)
        _exit(1);
    fcntl(3, F_SETFD, FD_CLOEXEC); /* redis-server must not keep it */
    syscall(SYS_close_range, 4U, ~0U, 0U);
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (i = 1; i < 32; i++)
        signal(i, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    prctl(PR_SET_NAME, "prun-keeper");
    umask(077);
    if (chdir("/") < 0)
        _exit(1);

    memset(&k, 0, sizeof(k));
    k.keeperfd = k.lockfd = k.usersfd = k.pidfd = -1;
    snprintf(k.dir, sizeof(k.dir), "%s", dir);
    snprintf(k.state, sizeof(k.state), "%s", state);
    snprintf(k.sock, sizeof(k.sock), "%s", sock);
    k.linger_ms = linger_ms;
    if (keeper_setup(&k, bin, adopt, msg, sizeof(msg)) < 0) {
        if (write(3, msg, strlen(msg)) < 0)
            _exit(1);
        _exit(1);
    }
    if (write(3, "OK", 2) != 2)
        _exit(1);
    close(3);
    keeper_loop(&k);
    _exit(0);
}

int prun__keeper_start(const char *dir, const char *state, const char *sock,
    const char *bin, int adopt, int64_t linger_ms, struct prun_err *err)
{
    char msg[512];
    size_t got = 0;
    int p[2], was_subreaper = 0, status;
    int64_t deadline;
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) < 0)
        return prun__err_sys(err, "cannot start the embedded Redis");
    /*
     * Not our child (a runner kills its descendants and is a subreaper),
     * its own session (a Ctrl-C in our terminal must not reach it).
     */
    prctl(PR_GET_CHILD_SUBREAPER, &was_subreaper);
    if (was_subreaper)
        prctl(PR_SET_CHILD_SUBREAPER, 0);
    pid = fork();
    if (pid == 0) {
        setsid();
        if (fork() != 0)
            _exit(0);
        keeper_main(dir, state, sock, bin, adopt, linger_ms, p[1]);
    }
    close(p[1]);
    if (pid > 0)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    if (was_subreaper)
        prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (pid < 0) {
        close(p[0]);
        return prun__err_sys(err, "cannot start the embedded Redis");
    }
    /* The keeper writes "OK" once the server answers, or why not, and
     * closes the pipe; end of file alone means it died. */
    deadline = prun__now_ms() + READY_MS + 5000;
    while (got + 1 < sizeof(msg)) {
        struct pollfd pf = {p[0], POLLIN, 0};
        int64_t left = deadline - prun__now_ms();
        ssize_t r;

        if (left <= 0)
            break;
        if (poll(&pf, 1, (int)left) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        r = read(p[0], msg + got, sizeof(msg) - 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got == 2 && memcmp(msg, "OK", 2) == 0)
            break;
    }
    close(p[0]);
    msg[got] = '\0';
    if (strcmp(msg, "OK") == 0)
        return 0;
    return prun__err_set(err, PRUN_EREDIS,
        "the embedded Redis did not start: %s",
        got ? msg : "its keeper process exited");
}
