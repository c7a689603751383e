#!/usr/bin/env bash
# End-to-end: progress reports on rank 0's standard error. Timestamped lines
# without a terminal (every --progress-interval seconds), none with -q or
# --progress off, a bar redrawn in place on a terminal (a pseudo-terminal
# made by script(1)), and the result never touched: output files and
# standard output are byte-identical with and without progress.
source "$(dirname "$0")/lib.sh"

D="$TMP/data"
mkdir -p "$D"
# About 2 s of sleeping on 2 ranks: each line sleeps that many microseconds.
for i in $(seq 1 1200); do echo $((2000 + (i * 7919) % 2000)); done >"$D/sleep.txt"
ARGS=(-c 64 test -m sleep "$D/sleep.txt")
LINE_RE='^mpimap: progress [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z: [0-9]+ chunks, [0-9.]+ (B|KiB) / [0-9.]+ KiB \([0-9.]+%\), [0-9.]+ (B|KiB)/s, ETA [0-9hms?]+$'

section "lines without a terminal"
run 2 --progress-interval 0.3 -o "$TMP/out.txt" "${ARGS[@]}"
assert_rc "progress lines run" 0
n=$(grep -cE "$LINE_RE" "$ERR" || true)
if [ "$n" -ge 2 ]; then ok "progress lines: $n timestamped lines"; else
    fail "progress lines" ">= 2 lines matching $LINE_RE" "$n"; show_file stderr "$ERR"; fi
assert_eq "progress lines: nothing else on stderr" "$n" "$(wc -l <"$ERR")"
assert_same_file "progress lines: output file untouched" "$D/sleep.txt" "$TMP/out.txt"
# Percentages never go down.
grep -oE '\(([0-9.]+)%\)' "$ERR" | tr -d '()%' >"$TMP/pct"
if sort -n -c "$TMP/pct" 2>/dev/null; then ok "progress lines: percentage grows"; else
    fail "progress lines: percentage grows" "non-decreasing" "$(tr '\n' ' ' <"$TMP/pct")"; fi

run 2 --progress-interval 0.3 "${ARGS[@]}"
assert_rc "progress lines, rows on standard output" 0
assert_same_file "progress lines: standard output holds only the rows" "$D/sleep.txt" "$OUT"
assert_match "progress lines: on standard error" "$ERR" "^mpimap: progress "

section "silenced"
run 2 -q --progress-interval 0.3 "${ARGS[@]}"
assert_rc "-q" 0
assert_not_contains "-q: no progress" "$ERR" "progress"
run 2 --progress off --progress-interval 0.3 "${ARGS[@]}"
assert_not_contains "--progress off: no progress" "$ERR" "progress"
run 2 -q --progress on --progress-interval 0.3 "${ARGS[@]}"
assert_match "--progress on beats -q" "$ERR" "^mpimap: progress "
run 2 --progress-interval 0 "${ARGS[@]}"
assert_rc "--progress-interval 0: usage error" 2

section "standard input: no total"
run_in "$D/sleep.txt" 1 -t 2 --progress-interval 0.3 -c 64 test -m sleep -
assert_rc "stdin run" 0
assert_match "stdin: progress without a total" "$ERR" "^mpimap: progress .*: [0-9]+ chunks, [0-9.]+ (B|KiB) done, "
assert_same_file "stdin: rows intact" "$D/sleep.txt" "$OUT"

section "a bar on a terminal"
if command -v script >/dev/null; then
    # script(1) runs mpimap on a pseudo-terminal; what it prints is what a
    # user would see (the typescript file itself is /dev/null). The bar is drawn with "\r ESC[K" and erased the same way.
    strip_bars() { # FILE: the transcript without bars, CR-LF made LF
        "$PY" - "$1" <<'PYEOF'
import re, sys
t = open(sys.argv[1], 'rb').read()
t = re.sub(rb'\r\x1b\[K(\[[#.]+\] [^\r\n]*)?', b'', t)
sys.stdout.buffer.write(t.replace(b'\r\n', b'\n'))
PYEOF
    }
    script -qec "$(printf '%q ' "$MPIMAP" -t 2 -o "$TMP/bar.txt" "${ARGS[@]}")" /dev/null >"$TMP/tty1" 2>&1 </dev/null || true
    assert_same_file "bar, -o: output file untouched" "$D/sleep.txt" "$TMP/bar.txt"
    if grep -qaF "$(printf '\r\033[K[')" "$TMP/tty1"; then ok "bar drawn in place"; else
        fail "bar drawn in place" "\\r ESC[K [###...] on the terminal" "$(head -c 300 "$TMP/tty1" | cat -v)"; fi
    assert_eq "bar, -o: nothing left on the terminal once erased" "" "$(strip_bars "$TMP/tty1" | tr -d '\n')"
    # Rows to the same terminal: the bar is erased before rows are written.
    script -qec "$(printf '%q ' "$MPIMAP" -t 2 "${ARGS[@]}")" /dev/null >"$TMP/tty2" 2>&1 </dev/null || true
    strip_bars "$TMP/tty2" >"$TMP/tty2.rows"
    assert_same_file "bar, rows on the terminal: rows intact around the bar" "$D/sleep.txt" "$TMP/tty2.rows"
else
    echo "SKIP: script(1) not found: no pseudo-terminal for the bar"
fi

assert_no_strays "no stray processes"
finish
