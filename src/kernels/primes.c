/*
 * primes.c - counts (and optionally lists) the primes in A:B (both ends
 * included) with a segmented sieve of Eratosthenes over odd numbers.
 * The base primes up to sqrt(B) are sieved once in check(); each chunk is an
 * integer range sieved in cache-sized segments. Reduced: the count; ordered:
 * the list (--list). Thread safety: map() only reads the options.
 */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../util.h"
#include "mpimap/mpimap.h"

#define PRIMES_MAX 1000000000000000ULL /* 1e15: base primes up to 3.2e7 */
#define SEG_ODDS (1u << 18)             /* odd numbers per segment: 256 KiB */

typedef struct primes_opts_s {
    int list;
    uint64_t a, b;
    uint32_t *base; /* odd primes <= sqrt(b) */
    size_t nbase;
} primes_opts_t;

static const mpm_option_t primes_options[] = {
    {"list", 'l', MPM_OPT_FLAG, offsetof(primes_opts_t, list), NULL,
     "write the primes, one per line in increasing order, instead of their count", 0, -1, NULL, 0},
    {NULL, 0, 0, 0, NULL, NULL, 0, 0, NULL, 0}};

static void primes_init(void *o) { memset(o, 0, sizeof(primes_opts_t)); }
static void primes_free(void *o) { free(((primes_opts_t *)o)->base); }

static uint64_t isqrt(uint64_t n)
{
    uint64_t r = (uint64_t)sqrtl((long double)n);
    while (r * r > n) r--;
    while ((r + 1) * (r + 1) <= n) r++;
    return r;
}

/* Odd primes up to n (simple sieve). */
static int base_primes(uint64_t n, uint32_t **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    if (n < 3) return 0;
    unsigned char *s = calloc((size_t)n + 1, 1);
    if (!s) return -1;
    size_t cap = 1024, k = 0;
    uint32_t *v = malloc(cap * sizeof *v);
    if (!v) {
        free(s);
        return -1;
    }
    for (uint64_t i = 3; i <= n; i += 2) {
        if (s[i]) continue;
        if (k == cap) {
            cap *= 2;
            uint32_t *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                free(v);
                free(s);
                return -1;
            }
            v = nv;
        }
        v[k++] = (uint32_t)i;
        for (uint64_t j = i * i; j <= n; j += 2 * i) s[j] = 1;
    }
    free(s);
    *out = v;
    *count = k;
    return 0;
}

static int primes_check(void *op, int argc, char **argv, mpm_inputs_t *in, mpm_err_t *err)
{
    primes_opts_t *o = op;
    if (argc != 1)
        return mpm_err_set(err, -1, "expected one range A:B (e.g. 1:1000000), got %d arguments",
                           argc);
    const char *r = argv[0];
    const char *colon = strchr(r, ':');
    char a[32];
    if (!colon || (size_t)(colon - r) >= sizeof a)
        return mpm_err_set(err, -1, "malformed range '%s': expected A:B, two integers", r);
    memcpy(a, r, (size_t)(colon - r));
    a[colon - r] = 0;
    if (mpm__parse_u64(a, &o->a) < 0 || mpm__parse_u64(colon + 1, &o->b) < 0)
        return mpm_err_set(err, -1,
                           "malformed range '%s': expected A:B with integers 0 <= A <= B <= %llu",
                           r, PRIMES_MAX);
    if (o->a > o->b)
        return mpm_err_set(err, -1, "reversed range '%s': A must not be greater than B", r);
    if (o->b > PRIMES_MAX)
        return mpm_err_set(err, -1, "range '%s' is too large: B must be at most %llu", r,
                           PRIMES_MAX);
    if (base_primes(isqrt(o->b), &o->base, &o->nbase) < 0)
        return mpm_err_set(err, -1, "out of memory for the base primes");
    mpm_input_t x = {.kind = MPM_IN_RANGE, .name = r, .lo = o->a, .hi = o->b + 1};
    return mpm_inputs_add(in, x) ? mpm_err_set(err, -1, "out of memory") : 0;
}

typedef struct primes_partial_s {
    uint64_t count;
    unsigned char *seg; /* per-thread scratch */
} primes_partial_t;

static void *primes_new(const void *o)
{
    (void)o;
    /* The sieve's scratch is allocated by the first map: a partial that is
     * only deserialised and merged (rank 0's, a journal segment's) never
     * needs it. */
    return calloc(1, sizeof(primes_partial_t));
}

static void primes_pfree(void *p)
{
    if (!p) return;
    free(((primes_partial_t *)p)->seg);
    free(p);
}

static int emit_u64(mpm_buf_t *out, mpm_format_t fmt, const char *const *cols, uint64_t v)
{
    char s[24];
    int n = snprintf(s, sizeof s, "%llu", (unsigned long long)v);
    if (fmt == MPM_FMT_JSON) {
        mpm_val_t x = {s, (size_t)n, 1};
        return mpm_emit_row(out, fmt, cols, &x, 1);
    }
    s[n++] = '\n';
    return mpm_buf_append(out, s, (size_t)n);
}

static const char *const list_cols[] = {"prime", NULL};
static const char *const count_cols[] = {"count", NULL};
static const char *const *primes_columns(const void *op)
{
    return ((const primes_opts_t *)op)->list ? list_cols : count_cols;
}

/* Counts primes in [lo, hi) using partial->seg; appends them when list. */
static int primes_map(const void *op, const mpm_chunk_t *c, void *pp, mpm_format_t fmt,
                      mpm_buf_t *out, mpm_err_t *err)
{
    const primes_opts_t *o = op;
    primes_partial_t *part = pp;
    uint64_t lo = c->lo, hi = c->hi, count = 0;
    if (lo <= 2 && hi > 2) {
        count++;
        if (o->list && emit_u64(out, fmt, list_cols, 2)) return mpm_err_set(err, -1, "out of memory");
    }
    /* Odd numbers in [lo, hi): from first = lo|1 (at least 3). */
    uint64_t first = lo < 3 ? 3 : (lo | 1);
    if (first < hi && !part->seg && !(part->seg = malloc(SEG_ODDS)))
        return mpm_err_set(err, -1, "out of memory for the sieve's %u KiB segment", SEG_ODDS >> 10);
    for (uint64_t s = first; s < hi; s += 2 * (uint64_t)SEG_ODDS) {
        uint64_t e = s + 2 * (uint64_t)SEG_ODDS; /* exclusive, same parity */
        if (e > hi) e = hi;
        size_t n = (size_t)((e - s + 1) / 2); /* odd numbers s, s+2, ... < e */
        memset(part->seg, 0, n);
        for (size_t k = 0; k < o->nbase; k++) {
            uint64_t p = o->base[k];
            if (p * p >= e) break;
            uint64_t m = p * p;
            if (m < s) {
                m = (s + p - 1) / p * p;
                if (!(m & 1)) m += p;
            }
            for (uint64_t i = (m - s) / 2; i < n; i += p) part->seg[i] = 1;
        }
        for (size_t i = 0; i < n; i++) {
            if (part->seg[i]) continue;
            count++;
            if (o->list && emit_u64(out, fmt, list_cols, s + 2 * i))
                return mpm_err_set(err, -1, "out of memory");
        }
    }
    part->count += count;
    return 0;
}

static int primes_merge(const void *o, void *dst, void *src, mpm_err_t *err)
{
    (void)o;
    (void)err;
    ((primes_partial_t *)dst)->count += ((primes_partial_t *)src)->count;
    ((primes_partial_t *)src)->count = 0;
    return 0;
}

static int primes_ser(const void *o, const void *p, mpm_buf_t *out)
{
    (void)o;
    uint64_t c = ((const primes_partial_t *)p)->count;
    return mpm_buf_append(out, &c, sizeof c);
}

static void *primes_deser(const void *o, const void *data, size_t len, mpm_err_t *err)
{
    if (len != sizeof(uint64_t)) {
        mpm_err_set(err, -1, "corrupt partial count (%zu bytes)", len);
        return NULL;
    }
    primes_partial_t *p = primes_new(o);
    if (!p) {
        mpm_err_set(err, -1, "out of memory");
        return NULL;
    }
    memcpy(&p->count, data, sizeof p->count);
    return p;
}

static int primes_finish(const void *op, void *pp, mpm_format_t fmt, mpm_buf_t *out, mpm_err_t *err)
{
    const primes_opts_t *o = op;
    if (o->list) return 0;
    if (emit_u64(out, fmt, count_cols, ((primes_partial_t *)pp)->count))
        return mpm_err_set(err, -1, "out of memory");
    return 0;
}

const mpm_kernel_t mpm_kernel_primes = {
    .abi = MPM_KERNEL_ABI,
    .name = "primes",
    .summary = "count (or --list) the primes in A:B with a segmented sieve (CPU-bound range)",
    .synopsis = "A:B",
    .description =
        "Counts the primes p with A <= p <= B (both ends included; B <= 1e15) and prints\n"
        "the count, or with --list the primes themselves in increasing order. The range\n"
        "is split into chunks of --chunk-size integers (default 8M), each sieved in\n"
        "256 KiB segments.\n",
    .options = primes_options,
    .opts_size = sizeof(primes_opts_t),
    .opts_init = primes_init,
    .check = primes_check,
    .opts_free = primes_free,
    .records = MPM_REC_LINES,
    .default_chunk_size = 8u << 20,
    .columns = primes_columns,
    .partial_new = primes_new,
    .partial_free = primes_pfree,
    .merge = primes_merge,
    .serialize = primes_ser,
    .deserialize = primes_deser,
    .finish = primes_finish,
    .map = primes_map,
};
