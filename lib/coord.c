/* SPDX-License-Identifier: MIT */
/*
 * coord: Redis addresses, blocking connections, and the embedded server.
 *
 * The embedded server is a private redis-server per user, listening only on
 * a unix socket (mode 0700) in a 0700 directory, never on TCP. Processes
 * that use it take a shared flock on its "users" file for as long as they
 * need it; starting and stopping happen under an exclusive flock on its
 * "lock" file, and whoever leaves last (its exclusive try on "users"
 * succeeds) shuts it down with SAVE, so status, runs and --resume still
 * work from its data file later. A process that dies drops its flocks
 * with it, so a crash can never keep the server alive forever or stop it
 * under a live user.
 *
 * The runner's pipelined state writer is in coord_state.c, the children's
 * primitives in coord_sync.c.
 */
#include "coord_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

/* The value of a hex digit, or -1. */
static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Percent-decodes len bytes of s into out (n bytes). Returns 0, or -1 when
 * it does not fit or holds a bad escape or a NUL.
 */
static int pct_decode(const char *s, size_t len, char *out, size_t n)
{
    size_t i, o = 0;

    for (i = 0; i < len; i++) {
        int c = (unsigned char)s[i];

        if (c == '%') {
            if (i + 2 >= len || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
                return -1;
            c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
            i += 2;
            if (c == 0)
                return -1;
        }
        if (o + 1 >= n)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* Percent-encodes s for the user part of a URL. */
static void pct_encode(const char *s, char *out, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (; *s && o + 4 < n; s++) {
        unsigned char c = (unsigned char)*s;

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || strchr("-._~", c) != NULL) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (n > 0)
        out[o < n ? o : n - 1] = '\0';
}

/*
 * The userinfo of url ("user:pass" in redis://user:pass@host): its start
 * and length, or NULL when there is none. It ends at the last '@' before
 * the path, so an '@' in a password needs no escaping.
 */
static const char *userinfo(const char *url, size_t *len)
{
    const char *p, *end, *at = NULL, *q;

    if (strncmp(url, "redis://", 8) == 0)
        p = url + 8;
    else if (strncmp(url, "rediss://", 9) == 0)
        p = url + 9;
    else if (strncmp(url, "unix://", 7) == 0)
        p = url + 7;
    else
        return NULL;
    /* A unix path starts right after "unix://"; userinfo ends with "@/". */
    if (strncmp(url, "unix://", 7) == 0) {
        for (q = p; *q && *q != '?'; q++)
            if (*q == '@' && q[1] == '/')
                at = q;
        if (at == NULL || *p == '/')
            return NULL;
    } else {
        end = p + strcspn(p, "/?#");
        for (q = p; q < end; q++)
            if (*q == '@')
                at = q;
        if (at == NULL)
            return NULL;
    }
    *len = (size_t)(at - p);
    return p;
}

/*
 * Where a password would be in url, for redaction: between the first ':'
 * after "SCHEME://" and the last '@'. Generous on purpose (it also serves
 * URLs that do not parse): hiding too much in a message is harmless.
 */
static const char *password_span(const char *url, size_t *len)
{
    const char *p = url ? strstr(url, "://") : NULL;
    const char *at, *c;

    if (p == NULL)
        return NULL;
    p += 3;
    at = strrchr(p, '@');
    if (at == NULL)
        return NULL;
    c = memchr(p, ':', (size_t)(at - p));
    if (c == NULL || c + 1 >= at)
        return NULL;
    *len = (size_t)(at - c - 1);
    return c + 1;
}

int prun_redis_url_has_password(const char *url)
{
    size_t len;

    return password_span(url, &len) != NULL;
}

void prun_redis_url_redact(const char *url, char *buf, size_t n)
{
    size_t len;
    const char *pw = password_span(url, &len);

    if (n == 0)
        return;
    if (pw == NULL)
        snprintf(buf, n, "%s", url ? url : "");
    else
        snprintf(buf, n, "%.*s***%s", (int)(pw - url), url, pw + len);
}

/* Splits userinfo "user[:pass]" (percent-encoded) into a. */
static int parse_userinfo(const char *u, size_t len, struct prun_redis_addr *a)
{
    const char *c = memchr(u, ':', len);
    size_t ul = c ? (size_t)(c - u) : len;

    if (pct_decode(u, ul, a->user, sizeof(a->user)) < 0)
        return -1;
    if (c != NULL &&
        pct_decode(c + 1, len - ul - 1, a->password, sizeof(a->password)) < 0)
        return -1;
    return 0;
}

int prun_redis_url_parse(
    const char *url, struct prun_redis_addr *a, struct prun_err *err)
{
    const char *p, *slash, *colon, *q, *ui;
    size_t uilen = 0;
    long long v;
    struct prun_err e;
    char shown[320];

    memset(a, 0, sizeof(*a));
    a->port = 6379;
    /* Messages show the URL without its password. */
    prun_redis_url_redact(url, shown, sizeof(shown));
    ui = userinfo(url, &uilen);
    if (ui != NULL && parse_userinfo(ui, uilen, a) < 0) {
        memset(a, 0, sizeof(*a));
        return prun_err_set(err, PRUN_EINVAL,
            "invalid Redis URL '%s': bad user or password (too long, or a "
            "bad %%-escape)",
            shown);
    }
    if (strncmp(url, "unix://", 7) == 0) {
        p = url + 7;
        if (ui != NULL)
            p = ui + uilen + 1;
        q = strchr(p, '?');
        if (*p != '/' || (q ? (size_t)(q - p) : strlen(p)) >= sizeof(a->path))
            goto bad_unix;
        a->is_unix = 1;
        snprintf(a->path, sizeof(a->path), "%.*s",
            (int)(q ? (size_t)(q - p) : strlen(p)), p);
        if (q != NULL) {
            if (strncmp(q, "?db=", 4) != 0 ||
                prun_parse_int(q + 4, 0, 100000, &v, &e) < 0) {
                memset(a, 0, sizeof(*a));
                return prun_err_set(err, PRUN_EINVAL,
                    "invalid Redis URL '%s' (expected ?db=N)", shown);
            }
            a->db = (int)v;
        }
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        memset(a, 0, sizeof(*a));
        return prun_err_set(err, PRUN_EINVAL,
            "invalid Redis URL '%s' (expected redis://host:port/db or "
            "unix:///path)",
            shown);
    }
    p = ui != NULL ? ui + uilen + 1 : url + 8;
    slash = strchr(p, '/');
    {
        size_t hl = slash ? (size_t)(slash - p) : strlen(p);
        char hostport[300];

        if (hl == 0 || hl >= sizeof(hostport))
            goto no_host;
        memcpy(hostport, p, hl);
        hostport[hl] = '\0';
        colon = strrchr(hostport, ':');
        if (colon != NULL && strchr(hostport, ']') < colon) {
            if (prun_parse_int(colon + 1, 1, 65535, &v, &e) < 0) {
                memset(a, 0, sizeof(*a));
                return prun_err_set(err, PRUN_EINVAL,
                    "invalid Redis URL '%s': bad port", shown);
            }
            a->port = (int)v;
            hostport[colon - hostport] = '\0';
        }
        if (hostport[0] == '[') {
            size_t l = strlen(hostport);
            if (hostport[l - 1] == ']') {
                hostport[l - 1] = '\0';
                memmove(hostport, hostport + 1, l - 1);
            }
        }
        if (hostport[0] == '\0' || strlen(hostport) >= sizeof(a->host))
            goto no_host;
        memcpy(a->host, hostport, strlen(hostport) + 1);
    }
    if (slash != NULL && slash[1] != '\0') {
        if (prun_parse_int(slash + 1, 0, 100000, &v, &e) < 0) {
            memset(a, 0, sizeof(*a));
            return prun_err_set(err, PRUN_EINVAL,
                "invalid Redis URL '%s': bad database number", shown);
        }
        a->db = (int)v;
    }
    for (q = a->host; *q; q++)
        if (isspace((unsigned char)*q) || *q == '@') {
            memset(a, 0, sizeof(*a));
            return prun_err_set(
                err, PRUN_EINVAL, "invalid Redis URL '%s': bad host", shown);
        }
    return 0;
no_host:
    memset(a, 0, sizeof(*a));
    return prun_err_set(
        err, PRUN_EINVAL, "invalid Redis URL '%s': no host", shown);
bad_unix:
    memset(a, 0, sizeof(*a));
    return prun_err_set(err, PRUN_EINVAL,
        "invalid Redis URL '%s' (expected unix:///absolute/path)", shown);
}

void prun_redis_url_format(const struct prun_redis_addr *a, char *buf, size_t n)
{
    char user[200] = "";

    /* The user is no secret: children need it to authenticate as it. */
    if (a->user[0]) {
        pct_encode(a->user, user, sizeof(user) - 1);
        strcat(user, "@");
    }
    if (a->is_unix) {
        if (a->db)
            snprintf(buf, n, "unix://%s%s?db=%d", user, a->path, a->db);
        else
            snprintf(buf, n, "unix://%s%s", user, a->path);
    } else if (strchr(a->host, ':') != NULL) {
        snprintf(buf, n, "redis://%s[%s]:%d/%d", user, a->host, a->port, a->db);
    } else {
        snprintf(buf, n, "redis://%s%s:%d/%d", user, a->host, a->port, a->db);
    }
}

static struct timeval tv_ms(int64_t ms)
{
    struct timeval tv;

    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    return tv;
}

void prun__conn_timeout(struct prun_conn *c, int64_t ms)
{
    /* hiredis treats a zero timeout as "block forever". */
    redisSetTimeout(c->ctx, tv_ms(ms > 0 ? ms : 0));
}

static redisReply *check_reply(
    struct prun_conn *c, redisReply *r, struct prun_err *err)
{
    if (r == NULL) {
        const char *why = c->ctx->errstr[0] ? c->ctx->errstr : "no reply";

        if (c->ctx->err == REDIS_ERR_IO &&
            (errno == EAGAIN || errno == EWOULDBLOCK))
            prun_err_set(
                err, PRUN_ETIMEDOUT, "Redis at %s: no reply in time", c->url);
        else
            prun_err_set(err, PRUN_EREDIS, "Redis at %s: %s", c->url, why);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        prun_err_set(err, PRUN_EREDIS, "Redis at %s: %s", c->url, r->str);
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
        return prun_err_set(err, PRUN_EINVAL, "too many script arguments"),
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

int prun_conn_open(const char *url, const char *password, int timeout_ms,
    struct prun_conn **out, struct prun_err *err)
{
    struct prun_redis_addr a;
    struct prun_conn *c;
    struct timeval tv = tv_ms(timeout_ms);
    redisReply *r, *replies[3] = {NULL, NULL, NULL};
    int rc, i, nauth = 0;

    rc = prun_redis_url_parse(url, &a, err);
    if (rc < 0)
        return rc;
    if (password != NULL && *password != '\0')
        snprintf(a.password, sizeof(a.password), "%s", password);
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return prun_err_set(err, PRUN_ENOMEM, "out of memory");
    prun_redis_url_format(&a, c->url, sizeof(c->url));
    c->timeout_ms = timeout_ms;
    if (a.is_unix)
        c->ctx = redisConnectUnixWithTimeout(a.path, tv);
    else
        c->ctx = redisConnectWithTimeout(a.host, a.port, tv);
    if (c->ctx == NULL || c->ctx->err) {
        rc = prun_err_set(err, PRUN_EREDIS, "cannot connect to Redis at %s: %s",
            c->url, c->ctx ? c->ctx->errstr : "out of memory");
        goto fail;
    }
    /* hiredis 0.14 opens sockets without close-on-exec. */
    fcntl(c->ctx->fd, F_SETFD, FD_CLOEXEC);
    redisSetTimeout(c->ctx, tv);
    /*
     * One round trip: AUTH (when there is a user or a password), SELECT or
     * PING, and INFO cluster, whose replies come back in that order.
     */
    if (a.user[0] != '\0' || a.password[0] != '\0') {
        if (a.user[0] != '\0')
            redisAppendCommand(c->ctx, "AUTH %s %s", a.user, a.password);
        else
            redisAppendCommand(c->ctx, "AUTH %s", a.password);
        nauth = 1;
    }
    memset(a.password, 0, sizeof(a.password));
    if (a.db)
        redisAppendCommand(c->ctx, "SELECT %d", a.db);
    else
        redisAppendCommand(c->ctx, "PING");
    redisAppendCommand(c->ctx, "INFO cluster");
    for (i = 0; i < nauth + 2; i++) {
        void *v = NULL;

        if (redisGetReply(c->ctx, &v) != REDIS_OK) {
            rc = prun_err_set(err, PRUN_EREDIS,
                "cannot connect to Redis at %s: %s", c->url,
                c->ctx->errstr[0] ? c->ctx->errstr : "no reply");
            goto fail;
        }
        replies[i] = v;
    }
    r = replies[0];
    if (nauth && r->type == REDIS_REPLY_ERROR) {
        if (a.user[0])
            rc = prun_err_set(err, PRUN_EREDIS,
                "cannot connect to Redis at %s: authentication as user '%s' "
                "failed: %s",
                c->url, a.user, r->str);
        else
            rc = prun_err_set(err, PRUN_EREDIS,
                "cannot connect to Redis at %s: authentication failed: %s",
                c->url, r->str);
        goto fail;
    }
    r = replies[nauth];
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "NOAUTH", 6) == 0)
            rc = prun_err_set(err, PRUN_EREDIS,
                "cannot connect to Redis at %s: it needs a password "
                "([redis] password or PARALLELRUN_REDIS_PASSWORD): %s",
                c->url, r->str);
        else
            rc = prun_err_set(err, PRUN_EREDIS,
                "cannot connect to Redis at %s: %s", c->url, r->str);
        goto fail;
    }
    /*
     * A run's keys share one hash tag, but hiredis does not follow MOVED:
     * on a cluster, whatever lives on another node would be refused. An
     * INFO the server does not allow (ACL) tells nothing and is ignored.
     */
    r = replies[nauth + 1];
    if (r->type == REDIS_REPLY_STRING &&
        strstr(r->str, "cluster_enabled:1") != NULL) {
        rc = prun_err_set(err, PRUN_EREDIS,
            "Redis at %s is a Redis Cluster node (cluster_enabled:1): "
            "parallelrun needs a standalone Redis server (or a primary "
            "with replicas), since it does not follow cluster redirects",
            c->url);
        goto fail;
    }
    for (i = 0; i < 3; i++)
        if (replies[i])
            freeReplyObject(replies[i]);
    *out = c;
    return 0;
fail:
    memset(a.password, 0, sizeof(a.password));
    for (i = 0; i < 3; i++)
        if (replies[i])
            freeReplyObject(replies[i]);
    prun_conn_close(c);
    return rc;
}

int prun_conn_from_env(struct prun_conn **out, struct prun_err *err)
{
    const char *url = getenv("PARALLELRUN_REDIS");

    if (url == NULL || *url == '\0')
        return prun_err_set(err, PRUN_EINVAL,
            "PARALLELRUN_REDIS is not set: run this inside a task started "
            "by 'parallelrun run'");
    return prun_conn_open(
        url, getenv("PARALLELRUN_REDIS_PASSWORD"), 5000, out, err);
}

void prun_conn_close(struct prun_conn *c)
{
    if (c == NULL)
        return;
    if (c->ctx)
        redisFree(c->ctx);
    free(c);
}

const char *prun_conn_url(const struct prun_conn *c)
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
            int rc = prun_err_sys(err, "cannot create '%s'", path);
            *p = '/';
            return rc;
        }
        *p = '/';
    }
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return prun_err_sys(err, "cannot create '%s'", path);
    if (lstat(path, &st) < 0)
        return prun_err_sys(err, "cannot stat '%s'", path);
    if (!S_ISDIR(st.st_mode) || st.st_uid != getuid())
        return prun_err_set(
            err, PRUN_ESYS, "'%s' is not a directory owned by this user", path);
    if ((st.st_mode & 077) != 0 && chmod(path, 0700) < 0)
        return prun_err_sys(err, "cannot make '%s' private", path);
    return 0;
}

static const char *home_dir(void)
{
    const char *h = getenv("HOME");
    return h && *h == '/' ? h : "/tmp";
}

int prun_state_dir(char *buf, size_t n, struct prun_err *err)
{
    const char *x = getenv("XDG_STATE_HOME");

    if (x && *x == '/')
        snprintf(buf, n, "%s/parallelrun", x);
    else
        snprintf(buf, n, "%s/.local/state/parallelrun", home_dir());
    return private_dir(buf, err);
}

int prun_runtime_dir(char *buf, size_t n, struct prun_err *err)
{
    const char *x = getenv("XDG_RUNTIME_DIR");
    char st[PATH_MAX];
    int rc;

    if (x && *x == '/' && access(x, W_OK) == 0) {
        snprintf(buf, n, "%s/parallelrun", x);
    } else {
        rc = prun_state_dir(st, sizeof(st), err);
        if (rc < 0)
            return rc;
        snprintf(buf, n, "%s/run", st);
    }
    /* A unix socket path must fit in sun_path (108 bytes). */
    if (strlen(buf) + sizeof("/redis.sock") > 100)
        snprintf(buf, n, "/tmp/parallelrun-%u", (unsigned)getuid());
    return private_dir(buf, err);
}

/* ---- The embedded server -------------------------------------------------
 */

struct prun_embedded {
    int lockfd;  /* exclusive while starting or stopping */
    int usersfd; /* shared while in use */
    char dir[PATH_MAX];
    char sock[128];
};

static int ping(const char *sock, int timeout_ms)
{
    struct timeval tv = tv_ms(timeout_ms);
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

static void log_tail(const char *path, char *buf, size_t n)
{
    char tmp[4096];
    ssize_t got;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *last;

    buf[0] = '\0';
    if (fd < 0)
        return;
    if (lseek(fd, 0, SEEK_END) > (off_t)sizeof(tmp) - 1)
        lseek(fd, -(off_t)sizeof(tmp) + 1, SEEK_END);
    else
        lseek(fd, 0, SEEK_SET);
    got = read(fd, tmp, sizeof(tmp) - 1);
    close(fd);
    if (got <= 0)
        return;
    tmp[got] = '\0';
    while (got > 0 && tmp[got - 1] == '\n')
        tmp[--got] = '\0';
    last = strrchr(tmp, '\n');
    snprintf(buf, n, "%.*s", (int)(n - 1), last ? last + 1 : tmp);
}

/*
 * Starts redis-server detached from us: its own session (a Ctrl-C in our
 * terminal must not reach it), not our child (the runner kills its
 * descendants at the end and is a subreaper), no fd of ours.
 */
static int start_server(const char *dir, const char *sock, struct prun_err *err)
{
    char bin[PATH_MAX], state[PATH_MAX], logf[PATH_MAX + 16],
        pidf[PATH_MAX + 16], tail[200];
    int was_subreaper = 0, status, i;
    pid_t pid;

    if (find_redis_server(bin, sizeof(bin)) < 0)
        return prun_err_set(err, PRUN_EREDIS,
            "cannot start the embedded Redis: redis-server not found "
            "(install Debian's redis-server, or set [redis] url)");
    if (prun_state_dir(state, sizeof(state), err) < 0)
        return err ? err->code : PRUN_ESYS;
    snprintf(logf, sizeof(logf), "%s/redis.log", state);
    snprintf(pidf, sizeof(pidf), "%s/redis.pid", dir);
    unlink(sock);

    prctl(PR_GET_CHILD_SUBREAPER, &was_subreaper);
    if (was_subreaper)
        prctl(PR_SET_CHILD_SUBREAPER, 0);
    pid = fork();
    if (pid == 0) {
        int fd;

        setsid();
        if (fork() != 0)
            _exit(0);
        fd = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            dup2(fd, 0);
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(bin, bin, "--port", "0", "--unixsocket", sock, "--unixsocketperm",
            "700", "--dir", state, "--dbfilename", "dump.rdb", "--save", "30 1",
            "--appendonly", "no", "--logfile", logf, "--loglevel", "warning",
            "--pidfile", pidf, "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    if (pid > 0)
        waitpid(pid, &status, 0);
    if (was_subreaper)
        prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (pid < 0)
        return prun_err_sys(err, "cannot start redis-server");
    /* It is up in a few ms: poll finely, it is on every run's path. */
    for (i = 0; i < 5000; i++) {
        struct timespec ts = {0, 1000 * 1000};

        if (access(sock, F_OK) == 0 && ping(sock, 500))
            return 0;
        nanosleep(&ts, NULL);
    }
    log_tail(logf, tail, sizeof(tail));
    return prun_err_set(err, PRUN_EREDIS,
        "the embedded Redis (%s) did not start within 5s%s%s", bin,
        tail[0] ? ": " : "", tail);
}

int prun_embedded_acquire(
    struct prun_embedded **out, char *url_out, size_t n, struct prun_err *err)
{
    struct prun_embedded *e;
    char path[PATH_MAX + 32];
    int rc = 0;

    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return prun_err_set(err, PRUN_ENOMEM, "out of memory");
    e->lockfd = e->usersfd = -1;
    rc = prun_runtime_dir(e->dir, sizeof(e->dir), err);
    if (rc < 0)
        goto fail;
    /* prun_runtime_dir keeps dir short enough for a socket path. */
    snprintf(e->sock, sizeof(e->sock), "%.*s/redis.sock", 100, e->dir);
    snprintf(path, sizeof(path), "%s/redis.lock", e->dir);
    e->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    snprintf(path, sizeof(path), "%s/redis.users", e->dir);
    e->usersfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (e->lockfd < 0 || e->usersfd < 0) {
        rc = prun_err_sys(err, "cannot open lock files in '%s'", e->dir);
        goto fail;
    }
    while (flock(e->lockfd, LOCK_EX) < 0 && errno == EINTR)
        ;
    if (!ping(e->sock, 1000))
        rc = start_server(e->dir, e->sock, err);
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

static pid_t read_pidfile(const char *dir)
{
    char path[PATH_MAX + 16], buf[32];
    ssize_t got;
    int fd;

    snprintf(path, sizeof(path), "%s/redis.pid", dir);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    got = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (got <= 0)
        return -1;
    buf[got] = '\0';
    return (pid_t)atol(buf);
}

/*
 * Has pid exited? A zombie counts: the server is reparented to init, which
 * may take its time to reap it, and kill(pid, 0) succeeds on a zombie.
 */
static int proc_gone(pid_t pid)
{
    char path[64], buf[256], *p;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 1;
    buf[n] = '\0';
    p = strrchr(buf, ')');
    return p == NULL || p[1] == '\0' || p[2] == 'Z' || p[2] == 'X';
}

void prun_embedded_release(struct prun_embedded *e)
{
    if (e == NULL)
        return;
    while (flock(e->lockfd, LOCK_EX) < 0 && errno == EINTR)
        ;
    flock(e->usersfd, LOCK_UN);
    if (flock(e->usersfd, LOCK_EX | LOCK_NB) == 0) {
        /* The last user: save and stop the server. */
        struct timeval tv = tv_ms(5000);
        redisContext *c = redisConnectUnixWithTimeout(e->sock, tv);
        pid_t pid = read_pidfile(e->dir);
        int i;

        if (c != NULL && !c->err) {
            redisReply *r;

            redisSetTimeout(c, tv);
            r = redisCommand(c, "SHUTDOWN SAVE");
            if (r)
                freeReplyObject(r);
        }
        if (c)
            redisFree(c);
        for (i = 0; pid > 0 && i < 2000 && !proc_gone(pid); i++) {
            struct timespec ts = {0, 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (pid > 0 && !proc_gone(pid))
            kill(pid, SIGKILL);
        unlink(e->sock);
        flock(e->usersfd, LOCK_UN);
    }
    flock(e->lockfd, LOCK_UN);
    close(e->lockfd);
    close(e->usersfd);
    free(e);
}
