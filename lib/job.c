/* SPDX-License-Identifier: MIT */
/*
 * job: the parts of the job model that do not depend on YAML. It compiles
 * placeholder templates ("{item}", "{vars.NAME}", ...) into parts once, at
 * load time, expands them for each task instance, builds an instance's argv
 * and joblog command line, and runs the whole-model checks (dependencies,
 * cycles, segment references). It is not the loader (jobfile.c builds the
 * model from YAML) and not the foreach iterators (iter.c).
 */
#include "job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The job struct itself may live in its own arena (the loader puts it
 * there) or anywhere else (a model built by hand in a test); either way
 * only the arena is freed, and the arena pointer is read before the free.
 */
void prun_job_free(struct prun_job *job)
{
    if (job == NULL)
        return;
    prun_arena_free(job->arena);
}

/* Placeholders without an argument, in the order of enum prun_ph. */
static const struct {
    const char *name;
    enum prun_ph kind;
} simple_ph[] = {
    {"item", PRUN_PH_ITEM},
    {"index", PRUN_PH_INDEX},
    {"count", PRUN_PH_COUNT},
    {"task", PRUN_PH_TASK},
    {"run_id", PRUN_PH_RUN_ID},
    {"attempt", PRUN_PH_ATTEMPT},
};
#define NSIMPLE (sizeof(simple_ph) / sizeof(simple_ph[0]))

/* Characters (not bytes) of s[0..n), so columns stay right after UTF-8. */
static unsigned utf8_chars(const char *s, size_t n)
{
    unsigned c = 0;
    size_t i;

    for (i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            c++;
    return c;
}

struct tplc {
    struct prun_job *job;
    struct prun_pos pos;
    const char *src;
    struct prun_err *err;
    struct prun_buf lit;
    struct prun_tpl_part *parts;
    size_t nparts, cap;
};

static int tpl_fail(struct tplc *c, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int tpl_fail(struct tplc *c, size_t off, const char *fmt, ...)
{
    char msg[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return prun_err_set(c->err, PRUN_EINVAL, "%s:%u:%u: %s",
        c->job->path ? c->job->path : "job", c->pos.line,
        c->pos.col + utf8_chars(c->src, off), msg);
}

static int tpl_push(
    struct tplc *c, enum prun_ph kind, const char *text, size_t len)
{
    if (c->nparts == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 4;
        void *p = realloc(c->parts, ncap * sizeof(*c->parts));
        if (p == NULL)
            return PRUN_ENOMEM;
        c->parts = p;
        c->cap = ncap;
    }
    c->parts[c->nparts].kind = kind;
    c->parts[c->nparts].text = text;
    c->parts[c->nparts].len = len;
    c->nparts++;
    return 0;
}

/* Turns the literal text gathered so far into a part of its own. */
static int tpl_flush(struct tplc *c)
{
    char *s;

    if (c->lit.len == 0)
        return 0;
    s = prun_arena_strndup(c->job->arena, c->lit.data, c->lit.len);
    if (s == NULL)
        return PRUN_ENOMEM;
    prun_buf_reset(&c->lit);
    return tpl_push(c, PRUN_PH_LIT, s, strlen(s));
}

/* One "{...}" whose name is name[0..n), starting at byte off of src. */
static int tpl_placeholder(struct tplc *c, size_t off, const char *name,
    size_t n, const char *const *item_keys, size_t nkeys)
{
    const char *cands[NSIMPLE];
    char word[72];
    const char *sugg;
    size_t i;
    int rc;

    for (i = 0; i < NSIMPLE; i++) {
        if (strlen(simple_ph[i].name) == n &&
            memcmp(simple_ph[i].name, name, n) == 0) {
            if ((rc = tpl_flush(c)) < 0)
                return rc;
            return tpl_push(c, simple_ph[i].kind, NULL, 0);
        }
    }
    snprintf(word, sizeof(word), "%.*s", n > 64 ? 64 : (int)n, name);
    if (n > 5 && memcmp(name, "vars.", 5) == 0) {
        const char *var = word + 5;
        for (i = 0; i < c->job->nvars; i++)
            if (strcmp(c->job->var_keys[i], var) == 0)
                return prun_buf_adds(&c->lit, c->job->var_vals[i]);
        sugg = prun_closest(
            var, (const char *const *)c->job->var_keys, c->job->nvars);
        if (sugg != NULL)
            return tpl_fail(c, off,
                "undefined variable '{%s}' (did you mean '{vars.%s}'?)", word,
                sugg);
        return tpl_fail(c, off,
            "undefined variable '{%s}' (define it under 'vars:' or with "
            "--set)",
            word);
    }
    if (n > 5 && memcmp(name, "item.", 5) == 0) {
        const char *key = word + 5;
        if (nkeys == 0)
            return tpl_fail(c, off,
                "unknown placeholder '{%s}' (the items of this task have no "
                "keys; use '{item}')",
                word);
        for (i = 0; i < nkeys; i++) {
            if (strcmp(item_keys[i], key) == 0) {
                if ((rc = tpl_flush(c)) < 0)
                    return rc;
                return tpl_push(
                    c, PRUN_PH_ITEM_KEY, item_keys[i], strlen(item_keys[i]));
            }
        }
        sugg = prun_closest(key, item_keys, nkeys);
        if (sugg != NULL)
            return tpl_fail(c, off,
                "unknown placeholder '{%s}' (did you mean '{item.%s}'?)", word,
                sugg);
        return tpl_fail(c, off,
            "unknown placeholder '{%s}' (the items have no key '%s')", word,
            key);
    }
    for (i = 0; i < NSIMPLE; i++)
        cands[i] = simple_ph[i].name;
    /* "{}" is GNU parallel's spelling of the item; say so. */
    sugg = n == 0 ? "item" : prun_closest(word, cands, NSIMPLE);
    if (sugg != NULL)
        return tpl_fail(c, off,
            "unknown placeholder '{%s}' (did you mean '{%s}'?)", word, sugg);
    return tpl_fail(c, off,
        "unknown placeholder '{%s}' (write '{{' for a literal brace)", word);
}

int prun_tpl_compile(struct prun_job *job, struct prun_tpl *t, const char *src,
    struct prun_pos pos, const char *const *item_keys, size_t nkeys,
    struct prun_err *err)
{
    struct tplc c = {job, pos, src, err, {0}, NULL, 0, 0};
    struct prun_tpl_part *parts = NULL;
    const char *copy;
    size_t i = 0;
    int rc = 0;

    while (src[i] != '\0') {
        const char *end;

        if ((src[i] == '{' && src[i + 1] == '{') ||
            (src[i] == '}' && src[i + 1] == '}')) {
            rc = prun_buf_addc(&c.lit, src[i]);
            i += 2;
        } else if (src[i] != '{') {
            rc = prun_buf_addc(&c.lit, src[i]);
            i++;
        } else if ((end = strchr(src + i + 1, '}')) == NULL) {
            size_t rest = strlen(src + i);
            rc = tpl_fail(&c, i,
                "unterminated placeholder '%.*s%s' (write '{{' for a literal "
                "brace)",
                rest > 40 ? 40 : (int)rest, src + i, rest > 40 ? "..." : "");
        } else {
            rc = tpl_placeholder(&c, i, src + i + 1,
                (size_t)(end - (src + i + 1)), item_keys, nkeys);
            i = (size_t)(end - src) + 1;
        }
        if (rc < 0)
            goto fail;
    }
    if ((rc = tpl_flush(&c)) < 0)
        goto fail;
    copy = prun_arena_strdup(job->arena, src);
    if (c.nparts > 0)
        parts = prun_arena_alloc(job->arena, c.nparts * sizeof(*parts));
    if (copy == NULL || (c.nparts > 0 && parts == NULL)) {
        rc = prun_err_set(err, PRUN_ENOMEM, "out of memory");
        goto fail;
    }
    if (c.nparts > 0)
        memcpy(parts, c.parts, c.nparts * sizeof(*parts));
    t->pos = pos;
    t->src = copy;
    t->nparts = c.nparts;
    t->parts = parts;
fail:
    /* The buffer helpers return PRUN_ENOMEM without filling err. */
    if (rc == PRUN_ENOMEM)
        prun_err_set(err, PRUN_ENOMEM, "out of memory");
    prun_buf_free(&c.lit);
    free(c.parts);
    return rc;
}

static int add_val(struct prun_buf *out, const char *s, int q)
{
    return q ? prun_buf_add_shquoted(out, s) : prun_buf_adds(out, s);
}

static const char *item_get(const struct prun_item *it, const char *key)
{
    size_t i;

    for (i = 0; i < it->nkeys; i++)
        if (strcmp(it->keys[i], key) == 0)
            return it->vals[i];
    return "";
}

int prun_tpl_expand(const struct prun_tpl *t, const struct prun_ctx *ctx,
    int shell_quote, struct prun_buf *out)
{
    size_t i, j;
    int rc = 0;

    /* An empty template still yields a terminated, empty string. */
    if ((rc = prun_buf_reserve(out, 0)) < 0)
        return rc;
    for (i = 0; i < t->nparts && rc == 0; i++) {
        const struct prun_tpl_part *p = &t->parts[i];

        switch (p->kind) {
        case PRUN_PH_LIT:
            rc = prun_buf_add(out, p->text, p->len);
            break;
        case PRUN_PH_ITEM:
            if (ctx->nitems == 0)
                rc = add_val(out, "", shell_quote);
            for (j = 0; j < ctx->nitems && rc == 0; j++) {
                if (j > 0)
                    rc = prun_buf_addc(out, ' ');
                if (rc == 0)
                    rc = add_val(out, ctx->items[j].text, shell_quote);
            }
            break;
        case PRUN_PH_ITEM_KEY:
            if (ctx->nitems == 0)
                rc = add_val(out, "", shell_quote);
            for (j = 0; j < ctx->nitems && rc == 0; j++) {
                if (j > 0)
                    rc = prun_buf_addc(out, ' ');
                if (rc == 0)
                    rc = add_val(
                        out, item_get(&ctx->items[j], p->text), shell_quote);
            }
            break;
        case PRUN_PH_INDEX:
            rc = prun_buf_printf(out, "%llu", ctx->index);
            break;
        case PRUN_PH_COUNT:
            if (ctx->count >= 0)
                rc = prun_buf_printf(out, "%lld", ctx->count);
            break;
        case PRUN_PH_TASK:
            rc = add_val(out, ctx->task ? ctx->task : "", shell_quote);
            break;
        case PRUN_PH_RUN_ID:
            rc = add_val(out, ctx->run_id ? ctx->run_id : "", shell_quote);
            break;
        case PRUN_PH_ATTEMPT:
            rc = prun_buf_printf(out, "%u", ctx->attempt);
            break;
        }
    }
    return rc;
}

/*
 * Appends the elements of an instance's argv to b, each NUL-terminated,
 * and counts them in *n. Shared by prun_task_argv and prun_task_cmdline
 * so that both see exactly the same elements.
 */
static int build_elems(const struct prun_task *t, const struct prun_ctx *ctx,
    struct prun_buf *b, size_t *n)
{
    size_t i, j;
    int rc;

    *n = 0;
    if (t->shell) {
        if ((rc = prun_buf_add(b, "/bin/sh\0-c", 11)) < 0)
            return rc;
        if (t->argc > 0 && (rc = prun_tpl_expand(&t->argv[0], ctx, 1, b)) < 0)
            return rc;
        *n = 3;
        return prun_buf_addc(b, '\0');
    }
    for (i = 0; i < t->argc; i++) {
        const struct prun_tpl *tp = &t->argv[i];

        /* A lone {item} with a chunk is one argument per item, not one. */
        if (tp->nparts == 1 && tp->parts[0].kind == PRUN_PH_ITEM &&
            ctx->nitems > 1) {
            for (j = 0; j < ctx->nitems; j++) {
                rc = prun_buf_add(
                    b, ctx->items[j].text, strlen(ctx->items[j].text) + 1);
                if (rc < 0)
                    return rc;
                (*n)++;
            }
            continue;
        }
        if ((rc = prun_tpl_expand(tp, ctx, 0, b)) < 0 ||
            (rc = prun_buf_addc(b, '\0')) < 0)
            return rc;
        (*n)++;
    }
    return 0;
}

char **prun_task_argv(const struct prun_task *t, const struct prun_ctx *ctx)
{
    struct prun_buf b = {0};
    char **argv = NULL;
    char *s;
    size_t n, i, head;

    if (build_elems(t, ctx, &b, &n) < 0 || prun_buf_reserve(&b, 0) < 0)
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
    prun_buf_free(&b);
    return argv;
}

int prun_task_cmdline(
    const struct prun_task *t, const struct prun_ctx *ctx, struct prun_buf *out)
{
    struct prun_buf b = {0};
    const char *s;
    size_t n, i;
    int rc;

    if (t->shell)
        return t->argc > 0 ? prun_tpl_expand(&t->argv[0], ctx, 1, out)
                           : prun_buf_reserve(out, 0);
    if ((rc = build_elems(t, ctx, &b, &n)) < 0)
        goto fail;
    if ((rc = prun_buf_reserve(out, 0)) < 0)
        goto fail;
    for (i = 0, s = b.data; i < n && rc == 0; i++, s += strlen(s) + 1) {
        if (i > 0)
            rc = prun_buf_addc(out, ' ');
        if (rc == 0)
            rc = prun_buf_add_shquoted(out, s);
    }
fail:
    prun_buf_free(&b);
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
    rc = prun_buf_adds(&b, "dependency cycle: ");
    for (i = 0; i <= len && rc == 0; i++) {
        size_t ti = stack[from + (start + i) % len];
        rc = prun_buf_printf(
            &b, "%s%s", i > 0 ? " -> " : "", job->tasks[ti].name);
    }
    pos = job->tasks[stack[from + start]].pos;
    if (rc < 0)
        rc = prun_err_set(err, PRUN_ENOMEM, "out of memory");
    else
        rc = prun_err_set(err, PRUN_EINVAL, "%s:%u:%u: %s",
            job->path ? job->path : "job", pos.line, pos.col, b.data);
    prun_buf_free(&b);
    return rc;
}

int prun_job_check(const struct prun_job *job, struct prun_err *err)
{
    const char *path = job->path ? job->path : "job";
    unsigned char *color = NULL; /* 0 new, 1 on the stack, 2 done */
    size_t *stack = NULL, *edge = NULL, *where = NULL;
    size_t i, j, top;
    int rc = 0;

    for (i = 0; i < job->ntasks; i++) {
        const struct prun_task *t = &job->tasks[i];
        for (j = 0; j < t->nneeds; j++) {
            if (t->needs[j] >= job->ntasks)
                return prun_err_set(err, PRUN_EINVAL,
                    "%s:%u:%u: task '%s' needs task #%zu, which is not "
                    "defined",
                    path, t->pos.line, t->pos.col, t->name, t->needs[j]);
            if (t->needs[j] == i)
                return prun_err_set(err, PRUN_EINVAL,
                    "%s:%u:%u: task '%s' needs itself", path, t->pos.line,
                    t->pos.col, t->name);
        }
        for (j = 0; j < t->nsegs; j++)
            if (t->segs[j] >= job->nsegs)
                return prun_err_set(err, PRUN_EINVAL,
                    "%s:%u:%u: task '%s' uses segment #%zu, which is not "
                    "defined",
                    path, t->pos.line, t->pos.col, t->name, t->segs[j]);
    }
    if (job->ntasks == 0)
        return 0;

    /*
     * An iterative depth-first search: a chain of needs can be as long as
     * the file allows, and recursion that deep would overflow the stack.
     */
    color = calloc(job->ntasks, 1);
    stack = malloc(job->ntasks * sizeof(*stack));
    edge = malloc(job->ntasks * sizeof(*edge));
    where = malloc(job->ntasks * sizeof(*where));
    if (color == NULL || stack == NULL || edge == NULL || where == NULL) {
        rc = prun_err_set(err, PRUN_ENOMEM, "out of memory");
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
