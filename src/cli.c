/*
 * cli.c - the command line: one declarative option table per level (engine,
 * kernel) drives both parsing and --help.
 *
 *   mpimap [engine options] KERNEL [kernel and engine options] INPUT...
 *
 * Every rank parses the same argv the same way, so a usage error is found by
 * all ranks at once without any message: rank 0 prints it, every rank returns
 * MPM_EXIT_USAGE. Thread safety: main thread only.
 */
#include "cli.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

void mpm_config_init(mpm_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->io = MPM_IO_AUTO;
    cfg->format = MPM_FMT_TEXT;
    cfg->bind = MPM_BIND_CORE;
    cfg->grace = 20;
    cfg->progress_interval = 10;
    cfg->trace_max = 20000;
}

/* Engine options. `verbose` counts repetitions. */
static const mpm_option_t engine_options[] = {
    {"threads", 't', MPM_OPT_INT, offsetof(mpm_config_t, threads), "N|auto",
     "compute threads per rank (default auto: one per core the launcher gave the rank)", 1,
     4096, "auto", 0},
    {"chunk-size", 'c', MPM_OPT_SIZE, offsetof(mpm_config_t, chunk_size), "SIZE",
     "target chunk size in bytes (integers for ranges), K/M/G suffixes; chunks end on a record "
     "boundary (default: per kernel)",
     1, -1, NULL, 0},
    {"window", 'w', MPM_OPT_INT, offsetof(mpm_config_t, window), "W",
     "chunks in flight per rank (default: 2 per compute thread)", 1, 1 << 20, NULL, 0},
    {"io", 0, MPM_OPT_CHOICE, offsetof(mpm_config_t, io), "MODE",
     "auto|master|shared: who reads input files; master = rank 0 reads and ships the bytes, "
     "shared = every rank preads its own chunks; auto = shared when every rank sees the same "
     "files (default auto)",
     0, -1, "auto|master|shared", 0},
    {"output", 'o', MPM_OPT_STRING, offsetof(mpm_config_t, output), "PATH",
     "write results to PATH (atomically: a temporary file renamed on success); default "
     "standard output",
     0, -1, NULL, 0},
    {"format", 'f', MPM_OPT_CHOICE, offsetof(mpm_config_t, format), "FMT",
     "text|tsv|json: output format (default text; tsv adds a header line and escapes; json is "
     "an array of objects)",
     0, -1, "text|tsv|json", 0},
    {"bind", 0, MPM_OPT_CHOICE, offsetof(mpm_config_t, bind), "WHAT",
     "core|none: pin each compute thread to one core of the rank's cpuset (default core)", 0, -1,
     "core|none", 0},
    {"report-bindings", 0, MPM_OPT_FLAG, offsetof(mpm_config_t, report_bindings), NULL,
     "print each rank's host, cpuset and the core of every compute thread", 0, -1, NULL, 0},
    {"dedicated-master", 0, MPM_OPT_FLAG, offsetof(mpm_config_t, dedicated_master), NULL,
     "rank 0 only reads, dispatches and writes: it computes no chunk itself when there are "
     "other ranks (for many ranks, or to measure the workers alone)",
     0, -1, NULL, 0},
    {"no-sync", 0, MPM_OPT_FLAG, offsetof(mpm_config_t, no_sync), NULL,
     "rename outputs into place without flushing them to disk first (fsync): faster for large "
     "outputs; a killed run still leaves nothing, but a system crash right after the run may "
     "leave an output empty or partial under its final name",
     0, -1, NULL, 0},
    {"metrics", 0, MPM_OPT_STRING, offsetof(mpm_config_t, metrics), "FILE.json",
     "write the run's counters to FILE.json: options, topology, and per rank and thread the "
     "chunks, bytes, compute, idle, MPI and output times and the share of transfer time hidden "
     "behind computation",
     0, -1, NULL, 0},
    {"trace", 0, MPM_OPT_STRING, offsetof(mpm_config_t, trace), "FILE.json",
     "write a timeline in Chrome trace-event format (Perfetto, chrome://tracing): one track per "
     "rank and thread with receive, compute, send, write and idle spans",
     0, -1, NULL, 0},
    {"trace-max", 0, MPM_OPT_INT, offsetof(mpm_config_t, trace_max), "N",
     "spans kept per thread in --trace (default 20000; later spans are counted, not kept)", 1,
     100000000, NULL, 0},
    {"allow-empty", 0, MPM_OPT_FLAG, offsetof(mpm_config_t, allow_empty), NULL,
     "accept empty input files (an error by default: usually a failed upstream step)", 0, -1,
     NULL, 0},
    {"journal", 'j', MPM_OPT_STRING, offsetof(mpm_config_t, journal), "PATH",
     "record every finished chunk in PATH (durably), so that an interrupted or failed run can "
     "be completed with --resume",
     0, -1, NULL, 0},
    {"resume", 0, MPM_OPT_FLAG, offsetof(mpm_config_t, resume), NULL,
     "continue the run recorded in --journal: finished chunks are not computed again, failed "
     "and missing ones are; the output is identical to an uninterrupted run (a journal that "
     "does not exist yet is created)",
     0, -1, NULL, 0},
    {"resume-failed", 0, MPM_OPT_FLAG, offsetof(mpm_config_t, resume_failed), NULL,
     "--resume, and also compute again the finished chunks whose results record a failure of "
     "their own (exec: tasks that exited non-zero or timed out)",
     0, -1, NULL, 0},
    {"kernel", 0, MPM_OPT_STRING, offsetof(mpm_config_t, kernel), "PATH.so",
     "load the kernel from a plugin (a shared library exporting 'mpimap_kernel', see "
     "docs/KERNELS.md) instead of naming a built-in one; kernel options follow",
     0, -1, NULL, 0},
    {"grace", 0, MPM_OPT_DOUBLE, offsetof(mpm_config_t, grace), "SECONDS",
     "after SIGTERM, SIGINT or SIGUSR1: time running chunks get to finish before mpimap exits "
     "with code 3 (default 20)",
     0, 86400, NULL, 0},
    {"retries", 0, MPM_OPT_INT, offsetof(mpm_config_t, retries), "N",
     "run a chunk that failed up to N more times before recording it as failed (default 0)", 0,
     1000, NULL, 0},
    {"fail-fast", 0, MPM_OPT_FLAG, offsetof(mpm_config_t, fail_fast), NULL,
     "stop the whole run at the first chunk that fails (default: record it, go on, exit 1 at "
     "the end)",
     0, -1, NULL, 0},
    {"progress", 0, MPM_OPT_CHOICE, offsetof(mpm_config_t, progress), "WHEN",
     "auto|on|off: progress on standard error from rank 0: a bar redrawn in place on a "
     "terminal, else a timestamped line every --progress-interval seconds (default auto: "
     "silenced by -q)",
     0, -1, "auto|on|off", 0},
    {"progress-interval", 0, MPM_OPT_DOUBLE, offsetof(mpm_config_t, progress_interval),
     "SECONDS", "seconds between progress lines when standard error is not a terminal "
                "(default 10)",
     0, 86400, NULL, 0},
    {"verbose", 'v', MPM_OPT_FLAG, offsetof(mpm_config_t, verbose), NULL,
     "print a summary line (time, throughput) at the end; twice for debugging details", 0, -1,
     NULL, 0},
    {"quiet", 'q', MPM_OPT_FLAG, offsetof(mpm_config_t, quiet), NULL, "print no warnings", 0, -1,
     NULL, 0},
    {NULL, 0, 0, 0, NULL, NULL, 0, 0, NULL, 0}};

static void usage_error(int rank, const char *kernel, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* This rank's last usage error, for when only some ranks rejected the
 * command line (see mpm_main). */
static char usage_msg[1024];

/* --kernel PATH of this command line: help and messages name the plugin the
 * way it is run. */
static const char *plugin_path;

static void usage_error(int rank, const char *kernel, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(usage_msg, sizeof usage_msg, fmt, ap);
    va_end(ap);
    if (rank != 0) return;
    const char *msg = usage_msg;
    fprintf(stderr, "mpimap: error: %s\n", msg);
    if (kernel && plugin_path)
        fprintf(stderr, "Try 'mpimap --kernel %s --help' for more information.\n", plugin_path);
    else if (kernel)
        fprintf(stderr, "Try 'mpimap %s --help' for more information.\n", kernel);
    else
        fprintf(stderr, "Try 'mpimap --help' for more information.\n");
}

static const mpm_option_t *find_long(const mpm_option_t *t, const char *name, size_t n)
{
    for (; t && t->name; t++)
        if (strlen(t->name) == n && strncmp(t->name, name, n) == 0) return t;
    return NULL;
}

static const mpm_option_t *find_short(const mpm_option_t *t, char c)
{
    for (; t && t->name; t++)
        if (t->short_name && t->short_name == c) return t;
    return NULL;
}

static int choice_index(const char *choices, const char *arg)
{
    int idx = 0;
    size_t n = strlen(arg);
    for (const char *p = choices; *p; idx++) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == n && strncmp(p, arg, n) == 0) return idx;
        if (!bar) break;
        p = bar + 1;
    }
    return -1;
}

/* Stores arg into the field of o in base. Returns 0 or -1 (message printed). */
static int store(int rank, const char *kernel, const mpm_option_t *o, void *base, const char *arg)
{
    char *field = (char *)base + o->offset;
    switch (o->type) {
    case MPM_OPT_FLAG:
        (*(int *)field)++;
        return 0;
    case MPM_OPT_STRING:
        *(const char **)field = arg;
        return 0;
    case MPM_OPT_CHOICE: {
        int i = choice_index(o->choices, arg);
        if (i < 0) {
            usage_error(rank, kernel, "--%s: invalid value '%s' (expected %s)", o->name, arg,
                        o->choices);
            return -1;
        }
        *(int *)field = i;
        return 0;
    }
    case MPM_OPT_INT: {
        long long v;
        if (o->choices && strcmp(arg, o->choices) == 0) {
            *(long long *)field = 0;
            return 0;
        }
        if (mpm__parse_ll(arg, &v) < 0) {
            usage_error(rank, kernel, "--%s: '%s' is not an integer%s%s", o->name, arg,
                        o->choices ? " or " : "", o->choices ? o->choices : "");
            return -1;
        }
        if (o->min <= o->max && (v < o->min || v > o->max)) {
            usage_error(rank, kernel, "--%s: %lld is out of range (expected %lld..%lld)", o->name,
                        v, o->min, o->max);
            return -1;
        }
        *(long long *)field = v;
        return 0;
    }
    case MPM_OPT_SIZE: {
        uint64_t v;
        if (mpm__parse_size(arg, &v) < 0) {
            usage_error(rank, kernel,
                        "--%s: '%s' is not a size (expected a number with an optional K, M, G or "
                        "T suffix)",
                        o->name, arg);
            return -1;
        }
        if (v < (uint64_t)o->min || (o->max >= 0 && o->min <= o->max && v > (uint64_t)o->max)) {
            usage_error(rank, kernel, "--%s: %s is out of range (must be at least %lld)", o->name,
                        arg, o->min);
            return -1;
        }
        *(uint64_t *)field = v;
        return 0;
    }
    case MPM_OPT_DOUBLE: {
        char *end;
        double v = strtod(arg, &end);
        if (!*arg || *end || v != v) {
            usage_error(rank, kernel, "--%s: '%s' is not a number", o->name, arg);
            return -1;
        }
        if (o->min <= o->max && (v < (double)o->min || v > (double)o->max)) {
            usage_error(rank, kernel, "--%s: %s is out of range (expected %lld..%lld)", o->name,
                        arg, o->min, o->max);
            return -1;
        }
        *(double *)field = v;
        return 0;
    }
    }
    return -1;
}

/*
 * Parses one option at argv[*i] against up to two tables (first match wins).
 * Returns 1 if consumed (advancing *i), 0 if argv[*i] is not an option of
 * these tables, -1 on a usage error (printed).
 */
static int parse_option(int rank, const char *kernel, int argc, char **argv, int *i,
                        const mpm_option_t *t1, void *b1, const mpm_option_t *t2, void *b2)
{
    const char *a = argv[*i];
    const mpm_option_t *o = NULL;
    void *base = NULL;
    const char *val = NULL;
    if (a[0] == '-' && a[1] == '-') {
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        if ((o = find_long(t1, name, n)))
            base = b1;
        else if ((o = find_long(t2, name, n)))
            base = b2;
        else
            return 0;
        if (eq) {
            if (o->type == MPM_OPT_FLAG) {
                usage_error(rank, kernel, "option '--%s' takes no value", o->name);
                return -1;
            }
            val = eq + 1;
        }
    } else if (a[0] == '-' && a[1] && a[1] != '-') {
        /* -x, -xVALUE, or a cluster of flags -vq */
        if ((o = find_short(t1, a[1])))
            base = b1;
        else if ((o = find_short(t2, a[1])))
            base = b2;
        else
            return 0;
        if (o->type == MPM_OPT_FLAG) {
            for (const char *p = a + 1; *p; p++) {
                const mpm_option_t *f = find_short(t1, *p);
                void *fb = b1;
                if (!f) {
                    f = find_short(t2, *p);
                    fb = b2;
                }
                if (!f || f->type != MPM_OPT_FLAG) {
                    usage_error(rank, kernel, "unknown option '-%c' in '%s'", *p, a);
                    return -1;
                }
                store(rank, kernel, f, fb, NULL);
            }
            (*i)++;
            return 1;
        }
        if (a[2]) val = a + 2;
    } else {
        return 0;
    }
    if (o->type != MPM_OPT_FLAG && !val) {
        if (*i + 1 >= argc) {
            usage_error(rank, kernel, "option '--%s' needs a value (%s)", o->name,
                        o->argname ? o->argname : "VALUE");
            return -1;
        }
        val = argv[++*i];
    }
    (*i)++;
    return store(rank, kernel, o, base, val) < 0 ? -1 : 1;
}

static void print_wrapped(FILE *f, const char *text, int indent, int width)
{
    int col = indent;
    const char *p = text;
    while (*p) {
        const char *sp = p;
        while (*sp && *sp != ' ' && *sp != '\n') sp++;
        int wl = (int)(sp - p);
        fwrite(p, 1, (size_t)wl, f);
        col += wl;
        if (*sp == '\n') {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
            sp++;
        } else if (*sp == ' ') {
            /* The space is written only if the next word fits on this line. */
            const char *nx = sp + 1;
            while (*nx && *nx != ' ' && *nx != '\n') nx++;
            if (col + 1 + (int)(nx - sp - 1) <= width) {
                fputc(' ', f);
                col++;
            } else {
                fprintf(f, "\n%*s", indent, "");
                col = indent;
            }
            sp++;
        }
        p = sp;
    }
    fputc('\n', f);
}

static void print_options(FILE *f, const mpm_option_t *t)
{
    for (; t && t->name; t++) {
        char left[96];
        int n = snprintf(left, sizeof left, "  %c%c%s--%s%s%s", t->short_name ? '-' : ' ',
                         t->short_name ? t->short_name : ' ', t->short_name ? ", " : "  ", t->name,
                         t->argname ? " " : "", t->argname ? t->argname : "");
        fputs(left, f);
        if (n >= 28) {
            fprintf(f, "\n%*s", 30, "");
        } else {
            fprintf(f, "%*s", 30 - n, "");
        }
        print_wrapped(f, t->help, 30, 79);
    }
}

static void print_help(FILE *f)
{
    fprintf(f,
            "Usage: mpirun -np N mpimap [engine options] KERNEL [kernel options] INPUT...\n"
            "       mpirun -np N mpimap [engine options] --kernel PLUGIN.so [kernel options] INPUT...\n"
            "       mpimap --help | --version | kernels | KERNEL --help\n\n"
            "Maps a computation over a dataset: rank 0 splits the input into record-aligned\n"
            "chunks and hands them to every rank (itself included) on demand; each rank\n"
            "computes on a pool of threads pinned to the cores it was given; results are\n"
            "reduced or written in input order. The output is the same for any number of\n"
            "ranks and threads.\n\n"
            "Engine options (also accepted after KERNEL):\n");
    print_options(f, engine_options);
    fprintf(f, "  -h, --help                  show this help (after KERNEL: the kernel's help)\n"
               "  -V, --version               show the version\n\nKernels:\n");
    for (const mpm_kernel_t *const *k = mpm_kernels(); *k; k++)
        fprintf(f, "  %-12s %s\n", (*k)->name, (*k)->summary);
    fprintf(f, "\nFailures: a chunk whose computation fails is retried --retries times, then\n"
               "reported (and recorded in the journal); the run goes on. When chunks failed,\n"
               "-o PATH is not replaced: the rows of every other chunk go to PATH.incomplete.\n"
               "Signals: SIGTERM, SIGINT or SIGUSR1 stop dispatching, let running chunks finish\n"
               "(--grace), sync the journal and exit 3. Under mpirun send SIGUSR1 (mpirun kills\n"
               "its ranks about a second after it gets SIGTERM); see jobs/ for batch scripts.\n"
               "\nExit status: 0 success, 1 failure in the data or the run (some chunks failed),\n"
               "2 usage error, 3 interrupted by a signal (resume with --journal PATH --resume).\n"
               "Examples:\n"
               "  mpirun -np 4 mpimap wordcount --top 10 corpus.txt\n"
               "  mpimap --threads 2 primes 1:100000000\n"
               "  mpirun -np 2 mpimap fib 30 35 40 45\n"
               "  mpirun -np 8 mpimap --journal wc.journal --resume wordcount -o wc.txt big/*.txt\n");
}

static void print_kernel_help(FILE *f, const mpm_kernel_t *k)
{
    if (plugin_path)
        fprintf(f, "Usage: mpimap [engine options] --kernel %s [options] %s\n\n", plugin_path,
                k->synopsis ? k->synopsis : "");
    else
        fprintf(f, "Usage: mpimap [engine options] %s [options] %s\n\n", k->name,
                k->synopsis ? k->synopsis : "");
    print_wrapped(f, k->summary, 0, 79);
    if (k->description) {
        fputc('\n', f);
        fputs(k->description, f);
        if (k->description[strlen(k->description) - 1] != '\n') fputc('\n', f);
    }
    if (k->options && k->options->name) {
        fprintf(f, "\nOptions:\n");
        print_options(f, k->options);
    }
    fprintf(f, "\nDefault chunk size: %llu %s. Engine options: see 'mpimap --help'.\n",
            (unsigned long long)k->default_chunk_size,
            k->source_open                ? "(the kernel cuts its inputs itself)"
            : k->record_size && k->records == MPM_REC_LINES
                ? "bytes (chunks end on line boundaries, or on whole records of raw input)"
            : k->records == MPM_REC_LINES ? "bytes (chunks end on line boundaries; integers "
                                            "for a range input)"
                                          : "bytes (chunks end on word boundaries)");
}

/* --kernel PATH: the plugin's kernel table, or NULL after printing why not.
 * The library stays loaded until the process exits. */
static const mpm_kernel_t *load_plugin(int rank, const char *path)
{
    const char *arg = path; /* argv: outlives the run */
    char local[4096];
    /* dlopen() searches the library path for a bare name: a file of that
     * name in the current directory is what the user means. */
    if (!strchr(path, '/') && access(path, F_OK) == 0 &&
        (size_t)snprintf(local, sizeof local, "./%s", path) < sizeof local)
        path = local;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        usage_error(rank, NULL, "--kernel: cannot load the plugin: %s", why ? why : path);
        return NULL;
    }
    dlerror();
    const mpm_kernel_t *k = dlsym(h, MPM_KERNEL_SYMBOL);
    if (!k) {
        usage_error(rank, NULL,
                    "--kernel '%s': the library has no symbol '%s': a kernel plugin defines "
                    "'MPM_KERNEL_EXPORT const mpm_kernel_t %s = {...};' (see docs/KERNELS.md)",
                    path, MPM_KERNEL_SYMBOL, MPM_KERNEL_SYMBOL);
        dlclose(h);
        return NULL;
    }
    if (k->abi != MPM_KERNEL_ABI) {
        usage_error(rank, NULL,
                    "--kernel '%s': the plugin was built for kernel ABI %u, this mpimap (%s) has "
                    "ABI %d: rebuild it against this mpimap's <mpimap/kernel.h>",
                    path, k->abi, MPM_VERSION, MPM_KERNEL_ABI);
        dlclose(h);
        return NULL;
    }
    /* What the engine calls without checking: each hook, or each group of
     * hooks that go together, must be complete. */
    const char *missing =
        !k->name || !k->name[0]                               ? "name"
        : !k->summary                                         ? "summary"
        : !k->check                                           ? "check"
        : !k->map                                             ? "map"
        : !k->columns && !k->sink_open && !k->solve           ? "columns (or a sink)"
        : k->partial_new && !k->partial_free                  ? "partial_free (with partial_new)"
        : k->partial_new && !k->merge                         ? "merge (with partial_new)"
        : k->partial_new && !k->solve && !k->finish           ? "finish (with partial_new)"
        : k->partial_new && !k->solve && (!k->serialize || !k->deserialize)
            ? "serialize/deserialize (with partial_new)"
        : k->solve && !k->partial_new                         ? "partial_new (with solve)"
        : k->source_open && (!k->source_next || !k->source_close)
            ? "source_next/source_close (with source_open)"
        : k->sink_open && (!k->sink_write || !k->sink_close)
            ? "sink_write/sink_close (with sink_open)"
                                                              : NULL;
    if (missing) {
        usage_error(rank, NULL, "--kernel '%s': the kernel table has no '%s' (it is required)",
                    path, missing);
        dlclose(h);
        return NULL;
    }
    plugin_path = arg;
    if (mpm_kernel_find(k->name) && rank == 0 && !mpm__log_quiet)
        fprintf(stderr, "mpimap: note: plugin kernel '%s' (%s) has the name of a built-in "
                        "kernel; the plugin runs\n", k->name, path);
    return k;
}

static int parse_kernel(int argc, char **argv, int i, int rank, mpm_cli_t *cli,
                        const mpm_kernel_t *k);

int mpm__cli_parse(int argc, char **argv, int rank, mpm_cli_t *cli)
{
    memset(cli, 0, sizeof *cli);
    mpm_config_init(&cli->cfg);
    int i = 1;
    while (i < argc && argv[i][0] == '-' && argv[i][1] && !cli->cfg.kernel) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            if (rank == 0) print_help(stdout);
            return MPM_CLI_DONE;
        }
        if (!strcmp(argv[i], "-V") || !strcmp(argv[i], "--version")) {
            if (rank == 0) printf("mpimap %s (kernel ABI %d)\n", MPM_VERSION, MPM_KERNEL_ABI);
            return MPM_CLI_DONE;
        }
        int r = parse_option(rank, NULL, argc, argv, &i, engine_options, &cli->cfg, NULL, NULL);
        if (r < 0) return MPM_CLI_USAGE;
        if (r == 0) {
            usage_error(rank, NULL, "unknown option '%s'", argv[i]);
            return MPM_CLI_USAGE;
        }
    }
    const mpm_kernel_t *k;
    if (cli->cfg.kernel) {
        if (!(k = load_plugin(rank, cli->cfg.kernel))) return MPM_CLI_USAGE;
        return parse_kernel(argc, argv, i, rank, cli, k);
    }
    if (i >= argc) {
        usage_error(rank, NULL, "no kernel given (try 'mpimap kernels')");
        return MPM_CLI_USAGE;
    }
    const char *name = argv[i++];
    if (!strcmp(name, "kernels")) {
        if (rank == 0)
            for (const mpm_kernel_t *const *kk = mpm_kernels(); *kk; kk++)
                printf("%-12s %s\n", (*kk)->name, (*kk)->summary);
        return MPM_CLI_DONE;
    }
    if (!strcmp(name, "help")) {
        if (rank == 0) print_help(stdout);
        return MPM_CLI_DONE;
    }
    k = mpm_kernel_find(name);
    if (!k) {
        usage_error(rank, NULL, "unknown kernel '%s' (try 'mpimap kernels')", name);
        return MPM_CLI_USAGE;
    }
    if (k->abi != MPM_KERNEL_ABI) {
        usage_error(rank, NULL, "kernel '%s' was built for kernel ABI %u, this mpimap has %d",
                    name, k->abi, MPM_KERNEL_ABI);
        return MPM_CLI_USAGE;
    }
    return parse_kernel(argc, argv, i, rank, cli, k);
}

/* The kernel's options and arguments, from argv[i] on. */
static int parse_kernel(int argc, char **argv, int i, int rank, mpm_cli_t *cli,
                        const mpm_kernel_t *k)
{
    cli->kernel = k;
    cli->opts = calloc(1, k->opts_size ? k->opts_size : 1);
    cli->args = calloc((size_t)argc + 1, sizeof *cli->args);
    if (!cli->opts || !cli->args) {
        usage_error(rank, NULL, "out of memory");
        return MPM_CLI_USAGE;
    }
    if (k->opts_init) k->opts_init(cli->opts);
    int only_args = 0;
    while (i < argc) {
        const char *a = argv[i];
        if (!only_args && !strcmp(a, "--")) {
            only_args = 1;
            i++;
            continue;
        }
        if (!only_args && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            if (rank == 0) print_kernel_help(stdout, k);
            return MPM_CLI_DONE;
        }
        if (!only_args && a[0] == '-' && a[1]) {
            int r = parse_option(rank, k->name, argc, argv, &i, k->options, cli->opts,
                                 engine_options, &cli->cfg);
            if (r < 0) return MPM_CLI_USAGE;
            if (r == 0) {
                /* A negative number is a positional argument (e.g. fib -1: an error there). */
                long long dummy;
                if (mpm__parse_ll(a, &dummy) == 0) {
                    cli->args[cli->nargs++] = argv[i++];
                    continue;
                }
                usage_error(rank, k->name, "unknown option '%s'", a);
                return MPM_CLI_USAGE;
            }
            continue;
        }
        cli->args[cli->nargs++] = argv[i++];
    }
    /* engine options may also follow the kernel name */
    if (cli->cfg.resume_failed) cli->cfg.resume = 1;
    mpm_err_t err = {.offset = -1, .msg = ""};
    if (k->check(cli->opts, cli->nargs, cli->args, &cli->inputs, &err) < 0) {
        usage_error(rank, k->name, "%s", err.msg);
        return MPM_CLI_USAGE;
    }
    if (cli->cfg.verbose && cli->cfg.quiet) {
        usage_error(rank, k->name, "-v and -q exclude each other");
        return MPM_CLI_USAGE;
    }
    if (cli->cfg.progress_interval < 0.1) {
        usage_error(rank, k->name, "--progress-interval: %g is too small (at least 0.1 s)",
                    cli->cfg.progress_interval);
        return MPM_CLI_USAGE;
    }
    if (cli->cfg.resume && !cli->cfg.journal) {
        usage_error(rank, k->name, "--resume needs --journal PATH (the journal of the run to continue)");
        return MPM_CLI_USAGE;
    }
    if (cli->cfg.journal) {
        for (int n = 0; n < cli->inputs.n; n++) {
            const mpm_input_t *in = &cli->inputs.v[n];
            if (in->kind == MPM_IN_STDIN) {
                usage_error(rank, k->name,
                            "--journal cannot be used with standard input: it cannot be read "
                            "again to resume; save it to a file first");
                return MPM_CLI_USAGE;
            }
            if (in->kind == MPM_IN_FILE && !strcmp(in->name, cli->cfg.journal)) {
                usage_error(rank, k->name, "journal '%s' is also an input", cli->cfg.journal);
                return MPM_CLI_USAGE;
            }
        }
        if (cli->cfg.output && !strcmp(cli->cfg.output, cli->cfg.journal)) {
            usage_error(rank, k->name, "the journal and the output are the same file '%s'",
                        cli->cfg.journal);
            return MPM_CLI_USAGE;
        }
    }
    if (cli->cfg.output && strcmp(cli->cfg.output, "-")) {
        for (int n = 0; n < cli->inputs.n; n++) {
            const mpm_input_t *in = &cli->inputs.v[n];
            if (in->kind == MPM_IN_FILE && !strcmp(in->name, cli->cfg.output)) {
                usage_error(rank, k->name, "output '%s' is also an input: refusing to overwrite it",
                            cli->cfg.output);
                return MPM_CLI_USAGE;
            }
        }
    }
    return MPM_CLI_RUN;
}

int mpm__option_value(mpm_buf_t *b, const mpm_option_t *o, const void *base, int json)
{
    const char *f = (const char *)base + o->offset;
    switch (o->type) {
    case MPM_OPT_FLAG:
    case MPM_OPT_CHOICE: {
        int v;
        memcpy(&v, f, sizeof v);
        if (!json) return mpm_buf_printf(b, "%d", v) < 0 ? -1 : 0;
        if (o->type == MPM_OPT_FLAG) return mpm_buf_printf(b, "%s", v ? "true" : "false") < 0 ? -1 : 0;
        const char *c = o->choices;
        for (int i = 0; i < v && c; i++) {
            c = strchr(c, '|');
            if (c) c++;
        }
        return c ? mpm__json_string(b, c, strcspn(c, "|")) : mpm_buf_printf(b, "%d", v) < 0 ? -1 : 0;
    }
    case MPM_OPT_INT: {
        long long v;
        memcpy(&v, f, sizeof v);
        return mpm_buf_printf(b, "%lld", v) < 0 ? -1 : 0;
    }
    case MPM_OPT_SIZE: {
        uint64_t v;
        memcpy(&v, f, sizeof v);
        return mpm_buf_printf(b, "%llu", (unsigned long long)v) < 0 ? -1 : 0;
    }
    case MPM_OPT_DOUBLE: {
        double v;
        memcpy(&v, f, sizeof v);
        return mpm_buf_printf(b, "%.17g", v) < 0 ? -1 : 0;
    }
    default: {
        const char *v;
        memcpy(&v, f, sizeof v);
        if (!json) return 1;
        return v ? mpm__json_string(b, v, strlen(v)) : mpm_buf_printf(b, "null") < 0 ? -1 : 0;
    }
    }
}

const mpm_option_t *mpm__engine_options(void) { return engine_options; }

int mpm__options_json(mpm_buf_t *b, const mpm_option_t *table, const void *base)
{
    if (!table) table = engine_options;
    int bad = mpm_buf_append(b, "{", 1);
    for (const mpm_option_t *o = table; o->name && !bad; o++)
        bad = mpm_buf_printf(b, "%s\"%s\": ", o == table ? "" : ", ", o->name) < 0 ||
              mpm__option_value(b, o, base, 1) != 0;
    if (!bad) bad = mpm_buf_append(b, "}", 1);
    return bad ? -1 : 0;
}

void mpm__cli_free(mpm_cli_t *cli)
{
    if (cli->kernel && cli->kernel->opts_free && cli->opts) cli->kernel->opts_free(cli->opts);
    free(cli->opts);
    free(cli->args);
    free(cli->inputs.v);
    memset(cli, 0, sizeof *cli);
}

int mpm_main(int argc, char **argv, MPI_Comm comm)
{
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    mpm__log_rank = rank;
    mpm_cli_t cli;
    int r = mpm__cli_parse(argc, argv, rank, &cli);
    /* Every rank parses the same arguments, but a kernel's check() may look
     * at the filesystem (image lists directories): the ranks must agree on
     * the outcome and on the inputs, or the run would not be the same on
     * every rank. */
    int n = r == MPM_CLI_RUN ? cli.inputs.n : -1;
    int v[4] = {r, -r, n, -n}, mx[4];
    MPI_Allreduce(v, mx, 4, MPI_INT, MPI_MAX, comm);
    if (mx[0] != -mx[1] || mx[2] != -mx[3]) {
        if (mx[0] == MPM_CLI_USAGE) {
            if (r == MPM_CLI_USAGE && rank != 0)
                fprintf(stderr, "mpimap: error: rank %d: %s\n", rank, usage_msg);
        } else if (rank == 0) {
            fprintf(stderr,
                    "mpimap: error: the ranks see different inputs (from %d to %d files): every "
                    "rank must see the same files and directories\n",
                    -mx[3], mx[2]);
        }
        r = MPM_CLI_USAGE;
    }
    int rc;
    if (r == MPM_CLI_DONE) {
        rc = MPM_EXIT_OK;
    } else if (r == MPM_CLI_USAGE) {
        rc = MPM_EXIT_USAGE;
    } else {
        mpm__log_verbose = cli.cfg.verbose;
        mpm__log_quiet = cli.cfg.quiet;
        rc = mpm_run(&cli.cfg, cli.kernel, cli.opts, &cli.inputs, comm);
    }
    fflush(stdout);
    mpm__cli_free(&cli);
    return rc;
}
