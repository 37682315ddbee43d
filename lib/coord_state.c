/* SPDX-License-Identifier: MIT */
/*
 * coord_state: the runner's non-blocking Redis writer (key schema:
 * docs/redis-schema.md), and the job lock's lease it keeps renewed.
 *
 * The writer is a queue of formatted commands in front of a non-blocking
 * hiredis context whose fd sits in the runner's epoll set. A command is
 * dropped from the queue only when its reply arrives; when the connection
 * breaks, the context is freed and the whole unacknowledged queue is sent
 * again on the next connection. That is safe because every command queued
 * is idempotent: counts are absolute values, members are set members,
 * fields are overwritten. Children keep running and new ones keep starting
 * while Redis is away. Every reply is checked, inside MULTI/EXEC and
 * script replies too: an error reply acknowledges its command (it would be
 * refused again) but is reported to the caller, the first of each kind at
 * once, and counted.
 *
 * This module is not what is written: the records of a run (its keys,
 * each created with its TTL, the heartbeat, instances, counts, the end)
 * are formatted in coord_record.c. Neither decides anything about the run.
 */
#include "coord_state_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RETRY_MS 500

struct cmd {
    struct cmd *next;
    char *buf;
    size_t len;
    prun__state_reply_fn fn; /* given the last reply, unless an error came */
    void *arg;
    unsigned nreplies; /* replies this entry is owed (MULTI..EXEC: 4) */
    unsigned got;      /* received on this connection */
    int refused;       /* an error reply came for it */
    int owns_arg;      /* arg is freed when fn is not called */
};

static void disconnect(struct prun_state *s, const char *why)
{
    if (s->c == NULL)
        return;
    snprintf(s->last_error, sizeof(s->last_error), "%s", why);
    redisFree(s->c);
    s->c = NULL;
    s->want_write = 0;
    /* Everything unacknowledged is sent again, whole, on the next one. */
    if (s->head != NULL) {
        s->head->got = 0;
        s->head->refused = 0;
    }
    s->unsent = s->head;
    s->next_retry = prun__now_ms() + RETRY_MS;
}

/* Hands queued commands to the connection and writes what the socket takes. */
void prun__state_send(struct prun_state *s)
{
    int done = 0;

    if (s->c == NULL)
        return;
    for (; s->unsent != NULL; s->unsent = s->unsent->next)
        if (redisAppendFormattedCommand(s->c, s->unsent->buf, s->unsent->len) !=
            REDIS_OK)
            break;
    if (redisBufferWrite(s->c, &done) != REDIS_OK) {
        disconnect(s, s->c->errstr);
        return;
    }
    s->want_write = !done;
}

static struct cmd *push_cmd(struct prun_state *s, char *buf, int len,
    unsigned nrep, prun__state_reply_fn fn, void *arg)
{
    struct cmd *c;

    if (len < 0 || buf == NULL)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        free(buf);
        return NULL;
    }
    c->buf = buf;
    c->len = (size_t)len;
    c->fn = fn;
    c->arg = arg;
    c->nreplies = nrep;
    if (s->tail)
        s->tail->next = c;
    else
        s->head = c;
    s->tail = c;
    if (s->unsent == NULL)
        s->unsent = c;
    s->queued++;
    return c;
}

/* fmt is a hiredis format: %s, %b (pointer, length), %d, %lld... */
void prun__state_enqueue(struct prun_state *s, prun__state_reply_fn fn,
    void *arg, const char *fmt, ...)
{
    char *buf = NULL;
    va_list ap;
    int len;

    va_start(ap, fmt);
    len = redisvFormatCommand(&buf, fmt, ap);
    va_end(ap);
    push_cmd(s, buf, len, 1, fn, arg);
}

/*
 * Queues "MULTI; CMD; PEXPIRE k ttl; EXEC" as one entry: a key is never
 * created without its TTL, whenever the runner dies. cmd is a formatted
 * command (taken over).
 */
void prun__state_enqueue_with_ttl(
    struct prun_state *s, const char *k, int64_t ttl, char *cmd, int cmdlen)
{
    char *multi = NULL, *exp = NULL, *exec = NULL, *buf = NULL;
    int ml, el, xl;

    if (cmd == NULL || cmdlen < 0)
        return;
    ml = redisFormatCommand(&multi, "MULTI");
    el = redisFormatCommand(&exp, "PEXPIRE %s %lld", k, (long long)ttl);
    xl = redisFormatCommand(&exec, "EXEC");
    if (ml > 0 && el > 0 && xl > 0)
        buf = malloc((size_t)ml + (size_t)cmdlen + (size_t)el + (size_t)xl);
    if (buf != NULL) {
        memcpy(buf, multi, (size_t)ml);
        memcpy(buf + ml, cmd, (size_t)cmdlen);
        memcpy(buf + ml + cmdlen, exp, (size_t)el);
        memcpy(buf + ml + cmdlen + el, exec, (size_t)xl);
        push_cmd(s, buf, ml + cmdlen + el + xl, 4, NULL, NULL);
    }
    free(multi);
    free(exp);
    free(exec);
    free(cmd);
}

/* Starts a connection: AUTH and SELECT, then the unacknowledged queue. */
void prun__state_connect(struct prun_state *s)
{
    redisContext *c;

    c = s->addr.is_unix ? redisConnectUnixNonBlock(s->addr.path)
                        : redisConnectNonBlock(s->addr.host, s->addr.port);
    if (c == NULL || c->err) {
        snprintf(s->last_error, sizeof(s->last_error), "%s",
            c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        s->next_retry = prun__now_ms() + RETRY_MS;
        return;
    }
    fcntl(c->fd, F_SETFD, FD_CLOEXEC);
    s->c = c;
    s->preamble = 0;
    if (s->addr.user[0] || s->addr.password[0]) {
        if (s->addr.user[0])
            redisAppendCommand(c, "AUTH %s %s", s->addr.user, s->addr.password);
        else
            redisAppendCommand(c, "AUTH %s", s->addr.password);
        s->preamble++;
    }
    if (s->addr.db) {
        redisAppendCommand(c, "SELECT %d", s->addr.db);
        s->preamble++;
    }
    s->unsent = s->head;
    prun__state_send(s);
}

int prun__state_open(const struct prun_state_opts *o, struct prun_state **out,
    struct prun_err *err)
{
    struct prun_state *s;
    int rc;

    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    rc = prun__redis_url_parse(o->url, &s->addr, err);
    if (rc < 0) {
        free(s);
        return rc;
    }
    if (o->password && *o->password)
        snprintf(s->addr.password, sizeof(s->addr.password), "%s", o->password);
    prun__redis_url_format(&s->addr, s->url, sizeof(s->url));
    snprintf(s->run_id, sizeof(s->run_id), "%s", o->run_id);
    s->ttl_ms = o->key_ttl_ms > 0 ? o->key_ttl_ms : 7 * 86400000LL;
    s->on_error = o->on_error;
    s->on_error_ctx = o->on_error_ctx;
    if (gethostname(s->host, sizeof(s->host)) < 0)
        snprintf(s->host, sizeof(s->host), "localhost");
    prun__state_connect(s);
    *out = s;
    return 0;
}

void prun__state_close(struct prun_state *s)
{
    struct cmd *c, *n;
    size_t i;

    if (s == NULL)
        return;
    if (s->c)
        redisFree(s->c);
    for (c = s->head; c; c = n) {
        n = c->next;
        if (c->owns_arg)
            free(c->arg);
        free(c->buf);
        free(c);
    }
    for (i = 0; i < s->ntasks; i++)
        free(s->tasks[i]);
    free(s->tasks);
    free(s);
}

void prun__state_pump(struct prun_state *s)
{
    if (s->c != NULL && s->unsent != NULL)
        prun__state_send(s);
}

size_t prun__state_unacked(const struct prun_state *s)
{
    return s->queued;
}

size_t prun__state_pending(const struct prun_state *s)
{
    const struct cmd *c;
    size_t n = 0;

    /* Counting stops at the batch size: callers only compare with it. */
    for (c = s->c ? s->unsent : NULL; c != NULL && n < 256; c = c->next)
        n++;
    return n;
}

int prun__state_fd(const struct prun_state *s)
{
    return s->c ? s->c->fd : -1;
}

int prun__state_want_write(const struct prun_state *s)
{
    return s->c != NULL && s->want_write;
}

/*
 * The first error in r: r itself, or an element of an array reply (EXEC's
 * replies, a script's table), or NULL.
 */
static const redisReply *find_error(const redisReply *r, int depth)
{
    size_t i;

    if (r == NULL)
        return NULL;
    if (r->type == REDIS_REPLY_ERROR)
        return r;
    if (r->type != REDIS_REPLY_ARRAY || depth > 4)
        return NULL;
    for (i = 0; i < r->elements; i++) {
        const redisReply *e = find_error(r->element[i], depth + 1);
        if (e != NULL)
            return e;
    }
    return NULL;
}

enum { ERR_CONNECT, ERR_REFUSED, ERR_RETRY };

/*
 * Errors that say "not now" rather than "never": the server is loading its
 * data, busy with a script, or a replica waiting for its master. The
 * connection is dropped and everything unacknowledged is sent again later.
 */
static int transient(const char *msg)
{
    static const char *const kinds[] = {
        "LOADING ", "BUSY ", "TRYAGAIN ", "MASTERDOWN "};
    size_t i;

    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strncmp(msg, kinds[i], strlen(kinds[i])) == 0)
            return 1;
    return 0;
}

/*
 * Redis answered with an error. The first error of each kind goes to the
 * caller at once, in Redis's own words; refused records (how ==
 * ERR_REFUSED) are counted per kind.
 */
static void note_error(struct prun_state *s, const char *msg, int how)
{
    static const char *const what[] = {"refused the connection",
        "refused a state write", "is not taking writes yet (retrying)"};
    const int counted = how == ERR_REFUSED;
    struct prun_state_error_kind *k = NULL;
    char kind[sizeof(k->kind)];
    size_t i, n = strcspn(msg, " ");

    snprintf(kind, sizeof(kind), "%.*s", (int)n, msg);
    for (i = 0; i < s->nkinds; i++)
        if (strcmp(s->kinds[i].kind, kind) == 0)
            k = &s->kinds[i];
    if (k == NULL) {
        char line[sizeof(k->first) + 400];

        if (s->nkinds < ERR_KINDS) {
            k = &s->kinds[s->nkinds++];
            snprintf(k->kind, sizeof(k->kind), "%s", kind);
            snprintf(k->first, sizeof(k->first), "%s", msg);
        }
        snprintf(
            line, sizeof(line), "Redis at %s %s: %s", s->url, what[how], msg);
        if (s->on_error != NULL)
            s->on_error(s->on_error_ctx, line);
    }
    if (counted) {
        s->refused++;
        if (k != NULL)
            k->count++;
    }
}

static void read_replies(struct prun_state *s)
{
    void *reply;

    if (redisBufferRead(s->c) != REDIS_OK) {
        disconnect(s, s->c->errstr);
        return;
    }
    for (;;) {
        const redisReply *bad;
        redisReply *r;

        if (redisGetReplyFromReader(s->c, &reply) != REDIS_OK) {
            disconnect(s, s->c->errstr);
            return;
        }
        if (reply == NULL)
            return;
        r = reply;
        bad = find_error(r, 0);
        if (s->preamble > 0) {
            s->preamble--;
            if (bad != NULL) {
                char why[200];
                snprintf(why, sizeof(why), "%s", bad->str);
                note_error(s, why, ERR_CONNECT);
                freeReplyObject(r);
                disconnect(s, why);
                return;
            }
        } else if (s->head != NULL) {
            struct cmd *c = s->head;

            /*
             * An error is a record Redis will not take (OOM, READONLY,
             * NOPERM, WRONGTYPE, MOVED...): it is not sent again, but it
             * is reported and counted. In MULTI..EXEC the first error
             * (usually at queueing, followed by EXECABORT) is the one.
             */
            if (bad != NULL && transient(bad->str)) {
                char why[200];
                snprintf(why, sizeof(why), "%s", bad->str);
                note_error(s, why, ERR_RETRY);
                freeReplyObject(r);
                disconnect(s, why);
                return;
            }
            if (bad != NULL && !c->refused) {
                c->refused = 1;
                note_error(s, bad->str, ERR_REFUSED);
            }
            if (++c->got >= c->nreplies) {
                s->head = c->next;
                if (s->head == NULL)
                    s->tail = NULL;
                s->queued--;
                if (c->fn && !c->refused)
                    c->fn(s, r, c->arg);
                else if (c->owns_arg)
                    free(c->arg);
                free(c->buf);
                free(c);
            }
        }
        freeReplyObject(r);
    }
}

void prun__state_io(struct prun_state *s, int readable, int writable)
{
    if (s->c == NULL)
        return;
    if (readable)
        read_replies(s);
    if (s->c != NULL && (writable || s->unsent != NULL))
        prun__state_send(s);
}

unsigned long long prun__state_refused(const struct prun_state *s,
    const struct prun_state_error_kind **kinds, size_t *nkinds)
{
    if (kinds != NULL)
        *kinds = s->kinds;
    if (nkinds != NULL)
        *nkinds = s->nkinds;
    return s->refused;
}

int prun__state_flush(
    struct prun_state *s, int64_t timeout_ms, struct prun_err *err)
{
    int64_t deadline = prun__now_ms() + timeout_ms;

    prun__state_pump(s);
    while (s->head != NULL) {
        int64_t now = prun__now_ms(), wait;
        struct pollfd pfd;

        if (now >= deadline)
            break;
        if (s->c == NULL) {
            if (now >= s->next_retry)
                prun__state_connect(s);
            if (s->c == NULL) {
                struct pollfd none;
                poll(&none, 0, RETRY_MS / 5);
                continue;
            }
        }
        pfd.fd = s->c->fd;
        pfd.events = POLLIN | (s->want_write ? POLLOUT : 0);
        wait = deadline - now;
        if (poll(&pfd, 1, (int)(wait > 200 ? 200 : wait)) > 0)
            prun__state_io(s, (pfd.revents & (POLLIN | POLLHUP | POLLERR)) != 0,
                (pfd.revents & POLLOUT) != 0);
    }
    if (s->head == NULL)
        return 0;
    return prun__err_set(err, PRUN_EREDIS,
        "%zu state record%s could not be written to Redis at %s (%s); "
        "status may show this run as lost",
        s->queued, s->queued == 1 ? "" : "s", s->url,
        s->last_error[0] ? s->last_error : "no reply");
}

/* ---- Any command, for pool mode on the work queue ------------------------
 */

void prun__state_argv(
    struct prun_state *s, int argc, const char **argv, const size_t *lens)
{
    char *buf = NULL;
    int len = redisFormatCommandArgv(&buf, argc, argv, lens);

    push_cmd(s, buf, len, 1, NULL, NULL);
}

struct list_cb {
    prun__state_list_fn fn;
    void *arg;
};

static void list_reply(struct prun_state *s, redisReply *r, void *arg)
{
    struct list_cb *cb = arg;
    const char *v[256];
    size_t i, n = 0;

    (void)s;
    for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && n < 256; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            v[n++] = r->element[i]->str;
    cb->fn(cb->arg, v, n);
    free(cb);
}

void prun__state_argv_list(struct prun_state *s, int argc, const char **argv,
    const size_t *lens, prun__state_list_fn fn, void *arg)
{
    struct list_cb *cb = malloc(sizeof(*cb));
    struct cmd *c;
    char *buf = NULL;
    int len;

    if (cb == NULL)
        return;
    cb->fn = fn;
    cb->arg = arg;
    len = redisFormatCommandArgv(&buf, argc, argv, lens);
    c = push_cmd(s, buf, len, 1, list_reply, cb);
    if (c == NULL)
        free(cb);
    else
        c->owns_arg = 1; /* a refused or unsent command frees it */
}

const char *prun__state_run_id(const struct prun_state *s)
{
    return s->run_id;
}

int64_t prun__state_ttl(const struct prun_state *s)
{
    return s->ttl_ms;
}

/* ---- The job lock's lease ------------------------------------------------
 */

static const char joblock_renew_lua[] =
    "local h = redis.call('GET', KEYS[1]) "
    "if h == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end "
    "if h then return h end return 0";

void prun__state_joblock_hold(
    struct prun_state *s, const struct prun_joblock *l)
{
    s->lock = *l;
    s->lock_until = l->taken_ms + l->lease_ms;
    s->lock_next_renew = l->taken_ms + l->lease_ms / 3;
    s->lock_inflight = 0;
    s->lock_lost = 0;
}

/* arg: when the renewal was queued, in ms after the lock was taken. */
static void on_joblock_renew(struct prun_state *s, redisReply *r, void *arg)
{
    int64_t sent = s->lock.taken_ms + (int64_t)(uintptr_t)arg;

    s->lock_inflight = 0;
    if (s->lock_until == 0 || s->lock_lost)
        return;
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        if (sent + s->lock.lease_ms > s->lock_until)
            s->lock_until = sent + s->lock.lease_ms;
    } else if (r->type == REDIS_REPLY_STRING) {
        s->lock_lost = 1;
        snprintf(s->lock_holder, sizeof(s->lock_holder), "%s", r->str);
    } else if (r->type == REDIS_REPLY_INTEGER) {
        s->lock_lost = 2;
    }
    /* An error reply (script trouble) renews nothing: the lease runs out. */
}

void prun__state_joblock_renew(struct prun_state *s, int64_t boot_now)
{
    if (s == NULL || s->lock_until == 0 || s->lock_lost || s->lock_inflight ||
        boot_now < s->lock_next_renew)
        return;
    prun__state_enqueue(s, on_joblock_renew,
        (void *)(uintptr_t)(boot_now - s->lock.taken_ms),
        "EVAL %s 1 %s %s %lld", joblock_renew_lua, s->lock.key, s->lock.value,
        (long long)s->lock.lease_ms);
    s->lock_inflight = 1;
    s->lock_next_renew = boot_now + s->lock.lease_ms / 3;
    prun__state_send(s);
}

int prun__state_joblock_check(
    struct prun_state *s, int64_t boot_now, struct prun_err *err)
{
    if (s == NULL || s->lock_until == 0)
        return 0;
    if (s->lock_lost == 1) {
        char rid[64] = "?";

        sscanf(s->lock_holder, "%63s", rid);
        return prun__err_set(err, PRUN_ELOCKED,
            "run %s took the lock over after this run's lease of %gs ran "
            "out",
            rid, (double)s->lock.lease_ms / 1000.0);
    }
    if (s->lock_lost == 2)
        return prun__err_set(err, PRUN_ELOCKED,
            "the lock expired in Redis (lease %gs)",
            (double)s->lock.lease_ms / 1000.0);
    if (boot_now < s->lock_until)
        return 0;
    s->lock_lost = 3;
    if (s->c == NULL)
        return prun__err_set(err, PRUN_ELOCKED,
            "its lease of %gs ran out while Redis was unreachable (%s)",
            (double)s->lock.lease_ms / 1000.0, s->last_error);
    return prun__err_set(err, PRUN_ELOCKED,
        "its lease of %gs ran out %.1fs ago without being renewed (was "
        "the runner stopped or suspended?)",
        (double)s->lock.lease_ms / 1000.0,
        (double)(boot_now - s->lock_until) / 1000.0);
}
