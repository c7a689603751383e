/*
 * fuzz_args.c - the command line (src/cli.c, mpm__cli_parse): engine
 * options before and after the kernel name (long --name VALUE and
 * --name=VALUE, short -tN, -t N and flag clusters -vq, '--'), every option
 * type (integers with bounds and the 'auto' word of --threads, sizes with
 * K/M/G/T suffixes like --chunk-size 64K, durations and other numbers like
 * --grace, --timeout, --progress-interval, choices, flags, strings) and
 * the kernels' own arguments: fib's integers, primes' A:B range, exec's
 * command words and ::: items, test and wordcount's inputs.
 *
 * Input: byte 0 picks the kernel (fib, primes, exec, test, wordcount); the
 * rest is the arguments, separated by LF. The first argument '@' marks
 * where the kernel name goes (the arguments before it are the engine's
 * part); without one, it goes first. When a word of the engine's part names
 * a kernel, that word is the kernel (`mpimap test fib` runs test): only
 * that is checked then. Skipped: inputs with an argument
 * 'image', 'kmeans', 'fetch' or 'hash' (it could be taken as the kernel,
 * whose check() reads files or starts libcurl), '--kernel...' (it would
 * dlopen the path) or '...output-mode...' (exec would create a directory),
 * and, for primes, a valid range with B > 1e12 (its base primes take long
 * to sieve). Parsing runs as rank 1, which prints nothing.
 *
 * Checked beyond "no crash, no leak", when the command line is accepted:
 *   - bounds: every option that differs from its default is inside the
 *     bounds of its table entry (a size at least its minimum, a choice
 *     among its words, a number not NaN);
 *   - parse-then-format: the parsed values written back as a canonical
 *     command line (every engine option that differs from its default as
 *     --name=VALUE before the kernel name, the kernel's options after it,
 *     then '--' and the positional arguments) parse again to the very same
 *     engine and kernel options (as --metrics writes them), arguments and
 *     inputs;
 *   - primes: the one argument is A:B with decimal A <= B <= 1e15 as read
 *     here, and the input is the range [A, B + 1); and for each argument of
 *     the input, check() accepts it alone exactly when it reads so here;
 *   - fib: every integer that check() accepts is computed by map() (with
 *     --fast), one row 'n<TAB>fib(n)' each, fib(n) as computed here.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mpimap/mpimap.h"
#include "util.h"

#define MAX_ARGS 256
#define PRIMES_MAX 1000000000000000ULL

static const char *const kernels[] = {"fib", "primes", "exec", "test", "wordcount"};
static const char *const banned[] = {"image", "kmeans", "fetch", "hash", NULL};

static _Noreturn void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_args: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

static size_t field_size(const mpm_option_t *o)
{
    switch (o->type) {
    case MPM_OPT_FLAG:
    case MPM_OPT_CHOICE: return sizeof(int);
    case MPM_OPT_INT: return sizeof(long long);
    case MPM_OPT_SIZE: return sizeof(uint64_t);
    case MPM_OPT_DOUBLE: return sizeof(double);
    default: return sizeof(const char *);
    }
}

static int nchoices(const char *c)
{
    int n = 1;
    for (; *c; c++) n += *c == '|';
    return n;
}

/* Bounds of every option that differs from its default. */
static void check_bounds(const mpm_option_t *t, const void *base, const void *dflt)
{
    for (const mpm_option_t *o = t; o->name; o++) {
        const char *f = (const char *)base + o->offset;
        if (!memcmp(f, (const char *)dflt + o->offset, field_size(o))) continue;
        int ok = 1;
        switch (o->type) {
        case MPM_OPT_FLAG: {
            int v;
            memcpy(&v, f, sizeof v);
            ok = v >= 1;
            break;
        }
        case MPM_OPT_CHOICE: {
            int v;
            memcpy(&v, f, sizeof v);
            ok = v >= 0 && v < nchoices(o->choices);
            break;
        }
        case MPM_OPT_INT: {
            long long v;
            memcpy(&v, f, sizeof v);
            ok = (o->choices && v == 0) || o->min > o->max || (v >= o->min && v <= o->max);
            break;
        }
        case MPM_OPT_SIZE: {
            uint64_t v;
            memcpy(&v, f, sizeof v);
            ok = v >= (uint64_t)o->min &&
                 (o->max < 0 || o->min > o->max || v <= (uint64_t)o->max);
            break;
        }
        case MPM_OPT_DOUBLE: {
            double v;
            memcpy(&v, f, sizeof v);
            ok = v == v && (o->min > o->max || (v >= (double)o->min && v <= (double)o->max));
            break;
        }
        default:
            break;
        }
        if (!ok) fail("an accepted option is out of its bounds", o->name);
    }
}

/* The offsets in text of the arguments being written. */
typedef struct {
    size_t *v, n, cap;
} offs_t;

static void arg_start(offs_t *o, const mpm_buf_t *text)
{
    if (mpm__grow(&o->v, &o->cap, o->n + 1, sizeof *o->v)) abort();
    o->v[o->n++] = text->len;
}

/* Appends the options of t that differ from their defaults as arguments. */
static void format_opts(const mpm_option_t *t, const void *base, const void *dflt,
                        mpm_buf_t *text, offs_t *offs)
{
    for (const mpm_option_t *o = t; o->name; o++) {
        const char *f = (const char *)base + o->offset;
        if (!memcmp(f, (const char *)dflt + o->offset, field_size(o))) continue;
        if (o->type == MPM_OPT_FLAG) {
            int v;
            memcpy(&v, f, sizeof v);
            for (int i = 0; i < v; i++) {
                arg_start(offs, text);
                if (mpm_buf_printf(text, "--%s", o->name) || mpm_buf_append(text, "", 1)) abort();
            }
            continue;
        }
        arg_start(offs, text);
        if (mpm_buf_printf(text, "--%s=", o->name)) abort();
        if (o->type == MPM_OPT_CHOICE) {
            int v;
            memcpy(&v, f, sizeof v);
            const char *c = o->choices;
            for (int i = 0; i < v; i++) c = strchr(c, '|') + 1;
            if (mpm_buf_append(text, c, strcspn(c, "|"))) abort();
        } else if (o->type == MPM_OPT_INT && o->choices && !memcmp(f, &(long long){0}, 8)) {
            if (mpm_buf_printf(text, "%s", o->choices)) abort();
        } else if (o->type == MPM_OPT_STRING) {
            const char *s;
            memcpy(&s, f, sizeof s);
            if (s && mpm_buf_printf(text, "%s", s)) abort();
        } else if (mpm__option_value(text, o, base, 0) != 0) {
            abort();
        }
        if (mpm_buf_append(text, "", 1)) abort();
    }
}

static void json(mpm_buf_t *b, const mpm_option_t *t, const void *base)
{
    b->len = 0;
    if (mpm__options_json(b, t, base) || mpm_buf_append(b, "", 1)) abort();
}

static int same_inputs(const mpm_inputs_t *a, const mpm_inputs_t *b)
{
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++) {
        const mpm_input_t *x = &a->v[i], *y = &b->v[i];
        if (x->kind != y->kind || x->len != y->len || x->lo != y->lo || x->hi != y->hi) return 0;
        if ((!x->name) != (!y->name) || (x->name && strcmp(x->name, y->name))) return 0;
        if (x->kind == MPM_IN_MEMORY && x->len && memcmp(x->data, y->data, x->len)) return 0;
    }
    return 1;
}

/* primes' A:B as documented: decimal A <= B <= 1e15, A shorter than 32. */
static int range_of(const char *s, uint64_t *a, uint64_t *b)
{
    const char *c = strchr(s, ':');
    if (!c || c - s >= 32) return 0;
    uint64_t v[2] = {0, 0};
    const char *p[2] = {s, c + 1}, *e[2] = {c, s + strlen(s)};
    for (int k = 0; k < 2; k++) {
        if (p[k] == e[k]) return 0;
        for (const char *q = p[k]; q < e[k]; q++) {
            if (*q < '0' || *q > '9') return 0;
            unsigned d = (unsigned)(*q - '0');
            if (v[k] > (UINT64_MAX - d) / 10) return 0;
            v[k] = v[k] * 10 + d;
        }
    }
    *a = v[0];
    *b = v[1];
    return v[0] <= v[1] && v[1] <= PRIMES_MAX;
}

static void check_primes_arg(const mpm_kernel_t *k, char *arg)
{
    uint64_t a, b;
    int want = range_of(arg, &a, &b);
    void *o = calloc(1, k->opts_size);
    if (!o) abort();
    k->opts_init(o);
    mpm_inputs_t in = {0};
    mpm_err_t err = {.offset = -1, .msg = ""};
    int rc = k->check(o, 1, &arg, &in, &err);
    if ((rc == 0) != want) fail("primes' check disagrees on a range", arg);
    if (rc == 0 && (in.n != 1 || in.v[0].kind != MPM_IN_RANGE || in.v[0].lo != a ||
                    in.v[0].hi != b + 1))
        fail("primes' input is not the range", arg);
    if (rc < 0 && !err.msg[0]) fail("primes' check refused without a message", arg);
    free(in.v);
    k->opts_free(o);
    free(o);
}

/* fib: every accepted integer is computed by map(). */
static void check_fib(mpm_cli_t *c)
{
    const mpm_kernel_t *k = c->kernel;
    if (c->inputs.n != 1 || c->inputs.v[0].kind != MPM_IN_MEMORY) return; /* --file */
    for (const mpm_option_t *o = k->options; o->name; o++)
        if (!strcmp(o->name, "fast")) *(int *)((char *)c->opts + o->offset) = 1;
    const mpm_input_t *in = &c->inputs.v[0];
    mpm_chunk_t ch = {.name = in->name, .data = in->data, .len = in->len};
    mpm_buf_t out = {0}, want = {0};
    mpm_err_t err = {.offset = -1, .msg = ""};
    if (k->map(c->opts, &ch, NULL, MPM_FMT_TEXT, &out, &err) < 0)
        fail("fib's map refused an integer its check accepted", err.msg);
    for (int i = 0; i < c->nargs; i++) {
        long long v;
        if (mpm__parse_ll(c->args[i], &v) < 0 || v < 0 || v > 93) fail("fib accepted", c->args[i]);
        uint64_t f0 = 0, f1 = 1;
        for (long long j = 0; j < v; j++) {
            uint64_t t = f0 + f1;
            f0 = f1;
            f1 = t;
        }
        if (mpm_buf_printf(&want, "%lld\t%" PRIu64 "\n", v, f0)) abort();
    }
    if (out.len != want.len || memcmp(out.data, want.data, want.len))
        fail("fib's rows are not n<TAB>fib(n) of the arguments", NULL);
    mpm_buf_free(&out);
    mpm_buf_free(&want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *kname = kernels[data[0] % (sizeof kernels / sizeof *kernels)];
    const mpm_kernel_t *k = mpm_kernel_find(kname);
    if (!k) return 0;
    char *s = malloc(size);
    if (!s) return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = 0;
    char *toks[MAX_ARGS];
    int nt = 0;
    for (char *p = s; nt < MAX_ARGS;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        toks[nt++] = p;
        if (!nl) break;
        p = nl + 1;
    }
    if (size == 1) nt = 0;
    int at = -1; /* the '@' */
    for (int i = 0; i < nt; i++) {
        uint64_t a, b;
        if (!strncmp(toks[i], "--kernel", 8) || strstr(toks[i], "output-mode") ||
            (!strcmp(kname, "primes") && range_of(toks[i], &a, &b) && b > 1000000000000ULL)) {
            free(s);
            return 0;
        }
        for (int j = 0; banned[j]; j++)
            if (!strcmp(toks[i], banned[j])) {
                free(s);
                return 0;
            }
        if (at < 0 && !strcmp(toks[i], "@")) at = i;
    }
    char *argv[MAX_ARGS + 3];
    int argc = 0;
    argv[argc++] = "mpimap";
    for (int i = 0; i < at; i++) argv[argc++] = toks[i];
    argv[argc++] = (char *)kname;
    for (int i = at + 1; i < nt; i++) argv[argc++] = toks[i];
    argv[argc] = NULL;

    if (!strcmp(kname, "primes"))
        for (int i = 0; i < nt; i++) check_primes_arg(k, toks[i]);

    mpm_cli_t c1, c2;
    int r1 = mpm__cli_parse(argc, argv, 1, &c1);
    if (r1 != MPM_CLI_RUN && r1 != MPM_CLI_DONE && r1 != MPM_CLI_USAGE)
        fail("mpm__cli_parse answered something else", NULL);
    if (r1 == MPM_CLI_RUN) {
        if (c1.kernel != k) {
            /* Only when a word of the engine's part names that kernel: the
             * first word that is not an option (or its value) is the
             * kernel, as in `mpimap test fib`. */
            int named = 0;
            for (int i = 0; i < at; i++) named |= !strcmp(toks[i], c1.kernel->name);
            if (!named) fail("another kernel", c1.kernel->name);
            mpm__cli_free(&c1);
            free(s);
            return 0;
        }
        const mpm_option_t *et = mpm__engine_options();
        mpm_config_t dcfg;
        mpm_config_init(&dcfg);
        void *dk = calloc(1, k->opts_size ? k->opts_size : 1);
        if (!dk) abort();
        if (k->opts_init) k->opts_init(dk);
        check_bounds(et, &c1.cfg, &dcfg);
        check_bounds(k->options, c1.opts, dk);

        /* the canonical command line */
        mpm_buf_t text = {0};
        offs_t offs = {0};
        arg_start(&offs, &text);
        if (mpm_buf_append(&text, "mpimap", 7)) abort();
        format_opts(et, &c1.cfg, &dcfg, &text, &offs);
        arg_start(&offs, &text);
        if (mpm_buf_append(&text, kname, strlen(kname) + 1)) abort();
        format_opts(k->options, c1.opts, dk, &text, &offs);
        arg_start(&offs, &text);
        if (mpm_buf_append(&text, "--", 3)) abort();
        char **av2 = malloc((offs.n + (size_t)c1.nargs + 1) * sizeof *av2);
        if (!av2) abort();
        int ac2 = 0;
        for (size_t i = 0; i < offs.n; i++) av2[ac2++] = text.data + offs.v[i];
        for (int i = 0; i < c1.nargs; i++) av2[ac2++] = c1.args[i];
        av2[ac2] = NULL;
        int r2 = mpm__cli_parse(ac2, av2, 1, &c2);
        if (r2 != MPM_CLI_RUN) {
            for (int i = 0; i < ac2; i++) fprintf(stderr, "  argv[%d] = '%s'\n", i, av2[i]);
            fail("the canonical command line is refused", NULL);
        }
        mpm_buf_t j1 = {0}, j2 = {0};
        json(&j1, NULL, &c1.cfg);
        json(&j2, NULL, &c2.cfg);
        if (strcmp(j1.data, j2.data)) {
            fprintf(stderr, "  first: %s\n  again: %s\n", j1.data, j2.data);
            fail("the engine options differ when parsed again", NULL);
        }
        json(&j1, k->options, c1.opts);
        json(&j2, k->options, c2.opts);
        if (strcmp(j1.data, j2.data)) {
            fprintf(stderr, "  first: %s\n  again: %s\n", j1.data, j2.data);
            fail("the kernel options differ when parsed again", NULL);
        }
        if (c1.nargs != c2.nargs) fail("another number of arguments when parsed again", NULL);
        for (int i = 0; i < c1.nargs; i++)
            if (strcmp(c1.args[i], c2.args[i])) fail("an argument differs when parsed again", NULL);
        if (!same_inputs(&c1.inputs, &c2.inputs)) fail("the inputs differ when parsed again", NULL);
        mpm_buf_free(&j1);
        mpm_buf_free(&j2);
        mpm__cli_free(&c2);
        free(av2);
        free(offs.v);
        mpm_buf_free(&text);

        if (!strcmp(kname, "primes")) {
            uint64_t a, b;
            if (c1.nargs != 1 || !range_of(c1.args[0], &a, &b) || c1.inputs.n != 1 ||
                c1.inputs.v[0].kind != MPM_IN_RANGE || c1.inputs.v[0].lo != a ||
                c1.inputs.v[0].hi != b + 1)
                fail("primes accepted something else than A:B", c1.nargs ? c1.args[0] : NULL);
        }
        if (!strcmp(kname, "fib")) check_fib(&c1);
        if (k->opts_free) k->opts_free(dk);
        free(dk);
    }
    mpm__cli_free(&c1);
    free(s);
    return 0;
}
