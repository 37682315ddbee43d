/* SPDX-License-Identifier: MIT */
/*
 * The subcommands a child runs (README "Synchronization for children"):
 * barrier, lock, counter, queue, progress and next, thin wrappers around the C
 * API of include/parallelrun.h so a program in any language can use them.
 *
 * Exit statuses: 0 done; 1 it did not happen (the barrier timed out, the
 * queue stayed empty, no pool item is left); 2 usage error; 3 Redis could
 * not be reached or a system call failed; 75 lock: the lock stayed held
 * for --timeout. `lock -- CMD` exits with CMD's status (128+N if a signal
 * killed it).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd.h"
#include "coord_sync.h"

static const char barrier_usage[] =
    "usage: parallelrun barrier NAME [--count N] [--timeout DUR]\n"
    "Waits until N instances (default: PARALLELRUN_COUNT, this task's\n"
    "instance count) have reached barrier NAME. Exit 1 on timeout.\n";
static const char lock_usage[] =
    "usage: parallelrun lock NAME [--timeout DUR] -- CMD [ARG]...\n"
    "Runs CMD holding the run-wide lock NAME, with its fencing token in\n"
    "PARALLELRUN_LOCK_TOKEN. Exits with CMD's status; 75 when the lock\n"
    "stayed held for DUR.\n";
static const char counter_usage[] =
    "usage: parallelrun counter NAME [--add N]\n"
    "Adds N (default 0) to the run-wide counter NAME and prints its value.\n";
static const char queue_usage[] =
    "usage: parallelrun queue push NAME VALUE...\n"
    "       parallelrun queue pop NAME [--timeout DUR]\n"
    "pop prints the oldest value; without --timeout it does not wait.\n"
    "Exit 1 when nothing came.\n";
static const char progress_usage[] =
    "usage: parallelrun progress DONE [TOTAL]\n"
    "Reports this instance's progress, shown by 'parallelrun status'.\n";
static const char next_usage[] =
    "usage: parallelrun next [--fail]\n"
    "Pool mode: prints the next item and marks the previous one done\n"
    "(with --fail: failed; it is retried if the task has retries left).\n"
    "Exit 1 when no item is left.\n";

/*
 * Prints a library error. Messages that already name the primitive
 * ("lock 'x' is held ...") stand alone; others get the subcommand in
 * front so the user knows which call failed.
 */
static int fail(const char *sub, const struct prun_err *e)
{
    size_t l = strlen(sub);

    if (strncmp(e->msg, sub, l) == 0 && e->msg[l] == ' ')
        cmd_warn("%s", e->msg);
    else
        cmd_warn("%s: %s", sub, e->msg);
    return cmd_exit_code(e->code);
}

static int is_help(const char *a)
{
    return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0;
}

/*
 * Matches "--opt VALUE" and "--opt=VALUE" at argv[*i]; advances *i past
 * the value. Returns 1 on a match, 0 otherwise, -1 when the value is
 * missing (reported).
 */
static int opt_value(const char *sub, const char *opt, int argc, char **argv,
    int *i, const char **val)
{
    size_t l = strlen(opt);
    const char *a = argv[*i];

    if (strncmp(a, opt, l) != 0)
        return 0;
    if (a[l] == '=') {
        *val = a + l + 1;
        return 1;
    }
    if (a[l] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        cmd_usage("%s: %s needs a value", sub, opt);
        return -1;
    }
    *val = argv[++*i];
    return 1;
}

static int parse_timeout(const char *sub, const char *s, int64_t *ms)
{
    struct prun_err e;

    if (prun__parse_duration(s, ms, &e) < 0) {
        cmd_usage("%s: --timeout: %s", sub, e.msg);
        return -1;
    }
    return 0;
}

/* ---- barrier ------------------------------------------------------------
 */

int cmd_barrier(int argc, char **argv)
{
    const char *name = NULL, *v;
    int64_t timeout = -1;
    long long count = 0;
    struct prun_err e;
    int i, m;

    for (i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(barrier_usage, stdout);
            return EXIT_OK;
        }
        if ((m = opt_value("barrier", "--timeout", argc, argv, &i, &v)) != 0) {
            if (m < 0 || parse_timeout("barrier", v, &timeout) < 0)
                return EXIT_USAGE;
        } else if ((m = opt_value("barrier", "--count", argc, argv, &i, &v)) !=
                   0) {
            if (m < 0)
                return EXIT_USAGE;
            if (prun__parse_int(v, 1, 1000000000, &count, &e) < 0)
                return cmd_usage("barrier: --count: %s", e.msg);
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return cmd_usage("barrier: unknown option '%s'", argv[i]);
        } else if (name == NULL) {
            name = argv[i];
        } else {
            return cmd_usage("barrier: unexpected argument '%s'", argv[i]);
        }
    }
    if (name == NULL)
        return cmd_usage("barrier: missing NAME");
    if (prun_barrier_wait(name, (long)count, timeout, &e) < 0) {
        fail("barrier", &e);
        return e.code == PRUN_ETIMEDOUT ? EXIT_FAILED : cmd_exit_code(e.code);
    }
    return EXIT_OK;
}

/* ---- lock ---------------------------------------------------------------
 */

/* The exit status a shell would report for a wait status. */
static int wait_status_code(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return EXIT_SYSTEM;
}

/*
 * One renewal of the lock held around CMD. A failed renewal is not fatal
 * yet: the lease has two more thirds to run. A lost lock is: say so once;
 * CMD keeps running, as killing it midway could do more harm.
 */
static void renew_lock(struct prun_lock *l, int *lost, int *warned)
{
    struct prun_err e;

    if (!*lost && prun__lock_renew(l, &e) < 0) {
        if (e.code == PRUN_ELOCKED) {
            *lost = 1;
            fail("lock", &e);
        } else if (!(*warned)++) {
            fail("lock", &e);
        }
    } else if (!*lost) {
        *warned = 0;
    }
}

/*
 * Starts CMD with the lock's fencing token in PARALLELRUN_LOCK_TOKEN and
 * the signal mask old. Returns its pid, or -1 (said).
 */
static pid_t start_cmd(char **cmd, uint64_t token, const sigset_t *old)
{
    char tok[32];
    pid_t pid;

    snprintf(tok, sizeof(tok), "%llu", (unsigned long long)token);
    pid = fork();
    if (pid < 0) {
        cmd_warn("lock: cannot fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, old, NULL);
        setenv("PARALLELRUN_LOCK_TOKEN", tok, 1);
        execvp(cmd[0], cmd);
        cmd_warn("lock: cannot run '%s': %s", cmd[0], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    return pid;
}

/*
 * Runs cmd while holding l: renews the lease every lease/3 from this
 * process, so CMD itself is never held up by renewal, and forwards the
 * stop signals. Returns CMD's exit status, or -1 when it could not start
 * (reported); *lost says whether the lock was lost while CMD ran.
 */
static int run_locked(
    struct prun_lock *l, uint64_t token, char **cmd, int *lost)
{
    int64_t lease = prun__lock_lease_ms(l), next_renew;
    struct signalfd_siginfo si;
    sigset_t set, old;
    struct pollfd pfd;
    int sfd = -1, st = 0, warned = 0, n = 0;
    pid_t pid;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, &old);
    sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0) {
        cmd_warn("lock: signalfd: %s", strerror(errno));
        sigprocmask(SIG_SETMASK, &old, NULL);
        return -1;
    }
    if ((pid = start_cmd(cmd, token, &old)) < 0) {
        close(sfd);
        sigprocmask(SIG_SETMASK, &old, NULL);
        return -1;
    }
    pfd.fd = sfd;
    pfd.events = POLLIN;
    next_renew = prun__now_ms() + lease / 3;
    for (;;) {
        int64_t wait = next_renew - prun__now_ms();

        if (wait <= 0) {
            renew_lock(l, lost, &warned);
            next_renew = prun__now_ms() + lease / 3;
            continue;
        }
        n = poll(&pfd, 1, (int)wait);
        if (n < 0 && errno != EINTR)
            break;
        if (n <= 0)
            continue;
        if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
            continue;
        if (si.ssi_signo == SIGCHLD) {
            if (waitpid(pid, &st, WNOHANG) == pid)
                break;
            continue;
        }
        /*
         * A signal from the terminal (Ctrl-C) already went to CMD with the
         * whole foreground process group; passing it on again would make
         * it see a second Ctrl-C.
         */
        if (si.ssi_code != SI_KERNEL)
            kill(pid, (int)si.ssi_signo);
    }
    if (n < 0) {
        cmd_warn("lock: poll: %s", strerror(errno));
        kill(pid, SIGTERM);
        waitpid(pid, &st, 0);
    }
    close(sfd);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return wait_status_code(st);
}

int cmd_lock(int argc, char **argv)
{
    const char *name = NULL, *v;
    char **cmd = NULL;
    int64_t timeout = -1;
    struct prun_lock *l = NULL;
    struct prun_err e;
    uint64_t token = 0;
    int i, m, status, lost = 0;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            cmd = argv + i + 1;
            break;
        }
        if (is_help(argv[i])) {
            fputs(lock_usage, stdout);
            return EXIT_OK;
        }
        if ((m = opt_value("lock", "--timeout", argc, argv, &i, &v)) != 0) {
            if (m < 0 || parse_timeout("lock", v, &timeout) < 0)
                return EXIT_USAGE;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return cmd_usage("lock: unknown option '%s'", argv[i]);
        } else if (name == NULL) {
            name = argv[i];
        } else {
            return cmd_usage(
                "lock: unexpected argument '%s' (put the command after '--')",
                argv[i]);
        }
    }
    if (name == NULL)
        return cmd_usage("lock: missing NAME");
    if (cmd == NULL || cmd[0] == NULL)
        return cmd_usage("lock: missing '-- CMD [ARG]...'");
    if (prun__lock_take(name, timeout, PRUN_LOCK_LEASE_MS, 0, &l, &token, &e) <
        0) {
        fail("lock", &e);
        return e.code == PRUN_ETIMEDOUT ? EXIT_LOCKED : cmd_exit_code(e.code);
    }
    status = run_locked(l, token, cmd, &lost);
    if (prun_lock_release(l, &e) < 0) {
        /* Another error needs no action: the lease frees the lock soon. */
        if (e.code != PRUN_ELOCKED || !lost)
            fail("lock", &e);
        if (e.code == PRUN_ELOCKED)
            lost = 1;
    }
    if (status == -1)
        return EXIT_SYSTEM;
    /* The lock was lost while CMD ran: a success would be a lie. */
    if (lost && status == 0)
        return EXIT_SYSTEM;
    return status;
}

/* ---- counter ------------------------------------------------------------
 */

int cmd_counter(int argc, char **argv)
{
    const char *name = NULL, *v;
    long long add = 0, value;
    struct prun_err e;
    int i, m;

    for (i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(counter_usage, stdout);
            return EXIT_OK;
        }
        if ((m = opt_value("counter", "--add", argc, argv, &i, &v)) != 0) {
            if (m < 0)
                return EXIT_USAGE;
            if (prun__parse_int(v, INT64_MIN, INT64_MAX, &add, &e) < 0)
                return cmd_usage("counter: --add: %s", e.msg);
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return cmd_usage("counter: unknown option '%s'", argv[i]);
        } else if (name == NULL) {
            name = argv[i];
        } else {
            return cmd_usage("counter: unexpected argument '%s'", argv[i]);
        }
    }
    if (name == NULL)
        return cmd_usage("counter: missing NAME");
    if (prun_counter_add(name, add, &value, &e) < 0)
        return fail("counter", &e);
    printf("%lld\n", value);
    return EXIT_OK;
}

/* ---- queue --------------------------------------------------------------
 */

int cmd_queue(int argc, char **argv)
{
    const char *verb = argc > 1 ? argv[1] : NULL, *name = NULL, *v;
    int64_t timeout = 0;
    struct prun_err e;
    char *value = NULL;
    int i, m, rc;

    if (verb != NULL && is_help(verb)) {
        fputs(queue_usage, stdout);
        return EXIT_OK;
    }
    if (verb != NULL && strcmp(verb, "push") == 0) {
        if (argc < 3)
            return cmd_usage("queue push: missing NAME");
        if (argc < 4)
            return cmd_usage("queue push: missing VALUE");
        /* Values are taken literally, even ones starting with '-'. */
        if (prun_queue_push(argv[2], (const char *const *)argv + 3,
                (size_t)(argc - 3), &e) < 0)
            return fail("queue", &e);
        return EXIT_OK;
    }
    if (verb == NULL)
        return cmd_usage("queue: missing push or pop");
    if (strcmp(verb, "pop") != 0)
        return cmd_usage("queue: unknown verb '%s' (push or pop)", verb);
    for (i = 2; i < argc; i++) {
        if ((m = opt_value("queue pop", "--timeout", argc, argv, &i, &v)) !=
            0) {
            if (m < 0 || parse_timeout("queue pop", v, &timeout) < 0)
                return EXIT_USAGE;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return cmd_usage("queue pop: unknown option '%s'", argv[i]);
        } else if (name == NULL) {
            name = argv[i];
        } else {
            return cmd_usage("queue pop: unexpected argument '%s'", argv[i]);
        }
    }
    if (name == NULL)
        return cmd_usage("queue pop: missing NAME");
    rc = prun_queue_pop(name, timeout, &value, &e);
    if (rc < 0)
        return fail("queue", &e);
    if (rc == 0)
        return EXIT_FAILED;
    printf("%s\n", value);
    free(value);
    return EXIT_OK;
}

/* ---- progress -----------------------------------------------------------
 */

int cmd_progress(int argc, char **argv)
{
    long long done, total = -1;
    struct prun_err e;

    if (argc > 1 && is_help(argv[1])) {
        fputs(progress_usage, stdout);
        return EXIT_OK;
    }
    if (argc < 2)
        return cmd_usage("progress: missing DONE");
    if (argc > 3)
        return cmd_usage("progress: unexpected argument '%s'", argv[3]);
    if (prun__parse_int(argv[1], 0, INT64_MAX, &done, &e) < 0)
        return cmd_usage("progress: DONE: %s", e.msg);
    if (argc == 3 && prun__parse_int(argv[2], -1, INT64_MAX, &total, &e) < 0)
        return cmd_usage("progress: TOTAL: %s", e.msg);
    if (prun_progress((unsigned long long)done, total, &e) < 0)
        return fail("progress", &e);
    return EXIT_OK;
}

/* ---- next ---------------------------------------------------------------
 */

int cmd_next(int argc, char **argv)
{
    unsigned long long index;
    struct prun_err e;
    char *item = NULL;
    int rc, ok = 1;

    if (argc > 1 && is_help(argv[1])) {
        fputs(next_usage, stdout);
        return EXIT_OK;
    }
    if (argc > 1 && strcmp(argv[1], "--fail") == 0)
        ok = 0;
    else if (argc > 1)
        return cmd_usage("next: unexpected argument '%s'", argv[1]);
    if (argc > 2)
        return cmd_usage("next: unexpected argument '%s'", argv[2]);
    rc = prun__next_mark(ok, &item, &index, &e);
    if (rc < 0)
        return fail("next", &e);
    if (rc == 0)
        return EXIT_FAILED;
    printf("%s\n", item);
    free(item);
    /* A worker loop must know if the item reached it whole. */
    if (fflush(stdout) != 0) {
        cmd_warn("next: cannot write the item: %s", strerror(errno));
        return EXIT_SYSTEM;
    }
    return EXIT_OK;
}
