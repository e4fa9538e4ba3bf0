"""Effect model with one prior variance per modifier feature, by marginal likelihood (ML-II / ARD).

The effect model (``training.learners.effect_model``) puts one N(0, s^2) prior on every
standardised interaction column, with ``s`` chosen by trial-grouped CV of the R-loss. Here each
modifier feature f gets its own prior variance ``s_f^2`` (all of its columns — linear, spline
terms, one-hot levels — share it, so a shape is kept or shrunk as a whole; ``groups="shape"``
gives the linear term and the non-linear terms of a continuous feature separate variances),
chosen by maximising the restricted marginal likelihood of the Gaussian model (empirical Bayes,
"type-II maximum likelihood"; automatic relevance determination, MacKay 1992; Tipping 2001; the
multiple-penalty REML of Wood 2011)::

    y = alpha_trial + O a + P beta + 1[active] (M - Mbar_trial) gamma + e,  e ~ N(0, sigma^2)
    alpha_trial flat (REML: the likelihood of the within-trial contrasts, n - J dimensions),
    a ~ N(0, 1e4 sigma0^2) (nearly flat), beta ~ N(0, main_sd^2), gamma_f ~ N(0, s_f^2 I).

With ``Z = [O, P, I]`` centred within trials, ``G = Z'Z``, ``h = Z'y``, prior variances ``v``:
``A = G / sigma^2 + diag(1/v)``, posterior mean ``m = A^-1 h / sigma^2`` and (up to a constant)

    log ev = -1/2 [ (n - J) log sigma^2 + sum log v + log|A| + |y - Z m|^2 / sigma^2 + sum m^2 / v ]

maximised over (log s_f^2, log sigma^2) with its analytic gradient (the EM / MacKay identities
d/dlog s_f^2 = 1/2 sum_f [(m_j^2 + A^-1_jj) / v_j - 1], d/dlog sigma^2 = 1/2 [(|y - Z m|^2 +
tr(G A^-1)) / sigma^2 - (n - J)]) by L-BFGS-B from two starts; a feature whose variance goes to the
lower bound drops out (its evidence says: no modification by it). ``tests/test_learners_ard.py``
checks the evidence against the dense multivariate-normal density of the within-trial contrasts and
the optimum against a derivative-free optimisation of that density.

Binary outcomes: no closed-form evidence; the model falls back to the effect model's common prior
SD chosen by CV (stated in the export's ``meta.ard.method``).

``scale="cv"``: the ML-II SDs give only the features' relative prior SDs; one common multiplier
(``MULTIPLIERS``, 0 = the average-effect model) is chosen by trial-grouped CV of the R-loss, the SDs
re-estimated inside every fold from its training trials.

``scale="hier"``: MAP-II - each log s_f^2 gets a N(log s_cv^2, ``hyper_sd``^2) hyperprior centred at
the effect model's CV common SD s_cv (s_cv = 0: the average-effect model), so the features' variances
move apart only as far as their evidence carries them from the cross-validated common ridge
(``hyper_sd`` -> 0: the common ridge; -> infinity: ML-II).

Measured (BENCHMARKS.md, session 9, i23a), ``scale="ml2"``: alone it beats the CV-tuned effect model only on the
curvilinear scenario and loses on the others; with no modification the evidence keeps chance
modifiers (spread ~1 point); its intervals under-cover (0.83-0.89). ``scale="hier"`` (hyper_sd 1,
3 knots) alone beats the effect model on curvilinear by 6-7% and costs 1-2% on hayden2020 and
interaction, coverage >= 0.90; as an extra stack member it changes the selected model's PEHE by
< 1.5%, and it cannot replace ``effect_adaptive`` (plateau then fails the heterogeneity gate).
An optional learner (``train --learner effect_ard``), not in the default stack.

Exported within the existing effect-model format: the fit uses the ML-II sigma^2, a common penalty
sigma^2 / s_max^2 and each feature's columns scaled by ``w_f = s_f / s_max`` (folded into the basis
``scale``), which is exactly the per-feature prior; bootstrap covariance and the shrinkage-bias
term of the intervals are the effect model's, with these penalties.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from training.learners.cv_loss import held_out_r_loss, pooled, training_rows
from training.learners.effect_model import EffectModel
from training.learners.folds import row_folds
from training.learners.linear import prior_lambda, theta_path, trial_centre, within_trial

LOG_S2_BOUNDS = (np.log(1e-8), np.log(1e4))  # prior variance of a standardised interaction, points^2
STARTS = (4.0, 0.1)  # starting prior variances (two starts; the higher evidence wins)
MULTIPLIERS = (0.0, 0.125, 0.25, 0.5, 1.0, 2.0)  # common factors on the ML-II SDs tried by CV (scale="cv")
MIN_SD = 1e-3  # a feature whose prior SD is below this (points per SD of the column) is dropped


def column_groups(Mcols: list, groups: str = "feature") -> np.ndarray:
    """Variance-group index of each modifier column: one per feature (``"feature"``), or per feature
    its linear term and its spline terms separately (``"shape"``), or one for all columns
    (``"common"``: the effect model's common prior SD, chosen by the evidence instead of CV)."""
    if groups not in ("feature", "shape", "common"):
        raise ValueError(f"groups must be 'feature', 'shape' or 'common', not {groups!r}")
    keys = [(c["feature"], c["kind"] == "rcs") if groups == "shape" else (0,) if groups == "common" else (c["feature"],)
            for c in Mcols]
    uniq = list(dict.fromkeys(keys))
    return np.array([uniq.index(k) for k in keys], int)


def log_evidence(params: np.ndarray, G: np.ndarray, h: np.ndarray, yy: float, n_eff: int, group: np.ndarray,
                 v_fixed: np.ndarray, grad: bool = True, hyper: tuple | None = None):
    """(-log evidence, -gradient) at ``params = [log s_1^2 .. log s_F^2, log sigma^2]`` (module
    docstring; the first ``v_fixed.size`` columns of G have fixed prior variances, the rest belong
    to the variance groups ``group``). Constant terms (2 pi) omitted. ``hyper = (mu, tau)``: plus a
    N(mu, tau^2) hyperprior on each log s_f^2 (the log posterior of the variances, MAP-II)."""
    F = int(group.max()) + 1 if group.size else 0
    ls2, lsig = params[:F], params[F]
    sig2 = np.exp(lsig)
    v = np.concatenate([v_fixed, np.exp(ls2)[group]])
    A = G / sig2 + np.diag(1.0 / v)
    L = np.linalg.cholesky(A)
    m = np.linalg.solve(A, h / sig2)
    rss = yy - 2 * m @ h + m @ G @ m
    logdet = 2 * np.sum(np.log(np.diag(L)))
    ev = -0.5 * (n_eff * lsig + np.sum(np.log(v)) + logdet + rss / sig2 + np.sum(m ** 2 / v))
    if hyper is not None:
        ev -= 0.5 * np.sum((ls2 - hyper[0]) ** 2) / hyper[1] ** 2
    if not grad:
        return -ev
    Li = np.linalg.inv(L)
    S = Li.T @ Li  # A^-1
    q = (m ** 2 + np.diag(S)) / v - 1.0
    k0 = v_fixed.size
    g_s = 0.5 * np.bincount(group, weights=q[k0:], minlength=F)
    if hyper is not None:
        g_s = g_s - (ls2 - hyper[0]) / hyper[1] ** 2
    g_sig = 0.5 * ((rss + np.sum(G * S)) / sig2 - n_eff)
    return -ev, -np.concatenate([g_s, [g_sig]])


def ml2_variances(G, h, yy, n_eff, group, v_fixed, sigma2_start: float, starts=STARTS, hyper=None) -> dict:
    """Maximise the evidence (with ``hyper``: the log posterior, see ``log_evidence``) over the group
    variances and sigma^2 (module docstring). Returns s2 (per group), sigma2, log_evidence (up to a
    constant), converged, iterations."""
    F = int(group.max()) + 1
    lo, hi = LOG_S2_BOUNDS
    sig_b = (np.log(sigma2_start) - 5.0, np.log(sigma2_start) + 2.0)
    best = None
    for s0 in starts:
        x0 = np.concatenate([np.full(F, np.log(s0)), [np.log(sigma2_start)]])
        r = minimize(log_evidence, x0, args=(G, h, yy, n_eff, group, v_fixed, True, hyper), jac=True, method="L-BFGS-B",
                     bounds=[(lo, hi)] * F + [sig_b], options={"maxiter": 500, "ftol": 1e-12, "gtol": 1e-7})
        if best is None or r.fun < best.fun:
            best = r
    return {"s2": np.exp(best.x[:F]), "sigma2": float(np.exp(best.x[F])), "log_evidence": float(-best.fun),
            "converged": bool(best.success), "iterations": int(best.nit), "message": str(best.message)}


def gaussian_sufficient(d, P: np.ndarray, M: np.ndarray, rows=None, comps=None):
    """(G, h, yy, n - J, number of offset columns) of the within-trial contrasts of Z = [O, P, I]
    and y (FWL; the effect model's design with trial-centred modifiers times the active indicator),
    on ``rows`` (default all) with comparator classes ``comps`` (default ``d.comps``)."""
    rows = np.ones(d.y.size, bool) if rows is None else rows
    comps = d.comps if comps is None else comps
    _, trial = np.unique(d.trial[rows], return_inverse=True)
    cls, y = d.cls[rows], d.y[rows]
    O = np.column_stack([(cls == c).astype(float) for c in comps])
    Z = np.hstack([O, P[rows], trial_centre(M[rows], trial) * d.treat[rows][:, None]])
    J = int(trial.max()) + 1
    nj = np.bincount(trial, minlength=J).astype(float)
    _, _, Zt, yt = within_trial(y, Z, trial, nj)
    return Zt.T @ Zt, Zt.T @ yt, float(yt @ yt), int(y.size - J), O.shape[1]


def column_sds(d, P, M, group, sigma2: float, main_sd: float, rows=None, comps=None, hyper=None) -> tuple:
    """(ML-II prior SD per modifier column, 0 for a dropped feature; the ``ml2_variances`` result)."""
    G, h, yy, n_eff, n_off = gaussian_sufficient(d, P, M, rows, comps)
    v_fixed = np.concatenate([np.full(n_off, 1e4 * sigma2), np.full(P.shape[1], main_sd ** 2)])
    starts = STARTS if hyper is None else (float(np.exp(hyper[0])),)
    res = ml2_variances(G, h, yy, n_eff, group, v_fixed, sigma2, starts=starts, hyper=hyper)
    s = np.sqrt(res["s2"])[group]
    return np.where(s < MIN_SD, 0.0, s), res


def cv_scale(d, P, M, group, sigma2, main_sd, lam_main, prog, folds, multipliers=MULTIPLIERS) -> pd.DataFrame:
    """Trial-grouped CV R-loss of the ML-II prior SDs times a common multiplier c (0 = the
    average-effect model); in every fold the SDs come from that fold's training trials only.
    Columns: multiplier, r_loss."""
    fam = d.family
    losses = {c: [] for c in multipliers}
    for te in folds:
        comps_tr, rows = training_rows(d, te)
        s, res = column_sds(d, P, M, group, sigma2, main_sd, rows, comps_tr)
        smax = float(s.max())
        w = s / smax if smax > 0 else np.zeros(s.size)
        _, ctr = np.unique(d.trial[rows], return_inverse=True)
        Mr = M[rows] * w
        lams = [(prior_lambda(fam, res["sigma2"], c * smax), Mr.shape[1] if c * smax > 0 else 0) for c in multipliers]
        thetas = theta_path(fam, prior_lambda(fam, res["sigma2"], main_sd), lams, d.y[rows], ctr, d.cls[rows],
                            d.treat[rows], comps_tr, P[rows], trial_centre(Mr, ctr))
        Mbar = Mr.mean(axis=0)
        for c, (_, k), theta in zip(multipliers, lams, thetas):
            losses[c].append(held_out_r_loss(d, te, theta, P[te], (M[te] * w - Mbar)[:, :k], comps_tr, prog))
    return pd.DataFrame([{"multiplier": c, "r_loss": pooled(v)} for c, v in losses.items()])


class ARDEffectModel(EffectModel):
    """The effect model with a prior variance per modifier feature by marginal likelihood (module
    docstring). Parameters as :class:`EffectModel`, plus ``modifier_knots`` (knots of the
    modifiers' restricted cubic splines: 3, 4 or 5), ``groups`` ('feature' | 'shape' | 'common'), ``scale``
    ('hier' (default: the best variant measured) | 'ml2' | 'cv') and ``hyper_sd`` (for 'hier')."""

    interaction_sd = None
    interaction_grid = None
    adaptive = False

    def __init__(self, outcome_type: str = "continuous", active: str = "exercise", classes=None, features=None,
                 modifiers=None, main_sd=None, n_knots: int = 3, modifier_knots: int = 3, groups: str = "feature",
                 scale: str = "hier", hyper_sd: float = 1.0,
                 splines: bool = True, n_boot: int = 100, n_folds: int = 5, n_draws: int = 20,
                 shrinkage_bias: bool = True, missing: str = "conditional_mean", n_imputations: int = 5,
                 class_shrinkage: bool = False, class_groups=None, random_state: int = 0):
        self.outcome_type = outcome_type
        self.active = active
        self.classes = classes
        self.features = features
        self.modifiers = modifiers
        self.main_sd = main_sd
        self.n_knots = n_knots
        self.modifier_knots = modifier_knots
        self.groups = groups
        self.scale = scale
        self.hyper_sd = hyper_sd
        self.splines = splines
        self.n_boot = n_boot
        self.n_folds = n_folds
        self.n_draws = n_draws
        self.shrinkage_bias = shrinkage_bias
        self.missing = missing
        self.n_imputations = n_imputations
        self.class_shrinkage = class_shrinkage
        self.class_groups = class_groups
        self.random_state = random_state

    def modifier_prior(self, d, P, M, Mcols, lam_main, sigma2, prog):
        if d.family != "gaussian" or M.shape[1] == 0:
            sd, w, s2 = super().modifier_prior(d, P, M, Mcols, lam_main, sigma2, prog)
            self.ard_ = {"method": "cv_common_sd" if M.shape[1] else "no_modifiers",
                         "reason": "binomial family: no closed-form evidence" if d.family != "gaussian" else None}
            return sd, w, s2
        self.cv_, self.adaptive_, self.adaptive_weights_ = None, None, None
        main_sd = self.main_sd if self.main_sd is not None else 50.0
        group = column_groups(Mcols, self.groups)
        hyper = None
        if self.scale == "hier":
            # the effect model's CV common SD centres a log-normal hyperprior on each feature's variance
            sd_cv, _, _ = super().modifier_prior(d, P, M, Mcols, lam_main, sigma2, prog)
            if sd_cv <= 0:
                self.ard_ = {"method": "map2_hier", "common_sd": 0.0, "prior_sd": {}, "reason": "CV common SD 0"}
                return 0.0, np.zeros(M.shape[1]), sigma2
            hyper = (2 * np.log(sd_cv), float(self.hyper_sd))
        s, res = column_sds(d, P, M, group, sigma2, main_sd, hyper=hyper)
        mult = 1.0
        if self.scale == "cv":
            folds = row_folds(d.trial, d.has_comp, d.cls, self.n_folds, self.random_state)
            self.cv_ = cv_scale(d, P, M, group, sigma2, main_sd, lam_main, prog, folds)
            mult = float(self.cv_.loc[self.cv_["r_loss"].idxmin(), "multiplier"])
        elif self.scale not in ("ml2", "hier"):
            raise ValueError(f"scale must be 'ml2', 'cv' or 'hier', not {self.scale!r}")
        names = d.spec["names"]
        per = {}
        for c, sj in zip(Mcols, s):
            key = names[c["feature"]] + (":nonlinear" if self.groups == "shape" and c["kind"] == "rcs" else "")
            per[key] = float(sj)
        method = {"ml2": "ml2", "cv": "ml2_shape_cv_scale", "hier": "map2_hier"}[self.scale]
        self.ard_ = {"method": method, "common_sd": None if hyper is None else float(np.exp(hyper[0] / 2)), "prior_sd": per,
                     "multiplier": mult, "sigma2": res["sigma2"], "log_evidence": res["log_evidence"],
                     "converged": res["converged"], "iterations": res["iterations"]}
        smax = float(s.max())
        if smax <= 0 or mult == 0:
            return 0.0, np.zeros(M.shape[1]), res["sigma2"]
        return mult * smax, s / smax, res["sigma2"]

    def fit(self, X, y) -> "ARDEffectModel":
        super().fit(X, y)
        self.export_["meta"]["ard"] = self.ard_
        return self
