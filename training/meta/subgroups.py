"""Treatment effects within subgroups of a modifier, for forest plots like the paper's
Figures 3–5.

As in the paper, continuous modifiers are categorised for presentation (clinically relevant
cut-points where declared under ``subgroups`` in the config, e.g. BMI 18.5/25/30; otherwise
the observed median), the *uncentred* category enters the model, and other covariates (the
baseline, age and sex) are centred about their trial means. The model is the one-stage model
with one treatment term per category:

    g(E[y]) = α_j + β·y0c + Σ_l δ_l·1[level=l] + Σ_l θ_l·t·1[level=l] + (age, sex terms) + b_0j·t + b_1j·y0c

so θ_l is the pooled treatment effect in category l (MD, or log OR for recovery).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from predict.errors import LbpError
from training.config import StudyConfig
from training.learners.separation import separated
from training.meta.design import ModelSpec, centre_within, select_rows
from training.meta.fit import diverged
from training.mixed import fit_glmm_binomial, fit_lmm


def categorise(values: pd.Series, variable: str, cfg: StudyConfig) -> tuple[pd.Series, list[str]]:
    """Category labels for a modifier's values (NaN stays missing) and their order."""
    cuts = (cfg.raw.get("subgroups") or {}).get(variable)
    is_binary = variable in cfg.covariates and cfg.covariates[variable].type == "binary"
    if is_binary:
        labels = ["no", "yes"]
        out = values.map({0.0: "no", 1.0: "yes"})
        return out, labels
    if variable in cfg.covariates and cfg.covariates[variable].type == "categorical":
        spec = cfg.covariates[variable]
        ref = spec.reference if spec.reference in spec.categories else spec.categories[0]
        labels = [ref, *[c for c in spec.categories if c != ref]]
        return values.astype(object).where(values.notna(), None), labels
    v = values.astype(float)
    if v.isna().all():
        raise LbpError(f"{variable}: no observed values to form subgroups")
    if not cuts:
        med = float(np.nanmedian(v))
        cuts = [med]
    edges = [-np.inf, *cuts, np.inf]
    labels = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        labels.append(f"< {hi:g}" if lo == -np.inf else f">= {lo:g}" if hi == np.inf else f"{lo:g} to < {hi:g}")
    codes = pd.cut(v, edges, right=False, labels=labels)
    return codes.astype(object).where(~v.isna(), None), labels


def subgroup_effects(analysis: pd.DataFrame, cfg: StudyConfig, spec: ModelSpec,
                     rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """Pooled treatment effect per category of ``spec.modifier`` (one row per category).
    ``rows`` may pass :func:`select_rows` for this spec (shared with the other models on them)."""
    m = spec.modifier
    d = select_rows(analysis, spec, cfg.active) if rows is None else rows
    needed = ["value"] + (["baseline"] if spec.baseline else []) + [m] + ([a for a in spec.adjust_for if a != m] if spec.adjusted else [])
    d = d.dropna(subset=needed).sort_values(["trial", "participant"], kind="mergesort")
    level, labels = categorise(d[m], m, cfg)
    d = d.assign(_level=level.to_numpy())
    present = [lab for lab in labels if (d["_level"] == lab).any()]
    g = d["trial"]
    t = d["treat"].to_numpy(float)
    X = pd.DataFrame({f"trial[{k}]": (g == k).to_numpy(float) for k in sorted(g.unique())}, index=d.index)
    if spec.baseline:
        y0c, _ = centre_within(d["baseline"].astype(float), g)
        X["baseline_c"] = y0c
    for i, lab in enumerate(present):
        ind = (d["_level"] == lab).to_numpy(float)
        if i > 0:
            X[f"level[{lab}]"] = ind
        X[f"treat:level[{lab}]"] = t * ind
    if spec.adjusted:
        for a in spec.adjust_for:
            if a == m:
                continue
            lv = dict(spec.levels).get(a)
            cols = {f"{a}[{x}]": (d[a].astype(str) == x).astype(float) for x in lv[1:]} if lv else {a: d[a].astype(float)}
            for name, v in cols.items():
                ac, _ = centre_within(v, g)
                X[f"{name}_c"] = ac
    Z = pd.DataFrame({"treat": t, **({"baseline_c": y0c} if spec.baseline else {})}, index=d.index)
    keep = [c for c in X.columns if not np.allclose(X[c], 0)]
    X = X[keep]
    y = d["value"].to_numpy(float)
    if spec.binary_outcome:
        res = fit_glmm_binomial(y, X, Z, g.to_numpy(), method="laplace", re_cov="diagonal")
    else:
        res = fit_lmm(y, X, Z, g.to_numpy(), method="REML", re_cov="diagonal")
    z = stats.norm.ppf(0.975)
    rows = []
    for lab in present:
        name = f"treat:level[{lab}]"
        if name not in res.params.index:
            continue
        sub = d[d["_level"] == lab]
        est, se = float(res.params[name]), float(res.bse[name])
        row = {"variable": m, "level": lab, "studies": int(sub["trial"].nunique()), "participants": len(sub),
               "estimate": est, "ci_low": est - z * se, "ci_high": est + z * se, "status": res.status}
        if spec.binary_outcome and diverged(est, se):  # separation: no number to draw (the forest leaves it out)
            sep = separated(X.to_numpy(float), y)
            row.update(estimate=np.nan, ci_low=np.nan, ci_high=np.nan, status="not estimable",
                       message=f"level {lab!r}: estimate diverges (log odds ratio {est:.3g}, SE {se:.3g})"
                       + (": separation (Konis's LP test), no maximum-likelihood estimate; this one-stage model has "
                          "no Firth correction" if sep else "; Konis's LP test finds no separation"))
        rows.append(row)
    if not rows:
        raise LbpError(f"{spec.label}: no subgroup effect estimable")
    return pd.DataFrame(rows)
