/* SPDX-License-Identifier: MIT */
/*
 * jobfile: the loader's second half and its entry points. It reads a job
 * file (described in README, "A job file"), has
 * yamltree.c parse it into a tree of positioned nodes, and converts that
 * tree into a struct prun_job with strict checks (the schema), so that
 * every mistake is reported as "FILE:LINE:COL: message" before anything
 * starts. It does not run, expand or iterate anything: templates are
 * compiled by job.c, foreach sources are read later by the iterators.
 */
#include "jobfile_int.h"

#include "halt.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Loader-side facts about a task, resolved after all tasks are known. */
struct tdef {
    const struct ynode *needs;
    const struct ynode *segs;
};

struct dflt {
    int64_t timeout_ms, kill_grace_ms, retry_delay_ms;
    unsigned retries;
    const struct ynode *env; /* mapping, checked, or NULL */
    const struct ynode *cwd; /* scalar, checked, or NULL */
};

/* ---- env, defaults, tasks ---- */

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

static int load_task(struct ld *ld, struct prun_task *t, struct tdef *td,
    const struct ynode *k, const struct ynode *v, const struct dflt *d)
{
    const struct ynode *slot[NTASK_KEYS] = {0}, *kslot[NTASK_KEYS] = {0};
    const char *const *keys = NULL;
    const char *s = NULL;
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
    if (slot[2] != NULL || d->cwd != NULL) {
        const struct ynode *cv = slot[2] ? slot[2] : d->cwd;
        if (slot[2] != NULL && (rc = prun__jf_get_scalar(
                                    ld, kslot[2], slot[2], "a string", &s)) < 0)
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
    }
    if (slot[4] != NULL && (rc = prun__jf_get_uint(ld, kslot[4], slot[4], 1,
                                100000, &t->jobs)) < 0)
        return rc;
    if (slot[5] != NULL) {
        struct prun_err e;
        if ((rc = prun__jf_get_scalar(ld, kslot[5], slot[5], "a rate", &s)) < 0)
            return rc;
        if (prun__parse_rate(s, &t->rate, &e) < 0)
            return prun__ld_fail(ld, slot[5], "'rate': %s", e.msg);
    }
    if (slot[6] != NULL && (rc = check_names_ref(ld, kslot[6], slot[6])) < 0)
        return rc;
    td->needs = slot[6];
    if (slot[7] != NULL && (rc = check_names_ref(ld, kslot[7], slot[7])) < 0)
        return rc;
    td->segs = slot[7];
    if ((slot[8] != NULL && (rc = prun__jf_get_duration(
                                 ld, kslot[8], slot[8], &t->timeout_ms)) < 0) ||
        (slot[9] != NULL && (rc = prun__jf_get_duration(ld, kslot[9], slot[9],
                                 &t->kill_grace_ms)) < 0) ||
        (slot[10] != NULL && (rc = prun__jf_get_uint(ld, kslot[10], slot[10], 0,
                                  1000, &t->retries)) < 0) ||
        (slot[11] != NULL && (rc = prun__jf_get_duration(ld, kslot[11],
                                  slot[11], &t->retry_delay_ms)) < 0) ||
        (slot[12] != NULL &&
            (rc = prun__jf_get_bool(ld, kslot[12], slot[12], &t->pool)) < 0))
        return rc;
    return 0;
}

static const char *const defaults_keys[] = {
    "timeout", "kill_grace", "retries", "retry_delay", "env", "cwd"};

static int load_defaults(
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

/* ---- top level ---- */

static int load_vars(struct ld *ld, const struct ynode *k,
    const struct ynode *v, const struct prun_set *sets, size_t nsets)
{
    struct prun_job *job = ld->job;
    struct prun_arena *a = job->arena;
    size_t n = 0, i, j, cap = (v ? v->n / 2 : 0) + nsets;
    const char *s = NULL;
    int rc;

    if (v != NULL && (rc = prun__jf_want_map(ld, k, v, "'vars'")) < 0)
        return rc;
    if (cap == 0)
        return 0;
    job->var_keys = prun__arena_alloc(a, cap * sizeof(*job->var_keys));
    job->var_vals = prun__arena_alloc(a, cap * sizeof(*job->var_vals));
    if (job->var_keys == NULL || job->var_vals == NULL)
        return prun__ld_nomem(ld);
    for (i = 0; v != NULL && i < v->n; i += 2) {
        if ((rc = prun__jf_check_name(
                 ld, v->kids[i], NAME_KEY, "variable name")) < 0 ||
            (rc = prun__jf_get_scalar(
                 ld, v->kids[i], v->kids[i + 1], "a string", &s)) < 0)
            return rc;
        job->var_keys[n] = prun__arena_strdup(a, v->kids[i]->str);
        job->var_vals[n] = prun__arena_strdup(a, s);
        if (job->var_keys[n++] == NULL || job->var_vals[n - 1] == NULL)
            return prun__ld_nomem(ld);
    }
    /*
     * --set wins over the file, but only for variables the file declares:
     * a misspelt name must not be silently ignored, as for unknown keys.
     */
    for (i = 0; i < nsets; i++) {
        const char *sugg;

        if (sets[i].name == NULL || !prun__jf_name_ok(sets[i].name, NAME_KEY))
            return prun__err_set(ld->err, PRUN_EINVAL,
                "--set: invalid variable name '%.64s' (use letters, digits, "
                "'_' and '-', starting with a letter or '_')",
                sets[i].name ? sets[i].name : "");
        for (j = 0; j < n; j++)
            if (strcmp(job->var_keys[j], sets[i].name) == 0)
                break;
        if (j == n) {
            sugg = prun__closest(
                sets[i].name, (const char *const *)job->var_keys, n);
            if (sugg != NULL)
                return prun__err_set(ld->err, PRUN_EINVAL,
                    "--set %.64s: %s declares no such variable (did you "
                    "mean '%s'?)",
                    sets[i].name, ld->path, sugg);
            return prun__err_set(ld->err, PRUN_EINVAL,
                "--set %.64s: %s declares no such variable (%s)", sets[i].name,
                ld->path,
                n == 0 ? "it has no 'vars:'" : "declare it under 'vars:'");
        }
        job->var_vals[j] =
            prun__arena_strdup(a, sets[i].value ? sets[i].value : "");
        if (job->var_vals[j] == NULL)
            return prun__ld_nomem(ld);
    }
    job->nvars = n;
    return 0;
}

/* The file's base name without extension, made into a valid job name. */
static const char *default_name(struct ld *ld)
{
    const char *base = strrchr(ld->path, '/'), *dot;
    char buf[65];
    size_t n = 0, len;

    base = base ? base + 1 : ld->path;
    dot = strrchr(base, '.');
    len = dot != NULL && dot != base ? (size_t)(dot - base) : strlen(base);
    for (; len > 0 && n < 64; base++, len--) {
        unsigned char c = (unsigned char)*base;
        if (n == 0 && !isalnum(c))
            continue;
        if (!isalnum(c) && c != '_' && c != '-' &&
            (c != '.' || buf[n - 1] == '.'))
            c = '-';
        buf[n++] = (char)c;
    }
    buf[n] = '\0';
    return prun__arena_strdup(ld->job->arena, n > 0 ? buf : "job");
}

static int resolve_refs(
    struct ld *ld, struct tdef *tds, const struct ynode *segs)
{
    struct prun_job *job = ld->job;
    struct smap names = {0};
    const char **cands = NULL;
    size_t i, j, m, q, *idx = NULL;
    int rc = 0;

    idx = malloc((job->ntasks ? job->ntasks : 1) * sizeof(*idx));
    cands = malloc((job->ntasks ? job->ntasks : 1) * sizeof(*cands));
    if (idx == NULL || cands == NULL) {
        rc = prun__ld_nomem(ld);
        goto fail;
    }
    for (i = 0; i < job->ntasks; i++) {
        idx[i] = i;
        cands[i] = job->tasks[i].name;
        if (prun__smap_set(&names, job->tasks[i].name, &idx[i]) < 0) {
            rc = prun__ld_nomem(ld);
            goto fail;
        }
    }
    for (i = 0; i < job->ntasks; i++) {
        struct prun_task *t = &job->tasks[i];
        const struct ynode *v = tds[i].needs;
        size_t n = v == NULL ? 0 : v->type == Y_SEQ ? v->n : 1;

        if (n > 0 && (t->needs = prun__arena_alloc(
                          job->arena, n * sizeof(*t->needs))) == NULL) {
            rc = prun__ld_nomem(ld);
            goto fail;
        }
        for (j = 0; j < n; j++) {
            const struct ynode *e = v->type == Y_SEQ ? v->kids[j] : v;
            const size_t *p = prun__smap_get(&names, e->str);
            const char *sugg;
            if (p == NULL) {
                sugg = prun__closest(e->str, cands, job->ntasks);
                rc = prun__ld_fail(ld, e,
                    "task '%s' needs '%.64s', which is not defined%s%s%s",
                    t->name, e->str, sugg ? " (did you mean '" : "",
                    sugg ? sugg : "", sugg ? "'?)" : "");
                goto fail;
            }
            if (*p == i) {
                rc = prun__ld_fail(ld, e, "task '%s' needs itself", t->name);
                goto fail;
            }
            for (m = 0; m < t->nneeds && t->needs[m] != *p; m++)
                ;
            if (m == t->nneeds)
                t->needs[t->nneeds++] = *p;
        }
    }
    for (i = 0; i < job->ntasks; i++) {
        struct prun_task *t = &job->tasks[i];
        const struct ynode *v = tds[i].segs;
        size_t n = v == NULL ? 0 : v->type == Y_SEQ ? v->n : 1;

        if (n > 0 && (t->segs = prun__arena_alloc(
                          job->arena, n * sizeof(*t->segs))) == NULL) {
            rc = prun__ld_nomem(ld);
            goto fail;
        }
        for (j = 0; j < n; j++) {
            const struct ynode *e = v->type == Y_SEQ ? v->kids[j] : v;
            const char *seg_names[64], *sugg;
            for (m = 0; m < job->nsegs; m++)
                if (strcmp(job->segs[m].name, e->str) == 0)
                    break;
            if (m == job->nsegs) {
                size_t nc = job->nsegs < 64 ? job->nsegs : 64;
                for (m = 0; m < nc; m++)
                    seg_names[m] = job->segs[m].name;
                sugg = prun__closest(e->str, seg_names, nc);
                rc = prun__ld_fail(ld, e,
                    "task '%s' uses segment '%.64s', which is not "
                    "defined%s%s%s",
                    t->name, e->str,
                    sugg   ? " (did you mean '"
                    : segs ? ""
                           : " (no 'segments:')",
                    sugg ? sugg : "", sugg ? "'?)" : "");
                goto fail;
            }
            for (q = 0; q < t->nsegs && t->segs[q] != m; q++)
                ;
            if (q == t->nsegs)
                t->segs[t->nsegs++] = m;
        }
    }
fail:
    prun__smap_free(&names);
    free(idx);
    free(cands);
    return rc;
}

static const char *const top_keys[] = {"version", "name", "jobs", "vars",
    "lock", "halt", "max_failures", "segments", "defaults", "tasks"};
#define NTOP_KEYS (sizeof(top_keys) / sizeof(top_keys[0]))

static int convert(struct ld *ld, const struct prun_set *sets, size_t nsets)
{
    const struct ynode *root = ld->root, *slot[NTOP_KEYS] = {0},
                       *kslot[NTOP_KEYS] = {0};
    struct prun_job *job = ld->job;
    struct dflt d = {0, -1, 1000, 0, NULL, NULL};
    struct tdef *tds = NULL;
    const char *s = NULL, *hs = NULL;
    struct prun_err e;
    size_t i, j;
    char b[64];
    int rc;

    if (root == NULL || prun__jf_is_null(root))
        return prun__ld_fail_at(ld, 1, 1, "empty job file");
    if (root->type != Y_MAP)
        return prun__ld_fail(ld, root,
            "the job file must be a mapping (got %s)",
            root->type == Y_SEQ ? "a sequence" : "a string");
    if ((rc = prun__jf_check_keys(ld, root, top_keys, NTOP_KEYS, "")) < 0)
        return rc;
    for (i = 0; i < root->n; i += 2)
        for (j = 0; j < NTOP_KEYS; j++)
            if (strcmp(root->kids[i]->str, top_keys[j]) == 0) {
                kslot[j] = root->kids[i];
                slot[j] = root->kids[i + 1];
            }
    if (slot[9] == NULL)
        return prun__ld_fail_at(ld, 1, 1, "missing required key 'tasks'");

    if (slot[0] != NULL) {
        if ((rc = prun__jf_get_any_scalar(
                 ld, kslot[0], slot[0], "an integer", &s)) < 0)
            return rc;
        if (strcmp(s, "1") != 0 || prun__jf_scalar_type(slot[0]) != S_INT)
            return prun__ld_fail(ld, slot[0], "'version' must be 1, got %s",
                prun__jf_got(slot[0], b, sizeof(b)));
    }
    if (slot[1] != NULL) {
        if ((rc = prun__jf_get_scalar(ld, kslot[1], slot[1], "a string", &s)) <
                0 ||
            (rc = prun__jf_check_name(ld, slot[1], NAME_TASK, "job name")) < 0)
            return rc;
        job->name = prun__arena_strdup(job->arena, s);
    } else {
        job->name = default_name(ld);
    }
    if (job->name == NULL)
        return prun__ld_nomem(ld);
    if (slot[2] != NULL && (rc = prun__jf_get_uint(ld, kslot[2], slot[2], 1,
                                100000, &job->jobs)) < 0)
        return rc;
    if ((rc = load_vars(ld, kslot[3], slot[3], sets, nsets)) < 0)
        return rc;
    if (slot[4] != NULL &&
        (rc = prun__jf_get_bool(ld, kslot[4], slot[4], &job->lock)) < 0)
        return rc;
    if (slot[5] != NULL) {
        if ((rc = prun__jf_get_scalar(ld, kslot[5], slot[5],
                 "never, soon or now (with ',fail=N')", &hs)) < 0)
            return rc;
        if (prun__halt_parse(job, hs, &e) < 0)
            return prun__ld_fail(ld, slot[5], "'halt': %s", e.msg);
    } else
        job->max_failures = 1;
    if (slot[6] != NULL) {
        if (hs != NULL && strchr(hs, ',') != NULL)
            return prun__ld_fail(ld, kslot[6],
                "'max_failures' and a condition in 'halt' (%s): give one", hs);
        job->halt_on = PRUN_HALT_ON_FAIL;
        job->halt_pct = 0;
        if ((rc = prun__jf_get_uint(
                 ld, kslot[6], slot[6], 1, INT_MAX, &job->max_failures)) < 0)
            return rc;
    }
    if (slot[7] != NULL) {
        const struct ynode *v = slot[7];
        if ((rc = prun__jf_want_map(ld, kslot[7], v, "'segments'")) < 0)
            return rc;
        job->nsegs = v->n / 2;
        job->segs = prun__arena_alloc(
            job->arena, (job->nsegs ? job->nsegs : 1) * sizeof(*job->segs));
        if (job->segs == NULL)
            return prun__ld_nomem(ld);
        for (i = 0; i < job->nsegs; i++)
            if ((rc = prun__jf_load_segment(ld, &job->segs[i], v->kids[2 * i],
                     v->kids[2 * i + 1])) < 0 ||
                (rc = prun__jf_check_seg_name(ld, job, i, v->kids[2 * i])) < 0)
                return rc;
    }
    if (slot[8] != NULL && (rc = load_defaults(ld, kslot[8], slot[8], &d)) < 0)
        return rc;

    if ((rc = prun__jf_want_map(ld, kslot[9], slot[9], "'tasks'")) < 0)
        return rc;
    if (slot[9]->n == 0)
        return prun__ld_fail(ld, slot[9], "'tasks' must not be empty");
    job->ntasks = slot[9]->n / 2;
    job->tasks =
        prun__arena_alloc(job->arena, job->ntasks * sizeof(*job->tasks));
    tds = calloc(job->ntasks, sizeof(*tds));
    if (job->tasks == NULL || tds == NULL) {
        rc = prun__ld_nomem(ld);
        goto fail;
    }
    for (i = 0; i < job->ntasks; i++)
        if ((rc = load_task(ld, &job->tasks[i], &tds[i], slot[9]->kids[2 * i],
                 slot[9]->kids[2 * i + 1], &d)) < 0)
            goto fail;
    if ((rc = resolve_refs(ld, tds, slot[7])) < 0)
        goto fail;
    rc = prun__job_check(job, ld->err);
fail:
    free(tds);
    return rc;
}

int prun__jobfile_load_mem(const char *name, const char *buf, size_t len,
    const struct prun_set *sets, size_t nsets, struct prun_job **out,
    struct prun_err *err)
{
    struct ld ld;
    struct prun_arena *a = NULL;
    int rc;

    memset(&ld, 0, sizeof(ld));
    ld.path = name;
    ld.err = err;
    if (len > MAX_FILE)
        return prun__ld_fail_at(&ld, 1, 1, "job file is larger than 16 MiB");
    a = prun__arena_new();
    ld.tmp = prun__arena_new();
    if (a == NULL || ld.tmp == NULL ||
        (ld.job = prun__arena_alloc(a, sizeof(*ld.job))) == NULL) {
        rc = prun__ld_nomem(&ld);
        goto fail;
    }
    ld.job->arena = a;
    if ((ld.job->path = prun__arena_strdup(a, name)) == NULL) {
        rc = prun__ld_nomem(&ld);
        goto fail;
    }
    if ((rc = prun__yaml_parse(&ld, buf, len)) < 0 ||
        (rc = convert(&ld, sets, nsets)) < 0)
        goto fail;
    *out = ld.job;
    a = NULL;
fail:
    prun__smap_free(&ld.anchors);
    prun__arena_free(ld.tmp);
    prun__arena_free(a);
    return rc;
}

/* "cannot read 'path': reason" as PRUN_EINVAL, from errno. */
static int bad_input_sys(struct prun_err *err, const char *path)
{
    prun__err_sys(err, "cannot read '%s'", path);
    if (err != NULL)
        err->code = PRUN_EINVAL;
    return PRUN_EINVAL;
}

int prun__jobfile_load(const char *path, const struct prun_set *sets,
    size_t nsets, struct prun_job **out, struct prun_err *err)
{
    struct prun_buf b = {0};
    char chunk[65536];
    struct stat st;
    ssize_t r;
    int fd = -1, rc;

    if (strcmp(path, "-") == 0)
        return prun__err_set(err, PRUN_EINVAL,
            "the job file cannot be read from stdin ('-'): stdin may be a "
            "foreach source");
    /*
     * A job file that is missing or unreadable is bad input like a
     * malformed one (exit 2), not a failure of the system.
     */
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = bad_input_sys(err, path);
        goto fail;
    }
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        (uint64_t)st.st_size > MAX_FILE) {
        rc = prun__err_set(
            err, PRUN_EINVAL, "%s:1:1: job file is larger than 16 MiB", path);
        goto fail;
    }
    /* Read in pieces, not by st_size: the path may be a pipe or /dev/fd. */
    for (;;) {
        r = read(fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = bad_input_sys(err, path);
            goto fail;
        }
        if (r == 0)
            break;
        if (b.len + (size_t)r > MAX_FILE) {
            rc = prun__err_set(err, PRUN_EINVAL,
                "%s:1:1: job file is larger than 16 MiB", path);
            goto fail;
        }
        if (prun__buf_add(&b, chunk, (size_t)r) < 0) {
            rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
            goto fail;
        }
    }
    rc = prun__jobfile_load_mem(
        path, b.data ? b.data : "", b.len, sets, nsets, out, err);
fail:
    if (fd >= 0)
        close(fd);
    prun__buf_free(&b);
    return rc;
}
