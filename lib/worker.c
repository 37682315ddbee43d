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
 * It serves every announced run at once (worker_runs.c): each has its
 * own executor, and one SIGCHLD path reaps every child of the process
 * and hands its end to the run that started it (prun__local_reap).
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
#include "spawn.h"
#include "worker_int.h"
#include "worker_out.h"
#include "wq.h"

#define BEAT_MS  1000
#define RETRY_MS 500

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
    for (struct wrun *r = w->runs; r != NULL; r = r->next) {
        prun__wq_free(r->q);
        r->q = NULL;
    }
    if (w->down_since == 0)
        w->down_since = prun__now_ms();
    w->next_connect = prun__now_ms() + RETRY_MS;
}

int prun__worker_redis_fail(struct worker *w, const struct wrun *r,
    const char *what, int rc, const struct prun_err *e)
{
    enum prun_wq_fault f = prun__wq_fault(w->conn, rc, e);
    int64_t now = prun__now_ms();
    char where[160] = "";

    if (r != NULL)
        snprintf(where, sizeof(where), "run %s: ", r->rid);
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
    for (struct wrun *r = w->runs; r != NULL; r = r->next)
        if (r->q == NULL && prun__wq_new(w->conn, r->rid, w->id, &r->q, &e) < 0)
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

/* Renews r's leases; an attempt whose lease is lost is killed. */
static void renew_run(struct worker *w, struct wrun *r)
{
    struct prun__wq_claim *cs = calloc(r->running, sizeof(*cs));
    struct wattempt **ws = calloc(r->running, sizeof(*ws)), *wa;
    int *lost = calloc(r->running, sizeof(*lost)), rc;
    struct prun_err e;
    size_t n = 0, i;

    if (cs && ws && lost) {
        for (wa = w->held; wa != NULL && n < r->running; wa = wa->next) {
            if (wa->run != r || wa->lost || wa->released)
                continue;
            cs[n] = wa->c; /* shallow: strings stay the attempt's */
            ws[n++] = wa;
        }
        rc = prun__wq_renew(r->q, cs, n, lost, &e);
        if (prun__worker_is_conn_error(rc)) {
            prun__worker_redis_fail(w, r, "lease renewal", rc, &e);
        } else if (rc == 0) {
            prun__worker_redis_ok(w);
            for (i = 0; i < n; i++) {
                if (!lost[i])
                    continue;
                ws[i]->lost = 1;
                w->st->lost++;
                prun__worker_say(w, "run %s: %s: lease lost; stopping it",
                    r->rid, ws[i]->c.key);
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

/* Renews every run's leases every lease/3. */
static void renew(struct worker *w, int64_t now)
{
    if (now < w->next_renew || w->conn == NULL)
        return;
    w->next_renew = now + w->o->lease_ms / 3;
    for (struct wrun *r = w->runs; r != NULL && w->conn != NULL; r = r->next)
        if (r->q != NULL && r->running > 0)
            renew_run(w, r);
}

static void beat(struct worker *w, int64_t now, int leaving)
{
    struct prun_wq_worker info;
    struct prun_err e;

    if (w->conn == NULL || (!leaving && now < w->next_beat))
        return;
    w->next_beat = now + BEAT_MS;
    if (leaving) {
        prun__wq_worker_gone(w->conn, w->id, &e);
        return;
    }
    prun__worker_runs_check(w);
    memset(&info, 0, sizeof(info));
    snprintf(info.id, sizeof(info.id), "%s", w->id);
    snprintf(info.host, sizeof(info.host), "%s", w->host);
    prun__worker_runs_list(w, info.run, sizeof(info.run));
    info.pid = (long)getpid();
    info.slots = w->o->slots;
    info.running = (unsigned)w->running;
    info.beat_ms = prun__wall_ms();
    if (prun__wq_worker_beat(w->conn, &info, 3 * BEAT_MS + 2000, &e) < 0 &&
        prun__worker_is_conn_error(e.code))
        prun__worker_redis_fail(w, NULL, "heartbeat", e.code, &e);
}

/* Hands every run's running attempts back and stops them at once. */
static void hand_back(struct worker *w)
{
    struct wattempt *wa;
    struct prun_err e;

    for (wa = w->held; wa != NULL; wa = wa->next) {
        if (wa->lost || wa->released)
            continue;
        if (w->conn != NULL && wa->run->q != NULL &&
            prun__wq_release(wa->run->q, &wa->c, &e) == 0)
            w->st->released++;
        wa->released = 1;
        wa->a.why = PRUN__WHY_CANCEL;
    }
    for (struct wrun *r = w->runs; r != NULL; r = r->next)
        if (r->exec != NULL)
            r->exec->ops->stop_all(r->exec, 1);
}

/*
 * Every ended child of the process goes to the run whose executor started
 * it; one that no run owns (an orphaned grandchild) is reaped.
 */
static void reap(struct worker *w)
{
    struct prun__executor *xs[64], **v = xs;
    size_t n = 0;

    if (w->nruns > 64 && (v = calloc(w->nruns, sizeof(*v))) == NULL)
        return; /* the next SIGCHLD tries again */
    for (struct wrun *r = w->runs; r != NULL; r = r->next)
        if (r->exec != NULL)
            v[n++] = r->exec;
    prun__local_reap(v, n);
    if (v != xs)
        free(v);
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
    if (chld)
        reap(w);
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
    for (const struct wrun *r = w->runs; r != NULL; r = r->next) {
        int64_t u = r->exec ? r->exec->ops->next_deadline(r->exec) : INT64_MAX;
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

        for (struct wrun *r = w->runs; r != NULL; r = r->next)
            if (r->exec != NULL)
                r->exec->ops->tick(r->exec, now);
        ensure_conn(w, now, err);
        if (w->fatal) {
            hand_back(w);
            if (w->running == 0) {
                prun__worker_gave_up(w, NULL, NULL);
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
        prun__worker_claim(w, now);
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
    prun__worker_runs_free(&w);
    /* What the runs' executors left (stragglers out of their groups). */
    prun__kill_descendants(200);
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
    prun__conn_close(w.conn);
    if (w.epfd >= 0)
        close(w.epfd);
    if (w.sigfd >= 0)
        close(w.sigfd);
    sigprocmask(SIG_SETMASK, &w.oldmask, NULL);
    memset(w.env_pw, 0, sizeof(w.env_pw));
    return rc;
}
