#!/usr/bin/python3
"""Ragged data: ~10,000 float32 arrays of different lengths in ONE segment
(jobs/ragged.yaml), read zero-copy by every child.

One segment with an offsets table, not one segment per array: each mapping
costs a VMA and vm.max_map_count is about 65k. Layout (little-endian):

  offset 0   8 bytes   magic b"RAGGED01"
  offset 8   uint64    n, the number of arrays
  offset 16  uint64    offsets[n + 1]: array k is values[offsets[k]:offsets[k+1]]
  then       float32   values[offsets[n]]

  ragged.py gen FILE N      writes N arrays of 0..199 values
  ragged.py read            child PARALLELRUN_INDEX of PARALLELRUN_COUNT: sums
                            its share of the arrays into sums[k] (writable)
  ragged.py check FILE      compares sums with a direct pass over FILE
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prun_segments  # noqa: E402


def view(buf):
    """(offsets, values) views into buf, a uint8 array, without copying."""
    if bytes(buf[:8]) != b"RAGGED01":
        sys.exit("not a ragged segment")
    n = int(buf[8:16].view("<u8")[0])
    offsets = buf[16:16 + 8 * (n + 1)].view("<u8")
    start = 16 + 8 * (n + 1)
    values = buf[start:start + 4 * int(offsets[n])].view("<f4")
    return offsets, values


def gen(path, n):
    rng = np.random.default_rng(7)
    lengths = rng.integers(0, 200, size=n)
    offsets = np.zeros(n + 1, dtype="<u8")
    np.cumsum(lengths, out=offsets[1:])
    values = rng.random(int(offsets[-1]), dtype=np.float32)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"RAGGED01")
        f.write(np.array([n], dtype="<u8").tobytes())
        f.write(offsets.tobytes())
        f.write(values.astype("<f4").tobytes())


def read():
    buf = prun_segments.attach("ragged")
    assert not buf.flags.writeable
    offsets, values = view(buf)
    sums = prun_segments.attach("sums")
    n = len(offsets) - 1
    i, count = int(os.environ["PARALLELRUN_INDEX"]), int(os.environ["PARALLELRUN_COUNT"])
    for k in range(n * i // count, n * (i + 1) // count):
        sums[k] = values[offsets[k]:offsets[k + 1]].sum(dtype=np.float64)
    sums.flush()


def check(path):
    offsets, values = view(np.fromfile(path, dtype=np.uint8))
    sums = prun_segments.attach("sums")
    n = len(offsets) - 1
    want = np.array([values[offsets[k]:offsets[k + 1]].sum(dtype=np.float64)
                     for k in range(n)])
    if not np.array_equal(sums[:n], want):
        sys.exit("sums differ")
    print("%d ragged arrays, %d values, all sums match" % (n, len(values)))
    os.unlink(path)


if __name__ == "__main__":
    {"gen": lambda: gen(sys.argv[2], int(sys.argv[3])), "read": read,
     "check": lambda: check(sys.argv[2])}[sys.argv[1]]()
