"""IPD in the network: a one-stage IPD network model, IPD trials reduced to contrasts, and IPD
plus aggregate-only trials in one network.

**One-stage IPD network model** (continuous outcome on 0–100, one follow-up), fitted by REML with
the package's mixed-model engine (:func:`training.mixed.fit_lmm`). Participant i in trial t on
network node c (``training.network.classes``):

    y_ti = α_t + β_t·(y0_ti − ȳ0_t) + θ_c + Σ_m φ_m·zc_tim + Σ_m γ_m·s_c·zc_tim + b_t,c + e_ti

α_t fixed trial intercepts, β_t fixed trial-specific baseline slopes (stratified), θ_c the node
effects vs the reference node (θ_ref = 0; consistency: every contrast is θ_c − θ_c'), b_t,c ~
N(0, σ_a²) an independent random effect for every arm (trial × node), so that any within-trial
contrast has heterogeneity variance τ² = 2σ_a² and two contrasts with a common arm correlate ½ —
the same homogeneous-variance model as the aggregate NMA (Piepho et al. 2012). Optional
modifiers z_m are centred within trial (zc: within-trial information only); their treatment
interaction is carried by exercise content s_c (1 for exercise and combined care, 0 otherwise:
``interaction="exercise_content"``) or is node-specific (``interaction="node"``). e ~ N(0, σ²).

Predicted individual benefit of exercise vs node c for a profile z: E[y | c] − E[y | exercise] =
θ_c − θ_ex + Σ_m γ_m (s_c − s_ex)(z_m − z̄_m) (positive = exercise better when higher = worse), z̄
the mean over the analysed participants, with its Wald SE from the fixed-effect covariance.

Consistency in the IPD model: design × node fixed terms (design = the set of nodes a trial
randomised) beyond those spanned by the consistency model, tested jointly by a Wald χ².

**IPD as contrasts** (two-stage, for combining with aggregate-only trials): per trial, ANCOVA by
OLS (value ~ node + baseline) gives the contrasts against the trial's first node and their
covariance σ̂²(X'X)⁻¹ — exact multi-arm correlation, more precise than the arm means. Combined with
aggregate trials' arm summaries in :func:`training.network.nma.fit_nma` ("IPD where available,
aggregate elsewhere"; Riley et al. 2008 two-stage combination).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from predict.errors import LbpError
from training.mixed import fit_lmm
from training.network.classes import EXERCISE_CONTENT
from training.network.data import StudyContrasts, load_aggregate, rows_of

REQUIRED = ("trial", "node", "outcome", "follow_up", "value", "baseline")


def _select(analysis: pd.DataFrame, outcome: str, follow_up: str, modifiers=()) -> tuple[pd.DataFrame, dict]:
    missing = [c for c in REQUIRED + tuple(modifiers) if c not in analysis.columns]
    if missing:
        raise LbpError(f"IPD analysis table: missing column(s) {', '.join(missing)}")
    d = analysis[(analysis["outcome"] == outcome) & (analysis["follow_up"] == follow_up)].dropna(subset=["value"])
    if len(d) and d["baseline"].isna().all():  # found on Project STAR (test scores without a baseline): this
        # said "fewer than 2 trials with two or more nodes" of 79 three-arm schools
        raise LbpError(f"IPD network ({outcome}, {follow_up}): no participant has a baseline of {outcome} (the one-stage "
                       "IPD network model adjusts for it)")
    d = d.dropna(subset=["baseline"])
    n0 = len(d)
    d = d.dropna(subset=list(modifiers))
    excluded = {"missing_modifier": n0 - len(d)}
    k = d.groupby("trial")["node"].nunique()
    single = list(k.index[k < 2])
    d = d[~d["trial"].isin(single)]
    excluded["single_node_trials"] = len(single)
    if d.empty or d["trial"].nunique() < 2:
        raise LbpError(f"IPD network ({outcome}, {follow_up}): fewer than 2 trials with two or more nodes")
    return d.sort_values(["trial", "node"], kind="mergesort").reset_index(drop=True), excluded


def _drop_dependent(X: np.ndarray, base: np.ndarray, tol: float = 1e-8) -> list[int]:
    """Columns of X not in the span of ``base`` and of the earlier kept columns of X (Gram–Schmidt
    with re-orthogonalisation; a column is dependent if its residual is < tol of its norm)."""
    Q = np.zeros((X.shape[0], 0))
    if base.shape[1]:
        Q, R = np.linalg.qr(base)
        Q = Q[:, np.abs(np.diag(R)) > tol * max(1.0, np.abs(R).max())]
    keep = []
    for j in range(X.shape[1]):
        v = X[:, j].astype(float)
        nv = np.linalg.norm(v)
        if nv == 0:
            continue
        for _ in range(2):
            v = v - Q @ (Q.T @ v)
        if np.linalg.norm(v) > tol * 1e3 * nv:
            Q = np.hstack([Q, (v / np.linalg.norm(v))[:, None]])
            keep.append(j)
    return keep


@dataclass
class IPDNetworkResult:
    """θ (node − reference) with covariance, τ (contrast heterogeneity), the modifier terms, the
    consistency test, the fitted mixed model, and what was analysed."""

    outcome: str
    follow_up: str
    reference: str
    nodes: list
    theta: pd.Series
    vcov: pd.DataFrame
    tau: float
    modifiers: list
    interaction: str
    centres: dict
    fit: object
    consistency: dict
    n_participants: int
    n_trials: int
    excluded: dict
    designs: dict = field(default_factory=dict)

    def contrast(self, a: str, b: str) -> tuple[float, float]:
        est = float(self.theta[a] - self.theta[b])
        v = float(self.vcov.loc[a, a] + self.vcov.loc[b, b] - 2 * self.vcov.loc[a, b])
        return est, math.sqrt(max(v, 0.0))

    def versus(self, reference: str | None = None) -> pd.DataFrame:
        ref = reference or self.reference
        z = stats.norm.ppf(0.975)
        rows = []
        for c in self.nodes:
            if c == ref:
                continue
            e, s = self.contrast(c, ref)
            rows.append({"treatment": c, "comparator": ref, "estimate": e, "se": s, "ci_low": e - z * s,
                         "ci_high": e + z * s})
        return pd.DataFrame(rows)

    def to_dict(self) -> dict:
        """JSON-able coefficients needed to predict benefit without training code (for the exporter):
        the node and modifier-interaction terms, their covariance, the modifier centres and s_c.
        benefit(node c, profile z) = g'b with g[node[c]] = 1, g[node[ref]] = −1 (absent for the
        reference) and, per modifier m, g[interaction term] = ±(z_m − centre_m)·(s_node or 1)."""
        names = [n for n in self.fit.params.index if n.startswith(("node[", "exercise_content:"))]
        return {"outcome": self.outcome, "follow_up": self.follow_up, "reference": self.reference,
                "nodes": list(self.nodes), "modifiers": list(self.modifiers), "interaction": self.interaction,
                "centres": dict(self.centres), "exercise_content": {c: EXERCISE_CONTENT.get(c, 0.0) for c in self.nodes},
                "terms": names, "coef": [float(self.fit.params[n]) for n in names],
                "vcov": self.fit.vcov.loc[names, names].to_numpy().tolist(), "tau": self.tau,
                "consistency": {k: (float(v) if isinstance(v, (int, float, np.floating)) else v)
                                for k, v in self.consistency.items()},
                "participants": self.n_participants, "trials": self.n_trials}

    def predict_benefit(self, profiles: pd.DataFrame, active: str = "exercise") -> pd.DataFrame:
        """Per profile and alternative node: E[y | node] − E[y | active] with SE (positive =
        active better when higher scores are worse)."""
        miss = [m for m in self.modifiers if m not in profiles.columns]
        if miss:
            raise LbpError(f"profiles: missing column(s) {', '.join(miss)}")
        names = list(self.fit.params.index)
        b = self.fit.params.to_numpy()
        V = self.fit.vcov.to_numpy()
        out = []
        for i, row in profiles.reset_index(drop=True).iterrows():
            for c in self.nodes:
                if c == active:
                    continue
                g = np.zeros(len(names))
                for node, sign in ((c, 1.0), (active, -1.0)):
                    if f"node[{node}]" in names:
                        g[names.index(f"node[{node}]")] += sign
                    for m in self.modifiers:
                        dz = float(row[m]) - self.centres[m]
                        if self.interaction == "node":
                            col = f"node[{node}]:{m}_c"
                        else:
                            col = f"exercise_content:{m}_c"
                            dz *= EXERCISE_CONTENT.get(node, 0.0)
                        if col in names:
                            g[names.index(col)] += sign * dz
                est = float(g @ b)
                se = math.sqrt(max(float(g @ V @ g), 0.0))
                out.append({"profile": i, "alternative": c, "benefit": est, "se": se})
        return pd.DataFrame(out)


def fit_ipd_network(analysis: pd.DataFrame, outcome: str = "pain", follow_up: str = "short",
                    reference: str = "exercise", modifiers: tuple = (), interaction: str = "exercise_content",
                    check_consistency: bool = True) -> IPDNetworkResult:
    """Fit the one-stage IPD network model (module docstring). ``analysis`` has one row per
    participant × outcome × follow-up with columns trial, node, outcome, follow_up, value,
    baseline and the modifiers."""
    if interaction not in ("exercise_content", "node"):
        raise LbpError("interaction must be 'exercise_content' or 'node'")
    d, excluded = _select(analysis, outcome, follow_up, modifiers)
    nodes = sorted(d["node"].astype(str).unique())
    if reference not in nodes:
        raise LbpError(f"reference node {reference!r} is not in the IPD network ({', '.join(nodes)})")
    trial = d["trial"].astype(str).to_numpy()
    node = d["node"].astype(str).to_numpy()
    trials = sorted(set(trial))
    cols, names = [], []
    y0 = d["baseline"].to_numpy(float)
    for t in trials:
        m = (trial == t).astype(float)
        cols.append(m)
        names.append(f"trial[{t}]")
    for t in trials:
        m = trial == t
        c = np.where(m, y0 - y0[m].mean(), 0.0)
        if np.ptp(c) > 0:
            cols.append(c)
            names.append(f"baseline_c[{t}]")
    for c in nodes:
        if c != reference:
            cols.append((node == c).astype(float))
            names.append(f"node[{c}]")
    centres = {}
    for mname in modifiers:
        z = d[mname].to_numpy(float)
        centres[mname] = float(z.mean())
        zc = z - pd.Series(z).groupby(trial).transform("mean").to_numpy()
        cols.append(zc)
        names.append(f"{mname}_c")
        if interaction == "node":
            for c in nodes:
                if c != reference:
                    cols.append(zc * (node == c))
                    names.append(f"node[{c}]:{mname}_c")
        else:
            s = np.array([EXERCISE_CONTENT.get(c, 0.0) for c in node])
            cols.append(zc * s)
            names.append(f"exercise_content:{mname}_c")
    X = np.column_stack(cols)
    keep = _drop_dependent(X, np.zeros((len(X), 0)))
    X = X[:, keep]
    names = [names[j] for j in keep]
    groups = np.array([f"{t}|{c}" for t, c in zip(trial, node)], dtype=object)
    y = d["value"].to_numpy(float)
    Z = np.ones((len(y), 1))
    res = fit_lmm(y, X, Z, groups, method="REML", re_cov="diagonal", fixed_names=names, random_names=["arm"],
                  compute_vc_vcov=False)
    theta = pd.Series(0.0, index=nodes)
    V = pd.DataFrame(0.0, index=nodes, columns=nodes)
    nn = [c for c in nodes if f"node[{c}]" in names]
    for c in nn:
        theta[c] = float(res.params[f"node[{c}]"])
    idx = [f"node[{c}]" for c in nn]
    V.loc[nn, nn] = res.vcov.loc[idx, idx].to_numpy()
    tau = math.sqrt(2.0) * float(res.re_sd["arm"])
    design_of = d.groupby("trial")["node"].agg(lambda s: ":".join(sorted(set(map(str, s))))).to_dict()
    cons = {"chi2": np.nan, "df": 0, "p": np.nan, "note": "not checked"}
    if check_consistency:
        cons = _consistency(y, X, Z, groups, names, trial, node, design_of, reference)
    return IPDNetworkResult(outcome, follow_up, reference, nodes, theta, V, tau, list(modifiers), interaction, centres,
                            res, cons, len(d), len(trials), excluded, design_of)


def _consistency(y, X, Z, groups, names, trial, node, design_of, reference) -> dict:
    designs = sorted(set(design_of.values()))
    extra, enames = [], []
    des = np.array([design_of[t] for t in trial], dtype=object)
    for D in designs:
        members = D.split(":")
        for c in members[1:]:
            extra.append(((des == D) & (node == c)).astype(float))
            enames.append(f"design[{D}]:node[{c}]")
    if not extra:
        return {"chi2": np.nan, "df": 0, "p": np.nan, "note": "a single design: nothing to test"}
    E = np.column_stack(extra)
    keep = _drop_dependent(E, X)
    if not keep:
        return {"chi2": np.nan, "df": 0, "p": np.nan, "note": "no closed loops between designs: consistency cannot be tested"}
    E = E[:, keep]
    en = [enames[j] for j in keep]
    res = fit_lmm(y, np.hstack([X, E]), Z, groups, method="REML", re_cov="diagonal", fixed_names=list(names) + en,
                  random_names=["arm"], compute_vc_vcov=False)
    b = res.params[en].to_numpy()
    V = res.vcov.loc[en, en].to_numpy()
    chi2 = float(b @ np.linalg.solve(V, b))
    return {"chi2": chi2, "df": len(en), "p": float(stats.chi2.sf(chi2, len(en))), "note": "",
            "tau_inconsistency": math.sqrt(2.0) * float(res.re_sd["arm"])}


def ipd_contrasts(analysis: pd.DataFrame, outcome: str, follow_up: str) -> list[StudyContrasts]:
    """Per IPD trial: ANCOVA contrasts of its nodes against its first node (sorted) with covariance."""
    d, _ = _select(analysis, outcome, follow_up)
    out = []
    for t, g in d.groupby("trial", sort=True):
        nodes = sorted(g["node"].astype(str).unique())
        node = g["node"].astype(str).to_numpy()
        X = np.column_stack([np.ones(len(g)), g["baseline"].to_numpy(float)] + [(node == c).astype(float) for c in nodes[1:]])
        y = g["value"].to_numpy(float)
        if len(y) <= X.shape[1]:
            continue
        XtX_inv = np.linalg.inv(X.T @ X)
        beta = XtX_inv @ X.T @ y
        r = y - X @ beta
        s2 = float(r @ r) / (len(y) - X.shape[1])
        cov = s2 * XtX_inv[2:, 2:]
        n = {c: int((node == c).sum()) for c in nodes}
        out.append(StudyContrasts(str(t), tuple(nodes), beta[2:], cov, "ipd", n))
    return out


def aggregate_contrasts(table: pd.DataFrame, outcome: str, follow_up: str, measure: str = "MD",
                        file: str = "aggregate table") -> list[StudyContrasts]:
    """Arm summaries of one outcome and follow-up (columns trial, treatment, n, mean, sd and,
    when present, outcome and follow_up) as per-trial contrasts."""
    t = rows_of(table, outcome, follow_up)
    if t.empty:
        return []
    return load_aggregate(t[["trial", "treatment", "n", "mean", "sd"]].reset_index(drop=True), measure, file=file)


def combine(ipd: list[StudyContrasts], aggregate: list[StudyContrasts]) -> tuple[list[StudyContrasts], list[str]]:
    """IPD where available, aggregate elsewhere: a trial present in both keeps its IPD.
    Returns (studies, trials given both ways)."""
    have = {s.trial for s in ipd}
    dup = [s.trial for s in aggregate if s.trial in have]
    return list(ipd) + [s for s in aggregate if s.trial not in have], dup
