/* SPDX-License-Identifier: MIT */
#ifndef PRUN_ADHOC_H
#define PRUN_ADHOC_H
/*
 * Ad-hoc mode: a GNU parallel style command line turned into an in-memory
 * job of one task, run by the same composition as a job file.
 */
#include <stdint.h>

#include "job.h"

struct prun_adhoc {
    struct prun_job *job; /* one task; owned */
    unsigned jobs;        /* -j N; 0: default */
    unsigned jobs_pct;    /* -j N%: percent of the CPUs; 0: not given */
    int keep_order, tag, bar, eta, dry_run, quiet, json;
    const char *tagstring; /* --tagstring, or NULL */
    const char *joblog;    /* --joblog path, or NULL */
    int joblog_append;     /* --joblog +FILE */
    const char *results;   /* --results DIR */
    const char *redis;     /* --redis URL */
    const char *resume;    /* --resume=RUN_ID|last, or NULL */
    int resume_joblog;     /* --resume: skip what the joblog shows done */
    int resume_failed;     /* --resume-failed: ... and rerun its failures */
    int from_stdin;        /* no source given: lines (records) from stdin */
    /* --tag (the arguments, tab-separated) or --tagstring; in job's arena */
    struct prun_tpl *tag_tpl;
};

/*
 * Parses the ad-hoc command line argv[0..argc) (argv[0] is the program):
 * options, the command and its arguments, then sources (`::: A B...`,
 * `:::: FILE`; none: lines from stdin). Builds *out on success. Returns
 * PRUN_EINVAL with a message naming the option or word on a usage error,
 * PRUN_ESYS when a `::::` file cannot be read. `--help` is not handled.
 */
int prun__adhoc_parse(
    int argc, char **argv, struct prun_adhoc **out, struct prun_err *err);
void prun__adhoc_free(struct prun_adhoc *a);

/* Sequence numbers read from a joblog, sorted. */
struct prun_seqs {
    uint64_t *v;
    size_t n;
};

/*
 * Reads the joblog at path (GNU parallel's format, whoever wrote it) for
 * --resume: the Seq of every row, or with done_only (--resume-failed) of
 * the rows that exited 0 without a signal. A missing file is an empty set.
 * Errors: PRUN_EINVAL "FILE:LINE: ..." for a line that is no joblog row,
 * PRUN_ESYS when it cannot be read.
 */
int prun__joblog_seqs(const char *path, int done_only, struct prun_seqs *out,
    struct prun_err *err);
int prun__seqs_has(const struct prun_seqs *s, uint64_t seq);
void prun__seqs_free(struct prun_seqs *s);

/* Whether argv word s is an option of ad-hoc mode or a source marker. */
int prun__adhoc_is_option(const char *s);

#endif
