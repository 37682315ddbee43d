/* SPDX-License-Identifier: MIT */
#ifndef PRUN_JOBFILE_INT_H
#define PRUN_JOBFILE_INT_H
/*
 * Shared by the job file loader's two halves: yamltree.c (YAML text to a
 * tree of positioned nodes; the only module that includes <yaml.h>) and
 * jobfile.c (the tree to a checked struct prun_job).
 */
#include <stdint.h>

#include "job.h"

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

/* "FILE:LINE:COL: message" in ld->err; returns PRUN_EINVAL. */
int prun__ld_fail_at(struct ld *ld, unsigned line, unsigned col,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The same at node n's position. */
int prun__ld_fail(struct ld *ld, const struct ynode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int prun__ld_nomem(struct ld *ld);

const void *prun__smap_get(const struct smap *m, const char *key);
/* Returns 0, 1 if key was there already (val unchanged), or PRUN_ENOMEM. */
int prun__smap_set(struct smap *m, const char *key, const void *val);
void prun__smap_free(struct smap *m);

/*
 * Parses buf (len bytes, the file ld->path) into ld->root, its nodes in
 * ld->tmp. Returns 0 or a negative PRUN_E* with ld->err set.
 */
int prun__yaml_parse(struct ld *ld, const char *buf, size_t len);

#endif
