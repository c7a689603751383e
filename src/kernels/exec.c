/*
 * exec.c - run an existing program over many items (docs/EXEC.md).
 *
 * DESIGN
 *   - One item is one task is one chunk. Rank 0's source cuts the items (the
 *     ::: arguments, an --items file, standard input) one per chunk, so the
 *     engine's dispatch, --retries of whole chunks, journal and resume work
 *     per task, and the chunk index gives {#}. -c does not apply.
 *   - The pool of each rank has one thread per task slot (pool_threads hook).
 *     A pool thread runs its chunk's task with posix_spawnp and waits for it
 *     on a pidfd; while it waits it uses no CPU. Slot s owns C cores of the
 *     rank's share (layout hook): the spawning thread switches its own
 *     affinity to them around posix_spawn, so the task inherits exactly them
 *     from its first instruction (setting it after the spawn would race with
 *     the threads the program starts).
 *   - Each task leads its own process group (--timeout and a stop signal kill
 *     the whole group), starts with an empty signal mask and default signal
 *     dispositions (pool threads block the drain signals; the MPI library may
 *     ignore SIGPIPE), stdin from /dev/null, no inherited descriptor above 2
 *     (MPI's sockets and shared-memory files), and without the launcher's
 *     OMPI_/PMIX_/PMI_... variables (a task that is an MPI program would
 *     otherwise try to join mpimap's job).
 *   - grouped mode: stdout and stderr go to two memfds (no pipe to drain, no
 *     deadlock, no wait for an EOF that a leftover background process would
 *     hold back), read back when the task ends. files mode: straight into
 *     DIR/.NNNNNN.out.<pid>-<slot>.part, renamed when the task ends.
 *   - A task that fails is a record inside a chunk that succeeded: map()
 *     emits one record per task (status, exit value, signal, times, output)
 *     and rank 0's sink writes the output in task order, the tasks' stderr
 *     to its own stderr, the messages and the joblog, and decides the exit
 *     code. The journal stores the records, so --resume replays them and
 *     --resume-failed (the `failed` hook) runs again only the tasks whose
 *     record says they failed. Only a task cut short by a stop signal fails
 *     its chunk: it is not recorded as finished and --resume runs it again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hwloc.h>
#include <hwloc/glibc-sched.h>

#include "mpimap/kernel.h"
#include "mpimap/mpimap.h"
#include "output.h"
#include "signals.h"
#include "topo.h"
#include "util.h"
#include "internal.h"

extern char **environ;

enum { MODE_GROUPED = 0, MODE_FILES = 1 };
enum { ST_OK = 0, ST_FAILED = 1, ST_TIMEOUT = 2, ST_ERROR = 3, ST_STOPPED = 4 };
static const char *const status_names[] = {"ok", "failed", "timeout", "error", "stopped"};

typedef struct {
    long long slots;
    long long cores;
    double timeout;
    double kill_after;
    long long retries;
    const char *items;
    int null;
    int mode;
    const char *results;
    const char *joblog;
    int keep_mpi_env;

    /* from check() */
    char **cmd; /* COMMAND ARGS..., NULL-terminated (points into argv) */
    int ncmd;
    int append_item; /* no replacement string: the item is the last argument */
    char *memitems;  /* ::: items, each followed by '\0' */
    size_t memlen;
    int resfd;       /* files mode: the results directory */
    char **env;      /* the tasks' environment without the launcher's variables */
    int nenv;
    int omp; /* set OMP_NUM_THREADS */

    /* from layout() */
    cpu_set_t *slot_sets; /* per slot, or NULL: no pinning */
    int nslots;
    int rank;
    char host[256];
    atomic_int next_slot;
} exec_opts_t;

static const mpm_option_t exec_options[] = {
    {"slots-per-rank", 0, MPM_OPT_INT, offsetof(exec_opts_t, slots), "N",
     "tasks running at once on each rank (default: -t if given, else the rank's cores / "
     "--cores-per-task)",
     1, 4096, NULL, MPM_OPTF_NO_FINGERPRINT},
    {"cores-per-task", 0, MPM_OPT_INT, offsetof(exec_opts_t, cores), "C",
     "pin each task to C cores of its own (slot s gets its own C cores of the rank's; "
     "OMP_NUM_THREADS=C unless set); 0: no pinning, a task may use all the rank's cores "
     "(default 1)",
     0, 4096, NULL, MPM_OPTF_NO_FINGERPRINT},
    {"timeout", 0, MPM_OPT_DOUBLE, offsetof(exec_opts_t, timeout), "SECONDS",
     "per attempt: SIGTERM to the task's process group after SECONDS, SIGKILL after "
     "--kill-after more (default 0: none)",
     0, 31536000, NULL, MPM_OPTF_NO_FINGERPRINT},
    {"kill-after", 0, MPM_OPT_DOUBLE, offsetof(exec_opts_t, kill_after), "SECONDS",
     "after a timeout or a stop signal: time between SIGTERM and SIGKILL (default 2)", 0, 3600,
     NULL, MPM_OPTF_NO_FINGERPRINT},
    {"retries", 0, MPM_OPT_INT, offsetof(exec_opts_t, retries), "N",
     "run a task that failed (exit status not 0, killed, timed out, could not start) up to N "
     "more times (default 0)",
     0, 1000, NULL, MPM_OPTF_NO_FINGERPRINT},
    {"items", 0, MPM_OPT_STRING, offsetof(exec_opts_t, items), "FILE",
     "read the items from FILE, one per line ('-': standard input); default: the arguments "
     "after ':::', else standard input",
     0, -1, NULL, MPM_OPTF_NO_FINGERPRINT},
    {"null", '0', MPM_OPT_FLAG, offsetof(exec_opts_t, null), NULL,
     "items in FILE or on standard input are separated by NUL bytes, not lines", 0, -1, NULL, 0},
    {"output-mode", 0, MPM_OPT_CHOICE, offsetof(exec_opts_t, mode), "MODE",
     "grouped|files: each task's stdout to the output and its stderr to mpimap's stderr, whole "
     "tasks in item order (default); or files DIR/NNNNNN.out and .err (--results DIR)",
     0, -1, "grouped|files", 0},
    {"results", 0, MPM_OPT_STRING, offsetof(exec_opts_t, results), "DIR",
     "--output-mode files: the directory of the tasks' output files (created if missing)", 0,
     -1, NULL, MPM_OPTF_NO_FINGERPRINT},
    {"joblog", 0, MPM_OPT_STRING, offsetof(exec_opts_t, joblog), "FILE",
     "write a job log (TSV, one line per task in task order: Seq Host Rank Slot Starttime "
     "JobRuntime Exitval Signal Attempts Status Command), complete at the end of the run",
     0, -1, NULL, MPM_OPTF_NO_FINGERPRINT},
    {"keep-mpi-env", 0, MPM_OPT_FLAG, offsetof(exec_opts_t, keep_mpi_env), NULL,
     "keep the MPI launcher's variables (OMPI_*, PMIX_*, PMI_*, ...) in the tasks' "
     "environment (default: removed, so that a task that is an MPI program starts on its own)",
     0, -1, NULL, MPM_OPTF_NO_FINGERPRINT},
    {NULL, 0, 0, 0, NULL, NULL, 0, 0, NULL, 0}};

static void exec_opts_init(void *op)
{
    exec_opts_t *o = op;
    o->cores = 1;
    o->kill_after = 2;
    o->resfd = -1;
}

static void exec_opts_free(void *op)
{
    exec_opts_t *o = op;
    free(o->cmd);
    free(o->memitems);
    if (o->resfd >= 0) close(o->resfd);
    for (int i = 0; i < o->nenv; i++) free(o->env[i]);
    free(o->env);
    free(o->slot_sets);
}

/* ---- replacement strings ----------------------------------------------------------------- */

/* The replacement string at s (one of {} {.} {/} {//} {/.} {#} {%}): its
 * length, or 0. */
static size_t repl_at(const char *s, char *kind)
{
    static const char *const toks[] = {"{}", "{.}", "{/}", "{//}", "{/.}", "{#}", "{%}"};
    static const char kinds[] = {'i', '.', '/', 'd', 'b', '#', '%'};
    if (s[0] != '{') return 0;
    for (size_t t = 0; t < sizeof kinds; t++) {
        size_t n = strlen(toks[t]);
        if (!strncmp(s, toks[t], n)) {
            *kind = kinds[t];
            return n;
        }
    }
    return 0;
}

static int has_repl(const char *w)
{
    char k;
    for (; *w; w++)
        if (repl_at(w, &k)) return 1;
    return 0;
}

/* Start of the basename of item[0..n). */
static size_t base_start(const char *item, size_t n)
{
    size_t b = n;
    while (b > 0 && item[b - 1] != '/') b--;
    return b;
}

/* Length of s[0..n) without its extension (a '.' in the basename, not its
 * first byte). */
static size_t no_ext(const char *s, size_t n)
{
    size_t b = base_start(s, n);
    for (size_t i = n; i > b + 1; i--)
        if (s[i - 1] == '.') return i - 1;
    return n;
}

/* Appends word w with its replacement strings expanded, and a NUL. */
static int expand(mpm_buf_t *b, const char *w, const char *item, size_t n, uint64_t task, int slot)
{
    char num[32];
    for (const char *p = w; *p;) {
        char k;
        size_t l = repl_at(p, &k);
        if (!l) {
            const char *q = p + 1;
            while (*q && *q != '{') q++;
            if (mpm_buf_append(b, p, (size_t)(q - p))) return -1;
            p = q;
            continue;
        }
        p += l;
        size_t bs = base_start(item, n);
        int r = 0;
        switch (k) {
        case 'i': r = mpm_buf_append(b, item, n); break;
        case '.': r = mpm_buf_append(b, item, no_ext(item, n)); break;
        case '/': r = mpm_buf_append(b, item + bs, n - bs); break;
        case 'b': r = mpm_buf_append(b, item + bs, no_ext(item + bs, n - bs)); break;
        case 'd':
            if (bs == 0) r = mpm_buf_append(b, ".", 1);
            else if (bs == 1) r = mpm_buf_append(b, "/", 1);
            else r = mpm_buf_append(b, item, bs - 1);
            break;
        case '#':
            snprintf(num, sizeof num, "%" PRIu64, task);
            r = mpm_buf_append(b, num, strlen(num));
            break;
        default:
            snprintf(num, sizeof num, "%d", slot + 1);
            r = mpm_buf_append(b, num, strlen(num));
        }
        if (r) return -1;
    }
    return mpm_buf_append(b, "", 1);
}

/* Appends w quoted for a POSIX shell when it needs it: bare, '...', or
 * $'...' when it holds control bytes (so that a joblog line stays one line). */
static int shell_quote(mpm_buf_t *b, const char *w, size_t n)
{
    int plain = n > 0, ctl = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)w[i];
        if (c < 0x20 || c == 0x7f) ctl = 1;
        if (!(c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || strchr("_./:=@%+,-", c)))
            plain = 0;
    }
    if (plain) return mpm_buf_append(b, w, n);
    if (!ctl) {
        int r = mpm_buf_append(b, "'", 1);
        for (size_t i = 0; i < n && !r; i++)
            r = w[i] == '\'' ? mpm_buf_append(b, "'\\''", 4) : mpm_buf_append(b, w + i, 1);
        return r || mpm_buf_append(b, "'", 1);
    }
    int r = mpm_buf_append(b, "$'", 2);
    for (size_t i = 0; i < n && !r; i++) {
        unsigned char c = (unsigned char)w[i];
        if (c == '\n') r = mpm_buf_append(b, "\\n", 2);
        else if (c == '\t') r = mpm_buf_append(b, "\\t", 2);
        else if (c == '\r') r = mpm_buf_append(b, "\\r", 2);
        else if (c == '\\' || c == '\'') r = mpm_buf_printf(b, "\\%c", c) < 0;
        else if (c < 0x20 || c == 0x7f) r = mpm_buf_printf(b, "\\x%02x", c) < 0;
        else r = mpm_buf_append(b, w + i, 1);
    }
    return r || mpm_buf_append(b, "'", 1);
}

int mpm__exec_words(const void *op, const char *item, size_t n, uint64_t task, int slot,
                    mpm_buf_t *words, int *nwords, mpm_buf_t *cmdline)
{
    const exec_opts_t *o = op;
    size_t at = words->len;
    for (int i = 0; i < o->ncmd; i++)
        if (expand(words, o->cmd[i], item, n, task, slot)) return -1;
    if (o->append_item && (mpm_buf_append(words, item, n) || mpm_buf_append(words, "", 1)))
        return -1;
    int na = o->ncmd + o->append_item;
    const char *p = words->data + at;
    for (int i = 0; i < na; i++) {
        size_t l = strlen(p);
        if (i && mpm_buf_append(cmdline, " ", 1)) return -1;
        if (shell_quote(cmdline, p, l)) return -1;
        p += l + 1;
    }
    *nwords = na;
    return 0;
}

/* ---- the record map() emits for one task -------------------------------------------------- */

#define REC_MAGIC 0x3152584du /* "MXR1" */

typedef struct {
    uint32_t magic;
    uint32_t status; /* ST_* */
    int32_t exitval; /* -1 when killed or never started */
    int32_t sig;
    uint32_t attempts;
    uint32_t slot;
    int32_t rank;
    uint32_t host_len;
    uint64_t task;
    double start, runtime, timeout;
    uint64_t cmd_len, out_len, err_len, msg_len;
} rec_t;

/* Parses the record at d[0..len): 0, or -1 when it is malformed. */
static int rec_parse(const void *d, size_t len, rec_t *r, const char **host, const char **cmd,
                     const char **out, const char **err, const char **msg)
{
    if (len < sizeof *r) return -1;
    memcpy(r, d, sizeof *r);
    const char *p = (const char *)d + sizeof *r;
    uint64_t rest = len - sizeof *r;
    uint64_t parts[5] = {r->host_len, r->cmd_len, r->out_len, r->err_len, r->msg_len};
    const char **dst[5] = {host, cmd, out, err, msg};
    if (r->magic != REC_MAGIC || r->status > ST_ERROR) return -1;
    for (int i = 0; i < 5; i++) {
        if (parts[i] > rest) return -1;
        *dst[i] = p;
        p += parts[i];
        rest -= parts[i];
    }
    return rest == 0 ? 0 : -1;
}

/* ---- running one task ------------------------------------------------------------------------ */

typedef struct {
    int status, exitval, sig;
    double start, runtime;
    char msg[300];
} outcome_t;

/* The pool thread's slot and its own affinity (restored after each spawn). */
static __thread int my_slot = -1;
static __thread int have_mask;
static __thread cpu_set_t my_mask;

static double now_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Waits up to `secs` (< 0: for ever) for the pidfd to become readable (the
 * task ended), checking for a stop signal every 100 ms. 1: ended; 0: time
 * is up; -1: a stop signal is pending. */
static int wait_exit(int pidfd, double secs)
{
    double end = secs < 0 ? 0 : mpm__now() + secs;
    for (;;) {
        if (mpm__sig_pending()) return -1;
        int ms = 100;
        if (secs >= 0) {
            double left = end - mpm__now();
            if (left <= 0) return 0;
            if (left * 1000 < ms) ms = (int)(left * 1000) + 1;
        }
        struct pollfd p = {.fd = pidfd, .events = POLLIN};
        int r = poll(&p, 1, ms);
        if (r > 0) return 1;
        if (r < 0 && errno != EINTR) return 1; /* cannot wait: reap below */
    }
}

/* Ends a task that ran out of time or was stopped: SIGTERM to its group, up
 * to kill_after for the leader to exit, then SIGKILL to whatever of the
 * group remains. The leader is still unreaped (a zombie at worst), so its
 * process group id cannot have been reused. */
static void kill_group(pid_t pid, int pidfd, double kill_after)
{
    kill(-pid, SIGTERM);
    double end = mpm__now() + kill_after;
    for (;;) {
        double left = end - mpm__now();
        if (left <= 0) break;
        struct pollfd p = {.fd = pidfd, .events = POLLIN};
        int ms = (int)(left * 1000) + 1;
        if (poll(&p, 1, ms) > 0) break;
    }
    kill(-pid, SIGKILL);
}

/* Builds the environment of one task: the filtered base plus the task's
 * variables (in vars, which must outlive the spawn). */
static char **task_env(const exec_opts_t *o, char vars[4][64], uint64_t task, int slot)
{
    char **env = malloc(((size_t)o->nenv + 5) * sizeof *env);
    if (!env) return NULL;
    int n = 0;
    for (int i = 0; i < o->nenv; i++) env[n++] = o->env[i];
    snprintf(vars[0], 64, "MPIMAP_TASK=%" PRIu64, task);
    snprintf(vars[1], 64, "MPIMAP_SLOT=%d", slot + 1);
    snprintf(vars[2], 64, "MPIMAP_RANK=%d", o->rank);
    env[n++] = vars[0];
    env[n++] = vars[1];
    env[n++] = vars[2];
    if (o->omp) {
        snprintf(vars[3], 64, "OMP_NUM_THREADS=%lld", o->cores);
        env[n++] = vars[3];
    }
    env[n] = NULL;
    return env;
}

/* Opens DIR/.NAME.<pid>-<slot>.part for a files-mode output (tmp gets its name). */
static int open_part(const exec_opts_t *o, const char *name, int slot, char *tmp, size_t tmpsize)
{
    snprintf(tmp, tmpsize, ".%s.%ld-%d.part", name, (long)getpid(), slot);
    unlinkat(o->resfd, tmp, 0);
    return openat(o->resfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
}

/* Reads the whole of fd (a memfd) into b. */
static int slurp(int fd, mpm_buf_t *b, uint64_t *n)
{
    struct stat st;
    *n = 0;
    if (fstat(fd, &st) < 0) return -1;
    if (st.st_size <= 0) return 0;
    if (mpm_buf_reserve(b, (size_t)st.st_size)) return -1;
    long long r = mpm__pread_full(fd, b->data + b->len, (size_t)st.st_size, 0);
    if (r < 0) return -1;
    b->len += (size_t)r;
    *n = (uint64_t)r;
    return 0;
}

/*
 * One attempt. In grouped mode the output goes to the memfds fds[0..1]
 * (emptied first); in files mode to the part files fds[0..1]. Fills oc.
 * Returns 0, or -1 when a stop signal ended it.
 */
static int run_once(const exec_opts_t *o, char **argv, char **env, int slot, const int fds[2],
                    outcome_t *oc)
{
    memset(oc, 0, sizeof *oc);
    oc->exitval = -1;
    oc->start = now_wall();
    double t0 = mpm__now();
    for (int i = 0; i < 2; i++) {
        if (ftruncate(fds[i], 0) < 0 || lseek(fds[i], 0, SEEK_SET) < 0) {
            oc->status = ST_ERROR;
            snprintf(oc->msg, sizeof oc->msg, "cannot prepare its output: %s", strerror(errno));
            return 0;
        }
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP);
    /* The child inherits the calling thread's affinity: switch to the
     * slot's cores for the spawn, then back. */
    int pinned = 0;
    if (o->slot_sets && slot < o->nslots) {
        if (!have_mask) have_mask = sched_getaffinity(0, sizeof my_mask, &my_mask) == 0;
        pinned = have_mask && sched_setaffinity(0, sizeof(cpu_set_t), &o->slot_sets[slot]) == 0;
    }
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, &at, argv, env);
    if (pinned) sched_setaffinity(0, sizeof my_mask, &my_mask);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0) {
        oc->status = ST_ERROR;
        oc->runtime = mpm__now() - t0;
        snprintf(oc->msg, sizeof oc->msg, "cannot start: %s", strerror(rc));
        return 0;
    }
    int pidfd = (int)pidfd_open(pid, 0);
    int stopped = 0, timed_out = 0;
    if (pidfd >= 0) {
        int w = wait_exit(pidfd, o->timeout > 0 ? o->timeout : -1);
        if (w <= 0) {
            stopped = w < 0;
            timed_out = w == 0;
            kill_group(pid, pidfd, o->kill_after);
        }
        close(pidfd);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    oc->runtime = mpm__now() - t0;
    if (WIFEXITED(st)) {
        oc->exitval = WEXITSTATUS(st);
    } else if (WIFSIGNALED(st)) {
        oc->sig = WTERMSIG(st);
    }
    if (stopped) {
        oc->status = ST_STOPPED;
        return -1;
    }
    if (timed_out) {
        oc->status = ST_TIMEOUT;
        snprintf(oc->msg, sizeof oc->msg, "timed out after %g s", o->timeout);
        if (!oc->sig) oc->sig = SIGTERM; /* it exited on SIGTERM's account */
        oc->exitval = -1;
    } else if (oc->sig) {
        oc->status = ST_FAILED;
        snprintf(oc->msg, sizeof oc->msg, "killed by signal %d (SIG%s)", oc->sig,
                 sigabbrev_np(oc->sig) ? sigabbrev_np(oc->sig) : "?");
    } else if (oc->exitval != 0) {
        oc->status = ST_FAILED;
        snprintf(oc->msg, sizeof oc->msg, "exit %d", oc->exitval);
    }
    return 0;
}

static int exec_map(const void *op, const mpm_chunk_t *c, void *partial, mpm_format_t fmt,
                    mpm_buf_t *out, mpm_err_t *err)
{
    (void)partial;
    (void)fmt;
    const exec_opts_t *o = op;
    exec_opts_t *ow = (exec_opts_t *)op; /* the slot counter only */
    if (my_slot < 0) my_slot = atomic_fetch_add(&ow->next_slot, 1);
    int slot = my_slot;
    uint64_t task = c->index + 1;
    const char *item = c->data;
    size_t n = c->len;

    /* argv: every word expanded, one buffer, then the pointers. */
    mpm_buf_t words = {0}, cmdline = {0};
    char **argv = calloc((size_t)o->ncmd + 2, sizeof *argv);
    int rc = -1;
    int fds[2] = {-1, -1};
    char tmp[2][160] = {"", ""};
    char vars[4][64];
    char **env = NULL;
    if (!argv) goto oom;
    {
        int na = 0;
        if (mpm__exec_words(o, item, n, task, slot, &words, &na, &cmdline)) goto oom;
        const char *p = words.data;
        for (int i = 0; i < na; i++) {
            argv[i] = (char *)p;
            p += strlen(p) + 1;
        }
    }
    if (!(env = task_env(o, vars, task, slot))) goto oom;

    char name[2][40];
    snprintf(name[0], sizeof name[0], "%06" PRIu64 ".out", task);
    snprintf(name[1], sizeof name[1], "%06" PRIu64 ".err", task);
    for (int i = 0; i < 2; i++) {
        fds[i] = o->mode == MODE_FILES ? open_part(o, name[i], slot, tmp[i], sizeof tmp[i])
                                       : memfd_create(i ? "mpimap-task-stderr" : "mpimap-task-stdout",
                                                      MFD_CLOEXEC);
        if (fds[i] < 0) {
            mpm_err_set(err, -1, "task %" PRIu64 ": cannot create %s: %s", task,
                        o->mode == MODE_FILES ? name[i] : "a memory file", strerror(errno));
            goto done;
        }
    }

    outcome_t oc;
    uint32_t attempts = 0;
    for (;;) {
        attempts++;
        if (run_once(o, argv, env, slot, fds, &oc) < 0) {
            mpm_err_set(err, -1, "task %" PRIu64 " (%.*s): stopped by a signal to mpimap; it "
                        "runs again on --resume", task, (int)(cmdline.len < 300 ? cmdline.len : 300),
                        cmdline.data ? cmdline.data : "");
            goto done;
        }
        if (oc.status == ST_OK || attempts > (uint32_t)o->retries) break;
    }

    /* The record. */
    rec_t r = {.magic = REC_MAGIC,
               .status = (uint32_t)oc.status,
               .exitval = oc.exitval,
               .sig = oc.sig,
               .attempts = attempts,
               .slot = (uint32_t)slot + 1,
               .rank = o->rank,
               .host_len = (uint32_t)strlen(o->host),
               .task = task,
               .start = oc.start,
               .runtime = oc.runtime,
               .timeout = o->timeout,
               .cmd_len = cmdline.len,
               .msg_len = strlen(oc.msg)};
    size_t at = out->len;
    if (mpm_buf_append(out, &r, sizeof r) || mpm_buf_append(out, o->host, r.host_len) ||
        mpm_buf_append(out, cmdline.data ? cmdline.data : "", cmdline.len))
        goto oom;
    if (o->mode == MODE_GROUPED) {
        if (slurp(fds[0], out, &r.out_len) < 0 || slurp(fds[1], out, &r.err_len) < 0) {
            out->len = at;
            mpm_err_set(err, -1, "task %" PRIu64 ": cannot read its output back: %s", task,
                        strerror(errno));
            goto done;
        }
    } else {
        for (int i = 0; i < 2; i++) {
            if (fsync(fds[i]) < 0 || renameat(o->resfd, tmp[i], o->resfd, name[i]) < 0) {
                out->len = at;
                mpm_err_set(err, -1, "task %" PRIu64 ": %s/%s: %s", task, o->results, name[i],
                            strerror(errno));
                goto done;
            }
            tmp[i][0] = 0;
        }
    }
    if (mpm_buf_append(out, oc.msg, r.msg_len)) goto oom;
    memcpy(out->data + at, &r, sizeof r);
    rc = 0;
    goto done;
oom:
    mpm_err_set(err, -1, "task %" PRIu64 ": out of memory", task);
done:
    for (int i = 0; i < 2; i++) {
        if (fds[i] >= 0) close(fds[i]);
        if (tmp[i][0]) unlinkat(o->resfd, tmp[i], 0);
    }
    free(env);
    free(argv);
    mpm_buf_free(&words);
    mpm_buf_free(&cmdline);
    return rc;
}

/* --resume-failed: whether a journaled task did not succeed. */
static int exec_failed(const void *op, const void *data, size_t len)
{
    (void)op;
    rec_t r;
    const char *h, *c, *ou, *er, *m;
    return rec_parse(data, len, &r, &h, &c, &ou, &er, &m) < 0 || r.status != ST_OK;
}

/* ---- rank 0: the source: one item per chunk ------------------------------------------------- */

typedef struct {
    const exec_opts_t *o;
    const char *mem; /* ::: items */
    size_t memlen, at;
    FILE *f;
    int own;
    int sep;
    uint64_t byte;
    char *line;
    size_t cap;
    const char *name;
} xsrc_t;

static void *exec_source_open(const void *op, const mpm_input_t *in, uint64_t chunk_size,
                              mpm_err_t *err)
{
    (void)chunk_size;
    const exec_opts_t *o = op;
    xsrc_t *s = calloc(1, sizeof *s);
    if (!s) {
        mpm_err_set(err, -1, "out of memory");
        return NULL;
    }
    s->o = o;
    s->sep = o->null ? '\0' : '\n';
    if (in->kind == MPM_IN_MEMORY) {
        s->mem = in->data;
        s->memlen = in->len;
        return s;
    }
    s->name = in->kind == MPM_IN_STDIN ? "standard input" : in->name;
    if (!(s->f = mpm__input_fopen(in, "item list", &s->own, err))) {
        free(s);
        return NULL;
    }
    return s;
}

static int exec_source_next(void *sp, mpm_buf_t *out, uint64_t *offset, mpm_err_t *err)
{
    xsrc_t *s = sp;
    if (s->mem) { /* '\0'-terminated items; empty ones were refused by check */
        if (s->at >= s->memlen) return 0;
        size_t l = strlen(s->mem + s->at);
        *offset = s->at;
        if (mpm_buf_append(out, s->mem + s->at, l)) return mpm_err_set(err, -1, "out of memory");
        s->at += l + 1;
        return 1;
    }
    for (;;) {
        ssize_t r = getdelim(&s->line, &s->cap, s->sep, s->f);
        if (r < 0) {
            if (ferror(s->f))
                return mpm_err_set(err, -1, "%s: read error: %s", s->name, strerror(errno));
            return 0;
        }
        uint64_t start = s->byte;
        s->byte += (uint64_t)r;
        size_t l = (size_t)r;
        if (l && s->line[l - 1] == (char)s->sep) l--;
        if (s->sep == '\n' && l && s->line[l - 1] == '\r') l--;
        if (!l) continue;
        if (s->sep == '\n' && memchr(s->line, '\0', l))
            return mpm_err_set(err, -1, "%s: byte %" PRIu64 ": the item holds a NUL byte (NUL-"
                               "separated items need --null)", s->name, start);
        *offset = start;
        if (mpm_buf_append(out, s->line, l)) return mpm_err_set(err, -1, "out of memory");
        return 1;
    }
}

static void exec_source_close(void *sp)
{
    xsrc_t *s = sp;
    if (s->own) fclose(s->f);
    free(s->line);
    free(s);
}

/* ---- rank 0: the sink --------------------------------------------------------------------- */

typedef struct {
    const exec_opts_t *o;
    mpm_out_t out, log;
    int have_out, have_log;
    uint64_t tasks, failed;
    uint64_t first_failed[8];
    double t0;
} xsink_t;

static void *exec_sink_open(const void *op, const mpm_inputs_t *inputs, const char *path,
                            mpm_err_t *err)
{
    (void)inputs;
    const exec_opts_t *o = op;
    if (o->mode == MODE_FILES && path && strcmp(path, "-")) {
        mpm_err_set(err, -1, "-o '%s': with --output-mode files the tasks' output goes to "
                    "--results '%s' (use --joblog for a summary file)", path, o->results);
        return NULL;
    }
    xsink_t *s = calloc(1, sizeof *s);
    if (!s) {
        mpm_err_set(err, -1, "out of memory");
        return NULL;
    }
    s->o = o;
    s->t0 = mpm__now();
    if (o->mode == MODE_GROUPED) {
        if (mpm__out_open(&s->out, path, MPM_FMT_TEXT, NULL) < 0) {
            mpm_err_set(err, -1, "%s", s->out.err);
            mpm__out_abort(&s->out);
            free(s);
            return NULL;
        }
        s->have_out = 1;
    }
    if (o->joblog) {
        static const char head[] = "Seq\tHost\tRank\tSlot\tStarttime\tJobRuntime\tExitval\tSignal\t"
                                   "Attempts\tStatus\tCommand\n";
        if (mpm__out_open(&s->log, o->joblog, MPM_FMT_TEXT, NULL) < 0 ||
            mpm__out_rows(&s->log, head, sizeof head - 1) < 0) {
            mpm_err_set(err, -1, "--joblog: %s", s->log.err);
            mpm__out_abort(&s->log);
            if (s->have_out) mpm__out_abort(&s->out);
            free(s);
            return NULL;
        }
        s->have_log = 1;
        /* The signal handler removes one temporary file, the last opened:
         * that must be the output's. The joblog's stays, so that an
         * interrupted run can leave FILE.incomplete (sink_close). */
        mpm__sig_guard_tmp(s->have_out ? s->out.tmp : NULL);
    }
    return s;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return; /* stderr gone: nothing better to do */
        p += w;
        n -= (size_t)w;
    }
}

static int exec_sink_write(void *sp, uint64_t index, const void *data, size_t len, mpm_err_t *err)
{
    (void)index;
    xsink_t *s = sp;
    rec_t r;
    const char *host, *cmd, *out, *er, *msg;
    if (rec_parse(data, len, &r, &host, &cmd, &out, &er, &msg) < 0)
        return mpm_err_set(err, -1, "task %" PRIu64 ": malformed result", index + 1);
    s->tasks++;
    if (s->have_out && r.out_len && mpm__out_rows(&s->out, out, r.out_len) < 0)
        return mpm_err_set(err, -1, "%s", s->out.err);
    if (r.err_len) write_all(2, er, r.err_len);
    if (r.status != ST_OK) {
        if (s->failed < 8) s->first_failed[s->failed] = r.task;
        s->failed++;
        char line[1024];
        int l = snprintf(line, sizeof line, "mpimap: exec: task %" PRIu64 " failed: %.*s%s: ",
                         r.task, (int)r.msg_len, msg,
                         r.attempts > 1 ? " (last of its attempts)" : "");
        if (l > 0) write_all(2, line, (size_t)l < sizeof line ? (size_t)l : sizeof line - 1);
        write_all(2, cmd, r.cmd_len);
        write_all(2, "\n", 1);
    }
    if (s->have_log) {
        mpm_buf_t b = {0};
        int bad = mpm_buf_printf(&b, "%" PRIu64 "\t%.*s\t%d\t%u\t%.3f\t%.3f\t%d\t%d\t%u\t%s\t",
                                 r.task, (int)r.host_len, host, r.rank, r.slot, r.start, r.runtime,
                                 r.exitval, r.sig, r.attempts, status_names[r.status]) < 0 ||
                  mpm_buf_append(&b, cmd, r.cmd_len) || mpm_buf_append(&b, "\n", 1);
        if (bad) {
            mpm_buf_free(&b);
            return mpm_err_set(err, -1, "out of memory");
        }
        int w = mpm__out_rows(&s->log, b.data, b.len);
        mpm_buf_free(&b);
        if (w < 0) return mpm_err_set(err, -1, "--joblog: %s", s->log.err);
    }
    return 0;
}

static int exec_sink_close(void *sp, int commit, mpm_err_t *err)
{
    xsink_t *s = sp;
    int rc = 0;
    if (!commit) {
        if (s->have_out) mpm__out_abort(&s->out);
        if (s->have_log) {
            /* The joblog of an unfinished run: kept beside, never under FILE. */
            char *inc = malloc(strlen(s->o->joblog) + 16);
            if (inc) sprintf(inc, "%s.incomplete", s->o->joblog);
            if (!inc || mpm__out_in_place(s->o->joblog) || mpm__out_commit_as(&s->log, inc) < 0)
                mpm__out_abort(&s->log);
            free(inc);
        }
        free(s);
        return 0;
    }
    if (s->have_out && mpm__out_commit(&s->out) < 0) rc = mpm_err_set(err, -1, "%s", s->out.err);
    if (s->have_log && mpm__out_commit(&s->log) < 0 && rc == 0)
        rc = mpm_err_set(err, -1, "--joblog: %s", s->log.err);
    if (!mpm__log_quiet) {
        char list[160] = "";
        size_t l = 0;
        for (uint64_t i = 0; i < s->failed && i < 8; i++)
            l += (size_t)snprintf(list + l, sizeof list - l, "%s%" PRIu64, i ? ", " : " (tasks ",
                                  s->first_failed[i]);
        if (s->failed)
            snprintf(list + l, sizeof list - l, "%s)", s->failed > 8 ? ", ..." : "");
        fprintf(stderr, "mpimap: exec: %" PRIu64 " tasks, %" PRIu64 " ok, %" PRIu64
                        " failed%s, %.3f s\n",
                s->tasks, s->tasks - s->failed, s->failed, list, mpm__now() - s->t0);
    }
    if (rc == 0 && s->failed)
        rc = mpm_err_set(err, -1, "%" PRIu64 " of %" PRIu64 " tasks failed", s->failed, s->tasks);
    free(s);
    return rc;
}

/* ---- options, inputs, layout ------------------------------------------------------------------ */

/* 1 when `name` (no '/') is an executable file in $PATH. */
static int in_path(const char *name)
{
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    size_t nl = strlen(name);
    for (const char *p = path;;) {
        const char *e = strchr(p, ':');
        size_t dl = e ? (size_t)(e - p) : strlen(p);
        char buf[4096];
        if (dl + nl + 2 < sizeof buf) {
            if (dl) memcpy(buf, p, dl);
            else buf[dl++] = '.';
            buf[dl] = '/';
            memcpy(buf + dl + 1, name, nl + 1);
            struct stat st;
            if (stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0) return 1;
        }
        if (!e) return 0;
        p = e + 1;
    }
}

static int launcher_var(const char *kv)
{
    static const char *const prefixes[] = {"OMPI_", "PMIX_", "PMI_", "PRTE_", "HYDRA_", "HYDI_",
                                           "MPIR_", NULL};
    for (int i = 0; prefixes[i]; i++)
        if (!strncmp(kv, prefixes[i], strlen(prefixes[i]))) return 1;
    return 0;
}

static int exec_check(void *op, int argc, char **argv, mpm_inputs_t *in, mpm_err_t *err)
{
    exec_opts_t *o = op;
    int sep = -1;
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], ":::")) {
            sep = i;
            break;
        }
    o->ncmd = sep >= 0 ? sep : argc;
    if (o->ncmd < 1)
        return mpm_err_set(err, -1, "give the command to run: exec [options] -- COMMAND "
                                    "[ARGS...] [::: ITEM...] (items also from --items FILE or "
                                    "standard input)");
    if (!(o->cmd = calloc((size_t)o->ncmd + 1, sizeof *o->cmd)))
        return mpm_err_set(err, -1, "out of memory");
    int repl = 0;
    for (int i = 0; i < o->ncmd; i++) {
        o->cmd[i] = argv[i];
        repl |= has_repl(argv[i]);
    }
    o->append_item = !repl;
    const char *prog = o->cmd[0];
    if (!prog[0]) return mpm_err_set(err, -1, "the command is an empty word");
    if (!has_repl(prog)) {
        if (strchr(prog, '/')) {
            struct stat st;
            if (stat(prog, &st) < 0)
                return mpm_err_set(err, -1, "command '%s': %s", prog, strerror(errno));
            if (!S_ISREG(st.st_mode) || access(prog, X_OK) < 0)
                return mpm_err_set(err, -1, "command '%s' is not an executable file", prog);
        } else if (!in_path(prog)) {
            return mpm_err_set(err, -1, "command '%s' not found in PATH (exec runs programs "
                               "directly, not through a shell: for shell syntax use "
                               "sh -c '...' sh {})", prog);
        }
    }
    if (o->mode == MODE_FILES) {
        if (!o->results)
            return mpm_err_set(err, -1, "--output-mode files needs --results DIR");
        if (mkdir(o->results, 0777) < 0 && errno != EEXIST)
            return mpm_err_set(err, -1, "--results: cannot create directory '%s': %s",
                               o->results, strerror(errno));
        if ((o->resfd = open(o->results, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
            return mpm_err_set(err, -1, "--results: cannot open directory '%s': %s", o->results,
                               strerror(errno));
        if (faccessat(o->resfd, ".", W_OK | X_OK, AT_EACCESS) < 0)
            return mpm_err_set(err, -1, "--results: cannot write in '%s': %s", o->results,
                               strerror(errno));
    } else if (o->results) {
        return mpm_err_set(err, -1, "--results applies to --output-mode files only");
    }

    /* The items. */
    if (sep >= 0) {
        if (o->items)
            return mpm_err_set(err, -1, "give the items either after ':::' or with --items, "
                                        "not both");
        size_t total = 0;
        for (int i = sep + 1; i < argc; i++) {
            if (!argv[i][0])
                return mpm_err_set(err, -1, "item %d after ':::' is empty", i - sep);
            total += strlen(argv[i]) + 1;
        }
        if (!(o->memitems = malloc(total ? total : 1))) return mpm_err_set(err, -1, "out of memory");
        for (int i = sep + 1; i < argc; i++) {
            size_t l = strlen(argv[i]) + 1;
            memcpy(o->memitems + o->memlen, argv[i], l);
            o->memlen += l;
        }
        if (o->memlen &&
            mpm_inputs_add(in, (mpm_input_t){.kind = MPM_IN_MEMORY, .name = "the ::: items",
                                             .data = o->memitems, .len = o->memlen}) < 0)
            return mpm_err_set(err, -1, "out of memory");
    } else {
        char *one[1] = {(char *)(o->items ? o->items : "-")};
        if (mpm__inputs_paths(in, 1, one, err) < 0) return -1;
    }

    /* The tasks' environment. */
    int n = 0;
    for (char **e = environ; *e; e++) n++;
    if (!(o->env = calloc((size_t)n + 1, sizeof *o->env))) return mpm_err_set(err, -1, "out of memory");
    int has_omp = 0;
    for (char **e = environ; *e; e++) {
        if (!strncmp(*e, "MPIMAP_TASK=", 12) || !strncmp(*e, "MPIMAP_SLOT=", 12) ||
            !strncmp(*e, "MPIMAP_RANK=", 12))
            continue;
        if (!o->keep_mpi_env && launcher_var(*e)) continue;
        if (!strncmp(*e, "OMP_NUM_THREADS=", 16)) has_omp = 1;
        if (!(o->env[o->nenv] = strdup(*e))) return mpm_err_set(err, -1, "out of memory");
        o->nenv++;
    }
    o->omp = o->cores > 0 && !has_omp;
    return 0;
}

static int exec_pool_threads(const void *op, int requested, int cores)
{
    const exec_opts_t *o = op;
    if (o->slots > 0) return (int)o->slots;
    if (requested > 0) return requested;
    int per = o->cores > 0 ? (int)o->cores : 1;
    int n = o->cores > 0 ? cores / per : cores;
    return n > 0 ? n : 1;
}

static void exec_layout(void *op, int ranks, int rank, int threads, int total)
{
    (void)ranks;
    (void)total;
    exec_opts_t *o = op;
    o->rank = rank;
    o->nslots = threads;
    atomic_store(&o->next_slot, 0);
    if (gethostname(o->host, sizeof o->host - 1) < 0) snprintf(o->host, sizeof o->host, "?");
    for (char *p = o->host; *p; p++)
        if (*p == '\t' || *p == '\n') *p = ' ';
    free(o->slot_sets);
    o->slot_sets = NULL;
    hwloc_topology_t topo = mpm__topo_run_topology();
    hwloc_const_cpuset_t share = mpm__topo_run_cpuset();
    if (!topo || !share) return;
    hwloc_obj_type_t type = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE
                                                                              : HWLOC_OBJ_PU;
    int total_cores = hwloc_get_nbobjs_by_type(topo, type), n = 0;
    hwloc_obj_t *cores = calloc((size_t)(total_cores > 0 ? total_cores : 1), sizeof *cores);
    o->slot_sets = calloc((size_t)threads, sizeof *o->slot_sets);
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    if (!cores || !o->slot_sets || !set) {
        free(o->slot_sets);
        o->slot_sets = NULL;
        free(cores);
        hwloc_bitmap_free(set);
        return;
    }
    for (int i = 0; i < total_cores; i++) {
        hwloc_obj_t c = hwloc_get_obj_by_type(topo, type, (unsigned)i);
        if (c && c->cpuset && hwloc_bitmap_intersects(c->cpuset, share)) cores[n++] = c;
    }
    for (int s = 0; s < threads && n > 0; s++) {
        /* --cores-per-task 0: the rank's whole share (not the pool thread's
         * own core, which a spawned task would inherit otherwise). */
        hwloc_bitmap_copy(set, share);
        if (o->cores > 0) {
            hwloc_bitmap_zero(set);
            for (long long j = 0; j < o->cores; j++)
                hwloc_bitmap_or(set, set, cores[(s * o->cores + j) % n]->cpuset);
            hwloc_bitmap_and(set, set, share);
        }
        hwloc_cpuset_to_glibc_sched_affinity(topo, set, &o->slot_sets[s], sizeof(cpu_set_t));
    }
    if (rank == 0 && o->cores > 0 && (long long)threads * o->cores > n)
        MPM_LOG(MPM_LOG_WARN,
                "exec: %d slots x %lld cores per task exceed the %d core%s of rank 0: tasks "
                "will share cores (fewer --slots-per-rank, or more cores per rank)",
                threads, o->cores, n, n == 1 ? "" : "s");
    if (n == 0) {
        free(o->slot_sets);
        o->slot_sets = NULL;
    }
    free(cores);
    hwloc_bitmap_free(set);
}

/* The command is part of what the journal's fingerprint must cover. */
static int exec_fingerprint(const void *op, mpm_buf_t *out)
{
    const exec_opts_t *o = op;
    int bad = mpm_buf_printf(out, "command") < 0;
    for (int i = 0; i < o->ncmd && !bad; i++)
        bad = mpm_buf_append(out, " ", 1) || shell_quote(out, o->cmd[i], strlen(o->cmd[i]));
    return bad || mpm_buf_append(out, "\n", 1) ? -1 : 0;
}

static const char *const exec_cols[] = {"output", NULL};
static const char *const *exec_columns(const void *op)
{
    (void)op;
    return exec_cols;
}

const mpm_kernel_t mpm_kernel_exec = {
    .abi = MPM_KERNEL_ABI,
    .name = "exec",
    .summary = "run a program over many items, each task pinned to its own cores (like GNU "
               "parallel, inside one MPI job)",
    .synopsis = "[--] COMMAND [ARGS...] [::: ITEM...]",
    .description =
        "Runs COMMAND once per item: the items after ':::', or the lines of --items FILE, or "
        "of standard input. In COMMAND and ARGS, {} is replaced by the item, {.} by the item "
        "without its extension, {/} by its basename, {//} by its directory, {/.} by its "
        "basename without extension, {#} by the task number (1, 2, ...) and {%} by the slot; "
        "without any of them the item is appended as the last argument. The program is "
        "started directly (posix_spawn, no shell): an item is always exactly one argument. For "
        "shell syntax: sh -c 'grep -c x \"$1\"' sh {}.\n\n"
        "Each rank runs --slots-per-rank tasks at once, each pinned to --cores-per-task cores "
        "of its own, in its own process group, with stdin from /dev/null and without the MPI "
        "launcher's variables. The tasks' stdout goes to the output and their stderr to "
        "mpimap's stderr, whole tasks in item order, whatever the number of ranks and slots "
        "(or to one file each with --output-mode files). A failed task (exit status not 0, "
        "killed, timed out, could not start) is reported and the run goes on; mpimap exits 1 "
        "unless every task succeeded. With --journal, --resume skips the tasks that finished "
        "and --resume-failed also runs again those that failed.\n\n"
        "Examples:\n"
        "  mpimap exec -- gzip -9 {} ::: data/*.csv\n"
        "  find in -name '*.fa' | mpirun -np 4 mpimap exec --cores-per-task 2 --joblog "
        "jobs.tsv -- blast.sh {} out/{/.}.txt\n"
        "  mpirun -np 8 mpimap --journal run.journal --resume exec --timeout 600 --items "
        "list.txt -- ./simulate {}",
    .options = exec_options,
    .opts_size = sizeof(exec_opts_t),
    .opts_init = exec_opts_init,
    .check = exec_check,
    .opts_free = exec_opts_free,
    .records = MPM_REC_LINES,
    .default_chunk_size = 1,
    .columns = exec_columns,
    .map = exec_map,
    .source_open = exec_source_open,
    .source_next = exec_source_next,
    .source_close = exec_source_close,
    .sink_open = exec_sink_open,
    .sink_write = exec_sink_write,
    .sink_close = exec_sink_close,
    .layout = exec_layout,
    .pool_threads = exec_pool_threads,
    .fingerprint = exec_fingerprint,
    .failed = exec_failed,
};
