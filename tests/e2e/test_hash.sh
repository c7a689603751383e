#!/bin/bash
# End-to-end: the hash kernel (create a manifest, and --check), against its
# contract. The references are the real tools (tests/e2e/hashref.py runs
# sha256sum, sha512sum, b2sum, md5sum, xxhsum -H1/-H2/-H3 on the files in
# LC_ALL=C order; it never runs mpimap):
#   * a generated tree (~300 files, empty to 3 MiB, nested and empty
#     directories, names with spaces, `\`, LF, CR, TAB, non-UTF-8 bytes, names
#     that sort trickily: a-b a.b a/ a0 B): every algorithm's manifest, plain
#     and --tag, byte-identical to the tools' output; sha256sum -c, sha512sum
#     -c, b2sum -c, md5sum -c accept it, xxhsum -c too (on names without
#     escapes); the summary line; how paths are printed (trailing slash, ./,
#     absolute, several PATHs, a file PATH);
#   * identical bytes for -np 1..3 x --threads 1..2, --chunk-size 1 and 64M;
#   * symbolic links (skipped with a note inside directories, followed with
#     --follow, a loop terminates with a note, followed on the command line),
#     FIFO, socket, character device skipped with a note, -q;
#   * errors: unreadable file and unlistable directory (as nobody), missing
#     PATH, a file vanishing before it is opened, a file growing while it is
#     read (MPIMAP_TEST_HASH_DELAY_MS): message, exit 1, nothing under -o,
#     the other files' lines in -o.incomplete, inputs unchanged; usage errors;
#   * -o inside the hashed directory;
#   * --check: OK / FAILED / FAILED open or read equal to sha256sum -c's
#     output, warning counts, the report under -o, improperly formatted lines
#     (--strict, none valid), BSD lines of several algorithms, `*` lines,
#     escaped lines, the manifest on standard input, 32/128-hex manifests
#     needing --algo;
#   * 20,000 empty files (10,000 with MPIMAP_QUICK=1) under -np 2.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

HASHREF="$E2E_DIR/hashref.py"
href() { "$PY" "$HASHREF" "$@"; }
W="$TMP/w"   # the working directory of every run: hashed paths are relative to it
R="$TMP/ref" # the tools' manifests
O="$TMP/out" # mpimap's outputs
mkdir -p "$W" "$R" "$O"
chmod 755 "$W"
cd "$W"
ALGOS=(sha256 sha512 blake2b md5 xxh64 xxh128 xxh3)
declare -A TOOL=([sha256]=sha256sum [sha512]=sha512sum [blake2b]=b2sum [md5]=md5sum
    [xxh64]="xxhsum -H1" [xxh128]="xxhsum -H2" [xxh3]="xxhsum -H3")
E256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

# assert_line DESC FILE LINE : FILE has exactly this line.
assert_line() {
    if grep -qaxF -- "$3" "$2"; then
        ok "$1"
    else
        fail "$1" "expected $(basename "$2") to have the line: '$3'"
        show_file "$(basename "$2")" "$2" 15
    fi
}
# assert_err_line DESC PATH REASON : stderr has "mpimap: error: PATH: ...REASON...".
assert_err_line() {
    if grep -aF -- "mpimap: error: $2: " "$ERR" | grep -qaF -- "$3"; then
        ok "$1"
    else
        fail "$1" "expected stderr to have a line 'mpimap: error: $2: ...$3...'"
        show_file stderr "$ERR" 15
    fi
}
# assert_no_diag DESC : no error or warning on stderr in the last run.
assert_no_diag() {
    if ! grep -qaE '^mpimap: (error|warning): ' "$ERR"; then ok "$1"; else
        fail "$1" "unexpected error or warning"
        show_file stderr "$ERR" 15
    fi
}
# expect_cmd FILE CMD... : CMD's standard output into FILE, whatever its exit code.
expect_cmd() {
    local f=$1
    shift
    "$@" >"$f" 2>/dev/null || true
}

if ! run_single kernels 2>/dev/null | awk '{print $1}' | grep -qx hash; then
    fail "mpimap kernels lists hash" "$(run_single kernels 2>&1 | awk '{print $1}' | tr '\n' ' ')"
    finish
fi

section "the tree and the tools' manifests"
href mktree tree
NFILES=$(find tree -type f -printf x | wc -c) # names with LF: no wc -l
NBYTES=$(find tree -type f -printf '%s\n' | awk '{s += $1} END {print s}')
for a in "${ALGOS[@]}"; do
    href manifest "$a" tree >"$R/$a"
    href manifest "$a" --tag tree >"$R/$a.tag"
done
# The reference itself: one line per file, and sha256sum -c accepts it.
if [ "$(wc -l <"$R/sha256")" = "$NFILES" ] && sha256sum -c --quiet "$R/sha256" >/dev/null 2>&1; then
    ok "reference: $NFILES files, $NBYTES bytes, sha256sum -c accepts it"
else
    fail "reference manifest" "$(wc -l <"$R/sha256") lines for $NFILES files"
fi
ESCAPED=$(grep -ac '^[\]' "$R/sha256" || true)
assert_eq "reference: 6 escaped lines (\\, LF, CR)" 6 "$ESCAPED"
STATE0=$(href state tree | sha256sum)

section "every algorithm, plain and --tag, equals the tools' output"
for a in "${ALGOS[@]}"; do
    rm -f "$O/$a" "$O/$a.tag"
    run_one -o "$O/$a" hash --algo "$a" tree
    assert_rc "hash --algo $a tree" 0
    assert_same_file "--algo $a: byte-identical to ${TOOL[$a]}'s manifest" "$R/$a" "$O/$a"
    assert_no_diag "--algo $a: no error or warning"
    if [ "$a" = sha256 ]; then
        assert_match "summary line: $NFILES files, $NBYTES bytes, sha256" "$ERR" \
            "^mpimap: hash: $NFILES files, $NBYTES bytes, sha256(,|$)"
    fi
    run_one -o "$O/$a.tag" hash --algo "$a" --tag tree
    assert_rc "hash --algo $a --tag tree" 0
    assert_same_file "--algo $a --tag: byte-identical to ${TOOL[$a]} --tag's manifest" "$R/$a.tag" "$O/$a.tag"
done
run_one hash tree
assert_rc "hash tree (default algorithm, standard output)" 0
assert_same_file "default algorithm sha256, on standard output" "$R/sha256" "$OUT"
assert_match "summary line on stderr" "$ERR" "^mpimap: hash: $NFILES files, $NBYTES bytes, sha256(,|$)"
run_one -q hash --algo md5 tree
assert_rc "-q hash --algo md5" 0
assert_same_file "-q: the same manifest" "$R/md5" "$OUT"
assert_empty "-q: no summary" "$ERR"

section "the tools accept mpimap's manifests"
for t in sha256:sha256sum sha512:sha512sum blake2b:b2sum md5:md5sum; do
    a=${t%%:*}
    tool=${t#*:}
    for sfx in "" .tag; do
        RC=0
        "$tool" -c "$O/$a$sfx" >"$OUT" 2>"$ERR" || RC=$?
        assert_rc "$tool -c on mpimap's $a$sfx manifest" 0
        assert_count "$tool -c: $NFILES lines OK" "$OUT" ": OK" "$NFILES"
    done
done
href manifest sha256 tree/n >"$R/n.sha256"
for a in xxh64 xxh128 xxh3; do
    href manifest "$a" tree/n >"$R/n.$a"
    href manifest "$a" --tag tree/n >"$R/n.$a.tag"
    for sfx in "" .tag; do
        run_one -o "$O/n.$a$sfx" hash --algo "$a" ${sfx:+--tag} tree/n
        assert_rc "hash --algo $a ${sfx:+--tag }tree/n" 0
        assert_same_file "--algo $a ${sfx:+--tag }tree/n: equals the xxhsum manifest" "$R/n.$a$sfx" "$O/n.$a$sfx"
        RC=0
        xxhsum -c "$O/n.$a$sfx" >"$OUT" 2>"$ERR" || RC=$?
        assert_rc "xxhsum -c on mpimap's $a$sfx manifest of tree/n" 0
        assert_count "xxhsum -c: every line OK" "$OUT" ": OK" "$(wc -l <"$R/n.sha256")"
    done
done

section "printed paths"
run_one hash tree/
assert_rc "hash tree/" 0
assert_same_file "tree/: the trailing slash is removed" "$R/sha256" "$OUT"
run_one hash tree///
assert_same_file "tree///: the trailing slashes are removed" "$R/sha256" "$OUT"
href manifest sha256 ./tree >"$R/dot"
run_one hash ./tree
assert_same_file "./tree: paths start with ./tree/" "$R/dot" "$OUT"
href manifest sha256 "$W/tree" >"$R/abs"
run_one hash "$W/tree"
assert_same_file "an absolute PATH: absolute paths" "$R/abs" "$OUT"
MULTI=(tree/sort tree/empty "tree/odd/back\\slash" "tree/odd/new
line" "tree/dir with spaces" tree/big/mib tree/n/d1)
href manifest sha256 "${MULTI[@]}" >"$R/multi"
run 2 --threads 2 hash "${MULTI[@]}"
assert_rc "hash with seven PATHs (directories and files), -np 2" 0
assert_same_file "seven PATHs: one manifest sorted by path" "$R/multi" "$OUT"
# A file given twice (itself, and inside a directory PATH): listed twice, as
# sha256sum would, and the output stays sorted by path.
href manifest sha256 "tree/odd/tab	here" tree/odd tree/big/mib >"$R/overlap"
run_one hash "tree/odd/tab	here" tree/odd tree/big/mib
assert_rc "hash FILE DIR-CONTAINING-FILE" 0
assert_same_file "a file given twice: both lines, in sorted place" "$R/overlap" "$OUT"
# A PATH that extends another directory PATH: tree/sort/../one sorts before tree/sort/A.
href manifest sha256 tree/sort tree/sort/../one >"$R/nested"
run_one hash tree/sort tree/sort/../one
assert_rc "hash tree/sort tree/sort/../one" 0
assert_same_file "tree/sort/../one is printed in its sorted place (before tree/sort/A)" "$R/nested" "$OUT"

section "identical bytes for any -np, --threads, --chunk-size"
for np in 1 2 3; do
    for t in 1 2; do
        rm -f "$O/m$np$t"
        run "$np" --threads "$t" -o "$O/m$np$t" hash tree
        assert_rc "-np $np --threads $t" 0
        assert_same_file "-np $np --threads $t: the same manifest" "$R/sha256" "$O/m$np$t"
    done
done
for cs in 1 64M; do
    run 3 --threads 2 --chunk-size "$cs" -o "$O/cs$cs" hash tree
    assert_rc "-np 3 --threads 2 --chunk-size $cs" 0
    assert_same_file "--chunk-size $cs: the same manifest" "$R/sha256" "$O/cs$cs"
done
run 3 --threads 2 --chunk-size 1 -o "$O/x3t" hash --algo xxh3 --tag tree
assert_rc "-np 3 --chunk-size 1 --algo xxh3 --tag" 0
assert_same_file "-np 3 --chunk-size 1 --algo xxh3 --tag: the same manifest" "$R/xxh3.tag" "$O/x3t"
assert_eq "the tree is unchanged by all these runs" "$STATE0" "$(href state tree | sha256sum)"

section "symbolic links, FIFOs, sockets, devices"
mkdir -p lt/dir/deeper lp/sub sp
echo file >lt/file.txt
echo inner >lt/dir/inner.txt
echo x >lt/dir/deeper/x.txt
ln -s file.txt lt/link-file
ln -s dir lt/link-dir
echo f >lp/f
echo g >lp/sub/g
ln -s .. lp/sub/up
ln -s . lp/self
ln -s lt/file.txt cl-file
ln -s lt/dir cl-dir
echo reg >sp/regular
mkfifo sp/fifo
href bind sp/sock
HAVE_CHR=0
if mknod sp/chr c 1 3 2>/dev/null; then HAVE_CHR=1; fi
href manifest sha256 lt >"$R/lt"
run_one hash lt
assert_rc "hash lt (links to a file and to a directory inside)" 0
assert_same_file "links inside a directory are not followed" "$R/lt" "$OUT"
assert_line "note for the link to a file" "$ERR" "mpimap: note: skipping lt/link-file: symbolic link (use --follow)"
assert_line "note for the link to a directory" "$ERR" "mpimap: note: skipping lt/link-dir: symbolic link (use --follow)"
run 2 -q hash lt
assert_rc "-q hash lt (-np 2)" 0
assert_same_file "-q: the same manifest" "$R/lt" "$OUT"
assert_empty "-q: no note, no summary" "$ERR"
href manifest sha256 --follow lt >"$R/lt-follow"
assert_eq "reference --follow: 6 files (the links' targets twice)" 6 "$(wc -l <"$R/lt-follow")"
run_one hash --follow lt
assert_rc "hash --follow lt" 0
assert_same_file "--follow: links followed, paths below the link" "$R/lt-follow" "$OUT"
assert_not_contains "--follow: no 'skipping' note" "$ERR" "skipping"
href manifest sha256 --follow lp >"$R/lp-follow"
run_one hash --follow lp
assert_rc "hash --follow on a tree with two directory loops" 0
assert_fast "--follow with loops terminates" 20
assert_same_file "--follow with loops: each file once" "$R/lp-follow" "$OUT"
assert_match "note naming the loop lp/self" "$ERR" "^mpimap: note: .*lp/self([^/]|$)"
assert_match "note naming the loop lp/sub/up" "$ERR" "^mpimap: note: .*lp/sub/up([^/]|$)"
run_one hash lp
assert_rc "hash lp without --follow" 0
assert_line "without --follow: lp/self skipped as a link" "$ERR" "mpimap: note: skipping lp/self: symbolic link (use --follow)"
href manifest sha256 cl-file cl-dir >"$R/cl"
assert_eq "reference: cl-file, cl-dir/deeper/x.txt, cl-dir/inner.txt" 3 "$(wc -l <"$R/cl")"
run_one hash cl-file cl-dir
assert_rc "hash LINK-TO-FILE LINK-TO-DIR" 0
assert_same_file "links given on the command line are followed" "$R/cl" "$OUT"
assert_not_contains "command-line links: no note" "$ERR" "note:"
href manifest sha256 sp >"$R/sp"
run 2 hash sp
assert_rc "hash sp (FIFO, socket$([ $HAVE_CHR = 1 ] && echo ", character device"))" 0
assert_fast "a FIFO does not block the run" 20
assert_same_file "only the regular file is hashed" "$R/sp" "$OUT"
assert_line "note for the FIFO" "$ERR" "mpimap: note: skipping sp/fifo: FIFO"
assert_line "note for the socket" "$ERR" "mpimap: note: skipping sp/sock: socket"
if [ "$HAVE_CHR" = 1 ]; then
    assert_line "note for the character device" "$ERR" "mpimap: note: skipping sp/chr: character device"
else
    echo "# mknod not permitted here: no character-device case"
fi
run_one -q hash sp
assert_rc "-q hash sp" 0
assert_same_file "-q: the same manifest" "$R/sp" "$OUT"
assert_empty "-q: no note" "$ERR"
run_one hash sp/fifo sp/regular
assert_fast "a FIFO given as PATH does not block the run" 20
assert_line "a FIFO given as PATH: skipped with a note" "$ERR" "mpimap: note: skipping sp/fifo: FIFO"
assert_line "a FIFO given as PATH: the regular file is hashed" "$OUT" "$(sha256sum sp/regular)"

section "-o inside the hashed directory"
cp -a tree/sort oi
href manifest sha256 oi >"$R/oi"
run_one -o oi/MANIFEST hash oi
assert_rc "-o oi/MANIFEST hash oi" 0
assert_same_file "the manifest and its temporary file are not listed" "$R/oi" oi/MANIFEST
assert_no_tmp "no temporary file left in oi" oi MANIFEST
run 2 --threads 2 -o oi/MANIFEST hash oi
assert_rc "again, MANIFEST already there (-np 2)" 0
assert_same_file "an existing output file is not listed either" "$R/oi" oi/MANIFEST
href manifest sha256 oi >"$R/oi2" # now with oi/MANIFEST
run_one -o "$W/oi/M2" hash oi
assert_rc "-o ABSOLUTE/oi/M2 hash oi (relative)" 0
assert_same_file "-o spelled differently from PATH: still not listed" "$R/oi2" oi/M2

section "errors: missing PATH, unreadable file, unlistable directory"
# check_failed DESC OUTFILE PATH REASON REF : exit 1, the error line, nothing
# under OUTFILE, OUTFILE.incomplete = REF, no temporary file.
check_failed() {
    local desc=$1 of=$2 p=$3 reason=$4 ref=$5
    assert_rc "$desc" 1
    assert_err_line "$desc: 'mpimap: error: $p: ...$reason'" "$p" "$reason"
    if [ "$(grep -ac '^mpimap: error: ' "$ERR")" -ge 2 ]; then ok "$desc: a summary error at the end"; else
        fail "$desc: a summary error at the end" "$(grep -a '^mpimap: error: ' "$ERR" | head -3)"
    fi
    assert_absent "$desc: nothing under -o" "$of"
    if [ -e "$of.incomplete" ]; then
        assert_same_file "$desc: .incomplete holds exactly the other files' lines" "$ref" "$of.incomplete"
    else
        fail "$desc: .incomplete holds exactly the other files' lines" "$of.incomplete does not exist"
    fi
    assert_no_tmp "$desc: no temporary file" "$(dirname "$of")" "$(basename "$of")"
}
href manifest sha256 tree/sort >"$R/sort"
rm -f "$O/miss" "$O/miss.incomplete"
run_one -o "$O/miss" hash tree/sort nosuch
check_failed "hash tree/sort nosuch" "$O/miss" nosuch "No such file or directory" "$R/sort"
rm -f "$O/miss" "$O/miss.incomplete"
run 3 --threads 2 -o "$O/miss" hash nosuch tree/sort
check_failed "hash nosuch tree/sort (-np 3)" "$O/miss" nosuch "No such file or directory" "$R/sort"
run_one hash tree/sort nosuch
assert_rc "hash tree/sort nosuch, standard output" 1
assert_same_file "standard output: the lines of the hashed files" "$R/sort" "$OUT"

NB="$TMP/nobody" # nobody's HOME/TMPDIR and output directory
mkdir -p "$NB/od"
mkdir -p perm1/z perm2/locked
echo a >perm1/a.txt
echo secret >perm1/secret
echo b >perm1/z/b.txt
chmod 600 perm1/secret
echo a >perm2/a.txt
echo c >perm2/locked/c.txt
echo z >perm2/z.txt
chmod 700 perm2/locked
href manifest sha256 perm1/a.txt perm1/z >"$R/perm1"
href manifest sha256 perm2/a.txt perm2/z.txt >"$R/perm2"
PSTATE0=$(href state perm1 perm2 | sha256sum)
as_nobody "$NB" "$W" # started here: the paths below are relative
if "${AS_NOBODY[@]}" cat perm1/secret >/dev/null 2>&1 || "${AS_NOBODY[@]}" ls perm2/locked >/dev/null 2>&1; then
    fail "set-up: perm1/secret and perm2/locked must be unreadable by the test user"
fi
OF="$NB/od/M"
for np in 0 2; do
    how=$([ $np = 0 ] && echo "one process" || echo "-np $np")
    rm -f "$OF" "$OF.incomplete"
    if [ $np = 0 ]; then
        run_cmd "${AS_NOBODY[@]}" timeout -k 10 "$E2E_TIMEOUT" "$NB_MPIMAP" -o "$OF" hash perm1
    else
        run_cmd "${AS_NOBODY[@]}" timeout -k 10 "$E2E_TIMEOUT" "$MPIEXEC" -np $np ${MPIEXEC_OVERSUB[@]+"${MPIEXEC_OVERSUB[@]}"} \
            "$NB_MPIMAP" --threads 2 -o "$OF" hash perm1
    fi
    check_failed "unreadable file ($how, as nobody)" "$OF" perm1/secret "Permission denied" "$R/perm1"
    rm -f "$OF" "$OF.incomplete"
    if [ $np = 0 ]; then
        run_cmd "${AS_NOBODY[@]}" timeout -k 10 "$E2E_TIMEOUT" "$NB_MPIMAP" -o "$OF" hash perm2
    else
        run_cmd "${AS_NOBODY[@]}" timeout -k 10 "$E2E_TIMEOUT" "$MPIEXEC" -np $np ${MPIEXEC_OVERSUB[@]+"${MPIEXEC_OVERSUB[@]}"} \
            "$NB_MPIMAP" --threads 2 -o "$OF" hash perm2
    fi
    check_failed "unlistable directory ($how, as nobody)" "$OF" perm2/locked "Permission denied" "$R/perm2"
done
run_cmd "${AS_NOBODY[@]}" timeout -k 10 "$E2E_TIMEOUT" "$NB_MPIMAP" hash perm1 perm2
assert_rc "both, standard output (as nobody)" 1
cat "$R/perm1" "$R/perm2" >"$R/perm12"
assert_same_file "standard output: the lines of the hashed files" "$R/perm12" "$OUT"
assert_err_line "both: the unreadable file" perm1/secret "Permission denied"
assert_err_line "both: the unlistable directory" perm2/locked "Permission denied"
assert_eq "inputs unchanged (perm1, perm2)" "$PSTATE0" "$(href state perm1 perm2 | sha256sum)"

section "errors: a file vanishing, a file growing (MPIMAP_TEST_HASH_DELAY_MS, --threads 1)"
OLD=978307200 # 2001-01-01: relatime updates an access time this old on the next read
# race DELAY ARGS... : mpimap ARGS (one process) in the background with the delay hook.
race() {
    local delay=$1
    shift
    (
        export MPIMAP_TEST_HASH_DELAY_MS=$delay
        rc=0
        run_single "$@" >"$OUT" 2>"$ERR" </dev/null || rc=$?
        echo "$rc" >"$TMP/race.rc"
    ) &
    RACE=$!
    T0=$(date +%s%N)
}
race_end() {
    wait "$RACE" || true
    RC=$(cat "$TMP/race.rc")
}
# wait_read PATH MAXMS : until PATH was read (its access time left $OLD), at most MAXMS after the start.
wait_read() {
    while [ "$(stat -c %X "$1")" = "$OLD" ]; do
        [ $((($(date +%s%N) - T0) / 1000000)) -ge "$2" ] && {
            echo "# note: no access-time change seen on $1 within $2 ms (O_NOATIME?): went on by the clock"
            return 0
        }
        sleep 0.02
    done
}
mkdir -p van chg
for f in a b c; do head -c 1000 /dev/urandom >"van/$f"; done
head -c $((3 * 1048576)) /dev/urandom >chg/big
echo zz >chg/zz
rm -f "$O/van" "$O/van.incomplete"
touch -a -d @$OLD van
race 500 --threads 1 -o "$O/van" hash van
wait_read van 800 # listed at L: van/b is opened at L + 1.5 s (a: 0.5 s before its open and its read)
rm van/b
race_end
href manifest sha256 van >"$R/van"
check_failed "van/b deleted after the listing, before its open" "$O/van" van/b "No such file or directory" "$R/van"
href manifest sha256 chg/zz >"$R/chg"
rm -f "$O/chg" "$O/chg.incomplete"
touch -a -d @$OLD chg chg/big
race 600 --threads 1 -o "$O/chg" hash chg
# Listed at L: opened at L + 0.6 s, read at L + 1.2, 1.8, 2.4 s (1 MiB each).
wait_read chg 3000
T0=$(date +%s%N)
wait_read chg/big 1800 # its first read (L + 1.2 s), else L + 1.8 s: both after the open, before the last read
printf x >>chg/big
race_end
check_failed "chg/big grown while it was read" "$O/chg" chg/big "changed while it was read" "$R/chg"

section "large files (16 MiB and more: read by a helper thread while hashed)"
mkdir -p large
head -c $((40 * 1048576 + 12345)) /dev/urandom >large/l1
head -c $((16 * 1048576)) /dev/urandom >large/l2
for algo in sha256 xxh3 blake2b; do
    href manifest "$algo" large >"$R/large.$algo"
    run 2 --threads 2 -o "$O/large.$algo" hash --algo "$algo" large
    assert_rc "large files, $algo, -np 2" 0
    assert_same_file "large files, $algo: the reference manifest" "$R/large.$algo" "$O/large.$algo"
done
# A 160 MiB file appended to all the time: caught on the helper thread's path too.
head -c $((160 * 1048576)) /dev/urandom >large/grow
rm -f "$O/grow" "$O/grow.incomplete"
(while :; do printf x >>large/grow; done) &
APPENDER=$!
sleep 0.2
run_one -o "$O/grow" hash --algo sha512 large/grow large/l2
kill "$APPENDER" 2>/dev/null || true
wait "$APPENDER" 2>/dev/null || true
href manifest sha512 large/l2 >"$R/grow"
check_failed "a large file appended to while it was read" "$O/grow" large/grow "changed while it was read" "$R/grow"
rm -rf large

section "usage errors"
run_one hash --algo sha1 tree/sort
assert_rc "hash --algo sha1 (unknown algorithm)" 2
assert_match "--algo sha1: an error message" "$ERR" "^mpimap: error: "
run_one hash
assert_rc "hash without PATH" 2
run_one hash --check
assert_rc "hash --check without MANIFEST" 2

section "--check"
mkdir -p m
cp -a tree ck
href manifest sha256 ck >m/ck.sha256
href manifest sha256 --tag ck/n >m/ck.tag
{
    href manifest blake2b --tag ck/n/d0
    href manifest md5 --tag ck/n/d1
    href manifest xxh3 ck/n/d2
    href manifest xxh64 --tag ck/n/d3
    href manifest xxh128 --tag ck/n/d4
    href manifest sha512 --tag ck/n/d5
    href manifest sha256 --tag ck/odd ck/sort
} >m/mixed
mapfile -d '' -t SORTF < <(find ck/sort -type f -print0 | sort -z)
sha256sum -b -- "${SORTF[@]}" >m/star
href manifest blake2b ck >m/ck.b2
href manifest md5 ck >m/ck.md5
href manifest sha512 ck >m/ck.sha512
href manifest xxh64 ck/n >m/n.xxh64
href manifest xxh128 ck/n >m/n.xxh128
NCK=$(wc -l <m/ck.sha256)

expect_cmd "$R/ck-ok" sha256sum -c m/ck.sha256
assert_count "reference: sha256sum -c: $NCK OK lines" "$R/ck-ok" ": OK" "$NCK"
run_one hash --check m/ck.sha256
assert_rc "--check on an unchanged tree" 0
assert_same_file "--check: stdout equals sha256sum -c's" "$R/ck-ok" "$OUT"
assert_no_diag "--check, all OK: no error or warning"
# sha256sum -c (coreutils 9.1) escapes only the names with a LF in its report
assert_eq "--check: the 2 names with a LF are escaped (leading \\) as by sha256sum -c" 2 "$(grep -ac '^[\]' "$OUT" || true)"
run 3 --threads 2 hash --check m/ck.sha256
assert_rc "--check -np 3 --threads 2" 0
assert_same_file "--check -np 3: the same output, in manifest order" "$R/ck-ok" "$OUT"
run_one -o "$O/ck-ours.report" hash --check "$O/sha256"
assert_rc "--check of mpimap's own manifest of tree" 0
expect_cmd "$R/ours-ok" sha256sum -c "$O/sha256"
assert_same_file "mpimap's manifest: report equals sha256sum -c's output" "$R/ours-ok" "$O/ck-ours.report"
assert_empty "-o REPORT: nothing on stdout" "$OUT"

expect_cmd "$R/tag-ok" sha256sum -c m/ck.tag
run_one hash --check m/ck.tag
assert_rc "--check a sha256sum --tag manifest" 0
assert_same_file "--check BSD lines: equals sha256sum -c's" "$R/tag-ok" "$OUT"
: >"$R/mixed-ok"
grep -a '^BLAKE2b (' m/mixed | b2sum -c - 2>/dev/null >>"$R/mixed-ok" || true
grep -a '^MD5 (' m/mixed | md5sum -c - 2>/dev/null >>"$R/mixed-ok" || true
for tag in XXH3 XXH64 XXH128; do # xxhsum 0.8.1 -c does not read standard input
    grep -a "^$tag (" m/mixed >"$TMP/$tag" || true
    xxhsum -c "$TMP/$tag" 2>/dev/null >>"$R/mixed-ok" || true
done
grep -a '^SHA512 (' m/mixed | sha512sum -c - 2>/dev/null >>"$R/mixed-ok" || true
grep -a 'SHA256 (' m/mixed | sha256sum -c - 2>/dev/null >>"$R/mixed-ok" || true
assert_eq "reference: every line of the 7-algorithm BSD manifest OK" "$(wc -l <m/mixed)" "$(grep -ac ': OK$' "$R/mixed-ok")"
run 2 hash --check m/mixed
assert_rc "--check a BSD manifest mixing BLAKE2b, MD5, XXH3, XXH64, XXH128, SHA512, SHA256 (escaped)" 0
assert_same_file "mixed BSD manifest: the tools' -c output, in manifest order" "$R/mixed-ok" "$OUT"
expect_cmd "$R/star-ok" sha256sum -c m/star
run_one hash --check m/star
assert_rc "--check 'HEX *PATH' lines" 0
assert_same_file "'*' lines: equals sha256sum -c's" "$R/star-ok" "$OUT"
expect_cmd "$R/x64-ok" xxhsum -c m/n.xxh64
run_one hash --check m/n.xxh64
assert_rc "--check 16-hex lines without --algo (xxh64)" 0
assert_same_file "16-hex lines: equals xxhsum -c's" "$R/x64-ok" "$OUT"

section "--check: the manifest on standard input, several manifests"
run_in m/ck.sha256 1 hash --check -
assert_rc "--check - (standard input)" 0
assert_same_file "--check -: equals sha256sum -c's" "$R/ck-ok" "$OUT"
run_in m/ck.tag 2 -o "$O/stdin.report" hash --check -
assert_rc "-o REPORT --check - (-np 2)" 0
assert_same_file "--check - with -o: the report" "$R/tag-ok" "$O/stdin.report"
cat "$R/tag-ok" "$R/star-ok" "$R/ck-ok" >"$R/three-ok"
run_one hash --check m/ck.tag m/star m/ck.sha256
assert_rc "--check three manifests" 0
assert_same_file "three manifests: their outputs in order" "$R/three-ok" "$OUT"

section "--check: 32 and 128 hex digits need --algo"
for t in ck.b2:blake2b:b2sum ck.md5:md5:md5sum; do
    f=${t%%:*}
    rest=${t#*:}
    a=${rest%%:*}
    tool=${rest#*:}
    run_one hash --check "m/$f"
    assert_rc "--check m/$f without --algo (ambiguous)" 1
    assert_match "m/$f without --algo: 'mpimap: error: m/$f:1: ... --algo'" "$ERR" "^mpimap: error: m/$f:1: .*--algo"
    expect_cmd "$R/$f-ok" "$tool" -c "m/$f"
    run_one hash --check --algo "$a" "m/$f"
    assert_rc "--check --algo $a m/$f" 0
    assert_same_file "--algo $a: equals $tool -c's" "$R/$f-ok" "$OUT"
done
run_one hash --check m/ck.sha512
assert_rc "--check m/ck.sha512 without --algo (ambiguous)" 1
expect_cmd "$R/sha512-ok" sha512sum -c m/ck.sha512
run_one hash --check --algo sha512 m/ck.sha512
assert_rc "--check --algo sha512" 0
assert_same_file "--algo sha512: equals sha512sum -c's" "$R/sha512-ok" "$OUT"
expect_cmd "$R/x128-ok" xxhsum -c m/n.xxh128
run_one hash --check --algo xxh128 m/n.xxh128
assert_rc "--check --algo xxh128" 0
assert_same_file "--algo xxh128: equals xxhsum -c's" "$R/x128-ok" "$OUT"
run_one hash --check --algo sha512 m/ck.b2
assert_rc "--check --algo sha512 on a BLAKE2b manifest" 1
assert_eq "--algo sha512 on BLAKE2b sums: every line FAILED" "$NCK" "$(grep -ac ': FAILED$' "$OUT" || true)"
assert_match "--algo sha512 on BLAKE2b sums: the mismatch count" "$ERR" \
    "^mpimap: warning: $NCK computed checksum(s|\(s\)) did NOT match$"

section "--check: improperly formatted lines"
mapfile -t GOOD < <(grep -a '  ck/n/d0/' m/ck.sha256 | head -n 3)
{
    echo "${GOOD[0]}"
    echo "this is not a checksum line"
    echo "${GOOD[1]}"
    echo "g${E256:1}  ck/empty"
    echo "${GOOD[2]}"
    echo "SHA256 (ck/empty) = xyz"
} >m/bad.sum
printf 'nothing here\nnor here\n' >m/none.sum
expect_cmd "$R/bad-ok" sha256sum -c m/bad.sum
run_one hash --check m/bad.sum
assert_rc "--check a manifest with 3 good and 3 malformed lines" 0
assert_same_file "malformed lines: the good lines checked as sha256sum -c does" "$R/bad-ok" "$OUT"
for l in 2 4 6; do
    assert_line "warning for m/bad.sum:$l" "$ERR" "mpimap: warning: m/bad.sum:$l: improperly formatted checksum line"
done
assert_count "exactly 3 per-line warnings" "$ERR" "improperly formatted checksum line" 3
assert_match "a count of the malformed lines (3)" "$ERR" "^mpimap: warning: [^:]*\<3\>[^:]*improperly formatted"
run_one hash --check --strict m/bad.sum
assert_rc "--check --strict with malformed lines" 1
assert_same_file "--strict: the good lines are still checked" "$R/bad-ok" "$OUT"
run_one hash --check m/none.sum
assert_rc "--check a manifest without one valid line" 1
run_one hash --check m/none.sum m/star
assert_rc "--check none.sum and a valid manifest: some line is valid" 0
assert_same_file "none.sum + star: the star lines" "$R/star-ok" "$OUT"

section "--check: modified and deleted files"
printf 'x' >>ck/n/d0/e0/file000.dat
printf 'changed' >ck/sort/a0
rm ck/empty "ck/odd/new
line"
expect_cmd "$R/ck-bad" sha256sum -c m/ck.sha256
assert_count "reference: 2 FAILED and 2 FAILED open or read" "$R/ck-bad" ": FAILED" 4
rm -f "$O/report"
run_one -o "$O/report" hash --check m/ck.sha256
assert_rc "--check after modifying 2 files and deleting 2" 1
if [ -e "$O/report" ]; then
    assert_same_file "the report under -o equals sha256sum -c's output" "$R/ck-bad" "$O/report"
else
    fail "the report under -o equals sha256sum -c's output" "$O/report does not exist"
fi
assert_no_tmp "-o REPORT: no temporary file" "$O" report
assert_line "FAILED line" "$O/report" "ck/sort/a0: FAILED"
assert_line "FAILED open or read line" "$O/report" "ck/empty: FAILED open or read"
assert_line "FAILED open or read line, escaped name" "$O/report" '\ck/odd/new\nline: FAILED open or read'
assert_err_line "error for the deleted file" ck/empty "No such file or directory"
assert_match "warning: 2 computed checksums did NOT match" "$ERR" \
    '^mpimap: warning: 2 computed checksum(s|\(s\)) did NOT match$'
assert_match "warning: 2 listed files could not be read" "$ERR" \
    '^mpimap: warning: 2 listed file(s|\(s\)) could not be read$'
run 3 --threads 2 hash --check m/ck.sha256
assert_rc "the same, -np 3 --threads 2, standard output" 1
assert_same_file "-np 3: equals sha256sum -c's output" "$R/ck-bad" "$OUT"
rm "ck/sort/a-b"
grep -a '  ck/sort/a-b$' m/ck.sha256 >m/one-missing
expect_cmd "$R/one-missing" sha256sum -c m/one-missing
run_one hash --check m/one-missing
assert_rc "--check, the only file deleted" 1
assert_same_file "only file deleted: equals sha256sum -c's" "$R/one-missing" "$OUT"
assert_match "warning: 1 listed file could not be read" "$ERR" \
    '^mpimap: warning: 1 listed file(\(s\))? could not be read$'
assert_not_contains "no mismatch warning when nothing mismatched" "$ERR" "did NOT match"

section "many files"
NMANY=20000
[ "$QUICK" = 1 ] && NMANY=10000
href mkmany many "$NMANY"
find many -type f | sort | sed "s|^|$E256  |" >"$R/many"
run 2 --threads 2 -o "$O/many" hash many
assert_rc "$NMANY empty files, -np 2 --threads 2" 0
assert_eq "$NMANY lines" "$NMANY" "$(wc -l <"$O/many" 2>/dev/null || echo 0)"
assert_same_file "$NMANY empty files: the expected manifest" "$R/many" "$O/many"
assert_match "summary: $NMANY files, 0 bytes" "$ERR" "^mpimap: hash: $NMANY files, 0 bytes, sha256(,|$)"

assert_no_strays "no stray processes"
finish
