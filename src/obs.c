/*
 * obs.c - counters and spans of a run (see obs.h for the design).
 */
#include "obs.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "util.h"

#define IDLE_MERGE 50e-6 /* idle spans closer than this are merged */
#define IDLE_MIN 20e-6   /* shorter gaps between chunks are not drawn */

static const char *const kind_names[MPM_SP_KINDS] = {"receive", "compute", "read",
                                                     "send",    "write",   "idle"};

int mpm__obs_new(mpm_obs_t **op, int nthreads, int trace, long long trace_max, double t0)
{
    mpm_obs_t *o = calloc(1, sizeof *o);
    if (!o) return -1;
    o->th = calloc((size_t)nthreads + 1, sizeof *o->th);
    if (!o->th) {
        free(o);
        return -1;
    }
    o->nthreads = nthreads;
    o->trace = trace;
    o->trace_max = trace_max > 0 ? (size_t)trace_max : 1;
    o->t0 = t0;
    for (int t = 0; t <= nthreads; t++) o->th[t].last_end = t0;
    pthread_mutex_init(&o->mu, NULL);
    *op = o;
    return 0;
}

void mpm__obs_free(mpm_obs_t *o)
{
    if (!o) return;
    for (int t = 0; t <= o->nthreads; t++) free(o->th[t].spans);
    free(o->th);
    pthread_mutex_destroy(&o->mu);
    free(o);
}

void mpm__obs_span(mpm_obs_t *o, int t, int kind, double a, double b, int64_t chunk,
                   uint64_t bytes)
{
    if (!o->trace) return;
    mpm_tstat_t *s = &o->th[t];
    if (kind == MPM_SP_IDLE && s->nspans) {
        mpm_span_t *last = &s->spans[s->nspans - 1];
        if (last->kind == MPM_SP_IDLE && a - last->b < IDLE_MERGE) {
            last->b = b;
            return;
        }
    }
    if (s->nspans >= o->trace_max || mpm__grow(&s->spans, &s->cap, s->nspans + 1, sizeof *s->spans) < 0) {
        s->dropped++;
        return;
    }
    s->spans[s->nspans++] = (mpm_span_t){.a = a, .b = b, .chunk = chunk, .bytes = bytes, .kind = kind};
}

/* Under o->mu: the time of an event of the busy clock, made monotonic (a
 * thread may read the clock just before another one that takes the lock
 * first); the error is the few microseconds between the two. */
static double mono(mpm_obs_t *o, double now)
{
    if (now < o->busy_last) return o->busy_last;
    return o->busy_last = now;
}

void mpm__obs_task_begin(mpm_obs_t *o, int t, double now)
{
    mpm_tstat_t *s = &o->th[t];
    double gap = now - s->last_end;
    if (gap > 0) {
        s->idle_s += gap;
        if (gap >= IDLE_MIN) mpm__obs_span(o, t, MPM_SP_IDLE, s->last_end, now, -1, 0);
    }
    pthread_mutex_lock(&o->mu);
    now = mono(o, now);
    if (o->nbusy++ == 0) o->busy_since = now;
    pthread_mutex_unlock(&o->mu);
}

void mpm__obs_task_end(mpm_obs_t *o, int t, double now)
{
    o->th[t].last_end = now;
    pthread_mutex_lock(&o->mu);
    now = mono(o, now);
    if (--o->nbusy == 0) o->busy_acc += now - o->busy_since;
    pthread_mutex_unlock(&o->mu);
}

double mpm__obs_busy(mpm_obs_t *o, double now)
{
    pthread_mutex_lock(&o->mu);
    now = mono(o, now);
    double v = o->busy_acc + (o->nbusy ? now - o->busy_since : 0);
    pthread_mutex_unlock(&o->mu);
    return v;
}

void mpm__obs_transfer(mpm_obs_t *o, int kind, double a, double b, double busy_a, int64_t chunk,
                       uint64_t bytes)
{
    mpm_tstat_t *s = &o->th[o->nthreads];
    double d = b - a, hidden = mpm__obs_busy(o, b) - busy_a;
    if (hidden > d) hidden = d; /* the clocks were read a little apart */
    if (hidden < 0) hidden = 0;
    s->transfer_s += d;
    s->hidden_s += hidden;
    if (kind == MPM_SP_RECV) {
        s->recv_s += d;
        s->msgs_in++;
        s->bytes_recv += bytes;
    } else {
        s->send_s += d;
        if (bytes) {
            s->msgs_out++;
            s->bytes_sent += bytes;
        }
    }
    if (bytes) mpm__obs_span(o, o->nthreads, kind, a, b, chunk, bytes);
}

void mpm__obs_close(mpm_obs_t *o, double end)
{
    for (int t = 0; t < o->nthreads; t++) {
        mpm_tstat_t *s = &o->th[t];
        if (end > s->last_end) {
            s->idle_s += end - s->last_end;
            if (end - s->last_end >= IDLE_MIN)
                mpm__obs_span(o, t, MPM_SP_IDLE, s->last_end, end, -1, 0);
            s->last_end = end;
        }
    }
}

void mpm__obs_sums(const mpm_obs_t *o, double v[MPM_OS_N])
{
    memset(v, 0, MPM_OS_N * sizeof *v);
    for (int t = 0; t < o->nthreads; t++) {
        const mpm_tstat_t *s = &o->th[t];
        v[MPM_OS_CHUNKS] += (double)s->chunks;
        v[MPM_OS_FAILED] += (double)s->failed;
        v[MPM_OS_BYTES_IN] += (double)s->bytes_in;
        v[MPM_OS_BYTES_OUT] += (double)s->bytes_out;
        v[MPM_OS_COMPUTE] += s->compute_s;
        v[MPM_OS_READ] += s->read_s;
        v[MPM_OS_IDLE] += s->idle_s;
        v[MPM_OS_THREAD_TIME] += s->compute_s + s->read_s + s->idle_s;
    }
    for (int t = 0; t <= o->nthreads; t++) v[MPM_OS_DROPPED] += (double)o->th[t].dropped;
    const mpm_tstat_t *m = &o->th[o->nthreads];
    v[MPM_OS_MPI] = m->recv_s + m->send_s + m->poll_s;
    v[MPM_OS_WRITE] = m->write_s;
    v[MPM_OS_TRANSFER] = m->transfer_s;
    v[MPM_OS_HIDDEN] = m->hidden_s;
}

static double ratio(double a, double b) { return b > 0 ? a / b : 0; }

/* This process's peak resident set size so far (getrusage), in bytes. */
static long long peak_rss(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (long long)ru.ru_maxrss * 1024 : -1;
}

/* This process's peak address-space size so far (VmPeak in /proc/self/status:
 * what `ulimit -v` limits), in bytes; -1 where /proc is not there. */
static long long peak_vm(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f) return -1;
    char line[256];
    long long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmPeak: %lld kB", &kb) == 1) break;
    fclose(f);
    return kb >= 0 ? kb * 1024 : -1;
}

int mpm__obs_rank_json(const mpm_obs_t *o, const mpm_obs_rank_t *r, mpm_buf_t *b)
{
    double v[MPM_OS_N];
    mpm__obs_sums(o, v);
    const mpm_tstat_t *m = &o->th[o->nthreads];
    int bad = mpm_buf_printf(b, "{\"rank\": %d, \"host\": ", r->rank) < 0 ||
              mpm__json_string(b, r->host, strlen(r->host)) ||
              mpm_buf_printf(b, ", \"pid\": %ld, \"cpuset\": ", r->pid) < 0 ||
              mpm__json_string(b, r->cpuset, strlen(r->cpuset)) ||
              mpm_buf_printf(b,
                             ", \"threads_pinned\": %s, \"clock_offset_s\": %.9f, "
                             "\"elapsed_s\": %.6f,\n     \"chunks\": %.0f, \"failed\": %.0f, "
                             "\"bytes_in\": %.0f, \"bytes_out\": %.0f, \"compute_s\": %.6f, "
                             "\"read_s\": %.6f, \"idle_s\": %.6f, \"overlap_ratio\": %.4f, "
                             "\"peak_rss_bytes\": %lld, \"peak_vm_bytes\": %lld,\n",
                             r->bound ? "true" : "false", r->clock_offset, r->elapsed,
                             v[MPM_OS_CHUNKS], v[MPM_OS_FAILED], v[MPM_OS_BYTES_IN],
                             v[MPM_OS_BYTES_OUT], v[MPM_OS_COMPUTE], v[MPM_OS_READ],
                             v[MPM_OS_IDLE], ratio(m->hidden_s, m->transfer_s),
                             peak_rss(), peak_vm()) < 0;
    if (!bad)
        bad = mpm_buf_printf(
                  b,
                  "     \"main\": {\"mpi_s\": %.6f, \"recv_s\": %.6f, \"send_s\": %.6f, "
                  "\"poll_s\": %.6f, \"transfer_s\": %.6f, \"hidden_s\": %.6f, \"wait_output_s\": "
                  "%.6f, \"read_input_s\": %.6f, \"idle_s\": %.6f, \"messages_in\": %llu, "
                  "\"messages_out\": %llu, \"bytes_received\": %llu, \"bytes_sent\": %llu},\n"
                  "     \"threads\": [",
                  v[MPM_OS_MPI], m->recv_s, m->send_s, m->poll_s, m->transfer_s, m->hidden_s,
                  m->write_s, m->split_s, m->wait_s, (unsigned long long)m->msgs_in,
                  (unsigned long long)m->msgs_out, (unsigned long long)m->bytes_recv,
                  (unsigned long long)m->bytes_sent) < 0;
    for (int t = 0; t < o->nthreads && !bad; t++) {
        const mpm_tstat_t *s = &o->th[t];
        bad = mpm_buf_printf(b, "%s\n       {\"thread\": %d, \"pus\": ", t ? "," : "", t) < 0 ||
              mpm__json_string(b, r->pus[t], strlen(r->pus[t])) ||
              mpm_buf_printf(b,
                             ", \"chunks\": %llu, \"failed\": %llu, \"bytes_in\": %llu, "
                             "\"bytes_out\": %llu, \"compute_s\": %.6f, \"read_s\": %.6f, "
                             "\"idle_s\": %.6f, \"busy_ratio\": %.4f}",
                             (unsigned long long)s->chunks, (unsigned long long)s->failed,
                             (unsigned long long)s->bytes_in, (unsigned long long)s->bytes_out,
                             s->compute_s, s->read_s, s->idle_s,
                             ratio(s->compute_s + s->read_s, s->compute_s + s->read_s + s->idle_s)) <
                  0;
    }
    if (!bad) bad = mpm_buf_printf(b, "]}") < 0;
    return bad ? -1 : 0;
}

int mpm__obs_trace_json(const mpm_obs_t *o, const mpm_obs_rank_t *r, double origin, mpm_buf_t *b)
{
    int bad = mpm_buf_printf(b,
                             "{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": %d, \"tid\": 0, "
                             "\"args\": {\"name\": \"rank %d (",
                             r->rank, r->rank) < 0;
    /* The host name inside a JSON string: escape it, minus its quotes. */
    mpm_buf_t h = {0};
    if (!bad) bad = mpm__json_string(&h, r->host, strlen(r->host)) ||
                    mpm_buf_append(b, h.data + 1, h.len - 2);
    mpm_buf_free(&h);
    if (!bad)
        bad = mpm_buf_printf(b,
                             ", pid %ld)\"}},\n{\"name\": \"process_sort_index\", \"ph\": \"M\", "
                             "\"pid\": %d, \"tid\": 0, \"args\": {\"sort_index\": %d}}",
                             r->pid, r->rank, r->rank) < 0;
    for (int t = 0; t <= o->nthreads && !bad; t++) {
        /* tid 0 is the main thread, pool thread t is tid t + 1. */
        int tid = t == o->nthreads ? 0 : t + 1;
        if (t == o->nthreads)
            bad = mpm_buf_printf(b,
                                 ",\n{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": %d, "
                                 "\"tid\": 0, \"args\": {\"name\": \"main (MPI, dispatch, "
                                 "output)\"}}",
                                 r->rank) < 0;
        else
            bad = mpm_buf_printf(b,
                                 ",\n{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": %d, "
                                 "\"tid\": %d, \"args\": {\"name\": \"pool thread %d (PUs %s)\"}}",
                                 r->rank, tid, t, r->pus[t]) < 0;
        if (!bad)
            bad = mpm_buf_printf(b,
                                 ",\n{\"name\": \"thread_sort_index\", \"ph\": \"M\", \"pid\": %d, "
                                 "\"tid\": %d, \"args\": {\"sort_index\": %d}}",
                                 r->rank, tid, tid) < 0;
        const mpm_tstat_t *s = &o->th[t];
        for (size_t i = 0; i < s->nspans && !bad; i++) {
            const mpm_span_t *sp = &s->spans[i];
            double ts = (sp->a - origin) * 1e6, dur = (sp->b - sp->a) * 1e6;
            if (dur < 0) dur = 0;
            bad = mpm_buf_printf(b,
                                 ",\n{\"name\": \"%s\", \"cat\": \"%s\", \"ph\": \"X\", \"pid\": "
                                 "%d, \"tid\": %d, \"ts\": %.3f, \"dur\": %.3f",
                                 kind_names[sp->kind], kind_names[sp->kind], r->rank, tid, ts,
                                 dur) < 0;
            if (!bad && sp->chunk >= 0)
                bad = mpm_buf_printf(b, ", \"args\": {\"chunk\": %lld, \"bytes\": %llu}}",
                                     (long long)sp->chunk, (unsigned long long)sp->bytes) < 0;
            else if (!bad)
                bad = mpm_buf_append(b, "}", 1);
        }
        if (!bad && s->dropped)
            bad = mpm_buf_printf(b,
                                 ",\n{\"name\": \"spans dropped (--trace-max)\", \"ph\": \"i\", "
                                 "\"s\": \"t\", \"pid\": %d, \"tid\": %d, \"ts\": %.3f, "
                                 "\"args\": {\"dropped\": %llu}}",
                                 r->rank, tid,
                                 s->nspans ? (s->spans[s->nspans - 1].b - origin) * 1e6 : 0.0,
                                 (unsigned long long)s->dropped) < 0;
    }
    return bad ? -1 : 0;
}
