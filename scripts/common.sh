# scripts/common.sh - shared by run.sh, test.sh and bench.sh (sourced).
# Installs what is missing from Debian packages (sudo when not root), builds
# with CMake, and prepares Open MPI for running as root when needed.
set -euo pipefail

MPIMAP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NPROC="$(nproc)"

SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
else
    # Open MPI refuses to run as root without these; only set them for root.
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# install_deps PKG...: installs the Debian packages that are not installed yet.
install_deps() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing ${missing[*]}"
        $SUDO apt-get update -q >&2
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${missing[@]}" >&2
    fi
}

# What the tests need beyond the build: shellcheck (jobs/ scripts), iproute2
# (the two-host test's network namespaces), mount and setpriv (util-linux),
# numpy, scipy and PIL (the image kernel's independent reference), sklearn
# (the kmeans kernel's reference, and the datasets it ships).
# tests/e2e/slurm-cluster.sh installs slurm-wlm and munge itself.
TEST_DEPS=(shellcheck iproute2 mount python3-numpy python3-scipy python3-pil python3-sklearn xxhash)

BUILD_DEPS=(build-essential cmake pkg-config openmpi-bin libopenmpi-dev libhwloc-dev hwloc
    libcunit1-dev libxxhash-dev libssl-dev libcurl4-openssl-dev libpng-dev libjpeg62-turbo-dev zlib1g-dev python3 util-linux procps)
# The second MPI of scripts/test-mpich.sh (installed next to Open MPI; the
# default build stays on Open MPI, see build()).
MPICH_DEPS=(mpich libmpich-dev)

# bench_lock: one benchmark at a time on this machine. Takes the exclusive
# lock /tmp/mpimap-bench.lock on fd 9 (bench.sh and scripts/bench-*.sh share it),
# waiting for it if another benchmark holds it.
bench_lock() {
    exec 9>/tmp/mpimap-bench.lock
    if ! flock -n 9; then
        log "waiting for another benchmark to release /tmp/mpimap-bench.lock"
        flock 9
    fi
}

# build DIR [CMAKE ARGS...]: configures and builds the project in DIR,
# against Open MPI (mpicc.openmpi, mpirun.openmpi) whatever Debian's `mpi`
# and `mpirun` alternatives point to once MPICH is installed too; ARGS may
# choose another (-DMPIMAP_MPI=mpich: scripts/test-mpich.sh).
build() {
    local dir="$1"
    shift
    log "building in $dir $*"
    cmake -S "$MPIMAP_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPIMAP_WERROR=ON \
        -DMPIMAP_MPI=openmpi "$@" >&2
    cmake --build "$dir" -j "$NPROC" >&2
}

# bench_args "$@": the options of a benchmark script without options of its
# own: sets QUICK=1 for --quick; --help prints the script's header comment.
bench_args() {
    QUICK=0
    local a
    for a in "$@"; do
        case "$a" in
        --quick) QUICK=1 ;;
        -h | --help)
            sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
            exit 0
            ;;
        *)
            echo "$(basename "$0"): unknown argument '$a' (see --help)" >&2
            exit 2
            ;;
        esac
    done
}

# bench_setup: what every benchmark script starts with. B = build-bench/;
# MPIMAP = the binary named by $MPIMAP, else the Release build made there;
# PY = Debian's python3 (the anchors use its modules); BENCH = bench/;
# REPS = rounds (default 3), checked.
bench_setup() {
    B="$MPIMAP_ROOT/build-bench"
    if [ -z "${MPIMAP:-}" ]; then
        build "$B" -DCMAKE_BUILD_TYPE=Release -DMPIMAP_TESTS=OFF
        MPIMAP="$B/mpimap"
    fi
    [ -x "$MPIMAP" ] || { echo "$(basename "$0"): no mpimap binary at $MPIMAP" >&2; exit 1; }
    PY=/usr/bin/python3
    BENCH="$MPIMAP_ROOT/bench"
    REPS="${REPS:-3}"
    [[ "$REPS" =~ ^[1-9][0-9]*$ ]] || {
        echo "$(basename "$0"): REPS must be a positive integer, not '$REPS'" >&2
        exit 1
    }
}
