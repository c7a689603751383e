#!/usr/bin/python3
"""bench/exec_pool.py - the process-pool anchor of scripts/bench-exec.sh.

    exec_pool.py [--workers N] ITEMS -- PROGRAM [ARG...]

The seeds' approach (concurrent.futures.ProcessPoolExecutor(max_workers=N),
default 2, and executor.map) applied to running a program per item: each
worker calls subprocess.run([PROGRAM, ARG..., ITEM]) (no shell; PATH search)
for one item at a time (map's default chunksize 1), the task's stdout
captured and written out whole, in item order (like `mpimap exec`'s grouped
output); its stderr is inherited. Items: the lines of ITEMS, empty lines
skipped. Exit status 1 when any task exited with a status other than 0.
"""
import argparse
import concurrent.futures
import subprocess
import sys


def run(argv):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    return r.returncode, r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("items")
    ap.add_argument("command", nargs="+")
    a = ap.parse_args()
    with open(a.items) as f:
        items = [line.rstrip("\n") for line in f]
    argvs = [a.command + [item] for item in items if item]
    failed = 0
    out = sys.stdout.buffer
    with concurrent.futures.ProcessPoolExecutor(max_workers=a.workers) as ex:
        for status, data in ex.map(run, argvs):
            out.write(data)
            failed += status != 0
    out.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
