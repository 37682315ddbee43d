/* SPDX-License-Identifier: MIT */
#ifndef PRUN_OUTCOME_H
#define PRUN_OUTCOME_H
/*
 * What an ended attempt means (outcome.c), for the run loop.
 */
#include "executor.h"
#include "runner.h"

/*
 * What attempt a's wait status (or -1: it never ran) means for the
 * scheduler; *kind the kind of failure it would be, *code its exit
 * status (127 for a start that failed), *sig the signal that killed it.
 */
enum prun_outcome prun__outcome_classify(const struct prun__attempt *a,
    int status, enum prun_fail_kind *kind, int *code, int *sig);
/*
 * Keeps a's failure (kind; status: an exit status or a signal) in
 * res->fail, or counts it in res->fail_more once PRUN_MAX_FAILURES are
 * kept. Returns the entry, or NULL.
 */
const struct prun_failure *prun__outcome_failure(struct prun_run_result *res,
    const struct prun__attempt *a, enum prun_fail_kind kind, int status);

#endif
