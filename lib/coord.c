/* SPDX-License-Identifier: MIT */
/*
 * coord: blocking connections to Redis, and the embedded server. Redis
 * addresses (parsing, formatting, redaction) are coord_url.c.
 *
 * The embedded server is a private redis-server per user, listening only on
 * a unix socket (mode 0700) in a 0700 directory, never on TCP, in a place
 * that depends on the user alone. Processes that use it take a shared
 * flock on its "users" file for as long as they need it; starting happens
 * under an exclusive flock on its "lock" file. A keeper process
 * (coord_keeper.c) owns the server and stops it, saving, once it has had
 * no user for a short linger. A process that dies drops its flocks with
 * it, so a crash can never keep the server alive or stop it under a live
 * user.
 *
 * The runner's pipelined state writer is in coord_state.c, the children's
 * primitives in coord_sync.c.
 */
#include "coord_int.h"
#include "coord_keeper.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct timeval prun__tv_ms(int64_t ms)
{
    struct timeval tv;

    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    return tv;
}

void prun__conn_timeout(struct prun_conn *c, int64_t ms)
{
    /* hiredis treats a zero timeout as "block forever". */
    redisSetTimeout(c->ctx, prun__tv_ms(ms > 0 ? ms : 0));
}

static redisReply *check_reply(
    struct prun_conn *c, redisReply *r, struct prun_err *err)
{
    if (r == NULL) {
        const char *why = c->ctx->errstr[0] ? c->ctx->errstr : "no reply";

        if (c->ctx->err == REDIS_ERR_IO &&
            (errno == EAGAIN || errno == EWOULDBLOCK))
            prun__err_set(
                err, PRUN_ETIMEDOUT, "Redis at %s: no reply in time", c->url);
        else
            prun__err_set(err, PRUN_EREDIS, "Redis at %s: %s", c->url, why);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        prun__err_set(err, PRUN_EREDIS, "Redis at %s: %s", c->url, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

redisReply *prun__cmd(
    struct prun_conn *c, struct prun_err *err, const char *fmt, ...)
{
    redisReply *r;
    va_list ap;

    if (c->ctx->err)
        return check_reply(c, NULL, err);
    va_start(ap, fmt);
    r = redisvCommand(c->ctx, fmt, ap);
    va_end(ap);
    return check_reply(c, r, err);
}

redisReply *prun__cmdv(struct prun_conn *c, struct prun_err *err, int argc,
    const char **argv, const size_t *argvlen)
{
    if (c->ctx->err)
        return check_reply(c, NULL, err);
    return check_reply(c, redisCommandArgv(c->ctx, argc, argv, argvlen), err);
}

redisReply *prun__eval(struct prun_conn *c, struct prun_err *err,
    const char *script, int nkeys, int nargs, const char **args)
{
    const char *argv[64];
    char nk[16];
    redisReply *r;
    int i, slot = -1;

    if (nargs + 3 > 64)
        return prun__err_set(err, PRUN_EINVAL, "too many script arguments"),
               NULL;
    for (i = 0; i < PRUN_SCRIPT_CACHE; i++) {
        if (c->scripts[i].script == script) {
            slot = i;
            break;
        }
        if (c->scripts[i].script == NULL && slot < 0)
            slot = i;
    }
    if (slot < 0)
        slot = 0;
    snprintf(nk, sizeof(nk), "%d", nkeys);
    for (i = 0; i < nargs; i++)
        argv[3 + i] = args[i];
    argv[2] = nk;
    if (c->scripts[slot].script == script) {
        argv[0] = "EVALSHA";
        argv[1] = c->scripts[slot].sha;
        r = redisCommandArgv(c->ctx, nargs + 3, argv, NULL);
        if (r == NULL || r->type != REDIS_REPLY_ERROR ||
            strncmp(r->str, "NOSCRIPT", 8) != 0)
            return check_reply(c, r, err);
        freeReplyObject(r);
    }
    /* Not cached here, or the server restarted: load it. */
    r = prun__cmd(c, err, "SCRIPT LOAD %s", script);
    if (r == NULL)
        return NULL;
    if (r->type == REDIS_REPLY_STRING && r->len == 40) {
        c->scripts[slot].script = script;
        memcpy(c->scripts[slot].sha, r->str, 41);
    }
    freeReplyObject(r);
    argv[0] = "EVAL";
    argv[1] = script;
    return check_reply(c, redisCommandArgv(c->ctx, nargs + 3, argv, NULL), err);
}

/*
 * What the replies to the handshake say (replies[0..nauth + 2), in the
 * order sent): 0, or the error of a refused AUTH, a refused SELECT or
 * PING, or a cluster node.
 */
static int handshake_error(const struct prun_conn *c,
    const struct prun_redis_addr *a, redisReply *const *replies, int nauth,
    struct prun_err *err)
{
    const redisReply *r = replies[0];

    if (nauth && r->type == REDIS_REPLY_ERROR) {
        if (a->user[0])
            return prun__err_set(err, PRUN_EREDIS,
                "cannot connect to Redis at %s: authentication as user '%s' "
                "failed: %s",
                c->url, a->user, r->str);
        return prun__err_set(err, PRUN_EREDIS,
            "cannot connect to Redis at %s: authentication failed: %s", c->url,
            r->str);
    }
    r = replies[nauth];
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "NOAUTH", 6) == 0)
            return prun__err_set(err, PRUN_EREDIS,
                "cannot connect to Redis at %s: it needs a password "
                "([redis] password or PARALLELRUN_REDIS_PASSWORD): %s",
                c->url, r->str);
        return prun__err_set(err, PRUN_EREDIS,
            "cannot connect to Redis at %s: %s", c->url, r->str);
    }
    /*
     * A run's keys share one hash tag, but hiredis does not follow MOVED:
     * on a cluster, whatever lives on another node would be refused. An
     * INFO the server does not allow (ACL) tells nothing and is ignored.
     */
    r = replies[nauth + 1];
    if (r->type == REDIS_REPLY_STRING &&
        strstr(r->str, "cluster_enabled:1") != NULL)
        return prun__err_set(err, PRUN_EREDIS,
            "Redis at %s is a Redis Cluster node (cluster_enabled:1): "
            "parallelrun needs a standalone Redis server (or a primary "
            "with replicas), since it does not follow cluster redirects",
            c->url);
    return 0;
}

/*
 * One round trip on a new connection: AUTH (when there is a user or a
 * password), SELECT or PING, and INFO cluster, whose replies come back in
 * that order. a's password is wiped once it is sent.
 */
static int handshake(
    struct prun_conn *c, struct prun_redis_addr *a, struct prun_err *err)
{
    redisReply *replies[3] = {NULL, NULL, NULL};
    int rc = 0, i, nauth = 0;

    if (a->user[0] != '\0' || a->password[0] != '\0') {
        if (a->user[0] != '\0')
            redisAppendCommand(c->ctx, "AUTH %s %s", a->user, a->password);
        else
            redisAppendCommand(c->ctx, "AUTH %s", a->password);
        nauth = 1;
    }
    memset(a->password, 0, sizeof(a->password));
    if (a->db)
        redisAppendCommand(c->ctx, "SELECT %d", a->db);
    else
        redisAppendCommand(c->ctx, "PING");
    redisAppendCommand(c->ctx, "INFO cluster");
    for (i = 0; i < nauth + 2; i++) {
        void *v = NULL;

        if (redisGetReply(c->ctx, &v) != REDIS_OK) {
            rc = prun__err_set(err, PRUN_EREDIS,
                "cannot connect to Redis at %s: %s", c->url,
                c->ctx->errstr[0] ? c->ctx->errstr : "no reply");
            goto out;
        }
        replies[i] = v;
    }
    rc = handshake_error(c, a, replies, nauth, err);
out:
    for (i = 0; i < 3; i++)
        if (replies[i])
            freeReplyObject(replies[i]);
    return rc;
}

int prun__conn_open(const char *url, const char *password, int timeout_ms,
    struct prun_conn **out, struct prun_err *err)
{
    struct prun_redis_addr a;
    struct prun_conn *c;
    struct timeval tv = prun__tv_ms(timeout_ms);
    int rc;

    rc = prun__redis_url_parse(url, &a, err);
    if (rc < 0)
        return rc;
    if (password != NULL && *password != '\0')
        snprintf(a.password, sizeof(a.password), "%s", password);
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    prun__redis_url_format(&a, c->url, sizeof(c->url));
    c->timeout_ms = timeout_ms;
    if (a.is_unix)
        c->ctx = redisConnectUnixWithTimeout(a.path, tv);
    else
        c->ctx = redisConnectWithTimeout(a.host, a.port, tv);
    if (c->ctx == NULL || c->ctx->err) {
        rc =
            prun__err_set(err, PRUN_EREDIS, "cannot connect to Redis at %s: %s",
                c->url, c->ctx ? c->ctx->errstr : "out of memory");
        goto fail;
    }
    /* hiredis 0.14 opens sockets without close-on-exec. */
    fcntl(c->ctx->fd, F_SETFD, FD_CLOEXEC);
    redisSetTimeout(c->ctx, tv);
    if ((rc = handshake(c, &a, err)) < 0)
        goto fail;
    *out = c;
    return 0;
fail:
    memset(a.password, 0, sizeof(a.password));
    prun__conn_close(c);
    return rc;
}

int prun__conn_from_env(struct prun_conn **out, struct prun_err *err)
{
    const char *url = getenv("PARALLELRUN_REDIS");

    if (url == NULL || *url == '\0')
        return prun__err_set(err, PRUN_EINVAL,
            "PARALLELRUN_REDIS is not set: run this inside a task started "
            "by 'parallelrun run'");
    return prun__conn_open(
        url, getenv("PARALLELRUN_REDIS_PASSWORD"), 5000, out, err);
}

void prun__conn_close(struct prun_conn *c)
{
    if (c == NULL)
        return;
    if (c->ctx)
        redisFree(c->ctx);
    free(c);
}

const char *prun__conn_url(const struct prun_conn *c)
{
    return c->url;
}

/* ---- Directories ---------------------------------------------------------
 */

/* mkdir -p, then insist the last component is ours and private. */
static int private_dir(char *path, struct prun_err *err)
{
    struct stat st;
    char *p;

    for (p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) < 0 && errno != EEXIST) {
            int rc = prun__err_sys(err, "cannot create '%s'", path);
            *p = '/';
            return rc;
        }
        *p = '/';
    }
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return prun__err_sys(err, "cannot create '%s'", path);
    if (lstat(path, &st) < 0)
        return prun__err_sys(err, "cannot stat '%s'", path);
    if (!S_ISDIR(st.st_mode) || st.st_uid != getuid())
        return prun__err_set(
            err, PRUN_ESYS, "'%s' is not a directory owned by this user", path);
    if ((st.st_mode & 077) != 0 && chmod(path, 0700) < 0)
        return prun__err_sys(err, "cannot make '%s' private", path);
    return 0;
}

/*
 * The state directory depends on the user alone: two runs of one user must
 * find one embedded server whatever their environment (cron sets neither
 * XDG_RUNTIME_DIR nor XDG_STATE_HOME, a login shell may set both, sudo may
 * keep another HOME), or `lock: true` would exclude nothing. Only an
 * explicit PARALLELRUN_STATE_DIR (tests, containers) moves it.
 */
int prun__state_dir(char *buf, size_t n, struct prun_err *err)
{
    const char *x = getenv("PARALLELRUN_STATE_DIR");
    struct passwd pw, *res = NULL;
    char pwbuf[4096];

    if (x != NULL && *x != '\0') {
        if (*x != '/')
            return prun__err_set(err, PRUN_EINVAL,
                "PARALLELRUN_STATE_DIR must be an absolute path, not '%s'", x);
        snprintf(buf, n, "%s", x);
    } else if (getpwuid_r(getuid(), &pw, pwbuf, sizeof(pwbuf), &res) == 0 &&
               res != NULL && pw.pw_dir != NULL && pw.pw_dir[0] == '/') {
        snprintf(buf, n, "%s/.local/state/parallelrun",
            strcmp(pw.pw_dir, "/") == 0 ? "" : pw.pw_dir);
    } else if ((x = getenv("HOME")) != NULL && *x == '/') {
        /* No passwd entry (a container's arbitrary uid): HOME is all
         * there is, and cron cannot run such a user anyway. */
        snprintf(buf, n, "%s/.local/state/parallelrun", x);
    } else {
        return prun__err_set(err, PRUN_ESYS,
            "no home directory for uid %u: set PARALLELRUN_STATE_DIR",
            (unsigned)getuid());
    }
    return private_dir(buf, err);
}

int prun__runtime_dir(char *buf, size_t n, struct prun_err *err)
{
    char st[PATH_MAX];
    int rc;

    rc = prun__state_dir(st, sizeof(st), err);
    if (rc < 0)
        return rc;
    snprintf(buf, n, "%.*s/run", (int)(n > 5 ? n - 5 : 0), st);
    return private_dir(buf, err);
}

/*
 * The server's socket: in the runtime directory when the path fits in
 * sun_path (108 bytes), else in /tmp/parallelrun-UID (0700, ours), named
 * by a hash of the runtime directory, so it still depends on nothing else.
 */
static int embedded_socket(
    const char *dir, char *buf, size_t n, struct prun_err *err)
{
    char tmp[64];
    uint64_t h = 1469598103934665603ULL;
    const char *p;
    int rc;

    if (strlen(dir) + sizeof("/redis.sock") <= 108) {
        if (snprintf(buf, n, "%s/redis.sock", dir) >= (int)n)
            return prun__err_set(
                err, PRUN_EINVAL, "%s: path too long for a socket", dir);
        return 0;
    }
    for (p = dir; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    snprintf(tmp, sizeof(tmp), "/tmp/parallelrun-%u", (unsigned)getuid());
    rc = private_dir(tmp, err);
    if (rc < 0)
        return rc;
    snprintf(buf, n, "%s/%016llx.sock", tmp, (unsigned long long)h);
    return 0;
}

/* ---- The embedded server -------------------------------------------------
 */

struct prun_embedded {
    int lockfd;  /* exclusive while starting or stopping */
    int usersfd; /* shared while in use */
    int64_t linger_ms;
    char dir[PATH_MAX];
    char state[PATH_MAX];
    char sock[128];
};

static int ping(const char *sock, int timeout_ms)
{
    struct timeval tv = prun__tv_ms(timeout_ms);
    redisContext *c = redisConnectUnixWithTimeout(sock, tv);
    redisReply *r;
    int ok = 0;

    if (c == NULL)
        return 0;
    if (!c->err) {
        redisSetTimeout(c, tv);
        r = redisCommand(c, "PING");
        ok = r != NULL && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
    }
    redisFree(c);
    return ok;
}

static int find_redis_server(char *out, size_t n)
{
    static const char *const fixed[] = {"/usr/bin/redis-server",
        "/usr/sbin/redis-server", "/usr/local/bin/redis-server"};
    const char *env = getenv("PARALLELRUN_REDIS_SERVER");
    const char *path = getenv("PATH");
    size_t i;

    if (env && *env) {
        snprintf(out, n, "%s", env);
        return access(out, X_OK) == 0 ? 0 : -1;
    }
    while (path && *path) {
        const char *end = strchr(path, ':');
        size_t l = end ? (size_t)(end - path) : strlen(path);

        snprintf(out, n, "%.*s/redis-server", (int)l, path);
        if (l > 0 && access(out, X_OK) == 0)
            return 0;
        path = end ? end + 1 : NULL;
    }
    for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        snprintf(out, n, "%s", fixed[i]);
        if (access(out, X_OK) == 0)
            return 0;
    }
    return -1;
}

/*
 * Under the start/stop lock: makes sure a server answers on e->sock and
 * that a keeper looks after it.
 */
static int ensure_server(struct prun_embedded *e, struct prun_err *err)
{
    char bin[PATH_MAX];
    int64_t deadline = prun__now_ms() + 10000, delay = 1;

    for (;;) {
        int kept = prun__keeper_alive(e->dir);
        /* No server: the connect fails at once, whatever the timeout. */
        int up = ping(e->sock, 2000);

        if (up && kept)
            return 0;
        if (!kept && up) /* its keeper was killed: adopt it */
            return prun__keeper_start(
                e->dir, e->state, e->sock, "", 1, e->linger_ms, err);
        if (!kept) {
            if (find_redis_server(bin, sizeof(bin)) < 0)
                return prun__err_set(err, PRUN_EREDIS,
                    "cannot start the embedded Redis: redis-server not found "
                    "(install Debian's redis-server, or set [redis] url)");
            return prun__keeper_start(
                e->dir, e->state, e->sock, bin, 0, e->linger_ms, err);
        }
        /*
         * A keeper, but no answer: its server is busy, or was just
         * stopped and the keeper is on its way out, for which it may need
         * the lock: let go of it while we wait.
         */
        if (prun__now_ms() > deadline)
            return prun__err_set(err, PRUN_EREDIS,
                "the embedded Redis on %s does not answer (see %s/redis.log)",
                e->sock, e->state);
        flock(e->lockfd, LOCK_UN);
        prun__sleep_ms(delay);
        while (flock(e->lockfd, LOCK_EX) < 0 && errno == EINTR)
            ;
        delay = delay < 4 ? delay * 2 : 4;
    }
}

int prun__embedded_acquire(
    struct prun_embedded **out, char *url_out, size_t n, struct prun_err *err)
{
    struct prun_embedded *e;
    char path[PATH_MAX + 32];
    int rc = 0;

    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    e->lockfd = e->usersfd = -1;
    rc = prun__embedded_linger(&e->linger_ms, err);
    if (rc < 0)
        goto fail;
    rc = prun__state_dir(e->state, sizeof(e->state), err);
    if (rc < 0)
        goto fail;
    rc = prun__runtime_dir(e->dir, sizeof(e->dir), err);
    if (rc < 0)
        goto fail;
    rc = embedded_socket(e->dir, e->sock, sizeof(e->sock), err);
    if (rc < 0)
        goto fail;
    snprintf(path, sizeof(path), "%s/redis.lock", e->dir);
    e->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    snprintf(path, sizeof(path), "%s/redis.users", e->dir);
    e->usersfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (e->lockfd < 0 || e->usersfd < 0) {
        rc = prun__err_sys(err, "cannot open lock files in '%s'", e->dir);
        goto fail;
    }
    while (flock(e->lockfd, LOCK_EX) < 0 && errno == EINTR)
        ;
    rc = ensure_server(e, err);
    if (rc == 0)
        while (flock(e->usersfd, LOCK_SH) < 0 && errno == EINTR)
            ;
    flock(e->lockfd, LOCK_UN);
    if (rc < 0)
        goto fail;
    snprintf(url_out, n, "unix://%s", e->sock);
    *out = e;
    return 0;
fail:
    if (e->lockfd >= 0)
        close(e->lockfd);
    if (e->usersfd >= 0)
        close(e->usersfd);
    free(e);
    return rc;
}

int prun__embedded_check_saved(
    struct prun_embedded *e, int save_now, struct prun_err *err)
{
    if (e == NULL)
        return 0;
    return prun__server_check_saved(e->sock, e->state, save_now, err);
}

void prun__embedded_release(struct prun_embedded *e)
{
    if (e == NULL)
        return;
    /*
     * The users file's mtime says until when the server should linger:
     * this user's linger from now. The keeper stops it no earlier.
     */
    {
        struct timespec ts[2];
        int64_t until = prun__wall_ms() + (e->linger_ms > 0 ? e->linger_ms : 0);

        ts[0].tv_sec = ts[1].tv_sec = (time_t)(until / 1000);
        ts[0].tv_nsec = ts[1].tv_nsec = (long)(until % 1000) * 1000000L;
        futimens(e->usersfd, ts);
    }
    if (e->linger_ms <= 0) {
        /* No linger: the last user stops the server itself, so it is gone
         * when this command returns. */
        while (flock(e->lockfd, LOCK_EX) < 0 && errno == EINTR)
            ;
        flock(e->usersfd, LOCK_UN);
        if (flock(e->usersfd, LOCK_EX | LOCK_NB) == 0)
            prun__server_stop(e->sock, e->state, NULL);
        flock(e->lockfd, LOCK_UN);
    }
    close(e->lockfd);
    close(e->usersfd);
    free(e);
}
