/* SPDX-License-Identifier: MIT */
#ifndef PRUN_UNIT_H
#define PRUN_UNIT_H

/*
 * A minimal unit-test harness printing TAP, so tests/run.sh can count unit
 * and bats results together. Each test is a void function; an assertion
 * that fails reports file, line and the values, then returns from the test.
 *
 *   static void test_x(void) { ASSERT_EQ(1 + 1, 2); }
 *   int main(void) { RUN(test_x); return unit_done(); }
 */

#include <stdio.h>
#include <string.h>

static int unit_failed_now;
static int unit_count;
static int unit_failures;

#define UNIT_FAIL(...)                                                         \
    do {                                                                       \
        printf("# %s:%d: ", __FILE__, __LINE__);                               \
        printf(__VA_ARGS__);                                                   \
        printf("\n");                                                          \
        unit_failed_now = 1;                                                   \
        return;                                                                \
    } while (0)

#define ASSERT(c)                                                              \
    do {                                                                       \
        if (!(c))                                                              \
            UNIT_FAIL("assertion failed: %s", #c);                             \
    } while (0)

#define ASSERT_EQ(a, b)                                                        \
    do {                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                    \
        if (a_ != b_)                                                          \
            UNIT_FAIL("%s == %s: %lld != %lld", #a, #b, a_, b_);               \
    } while (0)

#define ASSERT_STREQ(a, b)                                                     \
    do {                                                                       \
        const char *a_ = (a), *b_ = (b);                                       \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                   \
            UNIT_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b,                    \
                a_ ? a_ : "(null)", b_ ? b_ : "(null)");                       \
    } while (0)

/* Asserts that haystack contains needle. */
#define ASSERT_CONTAINS(hay, needle)                                           \
    do {                                                                       \
        const char *h_ = (hay), *n_ = (needle);                                \
        if (h_ == NULL || strstr(h_, n_) == NULL)                              \
            UNIT_FAIL(                                                         \
                "\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_);     \
    } while (0)

#define RUN(fn)                                                                \
    do {                                                                       \
        unit_failed_now = 0;                                                   \
        fn();                                                                  \
        unit_count++;                                                          \
        if (unit_failed_now)                                                   \
            unit_failures++;                                                   \
        printf(                                                                \
            "%s %d %s\n", unit_failed_now ? "not ok" : "ok", unit_count, #fn); \
        fflush(stdout);                                                        \
    } while (0)

static inline int unit_done(void)
{
    printf("1..%d\n", unit_count);
    return unit_failures ? 1 : 0;
}

#endif
