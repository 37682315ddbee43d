/* SPDX-License-Identifier: MIT */
/*
 * session: one run from its set-up to its final record, for every front
 * end. The order matters and is kept here once: leftovers of dead runs
 * are collected before this run adds its own; segments are loaded before
 * Redis is touched (a bad file fails without taking the lock); the job
 * lock is taken before --resume reads the earlier run and before the
 * state writer opens; children get the Redis address without a password
 * in it. When no Redis is configured the embedded server is used, and a
 * job that does not depend on Redis runs without it if that fails.
 *
 * It neither parses options nor prints; it is not the run loop
 * (runner.c).
 */
#include "session.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coord.h"
#include "run_dist.h"
#include "segment.h"

#define MAX_ENV 8

struct prun__session {
    const struct prun_config *cfg;
    const struct prun_job *job;
    struct prun_session_opts o;
    char resume_id[64]; /* --resume last, resolved */
    char run_id[64];
    unsigned jobs;
    struct prun_segset *segs;
    struct prun_output *out; /* joblog, results: made before anything */
    struct prun_embedded *embedded;
    struct prun_conn *conn;
    struct prun_state *state;
    struct prun_strset **done; /* --resume: per task */
    size_t ntasks;
    int locked;
    struct prun_joblock lock;
    char url[320];
    char env_url[340], env_pw[300], env_ttl[64];
    char selfenv[PATH_MAX + 32];
    const char *env[MAX_ENV];
    size_t nenv;
    struct prun__dist_spec dist; /* --distributed */
};

static void say(const struct prun__session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void say(const struct prun__session *s, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (s->o.say == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    s->o.say(s->o.say_ctx, msg);
}

/* The first error reply of each kind, at once (even with --quiet). */
static void state_error(void *ctx, const char *msg)
{
    say(ctx, "%s", msg);
}

static void add_env(struct prun__session *s, const char *e)
{
    if (s->nenv < MAX_ENV)
        s->env[s->nenv++] = e;
}

static int skip_done(
    void *ctx, size_t task, const struct prun_item *items, size_t n)
{
    struct prun__session *s = ctx;
    struct prun_buf v = {0};
    int hit;

    prun__items_value(items, n, &v);
    hit = prun__strset_has(s->done[task], v.data ? v.data : "");
    prun__buf_free(&v);
    return hit;
}

/* Does the job use something that cannot work without Redis? */
static int needs_redis(const struct prun__session *s)
{
    size_t t;

    if (s->job->lock || s->o.resume)
        return 1;
    for (t = 0; t < s->job->ntasks; t++)
        if (s->job->tasks[t].pool)
            return 1;
    return 0;
}

static int redis_off(const char *url)
{
    return url != NULL && (strcmp(url, "off") == 0 || strcmp(url, "none") == 0);
}

/*
 * The server to use: the one named, or the embedded one. Returns 1 when
 * the run goes on without Redis, 0 with *url set, or a PRUN_E*.
 */
static int pick_server(
    struct prun__session *s, const char **url, struct prun_err *err)
{
    int rc;

    *url = s->o.redis_url ? s->o.redis_url : s->cfg->redis_url;
    if (redis_off(*url)) {
        if (s->job->lock || s->o.resume)
            return prun__err_set(err, PRUN_EINVAL,
                "%s needs Redis, which is off (--redis off)",
                s->job->lock ? "lock: true" : "--resume");
        return 1;
    }
    if (*url != NULL) {
        snprintf(s->url, sizeof(s->url), "%s", *url);
        return 0;
    }
    rc = prun__embedded_acquire(&s->embedded, s->url, sizeof(s->url), err);
    if (rc < 0 && !needs_redis(s)) {
        /* Nothing depends on Redis: run, and say status will not know. */
        if (!s->o.quiet)
            say(s, "note: running without status or child synchronization: %s",
                err ? err->msg : "no embedded Redis");
        return 1;
    }
    if (rc < 0)
        return rc;
    *url = s->url;
    return 0;
}

static int load_resume(struct prun__session *s, struct prun_err *err)
{
    const char **names;
    size_t t;
    int rc;

    if (strcmp(s->o.resume, "last") == 0) {
        /* The job's newest run before this one (not registered yet). */
        rc = prun__run_latest_of(
            s->conn, s->job->name, s->resume_id, sizeof(s->resume_id), err);
        if (rc == PRUN_ENOTFOUND)
            return prun__err_set(err, PRUN_EINVAL,
                "--resume last: no run of job '%s' is recorded in Redis at "
                "%s: nothing to resume",
                s->job->name, prun__conn_url(s->conn));
        if (rc < 0)
            return rc;
        s->o.resume = s->resume_id;
        if (!s->o.quiet)
            say(s, "resuming run %s, the latest of job '%s'", s->resume_id,
                s->job->name);
    }
    names = calloc(s->job->ntasks, sizeof(char *));
    if (names == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    for (t = 0; t < s->job->ntasks; t++)
        names[t] = s->job->tasks[t].name;
    rc = prun__resume_load(s->conn, s->o.resume, s->job->name, names,
        s->job->ntasks, &s->done, err);
    free(names);
    if (rc == 0)
        s->ntasks = s->job->ntasks;
    return rc;
}

/* Children reach the same server; the password never goes in a URL. */
static void redis_env(struct prun__session *s, const char *url)
{
    struct prun_redis_addr addr;
    const char *pw = s->cfg->redis_password;

    prun__redis_url_parse(url, &addr, NULL);
    memcpy(s->env_url, "PARALLELRUN_REDIS=", 18);
    prun__redis_url_format(&addr, s->env_url + 18, sizeof(s->env_url) - 18);
    add_env(s, s->env_url);
    if (pw || addr.password[0]) {
        snprintf(s->env_pw, sizeof(s->env_pw), "PARALLELRUN_REDIS_PASSWORD=%s",
            pw ? pw : addr.password);
        add_env(s, s->env_pw);
    }
    memset(&addr, 0, sizeof(addr));
    snprintf(s->env_ttl, sizeof(s->env_ttl), "PARALLELRUN_KEY_TTL=%lldms",
        (long long)s->cfg->key_ttl_ms);
    add_env(s, s->env_ttl);
}

/*
 * Connects, takes the job lock, loads what --resume needs and opens the
 * state writer. Returns 0, or a PRUN_E* with err set.
 */
static int redis_setup(struct prun__session *s, struct prun_err *err)
{
    struct prun_state_opts so;
    const char *url;
    int rc;

    rc = pick_server(s, &url, err);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    rc = prun__conn_open(url, s->cfg->redis_password, 5000, &s->conn, err);
    if (rc < 0)
        return rc;
    if (s->job->lock) {
        rc = prun__joblock_acquire(s->conn, s->job->name, s->run_id,
            s->cfg->lock_lease_ms, &s->lock, err);
        if (rc < 0)
            return rc;
        s->locked = 1;
    }
    if (s->o.resume && (rc = load_resume(s, err)) < 0)
        return rc;
    memset(&so, 0, sizeof(so));
    so.url = url;
    so.password = s->cfg->redis_password;
    so.run_id = s->run_id;
    so.key_ttl_ms = s->cfg->key_ttl_ms;
    so.on_error = state_error;
    so.on_error_ctx = s;
    rc = prun__state_open(&so, &s->state, err);
    if (rc < 0)
        return rc;
    if (s->locked)
        prun__state_joblock_hold(s->state, &s->lock);
    redis_env(s, url);
    return 0;
}

/* "PARALLELRUN_BIN=/path/to/this/parallelrun". */
static int self_path(char *buf, size_t n)
{
    static const char pre[] = "PARALLELRUN_BIN=";
    ssize_t got;

    if (n <= sizeof(pre))
        return -1;
    memcpy(buf, pre, sizeof(pre) - 1);
    got = readlink("/proc/self/exe", buf + sizeof(pre) - 1, n - sizeof(pre));
    if (got <= 0)
        return -1;
    buf[sizeof(pre) - 1 + (size_t)got] = '\0';
    return 0;
}

static unsigned resolve_jobs(const struct prun__session *s)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    /* Distributed: instances queued at once; the workers' slots limit. */
    if (s->o.distributed)
        return s->o.jobs ? s->o.jobs : s->job->jobs ? s->job->jobs : 1024;
    return s->o.jobs      ? s->o.jobs
           : s->job->jobs ? s->job->jobs
           : s->cfg->jobs ? s->cfg->jobs
                          : (unsigned)(ncpu > 0 ? ncpu : 1);
}

/*
 * A task's own jobs: cap cannot exceed the run's concurrency; say so at
 * start (even with --quiet: the run will not do what the file says).
 */
static void check_caps(const struct prun__session *s)
{
    size_t i;

    for (i = 0; i < s->job->ntasks; i++) {
        const struct prun_task *t = &s->job->tasks[i];

        if (t->jobs > s->jobs)
            say(s,
                "warning: task '%s' has %s %u but the run starts at most %u "
                "children at once (-j, jobs:)%s",
                t->name, t->pool ? "a pool of jobs:" : "jobs:", t->jobs,
                s->jobs,
                t->pool ? "; the workers beyond that wait for others to end, "
                          "and a barrier across them never fills"
                        : "");
    }
}

int prun__session_open(const struct prun_config *cfg,
    const struct prun_job *job, const struct prun_session_opts *o,
    struct prun__session **out, struct prun_err *err)
{
    struct prun__session *s;
    const char *const *segenv = NULL;
    size_t nsegenv, i;
    int rc;

    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    s->cfg = cfg;
    s->job = job;
    s->o = *o;
    prun__run_id_new(s->run_id, sizeof(s->run_id));
    s->o.out.run_id = s->run_id;
    if (s->o.out.results_dir == NULL)
        s->o.out.results_dir = cfg->results;
    if (o->distributed) {
        rc = prun__dist_setup(job, o->redis_url ? o->redis_url : cfg->redis_url,
            cfg->redis_password, o->worker_wait, o->sets, o->nsets, &s->dist,
            err);
        if (rc < 0) {
            prun__session_close(s);
            return rc;
        }
        s->dist.dist.key_ttl_ms = cfg->key_ttl_ms;
    }
    /*
     * The joblog and the results directory are checked (and made) before
     * anything else: a location that cannot be written stops the run
     * before any child, segment or Redis record exists.
     */
    rc = prun__output_new(&s->o.out, &s->out, err);
    if (rc < 0) {
        prun__session_close(s);
        return rc;
    }
    if (prun__output_note(s->out)[0] != '\0' && !o->quiet)
        say(s, "note: %s", prun__output_note(s->out));
    /* Leftovers of runs that died go before this one adds its own. */
    prun__segment_gc(NULL, NULL);
    /*
     * A distributed run's copies are the host cache's: the workers of this
     * host attach the same one instead of each making its own.
     */
    rc = (o->distributed ? prun__segset_new_host : prun__segset_new)(
        job, s->run_id, cfg->hugepages, &s->segs, err);
    if (rc == 0)
        rc = redis_setup(s, err);
    if (rc < 0) {
        prun__session_close(s);
        return rc;
    }
    /* Children call back into us (barrier, next...) even off PATH. */
    if (self_path(s->selfenv, sizeof(s->selfenv)) == 0)
        add_env(s, s->selfenv);
    nsegenv = prun__segset_env_all(s->segs, &segenv);
    for (i = 0; i < nsegenv; i++)
        add_env(s, segenv[i]);
    s->jobs = resolve_jobs(s);
    check_caps(s);
    *out = s;
    return 0;
}

const char *prun__session_run_id(const struct prun__session *s)
{
    return s->run_id;
}

static void record_start(struct prun__session *s)
{
    struct prun_state_run sr;
    const char **names;
    size_t i;

    if (s->state == NULL)
        return;
    names = calloc(s->job->ntasks, sizeof(char *));
    for (i = 0; names && i < s->job->ntasks; i++)
        names[i] = s->job->tasks[i].name;
    sr.name = s->job->name;
    sr.job = s->job->path;
    sr.jobs = s->jobs;
    sr.resumed_from = s->o.resume;
    prun__state_run_start(s->state, &sr, names, names ? s->job->ntasks : 0);
    free(names);
}

/*
 * The run lost its job lock: its children were stopped. Say who holds the
 * lock now, and why this run lost it.
 */
static void lock_lost_message(struct prun__session *s, struct prun_err *e)
{
    char who[300], why[sizeof(e->msg)];

    prun__joblock_describe(s->conn, &s->lock, who, sizeof(who));
    snprintf(why, sizeof(why), "%s", e->msg);
    prun__err_set(e, PRUN_ELOCKED,
        "lock '%s' lost (%s): %s; its children were stopped", s->lock.name, who,
        why);
}

int prun__session_run(
    struct prun__session *s, struct prun_run_result *res, struct prun_err *err)
{
    struct prun_run_opts ro;
    int rc;

    memset(&ro, 0, sizeof(ro));
    ro.job = s->job;
    ro.jobs = s->jobs;
    ro.kill_grace_ms = s->cfg->kill_grace_ms;
    ro.run_id = s->run_id;
    ro.seed = (uint64_t)prun__wall_ms() ^ (uint64_t)getpid();
    ro.out = s->o.out;
    ro.output = s->out;
    ro.state = s->state;
    ro.extra_env = s->env;
    ro.nextra_env = s->nenv;
    ro.segs = s->segs;
    ro.warn = s->o.say;
    ro.warn_ctx = s->o.say_ctx;
    if (s->done != NULL) {
        ro.skip = skip_done;
        ro.skip_ctx = s;
    } else if (s->o.skip != NULL) {
        ro.skip = s->o.skip;
        ro.skip_ctx = s->o.skip_ctx;
    }
    if (s->o.distributed)
        ro.dist = &s->dist.dist;
    record_start(s);
    rc = prun__run(&ro, res, err);
    if (rc == 0 && s->state != NULL) {
        /* What the writer still holds (a worker's last item) counts. */
        prun__state_flush(s->state, 10000, err);
        rc = prun__pool_verify(
            s->url, s->cfg->redis_password, s->run_id, s->job, res, err);
    }
    if (rc == PRUN_ELOCKED && s->locked && err != NULL)
        lock_lost_message(s, err);
    return rc;
}

unsigned long long prun__session_finish(struct prun__session *s,
    const struct prun_run_result *res, int exit_code, char *first, size_t n)
{
    const struct prun_state_error_kind *kinds;
    const struct prun__sched_stats *st = &res->stats;
    struct prun__state_counts c;
    unsigned long long lost;
    struct prun_err e;
    size_t nkinds, i;
    const char *state;

    if (n > 0)
        first[0] = '\0';
    if (s == NULL || s->state == NULL)
        return 0;
    /* Recorded as it will end: a run whose state is incomplete exits 3. */
    if (prun__state_refused(s->state, NULL, NULL) > 0 && exit_code <= 1)
        exit_code = 3;
    state = res->signal ? "stopped" : exit_code ? "failed" : "succeeded";
    c.total = st->total;
    c.succeeded = st->succeeded;
    c.failed = st->failed;
    c.cancelled = st->cancelled;
    c.skipped = st->skipped;
    c.retried = st->retried;
    c.running = 0;
    prun__state_counts(s->state, &c, NULL, 0);
    prun__state_run_end(s->state, state, exit_code, res->signal);
    /* Lost state is worth saying even with --quiet: status will be wrong. */
    lost = prun__state_flush(s->state, 10000, &e) < 0 ? 1 : 0;
    if (lost) {
        say(s, "%s", e.msg);
        snprintf(first, n, "%s", e.msg);
    }
    lost += prun__state_refused(s->state, &kinds, &nkinds);
    for (i = 0; i < nkinds; i++) {
        say(s, "Redis refused %llu state write%s: %s", kinds[i].count,
            kinds[i].count == 1 ? "" : "s", kinds[i].first);
        if (i == 0 && first[0] == '\0')
            snprintf(first, n, "%s", kinds[i].first);
    }
    if (lost > 0)
        say(s, "the state of this run in Redis is incomplete: status and "
               "--resume cannot be trusted for it");
    /* The run's record is on the embedded server's disk, or we say so. */
    if (prun__embedded_check_saved(s->embedded, 1, &e) < 0)
        say(s, "%s", e.msg);
    return lost;
}

void prun__session_close(struct prun__session *s)
{
    size_t t;

    if (s == NULL)
        return;
    if (s->locked && s->conn)
        prun__joblock_drop(s->conn, &s->lock);
    prun__state_close(s->state);
    prun__conn_close(s->conn);
    prun__embedded_release(s->embedded);
    for (t = 0; s->done && t < s->ntasks; t++)
        prun__strset_free(s->done[t]);
    free(s->done);
    /* The run's segments never outlive it. */
    prun__segset_free(s->segs);
    prun__output_free(s->out);
    memset(s->env_pw, 0, sizeof(s->env_pw));
    free(s);
}
