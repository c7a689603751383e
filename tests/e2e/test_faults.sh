#!/usr/bin/env bash
# End-to-end: faults. A rank killed with SIGKILL (workers and rank 0, at
# random moments), signals to mpirun and to mpimap itself, a full filesystem,
# a missing or read-only output directory, a list of 1,000 inputs with 3 bad
# ones, and journals torn by a kill. After every interrupted run, --resume
# must give output byte-identical to an uninterrupted run.
source "$(dirname "$0")/lib.sh"

D="$TMP/data"
mkdir -p "$D"
TRIALS=5
[ "$QUICK" = 1 ] && TRIALS=2

# An ordered workload of a few seconds: each line sleeps that many
# microseconds and is echoed back.
for i in $(seq 1 4000); do echo $((1500 + (i * 7919) % 2500)); done >"$D/sleep.txt"
cp "$D/sleep.txt" "$TMP/sleep.ref"
# A reduced workload of a few seconds: count primes in a range.
PRIMES_RANGE=1:3000000000
PRIMES_ARGS=(-c 16M primes "$PRIMES_RANGE")
SLEEP_ARGS=(-c 64 test -m sleep "$D/sleep.txt")

section "reference runs"
run 2 "${PRIMES_ARGS[@]}" -o "$TMP/primes.ref"
assert_rc "primes reference" 0
run 2 "${SLEEP_ARGS[@]}" -o "$TMP/sleep.out"
assert_rc "sleep reference" 0
assert_same_file "sleep reference echoes its input" "$TMP/sleep.ref" "$TMP/sleep.out"

# rank_pid JOURNAL RANK: pid of the mpimap rank RANK of the run using JOURNAL
# (Open MPI puts OMPI_COMM_WORLD_RANK in every rank's environment, MPICH's
# Hydra PMI_RANK).
rank_pid() {
    local p
    for p in $(pgrep -f -- "$1" || true); do
        [ -r "/proc/$p/environ" ] || continue
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qxE "(OMPI_COMM_WORLD_RANK|PMI_RANK)=$2"; then
            echo "$p"
            return
        fi
    done
}

# kill_trial LABEL VICTIM NP ARGS... : starts a journaled run, SIGKILLs rank
# VICTIM at a random moment, checks the aftermath, resumes, compares.
kill_trial() {
    local label=$1 victim=$2 np=$3
    shift 3
    local j="$TMP/kill.journal" o="$TMP/kill.out" ref delay pid t0 t1 rc=0 secs i
    case "$*" in *primes*) ref="$TMP/primes.ref" ;; *) ref="$TMP/sleep.ref" ;; esac
    rm -f "$j" "$o"
    t0=$(date +%s%N)
    timeout -k 5 60 "$MPIEXEC" -np "$np" ${MPIEXEC_OVERSUB[@]+"${MPIEXEC_OVERSUB[@]}"} "$MPIMAP" --journal "$j" -o "$o" "$@" \
        >"$OUT" 2>"$ERR" </dev/null &
    local mpirun_pid=$!
    delay=$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 0.6 + rand() * 1.6 }')
    sleep "$delay"
    pid=""
    for i in 1 2 3 4 5 6 7 8 9 10; do
        pid=$(rank_pid "$j" "$victim")
        [ -n "$pid" ] && break
        sleep 0.2
    done
    if [ -z "$pid" ]; then
        wait "$mpirun_pid" || true
        fail "$label: rank $victim not found" "a running rank" "none (run ended after ${delay}s?)"
        return
    fi
    kill -9 "$pid"
    wait "$mpirun_pid" || rc=$?
    t1=$(date +%s%N)
    secs=$(((t1 - t0) / 1000000000))
    if [ "$rc" != 0 ] && [ "$secs" -le 30 ]; then
        ok "$label: killed rank $victim after ${delay}s: mpirun exited $rc within ${secs}s"
    else
        fail "$label: mpirun after kill -9 of rank $victim" "non-zero exit within 30 s" \
            "exit $rc after ${secs}s"
    fi
    assert_absent "$label: no output under the final name" "$o"
    local left=""
    for i in 1 2 3 4 5 6 7 8 9 10; do
        left=$(pgrep -f -- "$j" || true)
        [ -z "$left" ] && break
        sleep 0.5
    done
    assert_eq "$label: no mpimap process left" "" "$left"
    run 2 --journal "$j" --resume -o "$o" "$@"
    assert_rc "$label: --resume" 0
    assert_same_file "$label: resumed output identical" "$ref" "$o"
    assert_no_tmp "$label: no temporary output left after resume" "$TMP" kill.out
}

section "kill -9 of a worker rank, then of rank 0, at random moments"
for t in $(seq 1 "$TRIALS"); do
    if [ $((t % 2)) = 1 ]; then args=("${SLEEP_ARGS[@]}"); else args=("${PRIMES_ARGS[@]}"); fi
    kill_trial "worker kill $t (${args[2]})" $((1 + t % 2)) 3 "${args[@]}"
done
for t in $(seq 1 "$TRIALS"); do
    if [ $((t % 2)) = 1 ]; then args=("${SLEEP_ARGS[@]}"); else args=("${PRIMES_ARGS[@]}"); fi
    kill_trial "rank 0 kill $t (${args[2]})" 0 3 "${args[@]}"
done

# signal_run LABEL SIGNAL TARGET NP ARGS...: TARGET is "mpirun" or "single"
# (mpimap without mpirun). Sets RC and SECS; output in $OUT/$ERR.
signal_run() {
    local label=$1 sig=$2 target=$3 np=$4
    shift 4
    local t0 t1 pid
    t0=$(date +%s%N)
    RC=0
    if [ "$target" = mpirun ]; then
        timeout -k 5 60 "$MPIEXEC" -np "$np" ${MPIEXEC_OVERSUB[@]+"${MPIEXEC_OVERSUB[@]}"} "$MPIMAP" "$@" >"$OUT" 2>"$ERR" </dev/null &
    else
        timeout -k 5 60 "$MPIMAP" "$@" >"$OUT" 2>"$ERR" </dev/null &
    fi
    pid=$!
    # Signal only once every rank has installed its handlers. With a journal
    # that is certain once the journal holds a record (a finished chunk:
    # every rank is past the start-up broadcast); a fixed sleep is not enough
    # under the sanitizers, where MPI start-up alone can take seconds.
    local journal="" a prev="" i child
    for a in "$@"; do
        [ "$prev" = --journal ] && journal=$a
        prev=$a
    done
    if [ -n "$journal" ]; then
        for ((i = 0; i < 400; i++)); do
            grep -qaF MJR1 "$journal" 2>/dev/null && break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        sleep 0.3
    elif [ "$target" != mpirun ]; then
        # One process: wait until it catches the signal (SigCgt in
        # /proc/PID/status), i.e. its handlers are installed.
        local num mask
        num=$(kill -l "$sig")
        for ((i = 0; i < 400; i++)); do
            child=$(pgrep -P "$pid" | head -1)
            mask=$(sed -n 's/^SigCgt:[[:space:]]*//p' "/proc/${child:-0}/status" 2>/dev/null || true)
            [ -n "$mask" ] && (((16#$mask >> (num - 1)) & 1)) && break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        sleep 0.3
    else
        sleep 1.5
    fi
    # timeout runs the command as its child: signal that child.
    child=$(pgrep -P "$pid" | head -1)
    if [ -n "$child" ]; then
        kill -s "$sig" "$child"
    else
        echo "# $label: the run ended before it could be signalled" >&2
    fi
    wait "$pid" || RC=$?
    t1=$(date +%s%N)
    SECS=$(((t1 - t0) / 1000000000))
}

section "signals: drain, exit 3, resume"
J="$TMP/sig.journal"
O="$TMP/sig.out"
for sig in USR1 TERM; do
    rm -f "$J" "$O"
    signal_run "SIG$sig to mpirun" "$sig" mpirun 2 --journal "$J" -o "$O" "${SLEEP_ARGS[@]}"
    if [ "$sig" = USR1 ]; then
        # mpirun forwards SIGUSR1 and then reports the ranks' exit code.
        assert_rc_forwarded "SIGUSR1 to mpirun: exit 3 (interrupted, resumable)" 3
        assert_contains "SIGUSR1: rank 0 says it was interrupted" "$ERR" "interrupted by SIGUSR1"
        assert_fast "SIGUSR1: drained within the grace period" 25
    else
        # Open MPI's mpirun turns SIGTERM into its own exit code 1 and kills
        # the ranks about a second after forwarding it: the ranks drain what
        # they can in that second; the journal keeps every finished chunk.
        # MPICH's Hydra forwards it and lets the ranks drain (exit 3), but
        # may then exit 0 (assert_rc_forwarded): there the drain is checked.
        if [ "$MPIMAP_MPI_FLAVOR" = mpich ]; then
            assert_rc_forwarded "SIGTERM to mpirun: exit 3" 3
            assert_contains "SIGTERM to mpirun: rank 0 says it was interrupted" "$ERR" "interrupted by SIGTERM"
            assert_fast "SIGTERM to mpirun: drained within the grace period" 25
        elif [ "$RC" != 0 ] && [ "$SECS" -le 25 ]; then
            ok "SIGTERM to mpirun: exit $RC within ${SECS}s"
        else
            fail "SIGTERM to mpirun" "non-zero exit within 25 s" "exit $RC after ${SECS}s"
        fi
    fi
    assert_absent "SIG$sig to mpirun: no output under the final name" "$O"
    assert_no_tmp "SIG$sig to mpirun: no temporary output left" "$TMP" sig.out
    run 2 --journal "$J" --resume -v -o "$O" "${SLEEP_ARGS[@]}"
    assert_rc "SIG$sig to mpirun: --resume" 0
    assert_match "SIG$sig to mpirun: resume reused finished chunks" "$ERR" "[(][1-9][0-9]* from the journal[)]"
    assert_same_file "SIG$sig to mpirun: resumed output identical" "$TMP/sleep.ref" "$O"
done
for sig in TERM INT USR1; do
    rm -f "$J" "$O"
    signal_run "SIG$sig to mpimap" "$sig" single 1 --journal "$J" -o "$O" "${PRIMES_ARGS[@]}"
    assert_rc "SIG$sig to mpimap (no mpirun): exit 3" 3
    assert_contains "SIG$sig to mpimap: message" "$ERR" "interrupted by SIG$sig"
    assert_contains "SIG$sig to mpimap: tells how to resume" "$ERR" "--resume"
    assert_absent "SIG$sig to mpimap: no output under the final name" "$O"
    run 1 --journal "$J" --resume -o "$O" "${PRIMES_ARGS[@]}"
    assert_rc "SIG$sig to mpimap: --resume" 0
    assert_same_file "SIG$sig to mpimap: resumed output identical" "$TMP/primes.ref" "$O"
done
# Without a journal: still exit 3, and the message says the work is lost.
rm -f "$O"
signal_run "SIGTERM without journal" TERM single 1 -o "$O" "${PRIMES_ARGS[@]}"
assert_rc "SIGTERM without --journal: exit 3" 3
assert_contains "SIGTERM without --journal: says finished work is lost" "$ERR" "without --journal"
assert_absent "SIGTERM without --journal: no output" "$O"
# A chunk that outlives the grace period: mpimap gives up on it after --grace.
printf '0\n8000000\n0\n' >"$D/slow.txt"
rm -f "$J" "$O"
signal_run "grace expires" TERM single 1 --grace 1 --journal "$J" -o "$O" -c 1 -t 2 test -m sleep "$D/slow.txt"
assert_rc "grace period over: exit 3" 3
assert_contains "grace period over: names the abandoned chunk" "$ERR" "still running after the 1 s grace period"
if [ "$SECS" -le 5 ]; then ok "grace period over: exited after ${SECS}s (chunk needed 8 s)"; else
    fail "grace period over" "exit within 5 s" "${SECS}s"; fi
run 1 --journal "$J" --resume -o "$O" -c 1 -t 2 test -m sleep "$D/slow.txt"
assert_rc "grace period over: --resume" 0
assert_same_file "grace period over: resumed output" "$D/slow.txt" "$O"

section "journals torn by a kill"
"$(dirname "$MPIMAP")/mpimap-gencorpus" 4M 11 >"$D/corpus.txt"
WC_ARGS=(-c 64K wordcount "$D/corpus.txt")
run 1 "${WC_ARGS[@]}" -o "$TMP/wc.ref"
assert_rc "wordcount reference" 0
# torn_case NAME REF ARGS...: a journaled run, then its journal cut inside the
# last record (its header starts with the magic "MJR1") at several offsets.
torn_case() {
    local name=$1 ref=$2 last size cut
    shift 2
    rm -f "$J" "$O"
    run 2 --journal "$J" "$@" -o "$O"
    assert_rc "$name: journaled run" 0
    last=$(grep -obaF "MJR1" "$J" | tail -1 | cut -d: -f1)
    size=$(stat -c %s "$J")
    for cut in "$last" $((last + 1)) $((last + 40)) $((last + 64)) $((size - 1)); do
        cp "$J" "$J.torn"
        truncate -s "$cut" "$J.torn"
        rm -f "$O"
        run 2 --journal "$J.torn" --resume -v -o "$O" "$@"
        assert_rc "$name: journal cut at byte $cut of $size: --resume" 0
        assert_same_file "$name: journal cut at byte $cut: output identical" "$ref" "$O"
        if [ "$cut" != "$last" ]; then
            assert_contains "$name: journal cut at byte $cut: the torn record is reported" "$ERR" "incomplete last record"
        fi
    done
}
torn_case "echo" "$TMP/sleep.ref" "${SLEEP_ARGS[@]}"
# wordcount's last record is a segment (partials of 16 chunks): cutting it
# makes those chunks count as not done, so they are computed again.
torn_case "wordcount" "$TMP/wc.ref" "${WC_ARGS[@]}"

section "refusals: journal of another run, existing journal, stdin"
rm -f "$J" "$O"
run 2 --journal "$J" -o "$O" "${SLEEP_ARGS[@]}"
assert_rc "journal for the refusals" 0
run 2 --journal "$J" --resume -o "$O" "${WC_ARGS[@]}"
assert_rc "journal of another kernel: usage error" 2
assert_contains "journal of another kernel: names both" "$ERR" "it has 'kernel test' where this run has 'kernel wordcount'"
run 2 --journal "$J" --resume -o "$O" -c 128 test -m sleep "$D/sleep.txt"
assert_rc "journal with another --chunk-size: usage error" 2
assert_contains "journal with another --chunk-size: names the difference" "$ERR" "chunk-size 64"
run 2 --journal "$J" --resume -o "$O" -c 64 test -m echo "$D/sleep.txt"
assert_rc "journal with other kernel options: usage error" 2
assert_contains "journal with other options: quotes the option" "$ERR" "option mode="
run 2 --journal "$J" -o "$O" "${SLEEP_ARGS[@]}"
assert_rc "existing journal without --resume: usage error" 2
assert_contains "existing journal without --resume: says what to do" "$ERR" "pass --resume"
cp "$D/sleep.txt" "$D/sleep2.txt"
run 2 --journal "$TMP/j2" -o "$O" "${SLEEP_ARGS[@]}"
assert_rc "journal for sleep.txt" 0
echo 5 >>"$D/sleep.txt"
run 2 --journal "$TMP/j2" --resume -o "$O" "${SLEEP_ARGS[@]}"
assert_rc "input changed since the journal: refused" 2
assert_contains "input changed: names the input" "$ERR" "input '$D/sleep.txt' changed"
cp "$D/sleep2.txt" "$D/sleep.txt"
run_in "$D/sleep.txt" 2 --journal "$TMP/j3" test -
assert_rc "--journal with standard input: usage error" 2
assert_contains "--journal with standard input: explains" "$ERR" "standard input"

section "output on a full filesystem, missing and read-only directories"
if [ "$(id -u)" = 0 ] && mkdir -p "$TMP/full" && mount -t tmpfs -o size=1m tmpfs "$TMP/full" 2>/dev/null; then
    echo OLD >"$TMP/full/out.txt"
    head -c 3000000 /dev/zero | tr '\0' 'x' | fold -w 99 >"$D/big-lines.txt"
    run 2 -o "$TMP/full/out.txt" test "$D/big-lines.txt"
    assert_rc "full filesystem: exit 1" 1
    assert_contains "full filesystem: ENOSPC named" "$ERR" "No space left on device"
    assert_eq "full filesystem: earlier file of the same name intact" "OLD" "$(cat "$TMP/full/out.txt")"
    assert_no_tmp "full filesystem: temporary file removed" "$TMP/full" out.txt
    rm -f "$TMP/full/out.txt"
    run 2 --journal "$TMP/full/j" -o "$TMP/out-jfull.txt" test "$D/big-lines.txt"
    assert_rc "journal on a full filesystem: exit 1" 1
    assert_contains "journal on a full filesystem: ENOSPC named" "$ERR" "No space left on device"
    assert_absent "journal on a full filesystem: no output" "$TMP/out-jfull.txt"
    umount "$TMP/full"
    # A read-only directory (root may write anywhere else).
    mount -t tmpfs -o ro,size=1m tmpfs "$TMP/full"
    rm -f "$TMP/flag"
    run 2 -o "$TMP/full/out.txt" -c 1 test --flaky "$TMP/flag" "$D/sleep.txt"
    assert_rc "read-only output directory: exit 1" 1
    assert_contains "read-only output directory: named" "$ERR" "$TMP/full"
    assert_absent "read-only output directory: refused before any chunk ran" "$TMP/flag"
    umount "$TMP/full"
else
    echo "SKIP: full-filesystem and read-only cases need root to mount a tmpfs"
fi
printf '0\nFLAKY\n' >"$D/flaky.txt"
rm -f "$TMP/flag"
run 2 -o "$TMP/no/such/dir/out.txt" -c 1 test --flaky "$TMP/flag" "$D/flaky.txt"
assert_rc "missing output directory: exit 1" 1
assert_contains "missing output directory: named" "$ERR" "does not exist"
assert_absent "missing output directory: refused before any chunk ran" "$TMP/flag"
run 2 --journal "$TMP/no/such/j" -o "$TMP/o.txt" -c 1 test --flaky "$TMP/flag" "$D/flaky.txt"
assert_rc "missing journal directory: exit 1" 1
assert_contains "missing journal directory: named" "$ERR" "$TMP/no/such/j"
assert_absent "missing journal directory: refused before any chunk ran" "$TMP/flag"

section "1,000 inputs, 3 bad ones"
# MPICH's Hydra (before 4.2) crashes (SIGSEGV) on a command line of 999
# arguments or more (HYD_NUM_TMP_STRINGS, pmodels/mpich#6681): 900 there.
NLIST=1000
if [ "$MPIMAP_MPI_FLAVOR" = mpich ]; then
    NLIST=900
    skip_check "1,000 inputs on mpiexec's command line" "MPICH's Hydra crashes on 999+ arguments, pmodels/mpich#6681; 900 inputs instead"
fi
L="$TMP/list"
mkdir -p "$L"
chmod 755 "$L"
for i in $(seq -f '%04g' 1 "$NLIST"); do echo "item $i" >"$L/f$i.txt"; done
echo BOOM >"$L/f0100.txt" # corrupt: --fail-on BOOM
echo BOOM >"$L/f0500.txt"
chmod 000 "$L/f0700.txt" # unreadable (run as nobody when root)
OD="$TMP/nb" # nobody's HOME, TMPDIR and output directory
as_nobody "$OD"
run_cmd "${AS_NOBODY[@]}" timeout -k 10 "$E2E_TIMEOUT" "$MPIEXEC" -np 2 ${MPIEXEC_OVERSUB[@]+"${MPIEXEC_OVERSUB[@]}"} "$NB_MPIMAP" \
    --journal "$OD/list.journal" -o "$OD/list.out" test --fail-on BOOM "$L"/f*.txt
assert_rc "$NLIST inputs, 3 bad: exit 1" 1
assert_absent "$NLIST inputs, 3 bad: the final output is not written" "$OD/list.out"
assert_eq "$NLIST inputs, 3 bad: $((NLIST - 3)) results kept in .incomplete" $((NLIST - 3)) "$(wc -l <"$OD/list.out.incomplete" 2>/dev/null || echo 0)"
assert_contains "$NLIST inputs: corrupt input 1 named with its line" "$ERR" "$L/f0100.txt:1: found the line 'BOOM'"
assert_contains "$NLIST inputs: corrupt input 2 named with its line" "$ERR" "$L/f0500.txt:1: found the line 'BOOM'"
assert_match "$NLIST inputs: unreadable input named with the reason" "$ERR" "f0700.txt.*[Pp]ermission denied"
assert_contains "$NLIST inputs: summary" "$ERR" "3 of $NLIST chunks failed (chunks 99, 499, 699)"
# Fix the bad inputs; --resume computes only those three.
echo "item 0100" >"$L/f0100.txt"
echo "item 0500" >"$L/f0500.txt"
chmod 644 "$L/f0700.txt"
run 2 --journal "$OD/list.journal" --resume -v -o "$OD/list.out" test --fail-on BOOM "$L"/f*.txt
assert_rc "$NLIST inputs fixed: --resume" 0
assert_contains "$NLIST inputs fixed: only the 3 failed chunks computed" "$ERR" "$NLIST chunks ($((NLIST - 3)) from the journal)"
assert_same_file "$NLIST inputs fixed: complete output" <(cat "$L"/f*.txt) "$OD/list.out"
# --fail-fast stops at the first failure: a chunk far behind it never runs.
echo BOOM >"$L/f0100.txt"
printf 'FLAKY\n' >"$L/f0900.txt"
rm -f "$TMP/flag900"
run 2 --fail-fast -o "$TMP/ff.out" test --fail-on BOOM --flaky "$TMP/flag900" "$L"/f*.txt
assert_rc "--fail-fast: exit 1" 1
assert_contains "--fail-fast: names the first failure" "$ERR" "$L/f0100.txt:1:"
assert_absent "--fail-fast: stopped early (input 900 never computed)" "$TMP/flag900"
assert_absent "--fail-fast: no output" "$TMP/ff.out"
assert_absent "--fail-fast: no .incomplete either" "$TMP/ff.out.incomplete"

assert_no_strays "no stray processes"
finish
