"""The verdict and warnings of the ``train`` report from the IECV results (the wording is in
:mod:`training.verdicts`).

- **Verdict** per task (:func:`task_verdict`): from the pooled IECV metrics of the selected learner
  (the best single learner when the selection is a stack), quoting the average effect below.

- **Predicted-benefit spread** (:func:`training.verdicts.spread_warning`): the SD of the held-out
  predicted benefits of the learner the verdict is about, against the pooled calibration-for-benefit
  slope and the average effect in the held-out trials. The average effect is each held-out trial's
  difference in means (continuous; oriented so that positive favours the active class) or in risks
  (binary) between its active and comparator arms, with the usual two-sample standard error, pooled
  by REML random effects (:func:`training.metrics.pool_random_effects`).
- **Separable case-mix** (:func:`training.verdicts.separable_case_mix_warning`): per held-out trial,
  the apparent C-statistic of a membership model of that trial against the other trials
  (:func:`training.validate.casemix.membership_c`, the one ``validate`` uses) on the participants'
  covariates and baselines the trial collected; computed once per trial over the participants of
  the analysis. Numeric values missing are mean-imputed *without* missing indicators: covariates
  that whole trials did not collect would otherwise separate every trial from the others by data
  collection (membership C 1.0 for most trials of the default data), not by patients.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from predict.errors import LbpError
from training.orientation import higher_is_better, orient
from training.verdicts import heterogeneity_verdict, separable_case_mix_warning, spread_warning


def average_effect(pred: pd.DataFrame, outcome_type: str) -> tuple[float, float, float] | None:
    """(estimate, 95% CI) of the average effect in the held-out trials of ``pred`` (one learner's
    held-out predictions: ``trial``, ``treat``, ``y``); None when no trial has two arms of >= 2."""
    from training.metrics import pool_random_effects

    yo = orient(pred["y"].to_numpy(float), higher_is_better(outcome_type))
    est, se = [], []
    for _, g in pd.DataFrame({"trial": pred["trial"].to_numpy(), "t": pred["treat"].to_numpy(), "y": yo}).groupby("trial"):
        a, c = g.loc[g["t"] == 1, "y"].dropna(), g.loc[g["t"] == 0, "y"].dropna()
        if len(a) < 2 or len(c) < 2:
            continue
        s = float(np.sqrt(a.var(ddof=1) / len(a) + c.var(ddof=1) / len(c)))
        if s > 0:
            est.append(float(a.mean() - c.mean()))
            se.append(s)
    if not est:
        return None
    try:
        r = pool_random_effects(est, se)
    except LbpError:
        return None
    return float(r.estimate), float(r.ci_low), float(r.ci_high)


def held_out(res, learner: str | None) -> pd.DataFrame:
    """``learner``'s held-out predictions with a finite predicted benefit (empty without)."""
    from training.iecv_stack import STACK, stacked_predictions

    empty = pd.DataFrame(columns=["trial", "treat", "y", "benefit"])
    if learner is None or not len(res.predictions):
        return empty
    p = res.predictions
    if learner == STACK:  # the deployed stack: its members' held-out predictions, weighted
        p = stacked_predictions(p, res.stack_weights)
        if p is None:
            return empty
    return p[(p["learner"] == learner) & np.isfinite(p["benefit"].astype(float))]


def separable_trials(analysis: pd.DataFrame, trials, names: list[str]) -> dict[str, float]:
    """Membership C of each of ``trials`` against all other trials of ``analysis`` (one row per
    participant, covariates and baselines ``names``)."""
    from training.validate.casemix import membership_c

    parts = analysis.drop_duplicates(["trial", "participant"]) if "participant" in analysis.columns else analysis
    names = [n for n in names if n in parts.columns]
    out = {}
    for t in sorted(set(trials)):
        new, rest = parts[parts["trial"] == t], parts[parts["trial"] != t]
        own = [n for n in names if new[n].notna().any()]  # as validate: covariates the trial lacks are left out
        if len(new) == 0 or len(rest) == 0 or not own:
            continue
        # numeric covariates mean-imputed (without missing indicators: covariates that whole trials
        # did not collect would otherwise separate the trials by data collection, not by patients)
        num = [n for n in own if pd.api.types.is_numeric_dtype(parts[n])]  # text (object or string dtype) is categorical
        fill = parts[num].mean()
        c = membership_c(new[own].fillna(fill), rest[own].fillna(fill), own).get("c_statistic")
        if c is not None:
            out[str(t)] = float(c)
    return out


def case_mix_warnings(cs: dict[str, float]) -> list[str]:
    """One warning per held-out trial whose case-mix is almost perfectly separable from the others."""
    out = []
    for t, c in sorted(cs.items()):
        w = separable_case_mix_warning(c, what=f"held-out trial {t}'s", against="the other trials")
        if w:
            out.append(w)
    return out


def task_type(tasks: pd.DataFrame, task: str) -> str:
    r = tasks[tasks["task"] == task] if len(tasks) and "task" in tasks.columns else tasks
    return str(r["outcome_type"].iloc[0]) if len(r) else "continuous"


def task_verdict(task: str, res, how: dict, outcome_type: str) -> tuple[dict, list[str]]:
    """The heterogeneity verdict (training.verdicts) from the pooled IECV metrics of the selected
    learner (the best single learner when the selection is a stack, which IECV does not score),
    quoting the average effect in the held-out trials; and the predicted-benefit spread warning.
    When the stack failed the heterogeneity gate (training.learners.stack_gate), the verdict says so
    (whichever model was then deployed: ``training.selection.gate_fallback``)."""
    gate = how.get("gate")
    if gate is not None and not gate["keep_stack"]:
        shrunk = ("" if how.get("model") == "constant" else
                  " The deployed effect model's individual predictions are shrunk towards it by cross-validation; "
                  "read them with their intervals, which include the average effect's uncertainty.")
        return {"level": "not_supported", "evidence": {"stack_gate": gate},
                "sentence": f"{task}: the data do not show individual differences in benefit: the learners did not "
                            f"predict benefit better than the average-effect model on held-out trials "
                            f"({gate['rule']}). Use the average effect for everyone.{shrunk}"}, []
    learners = set(res.pooled["learner"]) if len(res.pooled) else set()
    name = how.get("model") if how.get("model") in learners else how.get("best_single") or (
        res.best_learner() if len(res.r_loss) else None)
    g = res.pooled[res.pooled["learner"] == name].set_index("metric") if name in learners else pd.DataFrame()

    def tri(m):
        return tuple(float(v) for v in g.loc[m, ["estimate", "ci_low", "ci_high"]]) if m in g.index else None

    slope = tri("calibration_slope_for_benefit")
    p = held_out(res, name)
    average = average_effect(p, outcome_type) if len(p) else None
    units = "points" if outcome_type == "continuous" else "risk difference"
    v = heterogeneity_verdict(tri("c_for_benefit"), slope, tri("autoc"), average,
                              f"{units}; positive favours the intervention",
                              label=f"{task} ({name}, pooled over held-out trials)")
    w = spread_warning(float(p["benefit"].std(ddof=1)), slope, average, v["level"], units) if len(p) >= 3 else None
    return v, [w] if w else []


def boundary_classes(df: pd.DataFrame, outcome_type: str) -> list[str]:
    """For a binary task: each treatment class of ``df`` (``treatment``, ``value``) in which every
    participant had the event, or none did (separation). A maximum-likelihood logistic model's
    probability for such a class sits at 0 or 1 and the delta-method interval around it collapses
    (found on medicaldata::laryngoscope: 49 of 49 intubations succeeded with the Macintosh
    laryngoscope; predicted 0.99998, risk-difference intervals of +-0.004); the learners' logistic fits
    now switch to Firth's fit there (training.learners.separation), and this says it all the same."""
    if outcome_type != "binary" or "value" not in df.columns:
        return []
    out = []
    for cls, v in df.groupby("treatment", observed=True)["value"]:
        v = v.dropna()
        if len(v) and v.nunique() == 1:
            out.append(f"{'every one' if float(v.iloc[0]) == 1 else 'none'} of the {len(v)} {cls} participants "
                       f"had the event")
    return out
