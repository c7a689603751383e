# The seed tutorials' concurrent.futures approach ("Harnessing the Power of
# Concurrency and Parallelism in Python": ProcessPoolExecutor(max_workers=4)
# and executor.map) applied to the other seed's CPU-bound
# calculate_fibonacci, inputs from the command line. Used by
# `scripts/bench.sh fib`.
from concurrent.futures import ProcessPoolExecutor
import sys

def calculate_fibonacci(n):
    if n <= 1:
        return n
    else:
        return calculate_fibonacci(n - 1) + calculate_fibonacci(n - 2)

if __name__ == '__main__':
    input_values = [int(x) for x in sys.argv[1:]]
    with ProcessPoolExecutor(max_workers=4) as executor:
        results = executor.map(calculate_fibonacci, input_values)
    print("Results:", list(results))
