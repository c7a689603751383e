/*
 * signals.h - what mpimap does when it is signalled.
 *
 * DESIGN. While a run is active (mpm__sig_run_begin .. _end):
 *   SIGTERM, SIGINT, SIGUSR1  first one: record it (mpm__sig_pending) and
 *                             remove the temporary output file at once; the
 *                             engine then drains: no new chunks, running
 *                             chunks finish within --grace, the journal is
 *                             synced, exit code 3. A second SIGTERM or SIGINT
 *                             kills the process at once (further SIGUSR1s are
 *                             ignored: Slurm may repeat it).
 *   SIGHUP, SIGQUIT, SIGUSR2  remove the temporary output file and die of the
 *   and SIGBUS                signal (SIGBUS: an input truncated while rank
 *                             0 has it mapped).
 * Outside a run only the temporary-file cleanup is installed (while an
 * output is open). The handler calls only async-signal-safe functions.
 * Pool threads block these signals (mpm__sig_block_thread) so that the
 * compute threads are never interrupted; the rank's main thread, or a thread
 * of the MPI library, runs the handler.
 */
#ifndef MPM_SIGNALS_H
#define MPM_SIGNALS_H

/* Installs the handlers and enables draining. */
void mpm__sig_run_begin(void);
/* Restores the previous handlers (unless an output is still guarded). */
void mpm__sig_run_end(void);

/* The first drain signal received during the run, or 0. */
int mpm__sig_pending(void);

/* Registers the temporary output file to remove on a signal (NULL: none).
 * Installs the cleanup handlers if no run is active. */
void mpm__sig_guard_tmp(const char *path);

/* Blocks the handled signals in the calling thread (pool threads). */
void mpm__sig_block_thread(void);

#endif
