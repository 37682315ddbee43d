#!/usr/bin/python3
"""A pool-mode HTTP worker: takes ids with prun.items() (no process start
per item), fetches http://127.0.0.1:PORT/item/ID with retries and
exponential backoff, and writes each answer to OUTDIR/ID.json.

    http_worker.py PORT OUTDIR
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prun  # noqa: E402

port, outdir = int(sys.argv[1]), sys.argv[2]
os.makedirs(outdir, exist_ok=True)


def fetch(url, attempts=8):
    delay = 0.02
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.load(r)
        except (urllib.error.URLError, ConnectionError) as e:
            if attempt == attempts - 1:
                raise RuntimeError("%s: %s" % (url, e))
            time.sleep(delay)
            delay *= 2


done = 0
for index, item in prun.items():
    answer = fetch("http://127.0.0.1:%d/item/%s" % (port, item))
    if answer["square"] != int(item) ** 2:
        sys.exit("wrong answer for %s: %r" % (item, answer))
    with open(os.path.join(outdir, "%s.json" % item), "w") as f:
        json.dump(answer, f)
    done += 1
    prun.progress(done)
print("worker %s fetched %d" % (os.environ["PARALLELRUN_INDEX"], done))
