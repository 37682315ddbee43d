/* SPDX-License-Identifier: MIT */
#ifndef PRUN_JOB_H
#define PRUN_JOB_H

/*
 * The job model: what a job file means once it has been parsed and checked.
 * jobfile.c builds it from YAML; job_tpl.c compiles the placeholders; job.c
 * checks the model and expands them; iter.c iterates over foreach sources.
 * Every string and array in a struct prun_job lives in job->arena and dies
 * with prun__job_free().
 */

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* 1-based line and column of a node in the job file. */
struct prun_pos {
    unsigned line, col;
};

/*
 * One foreach value. A scalar item has nkeys == 0; a mapping item (from a
 * list of mappings, or a matrix combination) has keys/vals in file order and
 * text = the values joined by one space.
 */
struct prun_item {
    const char *text;
    size_t nkeys;
    const char *const *keys;
    const char *const *vals;
};

/* Copies n items (strings included) into one malloc'd block; free() it. */
struct prun_item *prun__items_dup(const struct prun_item *items, size_t n);

/*
 * Appends the value of n items as PARALLELRUN_ITEM carries it: their texts
 * joined by newlines. It is also what --resume matches on. out->data is
 * non-NULL on success (an empty string for no text).
 */
int prun__items_value(
    const struct prun_item *items, size_t n, struct prun_buf *out);

/*
 * A compiled template: an argv element, an env value or a cwd, split into
 * literal runs and placeholders. {vars.NAME} is resolved at compile time and
 * becomes literal text; "{{" is a literal "{" and "}}" a literal "}".
 */
enum prun_ph {
    PRUN_PH_LIT,      /* text */
    PRUN_PH_ITEM,     /* {item} */
    PRUN_PH_ITEM_KEY, /* {item.KEY}: text = KEY */
    PRUN_PH_INDEX,    /* {index} */
    PRUN_PH_COUNT,    /* {count} */
    PRUN_PH_TASK,     /* {task} */
    PRUN_PH_RUN_ID,   /* {run_id} */
    PRUN_PH_ATTEMPT,  /* {attempt} */
    PRUN_PH_ARG,      /* GNU parallel's {}, {.}, {N}, {N/}, ...: arg, xf */
    PRUN_PH_SEQ,      /* {#}: index + 1 */
    PRUN_PH_SLOT,     /* {%}: the executor slot, 1-based */
};

/*
 * GNU parallel's transformations of a value: {.} drops the extension, {/}
 * keeps the basename, {//} the directory, {/.} the basename without its
 * extension (the same results as parallel's, edge cases included).
 */
enum prun_xf {
    PRUN_XF_NONE,
    PRUN_XF_NOEXT,
    PRUN_XF_BASE,
    PRUN_XF_DIR,
    PRUN_XF_BASE_NOEXT,
};

/*
 * How a substituted value is quoted in a shell template: the quote context
 * the shell is in where the placeholder stands. Outside shell templates
 * (argv elements, env values, cwd) values are never quoted: PRUN_Q_NONE.
 */
enum prun_quote {
    PRUN_Q_NONE,
    PRUN_Q_BARE,    /* unquoted: the value becomes one '...' word */
    PRUN_Q_SINGLE,  /* inside '...': each ' becomes '\'' */
    PRUN_Q_DOUBLE,  /* inside "...": $ ` " \ get a backslash */
    PRUN_Q_COMMENT, /* after '#': newlines become spaces */
};

struct prun_tpl_part {
    enum prun_ph kind;
    const char *text;
    size_t len;
    enum prun_quote quote;
    /*
     * PRUN_PH_ARG: arg 0 is every value of the instance (joined by a
     * space), N >= 1 the Nth; xf the transformation applied to each value.
     * The values of an instance are its items in order, a mapping item
     * (a matrix combination, a source of ad-hoc mode) giving its values
     * in key order; with chunk the items' values follow one another, as
     * parallel's {N} with -N does.
     */
    unsigned arg;
    enum prun_xf xf;
};

struct prun_tpl {
    struct prun_pos pos;
    const char *src; /* as written in the file */
    size_t nparts;
    struct prun_tpl_part *parts;
    /*
     * No placeholder that varies per instance, and the text with {vars.}
     * substituted is empty (empty) or only white space (blank).
     */
    int empty, blank;
};

/* Values the placeholders of one task instance expand to. */
struct prun_ctx {
    const char *task;
    const char *run_id;
    unsigned long long index; /* 0-based */
    long long count;          /* -1 when unknown (lines from stdin) */
    unsigned attempt;         /* 1-based */
    const struct prun_item *items;
    size_t nitems; /* > 1 with chunk */
    unsigned slot; /* {%}: 1-based executor slot; 0 when not running */
};

enum prun_src {
    PRUN_SRC_NONE, /* a single instance with an empty item */
    PRUN_SRC_LIST,
    PRUN_SRC_RANGE,
    PRUN_SRC_LINES,
    PRUN_SRC_GLOB,
    PRUN_SRC_MATRIX,
};

struct prun_axis {
    const char *name;
    size_t nvals;
    const char **vals;
};

struct prun_foreach {
    enum prun_src kind;
    struct prun_pos pos;      /* the source's node, for runtime errors */
    size_t nlist;             /* LIST */
    struct prun_item *list;   /* LIST */
    long long from, to, step; /* RANGE: end excluded, step != 0 */
    const char *path;         /* LINES ("-" = stdin), GLOB pattern */
    size_t naxes;             /* MATRIX */
    struct prun_axis *axes;   /* MATRIX */
    unsigned chunk;           /* items per instance, >= 1 */
    int allow_empty;          /* zero items is fine, not an error */
    int nul_sep;              /* LINES: items end with NUL, not newline */
    const char *nul_hint;     /* LINES: what to say after "item N contains
                                 a NUL byte"; NULL: the job file's words */
};

enum prun_halt {
    PRUN_HALT_NEVER,
    PRUN_HALT_SOON, /* start nothing new, let running instances finish */
    PRUN_HALT_NOW,  /* stop running instances too */
};

/* What a halt counts (GNU parallel's --halt WHEN,fail|success|done=N). */
enum prun_halt_on {
    PRUN_HALT_ON_FAIL,
    PRUN_HALT_ON_SUCCESS,
    PRUN_HALT_ON_DONE, /* failed or succeeded */
};

enum prun_hugepages {
    PRUN_HUGE_DEFAULT, /* from config [segments] hugepages */
    PRUN_HUGE_AUTO,
    PRUN_HUGE_NEVER,
};

struct prun_segdef {
    const char *name;
    struct prun_pos pos;
    const char *file; /* read-only segment loaded from this file, or NULL */
    uint64_t size;    /* size: segments (0 for file: and published:) */
    int writable;
    int published;     /* published: true: created at run time by a child */
    int nocopy;        /* copy: false: children map the file itself */
    const char *dtype; /* numpy notation, or NULL */
    size_t ndim;
    uint64_t *shape;
    enum prun_hugepages hugepages;
};

struct prun_task {
    const char *name;
    struct prun_pos pos;
    int shell;   /* run: was a string: /bin/sh -c */
    size_t argc; /* shell: 1 */
    struct prun_tpl *argv;
    size_t nenv; /* defaults.env merged in, task wins */
    const char **env_keys;
    struct prun_tpl *env_vals;
    struct prun_tpl *cwd; /* NULL: the runner's cwd */
    struct prun_foreach foreach;
    unsigned jobs; /* per-task cap; 0: none */
    double rate;   /* starts per second; 0: unlimited */
    size_t nneeds;
    size_t *needs; /* indices into job->tasks */
    size_t nsegs;
    size_t *segs;           /* indices into job->segs */
    int64_t timeout_ms;     /* 0: none */
    int64_t kill_grace_ms;  /* -1: unset (config decides, default 10s) */
    unsigned retries;       /* extra attempts after the first */
    int64_t retry_delay_ms; /* before the 2nd attempt; doubled after */
    int pool;               /* pool: true */
};

struct prun_job {
    struct prun_arena *arena;
    const char *path;
    const char *name; /* default: file name without extension */
    unsigned jobs;    /* 0: unset */
    size_t nvars;
    const char **var_keys;
    const char **var_vals;
    int lock;
    enum prun_halt halt;
    enum prun_halt_on halt_on;
    unsigned max_failures; /* the halt's count N, >= 1 (halt_pct: 0) */
    unsigned halt_pct;     /* N% of all instances instead; 0: a count */
    size_t nsegs;
    struct prun_segdef *segs;
    size_t ntasks;
    struct prun_task *tasks; /* in file order */
    /*
     * A "{...}" that names no placeholder stays literal text, as GNU
     * parallel leaves it (ad-hoc mode: awk '{print $1}'); job files
     * report it instead.
     */
    int literal_braces;
};

/* A --set VAR=VALUE override. */
struct prun_set {
    const char *name;
    const char *value;
};

void prun__job_free(struct prun_job *job);

/*
 * Whole-model checks that need every task: needs naming undefined tasks,
 * dependency cycles, segments naming undefined segments. Called by the
 * loader; err->msg is "FILE:LINE:COL: message".
 */
int prun__job_check(const struct prun_job *job, struct prun_err *err);

/*
 * Compiles src into t for the given job (vars resolved). item_keys lists the
 * keys {item.KEY} may name (NULL/0: items are scalars, any {item.KEY} is an
 * error). On error err->msg is "FILE:LINE:COL: message", the column pointing
 * at the offending placeholder when the scalar was plain. Placeholders of
 * any length are accepted; the only names are those of the job and items.
 */
int prun__tpl_compile(struct prun_job *job, struct prun_tpl *t, const char *src,
    struct prun_pos pos, const char *const *item_keys, size_t nkeys,
    struct prun_err *err);

/*
 * The same for a /bin/sh -c command line: it follows the shell's quoting
 * through the text (unquoted, '...', "...", backslashes, $(...), comments)
 * and records at each placeholder how its value must be quoted there, so
 * that no value can become shell syntax. {vars.NAME} values are quoted the
 * same way. A placeholder whose value cannot be quoted where it stands
 * (inside backquotes, ${...}, $((...)), after a here-document
 * operator, right after '\' or '$') is an error with its position.
 */
int prun__tpl_compile_shell(struct prun_job *job, struct prun_tpl *t,
    const char *src, struct prun_pos pos, const char *const *item_keys,
    size_t nkeys, struct prun_err *err);

/*
 * Appends t expanded for ctx to out. With shell_quote each substituted value
 * is quoted for /bin/sh as its part's quote context says (unquoted when the
 * template was not compiled for the shell); literal text is not. With
 * several items (chunk), {item} is the items joined by one space.
 */
int prun__tpl_expand(const struct prun_tpl *t, const struct prun_ctx *ctx,
    int shell_quote, struct prun_buf *out);

/*
 * The NULL-terminated argv of one instance, in one malloc'd block (free()).
 * List form: one element per template, except that an element that is
 * exactly "{item}" becomes one element per item when ctx has several, and
 * one that is exactly "{}" (or "{.}", "{/}", ...: a PRUN_PH_ARG of every
 * value) one element per value when the instance has several, as GNU
 * parallel passes each argument as a word of its own.
 * String form: {"/bin/sh", "-c", expanded, NULL} with values shell-quoted.
 * Returns NULL on allocation failure.
 */
char **prun__task_argv(const struct prun_task *t, const struct prun_ctx *ctx);

/*
 * The command line as GNU parallel's joblog shows it: the shell string, or
 * the argv joined with spaces, each element shell-quoted where needed.
 */
int prun__task_cmdline(const struct prun_task *t, const struct prun_ctx *ctx,
    struct prun_buf *out);

/*
 * Streaming iteration over a foreach source. LINES reads its file as it
 * goes (never holding more than one chunk of items); RANGE and MATRIX are
 * computed; LIST and GLOB walk arrays.
 */
struct prun_iter;

/*
 * Opens the source of f. job is used for the file name in messages. For
 * LINES from a regular file the lines are counted here (one read pass, no
 * memory kept) so that {count} is known; a missing file is PRUN_EINVAL with
 * "FILE:LINE:COL: cannot open 'x': reason".
 */
int prun__iter_open(const struct prun_job *job, const struct prun_foreach *f,
    struct prun_iter **out, struct prun_err *err);
/*
 * Advances to the next instance's items (up to f->chunk of them). Returns
 * the number of items (0 at the end) with *items pointing at storage valid
 * until the next call, or a negative PRUN_E* on a read error.
 */
int prun__iter_next(
    struct prun_iter *it, const struct prun_item **items, struct prun_err *err);
/* Number of instances this source yields in all, or -1 if not known. */
long long prun__iter_count(const struct prun_iter *it);
void prun__iter_free(struct prun_iter *it);

/*
 * prun__iter_next()'s answer, in async mode only, when a lines source has
 * no complete item yet: wait until prun__iter_fd() is readable (or hung up),
 * call prun__iter_readable(), then ask again. Items gathered so far are kept.
 */
#define PRUN_ITER_AGAIN (-100)

enum {
    /* Zero items in all is an error unless the foreach has allow_empty. */
    PRUN_ITER_STRICT = 1,
    /*
     * Never block: a pipe, FIFO or terminal is read only after the caller
     * saw it readable, and prun__iter_next() says PRUN_ITER_AGAIN instead of
     * waiting. Without it, prun__iter_next() waits in poll() itself.
     */
    PRUN_ITER_ASYNC = 2,
};

/*
 * prun__iter_open() with flags (PRUN_ITER_*). Opening never blocks, not even
 * on a FIFO that has no writer yet. A lines file holding a NUL byte is
 * refused (with its line) unless f->nul_sep.
 */
int prun__iter_open_flags(const struct prun_job *job,
    const struct prun_foreach *f, int flags, struct prun_iter **out,
    struct prun_err *err);
/* After PRUN_ITER_AGAIN: the fd to wait for; otherwise -1. */
int prun__iter_fd(const struct prun_iter *it);
/* The fd of prun__iter_fd() is readable or hung up: the next read may go. */
void prun__iter_readable(struct prun_iter *it);

/*
 * Nonzero if task t's source is only resolved when its needs succeed: a
 * lines file or glob of a task with needs (an earlier task may make it).
 */
int prun__task_source_deferred(const struct prun_task *t);

/*
 * Checks, without waiting on anything or consuming input, every source
 * that can be checked before the run: all but the deferred ones. Lines
 * files are read (missing, NUL bytes, empty), globs matched (nothing
 * matched), lists, ranges and matrices counted; a FIFO, terminal or stdin
 * is only looked at, never opened or read. PRUN_EINVAL with
 * "FILE:LINE:COL: message" (or "DATA:LINE: ..." for a NUL byte).
 */
int prun__job_check_sources(const struct prun_job *job, struct prun_err *err);

/* The loader (jobfile.c). */

/*
 * Loads and checks the job file at path ("-" is not allowed: stdin may be a
 * foreach source). sets override or add vars. On success *out owns a new
 * job. Errors: PRUN_EINVAL with err->msg "FILE:LINE:COL: message", or
 * PRUN_ESYS when the file cannot be read.
 */
int prun__jobfile_load(const char *path, const struct prun_set *sets,
    size_t nsets, struct prun_job **out, struct prun_err *err);
/* The same from memory; name is used in messages and as the default name. */
int prun__jobfile_load_mem(const char *name, const char *buf, size_t len,
    const struct prun_set *sets, size_t nsets, struct prun_job **out,
    struct prun_err *err);

#endif
