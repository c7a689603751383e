/*
 * fuzz_fetch_urls.c - the fetch kernel's URL lists (src/kernels/fetch.c):
 * the source that reads a list and cuts it into chunks of --batch URLs
 * (source_open, source_next: lines, blanks, '#' comments, spaces, tabs and
 * CRs around a URL, NUL bytes), the framing of those chunks ([u64 row][u32
 * length][URL]...), and the check every URL gets before any attempt
 * (mpm__fetch_vet: libcurl's URL parser, scheme http or https, a host and
 * the per-host key). No transfer is ever started.
 *
 * Input: byte 0: bits 0-1 pick --batch (1, 2, 3 or the default of 128 with
 * --concurrency 32); the rest is the list, held in a memfd that the source
 * opens as a file (/proc/self/fd/N).
 *
 * Checked beyond "no crash, no leak", against a reading of the list done
 * here: the chunks hold exactly the list's URLs in order (each line without
 * the spaces, tabs, CRs and LF around it; empty lines and lines starting
 * with '#' skipped), at most --batch per chunk and at least one; the
 * framing fills each chunk exactly; rows are consecutive; a chunk's offset
 * is where the list was read to when it started (the end of the previous
 * chunk's last line), strictly increasing; a URL holding a NUL byte stops
 * the list with an error naming its byte offset, after the URLs before it;
 * the end comes once. For every URL: the vet accepts it only with a scheme
 * http or https (any case) and a host key "HOST:PORT" with a port in
 * 1..65535 (80 or 443 for a plain host name without a port; a key of 255
 * bytes and more is cut, and not checked), and refuses it with a message
 * otherwise.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "mpimap/mpimap.h"

extern const mpm_kernel_t mpm_kernel_fetch;

static _Noreturn void fail(const char *what)
{
    fprintf(stderr, "fuzz_fetch_urls: %s\n", what);
    abort();
}

/* Stores an integer option by name through the kernel's option table. */
static void set_int(void *opts, const char *name, long long v)
{
    for (const mpm_option_t *o = mpm_kernel_fetch.options; o->name; o++)
        if (!strcmp(o->name, name) && o->type == MPM_OPT_INT) {
            memcpy((char *)opts + o->offset, &v, sizeof v);
            return;
        }
    fail("no such integer option");
}

/* One URL of the list as read here. */
typedef struct {
    const uint8_t *u;
    size_t len;
    size_t line_end; /* offset just after its line */
    size_t line_start;
} url_t;

static int blank(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* The URLs of list d[0..n), in order. */
static size_t read_list(const uint8_t *d, size_t n, url_t *v)
{
    size_t k = 0;
    for (size_t at = 0; at < n;) {
        const uint8_t *nl = memchr(d + at, '\n', n - at);
        size_t end = nl ? (size_t)(nl - d) + 1 : n;
        size_t a = at, z = end;
        while (a < z && blank(d[a])) a++;
        while (z > a && blank(d[z - 1])) z--;
        if (a < z && d[a] != '#') v[k++] = (url_t){d + a, z - a, end, at};
        at = end;
    }
    return k;
}

/* The vet of one URL, with the checks above. */
static void vet(const uint8_t *u, size_t len)
{
    char *url = strndup((const char *)u, len); /* as map() copies it */
    if (!url) abort();
    char host[300], why[600];
    if (mpm__fetch_vet(url, host, sizeof host, why, sizeof why) < 0) {
        if (!why[0]) fail("a URL refused without a message");
        free(url);
        return;
    }
    int https = !strncasecmp(url, "https:", 6);
    if (!https && strncasecmp(url, "http:", 5)) fail("vet accepted a URL that is not http(s)");
    if (strlen(host) >= 255) { /* fetch.c's key holds 255 bytes: a longer one is cut */
        free(url);
        return;
    }
    char *colon = strrchr(host, ':');
    if (!colon || colon == host) fail("vet accepted a URL without a host");
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535 || !isdigit((unsigned char)colon[1])) {
        fprintf(stderr, "fuzz_fetch_urls: URL '%s', host key '%s'\n", url, host);
        fail("vet accepted a URL with a bad port in the host key");
    }
    /* A plain authority (a host name, no user, no port): the scheme's port.
     * Anything fancier is left to libcurl's own leniency. */
    const char *auth = url + (https ? 6 : 5);
    if (!strncmp(auth, "//", 2)) {
        auth += 2;
        size_t al = strcspn(auth, "/?#");
        int plain = al > 0 && auth[0] != '.';
        for (size_t i = 0; i < al; i++)
            plain &= isalnum((unsigned char)auth[i]) || auth[i] == '.' || auth[i] == '-';
        if (plain && port != (https ? 443 : 80)) fail("vet gave another default port");
    }
    free(url);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (size < 1) return 0;
    if (fd < 0) {
        if ((fd = memfd_create("fuzz-fetch", MFD_CLOEXEC)) < 0) fail("memfd_create failed");
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    static const long long batches[4] = {1, 2, 3, 0};
    long long batch = batches[data[0] & 3];
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    if (ftruncate(fd, 0) < 0 || (n && pwrite(fd, d, n, 0) != (ssize_t)n)) fail("memfd write");

    url_t *urls = malloc((n / 2 + 1) * sizeof *urls);
    if (!urls) return 0;
    size_t nurls = read_list(d, n, urls);

    const mpm_kernel_t *k = &mpm_kernel_fetch;
    void *opts = calloc(1, k->opts_size);
    if (!opts) abort();
    k->opts_init(opts);
    set_int(opts, "batch", batch);
    if (!batch) batch = 128; /* 4 x the default --concurrency 32 */

    mpm_input_t in = {.kind = MPM_IN_FILE, .name = path};
    mpm_err_t err = {.offset = -1, .msg = ""};
    void *src = k->source_open(opts, &in, 1 << 20, &err);
    if (!src) fail(err.msg[0] ? err.msg : "source_open failed without a message");
    size_t next = 0;     /* the next URL expected */
    uint64_t row0 = 0;   /* the first chunk's first row */
    uint64_t last_off = 0;
    int chunks = 0, ended = 0;
    mpm_buf_t b = {0};
    while (!ended) {
        b.len = 0;
        uint64_t off = UINT64_MAX;
        err.msg[0] = 0;
        int r = k->source_next(src, &b, &off, &err);
        if (r < 0) {
            /* only for a URL with a NUL byte, right at the next one */
            if (next >= nurls || !memchr(urls[next].u, 0, urls[next].len))
                fail("source_next failed without a NUL byte in the next URL");
            char want[128];
            snprintf(want, sizeof want, "%s: byte %zu: ", path, urls[next].line_start);
            if (!strstr(err.msg, want)) fail("the NUL byte's error does not name its line");
            break;
        }
        if (r == 0) {
            if (next != nurls) fail("the list ended early");
            ended = 1;
            break;
        }
        if (r != 1) fail("source_next answered neither -1, 0 nor 1");
        uint64_t want_off = next ? urls[next - 1].line_end : 0;
        if (off != want_off) fail("a chunk's offset is not where the list was read to");
        if (chunks && off <= last_off) fail("chunk offsets do not increase");
        last_off = off;
        size_t at = 0, in_chunk = 0;
        while (at < b.len) {
            if (b.len - at < 12) fail("a chunk's framing does not fill it");
            uint64_t row;
            uint32_t l;
            memcpy(&row, b.data + at, 8);
            memcpy(&l, b.data + at + 8, 4);
            at += 12;
            if (b.len - at < l) fail("a URL runs past its chunk");
            if (!chunks && !in_chunk) row0 = row;
            if (row != row0 + next) fail("rows are not consecutive");
            if (next >= nurls) fail("more URLs than the list holds");
            if (l != urls[next].len || memcmp(b.data + at, urls[next].u, l))
                fail("a URL differs from the list's");
            if (memchr(urls[next].u, 0, l)) fail("a URL with a NUL byte was passed on");
            vet(urls[next].u, l);
            at += l;
            next++;
            in_chunk++;
        }
        if (in_chunk == 0 || (long long)in_chunk > batch) fail("a chunk's URL count is off");
        chunks++;
    }
    mpm_buf_free(&b);
    k->source_close(src);
    k->opts_free(opts);
    free(opts);
    free(urls);
    return 0;
}
