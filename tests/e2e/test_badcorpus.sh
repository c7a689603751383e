#!/bin/bash
# End-to-end: the checked-in bad-input corpus, tests/bad-inputs/ (README.md
# there; the cases are in tests/bad-inputs/cases, the malformed files in
# tests/bad-inputs/files/). Every case runs under mpirun -np 1 and -np 3
# (--oversubscribe under Open MPI; -np 3 only with MPIMAP_QUICK=1; Open MPI
# or MPICH, as lib.sh finds), and each run must
#   * end within BADCORPUS_LIMIT seconds (default 10), every rank by itself:
#     a run still going is killed (timeout -k 2) and reported as a TIMEOUT,
#     then run once more (see report() below): a second timeout fails;
#   * end with the case's exit status on EVERY rank (see "Ranks" below);
#   * print each message fragment on standard error, the first one on
#     exactly one line (printed once, by rank 0); out:FRAGMENTs are looked
#     for in the files left in the output directory;
#   * print nothing on standard output;
#   * leave nothing in the output directory {OD} but NAME.incomplete files
#     and empty directories (OUTPUT "none"), and never a temporary
#     .NAME.mpimap-* file (OUTPUT "report" allows the final output: the
#     kernels whose report is the result even when the run fails);
#   * leave the input directory {IN}, a fresh copy of the corpus files, as it
#     was: the same names, bytes, modes and mtimes, directories included
#     (nothing created there, even if removed again);
#   * leave no process behind (lib.sh's stray_pids).
# At the end the checked-in corpus must be unchanged.
#
# Ranks. mpirun aborts a job as soon as one rank exits non-zero, then spends
# 2 s (odls_base_sigkill_timeout, 1 s, twice) killing the others, which would
# also hide a rank that never exits on its own. So each rank runs as
# RUN/bin/mpimap, a wrapper that records the rank's exit status in
# RUN/rc/rank.N (N from OMPI_COMM_WORLD_RANK, or PMI_RANK under MPICH) and
# exits 0: mpirun ends as soon as the last rank does, and a
# rank that did not exit by itself has no status file.
#
# Runs go BADCORPUS_JOBS at a time (default 2): a run mostly waits (process
# start-up, MPI wire-up), so two overlap well on two cores. Each run has its
# own directory RUN = $TMP/runs/N: bin/, in/ ({IN}), od/ ({OD}), rc/, its
# standard output and error, and its verdict, reported in case order.
#
# Environment (besides lib.sh's): BADCORPUS_ONLY=REGEX runs only the cases
# whose id matches; BADCORPUS_NPS the rank counts (default "1 3"; "3" with
# MPIMAP_QUICK=1); BADCORPUS_LIMIT the seconds allowed for one run (default
# 10); BADCORPUS_JOBS runs at a time (default 2); BADCORPUS_MPIRUN_EXTRA
# mpirun's extra options (default "--mca pml ob1").
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

CORPUS="$MPIMAP_SRC/tests/bad-inputs"
CASES_FILE="$CORPUS/cases"
FILES="$CORPUS/files"
LIMIT=${BADCORPUS_LIMIT:-10}
# MPIMAP_QUICK=1 (the sanitizer build in scripts/test.sh): -np 3 only, every
# case still; the normal build runs -np 1 as well.
if [ "$QUICK" = 1 ]; then NPS=${BADCORPUS_NPS:-3}; else NPS=${BADCORPUS_NPS:-"1 3"}; fi
ONLY=${BADCORPUS_ONLY:-}
JOBS=${BADCORPUS_JOBS:-2}
MIN_CASES=65
MIN_FILE_CASES=35
KERNELS="wordcount fib primes test image kmeans hash fetch exec"
# The ob1 messaging layer instead of UCX: these runs are about input
# handling, not transports, and UCX's start-up costs each rank 0.2 s or more
# here (README.md, "Performance notes"). BADCORPUS_MPIRUN_EXTRA='' keeps
# Open MPI's default.
# (MPICH's mpiexec takes no --mca: its default there is no extra option.)
if [ "$MPIMAP_MPI_FLAVOR" = openmpi ]; then DEFAULT_EXTRA="--mca pml ob1"; else DEFAULT_EXTRA=""; fi
read -r -a MPIRUN_EXTRA <<<"${BADCORPUS_MPIRUN_EXTRA-$DEFAULT_EXTRA}"
T_START=$(date +%s%N)

# ------------------------------------------------------------- the corpus

section "corpus: $CORPUS"
corpus_state() {
    (cd "$CORPUS" && find . -printf '%p %y %s %T@ %m\n' | sort &&
        find . -type f -print0 | sort -z | xargs -0 sha256sum)
}
CORPUS0=$(corpus_state)

# Corpus limits: every file under 20 KB, all of them under 300 KB.
big=$(find "$FILES" -type f -size +20479c -printf '%P (%s bytes) ')
total=$(find "$FILES" -type f -printf '%s\n' | awk '{t += $1} END {print t + 0}')
if [ -z "$big" ] && [ "$total" -lt 307200 ]; then
    ok "corpus files: $(find "$FILES" -type f | wc -l) files, $total bytes, each under 20 KB"
else
    fail "corpus files: each under 20 KB, all under 300 KB" "too big: ${big:-none}" "total: $total bytes"
fi

# The manifest, checked and turned into one record per case:
# ID RS KIND RS EXIT RS OUTPUT RS FRAGMENTS (US-separated) RS ARGUMENTS (US-separated)
RS=$'\x1e'
US=$'\x1f'
PARSED="$TMP/cases.parsed"
if ! "$PY" - "$CASES_FILE" >"$PARSED" <<'PYEOF'; then
import re, shlex, sys
path = sys.argv[1]
seen, bad = set(), []
for no, line in enumerate(open(path, encoding="utf-8"), 1):
    if not line.strip() or line.lstrip().startswith("#"):
        continue
    where = "%s:%d" % (path, no)
    try:
        w = shlex.split(line, comments=False, posix=True)
    except ValueError as e:
        bad.append("%s: %s" % (where, e)); continue
    if "--" not in w or w.index("--") < 5:
        bad.append("%s: expected ID KIND EXIT OUTPUT FRAGMENT... -- ARGS..." % where); continue
    i = w.index("--")
    cid, kind, code, output, frags, args = w[0], w[1], w[2], w[3], w[4:i], w[i + 1:]
    why = []
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", cid): why.append("bad id %r" % cid)
    if cid in seen: why.append("duplicate id %r" % cid)
    if kind not in ("file", "args"): why.append("KIND %r is not file or args" % kind)
    if code not in ("1", "2"): why.append("EXIT %r is not 1 or 2" % code)
    if output not in ("none", "report"): why.append("OUTPUT %r is not none or report" % output)
    if frags[0].startswith("out:"): why.append("the first fragment must be on standard error")
    for x in frags + args:
        if "\x1e" in x or "\x1f" in x or "\n" in x:
            why.append("control character in %r" % x)
        for ph in re.findall(r"\{[^}]*\}", x):
            if ph not in ("{IN}", "{OD}"): why.append("unknown placeholder %s" % ph)
    if why:
        bad.append("%s: %s" % (where, "; ".join(why))); continue
    seen.add(cid)
    sys.stdout.write("\x1e".join([cid, kind, code, output, "\x1f".join(frags), "\x1f".join(args)]) + "\n")
if bad:
    sys.stderr.write("\n".join(bad) + "\n")
    sys.exit(1)
PYEOF
    fail "manifest $CASES_FILE is well formed" "see the errors above"
    finish
fi
NCASES=$(wc -l <"$PARSED")
NFILE=$(cut -d "$RS" -f2 "$PARSED" | grep -cx file || true)
if [ "$NCASES" -ge "$MIN_CASES" ] && [ "$NFILE" -ge "$MIN_FILE_CASES" ]; then
    ok "manifest: $NCASES cases ($NFILE malformed files, $((NCASES - NFILE)) argument sets)"
else
    fail "manifest: at least $MIN_CASES cases, $MIN_FILE_CASES of them malformed files" \
        "found $NCASES cases, $NFILE of them files"
fi
missing_kernels=""
for k in $KERNELS; do
    cut -d "$RS" -f6 "$PARSED" | tr "$US" '\n' | grep -x "$k" >/dev/null || missing_kernels+=" $k"
done
assert_eq "manifest: every kernel has cases" "" "$missing_kernels"

# ------------------------------------------------------------- the runs

tree_state() { # DIR: names, types, sizes, mtimes, modes and contents
    (cd "$1" && find . -printf '%p %y %s %T@ %m\n' -type f -exec sha256sum {} + | sort)
}
# Every {IN} is a copy made with cp -a (names, bytes, modes, mtimes kept):
# after its run it must still look like this.
FILES_STATE=$(tree_state "$FILES")

# subst VAR STRING : sets VAR to STRING with the placeholders replaced.
subst() {
    local s=${2//\{IN\}/$IN}
    printf -v "$1" '%s' "${s//\{OD\}/$OD}"
}

# run_case RUN NP ID EXIT OUTPUT FRAGS ARGS : one run of one case, judged;
# the verdict goes to RUN/status (ok, FAIL, or TIMEOUT when the time limit
# was hit), RUN/title, RUN/problems (one per line) and RUN/detail. Run in a
# subshell: TMP, OUT and ERR are this run's own, so that lib.sh's stray_pids,
# timed and show_last see only this run while another one goes on.
run_case() {
    local rd=$1 np=$2 id=$3 want=$4 output=$5 fragstr=$6 argstr=$7
    local frags=() args=() real_args=() problems=() a f t0 t1 ms secs in1
    TMP=$rd
    OUT="$rd/stdout"
    ERR="$rd/stderr"
    IN="$rd/in"
    OD="$rd/od"
    local bin="$rd/bin" rcdir="$rd/rc"
    mkdir -p "$OD" "$rcdir" "$bin"
    cp -a "$FILES" "$IN"
    # Through a link under RUN, so that every rank's command line names RUN
    # (stray_pids) even when the arguments do not. The wrapper is run by sh.
    ln -s "$MPIMAP" "$bin/mpimap-real"
    printf '%s\n' '# One rank of a bad-corpus run: records its exit status, exits 0.' \
        "\"$bin/mpimap-real\" \"\$@\"" \
        "echo \"\$?\" >\"$rcdir/rank.\${OMPI_COMM_WORLD_RANK:-\${PMI_RANK:-0}}\"" \
        'exit 0' >"$bin/mpimap"
    IFS="$US" read -r -a frags <<<"$fragstr"
    IFS="$US" read -r -a args <<<"$argstr"
    for a in "${args[@]}"; do
        subst f "$a"
        real_args+=("$f")
    done

    cd "$IN"
    t0=$EPOCHREALTIME
    timed timeout -k 2 "$LIMIT" "$MPIEXEC" -np "$np" ${MPIEXEC_OVERSUB[@]+"${MPIEXEC_OVERSUB[@]}"} \
        ${MPIRUN_EXTRA[@]+"${MPIRUN_EXTRA[@]}"} /bin/sh "$bin/mpimap" "${real_args[@]}"
    t1=$EPOCHREALTIME
    cd "$rd"
    ms=$(((${t1/./} - ${t0/./}) / 1000))
    echo "$ms" >"$rd/ms"
    printf -v secs '%d.%02d' $((ms / 1000)) $((ms % 1000 / 10))

    # Ending: mpirun within the limit, every rank by itself, with the code.
    local timedout=0
    if [ "$RC" = 124 ] || [ "$RC" = 137 ]; then
        timedout=1
        problems+=("TIMEOUT: the run was still going after ${LIMIT}s and was killed (mpirun exit $RC)")
    elif [ "$RC" != 0 ]; then
        problems+=("mpirun exited $RC: a rank died (the wrapper of every rank exits 0)")
    fi
    local r code codes=""
    for ((r = 0; r < np; r++)); do
        if [ -s "$rcdir/rank.$r" ]; then
            read -r code <"$rcdir/rank.$r"
            codes+=" $r:$code"
            [ "$code" = "$want" ] || problems+=("rank $r exited $code, expected $want")
        else
            problems+=("rank $r did not exit by itself (no exit status recorded)")
        fi
    done

    # Messages.
    local first=1 n cnt
    for f in "${frags[@]}"; do
        subst f "$f"
        if [[ $f == out:* ]]; then
            n=${f#out:}
            if ! find "$OD" -type f -exec cat {} + 2>/dev/null | grep -aF -- "$n" >/dev/null; then
                problems+=("the output left in {OD} does not contain '$n'")
            fi
            continue
        fi
        if [[ $f == re:* ]]; then
            cnt=$(grep -caE -- "${f#re:}" "$ERR" || true)
            [ "$cnt" -gt 0 ] || problems+=("standard error does not match /${f#re:}/")
        else
            cnt=$(grep -caF -- "$f" "$ERR" || true)
            [ "$cnt" -gt 0 ] || problems+=("standard error does not say '$f'")
        fi
        if [ "$first" = 1 ] && [ "$cnt" -gt 1 ]; then
            problems+=("printed $cnt times, expected once: '$f'")
        fi
        first=0
    done
    if [ -s "$OUT" ]; then
        problems+=("standard output is not empty: $(head -c 200 "$OUT" | tr '\n' ' ')")
    fi

    # Outputs.
    local left
    left=$(find "$OD" -name '.*.mpimap-*' -printf '%P ')
    [ -z "$left" ] || problems+=("temporary file(s) left in the output directory: $left")
    if [ "$output" = none ]; then
        left=$(find "$OD" -mindepth 1 ! -type d ! -name '*.incomplete' -printf '%P ')
        [ -z "$left" ] || problems+=("written under a final output name: $left")
    fi

    # Inputs.
    in1=$(tree_state "$IN")
    if [ "$in1" != "$FILES_STATE" ]; then
        problems+=("INPUTS CHANGED (< as copied, > after the run): $(diff <(echo "$FILES_STATE") <(echo "$in1") | grep '^[<>]' | head -n 4 | tr '\n' ' ' || true)")
    fi

    # Processes.
    local strays
    strays=$(reap_strays)
    [ -z "$strays" ] || problems+=("processes still running 5 s after mpirun returned: $(echo "$strays" | tr '\n' ';')")

    if [ ${#problems[@]} -eq 0 ]; then
        f=$(grep -a -m 1 '^mpimap' "$ERR" || true)
        echo "$id (np=$np): exit $want on every rank in ${secs}s: ${f:0:140}" >"$rd/title"
        echo ok >"$rd/status"
    else
        echo "$id (np=$np) [expected exit $want; ranks exited:${codes:- none}; ${secs}s]" >"$rd/title"
        printf '%s\n' "${problems[@]}" >"$rd/problems"
        {
            echo "    command: (cd {IN} &&) mpirun -np $np mpimap ${args[*]}"
            echo "    {IN} = $IN, {OD} = $OD"
            show_last
        } >"$rd/detail"
        if [ "$timedout" = 1 ]; then echo TIMEOUT; else echo FAIL; fi >"$rd/status"
    fi
}

# verdict RUN : reads RUN's verdict into STATUS, TITLE, PROBLEMS (array).
verdict() {
    STATUS="" TITLE="" PROBLEMS=()
    if [ -s "$1/status" ]; then read -r STATUS <"$1/status"; fi
    if [ -s "$1/title" ]; then read -r TITLE <"$1/title"; fi
    if [ -s "$1/problems" ]; then mapfile -t PROBLEMS <"$1/problems"; fi
}

# report N : prints the verdict of run N through lib.sh's ok/fail. A run
# that hit the time limit is run once more before the verdict: on a loaded
# machine (ctest -j, other jobs) a run that takes 0.3-1 s alone has been
# seen to take 10 s. A second timeout, or any other problem, fails the case;
# a second run that passes passes it, with the first run's timeout printed.
NRUNS=0
report() {
    local rd="$TMP/runs/$1" name ms="" np rec=()
    NRUNS=$((NRUNS + 1))
    read -r name <"$rd/name"
    if [ -s "$rd/ms" ]; then read -r ms <"$rd/ms"; fi
    if [ -n "$ms" ]; then echo "$ms $name" >>"$TMP/times"; fi
    verdict "$rd"
    if [ "$STATUS" = TIMEOUT ]; then
        local first="$TITLE" firstp=("${PROBLEMS[@]}")
        echo "# $name hit the ${LIMIT}s limit: running it once more"
        IFS="$RS" read -r -a rec <"$rd/case"
        np=${rec[0]}
        (run_case "$rd/again" "$np" "${rec[@]:1}") 2>"$rd/again.err" || true
        verdict "$rd/again"
        if [ "$STATUS" = ok ]; then
            ok "$TITLE (on a second run; the first: ${firstp[0]})"
        else
            fail "$first" "${firstp[@]}" "... and run once more: $TITLE" "${PROBLEMS[@]}"
            [ -s "$rd/again/detail" ] && cat "$rd/again/detail"
        fi
    else
        case $STATUS in
        ok) ok "$TITLE" ;;
        FAIL)
            fail "$TITLE" "${PROBLEMS[@]}"
            cat "$rd/detail"
            ;;
        *)
            fail "$name: the runner itself failed (no verdict)"
            if [ -s "$rd/runner.err" ]; then sed 's/^/    | /' "$rd/runner.err"; fi
            ;;
        esac
    fi
    if [ "${E2E_KEEP:-0}" != 1 ]; then rm -rf "$rd"; fi
}

section "cases at -np $NPS (limit ${LIMIT}s per run, $JOBS runs at a time)"
: >"$TMP/times"
mkdir -p "$TMP/runs"
N=0       # runs started
NEXT=1    # next run to report, in order
RUNNING=0 # runs started and not waited for
while IFS="$RS" read -r id kind want output fragstr argstr; do
    if [ -n "$ONLY" ] && ! [[ $id =~ $ONLY ]]; then continue; fi
    : "$kind" # counted above
    for np in $NPS; do
        N=$((N + 1))
        mkdir -p "$TMP/runs/$N"
        echo "$id np=$np" >"$TMP/runs/$N/name"
        printf '%s\n' "$np$RS$id$RS$want$RS$output$RS$fragstr$RS$argstr" >"$TMP/runs/$N/case"
        (run_case "$TMP/runs/$N" "$np" "$id" "$want" "$output" "$fragstr" "$argstr") \
            2>"$TMP/runs/$N/runner.err" &
        RUNNING=$((RUNNING + 1))
        if [ "$RUNNING" -ge "$JOBS" ]; then
            wait -n || true
            RUNNING=$((RUNNING - 1))
        fi
        while [ -s "$TMP/runs/$NEXT/status" ]; do
            report "$NEXT"
            NEXT=$((NEXT + 1))
        done
    done
done <"$PARSED"
wait
while [ "$NEXT" -le "$N" ]; do
    report "$NEXT"
    NEXT=$((NEXT + 1))
done

section "afterwards"
CORPUS1=$(corpus_state)
if [ "$CORPUS1" == "$CORPUS0" ]; then
    ok "the checked-in corpus is unchanged"
else
    mapfile -t problems < <(diff <(echo "$CORPUS0") <(echo "$CORPUS1") | grep '^[<>]' | head -n 10)
    fail "the checked-in corpus is unchanged (< before, > after)" "${problems[@]}"
fi
T_END=$(date +%s%N)
echo "# $NRUNS runs in $(((T_END - T_START) / 1000000000))s; the slowest:"
sort -rn "$TMP/times" | awk 'NR <= 5 {printf "#   %5.2fs %s %s\n", $1 / 1000, $2, $3}'
finish
