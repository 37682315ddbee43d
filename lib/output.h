/* SPDX-License-Identifier: MIT */
#ifndef PRUN_OUTPUT_H
#define PRUN_OUTPUT_H

/*
 * What the user sees and keeps of the children's output:
 * capture of each child's stdout/stderr (in memory, spilling to an unlinked
 * temp file in $TMPDIR, /var/tmp or /tmp past a threshold so a child
 * printing gigabytes costs no runner memory), grouped printing, --tag line
 * streaming, --results files, the GNU parallel joblog, and the progress line on
 * a terminal.
 */

#include <stdint.h>
#include <sys/types.h>

#include "util.h"

struct prun_tpl;

enum prun_out_mode {
    PRUN_OUT_GROUP, /* print each instance's output whole when it ends */
    PRUN_OUT_TAG,   /* stream lines as they come, prefixed "task[index]\t" */
    PRUN_OUT_NONE,  /* print nothing (--json: the summary is the output) */
};

struct prun_output_opts {
    enum prun_out_mode mode;
    int quiet;               /* print output only for failed instances */
    const char *results_dir; /* DIR/RUN_ID/TASK/INDEX.{out,err}, or NULL */
    const char *joblog;      /* path, or NULL */
    const char *run_id;
    int progress;      /* draw a progress line on stderr */
    int joblog_append; /* --joblog +FILE: keep what the file holds */
    /*
     * Print each instance's output in the order of its index (-k), held
     * until those before it are printed (and at the end, for indices that
     * never ran). Grouped, also with a tag.
     */
    int keep_order;
    /* With PRUN_OUT_TAG: the prefix of each line instead of task[index],
     * expanded per instance by the runner (--tag/--tagstring). */
    const struct prun_tpl *tag_tpl;
};

struct prun_output;

/*
 * Opens the joblog and creates DIR/RUN_ID for --results, so that a bad
 * location is refused before anything starts, and picks the directory
 * output spills to. No output file is opened through a symbolic link, and
 * none is emptied unless it is a regular file of ours with one name.
 * Returns 0, PRUN_EINVAL for a location that cannot be used (the message
 * names the path and why), or PRUN_ESYS.
 */
int prun__output_new(const struct prun_output_opts *o, struct prun_output **out,
    struct prun_err *err);
/*
 * Something worth telling the user (e.g. $TMPDIR is unusable and output
 * spills elsewhere), or "". Owned by o.
 */
const char *prun__output_note(const struct prun_output *o);
/* Removes DIR/RUN_ID again if nothing was put in it. */
void prun__output_free(struct prun_output *o);

/* Captured output of one running instance: its stdout and stderr. */
struct prun_capture;

/*
 * Begins capturing for an attempt of task[index]. Opens the --results files
 * (truncating those of an earlier attempt). Returns NULL with err set.
 */
struct prun_capture *prun__capture_new(struct prun_output *o, const char *task,
    unsigned long long index, struct prun_err *err);

/*
 * Feeds bytes read from the child's stream (1 = stdout, 2 = stderr). All n
 * bytes are always consumed, whatever their size; memory stays bounded
 * (a spill file, the results file, or dropping with a note). Returns 0, or
 * a PRUN_E* when a results file or spill file cannot be written (disk
 * full, no usable directory); the capture keeps going without it.
 */
int prun__capture_feed(struct prun_capture *c, int stream, const char *data,
    size_t n, struct prun_err *err);

/* Replaces the line prefix of tag mode with tag (a tab follows it). */
int prun__capture_set_tag(struct prun_capture *c, const char *tag);

/*
 * The attempt ended for good (final) or will be retried: like
 * prun__capture_finish, except that with keep_order a final attempt's
 * output waits until every lower index has been printed.
 */
int prun__capture_finish_ordered(
    struct prun_capture *c, int print, int final, struct prun_err *err);

/* keep_order: prints every held output now, in index order. */
void prun__output_release(struct prun_output *o);

/* The last lines of stderr (at most ~1 KiB), NUL-terminated. */
const char *prun__capture_err_tail(struct prun_capture *c);
uint64_t prun__capture_bytes(const struct prun_capture *c, int stream);

/*
 * The attempt ended. With print (a final attempt, or quiet mode with a
 * failure), grouped output is written to stdout/stderr now; tag mode
 * flushes a trailing partial line. Frees c.
 */
int prun__capture_finish(
    struct prun_capture *c, int print, struct prun_err *err);

struct prun_item;
/*
 * --results: appends a row to DIR/RUN_ID/TASK/manifest.tsv saying which
 * item index was: INDEX, then each value (a matrix item's values, axis by
 * axis; several with chunk), tab-separated, with tab, newline, CR and
 * backslash written \t \n \r \\. Called once per instance, at its
 * first attempt, after prun__capture_new made TASK. ti is the task's index
 * in the job. Does nothing without --results. Returns 0 or a PRUN_E*.
 */
int prun__output_manifest(struct prun_output *o, size_t ti, const char *task,
    unsigned long long index, const struct prun_item *items, size_t n,
    struct prun_err *err);

/* One joblog row (GNU parallel format). */
struct prun_joblog_row {
    unsigned long long seq;
    int64_t start_wall_ms;
    int64_t runtime_ms;
    int exitval;
    int signal;
    uint64_t receive; /* bytes of stdout */
    const char *command;
};
int prun__output_joblog(struct prun_output *o, const struct prun_joblog_row *r,
    struct prun_err *err);

/* Progress counts for the terminal line. */
struct prun_progress {
    unsigned long long done, failed, running;
    long long total; /* -1 unknown */
    int64_t elapsed_ms;
    long long child_done, child_total; /* what running children report */
};
void prun__output_progress(
    struct prun_output *o, const struct prun_progress *p);
/* The terminal was resized (SIGWINCH): the next redraw asks its width. */
void prun__output_winch(struct prun_output *o);
/* Erases the progress line (before other text goes to the terminal). */
void prun__output_progress_clear(struct prun_output *o);

/* Writes all of buf to fd, retrying on EINTR/short writes. */
int prun__write_all(int fd, const void *buf, size_t n);

#endif
