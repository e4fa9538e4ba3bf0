"""Design matrices for the one-stage IPD meta-analysis models.

For trial j, participant i, treatment t (1 = exercise, 0 = comparator), baseline y0 of the
outcome (function for global recovery) and candidate modifier z:

    g(E[y_ij]) = α_j + β·y0c_ij + θ·t_ij + φ·zc_ij + γ_W·t_ij·zc_ij + γ_A·t_ij·(z̄_j − z̄)
                 + b_0j·t_ij + b_1j·y0c_ij

with α_j fixed trial-specific intercepts, y0c and zc centred about their trial means, random
trial effects (b_0j, b_1j) ~ N(0, diag(τ², τ_y0²)) on the treatment effect and the baseline
slope (the seed paper's specification), g the identity (continuous outcomes, REML) or the
logit (global recovery, ML). γ_W, the *within-trial* interaction, is the reported estimate:
centring removes across-trial (ecological) information, which γ_A absorbs (Riley et al. 2020;
Hua et al. 2017). Adjusted models add age and sex centred within trial, as fixed main effects,
fixed interactions with treatment, and random slopes. Participants missing any variable of a
model are excluded from that model only, and counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from predict.errors import LbpError

ADJUST_FOR = ("age", "female")


@dataclass(frozen=True)
class ModelSpec:
    outcome: str
    follow_up: str
    comparison: str  # name of the comparison set
    comparators: tuple[str, ...]
    modifier: str | None = None  # None: overall effect model
    adjusted: bool = False
    binary_outcome: bool = False
    modifier_uncentred_levels: bool = False  # subgroup-effect variant (forest plots)

    @property
    def label(self) -> str:
        m = self.modifier or "overall"
        return f"{self.outcome}/{self.follow_up}/{self.comparison}/{m}/{'adjusted' if self.adjusted else 'unadjusted'}"


@dataclass
class Design:
    spec: ModelSpec
    y: np.ndarray
    X: pd.DataFrame
    Z: pd.DataFrame
    groups: np.ndarray
    n_candidates: int  # participants in trials with both arms before excluding missing variables
    n_missing: int  # of those, excluded for a missing variable
    missing_by_variable: dict = field(default_factory=dict)

    @property
    def studies(self) -> int:
        return int(len(np.unique(self.groups)))

    @property
    def participants(self) -> int:
        return int(len(self.y))


def _centre(values: pd.Series, groups: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    means = values.groupby(groups, observed=True).transform("mean")
    return (values - means).to_numpy(float), means.to_numpy(float)


def select_rows(analysis: pd.DataFrame, spec: ModelSpec, active: str) -> pd.DataFrame:
    """Rows of this outcome and follow-up, exercise or the comparison set, in trials with both."""
    d = analysis[(analysis["outcome"] == spec.outcome) & (analysis["follow_up"] == spec.follow_up)]
    d = d[(d["treatment"] == active) | d["treatment"].isin(spec.comparators)]
    return d[d["trial"].isin(_trials_with_both_arms(d))]


def _trials_with_both_arms(d: pd.DataFrame) -> list:
    span = d.groupby("trial", observed=True)["treat"].agg(["min", "max"])
    return list(span.index[(span["min"] == 0) & (span["max"] == 1)])


def build_design(analysis: pd.DataFrame, spec: ModelSpec, active: str = "exercise",
                 rows: pd.DataFrame | None = None) -> Design:
    """Build (y, X, Z, groups) for one model; raises LbpError if nothing is left to fit.
    ``rows`` may pass the result of :func:`select_rows` for this spec (shared by many models)."""
    d = select_rows(analysis, spec, active) if rows is None else rows
    n_candidates = len(d)
    needed = ["value", "baseline"]
    if spec.modifier is not None and spec.modifier not in d.columns:
        raise LbpError(f"{spec.label}: modifier {spec.modifier!r} is not in the analysis data")
    if spec.modifier is not None:
        needed.append(spec.modifier)
    if spec.adjusted:
        needed += [a for a in ADJUST_FOR if a not in needed]
    miss = {v: int(d[v].isna().sum()) for v in needed}
    d = d.dropna(subset=needed)
    # Trials must still have both arms after exclusions.
    d = d[d["trial"].isin(_trials_with_both_arms(d))].sort_values(["trial", "participant"], kind="mergesort")
    if d["trial"].nunique() < 2:
        raise LbpError(f"{spec.label}: fewer than 2 trials with both arms and complete data")
    g = d["trial"].astype(str)
    t = d["treat"].to_numpy(float)
    trials = sorted(g.unique())
    X = pd.DataFrame({f"trial[{k}]": (g == k).to_numpy(float) for k in trials}, index=d.index)
    y0c, _ = _centre(d["baseline"].astype(float), g)
    X["baseline_c"] = y0c
    X["treat"] = t
    Z = pd.DataFrame({"treat": t, "baseline_c": y0c}, index=d.index)
    adjust = [a for a in ADJUST_FOR if spec.adjusted and a != spec.modifier]
    for a in adjust:
        ac, _ = _centre(d[a].astype(float), g)
        X[f"{a}_c"] = ac
        X[f"treat:{a}_c"] = t * ac
        Z[f"{a}_c"] = ac
    m = spec.modifier
    if m is not None:
        same_as_baseline = np.allclose(d[m].to_numpy(float), d["baseline"].to_numpy(float))
        zc, zbar = _centre(d[m].astype(float), g)
        if not same_as_baseline:
            X[f"{m}_c"] = zc
        X[f"treat:{m}_c"] = t * zc
        # Across-trial association, kept apart so γ_W uses within-trial information only.
        spread = np.unique(np.round(zbar, 12))
        if len(spread) > 1:
            X[f"treat:{m}_trialmean"] = t * (zbar - zbar.mean())
    if m is not None and np.allclose(X[f"treat:{m}_c"], 0):
        raise LbpError(f"{spec.label}: {m!r} does not vary within any trial; no within-trial interaction to estimate")
    drop = [c for c in X.columns if c.startswith(("baseline_c", f"{m}_c", "age_c", "female_c")) and np.allclose(X[c], 0)]
    for c in drop:  # a covariate constant within every trial carries no within-trial information
        X = X.drop(columns=c)
    Z = Z[[c for c in Z.columns if not np.allclose(Z[c], 0)]]
    return Design(spec, d["value"].to_numpy(float), X, Z, g.to_numpy(), n_candidates, n_candidates - len(d), miss)
