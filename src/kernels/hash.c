/*
 * hash.c - checksums of files and trees, and their verification: the seeds'
 * I/O-bound file work as a tool (sha256sum, b2sum, xxhsum over a cluster).
 *
 *   mpimap -o MANIFEST hash [--algo sha256] PATH...
 *   mpimap hash --check MANIFEST
 *
 * Shape (kernel ABI 2 source and sink, docs/HASH.md):
 *   - rank 0's source walks the arguments depth-first, each directory's
 *     entries sorted so that the walk order is the bytewise order of the
 *     printed paths (a directory sorts as "NAME/"), and streams files into
 *     chunks: at most --chunk-size bytes of files (a larger file is a chunk
 *     of its own) or 1024 files. The walk runs only as far ahead as the
 *     windows of chunks in flight, so hashing starts with the first chunk.
 *     In check mode the source reads the manifest instead.
 *   - map() (any rank's pool thread) opens, reads and hashes each file of
 *     its chunk with OpenSSL's libcrypto or libxxhash, and turns each into
 *     result records: a line of output, an error, a note.
 *   - rank 0's sink receives the chunks' records in chunk order, writes the
 *     lines (temporary file renamed into place), prints errors and notes in
 *     path order and decides the outcome: a file that could not be hashed
 *     keeps the manifest out of its final name (MANIFEST.incomplete).
 * Every rank must see the paths (a shared filesystem, or one node).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <xxhash.h>

#include "mpimap/kernel.h"
#include "output.h"
#include "progress.h"
#include "util.h"
#include "internal.h"

/* ---- algorithms ------------------------------------------------------------------ */

enum { A_SHA256, A_SHA512, A_BLAKE2B, A_MD5, A_XXH64, A_XXH3, A_XXH128, A_COUNT };

static const struct {
    const char *name; /* --algo */
    const char *tag;  /* BSD-style tag, as the reference tool prints it */
    const char *evp;  /* OpenSSL name, NULL for xxHash */
    int len;          /* digest bytes */
} algos[A_COUNT] = {
    {"sha256", "SHA256", "SHA256", 32},      {"sha512", "SHA512", "SHA512", 64},
    {"blake2b", "BLAKE2b", "BLAKE2B-512", 64}, {"md5", "MD5", "MD5", 16},
    {"xxh64", "XXH64", NULL, 8},             {"xxh3", "XXH3", NULL, 8},
    {"xxh128", "XXH128", NULL, 16},
};

#define HASH_BLOCK ((size_t)1 << 20)     /* bytes per read() */
#define CHUNK_FILES 1024                 /* files per chunk at most */
#define CHUNK_ENTRIES 4096               /* entries (files, notes, errors) per chunk at most */
#define MAX_DIGEST 64

typedef struct {
    int algo; /* -1: not given (sha256 when creating; inferred when checking) */
    int follow, tag, check, strict;
    /* derived */
    EVP_MD *md[A_COUNT];
    char **paths; /* create: the arguments, sorted */
    int npaths;
    char *argdata; /* the arguments, NUL-separated: the journal's fingerprint */
    size_t arglen;
    int delay_ms; /* MPIMAP_TEST_HASH_DELAY_MS (tests only) */
} hash_opts_t;

static const mpm_option_t hash_options[] = {
    {"algo", 'a', MPM_OPT_CHOICE, offsetof(hash_opts_t, algo), "ALGO",
     "sha256|sha512|blake2b|md5|xxh64|xxh3|xxh128 (default sha256; --check: the manifest's tags, "
     "or the digest length)",
     0, 0, "sha256|sha512|blake2b|md5|xxh64|xxh3|xxh128", 0},
    {"follow", 'L', MPM_OPT_FLAG, offsetof(hash_opts_t, follow), NULL,
     "follow symbolic links met inside directories (default: skip them with a note; links "
     "given as arguments are always followed)",
     0, 0, NULL, 0},
    {"tag", 0, MPM_OPT_FLAG, offsetof(hash_opts_t, tag), NULL,
     "BSD-style lines 'SHA256 (PATH) = HEX' (always for xxh3, as xxhsum prints it)", 0, 0, NULL, 0},
    {"check", 'c', MPM_OPT_FLAG, offsetof(hash_opts_t, check), NULL,
     "verify the files listed in the MANIFEST arguments: 'PATH: OK' or 'PATH: FAILED' per file; "
     "exit 1 on any mismatch or unreadable file",
     0, 0, NULL, 0},
    {"strict", 0, MPM_OPT_FLAG, offsetof(hash_opts_t, strict), NULL,
     "--check: improperly formatted manifest lines fail the run", 0, 0, NULL, 0},
    {NULL, 0, 0, 0, NULL, NULL, 0, 0, NULL, 0},
};

static void hash_opts_init(void *op)
{
    hash_opts_t *o = op;
    o->algo = -1;
}

static void hash_opts_free(void *op)
{
    hash_opts_t *o = op;
    for (int a = 0; a < A_COUNT; a++) EVP_MD_free(o->md[a]);
    free(o->paths);
    free(o->argdata);
}

/* ---- escaping (coreutils 9.1) ------------------------------------------------------ */

static int needs_escape(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\\' || p[i] == '\n' || p[i] == '\r') return 1;
    return 0;
}

/* Appends p with '\\', LF and CR written as \\, \n, \r. */
static int put_escaped(mpm_buf_t *b, const char *p, size_t n)
{
    if (mpm_buf_reserve(b, 2 * n + 1)) return -1;
    char *d = b->data + b->len;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\' || c == '\n' || c == '\r') {
            *d++ = '\\';
            *d++ = c == '\\' ? '\\' : c == '\n' ? 'n' : 'r';
        } else {
            *d++ = c;
        }
    }
    b->len = (size_t)(d - b->data);
    return 0;
}

static int put_hex(mpm_buf_t *b, const unsigned char *d, int n)
{
    static const char hx[] = "0123456789abcdef";
    if (mpm_buf_reserve(b, 2 * (size_t)n)) return -1;
    for (int i = 0; i < n; i++) {
        b->data[b->len++] = hx[d[i] >> 4];
        b->data[b->len++] = hx[d[i] & 15];
    }
    return 0;
}

/* ---- wire formats ----------------------------------------------------------------------
 * Source -> map: entries of a 16-byte header, the expected digest (check
 * mode), the path (or, for E_PASS, a ready result record).
 * Map -> sink: records of a 5-byte header (kind, length) and bytes. */

enum { E_FILE = 0, E_VERIFY = 1, E_PASS = 2 };
typedef struct {
    uint8_t kind, algo, dlen, top; /* top: named on the command line (links followed) */
    uint32_t plen;
    uint64_t size; /* E_FILE: size seen by the walk (batching only) */
} entry_t;

enum { RC_LINE = 0, RC_ERR = 1, RC_NOTE = 2, RC_BAD = 3, RC_OK = 4, RC_MISMATCH = 5, RC_UNREAD = 6 };

static int put_rec(mpm_buf_t *b, int kind, const void *p, size_t n)
{
    unsigned char h[5] = {(unsigned char)kind};
    uint32_t l = (uint32_t)n;
    memcpy(h + 1, &l, 4);
    if (mpm_buf_reserve(b, 5 + n)) return -1;
    mpm_buf_append(b, h, 5);
    mpm_buf_append(b, p, n);
    return 0;
}

static int put_recf(mpm_buf_t *b, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int put_recf(mpm_buf_t *b, int kind, const char *fmt, ...)
{
    char msg[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
    return put_rec(b, kind, msg, (size_t)n);
}

/* A path for a message: escaped like the manifest, without the leading '\'. */
static const char *shown(mpm_buf_t *tmp, const char *p, size_t n)
{
    tmp->len = 0;
    if (put_escaped(tmp, p, n) || mpm_buf_append(tmp, "", 1)) return "(out of memory)";
    return tmp->data;
}

/* ---- hashing one file ------------------------------------------------------------------ */

typedef struct {
    EVP_MD_CTX *ctx;
    XXH64_state_t *x64;
    XXH3_state_t *x3;
    unsigned char *buf;
} hasher_t;

static void hasher_free(hasher_t *h)
{
    EVP_MD_CTX_free(h->ctx);
    XXH64_freeState(h->x64);
    XXH3_freeState(h->x3);
    free(h->buf);
}

static int hasher_init(hasher_t *h)
{
    memset(h, 0, sizeof *h);
    h->ctx = EVP_MD_CTX_new();
    h->x64 = XXH64_createState();
    h->x3 = XXH3_createState();
    h->buf = aligned_alloc(4096, HASH_BLOCK);
    if (h->ctx && h->x64 && h->x3 && h->buf) return 0;
    hasher_free(h);
    return -1;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* ---- large files: a reader thread ----------------------------------------------------
 * A file of BIG_FILE bytes or more is read by a helper thread into a ring
 * of RING blocks while the pool thread hashes the previous ones: with a warm
 * cache the copy out of the page cache (~10 GB/s here) no longer adds to the
 * hashing (xxh3 is as fast as the copy); with a cold one the disk never waits
 * for the CPU. The helper runs on the rank's whole cpuset (the pool thread is
 * pinned to one core) and blocks signals as its creator does. */
#define BIG_FILE ((off_t)16 << 20)
#define RING 8
#define RING_BLOCK ((size_t)256 << 10)

typedef struct {
    int fd;
    off_t size;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned char *buf[RING];
    ssize_t len[RING]; /* bytes, 0 at EOF, -errno */
    int head, tail, count, stop;
} reader_t;

static void *reader_main(void *arg)
{
    reader_t *r = arg;
    uint64_t total = 0;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        while (r->count == RING && !r->stop) pthread_cond_wait(&r->cv, &r->mu);
        int slot = r->head, stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        if (stop) break;
        ssize_t n = 0;
        if (r->size <= 0 || total != (uint64_t)r->size) {
            do n = read(r->fd, r->buf[slot], RING_BLOCK);
            while (n < 0 && errno == EINTR);
            if (n < 0) n = -errno;
        }
        pthread_mutex_lock(&r->mu);
        r->len[slot] = n;
        r->head = (r->head + 1) % RING;
        r->count++;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        if (n <= 0) break;
        total += (uint64_t)n;
    }
    return NULL;
}

static void reader_free(reader_t *r)
{
    for (int i = 0; i < RING; i++) free(r->buf[i]);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

/* NULL when the helper cannot start: the caller reads by itself. */
static reader_t *reader_start(int fd, off_t size)
{
    reader_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->fd = fd;
    r->size = size;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    for (int i = 0; i < RING; i++)
        if (!(r->buf[i] = aligned_alloc(4096, RING_BLOCK))) {
            reader_free(r);
            return NULL;
        }
    pthread_attr_t at;
    pthread_attr_init(&at);
    cpu_set_t cs;
    if (sched_getaffinity(getpid(), sizeof cs, &cs) == 0) /* the main thread's: the rank's cpuset */
        pthread_attr_setaffinity_np(&at, sizeof cs, &cs);
    int rc = pthread_create(&r->th, &at, reader_main, r);
    pthread_attr_destroy(&at);
    if (rc) {
        reader_free(r);
        return NULL;
    }
    return r;
}

/* The next block: bytes (0 at EOF, -errno) and *blk. */
static ssize_t reader_get(reader_t *r, const unsigned char **blk)
{
    pthread_mutex_lock(&r->mu);
    while (r->count == 0) pthread_cond_wait(&r->cv, &r->mu);
    int slot = r->tail;
    ssize_t n = r->len[slot];
    pthread_mutex_unlock(&r->mu);
    *blk = r->buf[slot];
    return n;
}

static void reader_put(reader_t *r)
{
    pthread_mutex_lock(&r->mu);
    r->tail = (r->tail + 1) % RING;
    r->count--;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void reader_stop(reader_t *r)
{
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->th, NULL);
    reader_free(r);
}

/* Hashes the file at `path` into dg. 0, or -1 with why[] set. `nofollow`:
 * the walk saw a regular file, not a link: refuse one swapped in since. */
static int hash_file(const hash_opts_t *o, hasher_t *h, int algo, const char *path, int nofollow,
                     unsigned char *dg, uint64_t *bytes, char *why, size_t whyn)
{
    if (o->delay_ms) sleep_ms(o->delay_ms);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (nofollow ? O_NOFOLLOW : 0));
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP && nofollow)
            snprintf(why, whyn, "became a symbolic link during the walk");
        else if (e == ENOENT && !o->check) /* --check: a listed file need not exist */
            snprintf(why, whyn, "%s (it vanished during the run)", strerror(e));
        else
            snprintf(why, whyn, "%s", strerror(e));
        return -1;
    }
    /* O_NONBLOCK: a FIFO swapped in since the walk must not block the open;
     * it changes nothing for a regular file. */
    struct stat a, z;
    if (fstat(fd, &a) < 0) {
        snprintf(why, whyn, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(a.st_mode)) {
        snprintf(why, whyn, "%s", S_ISDIR(a.st_mode) ? "Is a directory" : "no longer a regular file");
        close(fd);
        return -1;
    }
    const EVP_MD *md = algos[algo].evp ? o->md[algo] : NULL;
    int ok = 1;
    if (md) ok = EVP_DigestInit_ex2(h->ctx, md, NULL) == 1;
    else if (algo == A_XXH64) XXH64_reset(h->x64, 0);
    else if (algo == A_XXH3) XXH3_64bits_reset(h->x3);
    else XXH3_128bits_reset(h->x3);
    if (!ok) {
        snprintf(why, whyn, "OpenSSL cannot start %s", algos[algo].name);
        close(fd);
        return -1;
    }
    /* SEQUENTIAL doubles the kernel's readahead window: its asynchronous
     * readahead then keeps the disk busy while we hash. (Asking for the next
     * windows with WILLNEED as well made a cold 2 GiB file 2-8x slower here:
     * it competes with that readahead.) */
    if (a.st_size > (off_t)HASH_BLOCK) posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    uint64_t total = 0;
    /* The test hook's sleeps need the reads in this thread. */
    reader_t *rd = a.st_size >= BIG_FILE && !o->delay_ms ? reader_start(fd, a.st_size) : NULL;
    for (;;) {
        const unsigned char *blk = h->buf;
        ssize_t n;
        if (rd) {
            n = reader_get(rd, &blk);
            if (n < 0) errno = (int)-n;
        } else {
            /* Stop at the size fstat gave, saving the read that sees EOF;
             * the fstat below catches a file that grew meanwhile. Files that
             * report no size (/proc) are read to EOF. */
            if (a.st_size > 0 && total == (uint64_t)a.st_size) break;
            if (o->delay_ms) sleep_ms(o->delay_ms);
            n = read(fd, h->buf, HASH_BLOCK);
            if (n < 0 && errno == EINTR) continue;
        }
        if (n < 0) {
            snprintf(why, whyn, "read error at byte %" PRIu64 ": %s", total, strerror(errno));
            if (rd) reader_stop(rd);
            close(fd);
            return -1;
        }
        if (n == 0) break;
        total += (uint64_t)n;
        if (md) ok = EVP_DigestUpdate(h->ctx, blk, (size_t)n) == 1;
        else if (algo == A_XXH64) XXH64_update(h->x64, blk, (size_t)n);
        else if (algo == A_XXH3) XXH3_64bits_update(h->x3, blk, (size_t)n);
        else XXH3_128bits_update(h->x3, blk, (size_t)n);
        if (rd) reader_put(rd);
        if (!ok) break;
    }
    if (rd) reader_stop(rd);
    int st = fstat(fd, &z);
    close(fd);
    if (!ok) {
        snprintf(why, whyn, "OpenSSL failed hashing %s", algos[algo].name);
        return -1;
    }
    if (st < 0 || z.st_size != a.st_size || z.st_mtim.tv_sec != a.st_mtim.tv_sec ||
        z.st_mtim.tv_nsec != a.st_mtim.tv_nsec || (a.st_size > 0 && total != (uint64_t)a.st_size)) {
        snprintf(why, whyn, "changed while it was read (size %lld bytes at open, %lld after; "
                 "the checksum would match neither): hash it again when it is stable",
                 (long long)a.st_size, (long long)(st < 0 ? -1 : z.st_size));
        return -1;
    }
    *bytes = total;
    if (md) {
        unsigned int l = 0;
        if (EVP_DigestFinal_ex(h->ctx, dg, &l) != 1 || (int)l != algos[algo].len) {
            snprintf(why, whyn, "OpenSSL failed finishing %s", algos[algo].name);
            return -1;
        }
    } else if (algo == A_XXH64) {
        XXH64_canonicalFromHash((XXH64_canonical_t *)dg, XXH64_digest(h->x64));
    } else if (algo == A_XXH3) {
        XXH64_canonicalFromHash((XXH64_canonical_t *)dg, XXH3_64bits_digest(h->x3));
    } else {
        XXH128_canonicalFromHash((XXH128_canonical_t *)dg, XXH3_128bits_digest(h->x3));
    }
    return 0;
}

/* ---- map ------------------------------------------------------------------------------ */

static int manifest_line(const hash_opts_t *o, mpm_buf_t *line, int algo, const unsigned char *dg,
                         const char *p, size_t n)
{
    int esc = needs_escape(p, n);
    line->len = 0;
    if (esc && mpm_buf_append(line, "\\", 1)) return -1;
    if (o->tag || algo == A_XXH3) {
        if (mpm_buf_printf(line, "%s (", algos[algo].tag) || put_escaped(line, p, n) ||
            mpm_buf_append(line, ") = ", 4) || put_hex(line, dg, algos[algo].len) ||
            mpm_buf_append(line, "\n", 1))
            return -1;
        return 0;
    }
    if (put_hex(line, dg, algos[algo].len) || mpm_buf_append(line, "  ", 2) ||
        put_escaped(line, p, n) || mpm_buf_append(line, "\n", 1))
        return -1;
    return 0;
}

/* 'PATH: VERDICT' as sha256sum -c (coreutils 9.1) prints it: escaped (with
 * the leading '\\') only when the name holds a newline. */
static int check_line(mpm_buf_t *line, const char *p, size_t n, const char *verdict)
{
    line->len = 0;
    if (memchr(p, '\n', n)) {
        if (mpm_buf_append(line, "\\", 1) || put_escaped(line, p, n)) return -1;
    } else if (mpm_buf_append(line, p, n)) {
        return -1;
    }
    return mpm_buf_printf(line, ": %s\n", verdict) ? -1 : 0;
}

static int hash_map(const void *op, const mpm_chunk_t *c, void *partial, mpm_format_t fmt,
                    mpm_buf_t *out, mpm_err_t *err)
{
    (void)partial;
    (void)fmt;
    const hash_opts_t *o = op;
    hasher_t h;
    if (hasher_init(&h) < 0) return mpm_err_set(err, -1, "out of memory");
    mpm_buf_t line = {0}, tmp = {0};
    char *path = NULL;
    size_t pcap = 0;
    int rc = 0;
    size_t at = 0;
    while (rc == 0 && at + sizeof(entry_t) <= c->len) {
        entry_t e;
        memcpy(&e, c->data + at, sizeof e);
        const unsigned char *want = (const unsigned char *)c->data + at + sizeof e;
        const char *p = c->data + at + sizeof e + e.dlen;
        if (at + sizeof e + e.dlen + e.plen > c->len || e.algo >= A_COUNT || e.dlen > MAX_DIGEST) {
            rc = mpm_err_set(err, (int64_t)at, "malformed chunk");
            break;
        }
        at += sizeof e + e.dlen + e.plen;
        if (e.kind == E_PASS) { /* a record the source made (notes, walk errors) */
            if (mpm_buf_append(out, p, e.plen)) rc = -1;
            continue;
        }
        if (pcap < (size_t)e.plen + 1) {
            char *np = realloc(path, (size_t)e.plen + 1);
            if (!np) {
                rc = -1;
                break;
            }
            path = np;
            pcap = (size_t)e.plen + 1;
        }
        memcpy(path, p, e.plen);
        path[e.plen] = 0;
        unsigned char dg[MAX_DIGEST];
        char why[1024];
        uint64_t bytes = 0;
        int nofollow = e.kind == E_FILE && !e.top && !o->follow;
        int hr = hash_file(o, &h, e.algo, path, nofollow, dg, &bytes, why, sizeof why);
        if (e.kind == E_FILE) {
            if (hr < 0) {
                rc = put_recf(out, RC_ERR, "%s: %s", shown(&tmp, p, e.plen), why);
            } else if (manifest_line(o, &line, e.algo, dg, p, e.plen) == 0) {
                rc = put_rec(out, RC_LINE, line.data, line.len);
                if (!rc) rc = put_rec(out, RC_OK, &bytes, sizeof bytes);
            } else {
                rc = -1;
            }
        } else if (hr < 0) {
            rc = put_recf(out, RC_UNREAD, "%s: %s", shown(&tmp, p, e.plen), why);
            if (!rc) rc = check_line(&line, p, e.plen, "FAILED open or read");
            if (!rc) rc = put_rec(out, RC_LINE, line.data, line.len);
        } else {
            int same = e.dlen == algos[e.algo].len && memcmp(dg, want, e.dlen) == 0;
            rc = check_line(&line, p, e.plen, same ? "OK" : "FAILED");
            if (!rc) rc = put_rec(out, RC_LINE, line.data, line.len);
            if (!rc) rc = same ? put_rec(out, RC_OK, &bytes, sizeof bytes)
                               : put_rec(out, RC_MISMATCH, &bytes, sizeof bytes);
        }
    }
    if (rc < 0 && !err->msg[0]) mpm_err_set(err, -1, "out of memory");
    free(path);
    mpm_buf_free(&line);
    mpm_buf_free(&tmp);
    hasher_free(&h);
    return rc;
}

/* ---- rank 0: what the walk must not hash (the output being written) ----------------- */

static struct {
    int n;
    dev_t dev[2];
    ino_t ino[2];
} own_output; /* rank 0's main thread only: set by the sink, read by the walk */

static int is_own_output(const struct stat *st)
{
    for (int i = 0; i < own_output.n; i++)
        if (own_output.dev[i] == st->st_dev && own_output.ino[i] == st->st_ino) return 1;
    return 0;
}

/* ---- rank 0: the source ---------------------------------------------------------------- */

/* One entry built but not yet in a chunk. */
typedef struct {
    mpm_buf_t buf;
    uint64_t size;
    int file; /* a file to hash (counts for the chunk's limits) */
} pend_t;

typedef struct {
    char *name;
    size_t nlen;
    struct stat st;
    int err;  /* errno of the stat, 0 if it worked */
    int link; /* the entry itself is a symbolic link (lstat) */
    int isdir;
} dent_t;

typedef struct {
    char *path; /* printed path of this directory ("" for the argument's frame) */
    size_t plen;
    dent_t *ents;
    size_t n, i;
    dev_t dev;
    ino_t ino;
} frame_t;

/* One argument's depth-first walk. Its entries come out sorted by printed
 * path; the walks of all arguments are merged by that path (a heap), so
 * that the whole manifest is sorted even when arguments overlap
 * (`hash dir dir/sub/../x`). A walk is expanded only when it reaches the
 * front of the merge: `key` is then a lower bound of what it will print. */
typedef struct {
    const char *arg;
    int index;
    frame_t *stack;
    int depth, cap, started;
    pend_t p;
    mpm_buf_t key; /* the pending entry's printed path, or a lower bound */
    mpm_buf_t tmp;
} walker_t;

typedef struct {
    const hash_opts_t *o;
    uint64_t chunk_size;
    uint64_t ordinal; /* entries emitted: the chunks' offsets */
    /* create mode: the walks */
    walker_t *w;
    int nw;
    int *heap, hn;
    /* check mode: the manifest */
    pend_t p;
    FILE *f;
    int own_f;
    const char *mname;
    uint64_t lineno, byte;
    int inferred; /* the algorithm inferred from the first plain line, or -1 */
    char *lbuf;
    size_t lcap;
} src_t;

/* Byte i of a name as the printed paths continue it: a directory's name is
 * followed by '/', a file's by the end (-1, before any byte). */
static int vbyte(const dent_t *d, size_t i)
{
    return i < d->nlen ? (unsigned char)d->name[i] : i == d->nlen && d->isdir ? '/' : -1;
}

/* Bytewise order of the printed paths: a directory sorts as "NAME/", so
 * that "a-b" < "a/x" < "a0" as sort(1) orders the full paths. */
static int dent_cmp(const void *pa, const void *pb)
{
    const dent_t *a = pa, *b = pb;
    size_t n = a->nlen < b->nlen ? a->nlen : b->nlen;
    int c = memcmp(a->name, b->name, n);
    if (c) return c;
    for (size_t i = n;; i++) {
        int x = vbyte(a, i), y = vbyte(b, i);
        if (x != y) return x < y ? -1 : 1;
        if (x < 0) return 0;
    }
}

static void frame_free(frame_t *f)
{
    for (size_t i = 0; i < f->n; i++) free(f->ents[i].name);
    free(f->ents);
    free(f->path);
}

/* Stats one entry: links followed for arguments and with --follow. */
static void stat_entry(const hash_opts_t *o, int dirfd, dent_t *d, int top)
{
    d->err = 0;
    if (fstatat(dirfd, d->name, &d->st, AT_SYMLINK_NOFOLLOW) < 0) {
        d->err = errno;
        return;
    }
    d->link = S_ISLNK(d->st.st_mode);
    if (d->link && (top || o->follow)) {
        struct stat t;
        if (fstatat(dirfd, d->name, &t, 0) == 0) d->st = t;
        else d->err = errno; /* dangling: noted below */
    }
    d->isdir = !d->err && S_ISDIR(d->st.st_mode);
}

static int push_frame(walker_t *w, char *path, size_t plen, dent_t *ents, size_t n,
                      const struct stat *st)
{
    if (w->depth == w->cap) {
        int nc = w->cap ? 2 * w->cap : 16;
        frame_t *ns = realloc(w->stack, (size_t)nc * sizeof *ns);
        if (!ns) return -1;
        w->stack = ns;
        w->cap = nc;
    }
    if (n > 1) qsort(ents, n, sizeof *ents, dent_cmp); /* an empty directory has no array */
    w->stack[w->depth++] = (frame_t){.path = path, .plen = plen, .ents = ents, .n = n,
                                     .dev = st ? st->st_dev : 0, .ino = st ? st->st_ino : 0};
    return 0;
}

/* Makes a file to hash pending. */
static int pend_file(pend_t *pd, const hash_opts_t *o, const char *p, size_t n, uint64_t size,
                     int top)
{
    entry_t e = {.kind = E_FILE, .algo = (uint8_t)(o->algo < 0 ? A_SHA256 : o->algo),
                 .top = (uint8_t)top, .plen = (uint32_t)n, .size = size};
    pd->buf.len = 0;
    pd->size = size;
    pd->file = 1;
    return mpm_buf_append(&pd->buf, &e, sizeof e) || mpm_buf_append(&pd->buf, p, n) ? -1 : 0;
}

/* Makes a result record (note, error, bad line) pending: map passes it on. */
static int pend_rec(pend_t *pd, int kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int pend_rec(pend_t *pd, int kind, const char *fmt, ...)
{
    char msg[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
    mpm_buf_t r = {0};
    if (put_rec(&r, kind, msg, (size_t)n)) return -1;
    entry_t e = {.kind = E_PASS, .plen = (uint32_t)r.len};
    pd->buf.len = 0;
    pd->size = 0;
    pd->file = 0;
    int rc = mpm_buf_append(&pd->buf, &e, sizeof e) || mpm_buf_append(&pd->buf, r.data, r.len);
    mpm_buf_free(&r);
    return rc ? -1 : 0;
}

static const char *kind_of(mode_t m)
{
    return S_ISFIFO(m) ? "FIFO" : S_ISSOCK(m) ? "socket" : S_ISCHR(m) ? "character device"
         : S_ISBLK(m) ? "block device" : "special file";
}

/* Lists the directory at `path` (its printed path, a valid path from the
 * current directory) as a new frame: every entry fstatat'ed through the
 * directory's descriptor, which is closed again (a walk of many arguments
 * holds no descriptors). 0, 1 with why[] set, -1 out of memory. */
static int open_dir_frame(walker_t *w, const hash_opts_t *o, const char *path, size_t plen,
                          const dent_t *d, int top, char *why, size_t whyn)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (top || o->follow ? 0 : O_NOFOLLOW));
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dir) {
        snprintf(why, whyn, "cannot list directory: %s", strerror(errno));
        if (fd >= 0) close(fd);
        return 1;
    }
    dent_t *ents = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    int rc = 0;
    errno = 0;
    while ((de = readdir(dir))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 64;
            dent_t *ne = realloc(ents, nc * sizeof *ne);
            if (!ne) {
                rc = -1;
                break;
            }
            ents = ne;
            cap = nc;
        }
        dent_t *x = &ents[n];
        memset(x, 0, sizeof *x);
        x->nlen = strlen(de->d_name);
        if (!(x->name = strdup(de->d_name))) {
            rc = -1;
            break;
        }
        n++;
        stat_entry(o, dirfd(dir), x, 0);
        errno = 0;
    }
    int rerr = errno;
    closedir(dir);
    char *p = rc == 0 ? malloc(plen + 1) : NULL;
    if (rc == 0 && rerr) {
        snprintf(why, whyn, "cannot list directory: %s", strerror(rerr));
        rc = 1;
    }
    if (rc == 0 && !p) rc = -1;
    if (rc == 0) {
        memcpy(p, path, plen);
        p[plen] = 0;
        if (push_frame(w, p, plen, ents, n, &d->st) == 0) return 0;
        rc = -1;
    }
    free(p);
    for (size_t i = 0; i < n; i++) free(ents[i].name);
    free(ents);
    return rc;
}

/* Advances walk w to its next entry and makes it pending, its printed path
 * in w->key. 1, 0 at the end of the walk, -1 out of memory. */
static int walk_next(walker_t *w, const hash_opts_t *o)
{
    char why[1024];
    if (!w->started) { /* the argument's frame: one entry, links followed */
        w->started = 1;
        dent_t *e = calloc(1, sizeof *e);
        char *root = strdup("");
        if (!e || !root || !(e->name = strdup(w->arg))) {
            free(e);
            free(root);
            return -1;
        }
        e->nlen = strlen(w->arg);
        stat_entry(o, AT_FDCWD, e, 1);
        if (push_frame(w, root, 0, e, 1, NULL) < 0) {
            free(e->name);
            free(e);
            free(root);
            return -1;
        }
    }
    while (w->depth > 0) {
        frame_t *f = &w->stack[w->depth - 1];
        if (f->i == f->n) {
            frame_free(f);
            w->depth--;
            continue;
        }
        dent_t *d = &f->ents[f->i++];
        int top = w->depth == 1;
        /* The printed path: the argument itself, or PREFIX/NAME. */
        mpm_buf_t *pb = &w->key;
        pb->len = 0;
        if (!top && (mpm_buf_append(pb, f->path, f->plen) ||
                     (f->plen && f->path[f->plen - 1] != '/' && mpm_buf_append(pb, "/", 1))))
            return -1;
        if (mpm_buf_append(pb, d->name, d->nlen) || mpm_buf_append(pb, "", 1)) return -1;
        size_t plen = --pb->len; /* the NUL stays after the key */
        const char *show = shown(&w->tmp, pb->data, plen);
        int rc;
        if (d->err == ENOENT && d->link) {
            rc = pend_rec(&w->p, RC_NOTE, "skipping %s: dangling symbolic link", show);
        } else if (d->err) {
            rc = pend_rec(&w->p, RC_ERR, "%s: %s%s", show, strerror(d->err),
                          d->err == ENOENT && !top ? " (it vanished during the walk)" : "");
        } else if (d->link && !top && !o->follow) {
            rc = pend_rec(&w->p, RC_NOTE, "skipping %s: symbolic link (use --follow)", show);
        } else if (S_ISREG(d->st.st_mode)) {
            if (is_own_output(&d->st)) continue; /* this run's manifest, or its temporary file */
            rc = pend_file(&w->p, o, pb->data, plen, (uint64_t)d->st.st_size, top);
        } else if (d->isdir) {
            int loop = 0;
            for (int i = 1; i < w->depth; i++)
                if (w->stack[i].dev == d->st.st_dev && w->stack[i].ino == d->st.st_ino) loop = 1;
            if (loop) {
                rc = pend_rec(&w->p, RC_NOTE, "skipping %s: directory loop (a link back to a "
                              "directory above it)", show);
            } else {
                /* Trailing slashes of an argument are not printed twice. */
                size_t keep = plen;
                while (top && keep > 1 && pb->data[keep - 1] == '/') keep--;
                char *path = strndup(pb->data, keep);
                if (!path) return -1;
                rc = open_dir_frame(w, o, path, keep, d, top, why, sizeof why);
                free(path);
                if (rc == 0) continue;
                if (rc == 1) rc = pend_rec(&w->p, RC_ERR, "%s: %s", show, why);
            }
        } else {
            rc = pend_rec(&w->p, RC_NOTE, "skipping %s: %s", show, kind_of(d->st.st_mode));
        }
        return rc < 0 ? -1 : 1;
    }
    return 0;
}

/* The merge: a min-heap of walks by key, then argument order. */
static int walker_less(const walker_t *a, const walker_t *b)
{
    size_t n = a->key.len < b->key.len ? a->key.len : b->key.len;
    int c = memcmp(a->key.data, b->key.data, n);
    if (c) return c < 0;
    if (a->key.len != b->key.len) return a->key.len < b->key.len;
    return a->index < b->index;
}

static void heap_down(src_t *s, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->hn && walker_less(&s->w[s->heap[l]], &s->w[s->heap[m]])) m = l;
        if (r < s->hn && walker_less(&s->w[s->heap[r]], &s->w[s->heap[m]])) m = r;
        if (m == i) return;
        int t = s->heap[i];
        s->heap[i] = s->heap[m];
        s->heap[m] = t;
        i = m;
    }
}

static void heap_push(src_t *s, int wi)
{
    int i = s->hn++;
    s->heap[i] = wi;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!walker_less(&s->w[s->heap[i]], &s->w[s->heap[p]])) break;
        int t = s->heap[i];
        s->heap[i] = s->heap[p];
        s->heap[p] = t;
        i = p;
    }
}

static void heap_pop(src_t *s)
{
    s->heap[0] = s->heap[--s->hn];
    heap_down(s, 0);
}

/* The smallest pending entry of all walks, or NULL at the end (*fail set
 * when out of memory). Walks are advanced only when they are at the front. */
static pend_t *merge_front(src_t *s, int *fail)
{
    while (s->hn > 0) {
        walker_t *w = &s->w[s->heap[0]];
        if (w->p.buf.len) return &w->p;
        int wi = s->heap[0];
        heap_pop(s);
        int r = walk_next(w, s->o);
        if (r < 0) {
            *fail = 1;
            return NULL;
        }
        if (r > 0) heap_push(s, wi);
    }
    return NULL;
}

/* The front entry went into a chunk: its walk goes back into the heap with
 * the key it had, a lower bound of what it prints next. */
static void merge_taken(src_t *s)
{
    walker_t *w = &s->w[s->heap[0]];
    w->p.buf.len = 0;
}

/* ---- check mode: reading the manifest ----------------------------------------------- */

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int parse_hex(const char *h, size_t n, unsigned char *d)
{
    if (n % 2 || n > 2 * MAX_DIGEST || n == 0) return -1;
    for (size_t i = 0; i < n; i += 2) {
        int a = hexval((unsigned char)h[i]), b = hexval((unsigned char)h[i + 1]);
        if (a < 0 || b < 0) return -1;
        d[i / 2] = (unsigned char)(a * 16 + b);
    }
    return (int)(n / 2);
}

/* Undoes put_escaped in place. 0, or -1 for an unknown escape. */
static int unescape(char *p, size_t *n)
{
    size_t j = 0;
    for (size_t i = 0; i < *n; i++) {
        if (p[i] != '\\') {
            p[j++] = p[i];
            continue;
        }
        if (++i == *n) return -1;
        p[j++] = p[i] == '\\' ? '\\' : p[i] == 'n' ? '\n' : p[i] == 'r' ? '\r' : 0;
        if (!p[j - 1]) return -1;
    }
    *n = j;
    return 0;
}

/* Parses one manifest line (no newline). 0 with the fields, 1: improperly
 * formatted, 2: ambiguous digest length (why set). */
static int parse_manifest_line(src_t *s, char *l, size_t n, int *algo, unsigned char *dg,
                               int *dlen, char **path, size_t *plen, char *why, size_t whyn)
{
    int esc = n > 0 && l[0] == '\\';
    if (esc) {
        l++;
        n--;
    }
    /* BSD: TAG (PATH) = HEX */
    const char *paren = memmem(l, n, " (", 2);
    if (paren) {
        size_t tl = (size_t)(paren - l);
        int a = -1;
        for (int i = 0; i < A_COUNT; i++)
            if (strlen(algos[i].tag) == tl && !memcmp(l, algos[i].tag, tl)) a = i;
        if (a >= 0) {
            /* The path ends at the last ") = ". */
            const char *end = NULL;
            for (const char *q = l + tl + 2; q + 4 <= l + n; q++)
                if (!memcmp(q, ") = ", 4)) end = q;
            if (!end) return 1;
            const char *hx = end + 4;
            int d = parse_hex(hx, (size_t)(l + n - hx), dg);
            if (d != algos[a].len) return 1;
            *algo = a;
            *dlen = d;
            *path = l + tl + 2;
            *plen = (size_t)(end - *path);
            return esc && unescape(*path, plen) ? 1 : 0;
        }
    }
    /* GNU: HEX, a space, ' ' or '*', PATH */
    size_t h = 0;
    while (h < n && hexval((unsigned char)l[h]) >= 0) h++;
    if (h == 0 || h + 2 > n || l[h] != ' ' || (l[h + 1] != ' ' && l[h + 1] != '*') || h + 2 == n)
        return 1;
    int d = parse_hex(l, h, dg);
    if (d < 0) return 1;
    int a = s->o->algo >= 0 ? s->o->algo : s->inferred;
    if (a < 0) {
        if (d == 8) a = A_XXH64;
        else if (d == 32) a = A_SHA256;
        else if (d == 16 || d == 64) {
            snprintf(why, whyn, "%d hex digits can be %s or %s: give --algo", 2 * d,
                     d == 16 ? "md5" : "sha512", d == 16 ? "xxh128" : "blake2b");
            return 2;
        } else {
            return 1;
        }
        s->inferred = a;
    }
    if (d != algos[a].len) return 1;
    *algo = a;
    *dlen = d;
    *path = l + h + 2;
    *plen = n - h - 2;
    return esc && unescape(*path, plen) ? 1 : 0;
}

int mpm__hash_parse_line(int algo, int *inferred, char *l, size_t n, int *algo_out,
                         unsigned char *dg, int *dlen, char **path, size_t *plen, char *why,
                         size_t whyn)
{
    hash_opts_t o = {.algo = algo};
    src_t s = {.o = &o, .inferred = *inferred};
    int r = parse_manifest_line(&s, l, n, algo_out, dg, dlen, path, plen, why, whyn);
    *inferred = s.inferred;
    return r;
}

int mpm__hash_manifest_line(int tag, int algo, const unsigned char *dg, const char *p, size_t n,
                            mpm_buf_t *line)
{
    hash_opts_t o = {.algo = algo, .tag = tag};
    return manifest_line(&o, line, algo, dg, p, n);
}

/* The next manifest entry as pending. 1, 0 at EOF, -1 (err set). */
static int manifest_next(src_t *s, mpm_err_t *err)
{
    char why[256];
    for (;;) {
        ssize_t r = getline(&s->lbuf, &s->lcap, s->f);
        if (r < 0) {
            if (ferror(s->f))
                return mpm_err_set(err, -1, "%s: read error: %s", s->mname, strerror(errno));
            return 0;
        }
        s->lineno++;
        s->byte += (uint64_t)r;
        size_t n = (size_t)r;
        if (n && s->lbuf[n - 1] == '\n') n--;
        if (n && s->lbuf[n - 1] == '\r') n--; /* a manifest edited on Windows */
        if (n == 0) continue;
        int algo = 0, dlen = 0;
        unsigned char dg[MAX_DIGEST];
        char *p = NULL;
        size_t pl = 0;
        int pr = parse_manifest_line(s, s->lbuf, n, &algo, dg, &dlen, &p, &pl, why, sizeof why);
        if (pr == 2) return mpm_err_set(err, -1, "%s:%" PRIu64 ": %s", s->mname, s->lineno, why);
        if (pr == 1)
            return pend_rec(&s->p, RC_BAD, "%s:%" PRIu64 ": improperly formatted checksum line",
                            s->mname, s->lineno) < 0 ? -1 : 1;
        /* Sizes only balance the chunks; a file that is not there is the
         * worker's to report. */
        char save = p[pl];
        p[pl] = 0;
        struct stat st;
        uint64_t size = stat(p, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
        p[pl] = save;
        entry_t e = {.kind = E_VERIFY, .algo = (uint8_t)algo, .dlen = (uint8_t)dlen, .top = 1,
                     .plen = (uint32_t)pl, .size = size};
        s->p.buf.len = 0;
        s->p.size = size;
        s->p.file = 1;
        if (mpm_buf_append(&s->p.buf, &e, sizeof e) || mpm_buf_append(&s->p.buf, dg, (size_t)dlen) ||
            mpm_buf_append(&s->p.buf, p, pl))
            return -1;
        return 1;
    }
}

static void hash_source_close(void *sp);

static void *hash_source_open(const void *op, const mpm_input_t *in, uint64_t chunk_size,
                              mpm_err_t *err)
{
    const hash_opts_t *o = op;
    src_t *s = calloc(1, sizeof *s);
    if (!s) {
        mpm_err_set(err, -1, "out of memory");
        return NULL;
    }
    s->o = o;
    s->chunk_size = chunk_size;
    s->inferred = -1;
    if (o->check) {
        s->mname = in->kind == MPM_IN_STDIN ? "standard input" : in->name;
        if (!(s->f = mpm__input_fopen(in, "manifest", &s->own_f, err))) {
            free(s);
            return NULL;
        }
        return s;
    }
    /* One walk per argument, each starting at its lower bound: the argument
     * without trailing slashes. */
    s->w = calloc((size_t)o->npaths, sizeof *s->w);
    s->heap = calloc((size_t)o->npaths, sizeof *s->heap);
    if (!s->w || !s->heap) {
        free(s->w);
        free(s->heap);
        free(s);
        mpm_err_set(err, -1, "out of memory");
        return NULL;
    }
    s->nw = o->npaths;
    for (int i = 0; i < o->npaths; i++) {
        walker_t *w = &s->w[i];
        w->arg = o->paths[i];
        w->index = i;
        size_t l = strlen(w->arg);
        while (l > 1 && w->arg[l - 1] == '/') l--;
        if (mpm_buf_append(&w->key, w->arg, l)) {
            mpm_err_set(err, -1, "out of memory");
            s->nw = i + 1;
            hash_source_close(s);
            return NULL;
        }
        heap_push(s, i);
    }
    return s;
}

static int hash_source_next(void *sp, mpm_buf_t *out, uint64_t *offset, mpm_err_t *err)
{
    src_t *s = sp;
    uint64_t files = 0, bytes = 0, entries = 0;
    int any = 0;
    *offset = s->o->check ? s->byte : s->ordinal;
    for (;;) {
        pend_t *p;
        if (s->o->check) {
            if (!s->p.buf.len) {
                int r = manifest_next(s, err);
                if (r < 0) {
                    if (!err->msg[0]) mpm_err_set(err, -1, "out of memory");
                    return -1;
                }
                if (r == 0) break;
            }
            p = &s->p;
        } else {
            int fail = 0;
            if (!(p = merge_front(s, &fail))) {
                if (fail) return mpm_err_set(err, -1, "out of memory");
                break;
            }
        }
        /* A file that would overflow the chunk starts the next one, so that
         * large files travel alone. */
        if (p->file && files > 0 && (files >= CHUNK_FILES || bytes + p->size > s->chunk_size))
            break;
        if (mpm_buf_append(out, p->buf.data, p->buf.len)) return mpm_err_set(err, -1, "out of memory");
        any = 1;
        s->ordinal++;
        entries++;
        if (p->file) {
            files++;
            bytes += p->size;
        }
        if (s->o->check) s->p.buf.len = 0;
        else merge_taken(s);
        if (files >= CHUNK_FILES || bytes >= s->chunk_size || entries >= CHUNK_ENTRIES) break;
    }
    return any;
}

static void hash_source_close(void *sp)
{
    src_t *s = sp;
    for (int i = 0; i < s->nw; i++) {
        walker_t *w = &s->w[i];
        while (w->depth > 0) frame_free(&w->stack[--w->depth]);
        free(w->stack);
        mpm_buf_free(&w->p.buf);
        mpm_buf_free(&w->key);
        mpm_buf_free(&w->tmp);
    }
    free(s->w);
    free(s->heap);
    if (s->own_f) fclose(s->f);
    free(s->lbuf);
    mpm_buf_free(&s->p.buf);
    free(s);
}

/* ---- rank 0: the sink ------------------------------------------------------------------- */

typedef struct {
    const hash_opts_t *o;
    mpm_out_t out;
    const char *path;
    double t0;
    uint64_t ok, bytes, errors, mismatched, unread, bad, notes;
    char manifests[512]; /* --check: the manifests, for messages */
} hsink_t;

static void *hash_sink_open(const void *op, const mpm_inputs_t *inputs, const char *path,
                            mpm_err_t *err)
{
    /* the engine refuses an output that is one of the inputs */
    const hash_opts_t *o = op;
    hsink_t *s = calloc(1, sizeof *s);
    if (!s) {
        mpm_err_set(err, -1, "out of memory");
        return NULL;
    }
    s->o = o;
    s->path = path;
    s->t0 = mpm__now();
    for (int i = 0, at = 0; o->check && i < inputs->n && at < (int)sizeof s->manifests; i++) {
        int in = inputs->v[i].kind == MPM_IN_STDIN;
        at += snprintf(s->manifests + at, sizeof s->manifests - (size_t)at, "%s%s%s%s",
                       i ? ", " : "", in ? "" : "'", in ? "standard input" : inputs->v[i].name,
                       in ? "" : "'");
    }
    struct stat st;
    if (path && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        mpm_err_set(err, -1, "-o '%s' is a directory: give the manifest's file name", path);
        free(s);
        return NULL;
    }
    if (mpm__out_open(&s->out, path, MPM_FMT_TEXT, NULL) < 0) {
        mpm_err_set(err, -1, "%s", s->out.err);
        free(s);
        return NULL;
    }
    own_output.n = 0;
    if (path && !s->out.direct) {
        if (fstat(s->out.fd, &st) == 0) {
            own_output.dev[own_output.n] = st.st_dev;
            own_output.ino[own_output.n++] = st.st_ino;
        }
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            own_output.dev[own_output.n] = st.st_dev;
            own_output.ino[own_output.n++] = st.st_ino;
        }
    }
    return s;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    if (mpm__log_quiet) return;
    mpm__progress_erase();
    va_list ap;
    va_start(ap, fmt);
    fputs("mpimap: note: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int hash_sink_write(void *sp, uint64_t index, const void *data, size_t len, mpm_err_t *err)
{
    (void)index;
    hsink_t *s = sp;
    const char *p = data;
    size_t at = 0;
    while (at + 5 <= len) {
        int kind = (unsigned char)p[at];
        uint32_t n;
        memcpy(&n, p + at + 1, 4);
        const char *b = p + at + 5;
        if (at + 5 + n > len) return mpm_err_set(err, -1, "malformed result");
        at += 5 + (size_t)n;
        uint64_t v = 0;
        if (n == sizeof v) memcpy(&v, b, sizeof v);
        switch (kind) {
        case RC_LINE:
            if (mpm__out_rows(&s->out, b, n) < 0) return mpm_err_set(err, -1, "%s", s->out.err);
            break;
        case RC_ERR:
        case RC_UNREAD:
            MPM_LOG(MPM_LOG_ERROR, "%.*s", (int)n, b);
            if (kind == RC_ERR) s->errors++;
            else s->unread++;
            break;
        case RC_NOTE:
            note("%.*s", (int)n, b);
            s->notes++;
            break;
        case RC_BAD:
            MPM_LOG(MPM_LOG_WARN, "%.*s", (int)n, b);
            s->bad++;
            break;
        case RC_OK:
            s->ok++;
            s->bytes += v;
            break;
        case RC_MISMATCH:
            s->mismatched++;
            s->bytes += v;
            break;
        default:
            return mpm_err_set(err, -1, "malformed result");
        }
    }
    return 0;
}

static const char *plural(uint64_t n, const char *one, const char *many) { return n == 1 ? one : many; }

static int hash_sink_close(void *sp, int commit, mpm_err_t *err)
{
    hsink_t *s = sp;
    const hash_opts_t *o = s->o;
    own_output.n = 0;
    int rc = 0;
    double el = mpm__now() - s->t0;
    if (!commit) {
        mpm__out_abort(&s->out);
    } else if (!o->check) {
        int algo = o->algo < 0 ? A_SHA256 : o->algo;
        if (!mpm__log_quiet)
            fprintf(stderr, "mpimap: hash: %" PRIu64 " %s, %" PRIu64 " bytes, %s, %.3f s (%.1f MB/s)%s\n",
                    s->ok, plural(s->ok, "file", "files"), s->bytes, algos[algo].name, el,
                    el > 0 ? (double)s->bytes / el / 1e6 : 0.0,
                    s->notes ? ", some entries skipped (see the notes above)" : "");
        if (!s->errors) {
            if (mpm__out_commit(&s->out) < 0) rc = mpm_err_set(err, -1, "%s", s->out.err);
        } else if (!s->path || s->out.direct) {
            if (mpm__out_commit(&s->out) < 0) rc = mpm_err_set(err, -1, "%s", s->out.err);
            else rc = mpm_err_set(err, -1, "%" PRIu64 " %s could not be hashed (see above)",
                                  s->errors, plural(s->errors, "file", "files"));
        } else {
            size_t n = strlen(s->path) + sizeof ".incomplete";
            char *kept = malloc(n);
            if (!kept) {
                mpm__out_abort(&s->out);
                return mpm_err_set(err, -1, "out of memory");
            }
            snprintf(kept, n, "%s.incomplete", s->path);
            if (mpm__out_commit_as(&s->out, kept) < 0)
                rc = mpm_err_set(err, -1, "%s", s->out.err);
            else
                rc = mpm_err_set(err, -1,
                                 "%" PRIu64 " %s could not be hashed (see above): '%s' not "
                                 "written; the %" PRIu64 " lines of the others are in '%s'",
                                 s->errors, plural(s->errors, "file", "files"), s->path, s->ok, kept);
            free(kept);
        }
    } else {
        uint64_t listed = s->ok + s->mismatched + s->unread;
        if (s->bad)
            MPM_LOG(MPM_LOG_WARN, "%" PRIu64 " %s improperly formatted", s->bad,
                    plural(s->bad, "line is", "lines are"));
        if (s->unread)
            MPM_LOG(MPM_LOG_WARN, "%" PRIu64 " listed %s could not be read", s->unread,
                    plural(s->unread, "file", "files"));
        if (s->mismatched)
            MPM_LOG(MPM_LOG_WARN, "%" PRIu64 " computed %s did NOT match", s->mismatched,
                    plural(s->mismatched, "checksum", "checksums"));
        if (!mpm__log_quiet)
            fprintf(stderr, "mpimap: hash --check: %" PRIu64 " %s, %" PRIu64 " OK, %" PRIu64
                    " FAILED, %" PRIu64 " unreadable, %.3f s (%.1f MB/s)\n",
                    listed, plural(listed, "file", "files"), s->ok, s->mismatched, s->unread, el,
                    el > 0 ? (double)s->bytes / el / 1e6 : 0.0);
        /* The report is the result, whatever it says: always committed. */
        if (mpm__out_commit(&s->out) < 0) rc = mpm_err_set(err, -1, "%s", s->out.err);
        else if (!listed)
            rc = mpm_err_set(err, -1, "%s: no properly formatted checksum lines found",
                             s->manifests);
        else if (s->mismatched || s->unread)
            rc = mpm_err_set(err, -1, "verification failed: %" PRIu64 " of %" PRIu64 " %s "
                             "FAILED", s->mismatched + s->unread, listed,
                             plural(listed, "file", "files"));
        else if (s->bad && o->strict)
            rc = mpm_err_set(err, -1, "--strict: %" PRIu64 " improperly formatted %s", s->bad,
                             plural(s->bad, "line", "lines"));
    }
    free(s);
    return rc;
}

/* ---- options and inputs ----------------------------------------------------------------- */

static int path_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int hash_check(void *op, int argc, char **argv, mpm_inputs_t *in, mpm_err_t *err)
{
    hash_opts_t *o = op;
    if (argc < 1)
        return mpm_err_set(err, -1, o->check ? "--check: give the manifest(s) to verify ('-' for "
                                               "standard input)"
                                             : "give the files and directories to hash");
    if (o->strict && !o->check) return mpm_err_set(err, -1, "--strict applies to --check only");
    if (o->check && (o->tag || o->follow))
        return mpm_err_set(err, -1, "--%s does not apply to --check", o->tag ? "tag" : "follow");
    for (int a = 0; a < A_COUNT; a++)
        if (algos[a].evp && !(o->md[a] = EVP_MD_fetch(NULL, algos[a].evp, NULL)))
            return mpm_err_set(err, -1, "OpenSSL does not provide %s here", algos[a].evp);
    const char *d = getenv("MPIMAP_TEST_HASH_DELAY_MS");
    o->delay_ms = d ? atoi(d) : 0;
    if (o->check) {
        return mpm__inputs_paths(in, argc, argv, err);
    }
    for (int i = 0; i < argc; i++) {
        if (!argv[i][0]) return mpm_err_set(err, -1, "an empty path was given");
        if (!strcmp(argv[i], "-"))
            return mpm_err_set(err, -1, "hash reads files and directories, not standard input: "
                                        "name them");
    }
    /* Sorted the way the walk sorts siblings: the arguments are stat'ed by
     * the walk itself (rank 0), here only ordered bytewise as a start. */
    if (!(o->paths = malloc((size_t)argc * sizeof *o->paths)))
        return mpm_err_set(err, -1, "out of memory");
    memcpy(o->paths, argv, (size_t)argc * sizeof *argv);
    o->npaths = argc;
    qsort(o->paths, (size_t)argc, sizeof *o->paths, path_cmp);
    size_t tot = 0;
    for (int i = 0; i < argc; i++) tot += strlen(argv[i]) + 1;
    if (!(o->argdata = malloc(tot))) return mpm_err_set(err, -1, "out of memory");
    for (int i = 0; i < argc; i++) {
        size_t l = strlen(o->paths[i]);
        memcpy(o->argdata + o->arglen, o->paths[i], l);
        o->argdata[o->arglen + l] = '\n';
        o->arglen += l + 1;
    }
    mpm_input_t x = {.kind = MPM_IN_MEMORY, .name = "arguments", .data = o->argdata,
                     .len = o->arglen};
    if (mpm_inputs_add(in, x)) return mpm_err_set(err, -1, "out of memory");
    return 0;
}

static const char *const hash_cols[] = {"line", NULL};
static const char *const *hash_columns(const void *op)
{
    (void)op;
    return hash_cols;
}

const mpm_kernel_t mpm_kernel_hash = {
    .abi = MPM_KERNEL_ABI,
    .name = "hash",
    .summary = "checksums of files and directory trees (sha256sum-compatible manifests), and "
               "their verification",
    .synopsis = "[--algo ALGO] PATH... | --check MANIFEST...",
    .description =
        "Hashes every regular file under the PATHs (directories recursively) and writes one line "
        "per file, sorted by path bytewise: 'HEX  PATH', as sha256sum, sha512sum, b2sum, md5sum "
        "and xxhsum print them (xxh3, and --tag: 'TAG (PATH) = HEX'), so that those tools' -c "
        "verifies the manifest. Names holding a backslash, a newline or a CR are escaped as "
        "coreutils does. Links inside directories are skipped unless --follow; FIFOs, sockets "
        "and devices are skipped with a note.\n\n"
        "Files are the tasks: rank 0 walks the tree (streaming, each directory sorted) and deals "
        "out chunks of files, at most --chunk-size bytes (default 8 MiB) or 1024 files; a larger "
        "file travels alone. Every rank must see the paths (a shared filesystem or one node).\n\n"
        "A file that cannot be hashed (unreadable, vanished, changed while it was read) is "
        "reported and the run goes on; it then ends with exit 1, and with -o MANIFEST the other "
        "files' lines go to MANIFEST.incomplete, never to MANIFEST.\n\n"
        "--check MANIFEST verifies in parallel: 'PATH: OK', 'PATH: FAILED' or 'PATH: FAILED open "
        "or read' per listed file, in manifest order, as sha256sum -c prints them; exit 1 on any "
        "mismatch or unreadable file. Examples:\n"
        "  mpimap -o data.sha256 hash /scratch/dataset\n"
        "  mpirun -np 4 mpimap hash --check data.sha256\n"
        "  mpimap -o tree.xxh3 hash --algo xxh3 big/",
    .options = hash_options,
    .opts_size = sizeof(hash_opts_t),
    .opts_init = hash_opts_init,
    .check = hash_check,
    .opts_free = hash_opts_free,
    .records = MPM_REC_LINES,
    .default_chunk_size = (uint64_t)8 << 20,
    .columns = hash_columns,
    .map = hash_map,
    .source_open = hash_source_open,
    .source_next = hash_source_next,
    .source_close = hash_source_close,
    .sink_open = hash_sink_open,
    .sink_write = hash_sink_write,
    .sink_close = hash_sink_close,
};
