/*
 * fuzz_hash_manifest.c - reading a manifest for `hash --check`
 * (src/kernels/hash.c): the source that reads the manifest line by line
 * (LF, CRLF, empty lines, NUL bytes) and cuts it into chunks of entries, the
 * line parser (GNU 'HEX  PATH' and 'HEX *PATH', BSD 'TAG (PATH) = HEX', the
 * leading '\' of escaped names and their \\ \n \r escapes, upper- and
 * lowercase hex, the algorithm given, inferred from the first plain line,
 * or ambiguous), and the writer of manifest lines (mpm__hash_manifest_line,
 * what `hash` writes) against it.
 *
 * Input: byte 0: bits 0-2 give --algo (0-6: sha256, sha512, blake2b, md5,
 * xxh64, xxh3, xxh128; 7: not given), bits 3-4 the chunk size (1, 64,
 * 4096, 8M bytes of listed files); the rest is the manifest, held in a memfd
 * that the source opens as a file (/proc/self/fd/N).
 *
 * Checked beyond "no crash, no leak", line by line against a reading done
 * here: every non-empty line (without its LF and one CR) gives exactly one
 * entry, in order: a file to verify or an "improperly formatted" record
 * naming the manifest and the line's number; the source fails only on an
 * ambiguous digest length, naming a line not passed on yet (the entries of
 * the chunk being built are dropped with the error: seen, not decided). A file to verify has the
 * algorithm given (if any; a BSD line's tag names its own, even against
 * --algo) and its digest length, and the line really has
 * that form: GNU (the digest's hex, a space, ' ' or '*', the name) or BSD
 * (the algorithm's tag, ' (', the name, ') = ', the hex), the name being
 * the line's text, unescaped when the line starts with '\'.
 * Round trip: the line `hash` writes for the entry (plain and --tag)
 * parses back to the same algorithm, digest and name (except a GNU line
 * for an empty name, which has no such line). Parse-then-format equality: a
 * line already in the canonical form (lowercase hex, ' ' not '*', escaped
 * exactly when the name needs it, as an escaping writer would) is the very
 * line that `hash` writes. Chunks: at most 4096 entries and 1024 files; a
 * chunk's offset is where the manifest was read to, strictly increasing.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "mpimap/mpimap.h"

extern const mpm_kernel_t mpm_kernel_hash;

/* hash.c's algorithms, in --algo order: BSD tags and digest bytes. */
#define N_ALGO 7
#define A_XXH3 5
static const char *const tags[N_ALGO] = {"SHA256", "SHA512", "BLAKE2b", "MD5",
                                         "XXH64",  "XXH3",   "XXH128"};
static const int dlens[N_ALGO] = {32, 64, 64, 16, 8, 8, 16};

/* hash.c's chunk entry header and kinds. */
typedef struct {
    uint8_t kind, algo, dlen, top;
    uint32_t plen;
    uint64_t size;
} entry_t;
_Static_assert(sizeof(entry_t) == 16, "entry header");
enum { E_VERIFY = 1, E_PASS = 2, RC_BAD = 3 };

static char path[64];

static _Noreturn void fail(const char *what, size_t lineno)
{
    fprintf(stderr, "fuzz_hash_manifest: line %zu: %s\n", lineno, what);
    abort();
}

static void set_opt(void *opts, const char *name, int v)
{
    for (const mpm_option_t *o = mpm_kernel_hash.options; o->name; o++)
        if (!strcmp(o->name, name)) {
            memcpy((char *)opts + o->offset, &v, sizeof v);
            return;
        }
    fail("no such option", 0);
}

typedef struct {
    const char *p; /* the line without LF and one CR */
    size_t n;
    size_t lineno;
    size_t end; /* offset just after the line */
} line_t;

static int hexv(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* s[0..2n) is the hex of d[0..n); *lower: only lowercase digits. */
static int hex_is(const char *s, const unsigned char *d, int n, int *lower)
{
    *lower = 1;
    for (int i = 0; i < 2 * n; i++) {
        int v = hexv((unsigned char)s[i]);
        if (v < 0 || v != (i % 2 ? d[i / 2] & 15 : d[i / 2] >> 4)) return 0;
        if (s[i] >= 'A' && s[i] <= 'F') *lower = 0;
    }
    return 1;
}

/* t[0..n) unescaped into out; -1 for a bad escape (hash.c refuses those). */
static long unesc(const char *t, size_t n, char *out)
{
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i] != '\\') {
            out[j++] = t[i];
            continue;
        }
        if (++i == n) return -1;
        if (t[i] == '\\') out[j++] = '\\';
        else if (t[i] == 'n') out[j++] = '\n';
        else if (t[i] == 'r') out[j++] = '\r';
        else return -1;
    }
    return (long)j;
}

static int needs_esc(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\\' || p[i] == '\n' || p[i] == '\r') return 1;
    return 0;
}

/* Whether text t[0..n) of the line is name p[0..pl) as the line gives it
 * (escaped: unescaped first); *canon: t is exactly what an escaping writer
 * puts there. */
static int name_is(const char *t, size_t n, int esc, const char *p, size_t pl, int *canon)
{
    char *u = malloc(n + 1);
    if (!u) abort();
    long ul = esc ? unesc(t, n, u) : (long)n;
    if (!esc) memcpy(u, t, n);
    int same = ul >= 0 && (size_t)ul == pl && !memcmp(u, p, pl);
    free(u);
    *canon = 0;
    if (same) {
        /* canonical: escaped only when needed, and then every \ LF CR escaped */
        size_t k = 0;
        int ok = esc == needs_esc(p, pl);
        for (size_t i = 0; ok && i < pl; i++) {
            char c = p[i];
            if (esc && (c == '\\' || c == '\n' || c == '\r')) {
                ok = k + 1 < n && t[k] == '\\' && t[k + 1] == (c == '\\' ? '\\' : c == '\n' ? 'n' : 'r');
                k += 2;
            } else {
                ok = k < n && t[k] == c;
                k++;
            }
        }
        *canon = ok && k == n;
    }
    return same;
}

/* One entry to verify, against its line. */
static void verify(const line_t *L, const entry_t *e, const unsigned char *dg, const char *p,
                   int algo_opt)
{
    size_t ln = L->lineno;
    if (e->top != 1) fail("an entry to verify is not a named file", ln);
    if (e->algo >= N_ALGO || e->dlen != dlens[e->algo]) fail("a digest of the wrong length", ln);
    if (e->plen > L->n) fail("a name longer than its line", ln);

    /* The line has one of the two forms, with this digest and name. */
    int esc = L->n && L->p[0] == '\\';
    const char *b = L->p + esc;
    size_t bn = L->n - (size_t)esc, hx = 2 * (size_t)e->dlen;
    int lower = 0, canon = 0, gnu = 0, bsd = 0, gcanon = 0, bcanon = 0;
    if (bn >= hx + 2 && hex_is(b, dg, e->dlen, &lower) && b[hx] == ' ' &&
        (b[hx + 1] == ' ' || b[hx + 1] == '*') &&
        name_is(b + hx + 2, bn - hx - 2, esc, p, e->plen, &canon)) {
        gnu = 1;
        gcanon = lower && canon && b[hx + 1] == ' ' && e->algo != A_XXH3;
    }
    size_t tl = strlen(tags[e->algo]);
    if (bn >= tl + 2 + 4 + hx && !memcmp(b, tags[e->algo], tl) && !memcmp(b + tl, " (", 2) &&
        !memcmp(b + bn - hx - 4, ") = ", 4) && hex_is(b + bn - hx, dg, e->dlen, &lower) &&
        name_is(b + tl + 2, bn - hx - 4 - tl - 2, esc, p, e->plen, &canon)) {
        bsd = 1;
        bcanon = lower && canon;
    }
    if (!gnu && !bsd) fail("an entry that is not what its line says", ln);
    /* --algo binds GNU lines; a BSD line's tag names its own algorithm */
    if (algo_opt >= 0 && e->algo != algo_opt && !bsd) fail("another algorithm than --algo", ln);

    /* What `hash` writes for it parses back to the same entry. */
    mpm_buf_t w = {0};
    for (int tag = 0; tag < 2; tag++) {
        if (mpm__hash_manifest_line(tag, e->algo, dg, p, e->plen, &w) < 0) abort();
        if (!w.len || w.data[w.len - 1] != '\n') fail("a written line without its newline", ln);
        size_t wn = w.len - 1;
        int written_tag = tag || e->algo == A_XXH3;
        if ((gcanon && !written_tag) || (bcanon && written_tag)) {
            if (wn != L->n || memcmp(w.data, L->p, wn))
                fail("a canonical line is not the line hash writes for it", ln);
        }
        if (!written_tag && e->plen == 0) continue; /* 'HEX  ' has no name */
        int inferred = -1, a = -1, dl = 0;
        unsigned char d2[64];
        char *p2 = NULL, why[256];
        size_t pl2 = 0;
        int r = mpm__hash_parse_line(e->algo, &inferred, w.data, wn, &a, d2, &dl, &p2, &pl2, why,
                                     sizeof why);
        if (r != 0) fail("the line hash writes does not parse", ln);
        if (a != e->algo || dl != e->dlen || memcmp(d2, dg, (size_t)dl) || pl2 != e->plen ||
            memcmp(p2, p, pl2))
            fail("the line hash writes parses to another entry", ln);
    }
    mpm_buf_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    if (size < 1) return 0;
    if (fd < 0) {
        if ((fd = memfd_create("fuzz-hash", MFD_CLOEXEC)) < 0) fail("memfd_create failed", 0);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    int algo_opt = (data[0] & 7) == 7 ? -1 : data[0] & 7;
    static const uint64_t sizes[4] = {1, 64, 4096, (uint64_t)8 << 20};
    uint64_t chunk_size = sizes[(data[0] >> 3) & 3];
    const char *d = (const char *)data + 1;
    size_t n = size - 1;
    if (ftruncate(fd, 0) < 0 || (n && pwrite(fd, d, n, 0) != (ssize_t)n)) fail("memfd write", 0);

    /* The non-empty lines. */
    line_t *lines = malloc((n + 1) * sizeof *lines);
    if (!lines) abort();
    size_t nl = 0, lineno = 0;
    for (size_t at = 0; at < n;) {
        const char *e = memchr(d + at, '\n', n - at);
        size_t end = e ? (size_t)(e - d) + 1 : n, l = end - at;
        lineno++;
        if (l && d[at + l - 1] == '\n') l--;
        if (l && d[at + l - 1] == '\r') l--;
        if (l) lines[nl++] = (line_t){d + at, l, lineno, end};
        at = end;
    }

    const mpm_kernel_t *k = &mpm_kernel_hash;
    void *opts = calloc(1, k->opts_size);
    if (!opts) abort();
    k->opts_init(opts);
    set_opt(opts, "check", 1);
    set_opt(opts, "algo", algo_opt);
    mpm_input_t in = {.kind = MPM_IN_FILE, .name = path};
    mpm_err_t err = {.offset = -1, .msg = ""};
    void *src = k->source_open(opts, &in, chunk_size, &err);
    if (!src) fail(err.msg[0] ? err.msg : "source_open failed without a message", 0);

    size_t next = 0, first_of_chunk = 0;
    uint64_t last_off = 0;
    int chunks = 0;
    mpm_buf_t b = {0};
    for (;;) {
        b.len = 0;
        uint64_t off = UINT64_MAX;
        err.msg[0] = 0;
        int r = k->source_next(src, &b, &off, &err);
        if (r < 0) {
            /* an ambiguous digest length: on a line not passed on yet (the
             * chunk being built when it is met is dropped with it) */
            size_t pl = strlen(path), at_line = 0;
            if (next >= nl) fail("the source failed after the last line", lineno);
            if (!strncmp(err.msg, path, pl) && err.msg[pl] == ':')
                at_line = strtoul(err.msg + pl + 1, NULL, 10);
            int known = 0;
            for (size_t j = next; j < nl; j++) known |= lines[j].lineno == at_line;
            if (!known || !strstr(err.msg, "hex digits can be"))
                fail("the source failed, not for an ambiguous digest on a line to come",
                     lines[next].lineno);
            break;
        }
        if (r == 0) {
            if (next != nl) fail("the manifest ended early", next < nl ? lines[next].lineno : 0);
            break;
        }
        /* offset: where reading stood, after the previous chunk's last line
         * or, when that one waited for this chunk, after this chunk's first */
        uint64_t a = next ? lines[next - 1].end : 0, z = next < nl ? lines[next].end : 0;
        if (off != a && off != z) fail("a chunk's offset is not where reading stood", 0);
        if (chunks && off <= last_off) fail("chunk offsets do not increase", 0);
        last_off = off;
        first_of_chunk = next;
        size_t at = 0, files = 0;
        while (at < b.len) {
            entry_t e;
            if (b.len - at < sizeof e) fail("a chunk's framing does not fill it", 0);
            memcpy(&e, b.data + at, sizeof e);
            at += sizeof e;
            if (b.len - at < (size_t)e.dlen + e.plen) fail("an entry runs past its chunk", 0);
            if (next >= nl) fail("more entries than non-empty lines", 0);
            const line_t *L = &lines[next++];
            const unsigned char *dg = (const unsigned char *)b.data + at;
            const char *p = b.data + at + e.dlen;
            at += (size_t)e.dlen + e.plen;
            if (e.kind == E_PASS) {
                char want[128];
                int wl = snprintf(want, sizeof want, "%s:%zu: improperly formatted checksum line",
                                  path, L->lineno);
                uint32_t rl;
                if (e.dlen || e.plen < 5 || (uint8_t)p[0] != RC_BAD) fail("a bad record", L->lineno);
                memcpy(&rl, p + 1, 4);
                if (rl != e.plen - 5 || rl != (uint32_t)wl || memcmp(p + 5, want, rl))
                    fail("a bad line's record does not name it", L->lineno);
            } else if (e.kind == E_VERIFY) {
                files++;
                verify(L, &e, dg, p, algo_opt);
            } else {
                fail("an entry of an unknown kind", L->lineno);
            }
        }
        if (next == first_of_chunk || next - first_of_chunk > 4096 || files > 1024)
            fail("a chunk's size is off", 0);
        chunks++;
    }
    mpm_buf_free(&b);
    k->source_close(src);
    k->opts_free(opts);
    free(opts);
    free(lines);
    return 0;
}
