/*
 * test_journal.c - unit tests of the chunk journal (journal.h).
 *
 * Records go in through mpm__journal_append and come back after a reopen
 * with resume; what every chunk should hold is kept here in plain arrays
 * (trec_t) and compared field by field and byte by byte. Damage is made by
 * hand: copies of the file cut at every byte of the last record, flipped
 * bytes, files that are not journals, fingerprints that differ from the one
 * the journal was written with, inputs that changed between runs, SEGMENT
 * records that must or must not be kept.
 *
 * Every test works in its own mkdtemp directory and removes it at the end.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"

#define TU_RNG_SEED 0x13198a2e03707344ULL
#include "testutil.h"

#define MAGIC_LINE "MPIMAP JOURNAL 1\n"
#define REC_HDR 64 /* bytes of a record header (journal.h: "a 64-byte header") */
#define SYNC_S 1.0

/* The run's fingerprint: global lines, then one line and one name per input.
 * The names appear in no input line, so a message naming one is told apart
 * from a message quoting the lines. */
#define GLOBAL "kernel wordcount\noption top=10\nchunk-size 4096\nformat tsv\ninputs 3\n"
#define GLOBAL_TOP20 "kernel wordcount\noption top=20\nchunk-size 4096\nformat tsv\ninputs 3\n"
#define GLOBAL_2IN "kernel wordcount\noption top=10\nchunk-size 4096\nformat tsv\ninputs 2\n"

static char in0[] = "file /data/one.txt size 10000 mtime 1700000001";
static char in1[] = "file /data/two.txt size 20000 mtime 1700000002";
static char in2[] = "file /data/three.txt size 30000 mtime 1700000003";
static char in3[] = "file /data/four.txt size 40000 mtime 1700000004";
static char in0_new[] = "file /data/one.txt size 10001 mtime 1700000101";
static char in1_new[] = "file /data/two.txt size 20001 mtime 1700000102";
static char in1_newer[] = "file /data/two.txt size 20002 mtime 1700000202";
static char *const inputs[4] = {in0, in1, in2, in3};
static const char *const names[4] = {"alpha.txt", "beta.txt", "gamma.txt", "delta.txt"};

static char tdir[64];

/* ---- helpers ------------------------------------------------------------------ */

static void td_new(void)
{
    snprintf(tdir, sizeof tdir, "/tmp/mpimap-journal-XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(tdir));
}

/* Removes the test directory and what the test left in it (files, empty dirs). */
static void td_remove(void)
{
    for (int pass = 0; pass < 2; pass++) {
        DIR *d = opendir(tdir);
        if (!d) break;
        struct dirent *de;
        char p[320];
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", tdir, de->d_name);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
                rmdir(p);
            else
                unlink(p);
        }
        closedir(d);
    }
    CU_ASSERT_EQUAL(rmdir(tdir), 0);
}

static void tpath(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", tdir, name);
}

static uint64_t fsize(const char *p)
{
    struct stat st;
    return stat(p, &st) < 0 ? UINT64_MAX : (uint64_t)st.st_size;
}

/* The whole file, malloc'd (at least 1 byte), in *n. */
static unsigned char *slurp(const char *p, size_t *n)
{
    *n = 0;
    FILE *f = fopen(p, "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    size_t cap = 1 << 16;
    unsigned char *b = malloc(cap);
    size_t r;
    while ((r = fread(b + *n, 1, cap - *n, f)) > 0) {
        *n += r;
        if (*n == cap) b = realloc(b, cap *= 2);
    }
    fclose(f);
    return b;
}

static void spit(const char *p, const void *d, size_t n)
{
    FILE *f = fopen(p, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    if (n) CU_ASSERT_EQUAL(fwrite(d, 1, n, f), n);
    CU_ASSERT_EQUAL(fclose(f), 0);
}

/* 1 if the file at p holds exactly want/wl. */
static int file_is(const char *p, const unsigned char *want, size_t wl)
{
    size_t n;
    unsigned char *b = slurp(p, &n);
    int ok = tu_same_bytes((const char *)b, n, (const char *)want, wl, p);
    free(b);
    return ok;
}

/* Names in the test directory: how many, and how many look like the
 * journal's temporary header files (".NAME.mpimap-XXXXXX"). */
static void dir_count(int *entries, int *temps)
{
    *entries = *temps = 0;
    DIR *d = opendir(tdir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        (*entries)++;
        if (de->d_name[0] == '.' || strstr(de->d_name, ".mpimap-")) (*temps)++;
    }
    closedir(d);
}

static int jopen(mpm_journal_t **j, const char *path, int resume, const char *global,
                 char *const *ins, int n, mpm_err_t *err)
{
    memset(err, 0, sizeof *err);
    err->offset = -1;
    *j = (mpm_journal_t *)1; /* must be reset to NULL on failure */
    return mpm__journal_open(j, path, resume, global, ins, names, n, SYNC_S, err);
}

static void jclose(mpm_journal_t *j)
{
    mpm_err_t err = {.offset = -1};
    int rc = mpm__journal_close(j, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc) fprintf(stderr, "\n  close: %s\n", err.msg);
}

static void expect_stats(const mpm_journal_t *j, uint64_t done, uint64_t failed, uint64_t torn_at,
                         uint64_t torn_bytes, int created)
{
    const mpm_journal_stats_t *st = mpm__journal_stats(j);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    CU_ASSERT_EQUAL(st->done, done);
    CU_ASSERT_EQUAL(st->failed, failed);
    CU_ASSERT_EQUAL(st->torn_at, torn_at);
    CU_ASSERT_EQUAL(st->torn_bytes, torn_bytes);
    CU_ASSERT_EQUAL(st->created, created);
    if (st->done != done || st->failed != failed || st->torn_at != torn_at ||
        st->torn_bytes != torn_bytes || st->created != created)
        fprintf(stderr,
                "\n  stats: done %llu failed %llu torn_at %llu torn_bytes %llu created %d; want "
                "%llu %llu %llu %llu %d\n",
                (unsigned long long)st->done, (unsigned long long)st->failed,
                (unsigned long long)st->torn_at, (unsigned long long)st->torn_bytes, st->created,
                (unsigned long long)done, (unsigned long long)failed, (unsigned long long)torn_at,
                (unsigned long long)torn_bytes, created);
}

/* ---- the expected records ------------------------------------------------------ */

typedef struct trec_s {
    int type, input;
    uint64_t offset, len;
    uint32_t attempts;
    unsigned char *a, *b; /* rows (or the failure's reason), partial */
    size_t al, bl;
} trec_t;

static unsigned char *rnd_bytes(size_t n)
{
    unsigned char *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(rnd() >> 56);
    return p;
}

/* A DONE record with random rows and partial of the given sizes. */
static trec_t done_rec(int input, uint64_t offset, uint32_t attempts, size_t al, size_t bl)
{
    trec_t r = {.type = MPM_J_DONE,
                .input = input,
                .offset = offset,
                .len = 4096 - (offset % 97) + (uint64_t)input,
                .attempts = attempts,
                .a = rnd_bytes(al),
                .b = rnd_bytes(bl),
                .al = al,
                .bl = bl};
    return r;
}

/* A FAILED record: the reason as text, no partial. */
static trec_t failed_rec(int input, uint64_t offset, uint32_t attempts, const char *why)
{
    size_t n = strlen(why);
    trec_t r = {.type = MPM_J_FAILED,
                .input = input,
                .offset = offset,
                .len = 4000 + offset % 13,
                .attempts = attempts,
                .a = malloc(n + 1),
                .b = malloc(1),
                .al = n,
                .bl = 0};
    memcpy(r.a, why, n + 1);
    return r;
}

static void rec_free(trec_t *r)
{
    free(r->a);
    free(r->b);
    r->a = r->b = NULL;
}

static size_t rec_bytes(const trec_t *r)
{
    return REC_HDR + r->al + r->bl;
}

static int put(mpm_journal_t *j, const trec_t *r)
{
    mpm_err_t err = {.offset = -1};
    static uint64_t index;
    int rc = mpm__journal_append(j, r->type, index++, r->input, r->offset, r->len, r->attempts,
                                 r->a, r->al, r->b, r->bl, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc) fprintf(stderr, "\n  append: %s\n", err.msg);
    return rc;
}

/* Checks that the journal's entry for r's chunk is r; its bytes too if bytes. */
static void check_rec(mpm_journal_t *j, const trec_t *r, int bytes)
{
    const mpm_jentry_t *e = mpm__journal_find(j, r->input, r->offset);
    CU_ASSERT_PTR_NOT_NULL(e);
    if (!e) {
        fprintf(stderr, "\n  chunk (%d, %llu) not found\n", r->input,
                (unsigned long long)r->offset);
        return;
    }
    int ok = e->state == r->type && e->input == r->input && e->offset == r->offset &&
             e->len == r->len && e->attempts == r->attempts && e->rows_len == r->al &&
             e->part_len == r->bl;
    CU_ASSERT_EQUAL(e->state, r->type);
    CU_ASSERT_EQUAL(e->input, r->input);
    CU_ASSERT_EQUAL(e->offset, r->offset);
    CU_ASSERT_EQUAL(e->len, r->len);
    CU_ASSERT_EQUAL(e->attempts, r->attempts);
    CU_ASSERT_EQUAL(e->rows_len, r->al);
    CU_ASSERT_EQUAL(e->part_len, r->bl);
    if (!ok) {
        fprintf(stderr,
                "\n  chunk (%d, %llu): state %d len %llu attempts %u rows %llu part %llu; want "
                "%d %llu %u %zu %zu\n",
                r->input, (unsigned long long)r->offset, e->state, (unsigned long long)e->len,
                e->attempts, (unsigned long long)e->rows_len, (unsigned long long)e->part_len,
                r->type, (unsigned long long)r->len, r->attempts, r->al, r->bl);
        return;
    }
    if (!bytes) return;
    mpm_err_t err = {.offset = -1, .msg = ""};
    size_t tot = r->al + r->bl;
    unsigned char *buf = malloc(tot + 1);
    int rc;
    if (r->al) {
        memset(buf, 0, r->al);
        CU_ASSERT_EQUAL(rc = mpm__journal_read(j, e, 0, buf, r->al, &err), 0);
        CU_ASSERT(memcmp(buf, r->a, r->al) == 0);
        if (rc)
            fprintf(stderr, "\n  read rows of (%d, %llu): %s\n", r->input,
                    (unsigned long long)r->offset, err.msg);
    }
    if (r->bl) {
        memset(buf, 0, r->bl);
        CU_ASSERT_EQUAL(rc = mpm__journal_read(j, e, e->rows_len, buf, r->bl, &err), 0);
        CU_ASSERT(memcmp(buf, r->b, r->bl) == 0);
        if (rc)
            fprintf(stderr, "\n  read partial of (%d, %llu): %s\n", r->input,
                    (unsigned long long)r->offset, err.msg);
    }
    if (r->al && r->bl) { /* one read across the rows/partial boundary */
        size_t from = r->al - 1;
        buf[0] = (unsigned char)~r->a[from];
        CU_ASSERT_EQUAL(mpm__journal_read(j, e, from, buf, 2, &err), 0);
        CU_ASSERT(buf[0] == r->a[from] && buf[1] == r->b[0]);
    }
    /* Reading past the payload is refused (it would read the next record). */
    CU_ASSERT_EQUAL(mpm__journal_read(j, e, tot, buf, 1, &err), -1);
    free(buf);
}

static void check(mpm_journal_t *j, const trec_t *r)
{
    check_rec(j, r, 1);
}

/* ---- tests ------------------------------------------------------------------- */

/* Create, append DONE and FAILED records of varied sizes, close, resume. */
static void test_roundtrip(void)
{
    td_new();
    char path[128];
    tpath(path, sizeof path, "journal");
    mpm_journal_t *j;
    mpm_err_t err;
    int rc = jopen(&j, path, 0, GLOBAL, inputs, 3, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    expect_stats(j, 0, 0, 0, 0, 1);
    CU_ASSERT_PTR_NULL(mpm__journal_find(j, 0, 0));

    /* The header: magic line, global lines, input lines, end line. */
    uint64_t size0 = fsize(path);
    {
        size_t n;
        unsigned char *h = slurp(path, &n);
        char want[1024];
        int wl = snprintf(want, sizeof want, "%s%sinput 0 %s\ninput 1 %s\ninput 2 %s\nend ",
                          MAGIC_LINE, GLOBAL, in0, in1, in2);
        CU_ASSERT_EQUAL(n, size0);
        CU_ASSERT_EQUAL(n, (size_t)wl + 16 + 1);
        CU_ASSERT(n >= (size_t)wl && memcmp(h, want, (size_t)wl) == 0);
        CU_ASSERT(n > 0 && h[n - 1] == '\n');
        free(h);
    }

    trec_t w[] = {
        done_rec(0, 0, 1, 0, 0),                           /* 0: empty rows and partial */
        done_rec(0, 4096, 1, 5, 0),                        /* 1: a few bytes of rows */
        done_rec(1, 0, 1, 100000, 3),                      /* 2: ~100 KB rows, tiny partial */
        done_rec(1, 4096, 2, 0, 100 * 1024 + 17),          /* 3: no rows, ~100 KB partial */
        failed_rec(2, 0, 3, "map: bad record at byte 12"), /* 4 */
        failed_rec(2, 8192, 1, "first failure"),           /* 5: replaced by 6 */
        done_rec(2, 8192, 2, 50, 8),                       /* 6: FAILED then DONE -> DONE */
        done_rec(0, 8192, 1, 20, 0),                       /* 7: stays */
        failed_rec(0, 8192, 2, "late failure"),            /* 8: DONE then FAILED -> DONE (7) */
        failed_rec(1, 8192, 1, "f1"),                      /* 9: replaced by 10 */
        failed_rec(1, 8192, 2, "f2, a longer reason"),     /* 10 */
        done_rec(2, 1ULL << 40, 1, 5, 5),                  /* 11: a 64-bit offset */
        done_rec(0, 12288, 1, 3, 3),                       /* 12: replaced by 13 */
        done_rec(0, 12288, 4, 9, 1),                       /* 13: DONE then DONE -> the later */
    };
    const int nw = (int)(sizeof w / sizeof *w);
    static const int final[] = {0, 1, 2, 3, 4, 6, 7, 10, 11, 13};
    const int nf = (int)(sizeof final / sizeof *final);
    uint64_t total = size0;
    for (int i = 0; i < nw; i++) {
        put(j, &w[i]);
        total += rec_bytes(&w[i]);
        CU_ASSERT_EQUAL(fsize(path), total); /* written at once, not buffered */
    }
    /* The entries (their bytes are read back in this session in
     * test_read_in_creating_session). */
    for (int i = 0; i < nf; i++)
        check_rec(j, &w[final[i]], 0);
    CU_ASSERT_EQUAL(mpm__journal_sync(j, 1, &err), 0);
    jclose(j);
    CU_ASSERT_EQUAL(fsize(path), total);

    rc = jopen(&j, path, 1, GLOBAL, inputs, 3, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    expect_stats(j, 8, 2, 0, 0, 0);
    for (int i = 0; i < nf; i++)
        check(j, &w[final[i]]);
    /* Unknown chunks, including neighbours and the same offset in another input. */
    CU_ASSERT_PTR_NULL(mpm__journal_find(j, 0, 1));
    CU_ASSERT_PTR_NULL(mpm__journal_find(j, 0, 4095));
    CU_ASSERT_PTR_NULL(mpm__journal_find(j, 1, 12288));
    CU_ASSERT_PTR_NULL(mpm__journal_find(j, 2, 4096));
    CU_ASSERT_PTR_NULL(mpm__journal_find(j, 0, 1ULL << 40));
    CU_ASSERT_PTR_NULL(mpm__journal_find(j, 3, 0));
    CU_ASSERT_PTR_NULL(mpm__journal_find(j, -1, 0));
    CU_ASSERT_EQUAL(fsize(path), total); /* resuming a sound journal writes nothing */

    /* Appends after a resume land after the loaded records. */
    trec_t more[] = {done_rec(1, 12288, 1, 777, 33), failed_rec(2, 4096, 5, "timeout")};
    for (int i = 0; i < 2; i++) {
        put(j, &more[i]);
        total += rec_bytes(&more[i]);
    }
    for (int i = 0; i < 2; i++)
        check(j, &more[i]);
    jclose(j);
    CU_ASSERT_EQUAL(fsize(path), total);

    rc = jopen(&j, path, 1, GLOBAL, inputs, 3, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    expect_stats(j, 9, 3, 0, 0, 0);
    for (int i = 0; i < nf; i++)
        check(j, &w[final[i]]);
    for (int i = 0; i < 2; i++)
        check(j, &more[i]);
    jclose(j);

    for (int i = 0; i < nw; i++)
        rec_free(&w[i]);
    for (int i = 0; i < 2; i++)
        rec_free(&more[i]);
    td_remove();
}

/* Thousands of chunks: the lookup table grows while loading and appending. */
static void test_many_chunks(void)
{
    td_new();
    char path[128];
    tpath(path, sizeof path, "journal");
    enum { N = 5000 };
    trec_t *r = malloc(N * sizeof *r);
    mpm_journal_t *j;
    mpm_err_t err;
    CU_ASSERT_EQUAL_FATAL(jopen(&j, path, 0, GLOBAL, inputs, 3, &err), 0);
    for (int k = 0; k < N; k++) {
        uint64_t off = (uint64_t)(k / 3) * 4096;
        if (k % 10 == 9)
            r[k] = failed_rec(k % 3, off, (uint32_t)(k % 4 + 1), "some reason");
        else
            r[k] = done_rec(k % 3, off, 1, (size_t)(k % 41), (size_t)(k % 5));
        put(j, &r[k]);
    }
    int bad = 0;
    for (int k = 0; k < N; k++) {
        const mpm_jentry_t *e = mpm__journal_find(j, k % 3, (uint64_t)(k / 3) * 4096);
        bad += !e || e->state != r[k].type || e->rows_len != r[k].al;
    }
    CU_ASSERT_EQUAL(bad, 0);
    jclose(j);

    CU_ASSERT_EQUAL_FATAL(jopen(&j, path, 1, GLOBAL, inputs, 3, &err), 0);
    expect_stats(j, N - N / 10, N / 10, 0, 0, 0);
    for (int k = 0; k < N; k += 7)
        check(j, &r[k]);
    bad = 0;
    for (int k = 0; k < N; k++) {
        const mpm_jentry_t *e = mpm__journal_find(j, k % 3, (uint64_t)(k / 3) * 4096);
        bad += !e || e->state != r[k].type || e->offset != r[k].offset || e->input != r[k].input ||
               e->len != r[k].len || e->part_len != r[k].bl;
        bad += mpm__journal_find(j, k % 3, (uint64_t)(k / 3) * 4096 + 1) != NULL;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_PTR_NULL(mpm__journal_find(j, 0, (uint64_t)(N / 3 + 1) * 4096));
    jclose(j);
    for (int k = 0; k < N; k++)
        rec_free(&r[k]);
    free(r);
    td_remove();
}

/* The last record cut at every byte: it is dropped, the rest kept, the file
 * cut back to the record boundary, and appending works afterwards. */
static void test_torn_every_offset(void)
{
    td_new();
    char path[128], copy[128];
    tpath(path, sizeof path, "journal");
    tpath(copy, sizeof copy, "copy");
    mpm_journal_t *j;
    mpm_err_t err;
    CU_ASSERT_EQUAL_FATAL(jopen(&j, path, 0, GLOBAL, inputs, 3, &err), 0);
    trec_t early[] = {done_rec(0, 0, 1, 10, 4), failed_rec(1, 0, 2, "bad input"),
                      done_rec(1, 4096, 1, 0, 0), done_rec(2, 0, 1, 1000, 0)};
    enum { NE = 4 };
    for (int i = 0; i < NE; i++)
        put(j, &early[i]);
    uint64_t boundary = fsize(path);
    trec_t last = done_rec(2, 4096, 3, 400, 250);
    put(j, &last);
    jclose(j);
    size_t full_len;
    unsigned char *full = slurp(path, &full_len);
    CU_ASSERT_EQUAL_FATAL(full_len, boundary + rec_bytes(&last));

    trec_t extra = done_rec(0, 1 << 20, 1, 33, 7);
    int opened = 0, cut_back = 0, reopened = 0;
    for (size_t cut = (size_t)boundary; cut < full_len; cut++) {
        unlink(copy);
        spit(copy, full, cut);
        int rc = jopen(&j, copy, 1, GLOBAL, inputs, 3, &err);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc) {
            fprintf(stderr, "\n  cut at %zu: %s\n", cut, err.msg);
            continue;
        }
        opened++;
        expect_stats(j, 3, 1, cut > boundary ? boundary : 0, cut - boundary, 0);
        CU_ASSERT_PTR_NULL(mpm__journal_find(j, last.input, last.offset));
        for (int i = 0; i < NE; i++)
            check(j, &early[i]);
        /* Cut back to the boundary, the bytes before it untouched. */
        if (fsize(copy) == boundary && file_is(copy, full, (size_t)boundary)) cut_back++;
        put(j, &extra);
        check(j, &extra);
        jclose(j);
        CU_ASSERT_EQUAL(fsize(copy), boundary + rec_bytes(&extra));

        rc = jopen(&j, copy, 1, GLOBAL, inputs, 3, &err);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc) continue;
        reopened++;
        expect_stats(j, 4, 1, 0, 0, 0);
        check(j, &extra);
        CU_ASSERT_PTR_NULL(mpm__journal_find(j, last.input, last.offset));
        for (int i = 0; i < NE; i++)
            check(j, &early[i]);
        jclose(j);
    }
    size_t cuts = full_len - (size_t)boundary;
    CU_ASSERT_EQUAL(opened, (int)cuts);
    CU_ASSERT_EQUAL(cut_back, (int)cuts);
    CU_ASSERT_EQUAL(reopened, (int)cuts);

    /* The whole file is sound: nothing is cut. */
    CU_ASSERT_EQUAL_FATAL(jopen(&j, path, 1, GLOBAL, inputs, 3, &err), 0);
    expect_stats(j, 4, 1, 0, 0, 0);
    check(j, &last);
    jclose(j);

    free(full);
    for (int i = 0; i < NE; i++)
        rec_free(&early[i]);
    rec_free(&last);
    rec_free(&extra);
    td_remove();
}

/* A flipped byte in an earlier record ends the journal there. */
static void test_flipped_byte(void)
{
    td_new();
    char path[128], copy[128];
    tpath(path, sizeof path, "journal");
    tpath(copy, sizeof copy, "copy");
    mpm_journal_t *j;
    mpm_err_t err;
    CU_ASSERT_EQUAL_FATAL(jopen(&j, path, 0, GLOBAL, inputs, 3, &err), 0);
    enum { NR = 5 };
    trec_t r[NR] = {done_rec(0, 0, 1, 300, 20), done_rec(0, 4096, 1, 200, 0),
                    done_rec(1, 0, 1, 250, 50), failed_rec(1, 4096, 2, "why it failed"),
                    done_rec(2, 0, 1, 100, 100)};
    uint64_t pos[NR];
    for (int i = 0; i < NR; i++) {
        pos[i] = fsize(path);
        put(j, &r[i]);
    }
    jclose(j);
    size_t full_len;
    unsigned char *full = slurp(path, &full_len);

    /* (record, byte inside it): payload rows, partial, header fields, hash. */
    static const struct {
        int rec;
        size_t at;
    } flips[] = {{2, REC_HDR + 10},
                 {2, REC_HDR + 250 + 5}, /* rows, partial */
                 {2, 0},                 /* magic */
                 {2, 4},                 /* type */
                 {2, 8},                 /* index */
                 {2, 16},                /* input (1 -> 0, still a valid input) */
                 {2, 24},                /* offset */
                 {2, 32},                /* len */
                 {2, 40},                /* rows length */
                 {2, 56},                /* hash */
                 {4, REC_HDR + 199},     /* last byte of the last record */
                 {0, REC_HDR},           /* first payload byte of the first record */
                 {3, REC_HDR + 3}};      /* a FAILED record's reason */
    for (size_t f = 0; f < sizeof flips / sizeof *flips; f++) {
        int k = flips[f].rec;
        unlink(copy);
        unsigned char *d = malloc(full_len);
        memcpy(d, full, full_len);
        d[pos[k] + flips[f].at] ^= 0x01;
        spit(copy, d, full_len);
        free(d);
        int rc = jopen(&j, copy, 1, GLOBAL, inputs, 3, &err);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc) {
            fprintf(stderr, "\n  flip %zu: %s\n", f, err.msg);
            continue;
        }
        uint64_t done = 0, failed = 0;
        for (int i = 0; i < k; i++) {
            check(j, &r[i]);
            done += r[i].type == MPM_J_DONE;
            failed += r[i].type == MPM_J_FAILED;
        }
        for (int i = k; i < NR; i++)
            CU_ASSERT_PTR_NULL(mpm__journal_find(j, r[i].input, r[i].offset));
        expect_stats(j, done, failed, pos[k], full_len - pos[k], 0);
        CU_ASSERT_EQUAL(fsize(copy), pos[k]);
        jclose(j);
    }
    free(full);
    for (int i = 0; i < NR; i++)
        rec_free(&r[i]);
    td_remove();
}

/* Journals that must not be resumed by this run, and files that are not journals. */
static void test_refusals(void)
{
    td_new();
    char path[128], other[128];
    tpath(path, sizeof path, "journal");
    mpm_journal_t *j;
    mpm_err_t err;
    CU_ASSERT_EQUAL_FATAL(jopen(&j, path, 0, GLOBAL, inputs, 3, &err), 0);
    trec_t r = done_rec(0, 0, 1, 40, 0);
    put(j, &r);
    jclose(j);
    size_t jl;
    unsigned char *jbytes = slurp(path, &jl);

    /* Exists, no resume. */
    int rc = jopen(&j, path, 0, GLOBAL, inputs, 3, &err);
    CU_ASSERT_EQUAL(rc, -2);
    CU_ASSERT_PTR_NULL(j);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "--resume"));
    CU_ASSERT(file_is(path, jbytes, jl));

    /* A different global line: both lines are quoted. */
    rc = jopen(&j, path, 1, GLOBAL_TOP20, inputs, 3, &err);
    CU_ASSERT_EQUAL(rc, -2);
    CU_ASSERT_PTR_NULL(j);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'option top=10'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'option top=20'"));
    CU_ASSERT(file_is(path, jbytes, jl));

    /* A different number of inputs: with the count among the global lines
     * (as the engine does), and without it (only the input lines differ). */
    rc = jopen(&j, path, 1, GLOBAL_2IN, inputs, 2, &err);
    CU_ASSERT_EQUAL(rc, -2);
    CU_ASSERT_PTR_NULL(j);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'inputs 3'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'inputs 2'"));
    for (int n = 2; n <= 4; n += 2) {
        rc = jopen(&j, path, 1, GLOBAL, inputs, n, &err);
        CU_ASSERT(rc < 0);
        CU_ASSERT_PTR_NULL(j);
        CU_ASSERT(err.msg[0] != 0);
        CU_ASSERT(file_is(path, jbytes, jl));
    }

    /* A damaged header (one hex digit of its hash changed). */
    {
        tpath(other, sizeof other, "damaged");
        unsigned char *d = malloc(jl);
        memcpy(d, jbytes, jl);
        size_t hdr = jl - rec_bytes(&r); /* the header ends with "end <16 hex>\n" */
        CU_ASSERT_FATAL(hdr > 21 && !memcmp(d + hdr - 21, "end ", 4));
        d[hdr - 2] = d[hdr - 2] == '0' ? '1' : '0';
        spit(other, d, jl);
        rc = jopen(&j, other, 1, GLOBAL, inputs, 3, &err);
        CU_ASSERT_EQUAL(rc, -1);
        CU_ASSERT_PTR_NULL(j);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "damaged"));
        CU_ASSERT(file_is(other, d, jl));
        free(d);
    }

    /* Not journals: random text, text after a right magic line, an empty file. */
    {
        size_t tl = 5000;
        unsigned char *t = malloc(tl);
        for (size_t i = 0; i < tl; i++) {
            uint64_t x = rnd() % 32;
            t[i] = x == 0 ? '\n' : x == 1 ? ' ' : (unsigned char)('a' + x % 26);
        }
        tpath(other, sizeof other, "text.txt");
        spit(other, t, tl);
        rc = jopen(&j, other, 1, GLOBAL, inputs, 3, &err);
        CU_ASSERT(rc < 0);
        CU_ASSERT_PTR_NULL(j);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not an mpimap journal"));
        CU_ASSERT(file_is(other, t, tl));

        memcpy(t, MAGIC_LINE, strlen(MAGIC_LINE));
        tpath(other, sizeof other, "magic.txt");
        spit(other, t, tl);
        rc = jopen(&j, other, 1, GLOBAL, inputs, 3, &err);
        CU_ASSERT(rc < 0);
        CU_ASSERT_PTR_NULL(j);
        CU_ASSERT(file_is(other, t, tl));

        tpath(other, sizeof other, "empty");
        spit(other, t, 0);
        rc = jopen(&j, other, 1, GLOBAL, inputs, 3, &err);
        CU_ASSERT(rc < 0);
        CU_ASSERT_PTR_NULL(j);
        CU_ASSERT_EQUAL(fsize(other), 0);
        free(t);
    }

    /* A directory where the journal should be. */
    tpath(other, sizeof other, "dir");
    CU_ASSERT_EQUAL_FATAL(mkdir(other, 0700), 0);
    rc = jopen(&j, other, 1, GLOBAL, inputs, 3, &err);
    CU_ASSERT(rc < 0);
    CU_ASSERT_PTR_NULL(j);
    rc = jopen(&j, other, 0, GLOBAL, inputs, 3, &err);
    CU_ASSERT_EQUAL(rc, -2);
    CU_ASSERT_PTR_NULL(j);

    /* Resume of a missing journal creates it. */
    tpath(other, sizeof other, "new-journal");
    rc = jopen(&j, other, 1, GLOBAL, inputs, 3, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    expect_stats(j, 0, 0, 0, 0, 1);
    CU_ASSERT(fsize(other) != UINT64_MAX && fsize(other) > 0);
    put(j, &r);
    jclose(j);
    rc = jopen(&j, other, 1, GLOBAL, inputs, 3, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    expect_stats(j, 1, 0, 0, 0, 0);
    check(j, &r);
    jclose(j);

    /* After all of that, the original journal still resumes as written. */
    CU_ASSERT(file_is(path, jbytes, jl));
    rc = jopen(&j, path, 1, GLOBAL, inputs, 3, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    expect_stats(j, 1, 0, 0, 0, 0);
    check(j, &r);
    jclose(j);

    free(jbytes);
    rec_free(&r);
    td_remove();
}

/* An input whose line changed: refused when the journal finished a chunk of
 * it, accepted (its failures forgotten) when it only failed. */
static void test_changed_input(void)
{
    td_new();
    char path[128];
    tpath(path, sizeof path, "journal");
    mpm_journal_t *j;
    mpm_err_t err;
    CU_ASSERT_EQUAL_FATAL(jopen(&j, path, 0, GLOBAL, inputs, 3, &err), 0);
    trec_t r[] = {done_rec(0, 0, 1, 30, 2), failed_rec(1, 0, 2, "bad record"),
                  failed_rec(1, 4096, 1, "timeout"), done_rec(2, 0, 1, 12, 0),
                  failed_rec(2, 4096, 3, "crash")};
    const int nr = (int)(sizeof r / sizeof *r);
    for (int i = 0; i < nr; i++)
        put(j, &r[i]);
    jclose(j);
    uint64_t size_a = fsize(path);

    /* Input 0 (a finished chunk) changed: refused, naming it, nothing written. */
    char *ins0[3] = {in0_new, in1, in2};
    int rc = jopen(&j, path, 1, GLOBAL, ins0, 3, &err);
    CU_ASSERT_EQUAL(rc, -2);
    CU_ASSERT_PTR_NULL(j);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "alpha.txt"));
    CU_ASSERT_PTR_NULL(strstr(err.msg, "beta.txt"));
    CU_ASSERT_EQUAL(fsize(path), size_a);

    /* Input 1 (only failures) changed: accepted; its failures are forgotten,
     * and an INPUT record with the new line is appended. */
    char *ins1[3] = {in0, in1_new, in2};
    rc = jopen(&j, path, 1, GLOBAL, ins1, 3, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    expect_stats(j, 2, 1, 0, 0, 0);
    for (int k = 0; k < 2; k++) {
        const mpm_jentry_t *e = mpm__journal_find(j, 1, (uint64_t)k * 4096);
        CU_ASSERT(!e || (e->state != MPM_J_DONE && e->state != MPM_J_FAILED));
    }
    check(j, &r[0]);
    check(j, &r[3]);
    check(j, &r[4]);
    jclose(j);
    uint64_t size_b = fsize(path);
    CU_ASSERT_EQUAL(size_b, size_a + REC_HDR + strlen(in1_new));
    {
        size_t n;
        unsigned char *b = slurp(path, &n);
        CU_ASSERT(n == size_b && n >= strlen(in1_new) &&
                  !memcmp(b + n - strlen(in1_new), in1_new, strlen(in1_new)));
        free(b);
    }

    /* Reopened with the new line: accepted as is (the INPUT record holds the
     * line), nothing appended, and the failures of the old input stay forgotten. */
    rc = jopen(&j, path, 1, GLOBAL, ins1, 3, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(fsize(path), size_b);
    expect_stats(j, 2, 1, 0, 0, 0);
    for (int k = 0; k < 2; k++) {
        const mpm_jentry_t *e = mpm__journal_find(j, 1, (uint64_t)k * 4096);
        int stale = e && e->state == MPM_J_FAILED;
        CU_ASSERT(!stale);
        if (stale)
            fprintf(stderr,
                    "\n  chunk (1, %d): the failure recorded before input 1 changed is "
                    "back (attempts %u) after the second resume\n",
                    k * 4096, e->attempts);
    }
    check(j, &r[0]);
    check(j, &r[3]);
    check(j, &r[4]);

    /* Input 1 now finishes a chunk: from then on a change of it is refused. */
    trec_t d1 = done_rec(1, 0, 1, 64, 0);
    put(j, &d1);
    jclose(j);
    uint64_t size_c = fsize(path);
    char *ins2[3] = {in0, in1_newer, in2};
    rc = jopen(&j, path, 1, GLOBAL, ins2, 3, &err);
    CU_ASSERT_EQUAL(rc, -2);
    CU_ASSERT_PTR_NULL(j);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "beta.txt"));
    CU_ASSERT_PTR_NULL(strstr(err.msg, "alpha.txt"));
    CU_ASSERT_EQUAL(fsize(path), size_c);
    rc = jopen(&j, path, 1, GLOBAL, inputs, 3, &err); /* the original line: changed too */
    CU_ASSERT_EQUAL(rc, -2);
    CU_ASSERT_PTR_NULL(j);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "beta.txt"));

    rc = jopen(&j, path, 1, GLOBAL, ins1, 3, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    check(j, &d1);
    check(j, &r[0]);
    CU_ASSERT_EQUAL(mpm__journal_stats(j)->done, 3);
    jclose(j);

    for (int i = 0; i < nr; i++)
        rec_free(&r[i]);
    rec_free(&d1);
    td_remove();
}

/* SEGMENT records (reduced kernels): a segment lists the identities of the
 * chunks whose partial it holds, then that partial. It is kept only when
 * every chunk it lists has a DONE record before it (same length), and then
 * marks them covered; one that is not kept does not end the journal. */
static void seg_put(mpm_journal_t *j, const mpm_jid_t *ids, size_t n, const unsigned char *part,
                    size_t pl)
{
    mpm_err_t err = {.offset = -1, .msg = ""};
    int rc =
        mpm__journal_append(j, MPM_J_SEGMENT, 0, 0, 0, 0, 0, ids, n * sizeof *ids, part, pl, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc) fprintf(stderr, "\n  append segment: %s\n", err.msg);
}

/* Segment i is at pos, lists ids[0..n) and holds part. */
static void seg_check(mpm_journal_t *j, size_t i, uint64_t pos, const mpm_jid_t *ids, size_t n,
                      const unsigned char *part, size_t pl)
{
    const mpm_jsegment_t *sg = mpm__journal_segment(j, i);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sg);
    CU_ASSERT_EQUAL(sg->pos, pos);
    CU_ASSERT_EQUAL(sg->n, n);
    CU_ASSERT_EQUAL(sg->part_len, pl);
    if (sg->n != n || sg->part_len != pl) return;
    mpm_err_t err = {.offset = -1, .msg = ""};
    mpm_jid_t *got = malloc(n * sizeof *got + 1);
    CU_ASSERT_EQUAL(mpm__journal_read_at(j, sg->pos, got, n * sizeof *got, &err), 0);
    for (size_t k = 0; k < n; k++)
        CU_ASSERT(got[k].input == ids[k].input && got[k].offset == ids[k].offset &&
                  got[k].len == ids[k].len);
    free(got);
    unsigned char *b = malloc(pl + 1);
    CU_ASSERT_EQUAL(mpm__journal_read_at(j, sg->pos + n * sizeof(mpm_jid_t), b, pl, &err), 0);
    CU_ASSERT(memcmp(b, part, pl) == 0);
    free(b);
}

static int covered(const mpm_journal_t *j, int input, uint64_t offset)
{
    const mpm_jentry_t *e = mpm__journal_find(j, input, offset);
    return e ? e->covered : -1;
}

static mpm_jid_t jid(const trec_t *r)
{
    return (mpm_jid_t){.input = r->input, .offset = r->offset, .len = r->len};
}

static void test_segments(void)
{
    td_new();
    char path[128], copy[128];
    tpath(path, sizeof path, "journal");
    tpath(copy, sizeof copy, "copy");
    mpm_journal_t *j;
    mpm_err_t err;
    CU_ASSERT_EQUAL_FATAL(jopen(&j, path, 0, GLOBAL, inputs, 3, &err), 0);
    CU_ASSERT_EQUAL(mpm__journal_nsegments(j), 0);
    CU_ASSERT_PTR_NULL(mpm__journal_segment(j, 0));

    /* Chunks of a reduced run: rows only, their partials go to segments. */
    trec_t d[] = {done_rec(0, 0, 1, 40, 0),   done_rec(0, 4096, 1, 0, 0),
                  done_rec(1, 0, 1, 17, 0),   done_rec(2, 0, 1, 5, 0),
                  done_rec(1, 4096, 1, 9, 0), done_rec(2, 8192, 1, 3, 0),
                  done_rec(2, 12288, 1, 8, 0)};
    trec_t f = failed_rec(2, 4096, 1, "crash");
    for (int i = 0; i < 4; i++)
        put(j, &d[i]);
    put(j, &f);

    /* Segment 0: chunks 0..2, kept. */
    mpm_jid_t s0[3] = {jid(&d[0]), jid(&d[1]), jid(&d[2])};
    unsigned char *p0 = rnd_bytes(500);
    uint64_t pos0 = fsize(path) + REC_HDR;
    seg_put(j, s0, 3, p0, 500);
    CU_ASSERT_EQUAL(mpm__journal_nsegments(j), 1);
    seg_check(j, 0, pos0, s0, 3, p0, 500);
    CU_ASSERT_PTR_NULL(mpm__journal_segment(j, 1));
    CU_ASSERT_EQUAL(covered(j, 0, 0), 1);
    CU_ASSERT_EQUAL(covered(j, 0, 4096), 1);
    CU_ASSERT_EQUAL(covered(j, 1, 0), 1);
    CU_ASSERT_EQUAL(covered(j, 2, 0), 0);

    /* Not kept: a chunk without any record, a FAILED chunk, a chunk whose
     * length differs, a chunk whose DONE comes only after the segment. */
    mpm_jid_t bad1[2] = {jid(&d[3]), {.input = 2, .offset = 16384, .len = 4096}};
    mpm_jid_t bad2[2] = {jid(&d[3]), jid(&f)};
    mpm_jid_t bad3[1] = {jid(&d[3])};
    bad3[0].len++;
    mpm_jid_t bad4[2] = {jid(&d[3]), jid(&d[4])};
    unsigned char *pb = rnd_bytes(64);
    seg_put(j, bad1, 2, pb, 64);
    seg_put(j, bad2, 2, pb, 64);
    seg_put(j, bad3, 1, pb, 64);
    seg_put(j, bad4, 2, pb, 64);
    put(j, &d[4]);
    CU_ASSERT_EQUAL(mpm__journal_nsegments(j), 1);
    CU_ASSERT_EQUAL(covered(j, 2, 0), 0);
    CU_ASSERT_EQUAL(covered(j, 1, 4096), 0);

    /* Segment 1: chunks 3 and 4, now both DONE, and an empty partial. */
    mpm_jid_t s1[2] = {jid(&d[4]), jid(&d[3])};
    uint64_t pos1 = fsize(path) + REC_HDR;
    seg_put(j, s1, 2, p0, 0);
    /* Segment 2: chunk 5, the last record of the file. */
    put(j, &d[5]);
    put(j, &d[6]); /* DONE, never in a kept segment */
    mpm_jid_t s2[1] = {jid(&d[5])};
    unsigned char *p2 = rnd_bytes(300);
    uint64_t boundary = fsize(path);
    uint64_t pos2 = boundary + REC_HDR;
    seg_put(j, s2, 1, p2, 300);
    CU_ASSERT_EQUAL(mpm__journal_nsegments(j), 3);
    seg_check(j, 1, pos1, s1, 2, p0, 0);
    seg_check(j, 2, pos2, s2, 1, p2, 300);
    jclose(j);

    size_t full_len;
    unsigned char *full = slurp(path, &full_len);
    CU_ASSERT_EQUAL(full_len, pos2 + sizeof(mpm_jid_t) + 300);

    /* Reloaded: the same segments and covered chunks; the segments that were
     * not kept did not end the journal. */
    CU_ASSERT_EQUAL_FATAL(jopen(&j, path, 1, GLOBAL, inputs, 3, &err), 0);
    expect_stats(j, 7, 1, 0, 0, 0);
    CU_ASSERT_EQUAL(mpm__journal_nsegments(j), 3);
    seg_check(j, 0, pos0, s0, 3, p0, 500);
    seg_check(j, 1, pos1, s1, 2, p0, 0);
    seg_check(j, 2, pos2, s2, 1, p2, 300);
    CU_ASSERT_PTR_NULL(mpm__journal_segment(j, 3));
    static const int want_cov[7] = {1, 1, 1, 1, 1, 1, 0};
    for (int i = 0; i < 7; i++) {
        check(j, &d[i]);
        CU_ASSERT_EQUAL(covered(j, d[i].input, d[i].offset), want_cov[i]);
    }
    check(j, &f);
    CU_ASSERT_EQUAL(covered(j, 2, 4096), 0);
    jclose(j);

    /* The last segment torn at every byte: dropped, its chunk not covered,
     * the rest as before. */
    int ok = 0;
    for (size_t cut = (size_t)boundary; cut < full_len; cut++) {
        unlink(copy);
        spit(copy, full, cut);
        int rc = jopen(&j, copy, 1, GLOBAL, inputs, 3, &err);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc) continue;
        const mpm_journal_stats_t *st = mpm__journal_stats(j);
        ok += st->torn_bytes == cut - boundary && mpm__journal_nsegments(j) == 2 &&
              covered(j, d[5].input, d[5].offset) == 0 &&
              covered(j, d[4].input, d[4].offset) == 1 && st->done == 7 && fsize(copy) == boundary;
        jclose(j);
    }
    CU_ASSERT_EQUAL(ok, (int)(full_len - boundary));

    free(full);
    free(p0);
    free(p2);
    free(pb);
    for (int i = 0; i < 7; i++)
        rec_free(&d[i]);
    rec_free(&f);
    td_remove();
}

/* The header is written to a temporary file and renamed: none is left. */
static void test_atomic_header(void)
{
    td_new();
    char path[128], p2[128];
    tpath(path, sizeof path, "journal");
    tpath(p2, sizeof p2, "resumed-journal");
    mpm_journal_t *j;
    mpm_err_t err;
    int entries, temps;
    CU_ASSERT_EQUAL_FATAL(jopen(&j, path, 0, GLOBAL, inputs, 3, &err), 0);
    dir_count(&entries, &temps);
    CU_ASSERT_EQUAL(entries, 1);
    CU_ASSERT_EQUAL(temps, 0);
    /* Mode as for any new file: 0666 less the umask (mkstemp makes 0600). */
    mode_t um = umask(022);
    umask(um);
    struct stat st;
    CU_ASSERT_EQUAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0666 & ~um);
    jclose(j);

    CU_ASSERT_EQUAL_FATAL(jopen(&j, p2, 1, GLOBAL, inputs, 3, &err), 0);
    expect_stats(j, 0, 0, 0, 0, 1);
    jclose(j);
    CU_ASSERT_EQUAL(jopen(&j, path, 0, GLOBAL, inputs, 3, &err), -2);
    dir_count(&entries, &temps);
    CU_ASSERT_EQUAL(entries, 2);
    CU_ASSERT_EQUAL(temps, 0);

    /* A journal in a directory that does not exist: an error, nothing created. */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no-such-dir/journal", tdir);
    int rc = jopen(&j, missing, 1, GLOBAL, inputs, 3, &err);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_PTR_NULL(j);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "no-such-dir"));
    dir_count(&entries, &temps);
    CU_ASSERT_EQUAL(entries, 2);
    td_remove();
}

static void test_sync(void)
{
    td_new();
    char path[128];
    tpath(path, sizeof path, "journal");
    mpm_journal_t *j;
    mpm_err_t err;
    CU_ASSERT_EQUAL_FATAL(jopen(&j, path, 0, GLOBAL, inputs, 3, &err), 0);
    CU_ASSERT_EQUAL(mpm__journal_sync(j, 1, &err), 0); /* nothing appended yet */
    trec_t r = done_rec(0, 0, 1, 1000, 10);
    put(j, &r);
    CU_ASSERT_EQUAL(mpm__journal_sync(j, 0, &err), 0);
    CU_ASSERT_EQUAL(mpm__journal_sync(j, 1, &err), 0);
    CU_ASSERT_EQUAL(mpm__journal_sync(j, 1, &err), 0);
    CU_ASSERT_EQUAL(mpm__journal_sync(NULL, 1, &err), 0);
    check_rec(j, &r, 0);
    jclose(j);
    CU_ASSERT_EQUAL(mpm__journal_close(NULL, &err), 0);
    /* And with an interval of 0 (every append syncs), after a resume. */
    CU_ASSERT_EQUAL_FATAL(mpm__journal_open(&j, path, 1, GLOBAL, inputs, names, 3, 0.0, &err), 0);
    trec_t r2 = done_rec(0, 4096, 1, 10, 0);
    put(j, &r2);
    CU_ASSERT_EQUAL(mpm__journal_sync(j, 1, &err), 0);
    check(j, &r);
    check(j, &r2);
    jclose(j);
    rec_free(&r);
    rec_free(&r2);
    td_remove();
}

/* Entries appended in the session that created the journal are read back
 * in that session, as after a resume: journal.h promises mpm__journal_read
 * for any entry find returns. Both ways of creating are tried: without
 * resume, and with resume when the file is missing. */
static void test_read_in_creating_session(void)
{
    td_new();
    for (int resume = 0; resume < 2; resume++) {
        char path[128];
        tpath(path, sizeof path, resume ? "created-by-resume" : "created");
        mpm_journal_t *j;
        mpm_err_t err;
        CU_ASSERT_EQUAL_FATAL(jopen(&j, path, resume, GLOBAL, inputs, 3, &err), 0);
        expect_stats(j, 0, 0, 0, 0, 1);
        trec_t r[] = {done_rec(0, 0, 1, 300, 0), done_rec(1, 0, 1, 0, 40),
                      done_rec(2, 0, 1, 5000, 100), failed_rec(2, 4096, 2, "reason")};
        const int nr = (int)(sizeof r / sizeof *r);
        for (int i = 0; i < nr; i++)
            put(j, &r[i]);
        for (int i = 0; i < nr; i++)
            check(j, &r[i]);
        jclose(j);
        for (int i = 0; i < nr; i++)
            rec_free(&r[i]);
    }
    td_remove();
}

int main(void)
{
    static const tu_test_t tests[] = {
        {"create, append, resume", test_roundtrip},
        {"thousands of chunks", test_many_chunks},
        {"torn last record at every byte", test_torn_every_offset},
        {"flipped byte in an earlier record", test_flipped_byte},
        {"refusals and files that are not journals", test_refusals},
        {"changed inputs", test_changed_input},
        {"segments", test_segments},
        {"header written atomically", test_atomic_header},
        {"sync", test_sync},
        {"read back in the session that created the journal", test_read_in_creating_session},
        {NULL, NULL}};
    return tu_main("journal", NULL, NULL, tests);
}
