/* SPDX-License-Identifier: MIT */
/*
 * yamltree: the first half of the job file loader. It checks the bytes
 * (size, NUL, encoding), parses them with libyaml's event API -- this is
 * the only module that includes <yaml.h> -- and builds a small tree of
 * positioned nodes, resolving anchors and merge keys while refusing
 * duplicate keys, explicit tags other than !!str, documents nested too
 * deep and aliases that would expand beyond a sane bound. It knows
 * nothing of what a job file means: jobfile.c converts the tree.
 */
#include "jobfile_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

static int vfail_at(struct ld *ld, unsigned line, unsigned col, const char *fmt,
    va_list ap) __attribute__((format(printf, 4, 0)));

static int vfail_at(
    struct ld *ld, unsigned line, unsigned col, const char *fmt, va_list ap)
{
    char msg[224];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    return prun__err_set(
        ld->err, PRUN_EINVAL, "%s:%u:%u: %s", ld->path, line, col, msg);
}

int prun__ld_fail_at(
    struct ld *ld, unsigned line, unsigned col, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vfail_at(ld, line, col, fmt, ap);
    va_end(ap);
    return rc;
}

int prun__ld_fail(struct ld *ld, const struct ynode *n, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vfail_at(ld, n->line, n->col, fmt, ap);
    va_end(ap);
    return rc;
}

int prun__ld_nomem(struct ld *ld)
{
    return prun__err_set(ld->err, PRUN_ENOMEM, "out of memory");
}

/* ---- the string hash table ---- */

static size_t str_hash(const char *s)
{
    size_t h = 14695981039346656037ull & SIZE_MAX;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * (1099511628211ull & SIZE_MAX);
    return h;
}

static struct smap_ent *smap_slot(const struct smap *m, const char *key)
{
    size_t i = str_hash(key) & (m->cap - 1);

    while (m->e[i].key != NULL && strcmp(m->e[i].key, key) != 0)
        i = (i + 1) & (m->cap - 1);
    return &m->e[i];
}

const void *prun__smap_get(const struct smap *m, const char *key)
{
    return m->cap == 0 ? NULL : smap_slot(m, key)->val;
}

/* Inserts or replaces key; key must outlive the table. */
int prun__smap_set(struct smap *m, const char *key, const void *val)
{
    struct smap_ent *s;
    size_t i;

    if (2 * (m->n + 1) > m->cap) {
        struct smap old = *m;
        m->cap = old.cap ? old.cap * 2 : 16;
        m->n = 0;
        m->e = calloc(m->cap, sizeof(*m->e));
        if (m->e == NULL) {
            *m = old;
            return PRUN_ENOMEM;
        }
        for (i = 0; i < old.cap; i++)
            if (old.e[i].key != NULL)
                prun__smap_set(m, old.e[i].key, old.e[i].val);
        free(old.e);
    }
    s = smap_slot(m, key);
    if (s->key == NULL)
        m->n++;
    s->key = key;
    s->val = val;
    return 0;
}

void prun__smap_free(struct smap *m)
{
    free(m->e);
    m->e = NULL;
    m->cap = m->n = 0;
}

/* ---- YAML events to a node tree ---- */

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static struct ynode *node_new(struct ld *ld, enum ytype type, yaml_mark_t m)
{
    struct ynode *n = prun__arena_alloc(ld->tmp, sizeof(*n));

    if (n == NULL)
        return NULL;
    n->type = type;
    n->line = (unsigned)m.line + 1;
    n->col = (unsigned)m.column + 1;
    n->weight = 1;
    return n;
}

static int node_push(struct ld *ld, struct ynode *parent, struct ynode *kid)
{
    if (parent->n == parent->cap) {
        size_t ncap = parent->cap ? parent->cap * 2 : 4;
        struct ynode **k = prun__arena_alloc(ld->tmp, ncap * sizeof(*k));
        if (k == NULL)
            return prun__ld_nomem(ld);
        if (parent->n > 0)
            memcpy(k, parent->kids, parent->n * sizeof(*k));
        parent->kids = k;
        parent->cap = ncap;
    }
    parent->kids[parent->n++] = kid;
    parent->weight = sat_add(parent->weight, kid->weight);
    return 0;
}

/* Hangs a finished node under the open collection, or makes it the root. */
static int attach(struct ld *ld, struct ynode *n)
{
    if (ld->depth == 0) {
        ld->root = n;
        return 0;
    }
    return node_push(ld, ld->stack[ld->depth - 1], n);
}

static int is_merge_key(const struct ynode *k)
{
    return k->type == Y_SCALAR && k->plain && strcmp(k->str, "<<") == 0;
}

/*
 * Finishes a mapping: keys must be scalars and unique, and "<<" merge keys
 * are replaced, in place, by the pairs of the mappings they name that the
 * mapping does not set itself (earlier sources win over later ones, as the
 * YAML merge key specification says).
 */
/*
 * Every key of mapping m is a string, none twice (merge keys aside): each
 * goes into seen, and *merges says whether there was a "<<".
 */
static int index_keys(
    struct ld *ld, const struct ynode *m, struct smap *seen, int *merges)
{
    const struct ynode *first;
    size_t i;

    for (i = 0; i < m->n; i += 2) {
        const struct ynode *k = m->kids[i];
        if (k->type != Y_SCALAR)
            return prun__ld_fail(ld, k,
                "mapping keys must be strings, got a %s",
                k->type == Y_SEQ ? "sequence" : "mapping");
        if (is_merge_key(k)) {
            *merges = 1;
            continue;
        }
        if ((first = prun__smap_get(seen, k->str)) != NULL)
            return prun__ld_fail(ld, k,
                "duplicate key '%.64s' (first at line %u)", k->str,
                first->line);
        if (prun__smap_set(seen, k->str, k) < 0)
            return prun__ld_nomem(ld);
    }
    return 0;
}

/*
 * The most children m can have once its merge keys are expanded (*cap);
 * each "<<" must name a mapping or a list of them.
 */
static int merged_size(struct ld *ld, const struct ynode *m, size_t *cap)
{
    size_t i, s;

    for (i = 0; i < m->n; i += 2) {
        const struct ynode *v = m->kids[i + 1];
        size_t nsrc = 1;

        if (!is_merge_key(m->kids[i])) {
            *cap += 2;
            continue;
        }
        if (v->type == Y_SEQ)
            nsrc = v->n;
        for (s = 0; s < nsrc; s++) {
            const struct ynode *src = v->type == Y_SEQ ? v->kids[s] : v;
            if (src->type != Y_MAP)
                return prun__ld_fail(ld, src,
                    "'<<' must be followed by an alias to a mapping, or a "
                    "list of them");
            *cap += src->n;
        }
    }
    return 0;
}

/*
 * m's children with its merge keys expanded into kids (*n of them): the
 * mapping's own keys win, then the first source that has a key.
 */
static int merge_keys(struct ld *ld, const struct ynode *m, struct smap *seen,
    struct ynode **kids, size_t *n)
{
    size_t i, j, s;

    for (i = 0; i < m->n; i += 2) {
        struct ynode *v = m->kids[i + 1];
        size_t nsrc = v->type == Y_SEQ ? v->n : 1;

        if (!is_merge_key(m->kids[i])) {
            kids[(*n)++] = m->kids[i];
            kids[(*n)++] = v;
            continue;
        }
        for (s = 0; s < nsrc; s++) {
            const struct ynode *src = v->type == Y_SEQ ? v->kids[s] : v;
            for (j = 0; j < src->n; j += 2) {
                if (prun__smap_get(seen, src->kids[j]->str) != NULL)
                    continue;
                if (prun__smap_set(seen, src->kids[j]->str, src->kids[j]) < 0)
                    return prun__ld_nomem(ld);
                kids[(*n)++] = src->kids[j];
                kids[(*n)++] = src->kids[j + 1];
            }
        }
    }
    return 0;
}

static int map_finish(struct ld *ld, struct ynode *m)
{
    struct smap seen = {0};
    struct ynode **kids = NULL;
    size_t n = 0, cap = 0;
    int rc, merges = 0;

    if ((rc = index_keys(ld, m, &seen, &merges)) < 0 || !merges ||
        (rc = merged_size(ld, m, &cap)) < 0)
        goto fail;
    kids = prun__arena_alloc(ld->tmp, (cap ? cap : 1) * sizeof(*kids));
    if (kids == NULL) {
        rc = prun__ld_nomem(ld);
        goto fail;
    }
    if ((rc = merge_keys(ld, m, &seen, kids, &n)) < 0)
        goto fail;
    m->kids = kids;
    m->n = m->cap = n;
fail:
    prun__smap_free(&seen);
    return rc;
}

/* Line and column (in characters) of byte offset off of buf. */
static void offset_pos(
    const char *buf, size_t off, unsigned *line, unsigned *col)
{
    size_t i;

    *line = 1;
    *col = 1;
    for (i = 0; i < off; i++) {
        if (buf[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char)buf[i] & 0xC0) != 0x80) {
            (*col)++;
        }
    }
}

/*
 * libyaml reports invalid UTF-8 only as a byte offset, and a NUL byte as a
 * generic control character; checking first gives both a line and column
 * and a message that says what is wrong.
 */
static int check_bytes(struct ld *ld, const char *buf, size_t len)
{
    const unsigned char *s = (const unsigned char *)buf;
    unsigned line, col;
    size_t i = 0, k, n;

    while (i < len) {
        unsigned c = s[i];
        uint32_t cp;

        if (c == 0) {
            offset_pos(buf, i, &line, &col);
            return prun__ld_fail_at(
                ld, line, col, "job file contains a NUL byte");
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            goto bad;
        }
        if (len - i <= n)
            goto bad;
        for (k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                goto bad;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            goto bad;
        i += n + 1;
    }
    return 0;
bad:
    offset_pos(buf, i, &line, &col);
    return prun__ld_fail_at(ld, line, col, "invalid UTF-8 (byte 0x%02x)", s[i]);
}

static int yaml_fail(struct ld *ld, const yaml_parser_t *p, const char *buf)
{
    unsigned line, col;

    if (p->error == YAML_MEMORY_ERROR)
        return prun__ld_nomem(ld);
    if (p->error == YAML_READER_ERROR) {
        offset_pos(buf, p->problem_offset, &line, &col);
    } else if (p->context != NULL && p->problem != NULL &&
               strcmp(p->problem, "found unexpected end of stream") == 0) {
        /*
         * An unterminated quote is only noticed at the end of the file;
         * the place to fix is where the quoted scalar starts.
         */
        return prun__ld_fail_at(ld, (unsigned)p->context_mark.line + 1,
            (unsigned)p->context_mark.column + 1, "%s %s that starts here",
            p->problem, p->context);
    } else {
        line = (unsigned)p->problem_mark.line + 1;
        col = (unsigned)p->problem_mark.column + 1;
    }
    return prun__ld_fail_at(ld, line, col, "%s%s%s",
        p->problem ? p->problem : "invalid YAML", p->context ? " " : "",
        p->context ? p->context : "");
}

/* Copies a libyaml anchor name into the tree arena, or NULL. */
static int copy_anchor(struct ld *ld, const yaml_char_t *a, const char **out)
{
    *out = NULL;
    if (a == NULL)
        return 0;
    *out = prun__arena_strdup(ld->tmp, (const char *)a);
    return *out == NULL ? prun__ld_nomem(ld) : 0;
}

/*
 * Explicit YAML tags ("!!binary", "!!python/object", "!foo") ask for types
 * a job file has no use for; a strict loader refuses them. Only "!!str" on
 * a scalar is allowed: it makes a string of what would resolve otherwise.
 */
static int check_tag(
    struct ld *ld, const struct ynode *n, const yaml_char_t *tag, int scalar)
{
    const char *t = (const char *)tag;

    if (t == NULL || (scalar && strcmp(t, "tag:yaml.org,2002:str") == 0))
        return 0;
    if (strncmp(t, "tag:yaml.org,2002:", 18) == 0)
        return prun__ld_fail(ld, n,
            "YAML tag '!!%.48s' is not allowed (only !!str, on a scalar)",
            t + 18);
    return prun__ld_fail(
        ld, n, "YAML tag '%.48s' is not allowed (only !!str, on a scalar)", t);
}

/* A scalar: a node of its own, with its anchor registered at once. */
static int on_scalar(struct ld *ld, const yaml_event_t *ev)
{
    size_t len = ev->data.scalar.length;
    const char *v = (const char *)ev->data.scalar.value;
    const char *anchor;
    struct ynode *n;
    int rc;

    if ((n = node_new(ld, Y_SCALAR, ev->start_mark)) == NULL)
        return prun__ld_nomem(ld);
    /* "\0" in a double-quoted string can still produce a NUL. */
    if (memchr(v, '\0', len) != NULL)
        return prun__ld_fail(ld, n, "strings must not contain NUL characters");
    if ((rc = check_tag(ld, n, ev->data.scalar.tag, 1)) < 0)
        return rc;
    /* "!!str 42" is the string "42", as if it were quoted. */
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
               ev->data.scalar.tag == NULL;
    if ((n->str = prun__arena_strndup(ld->tmp, v, len)) == NULL)
        return prun__ld_nomem(ld);
    if ((rc = copy_anchor(ld, ev->data.scalar.anchor, &anchor)) < 0)
        return rc;
    if (anchor != NULL && prun__smap_set(&ld->anchors, anchor, n) < 0)
        return prun__ld_nomem(ld);
    return attach(ld, n);
}

/* A sequence or mapping starts: its node is pushed, with its anchor. */
static int on_collection_start(struct ld *ld, const yaml_event_t *ev)
{
    int seq = ev->type == YAML_SEQUENCE_START_EVENT;
    struct ynode *n;
    int rc;

    if (ld->depth == MAX_DEPTH)
        return prun__ld_fail_at(ld, (unsigned)ev->start_mark.line + 1,
            (unsigned)ev->start_mark.column + 1,
            "YAML nesting is deeper than %d levels", MAX_DEPTH);
    n = node_new(ld, seq ? Y_SEQ : Y_MAP, ev->start_mark);
    if (n == NULL)
        return prun__ld_nomem(ld);
    rc = check_tag(ld, n,
        seq ? ev->data.sequence_start.tag : ev->data.mapping_start.tag, 0);
    if (rc < 0)
        return rc;
    rc = copy_anchor(ld,
        seq ? ev->data.sequence_start.anchor : ev->data.mapping_start.anchor,
        &ld->stack_anchor[ld->depth]);
    if (rc < 0)
        return rc;
    ld->stack[ld->depth++] = n;
    return 0;
}

/* A sequence or mapping ends: finished, and attached to its parent. */
static int on_collection_end(struct ld *ld)
{
    struct ynode *n = ld->stack[--ld->depth];
    const char *anchor;
    int rc;

    if (n->type == Y_MAP && (rc = map_finish(ld, n)) < 0)
        return rc;
    /*
     * The anchor is registered only now, so an alias inside the node it
     * names (a recursive document) is an undefined alias.
     */
    anchor = ld->stack_anchor[ld->depth];
    if (anchor != NULL && prun__smap_set(&ld->anchors, anchor, n) < 0)
        return prun__ld_nomem(ld);
    return attach(ld, n);
}

/* An alias: the anchored node itself, attached once more. */
static int on_alias(struct ld *ld, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    struct ynode *n = (struct ynode *)prun__smap_get(&ld->anchors, name);

    if (n == NULL)
        return prun__ld_fail_at(ld, (unsigned)ev->start_mark.line + 1,
            (unsigned)ev->start_mark.column + 1,
            "alias '*%.64s' names no anchor defined before it", name);
    /*
     * Only what aliases add is counted: a big file without aliases is
     * fine, but a few lines of nested aliases must not expand to billions
     * of nodes in whatever walks the tree.
     */
    ld->aliased = sat_add(ld->aliased, n->weight);
    if (ld->aliased > MAX_ALIAS_NODES)
        return prun__ld_fail_at(ld, (unsigned)ev->start_mark.line + 1,
            (unsigned)ev->start_mark.column + 1,
            "YAML aliases expand to more than %d nodes", MAX_ALIAS_NODES);
    return attach(ld, n);
}

static int on_event(struct ld *ld, const yaml_event_t *ev, int *docs)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if ((*docs)++ > 0)
            return prun__ld_fail_at(ld, (unsigned)ev->start_mark.line + 1,
                (unsigned)ev->start_mark.column + 1,
                "only one YAML document is allowed");
        return 0;
    case YAML_SCALAR_EVENT:
        return on_scalar(ld, ev);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        return on_collection_start(ld, ev);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return on_collection_end(ld);
    case YAML_ALIAS_EVENT:
        return on_alias(ld, ev);
    default:
        return 0;
    }
}

int prun__yaml_parse(struct ld *ld, const char *buf, size_t len)
{
    yaml_parser_t p;
    yaml_event_t ev;
    int have_ev = 0, docs = 0, rc;

    if ((rc = check_bytes(ld, buf, len)) < 0)
        return rc;
    if (!yaml_parser_initialize(&p))
        return prun__ld_nomem(ld);
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
    for (;;) {
        if (!yaml_parser_parse(&p, &ev)) {
            rc = yaml_fail(ld, &p, buf);
            goto fail;
        }
        have_ev = 1;
        if (ev.type == YAML_STREAM_END_EVENT)
            break;
        if ((rc = on_event(ld, &ev, &docs)) < 0)
            goto fail;
        yaml_event_delete(&ev);
        have_ev = 0;
    }
    rc = 0;
fail:
    if (have_ev)
        yaml_event_delete(&ev);
    yaml_parser_delete(&p);
    return rc;
}
