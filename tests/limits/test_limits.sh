#!/bin/bash
# Resource limits (docs/RELIABILITY.md#memory-bounds): run by
# `scripts/test.sh --full` (CI) on the normal build, not by ctest: it streams
# 10 GB three times, a few minutes on two cores.
#
#   MPIMAP=build/mpimap bash tests/limits/test_limits.sh
#
# 1. 10 GB (MPIMAP_LIMITS_BYTES, default 10^10) of generated input stream
#    through wordcount (a pipe on standard input), hash (a sparse file:
#    holes plus 1 MiB of random data every 1000 MiB, so nothing big is kept
#    on disk) and image (a 60000 x 55556 RGB PPM through a FIFO, gray, to
#    JPEG) with mpirun -np 2 -t 2; each result is checked (counts, the
#    xxhsum digest, the JPEG's size) and every rank's peak RSS (--metrics)
#    must be under the bound RELIABILITY.md documents for that kernel.
# 2. Each kernel runs (on 1 GB) with every rank under `ulimit -v` at the
#    documented address-space bound plus 5%: it must succeed. Under a
#    limit far below it must fail cleanly: exit 1, a message, every rank
#    gone, no output under the final name.
# 3. Huge declared sizes are refused before any allocation: a PPM header
#    declaring 65535 x 65535 x 16-bit RGB (25 GB) with --max-pixels 0 (no
#    limit), a PNG whose IHDR declares 2^31-1 x 2^31-1, under the same
#    address-space limit: exit 1 naming the truncation/size, not "out of
#    memory".
set -euo pipefail
E2E_TIMEOUT=${E2E_TIMEOUT:-900} # one mpirun (lib.sh's default is 120 s)
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/../e2e/lib.sh"

NBYTES=${MPIMAP_LIMITS_BYTES:-10000000000}
MIB=$((1 << 20))
T=2  # compute threads per rank
R=2  # ranks
W=$((2 * T)) # default window per rank
LAUNCH=(timeout -k 10 "$E2E_TIMEOUT" "$MPIEXEC" -np "$R" ${MPIEXEC_OVERSUB[@]+"${MPIEXEC_OVERSUB[@]}"})
# Two threads per rank must not share one core (Open MPI binds -np 2 to one
# core each): let the ranks use every core.
if [ "$MPIMAP_MPI_FLAVOR" = openmpi ]; then LAUNCH+=(--bind-to none); fi
echo "# launcher: ${LAUNCH[*]:3}"

# The documented bounds (RELIABILITY.md), in bytes, per rank.
BASE_RSS=$((48 * MIB))
# rss_bound KERNEL RANK CHUNK: resident memory a rank may use.
rss_bound() {
    local k=$1 rank=$2 c=$3 win=$W
    [ "$rank" = 0 ] && win=$((R * W)) # rank 0 holds every rank's window in flight
    case $k in
    wordcount) echo $((BASE_RSS + (win + 2 * T) * c)) ;;
    hash) echo $((BASE_RSS + T * 2 * MIB)) ;;
    image)
        # rank 0 also: the encoder queue (64 MiB), strips waiting for an
        # earlier one (the engine's 256 MiB cap), PNG deflate blocks.
        local extra=0
        [ "$rank" = 0 ] && extra=$(((64 + 256 + 2 * (2 * T + 2)) * MIB))
        echo $((BASE_RSS + extra + (win + 4 * T) * c))
        ;;
    esac
}
# vm_bound KERNEL RANK CHUNK: address space (what ulimit -v limits): the
# libraries and MPI's segments (256 MiB) and, per thread, a stack and a
# malloc arena (80 MiB): T compute threads and the main one; image's rank 0
# also runs the encoder and T deflate threads.
vm_bound() {
    local threads=$((T + 1))
    [ "$1" = image ] && [ "$2" = 0 ] && threads=$((2 * T + 2))
    echo $(($(rss_bound "$@") + 256 * MIB + threads * 80 * MIB))
}

# check_rss LABEL KERNEL CHUNK METRICS: every rank under its RSS bound.
check_rss() {
    local label=$1 k=$2 c=$3 m=$4 rank rss vm b
    while read -r rank rss vm; do
        b=$(rss_bound "$k" "$rank" "$c")
        if [ "$rss" -gt 0 ] && [ "$rss" -le "$b" ]; then
            ok "$label: rank $rank peak RSS $((rss / MIB)) MiB <= bound $((b / MIB)) MiB (address space $((vm / MIB)) MiB)"
        else
            fail "$label: rank $rank peak RSS $((rss / MIB)) MiB <= bound $((b / MIB)) MiB"
        fi
    done < <("$PY" -c "
import json, sys
for r in json.load(open(sys.argv[1]))['ranks']:
    print(r['rank'], r['peak_rss_bytes'], r['peak_vm_bytes'])" "$m")
    local n
    n=$("$PY" -c "import json,sys; print(len(json.load(open(sys.argv[1]))['ranks']))" "$m")
    assert_eq "$label: metrics of $R ranks" "$R" "$n"
}

# Generators (fast: yes(1) and head(1)).
WORDS='alpha beta gamma delta epsilon'
gen_words() { (yes "$WORDS" || true) | head -c "$1"; }
PPM_W=60000
PPM_H=$((NBYTES / (PPM_W * 3)))
[ $((PPM_H * PPM_W * 3)) -lt "$NBYTES" ] && PPM_H=$((PPM_H + 1))
gen_ppm() { # W H
    printf 'P6\n%d %d\n255\n' "$1" "$2"
    (yes 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ' || true) | head -c $(($1 * $2 * 3))
}
# The counts wordcount must print for gen_words N.
expected_words() {
    "$PY" - "$1" "$WORDS" <<'EOF'
import collections, re, sys
n, words = int(sys.argv[1]), sys.argv[2] + "\n"
full, rest = divmod(n, len(words))
c = collections.Counter()
for w in re.findall(r"[a-z]+", words):
    c[w] += full
for w in re.findall(r"[a-z]+", words[:rest]):
    c[w] += 1
for w, k in sorted(c.items(), key=lambda x: (-x[1], x[0])):
    print("%d\t%s" % (k, w))
EOF
}
# jpeg_info FILE: "WIDTH HEIGHT COMPONENTS" from the JPEG's SOF marker.
jpeg_info() {
    "$PY" - "$1" <<'EOF'
import struct, sys
d = open(sys.argv[1], "rb").read(1 << 16)
i = 2
while i < len(d):
    m, n = d[i + 1], struct.unpack(">H", d[i + 2:i + 4])[0]
    if m in (0xC0, 0xC1, 0xC2):
        h, w, c = struct.unpack(">HHB", d[i + 5:i + 10])
        print(w, h, c)
        break
    i += 2 + n
EOF
}

OD="$TMP/out"
mkdir -p "$OD"
GB=$(awk "BEGIN{printf \"%.1f\", $NBYTES / 1e9}")

section "$GB GB streamed through wordcount, hash and image (mpirun -np $R -t $T)"
C=$((4 * MIB))
t0=$(date +%s)
RC=0
gen_words "$NBYTES" | "${LAUNCH[@]}" "$MPIMAP" -t "$T" -c "$C" --metrics "$TMP/wc.json" \
    -o "$OD/wc.txt" wordcount - >"$OUT" 2>"$ERR" || RC=$?
secs=$(($(date +%s) - t0))
assert_rc "wordcount: $GB GB on standard input in ${secs}s" 0
expected_words "$NBYTES" >"$TMP/wc.expected"
assert_same_file "wordcount: counts of the $GB GB stream" "$TMP/wc.expected" "$OD/wc.txt"
check_rss "wordcount $GB GB" wordcount "$C" "$TMP/wc.json"

SPARSE="$TMP/sparse.bin"
truncate -s "$NBYTES" "$SPARSE"
for ((off = 0; off * MIB < NBYTES - MIB; off += 1000)); do
    head -c "$MIB" /dev/urandom | dd of="$SPARSE" bs="$MIB" seek="$off" conv=notrunc status=none
done
echo "# $SPARSE: $(stat -c %s "$SPARSE") bytes, $(du -k "$SPARSE" | cut -f1) KiB on disk"
t0=$(date +%s)
run_cmd "${LAUNCH[@]}" "$MPIMAP" -t "$T" --metrics "$TMP/hash.json" -o "$OD/sparse.xxh3" \
    hash --algo xxh3 "$SPARSE"
secs=$(($(date +%s) - t0))
assert_rc "hash: a $GB GB file in ${secs}s" 0
want=$(xxhsum -H3 "$SPARSE" 2>/dev/null | grep -oE '[0-9a-f]{16,}' | head -n 1)
got=$(grep -oE '[0-9a-f]{16,}' "$OD/sparse.xxh3" | head -n 1 || true)
assert_eq "hash: the xxh3 digest equals xxhsum -H3's" "$want" "$got"
check_rss "hash $GB GB" hash $((8 * MIB)) "$TMP/hash.json"
rm -f "$SPARSE"

FIFO="$TMP/stream.ppm"
mkfifo "$FIFO"
gen_ppm "$PPM_W" "$PPM_H" >"$FIFO" &
genpid=$!
t0=$(date +%s)
run_cmd "${LAUNCH[@]}" "$MPIMAP" -t "$T" --metrics "$TMP/image.json" image --filter gray \
    --max-pixels 0 --quality 50 "$FIFO" -o "$OD/stream.jpg"
secs=$(($(date +%s) - t0))
wait "$genpid" || true
assert_rc "image: a $PPM_W x $PPM_H RGB PPM ($((PPM_W * PPM_H * 3)) bytes) through a FIFO in ${secs}s" 0
assert_eq "image: the JPEG is $PPM_W x $PPM_H gray" "$PPM_W $PPM_H 1" "$(jpeg_info "$OD/stream.jpg" 2>/dev/null || true)"
# Strips of --chunk-size (4 MiB) bytes of rows, plus the halo (none for gray).
check_rss "image $GB GB" image $((4 * MIB + 2 * PPM_W * 3)) "$TMP/image.json"
rm -f "$OD/stream.jpg" "$FIFO"

section "ulimit -v at the documented address-space bound (+5%): the run succeeds"
ONE=$((1 << 30))
gen_words "$ONE" >"$TMP/words.txt"
gen_ppm 6000 $((ONE / 18000)) >"$TMP/img.ppm"
expected_words "$ONE" >"$TMP/words.expected"
xxhsum -H3 "$TMP/words.txt" 2>/dev/null | grep -oE '[0-9a-f]{16,}' | head -n 1 >"$TMP/words.xxh3"
# limited KB CMD...: CMD on every rank under ulimit -v KB (mpirun itself
# is not limited: its own threads are not ours to bound).
limited() {
    local kb=$1
    shift
    # shellcheck disable=SC2016 # expanded by the rank's sh
    run_cmd "${LAUNCH[@]}" sh -c 'ulimit -v "$0" && exec "$@"' "$kb" "$MPIMAP" -t "$T" "$@"
}
kb_of() { echo $((($1 + 1023) / 1024)); }
# The largest bound over the ranks (rank 0's): the limit is the same for all.
WC_KB=$(kb_of $(($(vm_bound wordcount 0 $((4 * MIB))) * 105 / 100)))
HASH_KB=$(kb_of $(($(vm_bound hash 0 $((8 * MIB))) * 105 / 100)))
IMG_KB=$(kb_of $(($(vm_bound image 0 $((4 * MIB + 36000))) * 105 / 100)))
limited "$WC_KB" -c 4M -o "$OD/wc1.txt" wordcount "$TMP/words.txt"
assert_rc "wordcount 1 GB under ulimit -v $((WC_KB / 1024)) MiB" 0
assert_same_file "wordcount under ulimit -v: counts" "$TMP/words.expected" "$OD/wc1.txt"
limited "$HASH_KB" -o "$OD/h1.xxh3" hash --algo xxh3 "$TMP/words.txt"
assert_rc "hash 1 GB under ulimit -v $((HASH_KB / 1024)) MiB" 0
assert_eq "hash under ulimit -v: digest" "$(cat "$TMP/words.xxh3")" \
    "$(grep -oE '[0-9a-f]{16,}' "$OD/h1.xxh3" | head -n 1 || true)"
limited "$IMG_KB" image --filter blur --sigma 2 "$TMP/img.ppm" -o "$OD/img1.png"
assert_rc "image blur 1 GB under ulimit -v $((IMG_KB / 1024)) MiB" 0
run_cmd "$MPIMAP" -t "$T" image --filter blur --sigma 2 "$TMP/img.ppm" -o "$OD/img1-free.png"
assert_same_file "image under ulimit -v: same PNG as without a limit" "$OD/img1-free.png" "$OD/img1.png"
rm -f "$OD/img1-free.png"

section "a limit far below the bound: a clean failure"
# low_limit LABEL KB ARGS... (the last argument is -o's path, checked absent)
low_limit() {
    local label=$1 kb=$2 out=$3
    shift 3
    local t0
    t0=$(date +%s)
    limited "$kb" -o "$out" "$@"
    local secs=$(($(date +%s) - t0))
    if [ "$RC" = 1 ] && grep -qaE "out of memory|cannot start|Cannot allocate|cannot allocate" "$ERR"; then
        ok "$label: exit 1 in ${secs}s: $(grep -aE 'out of memory|cannot start|allocate' "$ERR" | head -n 1 | cut -c1-120)"
    else
        fail "$label: exit 1 with an out-of-memory message" "exit $RC"
        show_last
    fi
    assert_absent "$label: nothing under the output name" "$out"
    assert_no_tmp "$label: no temporary file left" "$(dirname "$out")" "$(basename "$out")"
    assert_no_strays "$label: every rank exited"
}
# Found by hand: the ranks need about 250 MiB of address space before any
# data (libraries, MPI, a thread's stack and malloc arena).
low_limit "wordcount under ulimit -v 240 MiB" $((240 * 1024)) "$OD/low-wc.txt" -c 4M wordcount "$TMP/words.txt"
low_limit "image under ulimit -v 240 MiB" $((240 * 1024)) "$OD/low-img.png" image --filter blur "$TMP/img.ppm"

section "huge declared sizes are refused before allocation (under ulimit -v at the bound)"
printf 'P6\n65535 65535\n65535\n' >"$TMP/huge16.ppm"
head -c 4096 /dev/zero >>"$TMP/huge16.ppm"
limited "$IMG_KB" image --filter blur --max-pixels 0 "$TMP/huge16.ppm" -o "$OD/huge.png"
assert_rc "PPM declaring 65535 x 65535 x 16-bit RGB with --max-pixels 0" 1
assert_contains "PPM declaring 25 GB: names the truncation" "$ERR" "truncated PNM raster"
assert_not_contains "PPM declaring 25 GB: not an allocation failure" "$ERR" "out of memory"
assert_absent "PPM declaring 25 GB: no output" "$OD/huge.png"
"$PY" - "$TMP/huge.png" <<'EOF'
import struct, sys, zlib
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
ihdr = struct.pack(">IIBBBBB", 0x7fffffff, 0x7fffffff, 8, 2, 0, 0, 0)
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
                              chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))
EOF
limited "$IMG_KB" image --filter gray --max-pixels 0 "$TMP/huge.png" -o "$OD/huge2.png"
assert_rc "PNG declaring 2^31-1 x 2^31-1 with --max-pixels 0" 1
assert_not_contains "PNG declaring 2^31-1 squared: not an allocation failure" "$ERR" "out of memory"
assert_match "PNG declaring 2^31-1 squared: says why" "$ERR" "[Ii]nvalid|too large|exceeds|limit|truncated"
assert_absent "PNG declaring 2^31-1 squared: no output" "$OD/huge2.png"

finish
