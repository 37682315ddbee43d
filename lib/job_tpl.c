/* SPDX-License-Identifier: MIT */
/*
 * job_tpl: the template compiler. It turns a placeholder template
 * ("{item}", "{vars.NAME}", GNU parallel's "{}", "{1.}", ...) into parts
 * once, at load time: literal text, variables inlined, and placeholders
 * that vary per instance, each with the quote context its value lands in.
 * For the string form (run through /bin/sh) it follows the shell's quoting
 * through the literal text one character at a time, and refuses a
 * placeholder where no quoting would be safe. Every mistake is reported as
 * FILE:LINE:COL with a suggestion. It is not the expansion (job.c) or the
 * loader that finds templates in a job file (jobfile.c).
 */
#include "job_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/*
 * Inside `...`, ${...} or $((...)): only what ends the frame matters
 * (nested braces or parens are counted). "$((...)" leaves the closing ')'
 * of "))" for the caller to skip.
 */
static void sh_feed_inner(struct shstate *st, enum sh_frame f, char c)
{
    if (f == SH_BQ) {
        if (c == '`')
            sh_pop(st);
    } else if (f == SH_PARAM) {
        if (c == '{')
            st->nest[st->depth - 1]++;
        else if (c == '}' && st->nest[st->depth - 1]-- == 0)
            sh_pop(st);
    } else if (c == '(') {
        st->nest[st->depth - 1]++;
    } else if (c == ')' && --st->nest[st->depth - 1] == 0) {
        sh_pop(st);
        st->eat_paren = 1;
    }
}

/*
 * What starts an expansion, unquoted or inside "...": '$' itself, then
 * "$(", "$((" or "${" after it, and '`'. dollar and just_sub say what the
 * previous character was. Returns 1 if c was one of them.
 */
static int sh_feed_expansion(
    struct shstate *st, enum sh_frame f, char c, int dollar, int just_sub)
{
    if (just_sub && c == '(' && f == SH_SUB) {
        /* "$((": arithmetic, not a command substitution. */
        st->frame[st->depth - 1] = SH_ARITH;
        st->nest[st->depth - 1] = 1;
        return 1;
    }
    if (dollar && c == '(') {
        sh_push(st, SH_SUB);
        st->just_sub = 1;
        st->wordstart = 1;
        return 1;
    }
    if (dollar && c == '{') {
        sh_push(st, SH_PARAM);
        return 1;
    }
    if (c == '$') {
        st->dollar = 1;
        st->wordstart = 0;
        return 1;
    }
    if (c == '`') {
        sh_push(st, SH_BQ);
        st->wordstart = 0;
        return 1;
    }
    return 0;
}

/*
 * Unquoted, at the top or inside $(...): quotes and comments open, "<<"
 * marks a here-document, parens nest, and word boundaries are noted. lt
 * says the previous character was an unquoted '<'.
 */
static void sh_feed_unquoted(
    struct shstate *st, enum sh_frame f, char c, int lt)
{
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
    if (f == SH_BQ || f == SH_PARAM || f == SH_ARITH) {
        sh_feed_inner(st, f, c);
        return;
    }
    if (sh_feed_expansion(st, f, c, dollar, just_sub))
        return;
    if (f == SH_DQ) {
        if (c == '"')
            sh_pop(st);
        return;
    }
    sh_feed_unquoted(st, f, c, lt);
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

/*
 * "{vars.NAME}" (word is the whole name, NUL-terminated, n its length):
 * the value is known at load time, so it is inlined as literal text,
 * quoted for the place it lands in.
 */
static int tpl_var(struct tplc *c, size_t off, size_t n, const char *word)
{
    const char *var = word + 5, *sugg;
    enum prun_quote q;
    size_t i;
    int rc, w = n > 64 ? 64 : (int)n;

    for (i = 0; i < c->job->nvars; i++) {
        const char *v = c->job->var_vals[i];
        if (strcmp(c->job->var_keys[i], var) != 0)
            continue;
        rc = sh_context(c, off, n, v[0] == '\0' || sh_inert(v), &q);
        if (rc == 0)
            rc = prun__tpl_add_quoted(&c->lit, v, q);
        if (rc == 0 && c->shell) {
            c->sh.bs = c->sh.dollar = c->sh.lt = 0;
            c->sh.wordstart = 0;
        }
        c->raw_len += strlen(v);
        for (; *v; v++)
            if (!isspace((unsigned char)*v))
                c->raw_blank = 0;
        return rc;
    }
    sugg = prun__closest(
        var, (const char *const *)c->job->var_keys, c->job->nvars);
    if (sugg != NULL)
        return tpl_fail(c, off,
            "undefined variable '{%.*s%s}' (did you mean '{vars.%s}'?)", w,
            word, n > 64 ? "..." : "", sugg);
    return tpl_fail(c, off,
        "undefined variable '{%.*s%s}' (define it under 'vars:' or "
        "with --set)",
        w, word, n > 64 ? "..." : "");
}

/* "{item.KEY}": a key of the task's items, looked up per instance. */
static int tpl_item_key(struct tplc *c, size_t off, size_t n, const char *word,
    const char *const *item_keys, size_t nkeys)
{
    const char *key = word + 5, *sugg;
    size_t i;
    int w = n > 64 ? 64 : (int)n;

    if (nkeys == 0)
        return tpl_fail(c, off,
            "unknown placeholder '{%.*s%s}' (the items of this task have "
            "no keys; use '{item}')",
            w, word, n > 64 ? "..." : "");
    for (i = 0; i < nkeys; i++)
        if (strcmp(item_keys[i], key) == 0)
            return tpl_runtime(c, off, n, PRUN_PH_ITEM_KEY, item_keys[i],
                strlen(item_keys[i]), 0);
    sugg = prun__closest(key, item_keys, nkeys);
    if (sugg != NULL)
        return tpl_fail(c, off,
            "unknown placeholder '{%.*s%s}' (did you mean '{item.%s}'?)", w,
            word, n > 64 ? "..." : "", sugg);
    return tpl_fail(c, off,
        "unknown placeholder '{%.*s%s}' (the items have no key '%.64s')", w,
        word, n > 64 ? "..." : "", key);
}

/* A name that is no placeholder: the error, with the closest name. */
static int tpl_unknown(struct tplc *c, size_t off, size_t n, const char *word)
{
    const char *cands[NSIMPLE];
    const char *sugg;
    size_t i;
    int w = n > 64 ? 64 : (int)n;

    for (i = 0; i < NSIMPLE; i++)
        cands[i] = simple_ph[i].name;
    sugg = prun__closest(word, cands, NSIMPLE);
    if (sugg != NULL)
        return tpl_fail(c, off,
            "unknown placeholder '{%.*s%s}' (did you mean '{%s}'?)", w, word,
            n > 64 ? "..." : "", sugg);
    return tpl_fail(c, off,
        "unknown placeholder '{%.*s%s}' (write '{{' for a literal brace)", w,
        word, n > 64 ? "..." : "");
}

/* One "{...}" whose name is name[0..n), starting at byte off of src. */
static int tpl_placeholder(struct tplc *c, size_t off, const char *name,
    size_t n, const char *const *item_keys, size_t nkeys)
{
    char *word = NULL;
    size_t i;
    int rc = 0;
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
    if (n > 5 && memcmp(name, "vars.", 5) == 0)
        rc = tpl_var(c, off, n, word);
    else if (n > 5 && memcmp(name, "item.", 5) == 0)
        rc = tpl_item_key(c, off, n, word, item_keys, nkeys);
    else
        rc = tpl_unknown(c, off, n, word);
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
