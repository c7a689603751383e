/*
 * journal.c - durable record of finished chunks (see journal.h).
 */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include "util.h"

#define MAGIC_LINE "MPIMAP JOURNAL 1\n"
#define REC_MAGIC 0x31524a4du /* "MJR1" little-endian */
#define MAX_HEADER ((size_t)16 << 20)

typedef struct rec_s {
    uint32_t magic;
    uint32_t type;
    uint64_t index;
    int32_t input;
    uint32_t attempts;
    uint64_t offset, len;
    uint64_t a_len, b_len;
    uint64_t hash; /* XXH64 of this header with hash = 0, then the payload */
} rec_t;
_Static_assert(sizeof(rec_t) == 64, "journal record header must be 64 bytes");

struct mpm_journal_s {
    char *path;
    int fd;
    uint64_t size; /* bytes of valid content */
    double interval, last_sync;
    int dirty;
    mpm_journal_stats_t st;
    mpm_jentry_t *v;
    size_t n, cap;
    uint32_t *slots; /* hash of (input, offset) -> entry index + 1 */
    size_t nslots;
    mpm_jsegment_t *segs;
    size_t nsegs, capsegs;
};

size_t mpm__journal_nsegments(const mpm_journal_t *j) { return j->nsegs; }

const mpm_jsegment_t *mpm__journal_segment(const mpm_journal_t *j, size_t i)
{
    return i < j->nsegs ? &j->segs[i] : NULL;
}

static uint64_t key_hash(int input, uint64_t offset)
{
    uint64_t x = offset * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uint32_t)input * 0xC2B2AE3D27D4EB4Full;
    return x ^ (x >> 29);
}

static int grow_slots(mpm_journal_t *j)
{
    size_t ns = j->nslots ? 2 * j->nslots : 1024;
    uint32_t *s = calloc(ns, sizeof *s);
    if (!s) return -1;
    for (size_t i = 0; i < j->n; i++) {
        size_t h = (size_t)key_hash(j->v[i].input, j->v[i].offset) & (ns - 1);
        while (s[h]) h = (h + 1) & (ns - 1);
        s[h] = (uint32_t)(i + 1);
    }
    free(j->slots);
    j->slots = s;
    j->nslots = ns;
    return 0;
}

const mpm_jentry_t *mpm__journal_find(const mpm_journal_t *j, int input, uint64_t offset)
{
    if (!j || !j->nslots) return NULL;
    size_t h = (size_t)key_hash(input, offset) & (j->nslots - 1);
    while (j->slots[h]) {
        const mpm_jentry_t *e = &j->v[j->slots[h] - 1];
        if (e->input == input && e->offset == offset) return e;
        h = (h + 1) & (j->nslots - 1);
    }
    return NULL;
}

/* Records an entry; a later record replaces an earlier one for the same
 * chunk, except that a finished chunk stays finished. */
static int put_entry(mpm_journal_t *j, const mpm_jentry_t *e)
{
    mpm_jentry_t *old = (mpm_jentry_t *)mpm__journal_find(j, e->input, e->offset);
    if (old) {
        if (old->state == MPM_J_DONE && e->state != MPM_J_DONE) return 0;
        int covered = old->covered && old->state == MPM_J_DONE;
        *old = *e;
        old->covered |= covered; /* its segment still holds its partial */
        return 0;
    }
    if (j->n >= UINT32_MAX - 1) return -1;
    if ((j->n + 1) * 2 > j->nslots && grow_slots(j) < 0) return -1;
    if (mpm__grow(&j->v, &j->cap, j->n + 1, sizeof *j->v) < 0) return -1;
    j->v[j->n] = *e;
    size_t h = (size_t)key_hash(e->input, e->offset) & (j->nslots - 1);
    while (j->slots[h]) h = (h + 1) & (j->nslots - 1);
    j->slots[h] = (uint32_t)(j->n + 1);
    j->n++;
    return 0;
}

/* 1 when all n bytes were read, 0 at a short file, -1 on an error. */
static int pread_full(int fd, void *p, size_t n, uint64_t at)
{
    long long r = mpm__pread_full(fd, p, n, at);
    return r < 0 ? -1 : (size_t)r == n;
}

static int write_full(int fd, const void *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        p = (const char *)p + w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes the header into a temporary file next to path and renames it. */
static int create_journal(mpm_journal_t *j, const char *global, char *const *inputs, int n,
                          mpm_err_t *err)
{
    mpm_buf_t b = {0};
    int oom = mpm_buf_append(&b, MAGIC_LINE, strlen(MAGIC_LINE)) ||
              mpm_buf_append(&b, global, strlen(global));
    for (int i = 0; !oom && i < n; i++) oom = mpm_buf_printf(&b, "input %d %s\n", i, inputs[i]) < 0;
    if (!oom) {
        uint64_t h = XXH64(b.data, b.len, 0);
        oom = mpm_buf_printf(&b, "end %016llx\n", (unsigned long long)h) < 0;
    }
    if (oom) {
        mpm_buf_free(&b);
        return mpm_err_set(err, -1, "out of memory");
    }
    size_t tl = strlen(j->path) + 32;
    char *tmp = malloc(tl), *d = strdup(j->path), *base = strdup(j->path);
    if (!tmp || !d || !base) {
        free(tmp);
        free(d);
        free(base);
        mpm_buf_free(&b);
        return mpm_err_set(err, -1, "out of memory");
    }
    snprintf(tmp, tl, "%s/.%s.mpimap-XXXXXX", dirname(d), basename(base));
    free(d);
    free(base);
    int fd = mkstemp(tmp);
    int rc = 0;
    if (fd < 0) {
        rc = mpm_err_set(err, -1, "cannot create journal '%s': %s", j->path, strerror(errno));
    } else {
        mode_t um = umask(0);
        umask(um);
        fchmod(fd, 0666 & ~um);
        if (write_full(fd, b.data, b.len) < 0 || fsync(fd) < 0)
            rc = mpm_err_set(err, -1, "cannot write journal '%s': %s", j->path, strerror(errno));
        close(fd);
        if (rc == 0 && rename(tmp, j->path) < 0)
            rc = mpm_err_set(err, -1, "cannot create journal '%s': %s", j->path, strerror(errno));
        if (rc) unlink(tmp);
    }
    free(tmp);
    if (rc == 0) {
        j->fd = open(j->path, O_RDWR | O_APPEND | O_CLOEXEC);
        if (j->fd < 0)
            rc = mpm_err_set(err, -1, "cannot open journal '%s': %s", j->path, strerror(errno));
        j->size = b.len;
    }
    mpm_buf_free(&b);
    j->st.created = 1;
    return rc;
}

/* Next line of the header text [*p, end): returns its length without '\n',
 * or -1 if there is no complete line. */
static long next_line(const char **p, const char *end, const char **line)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    if (!nl) return -1;
    *line = *p;
    long n = (long)(nl - *p);
    *p = nl + 1;
    return n;
}

/* Checks the header against this run. Returns the header length, or a
 * negative value with err set (-2: does not match; -1: not a journal). */
static long check_header(mpm_journal_t *j, const char *text, size_t len, const char *global,
                         int n, char **recorded, mpm_err_t *err)
{
    const char *p = text, *end = text + len, *line;
    long l = next_line(&p, end, &line);
    if (l < 0 || (size_t)l + 1 != strlen(MAGIC_LINE) || memcmp(line, MAGIC_LINE, (size_t)l))
        return mpm_err_set(err, -1, "'%s' is not an mpimap journal (first line is not '%.*s')",
                           j->path, (int)strlen(MAGIC_LINE) - 1, MAGIC_LINE);
    /* Global lines, compared one by one to name the first difference. */
    const char *g = global;
    while (*g) {
        const char *gnl = strchr(g, '\n');
        size_t gl = gnl ? (size_t)(gnl - g) : strlen(g);
        l = next_line(&p, end, &line);
        if (l < 0) goto bad;
        if ((size_t)l != gl || memcmp(line, g, gl)) {
            if (l >= 6 && !memcmp(line, "input ", 6)) l = 0;
            mpm_err_set(err, -1,
                        "journal '%s' was written by a different run: it has '%.*s' where this "
                        "run has '%.*s'; rerun with the same kernel, options and --chunk-size, "
                        "or delete the journal to start over",
                        j->path, (int)(l > 200 ? 200 : l), line, (int)(gl > 200 ? 200 : gl), g);
            return -2;
        }
        g += gl + (gnl ? 1 : 0);
    }
    for (int i = 0; i < n; i++) {
        l = next_line(&p, end, &line);
        char want[32];
        int wl = snprintf(want, sizeof want, "input %d ", i);
        if (l < 0 || l < wl || memcmp(line, want, (size_t)wl)) goto bad;
        recorded[i] = strndup(line + wl, (size_t)(l - wl));
        if (!recorded[i]) return mpm_err_set(err, -1, "out of memory");
    }
    const char *hdr_end = p;
    l = next_line(&p, end, &line);
    if (l != 4 + 16 || memcmp(line, "end ", 4)) goto bad;
    unsigned long long h = strtoull(line + 4, NULL, 16);
    if (h != (unsigned long long)XXH64(text, (size_t)(hdr_end - text), 0)) goto bad;
    return (long)(p - text);
bad:
    return mpm_err_set(err, -1, "journal '%s': the header is damaged or lists different inputs "
                                "(this run has %d); delete it to start over",
                       j->path, n);
}

/* A SEGMENT record at pos (payload): kept when every chunk it lists has a
 * DONE entry, which it then marks covered. 0, or -1 when out of memory or
 * unreadable. */
static int add_segment(mpm_journal_t *j, uint64_t pos, const mpm_jid_t *ids, uint64_t n,
                       uint64_t part_len)
{
    for (uint64_t i = 0; i < n; i++) {
        const mpm_jentry_t *e = mpm__journal_find(j, ids[i].input, ids[i].offset);
        if (!e || e->state != MPM_J_DONE || e->len != ids[i].len) return 0; /* ignored */
    }
    if (mpm__grow(&j->segs, &j->capsegs, j->nsegs + 1, sizeof *j->segs) < 0) return -1;
    j->segs[j->nsegs++] = (mpm_jsegment_t){.pos = pos, .n = n, .part_len = part_len};
    for (uint64_t i = 0; i < n; i++)
        ((mpm_jentry_t *)mpm__journal_find(j, ids[i].input, ids[i].offset))->covered = 1;
    return 0;
}

/* Reads records from j->size on; cuts a torn tail. */
static int load_records(mpm_journal_t *j, uint64_t file_size, char **recorded, int n,
                        mpm_err_t *err)
{
    uint64_t at = j->size;
    /* The payload hashing buffer: 1 MiB, or the records' whole size when
     * smaller (most journals), so a small journal opens without a large
     * allocation. */
    size_t bufsz = file_size - at < (1 << 20) ? (size_t)(file_size - at) + 1 : (1 << 20);
    char *buf = malloc(bufsz);
    if (!buf) return mpm_err_set(err, -1, "out of memory");
    int rc = 0;
    while (at < file_size) {
        rec_t r;
        if (file_size - at < sizeof r) break;
        if (pread_full(j->fd, &r, sizeof r, at) != 1) break;
        if (r.magic != REC_MAGIC || r.type < MPM_J_DONE || r.type > MPM_J_SEGMENT ||
            r.input < 0 || r.input >= n || r.a_len > file_size || r.b_len > file_size ||
            file_size - at - sizeof r < r.a_len + r.b_len)
            break;
        uint64_t want = r.hash;
        r.hash = 0;
        XXH64_state_t *hs = XXH64_createState();
        if (!hs) {
            rc = mpm_err_set(err, -1, "out of memory");
            break;
        }
        XXH64_reset(hs, 0);
        XXH64_update(hs, &r, sizeof r);
        uint64_t left = r.a_len + r.b_len, p = at + sizeof r;
        int ok = 1;
        while (left && ok) {
            size_t c = left < bufsz ? (size_t)left : bufsz;
            ok = pread_full(j->fd, buf, c, p) == 1;
            if (ok) XXH64_update(hs, buf, c);
            left -= c;
            p += c;
        }
        uint64_t got = XXH64_digest(hs);
        XXH64_freeState(hs);
        if (!ok || got != want) break;
        if (r.type == MPM_J_SEGMENT) {
            if (r.a_len % sizeof(mpm_jid_t)) break;
            mpm_jid_t *ids = malloc(r.a_len ? (size_t)r.a_len : 1);
            if (!ids || pread_full(j->fd, ids, (size_t)r.a_len, at + sizeof r) != 1 ||
                add_segment(j, at + sizeof r, ids, r.a_len / sizeof *ids, r.b_len) < 0) {
                free(ids);
                rc = mpm_err_set(err, -1, "cannot load journal '%s': out of memory or unreadable",
                                 j->path);
                break;
            }
            free(ids);
        } else if (r.type == MPM_J_INPUT) {
            char *line = malloc((size_t)r.a_len + 1);
            if (!line || pread_full(j->fd, line, (size_t)r.a_len, at + sizeof r) != 1) {
                free(line);
                break;
            }
            line[r.a_len] = 0;
            free(recorded[r.input]);
            recorded[r.input] = line;
            /* The input changed here: what was recorded of it before is void. */
            for (size_t k = 0; k < j->n; k++)
                if (j->v[k].input == r.input) j->v[k].state = 0;
        } else {
            mpm_jentry_t e = {.input = r.input,
                              .state = (int)r.type,
                              .attempts = r.attempts,
                              .offset = r.offset,
                              .len = r.len,
                              .pos = at + sizeof r,
                              .rows_len = r.a_len,
                              .part_len = r.b_len};
            if (put_entry(j, &e) < 0) {
                rc = mpm_err_set(err, -1, "out of memory");
                break;
            }
        }
        at += sizeof r + r.a_len + r.b_len;
    }
    free(buf);
    if (rc) return rc;
    if (at < file_size) {
        j->st.torn_at = at;
        j->st.torn_bytes = file_size - at;
        if (ftruncate(j->fd, (off_t)at) < 0 || fsync(j->fd) < 0)
            return mpm_err_set(err, -1, "cannot cut the torn end of journal '%s': %s", j->path,
                               strerror(errno));
    }
    j->size = at;
    return 0;
}

int mpm__journal_open(mpm_journal_t **jp, const char *path, int resume, const char *global,
                      char *const *inputs, const char *const *names, int n, double sync_interval,
                      mpm_err_t *err)
{
    *jp = NULL;
    mpm_journal_t *j = calloc(1, sizeof *j);
    char **recorded = calloc((size_t)(n > 0 ? n : 1), sizeof *recorded);
    if (!j || !recorded || !(j->path = strdup(path))) {
        free(j);
        free(recorded);
        return mpm_err_set(err, -1, "out of memory");
    }
    j->fd = -1;
    j->interval = sync_interval;
    j->last_sync = mpm__now();
    int rc = 0;
    struct stat st;
    if (stat(path, &st) < 0) {
        if (errno != ENOENT) {
            rc = mpm_err_set(err, -1, "cannot open journal '%s': %s", path, strerror(errno));
        } else {
            rc = create_journal(j, global, inputs, n, err);
        }
        goto out;
    }
    if (!resume) {
        rc = mpm_err_set(err, -1,
                         "journal '%s' exists from an earlier run: pass --resume to continue it, "
                         "or delete it to start over",
                         path);
        rc = -2;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = mpm_err_set(err, -1, "journal '%s' is not a regular file", path);
        rc = -2;
        goto out;
    }
    j->fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
    if (j->fd < 0) {
        rc = mpm_err_set(err, -1, "cannot open journal '%s': %s", path, strerror(errno));
        goto out;
    }
    {
        size_t want = (uint64_t)st.st_size < MAX_HEADER ? (size_t)st.st_size : MAX_HEADER;
        char *text = malloc(want + 1);
        if (!text) {
            rc = mpm_err_set(err, -1, "out of memory");
            goto out;
        }
        if (pread_full(j->fd, text, want, 0) != 1) {
            free(text);
            rc = mpm_err_set(err, -1, "cannot read journal '%s': %s", path,
                             errno ? strerror(errno) : "unexpected end of file");
            goto out;
        }
        long hl = check_header(j, text, want, global, n, recorded, err);
        free(text);
        if (hl < 0) {
            rc = hl == -2 ? -2 : -1;
            goto out;
        }
        j->size = (uint64_t)hl;
    }
    rc = load_records(j, (uint64_t)st.st_size, recorded, n, err);
    if (rc) goto out;
    /* Inputs that changed since they were recorded. */
    for (int i = 0; i < n; i++) {
        if (!strcmp(recorded[i], inputs[i])) continue;
        uint64_t done = 0;
        for (size_t k = 0; k < j->n; k++) done += j->v[k].input == i && j->v[k].state == MPM_J_DONE;
        if (done) {
            mpm_err_set(err, -1,
                        "input '%s' changed since journal '%s' recorded %llu finished chunk%s of "
                        "it (recorded: %s; now: %s): delete the journal to start over",
                        names[i], path, (unsigned long long)done, done == 1 ? "" : "s",
                        recorded[i], inputs[i]);
            rc = -2;
            goto out;
        }
        /* Only failures of it were recorded: forget them, note the new state. */
        for (size_t k = 0; k < j->n; k++)
            if (j->v[k].input == i) j->v[k].state = 0;
        if (mpm__journal_append(j, MPM_J_INPUT, 0, i, 0, 0, 0, inputs[i], strlen(inputs[i]), NULL,
                                0, err) < 0) {
            rc = -1;
            goto out;
        }
    }
    for (size_t k = 0; k < j->n; k++) {
        j->st.done += j->v[k].state == MPM_J_DONE;
        j->st.failed += j->v[k].state == MPM_J_FAILED;
    }
out:
    for (int i = 0; i < n; i++) free(recorded[i]);
    free(recorded);
    if (rc) {
        mpm_err_t ignore;
        mpm__journal_close(j, &ignore);
        return rc;
    }
    *jp = j;
    return 0;
}

const mpm_journal_stats_t *mpm__journal_stats(const mpm_journal_t *j) { return &j->st; }

int mpm__journal_read_at(mpm_journal_t *j, uint64_t pos, void *dst, size_t n, mpm_err_t *err)
{
    int r = pread_full(j->fd, dst, n, pos);
    if (r != 1)
        return mpm_err_set(err, -1, "cannot read journal '%s': %s", j->path,
                           r < 0 ? strerror(errno) : "the file shrank");
    return 0;
}

int mpm__journal_read(mpm_journal_t *j, const mpm_jentry_t *e, uint64_t at, void *dst, size_t n,
                      mpm_err_t *err)
{
    if (at + n > e->rows_len + e->part_len)
        return mpm_err_set(err, -1, "journal '%s': read past a record", j->path);
    int r = pread_full(j->fd, dst, n, e->pos + at);
    if (r != 1)
        return mpm_err_set(err, -1, "cannot read journal '%s': %s", j->path,
                           r < 0 ? strerror(errno) : "the file shrank");
    return 0;
}

int mpm__journal_append(mpm_journal_t *j, int type, uint64_t index, int input, uint64_t offset,
                        uint64_t len, uint32_t attempts, const void *a, size_t a_len,
                        const void *b, size_t b_len, mpm_err_t *err)
{
    rec_t r = {.magic = REC_MAGIC,
               .type = (uint32_t)type,
               .index = index,
               .input = input,
               .attempts = attempts,
               .offset = offset,
               .len = len,
               .a_len = a_len,
               .b_len = b_len,
               .hash = 0};
    XXH64_state_t *hs = XXH64_createState();
    if (!hs) return mpm_err_set(err, -1, "out of memory");
    XXH64_reset(hs, 0);
    XXH64_update(hs, &r, sizeof r);
    if (a_len) XXH64_update(hs, a, a_len);
    if (b_len) XXH64_update(hs, b, b_len);
    r.hash = XXH64_digest(hs);
    XXH64_freeState(hs);
    /* One writev: the record reaches the file in one piece unless the
     * system dies in the middle, which the hash detects. */
    struct iovec iov[3] = {{&r, sizeof r}, {(void *)a, a_len}, {(void *)b, b_len}};
    size_t total = sizeof r + a_len + b_len, done = 0;
    int k = 0;
    while (done < total) {
        while (k < 3 && iov[k].iov_len == 0) k++;
        ssize_t w = writev(j->fd, iov + k, 3 - k);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            int e = errno;
            /* Leave no partial record behind for the next append to follow. */
            if (ftruncate(j->fd, (off_t)j->size) < 0) {
            }
            return mpm_err_set(err, -1, "cannot write journal '%s': %s", j->path, strerror(e));
        }
        done += (size_t)w;
        size_t adv = (size_t)w;
        while (adv && k < 3) {
            if (adv >= iov[k].iov_len) {
                adv -= iov[k].iov_len;
                iov[k].iov_len = 0;
                k++;
            } else {
                iov[k].iov_base = (char *)iov[k].iov_base + adv;
                iov[k].iov_len -= adv;
                adv = 0;
            }
        }
    }
    if (type == MPM_J_SEGMENT) {
        if (add_segment(j, j->size + sizeof r, a, a_len / sizeof(mpm_jid_t), b_len) < 0)
            return mpm_err_set(err, -1, "out of memory");
    } else if (type != MPM_J_INPUT) {
        mpm_jentry_t e = {.input = input,
                          .state = type,
                          .attempts = attempts,
                          .offset = offset,
                          .len = len,
                          .pos = j->size + sizeof r,
                          .rows_len = a_len,
                          .part_len = b_len};
        if (put_entry(j, &e) < 0) return mpm_err_set(err, -1, "out of memory");
    }
    j->size += total;
    j->dirty = 1;
    return mpm__journal_sync(j, 0, err);
}

int mpm__journal_sync(mpm_journal_t *j, int force, mpm_err_t *err)
{
    if (!j || !j->dirty || j->fd < 0) return 0;
    double now = mpm__now();
    if (!force && now - j->last_sync < j->interval) return 0;
    if (fdatasync(j->fd) < 0)
        return mpm_err_set(err, -1, "cannot sync journal '%s': %s", j->path, strerror(errno));
    j->dirty = 0;
    j->last_sync = now;
    return 0;
}

int mpm__journal_close(mpm_journal_t *j, mpm_err_t *err)
{
    if (!j) return 0;
    int rc = mpm__journal_sync(j, 1, err);
    if (j->fd >= 0 && close(j->fd) < 0 && rc == 0)
        rc = mpm_err_set(err, -1, "cannot close journal '%s': %s", j->path, strerror(errno));
    free(j->path);
    free(j->v);
    free(j->slots);
    free(j->segs);
    free(j);
    return rc;
}
