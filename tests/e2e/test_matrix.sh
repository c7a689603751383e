#!/bin/bash
# End-to-end: the same output for every -np x --threads x --io, equal to an
# independent Python oracle (tests/e2e/oracle.py), for wordcount (full
# matrix), fib, primes and the test kernel (reduced matrix), and the tsv/json
# formats carrying the same data.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
E="$TMP/expected"
mkdir -p "$D" "$E" "$TMP/got"

section "inputs and oracle outputs"
# Real text from the machine.
cat /usr/share/common-licenses/* >"$D/licenses.txt"
cp /usr/share/common-licenses/GPL-3 "$D/gpl3.txt"
# More real text, with UTF-8 in it (maintainers' names); cut mid-file on purpose.
find /usr/share/doc -name copyright -type f 2>/dev/null | sort | head -n 400 |
    xargs cat 2>/dev/null | head -c 2000000 >"$D/copyright.txt" || true
if [ ! -s "$D/copyright.txt" ]; then cat "$D/licenses.txt" "$D/licenses.txt" >"$D/copyright.txt"; fi
# Synthetic edge cases: mixed case, digits, '_', UTF-8, raw bytes >= 0x80,
# control bytes and CRLF as separators, words longer than 64K, a 250 KB
# line, no final newline.
oracle gen-synthetic "$D/syn.txt" 1
oracle gen-utf8 "$D/u8.txt" 2
# A file starting with a word: must not join the last word of syn.txt.
printf 'joined with the previous file? no\n' >"$D/tail.txt"
LICENSE_FILES=(/usr/share/common-licenses/*)
MULTI=("$D/syn.txt" "$D/tail.txt" "${LICENSE_FILES[@]}")
echo "licenses.txt $(wc -c <"$D/licenses.txt") B, copyright.txt $(wc -c <"$D/copyright.txt") B," \
    "syn.txt $(wc -c <"$D/syn.txt") B, u8.txt $(wc -c <"$D/u8.txt") B"

# Wordcount cases: NAME|ENGINE_OPTS|KERNEL_ARGS  (word-split, paths are ours)
WC_CASES=(
    "lic4k|-c 4K|$D/licenses.txt"
    "lic64k_top|-c 64K|--top 25 $D/licenses.txt"
    "gpl3|-c 4K|$D/gpl3.txt"
    "copyright|-c 64K|$D/copyright.txt"
    "syn|-c 4K|$D/syn.txt"
    "multi_cs|-c 4K|--case-sensitive ${MULTI[*]}"
)
for c in "${WC_CASES[@]}"; do
    IFS='|' read -r name eopts kargs <<<"$c"
    # shellcheck disable=SC2086
    oracle wordcount $kargs >"$E/wc_$name.txt"
done
echo "oracle: $(wc -l <"$E/wc_lic4k.txt") distinct words in licenses.txt," \
    "$(wc -l <"$E/wc_syn.txt") in syn.txt"
# Sanity of the oracle itself on a text we can count by hand.
printf 'The the THE cat_1 caf\xc3\xa9 x-y\n' >"$D/hand.txt"
assert_eq "oracle sanity (hand-counted)" "$(printf '3\tthe\n1\tcaf\xc3\xa9\n1\tcat_1\n1\tx\n1\ty')" \
    "$(oracle wordcount "$D/hand.txt")"

# check_case LABEL KEY EXPECTED_FILE : compare $OUT with the oracle and with
# the first configuration's output for KEY.
declare -A FIRST_OUT
check_case() {
    local label=$1 key=$2 exp=$3
    if [ "$RC" != 0 ]; then
        fail "$label: exit 0" "exit code $RC"
        show_last
        return
    fi
    assert_same_file "$label = oracle" "$exp" "$OUT"
    local s
    s=$(sha "$OUT")
    if [ -z "${FIRST_OUT[$key]:-}" ]; then
        FIRST_OUT[$key]="$s $label"
        cp "$OUT" "$TMP/got/$key.first"
    elif [ "${FIRST_OUT[$key]%% *}" != "$s" ]; then
        fail "$label: byte-identical to ${FIRST_OUT[$key]#* }"
        diff -a "$TMP/got/$key.first" "$OUT" | head -n 10 | cut -c1-200 | sed 's/^/    | /' || true
    fi
}

NPS="1 2 3 4" THS="1 2 3"
# MPIMAP_QUICK=1 (sanitizer builds): the corners of the matrix only.
[ "$QUICK" = 1 ] && NPS="1 3" THS="1 3"
section "wordcount: matrix -np $NPS x --threads $THS x --io master|shared"
t_start=$(date +%s)
for np in $NPS; do
    for th in $THS; do
        for io in master shared; do
            for c in "${WC_CASES[@]}"; do
                IFS='|' read -r name eopts kargs <<<"$c"
                # shellcheck disable=SC2086
                run "$np" --threads "$th" --io "$io" $eopts wordcount $kargs
                check_case "wordcount $name np=$np t=$th io=$io" "wc_$name" "$E/wc_$name.txt"
            done
        done
    done
done
echo "wordcount matrix took $(($(date +%s) - t_start)) s"

section "fib, primes, test kernel: reduced matrix"
"$PY" -c '
import random
r = random.Random(7)
a = list(range(94)) + [93, 0, 1, 50, 50, 92]
r.shuffle(a)
print(" ".join(map(str, a)))
b = list(range(28)) + [27, 3]
r.shuffle(b)
print(" ".join(map(str, b)))
with open("'"$D"'/nums.txt", "w") as f:
    for _ in range(1500):
        f.write("%d\n" % r.randint(0, 93))
' >"$D/fib_args.txt"
FIB_FAST_ARGS=$(sed -n 1p "$D/fib_args.txt")
FIB_NAIVE_ARGS=$(sed -n 2p "$D/fib_args.txt")
# shellcheck disable=SC2086
oracle fib $FIB_FAST_ARGS >"$E/fib_fast.txt"
# shellcheck disable=SC2086
oracle fib $FIB_NAIVE_ARGS >"$E/fib_naive.txt"
oracle fib --file "$D/nums.txt" >"$E/fib_file.txt"
oracle primes 1 1000000 >"$E/pr_1e6.txt"
oracle primes 1000000000000 1000000100000 >"$E/pr_1e12.txt"
oracle primes --list 1 200000 >"$E/pr_list.txt"
oracle primes 1 100 >"$E/pr_100.txt"
assert_eq "prime oracle sanity: pi(10^6) = 78498" "78498" "$(cat "$E/pr_1e6.txt")"
assert_eq "fib oracle sanity: fib(93)" "12200160415121876738" "$(oracle fib 93 | cut -f2)"

# Cases: NAME|ARGS|EXPECTED (ARGS word-split)
OTHER_CASES=(
    "fib_fast|fib --fast $FIB_FAST_ARGS|$E/fib_fast.txt"
    "fib_naive|fib $FIB_NAIVE_ARGS|$E/fib_naive.txt"
    "fib_file|fib --fast --file $D/nums.txt|$E/fib_file.txt"
    "fib_file_c100|-c 100 fib --fast --file $D/nums.txt|$E/fib_file.txt"
    "primes_1e6|-c 9973 primes 1:1000000|$E/pr_1e6.txt"
    "primes_1e12|-c 7919 primes 1000000000000:1000000100000|$E/pr_1e12.txt"
    "primes_list|-c 4999 primes --list 1:200000|$E/pr_list.txt"
    "primes_100|primes 1:100|$E/pr_100.txt"
    "echo_lic|-c 1K test --mode echo $D/licenses.txt|$D/licenses.txt"
    "echo_u8|-c 4K test $D/u8.txt|$D/u8.txt"
)
t_start=$(date +%s)
CFGS=("1 1 master" "2 2 shared" "3 1 shared" "4 3 master" "2 3 master" "3 2 shared")
[ "$QUICK" = 1 ] && CFGS=("1 1 master" "2 2 shared" "4 3 master")
for cfg in "${CFGS[@]}"; do
    read -r np th io <<<"$cfg"
    for c in "${OTHER_CASES[@]}"; do
        IFS='|' read -r name args exp <<<"$c"
        # shellcheck disable=SC2086
        run "$np" --threads "$th" --io "$io" $args
        check_case "$name np=$np t=$th io=$io" "$name" "$exp"
    done
done
echo "reduced matrix took $(($(date +%s) - t_start)) s"

section "primes: edge ranges and tiny chunks (np=3, t=2)"
for r in 0:0 0:1 1:1 2:2 3:3 4:4 0:2 1:2 2:3 7919:7919 7920:7920 999983:999983 \
    1000000000000000:1000000000000000 999999999999000:1000000000000000; do
    run 3 --threads 2 primes "$r"
    if [ "$RC" = 0 ]; then
        assert_eq "primes $r count" "$(oracle primes "${r%%:*}" "${r##*:}")" "$(cat "$OUT")"
    else
        assert_rc "primes $r" 0
    fi
done
oracle primes 1 1000 >"$E/pr_c1.txt"
run 3 --threads 2 -c 1 primes 1:1000
check_case "primes -c 1 1:1000 (1000 chunks)" "pr_c1" "$E/pr_c1.txt"
oracle primes --list 1 500 >"$E/pr_c7.txt"
run 4 --threads 1 -c 7 primes --list 1:500
check_case "primes -c 7 --list 1:500" "pr_c7" "$E/pr_c7.txt"
oracle primes --list 999999999999000 1000000000000000 >"$E/pr_max.txt"
run 2 --threads 2 primes --list 999999999999000:1000000000000000
check_case "primes --list near 1e15" "pr_max" "$E/pr_max.txt"

section "--format tsv and json carry the same data"
# Lines with a tab, backslashes, quotes, CR, control bytes, UTF-8, an empty line.
printf 'plain\na\tb\nback\\slash\n"quoted"\ncr at end\r\nctrl \001\037 bytes\n\nünïcödé 日本\n/slash {json} [1,2]\n' >"$D/echo.txt"
FMT_CASES=(
    # NAME|ARGS|COLUMNS|EXPECTED
    "wc_lic|-c 4K wordcount $D/licenses.txt|count,word|$E/wc_lic4k.txt"
    "wc_u8|-c 4K wordcount $D/u8.txt|count,word|U8"
    "wc_top|-c 64K wordcount --top 25 $D/licenses.txt|count,word|$E/wc_lic64k_top.txt"
    "fib|fib --fast $FIB_FAST_ARGS|n,fib|$E/fib_fast.txt"
    "primes_count|-c 9973 primes 1:1000000|count|$E/pr_1e6.txt"
    "primes_list|-c 4999 primes --list 1:200000|prime|$E/pr_list.txt"
    "echo|-c 16 test $D/echo.txt|line|$D/echo.txt"
    "echo_u8|-c 4K test $D/u8.txt|line|$D/u8.txt"
)
oracle wordcount "$D/u8.txt" >"$E/wc_u8.txt"
for cfg in "2 2" "3 1"; do
    read -r np th <<<"$cfg"
    for fmt in tsv json; do
        for c in "${FMT_CASES[@]}"; do
            IFS='|' read -r name args cols exp <<<"$c"
            [ "$exp" = U8 ] && exp="$E/wc_u8.txt"
            # shellcheck disable=SC2086
            run "$np" --threads "$th" --format "$fmt" $args
            label="--format $fmt $name np=$np t=$th"
            if [ "$RC" != 0 ]; then
                assert_rc "$label" 0
                continue
            fi
            if oracle convert "$fmt" "$cols" <"$OUT" >"$TMP/conv.txt" 2>"$TMP/conv.err"; then
                ok "$label: valid $fmt with columns $cols"
                assert_same_file "$label: same data as the oracle" "$exp" "$TMP/conv.txt"
            else
                fail "$label: valid $fmt with columns $cols" "$(cat "$TMP/conv.err")"
                show_file "output" "$OUT" 5
            fi
            cp "$OUT" "$TMP/got/fmt_${fmt}_$name.$np"
        done
        # Formats are deterministic across configurations too.
        if [ "$np" = 3 ]; then
            for c in "${FMT_CASES[@]}"; do
                IFS='|' read -r name _ <<<"$c"
                if [ -e "$TMP/got/fmt_${fmt}_$name.2" ] && [ -e "$TMP/got/fmt_${fmt}_$name.3" ]; then
                    assert_same_file "--format $fmt $name: identical for np=2 t=2 and np=3 t=1" \
                        "$TMP/got/fmt_${fmt}_$name.2" "$TMP/got/fmt_${fmt}_$name.3"
                fi
            done
        fi
    done
done
# tsv has exactly one header line, then the same rows as text for plain words.
run 2 --format tsv -c 4K wordcount "$D/syn.txt"
assert_eq "tsv wordcount syn.txt: header line" "$(printf 'count\tword')" "$(head -n 1 "$OUT")"
tail -n +2 "$OUT" >"$TMP/tsv_body.txt"
assert_same_file "tsv wordcount syn.txt (raw bytes >= 0x80): body = oracle" "$E/wc_syn.txt" "$TMP/tsv_body.txt"
# json with raw (non-UTF-8) bytes in words must still be valid JSON with the same counts.
run 2 --format json -c 4K wordcount "$D/syn.txt"
if oracle convert json count,word <"$OUT" >"$TMP/conv.txt" 2>"$TMP/conv.err"; then
    ok "json wordcount syn.txt (raw bytes >= 0x80): valid JSON"
    cut -f1 "$E/wc_syn.txt" >"$TMP/exp_counts.txt"
    cut -f1 "$TMP/conv.txt" >"$TMP/got_counts.txt"
    assert_same_file "json wordcount syn.txt: same counts in the same order" \
        "$TMP/exp_counts.txt" "$TMP/got_counts.txt"
    { grep -a -v -P '[\x80-\xff]' "$E/wc_syn.txt" || true; } >"$TMP/exp_ascii.txt"
    { grep -a -v -P '[\x80-\xff]' "$TMP/conv.txt" || true; } >"$TMP/got_ascii.txt"
    assert_same_file "json wordcount syn.txt: same rows for the ASCII words" \
        "$TMP/exp_ascii.txt" "$TMP/got_ascii.txt"
else
    fail "json wordcount syn.txt (raw bytes >= 0x80): valid JSON" "$(cat "$TMP/conv.err")"
fi
# text is the default and equals --format text
run 2 --format text -c 4K wordcount "$D/gpl3.txt"
check_case "--format text = default text" "wc_gpl3" "$E/wc_gpl3.txt"

finish
