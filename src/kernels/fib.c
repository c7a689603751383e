/*
 * fib.c - the seed's CPU-bound workload of very uneven cost: fib(n) by naive
 * recursion for each integer n of the input, `n<TAB>fib(n)` in input order.
 * Items come from the arguments or from a file (one per line; blank lines and
 * lines starting with '#' are skipped). The default chunk size of one byte
 * makes every line its own chunk, so the pool balances items one by one.
 * Thread safety: map() is pure.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../util.h"
#include "mpimap/mpimap.h"

#define FIB_MAX 93 /* fib(94) does not fit in 64 bits */

typedef struct fib_opts_s {
    const char *file;
    int fast;
    char *items; /* arguments joined by '\n' */
    size_t items_len;
} fib_opts_t;

static const mpm_option_t fib_options[] = {
    {"file", 'F', MPM_OPT_STRING, offsetof(fib_opts_t, file), "FILE",
     "read the integers from FILE, one per line ('-' = standard input)", 0, -1, NULL, 0},
    {"fast", 0, MPM_OPT_FLAG, offsetof(fib_opts_t, fast), NULL,
     "compute iteratively instead of by naive recursion (naive is the benchmark workload: its "
     "cost grows like 1.618^n)",
     0, -1, NULL, 0},
    {NULL, 0, 0, 0, NULL, NULL, 0, 0, NULL, 0}};

static void fib_init(void *o) { memset(o, 0, sizeof(fib_opts_t)); }

static void fib_free(void *o) { free(((fib_opts_t *)o)->items); }

static int fib_check(void *op, int argc, char **argv, mpm_inputs_t *in, mpm_err_t *err)
{
    fib_opts_t *o = op;
    if (o->file && argc)
        return mpm_err_set(err, -1, "give the integers as arguments or with --file, not both");
    if (o->file) {
        mpm_input_t x = {.kind = strcmp(o->file, "-") ? MPM_IN_FILE : MPM_IN_STDIN,
                         .name = o->file};
        return mpm_inputs_add(in, x) ? mpm_err_set(err, -1, "out of memory") : 0;
    }
    if (!argc) return mpm_err_set(err, -1, "no integers given (arguments or --file FILE)");
    size_t total = 0;
    for (int i = 0; i < argc; i++) {
        long long v;
        if (mpm__parse_ll(argv[i], &v) < 0 || v < 0 || v > FIB_MAX ||
            argv[i][0] == '-') /* "-0": map() reads no sign but '+' */
            return mpm_err_set(err, -1, "argument %d: expected an integer in 0..%d, got '%s'",
                               i + 1, FIB_MAX, argv[i]);
        total += strlen(argv[i]) + 1;
    }
    o->items = malloc(total);
    if (!o->items) return mpm_err_set(err, -1, "out of memory");
    for (int i = 0; i < argc; i++) {
        size_t l = strlen(argv[i]);
        memcpy(o->items + o->items_len, argv[i], l);
        o->items_len += l;
        o->items[o->items_len++] = '\n';
    }
    mpm_input_t x = {.kind = MPM_IN_MEMORY, .name = "arguments", .data = o->items,
                     .len = o->items_len};
    return mpm_inputs_add(in, x) ? mpm_err_set(err, -1, "out of memory") : 0;
}

uint64_t mpm__fib_naive(unsigned n)
{
    return n < 2 ? n : mpm__fib_naive(n - 1) + mpm__fib_naive(n - 2);
}

uint64_t mpm__fib_fast(unsigned n)
{
    uint64_t a = 0, b = 1;
    for (unsigned i = 0; i < n; i++) {
        uint64_t t = a + b;
        a = b;
        b = t;
    }
    return a;
}

static const char *const fib_cols[] = {"n", "fib", NULL};
static const char *const *fib_columns(const void *o)
{
    (void)o;
    return fib_cols;
}

static int fib_map(const void *op, const mpm_chunk_t *c, void *partial, mpm_format_t fmt,
                   mpm_buf_t *out, mpm_err_t *err)
{
    const fib_opts_t *o = op;
    (void)partial;
    const char *p = c->data, *end = c->data + c->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *s = p, *e = le;
        while (s < e && (*s == ' ' || *s == '\t' || *s == '\r')) s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
        if (s < e && *s != '#') {
            unsigned v = 0;
            const char *q = s;
            if (*q == '+') q++;
            int ok = q < e;
            for (; q < e && ok; q++) {
                if (*q < '0' || *q > '9' || v > FIB_MAX) {
                    ok = 0;
                    break;
                }
                v = v * 10 + (unsigned)(*q - '0');
            }
            if (!ok || v > FIB_MAX) {
                char shown[64];
                mpm__quote(shown, sizeof shown, s, (size_t)(e - s));
                return mpm_err_set(err, s - c->data, "expected an integer in 0..%d, got '%s'",
                                   FIB_MAX, shown);
            }
            uint64_t f = o->fast ? mpm__fib_fast(v) : mpm__fib_naive(v);
            char a[8], b[24];
            int la = snprintf(a, sizeof a, "%u", v);
            int lb = snprintf(b, sizeof b, "%llu", (unsigned long long)f);
            mpm_val_t vals[2] = {{a, (size_t)la, 1}, {b, (size_t)lb, 1}};
            if (mpm_emit_row(out, fmt, fib_cols, vals, 2)) return mpm_err_set(err, -1, "out of memory");
        }
        p = le + 1;
    }
    return 0;
}

const mpm_kernel_t mpm_kernel_fib = {
    .abi = MPM_KERNEL_ABI,
    .name = "fib",
    .summary = "fib(n) by naive recursion for each integer n (CPU-bound, very uneven cost)",
    .synopsis = "N... | --file FILE",
    .description =
        "Computes the n-th Fibonacci number (fib(0)=0, fib(1)=1) for every integer n in\n"
        "0..93 and prints 'n<TAB>fib(n)' in input order. The naive recursion is the\n"
        "point: items of wildly different cost that a static split balances badly.\n"
        "Each line is its own chunk by default, handed out on demand.\n",
    .options = fib_options,
    .opts_size = sizeof(fib_opts_t),
    .opts_init = fib_init,
    .check = fib_check,
    .opts_free = fib_free,
    .records = MPM_REC_LINES,
    .default_chunk_size = 1,
    .columns = fib_columns,
    .map = fib_map,
};
