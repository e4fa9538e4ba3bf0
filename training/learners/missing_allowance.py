"""The missing-input allowance of the X- and DR-learners' intervals (issue 23).

Estimand of the CI: the patient's benefit in an average trial, given the inputs the patient has.
When inputs are missing, the interval also carries how much that benefit varies over the values
the missing inputs could plausibly take: the variance of the prediction over conditional draws
of the missing features (``predict.uncertainty.missing_variance``, added at scoring time).

Why the tree learners need an allowance: their effect boosters learn the dependence on a feature
only from the rows where it is observed (LightGBM's native missing-value splits; fear-avoidance
is missing for 68% of the default design's participants, mental health 72%), under strong
regularisation. Their prediction therefore varies little over the draws of a missing feature:
on the simulator (hayden2020, seed 1) the X-learner's mean missing-draw variance was 3.0 points²
(DR 4.5) where the linear effect model's was 8.1, while the X-learner's estimation variance was
honest (mean bootstrap variance 7.2 vs its error beyond the best observed-data predictor, 8.4).
Its errors against the average-trial truth were dominated by what the missing inputs hide, and
its 95% CI covered 0.75-0.82 of that truth. (The bias is not an attenuation of the predicted
benefit as a whole: the slope of the truth on the X-learner's prediction was 0.98-1.30 across
the four modified scenarios, DR 0.67-1.02; the cross-fitted calibration-for-benefit slope of the
AIPW pseudo-outcome on the out-of-fold prediction was 0.83-1.26 for X, within 1 SE of 1, and
0.57-0.83 for DR, i.e. over- rather than under-dispersed; BENCHMARKS.md, session 9.)

Method: a reference for the missing-data variance that learns a feature's effect *as if it were
observed for everyone*: the linear effect model (``training.learners.effect_model``), fitted on
the same rows with conditional-mean imputation within trial (regression calibration: its
interaction coefficients are those of the complete feature), its prior SD chosen by grouped
cross-validation (SD 0, no modification, is on the grid). Its v_ref is the *expected* variance of its
benefit over the draws given what its coefficients' uncertainty is (session 10, i23k): the point fit's
draw variance gamma_hat' S gamma_hat plus tr(S V) (``coefficient_draw_variance``; V its modifier
coefficients' covariance from a trial-cluster bootstrap plus the shrinkage-bias term, S the draws'
covariance of its modifier columns) - the posterior mean of gamma' S gamma. Without the second term the
reference inherited the shrunk fit's understatement: where the CV chose a strong penalty (prior SD 1 on
curvilinear seed 2) the point fit's draw variance was about half of a less shrunk fit's. Per training
row and comparator the allowance is max(0, v_ref - v_own), v = the variance over the *same* conditional
draws; it is added to the bootstrap variance before the exportable log-linear variance model is
fitted (``training.learners.intervals.fit_variance_model``, whose design holds the missing
indicators), so the served SE = sqrt(variance model + own draw variance) ~ sqrt(bootstrap
variance + max(own, reference) draw variance): no new interval field, no scoring change
(a summary goes to the export's ``meta.missing_allowance``).

Assumptions: the missing features are missing at random given the observed ones and the trial
(the imputation model's own assumption); the linear effect model's modification by a feature is
not larger than the truth's (its shrinkage errs the other way; non-linear or interacting
modification by missing features stays short). Continuous outcomes only; binary outcomes keep the
bootstrap variance alone (not measured). Complete rows get no allowance.

Checked against the simulator's truth (``benchmarks/bench_learners.py``, seeds 1, 2; BENCHMARKS.md
session 9, i23x): 95% CI coverage of the average-trial benefit, X-learner before -> after 0.82 ->
0.91 (hayden2020), 0.80 -> 0.92 (plateau), 0.75 -> 0.87 (curvilinear), 0.77 -> 0.87 (interaction),
0.97 -> 0.97 (no modification: the reference's CV chose SD 0 at both seeds, no allowance); DR-learner 0.88 -> 0.92,
0.87 -> 0.92, 0.82 -> 0.88, 0.84 -> 0.88, 0.96 -> 0.96. Point predictions are unchanged. A third
seed is hard for every learner (effect model 0.84-0.90): means of seeds 1-3, X 0.80 -> 0.89, 0.73 ->
0.86, 0.74 -> 0.87, 0.76 -> 0.84; DR 0.87 -> 0.90, 0.83 -> 0.88, 0.82 -> 0.88, 0.84 -> 0.87: the
allowance removes about half to two thirds of the shortfall, not all of it (what is left is the
boosters' estimation bias, which their bootstrap does not see). With the coefficient term (session 10,
i23k; ``benchmarks/diag_ci_coverage.py``, seeds 1, 2, BENCHMARKS.md): X 0.871 -> 0.914 (curvilinear),
0.871 -> 0.902 (interaction), 0.910 -> 0.942 (hayden2020), 0.918 -> 0.946 (plateau), none unchanged
(0.971, no modification in the reference); DR 0.880 -> 0.912, 0.878 -> 0.912, 0.917 -> 0.942, 0.923 ->
0.946, 0.959. Point predictions unchanged.
"""
from __future__ import annotations

import numpy as np

from predict.uncertainty import missing_variance, missing_variance_fast


REFERENCE_BOOT = 100  # trial-cluster bootstrap replicates of the reference's coefficient covariance


def coefficient_draw_variance(exp: dict, F: np.ndarray) -> np.ndarray:
    """Per row of ``F``, tr(S_i V): what the uncertainty of a linear learner's modifier coefficients
    adds to the variance of its benefit over the conditional draws of the row's missing features.

    With m_d the modifier columns at draw d (d = 1..M, ``predict.uncertainty.missing_draws``), S_i
    their covariance over the draws (ddof 1) and gamma ~ (gamma_hat, V) the coefficients (V: the
    export's ``theta_cov`` modifier block, bootstrap + shrinkage bias), the expected draw variance
    of the benefit m_d' gamma is E[gamma' S_i gamma] = gamma_hat' S_i gamma_hat + tr(S_i V): the
    first term is ``predict.uncertainty.missing_variance`` (the point fit's draws), this is the
    second. Identity link; the same for every comparator (one modification function). 0 for
    complete rows and for a model without modifiers."""
    from predict.learner_model import as_learner
    from predict.linear import block_matrix
    from predict.uncertainty import missing_draws

    L = as_learner(exp)
    out = np.zeros(F.shape[0])
    k = L.linear.n_mod
    if not k or L.linear.modifier is None or L.interval is None or L.interval.method != "delta":
        return out
    V = np.asarray(L.interval.theta_cov, float)[-k:, -k:]
    rows, flat, M, n = missing_draws(L, F)
    if flat is None or M < 2:
        return out
    D = block_matrix(L.linear.modifier, flat).reshape(M, n, k)
    D = D - D.mean(axis=0)
    out[rows] = np.einsum("mnk,kl,mnl->n", D, V, D, optimize=True) / (M - 1)
    return out


def reference_variance(learner, X, y, F: np.ndarray, comparators: list) -> dict:
    """The reference: per comparator the linear effect model's expected variance over the
    conditional draws of the missing features at the rows of ``F`` (the learner's training rows),
    fitted on ``X, y`` with ``learner``'s settings: the point fit's draw variance
    (``predict.uncertainty.missing_variance``) plus what its coefficients' uncertainty adds
    (:func:`coefficient_draw_variance`, from a trial-cluster bootstrap of ``REFERENCE_BOOT``
    replicates plus the shrinkage-bias term). Also ``'__sd__'``: its chosen prior SD, and
    ``'__coef__'``: the coefficient term alone. A pure function of the data and settings (the
    boosted learners cache it: the X- and DR-learner of one training job share it)."""
    from training.learners.effect_model import EffectModel

    ref = EffectModel(outcome_type=learner.outcome_type, active=learner.active, classes=learner.classes,
                      features=learner.features, n_boot=REFERENCE_BOOT, n_draws=learner.n_draws,
                      random_state=learner.random_state).fit(X, y)
    v = missing_variance(ref.export_, F, comparators)
    coef = coefficient_draw_variance(ref.export_, F)
    return {**{c: v[c] + coef for c in comparators}, "__sd__": float(ref.interaction_sd_), "__coef__": coef}


def missing_allowance(learner, exp: dict, F: np.ndarray, comparators: list, reference) -> tuple[dict, dict]:
    """Per comparator the allowance max(0, v_ref - v_own) at the rows of ``F`` (the learner's
    training rows, NaN = missing) and a summary for the export's ``meta``. ``exp``: the X/DR
    learner's point export (boosters and imputer); ``reference``: a callable returning
    :func:`reference_variance` (called only when an allowance applies)."""
    zero = {c: np.zeros(F.shape[0]) for c in comparators}
    if learner.outcome_type != "continuous":
        return zero, {"method": "none", "reason": "binary outcome: bootstrap variance only"}
    miss = np.isnan(F).any(axis=1)
    if not miss.any():
        return zero, {"method": "none", "reason": "no missing inputs in the training data"}
    v_ref = reference()
    # X/DR: benefit vs c = B_c + h(x) with one h for every comparator, so the variance over the
    # draws is the same for each; computed once, from the effect boosters alone
    v1 = missing_variance_fast(exp, F, comparators[0])
    v_own = {c: v1 for c in comparators}
    out = {c: np.clip(v_ref[c] - v_own[c], 0.0, None) for c in comparators}
    summary = {"method": "reference_missing_variance", "reference": "effect_model",
               "reference_interaction_sd": v_ref["__sd__"], "rows_with_missing": int(miss.sum()),
               "mean_reference_coefficient_term": float(
                   np.broadcast_to(v_ref.get("__coef__", 0.0), miss.shape)[miss].mean()),
               "mean_own": {c: float(v_own[c][miss].mean()) for c in comparators},
               "mean_reference": {c: float(v_ref[c][miss].mean()) for c in comparators},
               "mean_allowance": {c: float(out[c][miss].mean()) for c in comparators}}
    return out, summary
