/* SPDX-License-Identifier: MIT */
/*
 * iter: streaming iteration over the foreach sources (none, list, range,
 * lines, glob, matrix), grouped into instances of `chunk` items. Ranges and
 * matrices are computed, lists and globs walk arrays, and lines files are
 * read through a fixed-size buffer so that only the current instance's
 * lines are ever held in memory.
 *
 * Nothing here waits unless asked to: opening a FIFO does not wait for a
 * writer, and in async mode a pipe, FIFO or terminal is read only after the
 * caller's event loop saw it readable, one read() per readiness, so a slow
 * producer never holds up the loop. Regular files are read directly (they
 * never block for long). This module does not parse the job file, expand
 * templates or decide when anything runs.
 */
#include "job.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Read size for lines files, both when counting and when iterating. */
#define READ_SIZE (64 * 1024)

int prun__items_value(
    const struct prun_item *items, size_t n, struct prun_buf *out)
{
    size_t i;

    if (prun__buf_reserve(out, 0) < 0)
        return PRUN_ENOMEM;
    for (i = 0; i < n; i++)
        if ((i > 0 && prun__buf_addc(out, '\n') < 0) ||
            prun__buf_adds(out, items[i].text) < 0)
            return PRUN_ENOMEM;
    return 0;
}

struct prun_item *prun__items_dup(const struct prun_item *items, size_t n)
{
    size_t nptr = 0, nchar = 0, size, i, k;
    struct prun_item *out;
    const char **ptrs;
    char *chars;

    for (i = 0; i < n; i++) {
        nptr += 2 * items[i].nkeys;
        nchar += items[i].text ? strlen(items[i].text) + 1 : 0;
        for (k = 0; k < items[i].nkeys; k++)
            nchar += strlen(items[i].keys[k]) + strlen(items[i].vals[k]) + 2;
    }
    /*
     * The structs come first, then the pointer arrays, then the characters,
     * so every part is suitably aligned and a single free() releases it all.
     * A zero-item block still gets one struct so that NULL means no memory.
     */
    size = (n ? n : 1) * sizeof(*out) + nptr * sizeof(*ptrs) + nchar;
    out = malloc(size);
    if (out == NULL)
        return NULL;
    ptrs = (const char **)(out + (n ? n : 1));
    chars = (char *)(ptrs + nptr);
    for (i = 0; i < n; i++) {
        const char **keys = ptrs, **vals = ptrs + items[i].nkeys;
        size_t len;

        ptrs += 2 * items[i].nkeys;
        out[i].nkeys = items[i].nkeys;
        out[i].keys = items[i].nkeys ? keys : NULL;
        out[i].vals = items[i].nkeys ? vals : NULL;
        out[i].text = NULL;
        if (items[i].text != NULL) {
            len = strlen(items[i].text) + 1;
            memcpy(chars, items[i].text, len);
            out[i].text = chars;
            chars += len;
        }
        for (k = 0; k < items[i].nkeys; k++) {
            len = strlen(items[i].keys[k]) + 1;
            memcpy(chars, items[i].keys[k], len);
            keys[k] = chars;
            chars += len;
            len = strlen(items[i].vals[k]) + 1;
            memcpy(chars, items[i].vals[k], len);
            vals[k] = chars;
            chars += len;
        }
    }
    return out;
}

struct prun_iter {
    const struct prun_job *job;
    const struct prun_foreach *f;
    unsigned chunk;
    long long count; /* instances, -1 when unknown */
    int ended;       /* the source has no more items */
    int failed;      /* a read error happened; it is returned again */
    struct prun_err fail;

    /* The current instance's items and the text they point into. */
    struct prun_item *items;
    size_t *offs; /* text offsets into buf, fixed up once buf stops moving */
    struct prun_buf buf;

    unsigned long long pos;  /* items handed out so far */
    unsigned long long nall; /* items in all (LIST, RANGE, GLOB, MATRIX) */

    long long cur; /* RANGE: the next value */

    glob_t gl; /* GLOB */
    int have_gl;

    size_t *idx;       /* MATRIX: the current index on each axis */
    const char **keys; /* MATRIX: axis names, shared by every item */
    const char **vals; /* MATRIX: chunk * naxes chosen values */

    int fd;     /* LINES */
    int own_fd; /* not stdin */
    char *rbuf; /* LINES read buffer */
    size_t rpos, rend;
    int eof;
    int stream;    /* a pipe, FIFO, terminal...: never read unasked */
    int gate;      /* stream: wait for readiness before the next read */
    int async;     /* PRUN_ITER_ASYNC */
    int strict;    /* PRUN_ITER_STRICT */
    int old_flags; /* stdin's file status flags to restore, -1 none */
    int pending;   /* an instance is being gathered across calls */
    size_t have;   /* its items so far */
    int in_line;   /* a line is being gathered across calls */
    int line_got;  /* ... and has at least one byte or its end */
    unsigned long long lineno; /* lines read so far, for messages */
};

static int fail_at(struct prun_err *err, const struct prun_job *job,
    const struct prun_foreach *f, const char *what)
{
    int saved = errno;

    prun__err_set(err, PRUN_EINVAL, "%s:%u:%u: cannot %s '%s': %s",
        job && job->path ? job->path : "?", f->pos.line, f->pos.col, what,
        f->path, strerror(saved));
    if (err != NULL)
        err->sys_errno = saved;
    return PRUN_EINVAL;
}

/* Instances for nitems items in groups of chunk. */
static long long instances(unsigned long long nitems, unsigned chunk)
{
    unsigned long long n = nitems / chunk + (nitems % chunk != 0);

    return n > (unsigned long long)LLONG_MAX ? -1 : (long long)n;
}

static unsigned long long range_len(
    long long from, long long to, long long step)
{
    unsigned long long diff, ustep;

    /*
     * Unsigned arithmetic gives the exact distance even when to - from
     * would overflow a long long.
     */
    if (step > 0) {
        if (from >= to)
            return 0;
        diff = (unsigned long long)to - (unsigned long long)from;
        ustep = (unsigned long long)step;
    } else {
        if (from <= to)
            return 0;
        diff = (unsigned long long)from - (unsigned long long)to;
        ustep = 0 - (unsigned long long)step;
    }
    return (diff - 1) / ustep + 1;
}

/* The name a lines source goes by in messages. */
static const char *lines_name(const struct prun_foreach *f)
{
    return strcmp(f->path, "-") == 0 ? "stdin" : f->path;
}

/*
 * A NUL byte cannot be passed in an argv element or an environment value:
 * it would silently cut the item short, so it is refused, with its line.
 */
static int nul_error(
    struct prun_iter *it, unsigned long long line, struct prun_err *err)
{
    const struct prun_foreach *f = it->f;

    if (f->nul_hint != NULL)
        return prun__err_set(err, PRUN_EINVAL,
            "%s item %llu contains a NUL byte; %s", lines_name(f), line,
            f->nul_hint);
    return prun__err_set(err, PRUN_EINVAL,
        "%s:%llu: NUL byte in a line (foreach 'lines' at %s:%u:%u; for "
        "NUL-separated items set 'separator: nul')",
        lines_name(f), line, it->job && it->job->path ? it->job->path : "?",
        f->pos.line, f->pos.col);
}

static char sep_of(const struct prun_iter *it)
{
    return it->f->nul_sep ? '\0' : '\n';
}

/* Counts the lines of the regular file fd, then rewinds it. */
static int count_lines(struct prun_iter *it, struct prun_err *err)
{
    unsigned long long lines = 0;
    char sep = sep_of(it), last = sep;
    ssize_t n;

    for (;;) {
        char *p, *end, *z;

        n = read(it->fd, it->rbuf, READ_SIZE);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return prun__err_sys(err, "%s:%u:%u: cannot read '%s'",
                it->job && it->job->path ? it->job->path : "?", it->f->pos.line,
                it->f->pos.col, it->f->path);
        if (n == 0)
            break;
        end = it->rbuf + n;
        z = sep ? memchr(it->rbuf, '\0', (size_t)n) : NULL;
        if (z != NULL)
            end = z;
        for (p = it->rbuf; (p = memchr(p, sep, (size_t)(end - p))) != NULL; p++)
            lines++;
        if (z != NULL)
            return nul_error(it, lines + 1, err);
        last = it->rbuf[n - 1];
    }
    /* A last line without a newline is still a line. */
    if (last != sep)
        lines++;
    if (lseek(it->fd, 0, SEEK_SET) < 0)
        return prun__err_sys(err, "%s:%u:%u: cannot rewind '%s'",
            it->job && it->job->path ? it->job->path : "?", it->f->pos.line,
            it->f->pos.col, it->f->path);
    it->nall = lines;
    return 0;
}

static int open_lines(struct prun_iter *it, struct prun_err *err)
{
    const struct prun_foreach *f = it->f;
    struct stat st;
    int fl, rc;

    it->rbuf = malloc(READ_SIZE);
    if (it->rbuf == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    if (strcmp(f->path, "-") == 0) {
        it->fd = 0;
    } else {
        /*
         * O_NONBLOCK: opening a FIFO for reading would otherwise wait for
         * a writer, with nothing else (signals included) served meanwhile.
         */
        it->fd = open(f->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (it->fd < 0)
            return fail_at(err, it->job, f, "open");
        it->own_fd = 1;
    }
    if (fstat(it->fd, &st) < 0)
        return fail_at(err, it->job, f, "open");
    if (S_ISDIR(st.st_mode)) {
        errno = EISDIR;
        return fail_at(err, it->job, f, "open");
    }
    if (!S_ISREG(st.st_mode)) {
        /*
         * Pipes and terminals can be read once only: the count is unknown.
         * A FIFO without a writer yet reads as end of file, so the first
         * read, like every later one, waits until poll says readable or
         * hung up (which a FIFO only says once a writer came and went).
         */
        it->count = -1;
        it->stream = 1;
        it->gate = 1;
        /*
         * stdin as a pipe or FIFO also gets O_NONBLOCK, restored when the
         * source is freed. A terminal does not: its file description is
         * the interactive shell's too; one read per readiness is enough.
         */
        if (!it->own_fd && it->async && S_ISFIFO(st.st_mode) &&
            (fl = fcntl(0, F_GETFL)) >= 0 && !(fl & O_NONBLOCK) &&
            fcntl(0, F_SETFL, fl | O_NONBLOCK) == 0)
            it->old_flags = fl;
        return 0;
    }
    if ((rc = count_lines(it, err)) < 0)
        return rc;
    it->count = instances(it->nall, it->chunk);
    return 0;
}

/*
 * glob(3) gives its error callback no user pointer, so the directory that
 * failed is passed back through these. Sources are opened one at a time by
 * the single-threaded runner.
 */
static int glob_errno;
static char glob_errpath[128];

static int glob_error(const char *path, int eno)
{
    /*
     * A directory in the pattern that does not exist just matches nothing;
     * one that cannot be read is an error rather than a silent gap.
     */
    if (eno == ENOENT || eno == ENOTDIR)
        return 0;
    glob_errno = eno;
    snprintf(glob_errpath, sizeof(glob_errpath), "%s", path);
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int open_glob(struct prun_iter *it, struct prun_err *err)
{
    const struct prun_foreach *f = it->f;
    int rc;

    glob_errno = 0;
    /*
     * glob(3) sorts with the locale's collation; sorting bytes ourselves
     * gives the same order everywhere, which is what {index} relies on.
     */
    rc = glob(f->path, GLOB_NOSORT, glob_error, &it->gl);
    it->have_gl = 1;
    if (rc == GLOB_NOMATCH)
        it->gl.gl_pathc = 0;
    else if (rc == GLOB_ABORTED) {
        errno = glob_errno ? glob_errno : EIO;
        return prun__err_sys(err, "%s:%u:%u: glob '%s': cannot read '%s'",
            it->job && it->job->path ? it->job->path : "?", f->pos.line,
            f->pos.col, f->path, glob_errpath);
    } else if (rc != 0)
        return prun__err_set(
            err, PRUN_ENOMEM, "out of memory in glob '%s'", f->path);
    if (it->gl.gl_pathc > 1)
        qsort(it->gl.gl_pathv, it->gl.gl_pathc, sizeof(char *), cmp_str);
    it->nall = it->gl.gl_pathc;
    return 0;
}

static int open_matrix(struct prun_iter *it, struct prun_err *err)
{
    const struct prun_foreach *f = it->f;
    unsigned long long n = 1;
    size_t i;

    for (i = 0; i < f->naxes; i++) {
        if (f->axes[i].nvals != 0 && n > ULLONG_MAX / f->axes[i].nvals)
            return prun__err_set(err, PRUN_EINVAL,
                "%s:%u:%u: matrix has too many combinations",
                it->job && it->job->path ? it->job->path : "?", f->pos.line,
                f->pos.col);
        n *= f->axes[i].nvals;
    }
    if (f->naxes == 0)
        n = 0;
    it->nall = n;
    it->idx = calloc(f->naxes ? f->naxes : 1, sizeof(*it->idx));
    it->keys = calloc(f->naxes ? f->naxes : 1, sizeof(*it->keys));
    it->vals = calloc(
        (size_t)it->chunk * (f->naxes ? f->naxes : 1), sizeof(*it->vals));
    if (it->idx == NULL || it->keys == NULL || it->vals == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    for (i = 0; i < f->naxes; i++)
        it->keys[i] = f->axes[i].name;
    return 0;
}

/*
 * Zero items: an error unless the foreach allows it, since a glob that
 * matches nothing or an empty list file is far more often a mistake (a
 * wrong path, a step that made nothing) than an intended no-op.
 */
static int empty_error(const struct prun_iter *it, struct prun_err *err)
{
    const struct prun_foreach *f = it->f;
    const char *file = it->job && it->job->path ? it->job->path : "?";
    char what[PATH_MAX + 64];

    switch (f->kind) {
    case PRUN_SRC_LIST:
        snprintf(what, sizeof(what), "'list' is empty");
        break;
    case PRUN_SRC_RANGE:
        snprintf(what, sizeof(what), "range [%lld, %lld, %lld] is empty",
            f->from, f->to, f->step);
        break;
    case PRUN_SRC_MATRIX:
        snprintf(what, sizeof(what), "matrix has no combinations");
        break;
    case PRUN_SRC_GLOB:
        snprintf(what, sizeof(what), "glob '%s' matches nothing", f->path);
        break;
    default:
        snprintf(what, sizeof(what), "lines '%s' has no lines", lines_name(f));
        break;
    }
    return prun__err_set(err, PRUN_EINVAL,
        "%s:%u:%u: %s (set 'allow_empty: true' in the foreach if no "
        "instance is fine)",
        file, f->pos.line, f->pos.col, what);
}

int prun__iter_open(const struct prun_job *job, const struct prun_foreach *f,
    struct prun_iter **out, struct prun_err *err)
{
    return prun__iter_open_flags(job, f, 0, out, err);
}

int prun__iter_open_flags(const struct prun_job *job,
    const struct prun_foreach *f, int flags, struct prun_iter **out,
    struct prun_err *err)
{
    struct prun_iter *it;
    int rc = 0;

    it = calloc(1, sizeof(*it));
    if (it == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    it->job = job;
    it->f = f;
    it->fd = -1;
    it->old_flags = -1;
    it->async = (flags & PRUN_ITER_ASYNC) != 0;
    it->strict = (flags & PRUN_ITER_STRICT) && !f->allow_empty;
    it->chunk = f->chunk ? f->chunk : 1;
    it->items = calloc(it->chunk, sizeof(*it->items));
    it->offs = calloc(it->chunk, sizeof(*it->offs));
    if (it->items == NULL || it->offs == NULL) {
        rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
        goto fail;
    }
    switch (f->kind) {
    case PRUN_SRC_NONE:
        it->nall = 1;
        break;
    case PRUN_SRC_LIST:
        it->nall = f->nlist;
        break;
    case PRUN_SRC_RANGE:
        if (f->step == 0) {
            rc = prun__err_set(err, PRUN_EINVAL, "%s:%u:%u: range step is 0",
                job && job->path ? job->path : "?", f->pos.line, f->pos.col);
            goto fail;
        }
        it->nall = range_len(f->from, f->to, f->step);
        it->cur = f->from;
        break;
    case PRUN_SRC_LINES:
        rc = open_lines(it, err);
        break;
    case PRUN_SRC_GLOB:
        rc = open_glob(it, err);
        break;
    case PRUN_SRC_MATRIX:
        rc = open_matrix(it, err);
        break;
    default:
        rc = prun__err_set(err, PRUN_EINVAL, "unknown foreach source");
        break;
    }
    if (rc < 0)
        goto fail;
    if (f->kind != PRUN_SRC_LINES)
        it->count = instances(it->nall, it->chunk);
    if (it->strict && it->count == 0) {
        rc = empty_error(it, err);
        goto fail;
    }
    *out = it;
    return 0;
fail:
    prun__iter_free(it);
    return rc;
}

/* Appends one NUL-terminated text to buf, remembering where it starts. */
static int add_text(struct prun_iter *it, size_t i, const char *s, size_t n)
{
    it->offs[i] = it->buf.len;
    if (prun__buf_add(&it->buf, s, n) < 0 || prun__buf_addc(&it->buf, '\0') < 0)
        return PRUN_ENOMEM;
    return 0;
}

static int next_range(struct prun_iter *it, size_t i)
{
    char num[32];
    int n = snprintf(num, sizeof(num), "%lld", it->cur);

    /*
     * The step is added in unsigned arithmetic: after the last value the
     * sum may leave the range of long long, and is never used then.
     */
    it->cur = (long long)((unsigned long long)it->cur +
                          (unsigned long long)it->f->step);
    return add_text(it, i, num, (size_t)n);
}

static int next_matrix(struct prun_iter *it, size_t i)
{
    const struct prun_foreach *f = it->f;
    const char **vals = it->vals + i * f->naxes;
    size_t a;

    it->offs[i] = it->buf.len;
    for (a = 0; a < f->naxes; a++) {
        vals[a] = f->axes[a].vals[it->idx[a]];
        if ((a > 0 && prun__buf_addc(&it->buf, ' ') < 0) ||
            prun__buf_adds(&it->buf, vals[a]) < 0)
            return PRUN_ENOMEM;
    }
    if (prun__buf_addc(&it->buf, '\0') < 0)
        return PRUN_ENOMEM;
    /* Like an odometer: the last axis turns fastest. */
    for (a = f->naxes; a-- > 0;) {
        if (++it->idx[a] < f->axes[a].nvals)
            break;
        it->idx[a] = 0;
    }
    it->items[i].nkeys = f->naxes;
    it->items[i].keys = it->keys;
    it->items[i].vals = vals;
    return 0;
}

/* Blocking mode: waits until the stream is readable or hung up. */
static int wait_readable(struct prun_iter *it, struct prun_err *err)
{
    struct pollfd pfd;

    pfd.fd = it->fd;
    pfd.events = POLLIN;
    while (poll(&pfd, 1, -1) < 0)
        if (errno != EINTR)
            return prun__err_sys(err, "%s:%u:%u: cannot wait for '%s'",
                it->job && it->job->path ? it->job->path : "?", it->f->pos.line,
                it->f->pos.col, it->f->path);
    it->gate = 0;
    return 0;
}

/*
 * Reads the next line of a lines source into buf as item i. Returns 1 for a
 * line, 0 at the end of the input, PRUN_ITER_AGAIN when a stream has
 * nothing more yet (the line so far is kept for the next call), or a
 * negative PRUN_E*.
 */
static int next_line(struct prun_iter *it, size_t i, struct prun_err *err)
{
    char sep = sep_of(it);
    size_t start;

    if (!it->in_line) {
        it->offs[i] = it->buf.len;
        it->in_line = 1;
        it->line_got = 0;
    }
    start = it->offs[i];
    for (;;) {
        char *p, *z, *s = it->rbuf + it->rpos;
        size_t avail = it->rend - it->rpos, len;
        ssize_t n;

        if (avail > 0) {
            it->line_got = 1;
            p = memchr(s, sep, avail);
            len = p != NULL ? (size_t)(p - s) : avail;
            z = sep ? memchr(s, '\0', len) : NULL;
            if (z != NULL)
                return nul_error(it, it->lineno + 1, err);
            /* A line longer than the buffer continues in the next read. */
            if (prun__buf_add(&it->buf, s, len) < 0)
                return PRUN_ENOMEM;
            it->rpos += len;
            if (p != NULL) {
                it->rpos++;
                break;
            }
        }
        if (it->eof)
            break;
        if (it->gate) {
            if (it->async)
                return PRUN_ITER_AGAIN;
            if (wait_readable(it, err) < 0)
                return PRUN_ESYS;
        }
        n = read(it->fd, it->rbuf, READ_SIZE);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            it->gate = 1;
            continue;
        }
        if (n < 0)
            return prun__err_sys(err, "%s:%u:%u: cannot read '%s'",
                it->job && it->job->path ? it->job->path : "?", it->f->pos.line,
                it->f->pos.col, it->f->path);
        /* One read per readiness: the next one could block otherwise. */
        if (it->stream)
            it->gate = 1;
        it->rpos = 0;
        it->rend = (size_t)n;
        if (n == 0)
            it->eof = 1;
    }
    it->in_line = 0;
    if (!it->line_got)
        return 0;
    it->lineno++;
    /*
     * CRLF line ends lose their CR, the last line's included, whether or
     * not it ends in a newline: every line is treated the same.
     */
    if (!it->f->nul_sep && it->buf.len > start &&
        it->buf.data[it->buf.len - 1] == '\r')
        it->buf.len--;
    if (prun__buf_addc(&it->buf, '\0') < 0)
        return PRUN_ENOMEM;
    return 1;
}

int prun__iter_next(
    struct prun_iter *it, const struct prun_item **items, struct prun_err *err)
{
    const struct prun_foreach *f = it->f;
    size_t n, i;
    int rc = 0;

    if (it->failed) {
        if (err != NULL)
            *err = it->fail;
        return it->fail.code;
    }
    if (!it->pending) {
        prun__buf_reset(&it->buf);
        it->have = 0;
    }
    n = it->have;
    while (n < it->chunk && !it->ended) {
        struct prun_item *item = &it->items[n];

        if (!it->in_line)
            memset(item, 0, sizeof(*item));
        if (f->kind != PRUN_SRC_LINES && it->pos >= it->nall) {
            it->ended = 1;
            break;
        }
        switch (f->kind) {
        case PRUN_SRC_NONE:
            item->text = "";
            break;
        case PRUN_SRC_LIST:
            *item = f->list[it->pos];
            break;
        case PRUN_SRC_GLOB:
            item->text = it->gl.gl_pathv[it->pos];
            break;
        case PRUN_SRC_RANGE:
            rc = next_range(it, n);
            break;
        case PRUN_SRC_MATRIX:
            rc = next_matrix(it, n);
            break;
        case PRUN_SRC_LINES:
            rc = next_line(it, n, err);
            if (rc == PRUN_ITER_AGAIN) {
                it->pending = 1;
                it->have = n;
                return PRUN_ITER_AGAIN;
            }
            if (rc == 0)
                it->ended = 1;
            if (rc <= 0)
                break;
            rc = 0;
            break;
        default:
            it->ended = 1;
            break;
        }
        if (rc < 0)
            goto fail;
        if (it->ended)
            break;
        it->pos++;
        n++;
    }
    it->pending = 0;
    it->have = 0;
    if (n == 0 && it->pos == 0 && it->strict) {
        rc = empty_error(it, err);
        goto fail;
    }
    /* buf may have moved while it grew, so texts are pointed at only now. */
    if (f->kind == PRUN_SRC_RANGE || f->kind == PRUN_SRC_MATRIX ||
        f->kind == PRUN_SRC_LINES)
        for (i = 0; i < n; i++)
            it->items[i].text = it->buf.data + it->offs[i];
    *items = it->items;
    return (int)n;
fail:
    if (rc == PRUN_ENOMEM)
        prun__err_set(err, PRUN_ENOMEM, "out of memory");
    it->failed = 1;
    it->ended = 1;
    if (err != NULL)
        it->fail = *err;
    else
        it->fail.code = rc;
    return rc;
}

int prun__iter_fd(const struct prun_iter *it)
{
    return it != NULL && it->pending && it->gate ? it->fd : -1;
}

void prun__iter_readable(struct prun_iter *it)
{
    if (it != NULL)
        it->gate = 0;
}

long long prun__iter_count(const struct prun_iter *it)
{
    return it->count;
}

void prun__iter_free(struct prun_iter *it)
{
    if (it == NULL)
        return;
    if (it->own_fd && it->fd >= 0)
        close(it->fd);
    if (it->old_flags >= 0)
        fcntl(0, F_SETFL, it->old_flags);
    if (it->have_gl)
        globfree(&it->gl);
    free(it->rbuf);
    free(it->idx);
    free(it->keys);
    free(it->vals);
    free(it->items);
    free(it->offs);
    prun__buf_free(&it->buf);
    free(it);
}

int prun__task_source_deferred(const struct prun_task *t)
{
    return t->nneeds > 0 && (t->foreach.kind == PRUN_SRC_LINES ||
                                t->foreach.kind == PRUN_SRC_GLOB);
}

int prun__job_check_sources(const struct prun_job *job, struct prun_err *err)
{
    struct prun_iter *it = NULL;
    const struct prun_foreach *stdin_by = NULL;
    struct stat st;
    size_t t;
    int rc;

    for (t = 0; t < job->ntasks; t++) {
        const struct prun_foreach *f = &job->tasks[t].foreach;

        /* Two readers of one stdin would each get some lines, at random. */
        if (f->kind == PRUN_SRC_LINES && strcmp(f->path, "-") == 0) {
            if (stdin_by != NULL)
                return prun__err_set(err, PRUN_EINVAL,
                    "%s:%u:%u: only one task can read stdin ('lines: -'); "
                    "line %u reads it already",
                    job->path ? job->path : "?", f->pos.line, f->pos.col,
                    stdin_by->pos.line);
            stdin_by = f;
        }

        if (prun__task_source_deferred(&job->tasks[t]))
            continue;
        /*
         * Only regular files are opened: opening a FIFO and closing it
         * again would let its writer in and then break its pipe, and
         * stdin is the run's to read.
         */
        if (f->kind == PRUN_SRC_LINES) {
            rc = strcmp(f->path, "-") == 0 ? fstat(0, &st) : stat(f->path, &st);
            if (rc < 0)
                return fail_at(err, job, f, "open");
            if (S_ISDIR(st.st_mode)) {
                errno = EISDIR;
                return fail_at(err, job, f, "open");
            }
            if (!S_ISREG(st.st_mode) || strcmp(f->path, "-") == 0)
                continue;
        }
        rc = prun__iter_open_flags(job, f, PRUN_ITER_STRICT, &it, err);
        if (rc < 0)
            return rc;
        prun__iter_free(it);
        it = NULL;
    }
    return 0;
}
