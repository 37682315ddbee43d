#!/usr/bin/python3
"""bench/seed.py: the seed workloads, parallelrun against the way the seeds
do it (bench/seed_baseline.py), and file segments copied into a memfd vs
`copy: false` vs plain np.load(mmap_mode="r"). Run by bench/seed.sh.

For every row: wall time (median of SEED_REPS=3 normal runs) and peak
total PSS of the whole process tree (sampled every 50 ms from
/proc/PID/smaps_rollup; the embedded redis-server, a daemon, is not in
the tree); then
what is left in /dev/shm (entries, bytes) after a normal end, after one
worker is SIGKILLed once it holds its memory, and after the parent (the
runner, or the seed's main process) is SIGKILLed at that moment; for
parallelrun also after `parallelrun gc`. Workers say when they hold their
memory by creating $SEED_MARK/PID (then wait $SEED_HOLD s). Leftovers
are counted once cleanup settled (at most 5 s after the last process of
the run's session exited): the seeds' resource tracker and parallelrun's
guardian both clean up asynchronously.

Environment: SEED_GENOME_ROWS (200000), SEED_RAGGED_MIB (1024),
SEED_NPY_MIB (1024), SEED_HTTP_ITEMS (1000), SEED_ONLY (row name prefix).
"""
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.environ.get("BUILD", "build")
PR = os.path.join(ROOT, BUILD, "parallelrun")
PY = "/usr/bin/python3"
SHM = "/dev/shm"
BASE = os.path.join(SHM, "seedbench-prun-%d" % os.getpid())
OUT = os.path.join(ROOT, "bench", "out")
ROWS = int(os.environ.get("SEED_GENOME_ROWS", "200000"))
RMIB = int(os.environ.get("SEED_RAGGED_MIB", "1024"))
NMIB = int(os.environ.get("SEED_NPY_MIB", "1024"))
ITEMS = int(os.environ.get("SEED_HTTP_ITEMS", "1000"))
SAMPLES = 2000000
TIMEOUT = 60
REPS = int(os.environ.get("SEED_REPS", "3"))


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
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_pss(root):
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        todo += children(p)
        total += pss(p)
    return total


def session_pids(sid):
    pids = []
    for d in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(d) as f:
                st = f.read()
            fields = st[st.rindex(")") + 2:].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                pids.append(int(d.split("/")[2]))
        except (OSError, ValueError):
            pass
    return pids


def leftovers():
    """(entries, bytes) the bench's runs left in /dev/shm."""
    n = size = 0
    for p in glob.glob(os.path.join(SHM, "seedbench_*")):
        n += 1
        size += os.path.getsize(p)
    for dirpath, dirs, files in os.walk(BASE):
        for d in dirs:
            n += 1
        for f in files:
            if f not in ("owner",):
                n += 1
                size += os.path.getsize(os.path.join(dirpath, f))
    return n, size


def clean_shm():
    for p in glob.glob(os.path.join(SHM, "seedbench_*")):
        os.unlink(p)
    if os.path.isdir(BASE):
        shutil.rmtree(BASE)
    os.makedirs(BASE)


def run(cmd, kill=None):
    """Runs cmd in its own session. kill: None, "child" or "parent".
    Returns (wall, peak_pss, status, note)."""
    marks = tempfile.mkdtemp(prefix="seedmark-")
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"),
               PARALLELRUN_SHM_BASE=BASE, OMP_NUM_THREADS="1",
               SEED_MARK=marks, SEED_HOLD="3" if kill else "0")
    t0 = time.monotonic()
    errf = tempfile.TemporaryFile()
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=errf)
    peak, note, killed = 0, "", False
    while p.poll() is None and time.monotonic() - t0 < TIMEOUT:
        if kill is None:
            peak = max(peak, tree_pss(p.pid))
        elif not killed and os.listdir(marks):
            victim = p.pid if kill == "parent" else int(os.listdir(marks)[0])
            os.kill(victim, signal.SIGKILL)
            killed = True
        time.sleep(0.05)
    wall = time.monotonic() - t0
    if p.poll() is None:
        note = "hung: killed after %d s" % TIMEOUT
        os.kill(p.pid, signal.SIGKILL)
    p.wait()
    # What the parent left running (orphans of a killed parent).
    deadline = time.monotonic() + 60
    while session_pids(p.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in session_pids(p.pid):
        os.kill(pid, signal.SIGKILL)
        note += " orphan %d killed" % pid
    shutil.rmtree(marks)
    if kill is None and p.returncode != 0:
        errf.seek(0)
        tail = errf.read()[-2000:].decode(errors="replace")
        sys.stderr.write("%s: exit %d\n%s\n" % (" ".join(cmd), p.returncode,
                                                 tail))
    errf.close()
    return wall, peak, p.returncode, note.strip()


def settled_leftovers():
    """leftovers() once cleanup has had up to 5 s: the seeds' resource
    tracker and parallelrun's guardian both clean up asynchronously."""
    t0 = time.monotonic()
    while True:
        left = leftovers()
        if left[0] == 0 or time.monotonic() - t0 > 5:
            return left
        time.sleep(0.1)


def fmt_left(entries, size):
    return "0" if entries == 0 else "%d (%.0f MB)" % (entries, size / 1e6)


def job(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def main():
    os.makedirs(OUT, exist_ok=True)
    work = os.path.join(OUT, "seed")
    os.makedirs(work, exist_ok=True)
    seeds = [PY, "examples/python/seeds.py"]
    base = [PY, "bench/seed_baseline.py"]
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    gdir, rbin = os.path.join(work, "genome"), os.path.join(work, "ragged.bin")
    npy = os.path.join(work, "big.npy")
    subprocess.run(seeds + ["genome-gen", gdir, "4", str(ROWS)], env=env,
                   check=True, cwd=ROOT)
    subprocess.run(seeds + ["ragged-gen", rbin, "10000", str(RMIB)], env=env,
                   check=True, cwd=ROOT)
    subprocess.run([PY, "-c", "import numpy as np, sys; np.save(sys.argv[1], "
                    "np.ones(%d * 2**20 // 8))" % NMIB, npy], check=True)
    subprocess.run(["cat", rbin, npy], stdout=subprocess.DEVNULL, check=True)

    jg = job(os.path.join(work, "genome.yaml"), """version: 1
name: seed-genome-bench
tasks:
  load:
    foreach: {range: [0, 4]}
    run: [%(py)s, examples/python/seeds.py, genome-load, %(d)s]
  reduce:
    needs: [load]
    run: [%(py)s, examples/python/seeds.py, genome-reduce, %(d)s, "4", %(d)s/all.h5]
""" % {"py": PY, "d": gdir})
    rag = """version: 1
name: seed-ragged-bench
segments:
  ragged: {file: %(f)s%(copy)s}
tasks:
  sim:
    foreach: {range: [0, 4]}
    segments: [ragged]
    run: [%(py)s, examples/python/seeds.py, ragged-sim, "%(s)d"]
  reduce:
    needs: [sim]
    run: [%(py)s, examples/python/seeds.py, ragged-reduce, "4"]
"""
    jr = job(os.path.join(work, "ragged.yaml"),
             rag % {"py": PY, "f": rbin, "copy": "", "s": SAMPLES})
    jrn = job(os.path.join(work, "ragged-nocopy.yaml"),
              rag % {"py": PY, "f": rbin, "copy": ", copy: false",
                     "s": SAMPLES})
    jh = job(os.path.join(work, "http.yaml"), """version: 1
name: seed-http-bench
jobs: 6
tasks:
  serve:
    run: [%(py)s, examples/python/seeds.py, http-serve, "18183", "1000"]
  fetch:
    pool: true
    jobs: 4
    retries: 2
    foreach: {range: [0, %(n)d]}
    run: [%(py)s, examples/python/seeds.py, http-work, "18183", %(db)s]
  check:
    needs: [fetch]
    run: [%(py)s, examples/python/seeds.py, http-check, %(db)s, "%(n)d"]
""" % {"py": PY, "n": ITEMS, "db": os.path.join(work, "prun.db")})
    nj = """version: 1
name: seed-npy-bench
%(segs)s
tasks:
  sum:
    foreach: {range: [0, 4]}
    %(use)s
    run: [%(py)s, -c, 'import os, numpy as np; a = np.load(os.environ.get("PARALLELRUN_SEGMENT_BIG", "%(f)s"), mmap_mode="r"); print(float(a.sum()))']
"""
    jn1 = job(os.path.join(work, "npy-memfd.yaml"), nj % {
        "segs": "segments:\n  big: {file: %s}" % npy, "use": "segments: [big]",
        "py": PY, "f": npy})
    jn2 = job(os.path.join(work, "npy-nocopy.yaml"), nj % {
        "segs": "segments:\n  big: {file: %s, copy: false}" % npy,
        "use": "segments: [big]", "py": PY, "f": npy})
    jn3 = job(os.path.join(work, "npy-plain.yaml"), nj % {
        "segs": "", "use": "", "py": PY, "f": npy})

    rows = [
        ("genome", "parallelrun publish", [PR, "run", jg, "--quiet"], True),
        ("genome", "shared_memory + Queue",
         base + ["genome", gdir, "4", os.path.join(gdir, "b.h5")], False),
        ("ragged %d MiB" % RMIB, "parallelrun (memfd)",
         [PR, "run", jr, "--quiet"], True),
        ("ragged %d MiB" % RMIB, "parallelrun copy: false",
         [PR, "run", jrn, "--quiet"], True),
        ("ragged %d MiB" % RMIB, "Pool fork copy-on-write",
         base + ["ragged-fork", rbin, "4", str(SAMPLES)], False),
        ("ragged %d MiB" % RMIB, "shared_memory + Pool",
         base + ["ragged-shm", rbin, "4", str(SAMPLES)], False),
        ("http %d -> sqlite" % ITEMS, "parallelrun pool",
         [PR, "run", jh, "--quiet"], True),
        ("http %d -> sqlite" % ITEMS, "Pool + parent writes",
         base + ["http", "18184", "1000", os.path.join(work, "base.db"),
                 str(ITEMS)], False),
        ("npy %d MiB, 4 x sum" % NMIB, "parallelrun (memfd)",
         [PR, "run", jn1, "--quiet"], True),
        ("npy %d MiB, 4 x sum" % NMIB, "parallelrun copy: false",
         [PR, "run", jn2, "--quiet"], True),
        ("npy %d MiB, 4 x sum" % NMIB, "np.load(mmap_mode='r')",
         [PR, "run", jn3, "--quiet"], True),
    ]
    only = os.environ.get("SEED_ONLY", "")
    print("| workload | how | wall s | peak PSS MB | exit | /dev/shm left: "
          "normal | child killed | parent killed | after gc |")
    print("|---|---|---|---|---|---|---|---|---|")
    for wl, how, cmd, is_prun in rows:
        if only and not wl.startswith(only):
            continue
        walls, peak, notes, rc = [], 0, [], 0
        for _ in range(REPS):
            clean_shm()
            w, p, r, note = run(cmd)
            walls.append(w)
            peak, rc = max(peak, p), rc or r
            if note:
                notes.append(note)
        wall, note = sorted(walls)[len(walls) // 2], "; ".join(notes)
        normal = fmt_left(*settled_leftovers())
        kills = []
        if not wl.startswith("npy"):
            for k in ("child", "parent"):
                clean_shm()
                _, _, krc, knote = run(cmd, kill=k)
                kills.append("%s [exit %s%s]" % (
                    fmt_left(*settled_leftovers()), krc,
                    "; " + knote if knote else ""))
            gc = "-"
            if is_prun:
                subprocess.run([PR, "gc"], env=dict(
                    os.environ, PARALLELRUN_SHM_BASE=BASE),
                    stdout=subprocess.DEVNULL)
                gc = fmt_left(*leftovers())
        else:
            kills, gc = ["-", "-"], "-"
        print("| %s | %s | %.2f | %.0f | %d%s | %s | %s | %s | %s |" % (
            wl, how, wall, peak / 1e6, rc, " " + note if note else "",
            normal, kills[0], kills[1], gc), flush=True)
    clean_shm()
    os.rmdir(BASE)


main()
