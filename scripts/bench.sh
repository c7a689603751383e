#!/usr/bin/env bash
# scripts/bench.sh - side-by-side measurements, every pair taken in the same
# run and alternated (timings on a shared machine drift), best of REPS.
#
#   scripts/bench.sh [--quick] [all|scaling|wordcount|fib|overhead|journal]...
#
# scaling   primes and wordcount: (1 rank, 1 thread) vs (1 rank, 2 threads)
#           vs (2 ranks, 1 thread each); speedup over 1x1
# wordcount mpimap on >= 1 GiB of text in page cache vs awk and a Python
#           collections.Counter script
# fib       fib 30 35 40 (45) vs the seed's multiprocessing.Pool.map program
# overhead  the `test --mode noop` kernel over 1 GiB in 64 KiB chunks with
#           --io master on 2 ranks vs plain MPI point-to-point bandwidth
# journal   the cost of --journal: wordcount (reduced: per-chunk partials are
#           journaled) and test --mode echo (ordered rows) with and without
#           it, and a --resume that finds every chunk in the journal
#
# Results are printed as Markdown and saved to build-bench/bench-results.md.
# Environment: REPS (default 3), BENCH_DIR (data, default data/bench).
source "$(dirname "$0")/common.sh"

QUICK=0
WHAT=()
for a in "$@"; do
    case "$a" in
    --quick) QUICK=1 ;;
    all | scaling | wordcount | fib | overhead | journal) WHAT+=("$a") ;;
    -h | --help)
        sed -n '2,17p' "$0"
        exit 0
        ;;
    *)
        echo "bench.sh: unknown argument '$a'" >&2
        exit 2
        ;;
    esac
done
[ "${#WHAT[@]}" = 0 ] && WHAT=(all)
want() { [[ " ${WHAT[*]} " == *" all "* || " ${WHAT[*]} " == *" $1 "* ]]; }

install_deps "${BUILD_DEPS[@]}" gawk
build "$MPIMAP_ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release -DMPIMAP_TESTS=OFF
B="$MPIMAP_ROOT/build-bench"
REPS="${REPS:-3}"
DATA="${BENCH_DIR:-$MPIMAP_ROOT/data/bench}"
mkdir -p "$DATA"
OUT="$B/bench-results.md"
: > "$OUT"
PY=/usr/bin/python3
MPIRUN=(mpirun --oversubscribe)

say() { echo "$*" | tee -a "$OUT"; }

# best_of CMD...: runs CMD REPS times, prints the best wall time in seconds.
# Output of CMD goes to $DATA/last.out (stdout) and $DATA/last.err (stderr).
time_once() {
    local s e
    s=$(date +%s.%N)
    "$@" > "$DATA/last.out" 2> "$DATA/last.err" || {
        echo "bench.sh: command failed: $*" >&2
        cat "$DATA/last.err" >&2
        exit 1
    }
    e=$(date +%s.%N)
    awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f\n", e - s }'
}
min() { printf '%s\n' "$@" | sort -g | head -1; }

# alternate NAME1 CMD1 -- NAME2 CMD2 -- ...: runs the commands round-robin REPS
# times; sets BEST[NAME] to the best wall time.
declare -A BEST
alternate() {
    local names=() cmds=() cur=() a
    for a in "$@"; do
        if [ "$a" = "--" ]; then
            cmds+=("$(printf '%q ' "${cur[@]}")")
            cur=()
        else
            cur+=("$a")
        fi
    done
    [ "${#cur[@]}" -gt 0 ] && cmds+=("$(printf '%q ' "${cur[@]}")")
    local i r t
    declare -A times
    for ((i = 0; i < ${#cmds[@]}; i++)); do
        names+=("$(eval "set -- ${cmds[$i]}"; echo "$1")")
    done
    for ((r = 0; r < REPS; r++)); do
        for ((i = 0; i < ${#cmds[@]}; i++)); do
            eval "set -- ${cmds[$i]}"
            shift
            t=$(time_once "$@")
            times[${names[$i]}]+="$t "
        done
    done
    for ((i = 0; i < ${#cmds[@]}; i++)); do
        # shellcheck disable=SC2086
        BEST[${names[$i]}]=$(min ${times[${names[$i]}]})
    done
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mbps() { awk -v n="$1" -v t="$2" 'BEGIN { printf "%.0f", n / t / 1e6 }'; }

say "# mpimap benchmarks ($(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
say ""
say "Best of $REPS alternated runs; wall time includes process start-up (mpirun ~0.3 s)."
say ""

corpus() { # corpus SIZE -> path (generated once, then kept)
    local f="$DATA/corpus-$1.txt"
    if [ ! -s "$f" ]; then
        "$B/mpimap-gencorpus" "$1" > "$f.tmp" && mv "$f.tmp" "$f"
    fi
    cat "$f" > /dev/null # into the page cache
    echo "$f"
}

if want scaling; then
    PR_RANGE=1:2000000000
    WC_SIZE=512M
    [ "$QUICK" = 1 ] && PR_RANGE=1:300000000 && WC_SIZE=64M
    WC=$(corpus $WC_SIZE)
    say "## Scaling on $(nproc) cores: speedup over 1 rank x 1 thread"
    say ""
    say "| workload | 1 rank x 1 thread | 1 rank x 2 threads | 2 ranks x 1 thread | speedup 1x2 | speedup 2x1 |"
    say "| --- | --- | --- | --- | --- | --- |"
    # scale LABEL KERNEL ARGS...: the three layouts of one workload, alternated.
    scale() {
        local label="$1"
        shift
        alternate \
            s11 "${MPIRUN[@]}" -np 1 --bind-to none "$B/mpimap" -t 1 "$@" -- \
            s12 "${MPIRUN[@]}" -np 1 --bind-to none "$B/mpimap" -t 2 "$@" -- \
            s21 "${MPIRUN[@]}" -np 2 "$B/mpimap" -t 1 "$@"
        say "| $label | ${BEST[s11]} s | ${BEST[s12]} s | ${BEST[s21]} s | $(ratio "${BEST[s11]}" "${BEST[s12]}") | $(ratio "${BEST[s11]}" "${BEST[s21]}") |"
    }
    scale "primes $PR_RANGE" primes "$PR_RANGE"
    scale "wordcount $WC_SIZE" wordcount --top 10 "$WC"
    say ""
fi

if want wordcount; then
    SIZE=1G
    [ "$QUICK" = 1 ] && SIZE=128M
    WC=$(corpus $SIZE)
    BYTES=$(stat -c %s "$WC")
    cat > "$DATA/counter.py" << 'PYEOF'
import collections, sys
c = collections.Counter()
with open(sys.argv[1], 'rb') as f:
    for line in f:
        c.update(line.lower().split())
for w, n in c.most_common(10):
    print(n, w.decode('utf-8', 'replace'))
PYEOF
    say "## wordcount on $SIZE of text in page cache ($BYTES bytes)"
    say ""
    alternate \
        mpimap "${MPIRUN[@]}" -np 2 "$B/mpimap" wordcount --top 10 "$WC" -- \
        awk awk '{for(i=1;i<=NF;i++)c[tolower($i)]++} END{for(w in c) if (c[w] > 1000000) print c[w], w}' "$WC" -- \
        python "$PY" "$DATA/counter.py" "$WC"
    say "| tool | wall time | throughput | mpimap speedup |"
    say "| --- | --- | --- | --- |"
    say "| mpimap wordcount, mpirun -np 2 | ${BEST[mpimap]} s | $(mbps "$BYTES" "${BEST[mpimap]}") MB/s | 1 |"
    say "| awk ($(readlink -f "$(command -v awk)" | xargs basename)) | ${BEST[awk]} s | $(mbps "$BYTES" "${BEST[awk]}") MB/s | $(ratio "${BEST[awk]}" "${BEST[mpimap]}") |"
    say "| python3 collections.Counter | ${BEST[python]} s | $(mbps "$BYTES" "${BEST[python]}") MB/s | $(ratio "${BEST[python]}" "${BEST[mpimap]}") |"
    say ""
    say "awk and Python split on whitespace only (a lighter rule than mpimap's word definition)."
    say ""
fi

if want fib; then
    cat > "$DATA/seed_fib.py" << 'PYEOF'
import multiprocessing, sys

def calculate_fibonacci(n):
    if n <= 1:
        return n
    else:
        return calculate_fibonacci(n - 1) + calculate_fibonacci(n - 2)

if __name__ == '__main__':
    num_processes = 4
    pool = multiprocessing.Pool(processes=num_processes)
    input_values = [int(x) for x in sys.argv[1:]]
    results = pool.map(calculate_fibonacci, input_values)
    pool.close()
    pool.join()
    print("Results:", results)
PYEOF
    NUMS="30 35 40"
    [ "$QUICK" = 1 ] && NUMS="25 30 32"
    say "## fib: the seed's multiprocessing.Pool.map(calculate_fibonacci) vs mpimap fib"
    say ""
    # shellcheck disable=SC2086
    alternate \
        mpimap "${MPIRUN[@]}" -np 2 "$B/mpimap" fib $NUMS -- \
        python "$PY" "$DATA/seed_fib.py" $NUMS
    say "| inputs | mpimap -np 2 | Python Pool(4).map | mpimap speedup |"
    say "| --- | --- | --- | --- |"
    say "| $NUMS | ${BEST[mpimap]} s | ${BEST[python]} s | $(ratio "${BEST[python]}" "${BEST[mpimap]}") |"
    if [ "$QUICK" = 0 ]; then
        t=$(time_once "${MPIRUN[@]}" -np 2 "$B/mpimap" fib 30 35 40 45)
        say "| 30 35 40 45 | $t s (one run) | not run: fib(45) alone takes minutes in CPython | — |"
    fi
    say ""
fi

if want overhead; then
    SIZE=1G
    [ "$QUICK" = 1 ] && SIZE=128M
    F=$(corpus $SIZE)
    BYTES=$(stat -c %s "$F")
    MIB=$((BYTES >> 20))
    say "## Engine overhead: empty kernel, $SIZE in 64 KiB chunks, --io master, 2 ranks"
    say ""
    say "| run | engine, default window (2 per thread) | engine, --window 16 | plain MPI point-to-point, 64 KiB messages, window 2 | ratio default / p2p | ratio -w 16 / p2p |"
    say "| --- | --- | --- | --- | --- | --- |"
    for ((r = 1; r <= REPS; r++)); do
        "${MPIRUN[@]}" -np 2 "$B/mpimap-p2pbw" "$MIB" 64 2 > "$DATA/p2p.out"
        p2p=$(sed -n 's/.* \([0-9.]*\) GB\/s/\1/p' "$DATA/p2p.out")
        "${MPIRUN[@]}" -np 2 "$B/mpimap" -v --io master -c 64K test --mode noop "$F" \
            > "$DATA/noop.out" 2> "$DATA/noop.err"
        [ "$(cat "$DATA/noop.out")" = "$BYTES" ] || {
            echo "bench.sh: noop kernel counted $(cat "$DATA/noop.out") bytes, expected $BYTES" >&2
            exit 1
        }
        eng=$(sed -n 's/.* in \([0-9.]*\) s (.*/\1/p' "$DATA/noop.err")
        engbw=$(awk -v n="$BYTES" -v t="$eng" 'BEGIN { printf "%.2f", n / t / 1e9 }')
        "${MPIRUN[@]}" -np 2 "$B/mpimap" -v --window 16 --io master -c 64K test --mode noop "$F" \
            > "$DATA/noop.out" 2> "$DATA/noop.err"
        eng16=$(sed -n 's/.* in \([0-9.]*\) s (.*/\1/p' "$DATA/noop.err")
        engbw16=$(awk -v n="$BYTES" -v t="$eng16" 'BEGIN { printf "%.2f", n / t / 1e9 }')
        say "| $r | $engbw GB/s | $engbw16 GB/s | $p2p GB/s | $(ratio "$engbw" "$p2p") | $(ratio "$engbw16" "$p2p") |"
    done
    say ""
    say "The engine also reads the file (page cache) on rank 0 and computes half the chunks there."
    say ""
fi

if want journal; then
    SIZE=1G
    [ "$QUICK" = 1 ] && SIZE=128M
    F=$(corpus $SIZE)
    BYTES=$(stat -c %s "$F")
    J="$DATA/bench.journal"
    say "## Cost of --journal on $SIZE, mpirun -np 2 (journal on the same disk as the data)"
    say ""
    alternate \
        wc "${MPIRUN[@]}" -np 2 "$B/mpimap" wordcount --top 10 "$F" -- \
        wcj bash -c 'rm -f "$1"; shift; "$@"' _ "$J" "${MPIRUN[@]}" -np 2 "$B/mpimap" --journal "$J" wordcount --top 10 "$F" -- \
        wcr "${MPIRUN[@]}" -np 2 "$B/mpimap" --journal "$J" --resume wordcount --top 10 "$F"
    WCJ=$(du -m "$J" | cut -f1)
    alternate \
        echo "${MPIRUN[@]}" -np 2 "$B/mpimap" -o "$DATA/echo.out" test "$F" -- \
        echoj bash -c 'rm -f "$1"; shift; "$@"' _ "$J" "${MPIRUN[@]}" -np 2 "$B/mpimap" --journal "$J" -o "$DATA/echo.out" test "$F" -- \
        echor "${MPIRUN[@]}" -np 2 "$B/mpimap" --journal "$J" --resume -o "$DATA/echo.out" test "$F"
    ECJ=$(du -m "$J" | cut -f1)
    rm -f "$J" "$DATA/echo.out"
    say "| workload | no journal | --journal (fresh) | overhead | --resume, all chunks journaled | journal size |"
    say "| --- | --- | --- | --- | --- | --- |"
    say "| wordcount --top 10 (reduced) | ${BEST[wc]} s | ${BEST[wcj]} s | $(ratio "${BEST[wcj]}" "${BEST[wc]}") | ${BEST[wcr]} s | $WCJ MiB |"
    say "| test --mode echo -o FILE (ordered) | ${BEST[echo]} s | ${BEST[echoj]} s | $(ratio "${BEST[echoj]}" "${BEST[echo]}") | ${BEST[echor]} s | $ECJ MiB |"
    say ""
fi

log "results in $OUT"
