/* SPDX-License-Identifier: MIT */
/*
 * segment: shared segments, runner side (README "Shared segments").
 *
 * A `file:` segment is copied once into a memfd and sealed against writes
 * and resizes, so every child maps the same pages read-only and none can
 * change them. A `size:` segment is a zero-filled memfd every child maps
 * shared and writable. memfds live on the kernel's internal shmem mount:
 * a small /dev/shm does not limit them and they vanish with the last
 * process holding them, so they cannot leak. A child receives only the
 * fds of the segments its task lists, at the same numbers, and finds them
 * in PARALLELRUN_SEGMENT_<NAME> as /proc/RUNNER/fd/N: the runner's own fd,
 * so the path opens the same memfd in every descendant of the child (a
 * subprocess, a multiprocessing spawn or forkserver worker, a pipeline)
 * for as long as the runner holds it, and fails with ENOENT once the run
 * has ended. Opening it gives a new open file of the memfd itself, so the
 * seals still hold. A `file:` segment with `copy: false` is the file's own
 * open fd instead: no copy, the page cache is shared, and the file must
 * not change during the run.
 *
 * Published segments are files a child creates in the run's directory
 * BASE/parallelrun-RUNID; the runner removes the directory when the run
 * ends, and prun__segment_gc() removes those of runners that died (the
 * `owner` file says who the runner was). Names, shapes and .npy headers
 * are segmeta.c's; making each segment's memory (the copy, the seals) is
 * segment_load.c's; publishing is segment_publish.c's, attaching from a
 * child api_segment.c's.
 *
 * A queue worker's `file:` segments (prun__segset_new_host) are the host
 * cache's entries instead of memfds of their own (segcache.c): given to
 * children the same way, as a read-only fd and its /proc path.
 *
 * This module does not spawn anything and does not talk to Redis.
 */
#include "segment_int.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "segcache.h"

#define ENV_PREFIX  "PARALLELRUN_SEGMENT_"
#define OWNER_GRACE 60 /* seconds a directory may lack its owner file */

/* What every child of one task gets from its memfd segments. */
struct taskpre {
    int ready;
    size_t nfds;
    int *fds;
    size_t nenv;
    const char **env;
    struct prun_buf strings;
    size_t npub; /* published segments it lists, opened per child */
};

/* The per-child part when a task lists published segments. */
struct childpriv {
    size_t nfds, npub, nenv;
    int *fds; /* memfds, then published fds (ours to close) */
    const char **env;
    struct prun_buf strings;
};

struct prun_segset {
    const struct prun_job *job;
    size_t nsegs;
    struct seg *segs;
    struct taskpre *tasks;
    char *dir; /* NULL: no run directory */
    char *env_dir;
    const char *env_all[1];
    size_t nenv_all;
    pid_t pid; /* the runner: it holds the fds the paths name */
};

/* ---- the run directory ---- */

/* Field 22 of /proc/PID/stat: start time in clock ticks after boot. */
static int proc_starttime(pid_t pid, unsigned long long *out)
{
    char path[64], buf[1024], *p;
    ssize_t n;
    int fd, field;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* The command name may contain spaces and ')': skip to the last ')'. */
    if ((p = strrchr(buf, ')')) == NULL)
        return -1;
    for (field = 2; field < 22 && p != NULL; field++)
        p = strchr(p + 1, ' ');
    if (p == NULL)
        return -1;
    *out = strtoull(p + 1, NULL, 10);
    return 0;
}

static int write_owner(const char *dir, struct prun_err *err)
{
    char path[PATH_MAX], tmp[PATH_MAX], host[256], line[400];
    unsigned long long st = 0;
    int fd, n, rc = 0;

    if (gethostname(host, sizeof(host)) < 0)
        snprintf(host, sizeof(host), "unknown");
    host[sizeof(host) - 1] = '\0';
    proc_starttime(getpid(), &st);
    n = snprintf(line, sizeof(line), "%d %llu %s\n", (int)getpid(), st, host);
    snprintf(tmp, sizeof(tmp), "%s/owner.tmp", dir);
    snprintf(path, sizeof(path), "%s/owner", dir);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return prun__err_sys(err, "cannot create %s", tmp);
    if (write(fd, line, (size_t)n) != n || close(fd) < 0 ||
        rename(tmp, path) < 0) {
        rc = prun__err_sys(err, "cannot write %s", path);
        unlink(tmp);
    }
    return rc;
}

/* Removes the flat directory name under dirfd, and its files. */
static int remove_tree(int dirfd, const char *name)
{
    int fd =
        openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct dirent *e;
    DIR *d;

    if (fd < 0)
        return -1;
    if ((d = fdopendir(fd)) == NULL) {
        close(fd);
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(fd, e->d_name, 0) < 0 && errno == EISDIR)
            remove_tree(fd, e->d_name);
    }
    closedir(d);
    return unlinkat(dirfd, name, AT_REMOVEDIR);
}

static void remove_dir(const char *path)
{
    char *copy = strdup(path), *slash;

    if (copy == NULL)
        return;
    if ((slash = strrchr(copy, '/')) != NULL) {
        *slash = '\0';
        int base =
            open(copy[0] ? copy : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (base >= 0) {
            remove_tree(base, slash + 1);
            close(base);
        }
    }
    free(copy);
}

/* ---- the set ---- */

static void upper_name(const char *name, char *out, size_t n)
{
    size_t i;

    for (i = 0; name[i] != '\0' && i + 1 < n; i++)
        out[i] = (char)toupper((unsigned char)name[i]);
    out[i] = '\0';
}

/*
 * Appends the env strings of one segment found at path to b, recording
 * their offsets in offs (at most 7). Returns how many, or -1.
 */
static int seg_env(struct prun_buf *b, size_t *offs, const char *name,
    const char *path, uint64_t size, const char *dtype, const char *shape,
    int writable, int huge)
{
    char up[80];
    int n = 0, ok = 1;

    upper_name(name, up, sizeof(up));
    offs[n++] = b->len;
    ok &= prun__buf_printf(b, ENV_PREFIX "%s=%s", up, path) == 0;
    ok &= prun__buf_addc(b, '\0') == 0;
    offs[n++] = b->len;
    ok &= prun__buf_printf(b, ENV_PREFIX "%s_SIZE=%" PRIu64, up, size) == 0;
    ok &= prun__buf_addc(b, '\0') == 0;
    if (dtype[0] != '\0') {
        offs[n++] = b->len;
        ok &= prun__buf_printf(b, ENV_PREFIX "%s_DTYPE=%s", up, dtype) == 0;
        ok &= prun__buf_addc(b, '\0') == 0;
    }
    if (shape[0] != '\0') {
        offs[n++] = b->len;
        ok &= prun__buf_printf(b, ENV_PREFIX "%s_SHAPE=%s", up, shape) == 0;
        ok &= prun__buf_addc(b, '\0') == 0;
    }
    if (writable) {
        offs[n++] = b->len;
        ok &= prun__buf_printf(b, ENV_PREFIX "%s_WRITABLE=1", up) == 0;
        ok &= prun__buf_addc(b, '\0') == 0;
    }
    if (huge) {
        offs[n++] = b->len;
        ok &= prun__buf_printf(b, ENV_PREFIX "%s_HUGEPAGES=1", up) == 0;
        ok &= prun__buf_addc(b, '\0') == 0;
    }
    return ok ? n : -1;
}

/* Builds what every child of task t gets from its memfd segments. */
static int prepare_task(struct prun_segset *s, size_t t, struct prun_err *err)
{
    const struct prun_task *task = &s->job->tasks[t];
    struct taskpre *tp = &s->tasks[t];
    size_t i, k, *offs = NULL;
    char path[64];
    int rc = 0, n;

    for (i = 0; i < task->nsegs; i++) {
        struct seg *g = &s->segs[task->segs[i]];
        if (g->deferred && (rc = prun__seg_load_file(s->job, g, err)) < 0)
            return rc;
    }
    tp->fds = calloc(task->nsegs + 1, sizeof(int));
    tp->env = calloc(task->nsegs * 7 + 1, sizeof(char *));
    offs = calloc(task->nsegs * 7 + 1, sizeof(size_t));
    if (tp->fds == NULL || tp->env == NULL || offs == NULL) {
        rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
        goto out;
    }
    for (i = 0; i < task->nsegs; i++) {
        const struct seg *g = &s->segs[task->segs[i]];
        if (g->def->published) {
            tp->npub++;
            continue;
        }
        tp->fds[tp->nfds++] = g->fd;
        /* The runner's fd, not the child's: valid in every descendant. */
        snprintf(path, sizeof(path), "/proc/%ld/fd/%d", (long)s->pid, g->fd);
        n = seg_env(&tp->strings, offs + tp->nenv, g->def->name, path, g->size,
            g->dtype, g->shape, g->def->writable, g->huge);
        if (n < 0) {
            rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
            goto out;
        }
        tp->nenv += (size_t)n;
    }
    for (k = 0; k < tp->nenv; k++)
        tp->env[k] = tp->strings.data + offs[k];
    tp->ready = 1;
out:
    free(offs);
    return rc;
}

static int task_lists_seg(const struct prun_task *t, size_t seg)
{
    size_t i;

    for (i = 0; i < t->nsegs; i++)
        if (t->segs[i] == seg)
            return 1;
    return 0;
}

/*
 * A missing file may be made by an earlier task: allowed when every task
 * listing the segment waits for another (needs), never for a task that
 * could start at once.
 */
static int may_defer(const struct prun_job *job, size_t seg)
{
    size_t t, users = 0;

    for (t = 0; t < job->ntasks; t++) {
        if (!task_lists_seg(&job->tasks[t], seg))
            continue;
        if (job->tasks[t].nneeds == 0)
            return 0;
        users++;
    }
    return users > 0;
}

static int make_run_dir(struct prun_segset *s, const char *run_id, int required,
    struct prun_err *err)
{
    struct prun_buf b = {0};
    int rc = 0;

    if (run_id[0] == '\0' || strchr(run_id, '/') != NULL ||
        strcmp(run_id, "..") == 0)
        return prun__err_set(
            err, PRUN_EINVAL, "invalid run id '%.64s'", run_id);
    if (prun__buf_printf(&b, "%s/parallelrun-%s", prun__shm_base(), run_id) < 0)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    if (mkdir(b.data, 0700) < 0) {
        /* Published segments are the only use; a job without any runs. */
        if (required)
            rc = prun__err_sys(err, "cannot create %s", b.data);
        prun__buf_free(&b);
        return rc;
    }
    s->dir = b.data;
    if ((rc = write_owner(s->dir, err)) < 0)
        return rc;
    memset(&b, 0, sizeof(b)); /* s->dir owns the old data */
    if (prun__buf_printf(&b, "PARALLELRUN_SHM_DIR=%s", s->dir) < 0)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    s->env_dir = b.data;
    s->env_all[0] = s->env_dir;
    s->nenv_all = 1;
    return 0;
}

/* A `file:` segment no task lists: its file must open, nothing more. */
static int check_unused(const struct prun_job *job, const struct prun_segdef *d,
    struct prun_err *err)
{
    int fd = open(d->file, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return prun__err_set(err, PRUN_EINVAL,
            "%s:%u:%u: segment '%s': cannot open '%s': %s", job->path,
            d->pos.line, d->pos.col, d->name, d->file, strerror(errno));
    close(fd);
    return 0;
}

static int segset_open(const struct prun_job *job, const char *run_id,
    enum prun_hugepages deflt, int hostcache, struct prun_segset **out,
    struct prun_err *err)
{
    struct prun_segset *s;
    size_t i, t;
    int rc = 0, thp = -1, need_dir = 0;

    if ((s = calloc(1, sizeof(*s))) == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    s->job = job;
    s->pid = getpid();
    s->segs = calloc(job->nsegs + 1, sizeof(*s->segs));
    s->tasks = calloc(job->ntasks + 1, sizeof(*s->tasks));
    if (s->segs == NULL || s->tasks == NULL) {
        rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
        goto fail;
    }
    s->nsegs = job->nsegs;
    for (i = 0; i < job->nsegs; i++) {
        s->segs[i].def = &job->segs[i];
        s->segs[i].fd = -1;
        s->segs[i].hostcache = hostcache;
        need_dir |= job->segs[i].published;
    }
    for (t = 0; t < job->ntasks; t++)
        for (i = 0; i < job->tasks[t].nsegs; i++)
            s->segs[job->tasks[t].segs[i]].used = 1;

    for (i = 0; i < s->nsegs; i++) {
        struct seg *g = &s->segs[i];
        const struct prun_segdef *d = g->def;
        enum prun_hugepages h =
            d->hugepages != PRUN_HUGE_DEFAULT ? d->hugepages : deflt;

        if (h == PRUN_HUGE_AUTO && !d->published && !d->nocopy) {
            if (thp < 0)
                thp = prun__seg_thp_allowed();
            g->huge = thp;
        }
        if (d->published)
            continue;
        if (d->file == NULL) {
            if ((rc = prun__seg_load_writable(g, err)) < 0)
                goto fail;
            continue;
        }
        if (access(d->file, F_OK) < 0 && errno == ENOENT && may_defer(job, i)) {
            g->deferred = 1;
            continue;
        }
        /* Not listed by any task: checked, not loaded. */
        rc = g->used ? prun__seg_load_file(job, g, err)
                     : check_unused(job, d, err);
        if (rc < 0)
            goto fail;
    }
    if ((rc = make_run_dir(s, run_id, need_dir, err)) < 0)
        goto fail;
    /* The spawn path then only copies pointers (deferred files excepted). */
    for (t = 0; t < job->ntasks; t++) {
        int deferred = 0;
        for (i = 0; i < job->tasks[t].nsegs; i++)
            deferred |= s->segs[job->tasks[t].segs[i]].deferred;
        if (!deferred && (rc = prepare_task(s, t, err)) < 0)
            goto fail;
    }
    *out = s;
    return 0;
fail:
    prun__segset_free(s);
    return rc;
}

int prun__segset_new(const struct prun_job *job, const char *run_id,
    enum prun_hugepages deflt, struct prun_segset **out, struct prun_err *err)
{
    return segset_open(job, run_id, deflt, 0, out, err);
}

int prun__segset_new_host(const struct prun_job *job, const char *run_id,
    enum prun_hugepages deflt, struct prun_segset **out, struct prun_err *err)
{
    return segset_open(job, run_id, deflt, 1, out, err);
}

size_t prun__segset_env_all(
    const struct prun_segset *s, const char *const **env)
{
    *env = s->env_all;
    return s->nenv_all;
}

/* Opens published segment g for a child; fills fd and its env strings. */
static int open_published(const struct prun_segset *s, const struct seg *g,
    int *fdp, struct prun_buf *b, size_t *offs, int *nenv, struct prun_err *err)
{
    struct prun__segmeta m;
    char path[PATH_MAX], shape[PRUN_SEGMENT_MAX_DIMS * 21];
    struct stat st;
    int fd = -1, tries;

    for (tries = 0; tries < 3; tries++) {
        if (s->dir == NULL ||
            prun__segmeta_read(s->dir, g->def->name, &m, NULL) < 0)
            return prun__err_set(err, PRUN_ENOTFOUND,
                "segment '%s' was not published (by a task this one "
                "needs?)",
                g->def->name);
        snprintf(path, sizeof(path), "%s/%s", s->dir, g->def->name);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            return prun__err_set(err, PRUN_ENOTFOUND,
                "segment '%s' was not published (by a task this one "
                "needs?)",
                g->def->name);
        /* Republished between the two reads: read the pair again. */
        if (fstat(fd, &st) == 0 && (uint64_t)st.st_size == m.size)
            break;
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        return prun__err_set(err, PRUN_EINVAL,
            "segment '%s' changed while it was being attached", g->def->name);
    if (fd < 3) {
        int hi = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        close(fd);
        if ((fd = hi) < 0)
            return prun__err_sys(err, "fcntl");
    }
    /* The job file may say what the publisher did not. */
    if (m.dtype[0] == '\0' && g->def->dtype != NULL)
        snprintf(m.dtype, sizeof(m.dtype), "%s", g->def->dtype);
    if (m.ndim == 0 && g->def->ndim > 0)
        prun__shape_fmt(g->def->shape, g->def->ndim, shape, sizeof(shape));
    else
        prun__shape_fmt(m.shape, m.ndim, shape, sizeof(shape));
    /*
     * The file in the run directory: valid in every descendant until the
     * run ends (the fd the child inherits pins this version for it).
     */
    *nenv = seg_env(b, offs, g->def->name, path, m.size, m.dtype, shape, 0, 0);
    *fdp = fd;
    if (*nenv < 0)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    return 0;
}

static void childpriv_free(struct childpriv *cp)
{
    size_t i;

    if (cp == NULL)
        return;
    for (i = cp->nfds - cp->npub; i < cp->nfds; i++)
        close(cp->fds[i]);
    free(cp->fds);
    free(cp->env);
    prun__buf_free(&cp->strings);
    free(cp);
}

int prun__segset_child(struct prun_segset *s, size_t task,
    struct prun_segchild *out, struct prun_err *err)
{
    const struct prun_task *t;
    struct taskpre *tp;
    struct childpriv *cp = NULL;
    size_t i, k, *offs = NULL, npubenv = 0;
    int rc = 0;

    if (s == NULL || task >= s->job->ntasks) {
        memset(out, 0, sizeof(*out));
        return 0;
    }
    t = &s->job->tasks[task];
    tp = &s->tasks[task];
    if (!tp->ready && (rc = prepare_task(s, task, err)) < 0)
        return rc;
    if (tp->npub == 0) {
        out->fds = tp->fds;
        out->nfds = tp->nfds;
        out->env = tp->env;
        out->nenv = tp->nenv;
        out->priv = NULL;
        return 0;
    }

    cp = calloc(1, sizeof(*cp));
    offs = calloc(tp->npub * 7 + 1, sizeof(size_t));
    if (cp == NULL || offs == NULL ||
        (cp->fds = calloc(tp->nfds + tp->npub, sizeof(int))) == NULL ||
        (cp->env = calloc(tp->nenv + tp->npub * 7 + 1, sizeof(char *))) ==
            NULL) {
        rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
        goto fail;
    }
    memcpy(cp->fds, tp->fds, tp->nfds * sizeof(int));
    cp->nfds = tp->nfds;
    for (i = 0; i < t->nsegs; i++) {
        const struct seg *g = &s->segs[t->segs[i]];
        int fd = -1, n = 0;

        if (!g->def->published)
            continue;
        rc = open_published(s, g, &fd, &cp->strings, offs + npubenv, &n, err);
        if (fd >= 0) {
            cp->fds[cp->nfds++] = fd;
            cp->npub++;
        }
        if (rc < 0)
            goto fail;
        npubenv += (size_t)n;
    }
    memcpy(cp->env, tp->env, tp->nenv * sizeof(char *));
    for (k = 0; k < npubenv; k++)
        cp->env[tp->nenv + k] = cp->strings.data + offs[k];
    cp->nenv = tp->nenv + npubenv;
    free(offs);
    out->fds = cp->fds;
    out->nfds = cp->nfds;
    out->env = cp->env;
    out->nenv = cp->nenv;
    out->priv = cp;
    return 0;
fail:
    free(offs);
    childpriv_free(cp);
    return rc;
}

void prun__segset_child_done(struct prun_segset *s, struct prun_segchild *c)
{
    (void)s;
    if (c == NULL)
        return;
    childpriv_free(c->priv);
    memset(c, 0, sizeof(*c));
}

void prun__segset_free(struct prun_segset *s)
{
    size_t i;

    if (s == NULL)
        return;
    for (i = 0; s->segs != NULL && i < s->nsegs; i++) {
        if (s->segs[i].cache[0] != '\0')
            prun__segcache_put(s->segs[i].fd, s->segs[i].cache);
        else if (s->segs[i].fd >= 0)
            close(s->segs[i].fd);
    }
    for (i = 0; s->tasks != NULL && i < s->job->ntasks; i++) {
        free(s->tasks[i].fds);
        free(s->tasks[i].env);
        prun__buf_free(&s->tasks[i].strings);
    }
    if (s->dir != NULL)
        remove_dir(s->dir);
    free(s->dir);
    free(s->env_dir);
    free(s->segs);
    free(s->tasks);
    free(s);
}

/* ---- gc ---- */

/*
 * Is the runner that owns directory name (under base) alive? 1 alive or
 * not ours to judge, 0 dead.
 */
static int owner_alive(int base, const char *name, const struct stat *dst)
{
    char buf[512], host[256], ohost[256];
    unsigned long long ost, st;
    int fd, pid;
    ssize_t n;

    fd = openat(base, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 1;
    {
        int ofd = openat(fd, "owner", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        close(fd);
        if (ofd < 0) {
            /* Being created right now, or its runner died doing so. */
            return time(NULL) - dst->st_mtime < OWNER_GRACE;
        }
        n = read(ofd, buf, sizeof(buf) - 1);
        close(ofd);
    }
    if (n <= 0)
        return time(NULL) - dst->st_mtime < OWNER_GRACE;
    buf[n] = '\0';
    if (sscanf(buf, "%d %llu %255s", &pid, &ost, ohost) != 3 || pid <= 0)
        return 1;
    if (gethostname(host, sizeof(host)) < 0)
        return 1;
    host[sizeof(host) - 1] = '\0';
    if (strcmp(host, ohost) != 0)
        return 1;
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return 0;
    if (proc_starttime(pid, &st) < 0)
        return kill(pid, 0) == 0 || errno == EPERM;
    return st == ost;
}

int prun__segment_gc_cb(void (*cb)(const char *path, void *arg), void *arg,
    unsigned *removed, struct prun_err *err)
{
    const char *basepath = prun__shm_base();
    unsigned count = 0, swept = 0;
    struct dirent *e;
    struct stat st;
    int base;
    DIR *d;

    base = open(basepath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (base < 0) {
        if (errno == ENOENT) {
            if (removed)
                *removed = 0;
            return 0;
        }
        return prun__err_sys(err, "cannot open %s", basepath);
    }
    if ((d = fdopendir(base)) == NULL) {
        close(base);
        return prun__err_sys(err, "cannot read %s", basepath);
    }
    while ((e = readdir(d)) != NULL) {
        char path[PATH_MAX];

        if (strncmp(e->d_name, "parallelrun-", 12) != 0)
            continue;
        if (fstatat(base, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISDIR(st.st_mode))
            continue;
        if (st.st_uid != geteuid() && geteuid() != 0)
            continue;
        if (owner_alive(base, e->d_name, &st))
            continue;
        if (remove_tree(base, e->d_name) < 0)
            continue;
        count++;
        if (cb != NULL) {
            snprintf(path, sizeof(path), "%s/%s", basepath, e->d_name);
            cb(path, arg);
        }
    }
    closedir(d);
    /* The host cache's entries nobody holds (their users were killed). */
    if (prun__segcache_sweep(cb, arg, &swept, NULL) == 0)
        count += swept;
    if (removed)
        *removed = count;
    return 0;
}

int prun__segment_gc(unsigned *removed, struct prun_err *err)
{
    return prun__segment_gc_cb(NULL, NULL, removed, err);
}
