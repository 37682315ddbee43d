/* SPDX-License-Identifier: MIT */
/*
 * barrier_bench: one of N children meeting at a barrier GENERATIONS times
 * through the C API. Prints "GEN ARRIVE_NS RELEASE_NS" per generation
 * (CLOCK_REALTIME, comparable across processes); bench/report.py takes,
 * per generation, the time from the last arrival to the last release.
 *
 *   barrier_bench [GENERATIONS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <parallelrun.h>

static long long now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    int gens = argc > 1 ? atoi(argv[1]) : 20, g;
    struct prun_err err;

    for (g = 0; g < gens; g++) {
        long long t0 = now_ns(), t1;

        if (prun_barrier_wait("bench", 0, 30000, &err) < 0) {
            fprintf(stderr, "barrier_bench: %s\n", err.msg);
            return 1;
        }
        t1 = now_ns();
        printf("%d %lld %lld\n", g, t0, t1);
    }
    return 0;
}
