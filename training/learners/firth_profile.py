"""Inference for Firth's logistic regression: profile penalised-likelihood confidence intervals and
penalised likelihood-ratio tests (Heinze & Schemper 2002; Heinze & Ploner 2003; R's ``logistf``).

Under separation the Wald interval at the Firth estimate is unreliable: the penalised log-likelihood
``l*(b) = l(b) + 0.5 log det I(b)`` is far from quadratic in the separating direction (it falls
slowly towards infinity and steeply towards zero), so a symmetric interval is too short on one side
and too long on the other. The standard (logistf's default, ``pl = TRUE``) is to invert the
penalised likelihood-ratio test:

- the profile ``l*_j(c) = max over the other coefficients of l*(b) with b_j = c``, where the penalty is
  always that of the full model (:func:`training.learners.separation.firth_newton` with the other
  coordinates free);
- the ``1 - alpha`` interval is ``{c : 2 (l*(b_hat) - l*_j(c)) <= chi2_1(1 - alpha)}``; its two limits
  are found here by bracketing and Brent's root finding on the profile (logistf uses the
  Venzon-Moolgavkar iteration: the same limits, another route to them);
- under complete separation by several covariates ``l*`` can have several local maxima in the other
  coefficients, so each profile point is the best of Newton runs from several starts, and the set
  inside the cut need not even be connected (the intercept of benchmarks/bench_firth_logistf.py's
  ``constructed_complete``): the limits are the first crossings going outwards from the estimate;
- the test of ``b_J = 0`` for a set ``J`` is ``2 (l*(b_hat) - l*_J(0))`` on chi2 with ``|J|`` df.

The covariance reported next to them is logistf's (1.26): the inverse of ``X' diag(w (1 + h)) X`` at the
Firth estimate, ``w = mu (1 - mu)`` and ``h`` the hat diagonal - the Fisher information of Firth's
augmented data (each participant counted ``1 + h`` times); in a 2x2 table it is Woolf's variance of
the log odds ratio with 1/2 added to every cell.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats
from scipy.special import expit

from training.learners.separation import firth_newton

FAR = 1000.0
"""No interval limit is searched beyond this distance (log-odds units) from the estimate: past it the
limit is reported as infinite (a flat profile; does not happen with a full-rank design)."""


@dataclass(frozen=True)
class FirthFit:
    """Firth's fit of a logistic regression: estimate, logistf's covariance (module docstring), the
    maximised penalised log-likelihood and whether the iteration converged."""
    beta: np.ndarray
    cov: np.ndarray
    loglik: float
    converged: bool


def firth(X: np.ndarray, y: np.ndarray, offset: np.ndarray | None = None) -> FirthFit:
    """Firth's bias-reduced logistic regression of 0/1 ``y`` on ``X`` (with an optional offset)."""
    b, pl, ok = firth_newton(X, y, offset=offset, tol=1e-10)
    eta = X @ b + (0.0 if offset is None else offset)
    w = expit(eta) * expit(-eta)
    Xw = X * w[:, None]
    h = w * np.einsum("ij,jk,ik->i", X, np.linalg.inv(Xw.T @ X), X)
    cov = np.linalg.inv((Xw * (1 + h)[:, None]).T @ X)
    return FirthFit(b, cov, float(pl), bool(ok))


def constrained(X, y, fit: FirthFit, idx, values, offset=None, start=None) -> tuple[np.ndarray, float, bool]:
    """The Firth fit with the coefficients ``idx`` held at ``values`` (full-model penalty)."""
    idx = np.atleast_1d(np.asarray(idx, int))
    b0 = np.array(fit.beta if start is None else start, float)
    b0[idx] = values
    free = np.ones(b0.size, bool)
    free[idx] = False
    return firth_newton(X, y, offset=offset, start=b0, free=free, tol=1e-10)


def plr_test(X, y, fit: FirthFit, idx, offset=None) -> tuple[float, int, float]:
    """Penalised likelihood-ratio test of ``b_idx = 0``: (chi-squared statistic, df, p)."""
    idx = np.atleast_1d(np.asarray(idx, int))
    _, pl0, _ = constrained(X, y, fit, idx, 0.0, offset)
    stat = max(2.0 * (fit.loglik - pl0), 0.0)
    return stat, int(idx.size), float(stats.chi2.sf(stat, idx.size))


def profile_ci(X, y, fit: FirthFit, j: int, level: float = 0.95, offset=None,
               xtol: float = 1e-8) -> tuple[float, float, bool]:
    """(lower, upper, converged): the profile penalised-likelihood interval of coefficient ``j``
    (module docstring). ``converged`` is False when some constrained fit did not converge."""
    target = fit.loglik - 0.5 * float(stats.chi2.ppf(level, 1))
    est = float(fit.beta[j])
    seen: dict[float, np.ndarray] = {est: fit.beta}
    state = {"ok": True}

    def gap(c: float) -> float:
        # l* need not be concave in the other coefficients: the best of Newton runs from the nearest
        # point already profiled, from the estimate, from the estimate scaled along its own ray (the
        # direction a separating fit runs off in) and from zero (each with b_j = c)
        near = seen[min(seen, key=lambda v: abs(v - c))]
        starts = [near, fit.beta, np.zeros_like(fit.beta)] + ([fit.beta * (c / est)] if est != 0 else [])
        runs = [constrained(X, y, fit, j, c, offset, start=s) for s in starts]
        b, pl, ok = max(runs, key=lambda r: r[1])
        seen[c] = b
        state["ok"] = state["ok"] and ok
        return pl - target

    se = float(np.sqrt(max(fit.cov[j, j], 0.0)))
    limits = []
    for side in (-1.0, 1.0):
        inner, step = est, max(se, 0.1)
        outer = est + side * step
        while gap(outer) > 0:
            if step > FAR:
                outer = side * np.inf
                break
            inner, step = outer, 2 * step
            outer = est + side * step
        if np.isfinite(outer):
            lo, hi = sorted((inner, outer))
            outer = optimize.brentq(gap, lo, hi, xtol=xtol, rtol=1e-12)
        limits.append(float(outer))
    return limits[0], limits[1], bool(state["ok"])
