/* SPDX-License-Identifier: MIT */
/*
 * output_files: the files output writes besides the terminal: the GNU
 * parallel joblog, and the --results tree (DIR/RUN_ID/TASK/INDEX.out and
 * .err, and per task a manifest.tsv of which item each index was). Every
 * file is opened without following a symbolic link and only written if it
 * is ours. What goes into the .out and .err files is output.c's.
 */
#include "output_int.h"

#include "job.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Errors about a path the user gave (or one planted there) are bad input
 * (PRUN_EINVAL); anything else is a system failure (PRUN_ESYS).
 */
static int path_err(int rc, struct prun_err *err)
{
    switch (err != NULL ? err->sys_errno : 0) {
    case EACCES:
    case EPERM:
    case ENOENT:
    case ENOTDIR:
    case EISDIR:
    case ELOOP:
    case EEXIST:
    case EROFS:
    case ENAMETOOLONG:
        err->code = PRUN_EINVAL;
        return PRUN_EINVAL;
    default:
        return rc;
    }
}

/* The message for a failed open: a symbolic link is said as such. */
static int open_err(
    struct prun_err *err, int dfd, const char *name, const char *path)
{
    int saved = errno;
    struct stat st;

    if ((saved == ELOOP || saved == ENOTDIR || saved == EEXIST) &&
        fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(st.st_mode)) {
        prun__err_set(err, PRUN_EINVAL,
            "'%s' is a symbolic link: refusing to follow it", path);
        if (err != NULL)
            err->sys_errno = ELOOP;
        return PRUN_EINVAL;
    }
    errno = saved;
    return path_err(prun__err_sys(err, "cannot open '%s'", path), err);
}

/*
 * Checks that an output file we opened may be written and truncated: a
 * regular file of ours with no other name (a hard link would let us
 * truncate someone else's file), or a character device such as /dev/null,
 * which only root can create.
 */
static int check_own_file(int fd, const char *path, struct prun_err *err)
{
    struct stat st;

    if (fstat(fd, &st) < 0)
        return prun__err_sys(err, "cannot stat '%s'", path);
    if (S_ISCHR(st.st_mode))
        return 1;
    if (!S_ISREG(st.st_mode))
        return prun__err_set(
            err, PRUN_EINVAL, "'%s' is not a regular file: refusing it", path);
    if (st.st_uid != geteuid())
        return prun__err_set(err, PRUN_EINVAL,
            "'%s' belongs to uid %u, not to us: refusing to overwrite it", path,
            (unsigned)st.st_uid);
    if (st.st_nlink > 1)
        return prun__err_set(err, PRUN_EINVAL,
            "'%s' has other hard links: refusing to overwrite it", path);
    return 0;
}

/*
 * Opens (creating it) an output file named name in directory dfd, never
 * through a symbolic link, and empties it (not with O_APPEND in flags)
 * only once it is known to be ours. Returns the fd, or a negative PRUN_E* with
 * err naming path.
 */
static int open_output_file(int dfd, const char *name, int flags,
    const char *path, struct prun_err *err)
{
    int fd, rc;

    fd = openat(dfd, name, flags | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return open_err(err, dfd, name, path);
    rc = check_own_file(fd, path, err);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    if (rc == 0 && !(flags & O_APPEND) && ftruncate(fd, 0) < 0) {
        rc = prun__err_sys(err, "cannot truncate '%s'", path);
        close(fd);
        return rc;
    }
    return fd;
}

/* Opens directory name in dfd, never through a symbolic link; ours only. */
static int open_own_dir(
    int dfd, const char *name, const char *path, struct prun_err *err)
{
    struct stat st;
    int fd;

    fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return open_err(err, dfd, name, path);
    if (fstat(fd, &st) < 0 || st.st_uid != geteuid()) {
        int rc = prun__err_set(err, PRUN_EINVAL,
            "'%s' belongs to uid %u, not to us: refusing to write in it", path,
            (unsigned)st.st_uid);
        close(fd);
        return rc;
    }
    return fd;
}

/* mkdir -p for the results tree; existing directories are fine. */
static int mkdirs(char *path)
{
    char *p;

    for (p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
            *p = '/';
            return -1;
        }
        *p = '/';
    }
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

/*
 * DIR (the user's, made if missing) and in it DIR/RUN_ID, which must be
 * new: nobody can have prepared it for us.
 */
int prun__out_results_root(struct prun_output *o, struct prun_err *err)
{
    const struct prun_output_opts *opts = &o->opts;
    char dir[PATH_MAX];
    int dfd = -1, rc = 0;

    if (snprintf(dir, sizeof(dir), "%s", opts->results_dir) >=
            (int)sizeof(dir) ||
        snprintf(o->results_path, sizeof(o->results_path), "%s/%s", dir,
            opts->run_id) >= (int)sizeof(o->results_path))
        return prun__err_set(err, PRUN_EINVAL, "results path too long");
    if (mkdirs(dir) < 0) {
        rc = prun__err_sys(
            err, "cannot create results directory '%s'", opts->results_dir);
        return path_err(rc, err);
    }
    dfd = open(opts->results_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        rc = prun__err_sys(
            err, "cannot open results directory '%s'", opts->results_dir);
        return path_err(rc, err);
    }
    if (mkdirat(dfd, opts->run_id, 0755) < 0) {
        rc = errno == EEXIST ? open_err(err, dfd, opts->run_id, o->results_path)
                             : path_err(prun__err_sys(err,
                                            "cannot create results directory "
                                            "'%s'",
                                            o->results_path),
                                   err);
        if (rc == PRUN_EINVAL && errno == EEXIST && err != NULL &&
            err->sys_errno != ELOOP)
            prun__err_set(err, PRUN_EINVAL,
                "results directory '%s' already exists", o->results_path);
        goto fail;
    }
    rc = open_own_dir(dfd, opts->run_id, o->results_path, err);
    if (rc < 0)
        goto fail;
    o->results_fd = rc;
    rc = 0;
fail:
    close(dfd);
    return rc;
}

int prun__out_open_results(struct prun_capture *c, const char *task,
    unsigned long long index, struct prun_err *err)
{
    struct prun_output *o = c->o;
    char dir[PATH_MAX], name[32], path[PATH_MAX + 32];
    int tfd, i, rc = 0;

    if (snprintf(dir, sizeof(dir), "%s/%s", o->results_path, task) >=
        (int)sizeof(dir))
        return prun__err_set(err, PRUN_EINVAL, "results path too long");
    if (mkdirat(o->results_fd, task, 0755) < 0 && errno != EEXIST)
        return prun__err_sys(err, "cannot create results directory '%s'", dir);
    tfd = open_own_dir(o->results_fd, task, dir, err);
    if (tfd < 0)
        return tfd;
    for (i = 0; i < 2; i++) {
        snprintf(name, sizeof(name), "%llu.%s", index, i == 0 ? "out" : "err");
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        rc = open_output_file(tfd, name, O_RDWR, path, err);
        if (rc < 0)
            break;
        c->s[i].results_fd = rc;
        c->s[i].results_path = strdup(path);
        rc = 0;
    }
    close(tfd);
    return rc;
}

int prun__out_open_joblog(struct prun_output *o, struct prun_err *err)
{
    static const char header[] = "Seq\tHost\tStarttime\tJobRuntime\tSend\t"
                                 "Receive\tExitval\tSignal\tCommand\n";
    const struct prun_output_opts *opts = &o->opts;
    int fd;

    /* +FILE appends (O_APPEND: kept); otherwise emptied here. */
    fd = open_output_file(AT_FDCWD, opts->joblog,
        O_WRONLY | (opts->joblog_append ? O_APPEND : 0), opts->joblog, err);
    if (fd < 0)
        return fd;
    o->joblog_fd = fd;
    /* An appended joblog that has its header already gets no second. */
    if (lseek(o->joblog_fd, 0, SEEK_END) == 0 &&
        prun__write_all(o->joblog_fd, header, sizeof(header) - 1) < 0)
        return prun__err_sys(err, "cannot write joblog '%s'", opts->joblog);
    return 0;
}

int prun__output_joblog(struct prun_output *o, const struct prun_joblog_row *r,
    struct prun_err *err)
{
    struct prun_buf b = {0};
    int rc = 0;

    if (o->joblog_fd < 0)
        return 0;
    if (prun__buf_printf(&b,
            "%llu\t:\t%lld.%03lld\t%10.3f\t0\t%llu\t%d\t%d\t%s\n", r->seq,
            (long long)(r->start_wall_ms / 1000),
            (long long)(r->start_wall_ms % 1000),
            (double)r->runtime_ms / 1000.0, (unsigned long long)r->receive,
            r->exitval, r->signal, r->command) < 0)
        rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
    else if (prun__write_all(o->joblog_fd, b.data, b.len) < 0)
        rc = prun__err_sys(err, "cannot write joblog '%s'", o->opts.joblog);
    prun__buf_free(&b);
    return rc;
}

/* A manifest value: tab, newline, CR and backslash escaped as in C. */
static int add_escaped(struct prun_buf *b, const char *s)
{
    int rc = 0;

    for (; *s != '\0' && rc == 0; s++) {
        switch (*s) {
        case '\t':
            rc = prun__buf_adds(b, "\\t");
            break;
        case '\n':
            rc = prun__buf_adds(b, "\\n");
            break;
        case '\r':
            rc = prun__buf_adds(b, "\\r");
            break;
        case '\\':
            rc = prun__buf_adds(b, "\\\\");
            break;
        default:
            rc = prun__buf_addc(b, *s);
        }
    }
    return rc;
}

/* The manifest of task ti, opened at its first row. */
static int manifest_fd(
    struct prun_output *o, size_t ti, const char *task, struct prun_err *err)
{
    char name[PATH_MAX], path[2 * PATH_MAX + 2];
    int fd;

    if (ti >= o->nmanifest) {
        size_t i, n = ti + 8;
        int *v = realloc(o->manifest_fd, n * sizeof(*v));

        if (v == NULL)
            return prun__err_set(err, PRUN_ENOMEM, "out of memory");
        for (i = o->nmanifest; i < n; i++)
            v[i] = -1;
        o->manifest_fd = v;
        o->nmanifest = n;
    }
    if (o->manifest_fd[ti] >= 0)
        return o->manifest_fd[ti];
    if (snprintf(name, sizeof(name), "%s/manifest.tsv", task) >=
        (int)sizeof(name))
        return prun__err_set(err, PRUN_EINVAL, "results path too long");
    snprintf(path, sizeof(path), "%s/%s", o->results_path, name);
    /* TASK was made and checked as ours when its first files were. */
    fd = open_output_file(o->results_fd, name, O_WRONLY | O_APPEND, path, err);
    if (fd < 0)
        return fd;
    o->manifest_fd[ti] = fd;
    return fd;
}

int prun__output_manifest(struct prun_output *o, size_t ti, const char *task,
    unsigned long long index, const struct prun_item *items, size_t n,
    struct prun_err *err)
{
    struct prun_buf b = {0};
    size_t i, k;
    int fd, rc = 0;

    if (o->results_fd < 0)
        return 0;
    if ((fd = manifest_fd(o, ti, task, err)) < 0)
        return fd;
    rc = prun__buf_printf(&b, "%llu", index);
    for (i = 0; i < n && rc == 0; i++) {
        /* A matrix item's values are its axes', in order. */
        if (items[i].nkeys == 0)
            rc = prun__buf_addc(&b, '\t') < 0 ? -1
                                              : add_escaped(&b, items[i].text);
        for (k = 0; k < items[i].nkeys && rc == 0; k++)
            rc = prun__buf_addc(&b, '\t') < 0
                     ? -1
                     : add_escaped(&b, items[i].vals[k]);
    }
    if (rc == 0)
        rc = prun__buf_addc(&b, '\n');
    if (rc < 0)
        rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
    else if (prun__write_all(fd, b.data, b.len) < 0)
        rc = prun__err_sys(
            err, "cannot write '%s/%s/manifest.tsv'", o->results_path, task);
    prun__buf_free(&b);
    return rc;
}

void prun__out_close_manifests(struct prun_output *o)
{
    size_t i;

    for (i = 0; i < o->nmanifest; i++)
        if (o->manifest_fd[i] >= 0)
            close(o->manifest_fd[i]);
    free(o->manifest_fd);
    o->manifest_fd = NULL;
    o->nmanifest = 0;
}
