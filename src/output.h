/*
 * output.h - rank 0's result writer.
 *
 * Results reach the writer in input order (the engine's reorder ring sees to
 * that). The writer adds the framing of the chosen format (TSV header line,
 * JSON array brackets and commas between the one-object-per-line rows that
 * kernels emit) and writes to standard output or to a temporary file next to
 * the target, `DIR/.NAME.mpimap-XXXXXX`, which mpm__out_commit() renames into
 * place. mpm__out_abort() removes it: a failed run never leaves anything
 * under the final name. A path that exists and is neither a regular file nor
 * a directory (/dev/null, a named pipe) is opened and written in place:
 * renaming a file over it would replace the device. Thread safety: rank 0's main thread only.
 */
#ifndef MPM_OUTPUT_H
#define MPM_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "mpimap/kernel.h"

typedef struct mpm_out_s {
    const char *path; /* final path, or NULL for stdout */
    char *tmp;        /* temporary path while writing */
    int fd;
    mpm_format_t fmt;
    const char *const *cols;
    int started;   /* header / '[' written */
    int rows;      /* JSON: rows written so far */
    uint64_t bytes; /* bytes written */
    mpm_buf_t scratch;
    int failed; /* a write failed: message in err */
    int direct; /* the path is a device or FIFO (/dev/null): written in place */
    char err[512];
} mpm_out_t;

/* Opens the destination (the temporary file for a path). 0 or -1 with
 * o->err set. */
int mpm__out_open(mpm_out_t *o, const char *path, mpm_format_t fmt, const char *const *cols);

/* 1 when path exists and is neither a regular file nor a directory (a
 * device such as /dev/null, a FIFO): every writer of outputs opens such a
 * path and writes in place; a file renamed over it would replace it. */
int mpm__out_in_place(const char *path);

/* Whether an output can be created at path before any work is done: not a
 * directory, its directory exists and is writable (or, written in place,
 * the path itself is writable). 0, or -1 with "WHAT 'PATH' ..." in why. */
int mpm__out_check_writable(const char *what, const char *path, char *why, size_t whyn);

/* Writes rows (as emitted by mpm_emit_row) of one chunk. 0 or -1. */
int mpm__out_rows(mpm_out_t *o, const char *data, size_t len);

/* Whether commits fsync before renaming (default 1; --no-sync sets 0 for
 * the process). */
void mpm__out_set_sync(int on);

/* Finishes the framing, flushes, fsyncs (see mpm__out_set_sync) and renames
 * into place. 0 or -1. */
int mpm__out_commit(mpm_out_t *o);

/* The same, renaming to `final` instead of the path given to open (NULL: that
 * path). Used to keep the rows of a run with failed chunks under another name. */
int mpm__out_commit_as(mpm_out_t *o, const char *final);

/* Removes the temporary file (if any) and frees everything. */
void mpm__out_abort(mpm_out_t *o);

#endif
