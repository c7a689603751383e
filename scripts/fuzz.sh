#!/usr/bin/env bash
# scripts/fuzz.sh - runs every fuzz target (tests/fuzz/fuzz_NAME.c) under
# libFuzzer with AddressSanitizer + UndefinedBehaviorSanitizer.
#
#   scripts/fuzz.sh [-j N] [SECONDS] [NAME...]
#       SECONDS  per target (default 60)
#       NAME     targets to run (default: every tests/fuzz/fuzz_NAME.c)
#       -j N     run N targets at a time (default 1; one core each)
#
# Installs clang and its runtime if missing, builds build-fuzz/ (CC=clang,
# -DMPIMAP_FUZZ=ON -DMPIMAP_ASAN=ON), then runs each target for SECONDS on a
# working corpus build-fuzz/corpus/NAME seeded from tests/fuzz/corpus/NAME
# (the checked-in corpus is never modified). A crash leaves its input in
# build-fuzz/crashes/NAME/ and makes the script exit 1: minimise it, fix the
# bug and add the input to tests/fuzz/corpus/NAME, which every CI build
# replays (ctest fuzz_NAME). Writes build-fuzz/fuzz.md: the command, then a
# table of target, seconds, executions, executions/s, corpus size, crashes.
source "$(dirname "$0")/common.sh"

SECS=60
JOBS=1
TARGETS=()
CMDLINE="scripts/fuzz.sh $*"
while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help)
        sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    -j)
        [ $# -ge 2 ] || { echo "fuzz.sh: -j needs a number" >&2; exit 2; }
        JOBS=$2
        shift
        ;;
    -j*) JOBS=${1#-j} ;;
    [0-9]*) SECS=$1 ;;
    -*)
        echo "fuzz.sh: unknown option '$1' (see --help)" >&2
        exit 2
        ;;
    *) TARGETS+=("$1") ;;
    esac
    shift
done
[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: SECONDS must be a positive integer" >&2; exit 2; }
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: -j needs a positive integer" >&2; exit 2; }

install_deps "${BUILD_DEPS[@]}" "${TEST_DEPS[@]}" clang libclang-rt-14-dev
B="$MPIMAP_ROOT/build-fuzz"
CC=clang build "$B" -DMPIMAP_FUZZ=ON -DMPIMAP_ASAN=ON
if [ "${#TARGETS[@]}" = 0 ]; then
    for f in "$MPIMAP_ROOT"/tests/fuzz/fuzz_*.c; do
        n=$(basename "$f" .c)
        TARGETS+=("${n#fuzz_}")
    done
fi
for t in "${TARGETS[@]}"; do
    [ -x "$B/tests/fuzz_$t" ] || { echo "fuzz.sh: no target '$t' ($B/tests/fuzz_$t)" >&2; exit 2; }
done

# fuzz_one NAME: one target for SECS seconds; its log is build-fuzz/fuzz-NAME.log.
fuzz_one() {
    local t=$1
    mkdir -p "$B/corpus/$t" "$B/crashes/$t"
    cp -n "$MPIMAP_ROOT/tests/fuzz/corpus/$t"/* "$B/corpus/$t/" 2>/dev/null || true
    log "fuzz $t for $SECS s"
    # detect_leaks stays on: the targets do not start MPI.
    ASAN_OPTIONS="detect_leaks=1:abort_on_error=0" \
        "$B/tests/fuzz_$t" -max_total_time="$SECS" -print_final_stats=1 -timeout=10 -rss_limit_mb=4096 \
        -artifact_prefix="$B/crashes/$t/" "$B/corpus/$t" >"$B/fuzz-$t.log" 2>&1 || true
}

running=0
for t in "${TARGETS[@]}"; do
    if [ "$running" -ge "$JOBS" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    fuzz_one "$t" &
    running=$((running + 1))
done
wait

status=0
{
    # shellcheck disable=SC2016 # backquotes: Markdown code
    printf '`%s`, %s, %s, load average at the end: %s\n\n' "$CMDLINE" "$(date -u '+%Y-%m-%d %H:%M UTC')" \
        "$(nproc) cores" "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf '| target | seconds | executions | exec/s | corpus | crashes |\n| --- | --- | --- | --- | --- | --- |\n'
} >"$B/fuzz.md"
for t in "${TARGETS[@]}"; do
    log_file="$B/fuzz-$t.log"
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
