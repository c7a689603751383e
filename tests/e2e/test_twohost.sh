#!/bin/bash
# End-to-end: two "hosts" on one machine. Two network namespaces joined by a
# veth pair, each with its own host name (UTS namespace); mpirun starts in
# the first, launches its daemon in the second through tests/e2e/netns-agent.sh
# (instead of ssh), and the ranks talk over TCP across the veth. The output of
# wordcount (-np 2 and 4, --io master and auto), fib and the echo test kernel
# (ordered, -o FILE) must equal a plain single-host `mpirun -np 1` run byte
# for byte; --report-bindings must name both hosts; --io auto must pick
# shared (both namespaces see the same files); and the veth's byte counters
# must show that the chunk bytes really crossed it (so the test fails if
# Open MPI used shared memory or loopback instead).
#
# Needs root, ip(8) and unshare(1); prints "SKIP: reason" and exits 0 where
# namespaces cannot be created. Names and the subnet include $$ so that
# concurrent runs do not collide; everything is removed on exit. No traffic
# leaves the two namespaces created here.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_openmpi "a remote launch through --mca plm_rsh_agent"

skip() {
    echo "SKIP: $*"
    exit 0
}

AGENT="$E2E_DIR/netns-agent.sh"
GENCORPUS="$(dirname "$MPIMAP")/mpimap-gencorpus"

[ "$(id -u)" = 0 ] || skip "not root (network namespaces need root)"
command -v ip >/dev/null 2>&1 || skip "no 'ip' tool (iproute2)"
command -v unshare >/dev/null 2>&1 || skip "no 'unshare' tool (util-linux)"
case $AGENT in
*[[:space:]]*)
    # mpirun splits plm_rsh_agent on blanks.
    echo "error: the agent's path has a blank in it: $AGENT" >&2
    exit 1
    ;;
esac
[ -x "$GENCORPUS" ] || {
    echo "error: $GENCORPUS not found next to MPIMAP" >&2
    exit 1
}

# ---------------------------------------------------------------- namespaces
# Per run: namespaces mpimap-twhA-PID / -B, veth mmtwPIDa / b (<= 15
# characters), host names twhostA-PID / B, and a /30 of 10.0.0.0/8 derived
# from the PID (22 bits: 8 + 8 + 6), so two concurrent runs never share one.
NSA="mpimap-twhA-$$" NSB="mpimap-twhB-$$"
VA="mmtw$$a" VB="mmtw$$b"
HA="twhostA-$$" HB="twhostB-$$"
NET="10.$((($$ >> 14) & 255)).$((($$ >> 6) & 255))"
BASE=$((($$ & 63) * 4))
IPA="$NET.$((BASE + 1))" IPB="$NET.$((BASE + 2))"
CIDR="$NET.$BASE/30"
AGENT_LOG="$TMP/agent.log"

# Kills what still runs in our namespaces (orted, ranks after a timeout),
# by pid as ip(8) lists them, then deletes the veth and the namespaces.
netns_cleanup() {
    local ns p
    for ns in "$NSA" "$NSB"; do
        [ -e "/run/netns/$ns" ] || continue
        p=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
        if [ -n "${p// /}" ]; then
            echo "cleanup: ending processes left in $ns: $p" >&2
            # shellcheck disable=SC2086
            kill -9 $p 2>/dev/null || true
        fi
    done
    # Deleting one end of a veth deletes both: wherever setup left it.
    ip link del "$VA" 2>/dev/null || ip -n "$NSA" link del "$VA" 2>/dev/null ||
        ip link del "$VB" 2>/dev/null || true
    for ns in "$NSA" "$NSB"; do
        [ -e "/run/netns/$ns" ] || continue
        ip netns del "$ns" 2>/dev/null || echo "cleanup: could not delete namespace $ns" >&2
    done
}
twohost_cleanup() {
    local rc=$?
    set +e # keep going: (exit "$rc") below must not end the shell
    netns_cleanup
    (exit "$rc")
    cleanup # lib.sh: stray processes, $TMP; sees $? = rc and exits with it
}
trap twohost_cleanup EXIT

section "two namespaces $NSA ($HA, $IPA) and $NSB ($HB, $IPB), veth $VA-$VB, $CIDR"
if ! e=$(ip netns add "$NSA" 2>&1); then
    skip "cannot create a network namespace: ip netns add: $e"
fi
ip netns add "$NSB" 2>&1 || skip "cannot create a second network namespace"
if ! e=$(ip netns exec "$NSA" unshare --uts -- true 2>&1); then
    skip "cannot enter a namespace with its own host name: $e"
fi
if ! e=$(ip link add "$VA" type veth peer name "$VB" 2>&1); then
    skip "cannot create a veth pair: $e"
fi
ip link set "$VA" netns "$NSA"
ip link set "$VB" netns "$NSB"
ip -n "$NSA" addr add "$IPA/30" dev "$VA"
ip -n "$NSB" addr add "$IPB/30" dev "$VB"
for ns in "$NSA" "$NSB"; do ip -n "$ns" link set lo up; done
ip -n "$NSA" link set "$VA" up
ip -n "$NSB" link set "$VB" up
ok "namespaces, veth and addresses set up"

# The agent maps mpirun's host argument (an address) to a namespace and the
# host name to give it there.
export NETNS_AGENT_HOSTS="$IPA=$NSA=$HA $IPB=$NSB=$HB" NETNS_AGENT_LOG="$AGENT_LOG"

# Bytes B's end of the veth has received (A -> B) and sent (B -> A).
veth_bytes() {
    ip netns exec "$NSB" cat "/sys/class/net/$VB/statistics/rx_bytes" \
        "/sys/class/net/$VB/statistics/tx_bytes" | tr '\n' ' '
}

# run2 NP ARGS... : mpimap on NP ranks, NP/2 per host (ranks 0.. on A, then
# B). mpirun runs in namespace A under host name HA. Sets RC, OUT, ERR, SECS
# like lib.sh's run, RXB/TXB (bytes B received/sent over the veth during the
# run) and LAUNCHES (how many daemons the agent started in B).
RXB=0 TXB=0 LAUNCHES=0
run2() {
    local np=$1 slots=$(($1 / 2)) t0 t1 rx0 tx0 rx1 tx1 l0
    shift
    local mpirun_opts=(
        # Both "hosts" by address with NP/2 slots each: mpirun sees that IPA
        # is its own and starts the ranks there itself; for IPB it calls the
        # agent, which starts orted in namespace B.
        --host "$IPA:$slots,$IPB:$slots" -np "$np"
        # (through sh: the agent works without its executable bit)
        --mca plm_rsh_agent "sh $AGENT"
        # One remote daemon only, so no tree spawn; said explicitly so that
        # an orted never tries to launch another one itself.
        --mca plm_rsh_no_tree_spawn 1
        # The daemons' out-of-band channel and the MPI traffic over the veth
        # subnet only (the namespaces have nothing else but lo).
        --mca oob_tcp_if_include "$CIDR"
        --mca btl_tcp_if_include "$CIDR"
        # MPI point-to-point through ob1 with the TCP BTL (and self for a
        # rank to itself) only: no vader (shared memory through /dev/shm,
        # which both namespaces see), and no UCX PML, which would pick its
        # own transports (shared memory included).
        --mca pml ob1 --mca btl "tcp,self"
    )
    read -r rx0 tx0 <<<"$(veth_bytes)"
    l0=$(grep -c " $NSB " "$AGENT_LOG" 2>/dev/null || true)
    t0=$(date +%s%N)
    RC=0
    # shellcheck disable=SC2016 # $1, $@ expand in the inner shell
    timeout -k 10 "$E2E_TIMEOUT" ip netns exec "$NSA" unshare --uts -- \
        sh -c 'hostname "$1" && shift && exec "$@"' run2 "$HA" \
        "$MPIEXEC" "${mpirun_opts[@]}" "$MPIMAP" "$@" >"$OUT" 2>"$ERR" </dev/null || RC=$?
    t1=$(date +%s%N)
    SECS=$(((t1 - t0) / 1000000000))
    read -r rx1 tx1 <<<"$(veth_bytes)"
    RXB=$((rx1 - rx0)) TXB=$((tx1 - tx0))
    LAUNCHES=$(($(grep -c " $NSB " "$AGENT_LOG" 2>/dev/null || true) - ${l0:-0}))
}

# ---------------------------------------------------------------- inputs
D="$TMP/data" R="$TMP/ref" G="$TMP/got"
mkdir -p "$D" "$R" "$G"
"$GENCORPUS" 8M 7 >"$D/corpus.txt"
SIZE=$(stat -c %s "$D/corpus.txt")
CHUNK=65536
NCHUNKS=$(((SIZE + CHUNK - 1) / CHUNK))
"$PY" -c '
import random
r = random.Random(11)
for _ in range(300):
    print(r.randint(0, 27))
' >"$D/nums.txt"

# Cases: NAME|ARGS (word-split); every run writes its result with -o FILE.
CASES=(
    "wc|-c 64K wordcount --top 200 $D/corpus.txt"
    "wcfull|-c 64K wordcount $D/corpus.txt"
    "fib|fib --file $D/nums.txt"
    "echo|-c 64K test --mode echo $D/corpus.txt"
)
section "single-host references (mpirun -np 1)"
for c in "${CASES[@]}"; do
    IFS='|' read -r name args <<<"$c"
    # shellcheck disable=SC2086
    run 1 -o "$R/$name.txt" $args
    assert_rc "reference $name" 0
done
# echo ends the last line with a newline when the corpus does not.
{
    cat "$D/corpus.txt"
    [ -z "$(tail -c 1 "$D/corpus.txt")" ] || echo
} >"$TMP/corpus_nl.txt"
assert_same_file "reference echo = the corpus itself" "$TMP/corpus_nl.txt" "$R/echo.txt"

# ---------------------------------------------------------------- two hosts
# check2 LABEL NAME : the last run2 succeeded, wrote $G/NAME.txt equal to the
# reference, and started exactly one daemon in B.
check2() {
    local label=$1 name=$2
    if [ "$RC" != 0 ]; then
        assert_rc "$label" 0
        return 1
    fi
    assert_same_file "$label: output = single host" "$R/$name.txt" "$G/$name.txt"
    assert_eq "$label: one daemon launched into $NSB" 1 "$LAUNCHES"
    rm -f "$G/$name.txt"
}

# The master deals every rank its first window round-robin before computing
# (engine.c, master_dispatch): with --io master each of B's NP/2 ranks
# receives at least its first chunk over the veth, at least 60 KiB here
# (64 KiB chunks ending on a word boundary). Open MPI's own control traffic
# is a few KiB per run.
MIN_B=$((60 * 1024))

section "wordcount, fib and echo across two hosts"
for np in 2 4; do
    for io in master auto; do
        for c in "${CASES[@]}"; do
            IFS='|' read -r name args <<<"$c"
            label="$name np=$np ($((np / 2)) per host) --io $io"
            # shellcheck disable=SC2086
            run2 "$np" --io "$io" -v -o "$G/$name.txt" $args
            check2 "$label" "$name" || continue
            echo "    ${SECS}s; veth A->B $RXB B, B->A $TXB B"
            if [ "$io" = auto ]; then
                # -v's summary line names the mode the ranks agreed on.
                assert_contains "$label: auto picked shared (same files on both hosts)" \
                    "$ERR" ", shared I/O"
            elif [ "$name" != fib ]; then
                if [ "$RXB" -ge $((np * MIN_B / 2)) ]; then
                    ok "$label: chunk bytes crossed the veth ($RXB B >= $((np * MIN_B / 2)))"
                else
                    fail "$label: chunk bytes crossed the veth" \
                        "expected >= $((np * MIN_B / 2)) bytes received by $VB, got $RXB"
                fi
            fi
            if [ "$name" = echo ]; then
                if [ "$TXB" -ge $((np * MIN_B / 2)) ]; then
                    ok "$label: echoed rows came back over the veth ($TXB B)"
                else
                    fail "$label: echoed rows came back over the veth" \
                        "expected >= $((np * MIN_B / 2)) bytes sent by $VB, got $TXB"
                fi
            fi
        done
    done
done

section "the bytes go over the veth: --io master ships them, --io shared does not"
# With a window as large as the chunk count every chunk is dealt at once,
# round-robin (see above): rank 1, in B, gets every other chunk, half the
# input. 40% leaves room for uneven chunk ends.
run2 2 --io master -w "$NCHUNKS" -o "$G/wc.txt" -c 64K wordcount --top 200 "$D/corpus.txt"
if check2 "wc np=2 --io master -w $NCHUNKS" wc; then
    if [ "$RXB" -ge $((SIZE * 4 / 10)) ]; then
        ok "--io master: $VB received $RXB B >= 40% of the $SIZE B input"
    else
        fail "--io master: $VB received >= 40% of the input" \
            "input $SIZE B, received $RXB B (shared memory or loopback instead of the veth?)"
    fi
    MASTER_RX=$RXB
fi
run2 2 --io shared -w "$NCHUNKS" -o "$G/wc.txt" -c 64K wordcount --top 200 "$D/corpus.txt"
if check2 "wc np=2 --io shared -w $NCHUNKS" wc; then
    # Only chunk descriptors, the results and Open MPI's control traffic.
    if [ "$RXB" -lt $((SIZE / 20)) ]; then
        ok "--io shared: $VB received $RXB B < 5% of the input (B read the file itself)"
    else
        fail "--io shared: $VB received < 5% of the input" "input $SIZE B, received $RXB B"
    fi
    echo "    A->B: --io master ${MASTER_RX:-?} B, --io shared $RXB B"
fi

section "--report-bindings names both hosts"
run2 4 --report-bindings -c 64K wordcount --top 5 "$D/corpus.txt"
if [ "$RC" = 0 ]; then
    ok "--report-bindings np=4 across two hosts (exit 0)"
    for r in 0 1; do
        assert_contains "rank $r on $HA" "$ERR" "bindings: host $HA rank $r:"
    done
    for r in 2 3; do
        assert_contains "rank $r on $HB" "$ERR" "bindings: host $HB rank $r:"
    done
    head -n 5 "$R/wcfull.txt" >"$TMP/top5.txt" || true
    assert_same_file "wordcount --top 5 on stdout = head of the full single-host count" \
        "$TMP/top5.txt" "$OUT"
else
    assert_rc "--report-bindings np=4 across two hosts" 0
fi

section "nothing left running in the namespaces"
left=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
    left=$(ip netns pids "$NSA"; ip netns pids "$NSB")
    [ -z "$left" ] && break
    sleep 0.5
done
if [ -z "$left" ]; then
    ok "no process left in $NSA or $NSB"
else
    fail "no process left in $NSA or $NSB" \
        "$(ps -o pid,args -p "$(echo "$left" | tr '\n' ,)" 2>&1 | cut -c1-200)"
fi

finish
