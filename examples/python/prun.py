"""Python binding to libparallelrun's child API, through ctypes.

Use it inside a task started by `parallelrun run`:

    import prun
    for index, item in prun.items():      # pool mode: no process per item
        handle(item)
    prun.barrier("loaded")
    prun.counter_add("rows", 10)
    prun.progress(3, 10)

The library is found through $PARALLELRUN_LIB, then next to this file in
the repository's build/ directory, then the system's libparallelrun.so.0.
Only the standard library is needed.
"""
import ctypes
import os

__all__ = ["Error", "items", "next_item", "barrier", "counter_add",
           "queue_push", "queue_pop", "progress"]


class _Err(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("sys_errno", ctypes.c_int),
                ("msg", ctypes.c_char * 256)]


class Error(RuntimeError):
    """A call failed; the message says what and where."""


def _load():
    here = os.path.dirname(os.path.abspath(__file__))
    for path in (os.environ.get("PARALLELRUN_LIB"),
                 os.path.join(here, "..", "..", "build", "libparallelrun.so"),
                 "libparallelrun.so.0"):
        if not path:
            continue
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    raise Error("libparallelrun not found (set PARALLELRUN_LIB)")


_lib = _load()
_libc = ctypes.CDLL(None)  # the process's own libc: no ldconfig run
_libc.free.argtypes = [ctypes.c_void_p]
_lib.prun_next.argtypes = [ctypes.POINTER(ctypes.c_void_p),
                           ctypes.POINTER(ctypes.c_ulonglong),
                           ctypes.POINTER(_Err)]
_lib.prun_barrier_wait.argtypes = [ctypes.c_char_p, ctypes.c_long,
                                   ctypes.c_int64, ctypes.POINTER(_Err)]
_lib.prun_counter_add.argtypes = [ctypes.c_char_p, ctypes.c_longlong,
                                  ctypes.POINTER(ctypes.c_longlong),
                                  ctypes.POINTER(_Err)]
_lib.prun_queue_push.argtypes = [ctypes.c_char_p,
                                 ctypes.POINTER(ctypes.c_char_p),
                                 ctypes.c_size_t, ctypes.POINTER(_Err)]
_lib.prun_queue_pop.argtypes = [ctypes.c_char_p, ctypes.c_int64,
                                ctypes.POINTER(ctypes.c_void_p),
                                ctypes.POINTER(_Err)]
_lib.prun_progress.argtypes = [ctypes.c_ulonglong, ctypes.c_longlong,
                               ctypes.POINTER(_Err)]


def _check(rc, err):
    if rc < 0:
        raise Error(err.msg.decode(errors="replace"))
    return rc


def _take_string(ptr):
    try:
        return ctypes.string_at(ptr.value).decode()
    finally:
        _libc.free(ptr)


def next_item():
    """The next pool item as (index, item), or None when none is left."""
    item, index, err = ctypes.c_void_p(), ctypes.c_ulonglong(), _Err()
    if _check(_lib.prun_next(ctypes.byref(item), ctypes.byref(index),
                             ctypes.byref(err)), err) == 0:
        return None
    return index.value, _take_string(item)


def items():
    """Iterates over this pool worker's items until none is left."""
    while True:
        got = next_item()
        if got is None:
            return
        yield got


def barrier(name, count=0, timeout_ms=-1):
    err = _Err()
    _check(_lib.prun_barrier_wait(name.encode(), count, timeout_ms,
                                  ctypes.byref(err)), err)


def counter_add(name, delta=1):
    value, err = ctypes.c_longlong(), _Err()
    _check(_lib.prun_counter_add(name.encode(), delta, ctypes.byref(value),
                                 ctypes.byref(err)), err)
    return value.value


def queue_push(name, *values):
    arr = (ctypes.c_char_p * len(values))(*[v.encode() for v in values])
    err = _Err()
    _check(_lib.prun_queue_push(name.encode(), arr, len(values),
                                ctypes.byref(err)), err)


def queue_pop(name, timeout_ms=0):
    """The oldest value, or None if the queue stayed empty."""
    value, err = ctypes.c_void_p(), _Err()
    if _check(_lib.prun_queue_pop(name.encode(), timeout_ms,
                                  ctypes.byref(value), ctypes.byref(err)),
              err) == 0:
        return None
    return _take_string(value)


def progress(done, total=-1):
    err = _Err()
    _check(_lib.prun_progress(done, total, ctypes.byref(err)), err)
