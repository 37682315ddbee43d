/* SPDX-License-Identifier: MIT */
/*
 * The work-queue protocol alone, without spawning: N entries, K processes
 * (each its own connection) claiming BATCH at a time and completing each.
 * Prints "claims+completions/s: X" and checks every entry got exactly one
 * terminal record. Usage: wq_bench URL N K BATCH
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "coord.h"
#include "wq.h"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct prun_conn *c;
    struct prun_wq *q;
    struct prun_wq_task task = {"t", 0, 0};
    struct prun_wq_run run;
    struct prun__wq_stats st;
    struct prun_err e;
    char rid[64];
    int n, k, batch;
    double t0, t1;

    if (argc != 5)
        return 2;
    n = atoi(argv[2]);
    k = atoi(argv[3]);
    batch = atoi(argv[4]);
    snprintf(rid, sizeof(rid), "bench-%d", (int)getpid());
    if (prun__conn_open(argv[1], NULL, 10000, &c, &e) < 0 ||
        prun__wq_new(c, rid, "producer", &q, &e) < 0) {
        fprintf(stderr, "%s\n", e.msg);
        return 3;
    }
    memset(&run, 0, sizeof(run));
    run.ttl_ms = 600000;
    run.tasks = &task;
    run.ntasks = 1;
    if (prun__wq_create(q, &run, &e) < 0)
        return 3;
    for (int i = 0; i < n; i += 1000) {
        struct prun_wq_entry es[1000];
        char keys[1000][24];
        int m = n - i < 1000 ? n - i : 1000;

        for (int j = 0; j < m; j++) {
            snprintf(keys[j], sizeof(keys[j]), "t %d", i + j);
            es[j] = (struct prun_wq_entry){"t", keys[j], 1, 0, "x", 1};
        }
        if (prun__wq_enqueue(q, es, (size_t)m, &e) < 0)
            return 3;
    }
    t0 = now_s();
    for (int w = 0; w < k; w++) {
        if (fork() == 0) {
            struct prun_conn *wc;
            struct prun_wq *wq;
            struct prun__wq_claim *cl = calloc((size_t)batch, sizeof(*cl));
            char me[32];
            size_t got;

            snprintf(me, sizeof(me), "w%d", w);
            if (prun__conn_open(argv[1], NULL, 10000, &wc, &e) < 0 ||
                prun__wq_new(wc, rid, me, &wq, &e) < 0)
                _exit(3);
            while (
                prun__wq_claim(wq, (size_t)batch, 60000, cl, &got, &e) == 0 &&
                got > 0)
                for (size_t i = 0; i < got; i++) {
                    prun__wq_complete(wq, &cl[i], 1, "{}", &e);
                    prun__wq_claim_clear(&cl[i]);
                }
            _exit(0);
        }
    }
    while (wait(NULL) > 0)
        ;
    t1 = now_s();
    if (prun__wq_stats(q, &st, &e) < 0)
        return 3;
    printf("workers %d batch %d: %d claims+completions in %.2fs: %.0f/s; "
           "terminal records %lld, dup %lld, stale %lld\n",
        k, batch, n, t1 - t0, n / (t1 - t0), st.done, st.dup, st.stale);
    return st.done == n && st.dup == 0 ? 0 : 1;
}
