#!/bin/bash
# End-to-end: bad input and bad usage. Every case must
#   * exit with the documented code (2 usage error, 1 data/file error),
#   * print a message naming what and where (file, line/byte, argument), once,
#   * end every rank within seconds (run with -np 2 and -np 3 under timeout),
#   * leave no file under the -o name and no .NAME.mpimap-* temporary file,
#   * leave the inputs untouched.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

D="$TMP/in"  # inputs
OD="$TMP/od" # output directory (-o "$OD/out.txt")
mkdir -p "$D" "$D/adir"
MAXSECS=30

section "inputs"
cp /usr/share/common-licenses/GPL-3 "$D/text.txt"
cp "$(type -P true)" "$D/prog.bin"
: >"$D/empty.txt"
"$PY" - "$D" <<'EOF'
import sys
d = sys.argv[1]
# NUL byte on line 1001, at byte offset 12003 (0-based).
open(d + "/nul.txt", "wb").write(b"hello world\n" * 1000 + b"abc\x00def\n" + b"more text\n" * 500)
open(d + "/nums_x.txt", "w").write("1\n2\nx\n4\n")
open(d + "/nums_neg.txt", "w").write("5\n6\n7\n-3\n8\n")
open(d + "/nums_94.txt", "w").write("93\n94\n")
open(d + "/nums_frac.txt", "w").write("1\n2\n3\n4\n1.5\n")
# A bad line deep in a longer file, far from the first chunk.
open(d + "/nums_deep.txt", "w").write("".join("%d\n" % (i % 90) for i in range(1, 1234)) + "oops\n"
                                      + "".join("%d\n" % (i % 90) for i in range(300)))
open(d + "/lines.txt", "w").write("".join("line %d\n" % i for i in range(1, 20001)))
open(d + "/lines2.txt", "w").write("".join("other %d\n" % i for i in range(1, 200)))
EOF
BIGREPS=$(oracle gen-line "$D/big.txt" 'Alpha beta BETA gamma Gamma GAMMA ' $((100 * 1024 * 1024)))
oracle gen-line "$D/digits.txt" '1234567890' $((100 * 1024 * 1024)) >/dev/null
echo "big.txt: $(wc -c <"$D/big.txt") bytes on one line ($BIGREPS repetitions)"

SMALL_INPUTS=$(find "$D" -type f ! -name 'big.txt' ! -name 'digits.txt' | sort)
inputs_state() {
    # shellcheck disable=SC2086
    sha256sum $SMALL_INPUTS
    stat -c '%n %s %Y %a %F' "$D"/* | sort
}
INPUTS0=$(inputs_state)
BIGSUMS0=$(sha256sum "$D/big.txt" "$D/digits.txt")

# check_bad LABEL WANT_RC ODIR NEEDLE... : judge the last run.
#   NEEDLE: a fixed string the message must contain, or re:REGEX.
#   The first NEEDLE must occur on exactly one line (printed once).
check_bad() {
    local label=$1 want=$2 odir=$3
    shift 3
    local problems=() n first=1 cnt
    if [ "$RC" != "$want" ]; then
        if [ "$RC" = 124 ] || [ "$RC" = 137 ]; then
            problems+=("TIMED OUT (a rank hung): exit $RC, expected $want")
        else
            problems+=("exit code $RC, expected $want")
        fi
    fi
    for n in "$@"; do
        if [[ $n == re:* ]]; then
            grep -qaE -- "${n#re:}" "$ERR" || problems+=("message does not match /${n#re:}/")
            cnt=$(grep -caE -- "${n#re:}" "$ERR" || true)
        else
            grep -qaF -- "$n" "$ERR" || problems+=("message does not name '$n'")
            cnt=$(grep -caF -- "$n" "$ERR" || true)
        fi
        if [ "$first" = 1 ] && [ "$cnt" -gt 1 ]; then
            problems+=("message printed $cnt times (expected once): '$n'")
        fi
        first=0
    done
    [ -s "$OUT" ] && problems+=("standard output is not empty: $(head -c 200 "$OUT")")
    [ "$SECS" -le "$MAXSECS" ] || problems+=("took ${SECS}s (> ${MAXSECS}s): ranks did not all exit promptly")
    [ -e "$odir/out.txt" ] && problems+=("output file $odir/out.txt exists after a failed run")
    local left
    left=$(find "$odir" -maxdepth 1 -name '.*.mpimap-*' 2>/dev/null)
    [ -n "$left" ] && problems+=("temporary file(s) left behind: $left")
    [ "$(inputs_state)" == "$INPUTS0" ] || problems+=("INPUTS CHANGED: $(diff <(echo "$INPUTS0") <(inputs_state) | head -5 | tr '\n' ' ' || true)")
    local strays
    strays=$(reap_strays)
    [ -z "$strays" ] || problems+=("processes still running after mpirun returned: $(echo "$strays" | tr '\n' ';')")
    if [ ${#problems[@]} -eq 0 ]; then
        ok "$label: exit $want in ${SECS}s; says: $(grep -a '^mpimap' "$ERR" | head -n 1 | cut -c1-150)"
    else
        fail "$label" "${problems[@]}"
        show_last
    fi
}

# bad NAME WANT_RC NEEDLE... -- MPIMAP_ARGS... : run with -np 2 and 3, with
# -o "$OD/out.txt" in front of the arguments, and judge each run.
bad() {
    local name=$1 want=$2
    shift 2
    local needles=()
    while [ "$1" != "--" ]; do
        needles+=("$1")
        shift
    done
    shift
    local np nps="2 3"
    [ "$QUICK" = 1 ] && nps=3
    for np in ${BAD_NPS:-$nps}; do
        rm -rf "$OD"
        mkdir -p "$OD"
        run "$np" -o "$OD/out.txt" "$@"
        check_bad "$name (np=$np)" "$want" "$OD" "${needles[@]}"
    done
}

# good NAME NP EXPECTED_FILE MPIMAP_ARGS... : must succeed, output = expected.
good() {
    local name=$1 np=$2 exp=$3
    shift 3
    rm -rf "$OD"
    mkdir -p "$OD"
    run "$np" -o "$OD/out.txt" "$@"
    if [ "$RC" != 0 ]; then
        assert_rc "$name (np=$np)" 0
        return
    fi
    assert_same_file "$name (np=$np): exit 0, output as expected" "$exp" "$OD/out.txt"
    assert_no_tmp "$name (np=$np): no temporary file left" "$OD" out.txt
}

section "missing, directory, unreadable, empty input files"
bad "missing input file" 1 "$D/missing.txt" -- wordcount "$D/missing.txt"
bad "missing input file after a good one" 1 "$D/missing.txt" -- wordcount "$D/text.txt" "$D/missing.txt"
BAD_NPS=3 bad "missing fib --file" 1 "$D/missing.txt" -- fib --fast --file "$D/missing.txt"
BAD_NPS=3 bad "missing test-kernel input" 1 "$D/missing.txt" -- test "$D/missing.txt"
bad "directory given as a file" 1 "$D/adir" -- wordcount "$D/adir"
BAD_NPS=3 bad "directory given as fib --file" 1 "$D/adir" -- fib --file "$D/adir"

# Unreadable: as root permissions do not stop reads, so run as nobody.
NB="$TMP/nobody" # nobody's HOME/TMPDIR and output directory
mkdir -p "$NB/od"
cp "$D/text.txt" "$D/secret.txt"
chmod 000 "$D/secret.txt"
SMALL_INPUTS=$(find "$D" -type f ! -name 'big.txt' ! -name 'digits.txt' ! -name 'secret.txt' | sort)
INPUTS0=$(inputs_state)
as_nobody "$NB"
if "${AS_NOBODY[@]}" cat "$D/secret.txt" >/dev/null 2>&1; then
    fail "unreadable file set-up: $D/secret.txt is still readable by the test user"
fi
rm -f "$NB/od/out.txt"
run_cmd "${AS_NOBODY[@]}" timeout -k 10 "$E2E_TIMEOUT" "$NB_MPIMAP" -o "$NB/od/out.txt" wordcount "$D/secret.txt"
check_bad "unreadable file (singleton, no mpirun)" 1 "$NB/od" "$D/secret.txt" "re:[Pp]ermission denied"
for np in 2 3; do
    run_cmd "${AS_NOBODY[@]}" timeout -k 10 "$E2E_TIMEOUT" "$MPIEXEC" -np "$np" ${MPIEXEC_OVERSUB[@]+"${MPIEXEC_OVERSUB[@]}"} \
        "$NB_MPIMAP" -o "$NB/od/out.txt" wordcount "$D/secret.txt"
    check_bad "unreadable file (mpirun -np $np as nobody)" 1 "$NB/od" "$D/secret.txt" "re:[Pp]ermission denied"
done
run_cmd "${AS_NOBODY[@]}" timeout -k 10 "$E2E_TIMEOUT" "$NB_MPIMAP" -o "$NB/od/out.txt" fib --file "$D/secret.txt"
check_bad "unreadable fib --file (singleton)" 1 "$NB/od" "$D/secret.txt"

bad "empty file" 1 "$D/empty.txt" -- wordcount "$D/empty.txt"
BAD_NPS=3 bad "empty file among good ones" 1 "$D/empty.txt" -- wordcount "$D/text.txt" "$D/empty.txt"
BAD_NPS=3 bad "empty test-kernel input" 1 "$D/empty.txt" -- test "$D/empty.txt"
BAD_NPS=3 bad "empty fib --file" 1 "$D/empty.txt" -- fib --file "$D/empty.txt"
: >"$TMP/empty.expected"
for np in 2 3; do
    good "empty file with --allow-empty" "$np" "$TMP/empty.expected" --allow-empty wordcount "$D/empty.txt"
    assert_exists "empty file with --allow-empty (np=$np): output file exists" "$OD/out.txt"
done
oracle wordcount "$D/text.txt" >"$TMP/text.expected"
good "empty file with --allow-empty, among good ones" 3 "$TMP/text.expected" \
    --allow-empty wordcount "$D/empty.txt" "$D/text.txt" "$D/empty.txt"
# An empty pipe is the classic "failed upstream step" --allow-empty is about.
for np in 2 3; do
    rm -rf "$OD"
    mkdir -p "$OD"
    run_in /dev/null "$np" -o "$OD/out.txt" wordcount
    check_bad "empty standard input (np=$np)" 1 "$OD" "re:standard input|stdin|'-'"
    run_in /dev/null "$np" -o "$OD/out.txt" --allow-empty wordcount -
    assert_rc "empty standard input with --allow-empty (np=$np)" 0
done

section "binary input (NUL byte)"
bad "NUL byte in wordcount input" 1 "$D/nul.txt" \
    "re:nul\.txt:1001([^0-9]|$)|(byte|offset)[^0-9]{0,12}1200[34]([^0-9]|$)" -- -c 1K wordcount "$D/nul.txt"
bad "NUL byte in the second input file" 1 "$D/nul.txt" \
    "re:nul\.txt:1001([^0-9]|$)|(byte|offset)[^0-9]{0,12}1200[34]([^0-9]|$)" -- -c 1K wordcount "$D/text.txt" "$D/nul.txt"
BAD_NPS="3" bad "NUL byte, --io shared" 1 "$D/nul.txt" \
    "re:nul\.txt:1001([^0-9]|$)|(byte|offset)[^0-9]{0,12}1200[34]([^0-9]|$)" -- --io shared -c 1K wordcount "$D/nul.txt"
# Real binary garbage: an ELF executable ("\x7fELF\x02\x01\x01\0": first NUL at byte 7, line 1).
bad "binary file (ELF executable)" 1 "$D/prog.bin" \
    "re:prog\.bin:1([^0-9]|$)|(byte|offset)[^0-9]{0,12}[78]([^0-9]|$)" -- wordcount "$D/prog.bin"
oracle wordcount "$D/prog.bin" >"$TMP/prog.expected"
good "binary file (ELF executable) with --binary" 3 "$TMP/prog.expected" -c 4K wordcount --binary "$D/prog.bin"
oracle wordcount "$D/nul.txt" >"$TMP/nul.expected"
for np in 2 3; do
    good "NUL byte with --binary" "$np" "$TMP/nul.expected" -c 1K wordcount --binary "$D/nul.txt"
done

section "a 100 MB single line"
printf '%d\tgamma\n%d\tbeta\n%d\talpha\n' $((3 * BIGREPS)) $((2 * BIGREPS)) "$BIGREPS" >"$TMP/big.expected"
good "wordcount on a 100 MB line" 2 "$TMP/big.expected" wordcount "$D/big.txt"
good "wordcount on a 100 MB line, -c 64K --io master" 3 "$TMP/big.expected" -c 64K --io master wordcount "$D/big.txt"
good "wordcount on a 100 MB line, -c 1M --io shared" 3 "$TMP/big.expected" -c 1M --io shared wordcount "$D/big.txt"
{
    printf '1\t'
    cat "$D/digits.txt"
} >"$TMP/digits.expected"
good "wordcount on a 100 MB word, -c 64K" 2 "$TMP/digits.expected" -c 64K wordcount "$D/digits.txt"
rm -f "$TMP/digits.expected"
bad "fib --file on a 100 MB line of words" 1 "$D/big.txt:1" -- fib --fast --file "$D/big.txt"
bad "fib --file on a 100 MB line of digits" 1 "$D/digits.txt:1" -- fib --fast --file "$D/digits.txt"
for np in 2 3; do
    run "$np" -o "$OD/out.txt" fib --fast --file "$D/digits.txt"
    if [ "$(wc -c <"$ERR")" -lt 65536 ]; then
        ok "fib on a 100 MB line (np=$np): the message does not echo the whole line ($(wc -c <"$ERR") bytes)"
    else
        fail "fib on a 100 MB line (np=$np): the message does not echo the whole line" "stderr is $(wc -c <"$ERR") bytes"
    fi
done

section "fib: bad integers as arguments (usage error, exit 2)"
bad "fib non-numeric argument" 2 "'x'" "argument 3" -- fib --fast 1 2 x
bad "fib out-of-range argument 94" 2 "'94'" "argument 2" -- fib --fast 5 94
bad "fib negative argument after --" 2 "'-3'" "argument 2" -- fib --fast 5 -- -3
BAD_NPS=3 bad "fib negative argument" 2 "-3" -- fib --fast -3
BAD_NPS=3 bad "fib fractional argument" 2 "'1.5'" -- fib --fast 1.5
BAD_NPS=3 bad "fib 2^64 argument" 2 "18446744073709551616" -- fib --fast 18446744073709551616
BAD_NPS=3 bad "fib empty argument" 2 "argument 2" -- fib --fast 3 ''
BAD_NPS=3 bad "fib trailing garbage" 2 "'12abc'" -- fib --fast 12abc
BAD_NPS=3 bad "fib without any integer" 2 "integer" -- fib --fast

section "fib: bad integers in a file (data error, exit 1, FILE:LINE)"
bad "fib --file non-numeric" 1 "$D/nums_x.txt:3" -- fib --fast --file "$D/nums_x.txt"
bad "fib --file negative" 1 "$D/nums_neg.txt:4" -- fib --fast --file "$D/nums_neg.txt"
bad "fib --file 94" 1 "$D/nums_94.txt:2" -- fib --fast --file "$D/nums_94.txt"
BAD_NPS=3 bad "fib --file fraction" 1 "$D/nums_frac.txt:5" -- fib --fast --file "$D/nums_frac.txt"
bad "fib --file bad line 1234, -c 64" 1 "$D/nums_deep.txt:1234" -- -c 64 fib --fast --file "$D/nums_deep.txt"
BAD_NPS="1 4" bad "fib --file bad line 1234, -c 4K" 1 "$D/nums_deep.txt:1234" -- -c 4K fib --fast --file "$D/nums_deep.txt"
for np in 2 3; do
    rm -rf "$OD"
    mkdir -p "$OD"
    run_in "$D/nums_neg.txt" "$np" -o "$OD/out.txt" fib --fast --file -
    # line 4, or its byte offset 6
    check_bad "fib --file - (stdin) negative (np=$np)" 1 "$OD" \
        "re:(standard input|stdin|'-')(:4|: byte 6|: offset 6)([^0-9]|$)"
done

section "primes: bad ranges (usage error, exit 2)"
bad "primes reversed range" 2 "10:5" -- primes 10:5
bad "primes malformed 5-10" 2 "5-10" -- primes 5-10
bad "primes malformed a:b" 2 "a:b" -- primes a:b
BAD_NPS=3 bad "primes malformed 5:" 2 "'5:'" -- primes 5:
BAD_NPS=3 bad "primes malformed :5" 2 "':5'" -- primes :5
BAD_NPS=3 bad "primes malformed 1:2:3" 2 "1:2:3" -- primes 1:2:3
BAD_NPS=3 bad "primes negative -5:5" 2 "-5:5" -- primes -- -5:5
BAD_NPS=3 bad "primes above 1e15" 2 "1:1000000000000001" -- primes 1:1000000000000001
bad "primes missing range" 2 "re:range|A:B" -- primes
BAD_NPS=3 bad "primes two ranges" 2 "re:range|A:B" -- primes 1:10 20:30

section "unknown options and kernels, bad engine option values (exit 2, message once)"
bad "unknown engine option" 2 "--frobnicate" -- --frobnicate wordcount "$D/text.txt"
bad "unknown engine option after the kernel" 2 "--frobnicate" -- wordcount --frobnicate "$D/text.txt"
BAD_NPS=3 bad "unknown kernel option (primes)" 2 "--frobnicate" -- primes --frobnicate 1:10
BAD_NPS=3 bad "unknown kernel option (fib)" 2 "--frobnicate" -- fib --frobnicate 5
BAD_NPS=3 bad "unknown short option" 2 "-Z" -- -Z wordcount "$D/text.txt"
bad "unknown kernel" 2 "nokernel" -- nokernel "$D/text.txt"
BAD_NPS=3 bad "no kernel" 2 "re:kernel" --
bad "--threads 0" 2 "--threads" "0" -- --threads 0 wordcount "$D/text.txt"
BAD_NPS=3 bad "--threads -1" 2 "--threads" "-1" -- --threads -1 wordcount "$D/text.txt"
BAD_NPS=3 bad "--threads abc" 2 "--threads" "abc" -- --threads abc wordcount "$D/text.txt"
bad "--chunk-size 0" 2 "--chunk-size" -- --chunk-size 0 wordcount "$D/text.txt"
bad "--chunk-size 12X" 2 "--chunk-size" "12X" -- --chunk-size 12X wordcount "$D/text.txt"
BAD_NPS=3 bad "--chunk-size -5" 2 "--chunk-size" -- --chunk-size -5 wordcount "$D/text.txt"
BAD_NPS=3 bad "--chunk-size after the kernel, 12X" 2 "--chunk-size" "12X" -- wordcount --chunk-size 12X "$D/text.txt"
BAD_NPS=3 bad "--window 0" 2 "--window" -- --window 0 wordcount "$D/text.txt"
BAD_NPS=3 bad "--io bogus" 2 "--io" "bogus" -- --io bogus wordcount "$D/text.txt"
BAD_NPS=3 bad "--format xml" 2 "--format" "xml" -- --format xml wordcount "$D/text.txt"
BAD_NPS=3 bad "--bind bogus" 2 "--bind" "bogus" -- --bind bogus wordcount "$D/text.txt"
BAD_NPS=3 bad "--top x" 2 "--top" -- wordcount --top x "$D/text.txt"
BAD_NPS=3 bad "--mode bogus (test kernel)" 2 "bogus" -- test --mode bogus "$D/text.txt"
BAD_NPS=3 bad "option missing its value" 2 "--threads" -- wordcount "$D/text.txt" --threads

section "output paths"
for np in 2 3; do
    rm -rf "$OD"
    mkdir -p "$OD"
    run "$np" -o "$OD/missing/out.txt" wordcount "$D/text.txt"
    check_bad "output in a missing directory (np=$np)" 1 "$OD" "$OD/missing"
    assert_absent "output in a missing directory (np=$np): directory not created" "$OD/missing"
done
for variant in "same path" "./ path" "symlink" "hard link"; do
    for np in 2 3; do
        rm -rf "$OD"
        mkdir -p "$OD"
        cp "$D/text.txt" "$OD/in.txt"
        before=$(sha "$OD/in.txt")
        case $variant in
        "same path") o="$OD/in.txt" ;;
        "./ path") o="$OD/./in.txt" ;;
        symlink)
            ln -s in.txt "$OD/link.txt"
            o="$OD/link.txt"
            ;;
        "hard link")
            ln "$OD/in.txt" "$OD/hard.txt"
            o="$OD/hard.txt"
            ;;
        esac
        run "$np" -o "$o" wordcount "$OD/in.txt"
        check_bad "output equal to an input, $variant (np=$np)" 2 "$OD" "$o"
        assert_eq "output equal to an input, $variant (np=$np): input unchanged" "$before" "$(sha "$OD/in.txt")"
    done
done
for np in 2 3; do
    rm -rf "$OD"
    mkdir -p "$OD"
    printf '5\n6\n' >"$OD/nums.txt"
    run "$np" -o "$OD/nums.txt" fib --fast --file "$OD/nums.txt"
    check_bad "output equal to fib --file (np=$np)" 2 "$OD" "$OD/nums.txt"
    assert_eq "output equal to fib --file (np=$np): input unchanged" "$(printf '5\n6')" "$(cat "$OD/nums.txt")"
done

section "test kernel --fail-on: the same FILE:LINE message for every -np and chunk size"
first_msg=""
for np in 1 2 3; do
    for cs in 1K 4K 64K; do
        rm -rf "$OD"
        mkdir -p "$OD"
        run "$np" -o "$OD/out.txt" -c "$cs" test --fail-on "line 12345" "$D/lines.txt"
        check_bad "--fail-on line 12345, -c $cs (np=$np)" 1 "$OD" "$D/lines.txt:12345"
        msg=$(grep -a "lines.txt:12345" "$ERR" | head -n 1 || true)
        if [ -z "$first_msg" ]; then
            first_msg=$msg
        else
            assert_eq "--fail-on -c $cs (np=$np): same message as -np 1 -c 1K" "$first_msg" "$msg"
        fi
    done
done
bad "--fail-on in the second file" 1 "$D/lines2.txt:77" -- -c 1K test --fail-on "other 77" "$D/lines.txt" "$D/lines2.txt"
BAD_NPS=3 bad "--fail-on on the first line" 1 "$D/lines.txt:1" -- -c 1K test --fail-on "line 1" "$D/lines.txt"
bad "--fail-on on the last line" 1 "$D/lines.txt:20000" -- -c 1K --io shared test --fail-on "line 20000" "$D/lines.txt"

section "inputs untouched"
assert_eq "big inputs unchanged" "$BIGSUMS0" "$(sha256sum "$D/big.txt" "$D/digits.txt")"
assert_eq "all inputs unchanged" "$INPUTS0" "$(inputs_state)"

finish
