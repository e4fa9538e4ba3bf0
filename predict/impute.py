"""The missing-data model: Gaussian conditional imputation of a patient's missing features
given the observed ones (the learner export's ``imputer``: pooled mean, total covariance, stored
standard-normal draws ``z``, bounds and binary flags).

- :func:`impute_mean`: the conditional mean (what the linear parts see);
- :func:`impute_draws`: M conditional draws (deterministic: from ``z``) for the spread of the
  prediction over the missing values;
- :func:`pattern_groups` / :func:`pattern_solve` / :func:`pattern_part`: per missing-data pattern,
  the regression of the missing on the observed features and the Cholesky factor of their
  conditional covariance (cached per pattern in the imputer's :class:`PatternCache`).

The functions take an :class:`Imputer` (the typed, immutable imputer of a prepared learner,
:mod:`predict.learner_model`) or an export's ``imputer`` dict (converted, without a cache).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from predict import column_kernels, kernels
from predict.numeric import frozen_array


class PatternCache:
    """Per missing-data pattern, the solved regressions and Cholesky factors of one imputer
    (:func:`pattern_solve`) and their full-width forms (:func:`pattern_part`): an explicit cache
    object, made with the imputer when a model is loaded and owned by it (never written into an
    export). Bounded; the numbers are the same with or without it."""

    SOLVES = 4096
    PARTS = 1024  # (p x p + M x p) floats each

    def __init__(self):
        self.solves: dict[bytes, tuple] = {}
        self.parts: dict[bytes, tuple] = {}
        self._lock = threading.Lock()

    def put(self, store: dict, limit: int, key: bytes, value: tuple) -> None:
        with self._lock:
            if len(store) >= limit:
                store.clear()
            store[key] = value


@dataclass(frozen=True, eq=False)
class Imputer:
    """The missing-data model of a learner, made ready to score (immutable arrays): pooled mean and
    total covariance of the features, the stored standard-normal draws ``z`` (M x p), bounds,
    which features are binary, and its :class:`PatternCache` (None: solved on each call)."""

    mean: np.ndarray
    cov: np.ndarray
    z: np.ndarray | None
    lower: np.ndarray
    upper: np.ndarray
    binary: np.ndarray | None
    cache: PatternCache | None = None

    @classmethod
    def of(cls, imp: "Imputer | dict", cache: bool = False) -> "Imputer":
        """``imp`` as an Imputer (an export's ``imputer`` dict: converted; with a fresh
        :class:`PatternCache` if ``cache``). The conditional mean alone needs no ``z`` nor ``binary``."""
        if isinstance(imp, Imputer):
            return imp
        z, b = imp.get("z"), imp.get("binary")
        return cls(frozen_array(imp["mean"]), frozen_array(imp["cov"]), None if z is None else frozen_array(z),
                   frozen_array(imp["lower"]), frozen_array(imp["upper"]), None if b is None else frozen_array(b, bool),
                   PatternCache() if cache else None)


def pattern_groups(F: np.ndarray):
    """Distinct missing-data patterns (rows of booleans, in lexicographic order) and each row's
    pattern index. Rows are packed into integers first (fast for large n)."""
    miss = np.isnan(F)
    n, p = miss.shape
    if n == 0:
        return np.zeros((0, p), bool), np.zeros(0, np.int64)
    if n == 1:
        return miss, np.zeros(1, np.int64)
    if not miss.any():
        return np.zeros((1, p), bool), np.zeros(n, np.int64)
    if 0 < p <= 62:
        w = np.left_shift(np.int64(1), np.arange(p - 1, -1, -1, dtype=np.int64))
        code = miss.astype(np.int64) @ w
        ucode, inv = np.unique(code, return_inverse=True)
        keys = ((ucode[:, None] & w[None, :]) != 0)
        return keys, inv.reshape(-1)
    keys, inv = np.unique(miss, axis=0, return_inverse=True)
    return keys, inv.reshape(-1)


def impute_mean(imp: Imputer | dict, F: np.ndarray) -> np.ndarray:
    """Conditional mean of the missing features given the observed ones, under the imputer's
    multivariate normal (pooled mean, total covariance: a patient from a new trial)."""
    imp = Imputer.of(imp)
    mu, S = imp.mean, imp.cov
    out = F.copy()
    keys, inv = pattern_groups(F)
    skey = None if imp.cache is not None else hash(S.tobytes())
    for k, m in enumerate(keys):
        if not m.any():
            continue
        rows = inv == k
        o = ~m
        cm = np.broadcast_to(mu[m], (rows.sum(), m.sum())).copy()
        if o.any():
            A = _regression_cached(imp, S, m, skey)
            cm += (F[np.ix_(rows, o)] - mu[o]) @ A
        out[np.ix_(rows, m)] = cm
    return bound(imp, out)


_REG_CACHE: dict = {}


def _regression_cached(imp: Imputer, S: np.ndarray, m: np.ndarray, skey) -> np.ndarray:
    """A = S_oo^-1 S_om of :func:`pattern_solve`, cached by covariance (hash of its bytes, then
    checked equal) and pattern, for imputers without a :class:`PatternCache` (export dicts: training
    calls ``impute_mean`` thousands of times on the same few dozen missing-data patterns; same
    numbers, solved once).
    ``skey`` None: the imputer has its own :class:`PatternCache`."""
    if skey is None:
        return pattern_solve(imp, S, m, need_L=False)[0]
    entry = _REG_CACHE.get(skey)
    if entry is None or entry[0].shape != S.shape or not np.array_equal(entry[0], S):
        if len(_REG_CACHE) > 64:
            _REG_CACHE.clear()
        entry = _REG_CACHE[skey] = (S.copy(), {})
    key = m.tobytes()
    A = entry[1].get(key)
    if A is None:
        if len(entry[1]) > 4096:
            entry[1].clear()
        A = entry[1][key] = pattern_solve(imp, S, m, need_L=False)[0]
    return A


def pattern_solve(imp: Imputer, S: np.ndarray, m: np.ndarray, need_L: bool = True):
    """For missing pattern ``m``: (A = S_oo^-1 S_om, L with L L' = the conditional covariance of the
    missing given the observed). Cached per pattern in the imputer's :class:`PatternCache`, if it
    has one; the numbers are the same either way."""
    cache = imp.cache
    key = m.tobytes() if cache is not None else None
    if key is not None:
        hit = cache.solves.get(key)
        if hit is not None:
            return hit
    o = ~m
    Sc = S[np.ix_(m, m)]
    A = None
    if o.any():
        A = np.linalg.solve(S[np.ix_(o, o)], S[np.ix_(o, m)])
        Sc = Sc - S[np.ix_(m, o)] @ A
    if key is None and not need_L:
        return A, None
    L = cond_factor(Sc)
    if key is not None:
        cache.put(cache.solves, cache.SOLVES, key, (A, L))
    return A, L


COND_JITTER = (1e-12, 1e-10, 1e-8, 1e-6)  # relative diagonal jitter tried in turn (cond_factor)


def cond_factor(S: np.ndarray) -> np.ndarray:
    """The lower-triangular Cholesky factor L (L L' = S) of a conditional covariance: the draws'
    noise is ``z @ L.T``. Cholesky is unique for a positive-definite matrix and a smooth function
    of it, so the draws (and the intervals built on them) move by rounding only when S moves by
    rounding, on any machine or BLAS; an eigendecomposition is not (eigenvector signs and, for
    close eigenvalues, the basis itself can flip under a 1e-16 change). A semi-definite S (a
    zero-variance feature, an exactly collinear pair; or one made slightly indefinite by
    rounding) gets a diagonal jitter of 1e-12, then 1e-10, 1e-8, 1e-6 times its mean diagonal
    until the factorisation succeeds (a standard deviation of at most 1e-3 of the features'
    typical scale on otherwise degenerate directions); a matrix that still fails is factored
    through its eigenvalues clipped at 0 (symmetric square root; never happens for imputers
    fitted by training.learners.missing, whose covariance is positive definite)."""
    S = (S + S.T) / 2
    if S.size == 0:
        return np.zeros_like(S)
    try:
        return np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        pass
    d = np.diag(S)
    scale = float(np.mean(np.abs(d))) or 1.0
    for j in COND_JITTER:
        try:
            return np.linalg.cholesky(S + np.diag(np.full(d.size, j * scale)))
        except np.linalg.LinAlgError:
            continue
    w, V = np.linalg.eigh(S)  # pragma: no cover - pathological input only
    return (V * np.sqrt(np.clip(w, 0, None))) @ V.T


def bound(imp: Imputer, F: np.ndarray) -> np.ndarray:
    return np.minimum(np.maximum(F, imp.lower), imp.upper)  # np.clip, without its overhead


def impute_draws(imp: Imputer | dict, F: np.ndarray) -> np.ndarray:
    """M conditional draws of the missing features (M from the stored standard-normal matrix
    ``z``, so the draws are deterministic): array (M, n, p). Observed entries are kept."""
    imp = Imputer.of(imp)
    mu, S, Z = imp.mean, imp.cov, imp.z
    M = Z.shape[0]
    out = np.repeat(F[None, :, :], M, axis=0)
    keys, inv = pattern_groups(F)
    for k, m in enumerate(keys):
        if not m.any():
            continue
        rows = np.flatnonzero(inv == k)
        o = ~m
        cm = np.broadcast_to(mu[m], (rows.size, m.sum())).copy()
        A, L = pattern_solve(imp, S, m)
        if o.any():
            cm += (F[np.ix_(rows, o)] - mu[o]) @ A
        noise = Z[:, m] @ L.T  # (M, |m|)
        mi = np.flatnonzero(m)
        out[:, rows[:, None], mi[None, :]] = cm[None, :, :] + noise[:, None, :]
    binary = imp.binary
    out[:, :, binary] = np.round(out[:, :, binary])
    return bound(imp, out)


def pattern_part(imp: Imputer, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For missing pattern ``m`` (p booleans): A (p, p; the regression of the missing on the
    observed features, zero elsewhere) and the draws' noise (M, p; Z[:, m] L', zero where
    observed), the same A and L as :func:`impute_mean` / :func:`impute_draws`. Cached per pattern
    in the imputer's :class:`PatternCache`, if it has one."""
    cache = imp.cache
    key = m.tobytes()
    if cache is not None:
        hit = cache.parts.get(key)
        if hit is not None:
            return hit
    mu, S, Z = imp.mean, imp.cov, imp.z
    M, p = Z.shape[0], mu.size
    A, L = pattern_solve(imp, S, m)
    Af = np.zeros((p, p))
    if A is not None:
        Af[np.ix_(~m, m)] = A
    Nf = np.zeros((M, p))
    Nf[:, m] = Z[:, m] @ L.T
    if cache is not None:
        cache.put(cache.parts, cache.PARTS, key, (Af, Nf))
    return Af, Nf


def impute_mean_fast(imp: Imputer, F: np.ndarray, groups=None) -> np.ndarray:
    """:func:`impute_mean` through the cached per-pattern regressions (:func:`pattern_part`) and the
    compiled conditional mean when numba is available (same numbers up to rounding)."""
    imp = Imputer.of(imp)
    if not (kernels.AVAILABLE and kernels.ready()):
        return impute_mean(imp, F)
    keys, inv = groups if groups is not None else pattern_groups(F)
    A_all, _ = pattern_parts(imp, keys)
    return bound(imp, column_kernels.cond_mean(F, imp.mean, A_all, inv))


def pattern_parts(imp: Imputer, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pattern_part` of every pattern in ``keys`` (K, p), stacked: (K, p, p), (K, M, p);
    zeros for the complete pattern."""
    p = imp.mean.size
    M = imp.z.shape[0]
    A_all = np.zeros((len(keys), p, p))
    N_all = np.zeros((len(keys), M, p))
    for k, m in enumerate(keys):
        if m.any():
            A_all[k], N_all[k] = pattern_part(imp, m)
    return A_all, N_all
