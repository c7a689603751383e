/*
 * journal.h - the durable record of finished chunks (--journal, --resume).
 *
 * DESIGN. One file, written only by rank 0's main thread:
 *
 *   header   "MPIMAP JOURNAL 1\n", the run's fingerprint as text lines, then
 *            "end <xxh64 of everything before, hex>\n". Written to a
 *            temporary file, fsynced and renamed into place, so a journal
 *            either has a whole header or does not exist.
 *   records  appended one write() each: a 64-byte header (magic, type,
 *            chunk identity, payload sizes, XXH64 of header and payload)
 *            then the payload. Types: DONE (the chunk's ordered rows, then
 *            its serialised partial for reduced kernels), FAILED (the reason
 *            as text) and INPUT (a new fingerprint line for one input whose
 *            earlier records were all failures, written when such an input
 *            changed between runs) and SEGMENT (reduced kernels: the
 *            serialised partial of a group of finished chunks, with the
 *            list of their identities; see engine.c).
 *
 * A chunk is identified by (input, offset): chunk boundaries depend only on
 * the input bytes and the chunk size (split.h), both fingerprinted, so the
 * same chunk has the same identity in every run even when another input
 * fails to open in one run and not in the next. The chunk's length is stored
 * too and checked on resume.
 *
 * Durability: records are write()n as soon as a chunk finishes, so a killed
 * process loses nothing that reached the kernel; fsync runs at most once per
 * sync interval (and at close), bounding what a power loss can take. A torn
 * or corrupt record (short, bad magic, bad hash) ends the journal: on resume
 * it and anything after it are cut off and the chunks are computed again.
 *
 * Fingerprint: `global` lines (kernel, options that change results, chunk
 * size, format, number of inputs) must match exactly; each input has its own
 * line (name, size, mtime, or a hash of in-memory data). An input whose line
 * changed is accepted only when the journal holds no finished chunk of it.
 *
 * Thread safety: one thread.
 */
#ifndef MPM_JOURNAL_H
#define MPM_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "mpimap/kernel.h"

enum { MPM_J_DONE = 1, MPM_J_FAILED = 2, MPM_J_INPUT = 3, MPM_J_SEGMENT = 4 };

/* A SEGMENT payload starts with this identity for each chunk it covers. */
typedef struct mpm_jid_s {
    int32_t input;
    uint32_t reserved;
    uint64_t offset, len;
} mpm_jid_t;

/* A segment: its identities at pos, then its partial (part_len bytes). */
typedef struct mpm_jsegment_s {
    uint64_t pos;
    uint64_t n;
    uint64_t part_len;
} mpm_jsegment_t;

typedef struct mpm_jentry_s {
    int32_t input;
    int state; /* MPM_J_DONE or MPM_J_FAILED */
    uint32_t attempts;
    uint64_t offset, len; /* chunk identity and length (integers for ranges) */
    uint64_t pos;         /* file offset of the payload */
    uint64_t rows_len, part_len;
    int covered; /* a SEGMENT record holds this chunk's partial */
} mpm_jentry_t;

typedef struct mpm_journal_s mpm_journal_t;

typedef struct mpm_journal_stats_s {
    uint64_t done, failed; /* entries loaded by resume */
    uint64_t torn_at;      /* byte where a torn tail was cut, or 0 */
    uint64_t torn_bytes;
    int created; /* the journal did not exist and was created */
} mpm_journal_stats_t;

/*
 * Opens `path`. Without `resume`, the file must not exist and is created with
 * the fingerprint. With `resume`, an existing journal is loaded (torn tail
 * cut off) and checked against the fingerprint; a missing one is created.
 * `global`: '\n'-terminated lines. `inputs[i]`: one line per input, no '\n'.
 * `names[i]`: the inputs' names for messages.
 * Returns 0; -2 for a usage error (exists without --resume, does not match
 * this run); -1 for an I/O or format error. err names the journal.
 */
int mpm__journal_open(mpm_journal_t **j, const char *path, int resume, const char *global,
                      char *const *inputs, const char *const *names, int n_inputs,
                      double sync_interval, mpm_err_t *err);

const mpm_journal_stats_t *mpm__journal_stats(const mpm_journal_t *j);

/* The latest entry for chunk (input, offset), or NULL. The pointer is valid
 * only until the next append (entries move as the journal grows): copy it. */
const mpm_jentry_t *mpm__journal_find(const mpm_journal_t *j, int input, uint64_t offset);

/* Segments loaded or appended, in order (a segment is kept only when every
 * chunk it covers has a DONE record before it). */
size_t mpm__journal_nsegments(const mpm_journal_t *j);
const mpm_jsegment_t *mpm__journal_segment(const mpm_journal_t *j, size_t i);
/* Reads n bytes of the file at pos (a segment's payload). */
int mpm__journal_read_at(mpm_journal_t *j, uint64_t pos, void *dst, size_t n, mpm_err_t *err);

/* Reads n bytes of an entry's payload starting at `at` (0 = first row byte). */
int mpm__journal_read(mpm_journal_t *j, const mpm_jentry_t *e, uint64_t at, void *dst, size_t n,
                      mpm_err_t *err);

/* Appends a record (payload = a then b). 0, or -1 with err set. */
int mpm__journal_append(mpm_journal_t *j, int type, uint64_t index, int input, uint64_t offset,
                        uint64_t len, uint32_t attempts, const void *a, size_t a_len,
                        const void *b, size_t b_len, mpm_err_t *err);

/* fsyncs when records were appended and the interval has passed (or force). */
int mpm__journal_sync(mpm_journal_t *j, int force, mpm_err_t *err);

/* Syncs (force) and closes. Returns 0 or -1 (err set) when the final sync failed. */
int mpm__journal_close(mpm_journal_t *j, mpm_err_t *err);

#endif
