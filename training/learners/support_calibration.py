"""The extrapolation widening of ``predict.support`` calibrated on held-out trials (IECV).

Until 2026-12-07 (session 12) the widening beyond the training support was a stated rule,
``factor = max(1, rho) ** 2`` with ``rho = d / d_cut`` (``predict.support``), checked against the
simulator but fitted to nothing. This module fits its shape on the trials the deployed model did not
see: the internal-external cross-validation's held-out predictions (``training.iecv``).

Per held-out trial h (its participants scored by models fitted without it):

- ``rho_i``: each participant's distance ratio from the support of the *fold's* training rows (the
  deployed model's support features; pooled mean and total covariance refitted on the fold's rows
  with the training imputer, ``training.learners.missing.GaussianImputer``; cut = the fold's
  training 95th percentile, exactly as ``predict.support.fit_support`` does for the final model);
- ``P_i``: the deployed model's unwidened new-setting prediction variance for the participant
  (estimation + missing inputs + between-trial tau^2, averaged over the trial's comparator mix),
  from the final model (IECV fits carry no bootstrap; the final model's variance is the proxy);
- cells = participants of trial h in a band of ``rho`` (:data:`BANDS`). The benefit's held-out
  error of a cell is estimated from the randomised comparison of residuals ``r = g - g_hat`` (``g``
  the outcome oriented so larger = better, ``g_hat`` the held-out prediction for the arm received):
  ``D = mean(r | active) - mean(r | comparator)``, unbiased for the mean of true minus predicted
  benefit in the cell (the prognostic errors cancel by randomisation); its sampling variance
  ``V = s_a^2 / n_a + s_c^2 / n_c`` with the arms' residual variances over the whole trial.

Model (method of moments): ``E[D^2 - V] = a * Pbar * (1 + kappa * hbar)`` with ``Pbar`` the cell's
mean ``P_i`` and ``hbar`` its mean ``max(0, rho_i - 1)^2``. ``a`` absorbs how the cell mean's error
variance relates to the individual prediction variance (correlation of errors within a cell, the
level of the interior intervals: calibrated elsewhere) and is common to all bands, so ``kappa``
measures only how much faster than predicted the error grows beyond the cut. Fitted by weighted
least squares of ``q = (D^2 - V) / Pbar`` on ``[1, hbar]`` (weights ``Pbar^2 / (V + Pbar)^2``, the
inverse of q's variance under normality up to a constant); ``kappa = max(0, b / a)``. The widening
is then ``sqrt(1 + kappa * max(0, rho - 1)^2)`` (the variance inflation ``1 + kappa h``: one parameter,
monotone, smooth at the cut). Uncertainty: trial-cluster bootstrap of the held-out trials
(:data:`N_BOOT` replicates, fixed seed), reported with the estimate. With ``truth`` (simulated data)
the same cells give ``kappa`` from the true errors (``D`` = mean true minus predicted benefit,
``V = 0``): the estimator's check against known truth (``benchmarks/bench_learners.py``).

Measured, not adopted (BENCHMARKS.md, session 12 s12e): only 5% of the training participants lie beyond the
cut, so the held-out cells beyond it hold 18-113 participants in 2-10 trials and kappa's bootstrap interval ran
from 0 to 14-15,000 (point estimate 0 in 11 of the 13 fits that gave one; from the truth on the same cells 0-139). With kappa 0
the calibrated rule removed the widening and the shifted trial's PI coverage in 1 < rho <= 1.5 fell from 0.862
to 0.753 (6 seeds). ``train`` writes the field only with ``TrainSettings.calibrate_widening``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from predict.features import feature_matrix
from predict.runtime import predict_from_export
from predict.support import INFLATION_METHOD, INFLATION_VERSION, fit_support, support_scores
from training.learners.missing import GaussianImputer
from training.learners.stacking import comparator_mix
from training.orientation import higher_is_better, orient

BANDS = (0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, np.inf)
N_BOOT = 200
MIN_ARM = 2  # participants per arm in a cell
MIN_BEYOND_TRIALS = 3  # held-out trials with participants beyond the cut needed to fit kappa
Z95 = 1.959963984540054


def fold_ratios(exp: dict, X: pd.DataFrame, pred: pd.DataFrame, folds: dict) -> np.ndarray:
    """``rho`` of each row of ``pred`` (held-out predictions: ``fold``, ``row`` = index label in ``X``)
    from the support of its fold's training rows (module docstring)."""
    sup = exp.get("support") or {}
    feats = list(sup.get("features") or [])
    F = feature_matrix(exp["features"], X)
    types = list(exp["features"]["types"])
    trial = X["trial"].astype(str).to_numpy()
    pos = X.index.get_indexer(pred["row"])
    out = np.full(len(pred), np.nan)
    fold = pred["fold"].astype(str).to_numpy()
    for h in np.unique(fold):
        train = np.isin(trial, [str(t) for t in folds[h]]) if h in folds else ~np.isin(trial, h.split("+"))
        imp = GaussianImputer().fit(F[train], trial[train], types)
        s = fit_support(imp.mean_, imp.cov_total_, F[train], feats)
        m = fold == h
        out[m] = support_scores(s, F[pos[m]])["ratio"]
    return out


def prediction_variance(exp: dict, X: pd.DataFrame, rows, active: str) -> np.ndarray:
    """Per row (labels ``rows`` of ``X``): the unwidened 95% PI's variance of the benefit, mixed over
    the comparator classes of the row's trial as the IECV benefit is."""
    plain = {**exp, "support": {"method": "none", "features": []}}
    Xr = X.loc[rows]
    p = predict_from_export(plain, Xr)
    cls = Xr["treatment"].astype(str).to_numpy()
    comps = list(exp["comparators"])
    W = comparator_mix(Xr["trial"].astype(str).to_numpy(), cls, active, comps)
    P = np.zeros(len(Xr))
    for i, c in enumerate(comps):
        half = (p[f"benefit_vs_{c}_pi_high"].to_numpy() - p[f"benefit_vs_{c}_pi_low"].to_numpy()) / (2 * Z95)
        P += W[:, i] * np.nan_to_num(half ** 2)
    return P


def heldout_cells(pred: pd.DataFrame, rho: np.ndarray, P: np.ndarray, outcome_type: str,
                  truth: np.ndarray | None = None) -> pd.DataFrame:
    """Cells (held-out trial x band of ``rho``) with ``D``, ``V``, ``Pbar``, ``hbar``, ``n`` (and
    ``D_true`` with ``truth``, the true benefit per row of ``pred``)."""
    hib = higher_is_better(outcome_type)
    r = orient(pred["y"].to_numpy(float), hib) - orient(pred["expected_own"].to_numpy(float), hib)
    act = pred["treat"].to_numpy(float) == 1
    trial = pred["trial"].astype(str).to_numpy()
    band = np.digitize(rho, BANDS[1:-1])
    h = np.maximum(rho - 1.0, 0.0) ** 2
    b = pred["benefit"].to_numpy(float)
    rows = []
    for t in np.unique(trial):
        mt = (trial == t) & np.isfinite(r) & np.isfinite(rho) & np.isfinite(P) & np.isfinite(b)
        if (mt & act).sum() < MIN_ARM or (mt & ~act).sum() < MIN_ARM:
            continue
        s_a, s_c = np.var(r[mt & act], ddof=1), np.var(r[mt & ~act], ddof=1)
        for k in np.unique(band[mt]):
            m = mt & (band == k)
            na, nc = int((m & act).sum()), int((m & ~act).sum())
            if na < MIN_ARM or nc < MIN_ARM:
                continue
            row = {"trial": t, "band": int(k), "n": int(m.sum()), "D": float(r[m & act].mean() - r[m & ~act].mean()),
                   "V": float(s_a / na + s_c / nc), "Pbar": float(P[m].mean()), "hbar": float(h[m].mean()),
                   "rho": float(rho[m].mean())}
            if truth is not None:
                row["D_true"] = float(np.mean(truth[m] - b[m]))
            rows.append(row)
    return pd.DataFrame(rows, columns=["trial", "band", "n", "D", "V", "Pbar", "hbar", "rho"]
                        + (["D_true"] if truth is not None else []))


def _kappa(c: pd.DataFrame, col: str = "D", sampling: bool = True) -> tuple[float, float, float]:
    """(kappa, a, b) of the weighted least squares fit (module docstring); NaN when it cannot be fitted."""
    V = c["V"].to_numpy() if sampling else np.zeros(len(c))
    Pb = c["Pbar"].to_numpy()
    q = (c[col].to_numpy() ** 2 - V) / Pb
    A = np.column_stack([np.ones(len(c)), c["hbar"].to_numpy()])
    w = Pb ** 2 / (V + Pb) ** 2
    if len(c) < 3 or not (c["hbar"] > 0).any():
        return np.nan, np.nan, np.nan
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(A * sw[:, None], q * sw, rcond=None)
    a, b = float(coef[0]), float(coef[1])
    return (max(0.0, b / a) if a > 0 else np.nan), a, b


def fit_inflation(cells: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """``kappa`` with its trial-cluster bootstrap SE and 95% interval (and, where the cells carry
    ``D_true``, ``kappa_true`` from the true errors). ``kappa`` is None with a ``reason`` when fewer
    than :data:`MIN_BEYOND_TRIALS` held-out trials have a cell beyond the cut or the fit fails."""
    beyond = cells[cells["hbar"] > 0]
    out = {"method": INFLATION_METHOD, "version": INFLATION_VERSION,
           "form": "factor = sqrt(1 + kappa * max(0, rho - 1)^2), rho = d / d_cut",
           "cells": int(len(cells)), "trials": int(cells["trial"].nunique()) if len(cells) else 0,
           "trials_beyond": int(beyond["trial"].nunique()), "rows_beyond_cells": int(beyond["n"].sum())}
    if "D_true" in cells:
        out["kappa_true"] = _kappa(cells, "D_true", sampling=False)[0] if len(cells) else np.nan
    if out["trials_beyond"] < MIN_BEYOND_TRIALS:
        return {**out, "kappa": None, "reason": f"{out['trials_beyond']} held-out trial(s) with participants beyond "
                f"the cut (< {MIN_BEYOND_TRIALS}): nothing to calibrate on"}
    k, a, b = _kappa(cells)
    if not np.isfinite(k):
        return {**out, "kappa": None, "reason": "the held-out level a was not positive: no ratio to calibrate"}
    rng = np.random.default_rng(seed)
    trials = cells["trial"].unique()
    groups = {t: g for t, g in cells.groupby("trial", sort=False)}
    boot = []
    for _ in range(n_boot):
        pick = rng.choice(trials, trials.size, replace=True)
        kb = _kappa(pd.concat([groups[t] for t in pick], ignore_index=True))[0]
        if np.isfinite(kb):
            boot.append(kb)
    boot = np.asarray(boot)
    return {**out, "kappa": float(k), "a": a, "b": b, "kappa_se": float(boot.std(ddof=1)) if boot.size > 1 else None,
            "kappa_ci": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))] if boot.size > 1 else None,
            "n_boot": int(boot.size)}


def calibrate(exp: dict, X: pd.DataFrame, pred: pd.DataFrame, folds: dict, active: str,
              truth: np.ndarray | None = None, seed: int = 0) -> dict:
    """The ``inflation`` field for the deployed model's export ``exp`` from its held-out predictions
    ``pred`` (one row per held-out participant: ``row``, ``fold``, ``trial``, ``treat``, ``y``,
    ``benefit``, ``expected_own``) and the IECV ``folds`` (fold -> training trials); ``truth``: true
    benefit per row of ``pred`` (simulated data). ``kappa`` None (with ``reason``): do not widen by it."""
    otype = exp["outcome_type"]
    sup = exp.get("support") or {}
    if not sup.get("features"):
        return {"method": INFLATION_METHOD, "version": INFLATION_VERSION, "kappa": None,
                "reason": "the model has no support features (nothing to extrapolate)"}
    pred = pred[np.isfinite(pred["benefit"].to_numpy(float))].reset_index(drop=True)
    rho = fold_ratios(exp, X, pred, folds)
    P = prediction_variance(exp, X, pred["row"].to_numpy(), active)
    cells = heldout_cells(pred, rho, P, otype, truth=truth)
    return fit_inflation(cells, seed=seed)


def with_inflation(exp: dict, field: dict) -> dict:
    """A copy of the export whose support carries the field (only ``method``, ``version``, ``kappa``
    and the fit's summary numbers), or the export unchanged when ``kappa`` is None."""
    if field.get("kappa") is None or not (exp.get("support") or {}).get("features"):
        return exp
    keep = {k: v for k, v in field.items() if k in ("method", "version", "kappa", "kappa_se", "kappa_ci", "cells",
                                                     "trials", "trials_beyond", "rows_beyond_cells", "form")}
    return {**exp, "support": {**exp["support"], "inflation": keep}}


def calibrate_selected(sexp: dict, X: pd.DataFrame, res, how: dict, active: str, seed: int = 0) -> dict | None:
    """The ``inflation`` field for ``train``'s deployed model (``sexp``, its selection ``how``) from the
    task's IECV result ``res`` (held-out predictions of every learner, ``folds``); None where it does not
    apply: no IECV, a binary outcome (its widening stays the stated rule: the residual moments of a 0/1
    outcome and a probability-scale tau were not checked), or no held-out predictions of the model."""
    if res is None or sexp.get("outcome_type") != "continuous" or res.predictions is None or not len(res.predictions):
        return None
    from training.iecv_stack import stacked_predictions

    pred = res.predictions
    if how.get("model") == "stacked":
        w = how.get("weights") or {}
        ps = stacked_predictions(pred, w)
        if ps is None and len(w) == 1:
            ps = pred[pred["learner"] == next(iter(w))]
    else:
        ps = pred[pred["learner"] == how.get("model")]
    if ps is None or not len(ps):
        return None
    return calibrate(sexp, X, ps, res.folds, active, seed=seed)
