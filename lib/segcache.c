/* SPDX-License-Identifier: MIT */
/*
 * segcache: the host cache of read-only file segments, so the queue
 * workers of one user on one host hold one copy of each content, and a
 * later run with the same content attaches it instead of loading the file
 * again (docs/work-queue.md "Segments").
 *
 * An entry is a file in BASE/parallelrun.cache.UID (mode 0700, this
 * user's, refused otherwise) named by the SHA-256 of its bytes, mode
 * 0400. It is made under a temporary name, filled while its bytes are
 * hashed again, and linked under its name only when that hash is the
 * name: an entry never holds other bytes than its name says, and a file
 * that changed gets a new name, so a stale copy is never attached. It is
 * not sealed (a file of a tmpfs mount cannot be; only memfds can): it is
 * read-only by its mode and by every fd given out being read-only.
 *
 * Hashing a big file costs more than copying it (SHA-256 in plain C reads
 * about 200 MB/s), so an entry may have a second name, its memo: the
 * source file's device, inode, size and modification and change times.
 * A file whose times say it is unchanged is attached by the memo without
 * being read. The change time moves with every write, so a changed file
 * has another memo; a file changed less than a second ago gets none (a
 * write within one tick of the clock would leave its times as they were).
 *
 * Lifetime, by flock(2). Every user holds LOCK_SH on its fd for as long
 * as it is attached (children that inherit the fd share that lock). To
 * let go, a user tries LOCK_EX|LOCK_NB: it gets it only when nobody else
 * holds the entry, and then unlinks the name if it still names the same
 * inode (a sweep removes the other name). A user that attaches opens the name,
 * takes LOCK_SH (waiting out a remover's brief LOCK_EX), and checks again that
 * the name is still that inode; if not, it starts over. A maker takes LOCK_SH
 * on its temporary file before filling it and keeps it across the link, so a
 * new entry is never unheld. Users killed with -9 drop their locks with
 * their fds: the next get, put or sweep on the host finds the entry
 * unheld and removes it, and a temporary file of a killed maker too. The
 * memory of an unlinked entry lives on for as long as someone maps it.
 *
 * This module is not the set of a run's segments (segment.c) or what a
 * child is given (the fd and the /proc path, as for a memfd).
 */
#include "segcache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "segment.h"

#define HASH_CHUNK ((size_t)1 << 20)
#define TRIES      8 /* attach/make rounds lost to concurrent removers */
#define TMP_PREFIX ".tmp."
#define MEMO_AGE   1000000000LL /* ns a file must be unchanged to be memoed */

static void dir_path(char *buf, size_t n)
{
    snprintf(buf, n, "%s/parallelrun.cache.%u", prun__shm_base(),
        (unsigned)geteuid());
}

/*
 * Opens the cache directory into *dfd, made first when create is set.
 * Refuses one that is not this user's or that others may enter: entries
 * are trusted to hold what their names say. PRUN_ENOTFOUND: none.
 */
static int open_dir(int create, int *dfd, struct prun_err *err)
{
    char path[PATH_MAX];
    struct stat st;
    int fd;

    dir_path(path, sizeof(path));
    if (create && mkdir(path, 0700) < 0 && errno != EEXIST)
        return prun__err_sys(err, "cannot create %s", path);
    fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return prun__err_set(err, PRUN_ENOTFOUND, "%s: no cache", path);
    if (fd < 0)
        return prun__err_sys(err, "cannot open %s", path);
    if (fstat(fd, &st) < 0 || st.st_uid != geteuid() ||
        (st.st_mode & 077) != 0) {
        close(fd);
        return prun__err_set(err, PRUN_ESYS,
            "%s is not this user's own private directory", path);
    }
    *dfd = fd;
    return 0;
}

/* The SHA-256 of size bytes of in from offset 0, in hex. */
static int hash_fd(int in, uint64_t size, char *hex, struct prun_err *err)
{
    unsigned char *buf = malloc(HASH_CHUNK), d[PRUN__SHA256_LEN];
    struct prun__sha256 c;
    uint64_t done = 0;

    if (buf == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    prun__sha256_init(&c);
    while (done < size) {
        size_t want = size - done < HASH_CHUNK ? size - done : HASH_CHUNK;
        ssize_t n = pread(in, buf, want, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            if (n == 0)
                errno = ENODATA; /* the file shrank */
            return prun__err_sys(err, "cannot read the file to hash it");
        }
        prun__sha256_update(&c, buf, (size_t)n);
        done += (uint64_t)n;
    }
    free(buf);
    prun__sha256_final(&c, d);
    prun__sha256_hex(d, hex);
    return 0;
}

/*
 * The memo's name for in's file, "k-DEV-INO-SIZE-MTIME-CTIME": a second
 * name of the entry holding its bytes, so a file seen before is not read
 * again to be hashed. The change time moves with every write, rename or
 * chmod, so a changed file never has the old name. "" (no memo) for a
 * file changed less than MEMO_AGE ago: a write within the same tick of
 * the clock would leave the times as they were (git's "racy" files).
 */
static void memo_name(int in, char *buf, size_t n)
{
    struct timespec now;
    struct stat st;
    long long age;

    buf[0] = '\0';
    if (fstat(in, &st) < 0 || clock_gettime(CLOCK_REALTIME, &now) < 0)
        return;
    age =
        ((long long)now.tv_sec - (long long)st.st_ctim.tv_sec) * 1000000000LL +
        (now.tv_nsec - st.st_ctim.tv_nsec);
    if (age < MEMO_AGE)
        return;
    snprintf(buf, n, "k-%llx-%llx-%llx-%lld.%09ld-%lld.%09ld",
        (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
        (unsigned long long)st.st_size, (long long)st.st_mtim.tv_sec,
        st.st_mtim.tv_nsec, (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
}

/* Whether name in dfd is still the inode fd is open on. */
static int still_named(int dfd, const char *name, int fd)
{
    struct stat a, b;

    return fstat(fd, &a) == 0 &&
           fstatat(dfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
           a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static int lock(int fd, int how)
{
    int rc;

    while ((rc = flock(fd, how)) < 0 && errno == EINTR)
        ;
    return rc;
}

/* fd moved above the stdio numbers (a child gets it at the same number). */
static int above_stdio(int fd)
{
    int hi;

    if (fd < 0 || fd >= 3)
        return fd;
    hi = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return hi;
}

/*
 * Attaches entry name if it exists: 1 with *fdp holding LOCK_SH, 0 when
 * it is not there (or was removed under us: start over).
 */
static int attach(
    int dfd, const char *name, uint64_t size, int *fdp, struct prun_err *err)
{
    struct stat st;
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0 && errno == ENOENT)
        return 0;
    if (fd < 0)
        return prun__err_sys(err, "cannot open cached segment %s", name);
    if (lock(fd, LOCK_SH) < 0) {
        close(fd);
        return prun__err_sys(err, "cannot lock cached segment %s", name);
    }
    if (!still_named(dfd, name, fd)) {
        close(fd);
        return 0;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size != size) {
        close(fd);
        return prun__err_set(err, PRUN_ESYS,
            "cached segment %s is not a file of %" PRIu64 " bytes", name, size);
    }
    if ((fd = above_stdio(fd)) < 0)
        return prun__err_sys(err, "fcntl");
    *fdp = fd;
    return 1;
}

/*
 * Copies size bytes of in into out, hashing them on the way; PRUN_EINVAL
 * when they do not hash to want (the file changed since it was hashed).
 */
static int copy_hashed(
    int in, int out, uint64_t size, const char *want, struct prun_err *err)
{
    unsigned char *buf = malloc(HASH_CHUNK), d[PRUN__SHA256_LEN];
    char got[PRUN__SHA256_HEX];
    struct prun__sha256 c;
    uint64_t done = 0;
    ssize_t n, w;

    if (buf == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    prun__sha256_init(&c);
    while (done < size) {
        size_t chunk = size - done < HASH_CHUNK ? size - done : HASH_CHUNK;
        if ((n = pread(in, buf, chunk, (off_t)done)) < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail;
        prun__sha256_update(&c, buf, (size_t)n);
        for (ssize_t off = 0; off < n; off += w) {
            w = pwrite(out, buf + off, (size_t)(n - off), (off_t)done + off);
            if (w < 0 && errno != EINTR)
                goto fail;
            if (w < 0)
                w = 0;
        }
        done += (uint64_t)n;
    }
    free(buf);
    prun__sha256_final(&c, d);
    prun__sha256_hex(d, got);
    if (strcmp(got, want) != 0)
        return prun__err_set(
            err, PRUN_EINVAL, "the file changed while it was being copied");
    return 0;
fail:
    if (n == 0)
        errno = ENODATA; /* the file shrank */
    free(buf);
    return prun__err_sys(err, "cannot copy the file into the cache");
}

/*
 * Makes entry name from in: 1 with *fdp holding LOCK_SH on it, 0 when
 * another maker won or a remover took the temporary file or the
 * directory (start over).
 */
static int make(int dfd, const char *name, int in, uint64_t size, int *fdp,
    struct prun_err *err)
{
    static unsigned seq;
    char tmp[64];
    int fd, rc;

    do {
        snprintf(tmp, sizeof(tmp), TMP_PREFIX "%ld.%u", (long)getpid(), seq++);
        fd = openat(
            dfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
    } while (fd < 0 && errno == EEXIST);
    if (fd < 0 && errno == ENOENT)
        return 0; /* the directory was removed: make it again */
    if (fd < 0)
        return prun__err_sys(err, "cannot create a cached segment");
    if (lock(fd, LOCK_SH) < 0) {
        rc = prun__err_sys(err, "cannot lock a cached segment");
        goto fail;
    }
    if (!still_named(dfd, tmp, fd)) {
        close(fd); /* swept before we held it: start over */
        return 0;
    }
    /* Space taken up front: a full shm is an error here, never a SIGBUS. */
    if (size > 0 && (rc = posix_fallocate(fd, 0, (off_t)size)) != 0) {
        errno = rc;
        rc = prun__err_sys(
            err, "cannot hold %" PRIu64 " bytes in the cache", size);
        goto fail;
    }
    if ((rc = copy_hashed(in, fd, size, name, err)) < 0)
        goto fail;
    if (linkat(dfd, tmp, dfd, name, 0) < 0) {
        rc = errno == EEXIST || errno == ENOENT
                 ? 0
                 : prun__err_sys(err, "cannot link cached segment %s", name);
        goto fail;
    }
    unlinkat(dfd, tmp, 0);
    /* The fd given out is read-only, like every other user's. */
    rc = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (rc < 0 || lock(rc, LOCK_SH) < 0) {
        int e = errno;
        if (rc >= 0)
            close(rc);
        close(fd);
        errno = e;
        return prun__err_sys(err, "cannot open cached segment %s", name);
    }
    close(fd); /* the new fd holds the entry now */
    if ((*fdp = above_stdio(rc)) < 0)
        return prun__err_sys(err, "fcntl");
    return 1;
fail:
    unlinkat(dfd, tmp, 0);
    close(fd);
    return rc;
}

/*
 * Removes entry (or temporary file) name if nobody holds it; fd is open
 * on it (ours, its shared lock dropped by the try). Returns 1 removed.
 */
static int drop_unheld(int dfd, const char *name, int fd)
{
    int rc = 0;

    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        if (still_named(dfd, name, fd))
            rc = unlinkat(dfd, name, 0) == 0;
        /*
         * Unlocked before the close: a child that inherited this open file
         * and outlives us would otherwise keep the exclusive lock, and an
         * attacher that opened the name before the unlink would wait on it.
         */
        flock(fd, LOCK_UN);
    }
    close(fd);
    return rc;
}

/*
 * The sweep over an open cache directory, calling cb (if not NULL) with
 * each removed path; returns how many it removed.
 */
static unsigned sweep_dir(
    int dfd, void (*cb)(const char *path, void *arg), void *arg)
{
    char dir[PATH_MAX], path[PATH_MAX + 256];
    unsigned count = 0;
    struct dirent *e;
    int scan;
    DIR *d;

    /* A directory stream of its own: dfd stays ours to use and close. */
    if ((scan = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return 0;
    if ((d = fdopendir(scan)) == NULL) {
        close(scan);
        return 0;
    }
    dir_path(dir, sizeof(dir));
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        int fd;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        fd = openat(
            dfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
            close(fd);
            continue;
        }
        if (!drop_unheld(dfd, e->d_name, fd))
            continue;
        count++;
        if (cb != NULL) {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            cb(path, arg);
        }
    }
    closedir(d);
    return count;
}

/* The cache directory removed if it is empty (ENOTEMPTY otherwise). */
static void remove_dir_if_empty(void)
{
    char path[PATH_MAX];

    dir_path(path, sizeof(path));
    rmdir(path);
}

/*
 * Attaches or makes the entry of in's bytes in dfd, by its memo if it has
 * one (*via then names it), else by the hash (hashed once into hex, kept
 * across rounds). As attach: 1 got it, 0 start over.
 */
static int get_in(int dfd, int in, uint64_t size, const char *memo, char *hex,
    const char **via, int *fdp, struct prun_err *err)
{
    char again[PRUN__SEGCACHE_NAME];
    int rc;

    if (memo[0] != '\0' && (rc = attach(dfd, memo, size, fdp, err)) != 0) {
        *via = memo;
        return rc;
    }
    if (hex[0] == '\0' && (rc = hash_fd(in, size, hex, err)) < 0)
        return rc;
    if ((rc = attach(dfd, hex, size, fdp, err)) == 0)
        rc = make(dfd, hex, in, size, fdp, err);
    *via = hex;
    /*
     * The memo names this entry only if the file did not change while it
     * was hashed (the same times after as before); the entry is held, so
     * the name it links cannot be removed under us.
     */
    if (rc == 1 && memo[0] != '\0') {
        memo_name(in, again, sizeof(again));
        if (strcmp(again, memo) == 0)
            linkat(dfd, hex, dfd, memo, 0);
    }
    return rc;
}

int prun__segcache_get(
    int in, uint64_t size, int *fdp, char *name, struct prun_err *err)
{
    char hex[PRUN__SHA256_HEX] = "", memo[PRUN__SEGCACHE_NAME];
    const char *via = hex;
    int dfd = -1, fd = -1, rc = 0, tries;

    memo_name(in, memo, sizeof(memo));
    for (tries = 0; rc == 0 && tries < TRIES; tries++) {
        if ((rc = open_dir(1, &dfd, err)) == PRUN_ENOTFOUND) {
            rc = 0; /* removed between mkdir and open: again */
            continue;
        }
        if (rc < 0)
            return rc;
        if ((rc = get_in(dfd, in, size, memo, hex, &via, &fd, err)) == 0)
            close(dfd);
    }
    if (rc == 0)
        return prun__err_set(err, PRUN_ESYS,
            "cached segment %s: removed under us %d times", via, TRIES);
    if (rc < 0) {
        close(dfd);
        return rc;
    }
    /* Ours is held now: what killed users left behind goes. */
    sweep_dir(dfd, NULL, NULL);
    close(dfd);
    snprintf(name, PRUN__SEGCACHE_NAME, "%s", via);
    *fdp = fd;
    return 0;
}

void prun__segcache_put(int fd, const char *name)
{
    int dfd = -1;

    if (fd < 0)
        return;
    if (open_dir(0, &dfd, NULL) < 0) {
        close(fd);
        return;
    }
    drop_unheld(dfd, name, fd);
    sweep_dir(dfd, NULL, NULL);
    close(dfd);
    remove_dir_if_empty();
}

int prun__segcache_sweep(void (*cb)(const char *path, void *arg), void *arg,
    unsigned *removed, struct prun_err *err)
{
    unsigned count = 0;
    int dfd = -1, rc;

    if ((rc = open_dir(0, &dfd, err)) == 0) {
        count = sweep_dir(dfd, cb, arg);
        close(dfd);
        remove_dir_if_empty();
    }
    if (removed != NULL)
        *removed = count;
    return rc == PRUN_ENOTFOUND ? 0 : rc;
}
