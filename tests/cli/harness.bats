#!/usr/bin/env bats
# The unit-test harness (tests/unit/unit.h): each test in its own process,
# a hang is killed after its timeout, a crash fails only its own test,
# tests are selected by name, and the TAP output keeps its form.

load helpers

setup() {
    common_setup
    cat >"$T/t.c" <<'C'
#include "unit.h"
static int shared;
static void test_hang(void) { for (;;) pause(); }
static void test_crash(void) { *(volatile int *)0 = 1; }
static void test_skip(void) { UNIT_SKIP("no such thing"); }
static void test_fail(void) { ASSERT_EQ(1, 2); }
static void test_dirty(void) { shared = 1; }
static void test_clean(void) { ASSERT_EQ(shared, 0); }
int main(void)
{
    RUN(test_hang); RUN(test_crash); RUN(test_skip); RUN(test_fail);
    RUN(test_dirty); RUN(test_clean);
    return unit_done();
}
C
    cc -std=c11 -D_GNU_SOURCE -I"$ROOT/tests/unit" -o "$T/t" "$T/t.c"
}
teardown() { common_teardown; }

@test "unit harness: a hang times out, a crash is one failure, state is not shared" {
    UNIT_TIMEOUT=1 run timeout "$(scaled 30)" "$T/t"
    [ "$status" -eq 1 ]
    [[ "$output" == *"# timed out after "*$'\n'"not ok 1 test_hang"* ]]
    [[ "$output" == *"# killed by signal 11"*$'\n'"not ok 2 test_crash"* ]]
    [[ "$output" == *$'\n'"ok 3 test_skip # skip no such thing"* ]]
    [[ "$output" == *"1 != 2"*$'\n'"not ok 4 test_fail"* ]]
    [[ "$output" == *$'\n'"ok 6 test_clean"$'\n'"1..6" ]]
}

@test "unit harness: tests selected by name or UNIT_FILTER" {
    run "$T/t" test_fail test_clean
    [ "$status" -eq 1 ]
    [[ "$output" == *"not ok 1 test_fail"*$'\n'"ok 2 test_clean"$'\n'"1..2" ]]
    UNIT_FILTER=clean run "$T/t"
    [ "$status" -eq 0 ]
    [ "$output" = $'ok 1 test_clean\n1..1' ]
    # The real binaries take names too.
    run "$PRUN_BUILD/tests/test_sched" test_skipped_dependents
    [ "$status" -eq 0 ]
    [ "$output" = $'ok 1 test_skipped_dependents\n1..1' ]
}
