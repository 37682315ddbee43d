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

#include <ctype.h>
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

/*
 * The shell's quoting, followed through the literal text of a /bin/sh
 * template one character at a time, so that each placeholder knows the
 * context its value lands in. Frames nest: "$(...)" inside "..." starts an
 * unquoted context of its own, as the shell parses it.
 */
enum sh_frame {
    SH_TOP,     /* unquoted */
    SH_SUB,     /* unquoted, inside $(...) */
    SH_DQ,      /* "..." */
    SH_SQ,      /* '...' */
    SH_BQ,      /* `...` */
    SH_PARAM,   /* ${...} */
    SH_ARITH,   /* $((...)) */
    SH_COMMENT, /* # to the end of the line */
};

#define SH_MAX_DEPTH 64

struct shstate {
    unsigned char frame[SH_MAX_DEPTH];
    unsigned nest[SH_MAX_DEPTH]; /* parens or braces open in that frame */
    size_t depth;                /* frame[depth - 1] is the current one */
    int bs;                      /* after an unquoted or "..." backslash */
    int dollar;                  /* after an active '$' */
    int just_sub;                /* right after "$(" */
    int eat_paren;               /* "$((...)" ended: the next ')' is ours */
    int lt;                      /* after an unquoted '<' */
    int heredoc;                 /* an unquoted "<<" was seen */
    int wordstart;               /* the next character starts a word */
    int overflow;                /* nested too deep to follow */
};

static void sh_init(struct shstate *st)
{
    memset(st, 0, sizeof(*st));
    st->frame[0] = SH_TOP;
    st->depth = 1;
    st->wordstart = 1;
}

static void sh_push(struct shstate *st, enum sh_frame f)
{
    if (st->depth == SH_MAX_DEPTH) {
        st->overflow = 1;
        return;
    }
    st->frame[st->depth] = (unsigned char)f;
    st->nest[st->depth] = 0;
    st->depth++;
}

static void sh_pop(struct shstate *st)
{
    if (st->depth > 1)
        st->depth--;
}

/* Advances st over one literal character c of the command line. */
static void sh_feed(struct shstate *st, char c)
{
    enum sh_frame f = (enum sh_frame)st->frame[st->depth - 1];
    int dollar = st->dollar, just_sub = st->just_sub, lt = st->lt;

    st->dollar = st->just_sub = st->lt = 0;
    if (f == SH_SQ) {
        if (c == '\'')
            sh_pop(st);
        return;
    }
    if (f == SH_COMMENT) {
        if (c == '\n') {
            sh_pop(st);
            st->wordstart = 1;
        }
        return;
    }
    if (st->bs) {
        st->bs = 0;
        st->wordstart = 0;
        return;
    }
    if (c == '\\') {
        st->bs = 1;
        return;
    }
    if (f == SH_BQ) {
        if (c == '`')
            sh_pop(st);
        return;
    }
    if (f == SH_PARAM) {
        if (c == '{')
            st->nest[st->depth - 1]++;
        else if (c == '}' && st->nest[st->depth - 1]-- == 0)
            sh_pop(st);
        return;
    }
    if (f == SH_ARITH) {
        if (c == '(')
            st->nest[st->depth - 1]++;
        else if (c == ')' && --st->nest[st->depth - 1] == 0) {
            sh_pop(st);
            st->eat_paren = 1;
        }
        return;
    }
    if (just_sub && c == '(' && f == SH_SUB) {
        /* "$((": arithmetic, not a command substitution. */
        st->frame[st->depth - 1] = SH_ARITH;
        st->nest[st->depth - 1] = 1;
        return;
    }
    if (dollar && c == '(') {
        sh_push(st, SH_SUB);
        st->just_sub = 1;
        st->wordstart = 1;
        return;
    }
    if (dollar && c == '{') {
        sh_push(st, SH_PARAM);
        return;
    }
    if (c == '$') {
        st->dollar = 1;
        st->wordstart = 0;
        return;
    }
    if (c == '`') {
        sh_push(st, SH_BQ);
        st->wordstart = 0;
        return;
    }
    if (f == SH_DQ) {
        if (c == '"')
            sh_pop(st);
        return;
    }
    /* Unquoted, at the top or inside $(...). */
    if (c == '\'' || c == '"') {
        sh_push(st, c == '\'' ? SH_SQ : SH_DQ);
        st->wordstart = 0;
        return;
    }
    if (c == '#' && st->wordstart) {
        sh_push(st, SH_COMMENT);
        return;
    }
    if (c == '<') {
        if (lt)
            st->heredoc = 1;
        st->lt = 1;
    }
    if (c == ')' && st->eat_paren) {
        st->eat_paren = 0;
    } else if (f == SH_SUB && c == '(') {
        st->nest[st->depth - 1]++;
    } else if (f == SH_SUB && c == ')') {
        if (st->nest[st->depth - 1] == 0)
            sh_pop(st);
        else
            st->nest[st->depth - 1]--;
    }
    st->wordstart = strchr(" \t\n;&|()<>", c) != NULL;
}

struct tplc {
    struct prun_job *job;
    struct prun_pos pos;
    const char *src;
    struct prun_err *err;
    int shell;
    struct shstate sh;
    struct prun_buf lit;
    size_t raw_len, raw_blank; /* text with vars as they are, not quoted */
    int dynamic;               /* a placeholder that varies per instance */
    struct prun_tpl_part *parts;
    size_t nparts, cap;
};

static int tpl_fail(struct tplc *c, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int tpl_fail(struct tplc *c, size_t off, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return prun__err_set(c->err, PRUN_EINVAL, "%s:%u:%u: %s",
        c->job->path ? c->job->path : "job", c->pos.line,
        c->pos.col + utf8_chars(c->src, off), msg);
}

static int tpl_push(struct tplc *c, enum prun_ph kind, const char *text,
    size_t len, enum prun_quote quote)
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
    c->parts[c->nparts].quote = quote;
    c->parts[c->nparts].arg = 0;
    c->parts[c->nparts].xf = PRUN_XF_NONE;
    c->nparts++;
    return 0;
}

/* Turns the literal text gathered so far into a part of its own. */
static int tpl_flush(struct tplc *c)
{
    char *s;
    size_t n;

    if (c->lit.len == 0)
        return 0;
    n = c->lit.len;

    s = prun__arena_strndup(c->job->arena, c->lit.data, n);
    if (s == NULL)
        return PRUN_ENOMEM;
    prun__buf_reset(&c->lit);
    return tpl_push(c, PRUN_PH_LIT, s, n, PRUN_Q_NONE);
}

/* Literal text as written: it moves the shell's quote state along. */
static int tpl_lit(struct tplc *c, char ch)
{
    if (c->shell)
        sh_feed(&c->sh, ch);
    c->raw_len++;
    if (!isspace((unsigned char)ch))
        c->raw_blank = 0;
    return prun__buf_addc(&c->lit, ch);
}

/* Bytes that mean nothing to the shell in any context. */
static int sh_inert(const char *s)
{
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && strchr("@%_+=:,./-", *s) == NULL)
            return 0;
    return 1;
}

/*
 * The quote context for a value at the current place of a shell template,
 * or an error at byte off of src. inert: the value is known to hold only
 * characters no context gives a meaning to (or is a number).
 */
static int sh_context(
    struct tplc *c, size_t off, size_t n, int inert, enum prun_quote *q)
{
    const struct shstate *st = &c->sh;
    enum sh_frame f = (enum sh_frame)st->frame[st->depth - 1];
    const char *why = NULL;
    int w = n > 40 ? 40 : (int)n;
    const char *ell = n > 40 ? "..." : "";

    if (!c->shell) {
        *q = PRUN_Q_NONE;
        return 0;
    }
    *q = f == SH_DQ        ? PRUN_Q_DOUBLE
         : f == SH_SQ      ? PRUN_Q_SINGLE
         : f == SH_COMMENT ? PRUN_Q_COMMENT
                           : PRUN_Q_BARE;
    if (inert || f == SH_COMMENT)
        return 0;
    if (st->overflow)
        why = "where quotes are nested too deeply to follow";
    else if (st->bs)
        why = "right after a backslash";
    else if (st->dollar)
        why = "right after '$'";
    else if (f == SH_BQ)
        why = "inside `...` (use $(...))";
    else if (f == SH_PARAM)
        why = "inside ${...}";
    else if (f == SH_ARITH)
        why = "inside $((...))";
    else if (st->heredoc)
        why = "after a here-document '<<'";
    if (why == NULL)
        return 0;
    return tpl_fail(c, off,
        "'{%.*s%s}' cannot be shell-quoted %s; pass it as an argument: "
        "run: [sh, -c, '... \"$1\"', sh, \"{%.*s%s}\"]",
        w, c->src + off + 1, ell, why, w, c->src + off + 1, ell);
}

/* Appends value v quoted for context q (none: as it is). */
static int add_quoted(struct prun_buf *out, const char *v, enum prun_quote q)
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

static int tpl_runtime(struct tplc *c, size_t off, size_t n, enum prun_ph kind,
    const char *text, size_t len, int inert)
{
    enum prun_quote q;
    int rc;

    if ((rc = sh_context(c, off, n, inert, &q)) < 0 || (rc = tpl_flush(c)) < 0)
        return rc;
    c->dynamic = 1;
    c->sh.bs = c->sh.dollar = c->sh.lt = 0;
    c->sh.wordstart = 0;
    return tpl_push(c, kind, text, len, q);
}

/*
 * GNU parallel's spellings: "", ".", "/", "//", "/." optionally after a
 * source number N >= 1. Returns 1 with *arg and *xf set, 0 if name is not
 * one of them.
 */
static int gnu_arg(const char *name, size_t n, unsigned *arg, enum prun_xf *xf)
{
    static const struct {
        const char *s;
        enum prun_xf xf;
    } xfs[] = {{"", PRUN_XF_NONE}, {".", PRUN_XF_NOEXT}, {"/", PRUN_XF_BASE},
        {"//", PRUN_XF_DIR}, {"/.", PRUN_XF_BASE_NOEXT}};
    unsigned long v = 0;
    size_t i = 0, k;

    while (i < n && i < 9 && isdigit((unsigned char)name[i]))
        v = v * 10 + (unsigned long)(name[i++] - '0');
    if (i > 0 && (v == 0 || (i < n && isdigit((unsigned char)name[i]))))
        return 0;
    for (k = 0; k < sizeof(xfs) / sizeof(xfs[0]); k++) {
        if (strlen(xfs[k].s) == n - i &&
            memcmp(xfs[k].s, name + i, n - i) == 0) {
            *arg = (unsigned)v;
            *xf = xfs[k].xf;
            return 1;
        }
    }
    return 0;
}

/* One "{...}" whose name is name[0..n), starting at byte off of src. */
static int tpl_placeholder(struct tplc *c, size_t off, const char *name,
    size_t n, const char *const *item_keys, size_t nkeys)
{
    const char *cands[NSIMPLE];
    const char *sugg;
    char *word = NULL;
    enum prun_quote q;
    size_t i;
    int rc = 0, w;
    unsigned arg;
    enum prun_xf xf;

    if (gnu_arg(name, n, &arg, &xf)) {
        if ((rc = tpl_runtime(c, off, n, PRUN_PH_ARG, NULL, 0, 0)) == 0) {
            c->parts[c->nparts - 1].arg = arg;
            c->parts[c->nparts - 1].xf = xf;
        }
        return rc;
    }
    if (n == 1 && (name[0] == '#' || name[0] == '%'))
        return tpl_runtime(
            c, off, n, name[0] == '#' ? PRUN_PH_SEQ : PRUN_PH_SLOT, NULL, 0, 1);
    for (i = 0; i < NSIMPLE; i++) {
        if (strlen(simple_ph[i].name) == n &&
            memcmp(simple_ph[i].name, name, n) == 0) {
            /* Numbers, task names and run ids hold no shell syntax. */
            return tpl_runtime(c, off, n, simple_ph[i].kind, NULL, 0,
                simple_ph[i].kind != PRUN_PH_ITEM);
        }
    }
    /* Names have no length limit here: the whole name is looked up. */
    if ((word = strndup(name, n)) == NULL)
        return PRUN_ENOMEM;
    w = n > 64 ? 64 : (int)n;
    if (n > 5 && memcmp(name, "vars.", 5) == 0) {
        const char *var = word + 5;
        for (i = 0; i < c->job->nvars; i++) {
            const char *v = c->job->var_vals[i];
            if (strcmp(c->job->var_keys[i], var) != 0)
                continue;
            rc = sh_context(c, off, n, v[0] == '\0' || sh_inert(v), &q);
            if (rc == 0)
                rc = add_quoted(&c->lit, v, q);
            if (rc == 0 && c->shell) {
                c->sh.bs = c->sh.dollar = c->sh.lt = 0;
                c->sh.wordstart = 0;
            }
            c->raw_len += strlen(v);
            for (; *v; v++)
                if (!isspace((unsigned char)*v))
                    c->raw_blank = 0;
            goto out;
        }
        sugg = prun__closest(
            var, (const char *const *)c->job->var_keys, c->job->nvars);
        if (sugg != NULL)
            rc = tpl_fail(c, off,
                "undefined variable '{%.*s%s}' (did you mean '{vars.%s}'?)", w,
                word, n > 64 ? "..." : "", sugg);
        else
            rc = tpl_fail(c, off,
                "undefined variable '{%.*s%s}' (define it under 'vars:' or "
                "with --set)",
                w, word, n > 64 ? "..." : "");
        goto out;
    }
    if (n > 5 && memcmp(name, "item.", 5) == 0) {
        const char *key = word + 5;
        if (nkeys == 0) {
            rc = tpl_fail(c, off,
                "unknown placeholder '{%.*s%s}' (the items of this task have "
                "no keys; use '{item}')",
                w, word, n > 64 ? "..." : "");
            goto out;
        }
        for (i = 0; i < nkeys; i++) {
            if (strcmp(item_keys[i], key) == 0) {
                rc = tpl_runtime(c, off, n, PRUN_PH_ITEM_KEY, item_keys[i],
                    strlen(item_keys[i]), 0);
                goto out;
            }
        }
        sugg = prun__closest(key, item_keys, nkeys);
        if (sugg != NULL)
            rc = tpl_fail(c, off,
                "unknown placeholder '{%.*s%s}' (did you mean '{item.%s}'?)", w,
                word, n > 64 ? "..." : "", sugg);
        else
            rc = tpl_fail(c, off,
                "unknown placeholder '{%.*s%s}' (the items have no key "
                "'%.64s')",
                w, word, n > 64 ? "..." : "", key);
        goto out;
    }
    for (i = 0; i < NSIMPLE; i++)
        cands[i] = simple_ph[i].name;
    sugg = prun__closest(word, cands, NSIMPLE);
    if (sugg != NULL)
        rc = tpl_fail(c, off,
            "unknown placeholder '{%.*s%s}' (did you mean '{%s}'?)", w, word,
            n > 64 ? "..." : "", sugg);
    else
        rc = tpl_fail(c, off,
            "unknown placeholder '{%.*s%s}' (write '{{' for a literal brace)",
            w, word, n > 64 ? "..." : "");
out:
    free(word);
    return rc;
}

/* Does "{name}" (name[0..n)) name a placeholder tpl_placeholder knows? */
static int ph_known(const struct prun_job *job, const char *name, size_t n,
    const char *const *item_keys, size_t nkeys)
{
    unsigned arg;
    enum prun_xf xf;
    size_t i;

    if (gnu_arg(name, n, &arg, &xf) ||
        (n == 1 && (name[0] == '#' || name[0] == '%')))
        return 1;
    for (i = 0; i < NSIMPLE; i++)
        if (strlen(simple_ph[i].name) == n &&
            memcmp(simple_ph[i].name, name, n) == 0)
            return 1;
    for (i = 0; n > 5 && memcmp(name, "vars.", 5) == 0 && i < job->nvars; i++)
        if (strlen(job->var_keys[i]) == n - 5 &&
            memcmp(job->var_keys[i], name + 5, n - 5) == 0)
            return 1;
    for (i = 0; n > 5 && memcmp(name, "item.", 5) == 0 && i < nkeys; i++)
        if (strlen(item_keys[i]) == n - 5 &&
            memcmp(item_keys[i], name + 5, n - 5) == 0)
            return 1;
    return 0;
}

static int tpl_compile(struct prun_job *job, struct prun_tpl *t,
    const char *src, struct prun_pos pos, const char *const *item_keys,
    size_t nkeys, int shell, struct prun_err *err)
{
    struct tplc c;
    struct prun_tpl_part *parts = NULL;
    const char *copy;
    size_t i = 0;
    int rc = 0;

    memset(&c, 0, sizeof(c));
    c.job = job;
    c.pos = pos;
    c.src = src;
    c.err = err;
    c.shell = shell;
    c.raw_blank = 1;
    sh_init(&c.sh);
    while (src[i] != '\0') {
        const char *end;

        if ((src[i] == '{' && src[i + 1] == '{') ||
            (src[i] == '}' && src[i + 1] == '}')) {
            rc = tpl_lit(&c, src[i]);
            i += 2;
        } else if (src[i] != '{') {
            rc = tpl_lit(&c, src[i]);
            i++;
        } else if (job->literal_braces &&
                   ((end = strchr(src + i + 1, '}')) == NULL ||
                       !ph_known(job, src + i + 1,
                           (size_t)(end - (src + i + 1)), item_keys, nkeys))) {
            /* Not a placeholder: the brace is text (GNU parallel's way). */
            rc = tpl_lit(&c, src[i]);
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
    copy = prun__arena_strdup(job->arena, src);
    if (c.nparts > 0)
        parts = prun__arena_alloc(job->arena, c.nparts * sizeof(*parts));
    if (copy == NULL || (c.nparts > 0 && parts == NULL)) {
        rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
        goto fail;
    }
    if (c.nparts > 0)
        memcpy(parts, c.parts, c.nparts * sizeof(*parts));
    t->pos = pos;
    t->src = copy;
    t->nparts = c.nparts;
    t->parts = parts;
    t->empty = !c.dynamic && c.raw_len == 0;
    t->blank = !c.dynamic && c.raw_blank;
fail:
    /* The buffer helpers return PRUN_ENOMEM without filling err. */
    if (rc == PRUN_ENOMEM)
        prun__err_set(err, PRUN_ENOMEM, "out of memory");
    prun__buf_free(&c.lit);
    free(c.parts);
    return rc;
}

int prun__tpl_compile(struct prun_job *job, struct prun_tpl *t, const char *src,
    struct prun_pos pos, const char *const *item_keys, size_t nkeys,
    struct prun_err *err)
{
    return tpl_compile(job, t, src, pos, item_keys, nkeys, 0, err);
}

int prun__tpl_compile_shell(struct prun_job *job, struct prun_tpl *t,
    const char *src, struct prun_pos pos, const char *const *item_keys,
    size_t nkeys, struct prun_err *err)
{
    return tpl_compile(job, t, src, pos, item_keys, nkeys, 1, err);
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
        return add_quoted(out, s, q);
    if ((tmp = strndup(s, n)) == NULL)
        return PRUN_ENOMEM;
    rc = add_quoted(out, tmp, q);
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
                rc = add_quoted(out, "", q);
            for (j = 0; j < ctx->nitems && rc == 0; j++) {
                const char *v = p->kind == PRUN_PH_ITEM
                                    ? ctx->items[j].text
                                    : item_get(&ctx->items[j], p->text);
                if (j > 0)
                    rc = prun__buf_addc(out, ' ');
                if (rc == 0)
                    rc = add_quoted(out, v, q);
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
            rc = add_quoted(out, ctx->task ? ctx->task : "", q);
            break;
        case PRUN_PH_RUN_ID:
            rc = add_quoted(out, ctx->run_id ? ctx->run_id : "", q);
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

int prun__job_check(const struct prun_job *job, struct prun_err *err)
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
