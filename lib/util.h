/* SPDX-License-Identifier: MIT */
#ifndef PRUN_UTIL_H
#define PRUN_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The error codes (PRUN_E*) and struct prun_err are part of the public API
 * (include/parallelrun.h): every lib/ function returns a negative PRUN_E*
 * with err filled, and cmd/ maps them to the exit statuses
 * (docs/architecture.md).
 */
#include <parallelrun.h>

/* Fills err (which may be NULL) and returns code, for `return prun__err_set()`.
 */
int prun__err_set(struct prun_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like prun__err_set with PRUN_ESYS, appending ": strerror(errno)". */
int prun__err_sys(struct prun_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A growable byte buffer. Always NUL-terminated when data != NULL. */
struct prun_buf {
    char *data;
    size_t len;
    size_t cap;
};

int prun__buf_reserve(struct prun_buf *b, size_t extra);
int prun__buf_add(struct prun_buf *b, const void *p, size_t n);
int prun__buf_adds(struct prun_buf *b, const char *s);
int prun__buf_addc(struct prun_buf *b, char c);
int prun__buf_printf(struct prun_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends s quoted for /bin/sh: 'it'\''s' style, bare when it is safe. */
int prun__buf_add_shquoted(struct prun_buf *b, const char *s);
/* Appends s as a JSON string literal, quotes included. */
int prun__buf_add_json(struct prun_buf *b, const char *s, size_t n);
/*
 * A minimal reader of flat JSON objects (a terminal record): the value of
 * field name, unquoted and unescaped (\uXXXX past ASCII as '?'), into out
 * (n bytes, cut to fit). Returns 0, or -1 with out "" when it is absent.
 */
int prun__json_field(const char *j, const char *name, char *out, size_t n);
void prun__buf_reset(struct prun_buf *b);
void prun__buf_free(struct prun_buf *b);

/*
 * An arena: many small allocations freed together. Used for the job model,
 * whose strings all live exactly as long as the job.
 */
struct prun_arena;
struct prun_arena *prun__arena_new(void);
void *prun__arena_alloc(struct prun_arena *a, size_t n); /* zeroed */
char *prun__arena_strdup(struct prun_arena *a, const char *s);
char *prun__arena_strndup(struct prun_arena *a, const char *s, size_t n);
void prun__arena_free(struct prun_arena *a);

/*
 * Parsers for the units of the job file (README "A job file"). Each returns 0
 * and sets *out, or PRUN_EINVAL with err->msg saying what is wrong with the
 * text (without a position; the caller prefixes FILE:LINE:COL).
 *
 * Durations: "500ms", "30s", "10m", "2h", "1d", a bare number is seconds;
 * fractions allowed ("1.5s"). Negative values are rejected.
 * Sizes: "64KiB", "256MiB", "2GiB", "1TiB", also "KB/MB/GB" (powers of 1000),
 * "K/M/G" (powers of 1024) and bare bytes.
 * Rates: "20/s", "100/m", "5/h", or a bare number per second.
 */
int prun__parse_duration(const char *s, int64_t *out_ms, struct prun_err *err);
int prun__parse_size(const char *s, uint64_t *out, struct prun_err *err);
int prun__parse_rate(const char *s, double *per_sec, struct prun_err *err);
/* A decimal integer in [min, max], whole string. */
int prun__parse_int(const char *s, long long min, long long max, long long *out,
    struct prun_err *err);
/* "true/false/yes/no/on/off/1/0". */
int prun__parse_bool(const char *s, int *out, struct prun_err *err);

/* Formats a duration in ms as "1.5s", "2m03s", "1h02m" into buf. */
const char *prun__fmt_duration(int64_t ms, char *buf, size_t n);

/*
 * The candidate closest to word by edit distance, or NULL when none is
 * close enough to be a plausible typo.
 */
const char *prun__closest(const char *word, const char *const *cands, size_t n);

/* Monotonic and wall clocks in milliseconds. */
int64_t prun__now_ms(void);
int64_t prun__wall_ms(void);
/* Sleeps ms milliseconds in all, a signal's interruption included. */
void prun__sleep_ms(int64_t ms);

/* "SIGTERM", or "signal 42" for a number without a name, into buf. */
const char *prun__signame(int sig, char *buf, size_t n);

#endif
