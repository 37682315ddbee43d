/* SPDX-License-Identifier: MIT */
/*
 * wq_inst: the payload of a work-queue entry that is an instance of a job
 * (task position, {count}, items), packed with length prefixes so that no
 * byte of an item needs escaping. It knows nothing of Redis.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wq.h"

static int put(struct prun_buf *b, const char *s, size_t n)
{
    if (prun__buf_printf(b, "%zu:", n) < 0 || prun__buf_add(b, s, n) < 0)
        return PRUN_ENOMEM;
    return 0;
}

static int put_num(struct prun_buf *b, long long v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%lld", v);

    return put(b, tmp, (size_t)n);
}

int prun__wq_inst_pack(size_t task, long long count,
    const struct prun_item *items, size_t nitems, struct prun_buf *out)
{
    size_t i, k;

    if (put_num(out, (long long)task) < 0 || put_num(out, count) < 0 ||
        put_num(out, (long long)nitems) < 0)
        return PRUN_ENOMEM;
    for (i = 0; i < nitems; i++) {
        const struct prun_item *it = &items[i];

        if (put(out, it->text, strlen(it->text)) < 0 ||
            put_num(out, (long long)it->nkeys) < 0)
            return PRUN_ENOMEM;
        for (k = 0; k < it->nkeys; k++)
            if (put(out, it->keys[k], strlen(it->keys[k])) < 0 ||
                put(out, it->vals[k], strlen(it->vals[k])) < 0)
                return PRUN_ENOMEM;
    }
    return 0;
}

/* A reader over a payload. */
struct rd {
    const char *p, *end;
};

static int get(struct rd *r, const char **s, size_t *n)
{
    char *colon;
    unsigned long long v;

    if (r->p >= r->end)
        return -1;
    v = strtoull(r->p, &colon, 10);
    if (colon >= r->end || *colon != ':' || v > (size_t)(r->end - colon - 1))
        return -1;
    *s = colon + 1;
    *n = (size_t)v;
    r->p = colon + 1 + v;
    return 0;
}

static int get_num(struct rd *r, long long *v)
{
    const char *s;
    size_t n;
    char tmp[32];

    if (get(r, &s, &n) < 0 || n == 0 || n >= sizeof(tmp))
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    *v = strtoll(tmp, NULL, 10);
    return 0;
}

int prun__wq_inst_unpack(const char *p, size_t len, size_t *task,
    long long *count, struct prun_item **items, size_t *nitems,
    struct prun_err *err)
{
    struct rd r = {p, p + len};
    struct prun_item *tmp = NULL;
    const char *s;
    size_t n, i, k;
    long long t, c, ni, nk;
    int rc = PRUN_EINVAL;

    if (get_num(&r, &t) < 0 || get_num(&r, &c) < 0 || get_num(&r, &ni) < 0 ||
        t < 0 || ni < 0 || ni > 100000)
        goto fail;
    tmp = calloc(ni ? (size_t)ni : 1, sizeof(*tmp));
    if (tmp == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    /* Strings point into p for now; prun__items_dup copies them. */
    for (i = 0; i < (size_t)ni; i++) {
        char **keys = NULL, **vals = NULL;

        if (get(&r, &s, &n) < 0 || get_num(&r, &nk) < 0 || nk < 0 || nk > 1000)
            goto fail;
        tmp[i].text = strndup(s, n);
        if (nk > 0) {
            keys = calloc((size_t)nk, sizeof(char *));
            vals = calloc((size_t)nk, sizeof(char *));
        }
        tmp[i].nkeys = (size_t)nk;
        tmp[i].keys = (const char *const *)keys;
        tmp[i].vals = (const char *const *)vals;
        if (tmp[i].text == NULL || (nk > 0 && (!keys || !vals))) {
            rc = PRUN_ENOMEM;
            goto fail;
        }
        for (k = 0; k < (size_t)nk; k++) {
            if (get(&r, &s, &n) < 0)
                goto fail;
            keys[k] = strndup(s, n);
            if (get(&r, &s, &n) < 0)
                goto fail;
            vals[k] = strndup(s, n);
        }
    }
    *items = prun__items_dup(tmp, (size_t)ni);
    if (*items == NULL && ni > 0) {
        rc = PRUN_ENOMEM;
        goto fail;
    }
    *task = (size_t)t;
    *count = c;
    *nitems = (size_t)ni;
    rc = 0;
fail:
    for (i = 0; tmp && i < (size_t)(ni > 0 ? ni : 0); i++) {
        free((char *)tmp[i].text);
        for (k = 0; k < tmp[i].nkeys; k++) {
            if (tmp[i].keys)
                free((char *)tmp[i].keys[k]);
            if (tmp[i].vals)
                free((char *)tmp[i].vals[k]);
        }
        free((void *)tmp[i].keys);
        free((void *)tmp[i].vals);
    }
    free(tmp);
    if (rc == PRUN_EINVAL)
        prun__err_set(err, rc, "work queue: malformed instance payload");
    else if (rc == PRUN_ENOMEM)
        prun__err_set(err, rc, "out of memory");
    return rc;
}
