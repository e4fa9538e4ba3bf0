"""Contrast-based random-effects network meta-analysis fitted by REML.

Model (Lu & Ades 2004; White et al. 2012, contrast form). Trial s with baseline arm b_s and
arms a_1..a_m contributes the m contrasts y_s (arm minus baseline) with known within-trial
covariance S_s:

    y_s = X_s d + δ_s + e_s,   e_s ~ N(0, S_s),   δ_s ~ N(0, τ² P_m),   P_m = ½(I + 11')

d are the basic parameters (every treatment minus the reference, d_ref = 0), X_s maps them to
the trial's contrasts (consistency: d_jk = d_k − d_j). One heterogeneity variance τ² for every
comparison (the homogeneous-variance assumption; the ½ correlation of multi-arm trials follows
from it). τ² is estimated by REML (or ML), or set to 0 (common effect). d and its covariance are
the generalised least squares estimates given τ²: d̂ = (ΣX'V⁻¹X)⁻¹ΣX'V⁻¹y, Var d̂ = (ΣX'V⁻¹X)⁻¹
(τ² plugged in, as netmeta and metafor). Intervals are Wald (normal); 95% prediction intervals
for a new trial use t with (contrasts − treatments) df, which is k − 2 for a pairwise
meta-analysis of k trials (Higgins et al. 2009).

The common-effect fit is also the graph-theoretical estimate (Rücker 2012) and gives the
generalised Cochran Q (df = contrasts − (treatments − 1)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import optimize, stats

from predict.errors import LbpError
from training.network.data import StudyContrasts

LOG2PI = math.log(2 * math.pi)


def treatments_of(studies: list[StudyContrasts]) -> list[str]:
    seen = []
    for s in studies:
        for t in s.treatments:
            if t not in seen:
                seen.append(t)
    return sorted(seen)


def check_connected(studies: list[StudyContrasts]) -> None:
    """Raise if the network falls into pieces (no indirect path between some treatments)."""
    treats = treatments_of(studies)
    parent = {t: t for t in treats}

    def find(t):
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    for s in studies:
        for t in s.treatments[1:]:
            parent[find(t)] = find(s.treatments[0])
    groups: dict = {}
    for t in treats:
        groups.setdefault(find(t), []).append(t)
    if len(groups) > 1:
        parts = "; ".join("{" + ", ".join(g) + "}" for g in groups.values())
        raise LbpError(f"the network is disconnected: no chain of trials links these groups of treatments: {parts}")


@dataclass
class Stacked:
    """Per-trial blocks of the linear model (y_s, X_s, S_s, P_s)."""

    y: list
    X: list
    S: list
    P: list
    names: list  # columns of X
    _b: list | None = field(default=None, repr=False)
    _ldxx: float | None = field(default=None, repr=False)

    @property
    def n_obs(self) -> int:
        return int(sum(len(v) for v in self.y))


def stack(studies: list[StudyContrasts], treatments: list[str], reference: str,
          extra: list | None = None, extra_names: list | None = None) -> Stacked:
    """Consistency design (columns: treatments except the reference), optionally with extra
    per-trial columns (``extra[s]`` an m_s x q block)."""
    cols = [t for t in treatments if t != reference]
    idx = {t: i for i, t in enumerate(cols)}
    ys, Xs, Ss, Ps = [], [], [], []
    for k, s in enumerate(studies):
        m = len(s.y)
        X = np.zeros((m, len(cols)))
        for r, t in enumerate(s.treatments[1:]):
            if t in idx:
                X[r, idx[t]] += 1.0
            if s.treatments[0] in idx:
                X[r, idx[s.treatments[0]]] -= 1.0
        if extra is not None:
            X = np.hstack([X, extra[k]])
        ys.append(np.asarray(s.y, float))
        Xs.append(X)
        Ss.append(np.asarray(s.S, float))
        Ps.append(0.5 * (np.eye(m) + np.ones((m, m))))
    return Stacked(ys, Xs, Ss, Ps, cols + list(extra_names or []))


def _batches(st: Stacked) -> list:
    """Trials grouped by number of contrasts, as stacked arrays (cached on the Stacked)."""
    if getattr(st, "_b", None) is None:
        by: dict = {}
        for k, y in enumerate(st.y):
            by.setdefault(len(y), []).append(k)
        st._b = [(np.stack([st.y[k] for k in ks]), np.stack([st.X[k] for k in ks]), np.stack([st.S[k] for k in ks]),
                  st.P[ks[0]]) for ks in by.values()]
    return st._b


def gls(st: Stacked, tau2: float, check: bool = True):
    """GLS at τ²: (beta, vcov, Q = r'V⁻¹r, log|V|, log|X'V⁻¹X|, X'V⁻¹X)."""
    p = st.X[0].shape[1]
    XtVX = np.zeros((p, p))
    XtVy = np.zeros(p)
    logdet = 0.0
    parts = []
    for Y, X, S, P in _batches(st):
        V = S + tau2 * P
        c = np.linalg.cholesky(V)
        logdet += 2 * np.log(np.diagonal(c, axis1=1, axis2=2)).sum()
        Vi = np.linalg.inv(V)
        XtVi = np.einsum("kmp,kmn->kpn", X, Vi)
        XtVX += np.einsum("kpn,knq->pq", XtVi, X)
        XtVy += np.einsum("kpn,kn->p", XtVi, Y)
        parts.append((Y, X, Vi))
    sign, ld = np.linalg.slogdet(XtVX)
    if sign <= 0 or (check and np.linalg.cond(XtVX) > 1e12):
        raise LbpError("the network model is not identifiable (a treatment effect has no data; check the design)")
    vcov = np.linalg.inv(XtVX)
    beta = vcov @ XtVy
    Q = 0.0
    for Y, X, Vi in parts:
        r = Y - X @ beta
        Q += float(np.einsum("km,kmn,kn->", r, Vi, r))
    return beta, vcov, Q, logdet, ld, XtVX


def neg_loglik(st: Stacked, tau2: float, method: str) -> float:
    beta, _, Q, logdet, ld, _ = gls(st, tau2, check=False)
    n, p = st.n_obs, len(beta)
    if method == "ML":
        return 0.5 * (n * LOG2PI + logdet + Q)
    # REML on metafor's scale: + ½ log|X'X| term kept so that logLik matches rma.mv
    if getattr(st, "_ldxx", None) is None:
        st._ldxx = np.linalg.slogdet(sum(X.T @ X for X in st.X))[1]
    return 0.5 * ((n - p) * LOG2PI - st._ldxx + logdet + ld + Q)


def estimate_tau2(st: Stacked, method: str = "REML") -> tuple[float, float]:
    """Maximise the (restricted) likelihood over τ ≥ 0: a log-spaced grid then Brent refinement
    in the best bracket (so a multimodal profile cannot trap it). Returns (τ², −loglik)."""
    if method == "fixed":
        return 0.0, neg_loglik(st, 0.0, "REML")
    scale = math.sqrt(max(float(np.median([np.median(np.diag(S)) for S in st.S])), 1e-12))
    spread = float(np.std(np.concatenate(st.y))) if st.n_obs > 1 else scale
    hi = 10 * max(spread, scale)
    grid = np.concatenate([[0.0], np.geomspace(1e-4 * scale, hi, 40)])
    vals = np.array([neg_loglik(st, t * t, method) for t in grid])
    i = int(np.argmin(vals))
    lo_t, hi_t = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    if hi_t > lo_t:
        r = optimize.minimize_scalar(lambda t: neg_loglik(st, t * t, method), bounds=(lo_t, hi_t), method="bounded",
                                     options={"xatol": 1e-8 * max(1.0, hi_t)})
        if r.fun <= vals[i]:
            return float(r.x) ** 2, float(r.fun)
    return float(grid[i]) ** 2, float(vals[i])


@dataclass
class NMAResult:
    """A fitted network. ``d``: effects vs ``reference`` (Series), ``vcov``: their covariance
    (with the reference's zero row/column), ``tau2``, ``Q``/``Q_df``/``I2`` (common-effect
    generalised Cochran Q), ``studies``, ``method``, ``small_values`` ("good" if lower = better)."""

    treatments: list
    reference: str
    d: pd.Series
    vcov: pd.DataFrame
    tau2: float
    method: str
    loglik: float
    Q: float
    Q_df: int
    studies: list
    small_values: str = "good"
    measure: str = "MD"
    notes: list = field(default_factory=list)

    @property
    def tau(self) -> float:
        return math.sqrt(self.tau2)

    @property
    def I2(self) -> float:
        return max(0.0, (self.Q - self.Q_df) / self.Q) if self.Q > 0 else 0.0

    @property
    def pi_df(self) -> int:
        return max(1, self.Q_df - 1)

    def contrast(self, a: str, b: str) -> tuple[float, float]:
        """Estimate and SE of a − b (mean of a minus mean of b)."""
        i, j = self.treatments.index(a), self.treatments.index(b)
        d, V = self.d.to_numpy(), self.vcov.to_numpy()
        return float(d[i] - d[j]), math.sqrt(max(float(V[i, i] + V[j, j] - 2 * V[i, j]), 0.0))

    def pairwise(self, level: float = 0.95) -> pd.DataFrame:
        """Every ordered pair (a − b) with CI, p and prediction interval."""
        z = stats.norm.ppf(0.5 + level / 2)
        tq = stats.t.ppf(0.5 + level / 2, self.pi_df)
        rows = []
        for a in self.treatments:
            for b in self.treatments:
                if a == b:
                    continue
                est, se = self.contrast(a, b)
                half_pi = tq * math.sqrt(se**2 + self.tau2)
                rows.append({"treatment": a, "comparator": b, "estimate": est, "se": se, "ci_low": est - z * se,
                             "ci_high": est + z * se, "p": float(2 * stats.norm.sf(abs(est / se))) if se > 0 else np.nan,
                             "pi_low": est - half_pi, "pi_high": est + half_pi})
        return pd.DataFrame(rows)

    def versus(self, reference: str | None = None, level: float = 0.95) -> pd.DataFrame:
        ref = reference or self.reference
        if ref not in self.treatments:
            raise LbpError(f"reference {ref!r} is not a treatment of the network ({', '.join(self.treatments)})")
        pw = self.pairwise(level)
        return pw[pw["comparator"] == ref].reset_index(drop=True)

    def league(self, digits: int = 1) -> pd.DataFrame:
        """League table: cell (row a, column b) = a − b (95% CI); diagonal = treatment name."""
        pw = self.pairwise().set_index(["treatment", "comparator"])
        tab = pd.DataFrame(index=self.treatments, columns=self.treatments, dtype=object)
        for a in self.treatments:
            for b in self.treatments:
                if a == b:
                    tab.loc[a, b] = a
                else:
                    r = pw.loc[(a, b)]
                    tab.loc[a, b] = f"{r.estimate:.{digits}f} ({r.ci_low:.{digits}f} to {r.ci_high:.{digits}f})"
        return tab

    def pscores(self) -> pd.Series:
        """P-scores (Rücker & Schwarzer 2015): mean over the other treatments of the one-sided
        probability that this treatment is better; the frequentist analogue of SUCRA."""
        out = {}
        for a in self.treatments:
            ps = []
            for b in self.treatments:
                if a == b:
                    continue
                est, se = self.contrast(a, b)
                p_a_lower = stats.norm.cdf(-est / se) if se > 0 else float(est < 0)
                ps.append(p_a_lower if self.small_values == "good" else 1 - p_a_lower)
            out[a] = float(np.mean(ps))
        return pd.Series(out, name="p_score").sort_values(ascending=False)


def fit_nma(studies: list[StudyContrasts], reference: str | None = None, method: str = "REML",
            small_values: str = "good", measure: str = "MD") -> NMAResult:
    """Fit the network (``method``: "REML", "ML" or "fixed" for the common-effect model)."""
    if method not in ("REML", "ML", "fixed"):
        raise LbpError(f"method must be REML, ML or fixed, not {method!r}")
    if small_values not in ("good", "bad"):
        raise LbpError("small_values must be 'good' or 'bad'")
    if len(studies) < 2:
        raise LbpError("a network meta-analysis needs at least 2 trials")
    check_connected(studies)
    treats = treatments_of(studies)
    ref = reference or treats[0]
    if ref not in treats:
        raise LbpError(f"reference {ref!r} is not a treatment of the network ({', '.join(treats)})")
    st = stack(studies, treats, ref)
    df_q = st.n_obs - (len(treats) - 1)
    _, _, Q, *_ = gls(st, 0.0)
    notes = []
    if method != "fixed" and df_q <= 0:
        notes.append("no degrees of freedom for heterogeneity: τ² set to 0 (common-effect model)")
        method = "fixed"
    tau2, nll = estimate_tau2(st, method)
    beta, vcov, *_ = gls(st, tau2)
    pos = [treats.index(t) for t in st.names]
    d_full = np.zeros(len(treats))
    d_full[pos] = beta
    V_full = np.zeros((len(treats), len(treats)))
    V_full[np.ix_(pos, pos)] = vcov
    full = pd.Series(d_full, index=treats)
    V = pd.DataFrame(V_full, index=treats, columns=treats)
    return NMAResult(treats, ref, full, V, tau2, method, -nll, Q, df_q, studies, small_values, measure, notes)


def has_indirect_path(studies: list[StudyContrasts], a: str, b: str) -> bool:
    """True if a and b are linked by trials that do not contain both (independent indirect evidence)."""
    others = [s for s in studies if not (a in s.treatments and b in s.treatments)]
    seen, todo = {a}, [a]
    while todo:
        t = todo.pop()
        for s in others:
            if t in s.treatments:
                for u in s.treatments:
                    if u not in seen:
                        seen.add(u)
                        todo.append(u)
    return b in seen


def direct_evidence(res: NMAResult) -> pd.DataFrame:
    """Per pair: trials comparing it directly, evidence type and the direct-evidence proportion
    (SE²_network / SE²_direct, the direct pairwise estimate at the network's τ²; König et al. 2013)."""
    rows = []
    for a, b in combinations(res.treatments, 2):
        direct = [s for s in res.studies if a in s.treatments and b in s.treatments]
        est, se = res.contrast(b, a)
        prop, d_est, d_se = 0.0, np.nan, np.nan
        if direct:
            sub = [s.rebased(a) for s in direct]
            w, wy = 0.0, 0.0
            # direct pairwise estimate of b − a (multi-arm trials: that contrast's marginal variance)
            for s in sub:
                j = list(s.treatments).index(b) - 1
                v = s.S[j, j] + res.tau2
                w += 1 / v
                wy += s.y[j] / v
            d_est, d_se = wy / w, math.sqrt(1 / w)
            prop = min(1.0, se**2 / d_se**2)
        indirect = has_indirect_path(res.studies, a, b)
        kind = ("direct and indirect" if indirect else "direct only") if direct else "indirect only"
        rows.append({"treatment": b, "comparator": a, "direct_trials": len(direct),
                     "direct_participants": int(sum(sum(s.n.get(t, 0) for t in (a, b)) for s in direct)),
                     "evidence": kind, "direct_proportion": prop, "network_estimate": est, "network_se": se,
                     "direct_estimate": d_est, "direct_se": d_se})
    return pd.DataFrame(rows)
