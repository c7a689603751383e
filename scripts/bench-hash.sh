#!/usr/bin/env bash
# scripts/bench-hash.sh - `mpimap hash` next to the usual ways of hashing many
# files on one machine, every comparison alternated in one run.
#
#   scripts/bench-hash.sh [--quick] [-h|--help]
#
# Data, generated in a scratch directory (removed at exit) under BENCH_DIR
# (default /tmp), after checking its free space and inodes:
#   files   10,000 files of 100 KiB (1.02 GB) in 100 directories
#           (1,000 files, 102 MB, in 10 directories with --quick)
#   big     one file of 2 GiB (256 MiB with --quick)
#   empty   100,000 empty files in 100 directories (10,000 with --quick)
# Pseudo-random bytes from a fixed seed.
#
# For files and big, in the page cache (warm: every file read once first)
# and, when `echo 3 > /proc/sys/vm/drop_caches` works here and empties the
# cache (checked with fincore; in a container it often does not), cold (the
# cache dropped before every single run; mpimap's and the tools' own
# binaries and libraries are dropped too; cold runs leave out plain
# sha256sum, parallel, plain xxhsum and plain cat). REPS rounds (default 3), the
# order of the commands rotated every round; tables give the median wall
# time, min-max and GB/s (bytes / wall time, 1 GB = 10^9 bytes):
#   SHA-256   mpimap -o /dev/null --threads 2 hash --algo sha256;
#             mpirun -np 2 mpimap -o /dev/null --threads 1 hash ...;
#             find | sort | xargs sha256sum (one process);
#             find -print0 | xargs -0 -P2 -n 100 sha256sum;
#             find -print0 | parallel -0 -j2 -X sha256sum;
#             find | sort | xargs openssl dgst -sha256 (the 1-core reference:
#             OpenSSL's SHA-256 with the CPU's SHA extensions when it has them)
#   fast      mpimap -o /dev/null --threads 2 hash --algo xxh3;
#             xargs xxhsum -H3 and xargs -P2 -n 100 xxhsum -H3; b3sum
#             (BLAKE3, multithreaded itself); cat of the same files to
#             /dev/null, by one process and by xargs -P2 -n 100 (read
#             bandwidth), and the same cat with glibc's mmap threshold raised
#             (GNU cat allocates its 128 KiB buffer per file above glibc's
#             default threshold: an mmap and munmap per file, about 1 ms
#             each on this VM, which makes plain cat read 100 KiB files at
#             0.1 GB/s; the fastest of the three is the reference)
#   walk      the empty files: mpimap --threads 2 hash --algo xxh3 vs
#             find -type f | wc -l (the directory walk alone) and
#             xargs -P2 -n 100 xxhsum -H3 (walk, open, hash nothing)
# (2 = the number of cores: NPROC.) Checked: mpimap's sha256 manifest (one
# rank with threads, and mpirun -np 2 with -o FILE) is byte for byte
# sha256sum's sorted output, its xxh3 manifest xxhsum -H3's; in every timed
# round sha256sum's, parallel's and openssl's outputs hold the reference
# lines, xargs -P's outputs (whose lines the processes may interleave) as
# many lines and bytes, b3sum one line per file. Targets: sha256 >= 1.2 GB/s
# on 2 cores in the page cache; xxh3 >= 80% of cat's bandwidth (the faster
# of the cat commands). mpimap's own time (its summary line) is shown too.
#
# Until the binary has the hash kernel (`mpimap kernels`), the anchors alone
# are measured. Installs what is missing (coreutils' sha256sum, parallel,
# b3sum, xxhash, openssl; sudo when not root), builds the Release build in
# build-bench/ unless MPIMAP names a binary, and measures under the
# exclusive lock /tmp/mpimap-bench.lock shared with the other benchmarks.
# Results: Markdown on stdout and in build-bench/hash.md; JSON in
# bench/results/hash.json (build-bench/results-quick/hash.json and
# build-bench/hash-quick.md with --quick).
# Environment: MPIMAP (binary; default: build build-bench/mpimap), REPS,
# BENCH_DIR (scratch parent, default /tmp), RESULTS (JSON path), COLD=0
# (skip the cold-cache runs).

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

bench_args "$@"

die() {
    echo "bench-hash.sh: $*" >&2
    exit 1
}

export LC_ALL=C # sort order = mpimap's (bytewise)
install_deps "${BUILD_DEPS[@]}" coreutils findutils parallel b3sum xxhash openssl
bench_setup
NP=$NPROC
MPIRUN=(mpirun --oversubscribe)

if [ "$QUICK" = 1 ]; then
    NFILES=1000 NDIRS=10 BIG=$((256 << 20)) NEMPTY=10000 NEDIRS=10
    RESULTS="${RESULTS:-$B/results-quick/hash.json}"
    MD="$B/hash-quick.md"
else
    NFILES=10000 NDIRS=100 BIG=$((2048 << 20)) NEMPTY=100000 NEDIRS=100
    RESULTS="${RESULTS:-$BENCH/results/hash.json}"
    MD="$B/hash.md"
fi
FSIZE=102400
FBYTES=$((NFILES * FSIZE))

HAVE_HASH=0
"$MPIMAP" kernels 2> /dev/null | grep -q '^hash\b' && HAVE_HASH=1

# ------------------------------------------------------------ scratch space
PARENT="${BENCH_DIR:-/tmp}"
mkdir -p "$PARENT"
NEED=$((FBYTES + BIG + (256 << 20)))    # data plus outputs and directories
NEEDI=$((NFILES + NEMPTY + NDIRS + NEDIRS + 1000))
AVAIL=$(df -B1 --output=avail "$PARENT" | tail -n 1 | tr -d ' ')
AVAILI=$(df --output=iavail "$PARENT" | tail -n 1 | tr -d ' ')
[ "$AVAIL" -ge "$NEED" ] ||
    die "$PARENT has $((AVAIL >> 20)) MiB free, $((NEED >> 20)) MiB needed (set BENCH_DIR)"
[[ ! "$AVAILI" =~ ^[0-9]+$ ]] || [ "$AVAILI" = 0 ] || [ "$AVAILI" -ge "$NEEDI" ] ||
    die "$PARENT has $AVAILI free inodes, $NEEDI needed (set BENCH_DIR)"
SCR=$(mktemp -d "$PARENT/mpimap-bench-hash.XXXXXX")
cleanup() { rm -rf "$SCR"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
RUNS="$SCR/runs"
JREC="$SCR/records.jsonl"
mkdir -p "$RUNS" "$(dirname "$RESULTS")"
: > "$JREC"
: > "$MD"

say() { echo "$*" | tee -a "$MD"; }

# One benchmark at a time on this machine (scripts/bench*.sh take the same lock).
bench_lock
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
T_BEGIN=$EPOCHREALTIME

# ------------------------------------------------------------ data
FILES="$SCR/files" BIGF="$SCR/big.bin" EMPTY="$SCR/empty"
log "generating $NFILES files of $FSIZE bytes, one file of $BIG bytes, $NEMPTY empty files in $SCR"
"$PY" - "$FILES" "$NFILES" "$NDIRS" "$FSIZE" "$BIGF" "$BIG" "$EMPTY" "$NEMPTY" "$NEDIRS" << 'PYEOF'
import os, random, sys
files, nfiles, ndirs, fsize, big, bigsize, empty, nempty, nedirs = sys.argv[1:]
nfiles, ndirs, fsize, bigsize, nempty, nedirs = map(int, (nfiles, ndirs, fsize, bigsize, nempty, nedirs))
rnd = random.Random(20261130)
pool = rnd.randbytes(64 << 20)
per = nfiles // ndirs
for d in range(ndirs):
    dd = os.path.join(files, "d%03d" % d)
    os.makedirs(dd)
    for i in range(per):
        off = rnd.randrange(len(pool) - fsize)
        with open(os.path.join(dd, "f%04d" % i), "wb") as f:
            f.write(pool[off:off + fsize])
step = 8 << 20
with open(big, "wb") as f:
    left = bigsize
    while left:
        n = min(step, left)
        off = rnd.randrange(len(pool) - n + 1)
        f.write(pool[off:off + n])
        left -= n
per = nempty // nedirs
for d in range(nedirs):
    dd = os.path.join(empty, "e%03d" % d)
    os.makedirs(dd)
    for i in range(per):
        open(os.path.join(dd, "e%05d" % i), "wb").close()
PYEOF
sync

# ------------------------------------------------------------ cold cache?
# drop_caches: empties the page cache (writing dirty pages first).
drop_caches() {
    sync
    if [ -n "$SUDO" ]; then
        echo 3 | sudo -n tee /proc/sys/vm/drop_caches > /dev/null
    else
        echo 3 > /proc/sys/vm/drop_caches
    fi
}
# resident FILE: bytes of FILE in the page cache.
resident() { fincore -n -b -o RES "$1" | tr -d ' '; }
COLD_OK=0
COLD_WHY="COLD=0"
if [ "${COLD:-1}" != 0 ]; then
    cat "$BIGF" > /dev/null
    if ! (drop_caches) 2> /dev/null; then
        COLD_WHY="writing /proc/sys/vm/drop_caches is not allowed here"
    elif ! command -v fincore > /dev/null; then
        COLD_OK=1 COLD_WHY="drop_caches accepted (no fincore to check it)"
    elif [ "$(resident "$BIGF")" -gt $((BIG / 100)) ]; then
        COLD_WHY="drop_caches accepted but $(resident "$BIGF") bytes of the test file stayed cached"
    else
        COLD_OK=1 COLD_WHY="drop_caches empties the cache (fincore: $(resident "$BIGF") bytes of the test file left)"
    fi
fi
log "cold cache runs: $([ "$COLD_OK" = 1 ] && echo yes || echo no) ($COLD_WHY)"

# ------------------------------------------------------------ measuring
q() { printf '%q' "$1"; }

# Per command NAME: CMDS (a bash command line; its stdout is kept in
# $RUNS/NAME.out), LABEL, CORES, CHECK (how each round's output is checked:
# sorted:REF (the same lines as REF), openssl:REF (the same, once converted
# from openssl's format), size:REF (as many lines and bytes), lines:N or none).
declare -A CMDS LABEL CORES CHECK TIMES MED MIN MAX ETIMES EMED
COLDRUN=0

# check NAME: fails unless the output of NAME's last run passes CHECK[NAME].
check() {
    local n=$1 c=${CHECK[$1]} out="$RUNS/$1.out" ok=1
    case $c in
    none) ;;
    sorted:*) sort "$out" | cmp -s - "${c#sorted:}.sorted" || ok=0 ;;
    openssl:*)
        sed -n 's/^SHA2-256(\(.*\))= \([0-9a-f]*\)$/\2  \1/p' "$out" | sort | cmp -s - "${c#openssl:}.sorted" || ok=0
        ;;
    size:*)
        [ "$(wc -lc < "$out")" = "$(wc -lc < "${c#size:}")" ] || ok=0
        ;;
    lines:*) [ "$(wc -l < "$out")" = "${c#lines:}" ] || ok=0 ;;
    *) die "unknown check $c" ;;
    esac
    [ "$ok" = 1 ] || die "$n: unexpected output ($c; see $out): ${CMDS[$n]}"
}

# stats V...: "median min max" of the numbers V.
stats() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf "%.3f %.3f %.3f\n", m, v[1], v[NR] }'
}

# alternate KEY NAME...: REPS rounds of the commands NAME, the order rotated
# every round, the page cache dropped before each run when COLDRUN=1; sets
# TIMES, MED, MIN, MAX under KEY/NAME.
alternate() {
    local key=$1 r j i n s e t
    shift
    local names=("$@")
    for n in "${names[@]}"; do TIMES[$key/$n]="" ETIMES[$key/$n]=""; done
    for ((r = 0; r < REPS; r++)); do
        for ((j = 0; j < ${#names[@]}; j++)); do
            i=$(((j + r) % ${#names[@]}))
            n=${names[$i]}
            [ "$COLDRUN" = 1 ] && drop_caches
            s=$EPOCHREALTIME
            if ! bash -c "${CMDS[$n]}" > "$RUNS/$n.out" 2> "$RUNS/$n.err"; then
                cat "$RUNS/$n.err" >&2
                die "$key: $n failed: ${CMDS[$n]}"
            fi
            e=$EPOCHREALTIME
            t=$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }')
            TIMES[$key/$n]+="$t "
            # mpimap's own time (its summary line: no process start-up, MPI_Init)
            printf '    %-12s round %d/%d  %-9s %8s s\n' "$key" $((r + 1)) "$REPS" "$n" "$t" >&2
            t=$(sed -n 's/^mpimap: hash: .*, \([0-9.]*\) s (.*/\1/p' "$RUNS/$n.err" | tail -n 1)
            if [ -n "$t" ]; then ETIMES[$key/$n]+="$t "; fi
            check "$n"
        done
    done
    for n in "${names[@]}"; do
        # shellcheck disable=SC2086 # space-separated numbers
        read -r "MED[$key/$n]" "MIN[$key/$n]" "MAX[$key/$n]" <<< "$(stats ${TIMES[$key/$n]})"
        EMED[$key/$n]=""
        # shellcheck disable=SC2086
        if [ -n "${ETIMES[$key/$n]}" ]; then
            # shellcheck disable=SC2086
            read -r "EMED[$key/$n]" _ _ <<< "$(stats ${ETIMES[$key/$n]})"
        fi
    done
}

gbps() { awk -v n="$1" -v t="$2" 'BEGIN { printf "%.2f", n / t / 1e9 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
jraw() { "$PY" "$BENCH/results_json.py" add "$JREC" "$@"; }
jparam() { "$PY" "$BENCH/results_json.py" param "$JREC" "$@"; }

# row KEY NAME BYTES REF: a table row (GB/s and speed relative to REF's) and
# its JSON record.
row() {
    local k=$1 n=$2 bytes=$3 ref=$4 rel="—" eng="—" ej=()
    local m=${MED[$k/$n]}
    [ -n "$ref" ] && rel=$(ratio "${MED[$k/$ref]}" "$m")
    if [ -n "${EMED[$k/$n]}" ]; then
        eng="${EMED[$k/$n]} s ($(gbps "$bytes" "${EMED[$k/$n]}") GB/s)"
        ej=("engine_times_s:list=${ETIMES[$k/$n]}" "engine_median_s=${EMED[$k/$n]}"
            "engine_gb_per_s=$(gbps "$bytes" "${EMED[$k/$n]}")")
    fi
    say "| ${LABEL[$n]} | ${CORES[$n]} | $m s | ${MIN[$k/$n]}-${MAX[$k/$n]} s | $(gbps "$bytes" "$m") | $rel | $eng |"
    jraw "${ej[@]}" "name:str=$n" "key:str=$k" "dataset:str=${k%%-*}" "cache:str=${k#*-}" \
        "label:str=${LABEL[$n]}" "cores:str=${CORES[$n]}" "command:str=${CMDS[$n]}" \
        "times_s:list=${TIMES[$k/$n]}" "median_s=$m" "min_s=${MIN[$k/$n]}" "max_s=${MAX[$k/$n]}" \
        "bytes=$bytes" "gb_per_s=$(gbps "$bytes" "$m")" ${ref:+"speed_over_$ref=$rel"}
}

# ------------------------------------------------------------ commands
# set_commands TARGET BYTES LINES: the commands of one dataset (a directory or a file).
set_commands() {
    local t ls lsz
    t=$(q "$1")
    ls="find $t -type f -print0 | sort -z" # sorted list
    lsz="find $t -type f -print0"
    CMDS[mp_sha]="$(q "$MPIMAP") -o /dev/null --threads $NP hash --algo sha256 $t"
    LABEL[mp_sha]="\`mpimap -o /dev/null --threads $NP hash --algo sha256\`"
    CORES[mp_sha]=$NP CHECK[mp_sha]=none
    CMDS[mpn_sha]="${MPIRUN[*]} -np $NP $(q "$MPIMAP") -o /dev/null --threads 1 hash --algo sha256 $t"
    LABEL[mpn_sha]="\`mpirun -np $NP mpimap -o /dev/null --threads 1 hash --algo sha256\`"
    CORES[mpn_sha]=$NP CHECK[mpn_sha]=none
    CMDS[sha]="$ls | xargs -0 sha256sum"
    LABEL[sha]="\`find | sort | xargs sha256sum\`"
    CORES[sha]=1 CHECK[sha]="sorted:$SCR/ref-sha.txt"
    CMDS[shaP]="$lsz | xargs -0 -P $NP -n 100 sha256sum"
    LABEL[shaP]="\`find -print0 | xargs -0 -P$NP -n 100 sha256sum\`"
    CORES[shaP]=$NP CHECK[shaP]="size:$SCR/ref-sha.txt"
    CMDS[par]="$lsz | parallel -0 -j $NP -X sha256sum"
    LABEL[par]="\`find -print0 | parallel -0 -j$NP -X sha256sum\`"
    CORES[par]=$NP CHECK[par]="sorted:$SCR/ref-sha.txt"
    CMDS[ossl]="$ls | xargs -0 openssl dgst -sha256"
    LABEL[ossl]="\`find | sort | xargs openssl dgst -sha256\` (1-core reference)"
    CORES[ossl]=1 CHECK[ossl]="openssl:$SCR/ref-sha.txt"
    CMDS[mp_xxh]="$(q "$MPIMAP") -o /dev/null --threads $NP hash --algo xxh3 $t"
    LABEL[mp_xxh]="\`mpimap -o /dev/null --threads $NP hash --algo xxh3\`"
    CORES[mp_xxh]=$NP CHECK[mp_xxh]=none
    CMDS[xxh]="$ls | xargs -0 xxhsum -H3"
    LABEL[xxh]="\`find | sort | xargs xxhsum -H3\`"
    CORES[xxh]=1 CHECK[xxh]="sorted:$SCR/ref-xxh.txt"
    CMDS[xxhP]="$lsz | xargs -0 -P $NP -n 100 xxhsum -H3"
    LABEL[xxhP]="\`find -print0 | xargs -0 -P$NP -n 100 xxhsum -H3\`"
    CORES[xxhP]=$NP CHECK[xxhP]="size:$SCR/ref-xxh.txt"
    CMDS[b3]="$ls | xargs -0 b3sum"
    LABEL[b3]="\`find | sort | xargs b3sum\` (BLAKE3, multithreaded)"
    CORES[b3]=$NP CHECK[b3]="lines:$3"
    CMDS[cat]="$ls | xargs -0 cat > /dev/null"
    LABEL[cat]="\`find | sort | xargs cat > /dev/null\` (read bandwidth)"
    CORES[cat]=1 CHECK[cat]=none
    CMDS[catP]="$lsz | xargs -0 -P $NP -n 100 cat > /dev/null"
    LABEL[catP]="\`find -print0 | xargs -0 -P$NP -n 100 cat > /dev/null\`"
    CORES[catP]=$NP CHECK[catP]=none
    # GNU cat mallocs its 128 KiB buffer per file, above glibc's mmap threshold:
    # an mmap, page faults and a munmap per file, costly here (about 1 ms per
    # file on this VM). With a higher threshold, the same cat reuses the memory.
    CMDS[catT]="$ls | GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4194304 xargs -0 cat > /dev/null"
    LABEL[catT]="the same with \`GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4194304\` (no mmap/munmap of cat's buffer per file)"
    CORES[catT]=1 CHECK[catT]=none
}

# verify_mpimap TARGET: mpimap's manifests against the references (untimed).
declare -A VERIFIED SUMMARY
verify_mpimap() {
    local t=$1 ds=$2 e
    "$MPIMAP" --threads "$NP" hash --algo sha256 "$t" > "$SCR/mp-sha.txt" 2> "$SCR/mp-sha.err" ||
        { cat "$SCR/mp-sha.err" >&2; die "mpimap hash --algo sha256 $t failed"; }
    SUMMARY[$ds]=$(grep '^mpimap: hash:' "$SCR/mp-sha.err" | tail -n 1 || true)
    "${MPIRUN[@]}" -np "$NP" "$MPIMAP" -o "$SCR/mpn-sha.txt" --threads 1 hash --algo sha256 "$t" \
        > /dev/null 2> "$SCR/mpn-sha.err" ||
        { cat "$SCR/mpn-sha.err" >&2; die "mpirun -np $NP mpimap -o FILE hash --algo sha256 $t failed"; }
    "$MPIMAP" --threads "$NP" hash --algo xxh3 "$t" > "$SCR/mp-xxh.txt" 2> "$SCR/mp-xxh.err" ||
        { cat "$SCR/mp-xxh.err" >&2; die "mpimap hash --algo xxh3 $t failed"; }
    for e in mp-sha.txt:ref-sha.txt mpn-sha.txt:ref-sha.txt mp-xxh.txt:ref-xxh.txt; do
        set -- "${e%:*}" "${e#*:}"
        if ! cmp -s "$SCR/$1" "$SCR/$2"; then
            if sort "$SCR/$1" | cmp -s - "$SCR/$2"; then
                die "$ds: mpimap's manifest ($1) holds the right lines but not in sorted order"
            fi
            diff "$SCR/$1" "$SCR/$2" | head -n 10 >&2 || true
            die "$ds: mpimap's manifest ($1) differs from the reference $2"
        fi
    done
    VERIFIED[$ds]=1
}

# dataset DS TARGET BYTES NFILES TITLE: the warm (and cold) tables of one dataset.
dataset() {
    local ds=$1 t=$2 bytes=$3 nf=$4 title=$5 cache sha fast bestcat k
    set_commands "$t" "$bytes" "$nf"
    # References (untimed), which also read every file into the page cache.
    log "$ds: references (sha256sum, xxhsum -H3) and warm-up"
    find "$t" -type f -print0 | sort -z | xargs -0 sha256sum > "$SCR/ref-sha.txt"
    find "$t" -type f -print0 | sort -z | xargs -0 xxhsum -H3 > "$SCR/ref-xxh.txt" 2> /dev/null
    [ "$(wc -l < "$SCR/ref-sha.txt")" = "$nf" ] || die "$ds: expected $nf files"
    sort "$SCR/ref-sha.txt" > "$SCR/ref-sha.txt.sorted" # line order, for the checks
    sort "$SCR/ref-xxh.txt" > "$SCR/ref-xxh.txt.sorted"
    VERIFIED[$ds]=0
    local mp=()
    if [ "$HAVE_HASH" = 1 ]; then
        log "$ds: checking mpimap's manifests"
        verify_mpimap "$t" "$ds"
        mp=(1)
    fi
    for cache in warm cold; do
        if [ "$cache" = cold ]; then
            [ "$COLD_OK" = 1 ] || continue
            COLDRUN=1
            # Cold runs read the disk: fewer anchors (the 2-core ones, the
            # 1-core reference, cat at its best).
            sha=(${mp:+mp_sha mpn_sha} shaP ossl)
            fast=(${mp:+mp_xxh} xxhP b3 catP catT)
        else
            find "$t" -type f -print0 | xargs -0 cat > /dev/null
            COLDRUN=0
            sha=(${mp:+mp_sha mpn_sha} sha shaP par ossl)
            fast=(${mp:+mp_xxh} xxh xxhP b3 cat catP catT)
        fi
        k="$ds-$cache"
        log "$k: SHA-256"
        alternate "$k" "${sha[@]}"
        log "$k: fast hashes and read bandwidth"
        alternate "$k" "${fast[@]}"
        if [ "$cache" = warm ]; then
            say "### $title, in the page cache (warm)"
        else
            say "### $title, cold cache (dropped before every run)"
        fi
        say ""
        say "| command | cores | wall time (median) | min-max | GB/s | speed / openssl's | mpimap's own time |"
        say "| --- | --- | --- | --- | --- | --- | --- |"
        for n in "${sha[@]}"; do row "$k" "$n" "$bytes" ossl; done
        say ""
        bestcat=""
        for n in cat catP catT; do
            [ -n "${MED[$k/$n]:-}" ] || continue
            if [ -z "$bestcat" ] || awk -v a="${MED[$k/$n]}" -v b="${MED[$k/$bestcat]}" 'BEGIN { exit !(a < b) }'; then
                bestcat=$n
            fi
        done
        say "| command | cores | wall time (median) | min-max | GB/s | speed / the fastest cat's | mpimap's own time |"
        say "| --- | --- | --- | --- | --- | --- | --- |"
        for n in "${fast[@]}"; do row "$k" "$n" "$bytes" "$bestcat"; done
        say ""
        if [ "$HAVE_HASH" = 1 ]; then
            local s x c
            s=$(gbps "$bytes" "${MED[$k/mp_sha]}")
            x=$(ratio "${MED[$k/$bestcat]}" "${MED[$k/mp_xxh]}")
            c=$(gbps "$bytes" "${MED[$k/$bestcat]}")
            TGT_SHA[$k]=$s TGT_XXH[$k]=$x
            say "mpimap sha256 (--threads $NP): $s GB/s ($(ratio "${MED[$k/ossl]}" "${MED[$k/mp_sha]}") x openssl on 1 core," \
                "$(ratio "${MED[$k/shaP]}" "${MED[$k/mp_sha]}") x xargs -P$NP sha256sum); mpimap xxh3: $(gbps "$bytes" "${MED[$k/mp_xxh]}")" \
                "GB/s, $(awk -v x="$x" 'BEGIN { printf "%.0f", 100 * x }')% of the fastest cat's ($bestcat, $c GB/s)."
            say ""
        fi
    done
}

declare -A TGT_SHA TGT_XXH
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
SHANI=no
grep -qw sha_ni /proc/cpuinfo && SHANI=yes
say "## hash: mpimap hash vs sha256sum, xargs -P, GNU parallel, openssl, xxhsum, b3sum, cat ($(date -u +%Y-%m-%d), $NPROC cores, $CPU)"
say ""
say "Median of $REPS alternated rounds (the order rotated each round), wall time of the whole"
say "command (find, xargs, mpirun included). GB/s: bytes hashed / wall time (10^9 bytes)."
say "mpimap's own time: from its summary line (\`mpimap: hash: ... T s\`), without process start-up and"
say "MPI_Init (a singleton MPI_Init costs about 0.2 s here, mpirun more)."
say "CPU SHA extensions (sha_ni): $SHANI. Data in \`$SCR\` ($(df --output=fstype "$SCR" | tail -n 1), $(findmnt -n -o SOURCE -T "$SCR" || echo '?'))."
say "Cold cache: $([ "$COLD_OK" = 1 ] && echo "measured; $COLD_WHY" || echo "not measured: $COLD_WHY")."
if [ "$HAVE_HASH" = 0 ]; then
    say ""
    say "**$MPIMAP has no hash kernel (\`mpimap kernels\`): the anchors only.**"
fi
[ "$QUICK" = 1 ] && say "" && say "**--quick: small inputs.**"
say ""

dataset files "$FILES" "$FBYTES" "$NFILES" "$NFILES files of 100 KiB ($(gbps "$FBYTES" 1) GB) in $NDIRS directories"
dataset big "$BIGF" "$BIG" 1 "One file of $((BIG >> 20)) MiB ($(gbps "$BIG" 1) GB)"

# ------------------------------------------------------------ the walk
log "empty: $NEMPTY empty files"
T=$(q "$EMPTY")
CMDS[mp_walk]="$(q "$MPIMAP") -o /dev/null --threads $NP hash --algo xxh3 $T"
LABEL[mp_walk]="\`mpimap -o /dev/null --threads $NP hash --algo xxh3\`"
CORES[mp_walk]=$NP CHECK[mp_walk]=none
CMDS[find]="find $T -type f | wc -l"
LABEL[find]="\`find -type f | wc -l\` (the walk alone)"
CORES[find]=1 CHECK[find]=none
CMDS[xxhE]="find $T -type f -print0 | xargs -0 -P $NP -n 100 xxhsum -H3"
LABEL[xxhE]="\`find -print0 | xargs -0 -P$NP -n 100 xxhsum -H3\`"
CORES[xxhE]=$NP CHECK[xxhE]="lines:$NEMPTY"
WALK=(find xxhE)
WALK_VERIFIED=0
if [ "$HAVE_HASH" = 1 ]; then
    WALK=(mp_walk find xxhE)
    "$MPIMAP" --threads "$NP" hash --algo xxh3 "$EMPTY" > "$SCR/mp-walk.txt" 2> "$SCR/mp-walk.err" ||
        { cat "$SCR/mp-walk.err" >&2; die "mpimap hash --algo xxh3 $EMPTY failed"; }
    find "$EMPTY" -type f -print0 | sort -z | xargs -0 xxhsum -H3 > "$SCR/ref-walk.txt" 2> /dev/null
    cmp -s "$SCR/mp-walk.txt" "$SCR/ref-walk.txt" || die "empty: mpimap's xxh3 manifest differs from xxhsum -H3's"
    WALK_VERIFIED=1
fi
for cache in warm cold; do
    if [ "$cache" = cold ]; then
        [ "$COLD_OK" = 1 ] || continue
        COLDRUN=1
    else
        find "$EMPTY" > /dev/null
        COLDRUN=0
    fi
    k="empty-$cache"
    alternate "$k" "${WALK[@]}"
    [ "$(cat "$RUNS/find.out")" = "$NEMPTY" ] || die "find counted $(cat "$RUNS/find.out") files, not $NEMPTY"
    say "### $NEMPTY empty files in $NEDIRS directories ($cache cache)"
    say ""
    say "| command | cores | wall time (median) | min-max | files/s | time / find's |"
    say "| --- | --- | --- | --- | --- | --- |"
    for n in "${WALK[@]}"; do
        m=${MED[$k/$n]}
        fps=$(awk -v n="$NEMPTY" -v t="$m" 'BEGIN { printf "%.0f", n / t }')
        say "| ${LABEL[$n]} | ${CORES[$n]} | $m s | ${MIN[$k/$n]}-${MAX[$k/$n]} s | $fps | $(ratio "$m" "${MED[$k/find]}") |"
        jraw "name:str=$n" "key:str=$k" "dataset:str=empty" "cache:str=$cache" "label:str=${LABEL[$n]}" \
            "cores:str=${CORES[$n]}" "command:str=${CMDS[$n]}" "times_s:list=${TIMES[$k/$n]}" \
            "median_s=$m" "min_s=${MIN[$k/$n]}" "max_s=${MAX[$k/$n]}" "files=$NEMPTY" \
            "files_per_s=$fps" "time_over_find=$(ratio "$m" "${MED[$k/find]}")"
    done
    say ""
done

# ------------------------------------------------------------ targets
SHA_MET=null XXH_MET=null
if [ "$HAVE_HASH" = 1 ]; then
    SHA_MET=$(awk -v s="${TGT_SHA[files-warm]}" 'BEGIN { print (s >= 1.2) ? "true" : "false" }')
    XXH_MET=$(awk -v a="${TGT_XXH[files-warm]}" -v b="${TGT_XXH[big-warm]}" \
        'BEGIN { print (a >= 0.8 && b >= 0.8) ? "true" : "false" }')
    say "**Targets (page cache).** sha256 >= 1.2 GB/s on $NP cores: $([ "$SHA_MET" = true ] && echo met || echo "**not met**")" \
        "(${TGT_SHA[files-warm]} GB/s on the $NFILES files, ${TGT_SHA[big-warm]} GB/s on the one big file, which one" \
        "SHA-256 stream cannot split). xxh3 >= 80% of cat's bandwidth: $([ "$XXH_MET" = true ] && echo met || echo "**not met**")" \
        "($(awk -v x="${TGT_XXH[files-warm]}" 'BEGIN { printf "%.0f", 100 * x }')% on the files," \
        "$(awk -v x="${TGT_XXH[big-warm]}" 'BEGIN { printf "%.0f", 100 * x }')% on the big file)."
    say ""
    for ds in files big; do
        [ -n "${SUMMARY[$ds]:-}" ] && say "mpimap's summary ($ds): \`${SUMMARY[$ds]}\`"
    done
    say "Checked: mpimap's sha256 manifests (--threads $NP on stdout, and mpirun -np $NP with -o FILE) are" \
        "byte for byte \`find | sort | xargs sha256sum\`'s output, its xxh3 manifests xxhsum -H3's."
    say ""
fi
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(awk -v s="$T_BEGIN" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.0f", e - s }')
say "Load average (1, 5, 15 min) before: $LOAD0; after: $LOAD1. Measured in $ELAPSED s."

QUICKB=false
[ "$QUICK" = 1 ] && QUICKB=true
jparam "mpimap:str=$MPIMAP" "mpimap_hash_kernel=$([ "$HAVE_HASH" = 1 ] && echo true || echo false)" \
    "files=$NFILES" "file_bytes=$FSIZE" "files_bytes=$FBYTES" "dirs=$NDIRS" "big_bytes=$BIG" \
    "empty_files=$NEMPTY" "scratch:str=$SCR" "cold_cache=$([ "$COLD_OK" = 1 ] && echo true || echo false)" \
    "cold_cache_note:str=$COLD_WHY" "sha_ni:str=$SHANI" \
    "mpimap_manifests_verified=$([ "${VERIFIED[files]:-0}" = 1 ] && [ "${VERIFIED[big]:-0}" = 1 ] && echo true || echo false)" \
    "mpimap_walk_verified=$([ "$WALK_VERIFIED" = 1 ] && echo true || echo false)" \
    "target_sha256_gbps=1.2" "target_xxh3_of_cat=0.8" \
    "sha256_gbps_files_warm:str=${TGT_SHA[files-warm]:-}" "xxh3_of_cat_files_warm:str=${TGT_XXH[files-warm]:-}" \
    "xxh3_of_cat_big_warm:str=${TGT_XXH[big-warm]:-}" \
    "target_sha256_met=$SHA_MET" "target_xxh3_met=$XXH_MET" \
    "sha256sum_version:str=$(sha256sum --version | head -n 1)" "openssl_version:str=$(openssl version)" \
    "xxhsum_version:str=$(xxhsum --version 2>&1 | head -n 1)" "b3sum_version:str=$(b3sum --version)" \
    "parallel_version:str=$(parallel --version | head -n 1)" "elapsed_s=$ELAPSED"
"$PY" "$BENCH/results_json.py" write "$JREC" "$RESULTS" "section:str=hash" "reps=$REPS" \
    "quick=$QUICKB" "statistic:str=median" "loadavg_before:list=$LOAD0" "loadavg_after:list=$LOAD1"
log "results in $MD and $RESULTS"
