/*
 * fuzz_split.c - the record splitter (src/split.h): cutting byte inputs into
 * record-aligned chunks, for MPM_REC_LINES and MPM_REC_WORDS.
 *
 * Input: bytes 0-1 (little-endian) hold v. The chunk size is
 * 1 + (v % 4096), raised when needed so that an input makes at most 64
 * chunks (a chunk is never shorter than the chunk size, so this bounds the
 * work per input); bits 12-13 of v pick the record kind (bit 12: words,
 * else lines) and the mode (bit 13: describe, else read). The rest is the
 * input's bytes. They are held in one memfd per process, opened by the
 * splitter as a file (/proc/self/fd/N, so every read and pread of the file
 * paths really happens), and split as two inputs in one splitter: the file
 * then the same bytes in memory (MPM_IN_MEMORY), in read mode (with
 * headroom in front of every buffer) or describe mode (file chunks as
 * offset/length only). One record kind and mode per input keeps an
 * execution cheap (the file paths allocate a buffer per chunk); the seeds
 * come in all four combinations.
 *
 * Checked beyond "no crash, no leak": no error; chunk indices run 0, 1, 2
 * ... over both inputs; each input's chunks are contiguous from offset 0,
 * non-empty, and together cover its bytes exactly; each chunk ends just
 * after the first record separator at or after byte start + chunk size - 1,
 * or at the end of the input (split.h's contract), so every chunk but the
 * last ends on a record boundary; the bytes handed out equal the input's
 * bytes at that offset; mpm__split_bytes counts every byte of both inputs.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "split.h"

#define HEADROOM 24
#define MAX_CHUNKS 64 /* per input: the chunk size is raised to stay below */

static char path[64];

static _Noreturn void fail(const char *what, const mpm_chunk_desc_t *d, uint64_t cs, int rec,
                           int read_data)
{
    fprintf(stderr, "fuzz_split: %s (chunk size %llu, %s, %s mode", what, (unsigned long long)cs,
            rec == MPM_REC_LINES ? "lines" : "words", read_data ? "read" : "describe");
    if (d)
        fprintf(stderr, "; chunk %llu: input %d, offset %llu, len %llu",
                (unsigned long long)d->index, (int)d->input, (unsigned long long)d->offset,
                (unsigned long long)d->len);
    fprintf(stderr, ")\n");
    abort();
}

/* Where the chunk that starts at `start` must end (split.h). */
static size_t expected_end(const uint8_t *p, size_t n, size_t start, uint64_t cs, mpm_records_t rec)
{
    if (n - start <= cs) return n;
    for (size_t i = start + (size_t)cs - 1; i < n; i++)
        if (mpm__is_sep(rec, p[i])) return i + 1;
    return n;
}

static void run(const uint8_t *p, size_t n, uint64_t cs, mpm_records_t rec, int read_data)
{
    mpm_input_t in[2] = {
        {.kind = MPM_IN_FILE, .name = path},
        {.kind = MPM_IN_MEMORY, .name = "memory", .data = (const char *)p, .len = n}};
    mpm_err_t err = {.offset = -1, .msg = ""};
    mpm_splitter_t *s = NULL;
    if (mpm__split_open(&s, in, 2, cs, rec, read_data, HEADROOM, &err) < 0)
        fail(err.msg, NULL, cs, rec, read_data);
    uint64_t index = 0;
    size_t pos[2] = {0, 0};
    int cur = 0;
    for (;;) {
        mpm_chunk_desc_t d;
        char *buf = (char *)1;
        int r = mpm__split_next(s, &d, &buf, &err);
        if (r == 0) break;
        if (r < 0) fail(err.msg, &d, cs, rec, read_data);
        if (r != 1) fail("mpm__split_next returned an unexpected value", &d, cs, rec, read_data);
        if (d.index != index++) fail("chunk index out of sequence", &d, cs, rec, read_data);
        if (d.input < cur || d.input > 1)
            fail("chunk of an unexpected input", &d, cs, rec, read_data);
        if (d.input != cur && pos[cur] != n)
            fail("next input before the end of the previous one", &d, cs, rec, read_data);
        cur = d.input;
        if (d.offset != pos[cur]) fail("chunks not contiguous", &d, cs, rec, read_data);
        if (d.len == 0) fail("empty chunk", &d, cs, rec, read_data);
        if (d.len > n - pos[cur]) fail("chunk past the end of the input", &d, cs, rec, read_data);
        size_t end = pos[cur] + (size_t)d.len;
        if (end != expected_end(p, n, pos[cur], cs, rec))
            fail("chunk does not end at the expected record boundary", &d, cs, rec, read_data);
        if (end < n && !mpm__is_sep(rec, p[end - 1]))
            fail("chunk other than the last does not end on a record boundary", &d, cs, rec,
                 read_data);
        int expect_data = cur == 1 || read_data;
        if (expect_data != (d.has_data != MPM_DATA_PREAD))
            fail("has_data is not as the mode says", &d, cs, rec, read_data);
        if (expect_data && (!buf || memcmp(buf + HEADROOM, p + pos[cur], (size_t)d.len)))
            fail("chunk bytes differ from the input", &d, cs, rec, read_data);
        if (!expect_data && buf) fail("describe mode returned a buffer", &d, cs, rec, read_data);
        free(buf);
        pos[cur] = end;
    }
    if (pos[0] != n || pos[1] != n)
        fail("chunks do not cover the inputs", NULL, cs, rec, read_data);
    if (mpm__split_bytes(s) != 2 * (uint64_t)n)
        fail("mpm__split_bytes does not count every byte", NULL, cs, rec, read_data);
    mpm__split_close(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    if (size < 2) return 0;
    if (fd < 0) {
        if ((fd = memfd_create("fuzz-split", MFD_CLOEXEC)) < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    unsigned v = (unsigned)(data[0] | data[1] << 8);
    uint64_t cs = 1 + v % 4096;
    mpm_records_t rec = v & 0x1000 ? MPM_REC_WORDS : MPM_REC_LINES;
    int read_data = !(v & 0x2000);
    const uint8_t *p = data + 2;
    size_t n = size - 2;
    if (n / cs >= MAX_CHUNKS) cs = n / MAX_CHUNKS + 1;
    if (ftruncate(fd, 0) < 0 || (n && pwrite(fd, p, n, 0) != (ssize_t)n)) {
        perror("memfd write");
        abort();
    }
    run(p, n, cs, rec, read_data);
    return 0;
}
