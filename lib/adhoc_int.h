/* SPDX-License-Identifier: MIT */
#ifndef PRUN_ADHOC_INT_H
#define PRUN_ADHOC_INT_H
/*
 * What ad-hoc mode's two halves share: adhoc_opts.c reads the options,
 * adhoc.c the command and its sources, and builds the job.
 */
#include "adhoc.h"

struct prun__adhoc_src {
    int file; /* :::: FILE */
    size_t first, n;
};

/* What parsing collects before the job is built. */
struct prun__adhoc_cl {
    struct prun_adhoc *a;
    struct prun_job *job;
    int null_sep, shell;
    int64_t timeout_ms, delay_ms;
    unsigned retries;
    size_t nsegs;
    char **seg_names, **seg_files;
    size_t cmd_first, ncmd;
    struct prun__adhoc_src *srcs;
    size_t nsrcs;
};

/*
 * Reads the options of argv from *i on, up to the command (or "--"),
 * into p; *i is left at the command's first word. Returns 0 or
 * PRUN_EINVAL with err naming the option.
 */
int prun__adhoc_options(struct prun__adhoc_cl *p, int argc, char **argv, int *i,
    struct prun_err *err);

#endif
