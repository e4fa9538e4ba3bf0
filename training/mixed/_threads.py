"""Run the fitters with single-threaded BLAS.

The per-evaluation linear algebra is small (p <= ~100, q <= 5); multi-threaded BLAS only adds
thread wake-up latency (several ms per L-BFGS-B iteration on OpenBLAS).

One :class:`threadpoolctl.ThreadpoolController` is made per process and reused: building it
scans the loaded shared libraries (~6 ms), which a replication of ~1000 small fits paid per fit.
"""
from __future__ import annotations

import functools

try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
    ThreadpoolController = None

_CONTROLLER = None


def _controller():
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def single_threaded_blas(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if ThreadpoolController is None:
            return fn(*args, **kwargs)
        with _controller().limit(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper
