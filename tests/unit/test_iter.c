/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for lib/iter.c and lib/iter_lines.c: every foreach source,
 * chunking and counts, streaming of lines files and pipes, and the error
 * messages.
 */
#include "job.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static struct prun_job job = {.path = "jobs/t.yaml"};

static struct prun_foreach src(enum prun_src kind)
{
    struct prun_foreach f;

    memset(&f, 0, sizeof(f));
    f.kind = kind;
    f.chunk = 1;
    f.pos.line = 7;
    f.pos.col = 14;
    return f;
}

/*
 * Runs the whole iterator and renders it as "a,b/c": items of one instance
 * joined by ",", instances by "/". Returns the number of instances, or a
 * negative error.
 */
static long long collect(
    const struct prun_foreach *f, char *out, size_t n, long long *count)
{
    struct prun_iter *it = NULL;
    const struct prun_item *items;
    struct prun_err err;
    long long ninst = 0;
    size_t used = 0;
    int rc, i;

    out[0] = '\0';
    rc = prun__iter_open(&job, f, &it, &err);
    if (rc < 0)
        return rc;
    if (count != NULL)
        *count = prun__iter_count(it);
    while ((rc = prun__iter_next(it, &items, &err)) > 0) {
        for (i = 0; i < rc; i++)
            used += (size_t)snprintf(out + used, used < n ? n - used : 0,
                "%s%s", i ? "," : (ninst ? "/" : ""), items[i].text);
        ninst++;
    }
    /* The end is sticky. */
    if (rc == 0)
        rc = prun__iter_next(it, &items, &err);
    prun__iter_free(it);
    return rc < 0 ? rc : ninst;
}

static char tmpdir[64];

static void make_tmpdir(void)
{
    if (tmpdir[0] == '\0') {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/prun-iter-XXXXXX");
        if (mkdtemp(tmpdir) == NULL)
            abort();
    }
}

static const char *write_file(const char *name, const char *data, size_t len)
{
    static char path[128];
    FILE *fp;

    make_tmpdir();
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    fp = fopen(path, "w");
    if (fp == NULL)
        abort();
    fwrite(data, 1, len, fp);
    fclose(fp);
    return path;
}

static void test_none(void)
{
    struct prun_foreach f = src(PRUN_SRC_NONE);
    struct prun_iter *it = NULL;
    const struct prun_item *items = NULL;
    long long count;
    char out[64];

    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 1);
    ASSERT_EQ(count, 1);
    ASSERT_STREQ(out, "");
    ASSERT_EQ(prun__iter_open(&job, &f, &it, NULL), 0);
    ASSERT_EQ(prun__iter_next(it, &items, NULL), 1);
    ASSERT_STREQ(items[0].text, "");
    ASSERT_EQ(items[0].nkeys, 0);
    ASSERT_EQ(prun__iter_next(it, &items, NULL), 0);
    prun__iter_free(it);
}

static void test_list(void)
{
    struct prun_item list[3] = {{.text = "a"}, {.text = "b b"}, {.text = ""}};
    struct prun_foreach f = src(PRUN_SRC_LIST);
    long long count;
    char out[64];

    f.nlist = 3;
    f.list = list;
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 3);
    ASSERT_EQ(count, 3);
    ASSERT_STREQ(out, "a/b b/");
}

static void test_list_of_mappings(void)
{
    static const char *const keys[] = {"host", "port"};
    static const char *const v1[] = {"a.example", "80"};
    static const char *const v2[] = {"b.example", "443"};
    struct prun_item list[2] = {
        {.text = "a.example 80", .nkeys = 2, .keys = keys, .vals = v1},
        {.text = "b.example 443", .nkeys = 2, .keys = keys, .vals = v2}};
    struct prun_foreach f = src(PRUN_SRC_LIST);
    struct prun_iter *it = NULL;
    const struct prun_item *items = NULL;

    f.nlist = 2;
    f.list = list;
    ASSERT_EQ(prun__iter_open(&job, &f, &it, NULL), 0);
    ASSERT_EQ(prun__iter_next(it, &items, NULL), 1);
    ASSERT_EQ(items[0].nkeys, 2);
    ASSERT_STREQ(items[0].keys[1], "port");
    ASSERT_STREQ(items[0].vals[0], "a.example");
    ASSERT_EQ(prun__iter_next(it, &items, NULL), 1);
    ASSERT_STREQ(items[0].vals[1], "443");
    ASSERT_STREQ(items[0].text, "b.example 443");
    ASSERT_EQ(prun__iter_next(it, &items, NULL), 0);
    prun__iter_free(it);
}

static void test_range(void)
{
    struct prun_foreach f = src(PRUN_SRC_RANGE);
    long long count;
    char out[128];

    f.from = 0;
    f.to = 4;
    f.step = 1;
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 4);
    ASSERT_EQ(count, 4);
    ASSERT_STREQ(out, "0/1/2/3");

    f.from = 0;
    f.to = 10;
    f.step = 3;
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 4);
    ASSERT_EQ(count, 4);
    ASSERT_STREQ(out, "0/3/6/9");

    f.from = -2;
    f.to = 2;
    f.step = 1;
    ASSERT_EQ(collect(&f, out, sizeof(out), NULL), 4);
    ASSERT_STREQ(out, "-2/-1/0/1");
}

static void test_range_negative_step(void)
{
    struct prun_foreach f = src(PRUN_SRC_RANGE);
    long long count;
    char out[128];

    f.from = 10;
    f.to = 0;
    f.step = -3;
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 4);
    ASSERT_EQ(count, 4);
    ASSERT_STREQ(out, "10/7/4/1");

    f.from = 3;
    f.to = -1;
    f.step = -1;
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 4);
    ASSERT_STREQ(out, "3/2/1/0");
}

static void test_range_empty(void)
{
    struct prun_foreach f = src(PRUN_SRC_RANGE);
    long long count = 99;
    char out[64];

    f.from = 5;
    f.to = 5;
    f.step = 1;
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 0);
    ASSERT_EQ(count, 0);
    ASSERT_STREQ(out, "");

    /* Going up with a negative step is empty too, as in Python. */
    f.from = 0;
    f.to = 5;
    f.step = -1;
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 0);
    ASSERT_EQ(count, 0);
}

static void test_range_extremes(void)
{
    struct prun_foreach f = src(PRUN_SRC_RANGE);
    long long count;
    char out[128];

    /* Neither the count nor the last step may overflow (UBSan checks). */
    f.from = LLONG_MAX - 2;
    f.to = LLONG_MAX;
    f.step = 1;
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 2);
    ASSERT_STREQ(out, "9223372036854775805/9223372036854775806");

    f.from = LLONG_MIN + 1;
    f.to = LLONG_MIN;
    f.step = -5;
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 1);
    ASSERT_STREQ(out, "-9223372036854775807");

    f.from = LLONG_MIN;
    f.to = LLONG_MAX;
    f.step = LLONG_MAX;
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 3);
    ASSERT_EQ(count, 3);
    ASSERT_STREQ(out, "-9223372036854775808/-1/9223372036854775806");
}

static void test_matrix(void)
{
    const char *a[] = {"1", "2"};
    const char *b[] = {"x", "y", "z"};
    struct prun_axis axes[2] = {{"a", 2, a}, {"b", 3, b}};
    struct prun_foreach f = src(PRUN_SRC_MATRIX);
    struct prun_iter *it = NULL;
    const struct prun_item *items = NULL;
    long long count;
    char out[128];

    f.naxes = 2;
    f.axes = axes;
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 6);
    ASSERT_EQ(count, 6);
    ASSERT_STREQ(out, "1 x/1 y/1 z/2 x/2 y/2 z");

    ASSERT_EQ(prun__iter_open(&job, &f, &it, NULL), 0);
    ASSERT_EQ(prun__iter_next(it, &items, NULL), 1);
    ASSERT_EQ(prun__iter_next(it, &items, NULL), 1);
    ASSERT_EQ(items[0].nkeys, 2);
    ASSERT_STREQ(items[0].keys[0], "a");
    ASSERT_STREQ(items[0].keys[1], "b");
    ASSERT_STREQ(items[0].vals[0], "1");
    ASSERT_STREQ(items[0].vals[1], "y");
    prun__iter_free(it);
}

static void test_matrix_chunk_and_empty_axis(void)
{
    const char *a[] = {"1", "2"};
    const char *b[] = {"x", "y"};
    struct prun_axis axes[2] = {{"a", 2, a}, {"b", 2, b}};
    struct prun_foreach f = src(PRUN_SRC_MATRIX);
    struct prun_iter *it = NULL;
    const struct prun_item *items = NULL;
    long long count;
    char out[128];

    f.naxes = 2;
    f.axes = axes;
    f.chunk = 3;
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 2);
    ASSERT_EQ(count, 2);
    ASSERT_STREQ(out, "1 x,1 y,2 x/2 y");

    /* Each item of a chunk keeps its own values. */
    ASSERT_EQ(prun__iter_open(&job, &f, &it, NULL), 0);
    ASSERT_EQ(prun__iter_next(it, &items, NULL), 3);
    ASSERT_STREQ(items[0].vals[1], "x");
    ASSERT_STREQ(items[1].vals[1], "y");
    ASSERT_STREQ(items[2].vals[0], "2");
    prun__iter_free(it);

    axes[1].nvals = 0;
    f.chunk = 1;
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 0);
    ASSERT_EQ(count, 0);
}

static void test_chunk(void)
{
    struct prun_foreach f = src(PRUN_SRC_RANGE);
    struct prun_item list[4] = {
        {.text = "a"}, {.text = "b"}, {.text = "c"}, {.text = "d"}};
    long long count;
    char out[128];

    f.from = 0;
    f.to = 7;
    f.step = 1;
    f.chunk = 3;
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 3);
    ASSERT_EQ(count, 3);
    ASSERT_STREQ(out, "0,1,2/3,4,5/6");

    f.to = 6;
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 2);
    ASSERT_EQ(count, 2);
    ASSERT_STREQ(out, "0,1,2/3,4,5");

    f = src(PRUN_SRC_LIST);
    f.nlist = 4;
    f.list = list;
    f.chunk = 10;
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 1);
    ASSERT_EQ(count, 1);
    ASSERT_STREQ(out, "a,b,c,d");
}

static void test_lines_crlf_and_empty(void)
{
    static const char data[] = "a\r\nb\n\n c \nlast";
    struct prun_foreach f = src(PRUN_SRC_LINES);
    long long count;
    char out[128];

    f.path = write_file("crlf.txt", data, sizeof(data) - 1);
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 5);
    ASSERT_EQ(count, 5);
    ASSERT_STREQ(out, "a/b// c /last");

    f.chunk = 2;
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 3);
    ASSERT_EQ(count, 3);
    ASSERT_STREQ(out, "a,b/, c /last");
}

static void test_lines_trailing_newline(void)
{
    struct prun_foreach f = src(PRUN_SRC_LINES);
    long long count;
    char out[64];

    f.path = write_file("nl.txt", "x\ny\n", 4);
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 2);
    ASSERT_EQ(count, 2);
    ASSERT_STREQ(out, "x/y");

    f.path = write_file("nonl.txt", "x\ny", 3);
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 2);
    ASSERT_EQ(count, 2);
    ASSERT_STREQ(out, "x/y");

    f.path = write_file("empty.txt", "", 0);
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 0);
    ASSERT_EQ(count, 0);

    f.path = write_file("one-empty.txt", "\n", 1);
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 1);
    ASSERT_EQ(count, 1);
    ASSERT_STREQ(out, "");
}

static void test_lines_long_line(void)
{
    struct prun_foreach f = src(PRUN_SRC_LINES);
    struct prun_iter *it = NULL;
    const struct prun_item *items = NULL;
    size_t big = 200 * 1000, i;
    char *data = malloc(big + 8);

    ASSERT(data != NULL);
    for (i = 0; i < big; i++)
        data[i] = (char)('a' + i % 26);
    memcpy(data + big, "\r\nend\n", 6);
    f.path = write_file("long.txt", data, big + 6);
    free(data);
    ASSERT_EQ(prun__iter_open(&job, &f, &it, NULL), 0);
    ASSERT_EQ(prun__iter_count(it), 2);
    ASSERT_EQ(prun__iter_next(it, &items, NULL), 1);
    ASSERT_EQ(strlen(items[0].text), big);
    ASSERT_EQ(items[0].text[big - 1], 'a' + (big - 1) % 26);
    ASSERT_EQ(prun__iter_next(it, &items, NULL), 1);
    ASSERT_STREQ(items[0].text, "end");
    ASSERT_EQ(prun__iter_next(it, &items, NULL), 0);
    prun__iter_free(it);
}

static void test_lines_pipe(void)
{
    static const char data[] = "p1\r\np2\n\np4";
    struct prun_foreach f = src(PRUN_SRC_LINES);
    int fds[2], saved;
    long long count = 0, n;
    char out[64];

    ASSERT_EQ(pipe(fds), 0);
    ASSERT_EQ(write(fds[1], data, sizeof(data) - 1), sizeof(data) - 1);
    close(fds[1]);
    saved = dup(0);
    ASSERT(saved >= 0);
    dup2(fds[0], 0);
    close(fds[0]);
    f.path = "-";
    n = collect(&f, out, sizeof(out), &count);
    dup2(saved, 0);
    close(saved);
    ASSERT_EQ(n, 4);
    ASSERT_EQ(count, -1);
    ASSERT_STREQ(out, "p1/p2//p4");
}

/* Async mode on a FIFO: never waits, keeps partial lines across calls. */
static void test_lines_fifo_async(void)
{
    struct prun_foreach f = src(PRUN_SRC_LINES);
    struct prun_iter *it = NULL;
    const struct prun_item *items = NULL;
    char path[128];
    int w;

    make_tmpdir();
    snprintf(path, sizeof(path), "%s/fifo", tmpdir);
    ASSERT_EQ(mkfifo(path, 0600), 0);
    f.path = path;
    /* No writer: neither the open nor the first call may wait. */
    ASSERT_EQ(prun__iter_open_flags(&job, &f, PRUN_ITER_ASYNC, &it, NULL), 0);
    ASSERT_EQ(prun__iter_count(it), -1);
    ASSERT_EQ(prun__iter_next(it, &items, NULL), PRUN_ITER_AGAIN);
    ASSERT(prun__iter_fd(it) >= 0);
    w = open(path, O_WRONLY | O_NONBLOCK);
    ASSERT(w >= 0);
    ASSERT_EQ(write(w, "a\r\nb", 4), 4);
    prun__iter_readable(it);
    ASSERT_EQ(prun__iter_next(it, &items, NULL), 1);
    ASSERT_STREQ(items[0].text, "a");
    /* "b" has no end yet. */
    ASSERT_EQ(prun__iter_next(it, &items, NULL), PRUN_ITER_AGAIN);
    prun__iter_readable(it);
    ASSERT_EQ(prun__iter_next(it, &items, NULL), PRUN_ITER_AGAIN);
    ASSERT_EQ(write(w, "c\r", 2), 2);
    close(w);
    /* One read per readiness: "c\r", then the end. */
    prun__iter_readable(it);
    ASSERT_EQ(prun__iter_next(it, &items, NULL), PRUN_ITER_AGAIN);
    prun__iter_readable(it);
    ASSERT_EQ(prun__iter_next(it, &items, NULL), 1);
    ASSERT_STREQ(items[0].text, "bc");
    ASSERT_EQ(prun__iter_fd(it), -1);
    ASSERT_EQ(prun__iter_next(it, &items, NULL), 0);
    prun__iter_free(it);
    unlink(path);
}

static void test_lines_nul_and_strict(void)
{
    struct prun_foreach f = src(PRUN_SRC_LINES);
    struct prun_iter *it = NULL;
    struct prun_err err;
    long long count;
    char out[64];

    memset(&err, 0, sizeof(err));
    f.path = write_file("nul.txt", "x\ny\nz\0z\n", 8);
    ASSERT_EQ(prun__iter_open(&job, &f, &it, &err), PRUN_EINVAL);
    ASSERT_CONTAINS(err.msg, "nul.txt:3: NUL byte in a line");
    f.nul_sep = 1;
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 2);
    ASSERT_EQ(count, 2);
    f.nul_sep = 0;
    f.path = write_file("empty.txt", "", 0);
    ASSERT_EQ(prun__iter_open_flags(&job, &f, PRUN_ITER_STRICT, &it, &err),
        PRUN_EINVAL);
    ASSERT_CONTAINS(err.msg, "has no lines");
    f.allow_empty = 1;
    ASSERT_EQ(prun__iter_open_flags(&job, &f, PRUN_ITER_STRICT, &it, &err), 0);
    prun__iter_free(it);
}

static void test_lines_missing(void)
{
    struct prun_foreach f = src(PRUN_SRC_LINES);
    struct prun_iter *it = NULL;
    struct prun_err err;

    memset(&err, 0, sizeof(err));
    f.path = "no-such-urls.txt";
    ASSERT_EQ(prun__iter_open(&job, &f, &it, &err), PRUN_EINVAL);
    ASSERT(it == NULL);
    ASSERT_EQ(err.code, PRUN_EINVAL);
    ASSERT_STREQ(err.msg, "jobs/t.yaml:7:14: cannot open 'no-such-urls.txt': "
                          "No such file or directory");

    make_tmpdir();
    f.path = tmpdir;
    ASSERT_EQ(prun__iter_open(&job, &f, &it, &err), PRUN_EINVAL);
    ASSERT_CONTAINS(err.msg, "Is a directory");
}

/* Reads many lines and checks that memory does not grow with them. */
static void test_lines_streaming_memory(void)
{
    struct prun_foreach f = src(PRUN_SRC_LINES);
    struct prun_iter *it = NULL;
    const struct prun_item *items = NULL;
    struct rusage ru0, ru1;
    long long lines = 2000000, seen = 0;
    char path[128], line[32];
    FILE *fp;
    int n;

    make_tmpdir();
    snprintf(path, sizeof(path), "%s/many.txt", tmpdir);
    fp = fopen(path, "w");
    ASSERT(fp != NULL);
    for (long long i = 0; i < lines; i++)
        fprintf(fp, "line-%012lld\n", i);
    fclose(fp);
    f.path = path;
    f.chunk = 1000;
    getrusage(RUSAGE_SELF, &ru0);
    ASSERT_EQ(prun__iter_open(&job, &f, &it, NULL), 0);
    ASSERT_EQ(prun__iter_count(it), 2000);
    while ((n = prun__iter_next(it, &items, NULL)) > 0) {
        snprintf(line, sizeof(line), "line-%012lld", seen);
        if (strcmp(items[0].text, line) != 0)
            break;
        seen += n;
    }
    prun__iter_free(it);
    getrusage(RUSAGE_SELF, &ru1);
    unlink(path);
    ASSERT_EQ(seen, lines);
    /* The file is 36 MB; holding it would show in the peak RSS. */
    ASSERT(ru1.ru_maxrss - ru0.ru_maxrss < 16 * 1024);
}

static void test_glob(void)
{
    struct prun_foreach f = src(PRUN_SRC_GLOB);
    char pattern[128], expect[512];
    long long count;
    char out[512];

    make_tmpdir();
    snprintf(pattern, sizeof(pattern), "%s/g", tmpdir);
    ASSERT_EQ(mkdir(pattern, 0700), 0);
    write_file("g/b.txt", "", 0);
    write_file("g/a.txt", "", 0);
    write_file("g/B.txt", "", 0);
    write_file("g/c.log", "", 0);
    snprintf(pattern, sizeof(pattern), "%s/g/*.txt", tmpdir);
    f.path = pattern;
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 3);
    ASSERT_EQ(count, 3);
    /* Byte order, whatever the locale: upper case sorts first. */
    snprintf(expect, sizeof(expect), "%s/g/B.txt/%s/g/a.txt/%s/g/b.txt", tmpdir,
        tmpdir, tmpdir);
    ASSERT_STREQ(out, expect);

    f.chunk = 2;
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 2);
    ASSERT_EQ(count, 2);
    f.chunk = 1;

    snprintf(pattern, sizeof(pattern), "%s/g/*.nothing", tmpdir);
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 0);
    ASSERT_EQ(count, 0);

    snprintf(pattern, sizeof(pattern), "%s/no-dir/*.txt", tmpdir);
    ASSERT_EQ(collect(&f, out, sizeof(out), &count), 0);
    ASSERT_EQ(count, 0);
}

static void test_glob_unreadable_dir(void)
{
    struct prun_foreach f = src(PRUN_SRC_GLOB);
    struct prun_iter *it = NULL;
    struct prun_err err;
    char dir[128], pattern[160];

    if (geteuid() == 0) {
        /* root reads any directory: nothing to test. */
        printf("# skipped: running as root\n");
        return;
    }
    make_tmpdir();
    snprintf(dir, sizeof(dir), "%s/locked", tmpdir);
    ASSERT_EQ(mkdir(dir, 0), 0);
    snprintf(pattern, sizeof(pattern), "%s/*", dir);
    f.path = pattern;
    memset(&err, 0, sizeof(err));
    ASSERT_EQ(prun__iter_open(&job, &f, &it, &err), PRUN_ESYS);
    ASSERT_CONTAINS(err.msg, "Permission denied");
    rmdir(dir);
}

static void test_items_dup(void)
{
    static const char *const keys[] = {"k1", "k2"};
    char v1[] = "one", v2[] = "two", text[] = "one two";
    const char *vals[] = {v1, v2};
    struct prun_item in[2] = {
        {.text = text, .nkeys = 2, .keys = keys, .vals = vals},
        {.text = "plain"}};
    struct prun_item *out = prun__items_dup(in, 2);

    ASSERT(out != NULL);
    /* The copy must not depend on the originals. */
    v1[0] = 'X';
    text[0] = 'X';
    ASSERT_STREQ(out[0].text, "one two");
    ASSERT_EQ(out[0].nkeys, 2);
    ASSERT_STREQ(out[0].keys[1], "k2");
    ASSERT_STREQ(out[0].vals[0], "one");
    ASSERT_STREQ(out[0].vals[1], "two");
    ASSERT(out[0].keys != keys);
    ASSERT_STREQ(out[1].text, "plain");
    ASSERT_EQ(out[1].nkeys, 0);
    free(out);

    out = prun__items_dup(NULL, 0);
    ASSERT(out != NULL);
    free(out);
}

static void cleanup(void)
{
    char cmd[128];

    if (tmpdir[0] != '\0') {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            printf("# could not remove %s\n", tmpdir);
    }
}

int main(void)
{
    RUN(test_none);
    RUN(test_list);
    RUN(test_list_of_mappings);
    RUN(test_range);
    RUN(test_range_negative_step);
    RUN(test_range_empty);
    RUN(test_range_extremes);
    RUN(test_matrix);
    RUN(test_matrix_chunk_and_empty_axis);
    RUN(test_chunk);
    RUN(test_lines_crlf_and_empty);
    RUN(test_lines_trailing_newline);
    RUN(test_lines_long_line);
    RUN(test_lines_pipe);
    RUN(test_lines_fifo_async);
    RUN(test_lines_nul_and_strict);
    RUN(test_lines_missing);
    RUN(test_lines_streaming_memory);
    RUN(test_glob);
    RUN(test_glob_unreadable_dir);
    RUN(test_items_dup);
    cleanup();
    return unit_done();
}
