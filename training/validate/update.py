"""``--update``: recalibrate the model on the new trial, reported separately; the shipped
artifact is never modified.

- Outcome predictions: continuous y = a + b * yhat (OLS; a, b with HC3 SEs); binary
  logit P(y = 1) = a + b * logit(p) (logistic recalibration; Wald SEs; where the outcomes are separated
  by the predictions, Firth's estimate with profile penalised-likelihood CIs, said under ``method``).
- Benefit predictions: b_new = intercept + slope * b, the calibration-for-benefit regression
  (``training.metrics.calibration_for_benefit``) estimated on the new trial.
The net benefit of the recalibrated benefit at the smallest worthwhile benefit is reported too,
but it is *apparent* (fitted and evaluated on the same participants): optimistic; a recalibrated
model needs validation on other data before use.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from training import metrics as M
from training.metrics._stats import logistic_fit_firth, ols_sandwich
from training.validate.data import TaskData
from training.validate.sections import attempt, swe_rule

Z = stats.norm.ppf(0.975)


def _coef(name: str, est: float, se: float) -> dict:
    return {"name": name, "estimate": float(est), "se": float(se),
            "ci_low": float(est - Z * se), "ci_high": float(est + Z * se)}


def _outcome_recal(td: TaskData) -> dict:
    ok = np.isfinite(td.own_pred) & np.isfinite(td.y)
    y, p = td.y[ok], td.own_pred[ok]
    if ok.sum() < 5:
        raise ValueError(f"only {int(ok.sum())} participants with a prediction and an outcome")
    if td.outcome_type == "continuous":
        X = np.column_stack([np.ones(p.size), p])
        beta, V = ols_sandwich(X, y, None, "hc3")[:2]
        form = "y = a + b * predicted"
    else:
        lp = np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))
        X = np.column_stack([np.ones(p.size), lp])
        beta, firth_used = logistic_fit_firth(X, y)
        if firth_used:
            return _firth_recal(X, y, "logit P(y = 1) = a + b * logit(predicted)")
        mu = 1 / (1 + np.exp(-X @ beta))
        V = np.linalg.inv(X.T @ (X * (mu * (1 - mu))[:, None]))
        form = "logit P(y = 1) = a + b * logit(predicted)"
    se = np.sqrt(np.diag(V))
    return {"form": form, "n": int(ok.sum()), "a": _coef("a", beta[0], se[0]), "b": _coef("b", beta[1], se[1])}


def _firth_recal(X: np.ndarray, y: np.ndarray, form: str) -> dict:
    """The logistic recalibration where the outcomes are separated by the predictions (or all alike):
    Firth's estimate with profile penalised-likelihood 95% CIs (training.learners.firth_profile)."""
    from training.learners.firth_profile import firth, profile_ci

    f = firth(X, y)
    out = {"form": form, "n": int(y.size),
           "method": "separation (Konis's LP test): no maximum-likelihood estimate exists; Firth's penalised-likelihood "
                     "estimate with profile penalised-likelihood 95% CIs (as R logistf)"}
    for j, name in enumerate(("a", "b")):
        lo, hi, _ = profile_ci(X, y, f, j)
        out[name] = {"name": name, "estimate": float(f.beta[j]), "se": float(np.sqrt(f.cov[j, j])),
                     "ci_low": float(lo), "ci_high": float(hi)}
    return out


def recalibrate(td: TaskData, benefit_objs: dict, n_boot: int, seed: int) -> dict:
    """Updated coefficients (with CIs) for the outcome and, per comparator, the benefit."""
    out: dict = {"task": td.task, "note": "estimated on the new trial; the shipped model is unchanged. "
                                          "Apparent figures are optimistic (same data for fitting and evaluation)."}
    r, why = attempt(lambda: _outcome_recal(td))
    out["outcome"] = r if r is not None else {"status": "not_estimable", "reason": why}
    out["benefit"] = {}
    for comp, objs in benefit_objs.items():
        cal = objs.get("calibration")
        if cal is None:
            out["benefit"][comp] = {"status": "not_estimable", "reason": "no calibration-for-benefit regression"}
            continue
        d = {"form": "benefit_updated = intercept + slope * benefit",
             "intercept": {"estimate": cal.intercept, "ci_low": cal.intercept_ci_low, "ci_high": cal.intercept_ci_high},
             "slope": {"estimate": cal.slope, "ci_low": cal.slope_ci_low, "ci_high": cal.slope_ci_high}}
        rows = objs["rows"]
        b = cal.intercept + cal.slope * td.benefit[comp][rows]
        rule = swe_rule(td)
        if rule is not None:
            scale = dict(threshold_scale=td.baseline[rows]) if rule[0] == "relative" else {}
            nb, why = attempt(lambda: M.net_benefit(b, td.y[rows], td.treat[rows], outcome_type=td.outcome_type,
                                                    higher_is_better=td.higher_is_better, cluster=td.trial[rows],
                                                    thresholds=[rule[1]], n_boot=n_boot, random_state=seed, **scale))
            if nb is not None:
                d["apparent_net_benefit_at_smallest_worthwhile"] = {
                    "net_benefit_model": float(nb.net_benefit_model[0]),
                    "ci": [float(nb.net_benefit_model_ci_low[0]), float(nb.net_benefit_model_ci_high[0])],
                    "difference_vs_all": float(nb.difference_vs_all[0]), "treated_share": float(nb.treated_share[0])}
        out["benefit"][comp] = d
    return out
