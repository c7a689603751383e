# shellcheck shell=bash
# Shared helpers for the end-to-end tests (sourced by tests/e2e/test_*.sh).
#
# Environment (set by tests/CMakeLists.txt):
#   MPIMAP      path of the mpimap executable
#   MPIMAP_SRC  project source directory
#   MPIEXEC     mpirun
#   MPIMAP_MPI_FLAVOR  openmpi, mpich or other: the MPI the build used (from
#               its mpi.h); guessed from "$MPIEXEC --version" when unset
#   MPICC       that MPI's compiler wrapper (default mpicc)
# Optional:
#   E2E_TIMEOUT seconds allowed for one mpirun (default 120)
#   E2E_KEEP=1  keep the temporary directory for inspection
#   MPIMAP_QUICK=1  smaller matrices (scripts/test.sh sets it for the
#               sanitizer build)
#
# Every assertion prints "ok - DESC" or "FAIL - DESC" with expected vs actual;
# `finish` prints "N passed, M failed" and exits non-zero if anything failed.

set -euo pipefail

: "${MPIMAP:?MPIMAP must name the mpimap executable (run through ctest)}"
: "${MPIEXEC:=mpirun}"
: "${MPIMAP_SRC:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
ORACLE="$E2E_DIR/oracle.py"
E2E_TIMEOUT=${E2E_TIMEOUT:-120}
# shellcheck disable=SC2034 # used by the test scripts
QUICK=${MPIMAP_QUICK:-0}

# Open MPI refuses to run as root without these (NOTES.md); only set them for root.
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export LC_ALL=C

PASS=0
FAIL=0
SKIP=0
FAILED_NAMES=()

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mpimap-e2e.XXXXXX")
# Reachable by an unprivileged user (the unreadable-file case runs as nobody).
chmod 755 "$TMP"

# as_nobody DIR [START]: how to run a command as an unprivileged user, for inputs
# made unreadable with chmod 000 (root reads them anyway). Sets AS_NOBODY, a
# command prefix: as root, setpriv to nobody (65534) in DIR, with DIR as HOME
# and TMPDIR and without Open MPI's run-as-root variables; otherwise env
# with the same HOME and TMPDIR (chmod 000 already stops an ordinary user).
# Sets NB_MPIMAP, the mpimap nobody runs: a copy in DIR/bin (with its
# library) when the build tree is out of nobody's reach (a clone under
# /root). The command starts in START (default DIR), a directory nobody can
# enter: MPICH's mpiexec starts the ranks in its own working directory.
as_nobody() {
    local dir=$1 start=${2:-$1}
    mkdir -p "$dir"
    NB_MPIMAP="$MPIMAP"
    if [ "$(id -u)" != 0 ]; then
        AS_NOBODY=(env -C "$start" HOME="$dir" TMPDIR="$dir")
        return 0
    fi
    chown -R 65534:65534 "$dir"
    AS_NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups
        env -C "$start" -u OMPI_ALLOW_RUN_AS_ROOT -u OMPI_ALLOW_RUN_AS_ROOT_CONFIRM HOME="$dir" TMPDIR="$dir")
    if ! "${AS_NOBODY[@]}" test -x "$MPIMAP"; then
        mkdir -p "$dir/bin"
        cp "$MPIMAP" "$(dirname "$MPIMAP")"/libmpimap.so* "$dir/bin/"
        chown -R 65534:65534 "$dir/bin"
        AS_NOBODY+=(LD_LIBRARY_PATH="$dir/bin")
        NB_MPIMAP="$dir/bin/mpimap"
    fi
}

# Processes whose command line names $TMP were started by this test: after a
# hang or a timeout, end exactly those (by pid), never by name.
stray_pids() {
    pgrep -f -- "$TMP" 2>/dev/null | grep -vx "$$" || true
}

cleanup() {
    local rc=$?
    local p
    p=$(stray_pids)
    if [ -n "$p" ]; then
        echo "cleanup: ending stray processes started by this test: $p" >&2
        # shellcheck disable=SC2086
        kill -9 $p 2>/dev/null || true
    fi
    if [ "${E2E_KEEP:-0}" = 1 ]; then
        echo "kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The launcher's flavour, and what depends on it. MPIEXEC_OVERSUB: the
# options that let it start more ranks than there are cores (Open MPI's
# mpirun refuses without --oversubscribe; MPICH's Hydra needs nothing).
if [ -z "${MPIMAP_MPI_FLAVOR:-}" ]; then
    case "$("$MPIEXEC" --version 2>&1 || true)" in
    *HYDRA*) MPIMAP_MPI_FLAVOR=mpich ;;
    *"Open MPI"* | *OpenRTE*) MPIMAP_MPI_FLAVOR=openmpi ;;
    *) MPIMAP_MPI_FLAVOR=other ;;
    esac
fi
MPIEXEC_OVERSUB=()
if [ "$MPIMAP_MPI_FLAVOR" = openmpi ]; then MPIEXEC_OVERSUB=(--oversubscribe); fi

# Extra mpirun options (array), e.g. MPIRUN_EXTRA=(--bind-to socket).
MPIRUN_EXTRA=()

# run_np NP ARGS... : mpimap under mpirun with NP ranks, inside a timeout.
run_np() {
    local np=$1
    shift
    timeout -k 10 "$E2E_TIMEOUT" "$MPIEXEC" -np "$np" ${MPIEXEC_OVERSUB[@]+"${MPIEXEC_OVERSUB[@]}"} \
        ${MPIRUN_EXTRA[@]+"${MPIRUN_EXTRA[@]}"} "$MPIMAP" "$@"
}

# run_single ARGS... : mpimap without mpirun (singleton MPI init), inside a timeout.
run_single() {
    timeout -k 10 "$E2E_TIMEOUT" "$MPIMAP" "$@"
}

# run NP ARGS... : run_np with stdin from /dev/null; sets RC, OUT, ERR (files)
# and SECS (wall time). Never fails the script.
OUT="$TMP/last.out"
ERR="$TMP/last.err"
RC=0
SECS=0
# timed LAUNCHER ARGS... : LAUNCHER (run_np or run_single) with stdin from
# /dev/null; sets OUT, ERR, RC and SECS like run.
timed() {
    local t0 t1
    t0=$(date +%s%N)
    RC=0
    "$@" >"$OUT" 2>"$ERR" </dev/null || RC=$?
    t1=$(date +%s%N)
    SECS=$(((t1 - t0) / 1000000000))
}
run() { timed run_np "$@"; }
# run_one ARGS... : like run, one process without mpirun (singleton MPI):
# a tenth of mpirun's start-up time, for checks that are not about ranks.
run_one() { timed run_single "$@"; }

# mpirun_iof_crash: the last run died because Open MPI 4.1's mpirun itself
# crashed in its stdin forwarding (SIGSEGV in orte_iof_hnp_read_local_handler,
# open-mpi/ompi#7483, fixed only in Open MPI 5): a launcher bug, not ours.
mpirun_iof_crash() {
    [ "$RC" = 139 ] && grep -q "orte_iof_hnp_read_local_handler" "$ERR"
}

# run_in FILE NP ARGS... : like run, with stdin from FILE. A run that hit the
# mpirun crash above (and only that) is retried, twice at most.
run_in() {
    local in=$1 t0 t1 try
    shift
    for try in 1 2 3; do
        t0=$(date +%s%N)
        RC=0
        run_np "$@" >"$OUT" 2>"$ERR" <"$in" || RC=$?
        t1=$(date +%s%N)
        SECS=$(((t1 - t0) / 1000000000))
        mpirun_iof_crash || break
        echo "# note: mpirun crashed forwarding stdin (open-mpi/ompi#7483), try $try of 3"
    done
}

# run_cmd CMD... : any command, same capture as run.
run_cmd() {
    local t0 t1
    t0=$(date +%s%N)
    RC=0
    "$@" >"$OUT" 2>"$ERR" </dev/null || RC=$?
    t1=$(date +%s%N)
    SECS=$(((t1 - t0) / 1000000000))
}

# ---------------------------------------------------------------- assertions

ok() {
    PASS=$((PASS + 1))
    echo "ok - $1"
}

fail() {
    FAIL=$((FAIL + 1))
    FAILED_NAMES+=("$1")
    echo "FAIL - $1"
    shift
    local line
    for line in "$@"; do echo "    $line"; done
}

show_file() { # show_file LABEL FILE [MAXLINES]
    local n=${3:-15}
    echo "    --- $1 ($(wc -c <"$2") bytes, first $n lines):"
    head -n "$n" "$2" | cut -c1-300 | sed 's/^/    | /'
}

# The last run's stderr, for failure reports.
show_last() {
    show_file "stdout" "$OUT" 8
    show_file "stderr" "$ERR" 15
}

assert_eq() { # DESC EXPECTED ACTUAL
    if [ "$2" == "$3" ]; then
        ok "$1"
    else
        fail "$1" "expected: '$2'" "actual:   '$3'"
    fi
}

assert_rc() { # DESC EXPECTED_RC  (checks $RC of the last run)
    if [ "$RC" = "$2" ]; then
        ok "$1 (exit $RC)"
    else
        local why=""
        if [ "$RC" = 124 ] || [ "$RC" = 137 ]; then why=" (TIMED OUT after ${E2E_TIMEOUT}s)"; fi
        fail "$1" "expected exit code: $2" "actual exit code:   $RC$why"
        show_last
    fi
}

# assert_rc_forwarded DESC EXPECTED_RC : assert_rc for a launcher that
# forwarded a signal to the ranks. MPICH's Hydra (4.0) then reports the
# ranks' exit codes at random (0 for ranks that exited 3: seen with
# -print-all-exitcodes and strace): there the check is skipped, with the
# code it got; the callers check the ranks' own drain message as well.
assert_rc_forwarded() {
    if [ "$MPIMAP_MPI_FLAVOR" = mpich ]; then
        skip_check "$1 (got exit $RC)" "MPICH's mpiexec loses the ranks' exit codes after forwarding a signal"
    else
        assert_rc "$@"
    fi
}

# assert_same_file DESC EXPECTED_FILE ACTUAL_FILE
assert_same_file() {
    if cmp -s "$2" "$3"; then
        ok "$1"
    else
        fail "$1" "files differ: expected $2, actual $3"
        echo "    --- diff (expected vs actual), first 20 lines:"
        diff -a "$2" "$3" | head -n 20 | cut -c1-200 | sed 's/^/    | /' || true
        echo "    expected: $(wc -lc <"$2") (lines bytes), actual: $(wc -lc <"$3")"
    fi
}

# assert_contains DESC FILE FIXED_STRING
assert_contains() {
    if grep -qaF -- "$3" "$2"; then
        ok "$1"
    else
        fail "$1" "expected $(basename "$2") to contain: '$3'"
        show_file "$(basename "$2")" "$2" 15
    fi
}

# assert_not_contains DESC FILE FIXED_STRING
assert_not_contains() {
    if ! grep -qaF -- "$3" "$2"; then
        ok "$1"
    else
        fail "$1" "expected $(basename "$2") NOT to contain: '$3'"
        show_file "$(basename "$2")" "$2" 15
    fi
}

# assert_match DESC FILE EXTENDED_REGEX
assert_match() {
    if grep -qaE -- "$3" "$2"; then
        ok "$1"
    else
        fail "$1" "expected $(basename "$2") to match the regex: $3"
        show_file "$(basename "$2")" "$2" 15
    fi
}

# assert_count DESC FILE FIXED_STRING N : exactly N lines contain the string.
assert_count() {
    local n
    n=$(grep -caF -- "$3" "$2" || true)
    if [ "$n" = "$4" ]; then
        ok "$1"
    else
        fail "$1" "expected $4 line(s) containing '$3', found $n"
        show_file "$(basename "$2")" "$2" 20
    fi
}

assert_empty() { # DESC FILE
    if [ ! -s "$2" ]; then
        ok "$1"
    else
        fail "$1" "expected $(basename "$2") to be empty"
        show_file "$(basename "$2")" "$2" 10
    fi
}

assert_exists() { # DESC PATH
    if [ -e "$2" ]; then ok "$1"; else fail "$1" "expected $2 to exist"; fi
}

assert_absent() { # DESC PATH
    if [ ! -e "$2" ] && [ ! -L "$2" ]; then
        ok "$1"
    else
        fail "$1" "expected $2 not to exist" "found: $(ls -la "$2" 2>&1)"
    fi
}

# assert_no_tmp DESC DIR NAME : no leftover temporary .NAME.mpimap-* in DIR.
assert_no_tmp() {
    local left
    left=$(find "$2" -maxdepth 1 -name ".$3.mpimap-*" 2>/dev/null)
    if [ -z "$left" ]; then
        ok "$1"
    else
        fail "$1" "leftover temporary file(s): $left"
    fi
}

# assert_fast DESC MAXSECS : the last run ended within MAXSECS seconds.
assert_fast() {
    if [ "$SECS" -le "$2" ] && [ "$RC" != 124 ] && [ "$RC" != 137 ]; then
        ok "$1 (${SECS}s)"
    else
        fail "$1" "expected all ranks to exit within $2 s" "took ${SECS}s, exit $RC"
    fi
}

# reap_strays: waits up to 5 s for the processes this test started to end;
# prints those still running (pid and command line, one per line) and
# kills them. Prints nothing when none is left.
reap_strays() {
    local _ p=""
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        p=$(stray_pids)
        [ -z "$p" ] && return 0
        sleep 0.5
    done
    ps -o pid=,args= -p "$(echo "$p" | tr ' ' '\n' | paste -sd, -)" 2>&1 | cut -c1-150
    # shellcheck disable=SC2086
    kill -9 $p 2>/dev/null || true
}

# assert_no_strays DESC : no process started by this test is still running.
assert_no_strays() {
    local left
    left=$(reap_strays)
    if [ -z "$left" ]; then
        ok "$1"
    else
        fail "$1" "processes still running 5 s after mpirun returned:" "$left"
    fi
}

# oracle ARGS... : the independent Python reference (never mpimap itself).
oracle() { "$PY" "$ORACLE" "$@"; }

sha() { sha256sum "$@" | awk '{print $1}'; }

section() { echo "# $*"; }

# skip_check DESC REASON : a check that does not apply here (another MPI, a
# missing tool): printed and counted, never silent.
skip_check() {
    SKIP=$((SKIP + 1))
    echo "skip - $1 ($2)"
}

# skip_test REASON : the whole script does not apply here; exits 77, which
# ctest reports as "Skipped" (SKIP_RETURN_CODE in tests/CMakeLists.txt).
skip_test() {
    echo "SKIPPED: $(basename "$0"): $*"
    exit 77
}

# need_openmpi WHAT : skip_test unless the launcher is Open MPI's mpirun
# (tests of its options, binding policy, rsh/PMIx launch or signal handling).
need_openmpi() {
    [ "$MPIMAP_MPI_FLAVOR" = openmpi ] ||
        skip_test "$1 is Open MPI behaviour; this build uses $MPIMAP_MPI_FLAVOR ($MPIEXEC)"
}

finish() {
    echo
    if [ "$FAIL" -gt 0 ]; then
        echo "failed checks:"
        local n
        for n in "${FAILED_NAMES[@]}"; do echo "  - $n"; done
    fi
    if [ "$SKIP" -gt 0 ]; then
        echo "$PASS passed, $FAIL failed, $SKIP skipped"
    else
        echo "$PASS passed, $FAIL failed"
    fi
    [ "$FAIL" -eq 0 ]
}

if [ ! -x "$PY" ]; then
    echo "error: $PY not found (the oracles need Debian's python3)" >&2
    exit 1
fi
if [ ! -x "$MPIMAP" ]; then
    echo "error: MPIMAP=$MPIMAP is not executable" >&2
    exit 1
fi
