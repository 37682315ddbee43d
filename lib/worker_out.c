/* SPDX-License-Identifier: MIT */
/*
 * worker_out: what a queue worker sends back of its children's output.
 * The worker's output module writes each attempt's stdout and stderr to
 * results files in a private directory (so memory stays bounded however
 * much a child prints); when the attempt ends they are read back, cut at
 * PRUN_WOUT_MAX with a note, and removed, and the worker sends them with
 * the terminal record. It is not the run's side (exec_remote.c writes
 * them where a local run would).
 */
#include "worker_out.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int prun__wout_dir_new(char *dir, size_t n, struct prun_err *err)
{
    const char *tmp = getenv("TMPDIR");

    if (tmp == NULL || *tmp != '/')
        tmp = "/tmp";
    if ((size_t)snprintf(dir, n, "%s/parallelrun-worker.XXXXXX", tmp) >= n)
        return prun__err_set(err, PRUN_EINVAL, "TMPDIR is too long");
    if (mkdtemp(dir) == NULL)
        return prun__err_sys(err, "cannot create a directory in %s", tmp);
    return 0;
}

/* Removes dir's entries (depth 2 at most: RID/TASK/FILE) and dir. */
static void remove_tree(const char *dir, int depth)
{
    char path[4096];
    struct dirent *de;
    DIR *d = opendir(dir);

    if (d != NULL) {
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir,
                    de->d_name) >= sizeof(path))
                continue;
            if (unlink(path) < 0 && errno == EISDIR && depth > 0)
                remove_tree(path, depth - 1);
        }
        closedir(d);
    }
    rmdir(dir);
}

void prun__wout_dir_free(const char *dir)
{
    if (dir != NULL && dir[0] != '\0')
        remove_tree(dir, 2);
}

static void take_one(
    const char *path, const char *who, const char *what, struct prun_buf *b)
{
    char buf[65536];
    struct stat st;
    size_t got = 0;
    ssize_t r;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    if (fd < 0)
        return;
    while (got < PRUN_WOUT_MAX) {
        size_t want = PRUN_WOUT_MAX - got;

        r = read(fd, buf, want < sizeof(buf) ? want : sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (prun__buf_add(b, buf, (size_t)r) < 0)
            break;
        got += (size_t)r;
    }
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size > got)
        prun__buf_printf(b,
            "\n[parallelrun: %s cut at %u bytes of %llu by worker %s]\n", what,
            (unsigned)got, (unsigned long long)st.st_size, who);
    close(fd);
    unlink(path);
}

void prun__wout_take(const char *dir, const char *rid, const char *task,
    unsigned long long index, const char *who, struct prun_buf *out,
    struct prun_buf *err)
{
    char path[4096];

    snprintf(path, sizeof(path), "%s/%s/%s/%llu.out", dir, rid, task, index);
    take_one(path, who, "stdout", out);
    snprintf(path, sizeof(path), "%s/%s/%s/%llu.err", dir, rid, task, index);
    take_one(path, who, "stderr", err);
}
