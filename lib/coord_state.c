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
 * ones keep starting while Redis is away.
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

#define HEARTBEAT_MS     2000
#define ALIVE_TTL_MS     6000 /* docs/redis-schema.md: 6 s */
#define JOBLOCK_LEASE_MS 30000
#define RETRY_MS         500

typedef void (*reply_fn)(struct prun_state *s, redisReply *r, void *arg);

struct cmd {
    struct cmd *next;
    char *buf;
    size_t len;
    reply_fn fn;
    void *arg;
};

struct prun_state {
    struct prun_redis_addr addr;
    char url[300];
    char run_id[64];
    char host[128];
    char job_name[128];
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
};

static void disconnect(struct prun_state *s, const char *why)
{
    if (s->c == NULL)
        return;
    snprintf(s->last_error, sizeof(s->last_error), "%s", why);
    redisFree(s->c);
    s->c = NULL;
    s->want_write = 0;
    s->unsent = s->head;
    s->next_retry = prun_now_ms() + RETRY_MS;
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

static void push_cmd(
    struct prun_state *s, char *buf, int len, reply_fn fn, void *arg)
{
    struct cmd *c;

    if (len < 0 || buf == NULL)
        return;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        free(buf);
        return;
    }
    c->buf = buf;
    c->len = (size_t)len;
    c->fn = fn;
    c->arg = arg;
    if (s->tail)
        s->tail->next = c;
    else
        s->head = c;
    s->tail = c;
    if (s->unsent == NULL)
        s->unsent = c;
    s->queued++;
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
    push_cmd(s, buf, len, fn, arg);
}

static void enqueue_argv(
    struct prun_state *s, int argc, const char **argv, const size_t *lens)
{
    char *buf = NULL;
    int len = redisFormatCommandArgv(&buf, argc, argv, lens);

    push_cmd(s, buf, len, NULL, NULL);
}

/* HSET k f <v>, v being binary-safe (a JSON object here). */
static void hset_buf(struct prun_state *s, const char *k, const char *f,
    const struct prun_buf *v)
{
    const char *argv[] = {"HSET", k, f, v->data};
    size_t lens[] = {4, strlen(k), strlen(f), v->len};

    if (v->data != NULL)
        enqueue_argv(s, 4, argv, lens);
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
        s->next_retry = prun_now_ms() + RETRY_MS;
        return;
    }
    fcntl(c->fd, F_SETFD, FD_CLOEXEC);
    s->c = c;
    s->preamble = 0;
    if (s->addr.password[0]) {
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

int prun_state_open(const struct prun_state_opts *o, struct prun_state **out,
    struct prun_err *err)
{
    struct prun_state *s;
    int rc;

    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return prun_err_set(err, PRUN_ENOMEM, "out of memory");
    rc = prun_redis_url_parse(o->url, &s->addr, err);
    if (rc < 0) {
        free(s);
        return rc;
    }
    if (o->password && *o->password)
        snprintf(s->addr.password, sizeof(s->addr.password), "%s", o->password);
    prun_redis_url_format(&s->addr, s->url, sizeof(s->url));
    snprintf(s->run_id, sizeof(s->run_id), "%s", o->run_id);
    snprintf(
        s->job_name, sizeof(s->job_name), "%s", o->job_name ? o->job_name : "");
    s->ttl_ms = o->key_ttl_ms > 0 ? o->key_ttl_ms : 7 * 86400000LL;
    if (gethostname(s->host, sizeof(s->host)) < 0)
        snprintf(s->host, sizeof(s->host), "localhost");
    connect_now(s);
    *out = s;
    return 0;
}

void prun_state_close(struct prun_state *s)
{
    struct cmd *c, *n;
    size_t i;

    if (s == NULL)
        return;
    if (s->c)
        redisFree(s->c);
    for (c = s->head; c; c = n) {
        n = c->next;
        free(c->buf);
        free(c);
    }
    for (i = 0; i < s->ntasks; i++)
        free(s->tasks[i]);
    free(s->tasks);
    free(s);
}

void prun_state_pump(struct prun_state *s)
{
    if (s->c != NULL && s->unsent != NULL)
        pump(s);
}

size_t prun_state_pending(const struct prun_state *s)
{
    const struct cmd *c;
    size_t n = 0;

    /* Counting stops at the batch size: callers only compare with it. */
    for (c = s->c ? s->unsent : NULL; c != NULL && n < 256; c = c->next)
        n++;
    return n;
}

int prun_state_fd(const struct prun_state *s)
{
    return s->c ? s->c->fd : -1;
}

int prun_state_want_write(const struct prun_state *s)
{
    return s->c != NULL && s->want_write;
}

static void read_replies(struct prun_state *s)
{
    void *reply;

    if (redisBufferRead(s->c) != REDIS_OK) {
        disconnect(s, s->c->errstr);
        return;
    }
    for (;;) {
        redisReply *r;

        if (redisGetReplyFromReader(s->c, &reply) != REDIS_OK) {
            disconnect(s, s->c->errstr);
            return;
        }
        if (reply == NULL)
            return;
        r = reply;
        if (s->preamble > 0) {
            s->preamble--;
            if (r->type == REDIS_REPLY_ERROR) {
                char why[200];
                snprintf(why, sizeof(why), "%s", r->str);
                freeReplyObject(r);
                disconnect(s, why);
                return;
            }
        } else if (s->head != NULL) {
            struct cmd *c = s->head;

            s->head = c->next;
            if (s->head == NULL)
                s->tail = NULL;
            s->queued--;
            if (c->fn)
                c->fn(s, r, c->arg);
            free(c->buf);
            free(c);
        }
        freeReplyObject(r);
    }
}

void prun_state_io(struct prun_state *s, int readable, int writable)
{
    if (s->c == NULL)
        return;
    if (readable)
        read_replies(s);
    if (s->c != NULL && (writable || s->unsent != NULL))
        pump(s);
}

int prun_state_cancel_requested(const struct prun_state *s)
{
    return s->cancel;
}

void prun_state_progress(
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

static void expire(struct prun_state *s, const char *k)
{
    enqueue(s, NULL, NULL, "PEXPIRE %s %lld", k, (long long)s->ttl_ms);
}

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
static const char progress_lua[] =
    "local out = {} local p = redis.call('HGETALL', KEYS[1]) "
    "for i = 1, #p, 2 do if redis.call('HEXISTS', KEYS[2], p[i]) == 1 then "
    "out[#out + 1] = p[i] out[#out + 1] = p[i + 1] end end return out";

static const char renew_lock_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";

static void heartbeat(struct prun_state *s)
{
    char k[256], v[256];
    size_t i;

    /*
     * The run's keys get their TTL on every beat, so even the keys of a
     * runner that is killed outright expire key_ttl after its last beat.
     */
    static const char *const keys[] = {
        "run", "running", "failed", "tasks", "progress"};
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        key(s, k, sizeof(k), keys[i]);
        expire(s, k);
    }
    for (i = 0; i < s->ntasks; i++) {
        char sub[200];
        snprintf(sub, sizeof(sub), "done:%s", s->tasks[i]);
        key(s, k, sizeof(k), sub);
        expire(s, k);
    }
    key(s, k, sizeof(k), "alive");
    snprintf(v, sizeof(v), "%s %ld", s->host, (long)getpid());
    enqueue(s, NULL, NULL, "SET %s %s PX %d", k, v, ALIVE_TTL_MS);
    key(s, k, sizeof(k), "cancel");
    enqueue(s, on_cancel, NULL, "EXISTS %s", k);

    if (s->job_name[0]) {
        char holder[256];
        snprintf(k, sizeof(k), "parallelrun:lock:{%s}", s->job_name);
        snprintf(holder, sizeof(holder), "%s %s %ld", s->run_id, s->host,
            (long)getpid());
        enqueue(s, NULL, NULL, "EVAL %s 1 %s %s %d", renew_lock_lua, k, holder,
            JOBLOCK_LEASE_MS);
    }
}

void prun_state_tick(struct prun_state *s, int64_t now)
{
    if (s->started) {
        /* What running children report, for the progress line. */
        char k[256], rk[256];

        key(s, k, sizeof(k), "progress");
        key(s, rk, sizeof(rk), "running");
        enqueue(s, on_progress, NULL, "EVAL %s 2 %s %s", progress_lua, k, rk);
    }
    if (s->c == NULL && now >= s->next_retry)
        connect_now(s);
    if (s->started && now >= s->next_beat) {
        heartbeat(s);
        s->next_beat = now + HEARTBEAT_MS;
    }
    pump(s);
}

void prun_state_run_start(struct prun_state *s, const struct prun_state_run *r,
    const char *const *task_names, size_t ntasks)
{
    char k[256], num[32], pidv[32], jobs[32];
    size_t i;

    snprintf(num, sizeof(num), "%lld", (long long)prun_wall_ms());
    snprintf(pidv, sizeof(pidv), "%ld", (long)getpid());
    snprintf(jobs, sizeof(jobs), "%u", r->jobs);
    key(s, k, sizeof(k), "run");
    enqueue(s, NULL, NULL,
        "HSET %s name %s job %s host %s pid %s state running started_ms %s "
        "jobs %s resumed_from %s",
        k, r->name, r->job, s->host, pidv, num, jobs,
        r->resumed_from ? r->resumed_from : "");
    expire(s, k);
    enqueue(s, NULL, NULL, "ZADD parallelrun:runs %s %s", num, s->run_id);
    /* The registry keeps the newest thousand runs. */
    enqueue(s, NULL, NULL, "ZREMRANGEBYRANK parallelrun:runs 0 -1001");
    s->tasks = calloc(ntasks ? ntasks : 1, sizeof(char *));
    for (i = 0; s->tasks && i < ntasks; i++)
        if ((s->tasks[s->ntasks] = strdup(task_names[i])) != NULL)
            s->ntasks++;
    s->started = 1;
    heartbeat(s);
    s->next_beat = prun_now_ms() + HEARTBEAT_MS;
    pump(s);
}

static void inst_field(
    char *buf, size_t n, const char *task, unsigned long long index)
{
    snprintf(buf, n, "%s[%llu]", task, index);
}

void prun_state_inst_start(struct prun_state *s, const char *task,
    unsigned long long index, unsigned attempt, long pid, const char *item)
{
    struct prun_buf v = {0};
    char k[256], f[200];

    key(s, k, sizeof(k), "running");
    inst_field(f, sizeof(f), task, index);
    prun_buf_adds(&v, "{\"task\":");
    prun_buf_add_json(&v, task, strlen(task));
    prun_buf_printf(&v,
        ",\"index\":%llu,\"attempt\":%u,\"pid\":%ld,\"started_ms\":%lld,"
        "\"item\":",
        index, attempt, pid, (long long)prun_wall_ms());
    prun_buf_add_json(&v, item, strlen(item) > 200 ? 200 : strlen(item));
    prun_buf_addc(&v, '}');
    hset_buf(s, k, f, &v);
    prun_buf_free(&v);
}

void prun_state_inst_end(struct prun_state *s, const struct prun_state_end *e)
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
        enqueue(s, NULL, NULL, "SADD %s %s", k, e->item);
    } else if (e->final) {
        struct prun_buf v = {0};

        key(s, k, sizeof(k), "failed");
        prun_buf_adds(&v, "{\"task\":");
        prun_buf_add_json(&v, e->task, strlen(e->task));
        prun_buf_printf(&v,
            ",\"index\":%llu,\"attempt\":%u,\"kind\":\"%s\","
            "\"status\":%d,\"reason\":",
            e->index, e->attempt, e->kind, e->status);
        prun_buf_add_json(&v, e->reason, strlen(e->reason));
        prun_buf_adds(&v, ",\"item\":");
        prun_buf_add_json(
            &v, e->item, strlen(e->item) > 200 ? 200 : strlen(e->item));
        prun_buf_adds(&v, ",\"stderr_tail\":");
        prun_buf_add_json(&v, e->stderr_tail, strlen(e->stderr_tail));
        prun_buf_printf(&v, ",\"ended_ms\":%lld}", (long long)prun_wall_ms());
        hset_buf(s, k, f, &v);
        prun_buf_free(&v);
    }
}

void prun_state_done(struct prun_state *s, const char *task, const char *item)
{
    char k[256], sub[200];

    snprintf(sub, sizeof(sub), "done:%s", task);
    key(s, k, sizeof(k), sub);
    enqueue(s, NULL, NULL, "SADD %s %s", k, item);
}

void prun_state_counts(struct prun_state *s, const struct prun_state_counts *c,
    const char *const *task_json, size_t ntasks)
{
    char k[256];
    size_t i;

    key(s, k, sizeof(k), "run");
    enqueue(s, NULL, NULL,
        "HSET %s total %lld succeeded %llu failed %llu cancelled %llu "
        "skipped %llu retried %llu running %llu",
        k, c->total, c->succeeded, c->failed, c->cancelled, c->skipped,
        c->retried, c->running);
    key(s, k, sizeof(k), "tasks");
    for (i = 0; i + 1 < ntasks * 2; i += 2)
        enqueue(
            s, NULL, NULL, "HSET %s %s %s", k, task_json[i], task_json[i + 1]);
}

void prun_state_run_end(
    struct prun_state *s, const char *state, int exit_code, int signal)
{
    char k[256], sub[200];
    static const char *const keys[] = {
        "run", "running", "failed", "tasks", "progress", "cancel"};
    size_t i;

    key(s, k, sizeof(k), "run");
    enqueue(s, NULL, NULL,
        "HSET %s state %s ended_ms %lld exit_code %d signal %d running 0", k,
        state, (long long)prun_wall_ms(), exit_code, signal);
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
        expire(s, k);
    }
    /*
     * Keys children made (barriers, locks, queues, pool, done sets) get the
     * TTL too; a Lua loop over SCAN keeps it to one round trip.
     */
    snprintf(sub, sizeof(sub), "parallelrun:{%.40s}:*", s->run_id);
    enqueue(s, NULL, NULL, "EVAL %s 0 %s %lld",
        "local c = '0' repeat local r = redis.call('SCAN', c, 'MATCH', "
        "ARGV[1], 'COUNT', 1000) c = r[1] for _, k in ipairs(r[2]) do "
        "redis.call('PEXPIRE', k, ARGV[2]) end until c == '0' return 1",
        sub, (long long)s->ttl_ms);
    if (s->job_name[0]) {
        char holder[256];
        snprintf(k, sizeof(k), "parallelrun:lock:{%s}", s->job_name);
        snprintf(holder, sizeof(holder), "%s %s %ld", s->run_id, s->host,
            (long)getpid());
        enqueue(s, NULL, NULL, "EVAL %s 1 %s %s",
            "if redis.call('GET', KEYS[1]) == ARGV[1] then "
            "return redis.call('DEL', KEYS[1]) end return 0",
            k, holder);
    }
    s->started = 0;
    pump(s);
}

int prun_state_flush(
    struct prun_state *s, int64_t timeout_ms, struct prun_err *err)
{
    int64_t deadline = prun_now_ms() + timeout_ms;

    prun_state_pump(s);
    while (s->head != NULL) {
        int64_t now = prun_now_ms(), wait;
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
            prun_state_io(s, (pfd.revents & (POLLIN | POLLHUP | POLLERR)) != 0,
                (pfd.revents & POLLOUT) != 0);
    }
    if (s->head == NULL)
        return 0;
    return prun_err_set(err, PRUN_EREDIS,
        "%zu state record%s could not be written to Redis at %s (%s); "
        "status may show this run as lost",
        s->queued, s->queued == 1 ? "" : "s", s->url,
        s->last_error[0] ? s->last_error : "no reply");
}

/* ---- Pool mode ------------------------------------------------------------
 */

void prun_state_pool_push(struct prun_state *s, const char *task,
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
    if (prun_buf_printf(&v, "%llu\t%s", index, item) == 0) {
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
            k, qk, idx, v.data, v.len, (long long)s->ttl_ms);
    }
    prun_buf_free(&v);
}

void prun_state_pool_fed(
    struct prun_state *s, const char *task, unsigned long long count)
{
    char k[256], sub[200];

    snprintf(sub, sizeof(sub), "pool:%s:fed", task);
    key(s, k, sizeof(k), sub);
    /* The count, not a flag: workers stop when that many are done. */
    enqueue(
        s, NULL, NULL, "SET %s %llu PX %lld", k, count, (long long)s->ttl_ms);
}

void prun_state_pool_worker_end(struct prun_state *s, const char *task,
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
            wip, done, okk, (long long)s->ttl_ms);
    else
        /* Back to the front of the queue, for another worker. */
        enqueue(s, NULL, NULL, "EVAL %s 2 %s %s",
            "local e = redis.call('LPOP', KEYS[1]) if e then "
            "redis.call('LPUSH', KEYS[2], e) end return 1",
            wip, q);
}

/* ---- Blocking operations: job lock, resume, status ----------------------
 */

static const char take_lock_lua[] =
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then "
    "return {1, ARGV[1]} end "
    "local h = redis.call('GET', KEYS[1]) "
    "if h and h == ARGV[3] then "
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return {1, ARGV[1]} "
    "end "
    "return {0, h or ''}";

int prun_joblock_take(struct prun_conn *c, const char *job_name,
    const char *run_id, struct prun_err *err)
{
    char k[256], me[256], host[128], lease[32], stale[256] = "-";
    const char *args[4];
    redisReply *r;
    int attempt, rc = 0;

    if (gethostname(host, sizeof(host)) < 0)
        snprintf(host, sizeof(host), "localhost");
    snprintf(k, sizeof(k), "parallelrun:lock:{%s}", job_name);
    snprintf(me, sizeof(me), "%s %s %ld", run_id, host, (long)getpid());
    snprintf(lease, sizeof(lease), "%d", JOBLOCK_LEASE_MS);
    for (attempt = 0; attempt < 2; attempt++) {
        char hrid[64] = "", hhost[128] = "";
        long hpid = 0;

        args[0] = k;
        args[1] = me;
        args[2] = lease;
        args[3] = stale;
        r = prun__eval(c, err, take_lock_lua, 1, 4, args);
        if (r == NULL)
            return err ? err->code : PRUN_EREDIS;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            freeReplyObject(r);
            return prun_err_set(err, PRUN_EREDIS, "unexpected reply");
        }
        if (r->element[0]->integer == 1) {
            freeReplyObject(r);
            return 0;
        }
        sscanf(r->element[1]->str, "%63s %127s %ld", hrid, hhost, &hpid);
        /*
         * A holder on this host whose process is gone died without
         * releasing: take the lock over rather than wait out its lease.
         */
        if (attempt == 0 && strcmp(hhost, host) == 0 && hpid > 0 &&
            kill((pid_t)hpid, 0) < 0 && errno == ESRCH) {
            snprintf(stale, sizeof(stale), "%s", r->element[1]->str);
            freeReplyObject(r);
            continue;
        }
        rc = prun_err_set(err, PRUN_ELOCKED,
            "job '%s' is locked by run %s (host %s, pid %ld); try later",
            job_name, hrid, hhost, hpid);
        freeReplyObject(r);
        return rc;
    }
    return prun_err_set(err, PRUN_ELOCKED, "job '%s' is locked", job_name);
}

void prun_joblock_release(
    struct prun_conn *c, const char *job_name, const char *run_id)
{
    char k[256], me[256], host[128];
    const char *args[2];
    redisReply *r;

    if (gethostname(host, sizeof(host)) < 0)
        snprintf(host, sizeof(host), "localhost");
    snprintf(k, sizeof(k), "parallelrun:lock:{%s}", job_name);
    snprintf(me, sizeof(me), "%s %s %ld", run_id, host, (long)getpid());
    args[0] = k;
    args[1] = me;
    r = prun__eval(c, NULL,
        "if redis.call('GET', KEYS[1]) == ARGV[1] then "
        "return redis.call('DEL', KEYS[1]) end return 0",
        1, 2, args);
    if (r)
        freeReplyObject(r);
}

/* An open-addressing hash set of strings. */
struct prun_strset {
    size_t n, cap;
    char **slots;
    int all; /* holds every value: the resumed run fully succeeded */
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int strset_add(struct prun_strset *s, const char *v, size_t len)
{
    size_t i;

    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64, j;
        char **slots = calloc(cap, sizeof(char *));

        if (slots == NULL)
            return -1;
        for (j = 0; j < s->cap; j++) {
            if (s->slots[j] == NULL)
                continue;
            i = hash_str(s->slots[j]) & (cap - 1);
            while (slots[i])
                i = (i + 1) & (cap - 1);
            slots[i] = s->slots[j];
        }
        free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    {
        char *copy = malloc(len + 1);
        if (copy == NULL)
            return -1;
        memcpy(copy, v, len);
        copy[len] = '\0';
        i = hash_str(copy) & (s->cap - 1);
        while (s->slots[i]) {
            if (strcmp(s->slots[i], copy) == 0) {
                free(copy);
                return 0;
            }
            i = (i + 1) & (s->cap - 1);
        }
        s->slots[i] = copy;
        s->n++;
    }
    return 0;
}

int prun_strset_has(const struct prun_strset *s, const char *v)
{
    size_t i;

    if (s != NULL && s->all)
        return 1;
    if (s == NULL || s->cap == 0)
        return 0;
    for (i = hash_str(v) & (s->cap - 1); s->slots[i];
         i = (i + 1) & (s->cap - 1))
        if (strcmp(s->slots[i], v) == 0)
            return 1;
    return 0;
}

void prun_strset_free(struct prun_strset *s)
{
    size_t i;

    if (s == NULL)
        return;
    for (i = 0; i < s->cap; i++)
        free(s->slots[i]);
    free(s->slots);
    free(s);
}

int prun_resume_load(struct prun_conn *c, const char *rid, const char *job_name,
    const char *const *tasks, size_t ntasks, struct prun_strset ***out,
    struct prun_err *err)
{
    struct prun_strset **sets;
    redisReply *r;
    char k[256];
    size_t t;
    int rc = 0, all;

    snprintf(k, sizeof(k), "parallelrun:{%s}:run", rid);
    r = prun__cmd(c, err, "HGET %s name", k);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return prun_err_set(err, PRUN_EINVAL,
            "--resume: no run '%s' is recorded in Redis at %s", rid,
            prun_conn_url(c));
    }
    if (strcmp(r->str, job_name) != 0) {
        rc = prun_err_set(err, PRUN_EINVAL,
            "--resume: run '%s' is of job '%s', not '%s'", rid, r->str,
            job_name);
        freeReplyObject(r);
        return rc;
    }
    freeReplyObject(r);
    r = prun__cmd(c, err, "HGET %s state", k);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    all = r->type == REDIS_REPLY_STRING && strcmp(r->str, "succeeded") == 0;
    freeReplyObject(r);
    sets = calloc(ntasks ? ntasks : 1, sizeof(*sets));
    if (sets == NULL)
        return prun_err_set(err, PRUN_ENOMEM, "out of memory");
    for (t = 0; t < ntasks; t++) {
        char cursor[32] = "0";

        sets[t] = calloc(1, sizeof(struct prun_strset));
        if (sets[t] == NULL) {
            rc = prun_err_set(err, PRUN_ENOMEM, "out of memory");
            goto fail;
        }
        sets[t]->all = all;
        if (all)
            continue;
        snprintf(k, sizeof(k), "parallelrun:{%s}:done:%s", rid, tasks[t]);
        do {
            size_t i;

            r = prun__cmd(c, err, "SSCAN %s %s COUNT 1000", k, cursor);
            if (r == NULL) {
                rc = err ? err->code : PRUN_EREDIS;
                goto fail;
            }
            if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
                freeReplyObject(r);
                rc = prun_err_set(err, PRUN_EREDIS, "unexpected SSCAN reply");
                goto fail;
            }
            snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
            for (i = 0; i < r->element[1]->elements; i++) {
                redisReply *m = r->element[1]->element[i];
                if (strset_add(sets[t], m->str, m->len) < 0) {
                    freeReplyObject(r);
                    rc = prun_err_set(err, PRUN_ENOMEM, "out of memory");
                    goto fail;
                }
            }
            freeReplyObject(r);
        } while (strcmp(cursor, "0") != 0);
    }
    *out = sets;
    return 0;
fail:
    for (t = 0; t < ntasks; t++)
        prun_strset_free(sets[t]);
    free(sets);
    return rc;
}

static void info_field(struct prun_run_info *in, const char *f, const char *v)
{
    static const struct {
        const char *name;
        size_t off;
    } nums[] = {
        {"pid", offsetof(struct prun_run_info, pid)},
        {"started_ms", offsetof(struct prun_run_info, started_ms)},
        {"ended_ms", offsetof(struct prun_run_info, ended_ms)},
        {"exit_code", offsetof(struct prun_run_info, exit_code)},
        {"total", offsetof(struct prun_run_info, total)},
        {"succeeded", offsetof(struct prun_run_info, succeeded)},
        {"failed", offsetof(struct prun_run_info, failed)},
        {"cancelled", offsetof(struct prun_run_info, cancelled)},
        {"skipped", offsetof(struct prun_run_info, skipped)},
        {"retried", offsetof(struct prun_run_info, retried)},
        {"running", offsetof(struct prun_run_info, running)},
        {"jobs", offsetof(struct prun_run_info, jobs)},
        {"signal", offsetof(struct prun_run_info, signal)},
    };
    size_t i;

    for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
        if (strcmp(f, nums[i].name) == 0) {
            *(long long *)((char *)in + nums[i].off) = atoll(v);
            return;
        }
    if (strcmp(f, "name") == 0)
        snprintf(in->name, sizeof(in->name), "%s", v);
    else if (strcmp(f, "job") == 0)
        snprintf(in->job, sizeof(in->job), "%s", v);
    else if (strcmp(f, "host") == 0)
        snprintf(in->host, sizeof(in->host), "%s", v);
    else if (strcmp(f, "state") == 0)
        snprintf(in->state, sizeof(in->state), "%s", v);
    else if (strcmp(f, "resumed_from") == 0)
        snprintf(in->resumed_from, sizeof(in->resumed_from), "%s", v);
    else if (strcmp(f, "redis_note") == 0)
        snprintf(in->redis_note, sizeof(in->redis_note), "%s", v);
}

/* Reads run rid's hash into in; 0, or PRUN_ENOTFOUND when it is gone. */
static int load_info(struct prun_conn *c, const char *rid,
    struct prun_run_info *in, struct prun_err *err)
{
    redisReply *r;
    char k[256];
    size_t i;

    memset(in, 0, sizeof(*in));
    in->total = -1;
    snprintf(in->run_id, sizeof(in->run_id), "%s", rid);
    snprintf(k, sizeof(k), "parallelrun:{%s}:run", rid);
    r = prun__cmd(c, err, "HGETALL %s", k);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        freeReplyObject(r);
        return prun_err_set(err, PRUN_ENOTFOUND, "no run '%s' in Redis at %s",
            rid, prun_conn_url(c));
    }
    for (i = 0; i + 1 < r->elements; i += 2)
        info_field(in, r->element[i]->str, r->element[i + 1]->str);
    freeReplyObject(r);
    if (strcmp(in->state, "running") == 0) {
        snprintf(k, sizeof(k), "parallelrun:{%s}:alive", rid);
        r = prun__cmd(c, err, "EXISTS %s", k);
        if (r == NULL)
            return err ? err->code : PRUN_EREDIS;
        if (r->type == REDIS_REPLY_INTEGER && r->integer == 0)
            snprintf(in->state, sizeof(in->state), "lost");
        freeReplyObject(r);
    }
    return 0;
}

static int load_hash(struct prun_conn *c, const char *rid, const char *what,
    char ***keys, char ***vals, size_t *n, struct prun_err *err)
{
    redisReply *r;
    char k[256];
    size_t i, m = 0;

    *keys = *vals = NULL;
    *n = 0;
    snprintf(k, sizeof(k), "parallelrun:{%s}:%s", rid, what);
    r = prun__cmd(c, err, "HGETALL %s", k);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        *keys = calloc(r->elements / 2, sizeof(char *));
        *vals = calloc(r->elements / 2, sizeof(char *));
        if (*keys == NULL || *vals == NULL) {
            freeReplyObject(r);
            return prun_err_set(err, PRUN_ENOMEM, "out of memory");
        }
        for (i = 0; i + 1 < r->elements; i += 2) {
            (*keys)[m] = strdup(r->element[i]->str);
            (*vals)[m] = strdup(r->element[i + 1]->str);
            m++;
        }
    }
    *n = m;
    freeReplyObject(r);
    return 0;
}

/* Progress of the instances still running (finished ones may linger). */
static int load_progress(struct prun_conn *c, const char *rid,
    struct prun_status *st, struct prun_err *err)
{
    char pk[256], rk[256];
    const char *args[2] = {pk, rk};
    redisReply *r;
    size_t i, n;

    snprintf(pk, sizeof(pk), "parallelrun:{%s}:progress", rid);
    snprintf(rk, sizeof(rk), "parallelrun:{%s}:running", rid);
    r = prun__eval(c, err, progress_lua, 2, 2, args);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    n = r->type == REDIS_REPLY_ARRAY ? r->elements / 2 : 0;
    st->progress_keys = calloc(n ? n : 1, sizeof(char *));
    st->progress_vals = calloc(n ? n : 1, sizeof(char *));
    if (st->progress_keys == NULL || st->progress_vals == NULL) {
        freeReplyObject(r);
        return prun_err_set(err, PRUN_ENOMEM, "out of memory");
    }
    for (i = 0; i < n; i++) {
        st->progress_keys[i] = strdup(r->element[2 * i]->str);
        st->progress_vals[i] = strdup(r->element[2 * i + 1]->str);
    }
    st->nprogress = n;
    freeReplyObject(r);
    return 0;
}

static void free_strv(char **v, size_t n)
{
    size_t i;

    if (v == NULL)
        return;
    for (i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int newest_run(
    struct prun_conn *c, char *rid, size_t n, struct prun_err *err)
{
    redisReply *r = prun__cmd(c, err, "ZREVRANGE parallelrun:runs 0 0");
    int rc = 0;

    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0)
        rc = prun_err_set(err, PRUN_ENOTFOUND,
            "no runs recorded in Redis at %s", prun_conn_url(c));
    else
        snprintf(rid, n, "%s", r->element[0]->str);
    freeReplyObject(r);
    return rc;
}

int prun_status_load(struct prun_conn *c, const char *rid,
    struct prun_status *st, struct prun_err *err)
{
    char newest[64], **keys = NULL;
    int rc;

    memset(st, 0, sizeof(*st));
    if (rid == NULL) {
        rc = newest_run(c, newest, sizeof(newest), err);
        if (rc < 0)
            return rc;
        rid = newest;
    }
    rc = load_info(c, rid, &st->run, err);
    if (rc < 0)
        return rc;
    rc = load_hash(c, rid, "running", &keys, &st->running, &st->nrunning, err);
    free_strv(keys, st->nrunning);
    if (rc == 0)
        rc = load_hash(c, rid, "failed", &keys, &st->failed, &st->nfailed, err);
    if (rc == 0)
        free_strv(keys, st->nfailed);
    if (rc == 0)
        rc = load_progress(c, rid, st, err);
    if (rc == 0)
        rc = load_hash(
            c, rid, "tasks", &st->task_names, &st->task_json, &st->ntasks, err);
    if (rc < 0)
        prun_status_free(st);
    return rc;
}

void prun_status_free(struct prun_status *st)
{
    free_strv(st->running, st->nrunning);
    free_strv(st->failed, st->nfailed);
    free_strv(st->progress_keys, st->nprogress);
    free_strv(st->progress_vals, st->nprogress);
    free_strv(st->task_names, st->ntasks);
    free_strv(st->task_json, st->ntasks);
    memset(st, 0, sizeof(*st));
}

int prun_runs_list(struct prun_conn *c, size_t n, struct prun_run_info **out,
    size_t *count, struct prun_err *err)
{
    struct prun_run_info *v;
    redisReply *r;
    size_t i, m = 0;

    r = prun__cmd(c, err, "ZREVRANGE parallelrun:runs 0 %lld",
        (long long)(n > 0 ? n - 1 : 0));
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    v = calloc(r->elements ? r->elements : 1, sizeof(*v));
    if (v == NULL) {
        freeReplyObject(r);
        return prun_err_set(err, PRUN_ENOMEM, "out of memory");
    }
    for (i = 0; i < r->elements; i++) {
        struct prun_err e;
        int rc = load_info(c, r->element[i]->str, &v[m], &e);

        if (rc == PRUN_ENOTFOUND) {
            /* Expired: forget it in the registry too. */
            redisReply *d = prun__cmd(
                c, NULL, "ZREM parallelrun:runs %s", r->element[i]->str);
            if (d)
                freeReplyObject(d);
            continue;
        }
        if (rc < 0) {
            if (err)
                *err = e;
            freeReplyObject(r);
            free(v);
            return rc;
        }
        m++;
    }
    freeReplyObject(r);
    *out = v;
    *count = m;
    return 0;
}

int prun_run_cancel(struct prun_conn *c, const char *rid, long *pid, char *host,
    size_t hostlen, struct prun_err *err)
{
    struct prun_run_info in;
    redisReply *r;
    char k[256];
    int rc;

    rc = load_info(c, rid, &in, err);
    if (rc < 0)
        return rc;
    if (strcmp(in.state, "running") != 0)
        return prun_err_set(
            err, PRUN_EINVAL, "run %s is not running (%s)", rid, in.state);
    snprintf(k, sizeof(k), "parallelrun:{%s}:cancel", rid);
    r = prun__cmd(c, err, "SET %s 1 PX %d", k, 86400000);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    freeReplyObject(r);
    *pid = (long)in.pid;
    snprintf(host, hostlen, "%s", in.host);
    return 0;
}
