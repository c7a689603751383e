/*
 * progress.h - rank 0's progress report on stderr.
 *
 * Modes (--progress auto|on|off, -q):
 *   bar    standard error is a terminal: one line redrawn in place (at most
 *          5 times a second): chunks done, bytes (or integers) done / total,
 *          percentage, rate, ETA. It is erased before any other message and
 *          before rows are written to a terminal, and at the end, so neither
 *          the result nor the messages are garbled.
 *   lines  otherwise (batch jobs): one timestamped line every
 *          --progress-interval seconds (default 10).
 * auto (default) picks bar or lines and is silenced by -q; on is the same but
 * ignores -q; off prints nothing. Totals come from the inputs (file sizes,
 * ranges, items); standard input has none, so no percentage or ETA then.
 * Thread safety: rank 0's main thread only.
 */
#ifndef MPM_PROGRESS_H
#define MPM_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

enum { MPM_PROGRESS_AUTO = 0, MPM_PROGRESS_ON = 1, MPM_PROGRESS_OFF = 2 };
enum { MPM_PMODE_NONE = 0, MPM_PMODE_LINES = 1, MPM_PMODE_BAR = 2 };

typedef struct mpm_progress_s {
    int mode; /* MPM_PMODE_* */
    double interval, t0, next;
    uint64_t total; /* 0: unknown */
    int integers;   /* the unit is integers (range inputs), not bytes */
} mpm_progress_t;

/* choice: MPM_PROGRESS_*; tty: standard error is a terminal. */
void mpm__progress_init(mpm_progress_t *p, int choice, int quiet, int tty, double interval,
                        uint64_t total, int integers);

/* Prints when due (or now with force). */
void mpm__progress_tick(mpm_progress_t *p, uint64_t chunks, uint64_t done, int force);

/* Erases the bar, if one is shown (before other output to the terminal). */
void mpm__progress_erase(void);

/* The report's text, without prefix or newline (exposed for the unit tests).
 * elapsed in seconds. */
void mpm__progress_format(char *dst, size_t n, int bar, uint64_t chunks, uint64_t done,
                          uint64_t total, int integers, double elapsed);

#endif
