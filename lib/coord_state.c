/* SPDX-License-Identifier: MIT */
/*
 * coord_state: what the runner records in Redis, and what status, runs,
 * cancel and --resume read back (key schema: docs/redis-schema.md).
 *
 * The runner's writer is a queue of formatted commands in front of a
 * non-blocking hiredis context whose fd sits in the runner's epoll set. A
 * command is dropped from the queue only when its reply arrives; when the
 * connection breaks, the context is freed and the whole unacknowledged
 * queue is sent again on the next connection. That is safe because every
 * command written here is idempotent: counts are absolute values, members
 * are set members, fields are overwritten. Children keep running and new
 * ones keep starting while Redis is away. Every reply is checked, inside
 * MULTI/EXEC and script replies too: an error reply acknowledges its
 * command (it would be refused again) but is reported to the caller, the
 * first of each kind at once, and counted. Keys are created together with
 * their TTL, so no key outlives a runner killed at any moment.
 *
 * This module does not decide anything about the run; it records it.
 */
#include "coord_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HEARTBEAT_MS 2000
#define ALIVE_TTL_MS 6000 /* docs/redis-schema.md: 6 s */
#define RETRY_MS     500
/* The shortest TTL a key of a live run gets (many heartbeats). */
#define LIVE_TTL_MIN_MS 60000

typedef void (*reply_fn)(struct prun_state *s, redisReply *r, void *arg);

struct cmd {
    struct cmd *next;
    char *buf;
    size_t len;
    reply_fn fn; /* given the last reply, unless an error came */
    void *arg;
    unsigned nreplies; /* replies this entry is owed (MULTI..EXEC: 4) */
    unsigned got;      /* received on this connection */
    int refused;       /* an error reply came for it */
    int owns_arg;      /* arg is freed when fn is not called */
};

/* Error replies, by kind (the first word of Redis's message). */
#define ERR_KINDS 8

struct prun_state {
    struct prun_redis_addr addr;
    char url[300];
    char run_id[64];
    char host[128];
    int64_t ttl_ms;
    redisContext *c;
    int want_write;
    int64_t next_retry;
    int64_t next_beat;
    size_t preamble; /* replies owed to AUTH/SELECT on this connection */
    struct cmd *head, *tail; /* unacknowledged, oldest first */
    struct cmd *unsent;      /* first not yet given to this connection */
    size_t queued;
    int cancel;
    long long prog_done, prog_total;
    char **tasks; /* task names, for the done:TASK sets' TTL */
    size_t ntasks;
    char last_error[200];
    int started;
    /* The job lock's lease (prun__state_joblock_hold), if any. */
    struct prun_joblock lock;
    int64_t lock_until;      /* boottime ms; 0: no lock held */
    int64_t lock_next_renew; /* boottime ms */
    int lock_inflight;       /* a renewal awaits its reply */
    int lock_lost; /* 1 taken over, 2 gone from Redis, 3 lease ran out */
    char lock_holder[256]; /* the value found instead of ours */
    prun_state_error_fn on_error;
    void *on_error_ctx;
    unsigned long long refused; /* records Redis answered with an error */
    size_t nkinds;
    struct prun_state_error_kind kinds[ERR_KINDS];
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
static void pump(struct prun_state *s)
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
    unsigned nrep, reply_fn fn, void *arg)
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
static void enqueue(
    struct prun_state *s, reply_fn fn, void *arg, const char *fmt, ...)
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
 * The TTL a key gets while its run goes on: key_ttl, but never shorter
 * than a few heartbeats, so a key cannot expire under a live run.
 */
static int64_t live_ttl(const struct prun_state *s)
{
    return s->ttl_ms > LIVE_TTL_MIN_MS ? s->ttl_ms : LIVE_TTL_MIN_MS;
}

/*
 * Queues "MULTI; CMD; PEXPIRE k ttl; EXEC" as one entry: a key is never
 * created without its TTL, whenever the runner dies. cmd is a formatted
 * command (taken over).
 */
static void enqueue_with_ttl(
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

/* A write that may create key k, with k's TTL (ms) in the same step. */
static void enqueue_ttl(
    struct prun_state *s, const char *k, int64_t ttl, const char *fmt, ...)
{
    char *buf = NULL;
    va_list ap;
    int len;

    va_start(ap, fmt);
    len = redisvFormatCommand(&buf, fmt, ap);
    va_end(ap);
    enqueue_with_ttl(s, k, ttl, buf, len);
}

/* HSET k f <v>, v being binary-safe (a JSON object here), with k's TTL. */
static void hset_buf(struct prun_state *s, const char *k, const char *f,
    const struct prun_buf *v)
{
    const char *argv[] = {"HSET", k, f, v->data};
    size_t lens[] = {4, strlen(k), strlen(f), v->len};
    char *buf = NULL;
    int len;

    if (v->data == NULL)
        return;
    len = redisFormatCommandArgv(&buf, 4, argv, lens);
    enqueue_with_ttl(s, k, live_ttl(s), buf, len);
}

static void connect_now(struct prun_state *s)
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
    pump(s);
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
    connect_now(s);
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
        pump(s);
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
        pump(s);
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

int prun__state_cancel_requested(const struct prun_state *s)
{
    return s->cancel;
}

void prun__state_progress(
    const struct prun_state *s, long long *done, long long *total)
{
    *done = s->prog_done;
    *total = s->prog_total;
}

/* ---- Keys ---------------------------------------------------------------- */

static void key(
    const struct prun_state *s, char *buf, size_t n, const char *suffix)
{
    snprintf(buf, n, "parallelrun:{%.63s}:%.150s", s->run_id, suffix);
}

static void expire(struct prun_state *s, const char *k, int64_t ttl)
{
    enqueue(s, NULL, NULL, "PEXPIRE %s %lld", k, (long long)ttl);
}

/*
 * The registry of runs lives as long as the newest run in it: its TTL is
 * raised to ARGV[1], never lowered (another run may have a longer one).
 */
static const char registry_ttl_lua[] =
    "local t = redis.call('PTTL', KEYS[1]) "
    "if t < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) "
    "end return 1";

static void on_cancel(struct prun_state *s, redisReply *r, void *arg)
{
    (void)arg;
    if (r->type == REDIS_REPLY_INTEGER && r->integer > 0)
        s->cancel = 1;
}

static void on_progress(struct prun_state *s, redisReply *r, void *arg)
{
    long long done = 0, total = 0;
    size_t i;

    (void)arg;
    if (r->type != REDIS_REPLY_ARRAY)
        return;
    for (i = 1; i < r->elements; i += 2) {
        long long d = 0, t = -1;
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            sscanf(r->element[i]->str, "%lld %lld", &d, &t) >= 1) {
            done += d;
            if (t > 0)
                total += t;
        }
    }
    s->prog_done = done;
    s->prog_total = total;
}

/* Progress reports of the instances still running, as field/value pairs. */
const char prun__progress_lua[] =
    "local out = {} local p = redis.call('HGETALL', KEYS[1]) "
    "for i = 1, #p, 2 do if redis.call('HEXISTS', KEYS[2], p[i]) == 1 then "
    "out[#out + 1] = p[i] out[#out + 1] = p[i + 1] end end return out";

static void heartbeat(struct prun_state *s)
{
    char k[256], v[256];
    size_t i;

    /*
     * Every key is created with its TTL; each beat pushes it further, so
     * the keys of a runner that is killed outright expire that long after
     * its last beat, and never while it lives.
     */
    static const char *const keys[] = {
        "run", "running", "failed", "tasks", "progress"};
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        key(s, k, sizeof(k), keys[i]);
        expire(s, k, live_ttl(s));
    }
    for (i = 0; i < s->ntasks; i++) {
        char sub[200];
        snprintf(sub, sizeof(sub), "done:%s", s->tasks[i]);
        key(s, k, sizeof(k), sub);
        expire(s, k, live_ttl(s));
    }
    enqueue(s, NULL, NULL, "EVAL %s 1 %s %lld", registry_ttl_lua,
        "parallelrun:runs", (long long)live_ttl(s));
    key(s, k, sizeof(k), "alive");
    snprintf(v, sizeof(v), "%s %ld", s->host, (long)getpid());
    enqueue(s, NULL, NULL, "SET %s %s PX %d", k, v, ALIVE_TTL_MS);
    key(s, k, sizeof(k), "cancel");
    enqueue(s, on_cancel, NULL, "EXISTS %s", k);
}

void prun__state_tick(struct prun_state *s, int64_t now)
{
    if (s->started) {
        /* What running children report, for the progress line. */
        char k[256], rk[256];

        key(s, k, sizeof(k), "progress");
        key(s, rk, sizeof(rk), "running");
        enqueue(
            s, on_progress, NULL, "EVAL %s 2 %s %s", prun__progress_lua, k, rk);
    }
    if (s->c == NULL && now >= s->next_retry)
        connect_now(s);
    if (s->started && now >= s->next_beat) {
        heartbeat(s);
        s->next_beat = now + HEARTBEAT_MS;
    }
    pump(s);
}

void prun__state_run_start(struct prun_state *s, const struct prun_state_run *r,
    const char *const *task_names, size_t ntasks)
{
    char k[256], num[32], pidv[32], jobs[32];
    size_t i;

    snprintf(num, sizeof(num), "%lld", (long long)prun__wall_ms());
    snprintf(pidv, sizeof(pidv), "%ld", (long)getpid());
    snprintf(jobs, sizeof(jobs), "%u", r->jobs);
    key(s, k, sizeof(k), "run");
    enqueue_ttl(s, k, live_ttl(s),
        "HSET %s name %s job %s host %s pid %s state running started_ms %s "
        "jobs %s resumed_from %s",
        k, r->name, r->job, s->host, pidv, num, jobs,
        r->resumed_from ? r->resumed_from : "");
    enqueue(s, NULL, NULL, "ZADD parallelrun:runs %s %s", num, s->run_id);
    enqueue(s, NULL, NULL, "EVAL %s 1 %s %lld", registry_ttl_lua,
        "parallelrun:runs", (long long)live_ttl(s));
    /* The registry keeps the newest thousand runs. */
    enqueue(s, NULL, NULL, "ZREMRANGEBYRANK parallelrun:runs 0 -1001");
    s->tasks = calloc(ntasks ? ntasks : 1, sizeof(char *));
    for (i = 0; s->tasks && i < ntasks; i++)
        if ((s->tasks[s->ntasks] = strdup(task_names[i])) != NULL)
            s->ntasks++;
    s->started = 1;
    heartbeat(s);
    s->next_beat = prun__now_ms() + HEARTBEAT_MS;
    pump(s);
}

static void inst_field(
    char *buf, size_t n, const char *task, unsigned long long index)
{
    snprintf(buf, n, "%s[%llu]", task, index);
}

void prun__state_inst_start(struct prun_state *s, const char *task,
    unsigned long long index, unsigned attempt, long pid, const char *item)
{
    struct prun_buf v = {0};
    char k[256], f[200];

    key(s, k, sizeof(k), "running");
    inst_field(f, sizeof(f), task, index);
    prun__buf_adds(&v, "{\"task\":");
    prun__buf_add_json(&v, task, strlen(task));
    prun__buf_printf(&v,
        ",\"index\":%llu,\"attempt\":%u,\"pid\":%ld,\"started_ms\":%lld,"
        "\"item\":",
        index, attempt, pid, (long long)prun__wall_ms());
    prun__buf_add_json(&v, item, strlen(item) > 200 ? 200 : strlen(item));
    prun__buf_addc(&v, '}');
    hset_buf(s, k, f, &v);
    prun__buf_free(&v);
}

void prun__state_inst_end(struct prun_state *s, const struct prun_state_end *e)
{
    char k[256], f[200], sub[200];

    inst_field(f, sizeof(f), e->task, e->index);
    /*
     * Its progress field, if it reported any, stays until the run ends:
     * readers only count progress of instances still in "running".
     */
    if (e->was_running) {
        key(s, k, sizeof(k), "running");
        enqueue(s, NULL, NULL, "HDEL %s %s", k, f);
    }
    if (e->final && e->succeeded) {
        snprintf(sub, sizeof(sub), "done:%s", e->task);
        key(s, k, sizeof(k), sub);
        enqueue_ttl(s, k, live_ttl(s), "SADD %s %s", k, e->item);
    } else if (e->final) {
        struct prun_buf v = {0};

        key(s, k, sizeof(k), "failed");
        prun__buf_adds(&v, "{\"task\":");
        prun__buf_add_json(&v, e->task, strlen(e->task));
        prun__buf_printf(&v,
            ",\"index\":%llu,\"attempt\":%u,\"kind\":\"%s\","
            "\"status\":%d,\"reason\":",
            e->index, e->attempt, e->kind, e->status);
        prun__buf_add_json(&v, e->reason, strlen(e->reason));
        prun__buf_adds(&v, ",\"item\":");
        prun__buf_add_json(
            &v, e->item, strlen(e->item) > 200 ? 200 : strlen(e->item));
        prun__buf_adds(&v, ",\"stderr_tail\":");
        prun__buf_add_json(&v, e->stderr_tail, strlen(e->stderr_tail));
        prun__buf_printf(&v, ",\"ended_ms\":%lld}", (long long)prun__wall_ms());
        hset_buf(s, k, f, &v);
        prun__buf_free(&v);
    }
}

void prun__state_done(struct prun_state *s, const char *task, const char *item)
{
    char k[256], sub[200];

    snprintf(sub, sizeof(sub), "done:%s", task);
    key(s, k, sizeof(k), sub);
    enqueue_ttl(s, k, live_ttl(s), "SADD %s %s", k, item);
}

void prun__state_counts(struct prun_state *s,
    const struct prun__state_counts *c, const char *const *task_json,
    size_t ntasks)
{
    const char **argv;
    char k[256], *buf = NULL;
    size_t i;
    int len;

    key(s, k, sizeof(k), "run");
    enqueue_ttl(s, k, live_ttl(s),
        "HSET %s total %lld succeeded %llu failed %llu cancelled %llu "
        "skipped %llu retried %llu running %llu",
        k, c->total, c->succeeded, c->failed, c->cancelled, c->skipped,
        c->retried, c->running);
    if (ntasks == 0)
        return;
    /* One HSET of every task's fields, with the key's TTL. */
    key(s, k, sizeof(k), "tasks");
    argv = calloc(2 + 2 * ntasks, sizeof(*argv));
    if (argv == NULL)
        return;
    argv[0] = "HSET";
    argv[1] = k;
    for (i = 0; i < 2 * ntasks; i++)
        argv[2 + i] = task_json[i];
    len = redisFormatCommandArgv(&buf, (int)(2 + 2 * ntasks), argv, NULL);
    free(argv);
    enqueue_with_ttl(s, k, live_ttl(s), buf, len);
}

void prun__state_run_end(
    struct prun_state *s, const char *state, int exit_code, int signal)
{
    char k[256], sub[200];
    static const char *const keys[] = {
        "run", "running", "failed", "tasks", "progress", "cancel"};
    size_t i;

    key(s, k, sizeof(k), "run");
    enqueue_ttl(s, k, s->ttl_ms,
        "HSET %s state %s ended_ms %lld exit_code %d signal %d running 0", k,
        state, (long long)prun__wall_ms(), exit_code, signal);
    key(s, k, sizeof(k), "alive");
    enqueue(s, NULL, NULL, "DEL %s", k);
    key(s, k, sizeof(k), "progress");
    enqueue(s, NULL, NULL, "DEL %s", k);
    if (strcmp(state, "succeeded") == 0) {
        /*
         * Nothing of a run that fully succeeded is left to resume: its
         * done sets, by far the bulk of the store (and of the embedded
         * server's load and save at every start and stop), can go.
         * --resume of such a run takes every item as done.
         */
        for (i = 0; i < s->ntasks; i++) {
            snprintf(sub, sizeof(sub), "done:%s", s->tasks[i]);
            key(s, k, sizeof(k), sub);
            enqueue(s, NULL, NULL, "DEL %s", k);
        }
    }
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        key(s, k, sizeof(k), keys[i]);
        expire(s, k, s->ttl_ms);
    }
    /*
     * Keys children made (barriers, locks, queues, done sets) get the TTL
     * too; a Lua loop over SCAN keeps it to one round trip. The pool's
     * queues and their bookkeeping go: a finished run has no use for
     * them (--resume reads the done sets and the item source again).
     */
    snprintf(sub, sizeof(sub), "parallelrun:{%.40s}:*", s->run_id);
    key(s, k, sizeof(k), "pool:");
    enqueue(s, NULL, NULL, "EVAL %s 0 %s %lld %s",
        "local c = '0' repeat local r = redis.call('SCAN', c, 'MATCH', "
        "ARGV[1], 'COUNT', 1000) c = r[1] for _, k in ipairs(r[2]) do "
        "if string.sub(k, 1, #ARGV[3]) == ARGV[3] then redis.call('DEL', k) "
        "else redis.call('PEXPIRE', k, ARGV[2]) end end until c == '0' "
        "return 1",
        sub, (long long)s->ttl_ms, k);
    enqueue(s, NULL, NULL, "EVAL %s 1 %s %lld", registry_ttl_lua,
        "parallelrun:runs", (long long)s->ttl_ms);
    s->started = 0;
    pump(s);
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
                connect_now(s);
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

/* ---- Pool mode ------------------------------------------------------------
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

void prun__state_pool_push(struct prun_state *s, const char *task,
    unsigned long long index, const char *item)
{
    struct prun_buf v = {0};
    char k[256], sub[200];

    snprintf(sub, sizeof(sub), "pool:%s", task);
    key(s, k, sizeof(k), sub);
    /*
     * RPUSH is not idempotent: a replay after a reconnect could queue an
     * item twice. The item is guarded by a set of queued indices instead.
     */
    if (prun__buf_printf(&v, "%llu\t%s", index, item) == 0) {
        char qk[256];
        char idx[32];
        snprintf(idx, sizeof(idx), "%llu", index);
        snprintf(sub, sizeof(sub), "pool:%s:queued", task);
        key(s, qk, sizeof(qk), sub);
        enqueue(s, NULL, NULL, "EVAL %s 2 %s %s %s %b %lld",
            "if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then "
            "redis.call('RPUSH', KEYS[1], ARGV[2]) "
            "redis.call('PEXPIRE', KEYS[1], ARGV[3]) "
            "redis.call('PEXPIRE', KEYS[2], ARGV[3]) end return 1",
            k, qk, idx, v.data, v.len, (long long)live_ttl(s));
    }
    prun__buf_free(&v);
}

void prun__state_pool_fed(
    struct prun_state *s, const char *task, unsigned long long count)
{
    char k[256], sub[200];

    snprintf(sub, sizeof(sub), "pool:%s:fed", task);
    key(s, k, sizeof(k), sub);
    /* The count, not a flag: workers stop when that many are done. */
    enqueue(
        s, NULL, NULL, "SET %s %llu PX %lld", k, count, (long long)live_ttl(s));
}

void prun__state_pool_worker_end(struct prun_state *s, const char *task,
    unsigned long long worker, unsigned attempt, int ok)
{
    char wip[256], q[256], done[256], okk[256], sub[200];

    snprintf(sub, sizeof(sub), "pool:%s:wip:%llu.%u", task, worker, attempt);
    key(s, wip, sizeof(wip), sub);
    snprintf(sub, sizeof(sub), "pool:%s", task);
    key(s, q, sizeof(q), sub);
    snprintf(sub, sizeof(sub), "done:%s", task);
    key(s, done, sizeof(done), sub);
    snprintf(sub, sizeof(sub), "pool:%s:ok", task);
    key(s, okk, sizeof(okk), sub);
    if (ok)
        /* The worker's last item is done, as if it had asked for another. */
        enqueue(s, NULL, NULL, "EVAL %s 3 %s %s %s %lld",
            "local e = redis.call('LPOP', KEYS[1]) if e then "
            "local t = string.find(e, '\\t') "
            "redis.call('SADD', KEYS[2], string.sub(e, t + 1)) "
            "redis.call('INCR', KEYS[3]) "
            "redis.call('PEXPIRE', KEYS[2], ARGV[1]) "
            "redis.call('PEXPIRE', KEYS[3], ARGV[1]) end return 1",
            wip, done, okk, (long long)live_ttl(s));
    else
        /* Back to the front of the queue, for another worker. */
        enqueue(s, NULL, NULL, "EVAL %s 2 %s %s %lld",
            "local e = redis.call('LPOP', KEYS[1]) if e then "
            "redis.call('LPUSH', KEYS[2], e) "
            "redis.call('PEXPIRE', KEYS[2], ARGV[1]) end return 1",
            wip, q, (long long)live_ttl(s));
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
    enqueue(s, on_joblock_renew,
        (void *)(uintptr_t)(boot_now - s->lock.taken_ms),
        "EVAL %s 1 %s %s %lld", joblock_renew_lua, s->lock.key, s->lock.value,
        (long long)s->lock.lease_ms);
    s->lock_inflight = 1;
    s->lock_next_renew = boot_now + s->lock.lease_ms / 3;
    pump(s);
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
