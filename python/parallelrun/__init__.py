"""The child side of parallelrun, from Python.

Use it in a program started by ``parallelrun run`` (or in any process that
program starts: subprocess children and multiprocessing workers of every
start method included)::

    import parallelrun as pr

    data = pr.segment("genome")          # read-only numpy array, no copy
    pr.publish("part3", table)           # hand an array back by name
    pr.barrier("loaded")
    with pr.lock("db"):
        ...
    pr.counter("rows", 10)
    for index, item in pr.items():       # pool mode
        ...

Segments need numpy (imported on first use); everything else needs only
the standard library and ``libparallelrun`` (found where ``make install``
put it, or ``$PARALLELRUN_LIB``). Failures raise :class:`Error` (or its
subclasses) carrying the library's message.
"""
import ast
import contextlib
import ctypes
import io
import mmap
import os
import stat

__all__ = ["Error", "NotFound", "Timeout", "segment", "segment_bytes",
           "segment_path", "publish", "barrier", "lock", "counter", "queue",
           "Queue", "progress", "items", "next_item"]

_PRUN_ETIMEDOUT = -6
_PRUN_ENOTFOUND = -7


class Error(RuntimeError):
    """A parallelrun call failed; str() is the message, .code the PRUN_E*
    code (negative) and .errno the system error behind it (0 if none)."""

    def __init__(self, msg, code=-1, errno=0):
        super().__init__(msg)
        self.code = code
        self.errno = errno


class NotFound(Error, LookupError):
    """The segment (or item) does not exist here: not attached to this task,
    not published in this run, or the run holding it has ended."""


class Timeout(Error, TimeoutError):
    """A barrier, lock or queue wait ran out of time."""


# ---- the C library ---------------------------------------------------------

class _Err(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("sys_errno", ctypes.c_int),
                ("msg", ctypes.c_char * 256)]


class _Seg(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 64), ("data", ctypes.c_void_p),
                ("size", ctypes.c_size_t), ("writable", ctypes.c_int),
                ("fd", ctypes.c_int), ("dtype", ctypes.c_char * 32),
                ("ndim", ctypes.c_size_t),
                ("shape", ctypes.c_uint64 * 16)]


_lib = None
_libc = None


def _candidates():
    env = os.environ.get("PARALLELRUN_LIB")
    if env:
        yield env
    try:
        from . import _config  # written by `make install`
        yield os.path.join(_config.LIBDIR, "libparallelrun.so.0")
    except ImportError:
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "..", "..", os.environ.get("BUILD", "build"),
                       "libparallelrun.so")
    yield "libparallelrun.so.0"


def _load():
    global _lib, _libc
    if _lib is not None:
        return _lib
    tried = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            break
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    else:
        raise Error("libparallelrun not found; tried: " + "; ".join(tried))
    P, E = ctypes.POINTER, ctypes.POINTER(_Err)
    c = ctypes
    sigs = {
        "prun_next": [P(c.c_void_p), P(c.c_ulonglong), E],
        "prun_barrier_wait": [c.c_char_p, c.c_long, c.c_int64, E],
        "prun_lock_acquire": [c.c_char_p, c.c_int64, P(c.c_void_p),
                              P(c.c_uint64), E],
        "prun_lock_release": [c.c_void_p, E],
        "prun_counter_add": [c.c_char_p, c.c_longlong, P(c.c_longlong), E],
        "prun_queue_push": [c.c_char_p, P(c.c_char_p), c.c_size_t, E],
        "prun_queue_pop": [c.c_char_p, c.c_int64, P(c.c_void_p), E],
        "prun_progress": [c.c_ulonglong, c.c_longlong, E],
        "prun_segment_create": [c.c_char_p, c.c_size_t, P(_Seg), E],
        "prun_segment_commit": [P(_Seg), c.c_char_p, P(c.c_uint64),
                                c.c_size_t, E],
        "prun_segment_detach": [P(_Seg)],
    }
    for name, args in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = c.c_int
    libc = ctypes.CDLL(None)
    libc.free.argtypes = [c.c_void_p]
    libc.free.restype = None
    _lib, _libc = lib, libc
    return lib


def _raise(err):
    msg = err.msg.decode(errors="replace")
    cls = {_PRUN_ETIMEDOUT: Timeout, _PRUN_ENOTFOUND: NotFound}.get(
        err.code, Error)
    raise cls(msg, err.code, err.sys_errno)


def _check(rc, err):
    if rc < 0:
        _raise(err)
    return rc


def _ms(timeout):
    return -1 if timeout is None else int(timeout * 1000)


def _take_string(ptr):
    try:
        return ctypes.string_at(ptr.value).decode()
    finally:
        _libc.free(ptr)


# ---- segments --------------------------------------------------------------

def _dtype(text):
    import numpy as np
    if not text:
        return np.dtype(np.uint8)
    if text.startswith("["):
        # numpy's own inverse of dtype.descr (padding fields included).
        return np.lib.format.descr_to_dtype(ast.literal_eval(text))
    return np.dtype(text)


def _dtype_text(dt):
    return str(dt.descr) if dt.names is not None or dt.subdtype else dt.str


def _read_meta(path):
    meta = {}
    with open(path) as f:
        for line in f:
            key, _, val = line.rstrip("\n").partition(" ")
            meta[key] = val
    return meta


def _resolve(name):
    """(path, size or None, dtype text, shape text, writable) of segment
    name, from the runner's environment or the run directory."""
    if not isinstance(name, str) or not name:
        raise Error("invalid segment name %r" % (name,), -1)
    key = "PARALLELRUN_SEGMENT_" + name.upper()
    path = os.environ.get(key)
    if path:
        size = os.environ.get(key + "_SIZE")
        return (path, int(size) if size and size.isdigit() else None,
                os.environ.get(key + "_DTYPE", ""),
                os.environ.get(key + "_SHAPE", ""),
                os.environ.get(key + "_WRITABLE") == "1")
    d = os.environ.get("PARALLELRUN_SHM_DIR")
    if not d:
        raise NotFound("segment %r is not attached to this task (%s is not "
                       "set) and this is not a parallelrun run" % (name, key),
                       _PRUN_ENOTFOUND)
    try:
        meta = _read_meta(os.path.join(d, name + ".meta"))
    except FileNotFoundError:
        raise NotFound("segment %r is not attached to this task and was not "
                       "published in this run" % name,
                       _PRUN_ENOTFOUND) from None
    return (os.path.join(d, name), int(meta.get("size", "0")),
            meta.get("dtype", ""), meta.get("shape", ""), False)


def segment_path(name):
    """A path to segment name that open()/mmap()/np.load(mmap_mode="r")
    accept in this process and every process it starts, while the run
    holds the segment."""
    return _resolve(name)[0]


def _map(name):
    path, size, dtype, shape, writable = _resolve(name)
    flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC
    # O_NONBLOCK: a path that now names a FIFO must fail, not hang.
    try:
        fd = os.open(path, flags | os.O_NONBLOCK)
    except FileNotFoundError:
        raise NotFound("cannot attach segment %r (%s): No such file or "
                       "directory (has its run ended?)" % (name, path),
                       _PRUN_ENOTFOUND, 2) from None
    except OSError as e:
        raise Error("cannot attach segment %r (%s): %s"
                    % (name, path, e.strerror), -2, e.errno) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotFound("cannot attach segment %r: %s is not a segment (a "
                           "pipe or device: the path is only valid while its "
                           "run holds the segment)" % (name, path),
                           _PRUN_ENOTFOUND)
        if size is not None and st.st_size != size:
            raise NotFound("cannot attach segment %r: %s has %d bytes, not "
                           "the segment's %d (the path is only valid while "
                           "its run holds the segment)"
                           % (name, path, st.st_size, size), _PRUN_ENOTFOUND)
        if st.st_size == 0:
            return None, dtype, shape, writable
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        try:
            mm = mmap.mmap(fd, st.st_size, mmap.MAP_SHARED, prot)
        except PermissionError:
            # A sealed segment is read-only whatever the environment says.
            mm = mmap.mmap(fd, st.st_size, mmap.MAP_SHARED, mmap.PROT_READ)
            writable = False
        return mm, dtype, shape, writable
    finally:
        os.close(fd)


def segment_bytes(name):
    """Segment name as a memoryview of its bytes (read-only unless the
    segment is writable), without a copy. A .npy segment includes its
    header."""
    mm = _map(name)[0]
    return memoryview(mm if mm is not None else b"")


def segment(name):
    """Segment name as a numpy array backed by the segment's own pages:
    zero-copy, read-only (writable only for ``size:`` + ``writable: true``
    segments), with the dtype and shape the runner or the publisher gave
    (structured dtypes included). A .npy segment keeps its header, which
    says dtype, shape and order. Without a dtype it is uint8 bytes.
    Raises NotFound when the segment is not there (not attached, not
    published, or its run has ended)."""
    import numpy as np
    mm, dtype, shape, writable = _map(name)
    if mm is None:
        return np.empty(0, dtype=_dtype(dtype))
    if mm[:6] == b"\x93NUMPY":
        f = io.BytesIO(mm[:min(len(mm), 65536 + 16)])
        major, _ = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if major == 1
                else np.lib.format.read_array_header_2_0)
        shp, fortran, dt = read(f)
        arr = np.ndarray(shp, dt, buffer=mm, offset=f.tell(),
                         order="F" if fortran else "C")
    else:
        dt = _dtype(dtype)
        shp = tuple(int(x) for x in shape.split(",") if x.strip())
        if not shp:
            shp = (len(mm) // dt.itemsize,)
        arr = np.ndarray(shp, dt, buffer=mm)
    if not writable:
        arr.flags.writeable = False
    return arr


def publish(name, array):
    """Hands array back to the run as segment name, with its dtype and
    shape: later tasks (and the runner's status) find it by name, and the
    runner removes it when the run ends. The bytes are written straight
    into the segment's memory (one copy, no pipe, no helper process).
    Publishing a name again replaces it for later attachers."""
    import numpy as np
    arr = np.asarray(array)
    if arr.dtype.hasobject:
        raise Error("cannot publish segment %r: dtype %s holds Python "
                    "objects" % (name, arr.dtype), -1)
    lib = _load()
    seg, err = _Seg(), _Err()
    _check(lib.prun_segment_create(name.encode(), arr.nbytes,
                                   ctypes.byref(seg), ctypes.byref(err)), err)
    try:
        if arr.nbytes:
            buf = (ctypes.c_char * arr.nbytes).from_address(seg.data)
            dst = np.ndarray(arr.shape, arr.dtype, buffer=buf)
            np.copyto(dst, arr, casting="no")
            del dst, buf
        shape = (ctypes.c_uint64 * max(arr.ndim, 1))(*arr.shape)
        _check(lib.prun_segment_commit(
            ctypes.byref(seg), _dtype_text(arr.dtype).encode(), shape,
            arr.ndim, ctypes.byref(err)), err)
    finally:
        lib.prun_segment_detach(ctypes.byref(seg))


# ---- synchronization -------------------------------------------------------

def barrier(name, count=0, timeout=None):
    """Waits until count processes of the run reached barrier name (0: the
    task's instance count). timeout in seconds (None: forever); Timeout
    when it runs out."""
    lib, err = _load(), _Err()
    _check(lib.prun_barrier_wait(name.encode(), count, _ms(timeout),
                                 ctypes.byref(err)), err)


@contextlib.contextmanager
def lock(name, timeout=None):
    """Holds the run-wide lock name for the with block; yields its fencing
    token (greater than every earlier holder's). Timeout if it cannot be
    had within timeout seconds (None: wait forever)."""
    lib, err = _load(), _Err()
    handle, token = ctypes.c_void_p(), ctypes.c_uint64()
    _check(lib.prun_lock_acquire(name.encode(), _ms(timeout),
                                 ctypes.byref(handle), ctypes.byref(token),
                                 ctypes.byref(err)), err)
    try:
        yield token.value
    finally:
        _check(lib.prun_lock_release(handle, ctypes.byref(err)), err)


def counter(name, add=1):
    """Adds add to the run-wide counter name and returns its new value
    (add=0 reads it)."""
    lib, err, value = _load(), _Err(), ctypes.c_longlong()
    _check(lib.prun_counter_add(name.encode(), add, ctypes.byref(value),
                                ctypes.byref(err)), err)
    return value.value


class Queue:
    """The run-wide queue name (strings, first in first out)."""

    def __init__(self, name):
        self.name = name

    def push(self, *values):
        """Appends values (converted with str())."""
        lib, err = _load(), _Err()
        arr = (ctypes.c_char_p * len(values))(
            *[str(v).encode() for v in values])
        _check(lib.prun_queue_push(self.name.encode(), arr, len(values),
                                   ctypes.byref(err)), err)

    def pop(self, timeout=0):
        """The oldest value, or None if the queue stayed empty for timeout
        seconds (0: do not wait; None: wait forever)."""
        lib, err, value = _load(), _Err(), ctypes.c_void_p()
        if _check(lib.prun_queue_pop(self.name.encode(), _ms(timeout),
                                     ctypes.byref(value), ctypes.byref(err)),
                  err) == 0:
            return None
        return _take_string(value)


def queue(name):
    """The run-wide queue name: queue(name).push(...), .pop(timeout)."""
    return Queue(name)


def progress(done, total=None):
    """Reports this instance's progress (shown by `parallelrun status`)."""
    lib, err = _load(), _Err()
    _check(lib.prun_progress(done, -1 if total is None else total,
                             ctypes.byref(err)), err)


_next_args = None


def next_item():
    """Pool mode: the next item as (index, item), or None when none is
    left. Taking the next item marks the previous one done."""
    global _next_args
    if _next_args is None:
        # Made once: the C side keeps one batch per process anyway.
        item, index, err = ctypes.c_void_p(), ctypes.c_ulonglong(), _Err()
        _next_args = (_load().prun_next, item, index, err,
                      (ctypes.byref(item), ctypes.byref(index),
                       ctypes.byref(err)))
    call, item, index, err, refs = _next_args
    rc = call(*refs)
    if rc <= 0:
        if rc < 0:
            _raise(err)
        return None
    return index.value, _take_string(item)


def items():
    """Pool mode: iterates over (index, item) until none is left."""
    while True:
        got = next_item()
        if got is None:
            return
        yield got
