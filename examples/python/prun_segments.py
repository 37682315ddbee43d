"""Shared segments of parallelrun from Python, zero-copy (README "Shared segments").

attach(name)  -> a numpy array backed by the segment's pages (no copy):
                 read-only unless the segment is writable (`size:` +
                 `writable: true`). Works for segments the runner attached
                 to this task (PARALLELRUN_SEGMENT_<NAME>=/dev/fd/N, with
                 _DTYPE/_SHAPE/_WRITABLE) and for segments published earlier
                 in the run ($PARALLELRUN_SHM_DIR/NAME with NAME.meta).
                 A .npy segment is opened with np.load(mmap_mode=...), so its
                 header gives dtype and shape.
publish(name, arr) -> publishes arr (bytes, dtype, shape) through
                 `parallelrun segment publish NAME - --dtype T --shape A,B`.

Structured dtypes travel as numpy's descr list, e.g.
"[('chr', '|S10'), ('pos', '<i4')]".
"""
import ast
import os
import shutil
import subprocess

import numpy as np


def _dtype(text):
    if not text:
        return np.uint8
    if text.startswith("["):
        return np.dtype([tuple(f) for f in ast.literal_eval(text)])
    return np.dtype(text)


def _shape(text):
    return tuple(int(x) for x in text.split(",") if x.strip()) if text else None


def _meta(path):
    meta = {}
    with open(path) as f:
        for line in f:
            key, _, val = line.rstrip("\n").partition(" ")
            meta[key] = val
    return meta


def attach(name):
    key = "PARALLELRUN_SEGMENT_" + name.upper()
    path = os.environ.get(key)
    if path:
        dtype = os.environ.get(key + "_DTYPE", "")
        shape = os.environ.get(key + "_SHAPE", "")
        writable = os.environ.get(key + "_WRITABLE") == "1"
    else:
        d = os.environ.get("PARALLELRUN_SHM_DIR")
        if not d or not os.path.exists(os.path.join(d, name + ".meta")):
            raise FileNotFoundError("segment %r is not attached to this task "
                                    "and was not published in this run" % name)
        meta = _meta(os.path.join(d, name + ".meta"))
        path = os.path.join(d, name)
        dtype, shape, writable = meta.get("dtype", ""), meta.get("shape", ""), False
    mode = "r+" if writable else "r"
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        return np.load(path, mmap_mode=mode)
    return np.memmap(path, dtype=_dtype(dtype), mode=mode, shape=_shape(shape))


def _binary():
    return (os.environ.get("PARALLELRUN_BIN") or shutil.which("parallelrun")
            or os.path.join(os.path.dirname(__file__), "..", "..", "build",
                            "parallelrun"))


def publish(name, arr):
    arr = np.ascontiguousarray(arr)
    dtype = str(arr.dtype.descr) if arr.dtype.names else arr.dtype.str
    cmd = [_binary(), "segment", "publish", name, "-", "--dtype", dtype,
           "--shape", ",".join(str(n) for n in arr.shape)]
    subprocess.run(cmd, input=memoryview(arr).cast("B"), check=True)
