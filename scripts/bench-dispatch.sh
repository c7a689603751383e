#!/usr/bin/env bash
# scripts/bench-dispatch.sh - how many chunk descriptors per second one master
# hands out, with many oversubscribed ranks and chunks of one tiny record
# each, next to a minimal hand-written MPI master/worker loop.
#
#   scripts/bench-dispatch.sh [--quick] [--perf] [-h|--help]
#
# Input: N lines (1,000,000; 100,000 with --quick), each its own chunk (-c 1
# ends a chunk at the first newline), padded so that the file has at least
# 1 MiB (--io master then takes the engine's path for regular files: a
# 64-byte header message, then the chunk's bytes in a second message straight
# from rank 0's mapping). Kernel `test --mode noop` (nothing per chunk), -t 1,
# mpirun --oversubscribe --bind-to none, -np in NPS. REPS runs of every
# command, alternated, median:
#   table 1  the default window (2 chunks in flight per rank): rank 0 computes
#            too, or --dedicated-master; --io shared or --io master
#   table 2  --dedicated-master with --window W for W in WINDOWS, on N/10 lines
#   anchor   build-bench/mpimap-dispatch-anchor (C source below, built with
#            mpicc): rank 0 keeps W 64-byte descriptors in flight per worker
#            (MPI_Send) and answers each 128-byte result (MPI_Recv from any
#            source) with the next descriptor: the raw MPI rate of the pattern
# Reported: chunks/s = chunks / engine time (the -v summary line), net of
# set-up (the engine time of a 1-chunk run on as many ranks, measured REPS
# times too), and rank 0's CPU time (user + system of its process, net of the
# 1-chunk run) per chunk in microseconds. All ranks share this machine's
# cores: workers, their pool threads and the master compete for them.
# --perf also profiles rank 0 (perf record; -np 8, --dedicated-master,
# --window 32, each --io mode) and prints its top symbols.
#
# Results: Markdown on stdout and in build-bench/dispatch.md; JSON in
# bench/results/dispatch.json (build-bench/dispatch-quick.json with --quick).
# Environment: REPS (default 3), N (lines of table 1), NPS (default
# "2 4 8 16 32"), WINDOWS (default "1 2 8 32"), RUN_TIMEOUT (seconds per run,
# default 900; a run that times out or fails is reported and skipped),
# BENCH_DIR (data, default data/bench), RESULTS (JSON path). Measurements
# hold an exclusive lock on /tmp/mpimap-bench.lock (shared with the other
# benchmarks). Exit status 1 when a run failed or timed out.

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

QUICK=0
PERF=0
for a in "$@"; do
    case "$a" in
    --quick) QUICK=1 ;;
    --perf) PERF=1 ;;
    -h | --help)
        sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *)
        echo "bench-dispatch.sh: unknown argument '$a' (see --help)" >&2
        exit 2
        ;;
    esac
done

install_deps "${BUILD_DEPS[@]}"
[ "$PERF" = 1 ] && install_deps linux-perf
build "$MPIMAP_ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release -DMPIMAP_TESTS=OFF
B="$MPIMAP_ROOT/build-bench"
MPIMAP="$B/mpimap"
ANCHOR="$B/mpimap-dispatch-anchor"
PY=/usr/bin/python3

if [ "$QUICK" = 1 ]; then
    N="${N:-100000}"
    RESULTS="${RESULTS:-$B/dispatch-quick.json}"
else
    N="${N:-1000000}"
    RESULTS="${RESULTS:-$MPIMAP_ROOT/bench/results/dispatch.json}"
fi
NW=$((N / 10))
REPS="${REPS:-3}"
NPS="${NPS:-2 4 8 16 32}"
WINDOWS="${WINDOWS:-1 2 8 32}"
RUN_TIMEOUT="${RUN_TIMEOUT:-900}"
DATA="${BENCH_DIR:-$MPIMAP_ROOT/data/bench}"
MD="$B/dispatch.md"
TMPD=$(mktemp -d /tmp/mpimap-bench-dispatch.XXXXXX)
trap 'rm -rf "$TMPD"' EXIT
mkdir -p "$DATA" "$(dirname "$RESULTS")"

# ------------------------------------------------------------ the anchor
cat > "$B/dispatch-anchor.c" << 'EOF'
/* mpimap-dispatch-anchor N W: the raw MPI rate of mpimap's dispatch pattern.
 * Rank 0 keeps W 64-byte descriptors in flight per worker and answers every
 * 128-byte result (from any source) with the next descriptor; workers answer
 * each descriptor at once. Prints descriptors per second. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    long long n = argc > 1 ? atoll(argv[1]) : 1000000, sent = 0, got = 0;
    int w = argc > 2 ? atoi(argv[2]) : 2;
    long long d[8] = {0}, r[16] = {0}; /* descriptor: 64 bytes, result: 128 */
    MPI_Status st;
    if (size < 2 || n < 1 || w < 1) {
        if (rank == 0) fprintf(stderr, "usage: mpirun -np P (P >= 2) mpimap-dispatch-anchor N W\n");
        MPI_Finalize();
        return 2;
    }
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    if (rank == 0) {
        for (int k = 0; k < w; k++)
            for (int p = 1; p < size && sent < n; p++) {
                d[0] = sent++;
                MPI_Send(d, 64, MPI_BYTE, p, 1, MPI_COMM_WORLD);
            }
        while (got < n) {
            MPI_Recv(r, 128, MPI_BYTE, MPI_ANY_SOURCE, 2, MPI_COMM_WORLD, &st);
            got++;
            if (sent < n) {
                d[0] = sent++;
                MPI_Send(d, 64, MPI_BYTE, st.MPI_SOURCE, 1, MPI_COMM_WORLD);
            }
        }
        d[0] = -1;
        for (int p = 1; p < size; p++) MPI_Send(d, 64, MPI_BYTE, p, 1, MPI_COMM_WORLD);
        double t = MPI_Wtime() - t0;
        printf("anchor: %lld descriptors, %d ranks, window %d: %.6f s, %.0f per s\n", n, size, w,
               t, (double)n / t);
    } else {
        for (;;) {
            MPI_Recv(d, 64, MPI_BYTE, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            if (d[0] < 0) break;
            r[0] = d[0];
            MPI_Send(r, 128, MPI_BYTE, 0, 2, MPI_COMM_WORLD);
        }
    }
    MPI_Finalize();
    return 0;
}
EOF
log "building $ANCHOR"
mpicc -O2 -Wall -o "$ANCHOR" "$B/dispatch-anchor.c"

# ------------------------------------------------------------ inputs
# lines_file N: a file of N equal lines, each at least 2 bytes, together at
# least 1 MiB (MAP_MIN in src/split.c); generated once. Prints its path.
lines_file() {
    local n=$1 w f
    w=$(((1048576 + n - 1) / n))
    [ "$w" -lt 2 ] && w=2
    f="$DATA/dispatch-$n.txt"
    if [ "$(stat -c %s "$f" 2> /dev/null || echo 0)" != $((n * w)) ]; then
        awk -v n="$n" -v w="$w" 'BEGIN { s = sprintf("%0" (w - 1) "d", 1); for (i = 0; i < n; i++) print s }' \
            > "$f.tmp.$$"
        mv "$f.tmp.$$" "$f"
    fi
    cat "$f" > /dev/null # into the page cache
    echo "$f"
}
F1=$(lines_file "$N")
FW=$(lines_file "$NW")
ONE="$DATA/dispatch-one.txt"
printf '1\n' > "$ONE"
BYTES1=$(stat -c %s "$F1")
BYTESW=$(stat -c %s "$FW")

# One benchmark at a time on this machine (scripts/bench*.sh take the same lock).
bench_lock
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
T_BEGIN=$EPOCHREALTIME

# ------------------------------------------------------------ measuring
REC="$TMPD/records.tsv" # table np config window chunks rc engine_s cpu_s
: > "$REC"
PROBLEMS="$TMPD/problems.txt"
: > "$PROBLEMS"
NFAIL=0

# Rank 0 runs its command as a child of bash and writes the child's CPU time
# (bash's `times`, second line) to the file given as $1; the others exec it.
# shellcheck disable=SC2016 # expanded by the bash that mpirun starts
R0='cpu=$1; shift; [ "${OMPI_COMM_WORLD_RANK:-0}" = 0 ] || exec "$@"; "$@"; rc=$?; times > "$cpu"; exit "$rc"'

# failed LABEL RC REPRO: records a failed or timed-out run.
failed() {
    local what="exit $2"
    [ "$2" = 124 ] && what="timed out after $RUN_TIMEOUT s"
    NFAIL=$((NFAIL + 1))
    cp "$TMPD/err" "$DATA/dispatch-failed-$NFAIL.err" 2> /dev/null || true
    echo "$1: $what (stderr: $DATA/dispatch-failed-$NFAIL.err): $3" >> "$PROBLEMS"
    echo "bench-dispatch.sh: $1: $what: $3" >&2
    tail -n 5 "$TMPD/err" >&2 || true
}

# engine TABLE CONFIG WINDOW NP FILE BYTES ARGS...: one mpimap run of the noop
# kernel over FILE; appends a record.
engine() {
    local table=$1 config=$2 window=$3 np=$4 f=$5 bytes=$6 rc=0 line c="" e="" cpu=""
    shift 6
    rm -f "$TMPD/cpu"
    timeout -k 10 "$RUN_TIMEOUT" mpirun --oversubscribe --bind-to none -np "$np" \
        bash -c "$R0" rank0 "$TMPD/cpu" "$MPIMAP" -v -t 1 -c 1 "$@" test --mode noop "$f" \
        > "$TMPD/out" 2> "$TMPD/err" < /dev/null || rc=$?
    local repro="mpirun --oversubscribe --bind-to none -np $np $MPIMAP -v -t 1 -c 1 $* test --mode noop $f"
    if [ "$rc" = 0 ]; then
        line=$(sed -n 's/^mpimap: .* test: \([0-9]*\) chunks, .* in \([0-9.]*\) s (.*/\1 \2/p' "$TMPD/err" | tail -n 1)
        c=${line% *}
        e=${line#* }
        cpu=$(awk 'function s(x, a) { split(x, a, "m"); sub("s", "", a[2]); return a[1] * 60 + a[2] }
                   NR == 2 { printf "%.3f", s($1) + s($2) }' "$TMPD/cpu" 2> /dev/null || true)
        if [ -z "$line" ] || [ "$(cat "$TMPD/out")" != "$bytes" ]; then
            echo "unexpected output: '$(head -c 100 "$TMPD/out")' (expected $bytes), summary '$line'" >> "$TMPD/err"
            rc=99
        fi
    fi
    if [ "$rc" != 0 ]; then
        failed "np $np $config window $window" "$rc" "$repro"
        c="" e="" cpu=""
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$table" "$np" "$config" "$window" "$c" "$rc" "$e" "$cpu" >> "$REC"
    log "$table np=$np $config w=$window: ${c:-?} chunks in ${e:-?} s, rank 0 CPU ${cpu:-?} s"
}

# anchor TABLE NP N W: one run of the plain MPI anchor; appends a record.
anchor() {
    local table=$1 np=$2 n=$3 w=$4 rc=0 e=""
    timeout -k 10 "$RUN_TIMEOUT" mpirun --oversubscribe --bind-to none -np "$np" "$ANCHOR" "$n" "$w" \
        > "$TMPD/out" 2> "$TMPD/err" < /dev/null || rc=$?
    if [ "$rc" = 0 ]; then
        e=$(sed -n 's/^anchor: .*: \([0-9.]*\) s, .*/\1/p' "$TMPD/out")
        [ -n "$e" ] || rc=99
    fi
    [ "$rc" = 0 ] || failed "np $np anchor window $w" "$rc" \
        "mpirun --oversubscribe --bind-to none -np $np $ANCHOR $n $w"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$table" "$np" anchor "$w" "$n" "$rc" "$e" "" >> "$REC"
    log "$table np=$np anchor w=$w: $n descriptors in ${e:-?} s"
}

for np in $NPS; do
    for ((r = 1; r <= REPS; r++)); do
        engine base base 2 "$np" "$ONE" 2 --io shared
        engine default shared 2 "$np" "$F1" "$BYTES1" --io shared
        engine default master 2 "$np" "$F1" "$BYTES1" --io master
        engine default dedicated-shared 2 "$np" "$F1" "$BYTES1" --dedicated-master --io shared
        engine default dedicated-master 2 "$np" "$F1" "$BYTES1" --dedicated-master --io master
        anchor default "$np" "$N" 2
    done
done
for np in $NPS; do
    for ((r = 1; r <= REPS; r++)); do
        for w in $WINDOWS; do
            engine window dedicated-master "$w" "$np" "$FW" "$BYTESW" --dedicated-master --io master --window "$w"
            engine window dedicated-shared "$w" "$np" "$FW" "$BYTESW" --dedicated-master --io shared --window "$w"
            anchor window "$np" "$NW" "$w"
        done
    done
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(awk -v s="$T_BEGIN" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.0f", e - s }')

# ------------------------------------------------------------ report
VERSION=$(git -C "$MPIMAP_ROOT" describe --always --dirty 2> /dev/null || echo unknown)
MPIVER=$(mpirun --version 2> /dev/null | head -n 1)
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
CPU="$CPU" MPIVER="$MPIVER" VERSION="$VERSION" F1="$F1" FW="$FW" \
    "$PY" - "$REC" "$RESULTS" "$PROBLEMS" << PYEOF | tee "$MD"
import datetime, json, os, socket, statistics, sys

rec_path, out_path, problems_path = sys.argv[1:4]
CPU, MPIVER = os.environ["CPU"], os.environ["MPIVER"]
N, NW, REPS, QUICK = $N, $NW, $REPS, $QUICK
NPS = [int(x) for x in "$NPS".split()]
WINDOWS = [int(x) for x in "$WINDOWS".split()]
rows = []
with open(rec_path) as f:
    for line in f:
        t, np_, cfg, w, c, rc, e, cpu = line.rstrip("\n").split("\t")
        rows.append(dict(table=t, np=int(np_), config=cfg, window=int(w),
                         chunks=int(c) if c else None, rc=int(rc),
                         engine_s=float(e) if e else None, cpu_s=float(cpu) if cpu else None))

def runs(table, np_, cfg, w):
    return [r for r in rows if (r["table"], r["np"], r["config"], r["window"]) == (table, np_, cfg, w)]

def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None

base = {}
for np_ in NPS:
    b = runs("base", np_, "base", 2)
    base[np_] = (med(r["engine_s"] for r in b), med(r["cpu_s"] for r in b))

results = []
def summarise(table, np_, cfg, w):
    rs = runs(table, np_, cfg, w)
    ok = [r for r in rs if r["rc"] == 0]
    s = dict(table=table, np=np_, config=cfg, window=w, runs=len(rs), failed=len(rs) - len(ok),
             times_s=[r["engine_s"] for r in ok])
    if cfg == "anchor":
        s["descriptors"] = ok[0]["chunks"] if ok else None
        m = med(s["times_s"])
        s["median_s"] = m
        s["per_s"] = round(s["descriptors"] / m) if m else None
        s["us_per_descriptor"] = round(1e6 * m / s["descriptors"], 3) if m else None
    else:
        be, bc = base[np_]
        c = ok[0]["chunks"] if ok else None
        s["chunks"] = c
        s["rank0_cpu_s"] = [r["cpu_s"] for r in ok]
        net = [r["engine_s"] - be if be is not None and r["engine_s"] > be else r["engine_s"] for r in ok]
        m = med(net)
        s["median_engine_s"] = med(s["times_s"])
        s["setup_s"] = be
        s["median_net_s"] = m
        s["chunks_per_s"] = round((c - 1) / m) if m else None
        s["us_per_chunk"] = round(1e6 * m / (c - 1), 3) if m else None
        mc = med(s["rank0_cpu_s"])
        s["rank0_cpu_us_per_chunk"] = (round(1e6 * (mc - (bc or 0)) / (c - 1), 3)
                                       if mc is not None else None)
    results.append(s)
    return s

def cell(s):
    if s.get("chunks_per_s") is None and s.get("per_s") is None:
        return "failed" if s["runs"] else "-"
    star = " (%d of %d failed)" % (s["failed"], s["runs"]) if s["failed"] else ""
    if s["config"] == "anchor":
        return "%.1fk%s" % (s["per_s"] / 1e3, star)
    cpu = s["rank0_cpu_us_per_chunk"]
    return "%.1fk (%s)%s" % (s["chunks_per_s"] / 1e3, "%.1f" % cpu if cpu is not None else "?", star)

def ratio(a, b):
    return "%.2f" % (a / b) if a and b else "-"

print("## Dispatch at scale: %d cores (%s), %s, %s" % (os.cpu_count(), CPU, MPIVER,
      datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")))
print()
print("Kernel \`test --mode noop\`, one line per chunk (\`-c 1\`), \`-t 1\`, \`mpirun --oversubscribe"
      " --bind-to none\`; median of %d alternated runs. Cells: thousands of chunks per second"
      " (chunks / engine time net of set-up), and in parentheses rank 0's CPU time per chunk in"
      " µs. Anchor: a plain MPI master/worker loop with 64-byte descriptors, the same window." % REPS)
print()
print("### 1. Default window (2 chunks in flight per rank), %d chunks" % N)
print()
print("| ranks | rank 0 computes, --io shared | rank 0 computes, --io master | --dedicated-master, --io shared"
      " | --dedicated-master, --io master | plain MPI anchor | best engine / anchor | set-up (1 chunk) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for np_ in NPS:
    ss = [summarise("default", np_, c, 2) for c in ("shared", "master", "dedicated-shared", "dedicated-master")]
    a = summarise("default", np_, "anchor", 2)
    best = max((s["chunks_per_s"] or 0) for s in ss)
    print("| %d | %s | %s | %s | %s | %s | %s | %s |" % (
        np_, *[cell(s) for s in ss], cell(a), ratio(best, a.get("per_s")),
        "%.3f s" % base[np_][0] if base[np_][0] is not None else "-"))
print()
print("### 2. --dedicated-master, --window W, %d chunks" % NW)
print()
print("| ranks | window | --io master | --io shared | plain MPI anchor | --io master / anchor"
      " | µs per chunk (best) | chunk time to keep the workers busy |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for np_ in NPS:
    for w in WINDOWS:
        m = summarise("window", np_, "dedicated-master", w)
        s = summarise("window", np_, "dedicated-shared", w)
        a = summarise("window", np_, "anchor", w)
        us = min([x["us_per_chunk"] for x in (m, s) if x["us_per_chunk"]] or [0])
        busy = "%.0f µs" % (us * (np_ - 1)) if us else "-"
        print("| %d | %d | %s | %s | %s | %s | %s | %s |" % (
            np_, w, cell(m), cell(s), cell(a), ratio(m["chunks_per_s"], a.get("per_s")),
            "%.2f" % us if us else "-", busy))
print()
print("Chunk time to keep the workers busy: (ranks - 1) x µs per chunk, the shortest chunk for"
      " which this master keeps every worker fed at that window.")
problems = open(problems_path).read().strip().splitlines()
if problems:
    print()
    print("### Failed or timed-out runs")
    print()
    for p in problems:
        print("* " + p)
out = dict(section="dispatch", date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           host=socket.gethostname(), cpu_model=CPU, cores=os.cpu_count(), mpi=MPIVER,
           mpimap_version=os.environ["VERSION"], quick=bool(QUICK), reps=REPS, statistic="median",
           loadavg_before=[float(x) for x in "$LOAD0".split()],
           loadavg_after=[float(x) for x in "$LOAD1".split()], elapsed_s=int("$ELAPSED"),
           params=dict(chunks_default_window=N, chunks_window_sweep=NW, nps=NPS, windows=WINDOWS,
                       input_default=os.environ["F1"], input_default_bytes=$BYTES1,
                       input_window=os.environ["FW"], input_window_bytes=$BYTESW,
                       engine_options="-v -t 1 -c 1 ... test --mode noop",
                       mpirun="mpirun --oversubscribe --bind-to none",
                       chunks_per_s="(chunks - 1) / (median engine time - median engine time of a 1-chunk run)",
                       rank0_cpu_us_per_chunk="(median rank 0 user+sys - that of the 1-chunk run) / (chunks - 1)"),
           setup=[dict(np=k, engine_s=v[0], rank0_cpu_s=v[1]) for k, v in base.items()],
           results=results, problems=problems)
tmp = out_path + ".tmp"
with open(tmp, "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")
os.replace(tmp, out_path)
PYEOF

# ------------------------------------------------------------ perf
if [ "$PERF" = 1 ]; then
    # shellcheck disable=SC2016 # expanded by the bash that mpirun starts
    P0='p=$1; shift; [ "${OMPI_COMM_WORLD_RANK:-0}" = 0 ] || exec "$@"; exec perf record -q -F 2999 -o "$p" -- "$@"'
    {
        echo
        echo "### Where rank 0's time goes (perf record, -np 8, --dedicated-master, --window 32, $NW chunks)"
        for io in master shared; do
            if timeout -k 10 "$RUN_TIMEOUT" mpirun --oversubscribe --bind-to none -np 8 \
                bash -c "$P0" rank0 "$TMPD/perf.$io" "$MPIMAP" -v -t 1 -c 1 --dedicated-master \
                --window 32 --io "$io" test --mode noop "$FW" > /dev/null 2> "$TMPD/err"; then
                echo
                echo "--io $io: $(sed -n 's/^mpimap: .* test: \([0-9]* chunks\), .* in \([0-9.]* s\) (.*/\1 in \2/p' "$TMPD/err")"
                echo
                echo '```'
                perf report -i "$TMPD/perf.$io" --no-children --sort dso,sym --stdio 2> /dev/null |
                    grep -v '^#' | grep -v '^$' | head -n 16 || true
                echo '```'
            else
                echo
                echo "--io $io: perf run failed: $(tail -n 2 "$TMPD/err")"
            fi
        done
    } | tee -a "$MD"
fi

flock -u 9
log "results in $MD and $RESULTS (measurements took ${ELAPSED} s)"
[ "$NFAIL" = 0 ] || {
    echo "bench-dispatch.sh: $NFAIL run(s) failed or timed out (see above)" >&2
    exit 1
}
