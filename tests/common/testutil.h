/*
 * testutil.h - helpers shared by the CUnit tests (unit/ and mpi/): a seeded
 * random generator, output comparison, independent references (a naive word
 * counter, trial-division primes, iterative Fibonacci) and the CUnit
 * runner boilerplate.
 *
 * Header only: every function is static and marked unused, so a test file
 * takes what it needs. Nothing here calls the code under test, so the
 * references stay independent of it.
 */
#ifndef MPIMAP_TESTUTIL_H
#define MPIMAP_TESTUTIL_H

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TU_UNUSED __attribute__((unused))

/* ---- random numbers --------------------------------------------------------------- */

/* xorshift64. A file that wants rnd() defines TU_RNG_SEED (non-zero) before
 * including this header; each file keeps its own seed, hence its own data. */
TU_UNUSED static uint64_t tu_xorshift64(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

#ifdef TU_RNG_SEED
static uint64_t tu_rng_state = TU_RNG_SEED;
TU_UNUSED static uint64_t rnd(void)
{
    return tu_xorshift64(&tu_rng_state);
}
#endif

/* ---- comparing outputs ------------------------------------------------------------ */

/* Prints where got and want first differ, with some context. */
TU_UNUSED static void tu_show_diff(const char *what, const char *got, size_t gl, const char *want,
                                   size_t wl)
{
    size_t i = 0;
    while (i < gl && i < wl && got[i] == want[i])
        i++;
    fprintf(stderr, "\n  %s: outputs differ at byte %zu (got %zu bytes, want %zu)\n", what, i, gl,
            wl);
    size_t from = i > 40 ? i - 40 : 0;
    fprintf(stderr, "  got : '%.*s'\n  want: '%.*s'\n", (int)((gl - from) < 80 ? gl - from : 80),
            got + from, (int)((wl - from) < 80 ? wl - from : 80), want + from);
}

/* 1 if got (NULL: no output at all) holds exactly want; else says why, returns 0. */
TU_UNUSED static int tu_same_bytes(const char *got, size_t gl, const char *want, size_t wl,
                                   const char *what)
{
    if (got && gl == wl && (wl == 0 || memcmp(got, want, gl) == 0)) return 1;
    if (!got)
        fprintf(stderr, "\n  %s: no output\n", what);
    else
        tu_show_diff(what, got, gl, want, wl);
    return 0;
}

/* ---- independent references ------------------------------------------------------- */

/* A word byte: ASCII letter or digit, '_', or any byte >= 0x80. */
TU_UNUSED static int tu_word_byte(unsigned char c)
{
    return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') || c == '_';
}

typedef struct tu_word_s {
    const char *s;
    size_t n;
    uint64_t count;
} tu_word_t;

TU_UNUSED static int tu_word_bytes_cmp(const void *a, const void *b)
{
    const tu_word_t *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, n);
    if (c) return c;
    return (x->n > y->n) - (x->n < y->n);
}

TU_UNUSED static int tu_word_rank_cmp(const void *a, const void *b)
{
    const tu_word_t *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return tu_word_bytes_cmp(a, b);
}

/* Naive word count: collect, sort, count runs, sort by count (then bytes).
 * Rows "COUNT\tWORD\n", the first `top` of them if top > 0. Returns a
 * malloc'd, NUL-terminated text of *outlen bytes. */
TU_UNUSED static char *tu_ref_wordcount(const char *text, size_t len, int case_sensitive,
                                        long long top, size_t *outlen)
{
    char *t = malloc(len + 1);
    if (len) memcpy(t, text, len);
    if (!case_sensitive)
        for (size_t i = 0; i < len; i++)
            if (t[i] >= 'A' && t[i] <= 'Z') t[i] = (char)(t[i] - 'A' + 'a');
    size_t nw = 0, cap = 1024;
    tu_word_t *w = malloc(cap * sizeof *w);
    for (size_t i = 0; i < len;) {
        if (!tu_word_byte((unsigned char)t[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && tu_word_byte((unsigned char)t[j]))
            j++;
        if (nw == cap) w = realloc(w, (cap *= 2) * sizeof *w);
        w[nw].s = t + i;
        w[nw].n = j - i;
        w[nw].count = 1;
        nw++;
        i = j;
    }
    qsort(w, nw, sizeof *w, tu_word_bytes_cmp);
    size_t nd = 0;
    for (size_t i = 0; i < nw; i++) {
        if (nd && tu_word_bytes_cmp(&w[nd - 1], &w[i]) == 0)
            w[nd - 1].count++;
        else
            w[nd++] = w[i];
    }
    qsort(w, nd, sizeof *w, tu_word_rank_cmp);
    if (top > 0 && (size_t)top < nd) nd = (size_t)top;
    size_t ol = 0, ocap = 64;
    for (size_t i = 0; i < nd; i++)
        ocap += w[i].n + 24;
    char *o = malloc(ocap);
    for (size_t i = 0; i < nd; i++) {
        ol += (size_t)snprintf(o + ol, ocap - ol, "%llu\t", (unsigned long long)w[i].count);
        memcpy(o + ol, w[i].s, w[i].n);
        ol += w[i].n;
        o[ol++] = '\n';
    }
    o[ol] = 0;
    free(w);
    free(t);
    *outlen = ol;
    return o;
}

/* Trial division. */
TU_UNUSED static int tu_is_prime(uint64_t n)
{
    if (n < 2) return 0;
    if (n % 2 == 0) return n == 2;
    for (uint64_t d = 3; d <= n / d; d += 2)
        if (n % d == 0) return 0;
    return 1;
}

TU_UNUSED static uint64_t tu_fib_iter(unsigned n)
{
    uint64_t a = 0, b = 1;
    while (n--) {
        uint64_t t = a + b;
        a = b;
        b = t;
    }
    return a;
}

/* The four hex digits at p (a JSON \u escape) into *v; 0, or -1 if not hex. */
TU_UNUSED static int tu_hex4(const char *p, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char h = p[i];
        *v <<= 4;
        if (h >= '0' && h <= '9')
            *v |= (unsigned)(h - '0');
        else if (h >= 'a' && h <= 'f')
            *v |= (unsigned)(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F')
            *v |= (unsigned)(h - 'A' + 10);
        else
            return -1;
    }
    return 0;
}

/* ---- running a suite -------------------------------------------------------------- */

typedef struct tu_test_s {
    const char *name;
    CU_TestFunc fn;
} tu_test_t;

/* Registers one suite with `tests` (ended by a {NULL, NULL} entry) and runs it
 * verbosely. Returns 0 with *failures set (failed assertions), or -1 if CUnit
 * could not be set up. */
TU_UNUSED static int tu_run_suite(const char *suite, CU_InitializeFunc init, CU_CleanupFunc clean,
                                  const tu_test_t *tests, unsigned *failures)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return -1;
    int rc = -1;
    CU_pSuite s = CU_add_suite(suite, init, clean);
    if (s) {
        rc = 0;
        for (; tests->name; tests++)
            if (!CU_add_test(s, tests->name, tests->fn)) rc = -1;
    }
    if (rc == 0) {
        CU_basic_set_mode(CU_BRM_VERBOSE);
        CU_basic_run_tests();
        *failures = CU_get_number_of_failures();
    }
    CU_cleanup_registry();
    return rc;
}

/* main() of a unit test: exit 0 if all passed, 1 on a failure, 2 if CUnit failed. */
TU_UNUSED static int tu_main(const char *suite, CU_InitializeFunc init, CU_CleanupFunc clean,
                             const tu_test_t *tests)
{
    unsigned failures = 0;
    if (tu_run_suite(suite, init, clean, tests, &failures) < 0) return 2;
    return failures ? 1 : 0;
}

#endif
