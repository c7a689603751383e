/*
 * engine.c - distributes chunks over ranks and threads, collects results.
 *
 * DESIGN. Every rank runs one main thread (the only one that calls MPI,
 * MPI_THREAD_FUNNELED) and a pool of compute threads (pool.h) pinned inside
 * the rank's cpuset (topo.h). Rank 0 is the master and computes too.
 *
 *   master main thread                      worker main thread
 *   ------------------                      ------------------
 *   splitter -> next chunk                   Iprobe(CHUNK) -> Recv -> pool
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
 * Errors: a chunk whose map() fails is reported in its result; the master
 * stops dispatching, drains what is in flight, and reports the error of the
 * lowest failing chunk index (the same for any -np/--threads). Every rank
 * returns the exit code broadcast by rank 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mpimap/mpimap.h"
#include "output.h"
#include "pool.h"
#include "split.h"
#include "topo.h"
#include "util.h"

enum { TAG_CHUNK = 101, TAG_RESULT = 102, TAG_STOP = 103, TAG_PARTIAL = 104, TAG_DATA = 105 };

/* Room reserved in front of chunk bytes and of result rows for the header. */
#define CHUNK_HDR 64
#define RESULT_HDR 64
#define SPIN_POLLS 200
#define MAX_SLEEP 0.002
#define MAX_HELD ((uint64_t)256 << 20) /* bytes of rows held for reordering */

typedef struct result_hdr_s {
    uint64_t index;
    int32_t input;
    int32_t status; /* 0 ok, -1 kernel error, -2 engine error (out of memory, I/O) */
    int64_t err_offset; /* absolute byte offset in the input, or -1 */
    uint64_t out_len;  /* rows (or error text when status != 0) */
} result_hdr_t;

_Static_assert(sizeof(mpm_chunk_desc_t) <= CHUNK_HDR, "chunk header too large");
_Static_assert(sizeof(result_hdr_t) <= RESULT_HDR, "result header too large");

typedef struct engine_s engine_t;

typedef struct job_s {
    mpm_task_t task; /* first member: the pool hands back &job->task */
    engine_t *e;
    mpm_chunk_desc_t d;
    char *buf; /* CHUNK_HDR bytes then the chunk data (when present) */
    const char *data; /* set when the bytes are in rank 0's mapping: release when done */
    mpm_buf_t out; /* RESULT_HDR bytes then rows or error text */
    int status;
    int64_t err_offset;
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

    hwloc_topology_t topo;
    mpm_placement_t pl;
    mpm_pool_t *pool;
    void **partials; /* one per pool thread */
    int *fds;        /* shared I/O: input descriptors opened on first use */
};

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
    if (mpm__topo_bind_thread(e->topo, &e->pl, i) < 0)
        MPM_LOG(MPM_LOG_WARN, "cannot pin pool thread %d: %s", i, strerror(errno));
}

static int input_fd(engine_t *e, int i, mpm_err_t *err)
{
    if (e->fds[i] >= 0) return e->fds[i];
    int fd = open(e->in->v[i].name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mpm_err_set(err, -1, "cannot open '%s': %s", e->in->v[i].name, strerror(errno));
    e->fds[i] = fd;
    return fd;
}

/* Runs on a pool thread: read the bytes if needed, then map the chunk. */
static void job_work(mpm_task_t *t, int tid)
{
    job_t *j = (job_t *)t;
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
                j->status = -2;
                goto fail;
            }
            j->buf = nb;
            size_t got = 0;
            while (got < j->d.len) {
                ssize_t r = pread(e->fds[j->d.input], j->buf + CHUNK_HDR + got,
                                  (size_t)j->d.len - got, (off_t)(j->d.offset + got));
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0) {
                    mpm_err_set(&err, -1, "cannot read '%s' at byte %llu: %s", in->name,
                                (unsigned long long)(j->d.offset + got),
                                r < 0 ? strerror(errno) : "file shrank during the run");
                    j->status = -2;
                    goto fail;
                }
                got += (size_t)r;
            }
        }
        c.data = j->data ? j->data : j->buf + CHUNK_HDR;
    }
    if (e->k->map(e->opts, &c, e->partials ? e->partials[tid] : NULL, (mpm_format_t)e->cfg->format,
                  &j->out, &err) < 0) {
        j->status = -1;
        goto fail;
    }
    return;
fail:
    j->err_offset = err.offset >= 0 && in->kind != MPM_IN_RANGE ? (int64_t)j->d.offset + err.offset
                                                                 : err.offset;
    j->out.len = RESULT_HDR;
    mpm_buf_append(&j->out, err.msg, strlen(err.msg));
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
            j->status = -2;
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

/* Fills the header in front of the rows. */
static void job_seal(job_t *j)
{
    result_hdr_t h = {.index = j->d.index,
                      .input = j->d.input,
                      .status = j->status,
                      .err_offset = j->err_offset,
                      .out_len = j->out.len - RESULT_HDR};
    memcpy(j->out.data, &h, sizeof h);
}

/* ---- master -------------------------------------------------------------- */

typedef struct slot_s {
    char *buf; /* RESULT_HDR + rows; NULL when empty */
    size_t len;
    int present;
} slot_t;

typedef struct pending_s {
    MPI_Request req;
    char *buf;
    int release; /* input whose mapping this send reads, or -1 */
} pending_t;

typedef struct master_s {
    engine_t *e;
    mpm_splitter_t *split;
    mpm_out_t out;
    int *inflight, *window;
    int rr; /* round-robin cursor for choosing a rank */
    slot_t *ring;
    uint64_t ring_cap, next_write, dispatched;
    uint64_t held_bytes; /* rows waiting in the ring for an earlier chunk */
    int have_next, split_done, stop;
    mpm_chunk_desc_t next_d;
    char *next_buf;
    const char *next_data; /* the bytes: in next_buf, or in a mapping when next_buf is NULL */
    pending_t *sends;
    int nsends, cap_sends;
    /* the error to report: lowest failing chunk */
    int failed;
    uint64_t err_index;
    int err_input;
    int64_t err_offset;
    char err_msg[640];
    uint64_t chunks_done;
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

static void master_record_error(master_t *m, uint64_t index, int input, int64_t off,
                                const char *msg, size_t len)
{
    m->stop = 1;
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
    const mpm_input_t *in =
        m->err_input >= 0 && m->err_input < m->e->in->n ? &m->e->in->v[m->err_input] : NULL;
    if (!in || m->err_offset < 0) {
        MPM_LOG(MPM_LOG_ERROR, "%s", m->err_msg);
        return;
    }
    if (in->kind == MPM_IN_FILE) {
        uint64_t line = line_of(in->name, (uint64_t)m->err_offset);
        if (line)
            MPM_LOG(MPM_LOG_ERROR, "%s:%llu: %s", in->name, (unsigned long long)line, m->err_msg);
        else
            MPM_LOG(MPM_LOG_ERROR, "%s: byte %lld: %s", in->name, (long long)m->err_offset,
                    m->err_msg);
    } else if (in->kind == MPM_IN_MEMORY) {
        uint64_t item = 1;
        for (int64_t i = 0; i < m->err_offset && (size_t)i < in->len; i++)
            if (in->data[i] == '\n') item++;
        MPM_LOG(MPM_LOG_ERROR, "%s, item %llu: %s", in->name, (unsigned long long)item, m->err_msg);
    } else if (in->kind == MPM_IN_STDIN) {
        MPM_LOG(MPM_LOG_ERROR, "standard input: byte %lld: %s", (long long)m->err_offset,
                m->err_msg);
    } else {
        MPM_LOG(MPM_LOG_ERROR, "%s", m->err_msg);
    }
}

static void master_write_ready(master_t *m)
{
    for (;;) {
        slot_t *s = &m->ring[m->next_write % m->ring_cap];
        if (!s->present) return;
        /* Rows before the first failing chunk are written even after a
         * failure (the failed chunk's slot never fills, so nothing after it
         * is): standard output then holds exactly the rows before the error. */
        if (!m->out.failed && s->len > RESULT_HDR &&
            mpm__out_rows(&m->out, s->buf + RESULT_HDR, s->len - RESULT_HDR) < 0) {
            master_record_error(m, m->next_write, -1, -1, m->out.err, strlen(m->out.err));
        }
        free(s->buf);
        m->held_bytes -= s->len;
        s->buf = NULL;
        s->present = 0;
        m->next_write++;
    }
}

/* Takes ownership of buf (a result message: header + rows). */
static void master_result(master_t *m, int src, char *buf, size_t len)
{
    result_hdr_t h;
    memcpy(&h, buf, sizeof h);
    m->inflight[src]--;
    m->chunks_done++;
    if (h.status != 0) {
        master_record_error(m, h.index, h.input, h.err_offset, buf + RESULT_HDR,
                            (size_t)h.out_len);
        free(buf);
        return; /* the slot stays empty: nothing at or after it is written */
    }
    slot_t *s = &m->ring[h.index % m->ring_cap];
    s->buf = buf;
    s->len = len;
    s->present = 1;
    m->held_bytes += len;
    master_write_ready(m);
}

/* Makes room for n more pending sends; 0 or -1. */
static int master_reserve_sends(master_t *m, int n)
{
    if (m->nsends + n <= m->cap_sends) return 0;
    int cap = m->cap_sends ? 2 * m->cap_sends : 64;
    pending_t *p = realloc(m->sends, (size_t)cap * sizeof *p);
    if (!p) return -1;
    m->sends = p;
    m->cap_sends = cap;
    return 0;
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
        master_isend(m, buf, n, dst, TAG_CHUNK, buf, -1);
        if (mapped) master_isend(m, mapped, (size_t)d->len, dst, TAG_DATA, NULL, d->input);
    }
    m->inflight[dst]++;
    m->dispatched++;
    m->have_next = 0;
    m->next_buf = NULL;
    m->next_data = NULL;
    return 0;
}

/* Fills every window it can. Returns 1 if something was dispatched. */
static int master_dispatch(master_t *m)
{
    engine_t *e = m->e;
    int progress = 0;
    while (!m->stop) {
        if (!m->have_next) {
            if (m->split_done) break;
            mpm_err_t err = {.offset = -1, .msg = ""};
            int r = mpm__split_next_ref(m->split, &m->next_d, &m->next_buf, &m->next_data, &err);
            if (r < 0) {
                master_record_error(m, m->dispatched, -1, -1, err.msg, strlen(err.msg));
                break;
            }
            if (r == 0) {
                m->split_done = 1;
                if (!e->cfg->allow_empty && mpm__split_empty_stdin(m->split)) {
                    const char *msg =
                        "standard input is empty (0 bytes); pass --allow-empty to accept it";
                    master_record_error(m, m->dispatched, -1, -1, msg, strlen(msg));
                }
                break;
            }
            m->have_next = 1;
        }
        /* Reorder backpressure: the chunk at next_write is in flight; results
         * after it wait in the ring, bounded in count and in bytes. */
        if (m->next_d.index - m->next_write >= m->ring_cap || m->held_bytes > MAX_HELD) break;
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

static int master_poll(master_t *m, double wait_s)
{
    engine_t *e = m->e;
    int progress = 0;
    mpm_task_t *t = mpm__pool_take_done(e->pool, wait_s);
    while (t) {
        mpm_task_t *next = t->next;
        job_t *j = (job_t *)t;
        job_seal(j);
        if (j->data) mpm__split_release(m->split, j->d.input);
        char *buf = j->out.data;
        size_t len = j->out.len;
        j->out.data = NULL;
        j->out.len = j->out.cap = 0;
        job_free(j);
        master_result(m, 0, buf, len);
        progress = 1;
        t = next;
    }
    for (;;) {
        int flag = 0;
        MPI_Status st;
        mpi_check(MPI_Iprobe(MPI_ANY_SOURCE, TAG_RESULT, e->comm, &flag, &st), "MPI_Iprobe");
        if (!flag) break;
        int count = 0;
        MPI_Get_count(&st, MPI_BYTE, &count);
        char *buf = malloc((size_t)count);
        if (!buf) {
            MPM_LOG(MPM_LOG_ERROR, "out of memory receiving a result of %d bytes", count);
            MPI_Abort(e->comm, MPM_EXIT_FAIL);
        }
        mpi_check(MPI_Recv(buf, count, MPI_BYTE, st.MPI_SOURCE, TAG_RESULT, e->comm,
                           MPI_STATUS_IGNORE),
                  "MPI_Recv");
        master_result(m, st.MPI_SOURCE, buf, (size_t)count);
        progress = 1;
    }
    /* Free the buffers of chunk sends that completed. */
    for (int i = 0; i < m->nsends;) {
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
    if (!m.inflight || !m.window || !m.ring) {
        MPM_LOG(MPM_LOG_ERROR, "out of memory");
        m.failed = 1;
        m.stop = 1;
    } else {
        memcpy(m.window, windows, (size_t)e->size * sizeof *windows);
    }
    mpm_err_t err = {.offset = -1, .msg = ""};
    if (!m.failed) {
        if (mpm__out_open(&m.out, e->cfg->output, (mpm_format_t)e->cfg->format, e->k->columns(e->opts)) <
            0) {
            MPM_LOG(MPM_LOG_ERROR, "%s", m.out.err);
            m.failed = 1;
            m.stop = 1;
            m.err_msg[0] = 0;
        } else if (mpm__split_open(&m.split, e->in->v, e->in->n, e->chunk_size, e->k->records,
                                   e->io == MPM_IO_MASTER, CHUNK_HDR, &err) < 0) {
            master_record_error(&m, 0, -1, -1, err.msg, strlen(err.msg));
        }
    }

    int idle = 0;
    while (!(m.split_done || m.stop) || !all_idle(&m)) {
        int progress = master_dispatch(&m);
        double wait = 0;
        if (idle > SPIN_POLLS) {
            wait = 50e-6 * (idle - SPIN_POLLS);
            if (wait > MAX_SLEEP) wait = MAX_SLEEP;
        }
        progress |= master_poll(&m, wait);
        idle = progress ? 0 : idle + 1;
        /* Hand the core to a pool thread sharing it (mpirun binds a rank to
         * one core): cheap when nobody else wants it. */
        if (!progress && idle <= SPIN_POLLS) sched_yield();
    }
    free(m.next_buf);
    if (m.nsends) {
        for (int i = 0; i < m.nsends; i++) {
            mpi_check(MPI_Wait(&m.sends[i].req, MPI_STATUS_IGNORE), "MPI_Wait");
            free(m.sends[i].buf);
        }
    }

    /* Stop the workers; gather their partials in rank order. */
    int stop_status = m.failed ? 1 : 0;
    for (int r = 1; r < e->size; r++)
        mpi_check(MPI_Send(&stop_status, 1, MPI_INT, r, TAG_STOP, e->comm), "MPI_Send");
    if (e->partials && !m.failed) {
        if (merge_local(e, &err) < 0) master_record_error(&m, UINT64_MAX, -1, -1, err.msg, strlen(err.msg));
        for (int r = 1; r < e->size; r++) {
            MPI_Status st;
            int count = 0;
            mpi_check(MPI_Probe(r, TAG_PARTIAL, e->comm, &st), "MPI_Probe");
            MPI_Get_count(&st, MPI_BYTE, &count);
            char *buf = malloc(count ? (size_t)count : 1);
            if (!buf) MPI_Abort(e->comm, MPM_EXIT_FAIL);
            mpi_check(MPI_Recv(buf, count, MPI_BYTE, r, TAG_PARTIAL, e->comm, MPI_STATUS_IGNORE),
                      "MPI_Recv");
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
            mpm_buf_t fin = {0};
            if (e->k->finish(e->opts, e->partials[0], (mpm_format_t)e->cfg->format, &fin, &err) < 0)
                master_record_error(&m, UINT64_MAX, -1, -1, err.msg, strlen(err.msg));
            else if (mpm__out_rows(&m.out, fin.data, fin.len) < 0)
                master_record_error(&m, UINT64_MAX, -1, -1, m.out.err, strlen(m.out.err));
            mpm_buf_free(&fin);
        }
    }
    int rc = MPM_EXIT_OK;
    if (!m.failed && m.split) {
        if (mpm__out_commit(&m.out) < 0) {
            MPM_LOG(MPM_LOG_ERROR, "%s", m.out.err);
            rc = MPM_EXIT_FAIL;
        }
    } else {
        if (m.err_msg[0]) master_report_error(&m);
        mpm__out_abort(&m.out);
        rc = MPM_EXIT_FAIL;
    }
    double el = mpm__now() - t_start;
    if (rc == MPM_EXIT_OK) {
        uint64_t bytes = m.split ? mpm__split_bytes(m.split) : 0;
        MPM_LOG(MPM_LOG_INFO,
                "%s: %llu chunks, %llu %s in %.3f s (%.1f MB/s), %d rank%s, chunk size %llu, %s I/O",
                e->k->name, (unsigned long long)m.chunks_done, (unsigned long long)bytes,
                e->in->n && e->in->v[0].kind == MPM_IN_RANGE ? "integers" : "bytes", el,
                el > 0 ? (double)bytes / el / 1e6 : 0.0, e->size, e->size == 1 ? "" : "s",
                (unsigned long long)e->chunk_size, e->io == MPM_IO_SHARED ? "shared" : "master");
    }
    for (uint64_t i = 0; m.ring && i < m.ring_cap; i++) free(m.ring[i].buf);
    free(m.ring);
    free(m.sends);
    free(m.inflight);
    free(m.window);
    mpm__split_close(m.split);
    return rc;
}

/* ---- worker -------------------------------------------------------------- */

static int run_worker(engine_t *e)
{
    int stopping = 0, stop_status = 0;
    job_t **sends = NULL;
    int nsends = 0, cap_sends = 0;
    int idle = 0;
    for (;;) {
        int progress = 0;
        while (!stopping) {
            int flag = 0;
            MPI_Status st;
            mpi_check(MPI_Iprobe(0, MPI_ANY_TAG, e->comm, &flag, &st), "MPI_Iprobe");
            if (!flag) break;
            progress = 1;
            if (st.MPI_TAG == TAG_STOP) {
                mpi_check(MPI_Recv(&stop_status, 1, MPI_INT, 0, TAG_STOP, e->comm,
                                   MPI_STATUS_IGNORE),
                          "MPI_Recv");
                stopping = 1;
                break;
            }
            int count = 0;
            MPI_Get_count(&st, MPI_BYTE, &count);
            char *buf = malloc((size_t)count);
            if (!buf) {
                MPM_LOG(MPM_LOG_ERROR, "out of memory receiving a chunk of %d bytes", count);
                MPI_Abort(e->comm, MPM_EXIT_FAIL);
            }
            mpi_check(MPI_Recv(buf, count, MPI_BYTE, 0, st.MPI_TAG, e->comm, MPI_STATUS_IGNORE),
                      "MPI_Recv");
            mpm_chunk_desc_t d;
            memcpy(&d, buf, sizeof d);
            if (d.has_data == MPM_DATA_SEPARATE) {
                /* The bytes follow as the next message from rank 0. */
                char *nb = realloc(buf, CHUNK_HDR + (size_t)d.len);
                if (!nb) {
                    MPM_LOG(MPM_LOG_ERROR, "out of memory receiving a chunk of %llu bytes",
                            (unsigned long long)d.len);
                    MPI_Abort(e->comm, MPM_EXIT_FAIL);
                }
                buf = nb;
                mpi_check(MPI_Recv(buf + CHUNK_HDR, (int)d.len, MPI_BYTE, 0, TAG_DATA, e->comm,
                                   MPI_STATUS_IGNORE),
                          "MPI_Recv");
                d.has_data = MPM_DATA_INLINE;
            }
            job_t *j = job_new(e, &d, buf);
            if (!j) {
                MPM_LOG(MPM_LOG_ERROR, "out of memory");
                MPI_Abort(e->comm, MPM_EXIT_FAIL);
            }
            mpm__pool_submit(e->pool, &j->task);
        }
        double wait = 0;
        if (idle > SPIN_POLLS) {
            wait = 50e-6 * (idle - SPIN_POLLS);
            if (wait > MAX_SLEEP) wait = MAX_SLEEP;
        }
        mpm_task_t *t = mpm__pool_take_done(e->pool, wait);
        while (t) {
            mpm_task_t *next = t->next;
            job_t *j = (job_t *)t;
            job_seal(j);
            free(j->buf);
            j->buf = NULL;
            if (nsends == cap_sends) {
                cap_sends = cap_sends ? 2 * cap_sends : 64;
                job_t **p = realloc(sends, (size_t)cap_sends * sizeof *p);
                if (!p) MPI_Abort(e->comm, MPM_EXIT_FAIL);
                sends = p;
            }
            sends[nsends++] = j;
            if (j->out.len > INT_MAX) {
                j->status = -2;
                j->out.len = RESULT_HDR;
                mpm_buf_printf(&j->out, "the rows of chunk %llu exceed 2 GiB",
                               (unsigned long long)j->d.index);
                job_seal(j);
            }
            mpi_check(MPI_Isend(j->out.data, (int)j->out.len, MPI_BYTE, 0, TAG_RESULT, e->comm,
                                &j->req),
                      "MPI_Isend");
            progress = 1;
            t = next;
        }
        for (int i = 0; i < nsends;) {
            int done = 0;
            mpi_check(MPI_Test(&sends[i]->req, &done, MPI_STATUS_IGNORE), "MPI_Test");
            if (done) {
                job_free(sends[i]);
                sends[i] = sends[--nsends];
                progress = 1;
            } else {
                i++;
            }
        }
        if (stopping && nsends == 0 && mpm__pool_pending(e->pool) == 0) break;
        idle = progress ? 0 : idle + 1;
        if (!progress && idle <= SPIN_POLLS) sched_yield();
    }
    free(sends);
    if (stop_status == 0 && e->partials) {
        mpm_err_t err = {.offset = -1, .msg = ""};
        mpm_buf_t b = {0};
        if (merge_local(e, &err) < 0 || e->k->serialize(e->opts, e->partials[0], &b) < 0 ||
            b.len > INT_MAX) {
            MPM_LOG(MPM_LOG_ERROR, "cannot serialise the partial result: %s",
                    err.msg[0] ? err.msg : "out of memory or larger than 2 GiB");
            MPI_Abort(e->comm, MPM_EXIT_FAIL);
        }
        mpi_check(MPI_Send(b.data, (int)b.len, MPI_BYTE, 0, TAG_PARTIAL, e->comm), "MPI_Send");
        mpm_buf_free(&b);
    }
    return MPM_EXIT_OK;
}

/* ---- set-up shared by all ranks ------------------------------------------- */

/* Rank 0 checks inputs and output before anything runs. Returns an exit code. */
static int precheck(const mpm_config_t *cfg, const mpm_inputs_t *in)
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
        int fd = open(x->name, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            MPM_LOG(MPM_LOG_ERROR, "cannot open input '%s': %s", x->name, strerror(errno));
            return MPM_EXIT_FAIL;
        }
        close(fd);
        if (S_ISREG(st.st_mode) && st.st_size == 0 && !cfg->allow_empty) {
            MPM_LOG(MPM_LOG_ERROR, "input '%s' is empty (0 bytes); pass --allow-empty to accept it",
                    x->name);
            return MPM_EXIT_FAIL;
        }
    }
    if (cfg->output && strcmp(cfg->output, "-")) {
        if (out_exists && S_ISDIR(ost.st_mode)) {
            MPM_LOG(MPM_LOG_ERROR, "output '%s' is a directory", cfg->output);
            return MPM_EXIT_FAIL;
        }
        char *d = strdup(cfg->output);
        if (!d) return MPM_EXIT_FAIL;
        char *slash = strrchr(d, '/');
        const char *dir = ".";
        if (slash) {
            if (slash == d) slash[1] = 0;
            else *slash = 0;
            dir = d;
        }
        struct stat dst;
        int ok = stat(dir, &dst) == 0 && S_ISDIR(dst.st_mode);
        if (!ok) {
            MPM_LOG(MPM_LOG_ERROR, "cannot write output '%s': directory '%s' does not exist",
                    cfg->output, dir);
            free(d);
            return MPM_EXIT_FAIL;
        }
        if (access(dir, W_OK | X_OK) < 0) {
            MPM_LOG(MPM_LOG_ERROR, "cannot write output '%s': directory '%s': %s", cfg->output,
                    dir, strerror(errno));
            free(d);
            return MPM_EXIT_FAIL;
        }
        free(d);
    }
    return MPM_EXIT_OK;
}

/* Decides --io auto: shared when every rank sees every file input with the
 * same size and mtime as rank 0. Collective. */
static int resolve_io(engine_t *e)
{
    int has_file = 0;
    for (int i = 0; i < e->in->n; i++) has_file |= e->in->v[i].kind == MPM_IN_FILE;
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
    mpm__log_rank = e.rank;
    e.chunk_size = cfg->chunk_size ? cfg->chunk_size : k->default_chunk_size;
    if (!e.chunk_size) e.chunk_size = 1 << 20;

    int rc = e.rank == 0 ? precheck(cfg, inputs) : 0;
    mpi_check(MPI_Bcast(&rc, 1, MPI_INT, 0, comm), "MPI_Bcast");
    if (rc) return rc;

    int io = resolve_io(&e);
    int ok = io >= 0, all_ok = 0;
    mpi_check(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, comm), "MPI_Allreduce");
    if (!all_ok) {
        if (e.rank == 0 && ok)
            MPM_LOG(MPM_LOG_ERROR, "--io shared: some ranks cannot read the inputs (see above)");
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
    hwloc_bitmap_free(allowed);
    if (ok && k->partial_new) {
        e.partials = calloc((size_t)e.pl.nthreads, sizeof *e.partials);
        for (int t = 0; e.partials && t < e.pl.nthreads; t++)
            if (!(e.partials[t] = k->partial_new(opts))) ok = 0;
        if (!e.partials || !ok) snprintf(msg, sizeof msg, "out of memory for partial results");
        if (!e.partials) ok = 0;
    }
    if (ok) {
        e.fds = malloc((size_t)(inputs->n ? inputs->n : 1) * sizeof *e.fds);
        if (!e.fds) ok = 0;
        for (int i = 0; e.fds && i < inputs->n; i++) e.fds[i] = -1;
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
        char *all = e.rank == 0 ? malloc((size_t)e.size * sizeof line) : NULL;
        mpi_check(MPI_Gather(line, sizeof line, MPI_CHAR, all, sizeof line, MPI_CHAR, 0, comm),
                  "MPI_Gather");
        if (e.rank == 0 && all)
            for (int r = 0; r < e.size; r++) fprintf(stderr, "mpimap: bindings: %s\n", all + (size_t)r * sizeof line);
        free(all);
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
    free(windows);

    if (e.pool) mpm__pool_stop(e.pool);
    if (e.partials) {
        for (int t = 0; t < e.pl.nthreads; t++)
            if (e.partials[t]) k->partial_free(e.partials[t]);
        free(e.partials);
    }
    if (e.fds) {
        for (int i = 0; i < inputs->n; i++)
            if (e.fds[i] >= 0) close(e.fds[i]);
        free(e.fds);
    }
    if (e.pl.cpusets) mpm__topo_free(&e.pl);
    if (topo_ok) hwloc_topology_destroy(e.topo);
    mpi_check(MPI_Bcast(&rc, 1, MPI_INT, 0, comm), "MPI_Bcast");
    return rc;
}
