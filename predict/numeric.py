"""Small numeric helpers shared by the runtime's modules: the logistic function, the standard
normal quantile, row-wise quadratic forms and variances, the inverse link of a linear learner,
a restricted cubic spline term.
"""
from __future__ import annotations

import math

import numpy as np



Z975 = 1.959963984540054


def frozen_array(a, dtype=float) -> np.ndarray:
    """A read-only copy of ``a`` as an array of ``dtype`` (the typed learners' numbers)."""
    out = np.array(a, dtype)
    out.flags.writeable = False
    return out


def expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.minimum(np.maximum(x, -40.0), 40.0)))


def norm_ppf(p: float) -> float:
    """Standard normal quantile (Acklam's rational approximation refined by one Newton step)."""
    if p == 0.975:
        return Z975
    a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02,
         -3.066479806614716e+01, 2.506628277459239e+00]
    b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01,
         -1.328068155288572e+01]
    c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00,
         4.374664141464968e+00, 2.938163982698783e+00]
    d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
    plow = 0.02425
    if p < plow:
        q = math.sqrt(-2 * math.log(p))
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    elif p > 1 - plow:
        q = math.sqrt(-2 * math.log(1 - p))
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    else:
        q = p - 0.5
        r = q * q
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    e = 0.5 * math.erfc(-x / math.sqrt(2)) - p
    return x - e * math.sqrt(2 * math.pi) * math.exp(x * x / 2)


def quad(G: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Row-wise quadratic forms g_i' V g_i (as einsum("ij,jk,ik->i"), through one matrix product)."""
    GV = G @ V
    GV *= G
    return GV.sum(axis=1)


def mean_fn(link: str):
    return (lambda e: e) if link == "identity" else expit


def pos3(v: np.ndarray) -> np.ndarray:
    """max(v, 0) cubed (as v*v*v: much faster than ** 3 on large arrays)."""
    u = np.maximum(v, 0.0)
    return u * u * u


def rcs_term(x, tj, t2, t1, c1, c2, d, norm):
    """One restricted cubic spline term (Harrell) of ``x``, elementwise with broadcasting: knots
    t_j (``tj``), t_{k-1} (``t2``) and t_k (``t1``); ``c1`` = t_k - t_j, ``c2`` = t_{k-1} - t_j,
    ``d`` = t_k - t_{k-1}, ``norm`` = (t_k - t_1)^2 (the term's scale)."""
    return (pos3(x - tj) - pos3(x - t2) * c1 / d + pos3(x - t1) * c2 / d) / norm


def clip(x: np.ndarray, lo, hi) -> np.ndarray:
    """np.clip (NaN stays NaN) without its Python overhead."""
    return np.minimum(np.maximum(x, lo), hi)
