#!/bin/bash
# End-to-end: the kmeans kernel, against its interface contract.
#   * scikit-learn's KMeans(init=C, n_init=1, algorithm='lloyd') as the
#     reference (tests/e2e/kmref.py) on iris, wine and breast_cancer with the
#     initial centroids from a file: labels identical, centroids and inertia
#     within 1e-9 relative, the same iteration count; K = 1; --max-iter and
#     --tol stops; empty clusters (relocated to the farthest points);
#   * identical bytes of centroids, labels and inertia for -np 1..4 x
#     --threads 1..3 (chunks of 4 KiB, so that every rank gets points), and
#     for --chunk-size 1 (a point per chunk) and the default: an init file,
#     kmeans++ --seed 7, --init random, empty clusters;
#   * --standardize against scikit-learn on (X - mean) / std (population),
#     also with a constant feature;
#   * the input forms: --columns (numbers, ranges, names) around a text
#     column, --delimiter tab, CRLF, quoted fields, empty lines, with and
#     without a header, raw float64 (the CSV's bits) and float32;
#   * --metrics' "kmeans" object and the summary line (its exact wording);
#   * every bad input and usage error of the contract, in one process and with
#     -np 3: exit code, message, every rank exits, nothing under the -o and
#     --labels names, no temporary file, the input untouched.
# MPIMAP_QUICK=1: a smaller -np x --threads matrix.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

KMREF="$E2E_DIR/kmref.py"
km() { "$PY" "$KMREF" "$@"; }
D="$TMP/data" # inputs
R="$TMP/ref"  # scikit-learn's results
O="$TMP/out"  # mpimap's results
mkdir -p "$R" "$O"

section "datasets and scikit-learn references"
km datasets "$D"
km gen-bad "$TMP/bad" >/dev/null
km raw "$D/iris.csv" "$D/iris.f64" >/dev/null
km raw "$D/breast_cancer.csv" "$D/breast_cancer.f64" >/dev/null
km raw "$D/wine.csv" "$D/wine.f32" --f32 >/dev/null
# One Python process for every reference (importing sklearn takes a second).
km refs >"$R/log" <<EOF
$D/iris.csv $D/iris.init3.csv $R/iris3
$D/iris.csv $D/iris.init5.csv $R/iris5
$D/wine.csv $D/wine.init3.csv $R/wine3
$D/wine.csv $D/wine.init8.csv $R/wine8
$D/breast_cancer.csv $D/breast_cancer.init3.csv $R/bc3
$D/breast_cancer.csv $D/breast_cancer.init8.csv $R/bc8
$D/blobs.csv $D/blobs.init3.csv $R/blobs3
$D/blobs.csv $D/blobs.init1.csv $R/blobs1
$D/blobs.csv $D/blobs.far5.csv $R/far5
$D/blobs.csv $D/blobs.dup3.csv $R/dup3
$D/iris.csv $D/iris.init3.csv $R/iris3-mi2 --max-iter 2 --tol 0
$D/breast_cancer.csv $D/breast_cancer.init3.csv $R/bc3-tol0 --tol 0
$D/breast_cancer.csv $D/breast_cancer.init8.csv $R/bc8-tol1e-2 --tol 1e-2
$D/wine.csv $D/wine.init3.csv $R/wine3-std --standardize
$D/const.csv $D/const.init3.csv $R/const3-std --standardize
$D/wine.csv $D/wine.init3.csv $R/wine3-f32 --f32
$D/iris.csv $D/iris.init3.cols34.csv $R/iris3-cols34 --columns 3,4
EOF
ok "datasets written, $(wc -l <"$R/log") scikit-learn references computed"

# runx NP ARGS... : run under mpirun with NP ranks, or run_one when NP is 0.
runx() {
    local np=$1
    shift
    if [ "$np" = 0 ]; then run_one "$@"; else run "$np" "$@"; fi
}

# kmrun NP NAME ENGINE_AND_KERNEL_ARGS... : mpimap (NP 0: singleton) with
# -o $O/NAME.csv, --labels $O/NAME.labels and --inertia (stdout kept in
# $O/NAME.inertia, stderr in $O/NAME.err).
kmrun() {
    local np=$1 name=$2
    shift 2
    rm -f "$O/$name.csv" "$O/$name.labels"
    runx "$np" "$@" -o "$O/$name.csv" --labels "$O/$name.labels" --inertia
    cp "$OUT" "$O/$name.inertia"
    cp "$ERR" "$O/$name.err"
}

# Runs in the background, JOBS at once: on these tiny inputs the time goes to
# mpirun's start-up and teardown (up to 3 s after a rank fails), mostly
# waiting, which overlaps.
# bgrun NP ID ARGS... : start mpimap ARGS (NP 0: one process, no mpirun); its
# stdout, stderr, exit code and seconds land in $P/ID.{out,err,rc,secs}.
P="$TMP/bg"
mkdir -p "$P"
JOBS=4
bgrun() {
    local np=$1 id=$2
    shift 2
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
    (
        t0=$(date +%s%N)
        rc=0
        if [ "$np" = 0 ]; then run_single "$@"; else run_np "$np" "$@"; fi \
            >"$P/$id.out" 2>"$P/$id.err" </dev/null || rc=$?
        echo "$rc" >"$P/$id.rc"
        echo $((($(date +%s%N) - t0) / 1000000000)) >"$P/$id.secs"
    ) &
}
# bg_last ID : the background run ID becomes "the last run" (RC, OUT, ERR,
# SECS) for lib.sh's assertions.
bg_last() {
    RC=$(cat "$P/$1.rc" 2>/dev/null || echo "none (the run did not finish)")
    # shellcheck disable=SC2034 # read by lib.sh's assert_fast
    SECS=$(cat "$P/$1.secs" 2>/dev/null || echo 0)
    cp "$P/$1.out" "$OUT" 2>/dev/null || : >"$OUT"
    cp "$P/$1.err" "$ERR" 2>/dev/null || : >"$ERR"
}
# kmbg NP NAME ARGS... : kmrun in the background; kmbg_done NAME once waited for.
kmbg() {
    local np=$1 name=$2
    shift 2
    rm -f "$O/$name.csv" "$O/$name.labels"
    bgrun "$np" "$name" "$@" -o "$O/$name.csv" --labels "$O/$name.labels" --inertia
}
kmbg_done() {
    bg_last "$1"
    cp "$OUT" "$O/$1.inertia"
    cp "$ERR" "$O/$1.err"
}

# iters NAME : "ITERATIONS KIND" from the summary line of run NAME.
iters() { km summary "$O/$1.err"; }

# vs_ref DESC NAME REF [INERTIA_OPT] : run NAME against scikit-learn's REF.
vs_ref() {
    local msg it
    it=$(iters "$2" | awk '{print $1}')
    if msg=$(km cmp "$R/$3" "$O/$2.csv" "$O/$2.labels" "${4:---inertia}" "$O/$2.inertia" --iter "$it" 2>&1); then
        ok "$1 ($msg)"
    else
        fail "$1" "$msg"
        show_file "stderr" "$O/$2.err" 10
    fi
}

# difftxt A B : the first lines of diff A B, on one line (never fails).
difftxt() { { diff "$1" "$2" 2>&1 || true; } | head -n 4 | tr '\n' ' ' | cut -c1-300; }

# same_run DESC BASE NAME : runs BASE and NAME wrote identical centroids,
# labels and inertia.
same_run() {
    local f bad=()
    for f in csv labels inertia; do
        cmp -s "$O/$2.$f" "$O/$3.$f" || bad+=("$f differs: $(difftxt "$O/$2.$f" "$O/$3.$f")")
    done
    if [ ${#bad[@]} = 0 ]; then ok "$1"; else fail "$1" "${bad[@]}"; fi
}

# close_run DESC BASE NAME : the same labels; centroids and inertia equal
# within 1e-12 relative (another --chunk-size rounds block sums elsewhere).
close_run() {
    local msg
    if msg=$("$PY" - "$O/$2" "$O/$3" <<'PYEOF' 2>&1
import sys
a, b = sys.argv[1], sys.argv[2]
def rows(p):
    with open(p + ".csv") as f:
        return [[float(v) for v in ln.split(",")] for ln in list(f)[1:]]
la, lb = open(a + ".labels").read(), open(b + ".labels").read()
if la != lb:
    sys.exit("labels differ")
ra, rb = rows(a), rows(b)
if len(ra) != len(rb):
    sys.exit("%d vs %d centroids" % (len(ra), len(rb)))
worst = 0.0
for x, y in zip(ra, rb):
    for u, v in zip(x, y):
        worst = max(worst, abs(u - v) / max(abs(v), 1e-300) if v else abs(u))
ia, ib = float(open(a + ".inertia").read()), float(open(b + ".inertia").read())
worst = max(worst, abs(ia - ib) / max(abs(ib), 1e-300))
if worst > 1e-12:
    sys.exit("largest relative difference %.3g" % worst)
print("largest relative difference %.3g" % worst)
PYEOF
    ); then ok "$1 ($msg)"; else fail "$1" "$msg"; fi
}

# same_values DESC BASE NAME : the same, except the centroids' header line.
same_values() {
    local bad=()
    tail -n +2 "$O/$2.csv" >"$TMP/a.values" 2>/dev/null || true
    tail -n +2 "$O/$3.csv" >"$TMP/b.values" 2>/dev/null || true
    cmp -s "$TMP/a.values" "$TMP/b.values" || bad+=("centroid values differ: $(difftxt "$TMP/a.values" "$TMP/b.values")")
    cmp -s "$O/$2.labels" "$O/$3.labels" || bad+=("labels differ: $(difftxt "$O/$2.labels" "$O/$3.labels")")
    cmp -s "$O/$2.inertia" "$O/$3.inertia" || bad+=("inertia differs: $(difftxt "$O/$2.inertia" "$O/$3.inertia")")
    if [ ${#bad[@]} = 0 ]; then ok "$1"; else fail "$1" "${bad[@]}"; fi
}

header_of() { head -n 1 "$O/$1.csv"; }

# spec_summary DESC NAME : the summary line of run NAME has the contract's
# exact wording (iterations are read leniently everywhere else).
spec_summary() {
    local msg
    if msg=$(km spec-summary "$O/$2.err" 2>&1); then ok "$1"; else fail "$1" "$msg"; fi
}

section "against scikit-learn, initial centroids from a file"
# NP NAME DATA INIT K
while read -r np name data init k; do
    kmrun "$np" "$name" --threads 2 kmeans --k "$k" --init "$D/$init" "$D/$data"
    assert_rc "$name: $data, k $k, --init $init" 0
    vs_ref "$name: equals scikit-learn" "$name" "$name"
done <<EOF
2 iris3 iris.csv iris.init3.csv 3
0 iris5 iris.csv iris.init5.csv 5
3 wine3 wine.csv wine.init3.csv 3
0 wine8 wine.csv wine.init8.csv 8
0 bc3 breast_cancer.csv breast_cancer.init3.csv 3
2 bc8 breast_cancer.csv breast_cancer.init8.csv 8
0 blobs3 blobs.csv blobs.init3.csv 3
0 blobs1 blobs.csv blobs.init1.csv 1
EOF
assert_eq "iris: header = the feature names" "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)" "$(header_of iris3)"
assert_match "iris: summary line" "$O/iris3.err" "^mpimap: kmeans: 150 points, 4 features, k 3: converged after [0-9]+ iterations? \(.*\), inertia [0-9.e+-]+$"
if "$PY" -c "import sys; t = open(sys.argv[1]).read(); sys.exit(t != '%.17g\n' % float(t))" "$O/iris3.inertia" 2>/dev/null; then
    ok "iris: --inertia prints one number, %.17g, and a newline"
else
    fail "iris: --inertia prints one number, %.17g, and a newline" "got: '$(head -c 200 "$O/iris3.inertia")'"
fi

section "stopping rules"
kmrun 2 iris3-mi2 kmeans --k 3 --init "$D/iris.init3.csv" --max-iter 2 --tol 0 "$D/iris.csv"
assert_rc "iris --max-iter 2 --tol 0" 0
assert_eq "--max-iter 2: stopped after 2 iterations (max-iter)" "2 max-iter" "$(iters iris3-mi2)"
spec_summary "--max-iter 2: summary line worded as docs/KMEANS.md says (--max-iter)" iris3-mi2
vs_ref "--max-iter 2: equals scikit-learn max_iter=2" iris3-mi2 iris3-mi2
kmrun 3 bc3-tol0 kmeans --k 3 --init "$D/breast_cancer.init3.csv" --tol 0 "$D/breast_cancer.csv"
assert_rc "breast_cancer --tol 0" 0
assert_eq "--tol 0: only strict convergence" "labels" "$(iters bc3-tol0 | awk '{print $2}')"
vs_ref "--tol 0: equals scikit-learn tol=0" bc3-tol0 bc3-tol0
spec_summary "--tol 0: summary line worded as the contract says (labels stable)" bc3-tol0
kmrun 3 bc8-tol1e-2 kmeans --k 8 --init "$D/breast_cancer.init8.csv" --tol 1e-2 "$D/breast_cancer.csv"
assert_rc "breast_cancer k 8 --tol 1e-2" 0
assert_eq "--tol 1e-2: stopped by the shift (as scikit-learn)" "shift" "$(iters bc8-tol1e-2 | awk '{print $2}')"
vs_ref "--tol 1e-2: equals scikit-learn tol=1e-2" bc8-tol1e-2 bc8-tol1e-2
spec_summary "--tol 1e-2: summary line worded as docs/KMEANS.md says (centroid shift <= tol)" bc8-tol1e-2

section "empty clusters"
# far5: two initial centroids far from every point: both clusters are empty
# after the first assignment and take the farthest points in turn (with two
# empty clusters scikit-learn's order is the same: farthest first).
kmrun 2 far5 kmeans --k 5 --init "$D/blobs.far5.csv" "$D/blobs.csv"
assert_rc "two empty clusters at the first iteration" 0
if msg=$(km sane "$O/far5.csv" "$O/far5.labels" 5 300 2>&1); then ok "two empty clusters: $msg"; else fail "two empty clusters: K finite centroids (no NaN), every cluster used" "$msg"; fi
vs_ref "two empty clusters: equals scikit-learn" far5 far5
# dup3: two identical initial centroids: ties go to the lowest index, so
# cluster 1 is empty at once.
kmrun 3 dup3 --threads 2 kmeans --k 3 --init "$D/blobs.dup3.csv" "$D/blobs.csv"
assert_rc "two identical initial centroids" 0
if msg=$(km sane "$O/dup3.csv" "$O/dup3.labels" 3 300 2>&1); then ok "identical initial centroids: $msg"; else fail "identical initial centroids: K finite centroids, every cluster used" "$msg"; fi
vs_ref "identical initial centroids: equals scikit-learn" dup3 dup3

section "--standardize"
kmrun 2 wine3-std kmeans --k 3 --init "$D/wine.init3.csv" --standardize "$D/wine.csv"
assert_rc "wine --standardize" 0
vs_ref "wine --standardize: equals scikit-learn on (X - mean) / std, centroids de-standardized" wine3-std wine3-std --inertia-any
kmrun 3 const3-std --threads 2 kmeans --k 3 --init "$D/const.init3.csv" --standardize "$D/const.csv"
assert_rc "a constant feature --standardize" 0
vs_ref "a constant feature is only centred" const3-std const3-std --inertia-any
if awk -F, 'NR > 1 && $3 != "4.25" { bad = 1 } END { exit bad }' "$O/const3-std.csv"; then
    ok "the constant feature's centroids are exactly its value"
else
    fail "the constant feature's centroids are exactly its value" "$(cut -d, -f3 "$O/const3-std.csv" | tr '\n' ' ')"
fi

section "reproducibility: -np x --threads x --chunk-size"
# The files are small (iris 3 KB .. breast_cancer 120 KB): --chunk-size 4K
# gives every rank chunks to parse, so the matrix really spreads the points.
if [ "$QUICK" = 1 ]; then NPS="1 3"; THREADS="1 2"; else NPS="1 2 3 4"; THREADS="1 2 3"; fi
# NAME FULL KMEANS_ARGS (word-split); FULL=0: a few layouts, not the whole matrix
CONFIGS="bc8 1 --k 8 --init $D/breast_cancer.init8.csv $D/breast_cancer.csv
pp7 1 --k 5 --seed 7 $D/wine.csv
random 0 --k 4 --init random --seed 3 $D/wine.csv
far5 0 --k 5 --init $D/blobs.far5.csv $D/blobs.csv"
# layouts FULL : the "NP:THREADS" pairs run for a configuration.
layouts() {
    local np t
    if [ "$1" = 1 ]; then
        for np in $NPS; do for t in $THREADS; do echo "$np:$t"; done; done
    elif [ "$QUICK" = 1 ]; then
        echo "1:1 3:2"
    else
        echo "1:1 2:3 3:2 4:1"
    fi
}
while read -r name full args; do
    for l in $(layouts "$full"); do
        # shellcheck disable=SC2086
        kmbg "${l%:*}" "m-$name-$l" --threads "${l#*:}" --chunk-size 4K kmeans $args
    done
    for cs in 1 4M; do
        # shellcheck disable=SC2086
        kmbg 3 "m-$name-c$cs" --threads 2 --chunk-size "$cs" kmeans $args
    done
    # shellcheck disable=SC2086
    kmbg 0 "m-$name-c1-single" --threads 1 --chunk-size 1 kmeans $args
done <<<"$CONFIGS"
wait
while read -r name full args; do
    kmbg_done "m-$name-1:1"
    assert_rc "$name: reference run (-np 1 --threads 1 --chunk-size 4K)" 0
    for f in csv labels inertia err; do cp "$O/m-$name-1:1.$f" "$O/m-$name.$f" 2>/dev/null || rm -f "$O/m-$name.$f"; done
    same=1
    for l in $(layouts "$full"); do
        [ "$l" = 1:1 ] && continue
        kmbg_done "m-$name-$l"
        if [ "$RC" != 0 ] || ! cmp -s "$O/m-$name.csv" "$O/m-$name-$l.csv" ||
            ! cmp -s "$O/m-$name.labels" "$O/m-$name-$l.labels" ||
            ! cmp -s "$O/m-$name.inertia" "$O/m-$name-$l.inertia"; then
            same=0
            fail "$name: -np ${l%:*} --threads ${l#*:} differs from -np 1 --threads 1 (exit $RC)"
            show_last
            { diff "$O/m-$name.csv" "$O/m-$name-$l.csv" || true; } | head -n 6 | cut -c1-200 | sed 's/^/    | /'
        fi
    done
    [ "$same" = 1 ] && ok "$name: identical centroids, labels, inertia for -np:--threads {$(layouts "$full" | tr '\n' ' ')}"
    # Another chunk size regroups the blocks' double sums (docs/KMEANS.md):
    # the same labels, values equal to rounding; one point per chunk is
    # again identical for any -np/--threads.
    for cs in 1 4M; do
        kmbg_done "m-$name-c$cs"
        assert_rc "$name: --chunk-size $cs" 0
        close_run "$name: --chunk-size $cs (-np 3 --threads 2) equals --chunk-size 4K to 1e-12" "m-$name" "m-$name-c$cs"
    done
    kmbg_done "m-$name-c1-single"
    assert_rc "$name: --chunk-size 1, one process" 0
    same_run "$name: --chunk-size 1: one process x 1 thread identical to -np 3 --threads 2" "m-$name-c1" "m-$name-c1-single"
done <<<"$CONFIGS"
# The file-init and empty-cluster runs are also scikit-learn's result.
vs_ref "breast_cancer k 8 (--chunk-size 4K): equals scikit-learn" m-bc8 bc8
vs_ref "far5 (--chunk-size 4K): equals scikit-learn" m-far5 far5
for name in pp7:5 random:4; do
    k=${name#*:}
    name=${name%:*}
    if msg=$(km sane "$O/m-$name.csv" "$O/m-$name.labels" "$k" 178 2>&1); then
        ok "$name: $msg"
    else
        fail "$name: K finite centroids, every cluster used" "$msg"
    fi
done
kmrun 0 pp-default kmeans --k 5 "$D/wine.csv"
assert_rc "kmeans++ with the default seed" 0
kmrun 3 pp-default-x --threads 3 kmeans --k 5 --seed 0 "$D/wine.csv"
same_run "kmeans++: no --seed is --seed 0, and deterministic" pp-default pp-default-x
kmrun 0 pp8 kmeans --k 5 --seed 8 "$D/wine.csv"
assert_rc "kmeans++ --seed 8 runs (its result may differ from --seed 7)" 0

section "the centroids file back as --init"
kmrun 2 iris-again kmeans --k 3 --init "$O/iris3.csv" "$D/iris.csv"
assert_rc "mpimap's centroids file (with its header) accepted as --init" 0
km ref "$D/iris.csv" "$O/iris3.csv" "$R/iris-again" >/dev/null 2>&1 || echo "# no reference: iris3's centroids are missing"
vs_ref "restarted from its own centroids: equals scikit-learn from them" iris-again iris-again
run_one kmeans --k 3 --init "$D/iris.init3.csv" "$D/iris.csv"
assert_rc "without -o: centroids on standard output" 0
assert_same_file "standard output = the -o file" "$O/iris3.csv" "$OUT"
run_one --quiet kmeans --k 3 --init "$D/iris.init3.csv" "$D/iris.csv" -o "$O/q.csv"
assert_rc "--quiet" 0
assert_not_contains "--quiet: no summary line" "$ERR" "mpimap: kmeans:"

section "input forms: columns, delimiter, CRLF, quotes, empty lines, raw"
IRIS_HDR="sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)"
I3=(--k 3 --init "$D/iris.init3.csv")
# variant NAME FILE [OPTIONS...] : with $NP ranks, the result of iris3 (values,
# labels, inertia; headers are checked one by one).
variant() {
    local name=$1 file=$2
    shift 2
    kmrun "$NP" "$name" --threads 2 kmeans "${I3[@]}" "$@" "$D/$file"
    assert_rc "$name: $file $*" 0
    same_values "$name: same centroids, labels and inertia as iris.csv" iris3 "$name"
}
NP=3
variant cols-idx iris_labeled.csv --columns 1,2,4,5
NP=0
assert_eq "cols-idx: header = the selected names" "$IRIS_HDR" "$(header_of cols-idx)"
variant cols-range iris_labeled.csv --columns 1-2,4-5
variant cols-names iris_labeled.csv --columns "$IRIS_HDR"
assert_eq "cols-names: header = the selected names" "$IRIS_HDR" "$(header_of cols-names)"
variant tsv iris.tsv --delimiter tab
assert_eq "tsv: header = the names" "$IRIS_HDR" "$(header_of tsv)"
NP=2
variant crlf iris_crlf.csv
NP=0
assert_eq "crlf: header = the names, no carriage return" "$IRIS_HDR" "$(header_of crlf)"
variant quoted iris_quoted.csv
assert_eq "quoted: header = the names, unquoted" "$IRIS_HDR" "$(header_of quoted)"
variant blank iris_blank.csv
variant noheader iris_noheader.csv
assert_eq "noheader: header x1..x4" "x1,x2,x3,x4" "$(header_of noheader)"
variant noheader-forced iris_noheader.csv --no-header
variant header-forced iris.csv --header
kmrun 2 cols34 kmeans --k 3 --init "$D/iris.init3.cols34.csv" --columns 3,4 "$D/iris.csv"
assert_rc "iris --columns 3,4" 0
vs_ref "--columns 3,4: equals scikit-learn on those two features" cols34 iris3-cols34
assert_eq "--columns 3,4: header" "petal length (cm),petal width (cm)" "$(header_of cols34)"
kmrun 2 raw-cols34 kmeans --k 3 --init "$D/iris.init3.cols34.csv" --dims 4 --columns 3,4 "$D/iris.f64"
assert_rc "raw --dims 4 --columns 3,4" 0
same_values "raw --columns 3,4: same as the CSV's" cols34 raw-cols34
# raw float64: the same doubles as the CSV, so the same bits out.
kmrun 3 raw-iris --threads 2 kmeans "${I3[@]}" --dims 4 "$D/iris.f64"
assert_rc "iris as raw float64 --dims 4" 0
same_values "raw f64: the CSV's centroid values, labels and inertia, bit for bit" iris3 raw-iris
assert_eq "raw: header x1..x4" "x1,x2,x3,x4" "$(header_of raw-iris)"
kmrun 0 raw-bc8 kmeans --k 8 --init "$D/breast_cancer.init8.csv" --dims 30 --dtype f64 "$D/breast_cancer.f64"
assert_rc "breast_cancer raw f64" 0
same_values "raw f64 breast_cancer: the CSV's result bit for bit" bc8 raw-bc8
kmrun 4 raw-bc8-c1 --threads 1 --chunk-size 1 kmeans --k 8 --init "$D/breast_cancer.init8.csv" --dims 30 --dtype f64 "$D/breast_cancer.f64"
assert_rc "breast_cancer raw f64, --chunk-size 1 (a point per chunk), -np 4" 0
close_run "raw f64 breast_cancer: --chunk-size 1 -np 4 (one record per chunk) equals the default to 1e-12" raw-bc8 raw-bc8-c1
kmrun 2 wine3-f32 --threads 2 kmeans --k 3 --init "$D/wine.init3.csv" --dims 13 --dtype f32 "$D/wine.f32"
assert_rc "wine as raw float32" 0
vs_ref "raw f32: equals scikit-learn on the float32-rounded data" wine3-f32 wine3-f32

section "--metrics"
run 2 --metrics "$O/m.json" kmeans "${I3[@]}" "$D/iris.csv" -o "$O/met.csv" --inertia
assert_rc "--metrics run" 0
cp "$OUT" "$O/met.inertia"
if msg=$(km metrics "$O/m.json" "$ERR" "$O/met.inertia" 2>&1); then ok "--metrics: \"kmeans\" agrees with the summary ($msg)"; else fail "--metrics: \"kmeans\" object" "$msg"; fi
assert_same_file "--metrics does not change the result" "$O/iris3.inertia" "$O/met.inertia"
run 3 --metrics "$O/m2.json" kmeans "${I3[@]}" --max-iter 2 --tol 0 "$D/iris.csv" -o "$O/met2.csv"
assert_rc "--metrics, stopped by --max-iter" 0
if msg=$(km metrics "$O/m2.json" "$ERR" 2>&1) && [[ $msg == *'"converged": false'* ]] && [[ $msg == *'"iterations": 2,'* ]]; then
    ok "--metrics after --max-iter 2: converged false, 2 iterations ($msg)"
else
    fail "--metrics after --max-iter 2: converged false, 2 iterations" "$msg"
fi

section "bad input and usage errors (one process, and -np 3)"
B="$TMP/bad"
BO="$TMP/badout" # a directory per case: nothing may ever appear in them
mkdir -p "$BO"
cp "$D/iris_labeled.csv" "$B/"
# bad EXPECTED_RC FRAGMENTS INPUT KMEANS_ARGS... : starts the case in one
# process and with -np 3, in the background, with -o and --labels in a
# directory of its own (NOOUT=1: --labels only). FRAGMENTS: separated by ';',
# each a fixed string or re:REGEX. INPUT is checksummed before and after.
# bad_check judges every case once they have all ended.
NCASE=0
C_WANT=()
C_FRAGS=()
C_INPUT=()
C_SHA=()
C_DESC=()
NOOUT=0
bad() {
    local want=$1 frags=$2 input=$3 np id args
    shift 3
    args="$*"
    for np in 0 3; do
        id=$NCASE
        NCASE=$((NCASE + 1))
        C_WANT[id]=$want
        C_FRAGS[id]=$frags
        C_INPUT[id]=$input
        C_SHA[id]=$(sha "$input" 2>/dev/null || echo none)
        C_DESC[id]="kmeans ${args//$TMP\//}$([ "$NOOUT" = 1 ] && echo " without -o") ($([ "$np" = 0 ] && echo "one process" || echo "-np $np"))"
        mkdir -p "$BO/$id"
        if [ "$NOOUT" = 1 ]; then
            bgrun "$np" "bad$id" kmeans "$@" --labels "$BO/$id/l.txt"
        else
            bgrun "$np" "bad$id" kmeans "$@" -o "$BO/$id/c.csv" --labels "$BO/$id/l.txt"
        fi
    done
}
bad_check() {
    local id desc frag fl left
    for ((id = 0; id < NCASE; id++)); do
        bg_last "bad$id"
        desc=${C_DESC[id]}
        assert_rc "$desc" "${C_WANT[id]}"
        IFS=';' read -ra fl <<<"${C_FRAGS[id]}"
        for frag in "${fl[@]}"; do
            if [[ $frag == re:* ]]; then
                assert_match "$desc: message /${frag#re:}/" "$ERR" "${frag#re:}"
            else
                assert_contains "$desc: message '$frag'" "$ERR" "$frag"
            fi
        done
        assert_fast "$desc: every rank exits" 20
        left=$(find "$BO/$id" -mindepth 1 2>/dev/null)
        if [ -z "$left" ]; then ok "$desc: nothing under -o, --labels, no temporary"; else
            fail "$desc: nothing under -o, --labels, no temporary" "found: $left"
        fi
        assert_eq "$desc: input unchanged" "${C_SHA[id]}" "$(sha "${C_INPUT[id]}" 2>/dev/null || echo none)"
    done
}
bad 1 "ragged.csv:5: ;fields, expected" "$B/ragged.csv" --k 3 "$B/ragged.csv"
bad 1 "text.csv:7: column 2:;not a number" "$B/text.csv" --k 3 "$B/text.csv"
bad 1 "iris_labeled.csv:2: column 3:;not a number" "$B/iris_labeled.csv" --k 3 "$B/iris_labeled.csv"
bad 1 "nan.csv:4: column 3:;not finite" "$B/nan.csv" --k 3 "$B/nan.csv"
bad 1 "inf.csv:6: column 1:;not finite" "$B/inf.csv" --k 3 "$B/inf.csv"
bad 1 "neginf.csv:9: column 2:;not finite" "$B/neginf.csv" --k 3 "$B/neginf.csv"
bad 1 "huge.csv:3: column 4:;not finite" "$B/huge.csv" --k 3 "$B/huge.csv"
bad 1 "header_only.csv;no data" "$B/header_only.csv" --k 3 "$B/header_only.csv"
bad 1 "no data" "$B/header_blank.csv" --k 3 "$B/header_blank.csv"
bad 1 "empty.csv;empty" "$B/empty.csv" --k 3 "$B/empty.csv"
bad 1 "exceeds the number of points" "$B/small.csv" --k 21 "$B/small.csv"
bad 1 "exceeds the number of points" "$B/small.csv" --k 21 --init random "$B/small.csv"
bad 1 "ragged.f64;not a multiple" "$B/ragged.f64" --k 3 --dims 4 "$B/ragged.f64"
bad 1 "nan.f64: byte 416:;not finite" "$B/nan.f64" --k 3 --dims 4 "$B/nan.f64"
bad 1 "inf.f32: byte 112:;not finite" "$B/inf.f32" --k 3 --dims 4 --dtype f32 "$B/inf.f32"
bad 1 "init_rows.csv;centroids" "$B/init_rows.csv" --k 3 --init "$B/init_rows.csv" "$B/small.csv"
bad 1 "init_fields.csv:2:;fields, expected" "$B/init_fields.csv" --k 3 --init "$B/init_fields.csv" "$B/small.csv"
bad 1 "init_wide.csv:1:;fields, expected" "$B/init_wide.csv" --k 3 --init "$B/init_wide.csv" "$B/small.csv"
bad 2 "re:--k|k must|k = 0|\<k\>" "$B/small.csv" --k 0 "$B/small.csv"
bad 2 "no column named;nosuch" "$B/iris_labeled.csv" --k 3 --columns "sepal length (cm),nosuch" "$B/iris_labeled.csv"
bad 2 "re:--dims|--header" "$B/small.csv" --k 3 --dims 4 --header "$B/small.csv"
bad 2 "re:[Ii]nput|INPUT" "$B/small.csv" --k 3
bad 2 "re:stdin|standard input|'-'" "$B/small.csv" --k 3 -
NOOUT=1
bad 1 "--inertia needs -o" "$B/small.csv" --k 3 --inertia "$B/small.csv"
NOOUT=0
wait
bad_check

section "must work: CRLF, quoted fields, empty lines"
kmrun 0 small kmeans --k 3 --init "$B/small.init3.csv" "$B/small.csv"
assert_rc "small.csv" 0
for v in crlf quoted blank; do
    kmrun 3 "small-$v" kmeans --k 3 --init "$B/small.init3.csv" "$B/small_$v.csv"
    assert_rc "small_$v.csv" 0
    same_run "small_$v.csv: same centroids (header too), labels, inertia as small.csv" small "small-$v"
done

section "header detection looks at the selected columns only"
printf '1,2,setosa\n3,4,virginica\n10,10,x\n11,11,y\n' >"$TMP/nolab.csv"
kmrun 0 nolab kmeans --k 2 --columns 1-2 "$TMP/nolab.csv"
assert_rc "headerless file with a text column, --columns 1-2" 0
assert_contains "all 4 lines are data (the text column does not make line 1 a header)" "$ERR" "4 points"
assert_eq "no header: names x1,x2" "x1,x2" "$(header_of nolab)"
kmrun 0 nolab-all kmeans --k 2 "$TMP/nolab.csv"
assert_rc "the same file without --columns: the text column is data" 1
assert_contains "the message points to --columns" "$ERR" "--columns selects the numeric columns"

assert_no_strays "no stray processes"
finish
