/*
 * img.h - pixels, codecs and filters of the image kernel (internal).
 *
 * In memory an image is a sequence of packed rows: `width * channels`
 * samples per row, each sample one byte (depth 1) or one native-endian
 * uint16_t (depth 2). Channels: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA.
 * `maxval` is the largest sample value (255, 65535, or a PNM maxval such as
 * 1023); filters clamp to it.
 *
 * Codecs (imgio.c) read an image row by row from a file or from memory and
 * write one row by row through a callback, so that a 20000 x 20000 image
 * never has to be held whole. Every header field is checked before anything
 * is allocated from it. Errors fill a caller buffer with a message that
 * names the file and, where there is one, the byte offset or row.
 *
 * Filters (imgfilter.c) work on a strip: rows [a, b) of an image of height
 * H. A filter of vertical radius r produces rows [a', b') with
 * a' = (a == 0 ? 0 : a + r) and b' = (b == H ? H : b - r): rows near a strip
 * boundary inside the image are computed only where their whole support is
 * present, rows at the image's top and bottom replicate the edge row. The
 * same pixel therefore gets exactly the same arithmetic whatever the strip
 * boundaries, so results are identical for any strip size, -np and
 * --threads. Thread safety: every function touches only its arguments.
 */
#ifndef MPM_IMG_H
#define MPM_IMG_H

#include <stddef.h>
#include <stdint.h>

enum { IMG_PNM = 0, IMG_PNG = 1, IMG_JPEG = 2 };

typedef struct img_info_s {
    uint32_t width, height;
    uint32_t channels; /* 1..4 */
    uint32_t depth;    /* bytes per sample: 1 or 2 */
    uint32_t maxval;   /* 1..65535; depth 1 iff maxval <= 255 */
    int32_t format;    /* IMG_* of the file it came from */
} img_info_t;

static inline size_t img_row_bytes(const img_info_t *i)
{
    return (size_t)i->width * i->channels * i->depth;
}

/* ---- codecs (imgio.c) ------------------------------------------------------ */

/* IMG_* from a file name's extension (.pgm .ppm .pnm .png .jpg .jpeg, any
 * case), or -1. */
int img_format_from_name(const char *name);
/* IMG_* from the first bytes of a file, or -1. */
int img_format_sniff(const void *p, size_t n);
/* "PNM", "PNG", "JPEG". */
const char *img_format_name(int format);

typedef struct img_reader_s img_reader_t;

/*
 * Opens an image and reads its header. `name` is used in messages. From a
 * file (path) or from memory (p, n: the bytes must outlive the reader).
 * Images with more than max_pixels pixels (0: no limit) are refused before
 * anything is allocated. Returns 0, or -1 with a message in err.
 * Conversions on reading: PNG palette -> RGB (RGBA with tRNS), gray below
 * 8 bits -> 8 bits, tRNS on gray/RGB -> alpha; JPEG -> gray or RGB 8-bit
 * (CMYK/YCCK are refused). Adam7-interlaced PNGs are decoded whole on open
 * (memory = the whole image; still bounded by max_pixels).
 */
int img_reader_open_file(img_reader_t **r, const char *path, uint64_t max_pixels,
                         img_info_t *info, char *err, size_t errlen);
int img_reader_open_mem(img_reader_t **r, const char *name, const void *p, size_t n,
                        uint64_t max_pixels, img_info_t *info, char *err, size_t errlen);
/* Reads the next n rows into dst (n * img_row_bytes bytes). 0, or -1 with a
 * message naming the file and the row (truncated or corrupt data). */
int img_reader_rows(img_reader_t *r, void *dst, uint32_t n, char *err, size_t errlen);
void img_reader_close(img_reader_t *r);

/* Writer options (the kernel's --quality and --png-level). */
typedef struct img_wopts_s {
    int jpeg_quality; /* 1..100 */
    int png_level;    /* zlib level 0..9 */
    int threads;      /* PNG: threads that deflate blocks in parallel (0 or 1: the caller's) */
} img_wopts_t;

/* Receives the encoded bytes; returns 0 or -1 (the writer then fails). */
typedef int (*img_write_fn)(void *ctx, const void *p, size_t n);

typedef struct img_writer_s img_writer_t;

/*
 * PNG is written by imgio.c itself (signature, IHDR, IDAT, IEND; libpng reads
 * only): rows are filtered as libpng does by default (of None, Sub, Up,
 * Average and Paeth, the one with the smallest sum of absolute values), the
 * filtered bytes are cut into blocks of IMG_PNG_BLOCK bytes (whole rows) and
 * each block is deflated on its own, ending with a full flush, by up to
 * `threads` threads: the blocks concatenate into one zlib stream whose
 * Adler-32 is combined from theirs. The bytes depend only on the pixels and
 * the level, never on the number of threads or on how rows were pushed.
 */
#define IMG_PNG_BLOCK ((size_t)1 << 20)

/*
 * Starts writing an image of `format` whose rows look like `info` describes
 * (the filters' output). Conversions, decided here once:
 *   PNM: channels 1 -> P5, 3 -> P6; alpha is dropped (2 -> P5, 4 -> P6);
 *        maxval kept (16-bit samples big-endian).
 *   PNG: every channel count; depth 1 -> 8-bit, 2 -> 16-bit; a maxval other
 *        than 255/65535 is scaled to the full range (rounded half up).
 *   JPEG: 1 -> gray, 3 -> RGB; alpha dropped; samples scaled to 0..255.
 * *dropped_alpha (may be NULL) is set to 1 when alpha is dropped.
 * Returns 0 or -1 with a message.
 */
int img_writer_open(img_writer_t **w, int format, const img_info_t *info, const img_wopts_t *o,
                    img_write_fn fn, void *ctx, int *dropped_alpha, char *err, size_t errlen);
/* Writes the next n rows (in the layout of `info`). 0 or -1. */
int img_writer_rows(img_writer_t *w, const void *rows, uint32_t n, char *err, size_t errlen);
/* Writes the trailer after the last row; every row must have been written. 0 or -1. */
int img_writer_finish(img_writer_t *w, char *err, size_t errlen);
void img_writer_free(img_writer_t *w);

/* ---- filters (imgfilter.c) ---------------------------------------------------- */

enum { IMG_F_GRAY = 0, IMG_F_BLUR, IMG_F_SOBEL, IMG_F_SHARPEN, IMG_F_BOX };

typedef struct img_filter_s {
    int kind;      /* IMG_F_* */
    double sigma;  /* blur, sharpen: > 0 */
    double amount; /* sharpen */
    int radius;    /* box: >= 0 */
} img_filter_t;

/* Rows (and columns) of support on each side: gray 0, blur and sharpen
 * ceil(3 sigma), sobel 1, box radius. */
int img_filter_radius(const img_filter_t *f);
/* Channels out for c channels in: gray and sobel give 1 (2 with alpha), the
 * others keep c. */
uint32_t img_filter_channels(const img_filter_t *f, uint32_t c);

/*
 * Applies f to rows [a, b) of an image of height H whose rows look like *in
 * (in->height is ignored; H is given). src holds rows a..b-1 packed; dst gets
 * rows [*oa, *ob) (see the top of this file) in the layout of *in with
 * img_filter_channels() channels; it must hold (b - a) rows of that layout.
 * Alpha (channel 2 of 2, 4 of 4) is copied unchanged. Returns 0 (with
 * *oa == *ob when b - a is too small to give any row), or -1 when memory
 * runs out or the arguments are inconsistent.
 */
int img_filter_apply(const img_filter_t *f, const img_info_t *in, uint32_t H, uint32_t a,
                     uint32_t b, const void *src, void *dst, uint32_t *oa, uint32_t *ob);

#endif
