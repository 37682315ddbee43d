/* SPDX-License-Identifier: MIT */
/*
 * coord_read: what status, runs, cancel and --resume read back from a
 * run's records (key schema: docs/redis-schema.md), over a blocking
 * connection. The runner's writer is coord_state.c; this module only
 * reads, apart from the cancel request it sets.
 */
#include "coord_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int prun__strset_has(const struct prun_strset *s, const char *v)
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

void prun__strset_free(struct prun_strset *s)
{
    size_t i;

    if (s == NULL)
        return;
    for (i = 0; i < s->cap; i++)
        free(s->slots[i]);
    free(s->slots);
    free(s);
}

int prun__resume_load(struct prun_conn *c, const char *rid,
    const char *job_name, const char *const *tasks, size_t ntasks,
    struct prun_strset ***out, struct prun_err *err)
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
        return prun__err_set(err, PRUN_EINVAL,
            "--resume: no run '%s' is recorded in Redis at %s", rid,
            prun__conn_url(c));
    }
    if (strcmp(r->str, job_name) != 0) {
        rc = prun__err_set(err, PRUN_EINVAL,
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
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    for (t = 0; t < ntasks; t++) {
        char cursor[32] = "0";

        sets[t] = calloc(1, sizeof(struct prun_strset));
        if (sets[t] == NULL) {
            rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
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
                rc = prun__err_set(err, PRUN_EREDIS, "unexpected SSCAN reply");
                goto fail;
            }
            snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
            for (i = 0; i < r->element[1]->elements; i++) {
                redisReply *m = r->element[1]->element[i];
                if (strset_add(sets[t], m->str, m->len) < 0) {
                    freeReplyObject(r);
                    rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
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
        prun__strset_free(sets[t]);
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
        return prun__err_set(err, PRUN_ENOTFOUND, "no run '%s' in Redis at %s",
            rid, prun__conn_url(c));
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
            return prun__err_set(err, PRUN_ENOMEM, "out of memory");
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
    r = prun__eval(c, err, prun__progress_lua, 2, 2, args);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    n = r->type == REDIS_REPLY_ARRAY ? r->elements / 2 : 0;
    st->progress_keys = calloc(n ? n : 1, sizeof(char *));
    st->progress_vals = calloc(n ? n : 1, sizeof(char *));
    if (st->progress_keys == NULL || st->progress_vals == NULL) {
        freeReplyObject(r);
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
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
        rc = prun__err_set(err, PRUN_ENOTFOUND,
            "no runs recorded in Redis at %s", prun__conn_url(c));
    else
        snprintf(rid, n, "%s", r->element[0]->str);
    freeReplyObject(r);
    return rc;
}

int prun__run_exists(struct prun_conn *c, const char *rid, struct prun_err *err)
{
    redisReply *r = prun__cmd(c, err, "EXISTS parallelrun:{%s}:run", rid);
    int rc;

    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    rc = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
    freeReplyObject(r);
    return rc;
}

int prun__run_latest_of(struct prun_conn *c, const char *job_name, char *rid,
    size_t n, struct prun_err *err)
{
    long long start;
    size_t i;

    /* Newest first, a page at a time: the newest match is the answer. */
    for (start = 0;; start += 100) {
        redisReply *r = prun__cmd(
            c, err, "ZREVRANGE parallelrun:runs %lld %lld", start, start + 99);

        if (r == NULL)
            return err ? err->code : PRUN_EREDIS;
        if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
            freeReplyObject(r);
            break;
        }
        for (i = 0; i < r->elements; i++) {
            const char *id = r->element[i]->str;
            redisReply *nm =
                prun__cmd(c, err, "HGET parallelrun:{%s}:run name", id);
            int match;

            if (nm == NULL) {
                freeReplyObject(r);
                return err ? err->code : PRUN_EREDIS;
            }
            match = nm->type == REDIS_REPLY_STRING &&
                    strcmp(nm->str, job_name) == 0;
            freeReplyObject(nm);
            if (match) {
                snprintf(rid, n, "%s", id);
                freeReplyObject(r);
                return 0;
            }
        }
        freeReplyObject(r);
    }
    return prun__err_set(err, PRUN_ENOTFOUND,
        "no run of job '%s' is recorded in Redis at %s", job_name,
        prun__conn_url(c));
}

int prun__status_load(struct prun_conn *c, const char *rid,
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
        prun__status_free(st);
    return rc;
}

void prun__status_free(struct prun_status *st)
{
    free_strv(st->running, st->nrunning);
    free_strv(st->failed, st->nfailed);
    free_strv(st->progress_keys, st->nprogress);
    free_strv(st->progress_vals, st->nprogress);
    free_strv(st->task_names, st->ntasks);
    free_strv(st->task_json, st->ntasks);
    memset(st, 0, sizeof(*st));
}

int prun__runs_list(struct prun_conn *c, size_t n, struct prun_run_info **out,
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
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
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

int prun__run_cancel(struct prun_conn *c, const char *rid, long *pid,
    char *host, size_t hostlen, struct prun_err *err)
{
    struct prun_run_info in;
    redisReply *r;
    char k[256];
    int rc;

    rc = load_info(c, rid, &in, err);
    if (rc < 0)
        return rc;
    if (strcmp(in.state, "running") != 0)
        return prun__err_set(
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
