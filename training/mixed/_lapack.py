"""Direct LAPACK calls for the small dense solves inside every objective evaluation.

``scipy.linalg.cho_factor`` / ``cho_solve`` / ``solve_triangular`` add ~20-40 µs of argument
checking and batching per call, a quarter of an LMM deviance evaluation (p ~ 20). These
helpers call the same LAPACK routines (dpotrf, dpotrs, dtrtrs) with the same arguments, so the
results are bit-identical; inputs must be float64 and finite (as with ``check_finite=False``).
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import LinAlgError, lapack

_potrf, _potrs, _trtrs = lapack.dpotrf, lapack.dpotrs, lapack.dtrtrs


def cho_factor_upper(a: np.ndarray) -> np.ndarray:
    """Upper Cholesky factor as ``cho_factor(a, lower=False, check_finite=False)[0]``
    (lower triangle left as in ``a``); raises LinAlgError if ``a`` is not positive definite."""
    c, info = _potrf(a, lower=0, overwrite_a=0, clean=0)
    if info != 0:
        raise LinAlgError(f"{info}-th leading minor of the array is not positive definite")
    return c


def cho_solve_upper(c: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``cho_solve((c, False), b, check_finite=False)``."""
    x, info = _potrs(c, b, lower=0, overwrite_b=0)
    if info != 0:
        raise ValueError(f"illegal value in {-info}th argument of internal potrs")
    return x


def solve_upper(r: np.ndarray, b: np.ndarray, trans: int = 0) -> np.ndarray:
    """``solve_triangular(r, b, trans=trans, lower=False, check_finite=False)``."""
    if r.flags.f_contiguous:
        x, info = _trtrs(r, b, overwrite_b=0, lower=0, trans=trans, unitdiag=0)
    else:  # LAPACK wants Fortran order: solve the transposed system, as scipy does
        x, info = _trtrs(r.T, b, overwrite_b=0, lower=1, trans=int(not trans), unitdiag=0)
    if info > 0:
        raise LinAlgError(f"singular matrix: resolution failed at diagonal {info - 1}")
    if info < 0:
        raise ValueError(f"illegal value in {-info}-th argument of internal trtrs")
    return x
