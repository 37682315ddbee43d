/* SPDX-License-Identifier: MIT */
#ifndef PRUN_WORKER_OUT_H
#define PRUN_WORKER_OUT_H
/*
 * A queue worker's children's output on its way back to the run
 * (docs/work-queue.md, "Output"): captured into results files in a
 * private directory, read back when the attempt ends (bounded), removed.
 */
#include <stddef.h>

#include "util.h"

/* At most this much of each of stdout and stderr goes back to the run. */
#define PRUN_WOUT_MAX (1024 * 1024)

/*
 * Creates the worker's private directory ($TMPDIR or /tmp, mode 0700) in
 * dir (n bytes). Returns 0 or PRUN_ESYS.
 */
int prun__wout_dir_new(char *dir, size_t n, struct prun_err *err);
/* Removes the directory and whatever is left in it. */
void prun__wout_dir_free(const char *dir);

/*
 * The output of task[index] of run rid captured under dir (as results of
 * run rid):
 * read into out and err (each at most PRUN_WOUT_MAX bytes, then a line
 * saying how much was cut and by which worker, who) and removed. A
 * missing file reads as empty.
 */
void prun__wout_take(const char *dir, const char *rid, const char *task,
    unsigned long long index, const char *who, struct prun_buf *out,
    struct prun_buf *err);

#endif
