/* SPDX-License-Identifier: MIT */
/*
 * coord_record: what the runner records in Redis through its state writer
 * (key schema: docs/redis-schema.md): the run's hash and the registry of
 * runs, the heartbeat that keeps every key of a live run from expiring,
 * running and failed instances, done sets, counts, and the end of a run,
 * which gives every key of the run (children's too) its final TTL. The
 * heartbeat also reads back a cancel request and the children's progress.
 * Every key is created together with its TTL, so no key outlives a runner
 * killed at any moment.
 *
 * This module is not the writer (the queue, the connection and the
 * replies are coord_state.c's) and decides nothing about the run.
 */
#include "coord_state_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HEARTBEAT_MS 2000
#define ALIVE_TTL_MS 6000 /* docs/redis-schema.md: 6 s */
/* The shortest TTL a key of a live run gets (many heartbeats). */
#define LIVE_TTL_MIN_MS 60000

/*
 * The TTL a key gets while its run goes on: key_ttl, but never shorter
 * than a few heartbeats, so a key cannot expire under a live run.
 */
static int64_t live_ttl(const struct prun_state *s)
{
    return s->ttl_ms > LIVE_TTL_MIN_MS ? s->ttl_ms : LIVE_TTL_MIN_MS;
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
    prun__state_enqueue_with_ttl(s, k, ttl, buf, len);
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
    prun__state_enqueue_with_ttl(s, k, live_ttl(s), buf, len);
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
    prun__state_enqueue(s, NULL, NULL, "PEXPIRE %s %lld", k, (long long)ttl);
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
    prun__state_enqueue(s, NULL, NULL, "EVAL %s 1 %s %lld", registry_ttl_lua,
        "parallelrun:runs", (long long)live_ttl(s));
    key(s, k, sizeof(k), "alive");
    snprintf(v, sizeof(v), "%s %ld", s->host, (long)getpid());
    prun__state_enqueue(s, NULL, NULL, "SET %s %s PX %d", k, v, ALIVE_TTL_MS);
    key(s, k, sizeof(k), "cancel");
    prun__state_enqueue(s, on_cancel, NULL, "EXISTS %s", k);
}

void prun__state_tick(struct prun_state *s, int64_t now)
{
    if (s->started) {
        /* What running children report, for the progress line. */
        char k[256], rk[256];

        key(s, k, sizeof(k), "progress");
        key(s, rk, sizeof(rk), "running");
        prun__state_enqueue(
            s, on_progress, NULL, "EVAL %s 2 %s %s", prun__progress_lua, k, rk);
    }
    if (s->c == NULL && now >= s->next_retry)
        prun__state_connect(s);
    if (s->started && now >= s->next_beat) {
        heartbeat(s);
        s->next_beat = now + HEARTBEAT_MS;
    }
    prun__state_send(s);
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
    prun__state_enqueue(
        s, NULL, NULL, "ZADD parallelrun:runs %s %s", num, s->run_id);
    prun__state_enqueue(s, NULL, NULL, "EVAL %s 1 %s %lld", registry_ttl_lua,
        "parallelrun:runs", (long long)live_ttl(s));
    /* The registry keeps the newest thousand runs. */
    prun__state_enqueue(
        s, NULL, NULL, "ZREMRANGEBYRANK parallelrun:runs 0 -1001");
    s->tasks = calloc(ntasks ? ntasks : 1, sizeof(char *));
    for (i = 0; s->tasks && i < ntasks; i++)
        if ((s->tasks[s->ntasks] = strdup(task_names[i])) != NULL)
            s->ntasks++;
    s->started = 1;
    heartbeat(s);
    s->next_beat = prun__now_ms() + HEARTBEAT_MS;
    prun__state_send(s);
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
        prun__state_enqueue(s, NULL, NULL, "HDEL %s %s", k, f);
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
    prun__state_enqueue_with_ttl(s, k, live_ttl(s), buf, len);
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
    prun__state_enqueue(s, NULL, NULL, "DEL %s", k);
    key(s, k, sizeof(k), "progress");
    prun__state_enqueue(s, NULL, NULL, "DEL %s", k);
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
            prun__state_enqueue(s, NULL, NULL, "DEL %s", k);
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
    prun__state_enqueue(s, NULL, NULL, "EVAL %s 0 %s %lld %s",
        "local c = '0' repeat local r = redis.call('SCAN', c, 'MATCH', "
        "ARGV[1], 'COUNT', 1000) c = r[1] for _, k in ipairs(r[2]) do "
        "if string.sub(k, 1, #ARGV[3]) == ARGV[3] then redis.call('DEL', k) "
        "else redis.call('PEXPIRE', k, ARGV[2]) end end until c == '0' "
        "return 1",
        sub, (long long)s->ttl_ms, k);
    prun__state_enqueue(s, NULL, NULL, "EVAL %s 1 %s %lld", registry_ttl_lua,
        "parallelrun:runs", (long long)s->ttl_ms);
    s->started = 0;
    prun__state_send(s);
}
