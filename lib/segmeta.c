/* SPDX-License-Identifier: MIT */
/*
 * segmeta: what describes a segment, shared by the runner's side, the
 * child's side and the CLI: valid names, the shm base directory, shapes
 * ("1000000,16"), .npy headers (dtype, shape, where the data starts) and
 * the metadata a published segment carries. No memory is mapped here.
 */
#include "segment.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

const char *prun__shm_base(void)
{
    const char *b = getenv("PARALLELRUN_SHM_BASE");

    return b != NULL && b[0] != '\0' ? b : "/dev/shm";
}

int prun__segment_name_ok(const char *name)
{
    size_t i;

    if (name == NULL || !(isalpha((unsigned char)name[0]) || name[0] == '_'))
        return 0;
    for (i = 1; name[i] != '\0'; i++)
        if (i >= 64 || !(isalnum((unsigned char)name[i]) || name[i] == '_'))
            return 0;
    return 1;
}

void prun__shape_fmt(const uint64_t *shape, size_t ndim, char *buf, size_t n)
{
    size_t i, used = 0;

    if (n == 0)
        return;
    buf[0] = '\0';
    for (i = 0; i < ndim && used < n; i++) {
        int w = snprintf(
            buf + used, n - used, "%s%" PRIu64, i ? "," : "", shape[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

int prun__shape_parse(const char *s, uint64_t *shape, size_t *ndim)
{
    size_t n = 0;
    char *end;

    while (isspace((unsigned char)*s) || *s == '(' || *s == '[')
        s++;
    for (;;) {
        unsigned long long v;

        while (isspace((unsigned char)*s))
            s++;
        if (*s == '\0' || *s == ')' || *s == ']')
            break;
        if (!isdigit((unsigned char)*s) || n == PRUN_SEGMENT_MAX_DIMS)
            return -1;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0)
            return -1;
        shape[n++] = v;
        s = end;
        while (isspace((unsigned char)*s))
            s++;
        if (*s == ',')
            s++;
        else if (*s != '\0' && *s != ')' && *s != ']')
            return -1;
    }
    while (*s == ')' || *s == ']' || isspace((unsigned char)*s))
        s++;
    if (*s != '\0')
        return -1;
    *ndim = n;
    return 0;
}

/* The value after 'key': in a .npy header dict, or NULL. */
static const char *npy_value(const char *h, const char *key)
{
    char pat[32];
    const char *p;

    snprintf(pat, sizeof(pat), "'%s'", key);
    if ((p = strstr(h, pat)) == NULL)
        return NULL;
    p += strlen(pat);
    while (isspace((unsigned char)*p))
        p++;
    if (*p++ != ':')
        return NULL;
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

int prun__npy_parse(const void *buf, size_t len, char *dtype, size_t dtn,
    uint64_t *shape, size_t *ndim, size_t *hdrlen)
{
    const unsigned char *b = buf;
    char h[PRUN__NPY_PEEK + 1], *e;
    const char *v;
    size_t hl, start, n;

    if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return -1;
    if (b[6] == 1) {
        hl = (size_t)b[8] | (size_t)b[9] << 8;
        start = 10;
    } else if ((b[6] == 2 || b[6] == 3) && len >= 12) {
        hl = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 |
             (size_t)b[11] << 24;
        start = 12;
    } else {
        return -1;
    }
    if (hl > PRUN__NPY_PEEK || start + hl > len)
        return -1;
    memcpy(h, b + start, hl);
    h[hl] = '\0';

    if ((v = npy_value(h, "descr")) == NULL)
        return -1;
    if (*v == '\'' || *v == '"') {
        const char *q = strchr(v + 1, *v);
        if (q == NULL)
            return -1;
        n = (size_t)(q - v - 1);
    } else if (*v == '[') {
        /* A structured dtype: keep numpy's own spelling of the list. */
        const char *q = v;
        int depth = 0;
        do {
            if (*q == '[' || *q == '(')
                depth++;
            else if (*q == ']' || *q == ')')
                depth--;
            q++;
        } while (*q != '\0' && depth > 0);
        if (depth != 0)
            return -1;
        n = (size_t)(q - v);
        v--; /* copied from v + 1 below */
    } else {
        return -1;
    }
    if (n + 1 > dtn)
        n = 0; /* does not fit: unknown rather than truncated */
    memcpy(dtype, v + 1, n);
    dtype[n] = '\0';

    if ((v = npy_value(h, "shape")) == NULL || *v != '(')
        return -1;
    if ((e = strchr(v, ')')) == NULL)
        return -1;
    e[1] = '\0';
    if (prun__shape_parse(v, shape, ndim) < 0)
        return -1;
    *hdrlen = start + hl;
    return 0;
}

int prun__segmeta_read(const char *dir, const char *name,
    struct prun__segmeta *m, struct prun_err *err)
{
    char path[PATH_MAX], text[1024], *line, *save = NULL;
    struct prun__segmeta t;
    ssize_t n;
    int fd, have_size = 0;

    memset(&t, 0, sizeof(t));
    snprintf(path, sizeof(path), "%s/%s.meta", dir, name);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return prun__err_set(err, PRUN_ENOTFOUND,
                "segment '%s' was not published in this run", name);
        return prun__err_sys(err, "cannot open %s", path);
    }
    n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n < 0)
        return prun__err_sys(err, "cannot read %s", path);
    text[n] = '\0';
    for (line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *val = strchr(line, ' ');
        if (val == NULL)
            continue;
        *val++ = '\0';
        if (strcmp(line, "size") == 0) {
            char *end;
            errno = 0;
            t.size = strtoull(val, &end, 10);
            have_size = errno == 0 && *end == '\0' && end != val;
        } else if (strcmp(line, "dtype") == 0) {
            snprintf(t.dtype, sizeof(t.dtype), "%s", val);
        } else if (strcmp(line, "shape") == 0) {
            if (prun__shape_parse(val, t.shape, &t.ndim) < 0)
                have_size = -1;
        }
    }
    if (have_size != 1)
        return prun__err_set(err, PRUN_EINVAL, "%s is malformed", path);
    *m = t;
    return 0;
}
