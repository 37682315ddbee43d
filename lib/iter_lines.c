/* SPDX-License-Identifier: MIT */
/*
 * iter_lines: the `lines` foreach source. A regular file is counted once
 * (so the number of instances is known) and read again through a fixed
 * buffer, so only the current instance's lines are ever held in memory;
 * a line longer than the buffer is gathered across reads. A pipe, FIFO or
 * terminal is read once, one read() per readiness (asked of the caller's
 * event loop in async mode, waited for with poll otherwise), and a line
 * is gathered across calls. Lines end with a newline (CRLF too) or a NUL;
 * a NUL inside a newline-separated line is refused.
 *
 * This module is not the other sources or the grouping into instances
 * (iter.c).
 */
#include "iter_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Read size for lines files, both when counting and when iterating. */
#define READ_SIZE (64 * 1024)

/* The name a lines source goes by in messages. */
const char *prun__iter_lines_name(const struct prun_foreach *f)
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
            "%s item %llu contains a NUL byte; %s", prun__iter_lines_name(f),
            line, f->nul_hint);
    return prun__err_set(err, PRUN_EINVAL,
        "%s:%llu: NUL byte in a line (foreach 'lines' at %s:%u:%u; for "
        "NUL-separated items set 'separator: nul')",
        prun__iter_lines_name(f), line,
        it->job && it->job->path ? it->job->path : "?", f->pos.line,
        f->pos.col);
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

int prun__iter_open_lines(struct prun_iter *it, struct prun_err *err)
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
            return prun__iter_fail_at(err, it->job, f, "open");
        it->own_fd = 1;
    }
    if (fstat(it->fd, &st) < 0)
        return prun__iter_fail_at(err, it->job, f, "open");
    if (S_ISDIR(st.st_mode)) {
        errno = EISDIR;
        return prun__iter_fail_at(err, it->job, f, "open");
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
    it->count = prun__iter_instances(it->nall, it->chunk);
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
int prun__iter_next_line(struct prun_iter *it, size_t i, struct prun_err *err)
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
