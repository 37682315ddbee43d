/* SPDX-License-Identifier: MIT */
/*
 * jobcheck: the checks of a loaded job against the file system that must
 * hold before anything starts, shared by `validate` and `run` so that both
 * refuse the same things: each `file:` segment is a readable regular file
 * whose dtype and shape (when given) match its size, a `size:` segment's
 * dtype and shape match that size, and each `lines:` source is something
 * that can be read. It never blocks and never reads an item source: a FIFO
 * is looked at with stat() and opened, if at all, without waiting. It is
 * not the loader (jobfile.c) and does not load segments (segment.c).
 */
#include "jobcheck.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "segment.h"

/* Bytes of one element of a numpy dtype, or 0 when it cannot be told. */
static uint64_t dtype_itemsize(const char *dt)
{
    static const struct {
        const char *name;
        unsigned size;
    } names[] = {{"bool", 1}, {"int8", 1}, {"uint8", 1}, {"byte", 1},
        {"ubyte", 1}, {"int16", 2}, {"uint16", 2}, {"short", 2}, {"ushort", 2},
        {"float16", 2}, {"half", 2}, {"int32", 4}, {"uint32", 4}, {"intc", 4},
        {"uintc", 4}, {"float32", 4}, {"single", 4}, {"int64", 8},
        {"uint64", 8}, {"int", 8}, {"uint", 8}, {"longlong", 8},
        {"ulonglong", 8}, {"float64", 8}, {"float", 8}, {"double", 8},
        {"complex64", 8}, {"float128", 16}, {"longdouble", 16},
        {"complex128", 16}, {"complex", 16}, {"complex256", 32}};
    unsigned long n;
    size_t i;
    char *end;

    if (strchr("<>|=", dt[0]) != NULL && dt[0] != '\0')
        dt++;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(dt, names[i].name) == 0)
            return names[i].size;
    /* Type code and byte count: "f8", "i4", "u1", "b1", "c16", "S10", "U3". */
    if (dt[0] == '\0' || strchr("biufcSaUV", dt[0]) == NULL || dt[1] < '0' ||
        dt[1] > '9')
        return 0;
    errno = 0;
    n = strtoul(dt + 1, &end, 10);
    if (errno != 0 || *end != '\0' || n == 0 || n > (1UL << 20))
        return 0;
    return dt[0] == 'U' ? 4 * (uint64_t)n : (uint64_t)n;
}

/*
 * Compares dtype x shape with the bytes the segment holds. Returns 0 when
 * they agree or cannot be compared (no dtype or no shape, or a dtype this
 * check does not know).
 */
static int check_shape(const struct prun_job *job, const struct prun_segdef *d,
    uint64_t bytes, const char *what, struct prun_err *err)
{
    uint64_t item, want;
    size_t i;

    if (d->dtype == NULL || d->ndim == 0 ||
        (item = dtype_itemsize(d->dtype)) == 0)
        return 0;
    want = item;
    for (i = 0; i < d->ndim; i++) {
        if (d->shape[i] != 0 && want > UINT64_MAX / d->shape[i])
            return prun__err_set(err, PRUN_EINVAL,
                "%s:%u:%u: segment '%s': dtype %s and its shape describe "
                "more than 2^64 bytes",
                job->path, d->pos.line, d->pos.col, d->name, d->dtype);
        want *= d->shape[i];
    }
    if (want == bytes)
        return 0;
    return prun__err_set(err, PRUN_EINVAL,
        "%s:%u:%u: segment '%s': dtype %s and its shape make %llu bytes, "
        "but %s %llu",
        job->path, d->pos.line, d->pos.col, d->name, d->dtype,
        (unsigned long long)want, what, (unsigned long long)bytes);
}

/* Every task listing segment si waits for another (see segment.c). */
static int made_by_earlier_task(const struct prun_job *job, size_t si)
{
    size_t t, j, users = 0;

    for (t = 0; t < job->ntasks; t++) {
        const struct prun_task *task = &job->tasks[t];
        for (j = 0; j < task->nsegs && task->segs[j] != si; j++)
            ;
        if (j == task->nsegs)
            continue;
        if (task->nneeds == 0)
            return 0;
        users++;
    }
    return users > 0;
}

static int check_file_segment(
    const struct prun_job *job, size_t si, struct prun_err *err)
{
    const struct prun_segdef *d = &job->segs[si];
    unsigned char peek[4096];
    char dtype[PRUN__DTYPE_MAX];
    uint64_t shape[PRUN_SEGMENT_MAX_DIMS], bytes;
    size_t ndim, hdr;
    struct stat st;
    ssize_t n;
    int fd = -1, rc = 0;

    if (stat(d->file, &st) < 0) {
        if (errno == ENOENT && made_by_earlier_task(job, si))
            return 0;
        return prun__err_set(err, PRUN_EINVAL,
            "%s:%u:%u: segment '%s': cannot open '%s': %s", job->path,
            d->pos.line, d->pos.col, d->name, d->file, strerror(errno));
    }
    if (!S_ISREG(st.st_mode))
        goto notreg;
    /*
     * Non-blocking: should the path have become a FIFO since stat(), the
     * open returns at once instead of waiting for a writer.
     */
    fd = open(d->file, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return prun__err_set(err, PRUN_EINVAL,
            "%s:%u:%u: segment '%s': cannot open '%s': %s", job->path,
            d->pos.line, d->pos.col, d->name, d->file, strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        goto notreg;
    }
    bytes = (uint64_t)st.st_size;
    n = pread(fd, peek, sizeof(peek), 0);
    if (n > 0 &&
        prun__npy_parse(
            peek, (size_t)n, dtype, sizeof(dtype), shape, &ndim, &hdr) == 0 &&
        hdr <= bytes)
        bytes -= hdr;
    close(fd);
    rc = check_shape(job, d, bytes, "the file holds", err);
    return rc;
notreg:
    return prun__err_set(err, PRUN_EINVAL,
        "%s:%u:%u: segment '%s': cannot open '%s': %s", job->path, d->pos.line,
        d->pos.col, d->name, d->file,
        S_ISDIR(st.st_mode) ? "Is a directory" : "not a regular file");
}

/* A lines: source from a path: it exists and is not a directory. */
static int check_lines(
    const struct prun_job *job, const struct prun_task *t, struct prun_err *err)
{
    const struct prun_foreach *f = &t->foreach;
    struct stat st;

    if (f->kind != PRUN_SRC_LINES || strcmp(f->path, "-") == 0)
        return 0;
    /* A file an earlier task writes may not exist yet. */
    if (stat(f->path, &st) < 0) {
        if (errno == ENOENT && t->nneeds > 0)
            return 0;
        return prun__err_set(err, PRUN_EINVAL, "%s:%u:%u: cannot open '%s': %s",
            job->path, f->pos.line, f->pos.col, f->path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode))
        return prun__err_set(err, PRUN_EINVAL,
            "%s:%u:%u: cannot open '%s': Is a directory", job->path,
            f->pos.line, f->pos.col, f->path);
    return 0;
}

int prun__job_check_files(const struct prun_job *job, struct prun_err *err)
{
    size_t i;
    int rc;

    for (i = 0; i < job->nsegs; i++) {
        const struct prun_segdef *d = &job->segs[i];

        if (d->file != NULL)
            rc = check_file_segment(job, i, err);
        else if (!d->published)
            rc = check_shape(job, d, d->size, "'size' is", err);
        else
            rc = 0;
        if (rc < 0)
            return rc;
    }
    for (i = 0; i < job->ntasks; i++)
        if ((rc = check_lines(job, &job->tasks[i], err)) < 0)
            return rc;
    return 0;
}
