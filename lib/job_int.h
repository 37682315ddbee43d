/* SPDX-License-Identifier: MIT */
#ifndef PRUN_JOB_INT_H
#define PRUN_JOB_INT_H
/*
 * Shared by the job model's two halves: job_tpl.c (compiling templates)
 * and job.c (expanding them). Nothing else includes it.
 */
#include "job.h"

/*
 * Appends value v quoted for context q (PRUN_Q_NONE: as it is). The
 * compiler inlines variables with it, the expansion every other value.
 */
int prun__tpl_add_quoted(
    struct prun_buf *out, const char *v, enum prun_quote q);

#endif
