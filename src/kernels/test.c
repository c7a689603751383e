/*
 * test.c - the engine's test kernel: no real workload, so the engine can be
 * tested and measured alone. Input lines; modes:
 *   echo   each line back, in input order (ordered rows; text output equals
 *          the input plus a final newline if it had none)
 *   count  reduced: "lines<TAB>bytes<TAB>words" over all chunks
 *   noop   reduced: "bytes" only; map touches nothing (engine overhead)
 *   sleep  each line is a number of microseconds to sleep, then echoed
 *   spin   reduced like noop, but map() busy-loops --ns-per-byte ns for each
 *          byte of its chunk: a compute cost proportional to the bytes, for
 *          measuring how well transfers hide behind computation
 * --fail-on TEXT makes map fail on a line equal to TEXT (error paths);
 * --flaky FILE makes a chunk holding the line "FLAKY" fail until FILE exists,
 * creating FILE when it fails (so the next attempt succeeds: --retries).
 * A failing map() leaves its partial untouched (the kernel contract).
 * Thread safety: map() only touches its partial (and --flaky's file).
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

#include "../util.h"
#include "mpimap/mpimap.h"

enum { T_ECHO, T_COUNT, T_NOOP, T_SLEEP, T_SPIN };

typedef struct test_opts_s {
    int mode;
    const char *fail_on;
    const char *flaky;
    double ns_per_byte;
} test_opts_t;

static const mpm_option_t test_options[] = {
    {"mode", 'm', MPM_OPT_CHOICE, offsetof(test_opts_t, mode), "MODE",
     "echo|count|noop|sleep|spin (default echo)", 0, -1, "echo|count|noop|sleep|spin", 0},
    {"ns-per-byte", 0, MPM_OPT_DOUBLE, offsetof(test_opts_t, ns_per_byte), "NS",
     "spin mode: busy-loop NS nanoseconds per byte of each chunk (default 8: one byte's time "
     "on a 1 Gbit/s link)",
     0, 1000000, NULL, 0},
    {"fail-on", 0, MPM_OPT_STRING, offsetof(test_opts_t, fail_on), "TEXT",
     "fail the chunk holding a line equal to TEXT", 0, -1, NULL, 0},
    {"flaky", 0, MPM_OPT_STRING, offsetof(test_opts_t, flaky), "FILE",
     "fail the chunk holding the line FLAKY while FILE does not exist, and create FILE", 0, -1,
     NULL, 0},
    {NULL, 0, 0, 0, NULL, NULL, 0, 0, NULL, 0}};

static void test_init(void *o)
{
    memset(o, 0, sizeof(test_opts_t));
    ((test_opts_t *)o)->ns_per_byte = 8;
}

/* Busy-loops (no sleep: the core stays busy) for ns nanoseconds. */
static void spin_ns(double ns)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((double)(t.tv_sec - t0.tv_sec) * 1e9 + (double)(t.tv_nsec - t0.tv_nsec) < ns);
}

static int test_check(void *op, int argc, char **argv, mpm_inputs_t *in, mpm_err_t *err)
{
    (void)op;
    if (argc == 0) {
        mpm_input_t x = {.kind = MPM_IN_STDIN, .name = "-"};
        return mpm_inputs_add(in, x) ? mpm_err_set(err, -1, "out of memory") : 0;
    }
    for (int i = 0; i < argc; i++) {
        mpm_input_t x = {.kind = strcmp(argv[i], "-") ? MPM_IN_FILE : MPM_IN_STDIN,
                         .name = argv[i]};
        if (mpm_inputs_add(in, x)) return mpm_err_set(err, -1, "out of memory");
    }
    return 0;
}

typedef struct test_partial_s {
    uint64_t lines, bytes, words;
} test_partial_t;

static void *test_new(const void *o)
{
    (void)o;
    return calloc(1, sizeof(test_partial_t));
}

static void test_pfree(void *p) { free(p); }

static const char *const echo_cols[] = {"line", NULL};
static const char *const count_cols[] = {"lines", "bytes", "words", NULL};
static const char *const noop_cols[] = {"bytes", NULL};
static const char *const *test_columns(const void *op)
{
    int m = ((const test_opts_t *)op)->mode;
    return m == T_COUNT ? count_cols : m == T_NOOP || m == T_SPIN ? noop_cols : echo_cols;
}

static int test_map(const void *op, const mpm_chunk_t *c, void *pp, mpm_format_t fmt,
                    mpm_buf_t *out, mpm_err_t *err)
{
    const test_opts_t *o = op;
    test_partial_t *total = pp, acc = {0, 0, 0}, *t = &acc;
    t->bytes += c->len;
    if (o->mode == T_NOOP || o->mode == T_SPIN) {
        if (o->mode == T_SPIN) spin_ns(o->ns_per_byte * (double)c->len);
        total->bytes += c->len;
        return 0;
    }
    size_t flen = o->fail_on ? strlen(o->fail_on) : 0;
    const char *p = c->data, *end = c->data + c->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t n = (size_t)(le - p);
        if (o->fail_on && n == flen && memcmp(p, o->fail_on, n) == 0)
            return mpm_err_set(err, p - c->data, "found the line '%s' (--fail-on)", o->fail_on);
        if (o->flaky && n == 5 && memcmp(p, "FLAKY", 5) == 0) {
            int fd = open(o->flaky, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
            if (fd >= 0) {
                close(fd);
                return mpm_err_set(err, p - c->data, "flaky line: failing once (--flaky)");
            }
            if (errno != EEXIST)
                return mpm_err_set(err, p - c->data, "--flaky: cannot create '%s': %s", o->flaky,
                                   strerror(errno));
        }
        t->lines++;
        if (o->mode == T_COUNT) {
            int in_word = 0;
            for (const char *q = p; q < le; q++) {
                int sp = *q == ' ' || *q == '\t' || *q == '\r';
                if (!sp && !in_word) t->words++;
                in_word = !sp;
            }
        } else {
            if (o->mode == T_SLEEP) {
                char num[32];
                size_t l = n < sizeof num - 1 ? n : sizeof num - 1;
                memcpy(num, p, l);
                num[l] = 0;
                long long us = atoll(num);
                if (us > 0) {
                    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
                    nanosleep(&ts, NULL);
                }
            }
            mpm_val_t v = {p, n, 0};
            if (mpm_emit_row(out, fmt, echo_cols, &v, 1)) return mpm_err_set(err, -1, "out of memory");
        }
        p = le + 1;
    }
    total->lines += acc.lines;
    total->bytes += acc.bytes;
    total->words += acc.words;
    return 0;
}

static int test_merge(const void *o, void *dst, void *src, mpm_err_t *err)
{
    (void)o;
    (void)err;
    test_partial_t *d = dst, *s = src;
    d->lines += s->lines;
    d->bytes += s->bytes;
    d->words += s->words;
    return 0;
}

static int test_ser(const void *o, const void *p, mpm_buf_t *out)
{
    (void)o;
    return mpm_buf_append(out, p, sizeof(test_partial_t));
}

static void *test_deser(const void *o, const void *data, size_t len, mpm_err_t *err)
{
    (void)o;
    if (len != sizeof(test_partial_t)) {
        mpm_err_set(err, -1, "corrupt test partial");
        return NULL;
    }
    test_partial_t *p = malloc(sizeof *p);
    if (p) memcpy(p, data, sizeof *p);
    return p;
}

static int test_finish(const void *op, void *pp, mpm_format_t fmt, mpm_buf_t *out, mpm_err_t *err)
{
    const test_opts_t *o = op;
    test_partial_t *t = pp;
    char a[24], b[24], c[24];
    int la = snprintf(a, sizeof a, "%llu", (unsigned long long)t->lines);
    int lb = snprintf(b, sizeof b, "%llu", (unsigned long long)t->bytes);
    int lc = snprintf(c, sizeof c, "%llu", (unsigned long long)t->words);
    int r = 0;
    if (o->mode == T_COUNT) {
        mpm_val_t v[3] = {{a, (size_t)la, 1}, {b, (size_t)lb, 1}, {c, (size_t)lc, 1}};
        r = mpm_emit_row(out, fmt, count_cols, v, 3);
    } else if (o->mode == T_NOOP || o->mode == T_SPIN) {
        mpm_val_t v = {b, (size_t)lb, 1};
        r = mpm_emit_row(out, fmt, noop_cols, &v, 1);
    }
    return r ? mpm_err_set(err, -1, "out of memory") : 0;
}

const mpm_kernel_t mpm_kernel_test = {
    .abi = MPM_KERNEL_ABI,
    .name = "test",
    .summary = "engine test kernel: echo, count, sleep, spin or do nothing with lines",
    .synopsis = "[FILE...]",
    .description = "For testing and measuring the engine without a real workload.\n",
    .options = test_options,
    .opts_size = sizeof(test_opts_t),
    .opts_init = test_init,
    .check = test_check,
    .records = MPM_REC_LINES,
    .default_chunk_size = 64u << 10,
    .columns = test_columns,
    .partial_new = test_new,
    .partial_free = test_pfree,
    .merge = test_merge,
    .serialize = test_ser,
    .deserialize = test_deser,
    .finish = test_finish,
    .map = test_map,
};
