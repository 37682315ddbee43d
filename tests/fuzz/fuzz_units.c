/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the unit parsers of util.c: durations, sizes,
 * rates, integers and booleans, each given a NUL-terminated copy of the
 * input. A duration that parses is also formatted back, and the checks
 * below hold the parsers to what util.h promises.
 */
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct prun_err err = {0};
    long long n;
    int64_t ms;
    uint64_t sz;
    double rate;
    char buf[64];
    char *s;
    int b;

    s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';

    if (prun__parse_duration(s, &ms, &err) == 0) {
        /* "Negative values are rejected." */
        if (ms < 0)
            abort();
        prun__fmt_duration(ms, buf, sizeof(buf));
    }
    (void)prun__parse_size(s, &sz, &err);
    if (prun__parse_rate(s, &rate, &err) == 0 && (isnan(rate) || rate < 0))
        abort();
    if (prun__parse_int(s, -1000, 1000, &n, &err) == 0 &&
        (n < -1000 || n > 1000))
        abort();
    (void)prun__parse_int(s, LLONG_MIN, LLONG_MAX, &n, &err);
    (void)prun__parse_bool(s, &b, &err);
    free(s);
    return 0;
}
