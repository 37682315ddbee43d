#!/usr/bin/python3
"""The seed workloads the way the seeds did them, for bench/seed.py:

  seed_baseline.py genome DIR N OUT     N loader Processes: np.loadtxt,
        copy into a multiprocessing.shared_memory block, (name, dtype,
        shape) through a Queue; the parent attaches each, writes HDF5,
        then close() + unlink()
  seed_baseline.py ragged-fork FILE W SAMPLES   the parent reads FILE into
        memory; a fork Pool of W workers samples it copy-on-write
  seed_baseline.py ragged-shm FILE W SAMPLES    the parent copies FILE into
        a shared_memory block; a Pool of W workers attaches it by name
  seed_baseline.py http PORT RATE DB N  a Pool of 4 fetches with retries,
        the parent INSERTs the rows into SQLite

Same Monte Carlo and HTTP code as examples/python/seeds.py. Shared memory
names start with "seedbench_" so the bench can count what is left.
"""
import multiprocessing as mp
import os
import sys
from multiprocessing import shared_memory

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "examples", "python"))
import seeds  # noqa: E402

DATA = None


def genome_loader(d, i, q):
    arr = np.loadtxt(os.path.join(d, "part%d.txt" % i), dtype=seeds.GENOME,
                     ndmin=1)
    shm = shared_memory.SharedMemory(
        name="seedbench_%d_%d" % (os.getppid(), i), create=True,
        size=max(arr.nbytes, 1))
    np.ndarray(arr.shape, arr.dtype, buffer=shm.buf)[...] = arr
    q.put((i, shm.name, arr.dtype.descr, arr.shape))
    shm.close()
    seeds.mark()


def genome(d, n, out):
    import h5py
    n = int(n)
    q = mp.Queue()
    procs = [mp.Process(target=genome_loader, args=(d, i, q))
             for i in range(n)]
    for p in procs:
        p.start()
    rows = 0
    with h5py.File(out, "w") as f:
        for _ in range(n):
            i, name, descr, shape = q.get()  # as the seeds do: no timeout
            shm = shared_memory.SharedMemory(name=name)
            a = np.ndarray(shape, np.lib.format.descr_to_dtype(descr),
                           buffer=shm.buf)
            f.create_dataset("part%d" % i, data=a)
            rows += len(a)
            del a
            shm.close()
            shm.unlink()
    for p in procs:
        p.join()
    print("genome: %d rows" % rows)


def ragged_work(args):
    i, samples, name = args
    if name is None:
        buf = DATA
    else:
        shm = shared_memory.SharedMemory(name=name)
        buf = np.ndarray(shm.size, np.uint8, buffer=shm.buf)
    offsets, values = seeds.ragged_view(buf)
    r = seeds.ragged_sample(offsets, values, i, samples)
    seeds.mark()
    if name is not None:
        del offsets, values, buf
        shm.close()
    return r


def ragged(mode, path, w, samples):
    global DATA
    w, samples = int(w), int(samples)
    shm, name = None, None
    if mode == "fork":
        DATA = np.fromfile(path, dtype=np.uint8)
    else:
        size = os.path.getsize(path)
        shm = shared_memory.SharedMemory(
            name="seedbench_%d" % os.getpid(), create=True, size=size)
        with open(path, "rb") as f:
            f.readinto(shm.buf)
        name = shm.name
    with mp.get_context("fork").Pool(w) as pool:
        parts = pool.map(ragged_work, [(i, samples, name) for i in range(w)])
    total = np.sum(parts, axis=0)
    if shm is not None:
        shm.close()
        shm.unlink()
    print("ragged: sampled sum %.3f, full sums %.3f" % (total[0], total[1]))


def http_job(args):
    port, item = args
    a = seeds.fetch("http://127.0.0.1:%s/item/%d" % (port, item))
    if item == 0:
        seeds.mark()
    return a["id"], a["square"]


def http(port, rate, db, n):
    n = int(n)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.unlink(db + suffix)
    srv, _ = seeds.make_server(port, rate)
    conn = seeds.db_open(db)
    with mp.get_context("fork").Pool(4) as pool:
        for row in pool.imap_unordered(http_job, [(port, i) for i in range(n)],
                                       chunksize=8):
            conn.execute("INSERT OR IGNORE INTO rows VALUES (?, ?, 'p')", row)
    srv.shutdown()
    got = conn.execute("SELECT COUNT(DISTINCT id), COUNT(*) FROM rows").fetchone()
    assert got == (n, n), got
    print("http: %d rows" % n)


if __name__ == "__main__":
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "genome":
        genome(*a)
    elif cmd == "ragged-fork":
        ragged("fork", *a)
    elif cmd == "ragged-shm":
        ragged("shm", *a)
    elif cmd == "http":
        http(*a)
