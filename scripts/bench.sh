#!/usr/bin/env bash
# scripts/bench.sh - mpimap side by side with its anchors: every comparison is
# taken in one invocation, the commands alternated (the order rotated every
# round) REPS times; tables show the MEDIAN of the REPS runs, the JSON files
# every time, the median, min and max.
#
#   scripts/bench.sh [--quick] [SECTION...]      (default: all)
#
# Sections:
# tasks     task throughput: 100,000 tiny tasks (10,000 with --quick), an
#           integer n per line, fib(n) computed iteratively. `mpimap fib --fast
#           --file ITEMS` on mpirun -np 2 (one item per chunk, i.e. one task
#           each; and 8 chunks) vs mpi4py.futures.MPIPoolExecutor (mpirun -np 3:
#           a master and 2 workers), concurrent.futures.ProcessPoolExecutor(2)
#           and multiprocessing.Pool(2) mapping the same function over the
#           same items, each with chunksize 1 and with 4 chunks per worker
#           (Pool.map's default), plus one Python process without a pool.
#           Items/s; every output is checked to be the same bytes (sha256).
# scaling   primes and wordcount on 1 rank x 1 thread, 1 rank x N threads,
#           N ranks x 1 thread (N = 2..cores) and cores ranks x 2 threads
#           (oversubscribed, for information); speedup over 1x1 by wall time
#           and by the engine's own time; plot: bench/results/scaling.png
# wordcount mpimap on 1 GiB of text in page cache (128 MiB with --quick) vs
#           gawk and a Python collections.Counter script
# fib       fib 30 35 40 (25 30 32 with --quick) vs the seed's
#           multiprocessing.Pool(4).map program and the seed's
#           concurrent.futures.ProcessPoolExecutor(4).map approach; then
#           mpimap alone on 30 35 40 45 (not with --quick)
# overhead  the `test --mode noop` kernel over 1 GiB in 64 KiB chunks with
#           --io master on 2 ranks vs plain MPI point-to-point bandwidth
# journal   the cost of --journal: wordcount (reduced) and test --mode echo
#           (ordered rows) with and without it, and a --resume that finds
#           every chunk in the journal
# image     Gaussian blur sigma 3 and Sobel on an 8000 x 8000 RGB PPM (2000 x
#           2000 with --quick), file to file: mpimap (mpirun -np 2, and one
#           rank with 2 threads, with and without --no-sync) vs libvips
#           (`vips gaussblur` in its default integer precision, `vips sobel`;
#           VIPS_CONCURRENCY=2) and ImageMagick (`convert -blur 0x3`, the
#           separable blur, alternated; `convert -gaussian-blur 0x3`, the 2-D
#           kernel, timed once: it takes minutes), -limit thread 2. Outputs
#           are checked: mpimap within 1 level of an untimed
#           `vips gaussblur --precision float` (a float PFM). Then PNG
#           encoding: the image copied to PNG by mpimap and by `vips copy`.
# kmeans    Lloyd k-means, k 16, 20 iterations (tol 0), the same initial
#           centroids, on 1,000,000 x 32 float64 points (100,000 with --quick;
#           a mixture of 16 overlapping Gaussian blobs, generated once): mpimap
#           kmeans on the raw file (--dims 32) vs scikit-learn's KMeans
#           (algorithm='lloyd', n_init=1, copy_x=False) with Debian's OpenBLAS
#           (libopenblas0-pthread), file to centroids CSV, on all cores
#           (mpimap --threads N; OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = N)
#           and on one (taskset -c 0, mpimap --threads 1, 1 thread), plus
#           mpirun -np N mpimap --threads 1 once; then the same points as a
#           CSV (%.17g) read by mpimap and by numpy.loadtxt (the fastest numpy
#           reader here: numpy.fromstring and genfromtxt were 2x and 5x
#           slower; pandas is not installed). scikit-learn's time is also
#           given from inside the process (after its imports) to the
#           centroids written. Checked: every mpimap run writes the same
#           centroids; scikit-learn's are within 1e-6 relative of them, with
#           the same number of iterations; the BLAS (threadpoolctl) is named.
# overlap   scripts/bench-overlap.sh [--quick], if present (in `all` only
#           without --quick); it takes the benchmark lock itself
# dispatch  scripts/bench-dispatch.sh [--quick], if present (likewise)
# hash      scripts/bench-hash.sh [--quick] (likewise): 1 GB as 10,000 files
#           and one 2 GB file, warm and cold, against sha256sum, xargs -P2,
#           GNU parallel, openssl dgst, xxhsum, b3sum and cat
# fetch     scripts/bench-fetch.sh [--quick] (likewise): 2,000 URLs with
#           50 ms latency against xargs -P 64 curl, curl -Z, asyncio and a
#           ThreadPoolExecutor
# exec      scripts/bench-exec.sh [--quick] (likewise): 10,000 `true` tasks
#           and 1,000 tasks of 10 ms CPU, 2 at a time, against GNU parallel
#           -j2, xargs -P2 and a ProcessPoolExecutor(2), per-task overhead
#
# Installs what it needs from Debian packages (build tools, gawk,
# python3-mpi4py, gnuplot-nox, libvips-tools, imagemagick, python3-sklearn,
# libopenblas0-pthread), builds a Release build in build-bench/, then
# holds an exclusive lock on /tmp/mpimap-bench.lock while it measures.
# Output: Markdown on stdout and in build-bench/bench-results.md; per section
# SECTION.json (date, host, CPU, cores, REPS, and per command its label,
# command line, all times, median, min, max, rates and ratios) in
# bench/results/ (build-bench/results-quick/ with --quick); scaling.png and
# scaling.dat next to them. --quick: small inputs, a few minutes.
# Environment: REPS (default 3), BENCH_DIR (data, default data/bench),
# RESULTS_DIR (where the JSON goes).

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

SECTIONS=(tasks scaling wordcount fib overhead journal image kmeans overlap dispatch hash fetch exec)
QUICK=0
WHAT=()
for a in "$@"; do
    case "$a" in
    --quick) QUICK=1 ;;
    -h | --help)
        sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    all) WHAT+=("$a") ;;
    *)
        if [[ " ${SECTIONS[*]} " == *" $a "* ]]; then
            WHAT+=("$a")
        else
            echo "bench.sh: unknown argument '$a' (see --help)" >&2
            exit 2
        fi
        ;;
    esac
done
[ "${#WHAT[@]}" = 0 ] && WHAT=(all)
# want SECTION: requested by name or by `all`.
want() { [[ " ${WHAT[*]} " == *" all "* || " ${WHAT[*]} " == *" $1 "* ]]; }
# want_external SECTION: requested by name, or by `all` without --quick.
want_external() {
    [[ " ${WHAT[*]} " == *" $1 "* ]] || { [[ " ${WHAT[*]} " == *" all "* ]] && [ "$QUICK" = 0 ]; }
}

install_deps "${BUILD_DEPS[@]}" gawk python3-mpi4py gnuplot-nox libvips-tools imagemagick \
    python3-numpy python3-pil python3-sklearn python3-threadpoolctl libopenblas0-pthread
build "$MPIMAP_ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release -DMPIMAP_TESTS=OFF
B="$MPIMAP_ROOT/build-bench"
BENCH="$MPIMAP_ROOT/bench" # anchor programs, the JSON writer, the plot script
REPS="${REPS:-3}"
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || {
    echo "bench.sh: REPS must be a positive integer, not '$REPS'" >&2
    exit 2
}
DATA="${BENCH_DIR:-$MPIMAP_ROOT/data/bench}"
if [ "$QUICK" = 1 ]; then
    RESULTS="${RESULTS_DIR:-$B/results-quick}"
else
    RESULTS="${RESULTS_DIR:-$BENCH/results}"
fi
RUNS="$DATA/runs" # the last output of every measured command
mkdir -p "$DATA" "$RUNS" "$RESULTS"
OUT="$B/bench-results.md"
: > "$OUT"
PY=/usr/bin/python3
MPIRUN=(mpirun --oversubscribe)

# One benchmark at a time on this machine (scripts/bench-*.sh take the same lock).
LOCK=/tmp/mpimap-bench.lock
exec 9> "$LOCK"
if ! flock -n 9; then
    log "waiting for another benchmark to release $LOCK"
    flock 9
fi

say() { echo "$*" | tee -a "$OUT"; }

# ------------------------------------------------------------ measuring

# run_once CMD...: runs CMD once; sets T to its wall time in seconds and E to
# the engine's own time from mpimap's -v summary line (empty if none). Its
# stdout is left in $DATA/last.out, its stderr in $DATA/last.err.
T=""
E=""
run_once() {
    local s e
    s=$EPOCHREALTIME
    if ! "$@" > "$DATA/last.out" 2> "$DATA/last.err"; then
        echo "bench.sh: command failed: $*" >&2
        cat "$DATA/last.err" >&2
        exit 1
    fi
    e=$EPOCHREALTIME
    T=$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }')
    E=$(sed -n 's/^mpimap: .*: [0-9]* chunks.* in \([0-9.]*\) s (.*/\1/p' "$DATA/last.err" | tail -n 1)
}

# stats V...: prints "median min max" of the numbers V.
stats() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf "%.3f %.3f %.3f\n", m, v[1], v[NR] }'
}

# shjoin WORD...: the words as one shell command line, quoted where needed.
shjoin() {
    local w out=()
    for w in "$@"; do
        if [[ "$w" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
            out+=("$w")
        else
            out+=("'${w//\'/\'\\\'\'}'")
        fi
    done
    echo "${out[*]}"
}

# alternate NAME1 CMD1... -- NAME2 CMD2... -- ...: runs the commands
# round-robin REPS times, starting each round one command further, and sets
# per NAME: CMD (the command line), TIMES (all wall times), MED, MIN, MAX,
# and ETIMES, EMED, EMIN, EMAX from mpimap's -v line when it prints one.
# Each command's stdout must be the same in every round; the last one is kept
# in $RUNS/NAME.out (stderr: NAME.err) and its sha256 in SUM[NAME].
declare -A CMD TIMES MED MIN MAX ETIMES EMED EMIN EMAX SUM
alternate() {
    local names=() cmds=() cur=() a i j r n sum
    for a in "$@" --; do
        if [ "$a" = "--" ]; then
            if [ "${#cur[@]}" -lt 2 ]; then
                echo "bench.sh: alternate: a name without a command" >&2
                exit 1
            fi
            names+=("${cur[0]}")
            cmds+=("$(printf '%q ' "${cur[@]:1}")")
            cur=()
        else
            cur+=("$a")
        fi
    done
    for ((i = 0; i < ${#names[@]}; i++)); do
        n=${names[$i]}
        CMD[$n]=$(eval "shjoin ${cmds[$i]}")
        TIMES[$n]="" ETIMES[$n]="" SUM[$n]=""
    done
    for ((r = 0; r < REPS; r++)); do
        for ((j = 0; j < ${#names[@]}; j++)); do
            i=$(((j + r) % ${#names[@]}))
            n=${names[$i]}
            eval "set -- ${cmds[$i]}"
            run_once "$@"
            TIMES[$n]+="$T "
            [ -n "$E" ] && ETIMES[$n]+="$E "
            printf '    round %d/%d  %-10s %8s s%s\n' $((r + 1)) "$REPS" "$n" "$T" \
                "${E:+  (engine $E s)}" >&2
            sum=$(sha256sum < "$DATA/last.out" | cut -c1-64)
            if [ -n "${SUM[$n]}" ] && [ "${SUM[$n]}" != "$sum" ]; then
                echo "bench.sh: the output of '$n' changed between rounds: ${CMD[$n]}" >&2
                exit 1
            fi
            SUM[$n]=$sum
            mv "$DATA/last.out" "$RUNS/$n.out"
            mv "$DATA/last.err" "$RUNS/$n.err"
        done
    done
    for n in "${names[@]}"; do
        # shellcheck disable=SC2086 # the lists are space-separated numbers
        read -r "MED[$n]" "MIN[$n]" "MAX[$n]" <<< "$(stats ${TIMES[$n]})"
        EMED[$n]="" EMIN[$n]="" EMAX[$n]=""
        if [ -n "${ETIMES[$n]}" ]; then
            # shellcheck disable=SC2086
            read -r "EMED[$n]" "EMIN[$n]" "EMAX[$n]" <<< "$(stats ${ETIMES[$n]})"
        fi
    done
}

# same_output NAME...: fails unless every NAME printed the same bytes as the first.
same_output() {
    local n
    for n in "${@:2}"; do
        if [ "${SUM[$n]}" != "${SUM[$1]}" ]; then
            echo "bench.sh: '$n' and '$1' disagree (compare $RUNS/$n.out and $RUNS/$1.out)" >&2
            exit 1
        fi
    done
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mbps() { awk -v n="$1" -v t="$2" 'BEGIN { printf "%.0f", n / t / 1e6 }'; }
rate() { awk -v n="$1" -v t="$2" 'BEGIN { printf "%.0f", n / t }'; }
range() { echo "${MIN[$1]}-${MAX[$1]} s"; }

# ------------------------------------------------------------ JSON results
# jbegin SECTION; jparam KEY=VALUE...; jcmd NAME KEY=VALUE...; jraw KEY=VALUE...;
# jend: writes $RESULTS/SECTION.json (see bench/results_json.py for the types).
JSEC=""
JREC=""
LOAD0=""
jbegin() {
    JSEC=$1
    JREC="$B/results-$1.jsonl"
    : > "$JREC"
    LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
}
jparam() { "$PY" "$BENCH/results_json.py" param "$JREC" "$@"; }
jraw() { "$PY" "$BENCH/results_json.py" add "$JREC" "$@"; }
# jcmd NAME [KEY=VALUE...]: the alternated command NAME, with every time.
jcmd() {
    local n=$1
    shift
    local args=("name:str=$n" "command:str=${CMD[$n]}" "times_s:list=${TIMES[$n]}"
        "median_s=${MED[$n]}" "min_s=${MIN[$n]}" "max_s=${MAX[$n]}"
        "stdout_sha256:str=${SUM[$n]}")
    if [ -n "${ETIMES[$n]}" ]; then
        args+=("engine_times_s:list=${ETIMES[$n]}" "engine_median_s=${EMED[$n]}"
            "engine_min_s=${EMIN[$n]}" "engine_max_s=${EMAX[$n]}")
    fi
    jraw "${args[@]}" "$@"
}
jend() {
    local quick=false load1
    [ "$QUICK" = 1 ] && quick=true
    load1=$(cut -d' ' -f1-3 /proc/loadavg)
    say "Load average (1, 5, 15 min) before: $LOAD0; after: $load1."
    say ""
    "$PY" "$BENCH/results_json.py" write "$JREC" "$RESULTS/$JSEC.json" \
        "section:str=$JSEC" "reps=$REPS" "quick=$quick" "statistic:str=median" \
        "loadavg_before:list=$LOAD0" "loadavg_after:list=$load1"
    rm -f "$JREC"
    log "$JSEC: $RESULTS/$JSEC.json"
}

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
say "# mpimap benchmarks ($(date -u +%Y-%m-%d), $NPROC cores, $CPU)"
say ""
say "Median of $REPS alternated runs (the order rotated each round); min, max and every"
say "time are in $RESULTS/*.json. Wall time includes process start-up (mpirun, Python);"
say "\"engine\" is mpimap's own time from its \`-v\` summary line."
[ "$QUICK" = 1 ] && say "" && say "**--quick: small inputs.**"
say ""

corpus() { # corpus SIZE -> path (generated once, then kept)
    local f="$DATA/corpus-$1.txt"
    if [ ! -s "$f" ]; then
        "$B/mpimap-gencorpus" "$1" > "$f.tmp" && mv "$f.tmp" "$f"
    fi
    cat "$f" > /dev/null # into the page cache
    echo "$f"
}

# ------------------------------------------------------------ tasks
if want tasks; then
    N=100000
    [ "$QUICK" = 1 ] && N=10000
    ITEMS="$DATA/tasks-$N.txt"
    if [ ! -s "$ITEMS" ]; then
        # n = i mod 91: every n fib --fast accepts whose result fits 64 bits signed.
        "$PY" -c 'import sys; sys.stdout.write("".join("%d\n" % (i % 91) for i in range(int(sys.argv[1]))))' \
            "$N" > "$ITEMS.tmp" && mv "$ITEMS.tmp" "$ITEMS"
    fi
    BYTES=$(stat -c %s "$ITEMS")
    W=$NPROC                          # worker processes of every pool, mpimap's ranks
    CS=$(((N + 4 * W - 1) / (4 * W))) # Pool.map's default chunksize: 4 chunks per worker
    MCS=$(((BYTES + 4 * W - 1) / (4 * W)))
    TP="$BENCH/tasks.py"
    jbegin tasks
    say "## Task throughput: $N tiny tasks (fib(n) computed iteratively, n = 0..90), $W workers"
    say ""
    alternate \
        mpimap "${MPIRUN[@]}" -np "$W" "$B/mpimap" -v fib --fast --file "$ITEMS" -- \
        mpimapb "${MPIRUN[@]}" -np "$W" "$B/mpimap" -v -c "$MCS" fib --fast --file "$ITEMS" -- \
        mpi4py1 "${MPIRUN[@]}" -np $((W + 1)) --bind-to none "$PY" -m mpi4py.futures "$TP" mpi4py 1 "$ITEMS" -- \
        mpi4pyb "${MPIRUN[@]}" -np $((W + 1)) --bind-to none "$PY" -m mpi4py.futures "$TP" mpi4py "$CS" "$ITEMS" -- \
        cf1 "$PY" "$TP" futures 1 "$ITEMS" "$W" -- \
        cfb "$PY" "$TP" futures "$CS" "$ITEMS" "$W" -- \
        pool1 "$PY" "$TP" pool 1 "$ITEMS" "$W" -- \
        poolb "$PY" "$TP" pool 0 "$ITEMS" "$W" -- \
        serial "$PY" "$TP" serial 1 "$ITEMS"
    same_output serial mpimap mpimapb mpi4py1 mpi4pyb cf1 cfb pool1 poolb
    NCH=$(sed -n 's/^mpimap: .*: \([0-9]*\) chunks.*/\1/p' "$RUNS/mpimapb.err" | tail -n 1)
    jparam "items=$N" "items_file:str=$ITEMS" "items_bytes=$BYTES" "workers=$W" \
        "batched_chunksize_items=$CS" "mpimap_batched_chunk_bytes=$MCS" \
        "outputs_identical=true" "output_sha256:str=${SUM[serial]}"
    say "| tool | tasks per message | wall time | min-max | items/s | mpimap speedup (1 item per chunk) | mpimap speedup (batched) |"
    say "| --- | --- | --- | --- | --- | --- | --- |"
    # trow NAME LABEL PER-MESSAGE
    trow() {
        say "| $2 | $3 | ${MED[$1]} s | $(range "$1") | $(rate "$N" "${MED[$1]}") | $(ratio "${MED[$1]}" "${MED[mpimap]}") | $(ratio "${MED[$1]}" "${MED[mpimapb]}") |"
        jcmd "$1" "label:str=$2" "tasks_per_message:str=$3" "items_per_s=$(rate "$N" "${MED[$1]}")" \
            "time_over_mpimap=$(ratio "${MED[$1]}" "${MED[mpimap]}")" \
            "time_over_mpimap_batched=$(ratio "${MED[$1]}" "${MED[mpimapb]}")"
    }
    trow mpimap "mpimap fib --fast --file, mpirun -np $W" "1 (one chunk per line)"
    trow mpimapb "mpimap -c $MCS fib --fast --file, mpirun -np $W" "~$CS ($MCS-byte chunks)"
    trow mpi4py1 "mpi4py.futures MPIPoolExecutor.map, mpirun -np $((W + 1)) (master + $W workers)" "1 (chunksize=1, its default)"
    trow mpi4pyb "mpi4py.futures MPIPoolExecutor.map, mpirun -np $((W + 1))" "$CS (chunksize=$CS)"
    trow cf1 "concurrent.futures ProcessPoolExecutor($W).map (seed's approach)" "1 (chunksize=1, its default)"
    trow cfb "concurrent.futures ProcessPoolExecutor($W).map" "$CS (chunksize=$CS)"
    trow pool1 "multiprocessing Pool($W).map" "1 (chunksize=1)"
    trow poolb "multiprocessing Pool($W).map (seed's call)" "$CS (its default chunksize)"
    trow serial "Python, one process, no pool: list(map(fib, items))" "— (no messages)"
    say ""
    say "Every command printed the same $N lines \`n<TAB>fib(n)\` (sha256 ${SUM[serial]:0:16}...)."
    say "mpimap's engine time alone (\`-v\`, no mpirun or MPI start-up): ${EMED[mpimap]} s with one item per chunk"
    say "($(rate "$N" "${EMED[mpimap]}") items/s), ${EMED[mpimapb]} s with $MCS-byte chunks (${NCH:-?} chunks)."
    say "Python's pools start $W worker processes with fork (the default on Linux); mpi4py's master"
    say "only dispatches. The work itself is tiny: the serial row is the cost of the computation."
    say ""
    jend
fi

# ------------------------------------------------------------ scaling
if want scaling; then
    PR_RANGE=1:2000000000
    WC_SIZE=512M
    [ "$QUICK" = 1 ] && PR_RANGE=1:300000000 && WC_SIZE=64M
    WC=$(corpus $WC_SIZE)
    jbegin scaling
    jparam "primes_range:str=$PR_RANGE" "wordcount_size:str=$WC_SIZE" "wordcount_file:str=$WC" \
        "wordcount_bytes=$(stat -c %s "$WC")"
    # The layouts: 1x1; 1 rank x k threads and k ranks x 1 thread for k =
    # 2..cores; cores ranks x 2 threads (oversubscribed, for information).
    LAYOUTS=(1x1)
    for ((k = 2; k <= NPROC; k++)); do LAYOUTS+=("1x$k"); done
    for ((k = 2; k <= NPROC; k++)); do LAYOUTS+=("${k}x1"); done
    OVER="${NPROC}x2"
    LAYOUTS+=("$OVER")
    hdr="| workload |"
    sep="| --- |"
    for l in "${LAYOUTS[@]}"; do
        hdr+=" ${l/x/ x } |"
        sep+=" --- |"
    done
    for l in "${LAYOUTS[@]:1}"; do
        hdr+=" speedup ${l/x/ x } |"
        sep+=" --- |"
    done
    TABLE_WALL=("$hdr" "$sep")
    TABLE_ENG=("$hdr" "$sep")
    DAT="$RESULTS/scaling.dat"
    : > "$DAT"
    NSERIES=0
    # scale LABEL KERNEL ARGS...: every layout of one workload, alternated.
    scale() {
        local label="$1" l r t args=() rw re cores
        shift
        for l in "${LAYOUTS[@]}"; do
            r=${l%x*} t=${l#*x}
            if [ "$r" = 1 ]; then # one rank: its threads may use every core
                args+=("s$l" "${MPIRUN[@]}" -np 1 --bind-to none "$B/mpimap" -v -t "$t" "$@" --)
            elif [ "$l" = "$OVER" ]; then
                args+=("s$l" "${MPIRUN[@]}" -np "$r" --bind-to none "$B/mpimap" -v -t "$t" "$@" --)
            else
                args+=("s$l" "${MPIRUN[@]}" -np "$r" --bind-to core "$B/mpimap" -v -t "$t" "$@" --)
            fi
        done
        unset 'args[-1]'
        alternate "${args[@]}"
        same_output "${LAYOUTS[@]/#/s}"
        rw="| $label |"
        re="| $label |"
        for l in "${LAYOUTS[@]}"; do
            rw+=" ${MED[s$l]} s |"
            re+=" ${EMED[s$l]} s |"
        done
        for l in "${LAYOUTS[@]:1}"; do
            rw+=" $(ratio "${MED[s1x1]}" "${MED[s$l]}") |"
            re+=" $(ratio "${EMED[s1x1]}" "${EMED[s$l]}") |"
        done
        TABLE_WALL+=("$rw")
        TABLE_ENG+=("$re")
        for l in "${LAYOUTS[@]}"; do
            r=${l%x*} t=${l#*x}
            cores=$((r * t > NPROC ? NPROC : r * t))
            jcmd "s$l" "label:str=$label, $r rank(s) x $t thread(s)" "workload:str=$label" \
                "ranks=$r" "threads=$t" "cores_used=$cores" "oversubscribed=$([ $((r * t)) -gt "$NPROC" ] && echo true || echo false)" \
                "speedup=$(ratio "${MED[s1x1]}" "${MED[s$l]}")" \
                "engine_speedup=$(ratio "${EMED[s1x1]}" "${EMED[s$l]}")"
        done
        # The plot's series: 1 rank x N threads, N ranks x 1 thread, the oversubscribed point.
        {
            printf '"%s, 1 rank x N threads"\n1 1.00 1.00\n' "$label"
            for ((k = 2; k <= NPROC; k++)); do
                echo "$k $(ratio "${MED[s1x1]}" "${MED[s1x$k]}") $(ratio "${EMED[s1x1]}" "${EMED[s1x$k]}")"
            done
            printf '\n\n"%s, N ranks x 1 thread"\n1 1.00 1.00\n' "$label"
            for ((k = 2; k <= NPROC; k++)); do
                echo "$k $(ratio "${MED[s1x1]}" "${MED[s${k}x1]}") $(ratio "${EMED[s1x1]}" "${EMED[s${k}x1]}")"
            done
            printf '\n\n"%s, %s ranks x 2 threads (oversubscribed)"\n' "$label" "$NPROC"
            echo "$NPROC $(ratio "${MED[s1x1]}" "${MED[s$OVER]}") $(ratio "${EMED[s1x1]}" "${EMED[s$OVER]}")"
            printf '\n\n'
        } >> "$DAT"
        NSERIES=$((NSERIES + 3))
    }
    scale "primes $PR_RANGE" primes "$PR_RANGE"
    scale "wordcount $WC_SIZE" wordcount --top 10 "$WC"
    say "## Scaling on $NPROC cores: speedup over 1 rank x 1 thread"
    say ""
    say "Wall time of the whole \`mpirun\` command, median of $REPS:"
    say ""
    for l in "${TABLE_WALL[@]}"; do say "$l"; done
    say ""
    say "The same runs timed by the engine itself (\`-v\` summary line; excludes mpirun and MPI start-up):"
    say ""
    for l in "${TABLE_ENG[@]}"; do say "$l"; done
    say ""
    say "Commands: \`mpirun -np 1 --bind-to none mpimap -t N\`, \`mpirun -np N --bind-to core mpimap -t 1\`,"
    say "\`mpirun -np $NPROC --bind-to none mpimap -t 2\` ($((2 * NPROC)) threads on $NPROC cores)."
    gnuplot -e "datafile='$DAT'; outfile='$RESULTS/scaling.png'; nseries=$NSERIES; maxcores=$NPROC; subtitle='$NPROC cores, $(date -u +%Y-%m-%d), REPS=$REPS$([ "$QUICK" = 1 ] && echo ', --quick')'" \
        "$BENCH/scaling.gp"
    say "Plot: \`$RESULTS/scaling.png\` (data: \`scaling.dat\`)."
    say ""
    jparam "plot:str=$RESULTS/scaling.png" "plot_data:str=$DAT"
    jend
fi

# ------------------------------------------------------------ wordcount
if want wordcount; then
    SIZE=1G
    [ "$QUICK" = 1 ] && SIZE=128M
    WC=$(corpus $SIZE)
    BYTES=$(stat -c %s "$WC")
    # shellcheck disable=SC2016 # awk's $i
    AWK_PROG='{for(i=1;i<=NF;i++)c[tolower($i)]++} END{for(w in c) if (c[w] > 1000000) print c[w], w}'
    jbegin wordcount
    jparam "size:str=$SIZE" "file:str=$WC" "bytes=$BYTES"
    say "## wordcount on $SIZE of text in page cache ($BYTES bytes)"
    say ""
    alternate \
        mpimap "${MPIRUN[@]}" -np 2 "$B/mpimap" -v wordcount --top 10 "$WC" -- \
        awk awk "$AWK_PROG" "$WC" -- \
        python "$PY" "$BENCH/counter.py" "$WC"
    AWK_NAME=$(readlink -f "$(command -v awk)" | xargs basename)
    say "| tool | wall time | min-max | throughput | mpimap speedup |"
    say "| --- | --- | --- | --- | --- |"
    wrow() { # wrow NAME LABEL
        say "| $2 | ${MED[$1]} s | $(range "$1") | $(mbps "$BYTES" "${MED[$1]}") MB/s | $(ratio "${MED[$1]}" "${MED[mpimap]}") |"
        jcmd "$1" "label:str=$2" "mb_per_s=$(mbps "$BYTES" "${MED[$1]}")" \
            "time_over_mpimap=$(ratio "${MED[$1]}" "${MED[mpimap]}")"
    }
    wrow mpimap "mpimap wordcount --top 10, mpirun -np 2"
    wrow awk "awk ($AWK_NAME) '{for(i=1;i<=NF;i++)c[tolower(\$i)]++}'"
    wrow python "python3 collections.Counter, line.lower().split()"
    say ""
    say "mpimap's engine time alone: ${EMED[mpimap]} s ($(mbps "$BYTES" "${EMED[mpimap]}") MB/s)."
    # The counts differ (mpimap also splits on punctuation) but the ranking should not.
    top_m=$(cut -f2 "$RUNS/mpimap.out" | paste -sd' ' -)
    top_p=$(cut -d' ' -f2- "$RUNS/python.out" | paste -sd' ' -)
    if [ "$top_m" = "$top_p" ]; then
        say "mpimap and Python rank the same 10 most frequent words in the same order."
        jparam "same_top10_as_python=true"
    else
        say "**The 10 most frequent words differ:** mpimap \`$top_m\`, Python \`$top_p\`."
        jparam "same_top10_as_python=false"
    fi
    say "awk and Python split on whitespace only (a lighter rule than mpimap's word definition)."
    say ""
    jend
fi

# ------------------------------------------------------------ fib
if want fib; then
    NUMS="30 35 40"
    [ "$QUICK" = 1 ] && NUMS="25 30 32"
    jbegin fib
    jparam "inputs:str=$NUMS"
    say "## fib $NUMS: mpimap vs the seeds' Python programs"
    say ""
    # shellcheck disable=SC2086 # NUMS is a list of numbers
    alternate \
        mpimap "${MPIRUN[@]}" -np 2 "$B/mpimap" -v fib $NUMS -- \
        pool "$PY" "$BENCH/seed_fib.py" $NUMS -- \
        futures "$PY" "$BENCH/seed_fib_futures.py" $NUMS
    # The same values: mpimap prints n<TAB>fib(n), the seeds "Results: [a, b]".
    want_vals=$(cut -f2 "$RUNS/mpimap.out" | paste -sd, -)
    for n in pool futures; do
        got=$(sed -n 's/^Results: \[\(.*\)\]$/\1/p' "$RUNS/$n.out" | tr -d ' ')
        if [ "$got" != "$want_vals" ]; then
            echo "bench.sh: fib: '$n' printed [$got], mpimap [$want_vals]" >&2
            exit 1
        fi
    done
    say "| tool | wall time | min-max | mpimap speedup |"
    say "| --- | --- | --- | --- |"
    frow() { # frow NAME LABEL
        say "| $2 | ${MED[$1]} s | $(range "$1") | $(ratio "${MED[$1]}" "${MED[mpimap]}") |"
        jcmd "$1" "label:str=$2" "time_over_mpimap=$(ratio "${MED[$1]}" "${MED[mpimap]}")"
    }
    frow mpimap "mpimap fib, mpirun -np 2"
    frow pool "seed program: multiprocessing Pool(4).map(calculate_fibonacci) (CPython $("$PY" -c 'import platform; print(platform.python_version())'))"
    frow futures "seed approach: concurrent.futures ProcessPoolExecutor(max_workers=4).map(calculate_fibonacci)"
    say ""
    say "All three printed the same values. mpimap's engine time alone: ${EMED[mpimap]} s."
    if [ "$QUICK" = 0 ]; then
        run_once "${MPIRUN[@]}" -np 2 "$B/mpimap" -v fib 30 35 40 45
        say "mpimap on \`fib 30 35 40 45\`, one run: $T s (engine $E s); the Python programs are not"
        say "run on 45: fib(45) alone takes many minutes in CPython."
        jraw "name:str=mpimap45" "label:str=mpimap fib 30 35 40 45, mpirun -np 2, one run" \
            "command:str=$(shjoin "${MPIRUN[@]}" -np 2 "$B/mpimap" -v fib 30 35 40 45)" \
            "times_s:list=$T" "median_s=$T" "min_s=$T" "max_s=$T" "engine_times_s:list=$E"
    fi
    say ""
    jend
fi

# ------------------------------------------------------------ overhead
if want overhead; then
    SIZE=1G
    [ "$QUICK" = 1 ] && SIZE=128M
    F=$(corpus $SIZE)
    BYTES=$(stat -c %s "$F")
    MIB=$((BYTES >> 20))
    jbegin overhead
    jparam "size:str=$SIZE" "file:str=$F" "bytes=$BYTES" "chunk:str=64K"
    say "## Engine overhead: empty kernel, $SIZE in 64 KiB chunks, --io master, 2 ranks"
    say ""
    say "| run | engine, default window (2 per thread) | engine, --window 16 | plain MPI point-to-point, 64 KiB messages, window 2 | ratio default / p2p | ratio -w 16 / p2p |"
    say "| --- | --- | --- | --- | --- | --- |"
    P2P_CMD=("${MPIRUN[@]}" -np 2 "$B/mpimap-p2pbw" "$MIB" 64 2)
    ENG_CMD=("${MPIRUN[@]}" -np 2 "$B/mpimap" -v --io master -c 64K test --mode noop "$F")
    ENG16_CMD=("${MPIRUN[@]}" -np 2 "$B/mpimap" -v --window 16 --io master -c 64K test --mode noop "$F")
    P2PS="" ENGS="" ENG16S="" ET="" E16T="" R1="" R16=""
    for ((r = 1; r <= REPS; r++)); do
        "${P2P_CMD[@]}" > "$DATA/p2p.out"
        p2p=$(sed -n 's/.* \([0-9.]*\) GB\/s/\1/p' "$DATA/p2p.out")
        run_once "${ENG_CMD[@]}"
        [ "$(cat "$DATA/last.out")" = "$BYTES" ] || {
            echo "bench.sh: noop kernel counted $(cat "$DATA/last.out") bytes, expected $BYTES" >&2
            exit 1
        }
        eng=$E
        engbw=$(awk -v n="$BYTES" -v t="$eng" 'BEGIN { printf "%.2f", n / t / 1e9 }')
        run_once "${ENG16_CMD[@]}"
        eng16=$E
        engbw16=$(awk -v n="$BYTES" -v t="$eng16" 'BEGIN { printf "%.2f", n / t / 1e9 }')
        say "| $r | $engbw GB/s | $engbw16 GB/s | $p2p GB/s | $(ratio "$engbw" "$p2p") | $(ratio "$engbw16" "$p2p") |"
        P2PS+="$p2p " ENGS+="$engbw " ENG16S+="$engbw16 " ET+="$eng " E16T+="$eng16 "
        R1+="$(ratio "$engbw" "$p2p") " R16+="$(ratio "$engbw16" "$p2p") "
    done
    # shellcheck disable=SC2086 # space-separated numbers
    {
        read -r m_p2p _ _ <<< "$(stats $P2PS)"
        read -r m_eng _ _ <<< "$(stats $ENGS)"
        read -r m_eng16 _ _ <<< "$(stats $ENG16S)"
        read -r m_r1 _ _ <<< "$(stats $R1)"
        read -r m_r16 _ _ <<< "$(stats $R16)"
    }
    m_p2p=$(printf '%.2f' "$m_p2p") m_eng=$(printf '%.2f' "$m_eng") m_eng16=$(printf '%.2f' "$m_eng16")
    m_r1=$(printf '%.2f' "$m_r1") m_r16=$(printf '%.2f' "$m_r16")
    say "| median | $m_eng GB/s | $m_eng16 GB/s | $m_p2p GB/s | $m_r1 | $m_r16 |"
    say ""
    say "Engine: bytes / the engine's own time. It also reads the file (page cache) on rank 0 and computes"
    say "half the chunks there. Ratios are per run (each engine run next to its own p2p run)."
    say ""
    jraw "name:str=engine" "label:str=engine, default window" "command:str=$(shjoin "${ENG_CMD[@]}")" \
        "engine_times_s:list=$ET" "gb_per_s:list=$ENGS" "median_gb_per_s=$m_eng" \
        "ratio_to_p2p:list=$R1" "median_ratio_to_p2p=$m_r1"
    jraw "name:str=engine_w16" "label:str=engine, --window 16" "command:str=$(shjoin "${ENG16_CMD[@]}")" \
        "engine_times_s:list=$E16T" "gb_per_s:list=$ENG16S" "median_gb_per_s=$m_eng16" \
        "ratio_to_p2p:list=$R16" "median_ratio_to_p2p=$m_r16"
    jraw "name:str=p2p" "label:str=plain MPI point-to-point, 64 KiB messages, window 2" \
        "command:str=$(shjoin "${P2P_CMD[@]}")" "gb_per_s:list=$P2PS" "median_gb_per_s=$m_p2p"
    jend
fi

# ------------------------------------------------------------ journal
if want journal; then
    SIZE=1G
    [ "$QUICK" = 1 ] && SIZE=128M
    F=$(corpus $SIZE)
    J="$DATA/bench.journal"
    jbegin journal
    jparam "size:str=$SIZE" "file:str=$F" "bytes=$(stat -c %s "$F")" "journal:str=$J"
    say "## Cost of --journal on $SIZE, mpirun -np 2 (journal on the same disk as the data)"
    say ""
    # shellcheck disable=SC2016 # the inner shell's $1 and $@
    alternate \
        wc "${MPIRUN[@]}" -np 2 "$B/mpimap" wordcount --top 10 "$F" -- \
        wcj bash -c 'rm -f "$1"; shift; "$@"' _ "$J" "${MPIRUN[@]}" -np 2 "$B/mpimap" --journal "$J" wordcount --top 10 "$F" -- \
        wcr "${MPIRUN[@]}" -np 2 "$B/mpimap" --journal "$J" --resume wordcount --top 10 "$F"
    same_output wc wcj wcr
    WCJ=$(du -m "$J" | cut -f1)
    # shellcheck disable=SC2016
    alternate \
        echo "${MPIRUN[@]}" -np 2 "$B/mpimap" -o "$DATA/echo.out" test "$F" -- \
        echoj bash -c 'rm -f "$1"; shift; "$@"' _ "$J" "${MPIRUN[@]}" -np 2 "$B/mpimap" --journal "$J" -o "$DATA/echo.out" test "$F" -- \
        echor "${MPIRUN[@]}" -np 2 "$B/mpimap" --journal "$J" --resume -o "$DATA/echo.out" test "$F"
    ECJ=$(du -m "$J" | cut -f1)
    rm -f "$J" "$DATA/echo.out"
    say "| workload | no journal | --journal (fresh) | overhead | --resume, all chunks journaled | journal size |"
    say "| --- | --- | --- | --- | --- | --- |"
    say "| wordcount --top 10 (reduced) | ${MED[wc]} s | ${MED[wcj]} s | $(ratio "${MED[wcj]}" "${MED[wc]}") | ${MED[wcr]} s | $WCJ MiB |"
    say "| test --mode echo -o FILE (ordered) | ${MED[echo]} s | ${MED[echoj]} s | $(ratio "${MED[echoj]}" "${MED[echo]}") | ${MED[echor]} s | $ECJ MiB |"
    say ""
    jcmd wc "label:str=wordcount --top 10, no journal"
    jcmd wcj "label:str=wordcount --top 10, --journal (fresh)" "overhead=$(ratio "${MED[wcj]}" "${MED[wc]}")" "journal_mib=$WCJ"
    jcmd wcr "label:str=wordcount --top 10, --resume (every chunk journaled)"
    jcmd echo "label:str=test --mode echo -o FILE, no journal"
    jcmd echoj "label:str=test --mode echo -o FILE, --journal (fresh)" "overhead=$(ratio "${MED[echoj]}" "${MED[echo]}")" "journal_mib=$ECJ"
    jcmd echor "label:str=test --mode echo -o FILE, --resume (every chunk journaled)"
    jend
fi

# ------------------------------------------------------------ image
if want image; then
    IW=8000
    [ "$QUICK" = 1 ] && IW=2000
    IMG="$DATA/image-$IW.ppm"
    if [ ! -s "$IMG" ]; then
        "$PY" "$MPIMAP_ROOT/tests/e2e/imgref.py" gen "$IW" "$IW" 3 255 42 "$IMG.tmp.ppm" &&
            mv "$IMG.tmp.ppm" "$IMG"
    fi
    cat "$IMG" > /dev/null
    IB=$(stat -c %s "$IMG")
    # ImageMagick's Debian policy refuses images this large: a looser one.
    MAGICK_DIR="$DATA/magick"
    mkdir -p "$MAGICK_DIR"
    cat > "$MAGICK_DIR/policy.xml" << 'EOF'
<policymap>
  <policy domain="resource" name="memory" value="8GiB"/>
  <policy domain="resource" name="map" value="8GiB"/>
  <policy domain="resource" name="width" value="64KP"/>
  <policy domain="resource" name="height" value="64KP"/>
  <policy domain="resource" name="area" value="4GP"/>
  <policy domain="resource" name="disk" value="16GiB"/>
</policymap>
EOF
    IM=(env MAGICK_CONFIGURE_PATH="$MAGICK_DIR" convert-im6.q16 -limit thread "$NPROC")
    VIPS=(env VIPS_CONCURRENCY="$NPROC" vips)
    O="$DATA/image-out"
    mkdir -p "$O"
    jbegin image
    jparam "width=$IW" "height=$IW" "channels=3" "bytes=$IB" "input:str=$IMG" \
        "vips_version:str=$(vips --version)" "imagemagick_version:str=$(convert-im6.q16 -version | head -n 1)"
    say "## Image filters: $IW x $IW RGB PPM ($((IB >> 20)) MiB), file to file, $NPROC cores"
    say ""
    alternate \
        mpimap "${MPIRUN[@]}" -np "$NPROC" "$B/mpimap" -v image --filter blur --sigma 3 "$IMG" -o "$O/mpimap-blur.ppm" -- \
        mpimapd "${MPIRUN[@]}" -np "$NPROC" "$B/mpimap" -v --dedicated-master image --filter blur --sigma 3 "$IMG" -o "$O/mpimapd-blur.ppm" -- \
        mpimapt "$B/mpimap" -v --threads "$NPROC" image --filter blur --sigma 3 "$IMG" -o "$O/mpimapt-blur.ppm" -- \
        mpimapn "$B/mpimap" -v --threads "$NPROC" --no-sync image --filter blur --sigma 3 "$IMG" -o "$O/mpimapn-blur.ppm" -- \
        vips "${VIPS[@]}" gaussblur "$IMG" "$O/vips-blur.ppm" 3 -- \
        imblur "${IM[@]}" "$IMG" -blur 0x3 "$O/im-blur.ppm"
    # The reference: vips' float-precision blur with the mask cut at 1% of its
    # peak, as mpimap's 3 sigma (a float PFM; not timed: it
    # writes 4 bytes per sample), rounded half up by imgref.py.
    "${VIPS[@]}" gaussblur "$IMG" "$O/vipsf-blur.pfm" 3 --precision float --min-ampl 0.01
    CHECK=$("$PY" "$MPIMAP_ROOT/tests/e2e/imgref.py" cmp "$O/vipsf-blur.pfm" "$O/mpimap-blur.ppm" 1) || {
        echo "bench.sh: image: mpimap's blur is not within 1 level of vips --precision float: $CHECK" >&2
        exit 1
    }
    cmp -s "$O/mpimap-blur.ppm" "$O/mpimapt-blur.ppm" || {
        echo "bench.sh: image: -np $NPROC and --threads $NPROC outputs differ" >&2
        exit 1
    }
    VCHECK=$("$PY" "$MPIMAP_ROOT/tests/e2e/imgref.py" cmp "$O/vipsf-blur.pfm" "$O/vips-blur.ppm" 255 | cut -d, -f1)
    # irow FILTER NAME LABEL: one row of a table, times relative to vips.
    irow() {
        say "| $3 | ${MED[$2]} s | $(range "$2") | $(mbps "$IB" "${MED[$2]}") | $(ratio "${MED[$2]}" "${MED[vips]}") |"
        jcmd "$2" "label:str=$3" "time_over_vips=$(ratio "${MED[$2]}" "${MED[vips]}")" "filter:str=$1"
    }
    ihead() { say "| $1 | wall time | min-max | MB/s (input) | time / vips |"; say "| --- | --- | --- | --- | --- |"; }
    brow() { irow blur "$@"; }
    ihead "blur sigma 3"
    brow mpimap "mpimap image --filter blur --sigma 3, mpirun -np $NPROC"
    brow mpimapd "mpimap --dedicated-master image --filter blur --sigma 3, mpirun -np $NPROC (rank 0 only decodes and encodes)"
    brow mpimapt "mpimap --threads $NPROC image --filter blur --sigma 3 (one rank)"
    brow mpimapn "mpimap --threads $NPROC --no-sync image --filter blur --sigma 3 (one rank, no fsync: as the others)"
    brow vips "vips gaussblur 3 (default integer precision), VIPS_CONCURRENCY=$NPROC"
    brow imblur "ImageMagick convert -blur 0x3 (separable), -limit thread $NPROC"
    say ""
    BLUR_NP=${MED[mpimap]} BLUR_T=${MED[mpimapt]} BLUR_N=${MED[mpimapn]}
    say "mpimap vs vips --precision float --min-ampl 0.01 (the same exact Gaussian): $CHECK; vips' default"
    say "integer precision vs its float precision: $VCHECK. mpimap flushes its output to disk"
    say "(fsync) before renaming it into place unless --no-sync; the other tools do not flush."
    say ""
    alternate \
        mpimap "${MPIRUN[@]}" -np "$NPROC" "$B/mpimap" -v image --filter sobel "$IMG" -o "$O/mpimap-sobel.pgm" -- \
        mpimapt "$B/mpimap" -v --threads "$NPROC" image --filter sobel "$IMG" -o "$O/mpimapt-sobel.pgm" -- \
        mpimapn "$B/mpimap" -v --threads "$NPROC" --no-sync image --filter sobel "$IMG" -o "$O/mpimapn-sobel.pgm" -- \
        vips "${VIPS[@]}" sobel "$IMG" "$O/vips-sobel.ppm"
    srow() { irow sobel "$@"; }
    ihead "Sobel"
    srow mpimap "mpimap image --filter sobel (luma, one channel out), mpirun -np $NPROC"
    srow mpimapt "mpimap --threads $NPROC image --filter sobel (one rank)"
    srow mpimapn "mpimap --threads $NPROC --no-sync image --filter sobel (one rank, no fsync)"
    srow vips "vips sobel (each of the 3 bands, 3 channels out), VIPS_CONCURRENCY=$NPROC"
    say ""
    alternate \
        mpimapt "$B/mpimap" -v --threads "$NPROC" image --filter copy "$IMG" -o "$O/mpimapt.png" -- \
        vips "${VIPS[@]}" copy "$IMG" "$O/vips.png"
    "$PY" "$MPIMAP_ROOT/tests/e2e/imgref.py" cmp "$O/vips.png" "$O/mpimapt.png" 0 > /dev/null || {
        echo "bench.sh: image: mpimap's and vips' PNGs hold different pixels" >&2
        exit 1
    }
    ihead "PNG encoding (copy PPM to PNG, level 6)"
    irow png mpimapt "mpimap --threads $NPROC image --filter copy -o out.png (deflate in parallel blocks)"
    irow png vips "vips copy in.ppm out.png, VIPS_CONCURRENCY=$NPROC"
    say ""
    say "PNG sizes: mpimap $(stat -c %s "$O/mpimapt.png") bytes, vips $(stat -c %s "$O/vips.png") bytes; same pixels."
    say ""
    if [ "$QUICK" = 0 ]; then
        run_once "${IM[@]}" "$IMG" -gaussian-blur 0x3 "$O/im-gblur.ppm"
        IMG_T=$T
        say "ImageMagick \`convert -gaussian-blur 0x3\` (the full 2-D kernel), one run: $IMG_T s:"
        say "$(ratio "$IMG_T" "$BLUR_NP") x mpimap's blur with mpirun -np $NPROC, $(ratio "$IMG_T" "$BLUR_T") x with"
        say "--threads $NPROC, $(ratio "$IMG_T" "$BLUR_N") x with --threads $NPROC --no-sync (medians above)."
        jraw "name:str=imgblur" "label:str=ImageMagick convert -gaussian-blur 0x3, one run" \
            "command:str=$(shjoin "${IM[@]}" "$IMG" -gaussian-blur 0x3 "$O/im-gblur.ppm")" \
            "times_s:list=$IMG_T" "median_s=$IMG_T" "min_s=$IMG_T" "max_s=$IMG_T"
        say ""
    fi
    rm -f "$O"/*.ppm "$O"/*.pgm "$O"/*.pfm "$O"/*.png
    jend
fi

# ------------------------------------------------------------ kmeans
if want kmeans; then
    KN=1000000
    [ "$QUICK" = 1 ] && KN=100000
    KD=32 KK=16 KIT=20 KC=$NPROC
    KF="$DATA/kmeans-${KN}x$KD.f64"      # raw little-endian float64
    KI="$DATA/kmeans-${KN}x$KD-init.csv" # the K initial centroids (rows of the data)
    KCSV="$DATA/kmeans-${KN}x$KD.csv"    # the same points as CSV, %.17g
    KPY="$BENCH/kmeans_sklearn.py"
    if [ ! -s "$KF" ] || [ ! -s "$KI" ] || [ ! -s "$KCSV" ]; then
        "$PY" "$KPY" gen "$KN" "$KD" "$KK" 42 "$KF" "$KI" "$KCSV" "$KN"
    fi
    cat "$KF" "$KCSV" > /dev/null
    KO="$DATA/kmeans-out"
    mkdir -p "$KO"
    rm -f "$KO"/*.jsonl "$KO"/*.csv
    # The same job on both sides: K centroids from the init file, 20 Lloyd
    # iterations, tol 0; scikit-learn's threads on OMP_NUM_THREADS (its Lloyd
    # loop) and OPENBLAS_NUM_THREADS; one core: both under taskset -c 0.
    KM=(kmeans --k "$KK" --max-iter "$KIT" --tol 0 --init "$KI")
    sk() { # sk THREADS READER DATA NAME: the scikit-learn command words
        printf '%s\n' env "OMP_NUM_THREADS=$1" "OPENBLAS_NUM_THREADS=$1" "$PY" "$KPY" fit "$2" "$3" \
            "$KI" "$KK" "$KIT" "$KO/$4.csv" "$KO/$4.jsonl" "$KD"
    }
    mapfile -t SK < <(sk "$KC" raw "$KF" sk)
    mapfile -t SK1 < <(sk 1 raw "$KF" sk1)
    mapfile -t SKC < <(sk "$KC" loadtxt "$KCSV" skc)
    jbegin kmeans
    say "## k-means: $KN x $KD float64 points, k $KK, $KIT Lloyd iterations (tol 0), the same initial centroids, file to centroids"
    say ""
    alternate \
        mp "$B/mpimap" -v --threads "$KC" "${KM[@]}" --dims "$KD" --inertia "$KF" -o "$KO/mp.csv" -- \
        sk "${SK[@]}" -- \
        mp1 taskset -c 0 "$B/mpimap" -v --threads 1 "${KM[@]}" --dims "$KD" --inertia "$KF" -o "$KO/mp1.csv" -- \
        sk1 taskset -c 0 "${SK1[@]}"
    MPN_CMD=("${MPIRUN[@]}" -np "$KC" "$B/mpimap" -v --threads 1 "${KM[@]}" --dims "$KD" --inertia "$KF" -o "$KO/mpn.csv")
    run_once "${MPN_CMD[@]}"
    MPN_T=$T MPN_E=$E
    cp "$DATA/last.err" "$RUNS/mpn.err"
    for f in mp1 mpn; do
        cmp -s "$KO/mp.csv" "$KO/$f.csv" || {
            echo "bench.sh: kmeans: $KO/mp.csv and $KO/$f.csv differ" >&2
            exit 1
        }
    done
    [ "$(cat "$DATA/last.out")" = "$(cat "$RUNS/mp.out")" ] || {
        echo "bench.sh: kmeans: mpirun -np $KC printed inertia $(cat "$DATA/last.out"), --threads $KC $(cat "$RUNS/mp.out")" >&2
        exit 1
    }
    # kcheck MPIMAP SKLEARN: the centroids agree within 1e-6 relative and the
    # iteration counts are equal; sets KDIFF ("max_abs max_rel"), KIT_M, KIT_S.
    kcheck() {
        KDIFF=$("$PY" "$KPY" cmp "$KO/$1.csv" "$KO/$2.csv")
        KIT_M=$(sed -n 's/^mpimap: kmeans: .* after \([0-9]*\) iterations.*/\1/p' "$RUNS/$1.err")
        KIT_S=$("$PY" "$KPY" field "$KO/$2.jsonl" n_iter)
        if ! awk -v r="${KDIFF#* }" 'BEGIN { exit !(r <= 1e-6) }' || [ "$KIT_M" != "$KIT_S" ]; then
            echo "bench.sh: kmeans: $1 and $2 disagree: centroids max abs, rel difference $KDIFF;" \
                "iterations $KIT_M vs $KIT_S (compare $KO/$1.csv and $KO/$2.csv)" >&2
            exit 1
        fi
    }
    kdiff() { echo "${1% *}, ${1#* }"; } # "abs rel" -> "abs, rel"
    kcheck mp sk
    DIFF_RAW=$KDIFF ITERS=$KIT_M
    kcheck mp1 sk1
    DIFF_RAW1=$KDIFF
    INERTIA_M=$(cat "$RUNS/mp.out")
    INERTIA_S=$("$PY" "$KPY" field "$KO/sk.jsonl" inertia)
    INERTIA_REL=$(awk -v a="$INERTIA_M" -v b="$INERTIA_S" 'BEGIN { d = a - b; if (d < 0) d = -d; printf "%.2g", d / b }')
    # skfield NAME KEY: KEY of NAME's last scikit-learn run.
    skfield() { "$PY" "$KPY" field "$KO/$1.jsonl" "$2"; }
    # skin NAME: median, min, max of its in-process times (file to centroids) and of its imports.
    declare -A IMED IMIN IMAX IMP
    skin() {
        local t
        t=$("$PY" "$KPY" times "$KO/$1.jsonl" elapsed_s)
        # shellcheck disable=SC2086 # space-separated numbers
        read -r "IMED[$1]" "IMIN[$1]" "IMAX[$1]" <<< "$(stats $t)"
        KTIMES=$t
        t=$("$PY" "$KPY" times "$KO/$1.jsonl" import_s)
        # shellcheck disable=SC2086
        read -r "IMP[$1]" _ _ <<< "$(stats $t)"
    }
    BLAS="$(skfield sk blas.internal_api) $(skfield sk blas.version)"
    SKV=$(skfield sk sklearn_version)
    say "mpimap: \`mpimap --threads N kmeans --k $KK --max-iter $KIT --tol 0 --init init.csv --dims $KD data.f64 -o out.csv\`;"
    say "scikit-learn $SKV: \`KMeans(n_clusters=$KK, init=C, n_init=1, max_iter=$KIT, tol=0, algorithm='lloyd', copy_x=False).fit(X)\` on"
    say "\`np.fromfile(...).reshape(-1, $KD)\`, centroids written as CSV. The data file ($(mbps "$(stat -L -c %s "$KF")" 1) MB) is in page cache."
    say ""
    say "| tool | cores | wall time | min-max | in-process: file to centroids | time / mpimap (wall) |"
    say "| --- | --- | --- | --- | --- | --- |"
    # krow NAME LABEL CORES MPIMAP-NAME
    krow() {
        local inproc="—" extra=()
        if [[ "$1" == sk* ]]; then
            skin "$1"
            inproc="${IMED[$1]} s (${IMIN[$1]}-${IMAX[$1]} s; imports ${IMP[$1]} s)"
            extra=("inprocess_times_s:list=$KTIMES" "inprocess_median_s=${IMED[$1]}"
                "inprocess_min_s=${IMIN[$1]}" "inprocess_max_s=${IMAX[$1]}" "import_median_s=${IMP[$1]}"
                "inprocess_over_mpimap=$(ratio "${IMED[$1]}" "${MED[$4]}")"
                "blas_internal_api:str=$(skfield "$1" blas.internal_api)"
                "blas_version:str=$(skfield "$1" blas.version)"
                "blas_num_threads=$(skfield "$1" blas.num_threads)"
                "blas_filepath:str=$(skfield "$1" blas.filepath)"
                "openmp_num_threads=$(skfield "$1" openmp.num_threads)"
                "openmp_filepath:str=$(skfield "$1" openmp.filepath)"
                "reader:str=$(skfield "$1" reader)" "n_iter=$(skfield "$1" n_iter)"
                "inertia=$(skfield "$1" inertia)")
        fi
        say "| $2 | $3 | ${MED[$1]} s | $(range "$1") | $inproc | $(ratio "${MED[$1]}" "${MED[$4]}") |"
        jcmd "$1" "label:str=$2" "cores=$3" "time_over_mpimap=$(ratio "${MED[$1]}" "${MED[$4]}")" "${extra[@]}"
    }
    krow mp "mpimap --threads $KC kmeans --dims $KD" "$KC" mp
    krow sk "scikit-learn KMeans lloyd, $BLAS, OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=$KC" "$KC" mp
    krow mp1 "taskset -c 0 mpimap --threads 1 kmeans --dims $KD" 1 mp1
    krow sk1 "taskset -c 0 scikit-learn KMeans lloyd, $BLAS, 1 thread" 1 mp1
    say "| mpirun -np $KC mpimap --threads 1 kmeans --dims $KD (one run) | $KC | $MPN_T s | | — | $(ratio "$MPN_T" "${MED[mp]}") |"
    jraw "name:str=mpn" "label:str=mpirun -np $KC mpimap --threads 1 kmeans, one run" "cores=$KC" \
        "command:str=$(shjoin "${MPN_CMD[@]}")" "times_s:list=$MPN_T" "median_s=$MPN_T" \
        "min_s=$MPN_T" "max_s=$MPN_T" "engine_times_s:list=$MPN_E" \
        "time_over_mpimap=$(ratio "$MPN_T" "${MED[mp]}")"
    say ""
    say "**scikit-learn ($BLAS, $KC threads) ${IMED[sk]} s in-process (${MED[sk]} s wall) vs mpimap" \
        "${MED[mp]} s wall: ratio $(ratio "${IMED[sk]}" "${MED[mp]}") ($(ratio "${MED[sk]}" "${MED[mp]}")" \
        "wall to wall).** One core: scikit-learn ${IMED[sk1]} s in-process (${MED[sk1]} s wall) vs mpimap" \
        "${MED[mp1]} s, ratio $(ratio "${IMED[sk1]}" "${MED[mp1]}") ($(ratio "${MED[sk1]}" "${MED[mp1]}") wall to wall)." \
        "Ratios above 1: mpimap is faster. In-process: from after Python's imports to the centroids" \
        "written; mpimap's times are always the whole process."
    if awk -v a="${IMED[sk]}" -v b="${MED[mp]}" 'BEGIN { exit !(b < a) }'; then
        say "Target (mpimap faster than scikit-learn with OpenBLAS on $KC cores, its in-process time): met."
        KMET=true
    else
        say "Target (mpimap faster than scikit-learn with OpenBLAS on $KC cores, its in-process time): **not met**."
        KMET=false
    fi
    say ""
    say "scikit-learn's BLAS (threadpoolctl.threadpool_info()): $(skfield sk blas.internal_api)" \
        "$(skfield sk blas.version) ($(skfield sk blas.threading_layer), $(skfield sk blas.architecture))," \
        "num_threads $(skfield sk blas.num_threads) ($(skfield sk1 blas.num_threads) in the 1-core run)," \
        "\`$(skfield sk blas.filepath)\`; OpenMP: $(skfield sk openmp.prefix), num_threads" \
        "$(skfield sk openmp.num_threads). Its Lloyd loop runs on the OpenMP threads; inside it, its BLAS" \
        "calls are limited to 1 thread."
    say ""
    say "Same result: every mpimap run (--threads $KC, --threads 1, mpirun -np $KC) wrote the same" \
        "centroids, byte for byte. mpimap vs scikit-learn: centroids max abs, max rel difference" \
        "$(kdiff "$DIFF_RAW") with $KC threads, $(kdiff "$DIFF_RAW1") with 1; both ran $ITERS iterations;" \
        "inertia mpimap $INERTIA_M, scikit-learn $INERTIA_S (relative difference $INERTIA_REL)."
    say ""
    jparam "points=$KN" "features=$KD" "k=$KK" "max_iter=$KIT" "tol=0" "cores=$KC" \
        "data:str=$KF" "init:str=$KI" "csv:str=$KCSV" "data_bytes=$(stat -L -c %s "$KF")" \
        "csv_bytes=$(stat -L -c %s "$KCSV")" "sklearn_version:str=$SKV" \
        "numpy_version:str=$(skfield sk numpy_version)" \
        "blas_internal_api:str=$(skfield sk blas.internal_api)" "blas_version:str=$(skfield sk blas.version)" \
        "blas_num_threads=$(skfield sk blas.num_threads)" "blas_filepath:str=$(skfield sk blas.filepath)" \
        "blas_threading_layer:str=$(skfield sk blas.threading_layer)" \
        "openmp_num_threads=$(skfield sk openmp.num_threads)" "openmp_filepath:str=$(skfield sk openmp.filepath)" \
        "iterations_mpimap=$ITERS" "iterations_sklearn=$(skfield sk n_iter)" \
        "inertia_mpimap=$INERTIA_M" "inertia_sklearn=$INERTIA_S" "inertia_rel_diff=$INERTIA_REL" \
        "centroids_max_abs_diff=${DIFF_RAW% *}" "centroids_max_rel_diff=${DIFF_RAW#* }" \
        "centroids_max_rel_diff_1core=${DIFF_RAW1#* }" "mpimap_outputs_identical=true" \
        "target_met=$KMET"

    # The same points as CSV: parsing is part of the job.
    alternate \
        mpc "$B/mpimap" -v --threads "$KC" "${KM[@]}" --inertia "$KCSV" -o "$KO/mpc.csv" -- \
        skc "${SKC[@]}"
    kcheck mpc skc
    DIFF_CSV=$KDIFF
    if cmp -s "$KO/mp.csv" "$KO/mpc.csv"; then
        CSV_SAME=true CSV_NOTE="the same centroids, byte for byte, as from the raw file"
    else
        CSV_SAME=false CSV_NOTE="centroids that differ from the raw file's in the last bits (max abs, max rel difference $(kdiff "$("$PY" "$KPY" cmp "$KO/mp.csv" "$KO/mpc.csv")"); docs/KMEANS.md: a CSV's block sums follow its chunks)"
    fi
    say "### The same points as CSV ($(mbps "$(stat -L -c %s "$KCSV")" 1) MB, %.17g), $KC cores"
    say ""
    say "| tool | wall time | min-max | in-process: file to centroids | time / mpimap (wall) |"
    say "| --- | --- | --- | --- | --- |"
    skin skc
    say "| mpimap --threads $KC kmeans (CSV) | ${MED[mpc]} s | $(range mpc) | — | 1.00 |"
    say "| scikit-learn, numpy.loadtxt + KMeans, $KC threads | ${MED[skc]} s | $(range skc) | ${IMED[skc]} s (read $(skfield skc read_s) s, fit $(skfield skc fit_s) s in the last run) | $(ratio "${MED[skc]}" "${MED[mpc]}") |"
    jcmd mpc "label:str=mpimap --threads $KC kmeans on the CSV" "cores=$KC" "time_over_mpimap=1.00"
    jcmd skc "label:str=scikit-learn KMeans lloyd on numpy.loadtxt of the CSV, $BLAS, $KC threads" \
        "cores=$KC" "time_over_mpimap=$(ratio "${MED[skc]}" "${MED[mpc]}")" \
        "inprocess_times_s:list=$KTIMES" "inprocess_median_s=${IMED[skc]}" \
        "inprocess_over_mpimap=$(ratio "${IMED[skc]}" "${MED[mpc]}")" "reader:str=numpy.loadtxt"
    say ""
    say "**scikit-learn (numpy.loadtxt, $BLAS, $KC threads) ${IMED[skc]} s in-process (${MED[skc]} s wall)" \
        "vs mpimap ${MED[mpc]} s wall: ratio $(ratio "${IMED[skc]}" "${MED[mpc]}")" \
        "($(ratio "${MED[skc]}" "${MED[mpc]}") wall to wall).** numpy.loadtxt (its C parser, one thread) was" \
        "the fastest numpy reader here (numpy.fromstring about 2x and genfromtxt about 5x slower; pandas" \
        "is not installed). mpimap on the CSV: $CSV_NOTE; vs scikit-learn: centroids max abs, max rel" \
        "difference $(kdiff "$DIFF_CSV"), the same number of iterations."
    say ""
    jparam "csv_reader_sklearn:str=numpy.loadtxt" "csv_same_centroids_as_raw=$CSV_SAME" \
        "csv_centroids_max_rel_diff=${DIFF_CSV#* }"
    rm -f "$KO"/*.jsonl
    jend
fi

# ------------------------------------------------------------ overlap, dispatch, hash, fetch, exec
# Separate scripts with their own lock on the same file: release ours first.
flock -u 9
exec 9>&-
for s in overlap dispatch hash fetch exec; do
    want_external "$s" || continue
    script="$MPIMAP_ROOT/scripts/bench-$s.sh"
    if [ ! -f "$script" ]; then
        log "$s: $script does not exist yet, skipped"
        continue
    fi
    args=()
    [ "$QUICK" = 1 ] && args+=(--quick)
    log "$s: $script ${args[*]}"
    bash "$script" "${args[@]}" | tee -a "$OUT"
done

log "results in $OUT and $RESULTS/"
