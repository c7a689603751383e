/*
 * mpimap/kernel.h - the kernel interface.
 *
 * A kernel is one `const mpm_kernel_t` table of function pointers. The engine
 * owns everything about ranks, threads, chunks, ordering and files; a kernel
 * only says how to read its options, what its inputs are, how records are
 * delimited, and what to compute on one chunk.
 *
 * Results come in two shapes, and a kernel may use both:
 *   - ordered rows: map() appends rows for its chunk to `out`; the engine
 *     writes every chunk's rows in input (chunk index) order.
 *   - a reduced partial: map() folds the chunk into `partial`, the state of
 *     the pool thread that runs it. Partials are merged per rank, serialised,
 *     merged across ranks on rank 0, and finish() writes the final rows.
 *
 * Threading contract:
 *   - map() runs on pool threads, concurrently with other map() calls on the
 *     same kernel and options, each with its own `partial`. It must not touch
 *     global mutable state and must never call MPI.
 *   - every other function runs on a rank's main thread, except that in
 *     journaled runs (--journal) chunks are folded into short-lived
 *     "segment" partials that the pool thread creates, serialises and merges
 *     into its own partial: partial_new, serialize, merge and partial_free
 *     must therefore also be safe on pool threads, touching only their
 *     arguments.
 *   - `opts` is read-only after check() returns.
 *
 * Error contract: functions return 0 on success and a negative value on
 * failure after filling the mpm_err_t they were given (mpm_err_set). An error
 * from map() carries the byte offset inside the chunk where the bad record
 * starts; the engine turns it into "FILE:LINE" or "FILE: byte N".
 * A failed chunk does not stop the run (unless --fail-fast): the engine
 * discards its rows, may run it again (--retries), and goes on. A map() that
 * fails must therefore leave `partial` exactly as it was: check the chunk
 * before folding it, or fold into a local first (see the test kernel).
 */
#ifndef MPIMAP_KERNEL_H
#define MPIMAP_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever mpm_kernel_t or the helpers below change incompatibly. */
#define MPM_KERNEL_ABI 5

/* ---- growable byte buffer ------------------------------------------------ */

typedef struct mpm_buf_s {
    char *data;
    size_t len;
    size_t cap;
} mpm_buf_t;

/* All return 0, or -1 when memory runs out (the buffer is left unchanged). */
int mpm_buf_reserve(mpm_buf_t *b, size_t extra);
int mpm_buf_append(mpm_buf_t *b, const void *p, size_t n);
int mpm_buf_printf(mpm_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mpm_buf_free(mpm_buf_t *b);

/* ---- errors ----------------------------------------------------------------- */

typedef struct mpm_err_s {
    int64_t offset; /* byte offset inside the chunk / input, or -1 */
    char msg[512];
} mpm_err_t;

/* Records an error; always returns -1 so that `return mpm_err_set(...)` works. */
int mpm_err_set(mpm_err_t *e, int64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- output rows --------------------------------------------------------- */

typedef enum { MPM_FMT_TEXT = 0, MPM_FMT_TSV = 1, MPM_FMT_JSON = 2 } mpm_format_t;

typedef struct mpm_val_s {
    const char *s; /* bytes of the value, not NUL-terminated */
    size_t len;
    int numeric; /* 1: emitted bare in JSON; 0: emitted as a JSON string */
} mpm_val_t;

/*
 * Appends one row of n values to `out`:
 *   text: values joined by TAB, then '\n' (bytes as they are)
 *   tsv:  same, with TAB, LF, CR and '\' escaped as \t \n \r \\
 *   json: one object {"col":value,...} on one line; the engine joins the
 *         lines of all chunks into one JSON array.
 * `cols` are the kernel's column names (mpm_kernel_t.columns).
 */
int mpm_emit_row(mpm_buf_t *out, mpm_format_t fmt, const char *const *cols, const mpm_val_t *v,
                 int n);

/* ---- inputs and chunks ------------------------------------------------------ */

typedef enum {
    MPM_IN_FILE = 0,  /* a path: split on record boundaries */
    MPM_IN_STDIN = 1, /* standard input of rank 0: always read by rank 0 */
    MPM_IN_MEMORY = 2, /* bytes held by the options (e.g. items given as arguments) */
    MPM_IN_RANGE = 3  /* integers [lo, hi): split into index ranges */
} mpm_input_kind_t;

typedef struct mpm_input_s {
    mpm_input_kind_t kind;
    const char *name; /* path, "-", or a label such as "arguments" for messages */
    const char *data; /* MPM_IN_MEMORY only; items separated by '\n' */
    size_t len;
    uint64_t lo, hi; /* MPM_IN_RANGE only */
} mpm_input_t;

typedef struct mpm_inputs_s {
    mpm_input_t *v;
    int n;
    int cap;
} mpm_inputs_t;

/* Appends one input; 0 or -1 (out of memory). `name`/`data` must outlive the run. */
int mpm_inputs_add(mpm_inputs_t *in, mpm_input_t input);

typedef struct mpm_chunk_s {
    uint64_t index;   /* 0, 1, 2 ... in input order, the same for any -np/--threads */
    int input;        /* index into the inputs */
    const char *name; /* the input's name, for messages */
    uint64_t offset;  /* byte offset of data[0] inside the input */
    const char *data; /* record-aligned bytes (NULL for ranges) */
    size_t len;
    uint64_t lo, hi; /* MPM_IN_RANGE: the integers [lo, hi) of this chunk */
} mpm_chunk_t;

/* How records are delimited, for splitting byte inputs into chunks. */
typedef enum {
    MPM_REC_LINES = 0, /* a chunk ends just after a '\n' */
    MPM_REC_WORDS = 1, /* a chunk ends just after a byte outside [A-Za-z0-9_] and < 0x80 */
    MPM_REC_BYTES = 2  /* fixed-size records (mpm_kernel_t.record_size): a chunk is exactly
                          the chunk size, a multiple of the record size (the last may be
                          shorter) */
} mpm_records_t;

/* ---- resident data (ABI 3) -------------------------------------------------
 * An iterative kernel (k-means) keeps what map() parsed on the rank that
 * parsed it and then runs solve() on every rank at once, with collective
 * helpers: the data is scattered once and never moves again. */
typedef struct mpm_solve_s mpm_solve_t;

int mpm_solve_rank(const mpm_solve_t *s);
int mpm_solve_size(const mpm_solve_t *s);
int mpm_solve_threads(const mpm_solve_t *s); /* this rank's pool threads */
/* -o PATH, or NULL when the output is standard output. */
const char *mpm_solve_output(const mpm_solve_t *s);
/* Whether --quiet was given (a kernel's own summary lines follow it). */
int mpm_solve_quiet(const mpm_solve_t *s);

/* Runs fn(arg, task, thread) for task = 0 .. ntasks-1 on this rank's pool
 * (thread in [0, threads)), tasks taken in any order by any thread; returns
 * when all are done. Local, not collective. fn must not call MPI. */
void mpm_solve_parallel(mpm_solve_t *s, size_t ntasks,
                        void (*fn)(void *arg, size_t task, int thread), void *arg);

/* Collective element-wise reductions, in place, every rank gets the result.
 * There is deliberately no floating-point sum: its result would depend on the
 * order of the ranks. Sum integers (exact) instead. */
typedef enum {
    MPM_RED_SUM_I64 = 0,
    MPM_RED_MIN_I64 = 1,
    MPM_RED_MAX_I64 = 2,
    MPM_RED_MIN_F64 = 3,
    MPM_RED_MAX_F64 = 4
} mpm_reduce_t;
void mpm_solve_allreduce(mpm_solve_t *s, void *buf, size_t n, mpm_reduce_t op);
/* Collective: every rank's `len` bytes, concatenated in rank order into
 * `all` (appended); off[r] gets the offset of rank r's bytes in all->data,
 * off[size] the end. off has size + 1 entries. */
void mpm_solve_allgather(mpm_solve_t *s, const void *mine, size_t len, mpm_buf_t *all,
                         size_t *off);
/* Collective: root's `len` bytes copied into every rank's buf. */
void mpm_solve_bcast(mpm_solve_t *s, void *buf, size_t len, int root);
/* Collective: 1 when every rank passes ok != 0 and no rank has a stop
 * signal pending (SIGINT, SIGTERM, SIGUSR1...); 0 otherwise. Call it once per
 * iteration and stop when it says 0. */
int mpm_solve_agree(mpm_solve_t *s, int ok);
/* Collective: writes to `path`, atomically (temporary file renamed when
 * every byte is in), the pieces of every rank in ascending key order. Each
 * rank passes its own pieces, keys ascending and unique across ranks (e.g.
 * chunk indices). Returns the agreed outcome: 0, or -1 on every rank with
 * err set where it failed (the file is then absent). */
int mpm_solve_write_ordered(mpm_solve_t *s, const char *path, size_t n, const uint64_t *keys,
                            const mpm_buf_t *pieces, mpm_err_t *err);
/* A figure for the run's --metrics JSON, object "<kernel name>": {name: value}
 * (rank 0's figures are the ones written). kind 0: "%.17g"; 1: an integer;
 * 2: true/false. */
void mpm_solve_metric(mpm_solve_t *s, const char *name, double value, int kind);

/* ---- options ------------------------------------------------------------------ */

typedef enum {
    MPM_OPT_FLAG = 0,   /* int, set to 1 */
    MPM_OPT_INT = 1,    /* long long in [min, max] */
    MPM_OPT_SIZE = 2,   /* uint64_t with K/M/G/T suffixes (binary), in [min, max] */
    MPM_OPT_STRING = 3, /* const char * pointing into argv */
    MPM_OPT_CHOICE = 4, /* int: index of the argument in `choices` ("a|b|c") */
    MPM_OPT_DOUBLE = 5  /* double in [min, max] */
} mpm_opt_type_t;

typedef struct mpm_option_s {
    const char *name;    /* long name without "--" */
    char short_name;     /* 0 for none */
    mpm_opt_type_t type;
    size_t offset;       /* offsetof() the field in the options struct */
    const char *argname; /* shown in --help, e.g. "N" */
    const char *help;
    long long min, max;  /* INT/SIZE/DOUBLE bounds (ignored when min > max) */
    const char *choices; /* CHOICE: "auto|master|shared" */
    unsigned flags;      /* MPM_OPTF_* (ABI 5; 0 when left out of an initialiser) */
} mpm_option_t;

/* The option's value does not change the results (a timeout, a log file, a
 * degree of parallelism): it is left out of the journal's fingerprint, so a
 * run may be resumed with another value. */
#define MPM_OPTF_NO_FINGERPRINT 1u

/* ---- the kernel table ----------------------------------------------------------- */

typedef struct mpm_kernel_s {
    unsigned abi; /* MPM_KERNEL_ABI */
    const char *name;
    const char *summary;     /* one line for `mpimap kernels` */
    const char *synopsis;    /* positional arguments, e.g. "[FILE...]" */
    const char *description; /* paragraphs for `mpimap KERNEL --help` */

    const mpm_option_t *options; /* terminated by an entry with name == NULL */
    size_t opts_size;            /* size of the kernel's options struct */
    void (*opts_init)(void *opts);

    /* Validates options and positional arguments (argv has argc entries) and
     * declares the inputs. Returns 0, or -1 for a usage error (exit 2). */
    int (*check)(void *opts, int argc, char **argv, mpm_inputs_t *inputs, mpm_err_t *err);
    /* Frees what check() allocated inside opts (may be NULL). */
    void (*opts_free)(void *opts);

    mpm_records_t records;
    uint64_t default_chunk_size; /* bytes, or integers for ranges */

    /* Names of the output columns for these options (NULL-terminated array):
     * the TSV header line and the JSON keys. */
    const char *const *(*columns)(const void *opts);

    /* Reduced results; all NULL for a kernel that only emits ordered rows. */
    void *(*partial_new)(const void *opts);
    void (*partial_free)(void *partial);
    /* Folds src into dst; src is left empty-or-valid and freed by the engine. */
    int (*merge)(const void *opts, void *dst, void *src, mpm_err_t *err);
    int (*serialize)(const void *opts, const void *partial, mpm_buf_t *out);
    /* Returns a new partial built from bytes made by serialize(), or NULL. */
    void *(*deserialize)(const void *opts, const void *data, size_t len, mpm_err_t *err);
    /* Writes the final rows of the merged partial (rank 0 only). */
    int (*finish)(const void *opts, void *partial, mpm_format_t fmt, mpm_buf_t *out,
                  mpm_err_t *err);

    /* Computes one chunk: appends ordered rows to out and/or folds into
     * partial. Required. */
    int (*map)(const void *opts, const mpm_chunk_t *chunk, void *partial, mpm_format_t fmt,
               mpm_buf_t *out, mpm_err_t *err);

    /* ---- optional (ABI 2): kernels that cut their own inputs -----------------
     * Some inputs are not record-delimited bytes: an image is decoded on rank
     * 0 and cut into strips of rows with halo rows around them. When
     * source_open is set, rank 0's main thread cuts every input through these
     * three functions instead of the engine's splitter (--io master is then
     * forced: only rank 0 sees the decoded bytes). `records` and the engine's
     * splitting rules do not apply; chunk indices still run 0, 1, 2 ... over
     * all inputs in order, and the cut must depend only on the input and the
     * chunk size, never on ranks or threads. */
    /* Opens one input. Returns a handle, or NULL with err set: the input then
     * counts as one failed chunk and the run goes on with the next input. */
    void *(*source_open)(const void *opts, const mpm_input_t *in, uint64_t chunk_size,
                         mpm_err_t *err);
    /* Appends the next chunk's bytes to out (which may already hold bytes
     * that are not the kernel's: append only) and sets *offset, the chunk's
     * position in the input (strictly increasing; the journal's key). Returns
     * 1, 0 at the end of the input, or -1 with err set (the rest of the input
     * is skipped and counts as one failed chunk). */
    int (*source_next)(void *src, mpm_buf_t *out, uint64_t *offset, mpm_err_t *err);
    void (*source_close)(void *src);

    /* ---- optional (ABI 2): ordered results that are not rows of text -----------
     * When sink_open is set, rank 0 hands every chunk's ordered bytes, in
     * chunk order, to the sink instead of writing them as rows: the sink owns
     * the output (an encoded image, a directory of files) and its atomicity.
     * --format does not apply. All three run on rank 0's main thread. */
    /* path: -o PATH, or NULL for standard output. NULL with err set: the run
     * stops before any chunk is sent (exit 1). */
    void *(*sink_open)(const void *opts, const mpm_inputs_t *inputs, const char *path,
                       mpm_err_t *err);
    /* One chunk's bytes (as map() appended them); chunks that failed are not
     * passed. 0, or -1 with err set (the run stops). */
    int (*sink_write)(void *sink, uint64_t index, const void *data, size_t len, mpm_err_t *err);
    /* commit 1: the run succeeded: finish and move the output into place;
     * 0: it did not: remove what is unfinished (outputs that the sink already
     * completed, such as the other files of a directory, may stay). Frees the
     * sink. 0, or -1 with err set. */
    int (*sink_close)(void *sink, int commit, mpm_err_t *err);

    /* ---- optional (ABI 3) ---------------------------------------------------
     * Fixed-size binary records: when set and it returns R > 0 for these
     * options, `records` is MPM_REC_BYTES and the chunk size is rounded down
     * to a multiple of R (at least R). The last chunk of an input may hold a
     * partial record: map() must reject it. */
    uint64_t (*record_size)(const void *opts);

    /* Resident data: when set, partials stay on their rank. Every chunk is
     * mapped (a chunk that fails stops the run, as with --fail-fast; --journal
     * is refused), each rank merges its threads' partials, and then every rank
     * calls solve() with its merged partial at the same time, on its main
     * thread. solve() may use the mpm_solve_* helpers (collective ones in the
     * same order on every rank) and appends the final output bytes to `out`
     * on rank 0, written as they are to -o (--format does not apply).
     * Returns 0, or -1 with err set: solve() must then have reached the same
     * decision on every rank (through mpm_solve_agree), and rank 0 prints
     * err. serialize/deserialize are not used. When mpm_solve_agree returned
     * 0 because of a signal, returning -1 makes the run end as interrupted. */
    int (*solve)(const void *opts, void *partial, mpm_solve_t *s, mpm_buf_t *out,
                 mpm_err_t *err);

    /* ---- optional (ABI 4) ---------------------------------------------------
     * The shape of the run: called on every rank, on its main thread, once
     * the pool is planned and before partial_new, source_open, sink_open and
     * any map(), with the number of ranks, this rank, this rank's pool
     * threads and the pool threads of all ranks together. The one call that
     * may change opts after check(): a kernel splits a budget given for the
     * whole run (fetch: transfers in flight) among the threads that share
     * it. Whatever it derives must not change chunk boundaries. */
    void (*layout)(void *opts, int ranks, int rank, int threads, int total_threads);

    /* ---- optional (ABI 5) ---------------------------------------------------
     * Pool threads per rank. Called on every rank while the pool is planned:
     * `requested` is --threads (0 for auto), `cores` the cores of the rank's
     * cpuset. Returns the number of pool threads this kernel wants (0: the
     * engine's choice). A kernel whose map() mostly waits (exec: one thread
     * per task slot) may ask for more threads than cores; the engine then
     * does not warn about oversubscription. */
    int (*pool_threads)(const void *opts, int requested, int cores);

    /* Appends lines ("key value\n") to the journal's fingerprint for what
     * changes results and is not an option value (exec: the command). A
     * journal whose lines differ is refused on --resume. 0, or -1 when out
     * of memory. */
    int (*fingerprint)(const void *opts, mpm_buf_t *out);

    /* --resume-failed: given the bytes a journaled chunk's map() produced,
     * returns 1 when that result records a failure of its own (exec: a task
     * that exited non-zero; the chunk itself succeeded), so that the chunk
     * is computed again; 0 to keep it. Chunks that failed in the engine's
     * sense are always computed again on --resume. Runs on rank 0's main
     * thread. */
    int (*failed)(const void *opts, const void *data, size_t len);
} mpm_kernel_t;

/* ---- plugins (ABI 5) -----------------------------------------------------
 * `mpimap --kernel ./libmykernel.so [kernel options] INPUT...` dlopen()s the
 * library and reads the kernel table from the one symbol it exports:
 *
 *     MPM_KERNEL_EXPORT const mpm_kernel_t mpimap_kernel = {
 *         .abi = MPM_KERNEL_ABI, .name = "mykernel", ...
 *     };
 *
 * A library without the symbol, or built against another MPM_KERNEL_ABI, is
 * refused with a message that says which. */
#define MPM_KERNEL_SYMBOL "mpimap_kernel"
#define MPM_KERNEL_EXPORT __attribute__((visibility("default")))

#ifdef __cplusplus
}
#endif
#endif
