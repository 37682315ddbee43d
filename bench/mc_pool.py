#!/usr/bin/python3
"""The Monte Carlo of jobs/montecarlo.yaml the usual way: a
multiprocessing.Pool whose 8 tasks each get the array as an argument,
pickled and sent through a pipe to the worker. Baseline for bench/segments.sh."""
import multiprocessing
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "examples", "python"))
from montecarlo import inside  # noqa: E402


def sim(data, i, n):
    lo, hi = len(data) * i // n, len(data) * (i + 1) // n
    return inside(data[lo:hi])


if __name__ == "__main__":
    data = np.load(sys.argv[1])
    n = 8
    with multiprocessing.Pool(2) as pool:
        total = sum(pool.starmap(sim, [(data, i, n) for i in range(n)]))
    print("inside", total)
