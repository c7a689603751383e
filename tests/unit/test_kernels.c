/*
 * test_kernels.c - the built-in kernels called through their function tables,
 * checked against independent references (a naive word counter,
 * trial-division primes, iterative Fibonacci; in tests/common/testutil.h),
 * plus the row emitter and the number parsers of util.h.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mpimap/mpimap.h"
#include "util.h"

#define TU_RNG_SEED 0x9e3779b97f4a7c15ULL
#include "testutil.h"

/* ---- generic helpers ----------------------------------------------------------- */

/* Options of one kernel, set through its option table, then check(). */
typedef struct kx_s {
    const mpm_kernel_t *k;
    void *opts;
    mpm_inputs_t in;
    mpm_err_t err;
    int rc; /* check() result */
} kx_t;

/* Stores a value into the field an option of k->options describes. */
static int set_opt(const mpm_kernel_t *k, void *opts, const char *name, const char *val)
{
    for (const mpm_option_t *o = k->options; o && o->name; o++) {
        if (strcmp(o->name, name) != 0) continue;
        char *f = (char *)opts + o->offset;
        switch (o->type) {
        case MPM_OPT_FLAG:
            *(int *)f = 1;
            return 0;
        case MPM_OPT_INT: {
            long long v;
            if (mpm__parse_ll(val, &v) < 0) return -1;
            *(long long *)f = v;
            return 0;
        }
        case MPM_OPT_SIZE: {
            uint64_t v;
            if (mpm__parse_size(val, &v) < 0) return -1;
            *(uint64_t *)f = v;
            return 0;
        }
        case MPM_OPT_STRING:
            *(const char **)f = val;
            return 0;
        default:
            return -1;
        }
    }
    return -1;
}

/* opts: "name", "value" pairs (value NULL for flags), NULL-terminated. */
static void kx_open(kx_t *x, const char *kernel, const char *const *opts, int argc, char **argv)
{
    memset(x, 0, sizeof *x);
    x->err.offset = -1;
    x->k = mpm_kernel_find(kernel);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x->k);
    CU_ASSERT_EQUAL(x->k->abi, MPM_KERNEL_ABI);
    x->opts = calloc(1, x->k->opts_size ? x->k->opts_size : 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x->opts);
    if (x->k->opts_init) x->k->opts_init(x->opts);
    for (int i = 0; opts && opts[i]; i += 2)
        CU_ASSERT_EQUAL(set_opt(x->k, x->opts, opts[i], opts[i + 1]), 0);
    x->rc = x->k->check(x->opts, argc, argv, &x->in, &x->err);
}

static void kx_close(kx_t *x)
{
    if (x->k && x->k->opts_free) x->k->opts_free(x->opts);
    free(x->opts);
    free(x->in.v);
    memset(x, 0, sizeof *x);
}

/* Runs map over one chunk whose bytes are copied into an exact-size buffer
 * (so that reads past the end are caught by sanitizers). */
static int map_bytes(const kx_t *x, void *partial, uint64_t index, uint64_t offset,
                     const char *data, size_t len, mpm_format_t fmt, mpm_buf_t *out, mpm_err_t *err)
{
    char *copy = malloc(len ? len : 1);
    if (len) memcpy(copy, data, len);
    mpm_chunk_t c = {
        .index = index, .input = 0, .name = "test", .offset = offset, .data = copy, .len = len};
    int r = x->k->map(x->opts, &c, partial, fmt, out, err);
    free(copy);
    return r;
}

static int map_range(const kx_t *x, void *partial, uint64_t lo, uint64_t hi, mpm_format_t fmt,
                     mpm_buf_t *out, mpm_err_t *err)
{
    mpm_chunk_t c = {.index = 0, .input = 0, .name = "range", .lo = lo, .hi = hi};
    return x->k->map(x->opts, &c, partial, fmt, out, err);
}

/* Serialises p, frees it, and returns the partial deserialised from the bytes. */
static void *roundtrip(const kx_t *x, void *p)
{
    mpm_buf_t b = {0};
    CU_ASSERT_EQUAL(x->k->serialize(x->opts, p, &b), 0);
    x->k->partial_free(p);
    mpm_err_t err = {.offset = -1, .msg = ""};
    void *q = x->k->deserialize(x->opts, b.data ? b.data : "", b.len, &err);
    CU_ASSERT_PTR_NOT_NULL(q);
    mpm_buf_free(&b);
    return q;
}

static int buf_eq(const mpm_buf_t *b, const char *s, size_t n)
{
    return b->len == n && (n == 0 || memcmp(b->data, s, n) == 0);
}

/* ---- independent references -------------------------------------------------- */

static uint64_t count_primes_td(uint64_t lo, uint64_t hi) /* [lo, hi) */
{
    uint64_t c = 0;
    for (uint64_t n = lo; n < hi; n++)
        c += (uint64_t)tu_is_prime(n);
    return c;
}

/* ---- wordcount ---------------------------------------------------------------- */

/* Random text with a skewed vocabulary: mixed case, digits, '_', UTF-8 and
 * raw high bytes, separated by spaces, punctuation and control bytes. */
static char *wc_text(size_t len, int vocab)
{
    static const char *const seps[] = {" ",  " ",  " ",    "\n", ", ",     ". ",   "\t",   "\r\n",
                                       "--", "'",  "\"",   "(",  ")\n",    "\x01", "\x7f", " ~ ",
                                       "/",  "\\", "\x1b", "=",  "  \n\n", ";",    "@",    "+"};
    static const char *const stems[] = {"the",
                                        "The",
                                        "THE",
                                        "a",
                                        "of",
                                        "and",
                                        "caf\xc3\xa9",
                                        "CAF\xc3\x89",
                                        "na\xc3\xafve",
                                        "x_y",
                                        "_",
                                        "42",
                                        "v2",
                                        "ZZ",
                                        "zz",
                                        "\xff\xfe",
                                        "a\x80\x62", /* a, 0x80, b */
                                        "\xe6\x97\xa5\xe6\x9c\xac",
                                        "Word",
                                        "word"};
    char *s = malloc(len + 64);
    size_t n = 0;
    while (n < len) {
        uint64_t r = rnd();
        if (r % 3 == 0) {
            const char *st = stems[(r >> 8) % (sizeof stems / sizeof *stems)];
            size_t l = strlen(st);
            memcpy(s + n, st, l);
            n += l;
        } else {
            /* Zipf-like: small ids are frequent. */
            unsigned id = (unsigned)((r >> 8) % (unsigned)vocab);
            id = (unsigned)((uint64_t)id * id / (unsigned)vocab);
            int up = (r >> 40) % 7 == 0;
            n += (size_t)snprintf(s + n, 32, up ? "W%uQ" : "w%uq", id);
        }
        const char *sp = seps[(r >> 20) % (sizeof seps / sizeof *seps)];
        size_t l = strlen(sp);
        memcpy(s + n, sp, l);
        n += l;
    }
    s[n] = 0;
    return s;
}

/* Counts text with the kernel: chunks cut just after random separators,
 * mapped alternately into `nparts` partials, merged (some through a
 * serialise/deserialise round trip, as across ranks), and finished. */
static char *wc_kernel(const kx_t *x, const char *text, size_t len, int nparts, uint64_t max_chunk,
                       mpm_format_t fmt, size_t *outlen)
{
    const mpm_kernel_t *k = x->k;
    void *parts[8];
    for (int i = 0; i < nparts; i++) {
        parts[i] = k->partial_new(x->opts);
        CU_ASSERT_PTR_NOT_NULL_FATAL(parts[i]);
    }
    size_t start = 0;
    uint64_t idx = 0;
    while (start < len) {
        size_t want = 1 + (size_t)(rnd() % max_chunk);
        size_t end = start + want < len ? start + want : len;
        /* extend to just after a separator (as the splitter does) */
        while (end < len && tu_word_byte((unsigned char)text[end - 1]))
            end++;
        mpm_buf_t out = {0};
        mpm_err_t err = {.offset = -1, .msg = ""};
        CU_ASSERT_EQUAL(map_bytes(x, parts[idx % (uint64_t)nparts], idx, start, text + start,
                                  end - start, fmt, &out, &err),
                        0);
        CU_ASSERT_EQUAL(out.len, 0); /* wordcount emits no ordered rows */
        mpm_buf_free(&out);
        idx++;
        start = end;
    }
    for (int i = 1; i < nparts; i++) {
        void *src = i % 2 ? roundtrip(x, parts[i]) : parts[i];
        mpm_err_t err = {.offset = -1, .msg = ""};
        if (src) CU_ASSERT_EQUAL(k->merge(x->opts, parts[0], src, &err), 0);
        if (src) k->partial_free(src);
    }
    void *final = roundtrip(x, parts[0]);
    mpm_buf_t out = {0};
    mpm_err_t err = {.offset = -1, .msg = ""};
    if (final) {
        CU_ASSERT_EQUAL(k->finish(x->opts, final, fmt, &out, &err), 0);
        k->partial_free(final);
    }
    *outlen = out.len;
    if (!out.data) return calloc(1, 1);
    return out.data;
}

static void wc_compare(const char *label, const char *text, size_t len, int cs, long long top,
                       int nparts, uint64_t max_chunk)
{
    kx_t x;
    char top_s[32];
    snprintf(top_s, sizeof top_s, "%lld", top);
    const char *opts[8];
    int no = 0;
    if (cs) {
        opts[no++] = "case-sensitive";
        opts[no++] = NULL;
    }
    if (top > 0) {
        opts[no++] = "top";
        opts[no++] = top_s;
    }
    opts[no] = NULL;
    opts[no + 1] = NULL;
    char *argv[] = {"input.txt"};
    kx_open(&x, "wordcount", no ? opts : NULL, 1, argv);
    CU_ASSERT_EQUAL(x.rc, 0);
    size_t gl, wl;
    char *got = wc_kernel(&x, text, len, nparts, max_chunk, MPM_FMT_TEXT, &gl);
    char *want = tu_ref_wordcount(text, len, cs, top, &wl);
    int same = gl == wl && memcmp(got, want, gl) == 0;
    CU_ASSERT(same);
    if (!same) {
        char what[128];
        snprintf(what, sizeof what, "wordcount [%s] cs %d top %lld parts %d chunk %llu", label, cs,
                 top, nparts, (unsigned long long)max_chunk);
        tu_show_diff(what, got, gl, want, wl);
    }
    free(got);
    free(want);
    kx_close(&x);
}

static void test_wc_check(void)
{
    kx_t x;
    char *two[] = {"a.txt", "b.txt"};
    kx_open(&x, "wordcount", NULL, 2, two);
    CU_ASSERT_EQUAL(x.rc, 0);
    CU_ASSERT_EQUAL(x.in.n, 2);
    if (x.in.n == 2) {
        CU_ASSERT_EQUAL(x.in.v[0].kind, MPM_IN_FILE);
        CU_ASSERT_STRING_EQUAL(x.in.v[1].name, "b.txt");
    }
    kx_close(&x);
    kx_open(&x, "wordcount", NULL, 0, NULL);
    CU_ASSERT_EQUAL(x.rc, 0);
    CU_ASSERT_EQUAL(x.in.n, 1);
    if (x.in.n == 1) CU_ASSERT_EQUAL(x.in.v[0].kind, MPM_IN_STDIN);
    kx_close(&x);
    char *dash2[] = {"-", "a", "-"};
    kx_open(&x, "wordcount", NULL, 3, dash2);
    CU_ASSERT(x.rc < 0);
    CU_ASSERT(x.err.msg[0] != 0);
    kx_close(&x);
    CU_ASSERT_EQUAL(mpm_kernel_find("wordcount")->records, MPM_REC_WORDS);
    const char *const *cols = mpm_kernel_find("wordcount")->columns(NULL);
    CU_ASSERT(cols && cols[0] && cols[1] && !cols[2]);
}

static void test_wc_small_hand(void)
{
    /* Hand-counted from the definition. */
    const char *t = "The cat; the CAT, tHe dog_1 dog_1 x\n\xc3\xa9t\xc3\xa9 \xc3\xa9t\xc3\xa9";
    kx_t x;
    char *argv[] = {"f"};
    kx_open(&x, "wordcount", NULL, 1, argv);
    void *p = x.k->partial_new(x.opts);
    mpm_buf_t out = {0};
    mpm_err_t err = {.offset = -1, .msg = ""};
    CU_ASSERT_EQUAL(map_bytes(&x, p, 0, 0, t, strlen(t), MPM_FMT_TEXT, &out, &err), 0);
    CU_ASSERT_EQUAL(x.k->finish(x.opts, p, MPM_FMT_TEXT, &out, &err), 0);
    const char *want = "3\tthe\n2\tcat\n2\tdog_1\n2\t\xc3\xa9t\xc3\xa9\n1\tx\n";
    CU_ASSERT(buf_eq(&out, want, strlen(want)));
    mpm_buf_free(&out);
    x.k->partial_free(p);
    kx_close(&x);
}

static void test_wc_random(void)
{
    for (int round = 0; round < 6; round++) {
        size_t len = round < 3 ? 3000 : 200000;
        char *t = wc_text(len, round < 3 ? 50 : 3000);
        size_t n = strlen(t);
        uint64_t chunk = round % 2 ? 64 : 9000;
        wc_compare("random", t, n, 0, 0, 2, chunk);
        wc_compare("random", t, n, 1, 0, 2, chunk);
        wc_compare("random", t, n, 0, 0, 5, chunk * 3);
        wc_compare("random", t, n, 0, 1, 3, chunk);
        wc_compare("random", t, n, 1, 7, 2, chunk);
        wc_compare("random", t, n, 0, 1000000, 2, chunk);
        free(t);
    }
    /* Empty and separator-only text: no rows. */
    wc_compare("empty", "", 0, 0, 0, 2, 10);
    wc_compare("separators", " ,.\n\t--\n", 8, 0, 0, 2, 3);
}

/* Every byte value, in every position of a 16-byte vector and in the scalar
 * tail: random bytes of lengths 0..300 (with --binary, NUL too). */
static void test_wc_all_bytes(void)
{
    for (int binary = 0; binary <= 1; binary++) {
        for (int cs = 0; cs <= 1; cs++) {
            const char *opts[6];
            int no = 0;
            if (binary) {
                opts[no++] = "binary";
                opts[no++] = NULL;
            }
            if (cs) {
                opts[no++] = "case-sensitive";
                opts[no++] = NULL;
            }
            opts[no] = NULL;
            char *argv[] = {"f"};
            kx_t x;
            kx_open(&x, "wordcount", opts, 1, argv);
            int bad = 0;
            for (size_t len = 0; len <= 300; len++) {
                char t[301];
                for (size_t i = 0; i < len; i++) {
                    uint64_t r = rnd();
                    /* half the time a byte near a class edge */
                    static const unsigned char edge[] = {'/',  '0',  '9',  ':',  '@',  'A', 'Z',
                                                         '[',  '^',  '_',  '`',  'a',  'z', '{',
                                                         0x7f, 0x80, 0xff, 0xc0, 0xdf, 0xe0};
                    unsigned char c =
                        r & 1 ? edge[(r >> 8) % sizeof edge] : (unsigned char)(r >> 16);
                    if (!binary && c == 0) c = ' ';
                    t[i] = (char)c;
                }
                size_t gl, wl;
                char *got = wc_kernel(&x, t, len, 1, len + 1, MPM_FMT_TEXT, &gl);
                char *want = tu_ref_wordcount(t, len, cs, 0, &wl);
                if (!(gl == wl && memcmp(got, want, gl) == 0)) {
                    if (bad++ < 3) {
                        char what[64];
                        snprintf(what, sizeof what, "all bytes, len %zu, binary %d, cs %d", len,
                                 binary, cs);
                        tu_show_diff(what, got, gl, want, wl);
                    }
                }
                free(got);
                free(want);
            }
            CU_ASSERT_EQUAL(bad, 0);
            kx_close(&x);
        }
    }
}

/* Big chunks (processed internally in blocks): words straddling every
 * offset around 32 KiB and 64 KiB, words longer than a block, words of
 * every length around 8 and 16 bytes. */
static void test_wc_big_chunks(void)
{
    kx_t x;
    char *argv[] = {"f"};
    kx_open(&x, "wordcount", NULL, 1, argv);
    /* one chunk per layout: a run of 'x' padding, then a marker word across the boundary */
    int bad = 0;
    for (size_t edge = 16384; edge <= 65536; edge *= 2) {
        for (int shift = -20; shift <= 20; shift++) {
            size_t pad = (size_t)((long)edge + shift - 3);
            mpm_buf_t b = {0};
            for (size_t i = 0; i + 6 < pad; i += 6)
                mpm_buf_append(&b, "ab Cd ", 6);
            while (b.len < pad)
                mpm_buf_append(&b, " ", 1);
            mpm_buf_append(&b, "Marker_Word_0123456789 tail", 27);
            size_t gl, wl;
            char *got = wc_kernel(&x, b.data, b.len, 1, b.len + 1, MPM_FMT_TEXT, &gl);
            char *want = tu_ref_wordcount(b.data, b.len, 0, 0, &wl);
            if (!(gl == wl && memcmp(got, want, gl) == 0) && bad++ < 3)
                tu_show_diff("block edge", got, gl, want, wl);
            free(got);
            free(want);
            mpm_buf_free(&b);
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    /* words of length 1..40, each many times, several long words */
    mpm_buf_t b = {0};
    for (int rep = 0; rep < 50; rep++)
        for (int l = 1; l <= 40; l++) {
            for (int k = 0; k < l; k++)
                mpm_buf_append(&b, &"abcdefghijKLMNOPQRST_0123456789xyzXYZ\xc3\xa9"[(k + rep) % 39],
                               1);
            mpm_buf_append(&b, rep % 2 ? "\n" : " ", 1);
        }
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 100000 + k; i++)
            mpm_buf_append(&b, "q", 1);
        mpm_buf_append(&b, " ", 1);
    }
    for (int i = 0; i < 100000; i++)
        mpm_buf_append(&b, "q", 1); /* again, and last */
    size_t gl, wl;
    char *want = tu_ref_wordcount(b.data, b.len, 0, 0, &wl);
    uint64_t chunks[] = {b.len + 1, 70000, 4000, 33};
    for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
        char *got = wc_kernel(&x, b.data, b.len, 3, chunks[c], MPM_FMT_TEXT, &gl);
        CU_ASSERT(gl == wl && memcmp(got, want, gl) == 0);
        if (!(gl == wl && memcmp(got, want, gl) == 0)) tu_show_diff("word lengths", got, gl, want, wl);
        free(got);
    }
    free(want);
    /* a 300 KB text as a single chunk */
    char *t = wc_text(300000, 5000);
    size_t n = strlen(t);
    want = tu_ref_wordcount(t, n, 0, 0, &wl);
    char *got = wc_kernel(&x, t, n, 1, n + 1, MPM_FMT_TEXT, &gl);
    CU_ASSERT(gl == wl && memcmp(got, want, gl) == 0);
    free(got);
    free(want);
    free(t);
    mpm_buf_free(&b);
    kx_close(&x);
}

/* Many distinct words: the partials must grow well past their first size. */
static void test_wc_many_distinct(void)
{
    size_t cap = 2000000, n = 0;
    char *t = malloc(cap);
    for (int i = 0; i < 70000; i++) {
        unsigned id = (unsigned)(rnd() % 60000);
        n +=
            (size_t)snprintf(t + n, cap - n, "%s%u%s", id % 3 ? "k" : "K", id, i % 11 ? " " : "\n");
    }
    for (int i = 0; i < 30000; i++)
        n += (size_t)snprintf(t + n, cap - n, "u%d ", i);
    wc_compare("distinct", t, n, 0, 0, 2, 50000);
    wc_compare("distinct", t, n, 1, 0, 3, 7000);
    wc_compare("distinct", t, n, 0, 25, 4, 100000);
    free(t);
}

static void test_wc_case_and_high_bytes(void)
{
    const char *t = "CAF\xc3\x89 caf\xc3\xa9 Caf\xc3\xa9 a\xff"
                    "b A\xff"
                    "B \x80\x81 \x80\x81";
    size_t gl;
    kx_t x;
    char *argv[] = {"f"};
    kx_open(&x, "wordcount", NULL, 1, argv);
    char *got = wc_kernel(&x, t, strlen(t), 2, 4, MPM_FMT_TEXT, &gl);
    /* Only ASCII letters fold; bytes >= 0x80 are word bytes, kept as they are. */
    const char *want = "2\ta\xff"
                       "b\n2\tcaf\xc3\xa9\n2\t\x80\x81\n1\tcaf\xc3\x89\n";
    CU_ASSERT(gl == strlen(want) && memcmp(got, want, gl) == 0);
    if (!(gl == strlen(want) && memcmp(got, want, gl) == 0))
        tu_show_diff("high bytes", got, gl, want, strlen(want));
    free(got);
    kx_close(&x);
    kx_open(&x, "wordcount", NULL, 1, argv);
    set_opt(x.k, x.opts, "case-sensitive", NULL);
    got = wc_kernel(&x, t, strlen(t), 2, 4, MPM_FMT_TEXT, &gl);
    want = "2\t\x80\x81\n1\tA\xff"
           "B\n1\tCAF\xc3\x89\n1\tCaf\xc3\xa9\n1\ta\xff"
           "b\n1\tcaf\xc3\xa9\n";
    CU_ASSERT(gl == strlen(want) && memcmp(got, want, gl) == 0);
    if (!(gl == strlen(want) && memcmp(got, want, gl) == 0))
        tu_show_diff("case-sensitive", got, gl, want, strlen(want));
    free(got);
    kx_close(&x);
}

static void test_wc_nul(void)
{
    kx_t x;
    char *argv[] = {"f"};
    kx_open(&x, "wordcount", NULL, 1, argv);
    static const struct {
        const char *s;
        size_t len;
        int64_t at;
    } cases[] = {
        {"hello wor\0ld", 12, 9}, {"\0abc", 4, 0}, {"abc def\n\0", 9, 8}, {"a\0b\0c", 5, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        void *p = x.k->partial_new(x.opts);
        mpm_buf_t out = {0};
        mpm_err_t err = {.offset = -1, .msg = ""};
        /* The chunk's own offset in the file must not leak into the error offset. */
        int r = map_bytes(&x, p, 3, 1000, cases[i].s, cases[i].len, MPM_FMT_TEXT, &out, &err);
        CU_ASSERT(r < 0);
        CU_ASSERT_EQUAL(err.offset, cases[i].at);
        CU_ASSERT(err.msg[0] != 0);
        mpm_buf_free(&out);
        x.k->partial_free(p);
    }
    kx_close(&x);
    /* --binary: NUL is just a separator. */
    kx_open(&x, "wordcount", NULL, 1, argv);
    CU_ASSERT_EQUAL(set_opt(x.k, x.opts, "binary", NULL), 0);
    void *p = x.k->partial_new(x.opts);
    mpm_buf_t out = {0};
    mpm_err_t err = {.offset = -1, .msg = ""};
    CU_ASSERT_EQUAL(map_bytes(&x, p, 0, 0, "hello wor\0ld\0hello", 18, MPM_FMT_TEXT, &out, &err),
                    0);
    CU_ASSERT_EQUAL(x.k->finish(x.opts, p, MPM_FMT_TEXT, &out, &err), 0);
    CU_ASSERT(buf_eq(&out, "2\thello\n1\tld\n1\twor\n", 19));
    mpm_buf_free(&out);
    x.k->partial_free(p);
    kx_close(&x);
}

static void test_wc_serialize(void)
{
    kx_t x;
    char *argv[] = {"f"};
    kx_open(&x, "wordcount", NULL, 1, argv);
    const mpm_kernel_t *k = x.k;
    char *t = wc_text(20000, 200);
    void *p = k->partial_new(x.opts);
    mpm_buf_t rows = {0};
    mpm_err_t err = {.offset = -1, .msg = ""};
    CU_ASSERT_EQUAL(map_bytes(&x, p, 0, 0, t, strlen(t), MPM_FMT_TEXT, &rows, &err), 0);
    mpm_buf_t b = {0};
    CU_ASSERT_EQUAL(k->serialize(x.opts, p, &b), 0);
    /* Whole: accepted, and gives the same final rows. */
    void *q = k->deserialize(x.opts, b.data, b.len, &err);
    CU_ASSERT_PTR_NOT_NULL(q);
    mpm_buf_t o1 = {0}, o2 = {0};
    CU_ASSERT_EQUAL(k->finish(x.opts, p, MPM_FMT_TEXT, &o1, &err), 0);
    if (q) CU_ASSERT_EQUAL(k->finish(x.opts, q, MPM_FMT_TEXT, &o2, &err), 0);
    CU_ASSERT(o1.len > 0 && buf_eq(&o2, o1.data, o1.len));
    if (q) k->partial_free(q);
    /* Truncated or padded: refused with a message, never a crash. */
    size_t cuts[] = {0, 1, 7, 8, 9, 12, b.len / 2, b.len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        mpm_err_t e2 = {.offset = -1, .msg = ""};
        void *r = k->deserialize(x.opts, b.data, cuts[i], &e2);
        CU_ASSERT_PTR_NULL(r);
        CU_ASSERT(e2.msg[0] != 0);
        if (r) k->partial_free(r);
    }
    mpm_buf_append(&b, "x", 1);
    mpm_err_t e3 = {.offset = -1, .msg = ""};
    void *r = k->deserialize(x.opts, b.data, b.len, &e3);
    CU_ASSERT_PTR_NULL(r);
    if (r) k->partial_free(r);
    /* An entry count far larger than the data. */
    uint64_t huge = UINT64_MAX;
    r = k->deserialize(x.opts, &huge, sizeof huge, &e3);
    CU_ASSERT_PTR_NULL(r);
    if (r) k->partial_free(r);
    /* An empty partial: round trip and finish give nothing. */
    void *e = k->partial_new(x.opts);
    e = roundtrip(&x, e);
    mpm_buf_t eo = {0};
    if (e) {
        CU_ASSERT_EQUAL(k->finish(x.opts, e, MPM_FMT_TEXT, &eo, &err), 0);
        CU_ASSERT_EQUAL(eo.len, 0);
        k->partial_free(e);
    }
    mpm_buf_free(&eo);
    mpm_buf_free(&b);
    mpm_buf_free(&o1);
    mpm_buf_free(&o2);
    mpm_buf_free(&rows);
    k->partial_free(p);
    free(t);
    kx_close(&x);
}

/* The option table through the real command-line parser. */
static void test_wc_cli_options(void)
{
    mpm_cli_t cli;
    char *a1[] = {"mpimap", "wordcount", "-k", "3", "--case-sensitive", "x.txt"};
    CU_ASSERT_EQUAL_FATAL(mpm__cli_parse(6, a1, 1, &cli), MPM_CLI_RUN);
    kx_t x = {.k = cli.kernel, .opts = cli.opts};
    const char *t = "b B b a A a a c C c c c";
    size_t gl, wl;
    char *got = wc_kernel(&x, t, strlen(t), 2, 3, MPM_FMT_TEXT, &gl);
    char *want = tu_ref_wordcount(t, strlen(t), 1, 3, &wl);
    CU_ASSERT(gl == wl && memcmp(got, want, gl) == 0);
    CU_ASSERT(gl > 0 && memcmp(got, "4\tc\n", 4) == 0);
    free(got);
    free(want);
    mpm__cli_free(&cli);
    char *a2[] = {"mpimap", "wordcount", "--top", "0", "x.txt"};
    CU_ASSERT_EQUAL(mpm__cli_parse(5, a2, 1, &cli), MPM_CLI_USAGE);
    mpm__cli_free(&cli);
    char *a3[] = {"mpimap", "wordcount", "--top=abc", "x.txt"};
    CU_ASSERT_EQUAL(mpm__cli_parse(4, a3, 1, &cli), MPM_CLI_USAGE);
    mpm__cli_free(&cli);
    char *a4[] = {"mpimap", "wordcount", "--no-such-option", "x.txt"};
    CU_ASSERT_EQUAL(mpm__cli_parse(4, a4, 1, &cli), MPM_CLI_USAGE);
    mpm__cli_free(&cli);
}

/* Formats of the final rows. */
static void test_wc_formats(void)
{
    kx_t x;
    char *argv[] = {"f"};
    kx_open(&x, "wordcount", NULL, 1, argv);
    const char *t = "b a b \"q\" caf\xc3\xa9";
    void *p = x.k->partial_new(x.opts);
    mpm_buf_t out = {0};
    mpm_err_t err = {.offset = -1, .msg = ""};
    CU_ASSERT_EQUAL(map_bytes(&x, p, 0, 0, t, strlen(t), MPM_FMT_JSON, &out, &err), 0);
    CU_ASSERT_EQUAL(x.k->finish(x.opts, p, MPM_FMT_JSON, &out, &err), 0);
    const char *want = "{\"count\":2,\"word\":\"b\"}\n{\"count\":1,\"word\":\"a\"}\n"
                       "{\"count\":1,\"word\":\"caf\xc3\xa9\"}\n{\"count\":1,\"word\":\"q\"}\n";
    CU_ASSERT(buf_eq(&out, want, strlen(want)));
    out.len = 0;
    CU_ASSERT_EQUAL(x.k->finish(x.opts, p, MPM_FMT_TSV, &out, &err), 0);
    want = "2\tb\n1\ta\n1\tcaf\xc3\xa9\n1\tq\n";
    CU_ASSERT(buf_eq(&out, want, strlen(want)));
    mpm_buf_free(&out);
    x.k->partial_free(p);
    kx_close(&x);
}

/* ---- primes --------------------------------------------------------------------- */

static char *primes_final(const kx_t *x, void *p, mpm_format_t fmt)
{
    mpm_buf_t out = {0};
    mpm_err_t err = {.offset = -1, .msg = ""};
    CU_ASSERT_EQUAL(x->k->finish(x->opts, p, fmt, &out, &err), 0);
    mpm_buf_append(&out, "", 1);
    return out.data;
}

static void primes_open(kx_t *x, uint64_t a, uint64_t b, int list)
{
    char r[64];
    snprintf(r, sizeof r, "%llu:%llu", (unsigned long long)a, (unsigned long long)b);
    char *argv[] = {r};
    static const char *const list_opt[] = {"list", NULL, NULL};
    kx_open(x, "primes", list ? list_opt : NULL, 1, argv);
    CU_ASSERT_EQUAL(x->rc, 0);
}

static void test_primes_check(void)
{
    kx_t x;
    primes_open(&x, 3, 17, 0);
    CU_ASSERT_EQUAL(x.in.n, 1);
    if (x.in.n == 1) {
        CU_ASSERT_EQUAL(x.in.v[0].kind, MPM_IN_RANGE);
        CU_ASSERT_EQUAL(x.in.v[0].lo, 3);
        CU_ASSERT_EQUAL(x.in.v[0].hi, 18); /* B is included */
    }
    kx_close(&x);
    static const char *const bad[] = {"10:5",
                                      "5-10",
                                      "a:b",
                                      "",
                                      "1:2:3",
                                      ":5",
                                      "5:",
                                      "-1:5",
                                      "1:-5",
                                      " 1:5",
                                      "1:5 ",
                                      "0x10:20",
                                      "1.5:3",
                                      "3:4x",
                                      "1:1000000000000001",
                                      "99999999999999999999:1",
                                      "1:99999999999999999999",
                                      ":",
                                      NULL};
    for (int i = 0; bad[i]; i++) {
        char *argv[] = {(char *)bad[i]};
        kx_open(&x, "primes", NULL, 1, argv);
        CU_ASSERT(x.rc < 0);
        CU_ASSERT(x.err.msg[0] != 0);
        CU_ASSERT_EQUAL(x.in.n, 0);
        if (x.rc >= 0) fprintf(stderr, "\n  primes accepted '%s'\n", bad[i]);
        kx_close(&x);
    }
    kx_open(&x, "primes", NULL, 0, NULL);
    CU_ASSERT(x.rc < 0);
    kx_close(&x);
    char *two[] = {"1:2", "3:4"};
    kx_open(&x, "primes", NULL, 2, two);
    CU_ASSERT(x.rc < 0);
    kx_close(&x);
    static const char *const good[] = {"0:0", "0:1", "2:2", "7:7", "0:2", "10:10", NULL};
    for (int i = 0; good[i]; i++) {
        char *argv[] = {(char *)good[i]};
        kx_open(&x, "primes", NULL, 1, argv);
        CU_ASSERT_EQUAL(x.rc, 0);
        kx_close(&x);
    }
}

/* Every small range A:B, as one chunk. */
static void test_primes_small_ranges(void)
{
    int bad = 0;
    for (uint64_t a = 0; a <= 70; a++) {
        for (uint64_t b = a; b <= 130; b += (b < 40 ? 1 : 7)) {
            kx_t x;
            primes_open(&x, a, b, 0);
            void *p = x.k->partial_new(x.opts);
            mpm_buf_t out = {0};
            mpm_err_t err = {.offset = -1, .msg = ""};
            CU_ASSERT_EQUAL(map_range(&x, p, x.in.v[0].lo, x.in.v[0].hi, MPM_FMT_TEXT, &out, &err),
                            0);
            CU_ASSERT_EQUAL(out.len, 0);
            char *got = primes_final(&x, p, MPM_FMT_TEXT);
            char want[32];
            snprintf(want, sizeof want, "%llu\n", (unsigned long long)count_primes_td(a, b + 1));
            if (strcmp(got, want) != 0) {
                if (bad++ < 10)
                    fprintf(stderr, "\n  primes %llu:%llu: got %s want %s", (unsigned long long)a,
                            (unsigned long long)b, got, want);
            }
            free(got);
            mpm_buf_free(&out);
            x.k->partial_free(p);
            kx_close(&x);
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
}

/* Every small chunk [lo, hi) of a larger range (chunk boundaries anywhere). */
static void test_primes_chunks(void)
{
    kx_t x;
    primes_open(&x, 0, 5000, 0);
    int bad = 0;
    for (uint64_t lo = 0; lo < 400; lo++) {
        for (uint64_t hi = lo; hi <= lo + 45; hi += 1 + (hi % 3)) {
            void *p = x.k->partial_new(x.opts);
            mpm_err_t err = {.offset = -1, .msg = ""};
            CU_ASSERT_EQUAL(map_range(&x, p, lo, hi, MPM_FMT_TEXT, NULL, &err), 0);
            char *got = primes_final(&x, p, MPM_FMT_TEXT);
            char want[32];
            snprintf(want, sizeof want, "%llu\n", (unsigned long long)count_primes_td(lo, hi));
            if (strcmp(got, want) != 0 && bad++ < 10)
                fprintf(stderr, "\n  primes chunk [%llu,%llu): got %s want %s",
                        (unsigned long long)lo, (unsigned long long)hi, got, want);
            free(got);
            x.k->partial_free(p);
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    kx_close(&x);
}

/* A range mapped as random sub-ranges over three partials, merged through a
 * serialise round trip; chunks big enough to cross the sieve's segments. */
static void primes_split_run(uint64_t a, uint64_t b, uint64_t max_chunk)
{
    kx_t x;
    primes_open(&x, a, b, 0);
    void *parts[3];
    for (int i = 0; i < 3; i++)
        parts[i] = x.k->partial_new(x.opts);
    uint64_t lo = x.in.v[0].lo, hi = x.in.v[0].hi;
    int i = 0;
    while (lo < hi) {
        uint64_t n = 1 + rnd() % max_chunk;
        uint64_t e = hi - lo > n ? lo + n : hi;
        mpm_err_t err = {.offset = -1, .msg = ""};
        CU_ASSERT_EQUAL(map_range(&x, parts[i++ % 3], lo, e, MPM_FMT_TEXT, NULL, &err), 0);
        lo = e;
    }
    for (int k = 1; k < 3; k++) {
        void *q = roundtrip(&x, parts[k]);
        mpm_err_t err = {.offset = -1, .msg = ""};
        if (q) {
            CU_ASSERT_EQUAL(x.k->merge(x.opts, parts[0], q, &err), 0);
            x.k->partial_free(q);
        }
    }
    char *got = primes_final(&x, parts[0], MPM_FMT_TEXT);
    char want[32];
    snprintf(want, sizeof want, "%llu\n", (unsigned long long)count_primes_td(a, b + 1));
    CU_ASSERT_STRING_EQUAL(got, want);
    if (strcmp(got, want))
        fprintf(stderr, "\n  primes %llu:%llu chunks<=%llu: got %s want %s", (unsigned long long)a,
                (unsigned long long)b, (unsigned long long)max_chunk, got, want);
    free(got);
    x.k->partial_free(parts[0]);
    kx_close(&x);
}

static void test_primes_merged(void)
{
    primes_split_run(0, 100000, 777);
    primes_split_run(1, 100001, 5000);
    primes_split_run(0, 1200000, 1200001); /* one chunk over several sieve segments */
    primes_split_run(3, 1100000, 400000);
    primes_split_run(524280, 524300, 3);
    primes_split_run(1000000000000ULL, 1000000000000ULL + 3000, 1000);
    primes_split_run(999999999999880ULL, 1000000000000000ULL, 50); /* the upper limit */
}

static void test_primes_list(void)
{
    for (int fmt = 0; fmt <= 2; fmt++) {
        kx_t x;
        primes_open(&x, 0, 3000, 1);
        CU_ASSERT_STRING_EQUAL(x.k->columns(x.opts)[0], "prime");
        void *p = x.k->partial_new(x.opts);
        mpm_buf_t out = {0};
        uint64_t lo = x.in.v[0].lo, hi = x.in.v[0].hi;
        while (lo < hi) {
            uint64_t e = lo + 1 + rnd() % 300;
            if (e > hi) e = hi;
            mpm_err_t err = {.offset = -1, .msg = ""};
            CU_ASSERT_EQUAL(map_range(&x, p, lo, e, (mpm_format_t)fmt, &out, &err), 0);
            lo = e;
        }
        mpm_buf_t want = {0};
        for (uint64_t n = 0; n <= 3000; n++)
            if (tu_is_prime(n)) {
                if (fmt == MPM_FMT_JSON)
                    mpm_buf_printf(&want, "{\"prime\":%llu}\n", (unsigned long long)n);
                else
                    mpm_buf_printf(&want, "%llu\n", (unsigned long long)n);
            }
        CU_ASSERT(buf_eq(&out, want.data, want.len));
        /* With --list, finish writes nothing more. */
        char *fin = primes_final(&x, p, (mpm_format_t)fmt);
        CU_ASSERT_STRING_EQUAL(fin, "");
        free(fin);
        mpm_buf_free(&want);
        mpm_buf_free(&out);
        x.k->partial_free(p);
        kx_close(&x);
    }
    /* Count in JSON and TSV. */
    kx_t x;
    primes_open(&x, 0, 100, 0);
    CU_ASSERT_STRING_EQUAL(x.k->columns(x.opts)[0], "count");
    void *p = x.k->partial_new(x.opts);
    mpm_err_t err = {.offset = -1, .msg = ""};
    map_range(&x, p, 0, 101, MPM_FMT_JSON, NULL, &err);
    char *j = primes_final(&x, p, MPM_FMT_JSON);
    CU_ASSERT_STRING_EQUAL(j, "{\"count\":25}\n");
    free(j);
    x.k->partial_free(p);
    kx_close(&x);
}

/* ---- fib ------------------------------------------------------------------------ */

static void fib_open(kx_t *x, int fast, int argc, char **argv)
{
    static const char *const fast_opt[] = {"fast", NULL, NULL};
    kx_open(x, "fib", fast ? fast_opt : NULL, argc, argv);
}

static void test_fib_check(void)
{
    kx_t x;
    char *args[] = {"0", "1", "10", "93"};
    fib_open(&x, 1, 4, args);
    CU_ASSERT_EQUAL(x.rc, 0);
    CU_ASSERT_EQUAL(x.in.n, 1);
    if (x.in.n == 1) {
        CU_ASSERT_EQUAL(x.in.v[0].kind, MPM_IN_MEMORY);
        CU_ASSERT(x.in.v[0].len == 10 && memcmp(x.in.v[0].data, "0\n1\n10\n93\n", 10) == 0);
    }
    kx_close(&x);
    static const char *const bad[] = {"94",   "-1", "abc", "12abc", "",
                                      " 5",   "5 ", "1e3", "100",   "99999999999999999999",
                                      "-0x1", NULL};
    for (int i = 0; bad[i]; i++) {
        char *argv[] = {"5", (char *)bad[i], "7"};
        fib_open(&x, 0, 3, argv);
        CU_ASSERT(x.rc < 0);
        CU_ASSERT(x.err.msg[0] != 0);
        if (x.rc >= 0) fprintf(stderr, "\n  fib accepted '%s'\n", bad[i]);
        kx_close(&x);
    }
    fib_open(&x, 0, 0, NULL); /* nothing to do */
    CU_ASSERT(x.rc < 0);
    kx_close(&x);
    /* --file FILE instead of arguments; not both. */
    static const char *const file_opt[] = {"file", "items.txt", NULL, NULL};
    kx_open(&x, "fib", file_opt, 0, NULL);
    CU_ASSERT_EQUAL(x.rc, 0);
    CU_ASSERT(x.in.n == 1 && x.in.v[0].kind == MPM_IN_FILE && !strcmp(x.in.v[0].name, "items.txt"));
    kx_close(&x);
    char *one[] = {"3"};
    kx_open(&x, "fib", file_opt, 1, one);
    CU_ASSERT(x.rc < 0);
    kx_close(&x);
}

static void fib_expect(mpm_buf_t *want, unsigned n, mpm_format_t fmt)
{
    if (fmt == MPM_FMT_JSON)
        mpm_buf_printf(want, "{\"n\":%u,\"fib\":%llu}\n", n, (unsigned long long)tu_fib_iter(n));
    else
        mpm_buf_printf(want, "%u\t%llu\n", n, (unsigned long long)tu_fib_iter(n));
}

static void test_fib_map(void)
{
    kx_t x;
    char *args[] = {"0", "1", "10", "93"};
    fib_open(&x, 1, 4, args);
    const char *items = "0\n1\n10\n93\n";
    for (int fmt = 0; fmt <= 2; fmt++) {
        mpm_buf_t out = {0}, want = {0};
        mpm_err_t err = {.offset = -1, .msg = ""};
        CU_ASSERT_EQUAL(
            map_bytes(&x, NULL, 0, 0, items, strlen(items), (mpm_format_t)fmt, &out, &err), 0);
        fib_expect(&want, 0, (mpm_format_t)fmt);
        fib_expect(&want, 1, (mpm_format_t)fmt);
        fib_expect(&want, 10, (mpm_format_t)fmt);
        fib_expect(&want, 93, (mpm_format_t)fmt);
        CU_ASSERT(buf_eq(&out, want.data, want.len));
        mpm_buf_free(&out);
        mpm_buf_free(&want);
    }
    /* Every n in 0..93, one chunk per line as the engine sends them. */
    mpm_buf_t out = {0}, want = {0};
    for (unsigned n = 0; n <= 93; n++) {
        char line[16];
        int l = snprintf(line, sizeof line, "%u\n", n);
        mpm_err_t err = {.offset = -1, .msg = ""};
        CU_ASSERT_EQUAL(map_bytes(&x, NULL, n, 0, line, (size_t)l, MPM_FMT_TEXT, &out, &err), 0);
        fib_expect(&want, n, MPM_FMT_TEXT);
    }
    CU_ASSERT(buf_eq(&out, want.data, want.len));
    CU_ASSERT(strstr(out.data ? out.data : "", "93\t12200160415121876738\n") != NULL);
    mpm_buf_free(&out);
    mpm_buf_free(&want);
    /* Blank lines, comments, CRLF and surrounding blanks; no final newline. */
    const char *messy = "# header\n\n  7 \r\n\t12\n#99\n20";
    mpm_err_t err = {.offset = -1, .msg = ""};
    CU_ASSERT_EQUAL(map_bytes(&x, NULL, 0, 0, messy, strlen(messy), MPM_FMT_TEXT, &out, &err), 0);
    fib_expect(&want, 7, MPM_FMT_TEXT);
    fib_expect(&want, 12, MPM_FMT_TEXT);
    fib_expect(&want, 20, MPM_FMT_TEXT);
    CU_ASSERT(buf_eq(&out, want.data, want.len));
    mpm_buf_free(&out);
    mpm_buf_free(&want);
    kx_close(&x);

    /* The naive recursion (default) gives the same numbers. */
    char *small[] = {"0"};
    fib_open(&x, 0, 1, small);
    for (unsigned n = 0; n <= 27; n++) {
        char line[16];
        int l = snprintf(line, sizeof line, "%u\n", n);
        CU_ASSERT_EQUAL(map_bytes(&x, NULL, 0, 0, line, (size_t)l, MPM_FMT_TEXT, &out, &err), 0);
        fib_expect(&want, n, MPM_FMT_TEXT);
    }
    CU_ASSERT(buf_eq(&out, want.data, want.len));
    mpm_buf_free(&out);
    mpm_buf_free(&want);
    kx_close(&x);
}

static void test_fib_errors(void)
{
    kx_t x;
    char *args[] = {"1"};
    fib_open(&x, 1, 1, args);
    static const struct {
        const char *data;
        int64_t line_start;
    } cases[] = {
        {"94\n", 0},    {"0\n1\n94\n", 4},     {"-1\n", 0},
        {"5\n-1\n", 2}, {"abc\n", 0},          {"1\n2\n3\nabc", 6},
        {"12abc\n", 0}, {"10\n12abc\n3\n", 3}, {"1\n99999999999999999999\n", 2},
        {"+\n", 0},     {"1\n2 3\n", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        mpm_buf_t out = {0};
        mpm_err_t err = {.offset = -1, .msg = ""};
        int r = map_bytes(&x, NULL, 0, 500, cases[i].data, strlen(cases[i].data), MPM_FMT_TEXT,
                          &out, &err);
        CU_ASSERT(r < 0);
        CU_ASSERT_EQUAL(err.offset, cases[i].line_start);
        CU_ASSERT(err.msg[0] != 0);
        if (r >= 0 || err.offset != cases[i].line_start)
            fprintf(stderr, "\n  fib case %zu: r %d offset %lld\n", i, r, (long long)err.offset);
        mpm_buf_free(&out);
    }
    kx_close(&x);
}

/* ---- the test kernel -------------------------------------------------------------- */

static void test_test_kernel(void)
{
    kx_t x;
    char *argv[] = {"f"};
    kx_open(&x, "test", NULL, 1, argv);
    CU_ASSERT_EQUAL(x.rc, 0);
    void *p = x.k->partial_new(x.opts);
    mpm_buf_t out = {0};
    mpm_err_t err = {.offset = -1, .msg = ""};
    const char *t = "a b\n\nlast";
    CU_ASSERT_EQUAL(map_bytes(&x, p, 0, 0, t, strlen(t), MPM_FMT_TEXT, &out, &err), 0);
    CU_ASSERT(buf_eq(&out, "a b\n\nlast\n", 10));
    mpm_buf_free(&out);
    x.k->partial_free(p);
    kx_close(&x);
    static const char *const fail_opt[] = {"fail-on", "BOOM", NULL, NULL};
    kx_open(&x, "test", fail_opt, 1, argv);
    p = x.k->partial_new(x.opts);
    const char *t2 = "ok\nBOOMx\nBOOM\n";
    CU_ASSERT(map_bytes(&x, p, 0, 0, t2, strlen(t2), MPM_FMT_TEXT, &out, &err) < 0);
    CU_ASSERT_EQUAL(err.offset, 9);
    mpm_buf_free(&out);
    x.k->partial_free(p);
    kx_close(&x);
}

/* ---- mpm_emit_row ------------------------------------------------------------------ */

static int emit(mpm_buf_t *b, mpm_format_t fmt, const char *const *cols, const char *s, size_t n,
                int numeric)
{
    mpm_val_t v = {s, n, numeric};
    return mpm_emit_row(b, fmt, cols, &v, 1);
}

static void test_emit_text_tsv(void)
{
    static const char *const cols[] = {"a", "b", "c", NULL};
    mpm_val_t v[3] = {{"x\ty", 3, 0}, {"back\\slash\nnl\rcr", 16, 0}, {"12", 2, 1}};
    mpm_buf_t b = {0};
    CU_ASSERT_EQUAL(mpm_emit_row(&b, MPM_FMT_TEXT, cols, v, 3), 0);
    const char *want = "x\ty\tback\\slash\nnl\rcr\t12\n";
    CU_ASSERT(buf_eq(&b, want, strlen(want)));
    b.len = 0;
    CU_ASSERT_EQUAL(mpm_emit_row(&b, MPM_FMT_TSV, cols, v, 3), 0);
    want = "x\\ty\tback\\\\slash\\nnl\\rcr\t12\n";
    CU_ASSERT(buf_eq(&b, want, strlen(want)));
    /* Appends after what is there; empty values; values with NUL bytes. */
    b.len = 0;
    mpm_buf_append(&b, "keep", 4);
    mpm_val_t e[2] = {{"", 0, 0}, {"a\0b", 3, 0}};
    CU_ASSERT_EQUAL(mpm_emit_row(&b, MPM_FMT_TSV, cols, e, 2), 0);
    CU_ASSERT(buf_eq(&b, "keep\ta\0b\n", 9));
    mpm_buf_free(&b);

    /* Property: no raw TAB/LF/CR inside a TSV field, and unescaping gives the bytes back. */
    for (int round = 0; round < 2000; round++) {
        char s[64];
        size_t n = rnd() % sizeof s;
        static const char pick[] = "\t\n\r\\abc\x01 \xff";
        for (size_t i = 0; i < n; i++)
            s[i] = pick[rnd() % (sizeof pick - 1)];
        mpm_buf_t o = {0};
        CU_ASSERT_EQUAL(emit(&o, MPM_FMT_TSV, cols, s, n, 0), 0);
        int ok = o.len >= 1 && o.data[o.len - 1] == '\n';
        char d[256];
        size_t dl = 0;
        for (size_t i = 0; ok && i + 1 < o.len; i++) {
            char c = o.data[i];
            if (c == '\t' || c == '\n' || c == '\r') ok = 0;
            if (c != '\\') {
                d[dl++] = c;
                continue;
            }
            if (i + 2 >= o.len) {
                ok = 0;
                break;
            }
            char e2 = o.data[++i];
            d[dl++] = e2 == 't'    ? '\t'
                      : e2 == 'n'  ? '\n'
                      : e2 == 'r'  ? '\r'
                      : e2 == '\\' ? '\\'
                                   : 0;
            if (!strchr("tnr\\", e2)) ok = 0;
        }
        CU_ASSERT(ok && dl == n && memcmp(d, s, n) == 0);
        mpm_buf_free(&o);
    }
}

/* A strict UTF-8 validator (RFC 3629), written here. */
static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if ((c & 0xE0) == 0xC0) {
            k = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            k = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            k = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + k > n) return 0;
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000)) return 0;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += k;
    }
    return 1;
}

/* Decodes a JSON string starting at *p (at the opening quote) into d:
 * \u00XX gives byte XX, other \u escapes their UTF-8. Returns 0 or -1. */
static int json_string(const char **pp, const char *end, char *d, size_t *dl)
{
    const char *p = *pp;
    *dl = 0;
    if (p >= end || *p != '"') return -1;
    p++;
    while (p < end && *p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20) return -1;
        if (c != '\\') {
            d[(*dl)++] = (char)c;
            p++;
            continue;
        }
        if (++p >= end) return -1;
        switch (*p) {
        case '"':
            d[(*dl)++] = '"';
            break;
        case '\\':
            d[(*dl)++] = '\\';
            break;
        case '/':
            d[(*dl)++] = '/';
            break;
        case 'b':
            d[(*dl)++] = '\b';
            break;
        case 'f':
            d[(*dl)++] = '\f';
            break;
        case 'n':
            d[(*dl)++] = '\n';
            break;
        case 'r':
            d[(*dl)++] = '\r';
            break;
        case 't':
            d[(*dl)++] = '\t';
            break;
        case 'u': {
            if (end - p < 5) return -1;
            unsigned v;
            if (tu_hex4(p + 1, &v) < 0) return -1;
            if (v >= 0x100) return -1; /* not produced for these inputs */
            d[(*dl)++] = (char)v;
            p += 4;
            break;
        }
        default:
            return -1;
        }
        p++;
    }
    if (p >= end) return -1;
    *pp = p + 1;
    return 0;
}

static void test_emit_json(void)
{
    static const char *const cols[] = {"n", "s", NULL};
    const char *say = "say \"hi\" \\ /";
    mpm_val_t v[2] = {{"12", 2, 1}, {say, strlen(say), 0}};
    mpm_buf_t b = {0};
    CU_ASSERT_EQUAL(mpm_emit_row(&b, MPM_FMT_JSON, cols, v, 2), 0);
    const char *want = "{\"n\":12,\"s\":\"say \\\"hi\\\" \\\\ /\"}\n";
    CU_ASSERT(buf_eq(&b, want, strlen(want)));
    /* Control bytes and DEL escaped; tab and newline never raw. */
    b.len = 0;
    CU_ASSERT_EQUAL(emit(&b, MPM_FMT_JSON, cols, "\x01\t\n\x1f\x7f", 5, 0), 0);
    CU_ASSERT(b.len > 0 && memchr(b.data, '\t', b.len) == NULL);
    CU_ASSERT(b.len > 0 && memchr(b.data, '\n', b.len - 1) == NULL);
    /* Valid UTF-8 passes unchanged; invalid bytes become escapes. */
    b.len = 0;
    CU_ASSERT_EQUAL(emit(&b, MPM_FMT_JSON, cols, "caf\xc3\xa9 \xf0\x9f\x98\x80", 10, 0), 0);
    want = "{\"n\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}\n";
    CU_ASSERT(buf_eq(&b, want, strlen(want)));
    static const char *const invalid[] = {"\xff",     "\xc3",         "a\xc3",
                                          "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                          "\x80",     "\xe2\x82",     "\xf8\x88\x80\x80\x80",
                                          NULL};
    for (int i = 0; invalid[i]; i++) {
        b.len = 0;
        size_t n = strlen(invalid[i]);
        CU_ASSERT_EQUAL(emit(&b, MPM_FMT_JSON, cols, invalid[i], n, 0), 0);
        CU_ASSERT(utf8_valid((const unsigned char *)b.data, b.len));
        const char *p = b.data + strlen("{\"n\":");
        char d[64];
        size_t dl;
        CU_ASSERT(b.len > 6 && json_string(&p, b.data + b.len, d, &dl) == 0 && dl == n &&
                  memcmp(d, invalid[i], n) == 0);
    }
    /* No column names: a default key; names are escaped too. */
    b.len = 0;
    CU_ASSERT_EQUAL(emit(&b, MPM_FMT_JSON, NULL, "1", 1, 1), 0);
    CU_ASSERT(b.len > 4 && b.data[0] == '{' && b.data[1] == '"');
    static const char *const qcols[] = {"a\"b", NULL};
    b.len = 0;
    CU_ASSERT_EQUAL(emit(&b, MPM_FMT_JSON, qcols, "1", 1, 1), 0);
    CU_ASSERT(buf_eq(&b, "{\"a\\\"b\":1}\n", 11));
    mpm_buf_free(&b);

    /* Property: any bytes give one line of valid UTF-8 holding a valid JSON
     * string that decodes back to the bytes. */
    for (int round = 0; round < 5000; round++) {
        char s[48];
        size_t n = rnd() % sizeof s;
        for (size_t i = 0; i < n; i++) {
            uint64_t r = rnd();
            s[i] = (char)(r % 4 == 0   ? (r >> 8) & 0x1f
                          : r % 4 == 1 ? 0x80 | ((r >> 8) & 0x7f)
                                       : (r >> 8) & 0xff);
        }
        /* some well-formed sequences too */
        if (n > 6 && round % 3 == 0) memcpy(s + n / 2 - 3, "\xe2\x82\xac\xc3\xa9", 5);
        mpm_buf_t o = {0};
        CU_ASSERT_EQUAL(emit(&o, MPM_FMT_JSON, cols, s, n, 0), 0);
        int ok = utf8_valid((const unsigned char *)o.data, o.len) && o.len >= 8 &&
                 memcmp(o.data, "{\"n\":", 5) == 0 && o.data[o.len - 1] == '\n' &&
                 o.data[o.len - 2] == '}' && memchr(o.data, '\n', o.len - 1) == NULL;
        const char *p = o.data + 5;
        char d[512];
        size_t dl = 0;
        ok = ok && json_string(&p, o.data + o.len, d, &dl) == 0 && p == o.data + o.len - 2;
        ok = ok && dl == n && memcmp(d, s, n) == 0;
        CU_ASSERT(ok);
        mpm_buf_free(&o);
    }
}

/* ---- number parsing --------------------------------------------------------------- */

static void test_parse_size(void)
{
    static const struct {
        const char *s;
        uint64_t v;
    } ok[] = {
        {"0", 0},
        {"1", 1},
        {"123", 123},
        {"64K", 64ULL << 10},
        {"64k", 64ULL << 10},
        {"64KiB", 64ULL << 10},
        {"64KB", 64ULL << 10},
        {"4MiB", 4ULL << 20},
        {"4m", 4ULL << 20},
        {"1g", 1ULL << 30},
        {"1G", 1ULL << 30},
        {"2T", 2ULL << 40},
        {"16777215T", 16777215ULL << 40},
        {"18446744073709551615", UINT64_MAX},
        {"7b", 7},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        uint64_t v = 12345;
        int r = mpm__parse_size(ok[i].s, &v);
        CU_ASSERT_EQUAL(r, 0);
        CU_ASSERT_EQUAL(v, ok[i].v);
        if (r != 0 || v != ok[i].v)
            fprintf(stderr, "\n  parse_size('%s') = %d, %llu\n", ok[i].s, r, (unsigned long long)v);
    }
    static const char *const bad[] = {
        "",     "12X", "99999999999T", "16777216T", "18446744073709551616",
        "K",    "-1",  " 1",           "1 ",        "1.5K",
        "1KBx", "1KK", "0x10",         "+5",        "1Q",
        "10iB", NULL};
    for (int i = 0; bad[i]; i++) {
        uint64_t v = 12345;
        int r = mpm__parse_size(bad[i], &v);
        CU_ASSERT_EQUAL(r, -1);
        CU_ASSERT_EQUAL(v, 12345); /* untouched on error */
        if (r != -1)
            fprintf(stderr, "\n  parse_size accepted '%s' -> %llu\n", bad[i],
                    (unsigned long long)v);
    }
    uint64_t v;
    CU_ASSERT_EQUAL(mpm__parse_size(NULL, &v), -1);
}

static void test_parse_ll(void)
{
    static const struct {
        const char *s;
        long long v;
    } ok[] = {{"0", 0},
              {"-5", -5},
              {"+7", 7},
              {"42", 42},
              {"9223372036854775807", INT64_MAX},
              {"-9223372036854775808", INT64_MIN},
              {"007", 7}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        long long v = 99;
        CU_ASSERT_EQUAL(mpm__parse_ll(ok[i].s, &v), 0);
        CU_ASSERT_EQUAL(v, ok[i].v);
    }
    static const char *const bad[] = {
        "",    " 1",  "1 ", "12abc", "abc", "9223372036854775808", "-9223372036854775809",
        "1.0", "--1", "-",  NULL};
    for (int i = 0; bad[i]; i++) {
        long long v = 99;
        CU_ASSERT_EQUAL(mpm__parse_ll(bad[i], &v), -1);
        CU_ASSERT_EQUAL(v, 99);
    }
    long long v;
    CU_ASSERT_EQUAL(mpm__parse_ll(NULL, &v), -1);
    uint64_t u = 5;
    CU_ASSERT_EQUAL(mpm__parse_u64("18446744073709551615", &u), 0);
    CU_ASSERT_EQUAL(u, UINT64_MAX);
    CU_ASSERT_EQUAL(mpm__parse_u64("18446744073709551616", &u), -1);
    CU_ASSERT_EQUAL(mpm__parse_u64("-1", &u), -1);
    CU_ASSERT_EQUAL(mpm__parse_u64("", &u), -1);
    CU_ASSERT_EQUAL(mpm__parse_u64("12x", &u), -1);
}

static void test_buf_err_quote(void)
{
    mpm_buf_t b = {0};
    for (int i = 0; i < 1000; i++)
        CU_ASSERT_EQUAL(mpm_buf_printf(&b, "%d,", i), 0);
    size_t n = 0;
    char want[8];
    for (int i = 0; i < 1000; i++) {
        int l = snprintf(want, sizeof want, "%d,", i);
        CU_ASSERT(n + (size_t)l <= b.len && memcmp(b.data + n, want, (size_t)l) == 0);
        n += (size_t)l;
    }
    CU_ASSERT_EQUAL(n, b.len);
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    b.len = 0;
    CU_ASSERT_EQUAL(mpm_buf_printf(&b, "<%s>", big), 0);
    CU_ASSERT(b.len == 1001 && b.data[0] == '<' && b.data[1000] == '>');
    mpm_buf_free(&b);
    CU_ASSERT_PTR_NULL(b.data);
    mpm_err_t e = {.offset = -1, .msg = ""};
    CU_ASSERT_EQUAL(mpm_err_set(&e, 17, "bad %s", "thing"), -1);
    CU_ASSERT_EQUAL(e.offset, 17);
    CU_ASSERT_STRING_EQUAL(e.msg, "bad thing");
    char q[32];
    mpm__quote(q, sizeof q, "a\tb\x01", 4);
    CU_ASSERT(strchr(q, '\t') == NULL && strchr(q, '\x01') == NULL && q[0] == 'a');
    char lng[200];
    memset(lng, 'y', sizeof lng);
    mpm__quote(q, sizeof q, lng, sizeof lng);
    CU_ASSERT(strlen(q) < sizeof q);
    CU_ASSERT_STRING_EQUAL(mpm_strerror(MPM_EIO), "input/output error");
    CU_ASSERT_STRING_EQUAL(mpm_strerror(0), "success");
}

static void test_registry(void)
{
    int n = 0;
    for (const mpm_kernel_t *const *k = mpm_kernels(); *k; k++) {
        n++;
        CU_ASSERT_PTR_EQUAL(mpm_kernel_find((*k)->name), *k);
        CU_ASSERT((*k)->map != NULL && (*k)->check != NULL && (*k)->columns != NULL);
        /* A reducing kernel has the whole set of partial functions. */
        int r = (*k)->partial_new != NULL;
        CU_ASSERT_EQUAL((*k)->partial_free != NULL, r);
        CU_ASSERT_EQUAL((*k)->merge != NULL, r);
        CU_ASSERT_EQUAL((*k)->serialize != NULL, r);
        CU_ASSERT_EQUAL((*k)->deserialize != NULL, r);
    }
    CU_ASSERT(n >= 4);
    CU_ASSERT_PTR_NULL(mpm_kernel_find("no-such-kernel"));
}

int main(void)
{
    static const tu_test_t tests[] = {
        {"registry", test_registry},
        {"wordcount: check", test_wc_check},
        {"wordcount: hand-counted text", test_wc_small_hand},
        {"wordcount: random text vs naive counter", test_wc_random},
        {"wordcount: many distinct words", test_wc_many_distinct},
        {"wordcount: every byte value", test_wc_all_bytes},
        {"wordcount: big chunks, block edges, long words", test_wc_big_chunks},
        {"wordcount: case folding and bytes >= 0x80", test_wc_case_and_high_bytes},
        {"wordcount: NUL bytes", test_wc_nul},
        {"wordcount: serialize/deserialize", test_wc_serialize},
        {"wordcount: options through the CLI parser", test_wc_cli_options},
        {"wordcount: json and tsv rows", test_wc_formats},
        {"primes: check", test_primes_check},
        {"primes: small ranges vs trial division", test_primes_small_ranges},
        {"primes: chunk boundaries", test_primes_chunks},
        {"primes: merged chunks", test_primes_merged},
        {"primes: --list", test_primes_list},
        {"fib: check", test_fib_check},
        {"fib: map vs iterative", test_fib_map},
        {"fib: errors and offsets", test_fib_errors},
        {"test kernel", test_test_kernel},
        {"emit_row: text and tsv", test_emit_text_tsv},
        {"emit_row: json", test_emit_json},
        {"parse_size", test_parse_size},
        {"parse_ll and parse_u64", test_parse_ll},
        {"buffers, errors, quoting", test_buf_err_quote},
        {NULL, NULL}};
    return tu_main("kernels", NULL, NULL, tests);
}
