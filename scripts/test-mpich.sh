#!/usr/bin/env bash
# scripts/test-mpich.sh - builds and tests mpimap against MPICH instead of
# Open MPI (what CI runs for the second MPI):
#   1. installs mpich and libmpich-dev when missing, next to Open MPI (the
#      default build stays on Open MPI: see build() in scripts/common.sh);
#   2. builds build-mpich/ with -DMPIMAP_MPI=mpich (mpicc.mpich,
#      mpiexec.mpich), -DMPIMAP_WERROR=ON, RelWithDebInfo;
#   3. runs ctest there: every unit test and fuzz-corpus replay, the MPI
#      engine tests under mpiexec -np 1..4 (Hydra), and the end-to-end tests
#      cli, matrix, badinput, badcorpus (-np 3), faults, kmeans, hash, image,
#      bindings, metrics, progress and plugin with MPIMAP_QUICK=1 (their smaller
#      matrices): about 10 minutes on 2 cores.
# The end-to-end tests left out are printed with the reason. Where MPICH's
# launcher differs from Open MPI's inside a test (stdin beyond 64 KiB,
# 1,000 arguments, mpiexec's exit status after a forwarded signal) the
# test says so with a "skip - ..." line and checks what it can instead.
# Options: --all   also exec and fetch (little that depends on the MPI);
#          --full  --all, and the end-to-end tests at full size (no
#                  MPIMAP_QUICK; about three times as long).
# Exit status 0 when every test passed, 1 otherwise.
source "$(dirname "$0")/common.sh"

QUICK=1 ALL=0
for a in "$@"; do
    case "$a" in
    --all) ALL=1 ;;
    --full) ALL=1 QUICK=0 ;;
    -h | --help)
        sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *)
        echo "test-mpich.sh: unknown option '$a' (see --help)" >&2
        exit 2
        ;;
    esac
done

# The end-to-end tests run under MPICH, and those left out with the reason.
E2E=(cli matrix badinput badcorpus faults kmeans hash image bindings metrics progress plugin)
EXTRA=(exec fetch)
declare -A LEFT_OUT=(
    [slurm]="jobs/ launch through srun --mpi=pmix and Open MPI's mpirun options"
    [twohost]="the second host is reached through Open MPI's --mca plm_rsh_agent"
)
if [ "$ALL" = 1 ]; then
    E2E+=("${EXTRA[@]}")
else
    for t in "${EXTRA[@]}"; do LEFT_OUT[$t]="runs with --all or --full (little depends on the MPI; saves time)"; done
fi

t0=$(date +%s)
install_deps "${BUILD_DEPS[@]}" "${TEST_DEPS[@]}" "${MPICH_DEPS[@]}"
ulimit -c 0 || true
B="$MPIMAP_ROOT/build-mpich"
build "$B" -DMPIMAP_MPI=mpich
t1=$(date +%s)

for t in "${!LEFT_OUT[@]}"; do
    log "not run under MPICH: e2e_test_$t (${LEFT_OUT[$t]})"
done
# Any other e2e test (a new one) is listed too, so that it is not forgotten.
for f in "$MPIMAP_ROOT"/tests/e2e/test_*.sh; do
    t=$(basename "$f" .sh)
    t=${t#test_}
    [ -n "${LEFT_OUT[$t]:-}" ] && continue
    [[ " ${E2E[*]} " == *" $t "* ]] && continue
    log "not run under MPICH: e2e_test_$t (not in scripts/test-mpich.sh's list yet)"
done

regex="^(unit_.*|fuzz_.*|mpi_.*_np[1-4]|e2e_test_($(
    IFS='|'
    echo "${E2E[*]}"
)))\$"
log "ctest in $B (MPICH, MPIMAP_QUICK=$QUICK): $regex"
status=0
(cd "$B" && MPIMAP_QUICK=$QUICK ctest --output-on-failure -j "$NPROC" -R "$regex") || status=1
t2=$(date +%s)
# The checks the tests skipped under MPICH, with their reasons (ctest only
# shows the output of failed tests).
awk '/^[0-9]+\/[0-9]+ Test: / { t = $3 } /^skip - |^SKIPPED: / { print "  " t ": " $0 }' \
    "$B/Testing/Temporary/LastTest.log" 2>/dev/null | sort -u >"$B/skipped.txt" || true
if [ -s "$B/skipped.txt" ]; then
    log "checks skipped under MPICH ($(wc -l <"$B/skipped.txt")):"
    cat "$B/skipped.txt" >&2
fi

log "MPICH: build $((t1 - t0)) s, tests $((t2 - t1)) s, total $((t2 - t0)) s"
if [ "$status" = 0 ]; then log "MPICH: all tests passed"; else log "MPICH: SOME TESTS FAILED"; fi
exit "$status"
