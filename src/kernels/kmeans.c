/*
 * kmeans.c - k-means clustering (Lloyd) over data that stays distributed.
 *
 * PHASES. (1) The engine scatters the input's chunks as for any kernel;
 * map() parses each chunk (CSV lines or raw float records) on a pool thread
 * into a matrix of doubles, overlapped with the transfer of the next chunks,
 * and keeps it in the thread's partial. (2) solve() runs on every rank at
 * once with the rank's chunks (kernel.h, ABI 3): statistics, initial
 * centroids, Lloyd iterations, final labels and inertia, each a parallel pass
 * over the rank's rows on its pool plus one small collective. The points never
 * move after the scatter; only centroids and per-cluster sums cross ranks.
 *
 * REPRODUCIBILITY. Rows are cut into blocks of KM_BLOCK rows of one chunk.
 * Chunk boundaries depend only on the input and the chunk size, so blocks are
 * the same for every -np/--threads. Each block sums in double, in row order;
 * block sums enter exact accumulators (kmeans.h), whose integer digits are
 * summed across threads and ranks in any order. Counts are integers. Every
 * other quantity (centroid shifts, k-means++ draws) is computed from these
 * identically on every rank. Hence centroids, labels and inertia are the
 * same bits for any -np/--threads (not for another --chunk-size, which
 * regroups the block sums).
 *
 * ALGORITHM: scikit-learn's `_kmeans_single_lloyd`: assign (nearest centroid,
 * lowest index on ties), update centroids as means; stop when no label
 * changed (strict) or when the squared centroid shift <= tol * mean feature
 * variance; after a non-strict stop, labels are recomputed against the final
 * centroids; inertia uses the final centroids and labels. Empty clusters take
 * the points farthest from their own centroids (ties: the earliest row).
 *
 * Thread safety: map() touches only its chunk and partial; solve()'s
 * parallel passes write only their own block's rows and their thread's
 * scratch (indexed by the pool thread number).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../output.h"
#include "../util.h"
#include "kmeans.h"
#include "mpimap/mpimap.h"

#define KM_BLOCK 1024  /* rows per block (the unit of ordered double sums) */
#define HEAD_MAX (1 << 20) /* bytes read to find the first line */

enum { INIT_PP = 0, INIT_RANDOM = 1, INIT_FILE = 2 };

typedef struct km_opts_s {
    long long k, max_iter, seed, dims;
    double tol;
    const char *init, *columns, *delimiter, *labels;
    int standardize, header, no_header, inertia, dtype;
    /* derived by check() */
    const char *input;
    int raw;          /* --dims: raw little-endian floats */
    size_t esize;     /* raw: 4 or 8 */
    long long fields; /* CSV: fields per line; raw: values per record */
    int has_header;
    char delim;
    size_t d;   /* features used */
    int *sel;   /* d source columns (0-based), in output order */
    int *where; /* fields entries: position among the features, or -1 */
    char **names; /* d output column names */
    int init_kind;
} km_opts_t;

static const mpm_option_t km_options[] = {
    {"k", 0, MPM_OPT_INT, offsetof(km_opts_t, k), "K", "number of clusters (required)", 1, INT_MAX,
     NULL, 0},
    {"max-iter", 0, MPM_OPT_INT, offsetof(km_opts_t, max_iter), "N",
     "at most N Lloyd iterations (default 300)", 1, 1000000000, NULL, 0},
    {"tol", 0, MPM_OPT_DOUBLE, offsetof(km_opts_t, tol), "T",
     "stop when the sum of the squared centroid shifts is <= T times the mean variance of the "
     "features, as scikit-learn does (default 1e-4; 0: only when no label changes)",
     0, LLONG_MAX, NULL, 0},
    {"seed", 0, MPM_OPT_INT, offsetof(km_opts_t, seed), "S",
     "seed of the k-means++ and random initialisations (default 0)", 0, LLONG_MAX, NULL, 0},
    {"init", 0, MPM_OPT_STRING, offsetof(km_opts_t, init), "kmeans++|random|FILE",
     "initial centroids: greedy k-means++ (default), K distinct random rows, or the K rows of "
     "a CSV FILE in the input's units (a centroids file written by this kernel works)",
     0, -1, NULL, 0},
    {"standardize", 0, MPM_OPT_FLAG, offsetof(km_opts_t, standardize), NULL,
     "scale every feature to mean 0 and standard deviation 1 before clustering (constant "
     "features are only centred); centroids are written in the input's units",
     0, -1, NULL, 0},
    {"header", 0, MPM_OPT_FLAG, offsetof(km_opts_t, header), NULL,
     "CSV: the first line is a header (default: detected: a header when a field of the first "
     "line is not a number)",
     0, -1, NULL, 0},
    {"no-header", 0, MPM_OPT_FLAG, offsetof(km_opts_t, no_header), NULL,
     "CSV: the first line is data", 0, -1, NULL, 0},
    {"columns", 0, MPM_OPT_STRING, offsetof(km_opts_t, columns), "LIST",
     "features to use: comma-separated 1-based column numbers, ranges A-B, or header names, in "
     "the order given (default: every column)",
     0, -1, NULL, 0},
    {"delimiter", 0, MPM_OPT_STRING, offsetof(km_opts_t, delimiter), "C",
     "CSV field separator: one character, or 'tab' (default ',')", 0, -1, NULL, 0},
    {"dims", 0, MPM_OPT_INT, offsetof(km_opts_t, dims), "D",
     "the input is raw little-endian floats, D per point, no header (see --dtype)", 1, 1 << 24,
     NULL, 0},
    {"dtype", 0, MPM_OPT_CHOICE, offsetof(km_opts_t, dtype), "TYPE",
     "f64|f32: element type of raw input (default f64); computation is in double", 0, -1,
     "f64|f32", 0},
    {"labels", 0, MPM_OPT_STRING, offsetof(km_opts_t, labels), "FILE",
     "write each data row's cluster (0-based), one per line in input order, to FILE", 0, -1,
     NULL, 0},
    {"inertia", 0, MPM_OPT_FLAG, offsetof(km_opts_t, inertia), NULL,
     "print the final inertia (sum of squared distances to the centroids) on standard output "
     "(needs -o)",
     0, -1, NULL, 0},
    {NULL, 0, 0, 0, NULL, NULL, 0, 0, NULL, 0}};

static void km_init(void *op)
{
    km_opts_t *o = op;
    memset(o, 0, sizeof *o);
    o->max_iter = 300;
    o->tol = 1e-4;
    o->init = "kmeans++";
}

static void km_free(void *op)
{
    km_opts_t *o = op;
    if (o->names)
        for (size_t i = 0; i < o->d; i++) free(o->names[i]);
    free(o->names);
    free(o->sel);
    free(o->where);
    o->names = NULL;
    o->sel = o->where = NULL;
}

/* ---- CSV fields ------------------------------------------------------------ */

/* One field of a line: [*s, *e) after trimming blanks and quotes. Advances
 * *p past the field and its delimiter; *last set when the line ended.
 * Returns 0, or -1 with a reason in *why. */
static int next_field(const char **p, const char *end, char delim, const char **s,
                      const char **e, int *last, int *quoted, const char **why)
{
    const char *q = *p;
    while (q < end && (*q == ' ' || (*q == '\t' && delim != '\t'))) q++;
    *quoted = 0;
    if (q < end && *q == '"') {
        *quoted = 1;
        const char *a = ++q;
        while (q < end) {
            if (*q == '"') {
                if (q + 1 < end && q[1] == '"') {
                    q += 2;
                    continue;
                }
                break;
            }
            q++;
        }
        if (q >= end) {
            *why = "unterminated quote";
            return -1;
        }
        *s = a;
        *e = q++;
        while (q < end && (*q == ' ' || (*q == '\t' && delim != '\t'))) q++;
        if (q < end && *q != delim) {
            *why = "text after a closing quote";
            return -1;
        }
    } else {
        const char *a = q;
        while (q < end && *q != delim) q++;
        const char *b = q;
        while (b > a && (b[-1] == ' ' || (b[-1] == '\t' && delim != '\t'))) b--;
        *s = a;
        *e = b;
    }
    if (q < end) { /* at the delimiter */
        *p = q + 1;
        *last = 0;
    } else {
        *p = q;
        *last = 1;
    }
    return 0;
}

/* Parses [s, e) as a whole number: 1 (a number), 0 (not a number). */
static int parse_number(const char *s, const char *e, double *v) { return km_parse_double(s, e, v); }

/* A printable excerpt of a field for messages. */
static void excerpt(const char *s, const char *e, char *dst, size_t cap)
{
    size_t n = 0;
    for (const char *q = s; q < e && n + 5 < cap; q++) {
        unsigned char c = (unsigned char)*q;
        if (c < 0x20 || c == 0x7f) n += (size_t)snprintf(dst + n, cap - n, "\\x%02x", c);
        else dst[n++] = (char)c;
    }
    if (s + n < e && n + 4 < cap) n += (size_t)snprintf(dst + n, cap - n, "...");
    dst[n] = 0;
}

/* Parses one CSV line (without its '\n') into row[0 .. d). 0, or -1 with a
 * message in msg (the caller adds the position). */
static int parse_line(const km_opts_t *o, const char *p, const char *end, double *row, char *msg,
                      size_t cap)
{
    long long f = 0;
    int last = 0;
    while (!last) {
        const char *s, *e, *why = NULL;
        int quoted;
        if (next_field(&p, end, o->delim, &s, &e, &last, &quoted, &why) < 0) {
            snprintf(msg, cap, "column %lld: %s", f + 1, why);
            return -1;
        }
        if (f < o->fields && o->where[f] >= 0) {
            double v;
            char ex[64];
            if (!parse_number(s, e, &v)) {
                excerpt(s, e, ex, sizeof ex);
                snprintf(msg, cap, "column %lld: '%s' is not a number%s", f + 1, ex,
                         o->columns ? "" : " (--columns selects the numeric columns)");
                return -1;
            }
            if (!isfinite(v)) {
                excerpt(s, e, ex, sizeof ex);
                snprintf(msg, cap, "column %lld: '%s' is not finite (NaN and infinity cannot be clustered)", f + 1, ex);
                return -1;
            }
            row[o->where[f]] = v;
        }
        f++;
    }
    if (f != o->fields) {
        snprintf(msg, cap, "%lld field%s, expected %lld (as in the first line)", f, f == 1 ? "" : "s",
                 o->fields);
        return -1;
    }
    return 0;
}

/* ---- options and inputs ------------------------------------------------------ */

static int add_column(km_opts_t *o, int col, size_t *n, mpm_err_t *err)
{
    if (o->where[col] >= 0)
        return mpm_err_set(err, -1, "--columns: column %d is given twice", col + 1);
    o->where[col] = (int)*n;
    o->sel[(*n)++] = col;
    return 0;
}

/* Resolves --columns against the first line's fields (names: header only). */
static int select_columns(km_opts_t *o, char **head, mpm_err_t *err)
{
    size_t F = (size_t)o->fields;
    o->where = malloc(F * sizeof *o->where);
    o->sel = malloc(F * sizeof *o->sel);
    if (!o->where || !o->sel) return mpm_err_set(err, -1, "out of memory");
    for (size_t i = 0; i < F; i++) o->where[i] = -1;
    size_t n = 0;
    if (!o->columns) {
        for (size_t i = 0; i < F; i++) add_column(o, (int)i, &n, err);
    } else {
        const char *p = o->columns;
        for (;;) {
            const char *c = strchr(p, ',');
            size_t len = c ? (size_t)(c - p) : strlen(p);
            char tok[256];
            if (len == 0 || len >= sizeof tok)
                return mpm_err_set(err, -1, "--columns: empty or overlong item in '%s'", o->columns);
            memcpy(tok, p, len);
            tok[len] = 0;
            char *e1;
            long a = strtol(tok, &e1, 10), b = a;
            int numeric = e1 != tok && tok[0] >= '0' && tok[0] <= '9';
            if (numeric && *e1 == '-') {
                char *e2;
                b = strtol(e1 + 1, &e2, 10);
                numeric = e2 != e1 + 1 && *e2 == 0;
            } else if (numeric) {
                numeric = *e1 == 0;
            }
            if (numeric) {
                if (a < 1 || b < a || b > (long)F)
                    return mpm_err_set(err, -1,
                                       "--columns: '%s' is outside 1..%zu (the input has %zu "
                                       "field%s per %s)",
                                       tok, F, F, F == 1 ? "" : "s", o->raw ? "record" : "line");
                for (long i = a; i <= b; i++)
                    if (add_column(o, (int)i - 1, &n, err) < 0) return -1;
            } else {
                if (o->raw)
                    return mpm_err_set(err, -1, "--columns: raw input has no column names ('%s')", tok);
                if (!head)
                    return mpm_err_set(err, -1, "--columns: no column named '%s': '%s' has no header line", tok,
                                       o->input);
                size_t i = 0;
                while (i < F && strcmp(head[i], tok)) i++;
                if (i == F)
                    return mpm_err_set(err, -1, "--columns: no column named '%s' in the header of '%s'",
                                       tok, o->input);
                if (add_column(o, (int)i, &n, err) < 0) return -1;
            }
            if (!c) break;
            p = c + 1;
        }
    }
    o->d = n;
    o->names = calloc(n, sizeof *o->names);
    if (!o->names) return mpm_err_set(err, -1, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char x[32];
        snprintf(x, sizeof x, "x%d", o->sel[i] + 1);
        o->names[i] = strdup(head ? head[o->sel[i]] : x);
        if (!o->names[i]) return mpm_err_set(err, -1, "out of memory");
    }
    return 0;
}

/* Whether a --columns list names a column (an item that is not N or A-B). */
static int names_in(const char *list)
{
    if (!list) return 0;
    for (const char *p = list; *p;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p), i = 0;
        while (i < len && p[i] >= '0' && p[i] <= '9') i++;
        if (i < len && p[i] == '-' && i > 0) {
            size_t j = ++i;
            while (i < len && p[i] >= '0' && p[i] <= '9') i++;
            if (i == j) return 1;
        }
        if (i != len || len == 0) return 1;
        if (!c) break;
        p = c + 1;
    }
    return 0;
}

/* Reads the input's first line: number of fields, header or not, names. */
static int read_head(km_opts_t *o, mpm_err_t *err)
{
    int fd = open(o->input, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 1; /* reported by the engine's input checks (exit 1) */
    size_t bcap = (size_t)64 << 10; /* doubled up to HEAD_MAX while no newline is seen */
    char *buf = malloc(bcap);
    if (!buf) {
        close(fd);
        return mpm_err_set(err, -1, "out of memory");
    }
    size_t have = 0;
    char *nl = NULL;
    while (have < HEAD_MAX && !nl) {
        if (have == bcap) {
            char *nb = realloc(buf, bcap * 2);
            if (!nb) {
                free(buf);
                close(fd);
                return mpm_err_set(err, -1, "out of memory");
            }
            buf = nb;
            bcap *= 2;
        }
        ssize_t r = read(fd, buf + have, bcap - have);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        nl = memchr(buf + have, '\n', (size_t)r);
        have += (size_t)r;
    }
    close(fd);
    if (have == 0) { /* empty: the engine reports it */
        free(buf);
        return 1;
    }
    if (!nl && have == HEAD_MAX) {
        free(buf);
        return mpm_err_set(err, -1, "'%s': the first line is longer than %d bytes", o->input, HEAD_MAX);
    }
    const char *end = nl ? nl : buf + have;
    if (end > buf && end[-1] == '\r') end--;
    /* Fields of the first line, unquoted. */
    size_t cap = 16, F = 0;
    char **head = malloc(cap * sizeof *head);
    int rc = 0, last = 0;
    char *isnum = NULL; /* per field of the first line: a number? */
    const char *p = buf;
    while (head && !last) {
        const char *s, *e, *why = NULL;
        int quoted;
        if (next_field(&p, end, o->delim, &s, &e, &last, &quoted, &why) < 0) {
            rc = mpm_err_set(err, -1, "'%s': line 1: column %zu: %s", o->input, F + 1, why);
            break;
        }
        if (F == cap) {
            char **nh = realloc(head, 2 * cap * sizeof *head);
            if (!nh) {
                rc = mpm_err_set(err, -1, "out of memory");
                break;
            }
            head = nh;
            cap *= 2;
        }
        size_t len = (size_t)(e - s);
        char *name = malloc(len + 1);
        if (!name) {
            rc = mpm_err_set(err, -1, "out of memory");
            break;
        }
        size_t w = 0; /* "" inside quotes is one quote */
        for (const char *q = s; q < e; q++) {
            name[w++] = *q;
            if (quoted && *q == '"' && q + 1 < e && q[1] == '"') q++;
        }
        name[w] = 0;
        double v;
        char *ni = realloc(isnum, F + 1);
        if (!ni) {
            free(name);
            rc = mpm_err_set(err, -1, "out of memory");
            break;
        }
        isnum = ni;
        isnum[F] = (char)parse_number(s, e, &v);
        head[F++] = name;
    }
    free(buf);
    if (!head) return mpm_err_set(err, -1, "out of memory");
    if (rc == 0) {
        o->fields = (long long)F;
        if (o->header || o->no_header) {
            o->has_header = o->header;
        } else if (names_in(o->columns)) {
            o->has_header = 1; /* columns named: the first line names them */
        } else {
            /* Detected on the selected fields only: a text column that is
             * not used does not make the first data line a header. */
            rc = select_columns(o, NULL, err);
            for (size_t j = 0; rc == 0 && j < o->d; j++)
                if (!isnum[o->sel[j]]) o->has_header = 1;
            km_free(o);
            o->d = 0;
        }
        if (rc == 0) rc = select_columns(o, o->has_header ? head : NULL, err);
    }
    for (size_t i = 0; i < F; i++) free(head[i]);
    free(head);
    free(isnum);
    return rc;
}

static int km_check(void *op, int argc, char **argv, mpm_inputs_t *in, mpm_err_t *err)
{
    km_opts_t *o = op;
    if (o->k < 1) return mpm_err_set(err, -1, "--k K is required (the number of clusters)");
    if (argc != 1)
        return mpm_err_set(err, -1, "expected one INPUT file, got %d", argc);
    if (!strcmp(argv[0], "-"))
        return mpm_err_set(err, -1,
                           "INPUT must be a file: kmeans reads its first line on every rank "
                           "(standard input cannot be read twice)");
    o->input = argv[0];
    if (o->header && o->no_header) return mpm_err_set(err, -1, "--header and --no-header contradict each other");
    o->init_kind = !strcmp(o->init, "kmeans++") ? INIT_PP : !strcmp(o->init, "random") ? INIT_RANDOM : INIT_FILE;
    if (o->init_kind == INIT_FILE && !o->init[0]) return mpm_err_set(err, -1, "--init: empty file name");
    if (o->labels && !strcmp(o->labels, o->input))
        return mpm_err_set(err, -1, "--labels '%s' is the input: refusing to overwrite it", o->labels);
    o->delim = ',';
    if (o->delimiter) {
        if (!strcmp(o->delimiter, "tab") || !strcmp(o->delimiter, "\\t")) o->delim = '\t';
        else if (strlen(o->delimiter) == 1) o->delim = o->delimiter[0];
        else return mpm_err_set(err, -1, "--delimiter: expected one character or 'tab', got '%s'", o->delimiter);
        if (strchr("0123456789.+-eExXpP\"\n\r", o->delim) || !o->delim)
            return mpm_err_set(err, -1, "--delimiter '%s' can be part of a number or a quote", o->delimiter);
    }
    if (o->dims) {
        if (o->header || o->no_header || o->delimiter)
            return mpm_err_set(err, -1, "--dims (raw floats) takes no --header, --no-header or --delimiter");
        o->raw = 1;
        o->esize = o->dtype == 1 ? 4 : 8;
        o->fields = o->dims;
        if (select_columns(o, NULL, err) < 0) return -1;
    } else {
        int r = read_head(o, err);
        if (r < 0) return -1;
        if (r > 0) { /* unreadable or empty: the engine says so; keep going */
            o->fields = 0;
            o->d = 0;
        }
    }
    mpm_input_t x = {.kind = MPM_IN_FILE, .name = o->input};
    return mpm_inputs_add(in, x) ? mpm_err_set(err, -1, "out of memory") : 0;
}

static uint64_t km_record_size(const void *op)
{
    const km_opts_t *o = op;
    return o->raw ? (uint64_t)o->dims * o->esize : 0;
}

static const char *const *km_columns(const void *op)
{
    (void)op;
    static const char *const none[] = {NULL};
    return none;
}

/* ---- map: parse a chunk --------------------------------------------------------- */

typedef struct km_chunk_s {
    uint64_t index;
    size_t rows;
    double *x;     /* rows * d */
    size_t mapped; /* bytes of x when it was mmap'd (else 0: malloc) */
} km_chunk_t;

/* Large matrices come from mmap with transparent huge pages asked for:
 * first-touch page faults on 4 KiB pages cost more than the parsing. */
#define KM_MAP_MIN ((size_t)2 << 20)
static double *matrix_alloc(size_t bytes, size_t *mapped)
{
    *mapped = 0;
    if (bytes < KM_MAP_MIN) return malloc(bytes ? bytes : 1);
    size_t len = (bytes + KM_MAP_MIN - 1) / KM_MAP_MIN * KM_MAP_MIN;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return malloc(bytes);
#ifdef MADV_HUGEPAGE
    madvise(p, len, MADV_HUGEPAGE);
#endif
    *mapped = len;
    return p;
}

static void matrix_free(double *x, size_t mapped)
{
    if (mapped) munmap(x, mapped);
    else free(x);
}

typedef struct km_part_s {
    km_chunk_t *v;
    size_t n, cap;
} km_part_t;

static void *km_partial_new(const void *op)
{
    (void)op;
    return calloc(1, sizeof(km_part_t));
}

static void km_partial_free(void *pp)
{
    km_part_t *p = pp;
    if (!p) return;
    for (size_t i = 0; i < p->n; i++) matrix_free(p->v[i].x, p->v[i].mapped);
    free(p->v);
    free(p);
}

static int part_push(km_part_t *p, km_chunk_t c)
{
    if (p->n == p->cap) {
        size_t nc = p->cap ? 2 * p->cap : 16;
        km_chunk_t *nv = realloc(p->v, nc * sizeof *nv);
        if (!nv) return -1;
        p->v = nv;
        p->cap = nc;
    }
    p->v[p->n++] = c;
    return 0;
}

static int km_merge(const void *op, void *dst, void *src, mpm_err_t *err)
{
    (void)op;
    km_part_t *a = dst, *b = src;
    for (size_t i = 0; i < b->n; i++) {
        if (part_push(a, b->v[i]) < 0) {
            /* what was moved already belongs to a */
            memmove(b->v, b->v + i, (b->n - i) * sizeof *b->v);
            b->n -= i;
            return mpm_err_set(err, -1, "out of memory");
        }
    }
    b->n = 0;
    return 0;
}

static int km_serialize(const void *op, const void *p, mpm_buf_t *out)
{
    (void)op, (void)p, (void)out;
    return -1; /* resident data never travels */
}

static void *km_deserialize(const void *op, const void *data, size_t len, mpm_err_t *err)
{
    (void)op, (void)data, (void)len;
    mpm_err_set(err, -1, "kmeans partials are not serialised");
    return NULL;
}

static int map_raw(const km_opts_t *o, const mpm_chunk_t *c, km_chunk_t *kc, mpm_err_t *err)
{
    size_t rec = (size_t)o->dims * o->esize, rows = c->len / rec;
    if (c->len % rec)
        return mpm_err_set(err, (int64_t)(rows * rec),
                           "incomplete record: the size of '%s' is not a multiple of the record "
                           "size %zu bytes (--dims %lld of %s)",
                           c->name, rec, o->dims, o->esize == 4 ? "f32" : "f64");
    size_t d = o->d;
    double *x = matrix_alloc(rows * d * sizeof *x, &kc->mapped);
    if (!x) return mpm_err_set(err, -1, "out of memory for %zu rows", rows);
    const unsigned char *p = (const unsigned char *)c->data;
    int identity = o->esize == 8 && d == (size_t)o->dims;
    for (size_t j = 0; identity && j < d; j++) identity = o->sel[j] == (int)j;
    if (identity) { /* copy, then look for NaN/infinity (exponent all ones) */
        memcpy(x, p, rows * rec);
        const uint64_t *u = (const uint64_t *)(void *)x;
        uint64_t bad = 0, n = (uint64_t)rows * d;
        for (uint64_t i = 0; i < n; i++) bad |= ((u[i] >> 52) & 0x7ff) == 0x7ff;
        if (!bad) {
            kc->rows = rows;
            kc->x = x;
            return 0;
        }
    }
    for (size_t r = 0; r < rows; r++, p += rec) {
        for (size_t j = 0; j < d; j++) {
            size_t at = (size_t)o->sel[j] * o->esize;
            double v;
            if (o->esize == 8) {
                memcpy(&v, p + at, 8);
            } else {
                float f;
                memcpy(&f, p + at, 4);
                v = f;
            }
            if (!isfinite(v)) {
                matrix_free(x, kc->mapped);
                return mpm_err_set(err, (int64_t)(r * rec + at),
                                   "row %llu, column %d: the value is not finite (NaN and "
                                   "infinity cannot be clustered)",
                                   (unsigned long long)(c->offset / rec + r + 1), o->sel[j] + 1);
            }
            x[r * d + j] = v;
        }
    }
    kc->rows = rows;
    kc->x = x;
    return 0;
}

static int map_csv(const km_opts_t *o, const mpm_chunk_t *c, km_chunk_t *kc, mpm_err_t *err)
{
    size_t d = o->d, cap = 0, rows = 0;
    double *x = NULL;
    const char *p = c->data, *end = c->data + c->len;
    int first = c->offset == 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *le = nl ? nl : end;
        const char *ls = p;
        p = nl ? nl + 1 : end;
        if (first) {
            first = 0;
            if (o->has_header) continue;
        }
        if (le > ls && le[-1] == '\r') le--;
        if (le == ls) continue; /* empty line */
        if (rows == cap) {
            size_t nc = cap ? 2 * cap : 256;
            double *nx = realloc(x, nc * (d ? d : 1) * sizeof *x);
            if (!nx) {
                free(x);
                return mpm_err_set(err, -1, "out of memory");
            }
            x = nx;
            cap = nc;
        }
        char msg[400];
        if (parse_line(o, ls, le, x + rows * d, msg, sizeof msg) < 0) {
            free(x);
            return mpm_err_set(err, ls - c->data, "%s", msg);
        }
        rows++;
    }
    kc->rows = rows;
    kc->x = x;
    return 0;
}

static int km_map(const void *op, const mpm_chunk_t *c, void *pp, mpm_format_t fmt, mpm_buf_t *out,
                  mpm_err_t *err)
{
    (void)fmt, (void)out;
    const km_opts_t *o = op;
    km_chunk_t kc = {.index = c->index};
    if (o->fields == 0 || o->d == 0) return mpm_err_set(err, -1, "'%s': no column to read", c->name);
    if ((o->raw ? map_raw(o, c, &kc, err) : map_csv(o, c, &kc, err)) < 0) return -1;
    if (kc.rows == 0) {
        matrix_free(kc.x, kc.mapped);
        return 0;
    }
    if (part_push(pp, kc) < 0) {
        matrix_free(kc.x, kc.mapped);
        return mpm_err_set(err, -1, "out of memory");
    }
    return 0;
}

/* ---- solve: the distributed iterations ------------------------------------------- */

/* xoshiro256** seeded by splitmix64: the same stream on every rank. */
typedef struct rng_s {
    uint64_t s[4];
} rng_t;

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng_t *r)
{
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Uniform in [0, n), without modulo bias. */
static uint64_t rng_below(rng_t *r, uint64_t n)
{
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
        uint64_t v = rng_next(r);
        if (v < lim) return v % n;
    }
}

static double rng_unit(rng_t *r) { return (double)(rng_next(r) >> 11) * 0x1p-53; }

typedef struct blk_s {
    size_t chunk, r0, rows;
} blk_t;

/* The farthest rows seen (dist descending, then row ascending), at most
 * `want` of them: relocation candidates for empty clusters. */
typedef struct far_s {
    double *dist;
    uint64_t *row;
    size_t n;
} far_t;

/* A thread's integer accumulators, summed over threads then ranks. */
enum {
    ACC_XS,  /* k * d cluster sums, Ls digits each */
    ACC_CNT, /* k counts, then the number of changed labels */
    ACC_XF,  /* up to `nf` values in the full layout */
    NACC
};

/* One pool thread's scratch and accumulators. */
typedef struct thr_s {
    int64_t *acc[NACC];
    double *bsum;  /* k * d block sums (zero between blocks) */
    int64_t *bcnt; /* k */
    int32_t *touched, *tl;
    double *td;
    double *dsum; /* nf block sums */
    int emax, emin;
    far_t far;
} thr_t;

typedef struct run_s {
    const km_opts_t *o;
    mpm_solve_t *s;
    km_part_t *p;
    size_t d, k, nth;
    uint64_t N;        /* rows of every rank */
    uint64_t *g0;      /* per local chunk: global index of its first row */
    int32_t **lab;     /* per local chunk: labels */
    double **aux;      /* per local chunk: k-means++ D^2 */
    blk_t *blk;
    size_t nblk;
    thr_t *th;
    km_xlayout_t Ls, Lf;
    size_t nf;         /* full-layout values per thread in use */
    /* the pass being run */
    int mode;
    const double *c;   /* centroids k * d (row-major) */
    double *ct;        /* transposed, padded */
    const double *cand; /* k-means++ candidates */
    size_t ncand;
    const double *mean, *scale; /* standardisation */
    size_t want;       /* relocation: farthest rows wanted */
    int relabel;       /* final pass: recompute labels */
    int d2_first;      /* k-means++ D^2 pass: distance to the first centre */
} run_t;

enum { P_EXP, P_SUM, P_VAR, P_SCALE, P_LLOYD, P_FINAL, P_D2, P_POT, P_FAR };

static void far_free(far_t *f)
{
    free(f->dist);
    free(f->row);
    *f = (far_t){0};
}

/* Empty, room for `want`. */
static void far_init(far_t *f, size_t want)
{
    far_free(f);
    f->dist = malloc((want ? want : 1) * sizeof *f->dist);
    f->row = malloc((want ? want : 1) * sizeof *f->row);
    if (!f->dist || !f->row) abort();
}

static void thr_free(thr_t *t)
{
    for (int a = 0; a < NACC; a++) free(t->acc[a]);
    free(t->bsum);
    free(t->bcnt);
    free(t->touched);
    free(t->tl);
    free(t->td);
    free(t->dsum);
    far_free(&t->far);
}

static void xadd_row(const km_xlayout_t *L, int64_t *acc, const double *v, size_t n)
{
    for (size_t j = 0; j < n; j++) km_xadd(L, acc + j * (size_t)L->n, v[j]);
}

/* Inserts (dist, row) among f's `want` farthest. */
static void far_insert(far_t *f, size_t want, double dist, uint64_t row)
{
    size_t n = f->n;
    if (!want) return;
    if (n == want && !(dist > f->dist[n - 1] || (dist == f->dist[n - 1] && row < f->row[n - 1])))
        return;
    size_t i = n < want ? n : want - 1;
    while (i > 0 && (dist > f->dist[i - 1] || (dist == f->dist[i - 1] && row < f->row[i - 1]))) {
        f->dist[i] = f->dist[i - 1];
        f->row[i] = f->row[i - 1];
        i--;
    }
    f->dist[i] = dist;
    f->row[i] = row;
    if (n < want) f->n++;
}

static inline void add_row(double *restrict s, const double *restrict v, size_t d)
{
    for (size_t j = 0; j < d; j++) s[j] += v[j];
}

/* One block of one pass. */
static void pass_block(void *arg, size_t b, int tid)
{
    run_t *R = arg;
    thr_t *t = &R->th[tid];
    const blk_t *B = &R->blk[b];
    size_t d = R->d, k = R->k;
    double *x = R->p->v[B->chunk].x + B->r0 * d;
    int32_t *lab = R->lab ? R->lab[B->chunk] + B->r0 : NULL;
    switch (R->mode) {
    case P_EXP:
        km_exponents(x, B->rows * d, &t->emax, &t->emin);
        break;
    case P_SUM: /* column sums */
        for (size_t j = 0; j < d; j++) t->dsum[j] = 0;
        for (size_t i = 0; i < B->rows; i++)
            for (size_t j = 0; j < d; j++) t->dsum[j] += x[i * d + j];
        xadd_row(&R->Ls, t->acc[ACC_XS], t->dsum, d);
        break;
    case P_VAR: /* squared deviations from the mean */
        for (size_t j = 0; j < d; j++) t->dsum[j] = 0;
        for (size_t i = 0; i < B->rows; i++)
            for (size_t j = 0; j < d; j++) {
                double e = x[i * d + j] - R->mean[j];
                t->dsum[j] += e * e;
            }
        xadd_row(&R->Lf, t->acc[ACC_XF], t->dsum, d);
        break;
    case P_SCALE:
        for (size_t i = 0; i < B->rows; i++)
            for (size_t j = 0; j < d; j++) {
                double v = x[i * d + j] - R->mean[j];
                x[i * d + j] = R->scale[j] > 0 ? v / R->scale[j] : v;
            }
        break;
    case P_LLOYD: {
        km_assign(x, B->rows, d, R->ct, k, t->tl, t->td);
        size_t nt = 0;
        int64_t changed = 0;
        for (size_t i = 0; i < B->rows; i++) {
            int32_t l = t->tl[i];
            if (lab[i] != l) changed++;
            lab[i] = l;
            if (t->bcnt[l]++ == 0) t->touched[nt++] = l;
            add_row(t->bsum + (size_t)l * d, x + i * d, d);
        }
        for (size_t q = 0; q < nt; q++) {
            size_t l = (size_t)t->touched[q];
            double *s = t->bsum + l * d;
            xadd_row(&R->Ls, t->acc[ACC_XS] + l * d * (size_t)R->Ls.n, s, d);
            for (size_t j = 0; j < d; j++) s[j] = 0;
            t->acc[ACC_CNT][l] += t->bcnt[l];
            t->bcnt[l] = 0;
        }
        t->acc[ACC_CNT][k] += changed;
        break;
    }
    case P_FINAL: { /* labels (when relabel) and inertia */
        double in = 0;
        if (R->relabel) {
            km_assign(x, B->rows, d, R->ct, k, lab, t->td);
            for (size_t i = 0; i < B->rows; i++) in += t->td[i];
        } else {
            for (size_t i = 0; i < B->rows; i++) in += km_dist2(x + i * d, R->c + (size_t)lab[i] * d, d);
        }
        km_xadd(&R->Lf, t->acc[ACC_XF], in);
        break;
    }
    case P_D2: { /* D^2 = min(D^2, distance to the new centre c[0]) */
        double *a = R->aux[B->chunk] + B->r0;
        for (size_t i = 0; i < B->rows; i++) {
            double v = km_dist2(x + i * d, R->c, d);
            if (R->d2_first || v < a[i]) a[i] = v;
        }
        break;
    }
    case P_POT: { /* potential of each candidate */
        const double *a = R->aux[B->chunk] + B->r0;
        for (size_t q = 0; q < R->ncand; q++) {
            double s = 0;
            const double *cq = R->cand + q * d;
            for (size_t i = 0; i < B->rows; i++) {
                double v = km_dist2(x + i * d, cq, d);
                s += v < a[i] ? v : a[i];
            }
            km_xadd(&R->Lf, t->acc[ACC_XF] + q * (size_t)R->Lf.n, s);
        }
        break;
    }
    case P_FAR: { /* the farthest rows from their own centroids */
        uint64_t g = R->g0[B->chunk] + B->r0;
        for (size_t i = 0; i < B->rows; i++)
            far_insert(&t->far, R->want, km_dist2(x + i * d, R->c + (size_t)lab[i] * d, d), g + i);
        break;
    }
    }
}

static void run_pass(run_t *R, int mode) 
{
    R->mode = mode;
    mpm_solve_parallel(R->s, R->nblk, pass_block, R);
}

/* Sums the threads' accumulator `which` (n int64; with a layout L, nvals
 * exact values whose digits are normalised first) into thread 0's, then
 * across ranks. */
static void reduce_i64(run_t *R, int which, size_t n, const km_xlayout_t *L, size_t nvals)
{
    int64_t *dst = R->th[0].acc[which];
    for (size_t t = 0; t < R->nth; t++) {
        int64_t *a = R->th[t].acc[which];
        if (L)
            for (size_t v = 0; v < nvals; v++) km_xnorm(L, a + v * (size_t)L->n);
        if (t)
            for (size_t i = 0; i < n; i++) {
                dst[i] += a[i];
                a[i] = 0;
            }
    }
    mpm_solve_allreduce(R->s, dst, n, MPM_RED_SUM_I64);
    if (L)
        for (size_t v = 0; v < nvals; v++) km_xnorm(L, dst + v * (size_t)L->n);
}

static void zero_i64(run_t *R, int which, size_t n)
{
    for (size_t t = 0; t < R->nth; t++) memset(R->th[t].acc[which], 0, n * 8);
}

/* Global exponent bounds of the data and the layout of the sums. */
static void data_layout(run_t *R)
{
    for (size_t t = 0; t < R->nth; t++) {
        R->th[t].emax = INT_MIN;
        R->th[t].emin = INT_MAX;
    }
    run_pass(R, P_EXP);
    int64_t e[2] = {INT_MIN, -(int64_t)INT_MAX}; /* max of emax, max of -emin */
    for (size_t t = 0; t < R->nth; t++) {
        if (R->th[t].emax > e[0]) e[0] = R->th[t].emax;
        if (-(int64_t)R->th[t].emin > e[1]) e[1] = -(int64_t)R->th[t].emin;
    }
    mpm_solve_allreduce(R->s, e, 2, MPM_RED_MAX_I64);
    if (e[0] == INT_MIN) { /* every value is zero */
        e[0] = 1;
        e[1] = 0;
    }
    /* Sums, means and relocations stay multiples of 2^emin below the top. */
    km_xlayout(&R->Ls, (int)e[0] + (int)(64 - __builtin_clzll((uint64_t)KM_BLOCK)), (int)-e[1]);
}

/* Column means (exact sums / N) into mean[d]. */
static void column_means(run_t *R, double *mean)
{
    size_t d = R->d, n = (size_t)R->Ls.n;
    zero_i64(R, ACC_XS, d * n);
    run_pass(R, P_SUM);
    reduce_i64(R, ACC_XS, d * n, &R->Ls, d);
    for (size_t j = 0; j < d; j++) mean[j] = km_xvalue(&R->Ls, R->th[0].acc[ACC_XS] + j * n) / (double)R->N;
}

/* Population variances (exact sums of squared deviations / N) into var[d]. */
static void column_vars(run_t *R, const double *mean, double *var)
{
    size_t d = R->d, n = (size_t)R->Lf.n;
    R->mean = mean;
    zero_i64(R, ACC_XF, d * n);
    run_pass(R, P_VAR);
    reduce_i64(R, ACC_XF, d * n, &R->Lf, d);
    for (size_t j = 0; j < d; j++) var[j] = km_xvalue(&R->Lf, R->th[0].acc[ACC_XF] + j * n) / (double)R->N;
}

/* Where global row g lives here: local chunk index, or -1. */
static long find_row(const run_t *R, uint64_t g, size_t *r)
{
    size_t lo = 0, hi = R->p->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (R->g0[mid] + R->p->v[mid].rows <= g) lo = mid + 1;
        else hi = mid;
    }
    if (lo < R->p->n && R->g0[lo] <= g && g < R->g0[lo] + R->p->v[lo].rows) {
        *r = (size_t)(g - R->g0[lo]);
        return (long)lo;
    }
    return -1;
}

/* Rows rows[0..m) (global indices) copied into out[m * d] on every rank. */
static void fetch_rows(run_t *R, const uint64_t *rows, size_t m, double *out)
{
    size_t d = R->d, rec = 8 + d * 8;
    mpm_buf_t mine = {0}, all = {0};
    size_t size = (size_t)mpm_solve_size(R->s);
    size_t *off = malloc((size + 1) * sizeof *off);
    int ok = off != NULL;
    for (size_t q = 0; ok && q < m; q++) {
        size_t r = 0;
        long c = find_row(R, rows[q], &r);
        if (c < 0) continue;
        uint64_t qq = q;
        ok = mpm_buf_append(&mine, &qq, 8) == 0 &&
             mpm_buf_append(&mine, R->p->v[c].x + r * d, d * 8) == 0;
    }
    if (!ok) {
        MPM_LOG(MPM_LOG_ERROR, "out of memory");
        abort();
    }
    mpm_solve_allgather(R->s, mine.data, mine.len, &all, off);
    for (size_t at = 0; at + rec <= all.len; at += rec) {
        uint64_t q;
        memcpy(&q, all.data + at, 8);
        memcpy(out + q * d, all.data + at + 8, d * 8);
    }
    mpm_buf_free(&mine);
    mpm_buf_free(&all);
    free(off);
}

/* One chunk's sum of k-means++ weights, as the ranks exchange it. */
typedef struct csum_s {
    uint64_t index;
    double sum;
    int64_t rank;
} csum_t;

static int cmp_csum(const void *a, const void *b)
{
    const csum_t *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* A row drawn with probability D^2 / sum(D^2) (k-means++), u in [0, 1):
 * its global index on the rank that holds it, -1 on the others. */
static int64_t draw_row(run_t *R, const csum_t *cs, size_t ncs, double total, double u)
{
    double target = u * total, acc = 0;
    size_t c = 0;
    for (; c + 1 < ncs; c++) {
        if (acc + cs[c].sum > target) break;
        acc += cs[c].sum;
    }
    if (cs[c].rank != mpm_solve_rank(R->s)) return -1;
    /* This rank holds chunk c: walk its rows. */
    size_t lc = 0;
    while (R->p->v[lc].index != cs[c].index) lc++;
    const double *a = R->aux[lc];
    size_t rows = R->p->v[lc].rows, pick = rows;
    double run = acc;
    for (size_t i = 0; i < rows; i++) {
        if (a[i] > 0) pick = i; /* the last positive one if rounding overshoots */
        run += a[i];
        if (run > target && a[i] > 0) {
            pick = i;
            break;
        }
    }
    if (pick == rows) pick = 0;
    return (int64_t)(R->g0[lc] + pick);
}

/* Every chunk's sum of D^2 (each in row order), on every rank, in chunk
 * order (*out: free it), and their total summed in that order. */
static void chunk_sums(run_t *R, csum_t **out, size_t *nout, double *total)
{
    size_t n = R->p->n, size = (size_t)mpm_solve_size(R->s);
    csum_t *mine = malloc((n ? n : 1) * sizeof *mine);
    size_t *off = malloc((size + 1) * sizeof *off);
    if (!mine || !off) abort();
    for (size_t c = 0; c < n; c++) {
        double s = 0;
        for (size_t i = 0; i < R->p->v[c].rows; i++) s += R->aux[c][i];
        mine[c] = (csum_t){R->p->v[c].index, s, mpm_solve_rank(R->s)};
    }
    mpm_buf_t all = {0};
    mpm_solve_allgather(R->s, mine, n * sizeof *mine, &all, off);
    size_t m = all.len / sizeof(csum_t);
    csum_t *v = (csum_t *)(void *)all.data;
    if (m) qsort(v, m, sizeof *v, cmp_csum);
    double t = 0;
    for (size_t i = 0; i < m; i++) t += v[i].sum;
    *out = v; /* owned by the caller (all.data) */
    *nout = m;
    *total = t;
    free(mine);
    free(off);
}

/* Greedy k-means++ (as scikit-learn: 2 + ln k candidates per centre, the
 * one that lowers the potential most is kept). */
static size_t pp_trials(size_t k) { return 2 + (size_t)log((double)k); }

static void init_pp(run_t *R, double *c)
{
    size_t d = R->d, k = R->k, L = pp_trials(k);
    rng_t rng;
    rng_seed(&rng, (uint64_t)R->o->seed);
    uint64_t first = rng_below(&rng, R->N);
    fetch_rows(R, &first, 1, c);
    R->c = c;
    R->d2_first = 1;
    run_pass(R, P_D2);
    R->d2_first = 0;
    double *cand = malloc(L * d * sizeof *cand);
    uint64_t *rows = malloc(L * sizeof *rows);
    int64_t *pick = malloc(L * sizeof *pick);
    if (!cand || !rows || !pick) abort();
    for (size_t ci = 1; ci < k; ci++) {
        csum_t *cs;
        size_t ncs;
        double total;
        chunk_sums(R, &cs, &ncs, &total);
        for (size_t q = 0; q < L; q++) {
            if (total > 0) {
                pick[q] = draw_row(R, cs, ncs, total, rng_unit(&rng));
            } else { /* every point sits on a centre: uniform */
                uint64_t g = rng_below(&rng, R->N);
                pick[q] = mpm_solve_rank(R->s) == 0 ? (int64_t)g : -1;
            }
        }
        free(cs);
        mpm_solve_allreduce(R->s, pick, L, MPM_RED_MAX_I64);
        for (size_t q = 0; q < L; q++) rows[q] = (uint64_t)pick[q];
        fetch_rows(R, rows, L, cand);
        R->cand = cand;
        R->ncand = L;
        size_t n = (size_t)R->Lf.n;
        zero_i64(R, ACC_XF, L * n);
        run_pass(R, P_POT);
        reduce_i64(R, ACC_XF, L * n, &R->Lf, L);
        size_t best = 0;
        double bv = INFINITY;
        for (size_t q = 0; q < L; q++) {
            double v = km_xvalue(&R->Lf, R->th[0].acc[ACC_XF] + q * n);
            if (v < bv) {
                bv = v;
                best = q;
            }
        }
        memcpy(c + ci * d, cand + best * d, d * sizeof *c);
        R->c = c + ci * d;
        run_pass(R, P_D2);
    }
    free(cand);
    free(rows);
    free(pick);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* K distinct rows, uniformly (Floyd's algorithm), in ascending order. */
static void init_random(run_t *R, double *c)
{
    size_t k = R->k;
    rng_t rng;
    rng_seed(&rng, (uint64_t)R->o->seed);
    size_t cap = 1;
    while (cap < 2 * k) cap <<= 1;
    uint64_t *set = malloc(cap * sizeof *set), *rows = malloc(k * sizeof *rows);
    if (!set || !rows) abort();
    for (size_t i = 0; i < cap; i++) set[i] = UINT64_MAX;
    size_t n = 0;
    for (uint64_t j = R->N - k; j < R->N; j++) {
        uint64_t t = rng_below(&rng, j + 1), pick = t;
        for (size_t h = (size_t)(t * 0x9e3779b97f4a7c15ULL) & (cap - 1);; h = (h + 1) & (cap - 1)) {
            if (set[h] == UINT64_MAX) break;
            if (set[h] == t) {
                pick = j;
                break;
            }
        }
        for (size_t h = (size_t)(pick * 0x9e3779b97f4a7c15ULL) & (cap - 1);; h = (h + 1) & (cap - 1))
            if (set[h] == UINT64_MAX) {
                set[h] = pick;
                break;
            }
        rows[n++] = pick;
    }
    qsort(rows, k, sizeof *rows, cmp_u64);
    fetch_rows(R, rows, k, c);
    free(set);
    free(rows);
}

/* Reads --init FILE (rank 0): K rows of D numbers. 0 or -1 with err. */
static int read_init(const km_opts_t *o, size_t k, size_t d, double *c, mpm_err_t *err)
{
    FILE *f = fopen(o->init, "r");
    if (!f) return mpm_err_set(err, -1, "--init '%s': %s", o->init, strerror(errno));
    char *line = NULL;
    size_t cap = 0, rows = 0;
    long long lineno = 0;
    ssize_t len;
    int rc = 0;
    char delim = 0;
    km_opts_t io;
    memset(&io, 0, sizeof io);
    io.fields = (long long)d;
    int *where = malloc(d * sizeof *where);
    double *row = malloc(d * sizeof *row);
    if (!where || !row) rc = mpm_err_set(err, -1, "out of memory");
    for (size_t j = 0; where && j < d; j++) where[j] = (int)j;
    io.where = where;
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        char *e = line + len;
        if (e > line && e[-1] == '\n') e--;
        if (e > line && e[-1] == '\r') e--;
        if (e == line) continue;
        if (!delim) { /* the first line tells: comma, tab or semicolon */
            delim = memchr(line, ',', (size_t)(e - line)) ? ','
                    : memchr(line, '\t', (size_t)(e - line)) ? '\t'
                    : memchr(line, ';', (size_t)(e - line)) ? ';'
                                                            : ',';
            io.delim = delim;
            /* a header line: any field not a number */
            const char *p = line, *s, *fe, *why;
            int last = 0, quoted, numeric = 1;
            while (!last && next_field(&p, e, delim, &s, &fe, &last, &quoted, &why) == 0) {
                double v;
                if (!parse_number(s, fe, &v)) numeric = 0;
            }
            if (!numeric) continue;
        }
        char msg[400];
        if (parse_line(&io, line, e, row, msg, sizeof msg) < 0) {
            rc = mpm_err_set(err, -1, "%s:%lld: %s", o->init, lineno, msg);
            break;
        }
        if (rows < k) memcpy(c + rows * d, row, d * sizeof *row);
        rows++;
    }
    if (rc == 0 && ferror(f)) rc = mpm_err_set(err, -1, "--init '%s': %s", o->init, strerror(errno));
    if (rc == 0 && rows != k)
        rc = mpm_err_set(err, -1, "--init '%s' holds %zu centroids, --k is %zu", o->init, rows, k);
    free(line);
    free(where);
    free(row);
    fclose(f);
    return rc;
}

/* A relocation candidate as the ranks exchange it: the row's distance to
 * its centroid, global index, current label, then its d values. */
typedef struct far_rec_s {
    double dist;
    uint64_t row;
    int64_t label;
} far_rec_t;

static int cmp_far_rec(const void *a, const void *b)
{
    const far_rec_t *x = *(const far_rec_t *const *)a, *y = *(const far_rec_t *const *)b;
    if (x->dist != y->dist) return x->dist > y->dist ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

/* Empty clusters take the farthest points (see the header comment). `sums`
 * and `cnt` are the reduced accumulators; `c` the centroids of this pass. */
static void relocate(run_t *R, int64_t *sums, int64_t *cnt, const double *c)
{
    size_t k = R->k, d = R->d, n = (size_t)R->Ls.n, ne = 0;
    for (size_t l = 0; l < k; l++) ne += cnt[l] == 0;
    for (size_t t = 0; t < R->nth; t++) far_init(&R->th[t].far, ne);
    R->want = ne;
    R->c = c;
    run_pass(R, P_FAR);
    /* This rank's farthest (the threads' lists merged), with their labels
     * and values, to every rank. */
    far_t mine = {0};
    far_init(&mine, ne);
    for (size_t t = 0; t < R->nth; t++)
        for (size_t i = 0; i < R->th[t].far.n; i++)
            far_insert(&mine, ne, R->th[t].far.dist[i], R->th[t].far.row[i]);
    size_t rec = sizeof(far_rec_t) + d * 8, size = (size_t)mpm_solve_size(R->s);
    mpm_buf_t out = {0}, gat = {0};
    for (size_t i = 0; i < mine.n; i++) {
        size_t r = 0;
        long ch = find_row(R, mine.row[i], &r);
        far_rec_t h = {mine.dist[i], mine.row[i], R->lab[ch][r]};
        if (mpm_buf_append(&out, &h, sizeof h) || mpm_buf_append(&out, R->p->v[ch].x + r * d, d * 8))
            abort();
    }
    size_t *off = malloc((size + 1) * sizeof *off);
    if (!off) abort();
    mpm_solve_allgather(R->s, out.data, out.len, &gat, off);
    /* The global farthest, in order, go to the empty clusters in order. */
    size_t m = gat.len / rec;
    far_rec_t **top = malloc((m ? m : 1) * sizeof *top);
    double *xv = malloc((d ? d : 1) * sizeof *xv);
    if (!top || !xv) abort();
    for (size_t i = 0; i < m; i++) top[i] = (far_rec_t *)(void *)(gat.data + i * rec);
    qsort(top, m, sizeof *top, cmp_far_rec);
    size_t e = 0;
    for (size_t l = 0; l < k && e < m; l++) {
        if (cnt[l] != 0) continue;
        const far_rec_t *h = top[e++];
        size_t old = (size_t)h->label, r = 0;
        memcpy(xv, h + 1, d * 8);
        for (size_t j = 0; j < d; j++) {
            km_xadd(&R->Ls, sums + (old * d + j) * n, -xv[j]);
            km_xadd(&R->Ls, sums + (l * d + j) * n, xv[j]);
        }
        cnt[old]--;
        cnt[l] = 1;
        cnt[k]++; /* a label changed */
        long ch = find_row(R, h->row, &r);
        if (ch >= 0) R->lab[ch][r] = (int32_t)l;
    }
    for (size_t v = 0; v < k * d; v++) km_xnorm(&R->Ls, sums + v * n);
    far_free(&mine);
    free(top);
    free(xv);
    free(off);
    mpm_buf_free(&out);
    mpm_buf_free(&gat);
}

/* One CSV field, quoted when it must be. */
static void csv_field(mpm_buf_t *b, const char *s)
{
    if (!strpbrk(s, ",\"\r\n") && s[0] != ' ' && (!s[0] || s[strlen(s) - 1] != ' ')) {
        mpm_buf_append(b, s, strlen(s));
        return;
    }
    mpm_buf_append(b, "\"", 1);
    for (const char *q = s; *q; q++) {
        if (*q == '"') mpm_buf_append(b, "\"", 1);
        mpm_buf_append(b, q, 1);
    }
    mpm_buf_append(b, "\"", 1);
}


static int cmp_chunk(const void *a, const void *b)
{
    const km_chunk_t *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

typedef struct crow_s {
    uint64_t index, rows;
} crow_t;

static int cmp_crow(const void *a, const void *b)
{
    const crow_t *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int km_solve(const void *op, void *pp, mpm_solve_t *s, mpm_buf_t *out, mpm_err_t *err)
{
    const km_opts_t *o = op;
    km_part_t *p = pp;
    double t0 = mpm__now();
    int rank = mpm_solve_rank(s), size = mpm_solve_size(s), rc = -1;
    run_t R = {.o = o, .s = s, .p = p, .d = o->d, .k = (size_t)o->k, .nth = (size_t)mpm_solve_threads(s)};
    size_t d = R.d, k = R.k;
    double *c = NULL, *cn = NULL, *mean = NULL, *scale = NULL, *var = NULL;

    /* Usage found only now: the engine's -o. */
    const char *opath = mpm_solve_output(s);
    if (o->inertia && !opath)
        return mpm_err_set(err, -1, "--inertia needs -o (the centroids would share standard output)");
    if (o->labels && opath && !strcmp(o->labels, opath) &&
        !mpm__out_in_place(opath)) /* /dev/null twice is fine */
        return mpm_err_set(err, -1, "--labels and -o name the same file '%s'", opath);
    /* --labels is written last: refuse one that cannot be before the work,
     * as the engine refuses such a -o (a directory, a missing directory). */
    if (o->labels) {
        char why[sizeof err->msg];
        int ok = rank != 0 || mpm__out_check_writable("--labels", o->labels, why, sizeof why) == 0;
        if (!ok) mpm_err_set(err, -1, "%s", why);
        if (!mpm_solve_agree(s, ok)) {
            if (rank != 0 || ok) mpm_err_set(err, -1, "--labels '%s' refused on rank 0", o->labels);
            return -1;
        }
    }

    /* Global row numbers: every rank learns every chunk's row count. */
    if (p->n) qsort(p->v, p->n, sizeof *p->v, cmp_chunk);
    crow_t *mine = malloc((p->n ? p->n : 1) * sizeof *mine);
    size_t *off = malloc(((size_t)size + 1) * sizeof *off);
    R.g0 = malloc((p->n ? p->n : 1) * sizeof *R.g0);
    if (!mine || !off || !R.g0) abort();
    for (size_t i = 0; i < p->n; i++) mine[i] = (crow_t){p->v[i].index, p->v[i].rows};
    mpm_buf_t all = {0};
    mpm_solve_allgather(s, mine, p->n * sizeof *mine, &all, off);
    size_t nall = all.len / sizeof(crow_t);
    crow_t *ca = (crow_t *)(void *)all.data;
    if (nall) qsort(ca, nall, sizeof *ca, cmp_crow);
    uint64_t N = 0;
    for (size_t i = 0, j = 0; i < nall; i++) {
        if (j < p->n && ca[i].index == p->v[j].index) R.g0[j++] = N;
        N += ca[i].rows;
    }
    R.N = N;
    free(mine);
    free(off);
    mpm_buf_free(&all);
    if (N == 0) {
        mpm_err_set(err, -1, "'%s': no data rows", o->input);
        goto done;
    }
    if ((uint64_t)k > N) {
        mpm_err_set(err, -1, "--k %zu exceeds the number of points (%llu) in '%s'", k,
                    (unsigned long long)N, o->input);
        goto done;
    }

    /* Blocks, labels, thread scratch. */
    for (size_t i = 0; i < p->n; i++) R.nblk += (p->v[i].rows + KM_BLOCK - 1) / KM_BLOCK;
    R.blk = malloc((R.nblk ? R.nblk : 1) * sizeof *R.blk);
    R.lab = calloc(p->n ? p->n : 1, sizeof *R.lab);
    R.th = calloc(R.nth, sizeof *R.th);
    int ok = R.blk && R.lab && R.th;
    for (size_t i = 0, b = 0; ok && i < p->n; i++) {
        for (size_t r0 = 0; r0 < p->v[i].rows; r0 += KM_BLOCK)
            R.blk[b++] = (blk_t){i, r0, p->v[i].rows - r0 < KM_BLOCK ? p->v[i].rows - r0 : KM_BLOCK};
        R.lab[i] = malloc(p->v[i].rows * sizeof **R.lab);
        if (!R.lab[i]) ok = 0;
        else
            for (size_t r = 0; r < p->v[i].rows; r++) R.lab[i][r] = -1;
    }
    km_xlayout_full(&R.Lf);
    R.nf = d > pp_trials(k) ? d : pp_trials(k); /* P_VAR/P_SUM use d, P_POT the trials */
    c = malloc(k * d * sizeof *c);
    cn = malloc(k * d * sizeof *cn);
    mean = calloc(d, sizeof *mean);
    scale = calloc(d, sizeof *scale);
    var = calloc(d, sizeof *var);
    R.ct = malloc(km_kpad(k) * d * sizeof *R.ct);
    ok = ok && c && cn && mean && scale && var && R.ct;
    for (size_t t = 0; ok && t < R.nth; t++) {
        thr_t *T = &R.th[t];
        T->acc[ACC_XF] = calloc(R.nf * (size_t)R.Lf.n, 8);
        T->acc[ACC_CNT] = calloc(k + 1, 8);
        T->bsum = calloc(k * d > d ? k * d : d, sizeof(double));
        T->bcnt = calloc(k, 8);
        T->touched = malloc(k * sizeof *T->touched);
        T->tl = malloc(KM_BLOCK * sizeof *T->tl);
        T->td = malloc(KM_BLOCK * sizeof *T->td);
        T->dsum = calloc(d, sizeof(double));
        ok = T->acc[ACC_XF] && T->acc[ACC_CNT] && T->bsum && T->bcnt && T->touched && T->tl && T->td && T->dsum;
    }
    if (!mpm_solve_agree(s, ok)) {
        mpm_err_set(err, -1, "out of memory for the iterations (%llu points)", (unsigned long long)N);
        goto done;
    }

    /* Standardisation, then the layout of the sums and the tolerance. */
    data_layout(&R);
    for (size_t t = 0; ok && t < R.nth; t++)
        ok = (R.th[t].acc[ACC_XS] = calloc(k * d * (size_t)R.Ls.n, 8)) != NULL;
    if (!mpm_solve_agree(s, ok)) goto oom;
    if (o->standardize) {
        column_means(&R, mean);
        column_vars(&R, mean, var);
        for (size_t j = 0; j < d; j++) scale[j] = sqrt(var[j]);
        R.mean = mean;
        R.scale = scale;
        run_pass(&R, P_SCALE);
        data_layout(&R);
        for (size_t t = 0; ok && t < R.nth; t++) {
            free(R.th[t].acc[ACC_XS]);
            ok = (R.th[t].acc[ACC_XS] = calloc(k * d * (size_t)R.Ls.n, 8)) != NULL;
        }
        if (!mpm_solve_agree(s, ok)) goto oom;
    }
    double tol_abs = 0;
    if (o->tol > 0) {
        double *m2 = calloc(d, sizeof *m2), *v2 = calloc(d, sizeof *v2);
        if (!m2 || !v2) abort();
        column_means(&R, m2);
        column_vars(&R, m2, v2);
        double sv = 0;
        for (size_t j = 0; j < d; j++) sv += v2[j];
        tol_abs = sv / (double)d * o->tol;
        free(m2);
        free(v2);
    }

    /* Initial centroids. */
    if (o->init_kind == INIT_FILE) {
        int fine = 1;
        if (rank == 0) fine = read_init(o, k, d, c, err) == 0;
        if (!mpm_solve_agree(s, fine)) {
            if (rank != 0) mpm_err_set(err, -1, "--init failed on rank 0");
            goto done;
        }
        mpm_solve_bcast(s, c, k * d * sizeof *c, 0);
        if (o->standardize)
            for (size_t q = 0; q < k; q++)
                for (size_t j = 0; j < d; j++) {
                    double v = c[q * d + j] - mean[j];
                    c[q * d + j] = scale[j] > 0 ? v / scale[j] : v;
                }
    } else {
        R.aux = calloc(p->n ? p->n : 1, sizeof *R.aux);
        ok = R.aux != NULL;
        for (size_t i = 0; ok && o->init_kind == INIT_PP && i < p->n; i++)
            ok = (R.aux[i] = malloc(p->v[i].rows * sizeof **R.aux)) != NULL;
        if (!mpm_solve_agree(s, ok)) goto oom;
        if (o->init_kind == INIT_PP) init_pp(&R, c);
        else init_random(&R, c);
    }
    double t_init = mpm__now() - t0;

    /* Lloyd. */
    size_t n = (size_t)R.Ls.n;
    int strict = 0, reason = 0; /* 0 max-iter, 1 labels stable, 2 shift <= tol */
    long long it;
    for (it = 0; it < o->max_iter; it++) {
        if (!mpm_solve_agree(s, 1)) {
            mpm_err_set(err, -1, "interrupted during iteration %lld", it + 1);
            goto done;
        }
        km_transpose(c, k, d, R.ct);
        zero_i64(&R, ACC_XS, k * d * n);
        zero_i64(&R, ACC_CNT, k + 1);
        run_pass(&R, P_LLOYD);
        reduce_i64(&R, ACC_XS, k * d * n, &R.Ls, k * d);
        /* counts and the changed-label total are plain integers */
        reduce_i64(&R, ACC_CNT, k + 1, NULL, 0);
        int64_t *sums = R.th[0].acc[ACC_XS], *cnt = R.th[0].acc[ACC_CNT];
        int empty = 0;
        for (size_t l = 0; l < k; l++) empty |= cnt[l] == 0;
        if (empty) relocate(&R, sums, cnt, c);
        double shift = 0;
        for (size_t l = 0; l < k; l++) {
            for (size_t j = 0; j < d; j++) {
                double v = cnt[l] > 0 ? km_xvalue(&R.Ls, sums + (l * d + j) * n) / (double)cnt[l]
                                      : c[l * d + j];
                double e = v - c[l * d + j];
                shift += e * e;
                cn[l * d + j] = v;
            }
        }
        double *sw = c;
        c = cn;
        cn = sw;
        if (cnt[k] == 0) {
            strict = 1;
            reason = 1;
            it++;
            break;
        }
        if (shift <= tol_abs) {
            reason = 2;
            it++;
            break;
        }
    }
    /* Final labels (unless strict) and inertia, with the final centroids. */
    km_transpose(c, k, d, R.ct);
    R.c = c;
    R.relabel = !strict;
    zero_i64(&R, ACC_XF, (size_t)R.Lf.n);
    run_pass(&R, P_FINAL);
    reduce_i64(&R, ACC_XF, (size_t)R.Lf.n, &R.Lf, 1);
    double inertia = km_xvalue(&R.Lf, R.th[0].acc[ACC_XF]);
    double t_solve = mpm__now() - t0;

    /* Outputs: labels (collective), centroids (rank 0), the summary. */
    if (o->labels) {
        mpm_buf_t *pieces = calloc(p->n ? p->n : 1, sizeof *pieces);
        uint64_t *keys = malloc((p->n ? p->n : 1) * sizeof *keys);
        ok = pieces && keys;
        for (size_t i = 0; ok && i < p->n; i++) {
            keys[i] = p->v[i].index;
            if (mpm_buf_reserve(&pieces[i], p->v[i].rows * 11) < 0) {
                ok = 0;
                break;
            }
            char *w = pieces[i].data;
            for (size_t r = 0; r < p->v[i].rows; r++) w += sprintf(w, "%d\n", R.lab[i][r]);
            pieces[i].len = (size_t)(w - pieces[i].data);
        }
        if (!mpm_solve_agree(s, ok)) goto oom;
        int wr = mpm_solve_write_ordered(s, o->labels, p->n, keys, pieces, err);
        for (size_t i = 0; i < p->n; i++) mpm_buf_free(&pieces[i]);
        free(pieces);
        free(keys);
        if (wr < 0) goto done;
    }
    if (rank == 0) {
        for (size_t j = 0; j < d; j++) {
            if (j) mpm_buf_append(out, ",", 1);
            csv_field(out, o->names[j]);
        }
        mpm_buf_append(out, "\n", 1);
        for (size_t l = 0; l < k; l++) {
            for (size_t j = 0; j < d; j++) {
                double v = c[l * d + j];
                if (o->standardize) v = (scale[j] > 0 ? v * scale[j] : v) + mean[j];
                mpm_buf_printf(out, "%s%.17g", j ? "," : "", v);
            }
            mpm_buf_append(out, "\n", 1);
        }
        static const char *const verb[] = {"stopped", "converged", "converged"};
        static const char *const why[] = {"--max-iter", "labels stable", "centroid shift <= tol"};
        char what[128];
        snprintf(what, sizeof what, "%s after %lld iteration%s (%s)", verb[reason], it,
                 it == 1 ? "" : "s", why[reason]);
        if (!mpm_solve_quiet(s))
            fprintf(stderr, "mpimap: kmeans: %llu points, %zu features, k %zu: %s, inertia %.17g\n",
                    (unsigned long long)N, d, k, what, inertia);
        if (o->inertia) {
            printf("%.17g\n", inertia);
            fflush(stdout);
        }
    }
    mpm_solve_metric(s, "points", (double)N, 1);
    mpm_solve_metric(s, "features", (double)d, 1);
    mpm_solve_metric(s, "k", (double)k, 1);
    mpm_solve_metric(s, "iterations", (double)it, 1);
    mpm_solve_metric(s, "converged", reason != 0, 2);
    mpm_solve_metric(s, "inertia", inertia, 0);
    mpm_solve_metric(s, "init_s", t_init, 0);
    mpm_solve_metric(s, "solve_s", t_solve, 0);
    rc = 0;
    goto done;
oom:
    mpm_err_set(err, -1, "out of memory (%llu points of %zu features, k %zu)", (unsigned long long)N, d, k);
done:
    for (size_t t = 0; R.th && t < R.nth; t++) thr_free(&R.th[t]);
    free(R.th);
    for (size_t i = 0; R.lab && i < p->n; i++) free(R.lab[i]);
    free(R.lab);
    for (size_t i = 0; R.aux && i < p->n; i++) free(R.aux[i]);
    free(R.aux);
    free(R.blk);
    free(R.g0);
    free(R.ct);
    free(c);
    free(cn);
    free(mean);
    free(scale);
    free(var);
    return rc;
}

const mpm_kernel_t mpm_kernel_kmeans = {
    .abi = MPM_KERNEL_ABI,
    .name = "kmeans",
    .summary = "k-means clustering (Lloyd) of CSV or raw float points, reproducible to the bit",
    .synopsis = "--k K INPUT",
    .description =
        "Clusters the rows of INPUT (CSV, or raw little-endian floats with --dims) into K "
        "clusters with Lloyd's algorithm, as scikit-learn's KMeans(algorithm='lloyd') does. The "
        "points are parsed in parallel as their chunks arrive, stay on the rank that parsed "
        "them, and every iteration only exchanges per-cluster sums. Centroids, labels and "
        "inertia are the same bits for every -np and --threads: sums are exact (see "
        "docs/KMEANS.md).\n\n"
        "Output (-o FILE or standard output): CSV, a header line with the feature names, then "
        "K lines of full-precision numbers; it can be given back as --init FILE. A summary "
        "line (points, iterations, inertia) goes to standard error; --metrics records it too.",
    .options = km_options,
    .opts_size = sizeof(km_opts_t),
    .opts_init = km_init,
    .check = km_check,
    .opts_free = km_free,
    .records = MPM_REC_LINES,
    .default_chunk_size = 4u << 20,
    .columns = km_columns,
    .partial_new = km_partial_new,
    .partial_free = km_partial_free,
    .merge = km_merge,
    .serialize = km_serialize,
    .deserialize = km_deserialize,
    .map = km_map,
    .record_size = km_record_size,
    .solve = km_solve,
};
