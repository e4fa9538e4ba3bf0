"""Benefit in a trial of the training data: average-trial benefit + that trial's own effect.

Every learner predicts the benefit for a patient of a *new* trial (trial effects at their
mean). For participants of a trial that was in the training data a second estimand is
natural (trialists re-analysing their own trial, or a benchmark against the trial-specific
truth): the benefit **in that trial**,

    b_t,c(x) = b_c(x) + u_t,c,

where u_t,c is trial t's deviation from the learner's average effect of the active class vs
class c. ``InTrialBenefit`` estimates u_t,c by empirical Bayes, the usual one-stage
random-effects model on the learner's residuals:

1. per trial and comparator class, the raw deviation d_t = (mean residual in the active arm) -
   (mean residual in the class's arm), oriented so that larger = active better; residuals are
   the observed outcome minus the learner's expected outcome under the participant's own arm
   (covariate-adjusted: randomisation balances the arms, so the trial intercept cancels), with
   s_t^2 = var_a / n_a + var_c / n_c;
2. d_t ~ N(mu_c, tau_c^2 + s_t^2) pooled by REML (``training.metrics.pool_random_effects``);
   classes with fewer than ``min_trials`` trials borrow tau pooled over all classes;
3. u_t = mu_c + B_t (d_t - mu_c) with shrinkage B_t = tau^2 / (tau^2 + s_t^2) (the BLUP), and
   posterior variance tau^2 s_t^2 / (tau^2 + s_t^2) + (1 - B_t)^2 Var(mu_c).

The interval of the in-trial benefit adds that posterior variance to the learner's own
(average-trial) SE: the two are treated as independent, which slightly over-states the
width because mu_c reuses the data of the learner's average effect. Rows of trials that were
not fitted (or lack the class) get u = 0 and the learner's new-setting prediction interval.

Assumptions: the trial's deviation is additive on the benefit scale and the same for every
patient of the trial; for a binary outcome it is a risk difference (a linear approximation;
predicted probabilities are not re-derived). In-sample residuals of flexible learners are
slightly over-fitted, which shrinks d_t towards zero (conservative).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from scipy import stats

from training.learners.base import BenefitLearner
from training.orientation import higher_is_better, orient
from training.learners.intervals import tau_from_deviations, trial_deviations


def learner_residuals(learner: BenefitLearner, X: pd.DataFrame, y) -> np.ndarray:
    """Observed outcome minus the fitted learner's expected outcome under each row's own arm, on the
    benefit (oriented) scale; NaN for rows of classes the learner does not predict."""
    exp = learner.export_
    y = np.asarray(y, float).reshape(-1)
    if y.size != len(X):
        raise ValueError(f"y has {y.size} values for {len(X)} rows")
    cls = X["treatment"].astype(str).to_numpy()
    p = learner.predict(X)
    own = np.full(y.size, np.nan)
    for c in [exp["active"]] + list(learner.comparators_):
        col = f"expected_{c}"
        if col in p:
            m = cls == c
            own[m] = p[col].to_numpy()[m]
    hib = higher_is_better(exp["outcome_type"])
    return orient(y, hib) - orient(own, hib)


def univariate_deviations(r: np.ndarray, trial: np.ndarray, cls: np.ndarray, active: str, comps: list,
                          min_trials: int = 3, fixed_tau: float | None = None) -> tuple[pd.DataFrame, dict]:
    """Per trial x class: raw deviation, SE, REML tau, BLUP and posterior SD (module docstring);
    ``fixed_tau`` replaces REML's tau of every class (a sensitivity analysis)."""
    rows = trial_deviations(r, trial, cls, active, comps)
    taus = tau_from_deviations(rows, comps, min_trials)
    if fixed_tau is not None:
        taus = {k: float(fixed_tau) for k in taus}
    dev = pd.DataFrame(rows, columns=["trial", "comparator", "n_active", "n_comparator", "raw", "se"])
    out = []
    for c in comps:
        d = dev[dev.comparator == c].copy()
        if d.empty:
            continue
        tau = taus[c]
        s2 = d["se"].to_numpy() ** 2
        w = 1.0 / (tau ** 2 + s2)  # the random-effects mean given tau (REML's estimate and SE)
        mu, var_mu = float(np.sum(w * d["raw"]) / np.sum(w)), float(1.0 / np.sum(w))
        B = tau ** 2 / (tau ** 2 + s2) if tau > 0 else np.zeros_like(s2)
        d["mu"] = mu
        d["tau"] = tau
        d["shrinkage"] = B
        d["blup"] = mu + B * (d["raw"].to_numpy() - mu)
        d["post_sd"] = np.sqrt(B * s2 + (1 - B) ** 2 * var_mu)
        out.append(d)
    return (pd.concat(out, ignore_index=True) if out else dev.assign(mu=[], tau=[], shrinkage=[], blup=[], post_sd=[]),
            taus)


class InTrialBenefit(BaseEstimator):
    """Benefit of each participant in their own (fitted) trial; see module docstring.

    Parameters: ``learner`` a fitted benefit learner; ``min_trials`` trials per class below
    which the class borrows the pooled tau. ``fit(X, y)`` takes the training rows (``trial``,
    ``treatment``, features) and outcomes and sets ``deviations_`` (one row per trial x class:
    raw, se, shrinkage, blup, post_sd) and ``tau_``.
    """

    def __init__(self, learner: BenefitLearner, min_trials: int = 3):
        self.learner = learner
        self.min_trials = min_trials

    def fit(self, X: pd.DataFrame, y) -> "InTrialBenefit":
        lr = self.learner
        lr._check_fitted()
        active = lr.export_["active"]
        comps = list(lr.comparators_)
        r = learner_residuals(lr, X, y)
        cls = X["treatment"].astype(str).to_numpy()
        trial = X["trial"].astype(str).to_numpy()
        self.deviations_, self.tau_ = univariate_deviations(r, trial, cls, active, comps, self.min_trials)
        self.active_ = active
        self.comparators_ = comps
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "deviations_"):
            raise RuntimeError("InTrialBenefit is not fitted; call fit first")

    def _deviation(self, X: pd.DataFrame, c: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(BLUP, posterior SD, in a fitted trial) per row of ``X`` for comparator ``c``."""
        d = self.deviations_[self.deviations_.comparator == c].set_index("trial")
        trial = pd.Series(X["trial"].astype(str).to_numpy())
        u = trial.map(d["blup"]).to_numpy(float)
        hit = np.isfinite(u)
        return np.where(hit, u, 0.0), np.where(hit, trial.map(d["post_sd"]).to_numpy(float), 0.0), hit

    def predict_interval(self, X: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
        """The learner's ``predict_interval`` columns with each ``benefit_vs_<c>`` moved by its
        trial's BLUP and ``_se``/``_ci_low``/``_ci_high`` widened by its posterior SD. Rows of
        unfitted trials keep the average-trial benefit; their CI is replaced by the learner's
        new-setting PI. ``in_trial_<c>`` flags the rows that got a trial deviation."""
        self._check_fitted()
        p = self.learner.predict_interval(X, level=level).copy()
        z = stats.norm.ppf(0.5 + level / 2)
        for c in self.comparators_:
            u, sd, hit = self._deviation(X, c)
            col = f"benefit_vs_{c}"
            b = p[col].to_numpy(float) + u
            p[col] = b
            p[f"in_trial_{c}"] = hit
            if f"{col}_se" in p:
                se = np.sqrt(p[f"{col}_se"].to_numpy(float) ** 2 + sd ** 2)
                p[f"{col}_se"] = se
                lo = np.where(hit, b - z * se, p[f"{col}_pi_low"].to_numpy(float))
                hi = np.where(hit, b + z * se, p[f"{col}_pi_high"].to_numpy(float))
                p[f"{col}_ci_low"], p[f"{col}_ci_high"] = lo, hi
                p[f"{col}_pi_low"], p[f"{col}_pi_high"] = lo, hi
        return p

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """Point predictions: the learner's ``predict`` with each benefit moved by its trial's BLUP."""
        self._check_fitted()
        p = self.learner.predict(X).copy()
        for c in self.comparators_:
            u, _, hit = self._deviation(X, c)
            p[f"benefit_vs_{c}"] = p[f"benefit_vs_{c}"].to_numpy(float) + u
            p[f"in_trial_{c}"] = hit
        return p

    def summary(self) -> pd.DataFrame:
        """One row per trial x comparator: raw deviation, SE, tau, shrinkage, BLUP, posterior SD."""
        self._check_fitted()
        return self.deviations_.copy()
