/* SPDX-License-Identifier: MIT */
/*
 * parallelrun: subcommand dispatch, --help and --version. Each subcommand
 * lives in its own file and returns the exit status documented in --help.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static const char usage_text[] =
    "usage: parallelrun run JOBFILE [options]\n"
    "       parallelrun validate JOBFILE [--set VAR=VALUE]...\n"
    "       parallelrun status [RUN_ID|JOB] [--watch] [--json] [--redis URL]\n"
    "       parallelrun runs [--json] [--redis URL]\n"
    "       parallelrun cancel RUN_ID [--redis URL]\n"
    "       parallelrun gc\n"
    "       parallelrun worker --redis URL [--slots N] [--lease DUR]\n"
    "                          [--drain-timeout DUR] [--outage DUR]\n"
    "       parallelrun workers [--redis URL]\n"
    "       parallelrun [OPTIONS] CMD [ARG]... ::: A B... [::: X Y...]\n"
    "       parallelrun [OPTIONS] CMD [ARG]... :::: FILE\n"
    "       parallelrun --help | --version\n"
    "\n"
    "Runs the tasks of a YAML job file as parallel child processes.\n"
    "\n"
    "run options:\n"
    "  -j, --jobs N         children at once (default: the job's 'jobs',\n"
    "                       [run] jobs in the config, else the CPU count)\n"
    "  --set VAR=VALUE      set {vars.VAR} (repeatable); overrides the file\n"
    "  --dry-run            print each instance's command; run nothing\n"
    "  --tag                stream output lines prefixed with task[index]\n"
    "  --results DIR        keep DIR/RUN_ID/TASK/INDEX.{out,err}, and\n"
    "                       TASK/manifest.tsv: INDEX<tab>item values\n"
    "  --joblog FILE        write GNU parallel's joblog format to FILE\n"
    "  -q, --quiet          print nothing unless something failed (cron)\n"
    "  --json               print a JSON summary on stdout instead of the\n"
    "                       children's output (keep it with --results)\n"
    "  --redis URL          redis://[user:pass@]host:port/db, unix:///path,\n"
    "                       or 'off' (default: a private embedded server)\n"
    "  --resume RUN_ID|last run only the instances that did not succeed in\n"
    "                       RUN_ID (last: the job's newest run), matched by\n"
    "                       task and item value\n"
    "  --distributed        queue the instances on Redis (--redis URL) for\n"
    "                       'parallelrun worker's on any host; run none here\n"
    "  --worker-wait DUR    with --distributed: no live worker able to serve\n"
    "                       the run this long fails it, naming why (default\n"
    "                       60s; 0 or inf: wait for ever)\n"
    "\n"
    "Ad-hoc mode (no job file; GNU parallel's habits): CMD and ARGs are\n"
    "exec'd as words, no shell, with {} {.} {/} {//} {/.} {#} {%} {N}\n"
    "substituted ({} appended when there is none). Several sources give\n"
    "their cartesian product; with none, arguments are lines of stdin.\n"
    "  -j, --jobs N|N%      children at once (N% of the CPUs)\n"
    "  -k, --keep-order     print outputs in input order\n"
    "  --tag                prefix output lines with the argument\n"
    "  --tagstring STR      ... with STR (placeholders allowed)\n"
    "  --bar, --eta         show the progress line even off a terminal\n"
    "  --halt WHEN[,WHY=N]  never, soon or now; WHY fail (default, N=1),\n"
    "                       success or done; N a count or N% of the jobs.\n"
    "                       The exit status is then parallel's\n"
    "  --retries N          try each instance up to N times in all\n"
    "  --timeout DUR        per instance (seconds, or 500ms, 2m, ...)\n"
    "  --delay DUR          between starts\n"
    "  --joblog [+]FILE     GNU parallel's joblog (+: append)\n"
    "  --results DIR, --dry-run, --quiet, --json, --redis URL\n"
    "  --resume=RUN_ID|last run only what did not succeed in RUN_ID\n"
    "  --resume, --resume-failed  skip what the --joblog shows done (and,\n"
    "                       with -failed, rerun what failed there)\n"
    "  --segment NAME=FILE  attach FILE as a read-only shared segment\n"
    "  -0, --null           stdin and :::: files are NUL-separated\n"
    "  --shell              run CMD with /bin/sh -c (also when CMD is one\n"
    "                       word holding shell syntax); values are quoted\n"
    "  -q, --quote          accepted for parallel; words are never re-split\n"
    "\n"
    "Inside a task (these use the PARALLELRUN_* environment):\n"
    "  parallelrun barrier NAME [--count N] [--timeout DUR]\n"
    "  parallelrun lock NAME [--timeout DUR] -- CMD [ARG]...\n"
    "  parallelrun counter NAME [--add N]\n"
    "  parallelrun queue push NAME VALUE... | pop NAME [--timeout DUR]\n"
    "  parallelrun progress DONE [TOTAL]\n"
    "  parallelrun next            pool mode: print the next item, exit 1 "
    "when none\n"
    "  parallelrun segment publish NAME FILE [--dtype T --shape A,B]\n"
    "  parallelrun segment path NAME\n"
    "\n"
    "Output is grouped by default: each instance's stdout and stderr are\n"
    "printed whole when it ends. On a terminal a progress line is shown.\n"
    "\n"
    "Exit status of run: 0 every instance succeeded; 1 at least one failed\n"
    "(the summary names them); 2 usage error or invalid job file (nothing\n"
    "was started); 3 a system call or Redis failed; 75 the job's lock is\n"
    "held by another run; 128+N stopped by signal N (130: Ctrl-C or\n"
    "'parallelrun cancel') after stopping every child.\n"
    "\n"
    "Configuration: /etc/parallelrun.ini, then ~/.config/parallelrun/"
    "config.ini\n"
    "(or $PARALLELRUN_CONFIG), then PARALLELRUN_* variables, then the job "
    "file,\n"
    "then the command line.\n";

void cmd_warn(const char *fmt, ...)
{
    va_list ap;

    fputs("parallelrun: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cmd_exit_code(int code)
{
    switch (code) {
    case PRUN_OK:
        return EXIT_OK;
    case PRUN_EINVAL:
        return EXIT_USAGE;
    case PRUN_ELOCKED:
        return EXIT_LOCKED;
    default:
        return EXIT_SYSTEM;
    }
}

int cmd_fail(const struct prun_err *err)
{
    cmd_warn("%s", err->msg);
    return cmd_exit_code(err->code);
}

int cmd_usage(const char *fmt, ...)
{
    va_list ap;

    fputs("parallelrun: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'parallelrun --help' for more information.\n", stderr);
    return EXIT_USAGE;
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
} commands[] = {
    {"run", cmd_run},
    {"validate", cmd_validate},
    {"status", cmd_status},
    {"runs", cmd_runs},
    {"cancel", cmd_cancel},
    {"gc", cmd_gc},
    {"barrier", cmd_barrier},
    {"lock", cmd_lock},
    {"counter", cmd_counter},
    {"queue", cmd_queue},
    {"progress", cmd_progress},
    {"next", cmd_next},
    {"segment", cmd_segment},
    {"worker", cmd_worker},
    {"workers", cmd_workers},
};

int main(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : NULL;

    if (sub == NULL)
        return cmd_usage("missing command (run, validate, status, ...)");
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 ||
        strcmp(sub, "help") == 0) {
        fputs(usage_text, stdout);
        return EXIT_OK;
    }
    if (strcmp(sub, "--version") == 0 || strcmp(sub, "-V") == 0) {
        printf("parallelrun %s\n", PRUN_VERSION);
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(sub, commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    /* Anything else is ad-hoc mode: an option of it, or the command. */
    return cmd_adhoc(argc, argv);
}
