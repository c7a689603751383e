#!/usr/bin/env bash
# scripts/test.sh - installs missing dependencies, builds and runs every test
# through ctest, three times:
#   1. the normal build (-Werror): every test;
#   2. an AddressSanitizer + UndefinedBehaviorSanitizer build: every test
#      (MPI tests with detect_leaks=0: MPI_Init leaks by design; the non-MPI
#      unit tests keep leak detection on);
#   3. a ThreadSanitizer build: the non-MPI unit tests (pool, kernels...):
#      TSan cannot follow Open MPI, see docs/ARCHITECTURE.md.
# Options: --quick runs only the normal build.
source "$(dirname "$0")/common.sh"

QUICK=0
for a in "$@"; do
    case "$a" in
    --quick) QUICK=1 ;;
    -h | --help)
        sed -n '2,12p' "$0"
        exit 0
        ;;
    *)
        echo "test.sh: unknown option '$a'" >&2
        exit 2
        ;;
    esac
done

install_deps "${BUILD_DEPS[@]}" "${TEST_DEPS[@]}"
ulimit -c 0 || true
status=0

build "$MPIMAP_ROOT/build"
log "ctest: normal build"
(cd "$MPIMAP_ROOT/build" && ctest --output-on-failure -j 2) || status=1

if [ "$QUICK" = 0 ]; then
    build "$MPIMAP_ROOT/build-asan" -DMPIMAP_ASAN=ON
    log "ctest: AddressSanitizer + UndefinedBehaviorSanitizer build"
    # The Slurm and two-host tests check launchers (sbatch, srun, ssh-like
    # agents), not code paths of their own: they run in the normal build only.
    (cd "$MPIMAP_ROOT/build-asan" &&
        MPIMAP_QUICK=1 ctest --output-on-failure -j 2 -E '^e2e_test_(slurm|twohost)$') || status=1

    build "$MPIMAP_ROOT/build-tsan" -DMPIMAP_TSAN=ON
    log "ctest: ThreadSanitizer build (unit tests, no MPI)"
    # TSan needs a fixed address-space layout on kernels with high mmap entropy.
    (cd "$MPIMAP_ROOT/build-tsan" &&
        TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
            setarch "$(uname -m)" -R ctest --output-on-failure -j 2 -R '^unit_') || status=1
fi

if [ "$status" = 0 ]; then log "all test runs passed"; else log "SOME TESTS FAILED"; fi
exit "$status"
