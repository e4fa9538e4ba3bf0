"""Credible and predictive intervals of a network node's benefit from the thinned posterior draws
an ML-NMR network file carries (``posterior``; training.network.mlnmr_export). numpy only; no
sampling at scoring time.

For a patient with modifier values z (missing ones imputed by the caller, who passes the
imputation variance ``var_missing``) the benefit is b = g(z)'θ (g from predict.network.design).
:func:`intervals` (the scorer's path, O(terms²) per patient like the delta method):

* estimate = g'θ̄ and SE = √(g'Σg + var_missing), θ̄ and Σ the mean and covariance of the stored
  draws; credible interval = estimate ± z·SE (the posterior of θ is close to normal: the
  continuous ML-NMR's d and γ are Gaussian-model coefficients);
* predictive interval for a new trial: the equal-tailed quantiles of b + τ·ε + imputation noise,
  i.e. of the scale mixture (1/K) Σ_k N(g'θ̄, SE² + τ_k²) over K = 32 equally spaced quantiles τ_k
  of the stored τ draws (τ's posterior is skewed, so the predictive tails are heavier than one
  normal's), solved by Newton's method per patient.

:func:`intervals_exact` gives the same from the draws themselves (quantiles of b_s + √var_missing·ζ_s
and of b_s + τ_s·z_new,s + √var_missing·ζ_s, ζ the file's z_new reversed); the tests hold the two
together on a fitted network.
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


N_TAU = 32
GRID = 96  # patients' SEs at or above this count: the mixture quantile is interpolated on a grid
_MOMENTS: dict = {}  # id(posterior block) -> (the block, its moments): computed once per loaded file


def _moments(net: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(posterior mean of the terms, their covariance, K quantiles of τ) from the stored draws."""
    p = net["posterior"]
    hit = _MOMENTS.get(id(p))
    if hit is not None and hit[0] is p:
        return hit[1]
    X = np.asarray(p["draws"], float)
    tau = np.asarray(p["tau"], float)
    out = (X.mean(0), np.atleast_2d(np.cov(X, rowvar=False)), np.quantile(tau, (np.arange(N_TAU) + 0.5) / N_TAU))
    if len(_MOMENTS) >= 256:
        _MOMENTS.pop(next(iter(_MOMENTS)))
    _MOMENTS[id(p)] = (p, out)
    return out


def _newton(sd: np.ndarray, tk: np.ndarray, p: float) -> np.ndarray:
    from scipy.special import ndtr, ndtri

    s = np.maximum(np.sqrt(sd[:, None] ** 2 + tk[None, :] ** 2), 1e-12)  # (n, K)
    x = ndtri(p) * np.sqrt(np.mean(s ** 2, 1))
    for _ in range(8):
        u = x[:, None] / s
        f = ndtr(u).mean(1) - p
        d = (np.exp(-0.5 * u * u) / (math.sqrt(2 * math.pi) * s)).mean(1)
        x = x - f / np.maximum(d, 1e-300)
    return x


SD_MAX = 60.0  # cached grid of SEs 0..SD_MAX (0-100 scale); larger SEs are solved directly
_TABLES: dict = {}


def _mixture_quantile(sd: np.ndarray, tk: np.ndarray, p: float) -> np.ndarray:
    """Per patient, the ``p`` quantile (p > 1/2) of (1/K) Σ_k N(0, sd² + τ_k²): Newton's method from
    the moment-matched normal's quantile (the mixture's CDF is increasing; 8 steps reach 1e-10),
    solved once per posterior and level on a grid of SEs and interpolated (smooth in sd; the
    tests hold it to the direct solution within 2e-3)."""
    key = (tk.tobytes(), p)
    tab = _TABLES.get(key)
    if tab is None:
        grid = np.linspace(0.0, SD_MAX, 4 * GRID)
        tab = (grid, _newton(grid, tk, p))
        if len(_TABLES) >= 256:
            _TABLES.pop(next(iter(_TABLES)))
        _TABLES[key] = tab
    out = np.interp(sd, *tab)
    big = sd > SD_MAX
    if big.any():
        out[big] = _newton(sd[big], tk, p)
    return out


def intervals(net: dict, node: str, Z: np.ndarray, var_missing: np.ndarray, z: float):
    """(estimate, se, (ci_low, ci_high), (pi_low, pi_high)) per patient, at the two-sided level of
    the normal quantile ``z`` (e.g. 1.96 -> 95%): moments of the draws and a τ mixture (above)."""
    mean, cov, tk = _moments(net)
    G, _ = netrt.design(net, node, Z)
    est = G @ mean
    se = np.sqrt(np.maximum(np.einsum("nt,tu,nu->n", G, cov, G), 0.0) + np.asarray(var_missing, float))
    h = _mixture_quantile(se, tk, 0.5 * (1.0 + math.erf(z / math.sqrt(2.0))))
    clip = lambda a: np.clip(a, -100.0, 100.0)  # noqa: E731
    return est, se, (clip(est - z * se), clip(est + z * se)), (clip(est - h), clip(est + h))


def intervals_exact(net: dict, node: str, Z: np.ndarray, var_missing: np.ndarray, z: float):
    """As :func:`intervals`, from the quantiles of the stored draws themselves (the reference)."""
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
