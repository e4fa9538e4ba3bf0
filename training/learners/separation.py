"""Separation in logistic fits: detect it, and fit Firth's bias-reduced logistic regression instead.

Under complete or quasi-complete separation (Albert & Anderson 1984) the maximum-likelihood logistic
fit does not exist: some linear combination of the columns splits events from non-events, a
coefficient runs off to infinity and fitted probabilities go to 0 or 1. Seen on
medicaldata::laryngoscope (s12r): all 49 Macintosh intubations succeeded, the (barely penalised)
fit predicted 0.99998 with a risk-difference interval of about +/-0.004 - dishonest certainty.

- :func:`separated`: the linear-programming check of Konis (2007; R's ``detectseparation``): the data
  ``(X, y)`` are separated iff some ``b`` with ``s_i x_i'b >= 0`` for every row (``s = 2y - 1``) has
  ``sum_i s_i x_i'b > 0``; HiGHS maximises that sum over the box ``|b_j| <= 1``.
- :func:`firth_fit`: argmax of ``loglik(b) + 0.5 log det(X'WX + P) - 0.5 b'Pb`` (Firth 1993;
  Heinze & Schemper 2002: Jeffreys' prior as a penalty, here on top of the learners' ridge penalty
  ``P``; with ``P = 0`` the usual Firth fit). Its score is the modified score
  ``X'(y - mu + h (1/2 - mu)) - P b`` with ``h`` the diagonal of the hat matrix
  ``W^1/2 X (X'WX + P)^-1 X' W^1/2``; Newton steps with ``X'WX + P`` as the curvature, each
  at most 5 per coordinate and halved until the penalised log-likelihood rises (as logistf).
  Estimates are always finite, fitted probabilities stay away from 0 and 1, and the Wald variance
  from ``X'WX + P`` at the Firth estimate is finite and not spuriously small.
"""
from __future__ import annotations

import numpy as np
from scipy import optimize
from scipy.special import expit

GATE = 1e-3
"""A fit is checked for separation only when some fitted probability lies within this of 0 or 1 (a
finite maximum-likelihood fit of non-separated data rarely goes there; the check is then the LP)."""


def near_boundary(eta: np.ndarray, gate: float = GATE) -> bool:
    """Whether some fitted probability ``expit(eta)`` lies within ``gate`` of 0 or 1."""
    return bool(eta.size) and float(np.max(np.abs(eta))) > float(np.log((1 - gate) / gate))


def separated(X: np.ndarray, y: np.ndarray, tol: float = 1e-7) -> bool:
    """Konis's LP check: True iff ``(X, y)`` is completely or quasi-completely separated (the
    logistic maximum-likelihood estimate does not exist)."""
    sX = X * (2.0 * y - 1.0)[:, None]
    keep = np.any(sX != 0, axis=0)
    if not np.any(keep):
        return False
    sX = sX[:, keep]
    scale = np.maximum(np.abs(sX).max(axis=0), 1e-300)
    sX = sX / scale  # b's box in scaled units: the same cone of separating directions
    res = optimize.linprog(-sX.sum(axis=0), A_ub=-sX, b_ub=np.zeros(sX.shape[0]),
                           bounds=[(-1.0, 1.0)] * sX.shape[1], method="highs")
    if res.status != 0:
        return False
    m = sX @ res.x
    return bool(-res.fun > tol * max(1.0, sX.shape[0]) and m.min() > -tol and m.max() > tol)


def penalised_loglik(X, y, b, pen, off):
    """The objective :func:`firth_fit` maximises: log-likelihood + 0.5 log det(X'WX + P) - 0.5 b'Pb."""
    eta = X @ b + off
    ll = float(np.sum(y * eta - np.logaddexp(0.0, eta)))
    H = (X * (expit(eta) * expit(-eta))[:, None]).T @ X + np.diag(pen)  # w without cancellation
    sign, logdet = np.linalg.slogdet(H)
    return ll + 0.5 * logdet - 0.5 * float(np.sum(pen * b * b)) if sign > 0 else -np.inf


def firth_fit(X: np.ndarray, y: np.ndarray, pen: np.ndarray | None = None, offset: np.ndarray | None = None,
              max_iter: int = 200, tol: float = 1e-9, max_step: float = 5.0) -> tuple[np.ndarray, bool]:
    """(estimate, converged) of the Firth-penalised logistic regression of ``y`` on ``X`` with the
    extra ridge penalty ``0.5 sum(pen * b^2)`` (module docstring)."""
    b, _, ok = firth_newton(X, y, pen, offset, max_iter=max_iter, tol=tol, max_step=max_step)
    return b, ok


def firth_newton(X: np.ndarray, y: np.ndarray, pen: np.ndarray | None = None, offset: np.ndarray | None = None,
                 start: np.ndarray | None = None, free: np.ndarray | None = None, max_iter: int = 200,
                 tol: float = 1e-9, max_step: float = 5.0) -> tuple[np.ndarray, float, bool]:
    """(estimate, penalised log-likelihood, converged): :func:`firth_fit`'s iteration, optionally
    over the coordinates ``free`` only (a boolean mask; the others stay at ``start``'s values).
    With coordinates held fixed the penalty is still that of the FULL model, ``0.5 log det(X'WX + P)``
    over all columns, and the free coordinates solve their components of the full model's modified
    score: the profile penalised likelihood of Heinze & Schemper (2002), as R's logistf profiles it."""
    p = X.shape[1]
    pen = np.zeros(p) if pen is None else np.asarray(pen, float)
    off = np.zeros(y.size) if offset is None else offset
    b = np.zeros(p) if start is None else np.array(start, float)
    F = np.ones(p, bool) if free is None else np.asarray(free, bool)
    obj = penalised_loglik(X, y, b, pen, off)
    if not F.any():
        return b, obj, True
    for _ in range(max_iter):
        eta = X @ b + off
        mu = expit(eta)
        w = mu * expit(-eta)  # = mu (1 - mu), accurate where mu is near 1
        H = (X * w[:, None]).T @ X + np.diag(pen)
        try:
            Hinv = np.linalg.inv(H)
            h = w * np.einsum("ij,jk,ik->i", X, Hinv, X)
            U = X.T @ (y - mu + h * (0.5 - mu)) - pen * b
            step = np.zeros(p)
            if F.all():
                step = Hinv @ U
            else:
                step[F] = np.linalg.solve(H[np.ix_(F, F)], U[F])
        except np.linalg.LinAlgError:  # the weights underflowed (a start far out): no fit from here
            return b, obj, False
        big = np.max(np.abs(step))
        if big > max_step:
            step *= max_step / big
        halved = False
        for _ in range(30):
            new = penalised_loglik(X, y, b + step, pen, off)
            if new >= obj - 1e-12 * abs(obj):
                break
            step, halved = step / 2, True
        else:  # no ascent along the step: stationary to rounding, or stuck
            return b, obj, bool(np.max(np.abs(U[F])) < 1e3 * tol)
        b, obj = b + step, new
        # a step made small by halving is no sign of convergence; a full Newton step this small is
        if np.max(np.abs(U[F])) < tol or (not halved and np.max(np.abs(step)) < tol):
            return b, obj, True
    return b, obj, False
