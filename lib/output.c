/* SPDX-License-Identifier: MIT */
/*
 * output: the children's stdout and stderr on their way to the user.
 *
 * Grouped mode keeps an instance's output until it ends, so lines of
 * different instances never interleave. Up to SPILL_AT bytes per stream stay
 * in memory; past that the stream moves to an unlinked temporary file, so
 * the runner's memory does not grow with what children print. Tag mode
 * instead streams complete lines with a "task[index]\t" prefix.
 *
 * This module never decides whether an instance failed; the runner tells it
 * whether to print when an attempt ends.
 */
#include "output_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPILL_AT     (64 * 1024)
#define TAIL_LINES   5
#define LINE_MAX_TAG (64 * 1024)

int prun__write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;

    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};

            if (errno == EINTR)
                continue;
            /* A non-blocking stdout (inherited): wait until it drains. */
            if (errno == EAGAIN && poll(&pfd, 1, -1) >= 0)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Tag mode prints lines as they come, unless output is held (--quiet, -k). */
static int streaming(const struct prun_output *o)
{
    return o->opts.mode == PRUN_OUT_TAG && !o->opts.quiet &&
           !o->opts.keep_order;
}

static int release_held(struct prun_output *o, int all, struct prun_err *err);

/* An unlinked temporary file in dir, or -1 with errno set. */
static int tmpfile_in(const char *dir)
{
    char tmpl[PATH_MAX + 32];
    int fd;

    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    /* Filesystems without O_TMPFILE: a named file, unlinked at once. */
    if (snprintf(tmpl, sizeof(tmpl), "%s/parallelrun-out-XXXXXX", dir) >=
        (int)sizeof(tmpl)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = mkostemp(tmpl, O_CLOEXEC);
    if (fd >= 0)
        unlink(tmpl);
    return fd;
}

/*
 * Where output past SPILL_AT goes: $TMPDIR, else /var/tmp, else /tmp.
 * Returns an open spill file, remembering the directory that worked, or -1
 * with o->spill_why saying why none did.
 */
static int open_spill(struct prun_output *o)
{
    const char *env = getenv("TMPDIR");
    const char *cand[4];
    size_t i, n = 0;
    int fd;

    if (o->tmpdir[0] != '\0') {
        fd = tmpfile_in(o->tmpdir);
        if (fd >= 0)
            return fd;
    }
    if (env != NULL && *env != '\0')
        cand[n++] = env;
    cand[n++] = "/var/tmp";
    cand[n++] = "/tmp";
    o->spill_why[0] = '\0';
    for (i = 0; i < n; i++) {
        size_t len = strlen(o->spill_why);

        fd = tmpfile_in(cand[i]);
        if (fd >= 0) {
            snprintf(o->tmpdir, sizeof(o->tmpdir), "%s", cand[i]);
            return fd;
        }
        snprintf(o->spill_why + len, sizeof(o->spill_why) - len, "%s%s: %s",
            len ? "; " : "", cand[i], strerror(errno));
    }
    o->tmpdir[0] = '\0';
    return -1;
}

/* Picks the spill directory up front, so a bad $TMPDIR is said at once. */
static void choose_tmpdir(struct prun_output *o)
{
    const char *env = getenv("TMPDIR");
    int fd;

    if (env != NULL && *env != '\0') {
        fd = tmpfile_in(env);
        if (fd >= 0) {
            close(fd);
            snprintf(o->tmpdir, sizeof(o->tmpdir), "%s", env);
            return;
        }
    }
    fd = open_spill(o);
    if (fd >= 0)
        close(fd);
    if (fd >= 0 && env != NULL && *env != '\0')
        snprintf(o->note, sizeof(o->note),
            "TMPDIR is unusable (%.200s): output past 64 KiB is kept in "
            "%.200s instead",
            o->spill_why, o->tmpdir);
    else if (fd < 0)
        snprintf(o->note, sizeof(o->note),
            "no directory can hold output past 64 KiB (%.300s)%s", o->spill_why,
            o->opts.results_dir ? ": it is read back from the results files"
                                : ": past that, output is cut");
}

int prun__output_new(const struct prun_output_opts *opts,
    struct prun_output **out, struct prun_err *err)
{
    struct prun_output *o;
    int rc = 0;

    o = calloc(1, sizeof(*o));
    if (o == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    o->opts = *opts;
    o->joblog_fd = -1;
    o->results_fd = -1;
    if (opts->joblog != NULL && (rc = prun__out_open_joblog(o, err)) < 0)
        goto fail;
    if (opts->results_dir != NULL && (rc = prun__out_results_root(o, err)) < 0)
        goto fail;
    if (opts->mode == PRUN_OUT_GROUP ||
        (opts->mode == PRUN_OUT_TAG && !streaming(o)))
        choose_tmpdir(o);
    *out = o;
    return 0;
fail:
    if (o->joblog_fd >= 0)
        close(o->joblog_fd);
    free(o);
    return rc;
}

const char *prun__output_note(const struct prun_output *o)
{
    return o != NULL ? o->note : "";
}

void prun__output_free(struct prun_output *o)
{
    if (o == NULL)
        return;
    /* Indices that never ran (skipped, halted) no longer hold the rest. */
    release_held(o, 1, NULL);
    free(o->held);
    prun__output_progress_clear(o);
    if (o->joblog_fd >= 0)
        close(o->joblog_fd);
    prun__out_close_manifests(o);
    if (o->results_fd >= 0) {
        close(o->results_fd);
        /* A run that started nothing leaves no empty directory behind. */
        rmdir(o->results_path);
    }
    prun__buf_free(&o->line);
    free(o);
}

struct prun_capture *prun__capture_new(struct prun_output *o, const char *task,
    unsigned long long index, struct prun_err *err)
{
    struct prun_capture *c;
    int i;

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        prun__err_set(err, PRUN_ENOMEM, "out of memory");
        return NULL;
    }
    c->o = o;
    c->index = index;
    snprintf(c->prefix, sizeof(c->prefix), "%s[%llu]\t", task, index);
    snprintf(c->name, sizeof(c->name), "%s[%llu]", task, index);
    for (i = 0; i < 2; i++) {
        c->s[i].fd = i + 1;
        c->s[i].spill_fd = -1;
        c->s[i].results_fd = -1;
        c->s[i].last = '\n';
    }
    if (o->results_fd >= 0 && prun__out_open_results(c, task, index, err) < 0) {
        for (i = 0; i < 2; i++) {
            if (c->s[i].results_fd >= 0)
                close(c->s[i].results_fd);
            free(c->s[i].results_path);
        }
        free(c);
        return NULL;
    }
    return c;
}

static void tail_add(struct prun_capture *c, const char *data, size_t n)
{
    size_t i;

    if (n > TAIL_BYTES) {
        data += n - TAIL_BYTES;
        n = TAIL_BYTES;
    }
    for (i = 0; i < n; i++) {
        c->tail[c->tail_pos] = data[i];
        c->tail_pos = (c->tail_pos + 1) % TAIL_BYTES;
    }
    c->tail_len = c->tail_len + n > TAIL_BYTES ? TAIL_BYTES : c->tail_len + n;
}

static void print_bytes(struct prun_output *o, int fd, const char *p, size_t n)
{
    if (fd == 1 && o->stdout_broken)
        return;
    if (prun__write_all(fd, p, n) < 0 && fd == 1 && errno == EPIPE)
        o->stdout_broken = 1;
}

/*
 * Tag mode: prints one piece of a line with the prefix, and a newline if
 * the piece has none (a partial last line, or a piece of a giant line).
 * One write per line keeps lines whole between instances.
 */
static void tag_emit(
    struct prun_capture *c, struct stream *s, const char *p, size_t n)
{
    struct prun_output *o = c->o;
    struct prun_buf *line = &o->line;
    int nl = n > 0 && p[n - 1] == '\n';
    const char *prefix = c->tag ? c->tag : c->prefix;

    if (o->progress_shown)
        prun__output_progress_clear(o);
    prun__buf_reset(line);
    if (prun__buf_adds(line, prefix) == 0 && prun__buf_add(line, p, n) == 0 &&
        (nl || prun__buf_addc(line, '\n') == 0)) {
        print_bytes(o, s->fd, line->data, line->len);
        return;
    }
    /* Out of memory: the same bytes, in three writes. */
    print_bytes(o, s->fd, prefix, strlen(prefix));
    print_bytes(o, s->fd, p, n);
    if (!nl)
        print_bytes(o, s->fd, "\n", 1);
}

static void tag_flush(struct prun_capture *c, struct stream *s)
{
    if (s->partial.len > 0)
        tag_emit(c, s, s->partial.data, s->partial.len);
    prun__buf_reset(&s->partial);
}

/*
 * Tag mode: prints every complete line with the prefix. An incomplete last
 * line waits in s->partial, which never holds more than LINE_MAX_TAG
 * bytes: a longer line is printed once, in tagged pieces of that size.
 * Every byte given is consumed.
 */
static void feed_tagged(
    struct prun_capture *c, struct stream *s, const char *data, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        size_t want = nl != NULL ? (size_t)(nl - data) + 1 : n;
        size_t room = LINE_MAX_TAG - s->partial.len;
        size_t take = want < room ? want : room;
        int complete = (nl != NULL && take == want) ||
                       s->partial.len + take >= LINE_MAX_TAG;

        if (s->partial.len == 0 && complete) {
            /* A whole line (or a whole piece): no need to copy it. */
            tag_emit(c, s, data, take);
        } else if (prun__buf_add(&s->partial, data, take) < 0) {
            tag_flush(c, s);
            tag_emit(c, s, data, take);
        } else if (complete) {
            tag_flush(c, s);
        }
        data += take;
        n -= take;
    }
}

/*
 * Grouped mode: keeps the bytes until the attempt ends. Past SPILL_AT they
 * go to a spill file, or stay only in the results file when there is one;
 * when neither can hold them they are counted and dropped, so memory stays
 * bounded whatever the child prints.
 */
static int keep(struct prun_capture *c, struct stream *s, const char *data,
    size_t n, struct prun_err *err)
{
    struct prun_output *o = c->o;
    const char *what = s->fd == 1 ? "stdout" : "stderr";

    if (s->dropped > 0) {
        s->dropped += n;
        return 0;
    }
    if (s->from_results) {
        if (s->results_failed)
            s->dropped += n;
        return 0;
    }
    if (s->spill_fd < 0 && s->mem.len + n <= SPILL_AT) {
        if (prun__buf_add(&s->mem, data, n) == 0)
            return 0;
        s->dropped += n;
        return prun__err_set(err, PRUN_ENOMEM,
            "%s: out of memory: %s output dropped", c->name, what);
    }
    if (s->spill_fd < 0) {
        if (s->results_fd >= 0 && !s->results_failed) {
            s->from_results = 1;
            prun__buf_free(&s->mem);
            return 0;
        }
        s->spill_fd = open_spill(o);
        if (s->spill_fd < 0) {
            s->dropped += n;
            return prun__err_set(err, PRUN_ESYS,
                "%s: %s past 64 KiB dropped: no directory can hold it (%s)",
                c->name, what, o->spill_why);
        }
        if (prun__write_all(s->spill_fd, s->mem.data, s->mem.len) < 0) {
            s->dropped += s->mem.len + n;
            prun__buf_reset(&s->mem);
            return prun__err_sys(err,
                "%s: %s past 64 KiB dropped: cannot write a spill file in %s",
                c->name, what, o->tmpdir);
        }
        prun__buf_free(&s->mem);
    }
    if (prun__write_all(s->spill_fd, data, n) < 0) {
        s->dropped += n;
        return prun__err_sys(err,
            "%s: the rest of its %s is dropped: cannot write a spill file in "
            "%s",
            c->name, what, o->tmpdir);
    }
    return 0;
}

int prun__capture_feed(struct prun_capture *c, int stream, const char *data,
    size_t n, struct prun_err *err)
{
    struct stream *s = &c->s[stream == 2 ? 1 : 0];
    int rc = 0;

    s->bytes += n;
    if (stream == 2)
        tail_add(c, data, n);
    if (s->results_fd >= 0 && !s->results_failed &&
        prun__write_all(s->results_fd, data, n) < 0) {
        rc = prun__err_sys(err, "cannot write '%s'",
            s->results_path ? s->results_path : "results file");
        s->results_failed = 1;
    }
    if (streaming(c->o)) {
        feed_tagged(c, s, data, n);
        return rc;
    }
    if (c->o->opts.mode == PRUN_OUT_NONE)
        return rc;
    if (keep(c, s, data, n, rc < 0 ? NULL : err) < 0 && rc == 0)
        rc = err != NULL ? err->code : PRUN_ESYS;
    return rc;
}

const char *prun__capture_err_tail(struct prun_capture *c)
{
    size_t start = (c->tail_pos + TAIL_BYTES - c->tail_len) % TAIL_BYTES;
    size_t i, n = c->tail_len, lines = 0;
    char *t = c->tail_out;

    /* A NUL byte would end the string early: it shows as a space. */
    for (i = 0; i < n; i++) {
        t[i] = c->tail[(start + i) % TAIL_BYTES];
        if (t[i] == '\0')
            t[i] = ' ';
    }
    while (n > 0 && t[n - 1] == '\n')
        n--;
    t[n] = '\0';
    /* Keep the last TAIL_LINES lines. */
    for (i = n; i > 0; i--) {
        if (t[i - 1] == '\n' && ++lines == TAIL_LINES)
            return t + i;
    }
    return t;
}

uint64_t prun__capture_bytes(const struct prun_capture *c, int stream)
{
    return c->s[stream == 2 ? 1 : 0].bytes;
}

/* Prints kept bytes: tagged line by line in tag mode (with --quiet). */
static void emit(
    struct prun_capture *c, struct stream *s, const char *p, size_t n)
{
    if (n == 0)
        return;
    if (c->o->opts.mode == PRUN_OUT_TAG)
        feed_tagged(c, s, p, n);
    else
        print_bytes(c->o, s->fd, p, n);
    s->last = p[n - 1];
}

static void print_stream(struct prun_capture *c, struct stream *s)
{
    struct prun_output *o = c->o;
    int src = s->spill_fd >= 0  ? s->spill_fd
              : s->from_results ? s->results_fd
                                : -1;

    if (src >= 0) {
        off_t off = 0;

        for (;;) {
            ssize_t got;

            if (s->fd == 1 && o->stdout_broken)
                break;
            got = pread(src, o->io, sizeof(o->io), off);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0)
                break;
            emit(c, s, o->io, (size_t)got);
            off += got;
        }
    } else {
        emit(c, s, s->mem.data, s->mem.len);
    }
    if (s->dropped > 0) {
        char note[200];
        int len = snprintf(note, sizeof(note),
            "%sparallelrun: %s: %llu more bytes of %s were dropped: no room "
            "to keep them\n",
            s->last == '\n' ? "" : "\n", c->name,
            (unsigned long long)s->dropped, s->fd == 1 ? "stdout" : "stderr");

        if (len > 0)
            emit(c, s, note,
                (size_t)len < sizeof(note) ? (size_t)len : sizeof(note) - 1);
    }
    if (o->opts.mode == PRUN_OUT_TAG)
        tag_flush(c, s);
}

int prun__capture_finish(
    struct prun_capture *c, int print, struct prun_err *err)
{
    struct prun_output *o;
    int i, rc = 0;

    if (c == NULL)
        return 0;
    o = c->o;
    if (print && o->opts.mode != PRUN_OUT_NONE) {
        int cleared = o->progress_shown;

        if (cleared)
            prun__output_progress_clear(o);
        for (i = 0; i < 2; i++) {
            struct stream *s = &c->s[i];

            if (streaming(o))
                tag_flush(c, s);
            else
                print_stream(c, s);
        }
        if (cleared && o->progress_line[0] != '\0') {
            prun__write_all(2, o->progress_line, strlen(o->progress_line));
            o->progress_shown = 1;
        }
    }
    for (i = 0; i < 2; i++) {
        struct stream *s = &c->s[i];

        if (s->results_fd >= 0 && close(s->results_fd) < 0 && rc == 0)
            rc = prun__err_sys(err, "cannot write '%s'",
                s->results_path ? s->results_path : "results file");
        free(s->results_path);
        if (s->spill_fd >= 0)
            close(s->spill_fd);
        prun__buf_free(&s->mem);
        prun__buf_free(&s->partial);
    }
    free(c->tag);
    free(c);
    return rc;
}

int prun__capture_set_tag(struct prun_capture *c, const char *tag)
{
    size_t n = strlen(tag);
    char *t = malloc(n + 2);

    if (t == NULL)
        return PRUN_ENOMEM;
    memcpy(t, tag, n);
    t[n] = '\t';
    t[n + 1] = '\0';
    free(c->tag);
    c->tag = t;
    return 0;
}

/* Prints the held captures whose turn has come (all: every one), in order. */
static int release_held(struct prun_output *o, int all, struct prun_err *err)
{
    struct prun_capture *c;
    size_t i, best;
    int rc = 0;

    while (o->nheld > 0) {
        for (i = 1, best = 0; i < o->nheld; i++)
            if (o->held[i]->index < o->held[best]->index)
                best = i;
        if (!all && o->held[best]->index != o->next_index)
            break;
        c = o->held[best];
        o->held[best] = o->held[--o->nheld];
        o->next_index = c->index + 1;
        if (prun__capture_finish(c, c->print, rc < 0 ? NULL : err) < 0 &&
            rc == 0)
            rc = err ? err->code : PRUN_ESYS;
    }
    return rc;
}

void prun__output_release(struct prun_output *o)
{
    if (o != NULL)
        release_held(o, 1, NULL);
}

int prun__capture_finish_ordered(
    struct prun_capture *c, int print, int final, struct prun_err *err)
{
    struct prun_output *o;

    if (c == NULL)
        return 0;
    o = c->o;
    if (!o->opts.keep_order || !final)
        return prun__capture_finish(c, print, err);
    if (o->nheld == o->held_cap) {
        size_t ncap = o->held_cap ? o->held_cap * 2 : 16;
        void *p = realloc(o->held, ncap * sizeof(*o->held));
        if (p == NULL) /* No room to wait: print it now, out of order. */
            return prun__capture_finish(c, print, err);
        o->held = p;
        o->held_cap = ncap;
    }
    c->print = print;
    o->held[o->nheld++] = c;
    return release_held(o, 0, err);
}
