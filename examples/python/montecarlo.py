#!/usr/bin/python3
"""Monte Carlo estimate of pi over one big read-only segment (jobs/montecarlo.yaml).

  montecarlo.py gen FILE MIB   write MIB MiB of uniform (x, y) float64 pairs
                               as a .npy file (the job's `data` segment)
  montecarlo.py sim            one child: counts the points of its share of
                               `data` inside the unit circle, zero-copy
                               (np.load(..., mmap_mode="r") of the segment path),
                               and stores the count in its own slot
                               results[PARALLELRUN_INDEX] of the writable
                               `results` segment
  montecarlo.py reduce FILE    sums the slots, checks them against a direct
                               count over the whole array, prints pi
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prun_segments  # noqa: E402


def gen(path, mib):
    n = int(mib) * (1 << 20) // 16
    rng = np.random.default_rng(20261121)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    np.save(path, rng.random((n, 2)))


def inside(pts):
    return int(np.count_nonzero((pts * pts).sum(axis=1) <= 1.0))


def sim():
    data = np.load(os.environ["PARALLELRUN_SEGMENT_DATA"], mmap_mode="r")
    assert not data.flags.writeable
    i = int(os.environ["PARALLELRUN_INDEX"])
    n = int(os.environ["PARALLELRUN_COUNT"])
    lo, hi = len(data) * i // n, len(data) * (i + 1) // n
    results = prun_segments.attach("results")
    results[i] = inside(data[lo:hi])
    results.flush()


def reduce(path):
    data = prun_segments.attach("data")
    results = prun_segments.attach("results")
    got = float(results.sum())
    want = float(inside(data))
    print("points %d, inside %d, pi ~ %.6f" % (len(data), got, 4 * got / len(data)))
    if got != want:
        sys.exit("mismatch: children found %d, direct count %d" % (got, want))
    if path:
        os.unlink(path)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "gen":
        gen(sys.argv[2], sys.argv[3])
    elif cmd == "sim":
        sim()
    else:
        reduce(sys.argv[2] if len(sys.argv) > 2 else None)
