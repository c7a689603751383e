/*
 * kmeans_math.c - exact sums and the assignment loop (see kmeans.h).
 *
 * Built with -ffp-contract=off -fno-math-errno: every fused multiply-add is
 * an explicit fma(), so no clone of km_assign contracts differently from
 * another, and fma() compiles to one instruction where the CPU has it.
 */
#include "kmeans.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#define DIGIT 32

void km_xlayout(km_xlayout_t *L, int emax, int emin)
{
    if (emin > emax) emin = emax;
    int top = emax + 64; /* 2^64 values below 2^emax */
    int n = (top - emin) / DIGIT + 4; /* + the digits a 53-bit value spans, + sign */
    if (n > KM_X_MAX) {
        n = KM_X_MAX;
        emin = top - (KM_X_MAX - 4) * DIGIT;
    }
    L->lo = emin;
    L->n = n;
}

void km_xlayout_full(km_xlayout_t *L)
{
    L->lo = -1074;
    L->n = (1024 + 64 + 1074) / DIGIT + 4;
}

/* v = (-1)^neg * m * 2^w with m < 2^53, from the bits (no libm). 0 for
 * zero, infinity and NaN. */
static inline int split_double(double v, uint64_t *m, int *w, int *neg)
{
    uint64_t b;
    memcpy(&b, &v, 8);
    int ex = (int)((b >> 52) & 0x7ff);
    uint64_t f = b & (((uint64_t)1 << 52) - 1);
    if (ex == 0x7ff || (ex == 0 && f == 0)) return 0;
    if (ex == 0) {
        *m = f;
        *w = -1074;
    } else {
        *m = f | ((uint64_t)1 << 52);
        *w = ex - 1075;
    }
    *neg = (int)(b >> 63);
    return 1;
}

void km_xadd(const km_xlayout_t *L, int64_t *acc, double v)
{
    uint64_t m;
    int w, neg;
    if (!split_double(v, &m, &w, &neg)) return;
    int sh = w - L->lo;
    if (sh < 0) { /* below the window (only when it was cut): round */
        if (sh < -63) return;
        uint64_t half = (uint64_t)1 << (-sh - 1), rest = m & ((half << 1) - 1);
        m >>= -sh;
        if (rest > half || (rest == half && (m & 1))) m++;
        sh = 0;
        if (!m) return;
    }
    int i = sh / DIGIT;
    unsigned __int128 t = (unsigned __int128)m << (sh % DIGIT);
    int64_t d0 = (int64_t)(uint32_t)t, d1 = (int64_t)(uint32_t)(t >> 32), d2 = (int64_t)(t >> 64);
    if (i + 2 >= L->n) i = L->n - 3; /* cannot happen for values inside the layout */
    if (neg) {
        acc[i] -= d0;
        acc[i + 1] -= d1;
        acc[i + 2] -= d2;
    } else {
        acc[i] += d0;
        acc[i + 1] += d1;
        acc[i + 2] += d2;
    }
}

void km_xnorm(const km_xlayout_t *L, int64_t *acc)
{
    for (int i = 0; i + 1 < L->n; i++) {
        int64_t c = acc[i] >> DIGIT; /* floor division (arithmetic shift) */
        acc[i] -= c * ((int64_t)1 << DIGIT);
        acc[i + 1] += c;
    }
}

double km_xvalue(const km_xlayout_t *L, const int64_t *acc)
{
    int64_t a[KM_X_MAX + 40];
    int n = L->n;
    memcpy(a, acc, (size_t)n * sizeof *a);
    km_xnorm(L, a);
    double sign = 1;
    if (a[n - 1] < 0) { /* negate, then carry again */
        for (int i = 0; i < n; i++) a[i] = -a[i];
        km_xnorm(L, a);
        sign = -1;
    }
    int h = n - 1;
    while (h >= 0 && a[h] == 0) h--;
    if (h < 0) return 0.0;
    /* The top three digits (96 bits) and a sticky bit for the rest. */
    unsigned __int128 top = 0;
    for (int i = h; i > h - 3; i--) top = (top << 32) | (uint64_t)(i >= 0 ? a[i] : 0);
    int sticky = 0;
    for (int i = h - 3; i >= 0; i--) sticky |= a[i] != 0;
    int lead = 64 + 31 - __builtin_clz((uint32_t)a[h]); /* index of the top bit in `top` */
    int shift = lead - 52;                              /* keep 53 bits */
    uint64_t mant;
    if (shift > 0) {
        unsigned __int128 half = (unsigned __int128)1 << (shift - 1);
        unsigned __int128 rest = top & ((half << 1) - 1);
        mant = (uint64_t)(top >> shift);
        if (rest > half || (rest == half && (sticky || (mant & 1)))) mant++;
    } else {
        mant = (uint64_t)top;
        shift = 0;
    }
    return sign * ldexp((double)mant, L->lo + DIGIT * (h - 2) + shift);
}

void km_exponents(const double *v, size_t n, int *emax, int *emin)
{
    int hi = *emax, lo = *emin;
    for (size_t i = 0; i < n; i++) {
        uint64_t m;
        int w, neg;
        if (!split_double(v[i], &m, &w, &neg)) continue;
        int top = w + 64 - __builtin_clzll(m); /* |v| < 2^top */
        int low = w + __builtin_ctzll(m);
        if (top > hi) hi = top;
        if (low < lo) lo = low;
    }
    *emax = hi;
    *emin = lo;
}

/* ---- numbers ----------------------------------------------------------------- */

/* Decimal fast path (Clinger): up to 19 significant digits; when the digits
 * fit in 53 bits and the power of ten is exact (10^0 .. 10^22), one
 * multiplication or division by an exact power gives the correctly rounded
 * double, the same as strtod. 1: done; 0: not this simple form (strtod
 * decides, including whether it is a number at all). */
static int parse_fast(const char *s, const char *e, double *v)
{
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const char *q = s;
    int neg = 0;
    if (q < e && (*q == '-' || *q == '+')) neg = *q++ == '-';
    uint64_t m = 0;
    int nd = 0, frac = 0, any = 0, dot = 0;
    for (; q < e; q++) {
        unsigned c = (unsigned char)*q - '0';
        if (c < 10) {
            any = 1;
            if (m == 0 && c == 0) { /* leading zeros carry no digit */
                if (dot) frac++;
                continue;
            }
            if (++nd > 19) return 0;
            m = m * 10 + c;
            if (dot) frac++;
        } else if (*q == '.' && !dot) {
            dot = 1;
        } else {
            break;
        }
    }
    if (!any) return 0;
    int ex = 0;
    if (q < e && (*q == 'e' || *q == 'E')) {
        q++;
        int eneg = 0;
        if (q < e && (*q == '-' || *q == '+')) eneg = *q++ == '-';
        if (q == e) return 0;
        for (; q < e; q++) {
            unsigned c = (unsigned char)*q - '0';
            if (c >= 10 || ex > 100000) return 0;
            ex = ex * 10 + (int)c;
        }
        if (eneg) ex = -ex;
    }
    if (q != e) return 0;
    int p = ex - frac;
    double r;
    if (m == 0) r = 0;
    else if (m > ((uint64_t)1 << 53) || p < -22 || p > 22) return 0;
    else r = p < 0 ? (double)m / p10[-p] : (double)m * p10[p];
    *v = neg ? -r : r;
    return 1;
}

int km_parse_double(const char *s, const char *e, double *v)
{
    if (parse_fast(s, e, v)) return 1;
    char small[128], *buf = small;
    size_t n = (size_t)(e - s);
    if (n == 0) return 0;
    if (n >= sizeof small && !(buf = malloc(n + 1))) return 0;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *stop;
    errno = 0;
    *v = strtod(buf, &stop);
    int ok = stop == buf + n && stop != buf;
    if (buf != small) free(buf);
    return ok;
}

/* ---- assignment ---------------------------------------------------------- */

size_t km_kpad(size_t k) { return (k + KM_TILE - 1) / KM_TILE * KM_TILE; }

void km_transpose(const double *c, size_t k, size_t d, double *ct)
{
    size_t kp = km_kpad(k);
    for (size_t j = 0; j < d; j++)
        for (size_t q = 0; q < kp; q++) ct[j * kp + q] = q < k ? c[q * d + j] : 0.0;
}

double km_dist2(const double *x, const double *c, size_t d)
{
    double s = 0;
    for (size_t j = 0; j < d; j++) {
        double e = x[j] - c[j];
        s = fma(e, e, s);
    }
    return s;
}

/* Distances of two rows to KM_TILE centroids: the inner loop runs across
 * centroids (vectorised), the accumulators stay in registers. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
static void tile2(const double *x0, const double *x1, size_t d, const double *ct, size_t kp,
                  double *o0, double *o1)
{
    double a0[KM_TILE], a1[KM_TILE];
    for (int t = 0; t < KM_TILE; t++) a0[t] = a1[t] = 0;
    for (size_t j = 0; j < d; j++) {
        const double *c = ct + j * kp;
        double v0 = x0[j], v1 = x1[j];
        for (int t = 0; t < KM_TILE; t++) {
            double e0 = v0 - c[t], e1 = v1 - c[t];
            a0[t] = fma(e0, e0, a0[t]);
            a1[t] = fma(e1, e1, a1[t]);
        }
    }
    for (int t = 0; t < KM_TILE; t++) {
        o0[t] = a0[t];
        o1[t] = a1[t];
    }
}

void km_assign(const double *x, size_t rows, size_t d, const double *ct, size_t k,
               int32_t *label, double *dist)
{
    size_t kp = km_kpad(k);
    double o0[KM_TILE], o1[KM_TILE];
    for (size_t i = 0; i < rows; i += 2) {
        const double *x0 = x + i * d, *x1 = i + 1 < rows ? x0 + d : x0;
        double b0 = INFINITY, b1 = INFINITY;
        int32_t l0 = 0, l1 = 0;
        for (size_t c0 = 0; c0 < kp; c0 += KM_TILE) {
            tile2(x0, x1, d, ct + c0, kp, o0, o1);
            size_t lim = k - c0 < KM_TILE ? k - c0 : KM_TILE;
            for (size_t t = 0; t < lim; t++) {
                if (o0[t] < b0) {
                    b0 = o0[t];
                    l0 = (int32_t)(c0 + t);
                }
                if (o1[t] < b1) {
                    b1 = o1[t];
                    l1 = (int32_t)(c0 + t);
                }
            }
        }
        label[i] = l0;
        dist[i] = b0;
        if (i + 1 < rows) {
            label[i + 1] = l1;
            dist[i + 1] = b1;
        }
    }
}
