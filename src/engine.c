/*
 * engine.c - distributes chunks over ranks and threads, collects results.
 *
 * DESIGN. Every rank runs one main thread (the only one that calls MPI,
 * MPI_THREAD_FUNNELED) and a pool of compute threads (pool.h) pinned inside
 * the rank's cpuset (topo.h). Rank 0 is the master and computes too (unless
 * --dedicated-master).
 *
 *   master main thread                      worker main thread
 *   ------------------                      ------------------
 *   splitter -> next chunk                   Improbe(CHUNK) -> Imrecv -> pool
 *   keeps every rank's window full:          pool done -> Isend(RESULT)
 *     local: pool submit                     STOP -> drain, send PARTIAL
 *     remote: Isend(CHUNK)
 *   Iprobe(RESULT) + local pool done
 *     -> reorder ring -> writer (in order)
 *   all done -> STOP -> merge PARTIALs -> finish -> commit output
 *
 * Distribution is demand-driven: a rank gets a new chunk as soon as one of
 * its W in-flight chunks comes back, so the next chunk is already waiting in
 * its queue while the current one computes. A chunk message is one buffer:
 * a fixed header (mpm_chunk_desc_t) then the bytes (--io master) or nothing
 * (--io shared: the pool thread preads the bytes itself). A result message
 * is a fixed header (result_hdr_t) then the chunk's ordered rows, built in
 * place by the kernel so that neither side copies them.
 *
 * Ordering: results are keyed by chunk index in a ring of RING slots; the
 * master never dispatches chunk i before chunk i - RING has been written, so
 * memory stays bounded even when one chunk is very slow.
 *
 * Idle: the main threads must not spin while pool threads compute on the
 * same cores (mpirun binds a rank to one core by default). A main thread
 * that found nothing to do polls a few more times, then sleeps on the pool's
 * completion condition variable with a timeout growing to 2 ms.
 *
 * Failures: a chunk whose map() fails (or whose bytes cannot be read) comes
 * back with its reason. The master sends it out again up to --retries times
 * (rebuilding its bytes from the input), then records it as failed: on
 * stderr, in the journal and in the summary at the end. The run goes on and
 * exits 1; -o PATH is then left alone and the rows of the chunks that
 * succeeded go to PATH.incomplete. --fail-fast instead stops at the first
 * failure and reports the lowest failing chunk index (the same for any
 * -np/--threads). Errors of the run itself (output or journal writes, out of
 * memory) always stop it. Every rank returns the exit code broadcast by
 * rank 0.
 *
 * Journal (--journal, journal.h): the master appends every finished chunk's
 * rows, and for reduced kernels the chunk's own partial (each chunk is then
 * mapped into a fresh partial that the pool thread serialises and merges
 * into its own), as soon as the result arrives. With --resume, the splitter
 * still walks every chunk, but a chunk found in the journal is not sent:
 * its rows are read back from the journal when its turn to be written
 * comes, and its partial is merged on rank 0. Output is byte-identical to a
 * run without interruption.
 *
 * Signals (signals.h): the first SIGTERM/SIGINT/SIGUSR1 on any rank (a
 * worker forwards it to the master with TAG_INTERRUPT) makes the master stop
 * dispatching and tell every rank to cancel the chunks that have not started
 * (TAG_CANCEL; they come back marked cancelled). Running chunks get --grace
 * seconds to finish and are journaled; then the journal is synced, the
 * temporary output removed and every rank returns 3. If chunks are still
 * running when the grace period ends, rank 0 calls MPI_Abort with code 3.
 */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "cli.h"
#include "journal.h"
#include "mpimap/mpimap.h"
#include "obs.h"
#include "output.h"
#include "pool.h"
#include "progress.h"
#include "signals.h"
#include "split.h"
#include "topo.h"
#include "util.h"

enum {
    TAG_CHUNK = 101,
    TAG_RESULT = 102,
    TAG_STOP = 103,
    TAG_PARTIAL = 104,
    TAG_DATA = 105,
    TAG_CANCEL = 106,   /* master -> worker: drop the chunks not started */
    TAG_INTERRUPT = 107, /* worker -> master: this rank was signalled */
    TAG_SEGMENTS = 108,  /* worker -> master at STOP: its open segments */
    TAG_CLOCK = 109,     /* --trace: clock offset ping-pongs at the start */
    TAG_OBS = 110,       /* --metrics/--trace/-v: a rank's counters and spans at the end */
    TAG_SOLVE = 111      /* resident kernels: pieces of mpm_solve_write_ordered */
};

/* STOP status: what workers do with their partials. */
enum { STOP_OK = 0, STOP_FAILED = 1, STOP_INTERRUPTED = 2 };

/* Result status. */
enum { ST_OK = 0, ST_KERNEL = -1, ST_ENGINE = -2, ST_CANCELLED = -3 };

/* Room reserved in front of chunk bytes and of result rows for the header. */
#define CHUNK_HDR 64
#define RESULT_HDR 128
#define JOURNAL_SYNC_S 1.0 /* fsync the journal at most once per second */
#define MAX_LISTED 20      /* failures listed in the final summary */
#define SPIN_POLLS 200
#define MAX_SLEEP 0.002
#define MIN_SLEEP 100e-6 /* the longest sleep while chunk bytes are arriving */
#define MAX_HELD ((uint64_t)256 << 20) /* bytes of rows held for reordering */

typedef struct result_hdr_s {
    mpm_chunk_desc_t d; /* the chunk, as it was sent (so that it can be sent again) */
    int32_t status;     /* ST_* */
    int32_t reserved;
    int64_t err_offset; /* absolute byte offset in the input, or -1 */
    uint64_t out_len;   /* bytes after the header: rows then partial, or error text */
    uint64_t part_len;  /* a closed segment's serialised partial (journaled reduced runs) */
    uint64_t seg_key;   /* the segment this chunk was folded into, or 0 */
    int32_t seg_closed; /* this chunk closed it: the partial follows the rows */
    int32_t reserved2;
} result_hdr_t;

_Static_assert(sizeof(mpm_chunk_desc_t) <= CHUNK_HDR, "chunk header too large");
_Static_assert(sizeof(result_hdr_t) <= RESULT_HDR, "result header too large");

typedef struct engine_s engine_t;

/*
 * Journaled runs of reduced kernels: every pool thread folds its chunks into
 * an open *segment* (a partial of its own). After SEG_CHUNKS chunks or
 * SEG_SECONDS, the segment is closed: serialised into the result of the
 * chunk that closed it (rank 0 journals it with the identities of the chunks
 * it covers) and merged into the thread's partial. At STOP the open segments
 * are flushed the same way (TAG_SEGMENTS). A chunk of a reduced kernel is
 * durable once its segment is in the journal: a SIGKILL loses at most the
 * open segments, i.e. SEG_CHUNKS chunks or SEG_SECONDS of work per thread.
 * Segments rather than one partial per chunk: each chunk's words are hashed
 * twice either way, but a segment's serialised partial is far smaller than
 * the sum of its chunks' (word frequencies are skewed), so the journal and
 * the merge on resume shrink by about the segment length.
 */
#define SEG_CHUNKS 16
#define SEG_SECONDS 5.0
typedef struct segment_s {
    void *p; /* open segment, or NULL */
    uint32_t seq, count;
    double opened;
} segment_t;

typedef struct job_s {
    mpm_task_t task; /* first member: the pool hands back &job->task */
    engine_t *e;
    mpm_chunk_desc_t d;
    char *buf; /* CHUNK_HDR bytes then the chunk data (when present) */
    const char *data; /* set when the bytes are in rank 0's mapping: release when done */
    mpm_buf_t out; /* RESULT_HDR bytes then rows (and partial) or error text */
    uint64_t part_len;
    uint64_t seg_key;
    int seg_closed;
    int status;
    int64_t err_offset;
    double read_s; /* time this chunk's bytes took to pread (metrics) */
    MPI_Request req; /* worker: the result Isend */
} job_t;

struct engine_s {
    const mpm_config_t *cfg;
    const mpm_kernel_t *k;
    const void *opts;
    const mpm_inputs_t *in;
    MPI_Comm comm;
    int rank, size;
    int io; /* resolved: MPM_IO_MASTER or MPM_IO_SHARED */
    uint64_t chunk_size;
    mpm_records_t records; /* the kernel's, or MPM_REC_BYTES (record_size) */

    hwloc_topology_t topo;
    mpm_placement_t pl;
    mpm_pool_t *pool;
    void **partials; /* one per pool thread */
    segment_t *segs; /* journaled reduced runs: one per pool thread (see segment_t) */
    int *fds;        /* shared I/O: input descriptors opened on first use */
    mpm_journal_t *journal; /* rank 0 */
    /* --report-bindings: each pool thread's affinity as the kernel reports
     * it after pinning (sched_getaffinity), and its thread id */
    char (*affinity)[96];
    long *tids;
    int inits; /* pool threads past thread_init (atomic) */
    mpm_obs_t *obs; /* counters and spans (--metrics, --trace, -v), or NULL */
    /* what the master counted, for the metrics document */
    uint64_t m_done, m_reused, m_failed, m_bytes;
    mpm_buf_t kmetrics; /* resident kernels: "name": value pairs for --metrics */
};

/* Main-thread timing helpers: a no-op without metrics. */
static double ob_now(const engine_t *e) { return e->obs ? mpm__now() : 0; }
static double ob_busy(const engine_t *e, double now) { return e->obs ? mpm__obs_busy(e->obs, now) : 0; }
static mpm_tstat_t *ob_main(const engine_t *e) { return &e->obs->th[e->obs->nthreads]; }
static void ob_poll(const engine_t *e, double a)
{
    if (e->obs) ob_main(e)->poll_s += mpm__now() - a;
}
/* A stretch of main-thread time of this kind (write, read, idle). */
static void ob_main_span(const engine_t *e, int kind, double a, int64_t chunk, uint64_t bytes)
{
    if (!e->obs) return;
    double b = mpm__now();
    mpm_tstat_t *m = ob_main(e);
    if (kind == MPM_SP_WRITE) m->write_s += b - a;
    else if (kind == MPM_SP_READ) m->split_s += b - a;
    else if (kind == MPM_SP_IDLE) m->wait_s += b - a;
    if (kind != MPM_SP_IDLE || b - a >= 20e-6)
        mpm__obs_span(e->obs, e->obs->nthreads, kind, a, b, chunk, bytes);
}
static void ob_transfer(const engine_t *e, int kind, double a, double busy_a, int64_t chunk,
                        uint64_t bytes)
{
    if (e->obs) mpm__obs_transfer(e->obs, kind, a, mpm__now(), busy_a, chunk, bytes);
}

/* ---- helpers ------------------------------------------------------------- */

static int mpi_check(int rc, const char *what)
{
    if (rc == MPI_SUCCESS) return 0;
    char s[MPI_MAX_ERROR_STRING];
    int n = 0;
    MPI_Error_string(rc, s, &n);
    MPM_LOG(MPM_LOG_ERROR, "%s failed: %s", what, s);
    MPI_Abort(MPI_COMM_WORLD, MPM_EXIT_FAIL);
    return -1;
}

static void thread_init(int i, void *arg)
{
    engine_t *e = arg;
    mpm__sig_block_thread();
    if (mpm__topo_bind_thread(e->topo, &e->pl, i) < 0)
        MPM_LOG(MPM_LOG_WARN, "cannot pin pool thread %d: %s", i, strerror(errno));
    if (e->affinity) {
        /* Read back what the kernel applied (hwloc asks it with
         * sched_getaffinity), for --report-bindings. */
        hwloc_bitmap_t set = hwloc_bitmap_alloc();
        if (set && hwloc_get_cpubind(e->topo, set, HWLOC_CPUBIND_THREAD) == 0)
            hwloc_bitmap_list_snprintf(e->affinity[i], sizeof e->affinity[i], set);
        else
            snprintf(e->affinity[i], sizeof e->affinity[i], "? (%s)", strerror(errno));
        hwloc_bitmap_free(set);
        e->tids[i] = (long)syscall(SYS_gettid);
    }
    __atomic_add_fetch(&e->inits, 1, __ATOMIC_RELEASE);
}

static int input_fd(engine_t *e, int i, mpm_err_t *err)
{
    if (e->fds[i] >= 0) return e->fds[i];
    int fd = open(e->in->v[i].name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mpm_err_set(err, -1, "cannot open '%s': %s", e->in->v[i].name, strerror(errno));
    e->fds[i] = fd;
    return fd;
}

static uint64_t seg_key(int rank, int tid, uint32_t seq)
{
    return (uint64_t)rank << 40 | (uint64_t)tid << 24 | (seq & 0xffffffu);
}

/* Serialises thread tid's open segment into out, merges it into the
 * thread's partial and closes it. Runs on pool thread tid, or on the main
 * thread while the pool is idle. */
static int segment_close(engine_t *e, int tid, mpm_buf_t *out, mpm_err_t *err)
{
    segment_t *sg = &e->segs[tid];
    int rc = 0;
    if (e->k->serialize(e->opts, sg->p, out) < 0)
        rc = mpm_err_set(err, -1, "out of memory serialising a partial result");
    else if (e->k->merge(e->opts, e->partials[tid], sg->p, err) < 0)
        rc = -1;
    e->k->partial_free(sg->p);
    sg->p = NULL;
    return rc;
}

/* Reads the bytes of chunk d of input `name` from fd into dst. 0, or -1 with
 * err set. */
static int read_chunk(int fd, const char *name, const mpm_chunk_desc_t *d, char *dst,
                      mpm_err_t *err)
{
    long long r = mpm__pread_full(fd, dst, (size_t)d->len, d->offset);
    if (r == (long long)d->len) return 0;
    return mpm_err_set(err, -1, "cannot read '%s' at byte %llu: %s", name,
                       (unsigned long long)(d->offset + (r > 0 ? (uint64_t)r : 0)),
                       r < 0 ? strerror(errno) : "file shrank during the run");
}

/* Runs on a pool thread: read the bytes if needed, then map the chunk. */
static void job_run(job_t *j, int tid)
{
    engine_t *e = j->e;
    mpm_err_t err = {.offset = -1, .msg = ""};
    if (j->status) return; /* failed before it was queued (message in out) */
    const mpm_input_t *in = &e->in->v[j->d.input];
    mpm_chunk_t c = {.index = j->d.index,
                     .input = j->d.input,
                     .name = in->name,
                     .offset = j->d.offset,
                     .len = (size_t)j->d.len,
                     .lo = j->d.lo,
                     .hi = j->d.hi};
    if (in->kind != MPM_IN_RANGE) {
        if (j->d.has_data == MPM_DATA_PREAD && j->d.len) {
            char *nb = realloc(j->buf, CHUNK_HDR + (size_t)j->d.len);
            if (!nb) {
                mpm_err_set(&err, -1, "out of memory for a chunk of %llu bytes",
                            (unsigned long long)j->d.len);
                j->status = ST_ENGINE;
                goto fail;
            }
            j->buf = nb;
            double r0 = e->obs ? mpm__now() : 0;
            int rr = read_chunk(e->fds[j->d.input], in->name, &j->d, j->buf + CHUNK_HDR, &err);
            if (e->obs) j->read_s = mpm__now() - r0;
            if (rr < 0) {
                j->status = ST_ENGINE;
                goto fail;
            }
        }
        c.data = j->data ? j->data : j->buf + CHUNK_HDR;
    }
    void *part = e->partials ? e->partials[tid] : NULL;
    segment_t *sg = e->segs ? &e->segs[tid] : NULL;
    if (sg && !sg->p) {
        /* Journaled reduced run: chunks fold into the thread's open segment. */
        if (!(sg->p = e->k->partial_new(e->opts))) {
            mpm_err_set(&err, -1, "out of memory for a partial result");
            j->status = ST_ENGINE;
            goto fail;
        }
        sg->seq++;
        sg->count = 0;
        sg->opened = mpm__now();
    }
    if (sg) part = sg->p;
    if (e->k->map(e->opts, &c, part, (mpm_format_t)e->cfg->format, &j->out, &err) < 0) {
        j->status = ST_KERNEL;
        goto fail;
    }
    if (sg) {
        j->seg_key = seg_key(e->rank, tid, sg->seq);
        if (++sg->count >= SEG_CHUNKS || mpm__now() - sg->opened >= SEG_SECONDS) {
            /* Close the segment: its partial travels with this result to
             * the journal, and joins the thread's partial. */
            size_t rows_end = j->out.len;
            if (segment_close(e, tid, &j->out, &err) < 0) {
                j->status = ST_ENGINE;
                goto fail;
            }
            j->part_len = j->out.len - rows_end;
            j->seg_closed = 1;
        }
    }
    return;
fail:
    j->err_offset = err.offset >= 0 && in->kind != MPM_IN_RANGE ? (int64_t)j->d.offset + err.offset
                                                                 : err.offset;
    j->part_len = 0;
    j->seg_key = 0;
    j->seg_closed = 0;
    j->out.len = RESULT_HDR;
    mpm_buf_append(&j->out, err.msg, strlen(err.msg));
}

static void job_work(mpm_task_t *t, int tid)
{
    job_t *j = (job_t *)t;
    mpm_obs_t *o = j->e->obs;
    if (!o || j->status) {
        job_run(j, tid);
        return;
    }
    double a = mpm__now();
    mpm__obs_task_begin(o, tid, a);
    job_run(j, tid);
    double b = mpm__now();
    mpm_tstat_t *s = &o->th[tid];
    s->chunks++;
    s->failed += j->status != 0;
    s->bytes_in += j->d.len;
    if (!j->status) s->bytes_out += j->out.len - RESULT_HDR;
    s->read_s += j->read_s;
    s->compute_s += b - a - j->read_s;
    if (j->read_s > 0)
        mpm__obs_span(o, tid, MPM_SP_READ, a, a + j->read_s, (int64_t)j->d.index, j->d.len);
    mpm__obs_span(o, tid, MPM_SP_COMPUTE, a + j->read_s, b, (int64_t)j->d.index, j->d.len);
    mpm__obs_task_end(o, tid, b);
}

static job_t *job_new(engine_t *e, const mpm_chunk_desc_t *d, char *buf)
{
    job_t *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->e = e;
    j->d = *d;
    j->buf = buf;
    j->err_offset = -1;
    j->task.work = job_work;
    if (mpm_buf_reserve(&j->out, RESULT_HDR + 256)) {
        free(j);
        return NULL;
    }
    j->out.len = RESULT_HDR;
    if (!d->has_data && e->in->v[d->input].kind == MPM_IN_FILE && d->len) {
        mpm_err_t err;
        if (input_fd(e, d->input, &err) < 0) {
            j->status = ST_ENGINE;
            j->out.len = RESULT_HDR;
            mpm_buf_append(&j->out, err.msg, strlen(err.msg));
        }
    }
    return j;
}

static void job_free(job_t *j)
{
    if (!j) return;
    free(j->buf);
    mpm_buf_free(&j->out);
    free(j);
}

/* Fills the header in front of the rows. A task the pool dropped
 * (mpm__pool_cancel) goes back as cancelled. */
static void job_seal(job_t *j)
{
    if (j->task.cancelled) {
        j->status = ST_CANCELLED;
        j->out.len = RESULT_HDR;
        j->part_len = 0;
        j->seg_key = 0;
        j->seg_closed = 0;
    }
    result_hdr_t h = {.d = j->d,
                      .status = j->status,
                      .err_offset = j->err_offset,
                      .out_len = j->out.len - RESULT_HDR,
                      .part_len = j->part_len,
                      .seg_key = j->seg_key,
                      .seg_closed = j->seg_closed};
    memcpy(j->out.data, &h, sizeof h);
}

/* ---- master -------------------------------------------------------------- */

typedef struct slot_s {
    char *buf; /* RESULT_HDR + rows; NULL when empty */
    size_t len;
    int present;              /* the chunk's turn can come: rows here, in the journal, or none */
    int from_journal;         /* rows to read back from the journal: */
    mpm_jentry_t je;          /* a copy (journal entries move as it grows) */
} slot_t;

typedef struct pending_s {
    MPI_Request req;
    char *buf;
    int release; /* input whose mapping this send reads, or -1 */
} pending_t;

/* What the next chunk to hand out is. */
enum { NEXT_RUN = 0, NEXT_JOURNALED = 1, NEXT_FAILED = 2 };

typedef struct master_s {
    engine_t *e;
    mpm_splitter_t *split;
    mpm_out_t out;
    void *sink; /* the kernel's sink (mpm_kernel_t.sink_open) instead of out, or NULL */
    int *inflight, *window;
    int rr; /* round-robin cursor for choosing a rank */
    slot_t *ring;
    uint64_t ring_cap, next_write, dispatched;
    uint64_t held_bytes; /* rows waiting in the ring for an earlier chunk */
    int have_next, split_done, stop;
    mpm_chunk_desc_t next_d;
    char *next_buf;
    const char *next_data; /* the bytes: in next_buf, or in a mapping when next_buf is NULL */
    int next_kind;         /* NEXT_* */
    mpm_jentry_t next_je; /* NEXT_JOURNALED: a copy of the journal's entry */
    char next_err[512];
    int64_t next_err_offset;
    pending_t *sends;
    size_t nsends, cap_sends;
    /* chunks to send again (--retries) */
    mpm_chunk_desc_t *retry;
    size_t nretry, cap_retry;
    /* chunks that failed for good */
    uint64_t *failures; /* their chunk indexes (each reason was printed when it failed) */
    size_t nfail, cap_fail;
    /* a fatal error: the run stops; the lowest failing chunk is reported */
    int failed;
    uint64_t err_index;
    int err_input;
    int64_t err_offset;
    char err_msg[640];
    uint64_t chunks_done, reused, cancelled;
    void *jpartial; /* reduced kernels: partials of the chunks taken from the journal */
    struct openseg_s *osegs; /* segments whose chunks arrived, not yet journaled */
    size_t nosegs, cap_osegs;
    /* signals */
    mpm_progress_t progress;
    uint64_t done_extent; /* bytes (integers for ranges) of the chunks finished or failed */
    int rows_to_tty;      /* rows go to a terminal: erase the progress bar first */
    int interrupted; /* the signal number */
    double deadline;
} master_t;

/* Line number (1-based) of byte `off` in file `path`, or 0 if unknown. */
static uint64_t line_of(const char *path, uint64_t off)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[1 << 16];
    uint64_t line = 1, pos = 0;
    while (pos < off) {
        size_t want = off - pos < sizeof buf ? (size_t)(off - pos) : sizeof buf;
        ssize_t r = read(fd, buf, want);
        if (r <= 0) {
            close(fd);
            return 0;
        }
        for (const char *p = buf; (p = memchr(p, '\n', (size_t)(buf + r - p))); p++) line++;
        pos += (uint64_t)r;
    }
    close(fd);
    return line;
}

/* Where an error is: "FILE:LINE: ", "FILE: byte N: ", "arguments, item N: ",
 * "standard input: byte N: ", or "" (no offset: the message names the input;
 * range inputs carry the numbers in their message). `lines`: 0 to skip counting lines (many failures). */
static void where(const engine_t *e, int input, int64_t off, int lines, char *dst, size_t n)
{
    dst[0] = 0;
    const mpm_input_t *in = input >= 0 && input < e->in->n ? &e->in->v[input] : NULL;
    if (!in) return;
    if (off < 0) return; /* such messages name their input themselves */
    if (in->kind == MPM_IN_FILE) {
        /* Fixed-size binary records have no lines. */
        uint64_t line = lines && e->records != MPM_REC_BYTES ? line_of(in->name, (uint64_t)off) : 0;
        if (line)
            snprintf(dst, n, "%s:%llu: ", in->name, (unsigned long long)line);
        else
            snprintf(dst, n, "%s: byte %lld: ", in->name, (long long)off);
    } else if (in->kind == MPM_IN_MEMORY) {
        uint64_t item = 1;
        for (int64_t i = 0; i < off && (size_t)i < in->len; i++)
            if (in->data[i] == '\n') item++;
        snprintf(dst, n, "%s, item %llu: ", in->name, (unsigned long long)item);
    } else if (in->kind == MPM_IN_STDIN) {
        snprintf(dst, n, "standard input: byte %lld: ", (long long)off);
    }
}

/* A fatal error: the run stops. Keeps the lowest chunk index's message. */
static void master_record_error(master_t *m, uint64_t index, int input, int64_t off,
                                const char *msg, size_t len)
{
    m->stop = 1;
    m->nretry = 0; /* nothing more is sent */
    if (m->failed && m->err_index <= index) return;
    m->failed = 1;
    m->err_index = index;
    m->err_input = input;
    m->err_offset = off;
    if (len >= sizeof m->err_msg) len = sizeof m->err_msg - 1;
    memcpy(m->err_msg, msg, len);
    m->err_msg[len] = 0;
}

static void master_report_error(master_t *m)
{
    char w[600];
    where(m->e, m->err_input, m->err_offset, 1, w, sizeof w);
    MPM_LOG(MPM_LOG_ERROR, "%s%s", w, m->err_msg);
}

/* The chunk's identity length: bytes, or integers for a range. */
static uint64_t chunk_extent(const mpm_chunk_desc_t *d) { return d->len ? d->len : d->hi - d->lo; }

/* Writes one chunk's ordered bytes: rows to the output, or to the kernel's
 * sink. 0, or -1 with the message recorded. */
static int master_out(master_t *m, uint64_t index, const char *data, size_t len)
{
    if (m->sink) {
        mpm_err_t err = {.offset = -1, .msg = ""};
        if (m->e->k->sink_write(m->sink, index, data, len, &err) == 0) return 0;
        m->out.failed = 1; /* stops further writes, as for rows */
        master_record_error(m, index, -1, -1, err.msg, strlen(err.msg));
        return -1;
    }
    if (mpm__out_rows(&m->out, data, len) == 0) return 0;
    master_record_error(m, index, -1, -1, m->out.err, strlen(m->out.err));
    return -1;
}

/* Ends the output: commit 1 moves it into place (0 or -1, message printed);
 * 0 removes it. */
static int master_out_close(master_t *m, int commit)
{
    if (m->sink) {
        mpm_err_t err = {.offset = -1, .msg = ""};
        int r = m->e->k->sink_close(m->sink, commit, &err);
        m->sink = NULL;
        if (r < 0) MPM_LOG(MPM_LOG_ERROR, "%s", err.msg[0] ? err.msg : "cannot write the output");
        return r;
    }
    if (!commit) {
        mpm__out_abort(&m->out);
        return 0;
    }
    if (mpm__out_commit(&m->out) == 0) return 0;
    MPM_LOG(MPM_LOG_ERROR, "%s", m->out.err);
    return -1;
}

static void master_write_ready(master_t *m)
{
    for (;;) {
        slot_t *s = &m->ring[m->next_write % m->ring_cap];
        if (!s->present) return;
        if (m->rows_to_tty && (s->len > RESULT_HDR || s->from_journal)) mpm__progress_erase();
        /* Rows before the first fatal error are written even after it (its
         * slot never fills, so nothing after it is): standard output then
         * holds exactly the rows before the error. */
        if (!m->out.failed && s->from_journal && s->je.rows_len) {
            mpm_err_t err = {.offset = -1, .msg = ""};
            size_t n = (size_t)s->je.rows_len;
            char *rows = malloc(n);
            if (!rows) {
                master_record_error(m, m->next_write, -1, -1, "out of memory", 13);
            } else if (mpm__journal_read(m->e->journal, &s->je, 0, rows, n, &err) < 0) {
                master_record_error(m, m->next_write, -1, -1, err.msg, strlen(err.msg));
            } else {
                master_out(m, m->next_write, rows, n);
            }
            free(rows);
        } else if (!m->out.failed && s->len > RESULT_HDR) {
            master_out(m, m->next_write, s->buf + RESULT_HDR, s->len - RESULT_HDR);
        }
        free(s->buf);
        m->held_bytes -= s->len;
        s->buf = NULL;
        s->len = 0;
        s->from_journal = 0;
        s->present = 0;
        m->next_write++;
    }
}

/* Marks the chunk's turn as taken (no rows): a failed chunk. */
static void master_skip_slot(master_t *m, uint64_t index)
{
    slot_t *s = &m->ring[index % m->ring_cap];
    s->present = 1;
    master_write_ready(m);
}

static int push_retry(master_t *m, const mpm_chunk_desc_t *d)
{
    if (mpm__grow(&m->retry, &m->cap_retry, m->nretry + 1, sizeof *m->retry) < 0) return -1;
    m->retry[m->nretry++] = *d;
    return 0;
}

/*
 * A chunk failed (status ST_KERNEL/ST_ENGINE, or the splitter could not read
 * its input: from_split). Sends it again while --retries allows, else records
 * the failure; with --fail-fast the run stops.
 */
static void master_chunk_failed(master_t *m, const mpm_chunk_desc_t *d, int64_t off,
                                const char *msg, size_t len, int from_split)
{
    engine_t *e = m->e;
    const mpm_config_t *cfg = e->cfg;
    char text[640];
    if (len >= sizeof text) len = sizeof text - 1;
    memcpy(text, msg, len);
    text[len] = 0;
    uint32_t attempts = d->attempt + 1;
    /* A kernel's source cannot cut one chunk again on its own. */
    int replayable = !from_split && e->in->v[d->input].kind != MPM_IN_STDIN && !e->k->source_open;
    char w[600];
    /* A resident kernel cannot run on part of its data: any failure stops. */
    int fatal = cfg->fail_fast || e->k->solve;
    if (!fatal && !m->interrupted && replayable && attempts <= (uint64_t)cfg->retries) {
        where(e, d->input, off, m->nfail < 100, w, sizeof w);
        MPM_LOG(MPM_LOG_WARN, "%s%s (chunk %llu, attempt %u of %lld): trying again", w, text,
                (unsigned long long)d->index, attempts, cfg->retries + 1);
        mpm_chunk_desc_t again = *d;
        again.attempt = attempts;
        if (push_retry(m, &again) == 0) return;
    }
    if (e->journal) {
        mpm_err_t err = {.offset = -1, .msg = ""};
        if (mpm__journal_append(e->journal, MPM_J_FAILED, d->index, d->input, d->offset,
                                chunk_extent(d), attempts, text, strlen(text), NULL, 0, &err) < 0)
            master_record_error(m, d->index, -1, -1, err.msg, strlen(err.msg));
    }
    if (fatal) {
        master_record_error(m, d->index, d->input, off, text, strlen(text));
        return;
    }
    m->done_extent += chunk_extent(d);
    where(e, d->input, off, m->nfail < 100, w, sizeof w);
    char tail[96] = "";
    if (attempts > 1) snprintf(tail, sizeof tail, " (after %u attempts)", attempts);
    MPM_LOG(MPM_LOG_ERROR, "%s%s%s", w, text, tail);
    if (mpm__grow(&m->failures, &m->cap_fail, m->nfail + 1, sizeof *m->failures) < 0) {
        master_record_error(m, d->index, -1, -1, "out of memory", 13);
        return;
    }
    m->failures[m->nfail++] = d->index;
    master_skip_slot(m, d->index);
}

/* Receives the next message with this tag from src, whatever its size
 * (blocking). Returns a malloc'd buffer; *count gets its length. */
static char *recv_whole(engine_t *e, int src, int tag, int *count)
{
    MPI_Status st;
    mpi_check(MPI_Probe(src, tag, e->comm, &st), "MPI_Probe");
    MPI_Get_count(&st, MPI_BYTE, count);
    char *buf = malloc(*count ? (size_t)*count : 1);
    if (!buf) {
        MPM_LOG(MPM_LOG_ERROR, "out of memory receiving %d bytes from rank %d", *count, src);
        MPI_Abort(e->comm, MPM_EXIT_FAIL);
    }
    mpi_check(MPI_Recv(buf, *count, MPI_BYTE, src, tag, e->comm, MPI_STATUS_IGNORE), "MPI_Recv");
    return buf;
}

/* A segment of a journaled reduced run (see segment_t): the chunks folded
 * into it so far, in arrival order. */
typedef struct openseg_s {
    uint64_t key;
    mpm_jid_t *ids;
    size_t n, cap;
} openseg_t;

static openseg_t *oseg_find(master_t *m, uint64_t key)
{
    for (size_t i = 0; i < m->nosegs; i++)
        if (m->osegs[i].key == key) return &m->osegs[i];
    return NULL;
}

static void oseg_add(master_t *m, uint64_t key, const mpm_chunk_desc_t *d)
{
    openseg_t *o = oseg_find(m, key);
    if (!o) {
        if (mpm__grow(&m->osegs, &m->cap_osegs, m->nosegs + 1, sizeof *m->osegs) < 0) goto oom;
        o = &m->osegs[m->nosegs++];
        memset(o, 0, sizeof *o);
        o->key = key;
    }
    if (mpm__grow(&o->ids, &o->cap, o->n + 1, sizeof *o->ids) < 0) goto oom;
    o->ids[o->n++] = (mpm_jid_t){.input = d->input, .offset = d->offset, .len = chunk_extent(d)};
    return;
oom:
    master_record_error(m, d->index, -1, -1, "out of memory", 13);
}

/* A segment was closed with this partial: journal it with its chunks. */
static void oseg_journal(master_t *m, uint64_t key, const char *part, size_t len)
{
    openseg_t *o = oseg_find(m, key);
    if (!o) return; /* no chunk succeeded in it: nothing to record */
    mpm_err_t err = {.offset = -1, .msg = ""};
    if (mpm__journal_append(m->e->journal, MPM_J_SEGMENT, 0, 0, 0, 0, 0, o->ids,
                            o->n * sizeof *o->ids, part, len, &err) < 0)
        master_record_error(m, UINT64_MAX, -1, -1, err.msg, strlen(err.msg));
    free(o->ids);
    *o = m->osegs[--m->nosegs];
}

/* At STOP: journals rank 0's open segments, then every worker's (one
 * TAG_SEGMENTS message each: [u64 key][u64 len][bytes]...). */
static void master_flush_segments(master_t *m)
{
    engine_t *e = m->e;
    mpm_err_t err = {.offset = -1, .msg = ""};
    for (int t = 0; t < e->pl.nthreads; t++) {
        if (!e->segs[t].p) continue;
        mpm_buf_t b = {0};
        uint64_t key = seg_key(0, t, e->segs[t].seq);
        if (segment_close(e, t, &b, &err) < 0)
            master_record_error(m, UINT64_MAX, -1, -1, err.msg, strlen(err.msg));
        else
            oseg_journal(m, key, b.data, b.len);
        mpm_buf_free(&b);
    }
    for (int r = 1; r < e->size; r++) {
        int count = 0;
        char *buf = recv_whole(e, r, TAG_SEGMENTS, &count);
        size_t at = 0;
        while ((size_t)count - at >= 16) {
            uint64_t key, len;
            memcpy(&key, buf + at, 8);
            memcpy(&len, buf + at + 8, 8);
            at += 16;
            if (len > (size_t)count - at) break;
            oseg_journal(m, key, buf + at, (size_t)len);
            at += (size_t)len;
        }
        free(buf);
    }
}

/* Takes ownership of buf (a result message: header + rows + partial). */
static void master_result(master_t *m, int src, char *buf)
{
    engine_t *e = m->e;
    result_hdr_t h;
    memcpy(&h, buf, sizeof h);
    m->inflight[src]--;
    if (h.status == ST_CANCELLED) {
        m->cancelled++;
        free(buf);
        return;
    }
    if (h.status != ST_OK) {
        master_chunk_failed(m, &h.d, h.err_offset, buf + RESULT_HDR, (size_t)h.out_len, 0);
        free(buf);
        return;
    }
    m->chunks_done++;
    m->done_extent += chunk_extent(&h.d);
    size_t rows = (size_t)(h.out_len - h.part_len);
    if (e->journal) {
        mpm_err_t err = {.offset = -1, .msg = ""};
        if (mpm__journal_append(e->journal, MPM_J_DONE, h.d.index, h.d.input, h.d.offset,
                                chunk_extent(&h.d), h.d.attempt + 1, buf + RESULT_HDR, rows,
                                NULL, 0, &err) < 0)
            master_record_error(m, h.d.index, -1, -1, err.msg, strlen(err.msg));
        if (h.seg_key) {
            oseg_add(m, h.seg_key, &h.d);
            if (h.seg_closed) oseg_journal(m, h.seg_key, buf + RESULT_HDR + rows, (size_t)h.part_len);
        }
    }
    slot_t *s = &m->ring[h.d.index % m->ring_cap];
    s->buf = buf;
    s->len = RESULT_HDR + rows;
    s->present = 1;
    m->held_bytes += s->len;
    master_write_ready(m);
}

/* A chunk the journal holds: its rows are read back when its turn to be
 * written comes (its partial, if any, is in a segment merged at the start). */
static void master_reuse(master_t *m, const mpm_chunk_desc_t *d, const mpm_jentry_t *je)
{
    m->reused++;
    m->chunks_done++;
    m->done_extent += chunk_extent(d);
    slot_t *s = &m->ring[d->index % m->ring_cap];
    s->je = *je;
    s->from_journal = 1;
    s->present = 1;
    master_write_ready(m);
}

/* --resume of a reduced kernel: merges every journaled segment into
 * jpartial. 0, or -1 (recorded). */
static int master_load_segments(master_t *m)
{
    engine_t *e = m->e;
    mpm_err_t err = {.offset = -1, .msg = ""};
    for (size_t i = 0; i < mpm__journal_nsegments(e->journal); i++) {
        const mpm_jsegment_t *sg = mpm__journal_segment(e->journal, i);
        char *p = malloc(sg->part_len ? (size_t)sg->part_len : 1);
        void *part = NULL;
        int bad = !p ||
                  mpm__journal_read_at(e->journal, sg->pos + sg->n * sizeof(mpm_jid_t), p,
                                       (size_t)sg->part_len, &err) < 0 ||
                  !(part = e->k->deserialize(e->opts, p, (size_t)sg->part_len, &err)) ||
                  e->k->merge(e->opts, m->jpartial, part, &err) < 0;
        if (part) e->k->partial_free(part);
        free(p);
        if (bad) {
            char msg[640];
            snprintf(msg, sizeof msg, "journal '%s': segment %zu: %s", e->cfg->journal, i,
                     err.msg[0] ? err.msg : "out of memory");
            master_record_error(m, 0, -1, -1, msg, strlen(msg));
            return -1;
        }
    }
    return 0;
}

/* Makes room for n more pending sends; 0 or -1. */
static int master_reserve_sends(master_t *m, size_t n)
{
    return mpm__grow(&m->sends, &m->cap_sends, m->nsends + n, sizeof *m->sends);
}

static void master_isend(master_t *m, const void *p, size_t n, int dst, int tag, char *owned,
                         int release)
{
    pending_t *s = &m->sends[m->nsends++];
    s->buf = owned;
    s->release = release;
    mpi_check(MPI_Isend(p, (int)n, MPI_BYTE, dst, tag, m->e->comm, &s->req), "MPI_Isend");
}

/* Hands the next chunk to rank dst (0: the local pool). 0, or -1 when out of
 * memory. The bytes are in next_buf (after the header room), in a mapping of
 * the input (next_data with next_buf NULL), or nowhere (pread by the reader). */
static int master_send_chunk(master_t *m, int dst)
{
    engine_t *e = m->e;
    mpm_chunk_desc_t *d = &m->next_d;
    char *buf = m->next_buf;
    const char *mapped = buf ? NULL : m->next_data;
    if (dst == 0) {
        job_t *j = job_new(e, d, buf);
        if (!j) return -1;
        j->data = mapped;
        mpm__pool_submit(e->pool, &j->task);
    } else {
        if (d->has_data != MPM_DATA_PREAD && d->len > INT_MAX - CHUNK_HDR) {
            master_record_error(m, d->index, -1, -1, "chunk larger than 2 GiB",
                                strlen("chunk larger than 2 GiB"));
            return 0;
        }
        if (master_reserve_sends(m, 2) < 0 || (!buf && !(buf = malloc(CHUNK_HDR)))) return -1;
        if (mapped) d->has_data = MPM_DATA_SEPARATE;
        memcpy(buf, d, sizeof *d);
        size_t n = CHUNK_HDR + (d->has_data == MPM_DATA_INLINE ? (size_t)d->len : 0);
        double t0 = ob_now(e), b0 = ob_busy(e, t0);
        master_isend(m, buf, n, dst, TAG_CHUNK, buf, -1);
        if (mapped) master_isend(m, mapped, (size_t)d->len, dst, TAG_DATA, NULL, d->input);
        ob_transfer(e, MPM_SP_SEND, t0, b0, (int64_t)d->index, n + (mapped ? d->len : 0));
    }
    m->inflight[dst]++;
    m->dispatched++;
    m->have_next = 0;
    m->next_buf = NULL;
    m->next_data = NULL;
    return 0;
}

/* Rebuilds a chunk to send again: ranges and shared-I/O files need only the
 * descriptor; in-memory inputs are copied; with --io master rank 0 reads the
 * bytes again. Returns 1 when next_* is ready, 0 when the chunk failed again
 * here (recorded). */
static int master_prepare_retry(master_t *m, const mpm_chunk_desc_t *d)
{
    engine_t *e = m->e;
    const mpm_input_t *in = &e->in->v[d->input];
    m->next_d = *d;
    m->next_buf = NULL;
    m->next_data = NULL;
    m->next_kind = NEXT_RUN;
    if (in->kind == MPM_IN_RANGE || (in->kind == MPM_IN_FILE && e->io == MPM_IO_SHARED)) {
        m->next_d.has_data = MPM_DATA_PREAD;
        return 1;
    }
    char *buf = malloc(CHUNK_HDR + (size_t)d->len + 1);
    if (!buf) {
        master_chunk_failed(m, d, -1, "out of memory", 13, 0);
        return 0;
    }
    if (in->kind == MPM_IN_MEMORY) {
        memcpy(buf + CHUNK_HDR, in->data + d->offset, (size_t)d->len);
    } else {
        mpm_err_t err = {.offset = -1, .msg = ""};
        int fd = open(in->name, O_RDONLY | O_CLOEXEC);
        int bad = fd < 0 ? mpm_err_set(&err, -1, "cannot open '%s': %s", in->name, strerror(errno))
                         : read_chunk(fd, in->name, d, buf + CHUNK_HDR, &err);
        if (fd >= 0) close(fd);
        if (bad) {
            free(buf);
            master_chunk_failed(m, d, -1, err.msg, strlen(err.msg), 0);
            return 0;
        }
    }
    m->next_d.has_data = MPM_DATA_INLINE;
    m->next_buf = buf;
    m->next_data = buf + CHUNK_HDR;
    return 1;
}

/* Drops the bytes of next_* (a chunk that is not sent). */
static void master_drop_next(master_t *m)
{
    if (m->next_buf) free(m->next_buf);
    else if (m->next_data) mpm__split_release(m->split, m->next_d.input);
    m->next_buf = NULL;
    m->next_data = NULL;
    m->have_next = 0;
}


/* --resume-failed: whether the kernel says that a journaled chunk's result
 * records a failure of its own (mpm_kernel_t.failed). A result that cannot be
 * read back counts as failed: the chunk is computed again. */
static int journaled_failure(master_t *m, const mpm_jentry_t *je)
{
    engine_t *e = m->e;
    if (!e->k->failed || !je->rows_len) return 0;
    char *rows = malloc(je->rows_len);
    mpm_err_t err = {.offset = -1, .msg = ""};
    int r = 1;
    if (rows && mpm__journal_read(e->journal, je, 0, rows, je->rows_len, &err) == 0)
        r = e->k->failed(e->opts, rows, je->rows_len) != 0;
    free(rows);
    return r;
}

/* Gets the next chunk into next_*: a retry first, else the splitter's next.
 * Returns 1, or 0 when there is none now. */
static int master_next(master_t *m)
{
    engine_t *e = m->e;
    while (m->nretry) {
        mpm_chunk_desc_t d = m->retry[0];
        memmove(m->retry, m->retry + 1, (m->nretry - 1) * sizeof *m->retry);
        m->nretry--;
        if (master_prepare_retry(m, &d)) return 1;
    }
    if (m->split_done) return 0;
    mpm_err_t err = {.offset = -1, .msg = ""};
    double t0 = ob_now(e);
    int r = mpm__split_next_ref(m->split, &m->next_d, &m->next_buf, &m->next_data, &err);
    if (e->obs && r > 0 && m->next_buf && m->next_d.len)
        ob_main_span(e, MPM_SP_READ, t0, (int64_t)m->next_d.index, m->next_d.len);
    else if (e->obs)
        ob_main(e)->split_s += mpm__now() - t0;
    if (r < 0) {
        m->next_kind = NEXT_FAILED;
        snprintf(m->next_err, sizeof m->next_err, "%s", err.msg);
        m->next_err_offset = err.offset;
        return 1;
    }
    if (r == 0) {
        m->split_done = 1;
        if (!e->cfg->allow_empty && mpm__split_empty_stdin(m->split)) {
            const char *msg = "standard input is empty (0 bytes); pass --allow-empty to accept it";
            master_record_error(m, m->dispatched, -1, -1, msg, strlen(msg));
        }
        return 0;
    }
    m->next_kind = NEXT_RUN;
    if (e->journal) {
        const mpm_jentry_t *je = mpm__journal_find(e->journal, m->next_d.input, m->next_d.offset);
        if (je && je->state == MPM_J_DONE && (!e->segs || je->covered)) {
            if (je->len != chunk_extent(&m->next_d)) {
                char msg[600];
                snprintf(msg, sizeof msg,
                         "journal: chunk at byte %llu of '%s' has %llu bytes in the journal and "
                         "%llu now; delete the journal to start over",
                         (unsigned long long)m->next_d.offset, e->in->v[m->next_d.input].name,
                         (unsigned long long)je->len, (unsigned long long)chunk_extent(&m->next_d));
                master_record_error(m, m->next_d.index, -1, -1, msg, strlen(msg));
                master_drop_next(m);
                return 0;
            }
            if (!(e->cfg->resume_failed && journaled_failure(m, je))) {
                m->next_kind = NEXT_JOURNALED;
                m->next_je = *je;
            }
        }
    }
    return 1;
}

/* Fills every window it can. Returns 1 if something was dispatched. */
static int master_dispatch(master_t *m)
{
    engine_t *e = m->e;
    int progress = 0;
    while (!m->stop) {
        if (!m->have_next) {
            if (!master_next(m)) break;
            m->have_next = 1;
        }
        /* Reorder backpressure: the chunk at next_write is in flight; results
         * after it wait in the ring, bounded in count and in bytes. */
        if (m->next_d.index - m->next_write >= m->ring_cap || m->held_bytes > MAX_HELD) break;
        if (m->next_kind == NEXT_JOURNALED) {
            mpm_chunk_desc_t d = m->next_d;
            master_drop_next(m);
            master_reuse(m, &d, &m->next_je);
            progress = 1;
            continue;
        }
        if (m->next_kind == NEXT_FAILED) {
            m->have_next = 0;
            master_chunk_failed(m, &m->next_d, m->next_err_offset, m->next_err,
                                strlen(m->next_err), 1);
            progress = 1;
            continue;
        }
        int dst = -1;
        for (int i = 0; i < e->size; i++) {
            int r = (m->rr + i) % e->size;
            if (m->inflight[r] < m->window[r]) {
                dst = r;
                break;
            }
        }
        if (dst < 0) break;
        m->rr = (dst + 1) % e->size;
        if (master_send_chunk(m, dst) < 0) {
            master_record_error(m, m->next_d.index, -1, -1, "out of memory", 13);
            break;
        }
        progress = 1;
    }
    return progress;
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
    default: return "a signal";
    }
}

static int running_chunks(const master_t *m)
{
    int n = 0;
    for (int r = 0; r < m->e->size; r++) n += m->inflight[r];
    return n;
}

/* A rank was signalled: no new chunks, the ones not started are dropped. */
static void master_interrupt(master_t *m, int sig, int rank)
{
    engine_t *e = m->e;
    m->interrupted = sig;
    m->stop = 1;
    m->deadline = mpm__now() + e->cfg->grace;
    m->nretry = 0;
    mpm__pool_cancel(e->pool);
    static const int one = 1;
    if (master_reserve_sends(m, e->size) == 0)
        for (int r = 1; r < e->size; r++)
            master_isend(m, &one, sizeof one, r, TAG_CANCEL, NULL, -1);
    char by[64] = "";
    if (rank > 0) snprintf(by, sizeof by, " on rank %d", rank);
    MPM_LOG(MPM_LOG_WARN,
            "%s%s: stopping; chunks not started are dropped, running ones get up to %g s to "
            "finish",
            signal_name(sig), by, e->cfg->grace);
}

static int master_poll(master_t *m, double wait_s)
{
    engine_t *e = m->e;
    int progress = 0;
    double t0 = ob_now(e);
    mpm_task_t *t = mpm__pool_take_done(e->pool, wait_s);
    if (wait_s > 0 && !t) ob_main_span(e, MPM_SP_IDLE, t0, -1, 0);
    while (t) {
        mpm_task_t *next = t->next;
        job_t *j = (job_t *)t;
        job_seal(j);
        if (j->data) mpm__split_release(m->split, j->d.input);
        char *buf = j->out.data;
        j->out.data = NULL;
        j->out.len = j->out.cap = 0;
        uint64_t index = j->d.index;
        job_free(j);
        t0 = ob_now(e);
        master_result(m, 0, buf);
        ob_main_span(e, MPM_SP_WRITE, t0, (int64_t)index, 0);
        progress = 1;
        t = next;
    }
    for (;;) {
        int flag = 0;
        MPI_Status st;
        t0 = ob_now(e);
        mpi_check(MPI_Iprobe(MPI_ANY_SOURCE, TAG_RESULT, e->comm, &flag, &st), "MPI_Iprobe");
        ob_poll(e, t0);
        if (!flag) break;
        int count = 0;
        MPI_Get_count(&st, MPI_BYTE, &count);
        char *buf = malloc((size_t)count);
        if (!buf) {
            MPM_LOG(MPM_LOG_ERROR, "out of memory receiving a result of %d bytes", count);
            MPI_Abort(e->comm, MPM_EXIT_FAIL);
        }
        t0 = ob_now(e);
        double b0 = ob_busy(e, t0);
        mpi_check(MPI_Recv(buf, count, MPI_BYTE, st.MPI_SOURCE, TAG_RESULT, e->comm,
                           MPI_STATUS_IGNORE),
                  "MPI_Recv");
        int64_t index = -1;
        if ((size_t)count >= sizeof(result_hdr_t)) {
            result_hdr_t h;
            memcpy(&h, buf, sizeof h);
            index = (int64_t)h.d.index;
        }
        ob_transfer(e, MPM_SP_RECV, t0, b0, index, (uint64_t)count);
        t0 = ob_now(e);
        master_result(m, st.MPI_SOURCE, buf);
        ob_main_span(e, MPM_SP_WRITE, t0, index, 0);
        progress = 1;
    }
    for (;;) {
        int flag = 0, sig = 0;
        MPI_Status st;
        t0 = ob_now(e);
        mpi_check(MPI_Iprobe(MPI_ANY_SOURCE, TAG_INTERRUPT, e->comm, &flag, &st), "MPI_Iprobe");
        ob_poll(e, t0);
        if (!flag) break;
        mpi_check(MPI_Recv(&sig, 1, MPI_INT, st.MPI_SOURCE, TAG_INTERRUPT, e->comm,
                           MPI_STATUS_IGNORE),
                  "MPI_Recv");
        if (!m->interrupted) master_interrupt(m, sig, st.MPI_SOURCE);
        progress = 1;
    }
    if (!m->interrupted && mpm__sig_pending()) {
        master_interrupt(m, mpm__sig_pending(), 0);
        progress = 1;
    }
    /* Free the buffers of chunk sends that completed. */
    t0 = ob_now(e);
    double b0 = m->nsends ? ob_busy(e, t0) : 0;
    size_t had = m->nsends;
    for (size_t i = 0; i < m->nsends;) {
        int done = 0;
        mpi_check(MPI_Test(&m->sends[i].req, &done, MPI_STATUS_IGNORE), "MPI_Test");
        if (done) {
            free(m->sends[i].buf);
            if (m->sends[i].release >= 0) mpm__split_release(m->split, m->sends[i].release);
            m->sends[i] = m->sends[--m->nsends];
        } else {
            i++;
        }
    }
    if (had) ob_transfer(e, MPM_SP_SEND, t0, b0, -1, 0);
    if (e->journal) {
        mpm_err_t err = {.offset = -1, .msg = ""};
        t0 = ob_now(e);
        if (mpm__journal_sync(e->journal, 0, &err) < 0)
            master_record_error(m, UINT64_MAX, -1, -1, err.msg, strlen(err.msg));
        if (e->obs) ob_main(e)->write_s += mpm__now() - t0;
    }
    return progress;
}

static int all_idle(const master_t *m)
{
    for (int r = 0; r < m->e->size; r++)
        if (m->inflight[r]) return 0;
    return 1;
}

/* Merges the pool threads' partials into partials[0]. */
static int merge_local(engine_t *e, mpm_err_t *err)
{
    for (int t = 1; t < e->pl.nthreads; t++) {
        if (e->k->merge(e->opts, e->partials[0], e->partials[t], err) < 0) return -1;
        e->k->partial_free(e->partials[t]);
        e->partials[t] = NULL;
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The end of a run with failed chunks: how many, which (sorted: the same for
 * any -np/--threads; each reason was printed when its chunk failed), and
 * what to do next. */
static void master_report_failures(master_t *m, const char *kept)
{
    engine_t *e = m->e;
    qsort(m->failures, m->nfail, sizeof *m->failures, cmp_u64);
    uint64_t total = m->chunks_done + m->nfail;
    char list[400] = "";
    size_t used = 0;
    for (size_t i = 0; i < m->nfail && i < MAX_LISTED && used < sizeof list - 32; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%llu", i ? ", " : "",
                                 (unsigned long long)m->failures[i]);
    if (m->nfail > MAX_LISTED) snprintf(list + used, sizeof list - used, ", ...");
    MPM_LOG(MPM_LOG_ERROR, "%zu of %llu chunk%s failed (chunk%s %s)%s", m->nfail,
            (unsigned long long)total, total == 1 ? "" : "s", m->nfail == 1 ? "" : "s", list,
            e->journal || e->cfg->journal ? "; all are recorded in the journal" : "");
    if (kept)
        fprintf(stderr, "mpimap: the results of the %llu chunk%s that succeeded are in '%s'; '%s' "
                        "was not touched\n",
                (unsigned long long)m->chunks_done, m->chunks_done == 1 ? "" : "s", kept,
                e->cfg->output);
    if (e->cfg->journal)
        fprintf(stderr, "mpimap: fix the inputs and run the same command with --resume: only the "
                        "failed chunks are computed again\n");
}

/* ---- resident data: solve() and its collective helpers ------------------- */

/* The context handed to mpm_kernel_t.solve (see kernel.h). Every rank holds
 * one; collective helpers run the same MPI calls in the same order on all. */
struct mpm_solve_s {
    engine_t *e;
    int signalled; /* a rank had a stop signal pending at an mpm_solve_agree */
};

int mpm_solve_rank(const mpm_solve_t *s) { return s->e->rank; }
int mpm_solve_size(const mpm_solve_t *s) { return s->e->size; }
int mpm_solve_threads(const mpm_solve_t *s) { return s->e->pl.nthreads; }
const char *mpm_solve_output(const mpm_solve_t *s)
{
    const char *o = s->e->cfg->output;
    return o && strcmp(o, "-") ? o : NULL;
}
int mpm_solve_quiet(const mpm_solve_t *s) { return s->e->cfg->quiet; }

/* One pool task per thread; each pulls task numbers from a shared counter. */
typedef struct par_task_s {
    mpm_task_t task; /* first member */
    size_t *next, n;
    void (*fn)(void *arg, size_t task, int thread);
    void *arg;
} par_task_t;

static void par_work(mpm_task_t *t, int tid)
{
    par_task_t *p = (par_task_t *)t;
    for (;;) {
        size_t i = __atomic_fetch_add(p->next, 1, __ATOMIC_RELAXED);
        if (i >= p->n) break;
        p->fn(p->arg, i, tid);
    }
}

void mpm_solve_parallel(mpm_solve_t *s, size_t ntasks, void (*fn)(void *arg, size_t task, int thread),
                        void *arg)
{
    engine_t *e = s->e;
    if (ntasks == 0) return;
    int nt = (size_t)e->pl.nthreads < ntasks ? e->pl.nthreads : (int)ntasks;
    par_task_t *t = calloc((size_t)nt, sizeof *t);
    size_t next = 0;
    if (!t) { /* run here, in order: slower, same result */
        for (size_t i = 0; i < ntasks; i++) fn(arg, i, 0);
        return;
    }
    for (int i = 0; i < nt; i++) {
        t[i] = (par_task_t){.task = {.work = par_work}, .next = &next, .n = ntasks, .fn = fn, .arg = arg};
        mpm__pool_submit(e->pool, &t[i].task);
    }
    for (int back = 0; back < nt;)
        for (mpm_task_t *d = mpm__pool_take_done(e->pool, 1.0); d; d = d->next) back++;
    free(t);
}

#define SOLVE_PIECE ((size_t)1 << 27) /* elements or bytes per MPI call */

void mpm_solve_allreduce(mpm_solve_t *s, void *buf, size_t n, mpm_reduce_t op)
{
    MPI_Datatype type = op >= MPM_RED_MIN_F64 ? MPI_DOUBLE : MPI_INT64_T;
    MPI_Op mop = op == MPM_RED_SUM_I64                              ? MPI_SUM
                 : op == MPM_RED_MIN_I64 || op == MPM_RED_MIN_F64 ? MPI_MIN
                                                                   : MPI_MAX;
    char *p = buf;
    for (size_t at = 0; at < n;) {
        size_t m = n - at < SOLVE_PIECE ? n - at : SOLVE_PIECE;
        mpi_check(MPI_Allreduce(MPI_IN_PLACE, p + at * 8, (int)m, type, mop, s->e->comm),
                  "MPI_Allreduce");
        at += m;
    }
}

void mpm_solve_bcast(mpm_solve_t *s, void *buf, size_t len, int root)
{
    char *p = buf;
    for (size_t at = 0; at < len;) {
        size_t m = len - at < SOLVE_PIECE ? len - at : SOLVE_PIECE;
        mpi_check(MPI_Bcast(p + at, (int)m, MPI_BYTE, root, s->e->comm), "MPI_Bcast");
        at += m;
    }
}

static void solve_oom(engine_t *e, const char *what)
{
    MPM_LOG(MPM_LOG_ERROR, "out of memory (%s)", what);
    MPI_Abort(e->comm, MPM_EXIT_FAIL);
}

void mpm_solve_allgather(mpm_solve_t *s, const void *mine, size_t len, mpm_buf_t *all, size_t *off)
{
    engine_t *e = s->e;
    uint64_t l = len, *lens = malloc((size_t)e->size * sizeof *lens);
    int *cnt = malloc((size_t)e->size * sizeof *cnt), *dsp = malloc((size_t)e->size * sizeof *dsp);
    if (!lens || !cnt || !dsp) solve_oom(e, "allgather");
    mpi_check(MPI_Allgather(&l, 1, MPI_UINT64_T, lens, 1, MPI_UINT64_T, e->comm), "MPI_Allgather");
    uint64_t total = 0;
    for (int r = 0; r < e->size; r++) {
        off[r] = all->len + (size_t)total;
        dsp[r] = (int)total;
        cnt[r] = (int)lens[r];
        total += lens[r];
    }
    off[e->size] = all->len + (size_t)total;
    if (total > INT_MAX) {
        MPM_LOG(MPM_LOG_ERROR, "a collective exchange larger than 2 GiB");
        MPI_Abort(e->comm, MPM_EXIT_FAIL);
    }
    if (mpm_buf_reserve(all, (size_t)total + 1) < 0) solve_oom(e, "allgather");
    mpi_check(MPI_Allgatherv(mine, (int)len, MPI_BYTE, all->data + all->len, cnt, dsp, MPI_BYTE,
                             e->comm),
              "MPI_Allgatherv");
    all->len += (size_t)total;
    free(lens);
    free(cnt);
    free(dsp);
}

int mpm_solve_agree(mpm_solve_t *s, int ok)
{
    int v[2] = {ok && !mpm__sig_pending(), mpm__sig_pending()}, r[2];
    mpi_check(MPI_Allreduce(&v[0], &r[0], 1, MPI_INT, MPI_MIN, s->e->comm), "MPI_Allreduce");
    mpi_check(MPI_Allreduce(&v[1], &r[1], 1, MPI_INT, MPI_MAX, s->e->comm), "MPI_Allreduce");
    if (r[1]) s->signalled = r[1];
    return r[0];
}

typedef struct solve_key_s {
    uint64_t key;
    int rank;
    size_t i;
} solve_key_t;

static int cmp_solve_key(const void *a, const void *b)
{
    const solve_key_t *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key ? 1 : x->rank - y->rank;
}

int mpm_solve_write_ordered(mpm_solve_t *s, const char *path, size_t n, const uint64_t *keys,
                            const mpm_buf_t *pieces, mpm_err_t *err)
{
    engine_t *e = s->e;
    for (size_t i = 0; i < n; i++)
        if (pieces[i].len > INT_MAX) {
            MPM_LOG(MPM_LOG_ERROR, "an ordered piece larger than 2 GiB");
            MPI_Abort(e->comm, MPM_EXIT_FAIL);
        }
    mpm_buf_t all = {0};
    size_t *off = malloc(((size_t)e->size + 1) * sizeof *off);
    if (!off) solve_oom(e, "ordered write");
    mpm_solve_allgather(s, keys, n * sizeof *keys, &all, off);
    int ok = 1;
    if (e->rank == 0) {
        size_t total = (off[e->size] - off[0]) / 8, at = 0;
        solve_key_t *order = malloc((total ? total : 1) * sizeof *order);
        if (!order) solve_oom(e, "ordered write");
        for (int r = 0; r < e->size; r++)
            for (size_t i = 0; i < (off[r + 1] - off[r]) / 8; i++) {
                uint64_t k;
                memcpy(&k, all.data + off[r] + i * 8, 8);
                order[at++] = (solve_key_t){k, r, i};
            }
        qsort(order, total, sizeof *order, cmp_solve_key);
        mpm_out_t o;
        memset(&o, 0, sizeof o);
        if (mpm__out_open(&o, path, MPM_FMT_TEXT, NULL) < 0) {
            ok = 0;
            mpm_err_set(err, -1, "%s", o.err);
        }
        for (size_t j = 0; j < total; j++) {
            const solve_key_t *q = &order[j];
            if (q->rank == 0) {
                if (ok && mpm__out_rows(&o, pieces[q->i].data, pieces[q->i].len) < 0) {
                    ok = 0;
                    mpm_err_set(err, -1, "%s", o.err);
                }
                continue;
            }
            int count = 0; /* a rank's pieces arrive in its key order */
            char *buf = recv_whole(e, q->rank, TAG_SOLVE, &count);
            if (ok && mpm__out_rows(&o, buf, (size_t)count) < 0) {
                ok = 0;
                mpm_err_set(err, -1, "%s", o.err);
            }
            free(buf);
        }
        free(order);
        if (ok && mpm__out_commit(&o) < 0) {
            ok = 0;
            mpm_err_set(err, -1, "%s", o.err);
        }
        if (!ok) mpm__out_abort(&o);
    } else {
        for (size_t i = 0; i < n; i++)
            mpi_check(MPI_Send(pieces[i].data, (int)pieces[i].len, MPI_BYTE, 0, TAG_SOLVE, e->comm),
                      "MPI_Send");
    }
    mpi_check(MPI_Bcast(&ok, 1, MPI_INT, 0, e->comm), "MPI_Bcast");
    if (!ok && e->rank != 0) mpm_err_set(err, -1, "writing '%s' failed on rank 0", path);
    mpm_buf_free(&all);
    free(off);
    return ok ? 0 : -1;
}

void mpm_solve_metric(mpm_solve_t *s, const char *name, double value, int kind)
{
    mpm_buf_t *b = &s->e->kmetrics;
    if (b->len) mpm_buf_append(b, ", ", 2);
    mpm__json_string(b, name, strlen(name));
    if (kind == 2)
        mpm_buf_printf(b, ": %s", value != 0 ? "true" : "false");
    else if (kind == 1)
        mpm_buf_printf(b, ": %.0f", value);
    else if (isfinite(value))
        mpm_buf_printf(b, ": %.17g", value);
    else
        mpm_buf_printf(b, ": null");
}

/* Every rank: merges the threads' partials and runs the kernel's solve().
 * 0, or -1 with err set (*sig: the stop signal that ended it, else 0). */
static int run_solve(engine_t *e, mpm_buf_t *out, int *sig, mpm_err_t *err)
{
    mpm_solve_t s = {.e = e};
    *sig = 0;
    int ok = merge_local(e, err) == 0;
    if (!mpm_solve_agree(&s, ok)) {
        if (s.signalled) *sig = s.signalled;
        if (ok && !*sig) mpm_err_set(err, -1, "another rank failed to merge its data");
        return -1;
    }
    int rc = e->k->solve(e->opts, e->partials[0], &s, out, err);
    if (rc < 0 && s.signalled) *sig = s.signalled;
    return rc < 0 ? -1 : 0;
}

static int run_master(engine_t *e, const int *windows, double t_start)
{
    master_t m;
    memset(&m, 0, sizeof m);
    m.e = e;
    m.err_input = -1;
    m.inflight = calloc((size_t)e->size, sizeof *m.inflight);
    m.window = calloc((size_t)e->size, sizeof *m.window);
    uint64_t slots = 0;
    for (int r = 0; r < e->size; r++) slots += (uint64_t)windows[r];
    m.ring_cap = slots * 8 > 4096 ? slots * 8 : 4096;
    m.ring = calloc((size_t)m.ring_cap, sizeof *m.ring);
    if (e->journal && e->k->partial_new) m.jpartial = e->k->partial_new(e->opts);
    if (!m.inflight || !m.window || !m.ring || (e->journal && e->k->partial_new && !m.jpartial)) {
        MPM_LOG(MPM_LOG_ERROR, "out of memory");
        m.failed = 1;
        m.stop = 1;
    } else {
        memcpy(m.window, windows, (size_t)e->size * sizeof *windows);
        if (e->cfg->dedicated_master && e->size > 1) m.window[0] = 0; /* rank 0 computes nothing */
    }
    mpm_err_t err = {.offset = -1, .msg = ""};
    if (!m.failed) {
        const char *opath = e->cfg->output && strcmp(e->cfg->output, "-") ? e->cfg->output : NULL;
        if (e->k->sink_open && !(m.sink = e->k->sink_open(e->opts, e->in, opath, &err))) {
            MPM_LOG(MPM_LOG_ERROR, "%s", err.msg[0] ? err.msg : "cannot open the output");
            m.failed = 1;
            m.stop = 1;
        } else if (!e->k->sink_open &&
                   mpm__out_open(&m.out, e->cfg->output, e->k->solve ? MPM_FMT_TEXT : (mpm_format_t)e->cfg->format,
                                 e->k->columns(e->opts)) < 0) {
            MPM_LOG(MPM_LOG_ERROR, "%s", m.out.err);
            m.failed = 1;
            m.stop = 1;
            m.err_msg[0] = 0;
        } else if (mpm__split_open(&m.split, e->in->v, e->in->n, e->chunk_size, e->records,
                                   e->io == MPM_IO_MASTER, CHUNK_HDR, &err) < 0) {
            master_record_error(&m, 0, -1, -1, err.msg, strlen(err.msg));
        } else {
            mpm__split_set_source(m.split, e->k, e->opts);
            if (e->journal && e->segs) master_load_segments(&m);
        }
    }

    {
        uint64_t total = 0;
        int integers = 0, known = 1;
        for (int i = 0; i < e->in->n; i++) {
            const mpm_input_t *x = &e->in->v[i];
            struct stat st;
            if (x->kind == MPM_IN_RANGE) {
                total += x->hi - x->lo;
                integers = 1;
            } else if (x->kind == MPM_IN_MEMORY) {
                total += x->len;
            } else if (x->kind == MPM_IN_FILE && !e->k->source_open && stat(x->name, &st) == 0 &&
                       S_ISREG(st.st_mode)) {
                total += (uint64_t)st.st_size;
            } else {
                known = 0; /* standard input, pipes */
            }
        }
        int out_stdout = !e->cfg->output || !strcmp(e->cfg->output, "-");
        m.rows_to_tty = out_stdout && isatty(1);
        mpm__progress_init(&m.progress, e->cfg->progress, e->cfg->quiet, isatty(2),
                           e->cfg->progress_interval, known ? total : 0, integers);
    }
    int idle = 0, abandoned = 0;
    while (!(m.split_done || m.stop) || m.nretry || !all_idle(&m)) {
        int progress = master_dispatch(&m);
        double wait = 0;
        if (idle > SPIN_POLLS) {
            wait = 50e-6 * (idle - SPIN_POLLS);
            if (wait > MAX_SLEEP) wait = MAX_SLEEP;
        }
        progress |= master_poll(&m, wait);
        mpm__progress_tick(&m.progress, m.chunks_done + m.nfail, m.done_extent, 0);
        idle = progress ? 0 : idle + 1;
        if (m.interrupted && !all_idle(&m) && mpm__now() > m.deadline) {
            abandoned = 1;
            break;
        }
        /* Hand the core to a pool thread sharing it (mpirun binds a rank to
         * one core): cheap when nobody else wants it. */
        if (!progress && idle <= SPIN_POLLS) sched_yield();
    }
    if (m.have_next) master_drop_next(&m);
    mpm__progress_erase();
    if (abandoned) {
        /* Chunks still running after the grace period: nothing more can be
         * saved; the journal holds everything that finished. */
        MPM_LOG(MPM_LOG_ERROR,
                "%d chunk%s still running after the %g s grace period: abandoned (they will be "
                "computed again on --resume)",
                running_chunks(&m), running_chunks(&m) == 1 ? "" : "s", e->cfg->grace);
        master_out_close(&m, 0);
        if (e->journal) {
            mpm__journal_close(e->journal, &err);
            e->journal = NULL;
        }
        MPI_Abort(e->comm, MPM_EXIT_INTERRUPTED);
    }
    double t0 = ob_now(e), b0 = ob_busy(e, t0);
    for (size_t i = 0; i < m.nsends; i++) {
        mpi_check(MPI_Wait(&m.sends[i].req, MPI_STATUS_IGNORE), "MPI_Wait");
        free(m.sends[i].buf);
        if (m.sends[i].release >= 0) mpm__split_release(m.split, m.sends[i].release);
    }
    if (m.nsends) ob_transfer(e, MPM_SP_SEND, t0, b0, -1, 0);
    m.nsends = 0;

    /* Stop the workers; gather their partials in rank order. */
    int stop_status = m.failed ? STOP_FAILED : m.interrupted ? STOP_INTERRUPTED : STOP_OK;
    for (int r = 1; r < e->size; r++)
        mpi_check(MPI_Send(&stop_status, 1, MPI_INT, r, TAG_STOP, e->comm), "MPI_Send");
    if (e->segs) master_flush_segments(&m);
    if (e->k->solve && stop_status == STOP_OK) {
        t0 = ob_now(e);
        mpm_buf_t fin = {0};
        int sig = 0;
        if (run_solve(e, &fin, &sig, &err) < 0) {
            if (sig)
                m.interrupted = sig;
            else
                master_record_error(&m, UINT64_MAX, -1, -1, err.msg, strlen(err.msg));
        } else {
            master_out(&m, UINT64_MAX, fin.data, fin.len);
        }
        mpm_buf_free(&fin);
        ob_main_span(e, MPM_SP_WRITE, t0, -1, 0);
    } else if (e->partials && stop_status == STOP_OK) {
        if (merge_local(e, &err) < 0) master_record_error(&m, UINT64_MAX, -1, -1, err.msg, strlen(err.msg));
        if (m.jpartial && !m.failed &&
            e->k->merge(e->opts, e->partials[0], m.jpartial, &err) < 0)
            master_record_error(&m, UINT64_MAX, -1, -1, err.msg, strlen(err.msg));
        for (int r = 1; r < e->size; r++) {
            int count = 0;
            t0 = ob_now(e);
            b0 = ob_busy(e, t0);
            char *buf = recv_whole(e, r, TAG_PARTIAL, &count);
            ob_transfer(e, MPM_SP_RECV, t0, b0, -1, (uint64_t)count);
            if (m.failed) {
                free(buf);
                continue;
            }
            void *p = e->k->deserialize(e->opts, buf, (size_t)count, &err);
            free(buf);
            if (!p || e->k->merge(e->opts, e->partials[0], p, &err) < 0) {
                master_record_error(&m, UINT64_MAX, -1, -1, err.msg, strlen(err.msg));
            }
            if (p) e->k->partial_free(p);
        }
        if (!m.failed && e->k->finish) {
            t0 = ob_now(e);
            mpm_buf_t fin = {0};
            if (e->k->finish(e->opts, e->partials[0], (mpm_format_t)e->cfg->format, &fin, &err) < 0)
                master_record_error(&m, UINT64_MAX, -1, -1, err.msg, strlen(err.msg));
            else
                master_out(&m, UINT64_MAX, fin.data, fin.len);
            mpm_buf_free(&fin);
            ob_main_span(e, MPM_SP_WRITE, t0, -1, 0);
        }
    }
    if (e->journal) {
        if (mpm__journal_close(e->journal, &err) < 0)
            master_record_error(&m, UINT64_MAX, -1, -1, err.msg, strlen(err.msg));
        e->journal = NULL;
    }
    /* A signal after the loop still counts: its handler removed the
     * temporary output. */
    if (!m.interrupted && !m.failed && mpm__sig_pending()) m.interrupted = mpm__sig_pending();

    int rc = MPM_EXIT_OK;
    char *kept = NULL;
    t0 = ob_now(e);
    if (m.failed || !m.split) {
        if (m.err_msg[0]) master_report_error(&m);
        master_out_close(&m, 0);
        rc = MPM_EXIT_FAIL;
    } else if (m.interrupted) {
        master_out_close(&m, 0);
        rc = MPM_EXIT_INTERRUPTED;
        uint64_t fresh = m.chunks_done - m.reused;
        if (e->k->solve)
            MPM_LOG(MPM_LOG_WARN,
                    "interrupted by %s: no output written; %s iterates over data held in memory, "
                    "a new run starts again from the input",
                    signal_name(m.interrupted), e->k->name);
        else if (e->cfg->journal)
            MPM_LOG(MPM_LOG_WARN,
                    "interrupted by %s: %llu chunk%s finished in this run (%llu taken from the "
                    "journal before), %llu dropped; run the same command with --resume to "
                    "finish (journal '%s')",
                    signal_name(m.interrupted), (unsigned long long)fresh, fresh == 1 ? "" : "s",
                    (unsigned long long)m.reused, (unsigned long long)m.cancelled,
                    e->cfg->journal);
        else
            MPM_LOG(MPM_LOG_WARN,
                    "interrupted by %s: no output written; without --journal the %llu finished "
                    "chunk%s must be computed again",
                    signal_name(m.interrupted), (unsigned long long)fresh, fresh == 1 ? "" : "s");
    } else if (m.nfail) {
        if (!m.chunks_done || m.sink) {
            /* Nothing succeeded: nothing to keep. A sink keeps what it
             * completed (the other files of a directory), never a part. */
            master_out_close(&m, 0);
        } else if (e->cfg->output && strcmp(e->cfg->output, "-")) {
            size_t n = strlen(e->cfg->output) + sizeof ".incomplete";
            kept = malloc(n);
            if (kept) snprintf(kept, n, "%s.incomplete", e->cfg->output);
        }
        if (m.chunks_done && !m.sink && mpm__out_commit_as(&m.out, kept) < 0) {
            MPM_LOG(MPM_LOG_ERROR, "%s", m.out.err);
            free(kept);
            kept = NULL;
        }
        master_report_failures(&m, kept);
        rc = MPM_EXIT_FAIL;
    } else if (master_out_close(&m, 1) < 0) {
        rc = mpm__sig_pending() ? MPM_EXIT_INTERRUPTED : MPM_EXIT_FAIL;
    }
    free(kept);
    ob_main_span(e, MPM_SP_WRITE, t0, -1, 0);
    e->m_done = m.chunks_done;
    e->m_reused = m.reused;
    e->m_failed = m.nfail;
    e->m_bytes = m.split ? mpm__split_bytes(m.split) : 0;
    double el = mpm__now() - t_start;
    if (rc == MPM_EXIT_OK) {
        uint64_t bytes = m.split ? mpm__split_bytes(m.split) : 0;
        char reused[64] = "";
        if (m.reused) snprintf(reused, sizeof reused, " (%llu from the journal)", (unsigned long long)m.reused);
        MPM_LOG(MPM_LOG_INFO,
                "%s: %llu chunks%s, %llu %s in %.3f s (%.1f MB/s), %d rank%s, chunk size %llu, %s I/O",
                e->k->name, (unsigned long long)m.chunks_done, reused, (unsigned long long)bytes,
                e->in->n && e->in->v[0].kind == MPM_IN_RANGE ? "integers" : "bytes", el,
                el > 0 ? (double)bytes / el / 1e6 : 0.0, e->size, e->size == 1 ? "" : "s",
                (unsigned long long)e->chunk_size, e->io == MPM_IO_SHARED ? "shared" : "master");
    }
    for (uint64_t i = 0; m.ring && i < m.ring_cap; i++) free(m.ring[i].buf);
    free(m.failures);
    free(m.retry);
    free(m.ring);
    free(m.sends);
    free(m.inflight);
    free(m.window);
    if (m.jpartial) e->k->partial_free(m.jpartial);
    for (size_t i = 0; i < m.nosegs; i++) free(m.osegs[i].ids);
    free(m.osegs);
    mpm__split_close(m.split);
    return rc;
}

/* ---- worker -------------------------------------------------------------- */

/* A chunk whose bytes are arriving: the main thread goes on sending results
 * and feeding the pool while they do (MPI_Imrecv / MPI_Irecv). */
typedef struct inbound_s {
    MPI_Request req;
    char *buf;      /* CHUNK_HDR bytes (the descriptor) then the chunk's bytes */
    uint64_t bytes; /* message bytes, for the metrics */
    double t0, b0;  /* metrics: when the receive was posted, the busy clock then */
} inbound_t;

typedef struct worker_s {
    engine_t *e;
    job_t **sends;
    size_t nsends, cap_sends;
    inbound_t *in;
    size_t nin, cap_in;
    int cancelled; /* TAG_CANCEL came: chunks arriving now go back unstarted */
} worker_t;

/* Sends a finished (or cancelled) job's result to the master. */
static void worker_send(worker_t *w, job_t *j)
{
    engine_t *e = w->e;
    job_seal(j);
    free(j->buf);
    j->buf = NULL;
    if (mpm__grow(&w->sends, &w->cap_sends, w->nsends + 1, sizeof *w->sends) < 0)
        MPI_Abort(e->comm, MPM_EXIT_FAIL);
    w->sends[w->nsends++] = j;
    if (j->out.len > INT_MAX) {
        j->status = ST_ENGINE;
        j->part_len = 0;
        j->out.len = RESULT_HDR;
        mpm_buf_printf(&j->out, "the rows of chunk %llu exceed 2 GiB",
                       (unsigned long long)j->d.index);
        job_seal(j);
    }
    double t0 = ob_now(e), b0 = ob_busy(e, t0);
    mpi_check(MPI_Isend(j->out.data, (int)j->out.len, MPI_BYTE, 0, TAG_RESULT, e->comm, &j->req),
              "MPI_Isend");
    ob_transfer(e, MPM_SP_SEND, t0, b0, (int64_t)j->d.index, j->out.len);
}

/* A chunk's bytes are all here: hand it to the pool (or straight back,
 * cancelled, after TAG_CANCEL). Takes ownership of buf. */
static void worker_chunk(worker_t *w, char *buf, double t0, double b0, uint64_t bytes)
{
    engine_t *e = w->e;
    mpm_chunk_desc_t d;
    memcpy(&d, buf, sizeof d);
    if (d.has_data == MPM_DATA_SEPARATE) d.has_data = MPM_DATA_INLINE;
    ob_transfer(e, MPM_SP_RECV, t0, b0, (int64_t)d.index, bytes);
    job_t *j = job_new(e, &d, buf);
    if (!j) {
        MPM_LOG(MPM_LOG_ERROR, "out of memory");
        MPI_Abort(e->comm, MPM_EXIT_FAIL);
    }
    if (w->cancelled) {
        j->task.cancelled = 1;
        worker_send(w, j);
    } else {
        mpm__pool_submit(e->pool, &j->task);
    }
}

/* Receives a chunk message matched by MPI_Improbe: small ones at once,
 * large ones (and the bytes that follow a descriptor, --io master from a
 * mapping) without blocking. */
static void worker_receive(worker_t *w, MPI_Message *msg, int count)
{
    engine_t *e = w->e;
    char *buf = malloc(count > CHUNK_HDR ? (size_t)count : CHUNK_HDR);
    if (!buf || mpm__grow(&w->in, &w->cap_in, w->nin + 1, sizeof *w->in) < 0) {
        MPM_LOG(MPM_LOG_ERROR, "out of memory receiving a chunk of %d bytes", count);
        MPI_Abort(e->comm, MPM_EXIT_FAIL);
    }
    double t0 = ob_now(e), b0 = ob_busy(e, t0);
    inbound_t *in = &w->in[w->nin];
    *in = (inbound_t){.buf = buf, .bytes = (uint64_t)count, .t0 = t0, .b0 = b0};
    if (count > CHUNK_HDR) {
        mpi_check(MPI_Imrecv(buf, count, MPI_BYTE, msg, &in->req), "MPI_Imrecv");
        w->nin++;
        return;
    }
    mpi_check(MPI_Mrecv(buf, count, MPI_BYTE, msg, MPI_STATUS_IGNORE), "MPI_Mrecv");
    mpm_chunk_desc_t d;
    memcpy(&d, buf, sizeof d);
    if (d.has_data != MPM_DATA_SEPARATE) {
        worker_chunk(w, buf, t0, b0, (uint64_t)count);
        return;
    }
    /* The bytes follow as the next TAG_DATA message from rank 0: posting
     * the receive now keeps them matched to this descriptor. */
    if (!(in->buf = realloc(buf, CHUNK_HDR + (size_t)d.len + 1))) {
        MPM_LOG(MPM_LOG_ERROR, "out of memory receiving a chunk of %llu bytes",
                (unsigned long long)d.len);
        MPI_Abort(e->comm, MPM_EXIT_FAIL);
    }
    in->bytes += d.len;
    mpi_check(MPI_Irecv(in->buf + CHUNK_HDR, (int)d.len, MPI_BYTE, 0, TAG_DATA, e->comm, &in->req),
              "MPI_Irecv");
    w->nin++;
}

static int run_worker(engine_t *e)
{
    worker_t w = {.e = e};
    int stopping = 0, stop_status = 0, told = 0;
    int idle = 0;
    for (;;) {
        int progress = 0;
        if (!told && !stopping && mpm__sig_pending()) {
            /* Tell the master, which decides for the whole run. */
            int sig = mpm__sig_pending();
            mpi_check(MPI_Send(&sig, 1, MPI_INT, 0, TAG_INTERRUPT, e->comm), "MPI_Send");
            told = 1;
        }
        while (!stopping) {
            int flag = 0;
            MPI_Status st;
            MPI_Message msg;
            double t0 = ob_now(e);
            mpi_check(MPI_Improbe(0, MPI_ANY_TAG, e->comm, &flag, &msg, &st), "MPI_Improbe");
            ob_poll(e, t0);
            if (!flag) break;
            progress = 1;
            if (st.MPI_TAG == TAG_STOP) {
                mpi_check(MPI_Mrecv(&stop_status, 1, MPI_INT, &msg, MPI_STATUS_IGNORE),
                          "MPI_Mrecv");
                stopping = 1;
                break;
            }
            if (st.MPI_TAG == TAG_CANCEL) {
                int dummy;
                mpi_check(MPI_Mrecv(&dummy, 1, MPI_INT, &msg, MPI_STATUS_IGNORE), "MPI_Mrecv");
                w.cancelled = 1;
                mpm__pool_cancel(e->pool);
                continue;
            }
            int count = 0;
            MPI_Get_count(&st, MPI_BYTE, &count);
            worker_receive(&w, &msg, count);
        }
        for (size_t i = 0; i < w.nin;) {
            int done = 0;
            double t0 = ob_now(e);
            mpi_check(MPI_Test(&w.in[i].req, &done, MPI_STATUS_IGNORE), "MPI_Test");
            ob_poll(e, t0);
            if (done) {
                inbound_t in = w.in[i];
                w.in[i] = w.in[--w.nin];
                worker_chunk(&w, in.buf, in.t0, in.b0, in.bytes);
                progress = 1;
            } else {
                i++;
            }
        }
        double wait = 0;
        if (idle > SPIN_POLLS) {
            wait = 50e-6 * (idle - SPIN_POLLS);
            if (wait > MAX_SLEEP) wait = MAX_SLEEP;
            /* Bytes arriving move on only inside MPI calls: poll sooner. */
            if (w.nin && wait > MIN_SLEEP) wait = MIN_SLEEP;
        }
        double t0 = ob_now(e);
        mpm_task_t *t = mpm__pool_take_done(e->pool, wait);
        if (wait > 0 && !t) ob_main_span(e, MPM_SP_IDLE, t0, -1, 0);
        while (t) {
            mpm_task_t *next = t->next;
            worker_send(&w, (job_t *)t);
            progress = 1;
            t = next;
        }
        t0 = ob_now(e);
        double b0 = w.nsends ? ob_busy(e, t0) : 0;
        size_t had = w.nsends;
        for (size_t i = 0; i < w.nsends;) {
            int done = 0;
            mpi_check(MPI_Test(&w.sends[i]->req, &done, MPI_STATUS_IGNORE), "MPI_Test");
            if (done) {
                job_free(w.sends[i]);
                w.sends[i] = w.sends[--w.nsends];
                progress = 1;
            } else {
                i++;
            }
        }
        if (had) ob_transfer(e, MPM_SP_SEND, t0, b0, -1, 0);
        if (stopping && w.nsends == 0 && w.nin == 0 && mpm__pool_pending(e->pool) == 0) break;
        idle = progress ? 0 : idle + 1;
        if (!progress && idle <= SPIN_POLLS) sched_yield();
    }
    free(w.sends);
    free(w.in);
    if (e->segs) {
        /* Flush the open segments to rank 0 (the pool is idle). */
        mpm_buf_t b = {0};
        mpm_err_t err = {.offset = -1, .msg = ""};
        for (int t = 0; t < e->pl.nthreads; t++) {
            if (!e->segs[t].p) continue;
            uint64_t key = seg_key(e->rank, t, e->segs[t].seq), len = 0;
            size_t at = b.len;
            if (mpm_buf_append(&b, &key, 8) || mpm_buf_append(&b, &len, 8) ||
                segment_close(e, t, &b, &err) < 0) {
                MPM_LOG(MPM_LOG_ERROR, "cannot serialise a partial result: %s",
                        err.msg[0] ? err.msg : "out of memory");
                MPI_Abort(e->comm, MPM_EXIT_FAIL);
            }
            len = b.len - at - 16;
            memcpy(b.data + at + 8, &len, 8);
        }
        if (b.len > INT_MAX) {
            MPM_LOG(MPM_LOG_ERROR, "partial results larger than 2 GiB");
            MPI_Abort(e->comm, MPM_EXIT_FAIL);
        }
        mpi_check(MPI_Send(b.data, (int)b.len, MPI_BYTE, 0, TAG_SEGMENTS, e->comm), "MPI_Send");
        mpm_buf_free(&b);
    }
    if (stop_status == STOP_OK && e->k->solve) {
        mpm_err_t err = {.offset = -1, .msg = ""};
        mpm_buf_t fin = {0};
        int sig = 0;
        run_solve(e, &fin, &sig, &err); /* rank 0 reports the agreed outcome */
        mpm_buf_free(&fin);
    } else if (stop_status == STOP_OK && e->partials) {
        mpm_err_t err = {.offset = -1, .msg = ""};
        mpm_buf_t b = {0};
        if (merge_local(e, &err) < 0 || e->k->serialize(e->opts, e->partials[0], &b) < 0 ||
            b.len > INT_MAX) {
            MPM_LOG(MPM_LOG_ERROR, "cannot serialise the partial result: %s",
                    err.msg[0] ? err.msg : "out of memory or larger than 2 GiB");
            MPI_Abort(e->comm, MPM_EXIT_FAIL);
        }
        double t0 = ob_now(e), b0 = ob_busy(e, t0);
        mpi_check(MPI_Send(b.data, (int)b.len, MPI_BYTE, 0, TAG_PARTIAL, e->comm), "MPI_Send");
        ob_transfer(e, MPM_SP_SEND, t0, b0, -1, b.len);
        mpm_buf_free(&b);
    }
    return MPM_EXIT_OK;
}

/* ---- set-up shared by all ranks ------------------------------------------- */

/* A file the run will create: not a directory, in a directory that exists
 * and can be written. 0, or -1 (printed). */
static int check_writable(const char *what, const char *path)
{
    char why[PATH_MAX + 256];
    if (mpm__out_check_writable(what, path, why, sizeof why) == 0) return 0;
    MPM_LOG(MPM_LOG_ERROR, "%s", why);
    return -1;
}

/* Rank 0 checks inputs and output before anything runs. Returns an exit code. */
static int precheck(const mpm_config_t *cfg, const mpm_kernel_t *k, const mpm_inputs_t *in)
{
    struct stat ost;
    int out_exists = cfg->output && strcmp(cfg->output, "-") && stat(cfg->output, &ost) == 0;
    for (int i = 0; i < in->n; i++) {
        const mpm_input_t *x = &in->v[i];
        if (x->kind != MPM_IN_FILE) continue;
        struct stat st;
        if (stat(x->name, &st) < 0) {
            MPM_LOG(MPM_LOG_ERROR, "cannot open input '%s': %s", x->name, strerror(errno));
            return MPM_EXIT_FAIL;
        }
        if (S_ISDIR(st.st_mode)) {
            MPM_LOG(MPM_LOG_ERROR, "input '%s' is a directory, expected a file", x->name);
            return MPM_EXIT_FAIL;
        }
        if (out_exists && st.st_dev == ost.st_dev && st.st_ino == ost.st_ino) {
            MPM_LOG(MPM_LOG_ERROR,
                    "output '%s' is also input %d ('%s'): refusing to overwrite an input",
                    cfg->output, i + 1, x->name);
            return MPM_EXIT_USAGE;
        }
        /* An input that exists but cannot be read is a failed chunk of the
         * run (reported with the others at the end), unless --fail-fast.
         * Only regular files are opened to find out: opening and closing a
         * FIFO would block until a writer comes, then break its pipe (the
         * stream lost, the reader's real open blocked for ever). */
        int fd = S_ISREG(st.st_mode) ? open(x->name, O_RDONLY | O_CLOEXEC) : -2;
        if (fd == -2 && access(x->name, R_OK) < 0) fd = -1;
        if (fd == -1 && cfg->fail_fast) {
            MPM_LOG(MPM_LOG_ERROR, "cannot open input '%s': %s", x->name, strerror(errno));
            return MPM_EXIT_FAIL;
        }
        if (fd >= 0) close(fd);
        /* A kernel that reads its inputs itself judges an empty one (an
         * empty image is a corrupt one: reported, the others processed). */
        if (S_ISREG(st.st_mode) && st.st_size == 0 && !cfg->allow_empty && !k->source_open) {
            MPM_LOG(MPM_LOG_ERROR, "input '%s' is empty (0 bytes); pass --allow-empty to accept it",
                    x->name);
            return MPM_EXIT_FAIL;
        }
    }
    if (k->solve && cfg->journal) {
        MPM_LOG(MPM_LOG_ERROR,
                "%s keeps its data in memory and iterates over it: --journal and --resume do "
                "not apply (a run is restarted from the input)",
                k->name);
        return MPM_EXIT_USAGE;
    }
    /* A kernel's sink checks its own output (it may be a directory). */
    if (!k->sink_open && cfg->output && strcmp(cfg->output, "-") &&
        check_writable("output", cfg->output) < 0)
        return MPM_EXIT_FAIL;
    if (cfg->metrics && check_writable("--metrics file", cfg->metrics) < 0) return MPM_EXIT_FAIL;
    if (cfg->trace && check_writable("--trace file", cfg->trace) < 0) return MPM_EXIT_FAIL;
    return MPM_EXIT_OK;
}

/* Appends `s` to b with control bytes and backslashes made visible, so that a
 * fingerprint line stays one line. */
static int fp_quote(mpm_buf_t *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int r = c < 0x20 || c == 0x7f || c == '\\' ? mpm_buf_printf(b, "\\x%02x", c)
                                                    : mpm_buf_append(b, &s[i], 1);
        if (r) return -1;
    }
    return 0;
}

/* The run's fingerprint for the journal: what makes results differ. */
static int fingerprint(const mpm_config_t *cfg, const mpm_kernel_t *k, const void *opts,
                       const mpm_inputs_t *in, uint64_t chunk_size, mpm_records_t records,
                       mpm_buf_t *global,
                       char ***lines)
{
    static const char *const fmts[] = {"text", "tsv", "json"};
    int bad = mpm_buf_printf(global, "kernel %s\nkernel-abi %u\nchunk-size %llu\nrecords %s\nformat %s\n",
                             k->name, k->abi, (unsigned long long)chunk_size,
                             records == MPM_REC_LINES ? "lines" : records == MPM_REC_BYTES ? "bytes" : "words",
                             fmts[cfg->format >= 0 && cfg->format <= 2 ? cfg->format : 0]) < 0;
    for (const mpm_option_t *o = k->options; o && o->name && !bad; o++) {
        if (o->flags & MPM_OPTF_NO_FINGERPRINT) continue;
        bad = mpm_buf_printf(global, "option %s=", o->name) < 0;
        if (bad) break;
        int r = mpm__option_value(global, o, opts, 0);
        if (r == 1) { /* a string */
            const char *v;
            memcpy(&v, (const char *)opts + o->offset, sizeof v);
            bad = v ? (mpm_buf_append(global, "\"", 1) || fp_quote(global, v, strlen(v)) ||
                       mpm_buf_append(global, "\"", 1))
                    : mpm_buf_printf(global, "(none)") < 0;
        } else {
            bad = r < 0;
        }
        if (!bad) bad = mpm_buf_append(global, "\n", 1);
    }
    if (!bad && k->fingerprint) bad = k->fingerprint(opts, global) < 0;
    if (!bad) bad = mpm_buf_printf(global, "inputs %d\n", in->n) < 0;
    *lines = calloc((size_t)(in->n ? in->n : 1), sizeof **lines);
    if (!*lines) return -1;
    for (int i = 0; i < in->n && !bad; i++) {
        const mpm_input_t *x = &in->v[i];
        mpm_buf_t b = {0};
        struct stat st;
        if (x->kind == MPM_IN_FILE) {
            memset(&st, 0, sizeof st);
            stat(x->name, &st);
            bad = mpm_buf_printf(&b, "file ") < 0 || fp_quote(&b, x->name, strlen(x->name)) ||
                  mpm_buf_printf(&b, " size %lld mtime %lld.%09ld", (long long)st.st_size,
                                 (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec) < 0;
        } else if (x->kind == MPM_IN_MEMORY) {
            bad = mpm_buf_printf(&b, "memory ") < 0 || fp_quote(&b, x->name, strlen(x->name)) ||
                  mpm_buf_printf(&b, " bytes %zu xxh64 %016llx", x->len,
                                 (unsigned long long)XXH64(x->data, x->len, 0)) < 0;
        } else if (x->kind == MPM_IN_RANGE) {
            bad = mpm_buf_printf(&b, "range %llu %llu", (unsigned long long)x->lo,
                                 (unsigned long long)x->hi) < 0;
        } else {
            bad = mpm_buf_printf(&b, "stdin") < 0;
        }
        if (!bad) bad = mpm_buf_append(&b, "", 1); /* NUL */
        (*lines)[i] = b.data;
    }
    if (!bad) bad = mpm_buf_append(global, "", 1) != 0;
    return bad ? -1 : 0;
}

/* Rank 0: opens (or resumes) the journal. Returns an exit code. */
static int open_journal(engine_t *e)
{
    mpm_buf_t global = {0};
    char **lines = NULL;
    const char **names = calloc((size_t)(e->in->n ? e->in->n : 1), sizeof *names);
    int rc = MPM_EXIT_OK;
    mpm_err_t err = {.offset = -1, .msg = ""};
    if (!names || fingerprint(e->cfg, e->k, e->opts, e->in, e->chunk_size, e->records, &global, &lines) < 0) {
        MPM_LOG(MPM_LOG_ERROR, "out of memory");
        rc = MPM_EXIT_FAIL;
    } else {
        for (int i = 0; i < e->in->n; i++) names[i] = e->in->v[i].name;
        int r = mpm__journal_open(&e->journal, e->cfg->journal, e->cfg->resume, global.data, lines,
                                  names, e->in->n, JOURNAL_SYNC_S, &err);
        if (r < 0) {
            MPM_LOG(MPM_LOG_ERROR, "%s", err.msg);
            rc = r == -2 ? MPM_EXIT_USAGE : MPM_EXIT_FAIL;
        } else {
            const mpm_journal_stats_t *st = mpm__journal_stats(e->journal);
            if (st->torn_bytes)
                MPM_LOG(MPM_LOG_WARN,
                        "journal '%s': ignored an incomplete last record (%llu bytes at byte "
                        "%llu, from a run that was killed); its chunk is computed again",
                        e->cfg->journal, (unsigned long long)st->torn_bytes,
                        (unsigned long long)st->torn_at);
            if (e->cfg->resume)
                MPM_LOG(MPM_LOG_INFO, "journal '%s': %s; %llu finished and %llu failed chunks recorded",
                        e->cfg->journal, st->created ? "created (nothing to resume)" : "resumed",
                        (unsigned long long)st->done, (unsigned long long)st->failed);
        }
    }
    for (int i = 0; lines && i < e->in->n; i++) free(lines[i]);
    free(lines);
    free(names);
    mpm_buf_free(&global);
    return rc;
}

/* Decides --io auto: shared when every rank sees every file input with the
 * same size and mtime as rank 0. Collective. */
static int resolve_io(engine_t *e)
{
    if (e->k->source_open) {
        /* Only rank 0 sees the bytes that the kernel's source makes. */
        if (e->cfg->io == MPM_IO_SHARED && e->rank == 0)
            MPM_LOG(MPM_LOG_WARN, "--io shared does not apply to %s: rank 0 cuts the inputs and "
                                  "ships the chunks", e->k->name);
        return MPM_IO_MASTER;
    }
    int has_file = 0;
    for (int i = 0; i < e->in->n; i++) has_file |= e->in->v[i].kind == MPM_IN_FILE;
    /* A FIFO or a device is a stream: only one reader can read it, once,
     * front to back (its size says nothing). Rank 0 reads it and ships it. */
    int stream = -1;
    for (int i = 0; e->rank == 0 && stream < 0 && i < e->in->n; i++) {
        struct stat st;
        if (e->in->v[i].kind == MPM_IN_FILE && stat(e->in->v[i].name, &st) == 0 &&
            !S_ISREG(st.st_mode))
            stream = i;
    }
    if (has_file && e->size > 1) mpi_check(MPI_Bcast(&stream, 1, MPI_INT, 0, e->comm), "MPI_Bcast");
    if (stream >= 0) {
        if (e->cfg->io != MPM_IO_SHARED) return MPM_IO_MASTER;
        if (e->rank == 0)
            MPM_LOG(MPM_LOG_ERROR,
                    "--io shared: input '%s' is not a regular file (a pipe or a device): only "
                    "rank 0 can read it, once; use --io master or auto",
                    e->in->v[stream].name);
        return -1;
    }
    if (!has_file || e->size == 1) return e->cfg->io == MPM_IO_SHARED && has_file ? MPM_IO_SHARED
                                                                                  : MPM_IO_MASTER;
    if (e->cfg->io == MPM_IO_MASTER) return MPM_IO_MASTER;
    int same = 1;
    int bad_input = -1;
    for (int i = 0; i < e->in->n; i++) {
        if (e->in->v[i].kind != MPM_IN_FILE) continue;
        long long v[3] = {-1, -1, -1};
        struct stat st;
        if (e->rank == 0 && stat(e->in->v[i].name, &st) == 0) {
            v[0] = (long long)st.st_size;
            v[1] = (long long)st.st_mtim.tv_sec;
            v[2] = (long long)st.st_mtim.tv_nsec;
        }
        mpi_check(MPI_Bcast(v, 3, MPI_LONG_LONG, 0, e->comm), "MPI_Bcast");
        if (e->rank != 0) {
            int ok = stat(e->in->v[i].name, &st) == 0 && (long long)st.st_size == v[0] &&
                     (long long)st.st_mtim.tv_sec == v[1] && (long long)st.st_mtim.tv_nsec == v[2] &&
                     access(e->in->v[i].name, R_OK) == 0;
            if (!ok && same) {
                same = 0;
                bad_input = i;
            }
        }
    }
    int all = 0;
    mpi_check(MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_MIN, e->comm), "MPI_Allreduce");
    if (all) return MPM_IO_SHARED;
    if (e->cfg->io == MPM_IO_SHARED) {
        if (!same)
            MPM_LOG(MPM_LOG_ERROR,
                    "--io shared: this rank does not see input '%s' as rank 0 does (missing, "
                    "unreadable, or a different size or mtime); use --io master",
                    e->in->v[bad_input].name);
        return -1;
    }
    if (e->rank == 0)
        MPM_LOG(MPM_LOG_INFO, "--io auto: not every rank sees the same files; rank 0 ships the bytes");
    return MPM_IO_MASTER;
}

/* Among the ranks of this node, how many were given exactly this cpuset and
 * how many of them have a lower rank. Collective over comm. */
static void node_share(MPI_Comm comm, hwloc_const_cpuset_t allowed, int *index, int *count)
{
    enum { SET_LEN = 512 };
    char mine[SET_LEN] = "";
    if (allowed) hwloc_bitmap_list_snprintf(mine, sizeof mine, allowed);
    MPI_Comm node;
    *index = 0;
    *count = 1;
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) != MPI_SUCCESS)
        return;
    int lr = 0, ln = 1;
    MPI_Comm_rank(node, &lr);
    MPI_Comm_size(node, &ln);
    char *all = malloc((size_t)ln * SET_LEN);
    if (all) {
        mpi_check(MPI_Allgather(mine, SET_LEN, MPI_CHAR, all, SET_LEN, MPI_CHAR, node),
                  "MPI_Allgather");
        int c = 0, k = 0;
        for (int r = 0; r < ln; r++) {
            if (strncmp(all + (size_t)r * SET_LEN, mine, SET_LEN) != 0) continue;
            if (r < lr) k++;
            c++;
        }
        if (allowed && mine[0]) {
            *index = k;
            *count = c;
        }
        free(all);
    }
    MPI_Comm_free(&node);
}

/* ---- metrics and trace (obs.h) -------------------------------------------- */

/* --trace: this rank's clock minus rank 0's, in seconds, from MPI
 * ping-pongs with rank 0 (the one with the shortest round trip of 8).
 * Collective. */
static double clock_offset(engine_t *e)
{
    double off = 0;
    if (e->rank == 0) {
        for (int r = 1; r < e->size; r++) {
            double best = 1e30;
            for (int i = 0; i < 8; i++) {
                double t0 = mpm__now(), tr = 0;
                mpi_check(MPI_Send(&t0, 1, MPI_DOUBLE, r, TAG_CLOCK, e->comm), "MPI_Send");
                mpi_check(MPI_Recv(&tr, 1, MPI_DOUBLE, r, TAG_CLOCK, e->comm, MPI_STATUS_IGNORE),
                          "MPI_Recv");
                double t1 = mpm__now();
                if (t1 - t0 < best) {
                    best = t1 - t0;
                    off = tr - (t0 + t1) / 2;
                }
            }
            mpi_check(MPI_Send(&off, 1, MPI_DOUBLE, r, TAG_CLOCK, e->comm), "MPI_Send");
        }
        return 0;
    }
    for (int i = 0; i < 8; i++) {
        double t0;
        mpi_check(MPI_Recv(&t0, 1, MPI_DOUBLE, 0, TAG_CLOCK, e->comm, MPI_STATUS_IGNORE), "MPI_Recv");
        double tr = mpm__now();
        mpi_check(MPI_Send(&tr, 1, MPI_DOUBLE, 0, TAG_CLOCK, e->comm), "MPI_Send");
    }
    mpi_check(MPI_Recv(&off, 1, MPI_DOUBLE, 0, TAG_CLOCK, e->comm, MPI_STATUS_IGNORE), "MPI_Recv");
    return off;
}

/* A report file: written to a temporary name next to it, renamed when
 * complete (never a partial file under the final name). */
typedef struct report_s {
    const char *path;
    char *tmp;
    FILE *f;
} report_t;

static int report_open(report_t *r, const char *path)
{
    size_t n = strlen(path) + 64;
    r->path = path;
    r->f = NULL;
    r->tmp = NULL;
    if (mpm__out_in_place(path)) {
        r->f = fopen(path, "w");
        return r->f ? 0 : -1;
    }
    if (!(r->tmp = malloc(n))) return -1;
    snprintf(r->tmp, n, "%s.tmp-%ld", path, (long)getpid());
    r->f = fopen(r->tmp, "w");
    return r->f ? 0 : -1;
}

/* Closes and renames; or removes the temporary file when bad. 0 or -1. */
static int report_close(report_t *r, int bad, const char *what)
{
    int err = bad ? EIO : 0;
    if (r->f) {
        if (ferror(r->f) && !err) err = EIO;
        if (fclose(r->f) != 0 && !err) err = errno;
    } else if (!err) {
        err = errno ? errno : EIO;
    }
    if (!err && r->tmp && rename(r->tmp, r->path) < 0) err = errno;
    if (err) {
        if (r->tmp) unlink(r->tmp);
        MPM_LOG(MPM_LOG_ERROR, "cannot write %s '%s': %s", what, r->path, strerror(err));
    }
    free(r->tmp);
    r->tmp = NULL;
    return err ? -1 : 0;
}

/* Sends this rank's text to rank 0 (workers), or receives rank r's (rank 0). */
static void obs_send(engine_t *e, const mpm_buf_t *b)
{
    int n = b->len > INT_MAX ? 0 : (int)b->len;
    if (b->len > INT_MAX) MPM_LOG(MPM_LOG_ERROR, "metrics or trace of this rank exceed 2 GiB: left out");
    mpi_check(MPI_Send(n ? b->data : "", n, MPI_BYTE, 0, TAG_OBS, e->comm), "MPI_Send");
}

/* Rank 0: writes a report file: head, this rank's fragment, then every
 * other rank's (received in rank order, each after sep), then tail. The
 * fragments are received even when the file cannot be written. 0, or -1
 * (printed). */
static int report_write(engine_t *e, const char *path, const char *what, const mpm_buf_t *head,
                        const mpm_buf_t *own, const char *sep, const char *tail)
{
    report_t f;
    int bad = report_open(&f, path) < 0;
    FILE *F = f.f;
    if (F && (fwrite(head->data, 1, head->len, F) != head->len ||
              fwrite(own->data, 1, own->len, F) != own->len))
        bad = 1;
    for (int r = 1; r < e->size; r++) {
        int count = 0;
        char *frag = recv_whole(e, r, TAG_OBS, &count);
        if (F && count && (fputs(sep, F) < 0 || fwrite(frag, 1, (size_t)count, F) != (size_t)count))
            bad = 1;
        free(frag);
    }
    if (F && fputs(tail, F) < 0) bad = 1;
    return report_close(&f, bad, what);
}

static void json_inputs(const engine_t *e, mpm_buf_t *b)
{
    mpm_buf_append(b, "[", 1);
    for (int i = 0; i < e->in->n; i++) {
        const mpm_input_t *x = &e->in->v[i];
        if (i) mpm_buf_append(b, ", ", 2);
        if (x->kind == MPM_IN_RANGE)
            mpm_buf_printf(b, "\"%llu:%llu\"", (unsigned long long)x->lo, (unsigned long long)x->hi);
        else
            mpm__json_string(b, x->name ? x->name : "-", strlen(x->name ? x->name : "-"));
    }
    mpm_buf_append(b, "]", 1);
}

/* Collective, after the run: every rank's counters go to rank 0, which
 * prints the -v summary and writes --metrics and --trace. Returns rc, or
 * MPM_EXIT_FAIL (rank 0) when a file cannot be written. */
static int obs_report(engine_t *e, int rc, double t_start, double clock_off, double origin,
                      const int *windows)
{
    mpm_obs_t *o = e->obs;
    const mpm_config_t *cfg = e->cfg;
    double end = mpm__now();
    mpm__obs_close(o, end);

    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    char cpuset[512] = "";
    hwloc_bitmap_list_snprintf(cpuset, sizeof cpuset, e->pl.allowed);
    int nt = e->pl.nthreads;
    char(*pus)[128] = calloc((size_t)nt, sizeof *pus);
    const char **pp = calloc((size_t)nt, sizeof *pp);
    if (!pus || !pp) {
        MPM_LOG(MPM_LOG_ERROR, "out of memory");
        MPI_Abort(e->comm, MPM_EXIT_FAIL);
    }
    for (int t = 0; t < nt; t++) {
        hwloc_bitmap_list_snprintf(pus[t], sizeof pus[t], e->pl.cpusets[t]);
        pp[t] = pus[t];
    }
    mpm_obs_rank_t ri = {.rank = e->rank,
                         .host = host,
                         .pid = (long)getpid(),
                         .cpuset = cpuset,
                         .pus = pp,
                         .bound = e->pl.bind,
                         .elapsed = end - t_start,
                         .clock_offset = clock_off};

    /* The numbers, for the totals and the summary line. */
    double v[MPM_OS_N + 1];
    mpm__obs_sums(o, v);
    v[MPM_OS_N] = nt;
    double *all = e->rank == 0 ? calloc((size_t)e->size * (MPM_OS_N + 1), sizeof *all) : NULL;
    char(*hosts)[256] = e->rank == 0 ? calloc((size_t)e->size, sizeof *hosts) : NULL;
    if (e->rank == 0 && (!all || !hosts)) {
        MPM_LOG(MPM_LOG_ERROR, "out of memory");
        MPI_Abort(e->comm, MPM_EXIT_FAIL);
    }
    mpi_check(MPI_Gather(v, MPM_OS_N + 1, MPI_DOUBLE, all, MPM_OS_N + 1, MPI_DOUBLE, 0, e->comm),
              "MPI_Gather");
    mpi_check(MPI_Gather(host, sizeof host, MPI_CHAR, hosts, sizeof host, MPI_CHAR, 0, e->comm),
              "MPI_Gather");
    double tot[MPM_OS_N + 1] = {0};
    for (int r = 0; all && r < e->size; r++)
        for (int i = 0; i <= MPM_OS_N; i++) tot[i] += all[(size_t)r * (MPM_OS_N + 1) + i];
    if (e->rank == 0) {
        double th = tot[MPM_OS_THREAD_TIME] > 0 ? tot[MPM_OS_THREAD_TIME] : 1;
        char hid[96] = "no transfers";
        if (tot[MPM_OS_TRANSFER] > 0)
            snprintf(hid, sizeof hid, "transfers %.3f s, %.0f%% hidden behind computation",
                     tot[MPM_OS_TRANSFER], 100 * tot[MPM_OS_HIDDEN] / tot[MPM_OS_TRANSFER]);
        MPM_LOG(MPM_LOG_INFO,
                "metrics: %d rank%s, %.0f threads: compute %.3f s (%.0f%% of thread time), read "
                "%.0f%%, idle %.0f%%; main threads: MPI %.3f s, writing output %.3f s; %s",
                e->size, e->size == 1 ? "" : "s", tot[MPM_OS_N], tot[MPM_OS_COMPUTE],
                100 * tot[MPM_OS_COMPUTE] / th, 100 * tot[MPM_OS_READ] / th,
                100 * tot[MPM_OS_IDLE] / th, tot[MPM_OS_MPI], tot[MPM_OS_WRITE], hid);
        if (tot[MPM_OS_DROPPED] > 0)
            MPM_LOG(MPM_LOG_WARN,
                    "--trace: %.0f spans beyond --trace-max %lld per thread were counted, not "
                    "kept",
                    tot[MPM_OS_DROPPED], cfg->trace_max);
    }

    mpm_buf_t b = {0};
    if (cfg->metrics) {
        if (mpm__obs_rank_json(o, &ri, &b) < 0) b.len = 0;
        if (e->rank != 0) {
            obs_send(e, &b);
        } else {
            mpm_buf_t h = {0};
            char when[32] = "";
            time_t now = time(NULL);
            struct tm tm;
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
            mpm_buf_printf(&h,
                           "{\n  \"mpimap\": {\"version\": \"%s\", \"kernel\": \"%s\", "
                           "\"exit_code\": %d, \"finished_utc\": \"%s\", \"elapsed_s\": %.6f},\n"
                           "  \"options\": {\"engine\": ",
                           MPM_VERSION, e->k->name, rc, when, end - t_start);
            mpm__options_json(&h, NULL, cfg);
            mpm_buf_printf(&h, ",\n    \"kernel\": ");
            mpm__options_json(&h, e->k->options ? e->k->options
                                               : (const mpm_option_t[]){{NULL, 0, 0, 0, NULL, NULL, 0, 0, NULL, 0}},
                              e->opts);
            mpm_buf_printf(&h, ",\n    \"inputs\": ");
            json_inputs(e, &h);
            mpm_buf_printf(&h, "},\n  \"topology\": {\"ranks\": %d, \"threads\": %.0f, \"hosts\": [",
                           e->size, tot[MPM_OS_N]);
            for (int r = 0, first = 1; r < e->size; r++) {
                int seen = 0;
                for (int q = 0; q < r; q++) seen |= !strcmp(hosts[q], hosts[r]);
                if (seen) continue;
                if (!first) mpm_buf_append(&h, ", ", 2);
                first = 0;
                mpm__json_string(&h, hosts[r], strlen(hosts[r]));
            }
            mpm_buf_printf(&h, "], \"threads_per_rank\": [");
            for (int r = 0; r < e->size; r++)
                mpm_buf_printf(&h, "%s%.0f", r ? ", " : "", all[(size_t)r * (MPM_OS_N + 1) + MPM_OS_N]);
            mpm_buf_printf(&h, "], \"window_per_rank\": [");
            for (int r = 0; r < e->size; r++)
                mpm_buf_printf(&h, "%s%d", r ? ", " : "",
                               r == 0 && cfg->dedicated_master && e->size > 1 ? 0 : windows[r]);
            mpm_buf_printf(&h, "], \"io\": \"%s\", \"chunk_size\": %llu},\n",
                           e->io == MPM_IO_SHARED ? "shared" : "master",
                           (unsigned long long)e->chunk_size);
            if (e->kmetrics.len) {
                mpm_buf_printf(&h, "  ");
                mpm__json_string(&h, e->k->name, strlen(e->k->name));
                mpm_buf_printf(&h, ": {%.*s},\n", (int)e->kmetrics.len, e->kmetrics.data);
            }
            double tt = tot[MPM_OS_THREAD_TIME];
            mpm_buf_printf(
                &h,
                "  \"totals\": {\"chunks\": %llu, \"chunks_computed\": %.0f, \"chunks_failed\": "
                "%llu, \"chunks_from_journal\": %llu, \"input_size\": %llu, \"bytes_in\": %.0f, "
                "\"bytes_out\": %.0f,\n    \"compute_s\": %.6f, \"read_s\": %.6f, \"idle_s\": "
                "%.6f, \"busy_ratio\": %.4f, \"mpi_s\": %.6f, \"wait_output_s\": %.6f, "
                "\"transfer_s\": %.6f, \"hidden_s\": %.6f, \"overlap_ratio\": %.4f, "
                "\"trace_spans_dropped\": %.0f},\n  \"ranks\": [\n    ",
                (unsigned long long)(e->m_done + e->m_failed), tot[MPM_OS_CHUNKS],
                (unsigned long long)e->m_failed, (unsigned long long)e->m_reused,
                (unsigned long long)e->m_bytes, tot[MPM_OS_BYTES_IN], tot[MPM_OS_BYTES_OUT],
                tot[MPM_OS_COMPUTE], tot[MPM_OS_READ], tot[MPM_OS_IDLE],
                tt > 0 ? (tot[MPM_OS_COMPUTE] + tot[MPM_OS_READ]) / tt : 0, tot[MPM_OS_MPI],
                tot[MPM_OS_WRITE], tot[MPM_OS_TRANSFER], tot[MPM_OS_HIDDEN],
                tot[MPM_OS_TRANSFER] > 0 ? tot[MPM_OS_HIDDEN] / tot[MPM_OS_TRANSFER] : 0,
                tot[MPM_OS_DROPPED]);
            if (report_write(e, cfg->metrics, "--metrics file", &h, &b, ",\n    ", "\n  ]\n}\n") < 0)
                rc = MPM_EXIT_FAIL;
            mpm_buf_free(&h);
        }
        b.len = 0;
    }
    if (cfg->trace) {
        if (mpm__obs_trace_json(o, &ri, origin, &b) < 0) b.len = 0;
        if (e->rank != 0) {
            obs_send(e, &b);
        } else {
            mpm_buf_t h = {0};
            mpm_buf_printf(&h,
                             "{\"displayTimeUnit\": \"ms\",\n\"otherData\": {\"tool\": \"mpimap "
                             "%s\", \"kernel\": \"%s\", \"ranks\": %d, \"clock\": \"CLOCK_MONOTONIC "
                             "of each rank, shifted by its offset to rank 0 measured with MPI "
                             "ping-pongs at the start; 0 = the start of the run on rank 0\", "
                             "\"trace_max_per_thread\": %lld, \"spans_dropped\": %.0f},\n"
                             "\"traceEvents\": [\n",
                             MPM_VERSION, e->k->name, e->size, cfg->trace_max,
                             tot[MPM_OS_DROPPED]);
            if (report_write(e, cfg->trace, "--trace file", &h, &b, ",\n", "\n]}\n") < 0)
                rc = MPM_EXIT_FAIL;
            mpm_buf_free(&h);
        }
    }
    mpm_buf_free(&b);
    free(all);
    free(hosts);
    free(pus);
    free(pp);
    return rc;
}

int mpm_run(const mpm_config_t *cfg, const mpm_kernel_t *k, const void *opts,
            const mpm_inputs_t *inputs, MPI_Comm comm)
{
    double t_start = mpm__now();
    engine_t e;
    memset(&e, 0, sizeof e);
    e.cfg = cfg;
    e.k = k;
    e.opts = opts;
    e.in = inputs;
    e.comm = comm;
    MPI_Comm_rank(comm, &e.rank);
    MPI_Comm_size(comm, &e.size);
    mpm__out_set_sync(!cfg->no_sync);
    mpm__log_rank = e.rank;
    e.chunk_size = cfg->chunk_size ? cfg->chunk_size : k->default_chunk_size;
    if (!e.chunk_size) e.chunk_size = 1 << 20;
    e.records = k->records;
    uint64_t rec = k->record_size ? k->record_size(opts) : 0;
    if (rec) { /* fixed-size records: whole records per chunk */
        e.records = MPM_REC_BYTES;
        e.chunk_size = e.chunk_size < rec ? rec : e.chunk_size / rec * rec;
    }

    mpm__sig_run_begin();
    int rc = e.rank == 0 ? precheck(cfg, k, inputs) : 0;
    if (rc == 0 && e.rank == 0 && cfg->journal) rc = open_journal(&e);
    mpi_check(MPI_Bcast(&rc, 1, MPI_INT, 0, comm), "MPI_Bcast");
    if (rc) {
        if (e.journal) mpm__journal_close(e.journal, &(mpm_err_t){.offset = -1});
        mpm__sig_run_end();
        return rc;
    }

    int io = resolve_io(&e);
    int ok = io >= 0, all_ok = 0;
    mpi_check(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, comm), "MPI_Allreduce");
    if (!all_ok) {
        if (e.rank == 0 && ok)
            MPM_LOG(MPM_LOG_ERROR, "--io shared: some ranks cannot read the inputs (see above)");
        if (e.journal) mpm__journal_close(e.journal, &(mpm_err_t){.offset = -1});
        mpm__sig_run_end();
        return MPM_EXIT_FAIL;
    }
    e.io = io;

    /* Topology and the pool. */
    char msg[512] = "";
    hwloc_cpuset_t allowed = hwloc_bitmap_alloc();
    int topo_ok = mpm__topo_load(&e.topo, allowed, msg, sizeof msg) == 0;
    ok = topo_ok;
    int share_index = 0, share_count = 1;
    node_share(comm, topo_ok ? allowed : NULL, &share_index, &share_count);
    if (ok && mpm__topo_plan_shared(e.topo, allowed, (int)cfg->threads, cfg->bind == MPM_BIND_CORE,
                                    share_index, share_count, &e.pl) < 0) {
        snprintf(msg, sizeof msg, "no usable core in this rank's cpuset");
        ok = 0;
    }
    if (ok && k->pool_threads) {
        /* The kernel sizes the pool (exec: one thread per task slot). Its
         * threads mostly wait, so more threads than cores is no mistake. */
        int want = k->pool_threads(opts, (int)cfg->threads, e.pl.ncores);
        if (want > 0 && want != e.pl.nthreads) {
            mpm__topo_free(&e.pl);
            if (mpm__topo_plan_shared(e.topo, allowed, want, cfg->bind == MPM_BIND_CORE,
                                      share_index, share_count, &e.pl) < 0) {
                snprintf(msg, sizeof msg, "no usable core in this rank's cpuset");
                ok = 0;
            }
        }
        e.pl.oversubscribed = 0;
    }
    if (ok) mpm__topo_set_run(e.topo, &e.pl);
    hwloc_bitmap_free(allowed);
    if (k->layout) { /* collective: every rank has the same kernel */
        int mine = ok ? e.pl.nthreads : 0, total = 0;
        mpi_check(MPI_Allreduce(&mine, &total, 1, MPI_INT, MPI_SUM, comm), "MPI_Allreduce");
        /* opts came from the CLI as writable memory; layout is the one hook
         * allowed to write them (kernel.h). */
        if (ok) k->layout((void *)opts, e.size, e.rank, e.pl.nthreads, total > 0 ? total : 1);
    }
    if (ok && k->partial_new) {
        e.partials = calloc((size_t)e.pl.nthreads, sizeof *e.partials);
        for (int t = 0; e.partials && t < e.pl.nthreads; t++)
            if (!(e.partials[t] = k->partial_new(opts))) ok = 0;
        if (!e.partials || !ok) snprintf(msg, sizeof msg, "out of memory for partial results");
        if (!e.partials) ok = 0;
    }
    if (ok && cfg->journal && k->partial_new && !(e.segs = calloc((size_t)e.pl.nthreads, sizeof *e.segs))) {
        snprintf(msg, sizeof msg, "out of memory");
        ok = 0;
    }
    if (ok) {
        e.fds = malloc((size_t)(inputs->n ? inputs->n : 1) * sizeof *e.fds);
        if (!e.fds) ok = 0;
        for (int i = 0; e.fds && i < inputs->n; i++) e.fds[i] = -1;
    }
    if (ok && cfg->report_bindings) {
        e.affinity = calloc((size_t)e.pl.nthreads, sizeof *e.affinity);
        e.tids = calloc((size_t)e.pl.nthreads, sizeof *e.tids);
        if (!e.affinity || !e.tids) {
            snprintf(msg, sizeof msg, "out of memory");
            ok = 0;
        }
    }
    if (ok && (cfg->metrics || cfg->trace || cfg->verbose) &&
        mpm__obs_new(&e.obs, e.pl.nthreads, cfg->trace != NULL, cfg->trace_max, mpm__now()) < 0) {
        snprintf(msg, sizeof msg, "out of memory");
        ok = 0;
    }
    if (ok) {
        int prc = mpm__pool_start(&e.pool, e.pl.nthreads, thread_init, &e);
        if (prc < 0) {
            snprintf(msg, sizeof msg, "cannot start %d threads: %s", e.pl.nthreads, strerror(-prc));
            ok = 0;
        }
    }
    if (!ok) MPM_LOG(MPM_LOG_ERROR, "%s", msg);
    mpi_check(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, comm), "MPI_Allreduce");

    /* One warning, from rank 0, when threads outnumber the cores given. */
    int over[2] = {ok && e.pl.oversubscribed, ok && e.pl.oversubscribed ? e.pl.ncores : INT_MAX};
    int over_sum[2] = {0, 0};
    mpi_check(MPI_Reduce(&over[0], &over_sum[0], 1, MPI_INT, MPI_SUM, 0, comm), "MPI_Reduce");
    mpi_check(MPI_Reduce(&over[1], &over_sum[1], 1, MPI_INT, MPI_MIN, 0, comm), "MPI_Reduce");
    if (e.rank == 0 && all_ok && over_sum[0]) {
        MPM_LOG(MPM_LOG_WARN,
                "--threads %d exceeds the cores the launcher gave %d of %d rank%s (as few as %d): "
                "threads will share cores. Give each rank more cores (mpirun --map-by "
                "ppr:1:node:pe=N or --bind-to none, srun --cpus-per-task=N) or use fewer threads",
                e.pl.nthreads, over_sum[0], e.size, e.size == 1 ? "" : "s", over_sum[1]);
    }

    int window = 0;
    if (all_ok) {
        long long w = cfg->window ? cfg->window : 2LL * e.pl.nthreads;
        window = w > 1 << 20 ? 1 << 20 : (int)w;
    }
    int *windows = e.rank == 0 ? calloc((size_t)e.size, sizeof *windows) : NULL;
    mpi_check(MPI_Gather(&window, 1, MPI_INT, windows, 1, MPI_INT, 0, comm), "MPI_Gather");

    if (all_ok && cfg->report_bindings) {
        char host[256] = "?";
        gethostname(host, sizeof host - 1);
        char line[4096];
        mpm__topo_describe(e.topo, &e.pl, host, e.rank, line, sizeof line);
        /* Then what each thread's affinity really is, read back by the
         * thread itself once pinned (wait for every thread's start). */
        double until = mpm__now() + 10;
        while (__atomic_load_n(&e.inits, __ATOMIC_ACQUIRE) < e.pl.nthreads && mpm__now() < until)
            sched_yield();
        size_t o = strlen(line);
        o += (size_t)snprintf(line + o, sizeof line - o, "; pid %ld, affinity read back:", (long)getpid());
        for (int t = 0; t < e.pl.nthreads && o < sizeof line; t++)
            o += (size_t)snprintf(line + o, sizeof line - o, "%s thread %d (tid %ld) PUs %s",
                                  t ? "," : "", t, e.tids[t], e.affinity[t]);
        char *all = e.rank == 0 ? malloc((size_t)e.size * sizeof line) : NULL;
        mpi_check(MPI_Gather(line, sizeof line, MPI_CHAR, all, sizeof line, MPI_CHAR, 0, comm),
                  "MPI_Gather");
        if (e.rank == 0 && all)
            for (int r = 0; r < e.size; r++) fprintf(stderr, "mpimap: bindings: %s\n", all + (size_t)r * sizeof line);
        free(all);
    }

    double clock_off = 0, origin = 0;
    if (all_ok && cfg->trace) {
        /* Align the ranks' clocks: 0 on the timeline is rank 0's start. */
        clock_off = clock_offset(&e);
        origin = e.obs->t0;
        mpi_check(MPI_Bcast(&origin, 1, MPI_DOUBLE, 0, comm), "MPI_Bcast");
        origin += clock_off;
    }
    if (!all_ok) {
        rc = MPM_EXIT_FAIL;
    } else if (e.rank == 0) {
        MPM_LOG(MPM_LOG_DEBUG, "window per rank: %d (rank 0), io %s, chunk size %llu", windows[0],
                e.io == MPM_IO_SHARED ? "shared" : "master", (unsigned long long)e.chunk_size);
        rc = run_master(&e, windows, t_start);
    } else {
        rc = run_worker(&e);
    }
    if (all_ok && e.obs) rc = obs_report(&e, rc, t_start, clock_off, origin, windows);
    free(windows);

    if (e.pool) mpm__pool_stop(e.pool);
    if (e.partials) {
        for (int t = 0; t < e.pl.nthreads; t++)
            if (e.partials[t]) k->partial_free(e.partials[t]);
        free(e.partials);
    }
    if (e.segs) {
        for (int t = 0; t < e.pl.nthreads; t++)
            if (e.segs[t].p) k->partial_free(e.segs[t].p);
        free(e.segs);
    }
    if (e.fds) {
        for (int i = 0; i < inputs->n; i++)
            if (e.fds[i] >= 0) close(e.fds[i]);
        free(e.fds);
    }
    mpm__topo_set_run(NULL, NULL);
    if (e.pl.cpusets) mpm__topo_free(&e.pl);
    if (topo_ok) hwloc_topology_destroy(e.topo);
    if (e.journal) mpm__journal_close(e.journal, &(mpm_err_t){.offset = -1});
    free(e.affinity);
    free(e.tids);
    mpm__obs_free(e.obs);
    mpm_buf_free(&e.kmetrics);
    mpi_check(MPI_Bcast(&rc, 1, MPI_INT, 0, comm), "MPI_Bcast");
    mpm__sig_run_end();
    return rc;
}
