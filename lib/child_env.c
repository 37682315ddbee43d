/* SPDX-License-Identifier: MIT */
/*
 * child_env: what a child finds in its environment. The runner's own
 * environment is filtered once per task (dropping what the child gets
 * anew, so an outer run's PARALLELRUN_* never leaks into an inner run's
 * children); each instance then gets one malloc'd block holding its
 * pointer array and strings. It does not start anything: the executors
 * use it.
 */
#include "child_env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

/* Per-task environment: the runner's, minus names the instance sets. */
struct task_env {
    size_t n;
    char **base;
};

struct prun__envset {
    const struct prun_job *job;
    const char *run_id;
    unsigned jobs; /* the run's concurrency */
    const char *const *extra;
    size_t nextra;
    struct task_env *envs;
};

static const char *const own_vars[] = {"PARALLELRUN_RUN_ID", "PARALLELRUN_TASK",
    "PARALLELRUN_INDEX", "PARALLELRUN_COUNT", "PARALLELRUN_ITEM",
    "PARALLELRUN_ATTEMPT", "PARALLELRUN_SLOT", "PARALLELRUN_CONCURRENCY"};

#define NOWN (sizeof(own_vars) / sizeof(own_vars[0]))

static int env_name_is(const char *entry, const char *name)
{
    size_t n = strlen(name);
    return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* Does the child get a fresh value for environ entry e? */
static int replaced(
    const struct prun__envset *es, const struct prun_task *task, const char *e)
{
    size_t k;

    for (k = 0; k < NOWN; k++)
        if (env_name_is(e, own_vars[k]))
            return 1;
    for (k = 0; k < task->nenv; k++)
        if (env_name_is(e, task->env_keys[k]))
            return 1;
    /* An outer run's segments: their fds do not reach our children. */
    if (strncmp(e, "PARALLELRUN_SEGMENT_", 20) == 0)
        return 1;
    for (k = 0; k < es->nextra; k++) {
        size_t nl = strcspn(es->extra[k], "=");
        if (strncmp(e, es->extra[k], nl + 1) == 0)
            return 1;
    }
    return 0;
}

int prun__envset_new(const struct prun_job *job, const char *run_id,
    unsigned jobs, const char *const *extra, size_t nextra,
    struct prun__envset **out, struct prun_err *err)
{
    struct prun__envset *es;
    size_t t, i, nenv = 0;

    for (char **e = environ; e && *e; e++)
        nenv++;
    es = calloc(1, sizeof(*es));
    if (es == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    es->job = job;
    es->run_id = run_id;
    es->jobs = jobs;
    es->extra = extra;
    es->nextra = nextra;
    es->envs = calloc(job->ntasks, sizeof(*es->envs));
    if (es->envs == NULL)
        goto oom;
    for (t = 0; t < job->ntasks; t++) {
        struct task_env *te = &es->envs[t];

        te->base = calloc(nenv + 1, sizeof(char *));
        if (te->base == NULL)
            goto oom;
        for (i = 0; i < nenv; i++)
            if (!replaced(es, &job->tasks[t], environ[i]))
                te->base[te->n++] = environ[i];
    }
    *out = es;
    return 0;
oom:
    prun__envset_free(es);
    return prun__err_set(err, PRUN_ENOMEM, "out of memory");
}

void prun__envset_free(struct prun__envset *es)
{
    size_t t;

    if (es == NULL)
        return;
    for (t = 0; es->envs && t < es->job->ntasks; t++)
        free(es->envs[t].base);
    free(es->envs);
    free(es);
}

/* Appends "NAME=" + the expansion's bytes + NUL, noting where it starts. */
static int add_own(struct prun_buf *b, size_t *off, const struct prun_ctx *ctx,
    unsigned conc, int which)
{
    *off = b->len;
    switch (which) {
    case 0:
        return prun__buf_printf(b, "PARALLELRUN_TASK=%s", ctx->task);
    case 1:
        return prun__buf_printf(b, "PARALLELRUN_INDEX=%llu", ctx->index);
    case 2:
        if (ctx->count >= 0)
            return prun__buf_printf(b, "PARALLELRUN_COUNT=%lld", ctx->count);
        return prun__buf_adds(b, "PARALLELRUN_COUNT=");
    case 3:
        if (prun__buf_adds(b, "PARALLELRUN_ITEM=") < 0)
            return -1;
        return prun__items_value(ctx->items, ctx->nitems, b);
    case 4:
        return prun__buf_printf(b, "PARALLELRUN_ATTEMPT=%u", ctx->attempt);
    case 5:
        /* The executor slot ({%}): distinct among those running at once. */
        return prun__buf_printf(b, "PARALLELRUN_SLOT=%u", ctx->slot);
    default:
        /* How many of this task run at once: a barrier larger never fills. */
        return prun__buf_printf(b, "PARALLELRUN_CONCURRENCY=%u", conc);
    }
}

char **prun__envset_build(const struct prun__envset *es, size_t task,
    const struct prun_ctx *ctx, const struct prun_segchild *sc)
{
    const struct prun_task *t = &es->job->tasks[task];
    const struct task_env *te = &es->envs[task];
    size_t nseg = sc ? sc->nenv : 0;
    size_t nown = NOWN + t->nenv + es->nextra + nseg, i, k = 0;
    struct prun_buf b = {0};
    unsigned conc = t->jobs && t->jobs < es->jobs ? t->jobs : es->jobs;
    size_t *offs = NULL;
    char **envp = NULL, *strings;
    int ok = 1;

    offs = calloc(nown, sizeof(size_t));
    if (offs == NULL)
        return NULL;
    offs[k++] = b.len;
    ok &= prun__buf_printf(&b, "PARALLELRUN_RUN_ID=%s", es->run_id) == 0;
    ok &= prun__buf_addc(&b, '\0') == 0;
    for (i = 0; i < NOWN - 1; i++) {
        ok &= add_own(&b, &offs[k++], ctx, conc, (int)i) == 0;
        ok &= prun__buf_addc(&b, '\0') == 0;
    }
    for (i = 0; i < t->nenv; i++) {
        offs[k++] = b.len;
        ok &= prun__buf_printf(&b, "%s=", t->env_keys[i]) == 0;
        ok &= prun__tpl_expand(&t->env_vals[i], ctx, 0, &b) == 0;
        ok &= prun__buf_addc(&b, '\0') == 0;
    }
    for (i = 0; i < es->nextra; i++) {
        offs[k++] = b.len;
        ok &= prun__buf_adds(&b, es->extra[i]) == 0;
        ok &= prun__buf_addc(&b, '\0') == 0;
    }
    for (i = 0; i < nseg; i++) {
        offs[k++] = b.len;
        ok &= prun__buf_adds(&b, sc->env[i]) == 0;
        ok &= prun__buf_addc(&b, '\0') == 0;
    }
    if (!ok)
        goto out;
    envp = malloc((te->n + nown + 1) * sizeof(char *) + b.len);
    if (envp == NULL)
        goto out;
    strings = (char *)(envp + te->n + nown + 1);
    memcpy(strings, b.data, b.len);
    memcpy(envp, te->base, te->n * sizeof(char *));
    for (i = 0; i < nown; i++)
        envp[te->n + i] = strings + offs[i];
    envp[te->n + nown] = NULL;
out:
    free(offs);
    prun__buf_free(&b);
    return envp;
}
