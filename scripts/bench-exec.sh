#!/usr/bin/env bash
# scripts/bench-exec.sh - `mpimap exec` next to GNU parallel, xargs -P and a
# Python process pool running a program over many items: the cost of starting,
# waiting for and collecting each task.
#
#   scripts/bench-exec.sh [--quick] [-h|--help]
#
# Workloads, items 1..N (a file, one per line), the item passed as the last
# argument of each task:
#   true   N = 10,000 tasks `true` (2,000 with --quick): nothing but the
#          task's start and end
#   cpu    N = 1,000 tasks (200 with --quick) of a tiny C program compiled
#          here with cc -O2 (`cpuwork MS ITEM`: busy-loops on
#          CLOCK_PROCESS_CPUTIME_ID until it has used MS = 10 ms of CPU since
#          main(), prints ITEM, exits 0): CPU work, not sleep; the CPU its
#          start-up used before main() (fork, exec, ld.so: measured and
#          reported) is overhead, as for true
# Tools, 2 tasks at a time (C = NPROC = 2):
#   mpn       mpirun -np 2 mpimap --journal J exec --slots-per-rank 1
#             --cores-per-task 1 --items ITEMS -o OUT -- PROG {}
#   mp1       mpimap --journal J exec --slots-per-rank 2 --items ITEMS
#             -o OUT -- PROG {} (one process; --cores-per-task 1, the default)
#             (journal and pinning on; J a fresh path every run)
#   parallel  parallel --will-cite -j2 PROG {} :::: ITEMS
#   xargs     xargs -P2 -n1 -a ITEMS PROG
#   pool      bench/exec_pool.py --workers 2 ITEMS -- PROG: the seeds'
#             concurrent.futures.ProcessPoolExecutor(2), subprocess.run per item
#   serial    xargs -P1 -n1 -a ITEMS PROG: the same tasks one after another,
#             the machine's cost of a process start (once per round)
# REPS rounds (default 3), the order of the 12 runs rotated every round;
# reported per workload: median wall time, min-max, tasks/s, per-task
# overhead (wall x C / N, minus 10 ms for cpu; C = 1 for serial), for cpu the
# speedup over the ideal serial time N x 10 ms (ideal: C = 2.0), and every
# rate next to xargs -P2's, GNU parallel's and the serial baseline's, measured
# in the same run (the issue's absolute figures were measured on another
# machine). mpimap's own time is taken from its summary line (no process
# start-up, no MPI_Init).
# Checked in every round: every command exits 0; mpimap's summary counts N
# tasks, N ok; for true every output is empty, for cpu mpimap's, the pool's
# and serial's outputs are the items in order, the others' in some order.
# Targets (issue 8): mpimap with journal and pinning >= xargs -P2's rate on
# true (2,000 tasks/s there), near-ideal 2-core speedup on cpu.
#
# Installs what is missing (parallel; the build tools), builds the Release
# build in build-bench/ unless MPIMAP names a binary, measures under the
# exclusive lock /tmp/mpimap-bench.lock shared with the other benchmarks.
# Results: Markdown on stdout and in build-bench/exec.md; JSON in
# bench/results/exec.json (build-bench/results-quick/exec.json and
# build-bench/exec-quick.md with --quick).
# Environment: MPIMAP (binary; default: build build-bench/mpimap), REPS,
# NTRUE and NCPU (task counts), CPU_MS (default 10), RESULTS (JSON path).

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

bench_args "$@"

die() {
    echo "bench-exec.sh: $*" >&2
    exit 1
}

install_deps "${BUILD_DEPS[@]}" findutils parallel
bench_setup
CPU_MS="${CPU_MS:-10}"
[[ "$CPU_MS" =~ ^[1-9][0-9]*$ ]] || die "CPU_MS must be a positive integer, not '$CPU_MS'"
NP=$NPROC
MPIRUN=(mpirun --oversubscribe)
if [ "$QUICK" = 1 ]; then
    NTRUE="${NTRUE:-2000}" NCPU="${NCPU:-200}"
    RESULTS="${RESULTS:-$B/results-quick/exec.json}"
    MD="$B/exec-quick.md"
else
    NTRUE="${NTRUE:-10000}" NCPU="${NCPU:-1000}"
    RESULTS="${RESULTS:-$BENCH/results/exec.json}"
    MD="$B/exec.md"
fi
HAVE_EXEC=0
"$MPIMAP" kernels 2> /dev/null | grep -q '^exec\b' && HAVE_EXEC=1

SCR=$(mktemp -d /tmp/mpimap-bench-exec.XXXXXX)
cleanup() { rm -rf "$SCR"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
RUNS="$SCR/runs"
JREC="$SCR/records.jsonl"
mkdir -p "$RUNS" "$(dirname "$RESULTS")"
: > "$JREC"
: > "$MD"
say() { echo "$*" | tee -a "$MD"; }

# ------------------------------------------------------------ the task program, items
cat > "$SCR/cpuwork.c" << 'EOF'
/* cpuwork MS ITEM [-v]: uses MS milliseconds of CPU on top of its start-up
 * (this process's CPU clock, counted from main()), prints ITEM, exits 0.
 * -v: prints the CPU clock at main() and at the end, in ms, on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: cpuwork MS ITEM [-v]\n");
        return 2;
    }
    long long start = cpu_ns(), until = start + atoll(argv[1]) * 1000000LL, now;
    volatile unsigned long spin = 0;
    do {
        for (int i = 0; i < 1000; i++)
            spin++;
        now = cpu_ns();
    } while (now < until);
    printf("%s\n", argv[2]);
    if (argc == 4 && strcmp(argv[3], "-v") == 0)
        fprintf(stderr, "%.3f %.3f\n", start / 1e6, now / 1e6);
    return 0;
}
EOF
cc -O2 -o "$SCR/cpuwork" "$SCR/cpuwork.c" || die "cannot compile $SCR/cpuwork.c"
CPUPROG="$SCR/cpuwork"
seq 1 "$NTRUE" > "$SCR/items-true.txt"
seq 1 "$NCPU" > "$SCR/items-cpu.txt"
# The CPU program's start-up: its CPU clock at main(), before its work (fork,
# exec and the dynamic loader; milliseconds on this VM), median of 5 runs.
CALS=""
for _ in 1 2 3 4 5; do
    CALS+="$("$CPUPROG" "$CPU_MS" x -v 2>&1 > /dev/null | cut -d' ' -f1) "
done
# shellcheck disable=SC2086 # space-separated numbers
CAL=$(printf '%s\n' $CALS | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')

# One benchmark at a time on this machine (scripts/bench*.sh take the same lock).
bench_lock
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
UPTIME0=$(uptime)
T_BEGIN=$EPOCHREALTIME

# ------------------------------------------------------------ commands
# A command is run by `bash -c` with JOURNAL (a fresh path every run) and
# OUT (where its stdout goes) in its environment.
q() { printf '%q' "$1"; }
declare -A CMDS LABEL CONC TIMES MED MIN MAX ETIMES EMED WL NTASKS
WORKLOADS=(true cpu)
TOOLS=(mpn mp1 parallel xargs pool serial)
[ "$HAVE_EXEC" = 1 ] || TOOLS=(parallel xargs pool serial)
declare -A WN WPROG WARGS
WN[true]=$NTRUE WPROG[true]=true WARGS[true]=""
WN[cpu]=$NCPU WPROG[cpu]=$(q "$CPUPROG") WARGS[cpu]="$CPU_MS"
NAMES=()
for w in "${WORKLOADS[@]}"; do
    items=$(q "$SCR/items-$w.txt")
    prog="${WPROG[$w]}${WARGS[$w]:+ ${WARGS[$w]}}"
    for t in "${TOOLS[@]}"; do
        n="$w.$t"
        NAMES+=("$n")
        WL[$n]=$w NTASKS[$n]=${WN[$w]} CONC[$n]=$NP
        case $t in
        mpn)
            CMDS[$n]="${MPIRUN[*]} -np $NP $(q "$MPIMAP") --journal \"\$JOURNAL\" exec --slots-per-rank 1 --cores-per-task 1 --items $items -o \"\$OUT\" -- $prog {}"
            LABEL[$n]="\`mpirun -np $NP mpimap --journal J exec --slots-per-rank 1 --cores-per-task 1\`"
            ;;
        mp1)
            CMDS[$n]="$(q "$MPIMAP") --journal \"\$JOURNAL\" exec --slots-per-rank $NP --items $items -o \"\$OUT\" -- $prog {}"
            LABEL[$n]="\`mpimap --journal J exec --slots-per-rank $NP\` (one process, --cores-per-task 1)"
            ;;
        parallel)
            CMDS[$n]="parallel --will-cite -j $NP $prog {} :::: $items > \"\$OUT\""
            LABEL[$n]="GNU \`parallel -j$NP\`"
            ;;
        xargs)
            CMDS[$n]="xargs -P $NP -n 1 -a $items $prog > \"\$OUT\""
            LABEL[$n]="\`xargs -P$NP -n1\`"
            ;;
        pool)
            CMDS[$n]="$PY $(q "$BENCH/exec_pool.py") --workers $NP $items -- $prog > \"\$OUT\""
            LABEL[$n]="Python \`ProcessPoolExecutor($NP)\` + \`subprocess.run\` (bench/exec_pool.py)"
            ;;
        serial)
            CMDS[$n]="xargs -P 1 -n 1 -a $items $prog > \"\$OUT\""
            LABEL[$n]="serial baseline: \`xargs -P1 -n1\`"
            CONC[$n]=1
            ;;
        esac
    done
done

# check NAME: the last run of NAME did every task once.
check() {
    local n=$1 w=${WL[$1]} out="$RUNS/$1.out" err="$RUNS/$1.err" ok=1 nt=${NTASKS[$1]}
    case $n in
    *.mpn | *.mp1)
        grep -q "^mpimap: exec: $nt tasks, $nt ok, 0 failed, " "$err" || ok=0
        ;;
    esac
    if [ "$w" = true ]; then
        [ ! -s "$out" ] || ok=0
    else
        case $n in
        *.mpn | *.mp1 | *.pool | *.serial) cmp -s "$out" "$SCR/items-$w.txt" || ok=0 ;;
        *) sort -n "$out" | cmp -s - "$SCR/items-$w.txt" || ok=0 ;;
        esac
    fi
    [ "$ok" = 1 ] || die "$n: unexpected output (see $out, $err): ${CMDS[$n]}"
}

stats() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf "%.3f %.3f %.3f\n", m, v[1], v[NR] }'
}

log "exec: $NTRUE x true and $NCPU x $CPU_MS ms of CPU, $NP at a time, $REPS rounds"
for n in "${NAMES[@]}"; do TIMES[$n]="" ETIMES[$n]=""; done
for ((r = 0; r < REPS; r++)); do
    for ((j = 0; j < ${#NAMES[@]}; j++)); do
        n=${NAMES[$(((j + r) % ${#NAMES[@]}))]}
        J="$SCR/journal.$n.$r"
        rm -f "$J" "$RUNS/$n.out"
        s=$EPOCHREALTIME
        if ! JOURNAL=$J OUT="$RUNS/$n.out" bash -c "${CMDS[$n]}" 2> "$RUNS/$n.err"; then
            tail -n 20 "$RUNS/$n.err" >&2
            die "$n failed: ${CMDS[$n]}"
        fi
        e=$EPOCHREALTIME
        rm -f "$J"
        t=$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }')
        TIMES[$n]+="$t "
        # mpimap's own time (its summary line: no process start-up, MPI_Init)
        et=$(sed -n 's/^mpimap: exec: .*, \([0-9.]*\) s$/\1/p' "$RUNS/$n.err" | tail -n 1)
        if [ -n "$et" ]; then ETIMES[$n]+="$et "; fi
        printf '    round %d/%d  %-15s %8s s%s\n' $((r + 1)) "$REPS" "$n" "$t" "${et:+  (mpimap: $et s)}" >&2
        check "$n"
    done
done
for n in "${NAMES[@]}"; do
    # shellcheck disable=SC2086 # space-separated numbers
    read -r "MED[$n]" "MIN[$n]" "MAX[$n]" <<< "$(stats ${TIMES[$n]})"
    EMED[$n]=""
    if [ -n "${ETIMES[$n]}" ]; then
        # shellcheck disable=SC2086
        read -r "EMED[$n]" _ _ <<< "$(stats ${ETIMES[$n]})"
    fi
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
UPTIME1=$(uptime)
ELAPSED=$(awk -v s="$T_BEGIN" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.0f", e - s }')

# ------------------------------------------------------------ report
# rate N T: tasks/s; ovh W T C: per-task overhead in ms; spd N T: speedup over N x CPU_MS.
rate() { awk -v n="$1" -v t="$2" 'BEGIN { printf "%.0f", n / t }'; }
ovh() {
    awk -v n="${WN[$1]}" -v t="$2" -v c="$3" -v w="$1" -v ms="$CPU_MS" \
        'BEGIN { o = t * c / n * 1000; if (w == "cpu") o -= ms; printf "%.2f", o }'
}
spd() { awk -v n="$1" -v t="$2" -v ms="$CPU_MS" 'BEGIN { printf "%.2f", n * ms / 1000 / t }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
say "## exec: a program over many items, $NP at a time ($(date -u +%Y-%m-%d), $NPROC cores, $CPU)"
say ""
say "Items 1..N in a file, each task the program with the item as its last argument; $NP tasks at a"
say "time (the serial baseline: 1). Median of $REPS rounds (the order of the $((${#NAMES[@]})) runs rotated"
say "each round), wall time of the whole command (mpirun, MPI_Init, Python start-up included)."
say "Per-task overhead = wall x concurrency / N (minus the task's $CPU_MS ms of CPU for the cpu"
say "workload). mpimap runs with \`--journal\` (a fresh file every run) and pinning (\`--cores-per-task 1\`)."
say "The cpu program (cc -O2) busy-loops on CLOCK_PROCESS_CPUTIME_ID until it has used $CPU_MS ms of CPU"
say "since main(): its start-up (fork, exec, dynamic loader) had already used $CAL ms of CPU"
say "(median of 5 runs), which counts as overhead, as for \`true\`. Ratios: tasks/s over xargs -P$NP's,"
say "over GNU parallel -j$NP's and over the serial baseline's, measured in the same run; mpimap's own"
say "time: from its summary line."
[ "$HAVE_EXEC" = 0 ] && say "" && say "**$MPIMAP has no exec kernel (\`mpimap kernels\`): the anchors only.**"
[ "$QUICK" = 1 ] && say "" && say "**--quick: $NTRUE and $NCPU tasks.**"
for w in "${WORKLOADS[@]}"; do
    N=${WN[$w]}
    say ""
    if [ "$w" = true ]; then
        say "### $N tasks \`true\`"
        say ""
        say "| tool | at once | wall time (median) | min-max | tasks/s | per-task overhead | / xargs -P$NP | / parallel -j$NP | / serial | mpimap's own time |"
        say "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    else
        say "### $N tasks of $CPU_MS ms CPU (ideal serial time $(awk -v n="$N" -v ms="$CPU_MS" 'BEGIN { printf "%.1f", n * ms / 1000 }') s)"
        say ""
        say "| tool | at once | wall time (median) | min-max | tasks/s | per-task overhead | speedup over N x $CPU_MS ms (ideal $NP.0) | / xargs -P$NP | / parallel -j$NP | / serial | mpimap's own time |"
        say "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    fi
    for t in "${TOOLS[@]}"; do
        n="$w.$t"
        m=${MED[$n]}
        tps=$(rate "$N" "$m")
        o=$(ovh "$w" "$m" "${CONC[$n]}")
        rx=$(ratio "${MED[$w.xargs]}" "$m")
        rp=$(ratio "${MED[$w.parallel]}" "$m")
        rs=$(ratio "${MED[$w.serial]}" "$m")
        eng="—" ej=() sj=()
        if [ -n "${EMED[$n]}" ]; then
            eng="${EMED[$n]} s ($(rate "$N" "${EMED[$n]}")/s)"
            ej=("engine_times_s:list=${ETIMES[$n]}" "engine_median_s=${EMED[$n]}"
                "engine_tasks_per_s=$(rate "$N" "${EMED[$n]}")")
        fi
        if [ "$w" = cpu ]; then
            s=$(spd "$N" "$m")
            sj=("speedup_over_serial_ideal=$s")
            say "| ${LABEL[$n]} | ${CONC[$n]} | $m s | ${MIN[$n]}-${MAX[$n]} s | $tps | $o ms | $s | $rx | $rp | $rs | $eng |"
        else
            say "| ${LABEL[$n]} | ${CONC[$n]} | $m s | ${MIN[$n]}-${MAX[$n]} s | $tps | $o ms | $rx | $rp | $rs | $eng |"
        fi
        "$PY" "$BENCH/results_json.py" add "$JREC" "name:str=$n" "workload:str=$w" "tool:str=$t" \
            "label:str=${LABEL[$n]}" "command:str=${CMDS[$n]}" "tasks=$N" "concurrency=${CONC[$n]}" \
            "times_s:list=${TIMES[$n]}" "median_s=$m" "min_s=${MIN[$n]}" "max_s=${MAX[$n]}" \
            "tasks_per_s=$tps" "overhead_ms_per_task=$o" "rate_over_xargs=$rx" \
            "rate_over_parallel=$rp" "rate_over_serial=$rs" "${sj[@]}" "${ej[@]}"
    done
done
say ""
PSTART=$(awk -v t="${MED[true.serial]}" -v n="$NTRUE" 'BEGIN { printf "%.2f", t / n * 1000 }')
say "A process start (fork, exec, wait) costs $PSTART ms here: \`xargs -P1 -n1 true\`, $NTRUE tasks in" \
    "${MED[true.serial]} s. Issue 8's figures, measured on another machine: xargs -P2 -n1 about" \
    "2,000 \`true\`/s, GNU parallel -j2 about 280/s (3.5 ms each); here, in this run:" \
    "$(rate "$NTRUE" "${MED[true.xargs]}")/s and $(rate "$NTRUE" "${MED[true.parallel]}")/s."
MET=null CMET=null
if [ "$HAVE_EXEC" = 1 ]; then
    best() { # the faster of mpn and mp1 for workload $1
        awk -v a="${MED[$1.mpn]}" -v b="${MED[$1.mp1]}" 'BEGIN { print (a <= b) ? "mpn" : "mp1" }'
    }
    bt=$(best true)
    rt=$(rate "$NTRUE" "${MED[true.$bt]}")
    rx=$(ratio "${MED[true.xargs]}" "${MED[true.$bt]}")
    rp=$(ratio "${MED[true.parallel]}" "${MED[true.$bt]}")
    MET=$(awk -v r="$rx" 'BEGIN { print (r >= 1) ? "true" : "false" }')
    bc=$(best cpu)
    sc=$(spd "$NCPU" "${MED[cpu.$bc]}")
    CMET=$(awk -v s="$sc" -v c="$NP" 'BEGIN { print (s >= 0.9 * c) ? "true" : "false" }')
    say ""
    say "**mpimap exec (journal, pinning) on true: $rt tasks/s (${LABEL[true.$bt]}; mpirun -np $NP:" \
        "$(rate "$NTRUE" "${MED[true.mpn]}")/s, one process: $(rate "$NTRUE" "${MED[true.mp1]}")/s)," \
        "${rx}x xargs -P$NP's rate and ${rp}x GNU parallel's in the same run. Target (at least xargs'" \
        "rate; the issue's 2,000/s and 7x parallel were measured elsewhere): $([ "$MET" = true ] && echo met || echo "not met").**"
    say "**On $CPU_MS ms CPU tasks: speedup $sc over the ideal serial time (ideal $NP.0; ${LABEL[cpu.$bc]})," \
        "$(awk -v s="$sc" -v c="$NP" 'BEGIN { printf "%.0f", 100 * s / c }')% of ideal; target" \
        "near-ideal (>= 90% here): $([ "$CMET" = true ] && echo met || echo "not met").**"
    SUMLINE=$(grep '^mpimap: exec:' "$RUNS/true.mp1.err" | tail -n 1 || true)
    [ -n "$SUMLINE" ] && say "mpimap's summary (true, one process, last round): \`$SUMLINE\`"
fi
say ""
say "Load average (1, 5, 15 min) before: $LOAD0; after: $LOAD1. Measured in $ELAPSED s."
QUICKB=false
[ "$QUICK" = 1 ] && QUICKB=true
"$PY" "$BENCH/results_json.py" param "$JREC" "tasks_true=$NTRUE" "tasks_cpu=$NCPU" \
    "cpu_ms=$CPU_MS" "concurrency=$NP" "cpuwork_startup_cpu_ms=$CAL" \
    "cpuwork_startup_cpu_ms_runs:list=$CALS" "mpimap:str=$MPIMAP" \
    "command_env:str=run by bash -c with JOURNAL = a fresh journal path and OUT = the stdout file" \
    "mpimap_exec_kernel=$([ "$HAVE_EXEC" = 1 ] && echo true || echo false)" \
    "process_start_ms=$PSTART" "target_true_rate_over_xargs=1" "target_true_met=$MET" \
    "target_cpu_speedup_fraction=0.9" "target_cpu_met=$CMET" \
    "issue_xargs_true_per_s=2000" "issue_parallel_true_per_s=280" \
    "parallel_version:str=$(parallel --will-cite --version | head -n 1)" \
    "xargs_version:str=$(xargs --version | head -n 1)" \
    "python_version:str=$("$PY" --version 2>&1)" "cc_version:str=$(cc --version | head -n 1)" \
    "uptime_before:str=$UPTIME0" "uptime_after:str=$UPTIME1" "elapsed_s=$ELAPSED"
"$PY" "$BENCH/results_json.py" write "$JREC" "$RESULTS" "section:str=exec" "reps=$REPS" \
    "quick=$QUICKB" "statistic:str=median" "loadavg_before:list=$LOAD0" "loadavg_after:list=$LOAD1"
log "results in $MD and $RESULTS"
