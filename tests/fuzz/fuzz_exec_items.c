/*
 * fuzz_exec_items.c - the exec kernel's items and command words
 * (src/kernels/exec.c): check() with a command and its ::: items or an
 * --items file, the source that cuts the items (lines with their LF and a
 * trailing CR removed, empty ones skipped, a NUL byte refused; or with -0
 * NUL-separated items, which may hold LF and CR; or the ::: arguments), and
 * the argument vector map() builds for each task (mpm__exec_words: the
 * replacement strings {} {.} {/} {//} {/.} {#} {%} anywhere in any word, or
 * the item appended when no word has one) with the joblog's shell-quoted
 * command line. No program is ever started.
 *
 * Input: byte 0: bit 0 --null; bit 1 items after ':::' (else --items FILE,
 * a memfd opened as /proc/self/fd/N); bit 2 the program word is '{}' (the
 * item is the program) instead of /bin/true; bits 3-5 the slot ({%} is slot
 * + 1). Byte 1 % 5: the number of further command words, which follow, each
 * ended by LF (cut at a NUL, as an argument would be; ':::' dropped). The
 * rest holds the items: the --items file's bytes, or the ::: arguments
 * separated by NUL bytes.
 *
 * Checked beyond "no crash, no leak", against a reading and an expansion
 * done here from docs/EXEC.md: check() refuses exactly an empty ::: item;
 * the source gives exactly the items, in order, with their offsets (bytes
 * into the file, or into the ::: arguments), and fails only on a line
 * holding a NUL byte without --null, naming its offset; each task's words
 * are the command words with every replacement string replaced ({} by the
 * item, so that {} round-trips any item byte for byte; {.} without the
 * extension; {/} the basename; {//} the directory, '.' without a '/';
 * {/.} the basename without extension; {#} the task number; {%} the slot),
 * plus the item as the last word when no word has one; the command line,
 * read back as a POSIX shell would (bare, '...' with '\'' and $'...'
 * words), gives back exactly those words.
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

extern const mpm_kernel_t mpm_kernel_exec;

#define MAX_WORDS 5
#define MAX_ITEMS 512

static _Noreturn void fail(const char *what)
{
    fprintf(stderr, "fuzz_exec_items: %s\n", what);
    abort();
}

static void set_opt(void *opts, const char *name, const void *v, size_t n)
{
    for (const mpm_option_t *o = mpm_kernel_exec.options; o->name; o++)
        if (!strcmp(o->name, name)) {
            memcpy((char *)opts + o->offset, v, n);
            return;
        }
    fail("no such option");
}

/* ---- the expansion, from the documentation ---------------------------------------------- */

static void put(mpm_buf_t *b, const void *p, size_t n)
{
    if (mpm_buf_append(b, p, n)) abort();
}

/* Position of the basename in s[0..n). */
static size_t base_of(const char *s, size_t n)
{
    const char *sl = memrchr(s, '/', n);
    return sl ? (size_t)(sl - s) + 1 : 0;
}

/* Length of s[0..n) without its extension: up to the last '.' of the
 * basename that is not the basename's first byte. */
static size_t stem(const char *s, size_t n)
{
    size_t b = base_of(s, n);
    const char *dot = n > b + 1 ? memrchr(s + b + 1, '.', n - b - 1) : NULL;
    return dot ? (size_t)(dot - s) : n;
}

static int expand_word(mpm_buf_t *b, const char *w, const char *it, size_t n, uint64_t task,
                       int slot)
{
    static const char *const toks[] = {"{}", "{.}", "{/}", "{//}", "{/.}", "{#}", "{%}", NULL};
    int any = 0;
    size_t bs = base_of(it, n);
    char num[32];
    for (const char *p = w; *p;) {
        int t = 0;
        while (toks[t] && strncmp(p, toks[t], strlen(toks[t]))) t++;
        if (!toks[t]) {
            put(b, p++, 1);
            continue;
        }
        any = 1;
        p += strlen(toks[t]);
        switch (t) {
        case 0: put(b, it, n); break;
        case 1: put(b, it, stem(it, n)); break;
        case 2: put(b, it + bs, n - bs); break;
        case 3:
            if (bs == 0) put(b, ".", 1);
            else if (bs == 1) put(b, "/", 1);
            else put(b, it, bs - 1);
            break;
        case 4: put(b, it + bs, stem(it + bs, n - bs)); break;
        case 5: put(b, num, (size_t)snprintf(num, sizeof num, "%" PRIu64, task)); break;
        default: put(b, num, (size_t)snprintf(num, sizeof num, "%d", slot + 1));
        }
    }
    put(b, "", 1);
    return any;
}

/* ---- reading the command line back as a shell would ----------------------------------- */

/* Words of cmdline c[0..n), each followed by a NUL, into out; -1 when it is
 * not made of words separated by single spaces. */
static int unquote(const char *c, size_t n, mpm_buf_t *out, int *nw)
{
    size_t i = 0;
    *nw = 0;
    while (i < n) {
        if (*nw && c[i++] != ' ') return -1;
        if (i >= n) return -1;
        int started = 0;
        while (i < n && c[i] != ' ') {
            started = 1;
            if (c[i] == '\'') {
                const char *q = memchr(c + i + 1, '\'', n - i - 1);
                if (!q) return -1;
                put(out, c + i + 1, (size_t)(q - c - i - 1));
                i = (size_t)(q - c) + 1;
            } else if (c[i] == '\\') {
                if (i + 1 >= n) return -1;
                put(out, c + i + 1, 1);
                i += 2;
            } else if (c[i] == '$' && i + 1 < n && c[i + 1] == '\'') {
                i += 2;
                for (;;) {
                    if (i >= n) return -1;
                    char ch = c[i++];
                    if (ch == '\'') break;
                    if (ch != '\\') {
                        put(out, &ch, 1);
                        continue;
                    }
                    if (i >= n) return -1;
                    char e = c[i++], v;
                    if (e == 'n') v = '\n';
                    else if (e == 't') v = '\t';
                    else if (e == 'r') v = '\r';
                    else if (e == '\\' || e == '\'') v = e;
                    else if (e == 'x' && i + 2 <= n) {
                        char hx[3] = {c[i], c[i + 1], 0};
                        char *end;
                        v = (char)strtol(hx, &end, 16);
                        if (*end) return -1;
                        i += 2;
                    } else return -1;
                    put(out, &v, 1);
                }
            } else {
                /* bare: only what needs no quoting (exec.c's plain set) */
                unsigned char u = (unsigned char)c[i];
                if (!(u >= 0x80 || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') ||
                      (u >= '0' && u <= '9') || strchr("_./:=@%+,-", u)))
                    return -1;
                put(out, c + i++, 1);
            }
        }
        if (!started) return -1;
        put(out, "", 1);
        (*nw)++;
    }
    return 0;
}

/* ---- the items, as read here ------------------------------------------------------------------ */

typedef struct {
    const char *p;
    size_t n;
    size_t off;
    int nul; /* a line holding a NUL byte: the source must fail there */
} item_t;

static size_t read_items(const char *d, size_t n, int sep, item_t *v)
{
    size_t k = 0;
    for (size_t at = 0; at < n && k < MAX_ITEMS;) {
        const char *e = memchr(d + at, sep, n - at);
        size_t end = e ? (size_t)(e - d) + 1 : n, l = end - at;
        if (e) l--;
        if (sep == '\n' && l && d[at + l - 1] == '\r') l--;
        if (l) {
            v[k] = (item_t){d + at, l, at, sep == '\n' && memchr(d + at, 0, l) != NULL};
            if (v[k++].nul) break;
        }
        at = end;
    }
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (size < 2) return 0;
    if (fd < 0) {
        if ((fd = memfd_create("fuzz-exec", MFD_CLOEXEC)) < 0) fail("memfd_create failed");
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    int null = data[0] & 1, mem = data[0] & 2, prog_item = data[0] & 4, slot = (data[0] >> 3) & 7;
    size_t nextra = data[1] % MAX_WORDS;
    char *buf = malloc(size + 1); /* the words and ::: items as C strings */
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    char *argv[MAX_WORDS + 2 + MAX_ITEMS + 1];
    int argc = 0;
    argv[argc++] = prog_item ? "{}" : "/bin/true";
    size_t at = 2;
    for (size_t i = 0; i < nextra; i++) {
        char *nl = memchr(buf + at, '\n', size - at);
        if (!nl) {
            free(buf);
            return 0;
        }
        *nl = 0;
        if (strcmp(buf + at, ":::")) argv[argc++] = buf + at;
        at = (size_t)(nl - buf) + 1;
    }
    int ncmd = argc;
    const char *rest = buf + at;
    size_t rn = size - at;
    item_t *items = malloc((MAX_ITEMS + 1) * sizeof *items);
    if (!items) abort();
    size_t nitems = 0;
    int empty_item = 0;
    if (mem) {
        argv[argc++] = ":::";
        for (size_t i = 0; i < rn && nitems < MAX_ITEMS;) { /* NUL-separated arguments */
            size_t l = strlen(rest + i);
            argv[argc++] = (char *)rest + i;
            if (!l) empty_item = 1;
            items[nitems++] = (item_t){rest + i, l, 0, 0};
            i += l + 1;
        }
        size_t off = 0; /* offsets in the packed ::: items */
        for (size_t i = 0; i < nitems; i++) {
            items[i].off = off;
            off += items[i].n + 1;
        }
    } else {
        if (ftruncate(fd, 0) < 0 || (rn && pwrite(fd, rest, rn, 0) != (ssize_t)rn))
            fail("memfd write");
        nitems = read_items(rest, rn, null ? 0 : '\n', items);
    }
    argv[argc] = NULL;

    const mpm_kernel_t *k = &mpm_kernel_exec;
    void *opts = calloc(1, k->opts_size);
    if (!opts) abort();
    k->opts_init(opts);
    int one = 1;
    if (null) set_opt(opts, "null", &one, sizeof one);
    const char *ip = path;
    if (!mem) set_opt(opts, "items", &ip, sizeof ip);
    mpm_inputs_t in = {0};
    mpm_err_t err = {.offset = -1, .msg = ""};
    int rc = k->check(opts, argc, argv, &in, &err);
    if (rc < 0 && !err.msg[0]) fail("check refused without a message");
    if ((rc < 0) != empty_item) fail(rc < 0 ? err.msg : "check accepted an empty ::: item");

    if (rc == 0 && in.n == 1) {
        void *src = k->source_open(opts, &in.v[0], 1, &err);
        if (!src) fail(err.msg[0] ? err.msg : "source_open failed without a message");
        mpm_buf_t item = {0}, words = {0}, want = {0}, cmdline = {0}, back = {0};
        for (size_t i = 0;; i++) {
            item.len = 0;
            uint64_t off = UINT64_MAX;
            err.msg[0] = 0;
            int r = k->source_next(src, &item, &off, &err);
            if (r < 0) {
                char w[96];
                snprintf(w, sizeof w, "%s: byte %zu: ", path, i < nitems ? items[i].off : 0);
                if (i >= nitems || !items[i].nul || strncmp(err.msg, w, strlen(w)))
                    fail("the source failed, not at a line holding a NUL byte");
                break;
            }
            if (r == 0) {
                if (i != nitems && !(i == MAX_ITEMS && nitems == MAX_ITEMS))
                    fail("the items ended early");
                break;
            }
            if (i >= nitems) {
                if (nitems == MAX_ITEMS) break; /* not followed here */
                fail("more items than the input holds");
            }
            if (items[i].nul) fail("an item holding a NUL byte was passed on");
            if (off != items[i].off || item.len != items[i].n ||
                memcmp(item.data, items[i].p, item.len))
                fail("an item differs from the input's");
            /* its words */
            uint64_t task = i + 1;
            words.len = want.len = cmdline.len = back.len = 0;
            int nw = 0, nb = 0, any = 0;
            if (mpm__exec_words(opts, item.data, item.len, task, slot, &words, &nw, &cmdline))
                fail("out of memory");
            for (int w = 0; w < ncmd; w++)
                any |= expand_word(&want, argv[w], item.data, item.len, task, slot);
            if (!any) {
                put(&want, item.data, item.len);
                put(&want, "", 1);
            }
            if (nw != ncmd + !any) fail("the task has another number of words");
            if (words.len != want.len || memcmp(words.data, want.data, want.len))
                fail("a word is not its expansion");
            for (int w = 0; w < ncmd; w++) /* {} round-trips the item */
                if (!strcmp(argv[w], "{}")) {
                    const char *p = words.data;
                    for (int j = 0; j < w; j++) p += strlen(p) + 1;
                    if (strlen(p) != item.len || memcmp(p, item.data, item.len))
                        fail("{} is not the item");
                }
            if (unquote(cmdline.data, cmdline.len, &back, &nb) < 0)
                fail("the command line is not shell words");
            if (nb != nw || back.len != words.len || memcmp(back.data, words.data, back.len))
                fail("the command line does not read back as the words");
        }
        mpm_buf_free(&item);
        mpm_buf_free(&words);
        mpm_buf_free(&want);
        mpm_buf_free(&cmdline);
        mpm_buf_free(&back);
        k->source_close(src);
    } else if (rc == 0 && in.n != 0) {
        fail("check declared more than one input");
    } else if (rc == 0 && (!mem || nitems)) {
        fail("check declared no input");
    }
    free(in.v);
    k->opts_free(opts);
    free(opts);
    free(items);
    free(buf);
    return 0;
}
