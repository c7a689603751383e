/*
 * fuzz_partials.c - the kernels' bytes on the wire and in the journal: the
 * partial deserializer of every kernel (kernel.h: a partial travels between
 * ranks in TAG_PARTIAL and TAG_SEGMENTS messages, and is stored in the
 * journal's SEGMENT records, which --resume reads back from disk and hands
 * to deserialize), and the `failed` hook (exec), which --resume-failed
 * calls on a chunk's result bytes read back from the journal.
 *
 * The engine's own headers (mpm_chunk_desc_t, result_hdr_t) are fixed-size
 * structs copied whole from messages of the job's own ranks, not parsed:
 * there is nothing to fuzz there; the journal records that hold them on
 * disk are fuzz_journal's.
 *
 * Input: byte 0 picks the kernel: primes, wordcount, test, kmeans, exec,
 * then any other registered kernel with a deserialize or failed hook (byte
 * 0 modulo their number); the rest is the bytes. The options are the
 * kernel's defaults (opts_init, no check()).
 *
 * Checked beyond "no crash, no leak":
 *   - deserialize returns a partial, or NULL with a message;
 *   - when it accepts x, y = serialize(deserialize(x)) is accepted too and
 *     serialize(deserialize(y)) == y: the format has one canonical form,
 *     reached in one step (wordcount: the same words and counts, in the
 *     order of a hash table, which depends on its size);
 *   - primes and test (fixed-size counters): y == x, byte for byte;
 *     wordcount (a hash table): y holds each distinct word of x once, with
 *     the sum of its counts in x (mod 2^64), and no other word;
 *   - merge(deserialize(x), deserialize(x)) serialises to every counter
 *     doubled (primes, test: mod 2^64; wordcount: every word's count, or
 *     the merge fails with a message when one would overflow 64 bits);
 *   - finish() of a deserialised partial succeeds (primes: the count it
 *     writes is the one in x);
 *   - failed() answers 0 or 1 for any bytes.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpimap/mpimap.h"

static const char *const first[] = {"primes", "wordcount", "test", "kmeans", "exec", NULL};

static const mpm_kernel_t *kernels[32];
static int nkernels;

static _Noreturn void fail(const mpm_kernel_t *k, const char *what)
{
    fprintf(stderr, "fuzz_partials: %s: %s\n", k->name, what);
    abort();
}

static void pick_kernels(void)
{
    for (int i = 0; first[i]; i++) {
        const mpm_kernel_t *k = mpm_kernel_find(first[i]);
        if (k && (k->deserialize || k->failed)) kernels[nkernels++] = k;
    }
    for (const mpm_kernel_t *const *kk = mpm_kernels(); *kk && nkernels < 32; kk++) {
        int known = 0;
        for (int i = 0; i < nkernels; i++) known |= kernels[i] == *kk;
        if (!known && ((*kk)->deserialize || (*kk)->failed)) kernels[nkernels++] = *kk;
    }
}

/* ---- wordcount: [u64 n] then n x [u64 count][u32 len][bytes] -------------------------- */

typedef struct {
    const uint8_t *w;
    uint32_t len;
    uint64_t count;
} wc_ent_t;

static int ent_cmp(const void *a, const void *b)
{
    const wc_ent_t *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->w, y->w, n);
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* The entries of a serialised word-count partial, sorted by word; NULL when
 * the bytes do not have the format exactly. */
static wc_ent_t *wc_parse(const uint8_t *d, size_t len, size_t *n)
{
    uint64_t cnt;
    if (len < 8) return NULL;
    memcpy(&cnt, d, 8);
    if (cnt > len / 12) return NULL;
    wc_ent_t *v = malloc((size_t)(cnt ? cnt : 1) * sizeof *v);
    if (!v) abort();
    size_t at = 8;
    for (uint64_t i = 0; i < cnt; i++) {
        if (len - at < 12) {
            free(v);
            return NULL;
        }
        memcpy(&v[i].count, d + at, 8);
        memcpy(&v[i].len, d + at + 8, 4);
        at += 12;
        if (len - at < v[i].len) {
            free(v);
            return NULL;
        }
        v[i].w = d + at;
        at += v[i].len;
    }
    if (at != len) {
        free(v);
        return NULL;
    }
    qsort(v, (size_t)cnt, sizeof *v, ent_cmp);
    *n = (size_t)cnt;
    return v;
}

/* y must hold each distinct word of x once with the sum of its counts. */
static void wc_check(const mpm_kernel_t *k, const uint8_t *x, size_t xl, const uint8_t *y,
                     size_t yl)
{
    size_t nx = 0, ny = 0;
    wc_ent_t *vx = wc_parse(x, xl, &nx), *vy = wc_parse(y, yl, &ny);
    if (!vx) fail(k, "deserialize accepted bytes that are not a word-count partial");
    if (!vy) fail(k, "serialize wrote bytes that are not a word-count partial");
    size_t j = 0;
    for (size_t i = 0; i < nx;) {
        uint64_t sum = 0;
        size_t i0 = i;
        for (; i < nx && !ent_cmp(&vx[i], &vx[i0]); i++) sum += vx[i].count;
        if (j >= ny || ent_cmp(&vy[j], &vx[i0]) || vy[j].count != sum)
            fail(k, "a word's count changed through deserialize and serialize");
        j++;
        if (j < ny && !ent_cmp(&vy[j], &vy[j - 1])) fail(k, "serialize wrote a word twice");
    }
    if (j != ny) fail(k, "serialize wrote a word that was not deserialised");
    free(vx);
    free(vy);
}

/* z (y merged with itself) must hold y's words with their counts doubled. */
static void wc_doubled(const mpm_kernel_t *k, const uint8_t *y, size_t yl, const uint8_t *z,
                       size_t zl)
{
    size_t ny = 0, nz = 0;
    wc_ent_t *vy = wc_parse(y, yl, &ny), *vz = wc_parse(z, zl, &nz);
    if (!vy || !vz) fail(k, "serialize wrote bytes that are not a word-count partial");
    if (ny != nz) fail(k, "merging a partial with itself changed its words");
    for (size_t i = 0; i < ny; i++)
        if (ent_cmp(&vy[i], &vz[i]) || vz[i].count / 2 != vy[i].count || vz[i].count % 2)
            fail(k, "merging a partial with itself did not double its counts");
    free(vy);
    free(vz);
}

/* ---- the generic checks ------------------------------------------------------------------- */

static void *deser(const mpm_kernel_t *k, const void *opts, const void *d, size_t n)
{
    mpm_err_t err = {.offset = -1, .msg = ""};
    void *p = k->deserialize(opts, d, n, &err);
    if (!p && !err.msg[0]) fail(k, "deserialize refused bytes without a message");
    return p;
}

static void ser(const mpm_kernel_t *k, const void *opts, const void *p, mpm_buf_t *out)
{
    out->len = 0;
    if (k->serialize(opts, p, out) < 0) fail(k, "serialize of a deserialised partial failed");
}

/* Counters of fixed-size partials: x as u64s. */
static void doubled(const mpm_kernel_t *k, const uint8_t *x, const mpm_buf_t *m, size_t xl)
{
    if (m->len != xl || xl % 8) fail(k, "the merged partial has another size");
    for (size_t i = 0; i < xl; i += 8) {
        uint64_t a, b;
        memcpy(&a, x + i, 8);
        memcpy(&b, m->data + i, 8);
        if (b != 2 * a) fail(k, "merging a partial with itself did not double its counters");
    }
}

static void partial(const mpm_kernel_t *k, const void *opts, const uint8_t *x, size_t xl)
{
    int exact = !strcmp(k->name, "primes") || !strcmp(k->name, "test");
    int words = !strcmp(k->name, "wordcount");
    void *p = deser(k, opts, x, xl);
    if (!p) return;
    if (!k->serialize || !k->partial_free) fail(k, "deserialize without serialize or partial_free");
    mpm_buf_t y = {0}, z = {0};
    ser(k, opts, p, &y);
    void *q = deser(k, opts, y.data, y.len);
    if (!q) fail(k, "deserialize refused what serialize wrote");
    ser(k, opts, q, &z);
    if (words) /* a hash table: the order of its words depends on the table's size */
        wc_check(k, (const uint8_t *)y.data, y.len, (const uint8_t *)z.data, z.len);
    else if (z.len != y.len || memcmp(z.data, y.data, y.len))
        fail(k, "serialize(deserialize(y)) != y for y = serialize(deserialize(x))");
    if (exact && (y.len != xl || memcmp(y.data, x, xl)))
        fail(k, "serialize(deserialize(x)) != x");
    if (words) wc_check(k, x, xl, (const uint8_t *)y.data, y.len);

    /* finish: the final rows */
    if (k->finish) {
        mpm_buf_t out = {0};
        mpm_err_t err = {.offset = -1, .msg = ""};
        if (k->finish(opts, q, MPM_FMT_TEXT, &out, &err) < 0) fail(k, "finish failed");
        if (!strcmp(k->name, "primes")) {
            uint64_t c;
            char want[32];
            memcpy(&c, x, 8);
            int n = snprintf(want, sizeof want, "%" PRIu64 "\n", c);
            if (out.len != (size_t)n || memcmp(out.data, want, (size_t)n))
                fail(k, "finish wrote another count");
        }
        mpm_buf_free(&out);
    }
    k->partial_free(q);

    /* merge with a copy of itself (the wire's rank-order merge) */
    if (k->merge) {
        void *p2 = deser(k, opts, x, xl);
        if (!p2) fail(k, "deserialize refused bytes it accepted before");
        mpm_err_t err = {.offset = -1, .msg = ""};
        if (k->merge(opts, p, p2, &err) < 0) {
            if (!err.msg[0]) fail(k, "merge failed without a message");
        } else {
            ser(k, opts, p, &z);
            if (exact) doubled(k, x, &z, xl);
            if (words) wc_doubled(k, (const uint8_t *)y.data, y.len, (const uint8_t *)z.data, z.len);
        }
        k->partial_free(p2);
    }
    k->partial_free(p);
    mpm_buf_free(&y);
    mpm_buf_free(&z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!nkernels) pick_kernels();
    if (size < 1 || !nkernels) return 0;
    const mpm_kernel_t *k = kernels[data[0] % nkernels];
    const uint8_t *x = data + 1;
    size_t xl = size - 1;
    void *opts = calloc(1, k->opts_size ? k->opts_size : 1);
    if (!opts) return 0;
    if (k->opts_init) k->opts_init(opts);
    if (k->deserialize) partial(k, opts, x, xl);
    if (k->failed) {
        int r = k->failed(opts, x, xl);
        if (r != 0 && r != 1) fail(k, "failed() answered neither 0 nor 1");
    }
    if (k->opts_free) k->opts_free(opts);
    free(opts);
    return 0;
}
