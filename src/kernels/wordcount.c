/*
 * wordcount.c - counts words in text: a word is a maximal run of bytes in
 * [A-Za-z0-9_] or >= 0x80; every other byte separates. ASCII letters are
 * lowercased unless --case-sensitive. Output: `count<TAB>word`, by count
 * descending then word bytewise ascending; --top K keeps the first K.
 *
 * Each pool thread counts into its own open-addressing hash table (the
 * partial); tables are merged per rank, serialised, merged on rank 0 and
 * sorted there. Counts are integers, so the result does not depend on the
 * merge order, hence not on -np or --threads.
 *
 * The hot loop lowercases a word into a scratch buffer while scanning it,
 * hashes it eight bytes at a time and probes the table; keys live in a bump
 * arena, so an entry is 24 bytes and a lookup touches one cache line in the
 * common case. Thread safety: map() only touches its own partial.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "../util.h"
#include "mpimap/mpimap.h"

typedef struct wc_opts_s {
    int case_sensitive;
    long long top;
    int binary;
} wc_opts_t;

static const mpm_option_t wc_options[] = {
    {"top", 'k', MPM_OPT_INT, offsetof(wc_opts_t, top), "K",
     "print only the K most frequent words (default: all)", 1, (long long)1 << 62, NULL, 0},
    {"case-sensitive", 's', MPM_OPT_FLAG, offsetof(wc_opts_t, case_sensitive), NULL,
     "do not lowercase ASCII letters", 0, -1, NULL, 0},
    {"binary", 0, MPM_OPT_FLAG, offsetof(wc_opts_t, binary), NULL,
     "count words even in input containing NUL bytes (refused by default as not text)", 0, -1,
     NULL, 0},
    {NULL, 0, 0, 0, NULL, NULL, 0, 0, NULL, 0}};

static void wc_init(void *o) { memset(o, 0, sizeof(wc_opts_t)); }

static int wc_check(void *op, int argc, char **argv, mpm_inputs_t *in, mpm_err_t *err)
{
    (void)op;
    if (argc == 0) {
        mpm_input_t x = {.kind = MPM_IN_STDIN, .name = "-"};
        return mpm_inputs_add(in, x) ? mpm_err_set(err, -1, "out of memory") : 0;
    }
    int stdin_seen = 0;
    for (int i = 0; i < argc; i++) {
        int is_stdin = strcmp(argv[i], "-") == 0;
        if (is_stdin && stdin_seen++)
            return mpm_err_set(err, -1, "standard input ('-') given more than once");
        mpm_input_t x = {.kind = is_stdin ? MPM_IN_STDIN : MPM_IN_FILE, .name = argv[i]};
        if (mpm_inputs_add(in, x)) return mpm_err_set(err, -1, "out of memory");
    }
    return 0;
}

/* ---- the hash table -------------------------------------------------------- */

/* An entry is 32 bytes, two per cache line. Words of up to 16 bytes (nearly
 * all) are stored inline, zero-padded, and compared as two 64-bit words;
 * longer ones live in a bump arena and `key` holds a pointer to them. */
#define WC_INLINE 16

typedef struct wc_entry_s {
    uint64_t count; /* 0 = empty slot */
    uint32_t tag;   /* high half of the hash */
    uint32_t len;
    char key[WC_INLINE];
} wc_entry_t;

typedef struct wc_arena_s {
    struct wc_arena_s *next;
    size_t used, cap;
    char data[];
} wc_arena_t;

typedef struct wc_table_s {
    wc_entry_t *slots;
    size_t mask, used;
    wc_arena_t *arena;
    char *scratch; /* the current block, copied (lowercased), zero-padded */
    size_t scratch_cap;
    uint64_t *bits; /* bit i: scratch[i] is a word byte */
    size_t bits_cap;
    uint32_t *starts, *ends; /* word k of the block: scratch[starts[k]..ends[k]) */
    size_t pos_cap;
} wc_table_t;

/* Byte classes: 1 = word byte. */
static unsigned char word_class[256];
static unsigned char lower_map[256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void init_tables(void)
{
    for (int c = 0; c < 256; c++) {
        word_class[c] = (c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                         (c >= 'A' && c <= 'Z') || c == '_');
        lower_map[c] = (unsigned char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
}

/* Hash of n bytes, eight at a time (the last word zero-padded), the length
 * mixed in at the end so that the tokenizer can hash a word while reading it. */
#define WC_SEED 0x9e3779b97f4a7c15ULL
#define WC_K1 0xbf58476d1ce4e5b9ULL

static inline uint64_t wc_step(uint64_t h, uint64_t w)
{
    h = (h ^ w) * WC_K1;
    return h ^ (h >> 29);
}

static inline uint64_t wc_final(uint64_t h, size_t n)
{
    h ^= n * 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ULL;
    h ^= h >> 32;
    return h;
}

static inline uint64_t wc_hash(const char *s, size_t n)
{
    uint64_t h = WC_SEED;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = wc_step(h, w);
    }
    if (i < n) {
        uint64_t w = 0;
        memcpy(&w, s + i, n - i);
        h = wc_step(h, w);
    }
    return wc_final(h, n);
}

static inline const char *entry_key(const wc_entry_t *e)
{
    if (e->len <= WC_INLINE) return e->key;
    const char *p;
    memcpy(&p, e->key, sizeof p);
    return p;
}

/* Slot arrays of 2 MiB and more are backed by transparent huge pages where
 * the kernel allows it: lookups land anywhere in the array, and with 4 KiB
 * pages a large vocabulary misses the TLB on almost every rare word. */
static wc_entry_t *slots_alloc(size_t cap)
{
    size_t bytes = cap * sizeof(wc_entry_t);
    if (bytes < ((size_t)2 << 20)) return calloc(cap, sizeof(wc_entry_t));
    void *p = NULL;
    if (posix_memalign(&p, (size_t)2 << 20, bytes)) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, bytes, MADV_HUGEPAGE);
#endif
    memset(p, 0, bytes);
    return p;
}

static wc_table_t *table_new(size_t cap)
{
    wc_table_t *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->slots = slots_alloc(cap);
    if (!t->slots) {
        free(t);
        return NULL;
    }
    t->mask = cap - 1;
    return t;
}

static void table_free(wc_table_t *t)
{
    if (!t) return;
    wc_arena_t *a = t->arena;
    while (a) {
        wc_arena_t *n = a->next;
        free(a);
        a = n;
    }
    free(t->slots);
    free(t->scratch);
    free(t->bits);
    free(t->starts);
    free(t->ends);
    free(t);
}

static const char *arena_copy(wc_table_t *t, const char *s, size_t n)
{
    wc_arena_t *a = t->arena;
    if (!a || a->cap - a->used < n) {
        /* Blocks of 64 KiB, doubling up to 1 MiB: a table with few long
         * words (a journal segment, a small chunk) stays small. */
        size_t cap = a ? 2 * a->cap : ((size_t)1 << 16);
        if (cap > ((size_t)1 << 20)) cap = (size_t)1 << 20;
        if (cap < n) cap = n;
        wc_arena_t *na = malloc(sizeof *na + cap);
        if (!na) return NULL;
        na->cap = cap;
        na->used = 0;
        na->next = a;
        t->arena = a = na;
    }
    char *p = a->data + a->used;
    memcpy(p, s, n);
    a->used += n;
    return p;
}

static int table_grow(wc_table_t *t)
{
    size_t cap = (t->mask + 1) * 2;
    wc_entry_t *s = slots_alloc(cap);
    if (!s) return -1;
    for (size_t i = 0; i <= t->mask; i++) {
        wc_entry_t *e = &t->slots[i];
        if (!e->count) continue;
        size_t j = wc_hash(entry_key(e), e->len) & (cap - 1);
        while (s[j].count) j = (j + 1) & (cap - 1);
        s[j] = *e;
    }
    free(t->slots);
    t->slots = s;
    t->mask = cap - 1;
    return 0;
}

/* Inserts a new word at free slot e. 0 or -1 (out of memory). */
static int table_insert(wc_table_t *t, wc_entry_t *e, const char *s, size_t n, uint64_t h,
                        uint64_t count)
{
    if (n > UINT32_MAX) return -1;
    e->tag = (uint32_t)(h >> 32);
    e->len = (uint32_t)n;
    memset(e->key, 0, WC_INLINE);
    if (n <= WC_INLINE) {
        memcpy(e->key, s, n);
    } else {
        const char *k = arena_copy(t, s, n);
        if (!k) return -1;
        memcpy(e->key, &k, sizeof k);
    }
    e->count = count;
    if (++t->used * 10 > (t->mask + 1) * 7 && table_grow(t)) return -1; /* load <= 0.7 */
    return 0;
}

/* Adds count to word s[0..n) (any alignment, no padding needed). 0, -1 (out
 * of memory) or -2: the sum would overflow 64 bits (corrupt partials). */
static int table_add(wc_table_t *t, const char *s, size_t n, uint64_t count)
{
    uint64_t h = wc_hash(s, n);
    uint32_t tag = (uint32_t)(h >> 32);
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        wc_entry_t *e = &t->slots[i];
        if (!e->count) return table_insert(t, e, s, n, h, count);
        if (e->tag == tag && e->len == n && memcmp(entry_key(e), s, n) == 0) {
            if (e->count + count < count) return -2; /* would wrap, even to 0: a free slot */
            e->count += count;
            return 0;
        }
    }
}

/* The low r bytes (1..8) of the 8 bytes at s; the bytes after may be read
 * but are masked off (callers keep 16 readable bytes past every word). */
static inline uint64_t load_word(const char *s, size_t r)
{
    uint64_t w;
    memcpy(&w, s, 8);
    return w & (~0ULL >> (64 - 8 * r)); /* r in 1..8 */
}

/* The hot path: the word s[0..n) has 16 readable bytes after it. */
static inline uint64_t hash_word(const char *s, size_t n)
{
    uint64_t h = WC_SEED;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) h = wc_step(h, load_word(s + i, 8));
    if (i < n) h = wc_step(h, load_word(s + i, n - i));
    return wc_final(h, n);
}

/* w0, w1: the first 16 bytes of the word, zero-padded (used when n <= 16). */
static inline int table_add_word(wc_table_t *t, const char *w, size_t n, uint64_t h, uint64_t w0,
                                 uint64_t w1)
{
    uint32_t tag = (uint32_t)(h >> 32);
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        wc_entry_t *e = &t->slots[i];
        if (!e->count) return table_insert(t, e, w, n, h, 1);
        if (e->tag != tag || e->len != n) continue;
        if (n <= WC_INLINE) {
            uint64_t k0, k1;
            memcpy(&k0, e->key, 8);
            memcpy(&k1, e->key + 8, 8);
            if (k0 != w0 || k1 != w1) continue;
        } else if (memcmp(entry_key(e), w, n) != 0) {
            continue;
        }
        e->count++;
        return 0;
    }
}

/*
 * Classifies and copies (lowercased when fold) n bytes of src into dst, and
 * sets bit i of bits[] when src[i] is a word byte. bits must hold
 * ceil(n / 64) words. SSE2 handles 16 bytes at a time; the tail is scalar.
 */
static void classify(const unsigned char *src, size_t n, char *dst, uint64_t *bits, int fold)
{
    size_t i = 0;
    memset(bits, 0, ((n + 63) / 64) * sizeof *bits);
#if defined(__SSE2__)
    const __m128i c80 = _mm_set1_epi8((char)0x80), c20 = _mm_set1_epi8(0x20);
    const __m128i c0 = _mm_set1_epi8('0'), c9 = _mm_set1_epi8(9);
    const __m128i ca = _mm_set1_epi8('a'), cA = _mm_set1_epi8('A'), c25 = _mm_set1_epi8(25);
    const __m128i cu = _mm_set1_epi8('_');
    (void)c80;
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(src + i));
        /* unsigned x - lo <= hi - lo  <=>  min(x - lo, hi - lo) == x - lo */
        __m128i d = _mm_sub_epi8(v, c0);
        __m128i is_digit = _mm_cmpeq_epi8(_mm_min_epu8(d, c9), d);
        __m128i l = _mm_sub_epi8(_mm_or_si128(v, c20), ca);
        __m128i is_alpha = _mm_cmpeq_epi8(_mm_min_epu8(l, c25), l);
        __m128i u = _mm_sub_epi8(v, cA);
        __m128i is_upper = _mm_cmpeq_epi8(_mm_min_epu8(u, c25), u);
        __m128i is_word = _mm_or_si128(_mm_or_si128(is_digit, is_alpha), _mm_cmpeq_epi8(v, cu));
        unsigned m = (unsigned)_mm_movemask_epi8(is_word) | (unsigned)_mm_movemask_epi8(v);
        if (fold) v = _mm_add_epi8(v, _mm_and_si128(is_upper, c20));
        _mm_storeu_si128((__m128i *)(dst + i), v);
        bits[i / 64] |= (uint64_t)m << (i % 64);
    }
#endif
    for (; i < n; i++) {
        unsigned char ch = src[i];
        dst[i] = (char)(fold ? lower_map[ch] : ch);
        if (word_class[ch]) bits[i / 64] |= 1ULL << (i % 64);
    }
}

/*
 * Lists the words of a block from its bitmap: a word starts where a word
 * byte follows a separator and ends where a separator follows a word byte.
 * Both are found 64 bytes at a time with shifts and bit scans, so the cost
 * is a few operations per word instead of a branch per byte. starts[k] and
 * ends[k] delimit word k; returns the number of words. The block ends
 * between words or at the end of the chunk (an open word ends at n).
 */
static size_t find_words(const uint64_t *bits, size_t n, uint32_t *starts, uint32_t *ends)
{
    size_t ns = 0, ne = 0;
    uint64_t carry = 0; /* top bit of the previous bitmap word */
    size_t nw = (n + 63) / 64;
    for (size_t k = 0; k < nw; k++) {
        uint64_t w = bits[k];
        uint64_t prev = (w << 1) | carry;
        uint64_t st = w & ~prev, en = ~w & prev;
        if (k == nw - 1 && (n & 63)) en &= ~0ULL >> (64 - (n & 63)); /* past n: not an end */
        carry = w >> 63;
        uint32_t base = (uint32_t)(k * 64);
        while (st) {
            starts[ns++] = base + (uint32_t)__builtin_ctzll(st);
            st &= st - 1;
        }
        while (en) {
            ends[ne++] = base + (uint32_t)__builtin_ctzll(en);
            en &= en - 1;
        }
    }
    if (ne < ns) ends[ne++] = (uint32_t)n;
    return ns;
}

static void *wc_new(const void *o)
{
    (void)o;
    pthread_once(&tables_once, init_tables);
    return table_new(1 << 15);
}

static void wc_pfree(void *p) { table_free(p); }

static int wc_map(const void *op, const mpm_chunk_t *c, void *pp, mpm_format_t fmt, mpm_buf_t *out,
                  mpm_err_t *err)
{
    const wc_opts_t *o = op;
    wc_table_t *t = pp;
    (void)fmt;
    (void)out;
    const unsigned char *data = (const unsigned char *)c->data;
    if (!o->binary) {
        const unsigned char *nul = memchr(data, 0, c->len);
        if (nul)
            return mpm_err_set(err, nul - data,
                               "NUL byte: this looks like a binary file, not text (--binary "
                               "counts its words anyway)");
    }
    /*
     * The chunk is processed in blocks of about BLOCK bytes that end between
     * words. A block is first copied (lowercased) into scratch while a bitmap
     * of word bytes is built, 16 bytes at a time; words are then found with
     * bit scans instead of a branch per byte. Words are hashed from scratch,
     * eight bytes at a time, and counted in batches of BATCH with their table
     * slots prefetched, so that the cache misses of a batch overlap.
     */
    enum { BLOCK = 32 << 10, BATCH = 16 };
    size_t off = 0;
    while (off < c->len) {
        size_t bend = off + BLOCK < c->len ? off + BLOCK : c->len;
        while (bend < c->len && word_class[data[bend]]) bend++; /* never split a word */
        size_t n = bend - off;
        size_t need = n + 32;
        if (t->scratch_cap < need) {
            size_t cap = need > BLOCK + 4096 ? need : BLOCK + 4096;
            char *sc = realloc(t->scratch, cap);
            if (!sc) return mpm_err_set(err, -1, "out of memory");
            t->scratch = sc;
            t->scratch_cap = cap;
        }
        size_t nwords = (n + 63) / 64;
        if (t->bits_cap < nwords) {
            size_t cap = nwords > (BLOCK / 64 + 64) ? nwords : (BLOCK / 64 + 64);
            uint64_t *nb = realloc(t->bits, cap * sizeof *nb);
            if (!nb) return mpm_err_set(err, -1, "out of memory");
            t->bits = nb;
            t->bits_cap = cap;
        }
        if (t->pos_cap < n / 2 + 2) {
            size_t cap = n / 2 + 2 > BLOCK / 2 + 64 ? n / 2 + 2 : BLOCK / 2 + 64;
            uint32_t *ps = realloc(t->starts, cap * sizeof *ps);
            if (ps) t->starts = ps;
            uint32_t *pe = ps ? realloc(t->ends, cap * sizeof *pe) : NULL;
            if (pe) t->ends = pe;
            if (!ps || !pe) return mpm_err_set(err, -1, "out of memory");
            t->pos_cap = cap;
        }
        char *sc = t->scratch;
        classify(data + off, n, sc, t->bits, !o->case_sensitive);
        memset(sc + n, 0, 32);
        size_t nwords_found = find_words(t->bits, n, t->starts, t->ends);
        const uint32_t *ws = t->starts, *we = t->ends;
        struct {
            const char *w;
            size_t n;
            uint64_t h, w0, w1;
        } b[BATCH];
        for (size_t i = 0; i < nwords_found; i += BATCH) {
            int nb = nwords_found - i < BATCH ? (int)(nwords_found - i) : BATCH;
            for (int k = 0; k < nb; k++) {
                const char *w = sc + ws[i + k];
                size_t len = we[i + k] - ws[i + k];
                uint64_t w0 = 0, w1 = 0, h;
                /* Words of up to 16 bytes (nearly all): hashed from the two
                 * words also used for the inline key compare. Same value as
                 * hash_word(). */
                if (len <= 8) {
                    w0 = load_word(w, len);
                    h = wc_final(wc_step(WC_SEED, w0), len);
                } else if (len <= 16) {
                    w0 = load_word(w, 8);
                    w1 = load_word(w + 8, len - 8);
                    h = wc_final(wc_step(wc_step(WC_SEED, w0), w1), len);
                } else {
                    h = hash_word(w, len);
                }
                __builtin_prefetch(&t->slots[h & t->mask]);
                b[k].w = w;
                b[k].n = len;
                b[k].h = h;
                b[k].w0 = w0;
                b[k].w1 = w1;
            }
            for (int k = 0; k < nb; k++)
                if (table_add_word(t, b[k].w, b[k].n, b[k].h, b[k].w0, b[k].w1))
                    return mpm_err_set(err, -1, "out of memory counting words");
        }
        off = bend;
    }
    return 0;
}

static int wc_merge(const void *o, void *dst, void *src, mpm_err_t *err)
{
    (void)o;
    wc_table_t *d = dst, *s = src;
    for (size_t i = 0; i <= s->mask; i++) {
        wc_entry_t *e = &s->slots[i];
        int r = e->count ? table_add(d, entry_key(e), e->len, e->count) : 0;
        if (r)
            return mpm_err_set(err, -1, r == -2 ? "a word count overflows 64 bits (corrupt partial)"
                                                : "out of memory merging word counts");
    }
    return 0;
}

/* [u64 entries] then per entry [u64 count][u32 len][bytes]. */
static int wc_ser(const void *o, const void *pp, mpm_buf_t *out)
{
    (void)o;
    const wc_table_t *t = pp;
    uint64_t n = t->used;
    if (mpm_buf_append(out, &n, sizeof n)) return -1;
    for (size_t i = 0; i <= t->mask; i++) {
        const wc_entry_t *e = &t->slots[i];
        if (!e->count) continue;
        if (mpm_buf_append(out, &e->count, sizeof e->count) ||
            mpm_buf_append(out, &e->len, sizeof e->len) || mpm_buf_append(out, entry_key(e), e->len))
            return -1;
    }
    return 0;
}

static void *wc_deser(const void *o, const void *data, size_t len, mpm_err_t *err)
{
    const char *p = data, *end = p + len;
    uint64_t n;
    if (len < sizeof n) goto corrupt;
    memcpy(&n, p, sizeof n);
    p += sizeof n;
    if (n > (len - sizeof n) / 12) goto corrupt; /* 12 bytes at least per word */
    /* Room for the n words (grown if need be), at most wc_new's: a small
     * partial (a journal segment, the fuzz target's) stays small. */
    size_t cap = 16;
    while (cap < ((size_t)1 << 15) && n >= cap * 7 / 10) cap *= 2;
    (void)o;
    pthread_once(&tables_once, init_tables);
    wc_table_t *t = table_new(cap);
    if (!t) {
        mpm_err_set(err, -1, "out of memory");
        return NULL;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t count;
        uint32_t l;
        if ((size_t)(end - p) < sizeof count + sizeof l) goto corrupt_t;
        memcpy(&count, p, sizeof count);
        memcpy(&l, p + sizeof count, sizeof l);
        p += sizeof count + sizeof l;
        if ((size_t)(end - p) < l) goto corrupt_t;
        int r = count ? table_add(t, p, l, count) : -2;
        if (r == -2) goto corrupt_t;
        if (r) {
            table_free(t);
            mpm_err_set(err, -1, "out of memory");
            return NULL;
        }
        p += l;
    }
    if (p != end) goto corrupt_t;
    return t;
corrupt_t:
    table_free(t);
corrupt:
    mpm_err_set(err, -1, "corrupt word-count partial (%zu bytes)", len);
    return NULL;
}

static int cmp_entry(const void *a, const void *b)
{
    const wc_entry_t *x = *(wc_entry_t *const *)a, *y = *(wc_entry_t *const *)b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(entry_key(x), entry_key(y), n);
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

static const char *const wc_cols[] = {"count", "word", NULL};
static const char *const *wc_columns(const void *o)
{
    (void)o;
    return wc_cols;
}

static int wc_finish(const void *op, void *pp, mpm_format_t fmt, mpm_buf_t *out, mpm_err_t *err)
{
    const wc_opts_t *o = op;
    wc_table_t *t = pp;
    wc_entry_t **v = malloc((t->used ? t->used : 1) * sizeof *v);
    if (!v) return mpm_err_set(err, -1, "out of memory sorting %zu words", t->used);
    size_t n = 0;
    for (size_t i = 0; i <= t->mask; i++)
        if (t->slots[i].count) v[n++] = &t->slots[i];
    qsort(v, n, sizeof *v, cmp_entry);
    if (o->top > 0 && (uint64_t)o->top < n) n = (size_t)o->top;
    for (size_t i = 0; i < n; i++) {
        char num[24];
        int l = snprintf(num, sizeof num, "%llu", (unsigned long long)v[i]->count);
        mpm_val_t vals[2] = {{num, (size_t)l, 1}, {entry_key(v[i]), v[i]->len, 0}};
        if (mpm_emit_row(out, fmt, wc_cols, vals, 2)) {
            free(v);
            return mpm_err_set(err, -1, "out of memory");
        }
    }
    free(v);
    return 0;
}

const mpm_kernel_t mpm_kernel_wordcount = {
    .abi = MPM_KERNEL_ABI,
    .name = "wordcount",
    .summary = "count words in text files or standard input (large data split into chunks)",
    .synopsis = "[FILE...]   (none or '-': standard input)",
    .description =
        "A word is a maximal run of bytes in [A-Za-z0-9_] or >= 0x80 (so UTF-8 letters\n"
        "stay inside words); every other byte separates words. ASCII letters are\n"
        "lowercased unless --case-sensitive. Prints 'count<TAB>word' lines sorted by\n"
        "count (descending) then word (bytewise ascending), no header line.\n"
        "Input containing a NUL byte is refused as binary unless --binary.\n",
    .options = wc_options,
    .opts_size = sizeof(wc_opts_t),
    .opts_init = wc_init,
    .check = wc_check,
    .records = MPM_REC_WORDS,
    .default_chunk_size = 4u << 20,
    .columns = wc_columns,
    .partial_new = wc_new,
    .partial_free = wc_pfree,
    .merge = wc_merge,
    .serialize = wc_ser,
    .deserialize = wc_deser,
    .finish = wc_finish,
    .map = wc_map,
};
