/*
 * fetch.c - many URLs, concurrently: the seeds' web-scraping lesson (threads,
 * asyncio) as a tool.
 *
 *   mpimap -o results.tsv fetch --concurrency 64 urls.txt
 *
 * Shape (docs/FETCH.md):
 *   - rank 0's source reads the URL lists and cuts chunks of --batch URLs
 *     (default max(64, 4 x --concurrency)), numbering the rows.
 *   - map() runs libcurl's multi interface in an event loop on the pool
 *     thread (the asyncio of the seeds), transfers started as the rank's
 *     budget allows, retries with exponential backoff,
 *     bodies streamed into SHA-256 (and into DIR with --save), never held
 *     in memory. A thread keeps its multi handle, and so its connections,
 *     from chunk to chunk.
 *   - rank 0's sink writes one TSV row per URL in input order and ends the
 *     run with exit 1 when any URL failed; the results file is still
 *     written complete.
 * --concurrency and --per-host are budgets for the whole run: the layout hook
 * (kernel ABI 4) gives each rank its share, which the rank's threads draw
 * from as they need (a thread alone on the last chunk gets every slot).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "mpimap/kernel.h"
#include "mpimap/mpimap.h"
#include "output.h"
#include "util.h"
#include "internal.h"

/* This rank's transfers in flight and per host, shared by its threads: a
 * thread whose chunk is ending hands its slots to the others at once. */
typedef struct budget_s {
    pthread_mutex_t mu;
    int slots, used, host_limit;
    struct {
        char host[256];
        int n;
    } *hosts;
    int nh, caph;
} budget_t;

typedef struct {
    long long concurrency, retries, per_host, max_redirs, batch;
    double timeout, connect_timeout, retry_delay;
    uint64_t max_bytes;
    const char *save;
    const char *user_agent;
    /* derived */
    struct budget_s *budget; /* this rank's share of --concurrency and --per-host */
    int savefd;
    EVP_MD *sha256;
    int curl_ready;
} fetch_opts_t;

static const mpm_option_t fetch_options[] = {
    {"concurrency", 'n', MPM_OPT_INT, offsetof(fetch_opts_t, concurrency), "N",
     "transfers in flight over the whole run, split evenly among the ranks (default 32)", 1,
     100000, NULL, 0},
    {"timeout", 't', MPM_OPT_DOUBLE, offsetof(fetch_opts_t, timeout), "S",
     "seconds allowed for one attempt of one URL, body included (default 30)", 0, 86400, NULL, 0},
    {"connect-timeout", 0, MPM_OPT_DOUBLE, offsetof(fetch_opts_t, connect_timeout), "S",
     "seconds allowed to connect (default 10)", 0, 86400, NULL, 0},
    {"retries", 'r', MPM_OPT_INT, offsetof(fetch_opts_t, retries), "N",
     "retries after a timeout, a failed or dropped connection, or HTTP 408/429/500/502/503/504 "
     "(default 2)",
     0, 100, NULL, 0},
    {"retry-delay", 0, MPM_OPT_DOUBLE, offsetof(fetch_opts_t, retry_delay), "S",
     "wait before retry k: S x 2^(k-1) seconds (default 0.5)", 0, 3600, NULL, 0},
    {"per-host", 0, MPM_OPT_INT, offsetof(fetch_opts_t, per_host), "N",
     "connections to one host at a time over the whole run (default 0: no limit)", 0, 100000,
     NULL, 0},
    {"max-bytes", 0, MPM_OPT_SIZE, offsetof(fetch_opts_t, max_bytes), "SIZE",
     "a larger body fails its URL (default 1G)", 0, -1, NULL, 0},
    {"max-redirs", 0, MPM_OPT_INT, offsetof(fetch_opts_t, max_redirs), "N",
     "redirects followed (default 10)", 0, 1000, NULL, 0},
    {"save", 's', MPM_OPT_STRING, offsetof(fetch_opts_t, save), "DIR",
     "save the bodies of successful URLs in DIR as NNNNNN-<host and path> (NNNNNN: the row)", 0,
     0, NULL, 0},
    {"batch", 'b', MPM_OPT_INT, offsetof(fetch_opts_t, batch), "N",
     "URLs per chunk (default max(64, 4 x concurrency))", 1, 10000000, NULL, 0},
    {"user-agent", 0, MPM_OPT_STRING, offsetof(fetch_opts_t, user_agent), "S",
     "User-Agent header (default mpimap/VERSION)", 0, 0, NULL, 0},
    {NULL, 0, 0, 0, NULL, NULL, 0, 0, NULL, 0},
};

static void fetch_opts_init(void *op)
{
    fetch_opts_t *o = op;
    o->concurrency = 32;
    o->timeout = 30;
    o->connect_timeout = 10;
    o->retries = 2;
    o->retry_delay = 0.5;
    o->max_redirs = 10;
    o->max_bytes = (uint64_t)1 << 30;
    o->savefd = -1;
}

static void fetch_opts_free(void *op)
{
    fetch_opts_t *o = op;
    if (o->savefd >= 0) close(o->savefd);
    if (o->budget) {
        pthread_mutex_destroy(&o->budget->mu);
        free(o->budget->hosts);
        free(o->budget);
    }
    EVP_MD_free(o->sha256);
    if (o->curl_ready) curl_global_cleanup();
}

static long long batch_of(const fetch_opts_t *o)
{
    if (o->batch) return o->batch;
    return o->concurrency * 4 > 64 ? o->concurrency * 4 : 64;
}

/* The budgets are for the whole run: each rank gets its share (at least
 * one), which its threads draw from as they need. */
static void fetch_layout(void *op, int ranks, int rank, int threads, int total)
{
    (void)rank;
    (void)threads;
    (void)total;
    fetch_opts_t *o = op;
    budget_t *b = o->budget;
    long long s = o->concurrency / ranks, h = o->per_host / ranks;
    b->slots = s < 1 ? 1 : (int)s;
    b->host_limit = !o->per_host ? INT_MAX : h < 1 ? 1 : (int)h;
}

/* Takes a slot for a transfer to `host` if the budget allows. 1 or 0. */
static int budget_take(budget_t *b, const char *host)
{
    int got = 0;
    pthread_mutex_lock(&b->mu);
    if (b->used < b->slots) {
        int i = 0;
        if (b->host_limit != INT_MAX) {
            while (i < b->nh && strcmp(b->hosts[i].host, host)) i++;
            if (i == b->nh && b->nh == b->caph) {
                int nc = b->caph ? 2 * b->caph : 16;
                void *nv = realloc(b->hosts, (size_t)nc * sizeof *b->hosts);
                if (nv) {
                    b->hosts = nv;
                    b->caph = nc;
                }
            }
            if (i == b->nh && b->nh < b->caph) {
                snprintf(b->hosts[i].host, sizeof b->hosts[i].host, "%s", host);
                b->hosts[b->nh++].n = 0;
            }
        }
        if (b->host_limit == INT_MAX) {
            got = 1;
        } else if (i < b->nh && b->hosts[i].n < b->host_limit) {
            b->hosts[i].n++;
            got = 1;
        }
        if (got) b->used++;
    }
    pthread_mutex_unlock(&b->mu);
    return got;
}

static void budget_give(budget_t *b, const char *host)
{
    pthread_mutex_lock(&b->mu);
    b->used--;
    if (b->host_limit != INT_MAX)
        for (int i = 0; i < b->nh; i++)
            if (!strcmp(b->hosts[i].host, host)) {
                b->hosts[i].n--;
                break;
            }
    pthread_mutex_unlock(&b->mu);
}

/* ---- chunks: source -> map entries [u64 row][u32 len][url]; map -> sink a
 * header (URLs, failures, body bytes) then the rows ----------------------------------- */

typedef struct {
    uint64_t urls, failed, bytes;
} chunk_stats_t;

/* ---- one transfer ------------------------------------------------------------------------ */

enum { X_WAIT = 0, X_ACTIVE = 1, X_DELAYED = 2, X_DONE = 3 };

typedef struct {
    uint64_t row;
    char *url;
    char host[256];
    int state, attempts;
    double t_first, t_next, t_end;
    CURL *h;
    EVP_MD_CTX *md;
    uint64_t bytes;
    int too_big, werr;
    long status;
    int tmpfd;
    char tmpname[96];
    char saved[160];
    unsigned char digest[32];
    int have_digest;
    char err[CURL_ERROR_SIZE + 128];
    char errbuf[CURL_ERROR_SIZE];
    const fetch_opts_t *o;
} xfer_t;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    xfer_t *x = arg;
    size_t len = size * n;
    if (x->bytes + len > x->o->max_bytes) {
        x->too_big = 1;
        return 0; /* CURLE_WRITE_ERROR: the transfer stops */
    }
    x->bytes += len;
    if (EVP_DigestUpdate(x->md, p, len) != 1) {
        x->werr = EIO;
        return 0;
    }
    if (x->tmpfd >= 0) {
        const char *q = p;
        size_t left = len;
        while (left) {
            ssize_t w = write(x->tmpfd, q, left);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                x->werr = w < 0 ? errno : EIO;
                return 0;
            }
            q += w;
            left -= (size_t)w;
        }
    }
    return len;
}

/* Drops what an attempt wrote: the partial body file. */
static void drop_tmp(xfer_t *x)
{
    if (x->tmpfd >= 0) {
        close(x->tmpfd);
        x->tmpfd = -1;
        unlinkat(x->o->savefd, x->tmpname, 0);
    }
}

static int start(CURLM *m, xfer_t *x, char *why, size_t whyn)
{
    const fetch_opts_t *o = x->o;
    x->bytes = 0;
    x->too_big = x->werr = 0;
    x->status = 0;
    x->errbuf[0] = 0;
    if (EVP_DigestInit_ex2(x->md, o->sha256, NULL) != 1) {
        snprintf(why, whyn, "OpenSSL cannot start SHA-256");
        return -1;
    }
    if (o->savefd >= 0) {
        snprintf(x->tmpname, sizeof x->tmpname, ".%06" PRIu64 ".mpimap-%ld-%d.part", x->row,
                 (long)getpid(), x->attempts);
        x->tmpfd = openat(o->savefd, x->tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                          0666);
        if (x->tmpfd < 0) {
            snprintf(why, whyn, "cannot create a file in --save directory '%s': %s", o->save,
                     strerror(errno));
            return -1;
        }
    }
    CURL *h = x->h;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, x->url);
    curl_easy_setopt(h, CURLOPT_PRIVATE, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, (long)o->max_redirs);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    if (o->timeout > 0) curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(o->timeout * 1000));
    if (o->connect_timeout > 0)
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(o->connect_timeout * 1000));
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_bytes);
    curl_easy_setopt(h, CURLOPT_USERAGENT, o->user_agent ? o->user_agent : "mpimap/" MPM_VERSION);
    if (curl_multi_add_handle(m, h) != CURLM_OK) {
        drop_tmp(x);
        snprintf(why, whyn, "libcurl refused the transfer");
        return -1;
    }
    x->state = X_ACTIVE;
    x->attempts++;
    return 0;
}

/* A failed attempt: its message, and whether it is worth another. */
static int classify(xfer_t *x, CURLcode rc)
{
    const fetch_opts_t *o = x->o;
    const char *eb = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
    long oserr = 0;
    switch (rc) {
    case CURLE_OK: {
        long s = x->status;
        snprintf(x->err, sizeof x->err, "HTTP %ld", s);
        return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
    }
    case CURLE_URL_MALFORMAT:
        snprintf(x->err, sizeof x->err, "invalid URL: %s", eb);
        return 0;
    case CURLE_UNSUPPORTED_PROTOCOL:
        snprintf(x->err, sizeof x->err, "unsupported scheme: %s", eb);
        return 0;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        if (!strncmp(eb, "Could not resolve host: ", 24)) eb += 24;
        snprintf(x->err, sizeof x->err, "could not resolve host: %s", eb);
        return 0;
    case CURLE_COULDNT_CONNECT:
        curl_easy_getinfo(x->h, CURLINFO_OS_ERRNO, &oserr);
        if (oserr == ECONNREFUSED) snprintf(x->err, sizeof x->err, "connection refused: %s", eb);
        else snprintf(x->err, sizeof x->err, "could not connect: %s", eb);
        return 1;
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(x->err, sizeof x->err, "timeout: %s", eb);
        return 1;
    case CURLE_TOO_MANY_REDIRECTS:
        snprintf(x->err, sizeof x->err, "too many redirects (more than %lld)", o->max_redirs);
        return 0;
    case CURLE_FILESIZE_EXCEEDED:
        snprintf(x->err, sizeof x->err, "body larger than --max-bytes (%" PRIu64 " bytes declared "
                 "by the server)", o->max_bytes);
        return 0;
    case CURLE_WRITE_ERROR:
        if (x->too_big)
            snprintf(x->err, sizeof x->err, "body larger than --max-bytes (%" PRIu64 " bytes)",
                     o->max_bytes);
        else
            snprintf(x->err, sizeof x->err, "cannot save the body in '%s': %s", o->save,
                     strerror(x->werr ? x->werr : EIO));
        return 0;
    case CURLE_GOT_NOTHING:
        snprintf(x->err, sizeof x->err, "empty reply from server: %s", eb);
        return 1;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
        snprintf(x->err, sizeof x->err, "connection reset: %s", eb);
        return 1;
    case CURLE_PARTIAL_FILE:
        snprintf(x->err, sizeof x->err, "connection closed before the end of the body: %s", eb);
        return 1;
    default:
        snprintf(x->err, sizeof x->err, "%s: %s", curl_easy_strerror(rc), eb);
        return 0;
    }
}

/* The save name: NNNNNN-<host and path, bytes outside [A-Za-z0-9._-] as '_'>. */
static void save_name(const xfer_t *x, char *dst, size_t n)
{
    int w = snprintf(dst, n, "%06" PRIu64 "-", x->row);
    const char *u = strstr(x->url, "://");
    u = u ? u + 3 : x->url;
    size_t at = (size_t)w, lim = n - 1 < 120 ? n - 1 : 120;
    for (; *u && at < lim; u++) {
        unsigned char c = (unsigned char)*u;
        int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '.' || c == '_' || c == '-';
        dst[at++] = keep ? (char)c : '_';
    }
    while (at > (size_t)w + 1 && dst[at - 1] == '_') at--;
    dst[at] = 0;
}

/* An attempt ended. Returns 1 when the transfer is final. */
static int finish(CURLM *m, xfer_t *x, CURLcode rc, double now)
{
    curl_multi_remove_handle(m, x->h);
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
    x->err[0] = 0;
    int ok = rc == CURLE_OK && x->status >= 200 && x->status < 300;
    if (ok) {
        unsigned int l = 0;
        if (EVP_DigestFinal_ex(x->md, x->digest, &l) == 1) x->have_digest = 1;
        if (x->tmpfd >= 0) {
            save_name(x, x->saved, sizeof x->saved);
            int bad = close(x->tmpfd) < 0;
            x->tmpfd = -1;
            if (bad || renameat(x->o->savefd, x->tmpname, x->o->savefd, x->saved) < 0) {
                snprintf(x->err, sizeof x->err, "cannot save the body as '%s/%s': %s", x->o->save,
                         x->saved, strerror(errno));
                unlinkat(x->o->savefd, x->tmpname, 0);
                x->saved[0] = 0;
            }
        }
        x->state = X_DONE;
        x->t_end = now;
        return 1;
    }
    drop_tmp(x);
    int again = classify(x, rc);
    if (rc == CURLE_OK) { /* an HTTP error: its body is still the answer */
        unsigned int l = 0;
        if (EVP_DigestFinal_ex(x->md, x->digest, &l) == 1) x->have_digest = 1;
    }
    if (again && x->attempts <= x->o->retries) {
        x->have_digest = 0;
        x->state = X_DELAYED;
        double d = x->o->retry_delay;
        for (int i = 1; i < x->attempts; i++) d *= 2;
        x->t_next = now + d;
        return 0;
    }
    if (x->attempts > 1) {
        size_t l = strlen(x->err);
        snprintf(x->err + l, sizeof x->err - l, " (after %d attempts)", x->attempts);
    }
    x->state = X_DONE;
    x->t_end = now;
    return 1;
}

/* Checks a URL before any attempt: scheme http(s), and its host for the
 * per-host limit. 0, or -1 with x->err set. */
static int vet(xfer_t *x)
{
    CURLU *u = curl_url();
    if (!u) {
        snprintf(x->err, sizeof x->err, "out of memory");
        return -1;
    }
    CURLUcode c = curl_url_set(u, CURLUPART_URL, x->url, 0);
    int rc = 0;
    char *scheme = NULL, *host = NULL, *port = NULL;
    if (c != CURLUE_OK) {
        snprintf(x->err, sizeof x->err, "invalid URL: %s", curl_url_strerror(c));
        rc = -1;
    } else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
               (strcmp(scheme, "http") && strcmp(scheme, "https"))) {
        snprintf(x->err, sizeof x->err, "unsupported scheme '%s': only http and https",
                 scheme ? scheme : "?");
        rc = -1;
    } else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        snprintf(x->err, sizeof x->err, "invalid URL: no host");
        rc = -1;
    } else if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
               !strcmp(port, "0")) { /* libcurl takes it; no connection can be made to it */
        snprintf(x->err, sizeof x->err, "invalid URL: port 0");
        rc = -1;
    } else {
        snprintf(x->host, sizeof x->host, "%s:%s", host, port ? port : "");
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

int mpm__fetch_vet(const char *url, char *host, size_t hostn, char *why, size_t whyn)
{
    xfer_t x = {.url = (char *)url};
    int rc = vet(&x);
    snprintf(host, hostn, "%s", rc < 0 ? "" : x.host);
    snprintf(why, whyn, "%s", rc < 0 ? x.err : "");
    return rc;
}

/* ---- map: the event loop ------------------------------------------------------------------ */

static pthread_key_t multi_key;
static pthread_once_t multi_once = PTHREAD_ONCE_INIT;
static void multi_free(void *m) { curl_multi_cleanup(m); }
static void multi_key_make(void) { pthread_key_create(&multi_key, multi_free); }

/* This thread's multi handle: kept across chunks (its connection cache
 * with it), freed when the thread ends. */
static CURLM *thread_multi(void)
{
    pthread_once(&multi_once, multi_key_make);
    CURLM *m = pthread_getspecific(multi_key);
    if (!m && (m = curl_multi_init())) {
        curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, 1024L);
        pthread_setspecific(multi_key, m);
    }
    return m;
}

static int fetch_map(const void *op, const mpm_chunk_t *c, void *partial, mpm_format_t fmt,
                     mpm_buf_t *out, mpm_err_t *err)
{
    (void)partial;
    (void)fmt;
    const fetch_opts_t *o = op;
    /* Entries. */
    size_t n = 0, at = 0;
    while (at + 12 <= c->len) {
        uint32_t l;
        memcpy(&l, c->data + at + 8, 4);
        at += 12 + l;
        n++;
    }
    if (at != c->len) return mpm_err_set(err, -1, "malformed chunk");
    xfer_t *xs = calloc(n ? n : 1, sizeof *xs);
    CURLM *m = thread_multi();
    if (!xs || !m) {
        free(xs);
        return mpm_err_set(err, -1, "out of memory");
    }
    int rc = 0;
    at = 0;
    double t0 = mpm__now();
    for (size_t i = 0; i < n; i++) {
        xfer_t *x = &xs[i];
        uint32_t l;
        memcpy(&x->row, c->data + at, 8);
        memcpy(&l, c->data + at + 8, 4);
        x->o = o;
        x->tmpfd = -1;
        x->t_first = t0;
        if (!(x->url = strndup(c->data + at + 12, l)) || !(x->md = EVP_MD_CTX_new()) ||
            !(x->h = curl_easy_init())) {
            rc = mpm_err_set(err, -1, "out of memory");
            n = i + 1;
            break;
        }
        at += 12 + l;
        if (vet(x) < 0) {
            x->state = X_DONE;
            x->t_end = t0;
        }
    }
    /* The loop: start what the slots allow, in row order; run; collect. */
    size_t done = 0, next = 0;
    int active = 0, starved = 0;
    for (size_t i = 0; i < n; i++) done += xs[i].state == X_DONE;
    while (rc == 0 && done < n) {
        double now = mpm__now();
        starved = 0;
        for (size_t i = next; i < n; i++) {
            xfer_t *x = &xs[i];
            int ready = x->state == X_WAIT || (x->state == X_DELAYED && x->t_next <= now);
            if (!ready) continue;
            if (!budget_take(o->budget, x->host)) {
                starved = 1;
                if (o->budget->host_limit == INT_MAX) break; /* no slot for anyone */
                continue;
            }
            if (x->state == X_WAIT) x->t_first = now;
            if (start(m, x, x->err, sizeof x->err) < 0) {
                budget_give(o->budget, x->host);
                x->state = X_DONE;
                x->t_end = now;
                done++;
                continue;
            }
            active++;
        }
        while (next < n && xs[next].state == X_DONE) next++;
        int running = 0;
        if (curl_multi_perform(m, &running) != CURLM_OK) {
            rc = mpm_err_set(err, -1, "libcurl's event loop failed");
            break;
        }
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            xfer_t *x = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            CURLcode res = msg->data.result;
            active--;
            budget_give(o->budget, x->host);
            if (finish(m, x, res, mpm__now())) done++;
        }
        if (done == n) break;
        /* Sleep until a socket is ready, a retry is due, or 100 ms; 2 ms
         * while waiting for a slot another thread may free. */
        double wake = mpm__now() + (starved ? 0.002 : 0.1);
        for (size_t i = next; i < n; i++)
            if (xs[i].state == X_DELAYED && xs[i].t_next < wake) wake = xs[i].t_next;
        int ms = (int)((wake - mpm__now()) * 1000) + 1;
        if (ms < 0) ms = 0;
        if (active > 0 || ms > 0) curl_multi_poll(m, NULL, 0, ms, NULL);
    }
    /* Rows in order, after a stats header for the sink. */
    chunk_stats_t st = {.urls = n};
    size_t hdr = out->len;
    if (rc == 0 && mpm_buf_append(out, &st, sizeof st)) rc = mpm_err_set(err, -1, "out of memory");
    static const char *const cols[] = {"url", "status", "bytes", "sha256", "ms", "error", "file", NULL};
    for (size_t i = 0; rc == 0 && i < n; i++) {
        xfer_t *x = &xs[i];
        char status[24], bytes[24], ms[24], hex[65] = "";
        snprintf(status, sizeof status, "%ld", x->status);
        snprintf(bytes, sizeof bytes, "%" PRIu64, x->bytes);
        double el = x->t_end - x->t_first;
        snprintf(ms, sizeof ms, "%lld", (long long)(el * 1000 + 0.5));
        if (x->have_digest)
            for (int k = 0; k < 32; k++) snprintf(hex + 2 * k, 3, "%02x", x->digest[k]);
        mpm_val_t v[7] = {{x->url, strlen(x->url), 0}, {status, strlen(status), 1},
                          {bytes, strlen(bytes), 1},   {hex, strlen(hex), 0},
                          {ms, strlen(ms), 1},         {x->err, strlen(x->err), 0},
                          {x->saved, strlen(x->saved), 0}};
        if (x->err[0]) st.failed++;
        st.bytes += x->bytes;
        if (mpm_emit_row(out, MPM_FMT_TSV, cols, v, o->savefd >= 0 ? 7 : 6))
            rc = mpm_err_set(err, -1, "out of memory");
    }
    if (rc == 0) memcpy(out->data + hdr, &st, sizeof st);
    for (size_t i = 0; i < n; i++) {
        xfer_t *x = &xs[i];
        if (x->state == X_ACTIVE) {
            curl_multi_remove_handle(m, x->h);
            budget_give(o->budget, x->host);
        }
        drop_tmp(x);
        if (x->h) curl_easy_cleanup(x->h);
        EVP_MD_CTX_free(x->md);
        free(x->url);
    }
    free(xs);
    return rc;
}

/* ---- rank 0: the source ------------------------------------------------------------------ */

static uint64_t rows_seen; /* rank 0's main thread: rows over all inputs, reset by the sink */

typedef struct {
    const fetch_opts_t *o;
    FILE *f;
    int own;
    uint64_t byte;
    char *line;
    size_t cap;
    const char *name;
    uint64_t nul_line; /* 1 + offset of a line holding a NUL byte, reported next */
} fsrc_t;

static void *fetch_source_open(const void *op, const mpm_input_t *in, uint64_t chunk_size,
                               mpm_err_t *err)
{
    (void)chunk_size;
    fsrc_t *s = calloc(1, sizeof *s);
    if (!s) {
        mpm_err_set(err, -1, "out of memory");
        return NULL;
    }
    s->o = op;
    s->name = in->kind == MPM_IN_STDIN ? "standard input" : in->name;
    if (!(s->f = mpm__input_fopen(in, "URL list", &s->own, err))) {
        free(s);
        return NULL;
    }
    return s;
}

static int fetch_source_next(void *sp, mpm_buf_t *out, uint64_t *offset, mpm_err_t *err)
{
    fsrc_t *s = sp;
    long long want = batch_of(s->o), got = 0;
    *offset = s->byte;
    while (!s->nul_line && got < want) {
        ssize_t r = getline(&s->line, &s->cap, s->f);
        if (r < 0) {
            if (ferror(s->f))
                return mpm_err_set(err, -1, "%s: read error: %s", s->name, strerror(errno));
            break;
        }
        s->byte += (uint64_t)r;
        char *a = s->line, *z = s->line + r;
        while (a < z && (*a == ' ' || *a == '\t' || *a == '\n' || *a == '\r')) a++;
        while (z > a && (z[-1] == ' ' || z[-1] == '\t' || z[-1] == '\n' || z[-1] == '\r')) z--;
        if (a == z || *a == '#') continue;
        if (memchr(a, '\0', (size_t)(z - a))) { /* libcurl would fetch the URL cut there */
            s->nul_line = s->byte - (uint64_t)r + 1;
            break; /* this batch first; the error with the next call */
        }
        uint64_t row = ++rows_seen;
        uint32_t l = (uint32_t)(z - a);
        if (mpm_buf_append(out, &row, 8) || mpm_buf_append(out, &l, 4) || mpm_buf_append(out, a, l))
            return mpm_err_set(err, -1, "out of memory");
        got++;
    }
    if (!got && s->nul_line)
        return mpm_err_set(err, -1, "%s: byte %" PRIu64 ": the line holds a NUL byte (not a "
                           "text list of URLs)", s->name, s->nul_line - 1);
    return got > 0;
}

static void fetch_source_close(void *sp)
{
    fsrc_t *s = sp;
    if (s->own) fclose(s->f);
    free(s->line);
    free(s);
}

/* ---- rank 0: the sink ----------------------------------------------------------------------- */

typedef struct {
    const fetch_opts_t *o;
    mpm_out_t out;
    chunk_stats_t tot;
    double t0;
} fsink_t;

static void *fetch_sink_open(const void *op, const mpm_inputs_t *inputs, const char *path,
                             mpm_err_t *err)
{
    (void)inputs; /* the engine refuses an output that is one of them */
    const fetch_opts_t *o = op;
    fsink_t *s = calloc(1, sizeof *s);
    if (!s) {
        mpm_err_set(err, -1, "out of memory");
        return NULL;
    }
    s->o = o;
    s->t0 = mpm__now();
    rows_seen = 0;
    const char *head = o->savefd >= 0 ? "url\tstatus\tbytes\tsha256\tms\terror\tfile\n"
                                      : "url\tstatus\tbytes\tsha256\tms\terror\n";
    if (mpm__out_open(&s->out, path, MPM_FMT_TEXT, NULL) < 0 ||
        mpm__out_rows(&s->out, head, strlen(head)) < 0) {
        mpm_err_set(err, -1, "%s", s->out.err);
        mpm__out_abort(&s->out);
        free(s);
        return NULL;
    }
    return s;
}

static int fetch_sink_write(void *sp, uint64_t index, const void *data, size_t len, mpm_err_t *err)
{
    (void)index;
    fsink_t *s = sp;
    chunk_stats_t st;
    if (len < sizeof st) return mpm_err_set(err, -1, "malformed result");
    memcpy(&st, data, sizeof st);
    s->tot.urls += st.urls;
    s->tot.failed += st.failed;
    s->tot.bytes += st.bytes;
    if (mpm__out_rows(&s->out, (const char *)data + sizeof st, len - sizeof st) < 0)
        return mpm_err_set(err, -1, "%s", s->out.err);
    return 0;
}

static int fetch_sink_close(void *sp, int commit, mpm_err_t *err)
{
    fsink_t *s = sp;
    int rc = 0;
    if (!commit) {
        mpm__out_abort(&s->out);
    } else {
        double el = mpm__now() - s->t0;
        if (!mpm__log_quiet)
            fprintf(stderr, "mpimap: fetch: %" PRIu64 " URLs, %" PRIu64 " ok, %" PRIu64
                    " failed, %" PRIu64 " bytes, %.3f s (%.1f URLs/s)\n",
                    s->tot.urls, s->tot.urls - s->tot.failed, s->tot.failed, s->tot.bytes, el,
                    el > 0 ? (double)s->tot.urls / el : 0.0);
        if (mpm__out_commit(&s->out) < 0)
            rc = mpm_err_set(err, -1, "%s", s->out.err);
        else if (s->tot.failed)
            rc = mpm_err_set(err, -1, "%" PRIu64 " of %" PRIu64 " URLs failed (see the error "
                             "column%s)", s->tot.failed, s->tot.urls,
                             s->out.path ? " of the results" : "");
    }
    free(s);
    return rc;
}

/* ---- options and inputs -------------------------------------------------------------------- */

static int fetch_check(void *op, int argc, char **argv, mpm_inputs_t *in, mpm_err_t *err)
{
    fetch_opts_t *o = op;
    if (argc < 1) return mpm_err_set(err, -1, "give the URL list(s): one URL per line ('-': "
                                               "standard input)");
    if (mpm__inputs_paths(in, argc, argv, err) < 0) return -1;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return mpm_err_set(err, -1, "libcurl cannot start");
    o->curl_ready = 1;
    if (!(o->budget = calloc(1, sizeof *o->budget))) return mpm_err_set(err, -1, "out of memory");
    pthread_mutex_init(&o->budget->mu, NULL);
    o->budget->slots = 1;
    o->budget->host_limit = INT_MAX;
    if (!(o->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)))
        return mpm_err_set(err, -1, "OpenSSL does not provide SHA-256 here");
    if (o->save) {
        if (mkdir(o->save, 0777) < 0 && errno != EEXIST)
            return mpm_err_set(err, -1, "--save: cannot create directory '%s': %s", o->save,
                               strerror(errno));
        if ((o->savefd = open(o->save, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
            return mpm_err_set(err, -1, "--save: cannot open directory '%s': %s", o->save,
                               strerror(errno));
        if (faccessat(o->savefd, ".", W_OK | X_OK, AT_EACCESS) < 0)
            return mpm_err_set(err, -1, "--save: cannot write in '%s': %s", o->save, strerror(errno));
    }
    return 0;
}

static const char *const fetch_cols[] = {"url", "status", "bytes", "sha256", "ms", "error", NULL};
static const char *const *fetch_columns(const void *op)
{
    (void)op;
    return fetch_cols;
}

const mpm_kernel_t mpm_kernel_fetch = {
    .abi = MPM_KERNEL_ABI,
    .name = "fetch",
    .summary = "fetch many URLs concurrently (libcurl event loops): status, size and SHA-256 of "
               "each body",
    .synopsis = "URLS.txt...",
    .description =
        "Fetches every URL of the lists (one per line; blank lines and lines starting with '#' "
        "are skipped; '-' reads standard input) over HTTP or HTTPS and writes a header line and "
        "one TSV row per URL in input order: url, status (0: no HTTP response), bytes, sha256 "
        "of the body, ms (from the first attempt to the end of the last, waits included), error "
        "(empty on success; a URL succeeds when its final status is 2xx). With --save, a 7th "
        "column names the saved file.\n\n"
        "Each pool thread runs libcurl's multi interface in an event loop. --concurrency and "
        "--per-host are budgets for the whole run: each rank gets an even share, and its "
        "threads draw transfers from it as they need. A failed URL "
        "is recorded in its row and the run goes on; the run then exits 1, with the results "
        "written complete.\n\n"
        "Examples:\n"
        "  mpimap -o results.tsv fetch --concurrency 64 urls.txt\n"
        "  mpimap -o results.tsv fetch --per-host 4 --save pages/ --timeout 10 urls.txt",
    .options = fetch_options,
    .opts_size = sizeof(fetch_opts_t),
    .opts_init = fetch_opts_init,
    .check = fetch_check,
    .opts_free = fetch_opts_free,
    .records = MPM_REC_LINES,
    .default_chunk_size = 1 << 20,
    .columns = fetch_columns,
    .map = fetch_map,
    .source_open = fetch_source_open,
    .source_next = fetch_source_next,
    .source_close = fetch_source_close,
    .sink_open = fetch_sink_open,
    .sink_write = fetch_sink_write,
    .sink_close = fetch_sink_close,
    .layout = fetch_layout,
};
