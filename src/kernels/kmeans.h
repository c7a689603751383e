/*
 * kmeans.h - the arithmetic of the kmeans kernel that must not depend on
 * ranks or threads: exact sums of doubles, and the distance and assignment
 * loop. Unit-tested on their own (tests/unit/test_kmeans.c).
 *
 * EXACT SUMS. A sum of doubles in floating point depends on the order of the
 * additions, and the order of ranks and threads is not fixed. The kernel
 * therefore sums in double only inside a *block* (a fixed run of rows of one
 * chunk, in row order: the same for any -np/--threads) and adds each block's
 * sum *exactly* into a fixed-point accumulator: an array of 32-bit digits
 * held in int64 (carry-save, signed), digit i weighing 2^(lo + 32 i). Integer
 * addition is associative, so accumulators of threads and ranks can be summed
 * in any order (MPI_SUM on int64) and give the same bits; the result is then
 * rounded once to the nearest double.
 *
 * The window: values are multiples of 2^emin and below 2^emax in magnitude;
 * the accumulator covers bits emin .. emax + 64 (room for 2^64 additions),
 * plus spare digits. A window wider than KM_X_MAX digits is cut at the
 * bottom: each added value is then rounded to the lowest digit, still the
 * same for any order (only then is the sum not exact). km_xlayout_full()
 * covers every finite double.
 *
 * Each digit takes < 2^32 per addition, so 2^31 additions fit before
 * km_xnorm() must carry; the kernel normalises long before that.
 */
#ifndef MPM_KMEANS_H
#define MPM_KMEANS_H

#include <stddef.h>
#include <stdint.h>

#define KM_X_MAX 40 /* digits: 1280 bits */

typedef struct km_xlayout_s {
    int lo; /* weight exponent of digit 0 */
    int n;  /* digits */
} km_xlayout_t;

/* For values |v| < 2^emax that are multiples of 2^emin (emin <= emax). */
void km_xlayout(km_xlayout_t *L, int emax, int emin);
/* Every finite double, exactly (71 digits). */
void km_xlayout_full(km_xlayout_t *L);
/* Adds v (finite) to acc[0 .. L->n). */
void km_xadd(const km_xlayout_t *L, int64_t *acc, double v);
/* Carries: every digit but the top one into [0, 2^32). */
void km_xnorm(const km_xlayout_t *L, int64_t *acc);
/* The accumulated value rounded to the nearest double (ties to even).
 * Does not modify acc. */
double km_xvalue(const km_xlayout_t *L, const int64_t *acc);

/* Exponent bounds of finite values: *emax raised so that |v| < 2^emax for
 * every v, *emin lowered to the weight of the lowest set bit of every
 * non-zero v. Start with *emax = INT_MIN, *emin = INT_MAX. */
void km_exponents(const double *v, size_t n, int *emax, int *emin);

/* ---- numbers ----------------------------------------------------------------- */

/* Parses [s, e) as one whole number (no blanks): 1 and *v, or 0 when it is
 * not a number. The same double as strtod (correctly rounded); a fast path
 * handles up to 19 significant digits with small exponents, strtod the rest
 * (and inf/nan/hex, which it accepts). */
int km_parse_double(const char *s, const char *e, double *v);

/* ---- assignment ---------------------------------------------------------- */

#define KM_TILE 16 /* centroids per pass of the distance loop */

/* Centroids laid out for the distance loop: ct[j * kp + c] is coordinate j
 * of centroid c, kp = k rounded up to KM_TILE (padding columns hold 0 and
 * are never chosen). */
size_t km_kpad(size_t k);
void km_transpose(const double *c, size_t k, size_t d, double *ct);

/* For each of `rows` rows of x (row-major, d values each): the nearest
 * centroid (squared Euclidean distance, the lowest index on ties) into
 * label[i] and its squared distance into dist[i]. The squared distance
 * sum_j (x_j - c_j)^2 is computed in order j = 0 .. d-1 with fused
 * multiply-adds, so the result is the same on every CPU with or without
 * AVX-512/AVX2 (fma() is exact-rounded everywhere). */
void km_assign(const double *x, size_t rows, size_t d, const double *ct, size_t k,
               int32_t *label, double *dist);

/* Squared distance of one row to one centroid (row-major c), same
 * arithmetic as km_assign. */
double km_dist2(const double *x, const double *c, size_t d);

#endif
