#!/usr/bin/python3
"""bench/kmeans_sklearn.py - the scikit-learn anchor of `scripts/bench.sh kmeans`.

  kmeans_sklearn.py gen N D K SEED DATA.f64 INIT.csv [CSV ROWS]
  kmeans_sklearn.py fit raw|loadtxt|fromstring DATA INIT.csv K MAX_ITER OUT.csv LOG.jsonl [D]
  kmeans_sklearn.py field LOG.jsonl KEY          (KEY: elapsed_s, blas.version, ...)
  kmeans_sklearn.py times LOG.jsonl KEY          KEY of every line, space-separated
  kmeans_sklearn.py cmp A.csv B.csv              prints "max_abs max_rel"

gen: N points of D float64 features, a mixture of K Gaussian blobs drawn with
numpy.random.default_rng(SEED) (overlapping, so that Lloyd does not settle
within a few iterations), written raw little-endian to DATA.f64; INIT.csv: K
rows of the data picked by default_rng(SEED + 1), header x1..xD, "%.17g". With
CSV ROWS: the first ROWS points also as a CSV (header x1..xD, "%.17g": the
same values, bit for bit). Each file is written to a temporary name, then
renamed.

fit: reads DATA (raw float64 with D features, or a CSV with a header line by
numpy.loadtxt or by numpy.fromstring on the text after the header), runs
KMeans(n_clusters=K, init=INIT, n_init=1, max_iter=MAX_ITER, tol=0,
algorithm='lloyd', copy_x=False).fit(X) and writes the centroids to OUT.csv (header
x1..xD, "%.17g", like `mpimap kmeans -o`). Timed from after the imports to
the centroids written: elapsed_s (with read_s, fit_s, write_s); import_s is
the time of the imports. Appends one JSON line to LOG.jsonl: the times,
n_iter, inertia, the reader, and threadpoolctl.threadpool_info() (as
`threadpools`, the first BLAS one also as `blas`, the OpenMP one as
`openmp`); the same line goes to stderr. Stdout: "n_iter inertia" with the
inertia to 10 significant digits (the same bytes in every round: bench.sh
checks that). Thread counts come from OMP_NUM_THREADS (scikit-learn's Lloyd
loop runs on OpenMP threads, its BLAS calls limited to 1 thread inside) and
OPENBLAS_NUM_THREADS.
"""
import time

T_START = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402


def write_atomic(path, writer):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        writer(f)
    os.replace(tmp, path)


def header(d):
    return ",".join("x%d" % (j + 1) for j in range(d))


def write_centroids(path, c):
    write_atomic(path, lambda f: np.savetxt(f, c, fmt="%.17g", delimiter=",",
                                            header=header(c.shape[1]), comments=""))


def gen(args):
    n, d, k, seed = (int(a) for a in args[:4])
    data, init = args[4], args[5]
    rng = np.random.default_rng(seed)
    # Blob centres close together relative to their spread: the clusters
    # overlap and Lloyd's labels keep moving for many iterations.
    centres = rng.uniform(-2.0, 2.0, size=(k, d))
    spread = rng.uniform(0.8, 1.5, size=k)
    labels = rng.integers(0, k, size=n)
    x = rng.standard_normal((n, d))
    x *= spread[labels, None]
    x += centres[labels]
    write_atomic(data, lambda f: x.astype("<f8").tofile(f))
    pick = np.random.default_rng(seed + 1).choice(n, size=k, replace=False)
    write_centroids(init, x[pick])
    if len(args) > 6:
        csv, rows = args[6], int(args[7])
        write_atomic(csv, lambda f: np.savetxt(f, x[:rows], fmt="%.17g", delimiter=",",
                                               header=header(d), comments=""))


def read(reader, path, d):
    if reader == "raw":
        return np.fromfile(path, dtype="<f8").reshape(-1, d)
    if reader == "loadtxt":
        return np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    if reader == "fromstring":
        with open(path, "rb") as f:
            first = f.readline()
            text = f.read()
        d = first.count(b",") + 1
        # numpy's text parser takes one separator: newlines become commas.
        return np.fromstring(text.replace(b"\n", b","), dtype=np.float64, sep=",").reshape(-1, d)
    sys.exit("kmeans_sklearn.py: unknown reader %r" % reader)


def fit(args):
    reader, data, init, k, max_iter, out, log = args[:7]
    d = int(args[7]) if len(args) > 7 else 0
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_info
    t0 = time.perf_counter()
    x = read(reader, data, d)
    t1 = time.perf_counter()
    c0 = np.loadtxt(init, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    # copy_x=False: scikit-learn centres X in place (and restores it) instead
    # of copying it first; the same centroids, bit for bit, and 0.3-0.8 s
    # faster on 1,000,000 x 32 here.
    km = KMeans(n_clusters=int(k), init=c0, n_init=1, max_iter=int(max_iter), tol=0,
                algorithm="lloyd", copy_x=False).fit(x)
    t2 = time.perf_counter()
    write_centroids(out, km.cluster_centers_)
    t3 = time.perf_counter()
    pools = threadpool_info()
    rec = {
        "elapsed_s": round(t3 - t0, 4), "read_s": round(t1 - t0, 4),
        "fit_s": round(t2 - t1, 4), "write_s": round(t3 - t2, 4),
        "import_s": round(t0 - T_START, 4),
        "reader": {"raw": "numpy.fromfile", "loadtxt": "numpy.loadtxt",
                   "fromstring": "numpy.fromstring(sep=',')"}[reader],
        "points": x.shape[0], "features": x.shape[1], "k": int(k),
        "n_iter": int(km.n_iter_), "inertia": float(km.inertia_),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", ""),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", ""),
        "sklearn_version": __import__("sklearn").__version__,
        "numpy_version": np.__version__,
        "blas": next((p for p in pools if p.get("user_api") == "blas"), None),
        "openmp": next((p for p in pools if p.get("user_api") == "openmp"), None),
        "threadpools": pools,
    }
    line = json.dumps(rec)
    with open(log, "a") as f:
        f.write(line + "\n")
    print(line, file=sys.stderr)
    print("%d %.10g" % (km.n_iter_, km.inertia_))


def get(rec, key):
    for part in key.split("."):
        rec = rec.get(part) if isinstance(rec, dict) else None
    return "" if rec is None else rec


def lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def cmp(a, b):
    x = np.loadtxt(a, delimiter=",", skiprows=1, ndmin=2)
    y = np.loadtxt(b, delimiter=",", skiprows=1, ndmin=2)
    if x.shape != y.shape:
        sys.exit("kmeans_sklearn.py: %s is %s, %s is %s" % (a, x.shape, b, y.shape))
    diff = np.abs(x - y)
    scale = np.maximum(np.abs(x), np.abs(y))
    rel = np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0)
    print("%.3g %.3g" % (diff.max(), rel.max()))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "gen" and len(args) in (6, 8):
        gen(args)
    elif cmd == "fit" and len(args) in (7, 8):
        fit(args)
    elif cmd == "field" and len(args) == 2:
        print(get(lines(args[0])[-1], args[1]))
    elif cmd == "times" and len(args) == 2:
        print(" ".join(str(get(r, args[1])) for r in lines(args[0])))
    elif cmd == "cmp" and len(args) == 2:
        cmp(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
