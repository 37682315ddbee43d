/* SPDX-License-Identifier: MIT */
/*
 * segment_load: a segment's memory, made once by the runner. A `file:`
 * segment is copied into a memfd (in the kernel where it can be, through a
 * mapping advised for huge pages when they are wanted) and sealed against
 * writes and resizes; with `copy: false` it is the file's own fd instead.
 * For a queue worker (g->hostcache) the copy is the host cache's entry
 * for the file's content (segcache.c), shared by the workers of the host
 * and later runs; where the cache cannot be used, a memfd as above.
 * A `size:` segment is a zero-filled memfd, sealed against resizes only.
 * The dtype and shape come from the job file, else from a .npy header.
 * Also the copy loop publishing shares (prun__segment_copy_fd).
 *
 * This module is not the set of a run's segments, what children inherit,
 * the run directory or gc (segment.c).
 */
#include "segment_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "segcache.h"

#define COPY_CHUNK ((size_t)128 << 10)

/*
 * Copies size bytes from in (at its offset *off) to out (at its current
 * offset). Measured on Linux 6.18 for a 1 GiB file in the page cache into
 * a memfd: copy_file_range fails at once with EXDEV (a different
 * filesystem), sendfile takes 0.41-0.43 s, a read/write loop with 128 KiB
 * (cp's size) 0.41-0.46 s and with 1 MiB 0.56-1.1 s, read() straight into
 * a mapping of the memfd 0.8-1.6 s (page faults). So: copy_file_range when
 * it works (same filesystem, in-kernel), else sendfile (no user copy),
 * else the read/write loop for what sendfile refuses.
 */
int prun__segment_copy_fd(int in, off_t *off, int out, uint64_t size)
{
    uint64_t done = 0;
    int mode = 0; /* 0 copy_file_range, 1 sendfile, 2 read/write */
    char *buf = NULL;

    while (done < size) {
        size_t want = size - done > 0x40000000 ? 0x40000000 : size - done;
        ssize_t n;

        if (mode == 0)
            n = copy_file_range(in, off, out, NULL, want, 0);
        else if (mode == 1)
            n = sendfile(out, in, off, want);
        else {
            ssize_t w = 0, r;
            if (buf == NULL && (buf = malloc(COPY_CHUNK)) == NULL)
                return -1;
            n = pread(in, buf, want < COPY_CHUNK ? want : COPY_CHUNK, *off);
            for (r = 0; n > 0 && r < n; r += w)
                if ((w = write(out, buf + r, (size_t)(n - r))) < 0)
                    break;
            if (n > 0 && w < 0) {
                n = -1;
            } else if (n > 0) {
                *off += n;
            }
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && done == 0 && mode < 2 &&
            (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
                errno == EOPNOTSUPP || errno == EBADF)) {
            mode++;
            continue;
        }
        if (n < 0) {
            free(buf);
            return -1;
        }
        if (n == 0) {
            free(buf);
            errno = ENODATA; /* the file shrank while we copied it */
            return -1;
        }
        done += (uint64_t)n;
    }
    free(buf);
    return 0;
}

int prun__seg_thp_allowed(void)
{
    char buf[128], *l, *r;
    ssize_t n;
    int fd = open("/sys/kernel/mm/transparent_hugepage/shmem_enabled",
        O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    if ((l = strchr(buf, '[')) == NULL || (r = strchr(l, ']')) == NULL)
        return 0;
    *r = '\0';
    return strcmp(l + 1, "never") != 0 && strcmp(l + 1, "deny") != 0;
}

/* A memfd numbered >= 3, so it cannot collide with a child's stdio. */
static int new_memfd(const char *name)
{
    char label[80];
    int fd, hi;

    snprintf(label, sizeof(label), "parallelrun:%s", name);
    fd = memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd >= 0 && fd < 3) {
        hi = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        close(fd);
        fd = hi;
    }
    return fd;
}

/*
 * With transparent huge pages wanted, the data goes in through a mapping
 * advised MADV_HUGEPAGE: with shmem_enabled=advise that is what makes the
 * kernel allocate huge pages for the file at all.
 */
static int fill_huge(int in, int out, uint64_t size)
{
    uint64_t done = 0;
    char *p;

    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, out, 0);
    if (p == MAP_FAILED)
        return -1;
    madvise(p, size, MADV_HUGEPAGE);
    while (done < size) {
        size_t want = size - done > (64u << 20) ? 64u << 20 : size - done;
        ssize_t n = pread(in, p + done, want, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = ENODATA;
            munmap(p, size);
            return -1;
        }
        done += (uint64_t)n;
    }
    return munmap(p, size);
}

/*
 * Opens a `file:` segment's file (a regular file only) into *in, with its
 * stat in *st.
 */
static int open_source(const struct prun_job *job, const struct prun_segdef *d,
    int *in, struct stat *st, struct prun_err *err)
{
    int fd = open(d->file, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return prun__err_set(err, PRUN_EINVAL,
            "%s:%u:%u: segment '%s': cannot open '%s': %s", job->path,
            d->pos.line, d->pos.col, d->name, d->file, strerror(errno));
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
        int rc = prun__err_set(err, PRUN_EINVAL,
            "%s:%u:%u: segment '%s': cannot open '%s': %s", job->path,
            d->pos.line, d->pos.col, d->name, d->file,
            S_ISDIR(st->st_mode) ? "Is a directory" : "not a regular file");
        close(fd);
        return rc;
    }
    *in = fd;
    return 0;
}

/*
 * copy: false: children open the file itself through the runner's fd
 * (read-only), so they share its page cache and nothing is loaded. The fd
 * pins the inode: a file replaced by rename during the run does not
 * affect it; one rewritten in place does. It is moved above the stdio
 * numbers (*in is replaced, or closed and -1 on failure).
 */
static int keep_file_fd(
    const struct prun_segdef *d, int *in, struct prun_err *err)
{
    int fd;

    if (*in >= 3)
        return 0;
    fd = fcntl(*in, F_DUPFD_CLOEXEC, 3);
    close(*in);
    *in = fd;
    if (fd < 0)
        return prun__err_sys(err, "segment '%s': fcntl", d->name);
    return 0;
}

/*
 * The file's g->size bytes copied from in into a new memfd (*out), then
 * sealed against writes and resizes.
 */
static int copy_sealed(const struct prun_job *job, const struct seg *g, int in,
    int *out, struct prun_err *err)
{
    const struct prun_segdef *d = g->def;
    off_t off = 0;
    int fd, rc;

    if ((fd = new_memfd(d->name)) < 0)
        return prun__err_sys(err, "segment '%s': memfd_create", d->name);
    if (ftruncate(fd, (off_t)g->size) < 0) {
        rc = prun__err_sys(err,
            "segment '%s': cannot hold %" PRIu64 " bytes in memory", d->name,
            g->size);
        goto fail;
    }
    if (g->size > 0 &&
        (g->huge ? fill_huge(in, fd, g->size)
                 : prun__segment_copy_fd(in, &off, fd, g->size)) < 0) {
        rc = prun__err_sys(err, "%s:%u:%u: segment '%s': cannot load '%s'",
            job->path, d->pos.line, d->pos.col, d->name, d->file);
        goto fail;
    }
    if (fcntl(fd, F_ADD_SEALS,
            F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        rc = prun__err_sys(err, "segment '%s': cannot seal it", d->name);
        goto fail;
    }
    *out = fd;
    return 0;
fail:
    close(fd);
    return rc;
}

/*
 * The dtype and shape: the job file's, and where it says nothing, a .npy
 * file's header (read from in).
 */
static void describe_file(struct seg *g, int in)
{
    const struct prun_segdef *d = g->def;
    unsigned char peek[PRUN__NPY_PEEK];
    char dtype[PRUN__DTYPE_MAX];
    uint64_t shape[PRUN_SEGMENT_MAX_DIMS];
    size_t ndim = 0, hdr;
    ssize_t np;

    if (d->dtype != NULL)
        snprintf(g->dtype, sizeof(g->dtype), "%s", d->dtype);
    if (d->ndim > 0)
        prun__shape_fmt(d->shape, d->ndim, g->shape, sizeof(g->shape));
    if ((d->dtype == NULL || d->ndim == 0) &&
        (np = pread(in, peek, sizeof(peek), 0)) > 0 &&
        prun__npy_parse(
            peek, (size_t)np, dtype, sizeof(dtype), shape, &ndim, &hdr) == 0) {
        if (d->dtype == NULL)
            memcpy(g->dtype, dtype, sizeof(g->dtype));
        if (d->ndim == 0)
            prun__shape_fmt(shape, ndim, g->shape, sizeof(g->shape));
    }
}

int prun__seg_load_file(
    const struct prun_job *job, struct seg *g, struct prun_err *err)
{
    const struct prun_segdef *d = g->def;
    struct stat st;
    int in = -1, fd = -1, rc;

    if ((rc = open_source(job, d, &in, &st, err)) < 0)
        return rc;
    g->size = (uint64_t)st.st_size;
    if (d->nocopy) {
        if ((rc = keep_file_fd(d, &in, err)) < 0)
            return rc;
        fd = in;
        g->mapped = 1;
    } else if (g->hostcache &&
               prun__segcache_get(in, g->size, &fd, g->cache, NULL) == 0) {
        /* The entry's pages come from the shm mount, not our madvise. */
        g->huge = 0;
    } else if ((rc = copy_sealed(job, g, in, &fd, err)) < 0) {
        close(in);
        return rc;
    }
    describe_file(g, in);
    if (!g->mapped)
        close(in);
    g->fd = fd;
    g->deferred = 0;
    return 0;
}

int prun__seg_load_writable(struct seg *g, struct prun_err *err)
{
    const struct prun_segdef *d = g->def;
    int fd = new_memfd(d->name);

    if (fd < 0)
        return prun__err_sys(err, "segment '%s': memfd_create", d->name);
    g->size = d->size;
    /* Sealed against resizing: a child that shrank it would SIGBUS others. */
    if (ftruncate(fd, (off_t)d->size) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        int rc = prun__err_sys(err,
            "segment '%s': cannot create %" PRIu64 " bytes of shared memory",
            d->name, d->size);
        close(fd);
        return rc;
    }
    if (d->dtype != NULL)
        snprintf(g->dtype, sizeof(g->dtype), "%s", d->dtype);
    if (d->ndim > 0)
        prun__shape_fmt(d->shape, d->ndim, g->shape, sizeof(g->shape));
    g->fd = fd;
    return 0;
}
