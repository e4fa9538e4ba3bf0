"""Risk-based model (PATH "risk modelling").

Stage 1, blind to treatment: a prognostic index PI(x) = P(x) beta_r from a trial-stratified
ridge model of the outcome on the rich prognostic basis (linear + RCS terms), fitted on *all*
participants of all arms without any treatment term (Kent et al. 2020).

Stage 2: the treatment effect as a function of the index::

    eta = alpha_trial + a_c + b PI(x) + 1[active] gamma (PI(x) - PIbar_trial)

one interaction parameter gamma (lightly shrunk: prior SD ``interaction_sd`` per SD of PI),
trial-centred so only within-trial information estimates it. Benefit vs c (continuous):
a_c - gamma (PI(x) - PIbar). For a binary outcome the logit link alone makes the absolute
benefit vary with risk even at gamma = 0.

Uncertainty: trial-cluster bootstrap of *both* stages: every replicate refits the prognostic
index on its own trials (penalties fixed) and then stage 2 on that index, so the index's own
uncertainty - which moves each arm's absolute level and, through the logit link, the benefit - is
in the intervals (until 2026-12-07 the index was held fixed and the per-arm SEs were about 2.4x
too small on the simulator: BENCHMARKS.md). To carry replicates with different indices in one
covariance, the export is written in the prognostic basis itself: with the index PI = P beta_r,

    eta = alpha + a_c + P (b beta_r) + 1[active] (P - Pbar) (gamma beta_r)

(prognostic block = the basis P, modifier block = P centred at its training mean), so
theta = [alpha, offsets, b beta_r, gamma beta_r] is linear in every prediction and a replicate's
(b_r, gamma_r, beta_r) maps to it exactly; delta-method SEs from that covariance plus the
prior-expected ridge bias of both stages; tau as in every learner. The two-stage parameters
(b, gamma and their bootstrap SEs) and the index are kept in ``meta.risk_index``.

``omitted_interactions=True`` (opt-in, continuous outcomes; s12v): the intervals also carry the
benefit's variation in directions the index does not span, estimated by moments from the full
within-trial interaction model (``training.learners.omitted_interactions``), added to the
modifier block of the covariance; its estimate is in ``interval.omitted_interactions``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from predict.features import feature_matrix
from predict.impute import impute_mean
from predict.linear import basis, block_matrix
from predict.numeric import expit
from training.learners.effect_model import MAIN_SD, EffectModel, shared_linear_data
from training.learners.intervals import cluster_bootstrap, residual_tau
from training.learners.linear import (StructuredFit, linear_block, make_basis, prior_lambda, replicate_start,
                                      trial_centre)
from training.learners.omitted_interactions import omitted_interaction_cov


class RiskModel(EffectModel):
    """Prognostic index (treatment-blind) + treatment x index interaction (module docstring)."""

    kind = "risk_model"
    #: ``omitted_interactions=None`` means this (a class attribute, so a benchmark can switch it for
    #: every risk model ``train`` builds, as ``EffectModel.expected_basis``); off by default
    omitted_default = False

    def __init__(self, outcome_type: str = "continuous", active: str = "exercise", classes=None, features=None,
                 interaction_sd: float | None = None, prognostic_sd: float | None = None, n_knots: int = 3,
                 splines: bool = True, n_boot: int = 100, n_draws: int = 20, shrinkage_bias: bool = True,
                 omitted_interactions: bool | None = None, random_state: int = 0):
        self.outcome_type = outcome_type
        self.active = active
        self.classes = classes
        self.features = features
        self.interaction_sd = interaction_sd
        self.prognostic_sd = prognostic_sd
        self.n_knots = n_knots
        self.splines = splines
        self.n_boot = n_boot
        self.n_draws = n_draws
        self.shrinkage_bias = shrinkage_bias
        self.omitted_interactions = omitted_interactions
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y) -> "RiskModel":
        d = shared_linear_data(self, X, y)
        fam = d.family
        Pcols = make_basis(d.Fi, d.spec, self.n_knots, self.splines)
        P = basis(Pcols, d.Fi)
        Pbar = P.mean(axis=0)
        prog_sd = self.prognostic_sd if self.prognostic_sd is not None else (5.0 if fam == "gaussian" else 0.5)
        s0 = StructuredFit(fam, 0.0, 1e12).fit(d.y, d.trial, np.full(d.y.size, "_"), d.treat, [], P,
                                               np.zeros((d.y.size, 0)))
        sigma2 = s0.sigma2_ if fam == "gaussian" else 1.0
        lam_prog = prior_lambda(fam, sigma2, prog_sd)
        isd = self.interaction_sd if self.interaction_sd is not None else (2.0 if fam == "gaussian" else 0.1)
        lam_main = prior_lambda(fam, sigma2, MAIN_SD[fam])
        lam_int = prior_lambda(fam, sigma2, isd)
        C = len(d.comps)
        s1, s2, beta_r, sd_pi, pibar = _two_stage(fam, d.y, d.trial, d.cls, d.treat, d.comps, P, lam_prog, lam_main,
                                                  lam_int)
        theta = to_basis(s2.theta_, beta_r, pibar, Pbar, C)
        exp = d.base_export(self, "risk_model")
        exp["linear"] = {"link": "identity" if fam == "gaussian" else "logit", "prog": linear_block(Pcols),
                         "modifier": linear_block(Pcols, Pbar), "theta": theta.tolist(), "n_prog": len(Pcols),
                         "n_mod": len(Pcols)}
        thetas, two = [], []
        for idx, codes in cluster_bootstrap(d.trial, d.has_comp, self.n_boot, self.random_state, strata=d.cls):
            if len(set(d.cls[idx]) & set(d.comps)) < len(d.comps):
                continue
            _, fb, bb, _, pb = _two_stage(fam, d.y[idx], codes, d.cls[idx], d.treat[idx], d.comps, P[idx], lam_prog,
                                          lam_main, lam_int, starts=(replicate_start(s1, d.trial, idx, codes),
                                                                     replicate_start(s2, d.trial, idx, codes)))
            thetas.append(to_basis(fb.theta_, bb, pb, Pbar, C))
            two.append(fb.theta_)
        thetas, two = np.array(thetas), np.array(two)
        k = theta.size
        cov = np.cov(thetas, rowvar=False) if len(thetas) > 2 else np.zeros((k, k))
        cov2 = np.cov(two, rowvar=False) if len(two) > 2 else np.zeros((s2.theta_.size,) * 2)
        if self.shrinkage_bias:
            b2 = s2.shrinkage_cov(sigma2)
            J2 = np.zeros((k, s2.theta_.size))
            J2[:1 + C, :1 + C] = np.eye(1 + C)
            J2[1 + C:1 + C + beta_r.size, 1 + C] = beta_r
            J2[1 + C + beta_r.size:, 2 + C] = beta_r
            # stage 1's bias moves the index: B = b beta_raw / sd, G = gamma beta_raw / sd
            b1 = s1.shrinkage_cov(sigma2)[1:, 1:]
            J1 = np.zeros((k, beta_r.size))
            J1[1 + C:1 + C + beta_r.size] = np.eye(beta_r.size) * s2.theta_[1 + C] / sd_pi
            J1[1 + C + beta_r.size:] = np.eye(beta_r.size) * s2.theta_[2 + C] / sd_pi
            cov = np.atleast_2d(cov) + J2 @ b2 @ J2.T + J1 @ b1 @ J1.T
            cov2 = np.atleast_2d(cov2) + b2
        omitted = None
        use_omitted = self.omitted_default if self.omitted_interactions is None else self.omitted_interactions
        if use_omitted and fam == "gaussian":
            # opt-in (s12v): the interactions the index leaves out (training.learners.omitted_interactions)
            V_add, omitted = omitted_interaction_cov(d.y, d.trial, d.cls, d.treat, d.comps, P, beta_r, lam_prog,
                                                     sigma2)
            cov = np.atleast_2d(cov).copy()
            cov[k - V_add.shape[0]:, k - V_add.shape[0]:] += V_add
        g_hat = -s2.eta_ if fam == "gaussian" else expit(s2.eta_)
        tau = residual_tau(d.g, g_hat, d.trial, d.cls, d.prep.active, d.comps)
        exp["interval"] = {"method": "delta", "theta_cov": np.atleast_2d(cov).tolist(), "tau": tau,
                           "n_boot": int(len(thetas)), "bootstrap": "both stages (index refitted per replicate)"}
        if omitted is not None:
            exp["interval"]["omitted_interactions"] = {k_: float(v) for k_, v in omitted.items()}
        index = {"type": "index", "basis": Pcols, "beta": beta_r.tolist(), "center": [0.0]}
        exp["meta"].update({"interaction_sd": isd, "prognostic_sd": prog_sd, "sigma2": sigma2, "pi_sd_units": sd_pi,
                            "risk_index": {"index": index, "index_mean": pibar, "theta": s2.theta_.tolist(),
                                           "theta_cov": np.atleast_2d(cov2).tolist()}})
        self.theta_ = theta
        self.export_ = exp
        self.interaction_sd_ = isd
        self.cv_ = None
        self.n_features_in_ = len(d.spec["names"])
        self._attach_support(X)
        return self

    def prognostic_index(self, X: pd.DataFrame) -> np.ndarray:
        """The treatment-blind prognostic index (SD units; higher = higher expected outcome)."""
        self._check_fitted()
        F = feature_matrix(self.export_["features"], X)
        Fi = impute_mean(self.export_["imputer"], F)
        return block_matrix(self.export_["meta"]["risk_index"]["index"], Fi, centred=False)[:, 0]

    def summary(self) -> pd.DataFrame:
        """The two-stage parameters with bootstrap SEs (both stages resampled): intercept, comparator
        offsets, the prognostic index's coefficient and the exercise x (index - its mean) interaction."""
        self._check_fitted()
        ri = self.export_["meta"]["risk_index"]
        th = np.asarray(ri["theta"], float)
        se = np.sqrt(np.clip(np.diag(np.asarray(ri["theta_cov"], float)), 0, None))
        names = (["intercept"] + [f"offset[{c}]" for c in self.export_["comparators"]]
                 + ["prog[prognostic_index]", "active x [prognostic_index]"])
        return pd.DataFrame({"term": names, "coef": th, "se": se, "z": th / np.where(se > 0, se, np.nan)})


def _two_stage(fam, y, trial, cls, treat, comps, P, lam_prog, lam_main, lam_int, starts=(None, None)):
    """Stage 1 (treatment-blind index, SD units on these rows) then stage 2 on it:
    (stage-1 fit, stage-2 fit, beta_r, SD of the raw index, mean index). ``starts``: where each
    stage's logistic Newton iteration begins (a bootstrap replicate: the full fit's; same optimum)."""
    n = y.size
    s1 = StructuredFit(fam, lam_prog, 1e12).fit(y, trial, np.full(n, "_"), treat, [], P, np.zeros((n, 0)),
                                                start=starts[0])
    beta = s1.theta_[1:1 + P.shape[1]]
    pi = P @ beta
    sd = float(pi.std()) or 1.0
    pi = pi / sd
    PI = pi[:, None]
    s2 = StructuredFit(fam, lam_main, lam_int).fit(y, trial, cls, treat, comps, PI, trial_centre(PI, trial),
                                                   start=starts[1])
    return s1, s2, beta / sd, sd, float(pi.mean())


def to_basis(theta2: np.ndarray, beta_r: np.ndarray, pibar: float, Pbar: np.ndarray, C: int) -> np.ndarray:
    """Two-stage theta [alpha, offsets, b, gamma] with index P beta_r centred at ``pibar`` -> the
    export's theta [alpha, offsets, b beta_r, gamma beta_r] with the modifier P centred at ``Pbar``:
    gamma (P beta_r - pibar) = (P - Pbar)(gamma beta_r) + delta, delta = gamma (Pbar beta_r - pibar)
    a constant of the active arm (alpha + delta, offsets - delta). The same predictions exactly."""
    alpha, offs, b, g = theta2[0], theta2[1:1 + C], theta2[1 + C], theta2[2 + C]
    delta = g * (float(Pbar @ beta_r) - pibar)
    return np.concatenate([[alpha + delta], offs - delta, b * beta_r, g * beta_r])
