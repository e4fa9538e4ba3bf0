"""Empirical-Bayes shrinkage of class-specific average effects towards their comparison set.

The linear learners give every comparator class c its own average effect a_c (an offset beside
the modification h(x), which is already shared by all classes). A class compared with the active
class in one or two small trials gets a noisy a_c, and a patient's benefit against it can then be
worse than the class's true average effect alone. The classes of one comparison set of the study
config (e.g. no treatment, placebo and usual care) are treated as exchangeable::

    a_c ~ N(mu_G, s_G^2)   for the classes c of set G,

with mu_G and s_G^2 estimated from the classes' estimates a_hat_c and their (trial-cluster
bootstrap) variances v_c by DerSimonian-Laird moments. The posterior mean

    a_c* = mu_G + w_c (a_hat_c - mu_G),   w_c = s_G^2 / (s_G^2 + v_c)

pulls a class towards the set's shared effect by how little its own trials and participants say
(v_c shrinks with both, and carries the between-trial heterogeneity), and leaves a well-measured
class (or a set whose classes clearly differ: large s_G^2) where it is. The covariance of the
coefficients is mapped through the same linear map and gets the posterior term w_c (1 - w_c) v_c
(so the interval is the normal-normal posterior interval, not the narrower sampling interval of a
shrunk estimate).

Limited translation (Efron & Morris 1972, JASA 67:130; Efron 1975, Adv. Math. 16:259), opt-in
(``limit``; off by default, train does not use it yet): with 2-4 classes the moment estimate s_G^2 is
often 0 or too small, and a class is then pulled to the set whatever its own evidence (the outside
simulator, BENCHMARKS.md session 11 i23o/i23c: no treatment's own 9.08, SE 2.4, pulled to 6.86,
truth 10.6, CI coverage 0.62). With ``limit`` = k no class moves more than k sqrt(v_c) from its own
estimate: where the pull would go further the class keeps its own estimate moved by exactly that
much towards the set, and its interval is the sampling interval of its own estimate (map row e_c,
variance v_c, no posterior term: the pooling is not trusted there, so neither is the narrower
posterior variance). Every class's root-MSE is then at most (1 + k) sqrt(v_c) (Minkowski), whatever the
other classes do.
Measured (BENCHMARKS.md i23c): k = 1 never binds on the project's or the outside simulator's data;
k = 0.5 improves the outside failure (coverage 0.62 -> 0.79) but gives up a quarter of the gain for a
sparse class whose set really is exchangeable, so it is not the default.

The spread s_G (``spread``; the module's ``SPREAD`` is what ``train`` uses):
- ``"dl"``: the DerSimonian-Laird moment estimate, plugged in. From 2-4 classes it is often exactly 0,
  and every class of the set is then pooled completely, with an interval as narrow as if the classes were
  known to be equal.
- ``"posterior"``: s_G^2 = E[s^2 | a_hat], plugged in: the restricted likelihood of the class estimates
  (mu_G integrated out under a flat prior) times a half-normal prior on s whose scale ``prior_scale`` is
  given by the caller (the effect model: its pooled between-trial tau, the yardstick session 11's i23h uses
  for a class's own tau; Roever et al. 2021, Res. Synth. Methods 12:448, half-normal heterogeneity priors).
  The pull is then never complete unless the prior scale is 0. Measured, not the default (BENCHMARKS.md
  session 12, s12k): with the pooled tau as scale it fails where the trials show no heterogeneity (tau 0,
  the prior a point mass: every set pooled completely, also classes that clearly differ; `none` scenario).
- ``"integrated"``: full posterior integration over s on the same grid (hierarchical Bayes with a flat
  prior on mu_G; Gelman et al., BDA3 sec. 5.4): the point estimate is E_s[a_c*(s)] and the variance
  E_s[var(a_c* | s)] + var_s(a_c*(s)) (the linear map averaged over the posterior of s).

The half-normal prior's scale (``PRIOR``, used by the two posterior spreads; :func:`prior_scale`):
- ``"tau"`` (session 12, s12k): the fit's pooled between-trial tau on the offsets' scale. It is 0 where the
  trials show no heterogeneity, and the prior is then a point mass: every set pooled completely, also classes
  that clearly differ (the `none` scenario). The trial tau and the spread between classes are different
  quantities.
- ``"outcome"`` (session 13, s13k): a weakly informative scale fixed on the outcome's own scale, independent
  of the trial tau: ``PRIOR_FRACTION`` (1/4) of the within-trial residual SD sqrt(sigma2) of the outcome
  (continuous; HN(sigma/4) puts the prior median of the spread at 0.17 sigma and its 95th percentile at
  0.49 sigma, i.e. class differences up to about half an outcome SD are plausible a priori), and 1/4 of the
  standard logistic SD pi/sqrt(3) (0.45) for log-odds offsets (binary; near the half-normal scale 0.5 used
  for log odds ratios' heterogeneity: Friede et al. 2017, Biom. J. 59:658; Roever et al. 2021). The
  scale's choice on the outcome's scale follows Gelman 2006 (Bayesian Anal. 1:515) and Roever et al. 2021
  (a scale set by the outcome's unit-information SD rather than by the data's heterogeneity).
  Measured, not the default (BENCHMARKS.md session 13, s13k; with ``SPREAD = "integrated"``): it removes the
  `none` failure and ties on the other four scenarios, and it moves the outside seed 3 boundary class towards
  its truth (no treatment 6.86 -> 7.17, truth 10.6; CI coverage 0.67 -> 0.78) without reaching 0.90.

A class in no set with another class with data keeps its own estimate; the set used is the smallest
one containing the class.
"""
from __future__ import annotations

import numpy as np

from training.impute.mice import dersimonian_laird

SPREAD = "dl"  # the default estimate of the class spread s_G (module docstring): "dl" | "posterior" | "integrated"
LIMIT = None   # the default limited-translation bound k (None: none)
SPREADS = ("dl", "posterior", "integrated")
PRIOR = "tau"  # the posterior spreads' prior scale (module docstring): "tau" | "outcome"
PRIORS = ("tau", "outcome")
PRIOR_FRACTION = 0.25  # "outcome": the half-normal scale as a fraction of the outcome's residual (or logistic) SD


def prior_scale(prior: str, tau_pooled: float, slope: float, family: str, sigma2: float,
                fraction: float | None = None) -> float:
    """The half-normal prior scale of the class spread on the offsets' scale (module docstring):
    ``"tau"``: the pooled between-trial tau (benefit scale) divided by the benefit scale's ``slope`` in
    the offsets' scale; ``"outcome"``: ``fraction`` (default ``PRIOR_FRACTION``) of sqrt(``sigma2``) (the
    residual variance of a ``"gaussian"`` fit) or of pi/sqrt(3) (log-odds offsets, any other family)."""
    if prior not in PRIORS:
        raise ValueError(f"class spread prior must be one of {PRIORS}, got {prior!r}")
    if prior == "tau":
        return float(tau_pooled) / float(slope)
    f = PRIOR_FRACTION if fraction is None else float(fraction)
    sd = np.sqrt(float(sigma2)) if family == "gaussian" else np.pi / np.sqrt(3.0)
    return float(f * sd)


def class_sets(comparators: list, groups) -> list:
    """For each comparator, the classes (with data) of the smallest group containing it (itself
    alone when no group has another class with data). ``groups``: iterables of class names."""
    out = []
    gs = [[c for c in g if c in comparators] for g in (groups or [comparators])]
    for c in comparators:
        cand = [g for g in gs if c in g and len(g) >= 2]
        out.append(min(cand, key=len) if cand else [c])
    return out


def spread_posterior(a, v, prior_scale: float, n_grid: int = 401) -> tuple:
    """(grid of s, normalised posterior weights) of the spread s of the true class effects given their
    estimates ``a`` (variances ``v``): restricted likelihood (mu integrated out, flat prior) x a
    half-normal(``prior_scale``) prior, on [0, 6 prior_scale] with trapezoid weights. A point mass at 0
    when ``prior_scale`` is 0."""
    a, v = np.asarray(a, float), np.asarray(v, float)
    if not prior_scale or prior_scale <= 0:
        return np.zeros(1), np.ones(1)
    t = np.linspace(0.0, 6.0 * prior_scale, n_grid)
    w = 1.0 / (v[None, :] + t[:, None] ** 2)
    mu = (w * a).sum(1) / w.sum(1)
    rl = -0.5 * (np.log(v[None, :] + t[:, None] ** 2).sum(1) + np.log(w.sum(1))
                 + (w * (a[None, :] - mu[:, None]) ** 2).sum(1))
    lp = rl - 0.5 * (t / prior_scale) ** 2
    p = np.exp(lp - lp.max()) * np.r_[0.5, np.ones(n_grid - 2), 0.5]
    return t, p / p.sum()


def _rows(v_set, s2):
    """(rows of the linear map, posterior terms, own weights) of every class of one set at each spread
    s^2 in ``s2`` (shape (G,)): row i maps the set's estimates to class i's posterior mean
    mu(s) + w_i (a_i - mu(s)); term i is w_i (1 - w_i) v_i. Shapes (G, K, K), (G, K), (G, K)."""
    s2 = np.atleast_1d(np.asarray(s2, float))[:, None]
    p = 1 / (v_set[None, :] + s2)
    pi = p / p.sum(1, keepdims=True)
    w = np.where(s2 > 0, s2 / (s2 + v_set[None, :]), 0.0)
    R = (1 - w)[:, :, None] * pi[:, None, :] + w[:, :, None] * np.eye(v_set.size)[None]
    return R, w * (1 - w) * v_set[None, :], w


def _set_map(aS, vS, CS, spread: str, prior_scale):
    """(map rows R, posterior terms, own weights, s^2) of one set of classes: estimates ``aS``, variances
    ``vS`` (with extra_var), sampling covariance ``CS`` (without). The class means are R @ aS; their
    variance is (R CS R')_ii + term_i."""
    if spread == "integrated":
        grid, pw = spread_posterior(aS, vS, prior_scale)
        Rs, ts, ws = _rows(vS, grid ** 2)
        m = Rs @ aS  # (G, K): each class's posterior mean at each spread
        R, W = np.tensordot(pw, Rs, 1), pw @ ws
        # E_s[var | s] + var_s(mean | s), less the averaged map's sampling part R CS R' (added by the caller)
        samp = np.einsum("gij,jk,gik->gi", Rs, CS, Rs)
        term = pw @ (ts + samp) - np.einsum("ij,jk,ik->i", R, CS, R) + np.clip(pw @ m ** 2 - (pw @ m) ** 2, 0, None)
        return R, term, W, float(pw @ grid ** 2)
    if spread == "dl":
        s2 = dersimonian_laird(aS, vS)[2]
    else:
        grid, pw = spread_posterior(aS, vS, prior_scale)
        s2 = float(pw @ grid ** 2)
    R, term, W = _rows(vS, s2)
    return R[0], term[0], W[0], s2


def shrink_offsets(theta: np.ndarray, cov: np.ndarray, comparators: list, groups=None, extra_var=None,
                   limit: float | None = None, spread: str = "dl", prior_scale: float | None = None,
                   prior: str | None = None) -> tuple:
    """(theta, cov, report) with the class offsets theta[1:1+C] shrunk (module docstring); ``limit``:
    the limited-translation bound k in units of a class's own SE sqrt(v_c) (None, the default: no bound);
    ``spread``: how the class spread is estimated ("dl", "posterior", "integrated"; the last two need
    ``prior_scale``, the half-normal prior's scale on the offsets' scale; ``prior``, how the caller set it,
    is only reported).
    ``extra_var`` (per comparator, default 0) is added to a class's variance v_c: the between-trial
    variance tau^2 / k that a trial-cluster bootstrap cannot show for a class with one or two trials
    (every replicate that keeps the class keeps the same trial)."""
    if spread not in SPREADS:
        raise ValueError(f"class spread must be one of {SPREADS}, got {spread!r}")
    if spread != "dl" and (prior_scale is None or not np.isfinite(prior_scale) or prior_scale < 0):
        raise ValueError(f"class spread {spread!r} needs a prior scale >= 0, got {prior_scale!r}")
    C = len(comparators)
    theta = np.asarray(theta, float).copy()
    cov = np.atleast_2d(np.asarray(cov, float))
    a = theta[1:1 + C].copy()
    v = np.clip(np.diag(cov)[1:1 + C] + (0.0 if extra_var is None else np.asarray(extra_var, float)), 1e-12, None)
    A = np.eye(C)
    extra = np.zeros(C)
    shift = np.zeros(C)
    report = {}
    sets = class_sets(comparators, groups)
    for key in dict.fromkeys(tuple(m) for m in sets):  # each distinct set once, in order
        idx = [comparators.index(m) for m in key]
        own = [i for i in range(C) if tuple(sets[i]) == key]  # the classes whose set this is
        if len(idx) < 2:
            for i in own:
                report[comparators[i]] = {"set": list(key), "weight_own": 1.0, "s_set": None}
            continue
        R, term, W, s2 = _set_map(a[idx], v[idx], cov[1:1 + C, 1:1 + C][np.ix_(idx, idx)], spread, prior_scale)
        for i in own:
            j = idx.index(i)
            A[i, :] = 0.0
            A[i, idx] = R[j]
            extra[i] = max(float(term[j]), 0.0)
            pull = float(A[i] @ a - a[i])
            bound = np.inf if limit is None else limit * np.sqrt(v[i])
            if abs(pull) > bound:  # limited translation: own estimate moved by the bound, own interval
                A[i, :] = 0.0
                A[i, i] = 1.0
                shift[i] = np.sign(pull) * bound
                extra[i] = max(v[i] - cov[1 + i, 1 + i], 0.0)  # the few-trial between-trial part of v_c
            report[comparators[i]] = {"set": list(key), "weight_own": float(W[j]), "s_set": float(np.sqrt(s2)),
                                      "estimate_own": float(a[i]), "estimate_shrunk": float(A[i] @ a + shift[i])}
            if spread != "dl":  # (the DL default's export stays as before)
                report[comparators[i]].update(spread=spread, prior_scale=float(prior_scale))
                if prior is not None:
                    report[comparators[i]]["prior"] = prior
            if limit is not None:
                report[comparators[i]]["limited"] = bool(shift[i] != 0.0)
    T = np.eye(theta.size)
    T[1:1 + C, 1:1 + C] = A
    theta[1:1 + C] = A @ a + shift
    cov = T @ cov @ T.T
    cov[np.arange(1, 1 + C), np.arange(1, 1 + C)] += extra
    return theta, cov, report
