#!/usr/bin/python3
"""bench/tasks.py - the task-throughput anchors of `scripts/bench.sh tasks`.

  tasks.py serial|futures|pool|mpi4py CHUNKSIZE ITEMS [WORKERS]

Maps fib(n), computed iteratively like `mpimap fib --fast`, over the integers
of ITEMS (one per line) and prints `n<TAB>fib(n)` per item in input order,
the same bytes as `mpimap fib --fast --file ITEMS`.

  serial   one process, map() (no parallelism: the cost of the work itself)
  futures  concurrent.futures.ProcessPoolExecutor(max_workers=WORKERS).map,
           the seed tutorial's concurrent.futures approach
  pool     multiprocessing.Pool(processes=WORKERS).map, the seed tutorial's
           multiprocessing approach; CHUNKSIZE 0 = Pool.map's default
           (ceil(len / (4 * WORKERS)))
  mpi4py   mpi4py.futures.MPIPoolExecutor().map; run it as
           `mpirun -np WORKERS+1 python3 -m mpi4py.futures tasks.py mpi4py ...`
           (one master and WORKERS workers)

WORKERS defaults to 2.
"""
import sys


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def main():
    mode, chunksize, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    workers = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    with open(path) as f:
        items = [int(line) for line in f]
    if mode == "serial":
        results = list(map(fib, items))
    elif mode == "futures":
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(max_workers=workers) as executor:
            results = list(executor.map(fib, items, chunksize=chunksize))
    elif mode == "pool":
        import multiprocessing
        with multiprocessing.Pool(processes=workers) as pool:
            results = pool.map(fib, items, chunksize or None)
    elif mode == "mpi4py":
        from mpi4py.futures import MPIPoolExecutor
        with MPIPoolExecutor() as executor:
            results = list(executor.map(fib, items, chunksize=chunksize))
    else:
        sys.exit("tasks.py: unknown mode %r" % mode)
    sys.stdout.write("".join("%d\t%d\n" % (n, r) for n, r in zip(items, results)))


if __name__ == "__main__":
    main()
