#!/usr/bin/env bash
# scripts/bench-overlap.sh - how much of the transfer time the engine hides
# behind computation, measured on a two-"host" cluster made of two network
# namespaces joined by a veth pair limited to 1 Gbit/s (tc tbf).
#
#   scripts/bench-overlap.sh [--quick] [-h|--help]
#
# Rank 0 runs in the first namespace and only reads, dispatches and collects
# (--dedicated-master --io master), so every chunk crosses the link to rank 1
# in the second namespace, which computes it on one thread (-t 1) with the
# test kernel's spin mode (a busy loop of NS ns per byte). NS is chosen so
# that computing a chunk takes as long as sending it over the shaped link,
# as measured with mpimap-p2pbw (not the nominal 1 Gbit/s). Measured, REPS
# times alternated, median of each:
#   transfer  mpimap-p2pbw across the link, 1 MiB messages, window 2, the
#             file's byte count at the measured rate
#   compute   the same spin kernel on the same file in one rank, no MPI
#             transfer (mpirun -np 1 mpimap -t 1 -c 1M test --mode spin)
#   total     the engine's own time (-v) across the link with the default
#             window (2 chunks in flight per thread) and with --window W for
#             each W in WINDOWS
# and, for each total:  total / max(compute, transfer) (target: <= 1.15 for
# the default window) and the hidden share
#   hidden = 1 - (total - max(compute, transfer)) / min(compute, transfer)
# (1 = the shorter of the two is entirely hidden, 0 = none of it is: the two
# run one after the other). When `mpimap --help` lists --metrics, rank 1's
# compute time and overlap ratio as the engine measures them are reported too.
#
# Input: a 256 MiB corpus (64 MiB with --quick), 1 MiB chunks, generated once
# in BENCH_DIR. Results: a Markdown table on stdout and in
# build-bench/overlap.md, and JSON in bench/results/overlap.json
# (build-bench/overlap-quick.md and .json with --quick).
#
# Environment: REPS (default 3; 1 with --quick), WINDOWS (the --window values
# measured besides the default, default "1 4 8"), CHUNK (chunk size, default
# 1M), NS_PER_BYTE (skip the calibration), BENCH_DIR (data, default
# data/bench), RESULTS (JSON path).
#
# Needs root (network namespaces, tc). Names include the PID; everything
# created is removed on exit, failure and Ctrl-C included. No traffic leaves
# the two namespaces created here. Measurements hold an exclusive lock on
# /tmp/mpimap-bench.lock (shared with other benchmarks).

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

bench_args "$@"

die() {
    echo "bench-overlap.sh: $*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || die "needs root (network namespaces and tc)"
install_deps "${BUILD_DEPS[@]}" iproute2
command -v unshare > /dev/null || die "no unshare(1) (util-linux)"
build "$MPIMAP_ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release -DMPIMAP_TESTS=OFF
B="$MPIMAP_ROOT/build-bench"
MPIMAP="$B/mpimap"
P2PBW="$B/mpimap-p2pbw"
AGENT="$MPIMAP_ROOT/tests/e2e/netns-agent.sh"
[ -r "$AGENT" ] || die "missing $AGENT"
case $AGENT in
*[[:space:]]*) die "the agent's path has a blank in it (mpirun splits plm_rsh_agent): $AGENT" ;;
esac
PY=/usr/bin/python3

if [ "$QUICK" = 1 ]; then
    SIZE=64M REPS="${REPS:-1}" MD="$B/overlap-quick.md"
    RESULTS="${RESULTS:-$B/overlap-quick.json}"
else
    SIZE=256M REPS="${REPS:-3}" MD="$B/overlap.md"
    RESULTS="${RESULTS:-$MPIMAP_ROOT/bench/results/overlap.json}"
fi
WINDOWS="${WINDOWS:-1 4 8}"
CHUNK="${CHUNK:-1M}"
DATA="${BENCH_DIR:-$MPIMAP_ROOT/data/bench}"
RUN_TIMEOUT=600
# (the help text in a variable: grep -q in a pipeline may end it with SIGPIPE)
HELP=$("$MPIMAP" --help 2>&1 || true)
HAVE_METRICS=0 HAVE_TRACE=0
[[ $HELP == *--metrics* ]] && HAVE_METRICS=1
[[ $HELP == *--trace* ]] && HAVE_TRACE=1

# One benchmark at a time on this machine (scripts/bench.sh takes the same lock).
bench_lock

mkdir -p "$DATA"
F="$DATA/corpus-$SIZE.txt" # same name and contents as scripts/bench.sh's corpus
if [ ! -s "$F" ]; then
    "$B/mpimap-gencorpus" "$SIZE" > "$F.tmp.$$" && mv "$F.tmp.$$" "$F"
fi
cat "$F" > /dev/null # into the page cache
BYTES=$(stat -c %s "$F")
MIB=$(((BYTES + (1 << 20) - 1) >> 20))

# ------------------------------------------------------------ the cluster
NS1="mpmb1-$$" NS2="mpmb2-$$"
V1="mpmb$$a" V2="mpmb$$b" # <= 15 characters
H1="mpmbhost1-$$" H2="mpmbhost2-$$"
IP1=10.78.0.1 IP2=10.78.0.2 CIDR=10.78.0.0/24 # inside our namespaces only
TMPD=$(mktemp -d /tmp/mpimap-bench-overlap.XXXXXX)

cleanup() {
    local rc=$? ns p
    set +e
    for ns in "$NS1" "$NS2"; do
        [ -e "/run/netns/$ns" ] || continue
        p=$(ip netns pids "$ns" 2> /dev/null | tr '\n' ' ')
        if [ -n "${p// /}" ]; then
            echo "bench-overlap.sh: ending processes left in $ns: $p" >&2
            # shellcheck disable=SC2086 # one pid a word
            kill -9 $p 2> /dev/null
        fi
    done
    # Deleting one end of a veth deletes both, wherever it is.
    ip link del "$V1" 2> /dev/null || ip -n "$NS1" link del "$V1" 2> /dev/null ||
        ip link del "$V2" 2> /dev/null
    for ns in "$NS1" "$NS2"; do
        [ -e "/run/netns/$ns" ] || continue
        ip netns del "$ns" || echo "bench-overlap.sh: could not delete namespace $ns" >&2
    done
    rm -rf "$TMPD"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "namespaces $NS1 ($IP1) and $NS2 ($IP2), veth $V1-$V2 at tbf rate 1gbit"
ip netns add "$NS1"
ip netns add "$NS2"
ip link add "$V1" type veth peer name "$V2"
ip link set "$V1" netns "$NS1"
ip link set "$V2" netns "$NS2"
ip -n "$NS1" addr add "$IP1/24" dev "$V1"
ip -n "$NS2" addr add "$IP2/24" dev "$V2"
for ns in "$NS1" "$NS2"; do ip -n "$ns" link set lo up; done
ip -n "$NS1" link set "$V1" up
ip -n "$NS2" link set "$V2" up
ip netns exec "$NS1" tc qdisc add dev "$V1" root tbf rate 1gbit burst 256kb latency 50ms
ip netns exec "$NS2" tc qdisc add dev "$V2" root tbf rate 1gbit burst 256kb latency 50ms

# tests/e2e/netns-agent.sh maps mpirun's host argument to a namespace.
export NETNS_AGENT_HOSTS="$IP1=$NS1=$H1 $IP2=$NS2=$H2"
# (--host takes "ADDR:SLOTS,ADDR:SLOTS": the commas are not array separators)
# shellcheck disable=SC2054,SC2016 # $1, $@ expand in the inner shell
MPIRUN2=(
    timeout -k 10 "$RUN_TIMEOUT" ip netns exec "$NS1" unshare --uts --
    sh -c 'hostname "$1" && shift && exec "$@"' mpirun-in-ns "$H1"
    mpirun --host "$IP1:1,$IP2:1" -np 2 --bind-to none
    --mca plm_rsh_agent "sh $AGENT" --mca plm_rsh_no_tree_spawn 1
    --mca oob_tcp_if_include "$CIDR" --mca btl_tcp_if_include "$CIDR"
    --mca pml ob1 --mca btl tcp,self
)

rx_bytes() { ip netns exec "$NS2" cat "/sys/class/net/$V2/statistics/rx_bytes"; }

# cpu_ticks: "BUSY TOTAL" jiffies of the whole machine (/proc/stat), for the
# share of the cores busy during a run (start-up and other users included).
cpu_ticks() {
    local _cpu u n s i w q sq st
    read -r _cpu u n s i w q sq st _ < /proc/stat
    echo "$((u + n + s + q + sq + st)) $((u + n + s + i + w + q + sq + st))"
}
busy_cores() { # busy_cores "B0 T0" "B1 T1"
    local b0 t0 b1 t1
    read -r b0 t0 <<< "$1"
    read -r b1 t1 <<< "$2"
    awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" -v n="$NPROC" 'BEGIN { printf "%.2f", t ? b / t * n : 0 }'
}

# run LOG CMD...: runs CMD, stdout to $TMPD/LOG.out, stderr to $TMPD/LOG.err;
# dies with its stderr on failure.
run() {
    local name=$1
    shift
    "$@" > "$TMPD/$name.out" 2> "$TMPD/$name.err" < /dev/null || {
        cat "$TMPD/$name.err" >&2
        die "command failed: $*"
    }
}

# p2p: seconds mpimap-p2pbw takes to send MIB MiB in 1 MiB messages, window 2.
p2p() {
    run p2p "${MPIRUN2[@]}" "$P2PBW" "$MIB" 1024 2
    sed -n 's/.*: \([0-9.]*\) s, .*/\1/p' "$TMPD/p2p.out"
}

# engine_time LOG: the engine's time from the -v summary line in LOG.err,
# after checking that the kernel counted every byte.
engine_time() {
    local got t
    got=$(cat "$TMPD/$1.out")
    [ "$got" = "$BYTES" ] || die "$1: the spin kernel counted '$got' bytes, expected $BYTES"
    t=$(sed -n 's/.* bytes in \([0-9.]*\) s (.*/\1/p' "$TMPD/$1.err" | tail -1)
    [ -n "$t" ] || die "$1: no summary line in: $(cat "$TMPD/$1.err")"
    echo "$t"
}

# metrics_of FILE: "compute_s overlap_ratio transfer_s hidden_s" of rank 1 in
# a --metrics document, "- - - -" if absent.
metrics_of() {
    "$PY" - "$1" << 'PYEOF'
import json, sys
def find_ranks(x):
    if isinstance(x, dict):
        if isinstance(x.get("ranks"), list):
            return x["ranks"]
        for v in x.values():
            r = find_ranks(v)
            if r is not None:
                return r
    return None
def fmt(v):
    return "%.6f" % v if isinstance(v, (int, float)) else "-"
try:
    with open(sys.argv[1]) as f:
        doc = json.load(f)
    r1 = [r for r in find_ranks(doc) or [] if r.get("rank") == 1][0]
except Exception:
    print("- - - -")
    sys.exit(0)
main = r1.get("main", {}) if isinstance(r1.get("main"), dict) else {}
ov = r1.get("overlap_ratio", next((v for k, v in r1.items() if "overlap" in k), None))
print(fmt(r1.get("compute_s")), fmt(ov), fmt(main.get("transfer_s")), fmt(main.get("hidden_s")))
PYEOF
}

# ------------------------------------------------------------ calibration
if [ -n "${NS_PER_BYTE:-}" ]; then
    NSPB=$NS_PER_BYTE
    log "spin cost given: $NSPB ns per byte"
else
    # The median of three runs (the machine may be busy).
    t=$(for _ in 1 2 3; do p2p; done | sort -g | sed -n 2p)
    NSPB=$(awk -v t="$t" -v n="$((MIB << 20))" 'BEGIN { printf "%.2f", t * 1e9 / n }')
    log "link: $((MIB << 20)) bytes in $t s (median of 3): spin cost set to $NSPB ns per byte"
fi
SPIN=(test --mode spin --ns-per-byte "$NSPB" "$F")
ENGINE=("$MPIMAP" -v -t 1 -c "$CHUNK")
NAMES=(default)
for w in $WINDOWS; do NAMES+=("w$w"); done

# ------------------------------------------------------------ measurements
declare -A T M C
# The engine measured: the commit, "+dirty" if its sources differ from it.
COMMIT=$(git -C "$MPIMAP_ROOT" rev-parse --short HEAD 2> /dev/null || echo unknown)
if [ -n "$(git -C "$MPIMAP_ROOT" status --porcelain --untracked-files=no -- src include tools \
    CMakeLists.txt 2> /dev/null)" ]; then
    COMMIT="$COMMIT+dirty"
fi
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 1; r <= REPS; r++)); do
    log "round $r of $REPS"
    t=$(p2p)
    T[transfer]+="$(awk -v t="$t" -v m="$((MIB << 20))" -v b="$BYTES" 'BEGIN { printf "%.4f", t * b / m }') "
    run compute mpirun -np 1 --bind-to none "${ENGINE[@]}" "${SPIN[@]}"
    T[compute]+="$(engine_time compute) "
    for name in "${NAMES[@]}"; do
        opts=()
        [ "$name" = default ] || opts=(--window "${name#w}")
        mopt=()
        [ "$HAVE_METRICS" = 1 ] && mopt=(--metrics "$TMPD/$name.json") && rm -f "$TMPD/$name.json"
        rx0=$(rx_bytes)
        c0=$(cpu_ticks)
        run "$name" "${MPIRUN2[@]}" "${ENGINE[@]}" "${opts[@]}" "${mopt[@]}" \
            --io master --dedicated-master "${SPIN[@]}"
        C[$name]+="$(busy_cores "$c0" "$(cpu_ticks)") "
        rx=$(($(rx_bytes) - rx0))
        [ "$rx" -ge "$BYTES" ] ||
            die "$name: only $rx bytes crossed the link for a $BYTES-byte input (not over the veth?)"
        T[$name]+="$(engine_time "$name") "
        if [ "$HAVE_METRICS" = 1 ]; then
            M[$name]+="$(metrics_of "$TMPD/$name.json");"
        fi
    done
done
if [ "$HAVE_TRACE" = 1 ]; then
    # One more default-window run with a timeline, to see where the time
    # goes chunk by chunk (analysed below; best effort).
    log "one default-window run with --trace"
    run trace "${MPIRUN2[@]}" "${ENGINE[@]}" --trace "$TMPD/trace.json" \
        --io master --dedicated-master "${SPIN[@]}"
    TRACE_TOTAL=$(engine_time trace)
fi
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------ results
args=()
for k in transfer compute "${NAMES[@]}"; do args+=("$k=${T[$k]}"); done
for k in "${NAMES[@]}"; do [ -n "${M[$k]:-}" ] && args+=("metrics:$k=${M[$k]}"); done
for k in "${NAMES[@]}"; do args+=("cpu:$k=${C[$k]}"); done
[ -s "$TMPD/trace.json" ] && args+=("trace:default=$TMPD/trace.json")
mkdir -p "$(dirname "$RESULTS")"
"$PY" - "$RESULTS" "$MD" "$BYTES" "$NSPB" "$REPS" "$CHUNK" "$QUICK" "$LOAD0" "$LOAD1" \
    "${TRACE_TOTAL:-0}" "$COMMIT" "${args[@]}" << 'PYEOF'
import json, os, platform, statistics, sys, time
results, md, nbytes, nspb, reps, chunk, quick, load0, load1, trace_total, commit = sys.argv[1:12]
nbytes, nspb, reps = int(nbytes), float(nspb), int(reps)
times, metrics, busy = {}, {}, {}
trace = None
for a in sys.argv[12:]:
    k, v = a.split("=", 1)
    if k.startswith("trace:"):
        trace = v
    elif k.startswith("cpu:"):
        busy[k[4:]] = [float(x) for x in v.split()]
    elif k.startswith("metrics:"):
        rows = [m.split() for m in v.split(";") if m.strip()]
        metrics[k[8:]] = rows
    else:
        times[k] = [float(x) for x in v.split()]
med = {k: statistics.median(v) for k, v in times.items()}
c, t = med["compute"], med["transfer"]
hi, lo = max(c, t), min(c, t)
names = [k for k in times if k not in ("compute", "transfer")]
def label(k):
    return "default window (2 per thread)" if k == "default" else "--window " + k[1:]
def col(rows, i):
    v = [float(r[i]) for r in rows if len(r) > i and r[i] != "-"]
    return statistics.median(v) if v else None
cpu = "?"
try:
    with open("/proc/cpuinfo") as f:
        cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
except Exception:
    pass
doc = {
    "benchmark": "overlap of transfer and computation, 2 ranks in 2 network namespaces, "
                 "veth limited by tc tbf rate 1gbit",
    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "commit": commit,
    "machine": {"cores": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
                "loadavg_before": load0, "loadavg_after": load1},
    "setup": {"bytes": nbytes, "chunk_size": chunk, "ns_per_byte": nspb, "reps": reps,
              "quick": quick == "1",
              "layout": "rank 0 in namespace 1 (--dedicated-master --io master), rank 1 in "
                        "namespace 2, -t 1, mpirun --bind-to none (mpimap's default --bind core "
                        "then pins each rank's pool thread to PU 0; the main threads float), "
                        "--mca pml ob1 --mca btl tcp,self"},
    "hidden_formula": "1 - (total - max(compute, transfer)) / min(compute, transfer)",
    "transfer_s": {"median": t, "runs": times["transfer"],
                   "rate_MBps": nbytes / t / 1e6,
                   "how": "mpimap-p2pbw, 1 MiB messages, window 2, scaled to the file's bytes"},
    "compute_s": {"median": c, "runs": times["compute"],
                  "nominal": nbytes * nspb / 1e9,
                  "how": "mpirun -np 1 mpimap -t 1 test --mode spin (engine time, -v)"},
    "max_s": hi, "min_s": lo,
    "totals": {},
    "target": "default window: total <= 1.15 x max(compute, transfer)",
}
for k in names:
    tot = med[k]
    e = {"label": label(k), "median_s": tot, "runs": times[k], "ratio_to_max": tot / hi,
         "hidden_share": 1 - (tot - hi) / lo,
         "machine_busy_cores": {"median": statistics.median(busy[k]), "runs": busy[k],
                                "of": os.cpu_count(),
                                "how": "/proc/stat over the whole mpirun (start-up and "
                                       "other users included)"}}
    if k in metrics:
        e["rank1_metrics"] = {"compute_s": col(metrics[k], 0), "overlap_ratio": col(metrics[k], 1),
                              "transfer_s": col(metrics[k], 2), "hidden_s": col(metrics[k], 3),
                              "runs": metrics[k]}
    doc["totals"][k] = e
doc["target_met"] = doc["totals"]["default"]["ratio_to_max"] <= 1.15

def diagnose(path):
    """Medians per chunk, in ms, from a --trace timeline (Chrome trace events:
    pid = rank, tid 0 = main thread, tid 1 = rank 1's pool thread)."""
    with open(path) as f:
        t = json.load(f)
    ev = t["traceEvents"] if isinstance(t, dict) else t
    sp = {}
    for e in ev:
        c = (e.get("args") or {}).get("chunk")
        if e.get("ph") == "X" and isinstance(c, int) and c >= 0:
            sp.setdefault((e["pid"], e["tid"], e["name"], c), (e["ts"] / 1e3, (e["ts"] + e["dur"]) / 1e3))
    n = 1 + max(k[3] for k in sp)
    def get(rank, tid, name, c, i):
        v = sp.get((rank, tid, name, c))
        return None if v is None else v[i]
    def gap(a, b):
        v = [y - x for x, y in zip(a, b) if x is not None and y is not None]
        return round(statistics.median(v), 3) if v else None
    ch = range(n)
    sent = [get(0, 0, "send", c, 0) for c in ch]          # master starts sending chunk c
    r0 = [get(1, 0, "receive", c, 0) for c in ch]         # rank 1 starts receiving it
    r1 = [get(1, 0, "receive", c, 1) for c in ch]
    c0 = [get(1, 1, "compute", c, 0) for c in ch]
    c1 = [get(1, 1, "compute", c, 1) for c in ch]
    back = [get(1, 0, "send", c, 0) for c in ch]          # rank 1 sends the result back
    got = [get(0, 0, "receive", c, 0) for c in ch]        # rank 0 has it
    comp = sorted((a, b) for a, b in zip(c0, c1) if a is not None and b is not None)
    idle = [b[0] - a[1] for a, b in zip(comp, comp[1:])]
    return {
        "chunks": n,
        "total_s": float(trace_total),
        "median_ms": {
            "master_send_to_rank1_receive_start": gap(sent, r0),
            "rank1_receive": gap(r0, r1),
            "rank1_receive_end_to_compute_start": gap(r1, c0),
            "rank1_compute": gap(c0, c1),
            "rank1_compute_end_to_result_sent": gap(c1, back),
            "rank1_result_sent_to_master_has_it": gap(back, got),
            "rank1_pool_idle_between_chunks": round(statistics.median(idle), 3) if idle else None,
        },
        "rank1_pool_idle_total_s": round(sum(idle) / 1e3, 4),
        "rank1_compute_total_s": round(sum(b - a for a, b in comp) / 1e3, 4),
        "note": "one extra default-window run with --trace (tracing costs a little)",
    }
if trace:
    try:
        doc["diagnosis"] = diagnose(trace)
    except Exception as ex:  # the trace format is the engine's to change
        doc["diagnosis"] = {"error": "could not analyse the trace: %r" % (ex,)}
with open(results + ".tmp", "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
os.replace(results + ".tmp", results)

def s(x):
    return "-" if x is None else "%.3f s" % x
have_m = any("rank1_metrics" in e for e in doc["totals"].values())
out = []
p = out.append
p("## Overlap of transfer and computation (%s, engine %s)" % (doc["date"][:10], commit))
p("")
p("%d bytes in %s chunks, rank 0 (dedicated master, --io master) -> rank 1 (-t 1) over a "
  "veth at tbf rate 1gbit; spin kernel at %.2f ns/byte; median of %d alternated runs; "
  "load average %s before, %s after." % (nbytes, chunk, nspb, reps, load0, load1))
p("")
p("| quantity | time | note |")
p("| --- | --- | --- |")
p("| compute | %s | spin kernel, 1 rank, no transfer (nominal %.3f s) |" % (s(c), nbytes * nspb / 1e9))
p("| transfer | %s | mpimap-p2pbw over the link: %.1f MB/s |" % (s(t), nbytes / t / 1e6))
p("| max(compute, transfer) | %s | the best a perfect overlap can do |" % s(hi))
p("| compute + transfer | %s | no overlap at all |" % s(c + t))
p("")
hdr = "| run | total (engine time) | total / max | hidden share | cores busy |"
sep = "| --- | --- | --- | --- | --- |"
if have_m:
    hdr += " rank 1 compute_s | rank 1 overlap_ratio |"
    sep += " --- | --- |"
p(hdr)
p(sep)
for k in names:
    e = doc["totals"][k]
    row = "| %s | %s | %.2f | %.0f%% | %.2f of %d |" % (
        e["label"], s(e["median_s"]), e["ratio_to_max"], 100 * e["hidden_share"],
        e["machine_busy_cores"]["median"], e["machine_busy_cores"]["of"])
    if have_m:
        m = e.get("rank1_metrics", {})
        ov = m.get("overlap_ratio")
        row += " %s | %s |" % (s(m.get("compute_s")), "-" if ov is None else "%.2f" % ov)
    p(row)
p("")
p("hidden share = 1 - (total - max(compute, transfer)) / min(compute, transfer): 100% = the "
  "shorter of the two entirely hidden, 0% = they run one after the other (negative: slower "
  "than that). cores busy: the machine's busy CPU time over the whole mpirun, start-up and "
  "other users included.")
d = doc["totals"]["default"]
p("Target (default window: total <= 1.15 x max, i.e. >= 85%% hidden): %s (%.2f x max)." %
  ("met" if doc["target_met"] else "NOT met", d["ratio_to_max"]))
p("")
dg = doc.get("diagnosis")
if dg and "median_ms" in dg:
    p("Where a default-window chunk's time goes (one extra run with --trace, total %.3f s; "
      "medians over %d chunks):" % (dg["total_s"], dg["chunks"]))
    p("")
    p("| step | median |")
    p("| --- | --- |")
    for k, v in dg["median_ms"].items():
        p("| %s | %s |" % (k.replace("_", " "), "-" if v is None else "%.2f ms" % v))
    p("")
    p("Rank 1's pool thread: %.3f s computing, %.3f s idle between chunks in that run." %
      (dg["rank1_compute_total_s"], dg["rank1_pool_idle_total_s"]))
    p("")
p("Runs (s): " + "; ".join("%s %s" % (k, " ".join("%.3f" % x for x in v)) for k, v in times.items()))
text = "\n".join(out) + "\n"
with open(md, "w") as f:
    f.write(text)
sys.stdout.write(text)
PYEOF
log "results in $MD and $RESULTS"
