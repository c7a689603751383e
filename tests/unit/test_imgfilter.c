/*
 * test_imgfilter.c - unit tests of the image filters (img.h, imgfilter.c).
 *
 * The reference here is written separately and slowly on purpose: direct
 * 2-D loops over the whole window with clamp-to-edge indexing, in double
 * (the Gaussian as the outer product of its 1-D weights, no separation into
 * passes, no float rounding). The filters work in float, so they may differ
 * from it by one level where a value lies next to a rounding boundary; box
 * is integer arithmetic and must agree exactly.
 *
 * Strip invariance is checked against one call over the whole image: every
 * row any strip produces must be byte for byte the row of the whole-image
 * call, for strips of every size, halos included, and for random strips.
 * Buffers are malloc'd to their exact size so that AddressSanitizer catches
 * a filter reading or writing outside them.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/img.h"

#define TU_RNG_SEED 0x6a09e667f3bcc909ULL
#include "testutil.h"

/* ---- images -------------------------------------------------------------------------- */

typedef struct timg_s {
    img_info_t info;
    unsigned char *p; /* height rows, packed */
} timg_t;

static timg_t timg_new(uint32_t w, uint32_t h, uint32_t c, uint32_t maxval)
{
    timg_t t;
    memset(&t, 0, sizeof t);
    t.info.width = w;
    t.info.height = h;
    t.info.channels = c;
    t.info.maxval = maxval;
    t.info.depth = maxval > 255 ? 2 : 1;
    t.info.format = IMG_PNM;
    t.p = calloc((size_t)h * img_row_bytes(&t.info) + 1, 1);
    return t;
}

static uint32_t get(const timg_t *t, uint32_t x, uint32_t y, uint32_t ch)
{
    size_t i = ((size_t)y * t->info.width + x) * t->info.channels + ch;
    return t->info.depth == 1 ? t->p[i] : ((const uint16_t *)(const void *)t->p)[i];
}

static void put(timg_t *t, uint32_t x, uint32_t y, uint32_t ch, uint32_t v)
{
    size_t i = ((size_t)y * t->info.width + x) * t->info.channels + ch;
    if (t->info.depth == 1)
        t->p[i] = (unsigned char)v;
    else
        ((uint16_t *)(void *)t->p)[i] = (uint16_t)v;
}

/* The sample at (x, y) with coordinates clamped into the image. */
static double at(const timg_t *t, long x, long y, uint32_t ch)
{
    long w = (long)t->info.width, h = (long)t->info.height;
    x = x < 0 ? 0 : x >= w ? w - 1 : x;
    y = y < 0 ? 0 : y >= h ? h - 1 : y;
    return get(t, (uint32_t)x, (uint32_t)y, ch);
}

/* Random samples; `smooth` makes neighbouring pixels close (the other
 * extreme from noise, so that values land all over the rounding range). */
static timg_t random_image(uint32_t w, uint32_t h, uint32_t c, uint32_t maxval, int smooth)
{
    timg_t t = timg_new(w, h, c, maxval);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++)
            for (uint32_t ch = 0; ch < c; ch++) {
                uint32_t v = (uint32_t)(rnd() % ((uint64_t)maxval + 1));
                if (smooth) v = (uint32_t)((uint64_t)maxval * (x + 2 * y + ch) / (w + 2 * h + c));
                put(&t, x, y, ch, v);
            }
    return t;
}

static int alpha_of(uint32_t c)
{
    return c == 2 || c == 4;
}

/* ---- the reference ------------------------------------------------------------------------- */

static double clampd(double v, double maxval)
{
    return v < 0 ? 0 : v > maxval ? maxval : v;
}

static uint32_t round_clamp(double v, uint32_t maxval)
{
    return (uint32_t)floor(clampd(v, maxval) + 0.5);
}

static double ref_luma(const timg_t *t, long x, long y)
{
    if (t->info.channels < 3) return at(t, x, y, 0);
    return 0.299 * at(t, x, y, 0) + 0.587 * at(t, x, y, 1) + 0.114 * at(t, x, y, 2);
}

/* Gaussian weights for offsets -R..R in g[0..2R], normalised in double. */
static int ref_gauss(double sigma, double *g)
{
    int R = (int)ceil(3 * sigma);
    double sum = 0;
    for (int k = -R; k <= R; k++)
        sum += g[k + R] = exp(-(double)k * k / (2 * sigma * sigma));
    for (int k = 0; k <= 2 * R; k++)
        g[k] /= sum;
    return R;
}

static double ref_blur(const timg_t *t, double sigma, long x, long y, uint32_t ch)
{
    double g[64];
    int R = ref_gauss(sigma, g);
    double v = 0;
    for (int dy = -R; dy <= R; dy++)
        for (int dx = -R; dx <= R; dx++)
            v += g[dy + R] * g[dx + R] * at(t, x + dx, y + dy, ch);
    return v;
}

/* Exact integer box mean, rounded half up. */
static uint32_t ref_box(const timg_t *t, int r, long x, long y, uint32_t ch)
{
    uint64_t sum = 0, n = (uint64_t)(2 * r + 1) * (uint64_t)(2 * r + 1);
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++)
            sum += (uint64_t)at(t, x + dx, y + dy, ch);
    return (uint32_t)((2 * sum + n) / (2 * n));
}

/* The reference value of output channel och of pixel (x, y), as a double
 * before rounding (box: already the exact result). */
static double ref_value(const img_filter_t *f, const timg_t *t, long x, long y, uint32_t och)
{
    switch (f->kind) {
    case IMG_F_GRAY:
        return ref_luma(t, x, y);
    case IMG_F_BLUR:
        return ref_blur(t, f->sigma, x, y, och);
    case IMG_F_SHARPEN: {
        double v = at(t, x, y, och);
        return v + f->amount * (v - ref_blur(t, f->sigma, x, y, och));
    }
    case IMG_F_SOBEL: {
        double gx = 0, gy = 0;
        for (int d = -1; d <= 1; d++) {
            double wt = d == 0 ? 2 : 1;
            gx += wt * (ref_luma(t, x + 1, y + d) - ref_luma(t, x - 1, y + d));
            gy += wt * (ref_luma(t, x + d, y + 1) - ref_luma(t, x + d, y - 1));
        }
        return sqrt(gx * gx + gy * gy);
    }
    default:
        return ref_box(t, f->radius, x, y, och);
    }
}

/* ---- calling the filter ---------------------------------------------------------------------- */

static img_info_t out_info(const img_filter_t *f, const timg_t *t)
{
    img_info_t o = t->info;
    o.channels = img_filter_channels(f, t->info.channels);
    return o;
}

/* Runs f on rows [a, b) of t with exactly sized copies of the buffers.
 * Returns the output rows (malloc'd, *oa and *ob set), or NULL on an error
 * (asserted). */
static unsigned char *run_strip(const img_filter_t *f, const timg_t *t, uint32_t a, uint32_t b,
                                uint32_t *oa, uint32_t *ob)
{
    size_t rb = img_row_bytes(&t->info);
    img_info_t o = out_info(f, t);
    size_t orb = img_row_bytes(&o);
    unsigned char *src = malloc((size_t)(b - a) * rb + 1);
    unsigned char *dst = malloc((size_t)(b - a) * orb + 1);
    memcpy(src, t->p + (size_t)a * rb, (size_t)(b - a) * rb);
    memset(dst, 0xa5, (size_t)(b - a) * orb);
    img_info_t in = t->info;
    in.height = 12345; /* ignored: H is the argument */
    int rc = img_filter_apply(f, &in, t->info.height, a, b, src, dst, oa, ob);
    free(src);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc) {
        free(dst);
        return NULL;
    }
    return dst;
}

/* The whole image in one call. */
static timg_t run_whole(const img_filter_t *f, const timg_t *t)
{
    uint32_t oa = 99, ob = 99;
    timg_t r = timg_new(t->info.width, t->info.height, img_filter_channels(f, t->info.channels),
                        t->info.maxval);
    unsigned char *d = run_strip(f, t, 0, t->info.height, &oa, &ob);
    CU_ASSERT_EQUAL(oa, 0);
    CU_ASSERT_EQUAL(ob, t->info.height);
    if (d) memcpy(r.p, d, (size_t)t->info.height * img_row_bytes(&r.info));
    free(d);
    return r;
}

static const char *fname(const img_filter_t *f)
{
    static const char *const n[] = {"gray", "blur", "sobel", "sharpen", "box"};
    return n[f->kind];
}

/* ---- checks ---------------------------------------------------------------------------------- */

/* Samples compared with the reference, and how many of those were off by
 * exactly one level (allowed, but should be rare: a filter that rounds a
 * little wrong everywhere stays within one level too). */
static long n_compared, n_off_by_one;

/* Compares the whole-image output with the reference: colour channels within
 * `tol` levels, alpha exactly the input's. Returns the number of bad samples
 * (reporting the first). */
static long check_against_ref(const img_filter_t *f, const timg_t *t, const timg_t *o, int tol)
{
    long bad = 0;
    uint32_t oc = o->info.channels, mv = t->info.maxval;
    for (uint32_t y = 0; y < t->info.height; y++)
        for (uint32_t x = 0; x < t->info.width; x++)
            for (uint32_t ch = 0; ch < oc; ch++) {
                long want, got = get(o, x, y, ch);
                if (alpha_of(oc) && ch == oc - 1)
                    want = get(t, x, y, t->info.channels - 1);
                else if (f->kind == IMG_F_BOX)
                    want = ref_box(t, f->radius, x, y, ch);
                else
                    want = round_clamp(ref_value(f, t, x, y, ch), mv);
                int ok = f->kind == IMG_F_BOX || (alpha_of(oc) && ch == oc - 1)
                             ? got == want
                             : labs(got - want) <= tol;
                n_compared++;
                n_off_by_one += labs(got - want) == 1;
                if (!ok && bad++ == 0)
                    fprintf(stderr,
                            "\n  %s sigma %g r %d: %ux%u c%u maxval %u: (%u,%u) ch %u got %ld "
                            "want %ld\n",
                            fname(f), f->sigma, f->radius, t->info.width, t->info.height,
                            t->info.channels, mv, x, y, ch, got, want);
            }
    return bad;
}

/* Checks one strip [a, b): the rows it gives are those the contract names,
 * and each equals the row of the whole-image output. Marks them in `seen`. */
static int check_strip(const img_filter_t *f, const timg_t *t, const timg_t *whole, uint32_t a,
                       uint32_t b, char *seen)
{
    uint32_t H = t->info.height, oa = 77777, ob = 77777;
    long r = img_filter_radius(f);
    long wa = a == 0 ? 0 : (long)a + r, wb = b == H ? (long)H : (long)b - r;
    unsigned char *d = run_strip(f, t, a, b, &oa, &ob);
    if (!d) return 0;
    int ok = 1;
    if (wa >= wb) {
        ok = oa == ob;
    } else {
        ok = oa == (uint32_t)wa && ob == (uint32_t)wb;
        size_t orb = img_row_bytes(&whole->info);
        for (uint32_t y = oa; ok && y < ob; y++) {
            ok = memcmp(d + (size_t)(y - oa) * orb, whole->p + (size_t)y * orb, orb) == 0;
            if (seen) seen[y] = 1;
        }
    }
    if (!ok)
        fprintf(stderr, "\n  %s: %ux%u c%u H %u strip [%u,%u) gave [%u,%u), want [%ld,%ld)%s\n",
                fname(f), t->info.width, H, t->info.channels, H, a, b, oa, ob, wa, wb,
                oa == wa && ob == wb ? " with different bytes" : "");
    free(d);
    return ok;
}

/* Output strips of s rows each with their halo: every row is produced, and
 * each is the same as in the whole-image call. */
static int check_strips_of(const img_filter_t *f, const timg_t *t, const timg_t *whole, uint32_t s)
{
    uint32_t H = t->info.height, r = (uint32_t)img_filter_radius(f);
    char *seen = calloc(H, 1);
    int ok = 1;
    for (uint32_t y0 = 0; y0 < H && ok; y0 += s) {
        uint32_t y1 = y0 + s < H ? y0 + s : H;
        uint32_t a = y0 > r ? y0 - r : 0;
        uint32_t b = y1 + r < H ? y1 + r : H;
        ok = check_strip(f, t, whole, a, b, seen);
    }
    for (uint32_t y = 0; y < H && ok; y++)
        ok = seen[y];
    free(seen);
    return ok;
}

/* ---- the filters to try ------------------------------------------------------------------------
 */

static const img_filter_t filters[] = {
    {IMG_F_GRAY, 0, 0, 0},   {IMG_F_BLUR, 0.6, 0, 0},      {IMG_F_BLUR, 1.5, 0, 0},
    {IMG_F_BLUR, 3.0, 0, 0}, {IMG_F_SHARPEN, 1.0, 1.5, 0}, {IMG_F_SHARPEN, 0.7, 0.5, 0},
    {IMG_F_SOBEL, 0, 0, 0},  {IMG_F_BOX, 0, 0, 0},         {IMG_F_BOX, 0, 0, 1},
    {IMG_F_BOX, 0, 0, 2},    {IMG_F_BOX, 0, 0, 4},
};
#define NFILTERS (sizeof filters / sizeof filters[0])

static const uint32_t maxvals[] = {255, 65535, 1000};

/* ---- tests -------------------------------------------------------------------------------------
 */

static void test_radius_and_channels(void)
{
    img_filter_t f = {IMG_F_GRAY, 0, 0, 0};
    CU_ASSERT_EQUAL(img_filter_radius(&f), 0);
    CU_ASSERT_EQUAL(img_filter_channels(&f, 1), 1);
    CU_ASSERT_EQUAL(img_filter_channels(&f, 2), 2);
    CU_ASSERT_EQUAL(img_filter_channels(&f, 3), 1);
    CU_ASSERT_EQUAL(img_filter_channels(&f, 4), 2);
    f.kind = IMG_F_SOBEL;
    CU_ASSERT_EQUAL(img_filter_radius(&f), 1);
    CU_ASSERT_EQUAL(img_filter_channels(&f, 3), 1);
    CU_ASSERT_EQUAL(img_filter_channels(&f, 4), 2);
    f.kind = IMG_F_BLUR;
    f.sigma = 3;
    CU_ASSERT_EQUAL(img_filter_radius(&f), 9);
    f.sigma = 0.5;
    CU_ASSERT_EQUAL(img_filter_radius(&f), 2);
    f.sigma = 1.01;
    CU_ASSERT_EQUAL(img_filter_radius(&f), 4);
    for (uint32_t c = 1; c <= 4; c++)
        CU_ASSERT_EQUAL(img_filter_channels(&f, c), c);
    f.kind = IMG_F_SHARPEN;
    f.sigma = 2;
    CU_ASSERT_EQUAL(img_filter_radius(&f), 6);
    f.kind = IMG_F_BOX;
    f.radius = 5;
    CU_ASSERT_EQUAL(img_filter_radius(&f), 5);
    CU_ASSERT_EQUAL(img_filter_channels(&f, 4), 4);
}

/* Every filter, channel count and maxval against the reference. */
static void test_against_reference(void)
{
    n_compared = n_off_by_one = 0;
    static const uint32_t sizes[][2] = {{23, 17}, {1, 9}, {6, 1}, {2, 3}};
    for (size_t fi = 0; fi < NFILTERS; fi++)
        for (uint32_t c = 1; c <= 4; c++)
            for (size_t mi = 0; mi < 3; mi++)
                for (size_t si = 0; si < 4; si++)
                    for (int smooth = 0; smooth < 2; smooth++) {
                        timg_t t = random_image(sizes[si][0], sizes[si][1], c, maxvals[mi], smooth);
                        timg_t o = run_whole(&filters[fi], &t);
                        CU_ASSERT_EQUAL(check_against_ref(&filters[fi], &t, &o, 1), 0);
                        free(o.p);
                        free(t.p);
                    }
    fprintf(stderr, "(%ld of %ld samples one level off) ", n_off_by_one, n_compared);
    CU_ASSERT(n_off_by_one * 1000 <= n_compared);
}

/* Strips of every size (plus halo), for small and odd shapes, including H
 * below the radius and H = 1. */
static void test_strip_invariance(void)
{
    static const uint32_t widths[] = {1, 2, 7, 64};
    static const uint32_t heights[] = {1, 2, 3, 8, 21};
    for (size_t fi = 0; fi < NFILTERS; fi++)
        for (size_t wi = 0; wi < 4; wi++)
            for (size_t hi = 0; hi < 5; hi++) {
                uint32_t c = 1 + (uint32_t)((fi + wi + hi) % 4);
                uint32_t mv = maxvals[(fi + hi) % 3];
                timg_t t = random_image(widths[wi], heights[hi], c, mv, 0);
                timg_t whole = run_whole(&filters[fi], &t);
                for (uint32_t s = 1; s <= heights[hi]; s++)
                    CU_ASSERT(check_strips_of(&filters[fi], &t, &whole, s));
                free(whole.p);
                free(t.p);
            }
}

/* Arbitrary strips [a, b), too small ones included: whatever rows come out
 * are the contract's and equal the whole-image rows; none is an error. */
static void test_random_strips(void)
{
    for (size_t fi = 0; fi < NFILTERS; fi++)
        for (uint32_t c = 1; c <= 4; c++) {
            uint32_t H = 1 + (uint32_t)(rnd() % 30), W = 1 + (uint32_t)(rnd() % 40);
            timg_t t = random_image(W, H, c, maxvals[rnd() % 3], 0);
            timg_t whole = run_whole(&filters[fi], &t);
            for (int i = 0; i < 60; i++) {
                uint32_t a = (uint32_t)(rnd() % H);
                uint32_t b = a + 1 + (uint32_t)(rnd() % (H - a));
                CU_ASSERT(check_strip(&filters[fi], &t, &whole, a, b, NULL));
            }
            free(whole.p);
            free(t.p);
        }
}

/* A strip that cannot give a row: 0, no rows. */
static void test_too_small(void)
{
    img_filter_t f = {IMG_F_BLUR, 2.0, 0, 0}; /* radius 6 */
    timg_t t = random_image(5, 40, 3, 255, 0);
    uint32_t oa = 1, ob = 2;
    unsigned char *d = run_strip(&f, &t, 10, 22, &oa, &ob);
    CU_ASSERT_EQUAL(oa, ob);
    free(d);
    d = run_strip(&f, &t, 10, 23, &oa, &ob); /* exactly one row: 16 */
    CU_ASSERT_EQUAL(oa, 16);
    CU_ASSERT_EQUAL(ob, 17);
    free(d);
    free(t.p);
}

/* Alpha comes through untouched by every filter (also checked against the
 * reference above, here on noise in both alpha and colour). */
static void test_alpha_unchanged(void)
{
    for (size_t fi = 0; fi < NFILTERS; fi++)
        for (uint32_t c = 2; c <= 4; c += 2)
            for (size_t mi = 0; mi < 3; mi++) {
                timg_t t = random_image(19, 11, c, maxvals[mi], 0);
                timg_t o = run_whole(&filters[fi], &t);
                long bad = 0;
                for (uint32_t y = 0; y < 11; y++)
                    for (uint32_t x = 0; x < 19; x++)
                        bad += get(&o, x, y, o.info.channels - 1) != get(&t, x, y, c - 1);
                CU_ASSERT_EQUAL(bad, 0);
                free(o.p);
                free(t.p);
            }
}

/* Box is integer arithmetic: exactly the reference, also for large radii
 * and 16-bit extremes. */
static void test_box_exact(void)
{
    static const int radii[] = {1, 2, 3, 7, 20};
    for (size_t ri = 0; ri < 5; ri++)
        for (uint32_t c = 1; c <= 4; c++)
            for (size_t mi = 0; mi < 3; mi++) {
                img_filter_t f = {IMG_F_BOX, 0, 0, radii[ri]};
                timg_t t = random_image(13, 9, c, maxvals[mi], 0);
                timg_t o = run_whole(&f, &t);
                CU_ASSERT_EQUAL(check_against_ref(&f, &t, &o, 0), 0);
                free(o.p);
                free(t.p);
            }
}

/* A constant image stays constant (sobel: 0), at 0, at maxval and between. */
static void test_constant(void)
{
    for (size_t fi = 0; fi < NFILTERS; fi++)
        for (uint32_t c = 1; c <= 4; c++)
            for (size_t mi = 0; mi < 3; mi++) {
                uint32_t mv = maxvals[mi];
                uint32_t vals[] = {0, mv, mv / 3, 1};
                for (size_t vi = 0; vi < 4; vi++) {
                    timg_t t = timg_new(10, 7, c, mv);
                    for (uint32_t y = 0; y < 7; y++)
                        for (uint32_t x = 0; x < 10; x++)
                            for (uint32_t ch = 0; ch < c; ch++)
                                put(&t, x, y, ch, vals[vi]);
                    const img_filter_t *f = &filters[fi];
                    timg_t o = run_whole(f, &t);
                    uint32_t want = f->kind == IMG_F_SOBEL ? 0 : vals[vi];
                    long bad = 0;
                    for (uint32_t y = 0; y < 7; y++)
                        for (uint32_t x = 0; x < 10; x++)
                            for (uint32_t ch = 0; ch < o.info.channels; ch++) {
                                int is_alpha = alpha_of(c) && ch == o.info.channels - 1;
                                bad += get(&o, x, y, ch) != (is_alpha ? vals[vi] : want);
                            }
                    if (bad)
                        fprintf(stderr, "\n  %s c%u maxval %u value %u: %ld bad samples\n",
                                fname(f), c, mv, vals[vi], bad);
                    CU_ASSERT_EQUAL(bad, 0);
                    free(o.p);
                    free(t.p);
                }
            }
}

/* A bigger image at the benchmark's settings: a wide strip whose rows are
 * processed in several blocks, against the reference and in strips. */
static void test_wide(void)
{
    img_filter_t fs[] = {{IMG_F_BLUR, 3.0, 0, 0}, {IMG_F_SOBEL, 0, 0, 0}};
    for (size_t fi = 0; fi < 2; fi++) {
        timg_t t = random_image(700, 30, 3, 255, 0);
        timg_t whole = run_whole(&fs[fi], &t);
        CU_ASSERT_EQUAL(check_against_ref(&fs[fi], &t, &whole, 1), 0);
        CU_ASSERT(check_strips_of(&fs[fi], &t, &whole, 7));
        free(whole.p);
        free(t.p);
    }
}

/* Gray input through gray is a copy; RGB through gray is the rounded luma. */
static void test_gray_values(void)
{
    img_filter_t f = {IMG_F_GRAY, 0, 0, 0};
    timg_t t = timg_new(3, 1, 3, 255);
    uint32_t px[3][3] = {{255, 0, 0}, {0, 255, 0}, {10, 20, 30}};
    for (uint32_t x = 0; x < 3; x++)
        for (uint32_t ch = 0; ch < 3; ch++)
            put(&t, x, 0, ch, px[x][ch]);
    timg_t o = run_whole(&f, &t);
    CU_ASSERT_EQUAL(get(&o, 0, 0, 0), 76);  /* 76.245 */
    CU_ASSERT_EQUAL(get(&o, 1, 0, 0), 150); /* 149.685 */
    CU_ASSERT_EQUAL(get(&o, 2, 0, 0), 18);  /* 2.99 + 11.74 + 3.42 = 18.15 */
    free(o.p);
    free(t.p);
    timg_t g = random_image(9, 4, 2, 1000, 0);
    timg_t og = run_whole(&f, &g);
    CU_ASSERT(memcmp(og.p, g.p, 4 * img_row_bytes(&g.info)) == 0);
    free(og.p);
    free(g.p);
}

int main(void)
{
    static const tu_test_t tests[] = {
        {"radius and channels", test_radius_and_channels},
        {"every filter against the reference", test_against_reference},
        {"strips of every size", test_strip_invariance},
        {"random strips", test_random_strips},
        {"strip too small for a row", test_too_small},
        {"alpha unchanged", test_alpha_unchanged},
        {"box exact", test_box_exact},
        {"constant image", test_constant},
        {"wide rows", test_wide},
        {"gray values", test_gray_values},
        {NULL, NULL},
    };
    return tu_main("imgfilter", NULL, NULL, tests);
}
