/*
 * test_obs.c - the run's counters and spans (obs.h): the busy clock and the
 * hidden share of transfers, idle time between chunks, the --trace-max
 * bound, merged idle spans, and JSON that the engine writes as is. Times are
 * given explicitly (no clock), so every figure is exact.
 */
#include <CUnit/Basic.h>
#include <pthread.h>
#include <string.h>

#include "obs.h"
#include "testutil.h"
#include "util.h"

static void test_busy_clock(void)
{
    mpm_obs_t *o = NULL;
    CU_ASSERT_FATAL(mpm__obs_new(&o, 2, 0, 10, 0.0) == 0);
    /* thread 0 busy 1..3, thread 1 busy 2..4: some thread busy 1..4 */
    mpm__obs_task_begin(o, 0, 1.0);
    CU_ASSERT_DOUBLE_EQUAL(mpm__obs_busy(o, 1.5), 0.5, 1e-12);
    mpm__obs_task_begin(o, 1, 2.0);
    mpm__obs_task_end(o, 0, 3.0);
    CU_ASSERT_DOUBLE_EQUAL(mpm__obs_busy(o, 3.5), 2.5, 1e-12);
    mpm__obs_task_end(o, 1, 4.0);
    CU_ASSERT_DOUBLE_EQUAL(mpm__obs_busy(o, 9.0), 3.0, 1e-12);
    /* idle: thread 0 waited 0..1 and waits 3..5; thread 1 0..2 and 4..5 */
    mpm__obs_close(o, 5.0);
    CU_ASSERT_DOUBLE_EQUAL(o->th[0].idle_s, 3.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(o->th[1].idle_s, 3.0, 1e-12);
    mpm__obs_free(o);
}

static void test_hidden_transfers(void)
{
    mpm_obs_t *o = NULL;
    CU_ASSERT_FATAL(mpm__obs_new(&o, 1, 0, 10, 0.0) == 0);
    /* a receive from 0 to 2 while the thread computes 1..3: half hidden */
    double b0 = mpm__obs_busy(o, 0.0);
    mpm__obs_task_begin(o, 0, 1.0);
    mpm__obs_transfer(o, MPM_SP_RECV, 0.0, 2.0, b0, 7, 1000);
    /* a send from 2.5 to 3.5: the first half hidden */
    b0 = mpm__obs_busy(o, 2.5);
    mpm__obs_task_end(o, 0, 3.0);
    mpm__obs_transfer(o, MPM_SP_SEND, 2.5, 3.5, b0, 7, 10);
    /* a send while nothing computes: not hidden; no bytes: no message count */
    b0 = mpm__obs_busy(o, 4.0);
    mpm__obs_transfer(o, MPM_SP_SEND, 4.0, 5.0, b0, -1, 0);
    const mpm_tstat_t *m = &o->th[1];
    CU_ASSERT_DOUBLE_EQUAL(m->transfer_s, 4.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(m->hidden_s, 1.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(m->recv_s, 2.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(m->send_s, 2.0, 1e-12);
    CU_ASSERT_EQUAL(m->msgs_in, 1);
    CU_ASSERT_EQUAL(m->msgs_out, 1);
    CU_ASSERT_EQUAL(m->bytes_recv, 1000);
    CU_ASSERT_EQUAL(m->bytes_sent, 10);
    double v[MPM_OS_N];
    mpm__obs_sums(o, v);
    CU_ASSERT_DOUBLE_EQUAL(v[MPM_OS_TRANSFER], 4.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(v[MPM_OS_HIDDEN], 1.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(v[MPM_OS_MPI], 4.0, 1e-12);
    mpm__obs_free(o);
}

static void test_trace_bound_and_merge(void)
{
    mpm_obs_t *o = NULL;
    CU_ASSERT_FATAL(mpm__obs_new(&o, 1, 1, 3, 0.0) == 0);
    /* idle spans 10 us apart merge into one */
    mpm__obs_span(o, 0, MPM_SP_IDLE, 1.0, 2.0, -1, 0);
    mpm__obs_span(o, 0, MPM_SP_IDLE, 2.00001, 3.0, -1, 0);
    CU_ASSERT_EQUAL(o->th[0].nspans, 1);
    CU_ASSERT_DOUBLE_EQUAL(o->th[0].spans[0].b, 3.0, 1e-12);
    /* a second apart: two spans */
    mpm__obs_span(o, 0, MPM_SP_IDLE, 4.0, 5.0, -1, 0);
    CU_ASSERT_EQUAL(o->th[0].nspans, 2);
    /* the bound: 3 kept, the rest counted */
    for (int i = 0; i < 5; i++) mpm__obs_span(o, 0, MPM_SP_COMPUTE, 6.0 + i, 6.5 + i, i, 100);
    CU_ASSERT_EQUAL(o->th[0].nspans, 3);
    CU_ASSERT_EQUAL(o->th[0].dropped, 4);
    double v[MPM_OS_N];
    mpm__obs_sums(o, v);
    CU_ASSERT_DOUBLE_EQUAL(v[MPM_OS_DROPPED], 4, 1e-12);
    mpm__obs_free(o);
    /* without --trace nothing is kept */
    CU_ASSERT_FATAL(mpm__obs_new(&o, 1, 0, 3, 0.0) == 0);
    mpm__obs_span(o, 0, MPM_SP_COMPUTE, 1.0, 2.0, 0, 1);
    CU_ASSERT_EQUAL(o->th[0].nspans, 0);
    CU_ASSERT_EQUAL(o->th[0].dropped, 0);
    mpm__obs_free(o);
}

static void test_json(void)
{
    mpm_obs_t *o = NULL;
    CU_ASSERT_FATAL(mpm__obs_new(&o, 1, 1, 10, 100.0) == 0);
    mpm__obs_task_begin(o, 0, 101.0);
    o->th[0].chunks = 1;
    o->th[0].compute_s = 1.0;
    mpm__obs_span(o, 0, MPM_SP_COMPUTE, 101.0, 102.0, 0, 5);
    mpm__obs_task_end(o, 0, 102.0);
    const char *pus[] = {"0-1"};
    mpm_obs_rank_t r = {.rank = 2, .host = "node\"1", .pid = 42, .cpuset = "0-1", .pus = pus};
    mpm_buf_t b = {0};
    CU_ASSERT_FATAL(mpm__obs_rank_json(o, &r, &b) == 0);
    CU_ASSERT_FATAL(mpm_buf_append(&b, "", 1) == 0);
    CU_ASSERT(strstr(b.data, "\"rank\": 2, \"host\": \"node\\\"1\", \"pid\": 42") != NULL);
    CU_ASSERT(strstr(b.data, "\"chunks\": 1,") != NULL);
    b.len = 0;
    /* timestamps in microseconds after the origin */
    CU_ASSERT_FATAL(mpm__obs_trace_json(o, &r, 100.0, &b) == 0);
    CU_ASSERT_FATAL(mpm_buf_append(&b, "", 1) == 0);
    CU_ASSERT(strstr(b.data, "\"name\": \"compute\", \"cat\": \"compute\", \"ph\": \"X\", \"pid\": 2, "
                             "\"tid\": 1, \"ts\": 1000000.000, \"dur\": 1000000.000, \"args\": "
                             "{\"chunk\": 0, \"bytes\": 5}") != NULL);
    CU_ASSERT(strstr(b.data, "\"name\": \"rank 2 (node\\\"1, pid 42)\"") != NULL);
    CU_ASSERT(strstr(b.data, "\"name\": \"idle\"") != NULL); /* 100..101 before the chunk */
    mpm_buf_free(&b);
    mpm__obs_free(o);
}

/* Two threads hammer the busy clock (real time) while a third reads it: it
 * never goes backwards and never exceeds the wall time (and TSan, in CI,
 * sees no race). */
static mpm_obs_t *race_obs;
static void *race_thread(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < 20000; i++) {
        mpm__obs_task_begin(race_obs, t, mpm__now());
        mpm__obs_task_end(race_obs, t, mpm__now());
    }
    return NULL;
}

static void test_concurrent(void)
{
    double t0 = mpm__now();
    CU_ASSERT_FATAL(mpm__obs_new(&race_obs, 2, 0, 10, t0) == 0);
    pthread_t th[2];
    for (int t = 0; t < 2; t++) pthread_create(&th[t], NULL, race_thread, (void *)(intptr_t)t);
    double last = 0;
    int backwards = 0;
    for (int i = 0; i < 2000; i++) {
        double b = mpm__obs_busy(race_obs, mpm__now());
        backwards += b < last - 1e-9;
        last = b;
    }
    for (int t = 0; t < 2; t++) pthread_join(th[t], NULL);
    CU_ASSERT_EQUAL(backwards, 0);
    CU_ASSERT_EQUAL(race_obs->nbusy, 0);
    double busy = mpm__obs_busy(race_obs, mpm__now());
    CU_ASSERT(busy > 0 && busy <= mpm__now() - t0);
    mpm__obs_free(race_obs);
}

int main(void)
{
    static const tu_test_t tests[] = {{"busy clock and idle time", test_busy_clock},
                                      {"hidden share of transfers", test_hidden_transfers},
                                      {"trace bound and idle merging", test_trace_bound_and_merge},
                                      {"JSON fragments", test_json},
                                      {"concurrent busy clock", test_concurrent},
                                      {NULL, NULL}};
    return tu_main("obs", NULL, NULL, tests);
}
