/* SPDX-License-Identifier: MIT */
/*
 * jobfile_task: one task of a job file, and the defaults its keys fall
 * back on. Each key is typed strictly (run as a list or a shell string,
 * env, cwd, foreach, jobs, rate, timeouts, retries, pool) and its
 * templates compiled against the keys its foreach source gives; needs and
 * segments are only checked to be names here. It is not the top level of
 * the file or the resolution of those names to tasks and segments
 * (jobfile.c), nor the foreach or segment schemas (jobfile_foreach.c,
 * jobfile_segments.c).
 */
#include "jobfile_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Checks an env mapping: valid names, scalar values. */
static int check_env(
    struct ld *ld, const struct ynode *k, const struct ynode *v)
{
    const char *s = NULL;
    size_t i;
    int rc;

    if ((rc = prun__jf_want_map(ld, k, v, "'env'")) < 0)
        return rc;
    for (i = 0; i < v->n; i += 2) {
        if ((rc = prun__jf_check_name(
                 ld, v->kids[i], NAME_ENV, "environment variable name")) < 0 ||
            (rc = prun__jf_get_scalar(
                 ld, v->kids[i], v->kids[i + 1], "a string", &s)) < 0)
            return rc;
    }
    return 0;
}

static int load_env(struct ld *ld, struct prun_task *t, const struct ynode *te,
    const struct dflt *d, const char *const *keys, size_t nkeys)
{
    struct prun_arena *a = ld->job->arena;
    size_t n = 0, i, cap = (te ? te->n / 2 : 0) + (d->env ? d->env->n / 2 : 0);
    int rc;

    if (cap == 0)
        return 0;
    t->env_keys = prun__arena_alloc(a, cap * sizeof(*t->env_keys));
    t->env_vals = prun__arena_alloc(a, cap * sizeof(*t->env_vals));
    if (t->env_keys == NULL || t->env_vals == NULL)
        return prun__ld_nomem(ld);
    /* Defaults first in their order, each overridden by the task's value. */
    for (i = 0; d->env != NULL && i < d->env->n; i += 2) {
        const struct ynode *val = d->env->kids[i + 1], *tv;
        if (te != NULL &&
            (tv = prun__jf_map_get(te, d->env->kids[i]->str, NULL)))
            val = tv;
        t->env_keys[n] = d->env->kids[i]->str;
        if ((rc = prun__jf_compile(ld, &t->env_vals[n++], val, keys, nkeys)) <
            0)
            return rc;
    }
    for (i = 0; te != NULL && i < te->n; i += 2) {
        if (d->env != NULL && prun__jf_map_get(d->env, te->kids[i]->str, NULL))
            continue;
        t->env_keys[n] = te->kids[i]->str;
        if ((rc = prun__jf_compile(
                 ld, &t->env_vals[n++], te->kids[i + 1], keys, nkeys)) < 0)
            return rc;
    }
    for (i = 0; i < n; i++)
        if ((t->env_keys[i] = prun__arena_strdup(a, t->env_keys[i])) == NULL)
            return prun__ld_nomem(ld);
    t->nenv = n;
    return 0;
}

static int load_run(struct ld *ld, struct prun_task *t, const struct ynode *k,
    const struct ynode *v, const char *const *keys, size_t nkeys)
{
    char b[64];
    size_t i;
    int rc;

    if (prun__jf_is_null(v))
        return prun__ld_fail(ld, k, "missing value for 'run'");
    if (v->type == Y_SCALAR) {
        if ((rc = prun__jf_want_command(ld, v, "'run'")) < 0)
            return rc;
        if (v->str[0] == '\0')
            return prun__ld_fail(ld, v, "'run' must not be empty");
        t->shell = 1;
        t->argc = 1;
        t->argv = prun__arena_alloc(ld->job->arena, sizeof(*t->argv));
        if (t->argv == NULL)
            return prun__ld_nomem(ld);
        if ((rc = prun__jf_compile_shell(ld, &t->argv[0], v, keys, nkeys)) < 0)
            return rc;
        if (t->argv[0].blank)
            return prun__ld_fail(ld, v,
                "'run' is empty once {vars.} are substituted; it must name "
                "a command");
        return 0;
    }
    if (v->type != Y_SEQ)
        return prun__ld_fail(ld, v,
            "'run' must be a string or a sequence of strings, got a mapping");
    if (v->n == 0)
        return prun__ld_fail(ld, v, "'run' must not be an empty sequence");
    t->argc = v->n;
    t->argv = prun__arena_alloc(ld->job->arena, v->n * sizeof(*t->argv));
    if (t->argv == NULL)
        return prun__ld_nomem(ld);
    for (i = 0; i < v->n; i++) {
        const struct ynode *e = v->kids[i];
        if (prun__jf_is_null(e))
            return prun__ld_fail(ld, e, "missing value in 'run'");
        if (e->type != Y_SCALAR)
            return prun__ld_fail(ld, e,
                "'run' elements must be strings, got %s",
                prun__jf_got(e, b, sizeof(b)));
        if ((rc = i == 0
                      ? prun__jf_want_command(
                            ld, e, "the command ('run' element 1)")
                      : prun__jf_text_ok(ld, e, NULL, "a 'run' element")) < 0)
            return rc;
        if ((rc = prun__jf_compile(ld, &t->argv[i], e, keys, nkeys)) < 0)
            return rc;
        if (i == 0 && t->argv[0].empty)
            return prun__ld_fail(ld, e,
                "the command (first element of 'run') is empty%s",
                strchr(e->str, '{') != NULL ? " once {vars.} are substituted"
                                            : "");
    }
    return 0;
}

/* needs and segments: a name or a sequence of names, checked later. */
static int check_names_ref(
    struct ld *ld, const struct ynode *k, const struct ynode *v)
{
    char b[64];
    size_t i;
    int rc;

    if (prun__jf_is_null(v))
        return prun__ld_fail(ld, k, "missing value for '%s'", k->str);
    if (v->type == Y_SCALAR)
        return prun__jf_text_ok(ld, v, k->str, NULL);
    if (v->type != Y_SEQ)
        return prun__ld_fail(ld, v,
            "'%s' must be a name or a sequence of names, got %s", k->str,
            prun__jf_got(v, b, sizeof(b)));
    for (i = 0; i < v->n; i++) {
        if (prun__jf_is_null(v->kids[i]))
            return prun__ld_fail(
                ld, v->kids[i], "missing value in '%s'", k->str);
        if (v->kids[i]->type != Y_SCALAR)
            return prun__ld_fail(ld, v->kids[i], "'%s' must list names, got %s",
                k->str, prun__jf_got(v->kids[i], b, sizeof(b)));
        if ((rc = prun__jf_text_ok(ld, v->kids[i], k->str, NULL)) < 0)
            return rc;
    }
    return 0;
}

static const char *const task_keys[] = {"run", "env", "cwd", "foreach", "jobs",
    "rate", "needs", "segments", "timeout", "kill_grace", "retries",
    "retry_delay", "pool"};
#define NTASK_KEYS (sizeof(task_keys) / sizeof(task_keys[0]))

/*
 * cwd (k: v, or NULL for none) or else the defaults' (dv, or NULL): a
 * template that must not expand to nothing.
 */
static int load_cwd(struct ld *ld, struct prun_task *t, const struct ynode *k,
    const struct ynode *v, const struct ynode *dv, const char *const *keys,
    size_t nkeys)
{
    const struct ynode *cv = v ? v : dv;
    const char *s = NULL;
    int rc;

    if (cv == NULL)
        return 0;
    if (v != NULL && (rc = prun__jf_get_scalar(ld, k, v, "a string", &s)) < 0)
        return rc;
    t->cwd = prun__arena_alloc(ld->job->arena, sizeof(*t->cwd));
    if (t->cwd == NULL)
        return prun__ld_nomem(ld);
    if ((rc = prun__jf_compile(ld, t->cwd, cv, keys, nkeys)) < 0)
        return rc;
    if (t->cwd->empty)
        return prun__ld_fail(ld, cv, "'cwd' must not be empty%s",
            strchr(cv->str, '{') != NULL
                ? " (it is, once {vars.} are substituted)"
                : "");
    return 0;
}

/* jobs and rate (k[0], v[0] and k[1], v[1]; v NULL when absent). */
static int load_pace(struct ld *ld, struct prun_task *t,
    const struct ynode *const *k, const struct ynode *const *v)
{
    const char *s = NULL;
    struct prun_err e;
    int rc;

    if (v[0] != NULL &&
        (rc = prun__jf_get_uint(ld, k[0], v[0], 1, 100000, &t->jobs)) < 0)
        return rc;
    if (v[1] == NULL)
        return 0;
    if ((rc = prun__jf_get_scalar(ld, k[1], v[1], "a rate", &s)) < 0)
        return rc;
    if (prun__parse_rate(s, &t->rate, &e) < 0)
        return prun__ld_fail(ld, v[1], "'rate': %s", e.msg);
    return 0;
}

/*
 * timeout, kill_grace, retries, retry_delay and pool (k[0..5), v[0..5),
 * in that order; v NULL when absent).
 */
static int load_attempts(struct ld *ld, struct prun_task *t,
    const struct ynode *const *k, const struct ynode *const *v)
{
    int rc = 0;

    if ((v[0] != NULL &&
            (rc = prun__jf_get_duration(ld, k[0], v[0], &t->timeout_ms)) < 0) ||
        (v[1] != NULL && (rc = prun__jf_get_duration(
                              ld, k[1], v[1], &t->kill_grace_ms)) < 0) ||
        (v[2] != NULL && (rc = prun__jf_get_uint(
                              ld, k[2], v[2], 0, 1000, &t->retries)) < 0) ||
        (v[3] != NULL && (rc = prun__jf_get_duration(
                              ld, k[3], v[3], &t->retry_delay_ms)) < 0) ||
        (v[4] != NULL &&
            (rc = prun__jf_get_bool(ld, k[4], v[4], &t->pool)) < 0))
        return rc;
    return 0;
}

int prun__jf_load_task(struct ld *ld, struct prun_task *t, struct tdef *td,
    const struct ynode *k, const struct ynode *v, const struct dflt *d)
{
    const struct ynode *slot[NTASK_KEYS] = {0}, *kslot[NTASK_KEYS] = {0};
    const char *const *keys = NULL;
    size_t nkeys = 0, i, j;
    char where[96], b[64];
    int rc;

    if ((rc = prun__jf_check_name(ld, k, NAME_TASK, "task name")) < 0)
        return rc;
    if ((t->name = prun__arena_strdup(ld->job->arena, k->str)) == NULL)
        return prun__ld_nomem(ld);
    t->pos = prun__jf_pos_of(k);
    t->timeout_ms = d->timeout_ms;
    t->kill_grace_ms = d->kill_grace_ms;
    t->retries = d->retries;
    t->retry_delay_ms = d->retry_delay_ms;
    t->foreach.kind = PRUN_SRC_NONE;
    t->foreach.chunk = 1;
    t->foreach.pos = t->pos;
    if (prun__jf_is_null(v))
        return prun__ld_fail(ld, k, "missing value for task '%s'", t->name);
    if (v->type != Y_MAP)
        return prun__ld_fail(ld, v, "task '%s' must be a mapping, got %s",
            t->name, prun__jf_got(v, b, sizeof(b)));
    snprintf(where, sizeof(where), " in task '%s'", t->name);
    if ((rc = prun__jf_check_keys(ld, v, task_keys, NTASK_KEYS, where)) < 0)
        return rc;
    for (i = 0; i < v->n; i += 2)
        for (j = 0; j < NTASK_KEYS; j++)
            if (strcmp(v->kids[i]->str, task_keys[j]) == 0) {
                kslot[j] = v->kids[i];
                slot[j] = v->kids[i + 1];
            }

    /* The foreach source decides which {item.KEY} the templates may use. */
    if (slot[3] != NULL && (rc = prun__jf_load_foreach(
                                ld, t, kslot[3], slot[3], &keys, &nkeys)) < 0)
        return rc;
    if (slot[0] == NULL)
        return prun__ld_fail(
            ld, k, "missing required key 'run' in task '%s'", t->name);
    if ((rc = load_run(ld, t, kslot[0], slot[0], keys, nkeys)) < 0)
        return rc;
    if (slot[1] != NULL && (rc = check_env(ld, kslot[1], slot[1])) < 0)
        return rc;
    if ((rc = load_env(ld, t, slot[1], d, keys, nkeys)) < 0)
        return rc;
    if ((rc = load_cwd(ld, t, kslot[2], slot[2], d->cwd, keys, nkeys)) < 0 ||
        (rc = load_pace(ld, t, kslot + 4, slot + 4)) < 0)
        return rc;
    if (slot[6] != NULL && (rc = check_names_ref(ld, kslot[6], slot[6])) < 0)
        return rc;
    td->needs = slot[6];
    if (slot[7] != NULL && (rc = check_names_ref(ld, kslot[7], slot[7])) < 0)
        return rc;
    td->segs = slot[7];
    return load_attempts(ld, t, kslot + 8, slot + 8);
}

static const char *const defaults_keys[] = {
    "timeout", "kill_grace", "retries", "retry_delay", "env", "cwd"};

int prun__jf_load_defaults(
    struct ld *ld, const struct ynode *k, const struct ynode *v, struct dflt *d)
{
    const char *s = NULL;
    size_t i;
    int rc = 0;

    if ((rc = prun__jf_want_map(ld, k, v, "'defaults'")) < 0 ||
        (rc = prun__jf_check_keys(ld, v, defaults_keys, 6, " in 'defaults'")) <
            0)
        return rc;
    for (i = 0; i < v->n && rc == 0; i += 2) {
        const struct ynode *dk = v->kids[i], *dv = v->kids[i + 1];
        if (strcmp(dk->str, "timeout") == 0)
            rc = prun__jf_get_duration(ld, dk, dv, &d->timeout_ms);
        else if (strcmp(dk->str, "kill_grace") == 0)
            rc = prun__jf_get_duration(ld, dk, dv, &d->kill_grace_ms);
        else if (strcmp(dk->str, "retries") == 0)
            rc = prun__jf_get_uint(ld, dk, dv, 0, 1000, &d->retries);
        else if (strcmp(dk->str, "retry_delay") == 0)
            rc = prun__jf_get_duration(ld, dk, dv, &d->retry_delay_ms);
        else if (strcmp(dk->str, "env") == 0) {
            rc = check_env(ld, dk, dv);
            d->env = dv;
        } else {
            rc = prun__jf_get_scalar(ld, dk, dv, "a string", &s);
            d->cwd = dv;
        }
    }
    return rc;
}
