/*
 * fuzz_kmeans_csv.c - the kmeans kernel's input parsing, through its kernel
 * table (src/kernels/kmeans.c): check() reads the first line of the input
 * (field count, header detection, --columns), map() parses a chunk of CSV
 * lines (quotes, blanks, CR, numbers, NaN/infinity) or raw floats into rows.
 *
 * Input: byte 0 picks one of a few fixed option sets (plain CSV, --header,
 * --no-header, --columns by number/range/name, --delimiter, raw --dims with
 * f64/f32); the remaining bytes are the whole input file (held in one
 * memfd per process, which check() opens and reads as /proc/self/fd/N: no
 * file is created per input) and the data of chunk 0
 * (index 0, offset 0). When they hold a '\n' before the end, the bytes after
 * the first one are also mapped as a second chunk (index 1, at its offset),
 * where no header is skipped.
 *
 * Checked beyond "no crash, no leak": check() and map() return 0 or -1, and
 * -1 comes with a non-empty message; map()'s error offset is -1 or inside
 * the chunk.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mpimap/mpimap.h"
#include "util.h"

extern const mpm_kernel_t mpm_kernel_kmeans;

/* "name", "value" pairs (value NULL for flags), NULL-terminated. */
static const char *const opt_sets[][9] = {
    {"k", "2", NULL},
    {"k", "2", "header", NULL, NULL},
    {"k", "3", "no-header", NULL, NULL},
    {"k", "2", "columns", "1,3", NULL},
    {"k", "2", "columns", "2-3,1", "no-header", NULL, NULL},
    {"k", "2", "delimiter", "tab", NULL},
    {"k", "2", "delimiter", ";", "columns", "b,a", NULL},
    {"k", "2", "dims", "2", NULL},
    {"k", "2", "dims", "3", "dtype", "f32", "columns", "3,1", NULL},
};
#define N_SETS (sizeof opt_sets / sizeof opt_sets[0])

static char path[64];

static _Noreturn void fatal(const char *what)
{
    fprintf(stderr, "fuzz_kmeans_csv: %s\n", what);
    abort();
}

/* Stores a value into the field that the option `name` describes. */
static void set_opt(void *opts, const char *name, const char *val)
{
    for (const mpm_option_t *o = mpm_kernel_kmeans.options; o && o->name; o++) {
        if (strcmp(o->name, name) != 0) continue;
        char *f = (char *)opts + o->offset;
        switch (o->type) {
        case MPM_OPT_FLAG:
            *(int *)f = 1;
            return;
        case MPM_OPT_INT: {
            long long v;
            if (mpm__parse_ll(val, &v) < 0) fatal("bad integer in an option set");
            *(long long *)f = v;
            return;
        }
        case MPM_OPT_STRING:
            *(const char **)f = val;
            return;
        case MPM_OPT_CHOICE: {
            int i = 0;
            size_t vl = strlen(val);
            for (const char *c = o->choices; c && *c; i++) {
                const char *bar = strchr(c, '|');
                size_t cl = bar ? (size_t)(bar - c) : strlen(c);
                if (cl == vl && !memcmp(c, val, vl)) {
                    *(int *)f = i;
                    return;
                }
                c = bar ? bar + 1 : c + cl;
            }
            fatal("bad choice in an option set");
        }
        default:
            fatal("unexpected option type");
        }
    }
    fatal("unknown option in an option set");
}

static void check_err(int rc, const mpm_err_t *err, size_t len, const char *what)
{
    if (rc != 0 && rc != -1) {
        fprintf(stderr, "%s returned %d\n", what, rc);
        abort();
    }
    if (rc == -1 && !err->msg[0]) {
        fprintf(stderr, "%s failed without a message\n", what);
        abort();
    }
    if (rc == -1 && len != SIZE_MAX &&
        (err->offset < -1 || (err->offset >= 0 && (uint64_t)err->offset > len))) {
        fprintf(stderr, "%s: error offset %lld outside the chunk (%zu bytes): %s\n", what,
                (long long)err->offset, len, err->msg);
        abort();
    }
}

static int map_chunk(const void *opts, void *partial, uint64_t index, uint64_t offset,
                     const uint8_t *data, size_t len)
{
    mpm_chunk_t c = {.index = index,
                     .input = 0,
                     .name = path,
                     .offset = offset,
                     .data = (const char *)data,
                     .len = len};
    mpm_buf_t out = {0};
    mpm_err_t err = {.offset = -1, .msg = ""};
    int rc = mpm_kernel_kmeans.map(opts, &c, partial, MPM_FMT_TSV, &out, &err);
    check_err(rc, &err, len, "map");
    mpm_buf_free(&out);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static int fd = -1;
    if (fd < 0) {
        if ((fd = memfd_create("fuzz-kmeans", MFD_CLOEXEC)) < 0) fatal("memfd_create failed");
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    const char *const *set = opt_sets[data[0] % N_SETS];
    const uint8_t *body = data + 1;
    size_t len = size - 1;

    if (ftruncate(fd, 0) < 0 || (len && pwrite(fd, body, len, 0) != (ssize_t)len))
        fatal("cannot write the input file");

    const mpm_kernel_t *k = &mpm_kernel_kmeans;
    void *opts = calloc(1, k->opts_size);
    if (!opts) return 0;
    k->opts_init(opts);
    for (int i = 0; set[i]; i += 2)
        set_opt(opts, set[i], set[i + 1]);
    mpm_inputs_t in = {0};
    mpm_err_t err = {.offset = -1, .msg = ""};
    char *argv[] = {path, NULL};
    int rc = k->check(opts, 1, argv, &in, &err);
    check_err(rc, &err, SIZE_MAX, "check");
    if (rc == 0) {
        if (in.n != 1 || in.v[0].kind != MPM_IN_FILE || strcmp(in.v[0].name, path))
            fatal("check() did not declare the one input file");
        void *partial = k->partial_new(opts);
        if (!partial) fatal("partial_new returned NULL");
        map_chunk(opts, partial, 0, 0, body, len);
        const uint8_t *nl = len ? memchr(body, '\n', len) : NULL;
        if (nl && (size_t)(nl - body) + 1 < len) {
            /* Second chunk, an exact-size copy so reads past it are caught. */
            size_t at = (size_t)(nl - body) + 1, n = len - at;
            uint8_t *copy = malloc(n);
            if (copy) {
                memcpy(copy, body + at, n);
                map_chunk(opts, partial, 1, at, copy, n);
                free(copy);
            }
        }
        k->partial_free(partial);
    }
    k->opts_free(opts);
    free(opts);
    free(in.v);
    return 0;
}
