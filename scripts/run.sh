#!/usr/bin/env bash
# scripts/run.sh [FILE...] - the main job in one command on a fresh machine:
# installs missing dependencies, builds, generates the default dataset (a
# 256 MiB synthetic text corpus in data/) unless files are given, and runs
# `wordcount` over it on all cores with mpirun, printing the top words, the
# time and the throughput.
#
# Environment: NP (ranks, default: number of cores), THREADS (per rank,
# default auto), TOP (default 20), CORPUS_SIZE (default 256M).
source "$(dirname "$0")/common.sh"

install_deps "${BUILD_DEPS[@]}"
build "$MPIMAP_ROOT/build"
BIN="$MPIMAP_ROOT/build"

NP="${NP:-$NPROC}"
THREADS="${THREADS:-auto}"
TOP="${TOP:-20}"
if [ "$#" -gt 0 ]; then
    INPUTS=("$@")
else
    SIZE="${CORPUS_SIZE:-256M}"
    CORPUS="$MPIMAP_ROOT/data/corpus-$SIZE.txt"
    if [ ! -s "$CORPUS" ]; then
        log "generating the default dataset $CORPUS"
        mkdir -p "$MPIMAP_ROOT/data"
        "$BIN/mpimap-gencorpus" "$SIZE" > "$CORPUS.tmp"
        mv "$CORPUS.tmp" "$CORPUS"
    fi
    INPUTS=("$CORPUS")
fi

log "mpirun -np $NP mpimap --threads $THREADS -v wordcount --top $TOP ${INPUTS[*]}"
start=$(date +%s.%N)
mpirun -np "$NP" --oversubscribe "$BIN/mpimap" --threads "$THREADS" -v \
    wordcount --top "$TOP" "${INPUTS[@]}"
end=$(date +%s.%N)
bytes=$(cat "${INPUTS[@]}" 2>/dev/null | wc -c || echo 0)
awk -v b="$bytes" -v s="$start" -v e="$end" -v np="$NP" 'BEGIN {
    t = e - s; printf "mpimap: %d bytes, %.2f s wall (mpirun included), %.1f MB/s, %d ranks\n",
    b, t, b / t / 1e6, np }' >&2
