#!/usr/bin/env bash
# scripts/bench-fetch.sh - `mpimap fetch` next to curl under xargs -P, a
# Python asyncio client and a Python thread pool, all against the same local
# server whose every response takes 50 ms: the test is how well each keeps
# its concurrency busy.
#
#   scripts/bench-fetch.sh [--quick] [-h|--help]
#
# Server: tests/e2e/httpserver.py (Python, standard library, a thread per
# connection, keep-alive) on 127.0.0.1, started here (waited for if it does
# not exist yet) and stopped at exit. URLs: N = 2,000 (500 with --quick)
# `http://127.0.0.1:PORT/ok/uI?delay=50&size=1000` (I = 1..N; 1,000-byte
# bodies after 50 ms). Concurrency C = 64 everywhere:
#   mp        mpimap fetch --concurrency 64 URLS (one process, its default
#             threads)
#   mpn       mpirun -np 2 mpimap --threads 1 fetch --concurrency 64 URLS
#   curl      xargs -P 64 -n 1 curl -s -o /dev/null -w '%{http_code} %{size_download}\n'
#             (a process per URL: about 0.1 s of CPU each here, so this
#             one is bound by the 2 cores, not by the server)
#   curlz     curl -Z --parallel-max 64 -K URLS.curl (one curl process,
#             libcurl's multi interface; not in the brief, the fair curl)
#   asyncio   bench/fetch_asyncio.py: the seeds' asyncio approach, raw
#             HTTP/1.1 GETs on asyncio.open_connection under Semaphore(64)
#   threads   bench/fetch_threads.py: ThreadPoolExecutor(64) with urllib
# REPS rounds (default 3), the order rotated every round; reported: median
# wall time, min-max, URLs/s and % of ideal = (N x 0.05 s / C) / wall time
# (100% = every slot busy from the first moment to the last, with no cost
# beyond the server's 50 ms). Target: >= 80% for mpimap. The server and the
# clients share this machine's cores; the server's peak in-flight count of
# each run (its /stats) is reported to show each client reached C.
# Checked in every round: mpimap's rows and the Python clients' lines hold,
# in input order, each URL with status 200, 1000 bytes and the body's SHA-256
# (computed here from the server's body rule); curl printed N lines `200 1000`.
#
# Installs what is missing (curl; the build tools), builds the Release build
# in build-bench/ unless MPIMAP names a binary, measures under the exclusive
# lock /tmp/mpimap-bench.lock shared with the other benchmarks. Results:
# Markdown on stdout and in build-bench/fetch.md; JSON in
# bench/results/fetch.json (build-bench/results-quick/fetch.json and
# build-bench/fetch-quick.md with --quick).
# Environment: MPIMAP (binary; default: build build-bench/mpimap), REPS, N
# (URLs), C (concurrency), DELAY_MS (default 50), RESULTS (JSON path),
# SERVER_WAIT (seconds to wait for httpserver.py to appear, default 600).

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

bench_args "$@"

die() {
    echo "bench-fetch.sh: $*" >&2
    exit 1
}

install_deps "${BUILD_DEPS[@]}" curl
bench_setup
SERVER="$MPIMAP_ROOT/tests/e2e/httpserver.py"
C="${C:-64}"
DELAY_MS="${DELAY_MS:-50}"
SIZE=1000
NP=$NPROC
if [ "$QUICK" = 1 ]; then
    N="${N:-500}"
    RESULTS="${RESULTS:-$B/results-quick/fetch.json}"
    MD="$B/fetch-quick.md"
else
    N="${N:-2000}"
    RESULTS="${RESULTS:-$BENCH/results/fetch.json}"
    MD="$B/fetch.md"
fi
HAVE_FETCH=0
"$MPIMAP" kernels 2> /dev/null | grep -q '^fetch\b' && HAVE_FETCH=1

# The server is written elsewhere: wait for it rather than replace it.
WAITED=0
while [ ! -f "$SERVER" ]; do
    [ "$WAITED" -ge "${SERVER_WAIT:-600}" ] && die "$SERVER does not exist (waited $WAITED s)"
    [ "$WAITED" = 0 ] && log "waiting for $SERVER to appear"
    sleep 10
    WAITED=$((WAITED + 10))
done

SCR=$(mktemp -d /tmp/mpimap-bench-fetch.XXXXXX)
SRV_PID=""
cleanup() {
    if [ -n "$SRV_PID" ]; then
        kill "$SRV_PID" 2> /dev/null || true
        wait "$SRV_PID" 2> /dev/null || true
    fi
    rm -rf "$SCR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
RUNS="$SCR/runs"
JREC="$SCR/records.jsonl"
mkdir -p "$RUNS" "$(dirname "$RESULTS")"
: > "$JREC"
: > "$MD"
say() { echo "$*" | tee -a "$MD"; }

# One benchmark at a time on this machine (scripts/bench*.sh take the same lock).
bench_lock
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
T_BEGIN=$EPOCHREALTIME

# ------------------------------------------------------------ server, URLs
"$PY" "$SERVER" --port-file "$SCR/port" > "$SCR/server.log" 2>&1 &
SRV_PID=$!
for _ in $(seq 1 100); do
    [ -s "$SCR/port" ] && break
    kill -0 "$SRV_PID" 2> /dev/null || { cat "$SCR/server.log" >&2; die "the server exited"; }
    sleep 0.1
done
[ -s "$SCR/port" ] || die "the server did not write its port"
PORT=$(cat "$SCR/port")
BASE="http://127.0.0.1:$PORT"
URLS="$SCR/urls.txt"
REF="$SCR/ref.tsv" # url status bytes sha256, the expected rows
CURLCFG="$SCR/urls.curl" # the same URLs as a curl config file (curl -K), bodies to /dev/null
PYTHONPATH="$MPIMAP_ROOT/tests/e2e" "$PY" - "$BASE" "$N" "$DELAY_MS" "$SIZE" "$URLS" "$REF" "$CURLCFG" << 'PYEOF'
import sys
from httpserver import body_sha256
base, n, delay, size, urls, ref, cfg = sys.argv[1:]
with open(urls, "w") as u, open(ref, "w") as r, open(cfg, "w") as k:
    for i in range(1, int(n) + 1):
        url = "%s/ok/u%d?delay=%s&size=%s" % (base, i, delay, size)
        u.write(url + "\n")
        r.write("%s\t200\t%s\t%s\n" % (url, size, body_sha256("u%d" % i, int(size))))
        k.write('url = "%s"\noutput = "/dev/null"\n' % url)
PYEOF
srv() { curl -s --max-time 10 "$BASE/$1"; }
srv reset > /dev/null || die "the server at $BASE does not answer"

# ------------------------------------------------------------ commands
q() { printf '%q' "$1"; }
declare -A CMDS LABEL CHECK TIMES MED MIN MAX INFL INFLM ETIMES EMED
CMDS[mp]="$(q "$MPIMAP") fetch --concurrency $C $(q "$URLS")"
LABEL[mp]="\`mpimap fetch --concurrency $C\` (one process, threads: its default)"
CHECK[mp]=mpimap
CMDS[mpn]="mpirun --oversubscribe -np $NP $(q "$MPIMAP") --threads 1 fetch --concurrency $C $(q "$URLS")"
LABEL[mpn]="\`mpirun -np $NP mpimap --threads 1 fetch --concurrency $C\`"
CHECK[mpn]=mpimap
CMDS[curl]="xargs -P $C -n 1 curl -s -o /dev/null -w '%{http_code} %{size_download}\\n' < $(q "$URLS")"
LABEL[curl]="\`xargs -P $C -n 1 curl -s -o /dev/null\` (a curl process per URL)"
CHECK[curl]=curl
CMDS[curlz]="curl -s -Z --parallel-max $C -w '%{http_code} %{size_download}\\n' -K $(q "$CURLCFG")"
LABEL[curlz]="\`curl -Z --parallel-max $C -K URLS.curl\` (one curl, libcurl's multi interface)"
CHECK[curlz]=curl
CMDS[asyncio]="$PY $(q "$BENCH/fetch_asyncio.py") --concurrency $C $(q "$URLS")"
LABEL[asyncio]="Python asyncio, raw \`asyncio.open_connection\` GETs, \`Semaphore($C)\` (bench/fetch_asyncio.py)"
CHECK[asyncio]=python
CMDS[threads]="$PY $(q "$BENCH/fetch_threads.py") --concurrency $C $(q "$URLS")"
LABEL[threads]="Python \`ThreadPoolExecutor($C)\` + urllib (bench/fetch_threads.py)"
CHECK[threads]=python
NAMES=(curl curlz asyncio threads)
[ "$HAVE_FETCH" = 1 ] && NAMES=(mp mpn curl curlz asyncio threads)

# check NAME: the output of NAME's last run holds every URL's expected result.
check() {
    local n=$1 out="$RUNS/$1.out" ok=1
    case ${CHECK[$n]} in
    mpimap)
        [ "$(head -n 1 "$out")" = "$(printf 'url\tstatus\tbytes\tsha256\tms\terror')" ] || ok=0
        tail -n +2 "$out" | cut -f 1-4 | cmp -s - "$REF" || ok=0
        ;;
    python) cut -f 1-4 "$out" | cmp -s - "$REF" || ok=0 ;;
    curl) [ "$(grep -c '^200 1000$' "$out")" = "$N" ] && [ "$(wc -l < "$out")" = "$N" ] || ok=0 ;;
    esac
    [ "$ok" = 1 ] || die "$n: unexpected output (see $out): ${CMDS[$n]}"
}

stats() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf "%.3f %.3f %.3f\n", m, v[1], v[NR] }'
}
inflight_max() {
    srv stats | "$PY" -c 'import json, sys; d = json.load(sys.stdin); print(d["inflight_max"], d["requests"])'
}

log "fetch: $N URLs, concurrency $C, server delay $DELAY_MS ms, $REPS rounds"
for n in "${NAMES[@]}"; do TIMES[$n]="" INFL[$n]="" ETIMES[$n]=""; done
for ((r = 0; r < REPS; r++)); do
    for ((j = 0; j < ${#NAMES[@]}; j++)); do
        n=${NAMES[$(((j + r) % ${#NAMES[@]}))]}
        srv reset > /dev/null
        s=$EPOCHREALTIME
        if ! bash -c "${CMDS[$n]}" > "$RUNS/$n.out" 2> "$RUNS/$n.err"; then
            tail -n 20 "$RUNS/$n.err" >&2
            die "$n failed: ${CMDS[$n]}"
        fi
        e=$EPOCHREALTIME
        t=$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }')
        read -r im req <<< "$(inflight_max)"
        [ "$req" = "$N" ] || die "$n: the server counted $req requests, not $N"
        TIMES[$n]+="$t " INFL[$n]+="$im "
        # mpimap's own time (its summary line: no process start-up, MPI_Init)
        t=$(sed -n 's/^mpimap: fetch: .*, \([0-9.]*\) s\( (.*\)\{0,1\}$/\1/p' "$RUNS/$n.err" | tail -n 1)
        if [ -n "$t" ]; then ETIMES[$n]+="$t "; fi
        printf '    round %d/%d  %-8s %8s s  (server: at most %s in flight)\n' $((r + 1)) "$REPS" "$n" "$t" "$im" >&2
        check "$n"
    done
done
for n in "${NAMES[@]}"; do
    # shellcheck disable=SC2086 # space-separated numbers
    read -r "MED[$n]" "MIN[$n]" "MAX[$n]" <<< "$(stats ${TIMES[$n]})"
    # shellcheck disable=SC2086
    read -r "INFLM[$n]" _ _ <<< "$(stats ${INFL[$n]})"
    EMED[$n]=""
    # shellcheck disable=SC2086
    if [ -n "${ETIMES[$n]}" ]; then
        # shellcheck disable=SC2086
        read -r "EMED[$n]" _ _ <<< "$(stats ${ETIMES[$n]})"
    fi
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(awk -v s="$T_BEGIN" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.0f", e - s }')

# ------------------------------------------------------------ report
IDEAL=$(awk -v n="$N" -v d="$DELAY_MS" -v c="$C" 'BEGIN { printf "%.3f", n * d / 1000 / c }')
pct() { awk -v i="$IDEAL" -v t="$1" 'BEGIN { printf "%.0f", 100 * i / t }'; }
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
say "## fetch: $N URLs, concurrency $C, every response after $DELAY_MS ms ($(date -u +%Y-%m-%d), $NPROC cores, $CPU)"
say ""
say "Local server tests/e2e/httpserver.py (Python ThreadingHTTPServer, keep-alive) on 127.0.0.1, sharing"
say "the $NPROC cores with the clients; URLs \`/ok/uI?delay=$DELAY_MS&size=$SIZE\`. Median of $REPS alternated"
say "rounds (the order rotated each round), wall time of the whole command (process and Python start-up"
say "included). Ideal: $N x $DELAY_MS ms / $C = $IDEAL s; % of ideal = ideal / wall time. mpimap's own"
say "time: from its summary line, without process start-up and MPI_Init (about 0.2 s alone, more with mpirun)."
[ "$HAVE_FETCH" = 0 ] && say "" && say "**$MPIMAP has no fetch kernel (\`mpimap kernels\`): the anchors only.**"
[ "$QUICK" = 1 ] && say "" && say "**--quick: $N URLs.**"
say ""
say "| client | wall time (median) | min-max | URLs/s | % of ideal | server's peak in flight (median) | mpimap's own time, % of ideal |"
say "| --- | --- | --- | --- | --- | --- | --- |"
for n in "${NAMES[@]}"; do
    m=${MED[$n]}
    ups=$(awk -v n="$N" -v t="$m" 'BEGIN { printf "%.0f", n / t }')
    eng="—" ej=()
    if [ -n "${EMED[$n]}" ]; then
        eng="${EMED[$n]} s, $(pct "${EMED[$n]}")%"
        ej=("engine_times_s:list=${ETIMES[$n]}" "engine_median_s=${EMED[$n]}"
            "engine_pct_of_ideal=$(pct "${EMED[$n]}")")
    fi
    say "| ${LABEL[$n]} | $m s | ${MIN[$n]}-${MAX[$n]} s | $ups | $(pct "$m")% | ${INFLM[$n]%.*} | $eng |"
    "$PY" "$BENCH/results_json.py" add "$JREC" "name:str=$n" "label:str=${LABEL[$n]}" \
        "command:str=${CMDS[$n]}" "times_s:list=${TIMES[$n]}" "median_s=$m" "min_s=${MIN[$n]}" \
        "max_s=${MAX[$n]}" "urls_per_s=$ups" "pct_of_ideal=$(pct "$m")" \
        "server_inflight_max:list=${INFL[$n]}" "${ej[@]}"
done
say ""
MET=null
if [ "$HAVE_FETCH" = 1 ]; then
    P=$(pct "${MED[mp]}")
    MET=$([ "$P" -ge 80 ] && echo true || echo false)
    say "**mpimap fetch: $P% of ideal by wall time (target >= 80%): $([ "$MET" = true ] && echo met || echo "not met").**" \
        "\`mpirun -np $NP\`: $(pct "${MED[mpn]}")%. Same results: every round of mpimap and of the Python clients" \
        "listed every URL, in input order, with status 200, $SIZE bytes and the body's SHA-256; curl got $N x 200."
    SUMLINE=$(grep '^mpimap: fetch:' "$RUNS/mp.err" | tail -n 1 || true)
    [ -n "$SUMLINE" ] && say "mpimap's summary (last round): \`$SUMLINE\`"
    say ""
fi
say "Load average (1, 5, 15 min) before: $LOAD0; after: $LOAD1. Measured in $ELAPSED s."
QUICKB=false
[ "$QUICK" = 1 ] && QUICKB=true
"$PY" "$BENCH/results_json.py" param "$JREC" "urls=$N" "concurrency=$C" "delay_ms=$DELAY_MS" \
    "body_bytes=$SIZE" "ideal_s=$IDEAL" "mpimap:str=$MPIMAP" \
    "mpimap_fetch_kernel=$([ "$HAVE_FETCH" = 1 ] && echo true || echo false)" \
    "server:str=tests/e2e/httpserver.py" "target_pct_of_ideal=80" "target_met=$MET" \
    "curl_version:str=$(curl --version | head -n 1)" "python_version:str=$("$PY" --version 2>&1)" \
    "elapsed_s=$ELAPSED"
"$PY" "$BENCH/results_json.py" write "$JREC" "$RESULTS" "section:str=fetch" "reps=$REPS" \
    "quick=$QUICKB" "statistic:str=median" "loadavg_before:list=$LOAD0" "loadavg_after:list=$LOAD1"
log "results in $MD and $RESULTS"
