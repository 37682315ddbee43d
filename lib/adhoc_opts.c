/* SPDX-License-Identifier: MIT */
/*
 * adhoc_opts: the options of ad-hoc mode, GNU parallel's spellings (-j,
 * -k, --tag, --halt, --joblog, ...) read into the job being built and the
 * front end's settings. The command and its sources are adhoc.c's.
 */
#include "adhoc_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halt.h"

enum {
    O_JOBS,
    O_KEEP,
    O_TAG,
    O_TAGSTRING,
    O_BAR,
    O_ETA,
    O_HALT,
    O_RETRIES,
    O_TIMEOUT,
    O_DELAY,
    O_JOBLOG,
    O_RESULTS,
    O_RESUME,
    O_RESUME_FAILED,
    O_DRY_RUN,
    O_SEGMENT,
    O_REDIS,
    O_QUIET,
    O_JSON,
    O_NULL,
    O_SHELL,
    O_QUOTE,
};

static const struct {
    const char *name;
    char shrt;
    int arg; /* 0 none, 1 required, 2 optional (--name=VALUE only) */
    int id;
} opts[] = {
    {"jobs", 'j', 1, O_JOBS},
    {"keep-order", 'k', 0, O_KEEP},
    {"tag", 0, 0, O_TAG},
    {"tagstring", 0, 1, O_TAGSTRING},
    {"bar", 0, 0, O_BAR},
    {"eta", 0, 0, O_ETA},
    {"halt", 0, 1, O_HALT},
    {"retries", 0, 1, O_RETRIES},
    {"timeout", 0, 1, O_TIMEOUT},
    {"delay", 0, 1, O_DELAY},
    {"joblog", 0, 1, O_JOBLOG},
    {"results", 0, 1, O_RESULTS},
    {"resume", 0, 2, O_RESUME},
    {"resume-failed", 0, 0, O_RESUME_FAILED},
    {"dry-run", 0, 0, O_DRY_RUN},
    {"segment", 0, 1, O_SEGMENT},
    {"redis", 0, 1, O_REDIS},
    {"quiet", 0, 0, O_QUIET},
    {"json", 0, 0, O_JSON},
    {"null", '0', 0, O_NULL},
    {"shell", 0, 0, O_SHELL},
    {"quote", 'q', 0, O_QUOTE},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static int find_opt(const char *s, const char **val)
{
    size_t i, n;

    *val = NULL;
    if (s[0] == '-' && s[1] == '-') {
        const char *eq = strchr(s + 2, '=');
        n = eq ? (size_t)(eq - s - 2) : strlen(s + 2);
        for (i = 0; i < NOPTS; i++)
            if (strlen(opts[i].name) == n &&
                memcmp(opts[i].name, s + 2, n) == 0) {
                if (eq)
                    *val = eq + 1;
                return (int)i;
            }
        return -1;
    }
    if (s[0] == '-' && s[1] != '\0')
        for (i = 0; i < NOPTS; i++)
            if (opts[i].shrt != 0 && opts[i].shrt == s[1]) {
                if (s[2] != '\0')
                    *val = s + 2;
                return (int)i;
            }
    return -1;
}

int prun__adhoc_is_option(const char *s)
{
    const char *v;

    return strcmp(s, ":::") == 0 || strcmp(s, "::::") == 0 ||
           find_opt(s, &v) >= 0;
}

/* GNU parallel's durations are seconds; ours (500ms, 2h) work too. */
static int parse_dur(
    const char *opt, const char *s, int64_t *ms, struct prun_err *err)
{
    char *end;
    double v;
    struct prun_err e;

    errno = 0;
    v = strtod(s, &end);
    if (end != s && *end == '\0' && errno == 0 && v >= 0 && v < 1e9) {
        *ms = (int64_t)(v * 1000 + 0.5);
        return 0;
    }
    if (prun__parse_duration(s, ms, &e) < 0)
        return prun__err_set(err, PRUN_EINVAL, "%s: %s", opt, e.msg);
    return 0;
}

/* --halt WHEN[,fail|success|done=N[%]], or parallel's short forms. */
static int parse_halt(struct prun_job *job, const char *s, struct prun_err *err)
{
    struct prun_err e;

    if (prun__halt_parse(job, s, &e) < 0)
        return prun__err_set(err, PRUN_EINVAL, "--halt: %s", e.msg);
    return 0;
}

/* -j N or -j N% (of the CPUs; parallel's -j 100% is one per CPU). */
static int parse_jobs(struct prun_adhoc *a, const char *s, struct prun_err *err)
{
    size_t n = strlen(s);
    long long v;
    struct prun_err e;
    char num[32];

    if (n > 1 && s[n - 1] == '%' && n < sizeof(num)) {
        memcpy(num, s, n - 1);
        num[n - 1] = '\0';
        if (prun__parse_int(num, 1, 100000, &v, &e) < 0)
            return prun__err_set(err, PRUN_EINVAL, "-j: %s", e.msg);
        a->jobs_pct = (unsigned)v;
        return 0;
    }
    if (prun__parse_int(s, 1, 100000, &v, &e) < 0)
        return prun__err_set(err, PRUN_EINVAL, "-j: %s", e.msg);
    a->jobs = (unsigned)v;
    return 0;
}

static int add_seg(
    struct prun__adhoc_cl *p, const char *s, struct prun_err *err)
{
    const char *eq = strchr(s, '=');
    size_t i, n;
    char **nn, **nf;

    if (eq == NULL || eq == s || eq[1] == '\0')
        return prun__err_set(
            err, PRUN_EINVAL, "--segment expects NAME=FILE, got '%s'", s);
    n = (size_t)(eq - s);
    if (n > 64 || (!isalpha((unsigned char)s[0]) && s[0] != '_'))
        goto bad;
    for (i = 1; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            goto bad;
    nn = realloc(p->seg_names, (p->nsegs + 1) * sizeof(char *));
    if (nn != NULL)
        p->seg_names = nn;
    nf = realloc(p->seg_files, (p->nsegs + 1) * sizeof(char *));
    if (nf != NULL)
        p->seg_files = nf;
    if (nn == NULL || nf == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    p->seg_names[p->nsegs] = prun__arena_strndup(p->job->arena, s, n);
    p->seg_files[p->nsegs] = prun__arena_strdup(p->job->arena, eq + 1);
    if (p->seg_names[p->nsegs] == NULL || p->seg_files[p->nsegs] == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    for (i = 0; i < p->nsegs; i++)
        if (strcmp(p->seg_names[i], p->seg_names[p->nsegs]) == 0)
            return prun__err_set(err, PRUN_EINVAL,
                "--segment: segment '%s' given twice", p->seg_names[i]);
    p->nsegs++;
    return 0;
bad:
    return prun__err_set(err, PRUN_EINVAL,
        "--segment: '%.*s' is not a segment name (a letter or '_', then "
        "letters, digits or '_', at most 64)",
        (int)(n > 64 ? 64 : n), s);
}

/* An option without a value. */
static void set_flag(struct prun__adhoc_cl *p, int id)
{
    struct prun_adhoc *a = p->a;

    switch (id) {
    case O_KEEP:
        a->keep_order = 1;
        break;
    case O_TAG:
        a->tag = 1;
        break;
    case O_BAR:
        a->bar = 1;
        break;
    case O_ETA:
        a->eta = 1;
        break;
    case O_RESUME_FAILED:
        a->resume_joblog = a->resume_failed = 1;
        break;
    case O_DRY_RUN:
        a->dry_run = 1;
        break;
    case O_QUIET:
        a->quiet = 1;
        break;
    case O_JSON:
        a->json = 1;
        break;
    case O_NULL:
        p->null_sep = 1;
        break;
    case O_SHELL:
        p->shell = 1;
        break;
    case O_RESUME:
        /* --resume alone: GNU parallel's, against the joblog. */
        a->resume_joblog = 1;
        break;
    default:
        /* -q: parallel keeps the command's words as they are: always so. */
        break;
    }
}

/* An option with its value val. */
static int set_value(
    struct prun__adhoc_cl *p, int id, const char *val, struct prun_err *err)
{
    struct prun_adhoc *a = p->a;
    long long v;
    struct prun_err e;

    switch (id) {
    case O_JOBS:
        return parse_jobs(a, val, err);
    case O_TAGSTRING:
        a->tagstring = val;
        a->tag = 1;
        return 0;
    case O_HALT:
        return parse_halt(p->job, val, err);
    case O_RETRIES:
        /* parallel's --retries N is N tries in all; ours counts extra. */
        if (prun__parse_int(val, 0, 1000, &v, &e) < 0)
            return prun__err_set(err, PRUN_EINVAL, "--retries: %s", e.msg);
        p->retries = v > 0 ? (unsigned)v - 1 : 0;
        return 0;
    case O_TIMEOUT:
        return parse_dur("--timeout", val, &p->timeout_ms, err);
    case O_DELAY:
        return parse_dur("--delay", val, &p->delay_ms, err);
    case O_JOBLOG:
        a->joblog_append = val[0] == '+';
        a->joblog = val + (val[0] == '+');
        if (a->joblog[0] == '\0')
            return prun__err_set(err, PRUN_EINVAL, "--joblog: empty file name");
        return 0;
    case O_RESULTS:
        a->results = val;
        return 0;
    case O_RESUME:
        a->resume = val;
        return 0;
    case O_SEGMENT:
        return add_seg(p, val, err);
    case O_REDIS:
        a->redis = val;
        return 0;
    default:
        return 0;
    }
}

int prun__adhoc_options(struct prun__adhoc_cl *p, int argc, char **argv, int *i,
    struct prun_err *err)
{
    for (; *i < argc; (*i)++) {
        const char *s = argv[*i], *val;
        int k, rc;

        if (strcmp(s, "--") == 0) {
            (*i)++;
            break;
        }
        if (s[0] != '-' || s[1] == '\0' || strcmp(s, ":::") == 0)
            break;
        if ((k = find_opt(s, &val)) < 0)
            return prun__err_set(err, PRUN_EINVAL, "unknown option '%s'", s);
        /* Bundled short options: -k0, -kj4 is not supported. */
        if (opts[k].arg == 0 && val != NULL)
            return prun__err_set(
                err, PRUN_EINVAL, "option '%s' takes no value", s);
        if (opts[k].arg == 1 && val == NULL) {
            if (*i + 1 >= argc)
                return prun__err_set(
                    err, PRUN_EINVAL, "option '%s' needs a value", s);
            val = argv[++*i];
        }
        if (val == NULL)
            set_flag(p, opts[k].id);
        else if ((rc = set_value(p, opts[k].id, val, err)) < 0)
            return rc;
    }
    return 0;
}
