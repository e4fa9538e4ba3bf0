"""Multiple imputation for the one-stage IPD meta-analysis models (treatment-covariate interactions).

Instead of excluding every participant with a missing modifier, adjuster or baseline (complete
cases, what ``training.meta.design`` does), the model's rows are completed M times by
:class:`~training.impute.mice.MultilevelMICE` - every numeric covariate of the rows imputed given
the others, the outcome value, the arm and their interactions, with trial intercepts, and
covariates a trial never measured drawn from the other trials' distribution - the model is
fitted on each completed data set (``training.meta.fit.fit_model``) and the estimates are pooled
by Rubin's rules (``training.impute.rubin``): total variance = mean within-imputation variance +
(1 + 1/M) between-imputation variance, Barnard-Rubin degrees of freedom with the complete-data
df of the model's own inference (k - 1 for the overall effect's t reference, infinite for the
z-based interactions), the fraction of missing information reported. tau is the mean over the
imputations. Categorical modifiers keep the complete-case analysis (stated in the message).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from predict.errors import LbpError
from training.impute.mice import MultilevelMICE
from training.impute.rubin import pool
from training.meta.design import ModelSpec, build_design, select_rows
from training.meta.fit import FEW_COLUMNS, fit_model
from training.meta.rows import Rows

KEYS = ("trial", "participant", "arm", "treatment", "subtype", "treat", "outcome", "follow_up", "week",
        "instrument", "value")


def numeric_covariates(rows: pd.DataFrame) -> list:
    """Columns of ``rows`` that are numeric covariates (not keys), ``baseline`` included."""
    out = []
    for c in rows.columns:
        if c in KEYS:
            continue
        v = pd.to_numeric(rows[c], errors="coerce")
        if v.notna().sum() == rows[c].notna().sum() and v.notna().any():
            out.append(c)
    return out


def imputed_frames(rows: pd.DataFrame, m: int = 5, seed: int = 0) -> tuple[list, dict]:
    """M completed copies of ``rows`` (one outcome x follow-up x comparison) and the imputer's
    per-covariate account."""
    cols = numeric_covariates(rows)
    F = rows[cols].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    types = ["binary" if set(np.unique(F[~np.isnan(F[:, j]), j])) <= {0.0, 1.0} else "continuous"
             for j in range(len(cols))]
    mice = MultilevelMICE(n_imputations=m, random_state=seed)
    sets = mice.fit_transform(F, rows["trial"].astype(str).to_numpy(), types, rows["value"].to_numpy(float),
                              rows["treat"].to_numpy(float))
    frames = []
    for Fm in sets:
        d = rows.copy()
        d[cols] = Fm
        frames.append(d)
    return frames, {cols[j]: v for j, v in mice.report_.items()}


def fit_model_mi(analysis: pd.DataFrame, spec: ModelSpec, active: str = "exercise", m: int = 5, seed: int = 0,
                 residual: str = "common", rows: pd.DataFrame | None = None, frames: list | None = None) -> dict:
    """The long-form row of :func:`training.meta.fit.fit_model` for ``spec``, estimated by multiple
    imputation (module docstring); extra columns ``imputations``, ``df``, ``fmi``, ``excluded_missing_cc``
    (participants a complete-case analysis would have excluded)."""
    rows = select_rows(analysis, spec, active) if rows is None else rows
    if spec.modifier is not None and dict(spec.levels).get(spec.modifier):
        row = fit_model(build_design(analysis, spec, active, rows=rows), residual)
        row["message"] = "; ".join(x for x in (row.get("message", ""), "categorical modifier: complete cases") if x)
        return row
    if frames is None:
        frames = imputed_frames(rows, m, seed)[0]
    fits = [fit_model(build_design(None, spec, active, rows=Rows(f)), residual) for f in frames]
    ok = [f for f in fits if f.get("status") not in ("failed", "not estimable") and np.isfinite(f["estimate"])]
    if len(ok) < 2:
        raise LbpError(f"{spec.label}: fewer than 2 imputed data sets could be fitted")
    k = ok[0]["studies"]
    df_com = (k - 1) if str(ok[0].get("inference", "")).startswith("t(") else np.inf
    p = pool([f["estimate"] for f in ok], [f["se"] ** 2 for f in ok], df_com=df_com)
    lo, hi = p.ci()
    est, se = float(p.estimate[0]), float(p.se[0])
    cc = build_design(None, spec, active, rows=Rows(rows))
    taus = [f["tau"] for f in ok if np.isfinite(f.get("tau", np.nan))]
    out = {**ok[0], "participants": ok[0]["participants"], "excluded_missing": 0, "excluded_missing_cc": cc.n_missing,
           "estimate": est, "se": se, "ci_low": float(lo[0]), "ci_high": float(hi[0]), "p": float(p.p()[0]),
           "tau": float(np.mean(taus)) if taus else np.nan, "df": float(p.df[0]), "fmi": float(p.fmi[0]),
           "imputations": len(ok), "inference": f"Rubin's rules, t({p.df[0]:.1f})",
           "analysis": f"{ok[0].get('analysis', '')}, multiple imputation (M = {len(ok)})"}
    if spec.modifier is None and np.isfinite(out["tau"]) and k > 2:
        from scipy import stats

        half = stats.t.ppf(0.975, k - 2) * math.sqrt(se ** 2 + out["tau"] ** 2)
        out["pi_low"], out["pi_high"] = est - half, est + half
    for key in FEW_COLUMNS:  # the common-effect / HKSJ columns belong to one complete data set
        out.pop(key, None)
    return out
