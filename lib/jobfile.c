/* SPDX-License-Identifier: MIT */
/*
 * jobfile: the loader's second half and its entry points. It reads a job
 * file (described in README, "A job file"), has
 * yamltree.c parse it into a tree of positioned nodes, and converts that
 * tree into a struct prun_job with strict checks (the schema), so that
 * every mistake is reported as "FILE:LINE:COL: message" before anything
 * starts. It does not run, expand or iterate anything: templates are
 * compiled by job_tpl.c, foreach sources are read later by the iterators.
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

/*
 * Task i's needs (v: a name or a sequence of names, or NULL) to indices
 * of tasks, each once; names maps every task's name to its index.
 */
static int resolve_needs(struct ld *ld, size_t i, const struct ynode *v,
    const struct smap *names, const char **cands)
{
    struct prun_job *job = ld->job;
    struct prun_task *t = &job->tasks[i];
    size_t n = v == NULL ? 0 : v->type == Y_SEQ ? v->n : 1, j, m;

    if (n > 0 && (t->needs = prun__arena_alloc(
                      job->arena, n * sizeof(*t->needs))) == NULL)
        return prun__ld_nomem(ld);
    for (j = 0; j < n; j++) {
        const struct ynode *e = v->type == Y_SEQ ? v->kids[j] : v;
        const size_t *p = prun__smap_get(names, e->str);
        const char *sugg;
        if (p == NULL) {
            sugg = prun__closest(e->str, cands, job->ntasks);
            return prun__ld_fail(ld, e,
                "task '%s' needs '%.64s', which is not defined%s%s%s", t->name,
                e->str, sugg ? " (did you mean '" : "", sugg ? sugg : "",
                sugg ? "'?)" : "");
        }
        if (*p == i)
            return prun__ld_fail(ld, e, "task '%s' needs itself", t->name);
        for (m = 0; m < t->nneeds && t->needs[m] != *p; m++)
            ;
        if (m == t->nneeds)
            t->needs[t->nneeds++] = *p;
    }
    return 0;
}

/*
 * Task t's segments (v: a name or a sequence of names, or NULL) to
 * indices of job->segs, each once; segs is the 'segments:' node, if any.
 */
static int resolve_segs(struct ld *ld, struct prun_task *t,
    const struct ynode *v, const struct ynode *segs)
{
    struct prun_job *job = ld->job;
    size_t n = v == NULL ? 0 : v->type == Y_SEQ ? v->n : 1, j, m, q;

    if (n > 0 &&
        (t->segs = prun__arena_alloc(job->arena, n * sizeof(*t->segs))) == NULL)
        return prun__ld_nomem(ld);
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
            return prun__ld_fail(ld, e,
                "task '%s' uses segment '%.64s', which is not "
                "defined%s%s%s",
                t->name, e->str,
                sugg   ? " (did you mean '"
                : segs ? ""
                       : " (no 'segments:')",
                sugg ? sugg : "", sugg ? "'?)" : "");
        }
        for (q = 0; q < t->nsegs && t->segs[q] != m; q++)
            ;
        if (q == t->nsegs)
            t->segs[t->nsegs++] = m;
    }
    return 0;
}

static int resolve_refs(
    struct ld *ld, struct tdef *tds, const struct ynode *segs)
{
    struct prun_job *job = ld->job;
    struct smap names = {0};
    const char **cands = NULL;
    size_t i, *idx = NULL;
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
    for (i = 0; i < job->ntasks && rc == 0; i++)
        rc = resolve_needs(ld, i, tds[i].needs, &names, cands);
    for (i = 0; i < job->ntasks && rc == 0; i++)
        rc = resolve_segs(ld, &job->tasks[i], tds[i].segs, segs);
fail:
    prun__smap_free(&names);
    free(idx);
    free(cands);
    return rc;
}

static const char *const top_keys[] = {"version", "name", "jobs", "vars",
    "lock", "halt", "max_failures", "segments", "defaults", "tasks"};
#define NTOP_KEYS (sizeof(top_keys) / sizeof(top_keys[0]))

/* version: the integer 1, the only one there is. */
static int load_version(
    struct ld *ld, const struct ynode *k, const struct ynode *v)
{
    const char *s = NULL;
    char b[64];
    int rc;

    if ((rc = prun__jf_get_any_scalar(ld, k, v, "an integer", &s)) < 0)
        return rc;
    if (strcmp(s, "1") != 0 || prun__jf_scalar_type(v) != S_INT)
        return prun__ld_fail(ld, v, "'version' must be 1, got %s",
            prun__jf_got(v, b, sizeof(b)));
    return 0;
}

/* name (v), or when there is none (v NULL) the default name. */
static int load_name(
    struct ld *ld, const struct ynode *k, const struct ynode *v)
{
    struct prun_job *job = ld->job;
    const char *s = NULL;
    int rc;

    if (v != NULL) {
        if ((rc = prun__jf_get_scalar(ld, k, v, "a string", &s)) < 0 ||
            (rc = prun__jf_check_name(ld, v, NAME_TASK, "job name")) < 0)
            return rc;
        job->name = prun__arena_strdup(job->arena, s);
    } else {
        job->name = default_name(ld);
    }
    if (job->name == NULL)
        return prun__ld_nomem(ld);
    return 0;
}

/*
 * halt: when (never, soon, now) and on what (GNU parallel's fail=N[%],
 * success=N[%], done=N[%]); max_failures: the older spelling of fail=N.
 */
static int load_halt(struct ld *ld, const struct ynode *k,
    const struct ynode *v, const struct ynode *mk, const struct ynode *mv)
{
    struct prun_job *job = ld->job;
    const char *s = NULL;
    struct prun_err e;
    int rc;

    job->max_failures = 1;
    if (v != NULL) {
        if ((rc = prun__jf_get_scalar(
                 ld, k, v, "never, soon or now (with ',fail=N')", &s)) < 0)
            return rc;
        if (prun__halt_parse(job, s, &e) < 0)
            return prun__ld_fail(ld, v, "'halt': %s", e.msg);
    }
    if (mv == NULL)
        return 0;
    if (s != NULL && strchr(s, ',') != NULL)
        return prun__ld_fail(ld, mk,
            "'max_failures' and a condition in 'halt' (%s): give one", s);
    job->halt_on = PRUN_HALT_ON_FAIL;
    job->halt_pct = 0;
    return prun__jf_get_uint(ld, mk, mv, 1, INT_MAX, &job->max_failures);
}

/* segments: a mapping of names to segment definitions. */
static int load_segments(
    struct ld *ld, const struct ynode *k, const struct ynode *v)
{
    struct prun_job *job = ld->job;
    size_t i;
    int rc;

    if ((rc = prun__jf_want_map(ld, k, v, "'segments'")) < 0)
        return rc;
    job->nsegs = v->n / 2;
    job->segs = prun__arena_alloc(
        job->arena, (job->nsegs ? job->nsegs : 1) * sizeof(*job->segs));
    if (job->segs == NULL)
        return prun__ld_nomem(ld);
    for (i = 0; i < job->nsegs; i++)
        if ((rc = prun__jf_load_segment(
                 ld, &job->segs[i], v->kids[2 * i], v->kids[2 * i + 1])) < 0 ||
            (rc = prun__jf_check_seg_name(ld, job, i, v->kids[2 * i])) < 0)
            return rc;
    return 0;
}

/*
 * tasks: a non-empty mapping of names to tasks, loaded with the defaults
 * d, then their needs and segments (segs: the 'segments:' node, if any)
 * resolved and the whole model checked.
 */
static int load_tasks(struct ld *ld, const struct ynode *k,
    const struct ynode *v, const struct dflt *d, const struct ynode *segs)
{
    struct prun_job *job = ld->job;
    struct tdef *tds = NULL;
    size_t i;
    int rc;

    if ((rc = prun__jf_want_map(ld, k, v, "'tasks'")) < 0)
        return rc;
    if (v->n == 0)
        return prun__ld_fail(ld, v, "'tasks' must not be empty");
    job->ntasks = v->n / 2;
    job->tasks =
        prun__arena_alloc(job->arena, job->ntasks * sizeof(*job->tasks));
    tds = calloc(job->ntasks, sizeof(*tds));
    if (job->tasks == NULL || tds == NULL) {
        rc = prun__ld_nomem(ld);
        goto fail;
    }
    for (i = 0; i < job->ntasks; i++)
        if ((rc = prun__jf_load_task(ld, &job->tasks[i], &tds[i],
                 v->kids[2 * i], v->kids[2 * i + 1], d)) < 0)
            goto fail;
    if ((rc = resolve_refs(ld, tds, segs)) < 0)
        goto fail;
    rc = prun__job_check(job, ld->err);
fail:
    free(tds);
    return rc;
}

static int convert(struct ld *ld, const struct prun_set *sets, size_t nsets)
{
    const struct ynode *root = ld->root, *slot[NTOP_KEYS] = {0},
                       *kslot[NTOP_KEYS] = {0};
    struct prun_job *job = ld->job;
    struct dflt d = {0, -1, 1000, 0, NULL, NULL};
    size_t i, j;
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

    if ((slot[0] != NULL && (rc = load_version(ld, kslot[0], slot[0])) < 0) ||
        (rc = load_name(ld, kslot[1], slot[1])) < 0)
        return rc;
    if (slot[2] != NULL && (rc = prun__jf_get_uint(ld, kslot[2], slot[2], 1,
                                100000, &job->jobs)) < 0)
        return rc;
    if ((rc = load_vars(ld, kslot[3], slot[3], sets, nsets)) < 0)
        return rc;
    if (slot[4] != NULL &&
        (rc = prun__jf_get_bool(ld, kslot[4], slot[4], &job->lock)) < 0)
        return rc;
    if ((rc = load_halt(ld, kslot[5], slot[5], kslot[6], slot[6])) < 0)
        return rc;
    if (slot[7] != NULL && (rc = load_segments(ld, kslot[7], slot[7])) < 0)
        return rc;
    if (slot[8] != NULL &&
        (rc = prun__jf_load_defaults(ld, kslot[8], slot[8], &d)) < 0)
        return rc;
    return load_tasks(ld, kslot[9], slot[9], &d, slot[7]);
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
