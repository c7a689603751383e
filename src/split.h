/*
 * split.h - cutting inputs into record-aligned chunks.
 *
 * Contract: chunk boundaries depend only on the input bytes, the record kind
 * and the chunk size, never on ranks, threads or the I/O mode. For a byte
 * input, chunk k starts where chunk k-1 ended (the first at 0) and ends just
 * after the first record separator at or after byte start + chunk_size - 1,
 * or at the end of the input. A record longer than the chunk size therefore
 * makes one longer chunk; a chunk size of 1 gives one record per chunk.
 * Chunks never span two inputs. Range inputs split into [lo + k*size, ...).
 *
 * Two ways to walk the same boundaries:
 *   read mode     : the bytes are read sequentially and returned (--io master,
 *                   stdin, in-memory inputs);
 *   describe mode : file inputs are only probed around each boundary with
 *                   pread and chunks are returned as (offset, length), for
 *                   ranks that read their own bytes (--io shared).
 * Thread safety: a splitter belongs to one thread.
 */
#ifndef MPM_SPLIT_H
#define MPM_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "mpimap/kernel.h"

/* mpm_chunk_desc_t.has_data, also on the wire between ranks. */
enum {
    MPM_DATA_PREAD = 0,   /* no bytes: the reader preads them (or a range) */
    MPM_DATA_INLINE = 1,  /* the bytes are here (after the header in a message) */
    MPM_DATA_SEPARATE = 2 /* the bytes follow in their own message (rank 0's mapping) */
};

typedef struct mpm_chunk_desc_s {
    uint64_t index;
    int32_t input;
    int32_t has_data; /* MPM_DATA_* */
    uint64_t offset, len;
    uint64_t lo, hi;
    uint32_t attempt; /* earlier attempts at this chunk (the engine's retries) */
    uint32_t reserved;
} mpm_chunk_desc_t;

typedef struct mpm_splitter_s mpm_splitter_t;

/* 1 if byte c ends a record of kind rec. */
static inline int mpm__is_sep(mpm_records_t rec, unsigned char c)
{
    if (rec == MPM_REC_LINES) return c == '\n';
    if (rec == MPM_REC_BYTES) return 1; /* the chunk size is a multiple of the record */
    return !(c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
             (c >= 'A' && c <= 'Z') || c == '_');
}

/*
 * read_data: 1 for read mode, 0 for describe mode (stdin and memory inputs are
 * always returned with their bytes). headroom: bytes left free in front of
 * the data in every returned buffer (room for a message header).
 * Returns 0, or -1 with err set.
 */
int mpm__split_open(mpm_splitter_t **s, const mpm_input_t *in, int n, uint64_t chunk_size,
                    mpm_records_t rec, int read_data, size_t headroom, mpm_err_t *err);

/* Cuts every input with the kernel's source (mpm_kernel_t.source_open)
 * instead of the record rules: chunks then always come with their bytes.
 * No effect for a kernel without one. Call right after mpm__split_open. */
void mpm__split_set_source(mpm_splitter_t *s, const mpm_kernel_t *k, const void *opts);

/* Returns 1 with the next chunk in *d and, when d->has_data, a malloc'd buffer
 * in *buf holding headroom bytes then the d->len data bytes; 0 at the end;
 * -1 when the current input cannot be opened or read (err->msg names it):
 * then *d names the failure (a chunk index is used up for it; input, and
 * offset = where its unread part starts) and the next call goes on with the
 * next input. */
int mpm__split_next(mpm_splitter_t *s, mpm_chunk_desc_t *d, char **buf, mpm_err_t *err);

/* The same without the copy: *data points at the chunk's bytes, either in
 * *buf (headroom bytes in) or, when *buf is NULL, in a mapping of the input
 * that stays valid until mpm__split_release(s, d->input) is called once for
 * this chunk (and in any case until mpm__split_close). */
int mpm__split_next_ref(mpm_splitter_t *s, mpm_chunk_desc_t *d, char **buf, const char **data,
                        mpm_err_t *err);

/* Releases a chunk handed out by mpm__split_next_ref from a mapping. */
void mpm__split_release(mpm_splitter_t *s, int input);

/* Bytes consumed so far (read or described). */
uint64_t mpm__split_bytes(const mpm_splitter_t *s);

/* 1 once standard input ended without giving a single byte. */
int mpm__split_empty_stdin(const mpm_splitter_t *s);

void mpm__split_close(mpm_splitter_t *s);

#endif
