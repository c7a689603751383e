/*
 * test_imgio.c - unit tests of the image codecs (img.h, imgio.c).
 *
 * Round trips: random images of every channel count and depth go through
 * the writer into memory and back through the reader, read all at once and
 * in pieces of 1 and 7 rows, from memory and from a file; PNM and PNG must
 * come back exact (PNG with maxval scaled as img.h says), JPEG within a
 * tolerance. The writer is checked against PNM bytes composed here by hand.
 *
 * The reader is checked against an encoder independent of it: PNGs built
 * here byte by byte (stored deflate blocks, CRC-32 and Adler-32 computed
 * here), covering what the writer never produces: palettes, tRNS, 1/2/4-bit
 * samples and Adam7 interlacing. Every bad input the reader refuses is
 * listed with a fragment of its message, which must also name the file.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/img.h"

#define TU_RNG_SEED 0x243f6a8885a308d3ULL
#include "testutil.h"

#define ERRLEN 512

/* ---- helpers ------------------------------------------------------------------ */

typedef struct sink_s {
    unsigned char *p;
    size_t n, cap;
    long fail_at; /* refuse a write that would go past this many bytes; -1: never */
} sink_t;

static int sink_write(void *ctx, const void *p, size_t n)
{
    sink_t *s = ctx;
    if (s->fail_at >= 0 && s->n + n > (size_t)s->fail_at) return -1;
    if (s->n + n > s->cap) {
        s->cap = (s->n + n) * 2 + 64;
        s->p = realloc(s->p, s->cap);
    }
    memcpy(s->p + s->n, p, n);
    s->n += n;
    return 0;
}

static void sink_put(sink_t *s, const void *p, size_t n)
{
    sink_write(s, p, n);
}

static void sink_put32(sink_t *s, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    sink_put(s, b, 4);
}

static img_info_t mkinfo(uint32_t w, uint32_t h, uint32_t c, uint32_t maxval)
{
    return (img_info_t){.width = w,
                        .height = h,
                        .channels = c,
                        .depth = maxval > 255 ? 2 : 1,
                        .maxval = maxval,
                        .format = -1};
}

static size_t img_bytes(const img_info_t *i)
{
    return img_row_bytes(i) * i->height;
}

/* Sample k of an image buffer (either depth). */
static uint32_t sample(const img_info_t *i, const void *p, size_t k)
{
    if (i->depth == 1) return ((const unsigned char *)p)[k];
    return ((const uint16_t *)p)[k];
}

static void set_sample(const img_info_t *i, void *p, size_t k, uint32_t v)
{
    if (i->depth == 1)
        ((unsigned char *)p)[k] = (unsigned char)v;
    else
        ((uint16_t *)p)[k] = (uint16_t)v;
}

/* Random samples in 0..maxval, with 0 and maxval present. */
static void *random_image(const img_info_t *i)
{
    size_t ns = img_bytes(i) / i->depth;
    void *p = malloc(img_bytes(i));
    for (size_t k = 0; k < ns; k++)
        set_sample(i, p, k, (uint32_t)(rnd() % ((uint64_t)i->maxval + 1)));
    set_sample(i, p, 0, 0);
    set_sample(i, p, ns - 1, i->maxval);
    return p;
}

/* Encodes the whole image into memory; asserts success. */
static unsigned char *encode(int format, const img_info_t *i, const void *pix, int quality,
                             size_t *len, int *dropped)
{
    sink_t s = {.fail_at = -1};
    img_wopts_t o = {.jpeg_quality = quality, .png_level = 6};
    img_writer_t *w;
    char err[ERRLEN] = "";
    int rc = img_writer_open(&w, format, i, &o, sink_write, &s, dropped, err, sizeof err);
    if (rc) fprintf(stderr, "\n  writer: %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    /* in two uneven pushes, to exercise the row counting */
    uint32_t a = i->height / 3;
    CU_ASSERT_EQUAL(img_writer_rows(w, pix, a, err, sizeof err), 0);
    CU_ASSERT_EQUAL(img_writer_rows(w, (const char *)pix + img_row_bytes(i) * a, i->height - a, err,
                                    sizeof err),
                    0);
    rc = img_writer_finish(w, err, sizeof err);
    if (rc) fprintf(stderr, "\n  writer: %s\n", err);
    CU_ASSERT_EQUAL(rc, 0);
    img_writer_free(w);
    *len = s.n;
    return s.p;
}

/* Reads every row, `chunk` rows at a time, from an open reader. */
static void *read_all(img_reader_t *r, const img_info_t *i, uint32_t chunk)
{
    char err[ERRLEN] = "";
    unsigned char *p = malloc(img_bytes(i));
    for (uint32_t y = 0; y < i->height; y += chunk) {
        uint32_t n = i->height - y < chunk ? i->height - y : chunk;
        int rc = img_reader_rows(r, p + img_row_bytes(i) * y, n, err, sizeof err);
        if (rc) fprintf(stderr, "\n  reader: %s\n", err);
        CU_ASSERT_EQUAL_FATAL(rc, 0);
    }
    /* and nothing past the last row */
    CU_ASSERT_EQUAL(img_reader_rows(r, p, 1, err, sizeof err), -1);
    return p;
}

/* Decodes bytes from memory; asserts success. */
static void *decode(const unsigned char *b, size_t n, img_info_t *i, uint32_t chunk)
{
    img_reader_t *r;
    char err[ERRLEN] = "";
    int rc = img_reader_open_mem(&r, "mem.img", b, n, 0, i, err, sizeof err);
    if (rc) fprintf(stderr, "\n  reader: %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    void *p = read_all(r, i, chunk);
    img_reader_close(r);
    return p;
}

static char tdir[64];

static int suite_init(void)
{
    snprintf(tdir, sizeof tdir, "/tmp/mpimap-imgio-XXXXXX");
    return mkdtemp(tdir) ? 0 : -1;
}

static int suite_clean(void)
{
    return rmdir(tdir);
}

static void spit(const char *p, const void *d, size_t n)
{
    FILE *f = fopen(p, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    if (n) CU_ASSERT_EQUAL(fwrite(d, 1, n, f), n);
    CU_ASSERT_EQUAL(fclose(f), 0);
}

/* Decodes bytes written to a file; asserts success and the same info. */
static void *decode_file(const unsigned char *b, size_t n, const img_info_t *want, uint32_t chunk)
{
    char path[128];
    snprintf(path, sizeof path, "%s/image.bin", tdir);
    spit(path, b, n);
    img_reader_t *r;
    img_info_t i;
    char err[ERRLEN] = "";
    int rc = img_reader_open_file(&r, path, 0, &i, err, sizeof err);
    if (rc) fprintf(stderr, "\n  reader: %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(memcmp(&i, want, sizeof i), 0);
    void *p = read_all(r, &i, chunk);
    img_reader_close(r);
    unlink(path);
    return p;
}

/* Decoding b all at once, in pieces of 1 and 7 rows, and from a file gives
 * the same bytes; returns them (all at once) with the info. */
static void *decode_every_way(const unsigned char *b, size_t n, img_info_t *i)
{
    void *all = decode(b, n, i, UINT32_MAX);
    size_t sz = img_bytes(i);
    uint32_t chunks[] = {1, 7};
    for (int k = 0; k < 2; k++) {
        img_info_t j;
        void *p = decode(b, n, &j, chunks[k]);
        CU_ASSERT_EQUAL(memcmp(i, &j, sizeof j), 0);
        CU_ASSERT_EQUAL(memcmp(all, p, sz), 0);
        free(p);
    }
    void *f = decode_file(b, n, i, 7);
    CU_ASSERT_EQUAL(memcmp(all, f, sz), 0);
    free(f);
    return all;
}

static void expect_info(const img_info_t *i, uint32_t w, uint32_t h, uint32_t c, uint32_t depth,
                        uint32_t maxval, int format)
{
    CU_ASSERT_EQUAL(i->width, w);
    CU_ASSERT_EQUAL(i->height, h);
    CU_ASSERT_EQUAL(i->channels, c);
    CU_ASSERT_EQUAL(i->depth, depth);
    CU_ASSERT_EQUAL(i->maxval, maxval);
    CU_ASSERT_EQUAL(i->format, format);
}

/* Drops alpha from an image (channels 2 or 4), as PNM and JPEG writing do. */
static void *strip_alpha(const img_info_t *i, const void *p, img_info_t *out)
{
    *out = *i;
    out->channels = i->channels - 1;
    void *q = malloc(img_bytes(out));
    size_t npx = (size_t)i->width * i->height;
    for (size_t x = 0; x < npx; x++)
        for (uint32_t c = 0; c < out->channels; c++)
            set_sample(out, q, x * out->channels + c, sample(i, p, x * i->channels + c));
    return q;
}

/* ---- formats ------------------------------------------------------------------ */

static void test_formats(void)
{
    CU_ASSERT_EQUAL(img_format_from_name("a.pgm"), IMG_PNM);
    CU_ASSERT_EQUAL(img_format_from_name("dir.x/A.PPM"), IMG_PNM);
    CU_ASSERT_EQUAL(img_format_from_name("a.Pnm"), IMG_PNM);
    CU_ASSERT_EQUAL(img_format_from_name("a.png"), IMG_PNG);
    CU_ASSERT_EQUAL(img_format_from_name("a.PNG"), IMG_PNG);
    CU_ASSERT_EQUAL(img_format_from_name("a.jpg"), IMG_JPEG);
    CU_ASSERT_EQUAL(img_format_from_name("a.JPeG"), IMG_JPEG);
    CU_ASSERT_EQUAL(img_format_from_name("a.gif"), -1);
    CU_ASSERT_EQUAL(img_format_from_name("png"), -1);
    CU_ASSERT_EQUAL(img_format_from_name(".jpgx"), -1);
    CU_ASSERT_EQUAL(img_format_from_name(""), -1);

    CU_ASSERT_EQUAL(img_format_sniff("P5\n1 1\n255\n", 12), IMG_PNM);
    CU_ASSERT_EQUAL(img_format_sniff("P6 1 1 255 ", 11), IMG_PNM);
    CU_ASSERT_EQUAL(img_format_sniff("P2\n", 3), -1);
    CU_ASSERT_EQUAL(img_format_sniff("P5x", 3), -1);
    CU_ASSERT_EQUAL(img_format_sniff("\x89PNG\r\n\x1a\n", 8), IMG_PNG);
    CU_ASSERT_EQUAL(img_format_sniff("\x89PNG\r\n\x1a", 7), -1);
    CU_ASSERT_EQUAL(img_format_sniff("\xff\xd8\xff\xe0", 4), IMG_JPEG);
    CU_ASSERT_EQUAL(img_format_sniff("\xff\xd8", 2), -1);
    CU_ASSERT_EQUAL(img_format_sniff("GIF89a", 6), -1);
    CU_ASSERT_EQUAL(img_format_sniff("", 0), -1);

    CU_ASSERT_STRING_EQUAL(img_format_name(IMG_PNM), "PNM");
    CU_ASSERT_STRING_EQUAL(img_format_name(IMG_PNG), "PNG");
    CU_ASSERT_STRING_EQUAL(img_format_name(IMG_JPEG), "JPEG");
}

/* ---- PNM ----------------------------------------------------------------------- */

static void test_pnm_roundtrip(void)
{
    static const uint32_t maxvals[] = {1, 100, 255, 256, 1000, 65535};
    for (uint32_t c = 1; c <= 4; c++)
        for (size_t m = 0; m < sizeof maxvals / sizeof *maxvals; m++) {
            img_info_t i = mkinfo(23, 17, c, maxvals[m]);
            void *pix = random_image(&i);
            size_t n;
            int dropped = -1;
            unsigned char *b = encode(IMG_PNM, &i, pix, 90, &n, &dropped);
            CU_ASSERT_EQUAL(dropped, c == 2 || c == 4);
            CU_ASSERT_EQUAL(memcmp(b, c >= 3 ? "P6\n" : "P5\n", 3), 0);
            img_info_t want = i, got;
            void *ref = pix;
            if (dropped) ref = strip_alpha(&i, pix, &want);
            void *back = decode_every_way(b, n, &got);
            expect_info(&got, 23, 17, want.channels, want.depth, maxvals[m], IMG_PNM);
            CU_ASSERT_EQUAL(memcmp(back, ref, img_bytes(&want)), 0);
            if (ref != pix) free(ref);
            free(back);
            free(b);
            free(pix);
        }
}

/* The writer's bytes against a PNM composed here; the reader on a header
 * with comments everywhere they are allowed, and trailing bytes. */
static void test_pnm_exact(void)
{
    /* 3 x 2 RGB, maxval 1000, big-endian samples */
    img_info_t i = mkinfo(3, 2, 3, 1000);
    uint16_t pix[18];
    for (int k = 0; k < 18; k++)
        pix[k] = (uint16_t)(k * 58 + (k == 17 ? 14 : 0)); /* up to 1000 */
    unsigned char want[64];
    size_t wl = (size_t)snprintf((char *)want, sizeof want, "P6\n3 2\n1000\n");
    for (int k = 0; k < 18; k++) {
        want[wl++] = (unsigned char)(pix[k] >> 8);
        want[wl++] = (unsigned char)pix[k];
    }
    size_t n;
    unsigned char *b = encode(IMG_PNM, &i, pix, 90, &n, NULL);
    CU_ASSERT(tu_same_bytes((char *)b, n, (char *)want, wl, "P6 maxval 1000"));
    free(b);

    /* gray + alpha, 8-bit: alpha dropped */
    img_info_t ga = mkinfo(2, 2, 2, 255);
    unsigned char gpix[8] = {10, 1, 20, 2, 30, 3, 40, 4};
    int dropped = 0;
    b = encode(IMG_PNM, &ga, gpix, 90, &n, &dropped);
    CU_ASSERT_EQUAL(dropped, 1);
    CU_ASSERT(tu_same_bytes((char *)b, n, "P5\n2 2\n255\n\x0a\x14\x1e\x28", 15, "P5 from GA"));
    free(b);

    static const char hdr[] = "P5 #one\n#two\r 3#three\n\t2\n#four\n\v255\r";
    unsigned char in[64];
    memcpy(in, hdr, sizeof hdr - 1);
    const unsigned char raster[6] = {0, 1, 2, 253, 254, 255};
    memcpy(in + sizeof hdr - 1, raster, 6);
    memcpy(in + sizeof hdr - 1 + 6, "trailing", 8);
    img_info_t got;
    unsigned char *back = decode_every_way(in, sizeof hdr - 1 + 14, &got);
    expect_info(&got, 3, 2, 1, 1, 255, IMG_PNM);
    CU_ASSERT_EQUAL(memcmp(back, raster, 6), 0);
    free(back);
}

/* ---- PNG ----------------------------------------------------------------------- */

static void test_png_roundtrip(void)
{
    static const uint32_t maxvals[] = {255, 65535};
    for (uint32_t c = 1; c <= 4; c++)
        for (int m = 0; m < 2; m++) {
            img_info_t i = mkinfo(37, 29, c, maxvals[m]);
            void *pix = random_image(&i);
            size_t n;
            int dropped = -1;
            unsigned char *b = encode(IMG_PNG, &i, pix, 90, &n, &dropped);
            CU_ASSERT_EQUAL(dropped, 0);
            CU_ASSERT_EQUAL(img_format_sniff(b, n), IMG_PNG);
            img_info_t got;
            void *back = decode_every_way(b, n, &got);
            expect_info(&got, 37, 29, c, i.depth, maxvals[m], IMG_PNG);
            CU_ASSERT_EQUAL(memcmp(back, pix, img_bytes(&i)), 0);
            free(back);
            free(b);
            free(pix);
        }
}

/* A maxval other than 255/65535 is scaled to the full range, rounded half up. */
static void test_png_scaling(void)
{
    static const uint32_t maxvals[] = {1, 100, 254, 256, 1000, 65534};
    for (size_t m = 0; m < sizeof maxvals / sizeof *maxvals; m++) {
        uint32_t mv = maxvals[m], full = mv > 255 ? 65535 : 255;
        img_info_t i = mkinfo(31, 9, 2, mv);
        void *pix = random_image(&i);
        size_t n;
        unsigned char *b = encode(IMG_PNG, &i, pix, 90, &n, NULL);
        img_info_t got;
        void *back = decode(b, n, &got, 5);
        expect_info(&got, 31, 9, 2, i.depth, full, IMG_PNG);
        size_t ns = img_bytes(&i) / i.depth, bad = 0;
        for (size_t k = 0; k < ns; k++) {
            uint64_t v = sample(&i, pix, k);
            if (sample(&got, back, k) != (v * full * 2 + mv) / (2 * (uint64_t)mv)) bad++;
        }
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT_EQUAL(sample(&got, back, 0), 0);
        CU_ASSERT_EQUAL(sample(&got, back, ns - 1), full);
        free(back);
        free(b);
        free(pix);
    }
}

/* -- PNGs made by hand -- */

static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return c ^ 0xffffffffu;
}

static void chunk(sink_t *s, const char *type, const unsigned char *d, size_t n)
{
    sink_put32(s, (uint32_t)n);
    unsigned char *t = malloc(n + 4);
    memcpy(t, type, 4);
    if (n) memcpy(t + 4, d, n);
    sink_put(s, t, n + 4);
    sink_put32(s, crc32_of(t, n + 4));
    free(t);
}

/* A zlib stream of stored (uncompressed) deflate blocks. */
static void zlib_stored(sink_t *z, const unsigned char *p, size_t n)
{
    sink_put(z, "\x78\x01", 2);
    size_t i = 0;
    do {
        size_t k = n - i < 65535 ? n - i : 65535;
        unsigned char h[5] = {i + k == n, (unsigned char)k, (unsigned char)(k >> 8),
                              (unsigned char)~k, (unsigned char)(~k >> 8)};
        sink_put(z, h, 5);
        sink_put(z, p + i, k);
        i += k;
    } while (i < n);
    uint32_t a = 1, b = 0;
    for (size_t j = 0; j < n; j++) {
        a = (a + p[j]) % 65521;
        b = (b + a) % 65521;
    }
    sink_put32(z, b << 16 | a);
}

typedef struct hpng_s {
    uint32_t w, h;
    int bd, ct, interlace;
    const uint16_t *s; /* w * h * spp sample values */
    const unsigned char *plte;
    int nplte;
    const unsigned char *trns;
    int ntrns;
} hpng_t;

static int spp_of(int ct)
{
    return ct == 0 || ct == 3 ? 1 : ct == 2 ? 3 : ct == 4 ? 2 : 4;
}

/* Filter byte 0 and the samples of pixels x0, x0 + dx, ... of row y, packed. */
static void put_row(sink_t *raw, const hpng_t *p, uint32_t y, uint32_t x0, uint32_t dx)
{
    int spp = spp_of(p->ct);
    sink_put(raw, "", 1);
    unsigned acc = 0, nbits = 0;
    for (uint32_t x = x0; x < p->w; x += dx)
        for (int c = 0; c < spp; c++) {
            unsigned v = p->s[((size_t)y * p->w + x) * spp + c];
            if (p->bd == 16) {
                unsigned char b2[2] = {(unsigned char)(v >> 8), (unsigned char)v};
                sink_put(raw, b2, 2);
            } else {
                acc = acc << p->bd | v;
                nbits += (unsigned)p->bd;
                if (nbits == 8) {
                    unsigned char b1 = (unsigned char)acc;
                    sink_put(raw, &b1, 1);
                    acc = nbits = 0;
                }
            }
        }
    if (nbits) {
        unsigned char b1 = (unsigned char)(acc << (8 - nbits));
        sink_put(raw, &b1, 1);
    }
}

static unsigned char *build_png(const hpng_t *p, size_t *len)
{
    static const uint32_t a7[7][4] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
                                      {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
    sink_t raw = {.fail_at = -1}, z = {.fail_at = -1}, out = {.fail_at = -1};
    if (!p->interlace)
        for (uint32_t y = 0; y < p->h; y++)
            put_row(&raw, p, y, 0, 1);
    else
        for (int k = 0; k < 7; k++)
            if (a7[k][0] < p->w) /* a pass with no column has no rows either */
                for (uint32_t y = a7[k][1]; y < p->h; y += a7[k][3])
                    put_row(&raw, p, y, a7[k][0], a7[k][2]);
    zlib_stored(&z, raw.p, raw.n);
    sink_put(&out, "\x89PNG\r\n\x1a\n", 8);
    unsigned char ihdr[13] = {0,
                              0,
                              0,
                              0,
                              0,
                              0,
                              0,
                              0,
                              (unsigned char)p->bd,
                              (unsigned char)p->ct,
                              0,
                              0,
                              (unsigned char)p->interlace};
    for (int k = 0; k < 4; k++) {
        ihdr[k] = (unsigned char)(p->w >> (24 - 8 * k));
        ihdr[4 + k] = (unsigned char)(p->h >> (24 - 8 * k));
    }
    chunk(&out, "IHDR", ihdr, 13);
    if (p->plte) chunk(&out, "PLTE", p->plte, (size_t)p->nplte * 3);
    if (p->trns) chunk(&out, "tRNS", p->trns, (size_t)p->ntrns);
    chunk(&out, "tEXt", (const unsigned char *)"Comment\0by hand", 15);
    /* the data in two IDAT chunks, as encoders may split it */
    chunk(&out, "IDAT", z.p, z.n / 2);
    chunk(&out, "IDAT", z.p + z.n / 2, z.n - z.n / 2);
    chunk(&out, "IEND", NULL, 0);
    free(raw.p);
    free(z.p);
    *len = out.n;
    return out.p;
}

/* What the reader should give for a hand-made PNG. */
static void *expected_png(const hpng_t *p, img_info_t *i)
{
    int spp = spp_of(p->ct), alpha = p->ct == 4 || p->ct == 6 || p->trns;
    int color = p->ct == 2 || p->ct == 3 || p->ct == 6;
    *i = mkinfo(p->w, p->h, (color ? 3u : 1u) + (alpha ? 1u : 0u), p->bd == 16 ? 65535 : 255);
    i->format = IMG_PNG;
    void *out = malloc(img_bytes(i));
    size_t npx = (size_t)p->w * p->h;
    unsigned scale = p->ct == 0 && p->bd < 8 ? 255u / ((1u << p->bd) - 1) : 1;
    for (size_t x = 0; x < npx; x++) {
        const uint16_t *s = p->s + x * (size_t)spp;
        uint32_t v[4] = {0, 0, 0, 0};
        if (p->ct == 3) {
            for (int c = 0; c < 3; c++)
                v[c] = p->plte[s[0] * 3 + c];
            v[3] = s[0] < p->ntrns ? p->trns[s[0]] : 255;
        } else {
            for (int c = 0; c < spp; c++)
                v[c] = s[c] * scale;
            if (p->trns) { /* the one transparent gray or RGB value */
                int same = 1;
                for (int c = 0; c < spp; c++)
                    same &= s[c] == (uint32_t)(p->trns[2 * c] << 8 | p->trns[2 * c + 1]);
                v[spp] = same ? 0 : i->maxval;
            }
        }
        for (uint32_t c = 0; c < i->channels; c++)
            set_sample(i, out, x * i->channels + c, v[c]);
    }
    return out;
}

static void check_hand_png(const hpng_t *p)
{
    size_t n;
    unsigned char *b = build_png(p, &n);
    img_info_t want, got;
    void *exp = expected_png(p, &want);
    void *back = decode_every_way(b, n, &got);
    CU_ASSERT_EQUAL(memcmp(&got, &want, sizeof got), 0);
    if (memcmp(back, exp, img_bytes(&want)) != 0) {
        fprintf(stderr, "\n  hand PNG %ux%u bd %d ct %d interlace %d differs\n", p->w, p->h, p->bd,
                p->ct, p->interlace);
        CU_FAIL("hand-made PNG decoded wrong");
    }
    free(back);
    free(exp);
    free(b);
}

/* w x h x spp random samples below 2^bd (below nplte for a palette). */
static uint16_t *hand_samples(uint32_t w, uint32_t h, int spp, int bd, int limit)
{
    size_t ns = (size_t)w * h * spp;
    uint16_t *s = malloc(ns * sizeof *s);
    for (size_t k = 0; k < ns; k++)
        s[k] = (uint16_t)(rnd() % (limit ? (uint64_t)limit : (uint64_t)1 << bd));
    return s;
}

static void test_png_by_hand(void)
{
    unsigned char plte[3 * 16];
    for (int k = 0; k < 48; k++)
        plte[k] = (unsigned char)rnd();
    const unsigned char trns_pal[3] = {0, 128, 7};
    const unsigned char trns_gray[2] = {0, 7};
    const unsigned char trns_rgb16[6] = {0x12, 0x34, 0, 0, 0xff, 0xff};
    struct {
        uint32_t w, h;
        int bd, ct, il, plte, ntrns;
        const unsigned char *trns;
    } cases[] = {
        {5, 4, 8, 3, 0, 6, 3, trns_pal},    /* palette + tRNS -> RGBA */
        {7, 3, 2, 3, 0, 4, 0, NULL},        /* 2-bit palette -> RGB */
        {3, 10, 1, 3, 1, 2, 1, trns_pal},   /* 1-bit palette, tRNS, Adam7 */
        {9, 2, 1, 0, 0, 0, 0, NULL},        /* 1-bit gray -> 0/255 */
        {11, 13, 4, 0, 1, 0, 0, NULL},      /* 4-bit gray, Adam7 */
        {6, 5, 2, 0, 0, 0, 0, NULL},        /* 2-bit gray */
        {8, 8, 8, 0, 0, 0, 2, trns_gray},   /* gray + tRNS -> GA */
        {13, 11, 8, 2, 1, 0, 0, NULL},      /* RGB, Adam7 */
        {5, 9, 16, 4, 1, 0, 0, NULL},       /* GA 16-bit, Adam7 */
        {4, 3, 16, 2, 0, 0, 6, trns_rgb16}, /* RGB 16 + tRNS -> RGBA 16 */
        {1, 1, 8, 6, 1, 0, 0, NULL},        /* RGBA, Adam7 with six empty passes */
        {2, 2, 8, 6, 1, 0, 0, NULL},        {3, 2, 16, 0, 1, 0, 0, NULL},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        hpng_t p = {.w = cases[k].w,
                    .h = cases[k].h,
                    .bd = cases[k].bd,
                    .ct = cases[k].ct,
                    .interlace = cases[k].il,
                    .plte = cases[k].plte ? plte : NULL,
                    .nplte = cases[k].plte,
                    .trns = cases[k].trns,
                    .ntrns = cases[k].ntrns};
        uint16_t *s = hand_samples(p.w, p.h, spp_of(p.ct), p.bd, p.nplte);
        /* make the transparent value occur */
        if (p.trns && p.ct != 3)
            for (int c = 0; c < spp_of(p.ct); c++)
                s[c] = (uint16_t)(p.trns[2 * c] << 8 | p.trns[2 * c + 1]);
        p.s = s;
        check_hand_png(&p);
        free(s);
    }
}

/* ---- JPEG ---------------------------------------------------------------------- */

/* Smooth content (JPEG's strength), so that a tight tolerance holds. */
static void *smooth_image(const img_info_t *i)
{
    void *p = malloc(img_bytes(i));
    for (uint32_t y = 0; y < i->height; y++)
        for (uint32_t x = 0; x < i->width; x++)
            for (uint32_t c = 0; c < i->channels; c++) {
                double s = sin(x / 7.0 + c) * cos(y / 9.0 - c);
                uint64_t v = (uint64_t)(128.5 + 90 * s);
                set_sample(i, p, ((size_t)y * i->width + x) * i->channels + c,
                           (uint32_t)(v * i->maxval / 255));
            }
    return p;
}

static void test_jpeg_roundtrip(void)
{
    static const uint32_t maxvals[] = {255, 65535, 1000, 100};
    for (uint32_t c = 1; c <= 4; c++)
        for (int m = 0; m < 4; m++) {
            uint32_t mv = maxvals[m];
            img_info_t i = mkinfo(45, 33, c, mv);
            void *pix = smooth_image(&i);
            size_t n;
            int dropped = -1;
            unsigned char *b = encode(IMG_JPEG, &i, pix, 95, &n, &dropped);
            CU_ASSERT_EQUAL(dropped, c == 2 || c == 4);
            CU_ASSERT_EQUAL(img_format_sniff(b, n), IMG_JPEG);
            img_info_t got;
            void *back = decode_every_way(b, n, &got);
            uint32_t oc = c == 1 || c == 2 ? 1 : 3;
            expect_info(&got, 45, 33, oc, 1, 255, IMG_JPEG);
            uint64_t sum = 0, worst = 0;
            size_t npx = (size_t)i.width * i.height;
            for (size_t x = 0; x < npx; x++)
                for (uint32_t k = 0; k < oc; k++) {
                    uint64_t v = sample(&i, pix, x * c + k);
                    int64_t want = (int64_t)((v * 255 * 2 + mv) / (2 * (uint64_t)mv));
                    int64_t d = (int64_t)sample(&got, back, x * oc + k) - want;
                    uint64_t ad = (uint64_t)(d < 0 ? -d : d);
                    sum += ad;
                    if (ad > worst) worst = ad;
                }
            double mean = (double)sum / (double)(npx * oc);
            if (mean > 2.0 || worst > 24)
                fprintf(stderr, "\n  JPEG c %u maxval %u: mean error %.2f, worst %llu\n", c, mv,
                        mean, (unsigned long long)worst);
            CU_ASSERT(mean <= 2.0);
            CU_ASSERT(worst <= 24);
            free(back);
            free(b);
            free(pix);
        }
}

/* ---- refusals ------------------------------------------------------------------- */

/* Opens b (memory and, if file, a file) and reads every row; the open or a
 * read must fail with the name and `frag` in the message. */
static void expect_refusal_as(const char *name, const unsigned char *b, size_t n, int file,
                              uint64_t max_pixels, const char *frag)
{
    char err[ERRLEN] = "", path[128];
    img_reader_t *r = NULL;
    img_info_t i;
    int rc;
    if (file) {
        snprintf(path, sizeof path, "%s/%s", tdir, name);
        spit(path, b, n);
        name = path;
        rc = img_reader_open_file(&r, path, max_pixels, &i, err, sizeof err);
    } else {
        rc = img_reader_open_mem(&r, name, b, n, max_pixels, &i, err, sizeof err);
    }
    if (rc == 0) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        size_t rb = img_row_bytes(&i);
        unsigned char *row = malloc(rb);
        for (uint32_t y = 0; y < i.height && rc == 0; y++)
            rc = img_reader_rows(r, row, 1, err, sizeof err);
        if (rc) /* and the failure sticks */
            CU_ASSERT_EQUAL(img_reader_rows(r, row, 1, err + 256, sizeof err - 256), -1);
        free(row);
        img_reader_close(r);
    } else {
        CU_ASSERT_PTR_NULL(r);
    }
    int ok = rc == -1 && strncmp(err, name, strlen(name)) == 0 &&
             strncmp(err + strlen(name), ": ", 2) == 0 && strstr(err, frag);
    if (!ok) fprintf(stderr, "\n  %s: rc %d, message '%s', expected '%s'\n", name, rc, err, frag);
    CU_ASSERT(ok);
    if (file) unlink(path);
}

static void expect_refusal(const char *name, const void *b, size_t n, uint64_t max_pixels,
                           const char *frag)
{
    expect_refusal_as(name, b, n, 0, max_pixels, frag);
    expect_refusal_as(name, b, n, 1, max_pixels, frag);
}

#define REFUSE(name, lit, frag) expect_refusal(name, lit, sizeof lit - 1, 0, frag)

static void test_pnm_refusals(void)
{
    REFUSE("empty.pgm", "", "empty file");
    REFUSE("text.pgm", "hello, world\n", "not a PNM, PNG or JPEG image");
    REFUSE("short.pgm", "P", "not a PNM, PNG or JPEG image");
    REFUSE("p1.pbm", "P1\n2 2\n0 1 1 0\n", "unsupported PNM type P1");
    REFUSE("p2.pgm", "P2\n2 2\n255\n1 2 3 4\n",
           "unsupported PNM type P2 (ASCII); only binary P5/P6");
    REFUSE("p3.ppm", "P3\n1 1\n255\n1 2 3\n", "unsupported PNM type P3 (ASCII)");
    REFUSE("p4.pbm", "P4\n8 1\n\x55", "unsupported PNM type P4");
    REFUSE("p7.pam", "P7\nWIDTH 1\n", "unsupported PNM type P7");
    REFUSE("w0.pgm", "P5\n0 4\n255\n", "image is 0 x 4");
    REFUSE("h0.pgm", "P5\n4 0\n255\n", "image is 4 x 0");
    REFUSE("wx.pgm", "P5\nx 4\n255\n", "expected the width");
    REFUSE("hx.pgm", "P5\n4 -4\n255\n", "expected the height");
    REFUSE("mx.pgm", "P5\n4 4\n+255\n", "expected the maxval");
    REFUSE("wjunk.pgm", "P5\n4x 4\n255\n", "garbage after the width");
    REFUSE("wbig.pgm", "P5\n4294967296 1\n255\n", "width is too large");
    REFUSE("hbig.pgm", "P5\n1 99999999999999999999999\n255\n", "height is too large");
    REFUSE("m0.pgm", "P5\n4 4\n0\n", "maxval 0 is not in 1..65535");
    REFUSE("mbig.pgm", "P5\n4 4\n65536\n", "maxval 65536 is not in 1..65535");
    REFUSE("hdr1.pgm", "P5\n4 4", "truncated PNM header");
    REFUSE("hdr2.pgm", "P5\n4 4\n255", "truncated PNM header");
    REFUSE("hdr3.pgm", "P5 # a comment with no end", "truncated PNM header");
    REFUSE("hdr4.pgm", "P5\n4 4\n255#c\n", "expected one whitespace byte after the maxval");
    /* 4 x 3, data ends 2 bytes into row 1: byte offset 11 + 6 */
    REFUSE("raster.pgm", "P5\n4 3\n255\n\1\2\3\4\5\6", "data ends in row 1 (byte offset 17)");
    REFUSE("raster16.ppm", "P6\n1 2\n1000\n\0\1\0\2\0\3\0", "data ends in row 1 (byte offset 19)");
    REFUSE("big8.pgm", "P5\n2 2\n200\n\1\2\3\311", "sample 201 > maxval 200 at row 1");
    REFUSE("big16.pgm", "P5\n1 3\n1000\n\0\5\3\350\3\351", "sample 1001 > maxval 1000 at row 2");
    /* the header alone decides: refused without reading or allocating */
    expect_refusal("huge.pgm", "P5\n100000 100000\n255\n\1\2\3", 24, 1000000,
                   "100000 x 100000 image is larger than --max-pixels 1000000");
    /* within max_pixels it is the data that is missing */
    expect_refusal("huge2.pgm", "P5\n100000 100000\n255\n\1\2\3", 24, 0, "data ends in row 0");

    char err[ERRLEN];
    img_reader_t *r;
    img_info_t i;
    CU_ASSERT_EQUAL(img_reader_open_file(&r, "/nonexistent/x.pgm", 0, &i, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/x.pgm: cannot open"));
    CU_ASSERT_EQUAL(img_reader_open_file(&r, tdir, 0, &i, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "read error"));
}

/* Makes the IHDR of b claim w x h (with a valid CRC). */
static void patch_dims(unsigned char *b, uint32_t w, uint32_t h)
{
    for (int k = 0; k < 4; k++) {
        b[16 + k] = (unsigned char)(w >> (24 - 8 * k));
        b[20 + k] = (unsigned char)(h >> (24 - 8 * k));
    }
    uint32_t crc = crc32_of(b + 12, 17);
    for (int k = 0; k < 4; k++)
        b[29 + k] = (unsigned char)(crc >> (24 - 8 * k));
}

/* A valid PNG signature and IHDR claiming w x h, then a little data. */
static unsigned char *huge_png(uint32_t w, uint32_t h, size_t *n)
{
    uint16_t s[3] = {1, 2, 3};
    hpng_t p = {.w = 1, .h = 1, .bd = 8, .ct = 2, .s = s};
    unsigned char *b = build_png(&p, n);
    patch_dims(b, w, h);
    return b;
}

static void test_png_refusals(void)
{
    size_t n;
    unsigned char *b = huge_png(100000, 100000, &n);
    expect_refusal("huge.png", b, n, 1000000,
                   "100000 x 100000 image is larger than --max-pixels 1000000");
    free(b);
    b = huge_png(0x7fffffff, 2, &n);
    expect_refusal("wide.png", b, n, 0, "bad PNG: ");
    free(b);
    b = huge_png(0, 2, &n);
    expect_refusal("zero.png", b, n, 0, "bad PNG: ");
    free(b);

    /* well-formed chunks, but image data for 4 rows of 10 */
    uint16_t *hs = hand_samples(16, 4, 1, 8, 0);
    hpng_t hp = {.w = 16, .h = 4, .bd = 8, .ct = 0, .s = hs};
    b = build_png(&hp, &n);
    patch_dims(b, 16, 10);
    expect_refusal("short.png", b, n, 0, "bad PNG data in row 4: Not enough image data");
    free(b);
    free(hs);

    /* a written PNG, damaged */
    img_info_t i = mkinfo(40, 30, 3, 255);
    void *pix = random_image(&i);
    b = encode(IMG_PNG, &i, pix, 90, &n, NULL);
    unsigned char *d = malloc(n);
    memcpy(d, b, n);
    d[20] ^= 1; /* IHDR CRC */
    expect_refusal("crc.png", d, n, 0, "CRC");
    memcpy(d, b, n);
    d[n - 20] ^= 0x55; /* in the image data */
    expect_refusal("data.png", d, n, 0, "bad PNG");
    /* cut anywhere before IEND: refused, by the open or by a row */
    for (size_t cut = 8; cut + 12 < n; cut += cut < 100 ? 1 : 37)
        expect_refusal_as("cut.png", b, cut, 0, 0, "truncated PNG");
    expect_refusal("cut.png", b, n / 2, 0, "truncated PNG: data ends in row ");
    expect_refusal("cut.png", b, 40, 0, "truncated PNG: data ends at byte offset 40");
    free(d);
    free(b);
    free(pix);
}

static void test_jpeg_refusals(void)
{
    img_info_t i = mkinfo(64, 48, 3, 255);
    void *pix = smooth_image(&i);
    size_t n;
    unsigned char *b = encode(IMG_JPEG, &i, pix, 90, &n, NULL);
    expect_refusal("big.jpg", b, n, 64 * 48 - 1,
                   "64 x 48 image is larger than --max-pixels 3071 (3072 pixels)");
    for (size_t cut = 3; cut + 2 < n; cut += cut < 700 ? 7 : 61)
        expect_refusal_as("cut.jpg", b, cut, 0, 0, "truncated JPEG");
    expect_refusal("cut.jpg", b, n - 2, 0, "truncated JPEG: data ends in row ");
    expect_refusal("cut.jpg", b, 100, 0, "truncated JPEG: data ends at byte offset 100");
    unsigned char junk[64] = {0xff, 0xd8, 0xff, 0xe0, 0, 16};
    for (int k = 6; k < 64; k++)
        junk[k] = (unsigned char)(k * 37);
    /* garbage after APP0: libjpeg looks for the next marker to the end */
    expect_refusal("junk.jpg", junk, sizeof junk, 0, "truncated JPEG");
    static const unsigned char p12[] = {0xff, 0xd8, 0xff, 0xc0, 0, 11,   12,   0,    8,   0,
                                        8,    1,    1,    0x11, 0, 0xff, 0xda, 0,    8,   1,
                                        1,    0,    0,    63,   0, 0,    0,    0xff, 0xd9};
    REFUSE("p12.jpg", p12, "bad JPEG: Unsupported JPEG data precision 12");
    free(b);
    free(pix);

    /* SOI, a 4-component SOF0 and its SOS: what jpeg_read_header needs to
     * see a CMYK image; then an Adobe marker saying YCCK */
    static const unsigned char cmyk[] = {
        0xff, 0xd8, 0xff, 0xc0, 0, 20, 8,    0, 8,    0,    8, 4,  1,    0x11, 0, 2,
        0x11, 0,    3,    0x11, 0, 4,  0x11, 0, 0xff, 0xda, 0, 14, 4,    1,    0, 2,
        0,    3,    0,    4,    0, 0,  63,   0, 0,    0,    0, 0,  0xff, 0xd9};
    REFUSE("cmyk.jpg", cmyk, "CMYK JPEG images are not supported");
    unsigned char ycck[sizeof cmyk + 16];
    static const unsigned char adobe[16] = {0xff, 0xee, 0,   14, 'A', 'd', 'o', 'b',
                                            'e',  0,    100, 0,  0,   0,   0,   2};
    memcpy(ycck, cmyk, 2);
    memcpy(ycck + 2, adobe, 16);
    memcpy(ycck + 18, cmyk + 2, sizeof cmyk - 2);
    expect_refusal("ycck.jpg", ycck, sizeof ycck, 0, "YCCK JPEG images are not supported");
}

/* ---- writer failures ------------------------------------------------------------- */

static void test_writer_failures(void)
{
    char err[ERRLEN];
    img_info_t i = mkinfo(300, 200, 3, 255);
    void *pix = random_image(&i); /* noise: JPEG output beyond its 64 KiB buffer */
    img_wopts_t o = {.jpeg_quality = 95, .png_level = 1};
    static const long fail_at[] = {0, 10, 1000, 70000};
    for (int f = 0; f < 3; f++)
        for (size_t k = 0; k < sizeof fail_at / sizeof *fail_at; k++) {
            sink_t s = {.fail_at = fail_at[k]};
            img_writer_t *w = NULL;
            err[0] = 0;
            int rc = img_writer_open(&w, f, &i, &o, sink_write, &s, NULL, err, sizeof err);
            if (rc == 0) {
                for (uint32_t y = 0; y < i.height && rc == 0; y += 50)
                    rc = img_writer_rows(w, (char *)pix + img_row_bytes(&i) * y, 50, err,
                                         sizeof err);
                if (rc == 0)
                    rc = img_writer_finish(w, err, sizeof err);
                else /* sticky */
                    CU_ASSERT_EQUAL(img_writer_finish(w, err + 256, sizeof err - 256), -1);
                img_writer_free(w);
            }
            CU_ASSERT_EQUAL(rc, -1);
            CU_ASSERT_STRING_EQUAL(err, "cannot write the encoded image");
            free(s.p);
        }

    /* too few rows, too many rows */
    for (int f = 0; f < 3; f++) {
        sink_t s = {.fail_at = -1};
        img_writer_t *w;
        CU_ASSERT_EQUAL_FATAL(img_writer_open(&w, f, &i, &o, sink_write, &s, NULL, err, sizeof err),
                              0);
        CU_ASSERT_EQUAL(img_writer_rows(w, pix, 2, err, sizeof err), 0);
        CU_ASSERT_EQUAL(img_writer_finish(w, err, sizeof err), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "only 2 of 200 rows"));
        img_writer_free(w);
        CU_ASSERT_EQUAL_FATAL(img_writer_open(&w, f, &i, &o, sink_write, &s, NULL, err, sizeof err),
                              0);
        CU_ASSERT_EQUAL(img_writer_rows(w, pix, 199, err, sizeof err), 0);
        CU_ASSERT_EQUAL(img_writer_rows(w, pix, 2, err, sizeof err), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "the image has 200"));
        img_writer_free(w);
        free(s.p);
    }

    /* what cannot be written at all */
    struct {
        int format;
        img_info_t i;
        img_wopts_t o;
        const char *frag;
    } bad[] = {
        {IMG_PNG, mkinfo(4, 4, 5, 255), {90, 6, 1}, "bad image layout"},
        {IMG_PNG, {4, 4, 1, 1, 1000, -1}, {90, 6, 1}, "bad image layout"},
        {IMG_PNG, {4, 4, 1, 2, 255, -1}, {90, 6, 1}, "bad image layout"},
        {IMG_PNM, mkinfo(0, 4, 1, 255), {90, 6, 1}, "0 x 4"},
        {IMG_JPEG, mkinfo(70000, 4, 1, 255), {90, 6, 1}, "too large for JPEG"},
        {IMG_JPEG, mkinfo(4, 4, 1, 255), {0, 6, 1}, "quality 0"},
        {IMG_PNG, mkinfo(4, 4, 1, 255), {90, 10, 1}, "level 10"},
        {7, mkinfo(4, 4, 1, 255), {90, 6, 1}, "unknown image format 7"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        img_writer_t *w = (img_writer_t *)&i; /* must come back NULL */
        int dropped = -1;
        err[0] = 0;
        CU_ASSERT_EQUAL(img_writer_open(&w, bad[k].format, &bad[k].i, &bad[k].o, sink_write, NULL,
                                        &dropped, err, sizeof err),
                        -1);
        CU_ASSERT_PTR_NULL(w);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[k].frag));
    }
    free(pix);
}

/* ---- threads --------------------------------------------------------------------- */

typedef struct job_s {
    int format;
    img_info_t i;
    void *pix;
    int ok;
} job_t;

/* Encodes and decodes, without CUnit (not thread safe): sets ok. */
static void *job_run(void *arg)
{
    job_t *j = arg;
    char err[ERRLEN];
    sink_t s = {.fail_at = -1};
    img_wopts_t o = {.jpeg_quality = 100, .png_level = 3};
    img_writer_t *w;
    img_reader_t *r;
    img_info_t got;
    j->ok = 0;
    for (int round = 0; round < 5; round++) {
        s.n = 0;
        if (img_writer_open(&w, j->format, &j->i, &o, sink_write, &s, NULL, err, sizeof err))
            return NULL;
        int rc = img_writer_rows(w, j->pix, j->i.height, err, sizeof err) ||
                 img_writer_finish(w, err, sizeof err);
        img_writer_free(w);
        if (rc || img_reader_open_mem(&r, "t", s.p, s.n, 0, &got, err, sizeof err)) return NULL;
        unsigned char *back = malloc(img_bytes(&got));
        rc = img_reader_rows(r, back, got.height, err, sizeof err);
        img_reader_close(r);
        int same = rc == 0 && (j->format == IMG_JPEG || !memcmp(back, j->pix, img_bytes(&j->i)));
        free(back);
        if (!same) return NULL;
    }
    free(s.p);
    j->ok = 1;
    return NULL;
}

static void test_threads(void)
{
    enum { NT = 6 };
    job_t jobs[NT];
    pthread_t t[NT];
    for (int k = 0; k < NT; k++) {
        jobs[k].format = k % 3;
        jobs[k].i = mkinfo(120 + (uint32_t)k, 90, k % 3 == 0 ? 1 : 3, k == 3 ? 65535 : 255);
        jobs[k].pix = random_image(&jobs[k].i);
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[k], NULL, job_run, &jobs[k]), 0);
    }
    for (int k = 0; k < NT; k++) {
        pthread_join(t[k], NULL);
        CU_ASSERT_EQUAL(jobs[k].ok, 1);
        free(jobs[k].pix);
    }
}

/* Encodes a PNG with `threads` deflating threads, pushing `step` rows at a time. */
static unsigned char *encode_png(const img_info_t *i, const void *pix, int threads, uint32_t step,
                                 int level, size_t *len)
{
    sink_t s = {.fail_at = -1};
    img_wopts_t o = {.jpeg_quality = 90, .png_level = level, .threads = threads};
    img_writer_t *w;
    char err[ERRLEN] = "";
    CU_ASSERT_EQUAL_FATAL(img_writer_open(&w, IMG_PNG, i, &o, sink_write, &s, NULL, err, sizeof err), 0);
    for (uint32_t y = 0; y < i->height; y += step) {
        uint32_t n = i->height - y < step ? i->height - y : step;
        CU_ASSERT_EQUAL(img_writer_rows(w, (const char *)pix + img_row_bytes(i) * y, n, err, sizeof err), 0);
    }
    int rc = img_writer_finish(w, err, sizeof err);
    if (rc) fprintf(stderr, "\n  writer: %s\n", err);
    CU_ASSERT_EQUAL(rc, 0);
    img_writer_free(w);
    *len = s.n;
    return s.p;
}

/* The PNG writer deflates blocks of IMG_PNG_BLOCK filtered bytes in parallel:
 * the bytes must not depend on the threads or on how rows were pushed, and
 * libpng must read back the pixels, for images of one block and of many. */
static void test_png_parallel(void)
{
    static const uint32_t shapes[][3] = {{1, 1, 1}, {37, 5, 3}, {700, 900, 3}, {513, 1200, 4},
                                         {300, 2000, 2}, {1000, 700, 1}};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        for (int deep = 0; deep < 2; deep++) {
            img_info_t i = mkinfo(shapes[k][0], shapes[k][1], shapes[k][2], deep ? 65535 : 255);
            void *pix = random_image(&i);
            /* smooth half: something for the filters and deflate to find */
            for (size_t q = img_bytes(&i) / 2; q < img_bytes(&i); q++)
                ((unsigned char *)pix)[q] = (unsigned char)(q / 97);
            size_t n1, n;
            unsigned char *ref = encode_png(&i, pix, 1, i.height, 6, &n1);
            static const int th[] = {2, 3, 8};
            static const uint32_t steps[] = {1, 7, 1000000};
            for (int t = 0; t < 3; t++) {
                unsigned char *b = encode_png(&i, pix, th[t], steps[t], 6, &n);
                CU_ASSERT(n == n1 && memcmp(b, ref, n) == 0);
                free(b);
            }
            img_info_t got;
            void *back = decode(ref, n1, &got, 64);
            CU_ASSERT(got.width == i.width && got.height == i.height &&
                      got.channels == i.channels && got.depth == i.depth);
            CU_ASSERT(memcmp(back, pix, img_bytes(&i)) == 0);
            free(back);
            free(ref);
            for (int level = 0; level <= 9; level += 9) { /* stored and best */
                unsigned char *b = encode_png(&i, pix, 4, 13, level, &n);
                void *p2 = decode(b, n, &got, 5);
                CU_ASSERT(memcmp(p2, pix, img_bytes(&i)) == 0);
                free(p2);
                free(b);
            }
            free(pix);
        }
    }
}

int main(void)
{
    static const tu_test_t tests[] = {
        {"format names and magic bytes", test_formats},
        {"PNM round trips, every channel count and maxval", test_pnm_roundtrip},
        {"PNM bytes composed by hand", test_pnm_exact},
        {"PNG round trips, 8 and 16 bits", test_png_roundtrip},
        {"PNG maxval scaling", test_png_scaling},
        {"PNGs built by hand: palette, tRNS, low bit depths, Adam7", test_png_by_hand},
        {"JPEG round trips within tolerance", test_jpeg_roundtrip},
        {"PNM refusals", test_pnm_refusals},
        {"PNG refusals", test_png_refusals},
        {"JPEG refusals", test_jpeg_refusals},
        {"writer failures", test_writer_failures},
        {"concurrent readers and writers", test_threads},
        {"PNG deflated in parallel blocks: same bytes for any threads", test_png_parallel},
        {NULL, NULL}};
    return tu_main("imgio", suite_init, suite_clean, tests);
}
