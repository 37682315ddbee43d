/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for lib/coord_sync.c against a private redis-server (started
 * here on a unix socket in a temp directory, no TCP port, no persistence,
 * stopped at exit even when a test fails). Concurrency is tested with real
 * forked processes, each with its own connection, recording what it saw in
 * shared memory. The test reads keys directly through coord_int.h, which is
 * otherwise private to lib/coord*.c, to check the schema and the TTLs.
 */
#include "coord_int.h"
#include "coord_sync.h"
#include "unit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[64];
static char sock[128];
static pid_t server = -1;
static pid_t main_pid;
static struct prun_conn *peek; /* the test's own look at the keys */
static int runs;
static char rid[64];

static void stop_server(void)
{
    if (getpid() != main_pid)
        return;
    prun__sync_disconnect();
    prun__conn_close(peek);
    peek = NULL;
    if (server > 0) {
        kill(server, SIGKILL);
        waitpid(server, NULL, 0);
        server = -1;
    }
    if (dir[0]) {
        char p[256];

        unlink(sock);
        snprintf(p, sizeof(p), "%s/inside", dir);
        rmdir(p);
        snprintf(p, sizeof(p), "%s/counter", dir);
        unlink(p);
        rmdir(dir);
    }
}

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int start_server(void)
{
    struct prun_err e;
    int i;

    snprintf(dir, sizeof(dir), "/tmp/prun-sync.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(sock, sizeof(sock), "%s/r.sock", dir);
    server = fork();
    if (server == 0) {
        int fd = open("/dev/null", O_RDWR);

        /* Dies with the test, however the test ends. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);

        dup2(fd, 1);
        dup2(fd, 2);
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket",
            sock, "--save", "", "--appendonly", "no", "--dir", dir,
            (char *)NULL);
        _exit(127);
    }
    if (server < 0)
        return -1;
    for (i = 0; i < 500; i++) {
        char url[160];

        snprintf(url, sizeof(url), "unix://%s", sock);
        if (access(sock, F_OK) == 0 &&
            prun__conn_open(url, NULL, 2000, &peek, &e) == 0) {
            setenv("PARALLELRUN_REDIS", url, 1);
            return 0;
        }
        if (waitpid(server, NULL, WNOHANG) == server) {
            server = -1;
            return -1;
        }
        sleep_ms(10);
    }
    return -1;
}

/* A fresh run id per test, so tests never see each other's keys. */
static void new_run(const char *count)
{
    /* Each test runs in its own process: its pid makes the id unique. */
    snprintf(rid, sizeof(rid), "test-%d-%d", (int)getpid(), ++runs);
    setenv("PARALLELRUN_RUN_ID", rid, 1);
    setenv("PARALLELRUN_TASK", "t", 1);
    setenv("PARALLELRUN_INDEX", "0", 1);
    setenv("PARALLELRUN_ATTEMPT", "1", 1);
    setenv("PARALLELRUN_COUNT", count, 1);
    unsetenv("PARALLELRUN_KEY_TTL");
}

static void kname(char *buf, size_t n, const char *suffix)
{
    snprintf(buf, n, "parallelrun:{%s}:%s", rid, suffix);
}

static long long r_int(const char *cmd, const char *suffix)
{
    char k[300];
    redisReply *r;
    long long v = -999;

    kname(k, sizeof(k), suffix);
    r = prun__cmd(peek, NULL, "%s %s", cmd, k);
    if (r == NULL)
        return -998;
    if (r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r->type == REDIS_REPLY_STRING)
        v = atoll(r->str);
    else if (r->type == REDIS_REPLY_NIL)
        v = -1;
    freeReplyObject(r);
    return v;
}

static char *r_str(const char *fmt, const char *suffix, const char *arg)
{
    static char buf[256];
    char k[300];
    redisReply *r;

    kname(k, sizeof(k), suffix);
    r = prun__cmd(peek, NULL, fmt, k, arg);
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        if (r)
            freeReplyObject(r);
        return NULL;
    }
    snprintf(buf, sizeof(buf), "%s", r->str);
    freeReplyObject(r);
    return buf;
}

/* A hash field as a number; a missing field counts as 0, as in Lua. */
static long long hget0(const char *suffix, const char *field)
{
    const char *v = r_str("HGET %s %s", suffix, field);

    return v ? atoll(v) : 0;
}

static void *shared(size_t n)
{
    void *p = mmap(
        NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        abort();
    memset(p, 0, n);
    return p;
}

/* Forks a worker that runs fn(i) as instance i and exits with its value. */
static pid_t spawn(int (*fn)(int, void *), int i, void *arg)
{
    pid_t pid = fork();

    if (pid == 0) {
        char ix[16];

        snprintf(ix, sizeof(ix), "%d", i);
        setenv("PARALLELRUN_INDEX", ix, 1);
        _exit(fn(i, arg));
    }
    return pid;
}

/* Waits for n pids; returns how many did not exit 0. */
static int reap(const pid_t *pids, int n)
{
    int i, st, bad = 0;

    for (i = 0; i < n; i++) {
        if (pids[i] <= 0 || waitpid(pids[i], &st, 0) != pids[i] ||
            !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad++;
    }
    return bad;
}

/* ---- environment and names ----------------------------------------------
 */

static void test_env_errors(void)
{
    struct prun_err e;
    long long v;
    char *url;

    new_run("1");
    url = strdup(getenv("PARALLELRUN_REDIS"));
    unsetenv("PARALLELRUN_REDIS");
    ASSERT_EQ(prun_counter_add("c", 1, &v, &e), PRUN_EINVAL);
    ASSERT_CONTAINS(e.msg, "PARALLELRUN_REDIS is not set");
    ASSERT_CONTAINS(e.msg, "parallelrun run");
    setenv("PARALLELRUN_REDIS", "unix:///nonexistent/dir/r.sock", 1);
    ASSERT_EQ(prun_counter_add("c", 1, &v, &e), PRUN_EREDIS);
    ASSERT_CONTAINS(e.msg, "/nonexistent/dir/r.sock");
    setenv("PARALLELRUN_REDIS", url, 1);
    free(url);
    unsetenv("PARALLELRUN_RUN_ID");
    ASSERT_EQ(prun_counter_add("c", 1, &v, &e), PRUN_EINVAL);
    ASSERT_CONTAINS(e.msg, "PARALLELRUN_RUN_ID is not set");
    new_run("1");
    ASSERT_EQ(prun_counter_add("a:b", 1, &v, &e), PRUN_EINVAL);
    ASSERT_CONTAINS(e.msg, "'a:b'");
    ASSERT_EQ(prun_counter_add("", 1, &v, &e), PRUN_EINVAL);
    ASSERT_EQ(prun_barrier_wait("a b", 2, 0, &e), PRUN_EINVAL);
    /* err may be NULL. */
    ASSERT_EQ(prun_counter_add("", 1, &v, NULL), PRUN_EINVAL);
    ASSERT_EQ(prun_counter_add("ok", 1, &v, NULL), 0);
    ASSERT_EQ(v, 1);
}

/* ---- barriers -----------------------------------------------------------
 */

#define BAR_MAX 64

struct bar {
    int n, gens;
    int64_t arrive[BAR_MAX][2], release[BAR_MAX][2];
};

static int bar_worker(int i, void *arg)
{
    struct bar *b = arg;
    struct prun_err e;
    long long v;
    int g;

    /* Connect first, so the timings measure the barrier alone. */
    if (prun_counter_add("warm", 0, &v, &e) < 0)
        return 10;
    for (g = 0; g < b->gens; g++) {
        /* Arrive in a different order in each generation. */
        sleep_ms(g == 0 ? 5 + i * 3 : 5 + (b->n - i) * 3);
        b->arrive[i][g] = now_us();
        if (prun_barrier_wait("b", 0, 20000, &e) < 0)
            return 20 + g;
        b->release[i][g] = now_us();
    }
    return 0;
}

static int64_t run_barrier(int n, int gens, int *failed)
{
    struct bar *b = shared(sizeof(*b));
    pid_t pids[BAR_MAX];
    int64_t lat = 0;
    char cnt[16];
    int i, g;

    snprintf(cnt, sizeof(cnt), "%d", n);
    new_run(cnt);
    b->n = n;
    b->gens = gens;
    for (i = 0; i < n; i++)
        pids[i] = spawn(bar_worker, i, b);
    *failed = reap(pids, n);
    for (g = 0; g < gens; g++) {
        int64_t last_arrive = 0, first_release = INT64_MAX, last_release = 0;

        for (i = 0; i < n; i++) {
            if (b->arrive[i][g] > last_arrive)
                last_arrive = b->arrive[i][g];
            if (b->release[i][g] < first_release)
                first_release = b->release[i][g];
            if (b->release[i][g] > last_release)
                last_release = b->release[i][g];
        }
        /* Nobody passes before the last one has arrived. */
        if (first_release < last_arrive)
            *failed += 100;
        if (last_release - last_arrive > lat)
            lat = last_release - last_arrive;
    }
    munmap(b, sizeof(*b));
    return lat;
}

static void test_barrier_two_generations(void)
{
    int failed;

    run_barrier(8, 2, &failed);
    ASSERT_EQ(failed, 0);
    ASSERT_EQ(hget0("barrier:b", "gen"), 2);
    ASSERT_EQ(hget0("barrier:b", "count"), 0);
    /* Every release token was taken. */
    ASSERT_EQ(r_int("LLEN", "barrier:b:0"), 0);
    ASSERT_EQ(r_int("LLEN", "barrier:b:1"), 0);
}

static void test_barrier_32_latency(void)
{
    int failed;
    int64_t lat = run_barrier(32, 1, &failed);

    ASSERT_EQ(failed, 0);
    printf("# barrier: 32 processes all released %.2f ms after the last "
           "arrival\n",
        (double)lat / 1000);
    /* 5 ms is the target; sanitizers and loaded CI machines get slack. */
    ASSERT(lat < UNIT_SCALED(500 * 1000));
}

static int bar2_worker(int i, void *arg)
{
    struct prun_err e;

    (void)i;
    (void)arg;
    return prun_barrier_wait("t", 2, 5000, &e) == 0 ? 0 : 1;
}

static void test_barrier_timeout_keeps_it_usable(void)
{
    struct prun_err e;
    pid_t pids[2];
    int64_t t0;

    new_run("2");
    ASSERT_EQ(prun_barrier_wait("one", 1, 0, &e), 0);
    t0 = prun__now_ms();
    ASSERT_EQ(prun_barrier_wait("t", 2, 150, &e), PRUN_ETIMEDOUT);
    ASSERT(prun__now_ms() - t0 >= 145);
    ASSERT_CONTAINS(e.msg, "barrier 't' timed out");
    ASSERT_CONTAINS(e.msg, "1 of 2 arrived");
    ASSERT_EQ(hget0("barrier:t", "count"), 0);
    ASSERT_EQ(hget0("barrier:t", "gen"), 0);
    /* The timed-out arrival was taken back: two new ones fill it. */
    pids[0] = spawn(bar2_worker, 0, NULL);
    pids[1] = spawn(bar2_worker, 1, NULL);
    ASSERT_EQ(reap(pids, 2), 0);
    ASSERT_EQ(hget0("barrier:t", "gen"), 1);
    /* Every key has a TTL. */
    ASSERT(r_int("PTTL", "barrier:t") > 0);
}

static void test_barrier_needs_count(void)
{
    struct prun_err e;

    new_run("1");
    unsetenv("PARALLELRUN_COUNT");
    ASSERT_EQ(prun_barrier_wait("x", 0, 0, &e), PRUN_EINVAL);
    ASSERT_CONTAINS(e.msg, "PARALLELRUN_COUNT");
}

/* ---- locks --------------------------------------------------------------
 */

#define LOCK_PROCS 6
#define LOCK_ITERS 25

struct lk {
    int overlaps, errors, n;
    uint64_t tokens[LOCK_PROCS * LOCK_ITERS];
};

static int lock_worker(int i, void *arg)
{
    struct lk *s = arg;
    char path[128], inside[128], buf[32];
    struct prun_lock *l;
    struct prun_err e;
    uint64_t tok;
    int k, fd;
    ssize_t got;

    (void)i;
    snprintf(path, sizeof(path), "%s/counter", dir);
    snprintf(inside, sizeof(inside), "%s/inside", dir);
    for (k = 0; k < LOCK_ITERS; k++) {
        if (prun_lock_acquire("m", 20000, &l, &tok, &e) < 0) {
            __atomic_add_fetch(&s->errors, 1, __ATOMIC_SEQ_CST);
            return 1;
        }
        /* mkdir fails if anyone else is inside at the same time. */
        if (mkdir(inside, 0700) < 0)
            __atomic_add_fetch(&s->overlaps, 1, __ATOMIC_SEQ_CST);
        s->tokens[s->n++] = tok;
        fd = open(path, O_RDWR | O_CREAT, 0600);
        got = read(fd, buf, sizeof(buf) - 1);
        buf[got > 0 ? got : 0] = '\0';
        snprintf(buf, sizeof(buf), "%d\n", atoi(buf) + 1);
        usleep(200);
        if (pwrite(fd, buf, strlen(buf), 0) < 0)
            s->errors++;
        close(fd);
        rmdir(inside);
        if (prun_lock_release(l, &e) < 0)
            s->errors++;
    }
    return 0;
}

static void test_lock_mutual_exclusion(void)
{
    struct lk *s = shared(sizeof(*s));
    pid_t pids[LOCK_PROCS];
    char path[128], buf[32] = "";
    int i, fd;
    ssize_t got;

    new_run("1");
    snprintf(path, sizeof(path), "%s/counter", dir);
    unlink(path);
    for (i = 0; i < LOCK_PROCS; i++)
        pids[i] = spawn(lock_worker, i, s);
    ASSERT_EQ(reap(pids, LOCK_PROCS), 0);
    ASSERT_EQ(s->errors, 0);
    ASSERT_EQ(s->overlaps, 0);
    fd = open(path, O_RDONLY);
    got = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    ASSERT(got > 0);
    ASSERT_EQ(atoi(buf), LOCK_PROCS * LOCK_ITERS);
    /* Fencing tokens strictly increase in acquisition order. */
    ASSERT_EQ(s->n, LOCK_PROCS * LOCK_ITERS);
    for (i = 1; i < s->n; i++)
        if (s->tokens[i] <= s->tokens[i - 1])
            UNIT_FAIL("token %d: %llu after %llu", i,
                (unsigned long long)s->tokens[i],
                (unsigned long long)s->tokens[i - 1]);
    ASSERT_EQ(s->tokens[0], 1);
    /* Released: the lock key is gone; the fence and wake keys expire. */
    ASSERT_EQ(r_int("EXISTS", "lock:m"), 0);
    ASSERT(r_int("PTTL", "lock:m:fence") > 0);
    ASSERT(r_int("PTTL", "lock:m:wake") > 0);
    ASSERT(r_int("LLEN", "lock:m:wake") <= 1);
    munmap(s, sizeof(*s));
}

static int holder(int i, void *arg)
{
    int *fds = arg;
    struct prun_lock *l;
    struct prun_err e;
    uint64_t tok;

    (void)i;
    /* A 300 ms lease and nobody renewing it. */
    if (prun__lock_take("k", 0, 300, 0, &l, &tok, &e) < 0)
        return 1;
    if (write(fds[1], &tok, sizeof(tok)) != (ssize_t)sizeof(tok))
        return 2;
    for (;;)
        pause();
}

static void test_lock_lease_frees_a_killed_holder(void)
{
    struct prun_lock *l = NULL;
    struct prun_err e;
    uint64_t t1 = 0, t2 = 0;
    int64_t t0;
    int fds[2];
    pid_t pid;

    new_run("1");
    ASSERT_EQ(pipe(fds), 0);
    pid = spawn(holder, 0, fds);
    ASSERT_EQ(read(fds[0], &t1, sizeof(t1)), (ssize_t)sizeof(t1));
    close(fds[0]);
    close(fds[1]);
    ASSERT_EQ(prun_lock_acquire("k", 0, &l, &t2, &e), PRUN_ETIMEDOUT);
    ASSERT_STREQ(e.msg, "lock 'k' is held (waited 0ms)");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    t0 = prun__now_ms();
    ASSERT_EQ(prun_lock_acquire("k", 5000, &l, &t2, &e), 0);
    ASSERT(prun__now_ms() - t0 < UNIT_SCALED(1000));
    ASSERT(t2 > t1);
    ASSERT_EQ(prun_lock_release(l, &e), 0);
}

static int try_lock(int i, void *arg)
{
    struct prun_lock *l;
    struct prun_err e;
    uint64_t tok;
    int64_t timeout = *(int64_t *)arg;
    int rc;

    (void)i;
    rc = prun_lock_acquire("r", timeout, &l, &tok, &e);
    if (rc == PRUN_ETIMEDOUT)
        return 3;
    if (rc < 0)
        return 4;
    prun_lock_release(l, &e);
    return 0;
}

static void test_lock_renewal_and_wake(void)
{
    struct prun_lock *l;
    struct prun_err e;
    uint64_t tok;
    int64_t t100 = 100, t5000 = 5000, t0, waited;
    pid_t pid;
    int st;

    new_run("1");
    /* The thread renews a 300 ms lease: still held after a second. */
    ASSERT_EQ(prun__lock_take("r", 0, 300, 1, &l, &tok, &e), 0);
    sleep_ms(1000);
    ASSERT(r_int("PTTL", "lock:r") > 0);
    pid = spawn(try_lock, 0, &t100);
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT_EQ(WEXITSTATUS(st), 3);
    /* A waiter is woken by the release, not by its polling. */
    pid = spawn(try_lock, 0, &t5000);
    sleep_ms(400);
    t0 = prun__now_ms();
    ASSERT_EQ(prun_lock_release(l, &e), 0);
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    waited = prun__now_ms() - t0;
    ASSERT_EQ(WEXITSTATUS(st), 0);
    printf("# lock: a waiter took over %lld ms after the release\n",
        (long long)waited);
    ASSERT(waited < UNIT_SCALED(1000));
}

static void test_lock_lost(void)
{
    struct prun_lock *l, *l2;
    struct prun_err e;
    uint64_t tok, tok2;

    new_run("1");
    ASSERT_EQ(prun__lock_take("x", 0, 100, 0, &l, &tok, &e), 0);
    ASSERT_EQ(prun__lock_renew(l, &e), 0);
    sleep_ms(250);
    ASSERT_EQ(prun__lock_take("x", 0, 10000, 0, &l2, &tok2, &e), 0);
    ASSERT(tok2 > tok);
    ASSERT_EQ(prun__lock_renew(l, &e), PRUN_ELOCKED);
    ASSERT_CONTAINS(e.msg, "lock 'x' was lost");
    ASSERT_EQ(prun_lock_release(l, &e), PRUN_ELOCKED);
    /* The stale release did not free the new holder's lock. */
    ASSERT_EQ(r_int("EXISTS", "lock:x"), 1);
    ASSERT_EQ(prun_lock_release(l2, &e), 0);
    ASSERT_EQ(prun_lock_release(NULL, &e), 0);
}

static int tasks_now(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static int lock_in_child(int i, void *arg)
{
    struct prun_lock *l;
    struct prun_err e;
    uint64_t tok;

    (void)i;
    (void)arg;
    /* A child forked while its parent renews locks gets its own renewer. */
    if (prun__lock_take("c", 0, 300, 1, &l, &tok, &e) < 0)
        return 1;
    sleep_ms(700);
    if (r_int("PTTL", "lock:c") <= 0)
        return 2;
    return prun_lock_release(l, &e) < 0 ? 3 : 0;
}

static void test_lock_one_renewer(void)
{
    struct prun_lock *a, *b, *l;
    struct prun_err e;
    uint64_t tok;
    pid_t pid;
    int k, tasks;

    new_run("1");
    /* Two leases of different lengths, both kept alive by one thread. */
    ASSERT_EQ(prun__lock_take("a", 0, 300, 1, &a, &tok, &e), 0);
    ASSERT_EQ(prun__lock_take("b", 0, 600, 1, &b, &tok, &e), 0);
    pid = spawn(lock_in_child, 0, NULL);
    sleep_ms(1000);
    ASSERT(r_int("PTTL", "lock:a") > 0);
    ASSERT(r_int("PTTL", "lock:b") > 0);
    ASSERT_EQ(reap(&pid, 1), 0);
    tasks = tasks_now();
    ASSERT_EQ(prun_lock_release(a, &e), 0);
    ASSERT_EQ(prun_lock_release(b, &e), 0);
    /* Short locks start no thread and leave none behind. */
    for (k = 0; k < 200; k++) {
        ASSERT_EQ(prun_lock_acquire("s", 1000, &l, &tok, &e), 0);
        ASSERT_EQ(prun_lock_release(l, &e), 0);
    }
    ASSERT_EQ(tasks_now(), tasks);
    ASSERT_EQ(r_int("EXISTS", "lock:s"), 0);
}

/* ---- counters, queues, progress -----------------------------------------
 */

static int count_worker(int i, void *arg)
{
    struct prun_err e;
    long long v;
    int k;

    (void)i;
    (void)arg;
    for (k = 0; k < 50; k++)
        if (prun_counter_add("c", 1, &v, &e) < 0)
            return 1;
    return 0;
}

static void test_counter(void)
{
    struct prun_err e;
    long long v = 0;
    pid_t pids[8];
    int i;

    new_run("1");
    ASSERT_EQ(prun_counter_add("c", 5, &v, &e), 0);
    ASSERT_EQ(v, 5);
    ASSERT_EQ(prun_counter_add("c", -2, &v, &e), 0);
    ASSERT_EQ(v, 3);
    ASSERT_EQ(prun_counter_add("c", 0, &v, &e), 0);
    ASSERT_EQ(v, 3);
    for (i = 0; i < 8; i++)
        pids[i] = spawn(count_worker, i, NULL);
    ASSERT_EQ(reap(pids, 8), 0);
    ASSERT_EQ(prun_counter_add("c", 0, &v, &e), 0);
    ASSERT_EQ(v, 403);
    /* 64-bit exact, past what a Lua number holds. */
    ASSERT_EQ(prun_counter_add("big", (1LL << 62) + 1, &v, &e), 0);
    ASSERT_EQ(prun_counter_add("big", 2, &v, &e), 0);
    ASSERT(v == (1LL << 62) + 3);
    ASSERT(r_int("PTTL", "counter:c") > 6LL * 24 * 3600 * 1000);
    ASSERT(r_int("PTTL", "counter:c") <= 7LL * 24 * 3600 * 1000);
    setenv("PARALLELRUN_KEY_TTL", "60000", 1);
    ASSERT_EQ(prun_counter_add("c", 1, &v, &e), 0);
    ASSERT(r_int("PTTL", "counter:c") <= 60000);
    ASSERT(r_int("PTTL", "counter:c") > 50000);
    unsetenv("PARALLELRUN_KEY_TTL");
}

static int pusher(int i, void *arg)
{
    const char *v[1] = {"late"};
    struct prun_err e;

    (void)i;
    sleep_ms(*(int *)arg);
    return prun_queue_push("q", v, 1, &e) == 0 ? 0 : 1;
}

static void test_queue(void)
{
    const char *vals[4] = {"a", "b with space", "c\twith\ttab", "-d"};
    struct prun_err e;
    char *v = NULL;
    int64_t t0;
    int delay = 150;
    pid_t pid;

    new_run("1");
    ASSERT_EQ(prun_queue_push("q", vals, 4, &e), 0);
    ASSERT(r_int("PTTL", "queue:q") > 0);
    ASSERT_EQ(prun_queue_pop("q", 0, &v, &e), 1);
    ASSERT_STREQ(v, "a");
    free(v);
    ASSERT_EQ(prun_queue_pop("q", 1000, &v, &e), 1);
    ASSERT_STREQ(v, "b with space");
    free(v);
    ASSERT_EQ(prun_queue_pop("q", -1, &v, &e), 1);
    ASSERT_STREQ(v, "c\twith\ttab");
    free(v);
    ASSERT_EQ(prun_queue_pop("q", 0, &v, &e), 1);
    ASSERT_STREQ(v, "-d");
    free(v);
    t0 = prun__now_ms();
    ASSERT_EQ(prun_queue_pop("q", 0, &v, &e), 0);
    ASSERT(prun__now_ms() - t0 < UNIT_SCALED(1000));
    ASSERT_EQ(prun_queue_pop("q", 200, &v, &e), 0);
    ASSERT(prun__now_ms() - t0 >= 195);
    /* A blocked pop gets a value pushed by another process at once. */
    pid = spawn(pusher, 1, &delay);
    t0 = prun__now_ms();
    ASSERT_EQ(prun_queue_pop("q", 5000, &v, &e), 1);
    ASSERT_STREQ(v, "late");
    free(v);
    ASSERT(prun__now_ms() - t0 < UNIT_SCALED(1000));
    ASSERT_EQ(reap(&pid, 1), 0);
    pid = spawn(pusher, 1, &delay);
    ASSERT_EQ(prun_queue_pop("q", -1, &v, &e), 1);
    ASSERT_STREQ(v, "late");
    free(v);
    ASSERT_EQ(reap(&pid, 1), 0);
}

static void test_progress(void)
{
    struct prun_err e;

    new_run("1");
    setenv("PARALLELRUN_INDEX", "7", 1);
    ASSERT_EQ(prun_progress(3, 10, &e), 0);
    ASSERT_STREQ(r_str("HGET %s %s", "progress", "t[7]"), "3 10");
    ASSERT_EQ(prun_progress(4, -5, &e), 0);
    ASSERT_STREQ(r_str("HGET %s %s", "progress", "t[7]"), "4 -1");
    ASSERT(r_int("PTTL", "progress") > 0);
    unsetenv("PARALLELRUN_TASK");
    ASSERT_EQ(prun_progress(1, 1, &e), PRUN_EINVAL);
    ASSERT_CONTAINS(e.msg, "PARALLELRUN_TASK is not set");
}

/* Pool mode's next is tested in test_wq.c, on the work queue. */

int main(void)
{
    main_pid = getpid();
    signal(SIGPIPE, SIG_IGN);
    if (start_server() < 0) {
        stop_server();
        printf("ok 1 # skip redis-server could not be started\n1..1\n");
        return 0;
    }
    atexit(stop_server);
    RUN(test_env_errors);
    RUN(test_barrier_two_generations);
    RUN(test_barrier_32_latency);
    RUN(test_barrier_timeout_keeps_it_usable);
    RUN(test_barrier_needs_count);
    RUN(test_lock_mutual_exclusion);
    RUN(test_lock_lease_frees_a_killed_holder);
    RUN(test_lock_renewal_and_wake);
    RUN(test_lock_lost);
    RUN(test_lock_one_renewer);
    RUN(test_counter);
    RUN(test_queue);
    RUN(test_progress);
    return unit_done();
}
