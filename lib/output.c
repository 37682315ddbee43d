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
#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPILL_AT     (64 * 1024)
#define TAIL_BYTES   1024
#define TAIL_LINES   5
#define LINE_MAX_TAG (64 * 1024)

struct prun_output {
    struct prun_output_opts opts;
    int joblog_fd;
    int stdout_broken; /* EPIPE on stdout: stop printing, keep running */
    int progress_shown;
    char progress_line[256];
    char tmpdir[PATH_MAX];
};

struct stream {
    int fd;              /* where it is printed: 1 or 2 */
    struct prun_buf mem; /* grouped: captured bytes, until spilled */
    int spill_fd;        /* grouped: -1, or the temp file holding all */
    uint64_t bytes;
    int results_fd;          /* -1, or DIR/RUN/TASK/INDEX.{out,err} */
    char *results_path;      /* its name, for messages */
    struct prun_buf partial; /* tag: an incomplete last line */
};

struct prun_capture {
    struct prun_output *o;
    char prefix[96]; /* "task[index]\t" */
    struct stream s[2];
    char tail[TAIL_BYTES]; /* ring of the last stderr bytes */
    size_t tail_len, tail_pos;
    char tail_out[TAIL_BYTES + 1];
};

int prun_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;

    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int prun_output_new(const struct prun_output_opts *opts,
    struct prun_output **out, struct prun_err *err)
{
    struct prun_output *o;
    const char *t = getenv("TMPDIR");
    static const char header[] = "Seq\tHost\tStarttime\tJobRuntime\tSend\t"
                                 "Receive\tExitval\tSignal\tCommand\n";

    o = calloc(1, sizeof(*o));
    if (o == NULL)
        return prun_err_set(err, PRUN_ENOMEM, "out of memory");
    o->opts = *opts;
    o->joblog_fd = -1;
    snprintf(o->tmpdir, sizeof(o->tmpdir), "%s", t && *t ? t : "/tmp");
    if (opts->joblog != NULL) {
        o->joblog_fd = open(opts->joblog,
            O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
        if (o->joblog_fd < 0) {
            int rc = prun_err_sys(err, "cannot open joblog '%s'", opts->joblog);
            free(o);
            return rc;
        }
        if (prun_write_all(o->joblog_fd, header, sizeof(header) - 1) < 0) {
            int rc =
                prun_err_sys(err, "cannot write joblog '%s'", opts->joblog);
            close(o->joblog_fd);
            free(o);
            return rc;
        }
    }
    *out = o;
    return 0;
}

void prun_output_free(struct prun_output *o)
{
    if (o == NULL)
        return;
    prun_output_progress_clear(o);
    if (o->joblog_fd >= 0)
        close(o->joblog_fd);
    free(o);
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

static int open_results(struct prun_capture *c, const char *task,
    unsigned long long index, struct prun_err *err)
{
    const struct prun_output_opts *opts = &c->o->opts;
    char dir[PATH_MAX], path[PATH_MAX + 32];
    int i;

    if (snprintf(dir, sizeof(dir), "%s/%s/%s", opts->results_dir, opts->run_id,
            task) >= (int)sizeof(dir))
        return prun_err_set(err, PRUN_EINVAL, "results path too long");
    if (mkdirs(dir) < 0)
        return prun_err_sys(err, "cannot create results directory '%s'", dir);
    for (i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%llu.%s", dir, index,
            i == 0 ? "out" : "err");
        c->s[i].results_fd =
            open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (c->s[i].results_fd < 0)
            return prun_err_sys(err, "cannot create '%s'", path);
        c->s[i].results_path = strdup(path);
    }
    return 0;
}

struct prun_capture *prun_capture_new(struct prun_output *o, const char *task,
    unsigned long long index, struct prun_err *err)
{
    struct prun_capture *c;
    int i;

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        prun_err_set(err, PRUN_ENOMEM, "out of memory");
        return NULL;
    }
    c->o = o;
    snprintf(c->prefix, sizeof(c->prefix), "%s[%llu]\t", task, index);
    for (i = 0; i < 2; i++) {
        c->s[i].fd = i + 1;
        c->s[i].spill_fd = -1;
        c->s[i].results_fd = -1;
    }
    if (o->opts.results_dir != NULL && open_results(c, task, index, err) < 0) {
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

static int open_spill(struct prun_output *o)
{
    char tmpl[PATH_MAX + 32];
    int fd;

    fd = open(o->tmpdir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    /* Filesystems without O_TMPFILE: a named file, unlinked at once. */
    snprintf(tmpl, sizeof(tmpl), "%s/parallelrun-out-XXXXXX", o->tmpdir);
    fd = mkostemp(tmpl, O_CLOEXEC);
    if (fd >= 0)
        unlink(tmpl);
    return fd;
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
    if (prun_write_all(fd, p, n) < 0 && fd == 1 && errno == EPIPE)
        o->stdout_broken = 1;
}

/* Tag mode: print every complete line with the prefix. */
static int feed_tagged(
    struct prun_capture *c, struct stream *s, const char *data, size_t n)
{
    struct prun_output *o = c->o;
    const char *nl;

    while (n > 0) {
        nl = memchr(data, '\n', n);
        if (nl == NULL) {
            if (prun_buf_add(&s->partial, data, n) < 0)
                return PRUN_ENOMEM;
            if (s->partial.len >= LINE_MAX_TAG) {
                /* A giant line is printed in pieces rather than buffered. */
                if (prun_buf_addc(&s->partial, '\n') < 0)
                    return PRUN_ENOMEM;
                goto flush;
            }
            return 0;
        }
        if (prun_buf_add(&s->partial, data, (size_t)(nl - data) + 1) < 0)
            return PRUN_ENOMEM;
        n -= (size_t)(nl - data) + 1;
        data = nl + 1;
    flush:
        if (o->progress_shown)
            prun_output_progress_clear(o);
        {
            /* One write per line keeps lines whole between instances. */
            struct prun_buf line = {0};
            if (prun_buf_adds(&line, c->prefix) < 0 ||
                prun_buf_add(&line, s->partial.data, s->partial.len) < 0) {
                prun_buf_free(&line);
                return PRUN_ENOMEM;
            }
            print_bytes(o, s->fd, line.data, line.len);
            prun_buf_free(&line);
        }
        prun_buf_reset(&s->partial);
    }
    return 0;
}

int prun_capture_feed(struct prun_capture *c, int stream, const char *data,
    size_t n, struct prun_err *err)
{
    struct stream *s = &c->s[stream == 2 ? 1 : 0];
    int rc = 0;

    s->bytes += n;
    if (stream == 2)
        tail_add(c, data, n);
    if (s->results_fd >= 0 && prun_write_all(s->results_fd, data, n) < 0) {
        rc = prun_err_sys(err, "cannot write '%s'",
            s->results_path ? s->results_path : "results file");
        close(s->results_fd);
        s->results_fd = -1;
    }
    if (c->o->opts.mode == PRUN_OUT_TAG && !c->o->opts.quiet)
        return feed_tagged(c, s, data, n) < 0
                   ? prun_err_set(err, PRUN_ENOMEM, "out of memory")
                   : rc;
    if (c->o->opts.mode == PRUN_OUT_NONE)
        return rc;
    if (s->spill_fd < 0 && s->mem.len + n > SPILL_AT) {
        s->spill_fd = open_spill(c->o);
        if (s->spill_fd < 0 ||
            prun_write_all(s->spill_fd, s->mem.data, s->mem.len) < 0) {
            if (s->spill_fd >= 0)
                close(s->spill_fd);
            s->spill_fd = -1;
            /* Keep the output in memory rather than lose it. */
            return prun_buf_add(&s->mem, data, n) < 0
                       ? prun_err_set(err, PRUN_ENOMEM, "out of memory")
                       : rc;
        }
        prun_buf_free(&s->mem);
    }
    if (s->spill_fd >= 0) {
        if (prun_write_all(s->spill_fd, data, n) < 0)
            return prun_err_sys(
                err, "cannot write output spill file in %s", c->o->tmpdir);
        return rc;
    }
    if (prun_buf_add(&s->mem, data, n) < 0)
        return prun_err_set(err, PRUN_ENOMEM, "out of memory");
    return rc;
}

const char *prun_capture_err_tail(struct prun_capture *c)
{
    size_t start = (c->tail_pos + TAIL_BYTES - c->tail_len) % TAIL_BYTES;
    size_t i, n = c->tail_len, lines = 0;
    char *t = c->tail_out;

    for (i = 0; i < n; i++)
        t[i] = c->tail[(start + i) % TAIL_BYTES];
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

uint64_t prun_capture_bytes(const struct prun_capture *c, int stream)
{
    return c->s[stream == 2 ? 1 : 0].bytes;
}

static void print_stream(struct prun_output *o, struct stream *s)
{
    if (s->spill_fd >= 0) {
        off_t off = 0;
        struct stat st;

        if (fstat(s->spill_fd, &st) < 0)
            return;
        while (off < st.st_size) {
            ssize_t w;

            if (s->fd == 1 && o->stdout_broken)
                return;
            w = sendfile(s->fd, s->spill_fd, &off, (size_t)(st.st_size - off));
            if (w <= 0) {
                if (w < 0 && errno == EINTR)
                    continue;
                if (w < 0 && errno == EPIPE && s->fd == 1)
                    o->stdout_broken = 1;
                return;
            }
        }
        return;
    }
    if (s->mem.len > 0)
        print_bytes(o, s->fd, s->mem.data, s->mem.len);
}

int prun_capture_finish(struct prun_capture *c, int print, struct prun_err *err)
{
    struct prun_output *o;
    int i, rc = 0;

    if (c == NULL)
        return 0;
    o = c->o;
    if (print && o->opts.mode != PRUN_OUT_NONE) {
        int cleared = o->progress_shown;

        if (cleared)
            prun_output_progress_clear(o);
        for (i = 0; i < 2; i++) {
            struct stream *s = &c->s[i];

            if (o->opts.mode == PRUN_OUT_TAG && !o->opts.quiet) {
                if (s->partial.len > 0 && feed_tagged(c, s, "\n", 1) < 0)
                    rc = prun_err_set(err, PRUN_ENOMEM, "out of memory");
            } else {
                print_stream(o, s);
            }
        }
        if (cleared && o->progress_line[0] != '\0') {
            prun_write_all(2, o->progress_line, strlen(o->progress_line));
            o->progress_shown = 1;
        }
    }
    for (i = 0; i < 2; i++) {
        struct stream *s = &c->s[i];

        if (s->results_fd >= 0 && close(s->results_fd) < 0 && rc == 0)
            rc = prun_err_sys(err, "cannot write '%s'",
                s->results_path ? s->results_path : "results file");
        free(s->results_path);
        if (s->spill_fd >= 0)
            close(s->spill_fd);
        prun_buf_free(&s->mem);
        prun_buf_free(&s->partial);
    }
    free(c);
    return rc;
}

int prun_output_joblog(struct prun_output *o, const struct prun_joblog_row *r,
    struct prun_err *err)
{
    struct prun_buf b = {0};
    int rc = 0;

    if (o->joblog_fd < 0)
        return 0;
    if (prun_buf_printf(&b, "%llu\t:\t%lld.%03lld\t%10.3f\t0\t0\t%d\t%d\t%s\n",
            r->seq, (long long)(r->start_wall_ms / 1000),
            (long long)(r->start_wall_ms % 1000),
            (double)r->runtime_ms / 1000.0, r->exitval, r->signal,
            r->command) < 0)
        rc = prun_err_set(err, PRUN_ENOMEM, "out of memory");
    else if (prun_write_all(o->joblog_fd, b.data, b.len) < 0)
        rc = prun_err_sys(err, "cannot write joblog '%s'", o->opts.joblog);
    prun_buf_free(&b);
    return rc;
}

void prun_output_progress(struct prun_output *o, const struct prun_progress *p)
{
    char line[200], eta[32] = "", el[32];
    unsigned long long done = p->done + p->failed;
    int n;

    if (!o->opts.progress)
        return;
    prun_fmt_duration(p->elapsed_ms, el, sizeof(el));
    if (p->total > 0) {
        int width = 24, fill = (int)((double)done * width / (double)p->total);
        char bar[32];

        if (fill > width)
            fill = width;
        memset(bar, '=', (size_t)fill);
        memset(bar + fill, ' ', (size_t)(width - fill));
        bar[width] = '\0';
        if (done > 0 && done < (unsigned long long)p->total) {
            int64_t left =
                (int64_t)((double)p->elapsed_ms / (double)done *
                          (double)((unsigned long long)p->total - done));
            char d[24];
            snprintf(eta, sizeof(eta), "  ETA %s",
                prun_fmt_duration(left, d, sizeof(d)));
        }
        n = snprintf(line, sizeof(line),
            "[%s] %llu/%lld  %llu failed  %llu running  %s%s", bar, done,
            p->total, p->failed, p->running, el, eta);
    } else {
        n = snprintf(line, sizeof(line),
            "%llu done  %llu failed  %llu running  %s", done, p->failed,
            p->running, el);
    }
    if (n < 0)
        return;
    if (p->child_total > 0 && (size_t)n < sizeof(line))
        snprintf(line + n, sizeof(line) - (size_t)n, "  [running: %lld/%lld]",
            p->child_done, p->child_total);
    else if (p->child_done > 0 && (size_t)n < sizeof(line))
        snprintf(line + n, sizeof(line) - (size_t)n, "  [running: %lld done]",
            p->child_done);
    snprintf(o->progress_line, sizeof(o->progress_line), "\r\033[K%s", line);
    prun_write_all(2, o->progress_line, strlen(o->progress_line));
    o->progress_shown = 1;
}

void prun_output_progress_clear(struct prun_output *o)
{
    if (!o->progress_shown)
        return;
    prun_write_all(2, "\r\033[K", 4);
    o->progress_shown = 0;
}
