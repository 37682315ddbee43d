/* SPDX-License-Identifier: MIT */
#ifndef PRUN_UNIT_H
#define PRUN_UNIT_H

/*
 * A minimal unit-test harness printing TAP, so tests/run.sh can count unit
 * and bats results together. Each test is a void function; an assertion
 * that fails reports file, line and the values, then returns from the test.
 *
 *   static void test_x(void) { ASSERT_EQ(1 + 1, 2); }
 *   int main(void) { RUN(test_x); return unit_done(); }
 *
 * Each test runs in its own forked process (and process group), so a crash
 * or a leftover of one test cannot change the next, and a test that hangs
 * is killed after UNIT_TIMEOUT seconds (default 60) times PRUN_TIME_FACTOR
 * (default 1). What main() set up before the first RUN is shared by all.
 *
 * Tests are selected by name: `test_sched test_a test_b` or
 * UNIT_FILTER=substring runs only the tests named (or matching); the TAP
 * numbering counts the tests that ran.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int unit_failed_now;
static int unit_count;
static int unit_failures;
/* A test's skip reason, written by the test's process, read by the parent. */
static char *unit_skip_msg;

#define UNIT_FAIL(...)                                                         \
    do {                                                                       \
        printf("# %s:%d: ", __FILE__, __LINE__);                               \
        printf(__VA_ARGS__);                                                   \
        printf("\n");                                                          \
        unit_failed_now = 1;                                                   \
        return;                                                                \
    } while (0)

/* Ends the current test as skipped, with reason (a string literal). */
#define UNIT_SKIP(reason)                                                      \
    do {                                                                       \
        if (unit_skip_msg != NULL)                                             \
            snprintf(unit_skip_msg, 256, "%s", (reason));                      \
        return;                                                                \
    } while (0)

#define ASSERT(c)                                                              \
    do {                                                                       \
        if (!(c))                                                              \
            UNIT_FAIL("assertion failed: %s", #c);                             \
    } while (0)

#define ASSERT_EQ(a, b)                                                        \
    do {                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                    \
        if (a_ != b_)                                                          \
            UNIT_FAIL("%s == %s: %lld != %lld", #a, #b, a_, b_);               \
    } while (0)

#define ASSERT_STREQ(a, b)                                                     \
    do {                                                                       \
        const char *a_ = (a), *b_ = (b);                                       \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                   \
            UNIT_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b,                    \
                a_ ? a_ : "(null)", b_ ? b_ : "(null)");                       \
    } while (0)

/* Asserts that haystack contains needle. */
#define ASSERT_CONTAINS(hay, needle)                                           \
    do {                                                                       \
        const char *h_ = (hay), *n_ = (needle);                                \
        if (h_ == NULL || strstr(h_, n_) == NULL)                              \
            UNIT_FAIL(                                                         \
                "\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_);     \
    } while (0)

/*
 * True if the test called name was asked for: by the program's arguments
 * (read from /proc/self/cmdline, so main can stay main(void)) or by the
 * substring in UNIT_FILTER. Nothing asked for: every test.
 */
static inline int unit_selected(const char *name)
{
    static char args[8192];
    static size_t len;
    static int loaded;
    const char *f = getenv("UNIT_FILTER");
    size_t off;
    int any = 0;

    if (f != NULL && *f != '\0' && strstr(name, f) == NULL)
        return 0;
    if (!loaded) {
        FILE *fp = fopen("/proc/self/cmdline", "re");

        loaded = 1;
        if (fp != NULL) {
            len = fread(args, 1, sizeof(args) - 1, fp);
            fclose(fp);
        }
        args[len] = '\0';
    }
    /* Skip argv[0]; then each NUL-terminated argument is a name. */
    off = strlen(args) + 1;
    for (; off < len; off += strlen(args + off) + 1) {
        any = 1;
        if (strcmp(args + off, name) == 0)
            return 1;
    }
    return !any;
}

/* PRUN_TIME_FACTOR (default 1): how much slower this machine may be. */
static inline double unit_time_factor(void)
{
    const char *f = getenv("PRUN_TIME_FACTOR");
    double k = f != NULL && *f != '\0' ? atof(f) : 1.0;

    return k > 0 ? k : 1.0;
}

/*
 * An upper bound of time for an assertion, scaled for slow machines:
 * ASSERT(elapsed_ms < UNIT_SCALED(1000)).
 */
#define UNIT_SCALED(x) ((long long)((double)(x)*unit_time_factor()))

static inline double unit_timeout_s(void)
{
    const char *t = getenv("UNIT_TIMEOUT");
    double s = t != NULL && *t != '\0' ? atof(t) : 60.0;

    return (s > 0 ? s : 60.0) * unit_time_factor();
}

static inline void unit_nap(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/*
 * Runs fn in a child process with a deadline; returns 0 passed, 1 failed,
 * 2 skipped (reason in unit_skip_msg).
 */
static inline int unit_run(void (*fn)(void))
{
    double limit = unit_timeout_s();
    struct timespec t0, now;
    long nap = 1;
    pid_t pid;
    int st;

    if (unit_skip_msg == NULL) {
        void *m = mmap(NULL, 256, PROT_READ | PROT_WRITE,
            MAP_SHARED | MAP_ANONYMOUS, -1, 0);

        if (m == MAP_FAILED) {
            printf("# mmap: %s\n", strerror(errno));
            return 1;
        }
        unit_skip_msg = m;
    }
    unit_skip_msg[0] = '\0';
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        printf("# fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        /* Its own group, so a timeout also kills what the test started. */
        setpgid(0, 0);
        unit_failed_now = 0;
        fn();
        fflush(stdout);
        fflush(stderr);
        exit(unit_failed_now ? 1 : 0);
    }
    setpgid(pid, pid);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);

        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            printf("# waitpid: %s\n", strerror(errno));
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((double)(now.tv_sec - t0.tv_sec) +
                (double)(now.tv_nsec - t0.tv_nsec) / 1e9 >
            limit) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            printf("# timed out after %.0f s (UNIT_TIMEOUT, "
                   "PRUN_TIME_FACTOR)\n",
                limit);
            return 1;
        }
        unit_nap(nap);
        if (nap < 20)
            nap *= 2;
    }
    /* Whatever the test left running in its group goes with it. */
    kill(-pid, SIGKILL);
    if (WIFSIGNALED(st)) {
        printf("# killed by signal %d (%s)\n", WTERMSIG(st),
            strsignal(WTERMSIG(st)));
        return 1;
    }
    if (WEXITSTATUS(st) != 0)
        return 1;
    return unit_skip_msg[0] != '\0' ? 2 : 0;
}

#define RUN(fn)                                                                \
    do {                                                                       \
        int r_;                                                                \
        if (!unit_selected(#fn))                                               \
            break;                                                             \
        r_ = unit_run(fn);                                                     \
        unit_count++;                                                          \
        if (r_ == 1)                                                           \
            unit_failures++;                                                   \
        printf("%s %d %s%s%s\n", r_ == 1 ? "not ok" : "ok", unit_count, #fn,   \
            r_ == 2 ? " # skip " : "", r_ == 2 ? unit_skip_msg : "");          \
        fflush(stdout);                                                        \
    } while (0)

static inline int unit_done(void)
{
    printf("1..%d\n", unit_count);
    return unit_failures ? 1 : 0;
}

#endif
