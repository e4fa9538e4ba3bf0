"""Design matrices for the one-stage IPD meta-analysis models.

For trial j, participant i, treatment t (1 = the active class of the study config, 0 = the
comparison set), baseline y0 of the outcome (where it has one; for a derived recovery outcome the
baseline named by ``global_recovery.adjust_for``) and candidate modifier z:

    g(E[y_ij]) = α_j + β·y0c_ij + θ·t_ij + φ·zc_ij + γ_W·t_ij·zc_ij + γ_A·t_ij·(z̄_j − z̄)
                 + b_0j·t_ij + b_1j·y0c_ij

with α_j fixed trial-specific intercepts, y0c and zc centred about their trial means, random
trial effects (b_0j, b_1j) ~ N(0, diag(τ², τ_y0²)) on the treatment effect and the baseline
slope (the seed paper's specification; without a baseline the y0 terms are absent), g the
identity (continuous outcomes, REML) or the logit (binary outcomes, ML). γ_W, the *within-trial* interaction, is the reported estimate:
centring removes across-trial (ecological) information, which γ_A absorbs (Riley et al. 2020;
Hua et al. 2017). Adjusted models add the config's ``adjust_for`` covariates (the default study:
age and sex) centred within trial, as fixed main effects,
fixed interactions with treatment, and random slopes. Participants missing any variable of a
model are excluded from that model only, and counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from predict.errors import LbpError
from training.meta.rows import Rows, group_centre

ADJUST_FOR = ("age", "female")  # the seed paper's set; a study's own set is StudyConfig.adjust_for


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
    adjust_for: tuple[str, ...] = ADJUST_FOR  # covariates of the adjusted models (from the config)
    baseline: bool = True  # adjust for the outcome's baseline (False: the outcome has none)
    levels: tuple = ()  # ((categorical covariate, (reference, other levels...)), ...) of those used

    def expand(self, variable: str) -> list[str]:
        """A categorical covariate's indicator columns (``name[level]``, reference left out); a
        numeric covariate is itself."""
        lv = dict(self.levels).get(variable)
        return [f"{variable}[{level}]" for level in lv[1:]] if lv else [variable]

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
    absent: tuple = ()  # indicator columns of the modifier's levels that no analysed participant has

    @property
    def studies(self) -> int:
        return int(len(np.unique(self.groups)))

    @property
    def participants(self) -> int:
        return int(len(self.y))


def centre_within(values: pd.Series, groups: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Values minus their group means, and the group means (per row)."""
    means = values.groupby(groups, observed=True).transform("mean")
    return (values - means).to_numpy(float), means.to_numpy(float)


def select_rows(analysis: pd.DataFrame, spec: ModelSpec, active: str) -> pd.DataFrame:
    """Rows of this outcome and follow-up, the active class or the comparison set, in trials with both."""
    d = analysis[(analysis["outcome"] == spec.outcome) & (analysis["follow_up"] == spec.follow_up)]
    d = d[(d["treatment"] == active) | d["treatment"].isin(spec.comparators)]
    return d[d["trial"].isin(_trials_with_both_arms(d))]


def _trials_with_both_arms(d: pd.DataFrame) -> list:
    span = d.groupby("trial", observed=True)["treat"].agg(["min", "max"])
    return list(span.index[(span["min"] == 0) & (span["max"] == 1)])


def build_design(analysis: pd.DataFrame, spec: ModelSpec, active: str = "exercise",
                 rows: pd.DataFrame | Rows | None = None, min_trials: int = 2) -> Design:
    """Build (y, X, Z, groups) for one model; raises LbpError if nothing is left to fit.
    ``rows`` may pass the result of :func:`select_rows` for this spec, or better a :class:`Rows`
    made from it once and shared by the many models on the same rows (numpy, no re-sorting).
    ``min_trials=1`` allows a single trial (the single-trial analysis of a one-trial dataset)."""
    if not isinstance(rows, Rows):
        rows = Rows(select_rows(analysis, spec, active) if rows is None else rows)
    n_candidates = len(rows)
    needed = ["value", "baseline"] if spec.baseline else ["value"]
    m = spec.modifier
    if m is not None and not rows.has(m):
        raise LbpError(f"{spec.label}: modifier {m!r} is not in the analysis data")
    if m is not None:
        needed.append(m)
    if spec.adjusted:
        needed += [a for a in spec.adjust_for if a not in needed]
    nan = {v: np.isnan(rows.col(spec.expand(v)[0])) for v in needed}
    miss = {v: int(b.sum()) for v, b in nan.items()}
    keep = ~np.logical_or.reduce(list(nan.values()))
    # Trials must still have both arms after exclusions.
    keep &= rows.trials_with_both_arms(keep)[rows.codes]
    codes_all = rows.codes[keep]
    present = np.unique(codes_all)
    if len(present) < min_trials:
        raise LbpError(f"{spec.label}: fewer than {min_trials} trial(s) with both arms and complete data")
    codes = np.searchsorted(present, codes_all)  # 0..k-1 over the trials left, in label order
    k = len(present)
    labels = rows.trial_labels[present]
    t = rows.treat[keep]
    cols: dict[str, np.ndarray] = {}
    dummies = np.zeros((len(t), k))
    dummies[np.arange(len(t)), codes] = 1.0
    for j, lab in enumerate(labels):
        cols[f"trial[{lab}]"] = dummies[:, j]
    adjust = [c for a in spec.adjust_for if spec.adjusted and a != m for c in spec.expand(a)]
    lead = ["baseline"] if spec.baseline else []
    mcols = spec.expand(m) if m is not None else []
    centre = [*lead, *adjust, *mcols]
    if centre:
        centred, means = group_centre(np.column_stack([rows.col(c)[keep] for c in centre]), codes)
    if spec.baseline:
        y0c = centred[:, 0]
        cols["baseline_c"] = y0c
    cols["treat"] = t
    zcols = {"treat": t, **({"baseline_c": y0c} if spec.baseline else {})}
    for j, a in enumerate(adjust, start=len(lead)):
        ac = centred[:, j]
        cols[f"{a}_c"] = ac
        cols[f"treat:{a}_c"] = t * ac
        zcols[f"{a}_c"] = ac
    for i, mc in enumerate(mcols, start=len(centre) - len(mcols)):
        z = rows.col(mc)[keep]
        same_as_baseline = spec.baseline and np.allclose(z, rows.col("baseline")[keep])
        zc, zbar = centred[:, i], means[:, i]
        if not same_as_baseline:
            cols[f"{mc}_c"] = zc
        cols[f"treat:{mc}_c"] = t * zc
        # Across-trial association, kept apart so γ_W uses within-trial information only.
        spread = np.unique(np.round(zbar, 12))
        if len(spread) > 1:
            cols[f"treat:{mc}_trialmean"] = t * (zbar - zbar.mean())
    if mcols and all(np.allclose(cols[f"treat:{mc}_c"], 0) for mc in mcols):
        raise LbpError(f"{spec.label}: {m!r} does not vary within any trial; no within-trial interaction to estimate")
    # A covariate (or level) constant within every trial carries no within-trial information.
    prefixes = ("baseline_c", *(f"{mc}_c" for mc in mcols), *(f"{a}_c" for a in adjust),
                *(f"treat:{mc}_c" for mc in mcols if len(mcols) > 1))
    names = [c for c, v in cols.items() if not (c.startswith(prefixes) and np.allclose(v, 0))]
    znames = [c for c, v in zcols.items() if not np.allclose(v, 0)]
    index = rows.index[keep]
    X = pd.DataFrame(np.column_stack([cols[c] for c in names]), index=index, columns=names)
    Z = pd.DataFrame(np.column_stack([zcols[c] for c in znames]), index=index, columns=znames)
    groups = labels[codes]
    absent = tuple(mc for mc in mcols if len(mcols) > 1 and not np.any(rows.col(mc)[keep]))
    return Design(spec, rows.col("value")[keep], X, Z, groups, n_candidates, n_candidates - len(t), miss, absent)
