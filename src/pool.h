/*
 * pool.h - the compute thread pool of one rank.
 *
 * DESIGN. One mutex protects both queues: `todo` (tasks submitted by the
 * rank's main thread, FIFO) and `done` (finished tasks, FIFO). N pool threads
 * pop from todo, run task->work(task, thread_index) without the lock, push to
 * done and signal `done_cond`, on which the main thread sleeps when it has
 * nothing else to do. Pool threads never call MPI; the main thread is the only
 * one that does (MPI_THREAD_FUNNELED).
 *
 * Each thread first runs the `thread_init` hook (pinning) with its index, so
 * placement happens on the thread itself before it takes any work.
 * Shutdown: mpm__pool_stop() sets `stopping`, wakes every thread, and joins
 * them; threads finish the task they hold, and the tasks still queued in todo
 * are run too (stop never loses a submitted task). mpm__pool_cancel() drops the
 * queued tasks instead and hands them back as done with `cancelled` set.
 */
#ifndef MPM_POOL_H
#define MPM_POOL_H

typedef struct mpm_task_s mpm_task_t;
struct mpm_task_s {
    mpm_task_t *next; /* queue link, owned by the pool while queued */
    void (*work)(mpm_task_t *t, int thread_index);
    int cancelled; /* set when the task was dropped by mpm__pool_cancel */
};

typedef struct mpm_pool_s mpm_pool_t;

typedef void (*mpm_thread_init_fn)(int thread_index, void *arg);

/* Starts n >= 1 threads. Returns 0, or a negative errno-style code. */
int mpm__pool_start(mpm_pool_t **pool, int n, mpm_thread_init_fn init, void *init_arg);

/* Queues t; t must stay valid until it comes back from mpm__pool_take_done. */
void mpm__pool_submit(mpm_pool_t *p, mpm_task_t *t);

/* Returns the list of finished tasks (linked by ->next, in completion order),
 * waiting up to `wait_s` seconds (0: do not wait) for one to finish.
 * NULL when none finished in time. */
mpm_task_t *mpm__pool_take_done(mpm_pool_t *p, double wait_s);

/* Moves every not-yet-started task to the done list with cancelled = 1. */
void mpm__pool_cancel(mpm_pool_t *p);

/* Number of tasks submitted and not yet taken back with take_done. */
int mpm__pool_pending(mpm_pool_t *p);

/* Runs the remaining queued tasks, joins the threads and frees the pool.
 * Finished tasks not yet taken are simply forgotten (the caller owns them). */
void mpm__pool_stop(mpm_pool_t *p);

#endif
