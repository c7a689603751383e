/*
 * test_pool.c - unit tests of the compute thread pool (pool.h).
 *
 * Every counter touched by pool threads is atomic, so this file is also
 * meant to run clean under ThreadSanitizer (-DMPIMAP_TSAN=ON).
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool.h"

#include "testutil.h"

/* ---- helpers ---------------------------------------------------------------- */

typedef struct ttask_s {
    mpm_task_t task; /* first member: the pool hands back &t->task */
    int id;
    atomic_int runs;       /* times work() ran this task */
    atomic_int thread;     /* thread index given to work() */
    atomic_int tls_ok;     /* the thread had run the init hook with that index */
    atomic_int *gate;      /* if set: spin until *gate != 0 */
    atomic_int *started;   /* if set: incremented when work() begins */
    atomic_int *completed; /* if set: incremented when work() ends */
    int sleep_us;
} ttask_t;

static _Thread_local int tls_init_index = -1;
static atomic_int init_calls[64];
static atomic_int init_arg_ok;
static int init_marker;

static void reset_init_counters(void)
{
    for (int i = 0; i < 64; i++)
        atomic_store(&init_calls[i], 0);
    atomic_store(&init_arg_ok, 1);
}

static void thread_init_hook(int index, void *arg)
{
    if (arg != &init_marker) atomic_store(&init_arg_ok, 0);
    if (index >= 0 && index < 64) atomic_fetch_add(&init_calls[index], 1);
    tls_init_index = index;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void work_fn(mpm_task_t *t, int thread_index)
{
    ttask_t *x = (ttask_t *)t;
    if (x->started) atomic_fetch_add(x->started, 1);
    atomic_store(&x->thread, thread_index);
    atomic_store(&x->tls_ok, tls_init_index == thread_index);
    if (x->gate)
        while (!atomic_load(x->gate))
            sleep_us(200);
    if (x->sleep_us) sleep_us(x->sleep_us);
    atomic_fetch_add(&x->runs, 1);
    if (x->completed) atomic_fetch_add(x->completed, 1);
}

static ttask_t *tasks_new(int n)
{
    ttask_t *v = calloc((size_t)n, sizeof *v);
    for (int i = 0; v && i < n; i++) {
        v[i].id = i;
        v[i].task.work = work_fn;
        atomic_init(&v[i].runs, 0);
        atomic_init(&v[i].thread, -1);
        atomic_init(&v[i].tls_ok, 0);
    }
    return v;
}

/* Takes done tasks until `want` came back or `timeout` seconds passed;
 * counts each one in returned[] (by id). Returns the number taken. */
static int collect(mpm_pool_t *p, ttask_t *base, int n, int *returned, int want, double timeout,
                   int *cancelled_seen)
{
    int got = 0;
    double t0 = now_s();
    while (got < want && now_s() - t0 < timeout) {
        mpm_task_t *t = mpm__pool_take_done(p, 0.05);
        while (t) {
            mpm_task_t *next = t->next;
            ttask_t *x = (ttask_t *)t;
            long idx = x - base;
            if (idx >= 0 && idx < n) returned[idx]++;
            if (cancelled_seen && t->cancelled) (*cancelled_seen)++;
            got++;
            t = next;
        }
    }
    return got;
}

/* ---- tests ------------------------------------------------------------------- */

static void test_start_invalid(void)
{
    mpm_pool_t *p = NULL;
    CU_ASSERT(mpm__pool_start(&p, 0, NULL, NULL) < 0);
    CU_ASSERT(mpm__pool_start(&p, -3, NULL, NULL) < 0);
    mpm__pool_stop(NULL); /* must be a no-op */
}

/* Many tiny tasks over 1..8 threads: each runs exactly once and comes back once. */
static void test_many_tasks(void)
{
    const int n = 100000;
    for (int nt = 1; nt <= 8; nt++) {
        ttask_t *v = tasks_new(n);
        int *returned = calloc((size_t)n, sizeof *returned);
        CU_ASSERT_PTR_NOT_NULL_FATAL(v);
        CU_ASSERT_PTR_NOT_NULL_FATAL(returned);
        reset_init_counters();
        mpm_pool_t *p = NULL;
        CU_ASSERT_EQUAL_FATAL(mpm__pool_start(&p, nt, thread_init_hook, &init_marker), 0);
        /* Submit in batches while taking results back, as the engine does. */
        int got = 0, cancelled = 0;
        for (int i = 0; i < n; i++) {
            mpm__pool_submit(p, &v[i].task);
            if (i % 997 == 0) {
                mpm_task_t *t = mpm__pool_take_done(p, 0);
                while (t) {
                    mpm_task_t *next = t->next;
                    returned[(ttask_t *)t - v]++;
                    if (t->cancelled) cancelled++;
                    got++;
                    t = next;
                }
            }
        }
        got += collect(p, v, n, returned, n - got, 60.0, &cancelled);
        CU_ASSERT_EQUAL(got, n);
        CU_ASSERT_EQUAL(cancelled, 0);
        CU_ASSERT_EQUAL(mpm__pool_pending(p), 0);
        CU_ASSERT_PTR_NULL(mpm__pool_take_done(p, 0));
        int bad_runs = 0, bad_ret = 0, bad_thread = 0, bad_tls = 0;
        for (int i = 0; i < n; i++) {
            if (atomic_load(&v[i].runs) != 1) bad_runs++;
            if (returned[i] != 1) bad_ret++;
            int th = atomic_load(&v[i].thread);
            if (th < 0 || th >= nt) bad_thread++;
            if (!atomic_load(&v[i].tls_ok)) bad_tls++;
        }
        CU_ASSERT_EQUAL(bad_runs, 0);
        CU_ASSERT_EQUAL(bad_ret, 0);
        CU_ASSERT_EQUAL(bad_thread, 0);
        CU_ASSERT_EQUAL(bad_tls, 0);
        mpm__pool_stop(p);
        /* After the join: the init hook ran exactly once per thread index. */
        for (int i = 0; i < 64; i++)
            CU_ASSERT_EQUAL(atomic_load(&init_calls[i]), i < nt ? 1 : 0);
        CU_ASSERT(atomic_load(&init_arg_ok));
        if (bad_runs || bad_ret || bad_thread || bad_tls)
            fprintf(stderr, "threads %d: bad runs %d, bad returns %d, bad thread %d, bad tls %d\n",
                    nt, bad_runs, bad_ret, bad_thread, bad_tls);
        free(returned);
        free(v);
    }
}

/* Every thread gets work: with long enough tasks all n threads take some. */
static void test_all_threads_used(void)
{
    const int nt = 4, n = 64;
    ttask_t *v = tasks_new(n);
    int returned[64] = {0};
    mpm_pool_t *p = NULL;
    CU_ASSERT_EQUAL_FATAL(mpm__pool_start(&p, nt, NULL, NULL), 0);
    for (int i = 0; i < n; i++) {
        v[i].sleep_us = 2000;
        mpm__pool_submit(p, &v[i].task);
    }
    CU_ASSERT_EQUAL(collect(p, v, n, returned, n, 30.0, NULL), n);
    int used[4] = {0};
    for (int i = 0; i < n; i++) {
        int th = atomic_load(&v[i].thread);
        if (th >= 0 && th < nt) used[th]++;
        CU_ASSERT_EQUAL(returned[i], 1);
    }
    for (int t = 0; t < nt; t++)
        CU_ASSERT(used[t] > 0);
    mpm__pool_stop(p);
    free(v);
}

/* One thread: tasks run and come back in submission (FIFO) order. */
static void test_fifo_single_thread(void)
{
    const int n = 2000;
    ttask_t *v = tasks_new(n);
    mpm_pool_t *p = NULL;
    CU_ASSERT_EQUAL_FATAL(mpm__pool_start(&p, 1, NULL, NULL), 0);
    for (int i = 0; i < n; i++)
        mpm__pool_submit(p, &v[i].task);
    int expect = 0, in_order = 1;
    double t0 = now_s();
    while (expect < n && now_s() - t0 < 30) {
        for (mpm_task_t *t = mpm__pool_take_done(p, 0.05); t; t = t->next) {
            if (((ttask_t *)t)->id != expect) in_order = 0;
            expect++;
        }
    }
    CU_ASSERT_EQUAL(expect, n);
    CU_ASSERT(in_order);
    mpm__pool_stop(p);
    free(v);
}

/* take_done with a timeout returns NULL when nothing finishes, after about that long. */
static void test_take_done_timeout(void)
{
    mpm_pool_t *p = NULL;
    CU_ASSERT_EQUAL_FATAL(mpm__pool_start(&p, 2, NULL, NULL), 0);
    double t0 = now_s();
    CU_ASSERT_PTR_NULL(mpm__pool_take_done(p, 0));
    CU_ASSERT(now_s() - t0 < 0.5);
    t0 = now_s();
    CU_ASSERT_PTR_NULL(mpm__pool_take_done(p, 0.1));
    double el = now_s() - t0;
    CU_ASSERT(el >= 0.08);
    CU_ASSERT(el < 5.0);
    CU_ASSERT_EQUAL(mpm__pool_pending(p), 0);

    /* With a task that is blocked: still NULL, and pending counts it. */
    atomic_int gate = 0, started = 0;
    ttask_t *v = tasks_new(1);
    v[0].gate = &gate;
    v[0].started = &started;
    mpm__pool_submit(p, &v[0].task);
    CU_ASSERT_EQUAL(mpm__pool_pending(p), 1);
    t0 = now_s();
    CU_ASSERT_PTR_NULL(mpm__pool_take_done(p, 0.05));
    CU_ASSERT(now_s() - t0 >= 0.04);
    CU_ASSERT_EQUAL(mpm__pool_pending(p), 1);
    atomic_store(&gate, 1);
    /* A long timeout returns as soon as the task finishes. */
    t0 = now_s();
    mpm_task_t *t = mpm__pool_take_done(p, 20.0);
    CU_ASSERT(now_s() - t0 < 10.0);
    CU_ASSERT_PTR_EQUAL(t, &v[0].task);
    if (t) CU_ASSERT_PTR_NULL(t->next);
    CU_ASSERT_EQUAL(atomic_load(&v[0].runs), 1);
    CU_ASSERT_EQUAL(mpm__pool_pending(p), 0);
    mpm__pool_stop(p);
    free(v);
}

/* pending counts submitted tasks until they are taken back, done or not. */
static void test_pending_counts(void)
{
    const int n = 10;
    atomic_int gate = 0, completed = 0;
    ttask_t *v = tasks_new(n);
    mpm_pool_t *p = NULL;
    CU_ASSERT_EQUAL_FATAL(mpm__pool_start(&p, 3, NULL, NULL), 0);
    CU_ASSERT_EQUAL(mpm__pool_pending(p), 0);
    for (int i = 0; i < n; i++) {
        v[i].gate = &gate;
        v[i].completed = &completed;
        mpm__pool_submit(p, &v[i].task);
        CU_ASSERT_EQUAL(mpm__pool_pending(p), i + 1);
    }
    atomic_store(&gate, 1);
    double t0 = now_s();
    while (atomic_load(&completed) < n && now_s() - t0 < 20)
        sleep_us(1000);
    CU_ASSERT_EQUAL(atomic_load(&completed), n);
    /* Finished but not taken: still pending. */
    CU_ASSERT_EQUAL(mpm__pool_pending(p), n);
    int returned[10] = {0};
    CU_ASSERT_EQUAL(collect(p, v, n, returned, n, 10.0, NULL), n);
    CU_ASSERT_EQUAL(mpm__pool_pending(p), 0);
    for (int i = 0; i < n; i++)
        CU_ASSERT_EQUAL(returned[i], 1);
    mpm__pool_stop(p);
    free(v);
}

/* cancel hands queued tasks back with cancelled = 1, without running them;
 * the running one finishes normally. */
static void test_cancel(void)
{
    const int n = 11;
    atomic_int gate = 0, started = 0;
    ttask_t *v = tasks_new(n);
    mpm_pool_t *p = NULL;
    CU_ASSERT_EQUAL_FATAL(mpm__pool_start(&p, 1, NULL, NULL), 0);
    v[0].gate = &gate;
    v[0].started = &started;
    mpm__pool_submit(p, &v[0].task);
    double t0 = now_s();
    while (!atomic_load(&started) && now_s() - t0 < 20)
        sleep_us(500);
    CU_ASSERT_EQUAL_FATAL(atomic_load(&started), 1);
    for (int i = 1; i < n; i++)
        mpm__pool_submit(p, &v[i].task);
    CU_ASSERT_EQUAL(mpm__pool_pending(p), n);

    mpm__pool_cancel(p);
    int returned[11] = {0}, cancelled = 0, got = 0;
    for (mpm_task_t *t = mpm__pool_take_done(p, 1.0); t; t = t->next) {
        ttask_t *x = (ttask_t *)t;
        returned[x->id]++;
        if (t->cancelled) cancelled++;
        got++;
    }
    CU_ASSERT_EQUAL(got, n - 1);
    CU_ASSERT_EQUAL(cancelled, n - 1);
    CU_ASSERT_EQUAL(returned[0], 0);
    for (int i = 1; i < n; i++) {
        CU_ASSERT_EQUAL(returned[i], 1);
        CU_ASSERT_EQUAL(atomic_load(&v[i].runs), 0);
    }
    CU_ASSERT_EQUAL(mpm__pool_pending(p), 1);

    atomic_store(&gate, 1);
    mpm_task_t *t = mpm__pool_take_done(p, 20.0);
    CU_ASSERT_PTR_EQUAL(t, &v[0].task);
    if (t) {
        CU_ASSERT_EQUAL(t->cancelled, 0);
        CU_ASSERT_PTR_NULL(t->next);
    }
    CU_ASSERT_EQUAL(atomic_load(&v[0].runs), 1);
    CU_ASSERT_EQUAL(mpm__pool_pending(p), 0);

    /* A cancelled task can be submitted again: it runs, cancelled reset to 0. */
    mpm__pool_submit(p, &v[5].task);
    t = mpm__pool_take_done(p, 20.0);
    CU_ASSERT_PTR_EQUAL(t, &v[5].task);
    if (t) CU_ASSERT_EQUAL(t->cancelled, 0);
    CU_ASSERT_EQUAL(atomic_load(&v[5].runs), 1);

    /* cancel with nothing queued is harmless. */
    mpm__pool_cancel(p);
    CU_ASSERT_PTR_NULL(mpm__pool_take_done(p, 0));
    CU_ASSERT_EQUAL(mpm__pool_pending(p), 0);
    mpm__pool_stop(p);
    free(v);
}

/* Cancel racing with running threads: every task comes back exactly once,
 * either run (cancelled 0) or not run (cancelled 1). */
static void test_cancel_race(void)
{
    const int n = 20000;
    for (int nt = 1; nt <= 4; nt++) {
        ttask_t *v = tasks_new(n);
        int *returned = calloc((size_t)n, sizeof *returned);
        mpm_pool_t *p = NULL;
        CU_ASSERT_EQUAL_FATAL(mpm__pool_start(&p, nt, NULL, NULL), 0);
        for (int i = 0; i < n; i++)
            mpm__pool_submit(p, &v[i].task);
        mpm__pool_cancel(p);
        int got = 0, bad = 0;
        double t0 = now_s();
        while (got < n && now_s() - t0 < 30) {
            for (mpm_task_t *t = mpm__pool_take_done(p, 0.05); t; t = t->next) {
                ttask_t *x = (ttask_t *)t;
                returned[x->id]++;
                got++;
                int runs = atomic_load(&x->runs);
                if (t->cancelled ? runs != 0 : runs != 1) bad++;
            }
        }
        CU_ASSERT_EQUAL(got, n);
        CU_ASSERT_EQUAL(bad, 0);
        int dup = 0;
        for (int i = 0; i < n; i++)
            dup += returned[i] != 1;
        CU_ASSERT_EQUAL(dup, 0);
        CU_ASSERT_EQUAL(mpm__pool_pending(p), 0);
        mpm__pool_stop(p);
        free(returned);
        free(v);
    }
}

/* stop runs the tasks still queued, then joins. */
struct releaser {
    atomic_int *gate;
    int delay_us;
};

static void *release_later(void *a)
{
    struct releaser *r = a;
    sleep_us(r->delay_us);
    atomic_store(r->gate, 1);
    return NULL;
}

static void test_stop_runs_queued(void)
{
    for (int nt = 1; nt <= 3; nt++) {
        const int n = 200;
        atomic_int gate = 0, started = 0, completed = 0;
        ttask_t *v = tasks_new(n);
        reset_init_counters();
        mpm_pool_t *p = NULL;
        CU_ASSERT_EQUAL_FATAL(mpm__pool_start(&p, nt, thread_init_hook, &init_marker), 0);
        /* Block every thread on a gated task, queue the rest behind them. */
        for (int i = 0; i < n; i++) {
            if (i < nt) {
                v[i].gate = &gate;
                v[i].started = &started;
            }
            v[i].completed = &completed;
            mpm__pool_submit(p, &v[i].task);
        }
        double t0 = now_s();
        while (atomic_load(&started) < nt && now_s() - t0 < 20)
            sleep_us(500);
        CU_ASSERT_EQUAL(atomic_load(&started), nt);
        CU_ASSERT(atomic_load(&completed) == 0);
        /* The gate opens only after stop has begun (stop blocks in the join). */
        struct releaser r = {&gate, 100000};
        pthread_t th;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, release_later, &r), 0);
        mpm__pool_stop(p);
        pthread_join(th, NULL);
        CU_ASSERT_EQUAL(atomic_load(&completed), n);
        int bad = 0;
        for (int i = 0; i < n; i++)
            bad += atomic_load(&v[i].runs) != 1;
        CU_ASSERT_EQUAL(bad, 0);
        for (int i = 0; i < 64; i++)
            CU_ASSERT_EQUAL(atomic_load(&init_calls[i]), i < nt ? 1 : 0);
        free(v);
    }
}

/* Start and stop without any task, many times (threads that never ran work). */
static void test_start_stop_idle(void)
{
    for (int k = 0; k < 50; k++) {
        int nt = 1 + k % 8;
        reset_init_counters();
        mpm_pool_t *p = NULL;
        CU_ASSERT_EQUAL_FATAL(mpm__pool_start(&p, nt, thread_init_hook, &init_marker), 0);
        CU_ASSERT_EQUAL(mpm__pool_pending(p), 0);
        mpm__pool_stop(p);
        int bad = 0;
        for (int i = 0; i < 64; i++)
            bad += atomic_load(&init_calls[i]) != (i < nt ? 1 : 0);
        CU_ASSERT_EQUAL(bad, 0);
    }
}

/* Stop right after submitting: nothing lost even if threads are just starting. */
static void test_stop_immediately(void)
{
    for (int k = 0; k < 20; k++) {
        const int n = 500;
        atomic_int completed = 0;
        ttask_t *v = tasks_new(n);
        mpm_pool_t *p = NULL;
        CU_ASSERT_EQUAL_FATAL(mpm__pool_start(&p, 1 + k % 4, NULL, NULL), 0);
        for (int i = 0; i < n; i++) {
            v[i].completed = &completed;
            mpm__pool_submit(p, &v[i].task);
        }
        mpm__pool_stop(p);
        CU_ASSERT_EQUAL(atomic_load(&completed), n);
        free(v);
    }
}

int main(void)
{
    static const tu_test_t tests[] = {
        {"start with n < 1 fails", test_start_invalid},
        {"100000 tasks over 1..8 threads, each once", test_many_tasks},
        {"every thread takes work", test_all_threads_used},
        {"single thread is FIFO", test_fifo_single_thread},
        {"take_done timeout", test_take_done_timeout},
        {"pending counts", test_pending_counts},
        {"cancel returns queued tasks", test_cancel},
        {"cancel racing with threads", test_cancel_race},
        {"stop runs queued tasks", test_stop_runs_queued},
        {"start/stop idle pools", test_start_stop_idle},
        {"stop right after submit", test_stop_immediately},
        {NULL, NULL}};
    return tu_main("pool", NULL, NULL, tests);
}
