"""The per-item Python child of the pool benchmark: one item, one process."""
import sys

n = int(sys.argv[1])
assert n * n >= 0
