"""Shared contract of the benefit learners.

Every learner is a scikit-learn estimator (``sklearn.base.BaseEstimator``): ``__init__`` only
stores its parameters, ``get_params`` / ``set_params`` / ``clone`` / the repr come from
scikit-learn (``set_params`` refuses unknown names), ``fit(X, y)`` returns ``self`` and fitted
state ends in ``_``. ``X`` is a pandas DataFrame with
one row per participant of one outcome x follow-up task: columns ``trial`` and ``treatment``
(the class) plus the features; ``y`` is the outcome (0-100 higher = worse for continuous
outcomes; 0/1 with 1 = good, e.g. global recovery, for binary outcomes).

The whole fitted state is the JSON-able dict ``export_`` (see :mod:`predict.runtime`);
``predict`` / ``predict_interval`` / ``explain`` are pure functions of it, so the exported
model reproduces the learner exactly.

Shared structure and assumptions (all learners):

- Trial is a stratum: outcome models have trial-specific intercepts (fixed effects), so
  between-trial differences in outcome level never enter the benefit; effect modification is
  estimated from within-trial comparisons (modifiers centred at their trial means, or trial
  offsets for the trees).
- Class-specific average effects with effect modification *shared across comparator classes*:
  benefit_vs_c(x) = (average effect of the active class vs c) + h(x). Every comparator with data
  gets a prediction; classes with few trials borrow h from the others (stated assumption).
- Randomisation is known: the propensity is each trial's allocation share of the active class
  among its active and comparator participants (never estimated from covariates).
- Predictions are for a patient of a *new* trial: trial effects at their (size-weighted) mean.
"""
from __future__ import annotations

import copy
import json
from typing import Any, Sequence

import numpy as np
import pandas as pd

from sklearn.base import BaseEstimator

from predict.explain import explain_from_export
from predict.features import feature_matrix
from predict.runtime import predict_from_export
from training.orientation import higher_is_better, orient

RESERVED = ("trial", "participant", "arm", "treatment", "subtype", "treat", "outcome", "follow_up",
            "week", "instrument", "value", "baseline")
BINARY_OUTCOMES = ("global_recovery",)
FEW_TRIALS = 2  # a comparator class with fewer trials (or < FEW_PARTICIPANTS) is flagged
FEW_PARTICIPANTS = 60


def outcome_type_of(outcome: str, cfg=None) -> str:
    """``'binary'`` for a binary outcome of the study config (harmonised so that 1 = good, e.g. global
    recovery) else ``'continuous'`` (0-100, higher = worse); without a config, by the legacy name."""
    if cfg is not None:
        return cfg.outcome_type(outcome)
    return "binary" if outcome in BINARY_OUTCOMES else "continuous"


def feature_spec_from_config(cfg) -> dict:
    """Feature names/types from a study config: its covariates then ``baseline_<outcome>`` of every
    outcome measured at baseline. A categorical covariate's levels start with the config's
    ``reference`` level (the learners' one-hot terms are each level vs the first)."""
    names, types, cats = [], [], {}
    for c in cfg.covariates.covariates:
        names.append(c.name)
        types.append(c.type)
        if c.type == "categorical":
            ref = getattr(c, "reference", None)
            levels = list(c.categories)
            cats[c.name] = ([ref] + [lv for lv in levels if lv != ref]) if ref in levels else levels
    for o in getattr(cfg, "baseline_outcomes", cfg.outcomes):
        names.append(f"baseline_{o}")
        types.append("continuous")
    return {"names": names, "types": types, "categories": cats}


def infer_feature_spec(X: pd.DataFrame, features: Sequence[str] | None = None) -> dict:
    """Feature spec from the data: every non-reserved column (or ``features``); binary if its
    observed values are within {0, 1}, categorical if non-numeric, else continuous."""
    names = list(features) if features is not None else [c for c in X.columns if c not in RESERVED]
    types, cats = [], {}
    for n in names:
        col = X[n] if n in X.columns else pd.Series(dtype=float)
        num = pd.to_numeric(col, errors="coerce")
        if col.notna().sum() and num.notna().sum() < col.notna().sum():
            types.append("categorical")
            cats[n] = sorted(str(v) for v in col.dropna().unique())
        elif set(num.dropna().unique()) <= {0, 1}:
            types.append("binary")
        else:
            types.append("continuous")
    return {"names": names, "types": types, "categories": cats}


def task_frame(analysis: pd.DataFrame, outcome: str, follow_up: str) -> pd.DataFrame:
    """Rows of one outcome x follow-up task of the harmonised analysis table."""
    m = (analysis["outcome"] == outcome) & (analysis["follow_up"] == follow_up)
    return analysis.loc[m].reset_index(drop=True)


def allocation_share(trial: np.ndarray, is_active: np.ndarray, is_comparator: np.ndarray) -> np.ndarray:
    """Known propensity per row: the trial's share of active among its active + comparator
    participants (NaN for trials without a comparator arm)."""
    e = np.full(trial.size, np.nan)
    for t in np.unique(trial):
        m = trial == t
        na, nc = is_active[m].sum(), is_comparator[m].sum()
        if na and nc:
            e[m] = na / (na + nc)
    return e


class TaskArrays:
    """Arrays of one task: features F (NaN = missing), outcome y, class labels, trial codes."""

    def __init__(self, X: pd.DataFrame, y: Any, spec: dict, active: str, outcome_type: str):
        if "trial" not in X.columns or "treatment" not in X.columns:
            raise ValueError("X needs columns 'trial' and 'treatment' to fit a benefit learner")
        self.F = feature_matrix(spec, X)
        self.y = np.asarray(y, float).reshape(-1)
        if self.y.size != len(X):
            raise ValueError(f"y has {self.y.size} values for {len(X)} rows")
        if np.isnan(self.y).any():
            raise ValueError("y has missing values; drop those rows first")
        if outcome_type == "binary" and not set(np.unique(self.y)) <= {0.0, 1.0}:
            raise ValueError("a binary outcome must be 0/1")
        self.cls = X["treatment"].astype(str).to_numpy()
        self.trial_labels = X["trial"].astype(str).to_numpy()
        self.trials, self.trial = np.unique(self.trial_labels, return_inverse=True)
        self.active = active
        self.treat = (self.cls == active).astype(float)
        self.outcome_type = outcome_type
        self.g = orient(self.y, higher_is_better(outcome_type))

    @property
    def n(self) -> int:
        return self.y.size


def class_support(prep: TaskArrays, classes: Sequence[str]) -> tuple[list, list, dict]:
    """(comparators with data, unavailable comparators, per-class support): a comparator
    has data if some trial has both it and the active class."""
    comps, unavailable, support = [], [], {}
    with_active = set(np.unique(prep.trial[prep.treat == 1]))
    for c in classes:
        if c == prep.active:
            continue
        m = prep.cls == c
        trials = sorted(set(np.unique(prep.trial[m])) & with_active)
        n = int(np.isin(prep.trial[m], trials).sum())
        support[c] = {"trials": len(trials), "participants": n,
                      "sparse": bool(len(trials) < FEW_TRIALS or n < FEW_PARTICIPANTS)}
        (comps if trials else unavailable).append(c)
    return comps, unavailable, support


class BenefitLearner(BaseEstimator):
    """Base of the learners: prediction, intervals, explanations and export from ``export_``."""

    kind = "base"

    def _spec(self, X: pd.DataFrame) -> dict:
        fs = getattr(self, "features", None)
        if isinstance(fs, dict):
            return copy.deepcopy(fs)
        return infer_feature_spec(X, fs)

    def _check_fitted(self) -> None:
        if not hasattr(self, "export_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit first")

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """Expected outcome under the active class and each comparator (``expected_<class>``)
        and the benefit vs each comparator (``benefit_vs_<c>``, positive = active better)."""
        self._check_fitted()
        return predict_from_export(self.export_, X, intervals=False)

    def predict_benefit(self, X: pd.DataFrame, comparator: str) -> np.ndarray:
        return self.predict(X)[f"benefit_vs_{comparator}"].to_numpy()

    def predict_interval(self, X: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
        """Point predictions plus ``benefit_vs_<c>_se``, ``_ci_low/_ci_high`` (the patient's
        benefit in an average trial) and ``_pi_low/_pi_high`` (a new setting: adds tau)."""
        self._check_fitted()
        return predict_from_export(self.export_, X, intervals=True, level=level)

    def explain(self, X: pd.DataFrame, comparator: str) -> pd.DataFrame:
        """Per-patient additive contributions to ``benefit_vs_<comparator>`` (outcome units)."""
        self._check_fitted()
        return explain_from_export(self.export_, X, comparator)

    def support_scores(self, X: pd.DataFrame) -> dict:
        """Per patient the distance from the training support (``predict.support``): ``z``,
        ``percentile``, interval widening ``factor`` and ``rare`` flag."""
        from predict.support import support_scores

        self._check_fitted()
        return support_scores(self.export_.get("support"), feature_matrix(self.export_["features"], X))

    def _attach_support(self, X: pd.DataFrame) -> None:
        """Store the training support of the inputs that drive this learner's effect modification
        (``training.learners.support``); skipped without intervals (``n_boot=0``, e.g. in IECV)."""
        if getattr(self, "n_boot", 1) == 0:
            self.export_["support"] = {"method": "none", "features": [], "reason": "no intervals (n_boot=0)"}
            return
        from training.learners.support import learner_support

        self.export_["support"] = learner_support(self, X, feature_matrix(self.export_["features"], X))

    def to_export(self) -> dict:
        """The fitted state as plain JSON numbers + LightGBM model strings (a deep copy)."""
        self._check_fitted()
        return json.loads(json.dumps(self.export_))

    @property
    def comparators_(self) -> list:
        return list(self.export_["comparators"])

    def summary(self) -> pd.DataFrame:  # overridden where coefficients make sense
        self._check_fitted()
        s = self.export_["meta"].get("support", {})
        return pd.DataFrame([{"comparator": c, **v} for c, v in s.items()])
