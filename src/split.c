/*
 * split.c - record-aligned chunking (see split.h for the boundary contract).
 */
#include "split.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROBE 4096 /* bytes read past a target boundary at a time */

struct mpm_splitter_s {
    const mpm_input_t *in;
    int n;
    uint64_t cs;
    mpm_records_t rec;
    int read_data;
    size_t headroom;
    uint64_t index; /* next chunk index */
    int empty_stdin; /* standard input gave no byte at all */
    uint64_t total; /* bytes consumed */

    int cur;      /* current input, -1 before the first */
    int cur_failed; /* the current input failed: skip the rest of it */
    int fd;       /* open file of the current input, or -1 */
    int eof;      /* read mode: no more bytes from fd */
    uint64_t pos; /* offset in the current input of the next chunk */
    uint64_t size; /* describe mode: size of the current file */
    char *carry;  /* read mode: bytes read past the last boundary */
    size_t carry_len, carry_cap;
    char *probe; /* describe mode scratch */

    /* A kernel that cuts its own inputs (mpm_kernel_t.source_open): every
     * input goes through it instead of the record rules. */
    const mpm_kernel_t *k;
    const void *opts;
    void *src; /* the current input's source, or NULL */

    /* Read mode over a large regular file maps it instead of reading it:
     * chunks point into the mapping (no copy on rank 0). A mapping lives
     * until the splitter has moved past its input and every chunk handed
     * out from it was released (mpm__split_release). */
    struct map_s {
        char *p;
        size_t len;
        int refs;
        int done; /* the splitter moved past this input */
    } * maps;
};

#define MAP_MIN ((uint64_t)1 << 20) /* smaller files are read() */

/* The first record separator in p[0..n), or NULL. */
static const char *find_sep(mpm_records_t rec, const char *p, size_t n)
{
    if (rec == MPM_REC_LINES) return memchr(p, '\n', n);
    if (rec == MPM_REC_BYTES) return n ? p : NULL; /* cut exactly at the chunk size */
    for (size_t i = 0; i < n; i++)
        if (mpm__is_sep(rec, (unsigned char)p[i])) return p + i;
    return NULL;
}

/* End of the chunk that starts at `start` in bytes held in memory. */
static size_t mem_chunk_end(const mpm_splitter_t *s, const char *p, size_t len, size_t start)
{
    if (len - start <= s->cs) return len;
    size_t from = start + (size_t)s->cs - 1;
    const char *hit = find_sep(s->rec, p + from, len - from);
    return hit ? (size_t)(hit - p) + 1 : len;
}

static void map_drop_if_unused(mpm_splitter_t *s, int i)
{
    struct map_s *m = &s->maps[i];
    if (m->p && m->done && m->refs == 0) {
        munmap(m->p, m->len);
        m->p = NULL;
    }
}

void mpm__split_release(mpm_splitter_t *s, int input)
{
    if (!s || input < 0 || input >= s->n || !s->maps[input].p) return;
    s->maps[input].refs--;
    map_drop_if_unused(s, input);
}

int mpm__split_open(mpm_splitter_t **sp, const mpm_input_t *in, int n, uint64_t chunk_size,
                    mpm_records_t rec, int read_data, size_t headroom, mpm_err_t *err)
{
    if (chunk_size == 0) return mpm_err_set(err, -1, "chunk size must be at least 1");
    mpm_splitter_t *s = calloc(1, sizeof *s);
    if (!s) return mpm_err_set(err, -1, "out of memory");
    s->in = in;
    s->n = n;
    s->cs = chunk_size;
    s->rec = rec;
    s->read_data = read_data;
    s->headroom = headroom;
    s->cur = -1;
    s->fd = -1;
    s->maps = calloc((size_t)(n > 0 ? n : 1), sizeof *s->maps);
    if (!s->maps) {
        free(s);
        return mpm_err_set(err, -1, "out of memory");
    }
    *sp = s;
    return 0;
}

static void close_input(mpm_splitter_t *s);

void mpm__split_close(mpm_splitter_t *s)
{
    if (!s) return;
    if (s->cur >= 0 && s->cur < s->n) close_input(s);
    for (int i = 0; i < s->n; i++)
        if (s->maps[i].p) munmap(s->maps[i].p, s->maps[i].len);
    free(s->maps);
    free(s->carry);
    free(s->probe);
    free(s);
}

void mpm__split_set_source(mpm_splitter_t *s, const mpm_kernel_t *k, const void *opts)
{
    s->k = k->source_open ? k : NULL;
    s->opts = opts;
}

static void close_input(mpm_splitter_t *s)
{
    if (s->src) {
        s->k->source_close(s->src);
        s->src = NULL;
    }
    if (s->fd >= 0 && s->in[s->cur].kind != MPM_IN_STDIN) close(s->fd);
    s->fd = -1;
    s->maps[s->cur].done = 1;
    map_drop_if_unused(s, s->cur);
}

uint64_t mpm__split_bytes(const mpm_splitter_t *s) { return s->total; }

int mpm__split_empty_stdin(const mpm_splitter_t *s) { return s->empty_stdin; }

static int open_input(mpm_splitter_t *s, mpm_err_t *err)
{
    const mpm_input_t *in = &s->in[s->cur];
    s->pos = 0;
    s->eof = 0;
    s->carry_len = 0;
    s->fd = -1;
    if (s->k) {
        s->src = s->k->source_open(s->opts, in, s->cs, err);
        if (!s->src && !err->msg[0]) mpm_err_set(err, -1, "%s: cannot open", in->name);
        return s->src ? 0 : -1;
    }
    if (in->kind == MPM_IN_STDIN) {
        s->fd = 0;
    } else if (in->kind == MPM_IN_FILE) {
        s->fd = open(in->name, O_RDONLY | O_CLOEXEC);
        if (s->fd < 0) return mpm_err_set(err, -1, "cannot open '%s': %s", in->name, strerror(errno));
        struct stat st;
        if (fstat(s->fd, &st) < 0)
            return mpm_err_set(err, -1, "cannot stat '%s': %s", in->name, strerror(errno));
        if (S_ISDIR(st.st_mode)) return mpm_err_set(err, -1, "'%s' is a directory", in->name);
        s->size = (uint64_t)st.st_size;
#ifdef POSIX_FADV_SEQUENTIAL
        if (s->read_data) posix_fadvise(s->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
        if (s->read_data && S_ISREG(st.st_mode) && s->size >= MAP_MIN &&
            s->size <= (uint64_t)SIZE_MAX) {
            void *p = mmap(NULL, (size_t)s->size, PROT_READ, MAP_SHARED, s->fd, 0);
            if (p != MAP_FAILED) {
                madvise(p, (size_t)s->size, MADV_SEQUENTIAL);
                s->maps[s->cur].p = p;
                s->maps[s->cur].len = (size_t)s->size;
            }
        }
    }
    return 0;
}

/* Read mode over a mapped file: the boundary is searched in the mapping. */
static int next_mapped(mpm_splitter_t *s, mpm_chunk_desc_t *d, const char **data)
{
    struct map_s *m = &s->maps[s->cur];
    if (s->pos >= m->len) return 0;
    size_t start = (size_t)s->pos, end = mem_chunk_end(s, m->p, m->len, start);
    d->offset = start;
    d->len = end - start;
    d->has_data = MPM_DATA_INLINE;
    *data = m->p + start;
    m->refs++;
    s->pos = end;
    return 1;
}


/* read() until n bytes or EOF; returns bytes read or -1. */
static ssize_t read_full(int fd, char *p, size_t n, int *eof)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) {
            *eof = 1;
            break;
        }
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Read mode over a file descriptor. Returns 1, 0 (input exhausted) or -1. */
static int next_read(mpm_splitter_t *s, mpm_chunk_desc_t *d, char **bufp, mpm_err_t *err)
{
    const mpm_input_t *in = &s->in[s->cur];
    /* The buffer starts at min(chunk size, 64 MiB) and grows while reading,
     * so a huge --chunk-size costs only the bytes that exist. */
    size_t need = s->cs > (uint64_t)(SIZE_MAX / 4) ? SIZE_MAX / 4 : (size_t)s->cs;
    size_t cap = (need < ((size_t)64 << 20) ? need : ((size_t)64 << 20));
    if (cap < s->carry_len) cap = s->carry_len;
    cap += PROBE;
    char *buf = malloc(s->headroom + cap);
    if (!buf) return mpm_err_set(err, -1, "out of memory for a chunk of %zu bytes", cap);
    char *p = buf + s->headroom;
    size_t have = s->carry_len;
    if (have) memcpy(p, s->carry, have);
    s->carry_len = 0;
    while (have < need && !s->eof) {
        if (have == cap) {
            size_t ncap = cap + (cap < need - have ? cap : need - have) + PROBE;
            char *nb = realloc(buf, s->headroom + ncap);
            if (!nb) {
                free(buf);
                return mpm_err_set(err, -1, "out of memory for a chunk of %zu bytes", ncap);
            }
            buf = nb;
            p = buf + s->headroom;
            cap = ncap;
        }
        size_t want = cap - have < need - have ? cap - have : need - have;
        ssize_t r = read_full(s->fd, p + have, want, &s->eof);
        if (r < 0) goto read_error;
        have += (size_t)r;
    }
    if (have == 0) {
        free(buf);
        if (in->kind == MPM_IN_STDIN && s->pos == 0) s->empty_stdin = 1;
        return 0;
    }
    size_t end = 0, scan = need - 1;
    for (;;) {
        if (scan < have) {
            const char *hit = find_sep(s->rec, p + scan, have - scan);
            if (hit) {
                end = (size_t)(hit - p) + 1;
                break;
            }
            scan = have;
        }
        if (s->eof) {
            end = have;
            break;
        }
        if (cap - have < PROBE) {
            size_t ncap = cap + (cap / 2 > PROBE ? cap / 2 : PROBE);
            char *nb = realloc(buf, s->headroom + ncap);
            if (!nb) {
                free(buf);
                return mpm_err_set(err, -1, "out of memory: a record in '%s' is longer than %zu bytes",
                                   in->name, cap);
            }
            buf = nb;
            p = buf + s->headroom;
            cap = ncap;
        }
        ssize_t r = read_full(s->fd, p + have, cap - have, &s->eof);
        if (r < 0) goto read_error;
        have += (size_t)r;
    }
    if (have > end) {
        size_t rest = have - end;
        if (rest > s->carry_cap) {
            char *c = realloc(s->carry, rest);
            if (!c) {
                free(buf);
                return mpm_err_set(err, -1, "out of memory");
            }
            s->carry = c;
            s->carry_cap = rest;
        }
        memcpy(s->carry, p + end, rest);
        s->carry_len = rest;
    }
    d->offset = s->pos;
    d->len = end;
    d->has_data = MPM_DATA_INLINE;
    s->pos += end;
    *bufp = buf;
    return 1;
read_error:
    free(buf);
    return mpm_err_set(err, (int64_t)(s->pos + have), "cannot read '%s': %s", in->name,
                       strerror(errno));
}

/* Describe mode over a regular file: probe with pread around the boundary. */
static int next_describe(mpm_splitter_t *s, mpm_chunk_desc_t *d, mpm_err_t *err)
{
    const mpm_input_t *in = &s->in[s->cur];
    if (s->pos >= s->size) return 0;
    uint64_t start = s->pos, end = s->size;
    if (s->size - start > s->cs) {
        if (!s->probe && !(s->probe = malloc(PROBE))) return mpm_err_set(err, -1, "out of memory");
        uint64_t at = start + s->cs - 1;
        end = s->size;
        while (at < s->size) {
            size_t want = (size_t)(s->size - at < PROBE ? s->size - at : PROBE);
            ssize_t r = pread(s->fd, s->probe, want, (off_t)at);
            if (r < 0) {
                if (errno == EINTR) continue;
                return mpm_err_set(err, (int64_t)at, "cannot read '%s': %s", in->name,
                                   strerror(errno));
            }
            if (r == 0) break; /* file shrank: end here */
            const char *hit = find_sep(s->rec, s->probe, (size_t)r);
            if (hit) {
                end = at + (uint64_t)(hit - s->probe) + 1;
                break;
            }
            at += (uint64_t)r;
        }
    }
    d->offset = start;
    d->len = end - start;
    d->has_data = MPM_DATA_PREAD;
    s->pos = end;
    return 1;
}

static int next_memory(mpm_splitter_t *s, mpm_chunk_desc_t *d, char **bufp, mpm_err_t *err)
{
    const mpm_input_t *in = &s->in[s->cur];
    if (s->pos >= in->len) return 0;
    size_t start = (size_t)s->pos, end = mem_chunk_end(s, in->data, in->len, start);
    char *buf = malloc(s->headroom + (end - start) + 1);
    if (!buf) return mpm_err_set(err, -1, "out of memory");
    memcpy(buf + s->headroom, in->data + start, end - start);
    d->offset = start;
    d->len = end - start;
    d->has_data = MPM_DATA_INLINE;
    s->pos = end;
    *bufp = buf;
    return 1;
}

static int next_range(mpm_splitter_t *s, mpm_chunk_desc_t *d)
{
    const mpm_input_t *in = &s->in[s->cur];
    uint64_t lo = in->lo + s->pos;
    if (lo >= in->hi || s->pos >= in->hi - in->lo) return 0;
    uint64_t hi = in->hi - lo > s->cs ? lo + s->cs : in->hi;
    d->lo = lo;
    d->hi = hi;
    d->offset = s->pos;
    d->len = 0;
    d->has_data = MPM_DATA_PREAD;
    s->pos += hi - lo;
    return 1;
}

int mpm__split_next(mpm_splitter_t *s, mpm_chunk_desc_t *d, char **buf, mpm_err_t *err)
{
    const char *data = NULL;
    int r = mpm__split_next_ref(s, d, buf, &data, err);
    if (r == 1 && !*buf && data) {
        /* A chunk of a mapped file: hand out a copy, as documented. */
        *buf = malloc(s->headroom + (size_t)d->len + 1);
        if (!*buf) {
            mpm__split_release(s, d->input);
            return mpm_err_set(err, -1, "out of memory");
        }
        memcpy(*buf + s->headroom, data, (size_t)d->len);
        mpm__split_release(s, d->input);
    }
    return r;
}

/* The current input failed: the failure takes a chunk index, and the rest of
 * the input is skipped. */
static int fail_input(mpm_splitter_t *s, mpm_chunk_desc_t *d)
{
    memset(d, 0, sizeof *d);
    d->index = s->index++;
    d->input = s->cur;
    d->offset = s->pos;
    close_input(s);
    s->carry_len = 0;
    s->cur_failed = 1;
    return -1;
}

/* The kernel's source: its bytes after the headroom, always copied. */
static int next_source(mpm_splitter_t *s, mpm_chunk_desc_t *d, char **buf, mpm_err_t *err)
{
    mpm_buf_t b = {0};
    if (mpm_buf_reserve(&b, s->headroom + 1) < 0) return mpm_err_set(err, -1, "out of memory");
    b.len = s->headroom;
    uint64_t off = 0;
    int r = s->k->source_next(s->src, &b, &off, err);
    if (r <= 0) {
        mpm_buf_free(&b);
        if (r < 0 && !err->msg[0]) mpm_err_set(err, -1, "%s: cannot read", s->in[s->cur].name);
        return r;
    }
    d->offset = off;
    d->len = b.len - s->headroom;
    d->has_data = MPM_DATA_INLINE;
    s->pos = off;
    *buf = b.data;
    return 1;
}

int mpm__split_next_ref(mpm_splitter_t *s, mpm_chunk_desc_t *d, char **buf, const char **data,
                        mpm_err_t *err)
{
    memset(d, 0, sizeof *d);
    *buf = NULL;
    *data = NULL;
    for (;;) {
        if (s->cur >= s->n) return 0;
        if (s->cur >= 0 && !s->cur_failed) {
            const mpm_input_t *in = &s->in[s->cur];
            int r;
            if (s->k) in = NULL; /* the kernel's source */
            switch (in ? (int)in->kind : -1) {
            case MPM_IN_RANGE:
                r = next_range(s, d);
                break;
            case MPM_IN_MEMORY:
                r = next_memory(s, d, buf, err);
                break;
            case MPM_IN_FILE:
                if (s->maps[s->cur].p)
                    r = next_mapped(s, d, data);
                else
                    r = s->read_data ? next_read(s, d, buf, err) : next_describe(s, d, err);
                break;
            case MPM_IN_STDIN:
                r = next_read(s, d, buf, err);
                break;
            default:
                r = next_source(s, d, buf, err);
                break;
            }
            if (r < 0) return fail_input(s, d);
            if (r > 0) {
                if (*buf && !*data) *data = *buf + s->headroom;
                d->index = s->index++;
                d->input = s->cur;
                s->total += d->len ? d->len : d->hi - d->lo;
                return 1;
            }
            close_input(s);
        }
        s->cur_failed = 0;
        if (++s->cur >= s->n) return 0;
        if (open_input(s, err) < 0) return fail_input(s, d);
    }
}
