/*
 * primes_template.c - a complete mpimap kernel, built outside the mpimap
 * tree and loaded at run time:
 *
 *     mpimap --kernel ./libmpimap-primes-template.so [--list] A:B
 *     mpirun -np 4 mpimap --threads 2 --kernel ./libmpimap-primes-template.so 1:1000000000
 *
 * It counts (or, with --list, writes) the primes p with A <= p <= B, and its
 * output is byte for byte that of the built-in `mpimap primes A:B`, for any
 * number of ranks and threads and in every --format. Copy this directory,
 * rename the kernel, replace the sieve by your computation; the comments
 * say what each part must guarantee. docs/KERNELS.md is the full contract.
 *
 * A kernel is one constant table of function pointers (mpm_kernel_t, at the
 * end of this file) exported under the name `mpimap_kernel`. mpimap owns
 * everything else: parsing the command line with the option table below,
 * cutting the input into chunks, sending them to the ranks, running them on
 * the pool threads, merging, ordering and writing the results, the journal,
 * retries and signals. The kernel says:
 *
 *   1. which options it has and how to check them       (options, check)
 *   2. what its inputs are and how they are cut          (check, records)
 *   3. what to compute on one chunk                      (map)
 *   4. how per-thread results combine into one           (partial_*, merge,
 *      and travel between ranks                           serialize, deserialize)
 *   5. what the final output is                          (finish, columns)
 *
 * Only <mpimap/kernel.h> is needed (not <mpimap/mpimap.h>, so not <mpi.h>),
 * and only libmpimap's helpers declared there are called: mpm_buf_*,
 * mpm_err_set, mpm_emit_row, mpm_inputs_add. A kernel never calls MPI.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpimap/kernel.h>

/* B is at most 1e15 (as for `mpimap primes`): the base primes then go up to
 * sqrt(1e15) ~ 3.2e7 and fit in 32 bits. */
#define RANGE_MAX 1000000000000000ULL
/* One sieve window: this many odd numbers, one byte each (256 KiB, about an
 * L2 cache). */
#define WINDOW_ODDS (1u << 18)

/* ======================================================================
 * 1. Options
 *
 * The engine allocates opts_size bytes, calls opts_init(), then fills the
 * fields named by the option table from the command line (types, bounds and
 * --help come from the table), then calls check() with the positional
 * arguments. Every rank parses the same command line, so every rank has the
 * same options.
 *
 * After check() returns, opts is READ-ONLY: map() reads it concurrently on
 * every pool thread, without locks. That is why whatever the computation
 * needs and can be prepared once (here the base primes) is prepared in
 * check() and stored in opts: it is then shared by all threads for free.
 * (The one exception is the optional layout() hook, ABI 4, called before any
 * map().)
 * ====================================================================== */

typedef struct tpl_opts_s {
    int list;       /* --list: 1 = write the primes, 0 = their count */
    uint64_t a, b;  /* the range A:B, both ends included */
    uint32_t *base; /* the odd primes <= sqrt(B), made by check() */
    size_t nbase;
} tpl_opts_t;

static const mpm_option_t tpl_options[] = {
    /* name, short, type, field, argument name (--help), help, min, max,
     * choices, flags. A FLAG sets an int to 1. MPM_OPTF_NO_FINGERPRINT in
     * flags would say that the value does not change the results (a timeout,
     * a log file): --resume then accepts another value. --list changes the
     * results, so it stays in the journal's fingerprint. */
    {"list", 'l', MPM_OPT_FLAG, offsetof(tpl_opts_t, list), NULL,
     "write the primes, one per line in increasing order, instead of their count", 0, -1, NULL,
     0},
    {NULL, 0, 0, 0, NULL, NULL, 0, 0, NULL, 0} /* end of the table */
};

static void tpl_opts_init(void *opts) { memset(opts, 0, sizeof(tpl_opts_t)); }

/* Frees what check() allocated. Called once at the end of the run, also
 * after a check() that failed half-way (so it must accept NULL fields). */
static void tpl_opts_free(void *opts) { free(((tpl_opts_t *)opts)->base); }

/* floor(sqrt(n)) in integers only (no libm, no rounding surprises). */
static uint64_t isqrt_u64(uint64_t n)
{
    uint64_t r = 0, bit = (uint64_t)1 << 62;
    while (bit > n) bit >>= 2;
    while (bit) {
        if (n >= r + bit) {
            n -= r + bit;
            r = (r >> 1) + bit;
        } else {
            r >>= 1;
        }
        bit >>= 2;
    }
    return r;
}

/* The odd primes <= n, in increasing order (a plain sieve over the odd
 * numbers: byte i stands for 2i + 1). 0, or -1 when memory runs out. */
static int odd_primes_upto(uint64_t n, uint32_t **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    if (n < 3) return 0;
    size_t nodd = (size_t)(n - 1) / 2 + 1; /* 1, 3, 5, ..., up to n */
    unsigned char *composite = calloc(nodd, 1);
    if (!composite) return -1;
    size_t k = 0;
    for (size_t i = 1; i < nodd; i++) {
        if (composite[i]) continue;
        uint64_t p = 2 * (uint64_t)i + 1;
        k++;
        for (uint64_t m = p * p; m <= n; m += 2 * p) composite[(m - 1) / 2] = 1;
    }
    uint32_t *v = malloc(k * sizeof *v);
    if (!v) {
        free(composite);
        return -1;
    }
    k = 0;
    for (size_t i = 1; i < nodd; i++)
        if (!composite[i]) v[k++] = (uint32_t)(2 * i + 1);
    free(composite);
    *out = v;
    *count = k;
    return 0;
}

/* A decimal integer, digits only (no sign, no spaces), that fits in 64 bits. */
static int parse_u64(const char *s, uint64_t *v)
{
    if (*s < '0' || *s > '9') return -1;
    errno = 0;
    char *end;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *v = x;
    return 0;
}

/*
 * check(): validates the options and the positional arguments and declares
 * the inputs. Runs on the main thread of every rank, before anything else.
 *
 * Error contract: on a usage error, fill err with mpm_err_set() (it returns
 * -1, so `return mpm_err_set(...)` reads well) and return -1. mpimap prints
 * "mpimap: error: <message>" once (rank 0) and every rank exits with
 * status 2. The offset argument is -1: a usage error is not at a byte of
 * the data.
 *
 * Inputs: this kernel's input is not a file but a range of integers: one
 * MPM_IN_RANGE input [lo, hi) (hi excluded). The engine cuts it into chunks
 * of --chunk-size integers (default_chunk_size below) and hands map() one
 * [chunk->lo, chunk->hi) at a time. A kernel that reads files declares
 * MPM_IN_FILE inputs instead (and MPM_IN_STDIN for "-"), and map() then gets
 * record-aligned bytes (chunk->data, chunk->len) cut on `records`.
 * `name` (and `data` of MPM_IN_MEMORY inputs) must stay valid for the whole
 * run: argv strings and memory owned by opts do.
 */
static int tpl_check(void *opts, int argc, char **argv, mpm_inputs_t *inputs, mpm_err_t *err)
{
    tpl_opts_t *o = opts;
    if (argc != 1)
        return mpm_err_set(err, -1, "expected one range A:B (e.g. 1:1000000), got %d arguments",
                           argc);
    const char *range = argv[0];
    const char *colon = strchr(range, ':');
    char a[32];
    if (!colon || (size_t)(colon - range) >= sizeof a)
        return mpm_err_set(err, -1, "malformed range '%s': expected A:B, two integers", range);
    memcpy(a, range, (size_t)(colon - range));
    a[colon - range] = '\0';
    if (parse_u64(a, &o->a) < 0 || parse_u64(colon + 1, &o->b) < 0)
        return mpm_err_set(err, -1,
                           "malformed range '%s': expected A:B with integers 0 <= A <= B <= %llu",
                           range, RANGE_MAX);
    if (o->a > o->b)
        return mpm_err_set(err, -1, "reversed range '%s': A must not be greater than B", range);
    if (o->b > RANGE_MAX)
        return mpm_err_set(err, -1, "range '%s' is too large: B must be at most %llu", range,
                           RANGE_MAX);

    /* Work shared by every chunk, done once per rank. */
    if (odd_primes_upto(isqrt_u64(o->b), &o->base, &o->nbase) < 0)
        return mpm_err_set(err, -1, "out of memory for the base primes");

    mpm_input_t in = {.kind = MPM_IN_RANGE, .name = range, .lo = o->a, .hi = o->b + 1};
    if (mpm_inputs_add(inputs, in) < 0) return mpm_err_set(err, -1, "out of memory");
    return 0;
}

/* ======================================================================
 * 2. Output rows and columns
 *
 * Rows are appended to an mpm_buf_t with mpm_emit_row(), which formats them
 * for --format: text (values joined by TAB), tsv (the same, escaped; the
 * engine writes the header line from columns()) or json (one object per
 * row; the engine makes the array). Emitting through mpm_emit_row is what
 * makes -f tsv and -f json work with no code of our own.
 * ====================================================================== */

static const char *const count_columns[] = {"count", NULL};
static const char *const prime_columns[] = {"prime", NULL};

static const char *const *tpl_columns(const void *opts)
{
    return ((const tpl_opts_t *)opts)->list ? prime_columns : count_columns;
}

/* One row holding one unsigned integer. 0, or -1 when memory runs out. */
static int emit_number(mpm_buf_t *out, mpm_format_t fmt, const char *const *cols, uint64_t v)
{
    char s[24];
    int n = snprintf(s, sizeof s, "%llu", (unsigned long long)v);
    mpm_val_t val = {.s = s, .len = (size_t)n, .numeric = 1}; /* bare in JSON */
    return mpm_emit_row(out, fmt, cols, &val, 1);
}

/* ======================================================================
 * 3. The partial result
 *
 * A reduced kernel folds every chunk into a "partial": the engine creates
 * one per pool thread (partial_new), so map() updates it WITHOUT LOCKS.
 * At the end each rank merges its threads' partials, serialises the result
 * and sends it to rank 0, which deserialises and merges the ranks' in rank
 * order and calls finish(). In --journal runs, pool threads also create
 * short-lived "segment" partials, serialise them into the journal and merge
 * them into their own partial: partial_new, partial_free, merge and
 * serialize may therefore run on pool threads and must touch nothing but
 * their arguments (no globals, no static buffers).
 *
 * Chunks reach threads and ranks in an order that changes from run to run,
 * so merge must be commutative and associative for the output to be the
 * same for every -np and --threads: integer sums are; floating-point sums
 * are not (see docs/KERNELS.md).
 *
 * A partial may also carry per-thread working memory that is not part of
 * the result (here the sieve window): it is allocated on first use, never
 * merged, never serialised.
 * ====================================================================== */

typedef struct tpl_partial_s {
    uint64_t count;          /* the result: primes found so far */
    unsigned char *window;   /* scratch for map(), WINDOW_ODDS bytes, or NULL */
} tpl_partial_t;

/* Returns an empty partial (count 0), or NULL when memory runs out (the
 * engine then reports it). */
static void *tpl_partial_new(const void *opts)
{
    (void)opts;
    return calloc(1, sizeof(tpl_partial_t));
}

static void tpl_partial_free(void *partial)
{
    tpl_partial_t *p = partial;
    if (!p) return;
    free(p->window);
    free(p);
}

/* Folds src into dst. The engine frees src afterwards; leave it valid. */
static int tpl_merge(const void *opts, void *dst, void *src, mpm_err_t *err)
{
    (void)opts;
    (void)err; /* an addition cannot fail; a merge that can returns mpm_err_set(...) */
    tpl_partial_t *d = dst, *s = src;
    d->count += s->count;
    s->count = 0;
    return 0;
}

/*
 * Serialisation: the bytes travel from a rank to rank 0 (MPI_BYTE) and are
 * stored in the journal, to be read back by --resume. Ranks run the same
 * binary on the same architecture in practice and the engine does not
 * convert anything; this kernel still writes a fixed little-endian layout
 * (8 bytes: the count), which costs nothing and makes the bytes mean the
 * same everywhere. Append only: `out` may already hold other bytes (the
 * chunk's rows, in journaled runs).
 */
static int tpl_serialize(const void *opts, const void *partial, mpm_buf_t *out)
{
    (void)opts;
    uint64_t c = ((const tpl_partial_t *)partial)->count;
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(c >> (8 * i));
    return mpm_buf_append(out, b, sizeof b); /* 0, or -1 when out of memory */
}

/* The inverse: a new partial from exactly the bytes serialize() wrote.
 * Check the length: journal records are checksummed, but a kernel must not
 * trust a length it did not check. NULL with err set on failure. */
static void *tpl_deserialize(const void *opts, const void *data, size_t len, mpm_err_t *err)
{
    if (len != 8) {
        mpm_err_set(err, -1, "corrupt partial result: %zu bytes, expected 8", len);
        return NULL;
    }
    tpl_partial_t *p = tpl_partial_new(opts);
    if (!p) {
        mpm_err_set(err, -1, "out of memory");
        return NULL;
    }
    const unsigned char *b = data;
    for (int i = 0; i < 8; i++) p->count |= (uint64_t)b[i] << (8 * i);
    return p;
}

/*
 * The journal (--journal/--resume) keeps serialised partials across runs,
 * possibly across rebuilds of this plugin. mpimap refuses to resume a
 * journal whose fingerprint differs: the kernel's name, the kernel ABI, the
 * chunk size, the format, the option values and the inputs. It cannot know
 * that the plugin's own serialisation changed: say it here (optional hook,
 * ABI 5), and bump the number whenever the bytes of serialize() change.
 */
static int tpl_fingerprint(const void *opts, mpm_buf_t *out)
{
    (void)opts;
    return mpm_buf_printf(out, "primes-template-partial 1\n") < 0 ? -1 : 0;
}

/* ======================================================================
 * 4. map(): one chunk
 *
 * Runs on a pool thread, concurrently with other map() calls (other
 * chunks, other partials). It may read opts, its chunk and its partial,
 * write its partial and append to `out`; nothing else: no global mutable
 * state, no MPI, no printing (report errors through err).
 *
 * Results: this kernel produces both shapes.
 *   - the count is REDUCED: folded into the partial; finish() writes it.
 *   - with --list the primes are ORDERED rows: appended to `out`; the
 *     engine writes every chunk's rows in chunk order, whichever rank and
 *     thread computed them, so the list comes out sorted.
 *
 * Error contract: return mpm_err_set(err, OFFSET, ...) (-1). OFFSET is the
 * byte offset inside chunk->data of the bad record (the engine prints
 * FILE:LINE), or -1 when no byte is to blame (ranges, memory). The chunk
 * is then reported and retried (--retries) or counted as failed, its rows
 * are discarded, and the run goes on. Since a retried chunk runs again on
 * the same or another partial, a map() that fails must leave the partial
 * as it was: compute into locals and fold them in only at the end, once
 * nothing can fail any more (as below).
 * ====================================================================== */

/* Counts the primes among the odd numbers s, s+2, ..., below e (s odd,
 * s >= 3, e - s <= 2 * WINDOW_ODDS); appends them to out when list.
 * *found is increased. 0, or -1 when out of memory. */
static int sieve_window(const tpl_opts_t *o, unsigned char *composite, uint64_t s, uint64_t e,
                        mpm_format_t fmt, mpm_buf_t *out, uint64_t *found)
{
    size_t n = (size_t)((e - s + 1) / 2); /* odd numbers in [s, e) */
    memset(composite, 0, n);
    for (size_t k = 0; k < o->nbase; k++) {
        uint64_t p = o->base[k];
        if (p * p >= e) break; /* larger base primes strike nothing below e */
        /* First odd multiple of p that is >= max(s, p*p). */
        uint64_t m = p * p;
        if (m < s) {
            m = (s + p - 1) / p * p;
            if (m % 2 == 0) m += p;
        }
        for (uint64_t i = (m - s) / 2; i < n; i += p) composite[i] = 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (composite[i]) continue;
        ++*found;
        if (o->list && emit_number(out, fmt, prime_columns, s + 2 * i) < 0) return -1;
    }
    return 0;
}

static int tpl_map(const void *opts, const mpm_chunk_t *chunk, void *partial, mpm_format_t fmt,
                   mpm_buf_t *out, mpm_err_t *err)
{
    const tpl_opts_t *o = opts;
    tpl_partial_t *p = partial;
    uint64_t lo = chunk->lo, hi = chunk->hi; /* this chunk: the integers [lo, hi) */
    uint64_t found = 0;                      /* folded into p only on success */

    if (!p->window && !(p->window = malloc(WINDOW_ODDS)))
        return mpm_err_set(err, -1, "out of memory for the sieve window");

    /* 2, the one even prime. */
    if (lo <= 2 && 2 < hi) {
        found++;
        if (o->list && emit_number(out, fmt, prime_columns, 2) < 0) goto oom;
    }
    /* The odd numbers from max(3, lo) on, one window at a time. */
    uint64_t first = lo < 3 ? 3 : (lo | 1);
    for (uint64_t s = first; s < hi; s += 2 * (uint64_t)WINDOW_ODDS) {
        uint64_t e = s + 2 * (uint64_t)WINDOW_ODDS;
        if (e > hi) e = hi;
        if (sieve_window(o, p->window, s, e, fmt, out, &found) < 0) goto oom;
    }

    p->count += found; /* nothing can fail past this point */
    return 0;
oom:
    /* Rows already appended to out are discarded by the engine. */
    return mpm_err_set(err, -1, "out of memory for the list of primes");
}

/* ======================================================================
 * 5. finish(): the final rows, on rank 0 only, from the partial that holds
 * every chunk of every rank. Written after all ordered rows.
 * ====================================================================== */

static int tpl_finish(const void *opts, void *partial, mpm_format_t fmt, mpm_buf_t *out,
                      mpm_err_t *err)
{
    const tpl_opts_t *o = opts;
    if (o->list) return 0; /* the rows were the output */
    if (emit_number(out, fmt, count_columns, ((tpl_partial_t *)partial)->count) < 0)
        return mpm_err_set(err, -1, "out of memory");
    return 0;
}

/* ======================================================================
 * The kernel table: the one symbol mpimap looks up (MPM_KERNEL_SYMBOL,
 * "mpimap_kernel"). MPM_KERNEL_EXPORT keeps it visible even though this
 * library is built with -fvisibility=hidden (everything else stays
 * private). `.abi = MPM_KERNEL_ABI` records the ABI of the header this was
 * compiled against: an mpimap with another ABI refuses the plugin (rebuild
 * it). Designated initialisers leave every hook not named here NULL, which
 * is how a kernel says "not used"; a newer header's additions stay NULL too.
 *
 * Required: abi, name, summary, check, map (mpimap refuses a table without
 * them) and, for a reduced kernel, partial_new, partial_free, merge,
 * serialize, deserialize and finish. Not used here (see docs/KERNELS.md):
 * source_open/next/close and sink_open/write/close (ABI 2: kernels that cut
 * their own inputs or own their output), record_size and solve (ABI 3:
 * binary records, resident iterative data), layout (ABI 4), pool_threads
 * and failed (ABI 5). fingerprint (ABI 5) is used, see above.
 * ====================================================================== */

MPM_KERNEL_EXPORT const mpm_kernel_t mpimap_kernel = {
    .abi = MPM_KERNEL_ABI,
    .name = "primes-template",
    .summary = "count (or --list) the primes in A:B: the plugin template (same output as 'primes')",
    .synopsis = "A:B",
    .description =
        "Counts the primes p with A <= p <= B (both ends included; B <= 1e15) and prints\n"
        "the count, or with --list the primes themselves in increasing order: the same\n"
        "output as the built-in 'mpimap primes A:B'. This is mpimap's example of a kernel\n"
        "built out of tree (examples/kernel-template, docs/KERNELS.md). The range is split\n"
        "into chunks of --chunk-size integers (default 8M), each sieved in 256 KiB\n"
        "windows.\n",

    .options = tpl_options,
    .opts_size = sizeof(tpl_opts_t),
    .opts_init = tpl_opts_init,
    .check = tpl_check,
    .opts_free = tpl_opts_free,

    /* For byte inputs: chunks end after a '\n'. Range inputs ignore it. */
    .records = MPM_REC_LINES,
    /* For a range, integers per chunk (for bytes, bytes per chunk). Chunk
     * boundaries depend only on this (or --chunk-size), never on -np or
     * --threads. */
    .default_chunk_size = 8u << 20,
    .columns = tpl_columns,

    .partial_new = tpl_partial_new,
    .partial_free = tpl_partial_free,
    .merge = tpl_merge,
    .serialize = tpl_serialize,
    .deserialize = tpl_deserialize,
    .finish = tpl_finish,

    .map = tpl_map,

    .fingerprint = tpl_fingerprint,
};
