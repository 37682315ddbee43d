/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for lib/halt.c: GNU parallel's --halt spellings, and when a
 * condition holds, with parallel's arithmetic for percentages.
 */
#include "halt.h"
#include "unit.h"

static struct prun_job parse_ok(const char *spec)
{
    struct prun_job j;
    struct prun_err e;

    memset(&j, 0, sizeof(j));
    if (prun__halt_parse(&j, spec, &e) < 0) {
        fprintf(stderr, "# %s: %s\n", spec, e.msg);
        j.halt = (enum prun_halt) - 1;
    }
    return j;
}

static void test_long_forms(void)
{
    struct prun_job j;
    char b[48];

    j = parse_ok("now");
    ASSERT_EQ(j.halt, PRUN_HALT_NOW);
    ASSERT_EQ(j.halt_on, PRUN_HALT_ON_FAIL);
    ASSERT_EQ(j.max_failures, 1);
    ASSERT_EQ(j.halt_pct, 0);
    j = parse_ok("soon,fail=3");
    ASSERT_EQ(j.halt, PRUN_HALT_SOON);
    ASSERT_EQ(j.max_failures, 3);
    j = parse_ok("now,fail=30%");
    ASSERT_EQ(j.halt_pct, 30);
    ASSERT_EQ(j.max_failures, 0);
    ASSERT_STREQ(prun__halt_format(&j, b, sizeof(b)), "now,fail=30%");
    j = parse_ok("now,success=2");
    ASSERT_EQ(j.halt_on, PRUN_HALT_ON_SUCCESS);
    ASSERT_EQ(j.max_failures, 2);
    j = parse_ok("soon,done=100%");
    ASSERT_EQ(j.halt_on, PRUN_HALT_ON_DONE);
    ASSERT_EQ(j.halt_pct, 100);
    ASSERT_STREQ(prun__halt_format(&j, b, sizeof(b)), "soon,done=100%");
    j = parse_ok("never");
    ASSERT_EQ(j.halt, PRUN_HALT_NEVER);
    ASSERT_STREQ(prun__halt_format(&j, b, sizeof(b)), "never");
}

static void test_short_forms(void)
{
    struct prun_job j;

    j = parse_ok("0");
    ASSERT_EQ(j.halt, PRUN_HALT_NEVER);
    j = parse_ok("1");
    ASSERT_EQ(j.halt, PRUN_HALT_SOON);
    ASSERT_EQ(j.halt_on, PRUN_HALT_ON_FAIL);
    j = parse_ok("2");
    ASSERT_EQ(j.halt, PRUN_HALT_NOW);
    j = parse_ok("-1");
    ASSERT_EQ(j.halt, PRUN_HALT_SOON);
    ASSERT_EQ(j.halt_on, PRUN_HALT_ON_SUCCESS);
    j = parse_ok("-2");
    ASSERT_EQ(j.halt, PRUN_HALT_NOW);
    ASSERT_EQ(j.halt_on, PRUN_HALT_ON_SUCCESS);
    j = parse_ok("5%");
    ASSERT_EQ(j.halt, PRUN_HALT_SOON);
    ASSERT_EQ(j.halt_pct, 5);
}

static void test_bad(void)
{
    static const char *const bad[] = {"", "sometimes", "now,", "now,fail",
        "now,fail=", "now,fail=0", "now,fail=0%", "now,fail=101%", "now,fail=x",
        "now,fail=3%%", "now,oops=1", "never,fail=1",
        "now,fail=99999999999999999999"};
    struct prun_job j;
    struct prun_err e;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&j, 0, sizeof(j));
        e.msg[0] = '\0';
        if (prun__halt_parse(&j, bad[i], &e) != PRUN_EINVAL)
            UNIT_FAIL("'%s' was accepted", bad[i]);
        ASSERT(e.msg[0] != '\0');
    }
}

static void test_reached(void)
{
    struct prun_job j;
    int one;

    j = parse_ok("now,fail=2");
    ASSERT(!prun__halt_reached(&j, 1, 10, &one));
    ASSERT(prun__halt_reached(&j, 2, 10, &one));
    ASSERT(!one);
    j = parse_ok("now");
    ASSERT(prun__halt_reached(&j, 1, -1, &one));
    ASSERT(one);
    /* 30% of 10 is 3; of 7 it is 2.1, so the 3rd. */
    j = parse_ok("now,fail=30%");
    ASSERT(!prun__halt_reached(&j, 2, 10, &one));
    ASSERT(prun__halt_reached(&j, 3, 10, &one));
    ASSERT(!prun__halt_reached(&j, 2, 7, &one));
    ASSERT(prun__halt_reached(&j, 3, 7, &one));
    /* An unknown total never reaches a percentage. */
    ASSERT(!prun__halt_reached(&j, 1000, -1, &one));
    /* 10% of 10 is one instance: parallel's "threshold of one". */
    j = parse_ok("now,fail=10%");
    ASSERT(prun__halt_reached(&j, 1, 10, &one));
    ASSERT(one);
    j = parse_ok("never");
    ASSERT(!prun__halt_reached(&j, 1000, 10, &one));
}

int main(void)
{
    RUN(test_long_forms);
    RUN(test_short_forms);
    RUN(test_bad);
    RUN(test_reached);
    return unit_done();
}
