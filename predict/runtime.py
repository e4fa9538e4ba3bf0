"""Exported learner state -> a table of predictions with intervals (:func:`predict_from_export`).

Every learner in :mod:`training.learners` keeps its fitted state as one JSON-able dict
(``learner.to_export()``): numbers, lists and LightGBM native model strings
(``booster.model_to_string()``). Predictions, intervals and explanations are *pure functions*
of that dict, defined in the runtime's modules, one job each (docs/artifact.md has the map):
:mod:`predict.features` (DataFrame -> feature matrix), :mod:`predict.impute` (missing-data model),
:mod:`predict.linear` (linear terms), :mod:`predict.trees` (LightGBM boosters),
:mod:`predict.evaluate` (expected outcome and benefit per learner kind: the reference),
:mod:`predict.uncertainty` (estimation SEs, missing-data variance), :mod:`predict.explain`
(contributions). The learners call these same functions, so an exported model reproduces
``learner.predict`` exactly (tested after a JSON round trip). None of them imports ``training``,
scikit-learn or pickle. The export's typed records are :mod:`predict.model_format`'s.

Boosters are given as LightGBM native model strings (``booster.model_to_string()``), loaded
with ``lightgbm.Booster(model_str=...)`` and cached; an already-loaded ``lightgbm.Booster`` is
accepted too (the scorer hands over boosters it loaded once from verified artifact bytes).

Export dict layout (``format`` = ``"lbp-benefit-learner"``, ``version`` = 1; typed in
:mod:`predict.model_format`)::

    kind          "constant" | "effect_model" | "risk_model" | "t_learner" | "x_learner"
                  | "dr_learner" | "stacked"
    outcome_type  "continuous" (0-100, higher = worse) | "binary" (1 = good, e.g. recovery)
    active        the active class ("exercise")
    comparators   comparator classes with estimates; ``unavailable``: classes without data
    features      {"names": [...], "types": [...], "categories": {name: [levels]}}
    imputer       {"mean": [p], "cov": [[p x p]], "z": [[M x p]], "lower": [p], "upper": [p],
                   "binary": [p bools]}  Gaussian conditional imputation for scoring
    linear        (linear kinds, and "base" of tree kinds) {"link", "prog": block,
                   "modifier": block | None, "theta": [intercept, offsets..., beta..., gamma...],
                   "n_prog", "n_mod"}; block = {"type": "basis", "basis": [col specs],
                   "center": [...]} or {"type": "index", "basis": [...], "beta": [...],
                   "center": [c]}; col spec = {"feature": j, "kind": "linear"|"rcs"|"onehot"|"product",
                   "knots"|"level", "loc", "scale"}
    boosters      {name: LightGBM model string} (tree kinds): T "active"/"control" (raw score
                   added to the linear base), X "tau1"/"tau0", DR "tau"
    tree_missing  "native" (boosters see NaN) | "impute" (boosters see the imputed matrix)
    nuisance      (X, DR) the embedded T-learner export giving the expected outcome under exercise
    combine       kind-specific numbers (X: {"e"}, X/DR: {"class_benefit": {c: b}})
    members       (stacked) {"weights": [...], "names": [...], "exports": [sub-exports]}
    interval      {"method": "delta" | "varmodel" | "stack", "theta_cov": [[...]] (delta),
                   "varmodel": {c: [coef]}, "design": {"loc", "scale"} (varmodel),
                   "tau": {c: between-trial SD, "__pooled__": SD}, "n_boot": B,
                   "between": "mixture" (stack: the SE adds the members' disagreement; absent in
                   stacks before 2026-12-07: members' SEs only, scored as before),
                   "member_corr": {c: K x K} (stack, optional: the members' error correlation, their
                   SEs combined as sqrt(s' R s); absent: added, as before)}
    structural_missing  (derived binary outcomes, e.g. recovery) the structural missing-input
                  allowance: the continuous outcomes' models through the outcome's definition
                  (layout and rule in :mod:`predict.recovery_structure`; absent: scored as before)
    support       the training support of the inputs driving effect modification, for the
                   extrapolation check and interval widening (layout in :mod:`predict.support`;
                   absent in older models: no widening)
    meta          free-form (outcome, follow-up, trials, selection ...); not used to predict

Estimand (all kinds): for a patient with covariates x, the expected outcome under each class
in an *average* trial (trial effects at their weighted mean) and the benefit of the active
class vs each comparator, positive = active better: continuous E[Y|c,x] - E[Y|active,x];
binary P(Y=1|active,x) - P(Y=1|c,x).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from predict.evaluate import point
from predict.features import feature_matrix
from predict.learner_model import Learner, as_learner
from predict.numeric import norm_ppf
from predict.recovery_structure import parse, structural_variance, widened
from predict.support import support_scores
from predict.uncertainty import estimation_se, missing_variance


def predict_from_export(exp: Learner | dict, X: pd.DataFrame, intervals: bool = True, level: float = 0.95) -> pd.DataFrame:
    """Predictions from an exported learner: ``expected_<class>`` for the active class and every
    comparator, ``benefit_vs_<c>`` (positive = active better), and with ``intervals``
    ``benefit_vs_<c>_se``, ``_ci_low``/``_ci_high`` (confidence interval for the patient's
    benefit in an average trial: bootstrap SE combined with the spread over the patient's
    missing covariates) and ``_pi_low``/``_pi_high`` (adds the between-trial SD tau: a new
    setting). Both are widened by the extrapolation factor of :mod:`predict.support` for patients
    beyond the training support. Unavailable classes (no training data) are NaN."""
    L = as_learner(exp)
    F = feature_matrix(L.features, X)
    ex, ben = point(L, F)
    out = {f"expected_{L.active}": ex["__active__"]}
    for c in L.comparators:
        out[f"expected_{c}"] = ex[c]
    for c in L.unavailable:
        out[f"expected_{c}"] = np.full(len(X), np.nan)
    for c in L.comparators:
        out[f"benefit_vs_{c}"] = ben[c]
    for c in L.unavailable:
        out[f"benefit_vs_{c}"] = np.full(len(X), np.nan)
    if intervals:
        z = norm_ppf(0.5 + level / 2)
        se_b = estimation_se(L, F)
        vm = missing_variance(L, F)
        structural = parse(exp) if isinstance(exp, dict) else None  # a derived outcome's allowance, if exported
        for c in L.comparators if structural is not None else ():
            vm[c] = widened(vm[c], structural_variance(L, structural, F, c)[0])
        lim = 100.0 if L.continuous else 1.0
        f = support_scores(L.support, F)["factor"]  # >= 1: widening for extrapolation
        for c in L.comparators:
            se = f * np.sqrt(se_b[c] ** 2 + vm[c])
            tau = L.interval.tau_of(c)
            b = ben[c]
            out[f"benefit_vs_{c}_se"] = se
            out[f"benefit_vs_{c}_ci_low"] = np.clip(b - z * se, -lim, lim)
            out[f"benefit_vs_{c}_ci_high"] = np.clip(b + z * se, -lim, lim)
            sp = np.sqrt(se ** 2 + (f * tau) ** 2)
            out[f"benefit_vs_{c}_pi_low"] = np.clip(b - z * sp, -lim, lim)
            out[f"benefit_vs_{c}_pi_high"] = np.clip(b + z * sp, -lim, lim)
        for c in L.unavailable:
            for s in ("se", "ci_low", "ci_high", "pi_low", "pi_high"):
                out[f"benefit_vs_{c}_{s}"] = np.full(len(X), np.nan)
    return pd.DataFrame(out, index=X.index)
