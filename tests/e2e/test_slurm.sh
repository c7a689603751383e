#!/bin/bash
# End-to-end: the batch scripts of jobs/.
#   1. shellcheck over jobs/ (when shellcheck is installed);
#   2. jobs/workstation.sh: same output as a direct mpirun; a failing chunk
#      gives exit 1 and OUTPUT.incomplete; the first Ctrl-C
#      (SIGINT to its process group, as a terminal sends it) or a SIGTERM
#      drains (exit 3, journal kept, no output), a second Ctrl-C stops at
#      once, and the same command then completes with identical output;
#   3. jobs/mpimap.pbs outside PBS (a fake PBS_NODEFILE and PBS_WALLTIME):
#      its walltime watch drains the run, a second submission completes it;
#   4. on a private single-node Slurm (slurmctld, slurmd, munged started by
#      tests/e2e/slurm-cluster.sh as root, with their own config, ports and
#      directories under the test's temporary directory; stopped at exit):
#      every sbatch script, srun --mpi=pmix and mpirun variants, several
#      hybrid layouts, output byte-identical to a direct mpirun of the same
#      command; `scancel --signal=USR1 --batch` drains (exit 3, journal) and
#      a resubmission completes; a plain `scancel` mid-run, then a
#      resubmission; jobs/slurm-requeue.sbatch drains on the real time-limit
#      signal (--time=1 --signal=B:USR1@20), requeues itself and the next
#      run completes; with the mpirun launcher too; SIGUSR2 stops it for good.
# Without root or passwordless sudo the Slurm part is skipped (with a
# message); the slurm-wlm and munge packages are installed when missing.
# The workloads: wordcount over a generated corpus (-c 1M: 16 chunks), and
# the test kernel's sleep mode (one line = one chunk = a sleep of 0.25 or
# 0.4 s, echoed) for runs long enough to interrupt.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
# The jobs/ scripts start ranks with `srun --mpi=pmix` or Open MPI's mpirun
# options; a build against another MPI would run as N singletons there.
need_openmpi "launching through jobs/ (srun --mpi=pmix, mpirun --map-by/--bind-to)"

JOBS=$MPIMAP_SRC/jobs
CLUSTER_SH=$E2E_DIR/slurm-cluster.sh
GEN=$(dirname "$MPIMAP")/mpimap-gencorpus
W=$TMP/work
mkdir -p "$W"
T_START=$(date +%s)

# Nothing from an enclosing Slurm job or the user's sbatch defaults.
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(SLURM|SBATCH|SALLOC|SRUN)_' || true)
export MPIMAP

# ---------------------------------------------------------------- inputs
"$GEN" 16M 7 >"$W/corpus.txt"
for i in $(seq -w 1 48); do echo "250000 short-$i"; done >"$W/short.txt"
for i in $(seq -w 1 240); do echo "400000 long-$i"; done >"$W/long.txt"
# Engine options as a string (MPIMAP_OPTS for the scripts) and as an array.
WC_OPTS="--threads 1 -c 1M"
SLEEP_OPTS="--threads 1 -c 1 -v"
read -r -a WC_A <<<"$WC_OPTS"
read -r -a SLEEP_A <<<"$SLEEP_OPTS"

elapsed() { echo $(($(date +%s) - T_START)); }

# journal_grows FILE TIMEOUT: wait until FILE exists and has grown once
# (at least one chunk recorded after the first look).
journal_grows() {
    local f=$1 end=$(($(date +%s) + $2)) first=""
    while [ "$(date +%s)" -lt "$end" ]; do
        if [ -e "$f" ]; then
            local s
            s=$(stat -c %s "$f")
            if [ -z "$first" ]; then first=$s; elif [ "$s" -gt "$first" ]; then return 0; fi
        fi
        sleep 0.2
    done
    return 1
}

section "shellcheck jobs/ (elapsed $(elapsed)s)"
if command -v shellcheck >/dev/null; then
    for f in "$JOBS"/*; do
        if shellcheck -x "$f" >"$TMP/sc.out" 2>&1; then
            ok "shellcheck $(basename "$f")"
        else
            fail "shellcheck $(basename "$f")" "$(head -n 20 "$TMP/sc.out")"
        fi
    done
else
    ok "shellcheck not installed: skipped (apt-get install shellcheck)"
fi

# The references: direct mpirun runs of the same commands.
run 2 "${WC_A[@]}" -o "$TMP/ref-wc.txt" wordcount --top 100 "$W/corpus.txt"
assert_rc "reference: mpirun -np 2 mpimap wordcount" 0
run 2 "${SLEEP_A[@]}" -o "$TMP/ref-short.txt" test --mode sleep "$W/short.txt"
assert_rc "reference: mpirun -np 2 mpimap test --mode sleep (short)" 0
assert_same_file "reference: the sleep mode echoes its input" "$W/short.txt" "$TMP/ref-short.txt"

section "jobs/workstation.sh (elapsed $(elapsed)s)"
WS=$JOBS/workstation.sh
cd "$W"
run_cmd env MPIMAP_OPTS="$WC_OPTS" "$WS" -n 2 -o "$W/ws-wc.txt" "$W/corpus.txt"
assert_rc "workstation.sh -n 2 -o ws-wc.txt corpus.txt" 0
assert_same_file "workstation.sh: same output as mpirun" "$TMP/ref-wc.txt" "$W/ws-wc.txt"
assert_absent "workstation.sh: journal deleted after success" "$W/ws-wc.txt.journal"
assert_contains "workstation.sh: says done" "$ERR" "done: $W/ws-wc.txt"

# A failing chunk: exit 1, the other chunks' rows in OUTPUT.incomplete, the
# journal kept, and the script says so.
rm -f "$W/ws-fail.txt"*
run_cmd env MPIMAP_OPTS="-c 1" "$WS" -n 2 -o "$W/ws-fail.txt" test --fail-on "250000 short-10" "$W/short.txt"
assert_rc "workstation.sh, a failing chunk" 1
assert_absent "workstation.sh, a failing chunk: no output" "$W/ws-fail.txt"
assert_exists "workstation.sh, a failing chunk: OUTPUT.incomplete" "$W/ws-fail.txt.incomplete"
assert_exists "workstation.sh, a failing chunk: journal kept" "$W/ws-fail.txt.journal"
assert_contains "workstation.sh, a failing chunk: says where the rest is" "$ERR" \
    "the chunks that succeeded are in $W/ws-fail.txt.incomplete"

# ws_interrupt LABEL SIGNAL COUNT EXPECTED_RC: start the sleep workload in a
# new process group (as a shell does for a terminal job), wait for progress,
# send SIGNAL COUNT times (0.3 s apart) to the group - for SIGINT, what Ctrl-C
# does - then run the same command again.
ws_interrupt() {
    local label=$1 sig=$2 count=$3 want=$4 out=$W/ws-$1.txt rc pg i
    rm -f "$out" "$out.journal"
    (
        rc=0
        MPIMAP_OPTS="$SLEEP_OPTS" setsid "$WS" -n 2 -o "$out" test --mode sleep "$W/short.txt" \
            >"$TMP/ws.out" 2>"$TMP/ws.err" </dev/null || rc=$?
        echo "$rc" >"$TMP/ws.rc"
    ) &
    local bg=$!
    if ! journal_grows "$out.journal" 20; then
        fail "workstation.sh ($label): journal grows" "no journal growth in 20 s"
        wait "$bg" || true
        return
    fi
    pg=$(pgrep -f -- "-o $out test" | head -n 1)
    pg=$(ps -o pgid= -p "$pg" | tr -d ' ')
    for i in $(seq "$count"); do
        kill -"$sig" -- "-$pg" 2>/dev/null || true
        [ "$i" = "$count" ] || sleep 0.3
    done
    wait "$bg" || true
    rc=$(cat "$TMP/ws.rc")
    if [ "$want" = fail ] && [ "$rc" != 0 ] && [ "$rc" != 3 ]; then
        ok "workstation.sh ($label): exit status $rc (not 0, not 3)"
        assert_contains "workstation.sh ($label): says it stops now" "$TMP/ws.err" "stopping now"
    else
        assert_eq "workstation.sh ($label): exit status" "$want" "$rc"
        [ "$rc" = "$want" ] || show_file stderr "$TMP/ws.err" 20
    fi
    assert_no_strays "workstation.sh ($label): no process left"
    assert_absent "workstation.sh ($label): no output" "$out"
    assert_no_tmp "workstation.sh ($label): no temporary output" "$W" "$(basename "$out")"
    assert_exists "workstation.sh ($label): journal kept" "$out.journal"
    [ "$want" != 3 ] || assert_contains "workstation.sh ($label): says how to continue" "$TMP/ws.err" \
        "run the same command again to continue"
    run_cmd env MPIMAP_OPTS="$SLEEP_OPTS" "$WS" -n 2 -o "$out" test --mode sleep "$W/short.txt"
    assert_rc "workstation.sh ($label): the same command again" 0
    assert_match "workstation.sh ($label): second run resumed from the journal" "$ERR" \
        "resumed; [1-9][0-9]* finished"
    assert_same_file "workstation.sh ($label): output identical to an uninterrupted run" \
        "$TMP/ref-short.txt" "$out"
    assert_absent "workstation.sh ($label): journal deleted after success" "$out.journal"
}
ws_interrupt ctrl-c INT 1 3
ws_interrupt sigterm TERM 1 3
# Twice: mpirun gets SIGTERM while the ranks drain and ends them (its exit
# status varies: 1, or 139 when Open MPI 4.1's mpirun crashes in
# PMIx_Finalize on the second signal); any failure status will do.
ws_interrupt ctrl-c-twice INT 2 fail

section "jobs/mpimap.pbs outside PBS: the walltime watch (elapsed $(elapsed)s)"
printf 'localhost\nlocalhost\n' >"$W/nodefile"
rm -f "$W/pbs.txt" "$W/pbs.txt.journal"
# Walltime 125 s, drain 122 s before it: the watch fires after ~3 s.
run_cmd env PBS_O_WORKDIR="$W" PBS_NODEFILE="$W/nodefile" PBS_WALLTIME=125 DRAIN_BEFORE=122 \
    MPIMAP_OPTS="$SLEEP_OPTS" ARGS="-o $W/pbs.txt test --mode sleep $W/short.txt" "$JOBS/mpimap.pbs"
assert_rc "mpimap.pbs, walltime watch" 3
assert_contains "mpimap.pbs: the watch drained the run" "$ERR" "walltime ends in 122 s: draining"
assert_exists "mpimap.pbs: journal kept" "$W/pbs.txt.journal"
assert_absent "mpimap.pbs: no output" "$W/pbs.txt"
run_cmd env PBS_O_WORKDIR="$W" PBS_NODEFILE="$W/nodefile" \
    MPIMAP_OPTS="$SLEEP_OPTS" ARGS="-o $W/pbs.txt test --mode sleep $W/short.txt" "$JOBS/mpimap.pbs"
assert_rc "mpimap.pbs, submitted again" 0
assert_same_file "mpimap.pbs: output identical to an uninterrupted run" "$TMP/ref-short.txt" "$W/pbs.txt"
run_cmd env PBS_O_WORKDIR="$W" PBS_NODEFILE="$W/nodefile" RANKS_PER_NODE=1 THREADS=2 \
    MPIMAP_OPTS="-c 1M --report-bindings" ARGS="-o $W/pbs-wc.txt $W/corpus.txt" "$JOBS/mpimap.pbs"
assert_rc "mpimap.pbs, RANKS_PER_NODE=1 THREADS=2" 0
assert_contains "mpimap.pbs, RANKS_PER_NODE=1 THREADS=2: 1 rank x 2 threads" "$ERR" \
    "2 cores for this rank, 2 threads"
assert_same_file "mpimap.pbs, RANKS_PER_NODE=1 THREADS=2: same output as mpirun" "$TMP/ref-wc.txt" "$W/pbs-wc.txt"

# ------------------------------------------------------------------ Slurm
section "a private single-node Slurm (elapsed $(elapsed)s)"
if ! why=$("$CLUSTER_SH" check); then
    echo "SKIP - Slurm part: $why"
    ok "Slurm part skipped: $why"
    finish
    exit $?
fi
CLUSTER=$TMP/slurm
slurm_cleanup() {
    local rc=$?
    set +e
    "$CLUSTER_SH" stop "$CLUSTER"
    (exit "$rc") # lib.sh's cleanup takes the exit status from $?
    cleanup
}
trap slurm_cleanup EXIT
t0=$(date +%s)
if ! "$CLUSTER_SH" start "$CLUSTER" >"$TMP/cluster.out" 2>&1; then
    fail "start slurmctld, slurmd and munged" "$(cat "$TMP/cluster.out")"
    finish
    exit 1
fi
ok "slurmctld, slurmd and munged started, node idle ($(($(date +%s) - t0)) s)"
export SLURM_CONF=$CLUSTER/slurm.conf
sinfo -h -o '%P %a %D %t %c' >"$TMP/sinfo.txt" 2>&1 || true
assert_match "sinfo: one idle node in an up partition" "$TMP/sinfo.txt" "^debug\* up 1 idle [0-9]+"
DAEMON_PIDS=$(cat "$CLUSTER/slurmctld.pid" "$CLUSTER/slurmd.pid" "$CLUSTER/munged.pid" | tr '\n' ' ')

# submit VAR SBATCH_ARGS... : sbatch from $W (the submit directory), job id in VAR.
submit() {
    local _var=$1 _jid
    shift
    _jid=$(cd "$W" && sbatch --parsable "$@" 2>"$TMP/sbatch.err") || {
        fail "sbatch $*" "$(cat "$TMP/sbatch.err")"
        _jid=""
    }
    printf -v "$_var" '%s' "${_jid%%;*}"
}

# jfield ID NAME: a field of `scontrol show job`.
jfield() { scontrol -o show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }

# wait_job ID TIMEOUT: until the job has ended; sets JSTATE, JEXIT, JSECS.
wait_job() {
    local id=$1 end=$(($(date +%s) + $2)) t0
    t0=$(date +%s)
    JSTATE=none
    JEXIT=none
    while [ "$(date +%s)" -lt "$end" ]; do
        JSTATE=$(jfield "$id" JobState)
        case "$JSTATE" in
        COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | PREEMPTED | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE) break ;;
        esac
        sleep 0.3
    done
    JEXIT=$(jfield "$id" ExitCode)
    JREASON=$(jfield "$id" Reason)
    JSECS=$(($(date +%s) - t0))
}

# log_has DESC FILE FIXED_STRING / log_match DESC FILE REGEX: a job log
# (which must exist) contains the string / matches.
log_has() {
    if [ -e "$2" ]; then assert_contains "$@"; else fail "$1" "no job log $2"; fi
}
log_match() {
    if [ -e "$2" ]; then assert_match "$@"; else fail "$1" "no job log $2"; fi
}

# The layout for 2 ranks x 1 core for each script (overriding its #SBATCH lines).
layout() {
    case "$1" in
    slurm-one-node.sbatch | slurm-requeue.sbatch) echo "-N 1 -n 2 -c 1" ;;
    *) echo "-N 1 --ntasks-per-node=2 -c 1" ;;
    esac
}

# assert_job DESC ID STATE EXIT: the job's final state and exit code (EXIT
# "any": any exit code).
assert_job() {
    if [ "$JSTATE" = "$3" ] && { [ "$JEXIT" = "$4" ] || [ "$4" = any ]; }; then
        ok "$1: $JSTATE, exit $JEXIT (${JSECS}s)"
    else
        fail "$1" "expected JobState=$3 ExitCode=$4" "actual   JobState=$JSTATE ExitCode=$JEXIT Reason=$JREASON"
        [ ! -e "$W/mpimap-$2.log" ] || show_file "job log" "$W/mpimap-$2.log" 40
        tail -n 5 "$CLUSTER/log/slurmctld.log" "$CLUSTER/log/slurmd.log" | sed 's/^/    | /'
    fi
}

section "sbatch scripts against a direct mpirun (elapsed $(elapsed)s)"
# Each case: NAME|SBATCH OPTIONS|SCRIPT|MPIMAP_OPTS|ARGUMENTS|REFERENCE|LOG PATTERN
CASES=(
    "1node-srun-2x1|-N 1 -n 2 -c 1|slurm-one-node.sbatch|$WC_OPTS -v|$W/corpus.txt|$TMP/ref-wc.txt|2 ranks"
    "1node-srun-1x2|-N 1 -n 1 -c 2|slurm-one-node.sbatch|-c 1M --report-bindings|$W/corpus.txt|$TMP/ref-wc.txt|2 cores for this rank, 2 threads"
    "multi-srun-ppn2|-N 1 --ntasks-per-node=2 -c 1|slurm-multi-node.sbatch|$WC_OPTS --report-bindings|$W/corpus.txt|$TMP/ref-wc.txt|rank 1: cpuset given"
    "multi-srun-ppn1|-N 1 --ntasks-per-node=1 -c 2|slurm-multi-node.sbatch|-c 1M --report-bindings|$W/corpus.txt|$TMP/ref-wc.txt|2 cores for this rank, 2 threads"
    "mpirun-ppn2|-N 1 --ntasks-per-node=2 -c 1|slurm-mpirun.sbatch|$WC_OPTS --report-bindings|$W/corpus.txt|$TMP/ref-wc.txt|rank 1: cpuset given"
    "mpirun-ppn1|-N 1 --ntasks-per-node=1 -c 2|slurm-mpirun.sbatch|-c 1M --report-bindings|$W/corpus.txt|$TMP/ref-wc.txt|2 cores for this rank, 2 threads"
    "requeue-srun|-N 1 -n 2 -c 1|slurm-requeue.sbatch|$WC_OPTS|$W/corpus.txt|$TMP/ref-wc.txt|run 1 (SLURM_RESTART_COUNT=0)"
    "mpirun-fib|-N 1 --ntasks-per-node=2 -c 1|slurm-mpirun.sbatch|-c 1|fib 25 30 31 20 5|$TMP/ref-fib.txt|done:"
    "1node-primes|-N 1 -n 2 -c 1|slurm-one-node.sbatch|-c 20000|primes --list 1:300000|$TMP/ref-primes.txt|done:"
)
run 2 --threads 1 -c 1 -o "$TMP/ref-fib.txt" fib 25 30 31 20 5
assert_rc "reference: mpirun -np 2 mpimap fib" 0
run 2 --threads 1 -c 20000 -o "$TMP/ref-primes.txt" primes --list 1:300000
assert_rc "reference: mpirun -np 2 mpimap primes --list" 0
declare -A CASE_ID
for c in "${CASES[@]}"; do
    IFS='|' read -r name opts script mopts args _ _ <<<"$c"
    read -r -a sopts <<<"$opts"
    read -r -a sargs <<<"$args"
    id=""
    MPIMAP_OPTS=$mopts submit id "${sopts[@]}" "$JOBS/$script" -o "$W/$name.txt" "${sargs[@]}"
    CASE_ID[$name]=$id
done
# With no arguments: wordcount --top 100 over data/corpus-256M.txt, else a
# generated data/corpus-$CORPUS_SIZE.txt, in the submit directory.
W2=$TMP/work2
mkdir -p "$W2"
DEF_ID=$(cd "$W2" && CORPUS_SIZE=2M sbatch --parsable -N 1 -n 2 -c 1 "$JOBS/slurm-one-node.sbatch") || DEF_ID=""
for c in "${CASES[@]}"; do
    IFS='|' read -r name opts script _ _ ref pat <<<"$c"
    id=${CASE_ID[$name]}
    [ -n "$id" ] || continue
    wait_job "$id" 120
    assert_job "$script $opts ($name)" "$id" COMPLETED 0:0
    if [ -e "$W/$name.txt" ]; then
        assert_same_file "$name: output identical to mpirun -np 2" "$ref" "$W/$name.txt"
    else
        fail "$name: output written" "no $W/$name.txt"
    fi
    assert_absent "$name: journal deleted after success" "$W/$name.txt.journal"
    log_has "$name: job log" "$W/mpimap-$id.log" "$pat"
done
if [ -n "$DEF_ID" ]; then
    wait_job "$DEF_ID" 120
    assert_job "slurm-one-node.sbatch without arguments" "$DEF_ID" COMPLETED 0:0
    assert_exists "without arguments: corpus generated" "$W2/data/corpus-2M.txt"
    if [ -e "$W2/data/corpus-2M.txt" ] && [ -e "$W2/mpimap-$DEF_ID.txt" ]; then
        run 2 -o "$TMP/ref-def.txt" wordcount --top 100 "$W2/data/corpus-2M.txt"
        assert_rc "without arguments: reference run" 0
        [ "$RC" = 0 ] || show_file stderr "$ERR"
        assert_same_file "without arguments: mpimap-JOBID.txt = mpirun wordcount --top 100 corpus" \
            "$TMP/ref-def.txt" "$W2/mpimap-$DEF_ID.txt"
    else
        fail "without arguments: output mpimap-$DEF_ID.txt written"
    fi
else
    fail "sbatch slurm-one-node.sbatch without arguments"
fi

# resubmit LABEL NAME SCRIPT: submit the same sleep job again, check that it
# resumed and that the output is the uninterrupted one.
resubmit() {
    local label=$1 name=$2 script=$3 id=""
    read -r -a lay <<<"$(layout "$script")"
    MPIMAP_OPTS=$SLEEP_OPTS submit id "${lay[@]}" "$JOBS/$script" -o "$W/$name.txt" test --mode sleep "$W/short.txt"
    [ -n "$id" ] || return 0
    wait_job "$id" 90
    assert_job "$label: the same job submitted again" "$id" COMPLETED 0:0
    log_match "$label: second job resumed from the journal" "$W/mpimap-$id.log" "resumed; [1-9][0-9]* finished"
    if [ -e "$W/$name.txt" ]; then
        assert_same_file "$label: output identical to an uninterrupted run" "$TMP/ref-short.txt" "$W/$name.txt"
    else
        fail "$label: output written" "no $W/$name.txt"
    fi
    assert_absent "$label: journal deleted after success" "$W/$name.txt.journal"
}

# stop_mid_run LABEL NAME SCRIPT SCANCEL_ARGS STATE EXIT: the sleep workload,
# scancel once the journal grows, check the state, then resubmit.
stop_mid_run() {
    local label=$1 name=$2 script=$3 sc=$4 state=$5 code=$6 id=""
    read -r -a scargs <<<"$sc"
    rm -f "$W/$name.txt" "$W/$name.txt.journal"
    read -r -a lay <<<"$(layout "$script")"
    MPIMAP_OPTS=$SLEEP_OPTS submit id "${lay[@]}" "$JOBS/$script" -o "$W/$name.txt" test --mode sleep "$W/short.txt"
    [ -n "$id" ] || return 0
    if ! journal_grows "$W/$name.txt.journal" 30; then
        fail "$label: journal grows while the job runs" "state $(jfield "$id" JobState)"
    fi
    scancel ${scargs[@]+"${scargs[@]}"} "$id"
    wait_job "$id" 60
    assert_job "$label" "$id" "$state" "$code"
    assert_exists "$label: journal kept" "$W/$name.txt.journal"
    assert_absent "$label: no output" "$W/$name.txt"
    if [ "$code" = 3:0 ]; then
        assert_no_tmp "$label: no temporary output" "$W" "$name.txt"
        log_has "$label: job log says exit 3" "$W/mpimap-$id.log" "stopped by a signal: exit 3"
    else
        # Ranks killed by SIGKILL (mpirun does that ~1 s after SIGTERM) cannot
        # remove their temporary output: note it, do not fail on it.
        local left
        left=$(find "$W" -maxdepth 1 -name ".$name.txt.mpimap-*" | wc -l)
        echo "    ($label: job exit code $JEXIT, $left temporary output file(s) left)"
    fi
    resubmit "$label" "$name" "$script"
}

section "scancel --signal=USR1 --batch: drain, then submit again (elapsed $(elapsed)s)"
# The signal Slurm sends before the time limit (--signal=B:USR1@120), sent
# by hand: same path through the trap, without waiting for a time limit.
stop_mid_run "srun: scancel --signal=USR1 --batch" drain-srun slurm-one-node.sbatch \
    "--signal=USR1 --batch" FAILED 3:0
stop_mid_run "mpirun: scancel --signal=USR1 --batch" drain-mpirun slurm-mpirun.sbatch \
    "--signal=USR1 --batch" FAILED 3:0

section "plain scancel mid-run, then submit again (elapsed $(elapsed)s)"
# SIGTERM to every process of the job (KILL after KillWait, 30 s): under
# srun the ranks get it and drain; under mpirun they are killed ~1 s later.
# Either way the journal holds the finished chunks.
# The batch script's exit code is recorded: 3 when the ranks drained in
# time (seen under srun), 1 when mpirun killed them.
stop_mid_run "srun: scancel" cancel-srun slurm-one-node.sbatch "" CANCELLED any
stop_mid_run "mpirun: scancel" cancel-mpirun slurm-mpirun.sbatch "" CANCELLED any

section "slurm-requeue.sbatch: the time-limit signal, requeue, resume (elapsed $(elapsed)s)"
# The real thing: --time=1 --signal=B:USR1@20. Slurm checks time limits
# about every 30 s, so the signal comes 10-40 s after the start (measured
# below). The workload (240 x 0.4 s on 2 ranks, ~48 s) is longer, so it is
# always interrupted. The job drains, logs exit 3 and requeues itself; while
# it waits to start again (AuthInfo cred_expire=5 in the test cluster: ~6 s)
# its time limit is raised to 5 min so that the second run completes rather
# than being signalled again. A direct mpirun of the same command runs
# meanwhile as the reference.
if [ "$QUICK" = 1 ]; then
    ok "time-limit requeue: skipped in quick mode (MPIMAP_QUICK=1)"
else
    rm -f "$W/tl.txt" "$W/tl.txt.journal"
    (run_np 2 "${SLEEP_A[@]}" -o "$TMP/ref-long.txt" test --mode sleep "$W/long.txt" \
        >/dev/null 2>"$TMP/ref-long.err" </dev/null || echo $? >"$TMP/ref-long.rc") &
    refpid=$!
    id=""
    MPIMAP_OPTS=$SLEEP_OPTS submit id -N 1 -n 2 -c 1 --time=1 --signal=B:USR1@20 \
        "$JOBS/slurm-requeue.sbatch" -o "$W/tl.txt" test --mode sleep "$W/long.txt"
    if [ -n "$id" ]; then
        LOG=$W/mpimap-$id.log
        state="" restarts=0 journal_at_requeue=absent
        end=$(($(date +%s) + 120))
        while [ "$(date +%s)" -lt "$end" ]; do
            state=$(jfield "$id" JobState)
            restarts=$(jfield "$id" Restarts)
            if [ "${restarts:-0}" -ge 1 ] && [ "$state" = PENDING ]; then
                [ -e "$W/tl.txt.journal" ] && journal_at_requeue=present
                scontrol update JobId="$id" TimeLimit=5
                break
            fi
            case "$state" in COMPLETED | FAILED | CANCELLED | TIMEOUT) break ;; esac
            sleep 0.2
        done
        assert_eq "time limit: job requeued (Restarts, state)" "1 PENDING" "${restarts:-0} $state"
        assert_eq "time limit: journal present while requeued" present "$journal_at_requeue"
        log_has "time limit: first run drained, exit 3 logged" "$LOG" "stopped by a signal: exit 3"
        log_has "time limit: first run requeued the job" "$LOG" "requeueing job $id"
        wait_job "$id" 150
        assert_job "time limit: requeued job" "$id" COMPLETED 0:0
        log_has "time limit: second run is run 2" "$LOG" "run 2 (SLURM_RESTART_COUNT=1)"
        log_match "time limit: second run resumed from the journal" "$LOG" "resumed; [1-9][0-9]* finished"
        log_match "time limit: the ranks got SIGUSR1" "$LOG" "SIGUSR1.*: stopping"
        wait "$refpid" || true
        if [ -e "$TMP/ref-long.rc" ]; then
            fail "reference: mpirun -np 2 mpimap test --mode sleep (long)" "exit $(cat "$TMP/ref-long.rc")"
        fi
        if [ -e "$W/tl.txt" ]; then
            assert_same_file "time limit: output identical to an uninterrupted mpirun" "$TMP/ref-long.txt" "$W/tl.txt"
        else
            fail "time limit: output written" "no $W/tl.txt"
        fi
        assert_absent "time limit: journal deleted after success" "$W/tl.txt.journal"
        # When the signal came: the first run's start and drain lines.
        t1=$(sed -n 's/^\([0-9-]* [0-9:]*\) job .* run 1 .*/\1/p' "$LOG" | head -n 1)
        t2=$(sed -n 's/^\([0-9-]* [0-9:]*\) stopped by a signal.*/\1/p' "$LOG" | head -n 1)
        if [ -n "$t1" ] && [ -n "$t2" ]; then
            echo "    (first run: signal and drain $(($(date -d "$t2" +%s) - $(date -d "$t1" +%s))) s after its start)"
        fi
    else
        wait "$refpid" || true
    fi
fi

section "slurm-requeue.sbatch with LAUNCHER=mpirun; SIGUSR2 stops for good (elapsed $(elapsed)s)"
rm -f "$W/rq-mpirun.txt" "$W/rq-mpirun.txt.journal"
id=""
LAUNCHER=mpirun MPIMAP_OPTS=$SLEEP_OPTS submit id -N 1 -n 2 -c 1 "$JOBS/slurm-requeue.sbatch" \
    -o "$W/rq-mpirun.txt" test --mode sleep "$W/short.txt"
if [ -n "$id" ]; then
    journal_grows "$W/rq-mpirun.txt.journal" 30 || fail "LAUNCHER=mpirun: journal grows"
    scancel --signal=USR1 --batch "$id"
    wait_job "$id" 90
    assert_job "LAUNCHER=mpirun: USR1, requeued, completed" "$id" COMPLETED 0:0
    assert_eq "LAUNCHER=mpirun: restarted once" 1 "$(jfield "$id" Restarts)"
    LOG=$W/mpimap-$id.log
    log_has "LAUNCHER=mpirun: exit 3 logged" "$LOG" "stopped by a signal: exit 3"
    log_has "LAUNCHER=mpirun: second run" "$LOG" "run 2 (SLURM_RESTART_COUNT=1)"
    log_match "LAUNCHER=mpirun: second run resumed" "$LOG" "resumed; [1-9][0-9]* finished"
    if [ -e "$W/rq-mpirun.txt" ]; then
        assert_same_file "LAUNCHER=mpirun: output identical to an uninterrupted run" "$TMP/ref-short.txt" "$W/rq-mpirun.txt"
    else
        fail "LAUNCHER=mpirun: output written" "no $W/rq-mpirun.txt"
    fi
fi
rm -f "$W/rq-stop.txt" "$W/rq-stop.txt.journal"
id=""
MPIMAP_OPTS=$SLEEP_OPTS submit id -N 1 -n 2 -c 1 "$JOBS/slurm-requeue.sbatch" \
    -o "$W/rq-stop.txt" test --mode sleep "$W/short.txt"
if [ -n "$id" ]; then
    journal_grows "$W/rq-stop.txt.journal" 30 || fail "SIGUSR2: journal grows"
    scancel --signal=USR2 --batch "$id"
    wait_job "$id" 60
    assert_job "SIGUSR2: drained, not requeued" "$id" FAILED 3:0
    assert_eq "SIGUSR2: no restart" 0 "$(jfield "$id" Restarts)"
    log_has "SIGUSR2: log says not requeued" "$W/mpimap-$id.log" "not requeued"
    assert_exists "SIGUSR2: journal kept" "$W/rq-stop.txt.journal"
    resubmit "SIGUSR2" rq-stop slurm-requeue.sbatch
fi

section "stop the cluster (elapsed $(elapsed)s)"
"$CLUSTER_SH" stop "$CLUSTER"
left=""
for p in $DAEMON_PIDS; do
    if kill -0 "$p" 2>/dev/null; then left="$left $p"; fi
done
assert_eq "slurmctld, slurmd and munged (pids $DAEMON_PIDS) stopped" "" "$left"
echo "    (total $(elapsed) s)"

finish
