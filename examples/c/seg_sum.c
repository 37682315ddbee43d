/* SPDX-License-Identifier: MIT */
/*
 * seg_sum: attaches a shared segment with the C API and sums it as 64-bit
 * words (wrapping), the way a child of `parallelrun run` would use one.
 *
 *   seg_sum NAME              attach NAME, print "sum=... size=...
 *                             attach_us=... dtype=... shape=..."
 *   seg_sum --write NAME I V  store the 8-byte value V in slot I of the
 *                             writable segment NAME
 *   seg_sum --baseline FILE N load FILE into a memfd this program maps
 *                             itself, fork N summing children, print the
 *                             sum and the wall time (the bench's floor)
 *
 * Used by tests/cli/segments.bats and bench/segments.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <parallelrun.h>

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static uint64_t sum_words(const unsigned char *p, size_t n)
{
    const uint64_t *w = (const uint64_t *)(const void *)p;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i, nw = n / 8;

    for (i = 0; i + 4 <= nw; i += 4) {
        s0 += w[i];
        s1 += w[i + 1];
        s2 += w[i + 2];
        s3 += w[i + 3];
    }
    for (; i < nw; i++)
        s0 += w[i];
    for (i = nw * 8; i < n; i++)
        s1 += p[i];
    return s0 + s1 + s2 + s3;
}

static int baseline(const char *file, int n)
{
    struct stat st;
    double t0 = now_us();
    off_t off = 0;
    uint64_t sum = 0;
    unsigned char *p;
    int in, fd, i, status, failed = 0;

    in = open(file, O_RDONLY | O_CLOEXEC);
    fd = memfd_create("seg_sum", MFD_CLOEXEC);
    if (in < 0 || fd < 0 || fstat(in, &st) < 0 ||
        ftruncate(fd, st.st_size) < 0) {
        perror(file);
        return 3;
    }
    while (off < st.st_size)
        if (sendfile(fd, in, &off, (size_t)(st.st_size - off)) <= 0) {
            perror("sendfile");
            return 3;
        }
    p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return 3;
    }
    for (i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            volatile uint64_t s = sum_words(p, (size_t)st.st_size);
            (void)s;
            _exit(0);
        }
        if (pid < 0) {
            perror("fork");
            return 3;
        }
    }
    while (wait(&status) > 0)
        failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    sum = sum_words(p, (size_t)st.st_size);
    printf("sum=%" PRIu64 " size=%lld wall_ms=%.1f\n", sum,
        (long long)st.st_size, (now_us() - t0) / 1e3);
    return failed;
}

static int write_slot(const char *name, const char *idx, const char *val)
{
    struct prun_segment seg;
    struct prun_err err;
    size_t i = strtoull(idx, NULL, 10);
    uint64_t v = strtoull(val, NULL, 10);

    if (prun_segment_attach(name, &seg, &err) < 0) {
        fprintf(stderr, "seg_sum: %s\n", err.msg);
        return err.code == PRUN_ENOTFOUND ? 1 : 3;
    }
    if (!seg.writable || (i + 1) * 8 > seg.size) {
        fprintf(stderr, "seg_sum: segment '%s' is %s\n", name,
            seg.writable ? "too small" : "read-only");
        prun_segment_detach(&seg);
        return 1;
    }
    memcpy((char *)seg.data + i * 8, &v, 8);
    prun_segment_detach(&seg);
    return 0;
}

int main(int argc, char **argv)
{
    struct prun_segment seg;
    struct prun_err err;
    double t0, t1;
    uint64_t sum;
    size_t i;

    if (argc == 4 && strcmp(argv[1], "--baseline") == 0)
        return baseline(argv[2], atoi(argv[3]));
    if (argc == 5 && strcmp(argv[1], "--write") == 0)
        return write_slot(argv[2], argv[3], argv[4]);
    if (argc != 2) {
        fprintf(stderr, "usage: seg_sum NAME | --write NAME I V | "
                        "--baseline FILE N\n");
        return 2;
    }
    t0 = now_us();
    if (prun_segment_attach(argv[1], &seg, &err) < 0) {
        fprintf(stderr, "seg_sum: %s\n", err.msg);
        return err.code == PRUN_ENOTFOUND ? 1 : 3;
    }
    t1 = now_us();
    sum = sum_words(seg.data, seg.size);
    printf("sum=%" PRIu64 " size=%zu attach_us=%.1f writable=%d dtype=%s "
           "shape=",
        sum, seg.size, t1 - t0, seg.writable, seg.dtype);
    for (i = 0; i < seg.ndim; i++)
        printf("%s%" PRIu64, i ? "," : "", seg.shape[i]);
    printf("\n");
    prun_segment_detach(&seg);
    return 0;
}
