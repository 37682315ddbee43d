/* SPDX-License-Identifier: MIT */
/*
 * parallelrun segment publish|path, parallelrun gc: shared segments from
 * the shell (README "Shared segments"). `segment` is for children of a run;
 * `gc` removes what runs that died left in /dev/shm.
 *
 * Exit status: 0 ok, 1 segment not found, 2 usage (or not inside a run),
 * 3 system error.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "segment.h"

static const char seg_usage[] =
    "usage: parallelrun segment publish NAME FILE [--dtype T] [--shape A,B]\n"
    "       parallelrun segment path NAME\n"
    "\n"
    "Inside a run: publish copies FILE ('-' for stdin) into a segment NAME\n"
    "that later tasks attach by name (a .npy file keeps its header and gives\n"
    "dtype and shape); path prints a path to open() or mmap() segment NAME.\n"
    "\n"
    "Exit status: 0 ok, 1 not found, 2 usage or not inside a run, 3 system\n"
    "error.\n";

static int seg_exit(const struct prun_err *e)
{
    cmd_warn("%s", e->msg);
    switch (e->code) {
    case PRUN_ENOTFOUND:
        return 1;
    case PRUN_EINVAL:
        return EXIT_USAGE;
    default:
        return EXIT_SYSTEM;
    }
}

static int in_run(void)
{
    const char *id = getenv("PARALLELRUN_RUN_ID");

    if (id != NULL && id[0] != '\0')
        return 1;
    cmd_warn("segment: not inside a parallelrun run (PARALLELRUN_RUN_ID is "
             "not set); run it from a task of a job");
    return 0;
}

/* Reads all of fd into a malloc'd buffer (stdin from a pipe). */
static int slurp(int fd, char **out, size_t *len)
{
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap), *nb;
    ssize_t r;

    if (buf == NULL)
        return -1;
    for (;;) {
        if (n == cap) {
            if ((nb = realloc(buf, cap * 2)) == NULL) {
                free(buf);
                errno = ENOMEM;
                return -1;
            }
            buf = nb;
            cap *= 2;
        }
        r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* What `segment publish` was asked: NAME FILE [--dtype T] [--shape S]. */
struct publish_opts {
    const char *name, *file, *dtype, *shape_s;
};

/* Parses the arguments into o. Returns 0, or the usage error's status. */
static int publish_args(int argc, char **argv, struct publish_opts *o)
{
    int i;

    for (i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--dtype") == 0 || strcmp(a, "--shape") == 0) {
            if (i + 1 >= argc)
                return cmd_usage("segment publish: %s needs a value", a);
            if (a[2] == 'd')
                o->dtype = argv[++i];
            else
                o->shape_s = argv[++i];
        } else if (strncmp(a, "--dtype=", 8) == 0) {
            o->dtype = a + 8;
        } else if (strncmp(a, "--shape=", 8) == 0) {
            o->shape_s = a + 8;
        } else if (a[0] == '-' && a[1] != '\0') {
            return cmd_usage("segment publish: unknown option '%s'", a);
        } else if (o->name == NULL) {
            o->name = a;
        } else if (o->file == NULL) {
            o->file = a;
        } else {
            return cmd_usage("segment publish: unexpected argument '%s'", a);
        }
    }
    if (o->name == NULL || o->file == NULL)
        return cmd_usage("segment publish: needs NAME and FILE");
    return 0;
}

/*
 * Publishes the rest of regular file fd (of size st_size) without reading
 * it into memory. A .npy file: its header says what the options did not.
 */
static int publish_file(const struct publish_opts *o, int fd,
    const struct stat *st, uint64_t *shape, size_t ndim)
{
    const char *dtype = o->dtype;
    char npy_dtype[PRUN__DTYPE_MAX];
    unsigned char peek[65536];
    off_t off = fd == 0 ? lseek(fd, 0, SEEK_CUR) : 0;
    size_t size = (size_t)(st->st_size - (off > 0 ? off : 0));
    struct prun_err e;
    ssize_t n;

    if ((dtype == NULL || o->shape_s == NULL) &&
        (n = pread(fd, peek, sizeof(peek), off > 0 ? off : 0)) > 0) {
        uint64_t s2[PRUN_SEGMENT_MAX_DIMS];
        size_t nd2, hdr;
        if (prun__npy_parse(peek, (size_t)n, npy_dtype, sizeof(npy_dtype), s2,
                &nd2, &hdr) == 0) {
            if (dtype == NULL && npy_dtype[0] != '\0')
                dtype = npy_dtype;
            if (o->shape_s == NULL) {
                memcpy(shape, s2, sizeof(s2));
                ndim = nd2;
            }
        }
    }
    if (prun__segment_publish_src(
            o->name, NULL, fd, size, dtype, shape, ndim, &e) < 0)
        return seg_exit(&e);
    return EXIT_OK;
}

static int publish(int argc, char **argv)
{
    struct publish_opts o = {NULL, NULL, NULL, NULL};
    uint64_t shape[PRUN_SEGMENT_MAX_DIMS];
    size_t ndim = 0, size = 0;
    struct prun_err e;
    struct stat st;
    char *mem = NULL;
    int fd = -1, rc;

    if ((rc = publish_args(argc, argv, &o)) != 0)
        return rc;
    if (!prun__segment_name_ok(o.name))
        return cmd_usage("segment publish: invalid segment name '%s' (use "
                         "letters, digits and '_', not starting with a "
                         "digit, at most 64)",
            o.name);
    if (o.shape_s != NULL && prun__shape_parse(o.shape_s, shape, &ndim) < 0)
        return cmd_usage(
            "segment publish: invalid --shape '%s' (expected e.g. 1000,16)",
            o.shape_s);
    if (!in_run())
        return EXIT_USAGE;

    fd = strcmp(o.file, "-") == 0 ? 0 : open(o.file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cmd_warn(
            "segment publish: cannot open '%s': %s", o.file, strerror(errno));
        return errno == ENOENT ? 1 : EXIT_SYSTEM;
    }
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        rc = publish_file(&o, fd, &st, shape, ndim);
    } else if (slurp(fd, &mem, &size) < 0) {
        cmd_warn(
            "segment publish: cannot read '%s': %s", o.file, strerror(errno));
        rc = EXIT_SYSTEM;
    } else if (prun__segment_publish_src(
                   o.name, mem, -1, size, o.dtype, shape, ndim, &e) < 0) {
        rc = seg_exit(&e);
    } else {
        rc = EXIT_OK;
    }
    free(mem);
    if (fd > 0)
        close(fd);
    return rc;
}

static int path(int argc, char **argv)
{
    char up[80], key[128];
    struct prun__segmeta m;
    struct prun_err e;
    const char *v, *dir;
    size_t i;

    if (argc != 1)
        return cmd_usage("segment path: needs exactly one NAME");
    if (!prun__segment_name_ok(argv[0]))
        return cmd_usage("segment path: invalid segment name '%s'", argv[0]);
    if (!in_run())
        return EXIT_USAGE;
    for (i = 0; argv[0][i] != '\0' && i + 1 < sizeof(up); i++)
        up[i] = (char)toupper((unsigned char)argv[0][i]);
    up[i] = '\0';
    snprintf(key, sizeof(key), "PARALLELRUN_SEGMENT_%s", up);
    /* The runner's path: valid in every process of the task's tree. */
    if ((v = getenv(key)) != NULL && v[0] != '\0') {
        printf("%s\n", v);
        return EXIT_OK;
    }
    dir = getenv("PARALLELRUN_SHM_DIR");
    if (dir == NULL || dir[0] == '\0') {
        cmd_warn("segment '%s' is not attached to this task and this run "
                 "has no segment directory",
            argv[0]);
        return 1;
    }
    if (prun__segmeta_read(dir, argv[0], &m, &e) < 0) {
        if (e.code == PRUN_ENOTFOUND)
            prun__err_set(&e, PRUN_ENOTFOUND,
                "segment '%s' is not attached to this task and was not "
                "published in this run",
                argv[0]);
        return seg_exit(&e);
    }
    printf("%s/%s\n", dir, argv[0]);
    return EXIT_OK;
}

int cmd_segment(int argc, char **argv)
{
    if (argc < 2)
        return cmd_usage("segment: missing subcommand (publish, path)");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(seg_usage, stdout);
        return EXIT_OK;
    }
    if (strcmp(argv[1], "publish") == 0)
        return publish(argc - 2, argv + 2);
    if (strcmp(argv[1], "path") == 0)
        return path(argc - 2, argv + 2);
    return cmd_usage(
        "segment: unknown subcommand '%s' (publish, path)", argv[1]);
}

static void print_removed(const char *p, void *arg)
{
    (void)arg;
    printf("removed %s\n", p);
}

int cmd_gc(int argc, char **argv)
{
    struct prun_err e;
    unsigned n = 0;

    (void)argv;
    if (argc > 1) {
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
            puts("usage: parallelrun gc\n\nRemoves the shared segments of "
                 "runs whose runner died (in $PARALLELRUN_SHM_BASE or "
                 "/dev/shm);\nprints what it removed. Live runs are never "
                 "touched.");
            return EXIT_OK;
        }
        return cmd_usage("gc: unexpected argument '%s'", argv[1]);
    }
    if (prun__segment_gc_cb(print_removed, NULL, &n, &e) < 0)
        return cmd_fail(&e);
    fflush(stdout);
    return EXIT_OK;
}
