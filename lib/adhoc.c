/* SPDX-License-Identifier: MIT */
/*
 * adhoc: the command line of ad-hoc mode (GNU parallel's habits) turned
 * into an in-memory job of one task: options, the command and its
 * arguments as list-form templates (or one /bin/sh -c template with
 * --shell, or when the command is a single word holding shell syntax),
 * and the sources: one `::: A B` list, one `:::: FILE` of lines (streamed),
 * several of them as a matrix (their cartesian product, the last varying
 * fastest, as parallel), or lines from stdin when none is given. A command
 * without any placeholder gets "{}" appended, as parallel and xargs do.
 * The options are adhoc_opts.c's. It does not run anything and does not
 * print: the run composition and the CLI do that.
 */
#include "adhoc_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads all of fd into b. */
static int slurp(int fd, struct prun_buf *b)
{
    char chunk[65536];
    ssize_t r;

    for (;;) {
        r = read(fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
        if (prun__buf_add(b, chunk, (size_t)r) < 0) {
            errno = ENOMEM;
            return -1;
        }
    }
}

/*
 * The values of a `:::: FILE` source ("-": stdin), one per line or per
 * NUL-terminated record, in the job's arena.
 */
static int read_values(struct prun__adhoc_cl *p, const char *path,
    const char ***vals, size_t *n, struct prun_err *err)
{
    struct prun_buf b = {0};
    char sep = p->null_sep ? '\0' : '\n';
    size_t i, k = 0, cnt = 0, start;
    const char **v = NULL;
    int fd = 0, rc = 0;

    if (strcmp(path, "-") != 0 && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return prun__err_sys(err, ":::: cannot open '%s'", path);
    if (slurp(fd, &b) < 0) {
        rc = prun__err_sys(err, ":::: cannot read '%s'", path);
        goto out;
    }
    for (i = 0; i < b.len; i++) {
        if (b.data[i] == '\0' && sep != '\0') {
            rc = prun__err_set(err, PRUN_EINVAL,
                "%s item %zu contains a NUL byte; use -0/--null for "
                "NUL-separated input",
                strcmp(path, "-") == 0 ? "stdin" : path, cnt + 1);
            goto out;
        }
        if (b.data[i] == sep)
            cnt++;
    }
    if (b.len > 0 && b.data[b.len - 1] != sep)
        cnt++;
    v = prun__arena_alloc(p->job->arena, (cnt ? cnt : 1) * sizeof(char *));
    if (v == NULL) {
        rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
        goto out;
    }
    for (i = 0, start = 0; i <= b.len && k < cnt; i++) {
        if (i < b.len && b.data[i] != sep)
            continue;
        v[k] = prun__arena_strndup(p->job->arena, b.data + start, i - start);
        if (v[k++] == NULL) {
            rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
            goto out;
        }
        start = i + 1;
    }
    *vals = v;
    *n = cnt;
out:
    if (fd > 0)
        close(fd);
    prun__buf_free(&b);
    return rc;
}

/* A single command word that holds shell syntax: run it with /bin/sh. */
static int looks_like_shell(const char *s)
{
    return strpbrk(s, " \t\n|&;<>()$`\\\"'*?") != NULL;
}

/* Does any template of the task hold a placeholder? */
static int has_placeholder(const struct prun_task *t)
{
    size_t i, k;

    for (i = 0; i < t->argc; i++)
        for (k = 0; k < t->argv[i].nparts; k++)
            if (t->argv[i].parts[k].kind != PRUN_PH_LIT)
                return 1;
    return 0;
}

/* The job and task name: the command's base name, as a valid name. */
static char *command_name(struct prun_arena *ar, const char *cmd)
{
    char name[33] = {0};
    const char *b = strrchr(cmd, '/');
    size_t i, n = 0;

    b = b ? b + 1 : cmd;
    for (i = 0; b[i] && !isspace((unsigned char)b[i]) && n < 32; i++)
        if (isalnum((unsigned char)b[i]) || b[i] == '_' || b[i] == '-' ||
            (b[i] == '.' && n > 0 && name[n - 1] != '.'))
            name[n++] = b[i];
    while (n > 0 && name[n - 1] == '.')
        n--;
    if (n == 0 || !isalnum((unsigned char)name[0]))
        return prun__arena_strdup(ar, "adhoc");
    name[n] = '\0';
    return prun__arena_strdup(ar, name);
}

static int build_task(
    struct prun__adhoc_cl *p, char **argv, struct prun_err *err)
{
    struct prun_job *job = p->job;
    struct prun_task *t = &job->tasks[0];
    struct prun_buf line = {0};
    struct prun_pos pos;
    size_t i;
    int rc = 0, shell = p->shell ||
                        (p->ncmd == 1 && looks_like_shell(argv[p->cmd_first]));

    t->name = job->name;
    t->pos.line = 1;
    t->pos.col = 1;
    t->shell = shell;
    t->timeout_ms = p->timeout_ms;
    t->kill_grace_ms = -1;
    t->retries = p->retries;
    t->retry_delay_ms = 0;
    if (p->delay_ms > 0)
        t->rate = 1000.0 / (double)p->delay_ms;
    if (shell) {
        /* The words joined with spaces, as parallel hands them to sh. */
        for (i = 0; i < p->ncmd && rc == 0; i++)
            rc = prun__buf_printf(
                &line, "%s%s", i ? " " : "", argv[p->cmd_first + i]);
        if (rc < 0)
            goto oom;
        t->argc = 1;
        t->argv = prun__arena_alloc(job->arena, sizeof(*t->argv));
        if (t->argv == NULL)
            goto oom;
        pos.line = 1;
        pos.col = 1;
        if ((rc = prun__tpl_compile_shell(
                 job, &t->argv[0], line.data, pos, NULL, 0, err)) < 0)
            goto out;
        if (!has_placeholder(t)) {
            if (prun__buf_adds(&line, " {}") < 0)
                goto oom;
            rc = prun__tpl_compile_shell(
                job, &t->argv[0], line.data, pos, NULL, 0, err);
        }
        goto out;
    }
    t->argv = prun__arena_alloc(job->arena, (p->ncmd + 1) * sizeof(*t->argv));
    if (t->argv == NULL)
        goto oom;
    for (i = 0; i < p->ncmd; i++) {
        pos.line = (unsigned)(i + 1);
        pos.col = 1;
        if ((rc = prun__tpl_compile(job, &t->argv[i], argv[p->cmd_first + i],
                 pos, NULL, 0, err)) < 0)
            goto out;
        t->argc++;
    }
    if (!has_placeholder(t)) {
        pos.line = (unsigned)(p->ncmd + 1);
        rc = prun__tpl_compile(job, &t->argv[t->argc], "{}", pos, NULL, 0, err);
        if (rc == 0)
            t->argc++;
    }
    goto out;
oom:
    rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
out:
    prun__buf_free(&line);
    return rc;
}

/*
 * --halt ...=N% is of all the jobs: stdin or the one file is read whole
 * first, as parallel does, so that the total is known from the start.
 */
static int read_whole(
    struct prun__adhoc_cl *p, char **argv, struct prun_err *err)
{
    struct prun_foreach *f = &p->job->tasks[0].foreach;
    const char **vals;
    size_t i;
    int rc;

    f->kind = PRUN_SRC_LIST;
    p->a->from_stdin = p->nsrcs == 0;
    if ((rc = read_values(p, p->nsrcs == 0 ? "-" : argv[p->srcs[0].first],
             &vals, &f->nlist, err)) < 0)
        return rc;
    f->list = prun__arena_alloc(
        p->job->arena, (f->nlist ? f->nlist : 1) * sizeof(*f->list));
    if (f->list == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    for (i = 0; i < f->nlist; i++)
        f->list[i].text = vals[i];
    return 0;
}

static int build_sources(
    struct prun__adhoc_cl *p, char **argv, struct prun_err *err)
{
    struct prun_foreach *f = &p->job->tasks[0].foreach;
    struct prun_arena *ar = p->job->arena;
    size_t s, i;
    int rc;

    f->chunk = 1;
    f->pos.line = 1;
    f->pos.col = 1;
    /* No arguments at all runs nothing and succeeds, as parallel. */
    f->allow_empty = 1;
    if (p->job->halt_pct > 0 && !(p->nsrcs == 0 && isatty(0)) &&
        (p->nsrcs == 0 || (p->nsrcs == 1 && p->srcs[0].file)))
        return read_whole(p, argv, err);
    if (p->nsrcs == 0 || (p->nsrcs == 1 && p->srcs[0].file)) {
        /* Lines (-0: records) streamed from stdin or the one file. */
        f->kind = PRUN_SRC_LINES;
        f->path = p->nsrcs == 0 ? "-" : argv[p->srcs[0].first];
        f->nul_sep = p->null_sep;
        f->nul_hint = "use -0/--null for NUL-separated input "
                      "(nothing from this item on was started)";
        p->a->from_stdin = p->nsrcs == 0;
        return 0;
    }
    if (p->nsrcs == 1 && !p->srcs[0].file) {
        const struct prun__adhoc_src *sr = &p->srcs[0];
        f->kind = PRUN_SRC_LIST;
        f->nlist = sr->n;
        f->list = prun__arena_alloc(ar, (sr->n ? sr->n : 1) * sizeof(*f->list));
        if (f->list == NULL)
            return prun__err_set(err, PRUN_ENOMEM, "out of memory");
        for (i = 0; i < sr->n; i++)
            f->list[i].text = argv[sr->first + i];
        return 0;
    }
    /* Several sources: their cartesian product, axes named 1, 2, ... */
    f->kind = PRUN_SRC_MATRIX;
    f->naxes = p->nsrcs;
    f->axes = prun__arena_alloc(ar, p->nsrcs * sizeof(*f->axes));
    if (f->axes == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    for (s = 0; s < p->nsrcs; s++) {
        struct prun_axis *ax = &f->axes[s];
        char name[24];

        snprintf(name, sizeof(name), "%zu", s + 1);
        if ((ax->name = prun__arena_strdup(ar, name)) == NULL)
            return prun__err_set(err, PRUN_ENOMEM, "out of memory");
        if (p->srcs[s].file) {
            if ((rc = read_values(p, argv[p->srcs[s].first], &ax->vals,
                     &ax->nvals, err)) < 0)
                return rc;
            continue;
        }
        ax->nvals = p->srcs[s].n;
        ax->vals = (const char **)(argv + p->srcs[s].first);
    }
    return 0;
}

/* The tag of --tag (parallel's: {}, the arguments) or --tagstring STR. */
static int build_tag(struct prun__adhoc_cl *p, struct prun_err *err)
{
    struct prun_adhoc *a = p->a;
    struct prun_buf b = {0};
    struct prun_pos pos = {1, 1};
    int rc = 0;

    if (!a->tag)
        return 0;
    a->tag_tpl = prun__arena_alloc(p->job->arena, sizeof(*a->tag_tpl));
    if (a->tag_tpl == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    rc = prun__buf_adds(&b, a->tagstring ? a->tagstring : "{}");
    if (rc < 0)
        rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
    else
        rc = prun__tpl_compile(p->job, a->tag_tpl, b.data, pos, NULL, 0, err);
    prun__buf_free(&b);
    return rc;
}

static int build_segments(struct prun__adhoc_cl *p, struct prun_err *err)
{
    struct prun_job *job = p->job;
    struct prun_task *t = &job->tasks[0];
    size_t i;

    if (p->nsegs == 0)
        return 0;
    job->segs = prun__arena_alloc(job->arena, p->nsegs * sizeof(*job->segs));
    t->segs = prun__arena_alloc(job->arena, p->nsegs * sizeof(*t->segs));
    if (job->segs == NULL || t->segs == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    for (i = 0; i < p->nsegs; i++) {
        job->segs[i].name = p->seg_names[i];
        job->segs[i].file = p->seg_files[i];
        job->segs[i].pos.line = 1;
        job->segs[i].pos.col = 1;
        job->segs[i].hugepages = PRUN_HUGE_DEFAULT;
        t->segs[i] = i;
    }
    job->nsegs = t->nsegs = p->nsegs;
    return 0;
}

static int is_marker(const char *s)
{
    return strcmp(s, ":::") == 0 || strcmp(s, "::::") == 0;
}

/* The command's words from argv[i] on, then the sources' (p->srcs). */
static int split_words(struct prun__adhoc_cl *p, int argc, char **argv, int i,
    struct prun_err *err)
{
    p->cmd_first = (size_t)i;
    for (; i < argc && !is_marker(argv[i]); i++)
        p->ncmd++;
    if (p->ncmd == 0)
        return prun__err_set(err, PRUN_EINVAL,
            "missing command (ad-hoc mode: parallelrun [OPTIONS] CMD [ARG]... "
            "::: A B ...)");
    if (i < argc &&
        (p->srcs = calloc((size_t)(argc - i), sizeof(*p->srcs))) == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    while (i < argc) {
        struct prun__adhoc_src *sr = &p->srcs[p->nsrcs++];

        sr->file = strcmp(argv[i], "::::") == 0;
        sr->first = (size_t)++i;
        for (; i < argc && !is_marker(argv[i]); i++)
            sr->n++;
        if (sr->file && sr->n != 1)
            return prun__err_set(err, PRUN_EINVAL,
                "'::::' takes one file name, got %zu words", sr->n);
    }
    return 0;
}

int prun__adhoc_parse(
    int argc, char **argv, struct prun_adhoc **out, struct prun_err *err)
{
    struct prun__adhoc_cl p;
    struct prun_adhoc *a = NULL;
    struct prun_arena *ar = NULL;
    int i = 1, rc = 0;

    memset(&p, 0, sizeof(p));
    a = calloc(1, sizeof(*a));
    ar = prun__arena_new();
    if (a == NULL || ar == NULL ||
        (p.job = prun__arena_alloc(ar, sizeof(*p.job))) == NULL ||
        (p.job->tasks = prun__arena_alloc(ar, sizeof(*p.job->tasks))) == NULL) {
        rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
        goto fail;
    }
    p.a = a;
    p.job->arena = ar;
    p.job->path = "command line";
    p.job->ntasks = 1;
    p.job->max_failures = 1;
    p.job->literal_braces = 1;
    a->job = p.job;
    if ((rc = prun__adhoc_options(&p, argc, argv, &i, err)) < 0)
        goto fail;
    if ((rc = split_words(&p, argc, argv, i, err)) < 0)
        goto fail;
    p.job->name = command_name(ar, argv[p.cmd_first]);
    if (p.job->name == NULL) {
        rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = build_task(&p, argv, err)) < 0 ||
        (rc = build_sources(&p, argv, err)) < 0 ||
        (rc = build_segments(&p, err)) < 0 || (rc = build_tag(&p, err)) < 0 ||
        (rc = prun__job_check(p.job, err)) < 0)
        goto fail;
    *out = a;
    a = NULL;
    ar = NULL;
fail:
    if (a != NULL)
        a->job = NULL;
    prun__adhoc_free(a);
    prun__arena_free(ar);
    free(p.srcs);
    free(p.seg_names);
    free(p.seg_files);
    return rc;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

int prun__joblog_seqs(const char *path, int done_only, struct prun_seqs *out,
    struct prun_err *err)
{
    struct prun_buf b = {0};
    struct prun_seqs s = {NULL, 0};
    size_t cap = 0, lineno = 0;
    char *line, *next;
    int fd, rc = 0;

    memset(out, 0, sizeof(*out));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return 0;
    if (fd < 0)
        return prun__err_sys(err, "cannot open joblog '%s'", path);
    if (slurp(fd, &b) < 0 || prun__buf_reserve(&b, 0) < 0) {
        rc = prun__err_sys(err, "cannot read joblog '%s'", path);
        goto out;
    }
    for (line = b.data; line != NULL && *line != '\0'; line = next) {
        char *f[9], *end;
        unsigned long long seq;
        long ev, sig;
        int k;

        lineno++;
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        if (strncmp(line, "Seq\t", 4) == 0 || *line == '\0')
            continue;
        for (k = 0; k < 9 && line != NULL; k++) {
            f[k] = line;
            line = k < 8 ? strchr(line, '\t') : NULL;
            if (line != NULL)
                *line++ = '\0';
        }
        errno = 0;
        if (k < 9 || (seq = strtoull(f[0], &end, 10)) == 0 || *end != '\0' ||
            (ev = strtol(f[6], &end, 10), *end != '\0') ||
            (sig = strtol(f[7], &end, 10), *end != '\0') || errno != 0) {
            rc = prun__err_set(err, PRUN_EINVAL,
                "%s:%zu: not a joblog row (Seq Host Starttime JobRuntime Send "
                "Receive Exitval Signal Command, tab-separated)",
                path, lineno);
            goto out;
        }
        if (done_only && (ev != 0 || sig != 0))
            continue;
        if (s.n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            void *p = realloc(s.v, ncap * sizeof(*s.v));
            if (p == NULL) {
                rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
                goto out;
            }
            s.v = p;
            cap = ncap;
        }
        s.v[s.n++] = seq;
    }
    if (s.n > 0)
        qsort(s.v, s.n, sizeof(*s.v), cmp_u64);
    *out = s;
    s.v = NULL;
out:
    free(s.v);
    close(fd);
    prun__buf_free(&b);
    return rc;
}

int prun__seqs_has(const struct prun_seqs *s, uint64_t seq)
{
    return s->n > 0 &&
           bsearch(&seq, s->v, s->n, sizeof(*s->v), cmp_u64) != NULL;
}

void prun__seqs_free(struct prun_seqs *s)
{
    if (s == NULL)
        return;
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

void prun__adhoc_free(struct prun_adhoc *a)
{
    if (a == NULL)
        return;
    prun__job_free(a->job);
    free(a);
}
