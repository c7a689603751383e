#!/bin/bash
# End-to-end: kernels as plugins (issue 8), from an installed mpimap:
#   * `cmake --install` of the build tree that holds $MPIMAP into a
#     temporary prefix: the binary (running on the installed libmpimap), the
#     headers, the CMake package and mpimap.pc, both pointing into the
#     prefix; <mpimap/kernel.h> compiles alone with no MPI flags (C and C++),
#     <mpimap/mpimap.h> with mpicc, and a program calling mpm_main links
#     against the installed libmpimap and runs;
#   * examples/kernel-template configured and built out of tree twice: with
#     the CMake package (CMAKE_PREFIX_PATH) and with pkg-config
#     (PKG_CONFIG_PATH, -DUSE_PKGCONFIG=ON); without QUICK, the fall-back to
#     pkg-config when the package is not found; the library exports only
#     `mpimap_kernel`;
#   * the template's output byte-identical to `mpimap primes` (count and
#     --list; text, tsv, json) with the installed binary and with $MPIMAP,
#     for -np 1..3 x --threads 1..2 with small chunks, the default chunk
#     size, a journaled run (segment partials serialised on pool threads)
#     and its --resume (partials read back from the journal);
#   * `--kernel lib.so --help` is the plugin's help; its check() errors
#     are usage errors (exit 2); a bare file name in the current directory
#     is loaded from there;
#   * a minimal ordered plugin (only the required hooks) runs;
#   * refused with exit 2 and a message: a plugin built for ABI + 1 and for
#     ABI - 1 (both numbers named), a library without the symbol (wrong
#     name; not exported), a file that is not a library, a missing file, a
#     table without map; printed once under -np 2.
# MPIMAP_QUICK=1 (the ASan build): a smaller -np x --threads matrix.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

BUILD=$(cd "$(dirname "$MPIMAP")" && pwd) # the build tree that made $MPIMAP
TEMPLATE="$MPIMAP_SRC/examples/kernel-template"
PREFIX="$TMP/prefix"
CC=${CC:-cc}
SAN_FLAGS=()
if [ "${MPIMAP_SANITIZER:-}" = address ]; then
    # The installed libmpimap is instrumented: an executable linking it needs
    # the ASan runtime first. (Plugins do not: the mpimap that loads them
    # already has it.)
    SAN_FLAGS=("-fsanitize=address,undefined")
fi

# mp BIN NP ARGS... : BIN under mpirun with NP ranks; sets RC, OUT, ERR, SECS.
mp() {
    local bin=$1 np=$2
    shift 2
    timed timeout -k 10 "$E2E_TIMEOUT" "$MPIEXEC" -np "$np" ${MPIEXEC_OVERSUB[@]+"${MPIEXEC_OVERSUB[@]}"} \
        ${MPIRUN_EXTRA[@]+"${MPIRUN_EXTRA[@]}"} "$bin" "$@"
}
# one BIN ARGS... : BIN alone (singleton MPI); sets RC, OUT, ERR, SECS.
one() { timed timeout -k 10 "$E2E_TIMEOUT" "$@"; }

# ---------------------------------------------------------------- install
section "cmake --install $BUILD into a temporary prefix"
run_cmd cmake --install "$BUILD" --prefix "$PREFIX"
assert_rc "cmake --install the build tree of \$MPIMAP" 0
IMPIMAP="$PREFIX/bin/mpimap"
PC=$(find "$PREFIX" -name mpimap.pc -path '*/pkgconfig/*' | head -n 1)
CFG=$(find "$PREFIX" -name mpimapConfig.cmake | head -n 1)
for f in "$IMPIMAP" "$PREFIX/include/mpimap/kernel.h" "$PREFIX/include/mpimap/mpimap.h" \
    "${PC:-$PREFIX/lib/pkgconfig/mpimap.pc}" "${CFG:-$PREFIX/lib/cmake/mpimap/mpimapConfig.cmake}"; do
    assert_exists "installed: ${f#"$PREFIX"/}" "$f"
done
CFGDIR=$(dirname "${CFG:-$PREFIX/lib/cmake/mpimap/x}")
for f in mpimapConfigVersion.cmake mpimapTargets.cmake; do
    assert_exists "installed: CMake package file $f" "$CFGDIR/$f"
done
PCDIR=$(dirname "${PC:-$PREFIX/lib/pkgconfig/x}")
LIBDIR=$(dirname "$PCDIR")
if [ ! -x "$IMPIMAP" ]; then
    fail "the installed mpimap is executable"
    finish
fi

# The installed binary runs on the installed library, not the build tree's.
lib_used=$(ldd "$IMPIMAP" | awk '$1 ~ /^libmpimap\.so/ {print $3}')
lib_used=$(readlink -f "${lib_used:-none}" 2>/dev/null || echo "${lib_used:-none}")
assert_eq "the installed mpimap loads the installed libmpimap" \
    "$(readlink -f "$LIBDIR")" "$(dirname "$lib_used")"

ABI=$(sed -n 's/^#define MPM_KERNEL_ABI \([0-9][0-9]*\).*/\1/p' "$PREFIX/include/mpimap/kernel.h")
SRC_ABI=$(sed -n 's/^#define MPM_KERNEL_ABI \([0-9][0-9]*\).*/\1/p' "$MPIMAP_SRC/include/mpimap/kernel.h")
assert_eq "the installed kernel.h has the source's MPM_KERNEL_ABI" "$SRC_ABI" "$ABI"
ABI=${ABI:-0}
one "$IMPIMAP" --version
assert_match "the installed mpimap --version names kernel ABI $ABI" "$OUT" "kernel ABI $ABI\)"

# pkg-config: flags pointing into the prefix, the ABI as a variable.
pcinc=$(PKG_CONFIG_PATH="$PCDIR" pkg-config --cflags mpimap 2>&1 | sed -n 's/^ *-I\([^ ]*\).*/\1/p')
assert_eq "pkg-config --cflags mpimap: the prefix's include directory" \
    "$(readlink -f "$PREFIX/include")" "$(readlink -f "${pcinc:-none}" || echo "$pcinc")"
pclib=$(PKG_CONFIG_PATH="$PCDIR" pkg-config --libs mpimap 2>&1 | sed -n 's/^ *-L\([^ ]*\).*/\1/p')
assert_eq "pkg-config --libs mpimap: the prefix's library directory" \
    "$(readlink -f "$LIBDIR")" "$(readlink -f "${pclib:-none}" || echo "$pclib")"
assert_eq "pkg-config --variable=kernel_abi mpimap" "$ABI" \
    "$(PKG_CONFIG_PATH="$PCDIR" pkg-config --variable=kernel_abi mpimap 2>&1)"
assert_eq "pkg-config --modversion mpimap = the project version" \
    "$(sed -n 's/^project(mpimap VERSION \([0-9.]*\).*/\1/p' "$MPIMAP_SRC/CMakeLists.txt")" \
    "$(PKG_CONFIG_PATH="$PCDIR" pkg-config --modversion mpimap 2>&1)"

section "the installed headers"
H="$TMP/hdr"
mkdir -p "$H"
cat >"$H/k.c" <<'EOF'
#include <mpimap/kernel.h>
#ifdef MPI_VERSION
#error "<mpimap/kernel.h> pulled in <mpi.h>"
#endif
unsigned abi_of_header(void);
unsigned abi_of_header(void) { return MPM_KERNEL_ABI + (unsigned)sizeof(mpm_kernel_t) * 0u; }
EOF
run_cmd "$CC" -std=c11 -Wall -Wextra -Werror -c "-I$PREFIX/include" "$H/k.c" -o "$H/k.o"
assert_rc "<mpimap/kernel.h> compiles alone, without MPI's flags (cc -std=c11 -Wall -Wextra -Werror)" 0
if command -v c++ >/dev/null; then
    cp "$H/k.c" "$H/k.cc"
    run_cmd c++ -Wall -Wextra -Werror -c "-I$PREFIX/include" "$H/k.cc" -o "$H/kxx.o"
    assert_rc "<mpimap/kernel.h> compiles as C++" 0
fi
cat >"$H/main.c" <<'EOF'
/* A program of its own around the engine: mpm_main on MPI_COMM_WORLD. */
#include <mpimap/mpimap.h>
int main(int argc, char **argv)
{
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    int rc = mpm_main(argc, argv, MPI_COMM_WORLD);
    MPI_Finalize();
    return rc;
}
EOF
read -r -a PCFLAGS <<<"$(PKG_CONFIG_PATH="$PCDIR" pkg-config --cflags --libs mpimap)"
run_cmd "${MPICC:-mpicc}" -std=c11 -Wall -Wextra -Werror ${SAN_FLAGS[@]+"${SAN_FLAGS[@]}"} "$H/main.c" \
    "${PCFLAGS[@]}" "-Wl,-rpath,$LIBDIR" -o "$H/embed"
assert_rc "<mpimap/mpimap.h> + libmpimap: a program calling mpm_main builds (mpicc, pkg-config mpimap)" 0
one "$H/embed" primes 1:1000
assert_rc "that program runs" 0
assert_eq "that program counts the primes up to 1000" "168" "$(cat "$OUT")"

# ---------------------------------------------------------------- the template
section "examples/kernel-template, built out of tree"
unset PKG_CONFIG_PATH
B1="$TMP/tpl-cmake" B2="$TMP/tpl-pkgconfig"
run_cmd cmake -S "$TEMPLATE" -B "$B1" "-DCMAKE_PREFIX_PATH=$PREFIX"
assert_rc "configure the template with CMAKE_PREFIX_PATH=prefix" 0
assert_contains "... mpimap found as a CMake package in the prefix" "$OUT" \
    "CMake package in $CFGDIR"
assert_contains "... mpimap_KERNEL_ABI from the package" "$OUT" "(kernel ABI $ABI)"
run_cmd cmake --build "$B1"
assert_rc "build the template (CMake package)" 0
P1="$B1/libmpimap-primes-template.so"
assert_exists "the template: libmpimap-primes-template.so" "$P1"

run_cmd env "PKG_CONFIG_PATH=$PCDIR" cmake -S "$TEMPLATE" -B "$B2" -DUSE_PKGCONFIG=ON \
    "-DCMAKE_PREFIX_PATH=$PREFIX"
assert_rc "configure the template with -DUSE_PKGCONFIG=ON and PKG_CONFIG_PATH" 0
assert_contains "... mpimap found through pkg-config even though the package is there" "$OUT" \
    "pkg-config ($PCDIR"
assert_not_contains "... and not as a CMake package" "$OUT" "CMake package in"
run_cmd cmake --build "$B2"
assert_rc "build the template (pkg-config)" 0
P2="$B2/libmpimap-primes-template.so"
assert_exists "the template built with pkg-config" "$P2"

if [ "$QUICK" != 1 ]; then
    run_cmd env "PKG_CONFIG_PATH=$PCDIR" cmake -S "$TEMPLATE" -B "$TMP/tpl-fallback"
    assert_rc "configure the template without CMAKE_PREFIX_PATH, with PKG_CONFIG_PATH" 0
    assert_contains "... falls back to pkg-config when the package is not found" "$OUT" \
        "pkg-config ($PCDIR"
fi
for p in "$P1" "$P2"; do
    [ -e "$p" ] || continue
    assert_eq "$(basename "$(dirname "$p")"): the library exports only mpimap_kernel" \
        "mpimap_kernel" "$(nm -D --defined-only "$p" | awk '{print $3}' | tr '\n' ' ' | sed 's/ $//')"
done
if [ ! -e "$P1" ] || [ ! -e "$P2" ]; then
    fail "the template was built both ways; the rest of the test needs it"
    finish
fi

# ---------------------------------------------------------------- same output
section "the template's output is mpimap primes' output"
REF="$TMP/ref"
mkdir -p "$REF"
# expect FMT LIST RANGE : sets EXPECTED, the file holding
# `mpimap -f FMT primes [--list] RANGE` (made once).
expect() {
    EXPECTED="$REF/$1.$2.${3//:/_}"
    [ -e "$EXPECTED" ] && return 0
    local l=()
    [ "$2" = list ] && l=(--list)
    one "$MPIMAP" -f "$1" primes ${l[@]+"${l[@]}"} "$3"
    if [ "$RC" != 0 ]; then
        fail "reference: mpimap -f $1 primes ${l[*]} $3" "exit $RC"
        show_last
    fi
    cp "$OUT" "$EXPECTED"
}
# same BIN NP THREADS PLUGIN FMT LIST RANGE [ENGINE OPTION...]
same() {
    local bin=$1 np=$2 t=$3 plugin=$4 fmt=$5 list=$6 range=$7
    shift 7
    local l=() desc
    [ "$list" = list ] && l=(--list)
    expect "$fmt" "$list" "$range"
    desc="$([ "$bin" = "$IMPIMAP" ] && echo installed || echo build-tree) mpimap -np $np"
    desc+=" --threads $t $* --kernel $(basename "$(dirname "$plugin")") -f $fmt ${l[*]} $range"
    mp "$bin" "$np" --threads "$t" "$@" -f "$fmt" --kernel "$plugin" ${l[@]+"${l[@]}"} "$range"
    assert_rc "$desc" 0
    assert_same_file "$desc: = mpimap primes" "$EXPECTED" "$OUT"
}

RANGES=(1:3000000 999999000000:1000000400000 0:100000 17:1500000 2:2 1000:1000)
FMTS=(text tsv json)
if [ "$QUICK" = 1 ]; then LAYOUTS="1:2 3:1"; else LAYOUTS="1:1 1:2 2:1 2:2 3:1 3:2"; fi
i=0
for lay in $LAYOUTS; do
    np=${lay%%:*} t=${lay##*:}
    for bin in "$IMPIMAP" "$MPIMAP"; do
        plugin=$P1 # each binary with each build of the template
        [ $(((i + i / 2) % 2)) = 1 ] && plugin=$P2
        list=count
        [ $((i % 4)) = 2 ] && list=list # with each format
        same "$bin" "$np" "$t" "$plugin" "${FMTS[$((i % 3))]}" "$list" \
            "${RANGES[$((i % ${#RANGES[@]}))]}" -c 64K
        i=$((i + 1))
    done
done
# The default chunk size (8M integers): 3 chunks.
same "$IMPIMAP" 2 2 "$P1" text count 1:20000000
same "$MPIMAP" 3 1 "$P2" text list 0:100 # fewer chunks than ranks

# Journaled: pool threads fold chunks into segment partials, serialise them
# into the journal and merge them; --resume deserialises them on rank 0.
J="$TMP/primes.journal"
same "$IMPIMAP" 2 2 "$P1" text count 1:6000000 -c 64K --journal "$J"
assert_exists "the journaled run wrote its journal" "$J"
same "$IMPIMAP" 2 2 "$P1" text count 1:6000000 -c 64K --journal "$J" --resume -v
assert_match "... every chunk came from the journal" "$ERR" " ([0-9]+) chunks \(\1 from the journal\)"

section "the plugin's help and usage errors"
one "$IMPIMAP" --kernel "$P1" --help
assert_rc "mpimap --kernel lib.so --help" 0
assert_contains "--help: the plugin's usage line names it as it is run" "$OUT" "--kernel $P1 [options] A:B"
assert_contains "--help: the plugin's description" "$OUT" "examples/kernel-template"
assert_contains "--help: the plugin's option" "$OUT" "--list"
assert_empty "--help: nothing on stderr" "$ERR"
sed "s|$P1|PLUGIN|" "$OUT" >"$TMP/help1"
one "$MPIMAP" --kernel "$P2" -h
sed -i "s|$P2|PLUGIN|" "$OUT"
assert_same_file "-h, the build-tree mpimap, the pkg-config build: the same help" "$TMP/help1" "$OUT"
one "$IMPIMAP" --kernel "$P1" 5:1
assert_rc "the plugin's check() refuses a reversed range: usage error" 2
assert_contains "... with the plugin's message" "$ERR" "reversed range '5:1'"
one "$IMPIMAP" --kernel "$P1"
assert_rc "the plugin's check() refuses a missing range: usage error" 2
assert_contains "... with the plugin's message" "$ERR" "expected one range A:B"
one "$IMPIMAP" --kernel "$P1" --bogus 1:10
assert_rc "an option the plugin does not have: usage error" 2
assert_contains "... named" "$ERR" "'--bogus'"

section "a bare file name is the file in the current directory"
pushd "$B1" >/dev/null
one "$IMPIMAP" --kernel libmpimap-primes-template.so 1:100000
assert_rc "--kernel libmpimap-primes-template.so (in the current directory)" 0
expect text count 1:100000
assert_same_file "... = mpimap primes 1:100000" "$EXPECTED" "$OUT"
popd >/dev/null

# ---------------------------------------------------------------- small plugins
section "plugins written by this test"
PD="$TMP/plugins"
mkdir -p "$PD"
# A minimal ordered kernel: only the required hooks (and columns: the
# engine names the output's columns). Upper-cases the lines of its files.
cat >"$PD/upper.c" <<'EOF'
#include <mpimap/kernel.h>
#include <string.h>

#ifndef ABI
#define ABI MPM_KERNEL_ABI
#endif
#ifndef SYMBOL
#define SYMBOL mpimap_kernel
#endif
#ifndef EXPORT
#define EXPORT MPM_KERNEL_EXPORT
#endif
#ifndef MAP
#define MAP up_map
#endif
#ifndef COLUMNS
#define COLUMNS up_columns
#endif

static int up_check(void *o, int argc, char **argv, mpm_inputs_t *in, mpm_err_t *err)
{
    (void)o;
    if (argc < 1) return mpm_err_set(err, -1, "upper: expected files");
    for (int i = 0; i < argc; i++) {
        mpm_input_t x = {.kind = MPM_IN_FILE, .name = argv[i]};
        if (mpm_inputs_add(in, x)) return mpm_err_set(err, -1, "out of memory");
    }
    return 0;
}

static const char *const cols[] = {"line", NULL};
__attribute__((unused)) /* when the table leaves it out (-DCOLUMNS=NULL) */
static const char *const *up_columns(const void *o) { (void)o; return cols; }

__attribute__((unused)) /* when the table leaves it out (-DMAP=NULL) */
static int up_map(const void *o, const mpm_chunk_t *c, void *p, mpm_format_t fmt,
                  mpm_buf_t *out, mpm_err_t *err)
{
    (void)o; (void)p; (void)fmt;
    size_t start = out->len;
    if (mpm_buf_append(out, c->data, c->len)) return mpm_err_set(err, -1, "out of memory");
    for (size_t i = start; i < out->len; i++)
        if (out->data[i] >= 'a' && out->data[i] <= 'z') out->data[i] -= 'a' - 'A';
    return 0;
}

EXPORT const mpm_kernel_t SYMBOL = {
    .abi = ABI,
    .name = "upper",
    .summary = "upper-cases lines",
    .synopsis = "FILE...",
    .check = up_check,
    .records = MPM_REC_LINES,
    .default_chunk_size = 1 << 20,
    .columns = COLUMNS,
    .map = MAP,
};
EOF
# plugin NAME CFLAGS... : compiles upper.c into $PD/NAME.so.
plugin() {
    local name=$1
    shift
    run_cmd "$CC" -std=c11 -Wall -Wextra -Werror -shared -fPIC "-I$PREFIX/include" "$@" \
        "$PD/upper.c" -o "$PD/$name.so"
    assert_rc "compile the test plugin $name.so (cc -shared -fPIC $*)" 0
}
plugin upper
plugin abinext "-DABI=(MPM_KERNEL_ABI + 1)"
plugin abiprev "-DABI=(MPM_KERNEL_ABI - 1)"
plugin nosym -DSYMBOL=my_kernel
plugin hidden -fvisibility=hidden -DEXPORT=
plugin nomap -DMAP=NULL
plugin nocolumns -DCOLUMNS=NULL

LINES="$TMP/lines.txt"
for n in $(seq 1 3000); do echo "line $n: Hello, plugin world"; done >"$LINES"
tr '[:lower:]' '[:upper:]' <"$LINES" >"$TMP/lines.upper"
one "$IMPIMAP" --kernel "$PD/upper.so" -c 4K "$LINES"
assert_rc "a minimal ordered plugin (check, map, columns) runs" 0
assert_same_file "... its rows in input order" "$TMP/lines.upper" "$OUT"
mp "$MPIMAP" 2 --threads 2 --kernel "$PD/upper.so" -c 4K "$LINES"
assert_rc "... under -np 2 --threads 2" 0
assert_same_file "... the same rows" "$TMP/lines.upper" "$OUT"

# refused DESC PLUGIN [REGEX...] : exit 2, stderr matches every REGEX,
# nothing on stdout.
refused() {
    local desc=$1 p=$2 re
    shift 2
    one "$IMPIMAP" --kernel "$p" "$LINES"
    assert_rc "$desc: refused as a usage error" 2
    for re in "$@"; do assert_match "$desc: the message matches $re" "$ERR" "$re"; done
    assert_empty "$desc: nothing on stdout" "$OUT"
}
refused "a plugin built for ABI $((ABI + 1))" "$PD/abinext.so" \
    "ABI $((ABI + 1))[^0-9].*ABI $ABI([^0-9]|\$)"
refused "a plugin built for ABI $((ABI - 1))" "$PD/abiprev.so" \
    "ABI $((ABI - 1))[^0-9].*ABI $ABI([^0-9]|\$)"
refused "a library without the symbol (another name)" "$PD/nosym.so" "no symbol 'mpimap_kernel'"
refused "a library whose symbol is not exported (-fvisibility=hidden, no MPM_KERNEL_EXPORT)" \
    "$PD/hidden.so" "no symbol 'mpimap_kernel'"
refused "a kernel table without map" "$PD/nomap.so" "'map'"
refused "a kernel table without columns (and no sink)" "$PD/nocolumns.so" "'columns"
echo "this is not a shared library" >"$PD/notalib.so"
refused "a file that is not a library" "$PD/notalib.so" "cannot load the plugin" "notalib\.so"
refused "a missing file" "$PD/missing.so" "cannot load the plugin" "missing\.so"

mp "$IMPIMAP" 2 --kernel "$PD/abinext.so" "$LINES"
assert_rc "-np 2: the wrong ABI refused on every rank" 2
assert_count "-np 2: the message printed once" "$ERR" "ABI $((ABI + 1))" 1

finish
