# The seed tutorial's multiprocessing program ("Concurrency and Multithreading
# in Python"), with the inputs taken from the command line instead of
# [30, 35, 40, 45]. Used by `scripts/bench.sh fib`.
import multiprocessing, sys

def calculate_fibonacci(n):
    if n <= 1:
        return n
    else:
        return calculate_fibonacci(n - 1) + calculate_fibonacci(n - 2)

if __name__ == '__main__':
    num_processes = 4
    pool = multiprocessing.Pool(processes=num_processes)
    input_values = [int(x) for x in sys.argv[1:]]
    results = pool.map(calculate_fibonacci, input_values)
    pool.close()
    pool.join()
    print("Results:", results)
