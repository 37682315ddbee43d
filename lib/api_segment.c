/* SPDX-License-Identifier: MIT */
/*
 * api_segment: shared segments, child side (the "Shared segments" section
 * of parallelrun.h). A child attaches a segment the runner gave it
 * (PARALLELRUN_SEGMENT_<NAME>: /proc/RUNNER/fd/N, the runner's memfd, valid
 * in every descendant; /dev/fd/N to an inherited one works too) or
 * one another task published in the run directory ($PARALLELRUN_SHM_DIR),
 * and publishes its own there. Attaching is an open, an fstat and an mmap:
 * no copy, whatever the size. The runner side (loading, sealing, cleanup)
 * is segment.c; this file does not talk to Redis.
 */
#include "segment.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define HUGE_ALIGN ((size_t)2 << 20)

static const char *seg_getenv(const char *up, const char *suffix)
{
    char key[128];

    snprintf(key, sizeof(key), "PARALLELRUN_SEGMENT_%s%s", up, suffix);
    return getenv(key);
}

/*
 * Maps fd. With huge pages wanted the mapping starts on a 2 MiB boundary,
 * which is what lets the kernel map the segment's huge pages as such.
 */
static void *map_seg(int fd, size_t size, int writable, int huge)
{
    int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    char *p, *a;
    size_t head;

    if (!huge || size < HUGE_ALIGN)
        return mmap(NULL, size, prot, MAP_SHARED, fd, 0);
    p = mmap(NULL, size + HUGE_ALIGN, PROT_NONE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return MAP_FAILED;
    a = (char *)(((uintptr_t)p + HUGE_ALIGN - 1) &
                 ~(uintptr_t)(HUGE_ALIGN - 1));
    if (mmap(a, size, prot, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
        munmap(p, size + HUGE_ALIGN);
        return MAP_FAILED;
    }
    head = (size_t)(a - p);
    if (head > 0)
        munmap(p, head);
    /* The tail after the (page-rounded) mapping. */
    {
        size_t mapped = (size + 4095) & ~(size_t)4095;
        size_t tail = size + HUGE_ALIGN - head - mapped;
        if (tail > 0)
            munmap(a + mapped, tail);
    }
    madvise(a, size, MADV_HUGEPAGE);
    return a;
}

/*
 * Is fd (opened from path) still the segment the runner named? A regular
 * file or memfd of the announced size; anything else means the path now
 * names something else (a reused pid, a descriptor of another process).
 */
static int check_seg_fd(int fd, const char *name, const char *path,
    const char *want_size, struct prun_err *err)
{
    struct stat st;
    char *end;
    unsigned long long want;

    if (fstat(fd, &st) < 0)
        return prun__err_sys(err, "cannot attach segment '%s'", name);
    if (!S_ISREG(st.st_mode))
        return prun__err_set(err, PRUN_ENOTFOUND,
            "cannot attach segment '%s': %s is not a segment (a pipe or "
            "device: the path is only valid while its run holds the "
            "segment)",
            name, path);
    if (want_size != NULL && want_size[0] != '\0') {
        errno = 0;
        want = strtoull(want_size, &end, 10);
        if (errno == 0 && *end == '\0' &&
            (unsigned long long)st.st_size != want)
            return prun__err_set(err, PRUN_ENOTFOUND,
                "cannot attach segment '%s': %s has %lld bytes, not the "
                "segment's %llu (the path is only valid while its run holds "
                "the segment)",
                name, path, (long long)st.st_size, want);
    }
    /* Back to blocking mode: nothing else should see O_NONBLOCK. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return 0;
}

/*
 * A segment the runner gave this task: envpath (the value of
 * PARALLELRUN_SEGMENT_<UP>) opened into *out, and what the other
 * variables say in s (writable, shape), dtype (PRUN__DTYPE_MAX bytes) and
 * *huge.
 */
static int open_given(const char *name, const char *up, const char *envpath,
    struct prun_segment *s, char *dtype, int *huge, int *out,
    struct prun_err *err)
{
    const char *v;
    int fd, rc;

    v = seg_getenv(up, "_WRITABLE");
    s->writable = v != NULL && strcmp(v, "1") == 0;
    v = seg_getenv(up, "_HUGEPAGES");
    *huge = v != NULL && strcmp(v, "1") == 0;
    /* O_NONBLOCK: a path that now names a FIFO must not hang here. */
    fd = open(
        envpath, (s->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return prun__err_sys(err, "cannot attach segment '%s' (%s)%s", name,
            envpath, errno == ENOENT ? " (has its run ended?)" : "");
    if ((rc = check_seg_fd(fd, name, envpath, seg_getenv(up, "_SIZE"), err)) <
        0) {
        close(fd);
        return rc;
    }
    /* A sealed segment stays read-only whatever the environment says. */
    if (s->writable) {
        int seals = fcntl(fd, F_GET_SEALS);
        if (seals >= 0 && (seals & F_SEAL_WRITE))
            s->writable = 0;
    }
    if ((v = seg_getenv(up, "_DTYPE")) != NULL)
        snprintf(dtype, PRUN__DTYPE_MAX, "%s", v);
    if ((v = seg_getenv(up, "_SHAPE")) != NULL &&
        prun__shape_parse(v, s->shape, &s->ndim) < 0)
        s->ndim = 0;
    *out = fd;
    return 0;
}

/*
 * A segment another task published in the run directory: opened into
 * *out, its metadata in s (shape) and dtype (PRUN__DTYPE_MAX bytes).
 */
static int open_published(const char *name, const char *up,
    struct prun_segment *s, char *dtype, int *out, struct prun_err *err)
{
    const char *dir = getenv("PARALLELRUN_SHM_DIR");
    struct prun__segmeta m;
    char path[PATH_MAX];
    int fd, rc;

    if (dir == NULL || dir[0] == '\0')
        return prun__err_set(err, PRUN_ENOTFOUND,
            "segment '%s' is not attached to this task "
            "(PARALLELRUN_SEGMENT_%s is not set) and this is not a "
            "parallelrun run",
            name, up);
    if ((rc = prun__segmeta_read(dir, name, &m, err)) < 0) {
        if (rc == PRUN_ENOTFOUND)
            prun__err_set(err, PRUN_ENOTFOUND,
                "segment '%s' is not attached to this task and was not "
                "published in this run",
                name);
        return rc;
    }
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return prun__err_sys(err, "cannot attach segment '%s'", name);
    memcpy(dtype, m.dtype, PRUN__DTYPE_MAX);
    s->ndim = m.ndim;
    memcpy(s->shape, m.shape, sizeof(s->shape));
    *out = fd;
    return 0;
}

int prun_segment_attach(
    const char *name, struct prun_segment *seg, struct prun_err *err)
{
    struct prun_segment s;
    char up[80], dtype[PRUN__DTYPE_MAX] = "";
    const char *envpath;
    struct stat st;
    int fd = -1, huge = 0, rc;
    size_t i;

    memset(&s, 0, sizeof(s));
    s.fd = -1;
    if (!prun__segment_name_ok(name))
        return prun__err_set(
            err, PRUN_EINVAL, "invalid segment name '%.64s'", name ? name : "");
    snprintf(s.name, sizeof(s.name), "%s", name);
    for (i = 0; name[i] != '\0' && i + 1 < sizeof(up); i++)
        up[i] = (char)toupper((unsigned char)name[i]);
    up[i] = '\0';

    envpath = seg_getenv(up, "");
    if (envpath != NULL && envpath[0] != '\0')
        rc = open_given(name, up, envpath, &s, dtype, &huge, &fd, err);
    else
        rc = open_published(name, up, &s, dtype, &fd, err);
    if (rc < 0)
        return rc;
    if (fstat(fd, &st) < 0) {
        rc = prun__err_sys(err, "cannot attach segment '%s'", name);
        goto fail;
    }
    s.size = (size_t)st.st_size;
    if (s.size > 0) {
        s.data = map_seg(fd, s.size, s.writable, huge);
        if (s.data == MAP_FAILED) {
            s.data = NULL;
            rc = prun__err_sys(err, "cannot map segment '%s'", name);
            goto fail;
        }
    }
    if (dtype[0] == '\0' && s.ndim == 0 && s.data != NULL) {
        uint64_t shape[PRUN_SEGMENT_MAX_DIMS];
        size_t ndim, hdr;
        if (prun__npy_parse(s.data, s.size, dtype, sizeof(dtype), shape, &ndim,
                &hdr) == 0) {
            memcpy(s.shape, shape, sizeof(shape));
            s.ndim = ndim;
        }
    }
    /* A structured dtype does not fit the public struct: "" (unknown). */
    if (strlen(dtype) < sizeof(s.dtype))
        memcpy(s.dtype, dtype, strlen(dtype) + 1);
    s.fd = fd;
    *seg = s;
    return 0;
fail:
    close(fd);
    return rc;
}

int prun_segment_detach(struct prun_segment *seg)
{
    if (seg == NULL)
        return 0;
    if (seg->data != NULL)
        munmap(seg->data, seg->size);
    if (seg->fd >= 0)
        close(seg->fd);
    seg->data = NULL;
    seg->size = 0;
    seg->fd = -1;
    return 0;
}

int prun_segment_publish(const char *name, const void *data, size_t size,
    const char *dtype, const uint64_t *shape, size_t ndim, struct prun_err *err)
{
    struct prun_segment seg;
    int rc;

    if (data == NULL && size > 0)
        return prun__err_set(err, PRUN_EINVAL,
            "cannot publish segment '%s': no data", name ? name : "");
    if ((rc = prun_segment_create(name, size, &seg, err)) < 0)
        return rc;
    if (size > 0)
        memcpy(seg.data, data, size);
    rc = prun_segment_commit(&seg, dtype, shape, ndim, err);
    prun_segment_detach(&seg);
    return rc;
}
