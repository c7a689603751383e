/*
 * imgfilter.c - the image kernel's filters on strips of rows (see img.h).
 *
 * Every output pixel is a fixed sequence of float (or integer) operations on
 * the input samples of its support, in a fixed order, so a pixel comes out
 * bit for bit the same whatever strip it was computed in. That order is the
 * specification; the user documentation copies it:
 *
 *   Edges. Rows above 0 / below H-1 and columns left of 0 / right of
 *     width-1 replicate the edge row / column. A strip [a, b) gives rows
 *     [a', b') with a' = a ? a + r : 0 and b' = b == H ? H : b - r; none
 *     (return 0, *oa == *ob) when a' >= b'.
 *   Alpha (the last channel of 2 or 4) is copied from the same pixel and
 *     never filtered.
 *   Rounding. q = (int)min(max(v + 0.5f, 0), maxval): v + 0.5f is a float
 *     addition, so "half up" is floor(v + 0.5) with v + 0.5 rounded to float
 *     first (a v just below n + 0.5, within half a float ulp, rounds to n+1).
 *   gray: L = (0.299f*R + 0.587f*G) + 0.114f*B in float, rounded. Gray input
 *     is copied.
 *   blur (sigma): R = ceil(3 sigma); w[k] = exp(-k^2 / (2 sigma^2)) in double
 *     for k = -R..R, divided by their sum (added k = -R..R in double), stored
 *     as float. Vertical pass, per sample:
 *       v = w[0]*s[y];  v = v + w[k]*(float)(s[y-k] + s[y+k])  for k = 1..R
 *     (s[y-k] + s[y+k] is an exact integer sum, so it equals the float sum).
 *     Horizontal pass over those floats v (no rounding in between), same
 *     form with neighbours k pixels left and right. Then rounded. Each
 *     channel separately.
 *   sharpen (sigma, amount): g = the blur before rounding, s the sample:
 *     o = s + (float)amount * (s - g), rounded. R as blur.
 *   sobel: L as gray but not rounded (gray input: L = the sample); with t, m,
 *     b the rows above, at and below, and x-1, x+1 the columns:
 *       gx = (t[x+1]-t[x-1]) + 2*(m[x+1]-m[x-1]) + (b[x+1]-b[x-1])
 *       gy = (b[x-1]-t[x-1]) + 2*(b[x]-t[x])     + (b[x+1]-t[x+1])
 *     o = sqrtf(gx*gx + gy*gy), rounded. One channel (+ alpha).
 *   box (radius r): exact integers, n = (2r+1)^2, sum over the window,
 *     o = (2*sum + n) / (2*n) (the mean rounded half up). r = 0 copies.
 *   Degenerate parameters: sigma <= 0 (or NaN) gives radius 0 (a copy);
 *     a negative box radius counts as 0; radii are capped at MAX_RADIUS.
 *
 * Speed (blur is the benchmark): one output row at a time. The vertical
 * pass reads the 2R+1 source rows straight from the strip (integers, a few
 * hundred KB, so they stay in L2) into one float row that has R pixels of
 * room on either side; the room is filled with the edge pixel and the
 * horizontal pass runs over the interleaved channels with a stride of c
 * samples. Both passes are axpy loops over contiguous samples, processed in
 * blocks of BLK so the accumulator stays in L1, which gcc -O3 vectorises.
 * Hot loops are cloned for AVX-512 (x86-64-v4) and AVX2; every clone does the
 * same operations in the same order on each sample, so results do not depend
 * on the CPU. That needs -ffp-contract=off (CMakeLists.txt sets it for this
 * file): gcc's default for gnu11 would fuse a*b+c into FMA in the v4 clone.
 * Scratch memory is malloc'd per call; there is no global mutable state, so
 * calls on different threads are independent.
 */
#include "img.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define MAX_RADIUS (1 << 20) /* far beyond any image; keeps sizes sane */
#define BLK 1024             /* samples per block of an axpy pass (4 KB of floats) */

/* Not under ThreadSanitizer: the clones' ifunc resolvers run while the
 * library is relocated, before TSan's runtime is up, and crash the process. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define HOT __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define HOT
#endif

/* ---- parameters ------------------------------------------------------------------ */

static int gauss_radius(double sigma)
{
    if (!(sigma > 0)) return 0;
    double r = ceil(3.0 * sigma);
    return r > MAX_RADIUS ? MAX_RADIUS : (int)r;
}

int img_filter_radius(const img_filter_t *f)
{
    switch (f->kind) {
    case IMG_F_BLUR:
    case IMG_F_SHARPEN:
        return gauss_radius(f->sigma);
    case IMG_F_SOBEL:
        return 1;
    case IMG_F_BOX:
        return f->radius < 0 ? 0 : f->radius > MAX_RADIUS ? MAX_RADIUS : f->radius;
    default:
        return 0;
    }
}

static int has_alpha(uint32_t c)
{
    return c == 2 || c == 4;
}

uint32_t img_filter_channels(const img_filter_t *f, uint32_t c)
{
    if (f->kind == IMG_F_GRAY || f->kind == IMG_F_SOBEL) return has_alpha(c) ? 2 : 1;
    return c;
}

/* w[0..R]: the normalised Gaussian, w[k] for offsets -k and +k. */
static void gauss_weights(double sigma, int R, float *w)
{
    if (R == 0) {
        w[0] = 1.0f;
        return;
    }
    double sum = 0;
    for (int k = -R; k <= R; k++)
        sum += exp(-(double)k * k / (2.0 * sigma * sigma));
    for (int k = 0; k <= R; k++)
        w[k] = (float)(exp(-(double)k * k / (2.0 * sigma * sigma)) / sum);
}

/* ---- the strip ------------------------------------------------------------------- */

/* What every row loop needs to know about the input. */
typedef struct strip_s {
    const unsigned char *src; /* row a */
    size_t rb;                /* bytes per input row */
    size_t ns;                /* samples per row: width * channels */
    uint32_t w, c, depth, H, a;
    float maxv;
} strip_t;

/* Input row j of the image, j clamped to [0, H): the strip holds it whenever
 * the output row asking for it is one the strip produces. */
static const void *row_at(const strip_t *s, int64_t j)
{
    if (j < 0) j = 0;
    if (j >= (int64_t)s->H) j = (int64_t)s->H - 1;
    return s->src + (size_t)(j - s->a) * s->rb;
}

/* ---- innermost loops ----------------------------------------------------------------- */

/* The loops below are the innermost passes over one block of m samples.
 * Each is a function of its own: inlined into the loop over taps, gcc -O3
 * unrolls-and-jams two taps into a scalar loop instead of vectorising. */

/* o[i] = w0 * mid[i]: the centre tap. */
#define SCALE_BODY(T)                                                                              \
    for (size_t i = 0; i < m; i++)                                                                 \
        o[i] = w0 * (float)mid[i];

/* o[i] = o[i] + wk * (float)(lo[i] + hi[i]): one symmetric pair of taps. */
#define AXPY_BODY(T)                                                                               \
    for (size_t i = 0; i < m; i++)                                                                 \
        o[i] = o[i] + wk * (float)((int32_t)lo[i] + (int32_t)hi[i]);

/* o[i] = (o[i] + wj * (lj[i] + hj[i])) + wk * (lk[i] + hk[i]): two symmetric
 * pairs of taps in one pass over o (the same operations, in the same order, as
 * two passes of one pair). The integer sums are exact, so they equal the sums
 * of the samples as floats. */
#define AXPY2_BODY(T)                                                                              \
    for (size_t i = 0; i < m; i++) {                                                               \
        float t = o[i] + wj * (float)((int32_t)lj[i] + (int32_t)hj[i]);                            \
        o[i] = t + wk * (float)((int32_t)lk[i] + (int32_t)hk[i]);                                  \
    }

HOT __attribute__((noinline)) static void scale_u8(float *restrict o, const uint8_t *restrict mid,
                                                   float w0, size_t m){SCALE_BODY(uint8_t)}

HOT __attribute__((noinline)) static void scale_u16(float *restrict o, const uint16_t *restrict mid,
                                                    float w0, size_t m){SCALE_BODY(uint16_t)}

HOT __attribute__((noinline)) static void axpy_u8(float *restrict o, const uint8_t *restrict lo,
                                                  const uint8_t *restrict hi, float wk,
                                                  size_t m){AXPY_BODY(uint8_t)}

HOT __attribute__((noinline)) static void axpy_u16(float *restrict o, const uint16_t *restrict lo,
                                                   const uint16_t *restrict hi, float wk,
                                                   size_t m){AXPY_BODY(uint16_t)}

HOT __attribute__((noinline)) static void axpy2_u8(float *restrict o, const uint8_t *restrict lj,
                                                   const uint8_t *restrict hj, float wj,
                                                   const uint8_t *restrict lk,
                                                   const uint8_t *restrict hk, float wk,
                                                   size_t m){AXPY2_BODY(uint8_t)}

HOT __attribute__((noinline)) static void axpy2_u16(float *restrict o, const uint16_t *restrict lj,
                                                    const uint16_t *restrict hj, float wj,
                                                    const uint16_t *restrict lk,
                                                    const uint16_t *restrict hk, float wk,
                                                    size_t m){AXPY2_BODY(uint16_t)}

HOT __attribute__((noinline)) static void scale_f(float *restrict o, const float *restrict q,
                                                  float w0, size_t m)
{
    for (size_t i = 0; i < m; i++)
        o[i] = w0 * q[i];
}

HOT __attribute__((noinline)) static void axpy_f(float *restrict o, const float *restrict lo,
                                                 const float *restrict hi, float wk, size_t m)
{
    for (size_t i = 0; i < m; i++)
        o[i] = o[i] + wk * (lo[i] + hi[i]);
}

HOT __attribute__((noinline)) static void axpy2_f(float *restrict o, const float *restrict lj,
                                                  const float *restrict hj, float wj,
                                                  const float *restrict lk,
                                                  const float *restrict hk, float wk, size_t m)
{
    for (size_t i = 0; i < m; i++) {
        float t = o[i] + wj * (lj[i] + hj[i]);
        o[i] = t + wk * (lk[i] + hk[i]);
    }
}

/* ---- vertical pass: integer rows -> one float row ------------------------------------ */

/* rows[R + k] is the row at offset k (k = -R..R); out gets the n samples of
 * the vertical pass. Blocked so that a block of `out` stays in L1 while the
 * 2R+1 input rows stream from L2. */
static void vert(const strip_t *s, const void *const *rows, const float *w, int R, float *out)
{
    size_t n = s->ns, sz = s->depth;
    for (size_t x0 = 0; x0 < n; x0 += BLK) {
        size_t m = n - x0 < BLK ? n - x0 : BLK;
        const unsigned char *mid = (const unsigned char *)rows[R] + x0 * sz;
        if (sz == 1)
            scale_u8(out + x0, mid, w[0], m);
        else
            scale_u16(out + x0, (const uint16_t *)mid, w[0], m);
        const unsigned char *const *r = (const unsigned char *const *)rows + R;
        size_t o = x0 * sz; /* byte offset of the block in a row */
        int k = 1;
        for (; k + 1 <= R; k += 2) /* two pairs of taps per pass over the block */
            if (sz == 1)
                axpy2_u8(out + x0, r[-k] + o, r[k] + o, w[k], r[-k - 1] + o, r[k + 1] + o, w[k + 1],
                         m);
            else
                axpy2_u16(out + x0, (const uint16_t *)(r[-k] + o), (const uint16_t *)(r[k] + o),
                          w[k], (const uint16_t *)(r[-k - 1] + o), (const uint16_t *)(r[k + 1] + o),
                          w[k + 1], m);
        if (k == R) {
            if (sz == 1)
                axpy_u8(out + x0, r[-k] + o, r[k] + o, w[k], m);
            else
                axpy_u16(out + x0, (const uint16_t *)(r[-k] + o), (const uint16_t *)(r[k] + o),
                         w[k], m);
        }
    }
}

/* ---- horizontal pass over interleaved channels ----------------------------------------- */

/* Fills the R pixels of room on either side of the n = width * c samples at
 * p with copies of the edge pixels. */
static void pad_row(float *p, size_t n, uint32_t c, int R)
{
    for (int j = 1; j <= R; j++) {
        memcpy(p - (size_t)j * c, p, c * sizeof *p);
        memcpy(p + n - c + (size_t)j * c, p + n - c, c * sizeof *p);
    }
}

/* out[i] = w[0]*p[i] + sum over k of w[k]*(p[i - kc] + p[i + kc]), k rising. */
static void horiz(const float *p, size_t n, uint32_t c, const float *w, int R, float *out)
{
    for (size_t x0 = 0; x0 < n; x0 += BLK) {
        size_t m = n - x0 < BLK ? n - x0 : BLK;
        const float *q = p + x0;
        scale_f(out + x0, q, w[0], m);
        size_t c1 = c;
        int k = 1;
        for (; k + 1 <= R; k += 2)
            axpy2_f(out + x0, q - k * c1, q + k * c1, w[k], q - (k + 1) * c1, q + (k + 1) * c1,
                    w[k + 1], m);
        if (k == R) axpy_f(out + x0, q - k * c1, q + k * c1, w[k], m);
    }
}

/* ---- float rows -> samples ------------------------------------------------------------- */

/* Round half up and clamp, in an order that vectorises: max/min on floats
 * first (also keeps the int conversion in range), then truncation, which is
 * floor for values >= 0. */
#define STORE_BODY(T)                                                                              \
    for (size_t i = 0; i < n; i++) {                                                               \
        float t = v[i] + 0.5f;                                                                     \
        t = t > 0.0f ? t : 0.0f;                                                                   \
        t = t < maxv ? t : maxv;                                                                   \
        dst[i] = (T)(int32_t)t;                                                                    \
    }

HOT static void store_u8(const float *restrict v, size_t n, float maxv,
                         uint8_t *restrict dst){STORE_BODY(uint8_t)}

HOT static void store_u16(const float *restrict v, size_t n, float maxv, uint16_t *restrict dst)
{
    STORE_BODY(uint16_t)
}

static void store(const strip_t *s, const float *v, size_t n, void *dst)
{
    if (s->depth == 1)
        store_u8(v, n, s->maxv, dst);
    else
        store_u16(v, n, s->maxv, dst);
}

/* Copies the alpha samples of width pixels of c channels from src into dst
 * of oc channels (alpha last in both). */
static void copy_alpha(const strip_t *s, const void *src, void *dst, uint32_t oc)
{
    if (s->depth == 1) {
        const uint8_t *p = src;
        uint8_t *q = dst;
        for (size_t x = 0; x < s->w; x++)
            q[x * oc + oc - 1] = p[x * s->c + s->c - 1];
    } else {
        const uint16_t *p = src;
        uint16_t *q = dst;
        for (size_t x = 0; x < s->w; x++)
            q[x * oc + oc - 1] = p[x * s->c + s->c - 1];
    }
}

/* ---- blur and sharpen -------------------------------------------------------------- */

/* g = s + amount * (s - g) over one row of samples s. */
#define SHARPEN_BODY(T)                                                                            \
    const T *restrict sp = src;                                                                    \
    for (size_t i = 0; i < n; i++) {                                                               \
        float v = (float)sp[i];                                                                    \
        g[i] = v + amount * (v - g[i]);                                                            \
    }

HOT static void sharpen_u8(const void *src, size_t n, float amount,
                           float *restrict g){SHARPEN_BODY(uint8_t)}

HOT static void sharpen_u16(const void *src, size_t n, float amount, float *restrict g)
{
    SHARPEN_BODY(uint16_t)
}

static int run_gauss(const img_filter_t *f, const strip_t *s, int64_t oa, int64_t ob,
                     unsigned char *dst)
{
    int R = gauss_radius(f->sigma);
    size_t padded = s->ns + 2 * (size_t)R * s->c;
    float *w = malloc(((size_t)R + 1) * sizeof *w);
    const void **rows = malloc((2 * (size_t)R + 1) * sizeof *rows);
    float *p = malloc(padded * sizeof *p);
    float *h = malloc(s->ns * sizeof *h);
    int rc = -1;
    if (!w || !rows || !p || !h) goto out;
    gauss_weights(f->sigma, R, w);
    float *pm = p + (size_t)R * s->c; /* first real sample of the padded row */
    float amount = (float)f->amount;
    for (int64_t y = oa; y < ob; y++) {
        for (int k = -R; k <= R; k++)
            rows[R + k] = row_at(s, y + k);
        vert(s, rows, w, R, pm);
        pad_row(pm, s->ns, s->c, R);
        horiz(pm, s->ns, s->c, w, R, h);
        if (f->kind == IMG_F_SHARPEN) {
            if (s->depth == 1)
                sharpen_u8(rows[R], s->ns, amount, h);
            else
                sharpen_u16(rows[R], s->ns, amount, h);
        }
        unsigned char *d = dst + (size_t)(y - oa) * s->rb;
        store(s, h, s->ns, d);
        if (has_alpha(s->c)) copy_alpha(s, rows[R], d, s->c);
    }
    rc = 0;
out:
    free(w);
    free(rows);
    free(p);
    free(h);
    return rc;
}

/* ---- luma: gray and sobel --------------------------------------------------------------- */

/* L[x] for the w pixels of one row: the weighted RGB sum, or the gray
 * sample. One loop per channel count: a constant stride lets gcc vectorise
 * the interleaved loads. */
#define LUMA_LOOP(C)                                                                               \
    for (size_t x = 0; x < w; x++)                                                                 \
        L[x] = (C) < 3 ? (float)p[x * (C)]                                                         \
                       : (0.299f * (float)p[x * (C)] + 0.587f * (float)p[x * (C) + 1]) +           \
                             0.114f * (float)p[x * (C) + 2];

#define LUMA_BODY(T)                                                                               \
    const T *restrict p = src;                                                                     \
    switch (c) {                                                                                   \
    case 1:                                                                                        \
        LUMA_LOOP(1) break;                                                                        \
    case 2:                                                                                        \
        LUMA_LOOP(2) break;                                                                        \
    case 3:                                                                                        \
        LUMA_LOOP(3) break;                                                                        \
    default:                                                                                       \
        LUMA_LOOP(4) break;                                                                        \
    }

HOT static void luma_u8(const void *src, size_t w, uint32_t c,
                        float *restrict L){LUMA_BODY(uint8_t)}

HOT static void luma_u16(const void *src, size_t w, uint32_t c, float *restrict L)
{
    LUMA_BODY(uint16_t)
}

static void luma(const strip_t *s, const void *src, float *L)
{
    if (s->depth == 1)
        luma_u8(src, s->w, s->c, L);
    else
        luma_u16(src, s->w, s->c, L);
}

/* Writes one channel of values v (width of them) into the output row d of
 * oc channels: straight for oc == 1, through `tmp` (a row of width samples)
 * and then interleaved with the source's alpha for oc == 2. */
static void store_plane(const strip_t *s, const float *v, const void *srow, void *tmp, uint32_t oc,
                        void *d)
{
    if (oc == 1) {
        store(s, v, s->w, d);
        return;
    }
    store(s, v, s->w, tmp);
    size_t sz = s->depth;
    for (size_t x = 0; x < s->w; x++)
        memcpy((unsigned char *)d + x * 2 * sz, (unsigned char *)tmp + x * sz, sz);
    copy_alpha(s, srow, d, oc);
}

/* gx*gx + gy*gy from three luma rows each with one pixel of room on either
 * side (t, m, b point at pixel 0). */
HOT static void sobel_row(const float *restrict t, const float *restrict m, const float *restrict b,
                          size_t w, float *restrict out)
{
    for (ptrdiff_t x = 0; x < (ptrdiff_t)w; x++) {
        float gx = ((t[x + 1] - t[x - 1]) + 2.0f * (m[x + 1] - m[x - 1])) + (b[x + 1] - b[x - 1]);
        float gy = ((b[x - 1] - t[x - 1]) + 2.0f * (b[x] - t[x])) + (b[x + 1] - t[x + 1]);
        out[x] = gx * gx + gy * gy;
    }
}

/* v[x] = sqrtf(v[x]). Written with SSE2 (every x86-64 has it) because gcc
 * does not vectorise sqrtf unless errno may be ignored (-fno-math-errno,
 * not set for this file). The square root is correctly rounded in both
 * forms, so they give the same bits. */
static void sqrt_row(float *v, size_t n)
{
    size_t x = 0;
#ifdef __SSE2__
    for (; x + 4 <= n; x += 4)
        _mm_storeu_ps(v + x, _mm_sqrt_ps(_mm_loadu_ps(v + x)));
#endif
    for (; x < n; x++)
        v[x] = sqrtf(v[x]);
}

/* Luma of image row j (clamped) in one of three padded slots, computed only
 * when the slot does not hold it yet: rows j-1, j, j+1 never share a slot. */
static float *luma_slot(const strip_t *s, float *slots, int64_t *held, int64_t j)
{
    if (j < 0) j = 0;
    if (j >= (int64_t)s->H) j = (int64_t)s->H - 1;
    int k = (int)(j % 3);
    float *L = slots + (size_t)k * (s->w + 2) + 1;
    if (held[k] != j) {
        luma(s, row_at(s, j), L);
        L[-1] = L[0];
        L[s->w] = L[s->w - 1];
        held[k] = j;
    }
    return L;
}

static int run_luma(const img_filter_t *f, const strip_t *s, int64_t oa, int64_t ob,
                    unsigned char *dst)
{
    uint32_t oc = has_alpha(s->c) ? 2 : 1;
    size_t orb = (size_t)s->w * oc * s->depth;
    float *slots = malloc(3 * ((size_t)s->w + 2) * sizeof *slots);
    float *v = malloc((size_t)s->w * sizeof *v);
    void *tmp = malloc((size_t)s->w * s->depth);
    int rc = -1;
    if (!slots || !v || !tmp) goto out;
    int64_t held[3] = {-1, -1, -1};
    for (int64_t y = oa; y < ob; y++) {
        const float *m = luma_slot(s, slots, held, y);
        if (f->kind == IMG_F_SOBEL) {
            const float *t = luma_slot(s, slots, held, y - 1);
            const float *b = luma_slot(s, slots, held, y + 1);
            sobel_row(t, m, b, s->w, v);
            sqrt_row(v, s->w);
            m = v;
        }
        store_plane(s, m, row_at(s, y), tmp, oc, dst + (size_t)(y - oa) * orb);
    }
    rc = 0;
out:
    free(slots);
    free(v);
    free(tmp);
    return rc;
}

/* ---- box: exact integer mean ------------------------------------------------------------- */

static uint64_t sample_at(const strip_t *s, const void *row, size_t i)
{
    return s->depth == 1 ? ((const uint8_t *)row)[i] : ((const uint16_t *)row)[i];
}

/* cs[i] += sign * row[i] over a row of samples. */
static void col_add(const strip_t *s, const void *row, int sign, uint64_t *cs)
{
    for (size_t i = 0; i < s->ns; i++)
        cs[i] += sign > 0 ? sample_at(s, row, i) : -sample_at(s, row, i);
}

/* Column sums are kept for the whole window of rows and slid one row down
 * per output row (the window of y+1 is that of y less row clamp(y-r) plus
 * row clamp(y+r+1)); along the row a window sum slides the same way over
 * column sums padded with the edge pixels. Unsigned wrap-around in the
 * subtraction cancels exactly. */
static int run_box(const strip_t *s, int r, int64_t oa, int64_t ob, unsigned char *dst)
{
    size_t c = s->c, padded = s->ns + 2 * (size_t)r * c;
    uint64_t *cp = calloc(padded, sizeof *cp);
    int rc = -1;
    if (!cp) goto out;
    uint64_t *cs = cp + (size_t)r * c;
    uint64_t n = (uint64_t)(2 * r + 1) * (uint64_t)(2 * r + 1);
    for (int k = -r; k <= r; k++)
        col_add(s, row_at(s, oa + k), 1, cs);
    for (int64_t y = oa; y < ob; y++) {
        if (y > oa) {
            col_add(s, row_at(s, y - 1 - r), -1, cs);
            col_add(s, row_at(s, y + r), 1, cs);
        }
        for (int j = 1; j <= r; j++) {
            memcpy(cs - (size_t)j * c, cs, c * sizeof *cs);
            memcpy(cs + s->ns - c + (size_t)j * c, cs + s->ns - c, c * sizeof *cs);
        }
        unsigned char *d = dst + (size_t)(y - oa) * s->rb;
        for (size_t ch = 0; ch < c; ch++) {
            uint64_t sum = 0;
            for (int k = -r; k <= r; k++)
                sum += cp[(size_t)(r + k) * c + ch];
            for (size_t x = 0; x < s->w; x++) {
                uint64_t q = (2 * sum + n) / (2 * n);
                if (s->depth == 1)
                    d[x * c + ch] = (uint8_t)q;
                else
                    ((uint16_t *)d)[x * c + ch] = (uint16_t)q;
                /* slide: drop pixel x - r, take pixel x + r + 1 */
                if (x + 1 < s->w) sum += cp[(x + 2 * (size_t)r + 1) * c + ch] - cp[x * c + ch];
            }
        }
        if (has_alpha(s->c)) copy_alpha(s, row_at(s, y), d, s->c);
    }
    rc = 0;
out:
    free(cp);
    return rc;
}

/* ---- entry point ------------------------------------------------------------------------- */

static void copy_rows(const strip_t *s, int64_t oa, int64_t ob, unsigned char *dst)
{
    if (ob > oa) memcpy(dst, row_at(s, oa), (size_t)(ob - oa) * s->rb);
}

int img_filter_apply(const img_filter_t *f, const img_info_t *in, uint32_t H, uint32_t a,
                     uint32_t b, const void *src, void *dst, uint32_t *oa, uint32_t *ob)
{
    if (in->channels < 1 || in->channels > 4 || (in->depth != 1 && in->depth != 2) || b > H ||
        a > b || f->kind < IMG_F_GRAY || f->kind > IMG_F_BOX)
        return -1;
    int r = img_filter_radius(f);
    int64_t lo = a == 0 ? 0 : (int64_t)a + r;
    int64_t hi = b == H ? (int64_t)H : (int64_t)b - r;
    if (lo >= hi) {
        *oa = *ob = (uint32_t)(lo < (int64_t)b ? lo : b);
        return 0;
    }
    *oa = (uint32_t)lo;
    *ob = (uint32_t)hi;
    if (in->width == 0) return 0; /* rows of no bytes */
    strip_t s = {.src = src,
                 .rb = img_row_bytes(in),
                 .ns = (size_t)in->width * in->channels,
                 .w = in->width,
                 .c = in->channels,
                 .depth = in->depth,
                 .H = H,
                 .a = a,
                 .maxv = (float)in->maxval};
    switch (f->kind) {
    case IMG_F_GRAY:
        if (in->channels <= 2) break; /* already gray: a copy */
        /* fall through */
    case IMG_F_SOBEL:
        return run_luma(f, &s, lo, hi, dst);
    case IMG_F_BLUR:
    case IMG_F_SHARPEN:
        if (r == 0) break;
        return run_gauss(f, &s, lo, hi, dst);
    case IMG_F_BOX:
        if (r == 0) break;
        return run_box(&s, r, lo, hi, dst);
    }
    copy_rows(&s, lo, hi, dst);
    return 0;
}
