/* SPDX-License-Identifier: MIT */
/*
 * halt: the halt condition of a job, GNU parallel's --halt. It parses the
 * spec and says when the condition holds; the scheduler (sched.c) keeps
 * the counts and stops starting instances, and ad-hoc mode's front end
 * derives parallel's exit status from what the scheduler recorded. The
 * arithmetic follows parallel's own (Job::should_we_halt): a percentage is
 * of every instance of the run, compared as total * N / 100, not rounded.
 */
#include "halt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* parallel's shorthands, expanded as it does before parsing. */
static const char *expand(const char *spec, char *buf, size_t n)
{
    static const char *const short_forms[][2] = {{"0", "never"},
        {"1", "soon,fail=1"}, {"2", "now,fail=1"}, {"-1", "soon,success=1"},
        {"-2", "now,success=1"}};
    size_t i, len = strlen(spec);

    for (i = 0; i < sizeof(short_forms) / sizeof(short_forms[0]); i++)
        if (strcmp(spec, short_forms[i][0]) == 0)
            return short_forms[i][1];
    /* "5%" alone is soon,fail=5%. */
    if (len > 1 && spec[len - 1] == '%' &&
        strspn(spec, "0123456789") == len - 1) {
        snprintf(buf, n, "soon,fail=%s", spec);
        return buf;
    }
    return spec;
}

static int parse_when(struct prun_job *job, const char *s, size_t n)
{
    if (n == 5 && memcmp(s, "never", 5) == 0)
        job->halt = PRUN_HALT_NEVER;
    else if (n == 4 && memcmp(s, "soon", 4) == 0)
        job->halt = PRUN_HALT_SOON;
    else if (n == 3 && memcmp(s, "now", 3) == 0)
        job->halt = PRUN_HALT_NOW;
    else
        return -1;
    return 0;
}

static int parse_why(struct prun_job *job, const char *s, struct prun_err *err)
{
    static const struct {
        const char *word;
        enum prun_halt_on on;
    } whys[] = {{"fail=", PRUN_HALT_ON_FAIL},
        {"success=", PRUN_HALT_ON_SUCCESS}, {"done=", PRUN_HALT_ON_DONE}};
    struct prun_err e;
    char num[32];
    long long v;
    size_t i, n;
    int pct;

    for (i = 0; i < sizeof(whys) / sizeof(whys[0]); i++)
        if (strncmp(s, whys[i].word, strlen(whys[i].word)) == 0)
            break;
    if (i == sizeof(whys) / sizeof(whys[0]))
        return prun__err_set(err, PRUN_EINVAL,
            "expected fail=N, success=N or done=N (N a count or a "
            "percentage), got '%s'",
            s);
    job->halt_on = whys[i].on;
    s += strlen(whys[i].word);
    n = strlen(s);
    pct = n > 0 && s[n - 1] == '%';
    if (n - (size_t)pct >= sizeof(num))
        return prun__err_set(err, PRUN_EINVAL, "'%s' is no number", s);
    memcpy(num, s, n - (size_t)pct);
    num[n - (size_t)pct] = '\0';
    if (prun__parse_int(num, 1, pct ? 100 : 1000000000, &v, &e) < 0)
        return prun__err_set(err, PRUN_EINVAL, "%s%s", whys[i].word, e.msg);
    job->max_failures = pct ? 0 : (unsigned)v;
    job->halt_pct = pct ? (unsigned)v : 0;
    return 0;
}

int prun__halt_parse(
    struct prun_job *job, const char *spec, struct prun_err *err)
{
    char buf[64];
    const char *s = expand(spec, buf, sizeof(buf)), *comma = strchr(s, ',');
    size_t n = comma ? (size_t)(comma - s) : strlen(s);

    if (parse_when(job, s, n) < 0)
        return prun__err_set(err, PRUN_EINVAL,
            "expected never, soon or now (then ',fail=N', ',success=N' or "
            "',done=N'; N may be a percentage), got '%s'",
            spec);
    job->halt_on = PRUN_HALT_ON_FAIL;
    job->max_failures = 1;
    job->halt_pct = 0;
    if (comma == NULL)
        return 0;
    if (job->halt == PRUN_HALT_NEVER)
        return prun__err_set(
            err, PRUN_EINVAL, "'never' takes no condition, got '%s'", spec);
    return parse_why(job, comma + 1, err);
}

int prun__halt_reached(
    const struct prun_job *job, unsigned long long n, long long total, int *one)
{
    double need;

    *one = 0;
    if (job->halt == PRUN_HALT_NEVER)
        return 0;
    if (job->halt_pct == 0) {
        *one = job->max_failures <= 1;
        return n >= (job->max_failures ? job->max_failures : 1);
    }
    if (total < 0)
        return 0;
    /* As parallel: the share as a fraction first, then times the total. */
    need = (double)total * ((double)job->halt_pct / 100.0);
    *one = need == 1.0;
    return (double)n >= need;
}

const char *prun__halt_format(const struct prun_job *job, char *buf, size_t n)
{
    static const char *const whys[] = {"fail", "success", "done"};
    const char *when = job->halt == PRUN_HALT_NOW    ? "now"
                       : job->halt == PRUN_HALT_SOON ? "soon"
                                                     : "never";

    if (job->halt == PRUN_HALT_NEVER)
        snprintf(buf, n, "never");
    else if (job->halt_pct > 0)
        snprintf(buf, n, "%s,%s=%u%%", when, whys[job->halt_on], job->halt_pct);
    else
        snprintf(buf, n, "%s,%s=%u", when, whys[job->halt_on],
            job->max_failures ? job->max_failures : 1);
    return buf;
}
