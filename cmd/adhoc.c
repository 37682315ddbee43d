/* SPDX-License-Identifier: MIT */
/*
 * Ad-hoc mode: `parallelrun [OPTIONS] CMD [ARG]... ::: A B ...`, GNU
 * parallel's command line. lib/adhoc.c turns it into a job of one task;
 * the same run composition as `run` (lib/session.c) runs it, so an ad-hoc
 * run is recorded like any other (status, runs, cancel, --resume).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adhoc.h"
#include "cmd.h"
#include "config.h"
#include "jobcheck.h"
#include "runner.h"
#include "session.h"

/* --dry-run: each instance's command line, as parallel --dry-run prints. */
static int adhoc_dry_run(const struct prun_job *job)
{
    const struct prun_task *task = &job->tasks[0];
    struct prun_buf line = {0};
    struct prun_iter *it = NULL;
    const struct prun_item *items;
    struct prun_ctx ctx;
    struct prun_err e;
    int n;

    if (prun__iter_open(job, &task->foreach, &it, &e) < 0)
        return cmd_fail(&e);
    memset(&ctx, 0, sizeof(ctx));
    ctx.task = task->name;
    ctx.run_id = "";
    ctx.count = prun__iter_count(it);
    ctx.attempt = 1;
    while ((n = prun__iter_next(it, &items, &e)) > 0) {
        ctx.items = items;
        ctx.nitems = (size_t)n;
        prun__buf_reset(&line);
        if (prun__task_cmdline(task, &ctx, &line) < 0 ||
            prun__buf_addc(&line, '\n') < 0) {
            n = prun__err_set(&e, PRUN_ENOMEM, "out of memory");
            break;
        }
        fwrite(line.data, 1, line.len, stdout);
        ctx.index++;
    }
    prun__iter_free(it);
    prun__buf_free(&line);
    return n < 0 ? cmd_fail(&e) : EXIT_OK;
}

/*
 * Is the list-form command (a literal word) a program one can run? A word
 * that names none is most likely a mistyped subcommand: better said at
 * once than run with a "cannot run" per argument.
 */
static int command_found(const struct prun_task *t, char *word, size_t n)
{
    const struct prun_tpl *tp = &t->argv[0];
    const char *path = getenv("PATH"), *p, *end;
    char full[PATH_MAX];
    size_t i, len = 0;

    if (t->shell || t->argc == 0)
        return 1;
    for (i = 0; i < tp->nparts; i++) {
        if (tp->parts[i].kind != PRUN_PH_LIT)
            return 1;
        if (len + tp->parts[i].len >= n)
            return 1;
        memcpy(word + len, tp->parts[i].text, tp->parts[i].len);
        len += tp->parts[i].len;
    }
    word[len] = '\0';
    if (len == 0 || strchr(word, '/') != NULL)
        return 1;
    for (p = path ? path : "/usr/bin:/bin"; p != NULL;
         p = end ? end + 1 : NULL) {
        end = strchr(p, ':');
        i = end ? (size_t)(end - p) : strlen(p);
        if (snprintf(full, sizeof(full), "%.*s/%s", (int)i, i ? p : ".", word) <
                (int)sizeof(full) &&
            access(full, X_OK) == 0)
            return 1;
    }
    return 0;
}

static const char *const subcommands[] = {"run", "validate", "status", "runs",
    "cancel", "gc", "barrier", "lock", "counter", "queue", "progress", "next",
    "segment"};
#define NSUBCOMMANDS (sizeof(subcommands) / sizeof(subcommands[0]))

static void adhoc_say(void *ctx, const char *msg)
{
    (void)ctx;
    cmd_warn("%s", msg);
}

/*
 * --resume / --resume-failed against the joblog: the scheduler asks once
 * per instance, in index order, and the joblog's Seq is the index + 1
 * (parallel's {#}, which parallelrun writes too for a single task).
 */
struct joblog_skip {
    struct prun_seqs seqs;
    uint64_t next; /* the index of the next instance asked about */
};

static int joblog_skip(
    void *ctx, size_t task, const struct prun_item *items, size_t n)
{
    struct joblog_skip *js = ctx;

    (void)task;
    (void)items;
    (void)n;
    return prun__seqs_has(&js->seqs, ++js->next);
}

/*
 * The usage errors parsing cannot see: --resume without a joblog, a
 * command word that names nothing, arguments awaited from a terminal.
 * Returns 0, or the exit status of the message printed.
 */
static int adhoc_usage_checks(const struct prun_adhoc *a)
{
    char word[256];
    const char *sugg;

    if (a->resume_joblog && a->joblog == NULL)
        return cmd_usage("%s needs --joblog FILE (the joblog to resume from)",
            a->resume_failed ? "--resume-failed" : "--resume");
    if (!command_found(&a->job->tasks[0], word, sizeof(word))) {
        sugg = prun__closest(word, subcommands, NSUBCOMMANDS);
        if (sugg != NULL)
            return cmd_usage(
                "unknown command '%s' (did you mean '%s'?)", word, sugg);
        return cmd_usage("unknown command '%s': not a subcommand, and no "
                         "program of that name in PATH",
            word);
    }
    /* No source and a terminal on stdin: arguments are not typed in. */
    if (a->from_stdin && isatty(0))
        return cmd_usage("no arguments: give them after ':::' or '::::' FILE, "
                         "or on stdin (not a terminal)");
    return 0;
}

/* The session's options from the command line. */
static void adhoc_session_opts(const struct prun_adhoc *a,
    struct joblog_skip *js, struct prun_session_opts *so)
{
    long ncpu;

    memset(so, 0, sizeof(*so));
    so->redis_url = a->redis;
    so->resume = a->resume;
    so->jobs = a->jobs;
    if (a->jobs_pct > 0) {
        ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        so->jobs = (unsigned)((ncpu > 0 ? ncpu : 1) * a->jobs_pct / 100);
        if (so->jobs == 0)
            so->jobs = 1;
    }
    so->out.mode = a->json  ? PRUN_OUT_NONE
                   : a->tag ? PRUN_OUT_TAG
                            : PRUN_OUT_GROUP;
    so->out.quiet = a->quiet;
    so->out.results_dir = a->results;
    so->out.joblog = a->joblog;
    so->out.joblog_append = a->joblog_append;
    so->out.keep_order = a->keep_order;
    so->out.tag_tpl = a->tag_tpl;
    /* --bar and --eta ask for the progress line even off a terminal. */
    so->out.progress = a->bar || a->eta || (!a->quiet && !a->json && isatty(2));
    so->quiet = a->quiet;
    so->say = adhoc_say;
    if (a->resume_joblog) {
        so->skip = joblog_skip;
        so->skip_ctx = js;
    }
}

int cmd_adhoc(int argc, char **argv)
{
    struct prun_adhoc *a = NULL;
    struct prun_config cfg;
    struct prun_session_opts so;
    struct prun__session *sess = NULL;
    struct prun_run_result res;
    struct prun_err e;
    struct joblog_skip js;
    int rc;

    memset(&js, 0, sizeof(js));
    memset(&res, 0, sizeof(res));
    prun__config_defaults(&cfg);
    if (prun__adhoc_parse(argc, argv, &a, &e) < 0) {
        rc = e.code == PRUN_EINVAL ? cmd_usage("%s", e.msg) : cmd_fail(&e);
        goto out;
    }
    if ((rc = adhoc_usage_checks(a)) != 0)
        goto out;
    if (prun__config_load(&cfg, NULL, &e) < 0) {
        rc = cmd_fail(&e);
        goto out;
    }
    if (a->dry_run) {
        rc = adhoc_dry_run(a->job);
        goto out;
    }
    if (prun__job_check_files(a->job, &e) < 0) {
        rc = cmd_fail(&e);
        goto out;
    }
    if (a->resume_joblog) {
        /* Done rows are skipped; the joblog is appended to, not emptied. */
        if (prun__joblog_seqs(a->joblog, a->resume_failed, &js.seqs, &e) < 0) {
            rc = cmd_fail(&e);
            goto out;
        }
        a->joblog_append = 1;
    }
    adhoc_session_opts(a, &js, &so);
    if (prun__session_open(&cfg, a->job, &so, &sess, &e) < 0) {
        rc = cmd_fail(&e);
        goto out;
    }
    rc = cmd_run_session(a->job, sess, &res, a->quiet, a->json);
    /* With --halt, parallel's exit status (see halt.c) for a run that
     * went as runs go: not for a signal or a system failure. */
    if ((rc == EXIT_OK || rc == EXIT_FAILED) && res.halt_status >= 0)
        rc = res.halt_status;
out:
    prun__session_close(sess);
    prun__run_result_free(&res);
    prun__adhoc_free(a);
    prun__seqs_free(&js.seqs);
    prun__config_free(&cfg);
    return rc;
}
