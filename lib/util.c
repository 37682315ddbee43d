/* SPDX-License-Identifier: MIT */
/*
 * util: the small pieces every module needs: error values, a growable
 * buffer, an arena, the parsers for durations, sizes and rates, and clocks.
 * Nothing here knows about jobs, children or Redis.
 */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int prun__err_set(struct prun_err *err, int code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return code;
    err->code = code;
    err->sys_errno = 0;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

int prun__err_sys(struct prun_err *err, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    size_t n;

    if (err == NULL)
        return PRUN_ESYS;
    err->code = PRUN_ESYS;
    err->sys_errno = saved;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    n = strlen(err->msg);
    snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(saved));
    errno = saved;
    return PRUN_ESYS;
}

int prun__buf_reserve(struct prun_buf *b, size_t extra)
{
    size_t need, cap;
    char *p;

    if (extra > SIZE_MAX - b->len - 1)
        return PRUN_ENOMEM;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->data, cap);
    if (p == NULL)
        return PRUN_ENOMEM;
    /*
     * The buffer is a string as soon as it has storage, even before
     * anything is added: an empty result must still read as "".
     */
    p[b->len] = '\0';
    b->data = p;
    b->cap = cap;
    return 0;
}

int prun__buf_add(struct prun_buf *b, const void *p, size_t n)
{
    if (prun__buf_reserve(b, n) < 0)
        return PRUN_ENOMEM;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int prun__buf_adds(struct prun_buf *b, const char *s)
{
    return prun__buf_add(b, s, strlen(s));
}

int prun__buf_addc(struct prun_buf *b, char c)
{
    return prun__buf_add(b, &c, 1);
}

int prun__buf_printf(struct prun_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || prun__buf_reserve(b, (size_t)n) < 0)
        return PRUN_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

static int sh_safe(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && strchr("@%_-+=:,./", *s) == NULL)
            return 0;
    return 1;
}

int prun__buf_add_shquoted(struct prun_buf *b, const char *s)
{
    if (sh_safe(s))
        return prun__buf_adds(b, s);
    if (prun__buf_addc(b, '\'') < 0)
        return PRUN_ENOMEM;
    for (; *s; s++) {
        int rc =
            *s == '\'' ? prun__buf_adds(b, "'\\''") : prun__buf_addc(b, *s);
        if (rc < 0)
            return PRUN_ENOMEM;
    }
    return prun__buf_addc(b, '\'');
}

/*
 * Length of the well-formed UTF-8 sequence at s (at most n bytes), or 0:
 * overlong forms, surrogates and code points past U+10FFFF are not.
 */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len, i;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/*
 * The one JSON string writer: every JSON document parallelrun produces
 * goes through it, so any bytes (control characters, NUL, invalid UTF-8)
 * give valid JSON. Control characters become \uXXXX (\n \t \r short),
 * and each byte that is not part of well-formed UTF-8 becomes \ufffd.
 */
int prun__buf_add_json(struct prun_buf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    if (prun__buf_addc(b, '"') < 0)
        return PRUN_ENOMEM;
    while (i < n) {
        unsigned char c = u[i];
        size_t len = 1;
        int rc;

        if (c == '"' || c == '\\')
            rc = prun__buf_printf(b, "\\%c", c);
        else if (c == '\n')
            rc = prun__buf_adds(b, "\\n");
        else if (c == '\t')
            rc = prun__buf_adds(b, "\\t");
        else if (c == '\r')
            rc = prun__buf_adds(b, "\\r");
        else if (c < 0x20 || c == 0x7f)
            rc = prun__buf_printf(b, "\\u%04x", c);
        else if ((len = utf8_len(u + i, n - i)) == 0) {
            rc = prun__buf_adds(b, "\\ufffd");
            len = 1;
        } else
            rc = prun__buf_add(b, u + i, len);
        if (rc < 0)
            return PRUN_ENOMEM;
        i += len;
    }
    return prun__buf_addc(b, '"');
}

int prun__json_field(const char *j, const char *name, char *out, size_t n)
{
    char pat[64];
    const char *p;
    size_t k = 0;

    snprintf(pat, sizeof(pat), "\"%s\":", name);
    p = strstr(j, pat);
    out[0] = '\0';
    if (p == NULL)
        return -1;
    p += strlen(pat);
    if (*p != '"') {
        while (*p && *p != ',' && *p != '}' && k + 1 < n)
            out[k++] = *p++;
        out[k] = '\0';
        return 0;
    }
    for (p++; *p && *p != '"' && k + 1 < n; p++) {
        char c = *p;

        if (c == '\\' && p[1]) {
            p++;
            switch (*p) {
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            case 'r':
                c = '\r';
                break;
            case 'u': {
                unsigned v = 0;
                if (sscanf(p + 1, "%4x", &v) == 1 && strlen(p + 1) >= 4)
                    p += 4;
                c = v < 0x80 ? (char)v : '?';
                break;
            }
            default:
                c = *p;
            }
        }
        out[k++] = c;
    }
    out[k] = '\0';
    return 0;
}

void prun__buf_reset(struct prun_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void prun__buf_free(struct prun_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/*
 * Arena blocks are chained; a request larger than a block gets a block of
 * its own, so one huge string does not waste a block's tail.
 */
#define ARENA_BLOCK 8192

struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    max_align_t data[];
};

struct prun_arena {
    struct arena_block *head;
};

struct prun_arena *prun__arena_new(void)
{
    return calloc(1, sizeof(struct prun_arena));
}

void *prun__arena_alloc(struct prun_arena *a, size_t n)
{
    const size_t align = sizeof(max_align_t);
    struct arena_block *blk = a->head;
    size_t cap;
    char *p;

    n = (n + align - 1) / align * align;
    if (n == 0)
        n = align;
    if (blk == NULL || blk->cap - blk->used < n) {
        cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        blk = malloc(sizeof(*blk) + cap);
        if (blk == NULL)
            return NULL;
        blk->used = 0;
        blk->cap = cap;
        /*
         * An oversized block goes behind the head so the head's free tail
         * stays usable for the small allocations that follow.
         */
        if (a->head != NULL && cap > ARENA_BLOCK) {
            blk->next = a->head->next;
            a->head->next = blk;
        } else {
            blk->next = a->head;
            a->head = blk;
        }
    }
    p = (char *)blk->data + blk->used;
    blk->used += n;
    memset(p, 0, n);
    return p;
}

char *prun__arena_strndup(struct prun_arena *a, const char *s, size_t n)
{
    char *p = prun__arena_alloc(a, n + 1);

    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *prun__arena_strdup(struct prun_arena *a, const char *s)
{
    return prun__arena_strndup(a, s, strlen(s));
}

void prun__arena_free(struct prun_arena *a)
{
    struct arena_block *blk, *next;

    if (a == NULL)
        return;
    for (blk = a->head; blk != NULL; blk = next) {
        next = blk->next;
        free(blk);
    }
    free(a);
}

/*
 * A number as the unit parsers accept it: plain decimal digits with an
 * optional fraction ("12", "12.5", ".5"), and nothing strtod would also
 * take: no sign, exponent, hex, "inf" or "nan". Spaces may surround it.
 * ip is the integer part (exact; *big set when it does not fit), num the
 * whole value, unit what follows.
 */
struct number {
    uint64_t ip;
    int big;
    int frac; /* a fraction was written (even ".0") */
    double num;
    const char *unit;
};

static int split_number(const char *s, struct number *n)
{
    const char *p = s, *digits;
    char *end;

    memset(n, 0, sizeof(*n));
    while (isspace((unsigned char)*p))
        p++;
    digits = p;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (n->ip > (UINT64_MAX - d) / 10)
            n->big = 1;
        else
            n->ip = n->ip * 10 + d;
    }
    if (*p == '.') {
        n->frac = 1;
        p++;
        if (!isdigit((unsigned char)*p) && p - 1 == digits)
            return -1;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (p == digits)
        return -1;
    errno = 0;
    n->num = strtod(digits, &end);
    if (end != p || !isfinite(n->num))
        return -1;
    while (isspace((unsigned char)*p))
        p++;
    n->unit = p;
    return 0;
}

/* Durations past this are typing mistakes, and would overflow deadlines. */
#define MAX_DURATION_MS (3650LL * 86400 * 1000)

int prun__parse_duration(const char *s, int64_t *out_ms, struct prun_err *err)
{
    static const struct {
        const char *name;
        double ms;
    } units[] = {{"ms", 1}, {"s", 1e3}, {"", 1e3}, {"m", 60e3}, {"min", 60e3},
        {"h", 3600e3}, {"d", 86400e3}};
    struct number n;
    double ms;
    size_t i;

    while (isspace((unsigned char)*s))
        s++;
    if (*s == '-')
        return prun__err_set(
            err, PRUN_EINVAL, "duration '%s' must not be negative", s);
    if (split_number(s, &n) < 0)
        goto bad;
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(n.unit, units[i].name) != 0)
            continue;
        ms = n.num * units[i].ms;
        if (n.big || ms > (double)MAX_DURATION_MS)
            return prun__err_set(err, PRUN_EINVAL,
                "duration '%s' is too large (at most 3650d)", s);
        /*
         * Rounding 0.4ms down to 0 would turn a timeout into none at all;
         * only an exact zero means zero.
         */
        if (ms > 0 && ms < 1)
            return prun__err_set(err, PRUN_EINVAL,
                "duration '%s' is shorter than 1ms (the smallest step)", s);
        *out_ms = (int64_t)llround(ms);
        return 0;
    }
bad:
    return prun__err_set(err, PRUN_EINVAL,
        "invalid duration '%s' (expected e.g. 500ms, 30s, 10m, 2h, 1d)", s);
}

int prun__parse_size(const char *s, uint64_t *out, struct prun_err *err)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {{"", 1}, {"B", 1}, {"K", 1ULL << 10}, {"KiB", 1ULL << 10},
        {"KB", 1000}, {"M", 1ULL << 20}, {"MiB", 1ULL << 20}, {"MB", 1000000},
        {"G", 1ULL << 30}, {"GiB", 1ULL << 30}, {"GB", 1000000000},
        {"T", 1ULL << 40}, {"TiB", 1ULL << 40}, {"TB", 1000000000000ULL}};
    /* Sizes become off_t (ftruncate, fallocate): signed 64 bits. */
    const uint64_t max = (uint64_t)INT64_MAX;
    struct number n;
    double v;
    size_t i;

    while (isspace((unsigned char)*s))
        s++;
    if (*s == '-')
        return prun__err_set(
            err, PRUN_EINVAL, "size '%s' must not be negative", s);
    if (split_number(s, &n) < 0)
        goto bad;
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(n.unit, units[i].name) != 0)
            continue;
        if (n.big || n.ip > max / units[i].mult)
            return prun__err_set(err, PRUN_EINVAL, "size '%s' is too large", s);
        if (!n.frac) {
            *out = n.ip * units[i].mult;
            return 0;
        }
        /* Fractions are exact enough below 2^53, and whole or refused. */
        v = n.num * (double)units[i].mult;
        if (v >= 9007199254740992.0)
            return prun__err_set(err, PRUN_EINVAL,
                "size '%s' is too large to have a fraction", s);
        if (v != floor(v))
            return prun__err_set(err, PRUN_EINVAL,
                "size '%s' is not a whole number of bytes", s);
        *out = (uint64_t)v;
        return 0;
    }
bad:
    return prun__err_set(err, PRUN_EINVAL,
        "invalid size '%s' (expected e.g. 64KiB, 256MiB, 2GiB)", s);
}

/*
 * Rates outside these bounds are mistakes: below one start a day the
 * schedule's arithmetic overflows, above a million a second it means
 * nothing.
 */
#define MIN_RATE (1.0 / 86400)
#define MAX_RATE 1e6

int prun__parse_rate(const char *s, double *per_sec, struct prun_err *err)
{
    struct number n;
    double div = 0, r;

    if (split_number(s, &n) < 0)
        goto bad;
    if (*n.unit == '\0' || strcmp(n.unit, "/s") == 0)
        div = 1;
    else if (strcmp(n.unit, "/m") == 0 || strcmp(n.unit, "/min") == 0)
        div = 60;
    else if (strcmp(n.unit, "/h") == 0)
        div = 3600;
    else if (strcmp(n.unit, "/d") == 0)
        div = 86400;
    if (div == 0 || n.num <= 0)
        goto bad;
    r = n.num / div;
    if (n.big || r > MAX_RATE)
        return prun__err_set(
            err, PRUN_EINVAL, "rate '%s' is too high (at most 1000000/s)", s);
    if (r < MIN_RATE * (1 - 1e-9))
        return prun__err_set(
            err, PRUN_EINVAL, "rate '%s' is too low (at least 1/d)", s);
    *per_sec = r;
    return 0;
bad:
    return prun__err_set(err, PRUN_EINVAL,
        "invalid rate '%s' (expected e.g. 20/s, 100/m, 5/h)", s);
}

int prun__parse_int(const char *s, long long min, long long max, long long *out,
    struct prun_err *err)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || isspace((unsigned char)*s))
        return prun__err_set(err, PRUN_EINVAL, "'%s' is not an integer", s);
    if (errno == ERANGE || v < min || v > max)
        return prun__err_set(
            err, PRUN_EINVAL, "%s is out of range (%lld to %lld)", s, min, max);
    *out = v;
    return 0;
}

int prun__parse_bool(const char *s, int *out, struct prun_err *err)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    size_t i;

    for (i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return prun__err_set(
        err, PRUN_EINVAL, "'%s' is not a boolean (true/false)", s);
}

const char *prun__fmt_duration(int64_t ms, char *buf, size_t n)
{
    if (ms < 0)
        ms = 0;
    if (ms < 1000)
        snprintf(buf, n, "%lldms", (long long)ms);
    else if (ms < 60000)
        snprintf(buf, n, "%.1fs", (double)ms / 1000);
    else if (ms < 3600000)
        snprintf(buf, n, "%lldm%02llds", (long long)(ms / 60000),
            (long long)(ms / 1000 % 60));
    else
        snprintf(buf, n, "%lldh%02lldm", (long long)(ms / 3600000),
            (long long)(ms / 60000 % 60));
    return buf;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i, j;
    size_t row[64], prev, tmp;

    if (lb >= sizeof(row) / sizeof(row[0]) || la >= 64)
        return SIZE_MAX;
    for (j = 0; j <= lb; j++)
        row[j] = j;
    for (i = 1; i <= la; i++) {
        prev = row[0];
        row[0] = i;
        for (j = 1; j <= lb; j++) {
            size_t best = prev + (tolower((unsigned char)a[i - 1]) !=
                                     tolower((unsigned char)b[j - 1]));
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            tmp = row[j];
            row[j] = best;
            prev = tmp;
        }
    }
    return row[lb];
}

const char *prun__closest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX, i, limit;

    limit = strlen(word) <= 4 ? 2 : strlen(word) / 2;
    if (limit > 3)
        limit = 3;
    for (i = 0; i < n; i++) {
        size_t d = edit_distance(word, cands[i]);
        if (d < best_d) {
            best_d = d;
            best = cands[i];
        }
    }
    return best_d <= limit ? best : NULL;
}

int64_t prun__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t prun__wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void prun__sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

const char *prun__signame(int sig, char *buf, size_t n)
{
    const char *abbrev = sigabbrev_np(sig);

    if (abbrev)
        snprintf(buf, n, "SIG%s", abbrev);
    else
        snprintf(buf, n, "signal %d", sig);
    return buf;
}
