"""Uncertainty: trial-cluster bootstrap, between-trial heterogeneity (tau) and compact,
exportable summaries of the bootstrap.

- ``cluster_bootstrap``: resample whole trials with replacement, separately among trials with a
  comparator arm and trials without (so every replicate can estimate a benefit); duplicated
  trials get distinct codes (their own fixed effects). Uncertainty thus reflects which trials
  happened to be included (grf-style cluster inference, unlike EconML's row bootstrap).
- ``residual_tau``: per comparator class, the between-trial SD of the treatment effect beyond
  what the model predicts: per trial, (mean residual in active arm) - (mean residual in the
  class's arm), pooled by REML random-effects meta-analysis (training.metrics). Classes with
  fewer than 3 trials borrow the tau pooled over all classes. Added to the CI for a new-setting
  prediction interval. The default (``TAU_METHOD = "posterior"``) replaces a class's REML point estimate by the
  square root of its posterior mean tau^2 (``posterior_tau2``: restricted likelihood x a
  half-normal prior whose scale is the pooled REML tau; Higgins, Thompson & Spiegelhalter 2009's
  predictive distribution, Roever et al. 2021's half-normal heterogeneity priors), so a class's
  boundary 0 from few trials is not taken at face value. The pooled tau itself is a REML plug-in; for a
  binary outcome ``TAU_PRIOR_LOGIT`` (train's default since session 13; None restores the plug-in) replaces it
  by its posterior mean under a half-normal prior fixed on the log-odds scale (``tau_prior``).
- Linear learners export the bootstrap covariance of their coefficients (delta-method SEs,
  exact for continuous outcomes); tree learners export a log-linear model of the bootstrap
  variance in the features (``fit_variance_model``), validated by coverage in ``benchmarks/``
  (the X-/DR-learners fit it to the bootstrap variance + their missing-input allowance,
  ``training.learners.missing_allowance``).
"""
from __future__ import annotations

import numpy as np

from predict.impute import impute_mean
from predict.uncertainty import varmodel_design


def cluster_bootstrap(trial: np.ndarray, has_comparator: np.ndarray, n_boot: int, random_state: int = 0,
                      strata: np.ndarray | None = None):
    """Yield (row indices, new trial codes) for ``n_boot`` trial-cluster bootstrap replicates.

    ``trial``: integer codes per row; ``has_comparator``: bool per trial code. With fewer than two
    comparator trials, resampling trials cannot show any uncertainty (every replicate would be the
    same trial), so participants are resampled within each trial x ``strata`` (the arm) instead:
    the ordinary within-trial bootstrap of a single randomised trial."""
    rng = np.random.default_rng(random_state)
    trials = np.unique(trial)
    n_comp = int(sum(bool(has_comparator[t]) for t in trials))
    if n_comp < 2:
        keys = np.asarray(trial).astype(str) if strata is None else np.char.add(
            np.char.add(np.asarray(trial).astype(str), "|"), np.asarray(strata).astype(str))
        groups = [np.flatnonzero(keys == k) for k in np.unique(keys)]
        for _ in range(n_boot):
            idx = np.sort(np.concatenate([rng.choice(g, size=g.size, replace=True) for g in groups]))
            yield idx, np.asarray(trial)[idx]
        return
    rows_of = {t: np.flatnonzero(trial == t) for t in trials}
    comp = [t for t in trials if has_comparator[t]]
    other = [t for t in trials if not has_comparator[t]]
    for _ in range(n_boot):
        pick = list(rng.choice(comp, size=len(comp), replace=True)) if comp else []
        if other:
            pick += list(rng.choice(other, size=len(other), replace=True))
        idx = np.concatenate([rows_of[t] for t in pick])
        codes = np.concatenate([np.full(rows_of[t].size, k) for k, t in enumerate(pick)])
        yield idx, codes


def trial_deviations(r: np.ndarray, trial: np.ndarray, cls: np.ndarray, active: str, comparators: list) -> list:
    """Per trial x comparator class with >= 2 participants in both arms: the raw deviation
    (mean residual in the active arm) - (mean residual in the class's arm) with its SE
    (var_a / n_a + var_c / n_c); ``r`` are residuals on the benefit (oriented) scale."""
    out = []
    r, trial, cls = np.asarray(r), np.asarray(trial), np.asarray(cls)
    # each trial's rows as one slice of a stable sort (its rows in their original order, so every
    # mean and variance below sees the same numbers in the same order as a mask over all rows would)
    labels, code = np.unique(trial, return_inverse=True)
    order = np.argsort(code.ravel(), kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(code.ravel(), minlength=labels.size))])
    for k, t in enumerate(labels):
        rows = order[bounds[k]:bounds[k + 1]]
        rt, ct = r[rows], cls[rows]
        m = np.isfinite(rt)
        a = m & (ct == active)
        if a.sum() < 2:
            continue
        ra = rt[a]
        for c in comparators:
            b = m & (ct == c)
            if b.sum() < 2:
                continue
            rb = rt[b]
            v = ra.var(ddof=1) / a.sum() + rb.var(ddof=1) / b.sum()
            if v > 0:
                out.append({"trial": t, "comparator": c, "n_active": int(a.sum()), "n_comparator": int(b.sum()),
                            "raw": float(ra.mean() - rb.mean()), "se": float(np.sqrt(v))})
    return out


TAU_METHOD = "posterior"
# Train's default since session 13 (s13b built it, the integrator adopted it; None: the REML plug-in, as
# before, kept as the opt-out): for a binary outcome the pooled tau is the square root of its posterior mean
# tau^2 under a half-normal prior of this SD on the log-odds scale (0.5: the scale used for log odds ratios'
# heterogeneity, Friede et al. 2017, Biom. J. 59:658; Roever et al. 2021, Res. Synth. Methods 12:448), put on the
# risk-difference scale of tau by the fit's mean p (1 - p) (:func:`tau_prior`). The REML tau from the 10-15 trials
# of a recovery task is often near 0 (0.009 where the trials' true deviations had RMS 0.04) and the new-setting PI
# then lacks the between-trial part. Measured against the simulator's truth (BENCHMARKS.md session 13 s13b,
# variants dl vs dl+tau0.5): PI coverage 0.81 -> 0.85 (moderate), 0.82 -> 0.91 (long), 0.89 -> 0.91 (short,
# default and sparse-placebo designs); the CI and root PEHE unchanged within seed noise; nothing over-covers.
# Continuous outcomes are untouched.
TAU_PRIOR_LOGIT: float | None = 0.5


def tau_prior(family: str, p: np.ndarray, logit_sd: float | None = None) -> float | None:
    """The half-normal prior scale of the pooled tau on the benefit (risk-difference) scale for a binary
    outcome: ``logit_sd`` (default ``TAU_PRIOR_LOGIT``) times :func:`offset_slope` of the fitted
    probabilities ``p``; None (the REML plug-in) for a continuous outcome or when ``TAU_PRIOR_LOGIT`` is None."""
    sd = TAU_PRIOR_LOGIT if logit_sd is None else logit_sd
    if family == "gaussian" or sd is None:
        return None
    return float(sd) * offset_slope(family, p)


def residual_tau(g: np.ndarray, g_hat_own: np.ndarray, trial: np.ndarray, cls: np.ndarray, active: str,
                 comparators: list, min_trials: int = 3, method: str | None = None,
                 pooled_prior: float | None = None) -> dict:
    """Between-trial SD of the active-vs-class effect not explained by the model (oriented
    scale = benefit scale), for a new setting's prediction interval; ``method`` (default
    ``TAU_METHOD``) and ``pooled_prior``: see :func:`tau_from_deviations`. Returns {class: tau, '__pooled__': tau}."""
    return tau_from_deviations(trial_deviations(g - g_hat_own, trial, cls, active, comparators), comparators,
                               min_trials, method=method or TAU_METHOD, pooled_prior=pooled_prior)


def offset_slope(family: str, p: np.ndarray) -> float:
    """The slope of the benefit scale in the link scale of the linear learners' offsets, to put a
    between-trial SD from :func:`residual_tau` (benefit scale) on the offsets' scale (divide by it):
    1 for the identity link; for the logit link the mean of p (1 - p) over the fitted probabilities
    ``p`` (delta method: a log-odds deviation d moves the risk by about p (1 - p) d; the random
    treatment effects of a binary-outcome IPD meta-analysis are on the log-odds scale, Jackson et al.
    2018, Stat Med 37:1059). Floored at 1e-3."""
    if family == "gaussian":
        return 1.0
    p = np.asarray(p, float)
    return max(float(np.mean(p * (1 - p))), 1e-3)


FEW_TRIAL_SCALE = "link"  # what train uses for few_trial_variance: "link" (the offsets' scale) | "risk" (before session 12)


def few_trial_variance(tau: dict, support: dict, comparators: list, slope: float, scale: str | None = None,
                       min_trials: int = 3) -> list:
    """Per comparator: the between-trial variance tau^2 / k of a class offset estimated from k <
    ``min_trials`` trials, which a trial-cluster bootstrap cannot show (0 for the other classes); tau
    from :func:`residual_tau` (benefit scale; a class's own or the pooled one), ``support`` per class
    {"trials": k}. ``scale`` (default ``FEW_TRIAL_SCALE``): "link" puts tau on the offsets' link scale
    (divided by ``slope``, :func:`offset_slope`: the log-odds for a binary outcome); "risk" leaves it on
    the benefit scale, as train did before session 12 - for a binary outcome about (1 / p (1 - p))^2 ~ 16
    times too small against the log-odds offsets it is added to (kept only to reproduce earlier fits).
    Train uses "link" since session 12 because it is the right unit (Jackson et al. 2018, Stat Med 37:1059:
    the between-trial variance of a binary IPD model lives on the log-odds scale); measured (BENCHMARKS.md
    session 12 s12b) recovery coverage moved by at most 0.004 and root PEHE by 0.002.
    Identical for continuous outcomes (slope 1)."""
    scale = FEW_TRIAL_SCALE if scale is None else scale
    if scale not in ("risk", "link"):
        raise ValueError(f"few-trial variance scale must be 'risk' or 'link', got {scale!r}")
    div = slope if scale == "link" else 1.0
    out = []
    for c in comparators:
        k = support[c]["trials"]
        out.append((tau.get(c, tau["__pooled__"]) / div) ** 2 / max(k, 1) if k < min_trials else 0.0)
    return out


def posterior_tau2(e, s, prior_scale: float, n_grid: int = 801) -> float:
    """Posterior mean of tau^2 in the normal-normal model e_i ~ N(mu, s_i^2 + tau^2) with a flat
    prior on mu (integrated out: the restricted likelihood) and a half-normal(``prior_scale``)
    prior on tau; trapezoid rule on a grid of tau over [0, 6 x prior_scale] (the prior's mass beyond
    is < 1e-8). 0 when ``prior_scale`` is 0 or with fewer than 2 estimates."""
    e, v = np.asarray(e, float), np.asarray(s, float) ** 2
    if prior_scale <= 0 or e.size < 2:
        return 0.0
    top = 6.0 * prior_scale
    t = np.linspace(0.0, top, n_grid)
    w = 1.0 / (v[None, :] + t[:, None] ** 2)
    mu = (w * e).sum(1) / w.sum(1)
    rl = -0.5 * (np.log(v[None, :] + t[:, None] ** 2).sum(1) + np.log(w.sum(1))
                 + (w * (e[None, :] - mu[:, None]) ** 2).sum(1))
    lp = rl - 0.5 * (t / prior_scale) ** 2
    dens = np.exp(lp - lp.max())
    return float(np.trapezoid(dens * t ** 2, t) / np.trapezoid(dens, t))


def posterior_tau2_classes(groups: list, prior_scale: float, n_grid: int = 801) -> float:
    """Posterior mean of a common tau^2 when each class c has its own mean: e_ci ~ N(mu_c, s_ci^2 + tau^2),
    flat priors on every mu_c (each integrated out: the sum of the classes' restricted log-likelihoods, as
    in :func:`posterior_tau2`, which this equals for one class) and a half-normal(``prior_scale``) prior on
    tau. ``groups``: (e, s) per class; a class with one trial carries no information on tau. Unlike pooling
    the deviations centred at their class means as if independent (which shrinks their spread by (k - 1) / k
    for a class of k trials), the lost degrees of freedom are accounted for. 0 when ``prior_scale`` is 0 or
    no class has 2 trials."""
    groups = [(np.asarray(e, float), np.asarray(s, float) ** 2) for e, s in groups if len(e) >= 2]
    if prior_scale <= 0 or not groups:
        return 0.0
    t = np.linspace(0.0, 6.0 * prior_scale, n_grid)
    rl = np.zeros(n_grid)
    for e, v in groups:
        w = 1.0 / (v[None, :] + t[:, None] ** 2)
        mu = (w * e).sum(1) / w.sum(1)
        rl += -0.5 * (np.log(v[None, :] + t[:, None] ** 2).sum(1) + np.log(w.sum(1))
                      + (w * (e[None, :] - mu[:, None]) ** 2).sum(1))
    lp = rl - 0.5 * (t / prior_scale) ** 2
    dens = np.exp(lp - lp.max())
    return float(np.trapezoid(dens * t ** 2, t) / np.trapezoid(dens, t))


def tau_from_deviations(deviations: list, comparators: list, min_trials: int = 3, method: str = "reml",
                        pooled_prior: float | None = None) -> dict:
    """Tau per comparator class from :func:`trial_deviations` rows; classes with fewer than
    ``min_trials`` trials get the tau pooled over all classes (REML, each class's deviations
    centred at their mean; with ``pooled_prior`` > 0 instead sqrt of the posterior mean of a common tau^2
    with a mean per class under a half-normal prior of that scale, :func:`posterior_tau2_classes`). ``method="reml"``: each class's own REML tau;
    ``"posterior"``: sqrt of the class's posterior mean tau^2 with a half-normal prior of scale = the
    pooled tau (:func:`posterior_tau2`). Returns {class: tau, '__pooled__': tau}."""
    if method not in ("reml", "posterior"):
        raise ValueError(f"tau method must be 'reml' or 'posterior', got {method!r}")
    from training.metrics import pool_random_effects

    per = {c: ([], []) for c in comparators}
    for d in deviations:
        per[d["comparator"]][0].append(d["raw"])
        per[d["comparator"]][1].append(d["se"])
    out = {}
    all_e, all_s = [], []
    for c, (e, s) in per.items():
        if len(e) >= 1:
            all_e += list(np.asarray(e) - np.mean(e))
            all_s += s
    pooled = 0.0
    if pooled_prior is not None and pooled_prior > 0:
        pooled = float(np.sqrt(posterior_tau2_classes(list(per.values()), pooled_prior)))
    elif len(all_e) >= 3:
        pooled = float(pool_random_effects(all_e, all_s).tau)
    for c in comparators:
        e, s = per[c]
        if len(e) < min_trials:
            out[c] = pooled
        elif method == "posterior":
            out[c] = float(np.sqrt(posterior_tau2(e, s, pooled)))
        else:
            out[c] = float(pool_random_effects(e, s).tau)
    out["__pooled__"] = pooled
    return out


def fit_variance_model(exp: dict, F: np.ndarray, var: np.ndarray, ridge: float = 1.0) -> list:
    """Ridge regression of log(bootstrap variance) on [1, standardised imputed features,
    missing indicators]; returns coefficients (exp(U w) = modelled variance). A constant
    (log mean variance) correction keeps the mean modelled variance equal to the mean
    bootstrap variance."""
    Fimp = impute_mean(exp["imputer"], F)
    U = varmodel_design(exp, F, Fimp)
    lv = np.log(np.clip(var, 1e-12, None))
    pen = np.full(U.shape[1], ridge)
    pen[0] = 0.0
    w = np.linalg.solve(U.T @ U + np.diag(pen), U.T @ lv)
    w[0] += np.log(np.mean(var) / np.mean(np.exp(U @ w)))
    return w.tolist()


def varmodel_design_spec(F_imp: np.ndarray) -> dict:
    loc = F_imp.mean(axis=0)
    sc = F_imp.std(axis=0)
    sc[sc < 1e-9] = 1.0
    return {"loc": loc.tolist(), "scale": sc.tolist()}
