/* SPDX-License-Identifier: MIT */
/*
 * segment_publish: the engine behind publishing a segment from a child
 * (prun_segment_create/commit, prun_segment_publish, `parallelrun segment
 * publish`): checks of name, dtype and shape, space reserved up front (a
 * full /dev/shm is an error, never SIGBUS), an unnamed file linked into
 * the run directory only once complete, and the registration in the run's
 * Redis keys when there is a Redis to talk to.
 */
#include "segment.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coord_sync.h"

/* ---- publishing (the child side's engine; see api_segment.c) ---- */

static int dtype_ok(const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return i < PRUN__DTYPE_MAX;
}

/*
 * Names reach children upper-cased (PARALLELRUN_SEGMENT_<NAME>), so two
 * segments whose names differ only in case would be one variable: refuse
 * a name that differs only in case from a published one.
 */
static int pub_case_check(
    const char *dir, const char *name, struct prun_err *err)
{
    size_t n = strlen(name);
    struct dirent *e;
    DIR *d;
    int rc = 0;

    if ((d = opendir(dir)) == NULL)
        return 0; /* creating the segment will say what is wrong */
    while (rc == 0 && (e = readdir(d)) != NULL) {
        size_t m = strlen(e->d_name);
        if (m == n + 5 && strcmp(e->d_name + n, ".meta") == 0 &&
            strncasecmp(e->d_name, name, n) == 0 &&
            strncmp(e->d_name, name, n) != 0)
            rc = prun__err_set(err, PRUN_EINVAL,
                "cannot publish segment '%s': segment '%.*s' was published "
                "in this run and the names differ only in case (both would "
                "be PARALLELRUN_SEGMENT_<NAME in upper case>)",
                name, (int)n, e->d_name);
    }
    closedir(d);
    return rc;
}

/* The checks every way of publishing makes; *dirp: the run directory. */
static int pub_check(const char *name, const char *dtype, size_t ndim,
    const char **dirp, struct prun_err *err)
{
    const char *dir = getenv("PARALLELRUN_SHM_DIR");
    int rc;

    if (!prun__segment_name_ok(name))
        return prun__err_set(err, PRUN_EINVAL,
            "invalid segment name '%.64s' (use letters, digits and '_', not "
            "starting with a digit, at most 64)",
            name ? name : "");
    if (strcmp(name, "owner") == 0)
        return prun__err_set(
            err, PRUN_EINVAL, "segment name 'owner' is reserved");
    if (dtype != NULL && !dtype_ok(dtype))
        return prun__err_set(err, PRUN_EINVAL, "invalid dtype for '%s'", name);
    if (ndim > PRUN_SEGMENT_MAX_DIMS)
        return prun__err_set(err, PRUN_EINVAL,
            "segment '%s': at most %d dimensions", name, PRUN_SEGMENT_MAX_DIMS);
    if (dir == NULL || dir[0] == '\0')
        return prun__err_set(err, PRUN_EINVAL,
            "cannot publish segment '%s': not inside a parallelrun run "
            "(PARALLELRUN_SHM_DIR is not set)",
            name);
    if ((rc = pub_case_check(dir, name, err)) < 0)
        return rc;
    *dirp = dir;
    return 0;
}

/* Reserves size bytes of fd: a full tmpfs is an error now, not a SIGBUS. */
static int pub_reserve(int fd, size_t size)
{
    if (size == 0 || fallocate(fd, 0, 0, (off_t)size) == 0)
        return 0;
    if (errno == EOPNOTSUPP &&
        (errno = posix_fallocate(fd, 0, (off_t)size)) == 0)
        return 0;
    return -1;
}

/*
 * The data file of segment name is at tmp: writes NAME.meta beside it,
 * then renames the data, then the meta (readers start from NAME.meta),
 * and registers the segment in Redis. On failure tmp is left to the caller.
 */
static int pub_finish(const char *dir, const char *name, const char *tmp,
    size_t size, const char *dtype, const uint64_t *shape, size_t ndim,
    struct prun_err *err)
{
    char mtmp[PATH_MAX], path[PATH_MAX], mpath[PATH_MAX];
    char shp[PRUN_SEGMENT_MAX_DIMS * 21];
    struct prun_buf meta = {0};
    int mfd = -1, rc = 0;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(mpath, sizeof(mpath), "%s/%s.meta", dir, name);
    snprintf(mtmp, sizeof(mtmp), "%s/%s.%d.meta.tmp", dir, name, (int)getpid());
    prun__shape_fmt(shape, ndim, shp, sizeof(shp));
    if (prun__buf_printf(&meta, "size %zu\ndtype %s\nshape %s\npid %d\n", size,
            dtype ? dtype : "", shp, (int)getpid()) < 0) {
        rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
        goto fail;
    }
    mfd = open(mtmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (mfd < 0) {
        mtmp[0] = '\0';
        rc = prun__err_sys(err, "cannot publish segment '%s' in %s", name, dir);
        goto fail;
    }
    if (write(mfd, meta.data, meta.len) != (ssize_t)meta.len ||
        close(mfd) < 0) {
        mfd = -1;
        rc = prun__err_sys(err, "cannot publish segment '%s' in %s", name, dir);
        goto fail;
    }
    mfd = -1;
    if (rename(tmp, path) < 0 || rename(mtmp, mpath) < 0) {
        rc = prun__err_sys(err, "cannot publish segment '%s' in %s", name, dir);
        goto fail;
    }
    prun__buf_free(&meta);
    /*
     * status and other hosts' tools see it in Redis too; the files are
     * what attaching relies on, so a Redis hiccup does not fail publish.
     */
    prun__segment_register(name, path, size, dtype, shp, NULL);
    return 0;
fail:
    if (mfd >= 0)
        close(mfd);
    if (mtmp[0] != '\0')
        unlink(mtmp);
    prun__buf_free(&meta);
    return rc;
}

int prun__segment_publish_src(const char *name, const void *data, int srcfd,
    size_t size, const char *dtype, const uint64_t *shape, size_t ndim,
    struct prun_err *err)
{
    const char *dir = NULL;
    char tmp[PATH_MAX];
    int fd = -1, rc;
    size_t done = 0;

    if ((rc = pub_check(name, dtype, ndim, &dir, err)) < 0)
        return rc;
    snprintf(tmp, sizeof(tmp), "%s/%s.%d.tmp", dir, name, (int)getpid());
    fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return prun__err_sys(
            err, "cannot publish segment '%s' in %s", name, dir);
    if (pub_reserve(fd, size) < 0) {
        rc = prun__err_sys(err, "cannot publish segment '%s' (%zu bytes) in %s",
            name, size, dir);
        goto fail;
    }
    if (data != NULL) {
        while (done < size) {
            ssize_t w =
                pwrite(fd, (const char *)data + done, size - done, (off_t)done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                rc = prun__err_sys(err,
                    "cannot publish segment '%s' (%zu bytes) in %s", name, size,
                    dir);
                goto fail;
            }
            done += (size_t)w;
        }
    } else if (size > 0) {
        off_t off = lseek(srcfd, 0, SEEK_CUR);
        if (off < 0)
            off = 0;
        if (prun__segment_copy_fd(srcfd, &off, fd, size) < 0) {
            rc = prun__err_sys(
                err, "cannot publish segment '%s': cannot copy it", name);
            goto fail;
        }
    }
    /* Read-only from now on (for anyone but root). */
    fchmod(fd, 0400);
    if ((rc = pub_finish(dir, name, tmp, size, dtype, shape, ndim, err)) < 0)
        goto fail;
    close(fd);
    return 0;
fail:
    close(fd);
    unlink(tmp);
    return rc;
}

int prun_segment_create(const char *name, size_t size, struct prun_segment *seg,
    struct prun_err *err)
{
    struct prun_segment s;
    const char *dir = NULL;
    int fd = -1, rc;

    if ((rc = pub_check(name, NULL, 0, &dir, err)) < 0)
        return rc;
    memset(&s, 0, sizeof(s));
    snprintf(s.name, sizeof(s.name), "%s", name);
    /*
     * An unnamed file in the run directory: if this process dies before
     * prun_segment_commit, nothing is left behind.
     */
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        return prun__err_sys(
            err, "cannot publish segment '%s' in %s", name, dir);
    if (pub_reserve(fd, size) < 0) {
        rc = prun__err_sys(err, "cannot publish segment '%s' (%zu bytes) in %s",
            name, size, dir);
        goto fail;
    }
    if (size > 0) {
        s.data = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (s.data == MAP_FAILED) {
            s.data = NULL;
            rc = prun__err_sys(err, "cannot map segment '%s'", name);
            goto fail;
        }
    }
    s.size = size;
    s.writable = 1;
    s.fd = fd;
    *seg = s;
    return 0;
fail:
    close(fd);
    return rc;
}

int prun_segment_commit(struct prun_segment *seg, const char *dtype,
    const uint64_t *shape, size_t ndim, struct prun_err *err)
{
    const char *dir = NULL;
    char tmp[PATH_MAX], self[64];
    int rc;

    if (seg == NULL || seg->fd < 0 || !seg->writable)
        return prun__err_set(err, PRUN_EINVAL,
            "segment '%s' was not created with prun_segment_create or is "
            "already committed",
            seg ? seg->name : "");
    if ((rc = pub_check(seg->name, dtype, ndim, &dir, err)) < 0)
        return rc;
    snprintf(tmp, sizeof(tmp), "%s/%s.%d.tmp", dir, seg->name, (int)getpid());
    snprintf(self, sizeof(self), "/proc/self/fd/%d", seg->fd);
    fchmod(seg->fd, 0400);
    unlink(tmp);
    if (linkat(AT_FDCWD, self, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) < 0)
        return prun__err_sys(
            err, "cannot publish segment '%s' in %s", seg->name, dir);
    if ((rc = pub_finish(
             dir, seg->name, tmp, seg->size, dtype, shape, ndim, err)) < 0) {
        unlink(tmp);
        return rc;
    }
    /* Published segments are read-only, for the publisher too. */
    if (seg->data != NULL)
        mprotect(seg->data, seg->size, PROT_READ);
    seg->writable = 0;
    return 0;
}
