"""Run the fitters with single-threaded BLAS.

The per-evaluation linear algebra is small (p <= ~100, q <= 5); multi-threaded BLAS only adds
thread wake-up latency (several ms per L-BFGS-B iteration on OpenBLAS).
"""
from __future__ import annotations

import functools

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
    threadpool_limits = None


def single_threaded_blas(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if threadpool_limits is None:
            return fn(*args, **kwargs)
        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper
