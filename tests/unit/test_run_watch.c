/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for lib/run_watch.c's decision, without Redis: when a
 * distributed run stops waiting for workers, with which cause and which
 * exit class; and for util's reader of terminal records (prun__json_field).
 */
#include "run_watch.h"
#include "unit.h"
#include "util.h"

static char said[1024];

static void say(void *ctx, const char *msg)
{
    (void)ctx;
    snprintf(said, sizeof(said), "%s", msg);
}

/* A watch with instances outstanding since t=1000, alone since then. */
static struct prun__wwatch alone(int64_t wait_ms)
{
    struct prun__wwatch w;

    prun__wwatch_init(&w, "RID", "unix:///q.sock", wait_ms, say, NULL);
    w.since = 1000;
    w.alone = 1000;
    return w;
}

static void test_no_worker(void)
{
    struct prun__wwatch w = alone(2000);
    char why[600], brief[600];
    int sys = -1;

    ASSERT_EQ(prun__wwatch_expired(&w, 2999, why, brief, sizeof(why), &sys), 0);
    ASSERT_EQ(prun__wwatch_deadline(&w) <= 3000, 1);
    ASSERT_EQ(prun__wwatch_expired(&w, 3000, why, brief, sizeof(why), &sys), 1);
    ASSERT_EQ(sys, 1);
    ASSERT_CONTAINS(why, "no worker took any instance within 2s");
    ASSERT_CONTAINS(why, "parallelrun worker --redis unix:///q.sock");
    ASSERT_CONTAINS(brief, "not done: no live worker");
    /* Some worker served it once: they are gone, not absent. */
    prun__wwatch_served(&w);
    ASSERT_EQ(prun__wwatch_expired(&w, 3000, why, brief, sizeof(why), &sys), 1);
    ASSERT_CONTAINS(why, "no live worker on unix:///q.sock for 2s");
    prun__wwatch_free(&w);
}

static void test_wait_for_ever_and_idle(void)
{
    struct prun__wwatch w = alone(0);
    char why[600], brief[600];
    int sys;

    ASSERT_EQ(
        prun__wwatch_expired(&w, INT64_MAX / 2, why, brief, 600, &sys), 0);
    w = alone(1000);
    /* Nothing outstanding: the clock stops. */
    prun__wwatch_tick(&w, NULL, 0, 5000);
    ASSERT_EQ(prun__wwatch_expired(&w, 9000, why, brief, 600, &sys), 0);
    ASSERT_EQ(prun__wwatch_deadline(&w), INT64_MAX);
    /* Redis away: the clock starts anew when it is back. */
    w = alone(1000);
    prun__wwatch_tick(&w, NULL, 3, 5000);
    ASSERT_EQ(prun__wwatch_expired(&w, 9000, why, brief, 600, &sys), 0);
}

static void test_lease_holds(void)
{
    struct prun__wwatch w = alone(2000);
    char why[600], brief[600];
    int sys;

    /* An entry held under a 30 s lease stays its worker's till it ends. */
    w.max_lease = 30000;
    ASSERT_EQ(prun__wwatch_expired(&w, 3000, why, brief, 600, &sys), 0);
    ASSERT_EQ(prun__wwatch_deadline(&w) <= 31000, 1);
    ASSERT_EQ(prun__wwatch_expired(&w, 31000, why, brief, 600, &sys), 1);
}

static void test_gave_up_causes(void)
{
    struct prun__wwatch w = alone(2000);
    char why[600], brief[600];
    int sys;

    snprintf(w.reason, sizeof(w.reason), "worker h:1 on h gave up: %s",
        "completion of t 0 refused: NOPERM");
    ASSERT_EQ(prun__wwatch_expired(&w, 3000, why, brief, 600, &sys), 1);
    ASSERT_EQ(sys, 1);
    ASSERT_STREQ(why, "no live worker within 2s; worker h:1 on h gave up: "
                      "completion of t 0 refused: NOPERM");
    /* A host that cannot load the job: the job's fault, exit 1. */
    w.host_cause = 1;
    ASSERT_EQ(prun__wwatch_expired(&w, 3000, why, brief, 600, &sys), 1);
    ASSERT_EQ(sys, 0);
}

static void test_json_field(void)
{
    const char *rec = "{\"ok\":false,\"status\":256,\"kind\":\"exit\","
                      "\"reason\":\"a \\\"b\\\"\\n\\u00e9\",\"tail\":\"\"}";
    char v[64];

    ASSERT_EQ(prun__json_field(rec, "status", v, sizeof(v)), 0);
    ASSERT_STREQ(v, "256");
    ASSERT_EQ(prun__json_field(rec, "kind", v, sizeof(v)), 0);
    ASSERT_STREQ(v, "exit");
    ASSERT_EQ(prun__json_field(rec, "reason", v, sizeof(v)), 0);
    ASSERT_STREQ(v, "a \"b\"\n?");
    ASSERT_EQ(prun__json_field(rec, "none", v, sizeof(v)), -1);
    ASSERT_STREQ(v, "");
    ASSERT_EQ(prun__json_field(rec, "kind", v, 3), 0);
    ASSERT_STREQ(v, "ex");
}

int main(void)
{
    RUN(test_no_worker);
    RUN(test_wait_for_ever_and_idle);
    RUN(test_lease_holds);
    RUN(test_gave_up_causes);
    RUN(test_json_field);
    return unit_done();
}
