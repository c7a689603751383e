/*
 * util.c - buffers, errors, row emission, logging and number parsing.
 * Thread safety: all functions are reentrant; mpm_buf_t and mpm_err_t are
 * owned by one thread at a time.
 */
#include "util.h"

#include "progress.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mpimap/mpimap.h"

int mpm__log_rank = -1;
int mpm__log_verbose = 0;
int mpm__log_quiet = 0;

const char *mpm_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
#define MPM_ERR_CASE(name, val, text)                                                              \
    case (val):                                                                                    \
        return text;
        MPM_ERRNO_MAP(MPM_ERR_CASE)
#undef MPM_ERR_CASE
    default:
        return "unknown error";
    }
}

int mpm_buf_reserve(mpm_buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra) return 0;
    size_t need = b->len + extra;
    if (need < b->len) return -1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int mpm_buf_append(mpm_buf_t *b, const void *p, size_t n)
{
    if (n == 0) return 0;
    if (mpm_buf_reserve(b, n)) return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int mpm_buf_printf(mpm_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    if ((size_t)n < sizeof small) return mpm_buf_append(b, small, (size_t)n);
    if (mpm_buf_reserve(b, (size_t)n + 1)) return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void mpm_buf_free(mpm_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int mpm_err_set(mpm_err_t *e, int64_t offset, const char *fmt, ...)
{
    if (!e) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->offset = offset;
    return -1;
}

int mpm_inputs_add(mpm_inputs_t *in, mpm_input_t input)
{
    if (in->n == in->cap) {
        int cap = in->cap ? in->cap * 2 : 8;
        mpm_input_t *v = realloc(in->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        in->v = v;
        in->cap = cap;
    }
    in->v[in->n++] = input;
    return 0;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) return 0;
    unsigned cp = c & (0xFF >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

int mpm__json_string(mpm_buf_t *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (mpm_buf_reserve(out, n + 2)) return -1;
    out->data[out->len++] = '"';
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        char esc[8];
        size_t elen = 0;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            elen = 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        } else if (c >= 0x80) {
            size_t k = utf8_seq(u + i, n - i);
            if (k) {
                if (mpm_buf_append(out, u + i, k)) return -1;
                i += k;
                continue;
            }
            /* Not UTF-8: the byte is shown as the Latin-1 code point. */
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        } else {
            esc[0] = (char)c;
            elen = 1;
        }
        if (mpm_buf_append(out, esc, elen)) return -1;
        i++;
    }
    return mpm_buf_append(out, "\"", 1);
}

static int emit_tsv_field(mpm_buf_t *out, const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep = NULL;
        switch (s[i]) {
        case '\t':
            rep = "\\t";
            break;
        case '\n':
            rep = "\\n";
            break;
        case '\r':
            rep = "\\r";
            break;
        case '\\':
            rep = "\\\\";
            break;
        default:
            continue;
        }
        if (mpm_buf_append(out, s + start, i - start) || mpm_buf_append(out, rep, 2)) return -1;
        start = i + 1;
    }
    return mpm_buf_append(out, s + start, n - start);
}

int mpm_emit_row(mpm_buf_t *out, mpm_format_t fmt, const char *const *cols, const mpm_val_t *v,
                 int n)
{
    if (fmt == MPM_FMT_JSON) {
        if (mpm_buf_append(out, "{", 1)) return -1;
        for (int i = 0; i < n; i++) {
            const char *c = cols && cols[i] ? cols[i] : "value";
            if (i && mpm_buf_append(out, ",", 1)) return -1;
            if (mpm__json_string(out, c, strlen(c)) || mpm_buf_append(out, ":", 1)) return -1;
            if (v[i].numeric ? mpm_buf_append(out, v[i].s, v[i].len)
                             : mpm__json_string(out, v[i].s, v[i].len))
                return -1;
        }
        return mpm_buf_append(out, "}\n", 2);
    }
    for (int i = 0; i < n; i++) {
        if (i && mpm_buf_append(out, "\t", 1)) return -1;
        if (fmt == MPM_FMT_TSV ? emit_tsv_field(out, v[i].s, v[i].len)
                               : mpm_buf_append(out, v[i].s, v[i].len))
            return -1;
    }
    return mpm_buf_append(out, "\n", 1);
}

double mpm__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void mpm__log(int level, const char *file, int line, const char *fmt, ...)
{
    if (level >= MPM_LOG_INFO && mpm__log_verbose < level - 1) return;
    if (level == MPM_LOG_WARN && mpm__log_quiet) return;
    mpm__progress_erase(); /* a progress bar on the same terminal */
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char prefix[128] = "";
    if (mpm__log_rank > 0 && level <= MPM_LOG_WARN)
        snprintf(prefix, sizeof prefix, "[rank %d] ", mpm__log_rank);
    if (level <= MPM_LOG_WARN) {
        fprintf(stderr, "mpimap: %s%s%s\n", prefix, level == MPM_LOG_ERROR ? "error: " : "warning: ",
                msg);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        const char *base = strrchr(file, '/');
        fprintf(stderr, "mpimap: %02d:%02d:%02d.%03ld [rank %d] %s:%d: %s\n", tm.tm_hour,
                tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, mpm__log_rank, base ? base + 1 : file,
                line, msg);
    }
}

int mpm__grow(void *pv, size_t *cap, size_t need, size_t size)
{
    void **v = pv;
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    void *p = realloc(*v, nc * size);
    if (!p) return -1;
    *v = p;
    *cap = nc;
    return 0;
}

long long mpm__pread_full(int fd, void *p, size_t n, uint64_t at)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)p + got, n - got, (off_t)(at + got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) break;
        got += (size_t)r;
    }
    return (long long)got;
}

int mpm__parse_size(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s)) return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return -1;
    unsigned shift = 0;
    switch (tolower((unsigned char)*end)) {
    case 0:
        break;
    case 'b':
        if (end[1]) return -1;
        end++;
        break;
    case 'k':
        shift = 10;
        break;
    case 'm':
        shift = 20;
        break;
    case 'g':
        shift = 30;
        break;
    case 't':
        shift = 40;
        break;
    default:
        return -1;
    }
    if (shift) {
        end++;
        if (tolower((unsigned char)*end) == 'i') end++;
        if (tolower((unsigned char)*end) == 'b') end++;
        if (*end) return -1;
        if (v > (UINT64_MAX >> shift)) return -1;
        v <<= shift;
    }
    *out = v;
    return 0;
}

int mpm__parse_ll(const char *s, long long *out)
{
    if (!s || !*s || isspace((unsigned char)*s)) return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

int mpm__parse_u64(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s)) return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

char *mpm__quote(char *dst, size_t dstsize, const char *s, size_t n)
{
    size_t j = 0;
    size_t limit = dstsize > 8 ? dstsize - 8 : 0;
    for (size_t i = 0; i < n && j < limit; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f) {
            dst[j++] = (char)c;
        } else {
            j += (size_t)snprintf(dst + j, dstsize - j, "\\x%02x", c);
        }
        if (i + 1 < n && j >= limit) {
            memcpy(dst + j, "...", 3);
            j += 3;
            break;
        }
    }
    if (dstsize) dst[j < dstsize ? j : dstsize - 1] = 0;
    return dst;
}

int mpm__inputs_paths(mpm_inputs_t *in, int argc, char **argv, mpm_err_t *err)
{
    int stdin_seen = 0;
    for (int i = 0; i < argc; i++) {
        int std = !strcmp(argv[i], "-");
        if (std && stdin_seen++) return mpm_err_set(err, -1, "standard input ('-') given twice");
        mpm_input_t x = {.kind = std ? MPM_IN_STDIN : MPM_IN_FILE, .name = argv[i]};
        if (mpm_inputs_add(in, x)) return mpm_err_set(err, -1, "out of memory");
    }
    return 0;
}

FILE *mpm__input_fopen(const mpm_input_t *in, const char *what, int *own, mpm_err_t *err)
{
    *own = 0;
    if (in->kind == MPM_IN_STDIN) return stdin;
    FILE *f = fopen(in->name, "re");
    if (!f) {
        mpm_err_set(err, -1, "cannot open %s '%s': %s", what, in->name, strerror(errno));
        return NULL;
    }
    *own = 1;
    return f;
}
