/*
 * mpimap/mpimap.h - umbrella header of libmpimap: the engine API.
 *
 * The whole tool is a library call: `mpm_main(argc, argv, comm)` parses a
 * command line and runs it on a communicator; the `mpimap` executable is
 * MPI_Init_thread + mpm_main + MPI_Finalize. Tests call mpm_main or mpm_run.
 *
 * Every rank of `comm` must call the same function with the same arguments.
 * MPI must have been initialised with at least MPI_THREAD_FUNNELED; only the
 * calling thread makes MPI calls.
 */
#ifndef MPIMAP_MPIMAP_H
#define MPIMAP_MPIMAP_H

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>

#include "mpimap/kernel.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MPM_VERSION "0.1.0"

/* Exit codes of the tool (and return values of mpm_main). */
enum {
    MPM_EXIT_OK = 0,    /* success */
    MPM_EXIT_FAIL = 1,  /* failure in the data or the run */
    MPM_EXIT_USAGE = 2,  /* usage error: nothing was run */
    MPM_EXIT_INTERRUPTED = 3 /* stopped by SIGTERM/SIGINT/SIGUSR1 after draining:
                                resumable with --journal ... --resume */
};

/* Error codes, libuv style: functions return 0 or one of these (negative). */
#define MPM_ERRNO_MAP(X)                                                                        \
    X(USAGE, -2, "invalid usage")                                                                \
    X(IO, -3, "input/output error")                                                              \
    X(NOMEM, -4, "out of memory")                                                                \
    X(DATA, -5, "invalid input data")                                                            \
    X(MPI, -6, "MPI error")                                                                      \
    X(TOPO, -7, "topology or binding error")

typedef enum {
#define MPM_ERR_ENUM(name, val, text) MPM_E##name = (val),
    MPM_ERRNO_MAP(MPM_ERR_ENUM)
#undef MPM_ERR_ENUM
} mpm_errno_t;

const char *mpm_strerror(int code);

typedef enum { MPM_IO_AUTO = 0, MPM_IO_MASTER = 1, MPM_IO_SHARED = 2 } mpm_io_t;
typedef enum { MPM_BIND_CORE = 0, MPM_BIND_NONE = 1 } mpm_bind_t;

/* Engine options: one field per engine command-line option. */
typedef struct mpm_config_s {
    long long threads;   /* compute threads per rank; 0 = one per core given */
    uint64_t chunk_size; /* 0 = the kernel's default */
    long long window;    /* chunks in flight per worker; 0 = 2 per thread */
    int io;              /* mpm_io_t */
    const char *output;  /* NULL or "-" = standard output */
    int format;          /* mpm_format_t */
    int bind;            /* mpm_bind_t */
    int report_bindings;
    int verbose;
    int quiet;
    int allow_empty; /* accept empty input files */
    const char *journal; /* --journal PATH: record finished chunks (NULL: none) */
    int resume;          /* --resume: reuse the journal's finished chunks */
    double grace;        /* --grace SECONDS: drain time after a signal (default 20) */
    long long retries;   /* --retries N: extra attempts for a failed chunk (default 0) */
    int fail_fast;       /* --fail-fast: stop the run at the first failed chunk */
    int progress;              /* --progress auto|on|off (0, 1, 2) */
    double progress_interval;  /* --progress-interval SECONDS without a terminal (default 10) */
    int dedicated_master; /* --dedicated-master: rank 0 computes nothing when there are workers */
    int no_sync;          /* --no-sync: outputs are renamed into place without fsync first */
    const char *metrics;  /* --metrics FILE.json: counters of every rank and thread (NULL: none) */
    const char *trace;    /* --trace FILE.json: Chrome trace-event timeline (NULL: none) */
    long long trace_max;  /* --trace-max N: spans kept per thread (default 20000) */
    int resume_failed;    /* --resume-failed: --resume, and recompute the journaled chunks whose
                             results the kernel reports as failed (mpm_kernel_t.failed) */
    const char *kernel;   /* --kernel PATH.so: the kernel is loaded from a plugin (NULL: none) */
} mpm_config_t;

void mpm_config_init(mpm_config_t *cfg);

/* Registry of built-in kernels. */
const mpm_kernel_t *mpm_kernel_find(const char *name);
const mpm_kernel_t *const *mpm_kernels(void); /* NULL-terminated */

/* Parses argv and runs it on comm. Returns an MPM_EXIT_* code, the same on
 * every rank. Usage errors are printed once, by rank 0. */
int mpm_main(int argc, char **argv, MPI_Comm comm);

/*
 * Runs kernel k with options `opts` (already checked) over `inputs` on comm.
 * Output goes to cfg->output (or stdout). Returns an MPM_EXIT_* code, the
 * same on every rank; rank 0 has printed any error to stderr.
 */
int mpm_run(const mpm_config_t *cfg, const mpm_kernel_t *k, const void *opts,
            const mpm_inputs_t *inputs, MPI_Comm comm);

#ifdef __cplusplus
}
#endif
#endif
