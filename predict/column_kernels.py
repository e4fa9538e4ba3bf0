"""Compiled kernels of the linear columns and of the conditional mean (numba, nogil): a block's
basis columns as flat arrays (:func:`compile_columns`, which the compiled program is built from), its
standardised columns in one pass (:func:`basis`) and the conditional mean of the missing features
(:func:`cond_mean`). The same arithmetic as :mod:`predict.linear` and :mod:`predict.impute` (tests
compare them)."""
from __future__ import annotations

import numpy as np

from predict.kernels import njit

_jit = njit()


def compile_columns(cols: list) -> dict:
    """Per basis column: feature, kind (0 linear, 1 rcs, 2 one-hot, 3 product), the spline
    constants, the one-hot level, the location and scale; ``feat2`` the second feature of a product
    (else the feature itself), whose origins are held in ``tj`` (feature) and ``t2`` (feat2)."""
    n = len(cols)
    out = {k: np.zeros(n) for k in ("tj", "t2", "t1", "c1", "c2", "d", "norm", "level", "scale")}
    feat = np.zeros(n, np.int64)
    feat2 = np.zeros(n, np.int64)
    kind = np.zeros(n, np.int64)
    out["loc"] = np.zeros(n)
    for i, c in enumerate(cols):
        feat[i] = feat2[i] = c["feature"]
        out["scale"][i] = c["scale"]
        out["loc"][i] = c["loc"]
        if c["kind"] == "linear":
            kind[i] = 0
        elif c["kind"] == "rcs":
            t = np.asarray(c["knots"], float)
            k, j = t.size, c["term"]
            kind[i] = 1
            out["tj"][i], out["t2"][i], out["t1"][i] = t[j], t[k - 2], t[k - 1]
            out["c1"][i], out["c2"][i], out["d"][i] = t[k - 1] - t[j], t[k - 2] - t[j], t[k - 1] - t[k - 2]
            out["norm"][i] = (t[-1] - t[0]) ** 2
        elif c["kind"] == "onehot":
            kind[i] = 2
            out["level"][i] = c["level"]
        elif c["kind"] == "product":
            kind[i] = 3
            feat2[i] = c["feature2"]
            out["tj"][i], out["t2"][i] = c["origin"], c["origin2"]
        else:
            raise ValueError(f"unknown basis kind {c['kind']!r}")
    out["feat"], out["kind"], out["feat2"] = feat, kind, feat2
    return out


@_jit
def _p3(v):
    u = v if v > 0.0 else 0.0
    return u * u * u


@_jit
def _cond_mean(F, mu, A, inv, out):
    n, p = F.shape
    for i in range(n):
        Ak = A[inv[i]]
        for j in range(p):
            v = F[i, j]
            if v == v:
                out[i, j] = v
                continue
            s = mu[j]
            for o in range(p):
                x = F[i, o]
                if x == x:
                    s += (x - mu[o]) * Ak[o, j]
            out[i, j] = s


def cond_mean(F: np.ndarray, mu: np.ndarray, A: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """Observed entries kept; a missing entry j of row i = mu_j + (x_o - mu_o) A_k[o, j] with A_k
    (p, p) the regression of the missing on the observed features of the row's pattern k."""
    out = np.empty(F.shape)
    _cond_mean(np.ascontiguousarray(F, dtype=np.float64), mu, A, np.ascontiguousarray(inv, dtype=np.int64), out)
    return out


@_jit
def _basis(F, feat, feat2, kind, tj, t2, t1, c1, c2, dd, norm, level, loc, scale, out):
    n = F.shape[0]
    for i in range(n):
        for k in range(feat.size):
            x = F[i, feat[k]]
            kk = kind[k]
            if kk == 0:
                v = x
            elif kk == 1:
                v = (_p3(x - tj[k]) - _p3(x - t2[k]) * c1[k] / dd[k] + _p3(x - t1[k]) * c2[k] / dd[k]) / norm[k]
            elif kk == 2:
                v = 1.0 if x == level[k] else 0.0
            else:
                v = (x - tj[k]) * (F[i, feat2[k]] - t2[k])
            out[i, k] = (v - loc[k]) / scale[k]


def basis(cc: dict, F: np.ndarray) -> np.ndarray:
    """The standardised basis columns (n, K) of a complete F: linear.basis, in one pass."""
    out = np.empty((F.shape[0], cc["feat"].size))
    _basis(np.ascontiguousarray(F, dtype=np.float64), cc["feat"], cc["feat2"], cc["kind"], cc["tj"], cc["t2"], cc["t1"], cc["c1"],
           cc["c2"], cc["d"], cc["norm"], cc["level"], cc["loc"], cc["scale"], out)
    return out
