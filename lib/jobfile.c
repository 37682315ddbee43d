/* SPDX-License-Identifier: MIT */
/*
 * jobfile: the loader. It reads a job file (DESIGN §3), parses it with
 * libyaml's event API into a small tree of positioned nodes, and converts
 * that tree into a struct prun_job with strict checks, so that every
 * mistake is reported as "FILE:LINE:COL: message" before anything starts.
 * This is the only module that includes <yaml.h>. It does not run, expand
 * or iterate anything: templates are compiled by job.c, foreach sources are
 * read later by the iterators.
 */
#include "job.h"

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

#include <yaml.h>

#define MAX_FILE        ((size_t)16 << 20)
#define MAX_DEPTH       64
#define MAX_ALIAS_NODES 100000

enum ytype { Y_SCALAR, Y_SEQ, Y_MAP };

/*
 * A YAML node. Aliases point at the anchored node itself, so a subtree can
 * have several parents; weight counts the nodes a full expansion would
 * produce, which is what bounds "billion laughs" documents.
 */
struct ynode {
    enum ytype type;
    int plain; /* scalar written without quotes */
    unsigned line, col;
    const char *str; /* SCALAR, NUL-free */
    size_t n, cap;   /* SEQ: items; MAP: key, value, key, value... */
    struct ynode **kids;
    uint64_t weight;
};

/* A string-keyed hash table for anchors, mapping keys and task names. */
struct smap_ent {
    const char *key;
    const void *val;
};

struct smap {
    size_t cap, n;
    struct smap_ent *e;
};

struct ld {
    const char *path;
    struct prun_err *err;
    struct prun_arena *tmp; /* the YAML tree; freed when loading ends */
    struct prun_job *job;
    /* parser state */
    struct ynode *stack[MAX_DEPTH];
    const char *stack_anchor[MAX_DEPTH];
    size_t depth;
    struct ynode *root;
    struct smap anchors;
    uint64_t aliased;
};

/* Loader-side facts about a task, resolved after all tasks are known. */
struct tdef {
    const struct ynode *needs;
    const struct ynode *segs;
};

struct dflt {
    int64_t timeout_ms, kill_grace_ms, retry_delay_ms;
    unsigned retries;
    const struct ynode *env; /* mapping, checked, or NULL */
    const struct ynode *cwd; /* scalar, checked, or NULL */
};

static int fail_at(struct ld *ld, unsigned line, unsigned col, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));
static int fail(struct ld *ld, const struct ynode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int vfail_at(struct ld *ld, unsigned line, unsigned col, const char *fmt,
    va_list ap) __attribute__((format(printf, 4, 0)));

static int vfail_at(
    struct ld *ld, unsigned line, unsigned col, const char *fmt, va_list ap)
{
    char msg[224];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    return prun_err_set(
        ld->err, PRUN_EINVAL, "%s:%u:%u: %s", ld->path, line, col, msg);
}

static int fail_at(
    struct ld *ld, unsigned line, unsigned col, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vfail_at(ld, line, col, fmt, ap);
    va_end(ap);
    return rc;
}

static int fail(struct ld *ld, const struct ynode *n, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vfail_at(ld, n->line, n->col, fmt, ap);
    va_end(ap);
    return rc;
}

static int nomem(struct ld *ld)
{
    return prun_err_set(ld->err, PRUN_ENOMEM, "out of memory");
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

static const void *smap_get(const struct smap *m, const char *key)
{
    return m->cap == 0 ? NULL : smap_slot(m, key)->val;
}

/* Inserts or replaces key; key must outlive the table. */
static int smap_set(struct smap *m, const char *key, const void *val)
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
                smap_set(m, old.e[i].key, old.e[i].val);
        free(old.e);
    }
    s = smap_slot(m, key);
    if (s->key == NULL)
        m->n++;
    s->key = key;
    s->val = val;
    return 0;
}

static void smap_free(struct smap *m)
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
    struct ynode *n = prun_arena_alloc(ld->tmp, sizeof(*n));

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
        struct ynode **k = prun_arena_alloc(ld->tmp, ncap * sizeof(*k));
        if (k == NULL)
            return nomem(ld);
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
static int map_finish(struct ld *ld, struct ynode *m)
{
    struct smap seen = {0};
    struct ynode **kids = NULL;
    size_t i, j, s, n = 0, cap = 0;
    int rc = 0, merges = 0;

    for (i = 0; i < m->n; i += 2) {
        const struct ynode *k = m->kids[i], *first;
        if (k->type != Y_SCALAR) {
            rc = fail(ld, k, "mapping keys must be strings, got a %s",
                k->type == Y_SEQ ? "sequence" : "mapping");
            goto fail;
        }
        if (is_merge_key(k)) {
            merges = 1;
            continue;
        }
        if ((first = smap_get(&seen, k->str)) != NULL) {
            rc = fail(ld, k, "duplicate key '%.64s' (first at line %u)", k->str,
                first->line);
            goto fail;
        }
        if (smap_set(&seen, k->str, k) < 0) {
            rc = nomem(ld);
            goto fail;
        }
    }
    if (!merges)
        goto fail;
    for (i = 0; i < m->n; i += 2) {
        struct ynode *v = m->kids[i + 1];
        size_t nsrc = 1;

        if (!is_merge_key(m->kids[i])) {
            cap += 2;
            continue;
        }
        if (v->type == Y_SEQ)
            nsrc = v->n;
        for (s = 0; s < nsrc; s++) {
            const struct ynode *src = v->type == Y_SEQ ? v->kids[s] : v;
            if (src->type != Y_MAP) {
                rc = fail(ld, src,
                    "'<<' must be followed by an alias to a mapping, or a "
                    "list of them");
                goto fail;
            }
            cap += src->n;
        }
    }
    kids = prun_arena_alloc(ld->tmp, (cap ? cap : 1) * sizeof(*kids));
    if (kids == NULL) {
        rc = nomem(ld);
        goto fail;
    }
    for (i = 0; i < m->n; i += 2) {
        struct ynode *v = m->kids[i + 1];
        size_t nsrc = v->type == Y_SEQ ? v->n : 1;

        if (!is_merge_key(m->kids[i])) {
            kids[n++] = m->kids[i];
            kids[n++] = v;
            continue;
        }
        for (s = 0; s < nsrc; s++) {
            const struct ynode *src = v->type == Y_SEQ ? v->kids[s] : v;
            for (j = 0; j < src->n; j += 2) {
                if (smap_get(&seen, src->kids[j]->str) != NULL)
                    continue;
                if (smap_set(&seen, src->kids[j]->str, src->kids[j]) < 0) {
                    rc = nomem(ld);
                    goto fail;
                }
                kids[n++] = src->kids[j];
                kids[n++] = src->kids[j + 1];
            }
        }
    }
    m->kids = kids;
    m->n = m->cap = n;
fail:
    smap_free(&seen);
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
            return fail_at(ld, line, col, "job file contains a NUL byte");
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
    return fail_at(ld, line, col, "invalid UTF-8 (byte 0x%02x)", s[i]);
}

static int yaml_fail(struct ld *ld, const yaml_parser_t *p, const char *buf)
{
    unsigned line, col;

    if (p->error == YAML_MEMORY_ERROR)
        return nomem(ld);
    if (p->error == YAML_READER_ERROR) {
        offset_pos(buf, p->problem_offset, &line, &col);
    } else if (p->context != NULL && p->problem != NULL &&
               strcmp(p->problem, "found unexpected end of stream") == 0) {
        /*
         * An unterminated quote is only noticed at the end of the file;
         * the place to fix is where the quoted scalar starts.
         */
        return fail_at(ld, (unsigned)p->context_mark.line + 1,
            (unsigned)p->context_mark.column + 1, "%s %s that starts here",
            p->problem, p->context);
    } else {
        line = (unsigned)p->problem_mark.line + 1;
        col = (unsigned)p->problem_mark.column + 1;
    }
    return fail_at(ld, line, col, "%s%s%s",
        p->problem ? p->problem : "invalid YAML", p->context ? " " : "",
        p->context ? p->context : "");
}

/* Copies a libyaml anchor name into the tree arena, or NULL. */
static int copy_anchor(struct ld *ld, const yaml_char_t *a, const char **out)
{
    *out = NULL;
    if (a == NULL)
        return 0;
    *out = prun_arena_strdup(ld->tmp, (const char *)a);
    return *out == NULL ? nomem(ld) : 0;
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
        return fail(ld, n,
            "YAML tag '!!%.48s' is not allowed (only !!str, on a scalar)",
            t + 18);
    return fail(
        ld, n, "YAML tag '%.48s' is not allowed (only !!str, on a scalar)", t);
}

static int on_event(struct ld *ld, const yaml_event_t *ev, int *docs)
{
    struct ynode *n;
    const char *anchor;
    int rc;

    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if ((*docs)++ > 0)
            return fail_at(ld, (unsigned)ev->start_mark.line + 1,
                (unsigned)ev->start_mark.column + 1,
                "only one YAML document is allowed");
        return 0;
    case YAML_SCALAR_EVENT: {
        size_t len = ev->data.scalar.length;
        const char *v = (const char *)ev->data.scalar.value;

        if ((n = node_new(ld, Y_SCALAR, ev->start_mark)) == NULL)
            return nomem(ld);
        /* "\0" in a double-quoted string can still produce a NUL. */
        if (memchr(v, '\0', len) != NULL)
            return fail(ld, n, "strings must not contain NUL characters");
        if ((rc = check_tag(ld, n, ev->data.scalar.tag, 1)) < 0)
            return rc;
        /* "!!str 42" is the string "42", as if it were quoted. */
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                   ev->data.scalar.tag == NULL;
        if ((n->str = prun_arena_strndup(ld->tmp, v, len)) == NULL)
            return nomem(ld);
        if ((rc = copy_anchor(ld, ev->data.scalar.anchor, &anchor)) < 0)
            return rc;
        if (anchor != NULL && smap_set(&ld->anchors, anchor, n) < 0)
            return nomem(ld);
        return attach(ld, n);
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        if (ld->depth == MAX_DEPTH)
            return fail_at(ld, (unsigned)ev->start_mark.line + 1,
                (unsigned)ev->start_mark.column + 1,
                "YAML nesting is deeper than %d levels", MAX_DEPTH);
        n = node_new(ld, ev->type == YAML_SEQUENCE_START_EVENT ? Y_SEQ : Y_MAP,
            ev->start_mark);
        if (n == NULL)
            return nomem(ld);
        rc = check_tag(ld, n,
            ev->type == YAML_SEQUENCE_START_EVENT ? ev->data.sequence_start.tag
                                                  : ev->data.mapping_start.tag,
            0);
        if (rc < 0)
            return rc;
        rc = copy_anchor(ld,
            ev->type == YAML_SEQUENCE_START_EVENT
                ? ev->data.sequence_start.anchor
                : ev->data.mapping_start.anchor,
            &ld->stack_anchor[ld->depth]);
        if (rc < 0)
            return rc;
        ld->stack[ld->depth++] = n;
        return 0;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        n = ld->stack[--ld->depth];
        if (n->type == Y_MAP && (rc = map_finish(ld, n)) < 0)
            return rc;
        /*
         * The anchor is registered only now, so an alias inside the node
         * it names (a recursive document) is an undefined alias.
         */
        anchor = ld->stack_anchor[ld->depth];
        if (anchor != NULL && smap_set(&ld->anchors, anchor, n) < 0)
            return nomem(ld);
        return attach(ld, n);
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)ev->data.alias.anchor;

        n = (struct ynode *)smap_get(&ld->anchors, name);
        if (n == NULL)
            return fail_at(ld, (unsigned)ev->start_mark.line + 1,
                (unsigned)ev->start_mark.column + 1,
                "alias '*%.64s' names no anchor defined before it", name);
        /*
         * Only what aliases add is counted: a big file without aliases is
         * fine, but a few lines of nested aliases must not expand to
         * billions of nodes in whatever walks the tree.
         */
        ld->aliased = sat_add(ld->aliased, n->weight);
        if (ld->aliased > MAX_ALIAS_NODES)
            return fail_at(ld, (unsigned)ev->start_mark.line + 1,
                (unsigned)ev->start_mark.column + 1,
                "YAML aliases expand to more than %d nodes", MAX_ALIAS_NODES);
        return attach(ld, n);
    }
    default:
        return 0;
    }
}

static int parse_yaml(struct ld *ld, const char *buf, size_t len)
{
    yaml_parser_t p;
    yaml_event_t ev;
    int have_ev = 0, docs = 0, rc;

    if ((rc = check_bytes(ld, buf, len)) < 0)
        return rc;
    if (!yaml_parser_initialize(&p))
        return nomem(ld);
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

/* ---- tree to model: helpers ---- */

static int is_null(const struct ynode *n)
{
    return n->type == Y_SCALAR && n->plain &&
           (n->str[0] == '\0' || strcmp(n->str, "~") == 0 ||
               strcmp(n->str, "null") == 0 || strcmp(n->str, "Null") == 0 ||
               strcmp(n->str, "NULL") == 0);
}

/*
 * What a scalar resolves to under the YAML 1.2 core schema: a quoted (or
 * !!str) scalar is a string; a plain one is null, a boolean, an integer or
 * a float when it reads as one, else a string.
 */
enum stype { S_STR, S_NULL, S_BOOL, S_INT, S_FLOAT };

static int match_all(const char *s, const char *set)
{
    return *s != '\0' && strspn(s, set) == strlen(s);
}

static enum stype scalar_type(const struct ynode *n)
{
    static const char *const bools[] = {
        "true", "True", "TRUE", "false", "False", "FALSE"};
    static const char *const specials[] = {".inf", ".Inf", ".INF", "+.inf",
        "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN"};
    const char *s = n->str, *p;
    size_t i;

    if (!n->plain)
        return S_STR;
    if (is_null(n))
        return S_NULL;
    for (i = 0; i < sizeof(bools) / sizeof(bools[0]); i++)
        if (strcmp(s, bools[i]) == 0)
            return S_BOOL;
    for (i = 0; i < sizeof(specials) / sizeof(specials[0]); i++)
        if (strcmp(s, specials[i]) == 0)
            return S_FLOAT;
    if ((strncmp(s, "0x", 2) == 0 &&
            match_all(s + 2, "0123456789abcdefABCDEF")) ||
        (strncmp(s, "0o", 2) == 0 && match_all(s + 2, "01234567")))
        return S_INT;
    p = s + (*s == '-' || *s == '+');
    if (match_all(p, "0123456789"))
        return S_INT;
    /* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
    i = strspn(p, "0123456789");
    if (p[i] == '.') {
        size_t f = strspn(p + i + 1, "0123456789");
        if (i == 0 && f == 0)
            return S_STR;
        i += 1 + f;
    } else if (i == 0) {
        return S_STR;
    }
    if (p[i] == 'e' || p[i] == 'E') {
        size_t e = i + 1 + (p[i + 1] == '-' || p[i + 1] == '+');
        if (!match_all(p + e, "0123456789"))
            return S_STR;
        return S_FLOAT;
    }
    return p[i] == '\0' ? S_FLOAT : S_STR;
}

static const char *stype_name(enum stype t)
{
    static const char *const names[] = {
        "a string", "null", "a boolean", "an integer", "a number"};
    return names[t];
}

/* What a node is, for "got ...": the scalar quoted, or its kind. */
static const char *got(const struct ynode *n, char *buf, size_t size)
{
    if (n->type == Y_SEQ)
        return "a sequence";
    if (n->type == Y_MAP)
        return "a mapping";
    snprintf(buf, size, "'%.48s%s'", n->str, strlen(n->str) > 48 ? "..." : "");
    return buf;
}

static const struct ynode *map_get(
    const struct ynode *m, const char *key, const struct ynode **keynode)
{
    size_t i;

    for (i = 0; i < m->n; i += 2) {
        if (strcmp(m->kids[i]->str, key) == 0) {
            if (keynode != NULL)
                *keynode = m->kids[i];
            return m->kids[i + 1];
        }
    }
    return NULL;
}

/*
 * Keys people bring from other tools (CI files, compose, GNU parallel).
 * Edit distance alone would answer 'cmd' with 'cwd', which is never what
 * was meant, so these are consulted first.
 */
static const char *const synonyms[][2] = {
    {"cmd", "run"},
    {"command", "run"},
    {"commands", "run"},
    {"exec", "run"},
    {"script", "run"},
    {"shell", "run"},
    {"args", "run"},
    {"depends", "needs"},
    {"depends_on", "needs"},
    {"dependencies", "needs"},
    {"after", "needs"},
    {"requires", "needs"},
    {"need", "needs"},
    {"environment", "env"},
    {"dir", "cwd"},
    {"workdir", "cwd"},
    {"working_dir", "cwd"},
    {"for_each", "foreach"},
    {"for", "foreach"},
    {"each", "foreach"},
    {"items", "foreach"},
    {"parallel", "jobs"},
    {"concurrency", "jobs"},
    {"procs", "jobs"},
    {"retry", "retries"},
    {"attempts", "retries"},
    {"backoff", "retry_delay"},
    {"variables", "vars"},
    {"path", "file"},
    {"items", "list"},
    {"values", "list"},
    {"files", "glob"},
};

static const char *suggest(const char *word, const char *const *known, size_t n)
{
    size_t i, j;

    for (i = 0; i < sizeof(synonyms) / sizeof(synonyms[0]); i++) {
        if (strcmp(word, synonyms[i][0]) != 0)
            continue;
        for (j = 0; j < n; j++)
            if (strcmp(synonyms[i][1], known[j]) == 0)
                return known[j];
    }
    return prun_closest(word, known, n);
}

/* Rejects keys of m not in known; where is " in task 'x'" or "". */
static int check_keys(struct ld *ld, const struct ynode *m,
    const char *const *known, size_t n, const char *where)
{
    size_t i, j;

    for (i = 0; i < m->n; i += 2) {
        const struct ynode *k = m->kids[i];
        const char *sugg;
        /*
         * At the top level, "x-" keys are ignored, as in compose files: a
         * place to put anchors that tasks merge with "<<: *name".
         */
        if (where[0] == '\0' && strncmp(k->str, "x-", 2) == 0)
            continue;
        for (j = 0; j < n; j++)
            if (strcmp(k->str, known[j]) == 0)
                break;
        if (j < n)
            continue;
        sugg = suggest(k->str, known, n);
        if (sugg != NULL)
            return fail(ld, k, "unknown key '%.64s'%s (did you mean '%s'?)",
                k->str, where, sugg);
        return fail(ld, k, "unknown key '%.64s'%s", k->str, where);
    }
    return 0;
}

static int want_map(struct ld *ld, const struct ynode *k, const struct ynode *v,
    const char *what)
{
    char b[64];

    if (is_null(v))
        return fail(ld, k, "missing value for %s", what);
    if (v->type != Y_MAP)
        return fail(
            ld, v, "%s must be a mapping, got %s", what, got(v, b, sizeof(b)));
    return 0;
}

/* v must be a non-null scalar; what describes it ("a string"). */
static int get_any_scalar(struct ld *ld, const struct ynode *k,
    const struct ynode *v, const char *what, const char **out)
{
    if (is_null(v))
        return fail(ld, k, "missing value for '%.64s'", k->str);
    if (v->type != Y_SCALAR)
        return fail(ld, v, "'%.64s' must be %s, got %s", k->str, what,
            v->type == Y_SEQ ? "a sequence" : "a mapping");
    *out = v->str;
    return 0;
}

/*
 * The one type check for values that are text: a string, or a number
 * written plainly (its text is taken as written). A boolean is refused: a
 * strict loader reads it as true/false, never as the text.
 */
static int text_ok(
    struct ld *ld, const struct ynode *v, const char *key, const char *what)
{
    enum stype t = scalar_type(v);

    if (t == S_STR || t == S_INT || t == S_FLOAT)
        return 0;
    return fail(ld, v,
        "%s%.64s%s must be %s, got %s '%.48s' (quote it: \"%.48s\")",
        key ? "'" : "", key ? key : what, key ? "'" : "", "a string",
        stype_name(t), v->str, v->str);
}

static int get_scalar(struct ld *ld, const struct ynode *k,
    const struct ynode *v, const char *what, const char **out)
{
    int rc;

    if ((rc = get_any_scalar(ld, k, v, what, out)) < 0)
        return rc;
    return text_ok(ld, v, k->str, NULL);
}

/* A command must be a string, not a number or a boolean that looks like one. */
static int want_command(struct ld *ld, const struct ynode *v, const char *what)
{
    enum stype t = scalar_type(v);

    if (t == S_STR)
        return 0;
    return fail(ld, v, "%s must be a string naming a command, got %s '%.48s'",
        what, stype_name(t), v->str);
}

static int get_int(struct ld *ld, const struct ynode *k, const struct ynode *v,
    long long min, long long max, long long *out)
{
    char what[48], b[64];
    const char *s = NULL;
    char *end;
    long long x;
    int rc;

    snprintf(what, sizeof(what), "an integer >= %lld", min);
    if ((rc = get_any_scalar(ld, k, v, what, &s)) < 0)
        return rc;
    if (!v->plain)
        return fail(ld, v, "'%.64s' must be %s, got the string %s", k->str,
            what, got(v, b, sizeof(b)));
    errno = 0;
    x = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || isspace((unsigned char)*s))
        return fail(ld, v, "'%.64s' must be %s, got %s", k->str, what,
            got(v, b, sizeof(b)));
    if (errno == ERANGE)
        x = *s == '-' ? LLONG_MIN : LLONG_MAX;
    if (x < min)
        return fail(ld, v, "'%.64s' must be %s, got %s", k->str, what,
            got(v, b, sizeof(b)));
    if (x > max)
        return fail(ld, v, "'%.64s' must be at most %lld, got %s", k->str, max,
            got(v, b, sizeof(b)));
    *out = x;
    return 0;
}

static int get_uint(struct ld *ld, const struct ynode *k, const struct ynode *v,
    long long min, long long max, unsigned *out)
{
    long long x;
    int rc;

    if ((rc = get_int(ld, k, v, min, max, &x)) < 0)
        return rc;
    *out = (unsigned)x;
    return 0;
}

static int get_bool(
    struct ld *ld, const struct ynode *k, const struct ynode *v, int *out)
{
    char b[64];
    const char *s = NULL;
    int rc;

    if ((rc = get_any_scalar(ld, k, v, "true or false", &s)) < 0)
        return rc;
    if (scalar_type(v) != S_BOOL || prun_parse_bool(s, out, NULL) < 0)
        return fail(ld, v, "'%.64s' must be true or false, got %s%s", k->str,
            v->plain ? "" : "the string ", got(v, b, sizeof(b)));
    return 0;
}

static int get_duration(
    struct ld *ld, const struct ynode *k, const struct ynode *v, int64_t *out)
{
    struct prun_err e;
    char b[64];
    const char *s = NULL;
    int rc;

    if ((rc = get_scalar(ld, k, v, "a duration", &s)) < 0)
        return rc;
    if (s[0] == '-')
        return fail(ld, v, "'%.64s' must not be negative, got %s", k->str,
            got(v, b, sizeof(b)));
    if (prun_parse_duration(s, out, &e) < 0)
        return fail(ld, v, "'%.64s': %s", k->str, e.msg);
    return 0;
}

/* A string that must be a name of the given kind (see name_ok). */
enum name_kind { NAME_TASK, NAME_SEGMENT, NAME_ENV, NAME_KEY };

static int name_ok(const char *s, enum name_kind kind)
{
    size_t i, n = strlen(s);

    if (n == 0 || (kind != NAME_ENV && n > 64))
        return 0;
    if (kind == NAME_TASK ? !isalnum((unsigned char)s[0])
                          : !isalpha((unsigned char)s[0]) && s[0] != '_')
        return 0;
    for (i = 1; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '_')
            continue;
        if (c == '-' && (kind == NAME_TASK || kind == NAME_KEY))
            continue;
        if (c == '.' && kind == NAME_TASK && s[i - 1] != '.')
            continue;
        return 0;
    }
    return 1;
}

static int check_name(
    struct ld *ld, const struct ynode *n, enum name_kind kind, const char *what)
{
    static const char *const rules[] = {
        "letters, digits, '.', '_' and '-', starting with a letter or digit, "
        "at most 64",
        "letters, digits and '_', not starting with a digit, at most 64",
        "letters, digits and '_', not starting with a digit",
        "letters, digits, '_' and '-', starting with a letter or '_', at "
        "most 64",
    };

    if (name_ok(n->str, kind))
        return 0;
    if (kind == NAME_TASK &&
        (strchr(n->str, '/') != NULL || strstr(n->str, "..") != NULL))
        return fail(ld, n,
            "invalid %s '%.64s': it must not contain '/' or '..'", what,
            n->str);
    return fail(
        ld, n, "invalid %s '%.64s' (use %s)", what, n->str, rules[kind]);
}

/*
 * A path-like string (lines, glob, segment file) where only {vars.NAME} and
 * the brace escapes make sense, since it is used once, before any instance
 * exists. It is expanded here into plain text.
 */
static int static_str(struct ld *ld, const struct ynode *k,
    const struct ynode *v, const char **out)
{
    struct prun_tpl t;
    struct prun_pos pos;
    const char *s = NULL, *end;
    unsigned col;
    size_t i;
    int rc;

    if ((rc = get_scalar(ld, k, v, "a string", &s)) < 0)
        return rc;
    if (s[0] == '\0')
        return fail(ld, v, "'%.64s' must not be empty", k->str);
    pos.line = v->line;
    pos.col = v->col + !v->plain;
    if ((rc = prun_tpl_compile(ld->job, &t, s, pos, NULL, 0, ld->err)) < 0)
        return rc;
    if (t.nparts > 1 || (t.nparts == 1 && t.parts[0].kind != PRUN_PH_LIT)) {
        /* Compiled fine, so the first brace that is not {vars.} or an
         * escape is a well-formed instance placeholder: point at it. */
        for (i = 0, col = pos.col; s[i] != '\0'; i++) {
            if ((s[i] == '{' || s[i] == '}') && s[i + 1] == s[i]) {
                i++;
                col += 2;
                continue;
            }
            if (s[i] == '{' && strncmp(s + i, "{vars.", 6) != 0 &&
                (end = strchr(s + i, '}')) != NULL)
                return fail_at(ld, v->line, col,
                    "'%.64s' may only use {vars.NAME} placeholders, not "
                    "'%.*s'",
                    k->str,
                    (int)(end - (s + i) + 1 > 64 ? 64 : end - (s + i) + 1),
                    s + i);
            if (((unsigned char)s[i] & 0xC0) != 0x80)
                col++;
        }
        return fail(
            ld, v, "'%.64s' may only use {vars.NAME} placeholders", k->str);
    }
    *out = t.nparts == 0 ? "" : t.parts[0].text;
    return 0;
}

static int compile(struct ld *ld, struct prun_tpl *t, const struct ynode *v,
    const char *const *keys, size_t nkeys)
{
    struct prun_pos pos;

    /* Quoted scalars start one column after the node: their quote. */
    pos.line = v->line;
    pos.col = v->col + !v->plain;
    return prun_tpl_compile(ld->job, t, v->str, pos, keys, nkeys, ld->err);
}

/* The same for the string form of run, which /bin/sh reads. */
static int compile_shell(struct ld *ld, struct prun_tpl *t,
    const struct ynode *v, const char *const *keys, size_t nkeys)
{
    struct prun_pos pos;

    pos.line = v->line;
    pos.col = v->col + !v->plain;
    return prun_tpl_compile_shell(
        ld->job, t, v->str, pos, keys, nkeys, ld->err);
}

static struct prun_pos pos_of(const struct ynode *n)
{
    struct prun_pos p;

    p.line = n->line;
    p.col = n->col;
    return p;
}

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

    vals = prun_arena_alloc(a, nkeys * sizeof(*vals));
    if (vals == NULL) {
        rc = nomem(ld);
        goto fail;
    }
    for (j = 0; j < nkeys; j++) {
        const struct ynode *val = map_get(it, keys[j], NULL);
        if (val == NULL) {
            rc = fail(ld, it,
                "'list' item lacks key '%s' of the first item (line %u)",
                keys[j], first->line);
            goto fail;
        }
        if (is_null(val)) {
            rc = fail(ld, val, "missing value for '%s'", keys[j]);
            goto fail;
        }
        if (val->type != Y_SCALAR) {
            rc = fail(ld, val, "'%s' must be a string, got %s", keys[j],
                got(val, b, sizeof(b)));
            goto fail;
        }
        if ((rc = text_ok(ld, val, keys[j], NULL)) < 0)
            goto fail;
        vals[j] = prun_arena_strdup(a, val->str);
        if (vals[j] == NULL || (j > 0 && prun_buf_addc(&text, ' ') < 0) ||
            prun_buf_adds(&text, val->str) < 0) {
            rc = nomem(ld);
            goto fail;
        }
    }
    if ((item->text = prun_arena_strdup(a, text.data)) == NULL) {
        rc = nomem(ld);
        goto fail;
    }
    item->nkeys = nkeys;
    item->keys = keys;
    item->vals = vals;
fail:
    prun_buf_free(&text);
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

    if (is_null(v))
        return fail(ld, k, "missing value for 'list'");
    if (v->type != Y_SEQ)
        return fail(
            ld, v, "'list' must be a sequence, got %s", got(v, b, sizeof(b)));
    f->nlist = v->n;
    f->list = prun_arena_alloc(a, (v->n ? v->n : 1) * sizeof(*f->list));
    if (f->list == NULL)
        return nomem(ld);
    if (v->n == 0)
        return 0;
    first = v->kids[0];
    if (first->type == Y_MAP) {
        nkeys = first->n / 2;
        if (nkeys == 0)
            return fail(ld, first, "'list' items must not be empty mappings");
        keys = prun_arena_alloc(a, nkeys * sizeof(*keys));
        if (keys == NULL)
            return nomem(ld);
        for (j = 0; j < nkeys; j++) {
            if ((rc = check_name(
                     ld, first->kids[2 * j], NAME_KEY, "item key")) < 0)
                return rc;
            if ((keys[j] = prun_arena_strdup(a, first->kids[2 * j]->str)) ==
                NULL)
                return nomem(ld);
        }
    }
    for (i = 0; i < v->n; i++) {
        const struct ynode *it = v->kids[i];
        struct prun_item *item = &f->list[i];

        if (is_null(it))
            return fail(ld, it, "missing value in 'list'");
        if (keys == NULL) {
            if (it->type != Y_SCALAR)
                return fail(ld, it,
                    "'list' items must all be strings like the first, got %s",
                    got(it, b, sizeof(b)));
            if ((rc = text_ok(ld, it, NULL, "a 'list' item")) < 0)
                return rc;
            if ((item->text = prun_arena_strdup(a, it->str)) == NULL)
                return nomem(ld);
            continue;
        }
        if (it->type != Y_MAP)
            return fail(ld, it,
                "'list' items must all be mappings like the first, got %s",
                got(it, b, sizeof(b)));
        for (j = 0; j < it->n; j += 2) {
            if (map_get(first, it->kids[j]->str, NULL) == NULL)
                return fail(ld, it->kids[j],
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

    if (is_null(v))
        return fail(ld, k, "missing value for 'range'");
    if (v->type == Y_SEQ && (v->n < 2 || v->n > 3))
        return fail(ld, v,
            "'range' must be [from, to] or [from, to, step], got %zu value%s",
            v->n, v->n == 1 ? "" : "s");
    if (v->type != Y_SEQ)
        return fail(ld, v,
            "'range' must be [from, to] or [from, to, step], got %s",
            got(v, b, sizeof(b)));
    for (i = 0; i < v->n; i++) {
        const struct ynode *e = v->kids[i];
        if (e->type != Y_SCALAR || !e->plain)
            return fail(ld, e, "'range' values must be integers, got %s%s",
                e->type == Y_SCALAR ? "the string " : "", got(e, b, sizeof(b)));
        errno = 0;
        x[i] = strtoll(e->str, &end, 10);
        if (end == e->str || *end != '\0' || isspace((unsigned char)e->str[0]))
            return fail(ld, e, "'range' values must be integers, got %s",
                got(e, b, sizeof(b)));
        if (errno == ERANGE)
            return fail(ld, e,
                "'range' values must be between %lld and %lld, got %s",
                LLONG_MIN, LLONG_MAX, got(e, b, sizeof(b)));
    }
    if (x[2] == 0)
        return fail(ld, v->kids[2], "'range' step must not be 0");
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

    if ((rc = want_map(ld, k, v, "'matrix'")) < 0)
        return rc;
    if (v->n == 0)
        return fail(ld, v, "'matrix' must not be empty");
    f->naxes = v->n / 2;
    f->axes = prun_arena_alloc(a, f->naxes * sizeof(*f->axes));
    if (f->axes == NULL)
        return nomem(ld);
    for (i = 0; i < f->naxes; i++) {
        const struct ynode *ak = v->kids[2 * i], *av = v->kids[2 * i + 1];
        struct prun_axis *ax = &f->axes[i];

        if ((rc = check_name(ld, ak, NAME_KEY, "matrix axis name")) < 0)
            return rc;
        if (is_null(av))
            return fail(ld, ak, "missing value for '%.64s'", ak->str);
        if (av->type != Y_SEQ || av->n == 0)
            return fail(ld, av,
                "matrix axis '%.64s' must be a non-empty sequence, got %s",
                ak->str,
                av->type == Y_SEQ ? "an empty one" : got(av, b, sizeof(b)));
        ax->name = prun_arena_strdup(a, ak->str);
        ax->nvals = av->n;
        ax->vals = prun_arena_alloc(a, av->n * sizeof(*ax->vals));
        if (ax->name == NULL || ax->vals == NULL)
            return nomem(ld);
        for (j = 0; j < av->n; j++) {
            const struct ynode *e = av->kids[j];
            if (is_null(e))
                return fail(
                    ld, e, "missing value in matrix axis '%.64s'", ak->str);
            if (e->type != Y_SCALAR)
                return fail(ld, e,
                    "matrix axis '%.64s' values must be strings, got %s",
                    ak->str, got(e, b, sizeof(b)));
            if ((rc = text_ok(ld, e, NULL, "a matrix value")) < 0)
                return rc;
            if ((ax->vals[j] = prun_arena_strdup(a, e->str)) == NULL)
                return nomem(ld);
        }
    }
    return 0;
}

static const char *const foreach_keys[] = {
    "list", "range", "lines", "glob", "matrix", "chunk"};

/* Parses foreach into t->foreach; *keys and *nkeys: what {item.KEY} names. */
static int load_foreach(struct ld *ld, struct prun_task *t,
    const struct ynode *k, const struct ynode *v, const char *const **keys,
    size_t *nkeys)
{
    struct prun_foreach *f = &t->foreach;
    const struct ynode *sk = NULL, *sv = NULL;
    char where[112];
    size_t i, j;
    int rc;

    snprintf(where, sizeof(where), " in 'foreach' of task '%s'", t->name);
    if ((rc = want_map(ld, k, v, "'foreach'")) < 0 ||
        (rc = check_keys(ld, v, foreach_keys, 6, where)) < 0)
        return rc;
    for (i = 0; i < v->n; i += 2) {
        for (j = 0; j < 5; j++)
            if (strcmp(v->kids[i]->str, foreach_keys[j]) == 0)
                break;
        if (j == 5)
            continue;
        if (sk != NULL)
            return fail(ld, v->kids[i],
                "'foreach' has both '%s' and '%s'; use only one", sk->str,
                v->kids[i]->str);
        sk = v->kids[i];
        sv = v->kids[i + 1];
    }
    if (sk == NULL)
        return fail(ld, v,
            "'foreach' needs one of 'list', 'range', 'lines', 'glob', "
            "'matrix'");
    f->pos = pos_of(sv);
    f->chunk = 1;
    for (i = 0; i < v->n; i += 2)
        if (strcmp(v->kids[i]->str, "chunk") == 0 &&
            (rc = get_uint(
                 ld, v->kids[i], v->kids[i + 1], 1, 1000000, &f->chunk)) < 0)
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
        names = prun_arena_alloc(ld->job->arena, f->naxes * sizeof(*names));
        if (names == NULL)
            return nomem(ld);
        for (i = 0; i < f->naxes; i++)
            names[i] = f->axes[i].name;
        *keys = names;
        *nkeys = f->naxes;
        return 0;
    }
    f->kind = strcmp(sk->str, "lines") == 0 ? PRUN_SRC_LINES : PRUN_SRC_GLOB;
    return static_str(ld, sk, sv, &f->path);
}

/* ---- env, defaults, tasks ---- */

/* Checks an env mapping: valid names, scalar values. */
static int check_env(
    struct ld *ld, const struct ynode *k, const struct ynode *v)
{
    const char *s = NULL;
    size_t i;
    int rc;

    if ((rc = want_map(ld, k, v, "'env'")) < 0)
        return rc;
    for (i = 0; i < v->n; i += 2) {
        if ((rc = check_name(
                 ld, v->kids[i], NAME_ENV, "environment variable name")) < 0 ||
            (rc = get_scalar(ld, v->kids[i], v->kids[i + 1], "a string", &s)) <
                0)
            return rc;
    }
    return 0;
}

static int load_env(struct ld *ld, struct prun_task *t, const struct ynode *te,
    const struct dflt *d, const char *const *keys, size_t nkeys)
{
    struct prun_arena *a = ld->job->arena;
    size_t n = 0, i, cap = (te ? te->n / 2 : 0) + (d->env ? d->env->n / 2 : 0);
    int rc;

    if (cap == 0)
        return 0;
    t->env_keys = prun_arena_alloc(a, cap * sizeof(*t->env_keys));
    t->env_vals = prun_arena_alloc(a, cap * sizeof(*t->env_vals));
    if (t->env_keys == NULL || t->env_vals == NULL)
        return nomem(ld);
    /* Defaults first in their order, each overridden by the task's value. */
    for (i = 0; d->env != NULL && i < d->env->n; i += 2) {
        const struct ynode *val = d->env->kids[i + 1], *tv;
        if (te != NULL && (tv = map_get(te, d->env->kids[i]->str, NULL)))
            val = tv;
        t->env_keys[n] = d->env->kids[i]->str;
        if ((rc = compile(ld, &t->env_vals[n++], val, keys, nkeys)) < 0)
            return rc;
    }
    for (i = 0; te != NULL && i < te->n; i += 2) {
        if (d->env != NULL && map_get(d->env, te->kids[i]->str, NULL))
            continue;
        t->env_keys[n] = te->kids[i]->str;
        if ((rc = compile(
                 ld, &t->env_vals[n++], te->kids[i + 1], keys, nkeys)) < 0)
            return rc;
    }
    for (i = 0; i < n; i++)
        if ((t->env_keys[i] = prun_arena_strdup(a, t->env_keys[i])) == NULL)
            return nomem(ld);
    t->nenv = n;
    return 0;
}

static int load_run(struct ld *ld, struct prun_task *t, const struct ynode *k,
    const struct ynode *v, const char *const *keys, size_t nkeys)
{
    char b[64];
    size_t i;
    int rc;

    if (is_null(v))
        return fail(ld, k, "missing value for 'run'");
    if (v->type == Y_SCALAR) {
        if ((rc = want_command(ld, v, "'run'")) < 0)
            return rc;
        if (v->str[0] == '\0')
            return fail(ld, v, "'run' must not be empty");
        t->shell = 1;
        t->argc = 1;
        t->argv = prun_arena_alloc(ld->job->arena, sizeof(*t->argv));
        if (t->argv == NULL)
            return nomem(ld);
        if ((rc = compile_shell(ld, &t->argv[0], v, keys, nkeys)) < 0)
            return rc;
        if (t->argv[0].blank)
            return fail(ld, v,
                "'run' is empty once {vars.} are substituted; it must name "
                "a command");
        return 0;
    }
    if (v->type != Y_SEQ)
        return fail(ld, v,
            "'run' must be a string or a sequence of strings, got a mapping");
    if (v->n == 0)
        return fail(ld, v, "'run' must not be an empty sequence");
    t->argc = v->n;
    t->argv = prun_arena_alloc(ld->job->arena, v->n * sizeof(*t->argv));
    if (t->argv == NULL)
        return nomem(ld);
    for (i = 0; i < v->n; i++) {
        const struct ynode *e = v->kids[i];
        if (is_null(e))
            return fail(ld, e, "missing value in 'run'");
        if (e->type != Y_SCALAR)
            return fail(ld, e, "'run' elements must be strings, got %s",
                got(e, b, sizeof(b)));
        if ((rc = i == 0 ? want_command(ld, e, "the command ('run' element 1)")
                         : text_ok(ld, e, NULL, "a 'run' element")) < 0)
            return rc;
        if ((rc = compile(ld, &t->argv[i], e, keys, nkeys)) < 0)
            return rc;
        if (i == 0 && t->argv[0].empty)
            return fail(ld, e,
                "the command (first element of 'run') is empty%s",
                strchr(e->str, '{') != NULL ? " once {vars.} are substituted"
                                            : "");
    }
    return 0;
}

/* needs and segments: a name or a sequence of names, checked later. */
static int check_names_ref(
    struct ld *ld, const struct ynode *k, const struct ynode *v)
{
    char b[64];
    size_t i;
    int rc;

    if (is_null(v))
        return fail(ld, k, "missing value for '%s'", k->str);
    if (v->type == Y_SCALAR)
        return text_ok(ld, v, k->str, NULL);
    if (v->type != Y_SEQ)
        return fail(ld, v, "'%s' must be a name or a sequence of names, got %s",
            k->str, got(v, b, sizeof(b)));
    for (i = 0; i < v->n; i++) {
        if (is_null(v->kids[i]))
            return fail(ld, v->kids[i], "missing value in '%s'", k->str);
        if (v->kids[i]->type != Y_SCALAR)
            return fail(ld, v->kids[i], "'%s' must list names, got %s", k->str,
                got(v->kids[i], b, sizeof(b)));
        if ((rc = text_ok(ld, v->kids[i], k->str, NULL)) < 0)
            return rc;
    }
    return 0;
}

static const char *const task_keys[] = {"run", "env", "cwd", "foreach", "jobs",
    "rate", "needs", "segments", "timeout", "kill_grace", "retries",
    "retry_delay", "pool"};
#define NTASK_KEYS (sizeof(task_keys) / sizeof(task_keys[0]))

static int load_task(struct ld *ld, struct prun_task *t, struct tdef *td,
    const struct ynode *k, const struct ynode *v, const struct dflt *d)
{
    const struct ynode *slot[NTASK_KEYS] = {0}, *kslot[NTASK_KEYS] = {0};
    const char *const *keys = NULL;
    const char *s = NULL;
    size_t nkeys = 0, i, j;
    char where[96], b[64];
    int rc;

    if ((rc = check_name(ld, k, NAME_TASK, "task name")) < 0)
        return rc;
    if ((t->name = prun_arena_strdup(ld->job->arena, k->str)) == NULL)
        return nomem(ld);
    t->pos = pos_of(k);
    t->timeout_ms = d->timeout_ms;
    t->kill_grace_ms = d->kill_grace_ms;
    t->retries = d->retries;
    t->retry_delay_ms = d->retry_delay_ms;
    t->foreach.kind = PRUN_SRC_NONE;
    t->foreach.chunk = 1;
    t->foreach.pos = t->pos;
    if (is_null(v))
        return fail(ld, k, "missing value for task '%s'", t->name);
    if (v->type != Y_MAP)
        return fail(ld, v, "task '%s' must be a mapping, got %s", t->name,
            got(v, b, sizeof(b)));
    snprintf(where, sizeof(where), " in task '%s'", t->name);
    if ((rc = check_keys(ld, v, task_keys, NTASK_KEYS, where)) < 0)
        return rc;
    for (i = 0; i < v->n; i += 2)
        for (j = 0; j < NTASK_KEYS; j++)
            if (strcmp(v->kids[i]->str, task_keys[j]) == 0) {
                kslot[j] = v->kids[i];
                slot[j] = v->kids[i + 1];
            }

    /* The foreach source decides which {item.KEY} the templates may use. */
    if (slot[3] != NULL &&
        (rc = load_foreach(ld, t, kslot[3], slot[3], &keys, &nkeys)) < 0)
        return rc;
    if (slot[0] == NULL)
        return fail(ld, k, "missing required key 'run' in task '%s'", t->name);
    if ((rc = load_run(ld, t, kslot[0], slot[0], keys, nkeys)) < 0)
        return rc;
    if (slot[1] != NULL && (rc = check_env(ld, kslot[1], slot[1])) < 0)
        return rc;
    if ((rc = load_env(ld, t, slot[1], d, keys, nkeys)) < 0)
        return rc;
    if (slot[2] != NULL || d->cwd != NULL) {
        const struct ynode *cv = slot[2] ? slot[2] : d->cwd;
        if (slot[2] != NULL &&
            (rc = get_scalar(ld, kslot[2], slot[2], "a string", &s)) < 0)
            return rc;
        t->cwd = prun_arena_alloc(ld->job->arena, sizeof(*t->cwd));
        if (t->cwd == NULL)
            return nomem(ld);
        if ((rc = compile(ld, t->cwd, cv, keys, nkeys)) < 0)
            return rc;
        if (t->cwd->empty)
            return fail(ld, cv, "'cwd' must not be empty%s",
                strchr(cv->str, '{') != NULL
                    ? " (it is, once {vars.} are substituted)"
                    : "");
    }
    if (slot[4] != NULL &&
        (rc = get_uint(ld, kslot[4], slot[4], 1, 100000, &t->jobs)) < 0)
        return rc;
    if (slot[5] != NULL) {
        struct prun_err e;
        if ((rc = get_scalar(ld, kslot[5], slot[5], "a rate", &s)) < 0)
            return rc;
        if (prun_parse_rate(s, &t->rate, &e) < 0)
            return fail(ld, slot[5], "'rate': %s", e.msg);
    }
    if (slot[6] != NULL && (rc = check_names_ref(ld, kslot[6], slot[6])) < 0)
        return rc;
    td->needs = slot[6];
    if (slot[7] != NULL && (rc = check_names_ref(ld, kslot[7], slot[7])) < 0)
        return rc;
    td->segs = slot[7];
    if ((slot[8] != NULL &&
            (rc = get_duration(ld, kslot[8], slot[8], &t->timeout_ms)) < 0) ||
        (slot[9] != NULL && (rc = get_duration(ld, kslot[9], slot[9],
                                 &t->kill_grace_ms)) < 0) ||
        (slot[10] != NULL && (rc = get_uint(ld, kslot[10], slot[10], 0, 1000,
                                  &t->retries)) < 0) ||
        (slot[11] != NULL && (rc = get_duration(ld, kslot[11], slot[11],
                                  &t->retry_delay_ms)) < 0) ||
        (slot[12] != NULL &&
            (rc = get_bool(ld, kslot[12], slot[12], &t->pool)) < 0))
        return rc;
    return 0;
}

static const char *const defaults_keys[] = {
    "timeout", "kill_grace", "retries", "retry_delay", "env", "cwd"};

static int load_defaults(
    struct ld *ld, const struct ynode *k, const struct ynode *v, struct dflt *d)
{
    const char *s = NULL;
    size_t i;
    int rc = 0;

    if ((rc = want_map(ld, k, v, "'defaults'")) < 0 ||
        (rc = check_keys(ld, v, defaults_keys, 6, " in 'defaults'")) < 0)
        return rc;
    for (i = 0; i < v->n && rc == 0; i += 2) {
        const struct ynode *dk = v->kids[i], *dv = v->kids[i + 1];
        if (strcmp(dk->str, "timeout") == 0)
            rc = get_duration(ld, dk, dv, &d->timeout_ms);
        else if (strcmp(dk->str, "kill_grace") == 0)
            rc = get_duration(ld, dk, dv, &d->kill_grace_ms);
        else if (strcmp(dk->str, "retries") == 0)
            rc = get_uint(ld, dk, dv, 0, 1000, &d->retries);
        else if (strcmp(dk->str, "retry_delay") == 0)
            rc = get_duration(ld, dk, dv, &d->retry_delay_ms);
        else if (strcmp(dk->str, "env") == 0) {
            rc = check_env(ld, dk, dv);
            d->env = dv;
        } else {
            rc = get_scalar(ld, dk, dv, "a string", &s);
            d->cwd = dv;
        }
    }
    return rc;
}

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

    if (is_null(v))
        return fail(ld, k, "missing value for 'shape'");
    if (v->type == Y_MAP)
        return fail(ld, v,
            "'shape' must be an integer or a sequence of integers, got %s",
            got(v, b, sizeof(b)));
    n = v->type == Y_SEQ ? v->n : 1;
    if (n == 0 || n > 32)
        return fail(ld, v, "'shape' must have 1 to 32 dimensions");
    sd->shape = prun_arena_alloc(ld->job->arena, n * sizeof(*sd->shape));
    if (sd->shape == NULL)
        return nomem(ld);
    for (i = 0; i < n; i++) {
        const struct ynode *e = v->type == Y_SEQ ? v->kids[i] : v;
        if ((rc = get_int(ld, k, e, 0, LLONG_MAX, &x)) < 0)
            return rc;
        sd->shape[i] = (uint64_t)x;
    }
    sd->ndim = n;
    return 0;
}

static int load_segment(struct ld *ld, struct prun_segdef *sd,
    const struct ynode *k, const struct ynode *v)
{
    const struct ynode *fk = NULL, *sk = NULL, *wk = NULL, *pk = NULL;
    const struct ynode *ck = NULL;
    char where[96], b[64];
    const char *s = NULL;
    size_t i;
    int rc = 0;

    if ((rc = check_name(ld, k, NAME_SEGMENT, "segment name")) < 0)
        return rc;
    if ((sd->name = prun_arena_strdup(ld->job->arena, k->str)) == NULL)
        return nomem(ld);
    sd->pos = pos_of(k);
    snprintf(where, sizeof(where), "segment '%s'", sd->name);
    if ((rc = want_map(ld, k, v, where)) < 0)
        return rc;
    snprintf(where, sizeof(where), " in segment '%s'", sd->name);
    if ((rc = check_keys(ld, v, seg_keys, 8, where)) < 0)
        return rc;
    for (i = 0; i < v->n && rc == 0; i += 2) {
        const struct ynode *ek = v->kids[i], *ev = v->kids[i + 1];
        if (strcmp(ek->str, "file") == 0) {
            fk = ek;
            rc = static_str(ld, ek, ev, &sd->file);
        } else if (strcmp(ek->str, "size") == 0) {
            struct prun_err e;
            sk = ek;
            if ((rc = get_scalar(ld, ek, ev, "a size", &s)) < 0)
                break;
            if (prun_parse_size(s, &sd->size, &e) < 0)
                rc = fail(ld, ev, "'size': %s", e.msg);
            else if (sd->size == 0)
                rc = fail(ld, ev, "'size' must be greater than 0, got %s",
                    got(ev, b, sizeof(b)));
        } else if (strcmp(ek->str, "writable") == 0) {
            wk = ek;
            rc = get_bool(ld, ek, ev, &sd->writable);
        } else if (strcmp(ek->str, "dtype") == 0) {
            if ((rc = get_scalar(ld, ek, ev, "a string", &s)) < 0)
                break;
            if (s[0] == '\0' || strlen(s) > 32 ||
                strspn(s, "<>|=_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP"
                          "QRSTUVWXYZ0123456789") != strlen(s))
                rc = fail(ld, ev,
                    "'dtype' must be a numpy type like float32 or <f8, "
                    "got %s",
                    got(ev, b, sizeof(b)));
            else if ((sd->dtype = prun_arena_strdup(ld->job->arena, s)) == NULL)
                rc = nomem(ld);
        } else if (strcmp(ek->str, "shape") == 0) {
            rc = load_shape(ld, sd, ek, ev);
        } else if (strcmp(ek->str, "published") == 0) {
            rc = get_bool(ld, ek, ev, &sd->published);
            if (sd->published)
                pk = ek;
        } else if (strcmp(ek->str, "copy") == 0) {
            int copy = 1;
            ck = ek;
            rc = get_bool(ld, ek, ev, &copy);
            sd->nocopy = !copy;
        } else {
            if ((rc = get_scalar(ld, ek, ev, "auto or never", &s)) < 0)
                break;
            if (strcmp(s, "auto") == 0)
                sd->hugepages = PRUN_HUGE_AUTO;
            else if (strcmp(s, "never") == 0)
                sd->hugepages = PRUN_HUGE_NEVER;
            else
                rc = fail(ld, ev, "'hugepages' must be auto or never, got %s",
                    got(ev, b, sizeof(b)));
        }
    }
    if (rc < 0)
        return rc;
    /* Exactly one of file:, size: and published: true. */
    if (fk != NULL && sk != NULL)
        return fail(ld, fk->line > sk->line ? fk : sk,
            "segment '%s' has both 'file' and 'size'; use one", sd->name);
    if (pk != NULL && (fk != NULL || sk != NULL))
        return fail(ld, pk,
            "segment '%s' has both '%s' and 'published'; a published "
            "segment is created by a child, use one",
            sd->name, fk != NULL ? "file" : "size");
    if (fk == NULL && sk == NULL && pk == NULL)
        return fail(ld, k,
            "segment '%s' needs 'file', 'size' or 'published: true'", sd->name);
    if (fk != NULL && sd->writable)
        return fail(ld, wk,
            "file segments are read-only; use size: with writable: true");
    if (pk != NULL && sd->writable)
        return fail(ld, wk,
            "published segments are read-only; use size: with writable: "
            "true");
    if (ck != NULL && fk == NULL)
        return fail(ld, ck,
            "'copy' applies to file segments only (segment '%s')", sd->name);
    return 0;
}

/*
 * A segment reaches a child as PARALLELRUN_SEGMENT_<NAME in upper case>
 * plus _SIZE, _DTYPE, ... variables, and a published one as a file beside
 * the run's 'owner' file. So names are compared without case, 'owner' is
 * reserved, and no name may be another's plus one of those suffixes.
 */
static int check_seg_name(
    struct ld *ld, const struct prun_job *job, size_t i, const struct ynode *k)
{
    static const char *const suffixes[] = {
        "_SIZE", "_DTYPE", "_SHAPE", "_WRITABLE", "_HUGEPAGES"};
    const char *name = job->segs[i].name;
    size_t j, x, n = strlen(name);

    if (strcasecmp(name, "owner") == 0)
        return fail(ld, k,
            "segment name '%s' is reserved (the run directory's owner file)",
            name);
    for (j = 0; j < i; j++) {
        const char *o = job->segs[j].name;
        size_t m = strlen(o);

        if (strcasecmp(o, name) == 0)
            return fail(ld, k,
                "segment '%s' and segment '%s' (line %u) differ only in case; "
                "both would be PARALLELRUN_SEGMENT_%s",
                name, o, job->segs[j].pos.line, o);
        for (x = 0; x < sizeof(suffixes) / sizeof(suffixes[0]); x++) {
            size_t sl = strlen(suffixes[x]);
            const char *longer = n > m ? name : o, *shorter = n > m ? o : name;
            size_t ll = n > m ? n : m, sl2 = n > m ? m : n;

            if (ll == sl2 + sl && strncasecmp(longer, shorter, sl2) == 0 &&
                strcasecmp(longer + sl2, suffixes[x]) == 0)
                return fail(ld, k,
                    "segment '%s' clashes with segment '%s' (line %u): "
                    "PARALLELRUN_SEGMENT_%s%s would name both",
                    name, o, job->segs[j].pos.line, shorter, suffixes[x]);
        }
    }
    return 0;
}

/* ---- top level ---- */

static int load_vars(struct ld *ld, const struct ynode *k,
    const struct ynode *v, const struct prun_set *sets, size_t nsets)
{
    struct prun_job *job = ld->job;
    struct prun_arena *a = job->arena;
    size_t n = 0, i, j, cap = (v ? v->n / 2 : 0) + nsets;
    const char *s = NULL;
    int rc;

    if (v != NULL && (rc = want_map(ld, k, v, "'vars'")) < 0)
        return rc;
    if (cap == 0)
        return 0;
    job->var_keys = prun_arena_alloc(a, cap * sizeof(*job->var_keys));
    job->var_vals = prun_arena_alloc(a, cap * sizeof(*job->var_vals));
    if (job->var_keys == NULL || job->var_vals == NULL)
        return nomem(ld);
    for (i = 0; v != NULL && i < v->n; i += 2) {
        if ((rc = check_name(ld, v->kids[i], NAME_KEY, "variable name")) < 0 ||
            (rc = get_scalar(ld, v->kids[i], v->kids[i + 1], "a string", &s)) <
                0)
            return rc;
        job->var_keys[n] = prun_arena_strdup(a, v->kids[i]->str);
        job->var_vals[n] = prun_arena_strdup(a, s);
        if (job->var_keys[n++] == NULL || job->var_vals[n - 1] == NULL)
            return nomem(ld);
    }
    /*
     * --set wins over the file, but only for variables the file declares:
     * a misspelt name must not be silently ignored, as for unknown keys.
     */
    for (i = 0; i < nsets; i++) {
        const char *sugg;

        if (sets[i].name == NULL || !name_ok(sets[i].name, NAME_KEY))
            return prun_err_set(ld->err, PRUN_EINVAL,
                "--set: invalid variable name '%.64s' (use letters, digits, "
                "'_' and '-', starting with a letter or '_')",
                sets[i].name ? sets[i].name : "");
        for (j = 0; j < n; j++)
            if (strcmp(job->var_keys[j], sets[i].name) == 0)
                break;
        if (j == n) {
            sugg = prun_closest(
                sets[i].name, (const char *const *)job->var_keys, n);
            if (sugg != NULL)
                return prun_err_set(ld->err, PRUN_EINVAL,
                    "--set %.64s: %s declares no such variable (did you "
                    "mean '%s'?)",
                    sets[i].name, ld->path, sugg);
            return prun_err_set(ld->err, PRUN_EINVAL,
                "--set %.64s: %s declares no such variable (%s)", sets[i].name,
                ld->path,
                n == 0 ? "it has no 'vars:'" : "declare it under 'vars:'");
        }
        job->var_vals[j] =
            prun_arena_strdup(a, sets[i].value ? sets[i].value : "");
        if (job->var_vals[j] == NULL)
            return nomem(ld);
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
    return prun_arena_strdup(ld->job->arena, n > 0 ? buf : "job");
}

static int resolve_refs(
    struct ld *ld, struct tdef *tds, const struct ynode *segs)
{
    struct prun_job *job = ld->job;
    struct smap names = {0};
    const char **cands = NULL;
    size_t i, j, m, q, *idx = NULL;
    int rc = 0;

    idx = malloc((job->ntasks ? job->ntasks : 1) * sizeof(*idx));
    cands = malloc((job->ntasks ? job->ntasks : 1) * sizeof(*cands));
    if (idx == NULL || cands == NULL) {
        rc = nomem(ld);
        goto fail;
    }
    for (i = 0; i < job->ntasks; i++) {
        idx[i] = i;
        cands[i] = job->tasks[i].name;
        if (smap_set(&names, job->tasks[i].name, &idx[i]) < 0) {
            rc = nomem(ld);
            goto fail;
        }
    }
    for (i = 0; i < job->ntasks; i++) {
        struct prun_task *t = &job->tasks[i];
        const struct ynode *v = tds[i].needs;
        size_t n = v == NULL ? 0 : v->type == Y_SEQ ? v->n : 1;

        if (n > 0 && (t->needs = prun_arena_alloc(
                          job->arena, n * sizeof(*t->needs))) == NULL) {
            rc = nomem(ld);
            goto fail;
        }
        for (j = 0; j < n; j++) {
            const struct ynode *e = v->type == Y_SEQ ? v->kids[j] : v;
            const size_t *p = smap_get(&names, e->str);
            const char *sugg;
            if (p == NULL) {
                sugg = prun_closest(e->str, cands, job->ntasks);
                rc = fail(ld, e,
                    "task '%s' needs '%.64s', which is not defined%s%s%s",
                    t->name, e->str, sugg ? " (did you mean '" : "",
                    sugg ? sugg : "", sugg ? "'?)" : "");
                goto fail;
            }
            if (*p == i) {
                rc = fail(ld, e, "task '%s' needs itself", t->name);
                goto fail;
            }
            for (m = 0; m < t->nneeds && t->needs[m] != *p; m++)
                ;
            if (m == t->nneeds)
                t->needs[t->nneeds++] = *p;
        }
    }
    for (i = 0; i < job->ntasks; i++) {
        struct prun_task *t = &job->tasks[i];
        const struct ynode *v = tds[i].segs;
        size_t n = v == NULL ? 0 : v->type == Y_SEQ ? v->n : 1;

        if (n > 0 && (t->segs = prun_arena_alloc(
                          job->arena, n * sizeof(*t->segs))) == NULL) {
            rc = nomem(ld);
            goto fail;
        }
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
                sugg = prun_closest(e->str, seg_names, nc);
                rc = fail(ld, e,
                    "task '%s' uses segment '%.64s', which is not "
                    "defined%s%s%s",
                    t->name, e->str,
                    sugg   ? " (did you mean '"
                    : segs ? ""
                           : " (no 'segments:')",
                    sugg ? sugg : "", sugg ? "'?)" : "");
                goto fail;
            }
            for (q = 0; q < t->nsegs && t->segs[q] != m; q++)
                ;
            if (q == t->nsegs)
                t->segs[t->nsegs++] = m;
        }
    }
fail:
    smap_free(&names);
    free(idx);
    free(cands);
    return rc;
}

static const char *const top_keys[] = {"version", "name", "jobs", "vars",
    "lock", "halt", "max_failures", "segments", "defaults", "tasks"};
#define NTOP_KEYS (sizeof(top_keys) / sizeof(top_keys[0]))

static int convert(struct ld *ld, const struct prun_set *sets, size_t nsets)
{
    const struct ynode *root = ld->root, *slot[NTOP_KEYS] = {0},
                       *kslot[NTOP_KEYS] = {0};
    struct prun_job *job = ld->job;
    struct dflt d = {0, -1, 1000, 0, NULL, NULL};
    struct tdef *tds = NULL;
    const char *s = NULL;
    size_t i, j;
    char b[64];
    int rc;

    if (root == NULL || is_null(root))
        return fail_at(ld, 1, 1, "empty job file");
    if (root->type != Y_MAP)
        return fail(ld, root, "the job file must be a mapping (got %s)",
            root->type == Y_SEQ ? "a sequence" : "a string");
    if ((rc = check_keys(ld, root, top_keys, NTOP_KEYS, "")) < 0)
        return rc;
    for (i = 0; i < root->n; i += 2)
        for (j = 0; j < NTOP_KEYS; j++)
            if (strcmp(root->kids[i]->str, top_keys[j]) == 0) {
                kslot[j] = root->kids[i];
                slot[j] = root->kids[i + 1];
            }
    if (slot[9] == NULL)
        return fail_at(ld, 1, 1, "missing required key 'tasks'");

    if (slot[0] != NULL) {
        if ((rc = get_any_scalar(ld, kslot[0], slot[0], "an integer", &s)) < 0)
            return rc;
        if (strcmp(s, "1") != 0 || scalar_type(slot[0]) != S_INT)
            return fail(ld, slot[0], "'version' must be 1, got %s",
                got(slot[0], b, sizeof(b)));
    }
    if (slot[1] != NULL) {
        if ((rc = get_scalar(ld, kslot[1], slot[1], "a string", &s)) < 0 ||
            (rc = check_name(ld, slot[1], NAME_TASK, "job name")) < 0)
            return rc;
        job->name = prun_arena_strdup(job->arena, s);
    } else {
        job->name = default_name(ld);
    }
    if (job->name == NULL)
        return nomem(ld);
    if (slot[2] != NULL &&
        (rc = get_uint(ld, kslot[2], slot[2], 1, 100000, &job->jobs)) < 0)
        return rc;
    if ((rc = load_vars(ld, kslot[3], slot[3], sets, nsets)) < 0)
        return rc;
    if (slot[4] != NULL &&
        (rc = get_bool(ld, kslot[4], slot[4], &job->lock)) < 0)
        return rc;
    if (slot[5] != NULL) {
        if ((rc = get_scalar(ld, kslot[5], slot[5], "never, soon or now", &s)) <
            0)
            return rc;
        if (strcmp(s, "never") == 0)
            job->halt = PRUN_HALT_NEVER;
        else if (strcmp(s, "soon") == 0)
            job->halt = PRUN_HALT_SOON;
        else if (strcmp(s, "now") == 0)
            job->halt = PRUN_HALT_NOW;
        else
            return fail(ld, slot[5],
                "'halt' must be never, soon or now, got %s",
                got(slot[5], b, sizeof(b)));
    }
    job->max_failures = 1;
    if (slot[6] != NULL && (rc = get_uint(ld, kslot[6], slot[6], 1, INT_MAX,
                                &job->max_failures)) < 0)
        return rc;
    if (slot[7] != NULL) {
        const struct ynode *v = slot[7];
        if ((rc = want_map(ld, kslot[7], v, "'segments'")) < 0)
            return rc;
        job->nsegs = v->n / 2;
        job->segs = prun_arena_alloc(
            job->arena, (job->nsegs ? job->nsegs : 1) * sizeof(*job->segs));
        if (job->segs == NULL)
            return nomem(ld);
        for (i = 0; i < job->nsegs; i++)
            if ((rc = load_segment(ld, &job->segs[i], v->kids[2 * i],
                     v->kids[2 * i + 1])) < 0 ||
                (rc = check_seg_name(ld, job, i, v->kids[2 * i])) < 0)
                return rc;
    }
    if (slot[8] != NULL && (rc = load_defaults(ld, kslot[8], slot[8], &d)) < 0)
        return rc;

    if ((rc = want_map(ld, kslot[9], slot[9], "'tasks'")) < 0)
        return rc;
    if (slot[9]->n == 0)
        return fail(ld, slot[9], "'tasks' must not be empty");
    job->ntasks = slot[9]->n / 2;
    job->tasks =
        prun_arena_alloc(job->arena, job->ntasks * sizeof(*job->tasks));
    tds = calloc(job->ntasks, sizeof(*tds));
    if (job->tasks == NULL || tds == NULL) {
        rc = nomem(ld);
        goto fail;
    }
    for (i = 0; i < job->ntasks; i++)
        if ((rc = load_task(ld, &job->tasks[i], &tds[i], slot[9]->kids[2 * i],
                 slot[9]->kids[2 * i + 1], &d)) < 0)
            goto fail;
    if ((rc = resolve_refs(ld, tds, slot[7])) < 0)
        goto fail;
    rc = prun_job_check(job, ld->err);
fail:
    free(tds);
    return rc;
}

int prun_jobfile_load_mem(const char *name, const char *buf, size_t len,
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
        return fail_at(&ld, 1, 1, "job file is larger than 16 MiB");
    a = prun_arena_new();
    ld.tmp = prun_arena_new();
    if (a == NULL || ld.tmp == NULL ||
        (ld.job = prun_arena_alloc(a, sizeof(*ld.job))) == NULL) {
        rc = nomem(&ld);
        goto fail;
    }
    ld.job->arena = a;
    if ((ld.job->path = prun_arena_strdup(a, name)) == NULL) {
        rc = nomem(&ld);
        goto fail;
    }
    if ((rc = parse_yaml(&ld, buf, len)) < 0 ||
        (rc = convert(&ld, sets, nsets)) < 0)
        goto fail;
    *out = ld.job;
    a = NULL;
fail:
    smap_free(&ld.anchors);
    prun_arena_free(ld.tmp);
    prun_arena_free(a);
    return rc;
}

/* "cannot read 'path': reason" as PRUN_EINVAL, from errno. */
static int bad_input_sys(struct prun_err *err, const char *path)
{
    prun_err_sys(err, "cannot read '%s'", path);
    if (err != NULL)
        err->code = PRUN_EINVAL;
    return PRUN_EINVAL;
}

int prun_jobfile_load(const char *path, const struct prun_set *sets,
    size_t nsets, struct prun_job **out, struct prun_err *err)
{
    struct prun_buf b = {0};
    char chunk[65536];
    struct stat st;
    ssize_t r;
    int fd = -1, rc;

    if (strcmp(path, "-") == 0)
        return prun_err_set(err, PRUN_EINVAL,
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
        rc = prun_err_set(
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
            rc = prun_err_set(err, PRUN_EINVAL,
                "%s:1:1: job file is larger than 16 MiB", path);
            goto fail;
        }
        if (prun_buf_add(&b, chunk, (size_t)r) < 0) {
            rc = prun_err_set(err, PRUN_ENOMEM, "out of memory");
            goto fail;
        }
    }
    rc = prun_jobfile_load_mem(
        path, b.data ? b.data : "", b.len, sets, nsets, out, err);
fail:
    if (fd >= 0)
        close(fd);
    prun_buf_free(&b);
    return rc;
}
