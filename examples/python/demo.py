#!/usr/bin/python3
"""The demo's children (jobs/demo.yaml), with the `parallelrun` package.

  demo.py prepare FILE MIB  writes a float64 .npy of MIB MiB
  demo.py read              one of 4 readers: maps segment 'data' (no
                            copy), sums all of it, reports its memory,
                            publishes a histogram of its quarter as
                            'hist<index>' and waits for the watcher
  demo.py watch             reads the live run with `parallelrun status`
                            while the 4 readers hold the array
  demo.py report            attaches hist0..hist3 by name, adds them up
"""
import os
import subprocess
import sys
import time

import numpy as np

import parallelrun as pr

MIB = 2**20


def smaps_of(path_prefix):
    """(Rss, Pss) in bytes of this process's mappings of the segment."""
    rss = pss = 0
    cur = False
    with open("/proc/self/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5:
                cur = len(parts) >= 6 and parts[5].startswith(path_prefix)
            elif cur and parts[0] == "Rss:":
                rss += int(parts[1]) * 1024
            elif cur and parts[0] == "Pss:":
                pss += int(parts[1]) * 1024
    return rss, pss


def private_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def prepare(path, mib):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    n = int(mib) * MIB // 8
    np.save(path, np.random.default_rng(1).standard_normal(n))


def read():
    i, n = int(os.environ["PARALLELRUN_INDEX"]), int(os.environ["PARALLELRUN_COUNT"])
    before = private_kib()
    t0 = time.perf_counter()
    a = pr.segment("data")
    attach_ms = (time.perf_counter() - t0) * 1000
    total = float(a.sum())            # touches every page of the array
    q = np.array_split(a, n)[i]
    hist, _ = np.histogram(q, bins=8, range=(-4, 4))
    pr.publish("hist%d" % i, hist)
    pr.progress(1, 1)
    pr.barrier("mapped")              # all 4 hold the array now
    rss, pss = smaps_of("/memfd:parallelrun:data")
    print("read[%d]: attached %.0f MiB %s %s in %.2f ms; sum %.3f; "
          "Rss %.0f MiB, Pss %.0f MiB (1/%d: one copy shared); private "
          "memory +%.1f MiB; published hist%d"
          % (i, a.nbytes / MIB, a.dtype, a.shape, attach_ms, total, rss / MIB,
             pss / MIB, round(rss / pss) if pss else 0,
             (private_kib() - before - hist.nbytes / 1024) / 1024, i))
    pr.queue("mapped").push(str(pss))
    pr.queue("go").pop(timeout=60)    # hold it until the watcher looked


def watch():
    n, pss = 4, 0
    for _ in range(n):
        v = pr.queue("mapped").pop(timeout=60)
        if v is None:
            sys.exit("watch: the readers did not report")
        pss += int(v)
    print("watch: `parallelrun status %s` while the readers run:"
          % os.environ["PARALLELRUN_RUN_ID"])
    sys.stdout.flush()
    subprocess.run([os.environ.get("PARALLELRUN_BIN", "parallelrun"),  # the runner sets it
                    "status", os.environ["PARALLELRUN_RUN_ID"]], check=False)
    print("watch: total Pss of the segment in the %d readers: %.0f MiB"
          % (n, pss / MIB))
    pr.queue("go").push(*["go"] * n)


def report():
    parts = [pr.segment("hist%d" % i) for i in range(4)]
    total = sum(p.astype(np.int64) for p in parts)
    print("report: attached hist0..hist3 by name (%s, shape %s, read-only: "
          "%s)" % (parts[0].dtype, parts[0].shape, not parts[0].flags.writeable))
    print("report: histogram of all values in [-4, 4), 8 bins:", total.tolist())
    print("report: %d values counted" % total.sum())


if __name__ == "__main__":
    {"prepare": lambda: prepare(*sys.argv[2:4]), "read": read,
     "watch": watch, "report": report}[sys.argv[1]]()
