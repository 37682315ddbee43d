/* SPDX-License-Identifier: MIT */
/*
 * run_dist: what a run --distributed tells the workers (the job file's
 * absolute path, the directory, the --set entries) and what it refuses;
 * and the accounting of a pool task's items from the run's work queue
 * once the run is over. It is not the remote executor (exec_remote.c) nor
 * the queue protocol (wq.c).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run_dist.h"
#include "wq.h"

/*
 * The worker-wait bound: --worker-wait, else PARALLELRUN_WORKER_WAIT,
 * else 60 s; 0 and "inf" wait for ever (0 in *ms).
 */
static int worker_wait(const char *arg, int64_t *ms, struct prun_err *err)
{
    const char *v = arg, *what = "--worker-wait";

    *ms = 60000;
    if (v == NULL || *v == '\0') {
        v = getenv("PARALLELRUN_WORKER_WAIT");
        what = "PARALLELRUN_WORKER_WAIT";
    }
    if (v == NULL || *v == '\0')
        return 0;
    if (strcmp(v, "inf") == 0 || strcmp(v, "infinity") == 0) {
        *ms = 0;
        return 0;
    }
    if (prun__parse_duration(v, ms, err) < 0)
        return prun__err_set(err, PRUN_EINVAL,
            "%s: expected a duration (0 or inf: wait for ever), got '%s'", what,
            v);
    return 0;
}

int prun__dist_setup(const struct prun_job *job, const char *url,
    const char *password, const char *wait, const struct prun_set *sets,
    size_t nsets, struct prun__dist_spec *d, struct prun_err *err)
{
    const char *env = getenv("PARALLELRUN_QUEUE_OUTAGE");
    size_t t, i, used = 0;

    memset(d, 0, sizeof(*d));
    if (url == NULL || strcmp(url, "off") == 0 || strcmp(url, "none") == 0)
        return prun__err_set(err, PRUN_EINVAL,
            "--distributed needs --redis URL: a server the workers can reach "
            "(the embedded one is private to this user and host)");
    for (t = 0; t < job->ntasks; t++) {
        /*
         * A pool's workers run on queue workers like any instance; its
         * items are staged here and claimed from there. A per-item
         * timeout stops the item's worker process, which is on another
         * host: not done.
         */
        if (job->tasks[t].pool && job->tasks[t].timeout_ms > 0)
            return prun__err_set(err, PRUN_EINVAL,
                "%s:%u:%u: task '%s': a pool task's timeout: (per item) is "
                "not supported with --distributed (the item's worker runs "
                "on another host); drop timeout:, or run without "
                "--distributed; see docs/work-queue.md, Limits",
                job->path, job->tasks[t].pos.line, job->tasks[t].pos.col,
                job->tasks[t].name);
        for (size_t k = 0; k < job->tasks[t].nsegs; k++) {
            const struct prun_segdef *sd = &job->segs[job->tasks[t].segs[k]];

            if (sd->file != NULL && !sd->writable && !sd->published)
                continue;
            return prun__err_set(err, PRUN_EINVAL,
                "%s:%u:%u: segment '%s': only read-only file: segments work "
                "with --distributed (each worker host loads its own copy "
                "from the same file); see docs/work-queue.md",
                job->path, sd->pos.line, sd->pos.col, sd->name);
        }
    }
    if (realpath(job->path, d->job_path) == NULL)
        return prun__err_sys(err, "%s", job->path);
    if (getcwd(d->cwd, sizeof(d->cwd)) == NULL)
        return prun__err_sys(err, "getcwd");
    for (i = 0; i < nsets; i++) {
        int n = snprintf(d->sets + used, sizeof(d->sets) - used, "%s%s=%s",
            i ? "\x1f" : "", sets[i].name, sets[i].value);
        if (n < 0 || (size_t)n >= sizeof(d->sets) - used)
            return prun__err_set(
                err, PRUN_EINVAL, "--set values too long for --distributed");
        used += (size_t)n;
    }
    d->dist.url = url;
    d->dist.password = password;
    d->dist.job_path = d->job_path;
    d->dist.cwd = d->cwd;
    d->dist.sets = d->sets;
    d->dist.outage_ms = 60000;
    if (worker_wait(wait, &d->dist.worker_wait_ms, err) < 0)
        return PRUN_EINVAL;
    if (env != NULL && *env != '\0' &&
        prun__parse_duration(env, &d->dist.outage_ms, err) < 0)
        return prun__err_set(err, PRUN_EINVAL,
            "PARALLELRUN_QUEUE_OUTAGE: expected a duration, got '%s'", env);
    return 0;
}

/* Replaces the counts of pool task t (its workers) by its items'. */
static void pool_counts(struct prun_run_result *res, size_t t,
    const struct prun_wq_tally *ty, unsigned long long failed)
{
    struct prun_task_result *tr = &res->tasks[t];
    size_t i, j;

    res->stats.succeeded -= tr->succeeded;
    res->stats.failed -= tr->failed;
    tr->succeeded = (unsigned long long)ty->ok;
    tr->failed = failed;
    tr->count = ty->fed;
    res->stats.succeeded += tr->succeeded;
    res->stats.failed += tr->failed;
    /* The summary names items, not the workers that ran them. */
    for (i = j = 0; i < res->nfail; i++)
        if (res->fail[i].task != t)
            res->fail[j++] = res->fail[i];
    res->nfail = j;
}

int prun__pool_verify(const char *url, const char *password, const char *run_id,
    const struct prun_job *job, struct prun_run_result *res,
    struct prun_err *err)
{
    struct prun_conn *c = NULL;
    struct prun_wq *q = NULL;
    size_t t, i;
    int rc = 0, any = 0;

    for (t = 0; t < job->ntasks; t++)
        any |= job->tasks[t].pool;
    if (!any || res->tasks == NULL || res->signal != 0)
        return 0;
    rc = prun__conn_open(url, password, 5000, &c, err);
    if (rc == 0)
        rc = prun__wq_new(c, run_id, "runner", &q, err);
    for (t = 0; rc == 0 && t < job->ntasks; t++) {
        struct prun_wq_tally ty;
        unsigned long long failed, missing = 0;

        if (!job->tasks[t].pool)
            continue;
        rc = prun__wq_pool_tally(q, job->tasks[t].name, &ty, err);
        if (rc == PRUN_ENOTFOUND) {
            rc = prun__err_set(err, PRUN_EREDIS,
                "pool task '%s': Redis at %s lost this run's work queue: its "
                "items cannot be accounted for",
                job->tasks[t].name, prun__conn_url(c));
            break;
        }
        if (rc < 0)
            break;
        failed = (unsigned long long)(ty.term - ty.ok);
        if (ty.fed < 0) {
            rc = prun__err_set(err, PRUN_EREDIS,
                "pool task '%s': Redis at %s does not know how many items "
                "were queued (its data was lost?)",
                job->tasks[t].name, prun__conn_url(c));
            break;
        }
        if (ty.term < ty.fed)
            missing = (unsigned long long)(ty.fed - ty.term);
        pool_counts(res, t, &ty, failed + missing);
        for (i = 0; i < ty.nfail && res->nfail < PRUN_MAX_FAILURES; i++) {
            struct prun_failure *f = &res->fail[res->nfail++];

            memset(f, 0, sizeof(*f));
            f->task = t;
            f->index = ty.fail[i].index;
            f->attempt = 1;
            f->kind = PRUN_FAIL_EXIT;
            snprintf(f->reason, sizeof(f->reason), "%s", ty.fail[i].reason);
        }
        if (failed > ty.nfail)
            res->fail_more += failed - ty.nfail;
        if (missing > 0 && res->warning[0] == '\0')
            snprintf(res->warning, sizeof(res->warning),
                "pool task '%s': %llu of %lld items never finished (every "
                "worker ended first)",
                job->tasks[t].name, missing, ty.fed);
    }
    prun__wq_free(q);
    prun__conn_close(c);
    return rc;
}
