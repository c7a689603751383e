/*
 * imgio.c - PNM, PNG and JPEG codecs of the image kernel (see img.h).
 *
 * Reading. Every reader pulls its bytes through one small byte source
 * (src_t): a buffered FILE* for a path, or the caller's bytes for memory.
 * The first bytes are peeked to pick the codec and then served again, so a
 * file is read once, front to back, and a pipe works as well as a regular
 * file. PNM is parsed here; PNG goes through libpng with a read callback on
 * the source, JPEG through libjpeg with a source manager on it. Both
 * libraries report errors by longjmp from a callback: each library call is
 * made from a function that sets the jump point, keeps its state in the
 * reader (heap, not locals: see -Wclobbered) and turns the library's text
 * into "NAME: ...". libjpeg's "premature end of file" is only a warning
 * (it pads the image with gray); here running out of bytes is an error.
 *
 * Sizes. Every dimension is checked against max_pixels and for overflow
 * of the row and image byte counts (64-bit arithmetic) before the codec
 * allocates anything from it: PNM checks right after its header, PNG after
 * png_read_info (libpng allocates its row buffers later, in
 * png_read_update_info), JPEG after jpeg_read_header. Only Adam7 PNGs are
 * held whole (their rows arrive in seven passes).
 *
 * Writing. Rows are converted (alpha dropped, samples scaled, 16-bit
 * samples made big-endian) into one row buffer and handed to the encoder,
 * which emits bytes through the caller's callback as they come: PNM rows
 * directly, PNG through png_set_write_fn, JPEG through a destination
 * manager with a 64 KiB buffer.
 *
 * No state outside the reader and writer objects: any number of them may
 * run at once on different threads.
 */
#include "img.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
#include <pthread.h>
#include <zlib.h>

#define PNM_MAXVAL 65535u
#define PNG_DIM_MAX 0x1000000u                    /* libpng user limit on width and height */
#define PNG_CHUNK_MAX ((png_alloc_size_t)8 << 20) /* largest ancillary chunk kept */
#define JBUF (1u << 16)                           /* JPEG source and destination buffers */
#define FILE_BUF (1u << 16)                       /* stdio buffer of a file reader */
#define MSG 200                                   /* a library's message */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define NATIVE_BE 1
#else
#define NATIVE_BE 0
#endif

/* ---- formats ------------------------------------------------------------------ */

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* 1 if name ends with ext (lower case, with the dot), in any case. */
static int ends_with(const char *name, const char *ext)
{
    size_t n = strlen(name), e = strlen(ext);
    if (n < e) return 0;
    for (size_t i = 0; i < e; i++)
        if (lower((unsigned char)name[n - e + i]) != ext[i]) return 0;
    return 1;
}

int img_format_from_name(const char *name)
{
    if (!name) return -1;
    if (ends_with(name, ".pgm") || ends_with(name, ".ppm") || ends_with(name, ".pnm"))
        return IMG_PNM;
    if (ends_with(name, ".png")) return IMG_PNG;
    if (ends_with(name, ".jpg") || ends_with(name, ".jpeg")) return IMG_JPEG;
    return -1;
}

static const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static int pnm_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

int img_format_sniff(const void *p, size_t n)
{
    const unsigned char *b = p;
    /* "P5"/"P6" then whitespace or a comment (if there is a third byte) */
    if (n >= 2 && b[0] == 'P' && (b[1] == '5' || b[1] == '6') &&
        (n == 2 || pnm_space(b[2]) || b[2] == '#'))
        return IMG_PNM;
    if (n >= 8 && memcmp(b, png_magic, 8) == 0) return IMG_PNG;
    if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return IMG_JPEG;
    return -1;
}

const char *img_format_name(int format)
{
    switch (format) {
    case IMG_PNM:
        return "PNM";
    case IMG_PNG:
        return "PNG";
    case IMG_JPEG:
        return "JPEG";
    default:
        return "unknown";
    }
}

/* ---- byte source ---------------------------------------------------------------- */

typedef struct src_s {
    FILE *f;                /* file source, or NULL */
    const unsigned char *m; /* memory source */
    size_t mlen, mpos;
    unsigned char pre[8]; /* file: peeked bytes, served again first */
    size_t pre_n, pre_pos;
    uint64_t off; /* bytes handed out so far */
    int ioerr;    /* errno of a failed read, 0 if none */
} src_t;

/* Up to n bytes into dst; fewer only at the end of the data or on a read
 * error (ioerr set). */
static size_t src_read(src_t *s, void *dst, size_t n)
{
    unsigned char *d = dst;
    size_t got = 0;
    if (!s->f) {
        got = s->mlen - s->mpos < n ? s->mlen - s->mpos : n;
        if (got) memcpy(d, s->m + s->mpos, got);
        s->mpos += got;
    } else {
        while (s->pre_pos < s->pre_n && got < n)
            d[got++] = s->pre[s->pre_pos++];
        if (got < n) {
            got += fread(d + got, 1, n - got, s->f);
            if (got < n && ferror(s->f)) s->ioerr = errno ? errno : EIO;
        }
    }
    s->off += got;
    return got;
}

/* The next byte, or -1 at the end. */
static int src_getc(src_t *s)
{
    unsigned char c;
    return src_read(s, &c, 1) == 1 ? c : -1;
}

/* Reads the first (up to 8) bytes into *magic without consuming them. */
static size_t src_peek(src_t *s, unsigned char magic[8])
{
    if (!s->f) {
        size_t n = s->mlen < 8 ? s->mlen : 8;
        if (n) memcpy(magic, s->m, n);
        return n;
    }
    s->pre_n = fread(s->pre, 1, sizeof s->pre, s->f);
    if (s->pre_n < sizeof s->pre && ferror(s->f)) s->ioerr = errno ? errno : EIO;
    memcpy(magic, s->pre, s->pre_n);
    return s->pre_n;
}

/* ---- library error plumbing ------------------------------------------------------- */

/* libpng: the error callback keeps the message and jumps back. */
typedef struct pngerr_s {
    char msg[MSG];
} pngerr_t;

static void png_error_cb(png_structp png, png_const_charp msg)
{
    pngerr_t *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg ? msg : "error");
    png_longjmp(png, 1);
}

static void png_warning_cb(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* libjpeg: the error manager first, so that cinfo->err is a jerr_t. */
typedef struct jerr_s {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    int eof; /* ran out of data */
} jerr_t;

static void jpeg_error_exit_cb(j_common_ptr c)
{
    longjmp(((jerr_t *)c->err)->jb, 1);
}

/* Warnings are ignored (libjpeg carries on past minor corruption), except
 * missing data, which libjpeg pads with gray: the end of the file, and a
 * scan that reaches a marker (an early EOI, say) before its last row. */
static void jpeg_emit_cb(j_common_ptr c, int level)
{
    jerr_t *e = (jerr_t *)c->err;
    if (level >= 0) return;
    e->pub.num_warnings++;
    if (e->pub.msg_code == JWRN_JPEG_EOF) {
        e->eof = 1;
        longjmp(e->jb, 1);
    }
    if (e->pub.msg_code == JWRN_HIT_MARKER) longjmp(e->jb, 1);
}

static void jpeg_output_cb(j_common_ptr c)
{
    (void)c;
}

static void jpeg_err_init(jerr_t *e)
{
    jpeg_std_error(&e->pub);
    e->pub.error_exit = jpeg_error_exit_cb;
    e->pub.emit_message = jpeg_emit_cb;
    e->pub.output_message = jpeg_output_cb;
}

/* ---- reader ---------------------------------------------------------------------- */

typedef struct jdec_s {
    struct jpeg_decompress_struct d; /* first: callbacks cast cinfo back */
    jerr_t e;
    struct jpeg_source_mgr sm;
    src_t *src;
    unsigned char buf[JBUF];
} jdec_t;

struct img_reader_s {
    char *name;
    img_info_t info;
    size_t rb;    /* bytes per row */
    uint32_t row; /* next row handed out */
    int failed;   /* a library longjmp'd out: its state is gone */
    src_t src;
    /* PNG */
    png_structp png;
    png_infop pinfo;
    pngerr_t pe;
    int png_eof;
    unsigned char *whole; /* Adam7: every row */
    png_bytep *rowp;
    /* JPEG */
    jdec_t *jd;
};

__attribute__((format(printf, 4, 5))) static int rfail(img_reader_t *r, char *err, size_t errlen,
                                                       const char *fmt, ...)
{
    if (err && errlen) {
        int n = snprintf(err, errlen, "%s: ", r->name);
        if (n >= 0 && (size_t)n < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

/*
 * Checks the dimensions in r->info against max_pixels and for byte counts
 * that do not fit, and sets r->rb. Called before anything is allocated
 * from the header.
 */
static int check_size(img_reader_t *r, uint64_t max_pixels, char *err, size_t errlen)
{
    const img_info_t *i = &r->info;
    uint64_t px = (uint64_t)i->width * i->height, per = (uint64_t)i->channels * i->depth;
    if (max_pixels && px > max_pixels)
        return rfail(r, err, errlen, "%u x %u image is larger than --max-pixels %llu (%llu pixels)",
                     i->width, i->height, (unsigned long long)max_pixels, (unsigned long long)px);
    uint64_t row = (uint64_t)i->width * per;
    if (row > SIZE_MAX || (i->height && row > UINT64_MAX / i->height) || row * i->height > SIZE_MAX)
        return rfail(r, err, errlen, "%u x %u image is too large for this machine", i->width,
                     i->height);
    r->rb = (size_t)row;
    return 0;
}

/* Message for a source that ran dry: a read error, or truncated data. */
static int fail_short(img_reader_t *r, const char *what, char *err, size_t errlen)
{
    if (r->src.ioerr)
        return rfail(r, err, errlen, "read error at byte offset %llu: %s",
                     (unsigned long long)r->src.off, strerror(r->src.ioerr));
    return rfail(r, err, errlen, "truncated %s", what);
}

/* ---- PNM reading ---- */

/* Skips the rest of a comment (its '#' was read). */
static void pnm_comment(src_t *s)
{
    int c;
    do
        c = src_getc(s);
    while (c != -1 && c != '\n' && c != '\r');
}

/* Skips whitespace and comments; returns the next other byte, or -1. */
static int pnm_skip(src_t *s)
{
    for (;;) {
        int c = src_getc(s);
        if (c == '#')
            pnm_comment(s);
        else if (c == -1 || !pnm_space(c))
            return c;
    }
}

/* One header number into *v; *term gets the byte after its digits. */
static int pnm_number(img_reader_t *r, const char *what, uint32_t *v, int *term, char *err,
                      size_t errlen)
{
    int c = pnm_skip(&r->src);
    if (c == -1) return fail_short(r, "PNM header", err, errlen);
    if (c < '0' || c > '9')
        return rfail(r, err, errlen,
                     "bad PNM header: expected the %s, found '%c' at byte offset %llu", what,
                     c >= 0x20 && c < 0x7f ? c : '?', (unsigned long long)r->src.off - 1);
    uint64_t x = 0;
    for (; c >= '0' && c <= '9'; c = src_getc(&r->src)) {
        x = x * 10 + (uint64_t)(c - '0');
        if (x > UINT32_MAX) return rfail(r, err, errlen, "bad PNM header: %s is too large", what);
    }
    *v = (uint32_t)x;
    *term = c;
    return 0;
}

static int pnm_open(img_reader_t *r, uint64_t max_pixels, char *err, size_t errlen)
{
    unsigned char m[2];
    if (src_read(&r->src, m, 2) != 2) return fail_short(r, "PNM header", err, errlen);
    if (m[1] != '5' && m[1] != '6') {
        static const char *const kind[] = {"ASCII bitmap", "ASCII", "ASCII", "bitmap", "", "",
                                           "PAM"};
        return rfail(r, err, errlen, "unsupported PNM type P%c (%s); only binary P5/P6", m[1],
                     kind[m[1] - '1']);
    }
    uint32_t w, h, maxval;
    int term;
    if (pnm_number(r, "width", &w, &term, err, errlen)) return -1;
    if (term != -1 && !pnm_space(term) && term != '#')
        return rfail(r, err, errlen, "bad PNM header: garbage after the width");
    if (term == '#') pnm_comment(&r->src);
    if (pnm_number(r, "height", &h, &term, err, errlen)) return -1;
    if (term != -1 && !pnm_space(term) && term != '#')
        return rfail(r, err, errlen, "bad PNM header: garbage after the height");
    if (term == '#') pnm_comment(&r->src);
    if (pnm_number(r, "maxval", &maxval, &term, err, errlen)) return -1;
    if (term == -1) return fail_short(r, "PNM header", err, errlen);
    if (!pnm_space(term))
        return rfail(r, err, errlen,
                     "bad PNM header: expected one whitespace byte after the maxval");
    if (w == 0 || h == 0) return rfail(r, err, errlen, "bad PNM header: image is %u x %u", w, h);
    if (maxval == 0 || maxval > PNM_MAXVAL)
        return rfail(r, err, errlen, "bad PNM header: maxval %u is not in 1..65535", maxval);
    r->info = (img_info_t){.width = w,
                           .height = h,
                           .channels = m[1] == '5' ? 1 : 3,
                           .depth = maxval <= 255 ? 1 : 2,
                           .maxval = maxval,
                           .format = IMG_PNM};
    return check_size(r, max_pixels, err, errlen);
}

/* Reads n rows of raster into dst; checks every sample against maxval. */
static int pnm_rows(img_reader_t *r, unsigned char *dst, uint32_t n, char *err, size_t errlen)
{
    size_t want = r->rb * n, got = src_read(&r->src, dst, want);
    if (got < want) {
        if (r->src.ioerr) return fail_short(r, "PNM raster", err, errlen);
        return rfail(r, err, errlen,
                     "truncated PNM raster: data ends in row %llu (byte offset %llu)",
                     (unsigned long long)r->row + got / r->rb, (unsigned long long)r->src.off);
    }
    uint32_t maxval = r->info.maxval;
    size_t per_row = r->rb / r->info.depth, ns = per_row * n;
    if (r->info.depth == 1) {
        if (maxval < 255)
            for (size_t i = 0; i < ns; i++)
                if (dst[i] > maxval)
                    return rfail(r, err, errlen, "sample %u > maxval %u at row %llu", dst[i],
                                 maxval, (unsigned long long)r->row + i / per_row);
        return 0;
    }
    /* big-endian in the file; native uint16_t in memory */
    for (size_t i = 0; i < ns; i++) {
        unsigned char *p = dst + 2 * i;
        uint16_t v = (uint16_t)(p[0] << 8 | p[1]);
        if (v > maxval)
            return rfail(r, err, errlen, "sample %u > maxval %u at row %llu", v, maxval,
                         (unsigned long long)r->row + i / per_row);
        memcpy(p, &v, 2);
    }
    return 0;
}

/* ---- PNG reading ---- */

static void png_read_cb(png_structp png, png_bytep data, size_t n)
{
    img_reader_t *r = png_get_io_ptr(png);
    if (src_read(&r->src, data, n) != n) {
        r->png_eof = 1;
        png_error(png, "unexpected end of data");
    }
}

/* The message after libpng jumped back (row: -1 while opening). */
static int png_fail(img_reader_t *r, long long row, char *err, size_t errlen)
{
    r->failed = 1;
    if (r->png_eof && r->src.ioerr) return fail_short(r, "PNG", err, errlen);
    if (r->png_eof) {
        if (row < 0)
            return rfail(r, err, errlen, "truncated PNG: data ends at byte offset %llu",
                         (unsigned long long)r->src.off);
        return rfail(r, err, errlen, "truncated PNG: data ends in row %lld (byte offset %llu)", row,
                     (unsigned long long)r->src.off);
    }
    if (row < 0) return rfail(r, err, errlen, "bad PNG: %s", r->pe.msg);
    return rfail(r, err, errlen, "bad PNG data in row %lld: %s", row, r->pe.msg);
}

/* Transforms, then the layout libpng will hand out. Inside png_open's
 * setjmp. */
static int png_setup(img_reader_t *r, uint64_t max_pixels, char *err, size_t errlen)
{
    png_uint_32 w, h;
    int bd, ct, il;
    png_get_IHDR(r->png, r->pinfo, &w, &h, &bd, &ct, &il, NULL, NULL);
    /* the size check on the header's numbers, before libpng allocates rows */
    r->info = (img_info_t){.width = w,
                           .height = h,
                           .channels = 4,
                           .depth = bd == 16 ? 2 : 1,
                           .maxval = bd == 16 ? 65535 : 255,
                           .format = IMG_PNG};
    if (check_size(r, max_pixels, err, errlen)) return -1;
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(r->png);
    if (ct == PNG_COLOR_TYPE_GRAY && bd < 8) png_set_expand_gray_1_2_4_to_8(r->png);
    if (png_get_valid(r->png, r->pinfo, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(r->png);
    if (bd == 16 && !NATIVE_BE) png_set_swap(r->png);
    png_set_interlace_handling(r->png);
    png_read_update_info(r->png, r->pinfo);
    r->info.channels = png_get_channels(r->png, r->pinfo);
    r->info.depth = png_get_bit_depth(r->png, r->pinfo) == 16 ? 2 : 1;
    r->info.maxval = r->info.depth == 2 ? 65535 : 255;
    if (r->info.channels < 1 || r->info.channels > 4)
        return rfail(r, err, errlen, "unsupported PNG layout (%u channels)", r->info.channels);
    if (check_size(r, max_pixels, err, errlen)) return -1;
    if (png_get_rowbytes(r->png, r->pinfo) != r->rb)
        return rfail(r, err, errlen, "unsupported PNG layout (%d-bit, color type %d)", bd, ct);
    if (il == PNG_INTERLACE_NONE) return 0;
    /* Adam7: the passes fill every row, so the image is decoded whole now */
    r->whole = malloc(r->rb * h);
    r->rowp = malloc(sizeof *r->rowp * h);
    if (!r->whole || !r->rowp)
        return rfail(r, err, errlen, "out of memory for an interlaced %u x %u image", w, h);
    for (uint32_t y = 0; y < h; y++)
        r->rowp[y] = r->whole + (size_t)y * r->rb;
    png_read_image(r->png, r->rowp);
    return 0;
}

static int png_open(img_reader_t *r, uint64_t max_pixels, char *err, size_t errlen)
{
    r->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r->pe, png_error_cb, png_warning_cb);
    if (r->png) r->pinfo = png_create_info_struct(r->png);
    if (!r->pinfo) return rfail(r, err, errlen, "out of memory");
    if (setjmp(png_jmpbuf(r->png))) return png_fail(r, -1, err, errlen);
    png_set_user_limits(r->png, PNG_DIM_MAX, PNG_DIM_MAX);
    png_set_chunk_cache_max(r->png, 1000);
    png_set_chunk_malloc_max(r->png, PNG_CHUNK_MAX);
    /* libpng 1.6.39 sizes its buffer for text and suggested-palette chunks
     * from the declared length before reading them, past the limit above:
     * a 61-byte file declaring a 2 GiB tEXt made it allocate and zero 2 GiB
     * (found by tests/fuzz/fuzz_image.c). mpimap uses none of them: they
     * are skipped unread, in small pieces. */
    static const png_byte skipped[] = "tEXt\0zTXt\0iTXt\0sPLT\0";
    png_set_keep_unknown_chunks(r->png, PNG_HANDLE_CHUNK_NEVER, skipped, 4);
    png_set_read_fn(r->png, r, png_read_cb);
    png_read_info(r->png, r->pinfo);
    return png_setup(r, max_pixels, err, errlen);
}

static int png_rows(img_reader_t *r, unsigned char *dst, uint32_t n, char *err, size_t errlen)
{
    if (r->whole) {
        memcpy(dst, r->whole + (size_t)r->row * r->rb, r->rb * n);
        r->row += n;
        return 0;
    }
    /* the progress lives in r: locals changed after setjmp are unreliable after longjmp */
    const uint32_t first = r->row, end = r->row + n;
    if (setjmp(png_jmpbuf(r->png))) return png_fail(r, r->row, err, errlen);
    for (; r->row < end; r->row++)
        png_read_row(r->png, dst + (size_t)(r->row - first) * r->rb, NULL);
    return 0;
}

/* ---- JPEG reading ---- */

static void jsrc_init(j_decompress_ptr d)
{
    (void)d;
}

/* Refills from the source; running dry is an error (see the top). */
static boolean jsrc_fill(j_decompress_ptr d)
{
    jdec_t *j = (jdec_t *)d;
    src_t *s = j->src;
    if (!s->f && s->mpos < s->mlen) { /* memory: hand out the rest in place */
        j->sm.next_input_byte = s->m + s->mpos;
        j->sm.bytes_in_buffer = s->mlen - s->mpos;
        s->off += s->mlen - s->mpos;
        s->mpos = s->mlen;
        return TRUE;
    }
    size_t n = s->f ? src_read(s, j->buf, sizeof j->buf) : 0;
    if (n == 0) {
        j->e.eof = 1;
        ERREXIT(d, JERR_INPUT_EOF);
    }
    j->sm.next_input_byte = j->buf;
    j->sm.bytes_in_buffer = n;
    return TRUE;
}

static void jsrc_skip(j_decompress_ptr d, long n)
{
    jdec_t *j = (jdec_t *)d;
    if (n <= 0) return;
    while ((size_t)n > j->sm.bytes_in_buffer) {
        n -= (long)j->sm.bytes_in_buffer;
        jsrc_fill(d);
    }
    j->sm.next_input_byte += n;
    j->sm.bytes_in_buffer -= (size_t)n;
}

static void jsrc_term(j_decompress_ptr d)
{
    (void)d;
}

/* The message after libjpeg jumped back (row: -1 while opening). */
static int jpeg_fail(img_reader_t *r, long long row, char *err, size_t errlen)
{
    jdec_t *j = r->jd;
    r->failed = 1;
    unsigned long long off = r->src.off; /* the end of the data, once it ran out */
    if (j->e.eof && r->src.ioerr) return fail_short(r, "JPEG", err, errlen);
    if (j->e.eof && row < 0)
        return rfail(r, err, errlen, "truncated JPEG: data ends at byte offset %llu", off);
    if (j->e.eof)
        return rfail(r, err, errlen, "truncated JPEG: data ends in row %lld (byte offset %llu)",
                     row, off);
    char msg[JMSG_LENGTH_MAX];
    (*j->e.pub.format_message)((j_common_ptr)&j->d, msg);
    if (row < 0) return rfail(r, err, errlen, "bad JPEG: %s", msg);
    return rfail(r, err, errlen, "bad JPEG data in row %lld: %s", row, msg);
}

/* After the header: color space and size checks, then the decoder. Inside
 * jpeg_open's setjmp. */
static int jpeg_setup(img_reader_t *r, uint64_t max_pixels, char *err, size_t errlen)
{
    j_decompress_ptr d = &r->jd->d;
    if (jpeg_read_header(d, TRUE) != JPEG_HEADER_OK)
        return rfail(r, err, errlen, "bad JPEG: no image in the file");
    if (d->jpeg_color_space == JCS_CMYK || d->jpeg_color_space == JCS_YCCK)
        return rfail(r, err, errlen, "%s JPEG images are not supported (only gray and RGB)",
                     d->jpeg_color_space == JCS_CMYK ? "CMYK" : "YCCK");
    if (d->num_components != 1 && d->num_components != 3)
        return rfail(r, err, errlen, "unsupported JPEG with %d color components",
                     d->num_components);
    d->out_color_space = d->num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    r->info = (img_info_t){.width = d->image_width,
                           .height = d->image_height,
                           .channels = (uint32_t)d->num_components,
                           .depth = 1,
                           .maxval = 255,
                           .format = IMG_JPEG};
    if (r->info.width == 0 || r->info.height == 0)
        return rfail(r, err, errlen, "bad JPEG: image is %u x %u", r->info.width, r->info.height);
    if (check_size(r, max_pixels, err, errlen)) return -1;
    jpeg_start_decompress(d);
    if (d->output_width != r->info.width || d->output_height != r->info.height ||
        (uint32_t)d->output_components != r->info.channels)
        return rfail(r, err, errlen, "unexpected JPEG output layout");
    return 0;
}

static int jpeg_open(img_reader_t *r, uint64_t max_pixels, char *err, size_t errlen)
{
    jdec_t *j = r->jd = calloc(1, sizeof *r->jd);
    if (!j) return rfail(r, err, errlen, "out of memory");
    j->src = &r->src;
    jpeg_err_init(&j->e);
    j->d.err = &j->e.pub;
    if (setjmp(j->e.jb)) return jpeg_fail(r, -1, err, errlen);
    jpeg_create_decompress(&j->d);
    j->sm.init_source = jsrc_init;
    j->sm.fill_input_buffer = jsrc_fill;
    j->sm.skip_input_data = jsrc_skip;
    j->sm.resync_to_restart = jpeg_resync_to_restart;
    j->sm.term_source = jsrc_term;
    j->d.src = &j->sm;
    return jpeg_setup(r, max_pixels, err, errlen);
}

static int jpeg_rows(img_reader_t *r, unsigned char *dst, uint32_t n, char *err, size_t errlen)
{
    jdec_t *j = r->jd;
    const uint32_t first = r->row, end = r->row + n;
    if (setjmp(j->e.jb)) return jpeg_fail(r, r->row, err, errlen);
    while (r->row < end) {
        JSAMPROW row = dst + (size_t)(r->row - first) * r->rb;
        if (jpeg_read_scanlines(&j->d, &row, 1) != 1) {
            r->failed = 1;
            return rfail(r, err, errlen, "bad JPEG: no data for row %u", r->row);
        }
        r->row++;
    }
    return 0;
}

/* ---- reader entry points ---- */

/* Picks the codec from the first bytes and reads the header. */
static int reader_start(img_reader_t *r, uint64_t max_pixels, img_info_t *info, char *err,
                        size_t errlen)
{
    unsigned char m[8];
    size_t n = src_peek(&r->src, m);
    if (n == 0 && r->src.ioerr) return fail_short(r, "file", err, errlen);
    if (n == 0) return rfail(r, err, errlen, "empty file");
    int rc;
    if (n >= 2 && m[0] == 'P' && m[1] >= '1' && m[1] <= '7' && m[1] != '5' && m[1] != '6' &&
        (n == 2 || pnm_space(m[2]) || m[2] == '#'))
        rc = pnm_open(r, max_pixels, err, errlen); /* an unsupported PNM: say which */
    else
        switch (img_format_sniff(m, n)) {
        case IMG_PNM:
            rc = pnm_open(r, max_pixels, err, errlen);
            break;
        case IMG_PNG:
            rc = png_open(r, max_pixels, err, errlen);
            break;
        case IMG_JPEG:
            rc = jpeg_open(r, max_pixels, err, errlen);
            break;
        default:
            if (r->src.ioerr) return fail_short(r, "file", err, errlen);
            return rfail(r, err, errlen, "not a PNM, PNG or JPEG image");
        }
    if (rc == 0 && info) *info = r->info;
    return rc;
}

static img_reader_t *reader_new(const char *name)
{
    img_reader_t *r = calloc(1, sizeof *r);
    if (r && !(r->name = strdup(name ? name : "(image)"))) {
        free(r);
        r = NULL;
    }
    return r;
}

int img_reader_open_file(img_reader_t **rp, const char *path, uint64_t max_pixels, img_info_t *info,
                         char *err, size_t errlen)
{
    *rp = NULL;
    img_reader_t *r = reader_new(path);
    if (!r) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    r->src.f = fopen(path, "rbe");
    if (!r->src.f) {
        rfail(r, err, errlen, "cannot open: %s", strerror(errno));
        img_reader_close(r);
        return -1;
    }
    setvbuf(r->src.f, NULL, _IOFBF, FILE_BUF);
    if (reader_start(r, max_pixels, info, err, errlen)) {
        img_reader_close(r);
        return -1;
    }
    *rp = r;
    return 0;
}

int img_reader_open_mem(img_reader_t **rp, const char *name, const void *p, size_t n,
                        uint64_t max_pixels, img_info_t *info, char *err, size_t errlen)
{
    *rp = NULL;
    img_reader_t *r = reader_new(name);
    if (!r) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    r->src.m = p;
    r->src.mlen = p ? n : 0;
    if (reader_start(r, max_pixels, info, err, errlen)) {
        img_reader_close(r);
        return -1;
    }
    *rp = r;
    return 0;
}

int img_reader_rows(img_reader_t *r, void *dst, uint32_t n, char *err, size_t errlen)
{
    if (n == 0) return 0;
    if (r->failed) return rfail(r, err, errlen, "cannot read on after an error");
    if (n > r->info.height - r->row)
        return rfail(r, err, errlen, "rows %u..%llu asked for, the image has %u rows", r->row,
                     (unsigned long long)r->row + n - 1, r->info.height);
    int rc;
    switch (r->info.format) {
    case IMG_PNM:
        rc = pnm_rows(r, dst, n, err, errlen);
        if (rc)
            r->failed = 1;
        else
            r->row += n;
        return rc;
    case IMG_PNG:
        return png_rows(r, dst, n, err, errlen);
    default:
        return jpeg_rows(r, dst, n, err, errlen);
    }
}

void img_reader_close(img_reader_t *r)
{
    if (!r) return;
    if (r->png) png_destroy_read_struct(&r->png, r->pinfo ? &r->pinfo : NULL, NULL);
    if (r->jd) {
        jpeg_destroy_decompress(&r->jd->d);
        free(r->jd);
    }
    free(r->whole);
    free(r->rowp);
    if (r->src.f) fclose(r->src.f);
    free(r->name);
    free(r);
}

/* ---- writer ---------------------------------------------------------------------- */

typedef struct jenc_s {
    struct jpeg_compress_struct c; /* first: callbacks cast cinfo back */
    jerr_t e;
    struct jpeg_destination_mgr dm;
    img_writer_t *w;
    unsigned char buf[JBUF];
} jenc_t;

struct img_writer_s {
    int format;
    img_info_t in; /* layout of the rows pushed */
    img_write_fn fn;
    void *ctx;
    uint32_t row; /* rows written */
    int failed;   /* sticky: a library's state is gone after its longjmp */
    int finished;
    int cb_failed;      /* the callback refused bytes */
    uint32_t oc;        /* channels written */
    uint32_t odepth;    /* bytes per sample written */
    size_t irb, orb;    /* bytes per row in and out */
    int convert;        /* rows go through tmp */
    uint16_t *lut;      /* maxval + 1 scaled samples, or NULL */
    unsigned char *tmp; /* one converted row */
    struct zpng_s *zp; /* PNG */
    jenc_t *je;
};

__attribute__((format(printf, 4, 5))) static int wfail(img_writer_t *w, char *err, size_t errlen,
                                                       const char *fmt, ...)
{
    if (w) w->failed = 1;
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Bytes out through the callback; 0 or -1 (cb_failed set). */
static int emit(img_writer_t *w, const void *p, size_t n)
{
    if (w->fn(w->ctx, p, n) == 0) return 0;
    w->cb_failed = 1;
    return -1;
}

static int fail_cb(img_writer_t *w, char *err, size_t errlen)
{
    return wfail(w, err, errlen, "cannot write the encoded image");
}

/* One row in the written layout: alpha dropped, samples scaled through the
 * table, 16-bit samples big-endian (as PNM and PNG store them). */
static void convert_row(const img_writer_t *w, const unsigned char *src, unsigned char *dst)
{
    const uint32_t ic = w->in.channels, oc = w->oc, mv = w->in.maxval;
    for (size_t x = 0; x < w->in.width; x++)
        for (uint32_t c = 0; c < oc; c++) {
            size_t i = x * ic + c, o = x * oc + c;
            uint32_t v;
            if (w->in.depth == 1) {
                v = src[i];
            } else {
                uint16_t t;
                memcpy(&t, src + 2 * i, 2);
                v = t;
            }
            if (w->lut) v = w->lut[v > mv ? mv : v];
            if (w->odepth == 1) {
                dst[o] = (unsigned char)v;
            } else {
                dst[2 * o] = (unsigned char)(v >> 8);
                dst[2 * o + 1] = (unsigned char)v;
            }
        }
}

/* Row y of the pushed rows, converted if need be. */
static const unsigned char *out_row(img_writer_t *w, const unsigned char *rows, uint32_t i)
{
    const unsigned char *src = rows + (size_t)i * w->irb;
    if (!w->convert) return src;
    convert_row(w, src, w->tmp);
    return w->tmp;
}

/* ---- PNM writing ---- */

static int pnm_wstart(img_writer_t *w, char *err, size_t errlen)
{
    char h[64];
    int n = snprintf(h, sizeof h, "P%c\n%u %u\n%u\n", w->oc == 1 ? '5' : '6', w->in.width,
                     w->in.height, w->in.maxval);
    return emit(w, h, (size_t)n) ? fail_cb(w, err, errlen) : 0;
}

static int pnm_wrows(img_writer_t *w, const unsigned char *rows, uint32_t n, char *err,
                     size_t errlen)
{
    if (!w->convert) { /* the rows are the raster already */
        if (emit(w, rows, w->irb * n)) return fail_cb(w, err, errlen);
        w->row += n;
        return 0;
    }
    for (uint32_t i = 0; i < n; i++, w->row++)
        if (emit(w, out_row(w, rows, i), w->orb)) return fail_cb(w, err, errlen);
    return 0;
}

/* ---- PNG writing ---- */

/* One deflate block of filtered rows (see img.h). */
typedef struct zblock_s {
    unsigned char *in, *out;
    size_t in_len, out_len;
    uLong adler;  /* of in */
    int last;     /* ends the stream (Z_FINISH) rather than with a full flush */
    int state;    /* 0 queued, 1 being compressed, 2 done, -1 failed */
} zblock_t;

typedef struct zpng_s {
    int level;
    int nthreads; /* compressing threads besides the caller (0: the caller does it) */
    pthread_t *th;
    int started; /* threads running */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    zblock_t *ring; /* block k in ring[k % cap] for k in [emitted, submitted) */
    size_t cap;
    uint64_t submitted, emitted, taken;
    int stop;
    zblock_t fill; /* being filled */
    unsigned char *prev, *cand[5]; /* previous row (zeros at first), the five filterings */
    uLong adler;
    int header_done;
} zpng_t;

static int put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
    return 4;
}

/* One PNG chunk: length, type, data (in up to two pieces), CRC. */
static int png_chunk(img_writer_t *w, const char *type, const void *a, size_t na, const void *b,
                     size_t nb)
{
    unsigned char h[8];
    put_be32(h, (uint32_t)(na + nb));
    memcpy(h + 4, type, 4);
    uLong crc = crc32(0L, (const Bytef *)type, 4);
    if (na) crc = crc32(crc, a, (uInt)na);
    if (nb) crc = crc32(crc, b, (uInt)nb);
    unsigned char t[4];
    put_be32(t, (uint32_t)crc);
    return emit(w, h, 8) || (na && emit(w, a, na)) || (nb && emit(w, b, nb)) || emit(w, t, 4) ? -1
                                                                                                : 0;
}

/* Deflates one block on its own (raw deflate, 32 KiB window, no preset
 * dictionary). 0 or -1 (out of memory). */
static int zblock_compress(zblock_t *b, int level)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
    size_t cap = deflateBound(&z, (uLong)b->in_len) + 64;
    b->out = malloc(cap);
    int rc = b->out ? 0 : -1;
    z.next_in = b->in;
    z.avail_in = (uInt)b->in_len;
    z.next_out = b->out;
    z.avail_out = (uInt)cap;
    if (rc == 0) {
        int r = deflate(&z, b->last ? Z_FINISH : Z_FULL_FLUSH);
        if ((b->last && r != Z_STREAM_END) || (!b->last && r != Z_OK) || z.avail_in) rc = -1;
    }
    b->out_len = cap - z.avail_out;
    b->adler = adler32(adler32(0L, NULL, 0), b->in, (uInt)b->in_len);
    deflateEnd(&z);
    return rc;
}

static void *zpng_main(void *arg)
{
    zpng_t *z = arg;
    pthread_mutex_lock(&z->mu);
    for (;;) {
        while (!z->stop && z->taken == z->submitted) pthread_cond_wait(&z->cv, &z->mu);
        if (z->taken == z->submitted) break;
        zblock_t *b = &z->ring[z->taken++ % z->cap];
        b->state = 1;
        pthread_mutex_unlock(&z->mu);
        int bad = zblock_compress(b, z->level);
        pthread_mutex_lock(&z->mu);
        b->state = bad ? -1 : 2;
        pthread_cond_broadcast(&z->cv);
    }
    pthread_mutex_unlock(&z->mu);
    return NULL;
}

/* Writes the oldest block once compressed (waiting for it when `wait`).
 * 1 written, 0 not ready, -1 failed. */
static int zpng_emit_one(img_writer_t *w, int wait)
{
    zpng_t *z = w->zp;
    if (z->emitted == z->submitted) return 0;
    zblock_t *b = &z->ring[z->emitted % z->cap];
    if (z->nthreads) {
        pthread_mutex_lock(&z->mu);
        while (wait && b->state < 2 && b->state >= 0) pthread_cond_wait(&z->cv, &z->mu);
        int st = b->state;
        pthread_mutex_unlock(&z->mu);
        if (st == 0 || st == 1) return 0;
    } else if (b->state == 0) {
        b->state = zblock_compress(b, z->level) ? -1 : 2;
    }
    if (b->state < 0) return -1;
    /* The zlib header opens the first IDAT, the Adler-32 closes the last. */
    unsigned char head[2] = {0x78, 0x01}, tail[4];
    static const unsigned char flevel[10] = {0, 0, 1, 1, 1, 1, 2, 3, 3, 3};
    head[1] = (unsigned char)(flevel[z->level] << 6);
    unsigned check = (0x78u << 8 | head[1]) % 31; /* FCHECK: CMF * 256 + FLG divisible by 31 */
    if (check) head[1] = (unsigned char)(head[1] + 31 - check);
    z->adler = adler32_combine(z->adler, b->adler, (z_off_t)b->in_len);
    put_be32(tail, (uint32_t)z->adler);
    int rc;
    if (!z->header_done) {
        unsigned char *t = malloc(b->out_len + 6);
        if (!t) return -1;
        memcpy(t, head, 2);
        memcpy(t + 2, b->out, b->out_len);
        size_t n = b->out_len + 2;
        if (b->last) {
            memcpy(t + n, tail, 4);
            n += 4;
        }
        rc = png_chunk(w, "IDAT", t, n, NULL, 0);
        free(t);
        z->header_done = 1;
    } else {
        rc = png_chunk(w, "IDAT", b->out, b->out_len, tail, b->last ? 4 : 0);
    }
    free(b->in);
    free(b->out);
    b->in = b->out = NULL;
    z->emitted++;
    return rc ? -2 : 1;
}

/* Hands the filled block over (to the threads, or compresses it here) and
 * writes what is ready; waits while the ring is full. 0 or -1/-2. */
static int zpng_submit(img_writer_t *w, int last)
{
    zpng_t *z = w->zp;
    int r;
    while (z->submitted - z->emitted == z->cap)
        if ((r = zpng_emit_one(w, 1)) < 0) return r;
    z->fill.last = last;
    z->fill.state = 0;
    if (z->nthreads) pthread_mutex_lock(&z->mu);
    z->ring[z->submitted % z->cap] = z->fill;
    z->submitted++;
    if (z->nthreads) {
        pthread_cond_broadcast(&z->cv);
        pthread_mutex_unlock(&z->mu);
    }
    memset(&z->fill, 0, sizeof z->fill);
    if (!last && !(z->fill.in = malloc(IMG_PNG_BLOCK + 1 + w->orb))) return -1;
    while ((r = zpng_emit_one(w, last || !z->nthreads)) > 0) {
    }
    return r;
}

static int png_wfail(img_writer_t *w, int r, char *err, size_t errlen)
{
    if (r == -2 || w->cb_failed) return fail_cb(w, err, errlen);
    return wfail(w, err, errlen, "PNG encoder: out of memory");
}

static int png_wstart(img_writer_t *w, const img_wopts_t *o, char *err, size_t errlen)
{
    zpng_t *z = calloc(1, sizeof *z);
    if (!z) return wfail(w, err, errlen, "out of memory");
    w->zp = z;
    z->level = o ? o->png_level : 6;
    z->nthreads = o && o->threads > 1 ? o->threads : 0;
    z->cap = z->nthreads ? 2 * (size_t)z->nthreads + 2 : 1;
    z->ring = calloc(z->cap, sizeof *z->ring);
    z->prev = calloc(1, w->orb + 1);
    z->fill.in = malloc(IMG_PNG_BLOCK + 1 + w->orb);
    z->adler = adler32(0L, NULL, 0);
    int bad = !z->ring || !z->prev || !z->fill.in;
    for (int f = 0; f < 5 && !bad; f++) bad = !(z->cand[f] = malloc(w->orb + 1));
    if (bad) return wfail(w, err, errlen, "out of memory");
    pthread_mutex_init(&z->mu, NULL);
    pthread_cond_init(&z->cv, NULL);
    if (z->nthreads) {
        if (!(z->th = calloc((size_t)z->nthreads, sizeof *z->th)))
            return wfail(w, err, errlen, "out of memory");
        for (int t = 0; t < z->nthreads; t++)
            if (pthread_create(&z->th[t], NULL, zpng_main, z) == 0) z->started++;
        if (z->started == 0) z->nthreads = 0; /* compress here after all */
    }
    static const unsigned char type[] = {0, 4, 2, 6}; /* gray, GA, RGB, RGBA */
    unsigned char ihdr[13];
    put_be32(ihdr, w->in.width);
    put_be32(ihdr + 4, w->in.height);
    ihdr[8] = (unsigned char)(w->odepth * 8);
    ihdr[9] = type[w->oc - 1];
    ihdr[10] = ihdr[11] = ihdr[12] = 0; /* deflate, adaptive filtering, no interlace */
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (emit(w, sig, 8) || png_chunk(w, "IHDR", ihdr, 13, NULL, 0)) return fail_cb(w, err, errlen);
    return 0;
}

/* Filters one row into cand[] and appends the best (libpng's heuristic: the
 * smallest sum of the bytes read as signed) to the block being filled. */
static void png_filter_row(img_writer_t *w, const unsigned char *row)
{
    zpng_t *z = w->zp;
    const size_t n = w->orb, bpp = (size_t)w->oc * w->odepth;
    const unsigned char *up = z->prev;
    unsigned char *c0 = z->cand[0], *c1 = z->cand[1], *c2 = z->cand[2], *c3 = z->cand[3],
                  *c4 = z->cand[4];
    for (size_t i = 0; i < n; i++) {
        int a = i >= bpp ? row[i - bpp] : 0, b = up[i], c = i >= bpp ? up[i - bpp] : 0;
        int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
        int pr = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
        c0[i] = row[i];
        c1[i] = (unsigned char)(row[i] - a);
        c2[i] = (unsigned char)(row[i] - b);
        c3[i] = (unsigned char)(row[i] - ((a + b) >> 1));
        c4[i] = (unsigned char)(row[i] - pr);
    }
    int best = 0;
    uint64_t best_sum = UINT64_MAX;
    for (int f = 0; f < 5; f++) {
        uint64_t sum = 0;
        const unsigned char *cf = z->cand[f];
        for (size_t i = 0; i < n; i++) sum += (uint64_t)abs((int)(signed char)cf[i]);
        if (sum < best_sum) {
            best_sum = sum;
            best = f;
        }
    }
    unsigned char *dst = z->fill.in + z->fill.in_len;
    dst[0] = (unsigned char)best;
    memcpy(dst + 1, z->cand[best], n);
    z->fill.in_len += n + 1;
    memcpy(z->prev, row, n);
}

static int png_wrows(img_writer_t *w, const unsigned char *rows, uint32_t n, char *err,
                     size_t errlen)
{
    zpng_t *z = w->zp;
    const uint32_t first = w->row, end = w->row + n;
    for (; w->row < end; w->row++) {
        png_filter_row(w, out_row(w, rows, w->row - first));
        if (z->fill.in_len >= IMG_PNG_BLOCK) {
            int r = zpng_submit(w, 0);
            if (r < 0) return png_wfail(w, r, err, errlen);
        }
    }
    return 0;
}

static int png_wfinish(img_writer_t *w, char *err, size_t errlen)
{
    int r = zpng_submit(w, 1);
    if (r == 0 && w->zp->emitted != w->zp->submitted) r = -1;
    if (r < 0) return png_wfail(w, r, err, errlen);
    if (png_chunk(w, "IEND", NULL, 0, NULL, 0)) return fail_cb(w, err, errlen);
    return 0;
}

static void png_wfree(zpng_t *z)
{
    if (!z) return;
    if (z->started) {
        pthread_mutex_lock(&z->mu);
        z->stop = 1;
        z->taken = z->submitted; /* abandon what is queued */
        pthread_cond_broadcast(&z->cv);
        pthread_mutex_unlock(&z->mu);
        for (int t = 0; t < z->started; t++) pthread_join(z->th[t], NULL);
    }
    if (z->ring)
        for (uint64_t k = z->emitted; k < z->submitted; k++) {
            free(z->ring[k % z->cap].in);
            free(z->ring[k % z->cap].out);
        }
    free(z->fill.in);
    free(z->ring);
    free(z->prev);
    for (int f = 0; f < 5; f++) free(z->cand[f]);
    free(z->th);
    pthread_mutex_destroy(&z->mu);
    pthread_cond_destroy(&z->cv);
    free(z);
}

/* ---- JPEG writing ---- */

static void jdst_init(j_compress_ptr c)
{
    jenc_t *j = (jenc_t *)c;
    j->dm.next_output_byte = j->buf;
    j->dm.free_in_buffer = sizeof j->buf;
}

/* The buffer is full: all of it goes out, whatever free_in_buffer says. */
static boolean jdst_empty(j_compress_ptr c)
{
    jenc_t *j = (jenc_t *)c;
    if (emit(j->w, j->buf, sizeof j->buf)) ERREXIT(c, JERR_FILE_WRITE);
    jdst_init(c);
    return TRUE;
}

static void jdst_term(j_compress_ptr c)
{
    jenc_t *j = (jenc_t *)c;
    size_t n = sizeof j->buf - j->dm.free_in_buffer;
    if (n && emit(j->w, j->buf, n)) ERREXIT(c, JERR_FILE_WRITE);
}

static int jpeg_wfail(img_writer_t *w, char *err, size_t errlen)
{
    if (w->cb_failed) return fail_cb(w, err, errlen);
    char msg[JMSG_LENGTH_MAX];
    (*w->je->e.pub.format_message)((j_common_ptr)&w->je->c, msg);
    return wfail(w, err, errlen, "JPEG encoder: %s", msg);
}

static int jpeg_wstart(img_writer_t *w, int quality, char *err, size_t errlen)
{
    jenc_t *j = w->je = calloc(1, sizeof *w->je);
    if (!j) return wfail(w, err, errlen, "out of memory");
    j->w = w;
    jpeg_err_init(&j->e);
    j->c.err = &j->e.pub;
    if (setjmp(j->e.jb)) return jpeg_wfail(w, err, errlen);
    jpeg_create_compress(&j->c);
    j->dm.init_destination = jdst_init;
    j->dm.empty_output_buffer = jdst_empty;
    j->dm.term_destination = jdst_term;
    j->c.dest = &j->dm;
    j->c.image_width = w->in.width;
    j->c.image_height = w->in.height;
    j->c.input_components = (int)w->oc;
    j->c.in_color_space = w->oc == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&j->c);
    jpeg_set_quality(&j->c, quality, TRUE);
    j->c.optimize_coding = FALSE;
    jpeg_start_compress(&j->c, TRUE);
    return 0;
}

static int jpeg_wrows(img_writer_t *w, const unsigned char *rows, uint32_t n, char *err,
                      size_t errlen)
{
    const uint32_t first = w->row, end = w->row + n;
    if (setjmp(w->je->e.jb)) return jpeg_wfail(w, err, errlen);
    for (; w->row < end; w->row++) {
        JSAMPROW row = (JSAMPROW)out_row(w, rows, w->row - first); /* always tmp */
        jpeg_write_scanlines(&w->je->c, &row, 1);
    }
    return 0;
}

static int jpeg_wfinish(img_writer_t *w, char *err, size_t errlen)
{
    if (setjmp(w->je->e.jb)) return jpeg_wfail(w, err, errlen);
    jpeg_finish_compress(&w->je->c);
    return 0;
}

/* ---- writer entry points ---- */

/* What the caller asks for is possible; 0 or -1 with a message. */
static int writer_check(int format, const img_info_t *i, const img_wopts_t *o, img_write_fn fn,
                        char *err, size_t errlen)
{
    if (format != IMG_PNM && format != IMG_PNG && format != IMG_JPEG)
        return wfail(NULL, err, errlen, "unknown image format %d", format);
    if (!fn) return wfail(NULL, err, errlen, "no output callback");
    if (i->channels < 1 || i->channels > 4 || (i->depth != 1 && i->depth != 2) || i->maxval < 1 ||
        i->maxval > 65535 || (i->depth == 1) != (i->maxval <= 255))
        return wfail(NULL, err, errlen, "bad image layout (%u channels, depth %u, maxval %u)",
                     i->channels, i->depth, i->maxval);
    if (i->width == 0 || i->height == 0)
        return wfail(NULL, err, errlen, "cannot write a %u x %u image", i->width, i->height);
    if ((uint64_t)i->width * i->channels * i->depth > SIZE_MAX)
        return wfail(NULL, err, errlen, "%u x %u image is too large", i->width, i->height);
    if (format == IMG_PNG && (i->width > PNG_UINT_31_MAX || i->height > PNG_UINT_31_MAX))
        return wfail(NULL, err, errlen, "%u x %u image is too large for PNG", i->width, i->height);
    if (format == IMG_JPEG && (i->width > JPEG_MAX_DIMENSION || i->height > JPEG_MAX_DIMENSION))
        return wfail(NULL, err, errlen, "%u x %u image is too large for JPEG (at most %d x %d)",
                     i->width, i->height, (int)JPEG_MAX_DIMENSION, (int)JPEG_MAX_DIMENSION);
    if (o && (o->jpeg_quality < 1 || o->jpeg_quality > 100))
        return wfail(NULL, err, errlen, "JPEG quality %d is not in 1..100", o->jpeg_quality);
    if (o && (o->png_level < 0 || o->png_level > 9))
        return wfail(NULL, err, errlen, "PNG compression level %d is not in 0..9", o->png_level);
    return 0;
}

/* Decides the written layout and the conversion (see img.h). */
static int writer_layout(img_writer_t *w, char *err, size_t errlen)
{
    const img_info_t *i = &w->in;
    int alpha = i->channels == 2 || i->channels == 4;
    w->oc = alpha && w->format != IMG_PNG ? i->channels - 1 : i->channels;
    w->odepth = w->format == IMG_JPEG ? 1 : i->depth;
    uint32_t full = w->format == IMG_PNM ? i->maxval : w->odepth == 1 ? 255 : 65535;
    w->irb = img_row_bytes(i);
    w->orb = (size_t)i->width * w->oc * w->odepth;
    if (full != i->maxval) { /* rounded half up */
        w->lut = malloc(sizeof *w->lut * (i->maxval + 1));
        if (!w->lut) return wfail(w, err, errlen, "out of memory");
        for (uint64_t v = 0; v <= i->maxval; v++)
            w->lut[v] = (uint16_t)((v * full * 2 + i->maxval) / (2 * (uint64_t)i->maxval));
    }
    /* JPEG always copies: libjpeg takes non-const rows */
    w->convert = w->lut || w->oc != i->channels || w->odepth == 2 || w->format == IMG_JPEG;
    if (w->convert && !(w->tmp = malloc(w->orb))) return wfail(w, err, errlen, "out of memory");
    return 0;
}

int img_writer_open(img_writer_t **wp, int format, const img_info_t *info, const img_wopts_t *o,
                    img_write_fn fn, void *ctx, int *dropped_alpha, char *err, size_t errlen)
{
    *wp = NULL;
    if (dropped_alpha) *dropped_alpha = 0;
    if (writer_check(format, info, o, fn, err, errlen)) return -1;
    img_writer_t *w = calloc(1, sizeof *w);
    if (!w) return wfail(NULL, err, errlen, "out of memory");
    w->format = format;
    w->in = *info;
    w->fn = fn;
    w->ctx = ctx;
    int rc = writer_layout(w, err, errlen);
    if (rc == 0) {
        if (format == IMG_PNM)
            rc = pnm_wstart(w, err, errlen);
        else if (format == IMG_PNG)
            rc = png_wstart(w, o, err, errlen);
        else
            rc = jpeg_wstart(w, o ? o->jpeg_quality : 90, err, errlen);
    }
    if (rc) {
        img_writer_free(w);
        return -1;
    }
    if (dropped_alpha) *dropped_alpha = w->oc != info->channels;
    *wp = w;
    return 0;
}

int img_writer_rows(img_writer_t *w, const void *rows, uint32_t n, char *err, size_t errlen)
{
    if (n == 0) return 0;
    if (w->failed) return wfail(w, err, errlen, "cannot write on after an error");
    if (n > w->in.height - w->row)
        return wfail(w, err, errlen, "%llu rows written, the image has %u",
                     (unsigned long long)w->row + n, w->in.height);
    if (w->format == IMG_PNM) return pnm_wrows(w, rows, n, err, errlen);
    if (w->format == IMG_PNG) return png_wrows(w, rows, n, err, errlen);
    return jpeg_wrows(w, rows, n, err, errlen);
}

int img_writer_finish(img_writer_t *w, char *err, size_t errlen)
{
    if (w->failed) return wfail(w, err, errlen, "cannot finish after an error");
    if (w->finished) return wfail(w, err, errlen, "image already finished");
    if (w->row < w->in.height)
        return wfail(w, err, errlen, "only %u of %u rows were written", w->row, w->in.height);
    w->finished = 1;
    if (w->format == IMG_PNG) return png_wfinish(w, err, errlen);
    if (w->format == IMG_JPEG) return jpeg_wfinish(w, err, errlen);
    return 0;
}

void img_writer_free(img_writer_t *w)
{
    if (!w) return;
    png_wfree(w->zp);
    if (w->je) {
        jpeg_destroy_compress(&w->je->c);
        free(w->je);
    }
    free(w->lut);
    free(w->tmp);
    free(w);
}
