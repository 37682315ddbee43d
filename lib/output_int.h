/* SPDX-License-Identifier: MIT */
#ifndef PRUN_OUTPUT_INT_H
#define PRUN_OUTPUT_INT_H
/*
 * What the output module's files share: output.c (capture, grouping,
 * tags, order), output_files.c (the joblog, the --results tree and its
 * manifests) and output_progress.c (the progress line).
 */
#include <limits.h>
#include <stdint.h>

#include "output.h"

#define TAIL_BYTES 1024
#define IO_CHUNK   (64 * 1024)

struct prun_output {
    struct prun_output_opts opts;
    int joblog_fd;
    int results_fd;              /* DIR/RUN_ID, or -1 */
    char results_path[PATH_MAX]; /* its name, for messages */
    int stdout_broken; /* EPIPE on stdout: stop printing, keep running */
    int progress_shown;
    int cols; /* the terminal's width; 0: to be asked, -1: none */
    char progress_line[256];
    int *manifest_fd; /* --results: per task index, -1 or its manifest */
    size_t nmanifest;
    char tmpdir[PATH_MAX]; /* where spill files go; "" when none works */
    char spill_why[256];   /* why the last spill attempt failed */
    char note[512];        /* worth telling the user; "" if nothing */
    struct prun_buf line;  /* tag mode: one prefixed line */
    char io[IO_CHUNK];     /* reading spilled output back */
    /* keep_order: the next index to print, and what waits for it. */
    unsigned long long next_index;
    struct prun_capture **held;
    size_t nheld, held_cap;
};

struct stream {
    int fd;              /* where it is printed: 1 or 2 */
    struct prun_buf mem; /* grouped: captured bytes, until spilled */
    int spill_fd;        /* grouped: -1, or the temp file holding all */
    int from_results;    /* grouped: the results file holds all of it */
    uint64_t bytes;
    uint64_t dropped;        /* bytes kept nowhere (no room to spill) */
    int results_fd;          /* -1, or DIR/RUN/TASK/INDEX.{out,err} */
    int results_failed;      /* a write to it failed: it stops there */
    char *results_path;      /* its name, for messages */
    struct prun_buf partial; /* tag: an incomplete last line */
    char last;               /* the last byte printed, for the drop note */
};

struct prun_capture {
    struct prun_output *o;
    unsigned long long index;
    int print;       /* keep_order: held, to be printed (or not) */
    char *tag;       /* "TAG\t" from prun__capture_set_tag, or NULL */
    char prefix[96]; /* "task[index]\t" */
    char name[96];   /* "task[index]", for messages */
    struct stream s[2];
    char tail[TAIL_BYTES]; /* ring of the last stderr bytes */
    size_t tail_len, tail_pos;
    char tail_out[TAIL_BYTES + 1];
};

/* Opens (creates, or with joblog_append keeps) the joblog; header once. */
int prun__out_open_joblog(struct prun_output *o, struct prun_err *err);
/* DIR (made if missing) and DIR/RUN_ID, which must be new. */
int prun__out_results_root(struct prun_output *o, struct prun_err *err);
/* DIR/RUN_ID/TASK/INDEX.{out,err} for capture c. */
int prun__out_open_results(struct prun_capture *c, const char *task,
    unsigned long long index, struct prun_err *err);
/* Closes the manifests (prun__output_free). */
void prun__out_close_manifests(struct prun_output *o);

#endif
