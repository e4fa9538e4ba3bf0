"""Compiled kernels of the linear columns and of the missing-data draws (numba, nogil): a block's
standardised basis columns in one pass, the change of a linear predictor on each conditional draw
(only the missing features' columns move), the conditional mean and the draws themselves. The same
arithmetic as :mod:`predict.linear` and :mod:`predict.impute` (tests compare them)."""
from __future__ import annotations

import numpy as np

from predict.kernels import njit

_jit = njit()


def compile_columns(cols: list) -> dict:
    """Per basis column: feature, kind (0 linear, 1 rcs, 2 one-hot), the spline constants and the
    one-hot level, and the scale (the location cancels in differences)."""
    n = len(cols)
    out = {k: np.zeros(n) for k in ("tj", "t2", "t1", "c1", "c2", "d", "norm", "level", "scale")}
    feat = np.zeros(n, np.int64)
    kind = np.zeros(n, np.int64)
    out["loc"] = np.zeros(n)
    for i, c in enumerate(cols):
        feat[i] = c["feature"]
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
        else:
            raise ValueError(f"unknown basis kind {c['kind']!r}")
    out["feat"], out["kind"] = feat, kind
    return out


@_jit
def _p3(v):
    u = v if v > 0.0 else 0.0
    return u * u * u


@_jit
def _linear_delta(D, Fim, miss, w, feat, kind, tj, t2, t1, c1, c2, dd, norm, level, out):
    n, M = D.shape[0], D.shape[1]
    for i in range(n):
        for k in range(feat.size):
            f = feat[k]
            wk = w[k]
            if not miss[i, f] or wk == 0.0:
                continue
            kk = kind[k]
            if kk == 0:
                b0 = Fim[i, f]
                for d in range(M):
                    out[i, d] += wk * (D[i, d, f] - b0)
            elif kk == 1:
                a, b, c, e, g, h, q = tj[k], t2[k], t1[k], c1[k], c2[k], dd[k], norm[k]
                x = Fim[i, f]
                b0 = (_p3(x - a) - _p3(x - b) * e / h + _p3(x - c) * g / h) / q
                for d in range(M):
                    x = D[i, d, f]
                    out[i, d] += wk * ((_p3(x - a) - _p3(x - b) * e / h + _p3(x - c) * g / h) / q - b0)
            else:
                lv = level[k]
                b0 = 1.0 if Fim[i, f] == lv else 0.0
                for d in range(M):
                    out[i, d] += wk * ((1.0 if D[i, d, f] == lv else 0.0) - b0)


def linear_delta(cc: dict, w: np.ndarray, D: np.ndarray, Fim: np.ndarray, miss: np.ndarray, out: np.ndarray) -> None:
    """out (n, M) += sum over columns k of a missing feature of w_k (b_k(draw) - b_k(imputed)),
    D (n, M, p) the draws, Fim (n, p) the conditional-mean imputation."""
    _linear_delta(D, np.ascontiguousarray(Fim, dtype=np.float64), miss, np.ascontiguousarray(w, dtype=np.float64),
                  cc["feat"], cc["kind"], cc["tj"], cc["t2"], cc["t1"], cc["c1"], cc["c2"], cc["d"], cc["norm"],
                  cc["level"], out)


# ----------------------------------------------------------------------------- draws
@_jit
def _fill_draws(CM, inv, noise, binary, lo, hi, out):
    n, M, p = out.shape
    for i in range(n):
        k = inv[i]
        for d in range(M):
            for j in range(p):
                v = CM[i, j] + noise[k, d, j]
                if binary[j]:
                    v = np.rint(v)
                if v < lo[j]:
                    v = lo[j]
                elif v > hi[j]:
                    v = hi[j]
                out[i, d, j] = v


def fill_draws(CM: np.ndarray, inv: np.ndarray, noise: np.ndarray, binary: np.ndarray, lo: np.ndarray,
               hi: np.ndarray) -> np.ndarray:
    """Draws (n, M, p): CM (n, p, the conditional mean, observed entries = the data) plus the
    noise of each row's pattern (K, M, p; zero where observed), binary features rounded (half to
    even, as numpy.round), clipped to [lo, hi]."""
    M = noise.shape[1]
    out = np.empty((CM.shape[0], M, CM.shape[1]))
    _fill_draws(np.ascontiguousarray(CM), np.ascontiguousarray(inv, dtype=np.int64), np.ascontiguousarray(noise),
                np.ascontiguousarray(binary, dtype=np.bool_), np.ascontiguousarray(lo, dtype=np.float64),
                np.ascontiguousarray(hi, dtype=np.float64), out)
    return out


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
def _basis(F, feat, kind, tj, t2, t1, c1, c2, dd, norm, level, loc, scale, out):
    n = F.shape[0]
    for i in range(n):
        for k in range(feat.size):
            x = F[i, feat[k]]
            kk = kind[k]
            if kk == 0:
                v = x
            elif kk == 1:
                v = (_p3(x - tj[k]) - _p3(x - t2[k]) * c1[k] / dd[k] + _p3(x - t1[k]) * c2[k] / dd[k]) / norm[k]
            else:
                v = 1.0 if x == level[k] else 0.0
            out[i, k] = (v - loc[k]) / scale[k]


def basis(cc: dict, F: np.ndarray) -> np.ndarray:
    """The standardised basis columns (n, K) of a complete F: linear.basis, in one pass."""
    out = np.empty((F.shape[0], cc["feat"].size))
    _basis(np.ascontiguousarray(F, dtype=np.float64), cc["feat"], cc["kind"], cc["tj"], cc["t2"], cc["t1"], cc["c1"],
           cc["c2"], cc["d"], cc["norm"], cc["level"], cc["loc"], cc["scale"], out)
    return out
