/* SPDX-License-Identifier: MIT */
/*
 * exec_remote: the remote executor of `run --distributed`, part of the
 * coord module (it talks to Redis through coord_int.h).
 *
 * "Start this attempt" XADDs the instance to the run's work queue (wq.c)
 * with the task's retry policy; `parallelrun worker`s on any host claim and
 * run it. "Attempt ended" comes from the queue's completion stream, read
 * with XREAD (no BLOCK) every POLL_MS on a non-blocking hiredis connection
 * whose socket is one more watch on the loop: nothing here ever waits for
 * Redis. Retries happen in the queue (a delayed set any worker promotes),
 * so an ended attempt is always the instance's last: the loop is told the
 * attempt number the record carries.
 *
 * An XADD whose reply was lost to a disconnection is sent again after the
 * reconnect (the queue skips an instance that already has its terminal
 * record). Redis unreachable for longer than the outage bound, or back
 * without the run's queue, ends every attempt as failed with that cause;
 * so does no live worker able to serve the run for the worker-wait bound
 * (run_watch.c watches them).
 */
#include "exec_remote.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <async.h>

#include "coord_int.h"
#include "run_watch.h"
#include "wq.h"

#define POLL_MS    20
#define RETRY_MS   500
#define READ_COUNT 512

struct ratt {
    struct prun__attempt *a;
    uint64_t seq;
    char *key;
    struct prun_buf payload;
    int acked; /* the XADD's reply came */
    int busy;  /* ... and was BUSY or the like: not queued, send again */
    struct ratt *prev, *next;
};

struct remote {
    struct prun__executor base;
    struct prun__remote_opts o;
    struct prun_redis_addr addr;
    struct prun_conn *sync; /* set-up and the end only */
    struct prun_wq *q;
    redisAsyncContext *ac;
    struct prun__watch w;
    int fd;
    int want_read, want_write, watched;
    int connected, checked;
    struct ratt *list;
    size_t n;
    uint64_t seq;
    int reading;
    char last_end[48];
    char prefix[200], meta[220];
    char shown[300]; /* the URL without password, for messages */
    int64_t next_poll, next_connect, down_since, cancel_at;
    int64_t busy_since; /* 0: Redis answers the reads */
    int64_t resend_at;  /* XADDs that met BUSY go again then (0: none) */
    struct prun__wwatch ww;
    char fatal[640];
};

static void warn(struct remote *r, const char *msg)
{
    if (r->base.hooks.warn)
        r->base.hooks.warn(r->base.hooks.ctx, msg);
}

/* ---- The loop adapter for hiredis --------------------------------------- */

static void ev_update(struct remote *r)
{
    const struct prun__exec_hooks *h = &r->base.hooks;
    uint32_t want =
        (r->want_read ? EPOLLIN : 0) | (r->want_write ? EPOLLOUT : 0);

    if (r->ac == NULL)
        return;
    if (want == 0) {
        if (r->watched)
            h->unwatch(h->ctx, r->fd);
        r->watched = 0;
        return;
    }
    if (h->watch(h->ctx, r->fd, want, &r->w) == 0)
        r->watched = 1;
}

static void ev_add_read(void *p)
{
    struct remote *r = p;
    r->want_read = 1;
    ev_update(r);
}

static void ev_del_read(void *p)
{
    struct remote *r = p;
    r->want_read = 0;
    ev_update(r);
}

static void ev_add_write(void *p)
{
    struct remote *r = p;
    r->want_write = 1;
    ev_update(r);
}

static void ev_del_write(void *p)
{
    struct remote *r = p;
    r->want_write = 0;
    ev_update(r);
}

static void ev_cleanup(void *p)
{
    struct remote *r = p;

    r->want_read = r->want_write = 0;
    if (r->watched)
        r->base.hooks.unwatch(r->base.hooks.ctx, r->fd);
    r->watched = 0;
}

static void on_socket(struct prun__watch *w, uint32_t events)
{
    struct remote *r =
        (struct remote *)((char *)w - offsetof(struct remote, w));

    if (r->ac != NULL && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        redisAsyncHandleRead(r->ac);
    if (r->ac != NULL && (events & EPOLLOUT))
        redisAsyncHandleWrite(r->ac);
}

/* ---- Attempts ------------------------------------------------------------ */

static void ratt_free(struct remote *r, struct ratt *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        r->list = t->next;
    if (t->next)
        t->next->prev = t->prev;
    r->n--;
    free(t->key);
    prun__buf_free(&t->payload);
    free(t);
}

/* Ends t with status; exec_err (or NULL) says why no process ran. */
static void end(struct remote *r, struct ratt *t, int status, const char *why)
{
    struct prun__attempt *a = t->a;

    if (why != NULL)
        snprintf(a->exec_err, sizeof(a->exec_err), "%s", why);
    ratt_free(r, t);
    r->base.hooks.ended(r->base.hooks.ctx, a, status);
}

static void end_all(struct remote *r, const char *why)
{
    while (r->list != NULL)
        end(r, r->list, -1, why);
}

static void on_xadd(redisAsyncContext *ac, void *reply, void *priv)
{
    struct remote *r = ac->data;
    uint64_t seq = (uint64_t)(uintptr_t)priv;
    redisReply *rep = reply;

    if (rep == NULL)
        return; /* sent again after the reconnect */
    for (struct ratt *t = r->list; t != NULL; t = t->next) {
        if (t->seq != seq)
            continue;
        if (rep->type != REDIS_REPLY_ERROR) {
            t->acked = 1;
            break;
        }
        /*
         * An error reply: the entry was not added. BUSY and its kind are
         * sent again shortly; any other would be refused every time, and
         * the instance could never end: the run ends with it.
         */
        if (prun__wq_fault_reply(rep->str) == PRUN_WQ_FAULT_BUSY) {
            t->busy = 1;
            if (r->resend_at == 0)
                r->resend_at = prun__now_ms() + RETRY_MS;
        } else if (r->fatal[0] == '\0') {
            snprintf(r->fatal, sizeof(r->fatal),
                "Redis at %.100s refused the XADD of %.40s to %.80s:s:%.40s: "
                "%.180s",
                r->shown, t->key, r->prefix, t->a->task->name, rep->str);
        }
        break;
    }
}

/*
 * The queue's name for task t's instances: a pool task's are its workers,
 * on their own stream ("NAME|w": '|' is never in a task name), apart from
 * the stream its items are claimed from (pool_wq.c), which queue workers
 * do not claim from.
 */
static const char *qname(const struct prun_task *t, char *buf, size_t n)
{
    if (!t->pool)
        return t->name;
    snprintf(buf, n, "%s|w", t->name);
    return buf;
}

static void send_xadd(struct remote *r, struct ratt *t)
{
    const struct prun_task *task = t->a->task;
    char key[300], ma[16], rd[32], qn[80];
    const char *argv[13];
    size_t lens[13];

    snprintf(
        key, sizeof(key), "%s:s:%s", r->prefix, qname(task, qn, sizeof(qn)));
    snprintf(ma, sizeof(ma), "%u", task->retries + 1);
    snprintf(rd, sizeof(rd), "%lld", (long long)task->retry_delay_ms);
    argv[0] = "XADD";
    argv[1] = key;
    argv[2] = "*";
    argv[3] = "k";
    argv[4] = t->key;
    argv[5] = "a";
    argv[6] = "1";
    argv[7] = "m";
    argv[8] = ma;
    argv[9] = "d";
    argv[10] = rd;
    argv[11] = "p";
    argv[12] = t->payload.data;
    for (int i = 0; i < 12; i++)
        lens[i] = strlen(argv[i]);
    lens[12] = t->payload.len;
    redisAsyncCommandArgv(
        r->ac, on_xadd, (void *)(uintptr_t)t->seq, 13, argv, lens);
    redisAsyncCommand(r->ac, NULL, NULL, "HINCRBY %s enq 1", r->meta);
}

/*
 * An instance's terminal record came: its output (o and e, sent back by
 * the worker; NULL when the record has none, as before workers sent it)
 * goes to the attempt's capture as a local child's would, so it is
 * printed and written to --results files the same way; else the record's
 * stderr tail does.
 */
static void finish_one(struct remote *r, const char *key, unsigned attempt,
    const char *rec, const redisReply *o, const redisReply *e)
{
    struct ratt *t;
    struct prun__attempt *a;
    char kind[32], status[32], reason[256], tail[1100];
    int st;

    for (t = r->list; t != NULL; t = t->next)
        if (strcmp(t->key, key) == 0)
            break;
    if (t == NULL)
        return; /* not ours (an earlier runner of this run) or ended */
    a = t->a;
    prun__json_field(rec, "kind", kind, sizeof(kind));
    prun__json_field(rec, "status", status, sizeof(status));
    prun__json_field(rec, "reason", reason, sizeof(reason));
    prun__json_field(rec, "tail", tail, sizeof(tail));
    st = status[0] ? atoi(status) : -1;
    if (attempt > 0)
        a->inst->attempt = attempt;
    if (strcmp(kind, "timeout") == 0)
        a->why = PRUN__WHY_TIMEOUT;
    else if (strcmp(kind, "cancelled") == 0)
        a->why = PRUN__WHY_CANCEL;
    if (a->cap && (o != NULL || e != NULL)) {
        if (o != NULL && o->len > 0)
            prun__capture_feed(a->cap, 1, o->str, o->len, NULL);
        if (e != NULL && e->len > 0)
            prun__capture_feed(a->cap, 2, e->str, e->len, NULL);
    } else if (tail[0] && a->cap) {
        prun__capture_feed(a->cap, 2, tail, strlen(tail), NULL);
    }
    if (strcmp(kind, "exec") == 0 || strcmp(kind, "lost") == 0 || st == -1)
        end(r, t, -1, reason[0] ? reason : "no process ran");
    else
        end(r, t, st, NULL);
}

/*
 * Redis answered the read of the ends stream with an error. BUSY and its
 * kind are ridden out within the outage bound; any other (NOPERM, OOM,
 * WRONGTYPE, ...) would be the same on every poll: the run ends with it
 * (the next tick fails what is outstanding) rather than wait for ever.
 */
static void ends_refused(struct remote *r, const char *msg)
{
    int64_t now = prun__now_ms();

    if (prun__wq_fault_reply(msg) == PRUN_WQ_FAULT_BUSY) {
        if (r->busy_since == 0)
            r->busy_since = now;
        else if (now - r->busy_since > r->o.dist->outage_ms)
            snprintf(r->fatal, sizeof(r->fatal),
                "Redis at %.120s busy for more than %llds: %.300s", r->shown,
                (long long)(r->o.dist->outage_ms / 1000), msg);
        return;
    }
    snprintf(r->fatal, sizeof(r->fatal),
        "Redis at %.120s refused the read of %.100s:ends (XREAD): %.200s",
        r->shown, r->prefix, msg);
}

static void on_ends(redisAsyncContext *ac, void *reply, void *priv)
{
    struct remote *r = ac->data;
    redisReply *rep = reply, *entries;
    size_t i, j;

    (void)priv;
    r->reading = 0;
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
        ends_refused(r, rep->str);
        return;
    }
    if (rep != NULL)
        r->busy_since = 0;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1)
        return;
    entries = rep->element[0]->element[1];
    for (i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i], *f = e->element[1];
        const char *key = NULL, *rec = NULL;
        const redisReply *o = NULL, *oe = NULL;
        unsigned attempt = 0;

        snprintf(r->last_end, sizeof(r->last_end), "%s", e->element[0]->str);
        for (j = 0; j + 1 < f->elements; j += 2) {
            const char *name = f->element[j]->str;

            if (strcmp(name, "k") == 0)
                key = f->element[j + 1]->str;
            else if (strcmp(name, "r") == 0)
                rec = f->element[j + 1]->str;
            else if (strcmp(name, "a") == 0)
                attempt = (unsigned)atoi(f->element[j + 1]->str);
            else if (strcmp(name, "o") == 0)
                o = f->element[j + 1];
            else if (strcmp(name, "e") == 0)
                oe = f->element[j + 1];
        }
        if (key && rec) {
            prun__wwatch_served(&r->ww);
            finish_one(r, key, attempt, rec, o, oe);
        }
    }
    /* More may be waiting: read on at once. */
    if (entries->elements == READ_COUNT)
        r->next_poll = 0;
}

static void on_checked(redisAsyncContext *ac, void *reply, void *priv)
{
    struct remote *r = ac->data;
    redisReply *rep = reply;

    (void)priv;
    if (rep == NULL || rep->type != REDIS_REPLY_INTEGER)
        return;
    if (rep->integer == 0) {
        snprintf(r->fatal, sizeof(r->fatal),
            "Redis at %s came back without this run's work queue (its data "
            "was lost): instances cannot be accounted for",
            r->shown);
        return;
    }
    r->checked = 1;
    for (struct ratt *t = r->list; t != NULL; t = t->next)
        if (!t->acked)
            send_xadd(r, t);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct remote *r = ac->data;

    if (status != REDIS_OK)
        return; /* on_disconnect follows */
    /* An outage ridden out is not worth a warning (it fails the exit). */
    r->connected = 1;
    r->down_since = 0;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct remote *r = ac->data;

    (void)status;
    r->ac = NULL;
    r->connected = r->checked = r->reading = 0;
    r->watched = 0;
    if (r->down_since == 0)
        r->down_since = prun__now_ms();
    r->next_connect = prun__now_ms() + RETRY_MS;
}

static int connect_async(struct remote *r)
{
    redisAsyncContext *ac;

    if (r->addr.is_unix)
        ac = redisAsyncConnectUnix(r->addr.path);
    else
        ac = redisAsyncConnect(r->addr.host, r->addr.port);
    if (ac == NULL)
        return -1;
    if (ac->err) {
        redisAsyncFree(ac);
        return -1;
    }
    fcntl(ac->c.fd, F_SETFD, FD_CLOEXEC);
    r->ac = ac;
    r->fd = ac->c.fd;
    r->watched = r->want_read = r->want_write = 0;
    ac->data = r;
    ac->ev.data = r;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (r->o.dist->password && *r->o.dist->password)
        redisAsyncCommand(ac, NULL, NULL, "AUTH %s", r->o.dist->password);
    else if (r->addr.password[0] && r->addr.user[0])
        redisAsyncCommand(
            ac, NULL, NULL, "AUTH %s %s", r->addr.user, r->addr.password);
    else if (r->addr.password[0])
        redisAsyncCommand(ac, NULL, NULL, "AUTH %s", r->addr.password);
    if (r->addr.db)
        redisAsyncCommand(ac, NULL, NULL, "SELECT %d", r->addr.db);
    redisAsyncCommand(ac, on_checked, NULL, "EXISTS %s", r->meta);
    return 0;
}

/* ---- The executor -------------------------------------------------------- */

static size_t remote_capacity(const struct prun__executor *base)
{
    const struct remote *r = (const struct remote *)base;

    if (r->cancel_at != 0)
        return 0;
    return r->n < r->o.slots ? r->o.slots - r->n : 0;
}

static void remote_start(struct prun__executor *base, struct prun__attempt *a)
{
    struct remote *r = (struct remote *)base;
    struct ratt *t = calloc(1, sizeof(*t));
    struct prun_buf key = {0};
    char qn[80];

    /* A worker's slot is its own: {%} here is 0, as in the context. */
    if (r->base.hooks.starting != NULL)
        r->base.hooks.starting(r->base.hooks.ctx, a);
    if (t == NULL ||
        prun__buf_printf(&key, "%s %llu", qname(a->task, qn, sizeof(qn)),
            (unsigned long long)a->inst->index) < 0 ||
        prun__wq_inst_pack(a->inst->task, a->ctx.count, a->inst->items,
            a->inst->nitems, &t->payload) < 0) {
        snprintf(a->exec_err, sizeof(a->exec_err), "out of memory");
        prun__buf_free(&key);
        if (t)
            prun__buf_free(&t->payload);
        free(t);
        r->base.hooks.ended(r->base.hooks.ctx, a, -1);
        return;
    }
    t->a = a;
    t->key = key.data;
    t->seq = ++r->seq;
    t->next = r->list;
    if (r->list)
        r->list->prev = t;
    r->list = t;
    r->n++;
    if (r->fatal[0]) {
        end(r, t, -1, r->fatal);
        return;
    }
    if (r->ac != NULL && r->checked)
        send_xadd(r, t);
}

static void remote_stop_all(struct prun__executor *base, int hard)
{
    struct remote *r = (struct remote *)base;

    for (struct ratt *t = r->list; t != NULL; t = t->next)
        if (t->a->why == PRUN__WHY_NONE)
            t->a->why = PRUN__WHY_CANCEL;
    if (r->cancel_at == 0) {
        /* Workers see it within a heartbeat and stop their attempts. */
        if (r->ac != NULL)
            redisAsyncCommand(
                r->ac, NULL, NULL, "HSET %s state cancelled", r->meta);
        r->cancel_at = prun__now_ms() + r->o.kill_grace_ms + 3000;
    }
    if (hard)
        end_all(r, "cancelled");
}

static void remote_on_signal(struct prun__executor *base, int signo)
{
    (void)base;
    (void)signo;
}

static int64_t remote_next_deadline(const struct prun__executor *base)
{
    const struct remote *r = (const struct remote *)base;
    int64_t t = INT64_MAX;

    if (r->list == NULL)
        return t;
    if (r->fatal[0])
        return 0;
    if (r->ac == NULL)
        t = r->next_connect;
    else if (!r->reading)
        t = r->next_poll;
    if (r->down_since != 0 && r->down_since + r->o.dist->outage_ms < t)
        t = r->down_since + r->o.dist->outage_ms;
    if (r->cancel_at != 0 && r->cancel_at < t)
        t = r->cancel_at;
    if (r->cancel_at == 0 && prun__wwatch_deadline(&r->ww) < t)
        t = prun__wwatch_deadline(&r->ww);
    return t;
}

/*
 * The watch over the workers: past its bound with no live worker able to
 * serve the run, what is outstanding fails with the cause, and so does
 * every later start; a cause of the system (no worker at all, Redis)
 * ends the run with it (status 3), one of the job's fails the instances.
 */
static int watch_workers(struct remote *r, int64_t now)
{
    char why[sizeof(r->fatal)];
    struct prun_err e;
    int sys = 0;

    prun__wwatch_tick(
        &r->ww, r->ac != NULL && r->checked ? r->ac : NULL, r->n, now);
    if (!prun__wwatch_expired(
            &r->ww, now, why, r->fatal, sizeof(r->fatal), &sys))
        return 0;
    if (!sys)
        snprintf(r->fatal, sizeof(r->fatal), "%s", why);
    end_all(r, r->fatal);
    if (sys) {
        prun__err_set(&e, PRUN_ETIMEDOUT, "%s", why);
        r->base.hooks.fatal(r->base.hooks.ctx, &e);
    }
    return 1;
}

static void remote_tick(struct prun__executor *base, int64_t now)
{
    struct remote *r = (struct remote *)base;

    if (r->fatal[0]) {
        end_all(r, r->fatal);
        return;
    }
    if (r->cancel_at != 0 && now >= r->cancel_at && r->list != NULL) {
        warn(r, "workers did not report cancelled instances in time");
        end_all(r, "cancelled");
        return;
    }
    if (r->down_since != 0 && now - r->down_since > r->o.dist->outage_ms &&
        r->list != NULL) {
        char why[400];

        snprintf(why, sizeof(why),
            "Redis at %s unreachable for more than %llds", r->shown,
            (long long)(r->o.dist->outage_ms / 1000));
        snprintf(r->fatal, sizeof(r->fatal), "%s", why);
        end_all(r, why);
        return;
    }
    if (r->ac != NULL && r->checked && r->resend_at != 0 &&
        now >= r->resend_at) {
        r->resend_at = 0;
        for (struct ratt *t = r->list; t != NULL; t = t->next)
            if (!t->acked && t->busy) {
                t->busy = 0;
                send_xadd(r, t);
            }
    }
    if (r->cancel_at == 0 && watch_workers(r, now))
        return;
    if (r->ac == NULL && now >= r->next_connect) {
        if (connect_async(r) < 0) {
            if (r->down_since == 0)
                r->down_since = now;
            r->next_connect = now + RETRY_MS;
        }
        return;
    }
    if (r->ac != NULL && r->checked && r->list != NULL && !r->reading &&
        now >= r->next_poll) {
        char cnt[16];

        snprintf(cnt, sizeof(cnt), "%d", READ_COUNT);
        if (redisAsyncCommand(r->ac, on_ends, NULL,
                "XREAD COUNT %s STREAMS %s:ends %s", cnt, r->prefix,
                r->last_end) == REDIS_OK)
            r->reading = 1;
        r->next_poll = now + POLL_MS;
    }
}

static void remote_shutdown(struct prun__executor *base, int hurry)
{
    struct remote *r = (struct remote *)base;
    struct prun_err e;

    (void)hurry;
    if (r->sync == NULL || r->q == NULL || prun__wq_close(r->q, &e) == 0)
        return;
    /* The set-up connection may have died in an outage: once more, anew. */
    prun__wq_free(r->q);
    r->q = NULL;
    prun__conn_close(r->sync);
    r->sync = NULL;
    if (prun__conn_open(
            r->o.dist->url, r->o.dist->password, 5000, &r->sync, &e) < 0 ||
        prun__wq_new(r->sync, r->o.run_id, "runner", &r->q, &e) < 0 ||
        prun__wq_close(r->q, &e) < 0)
        warn(r, e.msg);
}

static void remote_free(struct prun__executor *base)
{
    struct remote *r = (struct remote *)base;

    if (r == NULL)
        return;
    if (r->ac != NULL) {
        redisAsyncContext *ac = r->ac;
        /* Pending callbacks get NULL replies; none may end attempts. */
        r->ac = NULL;
        ac->data = r;
        redisAsyncFree(ac);
    }
    while (r->list != NULL)
        ratt_free(r, r->list);
    prun__wwatch_free(&r->ww);
    prun__wq_free(r->q);
    prun__conn_close(r->sync);
    memset(&r->addr, 0, sizeof(r->addr));
    free(r);
}

static const struct prun__executor_ops remote_ops = {
    .capacity = remote_capacity,
    .start = remote_start,
    .stop_all = remote_stop_all,
    .on_signal = remote_on_signal,
    .next_deadline = remote_next_deadline,
    .tick = remote_tick,
    .shutdown = remote_shutdown,
    .free = remote_free,
};

int prun__remote_new(const struct prun__remote_opts *o,
    const struct prun__exec_hooks *hooks, struct prun__executor **out,
    struct prun_err *err)
{
    const struct prun_job *job = o->job;
    struct prun_wq_task *tasks = NULL;
    char(*qnames)[80] = NULL;
    struct prun_wq_run run;
    struct remote *r;
    char host[128] = "";
    size_t t;
    int rc;

    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    r->base.ops = &remote_ops;
    r->base.hooks = *hooks;
    r->o = *o;
    r->fd = -1;
    r->w.cb = on_socket;
    snprintf(r->last_end, sizeof(r->last_end), "0");
    snprintf(r->prefix, sizeof(r->prefix), "parallelrun:{%s}:wq", o->run_id);
    snprintf(r->meta, sizeof(r->meta), "%s:meta", r->prefix);
    rc = prun__redis_url_parse(o->dist->url, &r->addr, err);
    if (rc < 0)
        goto fail;
    rc = prun__conn_open(o->dist->url, o->dist->password, 5000, &r->sync, err);
    if (rc < 0)
        goto fail;
    snprintf(r->shown, sizeof(r->shown), "%s", prun__conn_url(r->sync));
    prun__wwatch_init(&r->ww, o->run_id, r->shown, o->dist->worker_wait_ms,
        hooks->say, hooks->ctx);
    rc = prun__wq_new(r->sync, o->run_id, "runner", &r->q, err);
    if (rc < 0)
        goto fail;
    tasks = calloc(job->ntasks ? job->ntasks : 1, sizeof(*tasks));
    if (tasks == NULL) {
        rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
        goto fail;
    }
    qnames = calloc(job->ntasks ? job->ntasks : 1, sizeof(*qnames));
    if (qnames == NULL) {
        rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
        goto fail;
    }
    for (t = 0; t < job->ntasks; t++) {
        tasks[t].name = qname(&job->tasks[t], qnames[t], sizeof(qnames[t]));
        tasks[t].cap = job->tasks[t].jobs;
        tasks[t].rate = job->tasks[t].rate;
    }
    gethostname(host, sizeof(host) - 1);
    memset(&run, 0, sizeof(run));
    run.ttl_ms = o->dist->key_ttl_ms;
    run.job = o->dist->job_path;
    run.cwd = o->dist->cwd;
    run.sets = o->dist->sets;
    run.host = host;
    run.tasks = tasks;
    run.ntasks = job->ntasks;
    rc = prun__wq_create(r->q, &run, err);
    free(tasks);
    tasks = NULL;
    free(qnames);
    qnames = NULL;
    if (rc < 0)
        goto fail;
    if (connect_async(r) < 0) {
        rc = prun__err_set(
            err, PRUN_EREDIS, "cannot connect to Redis at %s", r->shown);
        goto fail;
    }
    *out = &r->base;
    return 0;
fail:
    free(tasks);
    free(qnames);
    remote_free(&r->base);
    return rc;
}
