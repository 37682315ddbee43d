/* SPDX-License-Identifier: MIT */
/* Shared segments: loading, sealing, env, publishing, attaching, gc. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "job.h"
#include "segment.h"
#include "unit.h"

static char tmpdir[64];
static char base[128];

static void write_file(const char *path, const void *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, data, n) != (ssize_t)n)
        abort();
    close(fd);
}

static struct prun_job *load(const char *yaml)
{
    struct prun_job *job = NULL;
    struct prun_err err;

    if (prun__jobfile_load_mem(
            "s.yaml", yaml, strlen(yaml), NULL, 0, &job, &err) < 0) {
        printf("# load: %s\n", err.msg);
        return NULL;
    }
    return job;
}

static const char *env_get(const struct prun_segchild *c, const char *key)
{
    size_t i, n = strlen(key);

    for (i = 0; i < c->nenv; i++)
        if (strncmp(c->env[i], key, n) == 0 && c->env[i][n] == '=')
            return c->env[i] + n + 1;
    return NULL;
}

/* A version-1 .npy header for <f8 of shape (rows, 3), padded to 128. */
static size_t npy_header(unsigned char *buf, unsigned rows)
{
    char dict[128];
    int n = snprintf(dict, sizeof(dict),
        "{'descr': '<f8', 'fortran_order': False, 'shape': (%u, 3), }", rows);
    size_t hl = 128 - 10;

    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)hl;
    buf[9] = 0;
    memset(buf + 10, ' ', hl);
    memcpy(buf + 10, dict, (size_t)n);
    buf[127] = '\n';
    return 128;
}

static void test_file_segment_sealed(void)
{
    char path[128], yaml[512], got[4096];
    unsigned char data[10000];
    struct prun_job *job;
    struct prun_segset *s = NULL;
    struct prun_segchild c;
    struct prun_err err;
    const char *v;
    void *p;
    size_t i;
    int fd;

    for (i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 7);
    snprintf(path, sizeof(path), "%s/data.bin", tmpdir);
    write_file(path, data, sizeof(data));
    snprintf(yaml, sizeof(yaml),
        "segments:\n  Data: {file: %s, dtype: uint8, shape: [10000]}\n"
        "tasks:\n  a: {run: x, segments: [Data]}\n  b: {run: y}\n",
        path);
    ASSERT((job = load(yaml)) != NULL);
    ASSERT_EQ(prun__segset_new(job, "r1", PRUN_HUGE_NEVER, &s, &err), 0);
    ASSERT_EQ(prun__segset_child(s, 0, &c, &err), 0);
    ASSERT_EQ(c.nfds, 1);
    fd = c.fds[0];
    ASSERT(fd >= 3);
    ASSERT((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    snprintf(got, sizeof(got), "/dev/fd/%d", fd);
    ASSERT_STREQ(env_get(&c, "PARALLELRUN_SEGMENT_DATA"), got);
    ASSERT_STREQ(env_get(&c, "PARALLELRUN_SEGMENT_DATA_SIZE"), "10000");
    ASSERT_STREQ(env_get(&c, "PARALLELRUN_SEGMENT_DATA_DTYPE"), "uint8");
    ASSERT_STREQ(env_get(&c, "PARALLELRUN_SEGMENT_DATA_SHAPE"), "10000");
    ASSERT(env_get(&c, "PARALLELRUN_SEGMENT_DATA_WRITABLE") == NULL);
    ASSERT_EQ(fcntl(fd, F_GET_SEALS),
        F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);

    /* Identical bytes. */
    ASSERT_EQ(pread(fd, got, sizeof(got), 5000), 4096);
    ASSERT(memcmp(got, data + 5000, 4096) == 0);
    /* No way to change it. */
    errno = 0;
    ASSERT(pwrite(fd, "x", 1, 0) < 0);
    ASSERT_EQ(errno, EPERM);
    ASSERT(mmap(NULL, 10000, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) ==
           MAP_FAILED);
    ASSERT(ftruncate(fd, 0) < 0);
    ASSERT(ftruncate(fd, 20000) < 0);
    p = mmap(NULL, 10000, PROT_READ, MAP_SHARED, fd, 0);
    ASSERT(p != MAP_FAILED);
    ASSERT(memcmp(p, data, sizeof(data)) == 0);
    munmap(p, 10000);
    /* Only listed tasks get the fd. */
    v = NULL;
    prun__segset_child_done(s, &c);
    ASSERT_EQ(prun__segset_child(s, 1, &c, &err), 0);
    ASSERT_EQ(c.nfds, 0);
    ASSERT(env_get(&c, "PARALLELRUN_SEGMENT_DATA") == v);
    prun__segset_child_done(s, &c);
    prun__segset_free(s);
    prun__job_free(job);
}

static void test_writable_shared(void)
{
    struct prun_job *job;
    struct prun_segset *s = NULL;
    struct prun_segchild c;
    struct prun_err err;
    unsigned char *a, *b;
    size_t i;
    int fd, zero = 1;

    ASSERT((job = load("segments:\n  res: {size: 1MiB, writable: true, "
                       "dtype: float64, shape: [131072]}\n"
                       "tasks:\n  a: {run: x, segments: [res]}\n")) != NULL);
    ASSERT_EQ(prun__segset_new(job, "r2", PRUN_HUGE_AUTO, &s, &err), 0);
    ASSERT_EQ(prun__segset_child(s, 0, &c, &err), 0);
    ASSERT_EQ(c.nfds, 1);
    fd = c.fds[0];
    ASSERT_STREQ(env_get(&c, "PARALLELRUN_SEGMENT_RES_SIZE"), "1048576");
    ASSERT_STREQ(env_get(&c, "PARALLELRUN_SEGMENT_RES_WRITABLE"), "1");
    ASSERT_STREQ(env_get(&c, "PARALLELRUN_SEGMENT_RES_SHAPE"), "131072");
    a = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    b = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT(a != MAP_FAILED && b != MAP_FAILED);
    for (i = 0; i < (1u << 20); i++)
        zero &= a[i] == 0;
    ASSERT(zero);
    a[12345] = 42;
    ASSERT_EQ(b[12345], 42);
    /* Resizing is sealed: a shrink would SIGBUS every other child. */
    ASSERT(ftruncate(fd, 4096) < 0);
    munmap(a, 1 << 20);
    munmap(b, 1 << 20);
    prun__segset_child_done(s, &c);
    prun__segset_free(s);
    prun__job_free(job);
}

static void test_npy(void)
{
    unsigned char buf[384];
    uint64_t shape[PRUN_SEGMENT_MAX_DIMS];
    char dtype[PRUN__DTYPE_MAX], path[128], yaml[256];
    size_t ndim = 0, hdr = 0;
    struct prun_job *job;
    struct prun_segset *s = NULL;
    struct prun_segchild c;
    struct prun_err err;
    const char *sdict = "{'descr': [('chr', 'S10'), ('pos', '<i4')], "
                        "'fortran_order': False, 'shape': (7,), }";
    char structured[256];

    npy_header(buf, 1000);
    ASSERT_EQ(
        prun__npy_parse(buf, 128, dtype, sizeof(dtype), shape, &ndim, &hdr), 0);
    ASSERT_STREQ(dtype, "<f8");
    ASSERT_EQ(ndim, 2);
    ASSERT_EQ(shape[0], 1000);
    ASSERT_EQ(shape[1], 3);
    ASSERT_EQ(hdr, 128);
    ASSERT_EQ(prun__npy_parse("not npy at all", 14, dtype, sizeof(dtype), shape,
                  &ndim, &hdr),
        -1);
    memcpy(structured, "\x93NUMPY\x01\x00", 8);
    structured[8] = (char)strlen(sdict);
    structured[9] = 0;
    memcpy(structured + 10, sdict, strlen(sdict) + 1);
    ASSERT_EQ(prun__npy_parse(structured, 10 + strlen(sdict), dtype,
                  sizeof(dtype), shape, &ndim, &hdr),
        0);
    ASSERT_STREQ(dtype, "[('chr', 'S10'), ('pos', '<i4')]");
    ASSERT_EQ(ndim, 1);
    ASSERT_EQ(shape[0], 7);

    /* The runner fills DTYPE and SHAPE from the header. */
    memset(buf + 128, 0, 192);
    npy_header(buf, 8);
    snprintf(path, sizeof(path), "%s/a.npy", tmpdir);
    write_file(path, buf, 128 + 8 * 3 * 8);
    snprintf(yaml, sizeof(yaml),
        "segments:\n  arr: {file: %s}\ntasks:\n  a: {run: x, segments: "
        "[arr]}\n",
        path);
    ASSERT((job = load(yaml)) != NULL);
    ASSERT_EQ(prun__segset_new(job, "r3", PRUN_HUGE_NEVER, &s, &err), 0);
    ASSERT_EQ(prun__segset_child(s, 0, &c, &err), 0);
    ASSERT_STREQ(env_get(&c, "PARALLELRUN_SEGMENT_ARR_DTYPE"), "<f8");
    ASSERT_STREQ(env_get(&c, "PARALLELRUN_SEGMENT_ARR_SHAPE"), "8,3");
    ASSERT_STREQ(env_get(&c, "PARALLELRUN_SEGMENT_ARR_SIZE"), "320");
    prun__segset_child_done(s, &c);
    prun__segset_free(s);
    prun__job_free(job);

    ASSERT_EQ(prun__shape_parse("(3, 4)", shape, &ndim), 0);
    ASSERT_EQ(ndim, 2);
    ASSERT_EQ(prun__shape_parse("", shape, &ndim), 0);
    ASSERT_EQ(ndim, 0);
    ASSERT_EQ(prun__shape_parse("3,x", shape, &ndim), -1);
}

static void test_missing_file(void)
{
    struct prun_job *job;
    struct prun_segset *s = NULL;
    struct prun_err err;
    char yaml[512];

    snprintf(yaml, sizeof(yaml),
        "segments:\n  d: {file: %s/nope.bin}\ntasks:\n  a: {run: x, "
        "segments: [d]}\n",
        tmpdir);
    ASSERT((job = load(yaml)) != NULL);
    ASSERT_EQ(
        prun__segset_new(job, "r4", PRUN_HUGE_NEVER, &s, &err), PRUN_EINVAL);
    ASSERT(s == NULL);
    ASSERT_CONTAINS(err.msg, "s.yaml:2:3: segment 'd': cannot open '");
    ASSERT_CONTAINS(err.msg, "nope.bin': No such file or directory");
    prun__job_free(job);
}

/* A file made by an earlier task is loaded when its first user starts. */
static void test_deferred_file(void)
{
    struct prun_job *job;
    struct prun_segset *s = NULL;
    struct prun_segchild c;
    struct prun_err err;
    char yaml[512], path[128];

    snprintf(path, sizeof(path), "%s/later.bin", tmpdir);
    unlink(path);
    snprintf(yaml, sizeof(yaml),
        "segments:\n  d: {file: %s}\ntasks:\n  gen: {run: x}\n"
        "  use: {run: y, needs: [gen], segments: [d]}\n",
        path);
    ASSERT((job = load(yaml)) != NULL);
    ASSERT_EQ(prun__segset_new(job, "r5", PRUN_HUGE_NEVER, &s, &err), 0);
    write_file(path, "hello", 5);
    ASSERT_EQ(prun__segset_child(s, 1, &c, &err), 0);
    ASSERT_EQ(c.nfds, 1);
    ASSERT_STREQ(env_get(&c, "PARALLELRUN_SEGMENT_D_SIZE"), "5");
    prun__segset_child_done(s, &c);
    prun__segset_free(s);
    prun__job_free(job);
}

static void test_published(void)
{
    struct prun_job *job;
    struct prun_segset *s = NULL;
    struct prun_segchild c;
    struct prun_segment seg;
    struct prun_err err;
    const char *const *env;
    char dir[256], path[300];
    uint64_t shape[2] = {2, 3};
    double vals[6] = {1, 2, 3, 4, 5, 6};
    struct stat st;

    ASSERT(
        (job = load("segments:\n  out: {published: true}\n"
                    "tasks:\n  p: {run: x}\n"
                    "  q: {run: y, needs: [p], segments: [out]}\n")) != NULL);
    ASSERT_EQ(job->segs[0].published, 1);
    ASSERT_EQ(prun__segset_new(job, "r6", PRUN_HUGE_NEVER, &s, &err), 0);
    ASSERT_EQ(prun__segset_env_all(s, &env), 1);
    snprintf(dir, sizeof(dir), "%s/parallelrun-r6", base);
    snprintf(path, sizeof(path), "PARALLELRUN_SHM_DIR=%s", dir);
    ASSERT_STREQ(env[0], path);
    ASSERT_EQ(stat(dir, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/owner", dir);
    ASSERT_EQ(stat(path, &st), 0);

    /* Not published yet. */
    ASSERT_EQ(prun__segset_child(s, 1, &c, &err), PRUN_ENOTFOUND);
    ASSERT_STREQ(
        err.msg, "segment 'out' was not published (by a task this one needs?)");

    setenv("PARALLELRUN_SHM_DIR", dir, 1);
    ASSERT_EQ(
        prun_segment_publish("out", vals, sizeof(vals), "<f8", shape, 2, &err),
        0);
    ASSERT_EQ(prun_segment_publish("bad-name", vals, 8, NULL, NULL, 0, &err),
        PRUN_EINVAL);
    ASSERT_EQ(prun__segset_child(s, 1, &c, &err), 0);
    ASSERT_EQ(c.nfds, 1);
    ASSERT_STREQ(env_get(&c, "PARALLELRUN_SEGMENT_OUT_SIZE"), "48");
    ASSERT_STREQ(env_get(&c, "PARALLELRUN_SEGMENT_OUT_DTYPE"), "<f8");
    ASSERT_STREQ(env_get(&c, "PARALLELRUN_SEGMENT_OUT_SHAPE"), "2,3");
    ASSERT_EQ(fcntl(c.fds[0], F_GETFL) & O_ACCMODE, O_RDONLY);
    prun__segset_child_done(s, &c);
    ASSERT(c.priv == NULL);

    /* A child attaches it by name. */
    ASSERT_EQ(prun_segment_attach("out", &seg, &err), 0);
    ASSERT_EQ(seg.size, 48);
    ASSERT_EQ(seg.writable, 0);
    ASSERT_STREQ(seg.dtype, "<f8");
    ASSERT_EQ(seg.ndim, 2);
    ASSERT_EQ(seg.shape[1], 3);
    ASSERT(((const double *)seg.data)[5] == 6.0);
    prun_segment_detach(&seg);
    ASSERT_EQ(prun_segment_attach("nothere", &seg, &err), PRUN_ENOTFOUND);
    ASSERT_CONTAINS(err.msg, "'nothere'");
    unsetenv("PARALLELRUN_SHM_DIR");

    prun__segset_free(s);
    ASSERT(stat(dir, &st) < 0 && errno == ENOENT);
    prun__job_free(job);
}

/* Attaching through the environment, as a child does. */
static void test_attach_env(void)
{
    struct prun_job *job;
    struct prun_segset *s = NULL;
    struct prun_segchild c;
    struct prun_segment seg;
    struct prun_err err;
    size_t i;

    ASSERT((job = load("segments:\n  w: {size: 64KiB, writable: true}\n"
                       "tasks:\n  a: {run: x, segments: [w]}\n")) != NULL);
    ASSERT_EQ(prun__segset_new(job, "r7", PRUN_HUGE_NEVER, &s, &err), 0);
    ASSERT_EQ(prun__segset_child(s, 0, &c, &err), 0);
    for (i = 0; i < c.nenv; i++)
        putenv((char *)c.env[i]);
    ASSERT_EQ(prun_segment_attach("w", &seg, &err), 0);
    ASSERT_EQ(seg.size, 65536);
    ASSERT_EQ(seg.writable, 1);
    ((char *)seg.data)[100] = 7;
    prun_segment_detach(&seg);
    ASSERT_EQ(seg.fd, -1);
    unsetenv("PARALLELRUN_SEGMENT_W");
    unsetenv("PARALLELRUN_SEGMENT_W_SIZE");
    unsetenv("PARALLELRUN_SEGMENT_W_WRITABLE");
    prun__segset_child_done(s, &c);
    prun__segset_free(s);
    prun__job_free(job);
}

static void make_run_dir(const char *id, pid_t pid, unsigned long long st)
{
    char path[256], line[400], host[256];

    gethostname(host, sizeof(host));
    snprintf(path, sizeof(path), "%s/parallelrun-%s", base, id);
    mkdir(path, 0700);
    snprintf(line, sizeof(line), "%d %llu %s\n", (int)pid, st, host);
    snprintf(path, sizeof(path), "%s/parallelrun-%s/owner", base, id);
    write_file(path, line, strlen(line));
    snprintf(path, sizeof(path), "%s/parallelrun-%s/seg", base, id);
    write_file(path, "data", 4);
}

static unsigned long long my_starttime(void)
{
    char buf[1024], *p;
    unsigned long long v = 0;
    int fd = open("/proc/self/stat", O_RDONLY), f;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);

    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    p = strrchr(buf, ')');
    for (f = 2; f < 22 && p; f++)
        p = strchr(p + 1, ' ');
    if (p)
        v = strtoull(p + 1, NULL, 10);
    return v;
}

static void test_gc(void)
{
    struct prun_err err;
    struct stat st;
    char path[256];
    unsigned removed = 99;
    pid_t dead = fork();

    if (dead == 0)
        _exit(0);
    waitpid(dead, NULL, 0);
    make_run_dir("dead", dead, 12345);
    make_run_dir("live", getpid(), my_starttime());
    /* Our pid, but another start time: the pid was reused. */
    make_run_dir("reused", getpid(), my_starttime() + 1);
    ASSERT_EQ(prun__segment_gc(&removed, &err), 0);
    ASSERT_EQ(removed, 2);
    snprintf(path, sizeof(path), "%s/parallelrun-dead", base);
    ASSERT(stat(path, &st) < 0);
    snprintf(path, sizeof(path), "%s/parallelrun-reused", base);
    ASSERT(stat(path, &st) < 0);
    snprintf(path, sizeof(path), "%s/parallelrun-live/seg", base);
    ASSERT_EQ(stat(path, &st), 0);
    ASSERT_EQ(prun__segment_gc(&removed, &err), 0);
    ASSERT_EQ(removed, 0);
    snprintf(path, sizeof(path), "%s/parallelrun-live/seg", base);
    unlink(path);
    snprintf(path, sizeof(path), "%s/parallelrun-live/owner", base);
    unlink(path);
    snprintf(path, sizeof(path), "%s/parallelrun-live", base);
    rmdir(path);
}

/* A full tmpfs: a clean ENOSPC error from fallocate, never SIGBUS. */
static void test_enospc(void)
{
    char mnt[128], run[200];
    static char big[2 << 20];
    struct prun_err err;
    int rc;

    snprintf(mnt, sizeof(mnt), "%s/tiny", tmpdir);
    mkdir(mnt, 0700);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m") < 0) {
        printf("# cannot mount a tmpfs (%s)\n", strerror(errno));
        rmdir(mnt);
        UNIT_SKIP("not root or no tmpfs");
    }
    snprintf(run, sizeof(run), "%s/parallelrun-x", mnt);
    mkdir(run, 0700);
    setenv("PARALLELRUN_SHM_DIR", run, 1);
    rc = prun_segment_publish("big", big, sizeof(big), NULL, NULL, 0, &err);
    unsetenv("PARALLELRUN_SHM_DIR");
    umount2(mnt, MNT_DETACH);
    rmdir(mnt);
    ASSERT_EQ(rc, PRUN_ESYS);
    ASSERT_EQ(err.sys_errno, ENOSPC);
    ASSERT_CONTAINS(err.msg, "cannot publish segment 'big' (2097152 bytes) in");
    ASSERT_CONTAINS(err.msg, "No space left on device");
}

int main(void)
{
    char cmd[128];

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_segment.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return 1;
    snprintf(base, sizeof(base), "%s/shm", tmpdir);
    mkdir(base, 0700);
    setenv("PARALLELRUN_SHM_BASE", base, 1);
    unsetenv("PARALLELRUN_SHM_DIR");

    RUN(test_file_segment_sealed);
    RUN(test_writable_shared);
    RUN(test_npy);
    RUN(test_missing_file);
    RUN(test_deferred_file);
    RUN(test_published);
    RUN(test_attach_env);
    RUN(test_gc);
    RUN(test_enospc);

    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", tmpdir);
    return unit_done();
}
