/*
 * fuzz_image.c - the image decoders (imgio.c, img.h): PNM (binary P5/P6,
 * 8- and 16-bit, any maxval, comments and whitespace in the header; P1-P4
 * and P7 are refused), PNG (every bit depth and color type, palette, tRNS,
 * Adam7) and JPEG, all through the one memory entry point: the input is a
 * whole image file, its format sniffed from the first bytes
 * (img_format_sniff), opened with img_reader_open_mem under a pixel cap of
 * CAP, read row by row in strips of a size picked from the input's length
 * (1, 3 or 16 rows, or the whole image) into a buffer sized from the info,
 * then closed.
 *
 * Checked, beyond no crash, leak or sanitizer report:
 *   - every failure leaves a message; after one, no further read succeeds;
 *   - an opened image has the sniffed format, a sane info (1..4 channels,
 *     depth 1 iff maxval <= 255, PNM gray/RGB, JPEG 8-bit gray/RGB,
 *     width * height <= CAP) and row bytes = width * channels * depth;
 *   - the width and height match the header as parsed here (PNM header,
 *     PNG IHDR, JPEG SOF), and a header declaring more than CAP pixels is
 *     refused at open, with an error (so nothing was allocated from it);
 *   - a PNM that decodes gives exactly its raster bytes (16-bit samples
 *     big-endian in the file, native in memory), every sample <= maxval;
 *   - exactly height rows can be read: one row more is refused.
 *
 * Found by this target: a PNG whose tEXt, zTXt, iTXt or sPLT chunk declared
 * a length near 2^31 made libpng 1.6.39 allocate and zero that much (2 GiB,
 * 20 s) inside png_read_info, past png_set_chunk_malloc_max. imgio.c now
 * skips those chunks unread; the inputs are in the corpus (png-huge-*).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "img.h"

#define CAP ((uint64_t)1 << 22) /* max_pixels: 4 Mpx, at most 32 MiB of rows */
#define STRIP_MAX ((size_t)4 << 20) /* a whole-image strip only up to this size */

/* The dimensions a header declares, as read here independently of imgio.c. */
typedef struct decl_s {
    int known;          /* 1 when the header was parsed */
    uint64_t w, h;      /* declared size */
    uint32_t maxval;    /* PNM */
    uint32_t channels;  /* PNM */
    size_t raster;      /* PNM: offset of the raster */
} decl_t;

static int space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* PNM P5/P6 header, by the grammar imgio.c documents: numbers separated by
 * whitespace and '#' comments (to the end of the line), exactly one
 * whitespace byte after the maxval. */
static void decl_pnm(const uint8_t *d, size_t n, decl_t *o)
{
    if (n < 2 || d[0] != 'P' || (d[1] != '5' && d[1] != '6')) return;
    size_t i = 2;
    uint64_t v[3];
    for (int k = 0; k < 3; k++) {
        for (;;) { /* whitespace and comments */
            if (i < n && space(d[i])) {
                i++;
            } else if (i < n && d[i] == '#') {
                while (i < n && d[i] != '\n' && d[i] != '\r')
                    i++;
                if (i < n) i++;
            } else {
                break;
            }
        }
        if (i >= n || d[i] < '0' || d[i] > '9') return;
        uint64_t x = 0;
        for (; i < n && d[i] >= '0' && d[i] <= '9'; i++) {
            x = x * 10 + (uint64_t)(d[i] - '0');
            if (x > UINT32_MAX) return;
        }
        v[k] = x;
        if (i >= n) return;
        if (k < 2 && !space(d[i]) && d[i] != '#') return;
        if (k == 2 && !space(d[i])) return;
        if (d[i] != '#') i++; /* a '#' starts a comment, skipped above */
    }
    o->known = 1;
    o->w = v[0];
    o->h = v[1];
    o->maxval = (uint32_t)v[2];
    o->channels = d[1] == '5' ? 1 : 3;
    o->raster = i;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* PNG: the IHDR that must come first. */
static void decl_png(const uint8_t *d, size_t n, decl_t *o)
{
    if (n < 24 || memcmp(d + 12, "IHDR", 4) != 0) return;
    o->known = 1;
    o->w = be32(d + 16);
    o->h = be32(d + 20);
}

/* JPEG: the first SOFn, walking a strictly well-formed marker sequence
 * (anything libjpeg would resynchronise over is left unknown). */
static void decl_jpeg(const uint8_t *d, size_t n, decl_t *o)
{
    size_t i = 2; /* after SOI */
    while (i + 4 <= n) {
        if (d[i] != 0xff) return;
        while (i < n && d[i] == 0xff) /* fill bytes */
            i++;
        if (i + 3 > n) return;
        uint8_t m = d[i++];
        if (m == 0x01 || (m >= 0xd0 && m <= 0xd9)) return; /* standalone: not before SOF */
        size_t len = (size_t)d[i] << 8 | d[i + 1];
        if (len < 2 || i + len > n) return;
        if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
            if (len < 8) return;
            o->known = 1;
            o->h = (uint64_t)d[i + 3] << 8 | d[i + 4];
            o->w = (uint64_t)d[i + 5] << 8 | d[i + 6];
            return;
        }
        if (m == 0xda) return; /* SOS before SOF */
        i += len;
    }
}

/* Reads every row of an opened image; aborts on a broken invariant. */
static void read_all(img_reader_t *r, const img_info_t *in, const decl_t *dc, const uint8_t *data,
                     size_t size)
{
    char err[512];
    size_t rb = img_row_bytes(in);
    static const uint32_t strips[4] = {0, 1, 3, 16}; /* 0: whole image */
    uint32_t k = strips[size % 4];
    if (k == 0) k = (size_t)in->height * rb <= STRIP_MAX ? in->height : 16;
    if (k > in->height) k = in->height;
    unsigned char *buf = malloc(rb * k);
    if (!buf) abort();
    int pnm = in->format == IMG_PNM && dc->known;
    size_t file_rb = pnm ? (size_t)in->width * in->channels * in->depth : 0;
    int ok = 1;
    uint32_t y = 0;
    while (y < in->height) {
        uint32_t n = in->height - y < k ? in->height - y : k;
        err[0] = 0;
        if (img_reader_rows(r, buf, n, err, sizeof err)) {
            if (!err[0]) abort(); /* a failure without a message */
            ok = 0;
            break;
        }
        if (pnm) { /* the raster, byte for byte */
            const uint8_t *src = data + dc->raster + (size_t)y * file_rb;
            if (dc->raster + ((size_t)y + n) * file_rb > size) abort(); /* decoded past the data */
            size_t ns = (size_t)n * rb / in->depth;
            for (size_t s = 0; s < ns; s++) {
                uint32_t v, f;
                if (in->depth == 1) {
                    v = buf[s];
                    f = src[s];
                } else {
                    uint16_t u;
                    memcpy(&u, buf + 2 * s, 2);
                    v = u;
                    f = (uint32_t)src[2 * s] << 8 | src[2 * s + 1];
                }
                if (v != f || v > in->maxval) abort();
            }
        }
        y += n;
    }
    err[0] = 0;
    /* past the last row (or after a failure): must be refused, with a message */
    if (img_reader_rows(r, buf, 1, err, sizeof err) == 0 || !err[0]) abort();
    (void)ok;
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fmt = img_format_sniff(data, size);
    decl_t dc = {0};
    if (fmt == IMG_PNM) decl_pnm(data, size, &dc);
    if (fmt == IMG_PNG) decl_png(data, size, &dc);
    if (fmt == IMG_JPEG) decl_jpeg(data, size, &dc);

    img_reader_t *r = NULL;
    img_info_t in;
    char err[512];
    err[0] = 0;
    memset(&in, 0xa5, sizeof in);
    if (img_reader_open_mem(&r, "fuzz", data, size, CAP, &in, err, sizeof err)) {
        if (r || !err[0]) abort(); /* refused: no reader, a message */
        return 0;
    }
    if (!r) abort();
    /* opened: only a sniffed format, and a header within the cap */
    if (fmt < 0 || in.format != fmt) abort();
    if (in.width == 0 || in.height == 0) abort();
    if ((uint64_t)in.width * in.height > CAP) abort();
    if (in.channels < 1 || in.channels > 4 || (in.depth != 1 && in.depth != 2)) abort();
    if (in.maxval < 1 || in.maxval > 65535 || (in.depth == 1) != (in.maxval <= 255)) abort();
    if (fmt == IMG_PNM && in.channels != 1 && in.channels != 3) abort();
    if (fmt == IMG_PNG && in.maxval != 255 && in.maxval != 65535) abort();
    if (fmt == IMG_JPEG && (in.depth != 1 || (in.channels != 1 && in.channels != 3))) abort();
    if (dc.known) {
        if (dc.w * dc.h > CAP) abort(); /* a declared size above the cap was accepted */
        if (dc.w != in.width || dc.h != in.height) abort();
        if (fmt == IMG_PNM && (dc.maxval != in.maxval || dc.channels != in.channels)) abort();
    } else if (fmt == IMG_PNM || fmt == IMG_PNG) {
        abort(); /* opened, yet the header is not what the format says */
    }
    read_all(r, &in, &dc, data, size);
    img_reader_close(r);
    return 0;
}
