/*
 * image.c - the seeds' image-processing example as a tool: split images into
 * parts, filter the parts in parallel, put them back together.
 *
 *   mpimap image --filter blur,sobel --sigma 2 big.png -o edges.png
 *   mpimap image --filter sharpen photos/ -o sharpened/
 *
 * DESIGN. Two modes, chosen by the inputs:
 *
 * One image (one file argument): rank 0 decodes it row by row (imgio.c) and
 * cuts it into strips of S output rows (--strip-rows, or --chunk-size bytes
 * of rows) with `halo` extra rows above and below, halo = the sum of the
 * chain's filter radii. Each strip is one chunk; the kernel's source ships
 * it while the next rows are still being decoded. A pool thread runs the
 * filter chain on the strip (each filter shrinks the rows it can compute by
 * its radius, except at the image's top and bottom: see img.h), keeps its S
 * rows and sends them back. Rank 0's sink receives the strips in order and
 * queues them for an encoder thread that writes them into the output as
 * they come, so that neither side ever holds the whole image: the source
 * keeps the 2 halo rows shared with the next strip, each in-flight chunk is
 * one strip, the queue is bounded and the encoder streams. A pixel gets the same
 * arithmetic in every strip, so the output bytes are the same for every
 * strip size, -np and --threads.
 *
 * Many images (several files, or directories): each file is one chunk,
 * read whole by rank 0 and decoded, filtered and encoded by one pool thread;
 * the sink writes it to -o DIR under the same name (each file atomically).
 * A file that cannot be read or decoded is a failed chunk: reported with
 * its name, the others are processed, the exit code is 1.
 *
 * A chain (--filter blur,sobel) is the filters one after the other, each
 * rounding to whole sample values as if run as separate commands.
 *
 * Wire format: a chunk is a chunk_hdr_t then either rows [a, b) of the
 * image (strip) or the file's name and bytes (file). A result is a
 * result_hdr_t then either the strip's output rows or the output file's
 * name and encoded bytes.
 */
#define _GNU_SOURCE /* sched_getaffinity */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../output.h"
#include "../signals.h"
#include "../util.h"
#include "img.h"
#include "mpimap/mpimap.h"

#define MAX_CHAIN 16
#define MAX_HALO 4096        /* rows: sigma up to about 1365 */
#define IMG_MAGIC 0x5347494du /* "MIGS" */

enum { KIND_STRIP = 1, KIND_FILE = 2 };
enum { TO_AUTO = 0, TO_PNM, TO_PNG, TO_JPEG };

typedef struct image_opts_s {
    const char *filter;
    double sigma, amount;
    long long radius, quality, png_level, strip_rows;
    uint64_t max_pixels;
    int to; /* TO_* */
    /* from check() */
    img_filter_t chain[MAX_CHAIN];
    int nchain;
    uint32_t halo;
    int many;        /* many-images mode: -o is a directory */
    char **paths;    /* the input files */
    char **outnames; /* many-images mode: each file's name in -o DIR */
    int npaths;
} image_opts_t;

/* A chunk's and a result's header. Sizes are multiples of 8 so that 16-bit
 * rows after them stay aligned. */
typedef struct chunk_hdr_s {
    uint32_t magic, kind;
    img_info_t info;  /* the input image (strip) */
    uint32_t y0, y1;  /* strip: output rows */
    uint32_t a, b;    /* strip: rows held */
    uint32_t name_len; /* file: bytes of the name after the header */
    uint32_t pad;
} chunk_hdr_t;

typedef struct res_hdr_s {
    uint32_t magic, kind;
    img_info_t info; /* strip: the output image's layout */
    uint32_t y0, y1;
    uint32_t name_len; /* file: bytes of the output name after the header */
    uint32_t dropped_alpha;
} res_hdr_t;

_Static_assert(sizeof(chunk_hdr_t) % 8 == 0, "chunk header alignment");
_Static_assert(sizeof(res_hdr_t) % 8 == 0, "result header alignment");

static const mpm_option_t image_options[] = {
    {"filter", 'f', MPM_OPT_STRING, offsetof(image_opts_t, filter), "F[,F...]",
     "filters to apply, in order: gray, blur, sobel, sharpen, box, copy (required)", 0, -1, NULL, 0},
    {"sigma", 's', MPM_OPT_DOUBLE, offsetof(image_opts_t, sigma), "SIGMA",
     "standard deviation of the Gaussian of blur and sharpen, in pixels (default 1)", 0, 1365,
     NULL, 0},
    {"amount", 0, MPM_OPT_DOUBLE, offsetof(image_opts_t, amount), "A",
     "sharpen: out = v + A * (v - blur(v)) (default 1)", 0, 100, NULL, 0},
    {"radius", 'r', MPM_OPT_INT, offsetof(image_opts_t, radius), "R",
     "box: mean over the (2R+1) x (2R+1) square (default 1)", 0, MAX_HALO, NULL, 0},
    {"to", 0, MPM_OPT_CHOICE, offsetof(image_opts_t, to), "FORMAT",
     "output format: auto (from -o's extension; else the input's), pnm, png, jpeg", 0, -1,
     "auto|pnm|png|jpeg", 0},
    {"quality", 0, MPM_OPT_INT, offsetof(image_opts_t, quality), "Q",
     "JPEG output quality (default 90)", 1, 100, NULL, 0},
    {"png-level", 0, MPM_OPT_INT, offsetof(image_opts_t, png_level), "L",
     "PNG output compression level, 0 (none, fastest) to 9 (default 6)", 0, 9, NULL, 0},
    {"strip-rows", 0, MPM_OPT_INT, offsetof(image_opts_t, strip_rows), "N",
     "one image: rows per strip (default: --chunk-size bytes of rows, at least 1)", 1, INT_MAX,
     NULL, 0},
    {"max-pixels", 0, MPM_OPT_SIZE, offsetof(image_opts_t, max_pixels), "N",
     "refuse images with more than N pixels (default 1G = 1073741824; 0: no limit)", 0, -1,
     NULL, 0},
    {NULL, 0, 0, 0, NULL, NULL, 0, 0, NULL, 0}};

static void image_init(void *op)
{
    image_opts_t *o = op;
    memset(o, 0, sizeof *o);
    o->sigma = 1.0;
    o->amount = 1.0;
    o->radius = 1;
    o->quality = 90;
    o->png_level = 6;
    o->max_pixels = (uint64_t)1 << 30;
}

static void image_free(void *op)
{
    image_opts_t *o = op;
    for (int i = 0; i < o->npaths; i++) {
        free(o->paths[i]);
        if (o->outnames) free(o->outnames[i]);
    }
    free(o->paths);
    free(o->outnames);
    o->paths = o->outnames = NULL;
    o->npaths = 0;
}

/* ---- options and inputs --------------------------------------------------------- */

static int parse_chain(image_opts_t *o, mpm_err_t *err)
{
    static const char *const names[] = {"gray", "blur", "sobel", "sharpen", "box", "copy"};
    if (!o->filter || !*o->filter)
        return mpm_err_set(err, -1, "--filter is required (gray, blur, sobel, sharpen, box, copy, "
                                    "or a chain such as blur,sobel)");
    const char *p = o->filter;
    o->nchain = 0;
    o->halo = 0;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        int kind = -1;
        for (int i = 0; i < 6; i++)
            if (strlen(names[i]) == n && !strncmp(names[i], p, n)) kind = i;
        if (kind < 0) {
            char shown[64];
            return mpm_err_set(err, -1,
                               "--filter: unknown filter '%s' (expected gray, blur, sobel, "
                               "sharpen, box or copy, separated by commas)",
                               mpm__quote(shown, sizeof shown, p, n));
        }
        if (o->nchain == MAX_CHAIN)
            return mpm_err_set(err, -1, "--filter: at most %d filters in a chain", MAX_CHAIN);
        img_filter_t *f = &o->chain[o->nchain++];
        f->kind = kind == 0 ? IMG_F_GRAY : kind == 1 ? IMG_F_BLUR : kind == 2 ? IMG_F_SOBEL
                  : kind == 3 ? IMG_F_SHARPEN : IMG_F_BOX; /* box, copy */
        f->sigma = o->sigma;
        f->amount = o->amount;
        f->radius = kind == 5 ? 0 : (int)o->radius; /* copy: a box of radius 0 */
        if ((f->kind == IMG_F_BLUR || f->kind == IMG_F_SHARPEN) && !(o->sigma > 0))
            return mpm_err_set(err, -1, "--sigma must be greater than 0 for %s", names[kind]);
        o->halo += (uint32_t)img_filter_radius(f);
        if (!e) break;
        p = e + 1;
    }
    if (o->halo > MAX_HALO)
        return mpm_err_set(err, -1, "--filter: the chain needs %u rows of support on each side; "
                                    "at most %d (lower --sigma or --radius)",
                           o->halo, MAX_HALO);
    return 0;
}

static int add_path(image_opts_t *o, const char *path, size_t *cap, mpm_err_t *err)
{
    if (mpm__grow(&o->paths, cap, (size_t)o->npaths + 1, sizeof *o->paths) < 0 ||
        !(o->paths[o->npaths] = strdup(path)))
        return mpm_err_set(err, -1, "out of memory");
    o->npaths++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The image files directly inside dir (known extensions, not hidden), sorted. */
static int add_dir(image_opts_t *o, const char *dir, size_t *cap, mpm_err_t *err)
{
    DIR *d = opendir(dir);
    if (!d) return mpm_err_set(err, -1, "cannot read directory '%s': %s", dir, strerror(errno));
    int first = o->npaths, rc = 0;
    size_t dl = strlen(dir);
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        if (de->d_name[0] == '.' || img_format_from_name(de->d_name) < 0) continue;
        size_t n = dl + strlen(de->d_name) + 2;
        char *p = malloc(n);
        if (!p) {
            rc = mpm_err_set(err, -1, "out of memory");
            break;
        }
        snprintf(p, n, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", de->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) rc = add_path(o, p, cap, err);
        free(p);
    }
    closedir(d);
    if (rc == 0 && o->npaths == first)
        return mpm_err_set(err, -1,
                           "directory '%s' holds no image file (.pgm .ppm .pnm .png .jpg .jpeg)",
                           dir);
    qsort(o->paths + first, (size_t)(o->npaths - first), sizeof *o->paths, cmp_str);
    return rc;
}

static const char *ext_of(int format)
{
    return format == IMG_PNG ? ".png" : format == IMG_JPEG ? ".jpg" : NULL;
}

static int to_format(int to) { return to == TO_PNM ? IMG_PNM : to == TO_PNG ? IMG_PNG : IMG_JPEG; }

/* Many-images mode: each file's name in -o DIR (the same name; with --to, the
 * new format's extension); two inputs may not land on the same name. */
static int out_names(image_opts_t *o, mpm_err_t *err)
{
    o->outnames = calloc((size_t)o->npaths, sizeof *o->outnames);
    if (!o->outnames) return mpm_err_set(err, -1, "out of memory");
    for (int i = 0; i < o->npaths; i++) {
        const char *slash = strrchr(o->paths[i], '/');
        const char *base = slash ? slash + 1 : o->paths[i];
        size_t bl = strlen(base);
        if (o->to != TO_AUTO) {
            int in_fmt = img_format_from_name(base);
            const char *dot = strrchr(base, '.');
            if (in_fmt != to_format(o->to) || !dot) {
                if (dot && dot != base) bl = (size_t)(dot - base);
                const char *x = ext_of(to_format(o->to));
                if (!x) x = ".pnm";
                size_t n = bl + strlen(x) + 1;
                if (!(o->outnames[i] = malloc(n))) return mpm_err_set(err, -1, "out of memory");
                snprintf(o->outnames[i], n, "%.*s%s", (int)bl, base, x);
                continue;
            }
        }
        if (!(o->outnames[i] = strdup(base))) return mpm_err_set(err, -1, "out of memory");
    }
    for (int i = 0; i < o->npaths; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(o->outnames[i], o->outnames[j]))
                return mpm_err_set(err, -1,
                                   "'%s' and '%s' would both be written as '%s' in the output "
                                   "directory",
                                   o->paths[j], o->paths[i], o->outnames[i]);
    return 0;
}

static int image_check(void *op, int argc, char **argv, mpm_inputs_t *in, mpm_err_t *err)
{
    image_opts_t *o = op;
    if (parse_chain(o, err) < 0) return -1;
    if (!argc)
        return mpm_err_set(err, -1, "no input image given (files or directories of images)");
    size_t cap = 0;
    int dirs = 0;
    for (int i = 0; i < argc; i++) {
        struct stat st;
        if (!strcmp(argv[i], "-"))
            return mpm_err_set(err, -1, "reading an image from standard input is not supported: "
                                        "give a file");
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            dirs++;
            if (add_dir(o, argv[i], &cap, err) < 0) return -1;
        } else if (add_path(o, argv[i], &cap, err) < 0) {
            return -1;
        }
    }
    o->many = dirs > 0 || o->npaths > 1;
    if (o->many && out_names(o, err) < 0) return -1;
    for (int i = 0; i < o->npaths; i++) {
        mpm_input_t x = {.kind = MPM_IN_FILE, .name = o->paths[i]};
        if (mpm_inputs_add(in, x)) return mpm_err_set(err, -1, "out of memory");
    }
    return 0;
}

static const char *const image_cols[] = {"image", NULL};
static const char *const *image_columns(const void *o)
{
    (void)o;
    return image_cols;
}

/* ---- rank 0: the source --------------------------------------------------------- */

typedef struct source_s {
    const image_opts_t *o;
    const mpm_input_t *in;
    int done;
    /* one image: the reader; rows [wa, wb) of the last chunk kept for the
     * next one (its halo rows above: at most 2 halo rows); wb is also the
     * next row to decode */
    img_reader_t *r;
    img_info_t info;
    uint32_t strip, next_y0, wa, wb;
    char *carry;
    size_t row;
} source_t;

static void image_source_close(void *sp)
{
    source_t *s = sp;
    if (!s) return;
    img_reader_close(s->r);
    free(s->carry);
    free(s);
}

static void *image_source_open(const void *op, const mpm_input_t *in, uint64_t chunk_size,
                               mpm_err_t *err)
{
    const image_opts_t *o = op;
    source_t *s = calloc(1, sizeof *s);
    if (!s) {
        mpm_err_set(err, -1, "out of memory");
        return NULL;
    }
    s->o = o;
    s->in = in;
    if (o->many) return s;
    if (img_reader_open_file(&s->r, in->name, o->max_pixels, &s->info, err->msg,
                             sizeof err->msg) < 0) {
        image_source_close(s);
        return NULL;
    }
    s->row = img_row_bytes(&s->info);
    uint64_t rows = o->strip_rows ? (uint64_t)o->strip_rows : chunk_size / s->row;
    if (rows < 1) rows = 1;
    if (rows > s->info.height) rows = s->info.height;
    s->strip = (uint32_t)rows;
    uint64_t span = 2 * (uint64_t)o->halo + 1;
    if (span > s->info.height) span = s->info.height;
    if (span * s->row > SIZE_MAX / 2 || !(s->carry = malloc((size_t)(span * s->row)))) {
        mpm_err_set(err, -1, "%s: out of memory for %llu rows of %zu bytes", in->name,
                    (unsigned long long)span, s->row);
        image_source_close(s);
        return NULL;
    }
    return s;
}

/* Many-images mode: the whole file, after its name. */
static int source_file(source_t *s, mpm_buf_t *out, mpm_err_t *err)
{
    const char *name = s->in->name;
    int fd = open(name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mpm_err_set(err, -1, "%s: cannot open: %s", name, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return mpm_err_set(err, -1, "%s: not a regular file", name);
    }
    if ((uint64_t)st.st_size > (uint64_t)INT_MAX - 4096) {
        close(fd);
        return mpm_err_set(err, -1, "%s: %lld bytes: files of 2 GiB and more are taken one at a "
                                    "time: pass it alone",
                           name, (long long)st.st_size);
    }
    /* The name to write it under travels with it: the workers need no
     * directory listing of their own. */
    const char *oname = name;
    for (int i = 0; i < s->o->npaths; i++)
        if (s->o->paths[i] == name) oname = s->o->outnames[i];
    size_t nl = strlen(oname), n = (size_t)st.st_size;
    chunk_hdr_t h = {.magic = IMG_MAGIC, .kind = KIND_FILE, .name_len = (uint32_t)nl};
    if (mpm_buf_reserve(out, sizeof h + nl + n) < 0) {
        close(fd);
        return mpm_err_set(err, -1, "%s: out of memory", name);
    }
    mpm_buf_append(out, &h, sizeof h);
    mpm_buf_append(out, oname, nl);
    long long got = mpm__pread_full(fd, out->data + out->len, n, 0);
    int e = errno;
    close(fd);
    if (got < 0) return mpm_err_set(err, -1, "%s: read error: %s", name, strerror(e));
    out->len += (size_t)got; /* a file that shrank meanwhile fails to decode */
    return 1;
}

static int image_source_next(void *sp, mpm_buf_t *out, uint64_t *offset, mpm_err_t *err)
{
    source_t *s = sp;
    if (s->done) return 0;
    if (s->o->many) {
        s->done = 1;
        *offset = 0;
        return source_file(s, out, err);
    }
    uint32_t H = s->info.height, halo = s->o->halo;
    uint32_t y0 = s->next_y0;
    if (y0 >= H) {
        s->done = 1;
        return 0;
    }
    uint32_t y1 = H - y0 < s->strip ? H : y0 + s->strip;
    uint32_t a = y0 > halo ? y0 - halo : 0;
    uint32_t b = H - y1 < halo ? H : y1 + halo;
    chunk_hdr_t h = {.magic = IMG_MAGIC, .kind = KIND_STRIP, .info = s->info,
                     .y0 = y0, .y1 = y1, .a = a, .b = b};
    size_t n = (size_t)(b - a) * s->row;
    if (mpm_buf_reserve(out, sizeof h + n) < 0)
        return mpm_err_set(err, -1, "%s: out of memory", s->in->name);
    mpm_buf_append(out, &h, sizeof h);
    /* Rows [a, wb) were decoded for the last chunk (a >= wa: strips only
     * move down); the rest is decoded straight into the chunk. */
    char *dst = out->data + out->len;
    uint32_t have = s->wb > a ? s->wb - a : 0;
    if (have) memcpy(dst, s->carry + (size_t)(a - s->wa) * s->row, (size_t)have * s->row);
    if (b > a + have && img_reader_rows(s->r, dst + (size_t)have * s->row, b - a - have,
                                        err->msg, sizeof err->msg) < 0)
        return -1;
    out->len += n;
    /* Keep what the next chunk will need again: rows from y1 - halo on. */
    uint32_t keep_from = y1 > halo ? y1 - halo : 0;
    if (keep_from < a) keep_from = a;
    memcpy(s->carry, dst + (size_t)(keep_from - a) * s->row, (size_t)(b - keep_from) * s->row);
    s->wa = keep_from;
    s->wb = b;
    *offset = (uint64_t)y0 * s->row;
    s->next_y0 = y1;
    return 1;
}

/* ---- pool threads: map ---------------------------------------------------------- */

/*
 * Runs the chain on rows [a, b) of an image of height H held in src (rows of
 * layout *info) and appends rows [y0, y1) of the result to out (which the
 * chain must cover). *info becomes the result's layout. The last filter
 * writes straight into out; the others into two scratch strips.
 */
static int run_chain(const image_opts_t *o, img_info_t *info, uint32_t H, uint32_t a, uint32_t b,
                     const char *src, uint32_t y0, uint32_t y1, mpm_buf_t *out)
{
    size_t in_rows = (size_t)(b - a);
    img_info_t last = *info;
    for (int i = 0; i < o->nchain; i++) last.channels = img_filter_channels(&o->chain[i], last.channels);
    size_t orow = img_row_bytes(&last);
    char *tmp[2] = {NULL, NULL};
    int rc = mpm_buf_reserve(out, in_rows * orow + 1);
    for (int i = 0; i < o->nchain - 1 && rc == 0 && i < 2; i++)
        if (!(tmp[i] = malloc(in_rows * img_row_bytes(info) + 1))) rc = -1;
    const char *cur = src;
    char *dst = out->data + out->len;
    for (int i = 0; i < o->nchain && rc == 0; i++) {
        char *to = i == o->nchain - 1 ? dst : tmp[i & 1];
        uint32_t na = a, nb = b;
        rc = img_filter_apply(&o->chain[i], info, H, a, b, cur, to, &na, &nb);
        info->channels = img_filter_channels(&o->chain[i], info->channels);
        cur = to;
        a = na;
        b = nb;
    }
    free(tmp[0]);
    free(tmp[1]);
    if (rc < 0) return -1;
    if (a > y0 || b < y1) return -2;
    if (y0 > a) memmove(dst, dst + (size_t)(y0 - a) * orow, (size_t)(y1 - y0) * orow);
    out->len += (size_t)(y1 - y0) * orow;
    return 0;
}

static int map_strip(const image_opts_t *o, const mpm_chunk_t *c, const chunk_hdr_t *h,
                     mpm_buf_t *out, mpm_err_t *err)
{
    img_info_t info = h->info;
    size_t row = img_row_bytes(&info);
    if (h->a > h->y0 || h->y0 >= h->y1 || h->y1 > h->b || h->b > info.height ||
        c->len - sizeof *h != (size_t)(h->b - h->a) * row)
        return mpm_err_set(err, -1, "%s: malformed strip", c->name);
    size_t start = out->len;
    res_hdr_t r = {.magic = IMG_MAGIC, .kind = KIND_STRIP, .y0 = h->y0, .y1 = h->y1};
    if (mpm_buf_append(out, &r, sizeof r) < 0)
        return mpm_err_set(err, -1, "%s: out of memory", c->name);
    int rc = run_chain(o, &info, info.height, h->a, h->b, c->data + sizeof *h, h->y0, h->y1, out);
    if (rc < 0) {
        out->len = start;
        return mpm_err_set(err, -1, rc == -2 ? "%s: strip rows %u..%u lack support rows"
                                             : "%s: out of memory filtering rows %u..%u",
                           c->name, h->y0, h->y1 - 1);
    }
    memcpy(out->data + start + offsetof(res_hdr_t, info), &info, sizeof info);
    return 0;
}

static int buf_write(void *ctx, const void *p, size_t n)
{
    return mpm_buf_append(ctx, p, n);
}

/* Many-images mode: decode, filter and encode one whole file. */
static int map_file(const image_opts_t *o, const mpm_chunk_t *c, const chunk_hdr_t *h,
                    mpm_buf_t *out, mpm_err_t *err)
{
    if (h->name_len > c->len - sizeof *h) return mpm_err_set(err, -1, "malformed chunk");
    const char *oname = c->data + sizeof *h; /* the output name, not NUL-terminated */
    const char *bytes = oname + h->name_len;
    size_t nbytes = c->len - sizeof *h - h->name_len;
    img_reader_t *r = NULL;
    img_info_t info;
    if (img_reader_open_mem(&r, c->name, bytes, nbytes, o->max_pixels, &info, err->msg,
                            sizeof err->msg) < 0)
        return -1;
    size_t row = img_row_bytes(&info);
    char *rows = malloc((size_t)info.height * row + 1);
    if (!rows) {
        img_reader_close(r);
        return mpm_err_set(err, -1, "%s: out of memory for %u x %u pixels", c->name, info.width,
                           info.height);
    }
    int bad = img_reader_rows(r, rows, info.height, err->msg, sizeof err->msg);
    img_reader_close(r);
    if (bad < 0) {
        free(rows);
        return -1;
    }
    mpm_buf_t res = {0};
    int rc = run_chain(o, &info, info.height, 0, info.height, rows, 0, info.height, &res);
    free(rows);
    if (rc < 0) {
        mpm_buf_free(&res);
        return mpm_err_set(err, -1, "%s: out of memory filtering %u x %u pixels", c->name,
                           info.width, info.height);
    }
    rows = res.data;
    int fmt = o->to != TO_AUTO ? to_format(o->to) : info.format;
    size_t start = out->len;
    res_hdr_t rh = {.magic = IMG_MAGIC, .kind = KIND_FILE, .info = info, .name_len = h->name_len};
    img_wopts_t wo = {.jpeg_quality = (int)o->quality, .png_level = (int)o->png_level, .threads = 1};
    img_writer_t *w = NULL;
    int dropped = 0;
    bad = mpm_buf_append(out, &rh, sizeof rh) < 0 || mpm_buf_append(out, oname, rh.name_len) < 0;
    if (bad) mpm_err_set(err, -1, "%s: out of memory", c->name);
    else if (img_writer_open(&w, fmt, &info, &wo, buf_write, out, &dropped, err->msg,
                             sizeof err->msg) < 0 ||
             img_writer_rows(w, rows, info.height, err->msg, sizeof err->msg) < 0 ||
             img_writer_finish(w, err->msg, sizeof err->msg) < 0)
        bad = 1;
    img_writer_free(w);
    free(rows);
    if (bad) {
        out->len = start;
        return -1;
    }
    ((res_hdr_t *)(void *)(out->data + start))->dropped_alpha = (uint32_t)dropped;
    return 0;
}

static int image_map(const void *op, const mpm_chunk_t *c, void *partial, mpm_format_t fmt,
                     mpm_buf_t *out, mpm_err_t *err)
{
    (void)partial;
    (void)fmt;
    const image_opts_t *o = op;
    chunk_hdr_t h;
    if (c->len < sizeof h) return mpm_err_set(err, -1, "%s: malformed chunk", c->name);
    memcpy(&h, c->data, sizeof h);
    if (h.magic != IMG_MAGIC) return mpm_err_set(err, -1, "%s: malformed chunk", c->name);
    return h.kind == KIND_STRIP ? map_strip(o, c, &h, out, err) : map_file(o, c, &h, out, err);
}

/* ---- rank 0: the sink ------------------------------------------------------------- */

/*
 * One image: strips arrive in order on rank 0's main thread, which must go
 * back to decoding and dispatching at once. An encoder thread therefore
 * encodes and writes them (PNG's deflate runs at a fraction of the speed of
 * the filters); the main thread only copies each strip into a queue bounded
 * to QUEUE_MAX bytes (at least one strip), and waits when it is full. The
 * first error of the encoder thread is returned by the next sink_write.
 */
#define QUEUE_MAX ((size_t)64 << 20)

typedef struct qitem_s {
    struct qitem_s *next;
    img_info_t info;
    uint32_t y0, y1;
    size_t len;
    char rows[]; /* (y1 - y0) rows */
} qitem_t;

typedef struct sink_s {
    const image_opts_t *o;
    const char *dir; /* many images: the output directory */
    /* one image */
    mpm_out_t out;   /* open from sink_open to sink_close */
    int format;
    char *owned; /* -o DIR: the path DIR/NAME that out points to */
    uint32_t next_row; /* main thread: rows queued so far */
    uint32_t height;
    /* the encoder thread and its queue */
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    qitem_t *head, *tail;
    size_t queued;    /* bytes in the queue */
    int closing;      /* no more strips */
    int failed;       /* the encoder failed: message in errmsg */
    int finished;     /* every row written and the trailer too */
    char errmsg[512];
    img_writer_t *w;  /* encoder thread only */
    uint32_t written_rows;
} sink_t;

static int out_write(void *ctx, const void *p, size_t n)
{
    return mpm__out_rows(ctx, p, n);
}

/* Encodes one strip (encoder thread). 0 or -1 with s->errmsg set. */
static int encode_strip(sink_t *s, const qitem_t *q)
{
    const char *name = s->out.path ? s->out.path : "standard output";
    if (!s->w) {
        int dropped = 0;
        /* PNG's deflate runs on as many threads as this rank has cores (its
         * bytes do not depend on that: see img.h). */
        cpu_set_t cs;
        int cores = sched_getaffinity(0, sizeof cs, &cs) == 0 ? CPU_COUNT(&cs) : 1;
        img_wopts_t wo = {.jpeg_quality = (int)s->o->quality, .png_level = (int)s->o->png_level,
                          .threads = cores};
        if (img_writer_open(&s->w, s->format, &q->info, &wo, out_write, &s->out, &dropped,
                            s->errmsg, sizeof s->errmsg) < 0)
            return -1;
        if (dropped)
            MPM_LOG(MPM_LOG_WARN, "%s: the alpha channel is dropped (%s has none)", name,
                    img_format_name(s->format));
    }
    if (img_writer_rows(s->w, q->rows, q->y1 - q->y0, s->errmsg, sizeof s->errmsg) < 0) {
        if (s->out.failed) snprintf(s->errmsg, sizeof s->errmsg, "%s", s->out.err);
        return -1;
    }
    s->written_rows = q->y1;
    if (q->y1 == q->info.height) {
        if (img_writer_finish(s->w, s->errmsg, sizeof s->errmsg) < 0) return -1;
        s->finished = 1;
    }
    return 0;
}

static void *encoder_main(void *arg)
{
    sink_t *s = arg;
    mpm__sig_block_thread();
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->closing) pthread_cond_wait(&s->cv, &s->mu);
        qitem_t *q = s->head;
        if (!q) break;
        s->head = q->next;
        if (!s->head) s->tail = NULL;
        int failed = s->failed;
        pthread_mutex_unlock(&s->mu);
        int bad = !failed && encode_strip(s, q) < 0;
        pthread_mutex_lock(&s->mu);
        s->queued -= q->len;
        if (bad) s->failed = 1;
        pthread_cond_broadcast(&s->cv);
        free(q);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* The format for -o PATH (NULL: standard output) of one image. */
static int single_format(const image_opts_t *o, const char *path, mpm_err_t *err)
{
    if (o->to != TO_AUTO) return to_format(o->to);
    if (!path) {
        int f = img_format_from_name(o->paths[0]);
        return f >= 0 ? f : IMG_PNM;
    }
    int f = img_format_from_name(path);
    if (f < 0)
        return mpm_err_set(err, -1,
                           "cannot tell the output format from '%s': name it .pgm, .ppm, .pnm, "
                           ".png, .jpg or .jpeg, or pass --to",
                           path);
    return f;
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

static void sink_free(sink_t *s)
{
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->owned);
    free(s);
}

static void *sink_fail(sink_t *s)
{
    sink_free(s);
    return NULL;
}

/* Many images: -o DIR exists (or is created), is writable, and none of the
 * names to write there is one of the inputs. */
static int open_dir(sink_t *s, const char *path, mpm_err_t *err)
{
    const image_opts_t *o = s->o;
    struct stat st;
    if (!path) return mpm_err_set(err, -1, "several images: give the output directory with -o DIR");
    if (stat(path, &st) < 0 && mkdir(path, 0777) < 0 && errno != EEXIST)
        return mpm_err_set(err, -1, "cannot create output directory '%s': %s", path,
                           strerror(errno));
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return mpm_err_set(err, -1, "several images: -o '%s' must be a directory", path);
    if (access(path, W_OK | X_OK) < 0)
        return mpm_err_set(err, -1, "cannot write in output directory '%s': %s", path,
                           strerror(errno));
    size_t pl = strlen(path);
    for (int i = 0; i < o->npaths; i++) {
        size_t n = pl + strlen(o->outnames[i]) + 2;
        char *t = malloc(n);
        if (!t) return mpm_err_set(err, -1, "out of memory");
        snprintf(t, n, "%s/%s", path, o->outnames[i]);
        int same = same_file(t, o->paths[i]);
        free(t);
        if (same)
            return mpm_err_set(err, -1,
                               "output directory '%s' holds the input '%s' itself: refusing to "
                               "overwrite an input",
                               path, o->paths[i]);
    }
    s->dir = path;
    return 0;
}

static void *image_sink_open(const void *op, const mpm_inputs_t *inputs, const char *path,
                             mpm_err_t *err)
{
    (void)inputs;
    const image_opts_t *o = op;
    sink_t *s = calloc(1, sizeof *s);
    if (!s) {
        mpm_err_set(err, -1, "out of memory");
        return NULL;
    }
    s->o = o;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (o->many) return open_dir(s, path, err) < 0 ? sink_fail(s) : s;
    if (!path && isatty(1)) {
        mpm_err_set(err, -1, "refusing to write an image to a terminal: give -o FILE");
        return sink_fail(s);
    }
    /* -o DIR with one image: DIR/NAME. */
    struct stat st;
    if (path && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        const char *slash = strrchr(o->paths[0], '/');
        const char *base = slash ? slash + 1 : o->paths[0];
        size_t n = strlen(path) + strlen(base) + 2;
        if (!(s->owned = malloc(n))) {
            mpm_err_set(err, -1, "out of memory");
            return sink_fail(s);
        }
        snprintf(s->owned, n, "%s/%s", path, base);
        path = s->owned;
    }
    if ((s->format = single_format(o, path, err)) < 0) return sink_fail(s);
    if (path && same_file(path, o->paths[0])) {
        mpm_err_set(err, -1, "output '%s' is the input itself: refusing to overwrite an input",
                    path);
        return sink_fail(s);
    }
    if (mpm__out_open(&s->out, path, MPM_FMT_TEXT, NULL) < 0) {
        mpm_err_set(err, -1, "%s", s->out.err);
        return sink_fail(s);
    }
    return s;
}

static int sink_file(sink_t *s, const res_hdr_t *h, const char *data, size_t len, mpm_err_t *err)
{
    if (h->name_len > len - sizeof *h) return mpm_err_set(err, -1, "malformed result");
    const char *name = data + sizeof *h;
    size_t dl = strlen(s->dir);
    char *path = malloc(dl + h->name_len + 2);
    if (!path) return mpm_err_set(err, -1, "out of memory");
    snprintf(path, dl + h->name_len + 2, "%s/%.*s", s->dir, (int)h->name_len, name);
    mpm_out_t out;
    int rc = 0;
    if (mpm__out_open(&out, path, MPM_FMT_TEXT, NULL) < 0 ||
        mpm__out_rows(&out, name + h->name_len, len - sizeof *h - h->name_len) < 0 ||
        mpm__out_commit(&out) < 0) {
        rc = mpm_err_set(err, -1, "%s", out.err);
        mpm__out_abort(&out);
    } else if (h->dropped_alpha) {
        MPM_LOG(MPM_LOG_WARN, "%s: the alpha channel was dropped (%s has none)", path,
                img_format_name(img_format_from_name(path)));
    }
    free(path);
    return rc;
}

static int image_sink_write(void *sp, uint64_t index, const void *data, size_t len,
                            mpm_err_t *err)
{
    (void)index;
    sink_t *s = sp;
    res_hdr_t h;
    if (len < sizeof h) return mpm_err_set(err, -1, "malformed result");
    memcpy(&h, data, sizeof h);
    if (h.magic != IMG_MAGIC) return mpm_err_set(err, -1, "malformed result");
    if (h.kind == KIND_FILE) return sink_file(s, &h, data, len, err);
    const char *name = s->out.path ? s->out.path : "standard output";
    size_t row = img_row_bytes(&h.info), n = len - sizeof h;
    if (s->next_row == 0) s->height = h.info.height;
    if (h.y0 != s->next_row || h.y1 <= h.y0 || h.y1 > s->height || n != (size_t)(h.y1 - h.y0) * row)
        return mpm_err_set(err, -1, "%s: strip rows %u..%u out of order", name, h.y0, h.y1);
    qitem_t *q = malloc(sizeof *q + n);
    if (!q) return mpm_err_set(err, -1, "%s: out of memory", name);
    q->next = NULL;
    q->info = h.info;
    q->y0 = h.y0;
    q->y1 = h.y1;
    q->len = n;
    memcpy(q->rows, (const char *)data + sizeof h, n);
    pthread_mutex_lock(&s->mu);
    if (!s->started) {
        if (pthread_create(&s->thread, NULL, encoder_main, s) != 0) {
            pthread_mutex_unlock(&s->mu);
            free(q);
            return mpm_err_set(err, -1, "%s: cannot start the encoder thread", name);
        }
        s->started = 1;
    }
    while (!s->failed && s->queued && s->queued + n > QUEUE_MAX) pthread_cond_wait(&s->cv, &s->mu);
    int failed = s->failed;
    if (!failed) {
        if (s->tail) s->tail->next = q;
        else s->head = q;
        s->tail = q;
        s->queued += n;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    if (failed) {
        free(q);
        return mpm_err_set(err, -1, "%s", s->errmsg);
    }
    s->next_row = h.y1;
    return 0;
}

/* Tells the encoder thread that no strip follows and waits for it. */
static void encoder_stop(sink_t *s)
{
    if (!s->started) return;
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->started = 0;
}

static int image_sink_close(void *sp, int commit, mpm_err_t *err)
{
    sink_t *s = sp;
    int rc = 0;
    if (!s->o->many) {
        if (!commit) {
            pthread_mutex_lock(&s->mu);
            s->failed = 1; /* the encoder drops what is queued */
            pthread_mutex_unlock(&s->mu);
        }
        encoder_stop(s);
        const char *name = s->out.path ? s->out.path : "standard output";
        if (commit && s->failed)
            rc = mpm_err_set(err, -1, "%s", s->errmsg);
        else if (commit && !s->finished)
            rc = mpm_err_set(err, -1, "%s: only %u of %u rows were written", name,
                             s->written_rows, s->height);
        if (commit && rc == 0) {
            if (mpm__out_commit(&s->out) < 0) rc = mpm_err_set(err, -1, "%s", s->out.err);
        } else {
            mpm__out_abort(&s->out);
        }
        img_writer_free(s->w);
    }
    sink_free(s);
    return rc;
}

const mpm_kernel_t mpm_kernel_image = {
    .abi = MPM_KERNEL_ABI,
    .name = "image",
    .summary = "filter images: gray, Gaussian blur, Sobel, sharpen, box (PNM/PNG/JPEG)",
    .synopsis = "--filter F[,F...] IMAGE -o OUT | --filter F[,F...] IMAGE...|DIR... -o OUTDIR",
    .description =
        "One image: rank 0 decodes it row by row and ships strips of rows (with the\n"
        "rows of support each filter needs above and below) while it decodes; strips\n"
        "come back in order and are encoded into -o as they arrive, so memory per rank\n"
        "stays bounded whatever the image's height. Output bytes are the same for\n"
        "every -np, --threads and --strip-rows.\n"
        "Several images or directories: each file is a task, written to -o DIR under\n"
        "the same name; a file that cannot be decoded is reported and the others are\n"
        "processed (exit code 1).\n"
        "Formats by extension: .pgm/.ppm/.pnm (binary P5/P6, 8 or 16 bits), .png\n"
        "(libpng: gray, gray+alpha, RGB, RGBA, palette, 8/16 bits), .jpg/.jpeg\n"
        "(libjpeg-turbo: gray, RGB). Alpha is kept untouched where the output format\n"
        "has it.\n"
        "Filters (edges replicate the nearest pixel; results round half up and clamp):\n"
        "  gray     luma 0.299 R + 0.587 G + 0.114 B; one channel\n"
        "  blur     Gaussian, weights exp(-x^2/(2 sigma^2)) normalised, radius\n"
        "           ceil(3 sigma), separable, float accumulation\n"
        "  sobel    3x3 Sobel on the luma (float), magnitude sqrt(gx^2 + gy^2); one channel\n"
        "  sharpen  unsharp mask: v + amount * (v - blur(v))\n"
        "  box      mean over the (2R+1)^2 square, exact\n"
        "  copy     nothing (format conversion: --filter copy in.png -o out.jpg)\n"
        "A chain (blur,sobel) applies them in order, each rounding to whole values.\n"
        "Details: docs/IMAGE.md.\n",
    .options = image_options,
    .opts_size = sizeof(image_opts_t),
    .opts_init = image_init,
    .check = image_check,
    .opts_free = image_free,
    .records = MPM_REC_LINES,
    .default_chunk_size = (uint64_t)4 << 20,
    .columns = image_columns,
    .map = image_map,
    .source_open = image_source_open,
    .source_next = image_source_next,
    .source_close = image_source_close,
    .sink_open = image_sink_open,
    .sink_write = image_sink_write,
    .sink_close = image_sink_close,
};
