/*
 * test_kmeans.c - unit tests of the kmeans arithmetic (kernels/kmeans.h).
 *
 * Exact sums are checked against sums whose exact value is known by other
 * means: integers (summed in __int128, converted by the compiler's correctly
 * rounded __int128 -> double), scaled integers, values cancelled by their
 * negatives, and hand-made rounding cases. Order independence is checked by
 * shuffling and regrouping the same values into several accumulators whose
 * digits are then added, as threads and ranks do. A naive double sum fails
 * most of these, so they test the accumulator and not luck.
 *
 * The assignment loop (vectorised, cloned per CPU) is checked against a
 * plain scalar loop over km_dist2 (bit-equal labels and distances) and
 * against long double distances, across tile boundaries (k = 1 .. 33) and odd
 * row counts; ties go to the lowest index.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kmeans.h"

#define TU_RNG_SEED 0x3c6ef372fe94f82bULL
#include "testutil.h"

static double unit(void) { return (double)(rnd() >> 11) * 0x1p-53; }

static void shuffle(double *v, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rnd() % i);
        double t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

/* Sums v through `groups` accumulators (values dealt at random), digits
 * added afterwards like the kernel's threads and ranks. */
static double grouped_sum(const km_xlayout_t *L, const double *v, size_t n, int groups)
{
    int64_t *acc = calloc((size_t)groups * (size_t)L->n, 8);
    CU_ASSERT_PTR_NOT_NULL_FATAL(acc);
    for (size_t i = 0; i < n; i++) km_xadd(L, acc + (rnd() % (uint64_t)groups) * (size_t)L->n, v[i]);
    for (int g = 0; g < groups; g++) km_xnorm(L, acc + (size_t)g * (size_t)L->n);
    for (int g = 1; g < groups; g++)
        for (int i = 0; i < L->n; i++) acc[i] += acc[(size_t)g * (size_t)L->n + (size_t)i];
    double r = km_xvalue(L, acc);
    free(acc);
    return r;
}

static int same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

static void test_integers(void)
{
    km_xlayout_t L;
    km_xlayout_full(&L);
    for (int round = 0; round < 200; round++) {
        size_t n = 1 + rnd() % 2000;
        double *v = malloc(n * sizeof *v);
        __int128 exact = 0;
        int bits = 1 + (int)(rnd() % 62);
        for (size_t i = 0; i < n; i++) {
            int64_t x = (int64_t)(rnd() >> (64 - bits));
            if (rnd() & 1) x = -x;
            x &= ~(((int64_t)1 << (bits > 53 ? bits - 53 : 0)) - 1); /* representable */
            v[i] = (double)x;
            exact += x;
        }
        double want = (double)exact; /* correctly rounded by libgcc */
        for (int g = 1; g <= 4; g++) {
            shuffle(v, n);
            CU_ASSERT(same_bits(grouped_sum(&L, v, n, g), want));
        }
        free(v);
    }
}

static void test_scaled_and_window(void)
{
    /* integers * 2^s: exact sum = (sum of integers) * 2^s; also through the
     * window layout computed from the values, as the kernel does. */
    for (int round = 0; round < 200; round++) {
        size_t n = 1 + rnd() % 1000;
        int s = (int)(rnd() % 200) - 120;
        double *v = malloc(n * sizeof *v);
        __int128 exact = 0;
        for (size_t i = 0; i < n; i++) {
            int64_t x = (int64_t)(rnd() >> 12) - ((int64_t)1 << 51);
            v[i] = ldexp((double)x, s);
            exact += x;
        }
        double want = ldexp((double)exact, s);
        km_xlayout_t F, W;
        km_xlayout_full(&F);
        int emax = INT_MIN, emin = INT_MAX;
        km_exponents(v, n, &emax, &emin);
        km_xlayout(&W, emax, emin);
        CU_ASSERT(W.n < F.n);
        for (size_t i = 0; i < n; i++) {
            CU_ASSERT(fabs(v[i]) < ldexp(1, emax));
            CU_ASSERT(v[i] == 0 || fmod(v[i], ldexp(1, emin)) == 0);
        }
        CU_ASSERT(same_bits(grouped_sum(&F, v, n, 3), want));
        CU_ASSERT(same_bits(grouped_sum(&W, v, n, 2), want));
        free(v);
    }
}

static void test_cancellation(void)
{
    /* Random values of wildly different magnitudes and their negatives, plus
     * one target: the exact sum is the target. */
    km_xlayout_t L;
    km_xlayout_full(&L);
    int naive_wrong = 0;
    for (int round = 0; round < 300; round++) {
        size_t m = 1 + rnd() % 300, n = 2 * m + 1;
        double *v = malloc(n * sizeof *v);
        for (size_t i = 0; i < m; i++) {
            double x = ldexp(unit() + 0.5, (int)(rnd() % 400) - 200);
            if (rnd() & 1) x = -x;
            v[2 * i] = x;
            v[2 * i + 1] = -x;
        }
        double t = ldexp(unit() - 0.5, (int)(rnd() % 60) - 30);
        v[n - 1] = t;
        shuffle(v, n);
        double naive = 0;
        for (size_t i = 0; i < n; i++) naive += v[i];
        naive_wrong += !same_bits(naive, t);
        for (int g = 1; g <= 5; g += 2) CU_ASSERT(same_bits(grouped_sum(&L, v, n, g), t));
        free(v);
    }
    CU_ASSERT(naive_wrong > 100); /* the cases are hard for plain double sums */
}

static void test_rounding(void)
{
    km_xlayout_t L;
    km_xlayout_full(&L);
    struct {
        double a[4];
        double want;
    } cases[] = {
        {{0x1p53, 1, 0, 0}, 0x1p53},                /* tie: to even (down) */
        {{0x1p53, 3, 0, 0}, 0x1p53 + 4},            /* tie: to even (up) */
        {{0x1p53, 1, 0x1p-30, 0}, 0x1p53 + 2},      /* above the tie: sticky bit */
        {{0x1p53, 1, -0x1p-30, 0}, 0x1p53},         /* below the tie */
        {{1e100, 1, -1e100, 0}, 1},                 /* catastrophic cancellation */
        {{-0x1p53, -1, 0, 0}, -0x1p53},             /* negative tie */
        {{-0x1p53, -3, 0, 0}, -0x1p53 - 4},
        {{DBL_MAX, -DBL_MAX, 0x1p-1074, 0}, 0x1p-1074}, /* extremes */
        {{0x1p-1074, 0x1p-1074, 0x1p-1074, 0}, 0x3p-1074},
        {{0.1, 0.2, -0.3, 0}, 0x1p-55}, /* exact (Python: Fraction(0.1)+Fraction(0.2)-Fraction(0.3)) */
        {{1, -1, 0, 0}, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int64_t acc[128] = {0};
        for (int i = 0; i < 4; i++) km_xadd(&L, acc, cases[c].a[i]);
        double got = km_xvalue(&L, acc);
        if (!same_bits(got, cases[c].want)) printf("\n  case %zu: got %a, want %a\n", c, got, cases[c].want);
        CU_ASSERT(same_bits(got, cases[c].want));
    }
    /* km_xvalue does not modify the accumulator; zero stays +0. */
    int64_t z[128] = {0};
    CU_ASSERT(same_bits(km_xvalue(&L, z), 0.0));
    km_xadd(&L, z, NAN);
    km_xadd(&L, z, INFINITY);
    CU_ASSERT(same_bits(km_xvalue(&L, z), 0.0));
}

static void test_exponents(void)
{
    double v[] = {0.75, -3, 0x1p-1074, 1e300, 0, -0.0};
    int emax = INT_MIN, emin = INT_MAX;
    km_exponents(v, 2, &emax, &emin);
    CU_ASSERT_EQUAL(emax, 2);  /* 3 < 2^2 */
    CU_ASSERT_EQUAL(emin, -2); /* 0.75 = 3 * 2^-2 */
    km_exponents(v + 2, 4, &emax, &emin);
    CU_ASSERT_EQUAL(emin, -1074);
    CU_ASSERT(ldexp(1, emax - 1) <= 1e300 && 1e300 < ldexp(1, emax));
}

/* ---- numbers ------------------------------------------------------------------------- */

/* km_parse_double against strtod on the whole string: the same verdict and,
 * for numbers, the same bits. */
static void same_as_strtod(const char *str)
{
    double a = 0, b;
    char *end;
    size_t n = strlen(str);
    int ok = km_parse_double(str, str + n, &a);
    b = strtod(str, &end);
    int sok = n > 0 && end == str + n;
    if (ok != sok || (ok && !same_bits(a, b))) printf("\n  '%s': %d %a, strtod %d %a\n", str, ok, a, sok, b);
    CU_ASSERT_EQUAL(ok, sok);
    if (ok && sok) CU_ASSERT(same_bits(a, b));
}

static void test_parse(void)
{
    static const char *const fixed[] = {
        "0", "-0", "+0", "0.0", "-0.000", ".5", "5.", "-.5e1", "1e22", "1e23", "1e-22", "1e-23",
        "9007199254740992", "9007199254740993", "9007199254740993.0", "0.1", "0.3", "5.1",
        "123456789012345678", "1234567890123456789", "12345678901234567890", "1e308", "1e309",
        "1e-400", "4.9e-324", "2.2250738585072014e-308", "00000000000000000000001.5",
        "0.0000000000000000000000000001", "1.7976931348623157e308", "inf", "-inf", "nan",
        "Infinity", "0x1p3", "", ".", "-", "+", "e5", "1e", "1e+", "1.5.5", "1,5", "1 ", " 1",
        "--1", "1e5x", "3.14159265358979323846264338327950288", "1E5", "1e05", "1e-0"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) same_as_strtod(fixed[i]);
    /* random decimal strings of every shape */
    char buf[96];
    for (int r = 0; r < 200000; r++) {
        size_t n = 0;
        if (rnd() % 3 == 0) buf[n++] = rnd() & 1 ? '-' : '+';
        int ni = (int)(rnd() % 21), nf = (int)(rnd() % 21), dot = (int)(rnd() % 4) != 0;
        for (int i = 0; i < ni; i++) buf[n++] = (char)('0' + rnd() % 10);
        if (dot) buf[n++] = '.';
        for (int i = 0; dot && i < nf; i++) buf[n++] = (char)('0' + rnd() % 10);
        if (rnd() % 3 == 0) {
            buf[n++] = rnd() & 1 ? 'e' : 'E';
            if (rnd() & 1) buf[n++] = rnd() & 1 ? '-' : '+';
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%d", (int)(rnd() % 40));
        }
        buf[n] = 0;
        same_as_strtod(buf);
    }
    /* what data files hold: printf of random doubles */
    for (int r = 0; r < 100000; r++) {
        double x = ldexp(unit() - 0.5, (int)(rnd() % 80) - 40);
        snprintf(buf, sizeof buf, r % 3 == 0 ? "%.6f" : r % 3 == 1 ? "%.17g" : "%g", x);
        same_as_strtod(buf);
    }
}

/* ---- assignment ---------------------------------------------------------------------- */

static void check_assign(size_t rows, size_t d, size_t k, int dup)
{
    double *x = malloc(rows * d * sizeof *x), *c = malloc(k * d * sizeof *c);
    double *ct = malloc(km_kpad(k) * d * sizeof *ct), *dist = malloc(rows * sizeof *dist);
    int32_t *lab = malloc(rows * sizeof *lab);
    CU_ASSERT_FATAL(x && c && ct && dist && lab);
    for (size_t i = 0; i < rows * d; i++) x[i] = (unit() - 0.5) * 10;
    for (size_t i = 0; i < k * d; i++) c[i] = (unit() - 0.5) * 10;
    if (dup && k > 2) memcpy(c + (k - 1) * d, c + 1 * d, d * sizeof *c); /* a twin of centroid 1 */
    km_transpose(c, k, d, ct);
    km_assign(x, rows, d, ct, k, lab, dist);
    for (size_t i = 0; i < rows; i++) {
        /* scalar loop, same arithmetic: bit-equal */
        double best = INFINITY;
        int32_t bl = 0;
        for (size_t q = 0; q < k; q++) {
            double v = km_dist2(x + i * d, c + q * d, d);
            if (v < best) {
                best = v;
                bl = (int32_t)q;
            }
        }
        CU_ASSERT_EQUAL(lab[i], bl);
        CU_ASSERT(same_bits(dist[i], best));
        /* long double: the label is a nearest centroid up to rounding */
        long double mine = 0, lo = INFINITY;
        for (size_t q = 0; q < k; q++) {
            long double s = 0;
            for (size_t j = 0; j < d; j++) {
                long double e = (long double)x[i * d + j] - c[q * d + j];
                s += e * e;
            }
            if (q == (size_t)lab[i]) mine = s;
            if (s < lo) lo = s;
        }
        CU_ASSERT(mine <= lo * (1 + 1e-12L));
        if (dup && k > 2) CU_ASSERT(lab[i] != (int32_t)(k - 1)); /* ties: lowest index */
    }
    free(x);
    free(c);
    free(ct);
    free(dist);
    free(lab);
}

static void test_assign(void)
{
    static const size_t ks[] = {1, 2, 3, 15, 16, 17, 31, 33};
    static const size_t ds[] = {1, 2, 3, 7, 32};
    static const size_t rs[] = {1, 2, 3, 17, 256};
    for (size_t a = 0; a < sizeof ks / sizeof *ks; a++)
        for (size_t b = 0; b < sizeof ds / sizeof *ds; b++)
            for (size_t r = 0; r < sizeof rs / sizeof *rs; r++) check_assign(rs[r], ds[b], ks[a], r & 1);
}

static void test_assign_ties(void)
{
    /* Every centroid equal: label 0 for every row. */
    size_t k = 20, d = 3, rows = 5;
    double c[60], ct[32 * 3], x[15], dist[5];
    int32_t lab[5];
    for (size_t i = 0; i < k * d; i++) c[i] = 1.5;
    for (size_t i = 0; i < rows * d; i++) x[i] = (double)i;
    km_transpose(c, k, d, ct);
    km_assign(x, rows, d, ct, k, lab, dist);
    for (size_t i = 0; i < rows; i++) CU_ASSERT_EQUAL(lab[i], 0);
}

int main(void)
{
    static const tu_test_t tests[] = {
        {"exact sums of integers, any grouping", test_integers},
        {"scaled values, windowed layout", test_scaled_and_window},
        {"cancellation across magnitudes", test_cancellation},
        {"rounding to nearest, ties to even", test_rounding},
        {"exponent bounds", test_exponents},
        {"numbers parse as strtod does", test_parse},
        {"assignment equals the scalar loop", test_assign},
        {"assignment ties", test_assign_ties},
        {NULL, NULL},
    };
    return tu_main("kmeans", NULL, NULL, tests);
}
