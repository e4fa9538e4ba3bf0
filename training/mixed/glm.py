"""Binomial regression without random effects: the checks of binomial data and the maximum-likelihood
logistic fit that starts the GLMM (:mod:`training.mixed.glmm`) and serves the stratified
common-effect and single-trial analyses (:mod:`training.meta.few_trials`).

Model: ``y_i ~ Binomial(n_i, expit(x_i' beta))``; Newton's method with step-halving on the
negative log-likelihood (a step is halved until it does not raise it).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special

from predict.errors import LbpError


def binomial_sizes(y, trials_n, n):
    """The binomial sizes (ones when ``trials_n`` is None), after checking ``y`` and ``trials_n``."""
    y = np.asarray(y, dtype=float)
    if trials_n is None:
        ntr = np.ones(n)
    else:
        ntr = np.asarray(trials_n, dtype=float).ravel()
        if ntr.shape[0] != n:
            raise LbpError(f"trials_n has {ntr.shape[0]} entries but y has {n}")
        if not np.all(np.isfinite(ntr)):
            raise LbpError("trials_n contains missing or non-finite values")
        if (ntr < 1).any() or (ntr != np.round(ntr)).any():
            raise LbpError("trials_n must be positive integers (binomial sizes)")
    if y.ndim == 1 and np.all(np.isfinite(y)):
        if trials_n is None:
            bad = (y != 0) & (y != 1)
            if bad.any():
                raise LbpError(f"y must be 0/1 for a Bernoulli outcome (trials_n not given); "
                               f"{int(bad.sum())} row(s) are not (first row {int(np.flatnonzero(bad)[0])})")
        else:
            bad = (y < 0) | (y > ntr) | (y != np.round(y))
            if bad.any():
                raise LbpError(f"y must be integer counts between 0 and trials_n; {int(bad.sum())} row(s) are not "
                               f"(first row {int(np.flatnonzero(bad)[0])})")
    return ntr


def logistic_glm(X, y, ntr):
    """Logistic regression (no random effects) by Newton's method with step-halving, started from
    the pooled log-odds: (beta, Fisher information X' W X with weights floored at 1e-8)."""
    p_ = X.shape[1]
    beta = np.zeros(p_)
    pbar = np.clip((y.sum() + 0.5) / (ntr.sum() + 1.0), 1e-6, 1 - 1e-6)
    # intercept-like start: solve X b ~ logit(pbar) in least squares
    beta = np.linalg.lstsq(X, np.full(len(y), math.log(pbar / (1 - pbar))), rcond=None)[0]

    def nll(b):
        eta = X @ b
        return -(y * eta - ntr * np.logaddexp(0, eta)).sum()

    f = nll(beta)
    for _ in range(100):
        eta = X @ beta
        p = special.expit(eta)
        w = ntr * p * (1 - p)
        g = X.T @ (y - ntr * p)
        Hm = (X * w[:, None]).T @ X + 1e-10 * np.eye(p_)
        step = np.linalg.solve(Hm, g)
        t = 1.0
        while t > 1e-8:
            fn = nll(beta + t * step)
            if fn <= f + 1e-12 * abs(f):
                break
            t *= 0.5
        beta, f = beta + t * step, fn
        if np.abs(t * step).max() < 1e-10:
            break
    eta = X @ beta
    p = special.expit(eta)
    w = ntr * p * (1 - p)
    return beta, (X * np.maximum(w, 1e-8)[:, None]).T @ X
