/* SPDX-License-Identifier: MIT */
#ifndef PRUN_JOBFILE_INT_H
#define PRUN_JOBFILE_INT_H
/*
 * Shared by the job file loader's two halves: yamltree.c (YAML text to a
 * tree of positioned nodes; the only module that includes <yaml.h>) and
 * jobfile*.c (the tree to a checked struct prun_job: jobfile.c the top
 * level, jobfile_task.c a task, jobfile_get.c typed getters,
 * jobfile_foreach.c and jobfile_segments.c those schemas).
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

/* ---- jobfile_get.c: scalar types and typed getters ---- */

enum stype { S_STR, S_NULL, S_BOOL, S_INT, S_FLOAT };
enum name_kind { NAME_TASK, NAME_SEGMENT, NAME_ENV, NAME_KEY };

int prun__jf_is_null(const struct ynode *n);
enum stype prun__jf_scalar_type(const struct ynode *n);
const char *prun__jf_got(const struct ynode *n, char *buf, size_t size);
const struct ynode *prun__jf_map_get(
    const struct ynode *m, const char *key, const struct ynode **keynode);
int prun__jf_check_keys(struct ld *ld, const struct ynode *m,
    const char *const *known, size_t n, const char *where);
int prun__jf_want_map(struct ld *ld, const struct ynode *k,
    const struct ynode *v, const char *what);
int prun__jf_get_any_scalar(struct ld *ld, const struct ynode *k,
    const struct ynode *v, const char *what, const char **out);
int prun__jf_text_ok(
    struct ld *ld, const struct ynode *v, const char *key, const char *what);
int prun__jf_get_scalar(struct ld *ld, const struct ynode *k,
    const struct ynode *v, const char *what, const char **out);
int prun__jf_want_command(
    struct ld *ld, const struct ynode *v, const char *what);
int prun__jf_get_int(struct ld *ld, const struct ynode *k,
    const struct ynode *v, long long min, long long max, long long *out);
int prun__jf_get_uint(struct ld *ld, const struct ynode *k,
    const struct ynode *v, long long min, long long max, unsigned *out);
int prun__jf_get_bool(
    struct ld *ld, const struct ynode *k, const struct ynode *v, int *out);
int prun__jf_get_duration(
    struct ld *ld, const struct ynode *k, const struct ynode *v, int64_t *out);
int prun__jf_name_ok(const char *s, enum name_kind kind);
int prun__jf_check_name(struct ld *ld, const struct ynode *n,
    enum name_kind kind, const char *what);
int prun__jf_static_str(struct ld *ld, const struct ynode *k,
    const struct ynode *v, const char **out);
int prun__jf_compile(struct ld *ld, struct prun_tpl *t, const struct ynode *v,
    const char *const *keys, size_t nkeys);
int prun__jf_compile_shell(struct ld *ld, struct prun_tpl *t,
    const struct ynode *v, const char *const *keys, size_t nkeys);
struct prun_pos prun__jf_pos_of(const struct ynode *n);

/* ---- jobfile_task.c ---- */

/* Loader-side facts about a task, resolved after all tasks are known. */
struct tdef {
    const struct ynode *needs;
    const struct ynode *segs;
};

/* What `defaults:` gives every task. */
struct dflt {
    int64_t timeout_ms, kill_grace_ms, retry_delay_ms;
    unsigned retries;
    const struct ynode *env; /* mapping, checked, or NULL */
    const struct ynode *cwd; /* scalar, checked, or NULL */
};

/* Loads `defaults:` (k: v) into d. */
int prun__jf_load_defaults(struct ld *ld, const struct ynode *k,
    const struct ynode *v, struct dflt *d);
/* Loads the task named by k (v its mapping) into t, with d's defaults. */
int prun__jf_load_task(struct ld *ld, struct prun_task *t, struct tdef *td,
    const struct ynode *k, const struct ynode *v, const struct dflt *d);

/* ---- jobfile_foreach.c ---- */

int prun__jf_load_foreach(struct ld *ld, struct prun_task *t,
    const struct ynode *k, const struct ynode *v, const char *const **keys,
    size_t *nkeys);

/* ---- jobfile_segments.c ---- */

int prun__jf_load_segment(struct ld *ld, struct prun_segdef *sd,
    const struct ynode *k, const struct ynode *v);
int prun__jf_check_seg_name(
    struct ld *ld, const struct prun_job *job, size_t i, const struct ynode *k);

#endif
