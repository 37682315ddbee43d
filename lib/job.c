/* SPDX-License-Identifier: MIT */
/*
 * job: the parts of the job model that do not depend on YAML, once its
 * templates are compiled (job_tpl.c): each template expanded for a task
 * instance (values quoted for the shell context the compiler recorded,
 * GNU parallel's {.} {/} {//} transforms), an instance's argv and joblog
 * command line, and the whole-model checks (dependencies, cycles, segment
 * references). It is not the template compiler (job_tpl.c), the loader
 * (jobfile.c builds the model from YAML) or the foreach iterators (iter.c).
 */
#include "job_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The job struct itself may live in its own arena (the loader puts it
 * there) or anywhere else (a model built by hand in a test); either way
 * only the arena is freed, and the arena pointer is read before the free.
 */
void prun__job_free(struct prun_job *job)
{
    if (job == NULL)
        return;
    prun__arena_free(job->arena);
}

/* Appends value v quoted for context q (none: as it is). */
int prun__tpl_add_quoted(struct prun_buf *out, const char *v, enum prun_quote q)
{
    int rc = 0;

    switch (q) {
    case PRUN_Q_NONE:
        return prun__buf_adds(out, v);
    case PRUN_Q_BARE:
        return prun__buf_add_shquoted(out, v);
    case PRUN_Q_SINGLE:
        for (; *v && rc == 0; v++)
            rc = *v == '\'' ? prun__buf_adds(out, "'\\''")
                            : prun__buf_addc(out, *v);
        return rc;
    case PRUN_Q_COMMENT:
        /* Only a newline ends a comment; the rest is never read. */
        for (; *v && rc == 0; v++)
            rc = prun__buf_addc(out, *v == '\n' ? ' ' : *v);
        return rc;
    case PRUN_Q_DOUBLE:
        for (; *v && rc == 0; v++) {
            if (strchr("$`\"\\", *v) != NULL)
                rc = prun__buf_addc(out, '\\');
            if (rc == 0)
                rc = prun__buf_addc(out, *v);
        }
        return rc;
    }
    return 0;
}

static const char *item_get(const struct prun_item *it, const char *key)
{
    size_t i;

    for (i = 0; i < it->nkeys; i++)
        if (strcmp(it->keys[i], key) == 0)
            return it->vals[i];
    return "";
}

/*
 * Appends v transformed by xf (quoted for q) to out, with the results GNU
 * parallel gives: {.} removes a final ".ext" holding no '/', {/} removes
 * everything up to the last '/', {//} is Perl's File::Basename dirname.
 */
static int add_xf(
    struct prun_buf *out, const char *v, enum prun_xf xf, enum prun_quote q)
{
    size_t n = strlen(v), i;
    const char *s = v;
    char *tmp;
    int rc;

    if (xf == PRUN_XF_BASE || xf == PRUN_XF_BASE_NOEXT) {
        const char *sl = strrchr(v, '/');
        if (sl != NULL)
            s = sl + 1;
        n = strlen(s);
    }
    if (xf == PRUN_XF_NOEXT || xf == PRUN_XF_BASE_NOEXT) {
        for (i = n; i > 0 && s[i - 1] != '/' && s[i - 1] != '.'; i--)
            ;
        if (i > 0 && s[i - 1] == '.')
            n = i - 1;
    }
    if (xf == PRUN_XF_DIR) {
        while (n > 1 && v[n - 1] == '/')
            n--;
        if (!(n == 1 && v[0] == '/')) {
            for (i = n; i > 0 && v[i - 1] != '/'; i--)
                ;
            if (i == 0) {
                s = ".";
                n = 1;
            } else {
                n = i - 1;
                while (n > 1 && v[n - 1] == '/')
                    n--;
                if (n == 0) {
                    s = "/";
                    n = 1;
                }
            }
        }
    }
    if (xf == PRUN_XF_NONE || s[n] == '\0')
        return prun__tpl_add_quoted(out, s, q);
    if ((tmp = strndup(s, n)) == NULL)
        return PRUN_ENOMEM;
    rc = prun__tpl_add_quoted(out, tmp, q);
    free(tmp);
    return rc;
}

/* The number of values of an instance (see struct prun_tpl_part). */
static size_t ctx_nvalues(const struct prun_ctx *ctx)
{
    size_t j, n = 0;

    for (j = 0; j < ctx->nitems; j++)
        n += ctx->items[j].nkeys ? ctx->items[j].nkeys : 1;
    return n;
}

/* Value k (0-based) of an instance, or "" past the last. */
static const char *ctx_value(const struct prun_ctx *ctx, size_t k)
{
    size_t j, m;

    for (j = 0; j < ctx->nitems; j++) {
        m = ctx->items[j].nkeys ? ctx->items[j].nkeys : 1;
        if (k < m)
            return ctx->items[j].nkeys ? ctx->items[j].vals[k]
                                       : ctx->items[j].text;
        k -= m;
    }
    return "";
}

int prun__tpl_expand(const struct prun_tpl *t, const struct prun_ctx *ctx,
    int shell_quote, struct prun_buf *out)
{
    size_t i, j, n;
    int rc = 0;

    /* An empty template still yields a terminated, empty string. */
    if ((rc = prun__buf_reserve(out, 0)) < 0)
        return rc;
    for (i = 0; i < t->nparts && rc == 0; i++) {
        const struct prun_tpl_part *p = &t->parts[i];
        enum prun_quote q = !shell_quote              ? PRUN_Q_NONE
                            : p->quote != PRUN_Q_NONE ? p->quote
                                                      : PRUN_Q_BARE;

        switch (p->kind) {
        case PRUN_PH_LIT:
            rc = prun__buf_add(out, p->text, p->len);
            break;
        case PRUN_PH_ITEM:
        case PRUN_PH_ITEM_KEY:
            if (ctx->nitems == 0)
                rc = prun__tpl_add_quoted(out, "", q);
            for (j = 0; j < ctx->nitems && rc == 0; j++) {
                const char *v = p->kind == PRUN_PH_ITEM
                                    ? ctx->items[j].text
                                    : item_get(&ctx->items[j], p->text);
                if (j > 0)
                    rc = prun__buf_addc(out, ' ');
                if (rc == 0)
                    rc = prun__tpl_add_quoted(out, v, q);
            }
            break;
        case PRUN_PH_INDEX:
            rc = prun__buf_printf(out, "%llu", ctx->index);
            break;
        case PRUN_PH_COUNT:
            if (ctx->count >= 0)
                rc = prun__buf_printf(out, "%lld", ctx->count);
            break;
        case PRUN_PH_TASK:
            rc = prun__tpl_add_quoted(out, ctx->task ? ctx->task : "", q);
            break;
        case PRUN_PH_RUN_ID:
            rc = prun__tpl_add_quoted(out, ctx->run_id ? ctx->run_id : "", q);
            break;
        case PRUN_PH_ATTEMPT:
            rc = prun__buf_printf(out, "%u", ctx->attempt);
            break;
        case PRUN_PH_SEQ:
            rc = prun__buf_printf(out, "%llu", ctx->index + 1);
            break;
        case PRUN_PH_SLOT:
            rc = prun__buf_printf(out, "%u", ctx->slot);
            break;
        case PRUN_PH_ARG:
            if (p->arg > 0) {
                rc = add_xf(out, ctx_value(ctx, p->arg - 1), p->xf, q);
                break;
            }
            n = ctx_nvalues(ctx);
            if (n == 0)
                rc = add_xf(out, "", p->xf, q);
            for (j = 0; j < n && rc == 0; j++) {
                if (j > 0)
                    rc = prun__buf_addc(out, ' ');
                if (rc == 0)
                    rc = add_xf(out, ctx_value(ctx, j), p->xf, q);
            }
            break;
        }
    }
    return rc;
}

/*
 * Appends the elements of an instance's argv to b, each NUL-terminated,
 * and counts them in *n. Shared by prun__task_argv and prun__task_cmdline
 * so that both see exactly the same elements.
 */
static int build_elems(const struct prun_task *t, const struct prun_ctx *ctx,
    struct prun_buf *b, size_t *n)
{
    size_t i, j, nv;
    int rc;

    *n = 0;
    if (t->shell) {
        if ((rc = prun__buf_add(b, "/bin/sh\0-c", 11)) < 0)
            return rc;
        if (t->argc > 0 && (rc = prun__tpl_expand(&t->argv[0], ctx, 1, b)) < 0)
            return rc;
        *n = 3;
        return prun__buf_addc(b, '\0');
    }
    for (i = 0; i < t->argc; i++) {
        const struct prun_tpl *tp = &t->argv[i];

        /* A lone {item} with a chunk is one argument per item, not one. */
        if (tp->nparts == 1 && tp->parts[0].kind == PRUN_PH_ITEM &&
            ctx->nitems > 1) {
            for (j = 0; j < ctx->nitems; j++) {
                rc = prun__buf_add(
                    b, ctx->items[j].text, strlen(ctx->items[j].text) + 1);
                if (rc < 0)
                    return rc;
                (*n)++;
            }
            continue;
        }
        /* A lone {} (or {.}, ...) is one argument per value, as parallel. */
        if (tp->nparts == 1 && tp->parts[0].kind == PRUN_PH_ARG &&
            tp->parts[0].arg == 0 && (nv = ctx_nvalues(ctx)) > 1) {
            for (j = 0; j < nv; j++) {
                if ((rc = add_xf(b, ctx_value(ctx, j), tp->parts[0].xf,
                         PRUN_Q_NONE)) < 0 ||
                    (rc = prun__buf_addc(b, '\0')) < 0)
                    return rc;
                (*n)++;
            }
            continue;
        }
        if ((rc = prun__tpl_expand(tp, ctx, 0, b)) < 0 ||
            (rc = prun__buf_addc(b, '\0')) < 0)
            return rc;
        (*n)++;
    }
    return 0;
}

char **prun__task_argv(const struct prun_task *t, const struct prun_ctx *ctx)
{
    struct prun_buf b = {0};
    char **argv = NULL;
    char *s;
    size_t n, i, head;

    if (build_elems(t, ctx, &b, &n) < 0 || prun__buf_reserve(&b, 0) < 0)
        goto fail;
    head = (n + 1) * sizeof(char *);
    argv = malloc(head + b.len + 1);
    if (argv == NULL)
        goto fail;
    s = (char *)argv + head;
    memcpy(s, b.data, b.len + 1);
    for (i = 0; i < n; i++) {
        argv[i] = s;
        s += strlen(s) + 1;
    }
    argv[n] = NULL;
fail:
    prun__buf_free(&b);
    return argv;
}

int prun__task_cmdline(
    const struct prun_task *t, const struct prun_ctx *ctx, struct prun_buf *out)
{
    struct prun_buf b = {0};
    const char *s;
    size_t n, i;
    int rc;

    if (t->shell)
        return t->argc > 0 ? prun__tpl_expand(&t->argv[0], ctx, 1, out)
                           : prun__buf_reserve(out, 0);
    if ((rc = build_elems(t, ctx, &b, &n)) < 0)
        goto fail;
    if ((rc = prun__buf_reserve(out, 0)) < 0)
        goto fail;
    for (i = 0, s = b.data; i < n && rc == 0; i++, s += strlen(s) + 1) {
        if (i > 0)
            rc = prun__buf_addc(out, ' ');
        if (rc == 0)
            rc = prun__buf_add_shquoted(out, s);
    }
fail:
    prun__buf_free(&b);
    return rc;
}

/*
 * Reports the cycle stack[from..top] starting at its first task in file
 * order, so that the message does not depend on where the search began.
 */
static int report_cycle(const struct prun_job *job, const size_t *stack,
    size_t from, size_t top, struct prun_err *err)
{
    struct prun_buf b = {0};
    size_t len = top - from + 1, start = 0, i;
    struct prun_pos pos;
    int rc;

    for (i = 1; i < len; i++)
        if (stack[from + i] < stack[from + start])
            start = i;
    rc = prun__buf_adds(&b, "dependency cycle: ");
    for (i = 0; i <= len && rc == 0; i++) {
        size_t ti = stack[from + (start + i) % len];
        rc = prun__buf_printf(
            &b, "%s%s", i > 0 ? " -> " : "", job->tasks[ti].name);
    }
    pos = job->tasks[stack[from + start]].pos;
    if (rc < 0)
        rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
    else
        rc = prun__err_set(err, PRUN_EINVAL, "%s:%u:%u: %s",
            job->path ? job->path : "job", pos.line, pos.col, b.data);
    prun__buf_free(&b);
    return rc;
}

/* Every need and segment a task names exists; no task needs itself. */
static int check_refs(const struct prun_job *job, struct prun_err *err)
{
    const char *path = job->path ? job->path : "job";
    size_t i, j;

    for (i = 0; i < job->ntasks; i++) {
        const struct prun_task *t = &job->tasks[i];
        for (j = 0; j < t->nneeds; j++) {
            if (t->needs[j] >= job->ntasks)
                return prun__err_set(err, PRUN_EINVAL,
                    "%s:%u:%u: task '%s' needs task #%zu, which is not "
                    "defined",
                    path, t->pos.line, t->pos.col, t->name, t->needs[j]);
            if (t->needs[j] == i)
                return prun__err_set(err, PRUN_EINVAL,
                    "%s:%u:%u: task '%s' needs itself", path, t->pos.line,
                    t->pos.col, t->name);
        }
        for (j = 0; j < t->nsegs; j++)
            if (t->segs[j] >= job->nsegs)
                return prun__err_set(err, PRUN_EINVAL,
                    "%s:%u:%u: task '%s' uses segment #%zu, which is not "
                    "defined",
                    path, t->pos.line, t->pos.col, t->name, t->segs[j]);
    }
    return 0;
}

/*
 * The needs have no cycle (job->ntasks > 0). An iterative depth-first
 * search: a chain of needs can be as long as the file allows, and
 * recursion that deep would overflow the stack.
 */
static int check_cycles(const struct prun_job *job, struct prun_err *err)
{
    unsigned char *color = NULL; /* 0 new, 1 on the stack, 2 done */
    size_t *stack = NULL, *edge = NULL, *where = NULL;
    size_t i, top;
    int rc = 0;

    color = calloc(job->ntasks, 1);
    stack = malloc(job->ntasks * sizeof(*stack));
    edge = malloc(job->ntasks * sizeof(*edge));
    where = malloc(job->ntasks * sizeof(*where));
    if (color == NULL || stack == NULL || edge == NULL || where == NULL) {
        rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
        goto fail;
    }
    for (i = 0; i < job->ntasks; i++) {
        if (color[i] != 0)
            continue;
        top = 0;
        stack[0] = i;
        edge[0] = 0;
        where[i] = 0;
        color[i] = 1;
        for (;;) {
            size_t u = stack[top];
            const struct prun_task *t = &job->tasks[u];

            if (edge[top] < t->nneeds) {
                size_t v = t->needs[edge[top]++];
                if (color[v] == 1) {
                    rc = report_cycle(job, stack, where[v], top, err);
                    goto fail;
                }
                if (color[v] == 0) {
                    color[v] = 1;
                    top++;
                    stack[top] = v;
                    edge[top] = 0;
                    where[v] = top;
                }
                continue;
            }
            color[u] = 2;
            if (top == 0)
                break;
            top--;
        }
    }
fail:
    free(color);
    free(stack);
    free(edge);
    free(where);
    return rc;
}

int prun__job_check(const struct prun_job *job, struct prun_err *err)
{
    int rc = check_refs(job, err);

    if (rc < 0 || job->ntasks == 0)
        return rc;
    return check_cycles(job, err);
}
