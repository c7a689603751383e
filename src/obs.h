/*
 * obs.h - what a run measures about itself: counters of every pool thread and
 * of each rank's main thread (for --metrics and the -v summary), and spans for
 * the --trace timeline.
 *
 * DESIGN. One mpm_tstat_t per thread: slot t < nthreads belongs to pool thread
 * t and is written only by that thread while the run goes on; slot nthreads
 * belongs to the rank's main thread (the only one that calls MPI). Nothing is
 * shared but the "busy clock": the time during which at least one pool thread
 * of the rank is reading or computing a chunk, kept under a mutex (two lock
 * operations per chunk). The main thread reads it at both ends of every
 * transfer (a receive or a send of chunk or result bytes); what it advanced
 * during the transfer is the part of the transfer hidden behind computation.
 * The overlap ratio of a rank is hidden / transfer time.
 *
 * Spans (--trace) are kept per thread up to `trace_max`; later ones are only
 * counted (`dropped`), so a trace's size is bounded by ranks x threads x
 * trace_max whatever the length of the run. Consecutive idle spans closer
 * than 50 us are merged into one.
 *
 * Everything is read by the main thread after the pool is idle. Clocks are
 * mpm__now() (CLOCK_MONOTONIC): MPI_Wtime may not be called from the pool
 * threads (MPI_THREAD_FUNNELED); the engine measures each rank's clock offset
 * to rank 0 with MPI ping-pongs at the start (see engine.c).
 */
#ifndef MPM_OBS_H
#define MPM_OBS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "mpimap/kernel.h"

enum {
    MPM_SP_RECV = 0, /* main thread: a message with chunk or result bytes came in */
    MPM_SP_COMPUTE,  /* pool thread: the kernel's map() on a chunk */
    MPM_SP_READ,     /* reading input bytes (pool thread: pread; rank 0: the splitter) */
    MPM_SP_SEND,     /* main thread: sending chunks or results, completing sends */
    MPM_SP_WRITE,    /* rank 0: writing rows and journal records */
    MPM_SP_IDLE,     /* waiting for work (pool) or for anything to happen (main) */
    MPM_SP_KINDS
};

typedef struct mpm_span_s {
    double a, b;   /* local monotonic seconds */
    int64_t chunk; /* chunk index, or -1 */
    uint64_t bytes;
    int kind;
} mpm_span_t;

typedef struct mpm_tstat_s {
    /* pool threads */
    uint64_t chunks, failed, bytes_in, bytes_out;
    double compute_s, read_s, idle_s, last_end;
    /* main thread */
    double recv_s, send_s, poll_s, write_s, wait_s, split_s, transfer_s, hidden_s;
    uint64_t msgs_in, msgs_out, bytes_recv, bytes_sent;
    /* --trace */
    mpm_span_t *spans;
    size_t nspans, cap;
    uint64_t dropped;
    char pad[64]; /* threads' slots on different cache lines */
} mpm_tstat_t;

typedef struct mpm_obs_s {
    int nthreads;
    int trace;
    size_t trace_max;
    double t0; /* local time of the start of the run */
    mpm_tstat_t *th; /* nthreads + 1 slots: the main thread's is th[nthreads] */
    pthread_mutex_t mu;
    int nbusy;
    double busy_since, busy_acc, busy_last;
} mpm_obs_t;

/* Per-rank facts for the metrics document. */
typedef struct mpm_obs_rank_s {
    int rank;
    const char *host;
    long pid;
    const char *cpuset;          /* given by the launcher */
    const char *const *pus;      /* per thread: the PUs it is pinned to (or may run on) */
    int bound;
    double elapsed;
    double clock_offset;         /* this rank's clock minus rank 0's, seconds */
} mpm_obs_rank_t;

/* Numbers each rank sends to rank 0 for the totals and the -v summary. */
enum {
    MPM_OS_CHUNKS, MPM_OS_FAILED, MPM_OS_BYTES_IN, MPM_OS_BYTES_OUT, MPM_OS_COMPUTE,
    MPM_OS_READ, MPM_OS_IDLE, MPM_OS_THREAD_TIME, MPM_OS_MPI, MPM_OS_WRITE, MPM_OS_TRANSFER,
    MPM_OS_HIDDEN, MPM_OS_DROPPED, MPM_OS_N
};

int mpm__obs_new(mpm_obs_t **o, int nthreads, int trace, long long trace_max, double t0);
void mpm__obs_free(mpm_obs_t *o);

/* Records a span on thread slot t (no-op without --trace). */
void mpm__obs_span(mpm_obs_t *o, int t, int kind, double a, double b, int64_t chunk,
                   uint64_t bytes);

/* Pool thread t starts (at `now`) or ends a chunk's work. */
void mpm__obs_task_begin(mpm_obs_t *o, int t, double now);
void mpm__obs_task_end(mpm_obs_t *o, int t, double now);

/* The busy clock: seconds, up to `now`, during which a pool thread worked. */
double mpm__obs_busy(mpm_obs_t *o, double now);

/* Main thread: a transfer from a to b (busy clock busy_a at a). kind is
 * MPM_SP_RECV or MPM_SP_SEND; it counts as MPI time and transfer time. */
void mpm__obs_transfer(mpm_obs_t *o, int kind, double a, double b, double busy_a,
                       int64_t chunk, uint64_t bytes);

/* After the run: pool threads' idle time up to `end`. */
void mpm__obs_close(mpm_obs_t *o, double end);

void mpm__obs_sums(const mpm_obs_t *o, double v[MPM_OS_N]);

/* This rank's object of the metrics document's "ranks" array. */
int mpm__obs_rank_json(const mpm_obs_t *o, const mpm_obs_rank_t *r, mpm_buf_t *b);

/* This rank's trace events (comma-separated, no brackets), with timestamps
 * in microseconds since `origin` (rank 0's start in this rank's clock). */
int mpm__obs_trace_json(const mpm_obs_t *o, const mpm_obs_rank_t *r, double origin,
                        mpm_buf_t *b);

#endif
