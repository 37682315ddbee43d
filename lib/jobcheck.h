/* SPDX-License-Identifier: MIT */
#ifndef PRUN_JOBCHECK_H
#define PRUN_JOBCHECK_H

#include "job.h"

/*
 * Checks what a job needs of the file system before anything starts:
 * `file:` segments are readable regular files (a FIFO or a directory is
 * refused, a missing file is allowed only when every task using it waits
 * for another), dtype x shape matches a segment's bytes where both are
 * given, and `lines:` paths exist (unless the task waits for another) and
 * are not directories. Never blocks and reads no item source. Returns 0 or
 * PRUN_EINVAL with err->msg "FILE:LINE:COL: message".
 */
int prun__job_check_files(const struct prun_job *job, struct prun_err *err);

#endif
