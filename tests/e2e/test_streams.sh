#!/bin/bash
# End-to-end: inputs that are streams, not regular files. A FIFO named as an
# input file can be read once, front to back, by one process: rank 0 reads
# it and ships the bytes (--io auto and master), --io shared refuses it, and
# nothing opens it before the real read (an open and close would break the
# writer's pipe: the stream lost, the real open blocked for ever).
# Regressions: image on a FIFO hung; wordcount on a FIFO at -np 2 printed
# nothing and exited 0.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

WORDS='alpha beta gamma delta'
N=$((3 * 1024 * 1024 + 7)) # bytes per stream: several 1 MiB chunks
gen_words() { (yes "$WORDS" || true) | head -c "$N"; }
gen_words >"$TMP/words.txt"
oracle wordcount "$TMP/words.txt" >"$TMP/words.expected"

FIFO="$TMP/stream"
# feed_fifo GENERATOR...: a background writer into a fresh FIFO; WRITER is its pid.
feed_fifo() {
    rm -f "$FIFO"
    mkfifo "$FIFO"
    "$@" >"$FIFO" &
    WRITER=$!
}
# writer_done LABEL: the writer has ended (the run read the whole stream);
# a writer still blocked means the stream was never read to its end.
writer_done() {
    local _
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        kill -0 "$WRITER" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$WRITER" 2>/dev/null; then
        fail "$1: the FIFO's writer is still blocked: the stream was not read"
        kill "$WRITER" 2>/dev/null || true
    else
        ok "$1: the FIFO's writer ended"
    fi
    wait "$WRITER" 2>/dev/null || true
}

section "wordcount on a FIFO: every -np and --io mode gives the counts of the stream"
for np in 1 2 3; do
    for io in auto master; do
        feed_fifo gen_words
        run "$np" -c 1M --io "$io" wordcount "$FIFO"
        assert_rc "wordcount FIFO -np $np --io $io" 0
        assert_same_file "wordcount FIFO -np $np --io $io: counts" "$TMP/words.expected" "$OUT"
        writer_done "wordcount FIFO -np $np --io $io"
    done
done
section "a FIFO among regular files keeps the input order"
oracle wordcount "$TMP/words.txt" "$TMP/words.txt" "$TMP/words.txt" >"$TMP/three.expected"
feed_fifo gen_words
run 3 -c 1M wordcount "$TMP/words.txt" "$FIFO" "$TMP/words.txt"
assert_rc "file, FIFO, file (-np 3)" 0
assert_same_file "file, FIFO, file (-np 3): counts" "$TMP/three.expected" "$OUT"
writer_done "file, FIFO, file"

section "--io shared refuses a FIFO (every rank would need the bytes)"
for np in 1 3; do
    feed_fifo gen_words
    run "$np" --io shared wordcount "$FIFO"
    assert_rc "--io shared on a FIFO (-np $np)" 1
    assert_contains "--io shared on a FIFO (-np $np): says why" "$ERR" "is not a regular file"
    assert_count "--io shared on a FIFO (-np $np): said once" "$ERR" "is not a regular file" 1
    kill "$WRITER" 2>/dev/null || true
    wait "$WRITER" 2>/dev/null || true
done

section "test kernel (lines) on a FIFO, with a journal"
"$PY" -c "
import sys
sys.stdout.write(''.join('line %d\n' % i for i in range(1, 200001)))" >"$TMP/lines.txt"
run_one test "$TMP/lines.txt"
cp "$OUT" "$TMP/lines.expected"
feed_fifo cat "$TMP/lines.txt"
run 2 -c 64K test "$FIFO"
assert_rc "test kernel on a FIFO (-np 2)" 0
assert_same_file "test kernel on a FIFO (-np 2): same output as the file" "$TMP/lines.expected" "$OUT"
writer_done "test kernel on a FIFO"

section "image on a FIFO (rank 0 decodes as the bytes come)"
"$PY" - "$TMP/img.ppm" <<'EOF'
import sys
w, h = 300, 200
body = bytes((x * 7 + y * 3 + c * 50) & 255 for y in range(h) for x in range(w) for c in range(3))
open(sys.argv[1], "wb").write(b"P6\n%d %d\n255\n" % (w, h) + body)
EOF
run 1 image --filter blur --strip-rows 7 "$TMP/img.ppm" -o "$TMP/img-file.png"
assert_rc "image from the file" 0
for np in 1 2 3; do
    feed_fifo cat "$TMP/img.ppm"
    run "$np" image --filter blur --strip-rows 7 "$FIFO" -o "$TMP/img-fifo.png"
    assert_rc "image on a FIFO (-np $np)" 0
    assert_same_file "image on a FIFO (-np $np): same PNG as from the file" "$TMP/img-file.png" "$TMP/img-fifo.png"
    writer_done "image on a FIFO (-np $np)"
    rm -f "$TMP/img-fifo.png"
done

finish
