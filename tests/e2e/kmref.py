#!/usr/bin/python3
"""Independent reference for the kmeans kernel's tests (tests/e2e/test_kmeans.sh).

The reference is scikit-learn's KMeans(init=C, n_init=1, algorithm='lloyd'),
run on data this script writes itself (CSV with Python's repr(), which
round-trips every float64 exactly, so mpimap and scikit-learn see the very
same numbers). Nothing here calls mpimap.

  kmref.py datasets OUTDIR
      iris.csv wine.csv breast_cancer.csv (X only, header = feature names),
      blobs.csv (synthetic, no ties: the empty-cluster cases), const.csv (a
      constant feature: --standardize only centres it), their init files
      NAME.init3.csv (header), NAME.init5.csv (no header), NAME.init8.csv,
      blobs.far5.csv (3 data rows + 2 centroids far from every point: two
      empty clusters at the first iteration), blobs.dup3.csv (two identical
      initial centroids), blobs.init1.csv (K = 1), iris.init3.cols34.csv
      (iris' columns 3 and 4), and iris variants:
      iris_labeled.csv (a text column in the middle; --columns), iris.tsv,
      iris_crlf.csv (CRLF and an empty CRLF line), iris_quoted.csv (every
      field in double quotes), iris_blank.csv (empty lines), iris_noheader.csv.
  kmref.py ref DATA INIT OUTPREFIX [--max-iter N] [--tol T] [--standardize]
               [--f32] [--raw D] [--columns I,J,...]
      scikit-learn's result: OUTPREFIX.centroids.csv (header + K rows, %.17g),
      .labels (one per line), .inertia, .n_iter, .json. DATA is a numeric CSV
      written by `datasets` (or raw float64 with --raw D). --f32: the data
      rounded to float32 then back to float64 (what mpimap --dtype f32 sees).
      --standardize: scikit-learn on (X - mean) / std (population std, a zero
      std taken as 1) with the init standardized the same way, centroids
      written back as c * std + mean; .inertia is then the clustering-space
      (standardized) inertia and .json also holds "inertia_input_units".
      --columns: only those 1-based columns of DATA.
  kmref.py refs < JOBS
      `ref` for every line of JOBS (its arguments), in one process.
  kmref.py cmp REFPREFIX CENTROIDS LABELS [--inertia FILE | --inertia-any FILE]
               [--iter I]
      mpimap's outputs against the reference: labels identical, every centroid
      value and the inertia within 1e-9 relative (see `close` below), the
      iteration count equal. One summary line; exit 1 on any mismatch.
      --inertia-any (with --standardize): the inertia may be either the
      standardized one or the one in the input's units; says which it was.
  kmref.py sane CENTROIDS LABELS K NPOINTS
      K rows of finite numbers, NPOINTS labels in 0..K-1, every cluster used.
  kmref.py metrics JSON STDERR [INERTIA_FILE]
      JSON's "kmeans" object agrees with the summary line on STDERR (points,
      features, k, iterations, inertia, converged) and with INERTIA_FILE.
  kmref.py summary STDERR
      "ITER KIND" from the summary line (KIND: labels, shift or max-iter;
      "none none" without one).
  kmref.py spec-summary STDERR
      the summary line is worded exactly as the contract says (exit 1 if not).
  kmref.py gen-bad OUTDIR
      small.csv (20 x 4, header) and small.init3.csv, and derived from them:
      ragged.csv (line 5: 3 fields), text.csv (line 7 column 2: abc),
      nan.csv (4, 3), inf.csv (6, 1), neginf.csv (9, 2), huge.csv (3, 4:
      1e999), header_only.csv, header_blank.csv (header + empty lines),
      empty.csv, ragged.f64 (10 points of 4 + 3 bytes), nan.f64 (NaN at
      byte 416), inf.f32 (inf at byte 112), init_rows.csv (2 rows for k 3),
      init_fields.csv (no header, line 2 short), init_wide.csv (5 fields);
      and files that must give small.csv's result: small_crlf.csv,
      small_quoted.csv, small_blank.csv.
  kmref.py raw CSV OUT [--f32]
      the numeric CSV as raw little-endian float64 (or float32), row-major.
"""
import json
import math
import os
import re
import sys
import warnings

import numpy as np

RTOL = 1e-9
# Absolute floor for values near 0. A centroid coordinate close to 0 (say a
# de-standardized c * std + mean that cancels, or a mean of values of both
# signs) carries a rounding error of a few ulps of the data's magnitude, not
# of its own, and scikit-learn itself computes on centred data (X - mean), so
# a pure relative test would fail on noise. Each value may therefore also be
# off by 1e-12 x the largest |value| of its column (at least 1e-12): still a
# thousand times tighter than the 1e-9 relative bound at the column's scale.
AFLOOR = 1e-12


def fmt(v):
    return "%.17g" % v


# ---------------------------------------------------------------- files

def write_csv(path, names, X, delim=",", eol="\n", quote=False, header=True):
    def q(s):
        if quote:
            return '"' + s.replace('"', '""') + '"'
        if delim in s or '"' in s:
            return '"' + s.replace('"', '""') + '"'
        return s
    with open(path, "w", newline="") as f:
        if header:
            f.write(delim.join(q(n) for n in names) + eol)
        for row in X:
            f.write(delim.join(q(repr(float(v))) for v in row) + eol)


def read_csv(path):
    """Numeric CSV written by write_csv (',' separated, optional header)."""
    names, rows = None, []
    with open(path, newline="") as f:
        for i, line in enumerate(f):
            line = line.rstrip("\n").rstrip("\r")
            if not line:
                continue
            fields = [s.strip('"') for s in line.split(",")]
            try:
                rows.append([float(s) for s in fields])
            except ValueError:
                if i == 0 and names is None:
                    names = fields
                    continue
                raise
    X = np.array(rows, dtype=np.float64)
    if names is None:
        names = ["x%d" % (j + 1) for j in range(X.shape[1])]
    return names, X


def read_labels(path):
    with open(path) as f:
        return np.array([int(s) for s in f.read().split()], dtype=np.int64)


def read_number(path):
    with open(path) as f:
        return float(f.read().strip())


# ---------------------------------------------------------------- datasets

def load(name):
    from sklearn import datasets
    b = getattr(datasets, "load_" + name)()
    return [str(n) for n in b.feature_names], np.asarray(b.data, dtype=np.float64)


def pick(X, k, seed=1):
    rng = np.random.default_rng(seed)
    return X[np.sort(rng.choice(X.shape[0], size=k, replace=False))]


def cmd_datasets(out):
    os.makedirs(out, exist_ok=True)
    for name in ("iris", "wine", "breast_cancer"):
        names, X = load(name)
        write_csv("%s/%s.csv" % (out, name), names, X)
        write_csv("%s/%s.init3.csv" % (out, name), names, pick(X, 3))
        write_csv("%s/%s.init5.csv" % (out, name), names, pick(X, 5), header=False)
        write_csv("%s/%s.init8.csv" % (out, name), names, pick(X, 8))

    # Synthetic blobs, continuous values: no two points at the same distance
    # from anything, so "farthest point" is never a tie.
    rng = np.random.default_rng(5)
    centers = np.array([[0.0, 0.0, 0.0], [6.0, 1.0, -2.0], [-3.0, 7.0, 4.0]])
    X = np.concatenate([c + rng.normal(scale=1.3, size=(100, 3)) for c in centers])
    X = X[rng.permutation(X.shape[0])]
    names = ["a", "b", "c"]
    write_csv(out + "/blobs.csv", names, X)
    write_csv(out + "/blobs.init3.csv", names, pick(X, 3))
    p = pick(X, 3)
    write_csv(out + "/blobs.dup3.csv", names, [p[0], p[0], p[1]])  # cluster 1 empty (ties: lowest index)
    write_csv(out + "/blobs.init1.csv", names, p[:1])
    far = np.concatenate([pick(X, 3), [[500.0, 500.0, 500.0], [-800.0, 0.0, 900.0]]])
    write_csv(out + "/blobs.far5.csv", names, far)
    # A constant feature (--standardize centres it only).
    Xc = np.concatenate([X[:, :2], np.full((X.shape[0], 1), 4.25), X[:, 2:]], axis=1)
    write_csv(out + "/const.csv", ["a", "b", "k", "c"], Xc)
    write_csv(out + "/const.init3.csv", ["a", "b", "k", "c"], pick(Xc, 3))

    # iris variants: all must give the result of iris.csv.
    names, X = load("iris")
    species = ["setosa", "versicolor", "virginica"]
    y = np.repeat(np.arange(3), 50)
    with open(out + "/iris_labeled.csv", "w", newline="") as f:
        f.write(",".join(names[:2] + ["species"] + names[2:]) + "\n")
        for row, lab in zip(X, y):
            v = [repr(float(a)) for a in row]
            f.write(",".join(v[:2] + [species[lab]] + v[2:]) + "\n")
    write_csv(out + "/iris.tsv", names, X, delim="\t")
    write_csv(out + "/iris.init3.cols34.csv", names[2:], pick(X, 3)[:, 2:])
    write_csv(out + "/iris_quoted.csv", names, X, quote=True)
    write_csv(out + "/iris_noheader.csv", names, X, header=False)
    with open(out + "/iris_crlf.csv", "w", newline="") as f:
        f.write(",".join(names) + "\r\n")
        for i, row in enumerate(X):
            f.write(",".join(repr(float(a)) for a in row) + "\r\n")
            if i == 70:
                f.write("\r\n")
    with open(out + "/iris_blank.csv", "w", newline="") as f:
        f.write(",".join(names) + "\n\n")
        for i, row in enumerate(X):
            f.write(",".join(repr(float(a)) for a in row) + "\n")
            if i in (0, 40, 41):
                f.write("\n")
        f.write("\n\n")


# ---------------------------------------------------------------- reference

def kmeans(X, C, max_iter, tol):
    from sklearn.cluster import KMeans
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km = KMeans(n_clusters=C.shape[0], init=C, n_init=1, algorithm="lloyd",
                    max_iter=max_iter, tol=tol).fit(X)
    return km.cluster_centers_, km.labels_.astype(np.int64), float(km.inertia_), int(km.n_iter_)


def cmd_ref(argv):
    data, init, prefix = argv[:3]
    opts = {"--max-iter": "300", "--tol": "1e-4", "--raw": None, "--columns": None}
    flags = set()
    i = 3
    while i < len(argv):
        a = argv[i]
        if a in ("--standardize", "--f32"):
            flags.add(a)
            i += 1
        elif a in opts:
            opts[a] = argv[i + 1]
            i += 2
        else:
            sys.exit("kmref ref: unknown option " + a)
    if opts["--raw"]:
        d = int(opts["--raw"])
        dt = "<f4" if "--f32" in flags else "<f8"
        X = np.fromfile(data, dtype=dt).astype(np.float64).reshape(-1, d)
        names = ["x%d" % (j + 1) for j in range(d)]
    else:
        names, X = read_csv(data)
        if "--f32" in flags:
            X = X.astype(np.float32).astype(np.float64)
    if opts["--columns"]:
        sel = [int(c) - 1 for c in opts["--columns"].split(",")]
        X = X[:, sel]
        names = [names[j] for j in sel]
    _, C = read_csv(init)
    max_iter, tol = int(opts["--max-iter"]), float(opts["--tol"])
    extra = {}
    if "--standardize" in flags:
        mean = X.mean(axis=0)
        std = X.std(axis=0)  # ddof=0
        std[std == 0] = 1.0
        cen, lab, inertia, n_iter = kmeans((X - mean) / std, (C - mean) / std, max_iter, tol)
        cen = cen * std + mean
        extra["inertia_input_units"] = float(((X - cen[lab]) ** 2).sum())
    else:
        cen, lab, inertia, n_iter = kmeans(X, C, max_iter, tol)
    write_csv(prefix + ".centroids.csv", names, [[float(fmt(v)) for v in r] for r in cen])
    with open(prefix + ".labels", "w") as f:
        f.write("".join("%d\n" % v for v in lab))
    with open(prefix + ".inertia", "w") as f:
        f.write(fmt(inertia) + "\n")
    with open(prefix + ".n_iter", "w") as f:
        f.write("%d\n" % n_iter)
    doc = {"centroids": cen.tolist(), "labels": lab.tolist(), "inertia": inertia,
           "n_iter": n_iter, "points": int(X.shape[0]), "features": int(X.shape[1])}
    doc.update(extra)
    with open(prefix + ".json", "w") as f:
        json.dump(doc, f)
    print("n_iter %d inertia %s" % (n_iter, fmt(inertia)))


def close(a, b):
    """a ~ b elementwise: |a - b| <= max(RTOL * |b|, floor), the floor being
    AFLOOR x the largest |b| of the column (at least AFLOOR; a scalar is its
    own column). Returns (ok, largest relative error, with |b| raised to
    floor / RTOL so a near-zero b does not blow the figure up)."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    floor = np.maximum(np.abs(b).max(axis=0), 1.0) * AFLOOR
    err = np.abs(a - b)
    ok = bool(np.all(np.isfinite(a)) and np.all(err <= np.maximum(RTOL * np.abs(b), floor)))
    rel = float(np.max(err / np.maximum(np.abs(b), floor / RTOL)))
    return ok, rel


def cmd_cmp(argv):
    prefix, cpath, lpath = argv[:3]
    inertia_file, want_iter, any_units = None, None, False
    i = 3
    while i < len(argv):
        if argv[i] == "--inertia":
            inertia_file = argv[i + 1]
        elif argv[i] == "--inertia-any":
            inertia_file, any_units = argv[i + 1], True
        elif argv[i] == "--iter":
            want_iter = argv[i + 1]
        else:
            sys.exit("kmref cmp: unknown option " + argv[i])
        i += 2
    with open(prefix + ".json") as f:
        ref = json.load(f)
    bad = []
    rc = np.array(ref["centroids"])
    try:
        with open(cpath) as f:
            lines = f.read().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        body = lines[1:]
        got = np.array([[float(s) for s in ln.split(",")] for ln in body])
        if got.shape != rc.shape:
            bad.append("centroids shape %s, expected %s (header + K rows of D)" % (got.shape, rc.shape))
            got = None
    except (OSError, ValueError) as e:
        bad.append("centroids unreadable: %s" % e)
        got = None
    msg = []
    if got is not None:
        ok, rel = close(got, rc)
        msg.append("centroids max rel err %.1e" % rel)
        if not ok:
            k, j = np.unravel_index(np.argmax(np.abs(got - rc)), rc.shape)
            bad.append("centroid [%d][%d] = %s, expected %s" % (k, j, fmt(got[k, j]), fmt(rc[k, j])))
    try:
        lab = read_labels(lpath)
        rl = np.array(ref["labels"])
        if lab.shape != rl.shape:
            bad.append("%d labels, expected %d" % (lab.size, rl.size))
        else:
            nd = int(np.sum(lab != rl))
            msg.append("labels %d/%d equal" % (rl.size - nd, rl.size))
            if nd:
                w = np.nonzero(lab != rl)[0][:5]
                bad.append("%d labels differ, first rows %s: got %s expected %s"
                           % (nd, w.tolist(), lab[w].tolist(), rl[w].tolist()))
    except (OSError, ValueError) as e:
        bad.append("labels unreadable: %s" % e)
    if inertia_file is not None:
        try:
            v = read_number(inertia_file)
            ok, rel = close(v, ref["inertia"])
            msg.append("inertia rel err %.1e" % rel)
            if not ok and any_units and "inertia_input_units" in ref:
                ok, rel = close(v, ref["inertia_input_units"])
                msg[-1] = "inertia (in the input's units) rel err %.1e" % rel
            elif any_units:
                msg[-1] = "inertia (in the standardized space) rel err %.1e" % rel
            if not ok:
                bad.append("inertia %s, expected %s" % (fmt(v), fmt(ref["inertia"])))
        except (OSError, ValueError) as e:
            bad.append("inertia unreadable: %s" % e)
    if want_iter is not None:
        if str(want_iter) == str(ref["n_iter"]):
            msg.append("iterations %s" % want_iter)
        else:
            bad.append("iterations %r, scikit-learn %d" % (want_iter, ref["n_iter"]))
    if bad:
        print("; ".join(bad + msg))
        sys.exit(1)
    print(", ".join(msg))


def cmd_sane(argv):
    cpath, lpath, k, n = argv[0], argv[1], int(argv[2]), int(argv[3])
    bad = []
    with open(cpath) as f:
        body = f.read().split("\n")[1:]
    body = [b for b in body if b]
    vals = [[float(s) for s in ln.split(",")] for ln in body]
    if len(vals) != k:
        bad.append("%d centroid rows, expected %d" % (len(vals), k))
    if not all(math.isfinite(v) for r in vals for v in r):
        bad.append("non-finite centroid value")
    lab = read_labels(lpath)
    if lab.size != n:
        bad.append("%d labels, expected %d" % (lab.size, n))
    if lab.size and (lab.min() < 0 or lab.max() >= k):
        bad.append("labels outside 0..%d" % (k - 1))
    counts = np.bincount(lab[(lab >= 0) & (lab < k)], minlength=k)
    if np.any(counts == 0):
        bad.append("empty clusters in the labels: %s" % np.nonzero(counts == 0)[0].tolist())
    if bad:
        print("; ".join(bad))
        sys.exit(1)
    print("%d finite centroids, cluster sizes %s" % (k, counts.tolist()))


# The summary line, read leniently (the count and the reason) so that the
# numeric checks do not hinge on its wording; SPEC_SUMMARY is the contract's
# exact wording, asserted on its own by the test.
SUMMARY = re.compile(r"mpimap: kmeans: (\d+) points, (\d+) features, k (\d+): "
                     r"(converged|stopped) after (\d+) iterations? \(([^)]*)\), inertia (\S+)")
SPEC_SUMMARY = re.compile(r"^mpimap: kmeans: \d+ points, \d+ features, k \d+: "
                          r"(converged after \d+ iterations? \((labels stable|centroid shift <= tol)\)|"
                          r"stopped after \d+ iterations? \(--max-iter\)), inertia [-+.0-9eE]+$")


def kind_of(reason):
    for key in ("labels", "shift", "max-iter"):
        if key in reason:
            return key
    return "?" + reason.replace(" ", "_")


def summary(errpath):
    with open(errpath, errors="replace") as f:
        for line in f:
            m = SUMMARY.search(line)
            if m:
                return m
    return None


def cmd_summary(argv):
    m = summary(argv[0])
    if not m:
        print("none none")
        return
    print(m.group(5), kind_of(m.group(6)))


def cmd_metrics(argv):
    jpath, errpath = argv[0], argv[1]
    with open(jpath) as f:
        doc = json.load(f)
    km = doc.get("kmeans")
    if not isinstance(km, dict):
        print("no \"kmeans\" object in %s" % jpath)
        sys.exit(1)
    m = summary(errpath)
    if not m:
        print("no summary line on stderr")
        sys.exit(1)
    bad = []
    want = {"points": int(m.group(1)), "features": int(m.group(2)), "k": int(m.group(3)),
            "iterations": int(m.group(5)), "converged": m.group(4) == "converged"}
    for key, v in want.items():
        if km.get(key) != v:
            bad.append("%s: json %r, summary %r" % (key, km.get(key), v))
    inertia = km.get("inertia")
    if not isinstance(inertia, (int, float)):
        bad.append("inertia: json %r" % (inertia,))
    else:
        ok, _ = close(inertia, float(m.group(7)))
        if not ok:
            bad.append("inertia: json %r, summary %s" % (inertia, m.group(7)))
        if len(argv) > 2:
            v = read_number(argv[2])
            if float(inertia) != v:
                bad.append("inertia: json %r, --inertia %s" % (inertia, fmt(v)))
    if bad:
        print("; ".join(bad))
        sys.exit(1)
    print("kmeans: %s" % json.dumps(km, sort_keys=True))


# ---------------------------------------------------------------- bad input

def gen_bad(out):
    """Malformed files. Line numbers are 1-based file lines, the header being
    line 1 (the test asserts "FILE:LINE: " with these numbers)."""
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(11)
    X = np.round(rng.normal(size=(20, 4)) * 10, 3)
    names = ["p", "q", "r", "s"]
    write_csv(out + "/small.csv", names, X)
    write_csv(out + "/small.init3.csv", names, X[[0, 7, 13]])

    def lines():
        return [",".join(names)] + [",".join(repr(float(v)) for v in r) for r in X]

    def put(name, ls, eol="\n"):
        with open(out + "/" + name, "w", newline="") as f:
            f.write("".join(s + eol for s in ls))

    ls = lines()
    ls[4] = ",".join(ls[4].split(",")[:3])            # line 5: 3 fields
    put("ragged.csv", ls)
    ls = lines()
    ls[6] = ls[6].split(",")
    ls[6][1] = "abc"                                   # line 7, column 2
    ls[6] = ",".join(ls[6])
    put("text.csv", ls)
    for name, line, col, tok in (("nan.csv", 4, 3, "nan"), ("inf.csv", 6, 1, "inf"),
                                 ("huge.csv", 3, 4, "1e999"), ("neginf.csv", 9, 2, "-inf")):
        ls = lines()
        f = ls[line - 1].split(",")
        f[col - 1] = tok
        ls[line - 1] = ",".join(f)
        put(name, ls)
    put("header_only.csv", [",".join(names)])
    put("header_blank.csv", [",".join(names), "", ""])
    open(out + "/empty.csv", "w").close()
    # raw: 10 points of 4 float64 plus 3 bytes.
    Xr = X.astype("<f8")
    with open(out + "/ragged.f64", "wb") as f:
        f.write(Xr[:10].tobytes() + b"\0\0\0")
    Xn = Xr.copy()
    Xn[13, 0] = np.nan                                 # byte 13 * 4 * 8 = 416
    Xn.tofile(out + "/nan.f64")
    Xi = X.astype("<f4")
    Xi[7, 0] = np.inf                                  # byte 7 * 4 * 4 = 112
    Xi.tofile(out + "/inf.f32")
    # init files for --k 3 on small.csv (4 features)
    write_csv(out + "/init_rows.csv", names, X[[0, 1]])
    with open(out + "/init_fields.csv", "w") as f:     # no header; line 2 short
        f.write("1,2,3,4\n5,6,7\n8,9,10,11\n")
    with open(out + "/init_wide.csv", "w") as f:       # no header; 5 fields everywhere
        f.write("1,2,3,4,5\n6,7,8,9,10\n11,12,13,14,15\n")
    # Must work, same result as small.csv:
    put("small_crlf.csv", lines(), eol="\r\n")
    put("small_quoted.csv", ['"%s"' % s.replace(",", '","') for s in lines()])
    ls = lines()
    put("small_blank.csv", ls[:1] + [""] + ls[1:6] + ["", ""] + ls[6:] + [""])


# ---------------------------------------------------------------- raw

def cmd_raw(argv):
    src, dst = argv[0], argv[1]
    _, X = read_csv(src)
    dt = "<f4" if "--f32" in argv[2:] else "<f8"
    X.astype(dt).tofile(dst)
    print("%d points, %d dims" % X.shape)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, argv = sys.argv[1], sys.argv[2:]
    if cmd == "datasets":
        cmd_datasets(argv[0])
    elif cmd == "ref":
        cmd_ref(argv)
    elif cmd == "refs":
        import shlex
        for line in sys.stdin:
            if line.strip():
                cmd_ref(shlex.split(line))
    elif cmd in ("cmp", "sane", "metrics"):
        # A file mpimap should have written but could not be read is a
        # failed check with a message, not a Python traceback.
        try:
            {"cmp": cmd_cmp, "sane": cmd_sane, "metrics": cmd_metrics}[cmd](argv)
        except (OSError, ValueError) as e:
            print("unreadable %s: %s" % ("output" if cmd == "sane" else "input", e))
            sys.exit(1)
    elif cmd == "spec-summary":
        with open(argv[0], errors="replace") as f:
            hits = [ln.rstrip("\n") for ln in f if ln.startswith("mpimap: kmeans: ")]
        if len(hits) != 1 or not SPEC_SUMMARY.match(hits[0]):
            print("summary line(s) %r do not match /%s/" % (hits, SPEC_SUMMARY.pattern))
            sys.exit(1)
        print(hits[0])
    elif cmd == "summary":
        cmd_summary(argv)
    elif cmd == "gen-bad":
        gen_bad(argv[0])
    elif cmd == "raw":
        cmd_raw(argv)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
