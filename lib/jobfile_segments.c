/* SPDX-License-Identifier: MIT */
/*
 * jobfile_segments: the job file's `segments` (file, size, writable,
 * dtype, shape) converted to struct prun_segdef, with their names checked
 * (unique ignoring case, not reserved). Loading them is segment.c's.
 */
#include "jobfile_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- segments ---- */

static const char *const seg_keys[] = {"file", "size", "writable", "dtype",
    "shape", "hugepages", "published", "copy"};

static int load_shape(struct ld *ld, struct prun_segdef *sd,
    const struct ynode *k, const struct ynode *v)
{
    long long x;
    size_t i, n;
    char b[64];
    int rc;

    if (prun__jf_is_null(v))
        return prun__ld_fail(ld, k, "missing value for 'shape'");
    if (v->type == Y_MAP)
        return prun__ld_fail(ld, v,
            "'shape' must be an integer or a sequence of integers, got %s",
            prun__jf_got(v, b, sizeof(b)));
    n = v->type == Y_SEQ ? v->n : 1;
    if (n == 0 || n > 32)
        return prun__ld_fail(ld, v, "'shape' must have 1 to 32 dimensions");
    sd->shape = prun__arena_alloc(ld->job->arena, n * sizeof(*sd->shape));
    if (sd->shape == NULL)
        return prun__ld_nomem(ld);
    for (i = 0; i < n; i++) {
        const struct ynode *e = v->type == Y_SEQ ? v->kids[i] : v;
        if ((rc = prun__jf_get_int(ld, k, e, 0, LLONG_MAX, &x)) < 0)
            return rc;
        sd->shape[i] = (uint64_t)x;
    }
    sd->ndim = n;
    return 0;
}

/* size: a size with a unit, greater than 0. */
static int load_size(struct ld *ld, struct prun_segdef *sd,
    const struct ynode *k, const struct ynode *v)
{
    const char *s = NULL;
    struct prun_err e;
    char b[64];
    int rc;

    if ((rc = prun__jf_get_scalar(ld, k, v, "a size", &s)) < 0)
        return rc;
    if (prun__parse_size(s, &sd->size, &e) < 0)
        return prun__ld_fail(ld, v, "'size': %s", e.msg);
    if (sd->size == 0)
        return prun__ld_fail(ld, v, "'size' must be greater than 0, got %s",
            prun__jf_got(v, b, sizeof(b)));
    return 0;
}

/* dtype: what numpy's type strings are made of, at most 32 characters. */
static int load_dtype(struct ld *ld, struct prun_segdef *sd,
    const struct ynode *k, const struct ynode *v)
{
    const char *s = NULL;
    char b[64];
    int rc;

    if ((rc = prun__jf_get_scalar(ld, k, v, "a string", &s)) < 0)
        return rc;
    if (s[0] == '\0' || strlen(s) > 32 ||
        strspn(s, "<>|=_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP"
                  "QRSTUVWXYZ0123456789") != strlen(s))
        return prun__ld_fail(ld, v,
            "'dtype' must be a numpy type like float32 or <f8, got %s",
            prun__jf_got(v, b, sizeof(b)));
    if ((sd->dtype = prun__arena_strdup(ld->job->arena, s)) == NULL)
        return prun__ld_nomem(ld);
    return 0;
}

/* hugepages: auto or never. */
static int load_hugepages(struct ld *ld, struct prun_segdef *sd,
    const struct ynode *k, const struct ynode *v)
{
    const char *s = NULL;
    char b[64];
    int rc;

    if ((rc = prun__jf_get_scalar(ld, k, v, "auto or never", &s)) < 0)
        return rc;
    if (strcmp(s, "auto") == 0)
        sd->hugepages = PRUN_HUGE_AUTO;
    else if (strcmp(s, "never") == 0)
        sd->hugepages = PRUN_HUGE_NEVER;
    else
        return prun__ld_fail(ld, v, "'hugepages' must be auto or never, got %s",
            prun__jf_got(v, b, sizeof(b)));
    return 0;
}

int prun__jf_load_segment(struct ld *ld, struct prun_segdef *sd,
    const struct ynode *k, const struct ynode *v)
{
    const struct ynode *fk = NULL, *sk = NULL, *wk = NULL, *pk = NULL;
    const struct ynode *ck = NULL;
    char where[96];
    size_t i;
    int rc = 0;

    if ((rc = prun__jf_check_name(ld, k, NAME_SEGMENT, "segment name")) < 0)
        return rc;
    if ((sd->name = prun__arena_strdup(ld->job->arena, k->str)) == NULL)
        return prun__ld_nomem(ld);
    sd->pos = prun__jf_pos_of(k);
    snprintf(where, sizeof(where), "segment '%s'", sd->name);
    if ((rc = prun__jf_want_map(ld, k, v, where)) < 0)
        return rc;
    snprintf(where, sizeof(where), " in segment '%s'", sd->name);
    if ((rc = prun__jf_check_keys(ld, v, seg_keys, 8, where)) < 0)
        return rc;
    for (i = 0; i < v->n && rc == 0; i += 2) {
        const struct ynode *ek = v->kids[i], *ev = v->kids[i + 1];
        if (strcmp(ek->str, "file") == 0) {
            fk = ek;
            rc = prun__jf_static_str(ld, ek, ev, &sd->file);
        } else if (strcmp(ek->str, "size") == 0) {
            sk = ek;
            rc = load_size(ld, sd, ek, ev);
        } else if (strcmp(ek->str, "writable") == 0) {
            wk = ek;
            rc = prun__jf_get_bool(ld, ek, ev, &sd->writable);
        } else if (strcmp(ek->str, "dtype") == 0) {
            rc = load_dtype(ld, sd, ek, ev);
        } else if (strcmp(ek->str, "shape") == 0) {
            rc = load_shape(ld, sd, ek, ev);
        } else if (strcmp(ek->str, "published") == 0) {
            rc = prun__jf_get_bool(ld, ek, ev, &sd->published);
            if (sd->published)
                pk = ek;
        } else if (strcmp(ek->str, "copy") == 0) {
            int copy = 1;
            ck = ek;
            rc = prun__jf_get_bool(ld, ek, ev, &copy);
            sd->nocopy = !copy;
        } else {
            rc = load_hugepages(ld, sd, ek, ev);
        }
    }
    if (rc < 0)
        return rc;
    /* Exactly one of file:, size: and published: true. */
    if (fk != NULL && sk != NULL)
        return prun__ld_fail(ld, fk->line > sk->line ? fk : sk,
            "segment '%s' has both 'file' and 'size'; use one", sd->name);
    if (pk != NULL && (fk != NULL || sk != NULL))
        return prun__ld_fail(ld, pk,
            "segment '%s' has both '%s' and 'published'; a published "
            "segment is created by a child, use one",
            sd->name, fk != NULL ? "file" : "size");
    if (fk == NULL && sk == NULL && pk == NULL)
        return prun__ld_fail(ld, k,
            "segment '%s' needs 'file', 'size' or 'published: true'", sd->name);
    if (fk != NULL && sd->writable)
        return prun__ld_fail(ld, wk,
            "file segments are read-only; use size: with writable: true");
    if (pk != NULL && sd->writable)
        return prun__ld_fail(ld, wk,
            "published segments are read-only; use size: with writable: "
            "true");
    if (ck != NULL && fk == NULL)
        return prun__ld_fail(ld, ck,
            "'copy' applies to file segments only (segment '%s')", sd->name);
    return 0;
}

/*
 * A segment reaches a child as PARALLELRUN_SEGMENT_<NAME in upper case>
 * plus _SIZE, _DTYPE, ... variables, and a published one as a file beside
 * the run's 'owner' file. So names are compared without case, 'owner' is
 * reserved, and no name may be another's plus one of those suffixes.
 */
int prun__jf_check_seg_name(
    struct ld *ld, const struct prun_job *job, size_t i, const struct ynode *k)
{
    static const char *const suffixes[] = {
        "_SIZE", "_DTYPE", "_SHAPE", "_WRITABLE", "_HUGEPAGES"};
    const char *name = job->segs[i].name;
    size_t j, x, n = strlen(name);

    if (strcasecmp(name, "owner") == 0)
        return prun__ld_fail(ld, k,
            "segment name '%s' is reserved (the run directory's owner file)",
            name);
    for (j = 0; j < i; j++) {
        const char *o = job->segs[j].name;
        size_t m = strlen(o);

        if (strcasecmp(o, name) == 0)
            return prun__ld_fail(ld, k,
                "segment '%s' and segment '%s' (line %u) differ only in case; "
                "both would be PARALLELRUN_SEGMENT_%s",
                name, o, job->segs[j].pos.line, o);
        for (x = 0; x < sizeof(suffixes) / sizeof(suffixes[0]); x++) {
            size_t sl = strlen(suffixes[x]);
            const char *longer = n > m ? name : o, *shorter = n > m ? o : name;
            size_t ll = n > m ? n : m, sl2 = n > m ? m : n;

            if (ll == sl2 + sl && strncasecmp(longer, shorter, sl2) == 0 &&
                strcasecmp(longer + sl2, suffixes[x]) == 0)
                return prun__ld_fail(ld, k,
                    "segment '%s' clashes with segment '%s' (line %u): "
                    "PARALLELRUN_SEGMENT_%s%s would name both",
                    name, o, job->segs[j].pos.line, shorter, suffixes[x]);
        }
    }
    return 0;
}
