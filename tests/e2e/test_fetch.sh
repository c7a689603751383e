#!/bin/bash
# End-to-end: the fetch kernel, against its contract (issue 7), with a local
# HTTP server (tests/e2e/httpserver.py, Python's standard library only):
#   * 200 rows: status, bytes, the sha256 of the body the server sent, empty
#     error, in input order, the header line; comments, blank and
#     whitespace-only lines skipped, whitespace and CR around URLs ignored,
#     a backslash escaped; the same TSV (but the ms column) for
#     -np 1..3 x --threads 1..2 with small batches;
#   * every failure kind of the contract in its row with its error prefix,
#     retried ones with "(after 3 attempts)", in one process and with -np 3:
#     invalid URL, unsupported scheme, DNS failure, connection refused,
#     timeout (no response, and a body too slow), HTTP 404 / 500, a redirect
#     loop, redirects to file: and ftp: refused (and to an absolute http URL
#     followed), --max-bytes (declared and chunked, and the exact limit), a
#     dropped connection; exit 1, the "K of N URLs failed" message, every row
#     written;
#   * retries: which failures are retried (the server counts the requests),
#     --retries 0, the retry waits inside the ms column, --max-redirs;
#   * --concurrency and --per-host (per host name: two names get twice as
#     many), as the server sees them (the largest number of requests it
#     handled at once), in one process and -np 2;
#   * --save: names (row number + sanitized host and path, at most 120 bytes),
#     contents, failed URLs not saved, nothing outside DIR (../ and %2e%2e in
#     URLs), no temporary file left; the same files with -np 2;
#   * standard input, no -o (stdout), -q, several URL files, usage errors.
# MPIMAP_QUICK=1: a smaller -np x --threads matrix.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

export PYTHONDONTWRITEBYTECODE=1
SERVER="$E2E_DIR/httpserver.py"
CHECK="$TMP/fetchcheck.py"
R="$TMP/res" # results files
mkdir -p "$R"

# ------------------------------------------------------------ the server
SRV_PID=
stop_server() {
    if [ -n "$SRV_PID" ]; then
        kill "$SRV_PID" 2>/dev/null || true
        wait "$SRV_PID" 2>/dev/null || true
        SRV_PID=
    fi
}
on_exit() {
    local rc=$?
    set +e
    stop_server
    (exit "$rc")
    cleanup # lib.sh's: ends strays, removes $TMP, exits with $?
}
trap on_exit EXIT

"$PY" "$SERVER" --port-file "$TMP/http.port" >"$TMP/httpserver.log" 2>&1 &
SRV_PID=$!
for _ in $(seq 100); do
    [ -s "$TMP/http.port" ] && break
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.1
done
if [ ! -s "$TMP/http.port" ]; then
    echo "error: the test HTTP server did not start" >&2
    cat "$TMP/httpserver.log" >&2
    exit 1
fi
PORT=$(cat "$TMP/http.port")
U="http://127.0.0.1:$PORT"
# A port nobody listens on: bound, then closed.
REFUSED=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')

srv() { curl -sS --max-time 10 "$U/$1"; }
reset_stats() { srv reset >/dev/null; }
# srv_stat EXPR : a value of the server's /stats (s = the JSON object).
srv_stat() {
    srv stats | "$PY" -c 'import json, sys; s = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}
path_count() { srv_stat "s['by_path'].get('$1', 0)"; }

if [ "$(srv ok/probe?size=5 | wc -c)" = 5 ]; then ok "test HTTP server listening on port $PORT"; else
    fail "test HTTP server listening on port $PORT"
    exit 1
fi

# ------------------------------------------------------------ the checker
# fetchcheck.py rows DESC RESULTS EXPECT [--save]
#   EXPECT: a line per expected row, tab-separated:
#     URL     the url field exactly (escaped as the TSV escapes it)
#     STATUS  regex (fullmatch)
#     BYTES   regex, or <N (an integer below N)
#     SHA     "" (empty), "*" (empty or 64 hex), @ok:NAME:SIZE, @big:N,
#             @chunked:N, @slow:N (the server's bodies), @text:STRING (with
#             \n), or 64 hex digits
#     ERROR   regex (fullmatch); "" = empty
#     MSMIN   optional: the ms column is at least that
# fetchcheck.py save DESC RESULTS DIR : --save's names and contents.
# fetchcheck.py strip RESULTS : RESULTS without the ms column.
# fetchcheck.py sumbytes RESULTS : the sum of the bytes column.
# Each check prints "PASS<TAB>DESC" or "FAIL<TAB>DESC<TAB>DETAIL...".
cat >"$CHECK" <<'PYEOF'
import hashlib, os, re, sys, urllib.parse
sys.path.insert(0, os.environ["E2E_DIR"])
from httpserver import body

HEADER = ["url", "status", "bytes", "sha256", "ms", "error"]

def out(ok, desc, *detail):
    print("\t".join(["PASS" if ok else "FAIL", desc] + [d.replace("\t", "\\t").replace("\n", "\\n") for d in detail]))

def unesc(s):
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}.get(m.group(1), "\\" + m.group(1)), s)

def read_tsv(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return None, "%s: %s" % (path, e.strerror)
    text = data.decode("utf-8", "surrogateescape")
    if text and not text.endswith("\n"):
        return None, "the file does not end with a newline"
    return [ln.split("\t") for ln in text.split("\n")[:-1]], None

def sha_of(spec):
    if spec.startswith("@ok:"):
        _, name, size = spec.split(":", 2)
        return hashlib.sha256(body(name, int(size))).hexdigest()
    for kind in ("big", "chunked", "slow"):
        if spec.startswith("@%s:" % kind):
            return hashlib.sha256(body(kind, int(spec.split(":")[1]))).hexdigest()
    if spec.startswith("@text:"):
        return hashlib.sha256(spec[6:].replace("\\n", "\n").encode()).hexdigest()
    return spec

def rows(desc, results, expect, save=False):
    header = HEADER + (["file"] if save else [])
    rs, err = read_tsv(results)
    if rs is None:
        out(False, desc + ": results readable", err)
        print("SHOWLAST")
        return
    if not rs:
        out(False, desc + ": header line", "empty results")
        return
    out(rs[0] == header, desc + ": header line", "expected: " + "\t".join(header), "actual:   " + "\t".join(rs[0]))
    with open(expect) as f:
        exp = [ln.rstrip("\n").split("\t") for ln in f if ln.strip()]
    rs = rs[1:]
    out(len(rs) == len(exp), desc + ": %d rows (one per URL)" % len(exp), "actual: %d rows" % len(rs))
    for i, e in enumerate(exp):
        url, st, by, sh, er = e[:5]
        msmin = int(e[5]) if len(e) > 5 and e[5] else None
        d = "%s: row %d (%s)" % (desc, i + 1, url.replace(os.environ.get("U", "\0"), "U"))
        if i >= len(rs):
            out(False, d, "missing")
            continue
        r = rs[i]
        bad = []
        if len(r) != len(header):
            out(False, d, "%d fields: %r" % (len(r), r))
            continue
        if r[0] != url:
            bad.append("url %r, expected %r" % (r[0], url))
        if not re.fullmatch(st, r[1]):
            bad.append("status %r, expected /%s/" % (r[1], st))
        if by.startswith("<"):
            if not (r[2].isdigit() and int(r[2]) < int(by[1:])):
                bad.append("bytes %r, expected %s" % (r[2], by))
        elif not re.fullmatch(by, r[2]):
            bad.append("bytes %r, expected /%s/" % (r[2], by))
        if sh == "*":
            if not re.fullmatch(r"(|[0-9a-f]{64})", r[3]):
                bad.append("sha256 %r, expected empty or 64 lowercase hex digits" % r[3])
        elif r[3] != sha_of(sh):
            bad.append("sha256 %r, expected %r (%s)" % (r[3], sha_of(sh), sh or "empty"))
        if not re.fullmatch(r"[0-9]+", r[4]):
            bad.append("ms %r is not an integer" % r[4])
        elif msmin is not None and int(r[4]) < msmin:
            bad.append("ms %s, expected >= %d" % (r[4], msmin))
        if not re.fullmatch(er, r[5]):
            bad.append("error %r, expected /%s/" % (r[5], er))
        out(not bad, d + ": status %s, bytes %s, sha256, error%s" % (r[1], r[2], " " + repr(r[5]) if r[5] else " empty"), *bad)

SAFE = re.compile(rb"[^A-Za-z0-9._-]")

def sanitize(s):
    return SAFE.sub(b"_", s.encode("utf-8", "surrogateescape")).decode()

def dedot(path):
    outp = []
    for seg in path.split("/"):
        if seg == "..":
            if len(outp) > 1:
                outp.pop()
        elif seg != ".":
            outp.append(seg)
    p = "/".join(outp)
    return p if p.startswith("/") else "/" + p

def candidates(url):
    """Every reading of 'sanitized host and path' we accept, with its label."""
    u = urllib.parse.urlsplit(url)
    c = {}
    for hl, host in (("host", u.hostname or ""), ("host:port", u.netloc)):
        for pl, path in (("raw path", u.path), ("dot segments removed", dedot(u.path)),
                         ("percent-decoded path", urllib.parse.unquote(u.path))):
            for ql, q in (("", ""), (" + query", "?" + u.query if u.query else "")):
                s = sanitize(host + path + q)
                c.setdefault(s, "%s + %s%s" % (hl, pl, ql))
    return c

def save(desc, results, d):
    rs, err = read_tsv(results)
    if rs is None or not rs:
        out(False, desc + ": results readable", err or "empty")
        return
    if rs[0] != HEADER + ["file"]:
        out(False, desc + ": header has the file column", "actual: " + "\t".join(rs[0]))
    names = set()
    readings = set()
    for i, r in enumerate(rs[1:], 1):
        if len(r) != 7:
            out(False, "%s: row %d has 7 fields" % (desc, i), repr(r))
            continue
        url, status, _, sha, _, error, name = r
        url = unesc(url)
        dd = "%s: row %d (%s)" % (desc, i, url.replace(os.environ.get("U", "\0"), "U"))
        success = status.startswith("2") and len(status) == 3 and error == ""
        if not success:
            out(name == "", dd + ": failed, not saved (file column empty)", "file column: %r" % name)
            continue
        bad = []
        m = re.fullmatch(r"([0-9]{6,})-(.*)", name)
        if not m:
            bad.append("name %r is not NNNNNN-<sanitized>" % name)
        else:
            if int(m.group(1)) != i:
                bad.append("row number %s in the name, expected %d" % (m.group(1), i))
            s = m.group(2)
            if len(s.encode()) > 120:
                bad.append("sanitized part is %d bytes (> 120)" % len(s.encode()))
            if s.startswith(".") or name.startswith("."):
                bad.append("name starts with '.'")
            if SAFE.search(s.encode("utf-8", "surrogateescape")):
                bad.append("name has bytes outside [A-Za-z0-9._-]")
            cands = candidates(url)
            hit = cands.get(s)
            if hit is None:
                for cand, label in cands.items():
                    if len(cand) > len(s) and len(s) in (113, 120) and cand.startswith(s):
                        hit = label + ", truncated to %d" % len(s)
                        break
            if hit is None:
                bad.append("%r is none of the sanitized forms %r" % (s, sorted(candidates(url))))
            else:
                if ", truncated" not in hit:
                    readings.add(hit)
        if name in names:
            bad.append("name used twice")
        names.add(name)
        p = os.path.join(d, name)
        if "/" in name or not os.path.isfile(p):
            bad.append("%s is not a file in DIR" % name)
        else:
            with open(p, "rb") as f:
                got = hashlib.sha256(f.read()).hexdigest()
            if got != sha:
                bad.append("saved content sha256 %s != row sha256 %s" % (got, sha))
        out(not bad, dd + ": saved as %s, content = body" % name, *bad)
    try:
        listing = set(os.listdir(d))
    except OSError as e:
        listing = set()
        out(False, desc + ": DIR exists", str(e))
    out(listing == names, desc + ": DIR holds exactly the saved files (no temporary, nothing else)",
        "extra: %r" % sorted(listing - names), "missing: %r" % sorted(names - listing))
    print("NOTE\tsaved names read as: %s" % "; ".join(sorted(readings)))

def strip(results):
    rs, err = read_tsv(results)
    if rs is None:
        sys.exit(err)
    for r in rs:
        print("\t".join(r[:4] + r[5:]))

def sumbytes(results):
    rs, _ = read_tsv(results)
    print(sum(int(r[2]) for r in rs[1:] if r[2].isdigit()))

cmd = sys.argv[1]
if cmd == "rows":
    rows(sys.argv[2], sys.argv[3], sys.argv[4], len(sys.argv) > 5 and sys.argv[5] == "--save")
elif cmd == "save":
    save(sys.argv[2], sys.argv[3], sys.argv[4])
elif cmd == "strip":
    strip(sys.argv[2])
elif cmd == "sumbytes":
    sumbytes(sys.argv[2])
PYEOF
export E2E_DIR U

# pycheck ARGS... : run the checker; its PASS/FAIL lines become ok/fail.
pycheck() {
    local line tag rest parts
    "$PY" "$CHECK" "$@" >"$TMP/check.out" 2>&1 || echo "FAIL	checker: $* (exit $?)	$(tail -n 3 "$TMP/check.out" | tr '\n' ' ')" >>"$TMP/check.out"
    while IFS= read -r line; do
        tag=${line%%$'\t'*}
        rest=${line#*$'\t'}
        case $tag in
            PASS) ok "$rest" ;;
            FAIL)
                IFS=$'\t' read -ra parts <<<"$rest"
                fail "${parts[@]}"
                ;;
            NOTE) echo "# note: $rest" ;;
            SHOWLAST) show_last ;;
            *) echo "    $line" ;;
        esac
    done <"$TMP/check.out"
}
rows() { pycheck rows "$@"; }

# exp URL STATUS BYTES SHA ERROR [MSMIN] : one line of an EXPECT file (stdout).
exp() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "${6:-}"; }
# expok URL NAME SIZE : a 200 row of /ok/.../NAME?size=SIZE.
expok() { exp "$1" 200 "$3" "@ok:$2:$3" ""; }

# Background runs (mpirun's start-up is mostly waiting, which overlaps).
P="$TMP/bg"
mkdir -p "$P"
JOBS=3
bgrun() { # NP ID ARGS... (NP 0: one process without mpirun)
    local np=$1 id=$2
    shift 2
    while [ "$(jobs -rp | wc -l)" -ge $((JOBS + 1)) ]; do wait -n || true; done
    (
        t0=$(date +%s%N)
        rc=0
        if [ "$np" = 0 ]; then run_single "$@"; else run_np "$np" "$@"; fi \
            >"$P/$id.out" 2>"$P/$id.err" </dev/null || rc=$?
        echo "$rc" >"$P/$id.rc"
        echo $((($(date +%s%N) - t0) / 1000000000)) >"$P/$id.secs"
    ) &
}
# bgwait : wait for the background runs (not for the server).
bgwait() {
    local j
    for j in $(jobs -rp); do
        [ "$j" = "$SRV_PID" ] || wait "$j" || true
    done
}
bg_last() { # ID : the background run ID becomes "the last run"
    RC=$(cat "$P/$1.rc" 2>/dev/null || echo "none (the run did not finish)")
    # shellcheck disable=SC2034 # read by lib.sh's assert_fast
    SECS=$(cat "$P/$1.secs" 2>/dev/null || echo 0)
    cp "$P/$1.out" "$OUT" 2>/dev/null || : >"$OUT"
    cp "$P/$1.err" "$ERR" 2>/dev/null || : >"$ERR"
}

summary_re() { # N K F [END] : the summary line's regex (END "$": nothing after "T s")
    echo "^mpimap: fetch: $1 URLs, $2 ok, $3 failed, [0-9]+ bytes, [0-9]+(\.[0-9]+)? s${4:-( |\$)}"
}

# ============================================================ 200 rows
section "200 rows: order, header, comments; the same TSV for -np x --threads"
L="$TMP/ok.txt"
E="$TMP/ok.expect"
: >"$L"
: >"$E"
{
    echo "# a comment line"
    echo ""
    echo "   "
    printf '#%s\n' "$U/ok/commented?size=7"
} >>"$L"
SIZES=(0 1 31 32 33 100 4096 70001)
for i in $(seq 1 24); do
    size=${SIZES[$((i % 8))]}
    url="$U/ok/m$i?size=$size&delay=$(((i * 37) % 120))"
    case $((i % 6)) in
        1) printf '   %s\n' "$url" >>"$L" ;;  # leading spaces
        2) printf '\t%s \t\n' "$url" >>"$L" ;; # tabs and a space around
        3) printf '%s\r\n' "$url" >>"$L" ;;   # CRLF
        4) printf '%s\n\n# between\n' "$url" >>"$L" ;;
        *) printf '%s\n' "$url" >>"$L" ;;
    esac
    expok "$url" "m$i" "$size" >>"$E"
done
{
    echo "$U/redirect/2"
    echo "$U/slow?size=3000&rate=30000"
    echo "$U/big?size=200000"
    echo "$U/chunked?size=150000"
    echo "$U/ok/back\\slash?size=10"
    echo "$U/ok/m1?size=33&delay=0"
} >>"$L"
{
    exp "$U/redirect/2" 200 5 "@text:done\n" ""
    exp "$U/slow?size=3000&rate=30000" 200 3000 "@slow:3000" ""
    exp "$U/big?size=200000" 200 200000 "@big:200000" ""
    exp "$U/chunked?size=150000" 200 150000 "@chunked:150000" ""
    expok "$U/ok/back\\\\slash?size=10" 'back\slash' 10
    expok "$U/ok/m1?size=33&delay=0" m1 33
} >>"$E"
NOK=$(wc -l <"$E")

if [ "$QUICK" = 1 ]; then LAYOUTS="1:1 3:2"; else LAYOUTS="1:1 1:2 2:1 2:2 3:1 3:2"; fi
for l in $LAYOUTS; do
    rm -f "$R/ok-$l.tsv"
    bgrun "${l%:*}" "ok-$l" -o "$R/ok-$l.tsv" --threads "${l#*:}" fetch --batch 4 "$L"
done
bgwait
bg_last "ok-1:1"
assert_rc "$NOK URLs, all 200 (-np 1 --threads 1)" 0
rows "-np 1 --threads 1" "$R/ok-1:1.tsv" "$E"
assert_match "summary line" "$ERR" "$(summary_re "$NOK" "$NOK" 0)"
assert_match "summary line: ends with the rate" "$ERR" "$(summary_re "$NOK" "$NOK" 0 ' \([0-9]+(\.[0-9]+)? URLs/s\)$')"
total=$("$PY" "$CHECK" sumbytes "$R/ok-1:1.tsv")
assert_match "summary: bytes = the sum of the bytes column ($total)" "$ERR" "^mpimap: fetch: .*, $total bytes, "
assert_not_contains "all succeeded: no error message" "$ERR" "mpimap: error:"
assert_no_tmp "-o: no temporary file left" "$R" "ok-1:1.tsv"
"$PY" "$CHECK" strip "$R/ok-1:1.tsv" >"$R/ok.ref" || true
for l in $LAYOUTS; do
    [ "$l" = 1:1 ] && continue
    bg_last "ok-$l"
    assert_rc "-np ${l%:*} --threads ${l#*:} --batch 4" 0
    "$PY" "$CHECK" strip "$R/ok-$l.tsv" >"$R/ok-$l.stripped" 2>&1 || true
    assert_same_file "-np ${l%:*} --threads ${l#*:}: the same TSV as -np 1 --threads 1 (but ms)" "$R/ok.ref" "$R/ok-$l.stripped"
done

# ============================================================ failures
section "every failure kind in its row; exit 1; every row written"
L="$TMP/fail.txt"
E="$TMP/fail.expect"
A3=' \(after 3 attempts\)'
cat >"$L" <<EOF
not a url
ftp://x/
http://nonexistent.invalid/
http://127.0.0.1:$REFUSED/
$U/hang
$U/status/404
$U/status/500
$U/loop
$U/redirect/3
$U/big?size=2000000
$U/chunked?size=2000000
$U/big?size=1048576
$U/chunked?size=1048577
$U/drop
$U/ok/a	b
$U/slow?size=100000&rate=20000
$U/goto?to=file:///etc/hostname
$U/goto?to=ftp://127.0.0.1:$PORT/x
$U/goto?to=$U/ok/viagoto
$U/ok/fine
EOF
{
    exp "not a url" 0 0 "" "invalid URL.*"
    exp "ftp://x/" 0 0 "" "unsupported scheme.*"
    exp "http://nonexistent.invalid/" 0 0 "" "could not resolve host(?!.*after).*"
    exp "http://127.0.0.1:$REFUSED/" 0 0 "" "connection refused.*$A3"
    exp "$U/hang" 0 0 "" "timeout.*$A3" 3000
    exp "$U/status/404" 404 11 "@text:status 404\n" "HTTP 404(?!.*after).*"
    exp "$U/status/500" 500 11 "@text:status 500\n" "HTTP 500.*$A3"
    exp "$U/loop" "302|0" "[0-9]+" "*" "too many redirects(?!.*after).*"
    exp "$U/redirect/3" 200 5 "@text:done\n" ""
    exp "$U/big?size=2000000" "200|0" "<2000000" "" "body larger than --max-bytes(?!.*after).*"
    exp "$U/chunked?size=2000000" "200|0" "<2000000" "" "body larger than --max-bytes(?!.*after).*"
    exp "$U/big?size=1048576" 200 1048576 "@big:1048576" ""
    exp "$U/chunked?size=1048577" "200|0" "<1048578" "" "body larger than --max-bytes(?!.*after).*"
    exp "$U/drop" 0 0 "" "(connection reset|empty reply).*$A3"
    exp "$U/ok/a\\tb" 0 0 "" "invalid URL.*"
    exp "$U/slow?size=100000&rate=20000" "200|0" "<100000" "" "timeout.*$A3" 3000
    exp "$U/goto?to=file:///etc/hostname" "302|0" "[0-9]+" "*" "unsupported scheme(?!.*after).*"
    exp "$U/goto?to=ftp://127.0.0.1:$PORT/x" "302|0" "[0-9]+" "*" "unsupported scheme(?!.*after).*"
    expok "$U/goto?to=$U/ok/viagoto" viagoto 100
    expok "$U/ok/fine" fine 100
} >"$E"
NF=$(wc -l <"$E")
FOPTS=(fetch --timeout 1 --retry-delay 0.05 --max-bytes 1M)
rm -f "$R/fail-1.tsv" "$R/fail-3.tsv"
bgrun 0 fail-1 -o "$R/fail-1.tsv" --threads 2 "${FOPTS[@]}" "$L"
bgrun 3 fail-3 -o "$R/fail-3.tsv" --threads 2 "${FOPTS[@]}" --batch 2 "$L"
bgwait
for n in 1 3; do
    bg_last "fail-$n"
    what=$([ "$n" = 1 ] && echo "one process" || echo "-np 3 --batch 2")
    assert_rc "failures ($what): exit 1" 1
    assert_exists "failures ($what): results written" "$R/fail-$n.tsv"
    rows "failures ($what)" "$R/fail-$n.tsv" "$E"
    assert_contains "failures ($what): error message" "$ERR" "mpimap: error: $((NF - 4)) of $NF URLs failed"
    assert_match "failures ($what): summary line" "$ERR" "$(summary_re "$NF" 4 $((NF - 4)))"
    assert_no_tmp "failures ($what): no temporary file" "$R" "fail-$n.tsv"
    assert_fast "failures ($what): ended in time (the hang is cut by --timeout)" 30
done

# ============================================================ retries
section "retries, --retries 0, --max-redirs"
L="$TMP/retry.txt"
E="$TMP/retry.expect"
cat >"$L" <<EOF
$U/flaky/k1?fail=2
$U/status/404
$U/flaky/k4?fail=1&code=429
$U/flaky/k5?fail=5&code=502
$U/flaky/k6?fail=1&code=403
$U/flaky/k7?fail=1&code=408
$U/flaky/k8?fail=1&code=504
$U/flaky/k9?fail=1&code=501
EOF
{
    exp "$U/flaky/k1?fail=2" 200 3 "@text:ok\n" "" 600
    exp "$U/status/404" 404 11 "@text:status 404\n" "HTTP 404(?!.*after).*"
    exp "$U/flaky/k4?fail=1&code=429" 200 3 "@text:ok\n" "" 200
    exp "$U/flaky/k5?fail=5&code=502" 502 11 "@text:status 502\n" "HTTP 502.*$A3" 600
    exp "$U/flaky/k6?fail=1&code=403" 403 11 "@text:status 403\n" "HTTP 403(?!.*after).*"
    exp "$U/flaky/k7?fail=1&code=408" 200 3 "@text:ok\n" "" 200
    exp "$U/flaky/k8?fail=1&code=504" 200 3 "@text:ok\n" "" 200
    exp "$U/flaky/k9?fail=1&code=501" 501 11 "@text:status 501\n" "HTTP 501(?!.*after).*"
} >"$E"
reset_stats
rm -f "$R/retry.tsv"
run_one -o "$R/retry.tsv" fetch --retries 2 --retry-delay 0.2 "$L"
assert_rc "--retries 2 --retry-delay 0.2: some URLs fail" 1
rows "--retries 2" "$R/retry.tsv" "$E"
srv stats >"$TMP/stats.json"
for pc in /flaky/k1:3 /status/404:1 /flaky/k4:2 /flaky/k5:3 /flaky/k6:1 /flaky/k7:2 /flaky/k8:2 /flaky/k9:1; do
    p=${pc%:*}
    assert_eq "--retries 2: the server saw $p ${pc#*:} time(s)" "${pc#*:}" \
        "$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["by_path"].get(sys.argv[2], 0))' "$TMP/stats.json" "$p")"
done

reset_stats
# /drop first: on a fresh connection (libcurl itself retries a request
# once when a reused keep-alive connection turns out to be closed).
printf '%s\n' "$U/drop" "$U/flaky/k2?fail=2" >"$TMP/retry0.txt"
{
    exp "$U/drop" 0 0 "" "(connection reset|empty reply)(?!.*after).*"
    exp "$U/flaky/k2?fail=2" 503 11 "@text:status 503\n" "HTTP 503(?!.*after).*"
} >"$TMP/retry0.expect"
rm -f "$R/retry0.tsv"
run_one -o "$R/retry0.tsv" fetch --retries 0 "$TMP/retry0.txt"
assert_rc "--retries 0" 1
rows "--retries 0" "$R/retry0.tsv" "$TMP/retry0.expect"
assert_eq "--retries 0: the server saw /flaky/k2 once" 1 "$(path_count /flaky/k2)"
assert_eq "--retries 0: the server saw /drop once" 1 "$(path_count /drop)"

printf '%s\n' "$U/redirect/2" "$U/redirect/3" >"$TMP/redirs.txt"
{
    exp "$U/redirect/2" 200 5 "@text:done\n" ""
    exp "$U/redirect/3" "302|0" "[0-9]+" "*" "too many redirects.*"
} >"$TMP/redirs.expect"
rm -f "$R/redirs.tsv"
run_one -o "$R/redirs.tsv" fetch --max-redirs 2 "$TMP/redirs.txt"
assert_rc "--max-redirs 2" 1
rows "--max-redirs 2" "$R/redirs.tsv" "$TMP/redirs.expect"

# ============================================================ concurrency
section "--concurrency and --per-host, as the server sees them"
for i in $(seq 1 64); do echo "$U/ok/c$i?delay=300"; done >"$TMP/c64.txt"
for i in $(seq 1 16); do echo "$U/ok/h$i?delay=300"; done >"$TMP/h16.txt"
# conc DESC MIN MAX URLS NP ARGS... : run, then MIN <= inflight_max <= MAX
# and every URL requested once.
conc() {
    local desc=$1 min=$2 max=$3 urls=$4 np=$5 n m
    shift 5
    reset_stats
    if [ "$np" = 0 ]; then run_one -o "$R/conc.tsv" "$@" "$urls"; else run "$np" -o "$R/conc.tsv" "$@" "$urls"; fi
    assert_rc "$desc" 0
    n=$(wc -l <"$urls")
    assert_eq "$desc: $n requests" "$n" "$(srv_stat "s['requests']")"
    m=$(srv_stat "s['inflight_max']")
    if [ "$m" -ge "$min" ] && [ "$m" -le "$max" ]; then
        ok "$desc: at most $max at once, at least $min (the server saw $m)"
    else
        fail "$desc: at most $max at once, at least $min" "the server saw $m requests at once"
    fi
}
conc "--threads 1 --concurrency 8, one process" 6 8 "$TMP/c64.txt" 0 --threads 1 fetch --concurrency 8
conc "--threads 1 --concurrency 32, one process" 9 32 "$TMP/c64.txt" 0 --threads 1 fetch --concurrency 32
conc "--threads 1 --per-host 2 --concurrency 16, one process" 1 2 "$TMP/h16.txt" 0 --threads 1 fetch --per-host 2 --concurrency 16
conc "--threads 2 --concurrency 8, one process" 1 8 "$TMP/c64.txt" 0 --threads 2 fetch --concurrency 8 --batch 8
conc "-np 2 --threads 2 --concurrency 8" 1 8 "$TMP/c64.txt" 2 --threads 2 fetch --concurrency 8 --batch 8
conc "-np 2 --threads 1 --per-host 4 --concurrency 16" 1 4 "$TMP/h16.txt" 2 --threads 1 fetch --per-host 4 --concurrency 16 --batch 4
for i in $(seq 1 16); do echo "$U/ok/h$i?delay=300"; echo "http://localhost:$PORT/ok/l$i?delay=300"; done >"$TMP/h32.txt"
conc "--threads 1 --per-host 2, two host names (127.0.0.1, localhost)" 3 4 "$TMP/h32.txt" 0 --threads 1 fetch --per-host 2 --concurrency 16
E="$TMP/c64.expect"
for i in $(seq 1 64); do exp "$U/ok/c$i?delay=300" 200 100 "@ok:c$i:100" "" 300; done >"$E"
reset_stats
rm -f "$R/c64.tsv"
run_one -o "$R/c64.tsv" --threads 1 fetch --concurrency 16 "$TMP/c64.txt"
assert_rc "64 slow URLs, --concurrency 16" 0
rows "64 slow URLs" "$R/c64.tsv" "$E"

# ============================================================ --save
section "--save DIR"
SB="$TMP/savebox"
SD="$SB/save" # created by mpimap
mkdir -p "$SB"
LONG=$(printf 'L%.0s' $(seq 200))
L="$TMP/save.txt"
cat >"$L" <<EOF
$U/ok/s1?size=1000
$U/ok/q?size=10
$U/ok/q?size=20
$U/status/404
$U/ok/../../ok/dots?size=50
$U/ok/a/b/%2e%2e/%2e%2e/pct?size=60
$U/ok/$LONG?size=70
$U/ok/.hidden?size=80
$U/big?size=300000
$U/chunked?size=100000
$U/ok/x/..%2f..%2f..%2fescape?size=90
$U/drop
$U/slow?size=100000&rate=20000
$U/chunked?size=2000000
EOF
{
    expok "$U/ok/s1?size=1000" s1 1000
    expok "$U/ok/q?size=10" q 10
    expok "$U/ok/q?size=20" q 20
    exp "$U/status/404" 404 11 "@text:status 404\n" "HTTP 404(?!.*after).*"
    expok "$U/ok/../../ok/dots?size=50" dots 50
    expok "$U/ok/a/b/%2e%2e/%2e%2e/pct?size=60" pct 60
    expok "$U/ok/$LONG?size=70" "$LONG" 70
    expok "$U/ok/.hidden?size=80" .hidden 80
    exp "$U/big?size=300000" 200 300000 "@big:300000" ""
    exp "$U/chunked?size=100000" 200 100000 "@chunked:100000" ""
    expok "$U/ok/x/..%2f..%2f..%2fescape?size=90" ../../../escape 90
    exp "$U/drop" 0 0 "" "(connection reset|empty reply).*"
    exp "$U/slow?size=100000&rate=20000" "200|0" "<100000" "" "timeout.*"
    exp "$U/chunked?size=2000000" "200|0" "<2000000" "" "body larger than --max-bytes.*"
} >"$E.save"
touch "$TMP/marker"
sleep 0.05
rm -f "$R/save.tsv"
# The last two fail after a part of their body was written (partial files
# must go). --retries 0: once is enough.
SOPTS=(--save "$SD" --retries 0 --timeout 1 --max-bytes 1M)
run_one -o "$R/save.tsv" --threads 2 fetch "${SOPTS[@]}" "$L"
assert_rc "--save: three URLs fail" 1
rows "--save" "$R/save.tsv" "$E.save" --save
pycheck save "--save" "$R/save.tsv" "$SD"
outside=$(find "$TMP" -newer "$TMP/marker" \( -type f -o -type l \) -not -path "$SD/*" \
    -not -path "$R/*" -not -path "$TMP/last.*" -not -path "$TMP/check.out" -not -path "$P/*" 2>/dev/null)
if [ -z "$outside" ]; then ok "--save: nothing written outside DIR"; else
    fail "--save: nothing written outside DIR" "found: $outside"
fi
assert_eq "--save: DIR's parent holds only DIR" "save" "$(ls -A "$SB")"
SD2="$SB/save2"
rm -f "$R/save2.tsv"
SOPTS[1]=$SD2
run 2 -o "$R/save2.tsv" --threads 2 fetch "${SOPTS[@]}" --batch 2 "$L"
assert_rc "--save with -np 2 --batch 2: three URLs fail" 1
pycheck save "--save with -np 2" "$R/save2.tsv" "$SD2"
# Without bytes and the error's details: how much of /slow arrives within
# --timeout varies.
for n in 1 2; do
    f="$R/save.tsv"
    [ "$n" = 2 ] && f="$R/save2.tsv"
    { "$PY" "$CHECK" strip "$f" 2>&1 || true; } | cut -f1,2,4- |
        awk -F '\t' 'BEGIN { OFS = "\t" } { sub(/:.*/, "", $4); print }' >"$TMP/save$n.stripped"
done
assert_same_file "--save with -np 2: the same TSV (but ms, bytes, error details)" "$TMP/save1.stripped" "$TMP/save2.stripped"
if diff -r "$SD" "$SD2" >"$TMP/savediff" 2>&1; then ok "--save with -np 2: the same files in DIR"; else
    fail "--save with -np 2: the same files in DIR" "$(head -n 5 "$TMP/savediff")"
fi

# ============================================================ stdin, -q, usage
section "standard input, stdout, -q"
printf '%s\n' "# from stdin" "$U/ok/in1?size=5" "" "$U/ok/in2?size=6" >"$TMP/in.txt"
{
    expok "$U/ok/in1?size=5" in1 5
    expok "$U/ok/in2?size=6" in2 6
} >"$TMP/in.expect"
run_in "$TMP/in.txt" 2 fetch -
assert_rc "URLs from standard input (-np 2), results on stdout" 0
cp "$OUT" "$R/stdin.tsv"
rows "stdin, stdout" "$R/stdin.tsv" "$TMP/in.expect"
run_one -q fetch "$TMP/in.txt"
assert_rc "-q, URLs from a file, no -o" 0
cp "$OUT" "$R/q.tsv"
rows "no -o" "$R/q.tsv" "$TMP/in.expect"
assert_empty "-q: nothing on stderr" "$ERR"
printf '%s\n' "$U/ok/in3?size=7" >"$TMP/in3.txt"
{
    cat "$TMP/in.expect"
    expok "$U/ok/in3?size=7" in3 7
    cat "$TMP/in.expect"
} >"$TMP/in3.expect"
run 2 -o "$R/multi.tsv" fetch "$TMP/in.txt" "$TMP/in3.txt" "$TMP/in.txt"
assert_rc "three URL files (one of them twice)" 0
rows "three URL files: rows in the order of the files" "$R/multi.tsv" "$TMP/in3.expect"

section "usage errors"
run_one -o "$R/none.tsv" fetch "$TMP/no-such-urls.txt"
if [ "$RC" = 1 ] || [ "$RC" = 2 ]; then ok "a missing URL file: exit $RC"; else
    fail "a missing URL file: exit 1 or 2" "exit $RC"
    show_last
fi
assert_contains "a missing URL file: the message names it" "$ERR" "no-such-urls.txt"
assert_absent "a missing URL file: no results file" "$R/none.tsv"
run_one -o "$R/none.tsv" fetch --concurrency 0 "$TMP/in.txt"
assert_rc "--concurrency 0" 2
assert_contains "--concurrency 0: the message names the option" "$ERR" "--concurrency"
assert_absent "--concurrency 0: no results file" "$R/none.tsv"
run_one -o "$R/none.tsv" fetch
assert_rc "no URL file" 2
assert_absent "no URL file: no results file" "$R/none.tsv"
run_one -o "$R/none.tsv" fetch --max-bytes lots "$TMP/in.txt"
assert_rc "--max-bytes lots" 2
assert_contains "--max-bytes lots: the message names the option" "$ERR" "--max-bytes"

stop_server
if [ -s "$TMP/httpserver.log" ]; then
    fail "the test HTTP server reported no error" "$(head -c 2000 "$TMP/httpserver.log")"
else
    ok "the test HTTP server reported no error"
fi
assert_no_strays "no stray processes"
finish
