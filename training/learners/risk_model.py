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

Uncertainty: trial-cluster bootstrap of stage 2 *given* the index (stage-1 variability is
ignored: the index is treated as a fixed score), delta-method SEs; tau as in every learner.
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
from training.learners.linear import StructuredFit, make_basis, prior_lambda, trial_centre


class RiskModel(EffectModel):
    """Prognostic index (treatment-blind) + treatment x index interaction (module docstring)."""

    kind = "risk_model"

    def __init__(self, outcome_type: str = "continuous", active: str = "exercise", classes=None, features=None,
                 interaction_sd: float | None = None, prognostic_sd: float | None = None, n_knots: int = 3,
                 splines: bool = True, n_boot: int = 100, n_draws: int = 20, shrinkage_bias: bool = True,
                 random_state: int = 0):
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
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y) -> "RiskModel":
        d = shared_linear_data(self, X, y)
        fam = d.family
        Pcols = make_basis(d.Fi, d.spec, self.n_knots, self.splines)
        P = basis(Pcols, d.Fi)
        # stage 1: treatment-blind prognostic model (trial intercepts + P), all rows
        prog_sd = self.prognostic_sd if self.prognostic_sd is not None else (5.0 if fam == "gaussian" else 0.5)
        s1 = StructuredFit(fam, 0.0, 1e12).fit(d.y, d.trial, np.full(d.y.size, "_"), d.treat, [], P,
                                               np.zeros((d.y.size, 0)))
        sigma2 = s1.sigma2_ if fam == "gaussian" else 1.0
        s1 = StructuredFit(fam, prior_lambda(fam, sigma2, prog_sd), 1e12).fit(
            d.y, d.trial, np.full(d.y.size, "_"), d.treat, [], P, np.zeros((d.y.size, 0)))
        beta_r = s1.theta_[1:1 + P.shape[1]]
        pi = P @ beta_r
        sd_pi = float(pi.std()) or 1.0
        beta_r = beta_r / sd_pi  # PI in SD units
        pi = pi / sd_pi
        block = {"type": "index", "basis": Pcols, "beta": beta_r.tolist(), "center": [0.0]}
        PI = pi[:, None]
        pibar = float(pi.mean())
        block_mod = dict(block, center=[pibar])
        block_prog = dict(block, center=[0.0])
        # stage 2
        isd = self.interaction_sd if self.interaction_sd is not None else (2.0 if fam == "gaussian" else 0.1)
        lam_main = prior_lambda(fam, sigma2, MAIN_SD[fam])
        lam_int = prior_lambda(fam, sigma2, isd)
        s2 = StructuredFit(fam, lam_main, lam_int).fit(d.y, d.trial, d.cls, d.treat, d.comps, PI, trial_centre(PI, d.trial))
        exp = d.base_export(self, "risk_model")
        exp["linear"] = {"link": "identity" if fam == "gaussian" else "logit", "prog": block_prog,
                         "modifier": block_mod, "theta": s2.theta_.tolist(), "n_prog": 1, "n_mod": 1}
        thetas = []
        for idx, codes in cluster_bootstrap(d.trial, d.has_comp, self.n_boot, self.random_state, strata=d.cls):
            if len(set(d.cls[idx]) & set(d.comps)) < len(d.comps):
                continue
            fb = StructuredFit(fam, lam_main, lam_int).fit(d.y[idx], codes, d.cls[idx], d.treat[idx], d.comps,
                                                           PI[idx], trial_centre(PI[idx], codes))
            thetas.append(fb.theta_)
        thetas = np.array(thetas)
        cov = np.cov(thetas, rowvar=False) if len(thetas) > 2 else np.zeros((s2.theta_.size,) * 2)
        if self.shrinkage_bias:
            cov = np.atleast_2d(cov) + s2.shrinkage_cov(sigma2)
        g_hat = -s2.eta_ if fam == "gaussian" else expit(s2.eta_)
        tau = residual_tau(d.g, g_hat, d.trial, d.cls, d.prep.active, d.comps)
        exp["interval"] = {"method": "delta", "theta_cov": np.atleast_2d(cov).tolist(), "tau": tau,
                           "n_boot": int(len(thetas))}
        exp["meta"].update({"interaction_sd": isd, "prognostic_sd": prog_sd, "sigma2": sigma2,
                            "pi_sd_units": sd_pi})
        self.theta_ = s2.theta_
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
        return block_matrix(self.export_["linear"]["prog"], Fi, centred=False)[:, 0]
