#!/usr/bin/env bash
# End-to-end: --report-bindings tells the truth. While a run is still going,
# every pool thread's affinity is read from /proc/PID/task/TID/status and
# compared with what the report says: the affinity each thread read back
# itself (sched_getaffinity), which must also agree with the plan (one core
# per thread with --bind core, the rank's whole cpuset with --bind none).
source "$(dirname "$0")/lib.sh"

D="$TMP/data"
mkdir -p "$D"
for _ in $(seq 1 1500); do echo 3000; done >"$D/sleep.txt" # about 2-4 s
ARGS=(-c 64 test -m sleep "$D/sleep.txt")

# check_case LABEL NPROCS MPIRUN_OPTS... -- MPIMAP_OPTS...
check_case() {
    local label=$1 np=$2
    shift 2
    local mpirun_opts=() _
    while [ "$1" != -- ]; do
        mpirun_opts+=("$1")
        shift
    done
    shift
    timeout -k 5 60 "$MPIEXEC" -np "$np" ${MPIEXEC_OVERSUB[@]+"${MPIEXEC_OVERSUB[@]}"} ${mpirun_opts[@]+"${mpirun_opts[@]}"} \
        "$MPIMAP" --report-bindings -q "$@" "${ARGS[@]}" >"$OUT" 2>"$ERR" </dev/null &
    local pid=$!
    for _ in $(seq 1 100); do
        if [ "$(grep -c '^mpimap: bindings: ' "$ERR" 2>/dev/null || true)" -ge "$np" ]; then break; fi
        sleep 0.1
    done
    # Compare while the ranks are alive.
    "$PY" - "$ERR" "$np" >"$TMP/cmp.out" 2>&1 <<'PYEOF' || true
import re, sys
err, np = sys.argv[1], int(sys.argv[2])
lines = [l for l in open(err) if l.startswith('mpimap: bindings: ')]
problems, checked = [], 0
if len(lines) != np:
    problems.append('%d bindings lines for %d ranks' % (len(lines), np))
def pus(text):
    s = set()
    for part in text.split(','):
        a, _, b = part.partition('-')
        s.update(range(int(a), int(b or a) + 1))
    return s
for l in lines:
    given = pus(re.search(r'cpuset given (\d+(?:[-,]\d+)*)', l).group(1))
    pid = re.search(r'pid (\d+)', l).group(1)
    planned = dict((int(t), pus(p)) for t, p in re.findall(r'thread (\d+) -> core L#\d+ \(PU (\d+(?:[-,]\d+)*)\)', l))
    unpinned = 'not pinned' in l
    for t, tid, aff in re.findall(r'thread (\d+) \(tid (\d+)\) PUs (\d+(?:[-,]\d+)*)', l):
        t, aff = int(t), pus(aff)
        try:
            status = open('/proc/%s/task/%s/status' % (pid, tid)).read()
        except OSError as e:
            problems.append('rank line %r: thread %d: %s' % (l[:40], t, e))
            continue
        real = pus(re.search(r'Cpus_allowed_list:\s*(\S+)', status).group(1))
        checked += 1
        if real != aff:
            problems.append('pid %s thread %d: reported %s, /proc says %s' % (pid, t, sorted(aff), sorted(real)))
        want = given if unpinned else planned.get(t)
        if want is None or aff != want:
            problems.append('pid %s thread %d: affinity %s, plan %s' % (pid, t, sorted(aff), want and sorted(want)))
print('checked %d threads' % checked)
for p in problems:
    print('PROBLEM', p)
PYEOF
    local rc=0
    wait "$pid" || rc=$?
    if ! grep -q PROBLEM "$TMP/cmp.out" && grep -q "checked [1-9]" "$TMP/cmp.out"; then
        ok "$label: $(cat "$TMP/cmp.out")"
    else
        fail "$label" "reported affinity = /proc = plan" "$(cat "$TMP/cmp.out")"
        show_file stderr "$ERR"
    fi
    assert_eq "$label: run succeeded" 0 "$rc"
    assert_same_file "$label: output intact" "$D/sleep.txt" "$OUT"
}

NCPU=$(nproc)
check_case "mpirun -np 2 (a core per rank), --threads 2" 2 -- -t 2
check_case "--bind none: the rank's whole cpuset" 1 --bind-to none -- -t 2 --bind none
if [ "$NCPU" -ge 2 ]; then
    check_case "one rank, --bind-to none, a core per thread" 1 --bind-to none -- -t "$NCPU"
    check_case "two ranks sharing the machine (--bind-to none)" 2 --bind-to none -- -t 1
else
    echo "SKIP: one core only: no per-thread core placement to check"
fi

assert_no_strays "no stray processes"
finish
