"""Credible and predictive intervals of a network node's benefit from the thinned posterior draws
an ML-NMR network file carries (``posterior``; training.network.mlnmr_export). numpy only; no
sampling at scoring time: the predictive draws use the file's fixed standard normals ``z_new``.

For a patient with modifier values z (missing ones imputed by the caller, who passes the
imputation variance ``var_missing``), per draw s: benefit_s = g(z)'θ_s (g from
predict.network.design); credible interval = equal-tailed quantiles of benefit_s + √var_missing·ζ_s,
predictive interval for a new trial = of benefit_s + τ_s·z_new,s + √var_missing·ζ_s (ζ a second
fixed normal set, the file's z_new reversed). Estimate = posterior mean, SE = posterior SD
(with the imputation variance).
"""
from __future__ import annotations

import math

import numpy as np

from predict import network as netrt


def check(net: dict) -> str | None:
    """Why the ``posterior`` block is unusable (None if it is, or if there is none)."""
    post = net.get("posterior")
    if post is None:
        return None
    try:
        terms = list(post["terms"])
        X = np.asarray(post["draws"], float)
        tau = np.asarray(post["tau"], float)
        z = np.asarray(post["z_new"], float)
    except (KeyError, TypeError, ValueError):
        return "posterior lacks terms, draws, tau or z_new"
    if terms != list(net["model"]["terms"]):
        return "posterior terms differ from the model's"
    if X.ndim != 2 or X.shape[1] != len(terms) or X.shape[0] < 20 or tau.shape != (X.shape[0],) or z.shape != tau.shape:
        return "posterior draws, tau and z_new have inconsistent shapes (or fewer than 20 draws)"
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(tau)) and np.all(tau >= 0) and np.all(np.isfinite(z))):
        return "non-finite posterior draws"
    return None


def has_posterior(net: dict | None) -> bool:
    return bool(net) and isinstance(net.get("posterior"), dict)


def _arrays(net: dict):
    p = net["posterior"]
    z = np.asarray(p["z_new"], float)
    return np.asarray(p["draws"], float), np.asarray(p["tau"], float), z, z[::-1].copy()


def intervals(net: dict, node: str, Z: np.ndarray, var_missing: np.ndarray, z: float):
    """(estimate, se, (ci_low, ci_high), (pi_low, pi_high)) per patient, at the two-sided level of
    the normal quantile ``z`` (e.g. 1.96 -> 95%)."""
    X, tau, znew, zeta = _arrays(net)
    G, _ = netrt.design(net, node, Z)
    B = X @ G.T  # (S, n) benefit draws
    sm = np.sqrt(np.asarray(var_missing, float))[None, :]
    cr = B + sm * zeta[:, None]
    pr = B + tau[:, None] * znew[:, None] + sm * zeta[:, None]
    level = math.erf(z / math.sqrt(2.0))
    qs = [(1 - level) / 2, (1 + level) / 2]
    ci = np.quantile(cr, qs, axis=0)
    pi = np.quantile(pr, qs, axis=0)
    est = B.mean(0)
    se = np.sqrt(B.var(0, ddof=1) + np.asarray(var_missing, float))
    clip = lambda a: np.clip(a, -100.0, 100.0)  # noqa: E731
    return est, se, (clip(ci[0]), clip(ci[1])), (clip(pi[0]), clip(pi[1]))
