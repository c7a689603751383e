#!/usr/bin/env bash
# scripts/test.sh - installs missing dependencies, builds and runs the tests.
#
#   scripts/test.sh           the default (about 20 min on 2 cores):
#     1. the normal build (-Werror): every ctest test (unit, MPI, end-to-end,
#        fuzz-corpus replays, the bad-input corpus);
#     2. an AddressSanitizer + UndefinedBehaviorSanitizer build: the unit
#        tests (leak detection on), the MPI tests and the fuzz replays;
#     3. a ThreadSanitizer build: the non-MPI unit tests (pool, kernels...):
#        TSan cannot follow Open MPI, see docs/ARCHITECTURE.md.
#   scripts/test.sh --full    what CI runs (.ci/run; about 60 min): the
#     default, plus
#     4. the end-to-end tests in the ASan+UBSan build (detect_leaks=0: MPI_Init
#        leaks by design);
#     5. MPICH: build-mpich and its MPI tests (scripts/test-mpich.sh);
#     6. valgrind memcheck, a 2-rank run of every kernel (scripts/valgrind.sh);
#     7. resource limits: 10 GB streamed through wordcount, hash and image
#        under the documented memory bounds, runs under ulimit -v
#        (tests/limits/test_limits.sh).
#   scripts/test.sh --quick   only step 1.
# Every step runs even when an earlier one failed; the exit status is 1 if
# any failed. docs/RELIABILITY.md lists what each step guards.
source "$(dirname "$0")/common.sh"

MODE=default
for a in "$@"; do
    case "$a" in
    --quick) MODE=quick ;;
    --full) MODE=full ;;
    -h | --help)
        sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *)
        echo "test.sh: unknown option '$a' (see --help)" >&2
        exit 2
        ;;
    esac
done

install_deps "${BUILD_DEPS[@]}" "${TEST_DEPS[@]}"
ulimit -c 0 || true
FAILED=()
T0=$(date +%s)
# step NAME CMD...: runs one step, records its time and failure.
step() {
    local name=$1 t0 rc=0
    shift
    t0=$(date +%s)
    log "step: $name"
    "$@" || rc=$?
    log "step: $name: $([ "$rc" = 0 ] && echo passed || echo "FAILED (exit $rc)") in $(($(date +%s) - t0)) s"
    [ "$rc" = 0 ] || FAILED+=("$name")
}

# The Slurm and two-host tests check launchers (sbatch, srun, ssh-like
# agents), not code paths of their own: they run in the normal build only.
ASAN_E2E_SKIP='^e2e_test_(slurm|twohost)$'

step "normal build" build "$MPIMAP_ROOT/build"
step "ctest: normal build" bash -c "cd '$MPIMAP_ROOT/build' && ctest --output-on-failure -j 2"

if [ "$MODE" != quick ]; then
    step "ASan+UBSan build" build "$MPIMAP_ROOT/build-asan" -DMPIMAP_ASAN=ON
    step "ctest: ASan+UBSan build, unit, MPI and fuzz-replay tests" \
        bash -c "cd '$MPIMAP_ROOT/build-asan' && ctest --output-on-failure -j 2 -E '^e2e_'"
    step "TSan build" build "$MPIMAP_ROOT/build-tsan" -DMPIMAP_TSAN=ON
    # TSan needs a fixed address-space layout on kernels with high mmap entropy.
    step "ctest: ThreadSanitizer build (unit tests, no MPI)" \
        bash -c "cd '$MPIMAP_ROOT/build-tsan' && TSAN_OPTIONS='halt_on_error=1 second_deadlock_stack=1' \
            setarch '$(uname -m)' -R ctest --output-on-failure -j 2 -R '^unit_'"
fi

if [ "$MODE" = full ]; then
    step "ctest: ASan+UBSan build, end-to-end tests" \
        bash -c "cd '$MPIMAP_ROOT/build-asan' && MPIMAP_QUICK=1 ctest --output-on-failure -j 2 \
            -R '^e2e_' -E '$ASAN_E2E_SKIP'"
    step "MPICH build and MPI tests" bash "$MPIMAP_ROOT/scripts/test-mpich.sh"
    step "valgrind memcheck, every kernel" bash "$MPIMAP_ROOT/scripts/valgrind.sh"
    step "resource limits (10 GB streams, ulimit -v)" \
        env MPIMAP="$MPIMAP_ROOT/build/mpimap" bash "$MPIMAP_ROOT/tests/limits/test_limits.sh"
fi

if [ "${#FAILED[@]}" = 0 ]; then
    log "all test steps passed ($MODE, $(($(date +%s) - T0)) s)"
else
    log "FAILED steps: ${FAILED[*]} ($MODE, $(($(date +%s) - T0)) s)"
fi
[ "${#FAILED[@]}" = 0 ]
