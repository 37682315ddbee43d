/* SPDX-License-Identifier: MIT */
#ifndef PRUN_CMD_H
#define PRUN_CMD_H

/* Shared by the CLI's subcommands: exit codes and messages. */

#include "util.h"

enum {
    EXIT_OK = 0,
    EXIT_FAILED = 1,  /* at least one task instance failed */
    EXIT_USAGE = 2,   /* usage error or invalid job file; nothing started */
    EXIT_SYSTEM = 3,  /* a service or system call failed */
    EXIT_LOCKED = 75, /* the job's lock is held by another run */
};

/* "parallelrun: message" on stderr. */
void cmd_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints err and returns the exit code its PRUN_E* code maps to. */
int cmd_fail(const struct prun_err *err);
/* The exit code a PRUN_E* code maps to. */
int cmd_exit_code(int code);
/* Prints a usage error with a hint to --help; returns EXIT_USAGE. */
int cmd_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int cmd_run(int argc, char **argv);
/* run.c, shared with ad-hoc mode: the end of a run as the user sees it. */
struct prun_job;
struct prun_run_result;
struct prun_task_result;
/* Instances of a task never started (a failed need, a halt). */
unsigned long long task_skipped(const struct prun_task_result *t);
struct prun__session;
/* run.c: runs an open session, prints its summary, returns the exit status. */
int cmd_run_session(const struct prun_job *job, struct prun__session *sess,
    struct prun_run_result *res, int quiet, int json);
/* The summary on stderr (failed: name every failure). */
void print_summary(const struct prun_job *job, const char *run_id,
    const struct prun_run_result *res, int quiet, int failed);
/* --json: the summary object on stdout. */
void print_json(const struct prun_job *job, const char *run_id,
    const struct prun_run_result *res, int exit_code);
/* adhoc.c: parallelrun [OPTIONS] CMD [ARG]... ::: A B ...; argv[0] is the
 * program. */
int cmd_adhoc(int argc, char **argv);
int cmd_validate(int argc, char **argv);
/* status.c: runs, status, cancel */
int cmd_status(int argc, char **argv);
int cmd_runs(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
/* child.c: primitives for children */
int cmd_barrier(int argc, char **argv);
int cmd_lock(int argc, char **argv);
int cmd_counter(int argc, char **argv);
int cmd_queue(int argc, char **argv);
int cmd_progress(int argc, char **argv);
int cmd_next(int argc, char **argv);
/* segment.c: segment publish/path, gc */
int cmd_segment(int argc, char **argv);
int cmd_gc(int argc, char **argv);
/* worker.c: queue workers */
int cmd_worker(int argc, char **argv);
int cmd_workers(int argc, char **argv);

#endif
