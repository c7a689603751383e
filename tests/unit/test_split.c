/*
 * test_split.c - unit tests of the record-aligned splitter (split.h).
 *
 * The expected chunk boundaries are computed by a plain loop written here
 * from the contract in split.h: chunk k starts where chunk k-1 ended and ends
 * just after the first separator at or after start + chunk_size - 1, or at
 * the end of the input.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "split.h"

#define TU_RNG_SEED 0x243f6a8885a308d3ULL
#include "testutil.h"

#define HEADROOM 64

static char tmpdir[64];
static int file_counter;

/* ---- helpers ------------------------------------------------------------------ */

/* Separator test written independently of mpm__is_sep. */
static int ref_sep(mpm_records_t rec, unsigned char c)
{
    if (rec == MPM_REC_LINES) return c == '\n';
    if (c >= 0x80) return 0;
    if (c >= 'a' && c <= 'z') return 0;
    if (c >= 'A' && c <= 'Z') return 0;
    if (c >= '0' && c <= '9') return 0;
    if (c == '_') return 0;
    return 1;
}

typedef struct span_s {
    uint64_t off, len;
} span_t;

/* Expected chunks of one byte input. Returns the count; *out is malloc'd. */
static size_t ref_chunks(const char *data, size_t len, uint64_t cs, mpm_records_t rec, span_t **out)
{
    size_t n = 0, cap = 16;
    span_t *v = malloc(cap * sizeof *v);
    uint64_t start = 0;
    while (start < len) {
        uint64_t end = len;
        uint64_t from = cs - 1 >= len - start ? len : start + cs - 1; /* no overflow */
        for (uint64_t i = from; i < len; i++) {
            if (ref_sep(rec, (unsigned char)data[i])) {
                end = i + 1;
                break;
            }
        }
        if (n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
        }
        v[n].off = start;
        v[n].len = end - start;
        n++;
        start = end;
    }
    *out = v;
    return n;
}

static char *write_file(const char *data, size_t len)
{
    char *path = malloc(256);
    snprintf(path, 256, "%s/f%03d.txt", tmpdir, file_counter++);
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    if (len) CU_ASSERT_EQUAL(fwrite(data, 1, len, f), len);
    fclose(f);
    return path;
}

typedef struct got_s {
    mpm_chunk_desc_t *d;
    char **buf;
    size_t n, cap;
    int rc; /* 0: ended normally; -1: error */
    mpm_err_t err;
    uint64_t bytes;
} got_t;

static void got_free(got_t *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->buf[i]);
    free(g->d);
    free(g->buf);
    memset(g, 0, sizeof *g);
}

/* Runs a splitter to the end (or the first error), keeping everything. */
static void run_split(const mpm_input_t *in, int n, uint64_t cs, mpm_records_t rec, int read_data,
                      size_t headroom, got_t *g)
{
    memset(g, 0, sizeof *g);
    g->err.offset = -1;
    mpm_splitter_t *s = NULL;
    if (mpm__split_open(&s, in, n, cs, rec, read_data, headroom, &g->err) < 0) {
        g->rc = -1;
        return;
    }
    for (;;) {
        mpm_chunk_desc_t d;
        char *buf = (char *)1;
        int r = mpm__split_next(s, &d, &buf, &g->err);
        if (r <= 0) {
            g->rc = r;
            break;
        }
        if (g->n == g->cap) {
            g->cap = g->cap ? 2 * g->cap : 64;
            g->d = realloc(g->d, g->cap * sizeof *g->d);
            g->buf = realloc(g->buf, g->cap * sizeof *g->buf);
        }
        g->d[g->n] = d;
        g->buf[g->n] = buf;
        g->n++;
        if (g->n > 50000000) break; /* runaway */
    }
    g->bytes = mpm__split_bytes(s);
    mpm__split_close(s);
}

/* Checks the chunks of input `inp` (whose bytes are data/len) inside g,
 * starting at g->d[*pos]. */
static int check_byte_chunks(const got_t *g, size_t *pos, int inp, const char *data, size_t len,
                             uint64_t cs, mpm_records_t rec, int expect_data, size_t headroom)
{
    int fails = 0;
#define EXPECT(c)                                                                                  \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fails++;                                                                               \
            CU_ASSERT(c);                                                                          \
        }                                                                                          \
    } while (0)
    span_t *ref;
    size_t nref = ref_chunks(data, len, cs, rec, &ref);
    EXPECT(g->n - *pos >= nref);
    size_t k;
    uint64_t concat = 0;
    for (k = 0; k < nref && *pos + k < g->n && fails < 5; k++) {
        const mpm_chunk_desc_t *d = &g->d[*pos + k];
        EXPECT(d->input == inp);
        EXPECT(d->offset == ref[k].off);
        EXPECT(d->len == ref[k].len);
        EXPECT(d->has_data == expect_data);
        EXPECT(d->offset == concat); /* chunks tile the input */
        concat += d->len;
        if (k + 1 < nref && d->len > 0)
            EXPECT(ref_sep(rec, (unsigned char)data[d->offset + d->len - 1]));
        if (expect_data) {
            char *b = g->buf[*pos + k];
            EXPECT(b != NULL);
            if (b && d->offset + d->len <= len) {
                EXPECT(memcmp(b + headroom, data + d->offset, (size_t)d->len) == 0);
                /* The headroom is ours to write: the data must not live there. */
                memset(b, 0xA5, headroom);
                EXPECT(memcmp(b + headroom, data + d->offset, (size_t)d->len) == 0);
            }
        } else {
            EXPECT(g->buf[*pos + k] == NULL);
        }
    }
    if (fails == 0) EXPECT(concat == len);
    /* No chunk of this input beyond the expected ones. */
    if (*pos + nref < g->n) EXPECT(g->d[*pos + nref].input != inp);
    *pos += nref;
    free(ref);
#undef EXPECT
    return fails;
}

/* One file (and the same bytes in memory): every mode, headroom 0 and 64. */
static void check_one(const char *label, const char *data, size_t len, mpm_records_t rec,
                      uint64_t cs)
{
    char *path = write_file(data, len);
    mpm_input_t fin = {.kind = MPM_IN_FILE, .name = path};
    mpm_input_t min = {.kind = MPM_IN_MEMORY, .name = "mem", .data = data, .len = len};
    got_t rd, ds, mm, rd0;
    run_split(&fin, 1, cs, rec, 1, HEADROOM, &rd);
    run_split(&fin, 1, cs, rec, 0, HEADROOM, &ds);
    run_split(&min, 1, cs, rec, 0, HEADROOM, &mm);
    run_split(&fin, 1, cs, rec, 1, 0, &rd0);
    int fails = 0;
    size_t pos;
    CU_ASSERT_EQUAL(rd.rc, 0);
    CU_ASSERT_EQUAL(ds.rc, 0);
    CU_ASSERT_EQUAL(mm.rc, 0);
    CU_ASSERT_EQUAL(rd0.rc, 0);
    pos = 0;
    fails += check_byte_chunks(&rd, &pos, 0, data, len, cs, rec, 1, HEADROOM);
    CU_ASSERT_EQUAL(pos, rd.n);
    pos = 0;
    fails += check_byte_chunks(&ds, &pos, 0, data, len, cs, rec, 0, HEADROOM);
    CU_ASSERT_EQUAL(pos, ds.n);
    pos = 0;
    fails += check_byte_chunks(&mm, &pos, 0, data, len, cs, rec, 1, HEADROOM);
    CU_ASSERT_EQUAL(pos, mm.n);
    pos = 0;
    fails += check_byte_chunks(&rd0, &pos, 0, data, len, cs, rec, 1, 0);
    CU_ASSERT_EQUAL(pos, rd0.n);
    /* read and describe give identical (offset, len) sequences */
    CU_ASSERT_EQUAL(rd.n, ds.n);
    int same = rd.n == ds.n;
    for (size_t i = 0; same && i < rd.n; i++)
        same = rd.d[i].offset == ds.d[i].offset && rd.d[i].len == ds.d[i].len &&
               rd.d[i].index == i && ds.d[i].index == i;
    CU_ASSERT(same);
    CU_ASSERT_EQUAL(rd.bytes, len);
    CU_ASSERT_EQUAL(ds.bytes, len);
    CU_ASSERT_EQUAL(mm.bytes, len);
    if (fails || !same)
        fprintf(stderr, "\n  [%s] len %zu, %s, chunk size %llu: %d failed checks\n", label, len,
                rec == MPM_REC_LINES ? "lines" : "words", (unsigned long long)cs, fails);
    got_free(&rd);
    got_free(&ds);
    got_free(&mm);
    got_free(&rd0);
    unlink(path);
    free(path);
}

static const uint64_t SIZES[] = {1, 2, 3, 7, 64, 4096, 1 << 20};
#define NSIZES (sizeof SIZES / sizeof SIZES[0])

static void check_all_sizes(const char *label, const char *data, size_t len)
{
    for (size_t i = 0; i < NSIZES; i++) {
        check_one(label, data, len, MPM_REC_LINES, SIZES[i]);
        check_one(label, data, len, MPM_REC_WORDS, SIZES[i]);
    }
}

/* Random text: words of 1..12 letters (some upper case, digits, '_', UTF-8),
 * separated by spaces, punctuation, tabs and newlines. */
static char *random_text(size_t len)
{
    static const char *const seps[] = {" ", " ", " ", ", ", ". ", "\n", "\n", "\t", "\n\n", " - "};
    char *s = malloc(len + 1);
    size_t n = 0;
    while (n < len) {
        size_t wl = 1 + rnd() % 12;
        for (size_t i = 0; i < wl && n < len; i++) {
            static const char alpha[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789_\xc3\xa9\xe2\x82\xac";
            char c = alpha[rnd() % (sizeof alpha - 1)];
            s[n++] = c;
        }
        const char *sp = seps[rnd() % 10];
        for (; *sp && n < len; sp++)
            s[n++] = *sp;
    }
    s[len] = 0;
    return s;
}

/* ---- tests --------------------------------------------------------------------- */

static void test_is_sep(void)
{
    for (int c = 0; c < 256; c++) {
        CU_ASSERT_EQUAL(!!mpm__is_sep(MPM_REC_LINES, (unsigned char)c),
                        ref_sep(MPM_REC_LINES, (unsigned char)c));
        CU_ASSERT_EQUAL(!!mpm__is_sep(MPM_REC_WORDS, (unsigned char)c),
                        ref_sep(MPM_REC_WORDS, (unsigned char)c));
    }
}

static void test_simple(void)
{
    const char *t = "alpha beta\ngamma\n\ndelta epsilon zeta\nx\n";
    check_all_sizes("simple", t, strlen(t));
    /* Hand-checked against the contract: lines, chunk size 7. */
    char *path = write_file(t, strlen(t));
    mpm_input_t in = {.kind = MPM_IN_FILE, .name = path};
    got_t g;
    run_split(&in, 1, 7, MPM_REC_LINES, 1, 0, &g);
    /* "alpha beta\n" (11), "gamma\n\n" (7: byte 6 of the chunk is the 2nd \n),
     * "delta epsilon zeta\n" (19), "x\n" (2) */
    static const uint64_t lens[] = {11, 7, 19, 2};
    CU_ASSERT_EQUAL(g.n, 4);
    for (size_t i = 0; i < 4 && i < g.n; i++)
        CU_ASSERT_EQUAL(g.d[i].len, lens[i]);
    got_free(&g);
    unlink(path);
    free(path);
}

static void test_random_text(void)
{
    for (size_t len = 1; len < 200; len += 13) {
        char *t = random_text(len);
        check_all_sizes("random small", t, len);
        free(t);
    }
    char *t = random_text(40000);
    check_all_sizes("random 40k", t, 40000);
    free(t);
}

static void test_large_text(void)
{
    size_t len = 300000;
    char *t = random_text(len);
    check_all_sizes("random 300k", t, len);
    free(t);
}

/* Files of 1 MiB and more are mapped in read mode: chunks point into the
 * mapping (buf == NULL), boundaries are those of the reference, and a chunk
 * held across the switch to the next input stays readable until released. */
static void test_mapped(void)
{
    size_t la = (3u << 20) + 12345, lb = (2u << 20) + 77;
    char *ta = random_text(la), *tb = random_text(lb);
    char *fa = write_file(ta, la), *fb = write_file(tb, lb);
    mpm_input_t in[2] = {{.kind = MPM_IN_FILE, .name = fa}, {.kind = MPM_IN_FILE, .name = fb}};
    for (int rec = 0; rec < 2; rec++) {
        span_t *ra = NULL, *rb = NULL;
        size_t na = ref_chunks(ta, la, 65536, (mpm_records_t)rec, &ra);
        size_t nb = ref_chunks(tb, lb, 65536, (mpm_records_t)rec, &rb);
        mpm_splitter_t *s = NULL;
        mpm_err_t err = {.offset = -1, .msg = ""};
        CU_ASSERT_EQUAL_FATAL(mpm__split_open(&s, in, 2, 65536, (mpm_records_t)rec, 1, HEADROOM, &err), 0);
        mpm_chunk_desc_t d;
        char *buf;
        const char *data;
        const char *first = NULL;
        size_t first_len = 0, k = 0, mapped = 0;
        while (mpm__split_next_ref(s, &d, &buf, &data, &err) == 1) {
            CU_ASSERT_PTR_NOT_NULL_FATAL(data);
            const span_t *r = d.input == 0 ? &ra[k] : &rb[k - na];
            const char *src = d.input == 0 ? ta : tb;
            CU_ASSERT_EQUAL(d.index, k);
            CU_ASSERT_EQUAL(d.offset, r->off);
            CU_ASSERT_EQUAL(d.len, r->len);
            CU_ASSERT(memcmp(data, src + d.offset, (size_t)d.len) == 0);
            if (!buf) mapped++;
            if (k == 0 && !buf) {
                first = data; /* held: released only after the second input */
                first_len = (size_t)d.len;
            } else if (!buf) {
                mpm__split_release(s, d.input);
            }
            free(buf);
            k++;
        }
        CU_ASSERT_EQUAL(k, na + nb);
        CU_ASSERT_EQUAL(mapped, na + nb);
        CU_ASSERT_PTR_NOT_NULL_FATAL(first);
        CU_ASSERT(memcmp(first, ta, first_len) == 0); /* still mapped */
        mpm__split_release(s, 0);
        mpm__split_close(s);
        free(ra);
        free(rb);
    }
    unlink(fa);
    unlink(fb);
    free(fa);
    free(fb);
    free(ta);
    free(tb);
}

/* Records longer than the chunk size, and longer than any read-ahead. */
static void test_long_records(void)
{
    size_t len = 0;
    char *t = malloc(100000);
    const char *head = "short\nlines here\n";
    memcpy(t + len, head, strlen(head));
    len += strlen(head);
    memset(t + len, 'x', 20000); /* no separator of either kind */
    len += 20000;
    t[len++] = '\n';
    memcpy(t + len, "a b\n", 4);
    len += 4;
    memset(t + len, 'y', 9000);
    len += 9000;
    t[len++] = ' ';
    memset(t + len, 'z', 5000);
    len += 5000;
    t[len++] = '\n';
    check_all_sizes("long records", t, len);
    /* The long record makes one chunk longer than the chunk size. */
    char *path = write_file(t, len);
    mpm_input_t in = {.kind = MPM_IN_FILE, .name = path};
    got_t g;
    run_split(&in, 1, 7, MPM_REC_LINES, 1, 0, &g);
    int found = 0;
    for (size_t i = 0; i < g.n; i++)
        found |= g.d[i].len == 20001;
    CU_ASSERT(found);
    got_free(&g);
    unlink(path);
    free(path);
    free(t);
}

static void test_crlf(void)
{
    char t[4096];
    size_t n = 0;
    for (int i = 0; i < 150; i++)
        n += (size_t)snprintf(t + n, sizeof t - n, "line %d\r\n", i * 37);
    check_all_sizes("crlf", t, n);
    /* Lines: every chunk but the last ends in "\r\n". */
    char *path = write_file(t, n);
    mpm_input_t in = {.kind = MPM_IN_FILE, .name = path};
    for (size_t s = 0; s < NSIZES; s++) {
        got_t g;
        run_split(&in, 1, SIZES[s], MPM_REC_LINES, 1, 0, &g);
        for (size_t i = 0; i < g.n; i++) {
            CU_ASSERT(g.d[i].len >= 2);
            if (g.d[i].len >= 2) {
                CU_ASSERT_EQUAL(g.buf[i][g.d[i].len - 2], '\r');
                CU_ASSERT_EQUAL(g.buf[i][g.d[i].len - 1], '\n');
            }
        }
        got_free(&g);
    }
    unlink(path);
    free(path);
}

static void test_no_trailing_newline(void)
{
    const char *t = "first line\nsecond line\nthe last one has no newline";
    check_all_sizes("no trailing newline", t, strlen(t));
    check_all_sizes("one byte", "x", 1);
    check_all_sizes("newline only", "\n", 1);
}

static void test_no_separator(void)
{
    char *t = malloc(12000);
    memset(t, 'q', 12000);
    check_all_sizes("no separator", t, 12000);
    for (size_t s = 0; s < NSIZES; s++) {
        char *path = write_file(t, 12000);
        mpm_input_t in = {.kind = MPM_IN_FILE, .name = path};
        for (int rd = 0; rd <= 1; rd++) {
            got_t g;
            run_split(&in, 1, SIZES[s], MPM_REC_WORDS, rd, 8, &g);
            CU_ASSERT_EQUAL(g.n, 1);
            if (g.n == 1) CU_ASSERT_EQUAL(g.d[0].len, 12000);
            got_free(&g);
        }
        unlink(path);
        free(path);
    }
    free(t);
}

static void test_only_separators(void)
{
    check_all_sizes("only newlines", "\n\n\n\n\n\n\n", 7);
    check_all_sizes("only punctuation", " ,;.- \t!?", 9);
}

static void test_binary_bytes(void)
{
    size_t len = 9000;
    char *t = malloc(len);
    for (size_t i = 0; i < len; i++)
        t[i] = (char)(rnd() & 0xff);
    check_all_sizes("binary", t, len);
    /* UTF-8 words: bytes >= 0x80 never separate. */
    const char *u =
        "caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\n\xff\xfe\x80 end";
    check_all_sizes("utf8", u, strlen(u));
    free(t);
}

static void test_empty_file(void)
{
    char *path = write_file("", 0);
    mpm_input_t in = {.kind = MPM_IN_FILE, .name = path};
    for (int rd = 0; rd <= 1; rd++) {
        got_t g;
        run_split(&in, 1, 7, MPM_REC_LINES, rd, HEADROOM, &g);
        CU_ASSERT_EQUAL(g.rc, 0);
        CU_ASSERT_EQUAL(g.n, 0);
        CU_ASSERT_EQUAL(g.bytes, 0);
        got_free(&g);
    }
    mpm_input_t mem = {.kind = MPM_IN_MEMORY, .name = "m", .data = "", .len = 0};
    got_t g;
    run_split(&mem, 1, 7, MPM_REC_LINES, 1, 0, &g);
    CU_ASSERT_EQUAL(g.rc, 0);
    CU_ASSERT_EQUAL(g.n, 0);
    got_free(&g);
    /* No inputs at all. */
    run_split(NULL, 0, 7, MPM_REC_LINES, 1, 0, &g);
    CU_ASSERT_EQUAL(g.rc, 0);
    CU_ASSERT_EQUAL(g.n, 0);
    got_free(&g);
    unlink(path);
    free(path);
}

/* Several inputs: chunks never span inputs, indices are consecutive. */
static void test_multiple_inputs(void)
{
    char *a = random_text(5000);
    const char *mem = "12\n7\n\n30\n5";
    const char *b = "one two\nthree";
    char *c = random_text(777);
    char *pa = write_file(a, 5000), *pe = write_file("", 0), *pb = write_file(b, strlen(b)),
         *pc = write_file(c, 777);
    mpm_input_t in[] = {
        {.kind = MPM_IN_FILE, .name = pa},
        {.kind = MPM_IN_MEMORY, .name = "items", .data = mem, .len = strlen(mem)},
        {.kind = MPM_IN_FILE, .name = pe},
        {.kind = MPM_IN_FILE, .name = pb},
        {.kind = MPM_IN_RANGE, .name = "range", .lo = 10, .hi = 17},
        {.kind = MPM_IN_FILE, .name = pc},
    };
    const char *datas[] = {a, mem, "", b, NULL, c};
    size_t lens[] = {5000, strlen(mem), 0, strlen(b), 0, 777};
    for (size_t s = 0; s < NSIZES; s++) {
        for (int rec = 0; rec <= 1; rec++) {
            for (int rd = 0; rd <= 1; rd++) {
                got_t g;
                uint64_t cs = SIZES[s];
                run_split(in, 6, cs, (mpm_records_t)rec, rd, HEADROOM, &g);
                CU_ASSERT_EQUAL(g.rc, 0);
                int ok_index = 1;
                for (size_t i = 0; i < g.n; i++)
                    ok_index &= g.d[i].index == i;
                CU_ASSERT(ok_index);
                size_t pos = 0;
                uint64_t total = 0;
                for (int k = 0; k < 6; k++) {
                    if (in[k].kind == MPM_IN_RANGE) {
                        uint64_t lo = in[k].lo;
                        while (lo < in[k].hi && pos < g.n) {
                            uint64_t hi = in[k].hi - lo > cs ? lo + cs : in[k].hi;
                            CU_ASSERT_EQUAL(g.d[pos].input, k);
                            CU_ASSERT_EQUAL(g.d[pos].lo, lo);
                            CU_ASSERT_EQUAL(g.d[pos].hi, hi);
                            CU_ASSERT_PTR_NULL(g.buf[pos]);
                            total += hi - lo;
                            lo = hi;
                            pos++;
                        }
                        CU_ASSERT_EQUAL(lo, in[k].hi);
                        continue;
                    }
                    int expect_data = rd || in[k].kind == MPM_IN_MEMORY;
                    int f = check_byte_chunks(&g, &pos, k, datas[k], lens[k], cs,
                                              (mpm_records_t)rec, expect_data, HEADROOM);
                    if (f)
                        fprintf(stderr, "\n  multi: input %d, cs %llu, rec %d, read %d\n", k,
                                (unsigned long long)cs, rec, rd);
                    total += lens[k];
                }
                CU_ASSERT_EQUAL(pos, g.n);
                CU_ASSERT_EQUAL(g.bytes, total);
                got_free(&g);
            }
        }
    }
    unlink(pa);
    unlink(pe);
    unlink(pb);
    unlink(pc);
    free(pa);
    free(pe);
    free(pb);
    free(pc);
    free(a);
    free(c);
}

static void check_range(uint64_t lo, uint64_t hi, uint64_t cs)
{
    mpm_input_t in = {.kind = MPM_IN_RANGE, .name = "r", .lo = lo, .hi = hi};
    got_t g;
    run_split(&in, 1, cs, MPM_REC_LINES, 1, HEADROOM, &g);
    CU_ASSERT_EQUAL(g.rc, 0);
    uint64_t expect_n = hi > lo ? (hi - lo) / cs + ((hi - lo) % cs != 0) : 0;
    CU_ASSERT_EQUAL(g.n, expect_n);
    uint64_t at = lo;
    for (size_t i = 0; i < g.n && i < expect_n; i++) {
        uint64_t e = hi - at > cs ? at + cs : hi;
        CU_ASSERT_EQUAL(g.d[i].index, i);
        CU_ASSERT_EQUAL(g.d[i].input, 0);
        CU_ASSERT_EQUAL(g.d[i].lo, at);
        CU_ASSERT_EQUAL(g.d[i].hi, e);
        CU_ASSERT_EQUAL(g.d[i].offset, (uint64_t)i * cs);
        CU_ASSERT_EQUAL(g.d[i].has_data, 0);
        CU_ASSERT_PTR_NULL(g.buf[i]);
        at = e;
    }
    CU_ASSERT_EQUAL(g.bytes, hi > lo ? hi - lo : 0);
    got_free(&g);
}

static void test_ranges(void)
{
    check_range(0, 10, 3);  /* 0-3 3-6 6-9 9-10: last partial */
    check_range(0, 9, 3);   /* exact */
    check_range(5, 6, 100); /* one */
    check_range(7, 7, 3);   /* lo == hi: nothing */
    check_range(0, 0, 1);
    check_range(2, 1001, 1);
    check_range(1000000, 1000000 + (8u << 20) + 5, 8u << 20);
    check_range(UINT64_MAX - 10, UINT64_MAX, 4);
    check_range(UINT64_MAX - 3, UINT64_MAX, UINT64_MAX);
    check_range(0, UINT64_MAX, UINT64_MAX / 2 + 1);
    for (uint64_t lo = 0; lo < 20; lo++)
        for (uint64_t hi = lo; hi < 40; hi += 3)
            for (uint64_t cs = 1; cs < 12; cs += 2)
                check_range(lo, hi, cs);
    /* Two ranges: indices continue, offsets restart. */
    mpm_input_t in[2] = {{.kind = MPM_IN_RANGE, .name = "a", .lo = 0, .hi = 5},
                         {.kind = MPM_IN_RANGE, .name = "b", .lo = 100, .hi = 103}};
    got_t g;
    run_split(in, 2, 2, MPM_REC_LINES, 0, 0, &g);
    CU_ASSERT_EQUAL(g.n, 5);
    if (g.n == 5) {
        CU_ASSERT_EQUAL(g.d[3].input, 1);
        CU_ASSERT_EQUAL(g.d[3].index, 3);
        CU_ASSERT_EQUAL(g.d[3].lo, 100);
        CU_ASSERT_EQUAL(g.d[3].offset, 0);
        CU_ASSERT_EQUAL(g.d[4].hi, 103);
    }
    got_free(&g);
}

static void test_stdin(void)
{
    char *t = random_text(20000);
    char *path = write_file(t, 20000);
    int saved = dup(0);
    CU_ASSERT_FATAL(saved >= 0);
    for (int rd = 0; rd <= 1; rd++) {
        for (size_t s = 0; s < NSIZES; s++) {
            int fd = open(path, O_RDONLY);
            CU_ASSERT_FATAL(fd >= 0);
            dup2(fd, 0);
            close(fd);
            mpm_input_t in = {.kind = MPM_IN_STDIN, .name = "-"};
            got_t g;
            run_split(&in, 1, SIZES[s], MPM_REC_WORDS, rd, HEADROOM, &g);
            CU_ASSERT_EQUAL(g.rc, 0);
            size_t pos = 0;
            /* stdin is always returned with its bytes, even in describe mode. */
            check_byte_chunks(&g, &pos, 0, t, 20000, SIZES[s], MPM_REC_WORDS, 1, HEADROOM);
            CU_ASSERT_EQUAL(pos, g.n);
            got_free(&g);
        }
    }
    dup2(saved, 0);
    close(saved);
    unlink(path);
    free(path);
    free(t);
}

static void test_errors(void)
{
    mpm_splitter_t *s = NULL;
    mpm_err_t err = {.offset = -1, .msg = ""};
    mpm_input_t dummy = {.kind = MPM_IN_MEMORY, .name = "m", .data = "a\n", .len = 2};
    CU_ASSERT_EQUAL(mpm__split_open(&s, &dummy, 1, 0, MPM_REC_LINES, 1, 0, &err), -1);
    CU_ASSERT(err.msg[0] != 0);

    char missing[256], dir[256];
    snprintf(missing, sizeof missing, "%s/does-not-exist.txt", tmpdir);
    snprintf(dir, sizeof dir, "%s/subdir", tmpdir);
    CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0700), 0);
    const char *bad[] = {missing, dir};
    for (int b = 0; b < 2; b++) {
        for (int rd = 0; rd <= 1; rd++) {
            mpm_input_t in = {.kind = MPM_IN_FILE, .name = bad[b]};
            got_t g;
            run_split(&in, 1, 64, MPM_REC_LINES, rd, HEADROOM, &g);
            CU_ASSERT_EQUAL(g.rc, -1);
            CU_ASSERT_EQUAL(g.n, 0);
            CU_ASSERT_PTR_NOT_NULL(strstr(g.err.msg, bad[b]));
            got_free(&g);

            /* After a good input: its chunks come first, then the error. */
            const char *txt = "good\ninput\n";
            mpm_input_t two[2] = {
                {.kind = MPM_IN_MEMORY, .name = "ok", .data = txt, .len = strlen(txt)},
                {.kind = MPM_IN_FILE, .name = bad[b]}};
            run_split(two, 2, 1, MPM_REC_LINES, rd, 0, &g);
            CU_ASSERT_EQUAL(g.rc, -1);
            CU_ASSERT_EQUAL(g.n, 2);
            CU_ASSERT_PTR_NOT_NULL(strstr(g.err.msg, bad[b]));
            got_free(&g);
        }
    }
    rmdir(dir);
}

/* Chunk sizes far larger than the input (a user may ask for -c 1T): one
 * chunk holding the whole input, in every mode, as in describe mode. */
static void test_huge_chunk_size(void)
{
    static const uint64_t huge[] = {1ULL << 32, 1ULL << 40, 1ULL << 63, UINT64_MAX - 4095,
                                    UINT64_MAX};
    char *t = random_text(10000);
    for (size_t i = 0; i < sizeof huge / sizeof *huge; i++) {
        check_one("huge chunk size", t, 10000, MPM_REC_LINES, huge[i]);
        check_one("huge chunk size", t, 10000, MPM_REC_WORDS, huge[i]);
    }
    free(t);
}

static int suite_init(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mpimap-split-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int suite_clean(void)
{
    return rmdir(tmpdir) == 0 ? 0 : -1;
}

int main(void)
{
    static const tu_test_t tests[] = {
        {"separator classes", test_is_sep},
        {"simple text", test_simple},
        {"random text, small and 40 KB", test_random_text},
        {"random text, 300 KB", test_large_text},
        {"records longer than the chunk", test_long_records},
        {"mapped large files, chunks held across inputs", test_mapped},
        {"CRLF line endings", test_crlf},
        {"no trailing newline", test_no_trailing_newline},
        {"no separator at all", test_no_separator},
        {"only separators", test_only_separators},
        {"binary and UTF-8 bytes", test_binary_bytes},
        {"empty inputs", test_empty_file},
        {"several inputs", test_multiple_inputs},
        {"integer ranges", test_ranges},
        {"standard input", test_stdin},
        {"missing file, directory, bad chunk size", test_errors},
        {"chunk size far larger than the input", test_huge_chunk_size},
        {NULL, NULL}};
    return tu_main("split", suite_init, suite_clean, tests);
}
