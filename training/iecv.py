"""Internal-external cross-validation (IECV) of benefit learners: leave one trial out.

For each trial with an active and a comparator arm (the only trials that can show a benefit),
every learner is fitted on all *other* trials (trials without a comparator always train: they
inform the prognostic parts) and predicts the held-out trial's participants as patients of a
new trial. Per held-out trial, with the metric library (``training.metrics``, one implementation
shared with ``lbp-benefit validate``):

- benefit: c-for-benefit (matching on predicted benefit), calibration-for-benefit (slope,
  intercept, calibration-in-the-large of the benefit), E-for-benefit (Eavg/E50/E90; matching on
  predicted benefit), RATE (AUTOC, Qini) with the trial's known allocation share, and the
  R-loss (benefit loss used for selection; see ``training.learners.stacking``);
- outcome predictions (under the arm received): calibration-in-the-large, calibration slope,
  R^2 (continuous) or C-statistic and Brier (binary).

Each participant's predicted benefit is against their trial's comparator mix. Metrics are
pooled across held-out trials by REML random-effects meta-analysis with 95% CI, 95% prediction
interval, tau and I^2 (``pool_metric``), so inference respects clustering by trial.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from training.cards.subgroups import SUBGROUP_COVARIATES
import pandas as pd

from predict.errors import LbpError
from training.learners.base import allocation_share
from training.learners.boosted import CrossFitCache, accepts_crossfit_cache
from training.orientation import higher_is_better, orient
from training.learners.stacking import comparator_mix, r_loss, r_loss_parts, stack_weights

SIMPLICITY = ("constant", "risk_model", "effect_model", "effect_adaptive", "effect_ard", "effect_pairs", "dr_learner",
              "x_learner", "t_learner")

BENEFIT_FIELDS = {
    "c_for_benefit": ("c_for_benefit", "c_for_benefit"),
    "calibration_slope_for_benefit": ("calibration", "slope"),
    "calibration_intercept_for_benefit": ("calibration", "intercept"),
    "citl_for_benefit": ("calibration", "citl"),
    "e_avg_for_benefit": ("e_for_benefit", "e_avg"),
    "autoc": ("rate", "autoc"),
    "qini": ("rate", "qini"),
}
OUTCOME_FIELDS = {"outcome_citl": "citl", "outcome_slope": "slope", "outcome_r2": "r2",
                  "outcome_c_statistic": "c_statistic"}


@dataclass
class IecvResult:
    """Per held-out trial metrics (``per_trial``: learner, trial, metric, estimate, ci_low,
    ci_high), pooled metrics (``pooled``), R-loss per learner (``r_loss``), the held-out
    predictions (``predictions``; participant level, keep inside the run), stacking weights,
    which trials trained each fold (``folds``) and, when the plan had reference patients, the
    learners' leave-one-trial-out error correlation (``member_corr``)."""

    per_trial: pd.DataFrame
    pooled: pd.DataFrame
    r_loss: pd.DataFrame
    predictions: pd.DataFrame
    stack_weights: dict
    folds: dict
    skipped: list = field(default_factory=list)
    seconds: float = 0.0
    member_corr: dict | None = None  # the members' error correlation (training.learners.member_corr), if asked

    def best_learner(self) -> str:
        return str(self.r_loss.sort_values("r_loss").iloc[0]["learner"])


def holdout_trials(df: pd.DataFrame, active: str, min_size: int = 1) -> list:
    """Trials with both the active class and a non-active class (and at least ``min_size`` rows:
    smaller trials stay in every training fold and are never held out alone; see :func:`small_holdouts`)."""
    out = []
    for t, g in df.groupby("trial", sort=True):
        cls = set(g["treatment"])
        if active in cls and len(cls - {active}) > 0 and len(g) >= min_size:
            out.append(t)
    return out


def small_holdouts(df: pd.DataFrame, active: str, min_size: int) -> list[dict]:
    """The comparative trials too small to be held out alone, with the reason (for skipped.csv)."""
    big = set(holdout_trials(df, active, min_size))
    return [{"trial": t, "learner": "*", "reason": f"only {n} participants (< min_trial_size {min_size}): "
             "kept in every training fold, not held out alone"}
            for t in holdout_trials(df, active) if t not in big for n in [int((df["trial"] == t).sum())]]


def _benefit_mix(pred: pd.DataFrame, trial: np.ndarray, cls: np.ndarray, active: str, comps: list) -> np.ndarray:
    W = comparator_mix(trial, cls, active, comps)
    B = np.column_stack([pred[f"benefit_vs_{c}"].to_numpy() if f"benefit_vs_{c}" in pred else np.full(len(pred), np.nan)
                         for c in comps])
    avail = np.isfinite(B)
    Wm = np.where(avail, W, 0.0)
    s = Wm.sum(1)
    return np.where(s > 0, (np.nan_to_num(B) * Wm).sum(1) / np.where(s > 0, s, 1), np.nan)


def _own_expected(pred: pd.DataFrame, cls: np.ndarray) -> np.ndarray:
    out = np.full(len(pred), np.nan)
    for c in np.unique(cls):
        col = f"expected_{c}"
        if col in pred:
            m = cls == c
            out[m] = pred[col].to_numpy()[m]
    return out


def trial_metrics(benefit, y, treat, outcome_type, own_pred, comp_pred, e, n_boot=100, seed=0) -> list:
    """Benefit and outcome metrics for one held-out trial: list of (metric, estimate, lo, hi)."""
    from training import metrics as M

    hib = outcome_type == "binary"
    rows = []

    def add(name, fn):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = fn()
        except (LbpError, ValueError, np.linalg.LinAlgError, FloatingPointError, ZeroDivisionError):
            rows.append((name, np.nan, np.nan, np.nan))
            return None
        return r

    common = dict(outcome_type=outcome_type, higher_is_better=hib)
    ok = np.isfinite(benefit)
    b, yy, t = benefit[ok], y[ok], treat[ok]
    r = add("c_for_benefit", lambda: M.c_for_benefit(b, yy, t, match="benefit", n_boot=n_boot, n_repeats=3,
                                                     random_state=seed, **common))
    if r is not None:
        rows.append(("c_for_benefit", r.c_for_benefit, r.ci_low, r.ci_high))
    r = add("calibration", lambda: M.calibration_for_benefit(b, yy, t, prognosis=comp_pred[ok], **common))
    if r is not None:
        rows += [("calibration_slope_for_benefit", r.slope, r.slope_ci_low, r.slope_ci_high),
                 ("calibration_intercept_for_benefit", r.intercept, r.intercept_ci_low, r.intercept_ci_high),
                 ("citl_for_benefit", r.citl, r.citl_ci_low, r.citl_ci_high)]
    else:
        rows += [(k, np.nan, np.nan, np.nan) for k in ("calibration_slope_for_benefit",
                                                       "calibration_intercept_for_benefit", "citl_for_benefit")]
        rows = [x for x in rows if x[0] != "calibration"]
    r = add("e_for_benefit", lambda: M.e_for_benefit(b, yy, t, match="benefit", n_boot=n_boot, n_repeats=2,
                                                     random_state=seed, **common))
    if r is not None:
        rows.append(("e_avg_for_benefit", r.e_avg, r.e_avg_ci_low, r.e_avg_ci_high))
    else:
        rows = [x for x in rows if x[0] != "e_for_benefit"] + [("e_avg_for_benefit", np.nan, np.nan, np.nan)]
    r = add("rate", lambda: M.rank_average_treatment_effect(b, yy, t, propensity=e[ok], n_boot=n_boot,
                                                            random_state=seed, **common))
    if r is not None:
        rows += [("autoc", r.autoc, r.autoc_ci_low, r.autoc_ci_high), ("qini", r.qini, r.qini_ci_low, r.qini_ci_high)]
    else:
        rows = [x for x in rows if x[0] != "rate"] + [("autoc", np.nan, np.nan, np.nan), ("qini", np.nan, np.nan, np.nan)]
    okp = np.isfinite(own_pred)
    r = add("outcome", lambda: M.outcome_performance(y[okp], own_pred[okp] if not hib else np.clip(own_pred[okp], 1e-6, 1 - 1e-6),
                                                     outcome_type=outcome_type, n_boot=n_boot, random_state=seed))
    if r is not None:
        rows += [("outcome_citl", r.citl, r.citl_ci_low, r.citl_ci_high),
                 ("outcome_slope", r.slope, r.slope_ci_low, r.slope_ci_high)]
        if hib:
            rows.append(("outcome_c_statistic", r.c_statistic, r.c_statistic_ci_low, r.c_statistic_ci_high))
        else:
            rows.append(("outcome_r2", r.r2, r.r2_ci_low, r.r2_ci_high))
    else:
        rows = [x for x in rows if x[0] != "outcome"]
    return rows


_STATE: dict = {}


def _one_fold(k: int) -> tuple[list, list, list, list]:
    """Fit every learner without held-out trial ``hold[k]`` and score it (uses ``_STATE`` so a
    forked worker needs no pickled closures)."""
    return run_fold(_STATE, k)


def run_fold(st: dict, k: int) -> tuple[list, list, list, list, dict]:
    """Fold ``k`` of the IECV plan ``st`` (:func:`plan_iecv`): fit every learner without the
    held-out trial(s) and score them. Deterministic given the plan (its own seed per fold), so
    folds may run in any process and order. The fifth part: with the plan's reference patients
    (``ref``), every learner's benefit there per comparator ({learner: {comparator: array}}; else
    empty), the leave-one-trial-out replicates of ``training.learners.member_corr``."""
    df, y_col, learners, otype, active = st["df"], st["y_col"], st["learners"], st["outcome_type"], st["active"]
    h = st["hold"][k]
    group = st["groups"][k]
    te = df["trial"].isin(group).to_numpy()
    train, test = df.loc[~te], df.loc[te]
    if set(group) & set(train["trial"]):  # pragma: no cover - guarded by construction
        raise AssertionError("held-out trial in training data")
    fold = sorted(set(train["trial"]))
    cls = test["treatment"].astype(str).to_numpy()
    trial_arr = test["trial"].astype(str).to_numpy()
    treat = (cls == active).astype(float)
    y = test[y_col].to_numpy(float)
    e = allocation_share(trial_arr, treat == 1, treat == 0)
    preds, per_trial, skipped, refs = [], [], [], {}
    ref = st.get("ref")
    cache = CrossFitCache()  # the fold's boosted learners share outcome boosters and cross-fits
    # one training frame for every learner of the fold (they share its imputation and design)
    Xtr, ytr = train.drop(columns=[y_col]), train[y_col].to_numpy(float)
    for name, factory in learners.items():
        try:
            lr = factory()
            lr = lr.fit(Xtr, ytr, crossfit_cache=cache) if accepts_crossfit_cache(lr) else lr.fit(Xtr, ytr)
        except ValueError as exc:
            skipped.append({"trial": h, "learner": name, "reason": str(exc)})
            continue
        p = lr.predict(test)
        if ref is not None:
            pr = lr.predict(ref)
            refs[name] = {c: pr[f"benefit_vs_{c}"].to_numpy(float) for c in lr.comparators_
                          if f"benefit_vs_{c}" in pr}
        test_comps = sorted(set(cls) - {active})
        b = _benefit_mix(p, trial_arr, cls, active, test_comps)
        own = _own_expected(p, cls)
        comp_pred = np.full(len(test), np.nan)
        for c in test_comps:
            if f"expected_{c}" in p:
                w = (cls == c).mean() / max((cls != active).mean(), 1e-12)
                comp_pred = np.where(np.isnan(comp_pred), 0, comp_pred) + w * p[f"expected_{c}"].to_numpy()
        preds.append(pd.DataFrame({"learner": name, "fold": h, "trial": trial_arr, "row": test.index.to_numpy(), "treatment": cls,
                                   "treat": treat, "y": y, "e": e, "benefit": b, "expected_own": own,
                                   "expected_comparator": comp_pred,
                                   # raw covariates for subgroup performance (in memory only; never written)
                                   **{c: test[c].to_numpy() for c in SUBGROUP_COVARIATES if c in test.columns}}))
        # metrics per held-out trial (a group of trials, see run_iecv's max_folds, is scored trial by trial
        # when metrics are asked for; the R-loss of a group without metrics is the group's)
        units = [(h, np.ones(len(test), bool), st["seed"] + k)]
        if st["metrics"] and len(group) > 1:
            units = [(t, trial_arr == str(t), st["seed"] + k + 7919 * i) for i, t in enumerate(group)]
        for unit, m_, sd in units:
            bu = b[m_]
            if not np.isfinite(bu).any():
                skipped.append({"trial": unit, "learner": name, "reason": "no comparator class of this trial in training"})
                continue
            rl = r_loss(np.nan_to_num(bu), orient(y[m_], higher_is_better(otype)), treat[m_], trial_arr[m_], e[m_], None)
            per_trial.append({"learner": name, "trial": unit, "metric": "r_loss", "estimate": rl, "ci_low": np.nan,
                              "ci_high": np.nan, "n": int(m_.sum())})
            if st["metrics"]:
                for m, est, lo, hi in trial_metrics(bu, y[m_], treat[m_], otype, own[m_], comp_pred[m_], e[m_],
                                                    st["n_boot"], sd):
                    per_trial.append({"learner": name, "trial": unit, "metric": m, "estimate": est, "ci_low": lo,
                                      "ci_high": hi, "n": int(m_.sum())})
    return preds, per_trial, skipped, fold, refs


def run_iecv(df: pd.DataFrame, y_col: str, learners: dict, outcome_type: str, active: str = "exercise",
             trials: Sequence[str] | None = None, metrics: bool = True, n_boot: int = 100, seed: int = 0,
             workers: int = 1, groups: Sequence[Sequence[str]] | None = None,
             progress: Callable | None = None, min_trial_size: int = 1, max_folds: int | None = None,
             ref_rows: int = 0) -> IecvResult:
    """Leave-one-trial-out over ``trials`` (default: every trial with active + comparator arms).

    ``learners``: name -> zero-argument factory returning an unfitted learner. ``df`` holds the
    task's rows (``trial``, ``treatment``, features and ``y_col``). ``workers`` > 1 runs folds in
    forked processes (results identical to ``workers=1``). ``groups``: hold out these groups of
    trials instead (k-fold by trial); per-trial metrics then refer to the group. Trials with fewer
    than ``min_trial_size`` rows are not held out alone (listed in ``skipped`` with the reason).
    ``max_folds``: with more held-out trials than this, trials are held out in ``max_folds`` groups
    (trial k of the sorted list in group k mod max_folds; every learner is fitted once per group
    instead of once per trial) and scored trial by trial: with many trials each fit leaves out
    few of them, so the predictions stay those of a new trial at a fraction of the cost.
    ``ref_rows`` > 0: every fold's learners also predict that many fixed rows of ``df`` and the result
    carries the members' error correlation (``IecvResult.member_corr``, ``training.learners.member_corr``)."""
    global _STATE
    st = plan_iecv(df, y_col, learners, outcome_type, active, trials, metrics, n_boot, seed, groups, min_trial_size,
                   max_folds, ref_rows)
    ks = list(range(len(st["hold"])))
    _STATE = st
    try:
        if workers > 1 and len(ks) > 1:
            import multiprocessing as mp

            with mp.get_context("fork").Pool(min(workers, len(ks))) as pool:
                it = pool.imap(_one_fold, ks)
                outs = list(it if progress is None else progress(it, "IECV", total=len(ks)))
        else:
            outs = [_one_fold(k) for k in (ks if progress is None else progress(ks, "IECV"))]
    finally:
        _STATE = {}
    return assemble_iecv(st, outs)


def plan_iecv(df: pd.DataFrame, y_col: str, learners: dict, outcome_type: str, active: str = "exercise",
              trials: Sequence[str] | None = None, metrics: bool = True, n_boot: int = 100, seed: int = 0,
              groups: Sequence[Sequence[str]] | None = None, min_trial_size: int = 1,
              max_folds: int | None = None, ref_rows: int = 0) -> dict:
    """The folds of :func:`run_iecv` (arguments as there) without running them: a plan whose folds
    :func:`run_fold` runs (in any process, e.g. one pool shared with other tasks' folds) and
    :func:`assemble_iecv` turns into the :class:`IecvResult` that ``run_iecv`` returns."""
    if groups is not None:  # grouped hold-outs (k-fold by trial), e.g. for benchmarks
        groups = [list(g) for g in groups]
        hold = ["+".join(g) for g in groups]
    else:
        hold = list(trials) if trials is not None else holdout_trials(df, active, min_trial_size)
        groups = [[h] for h in hold]
        if max_folds is not None and len(hold) > max_folds:
            groups = [hold[i::max_folds] for i in range(max_folds)]
            hold = ["+".join(map(str, g)) for g in groups]
    small = small_holdouts(df, active, min_trial_size) if trials is None and min_trial_size > 1 else []
    ref = None
    if ref_rows > 0:
        from training.learners.member_corr import reference_rows

        ref = reference_rows(df.drop(columns=[y_col]), ref_rows, seed)
    return {"ref": ref, "groups": groups, "df": df, "y_col": y_col, "learners": learners, "outcome_type": outcome_type,
            "active": active, "hold": hold, "metrics": metrics, "n_boot": n_boot, "seed": seed, "small": small,
            "t0": time.time()}


def assemble_iecv(st: dict, outs: list) -> IecvResult:
    """The :class:`IecvResult` of a plan from its folds' outputs (in fold order)."""
    hold, metrics, n_boot, seed, outcome_type = st["hold"], st["metrics"], st["n_boot"], st["seed"], st["outcome_type"]
    preds, per_trial, skipped, folds, refs = [], [], list(st["small"]), {}, []
    for h, (p, pt, sk, fold, rf) in zip(hold, outs):
        preds += p
        per_trial += pt
        skipped += sk
        folds[h] = fold
        refs.append(rf)
    per = pd.DataFrame(per_trial, columns=["learner", "trial", "metric", "estimate", "ci_low", "ci_high", "n"])
    pred = pd.concat(preds, ignore_index=True) if preds else pd.DataFrame()
    weights = stacking_from_predictions(pred, outcome_type) if len(pred) else {}
    if metrics and weights:  # the deployed stack's own held-out performance (training/iecv_stack.py)
        from training.iecv_stack import stacked_per_trial

        stk = stacked_per_trial(pred, weights, outcome_type, n_boot, seed, trial_metrics)
        per = pd.concat([per, stk], ignore_index=True) if len(stk) else per
    pooled = pool_per_trial(per)
    rl = pooled_r_loss(pred, outcome_type) if len(pred) else pd.DataFrame(columns=["learner", "r_loss"])
    mc = None
    if st.get("ref") is not None:
        from training.learners.member_corr import member_correlations

        mc = member_correlations(refs, list(st["learners"]))
    return IecvResult(per, pooled, rl, pred, weights, folds, skipped, time.time() - st["t0"], mc)


def pool_per_trial(per: pd.DataFrame) -> pd.DataFrame:
    """REML random-effects pooling of each learner x metric over held-out trials."""
    from training.metrics import pool_random_effects

    rows = []
    for (lr, m), g in per.groupby(["learner", "metric"], sort=False):
        if m == "r_loss":
            continue
        g = g[np.isfinite(g["estimate"]) & np.isfinite(g["ci_low"]) & np.isfinite(g["ci_high"]) & (g["ci_high"] > g["ci_low"])]
        scale = "logit" if m in ("c_for_benefit", "outcome_c_statistic") else "identity"
        if scale == "logit":
            g = g[(g["estimate"] > 0) & (g["estimate"] < 1) & (g["ci_low"] > 0) & (g["ci_high"] < 1)]
        if len(g) == 0:
            continue
        try:
            r = pool_random_effects(g["estimate"], ci_low=g["ci_low"], ci_high=g["ci_high"], scale=scale)
        except LbpError:
            continue
        rows.append({"learner": lr, "metric": m, "estimate": r.estimate, "ci_low": r.ci_low, "ci_high": r.ci_high,
                     "pi_low": r.pi_low, "pi_high": r.pi_high, "tau": r.tau, "i2": r.i2, "k": r.k})
    return pd.DataFrame(rows, columns=["learner", "metric", "estimate", "ci_low", "ci_high", "pi_low", "pi_high",
                                       "tau", "i2", "k"])


def pooled_r_loss(pred: pd.DataFrame, outcome_type: str) -> pd.DataFrame:
    """Held-out R-loss per learner over all held-out participants (and its gain vs 'constant')."""
    rows = []
    for lr, g in pred.groupby("learner", sort=False):
        ok = np.isfinite(g["benefit"].to_numpy())
        gg = g[ok]
        rl = r_loss(gg["benefit"].to_numpy(), orient(gg["y"].to_numpy(), higher_is_better(outcome_type)), gg["treat"].to_numpy(),
                    gg["trial"].astype(str).to_numpy(), gg["e"].to_numpy(), None)
        rows.append({"learner": lr, "r_loss": rl, "n": int(ok.sum())})
    out = pd.DataFrame(rows)
    if "constant" in set(out["learner"]):
        c = float(out.loc[out["learner"] == "constant", "r_loss"].iloc[0])
        out["gain_vs_constant_pct"] = 100 * (c - out["r_loss"]) / c
    return out


def stacking_from_predictions(pred: pd.DataFrame, outcome_type: str) -> dict:
    """Convex R-loss stacking weights over learners from the held-out predictions."""
    wide = pred.pivot_table(index="row", columns="learner", values="benefit", aggfunc="first")
    info = pred.drop_duplicates("row").set_index("row").loc[wide.index]
    names = list(wide.columns)
    B = wide.to_numpy(float)
    ok = np.isfinite(B).all(axis=1)
    if ok.sum() < 10:
        return {}
    w = stack_weights(B[ok], orient(info["y"].to_numpy()[ok], higher_is_better(outcome_type)), info["treat"].to_numpy()[ok],
                      info["trial"].astype(str).to_numpy()[ok], info["e"].to_numpy()[ok], None)
    return dict(zip(names, map(float, w)))


def select_one_se(pred: pd.DataFrame, outcome_type: str, order: Sequence[str] = SIMPLICITY) -> tuple[str, pd.DataFrame]:
    """One-standard-error rule on the held-out R-loss: the simplest learner (``order``) whose
    mean loss exceeds the best learner's by at most one trial-clustered SE of the paired
    difference. Protects against choosing a flexible learner on noise. Returns (name, table)."""
    wide = pred.pivot_table(index="row", columns="learner", values="benefit", aggfunc="first")
    info = pred.drop_duplicates("row").set_index("row").loc[wide.index]
    ok = np.isfinite(wide.to_numpy()).all(axis=1)
    wide, info = wide[ok], info[ok]
    trial = info["trial"].astype(str).to_numpy()
    gt, tt, keep = r_loss_parts(orient(info["y"].to_numpy(), higher_is_better(outcome_type)), info["treat"].to_numpy(), trial,
                                info["e"].to_numpy(), None)
    losses = {k: ((gt - tt * wide[k].to_numpy()) ** 2)[keep] for k in wide.columns}
    tr = trial[keep]
    best = min(losses, key=lambda k: losses[k].mean())
    rows = []
    for k, l in losses.items():
        d = l - losses[best]
        n = d.size
        m = d.mean()
        sums = pd.Series(d - m).groupby(tr).sum().to_numpy()
        se = float(np.sqrt(np.sum(sums ** 2)) / n)
        rows.append({"learner": k, "r_loss": float(l.mean()), "diff_vs_best": float(m), "se_diff": se,
                     "within_1se": bool(m <= se)})
    table = pd.DataFrame(rows)
    cands = set(table.loc[table["within_1se"], "learner"])
    ranked = [k for k in order if k in cands] + sorted(cands - set(order))
    return (ranked[0] if ranked else best), table
