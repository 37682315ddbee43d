/* SPDX-License-Identifier: MIT */
/*
 * outcome: what an ended attempt means. Its wait status (or -1: it never
 * ran) is classified for the scheduler: success, a failure (exit status,
 * signal), a timeout, a cancel by the runner, or a start that failed; and
 * an instance that failed for good is kept in the run's result with its
 * reason and the tail of its stderr.
 *
 * This module decides nothing about retries (sched.c does) and records or
 * prints nothing: the run loop (runner.c) does, with what it says.
 */
#include "outcome.h"

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

const struct prun_failure *prun__outcome_failure(struct prun_run_result *res,
    const struct prun__attempt *a, enum prun_fail_kind kind, int status)
{
    const struct prun_inst *inst = a->inst;
    struct prun_failure *f;
    char sb[32], db[32];
    size_t i;

    if (res->nfail >= PRUN_MAX_FAILURES) {
        res->fail_more++;
        return NULL;
    }
    f = &res->fail[res->nfail++];
    memset(f, 0, sizeof(*f));
    f->task = inst->task;
    f->index = inst->index;
    f->attempt = inst->attempt;
    f->kind = kind;
    f->status = status;
    for (i = 0; i < inst->nitems; i++) {
        size_t used = strlen(f->item);
        snprintf(f->item + used, sizeof(f->item) - used, "%s%s", i ? " " : "",
            inst->items[i].text);
    }
    switch (kind) {
    case PRUN_FAIL_EXIT:
        snprintf(f->reason, sizeof(f->reason), "exit %d", status);
        break;
    case PRUN_FAIL_SIGNAL:
        snprintf(f->reason, sizeof(f->reason), "killed by %s",
            prun__signame(status, sb, sizeof(sb)));
        break;
    case PRUN_FAIL_TIMEOUT:
        snprintf(f->reason, sizeof(f->reason), "timed out after %s",
            prun__fmt_duration(a->task->timeout_ms, db, sizeof(db)));
        break;
    case PRUN_FAIL_EXEC:
        snprintf(f->reason, sizeof(f->reason), "%s", a->exec_err);
        break;
    case PRUN_FAIL_CANCEL:
        snprintf(f->reason, sizeof(f->reason), "cancelled");
        break;
    }
    if (a->cap)
        snprintf(
            f->tail, sizeof(f->tail), "%s", prun__capture_err_tail(a->cap));
    return f;
}

enum prun_outcome prun__outcome_classify(const struct prun__attempt *a,
    int status, enum prun_fail_kind *kind, int *code, int *sig)
{
    enum prun_outcome outcome;

    *kind = PRUN_FAIL_EXIT;
    *code = *sig = 0;
    if (status == -1 || a->exec_err[0] != '\0') {
        *kind = PRUN_FAIL_EXEC;
        *code = 127;
        return PRUN_OUT_FAIL_FINAL;
    }
    if (WIFEXITED(status)) {
        *code = WEXITSTATUS(status);
        outcome = *code == 0 ? PRUN_OUT_OK : PRUN_OUT_FAIL;
    } else {
        *sig = WTERMSIG(status);
        *kind = PRUN_FAIL_SIGNAL;
        outcome = PRUN_OUT_FAIL;
    }
    if (a->why == PRUN__WHY_TIMEOUT && outcome != PRUN_OUT_OK) {
        *kind = PRUN_FAIL_TIMEOUT;
        outcome = PRUN_OUT_FAIL;
    } else if (a->why == PRUN__WHY_CANCEL && outcome != PRUN_OUT_OK) {
        *kind = PRUN_FAIL_CANCEL;
        outcome = PRUN_OUT_CANCELLED;
    }
    return outcome;
}
