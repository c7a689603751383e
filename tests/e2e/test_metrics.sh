#!/usr/bin/env bash
# End-to-end: --metrics and --trace. Both documents are read back with a real
# JSON parser (Python's json module) and checked against what the run must
# have done: per-rank chunk counts add up to the total, every chunk was
# computed exactly once (its compute span is on the timeline), every rank and
# pool thread has its own track, bytes in and out add up to the input and
# output sizes; a -v summary line; --trace-max bounds the trace; an unwritable
# path is refused before anything runs; a failed run still reports.
source "$(dirname "$0")/lib.sh"

D="$TMP/data"
mkdir -p "$D"
"$PY" - "$D/in.txt" <<'PYEOF'
import sys
with open(sys.argv[1], 'w') as f:
    for i in range(20000):
        f.write('line %d %s\n' % (i, 'x' * (i * 7919 % 61)))
PYEOF
SIZE=$(stat -c %s "$D/in.txt")

# check.py METRICS TRACE NP THREADS CHUNKS [dedicated]: prints one line per
# violated property (nothing when all hold).
cat >"$TMP/check.py" <<'PYEOF'
import json, sys
mpath, tpath, np_, nt, nchunks = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
dedicated = len(sys.argv) > 6 and sys.argv[6] == 'dedicated'
bad = []
def check(cond, what):
    if not cond:
        bad.append(what)
m = json.load(open(mpath))
tot = m['totals']
ranks = m['ranks']
check(m['mpimap']['exit_code'] == 0, 'exit_code %r' % m['mpimap']['exit_code'])
check(m['topology']['ranks'] == np_ and len(ranks) == np_, 'ranks: %r' % m['topology'])
check(m['topology']['threads_per_rank'] == [nt] * np_, 'threads_per_rank %r' % m['topology']['threads_per_rank'])
check([r['rank'] for r in ranks] == list(range(np_)), 'rank order')
check(tot['chunks'] == nchunks, 'totals.chunks %r != %d' % (tot['chunks'], nchunks))
check(sum(r['chunks'] for r in ranks) == nchunks, 'sum of rank chunks %r != %d' % ([r['chunks'] for r in ranks], nchunks))
check(tot['chunks_computed'] == nchunks, 'chunks_computed %r' % tot['chunks_computed'])
check(tot['bytes_in'] == tot['input_size'], 'bytes_in %r != input_size %r' % (tot['bytes_in'], tot['input_size']))
for r in ranks:
    th = r['threads']
    check(len(th) == nt, 'rank %d: %d threads' % (r['rank'], len(th)))
    check(sum(t['chunks'] for t in th) == r['chunks'], 'rank %d: thread chunks do not add up' % r['rank'])
    check(sum(t['bytes_in'] for t in th) == r['bytes_in'], 'rank %d: thread bytes do not add up' % r['rank'])
    check(0 <= r['overlap_ratio'] <= 1, 'rank %d: overlap %r' % (r['rank'], r['overlap_ratio']))
    check(r['main']['hidden_s'] <= r['main']['transfer_s'] + 1e-9, 'rank %d: hidden > transfer' % r['rank'])
    check(all(t['compute_s'] >= 0 and t['idle_s'] >= 0 for t in th), 'rank %d: negative times' % r['rank'])
    check(r['host'] and r['cpuset'] and all(t['pus'] for t in th), 'rank %d: topology fields' % r['rank'])
    if np_ > 1 and r['rank'] > 0:
        check(r['main']['messages_in'] == r['chunks'], 'rank %d: %d chunk messages for %d chunks' % (r['rank'], r['main']['messages_in'], r['chunks']))
if dedicated:
    check(ranks[0]['chunks'] == 0, 'dedicated master computed %r chunks' % ranks[0]['chunks'])
t = json.load(open(tpath))
ev = t['traceEvents']
spans = [e for e in ev if e['ph'] == 'X']
names = {(e['pid'], e['tid']) for e in ev if e['ph'] == 'M' and e['name'] == 'thread_name'}
procs = {e['pid'] for e in ev if e['ph'] == 'M' and e['name'] == 'process_name'}
check(procs == set(range(np_)), 'process tracks %r' % sorted(procs))
want = {(r, tid) for r in range(np_) for tid in range(nt + 1)}
check(names == want, 'thread tracks %r' % sorted(names ^ want))
have = {(e['pid'], e['tid']) for e in spans}
check(want <= have, 'tracks without spans: %r' % sorted(want - have))
check(all(e['dur'] >= 0 and e['ts'] > -1e6 for e in spans), 'negative durations or misaligned clocks')
check({e['name'] for e in spans} <= {'receive', 'compute', 'read', 'send', 'write', 'idle'}, 'span names')
computed = sorted(e['args']['chunk'] for e in spans if e['name'] == 'compute')
check(computed == list(range(nchunks)), 'compute spans: %d for %d chunks' % (len(computed), nchunks))
if np_ > 1:
    for r in range(1, np_):
        if ranks[r]['chunks']:
            check(any(e['pid'] == r and e['tid'] == 0 and e['name'] == 'receive' for e in spans), 'rank %d: no receive span' % r)
            check(any(e['pid'] == r and e['tid'] == 0 and e['name'] == 'send' for e in spans), 'rank %d: no send span' % r)
for b in bad:
    print(b)
PYEOF

chunks_of() { sed -n 's/.*test: \([0-9]*\) chunks.*/\1/p' "$ERR"; }

section "metrics and trace across rank and thread counts"
NPS="1 2 3"
[ "$QUICK" = 1 ] && NPS="1 3"
for np in $NPS; do
    for t in 1 2; do
        rm -f "$TMP/m.json" "$TMP/t.json"
        run "$np" -v -t "$t" -c 4K --metrics "$TMP/m.json" --trace "$TMP/t.json" test -m count "$D/in.txt"
        assert_rc "np $np threads $t: run" 0
        n=$(chunks_of)
        assert_eq "np $np threads $t: -v names the chunks" "1" "$([ -n "$n" ] && [ "$n" -gt 50 ] && echo 1)"
        assert_match "np $np threads $t: -v metrics summary" "$ERR" "metrics: $np ranks?, $((np * t)) threads: compute [0-9.]+ s .*idle [0-9]+%"
        assert_eq "np $np threads $t: metrics and trace hold" "" "$("$PY" "$TMP/check.py" "$TMP/m.json" "$TMP/t.json" "$np" "$t" "${n:-0}" 2>&1)"
        assert_eq "np $np threads $t: no temporary report left" "" "$(find "$TMP" -maxdepth 1 -name '*.tmp-*')"
    done
done

section "bytes out add up to the output"
run 2 -t 2 -c 16K --metrics "$TMP/m.json" -o "$TMP/echo.txt" test "$D/in.txt"
assert_rc "echo run" 0
assert_same_file "echo output intact" "$D/in.txt" "$TMP/echo.txt"
assert_eq "bytes_out = output size" "$SIZE $SIZE" \
    "$("$PY" -c 'import json,sys; m=json.load(open(sys.argv[1])); t=m["totals"]; print(t["bytes_out"], sum(th["bytes_out"] for r in m["ranks"] for th in r["threads"]))' "$TMP/m.json")"

section "a dedicated master computes nothing"
run 3 -v -t 1 -c 4K --dedicated-master --metrics "$TMP/m.json" --trace "$TMP/t.json" test -m count "$D/in.txt"
assert_rc "--dedicated-master run" 0
assert_eq "--dedicated-master: counts" "" "$("$PY" "$TMP/check.py" "$TMP/m.json" "$TMP/t.json" 3 1 "$(chunks_of)" dedicated 2>&1)"

section "no summary without -v"
run 2 -c 4K --metrics "$TMP/m.json" test -m count "$D/in.txt"
assert_rc "run without -v" 0
assert_not_contains "no metrics line without -v" "$ERR" "metrics:"
assert_eq "metrics written without -v" "ok" "$("$PY" -c 'import json,sys; json.load(open(sys.argv[1])); print("ok")' "$TMP/m.json")"

section "--trace-max bounds the trace"
run 2 -t 2 -c 1K --trace "$TMP/t.json" --trace-max 3 test -m count "$D/in.txt"
assert_rc "--trace-max run" 0
assert_match "--trace-max: warning" "$ERR" "spans beyond --trace-max 3 per thread"
assert_eq "--trace-max: at most 3 spans per thread, drops recorded" "ok" "$("$PY" - "$TMP/t.json" <<'PYEOF'
import collections, json, sys
t = json.load(open(sys.argv[1]))
c = collections.Counter((e['pid'], e['tid']) for e in t['traceEvents'] if e['ph'] == 'X')
drops = [e for e in t['traceEvents'] if e['ph'] == 'i']
print('ok' if c and max(c.values()) <= 3 and drops and t['otherData']['spans_dropped'] > 0 else (dict(c), len(drops)))
PYEOF
)"

section "unwritable report paths are refused before the run"
run 2 --metrics "$TMP/nodir/m.json" -o "$TMP/o.txt" test "$D/in.txt"
assert_rc "--metrics in a missing directory" 1
assert_contains "--metrics: message" "$ERR" "cannot write --metrics file '$TMP/nodir/m.json': directory '$TMP/nodir' does not exist"
assert_absent "--metrics refused: no output written" "$TMP/o.txt"
mkdir -p "$TMP/adir"
run 2 --trace "$TMP/adir" test "$D/in.txt"
assert_rc "--trace names a directory" 1
assert_contains "--trace: message" "$ERR" "--trace file '$TMP/adir' is a directory"
run 1 --trace-max 0 test "$D/in.txt"
assert_rc "--trace-max 0: usage error" 2

section "a failed run still reports"
run 2 -c 4K --metrics "$TMP/m.json" test --fail-on "$(sed -n 778p "$D/in.txt")" "$D/in.txt"
assert_rc "failing chunk: exit 1" 1
assert_eq "failed run: exit code and failure counted" "1 1 1" \
    "$("$PY" -c 'import json,sys; m=json.load(open(sys.argv[1])); t=m["totals"]; print(m["mpimap"]["exit_code"], t["chunks_failed"], sum(th["failed"] for r in m["ranks"] for th in r["threads"]))' "$TMP/m.json")"

finish
