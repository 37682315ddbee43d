"""Pool-mode Python child of the queue benchmark: each item sleeps
SLEEP_MS milliseconds; at the end the worker appends "FIRST LAST" (the
wall-clock times of its first item and of its loop's end) to $TAIL_LOG,
so bench/queue.sh can see how long the run outlived its last item."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "python"))
import parallelrun as prun  # noqa: E402  (the package make install puts in place)

delay = float(os.environ.get("SLEEP_MS", "1")) / 1000.0
first = None
for index, item in prun.items():
    if first is None:
        first = time.time()
    time.sleep(delay)
with open(os.environ["TAIL_LOG"], "a") as f:
    f.write("%f %f\n" % (first or time.time(), time.time()))
