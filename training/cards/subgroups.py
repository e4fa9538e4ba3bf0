"""Subgroup performance of held-out (IECV) benefit predictions: sex, age bands, BMI bands and
work status.

Input: one row per held-out participant (predictions made by a model that never saw the
participant's trial). Per task, subgroup variable and level, with the metric library
(``training.metrics``, docs/metrics.md):

- ``c_for_benefit`` - matched on predicted benefit *within trial*, concordance compared within
  trial only (stratified C), two-stage (trial, then participant-within-arm) bootstrap CI;
- ``calibration_slope_for_benefit``, ``citl_for_benefit`` - regression calibration for benefit
  with trial intercepts (and the predicted comparator outcome as a precision covariate when
  given), CR1 cluster-robust SE with a t(G-1) reference (HC3 with one trial);
- ``outcome_citl``, ``outcome_slope`` and ``outcome_r2`` (continuous) or
  ``outcome_c_statistic`` (binary) - calibration of the predicted outcome under the arm received,
  trial-cluster bootstrap CI.

Subgroups are defined by baseline covariates, so randomisation holds within each of them. The
held-out trials are pooled within a subgroup (cells are too small for the per-trial
random-effects analysis used for the overall IECV results); every metric keeps comparisons
inside trials and its CI respects clustering by trial. Participants with the subgrouping
covariate missing are left out of that variable's rows. A metric that cannot be estimated in a
cell (too few matched pairs, a single arm in every trial, constant predictions ...) has an empty
estimate, with ``n`` and ``n_trials`` still given.

Output columns: ``task, subgroup_variable, subgroup_level, metric, estimate, ci_low, ci_high, n,
n_trials`` - aggregate numbers only, no participant-level data.
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import pandas as pd

from predict.errors import LbpError

COLUMNS = ["task", "subgroup_variable", "subgroup_level", "metric", "estimate", "ci_low", "ci_high", "n", "n_trials"]

#: covariates the subgroups are defined on (names in the default study config)
SUBGROUP_COVARIATES = ("female", "age", "bmi", "employed")

AGE_BANDS = ((None, 40.0, "<40"), (40.0, 60.0, "40-59"), (60.0, None, ">=60"))
BMI_BANDS = ((None, 18.5, "<18.5"), (18.5, 25.0, "18.5-<25"), (25.0, 30.0, "25-<30"), (30.0, None, ">=30"))

BENEFIT_COL_ALIASES = ("benefit", "predicted_benefit")
OWN_COL_ALIASES = ("expected_own", "predicted_outcome", "predicted_own")
COMP_COL_ALIASES = ("expected_comparator", "predicted_comparator")


def _bands(x: pd.Series, bands) -> pd.Series:
    """Half-open bands [lo, hi); NaN stays NaN."""
    v = pd.to_numeric(x, errors="coerce")
    out = pd.Series(np.nan, index=x.index, dtype=object)
    for lo, hi, label in bands:
        m = v.notna()
        if lo is not None:
            m &= v >= lo
        if hi is not None:
            m &= v < hi
        out[m] = label
    return out


def _binary(x: pd.Series, one: str, zero: str) -> pd.Series:
    v = pd.to_numeric(x, errors="coerce")
    out = pd.Series(np.nan, index=x.index, dtype=object)
    out[v == 1] = one
    out[v == 0] = zero
    return out


#: subgroup variable -> (source covariate, function giving the level of each row, level order)
SUBGROUPS: dict[str, tuple[str, Callable[[pd.Series], pd.Series], tuple[str, ...]]] = {
    "sex": ("female", lambda s: _binary(s, "female", "male"), ("female", "male")),
    "age_band": ("age", lambda s: _bands(s, AGE_BANDS), tuple(b[2] for b in AGE_BANDS)),
    "bmi_band": ("bmi", lambda s: _bands(s, BMI_BANDS), tuple(b[2] for b in BMI_BANDS)),
    "work_status": ("employed", lambda s: _binary(s, "employed", "not employed"), ("employed", "not employed")),
}


def _pick(df: pd.DataFrame, names, required: bool, what: str) -> str | None:
    for n in names:
        if n in df.columns:
            return n
    if required:
        raise LbpError(f"held-out predictions need a {what} column (one of: {', '.join(names)})")
    return None


def _cell_metrics(d: pd.DataFrame, otype: str, bcol: str, ocol: str, ccol: str | None, n_boot: int, seed: int) -> list:
    """(metric, estimate, lo, hi) for one cell; NaN where not estimable."""
    from training import metrics as M

    hib = otype == "binary"
    common = dict(outcome_type=otype, higher_is_better=hib)
    rows: list = []

    def attempt(fn):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return fn()
        except (LbpError, ValueError, np.linalg.LinAlgError, FloatingPointError, ZeroDivisionError):
            return None

    ok = np.isfinite(d[bcol].to_numpy(float))
    db = d[ok]
    b, y, t = db[bcol].to_numpy(float), db["y"].to_numpy(float), db["treat"].to_numpy(float)
    cl = db["trial"].astype(str).to_numpy()
    r = attempt(lambda: M.c_for_benefit(b, y, t, cluster=cl, match="benefit", n_boot=n_boot, n_repeats=5,
                                        random_state=seed, **common)) if len(db) else None
    rows.append(("c_for_benefit",) + ((r.c_for_benefit, r.ci_low, r.ci_high) if r else (np.nan,) * 3))
    prog = db[ccol].to_numpy(float) if ccol is not None else None
    if prog is not None and not np.isfinite(prog).all():
        prog = None
    r = attempt(lambda: M.calibration_for_benefit(b, y, t, cluster=cl, prognosis=prog, **common)) if len(db) else None
    rows.append(("calibration_slope_for_benefit",) + ((r.slope, r.slope_ci_low, r.slope_ci_high) if r else (np.nan,) * 3))
    rows.append(("citl_for_benefit",) + ((r.citl, r.citl_ci_low, r.citl_ci_high) if r else (np.nan,) * 3))
    okp = np.isfinite(d[ocol].to_numpy(float))
    dp = d[okp]
    pred = dp[ocol].to_numpy(float)
    if hib:
        pred = np.clip(pred, 1e-6, 1 - 1e-6)
    r = attempt(lambda: M.outcome_performance(dp["y"].to_numpy(float), pred, outcome_type=otype,
                                              cluster=dp["trial"].astype(str).to_numpy(), n_boot=n_boot,
                                              random_state=seed)) if len(dp) >= 3 else None
    rows.append(("outcome_citl",) + ((r.citl, r.citl_ci_low, r.citl_ci_high) if r else (np.nan,) * 3))
    rows.append(("outcome_slope",) + ((r.slope, r.slope_ci_low, r.slope_ci_high) if r else (np.nan,) * 3))
    if hib:
        rows.append(("outcome_c_statistic",) + ((r.c_statistic, r.c_statistic_ci_low, r.c_statistic_ci_high) if r else (np.nan,) * 3))
    else:
        rows.append(("outcome_r2",) + ((r.r2, r.r2_ci_low, r.r2_ci_high) if r else (np.nan,) * 3))
    return rows


def subgroup_performance(held_out: pd.DataFrame, *, n_boot: int = 200, seed: int = 0,
                         include_overall: bool = True) -> pd.DataFrame:
    """Benefit and outcome performance of held-out predictions by sex, age band (<40, 40-59,
    >=60), BMI band (<18.5, 18.5-<25, 25-<30, >=30) and work status.

    ``held_out``: one row per held-out participant with ``trial``, ``treat`` (1 = exercise,
    0 = comparator), ``y`` (observed outcome; 0-100 higher = worse, or 0/1 recovered),
    ``outcome_type`` (``continuous``/``binary``), ``benefit`` (predicted benefit, positive =
    exercise better), ``expected_own`` (predicted outcome under the arm received), optionally
    ``expected_comparator`` (predicted outcome under the comparator; a precision covariate), ``task``
    (one run of the function may hold several tasks) and the covariates ``female``, ``age``,
    ``bmi``, ``employed`` (missing allowed; a covariate absent altogether gives no rows for its
    variable). Aliases accepted: ``predicted_benefit``, ``predicted_outcome``.
    With ``include_overall`` a ``subgroup_variable == "all"`` row set gives the same metrics on
    every held-out participant, the reference for the subgroups.

    Deterministic for a given ``seed``. Returns the columns in :data:`COLUMNS`.
    """
    if not isinstance(held_out, pd.DataFrame):
        raise LbpError("held_out must be a pandas DataFrame")
    need = ["trial", "treat", "y", "outcome_type"]
    miss = [c for c in need if c not in held_out.columns]
    if miss:
        raise LbpError(f"held-out predictions lack column(s): {', '.join(miss)}")
    bcol = _pick(held_out, BENEFIT_COL_ALIASES, True, "predicted benefit")
    ocol = _pick(held_out, OWN_COL_ALIASES, True, "predicted outcome under the arm received")
    ccol = _pick(held_out, COMP_COL_ALIASES, False, "")
    df = held_out.copy()
    if "task" not in df.columns:
        df["task"] = ""
    if "learner" in df.columns:
        many = df.groupby("task")["learner"].nunique()
        if (many > 1).any():
            raise LbpError("held-out predictions hold several learners for task(s) "
                           f"{', '.join(map(str, many[many > 1].index))}: pass one learner's predictions per task")
    t = pd.to_numeric(df["treat"], errors="coerce")
    if not t.isin([0, 1]).all():
        raise LbpError("treat must be 0 (comparator) or 1 (exercise) for every held-out participant")
    rows = []
    for ti, (task, g) in enumerate(df.groupby("task", sort=True)):
        types = set(g["outcome_type"].astype(str))
        if len(types) != 1 or not types <= {"continuous", "binary"}:
            raise LbpError(f"task {task!r}: outcome_type must be one of 'continuous' or 'binary' for all its rows, got {sorted(types)}")
        otype = types.pop()
        cells = []
        if include_overall:
            cells.append(("all", "all", g))
        for var, (cov, fn, order) in SUBGROUPS.items():
            if cov not in g.columns:
                continue
            lev = fn(g[cov])
            for level in order:
                cells.append((var, level, g[lev == level]))
        for ci, (var, level, d) in enumerate(cells):
            n, k = int(len(d)), int(d["trial"].nunique())
            mets = _cell_metrics(d, otype, bcol, ocol, ccol, n_boot, seed + 1000 * ti + ci) if n else \
                [(m, np.nan, np.nan, np.nan) for m in ("c_for_benefit", "calibration_slope_for_benefit", "citl_for_benefit",
                                                       "outcome_citl", "outcome_slope",
                                                       "outcome_c_statistic" if otype == "binary" else "outcome_r2")]
            for m, est, lo, hi in mets:
                rows.append({"task": task, "subgroup_variable": var, "subgroup_level": level, "metric": m,
                             "estimate": _f(est), "ci_low": _f(lo), "ci_high": _f(hi), "n": n, "n_trials": k})
    return pd.DataFrame(rows, columns=COLUMNS)


def _f(x) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return float("nan")
    return v if np.isfinite(v) else float("nan")
