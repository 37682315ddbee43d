#!/usr/bin/python3
"""Handing arrays back: loader children parse text files into structured
arrays and publish them; a final task attaches them all by name and writes
one HDF5 file (jobs/handback.yaml).

  handback.py gen DIR N     writes DIR/part{0..N-1}.txt (chr pos pct c t)
  handback.py load DIR      child i: np.loadtxt(DIR/part{i}.txt) with a
                            structured dtype, published as segment part{i}
                            with its dtype and shape
  handback.py collect OUT N attaches part0..part{N-1}, writes OUT (HDF5 with
                            h5py; .npz if h5py is missing), checks it back
"""
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prun_segments  # noqa: E402

DTYPE = np.dtype([("chr", "S10"), ("pos", "<i4"), ("pct", "<f4"),
                  ("c", "<i4"), ("t", "<i4")])


def gen(d, n):
    rng = np.random.default_rng(11)
    os.makedirs(d, exist_ok=True)
    for i in range(n):
        rows = int(rng.integers(500, 2000))
        with open(os.path.join(d, "part%d.txt" % i), "w") as f:
            for r in range(rows):
                c, t = int(rng.integers(0, 50)), int(rng.integers(0, 50))
                f.write("chr%d\t%d\t%.4f\t%d\t%d\n" % (
                    rng.integers(1, 23), 1000 * i + r, c / max(c + t, 1), c, t))


def load(d):
    i = int(os.environ["PARALLELRUN_INDEX"])
    arr = np.loadtxt(os.path.join(d, "part%d.txt" % i), dtype=DTYPE, ndmin=1)
    prun_segments.publish("part%d" % i, arr)


def collect(out, n):
    parts = [prun_segments.attach("part%d" % i) for i in range(n)]
    for p in parts:
        assert p.dtype == DTYPE and not p.flags.writeable
    try:
        import h5py
        with h5py.File(out, "w") as f:
            for i, p in enumerate(parts):
                f.create_dataset("part%d" % i, data=p)
        with h5py.File(out, "r") as f:
            back = [f["part%d" % i][()] for i in range(n)]
    except ImportError:
        out = os.path.splitext(out)[0] + ".npz"
        np.savez(out, **{"part%d" % i: p for i, p in enumerate(parts)})
        back = [np.load(out)["part%d" % i] for i in range(n)]
    for p, b in zip(parts, back):
        if not np.array_equal(p, b):
            sys.exit("round trip differs")
    print("%s: %d parts, %d rows" % (out, n, sum(len(p) for p in parts)))


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "load":
        load(sys.argv[2])
    elif sys.argv[1] == "collect":
        collect(sys.argv[2], int(sys.argv[3]))
        shutil.rmtree(os.path.dirname(sys.argv[2]) + "/txt", ignore_errors=True)
