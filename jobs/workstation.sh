#!/bin/bash
# jobs/workstation.sh - mpimap on a workstation or laptop with mpirun, with a
# journal, so that Ctrl-C (or SIGTERM, or SIGUSR1) stops it cleanly and the
# same command continues it later.
#
#   jobs/workstation.sh                          # wordcount --top 100 over data/corpus-256M.txt
#   jobs/workstation.sh -o counts.txt big/*.txt  # wordcount --top 100 over your files
#   jobs/workstation.sh -o fib.txt fib 40 41 42  # any kernel: KERNEL [OPTIONS] INPUT...
#   jobs/workstation.sh -n 1 -t 8 -o counts.txt big/*.txt   # 1 rank x 8 threads
#
# Usage: jobs/workstation.sh [-n RANKS] [-t THREADS] [-o OUTPUT] [KERNEL [OPTIONS]] [INPUT...]
#   -n RANKS    MPI ranks (default: NP, else the number of cores)
#   -t THREADS  threads per rank (default: THREADS, else auto: one per core
#               of the rank's cpuset)
#   -o OUTPUT   the output file (default: OUTPUT, else mpimap-output.txt);
#               written to a temporary file and renamed when the run succeeds
# Without a kernel name: wordcount --top 100 over the inputs (default: the
# corpus of scripts/run.sh, data/corpus-256M.txt, else a small generated
# one, data/corpus-64M.txt).
#
# Stopping and continuing: every finished chunk is recorded in
# OUTPUT.journal. The first Ctrl-C (SIGINT), SIGTERM or SIGUSR1 drains: the
# ranks stop taking new chunks, finish the running ones (--grace, default
# 20 s), flush the journal and the script exits with status 3. Run the same
# command again to continue: finished chunks are not computed again and the
# output is the same, byte for byte, as that of an uninterrupted run. A
# second Ctrl-C stops at once (SIGTERM to mpirun, which kills the ranks);
# the journal still holds every chunk finished by then. The journal is
# deleted when the run succeeds (KEEP_JOURNAL=1 keeps it).
#
# mpirun runs in its own session (setsid): Ctrl-C in the terminal reaches
# this script only, which passes it to mpirun as SIGUSR1. mpirun itself
# would answer SIGINT or SIGTERM by killing the ranks about 1 s later.
#
# Environment: MPIMAP (the executable; default build/mpimap next to this
# directory, else mpimap on PATH), MPIMAP_OPTS (more engine options, e.g.
# "--chunk-size 16M -v"), MPIRUN_OPTS (more mpirun options), NP, THREADS,
# OUTPUT, JOURNAL (default OUTPUT.journal; "none": no journal).
#
# Exit status: mpimap's. 0 done, 1 failed, 2 usage error, 3 stopped by a
# signal (run the same command again to continue).
set -euo pipefail
# Until mpirun starts, a signal only means "do not start" (see below).
signals=0
trap 'signals=$((signals + 1))' INT TERM USR1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${MPIMAP:-}" ]; then
    if [ -x "$ROOT/build/mpimap" ]; then MPIMAP=$ROOT/build/mpimap; else MPIMAP=mpimap; fi
fi
NP=${NP:-$(nproc)}
THREADS=${THREADS:-auto}
OUTPUT=${OUTPUT:-mpimap-output.txt}
usage() { # usage STATUS: the comment block above, from "Usage:" to the first empty line
    sed -n '/^# Usage:/,/^#$/{/^#$/q;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit "$1"
}
while getopts n:t:o:h opt; do
    case "$opt" in
    n) NP=$OPTARG ;;
    t) THREADS=$OPTARG ;;
    o) OUTPUT=$OPTARG ;;
    h) usage 0 ;;
    *) usage 2 ;;
    esac
done
shift $((OPTIND - 1))
JOURNAL=${JOURNAL:-$OUTPUT.journal}

case "${1:-}" in
"")
    CORPUS=$ROOT/data/corpus-256M.txt
    if [ ! -s "$CORPUS" ]; then
        CORPUS=$ROOT/data/corpus-${CORPUS_SIZE:-64M}.txt
        if [ ! -s "$CORPUS" ]; then
            gen=$(dirname "$MPIMAP")/mpimap-gencorpus
            [ -x "$gen" ] || gen=mpimap-gencorpus
            echo "generating $CORPUS" >&2
            mkdir -p "$ROOT/data"
            "$gen" "${CORPUS_SIZE:-64M}" >"$CORPUS.tmp.$$"
            mv "$CORPUS.tmp.$$" "$CORPUS"
        fi
    fi
    set -- wordcount --top 100 "$CORPUS"
    ;;
wordcount | fib | primes | test) ;; # a kernel's command line
*) set -- wordcount --top 100 "$@" ;; # input files
esac

engine=(--threads "$THREADS" -o "$OUTPUT")
if [ "$JOURNAL" != none ]; then
    # --resume with no journal yet starts one: the same command line serves
    # the first run and every continuation.
    engine+=(--journal "$JOURNAL" --resume)
fi
read -r -a extra <<<"${MPIMAP_OPTS:-}"
read -r -a mpirun_extra <<<"${MPIRUN_OPTS:-}"
# Open MPI refuses to start as root without these; set them only for root.
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
cmd=(mpirun -np "$NP" --oversubscribe ${mpirun_extra[@]+"${mpirun_extra[@]}"}
    "$MPIMAP" "${engine[@]}" ${extra[@]+"${extra[@]}"} "$@")
setsid=()
if command -v setsid >/dev/null; then setsid=(setsid); fi

# ---- run it, draining on a signal ---------------------------------------------
# bash runs a trap only after the foreground command has ended, so mpirun
# runs in the background and this shell waits for it; `wait` returns early
# whenever a trapped signal arrives, hence the loop. (In a script without job
# control a background command is not a process-group leader, so setsid
# starts a new session without forking: $! is mpirun itself.)
child=""
# shellcheck disable=SC2317 # called by the trap below
on_signal() {
    signals=$((signals + 1))
    if [ -z "$child" ]; then
        : # not started yet
    elif [ "$signals" = 1 ]; then
        echo "workstation.sh: stopping: running chunks finish, then exit 3 (Ctrl-C again: stop now)" >&2
        kill -USR1 "$child" 2>/dev/null || true
    else
        echo "workstation.sh: stopping now" >&2
        kill -TERM "$child" 2>/dev/null || true
    fi
}
trap on_signal INT TERM USR1

echo "${cmd[*]}" >&2
if [ "$signals" -gt 0 ]; then
    echo "stopped before the start" >&2
    exit 3
fi
# Explicit <&0: a background command's standard input is otherwise /dev/null
# (for input "-").
${setsid[@]+"${setsid[@]}"} "${cmd[@]}" <&0 &
child=$!
if [ "$signals" -gt 0 ]; then # a signal that came before $child was set
    kill -USR1 "$child" 2>/dev/null || true
fi
while kill -0 "$child" 2>/dev/null; do wait "$child" || true; done
rc=0
wait "$child" || rc=$? # the status of a child already waited for is remembered

case "$rc" in
0)
    if [ "$JOURNAL" != none ] && [ "${KEEP_JOURNAL:-0}" != 1 ]; then rm -f "$JOURNAL"; fi
    echo "done: $OUTPUT" >&2
    ;;
3) echo "stopped: finished chunks are in $JOURNAL; run the same command again to continue" >&2 ;;
*)
    if [ "$signals" -gt 0 ] && [ "$JOURNAL" != none ]; then
        echo "stopped (exit $rc): chunks finished so far are in $JOURNAL;" \
            "run the same command again to continue" >&2
    else
        echo "mpimap failed: exit $rc" >&2
        if [ -e "$OUTPUT.incomplete" ]; then
            echo "the chunks that succeeded are in $OUTPUT.incomplete; fix the input and" \
                "run the same command again: only the failed chunks are computed again" >&2
        fi
    fi
    ;;
esac
exit "$rc"
