/* SPDX-License-Identifier: MIT */
/*
 * worker: `parallelrun worker`, the party that runs a distributed run's
 * instances. It finds runs in the set runs announce themselves in, loads
 * the run's job file (the same path on every host: see
 * docs/work-queue.md), claims at most its free slots from the run's work
 * queue and runs each claim with the local executor (exec_local.c)
 * through the executor seam, on its own small epoll loop. It renews its
 * leases every lease/3 and kills an attempt whose lease it lost, completes
 * with the claim's fence token, and gives each child PARALLELRUN_FENCE.
 * It serves one run at a time (one local executor reaps all children of
 * the process) and moves to the next when the current one has nothing
 * left for it.
 *
 * It decides nothing about a run's outcome: the runner reads the terminal
 * records the queue keeps.
 */
#include "worker.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec_local.h"
#include "executor.h"
#include "output.h"
#include "segment.h"
#include "worker_int.h"
#include "worker_out.h"
#include "wq.h"

#define BEAT_MS      1000
#define IDLE_POLL_MS 50
#define RUNS_POLL_MS 250
#define RETRY_MS     500

void prun__worker_say(struct worker *w, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (w->o->log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    w->o->log(w->o->log_ctx, msg);
}

/* ---- Redis connection --------------------------------------------------- */

void prun__worker_conn_lost(struct worker *w, const struct prun_err *e)
{
    if (w->conn == NULL)
        return;
    prun__worker_say(w, "Redis unreachable (%s); retrying", e->msg);
    prun__conn_close(w->conn);
    w->conn = NULL;
    if (w->run != NULL) {
        prun__wq_free(w->run->q);
        w->run->q = NULL;
    }
    if (w->down_since == 0)
        w->down_since = prun__now_ms();
    w->next_connect = prun__now_ms() + RETRY_MS;
}

int prun__worker_redis_fail(
    struct worker *w, const char *what, int rc, const struct prun_err *e)
{
    enum prun_wq_fault f = prun__wq_fault(w->conn, rc, e);
    int64_t now = prun__now_ms();
    char where[160] = "";

    if (w->run != NULL)
        snprintf(where, sizeof(where), "run %s: ", w->run->rid);
    switch (f) {
    case PRUN_WQ_FAULT_CONN:
        prun__worker_conn_lost(w, e);
        break;
    case PRUN_WQ_FAULT_BUSY:
        if (w->busy_since == 0) {
            w->busy_since = now;
            prun__worker_say(w, "%s%s: Redis cannot answer yet (%s); retrying",
                where, what, e->msg);
        } else if (now - w->busy_since > w->o->outage_ms && w->fatal == 0) {
            w->fatal = prun__err_set(&w->fatal_err, PRUN_EREDIS,
                "%s%s: Redis busy for more than %llds: %s", where, what,
                (long long)(w->o->outage_ms / 1000), e->msg);
            w->have_fatal_err = 1;
        }
        break;
    case PRUN_WQ_FAULT_PERM:
        /*
         * Asking again would get the same answer: the worker's part ends
         * here. What it holds is handed back or reclaimed after its lease.
         */
        if (w->fatal == 0) {
            w->fatal = prun__err_set(&w->fatal_err, PRUN_EREDIS,
                "%s%s refused: %s", where, what, e->msg);
            w->have_fatal_err = 1;
            prun__worker_say(
                w, "%s; stopping this worker's attempts", w->fatal_err.msg);
        }
        break;
    }
    return (int)f;
}

void prun__worker_redis_ok(struct worker *w)
{
    if (w->busy_since != 0)
        prun__worker_say(w, "Redis answers again");
    w->busy_since = 0;
}

static int ensure_conn(struct worker *w, int64_t now, struct prun_err *err)
{
    struct prun_err e;

    if (w->conn != NULL)
        return 0;
    if (now < w->next_connect)
        return -1;
    if (prun__conn_open(w->o->url, w->o->password, 5000, &w->conn, &e) < 0) {
        w->next_connect = now + RETRY_MS;
        if (w->down_since == 0)
            w->down_since = now;
        if (now - w->down_since > w->o->outage_ms) {
            w->fatal = prun__err_set(err, PRUN_EREDIS,
                "Redis unreachable for more than %llds: %s",
                (long long)(w->o->outage_ms / 1000), e.msg);
        }
        return -1;
    }
    if (w->down_since != 0)
        prun__worker_say(w, "Redis reachable again");
    w->down_since = 0;
    if (w->run != NULL && w->run->q == NULL &&
        prun__wq_new(w->conn, w->run->rid, w->id, &w->run->q, &e) < 0)
        return -1;
    return 0;
}

/* ---- The loop's side of the seam ---------------------------------------- */

static int hook_watch(void *ctx, int fd, uint32_t events, struct prun__watch *x)
{
    struct worker *w = ctx;
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.ptr = x;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
        return 0;
    if (errno != EEXIST)
        return -1;
    return epoll_ctl(w->epfd, EPOLL_CTL_MOD, fd, &ev);
}

static void hook_unwatch(void *ctx, int fd)
{
    struct worker *w = ctx;

    epoll_ctl(w->epfd, EPOLL_CTL_DEL, fd, NULL);
}

static void hook_warn(void *ctx, const char *msg)
{
    prun__worker_say(ctx, "%s", msg);
}

/*
 * The executor cannot go on (no guardian could be restarted): the worker
 * hands its attempts back and exits with e.
 */
static void hook_fatal(void *ctx, const struct prun_err *e)
{
    struct worker *w = ctx;

    if (w->fatal == 0) {
        w->fatal = e->code < 0 ? e->code : PRUN_ESYS;
        w->fatal_err = *e;
        w->have_fatal_err = 1;
    }
}

/* ---- Runs --------------------------------------------------------------- */

static void run_free(struct worker *w, struct wrun *r)
{
    if (r == NULL)
        return;
    if (r->exec) {
        r->exec->ops->shutdown(r->exec, 0);
        r->exec->ops->free(r->exec);
    }
    prun__segset_free(r->segs);
    prun__wq_free(r->q);
    prun__job_free(r->job);
    free(r);
    (void)w;
}

static int is_bad(const struct worker *w, const char *rid)
{
    for (size_t i = 0; i < w->nbad; i++)
        if (strcmp(w->bad[i], rid) == 0)
            return 1;
    return 0;
}

static void mark_bad(struct worker *w, const char *rid, const char *why)
{
    char **n = realloc(w->bad, (w->nbad + 1) * sizeof(*n));

    prun__worker_say(w, "run %s: cannot serve it on this host: %s", rid, why);
    if (n == NULL)
        return;
    w->bad = n;
    w->bad[w->nbad] = strdup(rid);
    if (w->bad[w->nbad] != NULL)
        w->nbad++;
}

/* --set entries joined by \x1f, back into an array (in buf). */
static size_t split_sets(char *buf, struct prun_set *sets, size_t max)
{
    size_t n = 0;
    char *p = buf;

    while (*p != '\0' && n < max) {
        char *end = strchr(p, '\x1f'), *eq;

        if (end != NULL)
            *end = '\0';
        eq = strchr(p, '=');
        if (eq != NULL) {
            *eq = '\0';
            sets[n].name = p;
            sets[n].value = eq + 1;
            n++;
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
    return n;
}

/* Sets up serving run rid: its queue, its job, an executor. */
static struct wrun *run_open(struct worker *w, const char *rid)
{
    struct wrun *r = calloc(1, sizeof(*r));
    struct prun__local_opts lo;
    struct prun_set sets[64];
    char job[PATH_MAX], cwd[PATH_MAX], setbuf[8192], state[32];
    struct prun_err e;
    size_t nsets;

    if (r == NULL)
        return NULL;
    snprintf(r->rid, sizeof(r->rid), "%s", rid);
    if (prun__wq_new(w->conn, rid, w->id, &r->q, &e) < 0 ||
        prun__wq_meta(r->q, "state", state, sizeof(state), &e) < 0 ||
        prun__wq_meta(r->q, "job", job, sizeof(job), &e) < 0 ||
        prun__wq_meta(r->q, "cwd", cwd, sizeof(cwd), &e) < 0 ||
        prun__wq_meta(r->q, "sets", setbuf, sizeof(setbuf), &e) < 0) {
        if (prun__worker_is_conn_error(e.code)) {
            /* The run is not ours yet: the error names it by hand. */
            char what[200];

            snprintf(what, sizeof(what), "reading run %s", rid);
            prun__worker_redis_fail(w, what, e.code, &e);
        }
        run_free(w, r);
        return NULL;
    }
    if (strcmp(state, "open") != 0 || job[0] == '\0') {
        run_free(w, r);
        return NULL;
    }
    if (cwd[0] != '\0' && chdir(cwd) < 0) {
        char why[PATH_MAX + 64];
        snprintf(why, sizeof(why), "cannot enter %s: %s", cwd, strerror(errno));
        mark_bad(w, rid, why);
        run_free(w, r);
        return NULL;
    }
    nsets = split_sets(setbuf, sets, 64);
    if (prun__jobfile_load(job, sets, nsets, &r->job, &e) < 0) {
        mark_bad(w, rid, e.msg);
        run_free(w, r);
        return NULL;
    }
    for (size_t i = 0; i < w->nextra; i++)
        r->extra[r->nextra++] = w->extra[i];
    if (r->job->nsegs > 0) {
        const char *const *segenv = NULL;
        size_t n, i;

        /* File segments: one copy per content on this host (segcache). */
        if (prun__segset_new_host(r->job, rid, PRUN_HUGE_AUTO, &r->segs, &e) <
            0) {
            mark_bad(w, rid, e.msg);
            run_free(w, r);
            return NULL;
        }
        n = prun__segset_env_all(r->segs, &segenv);
        for (i = 0; i < n && r->nextra < 16; i++)
            r->extra[r->nextra++] = segenv[i];
    }
    memset(&lo, 0, sizeof(lo));
    lo.job = r->job;
    lo.slots = w->o->slots;
    lo.kill_grace_ms = w->o->kill_grace_ms;
    lo.run_id = r->rid;
    lo.extra_env = r->extra;
    lo.nextra_env = r->nextra;
    lo.segs = r->segs;
    if (prun__local_new(&lo, &w->hooks, &r->exec, NULL, 0, &e) < 0) {
        mark_bad(w, rid, e.msg);
        run_free(w, r);
        return NULL;
    }
    return r;
}

/* Starts claim c of the current run. */
static void start_claim(struct worker *w, struct prun__wq_claim *c)
{
    struct wrun *r = w->run;
    struct wattempt *wa = calloc(1, sizeof(*wa));
    struct prun_err e;
    size_t task;
    long long count;

    if (wa == NULL) {
        /* Its lease lapses and someone else takes it. */
        prun__wq_claim_clear(c);
        return;
    }
    wa->c = *c;
    memset(c, 0, sizeof(*c));
    wa->a.inst = &wa->inst;
    wa->a.pid = -1;
    wa->a.start_mono = prun__now_ms();
    wa->a.start_wall = prun__wall_ms();
    wa->next = w->held;
    if (w->held)
        w->held->prev = wa;
    w->held = wa;
    w->running++;
    w->st->started++;
    if (prun__wq_inst_unpack(wa->c.payload, wa->c.payload_len, &task, &count,
            &wa->inst.items, &wa->inst.nitems, &e) < 0 ||
        task >= r->job->ntasks) {
        snprintf(wa->a.exec_err, sizeof(wa->a.exec_err),
            "the job file on %s does not match the run's (task %zu)", w->host,
            task);
        prun__worker_attempt_ended(w, &wa->a, -1);
        return;
    }
    wa->inst.task = task;
    wa->inst.attempt = wa->c.attempt;
    wa->a.task = &r->job->tasks[task];
    wa->a.ctx.task = wa->a.task->name;
    wa->a.ctx.run_id = r->rid;
    wa->a.ctx.count = count;
    wa->a.ctx.attempt = wa->c.attempt;
    wa->a.ctx.items = wa->inst.items;
    wa->a.ctx.nitems = wa->inst.nitems;
    {
        /* The key is "TASK INDEX". */
        const char *sp = strrchr(wa->c.key, ' ');
        wa->inst.index = sp ? strtoull(sp + 1, NULL, 10) : 0;
        wa->a.ctx.index = wa->inst.index;
    }
    snprintf(wa->env1, sizeof(wa->env1), "PARALLELRUN_FENCE=%llu",
        (unsigned long long)wa->c.fence);
    wa->a.env1 = wa->env1;
    wa->a.cap = prun__capture_new(w->out, wa->a.task->name, wa->inst.index, &e);
    if (wa->a.cap == NULL) {
        snprintf(wa->a.exec_err, sizeof(wa->a.exec_err), "%s", e.msg);
        prun__worker_attempt_ended(w, &wa->a, -1);
        return;
    }
    r->exec->ops->start(r->exec, &wa->a);
}

/* Claims from r; returns how many were started, or -1 on a lost run. */
static int claim_from(struct worker *w, size_t want)
{
    struct prun__wq_claim *c = calloc(want, sizeof(*c));
    struct prun_err e;
    size_t n = 0, i;
    int rc;

    if (c == NULL)
        return 0;
    rc = prun__wq_claim(w->run->q, want, w->o->lease_ms, c, &n, &e);
    if (rc < 0) {
        free(c);
        if (prun__worker_is_conn_error(rc))
            prun__worker_redis_fail(w, "claim", rc, &e);
        return -1;
    }
    prun__worker_redis_ok(w);
    for (i = 0; i < n; i++)
        start_claim(w, &c[i]);
    free(c);
    w->run->got_work = n > 0;
    return (int)n;
}

/* Claims what the free slots allow, choosing a run when idle. */
static void claim(struct worker *w, int64_t now)
{
    size_t want = w->o->slots - w->running;
    char **ids = NULL;
    size_t nids = 0, k;
    struct prun_err e;
    int got;

    if (want == 0 || w->draining || w->fatal || w->conn == NULL ||
        now < w->next_claim)
        return;
    if (w->run != NULL) {
        got = claim_from(w, want);
        if (got > 0 || w->running > 0) {
            w->next_claim = (size_t)got == want ? now : now + IDLE_POLL_MS;
            return;
        }
        if (got < 0 && (w->conn == NULL || w->fatal))
            return;
    }
    /* Idle: the next run that has something for us. */
    if (prun__wq_runs(w->conn, &ids, &nids, &e) < 0) {
        if (prun__worker_is_conn_error(e.code))
            prun__worker_redis_fail(w, "listing runs", e.code, &e);
        w->next_claim = now + RUNS_POLL_MS;
        return;
    }
    for (k = 0; k < nids; k++) {
        const char *rid = ids[(w->rr + k) % nids];

        if (is_bad(w, rid))
            continue;
        if (w->run == NULL || strcmp(w->run->rid, rid) != 0) {
            struct wrun *r;

            /* Completions still owed to the current run keep us on it. */
            if (w->running > 0 || w->pend != NULL)
                break;
            run_free(w, w->run);
            w->run = NULL;
            r = run_open(w, rid);
            if (r == NULL) {
                if (w->conn == NULL || w->fatal)
                    break;
                continue;
            }
            w->run = r;
        }
        got = claim_from(w, want);
        if (got > 0) {
            w->rr = (w->rr + k) % nids;
            break;
        }
        if (w->conn == NULL || w->fatal)
            break;
    }
    prun__wq_strv_free(ids, nids);
    w->next_claim = now + (w->running > 0 ? IDLE_POLL_MS : RUNS_POLL_MS);
}

/* Renews every lease; an attempt whose lease is lost is killed. */
static void renew(struct worker *w, int64_t now)
{
    struct prun__wq_claim *cs;
    struct wattempt **ws, *wa;
    struct prun_err e;
    size_t n = 0, i;
    int *lost, rc;

    if (now < w->next_renew || w->run == NULL || w->run->q == NULL ||
        w->conn == NULL)
        return;
    w->next_renew = now + w->o->lease_ms / 3;
    if (w->running == 0)
        return;
    cs = calloc(w->running, sizeof(*cs));
    ws = calloc(w->running, sizeof(*ws));
    lost = calloc(w->running, sizeof(*lost));
    if (cs && ws && lost) {
        for (wa = w->held; wa != NULL; wa = wa->next) {
            if (wa->lost || wa->released)
                continue;
            cs[n] = wa->c; /* shallow: strings stay the attempt's */
            ws[n++] = wa;
        }
        rc = prun__wq_renew(w->run->q, cs, n, lost, &e);
        if (prun__worker_is_conn_error(rc)) {
            prun__worker_redis_fail(w, "lease renewal", rc, &e);
        } else if (rc == 0) {
            prun__worker_redis_ok(w);
            for (i = 0; i < n; i++) {
                if (!lost[i])
                    continue;
                ws[i]->lost = 1;
                w->st->lost++;
                prun__worker_say(w, "run %s: %s: lease lost; stopping it",
                    w->run->rid, ws[i]->c.key);
                ws[i]->a.why = PRUN__WHY_CANCEL;
                if (ws[i]->a.pid > 0)
                    kill(-(pid_t)ws[i]->a.pid, SIGKILL);
            }
        }
    }
    free(cs);
    free(ws);
    free(lost);
}

static void beat(struct worker *w, int64_t now, int leaving)
{
    struct prun_wq_worker info;
    struct prun_err e;
    char state[32];

    if (w->conn == NULL || (!leaving && now < w->next_beat))
        return;
    w->next_beat = now + BEAT_MS;
    if (leaving) {
        prun__wq_worker_gone(w->conn, w->id, &e);
        return;
    }
    if (w->run != NULL && w->run->q != NULL && w->running > 0 &&
        !w->run->stopping &&
        prun__wq_meta(w->run->q, "state", state, sizeof(state), &e) == 0 &&
        strcmp(state, "open") != 0) {
        /* Cancelled (or ended): its attempts stop, and end as cancelled. */
        prun__worker_say(w, "run %s is %s: stopping its attempts", w->run->rid,
            state[0] ? state : "gone");
        w->run->stopping = 1;
        w->run->exec->ops->stop_all(w->run->exec, 0);
    }
    memset(&info, 0, sizeof(info));
    snprintf(info.id, sizeof(info.id), "%s", w->id);
    snprintf(info.host, sizeof(info.host), "%s", w->host);
    snprintf(info.run, sizeof(info.run), "%s", w->run ? w->run->rid : "");
    info.pid = (long)getpid();
    info.slots = w->o->slots;
    info.running = (unsigned)w->running;
    info.beat_ms = prun__wall_ms();
    if (prun__wq_worker_beat(w->conn, &info, 3 * BEAT_MS + 2000, &e) < 0 &&
        prun__worker_is_conn_error(e.code))
        prun__worker_redis_fail(w, "heartbeat", e.code, &e);
}

/* Hands every running attempt back and stops it at once. */
static void hand_back(struct worker *w)
{
    struct wattempt *wa;
    struct prun_err e;

    for (wa = w->held; wa != NULL; wa = wa->next) {
        if (wa->lost || wa->released)
            continue;
        if (w->conn != NULL && w->run && w->run->q &&
            prun__wq_release(w->run->q, &wa->c, &e) == 0)
            w->st->released++;
        wa->released = 1;
        wa->a.why = PRUN__WHY_CANCEL;
    }
    if (w->run && w->run->exec)
        w->run->exec->ops->stop_all(w->run->exec, 1);
}

static void on_signal(struct prun__watch *x, uint32_t events)
{
    struct worker *w =
        (struct worker *)((char *)x - offsetof(struct worker, sigw));
    struct signalfd_siginfo si;
    int chld = 0;

    (void)events;
    while (read(w->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGCHLD) {
            chld = 1;
            continue;
        }
        if (!w->draining) {
            prun__worker_say(w,
                "stopping: no new claims; %zu running get %llds to finish",
                w->running, (long long)(w->o->drain_ms / 1000));
            w->draining = 1;
            w->drain_at = prun__now_ms() + w->o->drain_ms;
        } else {
            w->drain_at = 0; /* a second signal: hand back now */
        }
    }
    if (chld && w->run && w->run->exec)
        w->run->exec->ops->on_signal(w->run->exec, SIGCHLD);
}

static int64_t next_deadline(const struct worker *w)
{
    int64_t t = w->next_beat;

    if (w->running > 0 && w->next_renew < t)
        t = w->next_renew;
    if (!w->draining && w->running < w->o->slots && w->next_claim < t)
        t = w->next_claim;
    if (w->conn == NULL && w->next_connect < t)
        t = w->next_connect;
    if (w->draining && w->drain_at < t && !w->drained)
        t = w->drain_at;
    if (w->pend != NULL && prun__now_ms() + RETRY_MS < t)
        t = prun__now_ms() + RETRY_MS;
    if (w->run && w->run->exec) {
        int64_t u = w->run->exec->ops->next_deadline(w->run->exec);
        if (u < t)
            t = u;
    }
    return t;
}

static int setup(struct worker *w, struct prun_err *err)
{
    sigset_t mask;

    prctl(PR_SET_CHILD_SUBREAPER, 1);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &mask, &w->oldmask) < 0)
        return prun__err_sys(err, "sigprocmask");
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (w->epfd < 0 || w->sigfd < 0)
        return prun__err_sys(err, "cannot set up the event loop");
    w->sigw.cb = on_signal;
    if (hook_watch(w, w->sigfd, EPOLLIN, &w->sigw) < 0)
        return prun__err_sys(err, "epoll_ctl");
    return 0;
}

static int loop(struct worker *w, struct prun_err *err)
{
    struct epoll_event evs[64];

    for (;;) {
        int64_t now = prun__now_ms(), t;
        int n;

        if (w->run && w->run->exec)
            w->run->exec->ops->tick(w->run->exec, now);
        ensure_conn(w, now, err);
        if (w->fatal) {
            hand_back(w);
            if (w->running == 0) {
                if (w->have_fatal_err && err != NULL)
                    *err = w->fatal_err;
                return w->fatal;
            }
        }
        beat(w, now, 0);
        prun__worker_flush_pending(w);
        renew(w, now);
        if (w->draining && !w->drained && now >= w->drain_at) {
            w->drained = 1;
            if (w->running > 0)
                prun__worker_say(
                    w, "drain timeout: handing %zu attempts back", w->running);
            hand_back(w);
        }
        if (w->draining && w->running == 0 && w->pend == NULL)
            return 0;
        if (w->draining && w->running == 0 && w->conn == NULL && w->drained)
            return 0;
        claim(w, now);
        t = next_deadline(w) - prun__now_ms();
        n = epoll_wait(w->epfd, evs, 64,
            t < 0       ? 0
            : t > 60000 ? 60000
                        : (int)t);
        if (n < 0 && errno != EINTR)
            return prun__err_sys(err, "epoll_wait");
        for (int i = 0; i < n; i++) {
            struct prun__watch *x = evs[i].data.ptr;
            x->cb(x, evs[i].events);
        }
    }
}

int prun__worker_run(const struct prun_worker_opts *o,
    struct prun_worker_stats *st, struct prun_err *err)
{
    struct worker w;
    struct prun_output_opts oo;
    struct prun_redis_addr addr;
    int rc;

    memset(&w, 0, sizeof(w));
    memset(st, 0, sizeof(*st));
    w.o = o;
    w.st = st;
    w.epfd = w.sigfd = -1;
    w.hooks.ctx = &w;
    w.hooks.ended = prun__worker_attempt_ended;
    w.hooks.watch = hook_watch;
    w.hooks.unwatch = hook_unwatch;
    w.hooks.warn = hook_warn;
    w.hooks.say = hook_warn;
    w.hooks.fatal = hook_fatal;
    gethostname(w.host, sizeof(w.host) - 1);
    snprintf(w.id, sizeof(w.id), "%s:%ld", w.host, (long)getpid());
    rc = prun__redis_url_parse(o->url, &addr, err);
    if (rc < 0)
        return rc;
    /* Children reach the same server; the password never goes in a URL. */
    memcpy(w.env_url, "PARALLELRUN_REDIS=", 18);
    prun__redis_url_format(&addr, w.env_url + 18, sizeof(w.env_url) - 18);
    w.extra[w.nextra++] = w.env_url;
    if ((o->password && *o->password) || addr.password[0]) {
        snprintf(w.env_pw, sizeof(w.env_pw), "PARALLELRUN_REDIS_PASSWORD=%s",
            o->password && *o->password ? o->password : addr.password);
        w.extra[w.nextra++] = w.env_pw;
    }
    memset(&addr, 0, sizeof(addr));
    rc = prun__conn_open(o->url, o->password, 5000, &w.conn, err);
    if (rc < 0)
        goto out;
    rc = prun__wout_dir_new(w.resdir, sizeof(w.resdir), err);
    if (rc < 0)
        goto out;
    /* Output goes to files there and back to the run (worker_out.c). */
    memset(&oo, 0, sizeof(oo));
    oo.mode = PRUN_OUT_NONE;
    oo.results_dir = w.resdir;
    oo.run_id = "out";
    rc = prun__output_new(&oo, &w.out, err);
    if (rc < 0)
        goto out;
    rc = setup(&w, err);
    if (rc < 0)
        goto out;
    prun__worker_say(&w, "worker %s: %u slots, lease %llds, serving %s", w.id,
        o->slots, (long long)(o->lease_ms / 1000), prun__conn_url(w.conn));
    rc = loop(&w, err);
out:
    if (w.running > 0)
        hand_back(&w);
    beat(&w, prun__now_ms(), 1);
    run_free(&w, w.run);
    while (w.pend != NULL) {
        struct pending *p = w.pend;
        w.pend = p->next;
        prun__wq_claim_clear(&p->c);
        free(p->record);
        prun__buf_free(&p->out);
        prun__buf_free(&p->err);
        free(p);
    }
    prun__wout_dir_free(w.resdir);
    prun__wq_strv_free(w.bad, w.nbad);
    prun__output_free(w.out);
    prun__conn_close(w.conn);
    if (w.epfd >= 0)
        close(w.epfd);
    if (w.sigfd >= 0)
        close(w.sigfd);
    sigprocmask(SIG_SETMASK, &w.oldmask, NULL);
    memset(w.env_pw, 0, sizeof(w.env_pw));
    return rc;
}
