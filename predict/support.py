"""How far a patient lies from the training support, and intervals widened for extrapolation.

Computed at scoring time from numbers stored in the model (no sampling, no pickle).

Distance. The learners' imputer already holds a multivariate normal description of the training
participants' inputs (pooled mean ``mu`` and total covariance ``S`` = within + between trials).
For a patient with observed features ``o`` (k of them) the squared Mahalanobis distance
``d2 = (x_o - mu_o)' S_oo^-1 (x_o - mu_o)`` is, for a training participant, roughly chi-square
with k degrees of freedom. The Wilson-Hilferty transform
``z = ((d2 / k)^(1/3) - (1 - 2 / (9k))) / sqrt(2 / (9k))`` puts patients with different numbers of
observed inputs on one roughly standard-normal scale (missing inputs do not count as distance:
they are handled by the imputation and its own interval widening). Because the features are
not Gaussian (binary, skewed), the scale is *calibrated* on the training participants: the model
stores the empirical quantiles of ``z`` over them, the patient's ``percentile`` is the share of
training participants closer to the centre, and ``cut`` is the training 95th percentile of z.

Widening. Beyond the cut the model extrapolates: nothing in the trials says how the benefit
continues, and a smooth but wrong continuation errs roughly in proportion to the squared distance
beyond the data. With ``d_cut`` the Mahalanobis radius that corresponds to ``cut`` for this
patient's k, ``factor = max(1, d / d_cut) ** power`` (``power`` stored, 2 by default) multiplies
both the CI and the PI half-widths (estimation, missing-data and between-trial parts alike).
Patients with ``z`` above the training 99th percentile are called *rare* ("patients like this
were rare in the trials"). This is a stated, simple rule (checked against simulator truth in
``benchmarks/bench_learners.py``: scenario ``plateau`` -> new trial ``edge_trial``), not a
model of the extrapolation error.

Calibrated widening (optional field ``inflation``, version 1, from 2026-12-07 session 12; written by
``training.learners.support_calibration`` from the held-out trials of IECV). With ``rho = d / d_cut``
(the ``ratio`` reported per patient) the interval's *variance* is multiplied by
``1 + kappa * max(0, rho - 1) ** 2`` (one parameter, monotone, smooth at the cut), i.e.
``factor = sqrt(1 + kappa * max(0, rho - 1) ** 2)`` replaces ``max(1, rho) ** power``. A support
entry without the field scores exactly as before; a field of another method or version is refused.

Model layout (key ``support`` of a learner export)::

    {"method": "mahalanobis-wh", "features": [indices j used], "mean": [k], "cov": [[k x k]], "quantiles": [21 values of z at
     0, 5, ..., 100%], "cut": z_95, "rare": z_99, "power": 2.0, "n": training participants,
     "inflation": {"method": "heldout-excess-quadratic", "version": 1, "kappa": kappa, ...} (optional)}
"""
from __future__ import annotations

import math
import threading

import numpy as np

METHOD = "mahalanobis-wh"
QUANTILE_LEVELS = np.linspace(0.0, 1.0, 21)
CUT_LEVEL = 0.95
RARE_LEVEL = 0.99
POWER = 2.0
INFLATION_KEY = "inflation"
INFLATION_METHOD = "heldout-excess-quadratic"
INFLATION_VERSION = 1


class SupportFieldError(ValueError):
    """A ``support`` entry's ``inflation`` field cannot be used by this runtime."""


def inflation_kappa(support: dict) -> float | None:
    """``kappa`` of the entry's calibrated widening (module docstring), or None without the field
    (the stated rule ``max(1, rho) ** power`` applies). Raises :class:`SupportFieldError` for another
    method or version or a kappa that is not a finite number >= 0."""
    f = support.get(INFLATION_KEY)
    if f is None:
        return None
    if not isinstance(f, dict) or f.get("method") != INFLATION_METHOD or f.get("version") != INFLATION_VERSION:
        raise SupportFieldError(f"support.{INFLATION_KEY}: only method {INFLATION_METHOD!r} version "
                                f"{INFLATION_VERSION} is known to this runtime, got {f!r:.120}")
    k = f.get("kappa")
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k) or k < 0:
        raise SupportFieldError(f"support.{INFLATION_KEY}.kappa must be a finite number >= 0, got {k!r}")
    return float(k)


def widening(ratio, power: float, kappa: float | None):
    """The interval widening factor (>= 1) at distance ratio ``rho = d / d_cut`` (arrays or floats):
    ``sqrt(1 + kappa max(0, rho - 1)^2)`` with a calibrated ``kappa``, else ``max(1, rho) ** power``."""
    if isinstance(ratio, float):  # one patient: plain float arithmetic (no array calls on the per-request path)
        return max(ratio, 1.0) ** power if kappa is None else math.sqrt(1.0 + kappa * max(ratio - 1.0, 0.0) ** 2)
    if kappa is None:
        return np.maximum(ratio, 1.0) ** power
    return np.sqrt(1.0 + kappa * np.maximum(np.asarray(ratio, float) - 1.0, 0.0) ** 2)


def _wh(d2: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Wilson-Hilferty standard-normal score of d2 ~ chi2(k); -inf where k == 0."""
    k = np.asarray(k, float)
    out = np.full(d2.shape, -np.inf)
    ok = k > 0
    kk = k[ok]
    c = 2.0 / (9.0 * kk)
    out[ok] = (np.cbrt(d2[ok] / kk) - (1.0 - c)) / np.sqrt(c)
    return out


def _radius2(z: float, k: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_wh`: the squared distance with score ``z`` at k degrees of freedom."""
    k = np.asarray(k, float)
    c = 2.0 / (9.0 * np.maximum(k, 1.0))
    return np.maximum(k, 1.0) * np.clip(1.0 - c + z * np.sqrt(c), 0.0, None) ** 3


class Factors:
    """A mean and covariance with the Cholesky factor of the covariance restricted to each
    observed-feature pattern, computed once per pattern (kept in :attr:`by_pattern`)."""

    def __init__(self, mean, cov):
        self.mean = np.asarray(mean, float)
        self.cov = np.asarray(cov, float)
        self.by_pattern: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def factor(self, o: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean of the observed features, Cholesky factor of their covariance) for pattern ``o``."""
        key = o.tobytes()
        hit = self.by_pattern.get(key)
        if hit is None:
            Soo = self.cov[np.ix_(o, o)]
            try:
                L = np.linalg.cholesky(Soo)
            except np.linalg.LinAlgError:
                L = np.linalg.cholesky(Soo + np.eye(o.sum()) * 1e-9 * max(float(np.mean(np.diag(Soo))), 1e-12))
            if len(self.by_pattern) > 4096:
                self.by_pattern.clear()
            hit = self.by_pattern[key] = (self.mean[o], L)
        return hit

    def distances(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(squared Mahalanobis distance over each row's observed features, number observed) of the
        rows of ``X`` (these features, NaN = missing); one Cholesky solve per missing-data pattern."""
        X = np.asarray(X, float)
        n = X.shape[0]
        d2, k = np.zeros(n), np.zeros(n)
        if n == 0:
            return d2, k
        obs = ~np.isnan(X)
        if n == 1:  # one patient (an API request): one pattern, no grouping
            keys, inv = obs, np.zeros(1, np.intp)
        else:
            keys, inv = np.unique(obs, axis=0, return_inverse=True)
            inv = inv.reshape(-1)
        for j, o in enumerate(keys):
            if not o.any():
                continue
            rows = inv == j
            mu, L = self.factor(o)
            W = np.linalg.solve(L, (X[np.ix_(rows, o)] - mu).T)
            d2[rows] = np.sum(W * W, axis=0)
            k[rows] = o.sum()
        return d2, k


def mahalanobis(mean, cov, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(squared Mahalanobis distance over each row's observed features, number observed);
    one Cholesky solve per missing-data pattern (:class:`Factors`)."""
    return Factors(mean, cov).distances(F)


def fit_support(mean, cov, F_train: np.ndarray, features=None, power: float = POWER) -> dict:
    """The ``support`` entry of an export from the training rows' features (NaN = missing):
    ``mean``/``cov`` of all p features, ``features`` the indices the distance uses (default all)."""
    feats = list(range(np.asarray(F_train).shape[1])) if features is None else [int(j) for j in features]
    mean = np.asarray(mean, float)[feats]
    cov = np.asarray(cov, float)[np.ix_(feats, feats)]
    d2, k = mahalanobis(mean, cov, np.asarray(F_train, float)[:, feats])
    z = _wh(d2, k)
    z = z[np.isfinite(z)]
    if z.size == 0:
        z = np.zeros(1)
    q = np.quantile(z, QUANTILE_LEVELS)
    return {"method": METHOD, "features": feats, "mean": [float(v) for v in mean],
            "cov": np.asarray(cov, float).tolist(), "quantiles": [float(v) for v in q],
            "cut": float(np.quantile(z, CUT_LEVEL)), "rare": float(np.quantile(z, RARE_LEVEL)),
            "power": float(power), "n": int(z.size)}


class _Prepared:
    """A ``support`` entry as arrays, its :class:`Factors` (the Cholesky factor per observed-feature
    pattern met so far) and, per pattern, the same numbers as Python lists for :meth:`one`."""

    __slots__ = ("feats", "quantiles", "cut", "rare", "power", "kappa", "factors", "rows")

    def __init__(self, support: dict):
        self.feats = np.asarray(support["features"], np.intp)
        self.quantiles = np.asarray(support["quantiles"], float)
        self.cut = float(support["cut"])
        self.rare = float(support["rare"])
        self.power = float(support.get("power", POWER))
        self.kappa = inflation_kappa(support)
        self.factors = Factors(support["mean"], support["cov"])
        self.rows: dict[bytes, tuple[list[int], list[float], list[list[float]]]] = {}

    def one(self, x: np.ndarray) -> dict:
        """:func:`support_scores` of one patient (``x``: all p features), in Python floats: a single
        patient's few numbers cost numpy more in per-call overhead than in arithmetic. The same
        formulas; the distance by forward substitution with the pattern's Cholesky factor (equal to
        the array path up to rounding, ~1e-15 relative)."""
        v = x[self.feats]
        o = ~np.isnan(v)
        key = o.tobytes()
        hit = self.rows.get(key)
        if hit is None:
            idx = [int(j) for j in np.flatnonzero(o)]
            if idx:
                mu, L = self.factors.factor(o)
                hit = (idx, [float(m) for m in mu], L.tolist())
            else:
                hit = (idx, [], [])
            if len(self.rows) > 4096:
                self.rows.clear()
            self.rows[key] = hit
        idx, mu, L = hit
        k = len(idx)
        if k == 0:
            return {"z": -math.inf, "percentile": 0.0, "factor": 1.0, "rare": False, "ratio": 0.0}
        vals = v.tolist()
        w: list[float] = []
        d2 = 0.0
        for i, j in enumerate(idx):  # W = L^-1 (x_o - mu_o), forward substitution
            row = L[i]
            t = vals[j] - mu[i]
            for m in range(i):
                t -= row[m] * w[m]
            t /= row[i]
            w.append(t)
            d2 += t * t
        c = 2.0 / (9.0 * k)
        z = (math.cbrt(d2 / k) - (1.0 - c)) / math.sqrt(c)
        pct = 100.0 * float(np.interp(z, self.quantiles, QUANTILE_LEVELS, left=0.0, right=1.0)) \
            if math.isfinite(z) else 0.0
        r2 = k * max(1.0 - c + self.cut * math.sqrt(c), 0.0) ** 3
        ratio = math.sqrt(d2 / max(r2, 1e-12))
        return {"z": z, "percentile": pct, "factor": widening(float(ratio), self.power, self.kappa), "rare": math.isfinite(z) and z > self.rare,
                "ratio": ratio}


_PREPARED: dict[int, tuple[dict, _Prepared]] = {}
_PREPARED_LOCK = threading.Lock()


def _prepared(support: dict) -> _Prepared:
    """The :class:`_Prepared` form of a ``support`` entry, kept per entry (by identity: the entry is
    held with it, so its id is not reused while cached); the export itself is not modified."""
    hit = _PREPARED.get(id(support))
    if hit is not None and hit[0] is support:
        return hit[1]
    prep = _Prepared(support)
    with _PREPARED_LOCK:
        if len(_PREPARED) > 256:
            _PREPARED.clear()
        _PREPARED[id(support)] = (support, prep)
    return prep


def support_scores(support: dict | None, F: np.ndarray) -> dict:
    """Per patient: ``z`` (calibrated distance score), ``percentile`` (share of training
    participants closer to the centre, 0-100), ``factor`` (interval widening, >= 1), ``rare``
    (bool) and ``ratio`` (``d / d_cut``, > 1 beyond the cut; 0 without observed distance features).
    Without a ``support`` entry (older models) factor 1, nothing rare and ratio NaN."""
    n = np.asarray(F).shape[0]
    if not support or not support.get("features"):
        return {"z": np.full(n, np.nan), "percentile": np.full(n, np.nan), "factor": np.ones(n),
                "rare": np.zeros(n, bool), "ratio": np.full(n, np.nan)}
    prep = _prepared(support)
    if n == 1:
        one = prep.one(np.asarray(F, float)[0])
        return {"z": np.array([one["z"]]), "percentile": np.array([one["percentile"]]),
                "factor": np.array([one["factor"]]), "rare": np.array([one["rare"]]),
                "ratio": np.array([one["ratio"]])}
    d2, k = prep.factors.distances(np.asarray(F, float)[:, prep.feats])
    z = _wh(d2, k)
    pct = np.where(np.isfinite(z), 100.0 * np.interp(z, prep.quantiles, QUANTILE_LEVELS, left=0.0, right=1.0), 0.0)
    r2 = _radius2(prep.cut, k)
    ratio = np.where(k > 0, np.sqrt(d2 / np.maximum(r2, 1e-12)), 0.0)
    factor = widening(ratio, prep.power, prep.kappa)
    rare = np.isfinite(z) & (z > prep.rare)
    return {"z": z, "percentile": pct, "factor": factor, "rare": rare, "ratio": ratio}


def widen(estimate: np.ndarray, low: np.ndarray, high: np.ndarray, factor: np.ndarray,
          limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Interval half-widths multiplied by ``factor`` around ``estimate``, clipped to +-limit.
    (A bound already clipped at the limit stays there.)"""
    lo = np.clip(estimate - factor * (estimate - low), -limit, limit)
    hi = np.clip(estimate + factor * (high - estimate), -limit, limit)
    return lo, hi


def widen_task(learner, F: np.ndarray, estimate: np.ndarray, ci: tuple, pi: tuple) -> tuple[tuple, tuple]:
    """A task's benefit CI and PI (``(low, high)`` arrays over patients) widened for extrapolation
    by the factor of its learner's own ``support`` (:mod:`predict.learner_model`; unchanged
    without one)."""
    sup = learner.support
    if not sup or not sup.get("features"):
        return ci, pi
    f = support_scores(sup, F)["factor"]
    if not (f > 1.0).any():
        return ci, pi
    lim = 1.0 if learner.outcome_type == "binary" else 100.0
    return widen(estimate, ci[0], ci[1], f, lim), widen(estimate, pi[0], pi[1], f, lim)


def rare_patients(supports: list, F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per patient: rare for any task's support, the largest percentile and the largest widening
    factor over the tasks (the "patients like this were rare" warning is worded in
    :mod:`predict.clinical_warnings`)."""
    n = np.asarray(F).shape[0]
    pct = np.zeros(n)
    fac = np.ones(n)
    rare = np.zeros(n, bool)
    for sup in supports:  # the tasks' support entries
        s = support_scores(sup, F)
        rare |= s["rare"]
        pct = np.fmax(pct, s["percentile"])
        fac = np.maximum(fac, s["factor"])
    return rare, pct, fac
