/*
 * fuzz_journal.c - loading a journal on --resume (src/journal.c): the
 * header (magic line, fingerprint lines, "end" hash), the records (64-byte
 * headers, DONE/FAILED/INPUT/SEGMENT payloads, XXH64 hashes), torn tails,
 * and the entries and segments the loader builds from them.
 *
 * Input: byte 0 holds flags, the rest is the journal file, written to one
 * path per process and opened with resume and a fixed fingerprint (FP_*
 * below: two inputs). Flags: bit 0 "repair": before writing, the harness
 * recomputes the header's "end" hash and every record's hash (walking
 * records while their header's sizes fit), so that mutations get past the
 * hashes into the loader's logic; bit 1: this run's second input line
 * differs from the recorded one (the "input changed" checks and INPUT
 * appends). Seeds are journals written by mpm__journal_open (create) and
 * mpm__journal_append with the same fingerprint (see the generator at the
 * end of this file).
 *
 * Checked beyond "no crash, no leak": open returns 0, -1 or -2, with a
 * message when it fails; after open, the torn-tail stats match the input's
 * length and the file is no shorter than where the tail was cut; every
 * entry that find() returns for the (input, offset) of a record in the file
 * (and a few fixed offsets) has that key, a known state, and a payload
 * (pos, rows_len + part_len) inside the file, which mpm__journal_read reads
 * back; every segment lies inside the file; a record appended after the load
 * is found with what was appended, and the journal closes cleanly.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "journal.h"

#define FP_GLOBAL "kernel wordcount\noption top=10\nchunk-size 4096\nformat tsv\ninputs 2\n"
static char fp_in0[] = "file /data/one.txt size 10000 mtime 1700000001";
static char fp_in1[] = "file /data/two.txt size 20000 mtime 1700000002";
static char fp_in1_new[] = "file /data/two.txt size 20001 mtime 1700000102";
static const char *const fp_names[2] = {"one.txt", "two.txt"};

#define REC_HDR 64
#define REC_MAGIC 0x31524a4du
#define MAX_KEYS 64

typedef struct rec_s { /* journal.c's record header */
    uint32_t magic, type;
    uint64_t index;
    int32_t input;
    uint32_t attempts;
    uint64_t offset, len, a_len, b_len, hash;
} rec_t;
_Static_assert(sizeof(rec_t) == REC_HDR, "record header");

static char path[64];

static _Noreturn void fail(const char *what, const char *msg)
{
    fprintf(stderr, "fuzz_journal: %s%s%s\n", what, msg ? ": " : "", msg ? msg : "");
    abort();
}

/* Where the header's "end <16 hex>\n" line starts, or 0 when there is none. */
static size_t find_end_line(const uint8_t *d, size_t n)
{
    for (size_t i = 0; i + 21 <= n; i++)
        if ((i == 0 || d[i - 1] == '\n') && !memcmp(d + i, "end ", 4) && d[i + 20] == '\n')
            return i;
    return 0;
}

/* Recomputes the header hash and the records' hashes in place. */
static void repair(uint8_t *d, size_t n)
{
    size_t e = find_end_line(d, n);
    if (!e) return;
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)XXH64(d, e, 0));
    memcpy(d + e + 4, hex, 16);
    size_t at = e + 21;
    while (n - at >= REC_HDR) {
        rec_t r;
        memcpy(&r, d + at, sizeof r);
        if (r.a_len > n || r.b_len > n || n - at - REC_HDR < r.a_len + r.b_len) break;
        r.hash = 0;
        XXH64_state_t *hs = XXH64_createState();
        if (!hs) break;
        XXH64_reset(hs, 0);
        XXH64_update(hs, &r, sizeof r);
        XXH64_update(hs, d + at + REC_HDR, (size_t)(r.a_len + r.b_len));
        r.hash = XXH64_digest(hs);
        XXH64_freeState(hs);
        memcpy(d + at, &r, sizeof r);
        at += REC_HDR + (size_t)(r.a_len + r.b_len);
    }
}

/* (input, offset) of the records that follow the header, as far as their
 * sizes fit (hashes not checked), plus a few fixed keys. */
static size_t collect_keys(const uint8_t *d, size_t n, int32_t *in, uint64_t *off)
{
    size_t k = 0;
    for (int i = 0; i < 2; i++)
        for (uint64_t o = 0; o < 3 * 4096; o += 4096)
            in[k] = i, off[k++] = o;
    size_t e = find_end_line(d, n);
    if (!e) return k;
    size_t at = e + 21;
    while (n - at >= REC_HDR && k < MAX_KEYS) {
        rec_t r;
        memcpy(&r, d + at, sizeof r);
        if (r.a_len > n || r.b_len > n || n - at - REC_HDR < r.a_len + r.b_len) break;
        in[k] = r.input, off[k++] = r.offset;
        at += REC_HDR + (size_t)(r.a_len + r.b_len);
    }
    return k;
}

static void check_entry(mpm_journal_t *j, const mpm_jentry_t *e, int32_t input, uint64_t offset,
                        uint64_t fsize)
{
    mpm_err_t err = {.offset = -1, .msg = ""};
    if (e->input != input || e->offset != offset) fail("find() returned another chunk", NULL);
    if (e->state != 0 && e->state != MPM_J_DONE && e->state != MPM_J_FAILED)
        fail("entry with an unknown state", NULL);
    if (e->pos > fsize || e->rows_len > fsize || e->part_len > fsize ||
        e->rows_len + e->part_len > fsize - e->pos)
        fail("entry payload outside the file", NULL);
    uint64_t n = e->rows_len + e->part_len;
    if (n > 4096) n = 4096;
    char buf[4096];
    if (mpm__journal_read(j, e, 0, buf, (size_t)n, &err) != 0) fail("read of an entry", err.msg);
    if (mpm__journal_read(j, e, e->rows_len + e->part_len, buf, 1, &err) == 0)
        fail("read past an entry succeeded", NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (!path[0]) {
        struct stat st;
        const char *dir = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
        snprintf(path, sizeof path, "%s/fuzz-journal-%ld", dir, (long)getpid());
    }
    int flags = data[0];
    size_t n = size - 1;
    uint8_t *file = malloc(n ? n : 1);
    if (!file) return 0;
    if (n) memcpy(file, data + 1, n);
    if (flags & 1) repair(file, n);
    int32_t kin[MAX_KEYS];
    uint64_t koff[MAX_KEYS];
    size_t nkeys = collect_keys(file, n, kin, koff);

    FILE *f = fopen(path, "wb");
    if (!f) fail("cannot create the journal file", path);
    if (n && fwrite(file, 1, n, f) != n) fail("cannot write the journal file", path);
    if (fclose(f) != 0) fail("cannot write the journal file", path);
    free(file);

    char *const inputs[2] = {fp_in0, (flags & 2) ? fp_in1_new : fp_in1};
    mpm_journal_t *j = (mpm_journal_t *)1;
    mpm_err_t err = {.offset = -1, .msg = ""};
    int rc = mpm__journal_open(&j, path, 1, FP_GLOBAL, inputs, fp_names, 2, 3600.0, &err);
    if (rc != 0 && rc != -1 && rc != -2) fail("open returned an unexpected value", err.msg);
    if (rc != 0) {
        if (!err.msg[0]) fail("open failed without a message", NULL);
        if (j) fail("open failed but left a journal", err.msg);
        unlink(path);
        return 0;
    }
    if (!j) fail("open succeeded without a journal", NULL);

    struct stat st;
    if (stat(path, &st) < 0) fail("journal file vanished", path);
    uint64_t fsize = (uint64_t)st.st_size;
    const mpm_journal_stats_t *s = mpm__journal_stats(j);
    if (s->torn_at && s->torn_at + s->torn_bytes != (uint64_t)n) fail("torn tail stats", NULL);
    /* (INPUT records may have been appended after the cut.) */
    if (s->torn_at && fsize < s->torn_at) fail("journal cut before its torn tail", NULL);
    if (!s->torn_at && fsize < (uint64_t)n) fail("journal shrank without a torn tail", NULL);
    if (s->done + s->failed > (uint64_t)n / REC_HDR) fail("more entries than records", NULL);

    for (size_t i = 0; i < nkeys; i++) {
        const mpm_jentry_t *e = mpm__journal_find(j, kin[i], koff[i]);
        if (e) check_entry(j, e, kin[i], koff[i], fsize);
    }
    for (size_t i = 0, ns = mpm__journal_nsegments(j); i < ns; i++) {
        const mpm_jsegment_t *g = mpm__journal_segment(j, i);
        if (!g) fail("segment missing", NULL);
        if (g->n > fsize / sizeof(mpm_jid_t) || g->part_len > fsize || g->pos > fsize ||
            g->n * sizeof(mpm_jid_t) + g->part_len > fsize - g->pos)
            fail("segment outside the file", NULL);
        mpm_jid_t id;
        if (g->n && mpm__journal_read_at(j, g->pos, &id, sizeof id, &err) != 0)
            fail("read of a segment", err.msg);
    }

    /* An append after the load lands after the loaded records. */
    static const char rows[] = "word\t1\n";
    uint64_t at = fsize;
    if (mpm__journal_append(j, MPM_J_DONE, 99, 1, 1ull << 40, 123, 0, rows, sizeof rows - 1, NULL,
                            0, &err) != 0)
        fail("append after resume", err.msg);
    const mpm_jentry_t *e = mpm__journal_find(j, 1, 1ull << 40);
    if (!e || e->state != MPM_J_DONE || e->len != 123 || e->rows_len != sizeof rows - 1 ||
        e->pos != at + REC_HDR)
        fail("appended record not found as appended", NULL);
    char back[sizeof rows];
    if (mpm__journal_read(j, e, 0, back, sizeof rows - 1, &err) != 0 ||
        memcmp(back, rows, sizeof rows - 1))
        fail("appended record reads back differently", err.msg);
    if (mpm__journal_close(j, &err) != 0) fail("close", err.msg);
    unlink(path);
    return 0;
}

/*
 * Seed generator (run once, not built): writes journals with this file's
 * fingerprint, then each seed file is one flags byte followed by a journal.
 *
 *   #include "journal.h"   // cc gen.c -Isrc -Iinclude -Lbuild -lmpimap
 *   mpm_journal_t *j; mpm_err_t err;
 *   mpm__journal_open(&j, "/tmp/j", 0, FP_GLOBAL, inputs, names, 2, 1.0, &err);
 *   mpm__journal_append(j, MPM_J_DONE, 0, 0, 0, 4096, 0, "a\t1\n", 4, "P", 1, &err);
 *   mpm__journal_append(j, MPM_J_FAILED, 1, 0, 4096, 100, 2, "why", 3, NULL, 0, &err);
 *   mpm_jid_t ids[1] = {{0, 0, 0, 4096}};
 *   mpm__journal_append(j, MPM_J_SEGMENT, 0, 0, 0, 0, 0, ids, sizeof ids, "PP", 2, &err);
 *   mpm__journal_append(j, MPM_J_INPUT, 0, 1, 0, 0, 0, "file ...", 8, NULL, 0, &err);
 *   mpm__journal_close(j, &err);
 *   // then: printf '\x01' | cat - /tmp/j > corpus/journal/NAME
 */
