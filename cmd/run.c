/* SPDX-License-Identifier: MIT */
/*
 * parallelrun run / validate: option parsing, the precedence of config,
 * job file and command line, the dry run, and the end-of-run summary.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "config.h"
#include "coord.h"
#include "halt.h"
#include "job.h"
#include "jobcheck.h"
#include "runner.h"
#include "sched.h"
#include "segment.h"
#include "session.h"

struct run_args {
    const char *jobfile;
    unsigned jobs;
    struct prun_set *sets;
    size_t nsets;
    int dry_run, tag, quiet, json;
    const char *results, *joblog;
    const char *redis, *resume;
    int distributed;
    const char *worker_wait;
};

enum {
    OPT_SET = 256,
    OPT_DRY_RUN,
    OPT_TAG,
    OPT_RESULTS,
    OPT_JOBLOG,
    OPT_JSON,
    OPT_REDIS,
    OPT_RESUME,
    OPT_DISTRIBUTED,
    OPT_WORKER_WAIT,
};

static const struct option run_opts[] = {
    {"jobs", required_argument, NULL, 'j'},
    {"set", required_argument, NULL, OPT_SET},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"tag", no_argument, NULL, OPT_TAG},
    {"results", required_argument, NULL, OPT_RESULTS},
    {"joblog", required_argument, NULL, OPT_JOBLOG},
    {"quiet", no_argument, NULL, 'q'},
    {"json", no_argument, NULL, OPT_JSON},
    {"redis", required_argument, NULL, OPT_REDIS},
    {"resume", required_argument, NULL, OPT_RESUME},
    {"distributed", no_argument, NULL, OPT_DISTRIBUTED},
    {"worker-wait", required_argument, NULL, OPT_WORKER_WAIT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int add_set(struct run_args *a, char *arg)
{
    char *eq = strchr(arg, '=');
    struct prun_set *n;

    if (eq == NULL || eq == arg)
        return cmd_usage("--set expects VAR=VALUE, got '%s'", arg);
    n = realloc(a->sets, (a->nsets + 1) * sizeof(*n));
    if (n == NULL)
        return cmd_usage("out of memory");
    a->sets = n;
    *eq = '\0';
    n[a->nsets].name = arg;
    n[a->nsets].value = eq + 1;
    a->nsets++;
    return 0;
}

/* Parses argv (argv[0] is the subcommand). Returns 0 or an exit code. */
static int parse_args(int argc, char **argv, struct run_args *a, int is_run)
{
    struct prun_err e;
    long long v;
    int c;

    memset(a, 0, sizeof(*a));
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(
                argc, argv, is_run ? "+j:qh" : "+h", run_opts, NULL)) != -1 ||
           optind < argc) {
        if (c == -1) {
            /* A positional argument: the job file; options may follow. */
            if (a->jobfile != NULL)
                return cmd_usage("unexpected argument '%s'", argv[optind]);
            a->jobfile = argv[optind++];
            continue;
        }
        if (!is_run && c != OPT_SET && c != 'h' && c != '?')
            return cmd_usage(
                "'%s' is not an option of validate", argv[optind - 1]);
        switch (c) {
        case 'j':
            if (prun__parse_int(optarg, 1, 100000, &v, &e) < 0)
                return cmd_usage("-j: %s", e.msg);
            a->jobs = (unsigned)v;
            break;
        case OPT_SET:
            if (add_set(a, optarg) != 0)
                return EXIT_USAGE;
            break;
        case OPT_DRY_RUN:
            a->dry_run = 1;
            break;
        case OPT_TAG:
            a->tag = 1;
            break;
        case OPT_RESULTS:
            a->results = optarg;
            break;
        case OPT_JOBLOG:
            a->joblog = optarg;
            break;
        case 'q':
            a->quiet = 1;
            break;
        case OPT_JSON:
            a->json = 1;
            break;
        case OPT_REDIS:
            a->redis = optarg;
            break;
        case OPT_RESUME:
            a->resume = optarg;
            break;
        case OPT_DISTRIBUTED:
            a->distributed = 1;
            break;
        case OPT_WORKER_WAIT:
            a->worker_wait = optarg;
            break;
        case 'h':
            printf("usage: parallelrun %s JOBFILE [options]; see "
                   "'parallelrun --help'\n",
                argv[0]);
            return -1;
        default:
            if (optopt != 0 && optopt < 256)
                return cmd_usage("unknown option '-%c'", optopt);
            return cmd_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (a->jobfile == NULL)
        return cmd_usage("%s: missing JOBFILE", argv[0]);
    if (a->worker_wait != NULL && !a->distributed)
        return cmd_usage("--worker-wait needs --distributed");
    return 0;
}

/*
 * Directories from the job file's up to the root: one that everyone may
 * write without the sticky bit lets anyone replace the file. Only root is
 * held to this; everyone else already runs as themselves.
 */
static int check_dirs(const char *path, struct prun_err *err)
{
    char dir[PATH_MAX];
    struct stat st;
    char *slash;

    if (realpath(path, dir) == NULL)
        return 0; /* the loader reports a missing file */
    while ((slash = strrchr(dir, '/')) != NULL) {
        if (slash == dir)
            slash[1] = '\0';
        else
            *slash = '\0';
        if (stat(dir, &st) == 0 && (st.st_mode & S_IWOTH) &&
            !(st.st_mode & S_ISVTX))
            return prun__err_set(err, PRUN_EINVAL,
                "%s: refusing to run as root a job file in %s, which every "
                "user can write (mode %04o, not sticky)",
                path, dir, (unsigned)(st.st_mode & 07777));
        if (slash == dir)
            break;
    }
    return 0;
}

/*
 * Loads the job file, refusing one that others may write: whoever can edit
 * it chooses what this user runs. Root also refuses a file owned by anyone
 * but root, or reachable through a directory anyone can write.
 */
static int load_job(
    const struct run_args *a, struct prun_job **job, struct prun_err *err)
{
    uid_t euid = geteuid();
    struct stat st;
    int rc;

    if (stat(a->jobfile, &st) == 0 && !S_ISCHR(st.st_mode) &&
        !S_ISFIFO(st.st_mode)) {
        if (st.st_mode & S_IWOTH)
            return prun__err_set(err, PRUN_EINVAL,
                "%s: refusing a job file that other users can write (mode "
                "%04o); run: chmod o-w %s",
                a->jobfile, (unsigned)(st.st_mode & 07777), a->jobfile);
        if (euid == 0 && st.st_uid != 0)
            return prun__err_set(err, PRUN_EINVAL,
                "%s: refusing to run as root a job file owned by uid %u; "
                "run: chown root %s",
                a->jobfile, (unsigned)st.st_uid, a->jobfile);
        if (euid == 0 && (rc = check_dirs(a->jobfile, err)) < 0)
            return rc;
    }
    return prun__jobfile_load(a->jobfile, a->sets, a->nsets, job, err);
}

/* Says which tasks' sources are only resolved once their needs succeed. */
static void print_deferred(const struct prun_job *job, FILE *fp, int note)
{
    size_t t;

    for (t = 0; t < job->ntasks; t++) {
        const struct prun_task *task = &job->tasks[t];

        if (!prun__task_source_deferred(task))
            continue;
        fprintf(fp, "%stask '%s': %s '%s' is resolved when its needs succeed\n",
            note ? "parallelrun: note: " : "  ", task->name,
            task->foreach.kind == PRUN_SRC_GLOB ? "glob" : "lines",
            task->foreach.path);
    }
}

int cmd_validate(int argc, char **argv)
{
    struct run_args a;
    struct prun_job *job = NULL;
    struct prun_config cfg;
    struct prun_err e;
    int rc;

    /* Everything run checks before starting, the config included. */
    prun__config_defaults(&cfg);
    rc = parse_args(argc, argv, &a, 0);
    if (rc != 0)
        goto out;
    /*
     * The file system checks are run's own, but no item source is opened:
     * validate never waits on a FIFO or stdin.
     */
    if (prun__config_load(&cfg, NULL, &e) < 0 || load_job(&a, &job, &e) < 0 ||
        prun__job_check_files(job, &e) < 0 ||
        prun__job_check_sources(job, &e) < 0) {
        rc = cmd_fail(&e);
        goto out;
    }
    printf("%s: valid (%zu task%s)\n", a.jobfile, job->ntasks,
        job->ntasks == 1 ? "" : "s");
    print_deferred(job, stdout, 0);
out:
    prun__job_free(job);
    prun__config_free(&cfg);
    free(a.sets);
    return rc < 0 ? EXIT_OK : rc;
}

/* --dry-run: every instance's command, in file order, nothing started. */
static int dry_run(const struct prun_job *job, const char *run_id)
{
    struct prun_buf line = {0};
    struct prun_err e;
    size_t t;
    int rc = EXIT_OK;

    for (t = 0; t < job->ntasks; t++) {
        const struct prun_task *task = &job->tasks[t];
        struct prun_iter *it = NULL;
        const struct prun_item *items;
        struct prun_ctx ctx;
        int n;

        if (prun__task_source_deferred(task))
            continue;
        if (prun__iter_open_flags(
                job, &task->foreach, PRUN_ITER_STRICT, &it, &e) < 0)
            return cmd_fail(&e);
        memset(&ctx, 0, sizeof(ctx));
        ctx.task = task->name;
        ctx.run_id = run_id;
        ctx.count = prun__iter_count(it);
        ctx.attempt = 1;
        while ((n = prun__iter_next(it, &items, &e)) > 0) {
            ctx.items = items;
            ctx.nitems = (size_t)n;
            prun__buf_reset(&line);
            if (prun__buf_printf(&line, "%s[%llu]\t", task->name, ctx.index) <
                    0 ||
                prun__task_cmdline(task, &ctx, &line) < 0 ||
                prun__buf_addc(&line, '\n') < 0) {
                n = prun__err_set(&e, PRUN_ENOMEM, "out of memory");
                break;
            }
            fwrite(line.data, 1, line.len, stdout);
            ctx.index++;
        }
        prun__iter_free(it);
        if (n < 0) {
            rc = cmd_fail(&e);
            break;
        }
    }
    prun__buf_free(&line);
    fflush(stdout);
    print_deferred(job, stderr, 1);
    return rc;
}

unsigned long long task_skipped(const struct prun_task_result *t)
{
    unsigned long long seen = t->succeeded + t->failed + t->cancelled;

    return t->count > 0 && (unsigned long long)t->count > seen
               ? (unsigned long long)t->count - seen
               : 0;
}

static void print_tail(const char *tail)
{
    const char *p = tail, *nl;

    while (*p) {
        nl = strchr(p, '\n');
        fprintf(stderr, "      %.*s\n", nl ? (int)(nl - p) : (int)strlen(p), p);
        if (nl == NULL)
            break;
        p = nl + 1;
    }
}

void print_summary(const struct prun_job *job, const char *run_id,
    const struct prun_run_result *res, int quiet, int failed)
{
    const struct prun__sched_stats *st = &res->stats;
    unsigned long long bad = st->failed + st->cancelled;
    char d[32], hb[48];
    size_t i;

    prun__fmt_duration(res->elapsed_ms, d, sizeof(d));
    if (res->signal != 0) {
        cmd_warn("stopped by SIG%s after %s: %llu succeeded, %llu stopped, "
                 "%llu not started (run %s)",
            sigabbrev_np(res->signal), d, st->succeeded, bad, st->skipped,
            run_id);
        return;
    }
    if (!failed) {
        if (!quiet && isatty(2))
            cmd_warn("%llu succeeded in %s (run %s)", st->succeeded, d, run_id);
        return;
    }
    if (bad > 0)
        cmd_warn("%llu of %llu instance%s failed (run %s):", bad,
            st->succeeded + bad, st->succeeded + bad == 1 ? "" : "s", run_id);
    for (i = 0; i < res->nfail; i++) {
        const struct prun_failure *f = &res->fail[i];

        fprintf(stderr, "  %s[%llu]", job->tasks[f->task].name, f->index);
        if (f->item[0] != '\0')
            fprintf(stderr, " '%s'", f->item);
        if (f->attempt > 1)
            fprintf(stderr, " (attempt %u)", f->attempt);
        fprintf(stderr, ": %s\n", f->reason);
        print_tail(f->tail);
    }
    if (res->fail_more > 0)
        fprintf(stderr, "  ... and %llu more\n", res->fail_more);
    for (i = 0; i < res->ntasks; i++)
        if (res->tasks[i].error[0] != '\0')
            cmd_warn("%s: %s", job->tasks[i].name, res->tasks[i].error);
    for (i = 0; i < res->ntasks; i++) {
        unsigned long long sk = task_skipped(&res->tasks[i]);
        if (sk > 0 && !res->halted)
            cmd_warn("%s: %llu instance%s not started: a task it needs "
                     "failed",
                job->tasks[i].name, sk, sk == 1 ? "" : "s");
        else if (res->tasks[i].count < 0 && res->tasks[i].needs_failed &&
                 !res->halted)
            cmd_warn(
                "%s: not started: a task it needs failed", job->tasks[i].name);
    }
    if (res->halted)
        cmd_warn("halted after %llu failure%s, %llu success%s (halt: %s); "
                 "%llu instance%s not started",
            st->failed, st->failed == 1 ? "" : "s", st->succeeded,
            st->succeeded == 1 ? "" : "es",
            prun__halt_format(job, hb, sizeof(hb)), st->skipped,
            st->skipped == 1 ? "" : "s");
}

void print_json(const struct prun_job *job, const char *run_id,
    const struct prun_run_result *res, int exit_code)
{
    const struct prun__sched_stats *st = &res->stats;
    struct prun_buf b = {0};
    size_t i;

    prun__buf_adds(&b, "{\"run_id\":");
    prun__buf_add_json(&b, run_id, strlen(run_id));
    prun__buf_adds(&b, ",\"name\":");
    prun__buf_add_json(&b, job->name, strlen(job->name));
    prun__buf_printf(&b,
        ",\"status\":\"%s\",\"exit_code\":%d,\"started_ms\":%lld,"
        "\"elapsed_ms\":%lld,\"instances\":{\"total\":%lld,\"succeeded\":%llu,"
        "\"failed\":%llu,\"cancelled\":%llu,\"skipped\":%llu,"
        "\"retried\":%llu},\"tasks\":[",
        res->signal ? "stopped"
        : exit_code ? "failed"
                    : "succeeded",
        exit_code, (long long)res->start_wall_ms, (long long)res->elapsed_ms,
        st->total, st->succeeded, st->failed, st->cancelled, st->skipped,
        st->retried);
    for (i = 0; i < res->ntasks; i++) {
        const struct prun_task_result *t = &res->tasks[i];

        prun__buf_adds(&b, i ? ",{\"name\":" : "{\"name\":");
        prun__buf_add_json(&b, job->tasks[i].name, strlen(job->tasks[i].name));
        prun__buf_printf(&b,
            ",\"count\":%lld,\"succeeded\":%llu,\"failed\":%llu,"
            "\"cancelled\":%llu,\"skipped\":%llu",
            t->count, t->succeeded, t->failed, t->cancelled, task_skipped(t));
        if (t->error[0] != '\0') {
            prun__buf_adds(&b, ",\"error\":");
            prun__buf_add_json(&b, t->error, strlen(t->error));
        }
        prun__buf_addc(&b, '}');
    }
    prun__buf_adds(&b, "],\"failures\":[");
    for (i = 0; i < res->nfail; i++) {
        const struct prun_failure *f = &res->fail[i];
        static const char *const kinds[] = {
            "exit", "signal", "timeout", "exec", "cancelled"};

        prun__buf_adds(&b, i ? ",{\"task\":" : "{\"task\":");
        prun__buf_add_json(
            &b, job->tasks[f->task].name, strlen(job->tasks[f->task].name));
        prun__buf_printf(&b, ",\"index\":%llu,\"attempt\":%u,\"kind\":\"%s\"",
            f->index, f->attempt, kinds[f->kind]);
        if (f->kind == PRUN_FAIL_EXIT)
            prun__buf_printf(&b, ",\"exit\":%d", f->status);
        if (f->kind == PRUN_FAIL_SIGNAL)
            prun__buf_printf(&b, ",\"signal\":%d", f->status);
        prun__buf_adds(&b, ",\"item\":");
        prun__buf_add_json(&b, f->item, strlen(f->item));
        prun__buf_adds(&b, ",\"reason\":");
        prun__buf_add_json(&b, f->reason, strlen(f->reason));
        prun__buf_adds(&b, ",\"stderr_tail\":");
        prun__buf_add_json(&b, f->tail, strlen(f->tail));
        prun__buf_addc(&b, '}');
    }
    prun__buf_printf(&b, "],\"failures_not_listed\":%llu", res->fail_more);
    prun__buf_printf(
        &b, ",\"redis_errors\":%llu,\"redis_error\":", res->redis_errors);
    prun__buf_add_json(&b, res->redis_error, strlen(res->redis_error));
    prun__buf_adds(&b, "}\n");
    if (b.data)
        fwrite(b.data, 1, b.len, stdout);
    fflush(stdout);
    prun__buf_free(&b);
}

/* What the session has to say while it sets up and runs. */
static void run_say(void *ctx, const char *msg)
{
    (void)ctx;
    cmd_warn("%s", msg);
}

/*
 * Runs an open session to the end and reports it, as every front end
 * does: the summary (or --json), the final record, and the exit status
 * (0, 1 a failure, 3 state or system trouble, 128+N a signal, or the
 * error's). res is filled; the caller frees it and closes the session.
 */
int cmd_run_session(const struct prun_job *job, struct prun__session *sess,
    struct prun_run_result *res, int quiet, int json)
{
    const char *run_id = prun__session_run_id(sess);
    struct prun_err e;
    int rc, failed, halt_ok;
    size_t i;

    rc = prun__session_run(sess, res, &e);
    /*
     * A halt on successes (or on instances done) that triggered is what
     * was asked for: what it cancelled or never started fails nothing.
     */
    halt_ok = res->halted && job->halt_on != PRUN_HALT_ON_FAIL;
    failed = res->stats.failed > 0 ||
             (!halt_ok && (res->stats.cancelled > 0 || res->halted));
    /* Skipped instances, source errors and failed needs fail a run too. */
    for (i = 0; i < res->ntasks && !failed; i++)
        failed = (!halt_ok && task_skipped(&res->tasks[i]) > 0) ||
                 res->tasks[i].error[0] != '\0' || res->tasks[i].needs_failed;
    if (rc < 0) {
        print_summary(job, run_id, res, 0, 1);
        prun__session_finish(sess, res, cmd_exit_code(rc), res->redis_error,
            sizeof(res->redis_error));
        return cmd_fail(&e);
    }
    rc = res->signal ? 128 + res->signal : failed ? EXIT_FAILED : EXIT_OK;
    if (res->note[0] != '\0' && !quiet)
        cmd_warn("note: %s", res->note);
    if (res->warning[0] != '\0') {
        cmd_warn("%s", res->warning);
        if (rc == EXIT_OK)
            rc = EXIT_SYSTEM;
    }
    /*
     * The state goes first, so the summary can count what Redis refused:
     * a run whose state could not be recorded exits 3.
     */
    res->redis_errors = prun__session_finish(
        sess, res, rc, res->redis_error, sizeof(res->redis_error));
    if (res->redis_errors > 0 && (rc == EXIT_OK || rc == EXIT_FAILED))
        rc = EXIT_SYSTEM;
    if (json)
        print_json(job, run_id, res, rc);
    if (!json || rc != EXIT_OK)
        print_summary(job, run_id, res, quiet, rc != EXIT_OK);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    struct run_args a;
    struct prun_config cfg;
    struct prun_job *job = NULL;
    struct prun_session_opts so;
    struct prun__session *sess = NULL;
    struct prun_run_result res;
    struct prun_err e;
    int rc;

    memset(&res, 0, sizeof(res));
    prun__config_defaults(&cfg);
    rc = parse_args(argc, argv, &a, 1);
    if (rc != 0) {
        rc = rc < 0 ? EXIT_OK : rc;
        goto out;
    }
    /* Sources checkable now are checked before anything starts. */
    if (prun__config_load(&cfg, NULL, &e) < 0 || load_job(&a, &job, &e) < 0 ||
        prun__job_check_sources(job, &e) < 0) {
        rc = cmd_fail(&e);
        goto out;
    }
    if (a.dry_run) {
        char dry_id[64];

        prun__run_id_new(dry_id, sizeof(dry_id));
        rc = dry_run(job, dry_id);
        goto out;
    }
    if (prun__job_check_files(job, &e) < 0) {
        rc = cmd_fail(&e);
        goto out;
    }
    memset(&so, 0, sizeof(so));
    so.redis_url = a.redis;
    so.resume = a.resume;
    so.jobs = a.jobs;
    so.out.mode = a.json  ? PRUN_OUT_NONE
                  : a.tag ? PRUN_OUT_TAG
                          : PRUN_OUT_GROUP;
    so.out.quiet = a.quiet;
    so.out.results_dir = a.results;
    so.out.joblog = a.joblog;
    so.out.progress = !a.quiet && !a.json && isatty(2);
    so.quiet = a.quiet;
    so.say = run_say;
    so.distributed = a.distributed;
    so.worker_wait = a.worker_wait;
    so.sets = a.sets;
    so.nsets = a.nsets;
    if (prun__session_open(&cfg, job, &so, &sess, &e) < 0) {
        rc = cmd_fail(&e);
        goto out;
    }
    rc = cmd_run_session(job, sess, &res, a.quiet, a.json);
out:
    /* Every path ends here: the run's segments never outlive it. */
    prun__session_close(sess);
    prun__run_result_free(&res);
    prun__job_free(job);
    prun__config_free(&cfg);
    free(a.sets);
    return rc;
}
