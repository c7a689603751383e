#!/usr/bin/env bash
# scripts/fuzz.sh - runs every fuzz target (tests/fuzz/fuzz_NAME.c) under
# libFuzzer with AddressSanitizer + UndefinedBehaviorSanitizer.
#
#   scripts/fuzz.sh [SECONDS] [NAME...]     (default: 60 s each, every target)
#
# Installs clang and its runtime if missing, builds build-fuzz/ (CC=clang,
# -DMPIMAP_FUZZ=ON -DMPIMAP_ASAN=ON), then runs each target for SECONDS on a
# working corpus build-fuzz/corpus/NAME seeded from tests/fuzz/corpus/NAME
# (the checked-in corpus is never modified). A crash leaves its input in
# build-fuzz/crashes/NAME/ and makes the script exit 1: minimise it, fix the
# bug and add the input to tests/fuzz/corpus/NAME, which every CI build
# replays (ctest fuzz_NAME). Prints a table: target, seconds, executions,
# executions/s, corpus size, crashes.
source "$(dirname "$0")/common.sh"

SECS=60
TARGETS=()
for a in "$@"; do
    case "$a" in
    -h | --help)
        sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    [0-9]*) SECS=$a ;;
    *) TARGETS+=("$a") ;;
    esac
done
[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: SECONDS must be a positive integer" >&2; exit 2; }

install_deps "${BUILD_DEPS[@]}" "${TEST_DEPS[@]}" clang libclang-rt-14-dev
B="$MPIMAP_ROOT/build-fuzz"
CC=clang build "$B" -DMPIMAP_FUZZ=ON -DMPIMAP_ASAN=ON
if [ "${#TARGETS[@]}" = 0 ]; then
    for f in "$MPIMAP_ROOT"/tests/fuzz/fuzz_*.c; do
        n=$(basename "$f" .c)
        TARGETS+=("${n#fuzz_}")
    done
fi

status=0
printf '| target | seconds | executions | exec/s | corpus | crashes |\n| --- | --- | --- | --- | --- | --- |\n' >"$B/fuzz.md"
for t in "${TARGETS[@]}"; do
    bin="$B/tests/fuzz_$t"
    [ -x "$bin" ] || { echo "fuzz.sh: no target '$t' ($bin)" >&2; exit 2; }
    mkdir -p "$B/corpus/$t" "$B/crashes/$t"
    cp -n "$MPIMAP_ROOT/tests/fuzz/corpus/$t"/* "$B/corpus/$t/" 2>/dev/null || true
    log "fuzz $t for $SECS s"
    log_file="$B/fuzz-$t.log"
    # detect_leaks stays on: the targets do not start MPI.
    ASAN_OPTIONS="detect_leaks=1:abort_on_error=0" \
        "$bin" -max_total_time="$SECS" -print_final_stats=1 -timeout=10 -rss_limit_mb=4096 \
        -artifact_prefix="$B/crashes/$t/" "$B/corpus/$t" >"$log_file" 2>&1 || true
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log_file" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log_file" | tail -1)
    ncorp=$(find "$B/corpus/$t" -type f | wc -l)
    ncrash=$(find "$B/crashes/$t" -type f | wc -l)
    printf '| %s | %s | %s | %s | %s | %s |\n' "$t" "$SECS" "${execs:-?}" "${rate:-?}" "$ncorp" \
        "$ncrash" >>"$B/fuzz.md"
    if [ "$ncrash" != 0 ] || [ -z "$execs" ]; then
        status=1
        echo "fuzz.sh: $t: crash or failure, see $log_file and $B/crashes/$t/" >&2
        tail -30 "$log_file" >&2
    fi
done
cat "$B/fuzz.md"
exit "$status"
