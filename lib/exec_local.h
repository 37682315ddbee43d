/* SPDX-License-Identifier: MIT */
#ifndef PRUN_EXEC_LOCAL_H
#define PRUN_EXEC_LOCAL_H
/*
 * The local executor: runs attempts as child processes of this host,
 * one process group each, with their output on pipes the loop watches.
 */
#include "executor.h"
#include "segment.h"
#include "util.h"

struct prun__local_opts {
    const struct prun_job *job;
    unsigned slots;        /* children at once, >= 1 */
    int64_t kill_grace_ms; /* for tasks that set none */
    const char *run_id;
    const char *const *extra_env; /* added to every child's environment */
    size_t nextra_env;
    struct prun_segset *segs; /* shared segments, or NULL */
    /* Children's directory (a task's relative cwd is under it); NULL:
     * the process's own. */
    const char *cwd;
    /*
     * Other executors share this process's children (a queue worker's
     * runs): shutdown stops only this executor's process groups, never
     * every descendant, and the process reaps with prun__local_reap over
     * all of them instead of each executor's on_signal.
     */
    int shared;
};

/*
 * Creates the executor: starts the guardian, raises the open-file limit
 * for the slots (or takes fewer slots, and says so in note, which may be
 * NULL). Returns 0 or a negative PRUN_E* with err set.
 */
int prun__local_new(const struct prun__local_opts *o,
    const struct prun__exec_hooks *hooks, struct prun__executor **out,
    char *note, size_t note_len, struct prun_err *err);

/*
 * Reaps every child of the process that has ended and hands each to the
 * executor among xs (n local executors) that started it: its attempt ends
 * there with its wait status (a guardian that died is restarted by its
 * executor). A child none of them owns (an orphaned grandchild, a stopped
 * executor's leftover) is reaped and dropped. Call on SIGCHLD.
 */
void prun__local_reap(struct prun__executor *const *xs, size_t n);

#endif
