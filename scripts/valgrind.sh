#!/bin/bash
# scripts/valgrind.sh - every kernel under valgrind's memcheck, 2 ranks, zero errors.
#
#   scripts/valgrind.sh              install valgrind if missing, build build-valgrind/,
#                                    run every case, print a table; exit 0 only if clean
#   scripts/valgrind.sh CASE...      only these cases (fib, image-files, plugin, ...)
#   scripts/valgrind.sh --list       the cases
#   scripts/valgrind.sh --keep       keep the work directory (inputs, outputs, logs)
#
# Every built-in kernel (the list is `mpimap kernels`: a kernel without a case
# here fails the run) and a --kernel plugin (examples/kernel-template, built
# out of tree against an install of build-valgrind/) run as
#   mpirun -np 2 --oversubscribe valgrind --tool=memcheck --error-exitcode=99
#       --suppressions=/usr/share/openmpi/openmpi-valgrind.supp
#       --suppressions=tests/valgrind/mpimap.supp --leak-check=full
#       --errors-for-leak-kinds=definite --gen-suppressions=all ... mpimap -t 2 KERNEL ...
# on a small but real input: two pool threads per rank, several chunks on
# both ranks (checked with --metrics), ordered output (fib, primes, image,
# exec, test), reduced partials (wordcount, kmeans, plugin), journals
# (wordcount, plugin), kernel-owned sources and sinks (image, hash, fetch,
# exec), --trace, -v and progress lines (test, fib). Only mpimap runs under
# valgrind: not mpirun, not exec's tasks (--trace-children=no), not fetch's
# local HTTP server (tests/e2e/httpserver.py on 127.0.0.1).
#
# A case passes when the same command without valgrind exits 0 and gives the
# same bytes (stdout and output files; fetch's ms column is masked: it is a
# time), and each rank's valgrind log says "ERROR SUMMARY: 0 errors" (leaks
# count as errors when definite). On failure the unsuppressed errors are
# printed, with --gen-suppressions stanzas; a case with uninitialised-value
# errors is run once more with --track-origins=yes for the report.
# tests/valgrind/mpimap.supp may only hold entries for frames inside
# third-party libraries, each commented.
#
# Build: build-valgrind/ with -O1 -g (CMAKE_BUILD_TYPE=Debug with
# CMAKE_C_FLAGS_DEBUG="-O1 -g"): valgrind's manual recommends -O0/-O1, since
# -O2 and above occasionally produce false "uninitialised value" reports;
# -O0 would make the engine's hot loops slower under valgrind for nothing.
# The two files the project compiles at -O3 (imgfilter.c, kmeans_math.c) stay
# -O3: their vector code is what ships. No sanitizer; no tests (not run here).
#
# Environment: VALGRIND_JOBS cases at a time (default 2), VALGRIND_TIMEOUT
# seconds per mpirun (default 300), VALGRIND_TRACK_ORIGINS auto|yes|no.
# auto (default): --track-origins=no, and =yes only for the rerun of a case
# with uninitialised-value errors. Origins do not change what memcheck
# detects, only what it says about it, and cost 30-40% of every run's CPU
# time (measured here: 11.6 -> 8.5 s for one 2-rank start-up), which on this
# 2-core machine under other load put the whole script past 8 minutes.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh disable=SC1091 # (followed with -x)
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ME=$(basename "$0")
ALL_CASES=(fib primes wordcount image image-files kmeans hash fetch exec test plugin)
KEEP=0
ONLY=()
for a in "$@"; do
    case "$a" in
    -h | --help)
        sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    --keep) KEEP=1 ;;
    --list)
        printf '%s\n' "${ALL_CASES[@]}"
        exit 0
        ;;
    -*)
        echo "$ME: unknown option '$a' (see --help)" >&2
        exit 2
        ;;
    *) ONLY+=("$a") ;;
    esac
done

T_START=$(date +%s%N)
ROOT="$MPIMAP_ROOT"
B="$ROOT/build-valgrind"
PY=/usr/bin/python3
SUPP_MPI=/usr/share/openmpi/openmpi-valgrind.supp
SUPP_OWN="$ROOT/tests/valgrind/mpimap.supp"
TIMEOUT=${VALGRIND_TIMEOUT:-300}
JOBS=${VALGRIND_JOBS:-2}
TRACK_ORIGINS=${VALGRIND_TRACK_ORIGINS:-auto}
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || { echo "$ME: VALGRIND_JOBS must be a positive integer" >&2; exit 2; }
[[ "$TRACK_ORIGINS" =~ ^(auto|yes|no)$ ]] || {
    echo "$ME: VALGRIND_TRACK_ORIGINS must be auto, yes or no" >&2
    exit 2
}
export LC_ALL=C
# hwloc's x86 backend (CPUID) disables itself under valgrind with a warning;
# leave it out of both runs so that they discover the topology the same way.
export HWLOC_COMPONENTS=-x86

install_deps valgrind "${BUILD_DEPS[@]}"
[ -r "$SUPP_MPI" ] || { echo "$ME: $SUPP_MPI not found (libopenmpi-dev)" >&2; exit 1; }
[ -r "$SUPP_OWN" ] || { echo "$ME: $SUPP_OWN not found" >&2; exit 1; }
build "$B" -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_C_FLAGS_DEBUG=-O1 -g" -DMPIMAP_TESTS=OFF
MPIMAP="$B/mpimap"
# Open MPI's launcher even where Debian's `mpirun` alternative names MPICH's
# (build() builds against Open MPI; the suppressions are Open MPI's).
MPIRUN=$(command -v mpirun.openmpi || command -v mpirun) || { echo "$ME: no mpirun" >&2; exit 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}/mpimap-valgrind.XXXXXX")
SRV_PID=
cleanup() {
    local rc=$? f p
    # Interrupted: end the cases still running (this shell's jobs, the HTTP
    # server among them), then their runs: `timeout` passes SIGTERM on to
    # mpirun, which ends its ranks.
    for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
    for f in "$W"/*/*/pid; do
        [ -e "$f" ] || continue
        p=$(cat "$f")
        [ "$(cat "/proc/$p/comm" 2>/dev/null)" = timeout ] && { kill "$p" 2>/dev/null || true; }
    done
    if [ -n "$SRV_PID" ]; then
        kill "$SRV_PID" 2>/dev/null || true
        wait "$SRV_PID" 2>/dev/null || true
    fi
    if [ "$KEEP" = 1 ]; then echo "$ME: kept $W" >&2; else rm -rf "$W"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ cases
KERNELS=()
while read -r k _; do KERNELS+=("$k"); done < <("$MPIMAP" kernels)
[ "${#KERNELS[@]}" -gt 0 ] || { echo "$ME: '$MPIMAP kernels' listed no kernel" >&2; exit 1; }

# Each case_NAME sets ARGS (mpimap's arguments after the engine's -t 2; output
# paths relative: every run has a directory of its own), OUTS (those output
# files or directories, compared too) and FILTER (applied to stdout before
# comparing; default cat). Inputs are made by make_inputs, under $IN.
IN="$W/in"
case_fib() { ARGS=(--progress on --progress-interval 0.2 fib --file "$IN/fib.txt"); }
case_primes() { ARGS=(-c 20000 primes --list 1:200000); }
case_wordcount() {
    ARGS=(-c 16K --journal wc.journal -f tsv wordcount "$IN/words1.txt" "$IN/words2.txt")
}
case_image() {
    ARGS=(image --filter "blur,sobel" --sigma 1.5 --strip-rows 12 "$IN/photo.png" -o out.png)
    OUTS=(out.png)
}
case_image_files() {
    ARGS=(image --filter "sharpen,box" --radius 2 "$IN/images" -o outdir)
    OUTS=(outdir)
}
case_kmeans() {
    ARGS=(-c 8K kmeans --k 4 --seed 3 --labels labels.txt "$IN/points.csv" -o centroids.csv --inertia)
    OUTS=(centroids.csv labels.txt)
}
case_hash() { ARGS=(-c 16K hash "$IN/tree"); }
case_fetch() {
    ARGS=(fetch --concurrency 4 --batch 4 --save saved "$IN/urls.txt")
    OUTS=(saved)
    FILTER=no_ms
}
case_exec() {
    # shellcheck disable=SC2016 # $1 and $2 are the task shell's
    ARGS=(exec --timeout 60 --joblog jobs.tsv --items "$IN/items.txt"
        -- /bin/sh -c 'printf "%s|%s\n" "$1" "$2"; echo "stderr of $1" >&2' sh '{}' '{#}-{/.}')
}
case_test() { ARGS=(-v --trace trace.json -c 2K -f json test --mode echo "$IN/lines.txt"); }
# The plugin counts (a reduced kernel, journaled: its partials serialised)
# what primes lists.
case_plugin() { ARGS=(-c 20000 --journal plugin.journal --kernel "$PLUGIN" 1:200000); }

# fetch's rows without the ms column (the 5th): a time, not a result.
no_ms() { awk -F '\t' 'BEGIN { OFS = "\t" } { $5 = "-"; print }'; }

missing=()
for k in "${KERNELS[@]}"; do
    declare -F "case_${k//-/_}" >/dev/null || missing+=("$k")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "$ME: no valgrind case for kernel(s): ${missing[*]} (add case_NAME to $ME)" >&2
    exit 1
fi
if [ "${#ONLY[@]}" -gt 0 ]; then
    CASES=("${ONLY[@]}")
else
    CASES=("${ALL_CASES[@]}")
    for k in "${KERNELS[@]}"; do
        [[ " ${CASES[*]} " == *" $k "* ]] || {
            echo "$ME: kernel '$k' has a case but is not in ALL_CASES" >&2
            exit 1
        }
    done
fi
for c in "${CASES[@]}"; do
    declare -F "case_${c//-/_}" >/dev/null || { echo "$ME: no case '$c' (see --list)" >&2; exit 2; }
done

# ------------------------------------------------------------------ inputs
make_inputs() {
    mkdir -p "$IN"
    "$PY" - "$IN" <<'PYEOF'
import os, random, struct, sys, zlib
d = sys.argv[1]
r = random.Random(20240601)
def w(name, data, mode="w"):
    with open(os.path.join(d, name), mode) as f:
        f.write(data)

# wordcount: two files (mixed case, digits, UTF-8, punctuation), ~180 KB.
vocab = ["alpha", "Beta", "gamma", "delta_1", "x", "ÉTÉ", "naïve", "zeta", "Omega", "mpi",
         "rank", "thread", "chunk", "the", "of", "and", "valgrind"] + \
        ["w%d" % i for i in range(400)]
for n, size in (("words1.txt", 120000), ("words2.txt", 60000)):
    out, total = [], 0
    while total < size:
        line = " ".join(r.choice(vocab) for _ in range(r.randint(1, 14)))
        line += r.choice(["", ".", ",", " --", "!"]) + "\n"
        out.append(line)
        total += len(line.encode())
    w(n, "".join(out))

# test: 3000 lines, some empty, some long.
w("lines.txt", "".join(("line %d %s\n" % (i, "x" * (i % 97))) if i % 50 else "\n"
                       for i in range(3000)))

# fib: one item per chunk, very uneven cost.
w("fib.txt", "".join("%d\n" % n for n in [25, 1, 0, 20, 24, 2, 93 - 70, 10, 22, 26, 5, 18, 24, 3]))

# kmeans: 4 blobs in 3 dimensions, header, 1600 rows.
centers = [(0, 0, 0), (8, 1, -3), (-5, 7, 2), (3, -6, 9)]
rows = ["x,y,z"]
for i in range(1600):
    c = centers[i % 4]
    rows.append(",".join("%.6f" % (v + r.gauss(0, 1.2)) for v in c))
w("points.csv", "\n".join(rows) + "\n")

# images: PNG (RGB 8-bit, RGBA, gray 16-bit) and binary PPM, written here.
def png(name, width, height, color, depth, pixel):
    ch = {0: 1, 2: 3, 6: 4}[color]
    raw = bytearray()
    for y in range(height):
        raw.append(y % 5)  # vary the PNG filter type per row (0..4 are all valid)
        row = bytearray()
        for x in range(width):
            for c in range(ch):
                v = pixel(x, y, c)
                row += struct.pack(">H", v) if depth == 16 else bytes([v])
        # Apply the declared filter so that the decoder undoes it.
        bpp = ch * depth // 8
        prev = raw_rows[-1] if raw_rows else bytearray(len(row))
        ft = y % 5
        out = bytearray(len(row))
        for i in range(len(row)):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            cc = prev[i - bpp] if i >= bpp else 0
            if ft == 0: p = 0
            elif ft == 1: p = a
            elif ft == 2: p = b
            elif ft == 3: p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - cc), abs(a - cc), abs(a + b - 2 * cc)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
            out[i] = (row[i] - p) & 255
        raw_rows.append(row)
        raw += out
    def chunk(t, data):
        c = struct.pack(">I", len(data)) + t + data
        return c + struct.pack(">I", zlib.crc32(t + data) & 0xffffffff)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(bytes(raw), 6)) + chunk(b"IEND", b"")
    w(name, data, "wb")

def rgb(x, y, c):
    return (x * 3 + y * 5 * (c + 1) + ((x // 8 + y // 8) % 2) * 90 + r.randint(0, 20)) % 256
raw_rows = []
png("photo.png", 150, 110, 2, 8, rgb)
os.makedirs(os.path.join(d, "images"), exist_ok=True)
raw_rows = []
png("images/rgba.png", 61, 47, 6, 8, lambda x, y, c: 255 - x * 4 % 256 if c == 3 else rgb(x, y, c))
raw_rows = []
png("images/gray16.png", 40, 33, 0, 16, lambda x, y, c: (x * 1500 + y * 700) % 65536)
w("images/small.ppm", b"P6\n# made by scripts/valgrind.sh\n37 29\n255\n" +
  bytes(rgb(x, y, c) for y in range(29) for x in range(37) for c in range(3)), "wb")

# hash: a tree of 60 files of 0..20 KiB in subdirectories, and a link (skipped).
for i in range(60):
    sub = os.path.join(d, "tree", "d%d" % (i % 4), "e%d" % (i % 3))
    os.makedirs(sub, exist_ok=True)
    w(os.path.join(sub, "f%02d.bin" % i), bytes(r.getrandbits(8) for _ in range((i * 347) % 20480)), "wb")
os.symlink("d0", os.path.join(d, "tree", "link"))

# exec: 30 items, names with dots and slashes.
w("items.txt", "".join("dir%d/item-%02d.tar.gz\n" % (i % 3, i) for i in range(30)))
PYEOF
    # A JPEG for image-files, encoded by mpimap itself (no valgrind).
    "$MPIMAP" -q image --filter copy --quality 85 "$IN/photo.png" -o "$IN/images/photo.jpg"
}

# The fetch case's local HTTP server (127.0.0.1 only) and its URL list.
start_server() {
    "$PY" "$ROOT/tests/e2e/httpserver.py" --host 127.0.0.1 --port-file "$W/http.port" \
        >"$W/httpserver.log" 2>&1 &
    SRV_PID=$!
    local _
    for _ in $(seq 100); do
        [ -s "$W/http.port" ] && break
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.1
    done
    [ -s "$W/http.port" ] || { echo "$ME: the test HTTP server did not start" >&2; cat "$W/httpserver.log" >&2; exit 1; }
    local u i
    u="http://127.0.0.1:$(cat "$W/http.port")"
    {
        echo "# urls for scripts/valgrind.sh"
        for i in $(seq 0 23); do echo "$u/ok/v/page$i?size=$((i * 911 % 7000))"; done
        echo "$u/redirect/3"
        echo "$u/chunked?size=5000"
        echo "$u/big?size=300000"
        echo
        echo "$u/ok/v/last?size=1&delay=50"
    } >"$IN/urls.txt"
}

# The plugin: build-valgrind installed into a prefix, the template built
# against it out of tree (same flags).
build_plugin() {
    local prefix="$B/plugin-prefix" pb="$B/plugin-template"
    log "installing build-valgrind into $prefix; building examples/kernel-template"
    if ! {
        cmake --install "$B" --prefix "$prefix" &&
            cmake -S "$ROOT/examples/kernel-template" -B "$pb" "-DCMAKE_PREFIX_PATH=$prefix" \
                -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_C_FLAGS_DEBUG=-O1 -g" &&
            cmake --build "$pb"
    } >"$W/plugin-build.log" 2>&1; then
        cat "$W/plugin-build.log" >&2
        echo "$ME: building the plugin failed" >&2
        exit 1
    fi
    PLUGIN="$pb/libmpimap-primes-template.so"
}

# ------------------------------------------------------------------ running
# --num-callers=24: deep enough for tests/valgrind/mpimap.supp's anchors in
# Open MPI's start-up; 32 and more double the CPU time (every malloc of
# MPI_Init is unwound that deep). --show-leak-kinds=definite: the logs list
# only the leaks that count as errors.
VG=(valgrind --tool=memcheck --error-exitcode=99
    "--suppressions=$SUPP_MPI" "--suppressions=$SUPP_OWN"
    --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite
    --gen-suppressions=all --num-callers=24 --trace-children=no)
ORIGINS=no
[ "$TRACK_ORIGINS" = yes ] && ORIGINS=yes

# mpirun2 DIR : mpimap -t 2 --metrics metrics.json "${ARGS[@]}" on 2 ranks in
# DIR (stdout and stderr to DIR/stdout, DIR/stderr), after the words in PRE
# (valgrind's command line, or nothing). Sets RC, and DIR/time holds the wall
# and CPU seconds (the ranks' included: mpirun waits for them).
mpirun2() {
    local dir=$1 TIMEFORMAT='%R %U %S'
    mkdir -p "$dir"
    RC=0
    { time (cd "$dir" && {
        timeout -k 10 "$TIMEOUT" "$MPIRUN" -np 2 --oversubscribe \
            ${PRE[@]+"${PRE[@]}"} "$MPIMAP" -t 2 --metrics metrics.json "${ARGS[@]}" \
            >"$dir/stdout" 2>"$dir/stderr" </dev/null &
        echo $! >"$dir/pid"
        wait $!
    }); } 2>"$dir/time" || RC=$?
}

# vg_errors LOG: the number in "ERROR SUMMARY: N errors", or "?" without it.
vg_errors() {
    sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$1" | tail -n 1 | tr -d , | grep . || echo "?"
}
# vg_definite LOG: the bytes "definitely lost" (0 when no such line).
vg_definite() {
    sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$1" | tail -n 1 | tr -d , | grep . || echo 0
}
# chunks METRICS: "C0/C1", the chunks each rank computed (--metrics).
chunks() {
    "$PY" -c 'import json, sys
m = json.load(open(sys.argv[1]))
print("/".join(str(r["chunks"]) for r in m["ranks"]))' "$1" 2>/dev/null || echo "?"
}

# run_case NAME: both runs of the case, in $W/NAME/{plain,vg}. Writes its
# table row to $W/NAME/row and, if it failed, why to $W/NAME/fail.
run_case() {
    local name=$1 d="$W/$1" why=() f e dl errs=0 defs=0 logs prc vrc ch wall cpu t
    ARGS=() OUTS=() FILTER=cat
    "case_${name//-/_}"
    log "$name: mpimap -t 2 ${ARGS[*]}"
    PRE=()
    mpirun2 "$d/plain"
    prc=$RC
    PRE=("${VG[@]}" "--track-origins=$ORIGINS" "--log-file=$d/vg/vg.%q{OMPI_COMM_WORLD_RANK}.log")
    mpirun2 "$d/vg"
    vrc=$RC
    read -r -a t <"$d/vg/time" || t=(0 0 0)
    wall=${t[0]:-0}
    cpu=$(awk -v u="${t[1]:-0}" -v s="${t[2]:-0}" 'BEGIN { printf "%.1f", u + s }')
    [ "$prc" = 0 ] || why+=("the run without valgrind exited $prc")
    [ "$vrc" = 0 ] || why+=("the run under valgrind exited $vrc")
    if ! cmp -s <("$FILTER" <"$d/plain/stdout") <("$FILTER" <"$d/vg/stdout"); then
        why+=("stdout differs from the run without valgrind")
    fi
    [ -s "$d/plain/stdout" ] || [ "${#OUTS[@]}" -gt 0 ] || why+=("no output at all")
    for f in ${OUTS[@]+"${OUTS[@]}"}; do
        if [ ! -e "$d/plain/$f" ]; then
            why+=("no $f from the run without valgrind")
        elif ! diff -r "$d/plain/$f" "$d/vg/$f" >/dev/null 2>&1; then
            why+=("$f differs from the run without valgrind")
        fi
    done
    # Both ranks computed (rank 0 fills every rank's window at the start).
    ch=$(chunks "$d/vg/metrics.json")
    [[ "$ch" =~ ^[1-9][0-9]*/[1-9][0-9]*$ ]] || why+=("expected chunks on both ranks, --metrics says '$ch'")
    logs=()
    for f in "$d"/vg/vg.*.log; do [ -e "$f" ] && logs+=("$f"); done
    [ "${#logs[@]}" = 2 ] || why+=("expected 2 valgrind logs (one per rank), found ${#logs[@]}")
    for f in ${logs[@]+"${logs[@]}"}; do
        e=$(vg_errors "$f")
        dl=$(vg_definite "$f")
        if [ "$e" = "?" ]; then
            why+=("$(basename "$f"): no ERROR SUMMARY (rank killed?)")
            errs="?"
        else
            [ "$e" = 0 ] || why+=("$(basename "$f"): $e errors")
            [ "$errs" = "?" ] || errs=$((errs + e))
        fi
        defs=$((defs + dl))
    done
    printf '%-12s %6s %14s %8s %8s %9s\n' "$name" "$errs" "$defs" "$wall" "$cpu" "$ch" >"$d/row"
    if [ "${#why[@]}" -eq 0 ]; then
        log "$name: ok ($errs errors, $defs bytes definitely lost, ${wall} s under valgrind)"
        return 0
    fi
    log "$name: FAILED"
    # Where the uninitialised values came from: the same run with origins.
    local shown=("${logs[@]}") o
    if [ "$TRACK_ORIGINS" = auto ] && grep -qs uninitialised ${logs[@]+"${logs[@]}"} /dev/null; then
        log "$name: running it again with --track-origins=yes for the report"
        PRE=("${VG[@]}" --track-origins=yes "--log-file=$d/vg-origins/vg.%q{OMPI_COMM_WORLD_RANK}.log")
        mpirun2 "$d/vg-origins"
        shown=()
        for o in "$d"/vg-origins/vg.*.log; do [ -e "$o" ] && shown+=("$o"); done
    fi
    {
        echo "FAIL - $name: $(printf '%s; ' "${why[@]}")"
        echo "  command: mpirun -np 2 --oversubscribe valgrind ... $MPIMAP -t 2 --metrics metrics.json ${ARGS[*]}"
        for f in "$d/plain/stderr" "$d/vg/stderr"; do
            [ -s "$f" ] && { echo "  --- $f:"; head -n 15 "$f" | sed 's/^/  | /'; }
        done
        if ! cmp -s <("$FILTER" <"$d/plain/stdout") <("$FILTER" <"$d/vg/stdout"); then
            echo "  --- stdout diff (without valgrind vs under valgrind):"
            diff -a <("$FILTER" <"$d/plain/stdout") <("$FILTER" <"$d/vg/stdout") | head -n 20 | sed 's/^/  | /'
        fi
        for f in ${shown[@]+"${shown[@]}"}; do
            [ "$(vg_errors "$f")" = 0 ] && continue
            echo "  --- $f: the unsuppressed errors (first 300 lines):"
            # Each error report and its suppression stanza, without the
            # banner and the summaries.
            sed -n '/^==[0-9]*== \(Invalid\|Conditional\|Use of\|Syscall\|Mismatched\|Source and\|Argument\|Thread\|[0-9,]* \(bytes\|(\)\)/,/^}/p' "$f" |
                head -n 300 | sed 's/^/  | /'
        done
    } >"$d/fail"
    return 0
}

make_inputs
[[ " ${CASES[*]} " == *" fetch "* ]] && start_server
[[ " ${CASES[*]} " == *" plugin "* ]] && build_plugin
# JOBS cases at a time (each is 2 ranks): valgrind's start-up is serial
# work, so two cases side by side keep both cores busy.
pids=()
for c in "${CASES[@]}"; do
    while [ "${#pids[@]}" -ge "$JOBS" ]; do
        wait -n "${pids[@]}" || true
        alive=()
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive+=("$p"); done
        pids=(${alive[@]+"${alive[@]}"})
    done
    run_case "$c" &
    pids+=($!)
done
for p in ${pids[@]+"${pids[@]}"}; do wait "$p" || true; done

FAILED=()
for c in "${CASES[@]}"; do
    [ -s "$W/$c/row" ] || { FAILED+=("$c"); echo "FAIL - $c: the case did not finish" >&2; continue; }
    [ -e "$W/$c/fail" ] && { FAILED+=("$c"); cat "$W/$c/fail" >&2; }
done
# The plugin is the template of `primes`: it counts the primes that
# `primes --list` printed for the same range.
if [[ " ${CASES[*]} " == *" plugin "* ]] && [[ " ${CASES[*]} " == *" primes "* ]] &&
    [ "$(wc -l <"$W/primes/plain/stdout")" != "$(cat "$W/plugin/plain/stdout" 2>/dev/null)" ]; then
    echo "FAIL - plugin: its count is not the number of primes the built-in kernel listed" >&2
    FAILED+=("plugin-vs-primes")
fi
if [ -s "$W/httpserver.log" ]; then
    echo "FAIL - fetch: the test HTTP server reported errors:" >&2
    head -c 2000 "$W/httpserver.log" >&2
    FAILED+=("httpserver")
fi

T_END=$(date +%s%N)
echo
echo "memcheck (--track-origins=$ORIGINS), mpirun -np 2, mpimap -t 2; errors, definite leaks and chunks of both ranks; seconds of the run under valgrind"
printf '%-12s %6s %14s %8s %8s %9s\n' case errors "definite bytes" "wall s" "cpu s" "chunks"
for c in "${CASES[@]}"; do [ -s "$W/$c/row" ] && cat "$W/$c/row"; done
echo "total: $(((T_END - T_START) / 1000000000)) s (build included), ${#CASES[@]} cases, $JOBS at a time, ${#FAILED[@]} failed"
if [ "${#FAILED[@]}" -gt 0 ]; then
    echo "$ME: FAILED: ${FAILED[*]}" >&2
    exit 1
fi
echo "$ME: all cases clean under memcheck"
