/*
 * test_engine.c - the whole engine under mpirun: every rank runs the same
 * CUnit tests, each calling mpm_main() with a command line built here.
 * Rank 0 writes the inputs into a temporary directory (its name is
 * broadcast), checks the outputs against references computed here, and
 * broadcasts its verdict so that every rank asserts the same thing.
 *
 * Only non-fatal CUnit assertions are used: a failed assertion must never
 * make one rank skip a collective call that the others make.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <fcntl.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mpimap/mpimap.h"

#define TU_RNG_SEED 0x2545f4914f6cdd1dULL
#include "testutil.h"

static int rank, nranks;
static char dir[256];
static int out_counter;

/* ---- small helpers ------------------------------------------------------------- */

typedef struct sbuf_s {
    char *p;
    size_t n, cap;
} sbuf_t;

static void sb_add(sbuf_t *b, const void *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_add(b, tmp, (size_t)n);
}

static void sb_free(sbuf_t *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static void path_of(char *buf, size_t len, const char *name)
{
    int n = snprintf(buf, len, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= len) MPI_Abort(MPI_COMM_WORLD, 3);
}

/* A fresh output path, the same on every rank. */
static void new_out(char *buf, size_t len, const char *ext)
{
    char name[64];
    snprintf(name, sizeof name, "out-%03d.%s", out_counter++, ext);
    path_of(buf, len, name);
}

/* Rank 0 only. */
static void write_file(const char *name, const char *data, size_t len)
{
    char p[512];
    path_of(p, sizeof p, name);
    FILE *f = fopen(p, "wb");
    if (!f) {
        perror(p);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    if (len && fwrite(data, 1, len, f) != len) MPI_Abort(MPI_COMM_WORLD, 3);
    fclose(f);
}

/* Rank 0 only: the whole file, or NULL. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    sbuf_t b = {0};
    char tmp[65536];
    size_t r;
    while ((r = fread(tmp, 1, sizeof tmp, f)) > 0)
        sb_add(&b, tmp, r);
    fclose(f);
    if (!b.p) b.p = calloc(1, 1);
    *len = b.n;
    return b.p;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Rank 0's verdict, asserted on every rank. */
static int agree(int ok)
{
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    CU_ASSERT(ok);
    return ok;
}

/* A verdict that must hold on every rank (each checks its own part). */
static int all_agree(int ok)
{
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    CU_ASSERT(all);
    return all;
}

/* Runs mpm_main with "mpimap" and the NULL-terminated args; checks that every
 * rank got the same exit code and returns it. */
static int run(const char *const *args)
{
    char *argv[256];
    int argc = 0;
    argv[argc++] = "mpimap";
    for (; *args && argc < 255; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    int rc = mpm_main(argc, argv, MPI_COMM_WORLD);
    int lo = 0, hi = 0;
    MPI_Allreduce(&rc, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&rc, &hi, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    CU_ASSERT_EQUAL(lo, hi);
    if (lo != hi && rank == 0)
        fprintf(stderr, "\n  exit codes differ between ranks: %d..%d\n", lo, hi);
    return rc;
}

#define RUN(...) run((const char *const[]){__VA_ARGS__, NULL})

/* Captures this rank's stderr into a file while a command runs. */
typedef struct capture_s {
    int saved;
    char path[512];
} capture_t;

static void capture_begin(capture_t *c)
{
    snprintf(c->path, sizeof c->path, "%s/stderr-rank%d.txt", dir, rank);
    fflush(stderr);
    c->saved = dup(2);
    int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
        dup2(fd, 2);
        close(fd);
    }
}

/* Returns what was written (malloc'd) and restores stderr. */
static char *capture_end(capture_t *c)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    size_t len = 0;
    char *s = read_file(c->path, &len);
    unlink(c->path);
    return s ? s : calloc(1, 1);
}

/* Leftover temporary outputs (".NAME.mpimap-*") in the directory. */
static int leftovers(void)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] == '.' && strstr(e->d_name, ".mpimap-")) n++;
    closedir(d);
    return n;
}

/* ---- inputs and references ------------------------------------------------------- */

typedef struct input_s {
    const char *name;
    char *data;
    size_t len;
    char path[512];
} input_t;

enum {
    IN_LINES,
    IN_NONL,
    IN_TINY,
    IN_ONE,
    IN_BOOM,
    IN_SLEEP,
    IN_WORDS,
    IN_FIBBAD,
    IN_EMPTY,
    IN_BOOM2,
    IN_SLOWFIRST,
    IN_N
};
static input_t in[IN_N];

static char *gen_lines(size_t nlines, size_t *len)
{
    sbuf_t b = {0};
    static const char pieces[][8] = {"a",  "b",           "xyz",          " ",    " ", "\t", "\\",
                                     "\"", "caf\xc3\xa9", "\xe2\x82\xac", "\x01", "0", "42", "--",
                                     "_",  "\r"};
    for (size_t i = 0; i < nlines; i++) {
        if (i == nlines / 2) {
            /* one line much longer than any chunk size used here */
            for (int k = 0; k < 1200; k++)
                sb_add(&b, "long-line ", 10);
        } else if (rnd() % 9 != 0) {
            size_t np = rnd() % 14;
            for (size_t k = 0; k < np; k++) {
                const char *p = pieces[rnd() % (sizeof pieces / sizeof *pieces)];
                /* "\r" only at the end of a line (CRLF), never alone in the middle */
                if (p[0] == '\r' && k + 1 != np) continue;
                sb_add(&b, p, strlen(p));
            }
        }
        sb_add(&b, "\n", 1);
    }
    *len = b.n;
    return b.p;
}

static char *gen_words(size_t len_target, size_t *len)
{
    sbuf_t b = {0};
    static const char *const seps[] = {" ", " ", "\n", ", ", ". ", "\t", "(", ")", "'", "--"};
    static const char *const stems[] = {"The", "the",         "THE", "of",
                                        "and", "caf\xc3\xa9", "x_1", "42"};
    while (b.n < len_target) {
        uint64_t r = rnd();
        if (r % 4 == 0) {
            const char *s = stems[(r >> 8) % 8];
            sb_add(&b, s, strlen(s));
        } else {
            unsigned id = (unsigned)((r >> 8) % 800);
            id = id * id / 800;
            sb_printf(&b, (r >> 30) % 5 ? "w%u" : "W%u", id);
        }
        const char *s = seps[(r >> 20) % 10];
        sb_add(&b, s, strlen(s));
    }
    *len = b.n;
    return b.p;
}

static void make_inputs(void)
{
    in[IN_LINES].name = "lines.txt";
    in[IN_LINES].data = gen_lines(2500, &in[IN_LINES].len);
    in[IN_NONL].name = "nonl.txt";
    in[IN_NONL].data = strdup("first\n\nthird line\tTAB\nno newline at the end");
    in[IN_TINY].name = "tiny.txt";
    in[IN_TINY].data = strdup("x\ny\n");
    in[IN_ONE].name = "one.txt";
    in[IN_ONE].data = strdup("only\n");
    {
        sbuf_t b = {0};
        for (int i = 1; i <= 1000; i++) {
            if (i == 613)
                sb_add(&b, "BOOM\n", 5);
            else
                sb_printf(&b, "line %d\n", i);
        }
        in[IN_BOOM].name = "boom.txt";
        in[IN_BOOM].data = b.p;
    }
    {
        sbuf_t b = {0};
        static const int us[] = {40000, 0, 15000, 0, 0, 30000, 1000, 0, 0, 20000, 0, 5000, 0, 0};
        for (int i = 0; i < 14; i++)
            sb_printf(&b, "%d\n", us[i]);
        in[IN_SLEEP].name = "sleep.txt";
        in[IN_SLEEP].data = b.p;
    }
    in[IN_WORDS].name = "words.txt";
    in[IN_WORDS].data = gen_words(300000, &in[IN_WORDS].len);
    in[IN_FIBBAD].name = "fibbad.txt";
    in[IN_FIBBAD].data = strdup("1\n2\n# comment\nabc\n5\n");
    in[IN_EMPTY].name = "empty.txt";
    in[IN_EMPTY].data = strdup("");
    {
        /* Two failing lines: the first (line 2) sits in a chunk that sleeps
         * 0.3 s before failing, the second (line 60) fails at once. */
        sbuf_t b = {0};
        sb_add(&b, "300000\nBOOM\n", 12);
        for (int i = 3; i < 60; i++)
            sb_add(&b, "0\n", 2);
        sb_add(&b, "BOOM\n", 5);
        for (int i = 61; i <= 80; i++)
            sb_add(&b, "0\n", 2);
        in[IN_BOOM2].name = "boom2.txt";
        in[IN_BOOM2].data = b.p;
    }
    {
        /* A slow first line, then more one-line chunks than the reorder ring holds. */
        sbuf_t b = {0};
        sb_add(&b, "400000\n", 7);
        for (int i = 0; i < 12000; i++)
            sb_printf(&b, "%d\n", i % 7 ? 0 : i % 5);
        in[IN_SLOWFIRST].name = "slowfirst.txt";
        in[IN_SLOWFIRST].data = b.p;
    }
    for (int i = 0; i < IN_N; i++) {
        if (!in[i].len) in[i].len = strlen(in[i].data);
        path_of(in[i].path, sizeof in[i].path, in[i].name);
        if (rank == 0) write_file(in[i].name, in[i].data, in[i].len);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

/* What echo prints for these inputs: each input, with a final newline added
 * when it lacks one. */
static void echo_expect(sbuf_t *b, const int *which, int n)
{
    for (int i = 0; i < n; i++) {
        const input_t *x = &in[which[i]];
        sb_add(b, x->data, x->len);
        if (x->len && x->data[x->len - 1] != '\n') sb_add(b, "\n", 1);
    }
}

/* lines, bytes, words (runs of bytes other than space, tab, CR within a line). */
static void count_ref(const int *which, int n, uint64_t *lines, uint64_t *bytes, uint64_t *words)
{
    *lines = *bytes = *words = 0;
    for (int i = 0; i < n; i++) {
        const input_t *x = &in[which[i]];
        *bytes += x->len;
        int inw = 0;
        for (size_t k = 0; k < x->len; k++) {
            char c = x->data[k];
            if (c == '\n') {
                (*lines)++;
                inw = 0;
                continue;
            }
            int sp = c == ' ' || c == '\t' || c == '\r';
            if (!sp && !inw) (*words)++;
            inw = !sp;
        }
        if (x->len && x->data[x->len - 1] != '\n') (*lines)++;
    }
}

/* count's row for these inputs: "lines\tbytes\twords\n". */
static void count_expect(sbuf_t *b, const int *which, int n)
{
    uint64_t l, by, w;
    count_ref(which, n, &l, &by, &w);
    sb_printf(b, "%llu\t%llu\t%llu\n", (unsigned long long)l, (unsigned long long)by,
              (unsigned long long)w);
}

/* Rank 0 only: 1 if the file at path holds exactly want; then removes it. */
static int check_out(const char *path, const char *want, size_t wl, const char *what)
{
    size_t gl = 0;
    char *got = read_file(path, &gl);
    int ok = tu_same_bytes(got, gl, want, wl, what);
    free(got);
    unlink(path);
    return ok;
}

/* check_out on rank 0, its verdict asserted on every rank. */
static int agree_out(const char *path, const char *want, size_t wl, const char *what)
{
    return agree(rank == 0 ? check_out(path, want, wl, what) : 0);
}

/* Rank 0 only: input i still holds exactly what was written. */
static int input_intact(int i)
{
    size_t gl = 0;
    char *g = read_file(in[i].path, &gl);
    int ok = g && gl == in[i].len && !memcmp(g, in[i].data, gl);
    free(g);
    return ok;
}

/* Rank 0's standard input from a file; returns the descriptor to restore
 * (saved if >= 0, else a copy of the current one). Other ranks: -1. */
static int stdin_from(const char *path, int saved)
{
    if (rank != 0) return -1;
    if (saved < 0) saved = dup(0);
    int fd = open(path, O_RDONLY);
    dup2(fd, 0);
    close(fd);
    return saved;
}

static void stdin_restore(int saved)
{
    if (rank != 0) return;
    dup2(saved, 0);
    close(saved);
}

/* ---- a small JSON checker ------------------------------------------------------------ */

typedef struct jp_s {
    const char *p, *end;
    sbuf_t *vals; /* decoded values of the objects' members, each followed by '\n' */
    int objects;
} jp_t;

static void jws(jp_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r'))
        j->p++;
}

static void put_utf8(sbuf_t *b, unsigned v)
{
    char u[4];
    if (v < 0x80) {
        u[0] = (char)v;
        sb_add(b, u, 1);
    } else if (v < 0x800) {
        u[0] = (char)(0xC0 | (v >> 6));
        u[1] = (char)(0x80 | (v & 0x3F));
        sb_add(b, u, 2);
    } else {
        u[0] = (char)(0xE0 | (v >> 12));
        u[1] = (char)(0x80 | ((v >> 6) & 0x3F));
        u[2] = (char)(0x80 | (v & 0x3F));
        sb_add(b, u, 3);
    }
}

static int jstring(jp_t *j, sbuf_t *dst)
{
    if (j->p >= j->end || *j->p != '"') return -1;
    j->p++;
    while (j->p < j->end && *j->p != '"') {
        unsigned char c = (unsigned char)*j->p;
        if (c < 0x20) return -1;
        if (c != '\\') {
            if (dst) sb_add(dst, j->p, 1);
            j->p++;
            continue;
        }
        if (++j->p >= j->end) return -1;
        char e = *j->p;
        const char *map = "\"\\/bfnrt", *rep = "\"\\/\b\f\n\r\t";
        const char *m = e ? strchr(map, e) : NULL;
        if (m) {
            if (dst) sb_add(dst, rep + (m - map), 1);
        } else if (e == 'u') {
            if (j->end - j->p < 5) return -1;
            unsigned v;
            if (tu_hex4(j->p + 1, &v) < 0) return -1;
            if (dst) put_utf8(dst, v);
            j->p += 4;
        } else {
            return -1;
        }
        j->p++;
    }
    if (j->p >= j->end) return -1;
    j->p++;
    return 0;
}

static int jnumber(jp_t *j, sbuf_t *dst)
{
    const char *s = j->p;
    if (j->p < j->end && *j->p == '-') j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return -1;
    if (*j->p == '0')
        j->p++;
    else
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9') return -1;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9') return -1;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    if (dst) sb_add(dst, s, (size_t)(j->p - s));
    return 0;
}

/* After a member or an element: 1 past a ',', 0 past `close`, -1 if neither. */
static int jnext(jp_t *j, char close)
{
    jws(j);
    if (j->p >= j->end || (*j->p != ',' && *j->p != close)) return -1;
    return *j->p++ == ',';
}

/* Whole document: '[' object (',' object)* ']' with flat objects whose
 * values are strings or numbers. Returns 0 if well-formed. */
static int json_rows(const char *s, size_t n, sbuf_t *vals, int *objects)
{
    jp_t j = {s, s + n, vals, 0};
    jws(&j);
    if (j.p >= j.end || *j.p++ != '[') return -1;
    jws(&j);
    if (j.p < j.end && *j.p == ']') {
        j.p++;
    } else {
        for (;;) {
            jws(&j);
            if (j.p >= j.end || *j.p++ != '{') return -1;
            j.objects++;
            for (;;) {
                jws(&j);
                if (jstring(&j, NULL)) return -1;
                jws(&j);
                if (j.p >= j.end || *j.p++ != ':') return -1;
                jws(&j);
                int r = j.p < j.end && *j.p == '"' ? jstring(&j, vals) : jnumber(&j, vals);
                if (r) return -1;
                if (vals) sb_add(vals, "\n", 1);
                int more = jnext(&j, '}');
                if (more < 0) return -1;
                if (!more) break;
            }
            int more = jnext(&j, ']');
            if (more < 0) return -1;
            if (!more) break;
        }
    }
    jws(&j);
    if (j.p != j.end) return -1;
    if (objects) *objects = j.objects;
    return 0;
}

/* ---- tests ------------------------------------------------------------------------------ */

/* echo: the output equals the input, for chunk sizes 1, 7, 4096 and 1..3 threads. */
static void test_echo(void)
{
    sbuf_t want = {0};
    int which[] = {IN_LINES};
    if (rank == 0) echo_expect(&want, which, 1);
    static const char *const sizes[] = {"1", "7", "4096"};
    static const char *const threads[] = {"1", "2", "3"};
    for (int s = 0; s < 3; s++) {
        for (int t = 0; t < 3; t++) {
            char out[512];
            new_out(out, sizeof out, "txt");
            int rc = RUN("-q", "--threads", threads[t], "--chunk-size", sizes[s], "-o", out, "test",
                         "--mode", "echo", in[IN_LINES].path);
            CU_ASSERT_EQUAL(rc, 0);
            char what[128];
            snprintf(what, sizeof what, "echo, chunk size %s, %s threads", sizes[s], threads[t]);
            agree_out(out, want.p, want.n, what);
        }
    }
    sb_free(&want);
}

/* --io master and shared, several inputs at once, echo and count. */
static void test_io_modes(void)
{
    int which[] = {IN_LINES, IN_NONL, IN_TINY, IN_ONE};
    sbuf_t want = {0}, cwant = {0};
    if (rank == 0) {
        echo_expect(&want, which, 4);
        count_expect(&cwant, which, 4);
    }
    static const char *const modes[] = {"master", "shared", "auto"};
    static const char *const sizes[] = {"5", "300", "64K"};
    for (int m = 0; m < 3; m++) {
        for (int s = 0; s < 3; s++) {
            char out[512], cout[512];
            new_out(out, sizeof out, "txt");
            new_out(cout, sizeof cout, "txt");
            int rc = RUN("-q", "--io", modes[m], "-c", sizes[s], "-t", "2", "-o", out, "test",
                         in[IN_LINES].path, in[IN_NONL].path, in[IN_TINY].path, in[IN_ONE].path);
            CU_ASSERT_EQUAL(rc, 0);
            rc = RUN("-q", "--io", modes[m], "-c", sizes[s], "-t", "2", "-o", cout, "test",
                     "--mode", "count", in[IN_LINES].path, in[IN_NONL].path, in[IN_TINY].path,
                     in[IN_ONE].path);
            CU_ASSERT_EQUAL(rc, 0);
            int ok = 0;
            if (rank == 0) {
                char what[128];
                snprintf(what, sizeof what, "echo --io %s -c %s", modes[m], sizes[s]);
                ok = check_out(out, want.p, want.n, what);
                snprintf(what, sizeof what, "count --io %s -c %s", modes[m], sizes[s]);
                ok &= check_out(cout, cwant.p, cwant.n, what);
            }
            agree(ok);
        }
    }
    sb_free(&want);
    sb_free(&cwant);
}

/* More ranks than chunks: 1 or 2 chunks over up to 4 ranks. */
static void test_more_ranks_than_chunks(void)
{
    const int cases[] = {IN_TINY, IN_ONE};
    for (int c = 0; c < 2; c++) {
        for (int t = 1; t <= 3; t += 2) {
            char out[512], cout[512], tn[8];
            snprintf(tn, sizeof tn, "%d", t);
            new_out(out, sizeof out, "txt");
            new_out(cout, sizeof cout, "txt");
            CU_ASSERT_EQUAL(RUN("-q", "-c", "1", "-t", tn, "-o", out, "test", in[cases[c]].path),
                            0);
            CU_ASSERT_EQUAL(RUN("-q", "-c", "1", "-t", tn, "-o", cout, "test", "-m", "count",
                                in[cases[c]].path),
                            0);
            int ok = 0;
            if (rank == 0) {
                sbuf_t want = {0}, cw = {0};
                echo_expect(&want, &cases[c], 1);
                count_expect(&cw, &cases[c], 1);
                ok = check_out(out, want.p, want.n, "echo, tiny input");
                ok &= check_out(cout, cw.p, cw.n, "count, tiny input");
                sb_free(&want);
                sb_free(&cw);
            }
            agree(ok);
        }
    }
    /* A range with fewer integers than ranks. */
    char out[512];
    new_out(out, sizeof out, "txt");
    CU_ASSERT_EQUAL(RUN("-q", "-c", "1", "-o", out, "primes", "2:3"), 0);
    agree_out(out, "2\n", 2, "primes 2:3");
}

/* --fail-on: exit 1 everywhere, nothing under the output name, no temporary
 * file left, an existing output untouched, and the message names FILE:LINE. */
static void test_fail_on(void)
{
    static const char *const sizes[] = {"1", "100", "4096", "1M"};
    for (int s = 0; s < 4; s++) {
        for (int pre = 0; pre <= 1; pre++) {
            char out[512];
            new_out(out, sizeof out, "txt");
            if (rank == 0 && pre) {
                FILE *f = fopen(out, "w");
                if (f) {
                    fputs("OLD\n", f);
                    fclose(f);
                }
            }
            MPI_Barrier(MPI_COMM_WORLD);
            capture_t cap;
            capture_begin(&cap);
            int rc = RUN("-q", "-c", sizes[s], "-t", "2", "-o", out, "test", "--fail-on", "BOOM",
                         in[IN_BOOM].path);
            char *err = capture_end(&cap);
            CU_ASSERT_EQUAL(rc, 1);
            int ok = 0;
            if (rank == 0) {
                size_t gl = 0;
                char *got = read_file(out, &gl);
                ok = pre ? (got && gl == 4 && !memcmp(got, "OLD\n", 4)) : got == NULL;
                if (!ok)
                    fprintf(stderr, "\n  fail-on -c %s: output %s\n", sizes[s],
                            got ? "present/changed" : "missing");
                free(got);
                int lo = leftovers();
                if (lo != 0)
                    fprintf(stderr, "\n  fail-on -c %s: %d temporary files left\n", sizes[s], lo);
                ok &= lo == 0;
                char want[600];
                snprintf(want, sizeof want, "%s:613:", in[IN_BOOM].path);
                if (!strstr(err, want)) {
                    fprintf(stderr, "\n  fail-on -c %s: message lacks '%s': %s\n", sizes[s], want,
                            err);
                    ok = 0;
                }
                unlink(out);
            }
            free(err);
            agree(ok);
        }
    }
}

/* Usage errors: 2 on every rank, printed once (by rank 0 only), nothing run. */
static void test_usage_errors(void)
{
    char out[512];
    new_out(out, sizeof out, "txt");
    const char *f = in[IN_LINES].path;
    const char *const *cases[] = {
        (const char *const[]){"--bogus", "test", f, NULL},
        (const char *const[]){"-o", out, "test", "--bogus", f, NULL},
        (const char *const[]){"-o", out, "--threads", "0", "test", f, NULL},
        (const char *const[]){"-o", out, "--chunk-size", "12X", "test", f, NULL},
        (const char *const[]){"-o", out, "--io", "sideways", "test", f, NULL},
        (const char *const[]){"-o", out, "no-such-kernel", f, NULL},
        (const char *const[]){"-o", out, NULL},
        (const char *const[]){"-o", out, "primes", "10:5", NULL},
        (const char *const[]){"-o", out, "fib", "94", NULL},
        (const char *const[]){"-o", out, "test", "--mode", "shout", f, NULL},
        (const char *const[]){"-o", f, "test", f, NULL}, /* output is an input */
        (const char *const[]){"-v", "-q", "-o", out, "test", f, NULL},
        (const char *const[]){"-o", out, "wordcount", "--top", "0", f, NULL},
        (const char *const[]){"-o", out, "test", "--threads", NULL}, /* missing value */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        capture_t cap;
        capture_begin(&cap);
        int rc = run(cases[i]);
        char *err = capture_end(&cap);
        CU_ASSERT_EQUAL(rc, 2);
        int mine = rank == 0 ? strstr(err, "error") != NULL : err[0] == 0;
        if (!mine) fprintf(stderr, "\n  usage case %zu, rank %d: stderr '%s'\n", i, rank, err);
        free(err);
        all_agree(mine);
        int ok = 0;
        if (rank == 0) {
            ok = !file_exists(out) && leftovers() == 0;
            ok &= input_intact(IN_LINES); /* the input was not overwritten */
        }
        agree(ok);
    }
}

/* sleep: lines of very uneven cost still come out in input order. */
static void test_sleep_ordered(void)
{
    for (int t = 1; t <= 2; t++) {
        char out[512], tn[8];
        snprintf(tn, sizeof tn, "%d", t);
        new_out(out, sizeof out, "txt");
        CU_ASSERT_EQUAL(
            RUN("-q", "-c", "1", "-t", tn, "-o", out, "test", "-m", "sleep", in[IN_SLEEP].path), 0);
        agree_out(out, in[IN_SLEEP].data, in[IN_SLEEP].len, "sleep");
    }
}

/* count and noop equal independent counts. */
static void test_count_noop(void)
{
    int which[] = {IN_LINES, IN_NONL};
    uint64_t l, b, w;
    count_ref(which, 2, &l, &b, &w);
    static const char *const sizes[] = {"1", "7", "4096"};
    for (int s = 0; s < 3; s++) {
        char out[512], nout[512];
        new_out(out, sizeof out, "txt");
        new_out(nout, sizeof nout, "txt");
        CU_ASSERT_EQUAL(RUN("-q", "-c", sizes[s], "-t", "3", "-o", out, "test", "-m", "count",
                            in[IN_LINES].path, in[IN_NONL].path),
                        0);
        CU_ASSERT_EQUAL(RUN("-q", "-c", sizes[s], "-t", "1", "-o", nout, "test", "-m", "noop",
                            in[IN_LINES].path, in[IN_NONL].path),
                        0);
        int ok = 0;
        if (rank == 0) {
            char want[128], nwant[64];
            snprintf(want, sizeof want, "%llu\t%llu\t%llu\n", (unsigned long long)l,
                     (unsigned long long)b, (unsigned long long)w);
            snprintf(nwant, sizeof nwant, "%llu\n", (unsigned long long)b);
            ok = check_out(out, want, strlen(want), "count");
            ok &= check_out(nout, nwant, strlen(nwant), "noop");
        }
        agree(ok);
    }
}

/* --format json parses and holds the lines; tsv has a header and escapes. */
static void test_formats(void)
{
    char jout[512], tout[512], cjout[512], ctout[512], ejout[512];
    new_out(jout, sizeof jout, "json");
    new_out(tout, sizeof tout, "tsv");
    new_out(cjout, sizeof cjout, "json");
    new_out(ctout, sizeof ctout, "tsv");
    new_out(ejout, sizeof ejout, "json");
    CU_ASSERT_EQUAL(RUN("-q", "-c", "333", "-t", "2", "-f", "json", "-o", jout, "test",
                        in[IN_LINES].path, in[IN_NONL].path),
                    0);
    CU_ASSERT_EQUAL(RUN("-q", "-c", "333", "-t", "2", "--format", "tsv", "-o", tout, "test",
                        in[IN_LINES].path, in[IN_NONL].path),
                    0);
    CU_ASSERT_EQUAL(RUN("-q", "-c", "100", "--format=json", "-o", cjout, "test", "-m", "count",
                        in[IN_LINES].path),
                    0);
    CU_ASSERT_EQUAL(RUN("-q", "-c", "100", "--format=tsv", "-o", ctout, "test", "-m", "count",
                        in[IN_LINES].path),
                    0);
    CU_ASSERT_EQUAL(
        RUN("-q", "--allow-empty", "-f", "json", "-o", ejout, "test", in[IN_EMPTY].path), 0);
    int ok = 0;
    if (rank == 0) {
        int which[] = {IN_LINES, IN_NONL};
        sbuf_t want = {0};
        echo_expect(&want, which, 2);
        int nlines = 0;
        for (size_t i = 0; i < want.n; i++)
            nlines += want.p[i] == '\n';

        /* JSON: a well-formed array of one object per line; values decode to the lines. */
        size_t gl = 0;
        char *got = read_file(jout, &gl);
        sbuf_t vals = {0};
        int objects = -1;
        int jok = got && json_rows(got, gl, &vals, &objects) == 0;
        if (!jok) fprintf(stderr, "\n  json output is not a well-formed array of objects\n");
        jok = jok && objects == nlines && tu_same_bytes(vals.p, vals.n, want.p, want.n, "json values");
        if (got && gl >= 4)
            jok = jok && !memcmp(got, "[\n", 2) && !memcmp(got + gl - 3, "\n]\n", 3);
        free(got);
        sb_free(&vals);

        /* TSV: header "line", then each line escaped. */
        got = read_file(tout, &gl);
        int tok = got && gl > 5 && !memcmp(got, "line\n", 5);
        if (tok) {
            sbuf_t un = {0};
            for (size_t i = 5; i < gl; i++) {
                if (got[i] == '\t' || got[i] == '\r') tok = 0; /* never raw inside a field */
                if (got[i] != '\\') {
                    sb_add(&un, got + i, 1);
                    continue;
                }
                char e = i + 1 < gl ? got[++i] : 0;
                char c = e == 't' ? '\t' : e == 'n' ? '\n' : e == 'r' ? '\r' : e == '\\' ? '\\' : 0;
                if (!c) tok = 0;
                sb_add(&un, &c, 1);
            }
            tok = tok && tu_same_bytes(un.p, un.n, want.p, want.n, "tsv unescaped");
            sb_free(&un);
        } else {
            fprintf(stderr, "\n  tsv output lacks the header line\n");
        }
        free(got);

        /* count: json object with three numbers; tsv header + one row. */
        uint64_t l, b, w;
        int one[] = {IN_LINES};
        count_ref(one, 1, &l, &b, &w);
        char cw[128];
        snprintf(cw, sizeof cw, "%llu\n%llu\n%llu\n", (unsigned long long)l, (unsigned long long)b,
                 (unsigned long long)w);
        got = read_file(cjout, &gl);
        sbuf_t cv = {0};
        int cok = got && json_rows(got, gl, &cv, &objects) == 0 && objects == 1 &&
                  tu_same_bytes(cv.p, cv.n, cw, strlen(cw), "count json");
        if (got && cok)
            cok = strstr(got, "\"lines\"") && strstr(got, "\"bytes\"") && strstr(got, "\"words\"");
        free(got);
        sb_free(&cv);
        got = read_file(ctout, &gl);
        char ct[160];
        snprintf(ct, sizeof ct, "lines\tbytes\twords\n%llu\t%llu\t%llu\n", (unsigned long long)l,
                 (unsigned long long)b, (unsigned long long)w);
        cok = cok && tu_same_bytes(got, gl, ct, strlen(ct), "count tsv");
        free(got);

        /* empty input: still a valid (empty) JSON array */
        got = read_file(ejout, &gl);
        int eok = got && json_rows(got, gl, NULL, &objects) == 0 && objects == 0;
        if (!eok) fprintf(stderr, "\n  empty json: '%.*s'\n", got ? (int)gl : 0, got ? got : "");
        free(got);
        ok = jok && tok && cok && eok;
        sb_free(&want);
        unlink(jout);
        unlink(tout);
        unlink(cjout);
        unlink(ctout);
        unlink(ejout);
    }
    agree(ok);
}

static void test_wordcount(void)
{
    sbuf_t want = {0}, want10 = {0};
    if (rank == 0) {
        want.p = tu_ref_wordcount(in[IN_WORDS].data, in[IN_WORDS].len, 0, 0, &want.n);
        want10.p = tu_ref_wordcount(in[IN_WORDS].data, in[IN_WORDS].len, 0, 10, &want10.n);
    }
    static const char *const sizes[] = {"1", "4K", "64K"};
    static const char *const io[] = {"master", "shared", "auto"};
    for (int s = 0; s < 3; s++) {
        char out[512], out10[512];
        new_out(out, sizeof out, "txt");
        new_out(out10, sizeof out10, "txt");
        CU_ASSERT_EQUAL(RUN("-q", "-c", sizes[s], "-t", "2", "--io", io[s], "-o", out, "wordcount",
                            in[IN_WORDS].path),
                        0);
        CU_ASSERT_EQUAL(
            RUN("-q", "-c", sizes[s], "-o", out10, "wordcount", "--top", "10", in[IN_WORDS].path),
            0);
        int ok = 0;
        if (rank == 0) {
            ok = check_out(out, want.p, want.n, "wordcount");
            ok &= check_out(out10, want10.p, want10.n, "wordcount --top 10");
        }
        agree(ok);
    }
    sb_free(&want);
    sb_free(&want10);
}

static void test_primes(void)
{
    char out[512], lout[512];
    new_out(out, sizeof out, "txt");
    new_out(lout, sizeof lout, "txt");
    CU_ASSERT_EQUAL(RUN("-q", "-c", "37000", "-t", "2", "-o", out, "primes", "1:1000000"), 0);
    CU_ASSERT_EQUAL(RUN("-q", "-c", "333", "-o", lout, "primes", "--list", "0:20000"), 0);
    int ok = 0;
    if (rank == 0) {
        uint64_t c = 0;
        for (uint64_t n = 1; n <= 1000000; n++)
            c += (uint64_t)tu_is_prime(n);
        char want[32];
        snprintf(want, sizeof want, "%llu\n", (unsigned long long)c);
        ok = check_out(out, want, strlen(want), "primes 1:1000000");
        sbuf_t lw = {0};
        for (uint64_t n = 0; n <= 20000; n++)
            if (tu_is_prime(n)) sb_printf(&lw, "%llu\n", (unsigned long long)n);
        ok &= check_out(lout, lw.p, lw.n, "primes --list 0:20000");
        sb_free(&lw);
    }
    agree(ok);
}

static void test_fib(void)
{
    char out[512], nout[512];
    new_out(out, sizeof out, "txt");
    new_out(nout, sizeof nout, "txt");
    const char *args[110];
    char nums[94][4];
    int a = 0;
    args[a++] = "-q";
    args[a++] = "-o";
    args[a++] = out;
    args[a++] = "fib";
    args[a++] = "--fast";
    for (int i = 93; i >= 0; i--) { /* descending: order must follow the input */
        snprintf(nums[i], sizeof nums[i], "%d", i);
        args[a++] = nums[i];
    }
    args[a] = NULL;
    CU_ASSERT_EQUAL(run(args), 0);
    CU_ASSERT_EQUAL(RUN("-q", "-t", "2", "-o", nout, "fib", "24", "3", "27", "0", "1", "20", "25"),
                    0);
    int ok = 0;
    if (rank == 0) {
        sbuf_t w = {0}, nw = {0};
        for (int i = 93; i >= 0; i--)
            sb_printf(&w, "%d\t%llu\n", i, (unsigned long long)tu_fib_iter((unsigned)i));
        static const unsigned ns[] = {24, 3, 27, 0, 1, 20, 25};
        for (int i = 0; i < 7; i++)
            sb_printf(&nw, "%u\t%llu\n", ns[i], (unsigned long long)tu_fib_iter(ns[i]));
        ok = check_out(out, w.p, w.n, "fib --fast 93..0");
        ok &= check_out(nout, nw.p, nw.n, "fib naive");
        sb_free(&w);
        sb_free(&nw);
    }
    agree(ok);

    /* A bad line in a file: exit 1, message names FILE:LINE. */
    char bout[512];
    new_out(bout, sizeof bout, "txt");
    capture_t cap;
    capture_begin(&cap);
    int rc = RUN("-q", "-o", bout, "fib", "--fast", "--file", in[IN_FIBBAD].path);
    char *err = capture_end(&cap);
    CU_ASSERT_EQUAL(rc, 1);
    ok = 0;
    if (rank == 0) {
        char want[600];
        snprintf(want, sizeof want, "%s:4:", in[IN_FIBBAD].path);
        ok = strstr(err, want) != NULL && !file_exists(bout) && leftovers() == 0;
        if (!ok) fprintf(stderr, "\n  fib bad file: stderr '%s'\n", err);
    }
    free(err);
    agree(ok);
}

/* Empty, missing and unwritable: exit 1 on every rank, nothing written. */
static void test_bad_inputs(void)
{
    char out[512], missing[512], nodir[512];
    new_out(out, sizeof out, "txt");
    path_of(missing, sizeof missing, "does-not-exist.txt");
    path_of(nodir, sizeof nodir, "no-such-dir/out.txt");
    capture_t cap;
    capture_begin(&cap);
    int r1 = RUN("-q", "-o", out, "test", in[IN_EMPTY].path);
    int r2 = RUN("-q", "-o", out, "test", in[IN_LINES].path, missing);
    int r3 = RUN("-q", "-o", nodir, "test", in[IN_LINES].path);
    int r4 = RUN("-q", "-o", out, "test", dir);
    char *err = capture_end(&cap);
    CU_ASSERT_EQUAL(r1, 1);
    CU_ASSERT_EQUAL(r2, 1);
    CU_ASSERT_EQUAL(r3, 1);
    CU_ASSERT_EQUAL(r4, 1);
    int ok = 0;
    if (rank == 0) {
        ok = !file_exists(out) && !file_exists(nodir) && leftovers() == 0;
        ok &= strstr(err, in[IN_EMPTY].path) != NULL && strstr(err, missing) != NULL;
        if (!ok) fprintf(stderr, "\n  bad inputs: stderr '%s'\n", err);
    }
    free(err);
    agree(ok);
    /* --allow-empty: success, empty output. */
    CU_ASSERT_EQUAL(RUN("-q", "--allow-empty", "-o", out, "test", in[IN_EMPTY].path), 0);
    agree_out(out, "", 0, "--allow-empty, empty input");
}

/* Same output for any window and binding. */
static void test_window_bind(void)
{
    sbuf_t want = {0};
    int which[] = {IN_LINES};
    if (rank == 0) echo_expect(&want, which, 1);
    static const char *const opts[][4] = {{"--window", "1", "--bind", "none"},
                                          {"--window", "64", "--bind", "core"},
                                          {"-w", "3", "--threads", "auto"}};
    for (int i = 0; i < 3; i++) {
        char out[512];
        new_out(out, sizeof out, "txt");
        CU_ASSERT_EQUAL(RUN("-q", "-c", "200", opts[i][0], opts[i][1], opts[i][2], opts[i][3], "-o",
                            out, "test", in[IN_LINES].path),
                        0);
        agree_out(out, want.p, want.n, opts[i][0]);
    }
    sb_free(&want);
}

/* The lowest failing chunk is reported whatever finished first. */
static void test_lowest_error(void)
{
    static const char *const threads[] = {"1", "3"};
    for (int t = 0; t < 2; t++) {
        char out[512];
        new_out(out, sizeof out, "txt");
        capture_t cap;
        capture_begin(&cap);
        int rc = RUN("-q", "--fail-fast", "-c", "10", "-t", threads[t], "-o", out, "test", "-m",
                     "sleep", "--fail-on", "BOOM", in[IN_BOOM2].path);
        char *err = capture_end(&cap);
        CU_ASSERT_EQUAL(rc, 1);
        int ok = 0;
        if (rank == 0) {
            char want[600], other[600];
            snprintf(want, sizeof want, "%s:2:", in[IN_BOOM2].path);
            snprintf(other, sizeof other, "%s:60:", in[IN_BOOM2].path);
            ok = strstr(err, want) != NULL && strstr(err, other) == NULL && !file_exists(out) &&
                 leftovers() == 0;
            if (!ok) fprintf(stderr, "\n  lowest error, -t %s: stderr '%s'\n", threads[t], err);
        }
        free(err);
        agree(ok);
    }
}

/* Without --fail-fast a failed chunk is reported and the run goes on: exit 1,
 * -o left alone, the other chunks' rows in PATH.incomplete, a sorted summary;
 * --retries runs a chunk again; a chunk that fails once then succeeds. */
static void test_failures_go_on(void)
{
    /* boom2 with -c 1: one line per chunk, lines 2 and 60 fail. */
    sbuf_t want = {0};
    const char *p = in[IN_BOOM2].data, *end = p + in[IN_BOOM2].len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)(nl - p) + 1;
        if (n != 5 || memcmp(p, "BOOM\n", 5)) sb_add(&want, p, n);
        p += n;
    }
    static const char *const retries[] = {"0", "2"};
    for (int r = 0; r < 2; r++) {
        char out[512], inc[600], cnt[512], cinc[600];
        new_out(out, sizeof out, "txt");
        new_out(cnt, sizeof cnt, "txt");
        snprintf(inc, sizeof inc, "%s.incomplete", out);
        snprintf(cinc, sizeof cinc, "%s.incomplete", cnt);
        capture_t cap;
        capture_begin(&cap);
        int rc = RUN("-c", "1", "-t", "2", "--retries", retries[r], "-o", out, "test", "--fail-on",
                     "BOOM", in[IN_BOOM2].path);
        int rc2 = RUN("-c", "1", "-t", "2", "--retries", retries[r], "-o", cnt, "test", "-m",
                      "count", "--fail-on", "BOOM", in[IN_BOOM2].path);
        char *err = capture_end(&cap);
        CU_ASSERT_EQUAL(rc, 1);
        CU_ASSERT_EQUAL(rc2, 1);
        int ok = 0;
        if (rank == 0) {
            char w2[600], w60[600];
            snprintf(w2, sizeof w2, "%s:2: found the line 'BOOM'", in[IN_BOOM2].path);
            snprintf(w60, sizeof w60, "%s:60: found the line 'BOOM'", in[IN_BOOM2].path);
            ok = !file_exists(out) && !file_exists(cnt) && leftovers() == 0 &&
                 strstr(err, "2 of 80 chunks failed (chunks 1, 59)") && strstr(err, w2) &&
                 strstr(err, w60);
            if (r == 1)
                ok = ok && strstr(err, "attempt 1 of 3): trying again") &&
                     strstr(err, "(after 3 attempts)");
            if (!ok) fprintf(stderr, "\n  failures go on, --retries %s: stderr '%s'\n", retries[r], err);
            ok = ok && check_out(inc, want.p, want.n, "failures go on: .incomplete");
            /* The reduced result leaves out exactly the two failed chunks. */
            size_t cl = 0;
            char *c = read_file(cinc, &cl);
            if (!c || cl < 3 || memcmp(c, "78\t", 3)) {
                fprintf(stderr, "\n  failures go on: count '%s'\n", c ? c : "(missing)");
                ok = 0;
            }
            free(c);
            unlink(inc);
            unlink(cinc);
        }
        free(err);
        agree(ok);
    }
    sb_free(&want);

    /* A chunk that fails once: with --retries 1 the run succeeds. */
    static const char flaky[] = "0\nFLAKY\n0\n";
    char fin[512], flag[512], out[512];
    path_of(fin, sizeof fin, "flaky.txt");
    path_of(flag, sizeof flag, "flaky.flag");
    if (rank == 0) {
        write_file("flaky.txt", flaky, sizeof flaky - 1);
        unlink(flag);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    new_out(out, sizeof out, "txt");
    capture_t cap;
    capture_begin(&cap);
    int rc = RUN("-c", "1", "--retries", "1", "-o", out, "test", "--flaky", flag, fin);
    char *err = capture_end(&cap);
    CU_ASSERT_EQUAL(rc, 0);
    int ok = 1;
    if (rank == 0) {
        ok = strstr(err, "flaky line: failing once (--flaky) (chunk 1, attempt 1 of 2): trying again") !=
             NULL;
        if (!ok) fprintf(stderr, "\n  flaky: stderr '%s'\n", err);
        ok = ok && check_out(out, flaky, sizeof flaky - 1, "flaky chunk retried");
        unlink(flag);
    }
    free(err);
    agree(ok);
    /* Without retries the same chunk fails the run. */
    MPI_Barrier(MPI_COMM_WORLD);
    new_out(out, sizeof out, "txt");
    capture_begin(&cap);
    rc = RUN("-c", "1", "-o", out, "test", "--flaky", flag, fin);
    err = capture_end(&cap);
    CU_ASSERT_EQUAL(rc, 1);
    if (rank == 0) {
        char inc[600];
        snprintf(inc, sizeof inc, "%s.incomplete", out);
        ok = !file_exists(out) && check_out(inc, "0\n0\n", 4, "flaky without retries") &&
             strstr(err, "1 of 3 chunks failed (chunk 1)") != NULL;
        unlink(inc);
        unlink(flag);
    }
    free(err);
    agree(ok);
}

/* A slow first chunk with more chunks behind it than the reorder ring holds. */
static void test_slow_first_chunk(void)
{
    char out[512];
    new_out(out, sizeof out, "txt");
    CU_ASSERT_EQUAL(
        RUN("-q", "-c", "1", "-t", "2", "-o", out, "test", "-m", "sleep", in[IN_SLOWFIRST].path),
        0);
    agree_out(out, in[IN_SLOWFIRST].data, in[IN_SLOWFIRST].len, "slow first chunk");
}

/* Standard input (read by rank 0 only): echo, count, and an error offset. */
static void test_stdin(void)
{
    static const char *const sizes[] = {"1", "7", "4096"};
    for (int s = 0; s < 3; s++) {
        char out[512], cout[512];
        new_out(out, sizeof out, "txt");
        new_out(cout, sizeof cout, "txt");
        int saved = stdin_from(in[IN_LINES].path, -1);
        int rc = RUN("-q", "-c", sizes[s], "-t", "2", "-o", out, "test", "-");
        stdin_from(in[IN_NONL].path, saved);
        int rc2 = RUN("-q", "-c", sizes[s], "-o", cout, "test", "-m", "count");
        stdin_restore(saved);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_EQUAL(rc2, 0);
        int ok = 0;
        if (rank == 0) {
            int one[] = {IN_LINES}, nonl[] = {IN_NONL};
            sbuf_t want = {0}, cw = {0};
            echo_expect(&want, one, 1);
            count_expect(&cw, nonl, 1);
            ok = check_out(out, want.p, want.n, "stdin echo");
            ok &= check_out(cout, cw.p, cw.n, "stdin count");
            sb_free(&want);
            sb_free(&cw);
        }
        agree(ok);
    }
    /* Standard input between two files, with --io shared for the files. */
    {
        char out[512];
        new_out(out, sizeof out, "txt");
        int saved = stdin_from(in[IN_NONL].path, -1);
        int rc = RUN("-q", "--io", "shared", "-c", "50", "-o", out, "test", in[IN_TINY].path, "-",
                     in[IN_LINES].path);
        stdin_restore(saved);
        CU_ASSERT_EQUAL(rc, 0);
        int ok = 0;
        if (rank == 0) {
            int three[] = {IN_TINY, IN_NONL, IN_LINES};
            sbuf_t want = {0};
            echo_expect(&want, three, 3);
            ok = check_out(out, want.p, want.n, "file, stdin, file");
            sb_free(&want);
        }
        agree(ok);
    }
    /* A failing line on standard input: the message gives its byte offset. */
    char out[512];
    new_out(out, sizeof out, "txt");
    int saved = stdin_from(in[IN_BOOM].path, -1);
    capture_t cap;
    capture_begin(&cap);
    int rc = RUN("-q", "-c", "64", "-o", out, "test", "--fail-on", "BOOM", "-");
    char *err = capture_end(&cap);
    stdin_restore(saved);
    CU_ASSERT_EQUAL(rc, 1);
    int ok = 0;
    if (rank == 0) {
        const char *at = strstr(in[IN_BOOM].data, "BOOM");
        char want[64];
        snprintf(want, sizeof want, "byte %ld", (long)(at - in[IN_BOOM].data));
        ok =
            strstr(err, "standard input") != NULL && strstr(err, want) != NULL && !file_exists(out);
        if (!ok) fprintf(stderr, "\n  stdin error: want '%s' in '%s'\n", want, err);
    }
    free(err);
    agree(ok);
}

/* Many small inputs, some empty, some without a final newline; relative paths. */
static void test_many_inputs(void)
{
    enum { NF = 30 };
    char names[NF][32];
    sbuf_t want = {0};
    for (int i = 0; i < NF; i++) {
        snprintf(names[i], sizeof names[i], "many-%02d.txt", i);
        sbuf_t b = {0};
        int nl = (i * 7) % 11;
        for (int k = 0; k < nl; k++)
            sb_printf(&b, "file %d line %d%s", i, k, k + 1 < nl || i % 3 ? "\n" : "");
        if (rank == 0) {
            write_file(names[i], b.p ? b.p : "", b.n);
            sb_add(&want, b.p ? b.p : "", b.n);
            if (b.n && b.p[b.n - 1] != '\n') sb_add(&want, "\n", 1);
        }
        sb_free(&b);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    char cwd[1024];
    CU_ASSERT_PTR_NOT_NULL(getcwd(cwd, sizeof cwd));
    int cd = chdir(dir);
    CU_ASSERT_EQUAL(cd, 0);
    static const char *const sizes[] = {"1", "20", "1M"};
    static const char *const io[] = {"shared", "master", "auto"};
    for (int s = 0; s < 3; s++) {
        const char *args[NF + 16];
        int a = 0;
        args[a++] = "-q";
        args[a++] = "--allow-empty";
        args[a++] = "-c";
        args[a++] = sizes[s];
        args[a++] = "--io";
        args[a++] = io[s];
        args[a++] = "-o";
        args[a++] = "many-out.txt"; /* relative: the temporary file goes to "." */
        args[a++] = "test";
        for (int i = 0; i < NF; i++)
            args[a++] = names[i];
        args[a] = NULL;
        CU_ASSERT_EQUAL(run(args), 0);
        int ok = 0;
        if (rank == 0) {
            ok = check_out("many-out.txt", want.p, want.n, "many inputs");
            ok = ok && leftovers() == 0;
        }
        agree(ok);
    }
    if (chdir(cwd) != 0) CU_FAIL("cannot go back to the working directory");
    if (rank == 0)
        for (int i = 0; i < NF; i++) {
            char p[512];
            path_of(p, sizeof p, names[i]);
            unlink(p);
        }
    sb_free(&want);
}

/* --report-bindings prints one line per rank (on rank 0); -q silences the
 * oversubscription warning, which is printed without it. */
static void test_bindings_and_warnings(void)
{
    char out[512];
    new_out(out, sizeof out, "txt");
    capture_t cap;
    capture_begin(&cap);
    int rc = RUN("-q", "--report-bindings", "-t", "2", "-o", out, "test", in[IN_TINY].path);
    char *err = capture_end(&cap);
    CU_ASSERT_EQUAL(rc, 0);
    int ok = 1;
    if (rank == 0) {
        for (int r = 0; r < nranks; r++) {
            char want[64];
            snprintf(want, sizeof want, "rank %d:", r);
            if (!strstr(err, want)) ok = 0;
        }
        if (!strstr(err, "thread 1")) ok = 0;
        if (!ok) fprintf(stderr, "\n  report-bindings: '%s'\n", err);
        unlink(out);
    }
    free(err);
    agree(ok);

    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    for (int quiet = 0; quiet <= 1; quiet++) {
        new_out(out, sizeof out, "txt");
        capture_begin(&cap);
        rc = quiet ? RUN("-q", "-t", "40", "-o", out, "test", in[IN_TINY].path)
                   : RUN("-t", "40", "-o", out, "test", in[IN_TINY].path);
        err = capture_end(&cap);
        CU_ASSERT_EQUAL(rc, 0);
        if (quiet) {
            /* -q: no rank prints anything */
            int mine = err[0] == 0;
            if (!mine) fprintf(stderr, "\n  rank %d, -q: stderr '%s'\n", rank, err);
            all_agree(mine);
        } else {
            /* without -q: the oversubscription is reported (by some rank) */
            int has = strstr(err, "warning") != NULL, any = 0;
            MPI_Allreduce(&has, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
            CU_ASSERT(any || ncpu >= 40);
        }
        free(err);
        if (rank == 0) unlink(out);
    }
}

/* A chunk size far larger than the input: one chunk, the same output,
 * whoever reads the bytes. */
static void test_huge_chunk_size(void)
{
    sbuf_t want = {0};
    int which[] = {IN_LINES};
    if (rank == 0) echo_expect(&want, which, 1);
    static const char *const io[] = {"master", "shared"};
    for (int i = 0; i < 2; i++) {
        char out[512];
        new_out(out, sizeof out, "txt");
        capture_t cap;
        capture_begin(&cap);
        int rc =
            RUN("-q", "--io", io[i], "--chunk-size", "1T", "-o", out, "test", in[IN_LINES].path);
        char *err = capture_end(&cap);
        CU_ASSERT_EQUAL(rc, 0);
        int ok = 0;
        if (rank == 0) {
            char what[64];
            snprintf(what, sizeof what, "--chunk-size 1T --io %s", io[i]);
            ok = check_out(out, want.p, want.n, what);
            if (!ok) fprintf(stderr, "  stderr: %s\n", err);
        }
        free(err);
        agree(ok);
    }
    sb_free(&want);
}

/* wordcount refuses a NUL byte, naming FILE:LINE; --binary counts anyway.
 * An output that is an input under another name is refused (exit 2); an
 * output that is a directory fails (exit 1). */
static void test_nul_and_output_checks(void)
{
    static const char text[] = "alpha beta\ngamma\nde\0lta\nalpha\n";
    if (rank == 0) write_file("nul.txt", text, sizeof text - 1);
    MPI_Barrier(MPI_COMM_WORLD);
    char nul[512], out[512];
    path_of(nul, sizeof nul, "nul.txt");
    new_out(out, sizeof out, "txt");
    capture_t cap;
    capture_begin(&cap);
    int rc = RUN("-q", "-c", "4", "-o", out, "wordcount", nul);
    char *err = capture_end(&cap);
    CU_ASSERT_EQUAL(rc, 1);
    int ok = 0;
    if (rank == 0) {
        char want[600];
        snprintf(want, sizeof want, "%s:3:", nul);
        ok = strstr(err, want) != NULL && !file_exists(out) && leftovers() == 0;
        if (!ok) fprintf(stderr, "\n  NUL: want '%s' in '%s'\n", want, err);
    }
    free(err);
    agree(ok);
    CU_ASSERT_EQUAL(RUN("-q", "-c", "4", "-o", out, "wordcount", "--binary", nul), 0);
    const char *bwant = "2\talpha\n1\tbeta\n1\tde\n1\tgamma\n1\tlta\n";
    agree_out(out, bwant, strlen(bwant), "wordcount --binary");

    /* the same file as the input, spelled differently */
    char alias[600];
    snprintf(alias, sizeof alias, "%s/./%s", dir, in[IN_LINES].name);
    capture_begin(&cap);
    rc = RUN("-q", "-o", alias, "test", in[IN_LINES].path);
    err = capture_end(&cap);
    CU_ASSERT_EQUAL(rc, 2);
    ok = 0;
    if (rank == 0) ok = input_intact(IN_LINES) && leftovers() == 0;
    free(err);
    agree(ok);
    /* the output is a directory */
    capture_begin(&cap);
    rc = RUN("-q", "-o", dir, "test", in[IN_TINY].path);
    err = capture_end(&cap);
    free(err);
    CU_ASSERT_EQUAL(rc, 1);
    agree(rank != 0 || leftovers() == 0);
    if (rank == 0) unlink(nul);
}

static void cleanup_dir(void)
{
    if (rank != 0) return;
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    if (provided < MPI_THREAD_FUNNELED) {
        if (rank == 0) fprintf(stderr, "MPI does not provide MPI_THREAD_FUNNELED\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (rank == 0) {
        snprintf(dir, sizeof dir, "/tmp/mpimap-mpitest-XXXXXX");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
    }
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    make_inputs();

    static const tu_test_t tests[] = {
        {"echo: chunk sizes 1, 7, 4096 x threads 1..3", test_echo},
        {"--io master/shared/auto, several inputs", test_io_modes},
        {"more ranks than chunks", test_more_ranks_than_chunks},
        {"--fail-on: exit 1, no output, no temporary file", test_fail_on},
        {"usage errors: exit 2 everywhere, printed once", test_usage_errors},
        {"sleep mode keeps input order", test_sleep_ordered},
        {"count and noop vs independent counts", test_count_noop},
        {"json and tsv formats", test_formats},
        {"wordcount vs naive counter", test_wordcount},
        {"primes vs trial division", test_primes},
        {"fib vs iterative, bad line", test_fib},
        {"empty, missing and unwritable", test_bad_inputs},
        {"window and binding options", test_window_bind},
        {"lowest failing chunk is reported", test_lowest_error},
        {"failed chunks: the run goes on, retries", test_failures_go_on},
        {"slow first chunk, more chunks than the ring", test_slow_first_chunk},
        {"standard input", test_stdin},
        {"many inputs, relative paths", test_many_inputs},
        {"--report-bindings, -q and warnings", test_bindings_and_warnings},
        {"NUL bytes, output checks", test_nul_and_output_checks},
        {"chunk size far larger than the input", test_huge_chunk_size},
        {NULL, NULL}};
    unsigned failures = 1;
    if (tu_run_suite("engine", NULL, NULL, tests, &failures) < 0) failures = 1;
    MPI_Barrier(MPI_COMM_WORLD);
    cleanup_dir();
    for (int i = 0; i < IN_N; i++)
        free(in[i].data);
    if (failures) fprintf(stderr, "rank %d: %u failed assertion(s)\n", rank, failures);
    MPI_Finalize();
    return failures ? 1 : 0;
}
