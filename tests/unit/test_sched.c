/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for lib/sched.c. Jobs are built by hand in an arena and run
 * against a simulated clock: the loop below plays the runner, starting what
 * the scheduler says, advancing time to the next exit or wake-up and
 * reporting outcomes, while checking the caps at every start.
 */
#include "sched.h"
#include "unit.h"

#include <poll.h>

#include <stdlib.h>
#include <unistd.h>

#define MAXT 8
#define LOGN 4096

struct start_rec {
    size_t task;
    unsigned long long index;
    unsigned attempt;
    int64_t start, end;
    enum prun_verdict verdict;
};

struct sim;
typedef enum prun_outcome (*outcome_fn)(struct sim *, const struct prun_inst *);

struct sim {
    struct prun_job *job;
    struct prun_sched *s;
    struct prun_sched_opts opts;
    int64_t now;
    int64_t dur; /* run time of every instance, unless dur_fn */
    int64_t (*dur_fn)(const struct prun_inst *);
    outcome_fn outcome;
    unsigned long long stop_after; /* call prun__sched_stop after N starts */

    struct {
        struct prun_inst *inst;
        int64_t end;
    } run[64];
    size_t nrun;

    unsigned running[MAXT], max_running[MAXT], max_global;
    unsigned long long nstarts, started_after_halt, nverdict[4];
    struct start_rec log[LOGN];
    int violation; /* a cap exceeded, a wake in the past, a stuck loop */
    int done;
    int error;
    struct prun_err err;
};

static struct prun_job *mkjob(size_t ntasks)
{
    struct prun_arena *a = prun__arena_new();
    struct prun_job *job;
    size_t i;

    if (a == NULL)
        abort();
    job = prun__arena_alloc(a, sizeof(*job));
    job->arena = a;
    job->path = "jobs/t.yaml";
    job->name = "t";
    job->max_failures = 1;
    job->ntasks = ntasks;
    job->tasks = prun__arena_alloc(a, ntasks * sizeof(*job->tasks));
    for (i = 0; i < ntasks; i++) {
        struct prun_task *t = &job->tasks[i];
        char name[32];

        snprintf(name, sizeof(name), "t%zu", i);
        t->name = prun__arena_strdup(a, name);
        t->foreach.kind = PRUN_SRC_NONE;
        t->foreach.chunk = 1;
        t->kill_grace_ms = -1;
    }
    return job;
}

static void set_range(struct prun_task *t, long long from, long long to)
{
    t->foreach.kind = PRUN_SRC_RANGE;
    t->foreach.from = from;
    t->foreach.to = to;
    t->foreach.step = 1;
}

static void set_needs(struct prun_job *job, size_t task, size_t need)
{
    struct prun_task *t = &job->tasks[task];
    size_t *needs =
        prun__arena_alloc(job->arena, (t->nneeds + 1) * sizeof(*needs));

    if (t->nneeds)
        memcpy(needs, t->needs, t->nneeds * sizeof(*needs));
    needs[t->nneeds++] = need;
    t->needs = needs;
}

static enum prun_outcome always_ok(struct sim *m, const struct prun_inst *inst)
{
    (void)m;
    (void)inst;
    return PRUN_OUT_OK;
}

static int sim_init(struct sim *m, struct prun_job *job, unsigned jobs)
{
    memset(m, 0, sizeof(*m));
    m->job = job;
    m->opts.jobs = jobs;
    m->opts.seed = 42;
    m->dur = 10;
    m->outcome = always_ok;
    return prun__sched_new(job, &m->opts, &m->s, &m->err);
}

static void sim_finish(struct sim *m, size_t r, enum prun_outcome out)
{
    struct prun_inst *inst = m->run[r].inst;
    size_t log = (size_t)(uintptr_t)inst->udata;
    enum prun_verdict v;

    m->running[inst->task]--;
    m->run[r] = m->run[--m->nrun];
    v = prun__sched_finish(m->s, inst, out, m->now);
    m->nverdict[v]++;
    if (log < LOGN) {
        m->log[log].end = m->now;
        m->log[log].verdict = v;
    }
    if (v != PRUN_V_RETRY)
        prun__inst_free(inst);
}

/* Waits for the sources the scheduler waits on; nonzero if there were any. */
static int sim_input(struct sim *m)
{
    struct pollfd pfd;
    size_t t;
    int any = 0;

    for (t = 0; t < m->job->ntasks; t++) {
        pfd.fd = prun__sched_input_fd(m->s, t);
        if (pfd.fd < 0)
            continue;
        pfd.events = POLLIN;
        if (poll(&pfd, 1, 5000) == 1)
            prun__sched_input_ready(m->s, t);
        else
            m->violation = 1;
        any = 1;
    }
    return any && !m->violation;
}

static void sim_run(struct sim *m)
{
    long guard;

    for (guard = 0; guard < 50000000; guard++) {
        struct prun_inst *inst = NULL;
        int64_t wake = -1, t;
        size_t r;
        int rc;

        while ((rc = prun__sched_next(m->s, m->now, &inst, &wake, &m->err)) ==
               PRUN_NEXT_START) {
            const struct prun_task *task = &m->job->tasks[inst->task];

            if (prun__sched_halted(m->s))
                m->started_after_halt++;
            if (m->nrun == sizeof(m->run) / sizeof(m->run[0]) ||
                inst->task >= MAXT) {
                m->violation = 1;
                return;
            }
            m->running[inst->task]++;
            if (m->running[inst->task] > m->max_running[inst->task])
                m->max_running[inst->task] = m->running[inst->task];
            if (task->jobs && m->running[inst->task] > task->jobs)
                m->violation = 1;
            if (m->nrun + 1 > m->max_global)
                m->max_global = (unsigned)m->nrun + 1;
            if (m->nrun + 1 > m->opts.jobs)
                m->violation = 1;
            if (m->nstarts < LOGN) {
                struct start_rec *l = &m->log[m->nstarts];

                l->task = inst->task;
                l->index = inst->index;
                l->attempt = inst->attempt;
                l->start = m->now;
                l->end = -1;
            }
            inst->udata = (void *)(uintptr_t)m->nstarts;
            m->nstarts++;
            m->run[m->nrun].inst = inst;
            m->run[m->nrun].end =
                m->now + (m->dur_fn ? m->dur_fn(inst) : m->dur);
            m->nrun++;
            if (m->stop_after && m->nstarts == m->stop_after)
                prun__sched_stop(m->s);
        }
        if (rc == PRUN_NEXT_DONE) {
            if (m->nrun != 0)
                m->violation = 1;
            m->done = 1;
            return;
        }
        if (rc < 0) {
            m->error = rc;
            return;
        }
        /* A source waiting for input: the runner would poll its fd. */
        if (sim_input(m))
            continue;
        if (wake <= m->now) {
            m->violation = 1;
            return;
        }
        t = wake;
        for (r = 0; r < m->nrun; r++)
            if (m->run[r].end < t)
                t = m->run[r].end;
        if (t == INT64_MAX) {
            m->violation = 1;
            return;
        }
        m->now = t;
        for (r = 0; r < m->nrun;) {
            if (m->run[r].end <= m->now)
                sim_finish(m, r, m->outcome(m, m->run[r].inst));
            else
                r++;
        }
        /* halt: now is the runner's job: it stops what still runs. */
        if (prun__sched_halt_now(m->s))
            while (m->nrun > 0)
                sim_finish(m, 0, PRUN_OUT_CANCELLED);
    }
    m->violation = 1;
}

static void sim_free(struct sim *m)
{
    while (m->nrun > 0)
        prun__inst_free(m->run[--m->nrun].inst);
    prun__sched_free(m->s);
    prun__arena_free(m->job->arena);
}

/* The stats invariant once a run is done. */
static int stats_add_up(const struct prun__sched_stats *st)
{
    return st->total >= 0 && st->running == 0 &&
           st->succeeded + st->failed + st->cancelled + st->skipped ==
               (unsigned long long)st->total;
}

static void test_caps(void)
{
    struct prun_job *job = mkjob(3);
    struct prun__sched_stats st;
    struct sim m;

    set_range(&job->tasks[0], 0, 50);
    set_range(&job->tasks[1], 0, 200);
    set_range(&job->tasks[2], 0, 50);
    job->tasks[0].jobs = 2;
    job->tasks[2].jobs = 1;
    ASSERT_EQ(sim_init(&m, job, 4), 0);
    sim_run(&m);
    prun__sched_stats(m.s, &st);
    sim_free(&m);
    ASSERT(m.done);
    ASSERT(!m.violation);
    ASSERT_EQ(m.max_global, 4);
    ASSERT_EQ(m.max_running[0], 2);
    ASSERT_EQ(m.max_running[1], 4);
    ASSERT_EQ(m.max_running[2], 1);
    ASSERT_EQ(st.total, 300);
    ASSERT_EQ(st.started, 300);
    ASSERT_EQ(st.succeeded, 300);
    ASSERT_EQ(st.failed + st.skipped + st.retried + st.cancelled, 0);
}

static void test_global_cap_one(void)
{
    struct prun_job *job = mkjob(2);
    struct sim m;
    unsigned long long i;

    set_range(&job->tasks[0], 0, 5);
    set_range(&job->tasks[1], 0, 5);
    ASSERT_EQ(sim_init(&m, job, 1), 0);
    sim_run(&m);
    sim_free(&m);
    ASSERT(m.done && !m.violation);
    ASSERT_EQ(m.max_global, 1);
    /* One at a time, back to back. */
    for (i = 0; i < 10; i++)
        ASSERT_EQ(m.log[i].start, (int64_t)i * 10);
}

static void test_round_robin(void)
{
    struct prun_job *job = mkjob(2);
    struct sim m;
    unsigned long long i, b_seen = 0;

    set_range(&job->tasks[0], 0, 1000);
    set_range(&job->tasks[1], 0, 10);
    ASSERT_EQ(sim_init(&m, job, 2), 0);
    sim_run(&m);
    sim_free(&m);
    ASSERT(m.done && !m.violation);
    ASSERT_EQ(m.nstarts, 1010);
    /* The big first task does not starve the second: they alternate. */
    for (i = 0; i < 20; i++) {
        ASSERT_EQ(m.log[i].task, i % 2);
        ASSERT_EQ(m.log[i].index, i / 2);
    }
    for (i = 0; i < 20; i++)
        b_seen += m.log[i].task == 1;
    ASSERT_EQ(b_seen, 10);
    ASSERT_EQ(m.log[20].task, 0);
}

static void test_needs_order(void)
{
    struct prun_job *job = mkjob(3);
    struct sim m;
    int64_t a_last_end = 0, b_first = INT64_MAX;
    unsigned long long i, nb = 0;

    set_range(&job->tasks[0], 0, 7); /* A */
    set_range(&job->tasks[1], 0, 3); /* B needs A */
    set_range(&job->tasks[2], 0, 2); /* C, independent */
    set_needs(job, 1, 0);
    ASSERT_EQ(sim_init(&m, job, 4), 0);
    sim_run(&m);
    sim_free(&m);
    ASSERT(m.done && !m.violation);
    ASSERT_EQ(m.nstarts, 12);
    for (i = 0; i < m.nstarts; i++) {
        if (m.log[i].task == 0 && m.log[i].end > a_last_end)
            a_last_end = m.log[i].end;
        if (m.log[i].task == 1) {
            nb++;
            if (m.log[i].start < b_first)
                b_first = m.log[i].start;
        }
    }
    ASSERT_EQ(nb, 3);
    ASSERT(b_first >= a_last_end);
    ASSERT_EQ(b_first, 30);
    /* The independent task did not wait for A. */
    ASSERT_EQ(m.log[1].task, 2);
}

static enum prun_outcome fail_index2(struct sim *m, const struct prun_inst *i)
{
    (void)m;
    return i->task == 0 && i->index == 2 ? PRUN_OUT_FAIL : PRUN_OUT_OK;
}

static void test_skipped_dependents(void)
{
    struct prun_job *job = mkjob(4);
    struct prun__sched_stats st;
    struct sim m;
    unsigned long long i;
    int skipped[4], k;

    set_range(&job->tasks[0], 0, 4); /* A: index 2 fails */
    set_range(&job->tasks[1], 0, 3); /* B needs A */
    set_range(&job->tasks[2], 0, 2); /* C needs B */
    set_range(&job->tasks[3], 0, 2); /* D, independent */
    set_needs(job, 1, 0);
    set_needs(job, 2, 1);
    ASSERT_EQ(sim_init(&m, job, 2), 0);
    m.outcome = fail_index2;
    sim_run(&m);
    prun__sched_stats(m.s, &st);
    for (k = 0; k < 4; k++)
        skipped[k] = prun__sched_task_skipped(m.s, (size_t)k);
    sim_free(&m);
    ASSERT(m.done && !m.violation);
    for (i = 0; i < m.nstarts; i++)
        ASSERT(m.log[i].task == 0 || m.log[i].task == 3);
    ASSERT_EQ(skipped[0], 0);
    ASSERT_EQ(skipped[1], 1);
    ASSERT_EQ(skipped[2], 1);
    ASSERT_EQ(skipped[3], 0);
    ASSERT_EQ(st.total, 11);
    ASSERT_EQ(st.succeeded, 5);
    ASSERT_EQ(st.failed, 1);
    ASSERT_EQ(st.skipped, 5);
    ASSERT_EQ(m.nverdict[PRUN_V_FAILED], 1);
    ASSERT(stats_add_up(&st));
}

static enum prun_outcome always_fail(struct sim *m, const struct prun_inst *i)
{
    (void)m;
    (void)i;
    return PRUN_OUT_FAIL;
}

static void test_retry_backoff(void)
{
    struct prun_job *job = mkjob(1);
    struct prun__sched_stats st;
    struct sim m;
    unsigned k;

    job->tasks[0].retries = 3;
    job->tasks[0].retry_delay_ms = 1000;
    ASSERT_EQ(sim_init(&m, job, 1), 0);
    m.outcome = always_fail;
    m.dur = 5;
    sim_run(&m);
    prun__sched_stats(m.s, &st);
    sim_free(&m);
    ASSERT(m.done && !m.violation);
    ASSERT_EQ(m.nstarts, 4);
    for (k = 0; k < 4; k++) {
        ASSERT_EQ(m.log[k].attempt, k + 1);
        ASSERT_EQ(m.log[k].index, 0);
        ASSERT_EQ(m.log[k].verdict, k < 3 ? PRUN_V_RETRY : PRUN_V_FAILED);
    }
    /* 1s, 2s, 4s, each scaled by a factor in [0.8, 1.2). */
    for (k = 1; k < 4; k++) {
        int64_t delay = m.log[k].start - m.log[k - 1].end;
        int64_t base = 1000LL << (k - 1);

        ASSERT(delay >= base * 8 / 10);
        ASSERT(delay < base * 12 / 10);
    }
    ASSERT_EQ(st.started, 4);
    ASSERT_EQ(st.retried, 3);
    ASSERT_EQ(st.failed, 1);
    ASSERT_EQ(st.succeeded, 0);
    ASSERT(stats_add_up(&st));
}

static void test_retry_jitter_spread(void)
{
    struct prun_job *job = mkjob(1);
    struct sim m;
    int64_t lo = INT64_MAX, hi = 0;
    unsigned long long i;

    set_range(&job->tasks[0], 0, 40);
    job->tasks[0].retries = 1;
    job->tasks[0].retry_delay_ms = 10000;
    ASSERT_EQ(sim_init(&m, job, 40), 0);
    m.outcome = always_fail;
    m.dur = 1;
    sim_run(&m);
    sim_free(&m);
    ASSERT(m.done && !m.violation);
    ASSERT_EQ(m.nstarts, 80);
    for (i = 0; i < m.nstarts; i++) {
        int64_t d;

        if (m.log[i].attempt != 2)
            continue;
        d = m.log[i].start - 1; /* every first attempt ended at 1 */
        ASSERT(d >= 8000 && d < 12000);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    /* Jitter spreads the retries rather than firing them together. */
    ASSERT(hi - lo > 1000);
}

static void test_retry_cap_one_hour(void)
{
    struct prun_job *job = mkjob(1);
    struct sim m;

    job->tasks[0].retries = 30;
    job->tasks[0].retry_delay_ms = 60000;
    ASSERT_EQ(sim_init(&m, job, 1), 0);
    m.outcome = always_fail;
    m.dur = 1;
    sim_run(&m);
    sim_free(&m);
    ASSERT(m.done && !m.violation);
    ASSERT_EQ(m.nstarts, 31);
    /* The 31st attempt would wait 2^29 minutes without the cap. */
    ASSERT(m.log[30].start - m.log[29].end <= 3600 * 1000);
    ASSERT(m.log[30].start - m.log[29].end >= 3600 * 1000 * 8 / 10);
}

static enum prun_outcome first_fails(struct sim *m, const struct prun_inst *i)
{
    (void)m;
    return i->attempt == 1 && i->index == 0 ? PRUN_OUT_FAIL : PRUN_OUT_OK;
}

static void test_retry_before_new_items(void)
{
    struct prun_job *job = mkjob(1);
    struct sim m;

    set_range(&job->tasks[0], 0, 3);
    job->tasks[0].retries = 2;
    job->tasks[0].retry_delay_ms = 0;
    ASSERT_EQ(sim_init(&m, job, 1), 0);
    m.outcome = first_fails;
    sim_run(&m);
    sim_free(&m);
    ASSERT(m.done && !m.violation);
    ASSERT_EQ(m.nstarts, 4);
    ASSERT_EQ(m.log[1].index, 0);
    ASSERT_EQ(m.log[1].attempt, 2);
    ASSERT_EQ(m.log[2].index, 1);
    ASSERT_EQ(m.log[2].attempt, 1);
}

static enum prun_outcome fail_final(struct sim *m, const struct prun_inst *i)
{
    (void)m;
    (void)i;
    return PRUN_OUT_FAIL_FINAL;
}

static void test_fail_final_not_retried(void)
{
    struct prun_job *job = mkjob(1);
    struct prun__sched_stats st;
    struct sim m;

    set_range(&job->tasks[0], 0, 3);
    job->tasks[0].retries = 5;
    job->tasks[0].retry_delay_ms = 10;
    ASSERT_EQ(sim_init(&m, job, 2), 0);
    m.outcome = fail_final;
    sim_run(&m);
    prun__sched_stats(m.s, &st);
    sim_free(&m);
    ASSERT(m.done && !m.violation);
    ASSERT_EQ(m.nstarts, 3);
    ASSERT_EQ(st.retried, 0);
    ASSERT_EQ(st.failed, 3);
    ASSERT_EQ(m.nverdict[PRUN_V_FAILED], 3);
    ASSERT(stats_add_up(&st));
}

static enum prun_outcome fail_1_and_4(struct sim *m, const struct prun_inst *i)
{
    (void)m;
    return i->index == 1 || i->index == 4 ? PRUN_OUT_FAIL : PRUN_OUT_OK;
}

static void test_halt_soon(void)
{
    struct prun_job *job = mkjob(2);
    struct prun__sched_stats st;
    struct sim m;
    int halted = 0, halt_now = 0;
    int64_t halt_at = -1;
    unsigned long long i;

    set_range(&job->tasks[0], 0, 20);
    set_range(&job->tasks[1], 0, 5);
    set_needs(job, 1, 0);
    job->halt = PRUN_HALT_SOON;
    job->max_failures = 2;
    ASSERT_EQ(sim_init(&m, job, 3), 0);
    m.outcome = fail_1_and_4;
    sim_run(&m);
    prun__sched_stats(m.s, &st);
    halted = prun__sched_halted(m.s);
    halt_now = prun__sched_halt_now(m.s);
    sim_free(&m);
    ASSERT(halted);
    ASSERT(!halt_now);
    ASSERT(m.done && !m.violation);
    ASSERT_EQ(m.started_after_halt, 0);
    for (i = 0; i < m.nstarts; i++)
        if (m.log[i].index == 4 && m.log[i].task == 0)
            halt_at = m.log[i].end;
    ASSERT(halt_at > 0);
    /* Nothing started at or after the second failure. */
    for (i = 0; i < m.nstarts; i++)
        ASSERT(m.log[i].start < halt_at);
    /* Instances running at the halt finished normally. */
    ASSERT_EQ(st.cancelled, 0);
    ASSERT_EQ(st.failed, 2);
    ASSERT_EQ(st.started, 6);
    ASSERT_EQ(st.succeeded, 4);
    ASSERT_EQ(st.skipped, 14 + 5);
    ASSERT(stats_add_up(&st));
}

static void test_halt_never(void)
{
    struct prun_job *job = mkjob(1);
    struct prun__sched_stats st;
    struct sim m;
    int halted = 0;

    set_range(&job->tasks[0], 0, 20);
    job->halt = PRUN_HALT_NEVER;
    ASSERT_EQ(sim_init(&m, job, 3), 0);
    m.outcome = fail_1_and_4;
    sim_run(&m);
    prun__sched_stats(m.s, &st);
    halted = prun__sched_halted(m.s);
    sim_free(&m);
    ASSERT(!halted);
    ASSERT_EQ(st.failed, 2);
    ASSERT_EQ(st.succeeded, 18);
    ASSERT_EQ(st.skipped, 0);
}

static enum prun_outcome halt_now_outcome(
    struct sim *m, const struct prun_inst *i)
{
    (void)m;
    if (i->index == 0)
        return PRUN_OUT_FAIL;
    return i->index == 1 ? PRUN_OUT_FAIL_FINAL : PRUN_OUT_OK;
}

static int64_t staggered(const struct prun_inst *i)
{
    return 10 + 10 * (int64_t)i->index;
}

static void test_halt_now(void)
{
    struct prun_job *job = mkjob(1);
    struct prun__sched_stats st;
    struct sim m;
    int halted = 0, halt_now = 0;

    set_range(&job->tasks[0], 0, 20);
    job->tasks[0].retries = 1;
    job->tasks[0].retry_delay_ms = 1000;
    job->halt = PRUN_HALT_NOW;
    job->max_failures = 1;
    ASSERT_EQ(sim_init(&m, job, 4), 0);
    m.outcome = halt_now_outcome;
    m.dur_fn = staggered;
    sim_run(&m);
    prun__sched_stats(m.s, &st);
    halted = prun__sched_halted(m.s);
    halt_now = prun__sched_halt_now(m.s);
    sim_free(&m);
    ASSERT(halted);
    ASSERT(halt_now);
    ASSERT(m.done && !m.violation);
    /*
     * 0-3 start at 0; 0 fails at 10 and waits for a retry while 4 starts;
     * 1 fails for good at 20, which halts: 2, 3 and 4 are stopped, the
     * queued retry of 0 and the 15 unread instances are skipped.
     */
    ASSERT_EQ(m.nstarts, 5);
    ASSERT_EQ(m.log[4].index, 4);
    ASSERT_EQ(m.log[4].start, 10);
    ASSERT_EQ(st.started, 5);
    ASSERT_EQ(st.retried, 1);
    ASSERT_EQ(st.failed, 1);
    ASSERT_EQ(st.cancelled, 3);
    ASSERT_EQ(m.nverdict[PRUN_V_CANCELLED], 3);
    ASSERT_EQ(st.skipped, 16);
    ASSERT_EQ(st.succeeded, 0);
    ASSERT(stats_add_up(&st));
}

static void test_rate(void)
{
    struct prun_job *job = mkjob(1);
    struct prun_inst *inst = NULL;
    struct prun_sched *s = NULL;
    struct prun_sched_opts opts = {.jobs = 100, .seed = 1};
    int64_t wake = 0;
    struct sim m;
    unsigned long long i;

    set_range(&job->tasks[0], 0, 10);
    job->tasks[0].rate = 20;
    ASSERT_EQ(sim_init(&m, job, 10), 0);
    m.dur = 1000;
    sim_run(&m);
    sim_free(&m);
    ASSERT(m.done && !m.violation);
    ASSERT_EQ(m.nstarts, 10);
    ASSERT(m.log[9].start - m.log[0].start >= 450);
    for (i = 1; i < 10; i++)
        ASSERT(m.log[i].start - m.log[i - 1].start >= 50);
    ASSERT_EQ(m.log[9].start, 450);

    /* The wake time names the next slot of the schedule. */
    job = mkjob(1);
    set_range(&job->tasks[0], 0, 10);
    job->tasks[0].rate = 20;
    ASSERT_EQ(prun__sched_new(job, &opts, &s, NULL), 0);
    ASSERT_EQ(prun__sched_next(s, 1000, &inst, &wake, NULL), PRUN_NEXT_START);
    prun__inst_free(inst);
    ASSERT_EQ(prun__sched_next(s, 1000, &inst, &wake, NULL), PRUN_NEXT_WAIT);
    ASSERT_EQ(wake, 1050);
    ASSERT_EQ(prun__sched_next(s, 1049, &inst, &wake, NULL), PRUN_NEXT_WAIT);
    ASSERT_EQ(prun__sched_next(s, 1050, &inst, &wake, NULL), PRUN_NEXT_START);
    prun__inst_free(inst);
    prun__sched_free(s);
    prun__arena_free(job->arena);
}

static void test_rate_fractional(void)
{
    struct prun_job *job = mkjob(1);
    struct sim m;
    unsigned long long i;

    set_range(&job->tasks[0], 0, 301);
    job->tasks[0].rate = 30;
    ASSERT_EQ(sim_init(&m, job, 50), 0);
    m.dur = 100;
    sim_run(&m);
    sim_free(&m);
    ASSERT(m.done && !m.violation);
    /* 30/s is a 33.3 ms interval: exactly 30 starts a second over time. */
    ASSERT_EQ(m.log[30].start, 1000);
    ASSERT_EQ(m.log[300].start, 10000);
    for (i = 1; i <= 300; i++)
        ASSERT(m.log[i].start - m.log[i - 1].start >= 33);
}

static void test_stop(void)
{
    struct prun_job *job = mkjob(2);
    struct prun__sched_stats st;
    struct sim m;
    int halt_now = 0;

    set_range(&job->tasks[0], 0, 100);
    set_range(&job->tasks[1], 0, 10);
    set_needs(job, 1, 0);
    ASSERT_EQ(sim_init(&m, job, 2), 0);
    m.stop_after = 5;
    sim_run(&m);
    prun__sched_stats(m.s, &st);
    halt_now = prun__sched_halt_now(m.s);
    sim_free(&m);
    /* Stop is not a halt: halt: now stays for the job's own policy. */
    ASSERT(!halt_now);
    ASSERT(m.done && !m.violation);
    ASSERT_EQ(m.nstarts, 5);
    ASSERT_EQ(st.started, 5);
    ASSERT_EQ(st.succeeded, 5);
    ASSERT_EQ(st.skipped, 95 + 10);
    ASSERT(stats_add_up(&st));
}

static void test_zero_instance_tasks(void)
{
    struct prun_job *job = mkjob(3);
    struct prun__sched_stats st;
    struct sim m;
    long long count0, count1;

    set_range(&job->tasks[0], 5, 5); /* empty */
    set_range(&job->tasks[1], 0, 2); /* needs the empty one */
    set_range(&job->tasks[2], 0, 0); /* empty, needs B */
    job->tasks[0].foreach.allow_empty = 1;
    job->tasks[2].foreach.allow_empty = 1;
    set_needs(job, 1, 0);
    set_needs(job, 2, 1);
    ASSERT_EQ(sim_init(&m, job, 2), 0);
    count0 = prun__sched_task_count(m.s, 0);
    count1 = prun__sched_task_count(m.s, 1);
    sim_run(&m);
    prun__sched_stats(m.s, &st);
    sim_free(&m);
    ASSERT_EQ(count0, 0);
    ASSERT_EQ(count1, 2);
    ASSERT(m.done && !m.violation);
    ASSERT_EQ(m.nstarts, 2);
    ASSERT_EQ(m.log[0].start, 0);
    ASSERT_EQ(st.total, 2);
    ASSERT_EQ(st.succeeded, 2);
    ASSERT(stats_add_up(&st));

    /* A job of empty tasks is done at once. */
    job = mkjob(1);
    set_range(&job->tasks[0], 0, 0);
    job->tasks[0].foreach.allow_empty = 1;
    ASSERT_EQ(sim_init(&m, job, 1), 0);
    sim_run(&m);
    sim_free(&m);
    ASSERT(m.done && !m.violation);
    ASSERT_EQ(m.nstarts, 0);
}

static void test_unknown_count(void)
{
    static const char data[] = "a\nb\nc\n";
    struct prun_job *job = mkjob(2);
    struct prun__sched_stats st;
    struct sim m;
    long long total0 = 0, count0 = 0, count1 = 0;
    int fds[2], saved, rc;

    job->tasks[0].foreach.kind = PRUN_SRC_LINES;
    job->tasks[0].foreach.path = "-";
    set_range(&job->tasks[1], 0, 2);
    set_needs(job, 1, 0);
    ASSERT_EQ(pipe(fds), 0);
    ASSERT_EQ(write(fds[1], data, sizeof(data) - 1), sizeof(data) - 1);
    close(fds[1]);
    saved = dup(0);
    dup2(fds[0], 0);
    close(fds[0]);
    /*
     * One at a time, the last line has finished before the end of the
     * pipe is seen; that end alone must let the dependent task start.
     */
    rc = sim_init(&m, job, 1);
    if (rc == 0) {
        prun__sched_stats(m.s, &st);
        total0 = st.total;
        count0 = prun__sched_task_count(m.s, 0);
        sim_run(&m);
        prun__sched_stats(m.s, &st);
        count1 = prun__sched_task_count(m.s, 0);
    }
    dup2(saved, 0);
    close(saved);
    sim_free(&m);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(total0, -1);
    ASSERT_EQ(count0, -1);
    ASSERT_EQ(count1, 3);
    ASSERT(m.done && !m.violation);
    ASSERT_EQ(m.nstarts, 5);
    ASSERT_EQ(m.log[0].task, 0);
    ASSERT_EQ(m.log[4].task, 1);
    ASSERT_EQ(st.total, 5);
    ASSERT_EQ(st.succeeded, 5);
}

static void test_missing_lines_file(void)
{
    struct prun_job *job = mkjob(2);
    struct prun_sched_opts opts = {.jobs = 2, .seed = 1};
    struct prun_sched *s = NULL;
    struct prun_err err;

    set_range(&job->tasks[0], 0, 10);
    job->tasks[1].foreach.kind = PRUN_SRC_LINES;
    job->tasks[1].foreach.path = "urls-that-do-not-exist.txt";
    job->tasks[1].foreach.pos.line = 12;
    job->tasks[1].foreach.pos.col = 16;
    memset(&err, 0, sizeof(err));
    ASSERT_EQ(prun__sched_new(job, &opts, &s, &err), PRUN_EINVAL);
    ASSERT(s == NULL);
    prun__arena_free(job->arena);
    ASSERT_STREQ(err.msg, "jobs/t.yaml:12:16: cannot open "
                          "'urls-that-do-not-exist.txt': No such file or "
                          "directory");
}

static void test_chunked_instances(void)
{
    struct prun_job *job = mkjob(1);
    struct prun_sched_opts opts = {.jobs = 4, .seed = 1};
    struct prun_sched *s = NULL;
    struct prun_inst *a = NULL, *b = NULL;
    int64_t wake;

    set_range(&job->tasks[0], 0, 5);
    job->tasks[0].foreach.chunk = 3;
    ASSERT_EQ(prun__sched_new(job, &opts, &s, NULL), 0);
    ASSERT_EQ(prun__sched_task_count(s, 0), 2);
    ASSERT_EQ(prun__sched_next(s, 0, &a, &wake, NULL), PRUN_NEXT_START);
    ASSERT_EQ(prun__sched_next(s, 0, &b, &wake, NULL), PRUN_NEXT_START);
    ASSERT_EQ(a->nitems, 3);
    ASSERT_STREQ(a->items[0].text, "0");
    ASSERT_STREQ(a->items[2].text, "2");
    ASSERT_EQ(b->index, 1);
    ASSERT_EQ(b->nitems, 2);
    ASSERT_STREQ(b->items[1].text, "4");
    ASSERT_EQ(prun__sched_next(s, 0, &b, &wake, NULL), PRUN_NEXT_WAIT);
    ASSERT_EQ(wake, INT64_MAX);
    ASSERT_EQ(prun__sched_finish(s, a, PRUN_OUT_OK, 1), PRUN_V_SUCCEEDED);
    prun__inst_free(a);
    ASSERT_EQ(prun__sched_next(s, 1, &a, &wake, NULL), PRUN_NEXT_WAIT);
    ASSERT_EQ(prun__sched_finish(s, b, PRUN_OUT_OK, 2), PRUN_V_SUCCEEDED);
    prun__inst_free(b);
    ASSERT_EQ(prun__sched_next(s, 2, &a, &wake, NULL), PRUN_NEXT_DONE);
    prun__sched_free(s);
    prun__arena_free(job->arena);
}

static void test_million(void)
{
    struct prun_job *job = mkjob(1);
    struct prun__sched_stats st;
    struct sim m;

    set_range(&job->tasks[0], 0, 1000000);
    ASSERT_EQ(sim_init(&m, job, 8), 0);
    m.dur = 1;
    sim_run(&m);
    prun__sched_stats(m.s, &st);
    sim_free(&m);
    ASSERT(m.done && !m.violation);
    ASSERT_EQ(st.total, 1000000);
    ASSERT_EQ(st.started, 1000000);
    ASSERT_EQ(st.succeeded, 1000000);
    ASSERT_EQ(m.max_global, 8);
    ASSERT(stats_add_up(&st));
}

int main(void)
{
    RUN(test_caps);
    RUN(test_global_cap_one);
    RUN(test_round_robin);
    RUN(test_needs_order);
    RUN(test_skipped_dependents);
    RUN(test_retry_backoff);
    RUN(test_retry_jitter_spread);
    RUN(test_retry_cap_one_hour);
    RUN(test_retry_before_new_items);
    RUN(test_fail_final_not_retried);
    RUN(test_halt_soon);
    RUN(test_halt_never);
    RUN(test_halt_now);
    RUN(test_rate);
    RUN(test_rate_fractional);
    RUN(test_stop);
    RUN(test_zero_instance_tasks);
    RUN(test_unknown_count);
    RUN(test_missing_lines_file);
    RUN(test_chunked_instances);
    RUN(test_million);
    return unit_done();
}
