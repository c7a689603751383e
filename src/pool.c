/*
 * pool.c - a fixed-size pthread pool with a completion queue (see pool.h for
 * the design). Locking: `mu` protects todo, done, counters and `stopping`;
 * it is never held while a task runs or while calling the init hook.
 */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct mpm_pool_s {
    pthread_mutex_t mu;
    pthread_cond_t work_cond; /* pool threads wait here for todo or stopping */
    pthread_cond_t done_cond; /* the main thread waits here for done */
    mpm_task_t *todo_head, *todo_tail;
    mpm_task_t *done_head, *done_tail;
    int pending; /* submitted and not taken back */
    atomic_int queued; /* tasks in todo, readable without the lock (spinning) */
    int stopping;
    int nthreads;
    pthread_t *threads;
    mpm_thread_init_fn init;
    void *init_arg;
    struct thread_arg {
        mpm_pool_t *pool;
        int index;
    } * args;
};

static void push_done(mpm_pool_t *p, mpm_task_t *t)
{
    t->next = NULL;
    if (p->done_tail)
        p->done_tail->next = t;
    else
        p->done_head = t;
    p->done_tail = t;
}

/* Before sleeping, an idle thread polls the queue for about SPIN_NS: waking
 * a sleeping thread costs tens of microseconds in a VM, more than a small
 * chunk takes to compute. It yields the core while polling, so a main thread
 * sharing the core (a rank bound to one core) keeps running. */
#define SPIN_NS 50000

static int spin_for_work(mpm_pool_t *p)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0;; i++) {
        if (atomic_load_explicit(&p->queued, memory_order_relaxed) > 0) return 1;
        sched_yield();
        if ((i & 7) == 7) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            if ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) > SPIN_NS) return 0;
        }
    }
}

static void *worker(void *argp)
{
    struct thread_arg *a = argp;
    mpm_pool_t *p = a->pool;
    if (p->init) p->init(a->index, p->init_arg);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (!p->todo_head && !p->stopping) {
            pthread_mutex_unlock(&p->mu);
            spin_for_work(p);
            pthread_mutex_lock(&p->mu);
        }
        while (!p->todo_head && !p->stopping) pthread_cond_wait(&p->work_cond, &p->mu);
        mpm_task_t *t = p->todo_head;
        if (!t) break; /* stopping and nothing left: the sentinel state */
        p->todo_head = t->next;
        if (!p->todo_head) p->todo_tail = NULL;
        atomic_fetch_sub_explicit(&p->queued, 1, memory_order_relaxed);
        pthread_mutex_unlock(&p->mu);
        t->work(t, a->index);
        pthread_mutex_lock(&p->mu);
        push_done(p, t);
        pthread_cond_signal(&p->done_cond);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int mpm__pool_start(mpm_pool_t **pool, int n, mpm_thread_init_fn init, void *init_arg)
{
    if (n < 1) return -EINVAL;
    mpm_pool_t *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    p->threads = calloc((size_t)n, sizeof *p->threads);
    p->args = calloc((size_t)n, sizeof *p->args);
    if (!p->threads || !p->args) {
        free(p->threads);
        free(p->args);
        free(p);
        return -ENOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cond, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->done_cond, &ca);
    pthread_condattr_destroy(&ca);
    p->init = init;
    p->init_arg = init_arg;
    for (int i = 0; i < n; i++) {
        p->args[i].pool = p;
        p->args[i].index = i;
        int rc = pthread_create(&p->threads[i], NULL, worker, &p->args[i]);
        if (rc) {
            p->nthreads = i;
            mpm__pool_stop(p);
            return -rc;
        }
        p->nthreads = i + 1;
    }
    *pool = p;
    return 0;
}

void mpm__pool_submit(mpm_pool_t *p, mpm_task_t *t)
{
    t->next = NULL;
    t->cancelled = 0;
    pthread_mutex_lock(&p->mu);
    if (p->todo_tail)
        p->todo_tail->next = t;
    else
        p->todo_head = t;
    p->todo_tail = t;
    p->pending++;
    atomic_fetch_add_explicit(&p->queued, 1, memory_order_relaxed);
    pthread_cond_signal(&p->work_cond);
    pthread_mutex_unlock(&p->mu);
}

mpm_task_t *mpm__pool_take_done(mpm_pool_t *p, double wait_s)
{
    pthread_mutex_lock(&p->mu);
    if (!p->done_head && wait_s > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long long ns = ts.tv_nsec + (long long)(wait_s * 1e9);
        ts.tv_sec += (time_t)(ns / 1000000000LL);
        ts.tv_nsec = (long)(ns % 1000000000LL);
        while (!p->done_head) {
            if (pthread_cond_timedwait(&p->done_cond, &p->mu, &ts) == ETIMEDOUT) break;
        }
    }
    mpm_task_t *list = p->done_head;
    for (mpm_task_t *t = list; t; t = t->next) p->pending--;
    p->done_head = p->done_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    return list;
}

void mpm__pool_cancel(mpm_pool_t *p)
{
    pthread_mutex_lock(&p->mu);
    mpm_task_t *t = p->todo_head;
    p->todo_head = p->todo_tail = NULL;
    atomic_store_explicit(&p->queued, 0, memory_order_relaxed);
    while (t) {
        mpm_task_t *next = t->next;
        t->cancelled = 1;
        push_done(p, t);
        t = next;
    }
    pthread_cond_signal(&p->done_cond);
    pthread_mutex_unlock(&p->mu);
}

int mpm__pool_pending(mpm_pool_t *p)
{
    pthread_mutex_lock(&p->mu);
    int n = p->pending;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void mpm__pool_stop(mpm_pool_t *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work_cond);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work_cond);
    pthread_cond_destroy(&p->done_cond);
    free(p->threads);
    free(p->args);
    free(p);
}
