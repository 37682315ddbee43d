/* SPDX-License-Identifier: MIT */
/*
 * jobfile_foreach: a task's `foreach` in the job file (list, range,
 * lines, glob, matrix, chunk) converted to a struct prun_foreach. The
 * items themselves are read later, by the iterators (iter.c).
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

/* ---- foreach ---- */

/*
 * One mapping item of a list, whose keys were checked against the first
 * item: the values in the first item's key order, and text = them joined.
 */
static int load_map_item(struct ld *ld, const struct ynode *first,
    const char **keys, size_t nkeys, const struct ynode *it,
    struct prun_item *item)
{
    struct prun_arena *a = ld->job->arena;
    struct prun_buf text = {0};
    const char **vals;
    size_t j;
    char b[64];
    int rc = 0;

    vals = prun__arena_alloc(a, nkeys * sizeof(*vals));
    if (vals == NULL) {
        rc = prun__ld_nomem(ld);
        goto fail;
    }
    for (j = 0; j < nkeys; j++) {
        const struct ynode *val = prun__jf_map_get(it, keys[j], NULL);
        if (val == NULL) {
            rc = prun__ld_fail(ld, it,
                "'list' item lacks key '%s' of the first item (line %u)",
                keys[j], first->line);
            goto fail;
        }
        if (prun__jf_is_null(val)) {
            rc = prun__ld_fail(ld, val, "missing value for '%s'", keys[j]);
            goto fail;
        }
        if (val->type != Y_SCALAR) {
            rc = prun__ld_fail(ld, val, "'%s' must be a string, got %s",
                keys[j], prun__jf_got(val, b, sizeof(b)));
            goto fail;
        }
        if ((rc = prun__jf_text_ok(ld, val, keys[j], NULL)) < 0)
            goto fail;
        vals[j] = prun__arena_strdup(a, val->str);
        if (vals[j] == NULL || (j > 0 && prun__buf_addc(&text, ' ') < 0) ||
            prun__buf_adds(&text, val->str) < 0) {
            rc = prun__ld_nomem(ld);
            goto fail;
        }
    }
    if ((item->text = prun__arena_strdup(a, text.data)) == NULL) {
        rc = prun__ld_nomem(ld);
        goto fail;
    }
    item->nkeys = nkeys;
    item->keys = keys;
    item->vals = vals;
fail:
    prun__buf_free(&text);
    return rc;
}

static int load_list(struct ld *ld, struct prun_task *t, const struct ynode *k,
    const struct ynode *v)
{
    struct prun_foreach *f = &t->foreach;
    struct prun_arena *a = ld->job->arena;
    const struct ynode *first;
    const char **keys = NULL;
    size_t i, j, nkeys = 0;
    char b[64];
    int rc;

    if (prun__jf_is_null(v))
        return prun__ld_fail(ld, k, "missing value for 'list'");
    if (v->type != Y_SEQ)
        return prun__ld_fail(ld, v, "'list' must be a sequence, got %s",
            prun__jf_got(v, b, sizeof(b)));
    f->nlist = v->n;
    f->list = prun__arena_alloc(a, (v->n ? v->n : 1) * sizeof(*f->list));
    if (f->list == NULL)
        return prun__ld_nomem(ld);
    if (v->n == 0)
        return 0;
    first = v->kids[0];
    if (first->type == Y_MAP) {
        nkeys = first->n / 2;
        if (nkeys == 0)
            return prun__ld_fail(
                ld, first, "'list' items must not be empty mappings");
        keys = prun__arena_alloc(a, nkeys * sizeof(*keys));
        if (keys == NULL)
            return prun__ld_nomem(ld);
        for (j = 0; j < nkeys; j++) {
            if ((rc = prun__jf_check_name(
                     ld, first->kids[2 * j], NAME_KEY, "item key")) < 0)
                return rc;
            if ((keys[j] = prun__arena_strdup(a, first->kids[2 * j]->str)) ==
                NULL)
                return prun__ld_nomem(ld);
        }
    }
    for (i = 0; i < v->n; i++) {
        const struct ynode *it = v->kids[i];
        struct prun_item *item = &f->list[i];

        if (prun__jf_is_null(it))
            return prun__ld_fail(ld, it, "missing value in 'list'");
        if (keys == NULL) {
            if (it->type != Y_SCALAR)
                return prun__ld_fail(ld, it,
                    "'list' items must all be strings like the first, got %s",
                    prun__jf_got(it, b, sizeof(b)));
            if ((rc = prun__jf_text_ok(ld, it, NULL, "a 'list' item")) < 0)
                return rc;
            if ((item->text = prun__arena_strdup(a, it->str)) == NULL)
                return prun__ld_nomem(ld);
            continue;
        }
        if (it->type != Y_MAP)
            return prun__ld_fail(ld, it,
                "'list' items must all be mappings like the first, got %s",
                prun__jf_got(it, b, sizeof(b)));
        for (j = 0; j < it->n; j += 2) {
            if (prun__jf_map_get(first, it->kids[j]->str, NULL) == NULL)
                return prun__ld_fail(ld, it->kids[j],
                    "key '%.64s' is not in the first 'list' item (line %u)",
                    it->kids[j]->str, first->line);
        }
        if ((rc = load_map_item(ld, first, keys, nkeys, it, item)) < 0)
            return rc;
    }
    return 0;
}

static int load_range(struct ld *ld, struct prun_foreach *f,
    const struct ynode *k, const struct ynode *v)
{
    long long x[3] = {0, 0, 1};
    char b[64], *end;
    size_t i;

    if (prun__jf_is_null(v))
        return prun__ld_fail(ld, k, "missing value for 'range'");
    if (v->type == Y_SEQ && (v->n < 2 || v->n > 3))
        return prun__ld_fail(ld, v,
            "'range' must be [from, to] or [from, to, step], got %zu value%s",
            v->n, v->n == 1 ? "" : "s");
    if (v->type != Y_SEQ)
        return prun__ld_fail(ld, v,
            "'range' must be [from, to] or [from, to, step], got %s",
            prun__jf_got(v, b, sizeof(b)));
    for (i = 0; i < v->n; i++) {
        const struct ynode *e = v->kids[i];
        if (e->type != Y_SCALAR || !e->plain)
            return prun__ld_fail(ld, e,
                "'range' values must be integers, got %s%s",
                e->type == Y_SCALAR ? "the string " : "",
                prun__jf_got(e, b, sizeof(b)));
        errno = 0;
        x[i] = strtoll(e->str, &end, 10);
        if (end == e->str || *end != '\0' || isspace((unsigned char)e->str[0]))
            return prun__ld_fail(ld, e,
                "'range' values must be integers, got %s",
                prun__jf_got(e, b, sizeof(b)));
        if (errno == ERANGE)
            return prun__ld_fail(ld, e,
                "'range' values must be between %lld and %lld, got %s",
                LLONG_MIN, LLONG_MAX, prun__jf_got(e, b, sizeof(b)));
    }
    if (x[2] == 0)
        return prun__ld_fail(ld, v->kids[2], "'range' step must not be 0");
    f->from = x[0];
    f->to = x[1];
    f->step = x[2];
    return 0;
}

static int load_matrix(struct ld *ld, struct prun_foreach *f,
    const struct ynode *k, const struct ynode *v)
{
    struct prun_arena *a = ld->job->arena;
    size_t i, j;
    char b[64];
    int rc;

    if ((rc = prun__jf_want_map(ld, k, v, "'matrix'")) < 0)
        return rc;
    if (v->n == 0)
        return prun__ld_fail(ld, v, "'matrix' must not be empty");
    f->naxes = v->n / 2;
    f->axes = prun__arena_alloc(a, f->naxes * sizeof(*f->axes));
    if (f->axes == NULL)
        return prun__ld_nomem(ld);
    for (i = 0; i < f->naxes; i++) {
        const struct ynode *ak = v->kids[2 * i], *av = v->kids[2 * i + 1];
        struct prun_axis *ax = &f->axes[i];

        if ((rc = prun__jf_check_name(ld, ak, NAME_KEY, "matrix axis name")) <
            0)
            return rc;
        if (prun__jf_is_null(av))
            return prun__ld_fail(ld, ak, "missing value for '%.64s'", ak->str);
        if (av->type != Y_SEQ || av->n == 0)
            return prun__ld_fail(ld, av,
                "matrix axis '%.64s' must be a non-empty sequence, got %s",
                ak->str,
                av->type == Y_SEQ ? "an empty one"
                                  : prun__jf_got(av, b, sizeof(b)));
        ax->name = prun__arena_strdup(a, ak->str);
        ax->nvals = av->n;
        ax->vals = prun__arena_alloc(a, av->n * sizeof(*ax->vals));
        if (ax->name == NULL || ax->vals == NULL)
            return prun__ld_nomem(ld);
        for (j = 0; j < av->n; j++) {
            const struct ynode *e = av->kids[j];
            if (prun__jf_is_null(e))
                return prun__ld_fail(
                    ld, e, "missing value in matrix axis '%.64s'", ak->str);
            if (e->type != Y_SCALAR)
                return prun__ld_fail(ld, e,
                    "matrix axis '%.64s' values must be strings, got %s",
                    ak->str, prun__jf_got(e, b, sizeof(b)));
            if ((rc = prun__jf_text_ok(ld, e, NULL, "a matrix value")) < 0)
                return rc;
            if ((ax->vals[j] = prun__arena_strdup(a, e->str)) == NULL)
                return prun__ld_nomem(ld);
        }
    }
    return 0;
}

static const char *const foreach_keys[] = {"list", "range", "lines", "glob",
    "matrix", "chunk", "allow_empty", "separator"};

/* Parses foreach into t->foreach; *keys and *nkeys: what {item.KEY} names. */
/*
 * The one source key of a foreach mapping v (list, range, lines, glob or
 * matrix): *sk and *sv.
 */
static int find_source(struct ld *ld, const struct ynode *v,
    const struct ynode **sk, const struct ynode **sv)
{
    size_t i, j;

    *sk = NULL;
    for (i = 0; i < v->n; i += 2) {
        for (j = 0; j < 5; j++)
            if (strcmp(v->kids[i]->str, foreach_keys[j]) == 0)
                break;
        if (j == 5)
            continue;
        if (*sk != NULL)
            return prun__ld_fail(ld, v->kids[i],
                "'foreach' has both '%s' and '%s'; use only one", (*sk)->str,
                v->kids[i]->str);
        *sk = v->kids[i];
        *sv = v->kids[i + 1];
    }
    if (*sk == NULL)
        return prun__ld_fail(ld, v,
            "'foreach' needs one of 'list', 'range', 'lines', 'glob', "
            "'matrix'");
    return 0;
}

/* chunk, allow_empty and separator (lines only) of foreach mapping v. */
static int load_options(struct ld *ld, struct prun_foreach *f,
    const struct ynode *v, const struct ynode *sk)
{
    size_t i;
    int rc;

    f->chunk = 1;
    for (i = 0; i < v->n; i += 2)
        if (strcmp(v->kids[i]->str, "chunk") == 0 &&
            (rc = prun__jf_get_uint(
                 ld, v->kids[i], v->kids[i + 1], 1, 1000000, &f->chunk)) < 0)
            return rc;
    for (i = 0; i < v->n; i += 2) {
        const struct ynode *ok = v->kids[i], *ov = v->kids[i + 1];
        const char *sep = NULL;

        if (strcmp(ok->str, "allow_empty") == 0 &&
            (rc = prun__jf_get_bool(ld, ok, ov, &f->allow_empty)) < 0)
            return rc;
        if (strcmp(ok->str, "separator") != 0)
            continue;
        if (strcmp(sk->str, "lines") != 0)
            return prun__ld_fail(ld, ok, "'separator' applies only to 'lines'");
        if ((rc = prun__jf_get_scalar(ld, ok, ov, "newline or nul", &sep)) < 0)
            return rc;
        if (strcmp(sep, "nul") == 0)
            f->nul_sep = 1;
        else if (strcmp(sep, "newline") != 0)
            return prun__ld_fail(
                ld, ov, "'separator' must be newline or nul, got '%.64s'", sep);
    }
    return 0;
}

int prun__jf_load_foreach(struct ld *ld, struct prun_task *t,
    const struct ynode *k, const struct ynode *v, const char *const **keys,
    size_t *nkeys)
{
    struct prun_foreach *f = &t->foreach;
    const struct ynode *sk = NULL, *sv = NULL;
    char where[112];
    size_t i;
    int rc;

    snprintf(where, sizeof(where), " in 'foreach' of task '%s'", t->name);
    if ((rc = prun__jf_want_map(ld, k, v, "'foreach'")) < 0 ||
        (rc = prun__jf_check_keys(ld, v, foreach_keys, 8, where)) < 0 ||
        (rc = find_source(ld, v, &sk, &sv)) < 0)
        return rc;
    f->pos = prun__jf_pos_of(sv);
    if ((rc = load_options(ld, f, v, sk)) < 0)
        return rc;
    *keys = NULL;
    *nkeys = 0;
    if (strcmp(sk->str, "list") == 0) {
        f->kind = PRUN_SRC_LIST;
        if ((rc = load_list(ld, t, sk, sv)) < 0)
            return rc;
        if (f->nlist > 0 && f->list[0].nkeys > 0) {
            *keys = (const char *const *)f->list[0].keys;
            *nkeys = f->list[0].nkeys;
        }
        return 0;
    }
    if (strcmp(sk->str, "range") == 0) {
        f->kind = PRUN_SRC_RANGE;
        return load_range(ld, f, sk, sv);
    }
    if (strcmp(sk->str, "matrix") == 0) {
        const char **names;
        f->kind = PRUN_SRC_MATRIX;
        if ((rc = load_matrix(ld, f, sk, sv)) < 0)
            return rc;
        names = prun__arena_alloc(ld->job->arena, f->naxes * sizeof(*names));
        if (names == NULL)
            return prun__ld_nomem(ld);
        for (i = 0; i < f->naxes; i++)
            names[i] = f->axes[i].name;
        *keys = names;
        *nkeys = f->naxes;
        return 0;
    }
    f->kind = strcmp(sk->str, "lines") == 0 ? PRUN_SRC_LINES : PRUN_SRC_GLOB;
    return prun__jf_static_str(ld, sk, sv, &f->path);
}
