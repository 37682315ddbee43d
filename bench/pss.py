#!/usr/bin/python3
"""pss.py OUTFILE CMD...: runs CMD, samples the summed Pss of CMD and all its
descendants (from /proc/PID/smaps_rollup) every 20 ms, and writes
"wall_s peak_pss_kib" to OUTFILE. Used by bench/segments.sh."""
import os
import subprocess
import sys
import time


def children(pid):
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def pss(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_pss(root, only):
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        todo += children(p)
        if only:
            try:
                with open("/proc/%d/comm" % p) as f:
                    if f.read().strip() not in only:
                        continue
            except OSError:
                continue
        total += pss(p)
    return total


def main():
    out = sys.argv[1]
    only = set(os.environ.get("PSS_ONLY", "").split())
    t0 = time.monotonic()
    proc = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_pss(proc.pid, only))
        time.sleep(0.02)
    wall = time.monotonic() - t0
    with open(out, "w") as f:
        f.write("%.3f %d\n" % (wall, peak))
    sys.exit(proc.returncode)


main()
