/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for lib/wq.c, the work-queue protocol, against a private
 * redis-server (a unix socket in a temp directory, no persistence, killed
 * with the test). Several parties are several consumers (and, for the
 * concurrent test, forked processes with their own connections). The test
 * reads keys directly through coord_int.h to check the TTLs.
 */
#include "coord_int.h"
#include "coord_sync.h"
#include "unit.h"
#include "wq.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[64];
static char sock[128];
static char url[160];
static pid_t server = -1;
static pid_t main_pid;
static struct prun_conn *ca, *cb; /* two parties */
static int runs;
static char rid[64];

static void stop_server(void)
{
    if (getpid() != main_pid)
        return;
    prun__conn_close(ca);
    prun__conn_close(cb);
    ca = cb = NULL;
    if (server > 0) {
        kill(server, SIGKILL);
        waitpid(server, NULL, 0);
        server = -1;
    }
    if (dir[0]) {
        unlink(sock);
        rmdir(dir);
    }
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

    snprintf(dir, sizeof(dir), "/tmp/prun-wq.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(sock, sizeof(sock), "%s/r.sock", dir);
    snprintf(url, sizeof(url), "unix://%s", sock);
    server = fork();
    if (server == 0) {
        int fd = open("/dev/null", O_RDWR);

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
        if (access(sock, F_OK) == 0 &&
            prun__conn_open(url, NULL, 5000, &ca, &e) == 0 &&
            prun__conn_open(url, NULL, 5000, &cb, &e) == 0)
            return 0;
        if (waitpid(server, NULL, WNOHANG) == server) {
            server = -1;
            return -1;
        }
        sleep_ms(10);
    }
    return -1;
}

/* A fresh run with tasks "t" (and "u" capped) and two handles on it. */
static int new_run(struct prun_wq **qa, struct prun_wq **qb, unsigned maxdel,
    unsigned cap, double rate)
{
    struct prun_wq_task tasks[2] = {{"t", 0, 0}, {"u", cap, rate}};
    struct prun_wq_run r;
    struct prun_err e;

    snprintf(rid, sizeof(rid), "wq-%d-%d", (int)getpid(), ++runs);
    memset(&r, 0, sizeof(r));
    r.ttl_ms = 600000;
    r.max_deliveries = maxdel;
    r.job = "/j.yaml";
    r.tasks = tasks;
    r.ntasks = 2;
    if (prun__wq_new(ca, rid, "A", qa, &e) < 0 ||
        prun__wq_new(cb, rid, "B", qb, &e) < 0)
        return -1;
    if (prun__wq_create(*qa, &r, &e) < 0) {
        printf("# %s\n", e.msg);
        return -1;
    }
    return 0;
}

static int enqueue(struct prun_wq *q, const char *task, int n,
    unsigned max_attempts, int64_t delay)
{
    struct prun_wq_entry *e = calloc((size_t)n, sizeof(*e));
    char(*keys)[32] = calloc((size_t)n, sizeof(*keys));
    struct prun_err err;
    int rc;

    for (int i = 0; i < n; i++) {
        snprintf(keys[i], sizeof(keys[i]), "%s %d", task, i);
        e[i].task = task;
        e[i].key = keys[i];
        e[i].max_attempts = max_attempts;
        e[i].retry_delay_ms = delay;
        e[i].payload = keys[i];
        e[i].payload_len = strlen(keys[i]);
    }
    rc = prun__wq_enqueue(q, e, (size_t)n, &err);
    if (rc < 0)
        printf("# %s\n", err.msg);
    free(e);
    free(keys);
    return rc;
}

static void clear(struct prun__wq_claim *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        prun__wq_claim_clear(&c[i]);
}

static void test_claim_complete(void)
{
    struct prun_wq *qa, *qb;
    struct prun__wq_claim c[8];
    struct prun__wq_stats st;
    struct prun_wq_end ends[16];
    struct prun_err e;
    size_t n, total = 0;
    char *rec = NULL;
    int ne;

    ASSERT_EQ(new_run(&qa, &qb, 3, 0, 0), 0);
    ASSERT_EQ(enqueue(qa, "t", 10, 1, 0), 0);
    /* No prefetch: a claim takes exactly what was asked for. */
    ASSERT_EQ(prun__wq_claim(qb, 4, 10000, c, &n, &e), 0);
    ASSERT_EQ(n, 4);
    ASSERT_STREQ(c[0].key, "t 0");
    ASSERT_STREQ(c[0].payload, "t 0");
    ASSERT_EQ(c[0].attempt, 1);
    ASSERT_EQ(c[0].deliveries, 1);
    ASSERT(c[1].fence != c[0].fence);
    ASSERT_EQ(prun__wq_stats(qa, &st, &e), 0);
    ASSERT_EQ(st.enqueued, 10);
    ASSERT_EQ(st.pending, 4);
    ASSERT_EQ(st.backlog, 6);
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(
            prun__wq_complete(qb, &c[i], 1, "{\"ok\":true}", &e), PRUN_WQ_DONE);
    total += n;
    clear(c, n);
    while (prun__wq_claim(qa, 8, 10000, c, &n, &e) == 0 && n > 0) {
        for (size_t i = 0; i < n; i++)
            ASSERT_EQ(prun__wq_complete(qa, &c[i], 1, "{}", &e), PRUN_WQ_DONE);
        total += n;
        clear(c, n);
    }
    ASSERT_EQ(total, 10);
    ASSERT_EQ(prun__wq_stats(qa, &st, &e), 0);
    ASSERT_EQ(st.ok, 10);
    ASSERT_EQ(st.done, 10);
    ASSERT_EQ(st.pending, 0);
    ASSERT_EQ(st.backlog, 0);
    ASSERT_EQ(prun__wq_record(qa, "t 3", &rec, &e), 0);
    ASSERT(rec != NULL);
    free(rec);
    ne = prun__wq_read_ends(qa, "0", ends, 16, &e);
    ASSERT_EQ(ne, 10);
    for (int i = 0; i < ne; i++)
        prun__wq_end_clear(&ends[i]);
    prun__wq_free(qa);
    prun__wq_free(qb);
}

/* A worker stopped past its lease: its completion is stale, B's counts. */
static void test_stale_completion(void)
{
    struct prun_wq *qa, *qb;
    struct prun__wq_claim a, b;
    struct prun__wq_stats st;
    struct prun_err e;
    size_t n;
    int lost = 0;

    ASSERT_EQ(new_run(&qa, &qb, 3, 0, 0), 0);
    ASSERT_EQ(enqueue(qa, "t", 1, 1, 0), 0);
    ASSERT_EQ(prun__wq_claim(qa, 1, 100, &a, &n, &e), 0);
    ASSERT_EQ(n, 1);
    /* Within the lease nobody else gets it. */
    ASSERT_EQ(prun__wq_claim(qb, 1, 100, &b, &n, &e), 0);
    ASSERT_EQ(n, 0);
    ASSERT_EQ(prun__wq_renew(qa, &a, 1, &lost, &e), 0);
    ASSERT_EQ(lost, 0);
    sleep_ms(150);
    ASSERT_EQ(prun__wq_claim(qb, 1, 100, &b, &n, &e), 0);
    ASSERT_EQ(n, 1);
    ASSERT_STREQ(b.key, a.key);
    ASSERT_EQ(b.deliveries, 2);
    ASSERT(b.fence > a.fence);
    /* The old owner learns it lost the entry; a renewal cannot steal it. */
    ASSERT_EQ(prun__wq_renew(qa, &a, 1, &lost, &e), 0);
    ASSERT_EQ(lost, 1);
    ASSERT_EQ(prun__wq_renew(qb, &b, 1, &lost, &e), 0);
    ASSERT_EQ(lost, 0);
    ASSERT_EQ(
        prun__wq_complete(qa, &a, 1, "{\"by\":\"A\"}", &e), PRUN_WQ_STALE);
    ASSERT_EQ(prun__wq_complete(qb, &b, 0, "{\"by\":\"B\"}", &e), PRUN_WQ_DONE);
    ASSERT_EQ(prun__wq_complete(qb, &b, 1, "{\"by\":\"B\"}", &e), PRUN_WQ_DUP);
    /* Stale after the new owner finished: still stale, not a duplicate. */
    ASSERT_EQ(
        prun__wq_complete(qa, &a, 1, "{\"by\":\"A\"}", &e), PRUN_WQ_STALE);
    ASSERT_EQ(prun__wq_stats(qa, &st, &e), 0);
    ASSERT_EQ(st.done, 1);
    ASSERT_EQ(st.failed, 1);
    ASSERT_EQ(st.ok, 0);
    ASSERT_EQ(st.stale, 2);
    ASSERT_EQ(st.dup, 1);
    prun__wq_claim_clear(&a);
    prun__wq_claim_clear(&b);
    prun__wq_free(qa);
    prun__wq_free(qb);
}

/* An entry whose workers keep vanishing ends in the dead-letter list. */
static void test_dead_letter(void)
{
    struct prun_wq *qa, *qb;
    struct prun__wq_claim c;
    struct prun__wq_stats st;
    struct prun_err e;
    char *rec = NULL, k[200];
    size_t n;
    redisReply *r;

    ASSERT_EQ(new_run(&qa, &qb, 2, 0, 0), 0);
    ASSERT_EQ(enqueue(qa, "t", 1, 5, 0), 0);
    for (int i = 1; i <= 2; i++) {
        ASSERT_EQ(prun__wq_claim(i % 2 ? qa : qb, 1, 50, &c, &n, &e), 0);
        ASSERT_EQ(n, 1);
        ASSERT_EQ(c.deliveries, i);
        prun__wq_claim_clear(&c);
        sleep_ms(80);
    }
    ASSERT_EQ(prun__wq_claim(qa, 1, 50, &c, &n, &e), 0);
    ASSERT_EQ(n, 0);
    ASSERT_EQ(prun__wq_stats(qa, &st, &e), 0);
    ASSERT_EQ(st.dead, 1);
    ASSERT_EQ(st.done, 1);
    ASSERT_EQ(st.failed, 1);
    ASSERT_EQ(st.pending, 0);
    ASSERT_EQ(prun__wq_record(qa, "t 0", &rec, &e), 0);
    ASSERT_CONTAINS(rec, "max_deliveries 2");
    free(rec);
    snprintf(k, sizeof(k), "parallelrun:{%s}:wq:dead", rid);
    r = prun__cmd(ca, NULL, "LINDEX %s 0", k);
    ASSERT(r != NULL && r->type == REDIS_REPLY_STRING);
    ASSERT_STREQ(r->str, "t 0");
    freeReplyObject(r);
    prun__wq_free(qa);
    prun__wq_free(qb);
}

/* A failed attempt waits in the delayed set, then anyone may take it. */
static void test_retry_delayed(void)
{
    struct prun_wq *qa, *qb;
    struct prun__wq_claim c;
    struct prun__wq_stats st;
    struct prun_err e;
    size_t n;

    ASSERT_EQ(new_run(&qa, &qb, 3, 0, 0), 0);
    ASSERT_EQ(enqueue(qa, "t", 1, 2, 300), 0);
    ASSERT_EQ(prun__wq_claim(qa, 1, 10000, &c, &n, &e), 0);
    ASSERT_EQ(n, 1);
    ASSERT_EQ(prun__wq_complete(qa, &c, 0, "{}", &e), PRUN_WQ_RETRY);
    prun__wq_claim_clear(&c);
    ASSERT_EQ(prun__wq_stats(qa, &st, &e), 0);
    ASSERT_EQ(st.delayed, 1);
    ASSERT_EQ(st.done, 0);
    ASSERT_EQ(prun__wq_claim(qb, 1, 10000, &c, &n, &e), 0);
    ASSERT_EQ(n, 0);
    sleep_ms(350);
    /* Promoted by whoever claims next: B, not the worker that failed. */
    ASSERT_EQ(prun__wq_claim(qb, 1, 10000, &c, &n, &e), 0);
    ASSERT_EQ(n, 1);
    ASSERT_EQ(c.attempt, 2);
    ASSERT_STREQ(c.payload, "t 0");
    ASSERT_EQ(prun__wq_complete(qb, &c, 0, "{}", &e), PRUN_WQ_DONE);
    prun__wq_claim_clear(&c);
    ASSERT_EQ(prun__wq_stats(qa, &st, &e), 0);
    ASSERT_EQ(st.failed, 1);
    ASSERT_EQ(st.retried, 1);
    ASSERT_EQ(st.done, 1);
    prun__wq_free(qa);
    prun__wq_free(qb);
}

/* A draining worker hands an entry back: another takes it at once. */
static void test_release(void)
{
    struct prun_wq *qa, *qb;
    struct prun__wq_claim a, b;
    struct prun_err e;
    size_t n;

    ASSERT_EQ(new_run(&qa, &qb, 3, 0, 0), 0);
    ASSERT_EQ(enqueue(qa, "t", 1, 1, 0), 0);
    ASSERT_EQ(prun__wq_claim(qa, 1, 60000, &a, &n, &e), 0);
    ASSERT_EQ(n, 1);
    ASSERT_EQ(prun__wq_release(qa, &a, &e), 0);
    ASSERT_EQ(prun__wq_claim(qb, 1, 60000, &b, &n, &e), 0);
    ASSERT_EQ(n, 1);
    ASSERT_EQ(b.deliveries, 1);
    ASSERT_EQ(prun__wq_complete(qa, &a, 1, "{}", &e), PRUN_WQ_STALE);
    ASSERT_EQ(prun__wq_complete(qb, &b, 1, "{}", &e), PRUN_WQ_DONE);
    prun__wq_claim_clear(&a);
    prun__wq_claim_clear(&b);
    prun__wq_free(qa);
    prun__wq_free(qb);
}

/* Caps hold across parties; the rate is a global bucket. */
static void test_caps(void)
{
    struct prun_wq *qa, *qb;
    struct prun__wq_claim c[8], d[8];
    struct prun_err e;
    size_t n, m;

    ASSERT_EQ(new_run(&qa, &qb, 3, 2, 0), 0);
    ASSERT_EQ(enqueue(qa, "u", 6, 1, 0), 0);
    ASSERT_EQ(prun__wq_claim(qa, 5, 60000, c, &n, &e), 0);
    ASSERT_EQ(n, 2);
    ASSERT_EQ(prun__wq_claim(qb, 5, 60000, d, &m, &e), 0);
    ASSERT_EQ(m, 0);
    ASSERT_EQ(prun__wq_complete(qa, &c[0], 1, "{}", &e), PRUN_WQ_DONE);
    ASSERT_EQ(prun__wq_claim(qb, 5, 60000, d, &m, &e), 0);
    ASSERT_EQ(m, 1);
    clear(c, n);
    clear(d, m);
    prun__wq_free(qa);
    prun__wq_free(qb);

    ASSERT_EQ(new_run(&qa, &qb, 3, 0, 2.0), 0);
    ASSERT_EQ(enqueue(qa, "u", 6, 1, 0), 0);
    ASSERT_EQ(prun__wq_claim(qa, 5, 60000, c, &n, &e), 0);
    ASSERT_EQ(n, 2); /* a burst of one second's worth */
    ASSERT_EQ(prun__wq_claim(qb, 5, 60000, d, &m, &e), 0);
    ASSERT_EQ(m, 0);
    sleep_ms(600);
    ASSERT_EQ(prun__wq_claim(qb, 5, 60000, d, &m, &e), 0);
    ASSERT_EQ(m, 1);
    clear(c, n);
    clear(d, m);
    prun__wq_free(qa);
    prun__wq_free(qb);
}

/* Every key of the queue has a TTL; a queue that is gone says so. */
static void test_ttls_and_gone(void)
{
    struct prun_wq *qa, *qb;
    struct prun__wq_claim c[4];
    struct prun_err e;
    char pat[200];
    size_t n;
    redisReply *r;
    int keys = 0;

    ASSERT_EQ(new_run(&qa, &qb, 3, 1, 5), 0);
    ASSERT_EQ(enqueue(qa, "t", 3, 2, 10), 0);
    ASSERT_EQ(enqueue(qa, "u", 3, 2, 10), 0);
    ASSERT_EQ(prun__wq_claim(qa, 4, 60000, c, &n, &e), 0);
    ASSERT(n >= 2);
    ASSERT_EQ(prun__wq_complete(qa, &c[0], 0, "{}", &e), PRUN_WQ_RETRY);
    ASSERT_EQ(prun__wq_complete(qa, &c[1], 1, "{}", &e), PRUN_WQ_DONE);
    clear(c, n);
    snprintf(pat, sizeof(pat), "parallelrun:{%s}:*", rid);
    r = prun__cmd(ca, NULL, "KEYS %s", pat);
    ASSERT(r != NULL && r->type == REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *t = prun__cmd(ca, NULL, "PTTL %s", r->element[i]->str);
        if (t == NULL || t->integer <= 0)
            UNIT_FAIL("%s has no TTL", r->element[i]->str);
        freeReplyObject(t);
        keys++;
    }
    freeReplyObject(r);
    ASSERT(keys >= 9);
    r = prun__cmd(ca, NULL, "FLUSHALL");
    freeReplyObject(r);
    ASSERT_EQ(prun__wq_claim(qb, 1, 60000, c, &n, &e), PRUN_ENOTFOUND);
    ASSERT_CONTAINS(e.msg, "lost its data");
    prun__wq_free(qa);
    prun__wq_free(qb);
}

/* Failures are sorted in one place: what to ride out, what to give up. */
static void test_fault(void)
{
    struct prun_err e;
    redisReply *r;

    r = prun__cmd(ca, NULL, "SET fault:str x");
    freeReplyObject(r);
    /* A real error reply over a sound connection: permanent. */
    ASSERT(prun__cmd(ca, &e, "LPUSH fault:str y") == NULL);
    ASSERT_EQ(e.code, PRUN_EREDIS);
    ASSERT_CONTAINS(e.msg, "WRONGTYPE");
    ASSERT_EQ(prun__wq_fault(ca, e.code, &e), PRUN_WQ_FAULT_PERM);
    /* The connection still works after it. */
    r = prun__cmd(ca, &e, "PING");
    ASSERT(r != NULL);
    freeReplyObject(r);
    ASSERT_EQ(prun__wq_fault(ca, PRUN_ETIMEDOUT, &e), PRUN_WQ_FAULT_CONN);
    ASSERT_EQ(prun__wq_fault(NULL, PRUN_EREDIS, &e), PRUN_WQ_FAULT_CONN);
    ASSERT_EQ(prun__wq_fault_reply("BUSY Redis is busy running a script."),
        PRUN_WQ_FAULT_BUSY);
    ASSERT_EQ(prun__wq_fault_reply("LOADING Redis is loading the dataset"),
        PRUN_WQ_FAULT_BUSY);
    ASSERT_EQ(prun__wq_fault_reply("TRYAGAIN"), PRUN_WQ_FAULT_BUSY);
    ASSERT_EQ(prun__wq_fault_reply("BUSYKEY Target key name already exists."),
        PRUN_WQ_FAULT_PERM);
    ASSERT_EQ(prun__wq_fault_reply("OOM command not allowed when used memory"),
        PRUN_WQ_FAULT_PERM);
    ASSERT_EQ(prun__wq_fault_reply("NOPERM this user has no permissions"),
        PRUN_WQ_FAULT_PERM);
    r = prun__cmd(ca, NULL, "DEL fault:str");
    freeReplyObject(r);
}

/* Three processes race over 3,000 entries: each done exactly once. */
static void test_concurrent(void)
{
    struct prun_wq *qa, *qb;
    struct prun__wq_stats st;
    struct prun_err e;
    pid_t kids[3];
    int *done = mmap(
        NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    ASSERT(done != MAP_FAILED);
    ASSERT_EQ(new_run(&qa, &qb, 3, 0, 0), 0);
    ASSERT_EQ(enqueue(qa, "t", 3000, 1, 0), 0);
    for (int k = 0; k < 3; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            struct prun_conn *c;
            struct prun_wq *q;
            struct prun__wq_claim cl[16];
            char me[16];
            size_t n;
            int mine = 0;

            snprintf(me, sizeof(me), "w%d", k);
            if (prun__conn_open(url, NULL, 5000, &c, &e) < 0 ||
                prun__wq_new(c, rid, me, &q, &e) < 0)
                _exit(1);
            while (prun__wq_claim(q, 16, 60000, cl, &n, &e) == 0 && n > 0) {
                for (size_t i = 0; i < n; i++) {
                    if (prun__wq_complete(q, &cl[i], 1, "{}", &e) == 0)
                        mine++;
                    prun__wq_claim_clear(&cl[i]);
                }
            }
            done[k] = mine;
            _exit(0);
        }
    }
    for (int k = 0; k < 3; k++)
        waitpid(kids[k], NULL, 0);
    ASSERT_EQ(done[0] + done[1] + done[2], 3000);
    ASSERT_EQ(prun__wq_stats(qa, &st, &e), 0);
    ASSERT_EQ(st.done, 3000);
    ASSERT_EQ(st.ok, 3000);
    ASSERT_EQ(st.dup + st.stale, 0);
    munmap(done, 4096);
    prun__wq_free(qa);
    prun__wq_free(qb);
}

/* ---- pool mode's next ---------------------------------------------------- */

static void pool_env(const char *worker)
{
    setenv("PARALLELRUN_REDIS", url, 1);
    setenv("PARALLELRUN_RUN_ID", rid, 1);
    setenv("PARALLELRUN_TASK", "t", 1);
    setenv("PARALLELRUN_INDEX", worker, 1);
    setenv("PARALLELRUN_ATTEMPT", "1", 1);
}

static int pool_items(struct prun_wq *q, int from, int n)
{
    struct prun_wq_entry e[64];
    char keys[64][32], vals[64][32];
    struct prun_err err;

    for (int i = 0; i < n; i++) {
        snprintf(keys[i], sizeof(keys[i]), "t %d", from + i);
        snprintf(vals[i], sizeof(vals[i]), "item-%d", from + i);
        e[i] = (struct prun_wq_entry){
            "t", keys[i], 1, 0, vals[i], strlen(vals[i])};
    }
    return prun__wq_enqueue(q, e, (size_t)n, &err);
}

static void set_fed(int n)
{
    char k[200];
    redisReply *r;

    snprintf(k, sizeof(k), "parallelrun:{%s}:wq:meta", rid);
    r = prun__cmd(ca, NULL, "HSET %s fed:t %d", k, n);
    if (r)
        freeReplyObject(r);
}

/* Four workers: each item handed out once, all marked done, none left. */
static void test_pool_next_each_once(void)
{
    struct prun_wq *qa, *qb;
    struct prun_wq_tally ty;
    struct prun_err e;
    pid_t kids[4];
    int *seen = mmap(
        NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    ASSERT(seen != MAP_FAILED);
    ASSERT_EQ(new_run(&qa, &qb, 3, 0, 0), 0);
    ASSERT_EQ(pool_items(qa, 0, 60), 0);
    set_fed(60);
    for (int k = 0; k < 4; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            char w[16], *item;
            unsigned long long ix;

            snprintf(w, sizeof(w), "%d", k);
            pool_env(w);
            while (prun_next(&item, &ix, &e) == 1) {
                if (ix < 60 && strncmp(item, "item-", 5) == 0)
                    __atomic_add_fetch(&seen[ix], 1, __ATOMIC_SEQ_CST);
                free(item);
            }
            _exit(0);
        }
    }
    for (int k = 0; k < 4; k++)
        waitpid(kids[k], NULL, 0);
    for (int i = 0; i < 60; i++)
        ASSERT_EQ(seen[i], 1);
    ASSERT_EQ(prun__wq_pool_tally(qa, "t", &ty, &e), 0);
    ASSERT_EQ(ty.fed, 60);
    ASSERT_EQ(ty.ok, 60);
    ASSERT_EQ(ty.term, 60);
    munmap(seen, 4096);
    prun__wq_free(qa);
    prun__wq_free(qb);
}

/* next waits while items are being fed, and ends soon after 'fed'. */
static void test_pool_next_waits_until_fed(void)
{
    struct prun_wq *qa, *qb;
    int64_t *t = mmap(
        NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    struct timespec ts;
    pid_t kid;

    ASSERT(t != MAP_FAILED);
    ASSERT_EQ(new_run(&qa, &qb, 3, 0, 0), 0);
    kid = fork();
    if (kid == 0) {
        struct prun_err e;
        char *item;
        unsigned long long ix;

        pool_env("0");
        t[0] = prun_next(&item, &ix, &e);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        t[1] = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
        t[2] = prun_next(&item, &ix, &e);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        t[3] = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
        _exit(0);
    }
    sleep_ms(200);
    ASSERT_EQ(pool_items(qa, 0, 1), 0);
    sleep_ms(300);
    set_fed(1);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t[4] = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
    waitpid(kid, NULL, 0);
    ASSERT_EQ(t[0], 1);
    ASSERT_EQ(t[2], 0);
    /* No end-of-run tail: done within a poll of 'fed'. */
    ASSERT(t[3] >= t[4] && t[3] - t[4] < 300);
    munmap(t, 4096);
    prun__wq_free(qa);
    prun__wq_free(qb);
}

/* A worker that died with an item: it goes to another at once. */
static void test_pool_dead_worker_item(void)
{
    struct prun_wq *qa, *qb;
    struct prun_err e;
    char *item = NULL, meta[300], prefix[200], slot[300], done[300];
    unsigned long long ix;
    redisReply *r;

    ASSERT_EQ(new_run(&qa, &qb, 3, 0, 0), 0);
    ASSERT_EQ(pool_items(qa, 0, 1), 0);
    set_fed(1);
    pool_env("0");
    ASSERT_EQ(prun_next(&item, &ix, &e), 1);
    free(item);
    /* The runner saw worker 0 (attempt 1) die. */
    snprintf(prefix, sizeof(prefix), "parallelrun:{%s}:wq", rid);
    snprintf(meta, sizeof(meta), "%s:meta", prefix);
    snprintf(slot, sizeof(slot), "%s:slot:t:0.1", prefix);
    snprintf(done, sizeof(done), "parallelrun:{%s}:done:t", rid);
    {
        const char *argv[] = {"EVAL", prun__wq_script(PRUN__WQ_POOL_END), "1",
            meta, prefix, "t:0.1", "t", "0", slot, done};
        r = prun__cmdv(ca, &e, 10, argv, NULL);
        ASSERT(r != NULL);
        freeReplyObject(r);
    }
    pool_env("1");
    ASSERT_EQ(prun_next(&item, &ix, &e), 1);
    ASSERT_STREQ(item, "item-0");
    free(item);
    ASSERT_EQ(prun_next(&item, &ix, &e), 0);
    prun__sync_disconnect();
    prun__wq_free(qa);
    prun__wq_free(qb);
}

/* A batch: one worker exits holding items; they go back, none is lost. */
static void test_pool_batch_handed_back(void)
{
    struct prun_wq *qa, *qb;
    struct prun_wq_tally ty;
    struct prun_err e;
    char meta[300], prefix[200], slot[300], done[300];
    int *seen = mmap(
        NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    redisReply *r;
    pid_t kid;
    int total = 0;

    ASSERT(seen != MAP_FAILED);
    ASSERT_EQ(new_run(&qa, &qb, 3, 0, 0), 0);
    for (int i = 0; i < 200; i += 50)
        ASSERT_EQ(pool_items(qa, i, 50), 0);
    set_fed(200);
    snprintf(prefix, sizeof(prefix), "parallelrun:{%s}:wq", rid);
    snprintf(meta, sizeof(meta), "%s:meta", prefix);
    r = prun__cmd(ca, NULL, "HSET %s batch:t 24", meta);
    freeReplyObject(r);
    kid = fork();
    if (kid == 0) {
        char *item;
        unsigned long long ix;

        pool_env("0");
        if (prun_next(&item, &ix, &e) == 1 && ix < 200)
            seen[ix]++;
        exit(0); /* holding a batch: unstarted items go back at exit */
    }
    waitpid(kid, NULL, 0);
    /* The runner saw worker 0 exit 0: the item it was on is done. */
    snprintf(slot, sizeof(slot), "%s:slot:t:0.1", prefix);
    snprintf(done, sizeof(done), "parallelrun:{%s}:done:t", rid);
    {
        const char *argv[] = {"EVAL", prun__wq_script(PRUN__WQ_POOL_END), "1",
            meta, prefix, "t:0.1", "t", "1", slot, done};
        r = prun__cmdv(ca, &e, 10, argv, NULL);
        ASSERT(r != NULL);
        freeReplyObject(r);
    }
    kid = fork();
    if (kid == 0) {
        char *item;
        unsigned long long ix;

        pool_env("1");
        while (prun_next(&item, &ix, &e) == 1) {
            if (ix < 200)
                seen[ix]++;
            free(item);
        }
        exit(0);
    }
    waitpid(kid, NULL, 0);
    for (int i = 0; i < 200; i++) {
        ASSERT_EQ(seen[i], 1);
        total += seen[i];
    }
    ASSERT_EQ(total, 200);
    ASSERT_EQ(prun__wq_pool_tally(qa, "t", &ty, &e), 0);
    ASSERT_EQ(ty.ok, 200);
    ASSERT_EQ(ty.term, 200);
    munmap(seen, 4096);
    prun__wq_free(qa);
    prun__wq_free(qb);
}

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
    RUN(test_claim_complete);
    RUN(test_stale_completion);
    RUN(test_dead_letter);
    RUN(test_retry_delayed);
    RUN(test_release);
    RUN(test_caps);
    RUN(test_ttls_and_gone);
    RUN(test_fault);
    RUN(test_concurrent);
    RUN(test_pool_next_each_once);
    RUN(test_pool_next_waits_until_fed);
    RUN(test_pool_dead_worker_item);
    RUN(test_pool_batch_handed_back);
    return unit_done();
}
