/* SPDX-License-Identifier: MIT */
/*
 * worker_runs: the runs a queue worker serves at once
 * (docs/work-queue.md, "Workers"). It looks at the announced runs every
 * RUNS_POLL_MS, opens each one this host can serve (its job file loaded
 * from the path the run recorded, its file segments, its queue handle and
 * a local executor of its own, sharing the process's children with the
 * others), claims from the open runs round robin up to the worker's free
 * slots in all, and closes a run once it is over (no longer announced,
 * cancelled, or its queue gone) and nothing of it runs or is owed here.
 *
 * It is not the loop, the leases or the drain (worker.c), nor an
 * attempt's end (worker_end.c).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec_local.h"
#include "worker_int.h"
#include "worker_out.h"

#define IDLE_POLL_MS 50
#define RUNS_POLL_MS 250

static void run_free(struct worker *w, struct wrun *r)
{
    char dir[sizeof(w->resdir) + 130];

    if (r == NULL)
        return;
    if (r->exec) {
        r->exec->ops->shutdown(r->exec, 0);
        r->exec->ops->free(r->exec);
    }
    if (r->out != NULL) {
        /* Its captured output's directory goes with it (worker_out.c). */
        prun__output_free(r->out);
        snprintf(dir, sizeof(dir), "%s/%s", w->resdir, r->rid);
        prun__wout_dir_free(dir);
    }
    prun__segset_free(r->segs);
    prun__wq_free(r->q);
    prun__job_free(r->job);
    free(r);
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
    prun__worker_gave_up(w, rid, why);
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

/*
 * Reads what r's run recorded for workers (state, job file, directory,
 * --set values) and loads its job. Returns 0, or -1 when the run is not
 * to be served (not open, or this host cannot: then it is marked bad).
 */
static int run_load(struct worker *w, struct wrun *r)
{
    struct prun_set sets[64];
    char job[PATH_MAX], setbuf[8192], state[32];
    struct prun_err e;

    if (prun__wq_meta(r->q, "state", state, sizeof(state), &e) < 0 ||
        prun__wq_meta(r->q, "job", job, sizeof(job), &e) < 0 ||
        prun__wq_meta(r->q, "cwd", r->cwd, sizeof(r->cwd), &e) < 0 ||
        prun__wq_meta(r->q, "sets", setbuf, sizeof(setbuf), &e) < 0) {
        if (prun__worker_is_conn_error(e.code)) {
            /* The run is not served yet: the error names it by hand. */
            char what[200];

            snprintf(what, sizeof(what), "reading run %s", r->rid);
            prun__worker_redis_fail(w, NULL, what, e.code, &e);
        }
        return -1;
    }
    if (strcmp(state, "open") != 0 || job[0] == '\0')
        return -1;
    /* Relative paths in the job file are the run's: load it from there. */
    if (r->cwd[0] != '\0' && chdir(r->cwd) < 0) {
        char why[PATH_MAX + 64];

        snprintf(
            why, sizeof(why), "cannot enter %s: %s", r->cwd, strerror(errno));
        mark_bad(w, r->rid, why);
        return -1;
    }
    if (prun__jobfile_load(
            job, sets, split_sets(setbuf, sets, 64), &r->job, &e) < 0) {
        mark_bad(w, r->rid, e.msg);
        return -1;
    }
    return 0;
}

/* r's segments and executor; -1 (the run marked bad) when impossible. */
static int run_exec(struct worker *w, struct wrun *r)
{
    struct prun__local_opts lo;
    struct prun_output_opts oo;
    struct prun_err e;

    /* Its children's output: files under the worker's directory, one
     * directory per run (worker_out.c), so two runs' TASK[INDEX] differ. */
    memset(&oo, 0, sizeof(oo));
    oo.mode = PRUN_OUT_NONE;
    oo.results_dir = w->resdir;
    oo.run_id = r->rid;
    if (prun__output_new(&oo, &r->out, &e) < 0) {
        mark_bad(w, r->rid, e.msg);
        return -1;
    }
    for (size_t i = 0; i < w->nextra; i++)
        r->extra[r->nextra++] = w->extra[i];
    if (r->job->nsegs > 0) {
        const char *const *segenv = NULL;
        size_t n, i;

        /* File segments: one copy per content on this host (segcache). */
        if (prun__segset_new_host(
                r->job, r->rid, PRUN_HUGE_AUTO, &r->segs, &e) < 0) {
            mark_bad(w, r->rid, e.msg);
            return -1;
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
    lo.cwd = r->cwd[0] != '\0' ? r->cwd : NULL;
    lo.shared = 1;
    if (prun__local_new(&lo, &w->hooks, &r->exec, NULL, 0, &e) < 0) {
        mark_bad(w, r->rid, e.msg);
        return -1;
    }
    return 0;
}

/* A run id as prun__run_id_new makes them: letters, digits, '-', '_'. */
static int rid_ok(const char *rid)
{
    size_t n = strspn(rid,
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_");

    return n > 0 && n < 100 && rid[n] == '\0';
}

/* Sets up serving run rid: its queue, its job, an executor; or NULL. */
static struct wrun *run_open(struct worker *w, const char *rid)
{
    struct wrun *r = calloc(1, sizeof(*r));
    struct prun_err e;

    if (r == NULL)
        return NULL;
    snprintf(r->rid, sizeof(r->rid), "%s", rid);
    if (!rid_ok(rid)) {
        /* It names a directory of ours: nothing but a run id will do. */
        mark_bad(w, rid, "not a run id");
        free(r);
        return NULL;
    }
    if (prun__wq_new(w->conn, rid, w->id, &r->q, &e) < 0 ||
        run_load(w, r) < 0 || run_exec(w, r) < 0) {
        run_free(w, r);
        return NULL;
    }
    return r;
}

static struct wrun *find_run(const struct worker *w, const char *rid)
{
    struct wrun *r;

    for (r = w->runs; r != NULL; r = r->next)
        if (strcmp(r->rid, rid) == 0)
            return r;
    return NULL;
}

/* Closes the runs that are over and have nothing running or owed here. */
static void close_idle(struct worker *w)
{
    struct wrun **pp = &w->runs, *r;

    while ((r = *pp) != NULL) {
        if ((!r->listed || r->gone || r->stopping) && r->running == 0 &&
            r->npend == 0) {
            *pp = r->next;
            w->nruns--;
            run_free(w, r);
            continue;
        }
        pp = &r->next;
    }
}

/* The announced runs: new ones opened, finished ones closed. */
static void refresh(struct worker *w, int64_t now)
{
    char **ids = NULL;
    size_t nids = 0, k;
    struct prun_err e;
    struct wrun *r;

    if (now < w->next_runs)
        return;
    w->next_runs = now + RUNS_POLL_MS;
    if (prun__wq_runs(w->conn, &ids, &nids, &e) < 0) {
        if (prun__worker_is_conn_error(e.code))
            prun__worker_redis_fail(w, NULL, "listing runs", e.code, &e);
        return;
    }
    for (r = w->runs; r != NULL; r = r->next)
        r->listed = 0;
    for (k = 0; k < nids; k++) {
        r = find_run(w, ids[k]);
        if (r == NULL && !is_bad(w, ids[k]) && !w->draining) {
            r = run_open(w, ids[k]);
            if (r == NULL && (w->conn == NULL || w->fatal))
                break;
            if (r != NULL) {
                r->next = w->runs;
                w->runs = r;
                w->nruns++;
            }
        }
        if (r != NULL)
            r->listed = 1;
    }
    /* A listing cut short says nothing about the runs it did not reach. */
    if (k == nids)
        close_idle(w);
    prun__wq_strv_free(ids, nids);
}

/* Starts claim c of run r. */
static void start_claim(
    struct worker *w, struct wrun *r, struct prun__wq_claim *c)
{
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
    wa->run = r;
    wa->a.inst = &wa->inst;
    wa->a.pid = -1;
    wa->a.start_mono = prun__now_ms();
    wa->a.start_wall = prun__wall_ms();
    wa->next = w->held;
    if (w->held)
        w->held->prev = wa;
    w->held = wa;
    w->running++;
    r->running++;
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
    wa->a.cap = prun__capture_new(r->out, wa->a.task->name, wa->inst.index, &e);
    if (wa->a.cap == NULL) {
        snprintf(wa->a.exec_err, sizeof(wa->a.exec_err), "%s", e.msg);
        prun__worker_attempt_ended(w, &wa->a, -1);
        return;
    }
    r->exec->ops->start(r->exec, &wa->a);
}

/* Claims up to want from r; returns how many were started, or -1. */
static int claim_from(struct worker *w, struct wrun *r, size_t want)
{
    struct prun__wq_claim *c = calloc(want, sizeof(*c));
    struct prun_err e;
    size_t n = 0, i;
    int rc;

    if (c == NULL)
        return -1;
    rc = prun__wq_claim(r->q, want, w->o->lease_ms, c, &n, &e);
    if (rc < 0) {
        free(c);
        if (rc == PRUN_ENOTFOUND)
            r->gone = 1;
        else if (prun__worker_is_conn_error(rc))
            prun__worker_redis_fail(w, r, "claim", rc, &e);
        return -1;
    }
    prun__worker_redis_ok(w);
    for (i = 0; i < n; i++)
        start_claim(w, r, &c[i]);
    free(c);
    r->got_work = n > 0;
    return (int)n;
}

static int may_claim(const struct wrun *r, int64_t now)
{
    return r->q != NULL && r->exec != NULL && !r->stopping && !r->gone &&
           now >= r->next_claim;
}

/*
 * One round over the runs that may claim, starting one further each
 * round: each asks for its share of what is still free (at least one),
 * so runs with work split the slots and none waits for another to end.
 */
static void claim_round(struct worker *w, int64_t now)
{
    size_t free_slots = w->o->slots - w->running, n = 0, k;
    struct wrun **v = calloc(w->nruns ? w->nruns : 1, sizeof(*v)), *r;

    if (v == NULL)
        return;
    for (r = w->runs; r != NULL; r = r->next)
        if (may_claim(r, now))
            v[n++] = r;
    for (k = 0; k < n && free_slots > 0; k++) {
        size_t share = free_slots / (n - k);
        int got;

        r = v[(w->rr + k) % n];
        got = claim_from(w, r, share > 0 ? share : 1);
        if (got < 0 && (w->conn == NULL || w->fatal))
            break;
        if (got > 0 && (size_t)got == (share > 0 ? share : 1)) {
            r->next_claim = now;
        } else {
            /* It has less than it asked for: look again in a while. */
            r->next_claim =
                now + (r->running > 0 ? IDLE_POLL_MS : RUNS_POLL_MS);
        }
        if (got > 0)
            free_slots -= (size_t)got;
    }
    w->rr++;
    free(v);
}

void prun__worker_claim(struct worker *w, int64_t now)
{
    struct wrun *r;

    if (w->draining || w->fatal || w->conn == NULL || now < w->next_claim)
        return;
    refresh(w, now);
    if (w->conn != NULL && !w->fatal && w->running < w->o->slots)
        claim_round(w, now);
    /* The earliest time anything here is worth doing again. */
    w->next_claim = w->next_runs;
    for (r = w->runs; r != NULL; r = r->next)
        if (may_claim(r, INT64_MAX) && r->next_claim < w->next_claim)
            w->next_claim = r->next_claim;
}

void prun__worker_runs_check(struct worker *w)
{
    struct prun_err e;
    struct wrun *r;
    char state[32];

    for (r = w->runs; r != NULL; r = r->next) {
        if (r->q == NULL || r->running == 0 || r->stopping ||
            prun__wq_meta(r->q, "state", state, sizeof(state), &e) < 0 ||
            strcmp(state, "open") == 0)
            continue;
        /* Cancelled (or ended): its attempts stop, and end as cancelled. */
        prun__worker_say(w, "run %s is %s: stopping its attempts", r->rid,
            state[0] ? state : "gone");
        r->stopping = 1;
        r->exec->ops->stop_all(r->exec, 0);
    }
}

void prun__worker_runs_list(const struct worker *w, char *buf, size_t n)
{
    const struct wrun *r;
    size_t len = 0;

    buf[0] = '\0';
    for (r = w->runs; r != NULL; r = r->next) {
        size_t need = strlen(r->rid) + (len > 0);

        if (len + need + 5 > n) {
            snprintf(buf + len, n - len, "%s...", len > 0 ? "," : "");
            return;
        }
        len += (size_t)snprintf(
            buf + len, n - len, "%s%s", len > 0 ? "," : "", r->rid);
    }
}

void prun__worker_runs_free(struct worker *w)
{
    while (w->runs != NULL) {
        struct wrun *r = w->runs;

        w->runs = r->next;
        run_free(w, r);
    }
    w->nruns = 0;
}
