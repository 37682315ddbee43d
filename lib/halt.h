/* SPDX-License-Identifier: MIT */
#ifndef PRUN_HALT_H
#define PRUN_HALT_H
/*
 * Halt conditions, as GNU parallel spells them (--halt WHEN[,WHY=N[%]]),
 * for the job file's halt key and ad-hoc mode's --halt alike.
 */
#include "job.h"

/*
 * Parses spec into job->halt, halt_on, max_failures and halt_pct:
 * never|soon|now, optionally ",fail=N", ",success=N" or ",done=N" where N
 * is a count (>= 1) or a percentage of all instances ("30%", 1 to 100);
 * GNU parallel's shorthands 0, 1, 2, -1, -2 and "N%" (soon,fail=N%) too.
 * WHEN alone is fail=1. Returns 0, or PRUN_EINVAL with err saying what is
 * wrong (the caller names the option or key).
 */
int prun__halt_parse(
    struct prun_job *job, const char *spec, struct prun_err *err);

/*
 * Whether the halt condition holds with n instances counted (failed,
 * succeeded or both, as the job's halt_on says) out of total (-1 when not
 * known yet: a percentage never holds then). *one is set when the
 * threshold is exactly one instance (parallel then exits with that
 * instance's status).
 */
int prun__halt_reached(const struct prun_job *job, unsigned long long n,
    long long total, int *one);

/* The job's halt condition in its long form ("now,fail=30%") in buf. */
const char *prun__halt_format(const struct prun_job *job, char *buf, size_t n);

#endif
