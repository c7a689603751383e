#!/bin/sh
# The task program of tests/e2e/test_exec.sh: run as `sh exec_task.sh MODE
# ARGS...` by `mpimap exec` (so that its mode bits do not matter). Every mode
# is deterministic in what it prints, so that grouped output can be compared
# byte for byte between runs.
#
#   args ARG...            print the argument count, then every argument
#                          between < > ("2 <a b> <c>"): shows exactly what
#                          reached the program
#   mark DIR ITEM          append "RANK SLOT TASK" to DIR/ITEM (one line per
#                          run of the task: its side effect), print
#                          "out ITEM TASK" on stdout and "err ITEM" on stderr
#   count DIR ITEM SECS    add one to DIR/ITEM.n; when DIR/ITEM.slow or
#                          DIR/slow exists, sleep SECS first (a distinctive
#                          number, to find the sleep with pgrep), ignoring
#                          SIGTERM if DIR/ITEM.stubborn exists; when
#                          DIR/ITEM.bad exists fail with exit 5; print
#                          "out ITEM" (and "bad ITEM"); after the sleep,
#                          write DIR/ITEM.done
#   flaky DIR ITEM         add one to DIR/ITEM.n; fail (exit 1) while that
#                          count is <= K, the number ITEM ends with ("f2":
#                          fails twice); print "done ITEM attempt N" on success
#   env ARG...             print the task's environment as mpimap set it up
#                          (MPIMAP_*, OMP_NUM_THREADS, the CPU affinity, the
#                          working directory) and the arguments
#   files ITEM             "stdout of ITEM" on stdout, "stderr of ITEM" on
#                          stderr; item "silent" prints nothing, item "fail"
#                          exits 4 after printing
#   stdin ITEM             copy standard input to standard output, then print
#                          "done ITEM"
mode=$1
shift
case $mode in
args)
    printf '%s' "$#"
    for a in "$@"; do printf ' <%s>' "$a"; done
    printf '\n'
    ;;
mark)
    printf '%s %s %s\n' "$MPIMAP_RANK" "$MPIMAP_SLOT" "$MPIMAP_TASK" >>"$1/$2"
    printf 'out %s %s\n' "$2" "$MPIMAP_TASK"
    printf 'err %s\n' "$2" >&2
    ;;
count)
    n=$(cat "$1/$2.n" 2>/dev/null || echo 0)
    echo $((n + 1)) >"$1/$2.n"
    [ -e "$1/$2.stubborn" ] && trap '' TERM
    if [ -e "$1/$2.slow" ] || [ -e "$1/slow" ]; then sleep "$3"; fi
    : >"$1/$2.done"
    printf 'out %s\n' "$2"
    if [ -e "$1/$2.bad" ]; then
        printf 'bad %s\n' "$2"
        printf 'task %s is bad\n' "$2" >&2
        exit 5
    fi
    ;;
flaky)
    n=$(cat "$1/$2.n" 2>/dev/null || echo 0)
    n=$((n + 1))
    echo "$n" >"$1/$2.n"
    if [ "$n" -le "${2##*[!0-9]}" ]; then
        printf 'attempt %s of %s failed\n' "$n" "$2" >&2
        exit 1
    fi
    printf 'done %s attempt %s\n' "$2" "$n"
    ;;
env)
    cpus=$(grep Cpus_allowed_list /proc/self/status | cut -f2)
    printf 'task=%s slot=%s rank=%s omp=%s cpus=%s pwd=%s args=%s\n' \
        "${MPIMAP_TASK-unset}" "${MPIMAP_SLOT-unset}" "${MPIMAP_RANK-unset}" \
        "${OMP_NUM_THREADS-unset}" "$cpus" "$(pwd)" "$*"
    # Keep the slot busy a little, so that every slot gets tasks.
    sleep 0.2
    ;;
files)
    [ "$1" = silent ] && exit 0
    printf 'stdout of %s\n' "$1"
    printf 'stderr of %s\n' "$1" >&2
    [ "$1" = fail ] && exit 4
    ;;
stdin)
    cat
    printf 'done %s\n' "$1"
    ;;
*)
    echo "exec_task.sh: unknown mode '$mode'" >&2
    exit 99
    ;;
esac
exit 0
