/*
 * test_progress.c - the progress report's text and mode choice.
 */
#include <CUnit/Basic.h>
#include <string.h>

#include "progress.h"
#include "testutil.h"

static void expect(const char *got, const char *want)
{
    CU_ASSERT_STRING_EQUAL(got, want);
    if (strcmp(got, want)) fprintf(stderr, "\n  got  '%s'\n  want '%s'\n", got, want);
}

static void test_format_lines(void)
{
    char b[256];
    /* half of 1 GiB in 2 s: 256 MiB/s, 2 s to go */
    mpm__progress_format(b, sizeof b, 0, 64, 512ull << 20, 1024ull << 20, 0, 2.0);
    expect(b, "64 chunks, 512.0 MiB / 1.0 GiB (50.0%), 256.0 MiB/s, ETA 2s");
    /* small sizes stay in bytes */
    mpm__progress_format(b, sizeof b, 0, 3, 100, 400, 0, 1.0);
    expect(b, "3 chunks, 100 B / 400 B (25.0%), 100 B/s, ETA 3s");
    /* integers (ranges), hours in the ETA */
    mpm__progress_format(b, sizeof b, 0, 7, 1000000, 4000000001ull, 1, 1.0);
    expect(b, "7 chunks, 1.0M / 4.0G integers (0.0%), 1.0M/s, ETA 1h06m39s");
    /* unknown total (standard input): no percentage, no ETA */
    mpm__progress_format(b, sizeof b, 0, 5, 3 << 20, 0, 0, 3.0);
    expect(b, "5 chunks, 3.0 MiB done, 1.0 MiB/s");
    /* finished; nothing measured yet */
    mpm__progress_format(b, sizeof b, 0, 9, 400, 400, 0, 2.0);
    expect(b, "9 chunks, 400 B / 400 B (100.0%), 200 B/s, ETA 0s");
    mpm__progress_format(b, sizeof b, 0, 0, 0, 400, 0, 0.0);
    expect(b, "0 chunks, 0 B / 400 B (0.0%), 0 B/s, ETA ?");
}

static void test_format_bar(void)
{
    char b[256];
    mpm__progress_format(b, sizeof b, 1, 10, 250, 1000, 0, 1.0);
    expect(b, "[######..................] 10 chunks, 250 B / 1000 B (25.0%), 250 B/s, ETA 3s");
    mpm__progress_format(b, sizeof b, 1, 10, 1000, 1000, 0, 1.0);
    CU_ASSERT(strncmp(b, "[########################] ", 27) == 0);
    /* unknown total: no bar */
    mpm__progress_format(b, sizeof b, 1, 1, 10, 0, 0, 1.0);
    expect(b, "1 chunks, 10 B done, 10 B/s");
}

static void test_modes(void)
{
    mpm_progress_t p;
    mpm__progress_init(&p, MPM_PROGRESS_AUTO, 0, 1, 10, 100, 0);
    CU_ASSERT_EQUAL(p.mode, MPM_PMODE_BAR);
    mpm__progress_init(&p, MPM_PROGRESS_AUTO, 0, 0, 10, 100, 0);
    CU_ASSERT_EQUAL(p.mode, MPM_PMODE_LINES);
    CU_ASSERT_DOUBLE_EQUAL(p.interval, 10, 1e-9);
    mpm__progress_init(&p, MPM_PROGRESS_AUTO, 1, 0, 10, 100, 0); /* -q */
    CU_ASSERT_EQUAL(p.mode, MPM_PMODE_NONE);
    mpm__progress_init(&p, MPM_PROGRESS_ON, 1, 0, 10, 100, 0); /* on beats -q */
    CU_ASSERT_EQUAL(p.mode, MPM_PMODE_LINES);
    mpm__progress_init(&p, MPM_PROGRESS_OFF, 0, 1, 10, 100, 0);
    CU_ASSERT_EQUAL(p.mode, MPM_PMODE_NONE);
}

int main(void)
{
    static const tu_test_t tests[] = {{"report text", test_format_lines},
                                      {"bar", test_format_bar},
                                      {"modes", test_modes},
                                      {NULL, NULL}};
    return tu_main("progress", NULL, NULL, tests);
}
