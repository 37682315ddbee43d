"""The pool-mode Python child of the pool benchmark: many items, one process."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "python"))
import parallelrun as prun  # noqa: E402  (the package make install puts in place)

for index, item in prun.items():
    n = int(item)
    assert n * n >= 0
