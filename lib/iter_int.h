/* SPDX-License-Identifier: MIT */
#ifndef PRUN_ITER_INT_H
#define PRUN_ITER_INT_H
/*
 * Shared by the foreach iterators: iter.c (every source but lines, the
 * grouping into instances) and iter_lines.c (the lines source). Nothing
 * else includes it.
 */
#include <glob.h>

#include "job.h"

struct prun_iter {
    const struct prun_job *job;
    const struct prun_foreach *f;
    unsigned chunk;
    long long count; /* instances, -1 when unknown */
    int ended;       /* the source has no more items */
    int failed;      /* a read error happened; it is returned again */
    struct prun_err fail;

    /* The current instance's items and the text they point into. */
    struct prun_item *items;
    size_t *offs; /* text offsets into buf, fixed up once buf stops moving */
    struct prun_buf buf;

    unsigned long long pos;  /* items handed out so far */
    unsigned long long nall; /* items in all (LIST, RANGE, GLOB, MATRIX) */

    long long cur; /* RANGE: the next value */

    glob_t gl; /* GLOB */
    int have_gl;

    size_t *idx;       /* MATRIX: the current index on each axis */
    const char **keys; /* MATRIX: axis names, shared by every item */
    const char **vals; /* MATRIX: chunk * naxes chosen values */

    int fd;     /* LINES */
    int own_fd; /* not stdin */
    char *rbuf; /* LINES read buffer */
    size_t rpos, rend;
    int eof;
    int stream;    /* a pipe, FIFO, terminal...: never read unasked */
    int gate;      /* stream: wait for readiness before the next read */
    int async;     /* PRUN_ITER_ASYNC */
    int strict;    /* PRUN_ITER_STRICT */
    int old_flags; /* stdin's file status flags to restore, -1 none */
    int pending;   /* an instance is being gathered across calls */
    size_t have;   /* its items so far */
    int in_line;   /* a line is being gathered across calls */
    int line_got;  /* ... and has at least one byte or its end */
    unsigned long long lineno; /* lines read so far, for messages */
};

/* "JOBFILE:LINE:COL: cannot WHAT 'PATH': strerror(errno)"; PRUN_EINVAL. */
int prun__iter_fail_at(struct prun_err *err, const struct prun_job *job,
    const struct prun_foreach *f, const char *what);
/* Instances for nitems items in groups of chunk (-1: too many to count). */
long long prun__iter_instances(unsigned long long nitems, unsigned chunk);

/* The name a lines source goes by in messages ("stdin" for "-"). */
const char *prun__iter_lines_name(const struct prun_foreach *f);
/*
 * Opens it's lines source: a regular file counted (it->nall, it->count),
 * a stream marked to be read only when readable (count unknown).
 */
int prun__iter_open_lines(struct prun_iter *it, struct prun_err *err);
/*
 * Reads the next line of a lines source into it->buf as item i. Returns 1
 * for a line, 0 at the end of the input, PRUN_ITER_AGAIN when a stream has
 * nothing more yet (the line so far is kept for the next call), or a
 * negative PRUN_E*.
 */
int prun__iter_next_line(struct prun_iter *it, size_t i, struct prun_err *err);

#endif
