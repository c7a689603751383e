#!/usr/bin/env bash
# End-to-end: the exec kernel (run a program over many items), against its
# contract (issue 8). The task program is tests/e2e/exec_task.sh (run with
# sh, so that it needs no mode bits); every check looks at what the tasks
# themselves saw or did (marker and counter files), not only at what mpimap
# says:
#   * 1,000 items, --slots-per-rank 2, -np 2: each item's side effect exactly
#     once, the rank and slot each task saw = the joblog's, output and task
#     stderr in item order, a joblog of 1,000 lines + header in task order;
#     the same bytes with -np 1 and -np 3 and other slot counts (on the
#     first 250 items);
#   * {} {.} {/} {//} {/.} {#} {%} anywhere in a word, the item appended when
#     there is no replacement string, {} as the command; items with spaces,
#     quotes, $(...), backquotes, backslashes, a leading -, globs, ;|&>,
#     newlines and tabs reach the program as exactly one argument, unchanged
#     (no shell), from :::, --items FILE (CRLF, empty lines, no final
#     newline), --items -, standard input, -0 / --null; the joblog's Command
#     column reads back (shell quoting) as the argv;
#   * failing tasks: exit 3, SIGKILL, a program that does not exist: joblog
#     Exitval / Signal / Status, messages on stderr in task order, the run
#     goes on, exit 1, the summary line, -o still written, -q;
#   * --timeout: a sleep, a tree with background children, an orphaned
#     grandchild, a task ignoring SIGTERM (--kill-after), a leader dying while
#     a child ignores SIGTERM: no process of any task's group survives;
#     decimals; the default --kill-after;
#   * --retries: Attempts 2 / 3 then ok (per-item counters), N+1 when it
#     always fails, also when the program cannot start (ENOENT, EACCES);
#   * --journal with failed and timed-out tasks: --resume runs nothing,
#     --resume-failed exactly the failed ones, then exit 0; the fingerprint
#     (command, items) refused when changed, not for --timeout / --slots...;
#     SIGTERM to a run (one task ignoring SIGTERM: --kill-after): exit 3, no
#     task left, the joblog as FILE.incomplete, --resume completes it running
#     only the tasks that had not finished;
#   * --cores-per-task: each slot its own core (Cpus_allowed_list in the
#     task), 0 = the rank's whole set, OMP_NUM_THREADS, default slots;
#     MPIMAP_TASK / SLOT / RANK; launcher variables removed unless
#     --keep-mpi-env; the working directory;
#   * --output-mode files --results DIR: NNNNNN.out / .err, no temporary
#     files, -o refused;
#   * usage errors (exit 2), an empty item list (also a bare :::), tasks'
#     stdin is /dev/null.
# MPIMAP_QUICK=1: fewer -np / slot combinations for the 1,000 items.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

TASK="$E2E_DIR/exec_task.sh"
D="$TMP/data"
B="$TMP/bin"
WD="$TMP/wd" # the working directory of every run: stray files land in $TMP
mkdir -p "$D" "$B" "$WD"
cd "$WD"
# OMP_NUM_THREADS is only set for the tasks when mpimap's environment has none.
unset OMP_NUM_THREADS
# Distinctive sleep durations, unique to this run of the test: a process whose
# command line holds one of them is a task's (pgrep -f).
MARK="271.828$$"
SMARK="314.159$$"
HOSTS="$(hostname) $(hostname -s 2>/dev/null || true)"
NCPU=$(nproc)

# ------------------------------------------------------------ helpers

# erun NP ARGS... / erun1 ARGS...: run / run_one, also recording the wall
# clock (T0, T1: epoch seconds) for the joblog's Starttime checks.
erun() {
    T0=$(date +%s.%N)
    run "$@"
    T1=$(date +%s.%N)
}
erun1() {
    T0=$(date +%s.%N)
    run_one "$@"
    T1=$(date +%s.%N)
}
# run_one_in FILE ARGS...: run_one with standard input from FILE.
run_one_in() {
    local in=$1 t0 t1
    shift
    t0=$(date +%s%N)
    RC=0
    run_single "$@" >"$OUT" 2>"$ERR" <"$in" || RC=$?
    t1=$(date +%s%N)
    SECS=$(((t1 - t0) / 1000000000))
}

# The joblog reader (independent of mpimap).
JLPY="$TMP/joblog.py"
cat >"$JLPY" <<'PYEOF'
import re, shlex, sys
HDR = ['Seq', 'Host', 'Rank', 'Slot', 'Starttime', 'JobRuntime', 'Exitval',
       'Signal', 'Attempts', 'Status', 'Command']

def load(path):
    try:
        data = open(path, 'rb').read().decode('utf-8', 'surrogateescape')
    except OSError as e:
        return [], [str(e)]
    probs = []
    if not data.endswith('\n'):
        probs.append('does not end with a newline')
    lines = data.split('\n')
    if lines and lines[-1] == '':
        lines.pop()
    if not lines or lines[0] != '\t'.join(HDR):
        probs.append('header is %r' % (lines[0][:200] if lines else None))
    return [l.split('\t', 10) for l in lines[1:]], probs

def col(row, name):
    i = HDR.index(name)
    return row[i] if i < len(row) else '?'

cmd = sys.argv[1]
if cmd == 'check':
    # check FILE N NP SLOTS T0 T1 HOSTS: the format of every line.
    path, n, np_, slots = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    t0, t1, hosts = float(sys.argv[6]), float(sys.argv[7]), sys.argv[8].split()
    rows, probs = load(path)
    if len(rows) != n:
        probs.append('%d task lines, expected %d' % (len(rows), n))
    for i, r in enumerate(rows, 1):
        w = 'line %d %r' % (i + 1, '\t'.join(r)[:150])
        if len(r) != 11:
            probs.append('%s: %d fields, expected 11' % (w, len(r)))
            continue
        seq, host, rank, slot, st, rt, ev, sig, att, status, command = r
        if seq != str(i):
            probs.append('%s: Seq %r, expected %d' % (w, seq, i))
        if host not in hosts:
            probs.append('%s: Host %r, expected one of %s' % (w, host, hosts))
        if not rank.isdigit() or int(rank) >= np_:
            probs.append('%s: Rank %r not in 0..%d' % (w, rank, np_ - 1))
        if not slot.isdigit() or not 1 <= int(slot) <= slots:
            probs.append('%s: Slot %r not in 1..%d' % (w, slot, slots))
        if not re.fullmatch(r'\d+\.\d{3}', st) or not t0 - 1 <= float(st) <= t1 + 1:
            probs.append('%s: Starttime %r not epoch seconds.mmm within the run (%.3f..%.3f)' % (w, st, t0, t1))
        if not re.fullmatch(r'\d+\.\d{3}', rt) or float(rt) > t1 - t0 + 1:
            probs.append('%s: JobRuntime %r not seconds.mmm within the run' % (w, rt))
        if not re.fullmatch(r'-?\d+', ev) or not sig.isdigit() or not att.isdigit() or int(att) < 1:
            probs.append('%s: Exitval/Signal/Attempts %r %r %r not numbers' % (w, ev, sig, att))
            continue
        ev, sig = int(ev), int(sig)
        good = {'ok': ev == 0 and sig == 0,
                'failed': (ev > 0 and sig == 0) or (ev == -1 and sig > 0),
                'timeout': sig in (9, 15) or ev > 0,
                'error': ev == -1 and sig == 0}.get(status)
        if good is None:
            probs.append('%s: Status %r' % (w, status))
        elif not good:
            probs.append('%s: Status %s with Exitval %d Signal %d' % (w, status, ev, sig))
        if not command:
            probs.append('%s: empty Command' % w)
    print('\n'.join(probs[:12]) if probs else 'OK')
elif cmd == 'row':
    # row FILE SEQ COLUMN...: those columns of task SEQ.
    rows, _ = load(sys.argv[2])
    seq = int(sys.argv[3])
    if seq > len(rows):
        print('no line for task %d' % seq)
    else:
        print(' '.join(col(rows[seq - 1], c) for c in sys.argv[4:]))
elif cmd == 'col':
    # col FILE COLUMN: that column, one task a line.
    rows, _ = load(sys.argv[2])
    for r in rows:
        print(col(r, sys.argv[3]))
elif cmd == 'argv':
    # argv FILE ITEMS0 WORD...: task i's Command, read back as a shell would,
    # is WORD... followed by item i (ITEMS0: the items, NUL-separated).
    rows, probs = load(sys.argv[2])
    items = open(sys.argv[3], 'rb').read().decode('utf-8', 'surrogateescape').split('\0')
    if items and items[-1] == '':
        items.pop()
    if len(rows) != len(items):
        probs.append('%d lines for %d items' % (len(rows), len(items)))
    for r, item in zip(rows, items):
        c = col(r, 'Command')
        try:
            got = shlex.split(c)
        except ValueError as e:
            probs.append('Command %r: %s' % (c, e))
            continue
        if got != sys.argv[4:] + [item]:
            probs.append('Command %r reads back as %r, expected %r' % (c, got, sys.argv[4:] + [item]))
    print('\n'.join(probs[:8]) if probs else 'OK')
PYEOF
jl() { "$PY" "$JLPY" "$@"; }
# jlcheck DESC FILE N NP SLOTS: the joblog's format (after erun/erun1).
jlcheck() {
    local r
    r=$(jl check "$2" "$3" "$4" "$5" "$T0" "$T1" "$HOSTS" 2>&1 || true)
    assert_eq "$1" OK "$r"
}
# jlrow FILE SEQ: "Exitval Signal Attempts Status" of task SEQ.
jlrow() { jl row "$1" "$2" Exitval Signal Attempts Status 2>&1 || true; }

# counters DIR ITEM...: "ITEM=N ..." from DIR/ITEM.n (0 when missing).
counters() {
    local d=$1 it s=""
    shift
    for it in "$@"; do s+="$it=$(cat "$d/$it.n" 2>/dev/null || echo 0) "; done
    echo "${s% }"
}

# assert_no_procs DESC PATTERN: no process's command line matches PATTERN
# (allowing 2 s for processes that were just killed to disappear); any found
# are killed, by pid.
assert_no_procs() {
    local p="" _
    for _ in $(seq 1 20); do
        p=$(pgrep -f -- "$2" | grep -vx "$$" || true)
        [ -z "$p" ] && break
        sleep 0.1
    done
    if [ -z "$p" ]; then
        ok "$1"
    else
        fail "$1" "processes of the task still alive after the run:" \
            "$(ps -o pid,pgid,stat,etime,args -p "$(echo "$p" | paste -sd, -)" 2>&1 | cut -c1-200)"
        # shellcheck disable=SC2086
        kill -9 $p 2>/dev/null || true
    fi
}

# argsline ARG...: what `exec_task.sh args ARG...` prints.
argsline() {
    printf '%s' "$#"
    local a
    for a in "$@"; do printf ' <%s>' "$a"; done
    printf '\n'
}

# Small programs for {} as the command word.
printf '#!/bin/sh\nprintf "hello %%s\\n" "$#"\n' >"$B/hello"
printf '#!/bin/sh\necho "ok stdout"\necho "ok stderr" >&2\n' >"$B/ok"
printf '#!/bin/sh\necho "exit3 stdout"\necho "exit3 stderr" >&2\nexit 3\n' >"$B/exit3"
printf '#!/bin/sh\necho "killself stdout"\necho "killself stderr" >&2\nkill -KILL $$\nsleep 5\n' >"$B/killself"
chmod +x "$B/hello" "$B/ok" "$B/exit3" "$B/killself"

# =====================================================================
section "1,000 items: each exactly once, in item order, joblog"
seq -f 'i%04g' 1 1000 >"$D/items.all"
# mark_run LABEL NP SLOTS N: the first N of those items as `mark` tasks;
# checks every task's side effect, the output, stderr and joblog.
mark_run() {
    local label=$1 np=$2 slots=$3 n=$4
    local m="$TMP/mark.$np.$slots" o="$TMP/out.$np.$slots" jlog="$TMP/joblog.$np.$slots"
    head -n "$n" "$D/items.all" >"$D/items$n"
    awk '{ printf "out %s %d\n", $0, NR }' "$D/items$n" >"$TMP/exp$n.out"
    awk '{ printf "err %s\n", $0 }' "$D/items$n" >"$TMP/exp$n.err"
    awk '{ printf "%s %d\n", $0, NR }' "$D/items$n" >"$TMP/exp$n.itemtask"
    rm -rf "$m"
    mkdir "$m"
    erun "$np" exec --slots-per-rank "$slots" --joblog "$jlog" -o "$o" --items "$D/items$n" \
        -- sh "$TASK" mark "$m"
    assert_rc "$label: run" 0
    assert_eq "$label: $n marker files (one per item)" "$n" "$(find "$m" -type f | wc -l)"
    assert_eq "$label: $n task runs in all (each item once)" "$n" "$(cat "$m"/* 2>/dev/null | wc -l)"
    (cd "$m" && ls) | sort >"$TMP/marks.ls" || true
    assert_same_file "$label: marker files named after exactly the items" "$D/items$n" "$TMP/marks.ls"
    # Each task saw its task number = its item's position.
    awk '{ n = split(FILENAME, p, "/"); print p[n], $3 }' "$m"/* 2>&1 | sort >"$TMP/marks.it" || true
    assert_same_file "$label: MPIMAP_TASK = the item's number ({#} order)" "$TMP/exp$n.itemtask" "$TMP/marks.it"
    assert_same_file "$label: output in item order" "$TMP/exp$n.out" "$o"
    grep -a '^err ' "$ERR" >"$TMP/got.err" || true
    assert_same_file "$label: tasks' stderr on stderr, in item order" "$TMP/exp$n.err" "$TMP/got.err"
    jlcheck "$label: joblog format, $n lines + header" "$jlog" "$n" "$np" "$slots"
    assert_eq "$label: joblog: Status ok for every task" "$n ok" \
        "$(jl col "$jlog" Status | sort | uniq -c | awk '{ print $1, $2 }' | tr '\n' ' ' | sed 's/ $//')"
    assert_eq "$label: joblog: Exitval/Signal/Attempts all 0/0/1" "0 0 1" \
        "$(paste <(jl col "$jlog" Exitval) <(jl col "$jlog" Signal) <(jl col "$jlog" Attempts) | sort -u | tr '\t\n' '  ' | sed 's/ $//')"
    # The rank and slot in the joblog are those the task saw (MPIMAP_RANK/SLOT).
    awk '{ print $3, $1, $2 }' "$m"/* 2>&1 | sort -n >"$TMP/seen.rs" || true
    paste -d' ' <(jl col "$jlog" Seq) <(jl col "$jlog" Rank) <(jl col "$jlog" Slot) | sort -n >"$TMP/jl.rs" || true
    assert_same_file "$label: joblog Rank/Slot = MPIMAP_RANK/MPIMAP_SLOT seen by each task" "$TMP/seen.rs" "$TMP/jl.rs"
    assert_match "$label: summary line" "$ERR" \
        "^mpimap: exec: $n tasks, $n ok, 0 failed[^0-9]*[0-9]+\.[0-9]{3} s$"
}

mark_run "1,000 items, -np 2, 2 slots" 2 2 1000
REF="$TMP/out.2.2"
assert_eq "-np 2: both ranks ran tasks (joblog Rank column)" "0 1" \
    "$(jl col "$TMP/joblog.2.2" Rank | sort -u | tr '\n' ' ' | sed 's/ $//')"
assert_eq "-np 2, 2 slots: both slots of a rank used (joblog Slot column)" "1 2" \
    "$(jl col "$TMP/joblog.2.2" Slot | sort -u | tr '\n' ' ' | sed 's/ $//')"
assert_eq "joblog: Command column of task 1" "sh $TASK mark $TMP/mark.2.2 i0001" \
    "$(jl row "$TMP/joblog.2.2" 1 Command)"
# Other -np / slot counts give the same bytes: on the first 250 items (the
# tasks are the same, so the output is the reference's first 250 lines).
head -n 250 "$REF" >"$TMP/ref250.out"
if [ "$QUICK" = 1 ]; then
    COMBOS=("1 3")
else
    COMBOS=("1 1" "3 3")
fi
for c in "${COMBOS[@]}"; do
    read -r np slots <<<"$c"
    mark_run "250 items, -np $np, $slots slots" "$np" "$slots" 250
    assert_same_file "-np $np, $slots slots: output byte-identical to -np 2, 2 slots'" \
        "$TMP/ref250.out" "$TMP/out.$np.$slots"
done

# =====================================================================
section "replacement strings"
REPL_ITEMS=('dir/sub/file.tar.gz' 'plain.txt' 'noext' 'dir.d/noext' 'my dir/my file.txt'
    "it's/\"q\" x.y" '/abs/x.y')
run 2 exec --slots-per-rank 2 -- sh "$TASK" args '{}' '{.}' '{/}' '{//}' '{/.}' '{#}' 'x{}y' '--n={#}-{/.}' \
    ::: "${REPL_ITEMS[@]}"
assert_rc "{} {.} {/} {//} {/.} {#}" 0
{
    argsline 'dir/sub/file.tar.gz' 'dir/sub/file.tar' 'file.tar.gz' 'dir/sub' 'file.tar' 1 'xdir/sub/file.tar.gzy' '--n=1-file.tar'
    argsline 'plain.txt' 'plain' 'plain.txt' '.' 'plain' 2 'xplain.txty' '--n=2-plain'
    argsline 'noext' 'noext' 'noext' '.' 'noext' 3 'xnoexty' '--n=3-noext'
    argsline 'dir.d/noext' 'dir.d/noext' 'noext' 'dir.d' 'noext' 4 'xdir.d/noexty' '--n=4-noext'
    argsline 'my dir/my file.txt' 'my dir/my file' 'my file.txt' 'my dir' 'my file' 5 'xmy dir/my file.txty' '--n=5-my file'
    argsline "it's/\"q\" x.y" "it's/\"q\" x" '"q" x.y' "it's" '"q" x' 6 "xit's/\"q\" x.yy" '--n=6-"q" x'
    argsline '/abs/x.y' '/abs/x' 'x.y' '/abs' 'x' 7 'x/abs/x.yy' '--n=7-x'
} >"$TMP/exp.repl"
assert_same_file "replacements, anywhere inside a word, several in one word" "$TMP/exp.repl" "$OUT"

run_one exec -- sh "$TASK" args fixed ::: a 'b c' '{}'
assert_rc "no replacement string: item appended" 0
{ argsline fixed a; argsline fixed 'b c'; argsline fixed '{}'; } >"$TMP/exp.append"
assert_same_file "no replacement string: the item is appended as the last argument" "$TMP/exp.append" "$OUT"

run_one exec -- '{}' ::: "$B/hello"
assert_rc "{} as the command" 0
assert_eq "{} as the command: the item is not also appended" "hello 0" "$(cat "$OUT")"
run_one exec -- '{}' x '{#}' ::: "$B/hello"
assert_eq "{} as the command with arguments" "hello 2" "$(cat "$OUT")"

# =====================================================================
section "items reach the program unchanged, as one argument, without a shell"
# shellcheck disable=SC2016,SC1003 # literal on purpose: no shell may expand them
TRICKY=('a b' "it's" 'say "hi"' '$(touch '"$TMP"'/pwned1)' '`touch '"$TMP"'/pwned2`'
    'back\slash\\n\' '-n' '--help' '*' '[a-z]?' '  two  spaces  '
    'semi;colon|pipe&amp>'"$TMP"'/pwned3' 'br{}ace{#}{.}' 'ünï©ødé' '~' '%s %d' '"' "'" '$HOME')
NLITEMS=($'line1\nline2' $'tab\there' $'\n' $'trailing newline\n')

# ::: (with {}), -np 2
run 2 exec --slots-per-rank 2 -- sh "$TASK" args '{}' ::: "${TRICKY[@]}" "${NLITEMS[@]}"
assert_rc "::: tricky items" 0
for it in "${TRICKY[@]}" "${NLITEMS[@]}"; do argsline "$it"; done >"$TMP/exp.tricky"
assert_same_file "::: items (quotes, \$(), backslashes, -n, globs, newlines, tabs): one argument each, unchanged" \
    "$TMP/exp.tricky" "$OUT"

# --items FILE: CRLF lines, empty lines, no final newline; item appended; joblog argv.
{
    printf '%s\n' "${TRICKY[@]:0:5}"
    printf '\n\n'
    printf 'crlf item\r\n'
    printf '%s\n' "${TRICKY[@]:5}"
    printf '\n'
    printf 'the end'
} >"$D/tricky.lines"
LINE_ITEMS=("${TRICKY[@]:0:5}" 'crlf item' "${TRICKY[@]:5}" 'the end')
for it in "${LINE_ITEMS[@]}"; do argsline "$it"; done >"$TMP/exp.lines"
printf '%s\0' "${LINE_ITEMS[@]}" >"$TMP/lines.items0"
erun 2 exec --slots-per-rank 2 --joblog "$TMP/jl.lines" --items "$D/tricky.lines" -- sh "$TASK" args
assert_rc "--items FILE" 0
assert_same_file "--items FILE: CR removed, empty lines skipped, last line without newline kept" \
    "$TMP/exp.lines" "$OUT"
jlcheck "--items FILE: joblog format" "$TMP/jl.lines" "${#LINE_ITEMS[@]}" 2 2
assert_eq "joblog Command: each word shell-quoted, reads back as the exact argv" OK \
    "$(jl argv "$TMP/jl.lines" "$TMP/lines.items0" sh "$TASK" args 2>&1 || true)"

# --items - (mpirun forwards standard input to rank 0)
run_in "$D/tricky.lines" 2 exec --items - -- sh "$TASK" args
assert_rc "--items - under mpirun" 0
assert_same_file "--items -: the same items" "$TMP/exp.lines" "$OUT"
# no --items, no ::: : standard input; no -- either.
run_one_in "$D/tricky.lines" exec sh "$TASK" args
assert_rc "items from standard input (no --items, no --)" 0
assert_same_file "standard input: the same items" "$TMP/exp.lines" "$OUT"

# -0: NUL-separated, empty items skipped, no final NUL.
{
    printf '%s\0' "${TRICKY[@]}" "${NLITEMS[@]:0:3}"
    printf '\0'
    printf '%s' "${NLITEMS[3]}"
} >"$D/tricky.nul"
run 2 exec --items "$D/tricky.nul" -0 -- sh "$TASK" args '{}'
assert_rc "--items FILE -0" 0
assert_same_file "-0: NUL-separated items (newlines inside), empty ones skipped" "$TMP/exp.tricky" "$OUT"
run_one_in "$D/tricky.nul" exec --null -- sh "$TASK" args
assert_rc "--null from standard input" 0
assert_same_file "--null from standard input: the same items" "$TMP/exp.tricky" "$OUT"
for f in pwned1 pwned2 pwned3; do
    assert_absent "no shell ran the items: $f not created" "$TMP/$f"
done

# =====================================================================
section "failing tasks: exit 3, SIGKILL, no such program"
erun 2 exec --slots-per-rank 2 --joblog "$TMP/jl.fail" -o "$TMP/fail.out" -- '{}' \
    ::: "$B/ok" "$B/exit3" "$B/killself" "$B/missing" "$B/ok"
assert_rc "failed tasks: the run goes on, exit 1" 1
printf 'ok stdout\nexit3 stdout\nkillself stdout\nok stdout\n' >"$TMP/exp.fail"
assert_same_file "failed tasks: -o written, every task's stdout in order" "$TMP/exp.fail" "$TMP/fail.out"
assert_absent "failed tasks: no -o PATH.incomplete" "$TMP/fail.out.incomplete"
assert_eq "failed tasks: no temporary file of -o or --joblog left" "" \
    "$(find "$TMP" -maxdepth 1 \( -name '*fail.out*' -o -name '*jl.fail*' \) ! -name fail.out ! -name jl.fail)"
jlcheck "failed tasks: joblog complete" "$TMP/jl.fail" 5 2 2
assert_eq "joblog: task 1 ok" "0 0 1 ok" "$(jlrow "$TMP/jl.fail" 1)"
assert_eq "joblog: exit 3 -> Exitval 3, Signal 0, failed" "3 0 1 failed" "$(jlrow "$TMP/jl.fail" 2)"
assert_eq "joblog: SIGKILL -> Exitval -1, Signal 9, failed" "-1 9 1 failed" "$(jlrow "$TMP/jl.fail" 3)"
assert_eq "joblog: no such program -> Exitval -1, Signal 0, error" "-1 0 1 error" "$(jlrow "$TMP/jl.fail" 4)"
assert_eq "joblog: task 5 ok after the failures" "0 0 1 ok" "$(jlrow "$TMP/jl.fail" 5)"
assert_contains "stderr: exit 3 reported" "$ERR" "mpimap: exec: task 2 failed: exit 3: $B/exit3"
assert_contains "stderr: signal reported" "$ERR" "mpimap: exec: task 3 failed: killed by signal 9 (SIGKILL): $B/killself"
assert_contains "stderr: cannot start reported" "$ERR" \
    "mpimap: exec: task 4 failed: cannot start: No such file or directory: $B/missing"
grep -aE '^(ok stderr|exit3 stderr|killself stderr|mpimap: exec: task [0-9]+ failed)' "$ERR" |
    sed -E 's#: /[^ ]*$##' >"$TMP/got.failorder" || true
printf '%s\n' "ok stderr" "exit3 stderr" "mpimap: exec: task 2 failed: exit 3" "killself stderr" \
    "mpimap: exec: task 3 failed: killed by signal 9 (SIGKILL)" \
    "mpimap: exec: task 4 failed: cannot start: No such file or directory" "ok stderr" >"$TMP/exp.failorder"
assert_same_file "stderr: tasks' stderr and failure messages in task order" "$TMP/exp.failorder" "$TMP/got.failorder"
assert_match "summary: 5 tasks, 2 ok, 3 failed (tasks 2, 3, 4)" "$ERR" \
    "^mpimap: exec: 5 tasks, 2 ok, 3 failed \(tasks 2, 3, 4\), [0-9]+\.[0-9]{3} s$"
run_one -q exec -- '{}' ::: "$B/ok" "$B/exit3" "$B/exit3"
assert_rc "-q: still exit 1" 1
assert_not_contains "-q: no summary line" "$ERR" "mpimap: exec: 3 tasks"

# =====================================================================
section "--timeout: the whole process group is killed"
# Each case is one item of this script; every sleep has a distinctive length.
# shellcheck disable=SC2016 # expanded by the task's sh
TSCRIPT='case $1 in
plain) exec sleep '"$MARK"'1 ;;
tree) sleep '"$MARK"'2 & sleep '"$MARK"'2; wait ;;
ignore) trap "" TERM; sleep '"$MARK"'3 & sleep '"$MARK"'3; wait ;;
orphan) (sleep '"$MARK"'4 &); sleep '"$MARK"'4 ;;
stubborn) (trap "" TERM; exec sleep '"$MARK"'5) & sleep '"$MARK"'5; wait ;;
quick) echo quick ;;
esac'
erun 2 exec --slots-per-rank 3 --timeout 1 --kill-after 1 --joblog "$TMP/jl.timeout" \
    -- sh -c "$TSCRIPT" sh '{}' ::: plain tree ignore orphan stubborn quick
assert_rc "timeouts: exit 1" 1
assert_fast "timeouts: the run did not wait for the sleeps" 20
assert_no_procs "timeouts: no process of any timed-out task's group alive" "$MARK"
jlcheck "timeouts: joblog" "$TMP/jl.timeout" 6 2 3
assert_eq "timeout, a sleep: Exitval -1, Signal 15 (SIGTERM), timeout" "-1 15 1 timeout" "$(jlrow "$TMP/jl.timeout" 1)"
assert_eq "timeout, sh with a background child: SIGTERM, timeout" "-1 15 1 timeout" "$(jlrow "$TMP/jl.timeout" 2)"
assert_eq "timeout, SIGTERM ignored: SIGKILL after --kill-after" "-1 9 1 timeout" "$(jlrow "$TMP/jl.timeout" 3)"
assert_eq "timeout, orphaned grandchild: SIGTERM, timeout" "-1 15 1 timeout" "$(jlrow "$TMP/jl.timeout" 4)"
assert_eq "timeout, leader dies, a child ignores SIGTERM: timeout" "-1 15 1 timeout" "$(jlrow "$TMP/jl.timeout" 5)"
assert_eq "timeout: the quick task in the same run ok" "0 0 1 ok" "$(jlrow "$TMP/jl.timeout" 6)"
assert_eq "timeout: JobRuntime of the sleep about 1 s, of the SIGTERM-ignoring one about 2 s" "1 1" \
    "$(paste <(jl col "$TMP/jl.timeout" JobRuntime) <(jl col "$TMP/jl.timeout" Seq) |
        awk '$2 == 1 { a = ($1 >= 0.9 && $1 < 1.9) } $2 == 3 { b = ($1 >= 1.9 && $1 < 6) } END { print a + 0, b + 0 }')"
assert_contains "timeout: message" "$ERR" "mpimap: exec: task 1 failed: timed out after 1 s"
assert_contains "timeout: message for the SIGKILLed one" "$ERR" "mpimap: exec: task 3 failed: timed out after 1 s"
assert_eq "timeout: only the quick task's output" "quick" "$(cat "$OUT")"
assert_match "timeout: summary" "$ERR" "^mpimap: exec: 6 tasks, 1 ok, 5 failed \(tasks 1, 2, 3, 4, 5\)"

# Decimal seconds, and the default --kill-after (2 s).
erun1 exec --slots-per-rank 2 --timeout 0.3 --joblog "$TMP/jl.timeout2" -- sh -c "$TSCRIPT" sh '{}' ::: plain ignore
assert_rc "--timeout 0.3: exit 1" 1
assert_no_procs "--timeout 0.3: nothing left" "$MARK"
assert_eq "--timeout 0.3: killed, timeout" "-1 15 1 timeout" "$(jlrow "$TMP/jl.timeout2" 1)"
assert_eq "--timeout 0.3: SIGTERM ignored, SIGKILL" "-1 9 1 timeout" "$(jlrow "$TMP/jl.timeout2" 2)"
assert_eq "--timeout 0.3: JobRuntime 0.3 s, and 0.3 + 2 s (default --kill-after)" "1 1" \
    "$(paste <(jl col "$TMP/jl.timeout2" JobRuntime) <(jl col "$TMP/jl.timeout2" Seq) |
        awk '$2 == 1 { a = ($1 >= 0.25 && $1 < 1.2) } $2 == 2 { b = ($1 >= 2.2 && $1 < 6) } END { print a + 0, b + 0 }')"

# =====================================================================
section "--retries"
RD="$TMP/retries"
mkdir -p "$RD"
erun1 exec --retries 2 --slots-per-rank 2 --joblog "$TMP/jl.retries" -- sh "$TASK" flaky "$RD" '{}' \
    ::: f1 f2 f0 f8 f9
assert_rc "--retries 2: exit 1 (two tasks always fail)" 1
assert_eq "--retries: each task ran 1 + failures (at most 3) times" "f1=2 f2=3 f0=1 f8=3 f9=3" \
    "$(counters "$RD" f1 f2 f0 f8 f9)"
assert_eq "--retries: failed once, then ok: Attempts 2" "0 0 2 ok" "$(jlrow "$TMP/jl.retries" 1)"
assert_eq "--retries: failed twice, then ok: Attempts 3" "0 0 3 ok" "$(jlrow "$TMP/jl.retries" 2)"
assert_eq "--retries: ok at once: Attempts 1" "0 0 1 ok" "$(jlrow "$TMP/jl.retries" 3)"
assert_eq "--retries 2: always failing: Attempts 3, failed" "1 0 3 failed" "$(jlrow "$TMP/jl.retries" 4)"
assert_eq "--retries 2: always failing (2): Attempts 3, failed" "1 0 3 failed" "$(jlrow "$TMP/jl.retries" 5)"
assert_contains "--retries: output of the successful attempt" "$OUT" "done f2 attempt 3"
assert_match "--retries: summary" "$ERR" "^mpimap: exec: 5 tasks, 3 ok, 2 failed \(tasks 4, 5\)"
# A program that cannot start is retried too; not executable: Permission denied.
printf '#!/bin/sh\necho never\n' >"$B/noexec"
chmod -x "$B/noexec"
erun1 exec --retries 1 --joblog "$TMP/jl.noexec" -- '{}' ::: "$B/missing" "$B/noexec"
assert_rc "--retries 1, programs that cannot start: exit 1" 1
assert_eq "--retries 1: no such program: Attempts 2, error" "-1 0 2 error" "$(jlrow "$TMP/jl.noexec" 1)"
assert_eq "--retries 1: not executable: Attempts 2, error" "-1 0 2 error" "$(jlrow "$TMP/jl.noexec" 2)"
assert_contains "not executable: message" "$ERR" "mpimap: exec: task 2 failed: cannot start: Permission denied"

# =====================================================================
section "--journal, --resume, --resume-failed"
JD="$TMP/jdir"
J="$TMP/exec.journal"
mkdir -p "$JD"
JITEMS=(j01 j02 j03 j04 j05 j06 j07 j08 j09 j10 j11 j12)
printf '%s\n' "${JITEMS[@]}" >"$D/jitems"
touch "$JD/j03.bad" "$JD/j07.bad" "$JD/j11.bad" "$JD/j12.slow"
JCMD=(-- sh "$TASK" count "$JD" '{}' "$MARK"8)
# jexp "BAD..." "TIMEDOUT...": the expected output: "out ITEM" for every
# item, then "bad ITEM" for the bad ones, nothing for the timed-out ones.
jexp() {
    local it
    for it in "${JITEMS[@]}"; do
        case " $2 " in *" $it "*) continue ;; esac
        echo "out $it"
        case " $1 " in *" $it "*) echo "bad $it" ;; esac
    done
}
jexp "j03 j07 j11" "j12" >"$TMP/jexp.1"
jexp "j03 j07 j11" "" >"$TMP/jexp.3"
jexp "" "" >"$TMP/jexp.4"
ALL_ONE="j01=1 j02=1 j03=1 j04=1 j05=1 j06=1 j07=1 j08=1 j09=1 j10=1 j11=1 j12=1"

JT0=$(date +%s.%N)
run 2 --journal "$J" exec --slots-per-rank 2 --timeout 1 -o "$TMP/j.1" --items "$D/jitems" "${JCMD[@]}"
assert_rc "journaled run with 3 failing and 1 timed-out task" 1
assert_eq "journaled run: each task ran once" "$ALL_ONE" "$(counters "$JD" "${JITEMS[@]}")"
assert_same_file "journaled run: output" "$TMP/jexp.1" "$TMP/j.1"
assert_match "journaled run: summary" "$ERR" "12 tasks, 8 ok, 4 failed \(tasks 3, 7, 11, 12\)"
assert_no_procs "journaled run: the timed-out task is gone" "$MARK"8

# --resume (engine options after `exec`): nothing runs again.
run 2 exec --journal "$J" --resume --slots-per-rank 2 --timeout 1 -o "$TMP/j.2" --items "$D/jitems" "${JCMD[@]}"
assert_rc "--resume: recorded failures stay failures (exit 1)" 1
assert_eq "--resume: no task ran again (failed ones neither)" "$ALL_ONE" "$(counters "$JD" "${JITEMS[@]}")"
assert_same_file "--resume: output identical (replayed)" "$TMP/j.1" "$TMP/j.2"

# Another command or another items file: refused (the rest of this section
# runs without mpirun: the journal does not depend on the number of ranks).
run_one --journal "$J" --resume exec --timeout 1 -o "$TMP/j.x" --items "$D/jitems" -- sh "$TASK" count "$JD" '{}' 9
assert_rc "--resume with another command: refused" 2
sed 's/j12/j13/' "$D/jitems" >"$D/jitems2"
run_one --journal "$J" --resume exec --timeout 1 -o "$TMP/j.x" --items "$D/jitems2" "${JCMD[@]}"
assert_rc "--resume with other items: refused" 2
assert_eq "refused resumes ran nothing" "$ALL_ONE" "$(counters "$JD" "${JITEMS[@]}")"
assert_absent "refused resumes wrote no output" "$TMP/j.x"

# --resume-failed, the bad tasks still bad, the slow one fixed; other
# --timeout / --slots-per-rank / --retries / --kill-after are accepted.
rm -f "$JD/j12.slow"
erun1 --journal "$J" --resume-failed exec --slots-per-rank 1 --timeout 30 --kill-after 1 --retries 0 \
    --joblog "$TMP/jl.rf" -o "$TMP/j.3" --items "$D/jitems" "${JCMD[@]}"
assert_rc "--resume-failed (3 still failing)" 1
assert_eq "--resume-failed: exactly the failed and timed-out tasks ran again" \
    "j01=1 j02=1 j03=2 j04=1 j05=1 j06=1 j07=2 j08=1 j09=1 j10=1 j11=2 j12=2" \
    "$(counters "$JD" "${JITEMS[@]}")"
assert_same_file "--resume-failed: output (the timed-out task now ran)" "$TMP/jexp.3" "$TMP/j.3"
# Tasks replayed from the journal may keep the first run's start and slot.
T0=$JT0
jlcheck "--resume-failed: joblog, one line per task" "$TMP/jl.rf" 12 2 2 # ranks of the first run
assert_eq "--resume-failed: joblog: the re-run timed-out task now ok" "0 0 1 ok" "$(jl row "$TMP/jl.rf" 12 Exitval Signal Attempts Status || true)"
assert_eq "--resume-failed: joblog: a still-bad task failed with exit 5" "5 0 1 failed" "$(jl row "$TMP/jl.rf" 7 Exitval Signal Attempts Status || true)"

# Fix the bad ones: --resume-failed runs only them, and succeeds.
rm -f "$JD"/*.bad
run_one --journal "$J" --resume-failed exec --timeout 1 -o "$TMP/j.4" --items "$D/jitems" "${JCMD[@]}"
assert_rc "--resume-failed after the fix: exit 0" 0
assert_eq "--resume-failed after the fix: only the 3 failed tasks ran again" \
    "j01=1 j02=1 j03=3 j04=1 j05=1 j06=1 j07=3 j08=1 j09=1 j10=1 j11=3 j12=2" \
    "$(counters "$JD" "${JITEMS[@]}")"
assert_same_file "--resume-failed after the fix: output of an all-good run" "$TMP/jexp.4" "$TMP/j.4"
run_one --journal "$J" --resume exec --timeout 1 -o "$TMP/j.5" --items "$D/jitems" "${JCMD[@]}"
assert_rc "--resume of a complete journal: exit 0" 0
assert_eq "--resume of a complete journal: nothing ran" \
    "j01=1 j02=1 j03=3 j04=1 j05=1 j06=1 j07=3 j08=1 j09=1 j10=1 j11=3 j12=2" \
    "$(counters "$JD" "${JITEMS[@]}")"
assert_same_file "--resume of a complete journal: output identical" "$TMP/jexp.4" "$TMP/j.5"

# ---------------------------------------------------------------- interrupted
section "SIGTERM to a run, then --resume"
SD="$TMP/sdir"
SJ="$TMP/sig.journal"
mkdir -p "$SD"
SITEMS=(s1 s2 s3 s4 s5 s6 s7 s8)
printf '%s\n' "${SITEMS[@]}" >"$D/sitems"
for it in s3 s4 s5 s6 s7 s8; do touch "$SD/$it.slow"; done
# s4 ignores SIGTERM, it and its sleep: only the SIGKILL after --kill-after ends it.
touch "$SD/s4.stubborn"
SARGS=(exec --slots-per-rank 2 --kill-after 1 --joblog "$TMP/jl.sig" -o "$TMP/sig.out" --items "$D/sitems"
    -- sh "$TASK" count "$SD" '{}' "$SMARK")
t0=$(date +%s%N)
ST0=$(date +%s.%N)
RC=0
timeout -k 5 60 "$MPIMAP" --journal "$SJ" "${SARGS[@]}" >"$OUT" 2>"$ERR" </dev/null &
spid=$!
for ((i = 0; i < 400; i++)); do
    grep -qaF MJR1 "$SJ" 2>/dev/null && break
    kill -0 "$spid" 2>/dev/null || break
    sleep 0.05
done
sleep 0.3
child=$(pgrep -P "$spid" | head -1 || true)
if [ -n "$child" ]; then
    # A slow task is running now (both slots' once s1 and s2 are done).
    nslow=$(pgrep -f -- "^sleep $SMARK" | grep -c . || true)
    if [ "$nslow" -ge 1 ] && [ "$nslow" -le 2 ]; then
        ok "before SIGTERM: $nslow slow task(s) running"
    else
        fail "before SIGTERM: slow tasks running" "1 or 2" "$nslow"
    fi
    kill -TERM "$child"
else
    fail "SIGTERM: the run ended before it could be signalled" "a running mpimap" "none"
fi
wait "$spid" || RC=$?
SECS=$((($(date +%s%N) - t0) / 1000000000))
assert_rc "SIGTERM: exit 3" 3
assert_fast "SIGTERM: running tasks were ended (SIGKILL after --kill-after 1 s), not waited for (they sleep 314 s)" 10
assert_no_procs "SIGTERM: no task process left (also of the task ignoring SIGTERM)" "$SMARK"
assert_contains "SIGTERM: says it was interrupted" "$ERR" "interrupted by SIGTERM"
assert_absent "SIGTERM: no output under the final name" "$TMP/sig.out"
assert_absent "SIGTERM: no complete joblog" "$TMP/jl.sig"
assert_exists "SIGTERM: the joblog left as FILE.incomplete" "$TMP/jl.sig.incomplete"
BEFORE=$(counters "$SD" "${SITEMS[@]}")
FINISHED=""
for it in "${SITEMS[@]}"; do [ -e "$SD/$it.done" ] && FINISHED+="$it "; done
if [[ "$FINISHED" =~ ^(s1\ |s2\ |s1\ s2\ )$ ]]; then
    ok "SIGTERM: fast tasks had finished, no slow one ($FINISHED)"
else
    fail "SIGTERM: fast tasks had finished, no slow one" "s1 and/or s2" "'$FINISHED'"
fi
rm -f "$SD"/*.slow "$SD"/*.stubborn
erun1 --journal "$SJ" --resume "${SARGS[@]}"
assert_rc "SIGTERM: --resume completes the run" 0
# A task that had finished ran exactly once; the others once more.
EXPECT=""
for it in "${SITEMS[@]}"; do
    n=$(cat "$SD/$it.n" 2>/dev/null || echo 0)
    b=$(echo "$BEFORE" | tr ' ' '\n' | sed -n "s/^$it=//p")
    case " $FINISHED" in *" $it "*) EXPECT+="$it=$b " ;; *) EXPECT+="$it=$((b + 1)) " ;; esac
done
assert_eq "SIGTERM + --resume: finished tasks not run again, the others exactly once more (before: $BEFORE)" \
    "${EXPECT% }" "$(counters "$SD" "${SITEMS[@]}")"
printf 'out %s\n' "${SITEMS[@]}" >"$TMP/exp.sig"
assert_same_file "SIGTERM + --resume: output = an uninterrupted run's" "$TMP/exp.sig" "$TMP/sig.out"
T0=$ST0
jlcheck "SIGTERM + --resume: complete joblog" "$TMP/jl.sig" 8 1 2

# =====================================================================
section "--cores-per-task, slots, the tasks' environment"
# envfield FIELD: that field of every line of $OUT (key=value words).
envfield() { sed -E "s/.* $1=([^ ]*).*/\1/; t; s/^$1=([^ ]*).*/\1/" "$OUT"; }
SELF_CPUS=$(grep Cpus_allowed_list /proc/self/status | cut -f2)

run_one exec --slots-per-rank 2 --cores-per-task 1 -- sh "$TASK" env '{#}' '{%}' ::: 1 2 3 4 5 6
assert_rc "--cores-per-task 1, 2 slots" 0
assert_eq "six tasks" 6 "$(wc -l <"$OUT")"
assert_eq "MPIMAP_TASK = {#}, MPIMAP_SLOT = {%} in every task" "ok" \
    "$(awk '{ split($1, t, "="); split($2, s, "="); if ($(NF-1) != "args=" t[2] || $NF != s[2]) bad = 1 } END { print bad ? "bad" : "ok" }' "$OUT")"
assert_eq "MPIMAP_RANK = 0 without mpirun" "0" "$(envfield rank | sort -u | tr '\n' ' ' | sed 's/ $//')"
assert_eq "both slots used, numbered 1 and 2" "1 2" "$(envfield slot | sort -u | tr '\n' ' ' | sed 's/ $//')"
assert_eq "OMP_NUM_THREADS = C = 1" "1" "$(envfield omp | sort -u | tr '\n' ' ' | sed 's/ $//')"
assert_eq "working directory: mpimap's" "$WD" "$(envfield pwd | sort -u)"
SLOTCPUS=$(awk '{ print $2, $5 }' "$OUT" | sort -u)
assert_eq "each slot always on the same CPUs" 2 "$(echo "$SLOTCPUS" | wc -l)"
if [ "$NCPU" -ge 2 ]; then
    c1=$(echo "$SLOTCPUS" | sed -n 's/^slot=1 cpus=//p')
    c2=$(echo "$SLOTCPUS" | sed -n 's/^slot=2 cpus=//p')
    if [ -n "$c1" ] && [ "$c1" != "$c2" ]; then
        ok "the two slots are pinned to different CPUs ($c1 / $c2)"
    else
        fail "the two slots are pinned to different CPUs" "two different sets" "slot 1: '$c1', slot 2: '$c2'"
    fi
    CORES=$(cat /sys/devices/system/cpu/cpu*/topology/thread_siblings_list | sort -u)
    for c in "$c1" "$c2"; do
        if echo "$CORES" | grep -qxF -- "$c"; then
            ok "a slot's affinity is exactly one core's PUs ($c)"
        else
            fail "a slot's affinity is exactly one core's PUs" "one of: $(echo "$CORES" | tr '\n' ' ')" "'$c'"
        fi
    done
else
    ok "two slots on different cores: skipped: 1 core"
fi
run_one exec --slots-per-rank 2 --cores-per-task 0 -- sh "$TASK" env ::: a b c
assert_rc "--cores-per-task 0" 0
assert_eq "--cores-per-task 0: the task may run on the rank's whole cpuset" "$SELF_CPUS" \
    "$(envfield cpus | sort -u | tr '\n' ' ' | sed 's/ $//')"
run_one exec --slots-per-rank 1 --cores-per-task 2 -- sh "$TASK" env ::: a
assert_eq "--cores-per-task 2: OMP_NUM_THREADS=2" "2" "$(envfield omp)"
OMP_NUM_THREADS=7 run_one exec --cores-per-task 1 -- sh "$TASK" env ::: a
assert_eq "OMP_NUM_THREADS already set for mpimap: kept" "7" "$(envfield omp)"
if [ "$NCPU" -le 4 ]; then
    run_one exec --cores-per-task 1 -- sh "$TASK" env ::: 1 2 3 4 5 6
    assert_eq "default slots = cores / C ($NCPU / 1): slots used" "$(seq 1 "$NCPU" | tr '\n' ' ' | sed 's/ $//')" \
        "$(envfield slot | sort -u | tr '\n' ' ' | sed 's/ $//')"
    if [ "$NCPU" = 2 ]; then
        run_one exec --cores-per-task 2 -- sh "$TASK" env ::: 1 2 3
        assert_eq "default slots = 2 cores / C=2 = 1" "1" "$(envfield slot | sort -u | tr '\n' ' ' | sed 's/ $//')"
    fi
fi
run_one -t 3 exec -- sh "$TASK" env '{%}' ::: 1 2 3 4 5 6
assert_eq "engine -t 3: three slots" "1 2 3" "$(envfield slot | sort -u | tr '\n' ' ' | sed 's/ $//')"

MPIVARS='^(OMPI|PMIX|PMI|PRTE|HYDRA|HYDI)_'
run 2 exec --slots-per-rank 1 -- sh -c env sh '{}' ::: 1 2 3 4
assert_rc "env under mpirun" 0
assert_eq "under mpirun: no OMPI_/PMIX_/PMI_... variable in the tasks' environment" 0 \
    "$(grep -caE "$MPIVARS" "$OUT" || true)"
assert_eq "under mpirun: MPIMAP_TASK/SLOT/RANK set in every task" "4 4 4" \
    "$(grep -c '^MPIMAP_TASK=' "$OUT" || true) $(grep -c '^MPIMAP_SLOT=' "$OUT" || true) $(grep -c '^MPIMAP_RANK=' "$OUT" || true)"
assert_eq "under mpirun: MPIMAP_TASK values" "1 2 3 4" \
    "$(sed -n 's/^MPIMAP_TASK=//p' "$OUT" | tr '\n' ' ' | sed 's/ $//')"
run 2 exec --keep-mpi-env --slots-per-rank 1 -- sh -c env sh '{}' ::: 1 2
assert_rc "--keep-mpi-env" 0
if [ "$MPIMAP_MPI_FLAVOR" = mpich ]; then # Hydra: PMI_RANK, PMI_SIZE, PMI_FD
    assert_match "--keep-mpi-env: PMI_ variables kept" "$OUT" '^PMI_RANK='
else
    assert_match "--keep-mpi-env: OMPI_ variables kept" "$OUT" '^OMPI_COMM_WORLD_RANK='
    assert_match "--keep-mpi-env: PMIX_ variables kept" "$OUT" '^PMIX_RANK='
fi
run_one exec -- sh -c env sh '{}' ::: 1
assert_eq "without mpirun: OMPI_ variables of mpimap's environment removed too" 0 \
    "$(grep -caE "$MPIVARS" "$OUT" || true)"

# =====================================================================
section "--output-mode files"
R="$TMP/results"
FITEMS=(alpha 'b c' silent fail e5 e6 e7 e8 e9 e10 e11 e12)
erun 2 exec --output-mode files --results "$R" --slots-per-rank 2 --joblog "$TMP/jl.files" \
    -- sh "$TASK" files '{}' ::: "${FITEMS[@]}"
assert_rc "files mode (one task fails): exit 1" 1
assert_eq "files mode: --results DIR created, 2 files per task, nothing else (no temporary files)" \
    "$(for i in $(seq 1 12); do printf '%06d.err\n%06d.out\n' "$i" "$i"; done)" \
    "$(cd "$R" 2>/dev/null && find . -mindepth 1 | sed 's#^\./##' | sort)"
assert_eq "files mode: 000001.out" "stdout of alpha" "$(cat "$R/000001.out" 2>&1)"
assert_eq "files mode: 000001.err" "stderr of alpha" "$(cat "$R/000001.err" 2>&1)"
assert_eq "files mode: 000002.out (item with a space)" "stdout of b c" "$(cat "$R/000002.out" 2>&1)"
assert_exists "files mode: a silent task still has its .out" "$R/000003.out"
assert_empty "files mode: the silent task's .out is empty" "$R/000003.out"
assert_empty "files mode: the silent task's .err is empty" "$R/000003.err"
assert_eq "files mode: the failed task's files" "stdout of fail|stderr of fail" \
    "$(cat "$R/000004.out" 2>&1)|$(cat "$R/000004.err" 2>&1)"
assert_eq "files mode: 000012.out" "stdout of e12" "$(cat "$R/000012.out" 2>&1)"
assert_eq "files mode: joblog: the failed task" "4 0 1 failed" "$(jlrow "$TMP/jl.files" 4)"
M2="$TMP/mark.files"
mkdir -p "$M2"
run_one exec --output-mode files --results "$TMP/results2" -o "$TMP/files.out" -- sh "$TASK" mark "$M2" ::: a b
assert_rc "files mode with -o: refused" 1
assert_match "files mode with -o: message" "$ERR" '(-o|--output)'
assert_eq "files mode with -o: no task ran" 0 "$(find "$M2" -type f | wc -l)"
assert_absent "files mode with -o: no -o file" "$TMP/files.out"

# =====================================================================
section "usage errors, empty item list, tasks' stdin"
UM="$TMP/mark.usage"
mkdir -p "$UM"
usage_case() { # DESC REGEX ARGS...
    local desc=$1 re=$2
    shift 2
    run_one "$@"
    assert_rc "usage: $desc: exit 2" 2
    assert_match "usage: $desc: message" "$ERR" "$re"
}
usage_case "no command" 'command' exec
usage_case "no command before :::" 'command' exec ::: a b
usage_case "command not in PATH" "no-such-program-$$" exec -- "no-such-program-$$" ::: a
usage_case "files mode without --results" 'results' exec --output-mode files -- sh "$TASK" mark "$UM" ::: a
usage_case "bad --timeout (abc)" 'timeout' exec --timeout abc -- sh "$TASK" mark "$UM" ::: a
usage_case "bad --timeout (-1)" 'timeout' exec --timeout -1 -- sh "$TASK" mark "$UM" ::: a
usage_case "bad --slots-per-rank (0)" 'slots-per-rank' exec --slots-per-rank 0 -- sh "$TASK" mark "$UM" ::: a
usage_case "bad --output-mode" 'output-mode' exec --output-mode bogus -- sh "$TASK" mark "$UM" ::: a
usage_case "--journal with items on stdin" '(stdin|standard input)' --journal "$TMP/u.journal" exec -- sh "$TASK" mark "$UM"
usage_case "--journal with --items -" '(stdin|standard input)' --journal "$TMP/u.journal" exec --items - -- sh "$TASK" mark "$UM"
assert_eq "usage errors ran no task" 0 "$(find "$UM" -type f | wc -l)"

: >"$D/empty"
run_one exec --items "$D/empty" -- sh "$TASK" mark "$UM"
assert_rc "empty item list: not an error" 0
assert_empty "empty item list: no output" "$OUT"
assert_eq "empty item list: no task" 0 "$(find "$UM" -type f | wc -l)"
run_one exec -- sh "$TASK" mark "$UM" :::
assert_rc "::: without items: an empty list too" 0
assert_eq "::: without items: no task" 0 "$(find "$UM" -type f | wc -l)"

printf 'LEAKED FROM MPIMAP STDIN\n' >"$D/stdin.txt"
run_one_in "$D/stdin.txt" exec --timeout 20 -- sh "$TASK" stdin '{}' ::: a b
assert_rc "tasks reading stdin" 0
assert_eq "tasks' stdin is /dev/null (cat reads nothing)" "done a|done b" "$(tr '\n' '|' <"$OUT" | sed 's/|$//')"

assert_no_strays "no process of this test left running"
finish
