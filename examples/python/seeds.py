#!/usr/bin/python3
"""The three seed workloads of parallelrun's numpy users, as children of
jobs/seed-*.yaml, written with the `parallelrun` package. bench/seed.sh
runs them against the way the seeds did it (bench/seed_baseline.py).

Genome hand-back (jobs/seed-genome.yaml):
  seeds.py genome-gen DIR N ROWS    N text files "chr pos pct c t"
  seeds.py genome-load DIR          loader i: np.loadtxt(DIR/part{i}.txt)
                                    with the structured dtype, published
                                    as segment part{i}
  seeds.py genome-reduce DIR N OUT  attaches part0.. by name, writes OUT
                                    (HDF5, h5py), checks it

Ragged Monte Carlo (jobs/seed-ragged.yaml):
  seeds.py ragged-gen FILE N MIB    N float64 sub-arrays of random lengths
                                    totalling MIB MiB, one file: an
                                    offsets table then the values
  seeds.py ragged-sim SAMPLES       worker i: SAMPLES draws of (sub-array,
                                    element), zero-copy from segment
                                    'ragged'; publishes its partial sums
  seeds.py ragged-reduce N          adds the workers' sums, checks them

HTTP to SQLite (jobs/seed-http.yaml):
  seeds.py http-serve PORT RATE     a local API: GET /item/N, at most RATE
                                    answers per second (429 beyond), 503
                                    once for every 7th id
  seeds.py http-work PORT DB        pool worker: fetch with retries and
                                    backoff, INSERT the row (id primary
                                    key: a redelivered item is not a
                                    second row)
  seeds.py http-check DB N          every id 0..N-1 exactly once
"""
import http.server
import json
import os
import sqlite3
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np

import parallelrun as pr

GENOME = np.dtype([("chr", "S10"), ("pos", "<i4"), ("pct", "<f4"),
                   ("c", "<i4"), ("t", "<i4")])
MAGIC = b"RAGGED64"


def mark():
    """bench/seed.sh kills a process once it has its memory: say so."""
    d = os.environ.get("SEED_MARK")
    if d:
        open(os.path.join(d, str(os.getpid())), "w").close()
        time.sleep(float(os.environ.get("SEED_HOLD", "0")))


# ---- genome ----

def genome_gen(d, n, rows):
    rng = np.random.default_rng(3)
    os.makedirs(d, exist_ok=True)
    for i in range(int(n)):
        r = int(rows)
        c = rng.integers(0, 60, r)
        t = rng.integers(0, 60, r)
        pct = c / np.maximum(c + t, 1)
        chrs = rng.integers(1, 23, r)
        pos = np.sort(rng.integers(0, 250_000_000, r))
        with open(os.path.join(d, "part%d.txt" % i), "w") as f:
            f.writelines("chr%d\t%d\t%.4f\t%d\t%d\n" % x
                         for x in zip(chrs, pos, pct, c, t))


def genome_load(d):
    i = int(os.environ["PARALLELRUN_INDEX"])
    arr = np.loadtxt(os.path.join(d, "part%d.txt" % i), dtype=GENOME, ndmin=1)
    pr.publish("part%d" % i, arr)
    mark()


def genome_reduce(d, n, out):
    import h5py
    rows = 0
    with h5py.File(out, "w") as f:
        for i in range(int(n)):
            a = pr.segment("part%d" % i)
            assert a.dtype == GENOME and not a.flags.writeable
            f.create_dataset("part%d" % i, data=a)
            rows += len(a)
    with h5py.File(out) as f:
        assert sum(len(f[k]) for k in f) == rows
    print("genome: %d rows from %s loaders in %s" % (rows, n, out))


# ---- ragged ----

def ragged_view(buf):
    """(offsets, values) views into a uint8 buffer, without a copy."""
    if bytes(buf[:8]) != MAGIC:
        raise SystemExit("not a ragged file")
    n = int(buf[8:16].view("<u8")[0])
    offsets = buf[16:16 + 8 * (n + 1)].view("<u8")
    start = 16 + 8 * (n + 1)
    return offsets, buf[start:start + 8 * int(offsets[n])].view("<f8")


def ragged_gen(path, n, mib):
    n, total = int(n), int(mib) * 2**20 // 8
    rng = np.random.default_rng(5)
    w = rng.random(n)
    lengths = np.maximum(1, (w / w.sum() * total).astype(np.int64))
    offsets = np.zeros(n + 1, "<u8")
    np.cumsum(lengths, out=offsets[1:])
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(MAGIC + np.array([n], "<u8").tobytes() + offsets.tobytes())
        left, chunk = int(offsets[-1]), 1 << 24
        while left:
            k = min(left, chunk)
            f.write(rng.random(k).astype("<f8").tobytes())
            left -= k


def ragged_sample(offsets, values, seed, samples):
    """The Monte Carlo step shared with the baseline: sums of random
    elements of random sub-arrays."""
    rng = np.random.default_rng(seed)
    n = len(offsets) - 1
    ks = rng.integers(0, n, samples)
    lo, hi = offsets[ks].astype(np.int64), offsets[ks + 1].astype(np.int64)
    idx = lo + (rng.random(samples) * (hi - lo)).astype(np.int64)
    # Also a full pass over a few sub-arrays, so pages are really read.
    full = sum(float(values[offsets[k]:offsets[k + 1]].sum())
               for k in ks[:64])
    return np.array([values[idx].sum(), full])


def ragged_sim(samples):
    offsets, values = ragged_view(pr.segment("ragged"))
    i = int(os.environ["PARALLELRUN_INDEX"])
    pr.publish("mc%d" % i, ragged_sample(offsets, values, i, int(samples)))
    mark()


def ragged_reduce(n):
    parts = [pr.segment("mc%d" % i) for i in range(int(n))]
    total = np.sum(parts, axis=0)
    print("ragged: %d workers, sampled sum %.3f, full sums %.3f"
          % (len(parts), total[0], total[1]))


# ---- http ----

def make_server(port, rate):
    """The rate-limited API on 127.0.0.1:port, serving in a thread;
    returns (server, set of ids answered)."""
    rate = float(rate)
    lock, seen = threading.Lock(), set()
    bucket = {"tokens": rate, "t": time.monotonic()}

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            parts = self.path.strip("/").split("/")
            if len(parts) != 2 or parts[0] != "item" or not parts[1].isdigit():
                return self.send_error(404)
            n = int(parts[1])
            with lock:
                now = time.monotonic()
                bucket["tokens"] = min(rate, bucket["tokens"] +
                                       (now - bucket["t"]) * rate)
                bucket["t"] = now
                if bucket["tokens"] < 1:
                    limited = True
                else:
                    limited = False
                    bucket["tokens"] -= 1
                first = n not in seen
                if not limited:
                    seen.add(n)
            if limited:
                self.send_response(429)
                self.send_header("Retry-After", "0.05")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if first and n % 7 == 0:
                return self.send_error(503, "try again")
            body = json.dumps({"id": n, "square": n * n}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, seen


def http_serve(port, rate):
    srv, seen = make_server(port, rate)
    pr.counter("http-ready", 1)
    pr.queue("stop").pop(timeout=3600)
    srv.shutdown()
    print("http: served %d ids" % len(seen))


def fetch(url, attempts=12):
    delay = 0.02
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            if e.code not in (429, 503) or attempt == attempts - 1:
                raise
        except (urllib.error.URLError, ConnectionError):
            if attempt == attempts - 1:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def db_open(path):
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, "
               "square INTEGER NOT NULL, worker TEXT)")
    return db


def http_work(port, dbpath):
    while pr.counter("http-ready", 0) < 1:
        time.sleep(0.05)
    db = db_open(dbpath)
    me = os.environ.get("PARALLELRUN_INDEX", "?")
    done = 0
    for _, item in pr.items():
        a = fetch("http://127.0.0.1:%s/item/%s" % (port, item))
        # id is the primary key: an item handed again after a worker died
        # does not become a second row.
        db.execute("INSERT OR IGNORE INTO rows VALUES (?, ?, ?)",
                   (a["id"], a["square"], me))
        if done == 0 and me == "0":
            mark()
        done += 1
        pr.progress(done)


def http_check(dbpath, n):
    pr.queue("stop").push("now")
    db = db_open(dbpath)
    got = db.execute("SELECT COUNT(*), COUNT(DISTINCT id), MIN(id), MAX(id), "
                     "SUM(square = id * id) FROM rows").fetchone()
    n = int(n)
    if got != (n, n, 0, n - 1, n):
        raise SystemExit("http: rows %r, want %d rows 0..%d" % (got, n, n - 1))
    print("http: %d rows, each id exactly once" % n)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"genome-gen": genome_gen, "genome-load": genome_load,
     "genome-reduce": genome_reduce, "ragged-gen": ragged_gen,
     "ragged-sim": ragged_sim, "ragged-reduce": ragged_reduce,
     "http-serve": http_serve, "http-work": http_work,
     "http-check": http_check}[cmd](*args)
